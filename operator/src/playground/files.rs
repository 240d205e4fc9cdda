//! The playground's files under its data dir: `desired.json` (what `playground scale`
//! and `playground snapshot` write, the running loop polls), `status.json` (the planner's
//! memory, so a restarted playground resumes) and `endpoints` (for `raftctl --endpoints`).
//! Every write is atomic: a temporary file in the same directory, then a rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::planner::{NodeId, Operation};

pub const DESIRED_FILE: &str = "desired.json";
pub const STATUS_FILE: &str = "status.json";
pub const ENDPOINTS_FILE: &str = "endpoints";

/// `desired.json`: the playground's spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredFile {
    pub replicas: u32,
    /// A new value asks for a snapshot on every member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_request_id: Option<String>,
}

/// `status.json`: what the planner must remember between polls and across restarts, and
/// what a user (or a test) wants to see.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The replica count of the "StatefulSet"; `None` until it is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statefulset_replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot_request_id: Option<String>,
    /// `BlockedCode` as a string, so block Events fire only on transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub voters: u32,
    #[serde(default)]
    pub healthy_voters: u32,
    /// Every member process, by ordinal.
    #[serde(default)]
    pub members: Vec<MemberRecord>,
}

/// One member process as `status.json` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub name: String,
    pub ordinal: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<NodeId>,
}

/// [`Operation`] in serde form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum OperationRecord {
    Bootstrap,
    ScaleUp {
        ordinal: u32,
    },
    ScaleDown {
        ordinal: Option<u32>,
        node_id: NodeId,
    },
    Replace {
        ordinal: u32,
        old: NodeId,
    },
    Upgrade {
        ordinal: u32,
        node_id: NodeId,
    },
}

impl From<&Operation> for OperationRecord {
    fn from(op: &Operation) -> Self {
        match *op {
            Operation::Bootstrap => OperationRecord::Bootstrap,
            Operation::ScaleUp { ordinal } => OperationRecord::ScaleUp { ordinal },
            Operation::ScaleDown { ordinal, node_id } => {
                OperationRecord::ScaleDown { ordinal, node_id }
            }
            Operation::Replace { ordinal, old } => OperationRecord::Replace { ordinal, old },
            Operation::Upgrade { ordinal, node_id } => {
                OperationRecord::Upgrade { ordinal, node_id }
            }
        }
    }
}

impl From<&OperationRecord> for Operation {
    fn from(op: &OperationRecord) -> Self {
        match *op {
            OperationRecord::Bootstrap => Operation::Bootstrap,
            OperationRecord::ScaleUp { ordinal } => Operation::ScaleUp { ordinal },
            OperationRecord::ScaleDown { ordinal, node_id } => {
                Operation::ScaleDown { ordinal, node_id }
            }
            OperationRecord::Replace { ordinal, old } => Operation::Replace { ordinal, old },
            OperationRecord::Upgrade { ordinal, node_id } => {
                Operation::Upgrade { ordinal, node_id }
            }
        }
    }
}

/// Writes `contents` to `dir/name` atomically (temporary file, fsync, rename).
pub fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> anyhow::Result<()> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &target).with_context(|| format!("writing {}", target.display()))?;
    Ok(())
}

/// Reads and parses a JSON file; `None` when it does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(dir, name, &bytes)
}

pub fn desired_path(dir: &Path) -> PathBuf {
    dir.join(DESIRED_FILE)
}

pub fn status_path(dir: &Path) -> PathBuf {
    dir.join(STATUS_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_through_status_json() {
        let ops = [
            Operation::Bootstrap,
            Operation::ScaleUp { ordinal: 3 },
            Operation::ScaleDown {
                ordinal: None,
                node_id: 9,
            },
            Operation::Replace { ordinal: 1, old: 7 },
            Operation::Upgrade {
                ordinal: 2,
                node_id: u64::MAX,
            },
        ];
        for op in ops {
            let status = StatusFile {
                operation: Some(OperationRecord::from(&op)),
                ..StatusFile::default()
            };
            let text = serde_json::to_string(&status).unwrap();
            let back: StatusFile = serde_json::from_str(&text).unwrap();
            assert_eq!(Operation::from(back.operation.as_ref().unwrap()), op);
        }
    }

    #[test]
    fn atomic_writes_replace_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let d = DesiredFile {
            replicas: 5,
            snapshot_request_id: Some("x".into()),
        };
        write_json(dir.path(), DESIRED_FILE, &d).unwrap();
        write_json(dir.path(), DESIRED_FILE, &DesiredFile { replicas: 3, ..d }).unwrap();
        let back: DesiredFile = read_json(&desired_path(dir.path())).unwrap().unwrap();
        assert_eq!(back.replicas, 3);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![DESIRED_FILE.to_owned()]);
        assert!(
            read_json::<DesiredFile>(&dir.path().join("nope"))
                .unwrap()
                .is_none()
        );
    }
}
