//! Which links a directory change can affect. Pure: two snapshots and the links in, the links
//! to plan out. The planner itself never learns that it sees only part of the links.
//!
//! The unit the planner reasons about is a scope (a channel, or a team with a team-level
//! link), so a scope is planned whole or not at all: every link of an affected channel (two
//! groups on one channel never remove each other's members), and every link in a team that
//! has a team-level link (whose removals look at all of the team's channel links).

use crate::{Admins, DirUser, Directory, Link, Target};
use std::collections::{BTreeMap, BTreeSet};

/// What a group means to a sync: its effective members (with the user records the planner
/// matches on) and its effective managers. `None` for a group the directory does not hold.
type View<'a> = Option<(BTreeMap<String, Option<&'a DirUser>>, BTreeSet<String>)>;

fn view<'a>(dir: &'a Directory, cn: &str) -> View<'a> {
    dir.groups.get(cn)?;
    let members = dir
        .effective_members(cn)
        .into_iter()
        .map(|uid| {
            let user = dir.users.get(&uid);
            (uid, user)
        })
        .collect();
    Some((members, dir.effective_managers(cn)))
}

/// The groups whose view changed between two snapshots: added or gone, members or managers
/// changed (nested groups included), or a member's account record changed (disabled, email,
/// auth id).
pub fn changed_groups(old: &Directory, new: &Directory) -> BTreeSet<String> {
    old.groups
        .keys()
        .chain(new.groups.keys())
        .filter(|cn| view(old, cn) != view(new, cn))
        .cloned()
        .collect()
}

/// [`changed_groups`], when only `candidates` can have changed (the directory model says
/// which groups a refresh touched): the same answer without comparing every group.
pub fn changed_groups_among(
    old: &Directory,
    new: &Directory,
    candidates: &BTreeSet<String>,
) -> BTreeSet<String> {
    candidates
        .iter()
        .filter(|cn| view(old, cn) != view(new, cn))
        .cloned()
        .collect()
}

/// Whether the change of `groups` from `old` to `new` can take anything from anyone: a
/// group gone, an effective member or manager gone, or a member's account record changed
/// (disabled, e-mail, auth id). A change that cannot only adds, and needs no removal
/// planned ([`affected_links_adding`]).
pub fn can_remove(old: &Directory, new: &Directory, groups: &BTreeSet<String>) -> bool {
    groups
        .iter()
        .any(|cn| match (view(old, cn), view(new, cn)) {
            (None, None) => false,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((om, og)), Some((nm, ng))) => {
                !og.is_subset(&ng)
                    || om
                        .iter()
                        .any(|(uid, u)| nm.get(uid).is_none_or(|now| now != u))
            }
        })
}

/// The users a change of `groups` is about, by directory uid: effective members and
/// managers added or gone, and members whose account record changed.
pub fn subjects(old: &Directory, new: &Directory, groups: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for cn in groups {
        let (om, og) = view(old, cn).unwrap_or_default();
        let (nm, ng) = view(new, cn).unwrap_or_default();
        out.extend(og.symmetric_difference(&ng).cloned());
        for uid in om.keys().chain(nm.keys()) {
            if om.get(uid) != nm.get(uid) {
                out.insert(uid.clone());
            }
        }
    }
    out
}

/// The links to plan for a change of `groups` that cannot remove anyone ([`can_remove`]
/// is false): every link of each channel a link of these groups names (channels stay whole),
/// and the team-level links of these groups made add-only. The team's other links need not
/// be planned: a team-level link's removals are the only reason to plan them, and nobody
/// leaves anything in this change.
pub fn affected_links_adding(links: &[Link], groups: &BTreeSet<String>) -> Vec<Link> {
    let touched = |l: &Link| {
        groups.contains(&l.group) || matches!(&l.admins, Admins::Group(g) if groups.contains(g))
    };
    let channels: BTreeSet<&Target> = links
        .iter()
        .filter(|l| touched(l) && matches!(l.target, Target::Channel { .. }))
        .map(|l| &l.target)
        .collect();
    links
        .iter()
        .filter_map(|l| match &l.target {
            Target::Channel { .. } if channels.contains(&l.target) => Some(l.clone()),
            Target::Team { .. } if touched(l) => Some(Link {
                mode: crate::Mode::Add,
                ..l.clone()
            }),
            _ => None,
        })
        .collect()
}

/// The targets whose links differ between two resolutions (a link added, removed or
/// changed: from the ledger, the file, or the naming convention).
pub fn changed_targets(old: &[Link], new: &[Link]) -> BTreeSet<Target> {
    let a: BTreeSet<&Link> = old.iter().collect();
    let b: BTreeSet<&Link> = new.iter().collect();
    a.symmetric_difference(&b)
        .map(|l| l.target.clone())
        .collect()
}

