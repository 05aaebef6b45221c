//! What a guard holds, in words a person can review: which users, which teams and channels,
//! how many each way, which guards said so, and the directory groups whose membership drove
//! the held changes. One struct, [`HoldSummary`], for every output: `plan`, the refused
//! `apply`, `GET /holds`, the status page and a refused `POST /approve`.
//!
//! Pure: built from the plan and the links it was planned from, nothing else.

use crate::run::held_fingerprint;
use mattersync_core::{Action, GuardTrip, Link, Plan};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How many changes a summary lists by default (the counts are always whole).
pub const DEFAULT_PAGE: usize = 100;

/// A held plan, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldSummary {
    /// The held plan's fingerprint ([`held_fingerprint`]): what an approval names.
    pub fingerprint: String,
    /// The guards that hold it.
    pub trips: Vec<GuardTrip>,
    /// The trips, in words.
    pub why: Vec<String>,
    /// Memberships the plan would add (team and channel), as the guards count them.
    pub additions: usize,
    /// Memberships the plan would end, the channels a team removal takes with it included.
    pub removals: usize,
    /// Channel admin roles granted or taken back.
    pub role_changes: usize,
    /// Per team and channel, sorted by name.
    pub scopes: Vec<HeldScope>,
    /// The cause: the directory groups whose membership drove the held changes, and how
    /// many each drove (a user added because of two groups counts for both).
    pub causes: Vec<HeldCause>,
    /// Every held per-user change, counted whole; `changes` is one page of them.
    pub changes_total: usize,
    /// Where `changes` starts in the whole, sorted list.
    pub changes_offset: usize,
    pub changes: Vec<HeldChange>,
}

/// One team or channel a hold touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldScope {
    /// `team` or `team/channel`.
    pub scope: String,
    /// `team` or `channel`.
    pub kind: String,
    pub additions: usize,
    pub removals: usize,
    pub role_changes: usize,
    /// The groups linked to it (the removals' cause) and those its additions come from.
    pub groups: Vec<String>,
}

/// A directory group and the held changes its membership drives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldCause {
    pub group: String,
    pub additions: usize,
    pub removals: usize,
}

/// One user's held change in one team or channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldChange {
    pub scope: String,
    /// `add`, `remove`, `make_admin` or `take_admin`.
    pub change: String,
    pub username: String,
    pub user_id: String,
    /// For an addition or a role: the groups that want the user there. For a removal: the
    /// groups linked here, none of which has the user any more.
    pub groups: Vec<String>,
    /// A channel membership a removal from this team takes with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_team: Option<String>,
}

