//! The ledger: what mattersync owns and everything it did.
//!
//! Invariant: the ledger is the only place that knows SQL. It stores facts about runs; it
//! never decides what to change (that is the planner's job).

mod db;
mod lock;
mod pg;

pub use db::Engine;
pub use lock::{Holder, LockError, RunLock};
pub use pg::{create_schema, leader, LeaderRow, Leadership, PgTarget};

use db::{vals, Db, Value};

use mattersync_core::intent::settle;
use mattersync_core::{
    Action, Intent, IntentKind, LedgerFacts, Link, LinkIdentity, Origin, Record, RecordState,
    ScopeKind, Settlement, Target,
};
use rusqlite::Connection;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A PostgreSQL error, as `SQLSTATE: message` when the server said it.
    #[error("ledger (PostgreSQL): {0}")]
    Postgres(String),
    #[error("ledger copy: {0}")]
    Copy(String),
    /// Another instance has become the leader since this one: its writes are refused.
    #[error("ledger: this instance is no longer the leader (its epoch {mine}, now {current} held by {holder}); it stops writing")]
    Fenced {
        mine: i64,
        current: i64,
        holder: String,
    },
    #[error("ledger holds a value it cannot read ({what}: {value:?}); was it written by a newer mattersync?")]
    Corrupt { what: &'static str, value: String },
    #[error("ledger schema version {found} is newer than this mattersync knows ({known}); upgrade mattersync")]
    TooNew { found: i64, known: i64 },
    #[error("ledger schema version {found} is older than this mattersync's ({known}); a read-only command does not upgrade it: run `mattersync apply` or `mattersync serve` once")]
    TooOld { found: i64, known: i64 },
}

type Result<T> = std::result::Result<T, LedgerError>;

/// What a recorded outcome makes of a membership row.
enum Row {
    /// Present, with who created it.
    Present(Origin),
    /// Present no longer: departed or removed.
    State(RecordState),
}

/// Migrations, in order; the index + 1 is the schema version (`PRAGMA user_version`, or the
/// `mattersync_schema` row). Written once, for SQLite; PostgreSQL runs the same statements
/// with its spelling of the types ([`db::postgres_ddl`]), so the two schemas cannot differ.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_intents.sql"),
    include_str!("../migrations/0003_link_identity.sql"),
    include_str!("../migrations/0004_admin_demotions.sql"),
    include_str!("../migrations/0005_actors.sql"),
    include_str!("../migrations/0006_memberships_scope.sql"),
];

/// The outcome of one action for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserOutcome {
    pub user_id: String,
    /// `Err` holds what went wrong, in words.
    pub result: std::result::Result<(), String>,
}

/// A row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: i64,
    pub run_id: String,
    pub at: String,
    /// Who did it (the run's actor): `cli:<user>`, `slash:<user>`, `approval:<who>`,
    /// `serve:<host>/<pid>`; `-` for runs recorded before actors were.
    pub actor: String,
    pub action: String,
    pub scope: String,
    pub user_id: String,
    pub username: String,
    pub groups: Vec<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// A run as the ledger remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub id: String,
    pub kind: String,
    pub actor: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub fingerprint: Option<String>,
    pub outcome: Option<String>,
    pub actions_ok: i64,
    pub actions_failed: i64,
    pub api_calls: i64,
    pub detail: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct RunEnd {
    pub outcome: String,
    pub actions_ok: i64,
    pub actions_failed: i64,
    pub api_calls: i64,
    pub detail: Option<String>,
}

/// Filters for `audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub scope: Option<String>,
    pub run: Option<String>,
    pub failed_only: bool,
    pub limit: usize,
}

/// A membership row, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub scope_kind: String,
    pub scope_id: String,
    pub user_id: String,
    pub origin: String,
    pub state: String,
    pub groups: Vec<String>,
    pub updated_at: String,
    pub run_id: String,
}

pub struct Ledger {
    db: Db,
    /// Set on a leader's connections to a shared (PostgreSQL) ledger: every write checks
    /// that no newer leader exists.
    fence: Option<Fence>,
}

/// The epoch a leader holds; see [`Leadership`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub epoch: i64,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

fn origin_str(o: Origin) -> &'static str {
    match o {
        Origin::Added => "added",
        Origin::Preexisting => "preexisting",
    }
}

fn state_str(s: RecordState) -> &'static str {
    match s {
        RecordState::Present => "present",
        RecordState::Departed => "departed",
        RecordState::Removed => "removed",
    }
}

fn parse_origin(s: &str) -> Result<Origin> {
    match s {
        "added" => Ok(Origin::Added),
        "preexisting" => Ok(Origin::Preexisting),
        _ => Err(LedgerError::Corrupt {
            what: "origin",
            value: s.to_string(),
        }),
    }
}

fn parse_state(s: &str) -> Result<RecordState> {
    match s {
        "present" => Ok(RecordState::Present),
        "departed" => Ok(RecordState::Departed),
        "removed" => Ok(RecordState::Removed),
        _ => Err(LedgerError::Corrupt {
            what: "state",
            value: s.to_string(),
        }),
    }
}

