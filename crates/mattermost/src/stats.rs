//! Counts of the API calls a [`crate::Client`] made, so every run can report them.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    writes: AtomicU64,
    get: AtomicU64,
    post: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
    other: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// One HTTP attempt (a retry counts again).
    pub(crate) fn attempt(&self, method: &reqwest::Method, read: bool) {
        bump(&self.calls);
        if !read {
            bump(&self.writes);
        }
        bump(match *method {
            reqwest::Method::GET => &self.get,
            reqwest::Method::POST => &self.post,
            reqwest::Method::PUT => &self.put,
            reqwest::Method::DELETE => &self.delete,
            _ => &self.other,
        });
    }
    pub(crate) fn retry(&self) {
        bump(&self.retries);
    }
    pub(crate) fn rate_limited(&self) {
        bump(&self.rate_limited);
    }
    pub(crate) fn server_error(&self) {
        bump(&self.server_errors);
    }
    pub(crate) fn transport_error(&self) {
        bump(&self.transport_errors);
    }

    pub(crate) fn snapshot(&self) -> ApiStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ApiStats {
            calls: r(&self.calls),
            writes: r(&self.writes),
            get: r(&self.get),
            post: r(&self.post),
            put: r(&self.put),
            delete: r(&self.delete),
            other: r(&self.other),
            retries: r(&self.retries),
            rate_limited: r(&self.rate_limited),
            server_errors: r(&self.server_errors),
            transport_errors: r(&self.transport_errors),
        }
    }
}

/// A snapshot of the counters. `calls` counts every HTTP attempt, retries included;
/// `get`..`other` split it by method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApiStats {
    pub calls: u64,
    /// Attempts that change something (not a `GET`, not a look-up `POST`).
    pub writes: u64,
    pub get: u64,
    pub post: u64,
    pub put: u64,
    pub delete: u64,
    pub other: u64,
    /// Attempts that were repeats of an earlier one.
    pub retries: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Attempts without an answer (timeout, refused or reset connection).
    pub transport_errors: u64,
}

impl ApiStats {
    /// What happened between `earlier` and `self` (e.g. one run of a long-lived client).
    pub fn since(&self, earlier: &ApiStats) -> ApiStats {
        ApiStats {
            calls: self.calls.saturating_sub(earlier.calls),
            writes: self.writes.saturating_sub(earlier.writes),
            get: self.get.saturating_sub(earlier.get),
            post: self.post.saturating_sub(earlier.post),
            put: self.put.saturating_sub(earlier.put),
            delete: self.delete.saturating_sub(earlier.delete),
            other: self.other.saturating_sub(earlier.other),
            retries: self.retries.saturating_sub(earlier.retries),
            rate_limited: self.rate_limited.saturating_sub(earlier.rate_limited),
            server_errors: self.server_errors.saturating_sub(earlier.server_errors),
            transport_errors: self
                .transport_errors
                .saturating_sub(earlier.transport_errors),
        }
    }
}

impl std::fmt::Display for ApiStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} API calls (GET {}, POST {}, PUT {}, DELETE {}",
            self.calls, self.get, self.post, self.put, self.delete
        )?;
        if self.other > 0 {
            write!(f, ", other {}", self.other)?;
        }
        write!(
            f,
            "), {} retries, {} rate-limited",
            self.retries, self.rate_limited
        )
    }
}
