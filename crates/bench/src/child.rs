//! Running the real `mattersync` binary as a child: wall time, peak RSS (from `wait4`), and
//! what it reported (API call counters in its `--json` output, LDAP entries from its
//! directory debug log).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One finished child.
#[derive(Debug, Clone)]
pub struct Finished {
    pub wall_ms: f64,
    /// Peak resident set size, KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `bin args…` with `env`, output to files under `dir`, and waits with `wait4` so the
/// child's own peak RSS is known.
pub fn run(bin: &Path, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Result<Finished> {
    let out_path: PathBuf = dir.join("child.stdout");
    let err_path: PathBuf = dir.join("child.stderr");
    let out = std::fs::File::create(&out_path)?;
    let err = std::fs::File::create(&err_path)?;
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills in; pid is our own child, not yet reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    if r != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    std::mem::forget(child); // reaped above
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(Finished {
        wall_ms,
        max_rss_kib: usage.ru_maxrss as u64,
        code,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    })
}

/// Entries the directory adapter received, summed over its "search done … entries=N" debug
/// lines (one per search: the group search, each nested-group read, the user search).
pub fn ldap_entries(stderr: &str) -> (u64, u64) {
    let mut entries = 0;
    let mut searches = 0;
    for line in stderr.lines().filter(|l| l.contains("search done")) {
        if let Some(n) = field(&strip_ansi(line), "entries") {
            entries += n;
            searches += 1;
        }
    }
    (entries, searches)
}

/// The line without terminal colour sequences (`ESC [ … m`), which the log has when colours
/// are on.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field(line: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    let at = line.find(&key)? + key.len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Counters from `mattersync plan|apply --json` (`api_calls`).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, serde::Serialize)]
pub struct Calls {
    pub calls: u64,
    pub writes: u64,
    #[serde(default)]
    pub retries: u64,
}

pub fn calls(stdout: &str) -> Result<(Calls, serde_json::Value)> {
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "mattersync --json output: {}",
            &stdout[..stdout.len().min(300)]
        )
    })?;
    let c: Calls = serde_json::from_value(v["api_calls"].clone()).context("api_calls")?;
    Ok((c, v))
}

/// The write calls a saved plan's actions take, as `crates/mattermost` sends them: one per
/// team action (the planner already cut them at 256), one per 1000 users of a channel add,
/// one per removal or role change, none for ledger-only records.
pub fn planned_writes(plan: &serde_json::Value) -> u64 {
    let Some(actions) = plan["plan"]["actions"].as_array() else {
        return 0;
    };
    actions
        .iter()
        .map(|a| match a["type"].as_str().unwrap_or("") {
            "add_channel_members" => {
                let n = a["users"].as_array().map_or(0, |u| u.len()) as u64;
                n.div_ceil(1000)
            }
            "record_preexisting" | "record_departed" => 0,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_entries_sums_search_lines() {
        let log = "2026 DEBUG mattersync_directory::ldap: search done base=cn=groups filter=(x) entries=50 pages=1\n\
                   2026 DEBUG mattersync_directory::ldap: search done base=cn=users filter=(uid=*) entries=1000 pages=2\n\
                   2026 INFO other entries=7\n";
        assert_eq!(ldap_entries(log), (1050, 2));
        let coloured = "\u{1b}[34mDEBUG\u{1b}[0m search done \u{1b}[3mentries\u{1b}[0m\u{1b}[2m=\u{1b}[0m12 pages=1";
        assert_eq!(ldap_entries(coloured), (12, 1));
    }

    #[test]
    fn planned_writes_follow_the_batches() {
        let plan = serde_json::json!({"plan": {"actions": [
            {"type": "add_team_members", "users": [1, 2]},
            {"type": "add_channel_members", "users": vec![0; 1001]},
            {"type": "record_preexisting", "users": [1]},
            {"type": "remove_channel_member"}
        ]}});
        assert_eq!(
            planned_writes(&plan),
            4,
            "1 team call, 2 channel calls, no record call, 1 removal"
        );
    }

    #[test]
    fn calls_reads_the_counters() {
        let (c, _) = calls(r#"{"changed": false, "api_calls": {"calls": 12, "writes": 0, "retries": 0, "get": 9}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.calls, c.writes), (12, 0));
    }
}
