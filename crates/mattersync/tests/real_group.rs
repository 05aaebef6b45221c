//! `mattersync group …` and `link --create-channel` end to end: the real binary against the
//! real 389-ds (with the FreeIPA/FAS schema) and Mattermost, each test in a sandbox of its own
//! (area, team, users, groups `mm_<area>_*`).
//!
//! The `real_freeipa_backend_*` tests here point `[directory.freeipa]` at a scripted stand-in
//! (`mattersync_freeipa::fake`) for exact call sequences and refusals on demand, while reads
//! go to the real 389-ds; `real_freeipa.rs` runs the same commands against the live FreeIPA
//! test server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{run, Out};
use mattersync_directory::{GroupEntry, LdapConfig, LdapDirectory, Secret};
use mattersync_freeipa::fake::{Answer, FakeIpa};
use mattersync_testsupport::{Sandbox, TestUser};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Reads one group's stored settings straight from the directory.
async fn stored(sb: &Sandbox, cn: &str) -> Option<GroupEntry> {
    let s = &sb.servers;
    let mut cfg = LdapConfig::new(
        s.get("MATTERSYNC_LDAPS_URL"),
        s.get("MATTERSYNC_LDAP_BASE_DN"),
    );
    cfg.bind_dn = Some(s.get("MATTERSYNC_LDAP_BIND_DN"));
    cfg.bind_password = Some(Secret::new(s.ldap_password()));
    cfg.ca_file = Some(PathBuf::from(s.get("MATTERSYNC_LDAP_CA_FILE")));
    let mut dir = LdapDirectory::connect(&cfg).await.expect("connect");
    dir.group_entry(cn).await.expect("read the group")
}

fn classes(e: &GroupEntry) -> Vec<String> {
    e.object_classes.iter().cloned().collect()
}

fn managers(e: &GroupEntry) -> Vec<String> {
    let mut v: Vec<String> = e.managers.iter().map(|d| d.key()).collect();
    v.sort();
    v
}

fn user_key(sb: &Sandbox, u: &TestUser) -> String {
    sb.user_dn(&u.uid).to_lowercase()
}

