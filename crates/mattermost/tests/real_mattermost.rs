//! The adapter against the REAL Mattermost started by `scripts/mattermost.sh up`, which
//! writes `.local/mattermost.env` (`MATTERSYNC_MATTERMOST_ENV` or `MATTERSYNC_SERVERS_ENV`
//! names another file). They are ignored by a plain `cargo test`; `scripts/test.sh` starts the
//! servers and runs them (`--include-ignored`). One that runs without the server fails.
//!
//! Each test works in a team and channels of its own (random names) and deletes the team
//! afterwards. The 210 accounts of the paging test are a fixed pool (`msit-pool-NNN`),
//! created on first use and reused by later runs.

// Test code: a failed unwrap, expect or panic is a failed test (helpers included).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mattersync_core::MmUser;
use mattersync_core::{Action, Mode, PlanMember, UserRef};
use mattersync_mattermost::{Client, ClientConfig, MmError, Outcome, Secret, Team};
use rand::Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `MATTERSYNC_MATTERMOST_ENV`, else `MATTERSYNC_SERVERS_ENV` (what `scripts/servers.sh up`
/// writes holds the Mattermost variables too), else `.local/mattermost.env`.
fn env_file() -> PathBuf {
    std::env::var_os("MATTERSYNC_MATTERMOST_ENV")
        .or_else(|| std::env::var_os("MATTERSYNC_SERVERS_ENV"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/mattermost.env")
        })
}

/// A client for the real server, after checking that it answers. A test that needs it and
/// cannot reach it fails here, saying why and how to start it.
async fn mattermost_or_fail() -> Client {
    mattermost_in_flight_or_fail(ClientConfig::DEFAULT_READ_CONCURRENCY).await
}

/// As [`mattermost_or_fail`], with at most `in_flight` requests in flight.
async fn mattermost_in_flight_or_fail(in_flight: usize) -> Client {
    let fail = |why: String| -> ! {
        panic!(
            "this test needs the real Mattermost: {why} \
             (start the servers with scripts/servers.sh up)"
        )
    };
    let path = env_file();
    let Ok(text) = std::fs::read_to_string(&path) else {
        fail(format!("no {}", path.display()));
    };
    let vars: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
        .collect();
    let (Some(url), Some(token_file)) = (
        vars.get("MATTERSYNC_MM_URL"),
        vars.get("MATTERSYNC_MM_TOKEN_FILE"),
    ) else {
        fail(format!(
            "{} lacks MATTERSYNC_MM_URL or MATTERSYNC_MM_TOKEN_FILE",
            path.display()
        ));
    };
    let token = match Secret::from_file(std::path::Path::new(token_file)) {
        Ok(t) => t,
        Err(e) => fail(format!("token file {token_file}: {e}")),
    };
    let mut cfg = ClientConfig::new(*url, token);
    cfg.read_concurrency = in_flight;
    let client = Client::new(cfg).expect("client");
    match client.ping().await {
        Ok(_) => client,
        Err(e @ MmError::Transport { .. }) => fail(format!("{url} does not answer: {e}")),
        Err(e) => panic!("{url}: {e}"),
    }
}

fn suffix() -> String {
    const ABC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut r = rand::thread_rng();
    (0..8)
        .map(|_| ABC[r.gen_range(0..ABC.len())] as char)
        .collect()
}

fn password() -> String {
    format!("Pw-{}-aA1!", suffix())
}

/// A fresh team for one test; deleted (permanently) by `cleanup`.
async fn fresh_team(c: &Client, what: &str) -> Team {
    let name = format!("msit-{what}-{}", suffix());
    c.create_team(&name, &format!("mattersync test {what}"))
        .await
        .expect("create team")
}

async fn cleanup(c: &Client, team: &Team) {
    if let Err(e) = c.delete_team(&team.id, true).await {
        eprintln!("cleanup: could not delete team {}: {e}", team.name);
    }
}

/// Active accounts named `{prefix}-{i:03}` for i in 0..n, by name: found (and reactivated
/// if need be) or created. A server without a licence refuses to create or reactivate
/// accounts beyond 250 active ones, so tests give theirs back with `release_users`.
async fn ensure_users(c: &Client, prefix: &str, n: usize) -> BTreeMap<String, String> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:03}")).collect();
    let existing: BTreeMap<String, MmUser> = c
        .users_by_usernames(&names)
        .await
        .expect("lookup")
        .into_iter()
        .map(|u| (u.username.clone(), u))
        .collect();
    let mut ids = BTreeMap::new();
    for name in names {
        let id = match existing.get(&name) {
            Some(u) => {
                if u.inactive {
                    c.set_user_active(&u.id, true).await.expect("reactivate");
                }
                u.id.clone()
            }
            None => {
                c.create_user(&name, &format!("{name}@example.com"), &password())
                    .await
                    .expect("create user")
                    .id
            }
        };
        ids.insert(name, id);
    }
    ids
}

