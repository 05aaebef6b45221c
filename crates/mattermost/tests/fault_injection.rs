//! The adapter against an in-process fake server that misbehaves on purpose: rate limits,
//! server errors, resets, slowness, malformed JSON, paging, partial batch failures.

// Test code: a failed unwrap, expect or panic is a failed test (helpers included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mattersync_core::{Action, Mode, PlanMember, UserRef};
use mattersync_mattermost::{Client, ClientConfig, MmError, Outcome};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{FakeServer, Reply, Request};

const TOKEN: &str = "fake-token-0123456789";

fn config(url: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(url, TOKEN);
    cfg.backoff_base = Duration::from_millis(10);
    cfg.backoff_max = Duration::from_millis(50);
    cfg.timeout = Duration::from_secs(5);
    cfg
}

fn client(server: &FakeServer) -> Client {
    Client::new(config(&server.url)).expect("client")
}

fn ping_ok() -> Reply {
    Reply::json(200, r#"{"status":"OK"}"#).with_header("X-Version-Id", "11.3.0.1.abc.false")
}

/// A 26-character id like Mattermost's.
fn id(prefix: char, n: usize) -> String {
    format!("{prefix}{n:025}")
}

fn member(user_id: &str, admin: bool) -> serde_json::Value {
    json!({"channel_id": "c", "user_id": user_id, "roles": "channel_user",
           "scheme_admin": admin, "scheme_user": true, "scheme_guest": false,
           "notify_props": {}, "msg_count": 0})
}

fn user(id: &str, username: &str) -> serde_json::Value {
    json!({"id": id, "username": username, "email": format!("{username}@example.org"),
           "auth_service": "", "auth_data": null, "delete_at": 0, "roles": "system_user"})
}

#[tokio::test]
async fn rate_limited_request_waits_for_retry_after_then_succeeds() {
    let server = FakeServer::start(|_, n| match n {
        0 => Reply::json(429, "limit exceeded")
            .with_header("Retry-After", "1")
            .with_header("X-RateLimit-Reset", "1"),
        _ => ping_ok(),
    })
    .await;
    let c = client(&server);
    let t = Instant::now();
    let v = c.ping().await.expect("ping after 429");
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(v.raw, "11.3.0.1.abc.false");
    let s = c.stats();
    assert_eq!((s.calls, s.get, s.retries, s.rate_limited), (2, 2, 1, 1));
}

#[tokio::test]
async fn rate_limited_request_honours_x_ratelimit_reset_without_retry_after() {
    let server = FakeServer::start(|_, n| match n {
        0 => Reply::json(429, "").with_header("X-RateLimit-Reset", "1"),
        _ => ping_ok(),
    })
    .await;
    let c = client(&server);
    let t = Instant::now();
    c.ping().await.expect("ping");
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert_eq!(c.stats().rate_limited, 1);
}

#[tokio::test]
async fn burst_of_server_errors_is_retried_until_success() {
    let server = FakeServer::start(|_, n| match n {
        0 => Reply::json(502, "<html>bad gateway</html>"),
        1 => Reply::error(500, "app.x.app_error", "db down"),
        2 => Reply::json(503, ""),
        _ => ping_ok(),
    })
    .await;
    let c = client(&server);
    c.ping().await.expect("ping after 5xx burst");
    let s = c.stats();
    assert_eq!((s.calls, s.retries, s.server_errors), (4, 3, 3));
}

#[tokio::test]
async fn server_errors_forever_fail_after_max_retries_with_the_servers_message() {
    let server =
        FakeServer::start(|_, _| Reply::error(500, "app.user.get.app_error", "db down")).await;
    let mut cfg = config(&server.url);
    cfg.max_retries = 3;
    let c = Client::new(cfg).expect("client");
    let err = c.me().await.expect_err("must fail");
    match &err {
        MmError::Api {
            method,
            path,
            error,
            attempts,
        } => {
            assert_eq!(method, "GET");
            assert_eq!(path, "/api/v4/users/me");
            assert_eq!(error.status, 500);
            assert_eq!(error.id, "app.user.get.app_error");
            assert_eq!(error.message, "db down");
            assert_eq!(*attempts, 4);
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("GET /api/v4/users/me"), "{text}");
    assert!(text.contains("after 4 attempts"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!format!("{err:?}").contains(TOKEN));
    assert_eq!(server.requests().len(), 4);
    assert_eq!(c.stats().retries, 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = FakeServer::start(|_, _| {
        Reply::error(403, "api.context.permissions.app_error", "no permission")
    })
    .await;
    let c = client(&server);
    let err = c.me().await.expect_err("403");
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.error_id(), Some("api.context.permissions.app_error"));
    assert_eq!(server.requests().len(), 1);
    assert_eq!(c.stats().retries, 0);
}

#[tokio::test]
async fn connection_reset_is_retried() {
    let server = FakeServer::start(|_, n| match n {
        0 | 1 => Reply::Reset,
        _ => ping_ok(),
    })
    .await;
    let c = client(&server);
    c.ping().await.expect("ping after resets");
    let s = c.stats();
    assert_eq!((s.calls, s.retries, s.transport_errors), (3, 2, 2));
}

#[tokio::test]
async fn connection_reset_forever_is_a_transport_error() {
    let server = FakeServer::start(|_, _| Reply::Reset).await;
    let mut cfg = config(&server.url);
    cfg.max_retries = 2;
    let c = Client::new(cfg).expect("client");
    let err = c.ping().await.expect_err("reset");
    assert!(
        matches!(err, MmError::Transport { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn response_slower_than_the_timeout_is_retried_then_succeeds() {
    let server = FakeServer::start(|_, n| match n {
        0 => Reply::Delay(Duration::from_secs(3), Box::new(ping_ok())),
        _ => ping_ok(),
    })
    .await;
    let mut cfg = config(&server.url);
    cfg.timeout = Duration::from_millis(300);
    let c = Client::new(cfg).expect("client");
    let t = Instant::now();
    c.ping().await.expect("ping");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(c.stats().retries, 1);
}

#[tokio::test]
async fn response_always_slower_than_the_timeout_is_a_timeout_error() {
    let server =
        FakeServer::start(|_, _| Reply::Delay(Duration::from_secs(3), Box::new(ping_ok()))).await;
    let mut cfg = config(&server.url);
    cfg.timeout = Duration::from_millis(200);
    cfg.max_retries = 1;
    let c = Client::new(cfg).expect("client");
    let err = c.ping().await.expect_err("timeout");
    match &err {
        MmError::Transport { kind, attempts, .. } => {
            assert_eq!(*kind, "timed out");
            assert_eq!(*attempts, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn malformed_json_is_a_clear_error_not_a_panic() {
    let server = FakeServer::start(|req, _| match req.path() {
        "/api/v4/users/me" => Reply::json(200, "{\"id\": \"abc\", \"username\": "),
        "/api/v4/teams/name/t" => Reply::json(200, r#"{"id": 5}"#),
        _ => Reply::json(200, "<html>proxy login</html>"),
    })
    .await;
    let c = client(&server);
    let err = c.me().await.expect_err("truncated JSON");
    assert!(
        matches!(err, MmError::Decode { status: 200, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("GET /api/v4/users/me"), "{text}");
    assert!(text.contains("unexpected response body"), "{text}");

    let err = c.team_by_name("t").await.expect_err("wrong shape");
    assert!(matches!(err, MmError::Decode { .. }), "{err:?}");

    let err = c.channel_members("c").await.expect_err("html");
    assert!(err.to_string().contains("proxy login"), "{err}");
    // Decode errors are not retried: the server answered.
    assert_eq!(c.stats().retries, 0);
}

#[tokio::test]
async fn ping_without_version_header_is_an_error() {
    let server = FakeServer::start(|_, _| Reply::ok()).await;
    let err = client(&server).ping().await.expect_err("no header");
    assert!(err.to_string().contains("X-Version-Id"), "{err}");
}

#[tokio::test]
async fn every_request_carries_the_bearer_token() {
    let server = FakeServer::start(|_, _| ping_ok()).await;
    client(&server).ping().await.expect("ping");
    let r = &server.requests()[0];
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(!r.target.contains(TOKEN));
}

fn paged_members(req: &Request, total: usize) -> Reply {
    let page: usize = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let per: usize = req
        .query("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(60);
    let rows: Vec<_> = (page * per..((page + 1) * per).min(total))
        .map(|i| member(&id('u', i), i % 100 == 0))
        .collect();
    Reply::value(200, json!(rows))
}

#[tokio::test]
async fn channel_members_follow_pagination_over_several_pages() {
    let server = FakeServer::start(|req, _| paged_members(req, 450)).await;
    let c = client(&server);
    let members = c.channel_members("chan1").await.expect("members");
    assert_eq!(members.len(), 450);
    assert!(members[&id('u', 0)].scheme_admin);
    assert!(!members[&id('u', 1)].scheme_admin);
    let reqs = server.requests();
    let pages: Vec<_> = reqs
        .iter()
        .map(|r| (r.path().to_string(), r.query("page"), r.query("per_page")))
        .collect();
    assert_eq!(
        pages,
        (0..3)
            .map(|p| (
                "/api/v4/channels/chan1/members".to_string(),
                Some(p.to_string()),
                Some("200".to_string())
            ))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn exact_multiple_of_the_page_size_reads_one_empty_page() {
    let server = FakeServer::start(|req, _| paged_members(req, 400)).await;
    let c = client(&server);
    assert_eq!(c.team_members("t1").await.expect("members").len(), 400);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn members_seen_twice_while_paging_are_read_again_then_refused() {
    // Every page starts at 0 again: the listing is inconsistent.
    let server = FakeServer::start(|_, _| {
        let rows: Vec<_> = (0..200).map(|i| member(&id('u', i), false)).collect();
        Reply::value(200, json!(rows))
    })
    .await;
    let c = client(&server);
    let err = c.channel_members("c").await.expect_err("inconsistent");
    assert!(matches!(err, MmError::Inconsistent { .. }), "{err:?}");
    assert!(err.to_string().contains("listed twice"), "{err}");
    // Two readings, each stopped at the first repeated page.
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn users_by_usernames_are_batched_by_1000_and_mapped() {
    let server = FakeServer::start(|req, _| {
        let names: Vec<String> = serde_json::from_slice(&req.body).expect("array");
        let users: Vec<_> = names
            .iter()
            .filter_map(|n| {
                let i: usize = n.strip_prefix("user")?.parse().ok()?;
                let mut u = user(&id('u', i), n);
                if i == 1 {
                    u["is_bot"] = json!(true);
                }
                if i == 2 {
                    u["delete_at"] = json!(1700000000000i64);
                }
                if i == 3 {
                    u["auth_service"] = json!("openid");
                    u["auth_data"] = json!("sub-3");
                }
                Some(u)
            })
            .collect();
        Reply::value(200, json!(users))
    })
    .await;
    let c = client(&server);
    let names: Vec<String> = (0..2450).map(|i| format!("user{i}")).collect();
    let users = c.users_by_usernames(&names).await.expect("users");
    assert_eq!(users.len(), 2450);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(
            (r.method.as_str(), r.path()),
            ("POST", "/api/v4/users/usernames")
        );
        assert!(r.json().as_array().expect("array").len() <= 1000);
    }
    let by = |n: &str| users.iter().find(|u| u.username == n).expect(n).clone();
    assert!(by("user1").is_bot);
    assert!(by("user2").inactive);
    assert_eq!(
        (
            by("user3").auth_service.as_str(),
            by("user3").auth_data.as_str()
        ),
        ("openid", "sub-3")
    );
    assert_eq!(by("user4").email, "user4@example.org");
    assert!(!by("user4").inactive && !by("user4").is_bot);
    // Names go lower-case, duplicates once.
    let none = c
        .users_by_usernames(&["Alice".into(), "alice".into()])
        .await
        .expect("lookup");
    assert!(none.is_empty());
    assert_eq!(server.requests()[3].json(), json!(["alice"]));
    // No call for nothing.
    assert!(c.users_by_ids(&[]).await.expect("empty").is_empty());
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn all_users_pages_through_get_users() {
    let server = FakeServer::start(|req, _| {
        let page: usize = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let rows: Vec<_> = (page * 200..((page + 1) * 200).min(250))
            .map(|i| user(&id('u', i), &format!("user{i:03}")))
            .collect();
        Reply::value(200, json!(rows))
    })
    .await;
    let users = client(&server).all_users().await.expect("users");
    assert_eq!(users.len(), 250);
    assert_eq!(users[0].username, "user000");
}

#[tokio::test]
async fn team_batch_add_reports_each_members_error() {
    let server = FakeServer::start(|req, _| {
        let body = req.json();
        let rows: Vec<_> = body
            .as_array()
            .expect("array")
            .iter()
            .map(|m| {
                let uid = m["user_id"].as_str().expect("user_id").to_string();
                assert_eq!(m["team_id"], "team1");
                if uid.ends_with('2') {
                    json!({"user_id": uid, "member": null, "error": {
                        "id": "app.team.join_user_to_team.max_accounts.app_error",
                        "message": "This team has reached the maximum number of allowed accounts.",
                        "status_code": 400}})
                } else {
                    json!({"user_id": uid, "member": {"team_id": "team1", "user_id": uid,
                           "roles": "team_user", "delete_at": 0, "scheme_admin": false},
                           "error": null})
                }
            })
            .collect();
        Reply::value(201, json!(rows))
    })
    .await;
    let c = client(&server);
    let ids: Vec<String> = (0..300).map(|i| id('u', i)).collect();
    let out = c.add_team_members("team1", &ids).await.expect("batch");
    assert_eq!(out.len(), 300);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "256 + 44");
    assert_eq!(
        reqs[0].target,
        "/api/v4/teams/team1/members/batch?graceful=true"
    );
    assert_eq!(reqs[0].json().as_array().map(Vec::len), Some(256));
    let failed: Vec<_> = out.iter().filter(|o| !o.is_success()).collect();
    assert_eq!(failed.len(), 30);
    match &failed[0].outcome {
        Outcome::Failed {
            status, error_id, ..
        } => {
            assert_eq!(*status, Some(400));
            assert_eq!(
                error_id,
                "app.team.join_user_to_team.max_accounts.app_error"
            );
        }
        o => panic!("{o:?}"),
    }
    assert!(failed[0]
        .error()
        .expect("message")
        .contains("maximum number"));
    assert_eq!(out[0].outcome, Outcome::Added);
}

/// A server whose batch channel add answers only the users `added` keeps (by position and
/// id), and whose one-user add answers `status` with Mattermost's error `id` and `message`.
async fn partial_batch(
    added: fn(usize, &str) -> bool,
    status: u16,
    id: &'static str,
    message: &'static str,
) -> FakeServer {
    FakeServer::start(move |req, _| {
        let body = req.json();
        if let Some(ids) = body["user_ids"].as_array() {
            let rows: Vec<_> = ids
                .iter()
                .filter_map(|v| v.as_str())
                .enumerate()
                .filter(|(i, u)| added(*i, u))
                .map(|(_, u)| member(u, false))
                .collect();
            Reply::value(201, json!(rows))
        } else {
            Reply::error(status, id, message)
        }
    })
    .await
}

#[tokio::test]
async fn channel_batch_add_asks_again_for_users_the_server_left_out() {
    // The server silently skips the user it could not add.
    let server = partial_batch(
        |_, u| !u.ends_with('7'),
        403,
        "api.channel.add_members.user_denied",
        "user is not a member of the team",
    )
    .await;
    let c = client(&server);
    let ids: Vec<String> = (0..10).map(|i| id('u', i)).collect();
    let out = c.add_channel_members("ch1", &ids).await.expect("add");
    assert_eq!(out.len(), 10);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].json()["user_id"], id('u', 7));
    let bad = out.iter().find(|o| o.user_id == id('u', 7)).expect("u7");
    assert!(!bad.is_success());
    assert!(bad
        .error()
        .expect("msg")
        .contains("not a member of the team"));
    assert_eq!(out.iter().filter(|o| o.is_success()).count(), 9);
}

/// Found by stopping the PostgreSQL under a real Mattermost mid-apply (real_restarts.rs):
/// the batch answered the members it added before the database went away, and each user
/// left out was then asked for alone, every one failing 500 only after the whole retry
/// schedule (an 80-user batch took minutes). Once the server itself fails, the rest fail at
/// once with its error.
#[tokio::test]
async fn a_server_failing_after_a_partial_batch_fails_the_rest_without_a_call_each() {
    // Three were added, then the database went down.
    let server = partial_batch(
        |i, _| i < 3,
        500,
        "app.channel.get.find.app_error",
        "We encountered an error finding the channel.",
    )
    .await;
    let c = client(&server);
    let ids: Vec<String> = (0..10).map(|i| id('u', i)).collect();
    let out = c.add_channel_members("ch1", &ids).await.expect("add");
    assert_eq!(out.len(), 10);
    let added: Vec<&str> = out
        .iter()
        .filter(|o| o.is_success())
        .map(|o| o.user_id.as_str())
        .collect();
    assert_eq!(added, [id('u', 0), id('u', 1), id('u', 2)]);
    for o in out.iter().filter(|o| !o.is_success()) {
        assert!(o.error().expect("message").contains("HTTP 500"), "{o:?}");
    }
    let singles = server
        .requests()
        .iter()
        .filter(|r| r.json()["user_id"].is_string())
        .count();
    let retries = config(&server.url).max_retries as usize;
    assert_eq!(
        singles,
        retries + 1,
        "one user asked alone (with its retries), not all seven"
    );
}

#[tokio::test]
async fn channel_add_falls_back_to_one_call_per_user_on_a_server_without_user_ids() {
    let server = FakeServer::start(|req, _| {
        let body = req.json();
        match body["user_id"].as_str() {
            Some(u) => Reply::value(201, member(u, false)),
            None => Reply::error(
                400,
                "api.context.invalid_body_param.app_error",
                "Invalid or missing user_id in request body.",
            ),
        }
    })
    .await;
    let c = client(&server);
    let ids: Vec<String> = (0..3).map(|i| id('u', i)).collect();
    let out = c.add_channel_members("ch1", &ids).await.expect("add");
    assert!(out.iter().all(|o| o.outcome == Outcome::Added), "{out:?}");
    assert_eq!(
        server.requests().len(),
        4,
        "one batch try, then 3 single adds"
    );
    // Remembered: no batch attempt the second time.
    let out = c.add_channel_members("ch1", &ids).await.expect("add");
    assert_eq!(out.len(), 3);
    assert_eq!(server.requests().len(), 7);
}

#[tokio::test]
async fn channel_add_failing_as_a_whole_is_an_error() {
    let server = FakeServer::start(|_, _| {
        Reply::error(
            404,
            "app.channel.get.existing.app_error",
            "channel not found",
        )
    })
    .await;
    let c = client(&server);
    let ids: Vec<String> = (0..3).map(|i| id('u', i)).collect();
    let err = c.add_channel_members("gone", &ids).await.expect_err("404");
    assert_eq!(err.status(), Some(404));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn removing_an_absent_member_is_success_but_a_missing_channel_is_not() {
    let server = FakeServer::start(|req, _| match req.path() {
        "/api/v4/channels/ch1/members/uhere" => Reply::ok(),
        "/api/v4/channels/ch1/members/ugone" => Reply::error(
            404,
            "app.channel.get_member.missing.app_error",
            "No channel member found for that user ID and channel ID.",
        ),
        "/api/v4/teams/t1/members/ugone" => Reply::error(
            400,
            "api.team.remove_user_from_team.missing.app_error",
            "The user does not appear to be part of this team.",
        ),
        _ => Reply::error(
            404,
            "app.channel.get.existing.app_error",
            "Unable to find the existing channel.",
        ),
    })
    .await;
    let c = client(&server);
    let o = c
        .remove_channel_member("ch1", "uhere")
        .await
        .expect("remove");
    assert_eq!(o.outcome, Outcome::Removed);
    let o = c
        .remove_channel_member("ch1", "ugone")
        .await
        .expect("absent");
    assert_eq!(o.outcome, Outcome::AlreadyAbsent);
    assert!(o.is_success());
    let o = c.remove_team_member("t1", "ugone").await.expect("absent");
    assert_eq!(o.outcome, Outcome::AlreadyAbsent);
    let err = c
        .remove_channel_member("nochan", "u")
        .await
        .expect_err("no channel");
    assert_eq!(err.error_id(), Some("app.channel.get.existing.app_error"));
    assert_eq!(server.requests()[0].method, "DELETE");
}

#[tokio::test]
async fn apply_dispatches_each_action_and_ledger_only_actions_make_no_call() {
    let server = FakeServer::start(|req, _| match (req.method.as_str(), req.path()) {
        ("PUT", "/api/v4/channels/ch1/members/u1/schemeRoles") => {
            let b = req.json();
            assert_eq!(b["scheme_user"], true);
            Reply::ok()
        }
        ("DELETE", _) => Reply::ok(),
        ("POST", "/api/v4/channels/ch1/members") => {
            let ids = req.json()["user_ids"].clone();
            let rows: Vec<_> = ids
                .as_array()
                .expect("ids")
                .iter()
                .map(|u| member(u.as_str().unwrap_or_default(), false))
                .collect();
            Reply::value(201, json!(rows))
        }
        _ => Reply::error(404, "x", "unexpected"),
    })
    .await;
    let c = client(&server);
    let u1 = UserRef {
        id: "u1".into(),
        username: "alice".into(),
    };
    let record = Action::RecordDeparted {
        scope_id: "ch1".into(),
        scope: "t/c".into(),
        users: vec![u1.clone()],
    };
    assert!(c.apply(&record).await.expect("record").is_empty());
    assert_eq!(server.requests().len(), 0);

    let set = Action::SetChannelAdmin {
        channel_id: "ch1".into(),
        channel: "t/c".into(),
        user: u1.clone(),
        admin: true,
        groups: vec![],
    };
    let out = c.apply(&set).await.expect("set");
    assert_eq!(out[0].outcome, Outcome::RoleSet { admin: true });
    assert_eq!(server.requests()[0].json()["scheme_admin"], true);

    let rm = Action::RemoveChannelMember {
        channel_id: "ch1".into(),
        channel: "t/c".into(),
        user: u1.clone(),
        mode: Mode::Sync,
    };
    assert_eq!(c.apply(&rm).await.expect("rm")[0].outcome, Outcome::Removed);

    let add = Action::AddChannelMembers {
        channel_id: "ch1".into(),
        channel: "t/c".into(),
        users: vec![
            PlanMember {
                id: "u2".into(),
                username: "bob".into(),
                groups: vec!["g".into()],
            },
            PlanMember {
                id: "u3".into(),
                username: "carol".into(),
                groups: vec!["g".into()],
            },
        ],
    };
    let out = c.apply(&add).await.expect("add");
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|o| o.outcome == Outcome::Added));
    let s = c.stats();
    assert_eq!((s.calls, s.put, s.delete, s.post), (3, 1, 1, 1));
}

#[tokio::test]
async fn creating_is_not_retried_after_a_server_error() {
    let server =
        FakeServer::start(|_, _| Reply::error(500, "app.user.save.app_error", "oops")).await;
    let c = client(&server);
    let err = c
        .create_user("newbie", "newbie@example.org", "Secret-Passw0rd!")
        .await
        .expect_err("500");
    assert_eq!(err.status(), Some(500));
    assert_eq!(server.requests().len(), 1);
    assert!(!err.to_string().contains("Secret-Passw0rd"));
}

#[tokio::test]
async fn read_state_assembles_teams_channels_and_users_and_skips_missing_ones() {
    let server = FakeServer::start(|req, _| {
        let p = req.path();
        match (req.method.as_str(), p) {
            ("GET", "/api/v4/teams/name/rl") => Reply::value(
                200,
                json!({"id": "t1", "name": "rl", "display_name": "RL", "delete_at": 0}),
            ),
            ("GET", "/api/v4/teams/name/old") => Reply::value(
                200,
                json!({"id": "t2", "name": "old", "display_name": "Old", "delete_at": 5}),
            ),
            ("GET", "/api/v4/teams/name/rl/channels/name/infra") => Reply::value(
                200,
                json!({"id": "c1", "team_id": "t1", "name": "infra", "display_name": "Infra",
                       "type": "P", "delete_at": 0}),
            ),
            ("GET", "/api/v4/teams/name/rl/channels/name/gone") => Reply::value(
                200,
                json!({"id": "c2", "team_id": "t1", "name": "gone", "display_name": "Gone",
                       "type": "O", "delete_at": 17}),
            ),
            ("GET", "/api/v4/teams/t1/members") => Reply::value(
                200,
                json!([{"team_id": "t1", "user_id": "ua", "scheme_admin": true, "delete_at": 0},
                       {"team_id": "t1", "user_id": "ub", "scheme_admin": false, "delete_at": 0}]),
            ),
            ("GET", "/api/v4/channels/c1/members") => {
                Reply::value(200, json!([member("ub", true)]))
            }
            ("GET", "/api/v4/channels/c2/members") => Reply::value(200, json!([])),
            ("POST", "/api/v4/users/usernames") => Reply::value(200, json!([user("uz", "zed")])),
            ("POST", "/api/v4/users/ids") => {
                let ids: Vec<String> = serde_json::from_slice(&req.body).expect("ids");
                assert_eq!(ids, ["ua", "ub"]);
                Reply::value(200, json!([user("ua", "alice"), user("ub", "bob")]))
            }
            _ => Reply::error(404, "app.team.get_by_name.missing.app_error", "not found"),
        }
    })
    .await;
    let c = client(&server);
    let state = c
        .read_state(
            &["rl".into(), "nope".into(), "old".into()],
            &[
                ("rl".into(), "infra".into()),
                ("rl".into(), "gone".into()),
                ("rl".into(), "missing".into()),
            ],
            &["zed".into(), "ghost".into()],
        )
        .await
        .expect("state");
    assert_eq!(state.teams.keys().collect::<Vec<_>>(), ["rl"]);
    assert!(state.teams["rl"].members["ua"].scheme_admin);
    assert_eq!(
        state.channels.keys().collect::<Vec<_>>(),
        ["rl/gone", "rl/infra"]
    );
    let infra = &state.channels["rl/infra"];
    assert!(infra.private && !infra.archived);
    assert_eq!((infra.id.as_str(), infra.team.as_str()), ("c1", "rl"));
    assert!(infra.members["ub"].scheme_admin);
    assert!(state.channels["rl/gone"].archived);
    assert_eq!(state.users.keys().collect::<Vec<_>>(), ["ua", "ub", "uz"]);
}

#[tokio::test]
async fn read_state_finds_many_channels_by_listing_them_and_looks_up_only_what_the_listing_lacks() {
    let chan = |id: &str, team: &str, name: &str, deleted: i64| {
        json!({"id": id, "team_id": team, "name": name, "display_name": name, "type": "O",
               "delete_at": deleted})
    };
    let server = FakeServer::start(move |req, _| {
        let page = req.query("page").unwrap_or_default();
        match (req.method.as_str(), req.path()) {
            ("GET", "/api/v4/teams/name/rl") => Reply::value(
                200,
                json!({"id": "t1", "name": "rl", "display_name": "RL", "delete_at": 0}),
            ),
            ("GET", "/api/v4/channels") if page == "0" => {
                assert_eq!(req.query("include_deleted").as_deref(), Some("true"));
                assert_eq!(req.query("include_total_count").as_deref(), Some("true"));
                // 201 channels: two pages; the wanted ones are on both
                let mut cs: Vec<serde_json::Value> = (0..198)
                    .map(|i| chan(&format!("x{i}"), "t9", &format!("other-{i}"), 0))
                    .collect();
                cs.push(chan("c1", "t1", "a", 0));
                cs.push(chan("c2", "t1", "b", 9));
                Reply::value(200, json!({"channels": cs, "total_count": 201}))
            }
            ("GET", "/api/v4/channels") if page == "1" => {
                Reply::value(200, json!([chan("c3", "t1", "c", 0)]))
            }
            ("GET", "/api/v4/teams/name/rl/channels/name/new") => {
                Reply::value(200, chan("c4", "t1", "new", 0))
            }
            ("GET", p) if p.ends_with("/members") => Reply::value(200, json!([])),
            _ => Reply::error(
                404,
                "app.channel.get_by_name.missing.app_error",
                "not found",
            ),
        }
    })
    .await;
    let c = client(&server);
    let wanted: Vec<(String, String)> = ["a", "b", "c", "new", "d", "e"]
        .iter()
        .map(|n| ("rl".to_string(), n.to_string()))
        .collect();
    let state = c.read_state(&[], &wanted, &[]).await.expect("state");
    assert_eq!(
        state.channels.keys().collect::<Vec<_>>(),
        ["rl/a", "rl/b", "rl/c", "rl/new"]
    );
    assert!(state.channels["rl/b"].archived);
    let by_name: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path().contains("/channels/name/"))
        .map(|r| r.path().to_string())
        .collect();
    // only the channels the listing did not have are looked up one by one
    assert_eq!(by_name.len(), 3, "{by_name:?}");
    let listed = server
        .requests()
        .iter()
        .filter(|r| r.path() == "/api/v4/channels")
        .count();
    assert_eq!(listed, 2);
}

#[tokio::test]
async fn read_state_looks_channels_up_by_name_when_the_token_may_not_list_them_all() {
    let server = FakeServer::start(|req, _| match (req.method.as_str(), req.path()) {
        ("GET", "/api/v4/teams/name/rl") => Reply::value(
            200,
            json!({"id": "t1", "name": "rl", "display_name": "RL", "delete_at": 0}),
        ),
        ("GET", "/api/v4/channels") => Reply::error(
            403,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        ),
        ("GET", p) if p.starts_with("/api/v4/teams/name/rl/channels/name/") => {
            let name = p.rsplit('/').next().unwrap_or_default();
            Reply::value(
                200,
                json!({"id": format!("c-{name}"), "team_id": "t1", "name": name,
                       "display_name": name, "type": "P", "delete_at": 0}),
            )
        }
        ("GET", p) if p.ends_with("/members") => Reply::value(200, json!([])),
        _ => Reply::error(404, "x", "not found"),
    })
    .await;
    let c = client(&server);
    let wanted = vec![
        ("rl".to_string(), "a".to_string()),
        ("rl".to_string(), "b".to_string()),
    ];
    let state = c.read_state(&[], &wanted, &[]).await.expect("state");
    assert_eq!(state.channels.keys().collect::<Vec<_>>(), ["rl/a", "rl/b"]);
    assert!(state.channels["rl/a"].private);
}

#[tokio::test]
async fn channel_batch_where_every_user_fails_is_asked_per_user_unless_the_channel_is_the_problem()
{
    let server = FakeServer::start(|req, _| {
        let body = req.json();
        if req.path().contains("/denied/") {
            return Reply::error(
                403,
                "api.context.permissions.app_error",
                "You do not have the appropriate permissions.",
            );
        }
        match body["user_id"].as_str() {
            Some(u) if u.ends_with('1') => Reply::value(201, member(u, false)),
            _ => Reply::error(
                403,
                "app.channel.add_member.deleted_user.app_error",
                "Can't add a deactivated user to a channel.",
            ),
        }
    })
    .await;
    let c = client(&server);
    let ids: Vec<String> = (0..3).map(|i| id('u', i)).collect();
    let out = c.add_channel_members("ch1", &ids).await.expect("per user");
    assert_eq!(server.requests().len(), 4, "batch, then one call per user");
    let ok: Vec<_> = out
        .iter()
        .filter(|o| o.is_success())
        .map(|o| &o.user_id)
        .collect();
    assert_eq!(ok, [&id('u', 1)]);
    assert!(out[0]
        .error()
        .expect("why")
        .contains("app.channel.add_member.deleted_user.app_error"));

    let err = c
        .add_channel_members("denied", &ids)
        .await
        .expect_err("permission");
    assert_eq!(err.status(), Some(403));
    assert_eq!(
        server.requests().len(),
        5,
        "no per-user calls for a channel-level error"
    );
}

/// After a client died mid-batch, the server may finish the orphaned add after a rerun read
/// the state: the rerun's add of those users answers "already a member". That is the add's
/// purpose met, not a failure (before: HTTP 400 and exit 5 on the immediate rerun).
#[tokio::test]
async fn an_add_answered_already_a_member_is_success() {
    let server = FakeServer::start(|req, _| {
        let body = req.json();
        if req.path().contains("/teams/") {
            let rows: Vec<_> = body
                .as_array()
                .expect("array")
                .iter()
                .map(|m| {
                    let uid = m["user_id"].as_str().expect("user_id").to_string();
                    json!({"user_id": uid, "member": null, "error": {
                        "id": "app.team.join_user_to_team.save_member.conflict.app_error",
                        "message": "Failed to save the team member.",
                        "status_code": 400}})
                })
                .collect();
            return Reply::value(201, json!(rows));
        }
        match body["user_id"].as_str() {
            Some(u) if u.ends_with('1') => Reply::value(201, member(u, false)),
            Some(_) => Reply::error(
                400,
                "app.channel.save_member.exists.app_error",
                "A channel member with that ID already exists",
            ),
            None => Reply::error(
                400,
                "app.channel.save_member.exists.app_error",
                "A channel member with that ID already exists",
            ),
        }
    })
    .await;
    let c = client(&server);
    let ids: Vec<String> = (0..3).map(|i| id('u', i)).collect();
    let out = c.add_channel_members("ch1", &ids).await.expect("channel");
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| o.outcome == Outcome::Added), "{out:?}");
    let one = c
        .add_channel_members("ch1", &[id('u', 2)])
        .await
        .expect("one");
    assert_eq!(one[0].outcome, Outcome::Added);
    let team = c.add_team_members("team1", &ids).await.expect("team");
    assert_eq!(team.len(), 3);
    assert!(team.iter().all(|o| o.outcome == Outcome::Added), "{team:?}");
}
