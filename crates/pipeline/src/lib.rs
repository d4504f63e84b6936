//! What every sg-host job runs on: the one run loop ([`driver`]), the sources it reads
//! ([`source`]: files, bounded Kafka reads, followed topics), the sinks it writes ([`sink`]:
//! dead letters, Parquet and the report, staging, the streaming checkpoint), progress
//! ([`steps`]) and the admin API for live upgrades ([`admin`]). The jobs themselves are the
//! `sg-anomaly` and `sg-dedup` crates, each a [`Stage`].

#![deny(missing_docs)]

pub mod admin;
pub mod driver;
pub mod retry;
pub mod sink;
pub mod source;
pub mod steps;

pub use driver::{Ack, Context, Decoder, Stage, drive};
pub use steps::Steps;
