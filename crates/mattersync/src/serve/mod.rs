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

async fn serve(cfg: Config, args: ServeArgs, dispatch: tracing::Dispatch) -> Result<u8> {
    let settings = settings(&cfg, &args)?;
    let ldap = engine::ldap_config(&cfg)?;
    ldap.validate().context("directory configuration")?;
    let lock = Arc::new(engine::run_lock(&cfg)?.map_err(|e| {
        crate::fail(
            crate::exit::LOCKED,
            anyhow::Error::new(e).context("mattersync serve runs one instance per ledger"),
        )
    })?);
    let ledger = engine::open_ledger(&cfg, Some(&lock))?;
    let http_ledger = engine::open_ledger(&cfg, None)?;
    let mm = engine::mattermost_client(&cfg)?;
    let cursor = watch::Watcher::cursor_name(&ldap);
    let cookie = ledger
        .cursor(&cursor)
        .context("ledger: reading the cursor")?;

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

    let (req_tx, req_rx) = mpsc::channel(1024);
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
    });
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
        resume_cookie = cookie.is_some(),
        "mattersync serve starting"
    );

    let worker = worker::Worker::new(
        Arc::clone(&shared),
        Arc::clone(&lock),
        ledger,
        ldap.clone(),
        req_rx,
        stop_rx.clone(),
        cursor,
        cookie.clone(),
    );
    let mut worker_task = tokio::spawn(worker.run().with_current_subscriber());
    // WatchdogSec=: WATCHDOG=1 at half the interval while the worker task lives (a worker
    // that died ends the process anyway; readiness is /readyz's business).
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
    let watcher_task = if shared.source_active() {
        let w = watch::Watcher::new(Arc::clone(&shared), ldap, req_tx, stop_rx.clone(), cookie)
            .context("directory change source")?;
        Some(tokio::spawn(w.run().with_current_subscriber()))
    } else {
        drop(req_tx);
        None
    };
    let mut http_stop = stop_rx.clone();
    let shutdown = async move {
        while !*http_stop.borrow() {
            if http_stop.changed().await.is_err() {
                break;
            }
        }
    };
    let mut http_task = tokio::spawn(
        http::serve(listener, Arc::clone(&shared), dispatch, shutdown).with_current_subscriber(),
    );

    let mut code = crate::exit::OK;
    let why = tokio::select! {
        s = signal() => s,
        _ = &mut worker_task => {
            code = crate::exit::ERROR;
            "the sync worker ended unexpectedly"
        }
        r = &mut http_task => {
            code = crate::exit::ERROR;
            match r {
                Ok(Err(e)) => warn!(error = %e, "HTTP server failed"),
                _ => warn!("HTTP server ended"),
            }
            "the HTTP server ended"
        }
    };
    info!(
        why,
        "stopping: the action in flight finishes, then the cursor is saved"
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    if !worker_task.is_finished() {
        if let Err(e) = (&mut worker_task).await {
            warn!(error = %e, "the sync worker did not stop cleanly");
        }
    }
    if let Some(t) = watcher_task {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    if !http_task.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(10), http_task).await;
    }
    info!("mattersync serve stopped");
    Ok(code)
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
