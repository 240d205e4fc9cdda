//! `raftctl`: the command line for a KubeRaft cluster. KV commands go through the
//! leader-following [`Client`]; `status`, `member` and `snapshot` use the Admin API.
//! Human tables by default, `-o json` for scripts; any failure is one line on stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kuberaft_node::client::cli::{
    Consistency, KvRow, Table, TlsArgs, find_member, member_rows, members_table, parse_duration,
    show_bytes, show_id,
};
use kuberaft_node::client::{AdminClient, Client, ClientOptions, Expected, JoinOptions, KeyValue};
use kuberaft_node::pb::admin::{Lifecycle, StatusResponse};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "raftctl", version, about = "Talk to a KubeRaft cluster")]
struct Cli {
    /// Client addresses of any members (host:port), comma-separated.
    #[arg(long, env = "RAFTCTL_ENDPOINTS", value_delimiter = ',', global = true)]
    endpoints: Vec<String>,
    /// File holding the bearer token Admin calls need, if the cluster requires one.
    #[arg(long, env = "RAFTCTL_ADMIN_TOKEN_FILE", global = true)]
    admin_token_file: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    /// How long one command may retry (find the leader, ride out an election).
    #[arg(long, default_value = "10s", value_parser = parse_duration, global = true)]
    timeout: Duration,
    /// Deadline of a single RPC to one member.
    #[arg(long, default_value = "2s", value_parser = parse_duration, global = true)]
    call_timeout: Duration,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set KEY to VALUE.
    Put { key: String, value: String },
    /// Print KEY's value (exit 1 when absent).
    Get {
        key: String,
        #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
        consistency: Consistency,
    },
    /// Delete KEY.
    Del { key: String },
    /// Set KEY to NEW only if the expectation holds (exit 1 when it does not).
    Cas(CasArgs),
    /// List the keys starting with PREFIX.
    Range {
        prefix: String,
        /// At most this many keys (0: all).
        #[arg(long, default_value_t = 0)]
        limit: u64,
        #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
        consistency: Consistency,
    },
    /// Members, roles, term, commit index and lag.
    Status,
    /// Membership changes.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Make every member take a snapshot and compact its log.
    Snapshot,
}

#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("expectation").required(true).multiple(false)))]
struct CasArgs {
    key: String,
    /// The new value.
    new: String,
    /// The key must hold this value.
    #[arg(long, group = "expectation")]
    expect: Option<String>,
    /// The key must not exist.
    #[arg(long, group = "expectation")]
    expect_absent: bool,
    /// The key's last write must be at this revision.
    #[arg(long, group = "expectation")]
    expect_rev: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Add the uninitialized node at ADDR: PrepareJoin, AddLearner, wait, Promote.
    Add {
        /// The new node's client address.
        addr: String,
        /// Promote once the learner is at most this many entries behind.
        #[arg(long, default_value_t = 100)]
        max_lag: u64,
        /// Give up waiting for the learner to catch up after this long.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        catch_up_timeout: Duration,
    },
    /// Remove a member, by name or id.
    Remove { member: String },
    /// Hand leadership to a member, by name or id.
    TransferLeader { member: String },
}

