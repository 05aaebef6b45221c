//! `serve`'s change cycles: Mattermost as the service keeps it between cycles, and a cycle's
//! input built from it with only the reads it cannot do without.
//!
//! A full reconcile reads every linked team and channel and starts a [`Kept`]; the
//! service's own writes keep it true ([`Kept::record`]). A change cycle then plans from it
//! ([`gather_kept`]) and reads from Mattermost only what it cannot know: the scopes it does
//! not hold (a new link, or one forgotten after a failed write), the accounts of users the
//! change brings in that it has not seen, and the current memberships of the users the change
//! is about, in the teams and channels their groups are linked to (someone may have joined or
//! left by hand since: an add of a user already there would otherwise be recorded as
//! mattersync's own). Everyone else's memberships are as the last reconcile read them, plus
//! what the service wrote since.
//!
//! The planner gets the part of both sides these links mean (the groups and their users, the
//! scopes and the accounts that can match), so planning costs what the change touches.

use crate::config::Config;
use crate::run::{team_channels, ApplyReport, LedgerView, State};
use crate::source::MattermostApi;
use anyhow::{Context, Result};
use mattersync_core::intent::settled_view;
use mattersync_core::{
    scope, Admins, DirUser, Directory, Link, Matching, Mattermost, MmUser, Plan, Policy, ScopeKind,
    Target,
};
use mattersync_ledger::Ledger;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Mattermost as of the last full reconcile, kept true by the service's own writes.
#[derive(Debug, Clone)]
pub struct Kept {
    pub mm: Mattermost,
    /// The token's own account.
    pub me: MmUser,
    matching: Matching,
    /// Every key the planner may match an account by (both lower-case spellings) → the ids
    /// of the accounts under it.
    index: HashMap<String, Vec<String>>,
}

/// The lower-case spellings the planner compares by (Unicode and ASCII).
fn spellings(s: &str) -> Vec<String> {
    let a = s.to_lowercase();
    let b = s.to_ascii_lowercase();
    if a == b {
        vec![a]
    } else {
        vec![a, b]
    }
}

fn account_keys(u: &MmUser, m: &Matching) -> Vec<String> {
    match m {
        Matching::Username => spellings(&u.username),
        Matching::Email if u.email.is_empty() => Vec::new(),
        Matching::Email => spellings(&u.email),
        Matching::AuthData { auth_service } if u.auth_service == *auth_service => {
            vec![u.auth_data.clone()]
        }
        Matching::AuthData { .. } => Vec::new(),
    }
}

fn user_keys(d: &DirUser, m: &Matching) -> Vec<String> {
    match m {
        Matching::Username => spellings(&d.uid),
        Matching::Email => d.email.as_deref().map(spellings).unwrap_or_default(),
        Matching::AuthData { .. } => vec![d.auth_id.clone().unwrap_or_else(|| d.uid.clone())],
    }
}

impl Kept {
    /// Starts from a full reconcile's reading of Mattermost.
    pub fn new(mut mm: Mattermost, me: MmUser, matching: &Matching) -> Kept {
        mm.user_channels.clear();
        let users = std::mem::take(&mut mm.users);
        let mut kept = Kept {
            mm,
            me,
            matching: matching.clone(),
            index: HashMap::new(),
        };
        kept.add_users(users.into_values());
        kept
    }

    fn add_users(&mut self, users: impl IntoIterator<Item = MmUser>) {
        for u in users {
            for key in account_keys(&u, &self.matching) {
                let ids = self.index.entry(key).or_default();
                if !ids.contains(&u.id) {
                    ids.push(u.id.clone());
                }
            }
            self.mm.users.insert(u.id.clone(), u);
        }
    }

    /// Every account the planner could match directory user `d` to.
    fn accounts_of(&self, d: &DirUser) -> impl Iterator<Item = &String> {
        user_keys(d, &self.matching)
            .into_iter()
            .filter_map(|k| self.index.get(&k))
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
    }

    /// Takes a fresh reading of some scopes in, replacing what was kept of them.
    pub fn take_in(&mut self, fresh: Mattermost) {
        let Mattermost {
            users,
            teams,
            channels,
            ..
        } = fresh;
        self.add_users(users.into_values());
        self.mm.teams.extend(teams);
        self.mm.channels.extend(channels);
    }

