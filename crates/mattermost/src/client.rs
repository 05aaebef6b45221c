//! The HTTP core: one place that sends requests, retries what may be retried, counts
//! calls and turns answers into [`MmError`]s.

use crate::config::ClientConfig;
use crate::error::{ApiError, MmError};
use crate::stats::{ApiStats, Counters};
use crate::wire;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, SemaphorePermit};

/// One HTTP attempt as an observer sees it (for metrics): the method, the status (`None`
/// when no answer came: timeout, refused or reset connection) and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub method: &'a str,
    pub status: Option<u16>,
    pub elapsed: Duration,
}

/// Called after every attempt (see [`Client::set_observer`]).
pub type Observer = Box<dyn Fn(&Attempt<'_>) + Send + Sync>;

/// A Mattermost REST API v4 client. Cheap to clone (clones share the connection pool and
/// the call counters).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    /// `https://host[:port][/prefix]/api/v4`, no trailing slash.
    base: String,
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_rate_limit_wait: Duration,
    counters: Counters,
    observer: std::sync::OnceLock<Observer>,
    /// Cleared when the server turns out not to accept `{"user_ids": [...]}` on
    /// `POST /channels/{id}/members` (servers before the batch form).
    pub(crate) channel_batch: AtomicBool,
    /// Requests in flight at most (`ClientConfig::read_concurrency`): one permit per HTTP
    /// attempt, held from sending to the last byte of the answer, never while waiting.
    in_flight: Semaphore,
    pub(crate) read_concurrency: usize,
    /// No attempt starts before this instant: a 429 pushes it to when the server said to
    /// come back, for every request of this client and its clones, not only the one that
    /// got the 429.
    not_before: Mutex<Option<tokio::time::Instant>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

/// Whether a request may be sent again after an attempt whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads, and writes whose repetition has the same effect (adding a member twice, a
    /// `DELETE`, a `PUT`): retried on 429, 5xx, timeouts and broken connections.
    Idempotent,
    /// Creations: retried only when the server certainly did not act on the request
    /// (429, or no connection at all).
    Unsafe,
}

/// A successful answer, body read.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Percent-encodes one path segment (names come from configuration).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

impl Client {
    /// Builds a client. HTTPS certificates are verified unless `insecure`; plain `http://`
    /// works but is logged as a warning unless the host is a loopback address.
    pub fn new(cfg: ClientConfig) -> Result<Client, MmError> {
        let trimmed = cfg.url.trim().trim_end_matches('/');
        let trimmed = trimmed.strip_suffix("/api/v4").unwrap_or(trimmed);
        let url = reqwest::Url::parse(trimmed)
            .map_err(|e| MmError::Config(format!("url {trimmed:?}: {e}")))?;
        let host = url.host_str().unwrap_or_default().to_string();
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => tracing::warn!(
                url = %trimmed,
                "Mattermost URL uses plain http: the token crosses the network unencrypted"
            ),
            other => {
                return Err(MmError::Config(format!(
                    "url {trimmed:?}: scheme {other:?} is not http or https"
                )))
            }
        }
        if host.is_empty() {
            return Err(MmError::Config(format!("url {trimmed:?} has no host")));
        }
        if cfg.token.is_empty() {
            return Err(MmError::Config("the access token is empty".into()));
        }

