//! Two `mattersync serve` instances on one PostgreSQL ledger, on the real servers: one
//! leads, the other waits; killing the leader (mid-apply too) hands the work over with no
//! ownership lost and nothing done twice; cutting the leader's connection to PostgreSQL
//! makes it stop and stand by.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_ledger::{AuditQuery, Ledger, PgTarget};
use mattersync_testsupport::proxy::Proxy;
use mattersync_testsupport::Sandbox;
use real_serve_support::{serve_section, wait_until, Service, API_TOKEN, PROPAGATION};
use std::time::{Duration, Instant};

/// A fresh schema on the ledger's PostgreSQL, reached through `via` (a proxy's
/// `host:port`) when given.
fn fresh_pg(sb: &Sandbox, name: &str, via: Option<&str>) -> (String, PgTarget) {
    let pg = sb.pg_ledger("MATTERSYNC_LEDGER_PG", name, via);
    (pg.url, pg.target)
}

fn config(sb: &Sandbox, url: &str, link: &str, name: &str) -> std::path::PathBuf {
    let pw = sb.servers.get("MATTERSYNC_LEDGER_PG_PASSWORD_FILE");
    let path = sb.config(&format!(
        "url = \"{url}\"\npassword_file = \"{pw}\"\n{link}\n{}",
        serve_section(sb.dir.path(), "")
    ));
    let named = sb.dir.path().join(format!("{name}.toml"));
    std::fs::rename(&path, &named).expect("config");
    named
}

async fn leader(svc: &Service) -> f64 {
    svc.metrics().await.get("mattersync_leader")
}

async fn wait_standby(svc: &Service) {
    let ok = wait_until(PROPAGATION, || async {
        let (status, body) = svc.get("/readyz").await;
        status == 503 && body.contains("standby")
    })
    .await;
    assert!(ok, "{:?}\n{}", svc.get("/readyz").await, svc.logs());
    assert_eq!(leader(svc).await, 0.0);
}

fn kill9(svc: &mut Service) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &svc.pid().to_string()])
        .status();
    assert!(svc.wait_exit(Duration::from_secs(10)).is_some());
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_two_instances_one_leads_and_a_killed_leader_is_replaced_losing_nothing() {
    let sb = Sandbox::new("failover").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let (url, target) = fresh_pg(&sb, "fo", None);
    let cfg = config(&sb, &url, &sb.link(&g, "infra"), "ha");

    let mut a = Service::start(&cfg, &[], "a.log").await;
    a.wait_ready().await;
    assert_eq!(leader(&a).await, 1.0);
    let b = Service::start(&cfg, &[], "b.log").await;
    wait_standby(&b).await;
    let (_, page) = b.get("/").await;
    assert!(page.contains("standby, leader is"), "{page}");
    // A standby takes no work and hides no hold: it says who to ask.
    let fp = "0".repeat(64);
    for (method, path) in [
        (reqwest::Method::POST, "/sync".to_string()),
        (reqwest::Method::GET, "/holds".to_string()),
        (reqwest::Method::POST, format!("/approve/{fp}")),
    ] {
        let (status, body) = b.request(method, &path, Some(API_TOKEN)).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            body.contains("standby") && body.contains("leader"),
            "{path}: {body}"
        );
    }

    // A burst of adds, and the leader killed while it applies them.
    let mut people = Vec::new();
    for i in 0..30 {
        people.push(sb.user(&format!("p{i}"), true, false).await);
    }
    sb.add_members(&g, &people.iter().collect::<Vec<_>>()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill9(&mut a);
    let t0 = Instant::now();
    // A change while nobody leads: applied once the new leader is up.
    let during = sb.user("during", true, false).await;
    sb.add_member(&g, &during).await;
    b.wait_ready().await;
    let first = t0.elapsed();
    assert_eq!(leader(&b).await, 1.0);
    let all = wait_until(PROPAGATION, || async {
        let m = sb.members(&ch).await;
        people.iter().all(|p| m.contains_key(&p.uid))
            && m.contains_key(&alice.uid)
            && m.contains_key(&during.uid)
    })
    .await;
    assert!(all, "{:?}\n{}", sb.members(&ch).await, b.logs());

    // Nine more kills of whoever leads, each replaced by the other (restarted as standby).
    let mut times = vec![first];
    let mut names = ("b", "a");
    let (mut lead, mut stand) = (b, Service::start(&cfg, &[], "a2.log").await);
    wait_standby(&stand).await;
    for i in 0..9 {
        kill9(&mut lead);
        let t = Instant::now();
        stand.wait_ready().await;
        times.push(t.elapsed());
        names = (names.1, names.0);
        let fresh = Service::start(&cfg, &[], &format!("{}{i}.log", names.1)).await;
        wait_standby(&fresh).await;
        lead = stand;
        stand = fresh;
    }
    // A change after all that is applied by the leader of the moment.
    let late = sb.user("late", true, false).await;
    sb.add_member(&g, &late).await;
    let arrived = wait_until(PROPAGATION, || async {
        sb.members(&ch).await.contains_key(&late.uid)
    })
    .await;
    assert!(arrived, "{}", lead.logs());
    times.sort();
    eprintln!(
        "failover over {} kills: p50 {:?}, max {:?} (each: takeover poll ≤ 1 s, grace 4 s, first full reconcile)",
        times.len(),
        times[times.len() / 2],
        times[times.len() - 1]
    );

    // Nothing lost, nothing twice: every member is owned as added by mattersync, and each
    // add was made (recorded ok) once.
    let ledger = Ledger::open_postgres_read_only(&target).expect("ledger");
    let facts = ledger.facts().expect("facts");
    let owned = &facts.channels[&ch];
    for p in people.iter().chain([&alice, &late, &during]) {
        let id = p.mm_id.as_deref().expect("account");
        assert_eq!(
            owned.get(id).map(|r| r.origin),
            Some(mattersync_core::Origin::Added),
            "{}: {owned:?}",
            p.uid
        );
        let adds = ledger
            .events(&AuditQuery {
                user: Some(id.to_string()),
                limit: 1000,
                ..Default::default()
            })
            .expect("events")
            .into_iter()
            .filter(|e| e.action == "add_channel_members" && e.outcome == "ok")
            .count();
        assert!(adds <= 1, "{} added {adds} times", p.uid);
    }
    assert!(ledger.intents().expect("intents").is_empty());
}

