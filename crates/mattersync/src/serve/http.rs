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
use super::state::{Outcome, Request, Shared};
use super::worker::read_directory;
use crate::output;
use axum::extract::{Query, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mattersync_engine::{self as engine, LedgerView};
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
    let (tx, rx) = oneshot::channel();
    let approval = match (&q.approve, q.allow_mass_removal) {
        (Some(fp), _) => mattersync_engine::Approval::Exactly(fp.trim().to_string()),
        (None, true) => mattersync_engine::Approval::Any,
        (None, false) => mattersync_engine::Approval::None,
    };
    let req = Request::Full {
        approval,
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
        text.push_str(&output::link_issues_text(&state.link_issues));
        for w in &state.warnings {
            text.push_str(&format!("warning: {w}\n"));
        }
        text.push_str(&output::calls_text(&calls));
        text.push('\n');
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    }
    Json(output::plan_json(&plan, &state.link_issues, &calls)).into_response()
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
    use crate::serve::slash::SystemAdmins;
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
        let dir = tempfile::tempdir().expect("tempdir");
        let mm_token = secret(dir.path(), "mm.token", "mm-token");
        let text = format!(
            "[directory]\nuri = \"ldap://127.0.0.1:9\"\nbase_dn = \"dc=example,dc=org\"\n\
             [areas]\nrl = \"rocky-linux\"\n\
             [mattermost]\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"{}\"\n",
            mm_token.display()
        );
        let cfg = mattersync_engine::config::parse(&text, &[]).expect("config");
        let (tx, rx) = mpsc::channel(8);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            settings: Settings {
                listen: "127.0.0.1:0".into(),
                full_reconcile: Duration::from_secs(900),
                guard_window: Duration::from_secs(600),
                changes: ChangeSource::Auto,
                debounce: Duration::from_millis(100),
                poll_interval: Duration::from_secs(5),
                poll_listing: Duration::from_secs(60),
                heartbeat: Duration::from_secs(30),
                api_token: api_token.map(Secret::new),
                slash_token_file: slash_token.map(|t| secret(dir.path(), "slash.token", t)),
            },
            metrics: Metrics::new(),
            status: std::sync::RwLock::new(Status::new("syncrepl")),
            requests: tx,
            mm: Client::new(ClientConfig::new("http://127.0.0.1:9", Secret::new("x")))
                .expect("client"),
            ldap: mattersync_directory::LdapConfig::new("ldap://127.0.0.1:9", "dc=example,dc=org"),
            ledger: tokio::sync::Mutex::new(Ledger::open_in_memory().expect("ledger")),
            system_admins: SystemAdmins::new(&cfg).expect("system admins"),
            cfg,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        tokio::spawn(serve(listener, shared, tracing::Dispatch::none(), shutdown));
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

        // The worker's side of POST /sync: answer the first request the HTTP side sent.
        let worker = async {
            while let Some(req) = s.requests.recv().await {
                if let Request::Full {
                    approval,
                    reply: Some(reply),
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
        let r = http
            .post(format!("{}/slash", s.base))
            .form(&[
                ("token", "slash-token"),
                ("text", "help"),
                ("user_name", "neil"),
            ])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["response_type"], "ephemeral");
        assert!(
            body["text"].as_str().is_some_and(|t| t.contains("Usage")),
            "{body}"
        );
        let _ = s.stop.send(true);
        let _ = off.stop.send(true);
    }
}