/// The links to plan when `groups` changed and `targets` were asked for: every link that
/// names a changed group (as its group or its admins group) or an asked-for target, widened
/// to whole scopes.
pub fn affected_links(
    links: &[Link],
    groups: &BTreeSet<String>,
    targets: &BTreeSet<Target>,
) -> Vec<Link> {
    let touched = |l: &Link| {
        groups.contains(&l.group)
            || matches!(&l.admins, Admins::Group(g) if groups.contains(g))
            || targets.contains(&l.target)
    };
    let mut channels: BTreeSet<&Target> = BTreeSet::new();
    let mut teams: BTreeSet<&str> = BTreeSet::new();
    let team_linked: BTreeSet<&str> = links
        .iter()
        .filter(|l| matches!(l.target, Target::Team { .. }))
        .map(|l| l.target.team())
        .collect();
    for l in links.iter().filter(|l| touched(l)) {
        match &l.target {
            Target::Team { team } => {
                teams.insert(team);
            }
            Target::Channel { team, .. } if team_linked.contains(team.as_str()) => {
                teams.insert(team);
            }
            t @ Target::Channel { .. } => {
                channels.insert(t);
            }
        }
    }
    // Asked-for targets that no link names any more (an unlink) need no planning: nothing
    // is linked there.
    links
        .iter()
        .filter(|l| teams.contains(l.target.team()) || channels.contains(&l.target))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DirGroup, LinkSource, Mode, Readd};

    fn user(uid: &str) -> (String, DirUser) {
        (
            uid.to_string(),
            DirUser {
                uid: uid.to_string(),
                ..Default::default()
            },
        )
    }

    fn group(cn: &str, users: &[&str], nested: &[&str]) -> (String, DirGroup) {
        (
            cn.to_string(),
            DirGroup {
                id: format!("id-{cn}"),
                cn: cn.to_string(),
                member_users: users.iter().map(|s| s.to_string()).collect(),
                member_groups: nested.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        )
    }

    fn dir(groups: Vec<(String, DirGroup)>) -> Directory {
        Directory {
            users: ["a", "b", "c", "d"].into_iter().map(user).collect(),
            groups: groups.into_iter().collect(),
        }
    }

    fn link(group: &str, target: &str) -> Link {
        Link {
            group: group.to_string(),
            target: target.parse().expect("target"),
            mode: Mode::Sync,
            admins: Admins::None,
            readd: Readd::Never,
            source: LinkSource::Config,
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_member_change_marks_its_group_and_the_groups_that_nest_it() {
        let old = dir(vec![
            group("mm_x_outer", &["a"], &["mm_x_inner"]),
            group("mm_x_inner", &["b"], &[]),
            group("mm_x_other", &["c"], &[]),
        ]);
        let mut new = old.clone();
        if let Some(g) = new.groups.get_mut("mm_x_inner") {
            g.member_users.insert("d".into());
        }
        assert_eq!(
            changed_groups(&old, &new),
            set(&["mm_x_inner", "mm_x_outer"])
        );
        assert!(changed_groups(&old, &old.clone()).is_empty());
    }

    #[test]
    fn groups_that_appear_or_vanish_and_account_changes_count() {
        let old = dir(vec![
            group("mm_x_a", &["a"], &[]),
            group("mm_x_b", &["b"], &[]),
        ]);
        let mut new = dir(vec![
            group("mm_x_a", &["a"], &[]),
            group("mm_x_c", &[], &[]),
        ]);
        assert_eq!(changed_groups(&old, &new), set(&["mm_x_b", "mm_x_c"]));
        // Disabling a member changes what the group means to a sync.
        if let Some(u) = new.users.get_mut("a") {
            u.email = Some("a@example.org".into());
        }
        assert!(changed_groups(&old, &new).contains("mm_x_a"));
        // A change to a user no group holds changes nothing.
        let mut quiet = old.clone();
        if let Some(u) = quiet.users.get_mut("d") {
            u.disabled = true;
        }
        assert!(changed_groups(&old, &quiet).is_empty());
    }

    #[test]
    fn managers_count() {
        let old = dir(vec![group("mm_x_a", &["a"], &[])]);
        let mut new = old.clone();
        if let Some(g) = new.groups.get_mut("mm_x_a") {
            g.manager_users.insert("b".into());
        }
        assert_eq!(changed_groups(&old, &new), set(&["mm_x_a"]));
    }

    #[test]
    fn every_link_of_an_affected_channel_is_planned_and_nothing_else() {
        let links = vec![
            link("mm_x_a", "tm/one"),
            link("mm_x_b", "tm/one"),
            link("mm_x_b", "tm/two"),
            link("mm_x_c", "tm/three"),
            link("mm_x_d", "un/four"),
        ];
        let got = affected_links(&links, &set(&["mm_x_a"]), &BTreeSet::new());
        assert_eq!(got, vec![links[0].clone(), links[1].clone()]);
        // A group on two channels brings both channels' links.
        let got = affected_links(&links, &set(&["mm_x_b"]), &BTreeSet::new());
        assert_eq!(got, links[..3].to_vec());
        assert!(affected_links(&links, &set(&["mm_x_z"]), &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_team_link_makes_its_whole_team_one_scope() {
        let links = vec![
            link("mm_x_team", "tm"),
            link("mm_x_a", "tm/one"),
            link("mm_x_b", "tm/two"),
            link("mm_x_c", "un/three"),
        ];
        let got = affected_links(&links, &set(&["mm_x_a"]), &BTreeSet::new());
        assert_eq!(got, links[..3].to_vec());
        let got = affected_links(&links, &set(&["mm_x_team"]), &BTreeSet::new());
        assert_eq!(got, links[..3].to_vec());
    }

    #[test]
    fn admins_groups_and_asked_for_targets_count() {
        let mut admins = link("mm_x_a", "tm/one");
        admins.admins = Admins::Group("mm_x_leads".into());
        let links = vec![admins.clone(), link("mm_x_b", "tm/two")];
        assert_eq!(
            affected_links(&links, &set(&["mm_x_leads"]), &BTreeSet::new()),
            vec![admins]
        );
        let targets: BTreeSet<Target> = ["tm/two".parse().expect("target")].into();
        assert_eq!(
            affected_links(&links, &BTreeSet::new(), &targets),
            vec![links[1].clone()]
        );
        // A target with no link left (after an unlink) plans nothing.
        let gone: BTreeSet<Target> = ["tm/gone".parse().expect("target")].into();
        assert!(affected_links(&links, &BTreeSet::new(), &gone).is_empty());
    }

    #[test]
    fn a_change_that_only_adds_cannot_remove_and_names_its_subjects() {
        let old = dir(vec![
            group("mm_x_outer", &["a"], &["mm_x_inner"]),
            group("mm_x_inner", &["b"], &[]),
        ]);
        let mut added = old.clone();
        added
            .groups
            .get_mut("mm_x_inner")
            .map(|g| g.member_users.insert("c".into()));
        let changed = changed_groups(&old, &added);
        assert_eq!(changed, set(&["mm_x_inner", "mm_x_outer"]));
        assert!(!can_remove(&old, &added, &changed));
        assert_eq!(subjects(&old, &added, &changed), set(&["c"]));
        // A member gone, a member's record changed, a manager gone, a group gone: each can.
        let mut gone = old.clone();
        gone.groups
            .get_mut("mm_x_inner")
            .map(|g| g.member_users.remove("b"));
        assert!(can_remove(&old, &gone, &set(&["mm_x_outer"])));
        assert_eq!(subjects(&old, &gone, &set(&["mm_x_outer"])), set(&["b"]));
        let mut disabled = old.clone();
        if let Some(u) = disabled.users.get_mut("a") {
            u.disabled = true;
        }
        assert!(can_remove(&old, &disabled, &set(&["mm_x_outer"])));
        assert_eq!(
            subjects(&old, &disabled, &set(&["mm_x_outer"])),
            set(&["a"])
        );
        let mut managed = old.clone();
        managed
            .groups
            .get_mut("mm_x_outer")
            .map(|g| g.manager_users.insert("d".into()));
        assert!(!can_remove(&old, &managed, &set(&["mm_x_outer"])));
        assert!(can_remove(&managed, &old, &set(&["mm_x_outer"])));
        assert_eq!(subjects(&old, &managed, &set(&["mm_x_outer"])), set(&["d"]));
        let mut vanished = old.clone();
        vanished.groups.remove("mm_x_inner");
        assert!(can_remove(&old, &vanished, &set(&["mm_x_inner"])));
        assert!(!can_remove(&vanished, &old, &set(&["mm_x_inner"])));
    }

    #[test]
    fn an_adding_change_plans_its_channels_whole_and_its_team_links_add_only() {
        let links = vec![
            link("mm_x_team", "tm"),
            link("mm_x_a", "tm/one"),
            link("mm_x_b", "tm/one"),
            link("mm_x_b", "tm/two"),
            link("mm_x_c", "un/three"),
        ];
        // A channel link's group: that channel whole, not the team.
        let got = affected_links_adding(&links, &set(&["mm_x_a"]));
        assert_eq!(got, links[1..3].to_vec());
        // The team link's group: the team link alone, add-only.
        let got = affected_links_adding(&links, &set(&["mm_x_team"]));
        let mut add_only = links[0].clone();
        add_only.mode = Mode::Add;
        assert_eq!(got, vec![add_only]);
        assert!(affected_links_adding(&links, &set(&["mm_x_z"])).is_empty());
    }

    #[test]
    fn changed_targets_are_those_whose_links_differ() {
        let old = vec![link("mm_x_a", "tm/one"), link("mm_x_b", "tm/two")];
        let mut moved = link("mm_x_b", "tm/two");
        moved.mode = Mode::Add;
        let new = vec![link("mm_x_a", "tm/one"), moved, link("mm_x_c", "tm/three")];
        let got: Vec<String> = changed_targets(&old, &new)
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(got, ["tm/three", "tm/two"]);
    }
}
