-- PostgreSQL's 0004 stores search runs uncompressed; SQLite does not compress text, so
-- nothing changes here (kept so both backends share migration numbers).
SELECT 1;
