//! Dead letters: messages that could not be processed, kept with the reason and position.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::component::features::{BatchFailures, FailedEvent};
use crate::events::EventBatch;
use crate::source::Position;

/// Which step refused a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Not a valid event (JSON, required fields, types, size).
    Decode,
    /// Refused by a component, named `name@version`.
    Component(String),
    /// Arrived for an event-time window that was already written.
    Late,
}

/// One refused message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where it was in the input.
    pub position: Position,
    /// Which step refused it.
    pub stage: Stage,
    /// Why.
    pub reason: String,
    /// The original bytes.
    pub raw: Vec<u8>,
}

impl DeadLetter {
    /// A dead letter for `raw` found at `position`.
    pub fn new(position: Position, stage: Stage, reason: impl Into<String>, raw: &[u8]) -> Self {
        DeadLetter { position, stage, reason: reason.into(), raw: raw.to_vec() }
    }
}

#[derive(Serialize)]
struct Record<'a> {
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    stage: &'a str,
    reason: &'a str,
    /// The original message when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    /// The original bytes, hex, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_hex: Option<String>,
}

/// Where dead letters go: always a file in the output; with a Kafka source also a topic.
pub struct DeadLetters {
    file: DeadLetterFile,
    topic: Option<DeadLetterTopic>,
}

impl DeadLetters {
    /// Dead letters to `file`, and to `topic` when given.
    pub fn new(file: DeadLetterFile, topic: Option<DeadLetterTopic>) -> Self {
        DeadLetters { file, topic }
    }

    /// Records one dead letter everywhere.
    pub fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        self.file.write(letter)?;
        if let Some(t) = &mut self.topic {
            t.write(letter)?;
        }
        Ok(())
    }

    /// Records the events of `batch` a component failed on, with their original messages
    /// (`raw(i)` gives event `i`'s bytes).
    pub fn write_failed<'r>(
        &mut self,
        component: &str,
        batch: &EventBatch,
        failed: &[FailedEvent],
        raw: impl Fn(usize) -> &'r [u8],
    ) -> Result<()> {
        crate::metrics::METRICS.dead(component, failed.len());
        for f in failed {
            let stage = Stage::Component(component.to_string());
            self.write(&DeadLetter::new(batch.positions[f.index], stage, f.reason.clone(), raw(f.index)))?;
        }
        Ok(())
    }

    /// Dead-letters events found failing after their batch was processed (at `take`, or when a
    /// window moved to another version): by input position, without the original message (the
    /// chunk is gone; the position says where to re-read it); `note` is added to each reason.
    /// Returns how many it wrote.
    pub fn write_batch_failures(&mut self, component: &str, failures: &BatchFailures, note: &str) -> Result<u64> {
        let mut written = 0;
        for (batch, failed) in failures {
            written += failed.len() as u64;
            crate::metrics::METRICS.dead(component, failed.len());
            for f in failed {
                let stage = Stage::Component(component.to_string());
                self.write(&DeadLetter::new(batch.positions[f.index], stage, format!("{}{note}", f.reason), b""))?;
            }
        }
        Ok(written)
    }

    /// How many so far.
    pub fn count(&self) -> u64 {
        self.file.count()
    }

    /// Makes every dead letter so far durable (file fsync'd, topic acknowledged) — before any
    /// source offset that covers them is committed.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync()?;
        if let Some(t) = &self.topic {
            t.sync()?;
        }
        Ok(())
    }

    /// Flushes the file and waits until the topic acknowledged every dead letter — before any
    /// source offset is committed.
    pub fn finish(self) -> Result<u64> {
        let (_, n) = self.file.finish()?;
        if let Some(t) = &self.topic {
            t.sync()?;
        }
        Ok(n)
    }
}

/// A dead-letter topic: each record carries the original bytes (and key), and headers
/// `sg-reason`, `sg-stage`, `sg-source-topic`, `sg-source-partition`, `sg-source-offset`.
pub struct DeadLetterTopic {
    producer: rdkafka::producer::ThreadedProducer<crate::produce::DeliveryCount>,
    topic: String,
    source_topic: String,
    sent: u64,
}

