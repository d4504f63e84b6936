//! `http(s)://…`: alerts POSTed as a JSON array, in batches, each with a timeout and retried
//! with exponential backoff on transport errors, 5xx, 408 and 429; other 4xx are final.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use backon::Retryable;

use super::{AlertSink, Finding};
use crate::retry::{backoff, retryable_status};

/// Timing of a webhook.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Timeout of one request.
    pub timeout: Duration,
    /// Attempts per batch before the delivery fails.
    pub attempts: u32,
    /// Wait after the first failure; doubles per attempt, at most 30 s.
    pub backoff: Duration,
    /// Alerts per request.
    pub batch: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings { timeout: Duration::from_secs(10), attempts: 6, backoff: Duration::from_millis(250), batch: 500 }
    }
}

/// A webhook.
pub struct Webhook {
    url: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    authorization: Option<String>,
    settings: WebhookSettings,
}

/// Why one attempt failed, and whether another may succeed.
struct Failure {
    message: String,
    retry: bool,
}

impl Webhook {
    /// A client for `url`, sending `authorization` as the `Authorization` header when given.
    pub fn new(url: &str, authorization: Option<String>, settings: WebhookSettings) -> Result<Webhook> {
        // One TLS stack for the process: rustls with ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().timeout(settings.timeout).build()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Webhook { url: url.into(), client, runtime, authorization, settings })
    }

    async fn post(&self, body: &[u8]) -> Result<(), Failure> {
        let mut request = self.client.post(&self.url).header("content-type", "application/json").body(body.to_vec());
        if let Some(a) = &self.authorization {
            request = request.header("authorization", a);
        }
        let response = request.send().await.map_err(|e| Failure {
            message: if e.is_timeout() { format!("timed out after {:?}", self.settings.timeout) } else { format!("{:#}", anyhow!(e)) },
            retry: true,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(Failure {
            message: format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()),
            retry: retryable_status(status.as_u16()),
        })
    }
}

impl AlertSink for Webhook {
    fn name(&self) -> &str {
        &self.url
    }

    fn send(&mut self, findings: &[Finding]) -> Result<u64> {
        let s = &self.settings;
        let mut retried = 0u64;
        for batch in findings.chunks(s.batch.max(1)) {
            let records: Vec<&serde_json::Value> = batch.iter().map(|f| &f.record).collect();
            let body = serde_json::to_vec(&records)?;
            let attempt = || self.post(&body);
            let outcome = self.runtime.block_on(
                attempt
                    .retry(backoff(s.backoff, Duration::from_secs(30), s.attempts))
                    .sleep(tokio::time::sleep)
                    .when(|f: &Failure| f.retry)
                    .notify(|f: &Failure, wait: Duration| {
                        retried += 1;
                        tracing::warn!("webhook {}: {}; retrying in {wait:?}", self.url, f.message);
                    }),
            );
            if let Err(f) = outcome {
                bail!("webhook {}: {} (after {} attempts at most)", self.url, f.message, s.attempts);
            }
        }
        Ok(retried)
    }
}
