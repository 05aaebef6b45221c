//! Results and the tables printed from them.

use crate::dirfloor::DirFloor;
use crate::floor::{Actual, FloorRun, CHANNEL_BATCH, TEAM_BATCH};
use crate::propagation::Propagation;
use crate::world::{Expected, Stats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One measured mattersync run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measured {
    pub wall_ms: f64,
    pub calls: u64,
    pub writes: u64,
    /// Write calls its plan's actions take (for a `plan` run: what `apply` would send).
    pub planned_writes: u64,
    pub ldap_entries: u64,
    pub ldap_searches: u64,
    pub max_rss_kib: u64,
    pub failed: u64,
    pub changed: bool,
}

/// Samples of one figure: median and range.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    pub samples: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(samples: Vec<f64>) -> Spread {
        let mut v = samples.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        Spread {
            median: v.get(v.len() / 2).copied().unwrap_or(0.0),
            min: v.first().copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
            samples,
        }
    }

    /// `1.2 s (1.1–1.4 s, 5)`.
    pub fn show(&self) -> String {
        format!(
            "{} ({}–{}, {})",
            secs(self.median),
            secs(self.min),
            secs(self.max),
            self.samples.len()
        )
    }
}

/// The warm floor with `in_flight` requests at a time.
#[derive(Debug, Clone, Serialize)]
pub struct FloorSpread {
    pub in_flight: usize,
    pub wall: Spread,
    pub calls: u64,
}

/// Everything measured for one size.
#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    pub size: String,
    pub stats: Stats,
    pub cold_executed: bool,
    pub cold: Option<Measured>,
    pub cold_floor: Option<FloorRun>,
    pub cold_state: String,
    pub cold_floor_state: String,
    pub adopt: Option<Measured>,
    /// The warm run with the highest peak RSS (its wall time is in `warm_all_ms`).
    pub warm: Option<Measured>,
    pub warm_ms: f64,
    pub warm_all_ms: Vec<f64>,
    pub warm_floor: Option<FloorRun>,
    pub warm_floor_ms: f64,
    pub dir_floor: Option<DirFloor>,
    pub dir_floor_ms: f64,
    pub warm_state: String,
    pub mass: Option<Measured>,
    pub mass_floor: Option<FloorRun>,
    pub mass_adds: u64,
    pub mass_state: String,
    pub mass_floor_state: String,
    pub propagation: Vec<Propagation>,
    pub propagation_error: String,
    pub label: String,
    pub warm_spread: Spread,
    pub warm_floors: Vec<FloorSpread>,
    pub baseline_label: String,
    pub baseline_warm: Option<Measured>,
    pub baseline_spread: Spread,
}

impl SizeResult {
    pub fn new(size: &str, stats: Stats) -> SizeResult {
        SizeResult {
            size: size.to_string(),
            stats,
            cold_executed: false,
            cold: None,
            cold_floor: None,
            cold_state: String::new(),
            cold_floor_state: String::new(),
            adopt: None,
            warm: None,
            warm_ms: 0.0,
            warm_all_ms: Vec::new(),
            warm_floor: None,
            warm_floor_ms: 0.0,
            dir_floor: None,
            dir_floor_ms: 0.0,
            warm_state: String::new(),
            mass: None,
            mass_floor: None,
            mass_adds: 0,
            mass_state: String::new(),
            mass_floor_state: String::new(),
            propagation: Vec::new(),
            propagation_error: String::new(),
            label: String::new(),
            warm_spread: Spread::default(),
            warm_floors: Vec::new(),
            baseline_label: String::new(),
            baseline_warm: None,
            baseline_spread: Spread::default(),
        }
    }

    /// Memberships the linked scopes hold when in sync.
    pub fn memberships(&self) -> u64 {
        self.stats.desired_channel_memberships + self.stats.desired_team_memberships
    }
}

/// The write calls the floor's batches take for everything `want` has that `actual` lacks.
pub fn batched_writes(want: &Expected, actual: &Actual) -> u64 {
    let count = |names: &Vec<String>, present: Option<&std::collections::BTreeSet<String>>| {
        names
            .iter()
            .filter_map(|n| actual.user_ids.get(n))
            .filter(|id| present.is_none_or(|p| !p.contains(*id)))
            .count() as u64
    };
    let teams: u64 = want
        .teams
        .iter()
        .map(|(t, n)| count(n, actual.team_members.get(t)).div_ceil(TEAM_BATCH as u64))
        .sum();
    let channels: u64 = want
        .channels
        .iter()
        .map(|(c, n)| count(n, actual.channel_members.get(c)).div_ceil(CHANNEL_BATCH as u64))
        .sum();
    teams + channels
}

