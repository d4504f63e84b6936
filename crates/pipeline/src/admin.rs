//! The admin HTTP API: `GET /healthz` (liveness: the run loop turned within its deadline),
//! `GET /readyz` (readiness: components loaded, partitions assigned), `GET /metrics`
//! (Prometheus) and, on a stream, `GET /components` (per role — features, detector, model for
//! an anomaly stream; policy for a dedup stream — the version serving, the previous one, the
//! upgrade history) and the changes: `POST /components/ROLE?sha256=HEX` (upload a candidate
//! component or model; the digest the caller states must match) and `POST /rollback?role=ROLE`
//! (features or policy when not given). Changes answer once the pipeline switched or refused.
//!
//! Access: loopback by default, where the `Host` header must name loopback too (a page on
//! another site cannot reach the API through DNS rebinding). Any other address only over TLS
//! (rustls), with client certificates (mTLS) or the bearer token for changes. A change is
//! authenticated from its headers, before any of its body is read; bodies are capped per role,
//! and requests in flight are capped (more are answered 503 at once).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use sg_core::component::ComponentSource;
use sg_core::swap::{Requests, Role, StatusBoard, Trigger};
use sg_metrics::METRICS;
use sg_metrics::health::HEALTH;

/// How long a change waits for the pipeline to switch or refuse.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);
/// Largest component upload (a `.wasm`).
const MAX_COMPONENT_UPLOAD: u64 = 64 << 20;
/// Largest model upload.
const MAX_MODEL_UPLOAD: u64 = 32 << 20;
/// Requests served at once; more are refused with 503 rather than queued.
const MAX_IN_FLIGHT: usize = 16;
/// How long a connection may take to send its first request (slow clients hold no slot).
const FIRST_REQUEST_WITHIN: Duration = Duration::from_secs(10);

/// Where and how the admin API listens.
#[derive(Clone, Debug)]
pub struct AdminSettings {
    /// Address (port 0: any free port); not loopback only with [`AdminSettings::tls`].
    pub address: SocketAddr,
    /// Bearer token for changes.
    pub token: Option<String>,
    /// Where uploaded candidates are kept.
    pub uploads: PathBuf,
    /// TLS: required on a non-loopback address.
    pub tls: Option<TlsFiles>,
    /// `/healthz` fails when the run loop has not turned for this long.
    pub liveness_deadline: Duration,
}

impl AdminSettings {
    /// The access rules, checked at start: off loopback only over TLS, and an API that can
    /// change the pipeline (`changes`) only with client certificates or the bearer token.
    pub fn check(&self, changes: bool) -> Result<()> {
        if self.address.ip().is_loopback() {
            return Ok(());
        }
        let Some(tls) = &self.tls else {
            bail!("the admin API listens on {} (not loopback) only over TLS: give --admin-tls-cert and --admin-tls-key", self.address);
        };
        if changes && tls.client_ca.is_none() && self.token.is_none() {
            bail!("the admin API on {} (not loopback) needs client certificates (--admin-client-ca) or a bearer token (--admin-token-file)", self.address);
        }
        Ok(())
    }
}

/// The API's certificate and key, and the CA its clients' certificates must chain to (mTLS).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) for client certificates; with it a client without a certificate
    /// this CA signed is refused in the handshake.
    pub client_ca: Option<PathBuf>,
}

/// What the API may change: a stream's upgrade status and requests (absent on the probe and
/// metrics endpoint of a bounded run).
#[derive(Clone)]
pub struct Upgradable {
    /// The versions serving, per role.
    pub status: StatusBoard,
    /// Where change requests go.
    pub requests: Requests,
}

