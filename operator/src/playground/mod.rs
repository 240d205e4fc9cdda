//! `raft-operator playground`: the operator's planner driving local `raft-node` processes
//! instead of a StatefulSet, the embedded default that needs no Kubernetes.
//!
//! ```text
//!  D/desired.json ─► Desired ─┐
//!  processes + Admin.Status ──┼─► plan() ─► apply ONE step ─► print events ─► D/status.json
//!  D/status.json (memory) ────┘              (Actuator or      D/endpoints
//!                                             Admin call)
//! ```
//!
//! Pod N is a `raft-node` process with data dir `D/member-N` on 127.0.0.1 (see
//! [`actuator`]). `D/status.json` keeps the planner's memory (the operation in flight,
//! the cluster id, the last snapshot), so a restarted playground resumes where it
//! stopped; `D/endpoints` holds the members' client addresses for
//! `raftctl --endpoints $(cat D/endpoints)`. `playground scale N` and
//! `playground snapshot` edit `D/desired.json`, which the loop polls.

pub mod actuator;
pub mod files;
pub mod observe;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};

pub use actuator::{Actuator, NodeCommand, PodInfo, ProcessActuator};
pub use files::{DesiredFile, StatusFile};

use crate::planner::{self, Desired, EventType, Plan, Step};
use crate::reconcile::admin::{
    AdminConfig, AdminError, GrpcAdmin, Lifecycle, MemberAdmin, PodEndpoint,
};
use files::{ENDPOINTS_FILE, MemberRecord, OperationRecord, STATUS_FILE};
use observe::Reports;

/// What `raft-operator playground` runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// The desired size; `None` keeps what `desired.json` says (3 when absent).
    pub replicas: Option<u32>,
    pub node: NodeCommand,
    pub snapshot_threshold: u64,
    pub poll_interval: Duration,
}

/// `--raft-node`, else `raft-node` next to the current executable, else on `PATH`.
pub fn locate_raft_node(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("--raft-node {}: no such file", path.display());
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let beside = dir.join("raft-node");
        if beside.is_file() {
            return Ok(beside);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("raft-node");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "raft-node not found: pass --raft-node PATH, put it next to raft-operator, or on PATH \
         (cargo build -p kuberaft-node --bin raft-node)"
    )
}

/// `playground scale N`: changes the desired size of a (running or future) playground.
pub fn scale(data_dir: &Path, replicas: u32) -> anyhow::Result<()> {
    if replicas == 0 {
        bail!("replicas must be at least 1");
    }
    std::fs::create_dir_all(data_dir)?;
    let mut desired: DesiredFile =
        files::read_json(&files::desired_path(data_dir))?.unwrap_or_default();
    desired.replicas = replicas;
    files::write_json(data_dir, files::DESIRED_FILE, &desired)
}

/// `playground snapshot`: asks for a snapshot on every member; returns the request id,
/// which `status.json`'s `last_snapshot_request_id` shows once taken.
pub fn request_snapshot(data_dir: &Path) -> anyhow::Result<String> {
    let mut desired: DesiredFile = files::read_json(&files::desired_path(data_dir))?
        .context("no playground in this data dir (desired.json is missing)")?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let id = format!("snap-{nanos}");
    desired.snapshot_request_id = Some(id.clone());
    files::write_json(data_dir, files::DESIRED_FILE, &desired)?;
    Ok(id)
}

/// Runs the playground until SIGINT or SIGTERM, then stops every process it started.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let mut desired_file: DesiredFile =
        files::read_json(&files::desired_path(&dir))?.unwrap_or(DesiredFile {
            replicas: 3,
            snapshot_request_id: None,
        });
    if let Some(n) = config.replicas {
        desired_file.replicas = n;
    }
    files::write_json(&dir, files::DESIRED_FILE, &desired_file)?;
    let status: StatusFile = files::read_json(&files::status_path(&dir))?.unwrap_or_default();

    let admin = GrpcAdmin::new(AdminConfig {
        connect_timeout: Duration::from_millis(500),
        status_deadline: Duration::from_millis(800),
        ..AdminConfig::default()
    })?;
    let mut actuator = ProcessActuator::new(&dir, config.node.clone());
    let mut pg = Playground::new(&dir, status, &config);
    if let Some(replicas) = pg.status.statefulset_replicas {
        // Resuming: the "StatefulSet" exists; its pods start again on their data dirs.
        actuator.set_statefulset(replicas, pg.desired(&desired_file).template());
    }
    println!(
        "playground: {} members in {} (raft-node {})",
        desired_file.replicas,
        dir.display(),
        config.node.binary.display()
    );

    let mut shutdown = std::pin::pin!(shutdown_signal());
    let result = loop {
        if let Err(e) = pg.reconcile(&mut actuator, &admin).await {
            break Err(e);
        }
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            () = tokio::time::sleep(config.poll_interval) => {}
        }
    };
    println!("playground: stopping every member");
    actuator.shutdown().await;
    let _ = std::fs::remove_file(dir.join(ENDPOINTS_FILE));
    // Nothing runs any more: say so, keeping the rest for a resumed playground.
    for m in &mut pg.status.members {
        m.pid = None;
    }
    files::write_json(&dir, STATUS_FILE, &pg.status)?;
    result
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The loop's state between polls.
#[derive(Debug)]
pub struct Playground {
    dir: PathBuf,
    image: String,
    snapshot_threshold: u64,
    /// The planner's memory; written to `status.json` whenever it changes.
    pub status: StatusFile,
    /// What `status.json` holds now.
    written: Option<StatusFile>,
    endpoints: Option<Vec<String>>,
    last_wait: Option<String>,
}

