//! The service's metrics, in the Prometheus (OpenMetrics) text format at `/metrics`.
//!
//! Names (all prefixed `mattersync_`):
//! - `runs_total{kind,outcome}`: sync cycles. `kind`: `full` (startup, periodic, after a
//!   full directory refresh), `changes` (a directory change), `targets` (a slash command),
//!   `manual` (`POST /sync`), `approve` (`POST /approve/<fingerprint>`, and the retries of
//!   an approval a failed cycle kept). `outcome`: `ok`, `no_changes`, `partial`, `guard_tripped`,
//!   `directory_error`, `mattermost_error`, `error`, `stopped`.
//! - `run_duration_seconds{kind}`, `phase_duration_seconds{phase}` (`directory`,
//!   `mattermost`, `apply`): histograms.
//! - `change_latency_seconds`: from a change notification to the end of the cycle that
//!   applied it (histogram).
//! - `actions_total{action,outcome}`: per-user changes by action type, `ok`/`failed`.
//! - `mattermost_api_calls_total{method}`, `mattermost_api_retries_total`,
//!   `mattermost_api_rate_limited_total`: every HTTP attempt to Mattermost;
//!   `mattermost_api_responses_total{method,status}` (`2xx`, `3xx`, `4xx`, `5xx`, `none`:
//!   no answer) and `mattermost_api_latency_seconds{method}` (histogram), per attempt.
//! - `build_info{version,commit}` (always 1), `links`, `owned_memberships`: gauges.
//! - `pending_users`, `last_success_timestamp_seconds`, `ready`, `directory_connected`:
//!   gauges.
//! - `held_changes`: per-user changes a guard holds now (gauge; 0 when nothing is held).
//! - `leader`: 1 while this instance syncs, 0 on a standby of a shared ledger.
//! - `guard_trips_total`, `directory_notifications_total{source}`,
//!   `directory_sessions_total{refresh}` (`full`/`incremental`),
//!   `directory_session_errors_total`, `directory_cookie_refused_total`,
//!   `slash_commands_total{command,outcome}`.
//! - `directory_entry_reads_total`: entries a change cycle read again because a notification
//!   named them (instead of a full read).
//! - `model_drift_total{side}`: differences a full reconcile found between what the service
//!   kept and a fresh read. `directory`: groups and users (a lost notification; logged as an
//!   error); `mattermost`: memberships changed by someone else since the last reconcile.

