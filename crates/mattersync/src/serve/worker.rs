//! The sync worker: one cycle at a time, each a fail-closed directory read, a plan for the
//! links that read makes necessary, and the apply.
//!
//! A full reconcile reads the whole directory into a model and every linked team and channel
//! into a kept state of Mattermost (`engine::Kept`). A change cycle reads again only the
//! entries the notifications named (`engine::Ldap::refresh_model`), plans only the scopes
//! the difference affects (add-only changes without their team's other links), and plans
//! them from the kept state, reading from Mattermost only the memberships of the users the
//! change is about (`engine::gather_kept`). A notification never says what to do; the
//! difference between the model before and after the reads does
//! ([`mattersync_core::scope::changed_groups`]). Every full reconcile compares the model and
//! the kept state with what it read and counts any difference (`mattersync_model_drift`).
//! What a cycle could not finish (a Mattermost error, a failed action, a guard trip) is
//! carried into the next one, so nothing is lost between cycles. A directory error ends a
//! cycle before anything is planned.

use super::state::{now_rfc3339, CycleReport, Outcome, Request, Shared, KEEP_CYCLES};
use anyhow::Result;
use mattersync_core::scope;
use mattersync_core::{Directory, Link, LinkIdentity, Note, Plan, Target};
use mattersync_directory::{DirModel, LdapConfig};
use mattersync_engine::backoff::Backoff;
use mattersync_engine::{self as engine, DirectorySource, LedgerView, Verdict};
use mattersync_ledger::{Ledger, RunLock};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

/// A burst of changes is coalesced for at most this many debounce periods.
const MAX_COALESCE: u32 = 8;
/// How long the first full reconcile waits for the change source to be in place.
const SOURCE_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Startup, periodic, or after a full directory refresh.
    Full,
    /// `POST /sync`.
    Manual,
    /// Directory changes.
    Changes,
    /// Targets a slash command asked for.
    Targets,
    /// `POST /approve/<fingerprint>`: the held scopes again (every link when the held plan
    /// was a full reconcile, or nothing is parked), with the approval.
    Approve { full: bool },
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Manual => "manual",
            Kind::Changes => "changes",
            Kind::Targets => "targets",
            Kind::Approve { .. } => "approve",
        }
    }

    fn is_full(self) -> bool {
        matches!(
            self,
            Kind::Full | Kind::Manual | Kind::Approve { full: true }
        )
    }
}

/// What a guard holds: the scopes of a plan it stopped, parked until the directory changes
/// one of them, an approval comes, or the next periodic reconcile. Never retried on a timer.
#[derive(Debug, Clone)]
struct Parked {
    /// The held plan was a full reconcile (every link).
    full: bool,
    groups: BTreeSet<String>,
    targets: BTreeSet<Target>,
    /// The held plan, so that the same plan held again is logged and recorded only once.
    fingerprint: String,
    /// The teams and channels the held changes are in (`team` or `team/channel`): a change
    /// cycle that plans one of them re-plans a full hold (the change may be its revert).
    scopes: BTreeSet<String>,
}

/// An approval the worker was given, by whom and when.
#[derive(Debug, Clone)]
struct Granted {
    approval: engine::Approval,
    /// `approval:<who>`.
    actor: String,
    at: Instant,
}

pub struct Worker {
    shared: Arc<Shared>,
    /// Held for the life of the service: the proof that lets it settle and apply.
    lock: Arc<RunLock>,
    ledger: Ledger,
    /// The directory, its connection kept between cycles.
    dir: engine::Ldap,
    rx: mpsc::Receiver<Request>,
    stop: watch::Receiver<bool>,
    cursor: String,
    /// The directory as of the last successful read.
    baseline: Option<Arc<Directory>>,
    /// The directory kept as a model that change cycles update entry by entry (`None`: the
    /// next cycle reads it whole).
    model: Option<DirModel>,
    /// Mattermost as of the last full reconcile, kept true by this worker's writes.
    kept: Option<engine::Kept>,
    /// The entries notifications named since the last cycle; `None` when one could not say
    /// (the next cycle then reads the whole directory).
    named: Option<BTreeSet<String>>,
    /// When the last change notification came (a lone change is applied at once).
    last_change: Option<Instant>,
    /// The links as last resolved, and what they were resolved from.
    linked: Option<(LinkKey, Arc<engine::Linked>)>,
    /// The ledger's links and the ids recorded for them, as last read (see `read_view`).
    identities: Option<(Vec<Link>, Vec<LinkIdentity>)>,
    last_links: Vec<Link>,
    /// Work a failed or refused cycle left behind.
    carried_groups: BTreeSet<String>,
    carried_targets: BTreeSet<Target>,
    asked_targets: BTreeSet<Target>,
    full_due: bool,
    waiters: Vec<oneshot::Sender<CycleReport>>,
    /// From `POST /sync` (`approve=` or `allow_mass_removal`): the next manual cycle only.
    approval: Option<Granted>,
    /// From `POST /approve/<fingerprint>`: exactly one held set, kept across cycles the
    /// directory or Mattermost made fail until it is applied, refused (the held set
    /// changed) or lapses (`serve.approval_ttl`).
    approved: Option<Granted>,
    approve_waiters: Vec<oneshot::Sender<CycleReport>>,
    /// This instance, as the audit trail names it (`serve:<host>/<pid>`).
    actor: String,
    /// (first change, when the coalesced burst is due).
    changes_due: Option<(Instant, Instant)>,
    latest_cookie: Option<Vec<u8>>,
    saved_cookie: Option<Vec<u8>>,
    next_full: Instant,
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// The retry waits because the directory could not be read.
    directory_down: bool,
    /// What a removal guard holds; the status keeps saying so until it clears.
    parked: Option<Parked>,
    /// What cycles applied recently: (when, removals, additions), for the guards over time.
    applied: std::collections::VecDeque<(Instant, usize, usize)>,
    /// Link targets looked up by id (kept between change cycles, cleared for full ones).
    targets: engine::TargetCache,
    /// The link issues last logged (each is logged when it appears or changes).
    last_issues: Vec<mattersync_core::LinkIssue>,
    hold_until: Option<Instant>,
}

/// What links are resolved from: the groups by name and id, the ledger's links and the ids
/// recorded for them. The same key gives the same links (targets are looked up through the
/// worker's `TargetCache`, which change cycles keep).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkKey {
    groups: Vec<(String, String)>,
    links: Vec<Link>,
    identities: Vec<LinkIdentity>,
}

