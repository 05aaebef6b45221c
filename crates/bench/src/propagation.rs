//! Single-change propagation through `mattersync serve`: the mix of [`crate::mix`] made in the
//! directory one change at a time, each timed until Mattermost shows its result in the
//! group's convention channel, with the serve cycles it caused (from serve's own log).

use crate::mix::{self, Change, ChangeKind};
use crate::world::Expected;
use crate::Ctx;
use anyhow::{bail, Context, Result};
use ldap3::{LdapConnAsync, Mod};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the benchmark's `mattersync serve` listens (`[serve] listen` in its config).
pub const SERVE_LISTEN: &str = "127.0.0.1:8797";

/// One change as measured.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub change: Change,
    /// LDAP modify answered → Mattermost shows the result; `None`: not within 30 s.
    pub ms: Option<f64>,
    /// The serve cycles logged between this change and the next (`cycle timings`, or
    /// `sync cycle done` from a serve that does not log the timings).
    pub cycles: Vec<BTreeMap<String, f64>>,
}

/// The cycles of a change that count: its `cycle timings` lines if serve logs them (then its
/// `sync cycle done` lines repeat the same cycles), else its `sync cycle done` lines;
/// periodic full reconciles left out.
pub fn own_cycles(cycles: &[BTreeMap<String, f64>]) -> Vec<&BTreeMap<String, f64>> {
    let timings = cycles.iter().any(|c| c.contains_key("timings"));
    cycles
        .iter()
        .filter(|c| c.contains_key("timings") == timings && !c.contains_key("full"))
        .collect()
}

impl Sample {
    /// API calls of the cycles this change caused.
    pub fn api_calls(&self) -> Option<f64> {
        let calls: Vec<f64> = own_cycles(&self.cycles)
            .into_iter()
            .filter_map(|c| c.get("api_calls").copied())
            .collect();
        (!calls.is_empty()).then(|| calls.iter().sum())
    }
}

/// Percentiles of one kind of change.
#[derive(Debug, Clone, Serialize)]
pub struct KindStats {
    pub kind: ChangeKind,
    pub n: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub timeouts: usize,
    /// Median and range of the API calls its cycles made, and the fewest writes it needs.
    pub calls_median: Option<f64>,
    pub calls_min: Option<f64>,
    pub calls_max: Option<f64>,
    pub min_writes_median: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Propagation {
    pub label: String,
    pub samples: Vec<Sample>,
    pub kinds: Vec<KindStats>,
    /// All kinds together.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub timeouts: usize,
    /// Median per field over the change cycles (`wait_ms`, `directory_ms`, …).
    pub phases: BTreeMap<String, f64>,
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

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// The numeric `key=value` fields of a serve log line that reports a cycle: `cycle timings`
/// (every phase) or, from a serve without it, `sync cycle done` (`duration_ms` as
/// `total_ms`). A cycle of kind `full` gets the field `full` = 1. Anything else: `None`.
pub fn cycle_fields(line: &str) -> Option<BTreeMap<String, f64>> {
    let timings = line.contains("cycle timings");
    if !timings && !line.contains("sync cycle done") {
        return None;
    }
    let mut out = BTreeMap::new();
    if timings {
        out.insert("timings".to_string(), 1.0);
    }
    for token in line.split_whitespace() {
        let Some((k, v)) = token.split_once('=') else {
            continue;
        };
        let v = v.trim_matches(|c| c == '"' || c == ',');
        if k == "kind" {
            if v == "full" {
                out.insert("full".to_string(), 1.0);
            }
            continue;
        }
        let v = v.strip_suffix("ms").unwrap_or(v);
        if let Ok(x) = v.parse::<f64>() {
            let k = if !timings && k == "duration_ms" {
                "total_ms"
            } else {
                k
            };
            out.insert(k.to_string(), x);
        }
    }
    Some(out)
}

/// Per kind, and the median of every phase over the cycles of single changes.
pub fn summarise(label: &str, samples: Vec<Sample>) -> Propagation {
    let mut kinds = Vec::new();
    for kind in ChangeKind::ALL {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.change.kind == kind).collect();
        if of.is_empty() {
            continue;
        }
        let ms = sorted(of.iter().filter_map(|s| s.ms).collect());
        let calls = sorted(of.iter().filter_map(|s| s.api_calls()).collect());
        let mins = sorted(of.iter().map(|s| s.change.min_writes as f64).collect());
        kinds.push(KindStats {
            kind,
            n: of.len(),
            p50_ms: quantile(&ms, 0.5),
            p90_ms: quantile(&ms, 0.9),
            p99_ms: quantile(&ms, 0.99),
            max_ms: ms.last().copied().unwrap_or(0.0),
            timeouts: of.iter().filter(|s| s.ms.is_none()).count(),
            calls_median: (!calls.is_empty()).then(|| quantile(&calls, 0.5)),
            calls_min: calls.first().copied(),
            calls_max: calls.last().copied(),
            min_writes_median: quantile(&mins, 0.5),
        });
    }
    let all = sorted(samples.iter().filter_map(|s| s.ms).collect());
    let mut fields: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in &samples {
        // a change that made exactly one cycle: its phases are that change's
        let single = own_cycles(&s.cycles);
        if let [c] = single.as_slice() {
            for (k, v) in c.iter() {
                fields.entry(k.clone()).or_default().push(*v);
            }
        }
    }
    let phases = fields
        .into_iter()
        .map(|(k, v)| (k, quantile(&sorted(v), 0.5)))
        .collect();
    Propagation {
        label: label.to_string(),
        p50_ms: quantile(&all, 0.5),
        p99_ms: quantile(&all, 0.99),
        timeouts: samples.iter().filter(|s| s.ms.is_none()).count(),
        samples,
        kinds,
        phases,
        how: "syncrepl (serve)".into(),
    }
}

/// Cycle lines appended to `log` since `offset` (which moves past them).
fn new_cycles(log: &Path, offset: &mut usize) -> Vec<BTreeMap<String, f64>> {
    let Ok(text) = std::fs::read(log) else {
        return Vec::new();
    };
    let Some(fresh) = text.get(*offset..) else {
        return Vec::new();
    };
    // whole lines only
    let end = fresh.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    *offset += end;
    String::from_utf8_lossy(&fresh[..end])
        .lines()
        .filter_map(cycle_fields)
        .collect()
}

/// One build's `serve`: its binary, its name in the report, its config and run directory.
pub struct Side<'a> {
    pub bin: &'a Path,
    pub label: &'a str,
    pub cfg: &'a Path,
    pub run_dir: &'a Path,
}

