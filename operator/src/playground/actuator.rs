//! The actuator: what the reconciler does with a StatefulSet, done with local processes.
//! "Pod N" is a `raft-node` child with data dir `D/member-N` (the "PVC"), listening on
//! 127.0.0.1. It binds port 0 the first time and the same ports on every restart, so its
//! peer address in the Raft configuration stays valid.
//!
//! Like the StatefulSet controller, [`Actuator::sync`] keeps a process running for every
//! ordinal below the replica count (restarting ones that exited) and stops the others.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

use crate::planner::{ObservedStatefulSet, PodTemplate};

/// Name prefix of the members: pod N is `member-N`, in data dir `D/member-N`.
pub const CLUSTER: &str = "member";

pub fn pod_name(ordinal: u32) -> String {
    format!("{CLUSTER}-{ordinal}")
}

/// One "pod" as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub ordinal: u32,
    pub name: String,
    /// The process runs.
    pub running: bool,
    /// The template the process was started from.
    pub template: PodTemplate,
    /// Client (KV + Admin) address, once the process wrote `addresses.json`.
    pub client: Option<String>,
    pub pid: Option<u32>,
}

/// Where the planner's StatefulSet and PVC steps land. [`ProcessActuator`] runs real
/// processes; tests can substitute a fake.
pub trait Actuator {
    /// The "StatefulSet": replica count and template; `None` before it is created.
    fn statefulset(&self) -> Option<ObservedStatefulSet>;
    /// Creates the StatefulSet, or sets its replica count and template.
    fn set_statefulset(&mut self, replicas: u32, template: PodTemplate);
    /// The StatefulSet controller's pass: start missing or exited pods below the replica
    /// count, stop those at or above it.
    fn sync(&mut self) -> impl Future<Output = anyhow::Result<()>>;
    /// Every pod that exists.
    fn pods(&mut self) -> Vec<PodInfo>;
    /// Ordinals whose data dir exists.
    fn volumes(&self) -> BTreeSet<u32>;
    /// Stops the pod; the next [`Actuator::sync`] starts it again on the current template.
    fn restart(&mut self, ordinal: u32) -> impl Future<Output = anyhow::Result<()>>;
    /// Deletes the pod's data dir (stopping its process first, if any).
    fn delete_volume(&mut self, ordinal: u32) -> impl Future<Output = anyhow::Result<()>>;
    /// Stops every process.
    fn shutdown(&mut self) -> impl Future<Output = ()>;
}

/// How to start `raft-node`.
#[derive(Clone, Debug)]
pub struct NodeCommand {
    pub binary: PathBuf,
    pub tick_millis: u64,
    pub election_ticks: u64,
    /// How long a SIGTERM'd process gets before SIGKILL.
    pub stop_grace: Duration,
}

#[derive(Debug)]
struct Proc {
    child: Child,
    pid: Option<u32>,
    template: PodTemplate,
    client: Option<String>,
}

/// Listen addresses a member bound before: `[peer, client, http]`.
type Ports = [String; 3];

/// The real actuator.
#[derive(Debug)]
pub struct ProcessActuator {
    dir: PathBuf,
    cmd: NodeCommand,
    statefulset: Option<(u32, PodTemplate)>,
    procs: BTreeMap<u32, Proc>,
}

impl ProcessActuator {
    pub fn new(dir: &Path, cmd: NodeCommand) -> Self {
        ProcessActuator {
            dir: dir.to_path_buf(),
            cmd,
            statefulset: None,
            procs: BTreeMap::new(),
        }
    }

    pub fn member_dir(&self, ordinal: u32) -> PathBuf {
        self.dir.join(pod_name(ordinal))
    }

    fn log_path(&self, ordinal: u32) -> PathBuf {
        self.dir
            .join("logs")
            .join(format!("{}.log", pod_name(ordinal)))
    }

