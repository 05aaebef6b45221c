//! The directory restarts under a running `mattersync serve`: while it is down nothing is
//! removed and the service says it is not ready; when it is back the service reconnects,
//! resumes from its cookie (no full refresh) and catches up with what changed meanwhile.
//!
//! Then the directory crashes (SIGKILL of `ns-slapd`) right after a change: the change is
//! not lost, nothing is removed while it is away, and the session resumes once more.
//!
//! It uses a 389-ds instance of its own (`mattersync-restart`, made by `scripts/test.sh`
//! with `DIRSRV_INSTANCE=mattersync-restart scripts/dirsrv.sh up`), so no other test sees
//! the outage, and holds its lock (`real_restarts.rs` restarts it too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_testsupport::restart::{InstanceLock, RestartDirectory};
use mattersync_testsupport::Sandbox;
use real_serve_support::{serve_section, wait_until, Service, API_TOKEN};
use std::time::Duration;

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_reconnects_after_389ds_restarts_and_catches_up_with_nothing_missed() {
    let _lock = InstanceLock::take(RestartDirectory::INSTANCE).await;
    let dir = RestartDirectory::load();
    let mut sb = Sandbox::new("serve_dirsrv_restart").await;
    // This sandbox's directory side lives in the restartable instance.
    dir.up().await;
    sb.servers.vars.extend(dir.vars.clone());
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/infra\"\n\n{}",
        sb.area,
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    let members = || async { sb.members(&ch).await.into_keys().collect::<Vec<_>>() };
    assert_eq!(members().await, vec![alice.uid.clone()]);

    // Down: the service notices, is not ready, and a sync it is asked for fails closed.
    dir.down().await;
    let noticed = wait_until(Duration::from_secs(60), || async {
        svc.get("/readyz").await.0 == 503
    })
    .await;
    assert!(
        noticed,
        "still ready with the directory down:\n{}",
        svc.logs()
    );
    let (status, body) = svc
        .request(reqwest::Method::POST, "/sync", Some(API_TOKEN))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("directory_error"), "{body}");
    assert_eq!(
        members().await,
        vec![alice.uid.clone()],
        "removed on a failed read"
    );
    svc.wait_metrics("a session error", |m| {
        m.get("mattersync_directory_session_errors_total") >= 1.0
            && m.get("mattersync_directory_connected") == 0.0
    })
    .await;

    // Back up: changes made before the service reconnects are not missed.
    dir.up().await;
    sb.add_member(&g, &bob).await;
    sb.remove_member(&g, &alice).await;
    let caught_up = wait_until(Duration::from_secs(120), || async {
        members().await == vec![bob.uid.clone()]
    })
    .await;
    assert!(caught_up, "{:?}\n{}", members().await, svc.logs());
    svc.wait_ready().await;
    let m = svc
        .wait_metrics("a resumed session", |m| {
            m.get("mattersync_directory_sessions_total{refresh=\"incremental\"}") >= 1.0
        })
        .await;
    assert_eq!(
        m.get("mattersync_directory_sessions_total{refresh=\"full\"}"),
        1.0,
        "only the first session refreshes in full: {m:?}"
    );
    assert_eq!(m.get("mattersync_directory_cookie_refused_total"), 0.0);
    assert_eq!(m.get("mattersync_directory_connected"), 1.0);
    let sessions = m.get("mattersync_directory_sessions_total{refresh=\"incremental\"}");

    // A crash right after a change: ns-slapd is killed, whether or not the service has seen
    // the change yet.
    let carol = sb.user("carol", true, false).await;
    sb.add_member(&g, &carol).await;
    dir.crash().await;
    let noticed = wait_until(Duration::from_secs(60), || async {
        svc.get("/readyz").await.0 == 503
    })
    .await;
    assert!(
        noticed,
        "still ready with the directory crashed:\n{}",
        svc.logs()
    );
    let m = members().await;
    assert!(
        m.contains(&bob.uid),
        "bob removed while the directory was down: {m:?}"
    );
    // Started again (the server recovers its database): the change made just before the
    // crash is applied, and the session resumes from the cookie once more.
    dir.up().await;
    let mut both = vec![bob.uid.clone(), carol.uid.clone()];
    both.sort();
    let caught_up = wait_until(Duration::from_secs(120), || async {
        members().await == both
    })
    .await;
    assert!(caught_up, "{:?}\n{}", members().await, svc.logs());
    svc.wait_ready().await;
    let m = svc
        .wait_metrics("a session resumed after the crash", |m| {
            m.get("mattersync_directory_sessions_total{refresh=\"incremental\"}") > sessions
        })
        .await;
    assert_eq!(
        m.get("mattersync_directory_sessions_total{refresh=\"full\"}"),
        1.0,
        "the cookie still held after the crash: {m:?}"
    );
    assert_eq!(m.get("mattersync_directory_cookie_refused_total"), 0.0);
}
