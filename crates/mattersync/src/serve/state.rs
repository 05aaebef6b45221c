//! What the parts of the service share: settings, metrics, the status the HTTP side shows,
//! and the requests the sync worker takes.

use super::metrics::Metrics;
use mattersync_core::{Directory, Link, Target};
use mattersync_directory::LdapConfig;
use mattersync_engine::config::Config;
use mattersync_ledger::Ledger;
use mattersync_mattermost::{Client, Secret};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How many cycles and errors the status page keeps.
pub const KEEP_CYCLES: usize = 30;
pub const KEEP_ERRORS: usize = 20;

/// Where directory changes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// syncrepl when the server offers it, polling otherwise.
    Auto,
    /// RFC 4533 refreshAndPersist only.
    Syncrepl,
    /// `modifyTimestamp` queries plus a periodic full listing.
    Poll,
    /// No change notifications: the periodic full reconcile only.
    Off,
}

/// The service's settings, from the `[serve]` section and the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub full_reconcile: Duration,
    /// The guards count applied changes over this window too (zero: per cycle only).
    pub guard_window: Duration,
    /// An approval the service could not apply yet lapses after this long.
    pub approval_ttl: Duration,
    pub changes: ChangeSource,
    pub debounce: Duration,
    pub poll_interval: Duration,
    pub poll_listing: Duration,
    pub heartbeat: Duration,
    pub api_token: Option<Secret>,
    /// Timeouts and caps of the HTTP side.
    pub http: super::http::Limits,
}

/// A request to the sync worker.
#[derive(Debug)]
pub enum Request {
    /// Users or groups changed in the directory (`cookie`: the newest syncrepl cookie).
    /// `entries`: the DNs of the entries that changed, when the source names every one of
    /// them (a live syncrepl session, a poll); `None` when it cannot (an incremental refresh,
    /// deletions named by UUID only): the worker then reads the whole directory.
    Changed {
        at: Instant,
        cookie: Option<Vec<u8>>,
        entries: Option<Vec<String>>,
    },
    /// The change source cannot say what changed (a full refresh): reconcile everything.
    Resync {
        reason: String,
        cookie: Option<Vec<u8>>,
    },
    /// A newer cookie, nothing to do.
    Cookie(Vec<u8>),
    /// The change source is in place and nothing changed (the first full reconcile may run).
    Ready,
    /// The server refused the saved cookie: forget it.
    ForgetCookie,
    /// Sync these targets now (a slash command linked or unlinked something).
    Targets { targets: BTreeSet<Target> },
    /// A full reconcile now (`POST /sync`), answered when it ends.
    Full {
        /// Past a guard: anything held, or exactly the held plan reviewed.
        approval: mattersync_engine::Approval,
        /// Who asked (the audit trail's actor for an approval).
        actor: String,
        reply: Option<oneshot::Sender<CycleReport>>,
    },
    /// `POST /approve/<fingerprint>`: apply exactly the held set with this fingerprint (a
    /// cycle over the held scopes), answered when it ends.
    Approve {
        fingerprint: String,
        actor: String,
        reply: Option<oneshot::Sender<CycleReport>>,
    },
}

/// What a guard holds now, as the status page and `GET /holds` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    /// When the service first held these scopes (RFC 3339), and as Unix seconds.
    pub since: String,
    pub since_unix: u64,
    /// When the held set last changed (a new fingerprint).
    pub changed_at: String,
    /// The held plan was a full reconcile (every link), not the scopes a change touched.
    pub full: bool,
    /// The groups whose directory changes led the service to plan the held scopes (empty
    /// for a full reconcile).
    pub directory_changes: Vec<String>,
    pub summary: mattersync_engine::HoldSummary,
}

impl Hold {
    /// The exact ways to approve it: the CLI (which asks the running service) and HTTP.
    pub fn how_to_approve(&self, listen: &str) -> serde_json::Value {
        let fp = &self.summary.fingerprint;
        serde_json::json!({
            "cli": format!("mattersync approve {fp}"),
            "http": format!("curl -X POST -H 'Authorization: Bearer <serve.api_token_file>' http://{listen}/approve/{fp}"),
        })
    }

