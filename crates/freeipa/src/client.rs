//! The session and the one place that sends JSON-RPC calls.

use crate::config::IpaConfig;
use crate::error::IpaError;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, REFERER, USER_AGENT};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tracing::debug;

/// A FreeIPA JSON-RPC client with a session cookie. It logs in on the first call and again
/// once when the server says the session expired (HTTP 401).
pub struct IpaClient {
    http: reqwest::Client,
    /// `https://host[:port]`, no trailing slash.
    base: String,
    user: String,
    password: crate::Secret,
    api_version: Option<String>,
    logged_in: AtomicBool,
    next_id: AtomicU64,
}

impl std::fmt::Debug for IpaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpaClient")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `user=<u>&password=<p>` for the login form (`application/x-www-form-urlencoded`).
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, s) in [k, v].into_iter().enumerate() {
            if j > 0 {
                out.push('=');
            }
            for b in s.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                        out.push(char::from(b))
                    }
                    b' ' => out.push('+'),
                    _ => out.push_str(&format!("%{b:02X}")),
                }
            }
        }
    }
    out
}

impl IpaClient {
    /// Builds a client (no network traffic yet). HTTPS certificates are verified; plain
    /// `http://` is refused unless the host is a loopback address (the password would cross
    /// the network in the clear).
    pub fn new(cfg: IpaConfig) -> Result<IpaClient, IpaError> {
        let trimmed = cfg.url.trim().trim_end_matches('/');
        let trimmed = trimmed.strip_suffix("/ipa").unwrap_or(trimmed);
        let url = reqwest::Url::parse(trimmed)
            .map_err(|e| IpaError::Config(format!("url {trimmed:?}: {e}")))?;
        let host = url.host_str().unwrap_or_default().to_string();
        if host.is_empty() {
            return Err(IpaError::Config(format!("url {trimmed:?} has no host")));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(IpaError::Config(format!(
                    "url {trimmed:?}: plain http would send the password unencrypted; use https://"
                )))
            }
            other => {
                return Err(IpaError::Config(format!(
                    "url {trimmed:?}: scheme {other:?} is not https"
                )))
            }
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(IpaError::Config(format!(
                "url {trimmed:?}: give the server only, e.g. https://ipa.example.org"
            )));
        }
        if cfg.user.trim().is_empty() {
            return Err(IpaError::Config("user is empty".into()));
        }
        if cfg.password.expose().is_empty() {
            return Err(IpaError::Config("the password is empty".into()));
        }
        let base = trimmed.to_string();
        let mut headers = HeaderMap::new();
        let referer = HeaderValue::from_str(&format!("{base}/ipa"))
            .map_err(|_| IpaError::Config(format!("url {base:?} is not a valid header value")))?;
        headers.insert(REFERER, referer);
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("mattersync/", env!("CARGO_PKG_VERSION"))),
        );
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .cookie_store(true)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(std::time::Duration::from_secs(10)))
            // A redirect would turn the POST into a GET, or send the password elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| IpaError::Config(format!("ca_file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                IpaError::Config(format!(
                    "ca_file {}: not PEM certificates: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(IpaError::Config(format!(
                    "ca_file {}: no certificate found",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| IpaError::Config(format!("HTTP client: {e}")))?;
        Ok(IpaClient {
            http,
            base,
            user: cfg.user,
            password: cfg.password,
            api_version: cfg.api_version,
            logged_in: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
        })
    }

    /// The server, e.g. `https://ipa.rockylinux.org`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /ipa/session/login_password` with the account's password; the session cookie
    /// it sets is kept for the following calls.
    pub async fn login(&self) -> Result<(), IpaError> {
        let url = format!("{}/ipa/session/login_password", self.base);
        let body = form_encode(&[("user", &self.user), ("password", self.password.expose())]);
        let resp = self
            .http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(ACCEPT, "text/plain")
            .body(body)
            .send()
            .await
            .map_err(|e| IpaError::Transport {
                what: "login".into(),
                url: url.clone(),
                maybe_done: false,
                source: e.without_url(),
            })?;
        let status = resp.status().as_u16();
        if status != 200 {
            let reason = resp
                .headers()
                .get("x-ipa-rejection-reason")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let hint = match reason.as_deref() {
                Some("invalid-password") => {
                    "; check directory.freeipa.user and the password (password_file or MATTERSYNC_IPA_PASSWORD)"
                }
                Some("password-expired") => "; the account's password expired: set a new one in FreeIPA",
                Some("krbprincipal-expired") => "; the account expired in FreeIPA",
                Some("denied") => "; the account may not log in (locked or disabled?)",
                _ if status == 404 => "; is directory.freeipa.url a FreeIPA server?",
                _ => "",
            };
            return Err(IpaError::Login {
                user: self.user.clone(),
                status,
                reason,
                hint,
            });
        }
        self.logged_in.store(true, Ordering::SeqCst);
        debug!(server = %self.base, user = %self.user, "logged in to FreeIPA");
        Ok(())
    }

    /// Calls `method` (e.g. `group_add`) with positional `args` and `options`, logging in
    /// first if needed and once more if the session expired. Returns the `result` member of
    /// the answer; an error object becomes [`IpaError::Api`].
    pub async fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        mut options: Map<String, Value>,
    ) -> Result<Value, IpaError> {
        if let Some(v) = &self.api_version {
            options.insert("version".into(), Value::String(v.clone()));
        }
        let body = json!({
            "method": format!("{method}/1"),
            "params": [args, options],
            "id": self.next_id.fetch_add(1, Ordering::SeqCst),
        });
        if !self.logged_in.load(Ordering::SeqCst) {
            self.login().await?;
        }
        let mut relogged = false;
        loop {
            let url = format!("{}/ipa/session/json", self.base);
            let resp = self
                .http
                .post(&url)
                .header(ACCEPT, "application/json")
                .json(&body)
                .send()
                .await
                .map_err(|e| IpaError::Transport {
                    what: method.to_string(),
                    url: url.clone(),
                    // Only a failed connect certainly never reached the server.
                    maybe_done: !e.is_connect(),
                    source: e.without_url(),
                })?;
            let status = resp.status().as_u16();
            if status == 401 && !relogged {
                // The session expired before the call ran: log in again and send it again.
                debug!(method, "FreeIPA session expired; logging in again");
                self.logged_in.store(false, Ordering::SeqCst);
                self.login().await?;
                relogged = true;
                continue;
            }
            let bytes = resp.bytes().await.map_err(|e| IpaError::Transport {
                what: method.to_string(),
                url: url.clone(),
                maybe_done: true,
                source: e.without_url(),
            })?;
            if status != 200 {
                let text = String::from_utf8_lossy(&bytes);
                let text: String = text.trim().chars().take(200).collect();
                return Err(IpaError::Status {
                    method: method.to_string(),
                    status,
                    detail: if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {text}")
                    },
                });
            }
            return decode_answer(method, &bytes);
        }
    }
}

