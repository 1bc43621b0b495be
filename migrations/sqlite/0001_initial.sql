-- Boai registry schema. Written once here with @TOKENS@ that tools/migrations.sh expands per
-- backend: INTEGER PRIMARY KEY AUTOINCREMENT (auto id primary key), INTEGER (64-bit integer), BOOLEAN, REAL.
-- Dates are ISO-8601 text (YYYY-MM-DD) and times RFC 3339 UTC text on both backends, so one
-- query path serves both and text order is time order.

CREATE TABLE branches (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT ''
);

CREATE TABLE stations (
    code TEXT PRIMARY KEY,
    branch_code TEXT NOT NULL REFERENCES branches(code),
    name TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    yearly_target INTEGER NOT NULL DEFAULT 0 CHECK (yearly_target >= 0)
);

-- Matching and registry data only: identity lives in donor_identity.
CREATE TABLE donors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grid TEXT NOT NULL UNIQUE,
    external_id TEXT NOT NULL UNIQUE,
    local_id TEXT,
    station_code TEXT NOT NULL REFERENCES stations(code),
    birth_date TEXT,
    sex TEXT NOT NULL CHECK (sex IN ('M', 'F', 'U')),
    abo TEXT NOT NULL DEFAULT '?' CHECK (abo IN ('O', 'A', 'B', 'AB', '?')),
    rh TEXT NOT NULL DEFAULT '?' CHECK (rh IN ('+', '-', '?')),
    cmv TEXT NOT NULL DEFAULT '?' CHECK (cmv IN ('pos', 'neg', '?')),
    cmv_date TEXT,
    population TEXT NOT NULL DEFAULT '',
    donor_type TEXT NOT NULL DEFAULT 'adult' CHECK (donor_type IN ('adult', 'cord')),
    cord_bank TEXT,
    cord_volume_ml REAL,
    cord_tnc_e7 REAL,
    cord_cd34_e5 REAL,
    status TEXT NOT NULL DEFAULT 'AV' CHECK (status IN ('AV', 'TU', 'RS', 'DE')),
    status_reason TEXT,
    status_until TEXT,
    reserved_for INTEGER,
    -- Recruitment consent given and not withdrawn: the donor may be listed.
    listed BOOLEAN NOT NULL DEFAULT FALSE,
    row_version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX donors_station ON donors(station_code);
CREATE INDEX donors_status ON donors(status, listed);

CREATE TABLE donor_identity (
    donor_id INTEGER PRIMARY KEY REFERENCES donors(id),
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    national_id TEXT UNIQUE,
    phone TEXT,
    email TEXT,
    address TEXT,
    emergency1_name TEXT,
    emergency1_phone TEXT,
    emergency2_name TEXT,
    emergency2_phone TEXT
);

CREATE TABLE samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    donor_id INTEGER NOT NULL REFERENCES donors(id),
    station_code TEXT NOT NULL REFERENCES stations(code),
    collected_at TEXT NOT NULL,
    volume_ml REAL,
    barcode TEXT NOT NULL UNIQUE,
    lab TEXT,
    state TEXT NOT NULL DEFAULT 'collected' CHECK (state IN ('collected', 'shipped', 'received', 'typed', 'failed', 'destroyed'))
);

-- Every typing a donor ever had; exactly one current (the newest valid) per donor.
CREATE TABLE typings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    donor_id INTEGER NOT NULL REFERENCES donors(id),
    gl TEXT NOT NULL,
    release TEXT NOT NULL,
    lab TEXT,
    method TEXT,
    typed_on TEXT NOT NULL,
    sample_id INTEGER REFERENCES samples(id),
    is_current BOOLEAN NOT NULL DEFAULT FALSE,
    recorded_at TEXT NOT NULL
);
CREATE INDEX typings_donor ON typings(donor_id);
CREATE UNIQUE INDEX typings_one_current ON typings(donor_id) WHERE is_current;