fn ok(out: &Out) -> Value {
    assert_eq!(out.code, 0, "{out:?}");
    out.json()
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_group_create_makes_the_sops_group_and_the_same_command_again_is_unchanged() {
    let sb = Sandbox::new("group_create").await;
    let neil = sb.user("neil", false, false).await;
    let cfg = sb.config("");
    let g = sb.group("infra");
    let args = [
        "--json",
        "group",
        "create",
        g.as_str(),
        "--description",
        "Rocky Linux infrastructure team",
        "--manager",
        neil.uid.as_str(),
    ];
    let v = ok(&run(&cfg, &args));
    assert_eq!(
        (&v["changed"], &v["result"], &v["backend"]),
        (&json!(true), &json!("created"), &json!("ldap")),
        "{v}"
    );

    let e = stored(&sb, &g).await.expect("the group exists");
    assert_eq!(
        classes(&e),
        [
            "fasgroup",
            "groupofnames",
            "ipaobject",
            "ipausergroup",
            "nestedgroup",
            "top"
        ],
        "FAS and non-POSIX by default"
    );
    assert_eq!(e.gid_number, None, "non-POSIX: no GID");
    assert_eq!(
        e.description.as_deref(),
        Some("Rocky Linux infrastructure team")
    );
    assert_eq!(managers(&e), [user_key(&sb, &neil)]);
    let id = e.id.clone().expect("ipaUniqueID");
    assert_eq!(id.len(), 36, "a UUID, made by mattersync: {id}");
    assert!(e.members.is_empty());

    // The same command again: nothing to do, exit 0, the entry untouched.
    let v = ok(&run(&cfg, &args));
    assert_eq!(
        (&v["changed"], &v["result"]),
        (&json!(false), &json!("unchanged")),
        "{v}"
    );
    assert_eq!(stored(&sb, &g).await.expect("still there"), e);

    // Sync sees it (the sandbox's filter selects FAS groups), and show says what it is.
    let v = ok(&run(&cfg, &["--json", "group", "show", &g]));
    assert_eq!(
        (&v["fas"], &v["posix"], &v["synced"]),
        (&json!(true), &json!(false), &json!(true)),
        "{v}"
    );
    assert_eq!(v["managers"]["users"], json!([neil.uid]), "{v}");
    assert_eq!(v["id"], json!(id));
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_other_settings_are_shown_as_drift_and_changed_only_with_update() {
    let sb = Sandbox::new("group_drift").await;
    let neil = sb.user("neil", false, false).await;
    let label = sb.user("label", false, false).await;
    let cfg = sb.config("");
    let g = sb.group("docs");
    ok(&run(
        &cfg,
        &[
            "--json",
            "group",
            "create",
            &g,
            "--description",
            "Documentation SIG",
            "--manager",
            &neil.uid,
        ],
    ));
    let before = stored(&sb, &g).await.expect("created");

    let other = [
        "--json",
        "group",
        "create",
        g.as_str(),
        "--description",
        "Docs and translations",
        "--manager",
        label.uid.as_str(),
        "--posix",
    ];
    let out = run(&cfg, &other);
    assert_eq!(out.code, 7, "drift is exit 7: {out:?}");
    let v = out.json();
    assert_eq!(
        (&v["changed"], &v["result"]),
        (&json!(false), &json!("drift")),
        "{v}"
    );
    let shown: Vec<&str> = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["change"].as_str())
        .collect();
    assert_eq!(
        shown,
        ["description", "posix", "add_manager", "remove_manager"],
        "{v}"
    );
    assert!(out.stderr.contains("--update"), "{}", out.stderr);
    assert_eq!(
        stored(&sb, &g).await.expect("there"),
        before,
        "drift changes nothing"
    );

    // The human output names every difference.
    let text = run(&cfg, &other[1..]);
    assert_eq!(text.code, 7);
    assert!(
        text.stdout
            .contains("description: \"Documentation SIG\" -> \"Docs and translations\"")
            && text.stdout.contains("POSIX: no -> yes")
            && text
                .stdout
                .contains(&format!("manager user {}: remove", neil.uid)),
        "{}",
        text.stdout
    );

    let mut update = other.to_vec();
    update.push("--update");
    let v = ok(&run(&cfg, &update));
    assert_eq!(
        (&v["changed"], &v["result"]),
        (&json!(true), &json!("updated")),
        "{v}"
    );
    let after = stored(&sb, &g).await.expect("there");
    assert_eq!(after.description.as_deref(), Some("Docs and translations"));
    assert_eq!(managers(&after), [user_key(&sb, &label)]);
    assert!(after.object_classes.contains("posixgroup"), "{after:?}");
    let gid: u32 = after
        .gid_number
        .as_deref()
        .and_then(|g| g.parse().ok())
        .expect("a numeric gidNumber");
    assert!(gid >= 10000, "{gid}");
    assert_eq!(after.id, before.id, "the same entry, changed in place");
    // And now the updated command is the unchanged one.
    let v = ok(&run(&cfg, &other));
    assert_eq!(v["result"], "unchanged", "{v}");

    // Back to non-POSIX: the GID goes with the class.
    let mut back = update.clone();
    back.retain(|a| *a != "--posix");
    let v = ok(&run(&cfg, &back));
    assert_eq!(v["result"], "updated", "{v}");
    let e = stored(&sb, &g).await.expect("there");
    assert!(
        !e.object_classes.contains("posixgroup") && e.gid_number.is_none(),
        "{e:?}"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_bad_names_empty_descriptions_and_unknown_managers_are_refused_before_any_write(
) {
    let sb = Sandbox::new("group_refused").await;
    let cfg = sb.config("");
    let g = sb.group("ops");

    let out = run(
        &cfg,
        &["group", "create", "mm_nosucharea_ops", "--description", "x"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("area \"nosucharea\" is not configured")
            && out
                .stderr
                .contains(&format!("configured areas: {}", sb.area))
            && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    let upper = format!("mm_{}_Ops", sb.area);
    let out = run(&cfg, &["group", "create", &upper, "--description", "x"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("may only contain"), "{}", out.stderr);
    let out = run(&cfg, &["group", "create", "ops", "--description", "x"]);
    assert!(
        out.code == 1 && out.stderr.contains("does not match the template"),
        "{out:?}"
    );

    // Every problem at once, and nothing written.
    let out = run(
        &cfg,
        &[
            "group",
            "create",
            &g,
            "--description",
            "  ",
            "--manager",
            "ghost",
            "--manager-group",
            "no_such_group",
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    for needle in [
        "3 problems, nothing was changed",
        "--description is empty",
        "manager \"ghost\" does not exist in the directory (no uid=ghost under cn=users,cn=accounts,",
        "manager group \"no_such_group\" does not exist",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    assert!(stored(&sb, &g).await.is_none(), "nothing was created");
    for name in [upper.as_str(), "mm_nosucharea_ops"] {
        assert!(stored(&sb, name).await.is_none(), "{name}");
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_a_group_that_exists_already_is_unchanged_if_it_matches_and_drift_if_not() {
    let sb = Sandbox::new("group_duplicate").await;
    let neil = sb.user("neil", false, false).await;
    // Made by someone else (RAS, the old playbook), not by mattersync.
    let g = sb.create_group("web", &[], &[], &[&neil]).await;
    let before = stored(&sb, &g).await.expect("there");
    let cfg = sb.config("");

    let same = [
        "--json",
        "group",
        "create",
        g.as_str(),
        "--description",
        "test group",
        "--manager",
        neil.uid.as_str(),
        // Named twice: still one manager.
        "--manager",
        neil.uid.as_str(),
    ];
    let v = ok(&run(&cfg, &same));
    assert_eq!(v["result"], "unchanged", "{v}");

    let out = run(
        &cfg,
        &[
            "--json",
            "group",
            "create",
            &g,
            "--description",
            "test group",
            "--no-fas",
        ],
    );
    assert_eq!(out.code, 7, "{out:?}");
    let changes: Vec<String> = out.json()["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| format!("{}:{}", c["change"], c["to"]))
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(
        changes.contains(&"\"fas\":false".to_string()),
        "{changes:?}"
    );
    assert_eq!(stored(&sb, &g).await.expect("there"), before);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_members_and_managers_are_added_and_removed_idempotently() {
    let sb = Sandbox::new("group_members").await;
    let alice = sb.user("alice", false, false).await;
    let bob = sb.user("bob", false, false).await;
    let oncall = sb.create_group("oncall", &[&bob], &[], &[]).await;
    let g = sb.create_group("infra", &[], &[], &[]).await;
    let cfg = sb.config("");

    let v = ok(&run(
        &cfg,
        &[
            "--json",
            "group",
            "add-member",
            &g,
            &alice.uid,
            "--group",
            &oncall,
        ],
    ));
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(
        v["done"],
        json!([alice.uid, format!("group {oncall}")]),
        "{v}"
    );
    let v = ok(&run(
        &cfg,
        &[
            "--json",
            "group",
            "add-member",
            &g,
            &alice.uid,
            "--group",
            &oncall,
        ],
    ));
    assert_eq!(
        (&v["changed"], v["unchanged"].as_array().map(Vec::len)),
        (&json!(false), Some(2)),
        "{v}"
    );
    // Nested members count.
    let v = ok(&run(&cfg, &["--json", "group", "show", &g]));
    assert_eq!(
        v["members"]["effective"],
        json!([alice.uid, bob.uid]),
        "{v}"
    );
    assert_eq!(
        v["members"]["groups"][0]["members"],
        json!([bob.uid]),
        "{v}"
    );

    // An unknown user stops the whole command.
    let out = run(&cfg, &["group", "remove-member", &g, "ghost"]);
    assert_eq!(out.code, 0, "removing a non-member is a no-op: {out:?}");
    let out = run(&cfg, &["group", "add-member", &g, &bob.uid, "ghost"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("user \"ghost\" does not exist"),
        "{}",
        out.stderr
    );
    let e = stored(&sb, &g).await.expect("there");
    assert_eq!(e.members.len(), 2, "bob was not added either: {e:?}");

    let v = ok(&run(
        &cfg,
        &["--json", "group", "remove-member", &g, &alice.uid],
    ));
    assert_eq!(v["done"], json!([alice.uid]), "{v}");
    let v = ok(&run(
        &cfg,
        &[
            "--json",
            "group",
            "add-manager",
            &g,
            &alice.uid,
            "--group",
            &oncall,
        ],
    ));
    assert_eq!(v["changed"], true, "{v}");
    let e = stored(&sb, &g).await.expect("there");
    assert_eq!(
        managers(&e),
        [sb.group_dn(&oncall).to_lowercase(), user_key(&sb, &alice)]
    );
    let v = ok(&run(
        &cfg,
        &["--json", "group", "remove-manager", &g, &alice.uid],
    ));
    assert_eq!(v["done"], json!([alice.uid]), "{v}");
    let e = stored(&sb, &g).await.expect("there");
    assert_eq!(managers(&e), [sb.group_dn(&oncall).to_lowercase()]);
    // Group commands act only on groups that fit the naming template.
    let out = run(
        &cfg,
        &[
            "group",
            "add-member",
            &oncall.replace("mm_", "xx_"),
            &alice.uid,
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
}

/// What the LDAP proxy does when the client sends an AddRequest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Close both connections; the request never reaches the server.
    BeforeAdd,
    /// Pass the request on, then close both connections; the answer never comes back.
    AfterAdd,
}

/// A plain-LDAP relay that understands message boundaries well enough to cut the connection
/// at an AddRequest (protocol op tag 0x68).
fn ldap_proxy(upstream: String, cut: Cut) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(&upstream) else {
                return;
            };
            let cut_now = Arc::new(AtomicBool::new(false));
            let (mut c2, mut s2, flag) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
                cut_now.clone(),
            );
            // Server to client, until the cut.
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = s2.read(&mut buf) {
                    if n == 0 || flag.load(Ordering::SeqCst) || c2.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let mut pending: Vec<u8> = Vec::new();
                let mut buf = [0u8; 16384];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(len) = message_len(&pending) {
                        let msg: Vec<u8> = pending.drain(..len).collect();
                        if op_tag(&msg) == Some(0x68) {
                            cut_now.store(true, Ordering::SeqCst);
                            if cut == Cut::AfterAdd {
                                let _ = server.write_all(&msg);
                                std::thread::sleep(std::time::Duration::from_millis(500));
                            }
                            let _ = client.shutdown(std::net::Shutdown::Both);
                            let _ = server.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        if server.write_all(&msg).is_err() {
                            return;
                        }
                    }
                }
                let _ = server.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    format!("ldap://{addr}")
}

/// The length of the first complete BER message in `b`, if it is all there.
fn message_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        let bytes = b.get(2..2 + n)?;
        (
            bytes.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize),
            2 + n,
        )
    };
    (b.len() >= header + len).then_some(header + len)
}

/// The protocol op tag of an LDAPMessage (after the SEQUENCE header and the message id).
fn op_tag(msg: &[u8]) -> Option<u8> {
    let first = *msg.get(1)?;
    let header = if first < 0x80 {
        2
    } else {
        2 + (first & 0x7f) as usize
    };
    let id_len = *msg.get(header + 1)? as usize;
    msg.get(header + 2 + id_len).copied()
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_dirsrv_a_create_cut_off_mid_way_leaves_nothing_or_a_group_the_same_command_finishes()
{
    let sb = Sandbox::new("group_cut").await;
    let neil = sb.user("neil", false, false).await;
    let direct = sb.config("");
    let ldap = sb
        .servers
        .get("MATTERSYNC_LDAP_URL")
        .trim_start_matches("ldap://")
        .to_string();

    for (cut, name) in [(Cut::BeforeAdd, "before"), (Cut::AfterAdd, "after")] {
        let g = sb.group(name);
        let proxied = write_config(&sb, &ldap_proxy(ldap.clone(), cut), name);
        let args = [
            "--json",
            "group",
            "create",
            g.as_str(),
            "--description",
            "Cut off",
            "--manager",
            neil.uid.as_str(),
        ];
        let out = run(&proxied, &args);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr.contains("may or may not have done it")
                && out.stderr.contains("run the same command again"),
            "the error says the outcome is unknown and what to do: {}",
            out.stderr
        );
        let there = stored(&sb, &g).await;
        match cut {
            Cut::BeforeAdd => assert!(there.is_none(), "nothing was written"),
            Cut::AfterAdd => assert!(there.is_some(), "the add landed, its answer did not"),
        }
        // The same command again (the directory reachable now) finishes the job.
        let v = ok(&run(&direct, &args));
        let expected = match cut {
            Cut::BeforeAdd => "created",
            Cut::AfterAdd => "unchanged",
        };
        assert_eq!(v["result"], expected, "{name}: {v}");
        let e = stored(&sb, &g).await.expect("there now");
        assert!(e.is_fas() && !e.is_posix() && managers(&e) == [user_key(&sb, &neil)]);
    }
}

/// The sandbox config with another directory URI, in a file of its own (the sandbox's own
/// config file is written back as it was).
fn write_config(sb: &Sandbox, uri: &str, name: &str) -> PathBuf {
    let path = sb.config_with(uri, "");
    let own = sb.dir.path().join(format!("config-{name}.toml"));
    std::fs::rename(&path, &own).expect("rename config");
    sb.config("");
    own
}

/// A sandbox config that writes through FreeIPA's JSON-RPC API at `url` (reads stay on the
/// sandbox's 389-ds).
fn ipa_config(sb: &Sandbox, url: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let pw = sb.dir.path().join("ipa.password");
    std::fs::write(&pw, "s3cret-ipa\n").expect("write password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let path = sb.config("");
    let text = std::fs::read_to_string(&path)
        .expect("read config")
        .replace("kind = \"ldap\"", "kind = \"freeipa\"");
    let text = text.replacen(
        "[areas]",
        &format!(
            "[directory.freeipa]\nurl = \"{url}\"\nuser = \"mattersync-admin\"\npassword_file = \"{}\"\n\n[areas]",
            pw.display()
        ),
        1,
    );
    let own = sb.dir.path().join("config-ipa.toml");
    std::fs::write(&own, text).expect("write config");
    own
}

fn rpc(result: Value) -> Answer {
    Answer::json(
        &json!({"result": result, "error": null, "id": 0, "principal": "mattersync-admin@ROCKYLINUX.ORG"}),
    )
}

fn rpc_error(code: i64, name: &str, message: &str) -> Answer {
    Answer::json(
        &json!({"result": null, "error": {"code": code, "name": name, "message": message, "data": {}}, "id": 0}),
    )
}

fn methods(fake: &FakeIpa) -> Vec<String> {
    fake.calls()
        .iter()
        .map(|c| c["method"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn entry(cn: &str) -> Value {
    json!({"cn": [cn], "dn": format!("cn={cn},cn=groups,cn=accounts,dc=rockylinux,dc=org")})
}

fn managers_added(cn: &str) -> Answer {
    rpc(
        json!({"completed": 1, "failed": {"membermanager": {"user": [], "group": []}}, "result": entry(cn)}),
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_backend_create_makes_the_sops_calls_in_order() {
    let sb = Sandbox::new("group_ipa_create").await;
    let neil = sb.user("neil", false, false).await;
    let g = sb.group("infra");
    let fake = FakeIpa::start(vec![
        Answer::login_ok(),
        rpc(json!({"result": entry(&g), "summary": format!("Added group \"{g}\""), "value": g})),
        rpc(json!({"result": entry(&g), "summary": format!("Modified group \"{g}\""), "value": g})),
        managers_added(&g),
    ])
    .await
    .expect("fake FreeIPA");
    let cfg = ipa_config(&sb, fake.url());
    let v = ok(&run(
        &cfg,
        &[
            "--json",
            "group",
            "create",
            &g,
            "--description",
            "Rocky Linux infrastructure team",
            "--manager",
            &neil.uid,
        ],
    ));
    assert_eq!(
        (&v["result"], &v["backend"]),
        (&json!("created"), &json!("freeipa")),
        "{v}"
    );
    let calls = fake.calls();
    assert_eq!(
        calls
            .iter()
            .map(|c| c["params"].clone())
            .collect::<Vec<_>>(),
        [
            json!([[g], {"description": "Rocky Linux infrastructure team", "nonposix": true}]),
            json!([[g], {"fasgroup": true}]),
            json!([[g], {"user": [neil.uid]}]),
        ]
    );
    assert_eq!(
        methods(&fake),
        ["group_add/1", "group_mod/1", "group_add_member_manager/1"]
    );
    // The password went in the login form only, from the file.
    let reqs = fake.requests();
    assert_eq!(reqs[0].body, "user=mattersync-admin&password=s3cret-ipa");
    assert!(reqs[1..].iter().all(|r| !r.body.contains("s3cret")));
    assert!(stored(&sb, &g).await.is_none(), "LDAP was not written");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_backend_a_failure_mid_way_says_what_was_done_and_the_same_command_completes_it(
) {
    let sb = Sandbox::new("group_ipa_partial").await;
    let neil = sb.user("neil", false, false).await;
    let g = sb.group("infra");
    let args = [
        "--json",
        "group",
        "create",
        g.as_str(),
        "--description",
        "test group",
        "--manager",
        neil.uid.as_str(),
    ];
    let fake = FakeIpa::start(vec![
        Answer::login_ok(),
        rpc(json!({"result": entry(&g), "summary": "Added", "value": g})),
        rpc_error(
            2100,
            "ACIError",
            "Insufficient access: Insufficient 'write' privilege to the 'objectClass' attribute",
        ),
    ])
    .await
    .expect("fake FreeIPA");
    let cfg = ipa_config(&sb, fake.url());
    let out = run(&cfg, &args);
    assert_eq!(out.code, 5, "a partial result is exit 5: {out:?}");
    let v = out.json();
    assert_eq!(
        (&v["changed"], &v["result"]),
        (&json!(true), &json!("incomplete")),
        "{v}"
    );
    assert_eq!(
        v["done"],
        json!(["create the group (group_add, non-POSIX)"]),
        "{v}"
    );
    assert_eq!(
        v["failed"]["step"], "make it a FAS group (group_mod)",
        "{v}"
    );
    assert!(v["failed"]["error"]
        .as_str()
        .is_some_and(|e| e.contains("ACIError 2100")));
    assert_eq!(
        v["not_done"],
        json!([format!(
            "add managers {} (group_add_member_manager)",
            neil.uid
        )]),
        "{v}"
    );
    assert!(
        out.stderr.contains("exists but is incomplete")
            && out
                .stderr
                .contains("run the same command again to complete it"),
        "{}",
        out.stderr
    );
    assert_eq!(
        methods(&fake),
        ["group_add/1", "group_mod/1"],
        "stopped at the failure"
    );

    // What FreeIPA now holds: the group, without the FAS flag and the manager.
    sb.create_raw_group(&g, &[], &[], &[], false).await;

    // The same command again completes it, without --update, and creates nothing twice.
    let fake = FakeIpa::start(vec![
        Answer::login_ok(),
        rpc(json!({"result": entry(&g), "summary": "Modified", "value": g})),
        managers_added(&g),
    ])
    .await
    .expect("fake FreeIPA");
    let cfg = ipa_config(&sb, fake.url());
    let v = ok(&run(&cfg, &args));
    assert_eq!(
        (&v["changed"], &v["result"]),
        (&json!(true), &json!("completed")),
        "{v}"
    );
    assert_eq!(
        methods(&fake),
        ["group_mod/1", "group_add_member_manager/1"]
    );

    // Completed, the note is gone: the same state again is ordinary drift now.
    let fake = FakeIpa::start(vec![]).await.expect("fake FreeIPA");
    let cfg = ipa_config(&sb, fake.url());
    let out = run(&cfg, &args);
    assert_eq!(out.code, 7, "{out:?}");
    assert!(fake.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_backend_a_refused_create_changes_nothing_and_is_not_completed_later() {
    let sb = Sandbox::new("group_ipa_refused").await;
    let g = sb.group("web");
    let fake = FakeIpa::start(vec![
        Answer::login_ok(),
        rpc_error(
            4002,
            "DuplicateEntry",
            &format!("group with name \"{g}\" already exists"),
        ),
    ])
    .await
    .expect("fake FreeIPA");
    let cfg = ipa_config(&sb, fake.url());
    let out = run(
        &cfg,
        &[
            "group",
            "create",
            &g,
            "--description",
            "test group",
            "--no-fas",
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("DuplicateEntry 4002") && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("incomplete"));
    // No note was left: a group that differs later is drift, not something to complete.
    sb.create_raw_group(&g, &[], &[], &[], false).await;
    let fake = FakeIpa::start(vec![]).await.expect("fake");
    let cfg = ipa_config(&sb, fake.url());
    let out = run(&cfg, &["group", "create", &g, "--description", "other"]);
    assert_eq!(out.code, 7, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_freeipa_backend_per_member_failures_are_reported_not_ignored() {
    let sb = Sandbox::new("group_ipa_members").await;
    let alice = sb.user("alice", false, false).await;
    let bob = sb.user("bob", false, false).await;
    let g = sb.create_group("infra", &[], &[], &[]).await;
    // Each run of the binary logs in first.
    let fake = FakeIpa::start(vec![
        Answer::login_ok(),
        rpc(json!({"completed": 1, "failed": {"member": {"user": [[bob.uid, "missing user agreement: FPCA"]], "group": []}}, "result": entry(&g)})),
        Answer::login_ok(),
        rpc(json!({"completed": 0, "failed": {"member": {"user": [[bob.uid, "missing user agreement: FPCA"]], "group": []}}, "result": entry(&g)})),
        Answer::login_ok(),
        rpc(json!({"completed": 0, "failed": {"member": {"user": [[alice.uid, "This entry is already a member"]], "group": []}}, "result": entry(&g)})),
    ])
    .await
    .expect("fake FreeIPA");
    let cfg = ipa_config(&sb, fake.url());

    let out = run(
        &cfg,
        &["--json", "group", "add-member", &g, &alice.uid, &bob.uid],
    );
    assert_eq!(out.code, 5, "some done, some failed: {out:?}");
    let v = out.json();
    assert_eq!(v["done"], json!([alice.uid]), "{v}");
    assert_eq!(
        v["failed"],
        json!([format!("user {}: missing user agreement: FPCA", bob.uid)]),
        "{v}"
    );
    assert_eq!(v["changed"], true);

    let out = run(&cfg, &["group", "add-member", &g, &bob.uid]);
    assert_eq!(out.code, 1, "all failed: {out:?}");
    assert!(
        out.stderr.contains("missing user agreement"),
        "{}",
        out.stderr
    );

    // "Already a member" from FreeIPA is success (the directory had not caught up).
    let v = ok(&run(
        &cfg,
        &["--json", "group", "add-member", &g, &alice.uid],
    ));
    assert!(v["failed"].as_array().is_some_and(Vec::is_empty), "{v}");
    assert_eq!(
        (&v["changed"], &v["unchanged"]),
        (&json!(false), &json!([alice.uid])),
        "{v}"
    );
    let calls = fake.calls();
    assert_eq!(
        calls[0]["params"],
        json!([[g], {"user": [alice.uid, bob.uid]}])
    );
    assert_eq!(fake.remaining(), 0);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_link_create_channel_makes_the_channel_once_and_records_the_link() {
    let sb = Sandbox::new("link_create_channel").await;
    let cfg = sb.config("");
    let g = sb.group("release");
    let target = format!("{}/release-notes", sb.area);
    let args = [
        "--json",
        "link",
        g.as_str(),
        target.as_str(),
        "--create-channel",
        "--private",
        "--mode",
        "add",
    ];
    let v = ok(&run(&cfg, &args));
    assert_eq!(
        (&v["changed"], &v["channel_created"]),
        (&json!(true), &json!(true)),
        "{v}"
    );
    let ch = sb
        .mm
        .channel_by_name(&sb.area, "release-notes")
        .await
        .expect("lookup")
        .expect("the channel exists");
    assert!(ch.private && !ch.archived, "{ch:?}");

    let v = ok(&run(&cfg, &args));
    assert_eq!(
        (&v["changed"], &v["channel_created"]),
        (&json!(false), &json!(false)),
        "{v}"
    );
    let links = ok(&run(&cfg, &["--json", "links"]));
    let mine: Vec<&Value> = links["links"]
        .as_array()
        .expect("links")
        .iter()
        .filter(|l| l["group"] == json!(g))
        .collect();
    assert_eq!(mine.len(), 1, "{links}");
    assert_eq!(mine[0]["source"], "ledger", "{links}");

    // An existing public channel is not turned private, and no link is recorded for it.
    sb.channel("public-one", false).await;
    let public = format!("{}/public-one", sb.area);
    let out = run(
        &cfg,
        &["link", &g, &public, "--create-channel", "--private"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("exists as a public channel"),
        "{}",
        out.stderr
    );
    let out = run(&cfg, &["link", &g, &sb.area, "--create-channel"]);
    assert_eq!(out.code, 1, "{out:?}");
    let links = ok(&run(&cfg, &["--json", "links"]));
    assert!(
        !links.to_string().contains("public-one"),
        "no link for the refused channel: {links}"
    );
}

#[test]
fn ldap_message_framing_is_read_correctly() {
    // A bind request (short length) and an add request (long length).
    let bind = [
        0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00,
    ];
    assert_eq!(message_len(&bind), Some(14));
    assert_eq!(op_tag(&bind), Some(0x60));
    assert_eq!(message_len(&bind[..5]), None);
    let mut add = vec![0x30, 0x81, 0x85, 0x02, 0x01, 0x07, 0x68];
    add.resize(3 + 0x85, 0);
    assert_eq!(message_len(&add), Some(3 + 0x85));
    assert_eq!(op_tag(&add), Some(0x68));
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_group_create_refuses_a_name_longer_than_freeipa_allows_and_writes_nothing() {
    let sb = Sandbox::new("group_create_long").await;
    let neil = sb.user("neil", false, false).await;
    let cfg = sb.config("");
    // mm_<area>_ is 13 characters: 300 in all, and then FreeIPA's limit exactly.
    let prefix = sb.group("");
    let long = format!("{prefix}{}", "x".repeat(300 - prefix.len()));
    let longest = format!("{prefix}{}", "y".repeat(255 - prefix.len()));
    let create = |name: &str| {
        run(
            &cfg,
            &[
                "--json",
                "group",
                "create",
                name,
                "--description",
                "too long",
                "--manager",
                neil.uid.as_str(),
            ],
        )
    };
    let out = create(&long);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("300 characters long")
            && out.stderr.contains("at most 255")
            && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert!(stored(&sb, &long).await.is_none(), "written anyway");
    // The longest name FreeIPA takes is made.
    let v = ok(&create(&longest));
    assert_eq!(v["result"], "created", "{v}");
    assert!(stored(&sb, &longest).await.is_some());
    // Linking the over-long name is refused the same way, before any look-up.
    let out = run(&cfg, &["link", &long, &sb.area]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("at most 255"), "{}", out.stderr);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_link_refuses_a_missing_an_archived_and_a_direct_message_target_and_records_nothing(
) {
    let sb = Sandbox::new("link_refusals").await;
    let alice = sb.user("alice", true, false).await;
    let cfg = sb.config("");
    let g = sb.group("infra");
    let ledger_links = || {
        let ledger =
            mattersync_ledger::Ledger::open(&sb.dir.path().join("ledger.db")).expect("ledger");
        ledger.links().expect("links")
    };
    let refused = |target: &str, needle: &str| {
        let out = run(&cfg, &["link", &g, target]);
        assert_eq!(out.code, 1, "{target}: {out:?}");
        assert!(
            out.stderr.contains(needle) && out.stderr.contains("nothing was changed"),
            "{target}: {}",
            out.stderr
        );
    };

    // A channel that does not exist: refused (it used to be recorded as it was).
    refused(
        &format!("{}/no-such-channel", sb.area),
        "does not exist in Mattermost: create it there, or pass --create-channel",
    );
    // A team that does not exist, for a team link and for a channel link.
    refused("no-such-team-x1", "team no-such-team-x1 does not exist");
    refused(
        "no-such-team-x1/infra",
        "team no-such-team-x1 does not exist",
    );
    // An archived channel.
    let old = sb.channel("old", false).await;
    sb.mm.archive_channel(&old).await.expect("archive");
    refused(&format!("{}/old", sb.area), "is archived");
    // A direct message: Mattermost finds it by its name under any team.
    let me = sb.mm.me().await.expect("me");
    let dm = sb
        .mm
        .create_direct_channel(&me.id, alice.mm_id.as_deref().expect("account"))
        .await
        .expect("direct channel");
    assert!(dm.direct, "{dm:?}");
    let found = sb
        .mm
        .channel_by_name(&sb.area, &dm.name)
        .await
        .expect("lookup");
    assert!(found.as_ref().is_some_and(|c| c.direct), "{found:?}");
    refused(
        &format!("{}/{}", sb.area, dm.name),
        "direct or group message",
    );
    // A channel name Mattermost cannot have (65 characters) is refused before any look-up.
    refused(&format!("{}/{}", sb.area, "c".repeat(65)), "1 to 64");
    assert!(ledger_links().is_empty(), "{:?}", ledger_links());

    // What exists and is open is linked, private channels too.
    sb.channel("infra", false).await;
    sb.channel("secret", true).await;
    for target in [
        sb.area.clone(),
        format!("{}/infra", sb.area),
        format!("{}/secret", sb.area),
    ] {
        let v = ok(&run(&cfg, &["--json", "link", &g, &target]));
        assert_eq!(v["changed"], true, "{target}: {v}");
    }
    assert_eq!(ledger_links().len(), 3);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_servers_link_cannot_verify_the_target_when_mattermost_is_unreachable() {
    let sb = Sandbox::new("link_unverified").await;
    sb.channel("infra", false).await;
    let cfg = sb.config("");
    // The same configuration with a Mattermost nobody answers at.
    let text = std::fs::read_to_string(&cfg).expect("config");
    let url = sb.servers.get("MATTERSYNC_MM_URL");
    let dead = sb.dir.path().join("dead.toml");
    std::fs::write(&dead, text.replace(&url, "http://127.0.0.1:9")).expect("write");
    let g = sb.group("infra");
    let out = run(&dead, &["link", &g, &format!("{}/infra", sb.area)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot verify the target")
            && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    let ledger = mattersync_ledger::Ledger::open(&sb.dir.path().join("ledger.db")).expect("ledger");
    assert!(ledger.links().expect("links").is_empty());
}
