//! `mattersync serve` works from what changed, against the real 389-ds and Mattermost: a
//! change re-reads only the entries its notification names and plans from the Mattermost
//! state the service keeps, reading only what it cannot know; a hand join since the last
//! reconcile is seen, not taken for the service's own; a lost notification is counted as
//! drift by the next full reconcile, which repairs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_testsupport::{Sandbox, TestUser};
use real_serve_support::{serve_section, wait_until, Metrics, Service, API_TOKEN, PROPAGATION};
use std::collections::BTreeMap;

async fn members(sb: &Sandbox, channel_id: &str) -> Vec<String> {
    sb.members(channel_id).await.into_keys().collect()
}

/// The `key=value` fields of the service's `cycle timings` lines of one kind, in order.
fn cycles(logs: &str, kind: &str) -> Vec<BTreeMap<String, String>> {
    logs.lines()
        .filter(|l| l.contains("cycle timings"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|f| f.get("kind").map(String::as_str) == Some(kind))
        .collect()
}

/// A sandbox with alice in group `name` linked to its channel, and `serve` on it, ready.
async fn linked(
    test: &str,
    name: &str,
    env: &[(&str, &str)],
) -> (Sandbox, TestUser, String, String, Service) {
    let sb = Sandbox::new(test).await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group(name, &[&alice], &[], &[]).await;
    let ch = sb.channel(name, false).await;
    let cfg = sb.config(&format!(
        "{}\n{}",
        sb.link(&g, name),
        serve_section(sb.dir.path(), "")
    ));
    let svc = Service::start_env(&cfg, &[], "serve.log", env).await;
    svc.wait_ready().await;
    assert_eq!(members(&sb, &ch).await, vec![alice.uid.clone()]);
    (sb, alice, g, ch, svc)
}

/// `POST /sync` (a full reconcile, answered when it ends), then the metrics.
async fn full_reconcile(svc: &Service) -> Metrics {
    let (status, body) = svc
        .request(reqwest::Method::POST, "/sync", Some(API_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    svc.metrics().await
}

fn gets(m: &Metrics) -> f64 {
    m.get("mattersync_mattermost_api_calls_total{method=\"GET\"}")
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_change_reads_the_entries_it_names_and_plans_from_the_kept_state() {
    let (sb, alice, g, ch, svc) = linked("serve_model_change", "infra", &[]).await;
    let bob = sb.user("bob", true, false).await;
    let before = svc.metrics().await;
    let full_reads = before.get("mattersync_directory_reads_total");
    assert!(full_reads >= 1.0, "{before:?}");

    // bob joins the group: the change re-reads the group and bob's entry, not the
    // directory, and plans from what the service kept: no GET (no listing) at all.
    sb.add_member(&g, &bob).await;
    let arrived = wait_until(PROPAGATION, || async {
        members(&sb, &ch).await.contains(&bob.uid)
    })
    .await;
    assert!(arrived, "bob never arrived:\n{}", svc.logs());
    let m = svc
        .wait_metrics("the change cycle", |m| {
            m.get("mattersync_runs_total{kind=\"changes\",outcome=\"ok\"}") >= 1.0
        })
        .await;
    assert_eq!(
        m.get("mattersync_directory_reads_total"),
        full_reads,
        "a change read the whole directory:\n{}",
        svc.logs()
    );
    assert!(
        m.get("mattersync_directory_entry_reads_total") >= 2.0,
        "{m:?}"
    );
    assert_eq!(
        gets(&m),
        gets(&before),
        "a change listed something:\n{}",
        svc.logs()
    );
    let added = cycles(&svc.logs(), "changes");
    let last = added
        .iter()
        .rfind(|c| c.get("outcome").map(String::as_str) == Some("ok"))
        .unwrap_or_else(|| panic!("no change cycle line:\n{}", svc.logs()));
    // Looking bob's account up (matching by username: the reconcile read only the linked
    // group's accounts), where he is in the team and the channel (two POST .../members/ids),
    // the team add and the channel add.
    eprintln!("the change cycle: {last:?}");
    let calls: u64 = last["api_calls"].parse().expect("api_calls");
    assert!((2..=5).contains(&calls), "{last:?}");
    assert_ne!(last["ldap_entries"], "full", "{last:?}");

    // alice leaves the group: the removal is planned the same way.
    sb.remove_member(&g, &alice).await;
    let gone = wait_until(PROPAGATION, || async {
        !members(&sb, &ch).await.contains(&alice.uid)
    })
    .await;
    assert!(gone, "alice was never removed:\n{}", svc.logs());
    let m = svc
        .wait_metrics("the removal cycle", |m| {
            m.get("mattersync_runs_total{kind=\"changes\",outcome=\"ok\"}") >= 2.0
        })
        .await;
    assert_eq!(m.get("mattersync_directory_reads_total"), full_reads);
    assert_eq!(gets(&m), gets(&before), "{}", svc.logs());
    assert_eq!(members(&sb, &ch).await, vec![bob.uid.clone()]);

    // A full reconcile finds the kept state and the model as they are: no drift.
    let m = full_reconcile(&svc).await;
    assert_eq!(
        m.sum("mattersync_model_drift_total", &[]),
        0.0,
        "{m:?}\n{}",
        svc.logs()
    );
    assert!(m.get("mattersync_directory_reads_total") > full_reads);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_hand_join_since_the_reconcile_is_seen_and_not_taken_for_its_own() {
    let (sb, alice, g, ch, svc) = linked("serve_model_hand", "ops", &[]).await;
    let runs = |m: &Metrics| {
        m.get("mattersync_runs_total{kind=\"changes\",outcome=\"ok\"}")
            + m.get("mattersync_runs_total{kind=\"changes\",outcome=\"no_changes\"}")
    };
    let n = runs(&svc.metrics().await);
    let carol = sb.user("carol", true, false).await;
    // Her new entry is a change too (to nothing linked): let it pass first.
    svc.wait_metrics("the cycle of carol's new entry", |m| runs(m) > n)
        .await;

    // carol joins the channel by hand after the reconcile; the kept state cannot know.
    sb.add_by_hand(&ch, carol.mm_id.as_deref().expect("account"))
        .await;
    // Then the directory puts her in the group: the change reads where she is, so the
    // ledger records her as a member who was already there, not as one mattersync added.
    let before = svc.metrics().await;
    let n = runs(&before);
    sb.add_member(&g, &carol).await;
    svc.wait_metrics("the change cycle", |m| runs(m) > n).await;
    let after = svc.metrics().await;
    assert_eq!(
        after.get("mattersync_actions_total{action=\"add_channel_members\",outcome=\"ok\"}"),
        before.get("mattersync_actions_total{action=\"add_channel_members\",outcome=\"ok\"}"),
        "carol was added although she was there:\n{}",
        svc.logs()
    );

    // So when she leaves the group, she stays in the channel she joined herself.
    let n = runs(&svc.metrics().await);
    sb.remove_member(&g, &carol).await;
    svc.wait_metrics("the second change cycle", |m| runs(m) > n)
        .await;
    assert_eq!(
        members(&sb, &ch).await,
        vec![alice.uid.clone(), carol.uid.clone()],
        "{}",
        svc.logs()
    );
    let m = svc.metrics().await;
    assert_eq!(
        m.get("mattersync_actions_total{action=\"remove_channel_member\",outcome=\"ok\"}"),
        0.0,
        "{}",
        svc.logs()
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_a_lost_notification_is_drift_that_the_full_reconcile_counts_and_repairs() {
    // The test build's fault hook: the change source loses its notifications (an add to a
    // group is one or two: the group's, and the user's when the server maintains memberOf).
    let (sb, alice, g, ch, svc) = linked(
        "serve_model_drift",
        "web",
        &[("MATTERSYNC_FAULT_LOSE_NOTIFICATIONS", "1000")],
    )
    .await;
    let bob = sb.user("bob", true, false).await;
    let before = svc.metrics().await;
    sb.add_member(&g, &bob).await;
    // The notifications are lost: no change cycle comes, bob is not added.
    let seen = wait_until(std::time::Duration::from_secs(3), || async {
        svc.metrics()
            .await
            .get("mattersync_directory_notifications_total{source=\"syncrepl\"}")
            > before.get("mattersync_directory_notifications_total{source=\"syncrepl\"}")
    })
    .await;
    assert!(!seen, "the notification was not lost:\n{}", svc.logs());
    assert_eq!(members(&sb, &ch).await, vec![alice.uid.clone()]);

    // The next full reconcile compares the model with a fresh read: the group and bob
    // differ. It counts them, says so as an error, and applies from the fresh read.
    let m = full_reconcile(&svc).await;
    assert_eq!(
        m.get("mattersync_model_drift_total{side=\"directory\"}"),
        2.0,
        "{m:?}\n{}",
        svc.logs()
    );
    assert!(
        svc.logs().contains("the directory model had drifted"),
        "{}",
        svc.logs()
    );
    assert_eq!(
        members(&sb, &ch).await,
        vec![alice.uid.clone(), bob.uid.clone()]
    );
}
