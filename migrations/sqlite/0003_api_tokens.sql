-- Bearer tokens of the HTTP API: only the SHA-256 of each secret is kept; the secret is
-- shown once, when created.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('station', 'coordinator', 'case_manager', 'admin', 'auditor')),
    station_code TEXT REFERENCES stations(code),
    label TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    CHECK ((role = 'station') = (station_code IS NOT NULL))
);

-- Every search asks for the donors reserved for its patient.
CREATE INDEX donors_reserved ON donors(reserved_for) WHERE status = 'RS';
