//! The intent journal's rules, pure: what a write noted before its API call means once
//! Mattermost shows whether it happened.
//!
//! The ledger writes these decisions down (only a run holding the run lock does); a
//! read-only command applies the same decisions to its in-memory copy of the facts instead,
//! so `plan` sees what `apply` would see and never writes.

use crate::model::{LedgerFacts, Mattermost, Origin, Record, RecordState};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A membership is in a team or in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    Team,
    Channel,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Team => "team",
            ScopeKind::Channel => "channel",
        }
    }

    /// The kind of a scope written as a target: `team` or `team/channel` (Mattermost names
    /// never hold a `/`).
    pub fn of_path(path: &str) -> ScopeKind {
        if path.contains('/') {
            ScopeKind::Channel
        } else {
            ScopeKind::Team
        }
    }
}

impl fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScopeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "team" => Ok(ScopeKind::Team),
            "channel" => Ok(ScopeKind::Channel),
            other => Err(format!("unknown scope kind {other:?}")),
        }
    }
}

/// The write an intent announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentKind {
    Add,
    Remove,
}

impl IntentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentKind::Add => "add",
            IntentKind::Remove => "remove",
        }
    }
}

impl std::str::FromStr for IntentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "add" => Ok(IntentKind::Add),
            "remove" => Ok(IntentKind::Remove),
            other => Err(format!("unknown intent {other:?}")),
        }
    }
}

/// A write noted before its API call whose outcome was never recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Intent {
    pub scope_kind: ScopeKind,
    pub scope_id: String,
    pub user_id: String,
    pub intent: IntentKind,
    /// The ledger row exists only because of this intent (an add to someone mattersync had
    /// no record of): it is not a fact yet.
    pub placeholder: bool,
}

/// What an intent becomes once Mattermost shows whether the write happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The add happened: a membership mattersync added.
    Added,
    /// The removal happened: mattersync removed the user.
    Removed,
    /// The add did not happen and there was no record before it: forget the row.
    Forget,
    /// The write did not happen: the record stays as it was.
    Unchanged,
}

/// The one rule: an add that shows is ours; a removal that shows is ours; anything else
/// never happened.
pub fn settle(intent: &Intent, member: bool) -> Settlement {
    match (intent.intent, member) {
        (IntentKind::Add, true) => Settlement::Added,
        (IntentKind::Remove, false) => Settlement::Removed,
        (IntentKind::Add, false) | (IntentKind::Remove, true) if intent.placeholder => {
            Settlement::Forget
        }
        (IntentKind::Add, false) | (IntentKind::Remove, true) => Settlement::Unchanged,
    }
}

/// Whether `user_id` is a member of the scope as `mattermost` shows it; `None` when that
/// scope was not read (its intents stay unsettled).
pub fn is_member(
    mattermost: &Mattermost,
    kind: ScopeKind,
    scope_id: &str,
    user_id: &str,
) -> Option<bool> {
    match kind {
        ScopeKind::Team => mattermost
            .teams
            .values()
            .find(|t| t.id == scope_id)
            .map(|t| t.members.contains_key(user_id)),
        ScopeKind::Channel => mattermost
            .channels
            .values()
            .find(|c| c.id == scope_id)
            .map(|c| c.members.contains_key(user_id)),
    }
}

/// The facts as they will be once `intents` are settled against `mattermost`, without
/// writing anything: what a read-only command plans from.
pub fn settled_view(
    facts: &LedgerFacts,
    intents: &[Intent],
    mattermost: &Mattermost,
) -> LedgerFacts {
    let mut out = facts.clone();
    for i in intents {
        let Some(member) = is_member(mattermost, i.scope_kind, &i.scope_id, &i.user_id) else {
            continue;
        };
        let map = match i.scope_kind {
            ScopeKind::Team => &mut out.teams,
            ScopeKind::Channel => &mut out.channels,
        };
        match settle(i, member) {
            Settlement::Added => {
                map.entry(i.scope_id.clone()).or_default().insert(
                    i.user_id.clone(),
                    Record {
                        origin: Origin::Added,
                        state: RecordState::Present,
                    },
                );
            }
            Settlement::Removed => {
                if let Some(r) = map.get_mut(&i.scope_id).and_then(|m| m.get_mut(&i.user_id)) {
                    r.state = RecordState::Removed;
                }
            }
            Settlement::Forget | Settlement::Unchanged => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChannelMember, MmChannel, MmTeam};

    fn intent(kind: IntentKind, placeholder: bool) -> Intent {
        Intent {
            scope_kind: ScopeKind::Channel,
            scope_id: "c1".into(),
            user_id: "u1".into(),
            intent: kind,
            placeholder,
        }
    }

    #[test]
    fn the_rule_covers_every_case() {
        use IntentKind::*;
        let cases = [
            (Add, false, true, Settlement::Added),
            (Add, true, true, Settlement::Added),
            (Add, false, false, Settlement::Unchanged),
            (Add, true, false, Settlement::Forget),
            (Remove, false, false, Settlement::Removed),
            (Remove, false, true, Settlement::Unchanged),
            (Remove, true, true, Settlement::Forget),
        ];
        for (kind, placeholder, member, want) in cases {
            assert_eq!(
                settle(&intent(kind, placeholder), member),
                want,
                "{kind:?} placeholder={placeholder} member={member}"
            );
        }
    }

    fn mm_with_member(member: bool) -> Mattermost {
        let mut c = MmChannel {
            id: "c1".into(),
            name: "chan".into(),
            team: "t".into(),
            ..Default::default()
        };
        if member {
            c.members.insert("u1".into(), ChannelMember::default());
        }
        let mut m = Mattermost::default();
        m.channels.insert("t/chan".into(), c);
        m.teams.insert(
            "t".into(),
            MmTeam {
                id: "t1".into(),
                name: "t".into(),
                ..Default::default()
            },
        );
        m
    }

    #[test]
    fn the_view_reads_pending_writes_as_the_ledger_would_settle_them() {
        let facts = LedgerFacts::default();
        // An add that happened is ours.
        let v = settled_view(
            &facts,
            &[intent(IntentKind::Add, true)],
            &mm_with_member(true),
        );
        assert_eq!(
            v.channels.get("c1").and_then(|m| m.get("u1")),
            Some(&Record {
                origin: Origin::Added,
                state: RecordState::Present
            })
        );
        // An add that did not happen leaves no record.
        let v = settled_view(
            &facts,
            &[intent(IntentKind::Add, true)],
            &mm_with_member(false),
        );
        assert_eq!(v, facts);
        // A removal that happened is ours, not a departure.
        let mut owned = LedgerFacts::default();
        owned.channels.entry("c1".into()).or_default().insert(
            "u1".into(),
            Record {
                origin: Origin::Added,
                state: RecordState::Present,
            },
        );
        let v = settled_view(
            &owned,
            &[intent(IntentKind::Remove, false)],
            &mm_with_member(false),
        );
        assert_eq!(
            v.channels
                .get("c1")
                .and_then(|m| m.get("u1"))
                .map(|r| r.state),
            Some(RecordState::Removed)
        );
        // A scope that was not read keeps its intents unsettled.
        let mut other = intent(IntentKind::Remove, false);
        other.scope_id = "elsewhere".into();
        assert_eq!(
            settled_view(&owned, &[other], &mm_with_member(false)),
            owned
        );
    }
}
