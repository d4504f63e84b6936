//! Sinks: everything a pipeline writes, each durable before the source positions it covers are
//! acknowledged — dead letters (file and topic), the scored table as Hive-partitioned Parquet
//! with its report (staged beside, then renamed into place), the streaming checkpoint, and the
//! point store of the dedup job.

pub mod alerts;
pub mod checkpoint;
pub mod dead_letter;
pub mod durable;
mod parquet;
mod report;
mod scored;
mod staging;

pub use checkpoint::Checkpoint;
pub use dead_letter::{DeadLetter, DeadLetterFile, DeadLetterTopic, DeadLetters, RefusedBy};
pub use parquet::{LEDGER_FILE, write_ledger, write_partitioned, write_table};
pub use report::{AnomalyReport, Layout, Period, TopAnomaly};
pub use scored::{Explained, ScoredTable};
pub use staging::{Replace, SUCCESS_FILE, StagedDir};
