//! A plan: typed, ordered actions plus what a person should know about the run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Mattermost account as plans name it: id for the API, username for people.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    pub id: String,
    pub username: String,
}

/// A user an add action brings in, with the groups that want them there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanMember {
    pub id: String,
    pub username: String,
    pub groups: Vec<String>,
}

/// A channel by id and `team/channel` name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRef {
    pub id: String,
    pub channel: String,
}

/// One step of a plan. Ledger-only actions (`record_*`) change nothing in Mattermost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Add users to a team (at most 256 per action).
    AddTeamMembers {
        team_id: String,
        team: String,
        users: Vec<PlanMember>,
    },
    /// Add users to a channel (at most 1000 per action); their team membership comes first.
    AddChannelMembers {
        channel_id: String,
        channel: String,
        users: Vec<PlanMember>,
    },
    /// Make a user channel admin (`true`) or take the role back (`false`).
    SetChannelAdmin {
        channel_id: String,
        channel: String,
        user: UserRef,
        admin: bool,
        groups: Vec<String>,
    },
    RemoveChannelMember {
        channel_id: String,
        channel: String,
        user: UserRef,
        mode: crate::Mode,
    },
    /// Removes a user from a team; Mattermost takes them out of the team's channels with it
    /// (`channels`, hand-joined ones included), and the ledger records those as removed by
    /// mattersync too, so they come back when the user rejoins.
    RemoveTeamMember {
        team_id: String,
        team: String,
        user: UserRef,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        channels: Vec<ChannelRef>,
    },
    /// Ledger only: these users were members already when a link first wanted them.
    RecordPreexisting {
        scope_id: String,
        scope: String,
        users: Vec<UserRef>,
    },
    /// Ledger only: these users were gone without mattersync removing them.
    RecordDeparted {
        scope_id: String,
        scope: String,
        users: Vec<UserRef>,
    },
    /// Ledger only: someone took back by hand the channel admin role mattersync granted
    /// these users; it is not granted again unless the link says `readd = "always"`.
    RecordDemoted {
        channel_id: String,
        channel: String,
        users: Vec<UserRef>,
    },
}

impl Action {
    /// The team or channel the action is about: its kind, id and `team[/channel]` name.
    pub fn scope(&self) -> (crate::ScopeKind, &str, &str) {
        use crate::ScopeKind;
        match self {
            Action::AddTeamMembers { team_id, team, .. }
            | Action::RemoveTeamMember { team_id, team, .. } => (ScopeKind::Team, team_id, team),
            Action::AddChannelMembers {
                channel_id,
                channel,
                ..
            }
            | Action::SetChannelAdmin {
                channel_id,
                channel,
                ..
            }
            | Action::RemoveChannelMember {
                channel_id,
                channel,
                ..
            }
            | Action::RecordDemoted {
                channel_id,
                channel,
                ..
            } => (ScopeKind::Channel, channel_id, channel),
            Action::RecordPreexisting {
                scope_id, scope, ..
            }
            | Action::RecordDeparted {
                scope_id, scope, ..
            } => (ScopeKind::of_path(scope), scope_id, scope),
        }
    }

    /// The users the action touches: id, username and the groups that caused it.
    pub fn subjects(&self) -> Vec<(&str, &str, &[String])> {
        match self {
            Action::AddTeamMembers { users, .. } | Action::AddChannelMembers { users, .. } => users
                .iter()
                .map(|u| (u.id.as_str(), u.username.as_str(), u.groups.as_slice()))
                .collect(),
            Action::SetChannelAdmin { user, groups, .. } => {
                vec![(user.id.as_str(), user.username.as_str(), groups.as_slice())]
            }
            Action::RemoveChannelMember { user, .. } | Action::RemoveTeamMember { user, .. } => {
                vec![(user.id.as_str(), user.username.as_str(), &[][..])]
            }
            Action::RecordPreexisting { users, .. }
            | Action::RecordDeparted { users, .. }
            | Action::RecordDemoted { users, .. } => users
                .iter()
                .map(|u| (u.id.as_str(), u.username.as_str(), &[][..]))
                .collect(),
        }
    }

    /// The membership write the action makes, which the intent journal notes before the
    /// call; `None` for actions that add or remove nobody.
    pub fn intent(&self) -> Option<crate::IntentKind> {
        use crate::IntentKind;
        match self {
            Action::AddTeamMembers { .. } | Action::AddChannelMembers { .. } => {
                Some(IntentKind::Add)
            }
            Action::RemoveChannelMember { .. } | Action::RemoveTeamMember { .. } => {
                Some(IntentKind::Remove)
            }
            Action::SetChannelAdmin { .. }
            | Action::RecordPreexisting { .. }
            | Action::RecordDeparted { .. }
            | Action::RecordDemoted { .. } => None,
        }
    }