use mattersync_mattermost::ApiStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub commit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SideLabel {
    pub side: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabel {
    pub refresh: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: String,
    pub outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn api_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn seconds_histogram() -> Histogram {
    // 5 ms .. ~82 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    pub runs: Family<RunLabels, Counter>,
    pub run_duration: HistogramFamily<KindLabel>,
    pub phase_duration: HistogramFamily<PhaseLabel>,
    pub change_latency: Histogram,
    pub actions: Family<ActionLabels, Counter>,
    api_calls: Family<MethodLabel, Counter>,
    api_retries: Counter,
    api_rate_limited: Counter,
    api_responses: Family<ResponseLabels, Counter>,
    api_latency: HistogramFamily<MethodLabel>,
    build_info: Family<BuildLabels, Gauge>,
    pub links: Gauge,
    pub owned_memberships: Gauge,
    pub pending_users: Gauge,
    pub last_success: Gauge<f64, AtomicU64>,
    pub ready: Gauge,
    pub directory_connected: Gauge,
    pub guard_trips: Counter,
    /// Per-user changes a guard holds now (0 when nothing is held).
    pub held_changes: Gauge,
    /// 1 while this instance does the work (alone, or the leader of a shared ledger).
    pub leader: Gauge,
    pub directory_reads: Counter,
    pub broken_links: Gauge,
    pub notifications: Family<SourceLabel, Counter>,
    pub sessions: Family<RefreshLabel, Counter>,
    pub session_errors: Counter,
    pub cookie_refused: Counter,
    pub slash: Family<CommandLabels, Counter>,
    pub entry_reads: Counter,
    pub model_drift: Family<SideLabel, Counter>,
    /// Change notifications sent to the worker so far (not exported: a full reconcile knows
    /// from it whether any came while it read).
    pub notified: AtomicU64,
    /// The Mattermost client's counters as of the last scrape.
    api_seen: Mutex<ApiStats>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            runs: Family::default(),
            run_duration: Family::new_with_constructor(seconds_histogram),
            phase_duration: Family::new_with_constructor(seconds_histogram),
            change_latency: seconds_histogram(),
            actions: Family::default(),
            api_calls: Family::default(),
            api_retries: Counter::default(),
            api_rate_limited: Counter::default(),
            api_responses: Family::default(),
            api_latency: Family::new_with_constructor(api_histogram),
            build_info: Family::default(),
            links: Gauge::default(),
            owned_memberships: Gauge::default(),
            pending_users: Gauge::default(),
            last_success: Gauge::default(),
            ready: Gauge::default(),
            directory_connected: Gauge::default(),
            guard_trips: Counter::default(),
            held_changes: Gauge::default(),
            leader: Gauge::default(),
            directory_reads: Counter::default(),
            broken_links: Gauge::default(),
            notifications: Family::default(),
            sessions: Family::default(),
            session_errors: Counter::default(),
            cookie_refused: Counter::default(),
            slash: Family::default(),
            entry_reads: Counter::default(),
            model_drift: Family::default(),
            notified: AtomicU64::new(0),
            api_seen: Mutex::new(ApiStats::default()),
            registry: Registry::with_prefix("mattersync"),
        };
        let registry = &mut m.registry;
        registry.register("runs", "Sync cycles by kind and outcome", m.runs.clone());
        registry.register(
            "run_duration_seconds",
            "Duration of sync cycles",
            m.run_duration.clone(),
        );
        registry.register(
            "phase_duration_seconds",
            "Duration of the phases of a sync cycle (directory read, Mattermost read, apply)",
            m.phase_duration.clone(),
        );
        registry.register(
            "change_latency_seconds",
            "From a directory change notification to the end of the cycle that applied it",
            m.change_latency.clone(),
        );
        registry.register(
            "actions",
            "Per-user changes made by plan actions, by action type and outcome",
            m.actions.clone(),
        );
        registry.register(
            "mattermost_api_calls",
            "HTTP attempts to the Mattermost API, by method",
            m.api_calls.clone(),
        );
        registry.register(
            "mattermost_api_retries",
            "Mattermost API attempts that were retries",
            m.api_retries.clone(),
        );
        registry.register(
            "mattermost_api_rate_limited",
            "Mattermost API answers of 429 Too Many Requests",
            m.api_rate_limited.clone(),
        );
        registry.register(
            "mattermost_api_responses",
            "Mattermost API attempts by method and status class (none: no answer)",
            m.api_responses.clone(),
        );
        registry.register(
            "mattermost_api_latency_seconds",
            "Duration of Mattermost API attempts, by method",
            m.api_latency.clone(),
        );
        registry.register(
            "build_info",
            "The running build: its version and commit (always 1)",
            m.build_info.clone(),
        );
        m.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                commit: env!("MATTERSYNC_COMMIT").to_string(),
            })
            .set(1);
        registry.register(
            "links",
            "Links planned by the last cycle (file, ledger, convention)",
            m.links.clone(),
        );
        registry.register(
            "owned_memberships",
            "Team and channel memberships the ledger says mattersync added and holds, as of the last cycle's read",
            m.owned_memberships.clone(),
        );
        registry.register(
            "pending_users",
            "Directory members of linked groups without a Mattermost account",
            m.pending_users.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the end of the last successful sync cycle",
            m.last_success.clone(),
        );
        registry.register("ready", "1 when /readyz answers 200", m.ready.clone());
        registry.register(
            "directory_connected",
            "1 while the change source (syncrepl session or poller) is working",
            m.directory_connected.clone(),
        );
        registry.register(
            "guard_trips",
            "Distinct plans not applied because a removal guard tripped (a held plan counts once)",
            m.guard_trips.clone(),
        );
        registry.register(
            "held_changes",
            "Per-user changes a guard holds now, waiting for an approval or a revert (memberships either way and admin roles; 0 when nothing is held)",
            m.held_changes.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance syncs (the only one, or the leader of a shared PostgreSQL ledger); 0 on a standby",
            m.leader.clone(),
        );
        registry.register(
            "broken_links",
            "Links whose group, team or channel is gone, replaced by another, or a direct message",
            m.broken_links.clone(),
        );
        registry.register(
            "directory_reads",
            "Full directory snapshots read by sync cycles",
            m.directory_reads.clone(),
        );
        registry.register(
            "directory_entry_reads",
            "Directory entries re-read by change cycles because a notification named them",
            m.entry_reads.clone(),
        );
        registry.register(
            "model_drift",
            "Differences a full reconcile found between the kept model and a fresh read, by side",
            m.model_drift.clone(),
        );
        registry.register(
            "directory_notifications",
            "Directory change notifications about users or groups, by source",
            m.notifications.clone(),
        );
        registry.register(
            "directory_sessions",
            "syncrepl sessions started, by refresh (incremental: resumed from a cookie)",
            m.sessions.clone(),
        );
        registry.register(
            "directory_session_errors",
            "Change-source sessions that ended in an error",
            m.session_errors.clone(),
        );
        registry.register(
            "directory_cookie_refused",
            "Saved syncrepl cookies the server refused (a full refresh followed)",
            m.cookie_refused.clone(),
        );
        registry.register(
            "slash_commands",
            "Slash commands by command and outcome",
            m.slash.clone(),
        );
        m
    }

    pub fn run(&self, kind: &str, outcome: &str) {
        self.runs
            .get_or_create(&RunLabels {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn phase(&self, phase: &str, seconds: f64) {
        self.phase_duration
            .get_or_create(&PhaseLabel {
                phase: phase.to_string(),
            })
            .observe(seconds);
    }

    pub fn action(&self, action: &str, outcome: &str, n: u64) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.to_string(),
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }

    /// One Mattermost API attempt (the client's observer).
    pub fn api_attempt(&self, a: &mattersync_mattermost::Attempt<'_>) {
        let status = match a.status {
            Some(s) => format!("{}xx", s / 100),
            None => "none".to_string(),
        };
        self.api_responses
            .get_or_create(&ResponseLabels {
                method: a.method.to_string(),
                status,
            })
            .inc();
        self.api_latency
            .get_or_create(&MethodLabel {
                method: a.method.to_string(),
            })
            .observe(a.elapsed.as_secs_f64());
    }

    pub fn notification(&self, source: &str) {
        self.notified
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.notifications
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .inc();
    }

    pub fn session(&self, resumed: bool) {
        self.sessions
            .get_or_create(&RefreshLabel {
                refresh: if resumed { "incremental" } else { "full" }.to_string(),
            })
            .inc();
    }

    pub fn slash_command(&self, command: &str, outcome: &str) {
        self.slash
            .get_or_create(&CommandLabels {
                command: command.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The text exposition, after folding in what the Mattermost client counted since the
    /// last scrape.
    pub fn render(&self, api: ApiStats) -> String {
        if let Ok(mut seen) = self.api_seen.lock() {
            let d = api.since(&seen);
            for (method, n) in [
                ("GET", d.get),
                ("POST", d.post),
                ("PUT", d.put),
                ("DELETE", d.delete),
                ("other", d.other),
            ] {
                self.api_calls
                    .get_or_create(&MethodLabel {
                        method: method.to_string(),
                    })
                    .inc_by(n);
            }
            self.api_retries.inc_by(d.retries);
            self.api_rate_limited.inc_by(d.rate_limited);
            *seen = api;
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_and_folds_in_api_calls() {
        let m = Metrics::new();
        m.run("changes", "ok");
        m.run("changes", "ok");
        m.action("add_channel_members", "ok", 3);
        m.guard_trips.inc();
        m.session(true);
        m.pending_users.set(4);
        let text = m.render(ApiStats {
            calls: 5,
            get: 4,
            post: 1,
            ..Default::default()
        });
        for line in [
            "mattersync_runs_total{kind=\"changes\",outcome=\"ok\"} 2",
            "mattersync_actions_total{action=\"add_channel_members\",outcome=\"ok\"} 3",
            "mattersync_guard_trips_total 1",
            "mattersync_directory_sessions_total{refresh=\"incremental\"} 1",
            "mattersync_pending_users 4",
            "mattersync_mattermost_api_calls_total{method=\"GET\"} 4",
            "# TYPE mattersync_change_latency_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // The next scrape adds only what is new.
        let text = m.render(ApiStats {
            calls: 7,
            get: 6,
            post: 1,
            ..Default::default()
        });
        assert!(text
            .lines()
            .any(|l| l == "mattersync_mattermost_api_calls_total{method=\"GET\"} 6"));
    }

    #[test]
    fn build_info_responses_by_status_class_and_latency() {
        let m = Metrics::new();
        for (method, status, ms) in [
            ("GET", Some(200), 3),
            ("GET", Some(404), 2),
            ("POST", Some(503), 40),
            ("GET", None, 900),
        ] {
            m.api_attempt(&mattersync_mattermost::Attempt {
                method,
                status,
                elapsed: std::time::Duration::from_millis(ms),
            });
        }
        m.links.set(3);
        m.owned_memberships.set(12);
        let text = m.render(ApiStats::default());
        let build = format!(
            "mattersync_build_info{{version=\"{}\",commit=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            env!("MATTERSYNC_COMMIT")
        );
        for line in [
            build.as_str(),
            "mattersync_mattermost_api_responses_total{method=\"GET\",status=\"2xx\"} 1",
            "mattersync_mattermost_api_responses_total{method=\"GET\",status=\"4xx\"} 1",
            "mattersync_mattermost_api_responses_total{method=\"POST\",status=\"5xx\"} 1",
            "mattersync_mattermost_api_responses_total{method=\"GET\",status=\"none\"} 1",
            "mattersync_mattermost_api_latency_seconds_count{method=\"GET\"} 3",
            "mattersync_mattermost_api_latency_seconds_bucket{le=\"0.004\",method=\"GET\"} 2",
            "mattersync_links 3",
            "mattersync_owned_memberships 12",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
