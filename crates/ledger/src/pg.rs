//! A ledger on PostgreSQL: where it is, how to reach it safely, and who leads.
//!
//! Leadership: any number of instances may share one PostgreSQL ledger; one leads. The
//! leader holds a session advisory lock on a connection of its own and, on taking it,
//! increases the epoch in `mattersync_leader`. Every write of the leader's ledger checks
//! that epoch inside its transaction (a shared lock on the row, so a takeover waits for
//! writes in progress, and no write of the old leader commits after it). The lock is a
//! session's: PostgreSQL frees it when the session ends (a process killed, a connection
//! cut), and a standby polling for it takes over. A leader that cannot reach its lock
//! session within [`HEARTBEAT_TIMEOUT`] steps down before doing anything else.

use crate::db::{vals, Pg, Tls};
use crate::{LedgerError, Result};
use std::path::PathBuf;
use std::time::Duration;

/// The advisory lock of the lead: the pair ("mattersync" as a number, the ledger's schema
/// hashed), so that ledgers in two schemas of one database each have their own leader.
const LEAD_LOCK: &str = "1835102836, hashtext(current_schema())";

/// How long a leader waits for its lock session to answer before it steps down.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long PostgreSQL keeps a leader's lock session that sends nothing (a leader
/// heartbeats every second).
pub const SESSION_IDLE_LIMIT: Duration = Duration::from_secs(6);

/// Where a PostgreSQL ledger is, as configured.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// `postgres://user@host:port/db?…`; never holds the password.
    pub url: String,
    pub password: Option<String>,
    /// A CA bundle for the server's certificate (else the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Extra `SET search_path` (tests use a schema each).
    pub schema: Option<String>,
}

impl PgTarget {
    pub fn new(url: &str) -> PgTarget {
        PgTarget {
            url: url.to_string(),
            password: None,
            ca_file: None,
            schema: None,
        }
    }

    /// The URL without anything secret, for messages.
    pub fn display(&self) -> String {
        match self.url.split_once('@') {
            Some((scheme_user, rest)) => {
                let user = scheme_user.rsplit_once(':').map_or(scheme_user, |(a, _)| {
                    if a.ends_with("//") || a == "postgres" || a == "postgresql" {
                        scheme_user
                    } else {
                        a
                    }
                });
                format!("{user}@{rest}")
            }
            None => self.url.clone(),
        }
    }

    fn config(&self) -> Result<(postgres::Config, Tls)> {
        let mut config: postgres::Config = self
            .url
            .parse()
            .map_err(|e| LedgerError::Postgres(format!("ledger.url: {e}")))?;
        if config.get_password().is_some() {
            return Err(LedgerError::Postgres(
                "ledger.url: holds a password; put it in ledger.password_file or MATTERSYNC_LEDGER_PASSWORD instead".into(),
            ));
        }
        if let Some(p) = &self.password {
            config.password(p);
        }
        config.connect_timeout(Duration::from_secs(10));
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(5));
        config.application_name("mattersync");
        let disabled = self.url.split(['?', '&']).any(|kv| kv == "sslmode=disable");
        let tls = if disabled {
            config.ssl_mode(postgres::config::SslMode::Disable);
            Tls::Disabled
        } else {
            // Verified TLS unless the URL says otherwise: never a silent plaintext fallback.
            config.ssl_mode(postgres::config::SslMode::Require);
            Tls::Verified(Box::new(self.rustls()?))
        };
        Ok((config, tls))
    }

    fn rustls(&self) -> Result<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    LedgerError::Postgres(format!("ledger.ca_file {}: {e}", path.display()))
                })?;
                let mut n = 0;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| {
                        LedgerError::Postgres(format!("ledger.ca_file {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        LedgerError::Postgres(format!("ledger.ca_file {}: {e}", path.display()))
                    })?;
                    n += 1;
                }
                if n == 0 {
                    return Err(LedgerError::Postgres(format!(
                        "ledger.ca_file {}: no certificate in it",
                        path.display()
                    )));
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| LedgerError::Postgres(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }

    pub(crate) fn connect(&self) -> Result<Pg> {
        let (config, tls) = self.config()?;
        let pg = Pg::connect(config, tls).map_err(|e| match e {
            LedgerError::Postgres(m) => {
                LedgerError::Postgres(format!("cannot connect to {}: {m}", self.display()))
            }
            other => other,
        })?;
        // CREATE TABLE IF NOT EXISTS says NOTICE each time; nothing to log.
        pg.batch("SET client_min_messages TO warning")?;
        if let Some(schema) = &self.schema {
            check_schema(schema)?;
            pg.batch(&format!("SET search_path TO {schema}"))?;
        }
        Ok(pg)
    }
}

