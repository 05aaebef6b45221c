//! One run at a time: an exclusive lock on a file next to a SQLite ledger, or the
//! leadership of a PostgreSQL one (so a CLI `apply` cannot run beside a leading `serve`).

use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another mattersync run holds {path} (pid {holder}); runs never overlap — wait for it to finish")]
    Held { path: String, holder: String },
    #[error("another mattersync instance leads the ledger at {ledger}: {holder} (epoch {epoch}, since {since}); runs never overlap — stop it, or let it do the work")]
    Led {
        ledger: String,
        holder: String,
        epoch: i64,
        since: String,
    },
    #[error("cannot take the lead of the ledger: {0}")]
    Ledger(String),
    #[error("cannot open lock file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Held for the life of a run; released on drop (and by the OS if the process dies, or by
/// PostgreSQL when the leader's session ends).
pub struct RunLock {
    held: Held,
}

enum Held {
    File { file: File, path: PathBuf },
    Leader(crate::Leadership),
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.held {
            Held::File { path, .. } => write!(f, "RunLock({})", path.display()),
            Held::Leader(l) => write!(f, "RunLock(leader epoch {})", l.epoch),
        }
    }
}

impl RunLock {
    /// Takes the lock for the ledger at `ledger_path` without waiting.
    pub fn acquire(ledger_path: &Path) -> Result<RunLock, LockError> {
        let mut name = ledger_path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if file.try_lock_exclusive().is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(LockError::Held {
                path: path.display().to_string(),
                holder: holder.trim().to_string(),
            });
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock {
            held: Held::File { file, path },
        })
    }

    /// Takes the lead of a PostgreSQL ledger without waiting; `holder` says who (host and
    /// pid), for the message another instance shows.
    pub fn lead(target: &crate::PgTarget, holder: &str) -> Result<RunLock, LockError> {
        match crate::Leadership::try_take(target, holder) {
            Ok(Some(l)) => Ok(RunLock {
                held: Held::Leader(l),
            }),
            Ok(None) => {
                let row = crate::leader(target).ok().flatten();
                Err(LockError::Led {
                    ledger: target.display(),
                    holder: row
                        .as_ref()
                        .map_or_else(|| "?".into(), |r| r.holder.clone()),
                    epoch: row.as_ref().map_or(0, |r| r.epoch),
                    since: row.map_or_else(|| "?".into(), |r| r.since),
                })
            }
            Err(e) => Err(LockError::Ledger(e.to_string())),
        }
    }

    /// What a leader's ledger connections must carry: `None` for a file lock.
    pub fn fence(&self) -> Option<crate::Fence> {
        match &self.held {
            Held::File { .. } => None,
            Held::Leader(l) => Some(l.fence()),
        }
    }

    /// Whether the lock still holds: always for a file; for a leader, whether its lock
    /// session answers (within the heartbeat timeout).
    pub fn alive(&self) -> bool {
        match &self.held {
            Held::File { .. } => true,
            Held::Leader(l) => l.alive(),
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Held::File { file, .. } = &self.held {
            let _ = FileExt::unlock(file);
        }
    }
}
