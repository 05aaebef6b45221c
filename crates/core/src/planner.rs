//! The planner: a pure function from desired state (directory + policy), actual state
//! (Mattermost) and ledger facts to a [`Plan`].

use crate::model::{
    Directory, LedgerFacts, Mattermost, MmChannel, MmUser, Origin, Record, RecordState,
};
use crate::plan::{Action, ChannelRef, GuardTrip, Note, Plan, PlanMember, UserRef};
use crate::policy::{Admins, Link, Matching, Mode, Policy, Readd, Target};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Most users one `POST /teams/{id}/members/batch` takes.
pub const TEAM_BATCH: usize = 256;
/// Most `user_ids` one `POST /channels/{id}/members` takes.
pub const CHANNEL_BATCH: usize = 1000;
/// Channels with fewer members than this are not held to `max_removal_ratio` (one removal
/// from a channel of three is a third of it, and rarely a glitch).
pub const RATIO_MIN_MEMBERS: usize = 10;

/// Everything the planner looks at.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PlanInput<'a> {
    pub directory: &'a Directory,
    pub mattermost: &'a Mattermost,
    pub ledger: &'a LedgerFacts,
    pub policy: &'a Policy,
}

impl PlanInput<'_> {
    /// SHA-256 over the canonical JSON of every input.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        // Serializing plain data into a Vec cannot fail; an empty hash would make any saved
        // plan stale, which is the safe direction.
        if let Ok(bytes) = serde_json::to_vec(self) {
            h.update(&bytes);
        }
        hex::encode(h.finalize())
    }
}

/// Who wants a user in a scope (team or channel).
#[derive(Debug, Default, Clone)]
struct Want {
    username: String,
    groups: BTreeSet<String>,
    readd: bool,
}

/// The desired state of one scope.
#[derive(Debug, Default)]
struct Scope {
    modes: BTreeSet<Mode>,
    /// A link to this scope names a group the directory did not return: add only.
    incomplete: bool,
    /// A link's admins group is unknown: nobody is demoted.
    admins_incomplete: bool,
    members: BTreeMap<String, Want>,
    /// Accounts of wanted directory members that cannot be used (deactivated, or one of
    /// several that match): not added, but never removed either.
    keep: BTreeSet<String>,
    admins: BTreeMap<String, BTreeSet<String>>,
}

impl Scope {
    fn mode(&self) -> Mode {
        if self.incomplete {
            return Mode::Add;
        }
        self.modes.iter().next().copied().unwrap_or(Mode::Add)
    }
}

/// Computes the plan. Pure: no I/O, no clock, no randomness.
pub fn plan(input: PlanInput<'_>) -> Plan {
    let p = Planner::matching(input);
    p.run()
}

impl<'a> Planner<'a> {
    /// A planner with the directory's users matched to accounts.
    fn matching(input: PlanInput<'a>) -> Planner<'a> {
        let mut p = Planner {
            input,
            notes: BTreeSet::new(),
            pending: BTreeMap::new(),
            matched: BTreeMap::new(),
            ambiguous: BTreeMap::new(),
            inactive: BTreeMap::new(),
        };
        p.match_users();
        p
    }
}

/// Which Mattermost account each directory user matches, by the planner's own rules
/// (directory uid → account id). Users whose match is ambiguous, deactivated or missing are
/// absent. `explain` uses this so that it never matches differently from the plan.
pub fn account_matches(input: PlanInput<'_>) -> BTreeMap<String, String> {
    let p = Planner::matching(input);
    p.matched
        .into_iter()
        .map(|(uid, u)| (uid, u.id.clone()))
        .collect()
}

struct Planner<'a> {
    input: PlanInput<'a>,
    notes: BTreeSet<Note>,
    pending: BTreeMap<String, BTreeSet<String>>,
    /// Directory uid → Mattermost account.
    matched: BTreeMap<String, &'a MmUser>,
    /// Directory uid → the ids of the active accounts that all match it.
    ambiguous: BTreeMap<String, Vec<String>>,
    /// Deactivated accounts (not bots) by matching key, in account-id order: looked up for
    /// every member without an active account, so a scan of all accounts each time would make
    /// planning grow with pending users × accounts.
    inactive: BTreeMap<String, Vec<&'a MmUser>>,
}

