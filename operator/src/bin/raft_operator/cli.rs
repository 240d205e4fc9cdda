//! Command line and environment. Every flag also reads `KUBERAFT_<FLAG>`, so the Helm
//! chart configures the Deployment through env without rewriting args.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "raft-operator", version, about = "The KubeRaft operator")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "KUBERAFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// `run`'s flags, for when no subcommand is given.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile RaftClusters (the default).
    Run(RunArgs),
    // ── Reserved: the `playground` subcommand (local raft-node processes driven by the
    // same planner, no Kubernetes) is added here, with its own module beside run.rs. ──
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "KUBERAFT_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of `/metrics` and `/healthz`.
    #[arg(long, env = "KUBERAFT_HTTP_LISTEN", default_value = "0.0.0.0:8080")]
    pub http_listen: SocketAddr,

    /// File holding the bearer token the raft-node Admin API requires, if any.
    #[arg(long, env = "KUBERAFT_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Deadline of each Admin.Status call, in milliseconds.
    #[arg(long, env = "KUBERAFT_STATUS_DEADLINE_MS", default_value_t = 2000)]
    pub status_deadline_ms: u64,

    /// Elect a leader through a Lease, so replicas can stand by. Turn off only when
    /// exactly one operator runs.
    #[arg(long, env = "KUBERAFT_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the leader election Lease.
    #[arg(long, env = "KUBERAFT_LEASE_NAME", default_value = "kuberaft-operator")]
    pub lease_name: String,

    /// Namespace of the Lease: the operator's own (the downward API sets POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// This replica's identity in the Lease and in Events: the pod name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "KUBERAFT_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,

    /// Seconds before expiry at which the holder renews.
    #[arg(long, env = "KUBERAFT_LEASE_GRACE", default_value_t = 5)]
    pub lease_grace: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_is_the_default_and_flags_parse() {
        let cli =
            Cli::try_parse_from(["raft-operator", "--namespace", "ns", "--log-format", "json"])
                .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.namespace.as_deref(), Some("ns"));
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(cli.run.leader_election);

        let cli = Cli::try_parse_from([
            "raft-operator",
            "run",
            "--leader-election",
            "false",
            "--http-listen",
            "127.0.0.1:9000",
        ])
        .unwrap();
        let Some(Command::Run(args)) = cli.command else {
            panic!("expected run");
        };
        assert!(!args.leader_election);
        assert_eq!(args.http_listen.port(), 9000);
    }

    #[test]
    fn clap_configuration_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