impl Playground {
    pub fn new(dir: &Path, status: StatusFile, config: &Config) -> Self {
        Playground {
            dir: dir.to_path_buf(),
            image: config.node.binary.display().to_string(),
            snapshot_threshold: config.snapshot_threshold,
            status,
            written: None,
            endpoints: None,
            last_wait: None,
        }
    }

    fn desired(&self, file: &DesiredFile) -> Desired {
        let mut d = Desired::new(file.replicas, self.image.clone());
        d.snapshot_request_id = file.snapshot_request_id.clone();
        d.snapshot_entry_threshold = self.snapshot_threshold;
        d
    }

    /// One pass: observe, plan, apply one step, print its events, record status.
    pub async fn reconcile<A: Actuator, M: MemberAdmin>(
        &mut self,
        actuator: &mut A,
        admin: &M,
    ) -> anyhow::Result<()> {
        let desired_file: DesiredFile = match files::read_json(&files::desired_path(&self.dir)) {
            Ok(Some(d)) => d,
            Ok(None) => DesiredFile {
                replicas: 3,
                snapshot_request_id: None,
            },
            Err(e) => {
                eprintln!("playground: {e:#}; keeping the previous spec");
                return Ok(());
            }
        };
        let desired = self.desired(&desired_file);
        actuator.sync().await?;
        let pods = actuator.pods();
        let reports = observe::reports(admin, &pods).await;
        if self.status.cluster_id.is_none() {
            self.status.cluster_id = observe::reported_cluster_id(&reports);
        }
        let observed = observe::observed(
            actuator.statefulset(),
            &pods,
            actuator.volumes(),
            &reports,
            &self.status,
        );
        let plan = planner::plan(&desired, &observed);
        self.update_endpoints(&reports)?;

        match self
            .apply(actuator, admin, &desired, &pods, &reports, &observed, &plan)
            .await
        {
            Ok(()) => {
                for e in &plan.events {
                    let kind = match e.kind {
                        EventType::Normal => "Normal",
                        EventType::Warning => "Warning",
                    };
                    println!("{kind} {}: {}", e.reason.as_str(), e.message);
                }
                self.status.operation = plan.operation.as_ref().map(OperationRecord::from);
                self.status.blocked = plan.blocked.as_ref().map(|b| b.code.as_str().to_owned());
                if let Step::Wait { reason } = &plan.step {
                    let line = plan.blocked.as_ref().map_or_else(
                        || reason.to_string(),
                        |b| format!("{reason}: {}", b.message),
                    );
                    if self.last_wait.as_ref() != Some(&line) {
                        println!("  {line}");
                        self.last_wait = Some(line);
                    }
                } else {
                    self.last_wait = None;
                }
            }
            Err(e) => println!("Warning StepFailed: {}: {e:#}", plan.step.name()),
        }
        self.record(actuator, &plan, &reports)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply<A: Actuator, M: MemberAdmin>(
        &mut self,
        actuator: &mut A,
        admin: &M,
        desired: &Desired,
        pods: &[PodInfo],
        reports: &Reports,
        observed: &planner::Observed,
        plan: &Plan,
    ) -> anyhow::Result<()> {
        let endpoint = |pod: &str| -> anyhow::Result<PodEndpoint> {
            let p = pods
                .iter()
                .find(|p| p.name == pod)
                .with_context(|| format!("pod {pod} is gone"))?;
            Ok(PodEndpoint {
                pod: p.name.clone(),
                address: p
                    .client
                    .clone()
                    .with_context(|| format!("{pod} has no address yet"))?,
            })
        };
        let node_endpoint = |node: u64| -> anyhow::Result<PodEndpoint> {
            let (pod, _) = reports
                .iter()
                .find(|(_, r)| matches!(r, Ok(s) if s.node_id == node))
                .with_context(|| format!("no member answers as node {node:x}"))?;
            endpoint(pod)
        };
        let leader = || -> anyhow::Result<PodEndpoint> {
            let id = observed
                .raft
                .as_ref()
                .and_then(|r| r.leader)
                .context("no leader answered")?;
            node_endpoint(id)
        };
        match &plan.step {
            Step::CreateStatefulSet { replicas } | Step::SetStatefulSetReplicas(replicas) => {
                let template = actuator
                    .statefulset()
                    .map_or_else(|| desired.template(), |s| s.template);
                actuator.set_statefulset(*replicas, template);
                self.status.statefulset_replicas = Some(*replicas);
                actuator.sync().await?;
            }
            Step::UpdatePodTemplate => {
                let replicas = actuator.statefulset().map_or(0, |s| s.replicas);
                actuator.set_statefulset(replicas, desired.template());
            }
            Step::Bootstrap { pod } => {
                let cluster_id = self
                    .status
                    .cluster_id
                    .clone()
                    .unwrap_or_else(new_cluster_id);
                let id = admin.bootstrap(&endpoint(pod)?, &cluster_id).await?;
                self.status.cluster_id = Some(id);
            }
            Step::AddLearner { pod, node_id } => {
                let cluster_id = self
                    .status
                    .cluster_id
                    .clone()
                    .or_else(|| observe::reported_cluster_id(reports))
                    .context("no cluster id known")?;
                let joining = admin.prepare_join(&endpoint(pod)?, &cluster_id).await?;
                if joining.node_id != *node_id {
                    return Err(AdminError::IdentityChanged {
                        pod: pod.clone(),
                        expected: *node_id,
                        got: joining.node_id,
                    }
                    .into());
                }
                admin.add_learner(&leader()?, &joining).await?;
            }
            Step::Promote { node_id } => admin.promote(&leader()?, *node_id).await?,
            Step::TransferLeadership { from, to } => {
                admin
                    .transfer_leadership(&node_endpoint(*from)?, *to)
                    .await?;
            }
            Step::RemoveMember { node_id } => admin.remove_member(&leader()?, *node_id).await?,
            Step::ReplaceMember { old, new } => {
                admin
                    .change_membership(&leader()?, &[*new], &[*old])
                    .await?;
            }
            Step::RestartPod { pod } => {
                let ordinal = crate::reconcile::observe::ordinal_of(actuator::CLUSTER, pod)
                    .with_context(|| format!("{pod} is not a member name"))?;
                actuator.restart(ordinal).await?;
            }
            Step::DeletePvc { ordinal } => actuator.delete_volume(*ordinal).await?,
            Step::Snapshot { request_id } => {
                let members: Vec<PodEndpoint> = reports
                    .iter()
                    .filter(|(_, r)| matches!(r, Ok(s) if s.lifecycle == Lifecycle::Member))
                    .map(|(pod, _)| endpoint(pod))
                    .collect::<anyhow::Result<_>>()?;
                if members.is_empty() {
                    bail!("no member answered");
                }
                let taken =
                    futures::future::try_join_all(members.iter().map(|at| admin.snapshot(at)))
                        .await?;
                let index = taken.iter().map(|s| s.index).min().unwrap_or(0);
                println!(
                    "  snapshot {request_id} taken on {} members (index >= {index})",
                    taken.len()
                );
                self.status.last_snapshot_request_id = Some(request_id.clone());
            }
            Step::RecordOperation(_) | Step::Wait { .. } | Step::None => {}
        }
        Ok(())
    }

    /// Prints and writes the endpoints when they change.
    fn update_endpoints(&mut self, reports: &Reports) -> anyhow::Result<()> {
        let Some(endpoints) = observe::endpoints(reports) else {
            return Ok(());
        };
        if self.endpoints.as_ref() == Some(&endpoints) {
            return Ok(());
        }
        let line = endpoints.join(",");
        files::write_atomic(&self.dir, ENDPOINTS_FILE, format!("{line}\n").as_bytes())?;
        println!("endpoints: {line}");
        self.endpoints = Some(endpoints);
        Ok(())
    }

    /// Writes `status.json` when it changed.
    fn record<A: Actuator>(
        &mut self,
        actuator: &mut A,
        plan: &Plan,
        reports: &Reports,
    ) -> anyhow::Result<()> {
        let mut next = self.status.clone();
        next.phase = format!("{:?}", plan.phase);
        next.voters = plan.health.voters;
        next.healthy_voters = plan.health.healthy_voters;
        next.members = actuator
            .pods()
            .into_iter()
            .map(|p| MemberRecord {
                node_id: reports
                    .get(&p.name)
                    .and_then(|r| r.as_ref().ok())
                    .map(|s| s.node_id),
                name: p.name,
                ordinal: p.ordinal,
                pid: p.pid.filter(|_| p.running),
                client: p.client,
            })
            .collect();
        if self.written.as_ref() != Some(&next) {
            files::write_json(&self.dir, STATUS_FILE, &next)?;
            self.written = Some(next.clone());
        }
        self.status = next;
        Ok(())
    }
}

/// A fresh cluster id: time and pid, unique enough for a local playground.
fn new_cluster_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("playground-{:x}-{:x}", nanos, std::process::id())
}
