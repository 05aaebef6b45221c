//! The directory restarts under a running `mattersync serve`: while it is down nothing is
//! removed and the service says it is not ready; when it is back the service reconnects,
//! resumes from its cookie (no full refresh) and catches up with what changed meanwhile.
//!
//! It uses a 389-ds instance of its own (`mattersync-restart`, made by `scripts/test.sh`
//! with `DIRSRV_INSTANCE=mattersync-restart scripts/dirsrv.sh up`), so no other test sees
//! the outage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_testsupport::{parse_env, Sandbox, Servers};
use real_serve_support::{serve_section, wait_until, Service, API_TOKEN};
use std::process::Command;
use std::time::Duration;

const INSTANCE: &str = "mattersync-restart";

fn dirsrv(cmd: &str) {
    let script = Servers::root().join("scripts/dirsrv.sh");
    let out = Command::new(&script)
        .arg(cmd)
        .env("DIRSRV_INSTANCE", INSTANCE)
        .env("DIRSRV_PORT", "3391")
        .env("DIRSRV_SECURE_PORT", "3638")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/dirsrv.sh");
    assert!(
        out.status.success(),
        "dirsrv.sh {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The restartable instance's connection details; the test fails without them.
fn restart_instance() -> std::collections::BTreeMap<String, String> {
    let path = Servers::root().join(format!(".local/dirsrv-{INSTANCE}.env"));
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_env(&text),
        Err(e) => panic!(
            "real_serve_restart needs the 389-ds instance {INSTANCE}: {}: {e} (scripts/test.sh \
             starts it; by hand: scripts/servers.sh up, then DIRSRV_INSTANCE={INSTANCE} \
             DIRSRV_PORT=3391 DIRSRV_SECURE_PORT=3638 scripts/dirsrv.sh up)",
            path.display()
        ),
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_reconnects_after_389ds_restarts_and_catches_up_with_nothing_missed() {
    let mut sb = Sandbox::new("serve_dirsrv_restart").await;
    let instance = restart_instance();
    // This sandbox's directory side lives in the restartable instance.
    dirsrv("up");
    sb.servers.vars.extend(instance);
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
    dirsrv("down");
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
    dirsrv("up");
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
}
