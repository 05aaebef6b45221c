//! What `group create` asks for, what the directory has, and the difference — pure, no I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// A user or a group, as managers and members are named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    User,
    Group,
    /// A DN that is neither a user under `user_base` nor a group under `group_base`.
    Other,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::User => "user",
            Kind::Group => "group",
            Kind::Other => "entry",
        })
    }
}

/// What `group create` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub cn: String,
    pub description: String,
    pub fas: bool,
    pub posix: bool,
    /// A fixed GID (only with `posix`).
    pub gid: Option<u32>,
    pub manager_users: BTreeSet<String>,
    pub manager_groups: BTreeSet<String>,
}

/// A group's settings as the directory has them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Settings {
    pub description: Option<String>,
    pub fas: bool,
    pub posix: bool,
    pub gid: Option<String>,
    pub manager_users: BTreeSet<String>,
    pub manager_groups: BTreeSet<String>,
    /// Manager DNs that are neither users nor groups mattersync knows where to find.
    pub manager_others: BTreeSet<String>,
}

/// One way the directory's group differs from what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Description { from: Option<String>, to: String },
    Fas { to: bool },
    Posix { to: bool },
    Gid { from: Option<String>, to: u32 },
    AddManager { kind: Kind, name: String },
    RemoveManager { kind: Kind, name: String },
}

impl Change {
    /// A change that only adds what an interrupted create had not got to yet (the FAS flag,
    /// a manager), never takes anything away or rewrites a value.
    pub fn completes_a_create(&self) -> bool {
        match self {
            Change::Fas { to } => *to,
            Change::AddManager { .. } => true,
            Change::Description { .. }
            | Change::Posix { .. }
            | Change::Gid { .. }
            | Change::RemoveManager { .. } => false,
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Description { from, to } => match from {
                Some(from) => write!(f, "description: {from:?} -> {to:?}"),
                None => write!(f, "description: (none) -> {to:?}"),
            },
            Change::Fas { to } => write!(f, "FAS group: {} -> {}", yes_no(!to), yes_no(*to)),
            Change::Posix { to } => write!(f, "POSIX: {} -> {}", yes_no(!to), yes_no(*to)),
            Change::Gid { from, to } => write!(
                f,
                "gidNumber: {} -> {to}",
                from.as_deref().unwrap_or("(none)")
            ),
            Change::AddManager { kind, name } => write!(f, "manager {kind} {name}: add"),
            Change::RemoveManager { kind, name } => write!(f, "manager {kind} {name}: remove"),
        }
    }
}

/// The changes that turn `have` into `want`, in the order they are shown and made.
pub fn diff(want: &Spec, have: &Settings) -> Vec<Change> {
    let mut out = Vec::new();
    if have.description.as_deref() != Some(want.description.as_str()) {
        out.push(Change::Description {
            from: have.description.clone(),
            to: want.description.clone(),
        });
    }
    if want.posix != have.posix {
        out.push(Change::Posix { to: want.posix });
    } else if let (true, Some(gid)) = (want.posix, want.gid) {
        if have.gid.as_deref() != Some(gid.to_string().as_str()) {
            out.push(Change::Gid {
                from: have.gid.clone(),
                to: gid,
            });
        }
    }
    if want.fas != have.fas {
        out.push(Change::Fas { to: want.fas });
    }
    for (kind, wanted, had) in [
        (Kind::User, &want.manager_users, &have.manager_users),
        (Kind::Group, &want.manager_groups, &have.manager_groups),
    ] {
        for name in wanted.difference(had) {
            out.push(Change::AddManager {
                kind,
                name: name.clone(),
            });
        }
        for name in had.difference(wanted) {
            out.push(Change::RemoveManager {
                kind,
                name: name.clone(),
            });
        }
    }
    for dn in &have.manager_others {
        out.push(Change::RemoveManager {
            kind: Kind::Other,
            name: dn.clone(),
        });
    }
    out
}

