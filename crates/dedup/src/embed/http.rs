//! A remote embedding service speaking the reference contract: `POST {"texts":[…]}` →
//! `{"embeddings":[[…],…]}`, same order. Batched, a bounded number of requests in flight, a
//! timeout per request, retries with exponential backoff on transport errors, 5xx/429 and
//! malformed answers (wrong vector count or size), each failure logged with its reason.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use sg_pipeline::retry::{backoff, retryable_status};

use super::Embedder;

/// How the client talks to the service.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Endpoint, e.g. `http://127.0.0.1:8000/embed`.
    pub url: String,
    /// Texts per request.
    pub batch: usize,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Attempts per request before the run fails (nothing is acknowledged then).
    pub attempts: u32,
    /// First backoff; doubles per attempt, capped at 30 s.
    pub backoff: Duration,
    /// The vector size every answer must have (`None`: the first answer's).
    pub dimension: Option<usize>,
}

impl HttpSettings {
    /// Defaults for `url`.
    pub fn new(url: &str) -> HttpSettings {
        HttpSettings {
            url: url.to_string(),
            batch: 64,
            concurrency: 2,
            timeout: Duration::from_secs(30),
            attempts: 10,
            backoff: Duration::from_millis(250),
            dimension: Some(384),
        }
    }
}

/// The remote embedder.
pub struct HttpEmbedder {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    settings: HttpSettings,
}

#[derive(Serialize)]
struct Request<'a> {
    texts: &'a [&'a str],
}

#[derive(Deserialize)]
struct Response {
    embeddings: Vec<Vec<f32>>,
}

impl HttpEmbedder {
    /// A client for `settings`.
    pub fn new(settings: HttpSettings) -> Result<HttpEmbedder> {
        // One TLS stack for the process: rustls with ring (as qdrant-client's tonic uses).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().timeout(settings.timeout).build()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(HttpEmbedder { client, runtime, settings })
    }
}

/// One request, checked: the right number of vectors, all of one size.
async fn post(client: &reqwest::Client, s: &HttpSettings, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    let response = client.post(&s.url).json(&Request { texts }).send().await.map_err(|e| {
        if e.is_timeout() {
            anyhow!("timed out after {:?}", s.timeout)
        } else {
            anyhow!("{:#}", anyhow::Error::from(e))
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(anyhow::Error::new(HttpStatus(status.as_u16())).context(format!("HTTP {status}: {}", body.chars().take(200).collect::<String>())));
    }
    let body: Response = response.json().await.map_err(|e| anyhow!("malformed answer: {e}"))?;
    if body.embeddings.len() != texts.len() {
        bail!("wrong vector count: {} vectors for {} texts", body.embeddings.len(), texts.len());
    }
    let dim = body.embeddings.first().map_or(0, Vec::len);
    let expected = s.dimension.unwrap_or(dim);
    if expected == 0 || body.embeddings.iter().any(|v| v.len() != expected) {
        let sizes: std::collections::BTreeSet<usize> = body.embeddings.iter().map(Vec::len).collect();
        bail!("wrong vector size: {sizes:?} (expected {expected})");
    }
    Ok(body.embeddings)
}

/// Retries `post` with the host's backoff ([`sg_pipeline::retry`]); a 4xx other than 408/429
/// is final.
async fn post_retrying(client: &reqwest::Client, s: &HttpSettings, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    use backon::Retryable;
    let retryable = |e: &anyhow::Error| match e.downcast_ref::<HttpStatus>() {
        Some(status) => retryable_status(status.0),
        None => true,
    };
    let attempt = || post(client, s, texts);
    attempt
        .retry(backoff(s.backoff, Duration::from_secs(30), s.attempts))
        .sleep(tokio::time::sleep)
        .when(retryable)
        .notify(|e: &anyhow::Error, wait: Duration| tracing::warn!("embedder {}: {e:#}; retrying in {wait:?}", s.url))
        .await
        .map_err(|e| anyhow!("embedder {}: {e:#} (after at most {} attempts)", s.url, s.attempts))
}

/// An HTTP answer other than 2xx.
#[derive(Debug)]
struct HttpStatus(u16);

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.0)
    }
}

impl std::error::Error for HttpStatus {}

impl Embedder for HttpEmbedder {
    fn describe(&self) -> String {
        format!("embedding service {}", self.settings.url)
    }

    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let s = &self.settings;
        let client = &self.client;
        let chunks: Vec<&[&str]> = texts.chunks(s.batch.max(1)).collect();
        let mut out = Vec::with_capacity(texts.len());
        self.runtime.block_on(async {
            for wave in chunks.chunks(s.concurrency.max(1)) {
                let answers = futures::future::join_all(wave.iter().map(|c| post_retrying(client, s, c))).await;
                for a in answers {
                    out.extend(a?);
                }
            }
            Ok::<_, anyhow::Error>(())
        })?;
        let dim = out.first().map_or(0, Vec::len);
        if out.iter().any(|v| v.len() != dim) {
            bail!("embedder {}: answers disagree on the vector size", s.url);
        }
        Ok(out)
    }
}
