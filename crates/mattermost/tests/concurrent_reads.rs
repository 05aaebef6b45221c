//! Reads issued side by side (`read_concurrency`) against an in-process fake server: never
//! more in flight than configured, the same state whatever the concurrency and the order
//! the answers come in, one 429 holding back every request, and any error failing the read.

// Test code: a failed unwrap, expect or panic is a failed test (helpers included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use mattersync_mattermost::{Client, ClientConfig, MmError};
use serde_json::json;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::{FakeServer, Reply, Request};

fn client(server: &FakeServer, in_flight: usize) -> Client {
    let mut cfg = ClientConfig::new(&server.url, "fake-token-0123456789");
    cfg.backoff_base = Duration::from_millis(10);
    cfg.backoff_max = Duration::from_millis(50);
    cfg.timeout = Duration::from_secs(10);
    cfg.read_concurrency = in_flight;
    Client::new(cfg).expect("client")
}

fn uid(n: usize) -> String {
    format!("u{n:025}")
}

fn user(n: usize) -> serde_json::Value {
    json!({"id": uid(n), "username": format!("user{n:04}"), "email": format!("user{n:04}@example.org"),
           "auth_service": "", "auth_data": null, "delete_at": 0, "roles": "system_user"})
}

fn member(n: usize, admin: bool) -> serde_json::Value {
    json!({"channel_id": "c", "team_id": "t", "user_id": uid(n), "roles": "", "scheme_admin": admin,
           "scheme_user": true, "delete_at": 0})
}

fn channel(id: &str, team: &str, name: &str) -> serde_json::Value {
    json!({"id": id, "team_id": team, "name": name, "display_name": name,
           "type": if name.ends_with('3') { "P" } else { "O" }, "delete_at": 0})
}

/// Channel `n` of the world: team `rl` (`t1`) for even n, `sig` (`t2`) for odd n.
fn world_channel(n: usize) -> (String, String, String) {
    let team = if n.is_multiple_of(2) { "rl" } else { "sig" };
    (
        format!("c{n:025}"),
        team.to_string(),
        format!("chan-{n:02}"),
    )
}

/// Members of channel `n`: a few, and 230 (two pages) for channel 5.
fn world_channel_members(n: usize) -> Vec<usize> {
    let count = if n == 5 { 230 } else { (n * 7) % 30 };
    (0..count).map(|i| (n * 13 + i) % 460).collect()
}

/// Page `page` of 200 of `rows`.
fn page_of(rows: Vec<serde_json::Value>, req: &Request) -> Reply {
    let page: usize = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let rows: Vec<_> = rows.into_iter().skip(page * 200).take(200).collect();
    Reply::value(200, json!(rows))
}

/// A world of two teams (450 and 10 members), 20 linked channels among 420 listed ones
/// (three pages of `GET /channels`), 460 accounts; answers come after a delay of 0-14 ms
/// that depends on the request (so they arrive out of order), plus `extra`.
fn world(req: &Request, extra: Duration) -> Reply {
    let mut h = DefaultHasher::new();
    req.target.hash(&mut h);
    let delay = Duration::from_millis(h.finish() % 15) + extra;
    Reply::Delay(delay, Box::new(world_answer(req)))
}

