//! The FreeIPA JSON-RPC backend against a live FreeIPA: FreeIPA 4.12.4's own server
//! framework (`scripts/freeipa.sh`), whose ACIs decide as the logged-in account. Every
//! `group` command with `kind = "freeipa"` (writes through JSON-RPC as the delegated
//! `mattersync-admin`, reads over LDAP as a system account under FreeIPA's default ACIs),
//! and the client itself: sessions, TLS, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{run, Out};
use mattersync_freeipa::{GroupMod, IpaConfig, IpaError, Modified, Secret};
use mattersync_testsupport::freeipa::{ipa_or_fail, IpaSandbox};
use serde_json::{json, Value};

fn ok(out: &Out) -> Value {
    assert_eq!(out.code, 0, "{out:?}");
    out.json()
}

fn strs(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn classes(g: &Value) -> Vec<String> {
    strs(&g["objectclass"])
        .into_iter()
        .map(|c| c.to_lowercase())
        .collect()
}

/// The delegated account's config.
fn delegated(sb: &IpaSandbox) -> std::path::PathBuf {
    sb.config(
        "mattersync-admin",
        &sb.ipa.password_file("mattersync-admin"),
        None,
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_group_create_makes_the_sops_group_and_the_same_command_again_is_unchanged() {
    let sb = IpaSandbox::new("freeipa_create").await;
    let owner = sb.user("owner").await;
    let g = sb.group("infra");
    let cfg = delegated(&sb);
    // The SOP: adhoc-ipagroup.yml with a description, ipa_fas=true and
    // ipa_group_manager_user, non-POSIX as the SOP intends.
    let args = [
        "--json",
        "group",
        "create",
        g.as_str(),
        "--description",
        "Rocky Linux infrastructure team",
        "--manager",
        owner.as_str(),
    ];
    let v = ok(&run(&cfg, &args));
    assert_eq!(
        (&v["result"], &v["backend"], &v["changed"]),
        (&json!("created"), &json!("freeipa"), &json!(true)),
        "{v}"
    );

    let e = sb.show(&g).await.expect("the group exists in FreeIPA");
    let cls = classes(&e);
    for c in [
        "groupofnames",
        "nestedgroup",
        "ipausergroup",
        "ipaobject",
        "fasgroup",
    ] {
        assert!(cls.contains(&c.to_string()), "{c} missing: {cls:?}");
    }
    assert!(
        !cls.contains(&"posixgroup".to_string()) && e.get("gidnumber").is_none(),
        "non-POSIX: {e}"
    );
    assert_eq!(e["fasgroup"], true, "{e}");
    assert_eq!(strs(&e["description"]), ["Rocky Linux infrastructure team"]);
    assert_eq!(strs(&e["membermanager_user"]), vec![owner.clone()]);
    let id = strs(&e["ipauniqueid"]);
    assert!(
        id.len() == 1 && uuid::Uuid::parse_str(&id[0]).is_ok(),
        "a server-made ipaUniqueID: {id:?}"
    );

    // The same command again: nothing to do, and FreeIPA still holds the same group.
    let v = ok(&run(&cfg, &args));
    assert_eq!(
        (&v["result"], &v["changed"]),
        (&json!("unchanged"), &json!(false)),
        "{v}"
    );
    let again = sb.show(&g).await.expect("still there");
    assert_eq!(strs(&again["ipauniqueid"]), id, "not made again");

    // show and list read it back over LDAP, as the system account.
    let v = ok(&run(&cfg, &["--json", "group", "show", &g]));
    assert_eq!(v["fas"], true, "{v}");
    let listed = ok(&run(&cfg, &["--json", "group", "list"]));
    assert!(listed.to_string().contains(&g), "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_other_settings_are_drift_and_change_only_with_update() {
    let sb = IpaSandbox::new("freeipa_drift").await;
    let owner = sb.user("owner").await;
    let old = sb.user("old").await;
    // Made by hand in FreeIPA: not FAS, another description, another manager.
    let g = sb.make_group("web", false, &[], &[&old]).await;
    let cfg = delegated(&sb);
    let args = [
        "--json",
        "group",
        "create",
        g.as_str(),
        "--description",
        "Rocky Linux web team",
        "--manager",
        owner.as_str(),
    ];
    let out = run(&cfg, &args);
    assert_eq!(out.code, 7, "drift is exit 7: {out:?}");
    let v = out.json();
    assert_eq!(
        (&v["result"], &v["changed"]),
        (&json!("drift"), &json!(false)),
        "{v}"
    );
    let e = sb.show(&g).await.expect("group");
    assert_eq!(e["fasgroup"], false, "nothing changed: {e}");
    assert_eq!(strs(&e["description"]), ["test group"]);

    let mut update = args.to_vec();
    update.push("--update");
    let v = ok(&run(&cfg, &update));
    assert_eq!(
        (&v["result"], &v["changed"]),
        (&json!("updated"), &json!(true)),
        "{v}"
    );
    let e = sb.show(&g).await.expect("group");
    assert_eq!(e["fasgroup"], true, "{e}");
    assert!(classes(&e).contains(&"fasgroup".to_string()));
    assert_eq!(strs(&e["description"]), ["Rocky Linux web team"]);
    assert_eq!(strs(&e["membermanager_user"]), vec![owner.clone()]);

    // Settled: the same command (with or without --update) is unchanged.
    let v = ok(&run(&cfg, &update));
    assert_eq!(v["result"], "unchanged", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_members_and_managers_are_added_and_removed_idempotently() {
    let sb = IpaSandbox::new("freeipa_members").await;
    let alice = sb.user("alice").await;
    let bob = sb.user("bob").await;
    let g = sb.make_group("ops", true, &[], &[]).await;
    let cfg = delegated(&sb);

    let v = ok(&run(
        &cfg,
        &["--json", "group", "add-member", &g, &alice, &bob],
    ));
    assert_eq!(
        (strs(&v["done"]), &v["changed"]),
        (vec![alice.clone(), bob.clone()], &json!(true)),
        "{v}"
    );
    assert_eq!(
        strs(&sb.show(&g).await.unwrap()["member_user"]),
        [alice.clone(), bob.clone()]
    );
    let v = ok(&run(&cfg, &["--json", "group", "add-member", &g, &alice]));
    assert_eq!(
        (&v["changed"], strs(&v["unchanged"])),
        (&json!(false), vec![alice.clone()]),
        "{v}"
    );

    let v = ok(&run(&cfg, &["--json", "group", "remove-member", &g, &bob]));
    assert_eq!(strs(&v["done"]), vec![bob.clone()], "{v}");
    assert_eq!(
        strs(&sb.show(&g).await.unwrap()["member_user"]),
        vec![alice.clone()]
    );
    let v = ok(&run(&cfg, &["--json", "group", "remove-member", &g, &bob]));
    assert_eq!(v["changed"], false, "{v}");

    let v = ok(&run(&cfg, &["--json", "group", "add-manager", &g, &bob]));
    assert_eq!(strs(&v["done"]), vec![bob.clone()], "{v}");
    assert_eq!(
        strs(&sb.show(&g).await.unwrap()["membermanager_user"]),
        vec![bob.clone()]
    );
    let v = ok(&run(&cfg, &["--json", "group", "add-manager", &g, &bob]));
    assert_eq!(v["changed"], false, "{v}");
    let v = ok(&run(&cfg, &["--json", "group", "remove-manager", &g, &bob]));
    assert_eq!(strs(&v["done"]), vec![bob.clone()], "{v}");
    assert!(sb
        .show(&g)
        .await
        .unwrap()
        .get("membermanager_user")
        .is_none());

    // A user the directory does not have is refused before any call.
    let out = run(&cfg, &["group", "add-member", &g, "ghost-of-nobody"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("does not exist in the directory"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_a_missing_user_agreement_is_a_failure_not_a_success() {
    let sb = IpaSandbox::new("freeipa_agreement").await;
    let signed = "alice"; // the seed's alice signed the FPCA
    let unsigned = sb.user("unsigned").await;
    let g = sb.make_group("legal", true, &[], &[]).await;
    sb.require_agreement(&g, true).await;
    let cfg = delegated(&sb);

    let out = run(
        &cfg,
        &["--json", "group", "add-member", &g, signed, &unsigned],
    );
    assert_eq!(out.code, 5, "one added, one refused: {out:?}");
    let v = out.json();
    assert_eq!(strs(&v["done"]), [signed.to_string()], "{v}");
    assert_eq!(
        v["failed"],
        json!([format!("user {unsigned}: missing user agreement: FPCA")]),
        "{v}"
    );
    assert_eq!(
        strs(&sb.show(&g).await.unwrap()["member_user"]),
        [signed.to_string()]
    );

    let out = run(&cfg, &["group", "add-member", &g, &unsigned]);
    assert_eq!(out.code, 1, "all refused: {out:?}");
    assert!(
        out.stderr.contains("missing user agreement: FPCA"),
        "{}",
        out.stderr
    );
    sb.require_agreement(&g, false).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_an_account_without_the_role_is_refused_by_freeipas_acis_and_nothing_changes()
{
    let sb = IpaSandbox::new("freeipa_refused").await;
    let g = sb.group("web");
    let cfg = sb.config(
        "nobody-special",
        &sb.ipa.password_file("nobody-special"),
        None,
    );
    let out = run(
        &cfg,
        &["group", "create", &g, "--description", "test group"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("ACIError 2100")
            && out.stderr.contains("Insufficient 'add' privilege")
            && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert!(sb.show(&g).await.is_none(), "no group was made");

    // A member manager may change members but not the group's settings.
    let existing = sb.make_group("ops", true, &[], &["neil"]).await;
    let neil = sb.config("neil", &sb.ipa.password_file("neil"), None);
    let v = ok(&run(
        &neil,
        &["--json", "group", "add-member", &existing, "bob"],
    ));
    assert_eq!(strs(&v["done"]), ["bob"], "{v}");
    let out = run(
        &neil,
        &[
            "group",
            "create",
            &existing,
            "--description",
            "other",
            "--manager",
            "neil",
            "--update",
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("Insufficient 'write' privilege to the 'description' attribute"),
        "{}",
        out.stderr
    );
    assert_eq!(
        strs(&sb.show(&existing).await.unwrap()["description"]),
        ["test group"]
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_an_interrupted_create_is_completed_by_the_same_command() {
    let sb = IpaSandbox::new("freeipa_interrupted").await;
    let owner = sb.user("owner").await;
    let cfg = delegated(&sb);
    for (cut, name) in [("group_mod", "infra"), ("group_add", "web")] {
        let g = sb.group(name);
        let args = [
            "--json",
            "group",
            "create",
            g.as_str(),
            "--description",
            "test group",
            "--manager",
            owner.as_str(),
        ];
        // FreeIPA carries the call out; its answer never arrives.
        sb.ipa
            .control(&format!("cut_after?method={cut}&arg={g}"))
            .await;
        let out = run(&cfg, &args);
        assert_ne!(out.code, 0, "{cut}: {out:?}");
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(
            said.contains("may or may not have been done"),
            "{cut}: {said}"
        );
        assert!(
            said.contains("run the same command again to complete it"),
            "{cut}: {said}"
        );
        let e = sb.show(&g).await.expect("group_add was carried out");
        assert!(
            e.get("membermanager_user").is_none(),
            "{cut}: stopped before the managers: {e}"
        );

        let v = ok(&run(&cfg, &args));
        assert_eq!(
            (&v["result"], &v["changed"]),
            (&json!("completed"), &json!(true)),
            "{cut}: {v}"
        );
        let e = sb.show(&g).await.expect("group");
        assert_eq!(e["fasgroup"], true, "{cut}: {e}");
        assert_eq!(strs(&e["membermanager_user"]), vec![owner.clone()], "{cut}");
        let v = ok(&run(&cfg, &args));
        assert_eq!(v["result"], "unchanged", "{cut}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_https_verifies_the_server_with_ca_file_and_refuses_any_other() {
    let sb = IpaSandbox::new("freeipa_tls").await;
    let pw = sb.ipa.password_file("mattersync-admin");
    // The system trust store does not know the test CA; another CA does not sign the server.
    let other_ca = sb.ipa.get("MATTERSYNC_LDAP_CA_FILE");
    for (extra, what) in [
        ("", "system trust store"),
        (&*format!("ca_file = \"{other_ca}\""), "another CA"),
    ] {
        let g = sb.group("tls");
        let cfg = sb.config("mattersync-admin", &pw, Some(extra));
        let out = run(
            &cfg,
            &["group", "create", &g, "--description", "test group"],
        );
        assert_eq!(out.code, 1, "{what}: {out:?}");
        assert!(
            out.stderr.contains("login") && out.stderr.to_lowercase().contains("certificate"),
            "{what}: {}",
            out.stderr
        );
        assert!(sb.show(&g).await.is_none(), "{what}: nothing was sent");
    }
    // No plaintext fallback: the same server over http:// is not answered in the clear.
    let http = sb.ipa.url().replacen("https://", "http://", 1);
    let mut c = IpaConfig::new(
        http,
        "mattersync-admin",
        Secret::new(sb.ipa.password("mattersync-admin")),
    );
    c.ca_file = Some(sb.ipa.ca_file());
    let e = mattersync_freeipa::IpaClient::new(c)
        .expect("loopback http is allowed")
        .login()
        .await
        .expect_err("no TLS, no answer");
    assert!(matches!(e, IpaError::Transport { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_an_expired_session_is_logged_in_again_and_the_call_is_made_once() {
    let sb = IpaSandbox::new("freeipa_session").await;
    let (alice, bob) = (sb.user("alice").await, sb.user("bob").await);
    // label (a seed user) manages the group: their sessions are theirs alone, so ending
    // them disturbs no other test.
    let g = sb.make_group("sess", true, &[], &["label"]).await;
    let label = sb.ipa.client("label", "member");
    let added = label
        .group_add_member(&g, std::slice::from_ref(&alice), &[])
        .await
        .expect("logged in");
    assert_eq!(added.completed, 1, "{added:?}");
    // (Sessions of earlier runs may still be open: at least this one ends.)
    let ended: u32 = sb
        .ipa
        .control("expire_sessions?user=label")
        .await
        .parse()
        .expect("a count");
    assert!(ended >= 1, "{ended}");
    // The first call after expiry gets 401, logs in again and is sent once more: once, so
    // bob is added and not reported as already there.
    let added = label
        .group_add_member(&g, std::slice::from_ref(&bob), &[])
        .await
        .expect("after a new login");
    assert_eq!(
        (added.completed, added.unchanged.len()),
        (1, 0),
        "{added:?}"
    );
    assert_eq!(
        sb.ipa.control("expire_sessions?user=label").await,
        "1",
        "one new session"
    );
    let again = label
        .group_add_member(&g, std::slice::from_ref(&bob), &[])
        .await
        .expect("again");
    assert_eq!(
        (again.completed, again.unchanged.len()),
        (0, 1),
        "{again:?}"
    );
    let mut members = strs(&sb.show(&g).await.expect("group")["member_user"]);
    members.sort();
    assert_eq!(members, [alice, bob]);

    // A repeated --fasgroup is EmptyModlist (4202) on the live server: unchanged, no error.
    let ipa = sb.ipa.client("mattersync-admin", "mattersync-admin");
    assert_eq!(
        ipa.group_mod(&g, &GroupMod::fasgroup()).await.expect("mod"),
        Modified::Unchanged
    );

    // A refused login says so and sends no password in the error.
    let mut bad = IpaConfig::new(
        sb.ipa.url(),
        "mattersync-admin",
        Secret::new("wrong-password-x"),
    );
    bad.ca_file = Some(sb.ipa.ca_file());
    let e = mattersync_freeipa::IpaClient::new(bad)
        .unwrap()
        .login()
        .await
        .expect_err("refused");
    let text = e.to_string();
    assert!(
        text.contains("HTTP 401")
            && text.contains("invalid-password")
            && !text.contains("wrong-password-x"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_the_delegated_role_holds_only_what_mattersync_needs() {
    let sb = IpaSandbox::new("freeipa_role").await;
    let g = sb.make_group("role", true, &[], &[]).await;
    let ipa = sb.ipa.client("mattersync-admin", "mattersync-admin");
    // Removing groups is not part of it (Group Administrators has it; mattersync does not).
    let e = ipa
        .call("group_del", vec![json!(g)], Default::default())
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Some(mattersync_freeipa::codes::ACI_ERROR), "{e}");
    assert!(sb.show(&g).await.is_some());
    // Protected groups stay out of reach.
    let out = ipa
        .group_add_member("admins", &["nobody-special".into()], &[])
        .await
        .expect("answered");
    assert_eq!(out.completed, 0, "{out:?}");
    assert!(!out.failed.is_empty(), "{out:?}");
    // An API version pinned by an older client is accepted (4.12 compares the major only).
    let mut old = IpaConfig::new(
        sb.ipa.url(),
        "mattersync-admin",
        Secret::new(sb.ipa.password("mattersync-admin")),
    );
    old.ca_file = Some(sb.ipa.ca_file());
    old.api_version = Some("2.251".into());
    let pinned = mattersync_freeipa::IpaClient::new(old).unwrap();
    assert!(pinned
        .group_show(&g)
        .await
        .expect("2.251 accepted")
        .is_some());
    let _ = ipa_or_fail("freeipa_role").await; // the server is still up after all that
}

/// The seed's directory as the sync reads it, over LDAP as the system account
/// (`uid=mattersync,cn=sysaccounts,cn=etc`), with no ACI but FreeIPA's own.
async fn sysaccount_snapshot(
    ipa: &mattersync_testsupport::freeipa::Ipa,
    filter: &str,
) -> mattersync_core::Directory {
    let mut cfg = mattersync_directory::LdapConfig::new(
        ipa.get("MATTERSYNC_IPA_LDAP_URL"),
        ipa.get("MATTERSYNC_IPA_LDAP_BASE_DN"),
    );
    cfg.bind_dn = Some(ipa.get("MATTERSYNC_IPA_SYSACCOUNT_DN"));
    cfg.bind_password = Some(mattersync_directory::Secret::new(
        mattersync_testsupport::freeipa::read_secret(
            &ipa.get("MATTERSYNC_IPA_SYSACCOUNT_PASSWORD_FILE"),
        ),
    ));
    cfg.group_filter = filter.to_string();
    let mut dir = mattersync_directory::LdapDirectory::connect(&cfg)
        .await
        .expect("bind as the system account");
    dir.snapshot().await.expect("a complete snapshot")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_a_system_account_reads_groups_nesting_managers_locks_and_ids_under_freeipas_own_acis(
) {
    let ipa = ipa_or_fail("freeipa_reads").await;
    let d = sysaccount_snapshot(&ipa, "(&(objectClass=fasGroup)(cn=mm_rl_*))").await;
    let names: Vec<&str> = d.groups.keys().map(String::as_str).collect();
    for g in ["mm_rl_infra", "mm_rl_legal", "mm_rl_ops", "mm_rl_web"] {
        assert!(names.contains(&g), "{g} read: {names:?}");
    }
    assert!(
        !names.contains(&"infra_internal"),
        "not a FAS group: {names:?}"
    );
    let infra = &d.groups["mm_rl_infra"];
    assert_eq!(
        infra.description.as_deref(),
        Some("Rocky Linux infrastructure team")
    );
    assert_eq!(
        infra
            .member_users
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["alice", "neil", "olduser"]
    );
    assert_eq!(
        infra
            .manager_users
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["neil"]
    );
    let ops = &d.groups["mm_rl_ops"];
    assert_eq!(
        ops.member_groups
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["mm_rl_infra", "mm_rl_web"]
    );
    // Nested members, without the locked account (nsAccountLock, set by user_disable).
    assert_eq!(
        d.effective_members("mm_rl_ops")
            .into_iter()
            .collect::<Vec<_>>(),
        ["alice", "bob", "neil", "privy"]
    );
    assert!(d.users["olduser"].disabled, "{:?}", d.users["olduser"]);
    assert!(!d.users["alice"].disabled);
    assert_eq!(
        d.users["alice"].email.as_deref(),
        Some("alice@rockylinux.org")
    );
    // Identity is FreeIPA's ipaUniqueID, a UUID the server gave each group.
    for g in d.groups.values() {
        assert!(
            uuid::Uuid::parse_str(&g.id).is_ok(),
            "{}: id {:?}",
            g.cn,
            g.id
        );
    }

    // Why a bound account: anonymously, FreeIPA's ACIs hide members, mail and locks.
    let base = ipa.get("MATTERSYNC_IPA_LDAP_BASE_DN");
    let group = anonymous_attrs(
        &ipa,
        &format!("cn=mm_rl_infra,cn=groups,cn=accounts,{base}"),
        vec!["cn", "member", "memberManager", "ipaUniqueID"],
    )
    .await;
    assert_eq!(
        group,
        ["cn", "ipauniqueid", "membermanager"],
        "anonymous: no member"
    );
    let user = anonymous_attrs(
        &ipa,
        &format!("uid=olduser,cn=users,cn=accounts,{base}"),
        vec!["uid", "mail", "nsAccountLock"],
    )
    .await;
    assert_eq!(user, ["uid"], "anonymous: no mail, no lock");
}

/// The attributes (lowercased, sorted) an anonymous search of `dn` returns of `want`.
async fn anonymous_attrs(
    ipa: &mattersync_testsupport::freeipa::Ipa,
    dn: &str,
    want: Vec<&str>,
) -> Vec<String> {
    use mattersync_testsupport::ldap3::{LdapConnAsync, Scope, SearchEntry};
    let (conn, mut ldap) = LdapConnAsync::new(&ipa.get("MATTERSYNC_IPA_LDAP_URL"))
        .await
        .expect("connect");
    mattersync_testsupport::ldap3::drive!(conn);
    let (rs, _) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", want)
        .await
        .and_then(|r| r.success())
        .expect("anonymous search");
    let _ = ldap.unbind().await;
    let e = SearchEntry::construct(rs.into_iter().next().expect("an entry"));
    let mut keys: Vec<String> = e.attrs.keys().map(|k| k.to_lowercase()).collect();
    keys.sort();
    keys
}
