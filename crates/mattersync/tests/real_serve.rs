//! `mattersync serve` against the real 389-ds and Mattermost: the real binary, a sandbox of
//! its own per test. Change-driven sync (syncrepl and polling), the cookie across restarts,
//! metrics, the HTTP API, the run lock, and the removal guard.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_ledger::Ledger;
use mattersync_testsupport::Sandbox;
use real_serve_support::{cursor_name, serve_section, wait_until, Service, API_TOKEN, PROPAGATION};
use std::time::Instant;

async fn members(sb: &Sandbox, channel_id: &str) -> Vec<String> {
    sb.members(channel_id).await.into_keys().collect()
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_membership_change_in_389ds_reaches_mattermost_and_the_metrics_move() {
    let sb = Sandbox::new("serve_change_driven").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&format!(
        "{}\n{}",
        sb.link(&g, "infra"),
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await, vec![alice.uid.clone()]);
    let m = svc.metrics().await;
    assert!(
        m.get("mattersync_runs_total{kind=\"full\",outcome=\"ok\"}") >= 1.0,
        "{m:?}"
    );
    assert_eq!(
        m.get("mattersync_directory_sessions_total{refresh=\"full\"}"),
        1.0,
        "{m:?}"
    );
    assert_eq!(m.get("mattersync_ready"), 1.0);
    assert!(m.get("mattersync_last_success_timestamp_seconds") > 1.7e9);
    let calls_before = m.sum("mattersync_mattermost_api_calls_total", &[]);

    // A change to a group nothing links to is read, compared, and costs Mattermost nothing.
    let other = sb.create_group("unlinked", &[&bob], &[], &[]).await;
    let m = svc
        .wait_metrics(&format!("a change cycle after creating {other}"), |m| {
            m.get("mattersync_runs_total{kind=\"changes\",outcome=\"no_changes\"}") >= 1.0
        })
        .await;
    assert_eq!(
        m.sum("mattersync_mattermost_api_calls_total", &[]),
        calls_before,
        "a change to an unlinked group called Mattermost"
    );
    assert!(m.get("mattersync_directory_notifications_total{source=\"syncrepl\"}") >= 1.0);

    // bob joins the linked group in the directory: he is in the channel moments later.
    let t = Instant::now();
    sb.add_member(&g, &bob).await;
    let arrived = wait_until(PROPAGATION, || async {
        members(&sb, &ch).await.contains(&bob.uid)
    })
    .await;
    assert!(arrived, "bob never arrived:\n{}", svc.logs());
    eprintln!(
        "directory change -> Mattermost member: {:?} (test-side polling every 100 ms)",
        t.elapsed()
    );
    let m = svc
        .wait_metrics("the change cycle", |m| {
            m.get("mattersync_runs_total{kind=\"changes\",outcome=\"ok\"}") >= 1.0
                && m.get("mattersync_actions_total{action=\"add_channel_members\",outcome=\"ok\"}")
                    >= 2.0
                && m.get("mattersync_change_latency_seconds_count") >= 1.0
        })
        .await;
    eprintln!(
        "notification -> applied (service side): {:.0} ms",
        1000.0 * m.get("mattersync_change_latency_seconds_sum")
            / m.get("mattersync_change_latency_seconds_count")
    );
    assert!(m.sum("mattersync_mattermost_api_calls_total", &[]) > calls_before);

    // alice leaves the group: in sync mode mattersync takes back what it added.
    sb.remove_member(&g, &alice).await;
    let gone = wait_until(PROPAGATION, || async {
        !members(&sb, &ch).await.contains(&alice.uid)
    })
    .await;
    assert!(gone, "alice was not removed:\n{}", svc.logs());
    svc.wait_metrics("the removal", |m| {
        m.get("mattersync_actions_total{action=\"remove_channel_member\",outcome=\"ok\"}") >= 1.0
    })
    .await;
    assert_eq!(
        members(&sb, &ch).await,
        vec![bob.uid.clone()],
        "{}",
        svc.logs()
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_http_api_needs_its_token_and_sigterm_saves_the_cursor() {
    let sb = Sandbox::new("serve_http_api").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("web", &[&alice], &[], &[]).await;
    let ch = sb.channel("web", false).await;
    let cfg = sb.config(&format!(
        "{}\n{}",
        sb.link(&g, "web"),
        serve_section(sb.dir.path(), "")
    ));
    let mut svc = Service::start(&cfg, &["--log-format", "json"], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await, vec![alice.uid.clone()]);

    let post = reqwest::Method::POST;
    assert_eq!(svc.request(post.clone(), "/sync", None).await.0, 401);
    assert_eq!(
        svc.request(post.clone(), "/sync", Some("wrong")).await.0,
        401
    );
    assert_eq!(svc.get("/plan").await.0, 401);
    let (status, body) = svc.request(post.clone(), "/sync", Some(API_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["kind"], "manual", "{report}");
    assert_eq!(report["outcome"], "no_changes", "{report}");
    assert_eq!(
        svc.metrics()
            .await
            .get("mattersync_runs_total{kind=\"manual\",outcome=\"no_changes\"}"),
        1.0
    );
    let (status, body) = svc
        .request(reqwest::Method::GET, "/plan", Some(API_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    let plan: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(plan["changed"], false, "{plan}");
    let (status, text) = svc
        .request(reqwest::Method::GET, "/plan?format=text", Some(API_TOKEN))
        .await;
    assert_eq!(status, 200);
    assert!(text.starts_with("Plan "), "{text}");

    // The logs are JSON lines and never hold a token.
    let logs = svc.logs();
    assert!(
        logs.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| l.starts_with('{')),
        "{logs}"
    );
    let mm_token = sb.servers.mm_token();
    assert!(!logs.contains(API_TOKEN) && !logs.contains(&mm_token));

    let status = svc.terminate();
    assert!(status.success(), "exit {status:?}:\n{}", svc.logs());
    assert!(svc.logs().contains("mattersync serve stopped"));
    let ledger = Ledger::open(&sb.dir.path().join("ledger.db")).expect("ledger");
    let name = cursor_name(
        &sb.servers.get("MATTERSYNC_LDAPS_URL"),
        &sb.servers.get("MATTERSYNC_LDAP_BIND_DN"),
        &sb.servers.get("MATTERSYNC_LDAP_BASE_DN"),
    );
    let cookie = ledger.cursor(&name).expect("read cursor");
    assert!(cookie.is_some(), "no cursor {name:?} saved");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_resumes_from_the_saved_cookie_after_a_restart_without_a_full_refresh() {
    let sb = Sandbox::new("serve_cookie_restart").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("ops", &[&alice], &[], &[]).await;
    let ch = sb.channel("ops", false).await;
    let cfg = sb.config(&format!(
        "{}\n{}",
        sb.link(&g, "ops"),
        serve_section(sb.dir.path(), "")
    ));
    let mut first = Service::start(&cfg, &[], "first.log").await;
    first.wait_ready().await;
    assert_eq!(
        first
            .metrics()
            .await
            .get("mattersync_directory_sessions_total{refresh=\"full\"}"),
        1.0
    );
    assert!(first.terminate().success(), "{}", first.logs());

    // A change while the service is down.
    sb.add_member(&g, &bob).await;

    let second = Service::start(&cfg, &[], "second.log").await;
    second.wait_ready().await;
    let m = second.metrics().await;
    assert_eq!(
        m.get("mattersync_directory_sessions_total{refresh=\"incremental\"}"),
        1.0,
        "{m:?}\n{}",
        second.logs()
    );
    assert_eq!(
        m.get("mattersync_directory_sessions_total{refresh=\"full\"}"),
        0.0
    );
    assert_eq!(m.get("mattersync_directory_cookie_refused_total"), 0.0);
    let arrived = wait_until(PROPAGATION, || async {
        members(&sb, &ch).await.contains(&bob.uid)
    })
    .await;
    assert!(arrived, "{}", second.logs());
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_polls_modify_timestamps_where_syncrepl_is_not_used() {
    let sb = Sandbox::new("serve_polling").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("docs", &[&alice], &[], &[]).await;
    let ch = sb.channel("docs", false).await;
    let cfg = sb.config(&format!(
        "{}\n{}",
        sb.link(&g, "docs"),
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(
        &cfg,
        &["--changes", "poll", "--poll-interval", "1s"],
        "serve.log",
    )
    .await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await, vec![alice.uid.clone()]);
    sb.add_member(&g, &bob).await;
    let arrived = wait_until(PROPAGATION, || async {
        members(&sb, &ch).await.contains(&bob.uid)
    })
    .await;
    assert!(arrived, "{}", svc.logs());
    let m = svc
        .wait_metrics("a poll notification", |m| {
            m.get("mattersync_directory_notifications_total{source=\"poll\"}") >= 1.0
        })
        .await;
    assert_eq!(m.sum("mattersync_directory_sessions_total", &[]), 0.0);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_runs_one_instance_per_ledger() {
    let sb = Sandbox::new("serve_single_instance").await;
    let cfg = sb.config(&serve_section(sb.dir.path(), ""));
    let first = Service::start(&cfg, &["--changes", "off"], "first.log").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mattersync"))
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--changes", "off"])
        .env_remove("MATTERSYNC_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("one instance"), "{stderr}");
    // The first one is unharmed.
    assert_eq!(first.get("/healthz").await.0, 200);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_tripped_guard_changes_nothing_until_allowed() {
    let sb = Sandbox::new("serve_guard").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("board", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("board", false).await;
    let cfg = sb.config(&format!(
        "{}\n[guards]\nmax_removals = 0\n\n{}",
        sb.link(&g, "board"),
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await.len(), 2);

    sb.remove_member(&g, &alice).await;
    svc.wait_metrics("a guard trip", |m| {
        m.get("mattersync_guard_trips_total") >= 1.0
    })
    .await;
    // Nobody was removed; the service stays ready (a hold is not an outage) and shows
    // what it holds.
    assert_eq!(members(&sb, &ch).await.len(), 2);
    let (status, body) = svc.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(svc.metrics().await.get("mattersync_held_changes"), 1.0);
    let (_, page) = svc.get("/").await;
    assert!(page.contains("A guard holds 1 change(s)"), "{page}");

    // An admin who knows the directory really changed lets it through.
    let (status, body) = svc
        .request(
            reqwest::Method::POST,
            "/sync?allow_mass_removal=true",
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(members(&sb, &ch).await, vec![bob.uid.clone()]);
    assert_eq!(svc.get("/readyz").await.0, 200);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_the_periodic_reconcile_adds_a_pending_user_once_their_account_appears() {
    let sb = Sandbox::new("serve_periodic").await;
    let alice = sb.user("alice", true, false).await;
    let late = sb.user("late", false, false).await;
    let g = sb.create_group("web", &[&alice, &late], &[], &[]).await;
    let ch = sb.channel("web", false).await;
    let cfg = sb.config(&format!(
        "{}\n{}",
        sb.link(&g, "web"),
        serve_section(sb.dir.path(), "full_reconcile = \"2s\"")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await, vec![alice.uid.clone()]);
    assert_eq!(svc.metrics().await.get("mattersync_pending_users"), 1.0);
    let (_, page) = svc.get("/").await;
    assert!(page.contains(&late.uid), "the page lists the pending user");

    // The account appears in Mattermost: no directory change says so, the reconcile does.
    sb.account(&late.uid).await;
    let arrived = wait_until(PROPAGATION, || async {
        members(&sb, &ch).await.contains(&late.uid)
    })
    .await;
    assert!(arrived, "{}", svc.logs());
    let m = svc
        .wait_metrics("no pending user after a full run", |m| {
            m.get("mattersync_pending_users") == 0.0
                && m.get("mattersync_runs_total{kind=\"full\",outcome=\"ok\"}") >= 2.0
        })
        .await;
    assert_eq!(m.get("mattersync_guard_trips_total"), 0.0);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_sigterm_during_an_apply_leaves_the_ledger_true_and_a_restart_finishes() {
    let sb = Sandbox::new("serve_sigterm_apply").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("many", &[&alice, &bob], &[], &[]).await;
    let mut links = String::new();
    let mut channels = Vec::new();
    for i in 0..12 {
        let name = format!("c{i:02}");
        channels.push((name.clone(), sb.channel(&name, false).await));
        links.push_str(&sb.link(&g, &name));
    }
    let cfg = sb.config(&format!("{links}\n{}", serve_section(sb.dir.path(), "")));
    let mut svc = Service::start(&cfg, &[], "first.log").await;
    // Stop as soon as the first channel is done: the apply is likely still going.
    let started = wait_until(PROPAGATION, || async {
        let mut any = false;
        for (_, id) in &channels {
            any |= !members(&sb, id).await.is_empty();
            if any {
                break;
            }
        }
        any
    })
    .await;
    assert!(started, "{}", svc.logs());
    let status = svc.terminate();
    assert!(status.success(), "exit {status:?}:\n{}", svc.logs());

    // Whatever the ledger says mattersync did is true in Mattermost, and no run is left open.
    let ledger = Ledger::open(&sb.dir.path().join("ledger.db")).expect("ledger");
    for run in ledger.runs(20).expect("runs") {
        assert!(run.finished_at.is_some(), "run left open: {run:?}");
    }
    let events = ledger
        .events(&mattersync_ledger::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .expect("events");
    for (name, id) in &channels {
        let scope = format!("{}/{name}", sb.area);
        let recorded: Vec<&str> = events
            .iter()
            .filter(|e| e.scope == scope && e.action == "add_channel_members" && e.outcome == "ok")
            .map(|e| e.username.as_str())
            .collect();
        let actual = members(&sb, id).await;
        for u in &recorded {
            assert!(
                actual.iter().any(|a| a == u),
                "{scope}: ledger says {u} added, Mattermost has {actual:?}"
            );
        }
    }
    drop(ledger);

    // A restart finishes the job.
    let second = Service::start(&cfg, &[], "second.log").await;
    second.wait_ready().await;
    for (name, id) in &channels {
        assert_eq!(
            members(&sb, id).await,
            vec![alice.uid.clone(), bob.uid.clone()],
            "{name}:\n{}",
            second.logs()
        );
    }
}

/// While a guard holds a plan the service waits: it does not re-read the directory, re-plan
/// or call Mattermost until something could change the outcome (a directory change to a
/// held scope, an approval, the periodic reconcile). The startup reconcile is the case that
/// used to spin (15-50 plans a second).
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_held_plan_is_parked_not_replanned() {
    let sb = Sandbox::new("serve_parked").await;
    let users = [
        sb.user("alice", true, false).await,
        sb.user("bob", true, false).await,
        sb.user("cy", true, false).await,
    ];
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("held", &refs, &[], &[]).await;
    let ch = sb.channel("held", false).await;
    let link = sb.link(&g, "held");
    let cfg = sb.config(&link);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mattersync"))
        .args(["--config"])
        .arg(&cfg)
        .args(["apply", "--yes"])
        .output()
        .expect("apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(members(&sb, &ch).await.len(), 3);
    sb.remove_member(&g, &users[0]).await;
    sb.remove_member(&g, &users[1]).await;

    let cfg = sb.config(&format!(
        "{link}\n[guards]\nmax_removals = 0\n\n{}",
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    let held = svc
        .wait_metrics("the startup reconcile held by the guard", |m| {
            m.get("mattersync_guard_trips_total") >= 1.0
        })
        .await;
    let calls =
        |m: &real_serve_support::Metrics| m.sum("mattersync_mattermost_api_calls_total", &[]);
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let after = svc.metrics().await;
    let reads = after.get("mattersync_directory_reads_total")
        - held.get("mattersync_directory_reads_total");
    let mm_calls = calls(&after) - calls(&held);
    // Other tests change the shared directory meanwhile: each burst of notifications is one
    // read (to see whether it touches a held scope), never a re-plan of the held one.
    let notified = after.sum("mattersync_directory_notifications_total", &[])
        - held.sum("mattersync_directory_notifications_total", &[]);
    println!(
        "while held, over 10 s: {reads} directory reads ({notified} change notifications), {mm_calls} Mattermost calls"
    );
    assert!(
        reads <= notified + 2.0,
        "{reads} directory reads in 10 s while held, for {notified} notifications"
    );
    assert!(
        mm_calls <= 20.0,
        "{mm_calls} Mattermost calls in 10 s while held"
    );
    assert_eq!(
        after.get("mattersync_guard_trips_total"),
        1.0,
        "one trip per held plan"
    );
    assert_eq!(members(&sb, &ch).await.len(), 3, "nothing removed");
    let ledger = Ledger::open_read_only(&sb.dir.path().join("ledger.db")).expect("ledger");
    let holds = ledger
        .runs(100)
        .expect("runs")
        .into_iter()
        .filter(|r| r.outcome.as_deref() == Some("guard_tripped"))
        .count();
    assert_eq!(holds, 1, "the held plan is recorded once");
    let (status, body) = svc.get("/readyz").await;
    assert_eq!(status, 200, "held, and ready all the same: {body}");

    // A fingerprint that is not one is refused as such; an approval of some other plan
    // changes nothing.
    let (status, body) = svc
        .request(
            reqwest::Method::POST,
            "/sync?approve=0123456789abcdef",
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let other = "0123456789abcdef".repeat(4);
    let (status, body) = svc
        .request(
            reqwest::Method::POST,
            &format!("/sync?approve={other}"),
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(members(&sb, &ch).await.len(), 3, "nothing removed");
    // The approval of exactly the held plan, as GET /plan shows it, applies it, and the
    // hold clears.
    let (status, body) = svc
        .request(reqwest::Method::GET, "/plan", Some(API_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    let plan: serde_json::Value = serde_json::from_str(&body).expect("plan json");
    let fp = plan["held_fingerprint"]
        .as_str()
        .expect("a held plan")
        .to_string();
    let (status, body) = svc
        .request(
            reqwest::Method::POST,
            &format!("/sync?approve={fp}"),
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(members(&sb, &ch).await, vec![users[2].uid.clone()]);
    assert_eq!(svc.get("/readyz").await.0, 200);
}

/// Renames on both sides while `serve` runs: a directory rename is followed at once (the
/// next change cycle plans the renamed group's channel), a channel rename from the next
/// full reconcile (here `POST /sync`); neither removes anyone, and the member who leaves the
/// renamed group afterwards is removed from the renamed channel.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_follows_a_group_rename_and_a_channel_rename() {
    let sb = Sandbox::new("serve_renames").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("old", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("old", false).await;
    let cfg = sb.config(&format!(
        "{}\n[guards]\nmax_removal_ratio = 1.0\n\n{}",
        sb.link(&g, "old"),
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await.len(), 2);

    let renamed = sb.group("renamed");
    sb.rename_group(&g, &renamed).await;
    sb.rename_channel(&ch, &format!("{}-renamed", "old")).await;
    let (status, body) = svc
        .request(reqwest::Method::POST, "/sync", Some(API_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        members(&sb, &ch).await.len(),
        2,
        "nobody removed by the renames"
    );
    let (_, page) = svc.get("/").await;
    assert!(
        page.contains("renamed from"),
        "the renames are on the status page"
    );
    assert_eq!(svc.metrics().await.get("mattersync_broken_links"), 0.0);

    // bob leaves the renamed group: a change cycle removes him from the renamed channel.
    sb.remove_member(&renamed, &bob).await;
    assert!(
        wait_until(PROPAGATION, || async {
            members(&sb, &ch).await == vec![alice.uid.clone()]
        })
        .await,
        "bob left the renamed group and stayed: {:?}\n{}",
        members(&sb, &ch).await,
        svc.logs()
    );
    assert_eq!(svc.get("/readyz").await.0, 200);
}

/// A mass removal that arrives as many small directory changes: each cycle alone is within
/// `max_removals`, but over `serve.guard_window` they add up, and the one past the limit is
/// held (before: every cycle was judged on its own and all of them went through).
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_guards_count_over_a_window_of_cycles() {
    let sb = Sandbox::new("serve_window").await;
    let mut users = Vec::new();
    for n in ["a1", "a2", "a3", "a4"] {
        users.push(sb.user(n, true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("window", &refs, &[], &[]).await;
    let ch = sb.channel("window", false).await;
    let cfg = sb.config(&format!(
        "{}\n[guards]\nmax_removals = 2\nmax_removal_ratio = 1.0\n\n{}",
        sb.link(&g, "window"),
        serve_section(sb.dir.path(), "guard_window = \"10m\"")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await.len(), 4);
    for (i, u) in users.iter().take(2).enumerate() {
        sb.remove_member(&g, u).await;
        assert!(
            wait_until(PROPAGATION, || async {
                members(&sb, &ch).await.len() == 3 - i
            })
            .await,
            "removal {} went through: {}",
            i + 1,
            svc.logs()
        );
    }
    // The third removal in the window is one past max_removals = 2: held.
    sb.remove_member(&g, &users[2]).await;
    svc.wait_metrics("the third removal held", |m| {
        m.get("mattersync_guard_trips_total") >= 1.0
    })
    .await;
    assert_eq!(members(&sb, &ch).await.len(), 2, "the third one stays");
    let (status, body) = svc
        .request(reqwest::Method::GET, "/holds", Some(API_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("within the last 600 s"), "{body}");
}
