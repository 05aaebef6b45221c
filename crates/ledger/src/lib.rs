//! The ledger: what mattersync owns and everything it did.
//!
//! Invariant: the ledger is the only place that knows SQL. It stores facts about runs; it
//! never decides what to change (that is the planner's job).

mod lock;

pub use lock::{Holder, LockError, RunLock};

use mattersync_core::intent::settle;
use mattersync_core::{
    Action, Intent, IntentKind, LedgerFacts, Link, LinkIdentity, Origin, Record, RecordState,
    ScopeKind, Settlement, Target,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
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

/// Migrations, in order; the index + 1 is the schema version (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_intents.sql"),
    include_str!("../migrations/0003_link_identity.sql"),
    include_str!("../migrations/0004_admin_demotions.sql"),
    include_str!("../migrations/0005_actors.sql"),
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
    conn: Connection,
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
    tx: &rusqlite::Transaction<'_>,
    scope_kind: &str,
    scope_id: &str,
    user_id: &str,
) -> Result<Option<String>> {
    Ok(tx
        .query_row(
            "SELECT intent FROM memberships WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
            params![scope_kind, scope_id, user_id],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// A row of five text columns.
type Five = (String, String, String, String, String);

fn five_strings(r: &rusqlite::Row<'_>) -> rusqlite::Result<Five> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn groups_json(groups: &[String]) -> String {
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".to_string())
}

fn groups_from(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
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
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
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
        Ok(Ledger { conn })
    }

    pub fn open_in_memory() -> Result<Ledger> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(conn: Connection) -> Result<Ledger> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut ledger = Ledger { conn };
        ledger.migrate()?;
        Ok(ledger)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(LedgerError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// The facts the planner needs.
    pub fn facts(&self) -> Result<LedgerFacts> {
        let mut facts = LedgerFacts::default();
        let mut stmt = self
            .conn
            .prepare("SELECT scope_kind, scope_id, user_id, origin, state FROM memberships WHERE state != 'intended'")?;
        let rows = stmt.query_map([], five_strings)?;
        for row in rows {
            let (kind, scope, user, origin, state) = row?;
            let record = Record {
                origin: parse_origin(&origin)?,
                state: parse_state(&state)?,
            };
            let map = if kind == "team" {
                &mut facts.teams
            } else {
                &mut facts.channels
            };
            map.entry(scope).or_default().insert(user, record);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT channel_id, user_id, demoted FROM admin_grants")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (c, u, demoted) = row?;
            let map = if demoted != 0 {
                &mut facts.channel_admins_demoted
            } else {
                &mut facts.channel_admins
            };
            map.entry(c).or_default().insert(u);
        }
        Ok(facts)
    }

    /// Starts a run by `actor` and returns its id.
    pub fn begin_run(&self, kind: &str, fingerprint: Option<&str>, actor: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        self.conn.execute(
            "INSERT INTO runs (id, kind, started_at, fingerprint, actor) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, kind, now(), fingerprint, actor],
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
        let id = self.begin_run(action, None, actor)?;
        let at = now();
        self.conn.execute(
            "INSERT INTO events (run_id, at, action, scope_kind, scope_id, scope, user_id, username, groups, outcome, detail)
             VALUES (?1, ?2, ?3, '', '', ?4, '', '', '[]', ?5, ?6)",
            params![id, at, action, scope, outcome, detail],
        )?;
        self.finish_run(
            &id,
            &RunEnd {
                outcome: outcome.to_string(),
                detail: Some(detail.to_string()),
                ..Default::default()
            },
        )?;
        Ok(id)
    }

    pub fn finish_run(&self, run_id: &str, end: &RunEnd) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at = ?2, outcome = ?3, actions_ok = ?4, actions_failed = ?5, api_calls = ?6, detail = ?7 WHERE id = ?1",
            params![run_id, now(), end.outcome, end.actions_ok, end.actions_failed, end.api_calls, end.detail],
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
        let tx = self.conn.transaction()?;
        {
            let ok = |id: &str| {
                outcomes
                    .iter()
                    .find(|o| o.user_id == id)
                    .map(|o| o.result.clone())
            };
            let mut event = tx.prepare(
                "INSERT INTO events (run_id, at, action, scope_kind, scope_id, scope, user_id, username, groups, outcome, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut upsert = tx.prepare(
                "INSERT INTO memberships (scope_kind, scope_id, user_id, origin, state, groups, updated_at, run_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (scope_kind, scope_id, user_id) DO UPDATE SET
                   origin = excluded.origin, state = excluded.state, groups = excluded.groups,
                   updated_at = excluded.updated_at, run_id = excluded.run_id, intent = NULL",
            )?;
            let mut set_state = tx.prepare(
                "UPDATE memberships SET state = ?4, updated_at = ?5, run_id = ?6, intent = NULL
                 WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
            )?;
            let kind = action.kind();
            let (scope_kind, scope_id, scope) = action.scope();
            let scope_kind = scope_kind.as_str();
            let users = action.subjects();
            for (user_id, username, groups) in users {
                // Ledger-only actions always succeed; API actions need an outcome.
                let result = if action.writes_mattermost() {
                    ok(user_id).unwrap_or_else(|| Err("no outcome reported".to_string()))
                } else {
                    Ok(())
                };
                let (outcome, detail) = match &result {
                    Ok(()) => ("ok", None),
                    Err(e) => ("failed", Some(e.clone())),
                };
                event.execute(params![
                    run_id,
                    at,
                    kind,
                    scope_kind,
                    scope_id,
                    scope,
                    user_id,
                    username,
                    groups_json(groups),
                    outcome,
                    detail
                ])?;
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
                let pending = || pending_intent(&tx, scope_kind, scope_id, user_id);
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
                        upsert.execute(params![
                            scope_kind,
                            scope_id,
                            user_id,
                            origin_str(origin),
                            state_str(RecordState::Present),
                            groups_json(groups),
                            at,
                            run_id
                        ])?;
                    }
                    Some(Row::State(state)) => {
                        set_state.execute(params![
                            scope_kind,
                            scope_id,
                            user_id,
                            state_str(state),
                            at,
                            run_id
                        ])?;
                    }
                    None => {}
                }
                // What else the outcome records: admin grants, and the channels a team
                // removal took with it.
                match action {
                    Action::SetChannelAdmin { admin: true, .. } => {
                        tx.execute(
                            "INSERT INTO admin_grants (channel_id, user_id, groups, granted_at, run_id, demoted)
                             VALUES (?1, ?2, ?3, ?4, ?5, 0)
                             ON CONFLICT (channel_id, user_id) DO UPDATE SET groups = excluded.groups, demoted = 0",
                            params![scope_id, user_id, groups_json(groups), at, run_id],
                        )?;
                    }
                    Action::SetChannelAdmin { admin: false, .. } => {
                        tx.execute(
                            "DELETE FROM admin_grants WHERE channel_id = ?1 AND user_id = ?2",
                            params![scope_id, user_id],
                        )?;
                    }
                    Action::RemoveTeamMember { channels, .. } => {
                        // Mattermost took the user out of the team's channels with the team:
                        // those are removals by mattersync too (not the user leaving), so an
                        // add-mode link adds them back when they rejoin.
                        for c in channels {
                            tx.execute(
                                "INSERT INTO memberships (scope_kind, scope_id, user_id, origin, state, groups, updated_at, run_id)
                                 VALUES ('channel', ?1, ?2, 'preexisting', 'removed', '[]', ?3, ?4)
                                 ON CONFLICT (scope_kind, scope_id, user_id) DO UPDATE SET
                                   state = 'removed', updated_at = excluded.updated_at,
                                   run_id = excluded.run_id, intent = NULL",
                                params![c.id, user_id, at, run_id],
                            )?;
                        }
                    }
                    Action::RecordDemoted { .. } => {
                        tx.execute(
                            "UPDATE admin_grants SET demoted = 1, run_id = ?3 WHERE channel_id = ?1 AND user_id = ?2",
                            params![scope_id, user_id, run_id],
                        )?;
                    }
                    Action::AddTeamMembers { .. }
                    | Action::AddChannelMembers { .. }
                    | Action::RemoveChannelMember { .. }
                    | Action::RecordPreexisting { .. }
                    | Action::RecordDeparted { .. } => {}
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Notes, before the API call, the adds and removals an action is about to make, so that
    /// a run killed before it records the outcome can be resolved on the next run
    /// ([`Ledger::resolve_intents`]). Other actions need no intent.
    pub fn intend(&mut self, run_id: &str, action: &Action) -> Result<()> {
        let Some(intent) = action.intent() else {
            return Ok(());
        };
        let (kind, scope_id, _) = action.scope();
        let at = now();
        let tx = self.conn.transaction()?;
        for (user_id, _, groups) in action.subjects() {
            let n = tx.execute(
                "UPDATE memberships SET intent = ?4 WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                params![kind.as_str(), scope_id, user_id, intent.as_str()],
            )?;
            if n == 0 && intent == IntentKind::Add {
                tx.execute(
                    "INSERT INTO memberships (scope_kind, scope_id, user_id, origin, state, groups, updated_at, run_id, intent)
                     VALUES (?1, ?2, ?3, 'added', 'intended', ?4, ?5, ?6, 'add')",
                    params![kind.as_str(), scope_id, user_id, groups_json(groups), at, run_id],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every write noted before its API call whose outcome was never recorded.
    pub fn intents(&self) -> Result<Vec<Intent>> {
        let mut stmt = self.conn.prepare(
            "SELECT scope_kind, scope_id, user_id, intent, state FROM memberships WHERE intent IS NOT NULL ORDER BY scope_kind, scope_id, user_id",
        )?;
        let rows = stmt.query_map([], five_strings)?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, scope_id, user_id, intent, state) = row?;
            out.push(Intent {
                scope_kind: kind.parse().map_err(|_| LedgerError::Corrupt {
                    what: "scope kind",
                    value: kind.clone(),
                })?,
                scope_id,
                user_id,
                intent: intent.parse().map_err(|_| LedgerError::Corrupt {
                    what: "intent",
                    value: intent.clone(),
                })?,
                placeholder: state == "intended",
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
        let tx = self.conn.unchecked_transaction()?;
        let mut settled = 0;
        for i in pending {
            let Some(member) = is_member(i.scope_kind, &i.scope_id, &i.user_id) else {
                continue;
            };
            let (kind, scope, user) = (i.scope_kind.as_str(), &i.scope_id, &i.user_id);
            match settle(&i, member) {
                Settlement::Added => {
                    tx.execute(
                        "UPDATE memberships SET origin = 'added', state = 'present', intent = NULL, updated_at = ?4, run_id = ?5
                         WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                        params![kind, scope, user, at, run_id],
                    )?;
                }
                Settlement::Removed => {
                    tx.execute(
                        "UPDATE memberships SET state = 'removed', intent = NULL, updated_at = ?4, run_id = ?5
                         WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                        params![kind, scope, user, at, run_id],
                    )?;
                }
                Settlement::Forget => {
                    tx.execute(
                        "DELETE FROM memberships WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                        params![kind, scope, user],
                    )?;
                }
                Settlement::Unchanged => {
                    tx.execute(
                        "UPDATE memberships SET intent = NULL WHERE scope_kind = ?1 AND scope_id = ?2 AND user_id = ?3",
                        params![kind, scope, user],
                    )?;
                }
            }
            settled += 1;
        }
        tx.commit()?;
        Ok(settled)
    }

    /// Links kept in the ledger (made by `mattersync link` or the slash command).
    pub fn links(&self) -> Result<Vec<Link>> {
        let mut stmt = self.conn.prepare(
            "SELECT group_name, target, mode, admins, readd FROM links ORDER BY group_name, target",
        )?;
        let rows = stmt.query_map([], five_strings)?;
        let mut out = Vec::new();
        for row in rows {
            let (group, target, mode, admins, readd) = row?;
            let corrupt = |what: &'static str, value: &str| LedgerError::Corrupt {
                what,
                value: value.to_string(),
            };
            out.push(Link {
                group,
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
        Ok(self
            .conn
            .query_row(
                "SELECT created_by FROM links WHERE group_name = ?1 AND target = ?2",
                params![group, target.to_string()],
                |r| r.get(0),
            )
            .optional()?)
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
        self.conn.execute(
            "INSERT INTO links (group_name, target, mode, admins, readd, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (group_name, target) DO UPDATE SET mode = excluded.mode,
               admins = excluded.admins, readd = excluded.readd",
            params![
                link.group,
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
        let mut stmt = self.conn.prepare(
            "SELECT group_name, target, group_id, team_id, channel_id, group_seen, target_seen
             FROM link_identity ORDER BY group_name, target",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (group, target, group_id, team_id, channel_id, group_seen, target_seen) = row?;
            let target = Target::parse_recorded(&target).map_err(|_| LedgerError::Corrupt {
                what: "link target",
                value: target.clone(),
            })?;
            out.push(LinkIdentity {
                group,
                target,
                group_id,
                team_id,
                channel_id,
                group_seen,
                target_seen,
            });
        }
        Ok(out)
    }

    /// Records what a declared link's names resolved to (first sight), or the names now
    /// seen for its ids (after a rename). Ids once recorded are never replaced by this.
    pub fn put_identity(&self, id: &LinkIdentity) -> Result<()> {
        let at = now();
        self.conn.execute(
            "INSERT INTO link_identity (group_name, target, group_id, team_id, channel_id, group_seen, target_seen, first_seen, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (group_name, target) DO UPDATE SET
               group_id = COALESCE(link_identity.group_id, excluded.group_id),
               team_id = COALESCE(link_identity.team_id, excluded.team_id),
               channel_id = COALESCE(link_identity.channel_id, excluded.channel_id),
               group_seen = excluded.group_seen, target_seen = excluded.target_seen,
               updated_at = excluded.updated_at",
            params![
                id.group,
                id.target.to_string(),
                id.group_id,
                id.team_id,
                id.channel_id,
                id.group_seen,
                id.target_seen,
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
        let n = self.conn.execute(
            "DELETE FROM links WHERE group_name = ?1 AND target = ?2",
            params![group, target.to_string()],
        )?;
        // A link made again later resolves its names afresh.
        self.conn.execute(
            "DELETE FROM link_identity WHERE group_name = ?1 AND target = ?2",
            params![group, target.to_string()],
        )?;
        Ok(n > 0)
    }

    pub fn cursor(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM cursors WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_cursor(&self, name: &str, value: Option<&[u8]>) -> Result<()> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO cursors (name, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![name, v, now()],
            )?,
            None => self
                .conn
                .execute("DELETE FROM cursors WHERE name = ?1", params![name])?,
        };
        Ok(())
    }

    /// The most recent runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<Run>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, started_at, finished_at, fingerprint, outcome, actions_ok, actions_failed, api_calls, detail, actor
             FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(Run {
                id: r.get(0)?,
                kind: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                fingerprint: r.get(4)?,
                outcome: r.get(5)?,
                actions_ok: r.get(6)?,
                actions_failed: r.get(7)?,
                api_calls: r.get(8)?,
                detail: r.get(9)?,
                actor: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The audit trail, newest first.
    pub fn events(&self, q: &AuditQuery) -> Result<Vec<Event>> {
        let mut stmt = self.conn.prepare(
            "SELECT e.id, e.run_id, e.at, e.action, e.scope, e.user_id, e.username, e.groups, e.outcome, e.detail,
                    COALESCE((SELECT actor FROM runs WHERE runs.id = e.run_id), '-')
             FROM events e
             WHERE (?1 IS NULL OR username = ?1 OR user_id = ?1)
               AND (?2 IS NULL OR scope = ?2)
               AND (?3 IS NULL OR run_id = ?3)
               AND (?4 = 0 OR outcome = 'failed')
             ORDER BY id DESC LIMIT ?5",
        )?;
        let limit = if q.limit == 0 { 100 } else { q.limit } as i64;
        let rows = stmt.query_map(
            params![q.user, q.scope, q.run, q.failed_only as i64, limit],
            |r| {
                Ok(Event {
                    id: r.get(0)?,
                    run_id: r.get(1)?,
                    at: r.get(2)?,
                    action: r.get(3)?,
                    scope: r.get(4)?,
                    user_id: r.get(5)?,
                    username: r.get(6)?,
                    groups: groups_from(&r.get::<_, String>(7)?),
                    outcome: r.get(8)?,
                    detail: r.get(9)?,
                    actor: r.get(10)?,
                })
            },
        )?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Every membership the ledger knows for a user.
    pub fn memberships_of(&self, user_id: &str) -> Result<Vec<Membership>> {
        let mut stmt = self.conn.prepare(
            "SELECT scope_kind, scope_id, user_id, origin, state, groups, updated_at, run_id
             FROM memberships WHERE user_id = ?1 ORDER BY scope_kind, scope_id",
        )?;
        let rows = stmt.query_map(params![user_id], |r| {
            Ok(Membership {
                scope_kind: r.get(0)?,
                scope_id: r.get(1)?,
                user_id: r.get(2)?,
                origin: r.get(3)?,
                state: r.get(4)?,
                groups: groups_from(&r.get::<_, String>(5)?),
                updated_at: r.get(6)?,
                run_id: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests;