fn secs(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.0} s", ms / 1e3)
    } else if ms >= 1_000.0 {
        format!("{:.1} s", ms / 1e3)
    } else {
        format!("{ms:.0} ms")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

/// The per-size tables, as Markdown.
pub fn tables(rs: &[SizeResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n### World\n");
    let _ = writeln!(s, "| size | users | pending | disabled | mm groups (+plain) | links | teams / channels | group size max / p90 / median | memberships when in sync (team + channel) | mass change |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rs {
        let t = &r.stats;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} (+{}) | {} | {} / {} | {} / {} / {} | {} ({} + {}) | +{} ({} LDAP values) |",
            r.size, t.users, t.pending, t.disabled, t.groups, t.plain_groups, t.links, t.teams,
            t.channels, t.group_size_max, t.group_size_p90, t.group_size_median,
            r.memberships(), t.desired_team_memberships, t.desired_channel_memberships,
            r.mass_adds, t.mass_change_ldap_values
        );
    }

    let _ = writeln!(
        s,
        "\n### Full reconcile: mattersync against the raw floor (same server, same run)\n"
    );
    let _ = writeln!(s, "| size | run | mattersync wall | floor wall (API) | ratio | API calls: mattersync / floor (= minimum) | ratio | writes | LDAP entries (searches) | directory floor | peak RSS | end state |");
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in rs {
        if let (Some(m), Some(f)) = (&r.cold, &r.cold_floor) {
            let run = if r.cold_executed {
                "cold"
            } else {
                "cold (planned)"
            };
            let (wall, fwall, wr) = if r.cold_executed {
                (
                    secs(m.wall_ms),
                    secs(f.wall_ms),
                    ratio(m.wall_ms, f.wall_ms),
                )
            } else {
                ("–".into(), "–".into(), "–".into())
            };
            let calls = if r.cold_executed {
                m.calls
            } else {
                m.calls + m.planned_writes
            };
            let writes = if r.cold_executed {
                m.writes
            } else {
                m.planned_writes
            };
            let _ = writeln!(
                s,
                "| {} | {run} | {wall} | {fwall} | {wr} | {calls} / {} | {} | {writes} / {} | {} ({}) | – | {} | {} |",
                r.size, f.calls, ratio(calls as f64, f.calls as f64), f.writes, m.ldap_entries,
                m.ldap_searches, mib(m.max_rss_kib), r.cold_state
            );
        }
        if let (Some(m), Some(f)) = (&r.warm, &r.warm_floor) {
            let _ = writeln!(
                s,
                "| {} | warm (median of {}) | {} | {} | {} | {} / {} | {} | {} / {} | {} ({}) | {} | {} | {} |",
                r.size, r.warm_all_ms.len(), secs(r.warm_ms), secs(r.warm_floor_ms),
                ratio(r.warm_ms, r.warm_floor_ms), m.calls, f.calls,
                ratio(m.calls as f64, f.calls as f64), m.writes, f.writes, m.ldap_entries,
                m.ldap_searches, secs(r.dir_floor_ms), mib(m.max_rss_kib), r.warm_state
            );
        }
    }

    if rs.iter().any(|r| r.mass.is_some()) {
        let _ = writeln!(
            s,
            "\n### Mass change (directory adds, then one reconcile)\n"
        );
        let _ = writeln!(s, "| size | memberships added | mattersync wall | floor wall | ratio | adds/s mattersync / floor | API calls mattersync / floor | peak RSS | end state |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
        for r in rs {
            if let (Some(m), Some(f)) = (&r.mass, &r.mass_floor) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {:.0} / {:.0} | {} / {} | {} | {} |",
                    r.size,
                    r.mass_adds,
                    secs(m.wall_ms),
                    secs(f.wall_ms),
                    ratio(m.wall_ms, f.wall_ms),
                    r.mass_adds as f64 / (m.wall_ms / 1e3),
                    f.added as f64 / (f.wall_ms / 1e3),
                    m.calls,
                    f.calls,
                    mib(m.max_rss_kib),
                    r.mass_state
                );
            }
        }
    }

    s.push_str(&warm_table(rs));
    s.push_str(&propagation_tables(rs));
    s
}

fn label(l: &str) -> &str {
    if l.is_empty() {
        "mattersync"
    } else {
        l
    }
}