pub async fn run(
    ctx: &Ctx,
    side: &Side<'_>,
    world: &Path,
    n: usize,
    seed: u64,
) -> Result<Propagation> {
    let Side {
        bin,
        label,
        cfg,
        run_dir,
    } = *side;
    let want = Expected::load(&world.join("expected.json"))?;
    let extra = mix::parse_links(&std::fs::read_to_string(world.join("links.toml"))?);
    let todo = mix::changes(&want, &extra, n, seed);
    if todo.len() < n {
        bail!("only {} single changes available", todo.len());
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = format!("{}/api/v4", ctx.mm_url);
    let auth = format!("Bearer {}", ctx.token);
    let names: Vec<&String> = todo.iter().map(|t| &t.user).collect();
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
    for c in &todo {
        if channel_ids.contains_key(&c.channel) {
            continue;
        }
        let (team, channel) = c.channel.split_once('/').context("channel path")?;
        let v: serde_json::Value = http
            .get(format!("{api}/teams/name/{team}/channels/name/{channel}"))
            .header("Authorization", &auth)
            .send()
            .await?
            .json()
            .await?;
        channel_ids.insert(
            c.channel.clone(),
            v["id"].as_str().unwrap_or_default().to_string(),
        );
    }

    // `mattersync serve`, its log in the run directory
    let log_path = run_dir.join("serve.log");
    let log = std::fs::File::create(&log_path)?;
    let mut serve = Command::new(bin)
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
            if ready.elapsed() > Duration::from_secs(900) {
                bail!("mattersync serve was not ready within 15 minutes (see serve.log)");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "bench: {label} serve ready after {:.1} s",
            ready.elapsed().as_secs_f64()
        );
        // let the start-up settle (its cycles are not a change's)
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut offset = 0usize;
        let _ = new_cycles(&log_path, &mut offset);
        let (conn, mut ldap) = LdapConnAsync::new(&ctx.ldap_url).await?;
        ldap3::drive!(conn);
        ldap.simple_bind(&ctx.ldap_bind_dn, &ctx.ldap_password)
            .await?
            .success()?;
        let mut samples = Vec::new();
        for (i, c) in todo.iter().enumerate() {
            let uid = ids
                .get(&c.user)
                .with_context(|| format!("{} has no account", c.user))?;
            let cid = &channel_ids[&c.channel];
            let dn = format!("cn={},cn=groups,cn=accounts,{}", c.group, ctx.base_dn);
            let member = format!("uid={},cn=users,cn=accounts,{}", c.user, ctx.base_dn);
            let value = HashSet::from([member.as_str()]);
            let m = match c.kind {
                ChangeKind::Removal => Mod::Delete("member", value),
                ChangeKind::AddInTeam | ChangeKind::AddTeamJoin => Mod::Add("member", value),
            };
            ldap.modify(&dn, vec![m])
                .await?
                .success()
                .with_context(|| format!("{:?} {} in {}", c.kind, c.user, c.group))?;
            let t = Instant::now();
            let want_member = c.kind != ChangeKind::Removal;
            let mut ms = None;
            loop {
                let r = http
                    .get(format!("{api}/channels/{cid}/members/{uid}"))
                    .header("Authorization", &auth)
                    .send()
                    .await?;
                if r.status().is_success() == want_member
                    && (want_member || r.status() == reqwest::StatusCode::NOT_FOUND)
                {
                    ms = Some(t.elapsed().as_secs_f64() * 1e3);
                    break;
                }
                if t.elapsed() > Duration::from_secs(30) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // the cycle's own line comes after its writes: wait for it (bounded), so that
            // the next change is a single change again
            let mut cycles = Vec::new();
            let waited = Instant::now();
            while cycles.is_empty() && waited.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                cycles.extend(new_cycles(&log_path, &mut offset));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            cycles.extend(new_cycles(&log_path, &mut offset));
            if i % 20 == 19 {
                eprintln!("bench: {label} propagation {}/{}", i + 1, todo.len());
            }
            samples.push(Sample {
                change: c.clone(),
                ms,
                cycles,
            });
        }
        // undo the adds left in the directory (serve then removes them; not measured)
        let removed: HashSet<&String> = todo
            .iter()
            .filter(|c| c.kind == ChangeKind::Removal)
            .map(|c| &c.user)
            .collect();
        for c in todo.iter().filter(|c| !removed.contains(&c.user)) {
            let dn = format!("cn={},cn=groups,cn=accounts,{}", c.group, ctx.base_dn);
            let member = format!("uid={},cn=users,cn=accounts,{}", c.user, ctx.base_dn);
            ldap.modify(
                &dn,
                vec![Mod::Delete("member", HashSet::from([member.as_str()]))],
            )
            .await?
            .success()?;
        }
        ldap.unbind().await.ok();
        anyhow::Ok(summarise(label, samples))
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
    fn cycle_lines_are_read_with_or_without_the_timings() {
        let t = cycle_fields(
            "2026-12-02T04:00:00.1Z  INFO mattersync::serve::worker: cycle timings kind=changes wait_ms=3 directory_ms=1.5 links_ms=0 mattermost_ms=4 plan_ms=1 apply_ms=17 total_ms=27 api_calls=2 ldap_entries=3",
        )
        .expect("a cycle");
        assert_eq!(t["api_calls"], 2.0);
        assert_eq!(t["directory_ms"], 1.5);
        assert_eq!(t["total_ms"], 27.0);
        assert!(!t.contains_key("full"));
        let old = cycle_fields(
            "2026-12-02T04:00:00.1Z  INFO mattersync::serve::worker: sync cycle done kind=\"full\" outcome=ok scope=everything actions=0 users_ok=0 api_calls=294 duration_ms=1040",
        )
        .expect("a cycle");
        assert_eq!(
            (old["api_calls"], old["total_ms"], old["full"]),
            (294.0, 1040.0, 1.0)
        );
        assert!(cycle_fields("INFO mattersync: audit actor=x").is_none());
        // serve logs both lines for a cycle: the timings count, the other does not
        let both = vec![
            t.clone(),
            cycle_fields("INFO x: sync cycle done kind=changes api_calls=2 duration_ms=27")
                .expect("a cycle"),
        ];
        assert_eq!(own_cycles(&both), [&t]);
        assert_eq!(
            own_cycles(&both[1..]).len(),
            1,
            "an older serve's line counts"
        );
    }

    #[test]
    fn a_summary_has_percentiles_per_kind_and_phases_of_single_cycles() {
        let change = |kind| Change {
            kind,
            group: "g".into(),
            channel: "t/c".into(),
            user: "u".into(),
            min_writes: 1,
        };
        let cycle = |calls: f64, dir: f64| {
            BTreeMap::from([
                ("api_calls".to_string(), calls),
                ("directory_ms".to_string(), dir),
            ])
        };
        let samples = vec![
            Sample {
                change: change(ChangeKind::AddInTeam),
                ms: Some(10.0),
                cycles: vec![cycle(3.0, 5.0)],
            },
            Sample {
                change: change(ChangeKind::AddInTeam),
                ms: Some(30.0),
                cycles: vec![cycle(5.0, 7.0)],
            },
            Sample {
                change: change(ChangeKind::Removal),
                ms: None,
                cycles: vec![cycle(1.0, 9.0), cycle(1.0, 1.0)],
            },
        ];
        let p = summarise("new", samples);
        assert_eq!(p.kinds.len(), 2);
        let add = &p.kinds[0];
        assert_eq!(
            (add.n, add.p50_ms, add.max_ms, add.calls_median),
            (2, 10.0, 30.0, Some(3.0))
        );
        let removal = &p.kinds[1];
        assert_eq!((removal.timeouts, removal.calls_median), (1, Some(2.0)));
        assert_eq!(p.timeouts, 1);
        // the removal made two cycles: its phases are not one change's
        assert_eq!(p.phases["directory_ms"], 5.0);
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
