//! `kafka://HOST:PORT/TOPIC`: one JSON record per alert, keyed by its stable id, acknowledged
//! by the brokers before it counts as delivered.

use std::time::Duration;

use anyhow::{Context, Result};
use sg_kafka::{ClientSettings, KafkaTopic, Producer, ensure_topic};

use super::{AlertSink, Finding};

/// How long the brokers may take to acknowledge a batch of alerts.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// An alert topic.
pub struct AlertTopic {
    name: String,
    topic: String,
    producer: Producer,
}

impl AlertTopic {
    /// A producer to `topic` on `brokers` (the topic is created when missing).
    pub fn open(brokers: &str, topic: &str, client: &ClientSettings) -> Result<AlertTopic> {
        let target = KafkaTopic { brokers: brokers.into(), topic: topic.into() };
        ensure_topic(&target, client, 1)?;
        let properties = &client.properties;
        // Idempotent, acknowledged by every in-sync replica: a retried send is not a duplicate.
        let tuning = [("linger.ms", "5"), ("enable.idempotence", "true"), ("acks", "all")];
        let producer = Producer::open(&target, properties, &tuning).context("opening the alert producer")?;
        Ok(AlertTopic { name: format!("kafka://{brokers}/{topic}"), topic: topic.into(), producer })
    }
}

impl AlertSink for AlertTopic {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, findings: &[Finding]) -> Result<u64> {
        for f in findings {
            let payload = serde_json::to_vec(&f.record)?;
            self.producer.send(&self.topic, Some(f.uid.as_bytes()), &payload, &[("content-type", "application/json")])?;
        }
        self.producer.flush(ACK_TIMEOUT).with_context(|| format!("delivering alerts to {}", self.name))?;
        Ok(0)
    }
}
