//! The fault matrix, end to end: the real `mattersync` binary, the real 389-ds and the real
//! Mattermost, with a fault-injecting proxy (`mattersync_testsupport::proxy`) in front of
//! each. RELIABILITY.md lists every scenario: what is injected, what mattersync must do,
//! what is checked.
//!
//! Every scenario starts the same way ([`Rig::new`]): alice and bob are in the group and
//! were added to its channel by a first, clean run; then the directory changes (bob leaves,
//! carol joins), so the run under fault has one intended removal and one intended add. Each
//! scenario then checks, in this order:
//! 1. while the fault lasts: the exit code and a clear error naming the cause;
//! 2. no unintended removal: alice (wanted throughout) is never taken out, and a fault in
//!    reading either side makes no write at all (the proxy's log proves it);
//! 3. after the fault is gone, one more run makes every intended change;
//! 4. the ledger is consistent ([`Rig::assert_converged`]): no unsettled intents, every
//!    membership it says mattersync added is really there, every wanted member is recorded,
//!    and a fresh plan has nothing left to do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{names, Out};
use mattersync_core::{Origin, RecordState};
use mattersync_ledger::Ledger;
use mattersync_testsupport::ldap3;
use mattersync_testsupport::proxy::{HttpFault, Proxy, Rule, TcpFault};
use mattersync_testsupport::{Sandbox, TestUser};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Long enough for anything a test waits for; a wait that runs out fails the test.
const PATIENCE: Duration = Duration::from_secs(60);

fn host_port(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_string()
}

fn sorted(v: &[&TestUser]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|u| u.uid.clone()).collect();
    v.sort();
    v
}

/// One scenario's world: a sandbox, both proxies, a config that goes through them.
struct Rig {
    sb: Sandbox,
    mm: Proxy,
    ldap: Proxy,
    cfg: PathBuf,
    group: String,
    channel: String,
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
    env: Vec<(String, String)>,
}

impl Rig {
    /// alice and bob synced into the channel by a clean run; then bob leaves the group and
    /// carol joins it.
    async fn new(test: &str) -> Rig {
        let sb = Sandbox::new(test).await;
        let alice = sb.user("alice", true, false).await;
        let bob = sb.user("bob", true, false).await;
        let carol = sb.user("carol", true, false).await;
        let group = sb.create_group("infra", &[&alice, &bob], &[], &[]).await;
        let channel = sb.channel("infra", false).await;
        let mm = Proxy::http(&host_port(&sb.servers.get("MATTERSYNC_MM_URL"))).await;
        let ldap = Proxy::tcp(&host_port(&sb.servers.get("MATTERSYNC_LDAPS_URL"))).await;
        let cfg = sb.config_with(
            &ldap.ldap_url(true),
            &format!(
                "[[link]]\ngroup = \"{group}\"\nchannel = \"{}/infra\"\n\n[guards]\nmax_removal_ratio = 1.0\n",
                sb.area
            ),
        );
        let env = vec![
            ("MATTERSYNC__MATTERMOST__URL".to_string(), mm.http_url()),
            (
                "MATTERSYNC__MATTERMOST__TIMEOUT_SECS".to_string(),
                "2".to_string(),
            ),
            (
                "MATTERSYNC__DIRECTORY__TIMEOUT_SECS".to_string(),
                "3".to_string(),
            ),
        ];
        let rig = Rig {
            sb,
            mm,
            ldap,
            cfg,
            group,
            channel,
            alice,
            bob,
            carol,
            env,
        };
        let out = rig.apply().await;
        assert_eq!(out.code, 0, "the clean first run: {out:?}");
        rig.assert_members(&[&rig.alice, &rig.bob]).await;
        rig.sb.remove_member(&rig.group, &rig.bob).await;
        rig.sb.add_member(&rig.group, &rig.carol).await;
        rig.mm.clear_seen();
        rig
    }

