//! The admin HTTP API on a loopback address: `GET /healthz`, `GET /components` (per role the
//! pipeline has — features, detector, model for an anomaly stream; policy for a dedup stream —
//! the version serving, the previous one, the upgrade history), `GET /metrics` (Prometheus),
//! and — with the bearer token — `POST /components/ROLE?sha256=HEX` (upload a candidate
//! component or model; the digest the caller states must match) and `POST /rollback?role=ROLE`
//! (features or policy when not given). Changes answer once the pipeline switched or refused.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use sg_core::component::ComponentSource;
use sg_metrics::METRICS;
use sg_core::swap::{Requests, Role, StatusBoard, Trigger};

/// How long a change waits for the pipeline to switch or refuse.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

/// Where and how the admin API listens.
#[derive(Clone, Debug)]
pub struct AdminSettings {
    /// Loopback address (port 0: any free port).
    pub address: SocketAddr,
    /// Bearer token for changes; without one, changes are refused.
    pub token: Option<String>,
    /// Where uploaded candidates are kept.
    pub uploads: PathBuf,
}

#[derive(Clone)]
struct AppState {
    status: StatusBoard,
    requests: Requests,
    token: Option<String>,
    uploads: PathBuf,
}

#[derive(Deserialize)]
struct UploadQuery {
    sha256: String,
}

#[derive(Deserialize)]
struct RollbackQuery {
    role: Option<String>,
}

/// The role called `name`, if this pipeline has it.
fn role(state: &AppState, name: &str) -> Result<Role, Box<Response>> {
    Role::parse(name).filter(|r| state.status.contains_key(r.name())).ok_or_else(|| {
        let roles: Vec<&str> = state.status.keys().copied().collect();
        Box::new(json(StatusCode::NOT_FOUND, serde_json::json!({"error": format!("this pipeline has no {name:?} to upgrade; it has: {}", roles.join(", "))})))
    })
}

fn json(code: StatusCode, value: serde_json::Value) -> Response {
    (code, axum::Json(value)).into_response()
}

/// Why a change is not allowed, if it is not.
fn refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &state.token else {
        return Some(json(StatusCode::FORBIDDEN, serde_json::json!({"error": "changes are disabled: no admin token configured"})));
    };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    // Compare digests, not the strings: no early exit on the first differing byte.
    if Sha256::digest(given.as_bytes()) != Sha256::digest(format!("Bearer {token}").as_bytes()) {
        return Some(json(StatusCode::UNAUTHORIZED, serde_json::json!({"error": "a valid bearer token is required"})));
    }
    None
}

fn outcome(result: Result<String, String>) -> Response {
    match result {
        Ok(serving) => json(StatusCode::OK, serde_json::json!({ "serving": serving })),
        Err(reason) => json(StatusCode::CONFLICT, serde_json::json!({ "refused": reason })),
    }
}

async fn upload(
    State(state): State<AppState>,
    Path(role_name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> Response {
    if let Some(r) = refusal(&state, &headers) {
        return r;
    }
    let role = match role(&state, &role_name) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let found = hex::encode(Sha256::digest(&body));
    if found != q.sha256.to_ascii_lowercase() {
        return json(StatusCode::BAD_REQUEST, serde_json::json!({"error": format!("sha256 of the upload is {found}, the request states {}", q.sha256)}));
    }
    let path = state.uploads.join(format!("{found}.{}", if role == Role::Model { "model" } else { "wasm" }));
    if let Err(e) = std::fs::create_dir_all(&state.uploads).and_then(|_| std::fs::write(&path, &body)) {
        return json(StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({"error": format!("storing the upload: {e}")}));
    }
    let requests = state.requests.clone();
    let answer = tokio::task::spawn_blocking(move || {
        requests.load_and_wait(role, ComponentSource::File(path), Trigger::Admin, ANSWER_WITHIN)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    outcome(answer)
}

async fn rollback(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<RollbackQuery>) -> Response {
    if let Some(r) = refusal(&state, &headers) {
        return r;
    }
    let default = if state.status.contains_key(Role::Policy.name()) { "policy" } else { "features" };
    let role = match role(&state, q.role.as_deref().unwrap_or(default)) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let requests = state.requests.clone();
    let answer = tokio::task::spawn_blocking(move || requests.rollback_and_wait(role, ANSWER_WITHIN))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    outcome(answer)
}

async fn components(State(state): State<AppState>) -> Response {
    let board: serde_json::Map<String, serde_json::Value> = state
        .status
        .iter()
        .map(|(role, s)| ((*role).to_string(), serde_json::to_value(&*s.lock().expect("not poisoned")).expect("serializable")))
        .collect();
    json(StatusCode::OK, serde_json::Value::Object(board))
}

async fn metrics() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], METRICS.render()).into_response()
}

/// Starts the admin API on its own thread; returns the address it listens on.
pub fn serve(settings: AdminSettings, status: StatusBoard, requests: Requests) -> Result<SocketAddr> {
    if !settings.address.ip().is_loopback() {
        bail!("the admin API listens on loopback addresses only, not {}", settings.address);
    }
    let listener = std::net::TcpListener::bind(settings.address)
        .with_context(|| format!("admin API: binding {}", settings.address))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let state = AppState { status, requests, token: settings.token, uploads: settings.uploads };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/components", get(components))
        .route("/components/{role}", post(upload))
        .route("/rollback", post(rollback))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(state);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("sg-admin".into()).spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a bound listener");
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("sg-host: admin API stopped: {e}");
            }
        })
    })?;
    Ok(address)
}
