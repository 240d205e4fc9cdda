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
    /// Run a local cluster of raft-node processes driven by the operator's planner (no
    /// Kubernetes needed).
    Playground(PlaygroundArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PlaygroundArgs {
    #[command(subcommand)]
    pub action: Option<PlaygroundAction>,

    #[command(flatten)]
    pub run: PlaygroundRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum PlaygroundAction {
    /// Change the desired size of a running playground.
    Scale {
        replicas: u32,
        /// The running playground's data dir.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Ask a running playground for a snapshot on every member; prints the request id.
    Snapshot {
        /// The running playground's data dir.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Clone, Debug, Args)]
pub struct PlaygroundRunArgs {
    /// Desired members; when unset, what the data dir's desired.json says (else 3).
    #[arg(long)]
    pub replicas: Option<u32>,

    /// Holds one directory per member, status.json, desired.json and endpoints.
    #[arg(long, required = true)]
    pub data_dir: Option<PathBuf>,

    /// The raft-node binary; default: next to raft-operator, else on PATH.
    #[arg(long)]
    pub raft_node: Option<PathBuf>,

    /// Raft tick of the members, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub tick_millis: u64,

    /// Minimum election timeout of the members, in ticks.
    #[arg(long, default_value_t = 10)]
    pub election_ticks: u64,

    /// Members snapshot and compact every this many applied entries.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_threshold: u64,

    /// Pause between two reconciles, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub poll_millis: u64,
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
    fn playground_and_its_subcommands_parse() {
        let cli = Cli::try_parse_from([
            "raft-operator",
            "playground",
            "--replicas",
            "3",
            "--data-dir",
            "/tmp/pg",
        ])
        .unwrap();
        let Some(Command::Playground(p)) = cli.command else {
            panic!("expected playground");
        };
        assert!(p.action.is_none());
        assert_eq!(p.run.replicas, Some(3));
        assert_eq!(
            p.run.data_dir.as_deref(),
            Some(std::path::Path::new("/tmp/pg"))
        );

        let cli = Cli::try_parse_from([
            "raft-operator",
            "playground",
            "scale",
            "5",
            "--data-dir",
            "/tmp/pg",
        ])
        .unwrap();
        let Some(Command::Playground(p)) = cli.command else {
            panic!("expected playground");
        };
        assert!(matches!(
            p.action,
            Some(PlaygroundAction::Scale { replicas: 5, .. })
        ));

        assert!(Cli::try_parse_from(["raft-operator", "playground"]).is_err());
    }

    #[test]
    fn clap_configuration_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
