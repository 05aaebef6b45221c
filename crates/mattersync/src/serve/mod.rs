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
use mattersync_ledger::{Ledger, RunLock};
use state::{ChangeSource, Settings, Shared, Status};
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

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on, overriding serve.listen (port 0: any free port; the address is
    /// printed on stdout).
    #[arg(long)]
    listen: Option<String>,
    /// Where directory changes come from: auto (syncrepl when the server offers it, else
    /// polling), syncrepl, poll, or off (periodic full reconcile only).
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        env = "MATTERSYNC_SERVE_CHANGES"
    )]
    changes: ChangeSource,
    /// Changes that arrive within this many milliseconds of each other are synced together.
    #[arg(long, default_value_t = 100)]
    debounce_ms: u64,
    /// Polling: how often to ask for entries with a newer modifyTimestamp.
    #[arg(long, default_value = "5s")]
    poll_interval: String,
    /// Polling: how often to compare a full listing (catches deletions).
    #[arg(long, default_value = "60s")]
    poll_listing: String,
    /// Log format on stderr (the level comes from --log / MATTERSYNC_LOG, default info).
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "MATTERSYNC_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// HTTP: a client must send a request's headers within this long (from connecting, or
    /// from the previous response: it is also the idle keep-alive timeout).
    #[arg(long, default_value = "10s")]
    http_header_timeout: String,
    /// HTTP: a request's body must arrive within this long.
    #[arg(long, default_value = "30s")]
    http_body_timeout: String,
    /// HTTP: open connections at most (more wait to be accepted).
    #[arg(long, default_value_t = 256)]
    http_max_connections: usize,
    /// HTTP: request body bytes at most, on every route.
    #[arg(long, default_value_t = 64 * 1024)]
    http_max_body: usize,
}

pub async fn run(cfg: Config, args: ServeArgs) -> Result<u8> {
    let dispatch = log_dispatch(args.log_format);
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
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => tracing::Dispatch::new(builder.json().flatten_event(true).finish()),
        LogFormat::Text => tracing::Dispatch::new(builder.finish()),
    }
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
        changes: args.changes,
        debounce: Duration::from_millis(args.debounce_ms),
        poll_interval: positive("--poll-interval", &args.poll_interval)?,
        poll_listing: positive("--poll-listing", &args.poll_listing)?,
        heartbeat: Duration::from_secs(30),
        api_token,
        http: http::Limits {
            header_timeout: positive("--http-header-timeout", &args.http_header_timeout)?,
            body_timeout: positive("--http-body-timeout", &args.http_body_timeout)?,
            max_connections: args.http_max_connections.max(1),
            max_body: args.http_max_body,
        },
    })
}

async fn serve(cfg: Config, args: ServeArgs, dispatch: tracing::Dispatch) -> Result<u8> {
    let settings = settings(&cfg, &args)?;
    let ldap = engine::ldap_config(&cfg)?;
    ldap.validate().context("directory configuration")?;
    let lock = Arc::new(RunLock::acquire(&cfg.ledger.path).map_err(|e| {
        crate::fail(
            crate::exit::LOCKED,
            anyhow::Error::new(e).context("mattersync serve runs one instance per ledger"),
        )
    })?);
    let ledger = Ledger::open(&cfg.ledger.path).context("opening the ledger")?;
    let http_ledger = Ledger::open(&cfg.ledger.path).context("opening the ledger")?;
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
    });
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
    fn the_systemd_unit_starts_serve_with_arguments_the_cli_takes() {
        let unit = include_str!("../../../../packaging/mattersync.service");
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart");
        let cli = crate::Cli::try_parse_from(exec.split_whitespace()).expect("parses");
        match cli.command {
            crate::Command::Serve(a) => assert_eq!(a.log_format, LogFormat::Json),
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
