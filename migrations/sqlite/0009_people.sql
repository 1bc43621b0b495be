-- People who sign in to the web pages (issue 18): a name, a role, a station where the role
-- has one, and an argon2id password hash (PHC string). Repeated failed sign-ins lock the
-- account for a while (failed_attempts, locked_until); a disabled account cannot sign in.
CREATE TABLE people (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('station', 'coordinator', 'case_manager', 'admin', 'auditor')),
    station_code TEXT REFERENCES stations(code),
    password_hash TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    created_at TEXT NOT NULL,
    disabled_at TEXT,
    CHECK ((role = 'station') = (station_code IS NOT NULL))
);

-- Web sessions, held in the store so that every server of a deployment knows them. Only the
-- SHA-256 of the cookie's secret is kept; the CSRF token is bound to the session.
CREATE TABLE web_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    person_id BIGINT NOT NULL REFERENCES people(id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT
);
