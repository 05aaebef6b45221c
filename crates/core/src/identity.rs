//! Links by stable ids: a link is declared by names (config file, `link`, the naming
//! convention), and on first sight mattersync records the ids those names resolve to: the
//! group's directory id, the team's and channel's Mattermost ids. From then on the ids
//! decide: a renamed group or channel keeps its link, and a new one that takes an old name
//! gets nothing. Pure: what the names resolve to is looked up by the engine.

use crate::model::Directory;
use crate::policy::{Link, Target};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a declared link resolved to, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkIdentity {
    /// The link as declared.
    pub group: String,
    pub target: Target,
    pub group_id: Option<String>,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    /// The names last seen for those ids.
    pub group_seen: Option<String>,
    pub target_seen: Option<String>,
}

/// A team as Mattermost describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamInfo {
    pub id: String,
    pub name: String,
    pub archived: bool,
}

/// A channel as Mattermost describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: String,
    pub team_id: String,
    pub name: String,
    /// A direct or group message channel: never a link target.
    pub direct: bool,
    pub archived: bool,
}

/// Something about a link that an admin must know, on every run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LinkIssue {
    /// Followed by id: the link keeps working.
    GroupRenamed {
        link: String,
        from: String,
        to: String,
    },
    TeamRenamed {
        link: String,
        from: String,
        to: String,
    },
    ChannelRenamed {
        link: String,
        from: String,
        to: String,
    },
    /// The group the link was made for is gone from the directory.
    GroupGone { link: String, group: String },
    /// Another group now has the name the link declares; it is not adopted.
    GroupReplaced { link: String, group: String },
    /// The team or channel the link was made for no longer exists.
    TargetGone { link: String, target: String },
    /// Another team or channel now has the name the link declares; it is not adopted.
    TargetReplaced { link: String, target: String },
    /// The team or channel the link was made for is archived (`target`: its name now); it
    /// is left alone until it is restored or the link is removed.
    TargetArchived { link: String, target: String },
    /// The target is a direct or group message channel.
    DirectMessage { link: String, target: String },
    /// A group linked by the naming convention was renamed: the link stays on the channel it
    /// was made for; the convention would now name another.
    ConventionMoved { link: String, now: String },
}

impl LinkIssue {
    /// The link cannot do its job (as opposed to a rename that is followed).
    pub fn broken(&self) -> bool {
        match self {
            LinkIssue::GroupRenamed { .. }
            | LinkIssue::TeamRenamed { .. }
            | LinkIssue::ChannelRenamed { .. }
            | LinkIssue::ConventionMoved { .. } => false,
            LinkIssue::GroupGone { .. }
            | LinkIssue::GroupReplaced { .. }
            | LinkIssue::TargetGone { .. }
            | LinkIssue::TargetReplaced { .. }
            | LinkIssue::TargetArchived { .. }
            | LinkIssue::DirectMessage { .. } => true,
        }
    }
}

impl fmt::Display for LinkIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkIssue::GroupRenamed { link, from, to } => write!(
                f,
                "link {link}: the group was renamed from {from} to {to}; the link follows it (update the name where the link is declared)"
            ),
            LinkIssue::TeamRenamed { link, from, to } => write!(
                f,
                "link {link}: the team was renamed from {from} to {to}; the link follows it"
            ),
            LinkIssue::ChannelRenamed { link, from, to } => write!(
                f,
                "link {link}: the channel was renamed from {from} to {to}; the link follows it"
            ),
            LinkIssue::GroupGone { link, group } => write!(
                f,
                "BROKEN link {link}: the group {group} it was made for is gone from the directory; its channel is add-only until the link is removed or the group returns"
            ),
            LinkIssue::GroupReplaced { link, group } => write!(
                f,
                "BROKEN link {link}: {group} is now another group (a different directory id); it is not adopted — unlink and link again if it is meant"
            ),
            LinkIssue::TargetGone { link, target } => write!(
                f,
                "BROKEN link {link}: {target} no longer exists in Mattermost"
            ),
            LinkIssue::TargetReplaced { link, target } => write!(
                f,
                "BROKEN link {link}: {target} is now another team or channel (a different id); it gets nothing — unlink and link again if it is meant"
            ),
            LinkIssue::ConventionMoved { link, now } => write!(
                f,
                "link {link}: the group was renamed; the link stays on the channel it was made for, though the naming convention now points at {now} (link the group there, or rename the channel, if that is meant)"
            ),
            LinkIssue::TargetArchived { link, target } => write!(
                f,
                "BROKEN link {link}: {target} is archived in Mattermost; nothing is changed there until it is restored or the link is removed"
            ),
            LinkIssue::DirectMessage { link, target } => write!(
                f,
                "BROKEN link {link}: {target} is a direct or group message channel, never a link target"
            ),
        }
    }
}

