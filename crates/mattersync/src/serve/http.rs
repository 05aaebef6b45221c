//! The HTTP side: health, readiness, metrics, the status page, the slash command, and —
//! behind a bearer token — a sync trigger and a plan preview.
//!
//! | method | path | auth | what |
//! |---|---|---|---|
//! | GET | `/healthz` | — | 200 while the process serves requests |
//! | GET | `/readyz` | — | 200 when the directory and Mattermost answered, the first full reconcile succeeded and the last run succeeded; else 503 with the reasons |
//! | GET | `/metrics` | — | Prometheus (OpenMetrics) text |
//! | GET | `/` | — | the status page |
//! | POST | `/sync` | bearer | a full reconcile now (`?allow_mass_removal=true` past a tripped guard, `?wait=false` to return at once) |
//! | GET | `/plan` | bearer | what a full reconcile would change (`?format=text` for people) |
//! | GET | `/holds` | bearer | what a guard holds: summary, age, how to approve (`?offset=&limit=` pages the changes) |
//! | POST | `/approve/{fingerprint}` | bearer | apply exactly that held set; 409 with the new summary if what is held changed |
//! | POST | `/slash` | slash token | the Mattermost slash command |
//! | POST | `/slash/dialog` | signed state | a submitted slash-command form |
//! | POST | `/alerts/action` | signed context | a button of an alert (Show / Approve / Dismiss) |
//! | POST | `/alerts/dialog` | signed state | the confirmation of an approval from an alert |

use super::page;
use super::slash::{self, same_secret};
use super::state::{Outcome, Request, Shared};
use super::worker::read_directory;
use crate::output;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mattersync_engine::{self as engine, LedgerView};
use serde::Deserialize;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tracing::instrument::WithSubscriber;

/// How long `POST /sync` waits for its cycle.
const SYNC_WAIT: Duration = Duration::from_secs(15 * 60);

pub fn router(shared: Arc<Shared>, dispatch: tracing::Dispatch) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/status", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/sync", post(sync))
        .route("/plan", get(plan))
        .route("/holds", get(holds))
        .route("/approve/{fingerprint}", post(approve))
        .route("/slash", post(slash::handle))
        .route("/slash/dialog", post(super::dialog::submit))
        .route("/alerts/action", post(super::alerts::action))
        .route("/alerts/dialog", post(super::alerts::submit))
        .layer(axum::middleware::from_fn_with_state(
            shared.settings.http,
            read_body,
        ))
        .layer(DefaultBodyLimit::max(shared.settings.http.max_body))
        .layer(axum::middleware::from_fn_with_state(dispatch, with_logs))
        .with_state(shared)
}

/// Requests run on tasks of their own: give them the service's log subscriber.
async fn with_logs(
    State(dispatch): State<tracing::Dispatch>,
    req: HttpRequest,
    next: Next,
) -> Response {
    next.run(req).with_subscriber(dispatch).await
}

/// What the HTTP side allows a client: how long it may take to send a request, how long a
/// kept-alive connection may sit idle, how many connections may be open at once, and how
/// large a request body may be. A client past a limit is cut off, so slow or idle sockets
/// cannot pile up and starve `/healthz` or the slash command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the connection's start, or the end of the previous response, until the request's
    /// headers are complete. It also bounds an idle kept-alive connection: hyper starts the
    /// same timer while it waits for the next request's headers.
    pub header_timeout: Duration,
    /// Until the request's whole body has arrived (every route; most bodies are empty).
    pub body_timeout: Duration,
    /// Open connections at most; the next one waits in the kernel's accept queue.
    pub max_connections: usize,
    /// Request body bytes at most (every route): 413 past it.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_body: 64 * 1024,
        }
    }
}

/// Serves until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    dispatch: tracing::Dispatch,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = shared.settings.http;
    let app = router(shared, dispatch.clone());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first: past the cap, connections wait unaccepted (no descriptor).
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(
            async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "HTTP connection closed");
                }
                drop(slot);
            }
            .with_subscriber(dispatch.clone()),
        );
    }
    drop(listener);
    // Idle connections close now; those with a request in flight close after its response.
    graceful.shutdown().await;
    Ok(())
}

