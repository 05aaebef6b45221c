//! Holds in Mattermost, end to end on the real servers: a mass removal held is posted once
//! in the alerts channel with Show / Approve / Dismiss buttons; buttons are pressed through
//! Mattermost's own API (`POST /posts/{id}/actions/{action}`, which calls serve with the
//! real user id); a non-approver is refused; an approver gets the confirmation dialog, and
//! its submission applies exactly the held set; the message is updated in place when the
//! hold clears by itself and when it is approved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_ledger::{AuditQuery, Ledger};
use mattersync_testsupport::Sandbox;
use real_serve_support::slash::{Mm, Person, Socket};
use real_serve_support::{serve_section, wait_until, Service, API_TOKEN, PROPAGATION};
use serde_json::{json, Value};
use std::time::Duration;

/// The posts of the alerts channel that carry buttons (newest first), as the admin sees them.
async fn alerts(mm: &Mm, admin: &str, channel: &str) -> Vec<Value> {
    let got = mm
        .call(
            admin,
            reqwest::Method::GET,
            &format!("/channels/{channel}/posts?per_page=100"),
            Value::Null,
        )
        .await;
    let mut posts: Vec<Value> = got["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| got["posts"][id.as_str().unwrap()].clone())
        .filter(|p| p["message"].as_str().unwrap_or("").contains("mattersync"))
        .collect();
    posts.sort_by_key(|p| std::cmp::Reverse(p["create_at"].as_i64().unwrap_or(0)));
    posts
}

async fn post(mm: &Mm, admin: &str, id: &str) -> Value {
    mm.call(
        admin,
        reqwest::Method::GET,
        &format!("/posts/{id}"),
        Value::Null,
    )
    .await
}

fn buttons(p: &Value) -> Vec<String> {
    p["props"]["attachments"][0]["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Presses a button as the owner of `token`: (status, body).
async fn press(mm: &Mm, token: &str, post_id: &str, action: &str) -> (u16, String) {
    mm.try_call(
        token,
        reqwest::Method::POST,
        &format!("/posts/{post_id}/actions/{action}"),
        json!({}),
    )
    .await
}

async fn held_fingerprint(svc: &Service) -> Option<String> {
    let (_, body) = svc
        .request(reqwest::Method::GET, "/holds", Some(API_TOKEN))
        .await;
    let v: Value = serde_json::from_str(&body).ok()?;
    v["holds"][0]["fingerprint"].as_str().map(str::to_string)
}

/// Waits for the one alert message of `fp`; its post.
async fn wait_alert(svc: &Service, mm: &Mm, admin: &str, channel: &str, fp: &str) -> Value {
    let deadline = std::time::Instant::now() + PROPAGATION;
    loop {
        let a = alerts(mm, admin, channel).await;
        if let Some(p) = a
            .into_iter()
            .find(|p| p["message"].as_str().unwrap_or("").contains(fp) && !buttons(p).is_empty())
        {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no alert for {fp}\n{}",
            svc.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_alerts_posts_a_hold_once_refuses_non_approvers_and_approves_through_the_dialog()
{
    let sb = Sandbox::new("alerts").await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(sb.user(&format!("a{i:02}"), true, false).await);
    }
    let refs: Vec<&_> = users.iter().collect();
    let g = sb.create_group("alerted", &refs, &[], &[]).await;
    let ch = sb.channel("alerted", false).await;
    let alerts_ch = sb.channel("alerts", false).await;
    let cfg = sb.config(&format!(
        "{}\n[guards]\nmax_removals = 5\nmax_removal_ratio = 1.0\n\n{}",
        sb.link(&g, "alerted"),
        serve_section(
            sb.dir.path(),
            &format!(
                "guard_window = \"0s\"\nalerts_channel = \"{}/alerts\"",
                sb.area
            )
        )
    ));
    let mut svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    assert_eq!(sb.members(&ch).await.len(), 12);
    let mm = Mm::new(&sb);
    let admin = sb.servers.mm_token();
    let carol = Person::new(&sb, &mm, "carol").await;
    sb.add_by_hand(&alerts_ch, &carol.id).await;
    let mut carol_ws = Socket::connect(&mm.url, &carol.token).await;

    // 1. A mass removal is held and posted once, with its buttons.
    let gone: Vec<&_> = users.iter().take(10).collect();
    sb.remove_members(&g, &gone).await;
    let deadline = std::time::Instant::now() + PROPAGATION;
    let fp = loop {
        if let Some(fp) = held_fingerprint(&svc).await {
            break fp;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never held\n{}",
            svc.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first = wait_alert(&svc, &mm, &admin, &alerts_ch, &fp).await;
    let first_id = first["id"].as_str().unwrap().to_string();
    assert_eq!(buttons(&first), ["show", "approve", "dismiss"], "{first}");
    let text = first["message"].as_str().unwrap();
    assert!(text.contains("10 removals"), "{text}");
    assert!(text.contains(&g), "{text}");
    // Another cycle holds the same set again: no second message.
    let (status, _) = svc
        .request(reqwest::Method::POST, "/sync", Some(API_TOKEN))
        .await;
    assert!(status < 500, "{status}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alerts(&mm, &admin, &alerts_ch).await.len(), 1);
    assert_eq!(sb.members(&ch).await.len(), 12);

    // 2. Carol is no approver: Show answers her, Approve and Dismiss are refused.
    let (status, body) = press(&mm, &carol.token, &first_id, "show").await;
    assert_eq!(status, 200, "{body}");
    let shown = carol_ws.event("ephemeral_message").await;
    assert!(
        shown["data"]["post"]
            .as_str()
            .unwrap_or("")
            .contains("10 removals"),
        "{shown}"
    );
    for action in ["approve", "dismiss"] {
        let (status, body) = press(&mm, &carol.token, &first_id, action).await;
        assert_eq!(status, 200, "{body}");
        let refused = carol_ws.event("ephemeral_message").await;
        assert!(
            refused["data"]["post"]
                .as_str()
                .unwrap_or("")
                .contains("Only system admins may approve"),
            "{refused}"
        );
    }
    assert_eq!(sb.members(&ch).await.len(), 12);
    assert_eq!(buttons(&post(&mm, &admin, &first_id).await).len(), 3);

    // Straight to serve, bypassing Mattermost: a made-up context or dialog state is refused.
    let me_id = sb.mm.me().await.unwrap().id;
    let http = reqwest::Client::new();
    let forged = http
        .post(format!("{}/alerts/action", svc.base))
        .json(
            &json!({"user_id": me_id, "post_id": first_id, "trigger_id": "x",
                      "context": {"action": "approve", "fingerprint": fp, "mac": "00".repeat(32)}}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(forged.contains("did not come from mattersync"), "{forged}");
    let forged = http
        .post(format!("{}/alerts/dialog", svc.base))
        .json(&json!({"user_id": me_id, "state": format!("v1.approve.{fp}.{me_id}.9999999999.{}", "00".repeat(32))}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(forged.contains("did not come from mattersync"), "{forged}");
    assert_eq!(sb.members(&ch).await.len(), 12);

    // An approver dismisses it: the hold stays, the message says who, without buttons.
    let (status, body) = press(&mm, &admin, &first_id, "dismiss").await;
    assert_eq!(status, 200, "{body}");
    let p = post(&mm, &admin, &first_id).await;
    let me = sb.mm.me().await.unwrap().username;
    assert!(
        p["message"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("Dismissed** by @{me}")),
        "{p}"
    );
    assert!(buttons(&p).is_empty(), "{p}");
    assert_eq!(held_fingerprint(&svc).await.as_deref(), Some(fp.as_str()));
    assert_eq!(sb.members(&ch).await.len(), 12);

    // A restart holds the same set again and does not post it again (the ledger knows).
    svc.terminate();
    svc = Service::start(&cfg, &[], "serve2.log").await;
    svc.wait_ready().await;
    assert_eq!(held_fingerprint(&svc).await.as_deref(), Some(fp.as_str()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alerts(&mm, &admin, &alerts_ch).await.len(), 1);

    // 3. The directory changes back: the message says so, in place, without buttons.
    sb.add_members(&g, &gone).await;
    let ok = wait_until(PROPAGATION, || async {
        let p = post(&mm, &admin, &first_id).await;
        p["message"].as_str().unwrap_or("").contains("Cleared") && buttons(&p).is_empty()
    })
    .await;
    assert!(ok, "{}\n{}", post(&mm, &admin, &first_id).await, svc.logs());
    assert_eq!(sb.members(&ch).await.len(), 12);

    // 4. Held again: a new message; the admin (a system admin) approves it in the dialog.
    sb.remove_members(&g, &gone).await;
    let second = wait_alert(&svc, &mm, &admin, &alerts_ch, &fp).await;
    let second_id = second["id"].as_str().unwrap().to_string();
    assert_ne!(second_id, first_id);
    let mut admin_ws = Socket::connect(&mm.url, &admin).await;
    let (status, body) = press(&mm, &admin, &second_id, "approve").await;
    assert_eq!(status, 200, "{body}");
    let (url, dialog) = admin_ws.dialog().await;
    assert_eq!(url, format!("{}/alerts/dialog", svc.base));
    assert_eq!(sb.members(&ch).await.len(), 12, "a press applies nothing");
    let state = dialog["state"].as_str().unwrap().to_string();
    // Carol cannot submit the admin's form.
    let submit = |token: String, state: String| {
        let (mm, url, team, ch) = (&mm, url.clone(), sb.team_id.clone(), alerts_ch.clone());
        async move {
            mm.try_call(
                &token,
                reqwest::Method::POST,
                "/actions/dialogs/submit",
                json!({"url": url, "callback_id": "mattersync-approve", "state": state,
                       "team_id": team, "channel_id": ch, "submission": {},
                       "cancelled": false}),
            )
            .await
        }
    };
    let (_, body) = submit(carol.token.clone(), state.clone()).await;
    assert!(body.contains("opened for someone else"), "{body}");
    assert_eq!(sb.members(&ch).await.len(), 12);
    let (status, body) = submit(admin.clone(), state).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("error"), "{body}");
    assert_eq!(sb.members(&ch).await.len(), 2);
    let ok = wait_until(PROPAGATION, || async {
        let p = post(&mm, &admin, &second_id).await;
        p["message"].as_str().unwrap_or("").contains("Approved") && buttons(&p).is_empty()
    })
    .await;
    assert!(ok, "{}", post(&mm, &admin, &second_id).await);
    assert_eq!(alerts(&mm, &admin, &alerts_ch).await.len(), 2);
    let events = Ledger::open_read_only(&sb.dir.path().join("ledger.db"))
        .unwrap()
        .events(&AuditQuery {
            limit: 100_000,
            ..Default::default()
        })
        .unwrap();
    assert!(
        events.iter().any(|e| e.actor == format!("approval:{me}")
            && e.action == "approve"
            && e.outcome == "approved"),
        "{events:?}"
    );
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_alerts_posts_a_broken_link_once() {
    let sb = Sandbox::new("alerts_broken").await;
    let ann = sb.user("ann", true, false).await;
    let g = sb.create_group("soon_broken", &[&ann], &[], &[]).await;
    let ch = sb.channel("soon_broken", false).await;
    let alerts_ch = sb.channel("alerts", false).await;
    let cfg = sb.config(&format!(
        "{}\n{}",
        sb.link(&g, "soon_broken"),
        serve_section(
            sb.dir.path(),
            &format!("alerts_channel = \"{}/alerts\"", sb.area)
        )
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    let mm = Mm::new(&sb);
    let admin = sb.servers.mm_token();
    let problems = || async {
        alerts(&mm, &admin, &alerts_ch)
            .await
            .into_iter()
            .filter(|p| p["message"].as_str().unwrap_or("").contains("broken link"))
            .count()
    };
    assert_eq!(problems().await, 0);

    // The linked channel is archived: the link is broken, and that is posted once.
    sb.mm.archive_channel(&ch).await.expect("archive");
    for _ in 0..2 {
        let (status, _) = svc
            .request(reqwest::Method::POST, "/sync", Some(API_TOKEN))
            .await;
        assert!(status < 500 || status == 503, "{status}");
    }
    let ok = wait_until(PROPAGATION, || async { problems().await > 0 }).await;
    assert!(ok, "{}", svc.logs());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(problems().await, 1);
}
