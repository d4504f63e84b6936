//! The dead-letter topic.

use anyhow::{Context, Result};

use sg_model::DeadLetter;
use sg_model::Position;
use sg_kafka::{KafkaTopic, Producer, ensure_topic};

/// Largest message sent to the dead-letter topic: below librdkafka's `message.max.bytes`
/// (1,000,000) and the broker's (1,048,588) by default, with room for the headers. A larger dead
/// letter is sent as its first bytes with `sg-original-bytes` and `sg-original-sha256` (the
/// dead-letter file keeps it whole), so it can never fail the send and stall the stream.
pub const TOPIC_MESSAGE_BYTES: usize = 900_000;

/// A dead-letter topic: each record carries the original bytes (and key), and headers
/// `sg-reason`, `sg-stage`, `sg-source-topic`, `sg-source-partition`, `sg-source-offset` (and
/// `sg-original-bytes`, `sg-original-sha256` when the bytes are only a prefix).
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
        let letter = letter.at_most(TOPIC_MESSAGE_BYTES);
        let stage = letter.stage.name();
        let (partition, offset) = match letter.position {
            Position::Kafka { partition, offset } => (partition.to_string(), offset.to_string()),
            Position::Line(l) => (String::new(), l.to_string()),
        };
        let original_bytes = letter.cut.as_ref().map(|c| c.bytes.to_string());
        let mut headers = vec![
            ("sg-reason", letter.reason.as_str()),
            ("sg-stage", stage.as_str()),
            ("sg-source-topic", self.source_topic.as_str()),
            ("sg-source-partition", partition.as_str()),
            ("sg-source-offset", offset.as_str()),
        ];
        if let (Some(cut), Some(bytes)) = (&letter.cut, &original_bytes) {
            headers.extend([("sg-original-bytes", bytes.as_str()), ("sg-original-sha256", cut.sha256.as_str())]);
        }
        self.producer.send(&self.topic, None, &letter.raw, &headers).context("sending a dead letter")
    }

    pub(super) fn sync(&self) -> Result<()> {
        self.producer.flush(std::time::Duration::from_secs(30)).context("flushing dead letters")
    }
}