/// The `result` of a JSON-RPC answer, or its `error` as [`IpaError::Api`].
fn decode_answer(method: &str, bytes: &[u8]) -> Result<Value, IpaError> {
    let decode = |detail: String| IpaError::Decode {
        method: method.to_string(),
        detail,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| decode(format!("not JSON: {e}")))?;
    let Value::Object(mut answer) = v else {
        return Err(decode("not a JSON object".into()));
    };
    match answer.remove("error") {
        None | Some(Value::Null) => {}
        Some(Value::Object(err)) => {
            let code = err
                .get("code")
                .and_then(Value::as_i64)
                .ok_or_else(|| decode("the error object has no numeric code".into()))?;
            let text = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            return Err(IpaError::Api {
                method: method.to_string(),
                code,
                name: text("name"),
                message: text("message"),
            });
        }
        Some(other) => return Err(decode(format!("error is not an object: {other}"))),
    }
    let result = answer
        .remove("result")
        .filter(|r| !r.is_null())
        .ok_or_else(|| decode("neither result nor error".into()))?;
    if let Some(messages) = result.get("messages").and_then(Value::as_array) {
        for m in messages {
            debug!(method, message = %m, "FreeIPA message");
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn cfg(url: &str) -> IpaConfig {
        IpaConfig::new(url, "mattersync-admin", Secret::new("hunter2-secret"))
    }

    #[test]
    fn urls_are_normalized_and_plain_http_is_only_for_loopback() {
        let c = IpaClient::new(cfg("https://ipa.example.org/ipa/")).expect("valid");
        assert_eq!(c.base_url(), "https://ipa.example.org");
        assert!(IpaClient::new(cfg("http://127.0.0.1:8080")).is_ok());
        let e = IpaClient::new(cfg("http://ipa.example.org")).expect_err("plain http");
        assert!(e.to_string().contains("unencrypted"), "{e}");
        let e = IpaClient::new(cfg("ldaps://ipa.example.org")).expect_err("scheme");
        assert!(e.to_string().contains("not https"), "{e}");
        let e = IpaClient::new(cfg("https://ipa.example.org/ipa/session/json")).expect_err("path");
        assert!(e.to_string().contains("server only"), "{e}");
        let mut empty = cfg("https://ipa.example.org");
        empty.password = Secret::new("");
        assert!(IpaClient::new(empty).is_err());
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let c = IpaClient::new(cfg("https://ipa.example.org")).expect("valid");
        let dbg = format!("{c:?} {:?}", cfg("https://x"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
    }

    #[test]
    fn the_login_form_is_url_encoded() {
        assert_eq!(
            form_encode(&[("user", "admin"), ("password", "p@ss w&rd=1%")]),
            "user=admin&password=p%40ss+w%26rd%3D1%25"
        );
    }

    #[test]
    fn answers_decode_to_result_or_error() {
        let ok = decode_answer(
            "group_show",
            br#"{"result":{"value":"x"},"error":null,"id":0}"#,
        )
        .expect("result");
        assert_eq!(ok["value"], "x");
        let err = decode_answer(
            "group_show",
            br#"{"result":null,"error":{"code":4001,"message":"x: group not found","data":{},"name":"NotFound"},"id":0}"#,
        )
        .expect_err("error");
        assert!(err.is_not_found(), "{err}");
        assert_eq!(
            err.to_string(),
            "FreeIPA group_show: x: group not found (NotFound 4001)"
        );
        for bad in [
            &b"<html>"[..],
            b"[]",
            br#"{"id":0}"#,
            br#"{"error":"boom"}"#,
        ] {
            let e = decode_answer("m", bad).expect_err("malformed");
            assert!(matches!(e, IpaError::Decode { .. }), "{e}");
            assert!(e.outcome_unknown());
        }
    }
}
