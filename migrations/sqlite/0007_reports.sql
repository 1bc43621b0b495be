-- What the Red Cross reports (issue 17): campaigns, contact attempts and retention, donor
-- care, typed death-donation cases, and registrations with their station, region,
-- ethnicity, channel and local dates.

-- Events donors, samples and registrations come from (World Marrow Donor Day, 清明, a
-- school drive, a collective registration…), each held by one station.
CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('world_marrow_donor_day', 'qingming', 'school_drive', 'collective_registration', 'blood_drive', 'other')),
    held_on TEXT NOT NULL,
    station_code TEXT NOT NULL REFERENCES stations(code),
    place TEXT NOT NULL,
    note TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX campaigns_held ON campaigns(held_on, id);
ALTER TABLE donors ADD COLUMN campaign_id INTEGER REFERENCES campaigns(id);
ALTER TABLE samples ADD COLUMN campaign_id INTEGER REFERENCES campaigns(id);
ALTER TABLE organ_registrations ADD COLUMN campaign_id INTEGER REFERENCES campaigns(id);
-- Each campaign's yield counts what links to it.
CREATE INDEX donors_campaign ON donors(campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX samples_campaign ON samples(campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX organ_registrations_campaign ON organ_registrations(campaign_id) WHERE campaign_id IS NOT NULL;

-- Retention: every attempt to reach a donor. `last_contact_on` is the local date of the
-- donor's last successful contact (enrolment counts as one); `failed_contacts` the failed
-- attempts since, which past the configured number make the donor TU/UC.
CREATE TABLE contact_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    donor_id INTEGER NOT NULL REFERENCES donors(id),
    attempted_on TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('phone', 'sms', 'wechat', 'email', 'visit')),
    outcome TEXT NOT NULL CHECK (outcome IN ('reached', 'no_answer', 'wrong_number', 'declined')),
    by_name TEXT NOT NULL,
    note TEXT,
    recorded_at TEXT NOT NULL
);
CREATE INDEX contact_attempts_donor ON contact_attempts(donor_id, attempted_on);
CREATE INDEX contact_attempts_on ON contact_attempts(attempted_on);
ALTER TABLE donors ADD COLUMN last_contact_on TEXT;
ALTER TABLE donors ADD COLUMN failed_contacts INTEGER NOT NULL DEFAULT 0;

-- Death-donation cases, typed: organ, body (遗体) or cornea (眼角膜); open, then completed
-- (what was recovered, recipients helped) or cancelled. Family consent is structured (who:
-- spouse, adult children, parents; in writing; the date); `family_consent` keeps its note.
-- Cases recorded before this migration have no kind and no structured consent.
ALTER TABLE organ_cases ADD COLUMN kind TEXT CHECK (kind IN ('organ', 'body', 'cornea'));
ALTER TABLE organ_cases ADD COLUMN state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'completed', 'cancelled'));
ALTER TABLE organ_cases ADD COLUMN station_code TEXT REFERENCES stations(code);
ALTER TABLE organ_cases ADD COLUMN region TEXT;
ALTER TABLE organ_cases ADD COLUMN opo TEXT;
ALTER TABLE organ_cases ADD COLUMN consent_by TEXT;
ALTER TABLE organ_cases ADD COLUMN consent_in_writing BOOLEAN;
ALTER TABLE organ_cases ADD COLUMN consent_on TEXT;
ALTER TABLE organ_cases ADD COLUMN recovered TEXT;
ALTER TABLE organ_cases ADD COLUMN recipients_helped INTEGER;
ALTER TABLE organ_cases ADD COLUMN completed_on TEXT;
ALTER TABLE organ_cases ADD COLUMN cancel_reason TEXT;
CREATE INDEX organ_cases_completed ON organ_cases(state, completed_on);

-- Every Red Cross witness of a case (the old `witness` column keeps the first).
CREATE TABLE organ_case_witnesses (
    case_id INTEGER NOT NULL REFERENCES organ_cases(id),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (case_id, position)
);
INSERT INTO organ_case_witnesses (case_id, position, name) SELECT id, 1, witness FROM organ_cases;

-- Registrations: region, optional ethnicity, channel (online, paper, drive), and the local
-- dates they were registered and revoked (a paper form's own date).
ALTER TABLE organ_registrations ADD COLUMN region TEXT NOT NULL DEFAULT '';
ALTER TABLE organ_registrations ADD COLUMN ethnicity TEXT;
ALTER TABLE organ_registrations ADD COLUMN channel TEXT NOT NULL DEFAULT 'online' CHECK (channel IN ('online', 'paper', 'drive'));
ALTER TABLE organ_registrations ADD COLUMN registered_on TEXT;
ALTER TABLE organ_registrations ADD COLUMN revoked_on TEXT;
UPDATE organ_registrations SET registered_on = SUBSTR(registered_at, 1, 10), revoked_on = SUBSTR(revoked_at, 1, 10);
CREATE INDEX organ_registrations_on ON organ_registrations(registered_on);

-- Donor care (人道关怀): for a donor, or a deceased donor's family (a donor's or a
-- death-donation case's). Amounts in fen (CNY / 100).
CREATE TABLE care_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    donor_id INTEGER REFERENCES donors(id),
    organ_case_id INTEGER REFERENCES organ_cases(id),
    for_family BOOLEAN NOT NULL DEFAULT FALSE,
    kind TEXT NOT NULL CHECK (kind IN ('visit', 'condolence', 'aid', 'benefit', 'honour', 'memorial')),
    on_date TEXT NOT NULL,
    amount_fen INTEGER,
    fund TEXT,
    title TEXT,
    awarding_body TEXT,
    memorial_park TEXT,
    plot TEXT,
    commemoration TEXT,
    note TEXT,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    CHECK ((donor_id IS NULL) <> (organ_case_id IS NULL))
);
CREATE INDEX care_records_donor ON care_records(donor_id, on_date);
CREATE INDEX care_records_case ON care_records(organ_case_id, on_date);
CREATE INDEX care_records_on ON care_records(on_date);

CREATE INDEX consents_scope_given ON consents(scope, given_at);
CREATE INDEX donations_on ON donations(donated_on);
CREATE INDEX requests_opened ON requests(kind, opened_at);
CREATE INDEX samples_collected ON samples(collected_at);
