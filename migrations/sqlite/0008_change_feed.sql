-- The change feed (issue 19): every committed change that can alter what a search returns
-- appends the donor it concerns, in the change's own transaction. SQLite has one writer at
-- a time, so sequence order is commit order and a reader asks for what follows its last
-- row (see crates/registry/src/feed.rs).
CREATE TABLE index_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    donor_id BIGINT NOT NULL,
    at TEXT NOT NULL
);

-- This database's identity: an index snapshot records it, and a server refuses a snapshot
-- written from another database (its feed position would mean nothing here).
CREATE TABLE registry_origin (id TEXT NOT NULL);
INSERT INTO registry_origin (id) VALUES (lower(hex(randomblob(16))));
