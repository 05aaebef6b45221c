//! Running the real `mattersync` binary against a sandbox.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `mattersync --config <config> <args>` with no terminal on stdin.
pub fn run(config: &Path, args: &[&str]) -> Out {
    run_env(config, args, &[])
}

/// As [`run`], with extra environment variables.
pub fn run_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_mattersync"))
        .envs(env.iter().copied())
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("MATTERSYNC_CONFIG")
        .env("MATTERSYNC_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run mattersync");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `apply --yes --json`, asserting success.
pub fn apply(config: &Path) -> serde_json::Value {
    let out = run(config, &["apply", "--yes", "--json"]);
    assert_eq!(out.code, 0, "apply failed: {out:?}");
    out.json()
}

pub fn names(m: &std::collections::BTreeMap<String, bool>) -> Vec<String> {
    m.keys().cloned().collect()
}
