//! The routes of `sg-host serve`: JSON over the catalog's outputs, Arrow IPC for the rows, and
//! a Prometheus counter and latency histogram per route.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sg_metrics::{METRICS, ResponseLabels, RouteLabels};

use crate::catalog::{Catalog, Output};
use crate::logs;
use sg_dedup::index::LogIndex;
use crate::rows::{select, users};

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Most anomalies one request returns.
const MAX_LIMIT: usize = 10_000;

/// Columns a row carries besides its features.
const SCORE_COLUMNS: [&str; 6] = ["user", "anomaly_score", "anomaly_score_normalized", "is_anomaly", "is_alert", "explanation"];

/// An error answer: its status and a JSON `{"error": …}` body.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// What the routes serve: the outputs, and the log store if one is served.
pub struct App {
    /// The output directories.
    pub catalog: Arc<Catalog>,
    /// The dedup store with its policy and embedder.
    pub logs: Option<Arc<LogIndex>>,
}

/// The application: the routes over `app`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { page("text/html; charset=utf-8", include_str!("dashboard.html")) }))
        .route("/dashboard.js", get(|| async { page("text/javascript; charset=utf-8", include_str!("dashboard.js")) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/runs", get(runs))
        .route("/api/anomalies", get(anomalies))
        .route("/api/users/{user}", get(user))
        .route("/api/training-data", get(training_data))
        .route("/api/scores", get(scores))
        .route("/api/logs", get(logs::stats))
        .route("/api/logs/search", post(logs::search))
        .route("/api/logs/score", post(logs::score))
        .layer(DefaultBodyLimit::max(logs::MAX_BODY))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such route: see docs/serve.md".into()) })
        .route_layer(axum::middleware::from_fn(declared_length))
        .route_layer(axum::middleware::from_fn(observe))
        .with_state(Arc::new(app))
}

/// A dashboard file, with a policy that lets the page run only its own script and talk only to
/// this server.
fn page(content_type: &'static str, body: &'static str) -> Response {
    let policy = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'";
    ([(header::CONTENT_TYPE, content_type), (header::CONTENT_SECURITY_POLICY, policy)], body).into_response()
}

/// Refuses a request whose declared body is over the limit before reading any of it (a body
/// with no declared length is cut at the limit as it is read).
async fn declared_length(request: Request, next: Next) -> Response {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > logs::MAX_BODY as u64 => {
            ApiError(StatusCode::PAYLOAD_TOO_LARGE, format!("a body of {n} bytes: at most {} here", logs::MAX_BODY)).into_response()
        }
        _ => next.run(request).await,
    }
}

/// Counts each request by route and status and times it.
async fn observe(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    METRICS.request_latency.get_or_create(&RouteLabels { route: route.clone() }).observe(started.elapsed().as_secs_f64());
    METRICS.requests.get_or_create(&ResponseLabels { route, status: response.status().as_u16() }).inc();
    response
}

async fn metrics() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], METRICS.render()).into_response()
}

/// Runs blocking work (directory listings, Parquet reads) off the async threads.
async fn blocking<T: Send + 'static>(catalog: Arc<Catalog>, f: impl FnOnce(&Catalog) -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&catalog)).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// `from` / `to`: epoch ms or `YYYY-MM-DDTHH:MM:SSZ`.
#[derive(Deserialize)]
struct Range {
    from: Option<String>,
    to: Option<String>,
}

impl Range {
    fn parse(&self) -> ApiResult<(Option<i64>, Option<i64>)> {
        let time = |name: &str, v: &Option<String>| {
            v.as_deref()
                .map(sg_model::time::parse_time)
                .transpose()
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{name}: {e:#}")))
        };
        Ok((time("from", &self.from)?, time("to", &self.to)?))
    }
}

/// Where a row comes from: `"window": id` or `"run": id`, and the period.
fn origin(o: &Output) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(if o.is_window { "window" } else { "run" }.into(), json!(o.id));
    m.insert("period".into(), json!(o.period));
    m
}

