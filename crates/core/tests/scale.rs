//! The planner at the sizes a directory can throw at it: a group of 50,000 members, a user in
//! 1,000 groups, a ring of 1,000 groups nesting each other. Pure (no servers). Each test
//! prints how long planning took (`cargo test -p mattersync-core --release --test scale --
//! --nocapture`); the assertions are about what the plan says, never about time.

use mattersync_core::{
    plan, Action, Admins, ChannelMember, DirGroup, DirUser, Directory, Guards, LedgerFacts, Link,
    LinkSource, Matching, Mattermost, MmChannel, MmTeam, MmUser, Mode, Origin, Plan, PlanInput,
    Policy, Readd, Record, RecordState, Target,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

const TEAM: &str = "rocky-linux";
const TEAM_ID: &str = "t-rl";

fn uid(i: usize) -> String {
    format!("user{i:05}")
}

fn mm_id(i: usize) -> String {
    format!("u-{i:05}")
}

/// `n` directory users with Mattermost accounts of the same name.
fn people(n: usize) -> (BTreeMap<String, DirUser>, BTreeMap<String, MmUser>) {
    let dir = (0..n)
        .map(|i| {
            (
                uid(i),
                DirUser {
                    uid: uid(i),
                    ..Default::default()
                },
            )
        })
        .collect();
    let mm = (0..n)
        .map(|i| {
            (
                mm_id(i),
                MmUser {
                    id: mm_id(i),
                    username: uid(i),
                    ..Default::default()
                },
            )
        })
        .collect();
    (dir, mm)
}

fn group(cn: &str, users: impl IntoIterator<Item = String>, groups: &[String]) -> DirGroup {
    DirGroup {
        id: format!("id-{cn}"),
        cn: cn.to_string(),
        member_users: users.into_iter().collect(),
        member_groups: groups.iter().cloned().collect(),
        ..Default::default()
    }
}

fn channel(name: &str, members: impl IntoIterator<Item = String>) -> (String, MmChannel) {
    (
        format!("{TEAM}/{name}"),
        MmChannel {
            id: format!("c-{name}"),
            team: TEAM.to_string(),
            name: name.to_string(),
            members: members
                .into_iter()
                .map(|m| (m, ChannelMember::default()))
                .collect(),
            ..Default::default()
        },
    )
}

fn team(members: impl IntoIterator<Item = String>) -> BTreeMap<String, MmTeam> {
    [(
        TEAM.to_string(),
        MmTeam {
            id: TEAM_ID.to_string(),
            name: TEAM.to_string(),
            members: members
                .into_iter()
                .map(|m| (m, ChannelMember::default()))
                .collect(),
        },
    )]
    .into()
}

fn link(group: &str, channel: &str) -> Link {
    Link {
        group: group.to_string(),
        target: Target::Channel {
            team: TEAM.to_string(),
            channel: channel.to_string(),
        },
        mode: Mode::Sync,
        admins: Admins::None,
        readd: Readd::Never,
        source: LinkSource::Config,
    }
}

fn policy(links: Vec<Link>) -> Policy {
    Policy {
        links,
        matching: Matching::Username,
        // The planner at scale, not its guards: a first sync of 50,000 is past any
        // addition guard.
        guards: Guards {
            max_removals: 50,
            max_removal_ratio: 0.2,
            max_additions: usize::MAX,
            ..Guards::default()
        },
        allow: BTreeSet::new(),
    }
}

/// Plans twice (the same input must give the same plan) and prints the time of one plan.
fn timed(what: &str, d: &Directory, m: &Mattermost, l: &LedgerFacts, p: &Policy) -> Plan {
    let started = Instant::now();
    let first = plan(PlanInput {
        directory: d,
        mattermost: m,
        ledger: l,
        policy: p,
    });
    let took = started.elapsed();
    eprintln!(
        "scale: {what}: planned {} actions in {took:?}",
        first.actions.len()
    );
    let second = plan(PlanInput {
        directory: d,
        mattermost: m,
        ledger: l,
        policy: p,
    });
    assert_eq!(first, second, "{what}: the same input gave another plan");
    first
}

/// Every user an add action brings into `scope`, checking none comes twice.
fn added(plan: &Plan, team_adds: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for a in &plan.actions {
        let users = match (a, team_adds) {
            (Action::AddTeamMembers { users, .. }, true) => users,
            (Action::AddChannelMembers { users, .. }, false) => users,
            _ => continue,
        };
        for u in users {
            assert!(out.insert(u.id.clone()), "{} added twice", u.username);
        }
    }
    out
}

#[test]
fn a_group_of_fifty_thousand_is_planned_in_batches_and_each_member_comes_once() {
    const N: usize = 50_000;
    let (users, mm_users) = people(N);
    let directory = Directory {
        users,
        groups: [(
            "mm_rl_big".to_string(),
            group("mm_rl_big", (0..N).map(uid), &[]),
        )]
        .into(),
    };
    let mattermost = Mattermost {
        users: mm_users,
        teams: team([]),
        channels: [channel("big", [])].into(),
        ..Default::default()
    };
    let p = policy(vec![link("mm_rl_big", "big")]);
    let first = timed(
        "50k members, nobody in yet",
        &directory,
        &mattermost,
        &LedgerFacts::default(),
        &p,
    );
    assert!(first.guard_trips.is_empty(), "{:?}", first.guard_trips);
    let all: BTreeSet<String> = (0..N).map(mm_id).collect();
    assert_eq!(added(&first, true), all);
    assert_eq!(added(&first, false), all);
    for a in &first.actions {
        match a {
            Action::AddTeamMembers { users, .. } => assert!(users.len() <= 256),
            Action::AddChannelMembers { users, .. } => assert!(users.len() <= 1000),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Every team batch comes before the first channel batch (team first).
    let first_channel = first
        .actions
        .iter()
        .position(|a| matches!(a, Action::AddChannelMembers { .. }))
        .expect("channel adds");
    assert!(first.actions[first_channel..]
        .iter()
        .all(|a| !matches!(a, Action::AddTeamMembers { .. })));

    // All of them in, all recorded: nothing to do.
    let everyone = || (0..N).map(mm_id);
    let mattermost = Mattermost {
        teams: team(everyone()),
        channels: [channel("big", everyone())].into(),
        ..mattermost
    };
    let owned: BTreeMap<String, Record> = everyone()
        .map(|id| {
            (
                id,
                Record {
                    origin: Origin::Added,
                    state: RecordState::Present,
                },
            )
        })
        .collect();
    let ledger = LedgerFacts {
        teams: [(TEAM_ID.to_string(), owned.clone())].into(),
        channels: [("c-big".to_string(), owned)].into(),
        ..Default::default()
    };
    let steady = timed("50k members, in sync", &directory, &mattermost, &ledger, &p);
    assert!(steady.actions.is_empty(), "{:?}", steady.summary());

    // The directory says the group is empty: that is 50,000 removals, and the guard stops it.
    let mut emptied = directory.clone();
    if let Some(g) = emptied.groups.get_mut("mm_rl_big") {
        g.member_users.clear();
    }
    let mass = timed(
        "50k members, group emptied",
        &emptied,
        &mattermost,
        &ledger,
        &p,
    );
    assert!(
        !mass.guard_trips.is_empty(),
        "50,000 removals without a guard trip"
    );
}

#[test]
fn a_user_in_a_thousand_groups_joins_the_team_once_and_every_channel() {
    const G: usize = 1_000;
    let (users, mm_users) = people(3);
    let mut groups = BTreeMap::new();
    let mut channels = BTreeMap::new();
    let mut links = Vec::new();
    for g in 0..G {
        let cn = format!("mm_rl_g{g:04}");
        // user00000 is in all of them; user00001 in every tenth.
        let mut members = vec![uid(0)];
        if g % 10 == 0 {
            members.push(uid(1));
        }
        groups.insert(cn.clone(), group(&cn, members, &[]));
        let (k, c) = channel(&format!("g{g:04}"), []);
        channels.insert(k, c);
        links.push(link(&cn, &format!("g{g:04}")));
    }
    let directory = Directory { users, groups };
    let mattermost = Mattermost {
        users: mm_users,
        teams: team([]),
        channels,
        ..Default::default()
    };
    let p = policy(links);
    let plan = timed(
        "one user in 1,000 groups",
        &directory,
        &mattermost,
        &LedgerFacts::default(),
        &p,
    );
    assert_eq!(
        added(&plan, true),
        [mm_id(0), mm_id(1)].into(),
        "each joins the team once"
    );
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    for a in &plan.actions {
        if let Action::AddChannelMembers { users, .. } = a {
            for u in users {
                *per_user.entry(u.username.clone()).or_default() += 1;
            }
        }
    }
    assert_eq!(per_user.get(&uid(0)), Some(&G));
    assert_eq!(per_user.get(&uid(1)), Some(&(G / 10)));
    assert_eq!(per_user.get(&uid(2)), None);
}

#[test]
fn a_ring_of_a_thousand_nested_groups_ends_and_everyone_is_a_member_of_each() {
    const G: usize = 1_000;
    let (users, mm_users) = people(G);
    let names: Vec<String> = (0..G).map(|g| format!("mm_rl_r{g:04}")).collect();
    // r0 nests r1 nests … r999 nests r0; each holds one user.
    let groups = (0..G)
        .map(|g| {
            let next = names[(g + 1) % G].clone();
            (
                names[g].clone(),
                group(&names[g], [uid(g)], std::slice::from_ref(&next)),
            )
        })
        .collect();
    let directory = Directory { users, groups };
    assert_eq!(directory.effective_members(&names[0]).len(), G);
    assert_eq!(directory.effective_members(&names[G - 1]).len(), G);
    // Ten of them linked: each channel gets all 1,000.
    let mut channels = BTreeMap::new();
    let mut links = Vec::new();
    for name in names.iter().step_by(100) {
        let ch = name.trim_start_matches("mm_rl_").to_string();
        let (k, c) = channel(&ch, []);
        channels.insert(k, c);
        links.push(link(name, &ch));
    }
    let mattermost = Mattermost {
        users: mm_users,
        teams: team([]),
        channels,
        ..Default::default()
    };
    let plan = timed(
        "ring of 1,000 nested groups, 10 linked",
        &directory,
        &mattermost,
        &LedgerFacts::default(),
        &policy(links),
    );
    let channel_adds: usize = plan
        .actions
        .iter()
        .map(|a| match a {
            Action::AddChannelMembers { users, .. } => users.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(channel_adds, 10 * G);
    assert_eq!(added(&plan, true).len(), G);
}
