//! Who this node is: the cluster it belongs to, its node id and where it stands in its
//! lifecycle, kept in small files in the data dir.
//!
//! The node id is random at first start and never reused: a pod that comes back with an
//! empty volume is a new member, never the old one, so a peer can refuse the old id once
//! it was removed. Every file is written to a temp file, fsynced, renamed and the
//! directory fsynced, so a crash leaves the old value or the new one.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use kuberaft_raft::NodeId;

const CLUSTER_ID: &str = "cluster_id";
const NODE_ID: &str = "node_id";
const LIFECYCLE: &str = "lifecycle";

/// Where a node stands. Persisted, so a restarted node resumes where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Empty data dir: serves Admin, never campaigns, refuses peers.
    Uninitialized,
    /// `PrepareJoin` done: accepts the leader's messages, waits for `AddLearner`.
    Joining,
    /// In the configuration.
    Member,
    /// Removed from the configuration: never serves again.
    Removed,
}

impl Lifecycle {
    fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Uninitialized => "uninitialized",
            Lifecycle::Joining => "joining",
            Lifecycle::Member => "member",
            Lifecycle::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "uninitialized" => Lifecycle::Uninitialized,
            "joining" => Lifecycle::Joining,
            "member" => Lifecycle::Member,
            "removed" => Lifecycle::Removed,
            _ => return None,
        })
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the identity files could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("identity file {} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot {action}: this node is {lifecycle}")]
    WrongLifecycle {
        action: &'static str,
        lifecycle: Lifecycle,
    },
    #[error("this node already belongs to cluster {current}, not {requested}")]
    OtherCluster { current: String, requested: String },
    #[error("the operating system has no randomness to offer: {0}")]
    Random(String),
}

type Result<T, E = IdentityError> = std::result::Result<T, E>;

/// The node's identity as stored in its data dir.
#[derive(Clone, Debug)]
pub struct Identity {
    dir: PathBuf,
    pub node_id: NodeId,
    /// Set by Bootstrap or PrepareJoin.
    pub cluster_id: Option<String>,
    pub lifecycle: Lifecycle,
}

/// A random non-zero u64 from the operating system.
pub fn random_u64() -> Result<u64> {
    loop {
        let mut buf = [0u8; 8];
        getrandom::fill(&mut buf).map_err(|e| IdentityError::Random(e.to_string()))?;
        let v = u64::from_le_bytes(buf);
        if v != 0 {
            return Ok(v);
        }
    }
}

/// A fresh cluster id: 128 random bits in hex.
pub fn new_cluster_id() -> Result<String> {
    Ok(format!("{:016x}{:016x}", random_u64()?, random_u64()?))
}

impl Identity {
    /// Reads the identity in `dir`, creating the directory and a new node id at first
    /// start.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let node_id = match read_file(&dir.join(NODE_ID))? {
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&id| id != 0)
                .ok_or_else(|| IdentityError::Corrupt {
                    path: dir.join(NODE_ID),
                    reason: format!("{text:?} is not a non-zero integer"),
                })?,
            None => {
                let id = random_u64()?;
                write_atomic(dir, NODE_ID, &id.to_string())?;
                id
            }
        };
        let cluster_id = read_file(&dir.join(CLUSTER_ID))?.map(|s| s.trim().to_owned());
        let lifecycle = match read_file(&dir.join(LIFECYCLE))? {
            Some(text) => Lifecycle::parse(text.trim()).ok_or_else(|| IdentityError::Corrupt {
                path: dir.join(LIFECYCLE),
                reason: format!("unknown lifecycle {text:?}"),
            })?,
            None => Lifecycle::Uninitialized,
        };
        if lifecycle != Lifecycle::Uninitialized && cluster_id.is_none() {
            return Err(IdentityError::Corrupt {
                path: dir.join(CLUSTER_ID),
                reason: format!("missing although the node is {lifecycle}"),
            });
        }
        Ok(Identity {
            dir: dir.to_path_buf(),
            node_id,
            cluster_id,
            lifecycle,
        })
    }

    /// Records the cluster this node founds or joins, then the new lifecycle. The
    /// cluster id is written first, so a crash between the two leaves a node that is
    /// still Uninitialized and may be asked again.
    pub fn enter_cluster(&mut self, cluster_id: &str, lifecycle: Lifecycle) -> Result<()> {
        if let Some(current) = &self.cluster_id
            && current != cluster_id
            && self.lifecycle != Lifecycle::Uninitialized
        {
            return Err(IdentityError::OtherCluster {
                current: current.clone(),
                requested: cluster_id.to_owned(),
            });
        }
        write_atomic(&self.dir, CLUSTER_ID, cluster_id)?;
        self.cluster_id = Some(cluster_id.to_owned());
        self.set_lifecycle(lifecycle)
    }

    pub fn set_lifecycle(&mut self, lifecycle: Lifecycle) -> Result<()> {
        if self.lifecycle == lifecycle {
            return Ok(());
        }
        if self.lifecycle == Lifecycle::Removed {
            return Err(IdentityError::WrongLifecycle {
                action: "change lifecycle",
                lifecycle: self.lifecycle,
            });
        }
        write_atomic(&self.dir, LIFECYCLE, lifecycle.as_str())?;
        self.lifecycle = lifecycle;
        Ok(())
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IdentityError {
    let path = path.to_path_buf();
    move |source| IdentityError::Io { op, path, source }
}

fn read_file(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Writes `name` in `dir` so that a crash leaves either the old or the new content.
pub fn write_atomic(dir: &Path, name: &str, content: &str) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(content.as_bytes())
        .map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_makes_a_node_id_that_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        assert_ne!(a.node_id, 0);
        assert_eq!(a.lifecycle, Lifecycle::Uninitialized);
        assert_eq!(a.cluster_id, None);
        let b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.node_id, b.node_id);
        let other = tempfile::tempdir().unwrap();
        let c = Identity::load_or_create(other.path()).unwrap();
        assert_ne!(a.node_id, c.node_id, "an empty volume is a new member");
    }

    #[test]
    fn lifecycle_and_cluster_are_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Identity::load_or_create(dir.path()).unwrap();
        a.enter_cluster("c1", Lifecycle::Joining).unwrap();
        let mut b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(b.cluster_id.as_deref(), Some("c1"));
        assert_eq!(b.lifecycle, Lifecycle::Joining);
        let err = b.enter_cluster("c2", Lifecycle::Joining).unwrap_err();
        assert!(matches!(err, IdentityError::OtherCluster { .. }), "{err}");
        b.set_lifecycle(Lifecycle::Member).unwrap();
        b.set_lifecycle(Lifecycle::Removed).unwrap();
        assert!(
            b.set_lifecycle(Lifecycle::Member).is_err(),
            "removed is final"
        );
        let c = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(c.lifecycle, Lifecycle::Removed);
    }

    #[test]
    fn corrupt_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NODE_ID), "zero").unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("node_id"), "{err}");
        fs::write(dir.path().join(NODE_ID), "7").unwrap();
        fs::write(dir.path().join(LIFECYCLE), "member").unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("cluster_id"), "{err}");
    }
}
