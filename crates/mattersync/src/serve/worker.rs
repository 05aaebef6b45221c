//! The sync worker: one cycle at a time, each a fresh fail-closed directory read, a plan for
//! the links that read makes necessary, and the apply.
//!
//! A change notification does not say what to do; the difference between this read and the
//! last one does ([`super::scope::changed_groups`]). What a cycle could not finish (a
//! Mattermost error, a failed action, a guard trip) is carried into the next one, so nothing
//! is lost between cycles. A directory error ends a cycle before anything is planned.

use super::scope;
use super::state::{now_rfc3339, CycleReport, Request, Shared, KEEP_CYCLES};
use crate::engine;
use anyhow::{Context, Result};
use mattersync_core::{Directory, Link, Note, Plan, Target};
use mattersync_directory::{LdapConfig, LdapDirectory};
use mattersync_ledger::{AuditQuery, Ledger, RunEnd};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

/// Longest wait between retries of a failed cycle.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
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
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Manual => "manual",
            Kind::Changes => "changes",
            Kind::Targets => "targets",
        }
    }

    fn is_full(self) -> bool {
        matches!(self, Kind::Full | Kind::Manual)
    }
}

pub struct Worker {
    shared: Arc<Shared>,
    ledger: Ledger,
    ldap: LdapConfig,
    /// The directory connection kept between cycles (a TLS handshake per change would be
    /// most of a change's latency); dropped on any error.
    conn: Option<LdapDirectory>,
    rx: mpsc::Receiver<Request>,
    stop: watch::Receiver<bool>,
    cursor: String,
    /// The directory as of the last successful read.
    baseline: Option<Arc<Directory>>,
    last_links: Vec<Link>,
    /// Work a failed or refused cycle left behind.
    carried_groups: BTreeSet<String>,
    carried_targets: BTreeSet<Target>,
    asked_targets: BTreeSet<Target>,
    full_due: bool,
    waiters: Vec<oneshot::Sender<CycleReport>>,
    allow_mass_removal: bool,
    /// (first change, when the coalesced burst is due).
    changes_due: Option<(Instant, Instant)>,
    latest_cookie: Option<Vec<u8>>,
    saved_cookie: Option<Vec<u8>>,
    next_full: Instant,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The retry waits because the directory could not be read.
    directory_down: bool,
    /// A removal guard stopped a cycle of this kind, and no cycle has since planned the
    /// same scopes successfully: the status keeps saying so until one does.
    tripped: Option<Kind>,
    hold_until: Option<Instant>,
}

/// How a cycle ended, before it becomes a report.
struct Ended {
    outcome: &'static str,
    error: Option<String>,
    /// Retry after a backoff.
    retry: bool,
}

impl Ended {
    fn ok(outcome: &'static str) -> Ended {
        Ended {
            outcome,
            error: None,
            retry: false,
        }
    }