/// Leadership of a shared ledger: the lock session, held for as long as this lives.
pub struct Leadership {
    db: Pg,
    pub epoch: i64,
    pub holder: String,
    /// Tells the keepalive thread to stop.
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // The lock goes with the session: end it now, not when the keepalive notices.
        self.db.close();
    }
}

/// Who leads, as the table says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRow {
    pub epoch: i64,
    pub holder: String,
    pub since: String,
}

impl Leadership {
    /// Takes the lead if nobody holds it: `Ok(None)` when another instance leads.
    pub fn try_take(target: &PgTarget, holder: &str) -> Result<Option<Leadership>> {
        let db = target.connect()?;
        ensure_leader_table(&db)?;
        // The lock session must end when its process cannot use it: a leader that is
        // frozen (SIGSTOP, a stalled VM) stops sending heartbeats, and PostgreSQL ends the
        // idle session after `SESSION_IDLE_LIMIT`; a host that vanished is noticed by TCP
        // keepalives. Either frees the lock for a standby. (PostgreSQL before 14 has no
        // idle_session_timeout: then only the keepalives.)
        let _ = db.batch(&format!(
            "SET idle_session_timeout = '{}s'",
            SESSION_IDLE_LIMIT.as_secs()
        ));
        let _ = db.batch("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3");
        let got = db
            .one(
                &format!("SELECT pg_try_advisory_lock({LEAD_LOCK})::int"),
                &[],
            )?
            .map(|r| r.int(0))
            .transpose()?
            .unwrap_or(0);
        if got == 0 {
            return Ok(None);
        }
        let epoch = db
            .one(
                "UPDATE mattersync_leader SET epoch = epoch + 1, holder = ?1, since = ?2 WHERE id = 1 RETURNING epoch",
                vals![holder, crate::now()],
            )?
            .map(|r| r.int(0))
            .transpose()?
            .ok_or_else(|| LedgerError::Postgres("the leader row is missing".into()))?;
        // While this process runs, its lock session is never idle (a CLI apply does no
        // heartbeats of its own); frozen, the thread is too, and the session ends.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (pg, stop) = (db.clone(), std::sync::Arc::clone(&stop));
            let _ = std::thread::Builder::new()
                .name("ledger-lead-keepalive".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(1));
                    if stop.load(std::sync::atomic::Ordering::SeqCst)
                        || pg.ping("SELECT 1", HEARTBEAT_TIMEOUT).is_err()
                    {
                        return;
                    }
                });
        }
        Ok(Some(Leadership {
            db,
            epoch,
            holder: holder.to_string(),
            stop,
        }))
    }

    /// Whether the lock session still answers within [`HEARTBEAT_TIMEOUT`] and still holds
    /// the lock. A leader for which this is false must stop writing at once.
    pub fn alive(&self) -> bool {
        self.db.ping(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted",
            HEARTBEAT_TIMEOUT,
        )
        .is_ok_and(|n| n > 0)
    }

    pub fn fence(&self) -> crate::Fence {
        crate::Fence { epoch: self.epoch }
    }
}

/// Who leads now (for standbys and the status page).
pub fn leader(target: &PgTarget) -> Result<Option<LeaderRow>> {
    let db = target.connect()?;
    ensure_leader_table(&db)?;
    let row = db.one(
        "SELECT epoch, holder, since FROM mattersync_leader WHERE id = 1",
        &[],
    )?;
    match row {
        Some(r) if r.int(0)? > 0 => Ok(Some(LeaderRow {
            epoch: r.int(0)?,
            holder: r.text(1)?,
            since: r.text(2)?,
        })),
        _ => Ok(None),
    }
}

pub(crate) fn ensure_leader_table(db: &Pg) -> Result<()> {
    db.batch(
        "BEGIN;
         SELECT pg_advisory_xact_lock(1835102837, hashtext(current_schema()));
         CREATE TABLE IF NOT EXISTS mattersync_leader (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, holder TEXT NOT NULL, since TEXT NOT NULL);
         INSERT INTO mattersync_leader (id, epoch, holder, since) VALUES (1, 0, '', '') ON CONFLICT (id) DO NOTHING;
         COMMIT",
    )
}

/// Creates a schema (tests give each ledger one).
pub fn create_schema(target: &PgTarget, schema: &str) -> Result<()> {
    check_schema(schema)?;
    target
        .connect()?
        .batch(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
}

/// A schema name goes into SQL text: only a-z, 0-9 and `_`.
fn check_schema(schema: &str) -> Result<()> {
    let ok = !schema.is_empty()
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LedgerError::Postgres(format!("bad schema name {schema:?}")))
    }
}
