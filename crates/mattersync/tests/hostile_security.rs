//! Security, end to end: TLS to the self-signed LDAPS of the test 389-ds (verified with the
//! CA file, refused without it, `insecure` explicit and loud), secrets never in output or
//! logs at the most verbose level, and a sync with a least-privilege Mattermost account (not
//! a system admin): team admin of the synced team and member of the synced channels.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{names, run, run_env};
use mattersync_testsupport::Sandbox;
use std::io::{Read, Write};

/// The config with its `[directory]` lines rewritten by `edit`.
fn rewrite(path: &std::path::Path, edit: impl Fn(&str) -> Option<String>) {
    let text = std::fs::read_to_string(path).expect("config");
    let out: Vec<String> = text.lines().filter_map(&edit).collect();
    std::fs::write(path, out.join("\n") + "\n").expect("config");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_security_ldaps_is_verified_with_the_ca_file_and_refused_without_it() {
    let sb = Sandbox::new("security_ldaps").await;
    let cfg = sb.config("");
    let ok = run(&cfg, &["check"]);
    assert_eq!(ok.code, 0, "LDAPS with the CA file: {ok:?}");
    assert!(!ok.stderr.contains("VERIFICATION IS DISABLED"), "{ok:?}");
    // Without the CA file the self-signed certificate is not trusted.
    rewrite(&cfg, |l| (!l.starts_with("ca_file")).then(|| l.to_string()));
    let out = run(&cfg, &["check"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("directory") && out.stderr.contains("ca_file"),
        "{out:?}"
    );
    // insecure = true: works, and says so loudly at the default log level.
    rewrite(&cfg, |l| {
        Some(if l.starts_with("timeout_secs") {
            format!("{l}\ninsecure = true")
        } else {
            l.to_string()
        })
    });
    let out = run(&cfg, &["check"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("TLS CERTIFICATE VERIFICATION IS DISABLED"),
        "{out:?}"
    );
    // StartTLS on the plain port, with the CA file.
    let cfg = sb.config_with(&sb.servers.get("MATTERSYNC_LDAP_URL"), "");
    rewrite(&cfg, |l| {
        Some(if l.starts_with("timeout_secs") {
            format!("{l}\nstarttls = true")
        } else {
            l.to_string()
        })
    });
    let out = run(&cfg, &["check"]);
    assert_eq!(out.code, 0, "StartTLS: {out:?}");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_security_secrets_never_appear_in_output_logs_or_the_ledger() {
    let sb = Sandbox::new("security_secrets").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    sb.channel("infra", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/infra\"\n",
        sb.area
    ));
    let token = sb.servers.mm_token();
    let password = sb.servers.ldap_password();
    let mut seen = String::new();
    for args in [
        &["--log", "trace", "check"][..],
        &["--log", "trace", "plan", "--json"],
        &["--log", "trace", "apply", "--yes"],
        &["--log", "trace", "status"],
        &["--log", "trace", "audit", "--json"],
        &["--log", "trace", "explain", &alice.uid],
    ] {
        let out = run(&cfg, args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        seen.push_str(&out.stdout);
        seen.push_str(&out.stderr);
    }
    assert!(
        seen.contains("TRACE") || seen.contains("DEBUG"),
        "no debug logs were written"
    );
    // The same secrets from the environment, and wrong ones that fail.
    let out = run_env(
        &cfg,
        &["--log", "trace", "plan"],
        &[
            ("MATTERSYNC_MATTERMOST_TOKEN", &token),
            ("MATTERSYNC_LDAP_PASSWORD", &password),
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    seen.push_str(&out.stderr);
    let wrong_token = "wrongtoken7c1e9a0b3d5f";
    let wrong_pw = "wrong-password-5e2d8c";
    for (var, value) in [
        ("MATTERSYNC_MATTERMOST_TOKEN", wrong_token),
        ("MATTERSYNC_LDAP_PASSWORD", wrong_pw),
    ] {
        let out = run_env(&cfg, &["--log", "trace", "plan"], &[(var, value)]);
        assert_eq!(out.code, 1, "{var}: {out:?}");
        seen.push_str(&out.stdout);
        seen.push_str(&out.stderr);
    }
    for (what, secret) in [
        ("the Mattermost token", token.as_str()),
        ("the LDAP password", password.as_str()),
        ("a wrong token", wrong_token),
        ("a wrong password", wrong_pw),
    ] {
        assert!(!seen.contains(secret), "{what} appeared in the output");
    }
    let ledger = std::fs::read(sb.dir.path().join("ledger.db")).expect("ledger");
    let ledger = String::from_utf8_lossy(&ledger);
    assert!(!ledger.contains(&token) && !ledger.contains(&password));
}

/// One HTTP/1.1 call to the test Mattermost (plain HTTP on loopback): status, headers, body.
fn http(base: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} /api/v4{path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// A non-admin account of the test's own, logged in; deactivated on drop.
struct Account {
    base: String,
    admin_token: String,
    id: String,
    token: String,
}

impl Account {
    async fn new(sb: &Sandbox, name: &str) -> Account {
        let username = sb.uid(name);
        let password = format!("Pw-{}-9x!", sb.area);
        let id = sb
            .mm
            .create_user(&username, &format!("{username}@example.org"), &password)
            .await
            .expect("create account")
            .id;
        let base = sb.servers.get("MATTERSYNC_MM_URL");
        let (status, answer) = http(
            &base,
            "POST",
            "/users/login",
            None,
            &serde_json::json!({"login_id": username, "password": password}).to_string(),
        );
        assert_eq!(status, 200, "login: {answer}");
        let token = answer
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("token:")
                    .then(|| l[6..].trim().to_string())
            })
            .expect("session token");
        let (_, me) = http(&base, "GET", "/users/me", Some(&token), "");
        assert!(
            me.contains("\"roles\":\"system_user\""),
            "not a plain user: {me}"
        );
        Account {
            base,
            admin_token: sb.servers.mm_token(),
            id,
            token,
        }
    }

    fn team_admin(&self, team_id: &str) {
        let (status, answer) = http(
            &self.base,
            "PUT",
            &format!("/teams/{team_id}/members/{}/schemeRoles", self.id),
            Some(&self.admin_token),
            r#"{"scheme_admin": true, "scheme_user": true}"#,
        );
        assert_eq!(status, 200, "team admin: {answer}");
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = http(
            &self.base,
            "PUT",
            &format!("/users/{}/active", self.id),
            Some(&self.admin_token),
            r#"{"active": false}"#,
        );
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_security_a_least_privilege_account_syncs_and_a_lesser_one_fails_clearly() {
    let sb = Sandbox::new("security_least_privilege").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb
        .create_group("infra", &[&alice, &bob], &[], &[&alice])
        .await;
    let public = sb.channel("infra", false).await;
    let private = sb.channel("secret", true).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/infra\"\nadmins = \"managers\"\n\n[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/secret\"\n\n[[link]]\ngroup = \"{g}\"\nteam = \"{a}\"\n\n[guards]\nmax_removal_ratio = 1.0\n",
        a = sb.area
    ));
    // The least: a plain user, team admin of the synced team, member of each synced channel.
    let syncer = Account::new(&sb, "syncer").await;
    sb.add_by_hand(&public, &syncer.id).await;
    sb.mm
        .add_channel_members(&private, std::slice::from_ref(&syncer.id))
        .await
        .expect("private channel");
    syncer.team_admin(&sb.team_id);
    let env = [("MATTERSYNC_MATTERMOST_TOKEN", syncer.token.as_str())];
    let out = run_env(&cfg, &["apply", "--yes", "--json"], &env);
    assert_eq!(out.code, 0, "{out:?}");
    let without = |m: std::collections::BTreeMap<String, bool>| {
        m.into_iter()
            .filter(|(u, _)| *u != sb.uid("syncer"))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let m = without(sb.members(&public).await);
    assert_eq!(
        m.get(&alice.uid),
        Some(&true),
        "alice, a manager, is channel admin: {m:?}"
    );
    assert_eq!(m.get(&bob.uid), Some(&false), "{m:?}");
    assert_eq!(names(&without(sb.members(&private).await)).len(), 2);
    // Removals and demotions too: bob leaves the group, alice stops managing it.
    sb.remove_member(&g, &bob).await;
    sb.set_managers(&g, &[]).await;
    let out = run_env(&cfg, &["apply", "--yes", "--json"], &env);
    assert_eq!(out.code, 0, "{out:?}");
    let m = without(sb.members(&public).await);
    assert_eq!(m.get(&alice.uid), Some(&false), "{m:?}");
    assert!(!m.contains_key(&bob.uid), "{m:?}");
    let team = sb.mm.team_members(&sb.team_id).await.expect("team");
    assert!(!team.contains_key(bob.mm_id.as_deref().expect("account")));

    // One less: a team member who is not team admin and in no channel. The run says which
    // calls were refused and why, and removes nothing.
    let lesser = Account::new(&sb, "lesser").await;
    sb.mm
        .add_team_members(&sb.team_id, std::slice::from_ref(&lesser.id))
        .await
        .expect("team");
    sb.add_member(&g, &bob).await;
    let out = run_env(
        &cfg,
        &["apply", "--yes", "--json"],
        &[("MATTERSYNC_MATTERMOST_TOKEN", lesser.token.as_str())],
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("403") || out.stderr.contains("403"),
        "the refusal is named: {out:?}"
    );
    assert!(without(sb.members(&public).await).contains_key(&alice.uid));
}

/// The status of the checklist item `id` in `check --json`.
fn item<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {v:#}"))
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_security_check_names_the_permission_a_least_privilege_token_lacks() {
    let sb = Sandbox::new("security_check_permissions").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[&alice]).await;
    let public = sb.channel("infra", false).await;
    let private = sb.channel("secret", true).await;
    let a = &sb.area;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/infra\"\nadmins = \"managers\"\n\n[[link]]\ngroup = \"{g}\"\nchannel = \"{a}/secret\"\n\n[[link]]\ngroup = \"{g}\"\nteam = \"{a}\"\n"
    ));
    let (infra, secret, team) = (
        format!("link.{g}->{a}/infra"),
        format!("link.{g}->{a}/secret"),
        format!("link.{g}->{a}"),
    );
    // Enough: team admin, member of both channels.
    let syncer = Account::new(&sb, "syncer").await;
    sb.add_by_hand(&public, &syncer.id).await;
    sb.mm
        .add_channel_members(&private, std::slice::from_ref(&syncer.id))
        .await
        .expect("private channel");
    syncer.team_admin(&sb.team_id);
    let out = run_env(
        &cfg,
        &["check", "--json"],
        &[("MATTERSYNC_MATTERMOST_TOKEN", syncer.token.as_str())],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    for id in [&infra, &secret, &team] {
        assert_eq!(item(&v, id)["status"], "ok", "{id}: {v:#}");
    }
    assert!(
        item(&v, "mattermost.account")["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&sb.uid("syncer"))),
        "{v:#}"
    );
    // One permission less: a team member, not team admin, in the public channel only.
    let lesser = Account::new(&sb, "lesser").await;
    sb.add_by_hand(&public, &lesser.id).await;
    let out = run_env(
        &cfg,
        &["check", "--json"],
        &[("MATTERSYNC_MATTERMOST_TOKEN", lesser.token.as_str())],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    let summary = |id: &str| {
        let i = item(&v, id);
        assert_eq!(i["status"], "fail", "{id}: {v:#}");
        i["summary"].as_str().expect("summary").to_string()
    };
    assert!(summary(&team).contains("remove_user_from_team"), "{v:#}");
    assert!(summary(&infra).contains("manage_channel_roles"), "{v:#}");
    assert!(summary(&secret).contains("not a member"), "{v:#}");
    // Every other item still ran.
    assert_eq!(item(&v, "directory.read")["status"], "ok", "{v:#}");
    assert_eq!(item(&v, "ledger")["status"], "ok", "{v:#}");
    // The text form: one row per item, ✗ where it fails, the failures named on stderr.
    let out = run_env(
        &cfg,
        &["check"],
        &[("MATTERSYNC_MATTERMOST_TOKEN", lesser.token.as_str())],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with('✗') && l.contains(&team)),
        "{out:?}"
    );
    assert!(out.stderr.contains("3 check(s) failed"), "{out:?}");
    // Matching by auth_data with a token that is not a system admin's: Mattermost shows it
    // auth_data of nobody, so check fails that item.
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(
        &cfg,
        text.replace("match = { by = \"username\" }", "auth_service = \"gitlab\""),
    )
    .expect("config");
    let out = run_env(
        &cfg,
        &["check", "--json"],
        &[("MATTERSYNC_MATTERMOST_TOKEN", syncer.token.as_str())],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    assert_eq!(item(&v, "mattermost.auth_data")["status"], "fail", "{v:#}");
    assert_eq!(item(&v, "matching")["status"], "ok", "{v:#}");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_security_check_refuses_what_serve_would_refuse_and_runs_every_item() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new("security_check_serve").await;
    let token = sb.dir.path().join("api.token");
    std::fs::write(&token, "t0ken\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let cfg = sb.config(&format!(
        "[serve]\nfull_reconcile = \"0s\"\napi_token_file = \"{}\"\n",
        token.display()
    ));
    let out = run(&cfg, &["check", "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    let serve = item(&v, "serve");
    assert_eq!(serve["status"], "fail", "{v:#}");
    assert!(
        serve["summary"]
            .as_str()
            .is_some_and(|s| s.contains("api_token_file") && s.contains("chmod 600")),
        "{v:#}"
    );
    assert_eq!(item(&v, "secret.serve.api_token_file")["status"], "fail");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let v = run(&cfg, &["check", "--json"]).json();
    let serve = item(&v, "serve");
    assert!(
        serve["summary"]
            .as_str()
            .is_some_and(|s| s.contains("full_reconcile") && s.contains("at least 1s")),
        "{v:#}"
    );
    // The rest ran: both sides were reached and their TLS modes are named.
    assert_eq!(item(&v, "directory.read")["status"], "ok", "{v:#}");
    assert!(item(&v, "directory.tls")["summary"]
        .as_str()
        .is_some_and(|s| s.contains("LDAPS") && s.contains("CA file")));
    assert_eq!(item(&v, "mattermost.version")["status"], "ok", "{v:#}");
    assert_eq!(item(&v, "mattermost.tls")["status"], "warn", "{v:#}");
    assert_eq!(
        item(&v, "directory.syncrepl_permitted")["status"],
        "ok",
        "{v:#}"
    );
}
