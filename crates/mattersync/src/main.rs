//! `mattersync`: directory (FreeIPA/RAS, LDAP) to Mattermost group sync.

mod group;
mod output;
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

#[derive(Parser)]
#[command(
    name = "mattersync",
    version,
    about = "Directory groups to Mattermost channels, safely."
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "MATTERSYNC_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Machine-readable output.
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
    Unlink { group: String, target: String },
    /// Create and manage directory groups the way the SOP says.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Run as a service: change-driven sync, periodic reconcile, HTTP API, slash command.
    Serve(serve::ServeArgs),
    /// The `/mattersync` slash command in Mattermost.
    #[command(subcommand)]
    Slash(slash_install::SlashCommandArgs),
    /// Approve exactly the set a running `serve` holds (POST /approve/<fingerprint>).
    Approve(ApproveArgs),
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
    #[arg(long)]
    user: Option<String>,
    /// team or team/channel
    #[arg(long)]
    scope: Option<String>,
    #[arg(long)]
    run: Option<String>,
    #[arg(long)]
    failed: bool,
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

#[derive(Args)]
struct LinkArgs {
    group: String,
    /// team or team/channel
    target: String,
    #[arg(long)]
    mode: Option<Mode>,
    #[arg(long)]
    admins: Option<Admins>,
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
    tracing_subscriber::fmt()
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
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.downcast_ref::<Exit>().map(|x| x.0).unwrap_or(exit::ERROR);
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> Result<u8> {
    let cfg = config::load(&cli.config)?;
    match cli.command {
        Command::Check => check(&cfg, cli.json).await,
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
        Command::Group(g) => group::run(&cfg, cli.json, g).await,
        Command::Serve(a) => serve::run(cfg, a).await,
        Command::Slash(a) => slash_install::run(&cfg, cli.json, a).await,
        Command::Approve(a) => approve(&cfg, cli.json, a).await,
    }
}

fn open_ledger(cfg: &config::Config) -> Result<Ledger> {
    Ledger::open(&cfg.ledger.path).context("opening the ledger")
}

/// For commands that only read: the ledger file is never written.
fn read_ledger(cfg: &config::Config) -> Result<Ledger> {
    Ledger::open_read_only(&cfg.ledger.path).context("opening the ledger")
}

fn lock(cfg: &config::Config) -> Result<RunLock> {
    RunLock::acquire(&cfg.ledger.path).map_err(|e| fail(exit::LOCKED, e.into()))
}

async fn check(cfg: &config::Config, json: bool) -> Result<u8> {
    let mut report = serde_json::Map::new();
    report.insert("config".into(), "ok".into());
    let mm = engine::mattermost_client(cfg)?;
    let version = mm.ping().await.context("mattermost: ping failed")?;
    let me = mm
        .me()
        .await
        .context("mattermost: the token does not authenticate")?;
    report.insert("mattermost_version".into(), version.raw.clone().into());
    report.insert("mattermost_user".into(), me.username.clone().into());
    let mut dir = engine::Ldap::new(engine::ldap_config(cfg)?);
    let snap = engine::DirectorySource::snapshot(&mut dir).await?;
    report.insert("directory_groups".into(), snap.groups.len().into());
    report.insert("directory_users".into(), snap.users.len().into());
    let ledger = open_ledger(cfg)?;
    report.insert("ledger_schema".into(), ledger.schema_version()?.into());
    if json {
        println!("{}", serde_json::Value::Object(report));
    } else {
        println!("config            ok");
        println!("mattermost        {} (as {})", version.raw, me.username);
        println!(
            "directory         {} groups, {} users",
            snap.groups.len(),
            snap.users.len()
        );
        println!(
            "ledger            {} (schema {})",
            cfg.ledger.path.display(),
            ledger.schema_version()?
        );
    }
    Ok(exit::OK)
}

async fn plan_cmd(cfg: &config::Config, json: bool, a: PlanArgs) -> Result<u8> {
    let ledger = read_ledger(cfg)?;
    let mm = engine::mattermost_client(cfg)?;
    let mut dir = engine::Ldap::new(engine::ldap_config(cfg)?);
    let state = engine::read_all(cfg, &mut dir, &mm, &ledger).await?;
    let plan = state.plan();
    for w in &state.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(out) = &a.out {
        output::save_plan(out, &plan)?;
    }
    let calls = mm.stats();
    let hold = engine::HoldSummary::of(&plan, &state.policy.links);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&output::plan_json(
                &plan,
                hold.as_ref(),
                &state.link_issues,
                &calls
            ))?
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
    let mut ledger = open_ledger(cfg)?;
    let mm = engine::mattermost_client(cfg)?;
    let saved: Option<Plan> = match &a.plan {
        Some(p) => Some(output::load_plan(p).map_err(|e| fail(exit::STALE_PLAN, e))?),
        None => None,
    };
    let mut dir = engine::Ldap::new(engine::ldap_config(cfg)?);
    let mut state = engine::read_all(cfg, &mut dir, &mm, &ledger).await?;
    engine::settle(&lock, &ledger, &mut state)?;
    for w in &state.warnings {
        eprintln!("warning: {w}");
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
            let summary = engine::HoldSummary::of(&plan, &state.policy.links);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"changed": false, "held": true, "hold": summary})
                );
            } else {
                print!("{}", output::plan_text(&plan));
                if let Some(h) = &summary {
                    eprint!("{}", h.text(50));
                }
            }
            let held = engine::held_fingerprint(&plan);
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
                println!(
                    "{}",
                    serde_json::json!({"changed": false, "notes": plan.notes, "link_issues": state.link_issues, "api_calls": mm.stats()})
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
    let report = engine::apply(&lock, &plan, &mut ledger, &mm, &stop, "apply", &actor).await?;
    let calls = mm.stats();
    if json {
        println!(
            "{}",
            serde_json::json!({"changed": true, "report": report, "api_calls": calls})
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
        println!("{}", serde_json::to_string_pretty(&body)?);
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
    let owned: usize = facts
        .channels
        .values()
        .chain(facts.teams.values())
        .flat_map(|m| m.values())
        .filter(|r| {
            r.origin == mattersync_core::Origin::Added
                && r.state == mattersync_core::RecordState::Present
        })
        .count();
    if json {
        println!(
            "{}",
            serde_json::json!({"runs": runs, "owned_memberships": owned, "links_in_ledger": ledger.links()?.len()})
        );
        return Ok(exit::OK);
    }
    println!(
        "Ledger {}: {} memberships owned, {} links made with `link`.",
        cfg.ledger.path.display(),
        owned,
        ledger.links()?.len()
    );
    if runs.is_empty() {
        println!("No runs yet.");
    }
    for r in runs {
        println!(
            "{}  {:5}  {:26}  {:8}  ok {:>5}  failed {:>4}  api calls {:>5}  {}",
            r.started_at,
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
        println!("{}", serde_json::to_string_pretty(&text)?);
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
        println!("{}", serde_json::to_string_pretty(&events)?);
    } else {
        println!(
            "{:30}  {:26} {:22} {:30} {:20} {:8} groups",
            "at", "actor", "action", "scope", "user", "outcome"
        );
        for e in events {
            println!(
                "{:30}  {:26} {:22} {:30} {:20} {:8} {}{}",
                e.at,
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
        eprintln!("warning: {w}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&links)?);
    } else {
        println!(
            "{:30} {:40} {:10} {:22} {:7} source",
            "group", "target", "mode", "admins", "readd"
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
            eprintln!(
                "warning: the config file also declares {}; the config file wins",
                link.id()
            );
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"changed": changed || channel_created, "channel_created": channel_created, "link": link})
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
        println!("{}", serde_json::json!({"changed": changed}));
    } else if changed {
        println!("unlinked {group}->{target}");
    } else {
        println!("unchanged: no link {group}->{target} in the ledger");
    }
    Ok(exit::OK)
}
