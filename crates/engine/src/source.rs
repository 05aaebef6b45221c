//! The two seams of a run: reading the directory snapshot, and Mattermost's reads and
//! writes. The real adapters implement them ([`Ldap`] over `mattersync-directory`,
//! `mattersync_mattermost::Client`); in-memory ones implement them for engine tests.

use anyhow::{Context, Result};
use mattersync_core::{
    Action, ChannelInfo, ChannelMember, Directory, Mattermost, MmUser, ScopeKind, TeamInfo,
};
use mattersync_directory::{DirModel, LdapConfig, LdapDirectory, Refreshed};
use mattersync_ledger::UserOutcome;
use std::collections::BTreeMap;
use std::future::Future;

/// Reads the whole directory view, or fails: never part of it.
pub trait DirectorySource: Send {
    fn snapshot(&mut self) -> impl Future<Output = Result<Directory>> + Send;
}

/// What a run asks of Mattermost.
pub trait MattermostApi: Send + Sync {
    /// The token's own account.
    fn me(&self) -> impl Future<Output = Result<MmUser>> + Send;
    /// The named teams and channels with their members, and the accounts of `usernames`
    /// (and of every member read). A team or channel that does not exist is left out.
    fn read_state(
        &self,
        teams: &[String],
        channels: &[(String, String)],
        usernames: &[String],
    ) -> impl Future<Output = Result<Mattermost>> + Send;
    /// Every account (for matching by e-mail or auth data).
    fn all_users(&self) -> impl Future<Output = Result<Vec<MmUser>>> + Send;
    /// The accounts of these usernames; unknown ones are left out.
    fn users_by_usernames(
        &self,
        usernames: &[String],
    ) -> impl Future<Output = Result<Vec<MmUser>>> + Send;
    /// Which of `user_ids` are members of the team or channel `id` now, with their roles.
    fn members_of(
        &self,
        kind: ScopeKind,
        id: &str,
        user_ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, ChannelMember>>> + Send;
    /// Executes one action; per-user outcomes (`Err` in words). An `Err` of the whole call
    /// means no user's outcome is known.
    fn apply(&self, action: &Action) -> impl Future<Output = Result<Vec<UserOutcome>>> + Send;
    /// API calls made so far (for reports).
    fn api_calls(&self) -> u64;
    /// A team by id or by name; `None` when there is none.
    fn team_by_id(&self, id: &str) -> impl Future<Output = Result<Option<TeamInfo>>> + Send;
    fn team_by_name(&self, name: &str) -> impl Future<Output = Result<Option<TeamInfo>>> + Send;
    /// Every team's public and private channels, archived ones included; `None` when the
    /// token may not list them all.
    fn all_channels(&self) -> impl Future<Output = Result<Option<Vec<ChannelInfo>>>> + Send;
    /// A channel by id, or by team and channel name; `None` when there is none.
    fn channel_by_id(&self, id: &str) -> impl Future<Output = Result<Option<ChannelInfo>>> + Send;
    fn channel_by_name(
        &self,
        team: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ChannelInfo>>> + Send;
    /// The team's channels a user is in (which leaving the team takes with it).
    fn user_team_channels(
        &self,
        user_id: &str,
        team_id: &str,
    ) -> impl Future<Output = Result<Vec<ChannelInfo>>> + Send;
}

fn team_info(t: mattersync_mattermost::Team) -> TeamInfo {
    TeamInfo {
        id: t.id,
        name: t.name,
        archived: t.archived,
    }
}

fn channel_info(c: mattersync_mattermost::Channel) -> ChannelInfo {
    ChannelInfo {
        id: c.id,
        team_id: c.team_id,
        name: c.name,
        direct: c.direct,
        archived: c.archived,
    }
}

impl MattermostApi for mattersync_mattermost::Client {
    async fn me(&self) -> Result<MmUser> {
        Ok(mattersync_mattermost::Client::me(self).await?)
    }

    async fn read_state(
        &self,
        teams: &[String],
        channels: &[(String, String)],
        usernames: &[String],
    ) -> Result<Mattermost> {
        Ok(mattersync_mattermost::Client::read_state(self, teams, channels, usernames).await?)
    }

    async fn all_users(&self) -> Result<Vec<MmUser>> {
        Ok(mattersync_mattermost::Client::all_users(self).await?)
    }

    async fn users_by_usernames(&self, usernames: &[String]) -> Result<Vec<MmUser>> {
        Ok(mattersync_mattermost::Client::users_by_usernames(self, usernames).await?)
    }

    async fn members_of(
        &self,
        kind: ScopeKind,
        id: &str,
        user_ids: &[String],
    ) -> Result<BTreeMap<String, ChannelMember>> {
        Ok(match kind {
            ScopeKind::Team => self.team_members_of(id, user_ids).await?,
            ScopeKind::Channel => self.channel_members_of(id, user_ids).await?,
        })
    }

    async fn apply(&self, action: &Action) -> Result<Vec<UserOutcome>> {
        use mattersync_mattermost::Outcome;
        let outs = mattersync_mattermost::Client::apply(self, action).await?;
        Ok(outs
            .into_iter()
            .map(|o| UserOutcome {
                result: match o.outcome {
                    Outcome::Failed {
                        status, message, ..
                    } => Err(match status {
                        Some(s) => format!("HTTP {s}: {message}"),
                        None => message,
                    }),
                    Outcome::Added
                    | Outcome::Removed
                    | Outcome::AlreadyAbsent
                    | Outcome::RoleSet { .. } => Ok(()),
                },
                user_id: o.user_id,
            })
            .collect())
    }

    fn api_calls(&self) -> u64 {
        self.stats().calls
    }

    async fn team_by_id(&self, id: &str) -> Result<Option<TeamInfo>> {
        Ok(mattersync_mattermost::Client::team_by_id(self, id)
            .await?
            .map(team_info))
    }

    async fn team_by_name(&self, name: &str) -> Result<Option<TeamInfo>> {
        Ok(mattersync_mattermost::Client::team_by_name(self, name)
            .await?
            .map(team_info))
    }

    async fn all_channels(&self) -> Result<Option<Vec<ChannelInfo>>> {
        Ok(mattersync_mattermost::Client::all_channels(self)
            .await?
            .map(|cs| cs.into_iter().map(channel_info).collect()))
    }

    async fn channel_by_id(&self, id: &str) -> Result<Option<ChannelInfo>> {
        Ok(mattersync_mattermost::Client::channel_by_id(self, id)
            .await?
            .map(channel_info))
    }

    async fn channel_by_name(&self, team: &str, name: &str) -> Result<Option<ChannelInfo>> {
        Ok(
            mattersync_mattermost::Client::channel_by_name(self, team, name)
                .await?
                .map(channel_info),
        )
    }

    async fn user_team_channels(&self, user_id: &str, team_id: &str) -> Result<Vec<ChannelInfo>> {
        Ok(
            mattersync_mattermost::Client::user_team_channels(self, user_id, team_id)
                .await?
                .into_iter()
                .map(channel_info)
                .collect(),
        )
    }
}

/// The directory over LDAP, keeping its connection between reads (a TLS handshake per
/// change would be most of a change's latency); on any failure it connects once more, and an
/// error from the new connection is the read's error (fail closed).
pub struct Ldap {
    cfg: LdapConfig,
    conn: Option<LdapDirectory>,
    reads: u64,
}

impl Ldap {
    pub fn new(cfg: LdapConfig) -> Ldap {
        Ldap {
            cfg,
            conn: None,
            reads: 0,
        }
    }

    /// Snapshots read so far (each a full directory read).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Drops the kept connection.
    pub async fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            c.unbind().await;
        }
    }
}