/// Reads the whole request body before the handler runs, within `body_timeout` and
/// `max_body`: a body trickled byte by byte or one too large ends the request.
async fn read_body(State(limits): State<Limits>, req: HttpRequest, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return too_large(limits);
    }
    let bytes = match tokio::time::timeout(
        limits.body_timeout,
        axum::body::to_bytes(body, limits.max_body),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return too_large(limits),
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                "the request body did not arrive in time\n",
            )
                .into_response()
        }
    };
    next.run(HttpRequest::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(limits: Limits) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONNECTION, "close")],
        format!(
            "the request body is larger than {} bytes\n",
            limits.max_body
        ),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let why = shared.readiness();
    if why.is_empty() {
        Json(json!({"ready": true})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reasons": why})),
        )
            .into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.readiness();
    let text = shared.metrics.render(shared.mm.stats());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `Ok` when the request carries the API token.
#[allow(clippy::result_large_err)]
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let Some(token) = &shared.settings.api_token else {
        return Err((
            StatusCode::FORBIDDEN,
            Json(json!({"error": "the API is disabled: set serve.api_token_file (or MATTERSYNC_API_TOKEN)"})),
        )
            .into_response());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if same_secret(given.trim(), token.expose()) {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "missing or wrong bearer token"})),
        )
            .into_response())
    }
}

#[derive(Deserialize)]
struct SyncQuery {
    #[serde(default)]
    allow_mass_removal: bool,
    /// The held-plan fingerprint to apply, and only that plan.
    #[serde(default)]
    approve: Option<String>,
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

async fn sync(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<SyncQuery>,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    if let Some(r) = standby(&shared) {
        return r;
    }
    if let Some(fp) = &q.approve {
        let fp = fp.trim();
        if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "a held-plan fingerprint is 64 hex digits (GET /holds shows it)"})),
            )
                .into_response();
        }
    }
    let (tx, rx) = oneshot::channel();
    let approval = match (&q.approve, q.allow_mass_removal) {
        (Some(fp), _) => mattersync_engine::Approval::Exactly(fp.trim().to_string()),
        (None, true) => mattersync_engine::Approval::Any,
        (None, false) => mattersync_engine::Approval::None,
    };
    let actor = match approval {
        mattersync_engine::Approval::None => "api".to_string(),
        mattersync_engine::Approval::Any
        | mattersync_engine::Approval::Exactly(_)
        | mattersync_engine::Approval::Within(_) => approver(&headers),
    };
    let req = Request::Full {
        approval,
        actor,
        reply: Some(tx),
    };
    if shared.requests.send(req).await.is_err() {
        return stopping();
    }
    if !q.wait {
        return (StatusCode::ACCEPTED, Json(json!({"queued": true}))).into_response();
    }
    match tokio::time::timeout(SYNC_WAIT, rx).await {
        Ok(Ok(report)) => {
            let status = match report.outcome {
                Outcome::Ok | Outcome::NoChanges => StatusCode::OK,
                Outcome::GuardTripped => StatusCode::CONFLICT,
                Outcome::DirectoryError | Outcome::MattermostError => StatusCode::BAD_GATEWAY,
                Outcome::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                Outcome::Partial | Outcome::Error => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(report)).into_response()
        }
        Ok(Err(_)) => stopping(),
        Err(_) => (
            StatusCode::ACCEPTED,
            Json(json!({"queued": true, "detail": "still running; see /metrics and the status page"})),
        )
            .into_response(),
    }
}

/// The header an approver names themselves in (`mattersync approve` sends `cli:<user>`).
/// Taken as said by whoever holds the API token: it names, it does not authenticate.
pub const APPROVER_HEADER: &str = "x-mattersync-approver";

/// `approval:<who>`: the name the request gives in [`APPROVER_HEADER`], else `approval:api`.
fn approver(headers: &HeaderMap) -> String {
    engine::actor::approval(headers.get(APPROVER_HEADER).and_then(|v| v.to_str().ok()))
}

#[derive(Deserialize)]
struct HoldsQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_page")]
    limit: usize,
}

fn default_page() -> usize {
    engine::hold::DEFAULT_PAGE
}

