//! Mattermost as `serve` keeps it between cycles. Pure: what a write that succeeded did to
//! the kept state, the part of it a few links need, and where two readings differ.
//!
//! The kept state is read whole by every full reconcile and kept true in between by the
//! service's own writes ([`Mattermost::record_write`]); what others change in Mattermost
//! meanwhile it cannot know, so a change cycle reads the memberships of the users the change
//! is about afresh before planning (the engine's `gather_kept`).

use crate::model::{ChannelMember, Mattermost, MmChannel};
use crate::plan::Action;
use crate::policy::{Link, Target};
use std::collections::{BTreeMap, BTreeSet};

impl Mattermost {
    /// What `action` did in Mattermost for the users in `ok` (those whose write succeeded):
    /// members added or removed, roles set; leaving a team leaves its channels too.
    /// Ledger-only actions change nothing.
    pub fn record_write(&mut self, action: &Action, ok: &BTreeSet<&str>) {
        let (_, scope_id, _) = action.scope();
        match action {
            Action::AddTeamMembers { .. } => {
                if let Some(t) = self.teams.values_mut().find(|t| t.id == scope_id) {
                    for id in ok {
                        t.members.entry(id.to_string()).or_default();
                    }
                }
            }
            Action::RemoveTeamMember { team, user, .. } => {
                if !ok.contains(user.id.as_str()) {
                    return;
                }
                if let Some(t) = self.teams.get_mut(team) {
                    t.members.remove(&user.id);
                }
                for c in self.channels.values_mut().filter(|c| c.team == *team) {
                    c.members.remove(&user.id);
                }
            }
            Action::AddChannelMembers { .. } => {
                if let Some(c) = self.channel_by_id(scope_id) {
                    for id in ok {
                        c.members.entry(id.to_string()).or_default();
                    }
                }
            }
            Action::RemoveChannelMember { user, .. } => {
                if ok.contains(user.id.as_str()) {
                    if let Some(c) = self.channel_by_id(scope_id) {
                        c.members.remove(&user.id);
                    }
                }
            }
            Action::SetChannelAdmin { user, admin, .. } => {
                if ok.contains(user.id.as_str()) {
                    if let Some(m) = self
                        .channel_by_id(scope_id)
                        .and_then(|c| c.members.get_mut(&user.id))
                    {
                        m.scheme_admin = *admin;
                    }
                }
            }
            Action::RecordPreexisting { .. }
            | Action::RecordDeparted { .. }
            | Action::RecordDemoted { .. } => {}
        }
    }

    fn channel_by_id(&mut self, id: &str) -> Option<&mut MmChannel> {
        self.channels.values_mut().find(|c| c.id == id)
    }

    /// The part of a kept state that `links` need: their teams (and the teams of their
    /// channels) and channels, without accounts (the caller picks those). Also what the kept
    /// state lacks: team names and `(team, channel)` pairs to read from Mattermost.
    pub fn part_for(&self, links: &[Link]) -> (Mattermost, Lacking) {
        let mut part = Mattermost::default();
        let mut lacking = Lacking::default();
        for l in links {
            let team = l.target.team();
            match self.teams.get(team) {
                Some(t) => {
                    part.teams
                        .entry(team.to_string())
                        .or_insert_with(|| t.clone());
                }
                None => {
                    lacking.teams.insert(team.to_string());
                }
            }
            if let Target::Channel { team, channel } = &l.target {
                let path = format!("{team}/{channel}");
                match self.channels.get(&path) {
                    Some(c) => {
                        part.channels.entry(path).or_insert_with(|| c.clone());
                    }
                    None => {
                        lacking.channels.insert((team.clone(), channel.clone()));
                    }
                }
            }
        }
        (part, lacking)
    }

    /// Takes the teams, channels and accounts of `fresh` (a reading of some scopes) into a
    /// kept state, replacing what it had of them.
    pub fn take_in(&mut self, fresh: Mattermost) {
        self.users.extend(fresh.users);
        self.teams.extend(fresh.teams);
        self.channels.extend(fresh.channels);
    }

    /// Sets what a fresh reading of some users' memberships in one team or channel (by id)
    /// says: those in `members` are members with these roles, the other `users` are not.
    pub fn set_members_of(
        &mut self,
        scope_id: &str,
        users: &[String],
        members: &BTreeMap<String, ChannelMember>,
    ) {
        let set = |m: &mut BTreeMap<String, ChannelMember>| {
            for u in users {
                match members.get(u) {
                    Some(x) => {
                        m.insert(u.clone(), *x);
                    }
                    None => {
                        m.remove(u);
                    }
                }
            }
        };
        if let Some(t) = self.teams.values_mut().find(|t| t.id == scope_id) {
            set(&mut t.members);
        }
        if let Some(c) = self.channel_by_id(scope_id) {
            set(&mut c.members);
        }
    }

    /// Forgets a team or channel (by id), so that it is read again in full.
    pub fn forget(&mut self, scope_id: &str) {
        self.teams.retain(|_, t| t.id != scope_id);
        self.channels.retain(|_, c| c.id != scope_id);
    }
}

/// What a kept state does not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lacking {
    pub teams: BTreeSet<String>,
    pub channels: BTreeSet<(String, String)>,
}

impl Lacking {
    pub fn is_empty(&self) -> bool {
        self.teams.is_empty() && self.channels.is_empty()
    }
}