impl HoldSummary {
    /// The summary of a held plan; `None` when no guard holds it. `links` are the links the
    /// plan was made from (`State::policy.links`): they say which groups a removal is about.
    pub fn of(plan: &Plan, links: &[Link]) -> Option<HoldSummary> {
        if plan.guard_trips.is_empty() {
            return None;
        }
        let mut linked: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for l in links {
            linked
                .entry(l.target.to_string())
                .or_default()
                .insert(l.group.clone());
        }
        let linked_to = |scope: &str| -> Vec<String> {
            linked
                .get(scope)
                .map(|g| g.iter().cloned().collect())
                .unwrap_or_default()
        };
        let mut changes: Vec<HeldChange> = Vec::new();
        let mut kinds: BTreeMap<String, &'static str> = BTreeMap::new();
        for a in &plan.actions {
            let (kind, _, scope) = a.scope();
            let change =
                |username: &str, user_id: &str, change: &str, groups: Vec<String>| HeldChange {
                    scope: scope.to_string(),
                    change: change.to_string(),
                    username: username.to_string(),
                    user_id: user_id.to_string(),
                    groups,
                    with_team: None,
                };
            match a {
                Action::AddTeamMembers { users, .. } | Action::AddChannelMembers { users, .. } => {
                    kinds.insert(scope.to_string(), kind.as_str());
                    for u in users {
                        changes.push(change(&u.username, &u.id, "add", u.groups.clone()));
                    }
                }
                Action::SetChannelAdmin {
                    user,
                    admin,
                    groups,
                    ..
                } => {
                    kinds.insert(scope.to_string(), kind.as_str());
                    let what = if *admin { "make_admin" } else { "take_admin" };
                    changes.push(change(&user.username, &user.id, what, groups.clone()));
                }
                Action::RemoveChannelMember { user, .. } => {
                    kinds.insert(scope.to_string(), kind.as_str());
                    changes.push(change(&user.username, &user.id, "remove", linked_to(scope)));
                }
                Action::RemoveTeamMember { user, channels, .. } => {
                    kinds.insert(scope.to_string(), kind.as_str());
                    let groups = linked_to(scope);
                    changes.push(change(&user.username, &user.id, "remove", groups.clone()));
                    for c in channels {
                        kinds.insert(c.channel.clone(), "channel");
                        changes.push(HeldChange {
                            scope: c.channel.clone(),
                            change: "remove".to_string(),
                            username: user.username.clone(),
                            user_id: user.id.clone(),
                            groups: groups.clone(),
                            with_team: Some(scope.to_string()),
                        });
                    }
                }
                // Ledger-only: no user's membership changes (they are part of the
                // fingerprint all the same).
                Action::RecordPreexisting { .. }
                | Action::RecordDeparted { .. }
                | Action::RecordDemoted { .. } => {}
            }
        }
        changes.sort();
        let mut scopes: BTreeMap<String, HeldScope> = BTreeMap::new();
        let mut causes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for c in &changes {
            let s = scopes.entry(c.scope.clone()).or_insert_with(|| HeldScope {
                scope: c.scope.clone(),
                kind: kinds
                    .get(&c.scope)
                    .copied()
                    .unwrap_or("channel")
                    .to_string(),
                additions: 0,
                removals: 0,
                role_changes: 0,
                groups: Vec::new(),
            });
            match c.change.as_str() {
                "add" => s.additions += 1,
                "remove" => s.removals += 1,
                _ => s.role_changes += 1,
            }
            for g in &c.groups {
                if !s.groups.contains(g) {
                    s.groups.push(g.clone());
                }
                let e = causes.entry(g.clone()).or_insert((0, 0));
                match c.change.as_str() {
                    "add" => e.0 += 1,
                    "remove" => e.1 += 1,
                    _ => {}
                }
            }
        }
        for s in scopes.values_mut() {
            s.groups.sort();
        }
        Some(HoldSummary {
            fingerprint: held_fingerprint(plan),
            trips: plan.guard_trips.clone(),
            why: plan.guard_trips.iter().map(|t| t.to_string()).collect(),
            additions: plan.addition_count(),
            removals: plan.removal_count(),
            role_changes: changes
                .iter()
                .filter(|c| c.change != "add" && c.change != "remove")
                .count(),
            scopes: scopes.into_values().collect(),
            causes: causes
                .into_iter()
                .map(|(group, (additions, removals))| HeldCause {
                    group,
                    additions,
                    removals,
                })
                .collect(),
            changes_total: changes.len(),
            changes_offset: 0,
            changes,
        })
    }

    /// The per-user changes that wait: memberships each way and admin roles. This is
    /// `mattersync_held_changes`.
    pub fn held_changes(&self) -> usize {
        self.additions + self.removals + self.role_changes
    }

    /// The same summary with only `limit` changes from `offset` on (the counts stay whole).
    pub fn page(&self, offset: usize, limit: usize) -> HoldSummary {
        let start = (offset.saturating_sub(self.changes_offset)).min(self.changes.len());
        let end = start.saturating_add(limit).min(self.changes.len());
        HoldSummary {
            changes_offset: self.changes_offset + start,
            changes: self.changes[start..end].to_vec(),
            ..self.clone()
        }
    }

