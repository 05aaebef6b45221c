//! Real restarts in the fault matrix (RELIABILITY.md, rows R1–R4): no proxy pretends a
//! server went away; the server's own process is stopped and started while `mattersync
//! apply` runs.
//! - A Mattermost killed (SIGKILL) or shut down (SIGTERM) while an apply adds many
//!   memberships, started again, and the apply run again.
//! - The PostgreSQL cluster under that Mattermost stopped mid-apply and started again.
//! - The 389-ds instance stopped, and crashed, while a run reads it.
//!
//! The instances are their own (`mattersync_testsupport::restart`: a Mattermost on
//! 127.0.0.1:8075 over the PostgreSQL cluster `mmrestart`, and the 389-ds instance
//! `mattersync-restart`), so no other test sees the outage; a test holds the instance's
//! lock while it disturbs it. Each scenario makes the matrix's four checks: a clear error
//! while the server is away, no unintended removal (and nothing added twice), convergence on
//! the next run, and a consistent ledger (no intent left, its records matching Mattermost,
//! every membership it made owned by mattersync).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{names, Out};
use mattersync_core::{Origin, RecordState};
use mattersync_ledger::Ledger;
use mattersync_testsupport::proxy::{Proxy, TcpFault};
use mattersync_testsupport::restart::{InstanceLock, RestartDirectory, RestartMattermost};
use mattersync_testsupport::{Sandbox, TestUser};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for anything a test waits for; a wait that runs out fails the test.
const PATIENCE: Duration = Duration::from_secs(120);

/// People who join the group between the first run and the run that is interrupted: with
/// [`CHANNELS`] channels, that run adds `PEOPLE × CHANNELS` channel memberships (and
/// `PEOPLE` team ones), enough that a restart lands while it writes.
const PEOPLE: usize = 80;
const CHANNELS: usize = 3;

/// Room for the big change: no guard is under test here.
const GUARDS: &str =
    "[guards]\nmax_removal_ratio = 1.0\nmax_additions = 10000\nmax_addition_ratio = 1000.0\n";

fn spawn(cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mattersync"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("MATTERSYNC_CONFIG")
        .env("MATTERSYNC_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mattersync")
}

async fn finish(child: Child) -> Out {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait for mattersync");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn run(cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    finish(spawn(cfg, args, env)).await
}

/// Whether a run named `what` in its output (`--json` failures and errors) or its log.
fn says(out: &Out, what: &str) -> bool {
    out.stdout.contains(what) || out.stderr.contains(what)
}

/// The ledger agrees with Mattermost: no intent left unsettled, every membership it records
/// as present is there, and each of `want` in each channel is recorded as added by
/// mattersync.
async fn assert_ledger_consistent(sb: &Sandbox, channels: &[String], want: &[&TestUser]) {
    let ledger = Ledger::open(&sb.dir.path().join("ledger.db")).expect("open the ledger");
    let pending = ledger.intents().expect("intents");
    assert!(pending.is_empty(), "unsettled intents: {pending:?}");
    let facts = ledger.facts().expect("facts");
    for ch in channels {
        let members = sb.mm.channel_members(ch).await.expect("channel members");
        let records = facts.channels.get(ch).cloned().unwrap_or_default();
        for (user, r) in &records {
            if r.state == RecordState::Present {
                assert!(
                    members.contains_key(user),
                    "channel {ch}: the ledger says {user} is present ({:?}); Mattermost does not have them",
                    r.origin
                );
            }
        }
        for u in want {
            let id = u.mm_id.as_deref().expect("an account");
            let r = records.get(id).unwrap_or_else(|| {
                panic!("channel {ch}: {} is a member but not in the ledger", u.uid)
            });
            assert_eq!(r.state, RecordState::Present, "{ch} {}: {r:?}", u.uid);
            assert_eq!(r.origin, Origin::Added, "{ch} {}: {r:?}", u.uid);
        }
    }
}