/// A name no directory group and no Mattermost team or channel can have: a link rewritten to
/// it is planned as one whose group or target is unknown (its channel add-only), so nothing
/// that merely took an old name is ever acted on.
pub fn unresolvable(name: &str) -> String {
    format!("{name} (gone)")
}

/// With `auto_link`, a renamed group would get a new convention link (to the channel its new
/// name derives) and lose the one it had. Instead the link it had stays: a convention link
/// whose group is, by id, the group of a recorded convention-era link with another name is
/// replaced by that recorded link, and the move is reported.
pub fn keep_convention_targets(
    declared: Vec<Link>,
    known: &[LinkIdentity],
    dir: &Directory,
) -> (Vec<Link>, Vec<LinkIssue>) {
    let mut issues = Vec::new();
    let declared_keys: std::collections::BTreeSet<(String, Target)> = declared
        .iter()
        .map(|l| (l.group.clone(), l.target.clone()))
        .collect();
    let out = declared
        .into_iter()
        .map(|l| {
            if l.source != crate::policy::LinkSource::Convention {
                return l;
            }
            let Some(id) = dir.groups.get(&l.group).map(|g| g.id.as_str()) else {
                return l;
            };
            let earlier = known.iter().find(|k| {
                k.group_id.as_deref() == Some(id)
                    && k.group != l.group
                    && !dir.groups.contains_key(&k.group)
                    && !declared_keys.contains(&(k.group.clone(), k.target.clone()))
                    && matches!(k.target, Target::Channel { .. })
            });
            match earlier {
                Some(k) => {
                    let kept = Link {
                        group: k.group.clone(),
                        target: k.target.clone(),
                        ..l.clone()
                    };
                    issues.push(LinkIssue::ConventionMoved {
                        link: kept.id(),
                        now: l.target.to_string(),
                    });
                    kept
                }
                None => l,
            }
        })
        .collect();
    (out, issues)
}