fn world_answer(req: &Request) -> Reply {
    let path = req.path();
    match (req.method.as_str(), path) {
        ("GET", "/api/v4/teams/name/rl") => Reply::value(
            200,
            json!({"id": "t1", "name": "rl", "display_name": "RL", "delete_at": 0}),
        ),
        ("GET", "/api/v4/teams/name/sig") => Reply::value(
            200,
            json!({"id": "t2", "name": "sig", "display_name": "SIG", "delete_at": 0}),
        ),
        ("GET", "/api/v4/teams/t1/members") => {
            page_of((0..450).map(|i| member(i, i % 50 == 0)).collect(), req)
        }
        ("GET", "/api/v4/teams/t2/members") => {
            page_of((450..460).map(|i| member(i, false)).collect(), req)
        }
        ("GET", "/api/v4/channels") => {
            // 400 other channels, the 20 linked ones spread among them
            let mut all: Vec<serde_json::Value> = Vec::new();
            for i in 0..420 {
                if i % 21 == 0 && i / 21 < 20 {
                    let (id, team, name) = world_channel(i / 21);
                    let tid = if team == "rl" { "t1" } else { "t2" };
                    all.push(channel(&id, tid, &name));
                } else {
                    all.push(channel(&format!("x{i:025}"), "t9", &format!("other-{i}")));
                }
            }
            if req.query("include_total_count").as_deref() == Some("true") {
                let first: Vec<_> = all.iter().take(200).cloned().collect();
                Reply::value(200, json!({"channels": first, "total_count": 420}))
            } else {
                page_of(all, req)
            }
        }
        ("GET", p) if p.starts_with("/api/v4/channels/c") && p.ends_with("/members") => {
            let id = &p["/api/v4/channels/".len()..p.len() - "/members".len()];
            let n: usize = id[1..].parse().unwrap_or(999);
            let rows = world_channel_members(n)
                .into_iter()
                .map(|u| member(u, u % 3 == 0))
                .collect();
            page_of(rows, req)
        }
        ("POST", "/api/v4/users/usernames") => {
            let names: Vec<String> = serde_json::from_slice(&req.body).expect("names");
            let found: Vec<_> = names
                .iter()
                .filter_map(|n| n.strip_prefix("user")?.parse::<usize>().ok())
                .filter(|n| *n < 460)
                .map(user)
                .collect();
            Reply::value(200, json!(found))
        }
        ("POST", "/api/v4/users/ids") => {
            let ids: Vec<String> = serde_json::from_slice(&req.body).expect("ids");
            let found: Vec<_> = ids
                .iter()
                .filter_map(|i| i.strip_prefix('u')?.parse::<usize>().ok())
                .filter(|n| *n < 460)
                .map(user)
                .collect();
            Reply::value(200, json!(found))
        }
        _ => Reply::error(
            404,
            "app.channel.get_by_name.missing.app_error",
            "not found",
        ),
    }
}

/// What the engine would ask for: both teams, the 20 channels plus one that does not exist,
/// and 1,500 usernames (two batches), 460 of which have accounts.
fn wanted() -> (Vec<String>, Vec<(String, String)>, Vec<String>) {
    let mut channels: Vec<(String, String)> = (0..20)
        .map(|n| {
            let (_, team, name) = world_channel(n);
            (team, name)
        })
        .collect();
    channels.push(("rl".into(), "nowhere".into()));
    let usernames = (0..1500).map(|n| format!("user{n:04}")).collect();
    (vec!["rl".into(), "sig".into()], channels, usernames)
}

