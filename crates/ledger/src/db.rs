//! The two SQL engines behind the ledger: SQLite (embedded, the default) and PostgreSQL
//! (for more than one instance). The ledger's code talks to [`Db`] only: statements with
//! `?N` parameters and rows of [`Value`]s, the same text for both, so the two cannot drift
//! apart in what they do. PostgreSQL gets `$N` and its own migrations (types differ: BIGINT,
//! BYTEA, identity columns), nothing else.
//!
//! The PostgreSQL client is blocking (`postgres`), and blocking clients cannot run on a
//! thread that drives async tasks; so the connection lives on a thread of its own, and each
//! call is a message to it. A transaction is `BEGIN`, its statements, `COMMIT` on that one
//! connection.

use crate::{LedgerError, Result};
use std::sync::mpsc;

/// One SQL value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Blob(b.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Null, Into::into)
    }
}

/// `vals![a, b, …]`: a parameter list.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { &[$($crate::db::Value::from($v)),*][..] };
}
pub(crate) use vals;

/// A result row.
#[derive(Debug, Clone)]
pub struct Row(pub(crate) Vec<Value>);

fn decode(what: &'static str, v: &Value) -> LedgerError {
    LedgerError::Corrupt {
        what,
        value: format!("{v:?}"),
    }
}

impl Row {
    fn at(&self, i: usize) -> &Value {
        self.0.get(i).unwrap_or(&Value::Null)
    }
    pub fn text(&self, i: usize) -> Result<String> {
        match self.at(i) {
            Value::Text(s) => Ok(s.clone()),
            v => Err(decode("text column", v)),
        }
    }
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.at(i) {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            v => Err(decode("text column", v)),
        }
    }
    pub fn int(&self, i: usize) -> Result<i64> {
        match self.at(i) {
            Value::Int(n) => Ok(*n),
            v => Err(decode("integer column", v)),
        }
    }
    pub fn blob(&self, i: usize) -> Result<Vec<u8>> {
        match self.at(i) {
            Value::Blob(b) => Ok(b.clone()),
            v => Err(decode("binary column", v)),
        }
    }
}

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Pg),
}

impl Db {
    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn exec(&self, sql: &str, params: &[Value]) -> Result<u64> {
        match self {
            Db::Sqlite(c) => {
                let n = c.execute(
                    sql,
                    rusqlite::params_from_iter(params.iter().map(to_sqlite)),
                )?;
                Ok(n as u64)
            }
            Db::Postgres(p) => p.exec(sql, params),
        }
    }

    /// Runs one query; its rows.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare(sql)?;
                let n = stmt.column_count();
                let rows = stmt.query_map(
                    rusqlite::params_from_iter(params.iter().map(to_sqlite)),
                    |r| {
                        let mut v = Vec::with_capacity(n);
                        for i in 0..n {
                            v.push(from_sqlite(r.get_ref(i)?));
                        }
                        Ok(Row(v))
                    },
                )?;
                Ok(rows.collect::<std::result::Result<_, _>>()?)
            }
            Db::Postgres(p) => p.query(sql, params),
        }
    }

    /// The first row of a query, if any.
    pub fn one(&self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Statements without parameters (migrations, `BEGIN`, `COMMIT`).
    pub fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(p) => p.batch(sql),
        }
    }

    /// The statement that opens a write transaction.
    pub fn begin(&self) -> &'static str {
        match self {
            // Takes the write lock at once, so two writers never deadlock on an upgrade.
            Db::Sqlite(_) => "BEGIN IMMEDIATE",
            Db::Postgres(_) => "BEGIN",
        }
    }
}

