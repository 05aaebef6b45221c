//! The change source: tells the worker when users or groups changed in the directory.
//!
//! syncrepl (RFC 4533 refreshAndPersist) where the server offers it: a session resumes from
//! the last cookie, a refused cookie means a full refresh (and a full reconcile), a dropped
//! session is reconnected with backoff. Elsewhere a poller asks for entries with a newer
//! `modifyTimestamp` and, now and then, has the worker compare a full listing (deletions
//! leave no timestamp behind).
//!
//! Invariant: the change source never decides what to change; it wakes the worker and names
//! the entries that changed (their DNs, never their content), which the worker reads afresh.
//! Losing a notification delays a change until the next one touching the same entries or the
//! periodic reconcile (which counts the difference as drift).

use super::state::{ChangeSource, Request, Shared};
use mattersync_directory::syncrepl::{
    watch_base, SyncEvent, SyncSession, SYNC_REFRESH_REQUIRED, UNAVAILABLE_CRITICAL_EXTENSION,
};
use mattersync_directory::{DirectoryError, Dn, LdapConfig, LdapDirectory};
use mattersync_engine::backoff::Backoff;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// How long after an entry was first seen at the newest `modifyTimestamp` it is still named
/// again (a stamp counts whole seconds; the margin covers a server clock a little ahead).
const STAMP_SETTLES: std::time::Duration = std::time::Duration::from_secs(3);

/// The search filter of the sync session: everything under the watched subtree. Changes to
/// entries that are neither users nor groups are told apart by DN and cost nothing.
const FILTER: &str = "(objectClass=*)";

pub struct Watcher {
    shared: Arc<Shared>,
    ldap: LdapConfig,
    base: String,
    user_base: Option<Dn>,
    group_base: Option<Dn>,
    tx: mpsc::Sender<Request>,
    stop: watch::Receiver<bool>,
    cookie: Option<Vec<u8>>,
    backoff: Backoff,
}

/// How the syncrepl loop ended.
enum Ended {
    Stopped,
    /// The server does not offer syncrepl (auto mode falls back to polling).
    Unsupported,
}

fn unsupported(e: &DirectoryError) -> bool {
    e.result_code() == Some(UNAVAILABLE_CRITICAL_EXTENSION)
}

impl Watcher {
    pub fn new(
        shared: Arc<Shared>,
        ldap: LdapConfig,
        tx: mpsc::Sender<Request>,
        stop: watch::Receiver<bool>,
        cookie: Option<Vec<u8>>,
    ) -> Result<Watcher, DirectoryError> {
        let base = watch_base(&ldap)?;
        Ok(Watcher {
            user_base: Dn::parse(&ldap.user_base()).ok(),
            group_base: Dn::parse(&ldap.group_base()).ok(),
            shared,
            ldap,
            base,
            tx,
            stop,
            cookie,
            backoff: Backoff::standard(),
        })
    }

    /// The `cursors` name of the syncrepl cookie: a cookie is only good for the server, bind,
    /// base and filter it was issued for.
    pub fn cursor_name(ldap: &LdapConfig) -> String {
        format!(
            "syncrepl {} {} {} {FILTER}",
            ldap.uri,
            ldap.bind_dn.as_deref().unwrap_or("anonymous"),
            watch_base(ldap).unwrap_or_default()
        )
    }

