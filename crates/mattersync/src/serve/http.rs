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
//! | POST | `/slash` | slash token | the Mattermost slash command |

use super::page;
use super::slash::{self, same_secret};
use super::state::{Request, Shared};
use super::worker::read_directory;
use crate::{engine, output};
use axum::extract::{Query, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
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
        .route("/slash", post(slash::handle))
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

/// Serves until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    dispatch: tracing::Dispatch,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared, dispatch))
        .with_graceful_shutdown(shutdown)
        .await
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
    let (tx, rx) = oneshot::channel();
    let req = Request::Full {
        allow_mass_removal: q.allow_mass_removal,
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
                "ok" | "no_changes" => StatusCode::OK,
                "guard_tripped" => StatusCode::CONFLICT,
                "directory_error" | "mattermost_error" => StatusCode::BAD_GATEWAY,
                "stopped" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
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
        let (links, warnings, facts) = {
            let ledger = shared.ledger.lock().await;
            let (links, warnings) = engine::resolve_links(&shared.cfg, &dir, ledger.links()?)?;
            (links, warnings, ledger.facts()?)
        };
        engine::gather_links(&shared.cfg, &shared.mm, dir, links, facts, warnings).await
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
        for w in &state.warnings {
            text.push_str(&format!("warning: {w}\n"));
        }
        text.push_str(&output::calls_text(&calls));
        text.push('\n');
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    }
    Json(output::plan_json(&plan, &calls)).into_response()
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
