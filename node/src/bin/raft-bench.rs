//! `raft-bench`: measures a KubeRaft cluster (or, with the `etcd` feature, an etcd
//! cluster) with etcd's benchmark shape: N clients, 8-byte keys, 256-byte values, a
//! write/read mix, and p50/p90/p99/p99.9 latency from an HDR histogram.

#[cfg(feature = "etcd")]
#[path = "raft_bench/etcd.rs"]
mod etcd;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory, Parser, ValueEnum};
use kuberaft_node::client::bench::{Driver, RaftDriver, Report, Stop, Workload, prefill, run};
use kuberaft_node::client::cli::{Consistency, TlsArgs, parse_duration};
use kuberaft_node::client::{Client, ClientOptions, ReadConsistency};
use serde::Serialize;

/// mimalloc, as in raft-node. With glibc's malloc, allocation was about a tenth of this
/// tool's CPU at 64 clients, CPU it takes from the members it measures when they share a
/// machine; with mimalloc it used about 5% less CPU per operation.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "raft-bench",
    version,
    about = "Benchmark a KubeRaft (or etcd) cluster"
)]
struct Cli {
    /// Client addresses of the members (host:port), comma-separated.
    #[arg(
        long,
        env = "RAFT_BENCH_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    endpoints: Vec<String>,
    /// The system under test.
    #[arg(long, value_enum, default_value_t = Target::Raft)]
    target: Target,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Connections the clients share (default: min(clients, 8)).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    conns: Option<u32>,
    /// Threads that run the clients (default: one per CPU). When the cluster runs on
    /// the same machine, fewer leave more of it to the members being measured.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Total operations (default 10000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    ops: Option<u64>,
    /// Run for this long instead of a fixed op count (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Bytes per key.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    key_size: u16,
    /// Distinct keys drawn from.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    key_space: u64,
    /// Fraction of operations that are writes (1: writes only, 0: reads only).
    #[arg(long, default_value_t = 1.0, value_parser = ratio)]
    write_ratio: f64,
    /// Read consistency (etcd: stale = serializable, others linearizable).
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    consistency: Consistency,
    /// Do not write the key space before a run with reads.
    #[arg(long)]
    no_prefill: bool,
    /// Seed of the key and op choice, for repeatable runs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long one request may retry before it counts as an error.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Target {
    Raft,
    Etcd,
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a ratio between 0 and 1")),
    }
}

/// The JSON line: the report plus what was measured.
#[derive(Debug, Serialize)]
struct Output<'a> {
    target: Target,
    consistency: String,
    #[serde(flatten)]
    report: &'a Report,
}

impl Cli {
    fn workload(&self) -> Workload {
        Workload {
            clients: self.clients as usize,
            stop: match (self.ops, self.duration) {
                (_, Some(d)) => Stop::Duration(d),
                (ops, None) => Stop::Ops(ops.unwrap_or(10_000)),
            },
            value_size: self.value_size,
            key_size: self.key_size as usize,
            key_space: self.key_space,
            write_ratio: self.write_ratio,
            seed: self.seed,
        }
    }