    fn start(&mut self, ordinal: u32, template: &PodTemplate) -> anyhow::Result<()> {
        let data = self.member_dir(ordinal);
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        // Reuse the ports of the previous run, so the peer address members know stays valid.
        let addresses = data.join("addresses.json");
        let ports = previous_ports(&addresses)
            .unwrap_or_else(|| ["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"].map(String::from));
        let _ = std::fs::remove_file(&addresses);
        std::fs::create_dir_all(self.dir.join("logs"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(ordinal))?;
        let binary = if template.image.is_empty() {
            self.cmd.binary.clone()
        } else {
            PathBuf::from(&template.image)
        };
        let child = Command::new(&binary)
            .arg("--name")
            .arg(pod_name(ordinal))
            .arg("--data-dir")
            .arg(&data)
            .args(["--peer-listen", &ports[0]])
            .args(["--client-listen", &ports[1]])
            .args(["--http-listen", &ports[2]])
            .args(["--tick-millis", &self.cmd.tick_millis.to_string()])
            .args(["--election-ticks", &self.cmd.election_ticks.to_string()])
            .args([
                "--snapshot-threshold",
                &template.snapshot_entry_threshold.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        self.procs.insert(
            ordinal,
            Proc {
                child,
                pid,
                template: template.clone(),
                client: None,
            },
        );
        Ok(())
    }

    async fn stop(&mut self, ordinal: u32) {
        let Some(mut p) = self.procs.remove(&ordinal) else {
            return;
        };
        stop_child(&mut p.child, p.pid, self.cmd.stop_grace).await;
    }
}

/// SIGTERM, then SIGKILL after `grace`.
async fn stop_child(child: &mut Child, pid: Option<u32>, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// `[peer, client, http]` from a previous run's `addresses.json`.
fn previous_ports(path: &Path) -> Option<Ports> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some([
        v["peer"].as_str()?.to_owned(),
        v["client"].as_str()?.to_owned(),
        v["http"].as_str()?.to_owned(),
    ])
}

/// The client address from `addresses.json` (advertised, else bound).
fn client_address(path: &Path) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["advertise_client"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| v["client"].as_str())
        .map(str::to_owned)
}

/// Which ordinals to start and which to stop, given the replica count and the pods that
/// exist with whether they run. Pure, so the bookkeeping is unit-tested.
pub fn sync_plan(replicas: u32, pods: &BTreeMap<u32, bool>) -> (Vec<u32>, Vec<u32>) {
    let start = (0..replicas)
        .filter(|o| pods.get(o) != Some(&true))
        .collect();
    let stop = pods.keys().copied().filter(|&o| o >= replicas).collect();
    (start, stop)
}

impl Actuator for ProcessActuator {
    fn statefulset(&self) -> Option<ObservedStatefulSet> {
        self.statefulset
            .as_ref()
            .map(|(replicas, template)| ObservedStatefulSet {
                replicas: *replicas,
                template: template.clone(),
                // Local data dirs have no size to compare.
                storage_size: None,
            })
    }

    fn set_statefulset(&mut self, replicas: u32, template: PodTemplate) {
        self.statefulset = Some((replicas, template));
    }

    async fn sync(&mut self) -> anyhow::Result<()> {
        let Some((replicas, template)) = self.statefulset.clone() else {
            return Ok(());
        };
        let mut alive = BTreeMap::new();
        for (&o, p) in &mut self.procs {
            let exited = p.child.try_wait().ok().flatten();
            if let Some(status) = exited.filter(|_| o < replicas) {
                println!(
                    "Warning MemberExited: {} ({status}); starting it again",
                    pod_name(o)
                );
            }
            alive.insert(o, exited.is_none());
        }
        let (start, stop) = sync_plan(replicas, &alive);
        for o in stop {
            self.stop(o).await;
        }
        for o in start {
            // An exited process is reaped before its replacement starts.
            self.stop(o).await;
            self.start(o, &template)?;
        }
        Ok(())
    }

    fn pods(&mut self) -> Vec<PodInfo> {
        let dir = self.dir.clone();
        self.procs
            .iter_mut()
            .map(|(&ordinal, p)| {
                let running = matches!(p.child.try_wait(), Ok(None));
                if p.client.is_none() && running {
                    p.client = client_address(&dir.join(pod_name(ordinal)).join("addresses.json"));
                }
                PodInfo {
                    ordinal,
                    name: pod_name(ordinal),
                    running,
                    template: p.template.clone(),
                    client: p.client.clone(),
                    pid: p.pid,
                }
            })
            .collect()
    }

    fn volumes(&self) -> BTreeSet<u32> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return BTreeSet::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| crate::reconcile::observe::ordinal_of(CLUSTER, e.file_name().to_str()?))
            .collect()
    }

    async fn restart(&mut self, ordinal: u32) -> anyhow::Result<()> {
        self.stop(ordinal).await;
        Ok(())
    }

    async fn delete_volume(&mut self, ordinal: u32) -> anyhow::Result<()> {
        self.stop(ordinal).await;
        let dir = self.member_dir(ordinal);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {}", dir.display())),
        }
    }

    async fn shutdown(&mut self) {
        let ordinals: Vec<u32> = self.procs.keys().copied().collect();
        let grace = self.cmd.stop_grace;
        let mut stopping = Vec::new();
        for o in ordinals {
            if let Some(mut p) = self.procs.remove(&o) {
                stopping.push(async move { stop_child(&mut p.child, p.pid, grace).await });
            }
        }
        futures::future::join_all(stopping).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_starts_missing_and_exited_pods_and_stops_extra_ones() {
        let pods: BTreeMap<u32, bool> = [(0, true), (1, false), (3, true), (4, false)].into();
        let (start, stop) = sync_plan(3, &pods);
        assert_eq!(start, vec![1, 2]);
        assert_eq!(stop, vec![3, 4]);
        let (start, stop) = sync_plan(0, &pods);
        assert!(start.is_empty());
        assert_eq!(stop, vec![0, 1, 3, 4]);
    }

    #[test]
    fn ports_and_client_address_come_from_addresses_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("addresses.json");
        assert_eq!(previous_ports(&path), None);
        std::fs::write(
            &path,
            r#"{"node_id":1,"peer":"127.0.0.1:1","client":"127.0.0.1:2","http":"127.0.0.1:3","advertise_peer":"127.0.0.1:1","advertise_client":"127.0.0.1:2"}"#,
        )
        .unwrap();
        assert_eq!(
            previous_ports(&path).unwrap(),
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"].map(String::from)
        );
        assert_eq!(client_address(&path).as_deref(), Some("127.0.0.1:2"));
    }

    #[tokio::test]
    async fn volumes_are_member_dirs_and_delete_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["member-0", "member-2", "member-02", "logs", "other-1"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("member-5"), b"a file").unwrap();
        let mut a = ProcessActuator::new(
            dir.path(),
            NodeCommand {
                binary: "/nonexistent/raft-node".into(),
                tick_millis: 50,
                election_ticks: 10,
                stop_grace: Duration::from_secs(1),
            },
        );
        assert_eq!(a.volumes(), [0, 2].into());
        a.delete_volume(2).await.unwrap();
        a.delete_volume(7).await.unwrap();
        assert_eq!(a.volumes(), [0].into());
        assert!(a.statefulset().is_none());
        // No StatefulSet: sync starts nothing.
        a.sync().await.unwrap();
        assert!(a.pods().is_empty());
        // A missing binary is a clear error, not a panic.
        a.set_statefulset(1, PodTemplate::default());
        let err = a.sync().await.unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/raft-node"),
            "{err:#}"
        );
    }
}
