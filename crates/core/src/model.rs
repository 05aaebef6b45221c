//! What mattersync knows of the directory, of Mattermost and of its own ledger, as plain
//! data. Every collection is a `BTreeMap`/`BTreeSet`, so iteration order (and therefore every
//! plan, snapshot and log) is deterministic.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A directory user, keyed by its user id (`uid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DirUser {
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The value Mattermost keeps in `auth_data` for this user (defaults to the uid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_id: Option<String>,
    /// `nsAccountLock: TRUE`: not a member for sync purposes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// A directory group with its direct members and managers. Nested groups are named by `cn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DirGroup {
    /// Stable id (`ipaUniqueID`, `nsUniqueId` or `entryUUID`).
    pub id: String,
    pub cn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub member_users: BTreeSet<String>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub member_groups: BTreeSet<String>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub manager_users: BTreeSet<String>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub manager_groups: BTreeSet<String>,
}

/// Everything read from the directory in one run: the groups that matched the filter, the
/// groups they nest, and the users they reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Directory {
    pub users: BTreeMap<String, DirUser>,
    pub groups: BTreeMap<String, DirGroup>,
}

impl Directory {
    /// The members of a group for sync purposes: direct and nested users that exist and are
    /// not disabled. Cycles in nesting are tolerated (each group is visited once).
    pub fn effective_members(&self, cn: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut out = BTreeSet::new();
        let mut stack = vec![cn.to_string()];
        while let Some(g) = stack.pop() {
            if !seen.insert(g.clone()) {
                continue;
            }
            let Some(group) = self.groups.get(&g) else {
                continue;
            };
            out.extend(
                group
                    .member_users
                    .iter()
                    .filter(|u| self.is_active(u))
                    .cloned(),
            );
            stack.extend(group.member_groups.iter().cloned());
        }
        out
    }

    /// The managers of a group: manager users plus the effective members of manager groups.
    pub fn effective_managers(&self, cn: &str) -> BTreeSet<String> {
        let Some(group) = self.groups.get(cn) else {
            return BTreeSet::new();
        };
        let mut out: BTreeSet<String> = group
            .manager_users
            .iter()
            .filter(|u| self.is_active(u))
            .cloned()
            .collect();
        for g in &group.manager_groups {
            out.extend(self.effective_members(g));
        }
        out
    }

    fn is_active(&self, uid: &str) -> bool {
        self.users.get(uid).is_some_and(|u| !u.disabled)
    }

    /// The part of the directory that `groups` mean: those groups, every group they nest or
    /// name as manager (transitively), and every user those reference. What these groups'
    /// members and managers are is the same in the part as in the whole.
    pub fn part_for<'a>(&self, groups: impl IntoIterator<Item = &'a str>) -> Directory {
        let mut part = Directory::default();
        let mut stack: Vec<&str> = groups.into_iter().collect();
        while let Some(cn) = stack.pop() {
            if part.groups.contains_key(cn) {
                continue;
            }
            let Some(g) = self.groups.get(cn) else {
                continue;
            };
            for uid in g.member_users.iter().chain(&g.manager_users) {
                if let Some(u) = self.users.get(uid) {
                    part.users.entry(uid.clone()).or_insert_with(|| u.clone());
                }
            }
            stack.extend(
                g.member_groups
                    .iter()
                    .chain(&g.manager_groups)
                    .map(String::as_str),
            );
            part.groups.insert(cn.to_string(), g.clone());
        }
        part
    }
}

/// A Mattermost account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MmUser {
    pub id: String,
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_service: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_data: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_bot: bool,
    /// Deactivated (`delete_at > 0`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inactive: bool,
}