    pub fn age_secs(&self) -> u64 {
        unix_now().saturating_sub(self.since_unix)
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// How a sync cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Applied, every change succeeded.
    Ok,
    /// Nothing to change.
    NoChanges,
    /// Applied, some changes failed (retried).
    Partial,
    /// A removal guard holds the plan; nothing changed.
    GuardTripped,
    /// The directory could not be read; nothing was planned.
    DirectoryError,
    /// Mattermost could not be read; nothing changed.
    MattermostError,
    /// The ledger or the configuration failed.
    Error,
    /// The service is stopping.
    Stopped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoChanges => "no_changes",
            Outcome::Partial => "partial",
            Outcome::GuardTripped => "guard_tripped",
            Outcome::DirectoryError => "directory_error",
            Outcome::MattermostError => "mattermost_error",
            Outcome::Error => "error",
            Outcome::Stopped => "stopped",
        }
    }

    pub fn succeeded(self) -> bool {
        match self {
            Outcome::Ok | Outcome::NoChanges => true,
            Outcome::Partial
            | Outcome::GuardTripped
            | Outcome::DirectoryError
            | Outcome::MattermostError
            | Outcome::Error
            | Outcome::Stopped => false,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a cycle ended, as `/sync`, the status page and the metrics report it.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub kind: &'static str,
    pub outcome: Outcome,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    /// What was planned: `all`, or the groups/targets a change touched.
    pub scope: String,
    pub links: usize,
    pub actions: usize,
    pub users_ok: usize,
    pub users_failed: usize,
    pub api_calls: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guard_trips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The cycle applied a held plan because an approval covered it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub approved: bool,
    /// What a guard holds, when one did (its first page of changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<mattersync_engine::HoldSummary>,
}

impl CycleReport {
    pub fn succeeded(&self) -> bool {
        self.outcome.succeeded()
    }
}

/// A remembered error.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorEntry {
    pub at: String,
    pub what: String,
    pub message: String,
}

/// Whether one side answered the last time it was asked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub ok: bool,
    pub checked: bool,
    pub detail: String,
}

/// The change source's state.
#[derive(Debug, Clone, Serialize)]
pub struct SourceState {
    pub mode: String,
    pub connected: bool,
    pub detail: String,
}

/// What the HTTP side shows. Written by the worker and the watcher.
#[derive(Debug)]
pub struct Status {
    pub started_at: String,
    pub directory: Health,
    pub mattermost: Health,
    pub source: SourceState,
    pub cycles: VecDeque<CycleReport>,
    /// Change cycles that found nothing a link cares about (kept out of `cycles`, which a
    /// busy directory would flood).
    pub quiet_cycles: u64,
    /// The last cycle, when it did not succeed.
    pub failed: Option<CycleReport>,
    pub errors: VecDeque<ErrorEntry>,
    /// The guard trips of the plan held now, in words, and since when (the slash command's
    /// `status` shows them); `hold` has the whole summary.
    pub guard_trips: Option<(String, Vec<String>)>,
    /// What a guard holds now, until it is approved or the directory changes it back.
    pub hold: Option<Hold>,
    /// Directory uid → the linked groups that want them, without a Mattermost account.
    pub pending: BTreeMap<String, BTreeSet<String>>,
    /// The links as of the last directory read.
    pub links: Vec<Link>,
    pub warnings: Vec<String>,
    /// Renames followed and broken links, as of the last cycle.
    pub link_issues: Vec<mattersync_core::LinkIssue>,
    /// The last directory snapshot (for slash commands and member counts).
    pub directory_snapshot: Option<Arc<Directory>>,
    pub last_success: Option<String>,
    /// A full reconcile has succeeded since the start.
    pub reconciled: bool,
    /// Whether this instance does the work (see [`Role`]).
    pub role: Role,
}

/// Which instance syncs a shared (PostgreSQL) ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The only instance (a SQLite ledger and its file lock).
    Alone,
    /// Leads a shared ledger, with this epoch, since then.
    Leader { epoch: i64, since: String },
    /// Waits to take over; who leads, as the ledger says.
    Standby {
        leader: String,
        epoch: i64,
        since: String,
    },
}

