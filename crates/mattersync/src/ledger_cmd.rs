//! `mattersync ledger migrate --to postgres://…`: moves an embedded (SQLite) ledger to
//! PostgreSQL, for running more than one instance.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use mattersync_engine::config::{self, Config};
use mattersync_ledger::{Ledger, PgTarget, RunLock};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Copy the SQLite ledger (ledger.path) into an empty PostgreSQL database, verified.
    Migrate(MigrateArgs),
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The PostgreSQL ledger to fill: postgres://user@host/db (no password in it).
    #[arg(long, value_name = "URL")]
    to: String,
    /// The PostgreSQL password, from a file (or MATTERSYNC_LEDGER_PASSWORD).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// A CA bundle for the PostgreSQL server's certificate.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

pub fn run(cfg: &Config, json: bool, cmd: LedgerCommand) -> Result<u8> {
    let LedgerCommand::Migrate(a) = cmd;
    if cfg.ledger.url.is_some() {
        bail!("ledger.url is set: this configuration uses PostgreSQL already; migrate copies the SQLite ledger at ledger.path");
    }
    let mut target = PgTarget::new(&a.to);
    target.password = config::secret(
        "MATTERSYNC_LEDGER_PASSWORD",
        a.password_file.as_deref(),
        "--password-file",
    )?;
    target.ca_file = a.ca_file;
    if !cfg.ledger.path.exists() {
        bail!(
            "there is no ledger at ledger.path = {}: nothing to migrate (is the path right?); a new deployment can start on PostgreSQL directly",
            cfg.ledger.path.display()
        );
    }
    // Nothing writes the source meanwhile: its run lock is held for the copy.
    let _lock = RunLock::acquire(&cfg.ledger.path).map_err(|e| {
        crate::fail(
            crate::exit::LOCKED,
            anyhow::Error::new(e).context("stop mattersync serve before migrating its ledger"),
        )
    })?;
    let source = Ledger::open(&cfg.ledger.path)
        .with_context(|| format!("opening the ledger {}", cfg.ledger.path.display()))?;
    if source.runs(1)?.is_empty() && source.links()?.is_empty() {
        bail!(
            "the ledger at {} has never recorded a run or a link: nothing to migrate (is ledger.path the one serve uses?)",
            cfg.ledger.path.display()
        );
    }
    let dest = Ledger::open_postgres(&target)
        .with_context(|| format!("opening the PostgreSQL ledger {}", target.display()))?;
    let report = source.copy_into(&dest).context("copying the ledger")?;
    if json {
        crate::report::data(
            "ledger",
            serde_json::json!({"changed": true, "from": cfg.ledger.path, "to": target.display(), "tables": report.tables}),
        );
    } else {
        for (t, n) in &report.tables {
            println!("{t:<16} {n:>8} rows");
        }
        println!(
            "Copied and verified {} into {}. Set [ledger] url = \"{}\" and start the instances.",
            cfg.ledger.path.display(),
            target.display(),
            a.to
        );
    }
    Ok(crate::exit::OK)
}