/// Warm full reconcile: every floor and every build, median (min–max, samples), ratios of
/// medians from the same run.
pub fn warm_table(rs: &[SizeResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### Warm full reconcile: floors with 1 and N requests in flight, taking turns with mattersync\n"
    );
    let _ = writeln!(s, "| size | who | wall: median (min–max, samples) | ÷ floor/1 | ÷ floor/4 | API calls | peak RSS |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    for r in rs {
        let f1 = r
            .warm_floors
            .iter()
            .find(|f| f.in_flight == 1)
            .map(|f| f.wall.median);
        let f4 = r
            .warm_floors
            .iter()
            .find(|f| f.in_flight == 4)
            .map(|f| f.wall.median);
        let rel = |x: f64, f: Option<f64>| f.map_or("–".to_string(), |f| ratio(x, f));
        for f in &r.warm_floors {
            let _ = writeln!(
                s,
                "| {} | floor, {} in flight | {} | {} | {} | {} | – |",
                r.size,
                f.in_flight,
                f.wall.show(),
                rel(f.wall.median, f1),
                rel(f.wall.median, f4),
                f.calls
            );
        }
        if let Some(m) = &r.warm {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.size,
                label(&r.label),
                r.warm_spread.show(),
                rel(r.warm_spread.median, f1),
                rel(r.warm_spread.median, f4),
                m.calls,
                mib(m.max_rss_kib)
            );
        }
        if let Some(m) = &r.baseline_warm {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.size,
                r.baseline_label,
                r.baseline_spread.show(),
                rel(r.baseline_spread.median, f1),
                rel(r.baseline_spread.median, f4),
                m.calls,
                mib(m.max_rss_kib)
            );
        }
    }
    s
}

fn calls(k: &crate::propagation::KindStats) -> String {
    match (k.calls_median, k.calls_min, k.calls_max) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.0} ({lo:.0}–{hi:.0})"),
        _ => "–".into(),
    }
}

/// The phases of `cycle timings`, in the order a cycle runs them.
pub const PHASES: [(&str, &str); 7] = [
    ("wait_ms", "first notification → cycle start (debounce)"),
    ("directory_ms", "directory"),
    ("links_ms", "link resolution and ledger facts"),
    ("mattermost_ms", "Mattermost reads"),
    ("plan_ms", "planning"),
    ("apply_ms", "writes"),
    ("total_ms", "whole cycle"),
];