/// The accounts of a set of directory users.
#[derive(Default)]
struct Accounts<'a> {
    usable: Vec<&'a MmUser>,
    /// Ids of matching accounts that cannot be used (deactivated or ambiguous).
    unusable: Vec<String>,
}

impl<'a> Planner<'a> {
    fn match_users(&mut self) {
        let mm = self.input.mattermost;
        for u in mm.users.values().filter(|u| u.inactive && !u.is_bot) {
            let key = match &self.input.policy.matching {
                Matching::Username => Some(u.username.to_ascii_lowercase()),
                Matching::Email => (!u.email.is_empty()).then(|| u.email.to_ascii_lowercase()),
                Matching::AuthData { auth_service } => {
                    (u.auth_service == *auth_service).then(|| u.auth_data.clone())
                }
            };
            if let Some(k) = key {
                self.inactive.entry(k).or_default().push(u);
            }
        }
        let mut index: BTreeMap<String, Vec<&'a MmUser>> = BTreeMap::new();
        for u in mm.users.values().filter(|u| !u.is_bot) {
            let key = match &self.input.policy.matching {
                Matching::Username => Some(u.username.to_lowercase()),
                Matching::Email => (!u.email.is_empty()).then(|| u.email.to_lowercase()),
                Matching::AuthData { auth_service } => (u.auth_service == *auth_service
                    && !u.auth_data.is_empty())
                .then(|| u.auth_data.clone()),
            };
            if let Some(k) = key {
                index.entry(k).or_default().push(u);
            }
        }
        for d in self.input.directory.users.values() {
            let key = match &self.input.policy.matching {
                Matching::Username => Some(d.uid.to_lowercase()),
                Matching::Email => d.email.as_ref().map(|e| e.to_lowercase()),
                Matching::AuthData { .. } => {
                    Some(d.auth_id.clone().unwrap_or_else(|| d.uid.clone()))
                }
            };
            let Some(found) = key.and_then(|k| index.get(&k)) else {
                continue;
            };
            let active: Vec<&&MmUser> = found.iter().filter(|u| !u.inactive).collect();
            match active.as_slice() {
                [one] => {
                    self.matched.insert(d.uid.clone(), **one);
                }
                [] => {}
                many => {
                    self.notes.insert(Note::AmbiguousUser {
                        uid: d.uid.clone(),
                        usernames: many.iter().map(|u| u.username.clone()).collect(),
                    });
                    self.ambiguous
                        .insert(d.uid.clone(), many.iter().map(|u| u.id.clone()).collect());
                }
            }
        }
    }

