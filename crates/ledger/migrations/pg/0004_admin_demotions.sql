-- PostgreSQL spelling of ../0004_admin_demotions.sql (same tables and columns).
-- A channel admin role mattersync granted and someone took back by hand: kept, marked, so
-- that it is not granted again (unless a link says readd = "always"), the way a hand
-- removal is respected.
ALTER TABLE admin_grants ADD COLUMN demoted BIGINT NOT NULL DEFAULT 0;
