//! The slash command as people use it: Mattermost's REST API from a person's side (log in,
//! type a command), accounts a test makes and deactivates again, and `slash install`.

use mattersync_testsupport::Sandbox;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Mattermost's REST API as a person's client uses it (the test's side, not mattersync's).
pub struct Mm {
    pub http: reqwest::Client,
    pub url: String,
}

impl Mm {
    pub fn new(sb: &Sandbox) -> Mm {
        Mm {
            http: reqwest::Client::new(),
            url: sb.servers.get("MATTERSYNC_MM_URL"),
        }
    }

    /// A call that must succeed; its JSON answer.
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Value {
        let (status, text) = self.try_call(token, method, path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A call; its status and body.
    pub async fn try_call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, String) {
        let resp = self
            .http
            .request(method, format!("{}/api/v4{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("mattermost request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Types `/mattersync <text>` in the channel as the owner of `token`; returns the answer.
    pub async fn type_command(&self, token: &str, team: &str, channel: &str, text: &str) -> Value {
        self.call(
            token,
            reqwest::Method::POST,
            "/commands/execute",
            json!({"team_id": team, "channel_id": channel, "command": format!("/mattersync {text}")}),
        )
        .await
    }

    /// Logs a user in; returns the session token.
    pub async fn login(&self, user: &str, password: &str) -> String {
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

/// The text of an ephemeral answer.
pub fn text(v: &Value) -> String {
    assert_eq!(v["response_type"], "ephemeral", "{v}");
    v["text"].as_str().unwrap_or_default().to_string()
}

/// A Mattermost-only account a test makes (member of the sandbox team), logged in;
/// deactivated on drop (a server without a licence refuses new accounts past 250 active
/// ones).
pub struct Person<'a> {
    sb: &'a Sandbox,
    pub id: String,
    pub username: String,
    pub token: String,
}

impl<'a> Person<'a> {
    pub async fn new(sb: &'a Sandbox, mm: &Mm, name: &str) -> Person<'a> {
        let password = "Pw-slash-person-7x!";
        let username = sb.uid(name);
        let u = sb
            .mm
            .create_user(&username, &format!("{username}@example.org"), password)
            .await
            .expect("create account");
        let token = mm.login(&u.username, password).await;
        Person {
            sb,
            id: u.id,
            username: u.username,
            token,
        }
    }

    /// Creates an open channel in the team as this person (who is then its admin); its id.
    pub async fn create_channel(&self, mm: &Mm, team_id: &str, name: &str) -> String {
        mm.call(
            &self.token,
            reqwest::Method::POST,
            "/channels",
            json!({"team_id": team_id, "name": name, "display_name": name, "type": "O"}),
        )
        .await["id"]
            .as_str()
            .expect("channel id")
            .to_string()
    }

    /// Joins the team (needed before a channel).
    pub async fn join_team(&self, team_id: &str) {
        self.sb
            .mm
            .add_team_members(team_id, std::slice::from_ref(&self.id))
            .await
            .expect("join the team");
    }
}

impl Drop for Person<'_> {
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

/// The `[serve]` lines of the slash command: one token file per team in `<dir>/slash`.
pub fn slash_lines(dir: &Path) -> String {
    format!(
        "slash_command_token_dir = \"{}\"",
        dir.join("slash").display()
    )
}

/// Where `slash install` writes a team's token.
pub fn token_file(dir: &Path, team: &str) -> PathBuf {
    dir.join("slash").join(format!("{team}.token"))
}

/// `mattersync slash install --url <url> <extra>`: (exit code, stdout, stderr).
pub fn install(config: &Path, url: &str, extra: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mattersync"))
        .arg("--config")
        .arg(config)
        .args(["slash", "install", "--url", url])
        .args(extra)
        .env_remove("MATTERSYNC_CONFIG")
        .output()
        .expect("run mattersync slash install");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A person's client: the Mattermost websocket, where `open_dialog` events arrive.
pub struct Socket(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Socket {
    pub async fn connect(mm_url: &str, token: &str) -> Socket {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}/api/v4/websocket", mm_url.replacen("http", "ws", 1));
        let mut req = url.into_client_request().expect("ws request");
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket");
        let mut s = Socket(ws);
        s.event("hello").await;
        s
    }

    /// The next event named `name` (others are skipped), within 20 s.
    pub async fn event(&mut self, name: &str) -> serde_json::Value {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.0.next())
                .await
                .unwrap_or_else(|_| panic!("no {name} event within 20 s"))
                .expect("websocket open")
                .expect("websocket message");
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                let v: serde_json::Value = serde_json::from_str(&t).expect("event json");
                if v["event"] == name {
                    return v;
                }
            }
        }
    }

    /// The dialog of the next `open_dialog` event: (url, dialog).
    pub async fn dialog(&mut self) -> (String, serde_json::Value) {
        let e = self.event("open_dialog").await;
        let d = &e["data"]["dialog"];
        let d: serde_json::Value = match d.as_str() {
            Some(s) => serde_json::from_str(s).expect("dialog json"),
            None => d.clone(),
        };
        (
            d["url"].as_str().expect("dialog url").to_string(),
            d["dialog"].clone(),
        )
    }
}
