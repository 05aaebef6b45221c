//! Single-change propagation through `mattersync serve`: a member added to a linked group in
//! the directory, timed until Mattermost shows the user in the group's channel.

use crate::world::Expected;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use ldap3::{LdapConnAsync, Mod};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the benchmark's `mattersync serve` listens (`[serve] listen` in its config).
pub const SERVE_LISTEN: &str = "127.0.0.1:8797";

#[derive(Debug, Clone, Serialize)]
pub struct Propagation {
    pub samples_ms: Vec<f64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub timeouts: usize,
    pub how: String,
}

/// The value at quantile `q` (nearest rank) of sorted samples.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (group cn, channel path, username) triples: a user of the channel's team who is not in the
/// channel, for the group whose convention channel it is; round-robin over the channels, a
/// different user each time.
fn changes(want: &Expected, n: usize) -> Vec<(String, String, String)> {
    let mut per_channel: Vec<(String, String, Vec<&String>)> = Vec::new();
    for (path, members) in &want.channels {
        let Some((team, channel)) = path.split_once('/') else {
            continue;
        };
        let Some(area) = team.strip_prefix("bench-") else {
            continue;
        };
        if channel.starts_with("hub-") {
            continue;
        }
        let inside: BTreeSet<&String> = members.iter().collect();
        let cands: Vec<&String> = want
            .teams
            .get(team)
            .into_iter()
            .flatten()
            .filter(|u| !inside.contains(u))
            .collect();
        let group = format!("mm_{area}_{}", channel.replace('-', "_"));
        per_channel.push((group, path.clone(), cands));
    }
    let mut out = Vec::new();
    let mut used: HashSet<&String> = HashSet::new();
    for round in 0..64 {
        for (group, path, cands) in &per_channel {
            if out.len() == n {
                return out;
            }
            if let Some(u) = cands.iter().skip(round).find(|u| !used.contains(**u)) {
                used.insert(u);
                out.push((group.clone(), path.clone(), (*u).clone()));
            }
        }
    }
    out
}

pub async fn run(
    ctx: &Ctx,
    cfg: &Path,
    run_dir: &Path,
    world: &Path,
    n: usize,
) -> Result<Propagation> {
    let want = Expected::load(&world.join("expected.json"))?;
    let todo = changes(&want, n);
    if todo.len() < n {
        bail!("only {} single changes available", todo.len());
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = format!("{}/api/v4", ctx.mm_url);
    let auth = format!("Bearer {}", ctx.token);
    let names: Vec<&String> = todo.iter().map(|t| &t.2).collect();
    let users: Vec<serde_json::Value> = http
        .post(format!("{api}/users/usernames"))
        .header("Authorization", &auth)
        .json(&names)
        .send()
        .await?
        .json()
        .await?;
    let ids: BTreeMap<String, String> = users
        .iter()
        .filter_map(|u| {
            Some((
                u["username"].as_str()?.to_string(),
                u["id"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut channel_ids = BTreeMap::new();
    for (_, path, _) in &todo {
        let (team, channel) = path.split_once('/').context("channel path")?;
        let c: serde_json::Value = http
            .get(format!("{api}/teams/name/{team}/channels/name/{channel}"))
            .header("Authorization", &auth)
            .send()
            .await?
            .json()
            .await?;
        channel_ids.insert(
            path.clone(),
            c["id"].as_str().unwrap_or_default().to_string(),
        );
    }

    // `mattersync serve`, its log in the run directory
    let log = std::fs::File::create(run_dir.join("serve.log"))?;
    let mut serve = Command::new(&ctx.mattersync)
        .args(["serve"])
        .env("MATTERSYNC_CONFIG", cfg)
        .env("MATTERSYNC_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting mattersync serve")?;
    let result = async {
        // ready: first full reconcile done, change source live
        let ready = Instant::now();
        loop {
            let r = http
                .get(format!("http://{SERVE_LISTEN}/readyz"))
                .send()
                .await;
            if r.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if ready.elapsed() > Duration::from_secs(600) {
                bail!("mattersync serve was not ready within 10 minutes (see serve.log)");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "bench: serve ready after {:.1} s",
            ready.elapsed().as_secs_f64()
        );
        let (conn, mut ldap) = LdapConnAsync::new(&ctx.ldap_url).await?;
        ldap3::drive!(conn);
        ldap.simple_bind(&ctx.ldap_bind_dn, &ctx.ldap_password)
            .await?
            .success()?;
        let mut samples = Vec::new();
        let mut timeouts = 0;
        for (group, path, user) in &todo {
            let uid = &ids[user];
            let cid = &channel_ids[path];
            let dn = format!("cn={group},cn=groups,cn=accounts,{}", ctx.base_dn);
            let member = format!("uid={user},cn=users,cn=accounts,{}", ctx.base_dn);
            ldap.modify(
                &dn,
                vec![Mod::Add("member", HashSet::from([member.as_str()]))],
            )
            .await?
            .success()
            .with_context(|| format!("adding {user} to {group}"))?;
            let t = Instant::now();
            loop {
                let r = http
                    .get(format!("{api}/channels/{cid}/members/{uid}"))
                    .header("Authorization", &auth)
                    .send()
                    .await?;
                if r.status().is_success() {
                    samples.push(t.elapsed().as_secs_f64() * 1e3);
                    break;
                }
                if t.elapsed() > Duration::from_secs(30) {
                    timeouts += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // undo in the directory (serve then removes them again; not measured)
        for (group, _, user) in &todo {
            let dn = format!("cn={group},cn=groups,cn=accounts,{}", ctx.base_dn);
            let member = format!("uid={user},cn=users,cn=accounts,{}", ctx.base_dn);
            ldap.modify(
                &dn,
                vec![Mod::Delete("member", HashSet::from([member.as_str()]))],
            )
            .await?
            .success()?;
        }
        ldap.unbind().await.ok();
        let mut sorted = samples.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        anyhow::Ok(Propagation {
            p50_ms: quantile(&sorted, 0.50),
            p90_ms: quantile(&sorted, 0.90),
            p99_ms: quantile(&sorted, 0.99),
            max_ms: sorted.last().copied().unwrap_or(0.0),
            samples_ms: samples,
            timeouts,
            how: "syncrepl (serve)".into(),
        })
    }
    .await;
    // SAFETY: signalling our own child by its pid.
    unsafe {
        libc::kill(serve.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = serve.wait();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_go_round_the_convention_channels_with_a_new_user_each_time() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let want = Expected {
            teams: [("bench-rl".to_string(), names(&["a", "b", "c", "d"]))].into(),
            channels: [
                ("bench-rl/docs-1".to_string(), names(&["a"])),
                ("bench-rl/web-2".to_string(), names(&["b"])),
                ("bench-rl/hub-0".to_string(), names(&[])),
            ]
            .into(),
            team_names: vec![],
            channel_paths: vec![],
            memberships: 0,
        };
        let got = changes(&want, 3);
        assert_eq!(
            got,
            [
                ("mm_rl_docs_1".into(), "bench-rl/docs-1".into(), "b".into()),
                ("mm_rl_web_2".into(), "bench-rl/web-2".into(), "a".into()),
                ("mm_rl_docs_1".into(), "bench-rl/docs-1".into(), "c".into()),
            ]
        );
        assert_eq!(changes(&want, 10).len(), 4, "every user once at most");
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
