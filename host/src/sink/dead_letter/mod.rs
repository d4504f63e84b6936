//! Dead letters: messages that could not be processed, kept with the reason and position —
//! a plain value ([`DeadLetter`]) and where it goes: always a JSON-lines file ([`file`]), and
//! with a Kafka source also a topic ([`topic`]).

mod file;
mod topic;

pub use file::DeadLetterFile;
pub use topic::DeadLetterTopic;

use anyhow::Result;

use crate::source::Position;

/// Which step refused a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefusedBy {
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
    pub stage: RefusedBy,
    /// Why.
    pub reason: String,
    /// The original bytes.
    pub raw: Vec<u8>,
}

impl DeadLetter {
    /// A dead letter for `raw` found at `position`.
    pub fn new(position: Position, stage: RefusedBy, reason: impl Into<String>, raw: &[u8]) -> Self {
        DeadLetter { position, stage, reason: reason.into(), raw: raw.to_vec() }
    }
}

/// Where dead letters go: a file (the output's, or the job's), and with a Kafka source also a
/// topic.
pub struct DeadLetters {
    file: Option<DeadLetterFile>,
    topic: Option<DeadLetterTopic>,
}

impl DeadLetters {
    /// Dead letters to `file`, and to `topic` when given.
    pub fn new(file: DeadLetterFile, topic: Option<DeadLetterTopic>) -> Self {
        DeadLetters { file: Some(file), topic }
    }

    /// No sink at all: for a dry run, which prints each refusal with the decisions instead.
    pub fn printed_elsewhere() -> Self {
        DeadLetters { file: None, topic: None }
    }

    /// Records one dead letter everywhere.
    pub fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        if let Some(f) = &mut self.file {
            f.write(letter)?;
        }
        if let Some(t) = &mut self.topic {
            t.write(letter)?;
        }
        Ok(())
    }

    /// How many so far.
    pub fn count(&self) -> u64 {
        self.file.as_ref().map_or(0, DeadLetterFile::count)
    }

    /// Makes every dead letter so far durable (file fsync'd, topic acknowledged) — before any
    /// source offset that covers them is committed.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(f) = &mut self.file {
            f.sync()?;
        }
        if let Some(t) = &self.topic {
            t.sync()?;
        }
        Ok(())
    }

    /// Flushes the file and waits until the topic acknowledged every dead letter; returns how
    /// many were written.
    pub fn finish(self) -> Result<u64> {
        let n = match self.file {
            Some(f) => f.finish()?.1,
            None => 0,
        };
        if let Some(t) = &self.topic {
            t.sync()?;
        }
        Ok(n)
    }
}

/// The stage's name in dead-letter records and headers.
fn stage_name(stage: &RefusedBy) -> String {
    match stage {
        RefusedBy::Decode => "decode".to_string(),
        RefusedBy::Component(c) => format!("component:{c}"),
        RefusedBy::Late => "late".to_string(),
    }
}
