//! The generated world (scripts/bench/generate.py): what a full reconcile must reach.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `expected.json`: usernames per team and per channel (`team/channel`).
#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub teams: BTreeMap<String, Vec<String>>,
    pub channels: BTreeMap<String, Vec<String>>,
    pub team_names: Vec<String>,
    pub channel_paths: Vec<String>,
    pub memberships: u64,
}

impl Expected {
    pub fn load(path: &Path) -> Result<Expected> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Every username some scope wants.
    pub fn wanted_usernames(&self) -> BTreeSet<&String> {
        self.teams
            .values()
            .chain(self.channels.values())
            .flatten()
            .collect()
    }

    /// Memberships in `self` that `before` does not have.
    pub fn added_since(&self, before: &Expected) -> u64 {
        fn diff(a: &BTreeMap<String, Vec<String>>, b: &BTreeMap<String, Vec<String>>) -> u64 {
            a.iter()
                .map(|(k, names)| {
                    let old: BTreeSet<&String> = b.get(k).into_iter().flatten().collect();
                    names.iter().filter(|n| !old.contains(n)).count() as u64
                })
                .sum()
        }
        diff(&self.teams, &before.teams) + diff(&self.channels, &before.channels)
    }
}

/// `stats.json`: the shape of the world.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Stats {
    pub users: u64,
    pub groups: u64,
    pub plain_groups: u64,
    pub links: u64,
    pub channels: u64,
    pub teams: u64,
    pub pending: u64,
    pub disabled: u64,
    pub mm_inactive: u64,
    pub nesting_groups: u64,
    pub group_size_max: u64,
    pub group_size_median: u64,
    pub group_size_p90: u64,
    pub group_members_total: u64,
    pub desired_channel_memberships: u64,
    pub desired_team_memberships: u64,
    pub mass_change_ldap_values: u64,
}

impl Stats {
    pub fn load(path: &Path) -> Result<Stats> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(teams: &[(&str, &[&str])], channels: &[(&str, &[&str])]) -> Expected {
        let m = |x: &[(&str, &[&str])]| {
            x.iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect()
        };
        Expected {
            teams: m(teams),
            channels: m(channels),
            team_names: vec![],
            channel_paths: vec![],
            memberships: 0,
        }
    }

    #[test]
    fn added_since_counts_new_memberships_per_scope() {
        let before = e(&[("t", &["a", "b"])], &[("t/c", &["a"])]);
        let after = e(
            &[("t", &["a", "b", "c"])],
            &[("t/c", &["a", "b", "c"]), ("t/d", &["a"])],
        );
        assert_eq!(after.added_since(&before), 1 + 2 + 1);
        assert_eq!(after.wanted_usernames().len(), 3);
    }
}
