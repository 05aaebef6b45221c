//! One run at a time: an exclusive lock on a file next to a SQLite ledger, or the
//! leadership of a PostgreSQL one (so a CLI `apply` cannot run beside a leading `serve`).

use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another mattersync run holds {path} ({holder}); runs never overlap — {}", holder.advice())]
    Held { path: String, holder: Holder },
    #[error("another mattersync instance leads the ledger at {ledger}: {holder} (epoch {epoch}, since {since}); runs never overlap — the leading service does the work (ask it: POST /sync), or stop it first")]
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

/// Who holds the lock, as it wrote itself into the lock file: `pid`, `command` and
/// `started` lines (a lock file of an older version holds only the pid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: String,
    pub command: Option<String>,
    pub started: Option<String>,
}

impl Holder {
    fn me() -> Holder {
        let args: Vec<String> = std::env::args().collect();
        let program = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "mattersync".to_string());
        // Secrets are never in argv, so the command line can be shown.
        let command = std::iter::once(program)
            .chain(args.into_iter().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        let started = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        Holder {
            pid: std::process::id().to_string(),
            command: Some(command),
            started,
        }
    }

    fn text(&self) -> String {
        let mut s = format!("pid {}\n", self.pid);
        if let Some(c) = &self.command {
            s.push_str(&format!("command {}\n", c.replace('\n', " ")));
        }
        if let Some(t) = &self.started {
            s.push_str(&format!("started {t}\n"));
        }
        s
    }

    fn parse(text: &str) -> Holder {
        let mut h = Holder::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", v)) => h.pid = v.trim().to_string(),
                Some(("command", v)) => h.command = Some(v.trim().to_string()),
                Some(("started", v)) => h.started = Some(v.trim().to_string()),
                _ if h.pid.is_empty() && !line.trim().is_empty() => h.pid = line.trim().to_string(),
                _ => {}
            }
        }
        h
    }

    /// Whether the holder is the service.
    pub fn is_service(&self) -> bool {
        self.command
            .as_deref()
            .is_some_and(|c| c.split_whitespace().any(|w| w == "serve"))
    }

    fn advice(&self) -> &'static str {
        if self.is_service() {
            "the service syncs this ledger: ask it for a run (POST /sync, or wait for its next cycle), or stop it first"
        } else {
            "wait for it to finish"
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(c) = &self.command {
            write!(f, ", `{c}`")?;
        }
        if let Some(t) = &self.started {
            write!(f, ", since {t}")?;
        }
        Ok(())
    }
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
                holder: Holder::parse(&holder),
            });
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", Holder::me().text()).map_err(io)?;
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
    /// session answers (within the heartbeat timeout) and still holds the lock.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_read_back_and_the_service_is_told_apart() {
        let h = Holder {
            pid: "42".into(),
            command: Some("mattersync --config /etc/m.toml serve".into()),
            started: Some("2026-12-02T01:00:00Z".into()),
        };
        let back = Holder::parse(&h.text());
        assert_eq!(back, h);
        assert!(back.is_service());
        assert!(back.advice().contains("POST /sync"));
        assert_eq!(
            back.to_string(),
            "pid 42, `mattersync --config /etc/m.toml serve`, since 2026-12-02T01:00:00Z"
        );
        // A lock file of an older version: the pid alone.
        let old = Holder::parse("1234");
        assert_eq!(old.pid, "1234");
        assert!(old.command.is_none() && !old.is_service());
    }
}