impl DeadLetterTopic {
    /// Opens a producer to `topic` (created with one partition if missing).
    pub fn open(brokers: &crate::source::kafka::KafkaTopic, properties: &[(String, String)], topic: &str) -> Result<Self> {
        let dlq = crate::source::kafka::KafkaTopic { brokers: brokers.brokers.clone(), topic: topic.into() };
        crate::produce::ensure_topic(&dlq, properties, 1)?;
        let producer = crate::source::kafka::client_config(brokers, properties)
            .set("linger.ms", "5")
            .create_with_context(crate::produce::DeliveryCount::default())
            .context("creating the dead-letter producer")?;
        Ok(DeadLetterTopic { producer, topic: topic.into(), source_topic: brokers.topic.clone(), sent: 0 })
    }

    fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        use rdkafka::message::{Header, OwnedHeaders};
        let stage = stage_name(&letter.stage);
        let (partition, offset) = match letter.position {
            Position::Kafka { partition, offset } => (partition.to_string(), offset.to_string()),
            Position::Line(l) => (String::new(), l.to_string()),
        };
        let headers = OwnedHeaders::new()
            .insert(Header { key: "sg-reason", value: Some(letter.reason.as_str()) })
            .insert(Header { key: "sg-stage", value: Some(stage.as_str()) })
            .insert(Header { key: "sg-source-topic", value: Some(self.source_topic.as_str()) })
            .insert(Header { key: "sg-source-partition", value: Some(partition.as_str()) })
            .insert(Header { key: "sg-source-offset", value: Some(offset.as_str()) });
        let record = rdkafka::producer::BaseRecord::<(), [u8]>::to(&self.topic).payload(&letter.raw).headers(headers);
        self.producer.send(record).map_err(|(e, _)| e).context("sending a dead letter")?;
        self.sent += 1;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        use rdkafka::producer::Producer;
        self.producer.flush(std::time::Duration::from_secs(30)).context("flushing dead letters")?;
        self.producer.context().check(self.sent)
    }

}

fn stage_name(stage: &Stage) -> String {
    match stage {
        Stage::Decode => "decode".to_string(),
        Stage::Component(c) => format!("component:{c}"),
        Stage::Late => "late".to_string(),
    }
}

/// A JSON-lines file of dead letters: one object per message with its source, line, the stage
/// that refused it, the reason and the original message.
pub struct DeadLetterFile {
    path: PathBuf,
    source: String,
    out: BufWriter<File>,
    count: u64,
}

impl DeadLetterFile {
    /// Creates `path`; `source` names the input in every record.
    pub fn create(path: &Path, source: &str) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(DeadLetterFile { path: path.to_path_buf(), source: source.into(), out: BufWriter::new(file), count: 0 })
    }

    /// Appends one dead letter.
    pub fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        let stage = stage_name(&letter.stage);
        let text = std::str::from_utf8(&letter.raw).ok();
        let (line, partition, offset) = match letter.position {
            Position::Line(l) => (Some(l), None, None),
            Position::Kafka { partition, offset } => (None, Some(partition), Some(offset)),
        };
        let record = Record {
            source: &self.source,
            line,
            partition,
            offset,
            stage: &stage,
            reason: &letter.reason,
            message: text,
            message_hex: text.is_none().then(|| hex::encode(&letter.raw)),
        };
        serde_json::to_writer(&mut self.out, &record)?;
        self.out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// Opens `path` for appending (created if missing); `source` names the input.
    pub fn append(path: &Path, source: &str) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(DeadLetterFile { path: path.to_path_buf(), source: source.into(), out: BufWriter::new(file), count: 0 })
    }

    /// Flushes and fsyncs what was written so far.
    pub fn sync(&mut self) -> Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(())
    }

    /// How many were written.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes and syncs; returns the path and count.
    pub fn finish(self) -> Result<(PathBuf, u64)> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((self.path, self.count))
    }
}
