//! `mattersync`: directory (FreeIPA/RAS, LDAP) to Mattermost group sync.

mod check;
mod config_show;
mod group;
mod ledger_cmd;
mod output;
mod progress;
mod report;
mod serve;
mod slash_install;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use mattersync_core::{Admins, Link, LinkSource, Mode, Plan, Readd, Target};
use mattersync_engine::{self as engine, config, Verdict};
use mattersync_ledger::{AuditQuery, Ledger, RunLock};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, as documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const CHANGES_PENDING: u8 = 2;
    pub const STALE_PLAN: u8 = 3;
    pub const GUARD_TRIPPED: u8 = 4;
    pub const PARTIAL: u8 = 5;
    pub const LOCKED: u8 = 6;
    /// `plan --detailed-exitcode`: a link is broken (its group, team or channel is gone,
    /// replaced, or a direct message).
    pub const BROKEN_LINKS: u8 = 8;
}

/// The version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MATTERSYNC_COMMIT"),
    ")"
);

/// Colour (ANSI escapes) only on a terminal, and never with `NO_COLOR` set (no-color.org).
pub fn colour(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A ledger timestamp (RFC 3339, nanoseconds) to the second, in the same form.
pub fn to_second(ts: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(ts, &Rfc3339)
        .ok()
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ts.to_string())
}

#[derive(Parser)]
#[command(
    name = "mattersync",
    version = VERSION,
    about = "Directory groups to Mattermost channels, safely."
)]
struct Cli {
    /// Configuration file (see docs/config.md).
    #[arg(long, global = true, env = "MATTERSYNC_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Machine-readable output: one JSON object on stdout, errors included (docs/schema/).
    #[arg(long, global = true)]
    json: bool,
    /// Log filter (e.g. info, mattersync=debug); logs go to stderr.
    #[arg(long, global = true, env = "MATTERSYNC_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and test connectivity to both sides.
    Check,
    /// Show what a sync would change.
    Plan(PlanArgs),
    /// Make the changes (a fresh plan, or a saved one if it is still current).
    Apply(ApplyArgs),
    /// Recent runs and what the ledger holds.
    Status,
    /// Why a user is (or is not) in a channel.
    Explain {
        /// Username (Mattermost) or uid (directory).
        user: String,
        /// team/channel; all linked channels when omitted.
        channel: Option<String>,
    },
    /// Query the audit trail.
    Audit(AuditArgs),
    /// List links and where each comes from.
    Links,
    /// Link a group to a team or a channel (kept in the ledger).
    Link(LinkArgs),
    /// Remove a link made with `link`.
    Unlink {
        /// The group of the link, e.g. mm_rl_infra.
        group: String,
        /// Its team or team/channel.
        target: String,
    },
    /// The configuration in effect.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create and manage directory groups the way the SOP says.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Run as a service: change-driven sync, periodic reconcile, HTTP API, slash command.
    Serve(serve::ServeArgs),
    /// The ledger itself (moving it to PostgreSQL).
    #[command(subcommand)]
    Ledger(ledger_cmd::LedgerCommand),
    /// The `/mattersync` slash command in Mattermost.
    #[command(subcommand)]
    Slash(slash_install::SlashCommandArgs),
    /// Approve exactly the set a running `serve` holds (POST /approve/<fingerprint>).
    Approve(ApproveArgs),
    /// Print a shell completion script (e.g. `mattersync completions bash > /etc/bash_completion.d/mattersync`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `mattersync man > /usr/share/man/man1/mattersync.1`.
    Man,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Every key with its effective value and source (file, environment, default), the
    /// links resolved, secrets by source only.
    Show,
}

#[derive(Args)]
struct ApproveArgs {
    /// The held set's fingerprint (the status page, GET /holds).
    fingerprint: String,
    /// The service's address (default: http:// + serve.listen).
    #[arg(long)]
    url: Option<String>,
}

#[derive(Args)]
struct PlanArgs {
    /// Save the plan for a later `apply`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit 2 when the plan has changes, 0 when it has none.
    #[arg(long)]
    detailed_exitcode: bool,
}

