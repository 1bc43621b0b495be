-- The status index only holds donors who are not available: the daily job looks those up
-- (expired deferrals), while the millions of available donors an import adds need no entry.
DROP INDEX donors_status;
CREATE INDEX donors_unavailable ON donors(status, status_until) WHERE status <> 'AV';

-- A bulk import audits each batch once ('import.create', with the count, file, lines and
-- id range); every donor it created names that entry. Donors enrolled one by one keep
-- their own audit entries and leave this empty.
ALTER TABLE donors ADD COLUMN created_by_audit BIGINT;

-- Donors and stations are never deleted (a donor leaves by status DE, a station stays for
-- the history that names it) and their keys never change; PostgreSQL enforces the same.
CREATE TRIGGER donors_never_deleted BEFORE DELETE ON donors
BEGIN SELECT RAISE(ABORT, 'donors rows are never deleted'); END;
CREATE TRIGGER donors_key_kept BEFORE UPDATE OF id ON donors WHEN NEW.id <> OLD.id
BEGIN SELECT RAISE(ABORT, 'the key of a donors row never changes'); END;
CREATE TRIGGER stations_never_deleted BEFORE DELETE ON stations
BEGIN SELECT RAISE(ABORT, 'stations rows are never deleted'); END;
CREATE TRIGGER stations_key_kept BEFORE UPDATE OF code ON stations WHEN NEW.code <> OLD.code
BEGIN SELECT RAISE(ABORT, 'the key of a stations row never changes'); END;
