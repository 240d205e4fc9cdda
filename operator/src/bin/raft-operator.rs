//! `raft-operator`: the KubeRaft operator process.
//!
//! `run` (the default) reconciles RaftClusters in the cluster it runs in (or the one
//! KUBECONFIG names), with Lease leader election, `/metrics` and `/healthz`.

#[path = "raft_operator/cli.rs"]
mod cli;
#[path = "raft_operator/http.rs"]
mod http;
#[path = "raft_operator/logging.rs"]
mod logging;
#[path = "raft_operator/run.rs"]
mod run;

use clap::Parser;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command {
        None => run::run(cli.run).await,
        Some(Command::Run(args)) => run::run(args).await,
        // ── the `playground` subcommand is dispatched here (see cli.rs) ──
    }
}