    /// The summary in lines of text, with at most `limit` changes listed.
    pub fn text(&self, limit: usize) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Held ({}): {} additions, {} removals{} in {} team(s)/channel(s).",
            self.fingerprint,
            self.additions,
            self.removals,
            if self.role_changes > 0 {
                format!(", {} admin role changes", self.role_changes)
            } else {
                String::new()
            },
            self.scopes.len()
        );
        for w in &self.why {
            let _ = writeln!(s, "  guard: {w}");
        }
        for c in &self.causes {
            let _ = writeln!(
                s,
                "  cause: directory group {} ({} additions, {} removals)",
                c.group, c.additions, c.removals
            );
        }
        for sc in &self.scopes {
            let _ = writeln!(
                s,
                "  {} {}: +{} -{}{}",
                sc.kind,
                sc.scope,
                sc.additions,
                sc.removals,
                if sc.role_changes > 0 {
                    format!(" roles {}", sc.role_changes)
                } else {
                    String::new()
                }
            );
        }
        for c in self.changes.iter().take(limit) {
            let sign = match c.change.as_str() {
                "add" => "+",
                "remove" => "-",
                other => other,
            };
            let _ = writeln!(
                s,
                "    {sign} {} {}{}",
                c.scope,
                c.username,
                c.with_team
                    .as_ref()
                    .map(|t| format!(" (with team {t})"))
                    .unwrap_or_default()
            );
        }
        let shown = self.changes.len().min(limit);
        if self.changes_total > shown {
            let _ = writeln!(
                s,
                "    … and {} more (plan --json lists every change)",
                self.changes_total - shown
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mattersync_core::{ChannelRef, LinkSource, Mode, PlanMember, UserRef};

    fn link(group: &str, target: &str) -> Link {
        Link {
            group: group.into(),
            target: target.parse().expect("target"),
            mode: Mode::Sync,
            admins: Default::default(),
            readd: Default::default(),
            source: LinkSource::Config,
        }
    }

    fn user(n: &str) -> UserRef {
        UserRef {
            id: format!("id-{n}"),
            username: n.into(),
        }
    }

    fn held_plan() -> Plan {
        Plan {
            actions: vec![
                Action::AddChannelMembers {
                    channel_id: "c1".into(),
                    channel: "rl/infra".into(),
                    users: vec![PlanMember {
                        id: "id-zed".into(),
                        username: "zed".into(),
                        groups: vec!["mm_rl_big".into()],
                    }],
                },
                Action::RemoveChannelMember {
                    channel_id: "c1".into(),
                    channel: "rl/infra".into(),
                    user: user("bob"),
                    mode: Mode::Sync,
                },
                Action::RemoveChannelMember {
                    channel_id: "c1".into(),
                    channel: "rl/infra".into(),
                    user: user("amy"),
                    mode: Mode::Sync,
                },
                Action::RemoveTeamMember {
                    team_id: "t1".into(),
                    team: "rl".into(),
                    user: user("cy"),
                    channels: vec![ChannelRef {
                        id: "c9".into(),
                        channel: "rl/town-square".into(),
                    }],
                },
                Action::RecordDeparted {
                    scope_id: "c1".into(),
                    scope: "rl/infra".into(),
                    users: vec![user("dee")],
                },
            ],
            guard_trips: vec![GuardTrip::MaxRemovals {
                removals: 4,
                max: 2,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_hold_says_who_where_how_many_and_which_groups_caused_it() {
        let plan = held_plan();
        let links = [
            link("mm_rl_infra", "rl/infra"),
            link("mm_rl_big", "rl/infra"),
            link("mm_rl_all", "rl"),
        ];
        let s = HoldSummary::of(&plan, &links).expect("held");
        assert_eq!(s.fingerprint, held_fingerprint(&plan));
        assert_eq!((s.additions, s.removals, s.role_changes), (1, 4, 0));
        assert_eq!(s.held_changes(), 5);
        assert_eq!(
            s.why,
            vec!["4 removals planned, more than guards.max_removals = 2"]
        );
        let scopes: Vec<(&str, &str, usize, usize)> = s
            .scopes
            .iter()
            .map(|x| (x.scope.as_str(), x.kind.as_str(), x.additions, x.removals))
            .collect();
        assert_eq!(
            scopes,
            vec![
                ("rl", "team", 0, 1),
                ("rl/infra", "channel", 1, 2),
                ("rl/town-square", "channel", 0, 1)
            ]
        );
        assert_eq!(s.scopes[1].groups, vec!["mm_rl_big", "mm_rl_infra"]);
        let causes: Vec<(&str, usize, usize)> = s
            .causes
            .iter()
            .map(|c| (c.group.as_str(), c.additions, c.removals))
            .collect();
        assert_eq!(
            causes,
            vec![
                ("mm_rl_all", 0, 2),
                ("mm_rl_big", 1, 2),
                ("mm_rl_infra", 0, 2)
            ]
        );
        let who: Vec<(&str, &str, &str)> = s
            .changes
            .iter()
            .map(|c| (c.scope.as_str(), c.change.as_str(), c.username.as_str()))
            .collect();
        assert_eq!(
            who,
            vec![
                ("rl", "remove", "cy"),
                ("rl/infra", "add", "zed"),
                ("rl/infra", "remove", "amy"),
                ("rl/infra", "remove", "bob"),
                ("rl/town-square", "remove", "cy"),
            ],
            "sorted, ledger-only records left out"
        );
        assert_eq!(s.changes[4].with_team.as_deref(), Some("rl"));
        let text = s.text(2);
        assert!(text.contains("1 additions, 4 removals"), "{text}");
        assert!(text.contains("cause: directory group mm_rl_infra (0 additions, 2 removals)"));
        assert!(text.contains("… and 3 more"), "{text}");
        // The JSON reads back the same.
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(serde_json::from_str::<HoldSummary>(&json).expect("back"), s);
    }

    #[test]
    fn what_is_left_of_an_approved_plan_is_covered_and_nothing_new_is() {
        use crate::run::{changes_of, Approval};
        let plan = held_plan();
        let within = Approval::Within(changes_of(&plan));
        assert!(within.covers(&plan));
        // The retry of two removals that failed: a part of the approved set.
        let mut rest = plan.clone();
        rest.actions.retain(|a| a.is_removal());
        rest.actions.truncate(2);
        assert!(within.covers(&rest));
        assert!(!Approval::Exactly(held_fingerprint(&plan)).covers(&rest));
        // Anything the approved plan did not have is not covered, nor is an empty plan.
        let mut more = rest.clone();
        more.actions.push(Action::RemoveChannelMember {
            channel_id: "c1".into(),
            channel: "rl/infra".into(),
            user: user("eve"),
            mode: Mode::Sync,
        });
        assert!(!within.covers(&more));
        let mut elsewhere = rest.clone();
        if let Some(Action::RemoveChannelMember { channel_id, .. }) = elsewhere.actions.first_mut()
        {
            *channel_id = "c2".into();
        }
        assert!(
            !within.covers(&elsewhere),
            "the same user in another channel"
        );
        assert!(!within.covers(&Plan::default()));
    }

    #[test]
    fn a_plan_nobody_holds_has_no_summary_and_pages_keep_the_counts() {
        let mut plan = held_plan();
        let links = [link("mm_rl_infra", "rl/infra")];
        plan.guard_trips.clear();
        assert_eq!(HoldSummary::of(&plan, &links), None);
        let s = HoldSummary::of(&held_plan(), &links).expect("held");
        let p = s.page(1, 2);
        assert_eq!(
            (p.changes_offset, p.changes.len(), p.changes_total),
            (1, 2, 5)
        );
        assert_eq!(p.changes[0].username, "zed");
        assert_eq!(p.removals, 4, "counts stay whole");
        let p2 = p.page(2, 10);
        assert_eq!((p2.changes_offset, p2.changes.len()), (2, 1));
        assert!(s.page(99, 10).changes.is_empty());
        // Removals from a scope nothing links name no group.
        assert!(s.scopes[0].groups.is_empty());
    }
}
