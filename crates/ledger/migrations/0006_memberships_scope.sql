-- A change cycle of `serve` reads the memberships of the few teams and channels it plans, by
-- id (`Ledger::facts_for`); without this index that would scan every membership.
CREATE INDEX memberships_scope ON memberships(scope_id);
