//! Writes: memberships and roles (what plans do), plus the administrative calls tests and
//! the CLI use (create team, channel, user; archive a channel).

use crate::client::{decode, seg, Client, Retry};
use crate::error::MmError;
use crate::read::{Channel, Team};
use crate::wire;
use mattersync_core::{Action, MmUser, PlanMember};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most users one `POST /teams/{id}/members/batch` takes (`MaxAddMembersBatch`).
pub const TEAM_BATCH: usize = 256;
/// Most users one `POST /channels/{id}/members` with `user_ids` takes (`maxListSize`).
pub const CHANNEL_BATCH: usize = 1000;

/// Error ids with which Mattermost says "this user is not a member" on removal.
const MISSING_CHANNEL_MEMBER: &str = "app.channel.get_member.missing.app_error";
const MISSING_ACCOUNT: &str = "app.user.missing_account.const";
const MISSING_TEAM_MEMBER: &str = "api.team.remove_user_from_team.missing.app_error";
const INVALID_BODY_PARAM: &str = "api.context.invalid_body_param.app_error";
/// Error ids with which an add says the user is a member already (a unique-key conflict on
/// the membership row): the add's purpose is met. It happens when an earlier add whose
/// client died (kill -9 mid-batch) is finished by the server after a rerun read the state.
const ALREADY_MEMBER: &[&str] = &[
    "app.channel.save_member.exists.app_error",
    "store.sql_channel.save_member.exists.app_error",
    "app.team.join_user_to_team.save_member.conflict.app_error",
    "store.sql_team.save_member.exists.app_error",
];

/// Whether a failed call says nothing about its own user: the server failed (5xx after the
/// retries) or could not be reached. The next user's call would only wait out the same
/// retries again (a database that went down mid-batch: minutes per user).
fn server_failed(e: &MmError) -> bool {
    e.status().is_none_or(|s| s >= 500)
}

/// Whether an add failed only because the user is a member already.
fn already_member(e: &MmError) -> bool {
    e.api_error()
        .is_some_and(|a| ALREADY_MEMBER.contains(&a.id.as_str()))
}

/// Error ids with which `POST /channels/{id}/members` refuses the whole call for a reason
/// that is not about one user (asking again per user would only repeat it).
const CHANNEL_LEVEL: &[&str] = &[
    "api.context.permissions.app_error",
    "api.context.session_expired.app_error",
    "app.channel.get.existing.app_error",
    "app.channel.get.find.app_error",
    "api.channel.add_user_to_channel.type.app_error",
    "api.channel.add_members.user_denied",
    "api.channel.add_members.error",
];

/// What a write did for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// The user is a member now (added, or was a member already: Mattermost does not say
    /// which).
    Added,
    Removed,
    /// The user was not a member (any more): nothing to remove.
    AlreadyAbsent,
    /// Channel scheme roles set: admin (`true`) or plain member (`false`).
    RoleSet {
        admin: bool,
    },
    /// This user's part failed; the rest of the call may have succeeded.
    Failed {
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(skip_serializing_if = "String::is_empty")]
        error_id: String,
        message: String,
    },
}

/// The outcome of a write for one user, for the caller to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserOutcome {
    pub user_id: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl UserOutcome {
    fn new(user_id: &str, outcome: Outcome) -> Self {
        UserOutcome {
            user_id: user_id.to_string(),
            outcome,
        }
    }

    fn failed(user_id: &str, e: &MmError) -> Self {
        Self::new(user_id, failed(e))
    }

    pub fn is_success(&self) -> bool {
        match self.outcome {
            Outcome::Added
            | Outcome::Removed
            | Outcome::AlreadyAbsent
            | Outcome::RoleSet { .. } => true,
            Outcome::Failed { .. } => false,
        }
    }

    /// What went wrong, in words, for a failed outcome.
    pub fn error(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Failed {
                status,
                error_id,
                message,
            } => {
                let mut s = String::new();
                if let Some(st) = status {
                    s.push_str(&format!("HTTP {st} "));
                }
                if !error_id.is_empty() {
                    s.push_str(&format!("{error_id}: "));
                }
                s.push_str(message);
                Some(s)
            }
            Outcome::Added
            | Outcome::Removed
            | Outcome::AlreadyAbsent
            | Outcome::RoleSet { .. } => None,
        }
    }
}

