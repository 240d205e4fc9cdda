//! What "the cluster is where it should be" means after each step: the RaftCluster's status,
//! the Kubernetes objects behind it, and the Events the operator published about it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt as _;
use kube::api::ListParams;
use kuberaft_operator::build::{pod_name, pvc_name};
use kuberaft_operator::crd::{
    CONDITION_AVAILABLE, CONDITION_DEGRADED, CONDITION_PROGRESSING, MemberRole, Phase,
    RaftClusterStatus,
};
use kuberaft_operator::planner::Reason;

use super::Suite;
use super::wait::until;

/// Waits until `cluster` runs exactly `n` healthy members and nothing is in flight, checking
/// every status field and the StatefulSet and pods behind it; returns the status.
pub async fn converged(
    s: &Suite,
    cluster: &str,
    n: i32,
    timeout: Duration,
) -> anyhow::Result<RaftClusterStatus> {
    until(
        timeout,
        &format!("{cluster} to run {n} ready voters"),
        || async {
            s.operator_alive().await?;
            let rc = s.clusters().get(cluster).await?;
            let st = rc.status.clone().context("no status yet")?;
            ensure!(
                st.observed_generation.is_some()
                    && st.observed_generation == rc.metadata.generation,
                "status.observedGeneration {:?}, metadata.generation {:?}",
                st.observed_generation,
                rc.metadata.generation
            );
            ensure!(st.phase == Some(Phase::Running), "phase {:?}", st.phase);
            ensure!(
                st.operation.is_none(),
                "operation in flight: {:?}",
                st.operation
            );
            ensure!(st.blocked_on.is_none(), "blocked: {:?}", st.blocked_on);
            ensure!(
                st.replicas == n && st.ready_replicas == n,
                "replicas {} ready {}",
                st.replicas,
                st.ready_replicas
            );
            let names: Vec<&str> = st.members.iter().map(|m| m.name.as_str()).collect();
            let expected: Vec<String> = (0..n as u32).map(|k| pod_name(cluster, k)).collect();
            ensure!(
                names == expected,
                "members {names:?}, expected {expected:?}"
            );
            let unhealthy: Vec<&str> = st
                .members
                .iter()
                .filter(|m| !m.healthy)
                .map(|m| m.name.as_str())
                .collect();
            ensure!(unhealthy.is_empty(), "unhealthy members {unhealthy:?}");
            let leaders: Vec<&str> = st
                .members
                .iter()
                .filter(|m| m.role == MemberRole::Leader)
                .map(|m| m.name.as_str())
                .collect();
            ensure!(leaders.len() == 1, "leaders {leaders:?}");
            let others: Vec<(&str, MemberRole)> = st
                .members
                .iter()
                .filter(|m| m.role != MemberRole::Leader && m.role != MemberRole::Follower)
                .map(|m| (m.name.as_str(), m.role))
                .collect();
            ensure!(
                others.is_empty(),
                "members neither leader nor follower: {others:?}"
            );
            ensure!(
                st.leader.as_deref() == Some(leaders[0]),
                "status.leader {:?}, the Leader member is {}",
                st.leader,
                leaders[0]
            );
            let ids: BTreeSet<&str> = st
                .members
                .iter()
                .filter_map(|m| m.node_id.as_deref())
                .collect();
            ensure!(
                ids.len() == n as usize,
                "node ids {ids:?} (one distinct id per member)"
            );
            let tolerance = n - (n / 2 + 1);
            ensure!(
                st.failure_tolerance == Some(tolerance),
                "failureTolerance {:?}, expected {tolerance}",
                st.failure_tolerance
            );
            ensure!(st.cluster_id.is_some(), "no clusterId");
            ensure!(st.term.is_some_and(|t| t > 0), "term {:?}", st.term);
            ensure!(
                st.commit_index.is_some_and(|c| c > 0),
                "commitIndex {:?}",
                st.commit_index
            );
            for (kind, want) in [
                (CONDITION_AVAILABLE, "True"),
                (CONDITION_PROGRESSING, "False"),
                (CONDITION_DEGRADED, "False"),
            ] {
                let c = st.conditions.iter().find(|c| c.type_ == kind);
                ensure!(
                    c.is_some_and(|c| c.status == want),
                    "condition {kind} is {:?}, expected {want}",
                    c.map(|c| (&c.status, &c.reason, &c.message))
                );
            }

            // The objects agree with the status.
            let sts = s.api::<StatefulSet>().get(cluster).await?;
            let sts_replicas = sts.spec.replicas;
            ensure!(
                sts_replicas == Some(n),
                "StatefulSet replicas {sts_replicas:?}"
            );
            let selector = st.selector.clone().context("no status.selector")?;
            let pods = s
                .api::<Pod>()
                .list(&ListParams::default().labels(&selector))
                .await?;
            let mut ready: Vec<String> = pods
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
                .map(|p| p.name_any())
                .collect();
            ready.sort();
            ensure!(
                pods.items.len() == n as usize && ready == expected,
                "pods {:?}, ready {ready:?}",
                pods.items.iter().map(|p| p.name_any()).collect::<Vec<_>>()
            );
            Ok(st)
        },
    )
    .await
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Node id per member name.
pub fn node_ids(st: &RaftClusterStatus) -> BTreeMap<String, String> {
    st.members
        .iter()
        .filter_map(|m| Some((m.name.clone(), m.node_id.clone()?)))
        .collect()
}

/// Waits until the claims of `ordinals` are gone.
pub async fn pvcs_gone(s: &Suite, cluster: &str, ordinals: &[u32]) -> anyhow::Result<()> {
    let names: Vec<String> = ordinals.iter().map(|&k| pvc_name(cluster, k)).collect();
    until(
        Duration::from_secs(120),
        &format!("claims {names:?} to be deleted"),
        || async {
            let pvcs = s
                .api::<PersistentVolumeClaim>()
                .list(&ListParams::default())
                .await?;
            let left: Vec<String> = pvcs
                .items
                .iter()
                .map(|p| p.name_any())
                .filter(|n| names.contains(n))
                .collect();
            ensure!(left.is_empty(), "still there: {left:?}");
            Ok(())
        },
    )
    .await
}

/// One Event, for counting and for failure reports.
#[derive(Clone, Debug)]
pub struct EventLine {
    pub regarding: String,
    pub kind: String,
    pub type_: String,
    pub reason: String,
    /// Occurrences: the series count of a repeated Event, else 1.
    pub count: i32,
    pub note: String,
}

impl fmt::Display for EventLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {} {} x{} {}",
            self.kind, self.regarding, self.type_, self.reason, self.count, self.note
        )
    }
}