#[derive(Clone)]
struct AppState {
    upgradable: Option<Upgradable>,
    token: Option<String>,
    /// Clients proved themselves with a certificate in the handshake.
    mtls: bool,
    uploads: PathBuf,
    liveness_deadline: Duration,
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
fn role(up: &Upgradable, name: &str) -> Result<Role, Box<Response>> {
    Role::parse(name).filter(|r| up.status.contains_key(r.name())).ok_or_else(|| {
        let roles: Vec<&str> = up.status.keys().copied().collect();
        Box::new(json(StatusCode::NOT_FOUND, serde_json::json!({"error": format!("this pipeline has no {name:?} to upgrade; it has: {}", roles.join(", "))})))
    })
}

fn json(code: StatusCode, value: serde_json::Value) -> Response {
    (code, axum::Json(value)).into_response()
}

/// Why a change is not allowed, if it is not: the bearer token when one is configured, else
/// the client certificate checked in the handshake, else changes are off.
fn refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &state.token else {
        if state.mtls {
            return None;
        }
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

/// Lets a change through only with the bearer token — before its body is read, so an
/// unauthenticated upload costs the API nothing but its headers.
async fn require_token(State(state): State<AppState>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match refusal(&state, request.headers()) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

/// The body cap of an upload for `role`.
fn upload_cap(role: Role) -> u64 {
    if role == Role::Model { MAX_MODEL_UPLOAD } else { MAX_COMPONENT_UPLOAD }
}

fn too_large(cap: u64) -> Response {
    json(StatusCode::PAYLOAD_TOO_LARGE, serde_json::json!({"error": format!("an upload of this role is at most {cap} bytes")}))
}

async fn upload(State(state): State<AppState>, Path(role_name): Path<String>, Query(q): Query<UploadQuery>, headers: HeaderMap, body: Body) -> Response {
    let Some(up) = &state.upgradable else { return not_found().await };
    let role = match role(up, &role_name) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let cap = upload_cap(role);
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return too_large(cap);
    }
    let Ok(body) = axum::body::to_bytes(body, cap as usize).await else { return too_large(cap) };
    let found = sg_core::artefact::sha256_hex(&body);
    if found != q.sha256.to_ascii_lowercase() {
        return json(StatusCode::BAD_REQUEST, serde_json::json!({"error": format!("sha256 of the upload is {found}, the request states {}", q.sha256)}));
    }
    let kind = if role == Role::Model { "model" } else { "wasm" };
    let path = state.uploads.join(format!("{found}.{kind}"));
    if let Err(e) = std::fs::create_dir_all(&state.uploads).and_then(|_| std::fs::write(&path, &body)) {
        return json(StatusCode::INTERNAL_SERVER_ERROR, serde_json::json!({"error": format!("storing the upload: {e}")}));
    }
    if let Err(e) = keep_newest(&state.uploads, kind, KEPT_UPLOADS) {
        tracing::warn!("pruning {}: {e}", state.uploads.display());
    }
    let requests = up.requests.clone();
    let answer = tokio::task::spawn_blocking(move || {
        requests.load_and_wait(role, ComponentSource::File(path), Trigger::Admin, ANSWER_WITHIN)
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    outcome(answer)
}

/// Uploads of each kind kept on disk (a loaded version lives in memory; the files are for audit).
const KEPT_UPLOADS: usize = 8;

/// Deletes all but the `keep` newest files of `dir` ending in `.{kind}`.
fn keep_newest(dir: &std::path::Path, kind: &str, keep: usize) -> std::io::Result<()> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == kind) {
            files.push((entry.metadata()?.modified()?, entry.path()));
        }
    }
    files.sort_by(|a, b| b.0.cmp(&a.0));
    for (_, old) in files.into_iter().skip(keep) {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

async fn rollback(State(state): State<AppState>, Query(q): Query<RollbackQuery>) -> Response {
    let Some(up) = &state.upgradable else { return not_found().await };
    let default = if up.status.contains_key(Role::Policy.name()) { "policy" } else { "features" };
    let role = match role(up, q.role.as_deref().unwrap_or(default)) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let requests = up.requests.clone();
    let answer = tokio::task::spawn_blocking(move || requests.rollback_and_wait(role, ANSWER_WITHIN))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    outcome(answer)
}

async fn components(State(state): State<AppState>) -> Response {
    let Some(up) = &state.upgradable else { return not_found().await };
    let board: serde_json::Map<String, serde_json::Value> = up
        .status
        .iter()
        .map(|(role, s)| ((*role).to_string(), serde_json::to_value(&*s.lock().expect("not poisoned")).expect("serializable")))
        .collect();
    json(StatusCode::OK, serde_json::Value::Object(board))
}

async fn not_found() -> Response {
    json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no such route (a bounded run serves /healthz, /readyz and /metrics only)"}))
}

/// Liveness: 200 while the run loop turns within its deadline, 503 once it stalls.
async fn healthz(State(state): State<AppState>) -> Response {
    let l = HEALTH.liveness(state.liveness_deadline);
    let body = serde_json::json!({
        "alive": l.alive,
        "seconds_since_last_turn": l.since_last_turn.map(|d| d.as_secs_f64()),
        "deadline_seconds": state.liveness_deadline.as_secs_f64(),
    });
    json(if l.alive { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

/// Readiness: 200 once components are loaded and partitions assigned, else 503 with the reason.
async fn readyz() -> Response {
    match HEALTH.readiness() {
        Ok(()) => json(StatusCode::OK, serde_json::json!({"ready": true})),
        Err(reason) => json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"ready": false, "reason": reason})),
    }
}

/// On a loopback listener, a request whose `Host` is not a loopback name is refused: a browser
/// sends the attacker's name after a DNS rebinding.
async fn loopback_host(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| request.uri().host()).unwrap_or("");
    if is_loopback_host(host) {
        next.run(request).await
    } else {
        json(StatusCode::FORBIDDEN, serde_json::json!({"error": format!("Host {host:?} is not a loopback name; this API answers loopback requests only")}))
    }
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// At most [`MAX_IN_FLIGHT`] requests at once; the next is answered 503 without waiting.
async fn in_flight(State(slots): State<Arc<Semaphore>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match slots.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": "too many requests in flight; retry"})),
    }
}

async fn metrics() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], METRICS.render()).into_response()
}