    fn conns(&self) -> usize {
        self.conns.unwrap_or(self.clients.min(8)) as usize
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    kuberaft_node::client::cli::init_tracing();
    if cli.target == Target::Etcd && !cfg!(feature = "etcd") {
        Cli::command()
            .error(
                clap::error::ErrorKind::InvalidValue,
                "--target etcd needs raft-bench built with `--features etcd` (which needs protoc)",
            )
            .exit();
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        runtime.worker_threads(usize::from(n));
    }
    let runtime = runtime.enable_all().build();
    let result = runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(bench(&cli)));
    match result {
        Ok(report) => {
            if cli.json {
                let out = Output {
                    target: cli.target,
                    consistency: ReadConsistency::from(cli.consistency).to_string(),
                    report: &report,
                };
                println!(
                    "{}",
                    serde_json::to_string(&out).expect("reports serialize")
                );
            } else {
                let target = match cli.target {
                    Target::Raft => "raft",
                    Target::Etcd => "etcd",
                };
                let consistency = ReadConsistency::from(cli.consistency);
                println!("target {target}  consistency {consistency}");
                println!("{report}");
            }
            if report.ops == 0 {
                eprintln!("raft-bench: no operation succeeded");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raft-bench: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn bench(cli: &Cli) -> Result<Report> {
    match cli.target {
        Target::Raft => {
            let per_conn = cli.clients as usize / cli.conns() + 1;
            let tls = cli.tls.client_tls()?;
            let options = ClientOptions {
                retry_budget: cli.timeout,
                max_sessions: per_conn,
                tls: tls.clone(),
                ..ClientOptions::default()
            };
            let mut drivers = Vec::new();
            for _ in 0..cli.conns() {
                let client = Client::connect(&cli.endpoints, options.clone())?;
                drivers.push(Arc::new(RaftDriver {
                    client,
                    consistency: cli.consistency.into(),
                }));
            }
            measure(cli, &drivers).await
        }
        #[cfg(feature = "etcd")]
        Target::Etcd => {
            if cli.tls.tls_ca.is_some() {
                anyhow::bail!("--tls-ca applies to --target raft only");
            }
            let mut drivers = Vec::new();
            for _ in 0..cli.conns() {
                let driver =
                    etcd::EtcdDriver::connect(&cli.endpoints, cli.consistency.into(), cli.timeout)
                        .await?;
                drivers.push(Arc::new(driver));
            }
            measure(cli, &drivers).await
        }
        #[cfg(not(feature = "etcd"))]
        Target::Etcd => unreachable!("refused in main"),
    }
}

async fn measure<D: Driver>(cli: &Cli, drivers: &[Arc<D>]) -> Result<Report> {
    let workload = cli.workload();
    if workload.write_ratio < 1.0 && !cli.no_prefill {
        prefill(&workload, drivers)
            .await
            .map_err(|e| anyhow::anyhow!("writing the key space before the run: {e}"))?;
    }
    Ok(run(&workload, drivers).await)
}

#[cfg(test)]
mod client_bench_cli_tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("raft-bench").chain(args.iter().copied()))
    }

    #[test]
    fn client_bench_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_bench_defaults_follow_etcds_benchmark_shape() {
        let cli = parse(&["--endpoints", "a:1"]).unwrap();
        let w = cli.workload();
        assert_eq!((w.value_size, w.key_size, w.clients), (256, 8, 1));
        assert_eq!(w.stop, Stop::Ops(10_000));
        assert_eq!(cli.conns(), 1);
        let cli = parse(&[
            "--endpoints",
            "a:1",
            "--clients",
            "64",
            "--duration",
            "5s",
            "--write-ratio",
            "0",
        ])
        .unwrap();
        assert_eq!(cli.workload().stop, Stop::Duration(Duration::from_secs(5)));
        assert_eq!(cli.conns(), 8);
        assert_eq!(cli.threads, None);
        let cli = parse(&["--endpoints", "a:1", "--threads", "1"]).unwrap();
        assert_eq!(cli.threads, Some(1));
    }

    #[test]
    fn client_bench_rejects_bad_values() {
        for args in [
            &["--endpoints", "a:1", "--write-ratio", "1.5"][..],
            &["--endpoints", "a:1", "--clients", "0"],
            &["--endpoints", "a:1", "--ops", "5", "--duration", "1s"],
            &["--endpoints", "a:1", "--consistency", "eventual"],
            &["--endpoints", "a:1", "--key-size", "0"],
            &["--endpoints", "a:1", "--threads", "0"],
            &["--ops", "5"],
        ] {
            assert_eq!(parse(args).unwrap_err().exit_code(), 2, "{args:?}");
        }
    }
}
