//! The status page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `scripts/chromium.sh`) renders the page of a running service; the test reads the DOM the
//! browser built and saves a screenshot under `target/screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_testsupport::{Sandbox, Servers};
use real_serve_support::{serve_section, wait_until, Service, PROPAGATION};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser; the test fails without one.
fn chromium() -> PathBuf {
    let found = ["chromium", "chromium-browser"].iter().find_map(|b| {
        let out = Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .ok()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
    });
    found.unwrap_or_else(|| {
        panic!(
            "real_serve_status_page needs chromium, which is not installed \
             (scripts/chromium.sh installs it)"
        )
    })
}

/// Runs headless Chromium with a fresh profile, bounded in time.
fn browse(browser: &Path, profile: &Path, args: &[&str], url: &str) -> std::process::Output {
    let out = Command::new("timeout")
        .arg("120")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,1200",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Servers::root().join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_status_page_shows_links_changes_pending_users_and_runs_in_chromium() {
    let sb = Sandbox::new("serve_status_page").await;
    let browser = chromium();
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let late = sb.user("late", false, false).await;
    let g = sb.create_group("infra", &[&alice, &late], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/infra\"\n\n{}",
        sb.area,
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    sb.add_member(&g, &bob).await;
    let arrived = wait_until(PROPAGATION, || async {
        sb.members(&ch).await.contains_key(&bob.uid)
    })
    .await;
    assert!(arrived, "{}", svc.logs());
    svc.wait_metrics("the change cycle", |m| {
        m.get("mattersync_runs_total{kind=\"changes\",outcome=\"ok\"}") >= 1.0
    })
    .await;

    let url = format!("{}/", svc.base);
    let profile = tempfile::tempdir().expect("profile");
    let dom = browse(&browser, profile.path(), &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let section = |id: &str| -> String {
        let start = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no section {id} in\n{dom}"));
        let rest = &dom[start..];
        rest[..rest.find("</section>").unwrap_or(rest.len())].to_string()
    };
    assert!(dom.contains("<title>mattersync — ready</title>"), "{dom}");
    assert!(
        dom.contains("<span id=\"ready\" class=\"badge good\">ready</span>"),
        "{dom}"
    );
    assert!(
        !dom.contains("id=\"attention\""),
        "nothing needs attention:\n{dom}"
    );
    let links = section("links");
    assert!(
        links.contains(&g)
            && links.contains(&format!("{}/infra", sb.area))
            && links.contains("config file"),
        "{links}"
    );
    let pending = section("pending");
    assert!(
        pending.contains(&late.uid) && pending.contains(&g),
        "{pending}"
    );
    let changes = section("changes");
    assert!(
        changes.contains("add channel members")
            && changes.contains(&alice.uid)
            && changes.contains(&bob.uid),
        "{changes}"
    );
    let runs = section("runs");
    assert!(runs.contains("changes") && runs.contains("full"), "{runs}");
    assert!(section("ledger-runs").contains("apply"));

    let shot = screenshots().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().expect("profile");
    browse(
        &browser,
        profile.path(),
        &[&format!("--screenshot={}", shot.display())],
        &url,
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "suspiciously small screenshot: {} bytes",
        png.len()
    );
    eprintln!("status page screenshot: {}", shot.display());
}

/// A hold as an admin first sees it: the page stays "ready", says at the top that a guard
/// holds changes, and its Held section names the cause, the channel, the users, the
/// fingerprint and the exact commands that approve it.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_status_page_shows_a_hold_and_how_to_approve_it_in_chromium() {
    let sb = Sandbox::new("serve_status_page_hold").await;
    let browser = chromium();
    let mut users = Vec::new();
    for n in ["ann", "ben", "cat", "dan"] {
        users.push(sb.user(n, true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("board", &refs, &[], &[]).await;
    let _ch = sb.channel("board", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/board\"\n\n[guards]\nmax_removals = 1\nmax_removal_ratio = 1.0\n\n{}",
        sb.area,
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    sb.remove_members(&g, &[&users[0], &users[1]]).await;
    svc.wait_metrics("the hold", |m| m.get("mattersync_held_changes") == 2.0)
        .await;

    let url = format!("{}/", svc.base);
    let profile = tempfile::tempdir().expect("profile");
    let dom = browse(&browser, profile.path(), &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(
        dom.contains("<title>mattersync — ready</title>"),
        "a hold is not an outage:\n{dom}"
    );
    let start = dom.find("id=\"holds\"").expect("a Held section");
    let held = &dom[start..];
    let held = &held[..held.find("</section>").unwrap_or(held.len())];
    for want in [
        "2 change(s) wait for an approval",
        &format!("directory group <b>{g}</b>"),
        &format!("{}/board", sb.area),
        &users[0].uid,
        &users[1].uid,
        "mattersync approve ",
        "/approve/",
    ] {
        assert!(
            held.contains(want),
            "the Held section lacks {want}:\n{held}"
        );
    }
    assert!(!held.contains(&users[2].uid), "only who is held");

    let shot = screenshots().join("status-page-held.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().expect("profile");
    browse(
        &browser,
        profile.path(),
        &[&format!("--screenshot={}", shot.display())],
        &url,
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    eprintln!("held status page screenshot: {}", shot.display());
}