    /// What an apply did: every write that succeeded is kept; a team or channel where a write
    /// failed or did not run (a stop) is forgotten, with the team of a channel, so the next
    /// cycle reads them in full.
    pub fn record(&mut self, plan: &Plan, report: &ApplyReport) {
        for (i, action) in plan.actions.iter().enumerate() {
            let (_, scope_id, scope) = action.scope();
            let failed = match report.outcomes.get(i) {
                Some(outs) => {
                    let ok: BTreeSet<&str> = outs
                        .iter()
                        .filter(|o| o.result.is_ok())
                        .map(|o| o.user_id.as_str())
                        .collect();
                    self.mm.record_write(action, &ok);
                    outs.iter().any(|o| o.result.is_err())
                }
                None => true,
            };
            if failed {
                self.mm.forget(scope_id);
                if let Some((team, _)) = scope.split_once('/') {
                    self.mm.teams.remove(team);
                }
            }
        }
    }
}

/// What [`gather_kept`] read from Mattermost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeptReads {
    /// Teams and channels read in full (the kept state lacked them).
    pub scopes_read: usize,
    /// Accounts looked up by username (users the change brings in, with no account seen).
    pub lookups: usize,
    /// Teams and channels whose memberships of the change's users were read.
    pub verified: usize,
}

