//! Running the real `mattersync serve` binary in tests: start it on a free port, read where
//! it listens, talk HTTP to it, read its metrics, stop it with SIGTERM.

#![allow(dead_code)]

pub mod slash;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for a directory change to show in Mattermost (the real figure, tens of
/// milliseconds plus the debounce, belongs to the benchmark).
pub const PROPAGATION: Duration = Duration::from_secs(30);
/// Bound for the service to start, connect and finish its first full reconcile.
pub const READY: Duration = Duration::from_secs(90);

pub const API_TOKEN: &str = "test-api-token-0123456789";

/// A running `mattersync serve`. Killed on drop if still running.
pub struct Service {
    child: Child,
    pub base: String,
    pub log: PathBuf,
    http: reqwest::Client,
}

/// Writes a secret file readable by its owner only.
pub fn secret_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, value).expect("write secret");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// The `[serve]` section tests use: any free port, the API token from a file.
pub fn serve_section(dir: &Path, extra: &str) -> String {
    let token = secret_file(dir, "api.token", API_TOKEN);
    format!(
        "[serve]\nlisten = \"127.0.0.1:0\"\napi_token_file = \"{}\"\n{extra}\n",
        token.display()
    )
}

impl Service {
    /// Starts `mattersync --config <config> serve <args>` and waits until it says where it
    /// listens and `/healthz` answers.
    pub async fn start(config: &Path, args: &[&str], log_name: &str) -> Service {
        Self::start_env(config, args, log_name, &[]).await
    }

    /// As [`Service::start`], with extra environment variables.
    pub async fn start_env(
        config: &Path,
        args: &[&str],
        log_name: &str,
        env: &[(&str, &str)],
    ) -> Service {
        let dir = config.parent().unwrap_or(Path::new("."));
        let log = dir.join(log_name);
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_mattersync"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .args(args)
            .env_remove("MATTERSYNC_CONFIG")
            .env("MATTERSYNC_LOG", "info,mattersync=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn mattersync serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("mattersync serve: listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mattersync serve did not say where it listens; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let s = Service {
            child,
            base,
            log,
            // Idle connections are dropped well before the service's 10 s idle timeout: a
            // request on a connection the service is closing at that moment fails (a test
            // that waits 10 s between two scrapes met exactly that race).
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .pool_idle_timeout(Duration::from_secs(4))
                .build()
                .expect("http client"),
        };
        let healthy = wait_until(Duration::from_secs(30), || async {
            s.get("/healthz").await.0 == 200
        })
        .await;
        assert!(healthy, "/healthz never answered; log:\n{}", s.logs());
        s
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// A request, with the API token when `token` is given.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> (u16, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&self) {
        let ready = wait_until(READY, || async { self.get("/readyz").await.0 == 200 }).await;
        assert!(
            ready,
            "not ready within {READY:?}: {}\nlog:\n{}",
            self.get("/readyz").await.1,
            self.logs()
        );
    }

    pub async fn metrics(&self) -> Metrics {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        Metrics::parse(&text)
    }

    /// Waits until a scrape satisfies `cond` (a cycle records its metrics just after its
    /// last API call, so what a test sees in Mattermost may be a moment ahead of them).
    pub async fn wait_metrics(&self, what: &str, cond: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + PROPAGATION;
        loop {
            let m = self.metrics().await;
            if cond(&m) {
                return m;
            }
            if Instant::now() > deadline {
                panic!("metrics never showed {what}: {m:?}\nlog:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "serve did not stop within 60 s of SIGTERM; log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `cond` every 100 ms until it holds or `bound` passes.
pub async fn wait_until<F, Fut>(bound: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A scrape: `name{labels}` → value.
#[derive(Debug, Clone)]
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        Metrics(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .filter_map(|l| {
                    let (k, v) = l.rsplit_once(' ')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect(),
        )
    }

    /// A sample's value; 0 when the series does not exist (yet).
    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// Sum over every series of a family whose labels contain all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                let (n, rest) = k.split_once('{').unwrap_or((k.as_str(), ""));
                n == name
                    && labels
                        .iter()
                        .all(|(l, v)| rest.contains(&format!("{l}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// The ledger's cursor name for the syncrepl cookie (see `serve/watch.rs`).
pub fn cursor_name(ldap_uri: &str, bind_dn: &str, base_dn: &str) -> String {
    format!("syncrepl {ldap_uri} {bind_dn} cn=accounts,{base_dn} (objectClass=*)")
}
