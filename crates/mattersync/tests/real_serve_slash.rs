//! The slash command end to end: a custom slash command registered on the real Mattermost,
//! pointing at `mattersync serve` on loopback, typed in a channel by a system admin, by a
//! plain member and by a channel admin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod real_serve_support;

use mattersync_ledger::Ledger;
use mattersync_testsupport::Sandbox;
use real_serve_support::{secret_file, serve_section, wait_until, Service, PROPAGATION};
use serde_json::{json, Value};

/// Mattermost's REST API as a person's client uses it (the test's side, not mattersync's).
struct Mm {
    http: reqwest::Client,
    url: String,
}

impl Mm {
    async fn call(&self, token: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}/api/v4{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("mattermost request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Types `/mattersync <text>` in the channel as the owner of `token`; returns the answer.
    async fn type_command(&self, token: &str, team: &str, channel: &str, text: &str) -> Value {
        self.call(
            token,
            reqwest::Method::POST,
            "/commands/execute",
            json!({"team_id": team, "channel_id": channel, "command": format!("/mattersync {text}")}),
        )
        .await
    }

    /// Logs a user in; returns the session token.
    async fn login(&self, user: &str, password: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/api/v4/users/login", self.url))
            .json(&json!({"login_id": user, "password": password}))
            .send()
            .await
            .expect("login");
        assert!(
            resp.status().is_success(),
            "login {user}: {}",
            resp.status()
        );
        resp.headers()
            .get("token")
            .and_then(|v| v.to_str().ok())
            .expect("session token")
            .to_string()
    }
}

fn text(v: &Value) -> String {
    assert_eq!(v["response_type"], "ephemeral", "{v}");
    v["text"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_slash_command_links_and_unlinks_only_for_admins_and_says_what_happens() {
    let sb = Sandbox::new("serve_slash").await;
    let alice = sb.user("alice", true, false).await;
    let bob = sb.user("bob", true, false).await;
    let g = sb.create_group("infra", &[&alice, &bob], &[], &[]).await;
    let ch = sb.channel("infra", false).await;
    // Mattermost makes the command's token when the command is registered, after the
    // service is up; the service reads the file at every request.
    let slash_token = secret_file(sb.dir.path(), "slash.token", "not-yet");
    let cfg = sb.config(&serve_section(
        sb.dir.path(),
        &format!("slash_command_token_file = \"{}\"", slash_token.display()),
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;

    let mm = Mm {
        http: reqwest::Client::new(),
        url: sb.servers.get("MATTERSYNC_MM_URL"),
    };
    let admin_token = sb.servers.mm_token();
    let command = mm
        .call(
            &admin_token,
            reqwest::Method::POST,
            "/commands",
            json!({
                "team_id": sb.team_id,
                "trigger": "mattersync",
                "method": "P",
                "url": format!("{}/slash", svc.base),
                "display_name": "mattersync",
                "description": "Directory groups in this channel",
                "username": "mattersync",
            }),
        )
        .await;
    let token = command["token"].as_str().expect("command token");
    secret_file(sb.dir.path(), "slash.token", token);

    // A system admin links the group: the answer says who will be added, then they are.
    let answer = text(
        &mm.type_command(&admin_token, &sb.team_id, &ch, &format!("link {g}"))
            .await,
    );
    assert!(answer.contains(&format!("Linked **{g}**")), "{answer}");
    assert!(answer.contains("2 will be added"), "{answer}");
    assert!(
        answer.contains(&format!("@{}", alice.uid)) && answer.contains(&format!("@{}", bob.uid)),
        "{answer}"
    );
    let arrived = wait_until(PROPAGATION, || async { sb.members(&ch).await.len() == 2 }).await;
    assert!(arrived, "{:?}\n{}", sb.members(&ch).await, svc.logs());
    let ledger = Ledger::open(&sb.dir.path().join("ledger.db")).expect("ledger");
    let links = ledger.links().expect("links");
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].target.to_string(), format!("{}/infra", sb.area));

    let status = text(
        &mm.type_command(&admin_token, &sb.team_id, &ch, "status")
            .await,
    );
    assert!(
        status.contains(&g) && status.contains("2 member(s)"),
        "{status}"
    );
    let explain = text(
        &mm.type_command(
            &admin_token,
            &sb.team_id,
            &ch,
            &format!("explain @{}", alice.uid),
        )
        .await,
    );
    assert!(explain.contains(&g), "{explain}");
    let help = text(
        &mm.type_command(&admin_token, &sb.team_id, &ch, "frobnicate")
            .await,
    );
    assert!(
        help.contains("unknown command") && help.contains("Usage"),
        "{help}"
    );

    // A plain member may look but not change.
    let password = "Pw-slash-member-7x!";
    let carol = sb
        .mm
        .create_user(
            &sb.uid("carol"),
            &format!("{}@example.org", sb.uid("carol")),
            password,
        )
        .await
        .expect("carol");
    let carol_done = CarolAccount {
        sb: &sb,
        id: carol.id.clone(),
    };
    sb.add_by_hand(&ch, &carol.id).await;
    let carol_token = mm.login(&carol.username, password).await;
    let refused = text(
        &mm.type_command(&carol_token, &sb.team_id, &ch, &format!("unlink {g}"))
            .await,
    );
    assert!(
        refused.contains("Only channel admins and system admins"),
        "{refused}"
    );
    assert_eq!(ledger.links().expect("links").len(), 1);

    // Made channel admin, she may: the answer says nobody is removed.
    sb.mm
        .set_channel_admin(&ch, &carol.id, true)
        .await
        .expect("make carol channel admin");
    let unlinked = text(
        &mm.type_command(&carol_token, &sb.team_id, &ch, &format!("unlink {g}"))
            .await,
    );
    assert!(
        unlinked.contains(&format!("Unlinked **{g}**")),
        "{unlinked}"
    );
    assert!(
        unlinked.contains("leaves the channel's members as they are"),
        "{unlinked}"
    );
    assert!(ledger.links().expect("links").is_empty());

    // A request without the command's token is refused.
    let forged = reqwest::Client::new()
        .post(format!("{}/slash", svc.base))
        .form(&[
            ("token", "forged"),
            ("text", "status"),
            ("channel_id", ch.as_str()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status().as_u16(), 401);

    let m = svc
        .wait_metrics("slash commands", |m| {
            m.get("mattersync_slash_commands_total{command=\"link\",outcome=\"ok\"}") == 1.0
        })
        .await;
    assert_eq!(
        m.get("mattersync_slash_commands_total{command=\"unlink\",outcome=\"refused\"}"),
        1.0
    );
    assert_eq!(
        m.get("mattersync_slash_commands_total{command=\"unlink\",outcome=\"ok\"}"),
        1.0
    );
    assert_eq!(
        m.get("mattersync_slash_commands_total{command=\"unknown\",outcome=\"bad_token\"}"),
        1.0
    );
    // Unlinking removed nobody.
    let left = sb.members(&ch).await;
    assert!(
        left.contains_key(&alice.uid) && left.contains_key(&bob.uid),
        "{left:?}"
    );
    drop(carol_done);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_serve_slash_link_typed_in_a_direct_message_is_refused_and_records_nothing() {
    let sb = Sandbox::new("serve_slash_dm").await;
    let alice = sb.user("alice", true, false).await;
    let g = sb.create_group("infra", &[&alice], &[], &[]).await;
    let slash_token = secret_file(sb.dir.path(), "slash.token", "not-yet");
    let cfg = sb.config(&serve_section(
        sb.dir.path(),
        &format!("slash_command_token_file = \"{}\"", slash_token.display()),
    ));
    let svc = Service::start(&cfg, &[], "serve.log").await;
    svc.wait_ready().await;
    let mm = Mm {
        http: reqwest::Client::new(),
        url: sb.servers.get("MATTERSYNC_MM_URL"),
    };
    let admin_token = sb.servers.mm_token();
    let command = mm
        .call(
            &admin_token,
            reqwest::Method::POST,
            "/commands",
            json!({
                "team_id": sb.team_id,
                "trigger": "mattersync",
                "method": "P",
                "url": format!("{}/slash", svc.base),
                "display_name": "mattersync",
                "username": "mattersync",
            }),
        )
        .await;
    secret_file(
        sb.dir.path(),
        "slash.token",
        command["token"].as_str().expect("command token"),
    );

    // A system admin types the command in a direct message with alice, and in a group
    // message: Mattermost sends the team they were looking at and the DM's name, which
    // reads as a channel name; only the channel's type tells.
    let me = sb.mm.me().await.expect("me");
    let dm = sb
        .mm
        .create_direct_channel(&me.id, alice.mm_id.as_deref().expect("account"))
        .await
        .expect("direct channel");
    let bob = sb.user("bob", true, false).await;
    let gm = mm
        .call(
            &admin_token,
            reqwest::Method::POST,
            "/channels/group",
            json!([me.id, alice.mm_id, bob.mm_id]),
        )
        .await;
    let gm = gm["id"].as_str().expect("group message id").to_string();
    for channel in [dm.id.as_str(), gm.as_str()] {
        let answer = text(
            &mm.type_command(&admin_token, &sb.team_id, channel, &format!("link {g}"))
                .await,
        );
        assert!(
            answer.contains("direct or group message") && answer.contains("Nothing was changed"),
            "{answer}"
        );
    }
    let ledger = Ledger::open(&sb.dir.path().join("ledger.db")).expect("ledger");
    assert!(ledger.links().expect("links").is_empty());
    let m = svc
        .wait_metrics("slash commands", |m| {
            m.get("mattersync_slash_commands_total{command=\"link\",outcome=\"refused\"}") == 2.0
        })
        .await;
    assert_eq!(
        m.get("mattersync_slash_commands_total{command=\"link\",outcome=\"ok\"}"),
        0.0
    );
    // Nobody was put in the DM's "channel" by a sync either.
    let members = sb.mm.channel_members(&dm.id).await.expect("dm members");
    assert_eq!(members.len(), 2, "{members:?}");
}

/// Deactivates the account the test made itself (a server without a licence refuses new
/// accounts past 250 active ones).
struct CarolAccount<'a> {
    sb: &'a Sandbox,
    id: String,
}

impl Drop for CarolAccount<'_> {
    fn drop(&mut self) {
        let servers = self.sb.servers.clone();
        let id = self.id.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = servers.mattermost().set_user_active(&id, false).await;
            });
        })
        .join();
    }
}
