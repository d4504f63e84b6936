//! `sg-host`, the command line: parses flags and configuration and runs the jobs of
//! `sg-anomaly` and `sg-dedup` on the `sg-pipeline` driver (see `docs/architecture.md`).

pub mod cli;
pub mod synthetic;
pub mod table_io;