    fn failed(outcome: &'static str, e: &anyhow::Error) -> Ended {
        Ended {
            outcome,
            error: Some(format!("{e:#}")),
            retry: true,
        }
    }
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: Arc<Shared>,
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
            ledger,
            ldap,
            conn: None,
            rx,
            stop,
            cursor,
            baseline: None,
            last_links: Vec::new(),
            carried_groups: BTreeSet::new(),
            carried_targets: BTreeSet::new(),
            asked_targets: BTreeSet::new(),
            full_due: true,
            waiters: Vec::new(),
            allow_mass_removal: false,
            changes_due: None,
            latest_cookie: saved_cookie.clone(),
            saved_cookie,
            next_full,
            retry_at: None,
            backoff: Duration::from_secs(1),
            directory_down: false,
            tripped: None,
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
                self.backoff = Duration::from_secs(1);
            }
        }
        match req {
            Request::Changed { at, cookie } => {
                if cookie.is_some() {
                    self.latest_cookie = cookie;
                }
                let debounce = self.shared.settings.debounce;
                let (first, _) = self.changes_due.unwrap_or((at, at));
                let cap = first + debounce * MAX_COALESCE;
                self.changes_due = Some((first, (Instant::now() + debounce).min(cap)));
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
                allow_mass_removal,
                reply,
            } => {
                self.allow_mass_removal |= allow_mass_removal;
                self.waiters.extend(reply);
                if self.waiters.is_empty() {
                    self.full_due = true;
                }
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
        if self.hold_until.is_some_and(|h| now < h) {
            return None;
        }
        let asked = !self.asked_targets.is_empty();
        if self.retry_at.is_some_and(|r| now < r) && !asked {
            return None;
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
            if !self.waiters.is_empty() || !self.asked_targets.is_empty() {
                return now;
            }
            let retry = self.retry_at.unwrap_or(now);
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
        let started = Instant::now();
        let mut report = CycleReport {
            kind: kind.name(),
            outcome: "ok",
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
        };
        let cookie = self.latest_cookie.clone();
        let first_change = self.changes_due.take().map(|(first, _)| first);
        let asked = std::mem::take(&mut self.asked_targets);
        let waiters = if kind.is_full() {
            std::mem::take(&mut self.waiters)
        } else {
            Vec::new()
        };
        let allow = kind == Kind::Manual && std::mem::take(&mut self.allow_mass_removal);
        let api_before = self.shared.mm.stats();
        debug!(kind = kind.name(), "sync cycle starts");

        let ended = self.cycle_inner(kind, &asked, allow, &mut report).await;

        report.outcome = ended.outcome;
        report.error = ended.error.clone();
        report.duration_ms = started.elapsed().as_millis() as u64;
        report.api_calls = self.shared.mm.stats().since(&api_before).calls;
        let m = &self.shared.metrics;
        m.run(kind.name(), ended.outcome);
        m.run_duration
            .get_or_create(&super::metrics::KindLabel {
                kind: kind.name().to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        self.directory_down = ended.outcome == "directory_error";
        if ended.outcome == "guard_tripped" {
            self.tripped = Some(kind);
        } else if report.succeeded() && self.tripped.is_some_and(|k| kind.is_full() || !k.is_full())
        {
            // A full cycle re-plans everything; a partial one re-planned the work carried
            // from the partial cycle that tripped.
            self.tripped = None;
        }
        let still_tripped = self.tripped.is_some();
        if report.succeeded() {
            self.backoff = Duration::from_secs(1);
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
                outcome = report.outcome,
                scope = %report.scope,
                actions = report.actions,
                users_ok = report.users_ok,
                api_calls = report.api_calls,
                duration_ms = report.duration_ms,
                "sync cycle done"
            );
        } else {
            if ended.retry {
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
            if kind.is_full() && ended.outcome != "guard_tripped" {
                self.full_due = true;
            }
            if let Some(first) = first_change {
                // Not applied yet: the next cycle carries the burst on.
                self.changes_due = Some((first, Instant::now()));
            }
            let msg = report.error.clone().unwrap_or_default();
            warn!(
                kind = kind.name(),
                outcome = report.outcome,
                error = %msg,
                retry_in_s = self.retry_at.map(|r| r.saturating_duration_since(Instant::now()).as_secs()),
                "{}",
                match report.outcome {
                    "directory_error" => "sync cycle skipped: the directory could not be read; nothing was planned or changed",
                    "mattermost_error" => "sync cycle skipped: Mattermost could not be read; nothing was changed",
                    "guard_tripped" => "sync cycle stopped by a removal guard; nothing was changed",
                    "partial" => "sync cycle applied, but some changes failed; they are retried",
                    "stopped" => "sync cycle stopped by the shutdown",
                    _ => "sync cycle failed",
                }
            );
        }
        self.shared.with_status(|s| {
            if !report.succeeded() {
                s.failed = Some(report.clone());
            } else if !still_tripped {
                s.failed = None;
                s.guard_trips = None;
            }
            if report.succeeded() {
                s.last_success = Some(now_rfc3339());
                if kind.is_full() {
                    s.reconciled = true;
                }
            } else if let Some(e) = &report.error {
                s.error(&format!("{} run", kind.name()), e.clone());
            }
            if kind == Kind::Changes && report.outcome == "no_changes" && report.links == 0 {
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
        allow_mass_removal: bool,
        report: &mut CycleReport,
    ) -> Ended {
        let shared = Arc::clone(&self.shared);
        let cfg = &shared.cfg;
        let metrics = &shared.metrics;

        // 1. The directory, whole or not at all.
        let t = Instant::now();
        let stopping = self.stopping();
        let read = tokio::select! {
            r = self.read_directory() => r,
            _ = stopping => return Ended::ok("stopped"),
        };
        metrics.phase("directory", t.elapsed().as_secs_f64());
        let dir = match read {
            Ok(d) => Arc::new(d),
            Err(e) => {
                self.carried_targets.extend(asked.iter().cloned());
                shared.with_status(|s| {
                    s.directory.ok = false;
                    s.directory.checked = true;
                    s.directory.detail = format!("{e:#}");
                });
                return Ended::failed("directory_error", &e);
            }
        };
        shared.with_status(|s| {
            s.directory.ok = true;
            s.directory.checked = true;
            s.directory.detail = format!("{} groups, {} users", dir.groups.len(), dir.users.len());
            s.directory_snapshot = Some(Arc::clone(&dir));
        });

        // 2. The links that matter.
        let resolved = self
            .ledger
            .links()
            .context("ledger: reading links")
            .and_then(|l| engine::resolve_links(cfg, &dir, l));
        let (links, warnings) = match resolved {
            Ok(x) => x,
            Err(e) => {
                self.carried_targets.extend(asked.iter().cloned());
                return Ended::failed("error", &e);
            }
        };
        let (selected, groups, targets) = if kind.is_full() {
            report.scope = "all".to_string();
            (links.clone(), BTreeSet::new(), BTreeSet::new())
        } else {
            let mut groups = std::mem::take(&mut self.carried_groups);
            if let Some(base) = &self.baseline {
                groups.extend(scope::changed_groups(base, &dir));
            }
            let mut targets = std::mem::take(&mut self.carried_targets);
            targets.extend(asked.iter().cloned());
            targets.extend(scope::changed_targets(&self.last_links, &links));
            let selected = scope::affected_links(&links, &groups, &targets);
            report.scope = describe_scope(&groups, &targets);
            (selected, groups, targets)
        };
        report.links = selected.len();
        self.baseline = Some(Arc::clone(&dir));
        self.last_links = links.clone();
        shared.with_status(|s| {
            s.links = links;
            s.warnings = warnings.clone();
        });
        if selected.is_empty() && !kind.is_full() {
            return Ended::ok("no_changes");
        }
        let carry = |w: &mut Worker| {
            w.carried_groups.extend(groups.iter().cloned());
            w.carried_targets.extend(targets.iter().cloned());
        };

        // 3. Mattermost, for those links only.
        let facts = match self.ledger.facts().context("ledger: reading facts") {
            Ok(f) => f,
            Err(e) => {
                carry(self);
                return Ended::failed("error", &e);
            }
        };
        let t = Instant::now();
        let gathered = tokio::select! {
            r = engine::gather_links(cfg, &shared.mm, (*dir).clone(), selected, facts, warnings) => r,
            _ = self.stopping() => {
                carry(self);
                return Ended::ok("stopped");
            }
        };
        metrics.phase("mattermost", t.elapsed().as_secs_f64());
        let mut state = match gathered {
            Ok(s) => s,
            Err(e) => {
                carry(self);
                shared.with_status(|s| {
                    s.mattermost.ok = false;
                    s.mattermost.checked = true;
                    s.mattermost.detail = format!("{e:#}");
                });
                return Ended::failed("mattermost_error", &e);
            }
        };
        shared.with_status(|s| {
            s.mattermost.ok = true;
            s.mattermost.checked = true;
            s.mattermost.detail = "ok".to_string();
        });
        // Writes whose outcome was lost (a failed or interrupted run) are settled from what
        // Mattermost shows now, before planning on top of them.
        match engine::settle_intents(&self.ledger, &state.mattermost)
            .and_then(|_| self.ledger.facts().context("ledger: reading facts"))
        {
            Ok(f) => state.facts = f,
            Err(e) => {
                carry(self);
                return Ended::failed("error", &e);
            }
        }

        // 4. The plan (pure), and what it says about pending users.
        let plan = state.plan();
        report.actions = plan.actions.len();
        let planned_groups: BTreeSet<String> =
            state.policy.links.iter().map(|l| l.group.clone()).collect();
        let pending = shared.with_status(|s| {
            update_pending(&mut s.pending, &plan, kind.is_full(), &planned_groups);
            s.pending.len()
        });
        metrics.pending_users.set(pending as i64);

        if !plan.guard_trips.is_empty() && !allow_mass_removal {
            carry(self);
            let why: Vec<String> = plan.guard_trips.iter().map(|g| g.to_string()).collect();
            metrics.guard_trips.inc();
            report.guard_trips = why.clone();
            let detail = format!(
                "removal guard tripped, nothing was changed: {}",
                why.join("; ")
            );
            match self.record_refusal(&plan, &detail) {
                Ok(id) => report.run_id = Some(id),
                Err(e) => warn!(error = %format!("{e:#}"), "ledger: cannot record the guard trip"),
            }
            shared.with_status(|s| s.guard_trips = Some((now_rfc3339(), why)));
            return Ended {
                outcome: "guard_tripped",
                error: Some(format!(
                    "{detail}. If the directory really changed this much, POST /sync?allow_mass_removal=true"
                )),
                retry: false,
            };
        }
        if !plan.has_changes() {
            return Ended::ok("no_changes");
        }

        // 5. Apply: one action at a time; a stop request ends it between two actions.
        let t = Instant::now();
        let applied = engine::apply(&plan, &mut self.ledger, &shared.mm, &self.stop).await;
        metrics.phase("apply", t.elapsed().as_secs_f64());
        let applied = match applied {
            Ok(r) => r,
            Err(e) => {
                carry(self);
                return Ended::failed("error", &e);
            }
        };
        report.run_id = Some(applied.run_id.clone());
        report.users_ok = applied.users_ok;
        report.users_failed = applied.users_failed;
        self.count_actions(&applied.run_id);
        if *self.stop.borrow() && applied.actions < plan.actions.len() {
            carry(self);
            return Ended {
                outcome: "stopped",
                error: Some("stopped by signal after the action in flight".to_string()),
                retry: false,
            };
        }
        if applied.users_failed > 0 {
            carry(self);
            return Ended {
                outcome: "partial",
                error: Some(applied.failures.join("; ")),
                retry: true,
            };
        }
        Ended::ok("ok")
    }

    /// Completes when the service is asked to stop.
    fn stopping(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    /// A snapshot over the kept connection; on any failure, once more over a new one. An
    /// error from the new one is the cycle's error (fail closed).
    async fn read_directory(&mut self) -> Result<Directory> {
        if let Some(mut conn) = self.conn.take() {
            match conn.snapshot().await {
                Ok(snap) => {
                    self.conn = Some(conn);
                    return Ok(snap);
                }
                Err(e) => {
                    debug!(error = %e, "the kept directory connection failed; connecting again")
                }
            }
        }
        let mut conn = LdapDirectory::connect(&self.ldap)
            .await
            .context("directory: cannot connect; nothing was changed")?;
        let snap = conn.snapshot().await.context(
            "directory: read failed; the cycle stopped before planning, nothing was changed",
        )?;
        self.conn = Some(conn);
        Ok(snap)
    }

    /// A plan that was not applied still gets a run in the ledger, so `status` shows it.
    fn record_refusal(&self, plan: &Plan, detail: &str) -> Result<String> {
        let id = self.ledger.begin_run("serve", Some(&plan.fingerprint))?;
        self.ledger.finish_run(
            &id,
            &RunEnd {
                outcome: "guard_tripped".to_string(),
                detail: Some(detail.to_string()),
                ..Default::default()
            },
        )?;
        Ok(id)
    }

    fn count_actions(&self, run_id: &str) {
        let events = self.ledger.events(&AuditQuery {
            run: Some(run_id.to_string()),
            limit: 1_000_000,
            ..Default::default()
        });
        let Ok(events) = events else {
            return;
        };
        let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
        for e in events {
            *counts.entry((e.action, e.outcome)).or_insert(0) += 1;
        }
        for ((action, outcome), n) in counts {
            self.shared.metrics.action(&action, &outcome, n);
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

pub async fn read_directory(cfg: &LdapConfig) -> Result<Directory> {
    let mut dir = LdapDirectory::connect(cfg)
        .await
        .context("directory: cannot connect; nothing was changed")?;
    let snap = dir
        .snapshot()
        .await
        .context("directory: read failed; the cycle stopped before planning, nothing was changed");
    dir.unbind().await;
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
        let t: BTreeSet<Target> = ["t/c".parse().expect("target")].into();
        assert_eq!(
            describe_scope(&["mm_a_b".to_string()].into(), &t),
            "mm_a_b, t/c"
        );
    }
}
