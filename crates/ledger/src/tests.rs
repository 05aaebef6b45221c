use super::*;
use mattersync_core::{Mode, PlanMember, UserRef};
use rusqlite::params;

fn member(id: &str) -> PlanMember {
    PlanMember {
        id: id.to_string(),
        username: format!("n-{id}"),
        groups: vec!["mm_rl_infra".to_string()],
    }
}

fn user(id: &str) -> UserRef {
    UserRef {
        id: id.to_string(),
        username: format!("n-{id}"),
    }
}

fn ok(id: &str) -> UserOutcome {
    UserOutcome {
        user_id: id.to_string(),
        result: Ok(()),
    }
}

fn adds_become_owned_and_failures_are_audited_but_not_owned(mut l: Ledger) {
    let run = l.begin_run("apply", Some("fp"), "test").expect("run");
    let add = Action::AddChannelMembers {
        channel_id: "c1".into(),
        channel: "rl/infra".into(),
        users: vec![member("a"), member("b")],
    };
    let outcomes = [
        ok("a"),
        UserOutcome {
            user_id: "b".into(),
            result: Err("403 forbidden".into()),
        },
    ];
    l.record(&run, &add, &outcomes).expect("record");
    let facts = l.facts().expect("facts");
    let c1 = facts.channels.get("c1").expect("channel c1");
    assert_eq!(
        c1.get("a"),
        Some(&Record {
            origin: Origin::Added,
            state: RecordState::Present
        })
    );
    assert!(!c1.contains_key("b"));
    let failed = l
        .events(&AuditQuery {
            failed_only: true,
            ..Default::default()
        })
        .expect("events");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].username, "n-b");
    assert_eq!(failed[0].detail.as_deref(), Some("403 forbidden"));
    assert_eq!(failed[0].groups, ["mm_rl_infra"]);
}

fn removal_departure_and_preexisting_change_state_not_origin(mut l: Ledger) {
    let run = l.begin_run("apply", None, "test").expect("run");
    l.record(
        &run,
        &Action::AddChannelMembers {
            channel_id: "c1".into(),
            channel: "rl/infra".into(),
            users: vec![member("a"), member("b")],
        },
        &[ok("a"), ok("b")],
    )
    .expect("add");
    l.record(
        &run,
        &Action::RemoveChannelMember {
            channel_id: "c1".into(),
            channel: "rl/infra".into(),
            user: user("a"),
            mode: Mode::Sync,
        },
        &[ok("a")],
    )
    .expect("remove");
    l.record(
        &run,
        &Action::RecordDeparted {
            scope_id: "c1".into(),
            scope: "rl/infra".into(),
            users: vec![user("b")],
        },
        &[],
    )
    .expect("departed");
    l.record(
        &run,
        &Action::RecordPreexisting {
            scope_id: "t1".into(),
            scope: "rl".into(),
            users: vec![user("c")],
        },
        &[],
    )
    .expect("preexisting");
    let f = l.facts().expect("facts");
    let c1 = &f.channels["c1"];
    assert_eq!(c1["a"].state, RecordState::Removed);
    assert_eq!(c1["a"].origin, Origin::Added);
    assert_eq!(c1["b"].state, RecordState::Departed);
    assert_eq!(
        f.teams["t1"]["c"],
        Record {
            origin: Origin::Preexisting,
            state: RecordState::Present
        }
    );
}

fn admin_grants_are_kept_and_taken_back(mut l: Ledger) {
    let run = l.begin_run("apply", None, "test").expect("run");
    let set = |admin| Action::SetChannelAdmin {
        channel_id: "c1".into(),
        channel: "rl/infra".into(),
        user: user("m"),
        admin,
        groups: vec!["mm_rl_infra".into()],
    };
    l.record(&run, &set(true), &[ok("m")]).expect("grant");
    assert!(l.facts().expect("facts").channel_admins["c1"].contains("m"));
    l.record(&run, &set(false), &[ok("m")]).expect("revoke");
    assert!(!l.facts().expect("facts").channel_admins.contains_key("c1"));
}

fn links_round_trip_and_report_change(l: Ledger) {
    let link = Link {
        group: "mm_rl_infra".into(),
        target: "rocky-linux/infra".parse().expect("target"),
        mode: Mode::Exclusive,
        admins: "managers".parse().expect("admins"),
        readd: mattersync_core::Readd::Always,
        source: mattersync_core::LinkSource::Ledger,
    };
    assert!(l.put_link(&link, "test").expect("put"));
    assert!(!l.put_link(&link, "test").expect("put again"));
    assert_eq!(l.links().expect("links"), vec![link.clone()]);
    assert!(l.remove_link(&link.group, &link.target).expect("remove"));
    assert!(!l
        .remove_link(&link.group, &link.target)
        .expect("remove again"));
    assert!(l.links().expect("links").is_empty());
}