/// Every events.k8s.io/v1 Event of the namespace.
pub async fn events(s: &Suite) -> anyhow::Result<Vec<EventLine>> {
    let list = s.api::<Event>().list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .map(|e| {
            let regarding = e.regarding.clone().unwrap_or_default();
            EventLine {
                regarding: regarding.name.unwrap_or_default(),
                kind: regarding.kind.unwrap_or_default(),
                type_: e.type_.clone().unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
                count: e.series.as_ref().map_or(1, |s| s.count.max(1)),
                note: e.note.clone().unwrap_or_default(),
            }
        })
        .collect())
}

/// Occurrences per reason of the Events about RaftCluster `cluster`.
pub type Counts = BTreeMap<String, i32>;

pub async fn reason_counts(s: &Suite, cluster: &str) -> anyhow::Result<Counts> {
    let mut counts = Counts::new();
    for e in events(s).await? {
        if e.kind == "RaftCluster" && e.regarding == cluster {
            *counts.entry(e.reason).or_default() += e.count;
        }
    }
    Ok(counts)
}

/// Reasons that mean something went wrong in a test that never asks for them.
pub const NEVER: &[Reason] = &[
    Reason::InvalidSpec,
    Reason::QuorumLost,
    Reason::ScaleBlocked,
];

/// Waits until, compared with `before`, each `expected` reason occurred at least that many
/// more times; then checks that no `forbidden` reason occurred at all. Returns the counts.
pub async fn expect_events(
    s: &Suite,
    cluster: &str,
    before: &Counts,
    expected: &[(Reason, i32)],
    forbidden: &[Reason],
) -> anyhow::Result<Counts> {
    let delta = |now: &Counts, r: Reason| {
        now.get(r.as_str()).copied().unwrap_or(0) - before.get(r.as_str()).copied().unwrap_or(0)
    };
    let what = format!("Events {expected:?} about {cluster}");
    let now = until(Duration::from_secs(60), &what, || async {
        let now = reason_counts(s, cluster).await?;
        let short: Vec<String> = expected
            .iter()
            .filter(|(r, k)| delta(&now, *r) < *k)
            .map(|(r, k)| format!("{} +{} of +{k}", r.as_str(), delta(&now, *r)))
            .collect();
        ensure!(short.is_empty(), "short: {short:?}; counts {now:?}");
        Ok(now)
    })
    .await?;
    let unwanted: Vec<String> = forbidden
        .iter()
        .filter(|r| delta(&now, **r) > 0)
        .map(|r| format!("{} +{}", r.as_str(), delta(&now, *r)))
        .collect();
    if !unwanted.is_empty() {
        bail!("unexpected Events about {cluster}: {unwanted:?}; counts {now:?}");
    }
    Ok(now)
}
