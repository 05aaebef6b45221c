//! What the slash command needs of Mattermost beyond sync: who is calling and with which
//! roles, the custom slash commands of a team (`mattersync slash install`), interactive
//! dialogs and ephemeral answers.

use crate::client::{seg, Client, Retry};
use crate::error::MmError;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// An account as the permission checks see it: `GET /users/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: String,
    pub username: String,
    pub system_admin: bool,
    pub bot: bool,
    /// Deactivated.
    pub inactive: bool,
}

/// A membership's role, read for one user: `GET /teams/{t}/members/{u}` or
/// `GET /channels/{c}/members/{u}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub admin: bool,
}

/// A custom slash command of a team (`model.Command`, the fields used).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SlashCommand {
    pub id: String,
    pub team_id: String,
    pub trigger: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub delete_at: i64,
}

/// What `mattersync slash install` registers.
#[derive(Debug, Clone, Serialize)]
pub struct SlashCommandIn<'a> {
    pub team_id: &'a str,
    pub trigger: &'a str,
    pub url: &'a str,
    /// `P`: POST.
    pub method: &'a str,
    pub display_name: &'a str,
    pub description: &'a str,
    pub username: &'a str,
    pub auto_complete: bool,
    pub auto_complete_desc: &'a str,
    pub auto_complete_hint: &'a str,
}

#[derive(Debug, Serialize)]
struct CommandUpdate<'a> {
    id: &'a str,
    token: &'a str,
    #[serde(flatten)]
    command: &'a SlashCommandIn<'a>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_and_trigger_users() {
        assert!(super::is_id("abcdefghijklmnopqrstuvwxyz"));
        for bad in [
            "me",
            "",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "abcdefghijklmnopqrstuvwxy/",
            "abcdefghijklmnopqrstuvwxyz0",
        ] {
            assert!(!super::is_id(bad), "{bad}");
        }
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let user = "u1u2u3u4u5u6u7u8u9u0abcdef";
        assert_eq!(
            super::trigger_user(&b64(&format!("cl1:{user}:1764633600000:c2lnbmF0dXJl"))),
            Some(user.to_string())
        );
        assert_eq!(super::trigger_user(&b64("cl1:me:1:sig")), None);
        assert_eq!(super::trigger_user(&b64(&format!("cl1:{user}"))), None);
        assert_eq!(super::trigger_user("not base64!"), None);
    }
}

#[derive(Debug, Deserialize)]
struct UserWire {
    id: String,
    username: String,
    #[serde(default)]
    roles: String,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    delete_at: i64,
}

#[derive(Debug, Deserialize)]
struct MemberWire {
    user_id: String,
    #[serde(default)]
    scheme_admin: bool,
    #[serde(default)]
    delete_at: i64,
}

#[derive(Debug, Deserialize)]
struct TokenWire {
    token: String,
}

