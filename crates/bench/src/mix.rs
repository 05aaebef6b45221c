//! The propagation mix (pure, tested in the suite): single directory changes of three kinds,
//! spread over every team in a seeded shuffled order, each with the fewest Mattermost writes
//! it needs.
//!
//! - `add in team`: a member of a convention channel's team who is not in the channel is
//!   added to the channel's group;
//! - `add + team join`: a user of another team (an active account, not in this team) is added
//!   to the group, so the channel needs a team join first;
//! - `removal`: a user added earlier in the run is removed from the group again (so nothing
//!   else wants them in the channel and the removal must happen).

use crate::world::Expected;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum ChangeKind {
    AddInTeam,
    AddTeamJoin,
    Removal,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 3] = [
        ChangeKind::AddInTeam,
        ChangeKind::AddTeamJoin,
        ChangeKind::Removal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::AddInTeam => "add, already in the team",
            ChangeKind::AddTeamJoin => "add that needs a team join",
            ChangeKind::Removal => "removal",
        }
    }
}

/// One directory change and what it must make Mattermost do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// The group's cn.
    pub group: String,
    /// Its convention channel, `team/channel`: where the result is watched.
    pub channel: String,
    pub user: String,
    /// Memberships that change (each at least one write call): the fewest calls a client
    /// that already knows every id and member set can make for this change.
    pub min_writes: u64,
}

/// A link target as `links.toml` and the naming convention give it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Team(String),
    Channel(String),
}

/// The extra `[[link]]`s of `links.toml` (group → targets); the convention links are added
/// by [`targets`].
pub fn parse_links(text: &str) -> BTreeMap<String, Vec<Target>> {
    let mut out: BTreeMap<String, Vec<Target>> = BTreeMap::new();
    let mut group: Option<String> = None;
    let value = |l: &str| {
        l.split_once('=')
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
    };
    for line in text.lines().map(str::trim) {
        if line == "[[link]]" {
            group = None;
        } else if line.starts_with("group") {
            group = value(line);
        } else if let Some(g) = &group {
            if line.starts_with("team") {
                if let Some(t) = value(line) {
                    out.entry(g.clone()).or_default().push(Target::Team(t));
                }
            } else if line.starts_with("channel") {
                if let Some(c) = value(line) {
                    out.entry(g.clone()).or_default().push(Target::Channel(c));
                }
            }
        }
    }
    out
}

/// The group whose convention channel `team/channel` is (`bench-rl/docs-1` → `mm_rl_docs_1`).
pub fn convention_group(path: &str) -> Option<String> {
    let (team, channel) = path.split_once('/')?;
    let area = team.strip_prefix("bench-")?;
    Some(format!("mm_{area}_{}", channel.replace('-', "_")))
}

/// Every target of `group`: its convention channel and its extra links.
fn targets(
    group: &str,
    convention: &str,
    extra: &BTreeMap<String, Vec<Target>>,
) -> BTreeSet<Target> {
    let mut t: BTreeSet<Target> = extra.get(group).into_iter().flatten().cloned().collect();
    t.insert(Target::Channel(convention.to_string()));
    t
}

/// Memberships `user` gains when added to a group with `targets` (teams of channels
/// included), given who is wanted where (`expected`, plus what this run added so far).
fn entered(
    user: &str,
    targets: &BTreeSet<Target>,
    teams: &BTreeMap<String, BTreeSet<String>>,
    channels: &BTreeMap<String, BTreeSet<String>>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut new_teams = BTreeSet::new();
    let mut new_channels = BTreeSet::new();
    let team_in = |team: &str, new_teams: &mut BTreeSet<String>| {
        if !teams.get(team).is_some_and(|m| m.contains(user)) {
            new_teams.insert(team.to_string());
        }
    };
    for t in targets {
        match t {
            Target::Team(team) => team_in(team, &mut new_teams),
            Target::Channel(path) => {
                if let Some((team, _)) = path.split_once('/') {
                    team_in(team, &mut new_teams);
                }
                if !channels.get(path).is_some_and(|m| m.contains(user)) {
                    new_channels.insert(path.clone());
                }
            }
        }
    }
    (new_teams, new_channels)
}

