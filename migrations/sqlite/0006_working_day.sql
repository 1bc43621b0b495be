-- A branch's working day (issue 16): holidays for working-day reservations, the daily
-- job's runs, search runs with their diffs, warnings recorded on a case, and samples
-- taken for a request (a confirmatory-typing sample needs that consent).

-- Days that are not working days besides Saturdays and Sundays (YYYY-MM-DD).
CREATE TABLE holidays (
    day TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

-- One row per job and local date: inserting it claims the run, so a day's job runs once
-- even with several servers.
CREATE TABLE job_runs (
    job TEXT NOT NULL,
    run_on TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    counts TEXT,
    PRIMARY KEY (job, run_on)
);

-- The local date a search was last suspended (SUS stops after 42 days) and whether its
-- last run found donors that were not in the run before.
ALTER TABLE searches ADD COLUMN suspended_on TEXT;
ALTER TABLE searches ADD COLUMN has_new BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX searches_state ON searches(state, id);
CREATE INDEX searches_patient ON searches(patient_id, id);

-- Every run of a search after its first, with what changed (JSON arrays of donor ids).
CREATE TABLE search_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    search_id INTEGER NOT NULL REFERENCES searches(id),
    run_at TEXT NOT NULL,
    run_by TEXT NOT NULL,
    total INTEGER NOT NULL,
    new_donors TEXT NOT NULL,
    changed_donors TEXT NOT NULL,
    gone_donors TEXT NOT NULL
);
CREATE INDEX search_runs_search ON search_runs(search_id, id);

-- Warnings recorded on a case (e.g. a withdrawal after conditioning started).
CREATE TABLE request_warnings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES requests(id),
    at TEXT NOT NULL,
    warning TEXT NOT NULL
);
CREATE INDEX request_warnings_request ON request_warnings(request_id);

ALTER TABLE samples ADD COLUMN request_id INTEGER REFERENCES requests(id);
CREATE INDEX samples_state ON samples(station_code, state, id);
CREATE INDEX requests_kind_state ON requests(kind, state, id);
CREATE INDEX requests_donor ON requests(donor_id, state);
CREATE INDEX donations_donor ON donations(donor_id, product);
CREATE INDEX samples_donor ON samples(donor_id);
CREATE INDEX organ_registrations_station ON organ_registrations(station_code, id);