    /// Whether the action calls the Mattermost API.
    pub fn writes_mattermost(&self) -> bool {
        match self {
            Action::AddTeamMembers { .. }
            | Action::AddChannelMembers { .. }
            | Action::SetChannelAdmin { .. }
            | Action::RemoveChannelMember { .. }
            | Action::RemoveTeamMember { .. } => true,
            Action::RecordPreexisting { .. }
            | Action::RecordDeparted { .. }
            | Action::RecordDemoted { .. } => false,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Action::AddTeamMembers { .. } => "add_team_members",
            Action::AddChannelMembers { .. } => "add_channel_members",
            Action::SetChannelAdmin { .. } => "set_channel_admin",
            Action::RemoveChannelMember { .. } => "remove_channel_member",
            Action::RemoveTeamMember { .. } => "remove_team_member",
            Action::RecordPreexisting { .. } => "record_preexisting",
            Action::RecordDeparted { .. } => "record_departed",
            Action::RecordDemoted { .. } => "record_demoted",
        }
    }

    pub fn is_removal(&self) -> bool {
        match self {
            Action::RemoveChannelMember { .. } | Action::RemoveTeamMember { .. } => true,
            Action::AddTeamMembers { .. }
            | Action::AddChannelMembers { .. }
            | Action::SetChannelAdmin { .. }
            | Action::RecordPreexisting { .. }
            | Action::RecordDeparted { .. }
            | Action::RecordDemoted { .. } => false,
        }
    }
}

/// Something a person should know that is not an action.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Note {
    /// A directory member with no Mattermost account yet; picked up when it appears.
    PendingUser {
        uid: String,
        groups: Vec<String>,
    },
    /// The matching Mattermost account is deactivated.
    InactiveUser {
        uid: String,
        username: String,
    },
    /// More than one Mattermost account matches; none is used.
    AmbiguousUser {
        uid: String,
        usernames: Vec<String>,
    },
    /// A link names a group the directory did not return.
    UnknownGroup {
        group: String,
        link: String,
    },
    UnknownTeam {
        team: String,
        link: String,
    },
    UnknownChannel {
        channel: String,
        link: String,
    },
    /// Archived channels are skipped.
    ArchivedChannel {
        channel: String,
        link: String,
    },
    /// Links to one channel disagree on the mode; the one that removes least wins.
    ModeConflict {
        channel: String,
        modes: Vec<crate::Mode>,
        used: crate::Mode,
    },
    /// Bots are never removed by `exclusive` links.
    SkippedBot {
        channel: String,
        username: String,
    },
    /// Kept by the `exclusive` allow-list.
    Allowed {
        channel: String,
        username: String,
    },
    /// Default channels are never a removal target.
    DefaultChannel {
        channel: String,
        username: String,
    },
    /// Left on their own earlier; not added again (`readd = "never"`).
    NotReadded {
        channel: String,
        username: String,
    },
}

/// Why a plan must not be applied without an explicit override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GuardTrip {
    MaxRemovals {
        removals: usize,
        max: usize,
    },
    MaxRemovalRatio {
        channel: String,
        removals: usize,
        members: usize,
        max_ratio: f64,
    },
    /// More memberships added in one run than `guards.max_additions` (e.g. a big group
    /// nested into a small linked one by mistake).
    MaxAdditions {
        additions: usize,
        max: usize,
    },
    MaxAdditionRatio {
        channel: String,
        additions: usize,
        members: usize,
        max_ratio: f64,
    },
    /// `serve`: this plan's removals and those applied within the window before it are more
    /// than `guards.max_removals` (a mass removal that arrives as many small changes).
    WindowRemovals {
        removals: usize,
        max: usize,
        window_secs: u64,
    },
    WindowAdditions {
        additions: usize,
        max: usize,
        window_secs: u64,
    },
}

impl GuardTrip {
    /// Whether the trip is about removals (as opposed to additions).
    pub fn is_removal(&self) -> bool {
        match self {
            GuardTrip::MaxRemovals { .. }
            | GuardTrip::MaxRemovalRatio { .. }
            | GuardTrip::WindowRemovals { .. } => true,
            GuardTrip::MaxAdditions { .. }
            | GuardTrip::MaxAdditionRatio { .. }
            | GuardTrip::WindowAdditions { .. } => false,
        }
    }
}

