//! `sg-host serve`: the query API over output directories and a dedup store (`sg_serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::store::LogStoreArgs;

/// `sg-host serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// An output directory: a bounded run's `--out`, or a stream's (windows are picked up as
    /// they are written). Repeatable.
    #[arg(long)]
    data: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9800")]
    listen: SocketAddr,
    /// The dedup store searched and scored by `/api/logs/…` (`--store DIR` or `--qdrant URL`).
    #[command(flatten)]
    logs: LogStoreArgs,
}

/// Serves until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> Result<()> {
    let logs = args.logs.index()?;
    if args.data.is_empty() && logs.is_none() {
        bail!("nothing to serve: give --data DIR (repeatable) and/or --store DIR");
    }
    let settings = sg_serve::ServeSettings { data: args.data, listen: args.listen };
    let what = format!("{} output directories{}", settings.data.len(), if logs.is_some() { " and a log store" } else { "" });
    sg_serve::serve(&settings, logs, sg_core::signals::stop_flag(), |address| {
        tracing::info!("serving {what} on http://{address}");
    })
}