/// Written through one connection, read back through another (`open` makes each): the
/// cursor (binary, with bytes no text encoding keeps), the run, the schema version.
fn runs_and_cursors_persist(open: impl Fn() -> Ledger) -> Ledger {
    let cookie: &[u8] = b"\x00cookie\xff";
    {
        let l = open();
        l.set_cursor("syncrepl", Some(cookie)).expect("cursor");
        let run = l.begin_run("apply", Some("abc"), "test").expect("run");
        l.finish_run(
            &run,
            &RunEnd {
                outcome: "ok".into(),
                actions_ok: 3,
                ..Default::default()
            },
        )
        .expect("finish");
    }
    let l = open();
    assert_eq!(l.cursor("syncrepl").expect("cursor"), Some(cookie.to_vec()));
    let runs = l.runs(10).expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].outcome.as_deref(), runs[0].actions_ok),
        (Some("ok"), 3)
    );
    assert_eq!(
        l.schema_version().expect("version"),
        MIGRATIONS.len() as i64
    );
    l
}

#[test]
fn cursors_and_runs_persist_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let l = runs_and_cursors_persist(|| Ledger::open(&path).expect("open"));
    assert_eq!(l.engine(), Engine::Sqlite);
    l.set_cursor("syncrepl", None).expect("clear");
    assert_eq!(l.cursor("syncrepl").expect("cursor"), None);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    {
        let c = Connection::open(&path).expect("sqlite");
        c.pragma_update(None, "user_version", 99).expect("pragma");
    }
    let err = Ledger::open(&path).err().expect("refused");
    assert!(
        matches!(err, LedgerError::TooNew { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn the_run_lock_is_exclusive_and_released_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    let first = RunLock::acquire(&path).expect("first lock");
    let err = RunLock::acquire(&path).expect_err("second lock must fail");
    let msg = err.to_string();
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    assert!(msg.contains("runs never overlap"), "{msg}");
    // The holder's command and start time, to the second.
    assert!(msg.contains(", `") && msg.contains(", since 20"), "{msg}");
    assert!(msg.contains("wait for it to finish"), "{msg}");
    match &err {
        crate::LockError::Held { holder, .. } => {
            assert!(!holder.is_service());
            let started = holder.started.as_deref().expect("started");
            assert!(
                started.ends_with('Z') && !started.contains('.'),
                "{started}"
            );
        }
        e => panic!("{e}"),
    }
    drop(first);
    RunLock::acquire(&path).expect("lock after release");
}

fn add_action(ids: &[&str]) -> Action {
    Action::AddChannelMembers {
        channel_id: "c1".into(),
        channel: "rl/infra".into(),
        users: ids.iter().map(|i| member(i)).collect(),
    }
}

fn an_intended_add_is_not_a_fact_until_it_is_recorded_or_resolved(mut l: Ledger) {
    let run = l.begin_run("apply", None, "test").expect("run");
    l.intend(&run, &add_action(&["a", "b"])).expect("intend");
    assert!(l.facts().expect("facts").channels.is_empty());
    // A run killed here: the next run sees a member in Mattermost, b not.
    let next = l.begin_run("apply", None, "test").expect("run");
    let n = l
        .resolve_intents(&next, |kind, scope, user| {
            (kind == mattersync_core::ScopeKind::Channel && scope == "c1").then_some(user == "a")
        })
        .expect("resolve");
    assert_eq!(n, 2);
    let f = l.facts().expect("facts");
    assert_eq!(
        f.channels["c1"].get("a"),
        Some(&Record {
            origin: Origin::Added,
            state: RecordState::Present
        })
    );
    assert!(!f.channels["c1"].contains_key("b"));
    // Nothing is left to settle.
    assert_eq!(
        l.resolve_intents(&next, |_, _, _| Some(true))
            .expect("again"),
        0
    );
}

fn an_intended_removal_that_happened_becomes_a_removal_and_failures_are_settled_next_run(
    mut l: Ledger,
) {
    let run = l.begin_run("apply", None, "test").expect("run");
    l.record(&run, &add_action(&["a", "b"]), &[ok("a"), ok("b")])
        .expect("add");
    l.intend(&run, &remove("a")).expect("intend a");
    l.intend(&run, &remove("b")).expect("intend b");
    // b's removal failed and was recorded as such; it stays present until the next run
    // looks.
    l.record(&run, &remove("b"), &[failed("b", "HTTP 500")])
        .expect("record failure");
    // An intended add that failed is not a fact.
    l.intend(&run, &add_action(&["c"])).expect("intend c");
    l.record(&run, &add_action(&["c"]), &[failed("c", "HTTP 403")])
        .expect("record c");
    let f = l.facts().expect("facts");
    assert_eq!(f.channels["c1"]["b"].state, RecordState::Present);
    assert!(!f.channels["c1"].contains_key("c"));
    // The next run sees: a gone, b still there (its removal really failed), c not there
    // (its add really failed).
    let n = l
        .resolve_intents(&run, |_, _, user| Some(user == "b"))
        .expect("resolve");
    assert_eq!(n, 3, "a's, b's and c's intents");
    let f = l.facts().expect("facts");
    assert_eq!(f.channels["c1"]["a"].state, RecordState::Removed);
    assert_eq!(f.channels["c1"]["b"].state, RecordState::Present);
    assert!(!f.channels["c1"].contains_key("c"));
    assert_eq!(
        l.resolve_intents(&run, |_, _, _| Some(true))
            .expect("again"),
        0
    );
}

fn remove(id: &str) -> Action {
    Action::RemoveChannelMember {
        channel_id: "c1".into(),
        channel: "rl/infra".into(),
        user: user(id),
        mode: Mode::Sync,
    }
}

fn failed(id: &str, why: &str) -> UserOutcome {
    UserOutcome {
        user_id: id.to_string(),
        result: Err(why.to_string()),
    }
}

fn a_failed_write_whose_answer_was_lost_is_settled_from_what_mattermost_shows(mut l: Ledger) {
    let run = l.begin_run("apply", None, "test").expect("run");
    l.record(&run, &add_action(&["b"]), &[ok("b")])
        .expect("add b");
    // The add of c and the removal of b reached Mattermost, but their answers were lost.
    l.intend(&run, &add_action(&["c"])).expect("intend c");
    l.record(&run, &add_action(&["c"]), &[failed("c", "timed out")])
        .expect("record c");
    l.intend(&run, &remove("b")).expect("intend b");
    l.record(&run, &remove("b"), &[failed("b", "connection reset")])
        .expect("record b");
    let next = l.begin_run("apply", None, "test").expect("run");
    let n = l
        .resolve_intents(&next, |_, _, user| Some(user == "c"))
        .expect("resolve");
    assert_eq!(n, 2);
    let f = l.facts().expect("facts");
    assert_eq!(
        f.channels["c1"]["c"],
        Record {
            origin: Origin::Added,
            state: RecordState::Present
        },
        "mattersync added c"
    );
    assert_eq!(
        f.channels["c1"]["b"].state,
        RecordState::Removed,
        "mattersync removed b; b did not leave on their own"
    );
    // Both writes are in the audit trail, as settled, under a run of their own.
    let settled: Vec<(String, String, String)> = l
        .events(&AuditQuery::default())
        .expect("events")
        .into_iter()
        .filter(|e| e.action.starts_with("settle_"))
        .map(|e| (e.action, e.user_id, e.actor))
        .collect();
    assert_eq!(settled.len(), 2, "{settled:?}");
    let mut got: Vec<(&str, &str)> = settled
        .iter()
        .map(|(a, u, _)| (a.as_str(), u.as_str()))
        .collect();
    got.sort();
    assert_eq!(got, [("settle_add", "c"), ("settle_remove", "b")]);
    assert!(
        settled.iter().all(|(_, _, actor)| actor != "-"),
        "{settled:?}"
    );
}

fn a_plan_made_without_settling_still_keeps_ownership(mut l: Ledger) {
    // A caller that plans without resolve_intents sees c in the channel with no record and
    // b gone while the ledger says present: the planner asks to record c as pre-existing and
    // b as departed. The unsettled intents say otherwise, and win.
    let run = l.begin_run("apply", None, "test").expect("run");
    l.record(&run, &add_action(&["b"]), &[ok("b")])
        .expect("add b");
    l.intend(&run, &add_action(&["c"])).expect("intend c");
    l.record(&run, &add_action(&["c"]), &[failed("c", "timed out")])
        .expect("record c");
    l.intend(&run, &remove("b")).expect("intend b");
    l.record(&run, &remove("b"), &[failed("b", "connection reset")])
        .expect("record b");
    l.record(
        &run,
        &Action::RecordPreexisting {
            scope_id: "c1".into(),
            scope: "rl/infra".into(),
            users: vec![user("c")],
        },
        &[],
    )
    .expect("preexisting");
    l.record(
        &run,
        &Action::RecordDeparted {
            scope_id: "c1".into(),
            scope: "rl/infra".into(),
            users: vec![user("b")],
        },
        &[],
    )
    .expect("departed");
    let f = l.facts().expect("facts");
    assert_eq!(f.channels["c1"]["c"].origin, Origin::Added);
    assert_eq!(f.channels["c1"]["b"].state, RecordState::Removed);
    // And a plain pre-existing member is still recorded as such.
    l.record(
        &run,
        &Action::RecordPreexisting {
            scope_id: "c1".into(),
            scope: "rl/infra".into(),
            users: vec![user("d")],
        },
        &[],
    )
    .expect("preexisting d");
    assert_eq!(
        l.facts().expect("facts").channels["c1"]["d"].origin,
        Origin::Preexisting
    );
    assert_eq!(
        l.resolve_intents(&run, |_, _, _| Some(true)).expect("none"),
        0
    );
}

#[test]
fn a_read_only_ledger_creates_nothing_writes_nothing_and_needs_the_current_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    // Missing: reads as empty, and is not created.
    let ro = Ledger::open_read_only(&path).expect("empty");
    assert!(ro.links().expect("links").is_empty());
    assert!(!path.exists());
    drop(ro);
    let rw = Ledger::open(&path).expect("create");
    let run = rw.begin_run("apply", None, "test").expect("run");
    drop(rw);
    let ro = Ledger::open_read_only(&path).expect("open");
    assert_eq!(ro.runs(10).expect("runs").len(), 1);
    assert!(
        ro.begin_run("apply", None, "test").is_err(),
        "SQLite refuses the write"
    );
    assert!(ro.finish_run(&run, &RunEnd::default()).is_err());
    drop(ro);
    // An older schema is left for a lock holder to upgrade.
    let conn = rusqlite::Connection::open(&path).expect("raw");
    conn.pragma_update(None, "user_version", 1)
        .expect("downgrade");
    drop(conn);
    let e = Ledger::open_read_only(&path).err().expect("too old");
    assert!(e.to_string().contains("older"), "{e}");
}

/// A ledger made by the mattersync before links by id (schema 2) opens with this one: the
/// migrations add `link_identity` (and what came later) and keep every ownership record,
/// intent, link and admin grant exactly as it was.
#[test]
fn a_schema_2_ledger_is_upgraded_and_keeps_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.db");
    {
        let c = Connection::open(&path).expect("sqlite");
        c.execute_batch(include_str!("../migrations/0001_init.sql"))
            .expect("schema 1");
        c.execute_batch(include_str!("../migrations/0002_intents.sql"))
            .expect("schema 2");
        c.pragma_update(None, "user_version", 2).expect("pragma");
        c.execute(
            "INSERT INTO runs (id, kind, started_at) VALUES ('r1', 'apply', '2026-01-01T00:00:00Z')",
            [],
        )
        .expect("run");
        // scope kind, scope id, user, origin, state, intent
        type MembershipRow<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, Option<&'a str>);
        let rows: &[MembershipRow<'_>] = &[
            ("channel", "c1", "a", "added", "present", None),
            ("channel", "c1", "b", "added", "departed", None),
            ("channel", "c1", "c", "added", "removed", None),
            ("channel", "c1", "d", "preexisting", "present", None),
            ("channel", "c2", "e", "preexisting", "departed", None),
            ("channel", "c2", "f", "added", "present", Some("remove")),
            ("team", "t1", "a", "added", "present", None),
            ("team", "t1", "d", "preexisting", "present", None),
        ];
        for (kind, scope, user, origin, state, intent) in rows {
            c.execute(
                "INSERT INTO memberships (scope_kind, scope_id, user_id, origin, state, groups, updated_at, run_id, intent)
                 VALUES (?1, ?2, ?3, ?4, ?5, '[\"mm_rl_infra\"]', '2026-01-01T00:00:00Z', 'r1', ?6)",
                params![kind, scope, user, origin, state, intent],
            )
            .expect("membership");
        }
        c.execute(
            "INSERT INTO links (group_name, target, mode, admins, readd, created_at, created_by)
             VALUES ('mm_rl_infra', 'rocky-linux/infra', 'exclusive', 'managers', 'always', '2026-01-01T00:00:00Z', 'alice')",
            [],
        )
        .expect("link");
        c.execute(
            "INSERT INTO admin_grants (channel_id, user_id, groups, granted_at, run_id)
             VALUES ('c1', 'a', '[\"mm_rl_infra\"]', '2026-01-01T00:00:00Z', 'r1')",
            [],
        )
        .expect("grant");
    }

    // Upgraded through migration 3 (link_identity) and every later one.
    let l = Ledger::open(&path).expect("open a schema-2 ledger");
    assert!(MIGRATIONS.len() >= 3, "this test is about migration 3");
    assert_eq!(
        l.schema_version().expect("version"),
        MIGRATIONS.len() as i64
    );

    let rec = |origin, state| Record { origin, state };
    let facts = l.facts().expect("facts");
    let c1: Vec<(&str, Record)> = facts.channels["c1"]
        .iter()
        .map(|(u, r)| (u.as_str(), *r))
        .collect();
    assert_eq!(
        c1,
        vec![
            ("a", rec(Origin::Added, RecordState::Present)),
            ("b", rec(Origin::Added, RecordState::Departed)),
            ("c", rec(Origin::Added, RecordState::Removed)),
            ("d", rec(Origin::Preexisting, RecordState::Present)),
        ]
    );
    let c2: Vec<(&str, Record)> = facts.channels["c2"]
        .iter()
        .map(|(u, r)| (u.as_str(), *r))
        .collect();
    assert_eq!(
        c2,
        vec![
            ("e", rec(Origin::Preexisting, RecordState::Departed)),
            ("f", rec(Origin::Added, RecordState::Present)),
        ]
    );
    assert_eq!(facts.channels.len(), 2);
    let t1: Vec<(&str, Record)> = facts.teams["t1"]
        .iter()
        .map(|(u, r)| (u.as_str(), *r))
        .collect();
    assert_eq!(
        t1,
        vec![
            ("a", rec(Origin::Added, RecordState::Present)),
            ("d", rec(Origin::Preexisting, RecordState::Present)),
        ]
    );
    assert_eq!(facts.teams.len(), 1);
    assert_eq!(facts.channel_admins.len(), 1);
    assert_eq!(
        facts.channel_admins["c1"].iter().collect::<Vec<_>>(),
        vec!["a"]
    );
    // A grant made before hand demotions were recorded is a grant, not a demotion.
    assert!(facts.channel_admins_demoted.is_empty());

    assert_eq!(
        l.intents().expect("intents"),
        vec![Intent {
            scope_kind: ScopeKind::Channel,
            scope_id: "c2".into(),
            user_id: "f".into(),
            intent: IntentKind::Remove,
            placeholder: false,
        }]
    );
    assert_eq!(
        l.links().expect("links"),
        vec![Link {
            group: "mm_rl_infra".into(),
            target: "rocky-linux/infra".parse().expect("target"),
            mode: Mode::Exclusive,
            admins: "managers".parse().expect("admins"),
            readd: mattersync_core::Readd::Always,
            source: mattersync_core::LinkSource::Ledger,
        }]
    );
    // The new table starts empty: ids are learned on the next run that holds the lock.
    assert!(l.identities().expect("identities").is_empty());
    // And the upgraded ledger takes new records as before.
    let run = l
        .begin_run("apply", None, "test")
        .expect("run after the upgrade");
    assert!(!run.is_empty());
    drop(l);
    let again = Ledger::open(&path).expect("reopen");
    assert_eq!(
        again.schema_version().expect("version"),
        MIGRATIONS.len() as i64
    );
    assert_eq!(again.facts().expect("facts"), facts);
}