#[derive(Args)]
struct ApplyArgs {
    /// A plan saved with `plan --out`; refused if the state changed since.
    plan: Option<PathBuf>,
    /// Do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Apply even though a guard (mass removal or mass addition) tripped.
    #[arg(long, alias = "allow-mass-change", conflicts_with = "approve")]
    allow_mass_removal: bool,
    /// Apply a plan a guard holds only if it is exactly the one reviewed: the held-plan
    /// fingerprint that `plan` or the refused `apply` printed.
    #[arg(long, value_name = "FINGERPRINT")]
    approve: Option<String>,
}

#[derive(Args)]
struct AuditArgs {
    /// Only events about this user (directory uid or Mattermost username).
    #[arg(long)]
    user: Option<String>,
    /// Only events in this team, or team/channel.
    #[arg(long)]
    scope: Option<String>,
    /// Only events of this run (the run_id of apply, status or --json output).
    #[arg(long)]
    run: Option<String>,
    /// Only changes that failed.
    #[arg(long)]
    failed: bool,
    /// At most this many events, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

#[derive(Args)]
struct LinkArgs {
    /// A group that fits the naming template, e.g. mm_rl_infra.
    group: String,
    /// team or team/channel
    target: String,
    /// add (only adds), sync (also removes whom mattersync added once they leave the
    /// group) or exclusive (also removes everyone else); default: defaults.mode.
    #[arg(long)]
    mode: Option<Mode>,
    /// none, managers (the group's managers become channel admins) or group:NAME;
    /// default: defaults.admins.
    #[arg(long)]
    admins: Option<Admins>,
    /// never (who left on their own stays out) or always; default: defaults.readd.
    #[arg(long)]
    readd: Option<Readd>,
    /// Create the channel in Mattermost first if it does not exist (team/channel only).
    #[arg(long)]
    create_channel: bool,
    /// With --create-channel: make it a private channel.
    #[arg(long, requires = "create_channel")]
    private: bool,
}

/// An error with its exit code.
#[derive(Debug)]
struct Exit(u8, anyhow::Error);

/// A configuration that cannot be used (the `config` error code).
#[derive(Debug)]
struct ConfigError(anyhow::Error);

impl ConfigError {
    fn wrap(e: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(ConfigError(e))
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}
impl std::error::Error for ConfigError {}

/// The machine-readable code of a command's failure, for `--json`: what the exit code says,
/// or for a plain error (exit 1) which side failed.
fn error_code(e: &anyhow::Error, code: u8) -> &'static str {
    match code {
        exit::STALE_PLAN => return "stale_plan",
        exit::GUARD_TRIPPED => return "guard_tripped",
        exit::PARTIAL => return "partial",
        exit::LOCKED => return "locked",
        _ => {}
    }
    for cause in e.chain() {
        if cause.downcast_ref::<ConfigError>().is_some() {
            return "config";
        }
        if let Some(m) = cause.downcast_ref::<mattersync_mattermost::MmError>() {
            return match m.status() {
                Some(401) => "mattermost_unauthorized",
                Some(403) => "mattermost_forbidden",
                _ => "mattermost",
            };
        }
        if cause
            .downcast_ref::<mattersync_directory::DirectoryError>()
            .is_some()
        {
            return "directory";
        }
        if cause
            .downcast_ref::<mattersync_ledger::LedgerError>()
            .is_some()
        {
            return "ledger";
        }
    }
    "error"
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.1)
    }
}
impl std::error::Error for Exit {}

