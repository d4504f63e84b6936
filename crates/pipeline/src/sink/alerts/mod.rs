//! Alerts: the rows whose anomaly score exceeds the alert threshold, as OCSF Detection Findings
//! delivered to every `--alerts` sink (a Kafka topic, a webhook, a JSON-lines file) before the
//! output they come from is acknowledged. Each alert has a stable id, so a re-run or a re-read
//! after a crash sends the same alert again, never a new one.

mod file;
pub mod ocsf;
mod topic;
mod webhook;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;

pub use file::AlertFile;
pub use ocsf::{Finding, Scope};
pub use topic::AlertTopic;
pub use webhook::{Webhook, WebhookSettings};

/// One alert sink: takes a batch of findings and returns once the receiver has acknowledged
/// all of them (or fails after its last attempt).
pub trait AlertSink: Send {
    /// The sink's URL, as metrics and reports name it.
    fn name(&self) -> &str;
    /// Delivers `findings`; returns how many attempts were retried.
    fn send(&mut self, findings: &[Finding]) -> Result<u64>;
}

/// Where `--alerts URL` sends alerts.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertTarget {
    /// `kafka://HOST:PORT/TOPIC`.
    Kafka {
        /// Bootstrap brokers.
        brokers: String,
        /// Topic.
        topic: String,
    },
    /// `http://…` or `https://…`: a webhook.
    Webhook(String),
    /// `file://PATH`: JSON lines.
    File(PathBuf),
}

impl AlertTarget {
    /// Parses `--alerts`.
    pub fn parse(url: &str) -> Result<AlertTarget> {
        if let Some(rest) = url.strip_prefix("kafka://") {
            let Some((brokers, topic)) = rest.split_once('/').filter(|(b, t)| !b.is_empty() && !t.is_empty() && !t.contains('/')) else {
                bail!("--alerts {url}: expected kafka://HOST:PORT/TOPIC");
            };
            return Ok(AlertTarget::Kafka { brokers: brokers.into(), topic: topic.into() });
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(AlertTarget::Webhook(url.into()));
        }
        if let Some(path) = url.strip_prefix("file://").filter(|p| !p.is_empty()) {
            return Ok(AlertTarget::File(PathBuf::from(path)));
        }
        bail!("--alerts {url}: expected kafka://HOST:PORT/TOPIC, http(s)://… or file://PATH")
    }
}

/// What the sinks need besides their URL.
#[derive(Clone, Debug, Default)]
pub struct AlertOptions {
    /// How a Kafka sink talks to its cluster.
    pub kafka: sg_kafka::ClientSettings,
    /// A file holding the webhook's `Authorization` header value.
    pub authorization_file: Option<PathBuf>,
    /// Webhook timing (timeout, attempts, backoff).
    pub webhook: WebhookSettings,
}

/// Alerts delivered by one sink in one output.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Delivered {
    /// The sink's URL.
    pub sink: String,
    /// Alerts acknowledged.
    pub sent: u64,
    /// Attempts retried.
    pub retried: u64,
}

/// Every `--alerts` sink of a job.
#[derive(Default)]
pub struct AlertSinks {
    sinks: Vec<Box<dyn AlertSink>>,
    /// The ids of the findings last delivered, and what was delivered: an output written again
    /// (a retry after a full disk) does not alert twice.
    last: Option<(Vec<String>, Vec<Delivered>)>,
}

impl AlertSinks {
    /// Opens the sinks `targets` name.
    pub fn open(targets: &[AlertTarget], options: &AlertOptions) -> Result<AlertSinks> {
        let mut sinks: Vec<Box<dyn AlertSink>> = Vec::new();
        for target in targets {
            sinks.push(match target {
                AlertTarget::Kafka { brokers, topic } => Box::new(AlertTopic::open(brokers, topic, &options.kafka)?),
                AlertTarget::Webhook(url) => {
                    let authorization = match &options.authorization_file {
                        Some(path) => Some(read_secret(path)?),
                        None => None,
                    };
                    Box::new(Webhook::new(url, authorization, options.webhook.clone())?)
                }
                AlertTarget::File(path) => Box::new(AlertFile::open(path)?),
            });
        }
        Ok(AlertSinks { sinks, last: None })
    }

    /// Whether there is no sink.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Delivers `findings` to every sink, each acknowledged before this returns; the first sink
    /// that fails after its last attempt fails the call (nothing may be acknowledged then).
    /// The same findings as the last call that succeeded are not sent again: its answer is.
    pub fn send(&mut self, findings: &[Finding]) -> Result<Vec<Delivered>> {
        let uids: Vec<String> = findings.iter().map(|f| f.uid.clone()).collect();
        if let Some((last, delivered)) = &self.last
            && !uids.is_empty()
            && *last == uids
        {
            tracing::debug!("{} alerts already delivered (the output is written again)", uids.len());
            return Ok(delivered.clone());
        }
        let delivered = self.deliver(findings)?;
        self.last = Some((uids, delivered.clone()));
        Ok(delivered)
    }

    fn deliver(&mut self, findings: &[Finding]) -> Result<Vec<Delivered>> {
        let metrics = &sg_metrics::METRICS;
        let mut delivered = Vec::with_capacity(self.sinks.len());
        for sink in &mut self.sinks {
            let labels = sg_metrics::SinkLabels { sink: sink.name().to_string() };
            if findings.is_empty() {
                delivered.push(Delivered { sink: labels.sink, sent: 0, retried: 0 });
                continue;
            }
            match sink.send(findings) {
                Ok(retried) => {
                    metrics.alerts_sent.get_or_create(&labels).inc_by(findings.len() as u64);
                    metrics.alerts_retried.get_or_create(&labels).inc_by(retried);
                    delivered.push(Delivered { sink: labels.sink, sent: findings.len() as u64, retried });
                }
                Err(e) => {
                    metrics.alerts_failed.get_or_create(&labels).inc_by(findings.len() as u64);
                    return Err(e.context(format!("{} alerts were not delivered to {}", findings.len(), labels.sink)));
                }
            }
        }
        Ok(delivered)
    }
}

/// A secret read from a file (trailing newline removed), never from argv.
fn read_secret(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}