fn every_event_names_its_actor_and_notes_need_no_user(mut l: Ledger) {
    let run = l
        .begin_run("apply", None, "approval:cli:neil")
        .expect("run");
    let add = Action::AddChannelMembers {
        channel_id: "c1".into(),
        channel: "rl/infra".into(),
        users: vec![member("a")],
    };
    l.record(&run, &add, &[ok("a")]).expect("record");
    l.note(
        "approval:api",
        "approve",
        "rl/infra",
        "refused",
        "fingerprint 0123 is not what is held now",
    )
    .expect("note");
    let events = l.events(&AuditQuery::default()).expect("events");
    let got: Vec<(&str, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.actor.as_str(),
                e.action.as_str(),
                e.username.as_str(),
                e.outcome.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("approval:api", "approve", "", "refused"),
            ("approval:cli:neil", "add_channel_members", "n-a", "ok"),
        ]
    );
    let runs = l.runs(10).expect("runs");
    assert_eq!(runs[0].kind, "approve");
    assert_eq!(runs[0].outcome.as_deref(), Some("refused"));
    assert_eq!(runs[1].actor.as_deref(), Some("approval:cli:neil"));
    assert_eq!(
        l.schema_version().expect("version"),
        MIGRATIONS.len() as i64
    );
}

/// A fresh PostgreSQL ledger, in a schema of its own, on the test server
/// (`MATTERSYNC_LEDGER_PG_URL`, started by `scripts/test.sh`).
pub(crate) fn pg_target() -> PgTarget {
    let url = std::env::var("MATTERSYNC_LEDGER_PG_URL").expect(
        "MATTERSYNC_LEDGER_PG_URL is not set: scripts/test.sh starts the ledger's PostgreSQL",
    );
    let password = std::env::var("MATTERSYNC_LEDGER_PG_PASSWORD_FILE")
        .ok()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|p| p.trim().to_string());
    let mut target = PgTarget::new(&url);
    target.password = password;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = Db::Postgres(
        target
            .connect()
            .expect("connect to the ledger's PostgreSQL"),
    );
    admin
        .batch(&format!("CREATE SCHEMA {schema}"))
        .expect("create a schema");
    target.schema = Some(schema);
    target
}