    /// Runs the binary through the proxies (on a blocking thread: the proxies live on this
    /// test's runtime).
    async fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Out {
        let cfg = self.cfg.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            common::run_env(&cfg, &args, &env)
        })
        .await
        .expect("run mattersync")
    }

    async fn apply(&self) -> Out {
        self.run(&["apply", "--yes", "--json"], &[]).await
    }

    /// Starts `apply` without waiting (for the kill -9 scenarios).
    fn spawn_apply(&self) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_mattersync"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--config")
            .arg(&self.cfg)
            .args(["apply", "--yes", "--json"])
            .env_remove("MATTERSYNC_CONFIG")
            .env("MATTERSYNC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mattersync")
    }

    async fn assert_members(&self, want: &[&TestUser]) {
        assert_eq!(
            names(&self.sb.members(&self.channel).await),
            sorted(want),
            "channel members"
        );
    }

    /// alice, wanted all along, is still in the channel.
    async fn assert_alice_stays(&self) {
        let m = names(&self.sb.members(&self.channel).await);
        assert!(m.contains(&self.alice.uid), "alice was removed: {m:?}");
    }

    /// No call that changes Mattermost reached it.
    fn assert_no_writes(&self) {
        let w = self.mm.writes_reaching_server();
        assert!(w.is_empty(), "writes reached Mattermost: {w:?}");
    }

    /// After recovery: the channel holds exactly `want`, the ledger agrees with Mattermost,
    /// and a fresh plan is empty.
    async fn assert_converged(&self, want: &[&TestUser]) {
        self.assert_members(want).await;
        let plan = self
            .run(&["plan", "--json", "--detailed-exitcode"], &[])
            .await;
        assert_eq!(plan.code, 0, "a fresh plan still has changes: {plan:?}");
        let ledger = Ledger::open(&self.sb.dir.path().join("ledger.db")).expect("open ledger");
        // No intent left unsettled.
        let pending = ledger.intents().expect("intents");
        assert!(pending.is_empty(), "unsettled intents: {pending:?}");
        let facts = ledger.facts().expect("facts");
        let members = self
            .sb
            .mm
            .channel_members(&self.channel)
            .await
            .expect("members");
        let records = facts
            .channels
            .get(&self.channel)
            .cloned()
            .unwrap_or_default();
        for (user, r) in &records {
            if r.state == RecordState::Present {
                assert!(
                    members.contains_key(user),
                    "the ledger says {user} is present ({:?}) but Mattermost does not have them",
                    r.origin
                );
            }
        }
        for u in want {
            let id = u.mm_id.as_deref().expect("account");
            let r = records
                .get(id)
                .unwrap_or_else(|| panic!("{} is in the channel but not in the ledger", u.uid));
            assert_eq!(r.state, RecordState::Present, "{}: {r:?}", u.uid);
            assert_eq!(
                r.origin,
                Origin::Added,
                "{} was added by mattersync: {r:?}",
                u.uid
            );
        }
    }

    /// A later directory change is still followed: proves the ledger kept ownership right
    /// (a membership mattersync added is removed when the user leaves the group).
    async fn assert_ownership_kept(&self, user: &TestUser) {
        self.sb.remove_member(&self.group, user).await;
        let out = self.apply().await;
        assert_eq!(out.code, 0, "{out:?}");
        let m = names(&self.sb.members(&self.channel).await);
        assert!(
            !m.contains(&user.uid),
            "{} left the group but stayed: the ledger lost that mattersync added them ({m:?})",
            user.uid
        );
    }

    fn ch(&self) -> String {
        format!("/channels/{}/members", self.channel)
    }
}

fn failures(out: &Out) -> String {
    out.json()["report"]["failures"].to_string()
}