fn fail(code: u8, e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Exit(code, e))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json
        && !matches!(
            cli.command,
            Command::Serve(_) | Command::Completions { .. } | Command::Man
        );
    let command = cli.command.name();
    tracing_subscriber::fmt()
        .with_ansi(colour(std::io::stderr().is_terminal()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let (code, error) = match rt.block_on(run(cli)) {
        Ok(code) => (code, None),
        Err(e) => {
            let code = e.downcast_ref::<Exit>().map(|x| x.0).unwrap_or(exit::ERROR);
            eprintln!("error: {e:#}");
            let message = report::Message {
                code: error_code(&e, code).to_string(),
                message: format!("{e:#}"),
            };
            (code, Some(message))
        }
    };
    if json {
        use std::io::Write as _;
        let text = serde_json::to_string_pretty(&report::envelope(command, code, error))
            .unwrap_or_default();
        // A closed stdout (`| head`) is not worth a panic.
        let _ = writeln!(std::io::stdout(), "{text}");
    }
    ExitCode::from(code)
}

impl Command {
    /// The name in the JSON envelope (`command`).
    fn name(&self) -> &'static str {
        match self {
            Command::Check => "check",
            Command::Plan(_) => "plan",
            Command::Apply(_) => "apply",
            Command::Status => "status",
            Command::Explain { .. } => "explain",
            Command::Audit(_) => "audit",
            Command::Links => "links",
            Command::Link(_) => "link",
            Command::Unlink { .. } => "unlink",
            Command::Config(ConfigCommand::Show) => "config show",
            Command::Group(g) => g.name(),
            Command::Serve(_) => "serve",
            Command::Ledger(_) => "ledger migrate",
            Command::Slash(_) => "slash install",
            Command::Approve(_) => "approve",
            Command::Completions { .. } => "completions",
            Command::Man => "man",
        }
    }
}

async fn run(cli: Cli) -> Result<u8> {
    match &cli.command {
        Command::Check => return check_cmd(&cli.config, cli.json).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "mattersync", &mut std::io::stdout());
            return Ok(exit::OK);
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            return Ok(exit::OK);
        }
        _ => {}
    }
    let cfg = config::load(&cli.config).map_err(ConfigError::wrap)?;
    match cli.command {
        Command::Check => check_cmd(&cli.config, cli.json).await,
        Command::Plan(a) => plan_cmd(&cfg, cli.json, a).await,
        Command::Apply(a) => apply_cmd(&cfg, cli.json, a).await,
        Command::Status => status(&cfg, cli.json),
        Command::Explain { user, channel } => {
            explain(&cfg, cli.json, &user, channel.as_deref()).await
        }
        Command::Audit(a) => audit(&cfg, cli.json, a),
        Command::Links => links(&cfg, cli.json).await,
        Command::Link(a) => link(&cfg, cli.json, a).await,
        Command::Unlink { group, target } => unlink(&cfg, cli.json, &group, &target),
        Command::Config(ConfigCommand::Show) => config_show::run(&cli.config, &cfg, cli.json).await,
        Command::Group(g) => group::run(&cfg, cli.json, g).await,
        Command::Serve(a) => serve::run(cfg, a).await,
        Command::Ledger(c) => ledger_cmd::run(&cfg, cli.json, c),
        Command::Slash(a) => slash_install::run(&cfg, cli.json, a).await,
        Command::Completions { .. } | Command::Man => Ok(exit::OK),
        Command::Approve(a) => approve(&cfg, cli.json, a).await,
    }
}

fn open_ledger(cfg: &config::Config) -> Result<Ledger> {
    engine::open_ledger(cfg, None)
}

/// For commands that only read: the ledger is never written.
fn read_ledger(cfg: &config::Config) -> Result<Ledger> {
    engine::open_ledger_read_only(cfg)
}

fn lock(cfg: &config::Config) -> Result<RunLock> {
    engine::run_lock(cfg)?.map_err(|e| fail(exit::LOCKED, e.into()))
}

async fn check_cmd(path: &std::path::Path, json: bool) -> Result<u8> {
    let list = check::run(path).await;
    if json {
        report::data("items", serde_json::to_value(&list)?);
    } else {
        print!("{}", list.text(true));
    }
    if list.failed() == 0 {
        return Ok(exit::OK);
    }
    let failed: Vec<String> = list
        .items
        .iter()
        .filter(|i| i.status == check::Status::Fail)
        .map(|i| format!("{}: {}", i.id, i.summary))
        .collect();
    Err(fail(
        exit::ERROR,
        anyhow::anyhow!("{} check(s) failed: {}", failed.len(), failed.join("; ")),
    ))
}

