//! The server instances that tests stop and start for real, each of its own so that no other
//! test sees the outage:
//! - [`RestartMattermost`]: a second Mattermost of the pinned build on a PostgreSQL cluster of
//!   its own (`scripts/mm-restart.sh`: 127.0.0.1:8075, cluster `mmrestart` on 5437);
//! - [`RestartDirectory`]: the 389-ds instance `mattersync-restart` (127.0.0.1:3391/3638,
//!   `scripts/dirsrv.sh` with its variables).
//!
//! A test that disturbs one holds its [`InstanceLock`] while it runs, so that tests in other
//! threads or other test binaries that use the same instance wait instead of seeing the
//! outage. `scripts/test.sh` starts both instances; a test that finds one missing fails,
//! saying how to start it.

use crate::{parse_env, servers_or_fail, Servers};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An exclusive lock on one restartable instance, released when dropped: a file lock in the
/// system's temporary directory, since the instances are the machine's (their ports), whatever
/// checkout the test runs from.
pub struct InstanceLock {
    _file: std::fs::File,
}

impl InstanceLock {
    /// Waits for the instance `name` to be free.
    pub async fn take(name: &str) -> InstanceLock {
        let path = std::env::temp_dir().join(format!("mattersync-{name}.test-lock"));
        tokio::task::spawn_blocking(move || {
            use fs2::FileExt;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            file.lock_exclusive()
                .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
            InstanceLock { _file: file }
        })
        .await
        .expect("take the instance lock")
    }
}

/// Runs one of the project's scripts with `env`, failing the test with its output if it fails.
fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> Duration {
    let path = Servers::root().join("scripts").join(name);
    let started = Instant::now();
    let out = Command::new(&path)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{name} {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

async fn script_async(name: &'static str, args: Vec<&'static str>) -> Duration {
    tokio::task::spawn_blocking(move || script(name, &args, &[]))
        .await
        .expect("join a script")
}

fn read_env(path: &Path, what: &str, start: &str) -> BTreeMap<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_env(&text),
        Err(e) => panic!(
            "{what} is missing: {}: {e} (scripts/test.sh starts it; by hand: {start})",
            path.display()
        ),
    }
}

/// Whether a process is gone, reaped too: a zombie still answers `kill -0`, so `dsctl
/// start` would take the instance for running.
fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Sends `signal` (`TERM`, `KILL`) to `pid` and waits until the process is gone.
async fn signal_and_wait(pid: u32, signal: &str, limit: Duration) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
    let deadline = Instant::now() + limit;
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} still runs {limit:?} after SIGTERM/SIGKILL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: not a pid: {e}", path.display()))
}

const MM_START: &str = "scripts/servers.sh up, then scripts/mm-restart.sh up";

/// The Mattermost that tests restart (`scripts/mm-restart.sh`).
pub struct RestartMattermost {
    /// Its `MATTERSYNC_MM_*` variables (`.local/mm-restart.env`).
    pub vars: BTreeMap<String, String>,
    state: PathBuf,
}

impl RestartMattermost {
    pub const LOCK: &'static str = "mm-restart";

    /// The instance's details, after checking that it answers (and with no account of an
    /// earlier sandbox left active); fails the test otherwise. Call it holding
    /// [`RestartMattermost::LOCK`].
    pub async fn load(test: &str) -> (RestartMattermost, Servers) {
        let mut servers = servers_or_fail(test).await;
        let root = Servers::root();
        let vars = read_env(
            &root.join(".local/mm-restart.env"),
            "the restartable Mattermost",
            MM_START,
        );
        servers.vars.extend(vars.clone());
        let mm = RestartMattermost {
            vars,
            state: root.join(".local/mm-restart"),
        };
        if servers.mattermost().ping().await.is_err() {
            // A test that failed while it had the server (or its database) stopped left it
            // so: it is the restart tests' own, so start it again, once.
            script_async("mm-restart.sh", vec!["pg-start"]).await;
            mm.start().await;
        }
        if let Err(e) = servers.mattermost().ping().await {
            panic!(
                "{test} needs the restartable Mattermost at {}, which does not answer: {e} ({MM_START})",
                servers.get("MATTERSYNC_MM_URL")
            );
        }
        Self::deactivate_leftovers(&servers).await;
        (mm, servers)
    }

