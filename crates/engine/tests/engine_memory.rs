//! Whole runs of the engine over the in-memory directory and Mattermost: the fault logic in
//! milliseconds. The real-server tests (crates/mattersync/tests/real_*.rs) prove the same
//! behaviour end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod memory;

use mattersync_core::{Action, IntentKind, Plan};
use mattersync_engine::{self as engine, config, MattermostApi, SavedPlanMismatch, State, Verdict};
use mattersync_ledger::{Ledger, RunLock};
use memory::{MemDirectory, MemMattermost};
use std::path::{Path, PathBuf};

const CONFIG: &str = r#"
[directory]
uri = "ldaps://ipa.example.org"
base_dn = "dc=example,dc=org"

[areas]
rl = "tm"

[mattermost]
url = "https://chat.example.org"
match = { by = "username" }

[guards]
max_removals = 3
max_removal_ratio = 1.0

[[link]]
group = "mm_rl_c"
channel = "tm/c"
mode = "sync"
"#;

struct World {
    cfg: config::Config,
    dir: MemDirectory,
    mm: MemMattermost,
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

fn world(members: &[&str], accounts: &[&str]) -> World {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("ledger.db");
    let mut dir = MemDirectory::default();
    dir.group("mm_rl_c", members);
    World {
        cfg: config::parse(CONFIG, &[]).expect("config"),
        dir,
        mm: MemMattermost::new(accounts),
        _tmp: tmp,
        path,
    }
}

impl World {
    async fn read(&mut self, ledger: &Ledger) -> State {
        engine::read_all(&self.cfg, &mut self.dir, &self.mm, ledger)
            .await
            .expect("read")
    }

    /// `apply --yes`: lock, read, settle, plan, the guard decision, apply.
    async fn apply(&mut self, allow: bool) -> (Plan, Verdict, Option<engine::ApplyReport>) {
        let lock = RunLock::acquire(&self.path).expect("lock");
        let mut ledger = Ledger::open(&self.path).expect("ledger");
        let mut state = self.read(&ledger).await;
        engine::settle(&lock, &ledger, &mut state).expect("settle");
        let plan = state.plan();
        let verdict = engine::verdict(
            &plan,
            &if allow {
                engine::Approval::Any
            } else {
                engine::Approval::None
            },
        );
        let report = match verdict {
            Verdict::Apply => {
                let (_tx, stop) = tokio::sync::watch::channel(false);
                Some(
                    engine::apply(&lock, &plan, &mut ledger, &self.mm, &stop, "apply", "test")
                        .await
                        .expect("apply"),
                )
            }
            Verdict::NoChanges | Verdict::Held(_) => None,
        };
        (plan, verdict, report)
    }

    /// `plan`: read-only.
    async fn plan(&mut self) -> Plan {
        let ledger = Ledger::open_read_only(&self.path).expect("ledger");
        self.read(&ledger).await.plan()
    }

