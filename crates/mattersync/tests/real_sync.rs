//! The SOP end to end against the real 389-ds and Mattermost: the real binary, a sandbox of
//! its own per test (area, team, channels, users, groups).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{apply, names, run, run_env};
use mattersync_testsupport::Sandbox;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_linked_group_members_land_in_the_channel_team_first_and_a_rerun_writes_nothing(
) {
    let sb = Sandbox::new("linked_group_members_land").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&sb.link(&g, "infra"));

    let first = apply(&cfg);
    assert_eq!(first["changed"], true, "{first}");
    assert_eq!(first["report"]["users_failed"], 0, "{first}");
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), bob.uid.clone()])
    );
    let team = sb.mm.team_members(&sb.team_id).await.expect("team members");
    for u in [&alice, &bob] {
        assert!(
            team.contains_key(u.mm_id.as_deref().expect("account")),
            "{} in team",
            u.uid
        );
    }

    // A second apply right after reports no changes and makes no write calls.
    let out = run(&cfg, &["apply", "--yes", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert_eq!(v["changed"], false, "{v}");
    assert_eq!(v["api_calls"]["writes"], 0, "{v}");
    assert_eq!(v["api_calls"]["put"], 0, "{v}");
    assert_eq!(v["api_calls"]["delete"], 0, "{v}");
    assert!(v["api_calls"]["calls"].as_u64().unwrap_or(0) > 0, "{v}");
    let plan = run(&cfg, &["plan", "--json", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    // The first apply wrote: team batch, channel batch.
    assert!(
        first["api_calls"]["writes"].as_u64().unwrap_or(0) >= 2,
        "{first}"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_sync_removes_a_user_who_left_the_group_but_add_keeps_them() {
    let sb = Sandbox::new("sync_vs_add").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("team", &[&alice, &bob], &[], &[]).await;
    let synced = sb.channel("synced", false).await;
    let added = sb.channel("added", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/synced\"\nmode = \"sync\"\n\n[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/added\"\nmode = \"add\"\n",
        a = sb.area
    ));
    apply(&cfg);
    assert_eq!(sb.members(&synced).await.len(), 2);

    sb.remove_member(&g, &bob).await;
    let v = apply(&cfg);
    assert_eq!(v["report"]["users_failed"], 0, "{v}");
    assert_eq!(names(&sb.members(&synced).await), vec![alice.uid.clone()]);
    assert_eq!(
        names(&sb.members(&added).await),
        sorted(vec![alice.uid.clone(), bob.uid.clone()])
    );
    // The audit trail says who removed bob and why.
    let audit = run(&cfg, &["audit", "--json", "--user", &bob.uid]);
    let events = audit.json();
    let events = events["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["action"] == "remove_channel_member"
            && e["outcome"] == "ok"
            && e["scope"] == format!("{}/synced", sb.area)),
        "{events:?}"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_manual_members_stay_in_sync_and_go_in_exclusive_but_bots_stay() {
    let sb = Sandbox::new("manual_members").await;
    let alice = sb.user("alice", true, false).await;
    let manual = sb.user("manual", true, false).await;
    let g = sb.create_group("ops", &[&alice], &[], &[]).await;
    let synced = sb.channel("synced", false).await;
    let exclusive = sb.channel("exclusive", false).await;
    let bot = sb
        .mm
        .create_bot(&format!("{}-bot", sb.area), "bot")
        .await
        .expect("bot");
    let manual_id = manual.mm_id.clone().expect("account");
    for ch in [&synced, &exclusive] {
        sb.add_by_hand(ch, &manual_id).await;
        sb.add_by_hand(ch, &bot.id).await;
    }
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/synced\"\n\n[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/exclusive\"\nmode = \"exclusive\"\n\n[guards]\nmax_removal_ratio = 1.0\n",
        a = sb.area
    ));
    apply(&cfg);
    let s = names(&sb.members(&synced).await);
    assert!(
        s.contains(&manual.uid) && s.contains(&alice.uid) && s.contains(&bot.username),
        "{s:?}"
    );
    let e = names(&sb.members(&exclusive).await);
    assert!(!e.contains(&manual.uid), "{e:?}");
    assert!(e.contains(&alice.uid) && e.contains(&bot.username), "{e:?}");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_user_who_left_on_their_own_is_not_readded_unless_readd_always() {
    let sb = Sandbox::new("left_on_their_own").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("news", &[&alice], &[], &[]).await;
    let quiet = sb.channel("quiet", false).await;
    let announce = sb.channel("announce", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/quiet\"\n\n[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/announce\"\nreadd = \"always\"\n",
        a = sb.area
    ));
    apply(&cfg);
    let id = alice.mm_id.clone().expect("account");
    sb.leave(&quiet, &id).await;
    sb.leave(&announce, &id).await;
    apply(&cfg);
    assert!(sb.members(&quiet).await.is_empty());
    assert_eq!(names(&sb.members(&announce).await), vec![alice.uid.clone()]);
    // And it stays that way on later runs.
    apply(&cfg);
    assert!(sb.members(&quiet).await.is_empty());
    let explain = run(
        &cfg,
        &["explain", &alice.uid, &format!("{}/quiet", sb.area)],
    );
    assert_eq!(explain.code, 0, "{explain:?}");
    assert!(explain.stdout.contains("departed"), "{explain:?}");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_managers_become_channel_admins_and_are_demoted_when_they_stop_managing() {
    let sb = Sandbox::new("managers_admins").await;
    let neil = sb.user("neil", true, false).await;
    let label = sb.user("label", true, false).await;
    let g = sb
        .create_group("infra", &[&neil, &label], &[], &[&neil])
        .await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/infra\"\nadmins = \"managers\"\n",
        sb.area
    ));
    apply(&cfg);
    let m = sb.members(&ch).await;
    assert_eq!(m.get(&neil.uid), Some(&true), "{m:?}");
    assert_eq!(m.get(&label.uid), Some(&false), "{m:?}");

    sb.set_managers(&g, &[&label]).await;
    apply(&cfg);
    let m = sb.members(&ch).await;
    assert_eq!(m.get(&neil.uid), Some(&false), "{m:?}");
    assert_eq!(m.get(&label.uid), Some(&true), "{m:?}");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_nested_members_count_and_the_disabled_user_does_not() {
    let sb = Sandbox::new("nested_disabled").await;
    let alice = sb.user("alice", true, false).await;
    let oncall = sb.user("oncall", true, false).await;
    let locked = sb.user("locked", true, true).await;
    let inner = format!("{}_inner", sb.area);
    sb.create_raw_group(&inner, &[&oncall, &locked], &[], &[], false)
        .await;
    let g = sb.create_group("infra", &[&alice], &[&inner], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&sb.link(&g, "infra"));
    apply(&cfg);
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), oncall.uid.clone()])
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_pending_user_is_picked_up_when_their_account_appears() {
    let sb = Sandbox::new("pending_user").await;
    let alice = sb.user("alice", true, false).await;
    let late = sb.user("late", false, false).await;
    let g = sb.create_group("docs", &[&alice, &late], &[], &[]).await;
    let ch = sb.channel("docs", false).await;
    let cfg = sb.config(&sb.link(&g, "docs"));
    let plan = run(&cfg, &["plan", "--json"]).json();
    let notes = plan["plan"]["notes"].as_array().expect("notes").clone();
    assert!(
        notes
            .iter()
            .any(|n| n["type"] == "pending_user" && n["uid"] == late.uid.as_str()),
        "{notes:?}"
    );
    apply(&cfg);
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);
    sb.account(&late.uid).await;
    apply(&cfg);
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), late.uid.clone()])
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_two_groups_on_one_channel_do_not_remove_each_others_members() {
    let sb = Sandbox::new("two_groups").await;
    let a = sb.user("a", true, false).await;
    let b = sb.user("b", true, false).await;
    let ga = sb.create_group("docs", &[&a], &[], &[]).await;
    let gb = sb.create_group("web", &[&b], &[], &[]).await;
    let ch = sb.channel("shared", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{ga}\"\nchannel = \"{t}/shared\"\n\n[[link]]\ngroup = \"{gb}\"\nchannel = \"{t}/shared\"\n",
        t = sb.area
    ));
    apply(&cfg);
    apply(&cfg);
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![a.uid.clone(), b.uid.clone()])
    );
    // b moves into docs as well and leaves web: still wanted, still there.
    sb.add_member(&ga, &b).await;
    sb.remove_member(&gb, &b).await;
    apply(&cfg);
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![a.uid.clone(), b.uid.clone()])
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_the_removal_guard_trips_says_why_and_changes_nothing() {
    let sb = Sandbox::new("guard_trips").await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(sb.user(&format!("u{i}"), true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("big", &refs, &[], &[]).await;
    let ch = sb.channel("big", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/big\"\n\n[guards]\nmax_removals = 2\n",
        sb.area
    ));
    apply(&cfg);
    for u in &users[..3] {
        sb.remove_member(&g, u).await;
    }
    let out = run(&cfg, &["apply", "--yes"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("3 removals planned, more than guards.max_removals = 2"),
        "{out:?}"
    );
    assert!(out.stderr.contains("--allow-mass-removal"), "{out:?}");
    assert_eq!(sb.members(&ch).await.len(), 4);
    let out = run(&cfg, &["apply", "--yes", "--allow-mass-removal"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(names(&sb.members(&ch).await), vec![users[3].uid.clone()]);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_directory_that_cannot_be_read_removes_nothing_and_says_so() {
    let sb = Sandbox::new("directory_down").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let link = format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/infra\"\n\n[guards]\nmax_removal_ratio = 1.0\n",
        sb.area
    );
    apply(&sb.config(&link));
    // A closed port: the directory is down.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let down = sb.config_with(&format!("ldap://127.0.0.1:{port}"), &link);
    let out = run(&down, &["apply", "--yes"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("directory") && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    assert_eq!(sb.members(&ch).await.len(), 2);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_saved_plan_is_applied_only_while_it_is_current() {
    let sb = Sandbox::new("saved_plan").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&sb.link(&g, "infra"));
    let file = sb.dir.path().join("plan.json");
    let file_s = file.to_string_lossy().to_string();
    let out = run(&cfg, &["plan", "--out", &file_s, "--detailed-exitcode"]);
    assert_eq!(out.code, 2, "{out:?}");
    // The directory changes: the saved plan is stale.
    sb.add_member(&g, &bob).await;
    let out = run(&cfg, &["apply", &file_s, "--yes"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("stale"), "{out:?}");
    assert!(sb.members(&ch).await.is_empty());
    // A fresh plan applies.
    let out = run(&cfg, &["plan", "--out", &file_s]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(&cfg, &["apply", &file_s, "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), bob.uid.clone()])
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_apply_without_a_terminal_needs_yes() {
    let sb = Sandbox::new("needs_yes").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&sb.link(&g, "infra"));
    let out = run(&cfg, &["apply"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--yes"), "{out:?}");
    assert!(sb.members(&ch).await.is_empty());
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_run_killed_between_a_write_and_its_record_keeps_ownership_on_the_next_run()
{
    let sb = Sandbox::new("killed_mid_apply").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/infra\"\n\n[guards]\nmax_removal_ratio = 1.0\n",
        sb.area
    ));
    // Write 1 adds both to the team, write 2 to the channel; the process dies right after
    // write 2 returned, before its outcome reached the ledger.
    let out = run_env(
        &cfg,
        &["apply", "--yes"],
        &[("MATTERSYNC_FAULT_ABORT_AFTER_WRITE", "2")],
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(
        names(&sb.members(&ch).await),
        sorted(vec![alice.uid.clone(), bob.uid.clone()])
    );
    // The next run settles the interrupted writes: nothing left to do, and nothing to record
    // as pre-existing (the ledger knows mattersync added them).
    let plan = run(&cfg, &["plan", "--json"]).json();
    assert_eq!(plan["plan"]["actions"], serde_json::json!([]), "{plan}");
    // So when bob leaves the group, sync removes him: the membership is still mattersync's.
    sb.remove_member(&g, &bob).await;
    apply(&cfg);
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);
    // The lock died with the process: runs are possible again right away.
    let status = run(&cfg, &["status"]);
    assert_eq!(status.code, 0, "{status:?}");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_second_run_while_one_holds_the_lock_is_refused() {
    let sb = Sandbox::new("lock_held").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&sb.link(&g, "infra"));
    let ledger = sb.dir.path().join("ledger.db");
    let held = mattersync_ledger::RunLock::acquire(&ledger).expect("take the lock");
    let out = run(&cfg, &["apply", "--yes"]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("runs never overlap"), "{out:?}");
    assert!(sb.members(&ch).await.is_empty());
    drop(held);
    apply(&cfg);
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);
}

/// The race the read-only rule closes: another process holds the lock and has noted an add
/// whose answer has not come back; `plan` and `explain` meanwhile must neither write the
/// ledger nor settle that intent (as "not a member", which would make the add look like a
/// pre-existing membership once it lands, and so never removed).
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_plan_and_explain_never_write_the_ledger_while_a_write_is_in_flight() {
    let sb = Sandbox::new("readonly_race").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("race", &[&alice], &[], &[]).await;
    let ch = sb.channel("race", false).await;
    let cfg = sb.config(&sb.link(&g, "race"));
    apply(&cfg);
    sb.add_member(&g, &bob).await;
    let bob_id = bob.mm_id.clone().expect("account");
    // bob joins the team first (as the applier would), so only the channel add is in flight.
    let team_add = mattersync_core::Action::AddTeamMembers {
        team_id: sb.team_id.clone(),
        team: sb.area.clone(),
        users: vec![mattersync_core::PlanMember {
            id: bob_id.clone(),
            username: bob.uid.clone(),
            groups: vec![g.clone()],
        }],
    };
    sb.mm.apply(&team_add).await.expect("team add");

    let ledger_path = sb.dir.path().join("ledger.db");
    let lock = mattersync_ledger::RunLock::acquire(&ledger_path).expect("lock");
    let mut writer = mattersync_ledger::Ledger::open(&ledger_path).expect("ledger");
    let add = mattersync_core::Action::AddChannelMembers {
        channel_id: ch.clone(),
        channel: format!("{}/race", sb.area),
        users: vec![mattersync_core::PlanMember {
            id: bob_id.clone(),
            username: bob.uid.clone(),
            groups: vec![g.clone()],
        }],
    };
    let run_id = writer.begin_run("apply", None, "test").expect("run");
    writer.intend(&run_id, &add).expect("intend");
    let files =
        || ["", "-wal"].map(|s| std::fs::read(format!("{}{s}", ledger_path.display())).ok());
    let before = files();
    for args in [&["plan", "--json"][..], &["explain", &bob.uid], &["status"]] {
        let out = run(&cfg, args);
        assert_eq!(out.code, 0, "{args:?} runs beside the lock holder: {out:?}");
    }
    assert!(
        files() == before,
        "the ledger file and its WAL are unchanged"
    );
    // The add lands; its answer is lost. The intent is still there, unsettled.
    sb.mm.apply(&add).await.expect("channel add");
    assert_eq!(writer.intents().expect("intents").len(), 1);
    drop(writer);
    drop(lock);
    // bob leaves the group: the membership mattersync made is removed in sync mode.
    sb.remove_member(&g, &bob).await;
    let out = apply(&cfg);
    assert_eq!(out["report"]["users_failed"], 0, "{out}");
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);
}

/// A channel admin made by `admins = "managers"` and demoted by hand stays demoted, the way
/// a hand removal is respected (before: promoted again on the next run); with
/// `readd = "always"` the role is granted again.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_hand_demotion_is_respected_unless_the_link_says_readd_always() {
    let sb = Sandbox::new("hand_demotion").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb
        .create_group("demote", &[&alice, &bob], &[], &[&alice])
        .await;
    let ch = sb.channel("demote", false).await;
    let link = |readd: &str| {
        format!(
            "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/demote\"\nadmins = \"managers\"\nreadd = \"{readd}\"\n",
            sb.area
        )
    };
    let cfg = sb.config(&link("never"));
    apply(&cfg);
    let admin = |m: &std::collections::BTreeMap<String, bool>| m.get(&alice.uid).copied();
    assert_eq!(
        admin(&sb.members(&ch).await),
        Some(true),
        "alice made admin"
    );
    let alice_id = alice.mm_id.clone().expect("account");
    sb.mm
        .set_channel_admin(&ch, &alice_id, false)
        .await
        .expect("demote by hand");
    let out = apply(&cfg);
    assert_eq!(out["report"]["users_failed"], 0, "{out}");
    assert_eq!(
        admin(&sb.members(&ch).await),
        Some(false),
        "not promoted again"
    );
    let again = run(&cfg, &["plan", "--json", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "nothing left to do: {again:?}");
    let audit = run(&cfg, &["audit", "--json"]);
    assert!(audit.stdout.contains("record_demoted"), "{audit:?}");
    // The link asks for it: granted again.
    let cfg = sb.config(&link("always"));
    apply(&cfg);
    assert_eq!(
        admin(&sb.members(&ch).await),
        Some(true),
        "readd = always promotes again"
    );
}

/// A sync-mode team link removes a user from the team; Mattermost drops their channels in
/// that team with it. The plan says so, the ledger records those as removed by mattersync,
/// and when the user is back in the groups the add-mode channel link adds them again
/// (before: recorded as "left on their own" and never re-added; the plan showed only
/// "- team").
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_channels_lost_with_a_team_removal_come_back_when_the_user_rejoins() {
    let sb = Sandbox::new("team_removal").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let all = sb.create_group("all", &[&alice, &bob], &[], &[]).await;
    let dev = sb.create_group("dev", &[&alice], &[], &[]).await;
    let dev_ch = sb.channel("dev", false).await;
    let random = sb.channel("random", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{all}\"\nteam = \"{area}\"\nmode = \"sync\"\n\n[[link]]\ngroup = \"{dev}\"\nchannel = \"{area}/dev\"\nmode = \"add\"\n\n[guards]\nmax_removal_ratio = 1.0\n",
        area = sb.area
    ));
    apply(&cfg);
    let bob_id = bob.mm_id.clone().expect("account");
    // bob joins both channels by hand.
    sb.add_by_hand(&dev_ch, &bob_id).await;
    sb.add_by_hand(&random, &bob_id).await;
    apply(&cfg);
    sb.remove_member(&all, &bob).await;
    let plan = run(&cfg, &["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let line = plan
        .stdout
        .lines()
        .find(|l| l.contains("- team") && l.contains(&bob.uid))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains(&format!("{}/dev", sb.area)) && line.contains(&format!("{}/random", sb.area)),
        "the team removal shows the channels it takes: {plan:?}"
    );
    let out = apply(&cfg);
    assert_eq!(out["report"]["users_failed"], 0, "{out}");
    assert!(!names(&sb.members(&dev_ch).await).contains(&bob.uid));
    // Back in both groups: the team link and the add-mode channel link add bob again.
    sb.add_member(&all, &bob).await;
    sb.add_member(&dev, &bob).await;
    apply(&cfg);
    assert!(
        names(&sb.members(&dev_ch).await).contains(&bob.uid),
        "the channel taken with the team comes back"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_a_private_exclusive_channel_gets_the_group_its_managers_as_admins_and_loses_the_rest(
) {
    let sb = Sandbox::new("private_exclusive").await;
    let neil = sb.user("neil", true, false).await;
    let label = sb.user("label", true, false).await;
    let manual = sb.user("manual", true, false).await;
    let g = sb
        .create_group("secret", &[&neil, &label], &[], &[&neil])
        .await;
    let ch = sb.channel("secret", true).await;
    let manual_id = manual.mm_id.clone().expect("account");
    sb.add_by_hand(&ch, &manual_id).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/secret\"\nmode = \"exclusive\"\nadmins = \"managers\"\n\n[guards]\nmax_removal_ratio = 1.0\n",
        sb.area
    ));

    let first = apply(&cfg);
    assert_eq!(first["report"]["users_failed"], 0, "{first}");
    let m = sb.members(&ch).await;
    assert_eq!(m.get(&neil.uid), Some(&true), "{m:?}");
    assert_eq!(m.get(&label.uid), Some(&false), "{m:?}");
    assert!(!m.contains_key(&manual.uid), "{m:?}");

    // A member who leaves the group leaves the private channel; the manager role follows.
    sb.remove_member(&g, &neil).await;
    sb.set_managers(&g, &[&label]).await;
    let second = apply(&cfg);
    assert_eq!(second["report"]["users_failed"], 0, "{second}");
    let m = sb.members(&ch).await;
    assert_eq!(
        m,
        [(label.uid.clone(), true)].into_iter().collect(),
        "{m:?}"
    );
    let again = apply(&cfg);
    assert_eq!(again["changed"], false, "{again}");
}
