-- PostgreSQL spelling of ../0002_intents.sql (same tables and columns).
-- A write mattersync is about to make: 'add' or 'remove'. Set before the API call and
-- cleared when its outcome is recorded, so a run killed in between can be resolved against
-- what Mattermost shows on the next run. Rows that exist only because of an intended add
-- have state 'intended' and are not facts yet.
ALTER TABLE memberships ADD COLUMN intent TEXT;