fn facts_of_some_scopes_are_those_of_all_facts_for_them(mut l: Ledger) {
    let run = l.begin_run("apply", None, "test").expect("run");
    for (scope, users) in [("c1", ["a", "b"]), ("c2", ["a", "c"]), ("c3", ["d", "e"])] {
        l.record(
            &run,
            &Action::AddChannelMembers {
                channel_id: scope.into(),
                channel: format!("rl/{scope}"),
                users: users.iter().map(|u| member(u)).collect(),
            },
            &users.map(ok),
        )
        .expect("add");
    }
    l.record(
        &run,
        &Action::AddTeamMembers {
            team_id: "t1".into(),
            team: "rl".into(),
            users: vec![member("a")],
        },
        &[ok("a")],
    )
    .expect("team");
    let grant = Action::SetChannelAdmin {
        channel_id: "c2".into(),
        channel: "rl/c2".into(),
        user: user("c"),
        admin: true,
        groups: vec!["mm_rl_infra".into()],
    };
    l.record(&run, &grant, &[ok("c")]).expect("grant");
    assert_eq!(
        l.action_counts(&run).expect("counts"),
        vec![
            ("add_channel_members".to_string(), "ok".to_string(), 6),
            ("add_team_members".to_string(), "ok".to_string(), 1),
            ("set_channel_admin".to_string(), "ok".to_string(), 1),
        ]
    );
    assert!(l.action_counts("no-such-run").expect("none").is_empty());
    let all = l.facts().expect("facts");
    let ids: BTreeSet<String> = ["c2", "t1", "nowhere"].map(String::from).into();
    let some = l.facts_for(&ids).expect("facts for");
    assert_eq!(
        some,
        LedgerFacts {
            teams: all.teams.clone(),
            channels: [("c2".to_string(), all.channels["c2"].clone())].into(),
            channel_admins: all.channel_admins.clone(),
            channel_admins_demoted: Default::default(),
        }
    );
    assert_eq!(some.channels["c2"].len(), 2);
    assert_eq!(
        l.facts_for(&BTreeSet::new()).expect("none"),
        LedgerFacts::default()
    );
}