impl std::fmt::Display for GuardTrip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardTrip::MaxRemovals { removals, max } => write!(
                f,
                "{removals} removals planned, more than guards.max_removals = {max}"
            ),
            GuardTrip::MaxRemovalRatio {
                channel,
                removals,
                members,
                max_ratio,
            } => write!(
                f,
                "{channel}: {removals} of {members} members would be removed, more than guards.max_removal_ratio = {max_ratio}"
            ),
            GuardTrip::MaxAdditions { additions, max } => write!(
                f,
                "{additions} additions planned, more than guards.max_additions = {max}"
            ),
            GuardTrip::MaxAdditionRatio {
                channel,
                additions,
                members,
                max_ratio,
            } => write!(
                f,
                "{channel}: {additions} would be added to its {members} members, more than guards.max_addition_ratio = {max_ratio} times its size"
            ),
            GuardTrip::WindowRemovals {
                removals,
                max,
                window_secs,
            } => write!(
                f,
                "{removals} removals within the last {window_secs} s with this plan, more than guards.max_removals = {max}"
            ),
            GuardTrip::WindowAdditions {
                additions,
                max,
                window_secs,
            } => write!(
                f,
                "{additions} additions within the last {window_secs} s with this plan, more than guards.max_additions = {max}"
            ),
        }
    }
}

/// The difference between desired and actual state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Plan {
    /// SHA-256 of the inputs the plan was computed from; `apply` refuses a plan whose
    /// fingerprint no longer matches the current state.
    pub fingerprint: String,
    pub actions: Vec<Action>,
    pub notes: Vec<Note>,
    pub guard_trips: Vec<GuardTrip>,
}

impl Plan {
    /// Actions that call the Mattermost API.
    pub fn writes(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| a.writes_mattermost())
            .count()
    }

    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }

    /// Memberships the plan ends: channel and team removals, and the channels a team
    /// removal takes with it.
    pub fn removal_count(&self) -> usize {
        self.actions
            .iter()
            .map(|a| match a {
                Action::RemoveChannelMember { .. } => 1,
                Action::RemoveTeamMember { channels, .. } => 1 + channels.len(),
                Action::AddTeamMembers { .. }
                | Action::AddChannelMembers { .. }
                | Action::SetChannelAdmin { .. }
                | Action::RecordPreexisting { .. }
                | Action::RecordDeparted { .. }
                | Action::RecordDemoted { .. } => 0,
            })
            .sum()
    }

    /// Memberships the plan adds (team and channel).
    pub fn addition_count(&self) -> usize {
        self.actions
            .iter()
            .map(|a| match a {
                Action::AddTeamMembers { users, .. } | Action::AddChannelMembers { users, .. } => {
                    users.len()
                }
                Action::RemoveChannelMember { .. }
                | Action::RemoveTeamMember { .. }
                | Action::SetChannelAdmin { .. }
                | Action::RecordPreexisting { .. }
                | Action::RecordDeparted { .. }
                | Action::RecordDemoted { .. } => 0,
            })
            .sum()
    }

    /// The guards over time (`serve`): this plan's removals and additions on top of those
    /// applied within the last `window_secs`, against the per-run limits. Pure: the caller
    /// counts what it applied.
    pub fn window_trips(
        &self,
        guards: &crate::Guards,
        recent_removals: usize,
        recent_additions: usize,
        window_secs: u64,
    ) -> Vec<GuardTrip> {
        let mut trips = Vec::new();
        let (r, a) = (self.removal_count(), self.addition_count());
        // Only when the window adds something: past that, the per-run guard says it.
        if r > 0 && recent_removals > 0 && recent_removals + r > guards.max_removals {
            trips.push(GuardTrip::WindowRemovals {
                removals: recent_removals + r,
                max: guards.max_removals,
                window_secs,
            });
        }
        if a > 0 && recent_additions > 0 && recent_additions + a > guards.max_additions {
            trips.push(GuardTrip::WindowAdditions {
                additions: recent_additions + a,
                max: guards.max_additions,
                window_secs,
            });
        }
        trips
    }

    /// Count of actions by kind, in a stable order.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for a in &self.actions {
            let n = match a {
                Action::AddTeamMembers { users, .. } | Action::AddChannelMembers { users, .. } => {
                    users.len()
                }
                Action::RecordPreexisting { users, .. }
                | Action::RecordDeparted { users, .. }
                | Action::RecordDemoted { users, .. } => users.len(),
                Action::SetChannelAdmin { .. }
                | Action::RemoveChannelMember { .. }
                | Action::RemoveTeamMember { .. } => 1,
            };
            *m.entry(a.kind()).or_insert(0) += n;
        }
        m
    }
}

