-- Who did it: every run, and so every audit event of it, names its actor —
-- `cli:<unix user>`, `slash:<mattermost user>`, `approval:<approver>`, `serve:<host>/<pid>`.
-- Runs recorded before this migration have none (shown as `-`).
ALTER TABLE runs ADD COLUMN actor TEXT;
