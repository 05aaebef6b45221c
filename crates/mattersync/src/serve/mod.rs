//! `mattersync serve`: the long-running form of the sync engine.
//!
//! Three parts share one [`state::Shared`]:
//! - the **watcher** ([`watch`]) follows the directory (syncrepl, or polling) and tells the
//!   worker that something changed;
//! - the **worker** ([`worker`]) runs one cycle at a time: a fresh fail-closed directory read,
//!   the links that read makes necessary ([`scope`]), a pure plan, the apply; plus a periodic
//!   full reconcile;
//! - the **HTTP side** ([`http`]): health, readiness, metrics ([`metrics`]), the status page
//!   ([`page`]), the slash command ([`slash`]), a sync trigger and a plan preview.
//!
//! One instance per ledger (the run lock is held for the life of the process). SIGTERM or
//! SIGINT: the action in flight finishes, the cursor is saved, the process exits 0.

mod alerts;
mod dialog;
mod escape;
mod http;
mod metrics;
mod page;
mod permission;

mod slash;
mod state;
mod watch;
mod worker;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mattersync_engine as engine;
use mattersync_engine::config::{self, Config};
use state::{ChangeSource, Settings, Shared, Status};
use std::io::IsTerminal as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch as tokio_watch};
use tracing::instrument::WithSubscriber;
use tracing::{info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every flag overrides its `[serve]` key (docs/config.md has the defaults).
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on, overriding serve.listen (port 0: any free port; the address is
    /// printed on stdout).
    #[arg(long)]
    listen: Option<String>,
    /// Where directory changes come from: auto (syncrepl when the server offers it, else
    /// polling), syncrepl, poll, or off (periodic full reconcile only); serve.changes.
    #[arg(long, value_enum, env = "MATTERSYNC_SERVE_CHANGES")]
    changes: Option<ChangeSource>,
    /// Changes that arrive within this many milliseconds of each other are synced
    /// together; serve.debounce.
    #[arg(long)]
    debounce_ms: Option<u64>,
    /// Polling: how often to ask for entries with a newer modifyTimestamp;
    /// serve.poll_interval.
    #[arg(long)]
    poll_interval: Option<String>,
    /// Polling: how often to compare a full listing (catches deletions); serve.poll_listing.
    #[arg(long)]
    poll_listing: Option<String>,
    /// Log format on stderr (the level comes from --log / MATTERSYNC_LOG, default info);
    /// serve.log_format.
    #[arg(long, value_enum, env = "MATTERSYNC_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// HTTP: a client must send a request's headers within this long (from connecting, or
    /// from the previous response: it is also the idle keep-alive timeout);
    /// serve.http_header_timeout.
    #[arg(long)]
    http_header_timeout: Option<String>,
    /// HTTP: a request's body must arrive within this long; serve.http_body_timeout.
    #[arg(long)]
    http_body_timeout: Option<String>,
    /// HTTP: open connections at most (more wait to be accepted);
    /// serve.http_max_connections.
    #[arg(long)]
    http_max_connections: Option<usize>,
    /// HTTP: request body bytes at most, on every route; serve.http_max_body.
    #[arg(long)]
    http_max_body: Option<usize>,
}

impl ServeArgs {
    /// The log format: the flag (or MATTERSYNC_LOG_FORMAT), else serve.log_format.
    fn log_format(&self, cfg: &Config) -> LogFormat {
        self.log_format
            .unwrap_or(if cfg.serve.log_format == "json" {
                LogFormat::Json
            } else {
                LogFormat::Text
            })
    }
}

pub async fn run(cfg: Config, args: ServeArgs) -> Result<u8> {
    let dispatch = log_dispatch(args.log_format(&cfg));
    serve(cfg, args, dispatch.clone())
        .with_subscriber(dispatch)
        .await
}

/// The service logs what it does: `info` unless `--log` or `MATTERSYNC_LOG` say otherwise.
/// (The CLI's global subscriber defaults to `warn` and plain text; the service's tasks run
/// with this one instead.)
fn log_dispatch(format: LogFormat) -> tracing::Dispatch {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--log=")
            .map(str::to_string)
            .or_else(|| (a == "--log").then(|| args.get(i + 1).cloned()).flatten())
    });
    let filter = from_args
        .or_else(|| std::env::var("MATTERSYNC_LOG").ok())
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "info".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    log_to(format, filter, std::io::stderr)
}