/// Deactivates test accounts so they no longer count against the user limit.
async fn release_users(c: &Client, ids: &[String]) {
    for id in ids {
        if let Err(e) = c.set_user_active(id, false).await {
            eprintln!("cleanup: could not deactivate {id}: {e}");
        }
    }
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_mattermost_ping_returns_a_version_and_me_is_the_token_owner() {
    let c = mattermost_or_fail().await;
    let v = c.ping().await.expect("ping");
    eprintln!("server version {} ({})", v, v.raw);
    assert!(v.major >= 9, "{v:?}");
    let me = c.me().await.expect("me");
    assert!(!me.id.is_empty() && !me.username.is_empty());
    assert!(!me.inactive);
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_mattermost_only_system_admins_are_system_admins() {
    let c = mattermost_or_fail().await;
    let me = c.me().await.expect("me");
    assert!(
        c.is_system_admin(&me.id).await.expect("admin"),
        "the test token is a system admin"
    );
    let users = ensure_users(&c, "msit-role", 1).await;
    let plain = users
        .iter()
        .next()
        .map(|u| u.1.clone())
        .expect("one account");
    let plain_is_admin = c.is_system_admin(&plain).await;
    release_users(&c, std::slice::from_ref(&plain)).await;
    assert!(!plain_is_admin.expect("plain user"));
    assert!(!c
        .is_system_admin("nosuchuseridnosuchuseridxx")
        .await
        .expect("unknown id"));
}

/// Members: 210 pool accounts + the creator, more than one page of 200. The pool joins
/// 100 at a time and is deactivated again after joining (deactivated accounts stay members):
/// a server without a licence allows only 250 active accounts.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_mattermost_channel_member_listing_follows_pagination() {
    let c = mattermost_or_fail().await;
    const POOL: usize = 210;
    const ROUND: usize = 100;
    let team = fresh_team(&c, "paging").await;
    let me = c.me().await.expect("me");
    let channel = c
        .create_channel(&team.id, &format!("paging-{}", suffix()), "Paging", true)
        .await
        .expect("create channel");

    let names: Vec<String> = (0..POOL).map(|i| format!("msit-pool-{i:03}")).collect();
    let existing: BTreeMap<String, MmUser> = c
        .users_by_usernames(&names)
        .await
        .expect("lookup")
        .into_iter()
        .map(|u| (u.username.clone(), u))
        .collect();
    let (mut created, mut create_time, mut activate_time) =
        (0usize, Duration::ZERO, Duration::ZERO);
    let (mut team_add, mut channel_add, mut posts) = (Duration::ZERO, Duration::ZERO, 0);
    let mut ids = Vec::new();
    for round in names.chunks(ROUND) {
        let mut batch = Vec::new();
        for name in round {
            let t = Instant::now();
            let id = match existing.get(name) {
                Some(u) => {
                    if u.inactive {
                        c.set_user_active(&u.id, true).await.expect("reactivate");
                    }
                    activate_time += t.elapsed();
                    u.id.clone()
                }
                None => {
                    let u = c
                        .create_user(name, &format!("{name}@example.com"), &password())
                        .await
                        .expect("create user");
                    created += 1;
                    create_time += t.elapsed();
                    u.id
                }
            };
            batch.push(id);
        }
        let before = c.stats();
        let t = Instant::now();
        let out = c
            .add_team_members(&team.id, &batch)
            .await
            .expect("team add");
        team_add += t.elapsed();
        assert!(out.iter().all(|o| o.outcome == Outcome::Added), "{out:?}");
        let t = Instant::now();
        let out = c
            .add_channel_members(&channel.id, &batch)
            .await
            .expect("channel add");
        channel_add += t.elapsed();
        assert!(out.iter().all(|o| o.outcome == Outcome::Added), "{out:?}");
        posts += c.stats().since(&before).post;
        release_users(&c, &batch).await;
        ids.extend(batch);
    }
    // Team adds always go in batches; channel adds too where the server takes `user_ids`.
    // A server that does not (9.9) refuses the first batch, and from then on each user is
    // one call.
    let rounds = POOL.div_ceil(ROUND) as u64;
    if c.channel_batch_supported() {
        assert_eq!(posts, 2 * rounds, "one batch call per round each");
    } else {
        assert_eq!(
            posts,
            rounds + 1 + POOL as u64,
            "team batches, one refused channel batch, then a call per user"
        );
    }

    let before = c.stats();
    let t = Instant::now();
    let members = c.channel_members(&channel.id).await.expect("members");
    let listing = t.elapsed();
    let reads = c.stats().since(&before);
    assert_eq!(members.len(), POOL + 1);
    assert!(members.contains_key(&me.id));
    assert!(ids.iter().all(|id| members.contains_key(id)));
    assert_eq!(reads.get, 2, "two pages: {reads}");
    let team_members = c.team_members(&team.id).await.expect("team members");
    assert_eq!(team_members.len(), POOL + 1);
    assert!(
        team_members[&me.id].scheme_admin,
        "the creator is team admin"
    );

    // The assembled state holds every member's account, deactivated ones marked.
    let before = c.stats();
    let t = Instant::now();
    let state = c
        .read_state(
            std::slice::from_ref(&team.name),
            &[(team.name.clone(), channel.name.clone())],
            &[],
        )
        .await
        .expect("state");
    let read_state = t.elapsed();
    let state_calls = c.stats().since(&before);
    let path = format!("{}/{}", team.name, channel.name);
    assert_eq!(state.channels[&path].members.len(), POOL + 1);
    assert!(state.channels[&path].private);
    assert_eq!(state.teams[&team.name].members.len(), POOL + 1);
    assert_eq!(state.users.len(), POOL + 1);
    assert_eq!(state.users.values().filter(|u| u.inactive).count(), POOL);
    assert!(state.users.values().any(|u| u.username == "msit-pool-209"));
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1000.0 / n.max(1) as f64;
    eprintln!(
        "{POOL} users: created {created} ({:.0} ms each), reactivated {} ({:.1} ms each); \
         team batch adds {team_add:.2?}, channel batch adds {channel_add:.2?} ({} rounds); \
         channel member listing {listing:.2?} ({} GETs); read_state {read_state:.2?} ({state_calls})",
        per(create_time, created),
        POOL - created,
        per(activate_time, POOL - created),
        POOL.div_ceil(ROUND),
        reads.get
    );
    cleanup(&c, &team).await;
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_mattermost_add_remove_and_channel_admin_round_trip() {
    let c = mattermost_or_fail().await;
    let users = ensure_users(&c, "msit-rw", 3).await;
    let ids: Vec<String> = users.values().cloned().collect();
    let (a, b, outsider) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let team = fresh_team(&c, "rw").await;
    let channel = c
        .create_channel(&team.id, "rw", "Read write", false)
        .await
        .expect("channel");
    assert!(!channel.private && !channel.archived);

    // Team batch with one account that does not exist: graceful per-user error.
    let ghost = "zzzzzzzzzzzzzzzzzzzzzzzzzz".to_string();
    let out = c
        .add_team_members(&team.id, &[a.clone(), b.clone(), ghost.clone()])
        .await
        .expect("team add");
    let by: BTreeMap<_, _> = out.iter().map(|o| (o.user_id.clone(), o)).collect();
    assert_eq!(by[&a].outcome, Outcome::Added);
    assert_eq!(by[&b].outcome, Outcome::Added);
    assert!(!by[&ghost].is_success(), "{:?}", by[&ghost]);
    eprintln!("team add of a missing account: {:?}", by[&ghost].error());

    // Adding again is harmless.
    let out = c
        .add_team_members(&team.id, std::slice::from_ref(&a))
        .await
        .expect("team re-add");
    assert_eq!(out[0].outcome, Outcome::Added);

    // Channel batch with one user who is not in the team: the server leaves them out of
    // its answer; the adapter asks again alone and reports why.
    let out = c
        .add_channel_members(&channel.id, &[a.clone(), b.clone(), outsider.clone()])
        .await
        .expect("channel add");
    let by: BTreeMap<_, _> = out.iter().map(|o| (o.user_id.clone(), o)).collect();
    assert_eq!(by[&a].outcome, Outcome::Added);
    assert_eq!(by[&b].outcome, Outcome::Added);
    assert!(!by[&outsider].is_success(), "{:?}", by[&outsider]);
    eprintln!(
        "channel add of a non-team-member: {:?}",
        by[&outsider].error()
    );

    // A batch where every user fails is asked per user too.
    let out = c
        .add_channel_members(&channel.id, &[outsider.clone(), ghost.clone()])
        .await
        .expect("channel add, all failing");
    assert!(out.iter().all(|o| !o.is_success()), "{out:?}");

    // Adding existing members again is harmless.
    let out = c
        .add_channel_members(&channel.id, &[a.clone(), b.clone()])
        .await
        .expect("channel re-add");
    assert!(out.iter().all(|o| o.outcome == Outcome::Added));

    // Scheme admin: set, read back, unset, read back.
    let o = c
        .set_channel_admin(&channel.id, &a, true)
        .await
        .expect("set");
    assert_eq!(o.outcome, Outcome::RoleSet { admin: true });
    let m = c.channel_members(&channel.id).await.expect("members");
    assert!(m[&a].scheme_admin && !m[&b].scheme_admin);
    let user_ref = |id: &str| UserRef {
        id: id.to_string(),
        username: String::new(),
    };
    let out = c
        .apply(&Action::SetChannelAdmin {
            channel_id: channel.id.clone(),
            channel: "x".into(),
            user: user_ref(&a),
            admin: false,
            groups: vec![],
        })
        .await
        .expect("unset");
    assert_eq!(out[0].outcome, Outcome::RoleSet { admin: false });
    let m = c.channel_members(&channel.id).await.expect("members");
    assert!(!m[&a].scheme_admin);
    assert!(m.contains_key(&a), "still a member after demotion");

    // Remove, then remove again: already absent.
    let out = c
        .apply(&Action::RemoveChannelMember {
            channel_id: channel.id.clone(),
            channel: "x".into(),
            user: user_ref(&b),
            mode: Mode::Sync,
        })
        .await
        .expect("remove");
    assert_eq!(out[0].outcome, Outcome::Removed);
    let o = c
        .remove_channel_member(&channel.id, &b)
        .await
        .expect("remove again");
    assert_eq!(o.outcome, Outcome::AlreadyAbsent);
    let o = c
        .remove_channel_member(&channel.id, &outsider)
        .await
        .expect("never a member");
    assert_eq!(o.outcome, Outcome::AlreadyAbsent);
    let m = c.channel_members(&channel.id).await.expect("members");
    assert!(!m.contains_key(&b) && m.contains_key(&a));

    // town-square cannot be left: an error, not "absent".
    let ts = c
        .channel_by_name(&team.name, "town-square")
        .await
        .expect("lookup")
        .expect("town-square exists");
    let err = c
        .remove_channel_member(&ts.id, &a)
        .await
        .expect_err("default channel");
    eprintln!("removing from town-square: {err}");
    assert_eq!(err.status(), Some(400));

    // Team removal, twice. Mattermost keeps a left team member as a row with delete_at > 0
    // and answers 200 to removing it again, so the second removal is "Removed" as well;
    // a user who never was in the team is "AlreadyAbsent".
    let out = c
        .apply(&Action::RemoveTeamMember {
            team_id: team.id.clone(),
            team: team.name.clone(),
            user: user_ref(&b),
            channels: Vec::new(),
        })
        .await
        .expect("team remove");
    assert_eq!(out[0].outcome, Outcome::Removed);
    let o = c.remove_team_member(&team.id, &b).await.expect("again");
    assert!(o.is_success(), "{o:?}");
    let o = c
        .remove_team_member(&team.id, &outsider)
        .await
        .expect("never a member");
    assert_eq!(o.outcome, Outcome::AlreadyAbsent);
    assert!(!c
        .team_members(&team.id)
        .await
        .expect("team members")
        .contains_key(&b));

    // Plan-shaped adds through apply.
    let member = |id: &str| PlanMember {
        id: id.to_string(),
        username: String::new(),
        groups: vec!["mm_rl_test".into()],
    };
    let out = c
        .apply(&Action::AddTeamMembers {
            team_id: team.id.clone(),
            team: team.name.clone(),
            users: vec![member(&b)],
        })
        .await
        .expect("apply team add");
    assert_eq!(out[0].outcome, Outcome::Added);
    let out = c
        .apply(&Action::AddChannelMembers {
            channel_id: channel.id.clone(),
            channel: "x".into(),
            users: vec![member(&b)],
        })
        .await
        .expect("apply channel add");
    assert_eq!(out[0].outcome, Outcome::Added);
    assert!(c
        .channel_members(&channel.id)
        .await
        .expect("members")
        .contains_key(&b));
    cleanup(&c, &team).await;
    release_users(&c, &ids).await;
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_mattermost_state_marks_archived_channels_bots_and_inactive_users() {
    let c = mattermost_or_fail().await;
    let s = suffix();
    let users = ensure_users(&c, "msit-state", 2).await;
    let (active, leaving) = {
        let v: Vec<_> = users.iter().collect();
        (
            (v[0].0.clone(), v[0].1.clone()),
            (v[1].0.clone(), v[1].1.clone()),
        )
    };
    let bot = match c
        .users_by_usernames(&["msit-bot".to_string()])
        .await
        .expect("lookup")
        .pop()
    {
        Some(b) => b,
        None => c
            .create_bot("msit-bot", "mattersync test bot")
            .await
            .expect("bot"),
    };
    assert!(bot.is_bot);
    let team = fresh_team(&c, "state").await;
    let open = c
        .create_channel(&team.id, "open", "Open", false)
        .await
        .expect("open");
    let old = c
        .create_channel(&team.id, "old", "Old", true)
        .await
        .expect("old");
    let ids = vec![active.1.clone(), leaving.1.clone(), bot.id.clone()];
    c.add_team_members(&team.id, &ids).await.expect("team add");
    c.add_channel_members(&open.id, &ids)
        .await
        .expect("channel add");
    c.archive_channel(&old.id).await.expect("archive");
    c.set_user_active(&leaving.1, false)
        .await
        .expect("deactivate");

    let archived = c
        .channel_by_name(&team.name, "old")
        .await
        .expect("lookup")
        .expect("archived channel still found");
    assert!(archived.archived && archived.private);
    assert!(c
        .channel_by_name(&team.name, "no-such-channel")
        .await
        .expect("lookup")
        .is_none());
    assert!(c
        .team_by_name(&format!("msit-none-{s}"))
        .await
        .expect("lookup")
        .is_none());

    let state = c
        .read_state(
            &[],
            &[
                (team.name.clone(), "open".into()),
                (team.name.clone(), "old".into()),
                (team.name.clone(), "no-such-channel".into()),
                (format!("msit-none-{s}"), "open".into()),
            ],
            &[active.0.clone(), format!("msit-nobody-{s}")],
        )
        .await
        .expect("state");
    assert_eq!(state.teams.len(), 1, "the channels' team is read too");
    let keys: Vec<_> = state.channels.keys().cloned().collect();
    assert_eq!(
        keys,
        [format!("{}/old", team.name), format!("{}/open", team.name)]
    );
    assert!(state.channels[&format!("{}/old", team.name)].archived);
    let open_state = &state.channels[&format!("{}/open", team.name)];
    assert!(open_state.members.contains_key(&leaving.1));
    assert!(state.users[&leaving.1].inactive);
    assert!(!state.users[&active.1].inactive);
    assert!(state.users[&bot.id].is_bot);
    assert!(!state.users[&active.1].email.is_empty());
    cleanup(&c, &team).await;
    release_users(&c, &[active.1]).await;
}

#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_mattermost_errors_name_the_request_and_the_servers_reason() {
    let c = mattermost_or_fail().await;
    let err = c
        .remove_channel_member("zzzzzzzzzzzzzzzzzzzzzzzzzz", "zzzzzzzzzzzzzzzzzzzzzzzzzz")
        .await
        .expect_err("no such channel");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains("DELETE /api/v4/channels/"), "{text}");
    assert_eq!(err.status(), Some(404));
    assert!(err.error_id().is_some());
}

/// A team of its own with eight channels (public and private, one archived), five accounts
/// spread over them: `read_state` with one request in flight and with four reads the same
/// state with the same number of calls.
#[tokio::test]
#[ignore = "needs the real servers (scripts/test.sh runs it)"]
async fn real_mattermost_read_state_is_the_same_with_one_and_with_four_in_flight() {
    let one = mattermost_in_flight_or_fail(1).await;
    let four = mattermost_in_flight_or_fail(4).await;
    assert_eq!((one.read_concurrency(), four.read_concurrency()), (1, 4));
    let team = fresh_team(&one, "inflight").await;
    let users = ensure_users(&one, "msit-inflight", 5).await;
    let ids: Vec<String> = users.values().cloned().collect();
    one.add_team_members(&team.id, &ids)
        .await
        .expect("team add");
    let mut channels = Vec::new();
    for i in 0..8 {
        let name = format!("inflight-{i}-{}", suffix());
        let ch = one
            .create_channel(&team.id, &name, &name, i % 3 == 0)
            .await
            .expect("create channel");
        let members: Vec<String> = ids.iter().skip(i % 5).take(1 + i % 4).cloned().collect();
        one.add_channel_members(&ch.id, &members)
            .await
            .expect("channel add");
        if i == 7 {
            one.archive_channel(&ch.id).await.expect("archive");
        }
        channels.push((team.name.clone(), name));
    }
    channels.push((team.name.clone(), "no-such-channel".into()));
    let mut usernames: Vec<String> = users.keys().cloned().collect();
    usernames.push("msit-inflight-nobody".into());
    let teams = [team.name.clone(), "msit-no-such-team".into()];

    let b1 = one.stats();
    let s1 = one.read_state(&teams, &channels, &usernames).await;
    let calls1 = one.stats().since(&b1).calls;
    let b4 = four.stats();
    let s4 = four.read_state(&teams, &channels, &usernames).await;
    let calls4 = four.stats().since(&b4).calls;
    release_users(&one, &ids).await;
    cleanup(&one, &team).await;

    let (s1, s4) = (
        s1.expect("state, 1 in flight"),
        s4.expect("state, 4 in flight"),
    );
    assert_eq!(s1.channels.len(), 8, "the missing channel is absent");
    assert!(s1.channels.values().any(|c| c.archived));
    assert!(s1.channels.values().any(|c| c.private));
    assert_eq!(s1.teams.len(), 1);
    assert_eq!(
        s1.teams[&team.name].members.len(),
        6,
        "five and the creator"
    );
    assert!(
        s1 == s4,
        "one in flight read {s1:#?}\nfour in flight read {s4:#?}"
    );
    // The same calls, only overlapped — but for the channel listing: other tests create
    // channels on this server meanwhile, and a listing that moves while it is paged costs a
    // by-name look-up for each wanted channel it did not reach (never a channel). So the two
    // may differ by at most that many calls (the exact equality is the fake-server test's).
    let slack = channels.len() as u64;
    assert!(
        calls1.abs_diff(calls4) <= slack,
        "one in flight made {calls1} calls, four {calls4}: more apart than the {slack} by-name look-ups a moved listing can cost"
    );
}