fn pg_ledger() -> Ledger {
    Ledger::open_postgres(&pg_target()).expect("open a PostgreSQL ledger")
}

/// Each named test body runs on a fresh SQLite ledger and on a fresh PostgreSQL one: one
/// behaviour, both engines.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Ledger::open_in_memory().expect("ledger"))
            }
            #[test]
            #[ignore = "needs the real servers (scripts/test.sh runs it)"]
            fn postgres() {
                super::$name(super::pg_ledger())
            }
        }
    )* };
}

on_both_engines!(
    every_event_names_its_actor_and_notes_need_no_user,
    adds_become_owned_and_failures_are_audited_but_not_owned,
    removal_departure_and_preexisting_change_state_not_origin,
    admin_grants_are_kept_and_taken_back,
    facts_of_some_scopes_are_those_of_all_facts_for_them,
    links_round_trip_and_report_change,
    an_intended_add_is_not_a_fact_until_it_is_recorded_or_resolved,
    an_intended_removal_that_happened_becomes_a_removal_and_failures_are_settled_next_run,
    a_failed_write_whose_answer_was_lost_is_settled_from_what_mattermost_shows,
    a_plan_made_without_settling_still_keeps_ownership,
);

#[test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
fn postgres_keeps_runs_and_cursors_across_connections_and_refuses_a_newer_schema() {
    let target = pg_target();
    let l = runs_and_cursors_persist(|| Ledger::open_postgres(&target).expect("open"));
    assert_eq!(l.engine(), Engine::Postgres);
    // Read-only: reads, and the session refuses writes.
    let ro = Ledger::open_postgres_read_only(&target).expect("read only");
    assert_eq!(ro.runs(10).expect("runs").len(), 1);
    let e = ro
        .begin_run("apply", None, "test")
        .expect_err("read-only session");
    assert!(e.to_string().contains("25006"), "{e}");
    // A schema from a newer mattersync is refused.
    l.db.exec("UPDATE mattersync_schema SET version = 99", &[])
        .expect("bump");
    let e = Ledger::open_postgres(&target).err().expect("too new");
    assert!(matches!(e, LedgerError::TooNew { found: 99, .. }), "{e}");
}