    fn set_members(&mut self, members: &[&str]) {
        self.dir.group("mm_rl_c", members);
    }
}

fn file_state(path: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    ["", "-wal"]
        .iter()
        .map(|suffix| {
            let p = format!("{}{suffix}", path.display());
            (p.clone(), std::fs::read(&p).ok())
        })
        .collect()
}

fn names(v: &[&str]) -> std::collections::BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_run_adds_the_group_then_has_nothing_to_do_and_removes_only_what_it_added() {
    let mut w = world(&["ann", "bob"], &["ann", "bob", "cy"]);
    w.mm.join_channel("cy"); // there before mattersync: never removed in sync mode
    let (_, verdict, report) = w.apply(false).await;
    assert_eq!(verdict, Verdict::Apply);
    let report = report.expect("applied");
    assert_eq!(report.users_failed, 0, "{:?}", report.failures);
    assert_eq!(w.mm.channel_members(), names(&["ann", "bob", "cy"]));
    let again = w.plan().await;
    assert!(!again.has_changes(), "{:?}", again.actions);
    w.set_members(&["ann"]);
    let (plan, _, _) = w.apply(false).await;
    let removed: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::RemoveChannelMember { user, .. } => Some(user.username.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(removed, ["bob"]);
    assert_eq!(w.mm.channel_members(), names(&["ann", "cy"]));
}

#[tokio::test]
async fn a_directory_outage_ends_the_run_before_any_plan_or_write() {
    let mut w = world(&["ann"], &["ann"]);
    w.dir.down = true;
    let ledger = Ledger::open(&w.path).expect("ledger");
    let err = engine::read_all(&w.cfg, &mut w.dir, &w.mm, &ledger)
        .await
        .err()
        .expect("must fail");
    assert!(
        format!("{err:#}").contains("nothing was changed"),
        "{err:#}"
    );
    assert_eq!(w.mm.writes(), 0);
    assert_eq!(w.mm.api_calls(), 0, "Mattermost is not even read");
}

#[tokio::test]
async fn rate_limited_reads_fail_the_run_cleanly_and_the_next_run_recovers() {
    let mut w = world(&["ann"], &["ann"]);
    w.mm.faults.lock().expect("faults").rate_limited_reads = 1;
    let ledger = Ledger::open(&w.path).expect("ledger");
    let err = engine::read_all(&w.cfg, &mut w.dir, &w.mm, &ledger)
        .await
        .err()
        .expect("429 fails the read");
    assert!(format!("{err:#}").contains("429"), "{err:#}");
    assert_eq!(w.mm.writes(), 0);
    drop(ledger);
    let (_, verdict, _) = w.apply(false).await;
    assert_eq!(verdict, Verdict::Apply);
    assert_eq!(w.mm.channel_members(), names(&["ann"]));
}

#[tokio::test]
async fn a_user_whose_part_of_a_batch_fails_is_retried_and_the_others_are_kept() {
    let mut w = world(&["ann", "bob", "cy"], &["ann", "bob", "cy"]);
    w.mm.faults
        .lock()
        .expect("faults")
        .failing_users
        .insert("id-bob".into());
    let (_, _, report) = w.apply(false).await;
    let report = report.expect("applied");
    assert_eq!(
        report.users_failed, 2,
        "team and channel add of bob: {:?}",
        report.failures
    );
    assert!(
        report.failures.iter().all(|f| f.contains("bob")),
        "{:?}",
        report.failures
    );
    assert_eq!(w.mm.channel_members(), names(&["ann", "cy"]));
    w.mm.faults.lock().expect("faults").failing_users.clear();
    let (plan, _, _) = w.apply(false).await;
    let added: Vec<&str> = plan
        .actions
        .iter()
        .flat_map(|a| match a {
            Action::AddChannelMembers { users, .. } => {
                users.iter().map(|u| u.username.as_str()).collect()
            }
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(added, ["bob"]);
    assert_eq!(w.mm.channel_members(), names(&["ann", "bob", "cy"]));
}

#[tokio::test]
async fn an_add_whose_answer_was_lost_stays_ours_and_is_removed_when_the_group_drops_the_user() {
    let mut w = world(&["ann"], &["ann"]);
    w.mm.faults.lock().expect("faults").lose_next_answer = true;
    let (_, _, report) = w.apply(false).await;
    let report = report.expect("applied");
    assert!(report.users_failed > 0, "the lost answer is a failure");
    // The add happened; the ledger has only an intent for it.
    assert_eq!(w.mm.channel_members(), names(&["ann"]));
    let pending = Ledger::open_read_only(&w.path)
        .expect("ledger")
        .intents()
        .expect("intents");
    assert!(
        pending.iter().any(|i| i.intent == IntentKind::Add),
        "{pending:?}"
    );
    // A read-only plan reads the intent as settled: nothing to add, nothing to record.
    let plan = w.plan().await;
    assert!(!plan.has_changes(), "{:?}", plan.actions);
    // The group drops ann: the membership mattersync made is removed (it is ours).
    w.set_members(&[]);
    let (plan, _, _) = w.apply(false).await;
    assert!(
        plan.actions.iter().any(
            |a| matches!(a, Action::RemoveChannelMember { user, .. } if user.username == "ann")
        ),
        "{:?}",
        plan.actions
    );
    assert_eq!(w.mm.channel_members(), names(&[]));
}

#[tokio::test]
async fn a_removal_whose_answer_was_lost_is_not_taken_for_leaving() {
    let mut w = world(&["ann"], &["ann"]);
    w.apply(false).await;
    w.set_members(&[]);
    w.mm.faults.lock().expect("faults").lose_next_answer = true;
    w.apply(false).await;
    assert_eq!(w.mm.channel_members(), names(&[]));
    // Back in the group: mattersync removed her, so she is added again (a departure would
    // not be, with readd = "never").
    w.set_members(&["ann"]);
    let plan = w.plan().await;
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::AddChannelMembers { users, .. } if users.iter().any(|u| u.username == "ann"))),
        "{:?}",
        plan.actions
    );
}

#[tokio::test]
async fn read_only_commands_never_write_the_ledger_while_a_write_is_in_flight() {
    let mut w = world(&["ann", "bob"], &["ann", "bob"]);
    w.apply(false).await;
    w.set_members(&["ann", "bob", "cy"]);
    w.mm.world.lock().expect("world").users.insert(
        "id-cy".into(),
        mattersync_core::MmUser {
            id: "id-cy".into(),
            username: "cy".into(),
            ..Default::default()
        },
    );
    // Another process holds the lock and has noted its add of cy; the answer is in flight.
    let lock = RunLock::acquire(&w.path).expect("lock");
    let mut writer = Ledger::open(&w.path).expect("ledger");
    let state = w.read(&Ledger::open_read_only(&w.path).expect("ro")).await;
    let plan = state.plan();
    let add = plan
        .actions
        .iter()
        .find(|a| matches!(a, Action::AddChannelMembers { .. }))
        .cloned()
        .expect("an add of cy");
    let run = writer.begin_run("apply", None, "test").expect("run");
    writer.intend(&run, &add).expect("intend");
    let before = file_state(&w.path);
    // plan and explain meanwhile: the add has not shown in Mattermost yet.
    for _ in 0..3 {
        let ledger = Ledger::open_read_only(&w.path).expect("ro");
        let state = w.read(&ledger).await;
        let plan = state.plan();
        assert!(plan.has_changes());
        state.explain(&plan, "cy", None).expect("explain");
        assert_eq!(
            engine::verdict(&plan, &engine::Approval::None),
            Verdict::Apply
        );
    }
    assert_eq!(
        file_state(&w.path),
        before,
        "the ledger file and its WAL are unchanged"
    );
    // The write lands and its answer is lost: the intent is still there for the lock
    // holder to settle, and cy's membership is ours.
    w.mm.join_channel("cy");
    drop(writer);
    drop(lock);
    let ledger = Ledger::open(&w.path).expect("ledger");
    let intents = ledger.intents().expect("intents");
    assert_eq!(intents.len(), 1, "{intents:?}");
    drop(ledger);
    w.set_members(&["ann", "bob"]);
    let (plan, _, _) = w.apply(false).await;
    assert!(
        plan.actions.iter().any(
            |a| matches!(a, Action::RemoveChannelMember { user, .. } if user.username == "cy")
        ),
        "cy was added by mattersync, so sync mode removes her: {:?}",
        plan.actions
    );
}

#[tokio::test]
async fn a_mass_removal_is_held_until_approved() {
    let all = ["a1", "a2", "a3", "a4", "a5"];
    let mut w = world(&all, &all);
    w.apply(false).await;
    w.set_members(&[]);
    let (plan, verdict, report) = w.apply(false).await;
    assert!(
        matches!(verdict, Verdict::Held(ref t) if !t.is_empty()),
        "{verdict:?}"
    );
    assert!(report.is_none());
    assert_eq!(w.mm.channel_members(), names(&all), "nothing removed");
    assert!(!engine::describe_trips(&plan.guard_trips).is_empty());
    let (_, verdict, _) = w.apply(true).await;
    assert_eq!(verdict, Verdict::Apply);
    assert_eq!(w.mm.channel_members(), names(&[]));
}

#[tokio::test]
async fn a_saved_plan_is_refused_when_stale_or_edited() {
    let mut w = world(&["ann"], &["ann"]);
    let saved = w.plan().await;
    let fresh = w.plan().await;
    assert_eq!(engine::check_saved(&saved, &fresh), Ok(()));
    let mut edited = saved.clone();
    edited.actions.pop();
    assert_eq!(
        engine::check_saved(&edited, &fresh),
        Err(SavedPlanMismatch::Edited)
    );
    w.set_members(&["ann", "bob"]);
    let changed = w.plan().await;
    assert!(matches!(
        engine::check_saved(&saved, &changed),
        Err(SavedPlanMismatch::Stale { .. })
    ));
}

#[tokio::test]
async fn explain_matches_as_the_planner_does_and_never_by_substring() {
    // al has no account yet; alice has one.
    let mut w = world(&["al", "alice"], &["alice"]);
    let ledger = Ledger::open_read_only(&w.path).expect("ro");
    let state = w.read(&ledger).await;
    let plan = state.plan();
    let alice = state.explain(&plan, "alice", None).expect("explain");
    assert_eq!(alice.uid.as_deref(), Some("alice"));
    assert_eq!(
        alice.account,
        Some(("id-alice".to_string(), "alice".to_string()))
    );
    assert!(
        !alice
            .notes
            .iter()
            .any(|n| matches!(n, mattersync_core::Note::PendingUser { .. })),
        "al's pending note is not alice's: {:?}",
        alice.notes
    );
    assert!(!alice.actions.is_empty());
    let al = state.explain(&plan, "al", None).expect("explain");
    assert_eq!(al.account, None);
    assert!(al.actions.is_empty());
    assert!(
        al.notes
            .iter()
            .any(|n| matches!(n, mattersync_core::Note::PendingUser { uid, .. } if uid == "al")),
        "{:?}",
        al.notes
    );
    assert!(state.explain(&plan, "nobody", None).is_err());
}

fn is_renamed(state: &State) -> bool {
    state.link_issues.iter().any(|i| {
        matches!(
            i,
            mattersync_core::LinkIssue::GroupRenamed { .. }
                | mattersync_core::LinkIssue::ChannelRenamed { .. }
        )
    })
}

#[tokio::test]
async fn a_renamed_group_keeps_its_link_and_its_members_and_is_reported() {
    let mut w = world(&["ann", "bob"], &["ann", "bob"]);
    w.apply(false).await; // first sight: the ids are recorded
                          // modrdn: same id, new name.
    let g = w.dir.dir.groups.remove("mm_rl_c").expect("group");
    w.dir.dir.groups.insert(
        "mm_rl_renamed".into(),
        mattersync_core::DirGroup {
            cn: "mm_rl_renamed".into(),
            ..g
        },
    );
    let ledger = Ledger::open_read_only(&w.path).expect("ro");
    let state = w.read(&ledger).await;
    drop(ledger);
    assert!(is_renamed(&state), "{:?}", state.link_issues);
    assert_eq!(state.broken_links(), 0);
    assert!(!state.plan().has_changes(), "no remove-and-re-add");
    // A member removed from the renamed group leaves the channel.
    w.dir
        .dir
        .groups
        .get_mut("mm_rl_renamed")
        .expect("group")
        .member_users
        .remove("bob");
    w.apply(false).await;
    assert_eq!(w.mm.channel_members(), names(&["ann"]));
}

#[tokio::test]
async fn a_renamed_channel_keeps_its_link_and_a_new_channel_with_the_old_name_gets_nothing() {
    let mut w = world(&["ann"], &["ann", "cy"]);
    w.apply(false).await;
    w.mm.rename_channel("c-renamed");
    w.mm.new_channel("c", "chan-new");
    let ledger = Ledger::open_read_only(&w.path).expect("ro");
    let state = w.read(&ledger).await;
    drop(ledger);
    assert!(is_renamed(&state), "{:?}", state.link_issues);
    let plan = state.plan();
    for a in &plan.actions {
        let (_, id, _) = a.scope();
        assert_ne!(id, "chan-new", "the new channel is never a target: {a:?}");
    }
    assert!(!plan.has_changes(), "{:?}", plan.actions);
    // The group grows: the renamed channel gets the new member, the new one nothing.
    w.set_members(&["ann", "cy"]);
    w.apply(false).await;
    let world = w.mm.world.lock().expect("world");
    let renamed = &world.channels["tm/c-renamed"];
    assert!(renamed.members.contains_key("id-cy"));
    assert_eq!(
        world.channels["tm/c"].members.len(),
        1,
        "only the token's account"
    );
}

#[tokio::test]
async fn a_link_whose_channel_was_archived_is_broken_and_restoring_it_mends_it() {
    let mut w = world(&["ann"], &["ann", "cy"]);
    w.apply(false).await;
    w.mm.archive_channel("c");
    let ledger = Ledger::open_read_only(&w.path).expect("ro");
    let state = w.read(&ledger).await;
    drop(ledger);
    assert_eq!(state.broken_links(), 1, "{:?}", state.link_issues);
    assert!(
        state
            .link_issues
            .iter()
            .any(|i| matches!(i, mattersync_core::LinkIssue::TargetArchived { target, .. } if target == "tm/c")),
        "{:?}",
        state.link_issues
    );
    assert!(!state.plan().has_changes());
    // Restored: the link works again, by the id it always had.
    w.mm.world
        .lock()
        .expect("world")
        .channels
        .get_mut("tm/c")
        .expect("channel")
        .archived = false;
    w.set_members(&["ann", "cy"]);
    let ledger = Ledger::open_read_only(&w.path).expect("ro");
    let state = w.read(&ledger).await;
    drop(ledger);
    assert_eq!(state.broken_links(), 0, "{:?}", state.link_issues);
    w.apply(false).await;
    assert_eq!(w.mm.channel_members(), names(&["ann", "cy"]));
}

#[tokio::test]
async fn an_approval_covers_exactly_the_held_plan_that_was_reviewed() {
    let all = ["a1", "a2", "a3", "a4", "a5"];
    let mut w = world(&all, &all);
    w.apply(false).await;
    w.set_members(&["a1"]);
    let reviewed = w.plan().await;
    assert!(!reviewed.guard_trips.is_empty());
    let fp = engine::held_fingerprint(&reviewed);
    // The directory changes after the review: one more would go.
    w.set_members(&[]);
    let now = w.plan().await;
    let old = engine::Approval::Exactly(fp.clone());
    assert!(
        matches!(engine::verdict(&now, &old), Verdict::Held(_)),
        "an approval of another plan does not cover this one"
    );
    assert_eq!(w.mm.channel_members(), names(&all));
    // Back to what was reviewed: the approval covers it.
    w.set_members(&["a1"]);
    let again = w.plan().await;
    assert_eq!(engine::held_fingerprint(&again), fp);
    assert_eq!(engine::verdict(&again, &old), Verdict::Apply);
    assert!(matches!(
        engine::verdict(&again, &engine::Approval::None),
        Verdict::Held(_)
    ));
}

/// A change cycle's plan from the kept state (`gather_kept`) against a fresh reading of the
/// same scopes (`gather`): the same actions, with far fewer calls, through adds, a hand join
/// the kept state cannot know of, a removal, and a failed write that makes the scope be read
/// again.
#[tokio::test]
async fn a_plan_from_the_kept_state_is_the_plan_a_fresh_reading_gives() {
    let mut w = world(&["a"], &["a", "b", "c", "d"]);
    let lock = RunLock::acquire(&w.path).expect("lock");
    let mut ledger = Ledger::open(&w.path).expect("ledger");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let _keep = stop_tx;

    // A full run, then the kept state starts from its reading.
    let mut state = w.read(&ledger).await;
    engine::settle(&lock, &ledger, &mut state).expect("settle");
    let plan = state.plan();
    let me = state.me.clone();
    let mut kept = engine::Kept::new(
        std::mem::take(&mut state.mattermost),
        me,
        &w.cfg.mattermost.matching,
    );
    let report = engine::apply(&lock, &plan, &mut ledger, &w.mm, &stop, "apply", "test")
        .await
        .expect("apply");
    kept.record(&plan, &report);

    let steps: [(&str, &[&str], Option<&str>); 4] = [
        ("b joins the group", &["a", "b"], None),
        (
            "c joined by hand, then the group",
            &["a", "b", "c"],
            Some("c"),
        ),
        ("a leaves the group", &["b", "c"], None),
        ("d joins, and her add fails", &["b", "c", "d"], None),
    ];
    for (what, members, by_hand) in steps {
        let old = w.dir.dir.clone();
        w.dir.group("mm_rl_c", members);
        if let Some(u) = by_hand {
            w.mm.join_channel(u);
        }
        if what.contains("fails") {
            w.mm.faults.lock().expect("faults").failing_users = ["id-d".to_string()].into();
        }
        let new = w.dir.dir.clone();
        let changed = mattersync_core::scope::changed_groups(&old, &new);
        let view = engine::LedgerView::read_without_facts(&ledger).expect("view");
        let links = engine::links_now(&w.cfg, &new, &view, &w.mm, &mut Default::default())
            .await
            .expect("links")
            .links;
        let calls = w.mm.calls.load(std::sync::atomic::Ordering::SeqCst);
        let (mut from_kept, _) = engine::gather_kept(
            &w.cfg,
            &w.mm,
            &mut kept,
            &old,
            &new,
            &changed,
            links.clone(),
            view.clone(),
            Vec::new(),
        )
        .await
        .expect("gather_kept");
        engine::kept_facts(&ledger, &mut from_kept).expect("facts");
        engine::finish_kept(&w.mm, &mut from_kept)
            .await
            .expect("finish");
        let kept_calls = w.mm.calls.load(std::sync::atomic::Ordering::SeqCst) - calls;
        let fresh = engine::gather(
            &w.cfg,
            &w.mm,
            new.clone(),
            links,
            engine::LedgerView::read(&ledger).expect("view"),
            Vec::new(),
        )
        .await
        .expect("gather");
        let plan = from_kept.plan();
        assert_eq!(plan.actions, fresh.plan().actions, "{what}");
        assert!(!plan.actions.is_empty(), "{what}: nothing planned");
        // Where the change's users are (the channel; the team when one may be added),
        // nothing listed.
        assert!((1..=2).contains(&kept_calls), "{what}: {kept_calls} calls");
        let report = engine::apply(&lock, &plan, &mut ledger, &w.mm, &stop, "apply", "test")
            .await
            .expect("apply");
        kept.record(&plan, &report);
    }
    // d's add failed: the channel was forgotten, and is read in full next time.
    assert!(!kept.mm.channels.contains_key("tm/c"));
    assert_eq!(
        w.mm.channel_members(),
        ["b", "c"].iter().map(|s| s.to_string()).collect()
    );
}