    /// Resolves directory users (members of `group`) to accounts, noting pending, inactive
    /// and ambiguous ones.
    fn accounts(&mut self, uids: &BTreeSet<String>, group: &str) -> Accounts<'a> {
        let mut out = Accounts::default();
        for uid in uids {
            if let Some(u) = self.matched.get(uid) {
                out.usable.push(*u);
                continue;
            }
            if let Some(ids) = self.ambiguous.get(uid) {
                out.unusable.extend(ids.iter().cloned());
                continue;
            }
            let inactive = self.inactive_matches(uid);
            if let Some(u) = inactive.first() {
                self.notes.insert(Note::InactiveUser {
                    uid: uid.clone(),
                    username: u.username.clone(),
                });
                out.unusable.extend(inactive.iter().map(|u| u.id.clone()));
            } else {
                self.pending
                    .entry(uid.clone())
                    .or_default()
                    .insert(group.to_string());
            }
        }
        out
    }

    /// The deactivated accounts that match directory user `uid` (same rules as active ones,
    /// names and e-mails compared ASCII-case-insensitively).
    fn inactive_matches(&self, uid: &str) -> Vec<&'a MmUser> {
        let Some(d) = self.input.directory.users.get(uid) else {
            return Vec::new();
        };
        let key = match &self.input.policy.matching {
            Matching::Username => Some(d.uid.to_ascii_lowercase()),
            Matching::Email => d.email.as_ref().map(|e| e.to_ascii_lowercase()),
            Matching::AuthData { .. } => Some(d.auth_id.clone().unwrap_or_else(|| d.uid.clone())),
        };
        key.and_then(|k| self.inactive.get(&k))
            .cloned()
            .unwrap_or_default()
    }

    fn run(mut self) -> Plan {
        let dir = self.input.directory;
        let mm = self.input.mattermost;
        let mut teams: BTreeMap<String, Scope> = BTreeMap::new();
        let mut channels: BTreeMap<String, Scope> = BTreeMap::new();

        let links: Vec<&Link> = self.input.policy.links.iter().collect();
        for link in links {
            let team_name = link.target.team().to_string();
            if !mm.teams.contains_key(&team_name) {
                self.notes.insert(Note::UnknownTeam {
                    team: team_name,
                    link: link.id(),
                });
                continue;
            }
            let scope = match &link.target {
                Target::Team { .. } => teams.entry(team_name.clone()).or_default(),
                Target::Channel { channel, .. } => {
                    let path = format!("{team_name}/{channel}");
                    match mm.channels.get(&path) {
                        None => {
                            self.notes.insert(Note::UnknownChannel {
                                channel: path,
                                link: link.id(),
                            });
                            continue;
                        }
                        Some(c) if c.archived => {
                            self.notes.insert(Note::ArchivedChannel {
                                channel: path,
                                link: link.id(),
                            });
                            continue;
                        }
                        Some(_) => channels.entry(path).or_default(),
                    }
                }
            };
            scope.modes.insert(link.mode);
            if !dir.groups.contains_key(&link.group) {
                scope.incomplete = true;
                self.notes.insert(Note::UnknownGroup {
                    group: link.group.clone(),
                    link: link.id(),
                });
                continue;
            }
            // A nested group the directory did not return hides members: the known ones
            // are added, nobody is removed.
            let missing = missing_groups(dir, [link.group.as_str()]);
            scope.incomplete |= !missing.is_empty();
            // The group whose members become admins: the linked group (for its managers)
            // or the admins group.
            let (admins_group, admins, admins_missing) = match &link.admins {
                Admins::None => (link.group.as_str(), BTreeSet::new(), BTreeSet::new()),
                Admins::Managers => (
                    link.group.as_str(),
                    dir.effective_managers(&link.group),
                    dir.groups.get(&link.group).map_or_else(BTreeSet::new, |g| {
                        missing_groups(dir, g.manager_groups.iter().map(String::as_str))
                    }),
                ),
                Admins::Group(g) => (
                    g.as_str(),
                    dir.effective_members(g),
                    missing_groups(dir, [g.as_str()]),
                ),
            };
            scope.admins_incomplete |= !admins_missing.is_empty();
            for group in missing.into_iter().chain(admins_missing) {
                self.notes.insert(Note::UnknownGroup {
                    group,
                    link: link.id(),
                });
            }
            let members = dir.effective_members(&link.group);
            // Accounts are looked up before the scope is borrowed again.
            let member_accounts = self.accounts(&members, &link.group);
            let admin_accounts = self.accounts(&admins, admins_group);
            let scope = match &link.target {
                Target::Team { .. } => teams.entry(team_name.clone()).or_default(),
                Target::Channel { channel, .. } => channels
                    .entry(format!("{team_name}/{channel}"))
                    .or_default(),
            };
            for (accounts, group) in [
                (&member_accounts, link.group.as_str()),
                (&admin_accounts, admins_group),
            ] {
                for u in &accounts.usable {
                    let w = scope.members.entry(u.id.clone()).or_default();
                    w.username = u.username.clone();
                    w.groups.insert(group.to_string());
                    w.readd |= link.readd == Readd::Always;
                }
                scope.keep.extend(accounts.unusable.iter().cloned());
            }
            for u in &admin_accounts.usable {
                scope
                    .admins
                    .entry(u.id.clone())
                    .or_default()
                    .insert(admins_group.to_string());
            }
        }
        for (uid, groups) in std::mem::take(&mut self.pending) {
            self.notes.insert(Note::PendingUser {
                uid,
                groups: groups.into_iter().collect(),
            });
        }

        let mut out = Vec::new();
        let mut team_adds: BTreeMap<String, BTreeMap<String, PlanMember>> = BTreeMap::new();
        let mut channel_actions = Vec::new();
        let mut removals: Vec<(String, usize, usize)> = Vec::new();

        for (path, scope) in &channels {
            let Some(ch) = mm.channels.get(path) else {
                continue;
            };
            let mode = self.mode_of(path, scope);
            let plan = self.plan_scope(
                &ch.id,
                path,
                &ch.members,
                self.input.ledger.channels.get(&ch.id),
                scope,
                mode,
                ch.is_default(),
            );
            // Team membership comes first for every user added to a channel.
            if let Some(team) = mm.teams.get(&ch.team) {
                for m in &plan.adds {
                    if !team.members.contains_key(&m.id) {
                        add_member(team_adds.entry(ch.team.clone()).or_default(), m);
                    }
                }
            }
            removals.push((path.clone(), plan.removals.len(), ch.members.len()));
            channel_actions.extend(self.channel_actions(ch, scope, plan));
        }

        // (channel id, user id) of every planned channel removal.
        let removed_from: BTreeSet<(&str, &str)> = channel_actions
            .iter()
            .filter_map(|a| match a {
                Action::RemoveChannelMember {
                    channel_id, user, ..
                } => Some((channel_id.as_str(), user.id.as_str())),
                Action::AddTeamMembers { .. }
                | Action::AddChannelMembers { .. }
                | Action::SetChannelAdmin { .. }
                | Action::RemoveTeamMember { .. }
                | Action::RecordPreexisting { .. }
                | Action::RecordDeparted { .. }
                | Action::RecordDemoted { .. } => None,
            })
            .collect();
        let mut taken_with_team: BTreeMap<String, usize> = BTreeMap::new();
        let mut team_tail = Vec::new();
        for (name, scope) in &teams {
            let Some(team) = mm.teams.get(name) else {
                continue;
            };
            let mode = self.mode_of(name, scope);
            // A team link never removes someone a channel link in that team still wants, nor
            // (as leaving the team means leaving its channels) a member of a channel that is
            // add-only because one of its links names an unknown group.
            let mut protect: BTreeSet<&str> = BTreeSet::new();
            for (path, s) in &channels {
                let Some(c) = mm.channels.get(path).filter(|c| c.team == *name) else {
                    continue;
                };
                protect.extend(s.members.keys().map(String::as_str));
                protect.extend(s.keep.iter().map(String::as_str));
                if s.incomplete {
                    protect.extend(c.members.keys().map(String::as_str));
                }
            }
            let mut plan = self.plan_scope(
                &team.id,
                name,
                &team.members,
                self.input.ledger.teams.get(&team.id),
                scope,
                mode,
                false,
            );
            plan.removals.retain(|u| !protect.contains(u.id.as_str()));
            for m in &plan.adds {
                add_member(team_adds.entry(name.clone()).or_default(), m);
            }
            removals.push((name.clone(), plan.removals.len(), team.members.len()));
            for user in plan.removals {
                // Leaving a team means leaving its channels: the ones a channel action does
                // not already remove the user from are taken with the team, and count as
                // removals for the guards.
                let mut taken: BTreeMap<String, ChannelRef> = BTreeMap::new();
                for c in mm.channels.values().filter(|c| c.team == *name) {
                    if c.members.contains_key(&user.id)
                        && !removed_from.contains(&(c.id.as_str(), user.id.as_str()))
                    {
                        taken.insert(
                            c.id.clone(),
                            ChannelRef {
                                id: c.id.clone(),
                                channel: c.path(),
                            },
                        );
                    }
                }
                if let Some(cs) = mm.user_channels.get(&user.id).and_then(|t| t.get(name)) {
                    for c in cs {
                        if !removed_from.contains(&(c.id.as_str(), user.id.as_str())) {
                            taken.entry(c.id.clone()).or_insert_with(|| c.clone());
                        }
                    }
                }
                let mut channels: Vec<ChannelRef> = taken.into_values().collect();
                channels.sort_by(|a, b| a.channel.cmp(&b.channel).then(a.id.cmp(&b.id)));
                for c in &channels {
                    *taken_with_team.entry(c.channel.clone()).or_insert(0) += 1;
                }
                team_tail.push(Action::RemoveTeamMember {
                    team_id: team.id.clone(),
                    team: name.clone(),
                    user,
                    channels,
                });
            }
            team_tail.extend(record_actions(
                &team.id,
                name,
                plan.preexisting,
                plan.departed,
            ));
        }

        for (name, users) in team_adds {
            let Some(team) = mm.teams.get(&name) else {
                continue;
            };
            let mut users: Vec<PlanMember> = users.into_values().collect();
            users.sort_by(|a, b| a.username.cmp(&b.username).then(a.id.cmp(&b.id)));
            for chunk in users.chunks(TEAM_BATCH) {
                out.push(Action::AddTeamMembers {
                    team_id: team.id.clone(),
                    team: name.clone(),
                    users: chunk.to_vec(),
                });
            }
        }
        // Channel memberships a team removal takes with it count against the guards: against
        // the channel's own ratio when it is a linked one, and towards the total always.
        for (path, n) in taken_with_team {
            match removals.iter_mut().find(|(p, _, _)| *p == path) {
                Some(r) => r.1 += n,
                None => removals.push((path, n, 0)),
            }
        }
        out.extend(channel_actions);
        out.extend(team_tail);

        // Additions per team and channel, with its current size, for the addition guards.
        let mut additions: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for a in &out {
            let (scope, n, members) = match a {
                Action::AddTeamMembers { team, users, .. } => (
                    team,
                    users.len(),
                    mm.teams.get(team).map_or(0, |t| t.members.len()),
                ),
                Action::AddChannelMembers { channel, users, .. } => (
                    channel,
                    users.len(),
                    mm.channels.get(channel).map_or(0, |c| c.members.len()),
                ),
                Action::SetChannelAdmin { .. }
                | Action::RemoveChannelMember { .. }
                | Action::RemoveTeamMember { .. }
                | Action::RecordPreexisting { .. }
                | Action::RecordDeparted { .. }
                | Action::RecordDemoted { .. } => continue,
            };
            let e = additions.entry(scope.clone()).or_insert((0, members));
            e.0 += n;
        }
        let additions: Vec<(String, usize, usize)> = additions
            .into_iter()
            .map(|(scope, (n, members))| (scope, n, members))
            .collect();

        let mut guard_trips = self.guards(&removals);
        guard_trips.extend(self.addition_guards(&additions));
        Plan {
            fingerprint: self.input.fingerprint(),
            actions: out,
            notes: self.notes.into_iter().collect(),
            guard_trips,
        }
    }

    fn mode_of(&mut self, scope_name: &str, scope: &Scope) -> Mode {
        let mode = scope.mode();
        if scope.modes.len() > 1 {
            self.notes.insert(Note::ModeConflict {
                channel: scope_name.to_string(),
                modes: scope.modes.iter().copied().collect(),
                used: mode,
            });
        }
        mode
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_scope(
        &mut self,
        _scope_id: &str,
        name: &str,
        actual: &BTreeMap<String, crate::model::ChannelMember>,
        records: Option<&BTreeMap<String, Record>>,
        scope: &Scope,
        mode: Mode,
        is_default: bool,
    ) -> ScopePlan {
        let empty = BTreeMap::new();
        let records = records.unwrap_or(&empty);
        let users = &self.input.mattermost.users;
        let username = |id: &str| {
            users
                .get(id)
                .map(|u| u.username.clone())
                .unwrap_or_else(|| id.to_string())
        };
        let mut sp = ScopePlan::default();
        for (id, want) in &scope.members {
            let record = records.get(id);
            let present = actual.contains_key(id);
            let member = || PlanMember {
                id: id.clone(),
                username: want.username.clone(),
                groups: want.groups.iter().cloned().collect(),
            };
            let user = || UserRef {
                id: id.clone(),
                username: want.username.clone(),
            };
            match (present, record.map(|r| r.state)) {
                (true, Some(RecordState::Present)) => {}
                (true, _) => sp.preexisting.push(user()),
                // Left on their own. With `readd = "always"` they are simply added again (the
                // add records them as present; recording the departure too would, applied
                // after the add, leave the ledger saying they are gone).
                (false, Some(RecordState::Present | RecordState::Departed)) if want.readd => {
                    sp.adds.push(member());
                }
                (false, Some(state @ (RecordState::Present | RecordState::Departed))) => {
                    if state == RecordState::Present {
                        sp.departed.push(user());
                    }
                    self.notes.insert(Note::NotReadded {
                        channel: name.to_string(),
                        username: want.username.clone(),
                    });
                }
                (false, _) => sp.adds.push(member()),
            }
        }
        // Records of users who are gone although nobody wants them any more.
        for (id, r) in records {
            if r.state == RecordState::Present
                && !actual.contains_key(id)
                && !scope.members.contains_key(id)
            {
                sp.departed.push(UserRef {
                    id: id.clone(),
                    username: username(id),
                });
            }
        }
        for id in actual.keys() {
            if scope.members.contains_key(id) || scope.keep.contains(id) {
                continue;
            }
            let owned = records
                .get(id)
                .is_some_and(|r| r.origin == Origin::Added && r.state == RecordState::Present);
            let candidate = match mode {
                Mode::Add => false,
                Mode::Sync => owned,
                Mode::Exclusive => true,
            };
            if !candidate {
                continue;
            }
            let name_of = username(id);
            let account = users.get(id);
            if account.is_some_and(|u| u.is_bot) {
                self.notes.insert(Note::SkippedBot {
                    channel: name.to_string(),
                    username: name_of,
                });
            } else if mode == Mode::Exclusive && self.input.policy.allow.contains(&name_of) {
                self.notes.insert(Note::Allowed {
                    channel: name.to_string(),
                    username: name_of,
                });
            } else if is_default {
                self.notes.insert(Note::DefaultChannel {
                    channel: name.to_string(),
                    username: name_of,
                });
            } else {
                sp.removals.push(UserRef {
                    id: id.clone(),
                    username: name_of,
                });
            }
        }
        sp.adds
            .sort_by(|a, b| a.username.cmp(&b.username).then(a.id.cmp(&b.id)));
        for v in [&mut sp.removals, &mut sp.preexisting, &mut sp.departed] {
            v.sort_by(|a, b| a.username.cmp(&b.username).then(a.id.cmp(&b.id)));
        }
        sp
    }

    fn channel_actions(&self, ch: &MmChannel, scope: &Scope, sp: ScopePlan) -> Vec<Action> {
        let path = ch.path();
        let mut out = Vec::new();
        for chunk in sp.adds.chunks(CHANNEL_BATCH) {
            out.push(Action::AddChannelMembers {
                channel_id: ch.id.clone(),
                channel: path.clone(),
                users: chunk.to_vec(),
            });
        }
        let added: BTreeSet<&str> = sp.adds.iter().map(|m| m.id.as_str()).collect();
        let removed: BTreeSet<&str> = sp.removals.iter().map(|u| u.id.as_str()).collect();
        let users = &self.input.mattermost.users;
        let name_of = |id: &str| {
            users
                .get(id)
                .map(|u| u.username.clone())
                .unwrap_or_else(|| id.to_string())
        };
        let mut promote = Vec::new();
        let granted_before = self.input.ledger.channel_admins.get(&ch.id);
        let demoted_before = self.input.ledger.channel_admins_demoted.get(&ch.id);
        let mut demoted_now = Vec::new();
        for (id, groups) in &scope.admins {
            let is_admin = ch.members.get(id).is_some_and(|m| m.scheme_admin);
            let is_member = ch.members.contains_key(id);
            let will_be_member = is_member || added.contains(id.as_str());
            if will_be_member && !is_admin {
                // A role mattersync granted that is gone from a member was taken back by
                // hand: respected like a hand removal, unless the link says readd = "always".
                let readd = scope.members.get(id).is_some_and(|w| w.readd);
                if !readd && is_member && granted_before.is_some_and(|g| g.contains(id)) {
                    demoted_now.push(UserRef {
                        id: id.clone(),
                        username: name_of(id),
                    });
                    continue;
                }
                if !readd && demoted_before.is_some_and(|d| d.contains(id)) {
                    continue;
                }
                promote.push(Action::SetChannelAdmin {
                    channel_id: ch.id.clone(),
                    channel: path.clone(),
                    user: UserRef {
                        id: id.clone(),
                        username: name_of(id),
                    },
                    admin: true,
                    groups: groups.iter().cloned().collect(),
                });
            }
        }
        let mut demote = Vec::new();
        // With an unknown group behind a link, who should be admin is not known: demote nobody.
        let granted = if scope.incomplete || scope.admins_incomplete {
            None
        } else {
            self.input.ledger.channel_admins.get(&ch.id)
        };
        if let Some(granted) = granted {
            for id in granted {
                let is_admin = ch.members.get(id).is_some_and(|m| m.scheme_admin);
                if is_admin && !scope.admins.contains_key(id) && !removed.contains(id.as_str()) {
                    demote.push(Action::SetChannelAdmin {
                        channel_id: ch.id.clone(),
                        channel: path.clone(),
                        user: UserRef {
                            id: id.clone(),
                            username: name_of(id),
                        },
                        admin: false,
                        groups: Vec::new(),
                    });
                }
            }
        }
        let by_name = |a: &Action, b: &Action| admin_order(a).cmp(&admin_order(b));
        promote.sort_by(by_name);
        demote.sort_by(by_name);
        out.extend(promote);
        out.extend(demote);
        if !demoted_now.is_empty() {
            demoted_now.sort_by(|a, b| (&a.username, &a.id).cmp(&(&b.username, &b.id)));
            out.push(Action::RecordDemoted {
                channel_id: ch.id.clone(),
                channel: path.clone(),
                users: demoted_now,
            });
        }
        let mode = self.mode_only(scope);
        for user in sp.removals {
            out.push(Action::RemoveChannelMember {
                channel_id: ch.id.clone(),
                channel: path.clone(),
                user,
                mode,
            });
        }
        out.extend(record_actions(&ch.id, &path, sp.preexisting, sp.departed));
        out
    }

    fn mode_only(&self, scope: &Scope) -> Mode {
        scope.mode()
    }

    /// The addition guards: the same shape as the removal ones, against a mistake such as a
    /// big group nested into a small linked one.
    fn addition_guards(&self, additions: &[(String, usize, usize)]) -> Vec<GuardTrip> {
        let g = &self.input.policy.guards;
        let mut trips = Vec::new();
        let total: usize = additions.iter().map(|(_, n, _)| n).sum();
        if total > g.max_additions {
            trips.push(GuardTrip::MaxAdditions {
                additions: total,
                max: g.max_additions,
            });
        }
        for (name, n, members) in additions {
            if *n > 0
                && *members >= RATIO_MIN_MEMBERS
                && (*n as f64) > g.max_addition_ratio * (*members as f64)
            {
                trips.push(GuardTrip::MaxAdditionRatio {
                    channel: name.clone(),
                    additions: *n,
                    members: *members,
                    max_ratio: g.max_addition_ratio,
                });
            }
        }
        trips
    }

    fn guards(&self, removals: &[(String, usize, usize)]) -> Vec<GuardTrip> {
        let g = &self.input.policy.guards;
        let mut trips = Vec::new();
        let total: usize = removals.iter().map(|(_, n, _)| n).sum();
        if total > g.max_removals {
            trips.push(GuardTrip::MaxRemovals {
                removals: total,
                max: g.max_removals,
            });
        }
        for (name, n, members) in removals {
            if *n > 0
                && *members >= RATIO_MIN_MEMBERS
                && (*n as f64) > g.max_removal_ratio * (*members as f64)
            {
                trips.push(GuardTrip::MaxRemovalRatio {
                    channel: name.clone(),
                    removals: *n,
                    members: *members,
                    max_ratio: g.max_removal_ratio,
                });
            }
        }
        trips
    }
}