/// The service's log subscriber, writing to `writer`. Text lines show values from outside
/// through [`escape::Clean`]; the JSON format escapes by itself.
fn log_to<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> tracing::Dispatch
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_ansi(crate::colour(std::io::stderr().is_terminal()))
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => tracing::Dispatch::new(builder.json().flatten_event(true).finish()),
        LogFormat::Text => tracing::Dispatch::new(builder.finish()),
    }
}

/// For `check`: the settings as `serve` would take them (its flags at their defaults, the
/// environment applied), or why it would refuse to start.
pub fn validate(cfg: &Config) -> Result<String> {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        args: ServeArgs,
    }
    let d = <Defaults as clap::Parser>::try_parse_from(["serve"])?;
    let s = settings(cfg, &d.args)?;
    Ok(format!(
        "listen {}, full reconcile every {}s, guard window {}s, changes {}, API token {}",
        s.listen,
        s.full_reconcile.as_secs(),
        s.guard_window.as_secs(),
        format!("{:?}", s.changes).to_lowercase(),
        if s.api_token.is_some() {
            "set"
        } else {
            "not set (POST /sync and GET /plan answer 403)"
        }
    ))
}

fn settings(cfg: &Config, args: &ServeArgs) -> Result<Settings> {
    let positive = |what: &str, s: &str| -> Result<Duration> {
        let d = config::humantime(s).with_context(|| what.to_string())?;
        anyhow::ensure!(!d.is_zero(), "{what}: must be at least 1s");
        Ok(d)
    };
    let api_token = config::secret(
        "MATTERSYNC_API_TOKEN",
        cfg.serve.api_token_file.as_deref(),
        "serve.api_token_file",
    )?
    .map(mattersync_mattermost::Secret::new);
    // Fail at startup on an unreadable slash token file; each is read again at every
    // request, so a rotated token needs no restart. A team without a file has no command.
    for (team, file) in cfg.slash_token_files() {
        if file.exists() {
            config::secret(
                "",
                Some(&file),
                &format!("slash command token of team {team}"),
            )?;
        }
    }
    Ok(Settings {
        listen: args
            .listen
            .clone()
            .unwrap_or_else(|| cfg.serve.listen.clone()),
        full_reconcile: positive("serve.full_reconcile", &cfg.serve.full_reconcile)?,
        guard_window: config::humantime(&cfg.serve.guard_window).context("serve.guard_window")?,
        approval_ttl: positive("serve.approval_ttl", &cfg.serve.approval_ttl)?,
        changes: match args.changes {
            Some(c) => c,
            None => <ChangeSource as ValueEnum>::from_str(&cfg.serve.changes, false)
                .map_err(|e| anyhow::anyhow!("serve.changes: {e}"))?,
        },
        debounce: match args.debounce_ms {
            Some(ms) => Duration::from_millis(ms),
            None => config::humantime(&cfg.serve.debounce).context("serve.debounce")?,
        },
        poll_interval: match &args.poll_interval {
            Some(v) => positive("--poll-interval", v)?,
            None => positive("serve.poll_interval", &cfg.serve.poll_interval)?,
        },
        poll_listing: match &args.poll_listing {
            Some(v) => positive("--poll-listing", v)?,
            None => positive("serve.poll_listing", &cfg.serve.poll_listing)?,
        },
        heartbeat: Duration::from_secs(30),
        api_token,
        http: http::Limits {
            header_timeout: match &args.http_header_timeout {
                Some(v) => positive("--http-header-timeout", v)?,
                None => positive("serve.http_header_timeout", &cfg.serve.http_header_timeout)?,
            },
            body_timeout: match &args.http_body_timeout {
                Some(v) => positive("--http-body-timeout", v)?,
                None => positive("serve.http_body_timeout", &cfg.serve.http_body_timeout)?,
            },
            max_connections: args
                .http_max_connections
                .unwrap_or(cfg.serve.http_max_connections)
                .max(1),
            max_body: args.http_max_body.unwrap_or(cfg.serve.http_max_body),
        },
    })
}