    pub async fn run(mut self) {
        let mode = self.shared.settings.changes;
        let poll = match mode {
            ChangeSource::Off => return,
            ChangeSource::Poll => true,
            ChangeSource::Syncrepl => false,
            ChangeSource::Auto => match self.detect().await {
                Some(offered) => !offered,
                None => return,
            },
        };
        if !poll {
            match self.syncrepl(mode == ChangeSource::Auto).await {
                Ended::Stopped => return,
                Ended::Unsupported => {
                    info!("the directory does not offer syncrepl: polling modifyTimestamp instead")
                }
            }
        }
        self.poll().await;
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Completes when the service is asked to stop.
    fn stopping(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    /// Waits out the backoff (doubling it); false when asked to stop meanwhile.
    async fn wait_backoff(&mut self) -> bool {
        let wait = self.backoff.next_wait();
        tokio::select! {
            _ = tokio::time::sleep(wait) => !self.stopped(),
            _ = self.stopping() => false,
        }
    }

    async fn send(&self, req: Request) {
        if self.tx.send(req).await.is_err() {
            warn!("the sync worker is gone; change notifications are dropped");
        }
    }

    fn set_source(&self, mode: &str, connected: bool, detail: String) {
        self.shared.with_status(|s| {
            s.source.mode = mode.to_string();
            s.source.connected = connected;
            s.source.detail = detail;
        });
        self.shared
            .metrics
            .directory_connected
            .set(i64::from(connected));
        self.shared.readiness();
    }

    fn failed(&self, mode: &str, e: &DirectoryError) {
        self.shared.metrics.session_errors.inc();
        warn!(error = %e, retry_in_s = self.backoff.peek().as_secs(), "directory change source failed; reconnecting");
        self.set_source(mode, false, format!("{e}"));
        self.shared
            .with_status(|s| s.error("directory change source", e.to_string()));
    }

    /// A change to this entry can matter to a sync (a user or a group).
    fn relevant(&self, dn: &str) -> bool {
        let Ok(dn) = Dn::parse(dn) else {
            return true;
        };
        [&self.user_base, &self.group_base]
            .into_iter()
            .flatten()
            .any(|b| dn == *b || dn.is_descendant_of(b))
    }

    /// Whether the server offers syncrepl; `None` when asked to stop first.
    async fn detect(&mut self) -> Option<bool> {
        loop {
            let r = tokio::select! {
                r = async {
                    let mut d = LdapDirectory::connect(&self.ldap).await?;
                    let offered = d.supports_syncrepl().await;
                    d.unbind().await;
                    offered
                } => r,
                _ = self.stopping() => return None,
            };
            match r {
                Ok(offered) => return Some(offered),
                Err(e) => {
                    self.failed("detecting", &e);
                    if !self.wait_backoff().await {
                        return None;
                    }
                }
            }
        }
    }

    async fn start_session(&self) -> Result<SyncSession, DirectoryError> {
        let dir = LdapDirectory::connect(&self.ldap).await?;
        dir.sync_session(
            &self.base,
            FILTER,
            self.cookie.clone(),
            self.shared.settings.heartbeat,
        )
        .await
    }

    async fn syncrepl(&mut self, auto: bool) -> Ended {
        loop {
            if self.stopped() {
                return Ended::Stopped;
            }
            let started = tokio::select! {
                r = self.start_session() => r,
                _ = self.stopping() => return Ended::Stopped,
            };
            let mut session = match started {
                Ok(s) => s,
                Err(e) if unsupported(&e) && auto => return Ended::Unsupported,
                Err(e) => {
                    self.failed("syncrepl", &e);
                    if !self.wait_backoff().await {
                        return Ended::Stopped;
                    }
                    continue;
                }
            };
            let resumed = session.resumed();
            self.shared.metrics.session(resumed);
            self.set_source(
                "syncrepl",
                false,
                format!(
                    "refreshing ({})",
                    if resumed {
                        "resumed from the saved cookie"
                    } else {
                        "full"
                    }
                ),
            );
            let mut refresh_changes = 0usize;
            loop {
                let next = tokio::select! {
                    r = session.next() => r,
                    _ = self.stopping() => {
                        session.close().await;
                        return Ended::Stopped;
                    }
                };
                let update = match next {
                    Ok(u) => u,
                    Err(e)
                        if e.result_code() == Some(SYNC_REFRESH_REQUIRED)
                            && self.cookie.is_some() =>
                    {
                        self.shared.metrics.cookie_refused.inc();
                        warn!(error = %e, "the directory refused the saved cookie; starting a full refresh");
                        self.cookie = None;
                        self.send(Request::ForgetCookie).await;
                        break;
                    }
                    Err(e) if unsupported(&e) && auto => return Ended::Unsupported,
                    Err(e) => {
                        self.failed("syncrepl", &e);
                        if !self.wait_backoff().await {
                            return Ended::Stopped;
                        }
                        break;
                    }
                };
                if let Some(c) = &update.cookie {
                    self.cookie = Some(c.clone());
                }
                let cookie = update.cookie.clone();
                match update.event {
                    SyncEvent::Entry { dn, .. } if update.in_refresh => {
                        refresh_changes += usize::from(self.relevant(&dn));
                    }
                    SyncEvent::Uuids { count, .. } if update.in_refresh => {
                        refresh_changes += count;
                    }
                    SyncEvent::RefreshDone => {
                        self.backoff.reset();
                        info!(
                            resumed,
                            refresh_changes, "directory sync session is live (refreshAndPersist)"
                        );
                        self.set_source(
                            "syncrepl",
                            true,
                            format!(
                                "live; {} refresh{}",
                                if resumed { "incremental" } else { "full" },
                                if resumed {
                                    format!(" with {refresh_changes} change(s)")
                                } else {
                                    String::new()
                                }
                            ),
                        );
                        let req = if !resumed {
                            Request::Resync {
                                reason: "full directory refresh".to_string(),
                                cookie,
                            }
                        } else if refresh_changes > 0 {
                            self.shared.metrics.notification("syncrepl");
                            Request::Changed {
                                at: Instant::now(),
                                cookie,
                                entries: None,
                            }
                        } else {
                            match cookie {
                                Some(c) => Request::Cookie(c),
                                None => Request::Ready,
                            }
                        };
                        self.send(req).await;
                    }
                    SyncEvent::Entry { dn, .. } if self.relevant(&dn) => {
                        if mattersync_engine::fault::lose_notification() {
                            continue;
                        }
                        self.shared.metrics.notification("syncrepl");
                        self.send(Request::Changed {
                            at: Instant::now(),
                            cookie,
                            entries: Some(vec![dn]),
                        })
                        .await;
                    }
                    SyncEvent::Uuids { .. } => {
                        self.shared.metrics.notification("syncrepl");
                        self.send(Request::Changed {
                            at: Instant::now(),
                            cookie,
                            entries: None,
                        })
                        .await;
                    }
                    SyncEvent::Entry { .. } | SyncEvent::Cookie => {
                        if let Some(c) = cookie {
                            self.send(Request::Cookie(c)).await;
                        }
                    }
                }
            }
            session.close().await;
        }
    }

    async fn poll(&mut self) {
        let interval = self.shared.settings.poll_interval;
        let listing = self.shared.settings.poll_listing;
        let mut dir: Option<LdapDirectory> = None;
        // The newest modifyTimestamp seen, and the entries that carry it (`>=` returns them
        // again), with when each was first seen at it. A timestamp has a resolution of one
        // second: an entry changed again within the second it was seen in keeps its stamp, so
        // it is named again until it was seen at that stamp for longer than STAMP_SETTLES.
        let mut mark: Option<String> = None;
        let mut at_mark: BTreeMap<String, Instant> = BTreeMap::new();
        let mut next_listing = Instant::now() + listing;
        let mut first = true;
        self.set_source("poll", false, "starting".to_string());
        loop {
            if self.stopped() {
                return;
            }
            let conn = match dir.as_mut() {
                Some(d) => d,
                None => match LdapDirectory::connect(&self.ldap).await {
                    Ok(d) => dir.insert(d),
                    Err(e) => {
                        self.failed("poll", &e);
                        if !self.wait_backoff().await {
                            return;
                        }
                        continue;
                    }
                },
            };
            let since = mark.clone().unwrap_or_else(initial_mark);
            match conn.modified_since(&self.base, &since).await {
                Ok(entries) => {
                    self.backoff.reset();
                    self.set_source(
                        "poll",
                        true,
                        format!(
                            "every {} s, full listing every {} s",
                            interval.as_secs(),
                            listing.as_secs()
                        ),
                    );
                    let settled = |dn: &str| {
                        at_mark
                            .get(dn)
                            .is_some_and(|seen| seen.elapsed() > STAMP_SETTLES)
                    };
                    let fresh: Vec<&str> = entries
                        .iter()
                        .filter(|m| match &mark {
                            None => false,
                            Some(s) => m.stamp > *s || (m.stamp == *s && !settled(&m.dn)),
                        })
                        .map(|m| m.dn.as_str())
                        .collect();
                    let named: Vec<String> = fresh
                        .iter()
                        .filter(|dn| self.relevant(dn))
                        .map(|dn| dn.to_string())
                        .collect();
                    let relevant = !named.is_empty();
                    if let Some(top) = entries.iter().map(|m| &m.stamp).max() {
                        if mark.as_ref() != Some(top) {
                            at_mark.clear();
                            mark = Some(top.clone());
                        }
                        let now = Instant::now();
                        for m in entries.iter().filter(|m| m.stamp == *top) {
                            at_mark.entry(m.dn.clone()).or_insert(now);
                        }
                    } else if mark.is_none() {
                        mark = Some(since);
                    }
                    let listing_due = Instant::now() >= next_listing;
                    if listing_due {
                        next_listing = Instant::now() + listing;
                    }
                    if relevant {
                        self.shared.metrics.notification("poll");
                    }
                    if first || relevant || listing_due {
                        // The first poll and the periodic listing cannot name deletions.
                        let entries = (!first && !listing_due).then_some(named);
                        first = false;
                        self.send(Request::Changed {
                            at: Instant::now(),
                            cookie: None,
                            entries,
                        })
                        .await;
                    }
                }
                Err(e) => {
                    dir = None;
                    self.failed("poll", &e);
                    if !self.wait_backoff().await {
                        return;
                    }
                    continue;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.stopping() => return,
            }
        }
    }
}

/// Where polling starts: ten minutes ago (UTC), in GeneralizedTime. Anything older is in the
/// first full reconcile anyway; the margin covers a server clock a little behind ours.
fn initial_mark() -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let fmt = time::macros::format_description!("[year][month][day][hour][minute][second]Z");
    t.format(&fmt)
        .unwrap_or_else(|_| "19700101000000Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_mark_is_generalized_time() {
        let m = initial_mark();
        assert_eq!(m.len(), 15, "{m}");
        assert!(m.ends_with('Z'));
        assert!(m[..14].bytes().all(|b| b.is_ascii_digit()), "{m}");
        assert!(m.as_str() > "20250101000000Z");
    }

    #[test]
    fn cursor_names_follow_what_the_server_binds_a_cookie_to() {
        let mut a = LdapConfig::new("ldaps://ipa.example.org", "dc=example,dc=org");
        let plain = Watcher::cursor_name(&a);
        assert!(
            plain.contains("ldaps://ipa.example.org")
                && plain.contains("cn=accounts,dc=example,dc=org"),
            "{plain}"
        );
        a.bind_dn = Some("uid=sync,cn=sysaccounts,cn=etc,dc=example,dc=org".into());
        assert_ne!(Watcher::cursor_name(&a), plain);
    }
}
