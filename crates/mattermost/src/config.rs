//! How to reach Mattermost: URL, token, timeouts, retries, TLS.

use std::path::PathBuf;
use std::time::Duration;

/// The access token's type: `Debug` prints `***`, no `Display`; the value is only reachable
/// through [`Secret::expose`].
pub use mattersync_core::Secret;

/// Everything [`crate::Client::new`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL of the server, e.g. `https://chat.rockylinux.org` (without `/api/v4`).
    pub url: String,
    /// A personal access token or session token, sent as `Authorization: Bearer`.
    pub token: Secret,
    /// Deadline of one HTTP attempt, connection to last byte of the body.
    pub timeout: Duration,
    /// Attempts after the first one for 429, 5xx, timeouts and broken connections.
    pub max_retries: u32,
    /// Extra PEM CA certificate(s) to trust, for a server with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification. For tests only; logged as a warning.
    pub insecure: bool,
    /// First backoff delay; doubles per retry (with jitter) up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Longest wait a 429's `Retry-After` / `X-Ratelimit-Reset` is honoured for.
    pub max_rate_limit_wait: Duration,
    /// Requests in flight at most (reads are issued concurrently up to this many; writes
    /// are sent one at a time anyway). At least 1.
    pub read_concurrency: usize,
}

impl ClientConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_RETRIES: u32 = 5;
    pub const DEFAULT_READ_CONCURRENCY: usize = 4;

    /// A configuration with the defaults: 30 s timeout, 5 retries, verified TLS, 4 requests
    /// in flight.
    pub fn new(url: impl Into<String>, token: impl Into<Secret>) -> Self {
        ClientConfig {
            url: url.into(),
            token: token.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            ca_file: None,
            insecure: false,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            max_rate_limit_wait: Duration::from_secs(60),
            read_concurrency: Self::DEFAULT_READ_CONCURRENCY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let cfg = ClientConfig::new("https://chat.example.org", "s3cr3t-token-value");
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
        assert_eq!(cfg.token.expose(), "s3cr3t-token-value");
        assert_eq!(cfg.timeout, Duration::from_secs(30));
        assert_eq!(cfg.max_retries, 5);
        assert_eq!(cfg.read_concurrency, 4);
    }
}
