//! The dead-letter topic.

use anyhow::{Context, Result};

use super::{DeadLetter, stage_name};
use crate::source::Position;
use crate::source::kafka::{KafkaTopic, Producer, ensure_topic};

/// A dead-letter topic: each record carries the original bytes (and key), and headers
/// `sg-reason`, `sg-stage`, `sg-source-topic`, `sg-source-partition`, `sg-source-offset`.
pub struct DeadLetterTopic {
    producer: Producer,
    topic: String,
    source_topic: String,
}

impl DeadLetterTopic {
    /// Opens a producer to `topic` (created with one partition if missing).
    pub fn open(brokers: &KafkaTopic, properties: &[(String, String)], topic: &str) -> Result<Self> {
        let dlq = KafkaTopic { brokers: brokers.brokers.clone(), topic: topic.into() };
        ensure_topic(&dlq, properties, 1)?;
        let producer = Producer::open(brokers, properties, &[("linger.ms", "5")]).context("opening the dead-letter producer")?;
        Ok(DeadLetterTopic { producer, topic: topic.into(), source_topic: brokers.topic.clone() })
    }

    pub(super) fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        let stage = stage_name(&letter.stage);
        let (partition, offset) = match letter.position {
            Position::Kafka { partition, offset } => (partition.to_string(), offset.to_string()),
            Position::Line(l) => (String::new(), l.to_string()),
        };
        let headers = [
            ("sg-reason", letter.reason.as_str()),
            ("sg-stage", stage.as_str()),
            ("sg-source-topic", self.source_topic.as_str()),
            ("sg-source-partition", partition.as_str()),
            ("sg-source-offset", offset.as_str()),
        ];
        self.producer.send(&self.topic, None, &letter.raw, &headers).context("sending a dead letter")
    }

    pub(super) fn sync(&self) -> Result<()> {
        self.producer.flush(std::time::Duration::from_secs(30)).context("flushing dead letters")
    }
}
