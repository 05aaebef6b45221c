//! Against the real 389-ds of `scripts/dirsrv.sh up` (the LDAP server inside FreeIPA), loaded
//! with the shared seed (`scripts/seed.py`). The seed is only read; tests that need entries
//! of their own make them in a `Sandbox` beside it and delete them afterwards.

// Test code: a failed unwrap, expect or panic is a failed test (helpers included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::sandbox::Sandbox;
use common::{dirsrv_or_fail, workspace_root};
use mattersync_core::Directory;
use mattersync_directory::{DirectoryError, LdapConfig, LdapDirectory, Secret};
use serde_json::Value;

async fn connect(cfg: &LdapConfig) -> LdapDirectory {
    match LdapDirectory::connect(cfg).await {
        Ok(d) => d,
        Err(e) => panic!("connect {}: {e}", cfg.uri),
    }
}

async fn snapshot(cfg: &LdapConfig) -> Directory {
    let mut dir = connect(cfg).await;
    match dir.snapshot().await {
        Ok(s) => s,
        Err(e) => panic!("snapshot via {}: {e}", cfg.uri),
    }
}

fn seed() -> Value {
    let out = std::process::Command::new("python3")
        .arg(workspace_root().join("scripts/seed.py"))
        .arg("json")
        .output()
        .expect("run scripts/seed.py json");
    assert!(out.status.success(), "seed.py json failed");
    serde_json::from_slice(&out.stdout).expect("seed json")
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn seed_group<'a>(seed: &'a Value, cn: &str) -> &'a Value {
    seed["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["cn"] == cn))
        .unwrap_or_else(|| panic!("seed has no group {cn}"))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every seed group the default filter selects is read exactly as the seed defines it, with
/// the nested non-mm group pulled in, managers read, and users with mail and lock state.
fn assert_matches_seed(snap: &Directory, seed: &Value) {
    let groups = seed["groups"].as_array().expect("seed groups");
    let mut checked = 0;
    for g in groups {
        let cn = g["cn"].as_str().expect("cn");
        let selected = g["fas"] == true && cn.starts_with("mm_");
        let nested_somewhere = groups
            .iter()
            .any(|o| strings(&o["member_groups"]).contains(cn) && o["fas"] == true);
        let Some(got) = snap.groups.get(cn) else {
            assert!(
                !selected && !nested_somewhere,
                "{cn} is missing from the snapshot"
            );
            continue;
        };
        assert!(selected || nested_somewhere, "{cn} should not be read");
        assert_eq!(got.id, g["ipa_unique_id"].as_str().unwrap_or(""), "{cn} id");
        assert_eq!(
            got.description.as_deref(),
            g["description"].as_str(),
            "{cn}"
        );
        assert_eq!(got.member_users, strings(&g["members"]), "{cn} members");
        assert_eq!(got.member_groups, strings(&g["member_groups"]), "{cn}");
        assert_eq!(got.manager_users, strings(&g["managers"]), "{cn} managers");
        assert_eq!(got.manager_groups, strings(&g["manager_groups"]), "{cn}");
        for uid in got.member_users.iter().chain(&got.manager_users) {
            let su = seed["users"]
                .as_array()
                .and_then(|us| us.iter().find(|u| u["uid"] == uid.as_str()))
                .unwrap_or_else(|| panic!("seed has no user {uid}"));
            let u = &snap.users[uid];
            assert_eq!(u.email.as_deref(), su["email"].as_str(), "{uid}");
            assert_eq!(u.disabled, su["disabled"] == true, "{uid} disabled");
            assert_eq!(u.auth_id, None);
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} seed groups checked");
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_snapshot_resolves_nesting_managers_and_disabled_users_as_seeded() {
    let d = dirsrv_or_fail(
        "real_dirsrv_snapshot_resolves_nesting_managers_and_disabled_users_as_seeded",
    );
    let seed = seed();
    let snap = snapshot(&d.seed_config()).await;
    assert_matches_seed(&snap, &seed);

    // The groups sync must ignore are not read: non-FAS (even when mm-named), FAS but not mm_.
    for ignored in ["mm_rl_internal", "admins", "packagers"] {
        assert!(!snap.groups.contains_key(ignored), "{ignored} was read");
    }
    // mm_rl_infra nests infra_oncall, which does not match the filter but counts.
    let infra = seed_group(&seed, "mm_rl_infra");
    let oncall = seed_group(&seed, "infra_oncall");
    let expected: BTreeSet<String> = strings(&infra["members"])
        .union(&strings(&oncall["members"]))
        .cloned()
        .collect();
    assert_eq!(snap.effective_members("mm_rl_infra"), expected);
    assert!(snap.effective_members("mm_rl_infra").contains("wkim"));
    // mm_rl_release nests the mm group mm_rl_release_eng.
    assert!(snap.effective_members("mm_rl_release").contains("kdiaz"));
    // The disabled user is read, flagged, and not an effective member.
    assert!(snap.users["tvaughn"].disabled);
    assert!(snap.groups["mm_rl_testing"]
        .member_users
        .contains("tvaughn"));
    assert!(!snap.effective_members("mm_rl_testing").contains("tvaughn"));
    assert!(!snap.effective_members("mm_rl_docs").contains("tvaughn"));
    // Managers: users, and the members of a manager group.
    assert_eq!(
        snap.effective_managers("mm_rl_infra"),
        set(&["alice", "neil"])
    );
    let events = snap.effective_managers("mm_resf_events");
    assert!(events.contains("label"));
    assert!(strings(&seed_group(&seed, "mm_resf_marketing")["members"]).is_subset(&events));
    // The empty group is there and empty, not missing.
    assert!(snap.groups["mm_rl_sig_altarch"].member_users.is_empty());
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_tiny_pages_give_the_same_snapshot() {
    let d = dirsrv_or_fail("real_dirsrv_tiny_pages_give_the_same_snapshot");
    let mut cfg = d.seed_config();
    cfg.page_size = 2;
    assert_matches_seed(&snapshot(&cfg).await, &seed());
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_reads_one_group_and_one_user_with_escaped_values() {
    let d = dirsrv_or_fail("real_dirsrv_reads_one_group_and_one_user_with_escaped_values");
    let mut dir = connect(&d.config()).await;
    let one = match dir.group("mm_rl_infra").await {
        Ok(Some(g)) => g,
        other => panic!("{other:?}"),
    };
    assert!(one.groups["mm_rl_infra"]
        .member_groups
        .contains("infra_oncall"));
    assert!(one.groups.contains_key("infra_oncall"));
    assert!(one.effective_members("mm_rl_infra").contains("wkim"));
    // Any group can be read by name, matching the filter or not.
    assert!(matches!(dir.group("packagers").await, Ok(Some(_))));
    assert!(matches!(dir.group("no_such_group").await, Ok(None)));
    // A wildcard is a name, not a pattern (unescaped it would match every mm group).
    assert!(matches!(dir.group("mm_*").await, Ok(None)));
    assert!(matches!(dir.group("*").await, Ok(None)));

    assert!(matches!(dir.user_exists("neil").await, Ok(true)));
    let tv = dir.user("tvaughn").await;
    assert!(
        matches!(&tv, Ok(Some(u)) if u.disabled && u.email.as_deref() == Some("tvaughn@example.org")),
        "{tv:?}"
    );
    for not_a_user in [
        "nobody",
        "*",
        "neil*",
        "neil)(uid=*",
        "*)(objectClass=*",
        "\\",
        "ne\0il",
    ] {
        let got = dir.user_exists(not_a_user).await;
        assert!(matches!(got, Ok(false)), "{not_a_user:?}: {got:?}");
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_ldaps_with_the_ca_file_works_and_without_it_fails_clearly() {
    let d = dirsrv_or_fail("real_dirsrv_ldaps_with_the_ca_file_works_and_without_it_fails_clearly");
    let mut cfg = d.seed_config();
    cfg.uri = d.ldaps_url.clone();
    cfg.ca_file = Some(d.ca_file.clone());
    assert_matches_seed(&snapshot(&cfg).await, &seed());

    // StartTLS on the plain port, same CA.
    let mut st = d.config();
    st.starttls = true;
    st.ca_file = Some(d.ca_file.clone());
    let mut dir = connect(&st).await;
    assert!(matches!(dir.user_exists("neil").await, Ok(true)));

    // Without the CA file the system store does not know the test CA.
    let mut no_ca = cfg.clone();
    no_ca.ca_file = None;
    let err = LdapDirectory::connect(&no_ca).await.err();
    match &err {
        Some(DirectoryError::Tls { .. }) => {
            let msg = err.as_ref().map(ToString::to_string).unwrap_or_default();
            assert!(msg.contains(&d.ldaps_url), "{msg}");
            assert!(msg.contains("certificate"), "{msg}");
            assert!(msg.contains("set ca_file"), "{msg}");
        }
        // A host without any system CA store fails earlier, also asking for ca_file.
        Some(DirectoryError::Config(m)) if m.contains("ca_file") => {}
        other => panic!("{other:?}"),
    }

    // A CA file that is not the issuer fails the same way.
    let wrong = std::env::temp_dir().join(format!("{}.pem", common::unique("wrong-ca")));
    std::fs::write(&wrong, WRONG_CA).expect("write wrong CA");
    let mut wrong_ca = cfg.clone();
    wrong_ca.ca_file = Some(wrong.clone());
    let err = LdapDirectory::connect(&wrong_ca).await.err();
    let _ = std::fs::remove_file(&wrong);
    match err {
        Some(e @ DirectoryError::Tls { .. }) => {
            assert!(e.to_string().contains("check that ca_file"), "{e}")
        }
        other => panic!("{other:?}"),
    }

    // insecure = true connects without verification (and says so in the log).
    let mut insecure = no_ca.clone();
    insecure.insecure = true;
    let mut dir = connect(&insecure).await;
    assert!(matches!(dir.user_exists("neil").await, Ok(true)));
}

/// A self-signed CA certificate that did not issue the test server's certificate.
const WRONG_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBrTCCAVOgAwIBAgIUdipBxxJJQEJgjY4XsoYaFI/OQQcwCgYIKoZIzj0EAwIw
IzEhMB8GA1UEAwwYbWF0dGVyc3luYyB3cm9uZyB0ZXN0IENBMCAXDTI2MTEyOTA1
NTIyM1oYDzIwNTYxMTIxMDU1MjIzWjAjMSEwHwYDVQQDDBhtYXR0ZXJzeW5jIHdy
b25nIHRlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASuAOuBZPxNhJoX
AkerVlO/T2qpubpFU+M+BERshZQQrYYOc7c1fYA0QV2N0ttfHbLOCZhdUwaE+773
vE7TFOyLo2MwYTAdBgNVHQ4EFgQUZil/DCIukSjBwFc/x61f4+WSBFIwHwYDVR0j
BBgwFoAUZil/DCIukSjBwFc/x61f4+WSBFIwDwYDVR0TAQH/BAUwAwEB/zAOBgNV
HQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwIDSAAwRQIhAJU7ChaRfh/rLYRI7RyYnLOB
FsY9D/nIU8sSPkB38HQeAiAQ4jkVndOlHQiV1/MK+LVpZEQbS863WXsnZZymNpg5
tA==
-----END CERTIFICATE-----
";

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_a_wrong_password_fails_with_a_clear_error() {
    let d = dirsrv_or_fail("real_dirsrv_a_wrong_password_fails_with_a_clear_error");
    let mut cfg = d.config();
    cfg.bind_password_file = None;
    cfg.bind_password = Some(Secret::new("not-the-password"));
    let err = LdapDirectory::connect(&cfg).await.err();
    match err {
        Some(e @ DirectoryError::Bind { rc: 49, .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!(
                    "bind to {} as {} failed: invalid credentials (code 49)",
                    d.url, d.bind_dn
                )),
                "{msg}"
            );
            assert!(msg.contains("check bind_dn and the bind password"), "{msg}");
            assert!(!msg.contains("not-the-password"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // A missing password file is a clear error too.
    let mut cfg = d.config();
    cfg.bind_password_file = Some("/nonexistent/mattersync/ldap.password".into());
    let err = LdapDirectory::connect(&cfg)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|m| m.contains("bind password file /nonexistent")),
        "{err:?}"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_an_anonymous_bind_that_sees_nothing_fails_instead_of_reading_empty_groups() {
    let d = dirsrv_or_fail(
        "real_dirsrv_an_anonymous_bind_that_sees_nothing_fails_instead_of_reading_empty_groups",
    );
    let mut cfg = d.config();
    cfg.bind_dn = None;
    cfg.bind_password_file = None;
    let mut dir = connect(&cfg).await;
    let err = dir.snapshot().await.err();
    match err {
        Some(e @ DirectoryError::Inconsistent(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("is not visible to anonymous"), "{msg}");
            assert!(msg.contains(&d.group_base()), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_a_size_limit_is_an_error_not_partial_data() {
    let d = dirsrv_or_fail("real_dirsrv_a_size_limit_is_an_error_not_partial_data");
    // The server enforces the request's size limit (pages larger than the limit).
    let mut cfg = d.config();
    cfg.size_limit = 5;
    let mut dir = connect(&cfg).await;
    let err = dir.snapshot().await.err();
    match err {
        Some(e @ DirectoryError::Operation { rc: 4, .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!(
                    "directory search under {} for (&(objectClass=fasGroup)(cn=mm_*)) failed: size limit exceeded (code 4)",
                    d.group_base()
                )),
                "{msg}"
            );
            assert!(msg.ends_with("nothing was changed"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // With pages smaller than the limit 389-ds applies it per page: mattersync counts.
    cfg.page_size = 2;
    let mut dir = connect(&cfg).await;
    let err = dir.snapshot().await.err();
    assert!(
        matches!(&err, Some(DirectoryError::Operation { rc: 4, detail, .. }) if detail.contains("size_limit = 5")),
        "{err:?}"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_a_size_limit_on_the_bind_account_is_an_error() {
    let d = dirsrv_or_fail("real_dirsrv_a_size_limit_on_the_bind_account_is_an_error");
    let mut sb = Sandbox::new(&d, Some(3)).await;
    let mut members = Vec::new();
    for i in 0..6 {
        members.push(sb.user(&format!("u{i}"), false).await);
    }
    sb.group("mm_t_all", true, &members, &[]).await;
    // The sandbox's Directory Manager view works (no limit for the root DN) ...
    let snap = snapshot(&sb.config()).await;
    assert_eq!(snap.effective_members("mm_t_all").len(), 6);
    // ... the reader, limited to 3 entries by nsSizeLimit, gets an error, not 3 users.
    let mut dir = connect(&sb.reader_config()).await;
    let err = dir.snapshot().await.err();
    match err {
        Some(e @ DirectoryError::Operation { rc: 4, .. }) => {
            assert!(
                e.to_string()
                    .contains(&format!("search under {}", sb.users)),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_nesting_cycles_foreign_groups_and_odd_member_dns() {
    let d = dirsrv_or_fail("real_dirsrv_nesting_cycles_foreign_groups_and_odd_member_dns");
    let mut sb = Sandbox::new(&d, None).await;
    let ana = sb.user("ana", false).await;
    let ben = sb.user("ben", false).await;
    let cy = sb.user("cy", true).await;
    let dee = sb.user("dee", false).await;
    let eve = sb.user("eve, jr.", false).await; // a uid that needs DN escaping
                                                // A group outside group_base, found through nesting by its objectClass.
    let foreign_dn = format!("cn=foreign,{}", sb.base);
    sb.group_at(
        &foreign_dn,
        "foreign",
        false,
        std::slice::from_ref(&dee),
        &[],
    )
    .await;
    // b is not FAS (so not selected) and nests a; a nests b: a cycle.
    let b = sb
        .group(
            "b",
            false,
            &[ben.clone(), cy.clone(), foreign_dn.clone()],
            &[],
        )
        .await;
    // Member DNs in odd case and spacing still resolve.
    let odd_ana = ana.to_uppercase().replace(',', " , ");
    let ghost = sb.user_dn("ghost");
    let a = sb
        .group(
            "mm_t_a",
            true,
            &[odd_ana, b.clone(), ghost, eve],
            std::slice::from_ref(&ben),
        )
        .await;
    sb.add_member(&b, &a).await;
    sb.group("mgrs", false, std::slice::from_ref(&dee), &[])
        .await;
    let c = sb.group("mm_t_c", true, &[], &[sb.group_dn("mgrs")]).await;
    let _ = c;

    let snap = snapshot(&sb.config()).await;
    let names: Vec<_> = snap.groups.keys().map(String::as_str).collect();
    assert_eq!(names, ["b", "foreign", "mgrs", "mm_t_a", "mm_t_c"]);
    let ga = &snap.groups["mm_t_a"];
    assert_eq!(ga.member_users, set(&["ana", "eve, jr."]));
    assert_eq!(ga.member_groups, set(&["b"]));
    assert_eq!(ga.manager_users, set(&["ben"]));
    assert_eq!(snap.groups["b"].member_groups, set(&["foreign", "mm_t_a"]));
    assert_eq!(
        snap.effective_members("mm_t_a"),
        set(&["ana", "ben", "dee", "eve, jr."])
    );
    assert!(snap.users["cy"].disabled);
    assert!(!snap.users.contains_key("ghost"));
    assert_eq!(snap.effective_managers("mm_t_c"), set(&["dee"]));
    assert_eq!(snap.groups["mm_t_c"].manager_groups, set(&["mgrs"]));
    // Stable ids are the ipaUniqueIDs, distinct per group.
    let ids: BTreeSet<_> = snap.groups.values().map(|g| g.id.clone()).collect();
    assert_eq!(ids.len(), 5);

    // group() follows the same rules from one starting point.
    let mut dir = connect(&sb.config()).await;
    let one = match dir.group("b").await {
        Ok(Some(one)) => one,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        one.effective_members("b"),
        set(&["ana", "ben", "dee", "eve, jr."])
    );
    assert!(matches!(dir.user_exists("eve, jr.").await, Ok(true)));
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_a_nested_group_that_cannot_be_read_is_an_error_not_an_empty_group() {
    let d = dirsrv_or_fail(
        "real_dirsrv_a_nested_group_that_cannot_be_read_is_an_error_not_an_empty_group",
    );
    let mut sb = Sandbox::new(&d, None).await;
    let ana = sb.user("ana", false).await;
    let ben = sb.user("ben", false).await;
    let inner = sb
        .group("inner", false, std::slice::from_ref(&ben), &[])
        .await;
    sb.group("mm_t_a", true, &[ana, inner.clone()], &[]).await;
    // The reader sees everything: the nested member is there.
    let snap = snapshot(&sb.reader_config()).await;
    assert_eq!(snap.effective_members("mm_t_a"), set(&["ana", "ben"]));

    // Hidden from the reader by an ACI: an error naming the group, not a smaller group.
    sb.hide_from_reader(&inner).await;
    let mut dir = connect(&sb.reader_config()).await;
    let err = dir.snapshot().await.err();
    match err {
        Some(e @ DirectoryError::Inconsistent(_)) => {
            let msg = e.to_string();
            assert!(msg.starts_with("group mm_t_a lists cn=inner,"), "{msg}");
            assert!(msg.contains("cannot be read"), "{msg}");
        }
        other => panic!("{other:?}"),
    }

    // A member value naming a group that does not exist fails the same way.
    let ghost = sb.group_dn("ghost");
    let b = sb.group("mm_t_b", true, &[], &[]).await;
    sb.add_member(&b, &ghost).await;
    let mut cfg = sb.config();
    cfg.group_filter = "(cn=mm_t_b)".into();
    let mut dir = connect(&cfg).await;
    let err = dir.snapshot().await.err();
    assert!(
        matches!(&err, Some(DirectoryError::Inconsistent(m)) if m.contains("cn=ghost,")),
        "{err:?}"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_a_referral_under_the_group_base_is_an_error() {
    let d = dirsrv_or_fail("real_dirsrv_a_referral_under_the_group_base_is_an_error");
    let mut sb = Sandbox::new(&d, None).await;
    let ana = sb.user("ana", false).await;
    sb.group("mm_t_a", true, &[ana], &[]).await;
    let groups = sb.groups.clone();
    sb.referral(
        &groups,
        "elsewhere",
        "ldap://ldap.example.org:389/cn=groups,dc=example,dc=org",
    )
    .await;
    let mut dir = connect(&sb.config()).await;
    let err = dir.snapshot().await.err();
    match err {
        Some(e @ DirectoryError::Referral { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("ldap://ldap.example.org:389/"), "{msg}");
            assert!(msg.contains("does not follow referrals"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

/// A TCP relay to the real server that can be cut, as if the server went away.
struct Relay {
    addr: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut v) = t.lock() {
                    v.push(conn);
                }
            }
        });
        if let Ok(mut v) = tasks.lock() {
            v.push(accept);
        }
        Relay { addr, tasks }
    }

    fn cut(&self) {
        if let Ok(v) = self.tasks.lock() {
            for t in v.iter() {
                t.abort();
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_a_server_that_goes_away_is_an_error() {
    let d = dirsrv_or_fail("real_dirsrv_a_server_that_goes_away_is_an_error");
    let target = d
        .url
        .trim_start_matches("ldap://")
        .trim_end_matches('/')
        .to_string();
    let relay = Relay::start(target).await;
    let mut cfg = d.config();
    cfg.uri = format!("ldap://{}", relay.addr);
    cfg.timeout_secs = 3;
    let mut dir = connect(&cfg).await;
    assert!(matches!(dir.user_exists("neil").await, Ok(true)));
    relay.cut();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let err = dir.snapshot().await.err();
    assert!(
        matches!(
            err,
            Some(DirectoryError::ConnectionLost { .. }) | Some(DirectoryError::Timeout { .. })
        ),
        "{err:?}"
    );
    // Nothing listens any more: connecting again fails.
    let again = LdapDirectory::connect(&cfg).await.err();
    assert!(
        matches!(again, Some(DirectoryError::Connect { .. })),
        "{again:?}"
    );
}

/// One step of the model test: `change` made, then the entries it named read again.
async fn refreshed(
    conn: &mut LdapDirectory,
    model: &mut mattersync_directory::DirModel,
    cfg: &LdapConfig,
    named: &[&str],
    what: &str,
) -> BTreeSet<String> {
    let named: Vec<String> = named.iter().map(|s| s.to_string()).collect();
    let r = match conn.refresh_model(model, &named).await {
        Ok(r) => r,
        Err(e) => panic!("{what}: refresh: {e}"),
    };
    assert_eq!(
        model.directory().as_ref(),
        &snapshot(cfg).await,
        "{what}: the model is not what a full read returns"
    );
    r.groups
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_a_model_refreshed_by_the_entries_a_change_names_is_a_full_read() {
    use ldap3::Mod;
    let d = dirsrv_or_fail(
        "real_dirsrv_a_model_refreshed_by_the_entries_a_change_names_is_a_full_read",
    );
    let mut sb = Sandbox::new(&d, None).await;
    let ana = sb.user("ana", false).await;
    let ben = sb.user("ben", false).await;
    let cy = sb.user("cy", false).await;
    let dee = sb.user("dee", false).await;
    let inner = sb
        .group("inner", false, std::slice::from_ref(&ben), &[])
        .await;
    let a = sb
        .group("mm_t_a", true, &[ana.clone(), inner.clone()], &[])
        .await;
    let b = sb
        .group(
            "mm_t_b",
            true,
            std::slice::from_ref(&cy),
            std::slice::from_ref(&dee),
        )
        .await;
    let plain = sb
        .group("plain", false, std::slice::from_ref(&ana), &[])
        .await;
    let cfg = sb.config();
    let mut conn = connect(&cfg).await;
    let mut model = match conn.read_model().await {
        Ok(m) => m,
        Err(e) => panic!("read_model: {e}"),
    };
    assert_eq!(model.directory().as_ref(), &snapshot(&cfg).await);
    let vals = |v: &str| -> std::collections::HashSet<String> { [v.to_string()].into() };

    // A member added to a nested group: the nested group and the group nesting it.
    sb.add_member(&inner, &cy).await;
    let g = refreshed(&mut conn, &mut model, &cfg, &[&inner], "nested add").await;
    assert_eq!(g, set(&["inner", "mm_t_a"]));
    assert_eq!(
        model.directory().effective_members("mm_t_a"),
        set(&["ana", "ben", "cy"])
    );

    // A member disabled: every group that references her.
    sb.modify(
        &ana,
        vec![Mod::Replace("nsAccountLock".into(), vals("TRUE"))],
    )
    .await;
    let g = refreshed(&mut conn, &mut model, &cfg, &[&ana], "disabled").await;
    assert_eq!(g, set(&["mm_t_a"]));

    // A new nested group and a new user, named in the order a server could send them.
    let inner2 = sb
        .group("inner2", false, std::slice::from_ref(&dee), &[])
        .await;
    let eve = sb.user("eve", false).await;
    sb.add_member(&b, &inner2).await;
    sb.add_member(&a, &eve).await;
    let g = refreshed(
        &mut conn,
        &mut model,
        &cfg,
        &[&inner2, &eve, &b, &a],
        "new entries",
    )
    .await;
    assert!(
        g.is_superset(&set(&["inner2", "mm_t_a", "mm_t_b"])),
        "{g:?}"
    );

    // A nested group taken out: it is no longer part of the view.
    sb.modify(&a, vec![Mod::Delete("member".into(), vals(&inner))])
        .await;
    refreshed(&mut conn, &mut model, &cfg, &[&a], "unnested").await;
    assert!(!model.directory().groups.contains_key("inner"));

    // A member's entry deleted (its group keeps the value if nothing maintains it).
    sb.delete(&cy).await;
    refreshed(&mut conn, &mut model, &cfg, &[&cy, &b], "deleted user").await;
    assert!(!model.directory().users.contains_key("cy"));

    // A group renamed: followed by its stable id, the old name forgotten.
    let c = sb.rename(&b, "cn=mm_t_c").await;
    sb.modify(&c, vec![Mod::Replace("cn".into(), vals("mm_t_c"))])
        .await;
    let g = refreshed(&mut conn, &mut model, &cfg, &[&c], "renamed group").await;
    assert!(g.is_superset(&set(&["mm_t_b", "mm_t_c"])), "{g:?}");

    // A group the filter does not match and nothing references, and a DN with no entry:
    // nothing to read into the view.
    sb.add_member(&plain, &dee).await;
    let nothing = format!("uid=nobody,{}", sb.users);
    let g = refreshed(
        &mut conn,
        &mut model,
        &cfg,
        &[&plain, &nothing],
        "unrelated",
    )
    .await;
    assert!(g.is_empty(), "{g:?}");
    // A notification that is not a DN fails the refresh (the caller reads in full).
    assert!(conn
        .refresh_model(&mut model, &["not a dn".to_string()])
        .await
        .is_err());
}