// Multi-threaded: the proxy's tasks must run while `Service::start` waits for the
// service's first line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_leader_cut_off_from_postgres_stops_writing_and_stands_by() {
    let sb = Sandbox::new("failcut").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let port = sb.servers.get("MATTERSYNC_LEDGER_PG_PORT");
    let proxy = Proxy::tcp(&format!("127.0.0.1:{port}")).await;
    let (url_a, target) = fresh_pg(&sb, "cut", Some(&proxy.addr().to_string()));
    // B reaches PostgreSQL directly; A through the proxy (same schema).
    let url_b = url_a.replace(&proxy.addr().to_string(), &format!("127.0.0.1:{port}"));
    let cfg_a = config(&sb, &url_a, &sb.link(&g, "infra"), "a");
    let cfg_b = config(&sb, &url_b, &sb.link(&g, "infra"), "b");
    let a = Service::start(&cfg_a, &[], "a.log").await;
    a.wait_ready().await;
    let b = Service::start(&cfg_b, &[], "b.log").await;
    wait_standby(&b).await;

    // Cut A off: its lock session ends, B takes over, and A stops and stands by.
    proxy.set_refusing(true);
    proxy.cut();
    let t = Instant::now();
    b.wait_ready().await;
    let took_over = t.elapsed();
    let stood_down = wait_until(PROPAGATION, || async { leader(&a).await == 0.0 }).await;
    assert!(stood_down, "{}", a.logs());
    assert!(a.logs().contains("lost the lead"), "{}", a.logs());
    eprintln!("cut off: B led after {took_over:?}");
    // The work goes on with B only.
    let bob = sb.user("bob", true, false).await;
    sb.add_member(&g, &bob).await;
    let arrived = wait_until(PROPAGATION, || async {
        sb.members(&ch).await.contains_key(&bob.uid)
    })
    .await;
    assert!(arrived, "{}", b.logs());
    // A's connection back: it stays a standby while B leads.
    proxy.set_refusing(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_standby(&a).await;
    let row = mattersync_ledger::leader(&target)
        .expect("leader")
        .expect("a leader");
    assert!(row.epoch >= 2, "{row:?}");
    let ledger = Ledger::open_postgres_read_only(&target).expect("ledger");
    assert!(ledger.intents().expect("intents").is_empty());
    assert_eq!(
        ledger.facts().expect("facts").channels[&ch]
            .get(bob.mm_id.as_deref().expect("account"))
            .map(|r| r.origin),
        Some(mattersync_core::Origin::Added)
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_both_instances_come_back_after_postgres_restarts_and_one_leads() {
    let sb = Sandbox::new("failpgrestart").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    // The cluster of its own that this test may restart.
    let pg = sb.pg_ledger("MATTERSYNC_LEDGER2_PG", "rs", None);
    let target = pg.target.clone();
    let path = sb.config(&format!(
        "{}{}\n{}",
        pg.config_lines(),
        sb.link(&g, "infra"),
        serve_section(sb.dir.path(), "")
    ));
    let a = Service::start(&path, &[], "a.log").await;
    a.wait_ready().await;
    let b = Service::start(&path, &[], "b.log").await;
    wait_standby(&b).await;
    let epoch_before = mattersync_ledger::leader(&target)
        .expect("leader")
        .expect("row")
        .epoch;

    let restart = std::process::Command::new(format!(
        "{}/scripts/ledger-pg.sh",
        mattersync_testsupport::Servers::root().display()
    ))
    .arg("restart")
    .env("MATTERSYNC_LEDGER_PG_CLUSTER", "ledger2")
    .env(
        "MATTERSYNC_LEDGER_PG_PORT",
        sb.servers.get("MATTERSYNC_LEDGER2_PG_PORT"),
    )
    .status()
    .expect("restart PostgreSQL");
    assert!(restart.success());
    // Every session ended; both instances reconnect and exactly one leads.
    let one = wait_until(Duration::from_secs(60), || async {
        let (la, lb) = (leader(&a).await, leader(&b).await);
        la + lb == 1.0 && (a.get("/readyz").await.0 == 200 || b.get("/readyz").await.0 == 200)
    })
    .await;
    assert!(one, "a:\n{}\nb:\n{}", a.logs(), b.logs());
    let row = mattersync_ledger::leader(&target)
        .expect("leader")
        .expect("row");
    assert!(row.epoch > epoch_before, "{row:?}");
    // And the work goes on.
    let bob = sb.user("bob", true, false).await;
    sb.add_member(&g, &bob).await;
    let arrived = wait_until(PROPAGATION, || async {
        sb.members(&ch).await.contains_key(&bob.uid)
    })
    .await;
    assert!(arrived, "a:\n{}\nb:\n{}", a.logs(), b.logs());
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_frozen_leader_is_replaced_and_stands_by_when_it_thaws() {
    let sb = Sandbox::new("failfreeze").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let (url, target) = fresh_pg(&sb, "fz", None);
    let cfg = config(&sb, &url, &sb.link(&g, "infra"), "fz");
    let a = Service::start(&cfg, &[], "a.log").await;
    a.wait_ready().await;
    let b = Service::start(&cfg, &[], "b.log").await;
    wait_standby(&b).await;
    let signal = |sig: &str| {
        let _ = std::process::Command::new("kill")
            .args([sig, &a.pid().to_string()])
            .status();
    };
    // Frozen (SIGSTOP): its lock session goes idle and PostgreSQL ends it; B takes over.
    signal("-STOP");
    let t = Instant::now();
    b.wait_ready().await;
    eprintln!("frozen leader replaced after {:?}", t.elapsed());
    let bob = sb.user("bob", true, false).await;
    sb.add_member(&g, &bob).await;
    let arrived = wait_until(PROPAGATION, || async {
        sb.members(&ch).await.contains_key(&bob.uid)
    })
    .await;
    assert!(arrived, "{}", b.logs());
    // Thawed, A finds its lead gone and stands by; B still leads.
    signal("-CONT");
    let stood_by = wait_until(PROPAGATION, || async {
        a.get("/readyz").await.1.contains("standby")
    })
    .await;
    assert!(stood_by, "{}", a.logs());
    assert_eq!(leader(&b).await, 1.0);
    let ledger = Ledger::open_postgres_read_only(&target).expect("ledger");
    assert!(ledger.intents().expect("intents").is_empty());
}
