//! Where dead letters go: always a JSON-lines file ([`DeadLetterFile`]), and with a Kafka
//! source also a topic ([`DeadLetterTopic`]). The value itself is [`sg_model::DeadLetter`].

mod file;
mod topic;

pub use file::DeadLetterFile;
pub use topic::DeadLetterTopic;

use anyhow::Result;

pub use sg_model::{DeadLetter, RefusedBy};

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

    /// Rotates the file once it holds `max_bytes`, deleting rotated files older than `retain`
    /// ([`DeadLetterFile::rotate`]).
    pub fn rotate(&mut self, max_bytes: u64, retain: std::time::Duration) -> Result<()> {
        match &mut self.file {
            Some(f) => f.rotate(max_bytes, retain),
            None => Ok(()),
        }
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

