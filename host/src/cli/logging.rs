//! The log: `tracing` events on stderr, as text or JSON lines, filtered like `RUST_LOG`.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(super) enum LogFormat {
    /// One human-readable line per event (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per event (`timestamp`, `level`, `target`, `fields`), for log shippers.
    Json,
}

/// The filter used when neither `--log`, `SG_LOG` nor `RUST_LOG` gives one.
const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber. The filter is `--log`'s, else `SG_LOG`'s, else
/// `RUST_LOG`'s, else [`DEFAULT_FILTER`]; its syntax is `tracing_subscriber`'s `EnvFilter`
/// (`warn,sg_kafka=debug,librdkafka=info`).
pub(super) fn init(format: LogFormat, filter: Option<&str>) -> Result<()> {
    let from_env = || std::env::var("SG_LOG").or_else(|_| std::env::var("RUST_LOG")).ok();
    let spec = filter.map(str::to_string).or_else(from_env).unwrap_or_else(|| DEFAULT_FILTER.to_string());
    let filter = EnvFilter::try_new(&spec).with_context(|| format!("log filter {spec:?}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.with_target(false).with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}
