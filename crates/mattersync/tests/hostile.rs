//! Hostile and bad input, end to end through the real binary: group names with LDAP filter
//! and DN metacharacters and Unicode look-alikes in the real 389-ds, tampered and malformed
//! plan files, and bad configuration files (those need no server). The planner at scale is
//! in crates/core/tests/scale.rs; the parsers are fuzzed in fuzz/ (see RELIABILITY.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{apply, names, run, run_env};
use mattersync_directory::escape_dn_value;
use mattersync_testsupport::ldap3;
use mattersync_testsupport::{Sandbox, TestUser};
use std::collections::HashSet;
use std::path::Path;

/// Creates a FAS group whose cn is `cn` verbatim (escaped into its DN as RFC 4514 says).
async fn raw_group(sb: &Sandbox, cn: &str, members: &[&TestUser]) {
    let base = sb.servers.get("MATTERSYNC_LDAP_BASE_DN");
    let dn = format!("cn={},cn=groups,cn=accounts,{base}", escape_dn_value(cn));
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&sb.servers.get("MATTERSYNC_LDAP_URL"))
        .await
        .expect("ldap connect");
    ldap3::drive!(conn);
    ldap.simple_bind(
        &sb.servers.get("MATTERSYNC_LDAP_BIND_DN"),
        &sb.servers.ldap_password(),
    )
    .await
    .and_then(|r| r.success())
    .expect("bind");
    let member_dns: Vec<String> = members.iter().map(|u| sb.user_dn(&u.uid)).collect();
    let id = format!("hostile-{}", uuid_ish(cn));
    let attrs: Vec<(&str, HashSet<&str>)> = vec![
        (
            "objectClass",
            [
                "top",
                "groupofnames",
                "nestedgroup",
                "ipausergroup",
                "ipaobject",
                "fasgroup",
            ]
            .into(),
        ),
        ("cn", [cn].into()),
        ("ipaUniqueID", [id.as_str()].into()),
        ("member", member_dns.iter().map(String::as_str).collect()),
    ];
    ldap.add(&dn, attrs)
        .await
        .and_then(|r| r.success())
        .unwrap_or_else(|e| panic!("add hostile group {cn:?} as {dn}: {e}"));
    let _ = ldap.unbind().await;
    // Deleted with the sandbox: left behind, an entry that differs from another only by a
    // space would stop every later snapshot of this shared directory.
    sb.track(dn);
}