impl Status {
    pub fn new(mode: &str) -> Status {
        Status {
            started_at: now_rfc3339(),
            directory: Health::default(),
            mattermost: Health::default(),
            source: SourceState {
                mode: mode.to_string(),
                connected: false,
                detail: "starting".to_string(),
            },
            cycles: VecDeque::new(),
            quiet_cycles: 0,
            failed: None,
            errors: VecDeque::new(),
            guard_trips: None,
            hold: None,
            pending: BTreeMap::new(),
            links: Vec::new(),
            warnings: Vec::new(),
            link_issues: Vec::new(),
            directory_snapshot: None,
            last_success: None,
            reconciled: false,
            role: Role::Alone,
        }
    }

    pub fn error(&mut self, what: &str, message: String) {
        self.errors.push_front(ErrorEntry {
            at: now_rfc3339(),
            what: what.to_string(),
            message,
        });
        self.errors.truncate(KEEP_ERRORS);
    }

    /// Why the service is not ready, or nothing when it is.
    pub fn not_ready(&self, source_active: bool) -> Vec<String> {
        let mut why = Vec::new();
        if let Role::Standby {
            leader,
            epoch,
            since,
        } = &self.role
        {
            // A standby is healthy (`/healthz`), not ready: a load balancer sends the work
            // to the leader.
            why.push(format!(
                "standby: the ledger's leader is {leader} (epoch {epoch}, since {since}); this instance takes over when it goes"
            ));
            return why;
        }
        for i in self.link_issues.iter().filter(|i| i.broken()) {
            why.push(i.to_string());
        }
        if !self.directory.ok {
            why.push(format!(
                "directory: {}",
                if self.directory.checked {
                    self.directory.detail.as_str()
                } else {
                    "not read yet"
                }
            ));
        }
        if source_active && !self.source.connected {
            why.push(format!(
                "change source ({}): {}",
                self.source.mode, self.source.detail
            ));
        }
        if !self.mattermost.ok {
            why.push(format!(
                "mattermost: {}",
                if self.mattermost.checked {
                    self.mattermost.detail.as_str()
                } else {
                    "not read yet"
                }
            ));
        }
        if !self.reconciled {
            why.push("the first full reconcile has not succeeded yet".to_string());
        }
        if let Some(c) = &self.failed {
            why.push(format!(
                "last run ({}) ended {}{}",
                c.kind,
                c.outcome,
                c.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        why
    }
}

/// Everything the HTTP handlers, the worker and the watcher share.
pub struct Shared {
    pub cfg: Config,
    pub settings: Settings,
    pub metrics: Metrics,
    pub status: RwLock<Status>,
    pub requests: mpsc::Sender<Request>,
    pub mm: Client,
    pub ldap: LdapConfig,
    /// The HTTP side's own ledger connection (the worker has another).
    pub ledger: tokio::sync::Mutex<Ledger>,
    /// Whether systemd was told READY=1 (once, the first time the service is ready).
    pub told_ready: std::sync::atomic::AtomicBool,
    /// The alerts channel's messages and the key of their buttons.
    pub alerts: super::alerts::Alerts,
}

impl Shared {
    /// Runs `f` on the status; a poisoned lock (a panic elsewhere) is recovered, since the
    /// status is only ever plain data.
    pub fn with_status<T>(&self, f: impl FnOnce(&mut Status) -> T) -> T {
        let mut guard = match self.status.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut guard)
    }

    pub fn read_status<T>(&self, f: impl FnOnce(&Status) -> T) -> T {
        let guard = match self.status.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&guard)
    }

    pub fn source_active(&self) -> bool {
        self.settings.changes != ChangeSource::Off
    }

    /// Recomputes readiness (and its gauge); returns the reasons for not being ready.
    pub fn readiness(&self) -> Vec<String> {
        let why = self.read_status(|s| s.not_ready(self.source_active()));
        self.metrics.ready.set(i64::from(why.is_empty()));
        if why.is_empty()
            && !self
                .told_ready
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            // Type=notify: the first full reconcile is done and both sides answer. Without
            // $NOTIFY_SOCKET (not under systemd) this does nothing.
            if let Err(e) = sd_notify::notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status("ready: first full reconcile done"),
            ]) {
                tracing::warn!(error = %e, "cannot tell systemd that the service is ready");
            }
        }
        why
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}