/// How often a standby asks for the lead of a shared ledger.
const LEAD_POLL: Duration = Duration::from_secs(1);
/// How often a leader checks that it still holds the lead (each check waits at most
/// `mattersync_ledger::pg::HEARTBEAT_TIMEOUT` for the lock session).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a new leader waits before it writes: longer than a deposed leader takes to
/// notice (one heartbeat plus its timeout) and stop.
const TAKEOVER_GRACE: Duration = Duration::from_secs(4);

/// How a term of this instance's work ended.
enum TermEnd {
    /// Stop the service (a signal, or a task that ended), with this exit code.
    Stop(&'static str, u8),
    /// The lead of the shared ledger was lost: back to standby.
    Lost,
}

async fn serve(cfg: Config, args: ServeArgs, dispatch: tracing::Dispatch) -> Result<u8> {
    let settings = settings(&cfg, &args)?;
    let ldap = engine::ldap_config(&cfg)?;
    ldap.validate().context("directory configuration")?;
    let shared_ledger = engine::ledger_target(&cfg)?;
    // A SQLite ledger has one instance: its lock now, or exit 6. A PostgreSQL ledger may
    // have any number; one leads, the others wait (standby) until it goes.
    let mut first = match &shared_ledger {
        None => Some(engine::run_lock(&cfg)?.map_err(|e| {
            crate::fail(
                crate::exit::LOCKED,
                anyhow::Error::new(e).context(
                    "mattersync serve runs one instance per SQLite ledger (a PostgreSQL ledger, [ledger] url, takes more)",
                ),
            )
        })?),
        Some(_) => None,
    };
    let http_ledger = engine::open_ledger(&cfg, None)?;
    let mm = engine::mattermost_client(&cfg)?;
    // The alerts' buttons are signed with a key derived from the Mattermost token: the
    // same after a restart, and unknown to whoever cannot read the token.
    let alerts_key_source = engine::config::secret(
        "MATTERSYNC_MATTERMOST_TOKEN",
        cfg.mattermost.token_file.as_deref(),
        "mattermost.token_file",
    )?
    .unwrap_or_default();
    let cursor = watch::Watcher::cursor_name(&ldap);

    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    // What the status page and GET /holds tell an approver to call: where it listens.
    let mut settings = settings;
    settings.listen = addr.to_string();
    // The one line on stdout: where to reach the service (port 0 picks one).
    println!("mattersync serve: listening on http://{addr}");
    let _ = std::io::stdout().flush();

    // Requests from the HTTP side go to whichever worker runs now (none on a standby).
    let (req_tx, mut req_rx) = mpsc::channel::<state::Request>(1024);
    let (stop_tx, stop_rx) = tokio_watch::channel(false);
    let mode = match settings.changes {
        ChangeSource::Off => "off",
        ChangeSource::Poll => "poll",
        ChangeSource::Syncrepl | ChangeSource::Auto => "syncrepl",
    };
    let shared = Arc::new(Shared {
        cfg,
        status: std::sync::RwLock::new(Status::new(mode)),
        settings,
        metrics: metrics::Metrics::new(),
        requests: req_tx.clone(),
        mm,
        ldap: ldap.clone(),
        ledger: tokio::sync::Mutex::new(http_ledger),
        told_ready: std::sync::atomic::AtomicBool::new(false),
        alerts: alerts::Alerts::new(&alerts_key_source),
    });
    drop(req_tx);
    // Every Mattermost attempt into the metrics (a weak reference: the client lives in
    // `shared`).
    let weak = Arc::downgrade(&shared);
    shared.mm.set_observer(Box::new(move |a| {
        if let Some(s) = weak.upgrade() {
            s.metrics.api_attempt(a);
        }
    }));
    shared.readiness();
    info!(
        %addr,
        changes = ?shared.settings.changes,
        full_reconcile_s = shared.settings.full_reconcile.as_secs(),
        ledger = %engine::ledger_name(&shared.cfg),
        "mattersync serve starting"
    );
    let current: Arc<std::sync::Mutex<Option<mpsc::Sender<state::Request>>>> =
        Arc::new(std::sync::Mutex::new(None));
    {
        let current = Arc::clone(&current);
        tokio::spawn(
            async move {
                while let Some(r) = req_rx.recv().await {
                    let tx = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    match tx {
                        Some(tx) => {
                            let _ = tx.send(r).await;
                        }
                        // Dropped: its answer channel closes, and the caller hears that
                        // this instance does not sync now.
                        None => tracing::debug!("standby: a request to the worker dropped"),
                    }
                }
            }
            .with_current_subscriber(),
        );
    }
    // WatchdogSec=: WATCHDOG=1 at half the interval while the process serves.
    if let Some(interval) = sd_notify::watchdog_enabled() {
        let period = (interval / 2).max(Duration::from_millis(100));
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                    _ = stop.changed() => break,
                }
            }
        });
        info!(period_ms = period.as_millis() as u64, "systemd watchdog on");
    }
    let mut http_stop = stop_rx.clone();
    let shutdown = async move {
        while !*http_stop.borrow() {
            if http_stop.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::spawn(alerts::run(Arc::clone(&shared), stop_rx.clone()).with_current_subscriber());
    let mut http_task = tokio::spawn(
        http::serve(listener, Arc::clone(&shared), dispatch, shutdown).with_current_subscriber(),
    );
    let mut sig = Box::pin(signal());

    let (why, code) = 'terms: loop {
        // The lock: the SQLite one taken above, or the lead of the shared ledger.
        let lock = match first.take() {
            Some(l) => l,
            None => loop {
                let got = tokio::task::block_in_place(|| engine::run_lock(&shared.cfg));
                match got {
                    Ok(Ok(l)) => break l,
                    Ok(Err(mattersync_ledger::LockError::Led {
                        holder,
                        epoch,
                        since,
                        ..
                    })) => shared.with_status(|s| {
                        s.role = state::Role::Standby {
                            leader: holder,
                            epoch,
                            since,
                        }
                    }),
                    Ok(Err(e)) => {
                        warn!(error = %e, "standby: cannot ask the ledger for the lead");
                        shared.with_status(|s| {
                            s.role = state::Role::Standby {
                                leader: "unknown (the ledger does not answer)".into(),
                                epoch: 0,
                                since: "-".into(),
                            }
                        });
                    }
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "standby: cannot ask the ledger for the lead");
                    }
                }
                shared.metrics.leader.set(0);
                shared.readiness();
                if !shared
                    .told_ready
                    .swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    // Under systemd a standby has started, too.
                    let _ = sd_notify::notify(&[
                        sd_notify::NotifyState::Ready,
                        sd_notify::NotifyState::Status("standby"),
                    ]);
                }
                tokio::select! {
                    s = &mut sig => break 'terms (s, crate::exit::OK),
                    r = &mut http_task => break 'terms (http_ended(r), crate::exit::ERROR),
                    _ = tokio::time::sleep(LEAD_POLL) => {}
                }
            },
        };
        let lock = Arc::new(lock);
        let leading = lock.fence().map(|f| f.epoch);
        if let Some(epoch) = leading {
            info!(
                epoch,
                "took the lead of the shared ledger; waiting out the grace period before writing"
            );
            shared.with_status(|s| {
                s.role = state::Role::Leader {
                    epoch,
                    since: state::now_rfc3339(),
                };
                // What this instance knew as a standby is not a leader's state.
                s.reconciled = false;
            });
            tokio::select! {
                s = &mut sig => break 'terms (s, crate::exit::OK),
                _ = tokio::time::sleep(TAKEOVER_GRACE) => {}
            }
        }
        shared.metrics.leader.set(1);
        match run_term(
            &shared,
            &lock,
            &ldap,
            &cursor,
            &current,
            &mut sig,
            &mut http_task,
        )
        .await
        {
            Ok(TermEnd::Stop(why, code)) => break (why, code),
            Ok(TermEnd::Lost) => {}
            Err(e) if leading.is_some() => {
                warn!(error = %format!("{e:#}"), "the term ended with an error; back to standby");
            }
            Err(e) => return Err(e),
        }
        // Lost the lead: no more writes from here; another instance may lead now.
        *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        shared.metrics.leader.set(0);
        drop(lock);
    };
    info!(
        why,
        "stopping: the action in flight finishes, then the cursor is saved"
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    if !http_task.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(10), http_task).await;
    }
    info!("mattersync serve stopped");
    Ok(code)
}