async fn plan_cmd(cfg: &config::Config, json: bool, a: PlanArgs) -> Result<u8> {
    let ledger = read_ledger(cfg)?;
    let mm = engine::mattermost_client(cfg)?;
    let mut dir = engine::Ldap::new(engine::ldap_config(cfg)?);
    let state = engine::read_all(cfg, &mut dir, &mm, &ledger).await?;
    let plan = state.plan();
    for w in &state.warnings {
        report::warning("links", w.as_str());
    }
    if let Some(out) = &a.out {
        output::save_plan(out, &plan)?;
    }
    let calls = mm.stats();
    let hold = engine::HoldSummary::of(&plan, &state.policy.links);
    if json {
        report::data(
            "plan",
            output::plan_json(&plan, hold.as_ref(), &state.link_issues, &calls),
        );
    } else {
        print!("{}", output::plan_text(&plan));
        print!("{}", output::link_issues_text(&state.link_issues));
        println!("{}", output::calls_text(&calls));
    }
    if let (false, Some(h)) = (json, &hold) {
        print!("{}", h.text(50));
        println!(
            "Held by a guard: to apply exactly this plan, mattersync apply --approve {}",
            h.fingerprint
        );
    }
    Ok(if a.detailed_exitcode && state.broken_links() > 0 {
        exit::BROKEN_LINKS
    } else if a.detailed_exitcode && plan.has_changes() {
        exit::CHANGES_PENDING
    } else {
        exit::OK
    })
}