// ------------------------------------------------------------------------------------------
// Mattermost: rate limits, server errors, resets, slow and malformed answers
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_a_429_storm_on_writes_is_waited_out_with_retry_after() {
    let rig = Rig::new("faults_429_storm").await;
    rig.mm
        .add_rule(Rule::new("POST", "/members", HttpFault::too_many(1)).times(3));
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert!(
        v["api_calls"]["rate_limited"].as_u64().unwrap_or(0) >= 3,
        "{v}"
    );
    let injected = rig
        .mm
        .seen()
        .iter()
        .filter(|s| s.action == "injected 429")
        .count();
    assert_eq!(injected, 3);
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_a_429_storm_longer_than_the_retries_fails_clearly_then_recovers() {
    let rig = Rig::new("faults_429_forever").await;
    rig.mm
        .add_rule(Rule::new("POST", &rig.ch(), HttpFault::too_many(1)));
    let out = rig.apply().await;
    assert_eq!(out.code, 5, "{out:?}");
    let f = failures(&out);
    assert!(f.contains("429") && f.contains(&rig.carol.uid), "{f}");
    rig.assert_alice_stays().await;
    // The audit trail names the failure.
    let audit = rig
        .run(
            &["audit", "--json", "--failed", "--user", &rig.carol.uid],
            &[],
        )
        .await;
    let events = audit.json();
    assert!(
        events["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["outcome"] == "failed")),
        "{events}"
    );
    rig.mm.clear_rules();
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_a_5xx_burst_on_reads_and_writes_is_retried() {
    let rig = Rig::new("faults_5xx_burst").await;
    rig.mm
        .add_rule(Rule::new("GET", &rig.ch(), HttpFault::status(503)).times(3));
    rig.mm
        .add_rule(Rule::new("POST", &rig.ch(), HttpFault::status(502)).times(2));
    rig.mm
        .add_rule(Rule::new("DELETE", &rig.ch(), HttpFault::status(500)).times(2));
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    assert!(v["api_calls"]["retries"].as_u64().unwrap_or(0) >= 7, "{v}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_5xx_on_every_read_stops_before_planning_and_writes_nothing() {
    let rig = Rig::new("faults_5xx_reads").await;
    rig.mm
        .add_rule(Rule::new("GET", &rig.ch(), HttpFault::status(503)));
    let out = rig.apply().await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("503") && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    rig.assert_no_writes();
    rig.assert_members(&[&rig.alice, &rig.bob]).await;
    rig.mm.clear_rules();
    assert_eq!(rig.apply().await.code, 0);
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_connection_resets_are_retried() {
    let rig = Rig::new("faults_resets").await;
    rig.mm
        .add_rule(Rule::new("GET", "/members", HttpFault::ResetBefore).times(3));
    rig.mm
        .add_rule(Rule::new("POST", "/members", HttpFault::ResetBefore).times(2));
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    let resets = rig
        .mm
        .seen()
        .iter()
        .filter(|s| s.action == "reset before")
        .count();
    assert_eq!(resets, 5);
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_a_member_list_cut_short_is_an_error_not_fewer_members() {
    let rig = Rig::new("faults_truncated").await;
    // The member list arrives cut after 300 bytes (headers and part of the JSON), every time.
    rig.mm
        .add_rule(Rule::new("GET", &rig.ch(), HttpFault::Truncate(300)));
    let out = rig.apply().await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("nothing was changed"), "{out:?}");
    rig.assert_no_writes();
    rig.assert_members(&[&rig.alice, &rig.bob]).await;
    rig.mm.clear_rules();
    assert_eq!(rig.apply().await.code, 0);
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_malformed_answers_are_refused_before_anything_changes() {
    let rig = Rig::new("faults_malformed").await;
    for (body, what) in [
        (r#"[{"user_id": 12"#, "cut JSON"),
        (r#"{"members": []}"#, "an object instead of a list"),
        (r#"[{"channel_id": "x"}]"#, "members without user_id"),
        ("<html>502 Bad Gateway</html>", "an HTML page"),
    ] {
        rig.mm.clear_rules();
        rig.mm.clear_seen();
        rig.mm
            .add_rule(Rule::new("GET", &rig.ch(), HttpFault::ok_body(body)));
        let out = rig.apply().await;
        assert_eq!(out.code, 1, "{what}: {out:?}");
        assert!(
            out.stderr.contains(&rig.channel) && out.stderr.contains("nothing was changed"),
            "{what}: {out:?}"
        );
        rig.assert_no_writes();
        rig.assert_members(&[&rig.alice, &rig.bob]).await;
    }
    rig.mm.clear_rules();
    assert_eq!(rig.apply().await.code, 0);
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_a_read_slower_than_the_timeout_is_retried() {
    let rig = Rig::new("faults_slow_read").await;
    // Timeout 2 s; the first two member listings take 3 s.
    rig.mm
        .add_rule(Rule::new("GET", &rig.ch(), HttpFault::Delay(Duration::from_secs(3))).times(2));
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_an_add_whose_answer_is_lost_stays_mattersyncs() {
    let rig = Rig::new("faults_lost_add").await;
    // Every channel add reaches Mattermost, but the answer never comes back.
    rig.mm
        .add_rule(Rule::new("POST", &rig.ch(), HttpFault::ResetAfter));
    let out = rig.apply().await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(failures(&out).contains(&rig.carol.uid), "{out:?}");
    // The add did happen.
    rig.assert_members(&[&rig.alice, &rig.carol]).await;
    rig.mm.clear_rules();
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
    rig.assert_ownership_kept(&rig.carol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_an_add_slower_than_the_timeout_that_lands_later_stays_mattersyncs() {
    let rig = Rig::new("faults_slow_add").await;
    // Timeout 2 s: every channel add is answered after 3 s, too late, but it is made.
    rig.mm.add_rule(Rule::new(
        "POST",
        &rig.ch(),
        HttpFault::Delay(Duration::from_secs(3)),
    ));
    let out = rig.apply().await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(failures(&out).contains("timed out"), "{out:?}");
    rig.mm.clear_rules();
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
    rig.assert_ownership_kept(&rig.carol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_a_removal_whose_answer_is_lost_is_not_taken_for_leaving() {
    let rig = Rig::new("faults_lost_removal").await;
    rig.mm
        .add_rule(Rule::new("DELETE", &rig.ch(), HttpFault::ResetAfter));
    let out = rig.apply().await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(failures(&out).contains(&rig.bob.uid), "{out:?}");
    rig.mm.clear_rules();
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
    // bob comes back to the group: mattersync removed him, he did not leave on his own, so
    // he is added again.
    rig.sb.add_member(&rig.group, &rig.bob).await;
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.bob, &rig.carol])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_restarting_mid_apply_and_back_within_the_retries() {
    let rig = Rig::new("faults_mm_restart_short").await;
    // Simulated restart: the first channel add is held, then every connection dies and new
    // ones are refused for 1 s (less than the retries' shortest total backoff, ~3.9 s).
    rig.mm
        .add_rule(Rule::new("POST", &rig.ch(), HttpFault::Hold { forward: false }).times(1));
    let child = rig.spawn_apply();
    assert!(rig.mm.wait_for("POST", &rig.ch(), PATIENCE).await);
    rig.mm.begin_outage();
    rig.mm.release();
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.mm.set_refusing(false);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_mm_down_for_the_rest_of_the_apply_fails_clearly_then_recovers() {
    let rig = Rig::new("faults_mm_restart_long").await;
    rig.mm
        .add_rule(Rule::new("POST", &rig.ch(), HttpFault::Hold { forward: false }).times(1));
    let child = rig.spawn_apply();
    assert!(rig.mm.wait_for("POST", &rig.ch(), PATIENCE).await);
    rig.mm.begin_outage();
    rig.mm.release();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(stdout.contains("cannot connect"), "{stdout}");
    rig.assert_alice_stays().await;
    // While it is down, a run says so and changes nothing.
    let out = rig.apply().await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("cannot connect"), "{out:?}");
    rig.mm.set_refusing(false);
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

// ------------------------------------------------------------------------------------------
// kill -9 of mattersync
// ------------------------------------------------------------------------------------------

async fn kill_with_a_write_in_flight(test: &str, lands: bool) {
    let rig = Rig::new(test).await;
    rig.mm
        .add_rule(Rule::new("POST", &rig.ch(), HttpFault::Hold { forward: lands }).times(1));
    let mut child = rig.spawn_apply();
    assert!(rig.mm.wait_for("POST", &rig.ch(), PATIENCE).await);
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    // The write arrives (or not) after mattersync is dead.
    rig.mm.release();
    assert!(
        rig.mm
            .wait_for_action(if lands { "forwarded" } else { "dropped" }, PATIENCE)
            .await
    );
    rig.assert_alice_stays().await;
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
    rig.assert_ownership_kept(&rig.carol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_kill9_with_an_add_in_flight_that_lands_after_death() {
    kill_with_a_write_in_flight("faults_kill_lands", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_kill9_with_an_add_in_flight_that_never_lands() {
    kill_with_a_write_in_flight("faults_kill_lost", false).await
}

/// kill -9 during a batch add, and an immediate rerun: Mattermost finishes the dead client's
/// add after the rerun read the channel, so the rerun's add of the same user answers "already
/// exists". That is success (before: HTTP 400 and exit 5, in 10 of 21 kills), and the
/// membership is mattersync's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_kill9_during_a_batch_add_then_an_immediate_rerun_exits_0() {
    let rig = Rig::new("faults_kill_orphan").await;
    // The dead client's add is held in flight and lands between the rerun's read of the
    // channel and the rerun's add. The two adds then race inside Mattermost, and the loser
    // is told "already exists" (a unique-key conflict): the proxy gives the rerun's add that
    // answer, exactly as the server words it, so the race is the same every time.
    rig.mm
        .add_rule(Rule::new("POST", &rig.ch(), HttpFault::Hold { forward: true }).times(1));
    let mut child = rig.spawn_apply();
    assert!(rig.mm.wait_for("POST", &rig.ch(), PATIENCE).await);
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    rig.mm.add_rule(
        Rule::new(
            "POST",
            &rig.ch(),
            HttpFault::Respond(
                400,
                Vec::new(),
                mattersync_testsupport::proxy::mm_error(
                    400,
                    "app.channel.save_member.exists.app_error",
                    "A channel member with that ID already exists.",
                ),
            ),
        )
        .times(1),
    );
    rig.mm.clear_seen();
    let rerun = rig.run(
        &["apply", "--yes", "--json"],
        &[("MATTERSYNC__MATTERMOST__TIMEOUT_SECS", "20")],
    );
    let release = async {
        // The rerun has read the channel's members: now the orphan lands.
        assert!(rig.mm.wait_for("GET", &rig.ch(), PATIENCE).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        rig.mm.release();
    };
    let (out, ()) = tokio::join!(rerun, release);
    // The orphan lands.
    let carol = rig.carol.uid.clone();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !names(&rig.sb.members(&rig.channel).await).contains(&carol) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the orphaned add never landed: {:?}",
            rig.mm.seen()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let posts = rig
        .mm
        .seen()
        .iter()
        .filter(|s| s.method == "POST" && s.target.contains(&rig.ch()))
        .count();
    assert!(
        posts >= 1,
        "the rerun added carol again while the orphan was in flight: {out:?} {:?}",
        rig.mm.seen()
    );
    assert!(
        rig.mm.seen().iter().any(|s| s.action.contains("400")),
        "the rerun's add was answered 'already exists': {:?}",
        rig.mm.seen()
    );
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
    rig.assert_ownership_kept(&rig.carol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_kill9_right_after_a_removal_then_rerun() {
    let rig = Rig::new("faults_kill_removal").await;
    // Which write is bob's removal?
    let plan = rig.run(&["plan", "--json"], &[]).await.json();
    let actions = plan["plan"]["actions"].as_array().expect("actions").clone();
    let writes: Vec<&serde_json::Value> = actions
        .iter()
        .filter(|a| !a["type"].as_str().unwrap_or("").starts_with("record_"))
        .collect();
    let n = writes
        .iter()
        .position(|a| a["type"] == "remove_channel_member")
        .expect("a removal is planned")
        + 1;
    let out = rig
        .run(
            &["apply", "--yes"],
            &[("MATTERSYNC_FAULT_ABORT_AFTER_WRITE", &n.to_string())],
        )
        .await;
    assert_ne!(out.code, 0, "{out:?}");
    rig.assert_alice_stays().await;
    let out = rig.apply().await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
    // The ledger knows mattersync removed bob (not that he left): back in the group, back in
    // the channel.
    rig.sb.add_member(&rig.group, &rig.bob).await;
    assert_eq!(rig.apply().await.code, 0);
    rig.assert_converged(&[&rig.alice, &rig.bob, &rig.carol])
        .await;
}

// ------------------------------------------------------------------------------------------
// The directory: cut, stalled, restarted, limited, partial
// ------------------------------------------------------------------------------------------

/// Bytes the directory sends for one whole run (through a clean proxy).
async fn measure_directory_read(rig: &Rig) -> usize {
    let before = rig.ldap.conns().len();
    let out = rig.run(&["plan", "--json"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    // The proxy notes a connection when both ends have closed it.
    let deadline = std::time::Instant::now() + PATIENCE;
    while rig.ldap.conns().len() == before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conns = rig.ldap.conns();
    let down = conns[before..].iter().map(|c| c.down).max().unwrap_or(0);
    assert!(down > 4096, "a directory read of only {down} bytes");
    down
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_dir_a_connection_cut_mid_read_changes_nothing() {
    let rig = Rig::new("faults_dir_cut").await;
    let total = measure_directory_read(&rig).await;
    // Cut halfway, and cut when nine tenths have arrived (a "partial result").
    for at in [total / 2, total * 9 / 10] {
        rig.ldap.set_tcp_fault(TcpFault::ResetAfter(at));
        let out = rig.apply().await;
        assert_eq!(out.code, 1, "cut at {at} of {total} bytes: {out:?}");
        assert!(
            out.stderr.contains("directory: read failed")
                && out.stderr.contains("nothing was changed"),
            "cut at {at}: {out:?}"
        );
        rig.assert_no_writes();
        rig.assert_members(&[&rig.alice, &rig.bob]).await;
    }
    rig.ldap.set_tcp_fault(TcpFault::Pass);
    assert_eq!(rig.apply().await.code, 0);
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_dir_a_directory_that_stops_answering_mid_read_times_out() {
    let rig = Rig::new("faults_dir_stall").await;
    let total = measure_directory_read(&rig).await;
    rig.ldap.set_tcp_fault(TcpFault::StallAfter(total / 2));
    let out = rig.apply().await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("timed out") && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    rig.assert_no_writes();
    rig.assert_members(&[&rig.alice, &rig.bob]).await;
    rig.ldap.set_tcp_fault(TcpFault::Pass);
    assert_eq!(rig.apply().await.code, 0);
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_dir_restarted_mid_read_changes_nothing_then_recovers() {
    let rig = Rig::new("faults_dir_restart").await;
    let total = measure_directory_read(&rig).await;
    // Hold the read halfway, then "restart": every connection dies, new ones are refused.
    rig.ldap.set_tcp_fault(TcpFault::StallAfter(total / 2));
    let env = rig.env.clone();
    let cfg = rig.cfg.clone();
    let run = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        common::run_env(
            &cfg,
            &["apply", "--yes"],
            &[
                env.as_slice(),
                &[("MATTERSYNC__DIRECTORY__TIMEOUT_SECS", "30")],
            ]
            .concat(),
        )
    });
    assert!(rig.ldap.wait_stalled(1, PATIENCE).await);
    rig.ldap.begin_outage();
    let out = run.await.expect("join");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("directory: read failed") && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    // While it is down.
    let out = rig.apply().await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("directory: cannot connect")
            && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    rig.assert_no_writes();
    rig.assert_members(&[&rig.alice, &rig.bob]).await;
    rig.ldap.set_tcp_fault(TcpFault::Pass);
    rig.ldap.set_refusing(false);
    assert_eq!(rig.apply().await.code, 0);
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

/// A bind account of the test's own in the real 389-ds, with a read ACI on `cn=accounts`
/// (and a server-side size limit if asked); removed again on drop.
struct Reader {
    servers: mattersync_testsupport::Servers,
    dn: String,
    password: String,
    aci: String,
    accounts: String,
}

impl Reader {
    async fn new(sb: &Sandbox, size_limit: Option<u32>) -> Reader {
        let base = sb.servers.get("MATTERSYNC_LDAP_BASE_DN");
        let dn = format!("uid={}-reader,cn=users,cn=accounts,{base}", sb.area);
        let password = format!("Rd-{}-{}", sb.area, uuid_like());
        let accounts = format!("cn=accounts,{base}");
        let aci = format!(
            "(targetattr=\"*\")(version 3.0; acl \"{} read\"; allow (read, search, compare) userdn=\"ldap:///{dn}\";)",
            sb.area
        );
        let mut ldap = admin(&sb.servers).await;
        let mut attrs: Vec<(&str, std::collections::HashSet<&str>)> = vec![
            (
                "objectClass",
                ["top", "person", "organizationalperson", "inetorgperson"].into(),
            ),
            ("cn", ["reader"].into()),
            ("sn", ["reader"].into()),
            ("userPassword", [password.as_str()].into()),
        ];
        let limit = size_limit.map(|n| n.to_string());
        if let Some(n) = &limit {
            attrs.push(("nsSizeLimit", [n.as_str()].into()));
        }
        ldap.add(&dn, attrs)
            .await
            .and_then(|r| r.success())
            .expect("add the reader");
        ldap.modify(
            &accounts,
            vec![ldap3::Mod::Add("aci", [aci.as_str()].into())],
        )
        .await
        .and_then(|r| r.success())
        .expect("grant the reader");
        let _ = ldap.unbind().await;
        Reader {
            servers: sb.servers.clone(),
            dn,
            password,
            aci,
            accounts,
        }
    }

    /// Hides an entry from this reader (a deny ACI on the entry).
    async fn hide(&self, entry_dn: &str) {
        let aci = format!(
            "(targetattr=\"*\")(version 3.0; acl \"hide\"; deny (all) userdn=\"ldap:///{}\";)",
            self.dn
        );
        let mut ldap = admin(&self.servers).await;
        ldap.modify(
            entry_dn,
            vec![ldap3::Mod::Add("aci", [aci.as_str()].into())],
        )
        .await
        .and_then(|r| r.success())
        .expect("hide the entry");
        let _ = ldap.unbind().await;
    }

    /// The environment that makes mattersync bind as this reader.
    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("MATTERSYNC__DIRECTORY__BIND_DN", self.dn.as_str()),
            ("MATTERSYNC_LDAP_PASSWORD", self.password.as_str()),
        ]
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let servers = self.servers.clone();
        let (dn, aci, accounts) = (self.dn.clone(), self.aci.clone(), self.accounts.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let mut ldap = admin(&servers).await;
                let _ = ldap
                    .modify(
                        &accounts,
                        vec![ldap3::Mod::Delete("aci", [aci.as_str()].into())],
                    )
                    .await;
                let _ = ldap.delete(&dn).await;
                let _ = ldap.unbind().await;
            });
        })
        .join();
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

async fn admin(servers: &mattersync_testsupport::Servers) -> ldap3::Ldap {
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&servers.get("MATTERSYNC_LDAP_URL"))
        .await
        .expect("ldap connect");
    ldap3::drive!(conn);
    ldap.simple_bind(
        &servers.get("MATTERSYNC_LDAP_BIND_DN"),
        &servers.ldap_password(),
    )
    .await
    .and_then(|r| r.success())
    .expect("ldap bind");
    ldap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_dir_a_size_limit_on_the_bind_account_changes_nothing() {
    let rig = Rig::new("faults_dir_sizelimit").await;
    let reader = Reader::new(&rig.sb, Some(3)).await;
    let out = rig.run(&["apply", "--yes"], &reader.env()).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("size limit exceeded") && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    rig.assert_no_writes();
    rig.assert_members(&[&rig.alice, &rig.bob]).await;
    // The same account without the limit reads everything.
    drop(reader);
    let reader = Reader::new(&rig.sb, None).await;
    let out = rig.run(&["apply", "--yes", "--json"], &reader.env()).await;
    assert_eq!(out.code, 0, "{out:?}");
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_faults_dir_a_nested_group_the_bind_account_cannot_read_changes_nothing() {
    let rig = Rig::new("faults_dir_partial").await;
    // carol comes in through a nested group instead.
    rig.sb.remove_member(&rig.group, &rig.carol).await;
    let inner = format!("{}_inner", rig.sb.area);
    rig.sb
        .create_raw_group(&inner, &[&rig.carol], &[], &[], false)
        .await;
    let reader = Reader::new(&rig.sb, None).await;
    {
        let mut ldap = admin(&rig.sb.servers).await;
        ldap.modify(
            &rig.sb.group_dn(&rig.group),
            vec![ldap3::Mod::Add(
                "member",
                [rig.sb.group_dn(&inner).as_str()].into(),
            )],
        )
        .await
        .and_then(|r| r.success())
        .expect("nest");
        let _ = ldap.unbind().await;
    }
    reader.hide(&rig.sb.group_dn(&inner)).await;
    let out = rig.run(&["apply", "--yes"], &reader.env()).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot be read") && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    rig.assert_no_writes();
    rig.assert_members(&[&rig.alice, &rig.bob]).await;
    // Bound as the directory's administrator, who sees the nested group.
    assert_eq!(rig.apply().await.code, 0);
    rig.assert_converged(&[&rig.alice, &rig.carol]).await;
}
