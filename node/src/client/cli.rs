//! Pieces shared by `raftctl` and `raft-bench` that are worth unit tests: parsing
//! durations, rendering aligned tables, and the member-status rows both human and JSON
//! output are made from.

use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;

use super::admin_pb::{MemberKind, Role, StatusResponse};
use super::{KeyValue, ReadConsistency};
use crate::tls::{ClientTls, TlsError};

/// Diagnostics of both tools on stderr, only when `RUST_LOG` asks for them (e.g.
/// `RUST_LOG=kuberaft_node::client=debug` shows every retry, hint followed and leader
/// probe), so tables and JSON on stdout stay as they are.
pub fn init_tracing() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
}

/// The `--consistency` flag of both tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    Linearizable,
    Lease,
    Stale,
}

impl From<Consistency> for ReadConsistency {
    fn from(c: Consistency) -> Self {
        match c {
            Consistency::Linearizable => ReadConsistency::Linearizable,
            Consistency::Lease => ReadConsistency::Lease,
            Consistency::Stale => ReadConsistency::Stale,
        }
    }
}

/// The TLS flags of both tools, for clusters whose members run with `--tls-*`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM CA bundle the members' certificates chain to; turns TLS on.
    #[arg(long, env = "RAFTCTL_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate to present (with --tls-key), if the members ask for one.
    #[arg(long, env = "RAFTCTL_TLS_CERT", global = true, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RAFTCTL_TLS_KEY", global = true, requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The client TLS settings, or `None` without `--tls-ca`.
    pub fn client_tls(&self) -> Result<Option<ClientTls>, TlsError> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let identity = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
        ClientTls::from_files(ca, identity).map(Some)
    }
}

/// Parses `250ms`, `10s`, `2m` or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (expected e.g. 500ms, 10s, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {text:?} (ms, s or m)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// A table printed with columns aligned by two spaces, headers in capitals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.as_ref().to_uppercase()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells print empty, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let empty = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate().take(columns) {
                let cell = line.get(i).unwrap_or(&empty);
                if i + 1 == columns {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  "));
                }
            }
            writeln!(f, "{}", text.trim_end())?;
        }
        Ok(())
    }
}

/// Bytes as text: UTF-8 as it is, anything else escaped, so output stays one line.
pub fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains(['\n', '\r']) => text.to_owned(),
        _ => bytes.escape_ascii().to_string(),
    }
}

/// A key-value pair as printed by `raftctl -o json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvRow {
    /// The key (see [`show_bytes`]).
    pub key: String,
    /// The value (see [`show_bytes`]).
    pub value: String,
    /// The log index that created the key.
    pub create_revision: u64,
    /// The log index of its last write.
    pub mod_revision: u64,
    /// Writes since creation.
    pub version: u64,
}

impl From<&KeyValue> for KvRow {
    fn from(kv: &KeyValue) -> Self {
        Self {
            key: show_bytes(&kv.key),
            value: show_bytes(&kv.value),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        }
    }
}

/// One line of `raftctl status`: the configuration as the leader (or, without one, any
/// member) sees it, joined with what each member says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRow {
    /// The member's name.
    pub name: String,
    /// Its node id in hex, as every raftctl output shows ids.
    pub id: String,
    /// `leader`, `follower`, `candidate`, `pre-candidate`, or `unreachable`.
    pub role: String,
    /// `voter`, `learner` or `outgoing-voter`.
    pub kind: String,
    /// The member's term, from its own status.
    pub term: Option<u64>,
    /// The member's commit index, from its own status.
    pub commit_index: Option<u64>,
    /// The member's applied index, from its own status.
    pub applied_index: Option<u64>,
    /// Entries behind the leader (the leader's view; absent without a leader).
    pub lag: Option<u64>,
    /// Its client address.
    pub client_addr: String,
    /// Why its own status could not be read.
    pub error: Option<String>,
}

/// A node id as raftctl prints it.
pub fn show_id(id: u64) -> String {
    format!("{id:016x}")
}

fn role_name(role: i32) -> &'static str {
    match Role::try_from(role) {
        Ok(Role::Leader) => "leader",
        Ok(Role::Candidate) => "candidate",
        Ok(Role::PreCandidate) => "pre-candidate",
        Ok(Role::Follower) => "follower",
        Err(_) => "unknown",
    }
}

fn kind_name(kind: i32) -> &'static str {
    match MemberKind::try_from(kind) {
        Ok(MemberKind::Voter) => "voter",
        Ok(MemberKind::Learner) => "learner",
        Ok(MemberKind::OutgoingVoter) => "outgoing-voter",
        Err(_) => "unknown",
    }
}

/// Builds the status rows from the configuration holder's status (`config`, the leader
/// when there is one) and each member's own answer, in the configuration's order.
pub fn member_rows(
    config: &StatusResponse,
    own: &[Result<StatusResponse, String>],
) -> Vec<MemberRow> {
    let from_leader = config.role == Role::Leader as i32;
    config
        .members
        .iter()
        .zip(own)
        .map(|(member, own)| {
            let (role, term, commit, applied, error) = match own {
                Ok(s) => (
                    role_name(s.role).to_owned(),
                    Some(s.term),
                    Some(s.commit_index),
                    Some(s.applied_index),
                    None,
                ),
                Err(e) => ("unreachable".to_owned(), None, None, None, Some(e.clone())),
            };
            MemberRow {
                name: member.name.clone(),
                id: show_id(member.node_id),
                role,
                kind: kind_name(member.kind).to_owned(),
                term,
                commit_index: commit,
                applied_index: applied,
                lag: from_leader.then_some(member.lag),
                client_addr: member.client_addr.clone(),
                error,
            }
        })
        .collect()
}

/// The human form of [`member_rows`].
pub fn members_table(rows: &[MemberRow]) -> Table {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut table = Table::new(&[
        "name", "id", "role", "kind", "term", "commit", "applied", "lag", "address",
    ]);
    for r in rows {
        table.row(vec![
            r.name.clone(),
            r.id.clone(),
            r.role.clone(),
            r.kind.clone(),
            opt(r.term),
            opt(r.commit_index),
            opt(r.applied_index),
            opt(r.lag),
            r.client_addr.clone(),
        ]);
    }
    table
}

/// Finds the member a `raftctl member ...` argument names: its name, its id in hex as
/// printed, or its id in decimal. Several matches are an error, not a guess.
pub fn find_member(config: &StatusResponse, name_or_id: &str) -> Result<u64, String> {
    let wanted = name_or_id.trim().trim_start_matches("0x");
    let matches: Vec<u64> = config
        .members
        .iter()
        .filter(|m| {
            m.name == name_or_id
                || show_id(m.node_id) == wanted
                || format!("{:x}", m.node_id) == wanted
                || m.node_id.to_string() == wanted
        })
        .map(|m| m.node_id)
        .collect();
    match matches.as_slice() {
        [id] => Ok(*id),
        [] => Err(format!(
            "no member named {name_or_id:?} (see raftctl status)"
        )),
        _ => Err(format!(
            "{name_or_id:?} names several members; use the hex id"
        )),
    }
}

#[cfg(test)]
mod tests;