fn http_ended(r: std::result::Result<std::io::Result<()>, tokio::task::JoinError>) -> &'static str {
    match r {
        Ok(Err(e)) => warn!(error = %e, "HTTP server failed"),
        _ => warn!("HTTP server ended"),
    }
    "the HTTP server ended"
}

/// One term of work under `lock`: the worker and the change source run until a signal, a
/// task that ends, or (leading a shared ledger) the lead is lost.
async fn run_term(
    shared: &Arc<Shared>,
    lock: &Arc<mattersync_ledger::RunLock>,
    ldap: &mattersync_directory::LdapConfig,
    cursor: &str,
    current: &Arc<std::sync::Mutex<Option<mpsc::Sender<state::Request>>>>,
    sig: &mut std::pin::Pin<Box<impl std::future::Future<Output = &'static str>>>,
    http_task: &mut tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<TermEnd> {
    let ledger = engine::open_ledger(&shared.cfg, Some(lock))?;
    let cookie = ledger
        .cursor(cursor)
        .context("ledger: reading the cursor")?;
    let (tx, rx) = mpsc::channel(1024);
    *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx.clone());
    let (stop_tx, stop_rx) = tokio_watch::channel(false);
    info!(resume_cookie = cookie.is_some(), "the sync worker starts");
    let worker = worker::Worker::new(
        Arc::clone(shared),
        Arc::clone(lock),
        ledger,
        ldap.clone(),
        rx,
        stop_rx.clone(),
        cursor.to_string(),
        cookie.clone(),
    );
    let mut worker_task = tokio::spawn(worker.run().with_current_subscriber());
    let watcher_task = if shared.source_active() {
        let w = watch::Watcher::new(Arc::clone(shared), ldap.clone(), tx, stop_rx, cookie)
            .context("directory change source")?;
        Some(tokio::spawn(w.run().with_current_subscriber()))
    } else {
        drop(tx);
        None
    };
    // A leader of a shared ledger checks that it still leads; a file lock always holds.
    let heartbeat = {
        let lock = Arc::clone(lock);
        async move {
            if lock.fence().is_none() {
                return std::future::pending::<()>().await;
            }
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let l = Arc::clone(&lock);
                let alive = tokio::task::spawn_blocking(move || l.alive())
                    .await
                    .unwrap_or(false);
                if !alive {
                    return;
                }
            }
        }
    };
    let end = tokio::select! {
        s = sig.as_mut() => TermEnd::Stop(s, crate::exit::OK),
        _ = &mut worker_task => TermEnd::Stop("the sync worker ended unexpectedly", crate::exit::ERROR),
        r = &mut *http_task => TermEnd::Stop(http_ended(r), crate::exit::ERROR),
        _ = heartbeat => TermEnd::Lost,
    };
    match end {
        TermEnd::Lost => {
            // No grace here: the next write is stopped now, not after the action in
            // flight (its intent is in the ledger, and the next leader settles it).
            tracing::error!("lost the lead of the shared ledger (its lock session does not answer): stopping all writes now; back to standby");
            worker_task.abort();
            if let Some(t) = watcher_task {
                t.abort();
            }
        }
        TermEnd::Stop(..) => {
            let _ = stop_tx.send(true);
            if !worker_task.is_finished() {
                if let Err(e) = (&mut worker_task).await {
                    warn!(error = %e, "the sync worker did not stop cleanly");
                }
            }
            if let Some(t) = watcher_task {
                let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
            }
        }
    }
    Ok(end)
}