fn main() -> ExitCode {
    let cli = parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    kuberaft_node::client::cli::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("raftctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("raftctl: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line. `--endpoints` is checked here rather than by `required`
/// because clap does not allow global arguments (usable after the subcommand) to be
/// required; the error is still a usage error with exit code 2.
fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::CommandFactory;
    let cli = Cli::try_parse_from(args)?;
    if cli.endpoints.iter().all(|e| e.trim().is_empty()) {
        return Err(Cli::command().error(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--endpoints (or RAFTCTL_ENDPOINTS) is required: the client addresses of any members",
        ));
    }
    Ok(cli)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let options = ClientOptions {
        call_timeout: cli.call_timeout,
        retry_budget: cli.timeout,
        tls: cli.tls.client_tls()?,
        ..ClientOptions::default()
    };
    let out = Printer(cli.output);
    match cli.command {
        Command::Put { key, value } => {
            let revision = kv(&cli.endpoints, options)?.put(key, value).await?;
            out.print(json!({ "revision": revision }), || {
                format!("OK (revision {revision})")
            });
        }
        Command::Get { key, consistency } => {
            let found = kv(&cli.endpoints, options)?
                .get(key.clone(), consistency.into())
                .await?;
            return Ok(print_get(out, &key, found.as_ref()));
        }
        Command::Del { key } => {
            let deleted = kv(&cli.endpoints, options)?.delete(key).await?;
            out.print(json!({ "deleted": deleted }), || {
                if deleted { "deleted" } else { "not found" }.to_owned()
            });
        }
        Command::Cas(args) => return cas(out, kv(&cli.endpoints, options)?, args).await,
        Command::Range {
            prefix,
            limit,
            consistency,
        } => {
            let kvs = kv(&cli.endpoints, options)?
                .range_with(prefix, limit, consistency.into())
                .await?;
            let rows: Vec<KvRow> = kvs.iter().map(KvRow::from).collect();
            out.print(json!(rows), || {
                let mut table = Table::new(&["key", "value", "mod_revision", "version"]);
                for r in &rows {
                    table.row(vec![
                        r.key.clone(),
                        r.value.clone(),
                        r.mod_revision.to_string(),
                        r.version.to_string(),
                    ]);
                }
                table.to_string().trim_end().to_owned()
            });
        }
        Command::Status => {
            let admin = admin(&cli.endpoints, options, cli.admin_token_file.as_ref())?;
            let config = admin.config_status().await?;
            if config.members.is_empty() {
                bail!("{}", no_configuration(&config));
            }
            let mut own = Vec::new();
            for member in &config.members {
                let admin = admin.clone();
                let addr = member.client_addr.clone();
                own.push(tokio::spawn(async move {
                    admin.status_once(&addr).await.map_err(|e| e.to_string())
                }));
            }
            let mut answers = Vec::new();
            for task in own {
                answers.push(task.await.context("status probe panicked")?);
            }
            let rows = member_rows(&config, &answers);
            out.print(json!(rows), || {
                members_table(&rows).to_string().trim_end().to_owned()
            });
        }
        Command::Member(command) => {
            let admin = admin(&cli.endpoints, options, cli.admin_token_file.as_ref())?;
            member(out, &admin, command).await?;
        }
        Command::Snapshot => {
            let admin = admin(&cli.endpoints, options, cli.admin_token_file.as_ref())?;
            let config = admin.config_status().await?;
            let mut rows = Vec::new();
            for m in &config.members {
                let result = admin.snapshot(&m.client_addr).await;
                rows.push(match result {
                    Ok(s) => json!({ "name": m.name, "id": show_id(m.node_id), "index": s.index, "term": s.term }),
                    Err(e) => json!({ "name": m.name, "id": show_id(m.node_id), "error": e.to_string() }),
                });
            }
            let failed = rows.iter().any(|r| r.get("error").is_some());
            out.print(json!(rows), || {
                let mut table = Table::new(&["name", "id", "index", "term", "error"]);
                for r in &rows {
                    let cell = |k: &str| {
                        r.get(k)
                            .map(|v| v.to_string().trim_matches('"').to_owned())
                            .unwrap_or_default()
                    };
                    table.row(vec![
                        cell("name"),
                        cell("id"),
                        cell("index"),
                        cell("term"),
                        cell("error"),
                    ]);
                }
                table.to_string().trim_end().to_owned()
            });
            if failed {
                bail!("some members did not take a snapshot");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn kv(endpoints: &[String], options: ClientOptions) -> Result<Client> {
    Ok(Client::connect(endpoints, options)?)
}

fn admin(
    endpoints: &[String],
    options: ClientOptions,
    token_file: Option<&PathBuf>,
) -> Result<AdminClient> {
    let admin = AdminClient::connect(endpoints, options)?;
    match token_file {
        None => Ok(admin),
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("reading the admin token from {}", path.display()))?;
            Ok(admin.with_token(&token)?)
        }
    }
}

fn print_get(out: Printer, key: &str, found: Option<&KeyValue>) -> ExitCode {
    match found {
        Some(kv) => {
            let row = KvRow::from(kv);
            out.print(json!(row), || row.value.clone());
            ExitCode::SUCCESS
        }
        None => {
            match out.0 {
                Output::Json => println!("null"),
                Output::Table => eprintln!("raftctl: key {key:?} not found"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn cas(out: Printer, client: Client, args: CasArgs) -> Result<ExitCode> {
    let expected = match (args.expect, args.expect_absent, args.expect_rev) {
        (Some(value), _, _) => Expected::Value(Bytes::from(value)),
        (None, true, _) => Expected::Absent,
        (None, false, Some(rev)) => Expected::ModRevision(rev),
        (None, false, None) => bail!("one of --expect, --expect-absent, --expect-rev is required"),
    };
    let outcome = client
        .compare_and_swap(args.key, expected, Some(Bytes::from(args.new)))
        .await?;
    let current = outcome.current.as_ref().map(KvRow::from);
    out.print(
        json!({ "succeeded": outcome.succeeded, "revision": outcome.revision, "current": current }),
        || match (&outcome.succeeded, &outcome.current) {
            (true, _) => format!("swapped (revision {})", outcome.revision),
            (false, Some(kv)) => format!(
                "not swapped: current value {} (mod_revision {})",
                show_bytes(&kv.value),
                kv.mod_revision
            ),
            (false, None) => "not swapped: the key is absent".to_owned(),
        },
    );
    Ok(if outcome.succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn member(out: Printer, admin: &AdminClient, command: MemberCommand) -> Result<()> {
    match command {
        MemberCommand::Add {
            addr,
            max_lag,
            catch_up_timeout,
        } => {
            let options = JoinOptions {
                max_lag,
                catch_up_timeout,
                ..JoinOptions::default()
            };
            admin
                .add_member(&addr, &options, |step| {
                    let mut json = json!(step);
                    json["id"] = json!(show_id(step.id()));
                    out.print(json, || step.to_string());
                })
                .await
                .with_context(|| format!("adding {addr}"))?;
            Ok(())
        }
        MemberCommand::Remove { member } => {
            let config = admin.leader_status().await?;
            let id = find_member(&config, &member).map_err(anyhow::Error::msg)?;
            let done = admin.remove_member(id).await?;
            out.print(
                json!({ "removed": show_id(id), "index": done.index }),
                || format!("removed {member} ({}) at index {}", show_id(id), done.index),
            );
            Ok(())
        }
        MemberCommand::TransferLeader { member } => {
            let config = admin.leader_status().await?;
            let id = find_member(&config, &member).map_err(anyhow::Error::msg)?;
            let leader = admin.transfer_leadership(id).await?;
            out.print(json!({ "leader": show_id(leader) }), || {
                format!("leadership transferred to {}", show_id(leader))
            });
            Ok(())
        }
    }
}

/// Why the only member that answered lists no configuration (it must be one that is not,
/// or no longer, in a cluster), and what to do.
fn no_configuration(s: &StatusResponse) -> String {
    let who = format!("{} ({})", s.name, show_id(s.node_id));
    match Lifecycle::try_from(s.lifecycle) {
        Ok(Lifecycle::Removed) => format!(
            "{who} was removed from its cluster and knows no configuration; \
             name current members with --endpoints"
        ),
        Ok(Lifecycle::Uninitialized) => format!(
            "{who} is not in a cluster yet: start it with --bootstrap to found one, \
             or add it to one with `raftctl member add`"
        ),
        Ok(Lifecycle::Joining) => format!(
            "{who} is joining a cluster and knows no configuration yet; \
             name current members with --endpoints"
        ),
        _ => format!("{who} answered with no configuration"),
    }
}

/// Prints one result as a JSON line or as text.
#[derive(Debug, Clone, Copy)]
struct Printer(Output);

impl Printer {
    fn print(&self, json: serde_json::Value, text: impl FnOnce() -> String) {
        match self.0 {
            Output::Json => println!("{json}"),
            Output::Table => println!("{}", text()),
        }
    }
}

#[cfg(test)]
mod client_cli_tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_args(std::iter::once("raftctl").chain(args.iter().copied()))
    }

    #[test]
    fn client_raftctl_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_raftctl_parses_endpoints_and_commands() {
        let cli = parse(&[
            "--endpoints",
            "a:1,b:2",
            "-o",
            "json",
            "get",
            "k",
            "--consistency",
            "stale",
        ])
        .unwrap();
        assert_eq!(cli.endpoints, ["a:1", "b:2"]);
        assert_eq!(cli.output, Output::Json);
        assert!(
            matches!(cli.command, Command::Get { ref key, consistency: Consistency::Stale } if key == "k")
        );
        let cli = parse(&[
            "member",
            "add",
            "n4:2379",
            "--endpoints",
            "a:1",
            "--timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(cli.timeout, Duration::from_millis(500));
        assert!(
            matches!(cli.command, Command::Member(MemberCommand::Add { ref addr, max_lag: 100, .. }) if addr == "n4:2379")
        );
    }

    #[test]
    fn client_raftctl_cas_needs_exactly_one_expectation() {
        let cli = parse(&["--endpoints", "a:1", "cas", "k", "--expect-rev", "7", "new"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Cas(CasArgs {
                expect_rev: Some(7),
                ..
            })
        ));
        assert!(parse(&["--endpoints", "a:1", "cas", "k", "new"]).is_err());
        assert!(
            parse(&[
                "--endpoints",
                "a:1",
                "cas",
                "k",
                "--expect",
                "v",
                "--expect-absent",
                "new"
            ])
            .is_err()
        );
    }

    #[test]
    fn client_raftctl_rejects_bad_input_with_usage_errors() {
        for args in [
            &["--endpoints", "a:1", "--bogus", "status"][..],
            &["--endpoints", "a:1", "-o", "yaml", "status"],
            &[
                "--endpoints",
                "a:1",
                "get",
                "k",
                "--consistency",
                "eventual",
            ],
            &["--endpoints", "a:1", "range", "p", "--limit", "-3"],
            &["--endpoints", "a:1", "--timeout", "soon", "status"],
            &["status"],
            &["--endpoints", "", "status"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
