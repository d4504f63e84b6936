//! The log-store routes: `POST /api/logs/search` and `POST /api/logs/score` over a dedup store
//! (see `sg_dedup::index`), and `GET /api/logs` (what is stored, under which policy).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sg_dedup::index::{LogIndex, MAX_K, MAX_LINES};
use sg_dedup::store::{FilterValue, PayloadFilter};

use crate::routes::{ApiError, ApiResult, App};

/// The largest request body the log routes read.
pub const MAX_BODY: usize = 4 << 20;

/// A JSON body, or a 4xx naming what is wrong with it (400 malformed, 413 too large, 415 not
/// JSON, 422 the wrong shape).
fn body<T>(b: Result<axum::Json<T>, JsonRejection>) -> ApiResult<T> {
    b.map(|axum::Json(b)| b).map_err(|e| ApiError(e.status(), e.body_text()))
}

fn index(app: &App) -> ApiResult<Arc<LogIndex>> {
    app.logs.clone().ok_or_else(|| {
        ApiError(StatusCode::NOT_FOUND, "no log store is served: start serve with --store DIR (or --qdrant URL), or dedup --follow --serve".into())
    })
}

/// Runs index work off the async threads.
async fn blocking<T: Send + 'static>(index: Arc<LogIndex>, f: impl FnOnce(&LogIndex) -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&index)).await.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// `GET /api/logs`: points stored and the policy keying queries.
pub async fn stats(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let index = index(&app)?;
    blocking(index, |index| Ok(axum::Json(json!({"points": index.count()?, "policy": index.policy(), "scoring": format!("{:?}", index.settings)})).into_response())).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    text: String,
    #[serde(default = "ten")]
    k: usize,
    /// Payload equality conditions, e.g. `{"label": 1}`.
    #[serde(default)]
    filter: serde_json::Map<String, serde_json::Value>,
}

fn ten() -> usize {
    10
}

/// `POST /api/logs/search {"text", "k", "filter"}`: the nearest stored lines.
pub async fn search(State(app): State<Arc<App>>, b: Result<axum::Json<SearchBody>, JsonRejection>) -> ApiResult<Response> {
    let b = body(b)?;
    let index = index(&app)?;
    if b.k == 0 || b.k > MAX_K {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("k: 1 to {MAX_K}")));
    }
    let mut filter = PayloadFilter::default();
    for (field, v) in &b.filter {
        let value = match v {
            serde_json::Value::String(s) => FilterValue::Text(s.clone()),
            serde_json::Value::Bool(b) => FilterValue::Bool(*b),
            v => FilterValue::Integer(v.as_i64().ok_or_else(|| {
                ApiError(StatusCode::BAD_REQUEST, format!("filter {field:?}: a string, an integer or a boolean"))
            })?),
        };
        filter.and(field, value).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("filter: {e:#}")))?;
    }
    blocking(index, move |index| {
        let hits = index.search(&b.text, b.k, &filter)?;
        Ok(axum::Json(json!({"hits": hits})).into_response())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreBody {
    texts: Vec<String>,
}

/// `POST /api/logs/score {"texts": […]}`: each line's key, whether it was seen, its nearest
/// labelled neighbours and the vote.
pub async fn score(State(app): State<Arc<App>>, b: Result<axum::Json<ScoreBody>, JsonRejection>) -> ApiResult<Response> {
    let b = body(b)?;
    let index = index(&app)?;
    if b.texts.is_empty() || b.texts.len() > MAX_LINES {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("texts: 1 to {MAX_LINES} lines")));
    }
    blocking(index, move |index| {
        let texts: Vec<&str> = b.texts.iter().map(String::as_str).collect();
        let scores = index.score(&texts)?;
        Ok(axum::Json(json!({"scores": scores})).into_response())
    })
    .await
}