/// What a guard holds now, with one page of its changes.
async fn holds(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HoldsQuery>,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    if let Some(r) = standby(&shared) {
        return r;
    }
    let hold = shared.read_status(|s| s.hold.clone());
    let holds: Vec<serde_json::Value> = hold
        .iter()
        .map(|h| hold_json(&shared, h, q.offset, q.limit))
        .collect();
    Json(json!({"held_changes": hold.as_ref().map_or(0, |h| h.summary.held_changes()), "holds": holds}))
        .into_response()
}

fn hold_json(
    shared: &Shared,
    h: &super::state::Hold,
    offset: usize,
    limit: usize,
) -> serde_json::Value {
    json!({
        "fingerprint": h.summary.fingerprint,
        "since": h.since,
        "age_seconds": h.age_secs(),
        "changed_at": h.changed_at,
        "full_reconcile": h.full,
        "directory_changes": h.directory_changes,
        "summary": h.summary.page(offset, limit),
        "approve": h.how_to_approve(&shared.settings.listen),
    })
}

#[derive(Deserialize)]
struct ApproveQuery {
    #[serde(default = "yes")]
    wait: bool,
}

/// Applies exactly the held set with this fingerprint: the worker plans the held scopes
/// again and applies them only if they are still that set. 409 with the new summary when
/// what is held changed, or when nothing is held.
async fn approve(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::Path(fingerprint): axum::extract::Path<String>,
    Query(q): Query<ApproveQuery>,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    if let Some(r) = standby(&shared) {
        return r;
    }
    let fingerprint = fingerprint.trim().to_ascii_lowercase();
    if fingerprint.len() != 64 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "a held-plan fingerprint is 64 hex digits (GET /holds shows it)"}),
            ),
        )
            .into_response();
    }
    let (tx, rx) = oneshot::channel();
    let req = Request::Approve {
        fingerprint: fingerprint.clone(),
        actor: approver(&headers),
        reply: Some(tx),
    };
    if shared.requests.send(req).await.is_err() {
        return stopping();
    }
    if !q.wait {
        return (StatusCode::ACCEPTED, Json(json!({"queued": true}))).into_response();
    }
    let report = match tokio::time::timeout(SYNC_WAIT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return stopping(),
        Err(_) => {
            return (
                StatusCode::ACCEPTED,
                Json(json!({"queued": true, "detail": "still running; see GET /holds and the status page"})),
            )
                .into_response()
        }
    };
    let hold = shared.read_status(|s| s.hold.clone());
    let (status, body) = match report.outcome {
        Outcome::Ok | Outcome::Partial if report.approved => (
            if report.outcome == Outcome::Ok {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            json!({"approved": true, "fingerprint": fingerprint, "run": report}),
        ),
        Outcome::GuardTripped => (
            StatusCode::CONFLICT,
            json!({
                "approved": false,
                "error": "what is held now is not the set approved: review the new summary and approve its fingerprint",
                "approved_fingerprint": fingerprint,
                "fingerprint": hold.as_ref().map(|h| h.summary.fingerprint.clone()),
                "hold": hold.as_ref().map(|h| hold_json(&shared, h, 0, engine::hold::DEFAULT_PAGE)),
                "run": report,
            }),
        ),
        Outcome::Ok | Outcome::NoChanges => (
            StatusCode::CONFLICT,
            json!({"approved": false, "error": "nothing is held now (the directory changed it back, or what the held scopes need now is within the guards and was applied as usual); nothing was applied under this approval", "run": report}),
        ),
        Outcome::DirectoryError | Outcome::MattermostError => (
            StatusCode::BAD_GATEWAY,
            json!({"approved": false, "error": "the held scopes could not be read; the approval is kept and tried again until serve.approval_ttl", "run": report}),
        ),
        Outcome::Stopped => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"approved": false, "run": report}),
        ),
        Outcome::Partial | Outcome::Error => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"approved": false, "run": report}),
        ),
    };
    (status, Json(body)).into_response()
}

