//! `raft-node`: one member of a KubeRaft cluster.
//!
//! Every flag can also come from the environment variable `RAFT_<FLAG_IN_UPPER_SNAKE>`
//! (`--data-dir` ↔ `RAFT_DATA_DIR`), which is how the operator's StatefulSet passes
//! them. The bound addresses are printed on one line at start and written to
//! `<data-dir>/addresses.json`, so tests can bind port 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use kuberaft_node::client::cli::parse_duration;
use kuberaft_node::server::{Listeners, Node, NodeOptions, identity::write_atomic};
use kuberaft_node::tls::{ServerTls, TlsFiles};
use tokio::net::TcpListener;

/// mimalloc instead of the system allocator: glibc's malloc and free were about a tenth of
/// a busy leader's CPU, and musl's (the container image) is slower still.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// A KubeRaft member: a Raft replicated key-value store.
#[derive(Debug, Parser)]
#[command(name = "raft-node", version)]
struct Args {
    /// Member name (the pod name in Kubernetes); defaults to the node id.
    #[arg(long, env = "RAFT_NAME", default_value = "")]
    name: String,
    /// Directory for the identity, the WAL and snapshots.
    #[arg(long, env = "RAFT_DATA_DIR")]
    data_dir: PathBuf,
    /// Address for Raft traffic between members.
    #[arg(long, env = "RAFT_PEER_LISTEN", default_value = "0.0.0.0:7000")]
    peer_listen: SocketAddr,
    /// Address for the KV and Admin gRPC services.
    #[arg(long, env = "RAFT_CLIENT_LISTEN", default_value = "0.0.0.0:7001")]
    client_listen: SocketAddr,
    /// Address for /healthz, /readyz, /metrics and /prestop.
    #[arg(long, env = "RAFT_HTTP_LISTEN", default_value = "0.0.0.0:7002")]
    http_listen: SocketAddr,
    /// The peer address other members dial (a stable DNS name in Kubernetes); the bound
    /// address when unset.
    #[arg(long, env = "RAFT_ADVERTISE_PEER")]
    advertise_peer: Option<String>,
    /// The client address given to clients in NotLeader hints; the bound address when unset.
    #[arg(long, env = "RAFT_ADVERTISE_CLIENT")]
    advertise_client: Option<String>,
    /// Length of one Raft tick.
    #[arg(long, env = "RAFT_TICK_MILLIS", default_value_t = 100)]
    tick_millis: u64,
    /// Minimum election timeout, in ticks (the timeout is random in [n, 2n)).
    #[arg(long, env = "RAFT_ELECTION_TICKS", default_value_t = 10)]
    election_ticks: u32,
    /// Ticks between leader heartbeats.
    #[arg(long, env = "RAFT_HEARTBEAT_TICKS", default_value_t = 1)]
    heartbeat_ticks: u32,
    /// Take a snapshot and compact the log every this many applied entries (0: never).
    #[arg(long, env = "RAFT_SNAPSHOT_THRESHOLD", default_value_t = 10_000)]
    snapshot_threshold: u64,
    #[arg(long, env = "RAFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Found a one-voter cluster when the data dir is empty.
    #[arg(long, env = "RAFT_BOOTSTRAP")]
    bootstrap: bool,
    /// File holding the bearer token Admin calls must carry.
    #[arg(long, env = "RAFT_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// PEM certificate (chain) of this member. With --tls-key and --tls-ca: TLS on the
    /// client port, and mutual TLS between members (peer certificates must chain to the
    /// CA and carry the advertised peer host). Reloaded when the files change.
    #[arg(long, env = "RAFT_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RAFT_TLS_KEY", requires_all = ["tls_cert", "tls_ca"])]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle that members' certificates chain to.
    #[arg(long, env = "RAFT_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// How often the TLS files are checked for a rotation (e.g. 10s, 500ms).
    #[arg(long, env = "RAFT_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    tls_reload_interval: Duration,
    /// Threads that run the gRPC servers, the Raft driver and the state machine (the WAL
    /// has a thread of its own). Default: one per two CPUs this process may use (its
    /// cgroup quota counts), at least one.
    #[arg(long, env = "RAFT_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

/// One worker per two usable CPUs. A member's work is a chain of short hand-offs
/// (request, driver, peers, WAL thread, apply, answer); spread over many workers, each
/// hand-off wakes a parked thread on another CPU, which costs more than the work. With
/// three members and a client on two CPUs, one worker each served 36k linearizable reads
/// a second where two served 24k-28k; the WAL thread and the kernel's network stack use
/// the other CPU.
fn default_worker_threads(cpus: usize) -> usize {
    (cpus / 2).max(1)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} address {addr}"))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let workers = match args.worker_threads {
        Some(n) => usize::from(n),
        None => default_worker_threads(
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        ),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    init_tracing(args.log_format);
    if args.tick_millis == 0 {
        bail!("--tick-millis must be at least 1");
    }
    if args.heartbeat_ticks == 0 || args.election_ticks <= args.heartbeat_ticks {
        bail!("--election-ticks must be greater than --heartbeat-ticks, which must be at least 1");
    }
    let admin_token = match &args.admin_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("reading --admin-token-file {}", path.display()))?;
            let token = token.trim().to_owned();
            if token.is_empty() {
                bail!("--admin-token-file {} is empty", path.display());
            }
            Some(token)
        }
        None => None,
    };
    if args.data_dir.exists() && !args.data_dir.is_dir() {
        bail!(
            "--data-dir {} exists and is not a directory",
            args.data_dir.display()
        );
    }
    if args.tls_reload_interval.is_zero() {
        bail!("--tls-reload-interval must be greater than zero");
    }
    let tls = match (args.tls_cert, args.tls_key, args.tls_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(ServerTls::load(TlsFiles { cert, key, ca })?),
        _ => None,
    };
    let listeners = Listeners {
        peer: bind(args.peer_listen, "peer").await?,
        client: bind(args.client_listen, "client").await?,
        http: bind(args.http_listen, "http").await?,
    };
    let opts = NodeOptions {
        name: args.name,
        data_dir: args.data_dir.clone(),
        advertise_peer: args.advertise_peer,
        advertise_client: args.advertise_client,
        tick: Duration::from_millis(args.tick_millis),
        election_ticks: args.election_ticks,
        heartbeat_ticks: args.heartbeat_ticks,
        snapshot_threshold: args.snapshot_threshold,
        admin_token,
        tls,
        tls_reload: args.tls_reload_interval,
        bootstrap: args.bootstrap,
    };
    let node = Node::start(opts, listeners)
        .await
        .context("starting the node")?;
    let addresses = serde_json::json!({
        "node_id": node.node_id,
        "peer": node.peer_addr.to_string(),
        "client": node.client_addr.to_string(),
        "http": node.http_addr.to_string(),
        "advertise_peer": node.advertise_peer(),
        "advertise_client": node.advertise_client(),
    });
    write_atomic(&args.data_dir, "addresses.json", &addresses.to_string())
        .context("writing addresses.json")?;
    println!(
        "raft-node listening node_id={} peer={} client={} http={}",
        node.node_id, node.peer_addr, node.client_addr, node.http_addr
    );
    node.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_per_two_cpus_and_never_none() {
        let got: Vec<usize> = [1, 2, 3, 4, 16].map(default_worker_threads).into();
        assert_eq!(got, [1, 1, 1, 2, 8]);
    }

    #[test]
    fn worker_threads_flag_is_checked() {
        let parse =
            |n: &str| Args::try_parse_from(["raft-node", "--data-dir", "d", "--worker-threads", n]);
        assert_eq!(parse("3").unwrap().worker_threads, Some(3));
        let err = parse("0").unwrap_err().to_string();
        assert!(
            err.contains("--worker-threads") && err.contains("0 is not in 1..=1024"),
            "{err}"
        );
        let err = parse("many").unwrap_err().to_string();
        assert!(
            err.contains("--worker-threads") && err.contains("invalid digit"),
            "{err}"
        );
    }
}
