//! In-memory implementations of the engine's two seams that behave like the real servers
//! where a run can tell: a directory that can be down, a Mattermost that answers 429 until
//! the client would give up, fails some users of a batch, and can lose the answer to a write
//! it made. For engine tests only; every feature is proven on the real servers.

#![allow(dead_code)]

use anyhow::{bail, Result};
use mattersync_core::{
    Action, ChannelInfo, ChannelMember, DirGroup, DirUser, Directory, Mattermost, MmChannel,
    MmTeam, MmUser, ScopeKind, TeamInfo,
};
use mattersync_engine::{DirectorySource, MattermostApi};
use mattersync_ledger::UserOutcome;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A directory whose snapshot can be changed between reads, or be down.
#[derive(Default)]
pub struct MemDirectory {
    pub dir: Directory,
    pub down: bool,
    pub reads: u64,
}

impl MemDirectory {
    pub fn group(&mut self, cn: &str, members: &[&str]) {
        for m in members {
            self.dir.users.insert(
                m.to_string(),
                DirUser {
                    uid: m.to_string(),
                    ..Default::default()
                },
            );
        }
        self.dir.groups.insert(
            cn.to_string(),
            DirGroup {
                id: format!("id-{cn}"),
                cn: cn.to_string(),
                member_users: members.iter().map(|m| m.to_string()).collect(),
                ..Default::default()
            },
        );
    }
}

impl DirectorySource for MemDirectory {
    async fn snapshot(&mut self) -> Result<Directory> {
        self.reads += 1;
        if self.down {
            bail!("directory: cannot connect (connection refused); nothing was changed");
        }
        Ok(self.dir.clone())
    }
}

/// What the in-memory Mattermost does wrong, on purpose.
#[derive(Default)]
pub struct Faults {
    /// Reads answer 429 this many more times (the real client gives up after its retries).
    pub rate_limited_reads: u32,
    /// Users whose part of any write fails (HTTP 403).
    pub failing_users: BTreeSet<String>,
    /// The next write is made, then its answer is lost (the connection drops).
    pub lose_next_answer: bool,
    /// The server is down: every call fails to connect, as after the real client's retries.
    pub down: bool,
}

#[derive(Default)]
pub struct MemMattermost {
    pub world: Mutex<Mattermost>,
    pub faults: Mutex<Faults>,
    pub calls: AtomicU64,
    pub writes: AtomicU64,
}

impl MemMattermost {
    /// One team `tm` with channel `tm/c`, the token's account `admin` and accounts for `users`.
    pub fn new(users: &[&str]) -> MemMattermost {
        let mut m = Mattermost::default();
        for u in users.iter().chain(["admin"].iter()) {
            m.users.insert(
                format!("id-{u}"),
                MmUser {
                    id: format!("id-{u}"),
                    username: u.to_string(),
                    ..Default::default()
                },
            );
        }
        m.teams.insert(
            "tm".into(),
            MmTeam {
                id: "team-t".into(),
                name: "tm".into(),
                members: [("id-admin".to_string(), ChannelMember::default())].into(),
            },
        );
        m.channels.insert(
            "tm/c".into(),
            MmChannel {
                id: "chan-c".into(),
                team: "tm".into(),
                name: "c".into(),
                members: [("id-admin".to_string(), ChannelMember::default())].into(),
                ..Default::default()
            },
        );
        MemMattermost {
            world: Mutex::new(m),
            ..Default::default()
        }
    }