/// A member of a team or a channel, by user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelMember {
    pub scheme_admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MmTeam {
    pub id: String,
    pub name: String,
    pub members: BTreeMap<String, ChannelMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MmChannel {
    pub id: String,
    /// Team name.
    pub team: String,
    pub name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    pub members: BTreeMap<String, ChannelMember>,
}

impl MmChannel {
    /// `team/channel`, the way links name channels.
    pub fn path(&self) -> String {
        format!("{}/{}", self.team, self.name)
    }

    /// Default channels cannot be left and are never a removal target.
    pub fn is_default(&self) -> bool {
        self.name == "town-square"
    }
}

/// What was read from Mattermost: the teams and channels that links name (by name and
/// `team/channel`), and the accounts that matter to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Mattermost {
    pub users: BTreeMap<String, MmUser>,
    pub teams: BTreeMap<String, MmTeam>,
    pub channels: BTreeMap<String, MmChannel>,
    /// For users a plan removes from a team: the team's channels they are in (by user id,
    /// then team name), linked or not, which Mattermost drops with the team.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub user_channels: BTreeMap<String, BTreeMap<String, Vec<crate::plan::ChannelRef>>>,
}

/// Who created a membership the ledger knows of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// mattersync added the user: it may remove them in `sync` mode.
    Added,
    /// The user was already there when a link first wanted them: never removed in `sync`.
    Preexisting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Last seen as a member.
    Present,
    /// Was a member, then was gone without mattersync removing them: left on their own (or
    /// was removed by someone else). Not re-added unless the link says `readd = "always"`.
    Departed,
    /// mattersync removed them.
    Removed,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Added => "added",
            Origin::Preexisting => "preexisting",
        })
    }
}

impl std::fmt::Display for RecordState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordState::Present => "present",
            RecordState::Departed => "departed",
            RecordState::Removed => "removed",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub origin: Origin,
    pub state: RecordState,
}

/// What the ledger knows, by team or channel id and then user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerFacts {
    pub teams: BTreeMap<String, BTreeMap<String, Record>>,
    pub channels: BTreeMap<String, BTreeMap<String, Record>>,
    /// Channel admin roles mattersync granted (and may therefore take back).
    pub channel_admins: BTreeMap<String, BTreeSet<String>>,
    /// Channel admin roles mattersync granted and someone took back by hand: not granted
    /// again unless a link says `readd = "always"`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub channel_admins_demoted: BTreeMap<String, BTreeSet<String>>,
}

impl LedgerFacts {
    /// Team and channel memberships mattersync added and still holds.
    pub fn owned(&self) -> usize {
        self.channels
            .values()
            .chain(self.teams.values())
            .flat_map(|m| m.values())
            .filter(|r| r.origin == Origin::Added && r.state == RecordState::Present)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: &str, disabled: bool) -> (String, DirUser) {
        (
            uid.to_string(),
            DirUser {
                uid: uid.to_string(),
                disabled,
                ..Default::default()
            },
        )
    }

    fn group(cn: &str, users: &[&str], groups: &[&str]) -> (String, DirGroup) {
        (
            cn.to_string(),
            DirGroup {
                id: format!("id-{cn}"),
                cn: cn.to_string(),
                member_users: users.iter().map(|s| s.to_string()).collect(),
                member_groups: groups.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn nested_members_resolve_through_cycles_and_skip_disabled_and_unknown() {
        let dir = Directory {
            users: [user("a", false), user("b", false), user("c", true)].into(),
            groups: [
                group("g1", &["a", "ghost"], &["g2"]),
                group("g2", &["b", "c"], &["g1"]),
            ]
            .into(),
        };
        let got: Vec<_> = dir.effective_members("g1").into_iter().collect();
        assert_eq!(got, ["a", "b"]);
        assert!(dir.effective_members("missing").is_empty());
    }

    #[test]
    fn managers_include_members_of_manager_groups() {
        let mut dir = Directory {
            users: [user("a", false), user("b", false), user("m", false)].into(),
            groups: [group("g1", &["a"], &[]), group("mgrs", &["b"], &[])].into(),
        };
        if let Some(g) = dir.groups.get_mut("g1") {
            g.manager_users.insert("m".into());
            g.manager_groups.insert("mgrs".into());
        }
        let got: Vec<_> = dir.effective_managers("g1").into_iter().collect();
        assert_eq!(got, ["b", "m"]);
    }
}