/// splitmix64: a small deterministic generator, so the mix is the same for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// `n` changes, about a third of each kind, over every convention channel of every team, in
/// a shuffled order fixed by `seed`; every user changes once at most (a removal undoes an
/// earlier add of the same user, later in the run).
pub fn changes(
    want: &Expected,
    extra: &BTreeMap<String, Vec<Target>>,
    n: usize,
    seed: u64,
) -> Vec<Change> {
    let mut rng = Rng::new(seed);
    let teams: BTreeMap<String, BTreeSet<String>> = want
        .teams
        .iter()
        .map(|(t, m)| (t.clone(), m.iter().cloned().collect()))
        .collect();
    let mut channels: BTreeMap<String, BTreeSet<String>> = want
        .channels
        .iter()
        .map(|(c, m)| (c.clone(), m.iter().cloned().collect()))
        .collect();
    let mut convention: Vec<(String, String)> = want
        .channels
        .keys()
        .filter(|p| {
            !p.split_once('/')
                .is_some_and(|(_, c)| c.starts_with("hub-"))
        })
        .filter_map(|p| Some((convention_group(p)?, p.clone())))
        .collect();
    rng.shuffle(&mut convention);
    let removals = n / 3;
    let adds = n - removals;
    let joins = adds / 2;
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut plan: Vec<(ChangeKind, usize)> = (0..adds)
        .map(|i| {
            let kind = if i < joins {
                ChangeKind::AddTeamJoin
            } else {
                ChangeKind::AddInTeam
            };
            (kind, i)
        })
        .collect();
    rng.shuffle(&mut plan);
    let mut out: Vec<Change> = Vec::new();
    let mut open: Vec<usize> = Vec::new(); // adds not undone yet (indices into out)
    let mut removals_left = removals;
    let mut cursor = 0usize;
    for (kind, _) in plan {
        // the next convention channel (round the shuffled list) with a candidate of this kind
        for _ in 0..convention.len() {
            let (group, path) = &convention[cursor % convention.len()];
            cursor += 1;
            let Some((team, _)) = path.split_once('/') else {
                continue;
            };
            let inside = channels.get(path).cloned().unwrap_or_default();
            let pool: Vec<&String> = match kind {
                ChangeKind::AddInTeam => teams
                    .get(team)
                    .into_iter()
                    .flatten()
                    .filter(|u| !inside.contains(*u) && !used.contains(*u))
                    .collect(),
                _ => teams
                    .iter()
                    .filter(|(t, _)| t.as_str() != team)
                    .flat_map(|(_, m)| m.iter())
                    .filter(|u| {
                        !teams.get(team).is_some_and(|m| m.contains(*u)) && !used.contains(*u)
                    })
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            };
            if pool.is_empty() {
                continue;
            }
            let user = pool[rng.below(pool.len())].clone();
            let t = targets(group, path, extra);
            let (new_teams, new_channels) = entered(&user, &t, &teams, &channels);
            used.insert(user.clone());
            for c in &new_channels {
                channels.entry(c.clone()).or_default().insert(user.clone());
            }
            out.push(Change {
                kind,
                group: group.clone(),
                channel: path.clone(),
                user,
                min_writes: (new_teams.len() + new_channels.len()) as u64,
            });
            open.push(out.len() - 1);
            break;
        }
        // now and then, undo one of the adds so far
        if removals_left > 0 && !open.is_empty() && rng.below(adds.max(1)) < removals {
            removals_left -= 1;
            let add = open.swap_remove(rng.below(open.len()));
            out.push(removal_of(&out[add], &mut channels));
        }
    }
    while removals_left > 0 && !open.is_empty() {
        removals_left -= 1;
        let add = open.swap_remove(rng.below(open.len()));
        out.push(removal_of(&out[add], &mut channels));
    }
    out
}

