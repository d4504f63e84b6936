//! The dead-letter topic.

use anyhow::{Context, Result};

use sg_model::DeadLetter;
use sg_model::Position;
use sg_kafka::{ClientSettings, KafkaTopic, Producer, ensure_topic, message_limit};

/// Bytes of a record besides its value and headers' text (batch and record framing, header
/// lengths), with room to spare.
const RECORD_OVERHEAD: usize = 512;

/// The longest reason in a record's `sg-reason` header (the dead-letter file keeps it whole).
const REASON_HEADER_BYTES: usize = 4096;

/// A dead-letter topic: each record carries the original bytes (and key), and headers
/// `sg-reason`, `sg-stage`, `sg-source-topic`, `sg-source-partition`, `sg-source-offset` (and
/// `sg-original-bytes`, `sg-original-sha256` when the bytes are only a prefix).
///
/// Every record fits the topic: at open, the brokers say how large a record the topic takes
/// (its `max.message.bytes`, and the client's `message.max.bytes`); a larger dead letter is sent
/// as its first bytes with its size and digest, so it can never fail the send and stall the
/// stream at the same offset on every restart.
pub struct DeadLetterTopic {
    producer: Producer,
    topic: String,
    source_topic: String,
    record_limit: usize,
}

impl DeadLetterTopic {
    /// Opens a producer to `topic` (created with one partition if missing).
    pub fn open(brokers: &KafkaTopic, client: &ClientSettings, topic: &str) -> Result<Self> {
        let dlq = KafkaTopic { brokers: brokers.brokers.clone(), topic: topic.into() };
        ensure_topic(&dlq, client, 1)?;
        let record_limit = message_limit(&dlq, &client.properties)?;
        tracing::debug!(topic, record_limit, "dead-letter topic");
        let producer = Producer::open(brokers, &client.properties, &[("linger.ms", "5")]).context("opening the dead-letter producer")?;
        Ok(DeadLetterTopic { producer, topic: topic.into(), source_topic: brokers.topic.clone(), record_limit })
    }

    pub(super) fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        let stage = letter.stage.name();
        let (partition, offset) = match letter.position {
            Position::Kafka { partition, offset } => (partition.to_string(), offset.to_string()),
            Position::Line(l) => (String::new(), l.to_string()),
        };
        let reason = utf8_prefix(&letter.reason, REASON_HEADER_BYTES);
        let mut headers = vec![
            ("sg-reason", reason),
            ("sg-stage", stage.as_str()),
            ("sg-source-topic", self.source_topic.as_str()),
            ("sg-source-partition", partition.as_str()),
            ("sg-source-offset", offset.as_str()),
        ];
        // Room for the value once the headers (and the two a cut adds) are counted.
        let header_bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() + 128;
        let letter = letter.at_most(self.record_limit.saturating_sub(header_bytes + RECORD_OVERHEAD));
        let original_bytes = letter.cut.as_ref().map(|c| c.bytes.to_string());
        if let (Some(cut), Some(bytes)) = (&letter.cut, &original_bytes) {
            headers.extend([("sg-original-bytes", bytes.as_str()), ("sg-original-sha256", cut.sha256.as_str())]);
        }
        self.producer.send(&self.topic, None, &letter.raw, &headers).context("sending a dead letter")
    }

    /// Waits for the brokers to acknowledge the dead letters sent. Those they refuse (or do
    /// not acknowledge in time) are logged with the reason and counted, and the stream goes on:
    /// every dead letter is already in the dead-letter file, which is synced first, so a topic
    /// that refuses one cannot stall the stream at the same offset on every restart.
    pub(super) fn sync(&self) -> Result<()> {
        if let Err(e) = self.producer.flush(std::time::Duration::from_secs(30)) {
            sg_metrics::METRICS.dead_letter_topic_failures.inc();
            tracing::error!("dead-letter topic {}: {e:#}; the dead-letter file holds them", self.topic);
        }
        Ok(())
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn utf8_prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
