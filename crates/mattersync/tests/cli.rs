//! The CLI's conventions, without servers: the version names the commit, completions and
//! the man page are generated, and nothing writes ANSI colour to a pipe.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::process::Command;

fn mattersync(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mattersync"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("MATTERSYNC_CONFIG")
        .output()
        .expect("run mattersync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_version_names_the_commit() {
    let (code, out, _) = mattersync(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("mattersync 0."), "{out}");
    assert!(out.contains("(commit "), "{out}");
}

#[test]
fn completions_and_the_man_page_are_generated() {
    for (shell, needle) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef mattersync"),
        ("fish", "complete -c mattersync"),
    ] {
        let (code, out, err) = mattersync(&["completions", shell], &[]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(needle), "{shell}: {out}");
        assert!(
            out.contains("explain"),
            "{shell}: subcommands are completed"
        );
    }
    let (code, out, err) = mattersync(&["man"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".TH mattersync 1"), "{out}");
    assert!(out.contains("check"), "{out}");
}

#[test]
fn no_colour_on_a_pipe_even_in_debug_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[directory]\nuri = \"ldap://127.0.0.1:9\"\nbase_dn = \"dc=example,dc=org\"\ntimeout_secs = 1\n\n[areas]\nrl = \"rl\"\n\n[mattermost]\nurl = \"http://127.0.0.1:9\"\nmatch = { by = \"username\" }\n",
    )
    .expect("config");
    for env in [&[][..], &[("NO_COLOR", "1")][..]] {
        let (_, out, err) = mattersync(
            &[
                "--config",
                cfg.to_str().expect("path"),
                "--log",
                "debug",
                "check",
            ],
            env,
        );
        assert!(!err.contains('\u{1b}'), "ANSI on stderr: {err:?}");
        assert!(!out.contains('\u{1b}'), "ANSI on stdout: {out:?}");
        assert!(err.contains("DEBUG") || err.contains("error"), "{err}");
    }
}