        let mut auth = HeaderValue::from_str(&format!("Bearer {}", cfg.token.expose()))
            .map_err(|_| MmError::Config("the access token contains invalid characters".into()))?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("mattersync/", env!("CARGO_PKG_VERSION"))),
        );

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            // A redirect would turn a POST into a GET or send the token elsewhere: report it.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| MmError::Config(format!("ca_file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                MmError::Config(format!(
                    "ca_file {}: not PEM certificates: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(MmError::Config(format!(
                    "ca_file {}: no certificate found",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if cfg.insecure {
            tracing::warn!(url = %trimmed, "TLS certificate verification is OFF (insecure = true)");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| MmError::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: format!("{trimmed}/api/v4"),
                max_retries: cfg.max_retries,
                backoff_base: cfg.backoff_base,
                backoff_max: cfg.backoff_max,
                max_rate_limit_wait: cfg.max_rate_limit_wait,
                counters: Counters::default(),
                observer: std::sync::OnceLock::new(),
                channel_batch: AtomicBool::new(true),
                in_flight: Semaphore::new(cfg.read_concurrency.max(1)),
                read_concurrency: cfg.read_concurrency.max(1),
                not_before: Mutex::new(None),
            }),
        })
    }

    /// The API base URL (`…/api/v4`).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Calls `observer` after every HTTP attempt of this client and its clones, from then
    /// on (set once; `false` when one was set already).
    pub fn set_observer(&self, observer: Observer) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// Calls made so far by this client and its clones.
    pub fn stats(&self) -> ApiStats {
        self.inner.counters.snapshot()
    }

    /// Requests this client keeps in flight at most.
    pub fn read_concurrency(&self) -> usize {
        self.inner.read_concurrency
    }

    /// The instant a 429 asked every request to wait for, if it is still ahead.
    fn held_until(&self) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let guard = self
            .inner
            .not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.filter(|t| *t > now)
    }

    /// Holds every request back until `wait` from now (or later, if already held longer).
    fn hold_back(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut guard = self
            .inner
            .not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none_or(|t| t < until) {
            *guard = Some(until);
        }
    }

    /// Waits until a request may be sent: no 429 holds requests back and fewer than
    /// `read_concurrency` are in flight. The permit ends the slot when dropped.
    async fn admit(&self) -> Option<SemaphorePermit<'_>> {
        loop {
            while let Some(until) = self.held_until() {
                tokio::time::sleep_until(until).await;
            }
            // The semaphore is never closed; without a permit the request would still be
            // sent, only not counted against the limit.
            let permit = self.inner.in_flight.acquire().await.ok();
            // a 429 may have come while this request waited for its slot
            if self.held_until().is_none() {
                return permit;
            }
        }
    }

    /// Whether channel adds go in batches (`{"user_ids": […]}` on `POST
    /// /channels/{id}/members`: 11.4 takes it, the 9.9 build of the compatibility tests does
    /// not). Detected by feature, not by version: true until a server refuses a batch as a
    /// body it does not know, and false for this client and its clones from then on (one
    /// call per user).
    pub fn channel_batch_supported(&self) -> bool {
        self.inner.channel_batch.load(Ordering::Relaxed)
    }

    pub(crate) fn set_channel_batch_unsupported(&self) {
        self.inner.channel_batch.store(false, Ordering::Relaxed);
    }

    /// Delay before retry number `retry` (1-based): exponential, capped, with jitter in
    /// [d/2, d].
    fn backoff(&self, retry: u32) -> Duration {
        let exp = 2u32.saturating_pow(retry.saturating_sub(1).min(20));
        let d = self
            .inner
            .backoff_base
            .saturating_mul(exp)
            .min(self.inner.backoff_max);
        let half = d / 2;
        let jitter_ms = half.as_millis() as u64;
        let extra = if jitter_ms > 0 {
            rand::thread_rng().gen_range(0..=jitter_ms)
        } else {
            0
        };
        half + Duration::from_millis(extra)
    }

    /// How long a 429 asks us to wait: `Retry-After` (seconds), else `X-Ratelimit-Reset`
    /// (seconds from now, or a Unix time), else the backoff.
    fn rate_limit_wait(&self, headers: &HeaderMap, retry: u32) -> Duration {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let wait = if let Some(s) = num("retry-after") {
            Duration::from_secs_f64(s)
        } else if let Some(r) = num("x-ratelimit-reset") {
            if r > 1.0e9 {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                Duration::from_secs_f64((r - now).max(0.0))
            } else {
                Duration::from_secs_f64(r)
            }
        } else {
            return self.backoff(retry);
        };
        // A little jitter so that parallel clients do not come back in the same instant.
        let extra = Duration::from_millis(rand::thread_rng().gen_range(0..=50));
        (wait + extra).min(self.inner.max_rate_limit_wait)
    }

    /// Sends one request, retrying as `retry` allows; returns the 2xx answer or an error.
    /// `path` is relative to `/api/v4` and includes the query string.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        retry: Retry,
    ) -> Result<Answer, MmError> {
        let url = format!("{}{}", self.inner.base, path);
        let shown = format!("/api/v4{path}");
        let max = self.inner.max_retries;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let slot = self.admit().await;
            self.inner.counters.attempt(&method, is_read(&method, path));
            let started = Instant::now();
            let mut req = self.inner.http.request(method.clone(), &url);
            if let Some(b) = &body {
                req = req.header(CONTENT_TYPE, "application/json").body(b.clone());
            }
            let result = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(b) => Ok((status, headers, b.to_vec())),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let elapsed = started.elapsed();
            let elapsed_ms = elapsed.as_millis() as u64;
            if let Some(observe) = self.inner.observer.get() {
                observe(&Attempt {
                    method: method.as_str(),
                    status: result.as_ref().ok().map(|(s, _, _)| s.as_u16()),
                    elapsed,
                });
            }
            let retries_left = attempt <= max;
            match result {
                Ok((status, headers, body)) => {
                    tracing::debug!(
                        method = %method, path = %shown, status = status.as_u16(),
                        elapsed_ms, attempt, "mattermost call"
                    );
                    if status.is_success() {
                        return Ok(Answer {
                            status: status.as_u16(),
                            headers,
                            body,
                        });
                    }
                    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS;
                    let wait = if rate_limited {
                        self.inner.counters.rate_limited();
                        retries_left.then(|| self.rate_limit_wait(&headers, attempt))
                    } else if status.is_server_error() {
                        self.inner.counters.server_error();
                        (retries_left && retry == Retry::Idempotent).then(|| self.backoff(attempt))
                    } else {
                        None
                    };
                    if let Some(wait) = wait {
                        tracing::warn!(
                            method = %method, path = %shown, status = status.as_u16(),
                            attempt, wait_ms = wait.as_millis() as u64,
                            "mattermost call failed; retrying"
                        );
                        self.inner.counters.retry();
                        if rate_limited {
                            // Every request waits, this one included (in `admit`); held
                            // back before this one's slot is given up, so that no request
                            // waiting for the slot is sent in between.
                            self.hold_back(wait);
                            drop(slot);
                        } else {
                            drop(slot);
                            tokio::time::sleep(wait).await;
                        }
                        continue;
                    }
                    return Err(MmError::Api {
                        method: method.to_string(),
                        path: shown,
                        error: Box::new(api_error(status, &headers, &body)),
                        attempts: attempt,
                    });
                }
                Err(e) => {
                    self.inner.counters.transport_error();
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "cannot connect"
                    } else if e.is_body() || e.is_decode() {
                        "response interrupted"
                    } else {
                        "request failed"
                    };
                    let may_retry =
                        retry == Retry::Idempotent || (e.is_connect() && !e.is_timeout());
                    if retries_left && may_retry {
                        let wait = self.backoff(attempt);
                        tracing::warn!(
                            method = %method, path = %shown, error = kind, attempt,
                            elapsed_ms, wait_ms = wait.as_millis() as u64,
                            "mattermost call failed; retrying"
                        );
                        self.inner.counters.retry();
                        drop(slot);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(MmError::Transport {
                        method: method.to_string(),
                        path: shown,
                        kind,
                        attempts: attempt,
                        source: e.without_url(),
                    });
                }
            }
        }
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, MmError> {
        let a = self
            .call(Method::GET, path, None, Retry::Idempotent)
            .await?;
        decode(&Method::GET, path, &a)
    }

    pub(crate) async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        retry: Retry,
    ) -> Result<T, MmError> {
        let a = self.send(method.clone(), path, body, retry).await?;
        decode(&method, path, &a)
    }

    /// Sends a JSON body; the answer's body is not interpreted (e.g. `{"status":"OK"}`).
    pub(crate) async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        retry: Retry,
    ) -> Result<Answer, MmError> {
        let bytes = serde_json::to_vec(body).map_err(|e| MmError::Decode {
            method: method.to_string(),
            path: format!("/api/v4{path}"),
            status: 0,
            detail: format!("cannot encode the request body: {e}"),
        })?;
        self.call(method, path, Some(bytes), retry).await
    }
}