/// A change cycle's input: `links` (the scopes a change of `changed` groups affects) planned
/// from the kept state and the directory `new` (as it was `old` in the last cycle). Updates
/// `kept` with what it reads. The ledger's facts of these scopes are not in it yet:
/// [`kept_facts`] reads them, then [`finish_kept`] completes the input.
#[allow(clippy::too_many_arguments)]
pub async fn gather_kept<M: MattermostApi>(
    cfg: &Config,
    mm: &M,
    kept: &mut Kept,
    old: &Directory,
    new: &Directory,
    changed: &BTreeSet<String>,
    links: Vec<Link>,
    view: LedgerView,
    warnings: Vec<String>,
) -> Result<(State, KeptReads)> {
    let mut reads = KeptReads::default();
    let groups: BTreeSet<&str> = links
        .iter()
        .flat_map(|l| {
            let admins = match &l.admins {
                Admins::Group(g) => Some(g.as_str()),
                _ => None,
            };
            std::iter::once(l.group.as_str()).chain(admins)
        })
        .collect();
    let directory = new.part_for(groups);

    // 1. Scopes the kept state does not hold: read in full, as a full reconcile would.
    let (_, lacking) = kept.mm.part_for(&links);
    if !lacking.is_empty() {
        let teams: Vec<String> = lacking.teams.iter().cloned().collect();
        let channels: Vec<(String, String)> = lacking.channels.iter().cloned().collect();
        let usernames: Vec<String> = match kept.matching {
            Matching::Username => directory.users.keys().cloned().collect(),
            Matching::Email | Matching::AuthData { .. } => Vec::new(),
        };
        let fresh = mm.read_state(&teams, &channels, &usernames).await.context(
            "mattermost: reading teams, channels and members failed; nothing was changed",
        )?;
        reads.scopes_read = teams.len() + channels.len();
        kept.take_in(fresh);
    }

    // 2. Accounts of the users the change is about that have none kept (a new account).
    let subjects = scope::subjects(old, new, changed);
    let unknown: Vec<String> = subjects
        .iter()
        .filter_map(|uid| directory.users.get(uid))
        .filter(|d| kept.accounts_of(d).next().is_none())
        .map(|d| d.uid.clone())
        .collect();
    if !unknown.is_empty() {
        let found = mm
            .users_by_usernames(&unknown)
            .await
            .context("mattermost: looking up accounts")?;
        reads.lookups += 1;
        kept.add_users(found);
    }

    // 3. Where the change's users are now, in the scopes their groups are linked to.
    let ids: Vec<String> = subjects
        .iter()
        .filter_map(|uid| new.users.get(uid).or_else(|| old.users.get(uid)))
        .flat_map(|d| kept.accounts_of(d).cloned().collect::<Vec<_>>())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !ids.is_empty() {
        let touched: Vec<&Link> = links
            .iter()
            .filter(|l| {
                changed.contains(&l.group)
                    || matches!(&l.admins, Admins::Group(g) if changed.contains(g))
            })
            .collect();
        // Teams first: someone who is not in a team is in none of its channels (leaving a
        // team leaves its channels, and a channel takes only the team's members), so their
        // channels there need no read.
        let mut teams: BTreeSet<String> = BTreeSet::new();
        let mut channels: BTreeSet<(String, String)> = BTreeSet::new();
        for l in &touched {
            let Some(t) = kept.mm.teams.get(l.target.team()) else {
                continue;
            };
            if let Target::Channel { .. } = &l.target {
                if let Some(c) = kept.mm.channels.get(&l.target.to_string()) {
                    channels.insert((t.id.clone(), c.id.clone()));
                }
            }
            // The team only where the plan may add to it or take from it: a team-level link,
            // or someone the kept state does not have as a member.
            let team_link = matches!(l.target, Target::Team { .. });
            if team_link || ids.iter().any(|id| !t.members.contains_key(id)) {
                teams.insert(t.id.clone());
            }
        }
        let mut outside: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for team in teams {
            let now = mm.members_of(ScopeKind::Team, &team, &ids).await.context(
                "mattermost: reading the changed users' memberships failed; nothing was changed",
            )?;
            reads.verified += 1;
            kept.mm.set_members_of(&team, &ids, &now);
            outside.insert(
                team,
                ids.iter()
                    .filter(|id| !now.contains_key(*id))
                    .cloned()
                    .collect(),
            );
        }
        for (team, channel) in channels {
            let ask: Vec<String> = ids
                .iter()
                .filter(|id| !outside.get(&team).is_some_and(|o| o.contains(*id)))
                .cloned()
                .collect();
            let now = if ask.is_empty() {
                BTreeMap::new()
            } else {
                reads.verified += 1;
                mm.members_of(ScopeKind::Channel, &channel, &ask)
                    .await
                    .context(
                        "mattermost: reading the changed users' memberships failed; nothing was changed",
                    )?
            };
            kept.mm.set_members_of(&channel, &ids, &now);
        }
    }

    // 4. The part the planner needs: these scopes, and the accounts that can match the
    // directory part or are members there.
    let (mut part, _) = kept.mm.part_for(&links);
    let mut wanted: BTreeSet<&String> = directory
        .users
        .values()
        .flat_map(|d| kept.accounts_of(d))
        .collect();
    wanted.extend(part.teams.values().flat_map(|t| t.members.keys()));
    wanted.extend(part.channels.values().flat_map(|c| c.members.keys()));
    wanted.insert(&kept.me.id);
    part.users = wanted
        .into_iter()
        .filter_map(|id| kept.mm.users.get(id).map(|u| (id.clone(), u.clone())))
        .collect();

    let mut allow = cfg.exclusive.allow.clone();
    allow.insert(kept.me.username.clone());
    let policy = Policy {
        links,
        matching: cfg.mattermost.matching.clone(),
        guards: cfg.guards.clone(),
        allow,
    };
    let state = State {
        directory,
        mattermost: part,
        facts: Default::default(),
        intents: view.intents,
        policy,
        warnings,
        link_issues: Vec::new(),
        learned: Vec::new(),
        me: kept.me.clone(),
    };
    Ok((state, reads))
}

/// The ledger's facts of the scopes in `state` (a change cycle's), read as settling would
/// leave them. Synchronous: the ledger is not held across a network read.
pub fn kept_facts(ledger: &Ledger, state: &mut State) -> Result<()> {
    let scope_ids: BTreeSet<String> = state
        .mattermost
        .teams
        .values()
        .map(|t| t.id.clone())
        .chain(state.mattermost.channels.values().map(|c| c.id.clone()))
        .collect();
    let facts = ledger
        .facts_for(&scope_ids)
        .context("ledger: reading facts")?;
    state.facts = settled_view(&facts, &state.intents, &state.mattermost);
    Ok(())
}

/// The last read of a change cycle's input: the channels a team removal would take with it.
pub async fn finish_kept<M: MattermostApi>(mm: &M, state: &mut State) -> Result<()> {
    team_channels(mm, state).await
}