/// `Ok(None)` for a 404 (no such account, or not a member).
fn found<T>(r: Result<T, MmError>) -> Result<Option<T>, MmError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `s` has the shape of a Mattermost id: 26 characters of a-z and 0-9 (so not
/// `me`, which the API reads as "the token's own account", nor a path).
pub fn is_id(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The user id a Mattermost trigger id was made for: a trigger id is the base64 of
/// `<client trigger id>:<user id>:<millis>:<signature>`, signed by the server, which checks
/// the signature when a dialog is opened with it. `None` when it is not of that shape.
pub fn trigger_user(trigger_id: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(trigger_id.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(4, ':');
    let _client = parts.next()?;
    let user = parts.next()?;
    let millis = parts.next()?;
    let _signature = parts.next()?;
    (is_id(user) && millis.bytes().all(|b| b.is_ascii_digit())).then(|| user.to_string())
}

impl Client {
    /// The account with this id, with its system role; `None` when there is none (or the
    /// id is not an id).
    pub async fn caller(&self, user_id: &str) -> Result<Option<Caller>, MmError> {
        if !is_id(user_id) {
            return Ok(None);
        }
        let path = format!("/users/{}", seg(user_id));
        Ok(
            found(self.get_json::<UserWire>(&path).await)?.map(|u| Caller {
                system_admin: u.roles.split_whitespace().any(|r| r == "system_admin"),
                id: u.id,
                username: u.username,
                bot: u.is_bot,
                inactive: u.delete_at > 0,
            }),
        )
    }

    /// The user's membership of the team, if a current one.
    pub async fn team_membership(
        &self,
        team_id: &str,
        user_id: &str,
    ) -> Result<Option<Membership>, MmError> {
        if !is_id(team_id) || !is_id(user_id) {
            return Ok(None);
        }
        let path = format!("/teams/{}/members/{}", seg(team_id), seg(user_id));
        Ok(found(self.get_json::<MemberWire>(&path).await)?
            .filter(|m| m.delete_at == 0 && m.user_id == user_id)
            .map(|m| Membership {
                admin: m.scheme_admin,
            }))
    }

    /// The user's membership of the channel, if any.
    pub async fn channel_membership(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<Membership>, MmError> {
        if !is_id(channel_id) || !is_id(user_id) {
            return Ok(None);
        }
        let path = format!("/channels/{}/members/{}", seg(channel_id), seg(user_id));
        Ok(found(self.get_json::<MemberWire>(&path).await)?
            .filter(|m| m.user_id == user_id)
            .map(|m| Membership {
                admin: m.scheme_admin,
            }))
    }

    /// `GET /commands?team_id=…&custom_only=true`: the team's custom slash commands.
    pub async fn slash_commands(&self, team_id: &str) -> Result<Vec<SlashCommand>, MmError> {
        let path = format!("/commands?team_id={}&custom_only=true", seg(team_id));
        let all: Vec<SlashCommand> = self.get_json(&path).await?;
        Ok(all.into_iter().filter(|c| c.delete_at == 0).collect())
    }

    /// `POST /commands`: registers a custom slash command; the answer carries its token.
    pub async fn create_slash_command(
        &self,
        command: &SlashCommandIn<'_>,
    ) -> Result<SlashCommand, MmError> {
        self.send_json(Method::POST, "/commands", command, Retry::Unsafe)
            .await
    }

    /// `PUT /commands/{id}`: points an existing command at `url` (method POST), keeping its
    /// token.
    pub async fn update_slash_command(
        &self,
        existing: &SlashCommand,
        command: &SlashCommandIn<'_>,
    ) -> Result<SlashCommand, MmError> {
        let body = CommandUpdate {
            id: &existing.id,
            token: &existing.token,
            command,
        };
        let path = format!("/commands/{}", seg(&existing.id));
        self.send_json(Method::PUT, &path, &body, Retry::Idempotent)
            .await
    }

    /// `PUT /commands/{id}/regen_token`: a new token; the old one stops working at once.
    pub async fn regenerate_slash_token(&self, command_id: &str) -> Result<String, MmError> {
        let path = format!("/commands/{}/regen_token", seg(command_id));
        let t: TokenWire = self
            .send_json(Method::PUT, &path, &serde_json::json!({}), Retry::Unsafe)
            .await?;
        Ok(t.token)
    }

    /// `POST /actions/dialogs/open`: shows `dialog` to the user whose action produced
    /// `trigger_id` (Mattermost checks the trigger: it is signed, for one user, and expires).
    /// Submissions go to `url`.
    pub async fn open_dialog(
        &self,
        trigger_id: &str,
        url: &str,
        dialog: &serde_json::Value,
    ) -> Result<(), MmError> {
        let body = serde_json::json!({"trigger_id": trigger_id, "url": url, "dialog": dialog});
        self.send(Method::POST, "/actions/dialogs/open", &body, Retry::Unsafe)
            .await?;
        Ok(())
    }

    /// `POST /posts/ephemeral`: a message only `user_id` sees, in the channel.
    pub async fn post_ephemeral(
        &self,
        user_id: &str,
        channel_id: &str,
        message: &str,
    ) -> Result<(), MmError> {
        let body = serde_json::json!({
            "user_id": user_id,
            "post": {"channel_id": channel_id, "message": message},
        });
        self.send(Method::POST, "/posts/ephemeral", &body, Retry::Unsafe)
            .await?;
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct PostWire {
    id: String,
}

impl Client {
    /// `POST /posts`: a message in the channel as the token's account, with `props` (for
    /// interactive buttons: `{"attachments": [{"actions": [...]}]}`). Returns the post id.
    pub async fn create_post(
        &self,
        channel_id: &str,
        message: &str,
        props: &serde_json::Value,
    ) -> Result<String, MmError> {
        let body =
            serde_json::json!({"channel_id": channel_id, "message": message, "props": props});
        let p: PostWire = self
            .send_json(Method::POST, "/posts", &body, Retry::Unsafe)
            .await?;
        Ok(p.id)
    }

    /// `PUT /posts/{id}/patch`: replaces the message and its props (an update in place).
    pub async fn patch_post(
        &self,
        post_id: &str,
        message: &str,
        props: &serde_json::Value,
    ) -> Result<(), MmError> {
        let body = serde_json::json!({"message": message, "props": props});
        let path = format!("/posts/{}/patch", seg(post_id));
        self.send(Method::PUT, &path, &body, Retry::Idempotent)
            .await?;
        Ok(())
    }
}