async fn apply_cmd(cfg: &config::Config, json: bool, a: ApplyArgs) -> Result<u8> {
    let lock = lock(cfg)?;
    let mut ledger = engine::open_ledger(cfg, Some(&lock))?;
    let mm = engine::mattermost_client(cfg)?;
    let saved: Option<Plan> = match &a.plan {
        Some(p) => Some(output::load_plan(p).map_err(|e| fail(exit::STALE_PLAN, e))?),
        None => None,
    };
    let mut dir = engine::Ldap::new(engine::ldap_config(cfg)?);
    let mut state = engine::read_all(cfg, &mut dir, &mm, &ledger).await?;
    engine::settle(&lock, &ledger, &mut state)?;
    for w in &state.warnings {
        report::warning("links", w.as_str());
    }
    // Said on every run, whatever else the run does.
    for i in &state.link_issues {
        eprintln!("{}: {i}", if i.broken() { "error" } else { "note" });
    }
    let plan = state.plan();
    if let Some(saved) = &saved {
        engine::check_saved(saved, &plan).map_err(|e| fail(exit::STALE_PLAN, e.into()))?;
    }
    let approval = match (&a.approve, a.allow_mass_removal) {
        (Some(fp), _) => engine::Approval::Exactly(fp.trim().to_string()),
        (None, true) => engine::Approval::Any,
        (None, false) => engine::Approval::None,
    };
    match engine::verdict(&plan, &approval) {
        Verdict::Held(trips) => {
            let held = engine::held_fingerprint(&plan);
            let summary = engine::HoldSummary::of(&plan, &state.policy.links);
            if json {
                // The held plan, but nothing changed: its `changed` is not the run's.
                let mut held_json =
                    output::plan_json(&plan, summary.as_ref(), &state.link_issues, &mm.stats());
                if let Some(m) = held_json.as_object_mut() {
                    m.remove("changed");
                    m.insert("held".into(), serde_json::Value::Bool(true));
                }
                report::data("plan", held_json);
            } else {
                print!("{}", output::plan_text(&plan));
                if let Some(h) = &summary {
                    eprint!("{}", h.text(50));
                }
            }
            if let engine::Approval::Exactly(fp) = &approval {
                ledger.note(
                    &engine::actor::approval(Some(&engine::actor::cli())),
                    "approve",
                    "-",
                    "refused",
                    &format!("{fp} is not what is held now ({held})"),
                )?;
            }
            let changed = match &approval {
                engine::Approval::Exactly(fp) => format!(
                    " The plan approved ({}) is not the one held now: the directory or Mattermost changed since it was reviewed.",
                    fp.get(..12).unwrap_or(fp)
                ),
                engine::Approval::None | engine::Approval::Any | engine::Approval::Within(_) => {
                    String::new()
                }
            };
            return Err(fail(
                exit::GUARD_TRIPPED,
                anyhow::anyhow!(
                    "{} tripped, nothing was changed: {}.{changed} If the directory really changed this much, apply exactly this plan with --approve {held} (or whatever is held with --allow-mass-removal)",
                    if trips.iter().all(|t| t.is_removal()) {
                        "removal guard"
                    } else {
                        "mass-change guard"
                    },
                    engine::describe_trips(&trips)
                ),
            ));
        }
        Verdict::NoChanges => {
            if json {
                report::data(
                    "apply",
                    serde_json::json!({"changed": false, "notes": plan.notes, "link_issues": state.link_issues, "api_calls": mm.stats()}),
                );
            } else {
                // Notes are said even when nothing changes: a broken link must not go quiet.
                for n in &plan.notes {
                    println!("note: {}", output::note_text(n));
                }
                println!("No changes. {}", output::calls_text(&mm.stats()));
            }
            return Ok(exit::OK);
        }
        Verdict::Apply => {}
    }
    if !json {
        print!("{}", output::plan_text(&plan));
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to apply without confirmation: not a terminal; pass --yes");
        }
        eprint!("Apply these changes? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("Nothing changed.");
            return Ok(exit::OK);
        }
    }
    let (tx, stop) = tokio::sync::watch::channel(false);
    // SIGINT/SIGTERM: finish the action in flight, record it, stop.
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("signal received: finishing the change in flight, then stopping");
        let _ = tx.send(true);
    });
    // An approved hold is applied by its approver; anything else by the CLI's user.
    let approved = !plan.guard_trips.is_empty();
    let actor = if approved {
        engine::actor::approval(Some(&engine::actor::cli()))
    } else {
        engine::actor::cli()
    };
    if approved {
        ledger.note(
            &actor,
            "approve",
            "-",
            "approved",
            &format!(
                "{} {}: {}",
                match approval {
                    engine::Approval::Exactly(_) => "apply --approve",
                    engine::Approval::Any
                    | engine::Approval::None
                    | engine::Approval::Within(_) => "apply --allow-mass-removal",
                },
                engine::held_fingerprint(&plan),
                engine::describe_trips(&plan.guard_trips)
            ),
        )?;
    }
    let bar = progress::Progress::new(
        &mm,
        plan.actions.len(),
        !json && std::io::stderr().is_terminal(),
    );
    let report = engine::apply(&lock, &plan, &mut ledger, &bar, &stop, "apply", &actor).await;
    bar.finish();
    let report = report?;
    let calls = mm.stats();
    report::run_id(&report.run_id);
    for f in &report.failures {
        report::error("action_failed", f.as_str());
    }
    if json {
        report::data(
            "apply",
            serde_json::json!({"changed": true, "report": report, "api_calls": calls}),
        );
    } else {
        println!(
            "Applied run {}: {} actions, {} user changes ok, {} failed.",
            report.run_id, report.actions, report.users_ok, report.users_failed
        );
        for f in &report.failures {
            println!("  failed: {f}");
        }
        println!("{}", output::calls_text(&calls));
    }
    Ok(if report.users_failed > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// Asks the running service to apply exactly the held set `a.fingerprint`, as the CLI's
/// user (`approval:cli:<user>` in the audit trail).
async fn approve(cfg: &config::Config, json: bool, a: ApproveArgs) -> Result<u8> {
    let token = config::secret(
        "MATTERSYNC_API_TOKEN",
        cfg.serve.api_token_file.as_deref(),
        "serve.api_token_file",
    )?
    .context("no API token: set serve.api_token_file (or MATTERSYNC_API_TOKEN); without serve running, use `mattersync apply --approve`")?;
    let base = a
        .url
        .unwrap_or_else(|| format!("http://{}", cfg.serve.listen));
    let url = format!(
        "{}/approve/{}",
        base.trim_end_matches('/'),
        a.fingerprint.trim()
    );
    let answer = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token.trim())
        .header("x-mattersync-approver", engine::actor::cli())
        .timeout(std::time::Duration::from_secs(15 * 60))
        .send()
        .await
        .with_context(|| format!("cannot reach the service at {base}; is `mattersync serve` running? (without it: mattersync apply --approve)"))?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if json {
        let mut data = body.clone();
        if let Some(m) = data.as_object_mut() {
            m.insert(
                "changed".into(),
                serde_json::Value::Bool(status.is_success()),
            );
        }
        report::data("approve", data);
    }
    if status.is_success() {
        if !json {
            let run = &body["run"];
            println!(
                "Approved and applied: {} user changes ok, {} failed (run {}).",
                run["users_ok"], run["users_failed"], run["run_id"]
            );
        }
        return Ok(exit::OK);
    }
    let held: Option<engine::HoldSummary> = body
        .pointer("/hold/summary")
        .and_then(|h| serde_json::from_value(h.clone()).ok());
    if let (false, Some(h)) = (json, &held) {
        eprint!("{}", h.text(50));
    }
    let why = body["error"].as_str().unwrap_or("refused").to_string();
    Err(fail(
        if status == reqwest::StatusCode::CONFLICT {
            exit::GUARD_TRIPPED
        } else {
            exit::ERROR
        },
        anyhow::anyhow!(
            "{why} (HTTP {}){}",
            status.as_u16(),
            held.map(|h| format!("; held now: {}", h.fingerprint))
                .unwrap_or_default()
        ),
    ))
}