/// Undoing `add`: every membership it made goes again (the channels; the teams too, as
/// every team of the benchmark world has a team link whose removals take whoever no link
/// wants there any more).
fn removal_of(add: &Change, channels: &mut BTreeMap<String, BTreeSet<String>>) -> Change {
    for m in channels.values_mut() {
        m.remove(&add.user);
    }
    Change {
        kind: ChangeKind::Removal,
        group: add.group.clone(),
        channel: add.channel.clone(),
        user: add.user.clone(),
        min_writes: add.min_writes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn world() -> Expected {
        Expected {
            teams: [
                (
                    "bench-rl".to_string(),
                    names(&["a", "b", "c", "d", "e", "f"]),
                ),
                (
                    "bench-sig".to_string(),
                    names(&["g", "h", "i", "j", "k", "l"]),
                ),
            ]
            .into(),
            channels: [
                ("bench-rl/docs-1".to_string(), names(&["a"])),
                ("bench-rl/hub-0".to_string(), names(&["b"])),
                ("bench-sig/web-2".to_string(), names(&["g"])),
                ("bench-sig/infra-3".to_string(), names(&["h"])),
            ]
            .into(),
            team_names: vec![],
            channel_paths: vec![],
            memberships: 0,
        }
    }

    #[test]
    fn links_toml_is_read_per_group() {
        let links = parse_links(
            "# x\n\n[[link]]\ngroup = \"mm_rl_docs_1\"\nteam = \"bench-sig\"\n\n[[link]]\ngroup = \"mm_sig_web_2\"\nchannel = \"bench-rl/hub-0\"\n",
        );
        assert_eq!(links["mm_rl_docs_1"], [Target::Team("bench-sig".into())]);
        assert_eq!(
            links["mm_sig_web_2"],
            [Target::Channel("bench-rl/hub-0".into())]
        );
        assert_eq!(
            convention_group("bench-rl/docs-1").as_deref(),
            Some("mm_rl_docs_1")
        );
        assert_eq!(convention_group("other/x"), None);
    }

    #[test]
    fn the_mix_has_every_kind_over_every_team_each_user_once_and_removals_after_their_add() {
        let extra =
            parse_links("[[link]]\ngroup = \"mm_sig_web_2\"\nchannel = \"bench-rl/hub-0\"\n");
        let got = changes(&world(), &extra, 9, 7);
        assert_eq!(got.len(), 9);
        let count = |k| got.iter().filter(|c| c.kind == k).count();
        assert_eq!(
            (
                count(ChangeKind::AddInTeam),
                count(ChangeKind::AddTeamJoin),
                count(ChangeKind::Removal)
            ),
            (3, 3, 3)
        );
        let teams: BTreeSet<&str> = got
            .iter()
            .filter_map(|c| c.channel.split_once('/').map(|(t, _)| t))
            .collect();
        assert_eq!(teams.len(), 2, "both teams: {got:?}");
        assert!(got.iter().all(|c| !c.channel.contains("/hub-")));
        let want = world();
        for (i, c) in got.iter().enumerate() {
            let (team, _) = c.channel.split_once('/').expect("path");
            let in_team = want.teams[team].contains(&c.user);
            match c.kind {
                ChangeKind::AddInTeam => {
                    assert!(
                        in_team && !want.channels[&c.channel].contains(&c.user),
                        "{c:?}"
                    );
                    assert!(c.min_writes >= 1);
                }
                ChangeKind::AddTeamJoin => {
                    assert!(!in_team, "{c:?}");
                    assert!(c.min_writes >= 2, "team and channel: {c:?}");
                }
                ChangeKind::Removal => {
                    let add = got[..i]
                        .iter()
                        .position(|a| a.kind != ChangeKind::Removal && a.user == c.user)
                        .expect("a removal undoes an earlier add");
                    assert_eq!(got[add].group, c.group);
                    assert!(c.min_writes >= 1);
                }
            }
        }
        let adds: Vec<&String> = got
            .iter()
            .filter(|c| c.kind != ChangeKind::Removal)
            .map(|c| &c.user)
            .collect();
        let distinct: BTreeSet<&&String> = adds.iter().collect();
        assert_eq!(distinct.len(), adds.len(), "every user added once at most");
    }

    #[test]
    fn the_mix_is_fixed_by_its_seed() {
        let extra = BTreeMap::new();
        assert_eq!(
            changes(&world(), &extra, 6, 1),
            changes(&world(), &extra, 6, 1)
        );
        assert_ne!(
            changes(&world(), &extra, 6, 1),
            changes(&world(), &extra, 6, 2)
        );
    }

    #[test]
    fn an_extra_link_counts_in_the_fewest_writes() {
        // mm_sig_web_2 also feeds bench-rl/hub-0: a sig user added to it enters
        // web-2 and, unless already there, bench-rl and hub-0
        let extra =
            parse_links("[[link]]\ngroup = \"mm_sig_web_2\"\nchannel = \"bench-rl/hub-0\"\n");
        let t = targets("mm_sig_web_2", "bench-sig/web-2", &extra);
        let w = world();
        let teams = w
            .teams
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect();
        let channels = w
            .channels
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect();
        let (nt, nc) = entered("h", &t, &teams, &channels);
        assert_eq!(nt, ["bench-rl".to_string()].into());
        assert_eq!(nc.len(), 2);
        let (nt, nc) = entered("b", &t, &teams, &channels);
        assert_eq!(nt, ["bench-sig".to_string()].into());
        assert_eq!(
            nc,
            ["bench-sig/web-2".to_string()].into(),
            "b is in hub-0 already"
        );
    }
}
