//! The JSON-RPC wire format, checked against request/response fixtures
//! (`tests/fixtures/*.json`: the request mattersync must send and the answer FreeIPA gives).
//! The requests were written from FreeIPA's API documentation; the answers are recorded from
//! the live FreeIPA 4.12.4 test server (`scripts/freeipa/capture_fixtures.py`). A scripted
//! stand-in (`mattersync_freeipa::fake`) replays them and records the requests; the live
//! server itself is tested by `crates/mattersync/tests/real_freeipa.rs`.

// Test code: a failed unwrap, expect or panic is a failed test (helpers included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mattersync_freeipa::fake::{Answer, FakeIpa};
use mattersync_freeipa::{
    codes, GroupAdd, GroupMod, IpaClient, IpaConfig, IpaError, MemberKind, MemberRef, Modified,
    Secret,
};
use serde_json::Value;
use std::path::Path;

struct Fixture {
    request: Value,
    response: Value,
}

fn fixture(name: &str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    assert!(v["about"].is_string(), "{name}: says where it comes from");
    Fixture {
        request: v["request"].clone(),
        response: v["response"].clone(),
    }
}

const PASSWORD: &str = "correct horse&battery=staple";

fn client(fake: &FakeIpa) -> IpaClient {
    IpaClient::new(IpaConfig::new(
        fake.url(),
        "mattersync-admin",
        Secret::new(PASSWORD),
    ))
    .expect("client")
}

/// Serves login + the fixture's answer; returns the server and a client.
async fn replay(name: &str) -> (FakeIpa, IpaClient, Fixture) {
    let fx = fixture(name);
    let fake = FakeIpa::start(vec![Answer::login_ok(), Answer::json(&fx.response)])
        .await
        .expect("fake server");
    let c = client(&fake);
    (fake, c, fx)
}

/// The one JSON-RPC call the client sent is exactly the fixture's request.
fn assert_sent(fake: &FakeIpa, fx: &Fixture) {
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0], fx.request);
    assert_eq!(fake.remaining(), 0);
}

#[tokio::test]
async fn login_posts_the_form_with_a_referer_and_the_session_cookie_rides_along() {
    let (fake, ipa, fx) = replay("group_show-fas-group").await;
    ipa.group_show("mm_rl_infra").await.expect("show");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let login = &reqs[0];
    assert_eq!(
        (login.method.as_str(), login.path.as_str()),
        ("POST", "/ipa/session/login_password")
    );
    assert_eq!(
        login.headers.get("content-type").map(String::as_str),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        login.body,
        "user=mattersync-admin&password=correct+horse%26battery%3Dstaple"
    );
    let referer = format!("{}/ipa", fake.url());
    for r in &reqs {
        assert_eq!(r.headers.get("referer"), Some(&referer), "{}", r.path);
    }
    let call = &reqs[1];
    assert_eq!(call.path, "/ipa/session/json");
    assert_eq!(
        call.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(
        call.headers.get("cookie").map(String::as_str),
        Some("ipa_session=MagBearerToken=fake-session-1")
    );
    // Only the login form carries the password.
    assert!(!call.body.contains("horse") && !call.headers.values().any(|v| v.contains("horse")));
    assert_sent(&fake, &fx);
}

#[tokio::test]
async fn group_add_sends_description_and_nonposix() {
    let (fake, ipa, fx) = replay("group_add-nonposix").await;
    ipa.group_add(
        "mm_rl_infra",
        &GroupAdd {
            description: "Rocky Linux infrastructure team".into(),
            nonposix: true,
            gidnumber: None,
        },
    )
    .await
    .expect("added");
    assert_sent(&fake, &fx);
}

#[tokio::test]
async fn group_add_of_a_posix_group_sends_the_gid_and_no_nonposix_flag() {
    let (fake, ipa, fx) = replay("group_add-posix-with-gid").await;
    ipa.group_add(
        "mm_rl_build",
        &GroupAdd {
            description: "Build system operators".into(),
            nonposix: false,
            gidnumber: Some(1466500042),
        },
    )
    .await
    .expect("added");
    assert_sent(&fake, &fx);
}

#[tokio::test]
async fn group_add_of_an_existing_group_is_duplicate_entry_4002() {
    let (fake, ipa, fx) = replay("group_add-duplicate-4002").await;
    let e = ipa
        .group_add(
            "mm_rl_infra",
            &GroupAdd {
                description: "Rocky Linux infrastructure team".into(),
                nonposix: true,
                gidnumber: None,
            },
        )
        .await
        .expect_err("duplicate");
    assert!(e.is_duplicate(), "{e}");
    assert!(
        !e.outcome_unknown(),
        "the server refused it: nothing happened"
    );
    assert_eq!(
        e.to_string(),
        "FreeIPA group_add: group with name \"mm_rl_infra\" already exists (DuplicateEntry 4002)"
    );
    assert_sent(&fake, &fx);
}

#[tokio::test]
async fn an_aci_error_2100_is_an_error_with_the_servers_words() {
    let (fake, ipa, fx) = replay("group_add-aci-2100").await;
    let e = ipa
        .group_add(
            "mm_rl_infra",
            &GroupAdd {
                description: "Rocky Linux infrastructure team".into(),
                nonposix: true,
                gidnumber: None,
            },
        )
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Some(codes::ACI_ERROR));
    assert!(
        e.to_string().contains("Insufficient 'add' privilege"),
        "{e}"
    );
    assert_sent(&fake, &fx);
}

