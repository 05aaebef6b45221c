//! What the token's account may do, as Mattermost itself decides it: the roles the account
//! holds (system, team member, channel member, the scheme roles included) and the
//! permissions those roles grant (`POST /roles/names`); and the server's user limits
//! (`GET /limits/server`). For `mattersync check`: a permission missing here is a 403 later.

use crate::client::{seg, Client, Retry};
use crate::error::MmError;
use crate::wire::{MemberRoles, Role};
use reqwest::Method;
use serde::Serialize;
use std::collections::BTreeSet;

/// What an unlicensed (or seat-enforced) server allows (`model.ServerLimits`). The counts
/// are 0 for an account that is not a system admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServerLimits {
    /// Soft limit (a banner past it); 0: none.
    pub max_users: i64,
    /// New accounts are refused at this many active users; 0: none.
    pub max_users_hard: i64,
    /// Active (not deactivated) accounts, bots included.
    pub active_users: i64,
}

/// The role names a membership carries: its explicit `roles` plus the scheme roles its
/// flags stand for (`team_user` for `scheme_user` on a team, and so on).
fn member_role_names(m: &MemberRoles, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = m.roles.split_whitespace().map(String::from).collect();
    for (flag, role) in [
        (m.scheme_guest, "guest"),
        (m.scheme_user, "user"),
        (m.scheme_admin, "admin"),
    ] {
        if flag {
            names.push(format!("{prefix}_{role}"));
        }
    }
    names.sort();
    names.dedup();
    names
}

impl Client {
    /// The system roles of an account (`GET /users/{id}`), e.g. `system_user system_admin`.
    pub async fn user_roles(&self, user_id: &str) -> Result<Vec<String>, MmError> {
        let path = format!("/users/{}", seg(user_id));
        let u: crate::wire::UserRoles = self.get_json(&path).await?;
        Ok(u.roles.split_whitespace().map(String::from).collect())
    }

    /// The roles of `user_id` in a team (`GET /teams/{team}/members/{user}`); `None` when
    /// the account is not a member (or left).
    pub async fn team_member_roles(
        &self,
        team_id: &str,
        user_id: &str,
    ) -> Result<Option<Vec<String>>, MmError> {
        let path = format!("/teams/{}/members/{}", seg(team_id), seg(user_id));
        match self.get_json::<MemberRoles>(&path).await {
            Ok(m) if m.delete_at == 0 => Ok(Some(member_role_names(&m, "team"))),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The roles of `user_id` in a channel (`GET /channels/{channel}/members/{user}`);
    /// `None` when the account is not a member, or may not see the channel (403: a private
    /// channel it is not in).
    pub async fn channel_member_roles(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<Vec<String>>, MmError> {
        let path = format!("/channels/{}/members/{}", seg(channel_id), seg(user_id));
        match self.get_json::<MemberRoles>(&path).await {
            Ok(m) => Ok(Some(member_role_names(&m, "channel"))),
            Err(e) if e.is_not_found() || e.status() == Some(403) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every permission the named roles grant (`POST /roles/names`), together.
    pub async fn role_permissions(&self, names: &[String]) -> Result<BTreeSet<String>, MmError> {
        if names.is_empty() {
            return Ok(BTreeSet::new());
        }
        let roles: Vec<Role> = self
            .send_json(Method::POST, "/roles/names", names, Retry::Idempotent)
            .await?;
        tracing::debug!(roles = ?roles.iter().map(|r| &r.name).collect::<Vec<_>>(), "roles read");
        Ok(roles.into_iter().flat_map(|r| r.permissions).collect())
    }

    /// `GET /limits/server`; `None` on a server without the endpoint (before 10.x).
    pub async fn server_limits(&self) -> Result<Option<ServerLimits>, MmError> {
        match self
            .get_json::<crate::wire::ServerLimits>("/limits/server")
            .await
        {
            Ok(l) => Ok(Some(ServerLimits {
                max_users: l.max_users,
                max_users_hard: l.max_users_hard,
                active_users: l.active_users,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_flags_become_role_names() {
        let m: MemberRoles = serde_json::from_str(
            r#"{"roles":"custom_role","scheme_user":true,"scheme_admin":true,"delete_at":0}"#,
        )
        .expect("member");
        assert_eq!(
            member_role_names(&m, "team"),
            ["custom_role", "team_admin", "team_user"]
        );
        let m: MemberRoles =
            serde_json::from_str(r#"{"roles":"","scheme_user":true}"#).expect("member");
        assert_eq!(member_role_names(&m, "channel"), ["channel_user"]);
    }

    #[test]
    fn limits_decode_from_the_servers_names() {
        let l: crate::wire::ServerLimits = serde_json::from_str(
            r#"{"maxUsersLimit":200,"maxUsersHardLimit":250,"activeUserCount":17,"postHistoryLimit":0}"#,
        )
        .expect("limits");
        assert_eq!(
            (l.max_users, l.max_users_hard, l.active_users),
            (200, 250, 17)
        );
    }
}