fn failed(e: &MmError) -> Outcome {
    match e.api_error() {
        Some(a) => Outcome::Failed {
            status: Some(a.status),
            error_id: a.id.clone(),
            message: a.message.clone(),
        },
        None => Outcome::Failed {
            status: e.status(),
            error_id: String::new(),
            message: e.to_string(),
        },
    }
}

fn ids(users: &[PlanMember]) -> Vec<String> {
    users.iter().map(|u| u.id.clone()).collect()
}

/// `POST /channels/{id}/members` answers one member for `user_id` and a list for `user_ids`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<wire::Member>),
    One(wire::Member),
}

/// Unique ids, first occurrence order kept.
fn unique(user_ids: &[String]) -> Vec<&String> {
    let mut seen = BTreeSet::new();
    user_ids.iter().filter(|u| seen.insert(*u)).collect()
}

/// Runs `chunk` over `user_ids` in chunks. A chunk that fails as a whole fails its users;
/// `Err` only when every chunk failed (nothing was done).
async fn chunked<'a, F, Fut>(
    user_ids: &'a [String],
    size: usize,
    mut chunk: F,
) -> Result<Vec<UserOutcome>, MmError>
where
    F: FnMut(Vec<&'a String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<UserOutcome>, MmError>>,
{
    let all = unique(user_ids);
    let mut out = Vec::with_capacity(all.len());
    let mut first_err = None;
    let mut any_ok = false;
    for part in all.chunks(size) {
        match chunk(part.to_vec()).await {
            Ok(o) => {
                any_ok = true;
                out.extend(o);
            }
            Err(e) => {
                out.extend(part.iter().map(|u| UserOutcome::failed(u, &e)));
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) if !any_ok => Err(e),
        _ => Ok(out),
    }
}

impl Client {
    /// `POST /teams/{id}/members/batch?graceful=true` in batches of 256; per-user errors
    /// from the graceful answer become [`Outcome::Failed`].
    pub async fn add_team_members(
        &self,
        team_id: &str,
        user_ids: &[String],
    ) -> Result<Vec<UserOutcome>, MmError> {
        let path = format!("/teams/{}/members/batch?graceful=true", seg(team_id));
        chunked(user_ids, TEAM_BATCH, |part| {
            let path = path.clone();
            async move {
                let body: Vec<wire::TeamMemberIn> = part
                    .iter()
                    .map(|u| wire::TeamMemberIn {
                        team_id,
                        user_id: u.as_str(),
                    })
                    .collect();
                let rows: Vec<wire::TeamMemberWithError> = self
                    .send_json(Method::POST, &path, &body, Retry::Idempotent)
                    .await?;
                let mut by_user: BTreeMap<String, Outcome> = BTreeMap::new();
                for r in rows {
                    let o = match (r.error, r.member) {
                        (Some(e), _) if ALREADY_MEMBER.contains(&e.id.as_str()) => Outcome::Added,
                        (Some(e), _) => Outcome::Failed {
                            status: (e.status_code > 0).then_some(e.status_code),
                            error_id: e.id,
                            message: e.message,
                        },
                        (None, Some(_)) => Outcome::Added,
                        (None, None) => Outcome::Failed {
                            status: None,
                            error_id: String::new(),
                            message: "the server answered neither a member nor an error".into(),
                        },
                    };
                    by_user.insert(r.user_id, o);
                }
                Ok(part
                    .iter()
                    .map(|u| {
                        let o = by_user.remove(u.as_str()).unwrap_or(Outcome::Failed {
                            status: None,
                            error_id: String::new(),
                            message: "the server's answer does not mention this user".into(),
                        });
                        UserOutcome::new(u, o)
                    })
                    .collect())
            }
        })
        .await
    }

    /// Adds one user to a channel with `{"user_id": …}`.
    async fn add_channel_member(&self, channel_id: &str, user_id: &str) -> Result<(), MmError> {
        let path = format!("/channels/{}/members", seg(channel_id));
        let body = wire::ChannelMemberIn { user_id };
        match self
            .send(Method::POST, &path, &body, Retry::Idempotent)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if already_member(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One call per user, in order. Once a call fails because of the server rather than its
    /// user ([`server_failed`]), the users left fail with that error without a call (their
    /// adds are retried by the next run).
    async fn add_channel_members_one_by_one(
        &self,
        channel_id: &str,
        part: &[&String],
    ) -> Vec<UserOutcome> {
        let mut out = Vec::with_capacity(part.len());
        let mut down: Option<MmError> = None;
        for u in part {
            if let Some(e) = &down {
                out.push(UserOutcome::failed(u, e));
                continue;
            }
            match self.add_channel_member(channel_id, u).await {
                Ok(()) => out.push(UserOutcome::new(u, Outcome::Added)),
                Err(e) => {
                    out.push(UserOutcome::failed(u, &e));
                    if server_failed(&e) {
                        down = Some(e);
                    }
                }
            }
        }
        out
    }

    /// `POST /channels/{id}/members` with `{"user_ids": […]}` in batches of 1000. Users the
    /// server leaves out of its answer are tried once more alone to learn why; a server too
    /// old for `user_ids` gets one call per user (remembered for later calls).
    pub async fn add_channel_members(
        &self,
        channel_id: &str,
        user_ids: &[String],
    ) -> Result<Vec<UserOutcome>, MmError> {
        let path = format!("/channels/{}/members", seg(channel_id));
        chunked(user_ids, CHANNEL_BATCH, |part| {
            let path = path.clone();
            async move {
                if !self.channel_batch_supported() || part.len() == 1 {
                    return match part.as_slice() {
                        [one] => {
                            let body = wire::ChannelMemberIn { user_id: one };
                            match self.send(Method::POST, &path, &body, Retry::Idempotent).await {
                                Ok(_) => Ok(vec![UserOutcome::new(one, Outcome::Added)]),
                                Err(e) if already_member(&e) => {
                                    Ok(vec![UserOutcome::new(one, Outcome::Added)])
                                }
                                Err(e) => Err(e),
                            }
                        }
                        _ => Ok(self.add_channel_members_one_by_one(channel_id, &part).await),
                    };
                }
                let list: Vec<String> = part.iter().map(|u| u.to_string()).collect();
                let body = wire::ChannelMembersIn { user_ids: &list };
                let answer = match self
                    .send(Method::POST, &path, &body, Retry::Idempotent)
                    .await
                {
                    Ok(a) => a,
                    Err(e) => {
                        let Some(api) = e.api_error() else {
                            return Err(e);
                        };
                        if api.status == 400 && api.id == INVALID_BODY_PARAM {
                            // Old servers only know `user_id` ("Invalid or missing user_id in
                            // request body"); current ones name `user_ids` in this message.
                            if !api.message.contains("user_ids") {
                                tracing::info!(
                                    "the server does not take user_ids on POST /channels/{{id}}/members; adding one user per call"
                                );
                                self.set_channel_batch_unsupported();
                            }
                            return Ok(self.add_channel_members_one_by_one(channel_id, &part).await);
                        }
                        if (400..500).contains(&api.status)
                            && api.status != 401
                            && !CHANNEL_LEVEL.contains(&api.id.as_str())
                        {
                            // Every user failed and the server returned the last error only
                            // (e.g. 403 for a deactivated account): ask per user to learn
                            // each reason.
                            return Ok(self.add_channel_members_one_by_one(channel_id, &part).await);
                        }
                        return Err(e);
                    }
                };
                let members: OneOrMany = decode(&Method::POST, &path, &answer)?;
                let present: BTreeSet<String> = match members {
                    OneOrMany::Many(v) => v.into_iter().map(|m| m.user_id).collect(),
                    OneOrMany::One(m) => [m.user_id].into(),
                };
                let (added, missing): (Vec<&String>, Vec<&String>) =
                    part.iter().partition(|u| present.contains(u.as_str()));
                let mut out: Vec<UserOutcome> = added
                    .iter()
                    .map(|u| UserOutcome::new(u, Outcome::Added))
                    .collect();
                out.extend(self.add_channel_members_one_by_one(channel_id, &missing).await);
                Ok(out)
            }
        })
        .await
    }

    /// `DELETE /channels/{id}/members/{user_id}`. A user who is not a member (or has no
    /// account) is [`Outcome::AlreadyAbsent`], not an error.
    pub async fn remove_channel_member(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<UserOutcome, MmError> {
        let path = format!("/channels/{}/members/{}", seg(channel_id), seg(user_id));
        match self
            .call(Method::DELETE, &path, None, Retry::Idempotent)
            .await
        {
            Ok(_) => Ok(UserOutcome::new(user_id, Outcome::Removed)),
            Err(e)
                if e.status() == Some(404)
                    && matches!(e.error_id(), Some(MISSING_CHANNEL_MEMBER | MISSING_ACCOUNT)) =>
            {
                Ok(UserOutcome::new(user_id, Outcome::AlreadyAbsent))
            }
            Err(e) => Err(e),
        }
    }

    /// `DELETE /teams/{id}/members/{user_id}`. A user who is not a member is
    /// [`Outcome::AlreadyAbsent`].
    pub async fn remove_team_member(
        &self,
        team_id: &str,
        user_id: &str,
    ) -> Result<UserOutcome, MmError> {
        let path = format!("/teams/{}/members/{}", seg(team_id), seg(user_id));
        match self
            .call(Method::DELETE, &path, None, Retry::Idempotent)
            .await
        {
            Ok(_) => Ok(UserOutcome::new(user_id, Outcome::Removed)),
            Err(e)
                if matches!(e.error_id(), Some(MISSING_TEAM_MEMBER | MISSING_ACCOUNT))
                    && matches!(e.status(), Some(400 | 404)) =>
            {
                Ok(UserOutcome::new(user_id, Outcome::AlreadyAbsent))
            }
            Err(e) => Err(e),
        }
    }

    /// `PUT /channels/{id}/members/{user_id}/schemeRoles` with
    /// `{"scheme_admin": admin, "scheme_user": true}`.
    pub async fn set_channel_admin(
        &self,
        channel_id: &str,
        user_id: &str,
        admin: bool,
    ) -> Result<UserOutcome, MmError> {
        let path = format!(
            "/channels/{}/members/{}/schemeRoles",
            seg(channel_id),
            seg(user_id)
        );
        let body = wire::SchemeRolesIn {
            scheme_admin: admin,
            scheme_user: true,
        };
        self.send(Method::PUT, &path, &body, Retry::Idempotent)
            .await?;
        Ok(UserOutcome::new(user_id, Outcome::RoleSet { admin }))
    }

    /// Executes one plan action. `Err` means the call failed as a whole (for every user of
    /// the action); `Ok` carries one outcome per user, some of which may be failures.
    /// Ledger-only actions make no call and return no outcome.
    pub async fn apply(&self, action: &Action) -> Result<Vec<UserOutcome>, MmError> {
        match action {
            Action::AddTeamMembers { team_id, users, .. } => {
                self.add_team_members(team_id, &ids(users)).await
            }
            Action::AddChannelMembers {
                channel_id, users, ..
            } => self.add_channel_members(channel_id, &ids(users)).await,
            Action::SetChannelAdmin {
                channel_id,
                user,
                admin,
                ..
            } => Ok(vec![
                self.set_channel_admin(channel_id, &user.id, *admin).await?,
            ]),
            Action::RemoveChannelMember {
                channel_id, user, ..
            } => Ok(vec![
                self.remove_channel_member(channel_id, &user.id).await?,
            ]),
            Action::RemoveTeamMember { team_id, user, .. } => {
                Ok(vec![self.remove_team_member(team_id, &user.id).await?])
            }
            Action::RecordPreexisting { .. }
            | Action::RecordDeparted { .. }
            | Action::RecordDemoted { .. } => Ok(Vec::new()),
        }
    }

    // ------------------------------------------------------------------ administration

    /// `POST /teams` (open team). The token's user becomes its first member and admin.
    pub async fn create_team(&self, name: &str, display_name: &str) -> Result<Team, MmError> {
        let body = wire::TeamIn {
            name,
            display_name,
            kind: "O",
        };
        let t: wire::Team = self
            .send_json(Method::POST, "/teams", &body, Retry::Unsafe)
            .await?;
        Ok(t.into())
    }

    /// `POST /channels`: an open (`private = false`) or private channel. The token's user
    /// becomes a member.
    pub async fn create_channel(
        &self,
        team_id: &str,
        name: &str,
        display_name: &str,
        private: bool,
    ) -> Result<Channel, MmError> {
        let body = wire::ChannelIn {
            team_id,
            name,
            display_name,
            kind: if private { "P" } else { "O" },
        };
        let c: wire::Channel = self
            .send_json(Method::POST, "/channels", &body, Retry::Unsafe)
            .await?;
        Ok(c.into())
    }

    /// `POST /channels/direct`: the direct-message channel between two accounts (the one
    /// that exists, or a new one; so a retry is safe). mattersync never links one: this is
    /// for tests that show it refuses to.
    pub async fn create_direct_channel(
        &self,
        user_a: &str,
        user_b: &str,
    ) -> Result<Channel, MmError> {
        let c: wire::Channel = self
            .send_json(
                Method::POST,
                "/channels/direct",
                &[user_a, user_b],
                Retry::Idempotent,
            )
            .await?;
        Ok(c.into())
    }

    /// `PUT /channels/{id}/patch`: renames a channel (its `name`, the handle in its URL, and
    /// its display name). The id stays.
    pub async fn rename_channel(
        &self,
        channel_id: &str,
        name: &str,
        display_name: &str,
    ) -> Result<Channel, MmError> {
        let path = format!("/channels/{}/patch", seg(channel_id));
        let body = wire::ChannelPatchIn { name, display_name };
        let c: wire::Channel = self
            .send_json(Method::PUT, &path, &body, Retry::Idempotent)
            .await?;
        Ok(c.into())
    }

    /// `PUT /teams/{id}/patch` with a new display name. Mattermost's API cannot change a
    /// team's `name` (the handle in its URL): the team patch has no such field.
    pub async fn set_team_display_name(
        &self,
        team_id: &str,
        display_name: &str,
    ) -> Result<Team, MmError> {
        let path = format!("/teams/{}/patch", seg(team_id));
        let body = wire::TeamPatchIn { display_name };
        let t: wire::Team = self
            .send_json(Method::PUT, &path, &body, Retry::Idempotent)
            .await?;
        Ok(t.into())
    }

    /// `DELETE /teams/{id}`: archives the team, or deletes it with everything in it when
    /// `permanent` (needs `ServiceSettings.EnableAPITeamDeletion`).
    pub async fn delete_team(&self, team_id: &str, permanent: bool) -> Result<(), MmError> {
        let mut path = format!("/teams/{}", seg(team_id));
        if permanent {
            path.push_str("?permanent=true");
        }
        self.call(Method::DELETE, &path, None, Retry::Idempotent)
            .await?;
        Ok(())
    }

    /// `DELETE /channels/{id}`: archives the channel (it stays readable with
    /// `include_deleted`).
    pub async fn archive_channel(&self, channel_id: &str) -> Result<(), MmError> {
        let path = format!("/channels/{}", seg(channel_id));
        self.call(Method::DELETE, &path, None, Retry::Idempotent)
            .await?;
        Ok(())
    }

    /// `POST /channels/{id}/restore`: unarchives a channel.
    pub async fn restore_channel(&self, channel_id: &str) -> Result<(), MmError> {
        let path = format!("/channels/{}/restore", seg(channel_id));
        self.call(Method::POST, &path, None, Retry::Idempotent)
            .await?;
        Ok(())
    }

    /// `POST /users`. The password is sent in the body only; it is never logged.
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> Result<MmUser, MmError> {
        let body = wire::UserIn {
            username,
            email,
            password,
        };
        let u: wire::User = self
            .send_json(Method::POST, "/users", &body, Retry::Unsafe)
            .await?;
        Ok(u.into())
    }

    /// `PUT /users/{id}/active`: deactivates (`delete_at > 0`) or reactivates an account.
    /// Reactivation counts against the server's user limit (250 active users on a server
    /// without a licence).
    pub async fn set_user_active(&self, user_id: &str, active: bool) -> Result<(), MmError> {
        let path = format!("/users/{}/active", seg(user_id));
        self.send(
            Method::PUT,
            &path,
            &wire::UserActiveIn { active },
            Retry::Idempotent,
        )
        .await?;
        Ok(())
    }

    /// `PUT /users/{id}/auth`: the account signs in with `auth_service` as `auth_data` (what
    /// an SSO sign-in would have set; for tests and migrations).
    pub async fn set_user_auth(
        &self,
        user_id: &str,
        auth_service: &str,
        auth_data: &str,
    ) -> Result<(), MmError> {
        let path = format!("/users/{}/auth", seg(user_id));
        self.send(
            Method::PUT,
            &path,
            &wire::UserAuthIn {
                auth_service,
                auth_data,
            },
            Retry::Idempotent,
        )
        .await?;
        Ok(())
    }

    /// `POST /bots` (needs `EnableBotAccountCreation`), returned as its user account.
    pub async fn create_bot(&self, username: &str, display_name: &str) -> Result<MmUser, MmError> {
        let body = wire::BotIn {
            username,
            display_name,
        };
        let b: wire::Bot = self
            .send_json(Method::POST, "/bots", &body, Retry::Unsafe)
            .await?;
        let mut users = self.users_by_ids(std::slice::from_ref(&b.user_id)).await?;
        users.pop().ok_or_else(|| MmError::Inconsistent {
            what: "POST /api/v4/bots".into(),
            detail: format!("bot user {} was created but cannot be read back", b.user_id),
        })
    }
}
