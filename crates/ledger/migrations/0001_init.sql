-- Runs: one row per plan or apply.
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    fingerprint  TEXT,
    outcome      TEXT,
    actions_ok   INTEGER NOT NULL DEFAULT 0,
    actions_failed INTEGER NOT NULL DEFAULT 0,
    api_calls    INTEGER NOT NULL DEFAULT 0,
    detail       TEXT
);

-- The audit trail: every change mattersync made or tried, one row per user.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL REFERENCES runs(id),
    at          TEXT NOT NULL,
    action      TEXT NOT NULL,
    scope_kind  TEXT NOT NULL,
    scope_id    TEXT NOT NULL,
    scope       TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    username    TEXT NOT NULL,
    groups      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT
);
CREATE INDEX events_user ON events(user_id);
CREATE INDEX events_username ON events(username);
CREATE INDEX events_scope ON events(scope);

-- Memberships mattersync knows of, with who created them.
CREATE TABLE memberships (
    scope_kind  TEXT NOT NULL,
    scope_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    origin      TEXT NOT NULL,
    state       TEXT NOT NULL,
    groups      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    PRIMARY KEY (scope_kind, scope_id, user_id)
);

-- Channel admin roles mattersync granted.
CREATE TABLE admin_grants (
    channel_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    groups      TEXT NOT NULL,
    granted_at  TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

-- Links made with `mattersync link` or the slash command.
CREATE TABLE links (
    group_name  TEXT NOT NULL,
    target      TEXT NOT NULL,
    mode        TEXT NOT NULL,
    admins      TEXT NOT NULL,
    readd       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (group_name, target)
);

-- Sync cursors (syncrepl cookies and the like).
CREATE TABLE cursors (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    updated_at  TEXT NOT NULL
);
