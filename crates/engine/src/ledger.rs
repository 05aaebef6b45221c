//! Which ledger a configuration names, opened the one way every command opens it.

use crate::config::{self, Config};
use anyhow::{Context, Result};
use mattersync_ledger::{Ledger, LockError, PgTarget, RunLock};

/// The PostgreSQL ledger `[ledger] url` names, with its password; `None` for SQLite.
pub fn ledger_target(cfg: &Config) -> Result<Option<PgTarget>> {
    let Some(url) = &cfg.ledger.url else {
        return Ok(None);
    };
    let mut t = PgTarget::new(url);
    t.password = config::secret(
        "MATTERSYNC_LEDGER_PASSWORD",
        cfg.ledger.password_file.as_deref(),
        "ledger.password_file",
    )?;
    t.ca_file = cfg.ledger.ca_file.clone();
    Ok(Some(t))
}

/// Where the ledger is, for messages.
pub fn ledger_name(cfg: &Config) -> String {
    match &cfg.ledger.url {
        Some(url) => PgTarget::new(url).display(),
        None => cfg.ledger.path.display().to_string(),
    }
}

/// The ledger, schema brought up to date. With `lock`, its writes are fenced by it (a
/// PostgreSQL leader's epoch).
pub fn open_ledger(cfg: &Config, lock: Option<&RunLock>) -> Result<Ledger> {
    let mut ledger = match ledger_target(cfg)? {
        Some(t) => Ledger::open_postgres(&t),
        None => Ledger::open(&cfg.ledger.path),
    }
    .with_context(|| format!("opening the ledger {}", ledger_name(cfg)))?;
    if let Some(fence) = lock.and_then(RunLock::fence) {
        ledger.set_fence(fence);
    }
    Ok(ledger)
}

/// The ledger for reading only: nothing is created, migrated or written.
pub fn open_ledger_read_only(cfg: &Config) -> Result<Ledger> {
    match ledger_target(cfg)? {
        Some(t) => Ledger::open_postgres_read_only(&t),
        None => Ledger::open_read_only(&cfg.ledger.path),
    }
    .with_context(|| format!("opening the ledger {}", ledger_name(cfg)))
}

/// Who this process is, for the leader row and lock messages: `host/pid`.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}/{}", std::process::id())
}

/// One run at a time: the file lock of a SQLite ledger, or the leadership of a
/// PostgreSQL one.
pub fn run_lock(cfg: &Config) -> Result<std::result::Result<RunLock, LockError>> {
    Ok(match ledger_target(cfg)? {
        Some(t) => RunLock::lead(&t, &instance_name()),
        None => RunLock::acquire(&cfg.ledger.path),
    })
}