/// Decodes a 2xx JSON body; malformed JSON is an error, never a panic.
pub(crate) fn decode<T: DeserializeOwned>(
    method: &Method,
    path: &str,
    a: &Answer,
) -> Result<T, MmError> {
    serde_json::from_slice(&a.body).map_err(|e| MmError::Decode {
        method: method.to_string(),
        path: format!("/api/v4{path}"),
        status: a.status,
        detail: format!("{e}; body starts with {:?}", snippet(&a.body)),
    })
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.chars().take(120).collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

/// Mattermost's `{id, message, request_id}` if the body is that, else the body's start.
fn api_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
    let mut err = match serde_json::from_slice::<wire::AppError>(body) {
        Ok(e) if !e.id.is_empty() || !e.message.is_empty() => ApiError {
            status: status.as_u16(),
            id: e.id,
            message: e.message,
            request_id: e.request_id,
        },
        _ => ApiError {
            status: status.as_u16(),
            id: String::new(),
            message: snippet(body).trim().to_string(),
            request_id: String::new(),
        },
    };
    if status.is_redirection() {
        let to = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        err.message = format!("the server redirects to {to}; configure that URL instead");
    }
    err
}

/// Whether a call only reads: a `GET`, or one of the `POST`s that look accounts or members
/// up by a list of ids or names.
fn is_read(method: &Method, path: &str) -> bool {
    if *method == Method::GET {
        return true;
    }
    let path = path.split('?').next().unwrap_or(path);
    *method == Method::POST
        && (path == "/users/ids" || path == "/users/usernames" || path.ends_with("/members/ids"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<Client, MmError> {
        Client::new(ClientConfig::new(url, "tok"))
    }

    #[test]
    fn base_url_is_normalised() {
        let c = client("https://chat.example.org/").expect("client");
        assert_eq!(c.base_url(), "https://chat.example.org/api/v4");
        let c = client("https://chat.example.org/mm/api/v4/").expect("client");
        assert_eq!(c.base_url(), "https://chat.example.org/mm/api/v4");
        let c = client("http://127.0.0.1:8065").expect("client");
        assert_eq!(c.base_url(), "http://127.0.0.1:8065/api/v4");
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(matches!(client("ftp://x.org"), Err(MmError::Config(_))));
        assert!(matches!(client("not a url"), Err(MmError::Config(_))));
        assert!(matches!(
            Client::new(ClientConfig::new("https://x.org", "")),
            Err(MmError::Config(_))
        ));
        let mut cfg = ClientConfig::new("https://x.org", "t");
        cfg.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(matches!(Client::new(cfg), Err(MmError::Config(_))));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("chat.example.org"));
        assert!(!is_loopback("10.0.0.1"));
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("rocky-linux"), "rocky-linux");
        assert_eq!(seg("a b/c?"), "a%20b%2Fc%3F");
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let mut cfg = ClientConfig::new("https://x.org", "t");
        cfg.backoff_base = Duration::from_millis(100);
        cfg.backoff_max = Duration::from_millis(1000);
        let c = Client::new(cfg).expect("client");
        for _ in 0..50 {
            let d1 = c.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d10 = c.backoff(10);
            assert!(d10 >= Duration::from_millis(500) && d10 <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn rate_limit_headers_are_read() {
        let c = client("https://x.org").expect("client");
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        let w = c.rate_limit_wait(&h, 1);
        assert!(w >= Duration::from_secs(2) && w <= Duration::from_millis(2050));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("3"));
        let w = c.rate_limit_wait(&h, 1);
        assert!(w >= Duration::from_secs(3) && w <= Duration::from_millis(3050));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("100000"));
        assert_eq!(c.rate_limit_wait(&h, 1), Duration::from_secs(60));
    }

    #[test]
    fn error_bodies_are_parsed_or_quoted() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            br#"{"id":"app.x","message":"Nope.","request_id":"r1","status_code":404}"#,
        );
        assert_eq!(
            (e.status, e.id.as_str(), e.message.as_str()),
            (404, "app.x", "Nope.")
        );
        let e = api_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad gateway</html>",
        );
        assert_eq!(e.id, "");
        assert!(e.message.contains("bad gateway"));
    }

    #[test]
    fn lookups_by_post_count_as_reads() {
        assert!(super::is_read(&Method::GET, "/channels/x/members?page=0"));
        assert!(super::is_read(&Method::POST, "/users/ids"));
        assert!(super::is_read(&Method::POST, "/users/usernames"));
        assert!(super::is_read(&Method::POST, "/channels/x/members/ids"));
        assert!(!super::is_read(&Method::POST, "/channels/x/members"));
        assert!(!super::is_read(
            &Method::POST,
            "/teams/x/members/batch?graceful=true"
        ));
        assert!(!super::is_read(
            &Method::PUT,
            "/channels/x/members/y/schemeRoles"
        ));
        assert!(!super::is_read(&Method::DELETE, "/channels/x/members/y"));
    }
}
