//! `sg-host serve`: an HTTP query API over what sg-host wrote — bounded runs and the windows of
//! streams, picked up as they are written — with no other service to run.
//!
//! Routes: `GET /api/runs` (outputs with lineage and counts), `GET /api/anomalies` (flagged
//! users across outputs, newest first, with explanations), `GET /api/users/{user}` (a user's
//! rows across outputs, oldest first), `GET /api/training-data` (the rows, as JSON lines or an
//! Arrow IPC stream), over a dedup store `GET /api/logs`, `POST /api/logs/search` (nearest
//! stored lines) and `POST /api/logs/score` (a labelled-neighbour vote), `GET /healthz`,
//! `GET /metrics`, and a dashboard at `/` (a page and its script, over the same API). See
//! `docs/serve.md`.

#![deny(missing_docs)]

pub mod catalog;
mod logs;
mod routes;
mod rows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};

pub use catalog::{Catalog, Output};
pub use routes::ARROW_STREAM;

/// What `serve` serves and where.
#[derive(Clone, Debug)]
pub struct ServeSettings {
    /// Output directories: a bounded run's `--out`, or a stream's (its windows inside).
    pub data: Vec<PathBuf>,
    /// The address to listen on.
    pub listen: SocketAddr,
}

/// The log store a server searches and scores over, if any.
pub type Logs = Option<Arc<sg_dedup::index::LogIndex>>;

/// Serves until `stop` is set; `ready` is called with the bound address once it listens.
pub fn serve(settings: &ServeSettings, logs: Logs, stop: Arc<AtomicBool>, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let catalog = Arc::new(Catalog::new(settings.data.clone())?);
    let listener = std::net::TcpListener::bind(settings.listen).with_context(|| format!("binding {}", settings.listen))?;
    listener.set_nonblocking(true)?;
    ready(listener.local_addr()?);
    let app = routes::router(routes::App { catalog, logs });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let stopped = async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        axum::serve(listener, app).with_graceful_shutdown(stopped).await.context("serving")
    })
}
