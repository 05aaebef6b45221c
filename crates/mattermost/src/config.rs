//! How to reach Mattermost: URL, token, timeouts, retries, TLS.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A secret string (the access token, a password). `Debug` and `Display` print `***`; the
/// value is only reachable through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Reads a secret from a file, trimming surrounding white space (a trailing newline).
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let s = std::fs::read_to_string(path)?;
        Ok(Secret(s.trim().to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

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
}

impl ClientConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_RETRIES: u32 = 5;

    /// A configuration with the defaults: 30 s timeout, 5 retries, verified TLS.
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
        assert_eq!(format!("{}", cfg.token), "***");
        assert_eq!(cfg.token.expose(), "s3cr3t-token-value");
        assert_eq!(cfg.timeout, Duration::from_secs(30));
        assert_eq!(cfg.max_retries, 5);
    }

    #[test]
    fn secret_from_file_trims_the_newline() {
        let dir = std::env::temp_dir().join(format!("mattersync-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("token");
        std::fs::write(&path, "abc123\n").expect("write");
        let s = Secret::from_file(&path).expect("read");
        assert_eq!(s.expose(), "abc123");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