    /// Deactivates the accounts earlier sandboxes left active on this server (`s<8 hex>.…`,
    /// from a test killed before its sandbox was dropped, or one that failed while the
    /// server was down): an unlicensed server takes no new account past 250 active ones.
    /// Only while holding [`RestartMattermost::LOCK`], when no other sandbox lives here.
    pub async fn deactivate_leftovers(servers: &Servers) {
        let mm = servers.mattermost();
        let users = mm.all_users().await.expect("list the users");
        let leftover = |name: &str| {
            name.split_once('.').is_some_and(|(area, _)| {
                area.len() == 9
                    && area.starts_with('s')
                    && area[1..].bytes().all(|b| b.is_ascii_hexdigit())
            })
        };
        for u in users
            .iter()
            .filter(|u| !u.inactive && leftover(&u.username))
        {
            mm.set_user_active(&u.id, false)
                .await
                .unwrap_or_else(|e| panic!("deactivate {}: {e}", u.username));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        read_pid(&self.state.join("mattermost.pid"))
    }

    /// Stops the server with `signal` (`TERM`: a graceful shutdown; `KILL`: a crash) and
    /// waits until the process is gone.
    pub async fn stop(&self, signal: &str) {
        signal_and_wait(self.pid(), signal, Duration::from_secs(90)).await
    }

    /// Starts it again (`scripts/mm-restart.sh start`) and waits until it answers; returns
    /// how long that took.
    pub async fn start(&self) -> Duration {
        script_async("mm-restart.sh", vec!["start"]).await
    }

    /// Stops its PostgreSQL cluster (a fast shutdown: open sessions are cut).
    pub async fn pg_stop(&self) -> Duration {
        script_async("mm-restart.sh", vec!["pg-stop"]).await
    }

    /// Starts its PostgreSQL cluster again.
    pub async fn pg_start(&self) -> Duration {
        script_async("mm-restart.sh", vec!["pg-start"]).await
    }
}

/// The 389-ds instance that tests restart (`mattersync-restart`).
pub struct RestartDirectory {
    /// Its `MATTERSYNC_LDAP*` variables (`.local/dirsrv-mattersync-restart.env`).
    pub vars: BTreeMap<String, String>,
}

impl RestartDirectory {
    pub const INSTANCE: &'static str = "mattersync-restart";
    const ENV: [(&'static str, &'static str); 3] = [
        ("DIRSRV_INSTANCE", Self::INSTANCE),
        ("DIRSRV_PORT", "3391"),
        ("DIRSRV_SECURE_PORT", "3638"),
    ];

    /// The instance's details; fails the test when they are missing.
    pub fn load() -> RestartDirectory {
        let path = Servers::root().join(format!(".local/dirsrv-{}.env", Self::INSTANCE));
        let vars = read_env(
            &path,
            &format!("the 389-ds instance {}", Self::INSTANCE),
            &format!(
                "scripts/servers.sh up, then DIRSRV_INSTANCE={} DIRSRV_PORT=3391 \
                 DIRSRV_SECURE_PORT=3638 scripts/dirsrv.sh up",
                Self::INSTANCE
            ),
        );
        RestartDirectory { vars }
    }

    async fn dirsrv(cmd: &'static str) -> Duration {
        tokio::task::spawn_blocking(move || script("dirsrv.sh", &[cmd], &Self::ENV))
            .await
            .expect("join dirsrv.sh")
    }

    /// Starts the instance (idempotent: `dirsrv.sh up`) and waits until it answers.
    pub async fn up(&self) -> Duration {
        Self::dirsrv("up").await
    }

    /// Stops it the orderly way (`dsctl stop`).
    pub async fn down(&self) -> Duration {
        Self::dirsrv("down").await
    }

    /// Kills `ns-slapd` with SIGKILL (a crash) and waits until it is gone.
    pub async fn crash(&self) {
        let pid = read_pid(Path::new(&format!(
            "/run/dirsrv/slapd-{}.pid",
            Self::INSTANCE
        )));
        signal_and_wait(pid, "KILL", Duration::from_secs(30)).await
    }
}