async fn runs(State(app): State<Arc<App>>) -> ApiResult<Response> {
    blocking(app.catalog.clone(), |catalog| {
        let runs: Vec<Value> = catalog
            .outputs()
            .iter()
            .map(|o| {
                let r = &o.report;
                json!({
                    "id": o.id,
                    "kind": if o.is_window { "window" } else { "run" },
                    "dir": o.dir,
                    "period": o.period,
                    "written_ms": o.written_ms(),
                    "input": r["lineage"]["input"],
                    "events": r["lineage"]["events"],
                    "dead_lettered": r["lineage"]["dead_lettered"],
                    "users": r["total_users"],
                    "anomalies": r["anomalous_users"],
                    "alerts": r["alerts"],
                    "lineage": r["lineage"],
                })
            })
            .collect();
        Ok(axum::Json(json!({ "runs": runs })).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct AnomalyQuery {
    from: Option<String>,
    to: Option<String>,
    user: Option<String>,
    min_score: Option<f64>,
    limit: Option<usize>,
}

/// A query string, or a 400 naming what is wrong with it.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(q)| q).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

async fn anomalies(State(app): State<Arc<App>>, q: Result<Query<AnomalyQuery>, QueryRejection>) -> ApiResult<Response> {
    let q = query(q)?;
    let (from, to) = Range { from: q.from.clone(), to: q.to.clone() }.parse()?;
    let limit = q.limit.unwrap_or(100).min(MAX_LIMIT);
    blocking(app.catalog.clone(), move |catalog| {
        let mut found: Vec<Value> = Vec::new();
        for o in catalog.outputs().iter().filter(|o| o.overlaps(from, to)) {
            if found.len() >= limit {
                break;
            }
            let table = o.table().with_context(|| format!("output {}", o.id))?;
            let rows = table.flagged.iter().filter(|row| {
                q.user.as_deref().is_none_or(|u| row.get("user").and_then(Value::as_str) == Some(u))
                    && q.min_score.is_none_or(|m| row.get("anomaly_score").and_then(Value::as_f64).is_some_and(|s| s >= m))
            });
            for row in rows.take(limit - found.len()) {
                let mut entry = Map::new();
                for name in SCORE_COLUMNS {
                    entry.insert(name.into(), row.get(name).cloned().unwrap_or(Value::Null));
                }
                entry.extend(origin(o));
                found.push(Value::Object(entry));
            }
        }
        Ok(axum::Json(json!({ "anomalies": found })).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct ScoresQuery {
    output: Option<String>,
}

/// Bins of the score histogram.
const BINS: usize = 20;

/// `GET /api/scores?output=ID`: the distribution of the anomaly scores of one output (the
/// newest when none is named), in equal bins, with its alert threshold and offset.
async fn scores(State(app): State<Arc<App>>, q: Result<Query<ScoresQuery>, QueryRejection>) -> ApiResult<Response> {
    let q = query(q)?;
    blocking(app.catalog.clone(), move |catalog| {
        let outputs = catalog.outputs();
        let o = match &q.output {
            Some(id) => outputs.iter().find(|o| &o.id == id),
            None => outputs.first(),
        }
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no output {}", q.output.as_deref().unwrap_or("at all"))))?;
        let table = o.table().with_context(|| format!("output {}", o.id))?;
        let finite: Vec<f64> = table.scores.iter().copied().filter(|s| s.is_finite()).collect();
        let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &s| (a.min(s), b.max(s)));
        let width = if hi > lo { (hi - lo) / BINS as f64 } else { 1.0 };
        let mut counts = vec![0u64; if finite.is_empty() { 0 } else { BINS }];
        for s in &finite {
            counts[(((s - lo) / width) as usize).min(BINS - 1)] += 1;
        }
        let bins: Vec<Value> =
            counts.iter().enumerate().map(|(i, n)| json!({"lo": lo + i as f64 * width, "hi": lo + (i + 1) as f64 * width, "count": n})).collect();
        let mut answer = origin(o);
        answer.insert("alert_threshold".into(), o.report["alert_threshold"].clone());
        answer.insert("offset".into(), o.report["lineage"]["detector"]["offset"].clone());
        answer.insert("rows".into(), json!(finite.len()));
        answer.insert("bins".into(), Value::Array(bins));
        Ok(axum::Json(Value::Object(answer)).into_response())
    })
    .await
}

async fn user(State(app): State<Arc<App>>, Path(user): Path<String>) -> ApiResult<Response> {
    blocking(app.catalog.clone(), move |catalog| {
        let mut series: Vec<Value> = Vec::new();
        for o in catalog.outputs().iter().rev() {
            let table = o.table().with_context(|| format!("output {}", o.id))?;
            for batch in &table.batches {
                let Some(names) = users(batch) else { continue };
                for mut row in select(batch, |r| names.is_valid(r) && names.value(r) == user)? {
                    let mut entry = origin(o);
                    for name in SCORE_COLUMNS.iter().skip(1) {
                        entry.insert((*name).into(), row.remove(*name).unwrap_or(Value::Null));
                    }
                    row.remove("user");
                    entry.insert("features".into(), Value::Object(row));
                    series.push(Value::Object(entry));
                }
            }
        }
        if series.is_empty() {
            return Err(ApiError(StatusCode::NOT_FOUND, format!("no output has a row for user {user:?}")));
        }
        Ok(axum::Json(json!({ "user": user, "series": series })).into_response())
    })
    .await
}

/// `batch` with the columns naming its output: `output`, `period_start`, `period_end`.
fn with_origin(batch: &RecordBatch, o: &Output) -> anyhow::Result<RecordBatch> {
    let n = batch.num_rows();
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("output", DataType::Utf8, false)));
    fields.push(Arc::new(Field::new("period_start", DataType::Int64, true)));
    fields.push(Arc::new(Field::new("period_end", DataType::Int64, true)));
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![o.id.as_str(); n])));
    columns.push(Arc::new(Int64Array::from(vec![o.period.map(|p| p.start); n])));
    columns.push(Arc::new(Int64Array::from(vec![o.period.map(|p| p.end); n])));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

async fn training_data(State(app): State<Arc<App>>, range: Result<Query<Range>, QueryRejection>, headers: HeaderMap) -> ApiResult<Response> {
    let (from, to) = query(range)?.parse()?;
    let arrow = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains(ARROW_STREAM));
    blocking(app.catalog.clone(), move |catalog| {
        let mut batches = Vec::new();
        // Oldest first: the order a training job reads history in.
        for o in catalog.outputs().iter().rev().filter(|o| o.overlaps(from, to)) {
            let table = o.table().with_context(|| format!("output {}", o.id))?;
            for batch in &table.batches {
                batches.push(with_origin(batch, o)?);
            }
        }
        if !arrow {
            let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
            for b in &batches {
                writer.write(b).context("writing JSON lines")?;
            }
            writer.finish().context("writing JSON lines")?;
            return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], writer.into_inner()).into_response());
        }
        let Some(first) = batches.first() else {
            return Err(ApiError(StatusCode::NOT_FOUND, "no output in that range".into()));
        };
        let schema = first.schema();
        if let Some(other) = batches.iter().find(|b| b.schema().fields() != schema.fields()) {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "the outputs in that range have different columns ({} and {} of them: another features component); narrow from/to, or ask for JSON lines",
                    schema.fields().len(),
                    other.schema().fields().len()
                ),
            ));
        }
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema).context("writing Arrow IPC")?;
        for b in &batches {
            writer.write(b).context("writing Arrow IPC")?;
        }
        writer.finish().context("writing Arrow IPC")?;
        Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], writer.into_inner().context("writing Arrow IPC")?).into_response())
    })
    .await
}