impl LinkKey {
    /// Whether links resolved from `dir` and `view` would be resolved from this key.
    fn matches(&self, dir: &Directory, view: &LedgerView) -> bool {
        self.groups.len() == dir.groups.len()
            && self
                .groups
                .iter()
                .zip(&dir.groups)
                .all(|((cn, id), (c, g))| cn == c && *id == g.id)
            && self.links == view.links
            && self.identities == view.identities
    }

    fn of(dir: &Directory, view: &LedgerView) -> LinkKey {
        LinkKey {
            groups: dir
                .groups
                .iter()
                .map(|(cn, g)| (cn.clone(), g.id.clone()))
                .collect(),
            links: view.links.clone(),
            identities: view.identities.clone(),
        }
    }
}

/// Where a cycle's time went, for the `cycle timings` log line.
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    directory: Duration,
    links: Duration,
    mattermost: Duration,
    plan: Duration,
    apply: Duration,
    /// Directory entries read again (a change cycle), or `None` for a full read.
    entry_reads: Option<usize>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// How a cycle ended, before it becomes a report.
struct Ended {
    outcome: Outcome,
    error: Option<String>,
    /// Retry after a backoff.
    retry: bool,
    /// A guard holds the very plan it already held: said and recorded once already.
    repeat: bool,
    /// The cycle planned every scope of a partial hold.
    planned_parked: bool,
    /// The cycle applied a plan a guard held, because an approval covered it.
    approved: bool,
    /// A guard held the plan: its fingerprint.
    held: Option<String>,
    /// An approved plan was applied and some of its changes failed: all of its changes, so
    /// that the retries of what failed stay covered by the approval.
    unfinished: Option<std::collections::BTreeSet<engine::Change>>,
}

impl Ended {
    fn ok(outcome: Outcome) -> Ended {
        Ended {
            outcome,
            error: None,
            retry: false,
            repeat: false,
            planned_parked: false,
            approved: false,
            held: None,
            unfinished: None,
        }
    }