impl Ldap {
    /// A full read kept as a model (`serve`), over the kept connection or, when that fails,
    /// a new one.
    pub async fn read_model(&mut self) -> Result<DirModel> {
        self.reads += 1;
        if let Some(mut conn) = self.conn.take() {
            match conn.read_model().await {
                Ok(m) => {
                    self.conn = Some(conn);
                    return Ok(m);
                }
                Err(e) => tracing::debug!(
                    error = %e,
                    "the kept directory connection failed; connecting again"
                ),
            }
        }
        let mut conn = LdapDirectory::connect(&self.cfg)
            .await
            .context("directory: cannot connect; nothing was changed")?;
        let m = conn.read_model().await.context(
            "directory: read failed; the run stopped before planning, nothing was changed",
        )?;
        self.conn = Some(conn);
        Ok(m)
    }

    /// Reads the entries `changed` names again into `model` (see
    /// [`LdapDirectory::refresh_model`]); on an error the model must be dropped.
    pub async fn refresh_model(
        &mut self,
        model: &mut DirModel,
        changed: &[String],
    ) -> Result<Refreshed> {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.conn.insert(
                LdapDirectory::connect(&self.cfg)
                    .await
                    .context("directory: cannot connect; nothing was changed")?,
            ),
        };
        match conn.refresh_model(model, changed).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.conn = None;
                Err(anyhow::Error::new(e)
                    .context("directory: reading the changed entries failed; nothing was changed"))
            }
        }
    }
}

impl DirectorySource for Ldap {
    async fn snapshot(&mut self) -> Result<Directory> {
        Ok(self.read_model().await?.into_directory())
    }
}