#[tokio::test]
async fn group_mod_fasgroup_is_changed_and_a_repeat_is_unchanged_not_an_error() {
    let (fake, ipa, fx) = replay("group_mod-fasgroup").await;
    let m = ipa
        .group_mod("mm_rl_infra", &GroupMod::fasgroup())
        .await
        .expect("mod");
    assert_eq!(m, Modified::Changed);
    assert_sent(&fake, &fx);

    let (fake, ipa, fx) = replay("group_mod-already-fas-4202").await;
    let m = ipa
        .group_mod("mm_rl_infra", &GroupMod::fasgroup())
        .await
        .expect("EmptyModlist is success");
    assert_eq!(m, Modified::Unchanged);
    assert_sent(&fake, &fx);
}

#[tokio::test]
async fn group_mod_sends_only_what_changes() {
    let (fake, ipa, fx) = replay("group_mod-description").await;
    let m = ipa
        .group_mod(
            "mm_rl_infra",
            &GroupMod {
                description: Some("Infrastructure and on-call".into()),
                ..GroupMod::default()
            },
        )
        .await
        .expect("mod");
    assert_eq!(m, Modified::Changed);
    assert_sent(&fake, &fx);
}

#[tokio::test]
async fn group_mod_of_a_missing_group_is_not_found_4001() {
    let (fake, ipa, fx) = replay("group_mod-not-found-4001").await;
    let e = ipa
        .group_mod("mm_rl_nope", &GroupMod::fasgroup())
        .await
        .expect_err("not found");
    assert!(e.is_not_found(), "{e}");
    assert_sent(&fake, &fx);
}

#[tokio::test]
async fn group_show_reads_flags_members_and_managers_and_a_missing_group_is_none() {
    let (fake, ipa, fx) = replay("group_show-fas-group").await;
    let g = ipa
        .group_show("mm_rl_infra")
        .await
        .expect("show")
        .expect("exists");
    assert_sent(&fake, &fx);
    assert_eq!(g.cn, "mm_rl_infra");
    assert_eq!(
        g.description.as_deref(),
        Some("Rocky Linux infrastructure team")
    );
    assert!(g.fasgroup && !g.posix && g.gidnumber.is_none());
    assert_eq!(g.manager_users, ["neil".to_string()].into());
    assert_eq!(
        g.member_users,
        ["alice".to_string(), "neil".to_string()].into()
    );

    let (fake, ipa, fx) = replay("group_show-not-found-4001").await;
    assert_eq!(ipa.group_show("mm_rl_nope").await.expect("no error"), None);
    assert_sent(&fake, &fx);
}

#[tokio::test]
async fn adding_a_manager_completes_and_a_repeat_reports_already_a_manager() {
    let (fake, ipa, fx) = replay("group_add_member_manager").await;
    let out = ipa
        .group_add_member_manager("mm_rl_infra", &["neil".into()], &[])
        .await
        .expect("added");
    assert_sent(&fake, &fx);
    assert_eq!(out.completed, 1);
    assert!(out.failed.is_empty() && out.unchanged.is_empty());

    let (fake, ipa, fx) = replay("group_add_member_manager-already").await;
    let out = ipa
        .group_add_member_manager("mm_rl_infra", &["neil".into()], &[])
        .await
        .expect("already is success");
    assert_sent(&fake, &fx);
    assert_eq!(out.completed, 0);
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(
        out.unchanged,
        vec![MemberRef {
            kind: MemberKind::User,
            name: "neil".into()
        }]
    );
}