    fn failed(outcome: Outcome, e: &anyhow::Error) -> Ended {
        Ended {
            outcome,
            error: Some(format!("{e:#}")),
            retry: true,
            repeat: false,
            planned_parked: false,
            approved: false,
            held: None,
            unfinished: None,
        }
    }
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: Arc<Shared>,
        lock: Arc<RunLock>,
        ledger: Ledger,
        ldap: LdapConfig,
        rx: mpsc::Receiver<Request>,
        stop: watch::Receiver<bool>,
        cursor: String,
        saved_cookie: Option<Vec<u8>>,
    ) -> Worker {
        let now = Instant::now();
        let hold_until = shared.source_active().then(|| now + SOURCE_WAIT);
        let next_full = now + shared.settings.full_reconcile;
        Worker {
            shared,
            lock,
            ledger,
            dir: engine::Ldap::new(ldap),
            rx,
            stop,
            cursor,
            baseline: None,
            model: None,
            kept: None,
            named: Some(BTreeSet::new()),
            last_change: None,
            linked: None,
            identities: None,
            last_links: Vec::new(),
            carried_groups: BTreeSet::new(),
            carried_targets: BTreeSet::new(),
            asked_targets: BTreeSet::new(),
            full_due: true,
            waiters: Vec::new(),
            approval: None,
            approved: None,
            approve_waiters: Vec::new(),
            actor: engine::actor::serve(),
            changes_due: None,
            latest_cookie: saved_cookie.clone(),
            saved_cookie,
            next_full,
            retry_at: None,
            backoff: Backoff::standard(),
            directory_down: false,
            parked: None,
            applied: std::collections::VecDeque::new(),
            targets: engine::TargetCache::default(),
            last_issues: Vec::new(),
            hold_until,
        }
    }

    pub async fn run(mut self) {
        loop {
            if *self.stop.borrow() {
                break;
            }
            let wake = self.next_wake(Instant::now());
            tokio::select! {
                biased;
                r = self.stop.changed() => if r.is_err() || *self.stop.borrow() { break },
                req = self.rx.recv() => match req {
                    Some(r) => self.take(r),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    if let Some(kind) = self.due(Instant::now()) {
                        self.cycle(kind).await;
                    }
                }
            }
        }
        self.shutdown();
    }

    fn take(&mut self, req: Request) {
        // Any word from the change source means it is in place, and that the directory
        // answers again: a retry that waits for the directory need not wait any longer.
        let from_source = matches!(
            req,
            Request::Changed { .. }
                | Request::Resync { .. }
                | Request::Ready
                | Request::Cookie(_)
                | Request::ForgetCookie
        );
        if from_source {
            self.hold_until = None;
            if self.directory_down {
                self.directory_down = false;
                self.retry_at = None;
                self.backoff.reset();
            }
        }
        match req {
            Request::Changed {
                at,
                cookie,
                entries,
            } => {
                if cookie.is_some() {
                    self.latest_cookie = cookie;
                }
                match (entries, self.named.as_mut()) {
                    (Some(dns), Some(named)) => named.extend(dns),
                    _ => self.named = None,
                }
                // A lone change is applied at once; one that follows another within the
                // debounce starts (or extends) a burst, coalesced for at most MAX_COALESCE
                // debounce periods.
                let debounce = self.shared.settings.debounce;
                let now = Instant::now();
                let lone = self
                    .last_change
                    .is_none_or(|t| now.duration_since(t) > debounce);
                self.last_change = Some(now);
                let (first, _) = self.changes_due.unwrap_or((at, at));
                let cap = first + debounce * MAX_COALESCE;
                let due = match self.changes_due {
                    // A cycle about to start takes this change too.
                    Some((_, due)) if due <= now => due,
                    None if lone => now,
                    _ => (now + debounce).min(cap),
                };
                self.changes_due = Some((first, due));
            }
            Request::Resync { reason, cookie } => {
                info!(%reason, "a full reconcile follows");
                if cookie.is_some() {
                    self.latest_cookie = cookie;
                }
                self.full_due = true;
            }
            Request::Cookie(c) => {
                self.latest_cookie = Some(c);
                if self.idle() {
                    self.save_cookie(self.latest_cookie.clone());
                }
            }
            Request::Ready => {}
            Request::ForgetCookie => {
                self.latest_cookie = None;
                self.save_cookie(None);
            }
            Request::Targets { targets } => self.asked_targets.extend(targets),
            Request::Full {
                approval,
                actor,
                reply,
            } => {
                // The broadest approval asked for since the last manual cycle stands.
                let now = self
                    .approval
                    .as_ref()
                    .map_or(engine::Approval::None, |g| g.approval.clone());
                if approval != engine::Approval::None
                    && (approval == engine::Approval::Any || now == engine::Approval::None)
                {
                    self.approval = Some(Granted {
                        approval,
                        actor,
                        at: Instant::now(),
                    });
                }
                self.waiters.extend(reply);
                if self.waiters.is_empty() {
                    self.full_due = true;
                }
            }
            Request::Approve {
                fingerprint,
                actor,
                reply,
            } => {
                self.approved = Some(Granted {
                    approval: engine::Approval::Exactly(fingerprint),
                    actor,
                    at: Instant::now(),
                });
                self.approve_waiters.extend(reply);
            }
        }
    }

    /// No change waits to be applied.
    fn idle(&self) -> bool {
        self.changes_due.is_none()
            && self.carried_groups.is_empty()
            && self.carried_targets.is_empty()
            && self.retry_at.is_none()
            && !self.full_due
    }

    fn due(&self, now: Instant) -> Option<Kind> {
        if !self.waiters.is_empty() {
            return Some(Kind::Manual);
        }
        if !self.approve_waiters.is_empty() {
            return Some(Kind::Approve { full: false });
        }
        if self.hold_until.is_some_and(|h| now < h) {
            return None;
        }
        let asked = !self.asked_targets.is_empty();
        if self.retry_at.is_some_and(|r| now < r) && !asked {
            return None;
        }
        if self.approved.is_some() {
            // An approval a failed cycle could not apply: tried again after the backoff.
            return Some(Kind::Approve { full: false });
        }
        if self.full_due || self.baseline.is_none() || now >= self.next_full {
            return Some(Kind::Full);
        }
        let changes = self.changes_due.is_some_and(|(_, d)| now >= d)
            || (self.retry_at.is_some()
                && (!self.carried_groups.is_empty() || !self.carried_targets.is_empty()));
        if changes {
            return Some(Kind::Changes);
        }
        asked.then_some(Kind::Targets)
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = self.next_full;
        if let Some(h) = self.hold_until {
            wake = wake.min(h);
        }
        if self.hold_until.is_none() {
            if !self.waiters.is_empty()
                || !self.asked_targets.is_empty()
                || !self.approve_waiters.is_empty()
            {
                return now;
            }
            let retry = self.retry_at.unwrap_or(now);
            if self.approved.is_some() {
                wake = wake.min(retry);
            }
            if self.full_due || self.baseline.is_none() {
                wake = wake.min(retry);
            }
            if let Some((_, d)) = self.changes_due {
                wake = wake.min(d.max(retry));
            }
            if let Some(r) = self.retry_at {
                if !self.carried_groups.is_empty() || !self.carried_targets.is_empty() {
                    wake = wake.min(r);
                }
            }
        }
        wake.max(now)
    }

    async fn cycle(&mut self, kind: Kind) {
        // An approval is good for `serve.approval_ttl`: past it, it lapses and the hold stays.
        if let Some(g) = self
            .approved
            .take_if(|g| g.at.elapsed() > self.shared.settings.approval_ttl)
        {
            self.audit(
                &g.actor,
                "approve",
                "lapsed",
                format!(
                    "{} not applied within serve.approval_ttl ({} s); the hold stays",
                    exact(&g.approval),
                    self.shared.settings.approval_ttl.as_secs()
                ),
            );
        }
        // An approval cycle plans what is held: the held scopes, or every link when the held
        // plan was a full reconcile (or nothing is parked: then it finds nothing to approve).
        let kind = match kind {
            Kind::Approve { .. } => Kind::Approve {
                full: self.parked.as_ref().is_none_or(|p| p.full),
            },
            k => k,
        };
        let started = Instant::now();
        let mut report = CycleReport {
            kind: kind.name(),
            outcome: Outcome::Ok,
            started_at: now_rfc3339(),
            duration_ms: 0,
            scope: String::new(),
            links: 0,
            actions: 0,
            users_ok: 0,
            users_failed: 0,
            api_calls: 0,
            run_id: None,
            guard_trips: Vec::new(),
            error: None,
            approved: false,
            hold: None,
        };
        let cookie = self.latest_cookie.clone();
        let first_change = self.changes_due.take().map(|(first, _)| first);
        let asked = std::mem::take(&mut self.asked_targets);
        let mut waiters = if matches!(kind, Kind::Full | Kind::Manual) {
            std::mem::take(&mut self.waiters)
        } else {
            Vec::new()
        };
        if matches!(kind, Kind::Approve { .. }) {
            waiters.append(&mut self.approve_waiters);
        }
        // The manual cycle takes the `POST /sync` approval; any cycle may use an approval of
        // exactly one held set, which covers nothing else.
        let granted = match (kind, self.approval.take()) {
            (Kind::Manual, Some(g)) => Some(g),
            (_, g) => {
                self.approval = g;
                self.approved.clone()
            }
        };
        let allow = granted
            .as_ref()
            .map_or(engine::Approval::None, |g| g.approval.clone());
        let api_before = self.shared.mm.stats();
        debug!(kind = kind.name(), "sync cycle starts");

        // The approver is the actor of what their approval lets through; anything else this
        // instance applies is its own.
        let approver = granted.as_ref().map(|g| g.actor.clone());
        let wait = first_change.map(|f| started.saturating_duration_since(f));
        let mut timings = Timings::default();
        let ended = self
            .cycle_inner(
                kind,
                &asked,
                allow,
                approver.as_deref(),
                &mut report,
                &mut timings,
            )
            .await;
        self.settle_approval(kind, granted.as_ref(), &ended);

        report.outcome = ended.outcome;
        report.error = ended.error.clone();
        report.approved = ended.approved;
        report.duration_ms = started.elapsed().as_millis() as u64;
        report.api_calls = self.shared.mm.stats().since(&api_before).calls;
        info!(
            kind = kind.name(),
            outcome = ended.outcome.as_str(),
            wait_ms = wait.map_or(0, ms),
            directory_ms = ms(timings.directory),
            links_ms = ms(timings.links),
            mattermost_ms = ms(timings.mattermost),
            plan_ms = ms(timings.plan),
            apply_ms = ms(timings.apply),
            total_ms = ms(started.elapsed()),
            api_calls = report.api_calls,
            ldap_entries = timings
                .entry_reads
                .map_or_else(|| "full".to_string(), |n| n.to_string()),
            links = report.links,
            "cycle timings"
        );
        let m = &self.shared.metrics;
        m.run(kind.name(), ended.outcome.as_str());
        m.run_duration
            .get_or_create(&super::metrics::KindLabel {
                kind: kind.name().to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        self.directory_down = ended.outcome == Outcome::DirectoryError;
        if report.succeeded() {
            // A full cycle re-planned everything; a partial one clears a partial hold whose
            // scopes it planned (it took them in: see `cycle_inner`).
            let cleared = match &self.parked {
                Some(p) => kind.is_full() || (!p.full && ended.planned_parked),
                None => false,
            };
            if cleared {
                info!("the plan a removal guard held is no longer held");
                if !ended.approved {
                    self.audit(
                        &self.actor.clone(),
                        "hold_cleared",
                        "ok",
                        format!(
                            "{}: what was held is no longer planned (the directory changed it back); nothing was applied for it",
                            self.parked.as_ref().map(|p| p.fingerprint.as_str()).unwrap_or("-")
                        ),
                    );
                }
                self.parked = None;
                self.shared.metrics.held_changes.set(0);
                self.shared.with_status(|s| {
                    s.hold = None;
                    s.guard_trips = None;
                });
            }
        }
        let still_tripped = self.parked.is_some();
        if report.succeeded() {
            self.backoff.reset();
            self.retry_at = None;
            if kind.is_full() {
                self.full_due = false;
                self.next_full = Instant::now() + self.shared.settings.full_reconcile;
            }
            if let Some(first) = first_change {
                m.change_latency.observe(first.elapsed().as_secs_f64());
            }
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            m.last_success.set(secs);
            // Every change notified before the cycle began is applied now (requests that
            // came during the cycle wait in the queue, their cookies with them).
            self.save_cookie(cookie);
            info!(
                kind = kind.name(),
                outcome = %report.outcome,
                scope = %report.scope,
                actions = report.actions,
                users_ok = report.users_ok,
                api_calls = report.api_calls,
                duration_ms = report.duration_ms,
                "sync cycle done"
            );
        } else {
            if ended.retry {
                self.retry_at = Some(Instant::now() + self.backoff.next_wait());
            }
            if kind.is_full() {
                if ended.outcome == Outcome::GuardTripped {
                    // Parked: the next try is the next periodic reconcile (or an approval,
                    // or a directory change to a held scope), never at once.
                    self.full_due = false;
                    self.next_full = Instant::now() + self.shared.settings.full_reconcile;
                } else {
                    self.full_due = true;
                }
            }
            if let Some(first) = first_change {
                // Not applied yet: the next cycle carries the burst on.
                self.changes_due = Some((first, Instant::now()));
            }
            let msg = report.error.clone().unwrap_or_default();
            if ended.repeat {
                debug!(
                    kind = kind.name(),
                    "the same plan is still held by a removal guard"
                );
            } else {
                warn!(
                    kind = kind.name(),
                    outcome = %report.outcome,
                    error = %msg,
                    retry_in_s = self.retry_at.map(|r| r.saturating_duration_since(Instant::now()).as_secs()),
                    "{}",
                    match report.outcome {
                        Outcome::DirectoryError => "sync cycle skipped: the directory could not be read; nothing was planned or changed",
                        Outcome::MattermostError => "sync cycle skipped: Mattermost could not be read; nothing was changed",
                        Outcome::GuardTripped => "sync cycle stopped by a guard; nothing was changed",
                        Outcome::Partial => "sync cycle applied, but some changes failed; they are retried",
                        Outcome::Stopped => "sync cycle stopped by the shutdown",
                        Outcome::Error | Outcome::Ok | Outcome::NoChanges => "sync cycle failed",
                    }
                );
            }
        }
        self.shared.with_status(|s| {
            // A hold is not an outage: both sides answered and the plan was made; the hold
            // is shown (status page, GET /holds, mattersync_held_changes), not unreadiness.
            let held = report.outcome == Outcome::GuardTripped;
            if held || report.succeeded() {
                s.failed = None;
            } else {
                s.failed = Some(report.clone());
            }
            if !still_tripped {
                s.guard_trips = None;
                s.hold = None;
            }
            if report.succeeded() {
                s.last_success = Some(now_rfc3339());
            }
            if (report.succeeded() || held) && kind.is_full() {
                s.reconciled = true;
            }
            // A hold is shown as one (the Held section), not as an error.
            if let (false, false, Some(e)) = (report.succeeded(), held, &report.error) {
                s.error(&format!("{} run", kind.name()), e.clone());
            }
            if (kind == Kind::Changes && report.outcome == Outcome::NoChanges && report.links == 0)
                || ended.repeat
            {
                s.quiet_cycles += 1;
            } else {
                s.cycles.push_front(report.clone());
                s.cycles.truncate(KEEP_CYCLES);
            }
        });
        self.shared.readiness();
        for w in waiters {
            let _ = w.send(report.clone());
        }
    }

    async fn cycle_inner(
        &mut self,
        kind: Kind,
        asked: &BTreeSet<Target>,
        approval: engine::Approval,
        approver: Option<&str>,
        report: &mut CycleReport,
        timings: &mut Timings,
    ) -> Ended {
        let shared = Arc::clone(&self.shared);
        let cfg = &shared.cfg;
        let metrics = &shared.metrics;

        // 1. The directory, whole or not at all: the entries the notifications named read
        // again into the model, or (a full reconcile, a change that could not be named, no
        // model yet, the change source not live) all of it.
        let t = Instant::now();
        let named = self.named.replace(BTreeSet::new());
        let live = shared.read_status(|s| s.source.connected);
        let old_dir = self.baseline.clone();
        let mut entry_reads = None;
        let mut touched = None;
        let mut dir = None;
        let model = match (kind.is_full(), live, named.as_ref()) {
            (false, true, Some(dns)) => self.model.take().map(|m| (dns, m)),
            _ => None,
        };
        if let Some((dns, mut model)) = model {
            let dns: Vec<String> = dns.iter().cloned().collect();
            let stopping = self.stopping();
            let refreshed = tokio::select! {
                r = self.dir.refresh_model(&mut model, &dns) => r,
                _ = stopping => return Ended::ok(Outcome::Stopped),
            };
            match refreshed {
                Ok(r) => {
                    metrics.entry_reads.inc_by(r.reads as u64);
                    entry_reads = Some(r.reads);
                    touched = Some(r.groups);
                    dir = Some(Arc::clone(model.directory()));
                    self.model = Some(model);
                }
                Err(e) => warn!(
                    error = %format!("{e:#}"),
                    "reading the changed entries failed; reading the whole directory"
                ),
            }
        }
        let dir = match dir {
            Some(d) => d,
            None => {
                let before = self.model.take();
                let notified = metrics.notified.load(std::sync::atomic::Ordering::Relaxed);
                let stopping = self.stopping();
                metrics.directory_reads.inc();
                let read = tokio::select! {
                    r = self.dir.read_model() => r,
                    _ = stopping => return Ended::ok(Outcome::Stopped),
                };
                let model = match read {
                    Ok(m) => m,
                    Err(e) => {
                        self.carried_targets.extend(asked.iter().cloned());
                        shared.with_status(|s| {
                            s.directory.ok = false;
                            s.directory.checked = true;
                            s.directory.detail = format!("{e:#}");
                        });
                        return Ended::failed(Outcome::DirectoryError, &e);
                    }
                };
                // The model as change cycles kept it, against what a full read says now:
                // when both are of the same moment (the changes named so far applied, none
                // arriving during the read), any difference is a lost notification.
                let quiet = metrics.notified.load(std::sync::atomic::Ordering::Relaxed) == notified;
                if let (Some(mut before), Some(dns), true) = (before, named.as_ref(), quiet && live)
                {
                    let dns: Vec<String> = dns.iter().cloned().collect();
                    match self.dir.refresh_model(&mut before, &dns).await {
                        Ok(_) => self.check_drift(before.directory(), model.directory()),
                        Err(e) => debug!(error = %format!("{e:#}"), "model not compared"),
                    }
                }
                let d = Arc::clone(model.directory());
                self.model = Some(model);
                d
            }
        };
        timings.directory = t.elapsed();
        timings.entry_reads = entry_reads;
        metrics.phase("directory", timings.directory.as_secs_f64());
        shared.with_status(|s| {
            s.directory.ok = true;
            s.directory.checked = true;
            s.directory.detail = format!("{} groups, {} users", dir.groups.len(), dir.users.len());
            s.directory_snapshot = Some(Arc::clone(&dir));
        });

        // 2. The ledger and the links that matter. A change cycle planned from the kept
        // state reads the facts of its scopes alone, later.
        let t = Instant::now();
        // Only a fresh directory change plans from the kept state; what a person asked for
        // (a slash command's targets, an approval), work a failed cycle left and a held plan
        // planned again are planned from a fresh reading.
        let retrying = !self.carried_groups.is_empty() || !self.carried_targets.is_empty();
        let kept_path = kind == Kind::Changes
            && entry_reads.is_some()
            && self.kept.is_some()
            && old_dir.is_some()
            && !retrying;
        let view = if kept_path {
            self.read_view()
        } else {
            LedgerView::read(&self.ledger)
        };
        let view = match view {
            Ok(v) => v,
            Err(e) => {
                self.carried_targets.extend(asked.iter().cloned());
                return Ended::failed(Outcome::Error, &e);
            }
        };
        // Links by their ids: a full cycle looks every target up again (renames in
        // Mattermost are followed from the next full reconcile on); a change cycle reuses
        // those look-ups, and the links themselves while what they come from is the same.
        // Group renames are followed at once (the directory read has them).
        if kind.is_full() {
            self.targets.clear();
            self.linked = None;
        }
        let cached = self
            .linked
            .as_ref()
            .filter(|(k, _)| k.matches(&dir, &view))
            .map(|(_, l)| Arc::clone(l));
        let same_links = cached.is_some();
        let linked = match cached {
            Some(l) => l,
            None => {
                let stopping = self.stopping();
                let resolved = tokio::select! {
                    r = engine::links_now(cfg, &dir, &view, &shared.mm, &mut self.targets) => r,
                    _ = stopping => return Ended::ok(Outcome::Stopped),
                };
                match resolved {
                    Ok(l) => {
                        let l = Arc::new(l);
                        self.linked = Some((LinkKey::of(&dir, &view), Arc::clone(&l)));
                        l
                    }
                    Err(e) => {
                        self.carried_targets.extend(asked.iter().cloned());
                        return Ended::failed(Outcome::MattermostError, &e);
                    }
                }
            }
        };
        let links: &[Link] = &linked.links;
        let warnings = linked.warnings.clone();
        let link_issues = linked.issues.clone();
        let learned = linked.learned.clone();
        timings.links = t.elapsed();
        let broken = link_issues.iter().filter(|i| i.broken()).count();
        metrics.broken_links.set(broken as i64);
        metrics.links.set(links.len() as i64);
        if link_issues != self.last_issues {
            for i in &link_issues {
                if i.broken() {
                    warn!(issue = %i, "broken link");
                } else {
                    info!(issue = %i, "link followed by id");
                }
            }
            self.last_issues = link_issues.clone();
        }
        shared.with_status(|s| s.link_issues = link_issues);
        let mut planned_parked = false;
        let (selected, groups, targets) = if kind.is_full() {
            report.scope = "all".to_string();
            (links.to_vec(), BTreeSet::new(), BTreeSet::new())
        } else {
            let mut groups = std::mem::take(&mut self.carried_groups);
            // Work a failed cycle left may be removals: only a fresh change can be add-only.
            let carried = !groups.is_empty() || !self.carried_targets.is_empty();
            match (&self.baseline, &touched) {
                (Some(base), Some(t)) => groups.extend(scope::changed_groups_among(base, &dir, t)),
                (Some(base), None) => groups.extend(scope::changed_groups(base, &dir)),
                (None, _) => {}
            }
            let mut targets = std::mem::take(&mut self.carried_targets);
            targets.extend(asked.iter().cloned());
            if !same_links {
                targets.extend(scope::changed_targets(&self.last_links, links));
            }
            // A change to a scope a guard holds re-plans everything it holds (the change may
            // be the revert that clears it); a change elsewhere leaves the hold alone.
            if let Some(p) = self.parked.as_ref().filter(|p| !p.full) {
                let approving = matches!(kind, Kind::Approve { .. });
                if approving || !p.groups.is_disjoint(&groups) || !p.targets.is_disjoint(&targets) {
                    groups.extend(p.groups.iter().cloned());
                    targets.extend(p.targets.iter().cloned());
                    planned_parked = true;
                }
            }
            // A change that cannot take anything from anyone plans its channels whole and its
            // team links add-only, not every link of the team.
            let adding = !carried
                && targets.is_empty()
                && !planned_parked
                && self
                    .baseline
                    .as_ref()
                    .is_some_and(|b| !scope::can_remove(b, &dir, &groups));
            let selected = if adding {
                scope::affected_links_adding(links, &groups)
            } else {
                scope::affected_links(links, &groups, &targets)
            };
            // A change to a scope a full reconcile's hold is in: a full reconcile follows at
            // once, to see whether it is still held (this cycle plans only what changed).
            if let Some(p) = self.parked.as_ref().filter(|p| p.full) {
                let touches = selected.iter().any(|l| {
                    p.scopes.contains(&l.target.to_string()) || p.scopes.contains(l.target.team())
                });
                if touches {
                    self.full_due = true;
                }
            }
            report.scope = describe_scope(&groups, &targets);
            (selected, groups, targets)
        };
        report.links = selected.len();
        self.baseline = Some(Arc::clone(&dir));
        if !same_links {
            self.last_links = links.to_vec();
            shared.with_status(|s| {
                s.links = links.to_vec();
                s.warnings = warnings.clone();
            });
        }
        if selected.is_empty() && !kind.is_full() {
            let mut e = Ended::ok(Outcome::NoChanges);
            e.planned_parked = planned_parked;
            return e;
        }
        let incremental = kept_path && !planned_parked;
        let mut view = view;
        if kept_path && !incremental {
            match self.ledger.facts() {
                Ok(f) => view.facts = f,
                Err(e) => {
                    self.carried_groups.extend(groups.iter().cloned());
                    self.carried_targets.extend(targets.iter().cloned());
                    return Ended::failed(Outcome::Error, &anyhow::Error::new(e));
                }
            }
        }
        let carry = |w: &mut Worker| {
            w.carried_groups.extend(groups.iter().cloned());
            w.carried_targets.extend(targets.iter().cloned());
        };

        // 3. Mattermost, for those links only (from the kept state in a change cycle); then
        // what lost writes left is settled.
        let t = Instant::now();
        let stopping = self.stopping();
        let gathered = match (incremental, self.kept.as_mut(), old_dir.as_ref()) {
            (true, Some(kept), Some(old)) => tokio::select! {
                r = engine::gather_kept(
                    cfg, &shared.mm, kept, old, &dir, &groups, selected, view, warnings,
                ) => Some(r.map(|(state, _)| state)),
                _ = stopping => None,
            },
            _ => tokio::select! {
                r = engine::gather(cfg, &shared.mm, (*dir).clone(), selected, view, warnings) => Some(r),
                _ = stopping => None,
            },
        };
        let Some(gathered) = gathered else {
            carry(self);
            return Ended::ok(Outcome::Stopped);
        };
        // A change cycle's facts are those of its scopes, read between the network reads.
        let gathered = match gathered {
            Ok(mut state) if incremental => match engine::kept_facts(&self.ledger, &mut state) {
                Err(e) => Err(e),
                Ok(()) => {
                    let stopping = self.stopping();
                    let done = tokio::select! {
                        r = engine::finish_kept(&shared.mm, &mut state) => Some(r),
                        _ = stopping => None,
                    };
                    match done {
                        Some(r) => r.map(|()| state),
                        None => {
                            carry(self);
                            return Ended::ok(Outcome::Stopped);
                        }
                    }
                }
            },
            other => other,
        };
        timings.mattermost = t.elapsed();
        metrics.phase("mattermost", timings.mattermost.as_secs_f64());
        let mut state = match gathered {
            Ok(s) => s,
            Err(e) => {
                carry(self);
                shared.with_status(|s| {
                    s.mattermost.ok = false;
                    s.mattermost.checked = true;
                    s.mattermost.detail = format!("{e:#}");
                });
                return Ended::failed(Outcome::MattermostError, &e);
            }
        };
        shared.with_status(|s| {
            s.mattermost.ok = true;
            s.mattermost.checked = true;
            s.mattermost.detail = "ok".to_string();
        });
        if !learned.is_empty() {
            self.identities = None;
        }
        state.learned = learned;
        if let Err(e) = engine::settle(&self.lock, &self.ledger, &mut state) {
            carry(self);
            return Ended::failed(Outcome::Error, &e);
        }

        // 4. The plan (pure), and what it says about pending users.
        let t = Instant::now();
        let mut plan = state.plan();
        // What was read of Mattermost is kept: a full reconcile's reading replaces the kept
        // state (any difference from what was kept is counted), another cycle's fresh
        // reading of its scopes goes into it.
        if kind.is_full() {
            let fresh = std::mem::take(&mut state.mattermost);
            if let Some(k) = &self.kept {
                let (n, named) = mattersync_core::kept::membership_differences(&k.mm, &fresh, 5);
                if n > 0 {
                    metrics.drift("mattermost", n);
                    info!(
                        memberships = n,
                        scopes = %named.join(", "),
                        "memberships changed in Mattermost since the last reconcile, not by this service"
                    );
                }
            }
            self.kept = Some(engine::Kept::new(
                fresh,
                state.me.clone(),
                &cfg.mattermost.matching,
            ));
        } else if !incremental {
            if let Some(k) = self.kept.as_mut() {
                k.take_in(state.mattermost.clone());
            }
        }
        // The guards over time: a mass change that arrives as many small ones is held too.
        let window = shared.settings.guard_window;
        if !window.is_zero() {
            let now = Instant::now();
            while self
                .applied
                .front()
                .is_some_and(|(at, _, _)| now.duration_since(*at) > window)
            {
                self.applied.pop_front();
            }
            let (r, a) = self
                .applied
                .iter()
                .fold((0, 0), |(r, a), (_, dr, da)| (r + dr, a + da));
            let trips = plan.window_trips(&state.policy.guards, r, a, window.as_secs());
            plan.guard_trips.extend(trips);
        }
        report.actions = plan.actions.len();
        let planned_groups: BTreeSet<String> =
            state.policy.links.iter().map(|l| l.group.clone()).collect();
        let pending = shared.with_status(|s| {
            update_pending(&mut s.pending, &plan, kind.is_full(), &planned_groups);
            s.pending.len()
        });
        metrics.pending_users.set(pending as i64);
        if !incremental {
            // A change cycle reads the facts of its scopes only.
            metrics.owned_memberships.set(state.facts.owned() as i64);
        }

        // 5. The one guard decision.
        timings.plan = t.elapsed();
        match engine::verdict(&plan, &approval) {
            Verdict::Held(trips) => {
                let why: Vec<String> = trips.iter().map(|g| g.to_string()).collect();
                report.guard_trips = why.clone();
                let held = engine::held_fingerprint(&plan);
                let repeat = self.parked.as_ref().is_some_and(|p| p.fingerprint == held);
                // Parked, not carried: nothing retries it on a timer.
                let summary = engine::HoldSummary::of(&plan, &state.policy.links);
                let scopes: BTreeSet<String> = summary
                    .iter()
                    .flat_map(|s| s.scopes.iter().map(|x| x.scope.clone()))
                    .collect();
                let parked = match self.parked.take() {
                    Some(mut p) if !kind.is_full() => {
                        p.groups.extend(groups.iter().cloned());
                        p.targets.extend(targets.iter().cloned());
                        p.scopes.extend(scopes);
                        p.fingerprint = held;
                        p
                    }
                    _ => Parked {
                        full: kind.is_full(),
                        groups: groups.clone(),
                        targets: targets.clone(),
                        fingerprint: held,
                        scopes,
                    },
                };
                if let Some(summary) = summary {
                    metrics.held_changes.set(summary.held_changes() as i64);
                    report.hold = Some(summary.page(0, engine::hold::DEFAULT_PAGE));
                    let full = parked.full;
                    let changes: Vec<String> = parked.groups.iter().cloned().collect();
                    shared.with_status(|s| {
                        let (since, since_unix, changed_at) = match &s.hold {
                            Some(h) if repeat => {
                                (h.since.clone(), h.since_unix, h.changed_at.clone())
                            }
                            Some(h) => (h.since.clone(), h.since_unix, now_rfc3339()),
                            None => (now_rfc3339(), super::state::unix_now(), now_rfc3339()),
                        };
                        s.hold = Some(super::state::Hold {
                            since,
                            since_unix,
                            changed_at,
                            full,
                            directory_changes: changes,
                            summary,
                        });
                    });
                }
                self.parked = Some(parked);
                if !repeat {
                    metrics.guard_trips.inc();
                    match engine::record_hold(&self.lock, &self.ledger, &plan, "serve", &self.actor)
                    {
                        Ok(id) => report.run_id = Some(id),
                        Err(e) => {
                            warn!(error = %format!("{e:#}"), "ledger: cannot record the guard trip")
                        }
                    }
                    shared.with_status(|s| s.guard_trips = Some((now_rfc3339(), why.clone())));
                }
                let fp = engine::held_fingerprint(&plan);
                return Ended {
                    outcome: Outcome::GuardTripped,
                    error: Some(format!(
                        "guard tripped, nothing was changed: {}. If the directory really changed this much, apply exactly this plan: POST /approve/{fp} (mattersync approve {fp})",
                        why.join("; "),
                    )),
                    retry: false,
                    repeat,
                    planned_parked,
                    approved: false,
                    held: Some(fp),
                    unfinished: None,
                };
            }
            Verdict::NoChanges => {
                let mut e = Ended::ok(Outcome::NoChanges);
                e.planned_parked = planned_parked;
                return e;
            }
            Verdict::Apply => {}
        }

        // 6. Apply: one action at a time; a stop request ends it between two actions.
        let t = Instant::now();
        let approved = !plan.guard_trips.is_empty();
        let actor = match approver {
            Some(a) if approved => a.to_string(),
            _ => self.actor.clone(),
        };
        let applied = engine::apply(
            &self.lock,
            &plan,
            &mut self.ledger,
            &shared.mm,
            &self.stop,
            "apply",
            &actor,
        )
        .await;
        timings.apply = t.elapsed();
        metrics.phase("apply", timings.apply.as_secs_f64());
        let applied = match applied {
            Ok(r) => r,
            Err(e) => {
                // What was written is not known for sure: read Mattermost whole again.
                self.kept = None;
                carry(self);
                return Ended::failed(Outcome::Error, &e);
            }
        };
        if let Some(k) = self.kept.as_mut() {
            k.record(&plan, &applied);
        }
        if approved {
            // What an admin reviewed and approved does not count against the window: the
            // window starts again from here.
            self.applied.clear();
        } else {
            self.applied
                .push_back((Instant::now(), plan.removal_count(), plan.addition_count()));
        }
        report.run_id = Some(applied.run_id.clone());
        report.users_ok = applied.users_ok;
        report.users_failed = applied.users_failed;
        self.count_actions(&applied.run_id);
        if *self.stop.borrow() && applied.actions < plan.actions.len() {
            carry(self);
            return Ended {
                outcome: Outcome::Stopped,
                error: Some("stopped by signal after the action in flight".to_string()),
                retry: false,
                repeat: false,
                planned_parked: false,
                approved,
                held: None,
                unfinished: None,
            };
        }
        if applied.users_failed > 0 {
            carry(self);
            return Ended {
                outcome: Outcome::Partial,
                error: Some(applied.failures.join("; ")),
                retry: true,
                repeat: false,
                planned_parked,
                approved,
                held: None,
                unfinished: approved.then(|| engine::changes_of(&plan)),
            };
        }
        let mut e = Ended::ok(Outcome::Ok);
        e.planned_parked = planned_parked;
        e.approved = approved;
        e
    }

    /// What became of the approval a cycle had: applied, refused (what is held is another
    /// set now), found nothing held, or kept for the next try (the cycle failed before it
    /// could decide). Each outcome is an audit event by the approver.
    fn settle_approval(&mut self, kind: Kind, granted: Option<&Granted>, ended: &Ended) {
        let Some(g) = granted else {
            return;
        };
        let exactly = exact(&g.approval);
        let (outcome, detail) = match (ended.outcome, &ended.held) {
            (Outcome::Partial, _) if ended.approved => {
                // Some changes failed: what is left of the approved set is retried under the
                // same approval (and only it), until serve.approval_ttl.
                if let Some(all) = &ended.unfinished {
                    self.approved = Some(Granted {
                        approval: engine::Approval::Within(all.clone()),
                        actor: g.actor.clone(),
                        at: g.at,
                    });
                }
                self.audit(
                    &g.actor,
                    "approve",
                    "approved",
                    format!("{exactly}: applied, some changes failed; what is left of it is retried under this approval until serve.approval_ttl"),
                );
                return;
            }
            (Outcome::Ok | Outcome::Stopped, _) if ended.approved => {
                ("approved", format!("{exactly}: applied"))
            }
            (Outcome::GuardTripped, Some(now)) => (
                "refused",
                format!("{exactly} is not what is held now ({now}); nothing was changed"),
            ),
            (Outcome::NoChanges | Outcome::Ok, _)
                if matches!(kind, Kind::Approve { .. } | Kind::Manual) =>
            {
                (
                    "nothing_held",
                    format!("{exactly}: nothing is held now; nothing was applied for it"),
                )
            }
            // The directory or Mattermost did not answer: the approval waits for the retry.
            _ => return,
        };
        self.audit(&g.actor, "approve", outcome, detail);
        let is_this = |x: &Option<Granted>| {
            x.as_ref()
                .is_some_and(|a| a.approval == g.approval && a.at == g.at)
        };
        if is_this(&self.approved) {
            self.approved = None;
        }
    }

    /// An audit event that changes no membership; a ledger that cannot take it is logged.
    fn audit(&self, actor: &str, action: &str, outcome: &str, detail: String) {
        info!(actor, action, outcome, detail = %detail, "audit");
        if let Err(e) = self.ledger.note(actor, action, "-", outcome, &detail) {
            warn!(error = %e, "ledger: cannot record an audit event");
        }
    }

    /// Completes when the service is asked to stop.
    /// The ledger as a change cycle needs it before it knows its scopes: links, intents and
    /// the ids recorded for links, without the facts. The ids are written only by the lock
    /// holder (this worker) and deleted only with a link, so while the ledger's links are the
    /// same and this worker recorded none, the last reading of them stands.
    fn read_view(&mut self) -> anyhow::Result<LedgerView> {
        let links = self.ledger.links()?;
        let intents = self.ledger.intents()?;
        let identities = match &self.identities {
            Some((l, ids)) if *l == links => ids.clone(),
            _ => self.ledger.identities()?,
        };
        self.identities = Some((links.clone(), identities.clone()));
        Ok(LedgerView {
            links,
            facts: Default::default(),
            intents,
            identities,
        })
    }

    /// The model as change cycles kept it, against a full read of the same moment: any
    /// difference is a change that was not notified (or not followed). Counted and logged as
    /// an error; the full read replaces the model.
    fn check_drift(&self, kept: &Directory, fresh: &Directory) {
        let (n, named) = mattersync_directory::model::differences(kept, fresh, 5);
        if n > 0 {
            self.shared.metrics.drift("directory", n);
            error!(
                differences = n,
                first = %named.join(", "),
                "the directory model had drifted from the directory (a change was not notified); the full read replaces it"
            );
        }
    }

    fn stopping(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    fn count_actions(&self, run_id: &str) {
        match self.ledger.action_counts(run_id) {
            Ok(counts) => {
                for (action, outcome, n) in counts {
                    self.shared.metrics.action(&action, &outcome, n);
                }
            }
            Err(e) => debug!(error = %e, "ledger: cannot count the run's actions"),
        }
    }

    fn save_cookie(&mut self, cookie: Option<Vec<u8>>) {
        if cookie == self.saved_cookie {
            return;
        }
        match self.ledger.set_cursor(&self.cursor, cookie.as_deref()) {
            Ok(()) => {
                debug!(cursor = %self.cursor, "cursor saved");
                self.saved_cookie = cookie;
            }
            Err(e) => warn!(error = %e, "ledger: cannot save the directory cursor"),
        }
    }

    fn shutdown(&mut self) {
        if self.idle() {
            self.save_cookie(self.latest_cookie.clone());
        }
        for w in self.waiters.drain(..) {
            drop(w);
        }
        info!(
            cursor_saved = self.saved_cookie.is_some(),
            "sync worker stopped"
        );
    }
}

/// `fingerprint 0123…` or `whatever is held`, for audit lines.
fn exact(a: &engine::Approval) -> String {
    match a {
        engine::Approval::Exactly(fp) => format!("fingerprint {fp}"),
        engine::Approval::Any => "whatever is held (allow_mass_removal)".to_string(),
        engine::Approval::Within(c) => {
            format!("what is left of an approved set ({} changes)", c.len())
        }
        engine::Approval::None => "nothing".to_string(),
    }
}

/// One directory snapshot over a connection of its own (for reads outside the worker).
pub async fn read_directory(cfg: &LdapConfig) -> Result<Directory> {
    let mut dir = engine::Ldap::new(cfg.clone());
    let snap = dir.snapshot().await;
    dir.close().await;
    snap
}

fn describe_scope(groups: &BTreeSet<String>, targets: &BTreeSet<Target>) -> String {
    let mut parts: Vec<String> = groups.iter().cloned().collect();
    parts.extend(targets.iter().map(|t| t.to_string()));
    if parts.is_empty() {
        "nothing changed".to_string()
    } else {
        parts.join(", ")
    }
}

/// Pending users after a plan: a full plan replaces the list; a partial one replaces what it
/// says about the groups it planned.
fn update_pending(
    pending: &mut BTreeMap<String, BTreeSet<String>>,
    plan: &Plan,
    full: bool,
    planned: &BTreeSet<String>,
) {
    if full {
        pending.clear();
    } else {
        for groups in pending.values_mut() {
            groups.retain(|g| !planned.contains(g));
        }
        pending.retain(|_, g| !g.is_empty());
    }
    for n in &plan.notes {
        if let Note::PendingUser { uid, groups } = n {
            pending
                .entry(uid.clone())
                .or_default()
                .extend(groups.iter().cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with(pending: &[(&str, &[&str])]) -> Plan {
        Plan {
            notes: pending
                .iter()
                .map(|(u, g)| Note::PendingUser {
                    uid: u.to_string(),
                    groups: g.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_partial_plan_replaces_only_what_it_planned() {
        let mut pending = BTreeMap::new();
        update_pending(
            &mut pending,
            &plan_with(&[("ann", &["g1"]), ("bob", &["g1", "g2"]), ("cy", &["g2"])]),
            true,
            &BTreeSet::new(),
        );
        assert_eq!(pending.len(), 3);
        // g1 planned again: ann got an account, bob is still pending for g2 only.
        update_pending(
            &mut pending,
            &plan_with(&[]),
            false,
            &["g1".to_string()].into(),
        );
        let got: Vec<(&str, Vec<&str>)> = pending
            .iter()
            .map(|(u, g)| (u.as_str(), g.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(got, vec![("bob", vec!["g2"]), ("cy", vec!["g2"])]);
        update_pending(
            &mut pending,
            &plan_with(&[("dee", &["g3"])]),
            true,
            &BTreeSet::new(),
        );
        assert_eq!(pending.keys().collect::<Vec<_>>(), ["dee"]);
    }

    #[test]
    fn scopes_are_described_for_people() {
        assert_eq!(
            describe_scope(&BTreeSet::new(), &BTreeSet::new()),
            "nothing changed"
        );
        let t: BTreeSet<Target> = ["tm/c".parse().expect("target")].into();
        assert_eq!(
            describe_scope(&["mm_a_b".to_string()].into(), &t),
            "mm_a_b, tm/c"
        );
    }
}