fn uuid_ish(s: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    format!(
        "{:016x}-{}",
        h.finish(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_hostile_group_names_with_metacharacters_and_lookalikes_match_and_affect_nothing_else()
{
    let sb = Sandbox::new("hostile_group_names").await;
    let alice = sb.user("alice", true, false).await;
    let mallory = sb.user("mallory", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let other = sb.channel("other", false).await;
    // Each of these is a real group in 389-ds, selected by the group filter
    // (cn=mm_<area>_*), with mallory in it; none may reach the channel of mm_<area>_infra.
    let hostile = [
        format!("{g}*"),
        format!("{g})(cn=*"),
        format!("{g}\\2a"),
        format!("mm_{}_in\\fra", sb.area),
        format!("{g},cn=admins"),
        format!("{g}+uid=mallory"),
        format!("{g}=x"),
        format!("mm_{}_\u{0456}nfra", sb.area), // Cyrillic і
        format!("mm_{}_infr\u{0430}", sb.area), // Cyrillic а
    ];
    for cn in &hostile {
        raw_group(&sb, cn, &[&mallory]).await;
    }
    let cfg = sb.config(&format!(
        "[defaults]\nauto_link = true\n\n[[link]]\ngroup = \"{g}\"\nchannel = \"{}/infra\"\n",
        sb.area
    ));
    let v = apply(&cfg);
    assert_eq!(v["report"]["users_failed"], 0, "{v}");
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);
    assert!(sb.members(&other).await.is_empty());
    let team = sb.mm.team_members(&sb.team_id).await.expect("team");
    assert!(
        !team.contains_key(mallory.mm_id.as_deref().expect("account")),
        "mallory got into the team"
    );
    // Only the real group links, by the config file and by convention.
    let links = run(&cfg, &["links", "--json"]);
    assert_eq!(links.code, 0, "{links:?}");
    let groups: Vec<String> = links.json()["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| l["group"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(groups.iter().all(|x| *x == g), "{groups:?}");
    // Linking one of them from the CLI is refused by the naming template.
    for cn in &hostile {
        let out = run(&cfg, &["link", cn, &format!("{}/other", sb.area)]);
        assert_eq!(out.code, 1, "{cn:?} was linked: {out:?}");
        assert!(out.stderr.contains("group name"), "{out:?}");
    }
    // explain says why mallory is not in the channel, and the plan is settled.
    let out = run(&cfg, &["explain", &mallory.uid]);
    assert_eq!(out.code, 0, "{out:?}");
    let plan = run(&cfg, &["plan", "--json", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    // A group whose name differs from the real one only by a trailing space is a distinct
    // entry to 389-ds but the same DN to LDAP name matching: the run stops and names both,
    // instead of one group silently standing in for the other.
    raw_group(&sb, &format!("{g} "), &[&mallory]).await;
    sb.remove_member(&g, &alice).await;
    let out = run(&cfg, &["apply", "--yes"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("differ only in case or spaces")
            && out.stderr.contains("nothing was changed"),
        "{out:?}"
    );
    assert_eq!(names(&sb.members(&ch).await), vec![alice.uid.clone()]);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_hostile_a_lookalike_uid_is_refused_by_the_directory_and_never_matched() {
    let sb = Sandbox::new("hostile_lookalike_uid").await;
    // 389-ds (like FreeIPA) keeps uids 7-bit clean: a look-alike of alice (Cyrillic а)
    // cannot be made a user at all.
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&sb.servers.get("MATTERSYNC_LDAP_URL"))
        .await
        .expect("ldap connect");
    ldap3::drive!(conn);
    ldap.simple_bind(
        &sb.servers.get("MATTERSYNC_LDAP_BIND_DN"),
        &sb.servers.ldap_password(),
    )
    .await
    .and_then(|r| r.success())
    .expect("bind");
    let uid = format!("{}.\u{0430}lice", sb.area);
    let dn = sb.user_dn(&uid);
    let attrs: Vec<(&str, HashSet<&str>)> = vec![
        ("objectClass", ["top", "person", "inetorgperson"].into()),
        ("uid", [uid.as_str()].into()),
        ("cn", ["x"].into()),
        ("sn", ["x"].into()),
    ];
    let refused = ldap.add(&dn, attrs).await.and_then(|r| r.success());
    assert!(refused.is_err(), "389-ds took a non-ASCII uid");
    let _ = ldap.unbind().await;
    // In the planner (pure), a look-alike directory uid never matches the real account.
    use mattersync_core::{
        plan, Admins, DirGroup, DirUser, Directory, Guards, LedgerFacts, Link, LinkSource,
        Matching, Mattermost, MmChannel, MmTeam, MmUser, Mode, PlanInput, Policy, Readd, Target,
    };
    let fake = "\u{0430}lice".to_string();
    let directory = Directory {
        users: [(
            fake.clone(),
            DirUser {
                uid: fake.clone(),
                ..Default::default()
            },
        )]
        .into(),
        groups: [(
            "mm_rl_infra".to_string(),
            DirGroup {
                id: "g".into(),
                cn: "mm_rl_infra".into(),
                member_users: [fake.clone()].into(),
                ..Default::default()
            },
        )]
        .into(),
    };
    let mattermost = Mattermost {
        users: [(
            "u-alice".to_string(),
            MmUser {
                id: "u-alice".into(),
                username: "alice".into(),
                email: "alice@example.org".into(),
                ..Default::default()
            },
        )]
        .into(),
        teams: [(
            "rl".to_string(),
            MmTeam {
                id: "t".into(),
                name: "rl".into(),
                ..Default::default()
            },
        )]
        .into(),
        channels: [(
            "rl/infra".to_string(),
            MmChannel {
                id: "c".into(),
                team: "rl".into(),
                name: "infra".into(),
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    for matching in [Matching::Username, Matching::Email] {
        let p = plan(PlanInput {
            directory: &directory,
            mattermost: &mattermost,
            ledger: &LedgerFacts::default(),
            policy: &Policy {
                links: vec![Link {
                    group: "mm_rl_infra".into(),
                    target: Target::Channel {
                        team: "rl".into(),
                        channel: "infra".into(),
                    },
                    mode: Mode::Sync,
                    admins: Admins::None,
                    readd: Readd::Never,
                    source: LinkSource::Config,
                }],
                matching: matching.clone(),
                guards: Guards::default(),
                allow: Default::default(),
            },
        });
        assert!(p.actions.is_empty(), "{matching:?}: {:?}", p.actions);
    }
}

/// Writes a saved plan for a channel that needs one add, and returns it with its path.
async fn saved_plan(sb: &Sandbox) -> (std::path::PathBuf, std::path::PathBuf, String, String) {
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    let cfg = sb.config(&format!(
        "[[link]]\ngroup = \"{g}\"\nchannel = \"{}/infra\"\n",
        sb.area
    ));
    let file = sb.dir.path().join("plan.json");
    let out = run(&cfg, &["plan", "--out", &file.to_string_lossy()]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&file).expect("saved plan");
    (cfg, file, text, ch)
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_hostile_malformed_and_tampered_plan_files_are_refused_and_change_nothing() {
    let sb = Sandbox::new("hostile_plan_files").await;
    let (cfg, file, text, ch) = saved_plan(&sb).await;
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let user_id = v["plan"]["actions"][0]["users"][0]["id"]
        .as_str()
        .expect("an add")
        .to_string();
    let other_id = sb.mm.me().await.expect("me").id;
    let fp = v["plan"]["fingerprint"].as_str().expect("fp").to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "not a plan saved"),
        (
            "truncated",
            text[..text.len() / 2].to_string(),
            "not a plan saved",
        ),
        ("not JSON", "plan: yes\n".into(), "not a plan saved"),
        (
            "unknown field",
            text.replacen('{', "{\"comment\": \"x\", ", 1),
            "not a plan saved",
        ),
        (
            "unknown action",
            text.replace("add_team_members", "make_admin"),
            "not a plan saved",
        ),
        (
            "future format",
            text.replace("\"mattersync_plan\": 1", "\"mattersync_plan\": 2"),
            "format 2",
        ),
        (
            "another user swapped in",
            text.replace(&user_id, &other_id),
            "edited",
        ),
        (
            "fingerprint changed",
            text.replace(&fp, &"0".repeat(fp.len())),
            "stale",
        ),
        (
            "a removal added",
            {
                let mut t = v.clone();
                if let Some(a) = t["plan"]["actions"].as_array_mut() {
                    a.push(serde_json::json!({"type": "remove_team_member", "team_id": sb.team_id, "team": sb.area, "user": {"id": other_id, "username": "x"}}));
                }
                t.to_string()
            },
            "edited",
        ),
    ];
    for (what, body, says) in cases {
        std::fs::write(&file, body).expect("write");
        let out = run(&cfg, &["apply", &file.to_string_lossy(), "--yes"]);
        assert_eq!(out.code, 3, "{what}: {out:?}");
        assert!(out.stderr.contains(says), "{what}: {out:?}");
        assert!(sb.members(&ch).await.is_empty(), "{what}: applied");
    }
    // A directory where the plan should be.
    let out = run(&cfg, &["apply", &sb.dir.path().to_string_lossy(), "--yes"]);
    assert_eq!(out.code, 3, "{out:?}");
    // The genuine plan still applies.
    std::fs::write(&file, &text).expect("write");
    let out = run(&cfg, &["apply", &file.to_string_lossy(), "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(sb.members(&ch).await.len(), 1);
}

// ------------------------------------------------------------------------------------------
// Bad configuration files: refused before anything connects (no server needed).
// ------------------------------------------------------------------------------------------

const GOOD: &str = r#"[directory]
uri = "ldaps://127.0.0.1:1"
base_dn = "dc=example,dc=org"

[areas]
rl = "rocky-linux"

[mattermost]
url = "https://127.0.0.1:1"
token_file = "TOKEN"
match = { by = "username" }

[ledger]
path = "LEDGER"

[[link]]
group = "mm_rl_infra"
channel = "rocky-linux/infra"
"#;

fn config(dir: &Path, text: &str, token_mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let token = dir.join("token");
    std::fs::write(&token, "tok-3f9a-not-for-logs\n").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(token_mode)).expect("chmod");
    let path = dir.join("config.toml");
    let text = text
        .replace("TOKEN", &token.to_string_lossy())
        .replace("LEDGER", &dir.join("ledger.db").to_string_lossy());
    std::fs::write(&path, text).expect("config");
    path
}

#[test]
fn hostile_bad_configuration_files_are_refused_with_the_key_that_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "misspelled key",
            GOOD.replace("token_file", "tokn_file"),
            &["mattermost", "tokn_file"],
        ),
        (
            "unknown section",
            format!("{GOOD}\n[gaurds]\nmax_removals = 3\n"),
            &["gaurds"],
        ),
        (
            "wrong type",
            format!("{GOOD}\n[guards]\nmax_removals = \"ten\"\n"),
            &["guards.max_removals"],
        ),
        (
            "negative number",
            format!("{GOOD}\n[guards]\nmax_removals = -1\n"),
            &["guards.max_removals"],
        ),
        (
            "ratio out of range",
            format!("{GOOD}\n[guards]\nmax_removal_ratio = 2.0\n"),
            &["max_removal_ratio"],
        ),
        (
            "unknown mode",
            GOOD.replace(
                "channel = \"rocky-linux/infra\"",
                "channel = \"rocky-linux/infra\"\nmode = \"mirror\"",
            ),
            &["link[0].mode"],
        ),
        (
            "a directory URL that is not LDAP",
            GOOD.replace("ldaps://127.0.0.1:1", "https://127.0.0.1:1"),
            &["directory.uri"],
        ),
        (
            "a group filter that is not a filter",
            GOOD.replace("base_dn = ", "group_filter = \"cn=mm_*\"\nbase_dn = "),
            &["filter"],
        ),
        (
            "not TOML",
            "[directory\nuri=".to_string(),
            &["configuration"],
        ),
        ("empty", String::new(), &["directory"]),
    ];
    for (what, text, says) in cases {
        let cfg = config(dir.path(), &text, 0o600);
        let out = run(&cfg, &["plan"]);
        assert_eq!(out.code, 1, "{what}: {out:?}");
        for s in says {
            assert!(out.stderr.contains(s), "{what}: no {s:?} in {out:?}");
        }
    }
}

#[test]
fn hostile_secret_files_that_are_missing_or_world_readable_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), GOOD, 0o644);
    let out = run(&cfg, &["plan"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("readable by every user") && out.stderr.contains("chmod 600"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("tok-3f9a"),
        "the secret was printed: {out:?}"
    );
    let cfg = config(dir.path(), GOOD, 0o600);
    std::fs::remove_file(dir.path().join("token")).expect("rm");
    let out = run(&cfg, &["plan"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is missing"), "{out:?}");
    // No flag takes a secret on the command line.
    let cfg = config(dir.path(), GOOD, 0o600);
    for flag in [
        "--token",
        "--password",
        "--bind-password",
        "--mattermost-token",
    ] {
        let out = run(&cfg, &[flag, "tok-3f9a-on-argv", "plan"]);
        assert_eq!(out.code, 2, "{flag}: {out:?}");
        assert!(!out.stderr.contains("tok-3f9a-on-argv"), "{out:?}");
    }
    // A wrongly typed environment override names its key.
    let out = run_env(
        &cfg,
        &["plan"],
        &[("MATTERSYNC__GUARDS__MAX_REMOVALS", "many")],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("guards.max_removals"), "{out:?}");
}
