//! `mattersync --version` names the commit it was built from: `git describe` when the
//! source is a git checkout, `unknown` otherwise (a tarball, no git installed).

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=MATTERSYNC_COMMIT={commit}");
    // Again when HEAD moves or the index changes (worktrees have their own git dir).
    let git_dir = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok());
    match git_dir {
        Some(dir) => {
            let dir = dir.trim();
            println!("cargo:rerun-if-changed={dir}/HEAD");
            println!("cargo:rerun-if-changed={dir}/index");
        }
        None => println!("cargo:rerun-if-changed=build.rs"),
    }
}
