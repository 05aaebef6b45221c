-- A change cycle of `serve` reads the memberships of the few teams and channels it plans, by
-- id (`Ledger::facts_for`), and counts what its run did (`Ledger::action_counts`); without
-- these indexes each would scan every membership or every event.
CREATE INDEX memberships_scope ON memberships(scope_id);
CREATE INDEX events_run ON events(run_id);
