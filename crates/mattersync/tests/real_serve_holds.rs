//! What `mattersync serve` holds, against the real 389-ds and Mattermost: a mass removal that
//! arrives as 30 small directory changes, the accidental-nesting add flood, the summary an
//! admin reviews (`GET /holds`, the status page), approvals of exactly that set over HTTP and
//! from the CLI, a stale approval refused with the new summary, and a revert that clears the
//! hold with nothing applied. Every step lands in the audit trail with its actor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_ledger::{AuditQuery, Event, Ledger};
use mattersync_testsupport::Sandbox;
use real_serve_support::{serve_section, wait_until, Service, API_TOKEN, PROPAGATION};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn members(sb: &Sandbox, channel_id: &str) -> Vec<String> {
    sb.members(channel_id).await.into_keys().collect()
}

async fn holds(svc: &Service, query: &str) -> Value {
    let (status, body) = svc
        .request(
            reqwest::Method::GET,
            &format!("/holds{query}"),
            Some(API_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("holds json")
}

/// `POST /approve/<fp>`, naming the approver when `who` is given.
async fn approve(svc: &Service, fp: &str, who: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/approve/{fp}", svc.base))
        .bearer_auth(API_TOKEN)
        .timeout(Duration::from_secs(120));
    if let Some(w) = who {
        req = req.header("X-Mattersync-Approver", w);
    }
    let r = req.send().await.expect("approve");
    let status = r.status().as_u16();
    (status, r.json().await.expect("approve json"))
}

fn events(sb: &Sandbox) -> Vec<Event> {
    Ledger::open_read_only(&sb.dir.path().join("ledger.db"))
        .expect("ledger")
        .events(&AuditQuery {
            limit: 100_000,
            ..Default::default()
        })
        .expect("events")
}

/// What is held, once `cond` says it is what the test waits for.
async fn wait_hold(svc: &Service, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let got = holds(svc, "").await;
        if got["holds"].get(0).is_some_and(&cond) {
            return got["holds"][0].clone();
        }
        if Instant::now() > deadline {
            panic!("never held {what}: {got}\n{}", svc.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_holds_a_mass_removal_in_30_small_changes_and_applies_exactly_the_approved_set()
{
    let sb = Sandbox::new("holds_mass_removal").await;
    let mut users = Vec::new();
    for i in 0..34 {
        users.push(sb.user(&format!("m{i:02}"), true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("mass", &refs, &[], &[]).await;
    let ch = sb.channel("mass", false).await;
    let cfg = sb.config(&format!(
        "{}\n[guards]\nmax_removals = 20\nmax_removal_ratio = 1.0\n\n{}",
        sb.link(&g, "mass"),
        serve_section(sb.dir.path(), "guard_window = \"10m\"")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await.len(), 34);

    // 30 small changes, one member at a time, each its own syncrepl notification.
    let t = Instant::now();
    for u in users.iter().take(30) {
        sb.remove_member(&g, u).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sent = t.elapsed();
    // Every removal is either applied or held once the last change is planned.
    let settled = wait_until(PROPAGATION, || async {
        let h = holds(&svc, "").await;
        let held = h["holds"][0]["summary"]["removals"].as_u64().unwrap_or(0) as usize;
        held > 0 && held + (34 - members(&sb, &ch).await.len()) == 30
    })
    .await;
    assert!(
        settled,
        "{}
{}",
        holds(&svc, "").await,
        svc.logs()
    );
    let hold = holds(&svc, "").await["holds"][0].clone();
    let t_held = t.elapsed();
    let now = members(&sb, &ch).await.len();
    let held = hold["summary"]["removals"].as_u64().unwrap() as usize;
    let applied = 34 - now;
    assert_eq!(applied + held, 30, "applied {applied}, held {held}: {hold}");
    assert!(
        applied <= 20,
        "at most max_removals went through: {applied}"
    );
    println!(
        "30 removals sent in {sent:?}; {applied} applied, {held} held {t_held:?} after the first"
    );
    let fp = hold["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fp.len(), 64);

    // What the admin sees: the summary, the cause, where, who, how to approve.
    let sum = &hold["summary"];
    assert_eq!(sum["additions"], 0);
    assert!(sum["why"][0]
        .as_str()
        .is_some_and(|w| w.contains("within the last 600 s")));
    assert_eq!(sum["causes"][0]["group"], g.as_str(), "{sum}");
    assert_eq!(sum["causes"][0]["removals"], held);
    assert_eq!(sum["scopes"][0]["scope"], format!("{}/mass", sb.area));
    assert_eq!(sum["scopes"][0]["removals"], held);
    let removed: Vec<String> = users.iter().take(30).map(|u| u.uid.clone()).collect();
    for c in sum["changes"].as_array().unwrap() {
        assert_eq!(c["change"], "remove");
        assert!(removed.contains(&c["username"].as_str().unwrap().to_string()));
    }
    assert_eq!(hold["approve"]["cli"], format!("mattersync approve {fp}"));
    assert!(hold["approve"]["http"]
        .as_str()
        .is_some_and(|h| h.contains(&format!("{}/approve/{fp}", svc.base))));
    assert!(hold["age_seconds"].as_u64().is_some());
    assert!(hold["directory_changes"]
        .as_array()
        .is_some_and(|d| d.iter().any(|x| x == g.as_str())));
    let page = holds(&svc, "?offset=1&limit=2").await;
    let paged = &page["holds"][0]["summary"];
    assert_eq!(
        (
            &paged["changes_offset"],
            paged["changes"].as_array().unwrap().len()
        ),
        (&Value::from(1), 2.min(held - 1))
    );
    assert_eq!(page["held_changes"], held);
    let m = svc.metrics().await;
    assert_eq!(m.get("mattersync_held_changes"), held as f64);
    assert_eq!(m.get("mattersync_ready"), 1.0);
    let (status, body) = svc.get("/readyz").await;
    assert_eq!(status, 200, "a hold is not an outage: {body}");
    let (_, page) = svc.get("/").await;
    for want in [
        "id=\"holds\"",
        fp.as_str(),
        &format!("mattersync approve {fp}"),
        &format!("/approve/{fp}"),
        &format!("directory group <b>{g}</b>"),
    ] {
        assert!(page.contains(want), "the status page lacks {want}");
    }

    // A stale fingerprint is refused with what is held now; nothing changes.
    let (status, body) = approve(&svc, &"0".repeat(64), None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["approved"], false);
    assert_eq!(body["fingerprint"], fp.as_str(), "{body}");
    assert_eq!(body["hold"]["summary"]["removals"], held);
    assert_eq!(members(&sb, &ch).await.len(), now);

    // Exactly the held set, approved over HTTP by a named approver.
    let t = Instant::now();
    let (status, body) = approve(&svc, &fp, Some("ops-neil")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approved"], true);
    println!("the approval applied {held} removals in {:?}", t.elapsed());
    assert_eq!(members(&sb, &ch).await.len(), 4);
    assert_eq!(holds(&svc, "").await["holds"], Value::Array(Vec::new()));
    assert_eq!(svc.metrics().await.get("mattersync_held_changes"), 0.0);

    // The audit trail: who removed whom, and the approvals.
    let ev = events(&sb);
    let by = |actor: &str, action: &str| {
        ev.iter()
            .filter(|e| e.actor == actor && e.action == action)
            .count()
    };
    assert_eq!(by("approval:ops-neil", "remove_channel_member"), held);
    assert_eq!(by("approval:ops-neil", "approve"), 1);
    assert_eq!(by("approval:api", "approve"), 1, "the refusal");
    let refused = ev
        .iter()
        .find(|e| e.actor == "approval:api")
        .expect("refusal");
    assert_eq!(refused.outcome, "refused");
    assert!(refused.detail.as_deref().is_some_and(|d| d.contains(&fp)));
    let by_serve = ev
        .iter()
        .filter(|e| e.action == "remove_channel_member" && e.actor.starts_with("serve:"))
        .count();
    assert_eq!(by_serve, applied, "what the service applied by itself");
    let (_, page) = svc.get("/").await;
    assert!(page.contains("<code>approval:ops-neil</code>"));
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_stale_approval_is_refused_with_the_new_summary_and_the_cli_approves() {
    let sb = Sandbox::new("holds_stale").await;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(sb.user(&format!("s{i}"), true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("stale", &refs, &[], &[]).await;
    let ch = sb.channel("stale", false).await;
    let cfg = sb.config(&format!(
        "{}\n[guards]\nmax_removals = 1\nmax_removal_ratio = 1.0\n\n{}",
        sb.link(&g, "stale"),
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    sb.remove_members(&g, &[&users[0], &users[1]]).await;
    let first = wait_hold(&svc, "two removals", |h| h["summary"]["removals"] == 2).await;
    let reviewed = first["fingerprint"].as_str().unwrap().to_string();
    // The directory changes after the review: a third member leaves.
    sb.remove_member(&g, &users[2]).await;
    let now = wait_hold(&svc, "three removals", |h| h["summary"]["removals"] == 3).await;
    let current = now["fingerprint"].as_str().unwrap().to_string();
    assert_ne!(reviewed, current);

    let cli = |fp: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mattersync"))
            .arg("--config")
            .arg(&cfg)
            .args(["approve", fp, "--url", &svc.base])
            .env("USER", "tester")
            .env_remove("MATTERSYNC_CONFIG")
            .output()
            .expect("mattersync approve")
    };
    let out = cli(&reviewed);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&format!("held now: {current}")), "{stderr}");
    assert!(stderr.contains("3 removals"), "the new summary: {stderr}");
    assert_eq!(members(&sb, &ch).await.len(), 6, "nothing removed");

    let out = cli(&current);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(members(&sb, &ch).await.len(), 3);

    // `mattersync audit` has a header and an actor column.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mattersync"))
        .arg("--config")
        .arg(&cfg)
        .arg("audit")
        .env_remove("MATTERSYNC_CONFIG")
        .output()
        .expect("audit");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("AT (UTC)") && header.contains("ACTOR") && header.contains("ACTION"),
        "{text}"
    );
    let rows: Vec<&str> = lines.collect();
    let removals_by_cli = rows
        .iter()
        .filter(|l| l.contains("approval:cli:tester") && l.contains("remove_channel_member"))
        .count();
    assert_eq!(removals_by_cli, 3, "{text}");
    assert!(
        rows.iter()
            .any(|l| l.contains("approval:cli:tester") && l.contains("refused")),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_revert_clears_the_hold_with_nothing_applied() {
    let sb = Sandbox::new("holds_revert").await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(sb.user(&format!("r{i}"), true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("revert", &refs, &[], &[]).await;
    let ch = sb.channel("revert", false).await;
    let cfg = sb.config(&format!(
        "{}\n[guards]\nmax_removals = 1\nmax_removal_ratio = 1.0\n\n{}",
        sb.link(&g, "revert"),
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    sb.remove_members(&g, &[&users[0], &users[1]]).await;
    let hold = wait_hold(&svc, "two removals", |h| h["summary"]["removals"] == 2).await;
    // Someone notices the mistake and puts them back in the group.
    sb.add_members(&g, &[&users[0], &users[1]]).await;
    let t = Instant::now();
    let cleared = wait_until(PROPAGATION, || async {
        holds(&svc, "").await["holds"] == Value::Array(Vec::new())
    })
    .await;
    assert!(cleared, "the hold stayed after the revert:\n{}", svc.logs());
    println!("the hold cleared {:?} after the revert", t.elapsed());
    assert_eq!(members(&sb, &ch).await.len(), 4, "nothing removed");
    assert_eq!(svc.metrics().await.get("mattersync_held_changes"), 0.0);
    let ev = events(&sb);
    assert!(
        !ev.iter().any(|e| e.action == "remove_channel_member"),
        "nothing applied: {ev:?}"
    );
    let cleared = ev
        .iter()
        .find(|e| e.action == "hold_cleared")
        .expect("the hold clearing itself is in the audit trail");
    assert!(cleared.actor.starts_with("serve:"), "{cleared:?}");
    assert!(cleared
        .detail
        .as_deref()
        .is_some_and(|d| d.contains(hold["fingerprint"].as_str().unwrap())));
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_holds_the_accidental_nesting_add_flood_until_it_is_undone() {
    let sb = Sandbox::new("holds_nesting").await;
    let a = sb.user("small1", true, false).await;
    let b = sb.user("small2", true, false).await;
    let mut big = Vec::new();
    for i in 0..12 {
        big.push(sb.user(&format!("big{i:02}"), true, false).await);
    }
    let refs: Vec<&_> = big.iter().collect();
    let small = sb.create_group("small", &[&a, &b], &[], &[]).await;
    let everyone = sb.create_group("everyone", &refs, &[], &[]).await;
    let ch = sb.channel("small", false).await;
    let cfg = sb.config(&format!(
        "{}\n[guards]\nmax_additions = 10\n\n{}",
        sb.link(&small, "small"),
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await.len(), 2);

    // One wrong `member:` line: the big group nested into the small linked one.
    sb.nest(&small, &everyone).await;
    let hold = wait_hold(&svc, "the add flood", |h| {
        h["summary"]["additions"].as_u64().unwrap_or(0) >= 12
    })
    .await;
    let sum = &hold["summary"];
    assert_eq!(sum["removals"], 0);
    assert!(
        sum["why"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("guards.max_additions = 10")),
        "{sum}"
    );
    assert!(sum["causes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["group"] == small.as_str()));
    assert_eq!(members(&sb, &ch).await.len(), 2, "nobody added");
    assert_eq!(svc.get("/readyz").await.0, 200);

    // Undone in the directory: the hold clears, nobody was added.
    sb.unnest(&small, &everyone).await;
    let cleared = wait_until(PROPAGATION, || async {
        holds(&svc, "").await["holds"] == Value::Array(Vec::new())
    })
    .await;
    assert!(cleared, "the hold stayed after the nesting was undone");
    assert_eq!(members(&sb, &ch).await.len(), 2);
}

/// A service whose Mattermost calls go through a fault-injecting proxy.
async fn behind_proxy(
    sb: &Sandbox,
    extra: &str,
) -> (mattersync_testsupport::proxy::Proxy, std::path::PathBuf) {
    let mm_url = sb.servers.get("MATTERSYNC_MM_URL");
    let host_port = mm_url
        .split("://")
        .nth(1)
        .unwrap_or(&mm_url)
        .trim_end_matches('/')
        .to_string();
    let proxy = mattersync_testsupport::proxy::Proxy::http(&host_port).await;
    let cfg = sb.config(extra);
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace(
            &format!("url = \"{mm_url}\""),
            &format!("url = \"{}\"", proxy.http_url()),
        ),
    )
    .expect("config");
    (proxy, cfg)
}

/// Removes `n` of `users` from the group and waits until serve holds exactly that.
async fn held_removals(
    sb: &Sandbox,
    svc: &Service,
    g: &str,
    users: &[mattersync_testsupport::TestUser],
    n: usize,
) -> String {
    let gone: Vec<&_> = users.iter().take(n).collect();
    sb.remove_members(g, &gone).await;
    let hold = wait_hold(svc, "the removals", |h| h["summary"]["removals"] == n).await;
    hold["fingerprint"].as_str().unwrap().to_string()
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_an_approval_mattermost_cannot_take_yet_lapses_after_its_ttl() {
    use mattersync_testsupport::proxy::{HttpFault, Rule};
    let sb = Sandbox::new("holds_lapse").await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(sb.user(&format!("l{i}"), true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("lapse", &refs, &[], &[]).await;
    let ch = sb.channel("lapse", false).await;
    let (proxy, cfg) = behind_proxy(
        &sb,
        &format!(
            "{}\n[guards]\nmax_removals = 1\nmax_removal_ratio = 1.0\n\n{}",
            sb.link(&g, "lapse"),
            serve_section(sb.dir.path(), "approval_ttl = \"2s\"")
        ),
    )
    .await;
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    let fp = held_removals(&sb, &svc, &g, &users, 2).await;

    // Mattermost refuses to show the channel's members: the approval cannot be applied yet.
    proxy.add_rule(Rule::new(
        "GET",
        &format!("/channels/{ch}/members"),
        HttpFault::status(403),
    ));
    let (status, body) = approve(&svc, &fp, Some("ops-amy")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("approval is kept")));
    // Past the TTL, Mattermost answers again: the approval has lapsed, the hold stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.clear_rules();
    let lapsed = wait_until(PROPAGATION, || async {
        events(&sb)
            .iter()
            .any(|e| e.action == "approve" && e.outcome == "lapsed")
    })
    .await;
    assert!(lapsed, "no lapse in the audit trail:\n{}", svc.logs());
    let ev = events(&sb);
    let e = ev.iter().find(|e| e.outcome == "lapsed").expect("lapsed");
    assert_eq!(e.actor, "approval:ops-amy");
    assert!(e.detail.as_deref().is_some_and(|d| d.contains(&fp)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(members(&sb, &ch).await.len(), 4, "nothing removed");
    assert_eq!(
        holds(&svc, "").await["holds"][0]["fingerprint"],
        fp.as_str()
    );
    assert!(!ev.iter().any(|e| e.action == "remove_channel_member"));
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_an_approved_set_that_partly_failed_is_finished_under_the_same_approval() {
    use mattersync_testsupport::proxy::{HttpFault, Rule};
    let sb = Sandbox::new("holds_partial").await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(sb.user(&format!("p{i}"), true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("partial", &refs, &[], &[]).await;
    let ch = sb.channel("partial", false).await;
    let (proxy, cfg) = behind_proxy(
        &sb,
        &format!(
            "{}\n[guards]\nmax_removals = 1\nmax_removal_ratio = 1.0\n\n{}",
            sb.link(&g, "partial"),
            serve_section(sb.dir.path(), "")
        ),
    )
    .await;
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    let fp = held_removals(&sb, &svc, &g, &users, 3).await;
    // Two of the three removals fail once.
    proxy.add_rule(
        Rule::new(
            "DELETE",
            &format!("/channels/{ch}/members/"),
            HttpFault::status(403),
        )
        .times(2),
    );
    let (status, body) = approve(&svc, &fp, None).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["approved"], true);
    assert_eq!(body["run"]["users_failed"], 2, "{body}");
    // The retry of those two is within what was approved: applied without a new approval,
    // though two removals are more than max_removals = 1.
    // (The cycle says the hold cleared just after its last write.)
    let done = wait_until(PROPAGATION, || async {
        members(&sb, &ch).await.len() == 2
            && holds(&svc, "").await["holds"] == Value::Array(Vec::new())
    })
    .await;
    assert!(
        done,
        "the rest of the approved set was held again:\n{}",
        svc.logs()
    );
    let ev = events(&sb);
    let ok_removals = ev
        .iter()
        .filter(|e| {
            e.action == "remove_channel_member" && e.outcome == "ok" && e.actor == "approval:api"
        })
        .count();
    assert_eq!(ok_removals, 3, "{ev:?}");
}

/// Without `serve`: `plan` shows the hold's summary and fingerprint, `apply --approve`
/// refuses a stale one and applies the reviewed one, and the audit trail names the CLI's
/// user, as approver where it approved.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_cli_apply_approve_applies_exactly_the_reviewed_plan_and_names_the_approver() {
    let sb = Sandbox::new("holds_cli").await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(sb.user(&format!("c{i}"), true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("cli", &refs, &[], &[]).await;
    let ch = sb.channel("cli", false).await;
    let cfg = sb.config(&format!(
        "{}\n[guards]\nmax_removals = 1\nmax_removal_ratio = 1.0\n",
        sb.link(&g, "cli")
    ));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mattersync"))
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env("USER", "tester")
            .env_remove("MATTERSYNC_CONFIG")
            .output()
            .expect("mattersync")
    };
    let held_plan = || {
        let out = run(&["plan", "--json"]);
        assert!(out.status.success());
        serde_json::from_slice::<Value>(&out.stdout).expect("plan json")
    };
    assert!(run(&["apply", "--yes"]).status.success());
    assert_eq!(members(&sb, &ch).await.len(), 5);
    sb.remove_member(&g, &users[0]).await;
    sb.remove_member(&g, &users[1]).await;
    let reviewed = held_plan();
    let old = reviewed["held_fingerprint"].as_str().unwrap().to_string();
    assert_eq!(reviewed["hold"]["fingerprint"], old.as_str());
    assert_eq!(reviewed["hold"]["removals"], 2);
    assert_eq!(reviewed["hold"]["causes"][0]["group"], g.as_str());
    let text = String::from_utf8_lossy(&run(&["plan"]).stdout).into_owned();
    assert!(
        text.contains(&format!("Held ({old})"))
            && text.contains(&format!("cause: directory group {g}")),
        "{text}"
    );
    // The directory changes after the review.
    sb.remove_member(&g, &users[2]).await;
    let out = run(&["apply", "--yes", "--approve", &old]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 removals"), "the new summary: {stderr}");
    assert_eq!(members(&sb, &ch).await.len(), 5);
    let new = held_plan()["held_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run(&["apply", "--yes", "--approve", &new]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(members(&sb, &ch).await.len(), 2);

    let ev = events(&sb);
    let count = |actor: &str, action: &str, outcome: &str| {
        ev.iter()
            .filter(|e| e.actor == actor && e.action == action && e.outcome == outcome)
            .count()
    };
    assert_eq!(count("cli:tester", "add_channel_members", "ok"), 5);
    assert_eq!(
        count("approval:cli:tester", "remove_channel_member", "ok"),
        3
    );
    assert_eq!(count("approval:cli:tester", "approve", "refused"), 1);
    assert_eq!(count("approval:cli:tester", "approve", "approved"), 1);
}

/// A hold the startup reconcile made (a full one) clears by itself too: a directory change
/// to a held scope is followed at once by a full reconcile, which finds nothing held.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_hold_from_the_startup_reconcile_clears_when_the_directory_reverts() {
    let sb = Sandbox::new("holds_startup_revert").await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(sb.user(&format!("u{i}"), true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("startup", &refs, &[], &[]).await;
    let ch = sb.channel("startup", false).await;
    let link = sb.link(&g, "startup");
    let first = sb.config(&link);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mattersync"))
        .arg("--config")
        .arg(&first)
        .args(["apply", "--yes"])
        .env_remove("MATTERSYNC_CONFIG")
        .output()
        .expect("apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two members leave while the service is down; it starts with a held full reconcile.
    sb.remove_members(&g, &[&users[0], &users[1]]).await;
    let cfg = sb.config(&format!(
        "{link}\n[guards]\nmax_removals = 1\nmax_removal_ratio = 1.0\n\n{}",
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    let hold = wait_hold(&svc, "the startup removals", |h| {
        h["summary"]["removals"] == 2 && h["full_reconcile"] == true
    })
    .await;
    assert_eq!(
        svc.get("/readyz").await.0,
        200,
        "held at startup, and ready"
    );
    sb.add_members(&g, &[&users[0], &users[1]]).await;
    let cleared = wait_until(PROPAGATION, || async {
        holds(&svc, "").await["holds"] == Value::Array(Vec::new())
    })
    .await;
    assert!(
        cleared,
        "the full hold stayed after the revert:\n{}",
        svc.logs()
    );
    assert_eq!(members(&sb, &ch).await.len(), 4, "nothing removed");
    let ev = events(&sb);
    assert!(!ev.iter().any(|e| e.action == "remove_channel_member"));
    assert!(ev.iter().any(|e| e.action == "hold_cleared"
        && e.detail
            .as_deref()
            .is_some_and(|d| d.contains(hold["fingerprint"].as_str().unwrap()))));
}