/// `Some(503)` on a standby of a shared ledger: the work, holds and approvals are the
/// leader's.
fn standby(shared: &Shared) -> Option<Response> {
    let role = shared.read_status(|s| s.role.clone());
    match role {
        super::state::Role::Standby {
            leader,
            epoch,
            since,
        } => Some(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "error": "standby: this instance does not sync now; ask the leader",
                    "leader": leader,
                    "epoch": epoch,
                    "since": since,
                })),
            )
                .into_response(),
        ),
        super::state::Role::Alone | super::state::Role::Leader { .. } => None,
    }
}

fn stopping() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the service is stopping"})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct PlanQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn plan(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PlanQuery>,
) -> Response {
    if let Err(r) = authorize(&shared, &headers) {
        return r;
    }
    let before = shared.mm.stats();
    let result = async {
        let dir = read_directory(&shared.ldap).await?;
        let view = LedgerView::read(&*shared.ledger.lock().await)?;
        let state =
            engine::gather_selected(&shared.cfg, &shared.mm, dir, view, |l| l.to_vec()).await?;
        anyhow::Ok(state)
    }
    .await;
    let state = match result {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                Json(json!({"error": format!("{e:#}")})),
            )
                .into_response()
        }
    };
    let plan = state.plan();
    let calls = shared.mm.stats().since(&before);
    if q.format.as_deref() == Some("text") {
        let mut text = output::plan_text(&plan);
        if let Some(h) = engine::HoldSummary::of(&plan, &state.policy.links) {
            text.push_str(&h.text(50));
        }
        text.push_str(&output::link_issues_text(&state.link_issues));
        for w in &state.warnings {
            text.push_str(&format!("warning: {w}\n"));
        }
        text.push_str(&output::calls_text(&calls));
        text.push('\n');
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    }
    let hold = engine::HoldSummary::of(&plan, &state.policy.links);
    Json(output::plan_json(
        &plan,
        hold.as_ref(),
        &state.link_issues,
        &calls,
    ))
    .into_response()
}