/// The rustls configuration of `tls`: the API's certificate, and client certificates checked
/// against `client_ca` when given.
fn server_config(tls: &TlsFiles) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|i| i.collect())
        .map_err(|e| anyhow!("admin API certificate {}: {e}", tls.cert.display()))?;
    if certs.is_empty() {
        bail!("admin API certificate {}: no certificate in it", tls.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| anyhow!("admin API key {}: {e}", tls.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| anyhow!("admin API client CA {}: {e}", ca.display()))? {
                roots.add(cert.map_err(|e| anyhow!("admin API client CA {}: {e}", ca.display()))?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| format!("admin API client CA {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).context("admin API certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Starts the admin API on its own thread; returns the address it listens on. Without
/// `upgradable` it serves the probes and `/metrics` only (a bounded run's `--metrics-listen`).
/// Refuses a non-loopback address without TLS, or one that could change the pipeline without
/// either client certificates or the bearer token.
pub fn serve(settings: AdminSettings, upgradable: Option<Upgradable>) -> Result<SocketAddr> {
    settings.check(upgradable.is_some())?;
    let loopback = settings.address.ip().is_loopback();
    let tls = settings.tls.as_ref().map(server_config).transpose()?;
    let listener = std::net::TcpListener::bind(settings.address).with_context(|| format!("admin API: binding {}", settings.address))?;
    let address = listener.local_addr()?;
    let state = AppState {
        upgradable,
        token: settings.token,
        mtls: settings.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        uploads: settings.uploads,
        liveness_deadline: settings.liveness_deadline,
    };
    let changes = Router::new()
        .route("/components/{role}", post(upload))
        .route("/rollback", post(rollback))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        .layer(axum::extract::DefaultBodyLimit::disable());
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/components", get(components))
        .route("/metrics", get(metrics))
        .merge(changes)
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(Arc::new(Semaphore::new(MAX_IN_FLIGHT)), in_flight));
    if loopback {
        app = app.layer(axum::middleware::from_fn(loopback_host));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("sg-admin".into()).spawn(move || {
        runtime.block_on(async move {
            let served = match tls {
                Some(config) => {
                    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
                    match axum_server::tls_rustls::from_tcp_rustls(listener, config) {
                        Ok(server) => server.first_request_timeout(FIRST_REQUEST_WITHIN).serve(app.into_make_service()).await,
                        Err(e) => Err(e),
                    }
                }
                None => match axum_server::from_tcp(listener) {
                    Ok(server) => server.first_request_timeout(FIRST_REQUEST_WITHIN).serve(app.into_make_service()).await,
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = served {
                tracing::error!("admin API stopped: {e}");
            }
        })
    })?;
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::{is_loopback_host, keep_newest};

    #[test]
    fn only_the_newest_uploads_of_a_kind_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            let f = std::fs::File::create(dir.path().join(format!("{i}.wasm"))).unwrap();
            f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(i)).unwrap();
        }
        std::fs::write(dir.path().join("m.model"), b"").unwrap();
        keep_newest(dir.path(), "wasm", 2).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["3.wasm", "4.wasm", "m.model"]);
    }

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        for ok in ["localhost", "localhost:9900", "127.0.0.1", "127.0.0.1:80", "[::1]:9900", "[::1]", "LOCALHOST:1"] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["", "evil.example", "evil.example:9900", "10.0.0.1:9900", "127.0.0.1.evil.example", "[::2]:1", "localhost.evil:80"] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