fn status(cfg: &config::Config, json: bool) -> Result<u8> {
    let ledger = read_ledger(cfg)?;
    let runs = ledger.runs(10)?;
    let facts = ledger.facts()?;
    let owned = facts.owned();
    if json {
        report::data(
            "status",
            serde_json::json!({"runs": runs, "owned_memberships": owned, "links_in_ledger": ledger.links()?.len()}),
        );
        return Ok(exit::OK);
    }
    println!(
        "Ledger {}: {} memberships owned, {} links made with `link`.",
        engine::ledger_name(cfg),
        owned,
        ledger.links()?.len()
    );
    if runs.is_empty() {
        println!("No runs yet.");
        return Ok(exit::OK);
    }
    println!(
        "{:20}  {:5}  {:26}  {:8}  {:>5}  {:>6}  {:>9}  RUN",
        "STARTED (UTC)", "KIND", "ACTOR", "OUTCOME", "OK", "FAILED", "API CALLS"
    );
    for r in runs {
        println!(
            "{:20}  {:5}  {:26}  {:8}  {:>5}  {:>6}  {:>9}  {}",
            to_second(&r.started_at),
            r.kind,
            r.actor.as_deref().unwrap_or("-"),
            r.outcome.as_deref().unwrap_or("running"),
            r.actions_ok,
            r.actions_failed,
            r.api_calls,
            r.id
        );
    }
    Ok(exit::OK)
}