#[test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
fn postgres_instances_starting_together_migrate_once() {
    let target = pg_target();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = target.clone();
            std::thread::spawn(move || Ledger::open_postgres(&t).map(|l| l.schema_version()))
        })
        .collect();
    for h in handles {
        let v = h.join().expect("thread").expect("open").expect("version");
        assert_eq!(v, MIGRATIONS.len() as i64);
    }
}

#[test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
fn postgres_tls_is_verified_by_default_and_never_falls_back_to_plaintext() {
    let plain = pg_target();
    let url = std::env::var("MATTERSYNC_LEDGER_PG_TLS_URL").expect("TLS url");
    let ca = std::env::var("MATTERSYNC_LEDGER_PG_CA_FILE").expect("CA file");
    let tls = |ca_file: Option<&str>| PgTarget {
        url: url.clone(),
        ca_file: ca_file.map(std::path::PathBuf::from),
        ..plain.clone()
    };
    // With the test CA: verified, works.
    let l = Ledger::open_postgres(&tls(Some(&ca))).expect("TLS with the CA");
    assert_eq!(
        l.schema_version().expect("version"),
        MIGRATIONS.len() as i64
    );
    let ssl: String =
        l.db.one(
            "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .expect("row")
        .text(0)
        .expect("text");
    assert_eq!(ssl, "true");
    // Without it the test CA is not trusted: refused, not downgraded.
    let e = Ledger::open_postgres(&tls(None)).err().expect("untrusted");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // A password in the URL is refused (it belongs in a file).
    let e = Ledger::open_postgres(&PgTarget::new("postgres://u:secret@127.0.0.1/db"))
        .err()
        .expect("password in url");
    assert!(e.to_string().contains("password_file"), "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
fn a_deposed_leader_cannot_write_and_a_takeover_raises_the_epoch() {
    let target = pg_target();
    let mut a = Ledger::open_postgres(&target).expect("a");
    let mut b = Ledger::open_postgres(&target).expect("b");
    let lead_a = Leadership::try_take(&target, "host-a/1")
        .expect("take")
        .expect("a leads");
    assert!(lead_a.alive());
    assert!(
        Leadership::try_take(&target, "host-b/2")
            .expect("try")
            .is_none(),
        "one leader at a time"
    );
    a.set_fence(lead_a.fence());
    let run = a
        .begin_run("serve", None, "test")
        .expect("a writes while it leads");
    a.intend(&run, &add_action(&["x"])).expect("intent");
    assert_eq!(
        leader(&target)
            .expect("leader")
            .map(|r| (r.epoch, r.holder)),
        Some((lead_a.epoch, "host-a/1".to_string()))
    );
    // A's lock session ends (killed, cut): B takes over with a higher epoch.
    let epoch_a = lead_a.epoch;
    drop(lead_a);
    let lead_b = (0..50)
        .find_map(|_| {
            let got = Leadership::try_take(&target, "host-b/2").expect("try");
            if got.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            got
        })
        .expect("b takes over once a's session is gone");
    assert!(lead_b.epoch > epoch_a);
    b.set_fence(lead_b.fence());
    // A still has its ledger connection, but every write is refused, intents first (so no
    // Mattermost write can follow them).
    let e = a.intend(&run, &add_action(&["y"])).expect_err("fenced");
    assert!(
        matches!(&e, LedgerError::Fenced { mine, current, holder } if *mine == epoch_a && *current == lead_b.epoch && holder == "host-b/2"),
        "{e}"
    );
    assert!(a
        .put_link(
            &Link {
                group: "mm_rl_x".into(),
                target: "rocky-linux/x".parse().expect("target"),
                mode: Mode::Sync,
                admins: mattersync_core::Admins::None,
                readd: mattersync_core::Readd::Never,
                source: mattersync_core::LinkSource::Ledger,
            },
            "cli:a"
        )
        .is_err());
    // B settles what A left and writes.
    assert_eq!(
        b.intents().expect("intents").len(),
        1,
        "a's intent is there to settle"
    );
    b.resolve_intents(&run, |_, _, _| Some(true))
        .expect("settle");
    assert!(b.intents().expect("intents").is_empty());
    let f = b.facts().expect("facts");
    assert_eq!(f.channels["c1"]["x"].origin, Origin::Added);
}

#[test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
fn a_sqlite_ledger_copies_into_an_empty_postgres_one_whole_and_only_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut src = Ledger::open(&dir.path().join("ledger.db")).expect("sqlite");
    let run = src.begin_run("apply", Some("fp"), "test").expect("run");
    src.record(&run, &add_action(&["a", "b"]), &[ok("a"), ok("b")])
        .expect("adds");
    src.intend(&run, &remove("b")).expect("intent");
    src.record(
        &run,
        &Action::SetChannelAdmin {
            channel_id: "c1".into(),
            channel: "rl/infra".into(),
            user: user("a"),
            groups: vec!["mm_rl_infra".into()],
            admin: true,
        },
        &[ok("a")],
    )
    .expect("grant");
    src.put_link(
        &Link {
            group: "mm_rl_infra".into(),
            target: "rocky-linux/infra".parse().expect("target"),
            mode: Mode::Exclusive,
            admins: mattersync_core::Admins::Managers,
            readd: mattersync_core::Readd::Always,
            source: mattersync_core::LinkSource::Ledger,
        },
        "cli:alice",
    )
    .expect("link");
    src.put_identity(&LinkIdentity {
        group: "mm_rl_infra".into(),
        target: "rocky-linux/infra".parse().expect("target"),
        group_id: Some("g-1".into()),
        team_id: Some("t-1".into()),
        channel_id: Some("c1".into()),
        group_seen: Some("mm_rl_infra".into()),
        target_seen: Some("rocky-linux/infra".into()),
    })
    .expect("identity");
    src.set_cursor("syncrepl", Some(&[0, 1, 2, 255]))
        .expect("cursor");
    src.finish_run(
        &run,
        &RunEnd {
            outcome: "ok".into(),
            actions_ok: 3,
            ..Default::default()
        },
    )
    .expect("finish");

    let dst = pg_ledger();
    let report = src.copy_into(&dst).expect("copy");
    let counts: Vec<(&str, u64)> = report
        .tables
        .iter()
        .map(|(t, n)| (t.as_str(), *n))
        .collect();
    assert_eq!(
        counts,
        [
            // The apply, and the link's own audit note.
            ("runs", 2),
            ("events", 4),
            ("memberships", 2),
            ("admin_grants", 1),
            ("links", 1),
            ("cursors", 1),
            ("link_identity", 1)
        ]
    );
    assert_eq!(dst.facts().expect("facts"), src.facts().expect("facts"));
    assert_eq!(dst.intents().expect("intents").len(), 1);
    assert_eq!(
        dst.link_made_by("mm_rl_infra", &"rocky-linux/infra".parse().expect("t"))
            .expect("by"),
        Some("cli:alice".into())
    );
    // The audit trail goes on after the copied ids.
    let events_before = dst.events(&AuditQuery::default()).expect("events");
    let mut dst = dst;
    let run2 = dst.begin_run("apply", None, "test").expect("run");
    dst.record(&run2, &add_action(&["c"]), &[ok("c")])
        .expect("add c");
    let events = dst.events(&AuditQuery::default()).expect("events");
    assert!(events[0].id > events_before.iter().map(|e| e.id).max().expect("ids"));
    // A second copy into a ledger that holds anything is refused, and changes nothing.
    let e = src.copy_into(&dst).expect_err("not empty");
    assert!(e.to_string().contains("not empty"), "{e}");
    assert_eq!(dst.runs(10).expect("runs").len(), 3);
}