    /// Usernames in `tm/c`, the token's account left out.
    pub fn channel_members(&self) -> BTreeSet<String> {
        let w = self.world.lock().expect("world");
        w.channels
            .get("tm/c")
            .map(|c| {
                c.members
                    .keys()
                    .filter_map(|id| w.users.get(id).map(|u| u.username.clone()))
                    .filter(|n| n != "admin")
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn join_channel(&self, user: &str) {
        let mut w = self.world.lock().expect("world");
        let id = format!("id-{user}");
        if let Some(t) = w.teams.get_mut("tm") {
            t.members.insert(id.clone(), ChannelMember::default());
        }
        if let Some(c) = w.channels.get_mut("tm/c") {
            c.members.insert(id, ChannelMember::default());
        }
    }

    pub fn leave_channel(&self, user: &str) {
        let mut w = self.world.lock().expect("world");
        if let Some(c) = w.channels.get_mut("tm/c") {
            c.members.remove(&format!("id-{user}"));
        }
    }

    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Counts a call; fails it when the server is [`Faults::down`].
    fn call(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.faults.lock().expect("faults").down {
            bail!(
                "mattermost GET /api/v4/…: cannot connect (after 6 attempts): Connection refused"
            );
        }
        Ok(())
    }
}

impl MattermostApi for MemMattermost {
    async fn me(&self) -> Result<MmUser> {
        self.call()?;
        let w = self.world.lock().expect("world");
        Ok(w.users.get("id-admin").cloned().unwrap_or_default())
    }

    async fn read_state(
        &self,
        teams: &[String],
        channels: &[(String, String)],
        _usernames: &[String],
    ) -> Result<Mattermost> {
        self.call()?;
        {
            let mut f = self.faults.lock().expect("faults");
            if f.rate_limited_reads > 0 {
                f.rate_limited_reads -= 1;
                bail!("mattermost GET /api/v4/teams/name/t: HTTP 429 Too Many Requests (after 4 attempts)");
            }
        }
        let w = self.world.lock().expect("world");
        let mut out = Mattermost {
            users: w.users.clone(),
            ..Default::default()
        };
        for t in teams {
            if let Some(team) = w.teams.get(t) {
                out.teams.insert(t.clone(), team.clone());
            }
        }
        for (t, c) in channels {
            let path = format!("{t}/{c}");
            if let Some(ch) = w.channels.get(&path) {
                out.channels.insert(path, ch.clone());
            }
        }
        Ok(out)
    }

    async fn all_users(&self) -> Result<Vec<MmUser>> {
        self.call()?;
        Ok(self
            .world
            .lock()
            .expect("world")
            .users
            .values()
            .cloned()
            .collect())
    }

    async fn users_by_usernames(&self, usernames: &[String]) -> Result<Vec<MmUser>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let w = self.world.lock().expect("world");
        Ok(w.users
            .values()
            .filter(|u| {
                usernames
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&u.username))
            })
            .cloned()
            .collect())
    }

    async fn members_of(
        &self,
        kind: ScopeKind,
        id: &str,
        user_ids: &[String],
    ) -> Result<BTreeMap<String, ChannelMember>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let w = self.world.lock().expect("world");
        let members = match kind {
            ScopeKind::Team => w.teams.values().find(|t| t.id == id).map(|t| &t.members),
            ScopeKind::Channel => w.channels.values().find(|c| c.id == id).map(|c| &c.members),
        };
        Ok(members
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| user_ids.contains(k))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn apply(&self, action: &Action) -> Result<Vec<UserOutcome>> {
        self.call()?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        let (failing, lose) = {
            let mut f = self.faults.lock().expect("faults");
            (
                f.failing_users.clone(),
                std::mem::take(&mut f.lose_next_answer),
            )
        };
        let mut w = self.world.lock().expect("world");
        let (_, scope_id, _) = action.scope();
        let mut outs = Vec::new();
        for (id, _, _) in action.subjects() {
            if failing.contains(id) {
                outs.push(UserOutcome {
                    user_id: id.to_string(),
                    result: Err("HTTP 403: You do not have the appropriate permissions".into()),
                });
                continue;
            }
            let members = match action {
                Action::AddTeamMembers { .. } | Action::RemoveTeamMember { .. } => w
                    .teams
                    .values_mut()
                    .find(|t| t.id == scope_id)
                    .map(|t| &mut t.members),
                Action::AddChannelMembers { .. }
                | Action::RemoveChannelMember { .. }
                | Action::SetChannelAdmin { .. } => w
                    .channels
                    .values_mut()
                    .find(|c| c.id == scope_id)
                    .map(|c| &mut c.members),
                Action::RecordPreexisting { .. }
                | Action::RecordDeparted { .. }
                | Action::RecordDemoted { .. } => None,
            };
            let Some(members) = members else {
                outs.push(UserOutcome {
                    user_id: id.to_string(),
                    result: Err("HTTP 404: not found".into()),
                });
                continue;
            };
            match action {
                Action::AddTeamMembers { .. } | Action::AddChannelMembers { .. } => {
                    members.insert(id.to_string(), ChannelMember::default());
                }
                Action::RemoveTeamMember { .. } | Action::RemoveChannelMember { .. } => {
                    members.remove(id);
                }
                Action::SetChannelAdmin { admin, .. } => {
                    members.insert(
                        id.to_string(),
                        ChannelMember {
                            scheme_admin: *admin,
                        },
                    );
                }
                Action::RecordPreexisting { .. }
                | Action::RecordDeparted { .. }
                | Action::RecordDemoted { .. } => {}
            }
            outs.push(UserOutcome {
                user_id: id.to_string(),
                result: Ok(()),
            });
        }
        if let Action::RemoveTeamMember { team, user, .. } = action {
            // Leaving a team means leaving its channels, as in Mattermost.
            for c in w.channels.values_mut().filter(|c| c.team == *team) {
                c.members.remove(&user.id);
            }
        }
        if lose {
            bail!("mattermost POST /api/v4/channels/{scope_id}/members: connection reset (after 4 attempts)");
        }
        Ok(outs)
    }

    fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    async fn team_by_id(&self, id: &str) -> Result<Option<TeamInfo>> {
        self.call()?;
        let w = self.world.lock().expect("world");
        Ok(w.teams.values().find(|t| t.id == id).map(team_info))
    }

    async fn team_by_name(&self, name: &str) -> Result<Option<TeamInfo>> {
        self.call()?;
        let w = self.world.lock().expect("world");
        Ok(w.teams.get(name).map(team_info))
    }

    async fn all_channels(&self) -> Result<Option<Vec<ChannelInfo>>> {
        self.call()?;
        let w = self.world.lock().expect("world");
        Ok(Some(
            w.channels.values().map(|c| channel_info(&w, c)).collect(),
        ))
    }

    async fn channel_by_id(&self, id: &str) -> Result<Option<ChannelInfo>> {
        self.call()?;
        let w = self.world.lock().expect("world");
        Ok(w.channels
            .values()
            .find(|c| c.id == id)
            .map(|c| channel_info(&w, c)))
    }

    async fn channel_by_name(&self, team: &str, name: &str) -> Result<Option<ChannelInfo>> {
        self.call()?;
        let w = self.world.lock().expect("world");
        Ok(w.channels
            .get(&format!("{team}/{name}"))
            .map(|c| channel_info(&w, c)))
    }

    async fn user_team_channels(&self, user_id: &str, team_id: &str) -> Result<Vec<ChannelInfo>> {
        self.call()?;
        Ok(self.user_channels_in(user_id, team_id))
    }
}

impl MemMattermost {
    fn user_channels_in(&self, user_id: &str, team_id: &str) -> Vec<ChannelInfo> {
        let w = self.world.lock().expect("world");
        w.channels
            .values()
            .filter(|c| c.members.contains_key(user_id))
            .map(|c| channel_info(&w, c))
            .filter(|c| c.team_id == team_id)
            .collect()
    }
}

fn team_info(t: &MmTeam) -> TeamInfo {
    TeamInfo {
        id: t.id.clone(),
        name: t.name.clone(),
        archived: false,
    }
}

fn channel_info(w: &Mattermost, c: &MmChannel) -> ChannelInfo {
    ChannelInfo {
        id: c.id.clone(),
        team_id: w
            .teams
            .get(&c.team)
            .map(|t| t.id.clone())
            .unwrap_or_default(),
        name: c.name.clone(),
        direct: false,
        archived: c.archived,
    }
}

impl MemMattermost {
    /// Renames channel `tm/c` to `tm/<to>` (the id stays), as any channel member may.
    pub fn rename_channel(&self, to: &str) {
        let mut w = self.world.lock().expect("world");
        if let Some(mut c) = w.channels.remove("tm/c") {
            c.name = to.to_string();
            w.channels.insert(format!("tm/{to}"), c);
        }
    }

    /// A new channel that takes the name `tm/<name>`.
    pub fn new_channel(&self, name: &str, id: &str) {
        let mut w = self.world.lock().expect("world");
        w.channels.insert(
            format!("tm/{name}"),
            MmChannel {
                id: id.to_string(),
                team: "tm".into(),
                name: name.to_string(),
                members: [("id-admin".to_string(), ChannelMember::default())].into(),
                ..Default::default()
            },
        );
    }
}

impl MemMattermost {
    /// Archives channel `t/<name>` (it stays readable, by id and by name).
    pub fn archive_channel(&self, name: &str) {
        let mut w = self.world.lock().expect("world");
        if let Some(c) = w.channels.get_mut(&format!("tm/{name}")) {
            c.archived = true;
        }
    }
}