/// How many memberships (and roles) differ between a kept state and a fresh reading, over
/// the teams and channels both hold; and the first `limit` scopes that differ.
pub fn membership_differences(
    kept: &Mattermost,
    fresh: &Mattermost,
    limit: usize,
) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut named = Vec::new();
    let mut diff =
        |name: String, a: &BTreeMap<String, ChannelMember>, b: &BTreeMap<String, ChannelMember>| {
            let ids: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            let n = ids
                .into_iter()
                .filter(|id| a.get(*id) != b.get(*id))
                .count();
            if n > 0 {
                count += n;
                if named.len() < limit {
                    named.push(name);
                }
            }
        };
    for (name, t) in &kept.teams {
        if let Some(f) = fresh.teams.get(name).filter(|f| f.id == t.id) {
            diff(name.clone(), &t.members, &f.members);
        }
    }
    for (path, c) in &kept.channels {
        if let Some(f) = fresh.channels.get(path).filter(|f| f.id == c.id) {
            diff(path.clone(), &c.members, &f.members);
        }
    }
    (count, named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MmTeam;
    use crate::plan::{PlanMember, UserRef};
    use crate::{LinkSource, Mode};

    fn members(ids: &[&str]) -> BTreeMap<String, ChannelMember> {
        ids.iter()
            .map(|i| (i.to_string(), ChannelMember::default()))
            .collect()
    }

    fn world() -> Mattermost {
        let mut mm = Mattermost::default();
        mm.teams.insert(
            "rl".into(),
            MmTeam {
                id: "t1".into(),
                name: "rl".into(),
                members: members(&["a", "b"]),
            },
        );
        for (id, name, m) in [("c1", "infra", &["a", "b"][..]), ("c2", "web", &["b"][..])] {
            mm.channels.insert(
                format!("rl/{name}"),
                MmChannel {
                    id: id.into(),
                    team: "rl".into(),
                    name: name.into(),
                    members: members(m),
                    ..Default::default()
                },
            );
        }
        mm
    }

    fn member(id: &str) -> PlanMember {
        PlanMember {
            id: id.into(),
            username: id.into(),
            groups: vec![],
        }
    }

    fn user(id: &str) -> UserRef {
        UserRef {
            id: id.into(),
            username: id.into(),
        }
    }

    fn ok<'a>(ids: &[&'a str]) -> BTreeSet<&'a str> {
        ids.iter().copied().collect()
    }

    #[test]
    fn writes_that_succeeded_are_kept_and_failed_ones_are_not() {
        let mut mm = world();
        mm.record_write(
            &Action::AddTeamMembers {
                team_id: "t1".into(),
                team: "rl".into(),
                users: vec![member("c"), member("d")],
            },
            &ok(&["c"]),
        );
        mm.record_write(
            &Action::AddChannelMembers {
                channel_id: "c2".into(),
                channel: "rl/web".into(),
                users: vec![member("c")],
            },
            &ok(&["c"]),
        );
        mm.record_write(
            &Action::SetChannelAdmin {
                channel_id: "c2".into(),
                channel: "rl/web".into(),
                user: user("c"),
                admin: true,
                groups: vec![],
            },
            &ok(&["c"]),
        );
        mm.record_write(
            &Action::RemoveChannelMember {
                channel_id: "c1".into(),
                channel: "rl/infra".into(),
                user: user("a"),
                mode: Mode::Sync,
            },
            &ok(&[]),
        );
        assert_eq!(mm.teams["rl"].members, members(&["a", "b", "c"]));
        assert_eq!(mm.channels["rl/infra"].members, members(&["a", "b"]));
        assert_eq!(
            mm.channels["rl/web"].members,
            [
                ("b".to_string(), ChannelMember::default()),
                ("c".to_string(), ChannelMember { scheme_admin: true })
            ]
            .into()
        );
        // Leaving the team leaves its channels.
        mm.record_write(
            &Action::RemoveTeamMember {
                team_id: "t1".into(),
                team: "rl".into(),
                user: user("b"),
                channels: vec![],
            },
            &ok(&["b"]),
        );
        assert_eq!(mm.teams["rl"].members, members(&["a", "c"]));
        assert_eq!(mm.channels["rl/infra"].members, members(&["a"]));
        assert_eq!(mm.channels["rl/web"].members.len(), 1);
    }

    #[test]
    fn a_part_holds_what_links_need_and_names_what_is_lacking() {
        let mm = world();
        let link = |t: &str| Link {
            group: "g".into(),
            target: t.parse().expect("target"),
            mode: Mode::Sync,
            admins: crate::Admins::None,
            readd: crate::Readd::Never,
            source: LinkSource::Config,
        };
        let (part, lacking) = mm.part_for(&[link("rl/web"), link("rl/new"), link("other")]);
        assert_eq!(part.teams.keys().collect::<Vec<_>>(), ["rl"]);
        assert_eq!(part.channels.keys().collect::<Vec<_>>(), ["rl/web"]);
        assert_eq!(
            lacking,
            Lacking {
                teams: ["other".to_string()].into(),
                channels: [("rl".to_string(), "new".to_string())].into(),
            }
        );
    }

    #[test]
    fn fresh_memberships_replace_kept_ones_for_those_users_only() {
        let mut mm = world();
        let fresh: BTreeMap<String, ChannelMember> =
            [("c".to_string(), ChannelMember { scheme_admin: true })].into();
        mm.set_members_of("c1", &["a".into(), "c".into()], &fresh);
        assert_eq!(
            mm.channels["rl/infra"].members,
            [
                ("b".to_string(), ChannelMember::default()),
                ("c".to_string(), ChannelMember { scheme_admin: true })
            ]
            .into()
        );
        let kept = world();
        assert_eq!(
            membership_differences(&kept, &mm, 5),
            (2, vec!["rl/infra".to_string()])
        );
        assert_eq!(membership_differences(&kept, &world(), 5), (0, vec![]));
        mm.forget("c1");
        assert!(!mm.channels.contains_key("rl/infra"));
        assert!(mm.teams.contains_key("rl"));
    }
}