async fn status_page(State(shared): State<Arc<Shared>>) -> Response {
    shared.readiness();
    let (runs, events) = {
        let ledger = shared.ledger.lock().await;
        (
            ledger.runs(10).unwrap_or_default(),
            ledger
                .events(&mattersync_ledger::AuditQuery {
                    limit: 30,
                    ..Default::default()
                })
                .unwrap_or_default(),
        )
    };
    Html(page::render(&shared, &runs, &events)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::metrics::Metrics;
    use crate::serve::state::{ChangeSource, CycleReport, Settings, Status};
    use mattersync_ledger::Ledger;
    use mattersync_mattermost::{Client, ClientConfig, Secret};
    use std::os::unix::fs::PermissionsExt;
    use tokio::sync::{mpsc, watch};

    struct Served {
        base: String,
        requests: mpsc::Receiver<Request>,
        stop: watch::Sender<bool>,
        _dir: tempfile::TempDir,
    }

    fn secret(dir: &std::path::Path, name: &str, value: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, value).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }

    /// The HTTP side alone, on a port of its own, with no server behind it.
    async fn serve_alone(api_token: Option<&str>, slash_token: Option<&str>) -> Served {
        serve_with(
            api_token,
            slash_token,
            Limits::default(),
            tracing::Dispatch::none(),
        )
        .await
    }

    /// [`serve_alone`] with other limits, logging to `dispatch`.
    async fn serve_with(
        api_token: Option<&str>,
        slash_token: Option<&str>,
        limits: Limits,
        dispatch: tracing::Dispatch,
    ) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let mm_token = secret(dir.path(), "mm.token", "mm-token");
        let mut text = format!(
            "[directory]\nuri = \"ldap://127.0.0.1:9\"\nbase_dn = \"dc=example,dc=org\"\n\
             [areas]\nrl = \"rocky-linux\"\nresf = \"resf\"\n\
             [mattermost]\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"{}\"\nmatch = {{ by = \"username\" }}\n",
            mm_token.display()
        );
        if let Some(t) = slash_token {
            // The rocky-linux team's command has this token; the resf team's another.
            let tokens = dir.path().join("slash");
            std::fs::create_dir(&tokens).expect("mkdir");
            secret(&tokens, "rocky-linux.token", t);
            secret(&tokens, "resf.token", &format!("{t}-resf"));
            text.push_str(&format!(
                "[serve]\nslash_command_token_dir = \"{}\"\n",
                tokens.display()
            ));
        }
        let cfg = mattersync_engine::config::parse(&text, &[]).expect("config");
        let (tx, rx) = mpsc::channel(8);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            settings: Settings {
                listen: "127.0.0.1:0".into(),
                full_reconcile: Duration::from_secs(900),
                guard_window: Duration::from_secs(600),
                approval_ttl: Duration::from_secs(3600),
                changes: ChangeSource::Auto,
                debounce: Duration::from_millis(100),
                poll_interval: Duration::from_secs(5),
                poll_listing: Duration::from_secs(60),
                heartbeat: Duration::from_secs(30),
                api_token: api_token.map(Secret::new),
                http: limits,
            },
            metrics: Metrics::new(),
            status: std::sync::RwLock::new(Status::new("syncrepl")),
            requests: tx,
            mm: Client::new(ClientConfig::new("http://127.0.0.1:9", Secret::new("x")))
                .expect("client"),
            ldap: mattersync_directory::LdapConfig::new("ldap://127.0.0.1:9", "dc=example,dc=org"),
            ledger: tokio::sync::Mutex::new(Ledger::open_in_memory().expect("ledger")),
            told_ready: Default::default(),
            alerts: crate::serve::alerts::Alerts::new("x"),
            cfg,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        tokio::spawn(serve(listener, shared, dispatch, shutdown));
        Served {
            base,
            requests: rx,
            stop: stop_tx,
            _dir: dir,
        }
    }

    #[tokio::test]
    async fn health_readiness_metrics_and_the_page_answer_without_servers() {
        let s = serve_alone(None, None).await;
        let http = reqwest::Client::new();
        let r = http
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200);
        let r = http
            .get(format!("{}/readyz", s.base))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 503);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["ready"], false);
        let reasons = body["reasons"].to_string();
        assert!(reasons.contains("directory: not read yet"), "{reasons}");
        assert!(reasons.contains("first full reconcile"), "{reasons}");
        let r = http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .expect("get");
        assert!(r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/openmetrics-text")));
        let text = r.text().await.expect("text");
        assert!(text.lines().any(|l| l == "mattersync_ready 0"), "{text}");
        let page = http.get(&s.base).send().await.expect("get");
        assert_eq!(page.status(), 200);
        let page = page.text().await.expect("text");
        assert!(
            page.contains("not ready") && page.contains("No links yet"),
            "{page}"
        );
        let _ = s.stop.send(true);
    }

    #[tokio::test]
    async fn the_api_needs_its_token_and_forwards_a_sync_to_the_worker() {
        let disabled = serve_alone(None, None).await;
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{}/sync", disabled.base))
            .bearer_auth("anything")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 403, "no token configured: the API is off");

        let mut s = serve_alone(Some("s3cret-api"), None).await;
        for token in [None, Some("wrong"), Some("s3cret-apI")] {
            let mut req = http.post(format!("{}/sync", s.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.expect("post");
            assert_eq!(r.status(), 401, "{token:?}");
            assert_eq!(
                r.headers().get("www-authenticate").map(|v| v.as_bytes()),
                Some(&b"Bearer"[..])
            );
        }
        let r = http
            .get(format!("{}/plan", s.base))
            .bearer_auth("wrong")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 401);
        for (method, path) in [
            (reqwest::Method::GET, "/holds"),
            (
                reqwest::Method::POST,
                &format!("/approve/{}", "ab".repeat(32))[..],
            ),
        ] {
            let r = http
                .request(method, format!("{}{path}", s.base))
                .bearer_auth("wrong")
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 401, "{path}");
        }
        let r = http
            .get(format!("{}/holds", s.base))
            .bearer_auth("s3cret-api")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body, serde_json::json!({"held_changes": 0, "holds": []}));
        let r = http
            .post(format!("{}/approve/not-a-fingerprint", s.base))
            .bearer_auth("s3cret-api")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 400, "refused before the worker is asked");

        // The worker's side of POST /sync: answer the first request the HTTP side sent.
        let worker = async {
            while let Some(req) = s.requests.recv().await {
                if let Request::Full {
                    approval,
                    reply: Some(reply),
                    ..
                } = req
                {
                    let allow_mass_removal = approval == mattersync_engine::Approval::Any;
                    let _ = reply.send(CycleReport {
                        kind: "manual",
                        outcome: if allow_mass_removal {
                            Outcome::Ok
                        } else {
                            Outcome::GuardTripped
                        },
                        started_at: String::new(),
                        duration_ms: 1,
                        scope: "all".into(),
                        links: 0,
                        actions: 0,
                        users_ok: 0,
                        users_failed: 0,
                        api_calls: 0,
                        run_id: None,
                        guard_trips: Vec::new(),
                        error: None,
                        approved: false,
                        hold: None,
                    });
                    return allow_mass_removal;
                }
            }
            false
        };
        let request = http
            .post(format!("{}/sync?allow_mass_removal=true", s.base))
            .bearer_auth("s3cret-api")
            .send();
        let (allowed, r) = tokio::join!(worker, request);
        assert!(allowed);
        let r = r.expect("post");
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["outcome"], "ok");
        let _ = s.stop.send(true);
        let _ = disabled.stop.send(true);
    }

    #[tokio::test]
    async fn the_slash_endpoint_checks_its_token() {
        let http = reqwest::Client::new();
        let off = serve_alone(None, None).await;
        let r = http
            .post(format!("{}/slash", off.base))
            .form(&[("token", "x"), ("text", "help")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 404);

        let s = serve_alone(None, Some("slash-token")).await;
        let r = http
            .post(format!("{}/slash", s.base))
            .form(&[("token", "slash-tokeN"), ("text", "help")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 401);
        // Each team's token is a token (help needs no look-up); an empty one never is.
        for token in ["slash-token", "slash-token-resf"] {
            let r = http
                .post(format!("{}/slash", s.base))
                .form(&[("token", token), ("text", "help"), ("user_name", "neil")])
                .send()
                .await
                .expect("post");
            assert_eq!(r.status(), 200, "{token}");
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["response_type"], "ephemeral");
            assert!(
                body["text"].as_str().is_some_and(|t| t.contains("Usage")),
                "{body}"
            );
        }
        let r = http
            .post(format!("{}/slash", s.base))
            .form(&[("token", ""), ("text", "help")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 401);
        let _ = s.stop.send(true);
        let _ = off.stop.send(true);
    }

    /// Short limits, so slow clients are cut off within a test.
    fn short_limits(max_connections: usize) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            max_connections,
            max_body: 64 * 1024,
        }
    }

    /// Reads until the server closes the connection (or `limit` passes): how long it lived
    /// after `since`, and what the server sent.
    async fn until_closed(
        mut c: tokio::net::TcpStream,
        since: std::time::Instant,
        limit: Duration,
    ) -> (Option<Duration>, Vec<u8>) {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
                Err(_) => return (None, got),
                Ok(Ok(0)) | Ok(Err(_)) => return (Some(since.elapsed()), got),
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[tokio::test]
    async fn slow_and_idle_connections_are_cut_off_while_healthz_answers() {
        use tokio::io::AsyncWriteExt;
        let limits = short_limits(256);
        let s = serve_with(None, None, limits, tracing::Dispatch::none()).await;
        let addr = s.base.trim_start_matches("http://").to_string();
        // 40 connections that never finish a request: 10 each of silent, half a header,
        // a body trickled a byte every 200 ms (longer than the body timeout), and a
        // kept-alive connection left idle after one answer.
        let mut watchers = Vec::new();
        for i in 0..40 {
            let mut c = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            let kind = ["silent", "half header", "trickled body", "idle keep-alive"][i % 4];
            match i % 4 {
                0 => {}
                1 => c
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    .await
                    .expect("write"),
                2 => c
                    .write_all(
                        b"POST /slash HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                          Content-Type: application/x-www-form-urlencoded\r\n\
                          Content-Length: 1000\r\n\r\ntoken=",
                    )
                    .await
                    .expect("write"),
                _ => c
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    .await
                    .expect("write"),
            }
            let since = std::time::Instant::now();
            if i % 4 == 2 {
                let (mut r, mut w) = c.into_split();
                watchers.push(tokio::spawn(async move {
                    let trickle = async {
                        for _ in 0..15 {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            if w.write_all(b"x").await.is_err() {
                                break;
                            }
                        }
                    };
                    let read = async {
                        use tokio::io::AsyncReadExt;
                        let mut got = Vec::new();
                        let r =
                            tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut got))
                                .await;
                        (r.is_ok().then(|| since.elapsed()), got)
                    };
                    let ((lived, got), ()) = tokio::join!(read, trickle);
                    (kind, lived, got)
                }));
            } else {
                watchers.push(tokio::spawn(async move {
                    let (lived, got) = until_closed(c, since, Duration::from_secs(5)).await;
                    (kind, lived, got)
                }));
            }
        }

        // Meanwhile /healthz answers, on fresh connections, quickly.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let mut slowest = Duration::ZERO;
        for _ in 0..25 {
            let t = std::time::Instant::now();
            let r = http
                .get(format!("{}/healthz", s.base))
                .send()
                .await
                .expect("/healthz answers while 40 connections hang");
            assert_eq!(r.status(), 200);
            slowest = slowest.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            slowest < Duration::from_millis(500),
            "/healthz took {slowest:?}"
        );

        let mut longest = Duration::ZERO;
        for w in watchers {
            let (kind, lived, got) = w.await.expect("watcher");
            let lived = lived.unwrap_or_else(|| panic!("{kind}: still open after 5 s"));
            assert!(
                lived >= Duration::from_millis(800) && lived <= Duration::from_millis(2500),
                "{kind}: closed after {lived:?}"
            );
            let text = String::from_utf8_lossy(&got);
            match kind {
                "trickled body" => assert!(text.starts_with("HTTP/1.1 408"), "{kind}: {text}"),
                "idle keep-alive" => assert!(text.starts_with("HTTP/1.1 200"), "{kind}: {text}"),
                _ => {}
            }
            longest = longest.max(lived);
        }
        println!("40 hanging connections closed after at most {longest:?}; /healthz took at most {slowest:?}");
        let _ = s.stop.send(true);
    }

    #[tokio::test]
    async fn past_the_connection_cap_a_client_waits_for_a_free_slot() {
        let s = serve_with(None, None, short_limits(4), tracing::Dispatch::none()).await;
        let addr = s.base.trim_start_matches("http://").to_string();
        let mut silent = Vec::new();
        for _ in 0..4 {
            silent.push(
                tokio::net::TcpStream::connect(&addr)
                    .await
                    .expect("connect"),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = std::time::Instant::now();
        let r = reqwest::Client::new()
            .get(format!("{}/healthz", s.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("answered once the header timeout frees a slot");
        assert_eq!(r.status(), 200);
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(500) && waited <= Duration::from_millis(2500),
            "waited {waited:?}"
        );
        println!("the fifth connection waited {waited:?} for a slot");
        let _ = s.stop.send(true);
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_refused() {
        let s = serve_alone(None, Some("slash-token")).await;
        let http = reqwest::Client::new();
        let big = "x".repeat(64 * 1024 + 1);
        for path in ["/slash", "/sync", "/healthz"] {
            let r = http
                .post(format!("{}{path}", s.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(big.clone())
                .send()
                .await
                .expect("post");
            assert_eq!(r.status(), 413, "{path}");
        }
        let _ = s.stop.send(true);
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_name_with_a_newline_cannot_forge_a_text_log_line() {
        let log = Capture::default();
        let writer = log.clone();
        let dispatch = crate::serve::log_to(
            crate::serve::LogFormat::Text,
            tracing_subscriber::EnvFilter::new("info"),
            move || writer.clone(),
        );
        let s = serve_with(None, Some("slash-token"), Limits::default(), dispatch).await;
        let forged = "neil\n2026-01-01T00:00:00Z  INFO forged";
        let r = reqwest::Client::new()
            .post(format!("{}/slash", s.base))
            .form(&[("token", "wrong"), ("text", "help"), ("user_name", forged)])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 401);
        let _ = s.stop.send(true);
        let text = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].contains("wrong token") && lines[0].contains("neil\\n2026"),
            "{text}"
        );
    }
}