#[tokio::test]
async fn a_partial_manager_add_reports_the_failed_member_instead_of_succeeding() {
    let (fake, ipa, fx) = replay("group_add_member_manager-partial").await;
    let out = ipa
        .group_add_member_manager(
            "mm_rl_infra",
            &["neil".into(), "neil2".into()],
            &["infra_leads".into()],
        )
        .await
        .expect("the call itself succeeds");
    assert_sent(&fake, &fx);
    assert_eq!(out.completed, 2);
    assert_eq!(out.failed.len(), 1);
    assert_eq!(
        out.failed[0].to_string(),
        "user neil2: no matching entry found"
    );
}

#[tokio::test]
async fn removing_managers_treats_not_a_manager_as_done() {
    let (fake, ipa, fx) = replay("group_remove_member_manager").await;
    let out = ipa
        .group_remove_member_manager("mm_rl_infra", &["alice".into(), "bob".into()], &[])
        .await
        .expect("removed");
    assert_sent(&fake, &fx);
    assert_eq!(out.completed, 1);
    assert!(out.failed.is_empty());
    assert_eq!(out.unchanged.len(), 1);
    assert_eq!(out.unchanged[0].name, "bob");
}

#[tokio::test]
async fn member_adds_sort_every_per_member_result() {
    let (fake, ipa, fx) = replay("group_add_member-mixed").await;
    let out = ipa
        .group_add_member(
            "mm_rl_infra",
            &["alice".into(), "bob".into(), "carol".into()],
            &["infra_oncall".into()],
        )
        .await
        .expect("the call itself succeeds");
    assert_sent(&fake, &fx);
    assert_eq!(out.completed, 1);
    assert_eq!(
        out.unchanged,
        vec![MemberRef {
            kind: MemberKind::User,
            name: "bob".into()
        }]
    );
    let failed: Vec<String> = out.failed.iter().map(ToString::to_string).collect();
    assert_eq!(
        failed,
        [
            "group infra_oncall: no matching entry found",
            "user carol: missing user agreement: FPCA"
        ]
    );

    let (fake, ipa, fx) = replay("group_remove_member").await;
    let out = ipa
        .group_remove_member("mm_rl_infra", &["alice".into(), "zed".into()], &[])
        .await
        .expect("removed");
    assert_sent(&fake, &fx);
    assert_eq!(
        (out.completed, out.unchanged.len(), out.failed.len()),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn an_expired_session_logs_in_again_and_sends_the_call_once_more() {
    let fx = fixture("group_mod-fasgroup");
    let fake = FakeIpa::start(vec![
        Answer::login_ok(),
        Answer::json(&fixture("group_mod-already-fas-4202").response),
        Answer::unauthorized(),
        Answer::login_ok(),
        Answer::json(&fx.response),
    ])
    .await
    .expect("fake");
    let ipa = client(&fake);
    ipa.group_mod("mm_rl_infra", &GroupMod::fasgroup())
        .await
        .expect("first");
    let m = ipa
        .group_mod("mm_rl_infra", &GroupMod::fasgroup())
        .await
        .expect("after a new login");
    assert_eq!(m, Modified::Changed);
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/ipa/session/login_password",
            "/ipa/session/json",
            "/ipa/session/json",
            "/ipa/session/login_password",
            "/ipa/session/json"
        ]
    );
    let calls = fake.calls();
    assert_eq!(calls[1], calls[2], "the same call, sent again");
    assert_eq!(calls[1]["id"], 1);
}

#[tokio::test]
async fn a_refused_login_says_why_without_the_password_and_sends_no_call() {
    let fake = FakeIpa::start(vec![Answer::login_refused("invalid-password")])
        .await
        .expect("fake");
    let ipa = client(&fake);
    let e = ipa
        .group_show("mm_rl_infra")
        .await
        .expect_err("login refused");
    assert!(matches!(e, IpaError::Login { status: 401, .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("invalid-password") && text.contains("password_file"),
        "{text}"
    );
    assert!(!text.contains("horse"), "{text}");
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn an_answer_that_never_comes_leaves_the_outcome_unknown() {
    // A server that reads the request and hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut n = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf).await;
            n += 1;
            if n == 1 {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nSet-Cookie: ipa_session=x; path=/ipa\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = s.read(&mut buf).await;
            }
            drop(s);
        }
    });
    let ipa =
        IpaClient::new(IpaConfig::new(url, "mattersync-admin", Secret::new("pw"))).expect("client");
    let e = ipa
        .group_mod("mm_rl_infra", &GroupMod::fasgroup())
        .await
        .expect_err("no answer");
    assert!(e.outcome_unknown(), "{e}");
    assert!(e.to_string().contains("may or may not"), "{e}");
}