/// SIGTERM (systemd stop) or SIGINT (Ctrl-C).
async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(e) => {
            warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the service");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_packaged_configuration_is_valid() {
        let text = include_str!("../../../../packaging/config.toml");
        let cfg = config::parse(text, &[]).expect("packaging/config.toml parses");
        assert_eq!(cfg.serve.listen, "127.0.0.1:8787");
        assert_eq!(
            config::humantime(&cfg.serve.full_reconcile).expect("duration"),
            Duration::from_secs(900)
        );
        assert!(cfg.serve.api_token_file.is_some() && cfg.serve.slash_command_token_dir.is_some());
        assert_eq!(
            cfg.slash_token_files()
                .iter()
                .map(|(team, _)| team.as_str())
                .collect::<Vec<_>>(),
            ["resf", "rocky-linux"]
        );
        assert_eq!(cfg.areas.len(), 2);
        assert!(cfg.file_links().expect("links").len() >= 2);
    }

    #[test]
    fn serve_keys_in_the_file_and_flags_override_them() {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: ServeArgs,
        }
        let text = include_str!("../../../../packaging/config.toml").replace(
            "[serve]\n",
            "[serve]\nchanges = \"poll\"\ndebounce = \"250ms\"\npoll_interval = \"2s\"\nlog_format = \"json\"\nhttp_max_body = 1000\nhttp_header_timeout = \"3s\"\n",
        );
        let mut cfg = config::parse(&text, &[]).expect("valid");
        // The packaged token files do not exist here.
        cfg.serve.api_token_file = None;
        cfg.serve.slash_command_token_file = None;
        let none = Wrap::try_parse_from(["serve"]).expect("no flags").args;
        let s = settings(&cfg, &none).expect("settings");
        assert_eq!(s.changes, ChangeSource::Poll);
        assert_eq!(s.debounce, Duration::from_millis(250));
        assert_eq!(s.poll_interval, Duration::from_secs(2));
        assert_eq!(s.poll_listing, Duration::from_secs(60));
        assert_eq!(s.http.max_body, 1000);
        assert_eq!(s.http.header_timeout, Duration::from_secs(3));
        assert_eq!(none.log_format(&cfg), LogFormat::Json);
        let flags = Wrap::try_parse_from([
            "serve",
            "--changes",
            "off",
            "--debounce-ms",
            "5",
            "--http-max-body",
            "10",
            "--log-format",
            "text",
        ])
        .expect("flags")
        .args;
        let s = settings(&cfg, &flags).expect("settings");
        assert_eq!(s.changes, ChangeSource::Off);
        assert_eq!(s.debounce, Duration::from_millis(5));
        assert_eq!(s.http.max_body, 10);
        assert_eq!(
            s.poll_interval,
            Duration::from_secs(2),
            "the file's, no flag"
        );
        assert_eq!(flags.log_format(&cfg), LogFormat::Text);
        // Wrong values are configuration errors, named by key.
        for (bad, key) in [
            ("changes = \"sometimes\"", "serve.changes"),
            ("log_format = \"xml\"", "serve.log_format"),
            ("poll_listing = \"often\"", "serve.poll_listing"),
        ] {
            let text = include_str!("../../../../packaging/config.toml")
                .replace("[serve]\n", &format!("[serve]\n{bad}\n"));
            let e = format!("{:#}", config::parse(&text, &[]).expect_err(bad));
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn the_systemd_unit_starts_serve_with_arguments_the_cli_takes() {
        let unit = include_str!("../../../../packaging/mattersync.service");
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart");
        let cli = crate::Cli::try_parse_from(exec.split_whitespace()).expect("parses");
        match cli.command {
            crate::Command::Serve(a) => assert_eq!(a.log_format, Some(LogFormat::Json)),
            _ => panic!("ExecStart does not run serve: {exec}"),
        }
        assert!(unit.contains("KillSignal=SIGTERM") && unit.contains("RestartPreventExitStatus=6"));
        let nofile: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .and_then(|v| v.parse().ok())
            .expect("LimitNOFILE");
        assert!(nofile as usize > 4 * http::Limits::default().max_connections);
    }
}
