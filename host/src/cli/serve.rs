//! `sg-host serve`: the query API over output directories (`sg_serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// `sg-host serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// An output directory: a bounded run's `--out`, or a stream's (windows are picked up as
    /// they are written). Repeatable.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9800")]
    listen: SocketAddr,
}

/// Serves until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> Result<()> {
    let settings = sg_serve::ServeSettings { data: args.data, listen: args.listen };
    let dirs = settings.data.len();
    sg_serve::serve(&settings, sg_core::signals::stop_flag(), |address| {
        eprintln!("sg-host: serving {dirs} output directories on http://{address}");
    })
}