/// How many channel memberships `plan --json` would add.
fn planned_channel_adds(plan: &serde_json::Value) -> usize {
    plan["plan"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter(|a| a["type"] == "add_channel_members")
        .map(|a| a["users"].as_array().map_or(0, Vec::len))
        .sum()
}

// ------------------------------------------------------------------------------------------
// Mattermost, and the PostgreSQL under it
// ------------------------------------------------------------------------------------------

/// A sandbox on the restartable Mattermost: alice and bob were synced into [`CHANNELS`]
/// channels by a clean first run; then bob left the group and [`PEOPLE`] people joined it.
struct Big {
    sb: Sandbox,
    mm: RestartMattermost,
    cfg: PathBuf,
    group: String,
    channels: Vec<String>,
    alice: TestUser,
    bob: TestUser,
    people: Vec<TestUser>,
    _lock: InstanceLock,
}

impl Big {
    async fn new(test: &str) -> Big {
        let lock = InstanceLock::take(RestartMattermost::LOCK).await;
        let (mm, servers) = RestartMattermost::load(test).await;
        let sb = Sandbox::on(test, servers).await;
        let alice = sb.user("alice", true, false).await;
        let bob = sb.user("bob", true, false).await;
        let group = sb.create_group("big", &[&alice, &bob], &[], &[]).await;
        let mut links = String::new();
        let mut channels = Vec::new();
        for i in 0..CHANNELS {
            let name = format!("big{i}");
            channels.push(sb.channel(&name, false).await);
            links.push_str(&sb.link(&group, &name));
        }
        let cfg = sb.config(&format!("{links}\n{GUARDS}"));
        let big = Big {
            sb,
            mm,
            cfg,
            group,
            channels,
            alice,
            bob,
            people: Vec::new(),
            _lock: lock,
        };
        let out = big.apply().await;
        assert_eq!(out.code, 0, "the clean first run: {out:?}");
        let mut big = big;
        let names: Vec<String> = (0..PEOPLE).map(|i| format!("p{i:02}")).collect();
        let mut people = Vec::new();
        for chunk in names.chunks(8) {
            people.extend(
                futures_util::future::join_all(chunk.iter().map(|n| big.sb.user(n, true, false)))
                    .await,
            );
        }
        big.people = people;
        big.sb.remove_member(&big.group, &big.bob).await;
        big.sb
            .add_members(&big.group, &big.people.iter().collect::<Vec<_>>())
            .await;
        big
    }

    async fn apply(&self) -> Out {
        run(&self.cfg, &["apply", "--yes", "--json"], &[]).await
    }

    fn spawn_apply(&self) -> Child {
        spawn(&self.cfg, &["apply", "--yes", "--json"], &[])
    }

    /// Channel memberships of the people so far, over every channel.
    async fn people_added(&self) -> usize {
        let ids: BTreeSet<&str> = self
            .people
            .iter()
            .filter_map(|p| p.mm_id.as_deref())
            .collect();
        let mut n = 0;
        for ch in &self.channels {
            let m = self
                .sb
                .mm
                .channel_members(ch)
                .await
                .expect("channel members");
            n += m.keys().filter(|k| ids.contains(k.as_str())).count();
        }
        n
    }

    /// Waits until the apply has added the first people to a channel, polling Mattermost.
    async fn wait_adding(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.people_added().await == 0 {
            assert!(Instant::now() < deadline, "the apply never began adding");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// alice, wanted throughout, is in every channel.
    async fn assert_alice_stays(&self) {
        for ch in &self.channels {
            let m = names(&self.sb.members(ch).await);
            assert!(
                m.contains(&self.alice.uid),
                "alice was removed from {ch}: {m:?}"
            );
        }
    }

    /// Every channel holds alice and the people, bob is gone, a fresh plan is empty and the
    /// ledger agrees.
    async fn assert_converged(&self) {
        let mut want: Vec<String> = self.people.iter().map(|p| p.uid.clone()).collect();
        want.push(self.alice.uid.clone());
        want.sort();
        for ch in &self.channels {
            assert_eq!(names(&self.sb.members(ch).await), want, "channel {ch}");
        }
        let plan = run(&self.cfg, &["plan", "--json", "--detailed-exitcode"], &[]).await;
        assert_eq!(plan.code, 0, "a fresh plan still has changes: {plan:?}");
        let mut wanted: Vec<&TestUser> = self.people.iter().collect();
        wanted.push(&self.alice);
        assert_ledger_consistent(&self.sb, &self.channels, &wanted).await;
    }

    /// Ownership survived: a person who leaves the group is taken out of every channel
    /// (mattersync removes only what it added).
    async fn assert_ownership_kept(&self) {
        let gone = &self.people[0];
        self.sb.remove_member(&self.group, gone).await;
        let out = self.apply().await;
        assert_eq!(out.code, 0, "{out:?}");
        for ch in &self.channels {
            let m = names(&self.sb.members(ch).await);
            assert!(
                !m.contains(&gone.uid),
                "{} left the group but stayed in {ch}: the ledger lost that mattersync added them",
                gone.uid
            );
        }
    }

    /// After the server is back and before the rerun: the interrupted apply did part of the
    /// adds, and the next plan adds exactly the rest (none twice).
    async fn assert_interrupted_midway(&self) {
        let done = self.people_added().await;
        let all = PEOPLE * CHANNELS;
        assert!(
            0 < done && done < all,
            "the restart did not land mid-apply: {done} of {all} adds were made"
        );
        let plan = run(&self.cfg, &["plan", "--json"], &[]).await;
        assert_eq!(plan.code, 0, "{plan:?}");
        assert_eq!(
            planned_channel_adds(&plan.json()),
            all - done,
            "the next run must add what is missing, and only that ({done} of {all} were made)"
        );
        eprintln!("restart landed after {done} of {all} channel adds");
    }
}

/// A Mattermost stopped by `signal` while the apply adds, kept down until the apply gave up,
/// then started again.
async fn mattermost_restarted_mid_apply(test: &str, signal: &str) {
    let t0 = Instant::now();
    let big = Big::new(test).await;
    let setup = t0.elapsed();
    eprintln!("{test}: set up in {setup:?}");
    let child = big.spawn_apply();
    big.wait_adding().await;
    let stopping = Instant::now();
    big.mm.stop(signal).await;
    let stopped = stopping.elapsed();
    eprintln!("{test}: SIG{signal} stopped it in {stopped:?}");
    // 1. A clear error: the apply names the connection it could not make, and exits 5
    //    (some changes failed), not 0.
    let out = finish(child).await;
    eprintln!("{test}: the apply gave up after {:?}", stopping.elapsed());
    assert_eq!(out.code, 5, "{out:?}");
    assert!(says(&out, "cannot connect"), "{out:?}");
    // While the server is down a run changes nothing and says why.
    let down = big.apply().await;
    assert_eq!(down.code, 1, "{down:?}");
    assert!(
        down.stderr.contains("cannot connect") && down.stderr.contains("nothing was changed"),
        "{down:?}"
    );
    let start = big.mm.start().await;
    eprintln!("{test}: started again in {start:?}");
    // 2. No unintended removal; the apply stopped partway; the next run adds only the rest.
    big.assert_alice_stays().await;
    big.assert_interrupted_midway().await;
    // 3. The next run converges; 4. the ledger agrees with Mattermost and kept ownership.
    let rerun = big.apply().await;
    assert_eq!(rerun.code, 0, "{rerun:?}");
    big.assert_converged().await;
    big.assert_ownership_kept().await;
    eprintln!("{test}: total {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_restart_mattermost_killed_mid_apply_then_rerun_converges() {
    mattermost_restarted_mid_apply("restart_mm_kill", "KILL").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_restart_mattermost_shut_down_mid_apply_then_rerun_converges() {
    mattermost_restarted_mid_apply("restart_mm_term", "TERM").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_restart_postgresql_under_mattermost_stopped_mid_apply_then_rerun_converges() {
    let t0 = Instant::now();
    let big = Big::new("restart_mm_pg").await;
    let child = big.spawn_apply();
    big.wait_adding().await;
    let stop = big.mm.pg_stop().await;
    let out = finish(child).await;
    // Mattermost stays up without its database: its answers are errors, and mattersync
    // says which and stops short of everything, exit 5.
    assert_eq!(out.code, 5, "{out:?}");
    assert!(says(&out, "HTTP 500"), "{out:?}");
    let down = big.apply().await;
    assert_eq!(down.code, 1, "{down:?}");
    assert!(
        down.stderr.contains("HTTP 500") && down.stderr.contains("nothing was changed"),
        "{down:?}"
    );
    let start = big.mm.pg_start().await;
    big.assert_alice_stays().await;
    big.assert_interrupted_midway().await;
    let rerun = big.apply().await;
    assert_eq!(rerun.code, 0, "{rerun:?}");
    big.assert_converged().await;
    big.assert_ownership_kept().await;
    eprintln!(
        "restart_mm_pg: PostgreSQL stop {stop:?}, start {start:?}, total {:?}",
        t0.elapsed()
    );
}

// ------------------------------------------------------------------------------------------
// 389-ds
// ------------------------------------------------------------------------------------------

/// How the directory goes away mid-read.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// `dsctl stop`: an orderly shutdown.
    Orderly,
    /// SIGKILL of `ns-slapd`: a crash (the next start recovers its database).
    Crash,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_restart_389ds_stopped_and_crashed_mid_read_changes_nothing_then_converges() {
    let t0 = Instant::now();
    let _lock = InstanceLock::take(RestartDirectory::INSTANCE).await;
    let dir = RestartDirectory::load();
    dir.up().await;
    let mut sb = Sandbox::new("restart_dirsrv_read").await;
    // This sandbox's directory side lives in the restartable instance.
    sb.servers.vars.extend(dir.vars.clone());
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let carol = sb.user("carol", true, false).await;
    // Others in the group make the read long enough to be cut (they have no account).
    let mut others = Vec::new();
    for i in 0..40 {
        others.push(sb.user(&format!("o{i:02}"), false, false).await);
    }
    let mut members: Vec<&TestUser> = others.iter().collect();
    members.extend([&alice, &bob]);
    let group = sb.create_group("infra", &members, &[], &[]).await;
    let channel = sb.channel("infra", false).await;
    let real = sb.servers.get("MATTERSYNC_LDAPS_URL");
    let host_port = real.trim_start_matches("ldaps://").to_string();
    let ldap = Proxy::tcp(&host_port).await;
    let mm = Proxy::http(
        sb.servers
            .get("MATTERSYNC_MM_URL")
            .trim_start_matches("http://"),
    )
    .await;
    let cfg = sb.config_with(
        &ldap.ldap_url(true),
        &format!("{}\n{GUARDS}", sb.link(&group, "infra")),
    );
    let mm_url = mm.http_url();
    // Small pages: the client asks for each page after the last arrived, so a server that
    // goes away mid-read has not sent the rest (with one big page it has sent everything
    // into the socket before it stops, and the read completes).
    let env = [
        ("MATTERSYNC__MATTERMOST__URL", mm_url.as_str()),
        ("MATTERSYNC__DIRECTORY__TIMEOUT_SECS", "60"),
        ("MATTERSYNC__DIRECTORY__PAGE_SIZE", "5"),
    ];
    let out = run(&cfg, &["apply", "--yes", "--json"], &env).await;
    assert_eq!(out.code, 0, "the clean first run: {out:?}");
    sb.remove_member(&group, &bob).await;
    sb.add_member(&group, &carol).await;
    // How much one whole read is, through the proxy.
    let before = ldap.relayed();
    let out = run(&cfg, &["plan", "--json"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let total = ldap.relayed() - before;
    assert!(total > 8192, "a directory read of only {total} bytes");
    let mut want_members = vec![alice.uid.clone(), bob.uid.clone()];
    want_members.sort();

    for stop in [Stop::Orderly, Stop::Crash] {
        // The read takes about ten seconds: the restart lands in its first half.
        ldap.set_tcp_fault(TcpFault::Throttle(total / 10));
        mm.clear_seen();
        let started = ldap.relayed();
        let child = spawn(&cfg, &["apply", "--yes", "--json"], &env);
        assert!(
            ldap.wait_relayed(started + total / 5, PATIENCE).await,
            "{stop:?}: the read never got under way"
        );
        let halted = Instant::now();
        match stop {
            Stop::Orderly => {
                dir.down().await;
            }
            Stop::Crash => dir.crash().await,
        }
        let halt = halted.elapsed();
        let read = ldap.relayed() - started;
        let out = finish(child).await;
        // 1. A clear error, the read named as what failed, and the promise kept.
        assert_eq!(
            out.code, 1,
            "{stop:?} after {read} of {total} bytes: {out:?}"
        );
        assert!(
            out.stderr.contains("directory") && out.stderr.contains("nothing was changed"),
            "{stop:?}: {out:?}"
        );
        eprintln!(
            "{stop:?} after {read} of {total} bytes: {}",
            out.stderr.trim()
        );
        // While it is down, straight to the server (no proxy): cannot connect.
        let down = run(
            &cfg,
            &["apply", "--yes"],
            &[
                env.as_slice(),
                &[("MATTERSYNC__DIRECTORY__URI", real.as_str())],
            ]
            .concat(),
        )
        .await;
        assert_eq!(down.code, 1, "{stop:?}: {down:?}");
        assert!(
            down.stderr.contains("directory: cannot connect")
                && down.stderr.contains("nothing was changed"),
            "{stop:?}: {down:?}"
        );
        // 2. No write at all reached Mattermost, nobody removed.
        let writes = mm.writes_reaching_server();
        assert!(
            writes.is_empty(),
            "{stop:?}: writes reached Mattermost: {writes:?}"
        );
        assert_eq!(names(&sb.members(&channel).await), want_members, "{stop:?}");
        let up = dir.up().await;
        eprintln!("{stop:?}: the stop took {halt:?}, the start {up:?}");
        ldap.set_tcp_fault(TcpFault::Pass);
    }
    // 3. Back up, one run converges: carol in, bob out.
    let out = run(&cfg, &["apply", "--yes", "--json"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let mut want = vec![alice.uid.clone(), carol.uid.clone()];
    want.sort();
    assert_eq!(names(&sb.members(&channel).await), want);
    // 4. Nothing left to do and the ledger agrees.
    let plan = run(&cfg, &["plan", "--json", "--detailed-exitcode"], &env).await;
    assert_eq!(plan.code, 0, "a fresh plan still has changes: {plan:?}");
    assert_ledger_consistent(&sb, &[channel], &[&alice, &carol]).await;
    eprintln!("restart_dirsrv_read: total {:?}", t0.elapsed());
}