/// The unsettled intent (`add`/`remove`) on a membership, if any.
fn pending_intent(
    db: &Db,
    scope_kind: &str,
    scope_id: &str,
    user_id: &str,
) -> Result<Option<String>> {
    match db.one(
        "SELECT intent FROM memberships WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
        vals![scope_kind, scope_id, user_id],
    )? {
        Some(r) => r.opt_text(0),
        None => Ok(None),
    }
}

fn groups_json(groups: &[String]) -> String {
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".to_string())
}

fn groups_from(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn corrupt(what: &'static str, value: &str) -> LedgerError {
    LedgerError::Corrupt {
        what,
        value: value.to_string(),
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Ledger> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        let conn = Connection::open(path).map_err(|source| LedgerError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::setup(conn)
    }

    /// Opens the ledger at `path` for reading only: no migration, no journal-mode change,
    /// and SQLite refuses any write. A ledger that does not exist yet reads as an empty one
    /// (and is not created). One with an older schema is refused: a run that holds the lock
    /// (`apply`, `serve`) upgrades it.
    pub fn open_read_only(path: &Path) -> Result<Ledger> {
        if !path.exists() {
            return Self::open_in_memory();
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| LedgerError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let ledger = Ledger {
            db: Db::Sqlite(conn),
            fence: None,
        };
        ledger.check_current()?;
        Ok(ledger)
    }

    pub fn open_in_memory() -> Result<Ledger> {
        Self::setup(Connection::open_in_memory()?)
    }

    /// Opens a PostgreSQL ledger and brings its schema up to date (in one transaction per
    /// migration, under an advisory lock, so two instances starting together migrate once).
    pub fn open_postgres(pg: &PgTarget) -> Result<Ledger> {
        let ledger = Ledger {
            db: Db::Postgres(pg.connect()?),
            fence: None,
        };
        ledger.migrate()?;
        Ok(ledger)
    }

    /// A PostgreSQL ledger for reading only: its schema must be current, and nothing is
    /// written (the session is read-only).
    pub fn open_postgres_read_only(pg: &PgTarget) -> Result<Ledger> {
        let ledger = Ledger {
            db: Db::Postgres(pg.connect()?),
            fence: None,
        };
        ledger
            .db
            .batch("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
        ledger.check_current()?;
        Ok(ledger)
    }

    fn setup(conn: Connection) -> Result<Ledger> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let ledger = Ledger {
            db: Db::Sqlite(conn),
            fence: None,
        };
        ledger.migrate()?;
        Ok(ledger)
    }

    /// Which engine this ledger is on.
    pub fn engine(&self) -> Engine {
        self.db.engine()
    }

    fn check_current(&self) -> Result<()> {
        let version = self.schema_version()?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(LedgerError::TooNew {
                found: version,
                known,
            });
        }
        if version < known {
            return Err(LedgerError::TooOld {
                found: version,
                known,
            });
        }
        Ok(())
    }

    fn migrate(&self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        if self.engine() == Engine::Postgres {
            // Two instances starting at once: the transaction-scoped advisory lock lets one
            // create the tables while the other waits.
            self.db.batch(
                "BEGIN;
                 SELECT pg_advisory_xact_lock(1835102837, hashtext(current_schema()));
                 CREATE TABLE IF NOT EXISTS mattersync_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
                 INSERT INTO mattersync_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
                 CREATE TABLE IF NOT EXISTS mattersync_leader (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, holder TEXT NOT NULL, since TEXT NOT NULL);
                 INSERT INTO mattersync_leader (id, epoch, holder, since) VALUES (1, 0, '', '') ON CONFLICT (id) DO NOTHING;
                 COMMIT",
            )?;
        }
        let version = self.schema_version()?;
        if version > known {
            return Err(LedgerError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sqlite) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let next = (i + 1) as i64;
            self.tx(|db| {
                match db.engine() {
                    Engine::Sqlite => {
                        db.batch(sqlite)?;
                        db.batch(&format!("PRAGMA user_version = {next}"))?;
                    }
                    Engine::Postgres => {
                        // Another instance may have migrated meanwhile: the row lock orders
                        // the two, and the second finds the work done.
                        let now_at = db
                            .one(
                                "SELECT version FROM mattersync_schema WHERE id = 1 FOR UPDATE",
                                &[],
                            )?
                            .map(|r| r.int(0))
                            .transpose()?
                            .unwrap_or(0);
                        if now_at < next {
                            db.batch(&db::postgres_ddl(sqlite))?;
                            db.exec(
                                "UPDATE mattersync_schema SET version = ?1 WHERE id = 1",
                                vals![next],
                            )?;
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        let sql = match self.engine() {
            Engine::Sqlite => "PRAGMA user_version",
            Engine::Postgres => "SELECT version FROM mattersync_schema WHERE id = 1",
        };
        match self.db.one(sql, &[]) {
            Ok(Some(r)) => r.int(0),
            Ok(None) => Ok(0),
            // No schema table: a database mattersync never wrote.
            Err(LedgerError::Postgres(e)) if e.starts_with("42P01") => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Runs `f` in one write transaction: all of it or nothing. Under a [`Fence`], the
    /// transaction first checks that no newer leader exists, and holds that check (a shared
    /// row lock on the leader row) until it commits.
    fn tx<T>(&self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        self.db.batch(self.db.begin())?;
        let out = self.fenced().and_then(|()| f(&self.db));
        match out {
            Ok(v) => {
                self.db.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.db.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Makes every later write check that this instance still leads (see [`Leadership`]).
    pub fn set_fence(&mut self, fence: Fence) {
        self.fence = Some(fence);
    }

    fn fenced(&self) -> Result<()> {
        let Some(f) = self.fence else {
            return Ok(());
        };
        let row = self.db.one(
            "SELECT epoch, holder FROM mattersync_leader WHERE id = 1 FOR SHARE",
            &[],
        )?;
        let (current, holder) = match row {
            Some(r) => (r.int(0)?, r.text(1)?),
            None => (0, String::new()),
        };
        if current != f.epoch {
            return Err(LedgerError::Fenced {
                mine: f.epoch,
                current,
                holder,
            });
        }
        Ok(())
    }

    /// One statement as its own write transaction.
    fn write(&self, sql: &str, params: &[Value]) -> Result<u64> {
        self.tx(|db| db.exec(sql, params))
    }

    /// The facts the planner needs.
    pub fn facts(&self) -> Result<LedgerFacts> {
        let mut facts = LedgerFacts::default();
        self.facts_where(&mut facts, "", &[])?;
        Ok(facts)
    }

    /// The facts of these teams and channels only (by id), as [`Ledger::facts`] has them:
    /// what a change cycle that plans a few scopes needs, without reading every membership.
    pub fn facts_for(&self, scope_ids: &BTreeSet<String>) -> Result<LedgerFacts> {
        let mut facts = LedgerFacts::default();
        let ids: Vec<&String> = scope_ids.iter().collect();
        // Well under every engine's limit on parameters per statement.
        for chunk in ids.chunks(400) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
            let params: Vec<Value> = chunk.iter().map(|id| Value::from(*id)).collect();
            self.facts_where(&mut facts, &marks.join(", "), &params)?;
        }
        Ok(facts)
    }

    /// Reads memberships and admin grants into `facts`, all of them (`marks` empty) or those
    /// of the scopes `params` names (`marks`: their placeholders).
    fn facts_where(&self, facts: &mut LedgerFacts, marks: &str, params: &[Value]) -> Result<()> {
        let (members, grants) = if marks.is_empty() {
            (
                "SELECT scope_kind, scope_id, user_id, origin, state FROM memberships WHERE state != 'intended'".to_string(),
                "SELECT channel_id, user_id, demoted FROM admin_grants".to_string(),
            )
        } else {
            (
                format!("SELECT scope_kind, scope_id, user_id, origin, state FROM memberships WHERE state != 'intended' AND scope_id IN ({marks})"),
                format!("SELECT channel_id, user_id, demoted FROM admin_grants WHERE channel_id IN ({marks})"),
            )
        };
        for r in self.db.query(&members, params)? {
            let (kind, scope, user) = (r.text(0)?, r.text(1)?, r.text(2)?);
            let record = Record {
                origin: parse_origin(&r.text(3)?)?,
                state: parse_state(&r.text(4)?)?,
            };
            let map = if kind == "team" {
                &mut facts.teams
            } else {
                &mut facts.channels
            };
            map.entry(scope).or_default().insert(user, record);
        }
        for r in self.db.query(&grants, params)? {
            let map = if r.int(2)? != 0 {
                &mut facts.channel_admins_demoted
            } else {
                &mut facts.channel_admins
            };
            map.entry(r.text(0)?).or_default().insert(r.text(1)?);
        }
        Ok(())
    }

    /// What a run did, per action and outcome (`ok`, `failed`): the counts of its events.
    pub fn action_counts(&self, run_id: &str) -> Result<Vec<(String, String, u64)>> {
        self.db
            .query(
                "SELECT action, outcome, COUNT(*) FROM events WHERE run_id = ?1 GROUP BY action, outcome ORDER BY action, outcome",
                vals![run_id],
            )?
            .into_iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, u64::try_from(r.int(2)?).unwrap_or(0))))
            .collect()
    }

    /// Starts a run by `actor` and returns its id.
    pub fn begin_run(&self, kind: &str, fingerprint: Option<&str>, actor: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        self.write(
            "INSERT INTO runs (id, kind, started_at, fingerprint, actor) VALUES (?1, ?2, ?3, ?4, ?5)",
            vals![id.as_str(), kind, now(), fingerprint, actor],
        )?;
        Ok(id)
    }

    /// An audit event that changes no membership — an approval, a refused or lapsed one, a
    /// hold that cleared by itself, a link made or removed: a finished run of its own
    /// (`kind` = `action`) with one event naming no user. Returns the run id.
    pub fn note(
        &self,
        actor: &str,
        action: &str,
        scope: &str,
        outcome: &str,
        detail: &str,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let at = now();
        self.tx(|db| {
            db.exec(
                "INSERT INTO runs (id, kind, started_at, finished_at, outcome, detail, actor) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
                vals![id.as_str(), action, at.as_str(), outcome, detail, actor],
            )?;
            db.exec(
                "INSERT INTO events (run_id, at, action, scope_kind, scope_id, scope, user_id, username, groups, outcome, detail)
                 VALUES (?1, ?2, ?3, '', '', ?4, '', '', '[]', ?5, ?6)",
                vals![id.as_str(), at.as_str(), action, scope, outcome, detail],
            )?;
            Ok(())
        })?;
        Ok(id)
    }

    pub fn finish_run(&self, run_id: &str, end: &RunEnd) -> Result<()> {
        self.write(
            "UPDATE runs SET finished_at = ?2, outcome = ?3, actions_ok = ?4, actions_failed = ?5, api_calls = ?6, detail = ?7 WHERE id = ?1",
            vals![run_id, now(), end.outcome.as_str(), end.actions_ok, end.actions_failed, end.api_calls, end.detail.as_deref()],
        )?;
        Ok(())
    }

    /// Records what one action did, for each user, in one transaction: the audit trail and
    /// the memberships and roles mattersync now owns.
    pub fn record(
        &mut self,
        run_id: &str,
        action: &Action,
        outcomes: &[UserOutcome],
    ) -> Result<()> {
        let at = now();
        self.tx(|db| {
            let ok = |id: &str| {
                outcomes
                    .iter()
                    .find(|o| o.user_id == id)
                    .map(|o| o.result.clone())
            };
            let kind = action.kind();
            let (scope_kind, scope_id, scope) = action.scope();
            let scope_kind = scope_kind.as_str();
            for (user_id, username, groups) in action.subjects() {
                // Ledger-only actions always succeed; API actions need an outcome.
                let result = if action.writes_mattermost() {
                    ok(user_id).unwrap_or_else(|| Err("no outcome reported".to_string()))
                } else {
                    Ok(())
                };
                let (outcome, detail) = match &result {
                    Ok(()) => ("ok", None),
                    Err(e) => ("failed", Some(e.as_str())),
                };
                db.exec(
                    "INSERT INTO events (run_id, at, action, scope_kind, scope_id, scope, user_id, username, groups, outcome, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    vals![run_id, at.as_str(), kind, scope_kind, scope_id, scope, user_id, username, groups_json(groups), outcome, detail],
                )?;
                if result.is_err() {
                    // A failed call may still have acted: the server did the change but its
                    // answer was lost (a timeout, a reset connection, retries that ran out).
                    // The intent noted before the call stays, and the next run settles it
                    // from what Mattermost shows (`resolve_intents`), so a membership
                    // mattersync made is never taken for a pre-existing one, nor a removal it
                    // made for the user leaving on their own.
                    continue;
                }
                // What the outcome makes of the membership row: present with an origin, or
                // a new state. An unsettled intent decides between the two readings of a
                // ledger-only record (the rule of `resolve_intents`, for a plan made without
                // settling): a member with a pending add is one mattersync added, and one
                // gone with a pending removal is one it removed.
                let pending = || pending_intent(db, scope_kind, scope_id, user_id);
                let row = match action {
                    Action::AddTeamMembers { .. } | Action::AddChannelMembers { .. } => {
                        Some(Row::Present(Origin::Added))
                    }
                    Action::RecordPreexisting { .. } => Some(Row::Present(
                        if pending()?.as_deref() == Some(IntentKind::Add.as_str()) {
                            Origin::Added
                        } else {
                            Origin::Preexisting
                        },
                    )),
                    Action::RecordDeparted { .. } => Some(Row::State(
                        if pending()?.as_deref() == Some(IntentKind::Remove.as_str()) {
                            RecordState::Removed
                        } else {
                            RecordState::Departed
                        },
                    )),
                    Action::RemoveChannelMember { .. } | Action::RemoveTeamMember { .. } => {
                        Some(Row::State(RecordState::Removed))
                    }
                    Action::SetChannelAdmin { .. } | Action::RecordDemoted { .. } => None,
                };
                match row {
                    Some(Row::Present(origin)) => {
                        db.exec(
                            "INSERT INTO memberships (scope_kind, scope_id, user_id, origin, state, groups, updated_at, run_id)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                             ON CONFLICT (scope_kind, scope_id, user_id) DO UPDATE SET
                               origin = excluded.origin, state = excluded.state, groups = excluded.groups,
                               updated_at = excluded.updated_at, run_id = excluded.run_id, intent = NULL",
                            vals![scope_kind, scope_id, user_id, origin_str(origin), state_str(RecordState::Present), groups_json(groups), at.as_str(), run_id],
                        )?;
                    }
                    Some(Row::State(state)) => {
                        db.exec(
                            "UPDATE memberships SET state = ?4, updated_at = ?5, run_id = ?6, intent = NULL
                             WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                            vals![scope_kind, scope_id, user_id, state_str(state), at.as_str(), run_id],
                        )?;
                    }
                    None => {}
                }
                // What else the outcome records: admin grants, and the channels a team
                // removal took with it.
                match action {
                    Action::SetChannelAdmin { admin: true, .. } => {
                        db.exec(
                            "INSERT INTO admin_grants (channel_id, user_id, groups, granted_at, run_id, demoted)
                             VALUES (?1, ?2, ?3, ?4, ?5, 0)
                             ON CONFLICT (channel_id, user_id) DO UPDATE SET groups = excluded.groups, demoted = 0",
                            vals![scope_id, user_id, groups_json(groups), at.as_str(), run_id],
                        )?;
                    }
                    Action::SetChannelAdmin { admin: false, .. } => {
                        db.exec(
                            "DELETE FROM admin_grants WHERE channel_id = ?1 AND user_id = ?2",
                            vals![scope_id, user_id],
                        )?;
                    }
                    Action::RemoveTeamMember { channels, .. } => {
                        // Mattermost took the user out of the team's channels with the team:
                        // those are removals by mattersync too (not the user leaving), so an
                        // add-mode link adds them back when they rejoin.
                        for c in channels {
                            db.exec(
                                "INSERT INTO memberships (scope_kind, scope_id, user_id, origin, state, groups, updated_at, run_id)
                                 VALUES ('channel', ?1, ?2, 'preexisting', 'removed', '[]', ?3, ?4)
                                 ON CONFLICT (scope_kind, scope_id, user_id) DO UPDATE SET
                                   state = 'removed', updated_at = excluded.updated_at,
                                   run_id = excluded.run_id, intent = NULL",
                                vals![c.id.as_str(), user_id, at.as_str(), run_id],
                            )?;
                        }
                    }
                    Action::RecordDemoted { .. } => {
                        db.exec(
                            "UPDATE admin_grants SET demoted = 1, run_id = ?3 WHERE channel_id = ?1 AND user_id = ?2",
                            vals![scope_id, user_id, run_id],
                        )?;
                    }
                    Action::AddTeamMembers { .. }
                    | Action::AddChannelMembers { .. }
                    | Action::RemoveChannelMember { .. }
                    | Action::RecordPreexisting { .. }
                    | Action::RecordDeparted { .. } => {}
                }
            }
            Ok(())
        })
    }

    /// Notes, before the API call, the adds and removals an action is about to make, so that
    /// a run killed before it records the outcome can be resolved on the next run
    /// ([`Ledger::resolve_intents`]). Other actions need no intent.
    ///
    /// Under a [`Fence`] this is also what keeps a deposed leader from writing to
    /// Mattermost: every API write is preceded by its intent, and the intent is refused once
    /// a newer leader exists.
    pub fn intend(&mut self, run_id: &str, action: &Action) -> Result<()> {
        let Some(intent) = action.intent() else {
            return Ok(());
        };
        let (kind, scope_id, _) = action.scope();
        let at = now();
        self.tx(|db| {
            for (user_id, _, groups) in action.subjects() {
                let n = db.exec(
                    "UPDATE memberships SET intent = ?4 WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                    vals![kind.as_str(), scope_id, user_id, intent.as_str()],
                )?;
                if n == 0 && intent == IntentKind::Add {
                    db.exec(
                        "INSERT INTO memberships (scope_kind, scope_id, user_id, origin, state, groups, updated_at, run_id, intent)
                         VALUES (?1, ?2, ?3, 'added', 'intended', ?4, ?5, ?6, 'add')",
                        vals![kind.as_str(), scope_id, user_id, groups_json(groups), at.as_str(), run_id],
                    )?;
                }
            }
            Ok(())
        })
    }

    /// Every write noted before its API call whose outcome was never recorded.
    pub fn intents(&self) -> Result<Vec<Intent>> {
        let mut out = Vec::new();
        for r in self.db.query(
            "SELECT scope_kind, scope_id, user_id, intent, state FROM memberships WHERE intent IS NOT NULL ORDER BY scope_kind, scope_id, user_id",
            &[],
        )? {
            let (kind, intent) = (r.text(0)?, r.text(3)?);
            out.push(Intent {
                scope_kind: kind.parse().map_err(|_| corrupt("scope kind", &kind))?,
                scope_id: r.text(1)?,
                user_id: r.text(2)?,
                intent: intent.parse().map_err(|_| corrupt("intent", &intent))?,
                placeholder: r.text(4)? == "intended",
            });
        }
        Ok(out)
    }

    /// Settles intents left by a run that stopped between an API call and its record:
    /// `is_member(kind, scope_id, user_id)` says what Mattermost shows now (`None`: that
    /// scope was not read, leave it). An intended add that happened becomes a membership
    /// mattersync added; one that did not is forgotten; an intended removal that happened
    /// becomes a removal. Returns how many intents were settled.
    ///
    /// The decision is [`mattersync_core::intent::settle`], the same rule a read-only
    /// command applies in memory. Only the holder of the run lock may call this.
    pub fn resolve_intents(
        &self,
        run_id: &str,
        is_member: impl Fn(ScopeKind, &str, &str) -> Option<bool>,
    ) -> Result<usize> {
        let pending = self.intents()?;
        let at = now();
        self.tx(|db| {
            let mut settled = 0;
            // A write that happened is an audit event too, under a run of its own (the one
            // that made it never recorded it).
            let mut audit_run: Option<String> = None;
            let mut audit = |kind: &str, scope: &str, user: &str, action: &str| -> Result<()> {
                let id = match &audit_run {
                    Some(id) => id.clone(),
                    None => {
                        let id = uuid::Uuid::new_v4().to_string();
                        db.exec(
                            "INSERT INTO runs (id, kind, started_at, finished_at, outcome, detail, actor) VALUES (?1, 'settle', ?2, ?2, 'ok', ?3, ?4)",
                            vals![id.as_str(), at.as_str(), "writes a run made and could not record, settled from what Mattermost shows", run_id],
                        )?;
                        audit_run = Some(id.clone());
                        id
                    }
                };
                db.exec(
                    "INSERT INTO events (run_id, at, action, scope_kind, scope_id, scope, user_id, username, groups, outcome, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, '', '[]', 'ok', 'settled: made by a run that stopped before recording it')",
                    vals![id.as_str(), at.as_str(), action, kind, scope, user],
                )?;
                Ok(())
            };
            for i in pending {
                let Some(member) = is_member(i.scope_kind, &i.scope_id, &i.user_id) else {
                    continue;
                };
                let (kind, scope, user) = (i.scope_kind.as_str(), i.scope_id.as_str(), i.user_id.as_str());
                let settlement = settle(&i, member);
                match settlement {
                    Settlement::Added => audit(kind, scope, user, "settle_add")?,
                    Settlement::Removed => audit(kind, scope, user, "settle_remove")?,
                    Settlement::Forget | Settlement::Unchanged => {}
                }
                match settlement {
                    Settlement::Added => {
                        db.exec(
                            "UPDATE memberships SET origin = 'added', state = 'present', intent = NULL, updated_at = ?4, run_id = ?5
                             WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                            vals![kind, scope, user, at.as_str(), run_id],
                        )?;
                    }
                    Settlement::Removed => {
                        db.exec(
                            "UPDATE memberships SET state = 'removed', intent = NULL, updated_at = ?4, run_id = ?5
                             WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                            vals![kind, scope, user, at.as_str(), run_id],
                        )?;
                    }
                    Settlement::Forget => {
                        db.exec(
                            "DELETE FROM memberships WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                            vals![kind, scope, user],
                        )?;
                    }
                    Settlement::Unchanged => {
                        db.exec(
                            "UPDATE memberships SET intent = NULL WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                            vals![kind, scope, user],
                        )?;
                    }
                }
                settled += 1;
            }
            Ok(settled)
        })
    }

    /// Links kept in the ledger (made by `mattersync link` or the slash command).
    pub fn links(&self) -> Result<Vec<Link>> {
        let mut out = Vec::new();
        for r in self.db.query(
            "SELECT group_name, target, mode, admins, readd FROM links ORDER BY group_name, target",
            &[],
        )? {
            let (target, mode, admins, readd) = (r.text(1)?, r.text(2)?, r.text(3)?, r.text(4)?);
            out.push(Link {
                group: r.text(0)?,
                // By syntax only: a link recorded before Mattermost's name lengths were
                // enforced still loads (and is reported, and can be unlinked).
                target: Target::parse_recorded(&target)
                    .map_err(|_| corrupt("link target", &target))?,
                mode: mode.parse().map_err(|_| corrupt("link mode", &mode))?,
                admins: admins
                    .parse()
                    .map_err(|_| corrupt("link admins", &admins))?,
                readd: readd.parse().map_err(|_| corrupt("link readd", &readd))?,
                source: mattersync_core::LinkSource::Ledger,
            });
        }
        Ok(out)
    }

    /// Who made (or last changed) a ledger link: `cli:…` or `slash:…`.
    pub fn link_made_by(&self, group: &str, target: &Target) -> Result<Option<String>> {
        self.db
            .one(
                "SELECT created_by FROM links WHERE group_name = ?1 AND target = ?2",
                vals![group, target.to_string()],
            )?
            .map(|r| r.text(0))
            .transpose()
    }

    /// Adds or updates a link; returns whether anything changed. A change is an audit event
    /// by `by` (the actor: `cli:<user>`, `slash:<user>`).
    pub fn put_link(&self, link: &Link, by: &str) -> Result<bool> {
        let existing = self
            .links()?
            .into_iter()
            .find(|l| l.group == link.group && l.target == link.target);
        if existing.as_ref().is_some_and(|l| {
            l.mode == link.mode && l.admins == link.admins && l.readd == link.readd
        }) {
            return Ok(false);
        }
        self.write(
            "INSERT INTO links (group_name, target, mode, admins, readd, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (group_name, target) DO UPDATE SET mode = excluded.mode,
               admins = excluded.admins, readd = excluded.readd",
            vals![
                link.group.as_str(),
                link.target.to_string(),
                link.mode.to_string(),
                link.admins.to_string(),
                link.readd.to_string(),
                now(),
                by
            ],
        )?;
        self.note(
            by,
            "link",
            &link.target.to_string(),
            "ok",
            &format!(
                "{} -> {} (mode {}, admins {}, readd {})",
                link.group, link.target, link.mode, link.admins, link.readd
            ),
        )?;
        Ok(true)
    }

    /// The stable ids every declared link resolved to, by (group name, target) as declared.
    pub fn identities(&self) -> Result<Vec<LinkIdentity>> {
        let mut out = Vec::new();
        for r in self.db.query(
            "SELECT group_name, target, group_id, team_id, channel_id, group_seen, target_seen
             FROM link_identity ORDER BY group_name, target",
            &[],
        )? {
            let target = r.text(1)?;
            out.push(LinkIdentity {
                group: r.text(0)?,
                target: Target::parse_recorded(&target)
                    .map_err(|_| corrupt("link target", &target))?,
                group_id: r.opt_text(2)?,
                team_id: r.opt_text(3)?,
                channel_id: r.opt_text(4)?,
                group_seen: r.opt_text(5)?,
                target_seen: r.opt_text(6)?,
            });
        }
        Ok(out)
    }

    /// Records what a declared link's names resolved to (first sight), or the names now
    /// seen for its ids (after a rename). Ids once recorded are never replaced by this.
    pub fn put_identity(&self, id: &LinkIdentity) -> Result<()> {
        let at = now();
        self.write(
            "INSERT INTO link_identity (group_name, target, group_id, team_id, channel_id, group_seen, target_seen, first_seen, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (group_name, target) DO UPDATE SET
               group_id = COALESCE(link_identity.group_id, excluded.group_id),
               team_id = COALESCE(link_identity.team_id, excluded.team_id),
               channel_id = COALESCE(link_identity.channel_id, excluded.channel_id),
               group_seen = excluded.group_seen, target_seen = excluded.target_seen,
               updated_at = excluded.updated_at",
            vals![
                id.group.as_str(),
                id.target.to_string(),
                id.group_id.as_deref(),
                id.team_id.as_deref(),
                id.channel_id.as_deref(),
                id.group_seen.as_deref(),
                id.target_seen.as_deref(),
                at
            ],
        )?;
        Ok(())
    }

    /// Removes a link, as an audit event by `by`; returns whether it existed.
    pub fn remove_link_by(&self, group: &str, target: &Target, by: &str) -> Result<bool> {
        let removed = self.remove_link(group, target)?;
        if removed {
            self.note(
                by,
                "unlink",
                &target.to_string(),
                "ok",
                &format!("{group} -> {target}"),
            )?;
        }
        Ok(removed)
    }

    /// Removes a link; returns whether it existed. (No audit event: [`Ledger::remove_link_by`]
    /// names who did it.)
    pub fn remove_link(&self, group: &str, target: &Target) -> Result<bool> {
        self.tx(|db| {
            let n = db.exec(
                "DELETE FROM links WHERE group_name = ?1 AND target = ?2",
                vals![group, target.to_string()],
            )?;
            // A link made again later resolves its names afresh.
            db.exec(
                "DELETE FROM link_identity WHERE group_name = ?1 AND target = ?2",
                vals![group, target.to_string()],
            )?;
            Ok(n > 0)
        })
    }

    pub fn cursor(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.db
            .one("SELECT value FROM cursors WHERE name = ?1", vals![name])?
            .map(|r| r.blob(0))
            .transpose()
    }

    pub fn set_cursor(&self, name: &str, value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => self.write(
                "INSERT INTO cursors (name, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                vals![name, v, now()],
            )?,
            None => self.write("DELETE FROM cursors WHERE name = ?1", vals![name])?,
        };
        Ok(())
    }

    /// The most recent runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<Run>> {
        let mut out = Vec::new();
        for r in self.db.query(
            "SELECT id, kind, started_at, finished_at, fingerprint, outcome, actions_ok, actions_failed, api_calls, detail, actor
             FROM runs ORDER BY started_at DESC, id DESC LIMIT ?1",
            vals![limit as i64],
        )? {
            out.push(Run {
                id: r.text(0)?,
                kind: r.text(1)?,
                started_at: r.text(2)?,
                finished_at: r.opt_text(3)?,
                fingerprint: r.opt_text(4)?,
                outcome: r.opt_text(5)?,
                actions_ok: r.int(6)?,
                actions_failed: r.int(7)?,
                api_calls: r.int(8)?,
                detail: r.opt_text(9)?,
                actor: r.opt_text(10)?,
            });
        }
        Ok(out)
    }

    /// The audit trail, newest first.
    pub fn events(&self, q: &AuditQuery) -> Result<Vec<Event>> {
        let limit = if q.limit == 0 { 100 } else { q.limit } as i64;
        let mut out = Vec::new();
        for r in self.db.query(
            "SELECT e.id, e.run_id, e.at, e.action, e.scope, e.user_id, e.username, e.groups, e.outcome, e.detail,
                    COALESCE((SELECT actor FROM runs WHERE runs.id = e.run_id), '-')
             FROM events e
             WHERE (CAST(?1 AS TEXT) IS NULL OR e.username = ?1 OR e.user_id = ?1)
               AND (CAST(?2 AS TEXT) IS NULL OR e.scope = ?2)
               AND (CAST(?3 AS TEXT) IS NULL OR e.run_id = ?3)
               AND (CAST(?4 AS BIGINT) = 0 OR e.outcome = 'failed')
             ORDER BY e.id DESC LIMIT ?5",
            vals![q.user.as_deref(), q.scope.as_deref(), q.run.as_deref(), q.failed_only as i64, limit],
        )? {
            out.push(Event {
                id: r.int(0)?,
                run_id: r.text(1)?,
                at: r.text(2)?,
                action: r.text(3)?,
                scope: r.text(4)?,
                user_id: r.text(5)?,
                username: r.text(6)?,
                groups: groups_from(&r.text(7)?),
                outcome: r.text(8)?,
                detail: r.opt_text(9)?,
                actor: r.text(10)?,
            });
        }
        Ok(out)
    }

    /// Every membership the ledger knows for a user.
    pub fn memberships_of(&self, user_id: &str) -> Result<Vec<Membership>> {
        let mut out = Vec::new();
        for r in self.db.query(
            "SELECT scope_kind, scope_id, user_id, origin, state, groups, updated_at, run_id
             FROM memberships WHERE user_id = ?1 ORDER BY scope_kind, scope_id",
            vals![user_id],
        )? {
            out.push(Membership {
                scope_kind: r.text(0)?,
                scope_id: r.text(1)?,
                user_id: r.text(2)?,
                origin: r.text(3)?,
                state: r.text(4)?,
                groups: groups_from(&r.text(5)?),
                updated_at: r.text(6)?,
                run_id: r.text(7)?,
            });
        }
        Ok(out)
    }
}

/// Every table, parents before children.
const TABLES: &[&str] = &[
    "runs",
    "events",
    "memberships",
    "admin_grants",
    "links",
    "cursors",
    "link_identity",
];

/// What a copy moved, table by table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    pub tables: Vec<(String, u64)>,
}

impl Ledger {
    fn columns(&self, table: &str) -> Result<Vec<String>> {
        let rows = match self.engine() {
            Engine::Sqlite => self
                .db
                .query(&format!("SELECT name FROM pragma_table_info('{table}')"), &[])?,
            Engine::Postgres => self.db.query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_name = ?1 AND table_schema = current_schema() ORDER BY ordinal_position",
                vals![table],
            )?,
        };
        rows.iter().map(|r| r.text(0)).collect()
    }

    fn count(&self, table: &str) -> Result<i64> {
        self.db
            .one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
            .map(|r| r.int(0))
            .transpose()
            .map(|n| n.unwrap_or(0))
    }

    /// Copies this whole ledger into `target`, which must be empty and at the same schema
    /// version, in one transaction; then checks that the copy holds the same rows and
    /// reads back the same facts, intents, links, identities and cursors. The source is
    /// only read.
    pub fn copy_into(&self, target: &Ledger) -> Result<CopyReport> {
        let (from, to) = (self.schema_version()?, target.schema_version()?);
        if from != to {
            return Err(LedgerError::Copy(format!(
                "the source is at schema {from} and the target at {to}; open both with this mattersync first"
            )));
        }
        for t in TABLES {
            let n = target.count(t)?;
            if n > 0 {
                return Err(LedgerError::Copy(format!(
                    "the target is not empty ({t} has {n} rows); mattersync copies only into an empty ledger"
                )));
            }
        }
        let mut report = CopyReport { tables: Vec::new() };
        target.tx(|db| {
            for t in TABLES {
                let cols = self.columns(t)?;
                let theirs = target.columns(t)?;
                if cols != theirs {
                    return Err(LedgerError::Copy(format!(
                        "table {t} has columns {cols:?} here and {theirs:?} there"
                    )));
                }
                let list = cols.join(", ");
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                let insert = format!("INSERT INTO {t} ({list}) VALUES ({})", marks.join(", "));
                let rows = self.db.query(&format!("SELECT {list} FROM {t}"), &[])?;
                for r in &rows {
                    db.exec(&insert, &r.0)?;
                }
                report.tables.push((t.to_string(), rows.len() as u64));
            }
            if db.engine() == Engine::Postgres {
                // The audit trail's ids were copied as they were: the next one follows them.
                db.batch(
                    "SELECT setval(pg_get_serial_sequence('events', 'id'), COALESCE((SELECT MAX(id) FROM events), 0) + 1, false)",
                )?;
            }
            Ok(())
        })?;
        // Read back through the ledger's own queries.
        for t in TABLES {
            if self.count(t)? != target.count(t)? {
                return Err(LedgerError::Copy(format!(
                    "table {t} differs after the copy"
                )));
            }
        }
        let same = self.facts()? == target.facts()?
            && self.intents()? == target.intents()?
            && self.links()? == target.links()?
            && self.identities()? == target.identities()?
            && self.runs(usize::MAX >> 1)? == target.runs(usize::MAX >> 1)?;
        if !same {
            return Err(LedgerError::Copy(
                "the copy does not read back as the source".to_string(),
            ));
        }
        for r in self.db.query("SELECT name, value FROM cursors", &[])? {
            let name = r.text(0)?;
            if target.cursor(&name)? != Some(r.blob(1)?) {
                return Err(LedgerError::Copy(format!(
                    "cursor {name} differs after the copy"
                )));
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