/// The version of the saved-plan file format (`mattersync plan --out`).
pub const SAVED_PLAN_FORMAT: u32 = 1;

/// A saved plan: `{"mattersync_plan": 1, "plan": {…}}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedPlan {
    mattersync_plan: u32,
    plan: Plan,
}

/// Why a saved plan cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedPlanError {
    #[error("not a plan saved by `mattersync plan --out`: {0}")]
    Malformed(String),
    #[error("plan format {0} is not supported (expected {SAVED_PLAN_FORMAT})")]
    Format(u32),
}

impl Plan {
    /// The plan as a saved-plan file.
    pub fn to_saved_json(&self) -> String {
        let saved = SavedPlan {
            mattersync_plan: SAVED_PLAN_FORMAT,
            plan: self.clone(),
        };
        // A plan is strings, numbers and lists: serializing it cannot fail.
        serde_json::to_string_pretty(&saved).unwrap_or_default() + "\n"
    }

    /// Reads a saved-plan file. Whether the plan may be applied is another question: `apply`
    /// runs it only if a fresh plan is the same.
    pub fn from_saved_json(text: &str) -> Result<Plan, SavedPlanError> {
        let saved: SavedPlan =
            serde_json::from_str(text).map_err(|e| SavedPlanError::Malformed(e.to_string()))?;
        if saved.mattersync_plan != SAVED_PLAN_FORMAT {
            return Err(SavedPlanError::Format(saved.mattersync_plan));
        }
        Ok(saved.plan)
    }
}

#[cfg(test)]
mod saved_tests {
    use super::*;

    #[test]
    fn the_guards_over_time_add_what_was_applied_recently() {
        let user = |id: &str| UserRef {
            id: id.into(),
            username: id.into(),
        };
        let plan = Plan {
            actions: vec![
                Action::RemoveChannelMember {
                    channel_id: "c1".into(),
                    channel: "tm/c".into(),
                    user: user("a"),
                    mode: crate::Mode::Sync,
                },
                Action::RemoveTeamMember {
                    team_id: "t1".into(),
                    team: "tm".into(),
                    user: user("b"),
                    channels: vec![ChannelRef {
                        id: "c2".into(),
                        channel: "tm/d".into(),
                    }],
                },
            ],
            ..Default::default()
        };
        assert_eq!(plan.removal_count(), 3);
        assert_eq!(plan.addition_count(), 0);
        let guards = crate::Guards {
            max_removals: 4,
            ..Default::default()
        };
        assert!(plan.window_trips(&guards, 1, 0, 600).is_empty(), "4 of 4");
        assert_eq!(
            plan.window_trips(&guards, 2, 5000, 600),
            vec![GuardTrip::WindowRemovals {
                removals: 5,
                max: 4,
                window_secs: 600
            }],
            "no additions in this plan: the addition window is not its concern"
        );
        assert!(Plan::default()
            .window_trips(&guards, 99, 99, 600)
            .is_empty());
        let tight = crate::Guards {
            max_removals: 2,
            ..Default::default()
        };
        assert!(
            plan.window_trips(&tight, 0, 0, 600).is_empty(),
            "nothing applied within the window: the per-run guard alone decides"
        );
    }

    #[test]
    fn a_saved_plan_reads_back_the_same_and_other_files_are_refused() {
        let plan = Plan {
            fingerprint: "ab".repeat(32),
            actions: vec![Action::RemoveTeamMember {
                team_id: "t1".into(),
                team: "rl".into(),
                user: UserRef {
                    id: "u1".into(),
                    username: "neil".into(),
                },
                channels: Vec::new(),
            }],
            notes: Vec::new(),
            guard_trips: vec![GuardTrip::MaxRemovalRatio {
                channel: "rl/infra".into(),
                removals: 3,
                members: 4,
                max_ratio: 0.2,
            }],
        };
        let text = plan.to_saved_json();
        assert_eq!(Plan::from_saved_json(&text), Ok(plan));
        assert!(matches!(
            Plan::from_saved_json(
                &text.replace("\"mattersync_plan\": 1", "\"mattersync_plan\": 2")
            ),
            Err(SavedPlanError::Format(2))
        ));
        for bad in [
            "",
            "{}",
            "[]",
            "{\"mattersync_plan\": 1}",
            &text[..text.len() / 2],
        ] {
            assert!(
                matches!(
                    Plan::from_saved_json(bad),
                    Err(SavedPlanError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        let extra = text.replacen("{", "{\"extra\": true, ", 1);
        assert!(matches!(
            Plan::from_saved_json(&extra),
            Err(SavedPlanError::Malformed(m)) if m.contains("extra")
        ));
    }
}