async fn explain(
    cfg: &config::Config,
    json: bool,
    user: &str,
    channel: Option<&str>,
) -> Result<u8> {
    let target: Option<Target> = channel
        .map(|c| c.parse().map_err(|e: String| anyhow::anyhow!(e)))
        .transpose()?;
    let ledger = read_ledger(cfg)?;
    let mm = engine::mattermost_client(cfg)?;
    let mut dir = engine::Ldap::new(engine::ldap_config(cfg)?);
    let state = engine::read_all(cfg, &mut dir, &mm, &ledger).await?;
    let plan = state.plan();
    let why = state
        .explain(&plan, user, target.as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = output::explain_text(user, &why, &ledger)?;
    if json {
        report::data("explain", output::explain_json(user, &why, &ledger, &text)?);
    } else {
        for line in text {
            println!("{line}");
        }
    }
    Ok(exit::OK)
}

fn audit(cfg: &config::Config, json: bool, a: AuditArgs) -> Result<u8> {
    let ledger = read_ledger(cfg)?;
    let events = ledger.events(&AuditQuery {
        user: a.user,
        scope: a.scope,
        run: a.run,
        failed_only: a.failed,
        limit: a.limit,
    })?;
    if json {
        report::data("events", serde_json::to_value(&events)?);
    } else {
        if !events.is_empty() {
            println!(
                "{:20}  {:26} {:22} {:30} {:20} {:7} GROUPS",
                "AT (UTC)", "ACTOR", "ACTION", "SCOPE", "USER", "OUTCOME"
            );
        }
        for e in events {
            println!(
                "{:20}  {:26} {:22} {:30} {:20} {:7} {}{}",
                to_second(&e.at),
                e.actor,
                e.action,
                e.scope,
                if e.username.is_empty() {
                    "-"
                } else {
                    &e.username
                },
                e.outcome,
                e.groups.join(","),
                e.detail.map(|d| format!("  ({d})")).unwrap_or_default()
            );
        }
    }
    Ok(exit::OK)
}

async fn links(cfg: &config::Config, json: bool) -> Result<u8> {
    let ledger = read_ledger(cfg)?;
    let directory = if cfg.defaults.auto_link {
        let mut dir = engine::Ldap::new(engine::ldap_config(cfg)?);
        engine::DirectorySource::snapshot(&mut dir).await?
    } else {
        Default::default()
    };
    let (links, warnings) = engine::resolve_links(cfg, &directory, ledger.links()?)?;
    for w in &warnings {
        report::warning("links", w.as_str());
    }
    if json {
        report::data("links", serde_json::to_value(&links)?);
    } else {
        println!(
            "{:30} {:40} {:10} {:22} {:7} SOURCE",
            "GROUP", "TARGET", "MODE", "ADMINS", "READD"
        );
        for l in links {
            println!(
                "{:30} {:40} {:10} {:22} {:7} {}",
                l.group,
                l.target.to_string(),
                l.mode.to_string(),
                l.admins.to_string(),
                l.readd.to_string(),
                engine::source_name(l.source)
            );
        }
    }
    Ok(exit::OK)
}

async fn link(cfg: &config::Config, json: bool, a: LinkArgs) -> Result<u8> {
    let target: Target = a
        .target
        .parse()
        .map_err(|e: String| anyhow::anyhow!("{e}; nothing was changed"))?;
    let link = Link {
        group: a.group,
        target,
        mode: a.mode.unwrap_or(cfg.defaults.mode),
        admins: a.admins.unwrap_or_else(|| cfg.defaults.admins.clone()),
        readd: a.readd.unwrap_or(cfg.defaults.readd),
        source: LinkSource::Ledger,
    };
    let naming = cfg.naming()?;
    naming
        .parse(&link.group)
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    // Opened first, so that a ledger that cannot be written never leaves a new channel
    // without its link.
    let ledger = open_ledger(cfg)?;
    if a.create_channel && !matches!(link.target, Target::Channel { .. }) {
        bail!(
            "--create-channel needs a team/channel target, not the team {}; nothing was changed",
            link.target
        );
    }
    let channel_created = verify_target(cfg, &link.target, a.create_channel, a.private).await?;
    let changed = ledger
        .put_link(&link, &engine::actor::cli())
        .with_context(|| {
            if channel_created {
                "recording the link failed after the channel was created: run the same command again to record it"
            } else {
                "recording the link"
            }
        })?;
    if let Ok(file) = cfg.file_links() {
        if file
            .iter()
            .any(|f| f.group == link.group && f.target == link.target)
        {
            report::warning(
                "links",
                format!(
                    "the config file also declares {}; the config file wins",
                    link.id()
                ),
            );
        }
    }
    if json {
        report::data(
            "link",
            serde_json::json!({"changed": changed || channel_created, "channel_created": channel_created, "link": link}),
        );
    } else {
        if channel_created {
            println!(
                "created the {} channel {}",
                if a.private { "private" } else { "public" },
                link.target
            );
        }
        println!(
            "{} {}",
            if changed { "linked" } else { "unchanged:" },
            link.id()
        );
    }
    Ok(exit::OK)
}

/// Looks the target of a new link up in Mattermost: its team and channel must exist, be
/// open (not archived) and not be a direct or group message. With `create`, a missing
/// channel is made (`private` or public); returns whether it was. Anything that cannot be
/// looked up is refused: a link is never recorded for a target nobody could check.
async fn verify_target(
    cfg: &config::Config,
    target: &Target,
    create: bool,
    private: bool,
) -> Result<bool> {
    let unverified = |what: String| {
        move || {
            format!("cannot verify the target {target}: mattermost: looking up {what}; nothing was changed")
        }
    };
    let mm = engine::mattermost_client(cfg)?;
    let team = target.team();
    let t = mm
        .team_by_name(team)
        .await
        .with_context(unverified(format!("team {team}")))?;
    let t = match t {
        None => bail!("team {team} does not exist in Mattermost; nothing was changed"),
        Some(t) if t.archived => bail!(
            "team {team} is archived in Mattermost: restore it or pick another team; nothing was changed"
        ),
        Some(t) => t,
    };
    let Target::Channel { channel, .. } = target else {
        return Ok(false);
    };
    let kind = |private: bool| if private { "private" } else { "public" };
    match mm
        .channel_by_name(team, channel)
        .await
        .with_context(unverified(format!("channel {team}/{channel}")))?
    {
        Some(c) if c.direct => bail!(
            "{team}/{channel} is a direct or group message, not a team's channel: it is never a link target; nothing was changed"
        ),
        Some(c) if c.archived => bail!(
            "channel {team}/{channel} exists but is archived: restore it in Mattermost or pick another name; nothing was changed"
        ),
        Some(c) if create && c.private != private => bail!(
            "channel {team}/{channel} exists as a {} channel, not a {} one; mattersync does not change a channel's type; nothing was changed",
            kind(c.private),
            kind(private)
        ),
        Some(_) => Ok(false),
        None if create => {
            mm.create_channel(&t.id, channel, channel, private)
                .await
                .with_context(|| {
                    format!(
                        "mattermost: creating the {} channel {team}/{channel}; nothing was changed",
                        kind(private)
                    )
                })?;
            Ok(true)
        }
        None => bail!(
            "channel {team}/{channel} does not exist in Mattermost: create it there, or pass --create-channel; nothing was changed"
        ),
    }
}

fn unlink(cfg: &config::Config, json: bool, group: &str, target: &str) -> Result<u8> {
    // By syntax only: a link recorded before Mattermost's name lengths were enforced can
    // still be removed.
    let target = Target::parse_recorded(target).map_err(|e| anyhow::anyhow!(e))?;
    let ledger = open_ledger(cfg)?;
    let changed = ledger.remove_link_by(group, &target, &engine::actor::cli())?;
    if !changed {
        if let Ok(file) = cfg.file_links() {
            if file.iter().any(|f| f.group == group && f.target == target) {
                bail!("{group}->{target} is declared in the config file; remove it there");
            }
        }
    }
    if json {
        report::data("unlink", serde_json::json!({"changed": changed}));
    } else if changed {
        println!("unlinked {group}->{target}");
    } else {
        println!("unchanged: no link {group}->{target} in the ledger");
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option and argument of every command says what it is for.
    #[test]
    fn every_option_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &<Cli as clap::CommandFactory>::command(),
            "mattersync",
            &mut missing,
        );
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn the_version_names_the_commit_and_timestamps_are_to_the_second() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(VERSION.contains("(commit "), "{VERSION}");
        assert_eq!(
            to_second("2026-12-02T01:20:22.123456789Z"),
            "2026-12-02T01:20:22Z"
        );
        assert_eq!(to_second("not a time"), "not a time");
        assert!(!colour(false));
    }
}
