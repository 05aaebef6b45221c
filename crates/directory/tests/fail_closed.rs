//! Fail closed, proved against a scripted LDAP server: every way a directory can fail to
//! give the whole answer is an error, never a partial `Directory`.

// Test code: a failed unwrap, expect or panic is a failed test (helpers included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::mock::{Fault, FaultAt, MockLdap, Script, BASE, GROUPS, USERS};
use mattersync_directory::{DirectoryError, LdapConfig, LdapDirectory, Secret};

fn config(mock: &MockLdap) -> LdapConfig {
    let mut c = LdapConfig::new(mock.uri(), BASE);
    c.bind_dn = Some("cn=mattersync,dc=example,dc=org".into());
    c.bind_password = Some(Secret::new("pw"));
    c.timeout_secs = 1;
    c.page_size = 1;
    c
}

async fn connect(mock: &MockLdap) -> LdapDirectory {
    match LdapDirectory::connect(&config(mock)).await {
        Ok(d) => d,
        Err(e) => panic!("connect to mock: {e}"),
    }
}

async fn snapshot_with(fault: FaultAt) -> (DirectoryError, Vec<String>) {
    let mock = MockLdap::start(Script {
        fault: Some(fault),
        ..Default::default()
    })
    .await;
    let mut dir = connect(&mock).await;
    let err = match dir.snapshot().await {
        Ok(d) => panic!("expected an error, got a snapshot: {d:?}"),
        Err(e) => e,
    };
    let searches = mock.searches.lock().map(|s| s.clone()).unwrap_or_default();
    (err, searches)
}

fn at(base: &str, page: u32, fault: Fault) -> FaultAt {
    FaultAt {
        base: base.to_string(),
        page,
        fault,
    }
}

#[tokio::test]
async fn mock_without_faults_gives_the_whole_snapshot_across_pages() {
    let mock = MockLdap::start(Script::default()).await;
    let mut dir = connect(&mock).await;
    let snap = match dir.snapshot().await {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let g = &snap.groups["mm_x_one"];
    assert_eq!(g.id, "id-one");
    let members: Vec<_> = g.member_users.iter().map(String::as_str).collect();
    assert_eq!(members, ["ana", "ben", "cy"]);
    assert_eq!(snap.users.len(), 3);
    assert_eq!(snap.users["ben"].email.as_deref(), Some("ben@example.org"));
    // page_size = 1: the user search took one page per user.
    let searches = mock.searches.lock().map(|s| s.clone()).unwrap_or_default();
    let user_pages = searches
        .iter()
        .filter(|s| s.starts_with(&format!("{USERS} scope=2")))
        .count();
    assert_eq!(user_pages, 3, "{searches:#?}");
}

#[tokio::test]
async fn a_limit_hit_on_a_later_page_discards_the_pages_already_read() {
    let (err, searches) =
        snapshot_with(at(USERS, 2, Fault::ResultCode(4, "Sizelimit exceeded"))).await;
    assert!(
        searches.iter().any(|s| s.ends_with("page=2")),
        "{searches:#?}"
    );
    assert!(
        matches!(err, DirectoryError::Operation { rc: 4, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("directory search under {USERS} for (uid=*) failed: size limit exceeded (code 4): Sizelimit exceeded")),
        "{msg}"
    );
    assert!(msg.ends_with("nothing was changed"), "{msg}");
    assert!(msg.contains("nsSizeLimit"), "{msg}");
}

#[tokio::test]
async fn every_non_success_result_code_is_an_error() {
    for (rc, words) in [
        (3, "time limit exceeded (code 3)"),
        (4, "size limit exceeded (code 4)"),
        (11, "administrative limit exceeded (code 11)"),
        (50, "insufficient access rights (code 50)"),
        (51, "busy (code 51)"),
        (52, "unavailable (code 52)"),
        (53, "unwilling to perform (code 53)"),
        (80, "other (code 80)"),
    ] {
        let (err, _) = snapshot_with(at(GROUPS, 1, Fault::ResultCode(rc, ""))).await;
        assert_eq!(err.result_code(), Some(rc), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "directory search under {GROUPS} for (&(objectClass=fasGroup)(cn=mm_*)) failed: "
            )),
            "{msg}"
        );
        assert!(msg.contains(words), "{msg}");
    }
}