/// Propagation per kind of change, and where one change's time goes.
pub fn propagation_tables(rs: &[SizeResult]) -> String {
    let mut s = String::new();
    if rs.iter().all(|r| r.propagation.is_empty()) {
        return s;
    }
    let _ = writeln!(
        s,
        "\n### Single-change propagation through `mattersync serve` (a seeded mix over every team)\n"
    );
    let _ = writeln!(s, "| size | build | kind of change | changes | p50 | p90 | p99 | max | timeouts | API calls per change: median (range) | fewest writes (median) |");
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rs {
        for p in &r.propagation {
            for k in &p.kinds {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                    r.size,
                    p.label,
                    k.kind.name(),
                    k.n,
                    secs(k.p50_ms),
                    secs(k.p90_ms),
                    secs(k.p99_ms),
                    secs(k.max_ms),
                    k.timeouts,
                    calls(k),
                    k.min_writes_median
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\n### Where one change's time goes (serve's `cycle timings`, median over single-cycle changes)\n"
    );
    let mut head = String::from("| phase |");
    let mut rule = String::from("|---|");
    let mut cols = Vec::new();
    for r in rs {
        for p in &r.propagation {
            head.push_str(&format!(" {} {} |", r.size, p.label));
            rule.push_str("---:|");
            cols.push(p);
        }
    }
    let _ = writeln!(s, "{head}\n{rule}");
    for (key, what) in PHASES
        .iter()
        .chain([("api_calls", "API calls"), ("ldap_entries", "LDAP entries")].iter())
    {
        let mut line = format!("| {what} |");
        for p in &cols {
            let v = p.phases.get(*key);
            let cell = match v {
                Some(v) if key.ends_with("_ms") => secs(*v),
                Some(v) => format!("{v:.0}"),
                None => "–".into(),
            };
            line.push_str(&format!(" {cell} |"));
        }
        let _ = writeln!(s, "{line}");
    }
    s
}

/// The targets against what this run measured.
pub fn targets(rs: &[SizeResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n### Against the targets\n");
    let _ = writeln!(s, "| target | size | measured | |");
    let _ = writeln!(s, "|---|---|---:|---|");
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    for r in rs {
        if let Some(p) = r.propagation.first() {
            for k in &p.kinds {
                let ok = k.p99_ms <= 250.0 && k.timeouts == 0;
                let _ = writeln!(
                    s,
                    "| propagation p99 ≤ 250 ms ({}) | {} | {} | {} |",
                    k.kind.name(),
                    r.size,
                    secs(k.p99_ms),
                    if ok {
                        "met".to_string()
                    } else {
                        format!("**missed** by {}", secs(k.p99_ms - 250.0))
                    }
                );
                if let (Some(c), m) = (k.calls_median, k.min_writes_median) {
                    let _ = writeln!(
                        s,
                        "| calls per single change within 2 of the minimum ({}) | {} | {c:.0} (minimum {m:.0}) | {} |",
                        k.kind.name(),
                        r.size,
                        verdict(c <= m + 2.0)
                    );
                }
            }
        }
        if r.warm.is_some() && r.warm_floor_ms > 0.0 && r.size != "S" {
            let x = r.warm_spread.median / r.warm_floor_ms;
            let _ = writeln!(
                s,
                "| warm full reconcile ≤ 0.6× the sequential floor | {} | {x:.2}× | {} |",
                r.size,
                verdict(x <= 0.6)
            );
        }
        if let (Some(m), Some(f)) = (&r.cold, &r.cold_floor) {
            let calls = if r.cold_executed {
                m.calls
            } else {
                m.calls + m.planned_writes
            };
            let x = calls as f64 / f.calls.max(1) as f64;
            let _ = writeln!(
                s,
                "| cold API calls ≤ 1.01× the minimum | {} | {x:.3}× ({calls} / {}) | {} |",
                r.size,
                f.calls,
                verdict(x <= 1.01)
            );
        }
        if r.size == "L" {
            if let Some(m) = &r.warm {
                let mb = m.max_rss_kib as f64 * 1024.0 / 1e6;
                let _ = writeln!(
                    s,
                    "| peak RSS < 200 MB | L | {mb:.0} MB | {} |",
                    verdict(mb < 200.0)
                );
            }
        }
    }
    s
}

/// Growth from size to size: cost per unit of work.
pub fn growth(rs: &[SizeResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n### Growth (cost per unit of work; linear growth keeps these flat)\n"
    );
    let _ = writeln!(s, "| size | memberships in sync | warm wall per 1k memberships | warm API calls per 1k memberships | LDAP entries read per user | cold wall per 1k adds | mass wall per 1k adds | peak RSS (warm) | RSS per 1k users |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rs {
        let k = r.memberships() as f64 / 1e3;
        let warm = r.warm.clone().unwrap_or_default();
        let cold = match (&r.cold, r.cold_executed) {
            (Some(c), true) => secs(c.wall_ms / (r.memberships() as f64 / 1e3)),
            _ => "–".into(),
        };
        let mass = match &r.mass {
            Some(m) if r.mass_adds > 0 => secs(m.wall_ms / (r.mass_adds as f64 / 1e3)),
            _ => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {:.2} | {cold} | {mass} | {} | {:.1} MiB |",
            r.size,
            r.memberships(),
            secs(r.warm_ms / k),
            warm.calls as f64 / k,
            warm.ldap_entries as f64 / r.stats.users as f64,
            mib(warm.max_rss_kib),
            warm.max_rss_kib as f64 / 1024.0 / (r.stats.users as f64 / 1e3)
        );
    }
    s
}

/// The whole report: machine, tables, growth.
pub fn document(machine: &BTreeMap<String, String>, rs: &[SizeResult], total_s: f64) -> String {
    let mut s = String::from("## Results\n\n");
    for (k, v) in machine {
        let _ = writeln!(s, "- {k}: {v}");
    }
    let _ = writeln!(s, "- benchmark wall time: {:.0} s", total_s);
    s.push_str(&tables(rs));
    s.push_str(&targets(rs));
    s.push_str(&growth(rs));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_well() {
        assert_eq!(secs(12.4), "12 ms");
        assert_eq!(secs(1234.0), "1.2 s");
        assert_eq!(secs(123_456.0), "123 s");
        assert_eq!(ratio(3.0, 2.0), "1.50×");
        assert_eq!(ratio(1.0, 0.0), "–");
        assert_eq!(mib(2048), "2 MiB");
    }

    #[test]
    fn a_spread_has_the_median_and_the_range_of_its_samples() {
        let s = Spread::of(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        assert_eq!(
            s.samples,
            [5.0, 1.0, 3.0, 2.0, 4.0],
            "in the order measured"
        );
        assert_eq!(s.show(), "3 ms (1 ms–5 ms, 5)");
        assert_eq!(Spread::of(vec![]).median, 0.0);
    }

    #[test]
    fn batched_writes_cut_at_the_server_limits() {
        let names: Vec<String> = (0..1300).map(|i| format!("u{i}")).collect();
        let want = Expected {
            teams: [("t".to_string(), names.clone())].into(),
            channels: [("t/c".to_string(), names.clone())].into(),
            team_names: vec![],
            channel_paths: vec![],
            memberships: 0,
        };
        let actual = Actual {
            team_ids: BTreeMap::new(),
            channel_ids: BTreeMap::new(),
            user_ids: names
                .iter()
                .map(|n| (n.clone(), format!("id-{n}")))
                .collect(),
            team_members: BTreeMap::new(),
            channel_members: [("t/c".to_string(), ["id-u0".to_string()].into())].into(),
        };
        // 1300 team adds: 6 calls of 256; 1299 channel adds: 2 calls of 1000
        assert_eq!(batched_writes(&want, &actual), 6 + 2);
    }
}
