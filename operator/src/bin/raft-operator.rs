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

use cli::{Cli, Command, PlaygroundAction, PlaygroundArgs};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command {
        None => run::run(cli.run).await,
        Some(Command::Run(args)) => run::run(args).await,
        Some(Command::Playground(args)) => playground(args).await,
    }
}

/// `raft-operator playground [scale N | snapshot]`.
async fn playground(args: PlaygroundArgs) -> anyhow::Result<()> {
    use kuberaft_operator::playground;
    match args.action {
        Some(PlaygroundAction::Scale { replicas, data_dir }) => {
            playground::scale(&data_dir, replicas)?;
            println!("desired replicas: {replicas}");
            Ok(())
        }
        Some(PlaygroundAction::Snapshot { data_dir }) => {
            println!("{}", playground::request_snapshot(&data_dir)?);
            Ok(())
        }
        None => {
            let run = args.run;
            let data_dir = run
                .data_dir
                .ok_or_else(|| anyhow::anyhow!("--data-dir is required"))?;
            let binary = playground::locate_raft_node(run.raft_node.as_deref())?;
            playground::run(playground::Config {
                data_dir,
                replicas: run.replicas,
                node: playground::NodeCommand {
                    binary,
                    tick_millis: run.tick_millis,
                    election_ticks: run.election_ticks,
                    stop_grace: std::time::Duration::from_secs(5),
                },
                snapshot_threshold: run.snapshot_threshold,
                poll_interval: std::time::Duration::from_millis(run.poll_millis),
            })
            .await
        }
    }
}
