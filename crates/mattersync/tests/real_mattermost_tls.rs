//! HTTPS to Mattermost end to end: a TLS front of the project's own on loopback (the test
//! proxy with a certificate for 127.0.0.1 from a test CA) before the real Mattermost.
//! Verification is on by default, `mattermost.ca_file` is taken, another CA is refused
//! with a clear message, and nothing falls back to plain HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::run;
use mattersync_testsupport::proxy::Proxy;
use mattersync_testsupport::Sandbox;

/// The sandbox's configuration with `mattermost.url` (and `ca_file`) replaced.
fn with_mattermost(
    sb: &Sandbox,
    extra: &str,
    url: &str,
    ca_file: Option<&str>,
) -> std::path::PathBuf {
    let path = sb.config(extra);
    let text = std::fs::read_to_string(&path).expect("config");
    let old = format!("url = \"{}\"", sb.servers.get("MATTERSYNC_MM_URL"));
    assert!(text.contains(&old), "{text}");
    let new = match ca_file {
        Some(ca) => format!("url = \"{url}\"\nca_file = \"{ca}\""),
        None => format!("url = \"{url}\""),
    };
    std::fs::write(&path, text.replacen(&old, &new, 1)).expect("config");
    path
}

// Multi-threaded: the TLS front's tasks run while the test waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_mattermost_https_is_verified_by_default_takes_ca_file_and_never_falls_back() {
    let sb = Sandbox::new("mm_tls").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    // The test CA of the ledger's PostgreSQL made a certificate for 127.0.0.1: it serves here.
    let state = std::path::Path::new(&sb.servers.get("MATTERSYNC_LEDGER_PG_CA_FILE"))
        .parent()
        .expect("state dir")
        .to_path_buf();
    let (cert, key, ca) = (
        state.join("server.crt"),
        state.join("server.key"),
        state.join("ca.crt"),
    );
    let upstream = sb
        .servers
        .get("MATTERSYNC_MM_URL")
        .trim_start_matches("http://")
        .to_string();
    let front = Proxy::https(&upstream, &cert, &key).await;
    let https = format!("https://{}", front.addr());
    let link = sb.link(&g, "infra");

    // Verified by default: the test CA is not a system root, so the run stops, saying why.
    let out = run(&with_mattermost(&sb, &link, &https, None), &["plan"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.to_lowercase().contains("certificate"), "{out:?}");
    // Another CA: refused the same way.
    let other = sb.servers.get("MATTERSYNC_LDAP_CA_FILE");
    let out = run(
        &with_mattermost(&sb, &link, &https, Some(&other)),
        &["plan"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.to_lowercase().contains("certificate"), "{out:?}");
    // With the right CA: the whole run works over HTTPS.
    let out = run(
        &with_mattermost(&sb, &link, &https, Some(&ca.display().to_string())),
        &["apply", "--yes"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(sb.members(&ch).await.contains_key(&alice.uid));
    // https:// to a server that speaks plain HTTP: an error, never a plain-text retry.
    let plain = format!("https://{upstream}");
    let out = run(
        &with_mattermost(&sb, &link, &plain, Some(&ca.display().to_string())),
        &["plan"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!out.stderr.is_empty(), "{out:?}");
}
