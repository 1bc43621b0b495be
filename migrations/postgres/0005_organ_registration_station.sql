-- Each organ, tissue or body registration belongs to the station that took it: that
-- station alone (or an admin) may change or revoke it. Registrations made before this
-- migration have none and only an admin may change them.
ALTER TABLE organ_registrations ADD COLUMN station_code TEXT REFERENCES stations(code);