/// What to do with an existing group whose settings differ from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing differs.
    Unchanged,
    /// Make the changes: `--update` was given.
    Update,
    /// Make the changes without `--update`: an earlier run of this very command was
    /// interrupted part-way, and what is missing is only what it had not got to yet.
    Complete,
    /// Show the drift and change nothing.
    Drift,
}

/// `pending` is the request an interrupted create left behind, if any.
pub fn decide(want: &Spec, changes: &[Change], update: bool, pending: Option<&Spec>) -> Decision {
    if changes.is_empty() {
        Decision::Unchanged
    } else if update {
        Decision::Update
    } else if pending == Some(want) && changes.iter().all(Change::completes_a_create) {
        Decision::Complete
    } else {
        Decision::Drift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            cn: "mm_rl_infra".into(),
            description: "Rocky Linux infrastructure team".into(),
            fas: true,
            posix: false,
            gid: None,
            manager_users: ["neil".to_string()].into(),
            manager_groups: BTreeSet::new(),
        }
    }

    fn same() -> Settings {
        Settings {
            description: Some("Rocky Linux infrastructure team".into()),
            fas: true,
            posix: false,
            manager_users: ["neil".to_string()].into(),
            ..Settings::default()
        }
    }

    fn shown(c: &[Change]) -> Vec<String> {
        c.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_same_settings_are_unchanged_whatever_the_flags() {
        let c = diff(&spec(), &same());
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(decide(&spec(), &c, false, None), Decision::Unchanged);
        assert_eq!(
            decide(&spec(), &c, true, Some(&spec())),
            Decision::Unchanged
        );
    }

    #[test]
    fn every_difference_is_shown_in_order() {
        let have = Settings {
            description: Some("old".into()),
            fas: false,
            posix: true,
            gid: Some("1466500004".into()),
            manager_users: ["alice".to_string()].into(),
            manager_groups: ["leads".to_string()].into(),
            manager_others: ["cn=x,dc=elsewhere".to_string()].into(),
        };
        assert_eq!(
            shown(&diff(&spec(), &have)),
            [
                "description: \"old\" -> \"Rocky Linux infrastructure team\"",
                "POSIX: yes -> no",
                "FAS group: no -> yes",
                "manager user neil: add",
                "manager user alice: remove",
                "manager group leads: remove",
                "manager entry cn=x,dc=elsewhere: remove",
            ]
        );
    }

    #[test]
    fn a_fixed_gid_is_compared_only_for_posix_groups() {
        let mut want = spec();
        want.posix = true;
        want.gid = Some(5000);
        let mut have = same();
        have.posix = true;
        have.gid = Some("4000".into());
        assert_eq!(shown(&diff(&want, &have)), ["gidNumber: 4000 -> 5000"]);
        want.gid = None;
        assert!(diff(&want, &have).is_empty(), "no --gid: any GID is fine");
    }

    #[test]
    fn drift_needs_update_unless_it_only_completes_an_interrupted_create_of_the_same_request() {
        let interrupted = Settings {
            fas: false,
            manager_users: BTreeSet::new(),
            ..same()
        };
        let c = diff(&spec(), &interrupted);
        assert_eq!(
            shown(&c),
            ["FAS group: no -> yes", "manager user neil: add"]
        );
        assert_eq!(decide(&spec(), &c, false, None), Decision::Drift);
        assert_eq!(
            decide(&spec(), &c, false, Some(&spec())),
            Decision::Complete
        );
        assert_eq!(decide(&spec(), &c, true, None), Decision::Update);
        // A different request than the interrupted one is ordinary drift.
        let mut other = spec();
        other.description = "something else".into();
        assert_eq!(decide(&spec(), &c, false, Some(&other)), Decision::Drift);
        // So is anything an interrupted create cannot have left behind.
        let rewritten = Settings {
            description: Some("changed by hand".into()),
            ..interrupted
        };
        let c = diff(&spec(), &rewritten);
        assert_eq!(decide(&spec(), &c, false, Some(&spec())), Decision::Drift);
    }
}