CREATE TABLE consents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    donor_id INTEGER NOT NULL REFERENCES donors(id),
    scope TEXT NOT NULL CHECK (scope IN ('recruitment', 'confirmatory_typing', 'workup', 'follow_up_contact', 'research', 'international_sharing')),
    form_version TEXT NOT NULL,
    given_at TEXT NOT NULL,
    withdrawn_at TEXT,
    recorded_by TEXT NOT NULL,
    note TEXT
);
CREATE INDEX consents_donor ON consents(donor_id, scope);

CREATE TABLE status_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    donor_id INTEGER NOT NULL REFERENCES donors(id),
    status TEXT NOT NULL,
    reason TEXT,
    until TEXT,
    patient_id INTEGER,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX status_history_donor ON status_history(donor_id);

CREATE TABLE patients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id TEXT NOT NULL UNIQUE,
    gl TEXT NOT NULL,
    release TEXT NOT NULL,
    birth_date TEXT,
    sex TEXT NOT NULL DEFAULT 'U',
    abo TEXT NOT NULL DEFAULT '?',
    cmv TEXT NOT NULL DEFAULT '?',
    weight_kg REAL,
    diagnosis TEXT,
    transplant_centre TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE searches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    state TEXT NOT NULL DEFAULT 'NEW' CHECK (state IN ('NEW', 'PRE', 'ACT', 'SUS', 'STP')),
    state_reason TEXT,
    criteria TEXT NOT NULL,
    last_run_at TEXT,
    last_result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    donor_id INTEGER NOT NULL REFERENCES donors(id),
    kind TEXT NOT NULL CHECK (kind IN ('extended_typing', 'confirmatory_typing', 'reservation', 'workup')),
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'done', 'cancelled', 'refused')),
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    expires_on TEXT,
    note TEXT
);
CREATE UNIQUE INDEX requests_one_open ON requests(patient_id, donor_id, kind) WHERE state = 'open';

CREATE TABLE workup_milestones (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES requests(id),
    milestone TEXT NOT NULL CHECK (milestone IN ('information_session', 'medical_exam', 'infectious_markers', 'clearance', 'gcsf_start', 'collection')),
    on_date TEXT NOT NULL,
    ok BOOLEAN,
    note TEXT,
    UNIQUE (request_id, milestone)
);

CREATE TABLE donations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    donor_id INTEGER NOT NULL REFERENCES donors(id),
    patient_id INTEGER REFERENCES patients(id),
    product TEXT NOT NULL CHECK (product IN ('PBSC', 'BM', 'DLI')),
    donated_on TEXT NOT NULL,
    station_code TEXT REFERENCES stations(code),
    recorded_at TEXT NOT NULL
);

CREATE TABLE followups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    donation_id INTEGER NOT NULL REFERENCES donations(id),
    donor_id INTEGER NOT NULL REFERENCES donors(id),
    label TEXT NOT NULL,
    due_on TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'due' CHECK (state IN ('due', 'done', 'missed')),
    done_on TEXT,
    outcome TEXT,
    adverse_event TEXT,
    UNIQUE (donation_id, label)
);
CREATE INDEX followups_due ON followups(state, due_on);

CREATE TABLE organ_registrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    national_id TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    organs TEXT NOT NULL DEFAULT '',
    tissues TEXT NOT NULL DEFAULT '',
    whole_body BOOLEAN NOT NULL DEFAULT FALSE,
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked')),
    registered_at TEXT NOT NULL,
    changed_at TEXT,
    revoked_at TEXT
);
CREATE UNIQUE INDEX organ_one_active ON organ_registrations(national_id) WHERE state = 'active';

CREATE TABLE organ_cases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    registration_id INTEGER REFERENCES organ_registrations(id),
    died_on TEXT NOT NULL,
    family_consent TEXT NOT NULL,
    witness TEXT NOT NULL,
    outcome TEXT,
    recorded_at TEXT NOT NULL
);

-- Append-only: every change and every identity read.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT,
    reason TEXT,
    request_id TEXT
);
CREATE INDEX audit_entity ON audit_log(entity, entity_id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