#[tokio::test]
async fn a_referral_result_is_an_error() {
    let (err, _) = snapshot_with(at(GROUPS, 1, Fault::ResultCode(10, "go away"))).await;
    assert!(matches!(err, DirectoryError::Referral { .. }), "{err:?}");
    assert!(
        err.to_string().contains("ldap://elsewhere.example.org/"),
        "{err}"
    );
}

#[tokio::test]
async fn a_continuation_reference_is_an_error() {
    let (err, _) = snapshot_with(at(
        GROUPS,
        1,
        Fault::Reference("ldap://other.example.org/cn=groups,dc=example,dc=org"),
    ))
    .await;
    assert!(matches!(err, DirectoryError::Referral { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("ldap://other.example.org/"), "{msg}");
    assert!(msg.contains("does not follow referrals"), "{msg}");
}

#[tokio::test]
async fn a_connection_dropped_mid_search_is_an_error_and_the_handle_stays_failed() {
    let mock = MockLdap::start(Script {
        fault: Some(at(USERS, 2, Fault::Drop)),
        ..Default::default()
    })
    .await;
    let mut dir = connect(&mock).await;
    let err = dir.snapshot().await.err();
    assert!(
        matches!(err, Some(DirectoryError::ConnectionLost { .. })),
        "{err:?}"
    );
    // The next call does not pretend the connection is fine.
    let again = dir.user_exists("ana").await.err();
    assert!(
        matches!(again, Some(DirectoryError::ConnectionLost { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_server_that_stops_answering_times_out() {
    let started = Instant::now();
    let (err, _) = snapshot_with(at(GROUPS, 1, Fault::Hang)).await;
    assert!(
        matches!(err, DirectoryError::Timeout { secs: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out after 1 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_malformed_entry_is_an_error_not_a_panic() {
    let (err, _) = snapshot_with(at(GROUPS, 1, Fault::MalformedEntry)).await;
    assert!(matches!(err, DirectoryError::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn a_member_dn_that_does_not_parse_is_an_error_not_a_missing_member() {
    let (err, _) = snapshot_with(at(GROUPS, 1, Fault::BadMemberDn)).await;
    assert!(matches!(err, DirectoryError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("member"), "{err}");
}

#[tokio::test]
async fn a_server_that_pages_forever_is_stopped() {
    let (err, searches) = snapshot_with(at(GROUPS, 1, Fault::EndlessPaging)).await;
    assert!(matches!(err, DirectoryError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("empty pages"), "{err}");
    assert!(searches.len() < 200, "{}", searches.len());
}

#[tokio::test]
async fn a_refused_bind_is_an_error_with_its_code() {
    for rc in [49, 53] {
        let mock = MockLdap::start(Script {
            bind_rc: rc,
            ..Default::default()
        })
        .await;
        let err = LdapDirectory::connect(&config(&mock)).await.err();
        match err {
            Some(e @ DirectoryError::Bind { .. }) => {
                assert_eq!(e.result_code(), Some(rc));
                assert!(e.to_string().contains("mock says no"), "{e}");
            }
            other => panic!("rc {rc}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_bind_that_never_returns_times_out() {
    let mock = MockLdap::start(Script {
        bind_hangs: true,
        ..Default::default()
    })
    .await;
    let err = LdapDirectory::connect(&config(&mock)).await.err();
    assert!(
        matches!(err, Some(DirectoryError::Timeout { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut c = LdapConfig::new(format!("ldap://127.0.0.1:{port}"), BASE);
    c.timeout_secs = 2;
    let err = LdapDirectory::connect(&c).await.err();
    match err {
        Some(e @ DirectoryError::Connect { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
            assert!(msg.contains("is it running"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_empty_bind_password_is_refused_before_it_becomes_an_anonymous_bind() {
    let mock = MockLdap::start(Script::default()).await;
    let mut c = config(&mock);
    c.bind_password = Some(Secret::new(""));
    let err = LdapDirectory::connect(&c).await.err();
    assert!(
        matches!(&err, Some(DirectoryError::Config(m)) if m.contains("empty")),
        "{err:?}"
    );
}

/// The engine runs reads on a multi-threaded runtime: the futures must be `Send`.
#[allow(dead_code)]
fn futures_are_send(dir: &mut LdapDirectory, cfg: &LdapConfig) {
    fn send<T: Send>(_: T) {}
    send(LdapDirectory::connect(cfg));
    send(dir.snapshot());
}