fn calls(server: &FakeServer) -> Vec<String> {
    let mut v: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.target, r.body.len()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_state_is_the_same_whatever_the_concurrency_and_the_order_of_the_answers() {
    let (teams, channels, usernames) = wanted();
    let mut first = None;
    for n in [1, 2, 4, 8] {
        let server = FakeServer::start(|req, _| world(req, Duration::ZERO)).await;
        let c = client(&server, n);
        let state = c
            .read_state(&teams, &channels, &usernames)
            .await
            .expect("state");
        assert!(
            server.max_in_flight() <= n,
            "{} in flight with a limit of {n}",
            server.max_in_flight()
        );
        assert_eq!(state.teams["rl"].members.len(), 450);
        assert_eq!(state.channels.len(), 20, "the missing channel is absent");
        assert_eq!(state.channels["sig/chan-05"].members.len(), 230);
        assert_eq!(state.users.len(), 460);
        let seen = (state, calls(&server));
        match &first {
            None => first = Some(seen),
            Some(one) => {
                assert!(one.0 == seen.0, "the state read with {n} in flight differs");
                assert_eq!(
                    one.1, seen.1,
                    "the same calls, only overlapped ({n} in flight)"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_requests_in_flight_than_configured() {
    let (teams, channels, usernames) = wanted();
    for n in [1, 3] {
        // slow answers: the client has every chance to send more than it may
        let server = FakeServer::start(|req, _| world(req, Duration::from_millis(60))).await;
        let c = client(&server, n);
        c.read_state(&teams, &channels, &usernames)
            .await
            .expect("state");
        assert_eq!(c.read_concurrency(), n);
        let most = server.max_in_flight();
        assert!(most <= n, "{most} in flight with a limit of {n}");
        if n > 1 {
            assert!(most > 1, "reads with a limit of {n} never overlapped");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_429_holds_back_every_request_until_retry_after() {
    let (teams, channels, usernames) = wanted();
    let limited = "/api/v4/channels/c0000000000000000000000004/members";
    let fired = AtomicBool::new(false);
    let server = FakeServer::start(move |req, _| {
        if req.path() == limited && !fired.swap(true, Ordering::SeqCst) {
            Reply::json(429, r#"{"id":"api.context.rate_limit.app_error","message":"Too many requests","status_code":429}"#)
                .with_header("Retry-After", "1")
        } else {
            world(req, Duration::from_millis(20))
        }
    })
    .await;
    let c = client(&server, 4);
    let state = c
        .read_state(&teams, &channels, &usernames)
        .await
        .expect("state after the 429");
    let s = c.stats();
    assert_eq!((s.rate_limited, s.retries), (1, 1), "{s}");

    let reqs = server.requests();
    let hit = reqs
        .iter()
        .position(|r| r.path() == limited)
        .expect("the limited listing was asked for");
    let at = reqs[hit].at;
    // Requests already sent when the 429 came may still arrive; no new one may be sent
    // until Retry-After has passed (less a little for the clock's granularity).
    let early = reqs
        .iter()
        .filter(|r| r.at > at && r.at < at + Duration::from_millis(950))
        .count();
    assert!(
        early < 4,
        "{early} requests sent during the second the server asked everyone to wait"
    );
    assert!(
        reqs.iter().filter(|r| r.path() == limited).count() >= 2,
        "the limited listing was asked for again"
    );
    // and the result is the one without the 429
    let server2 = FakeServer::start(|req, _| world(req, Duration::ZERO)).await;
    let again = client(&server2, 4)
        .read_state(&teams, &channels, &usernames)
        .await
        .expect("state");
    assert!(state == again, "the 429 changed what was read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_failed_read_fails_the_whole_state_under_concurrency() {
    let (teams, channels, usernames) = wanted();
    let server = FakeServer::start(|req, _| {
        if req.path() == "/api/v4/channels/c0000000000000000000000011/members" {
            Reply::error(403, "api.context.permissions.app_error", "no permission")
        } else {
            world(req, Duration::from_millis(5))
        }
    })
    .await;
    let err = client(&server, 4)
        .read_state(&teams, &channels, &usernames)
        .await
        .expect_err("a forbidden listing fails the read");
    assert!(matches!(err, MmError::Api { .. }), "{err:?}");
    assert_eq!(err.status(), Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_users_pages_side_by_side_and_still_refuses_a_listing_that_moved() {
    // 650 accounts: pages 0-3, the last short; with 4 in flight one window reads them all
    let server = FakeServer::start(|req, _| page_of((0..650).map(user).collect(), req)).await;
    let users = client(&server, 4).all_users().await.expect("users");
    assert_eq!(users.len(), 650);
    assert_eq!(users[0].username, "user0000");
    assert_eq!(server.requests().len(), 4);

    // 900 accounts, 8 in flight: pages 0-7 asked at once, 5-7 found empty
    let server = FakeServer::start(|req, _| page_of((0..900).map(user).collect(), req)).await;
    let users = client(&server, 8).all_users().await.expect("users");
    assert_eq!(users.len(), 900);
    assert_eq!(server.requests().len(), 8);

    // page 2 repeats page 1's first account, every time: read twice, then refused
    let server = FakeServer::start(|req, _| {
        let page: usize = req.query("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let start = if page == 2 { 200 } else { page * 200 };
        let rows: Vec<_> = (start..start + 200).map(user).collect();
        Reply::value(200, json!(rows))
    })
    .await;
    let err = client(&server, 4)
        .all_users()
        .await
        .expect_err("inconsistent");
    assert!(matches!(err, MmError::Inconsistent { .. }), "{err:?}");
    assert!(err.to_string().contains("listed twice"), "{err}");
}