fn to_sqlite(v: &Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        // No column holds a real; keep it readable rather than fail.
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// A migration written for SQLite, in PostgreSQL's types: the same tables and columns.
/// (Only these spellings differ in the ledger's schema; a test compares both schemas.)
pub fn postgres_ddl(sqlite: &str) -> String {
    sqlite
        .replace(
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA")
}

/// `?N` → `$N` (the ledger's statements have no `?` inside string literals).
fn pg_sql(sql: &str) -> String {
    sql.replace('?', "$")
}

// ---------------------------------------------------------------------------- PostgreSQL

enum Job {
    Exec(String, Vec<Value>),
    Query(String, Vec<Value>),
    Batch(String),
    /// End the session now (other handles to it then get "closed").
    Close,
}

#[derive(Default)]
struct Done {
    count: u64,
    rows: Vec<Row>,
}

type Reply = std::result::Result<Done, String>;

/// A PostgreSQL connection on a thread of its own.
#[derive(Clone)]
pub struct Pg {
    jobs: mpsc::Sender<(Job, mpsc::Sender<Reply>)>,
}

impl Pg {
    /// Connects (on the connection's own thread) and waits for the outcome.
    pub fn connect(config: postgres::Config, tls: Tls) -> Result<Pg> {
        let (jobs, rx) = mpsc::channel::<(Job, mpsc::Sender<Reply>)>();
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), String>>();
        std::thread::Builder::new()
            .name("ledger-postgres".into())
            .spawn(move || {
                let client = match tls {
                    Tls::Disabled => config.connect(postgres::NoTls),
                    Tls::Verified(c) => {
                        config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(*c))
                    }
                };
                let mut client = match client {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(pg_error(&e)));
                        return;
                    }
                };
                for (job, reply) in rx {
                    if matches!(job, Job::Close) {
                        break;
                    }
                    let _ = reply.send(run(&mut client, job));
                }
            })
            .map_err(|e| {
                LedgerError::Postgres(format!("cannot start the connection thread: {e}"))
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Pg { jobs }),
            Ok(Err(e)) => Err(LedgerError::Postgres(e)),
            Err(_) => Err(LedgerError::Postgres(
                "the connection thread stopped".into(),
            )),
        }
    }

    pub fn batch(&self, sql: &str) -> Result<()> {
        self.call(Job::Batch(sql.to_string())).map(|_| ())
    }

    /// Ends the session at once, whoever else holds a handle to it.
    pub fn close(&self) {
        let (tx, _rx) = mpsc::channel();
        let _ = self.jobs.send((Job::Close, tx));
    }

    pub fn exec(&self, sql: &str, params: &[Value]) -> Result<u64> {
        self.call(Job::Exec(pg_sql(sql), params.to_vec()))
            .map(|r| r.count)
    }

    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        self.call(Job::Query(pg_sql(sql), params.to_vec()))
            .map(|r| r.rows)
    }

    pub fn one(&self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first column of the first row of `sql` as a number, or an error if the
    /// connection does not answer within `timeout` (a lost session must not block a
    /// leader's decision to step down).
    pub fn ping(&self, sql: &str, timeout: std::time::Duration) -> Result<i64> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send((Job::Query(sql.to_string(), Vec::new()), tx))
            .map_err(|_| LedgerError::Postgres("the connection is closed".into()))?;
        let done = rx
            .recv_timeout(timeout)
            .map_err(|_| LedgerError::Postgres(format!("no answer within {timeout:?}")))?
            .map_err(LedgerError::Postgres)?;
        done.rows
            .first()
            .map(|r| r.int(0))
            .transpose()?
            .ok_or_else(|| LedgerError::Postgres("no row".into()))
    }

    fn call(&self, job: Job) -> Result<Done> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send((job, tx))
            .map_err(|_| LedgerError::Postgres("the connection is closed".into()))?;
        rx.recv()
            .map_err(|_| LedgerError::Postgres("the connection is closed".into()))?
            .map_err(LedgerError::Postgres)
    }
}

/// How to reach PostgreSQL.
pub enum Tls {
    /// Only when the URL says `sslmode=disable`.
    Disabled,
    /// TLS with the server's certificate verified (system roots, or the configured CA).
    Verified(Box<rustls::ClientConfig>),
}

fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                s.push_str(": ");
                s.push_str(&c.to_string());
                src = c.source();
            }
            s
        }
    }
}

fn run(client: &mut postgres::Client, job: Job) -> Reply {
    match job {
        Job::Close => Ok(Done::default()),
        Job::Batch(sql) => client
            .batch_execute(&sql)
            .map(|()| Done::default())
            .map_err(|e| pg_error(&e)),
        Job::Exec(sql, params) => {
            let p = pg_params(&params);
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                p.iter().map(|b| b.as_ref()).collect();
            client
                .execute(sql.as_str(), &refs)
                .map(|count| Done {
                    count,
                    rows: Vec::new(),
                })
                .map_err(|e| pg_error(&e))
        }
        Job::Query(sql, params) => {
            let p = pg_params(&params);
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                p.iter().map(|b| b.as_ref()).collect();
            let rows = client
                .query(sql.as_str(), &refs)
                .map_err(|e| pg_error(&e))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let mut v = Vec::with_capacity(r.len());
                for (i, col) in r.columns().iter().enumerate() {
                    use postgres::types::Type;
                    let value = match *col.type_() {
                        Type::INT8 => r.try_get::<_, Option<i64>>(i).map(|o| o.map(Value::Int)),
                        Type::INT4 => r
                            .try_get::<_, Option<i32>>(i)
                            .map(|o| o.map(|n| Value::Int(i64::from(n)))),
                        Type::BOOL => r
                            .try_get::<_, Option<bool>>(i)
                            .map(|o| o.map(|b| Value::Int(i64::from(b)))),
                        Type::BYTEA => r
                            .try_get::<_, Option<Vec<u8>>>(i)
                            .map(|o| o.map(Value::Blob)),
                        _ => r
                            .try_get::<_, Option<String>>(i)
                            .map(|o| o.map(Value::Text)),
                    }
                    .map_err(|e| pg_error(&e))?;
                    v.push(value.unwrap_or(Value::Null));
                }
                out.push(Row(v));
            }
            Ok(Done {
                count: 0,
                rows: out,
            })
        }
    }
}

fn pg_params(params: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Value::Null => Box::new(Option::<String>::None),
                Value::Int(i) => Box::new(*i),
                Value::Text(s) => Box::new(s.clone()),
                Value::Blob(b) => Box::new(b.clone()),
            }
        })
        .collect()
}