/// The group a link means now: its recorded id decides. Returns the link's group name for
/// this run, what to report, and the id to record on first sight.
pub fn identify_group(
    link: &Link,
    known: Option<&LinkIdentity>,
    dir: &Directory,
) -> (String, Option<LinkIssue>, Option<String>) {
    let declared = &link.group;
    match known.and_then(|k| k.group_id.as_deref()) {
        Some(id) => match dir.groups.values().find(|g| g.id == id) {
            Some(g) if g.cn == *declared => (g.cn.clone(), None, None),
            Some(g) => (
                g.cn.clone(),
                Some(LinkIssue::GroupRenamed {
                    link: link.id(),
                    from: declared.clone(),
                    to: g.cn.clone(),
                }),
                None,
            ),
            None if dir.groups.contains_key(declared) => (
                unresolvable(declared),
                Some(LinkIssue::GroupReplaced {
                    link: link.id(),
                    group: declared.clone(),
                }),
                None,
            ),
            None => (
                unresolvable(declared),
                Some(LinkIssue::GroupGone {
                    link: link.id(),
                    group: declared.clone(),
                }),
                None,
            ),
        },
        // First sight (or a group not seen yet): the name decides, and its id is learned.
        None => (
            declared.clone(),
            None,
            dir.groups
                .get(declared)
                .map(|g| g.id.clone())
                .filter(|id| !id.is_empty()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DirGroup;
    use crate::policy::{Admins, LinkSource, Mode, Readd};

    fn link(group: &str) -> Link {
        Link {
            group: group.into(),
            target: "tm/c".parse().expect("target"),
            mode: Mode::Sync,
            admins: Admins::None,
            readd: Readd::Never,
            source: LinkSource::Config,
        }
    }

    fn dir(groups: &[(&str, &str)]) -> Directory {
        let mut d = Directory::default();
        for (cn, id) in groups {
            d.groups.insert(
                cn.to_string(),
                DirGroup {
                    id: id.to_string(),
                    cn: cn.to_string(),
                    ..Default::default()
                },
            );
        }
        d
    }

    fn known(group_id: &str) -> LinkIdentity {
        LinkIdentity {
            group: "mm_a_old".into(),
            target: "tm/c".parse().expect("target"),
            group_id: Some(group_id.into()),
            team_id: None,
            channel_id: None,
            group_seen: None,
            target_seen: None,
        }
    }

    #[test]
    fn the_id_decides_once_it_is_known() {
        let l = link("mm_a_old");
        // First sight: the name resolves, and its id is learned.
        let (g, issue, learned) = identify_group(&l, None, &dir(&[("mm_a_old", "id1")]));
        assert_eq!(
            (g.as_str(), issue, learned.as_deref()),
            ("mm_a_old", None, Some("id1"))
        );
        // Renamed: followed by id, and said.
        let (g, issue, learned) =
            identify_group(&l, Some(&known("id1")), &dir(&[("mm_a_new", "id1")]));
        assert_eq!(g, "mm_a_new");
        assert!(matches!(issue, Some(LinkIssue::GroupRenamed { ref to, .. }) if to == "mm_a_new"));
        assert!(!issue.as_ref().is_some_and(LinkIssue::broken));
        assert_eq!(learned, None);
        // Renamed, and a new group took the old name: the new one is not adopted.
        let (g, _, _) = identify_group(
            &l,
            Some(&known("id1")),
            &dir(&[("mm_a_new", "id1"), ("mm_a_old", "id2")]),
        );
        assert_eq!(g, "mm_a_new");
        // The old group is gone and another has its name: broken, never adopted.
        let (g, issue, _) = identify_group(&l, Some(&known("id1")), &dir(&[("mm_a_old", "id2")]));
        assert_eq!(g, unresolvable("mm_a_old"));
        assert!(matches!(issue, Some(LinkIssue::GroupReplaced { .. })));
        assert!(issue.as_ref().is_some_and(LinkIssue::broken));
        // Gone without a successor.
        let (_, issue, _) = identify_group(&l, Some(&known("id1")), &dir(&[]));
        assert!(matches!(issue, Some(LinkIssue::GroupGone { .. })));
    }

    #[test]
    fn a_renamed_group_keeps_its_convention_link() {
        let mut conv = link("mm_a_new");
        conv.source = LinkSource::Convention;
        conv.target = "tm/new".parse().expect("target");
        let mut old = known("id1");
        old.target = "tm/old".parse().expect("target");
        let d = dir(&[("mm_a_new", "id1")]);
        let (links, issues) = keep_convention_targets(vec![conv.clone()], &[old.clone()], &d);
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].group, "mm_a_old", "the link as it was recorded");
        assert_eq!(links[0].target.to_string(), "tm/old");
        assert_eq!(
            issues,
            vec![LinkIssue::ConventionMoved {
                link: "mm_a_old->tm/old".into(),
                now: "tm/new".into()
            }]
        );
        // Not renamed (the old name still exists): nothing is kept from elsewhere.
        let d = dir(&[("mm_a_new", "id1"), ("mm_a_old", "id9")]);
        let (links, issues) = keep_convention_targets(vec![conv.clone()], &[old], &d);
        assert_eq!(links, vec![conv]);
        assert!(issues.is_empty());
    }
}
