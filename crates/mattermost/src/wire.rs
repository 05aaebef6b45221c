//! Mattermost's JSON, as far as mattersync reads and writes it. Private to this crate:
//! nothing outside it knows these shapes. Unknown fields are ignored; fields a handler needs
//! are required, so a malformed answer is a decode error rather than a silent default.

use serde::{Deserialize, Serialize};

/// `model.AppError` as the server serialises it.
#[derive(Debug, Deserialize)]
pub(crate) struct AppError {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub status_code: u16,
}

/// `model.User` (the fields we use).
#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub auth_service: String,
    #[serde(default)]
    pub auth_data: Option<String>,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub delete_at: i64,
}

/// Only the roles of `GET /users/{id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct UserRoles {
    #[serde(default)]
    pub roles: String,
}

impl From<User> for mattersync_core::MmUser {
    fn from(u: User) -> Self {
        mattersync_core::MmUser {
            id: u.id,
            username: u.username,
            email: u.email,
            auth_service: u.auth_service,
            auth_data: u.auth_data.unwrap_or_default(),
            is_bot: u.is_bot,
            inactive: u.delete_at > 0,
        }
    }
}

/// `model.Team`.
#[derive(Debug, Deserialize)]
pub(crate) struct Team {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub delete_at: i64,
}

/// `model.Channel`.
#[derive(Debug, Deserialize)]
pub(crate) struct Channel {
    pub id: String,
    #[serde(default)]
    pub team_id: String,
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_at: i64,
}

/// `GET /channels?include_total_count=true`: one page of channels and how many there are.
#[derive(Debug, Deserialize)]
pub(crate) struct ChannelsWithCount {
    #[serde(default)]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub total_count: i64,
}

/// `model.TeamMember` / `model.ChannelMember` (the fields both share and we use).
#[derive(Debug, Deserialize)]
pub(crate) struct Member {
    pub user_id: String,
    #[serde(default)]
    pub scheme_admin: bool,
    /// Team members only: `> 0` for a member who left (listings exclude them already).
    #[serde(default)]
    pub delete_at: i64,
}

/// `model.TeamMemberWithError`, the answer of `POST /teams/{id}/members/batch?graceful=true`.
#[derive(Debug, Deserialize)]
pub(crate) struct TeamMemberWithError {
    pub user_id: String,
    #[serde(default)]
    pub member: Option<Member>,
    #[serde(default)]
    pub error: Option<AppError>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TeamMemberIn<'a> {
    pub team_id: &'a str,
    pub user_id: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChannelMembersIn<'a> {
    pub user_ids: &'a [String],
}

#[derive(Debug, Serialize)]
pub(crate) struct ChannelMemberIn<'a> {
    pub user_id: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct SchemeRolesIn {
    pub scheme_admin: bool,
    pub scheme_user: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct TeamIn<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChannelIn<'a> {
    pub team_id: &'a str,
    pub name: &'a str,
    pub display_name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

/// `PUT /channels/{id}/patch`: only the fields sent are changed.
#[derive(Debug, Serialize)]
pub(crate) struct ChannelPatchIn<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
}

/// `PUT /teams/{id}/patch`. A team's `name` (its URL) is not patchable.
#[derive(Debug, Serialize)]
pub(crate) struct TeamPatchIn<'a> {
    pub display_name: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct UserIn<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct BotIn<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
}

/// `model.Bot` (the field we use).
#[derive(Debug, Deserialize)]
pub(crate) struct Bot {
    pub user_id: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct UserAuthIn<'a> {
    pub auth_service: &'a str,
    pub auth_data: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct UserActiveIn {
    pub active: bool,
}

/// `model.TeamMember` / `model.ChannelMember`, only the role fields.
#[derive(Debug, Deserialize)]
pub(crate) struct MemberRoles {
    #[serde(default)]
    pub roles: String,
    #[serde(default)]
    pub scheme_guest: bool,
    #[serde(default)]
    pub scheme_user: bool,
    #[serde(default)]
    pub scheme_admin: bool,
    #[serde(default)]
    pub delete_at: i64,
}

/// `model.Role`, only its name and permissions.
#[derive(Debug, Deserialize)]
pub(crate) struct Role {
    pub name: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `model.ServerLimits` (`GET /limits/server`).
#[derive(Debug, Deserialize)]
pub(crate) struct ServerLimits {
    #[serde(rename = "maxUsersLimit", default)]
    pub max_users: i64,
    #[serde(rename = "maxUsersHardLimit", default)]
    pub max_users_hard: i64,
    #[serde(rename = "activeUserCount", default)]
    pub active_users: i64,
}
