-- PostgreSQL spelling of ../0003_link_identity.sql (same tables and columns).
-- The stable ids a link's names resolved to when mattersync first saw them: the group's
-- directory id (ipaUniqueID / nsUniqueId / entryUUID) and the team's and channel's
-- Mattermost ids. Keyed by the link as it is declared (config file, `link`, convention), so
-- a rename on either side is followed by id, and a new group or channel that takes an old
-- name never inherits the link. `*_seen` are the names last seen for those ids.
CREATE TABLE link_identity (
    group_name   TEXT NOT NULL,
    target       TEXT NOT NULL,
    group_id     TEXT,
    team_id      TEXT,
    channel_id   TEXT,
    group_seen   TEXT,
    target_seen  TEXT,
    first_seen   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (group_name, target)
);