/// The order of admin changes in a plan: by username, then id. Only `SetChannelAdmin`s are
/// sorted with it; every other action has no admin order (`None`).
fn admin_order(a: &Action) -> Option<(&str, &str)> {
    match a {
        Action::SetChannelAdmin { user, .. } => Some((user.username.as_str(), user.id.as_str())),
        Action::AddTeamMembers { .. }
        | Action::AddChannelMembers { .. }
        | Action::RemoveChannelMember { .. }
        | Action::RemoveTeamMember { .. }
        | Action::RecordPreexisting { .. }
        | Action::RecordDeparted { .. }
        | Action::RecordDemoted { .. } => None,
    }
}

/// The groups reachable from `roots` through nesting (the roots included) that the directory
/// did not return.
fn missing_groups<'g>(
    dir: &Directory,
    roots: impl IntoIterator<Item = &'g str>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut stack: Vec<String> = roots.into_iter().map(str::to_string).collect();
    while let Some(cn) = stack.pop() {
        if !seen.insert(cn.clone()) {
            continue;
        }
        match dir.groups.get(&cn) {
            Some(g) => stack.extend(g.member_groups.iter().cloned()),
            None => {
                missing.insert(cn);
            }
        }
    }
    missing
}

/// Adds `m` to a team's adds, or merges its groups into the entry already there.
fn add_member(adds: &mut BTreeMap<String, PlanMember>, m: &PlanMember) {
    match adds.get_mut(&m.id) {
        Some(have) => {
            let groups: BTreeSet<String> = have
                .groups
                .drain(..)
                .chain(m.groups.iter().cloned())
                .collect();
            have.groups = groups.into_iter().collect();
        }
        None => {
            adds.insert(m.id.clone(), m.clone());
        }
    }
}

#[derive(Debug, Default)]
struct ScopePlan {
    adds: Vec<PlanMember>,
    removals: Vec<UserRef>,
    preexisting: Vec<UserRef>,
    departed: Vec<UserRef>,
}

fn record_actions(
    scope_id: &str,
    scope: &str,
    preexisting: Vec<UserRef>,
    departed: Vec<UserRef>,
) -> Vec<Action> {
    let mut out = Vec::new();
    if !preexisting.is_empty() {
        out.push(Action::RecordPreexisting {
            scope_id: scope_id.to_string(),
            scope: scope.to_string(),
            users: preexisting,
        });
    }
    if !departed.is_empty() {
        out.push(Action::RecordDeparted {
            scope_id: scope_id.to_string(),
            scope: scope.to_string(),
            users: departed,
        });
    }
    out
}
