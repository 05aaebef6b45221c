//! `mattersync serve` as systemd runs it: `Type=notify` (READY=1 once the first full
//! reconcile is done, WATCHDOG=1 while it runs, STOPPING=1 on SIGTERM) through a notify
//! socket of the test's own, the Mattermost token from `$CREDENTIALS_DIRECTORY`
//! (`LoadCredential=`), and the build and API metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_testsupport::Sandbox;
use real_serve_support::{serve_section, Service};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Every datagram that arrives within `bound` (or until `until` matches one).
fn datagrams(sock: &UnixDatagram, bound: Duration, until: &str) -> Vec<String> {
    let deadline = Instant::now() + bound;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = text.contains(until);
            out.push(text);
            if done {
                break;
            }
        }
    }
    out
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_tells_systemd_it_is_ready_after_the_first_reconcile_and_reads_credentials() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new("serve_systemd").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&format!(
        "{}\n{}",
        sb.link(&g, "infra"),
        serve_section(sb.dir.path(), "")
    ));
    // No token_file: the token comes only from the credential systemd would hand over.
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("token_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cfg, text).expect("config");
    let creds = sb.dir.path().join("credentials");
    std::fs::create_dir(&creds).expect("credentials dir");
    let token = creds.join("mattermost_token");
    std::fs::write(&token, sb.servers.mm_token()).expect("credential");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o400)).expect("chmod");

    let socket = sb.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).expect("notify socket");
    let env = [
        ("NOTIFY_SOCKET", socket.to_str().expect("path")),
        ("CREDENTIALS_DIRECTORY", creds.to_str().expect("path")),
        ("WATCHDOG_USEC", "1000000"),
    ];
    let mut svc = Service::start_env(&cfg, &["--changes", "off"], "serve.log", &env).await;
    let got = datagrams(&sock, Duration::from_secs(60), "READY=1");
    assert!(
        got.iter().any(|d| d.lines().any(|l| l == "READY=1")),
        "no READY=1: {got:?}\n{}",
        svc.logs()
    );
    // READY=1 came once the first full reconcile was done: alice is in, and /readyz agrees.
    assert_eq!(
        sb.members(&ch).await.into_keys().collect::<Vec<_>>(),
        vec![alice.uid.clone()]
    );
    let (status, _) = svc.get("/readyz").await;
    assert_eq!(status, 200);
    let later = datagrams(&sock, Duration::from_secs(3), "never");
    assert!(
        later.iter().filter(|d| d.contains("WATCHDOG=1")).count() >= 2,
        "the watchdog is kept (every 0.5 s): {later:?}"
    );
    assert!(
        !later.iter().any(|d| d.contains("READY=1")),
        "READY=1 is said once: {later:?}"
    );
    // The metrics name the build and count API answers by status class, with latencies.
    let m = svc.metrics().await;
    assert_eq!(m.sum("mattersync_build_info", &[]), 1.0, "{m:?}");
    assert!(
        m.sum(
            "mattersync_mattermost_api_responses_total",
            &[("method", "GET"), ("status", "2xx")]
        ) >= 1.0,
        "{m:?}"
    );
    assert!(
        m.sum("mattersync_mattermost_api_latency_seconds_count", &[]) >= 1.0,
        "{m:?}"
    );
    assert_eq!(m.get("mattersync_links"), 1.0, "{m:?}");
    assert!(m.get("mattersync_owned_memberships") >= 0.0);
    // SIGTERM: STOPPING=1, exit 0.
    let exit = svc.terminate();
    assert!(exit.success(), "{exit:?}");
    let end = datagrams(&sock, Duration::from_secs(2), "STOPPING=1");
    assert!(end.iter().any(|d| d.contains("STOPPING=1")), "{end:?}");
}
