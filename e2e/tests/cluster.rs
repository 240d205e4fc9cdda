//! The real-cluster suite: a RaftCluster on Kubernetes, end to end. Create 3 members and
//! write; scale to 5 and back to 3 through the scale subresource; delete the leader's pod;
//! delete a member's pod and its volume; take a snapshot. After each step the members
//! (status), the data (every key on every member), the status fields, the Kubernetes
//! objects and the Events must all say the same thing.
//!
//! Runs only when KUBECONFIG (or ~/.kube/config) names a cluster that answers; otherwise
//! each test prints one line saying why it skips, and passes. The settings are in
//! `cluster_support::env`; the README's "Running the real-cluster e2e suite" shows a kind
//! setup.

mod cluster_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt as _;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kuberaft_operator::build::{pod_name, pvc_name};
use kuberaft_operator::crd::{
    ImagePullPolicy, MemberRole, RaftCluster, RaftClusterSpec, RaftTiming, StorageSpec,
};
use kuberaft_operator::planner::Reason;
use serde_json::json;

use cluster_support::checks::{self, NEVER, converged, expect_events, node_ids, pvcs_gone};
use cluster_support::data::Expected;
use cluster_support::wait::until;
use cluster_support::{Suite, env};

const NAME: &str = "e2e";
/// Image pulls, volume provisioning, bootstrap and two learners.
const CREATE_TIMEOUT: Duration = Duration::from_secs(600);
/// One membership change per member, each waiting for a pod to start.
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

fn spec(replicas: i32) -> RaftClusterSpec {
    RaftClusterSpec {
        replicas,
        image_pull_policy: Some(ImagePullPolicy::IfNotPresent),
        storage: StorageSpec {
            size: Quantity("256Mi".to_owned()),
            ..StorageSpec::default()
        },
        ..RaftClusterSpec::with_image(env::node_image())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_cluster_lifecycle() {
    let Some(client) = env::cluster("raft_cluster_lifecycle").await else {
        return;
    };
    let suite = Suite::start(client, "lifecycle", true)
        .await
        .expect("setting up the suite");
    suite.run(lifecycle(&suite)).await;
}

async fn lifecycle(s: &Suite) -> anyhow::Result<()> {
    let clusters = s.clusters();
    let mut data = Expected::default();

    // Create three members.
    clusters
        .create(&PostParams::default(), &RaftCluster::new(NAME, spec(3)))
        .await
        .context("creating the RaftCluster")?;
    s.check_pod_network(NAME).await?;
    let st = converged(s, NAME, 3, CREATE_TIMEOUT).await?;
    let cluster_id = st.cluster_id.clone();
    let mut counts = expect_events(
        s,
        NAME,
        &checks::Counts::new(),
        &[
            (Reason::Bootstrapped, 1),
            (Reason::LearnerAdded, 2),
            (Reason::LearnerPromoted, 2),
        ],
        NEVER,
    )
    .await?;
    s.members
        .write(&clusters, NAME, "create", 50, &mut data)
        .await?;
    s.members.check(&clusters, NAME, &members(3), &data).await?;

    // Scale to 5 through the scale subresource, as `kubectl scale` does.
    scale(s, 5).await?;
    let st = converged(s, NAME, 5, STEP_TIMEOUT).await?;
    ensure!(
        st.cluster_id == cluster_id,
        "clusterId changed: {:?}",
        st.cluster_id
    );
    let scale5 = clusters.get_scale(NAME).await?;
    ensure!(
        scale5.status.as_ref().map(|s| s.replicas) == Some(5)
            && scale5.status.as_ref().and_then(|s| s.selector.clone()) == st.selector,
        "scale subresource status {:?}",
        scale5.status
    );
    counts = expect_events(
        s,
        NAME,
        &counts,
        &[(Reason::LearnerAdded, 2), (Reason::LearnerPromoted, 2)],
        &[NEVER, &[Reason::MemberRemoved, Reason::MemberReplaced]].concat(),
    )
    .await?;
    s.members
        .write(&clusters, NAME, "scaled-up", 50, &mut data)
        .await?;
    s.members.check(&clusters, NAME, &members(5), &data).await?;

    // Back to 3: the two highest ordinals leave, and their claims go (reclaimPolicy Delete).
    scale(s, 3).await?;
    let st = converged(s, NAME, 3, STEP_TIMEOUT).await?;
    ensure!(
        st.cluster_id == cluster_id,
        "clusterId changed: {:?}",
        st.cluster_id
    );
    pvcs_gone(s, NAME, &[3, 4]).await?;
    counts = expect_events(
        s,
        NAME,
        &counts,
        &[(Reason::MemberRemoved, 2), (Reason::VolumeDeleted, 2)],
        &[NEVER, &[Reason::LearnerAdded, Reason::MemberReplaced]].concat(),
    )
    .await?;
    s.members.check(&clusters, NAME, &members(3), &data).await?;

    // Delete the leader's pod: the others elect a leader, the pod comes back on its
    // volume as the same member.
    let ids = node_ids(&st);
    let leader = st.leader.clone().context("no leader")?;
    let term = st.term.unwrap_or_default();
    delete_pod_and_wait_for_replacement(s, &leader).await?;
    let st = converged(s, NAME, 3, STEP_TIMEOUT).await?;
    ensure!(
        node_ids(&st) == ids,
        "node ids changed: {:?} -> {:?}",
        ids,
        node_ids(&st)
    );
    ensure!(
        st.term.unwrap_or_default() > term,
        "term {:?} after the leader's pod was deleted in term {term}",
        st.term
    );
    counts = expect_events(
        s,
        NAME,
        &counts,
        &[],
        &[NEVER, &[Reason::LearnerAdded, Reason::MemberReplaced]].concat(),
    )
    .await?;
    s.members
        .write(&clusters, NAME, "leader-restarted", 20, &mut data)
        .await?;
    s.members.check(&clusters, NAME, &members(3), &data).await?;

    // Delete a follower's pod and its claim: it comes back empty, as a new node, and the
    // operator swaps it in for the lost one.
    let victim = st
        .members
        .iter()
        .filter(|m| m.role == MemberRole::Follower)
        .map(|m| m.name.clone())
        .max()
        .context("no follower")?;
    let lost_id = ids[&victim].clone();
    delete_pod_and_volume(s, &victim).await?;
    let st = until(
        STEP_TIMEOUT,
        &format!("{victim} to rejoin as a new node"),
        || async {
            let st = converged(s, NAME, 3, Duration::ZERO).await?;
            let now = node_ids(&st);
            ensure!(
                now[&victim] != lost_id,
                "{victim} still has node id {lost_id}"
            );
            Ok(st)
        },
    )
    .await?;
    for (name, id) in node_ids(&st) {
        ensure!(name == victim || ids[&name] == id, "{name} changed node id");
    }
    counts = expect_events(
        s,
        NAME,
        &counts,
        &[(Reason::LearnerAdded, 1), (Reason::MemberReplaced, 1)],
        NEVER,
    )
    .await?;
    s.members.check(&clusters, NAME, &members(3), &data).await?;
    s.members
        .write(&clusters, NAME, "replaced", 20, &mut data)
        .await?;
    s.members.check(&clusters, NAME, &members(3), &data).await?;

    // An on-demand snapshot: every member applied the last write (checked above), so the
    // snapshot covers it.
    let request = format!(
        "e2e-{}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis()
    );
    clusters
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"snapshot": {"requestId": request}}})),
        )
        .await?;
    let snapshot = until(STEP_TIMEOUT, &format!("snapshot {request}"), || async {
        s.operator_alive().await?;
        let st = clusters.get(NAME).await?.status.context("no status")?;
        let last = st.last_snapshot.context("no lastSnapshot")?;
        ensure!(
            last.request_id.as_deref() == Some(request.as_str()),
            "lastSnapshot answers {:?}",
            last.request_id
        );
        Ok(last)
    })
    .await?;
    ensure!(
        u64::try_from(snapshot.index)? >= data.last_revision,
        "lastSnapshot.index {} is below the last write's index {}",
        snapshot.index,
        data.last_revision
    );
    expect_events(s, NAME, &counts, &[(Reason::SnapshotTaken, 1)], NEVER).await?;
    let noted = checks::events(s)
        .await?
        .into_iter()
        .any(|e| e.reason == Reason::SnapshotTaken.as_str() && e.note.contains(&request));
    ensure!(noted, "no SnapshotTaken Event names request {request}");
    converged(s, NAME, 3, STEP_TIMEOUT).await?;
    s.members.check(&clusters, NAME, &members(3), &data).await?;
    Ok(())
}

fn members(n: u32) -> Vec<String> {
    (0..n).map(|k| pod_name(NAME, k)).collect()
}

/// `kubectl scale raftcluster/e2e --replicas=n`.
async fn scale(s: &Suite, n: i32) -> anyhow::Result<()> {
    let scale = s
        .clusters()
        .patch_scale(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": n}})),
        )
        .await
        .with_context(|| format!("scaling to {n}"))?;
    ensure!(
        scale.spec.as_ref().and_then(|s| s.replicas) == Some(n),
        "scale answered {:?}",
        scale.spec
    );
    ensure!(
        s.clusters().get(NAME).await?.spec.replicas == n,
        "spec.replicas did not follow"
    );
    Ok(())
}

/// Deletes `pod` and waits until the StatefulSet has created a new one.
async fn delete_pod_and_wait_for_replacement(s: &Suite, pod: &str) -> anyhow::Result<()> {
    let pods = s.api::<Pod>();
    let old = pods.get(pod).await?.uid().context("pod without uid")?;
    pods.delete(pod, &DeleteParams::default()).await?;
    until(STEP_TIMEOUT, &format!("a new {pod}"), || async {
        let p = pods.get(pod).await?;
        ensure!(
            p.uid().as_deref() != Some(old.as_str()),
            "still the old pod"
        );
        Ok(())
    })
    .await
}

/// Deletes `pod` and its claim, the way an operator of the cluster would after losing a
/// disk, and waits until the pod runs again on a new, empty claim.
///
/// The claim is only removed once no pod uses it, and the StatefulSet may recreate the pod
/// before that, against the old claim: such a pod can never start. The StatefulSet
/// controller recreates a missing claim for a pending pod, but not on every Kubernetes
/// version, so a pod left pending on the old claim is deleted again (the manual fix).
async fn delete_pod_and_volume(s: &Suite, pod: &str) -> anyhow::Result<()> {
    let pods = s.api::<Pod>();
    let pvcs = s.api::<PersistentVolumeClaim>();
    let ordinal: u32 = pod
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .context("pod name without ordinal")?;
    let claim = pvc_name(NAME, ordinal);
    let old_claim = pvcs.get(&claim).await?.uid().context("claim without uid")?;
    let old_pod = pods.get(pod).await?.uid().context("pod without uid")?;
    pvcs.delete(&claim, &DeleteParams::default()).await?;
    pods.delete(pod, &DeleteParams::default()).await?;
    until(
        STEP_TIMEOUT,
        &format!("{pod} to run on a new {claim}"),
        || async {
            let p = pods.get_opt(pod).await?.context("no pod yet")?;
            ensure!(
                p.uid().as_deref() != Some(old_pod.as_str()),
                "still the old pod"
            );
            let current = pvcs.get_opt(&claim).await?;
            let fresh = current.as_ref().is_some_and(|c| {
                c.uid().as_deref() != Some(old_claim.as_str())
                    && c.metadata.deletion_timestamp.is_none()
            });
            let running = p
                .status
                .as_ref()
                .and_then(|st| st.phase.as_deref())
                .is_some_and(|phase| phase == "Running");
            if !fresh && !running && p.metadata.deletion_timestamp.is_none() {
                let age = p
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| {
                        let created = std::time::UNIX_EPOCH
                            + Duration::from_secs(u64::try_from(t.0.as_second()).unwrap_or(0));
                        SystemTime::now()
                            .duration_since(created)
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                if age > Duration::from_secs(20) {
                    eprintln!("{pod} is pending on the old {claim}; deleting it again");
                    pods.delete(pod, &DeleteParams::default()).await?;
                }
            }
            ensure!(fresh, "{claim} is not recreated yet");
            ensure!(running, "{pod} is not running yet");
            Ok(())
        },
    )
    .await
}

/// The apiserver itself refuses invalid specs with the CRD's messages (checked client-side
/// in operator/tests/crd_admission.rs; here against a real apiserver). Every object is
/// paused, so an operator in the cluster leaves them alone. Needs no operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_refuses_invalid_specs() {
    let Some(client) = env::cluster("apiserver_refuses_invalid_specs").await else {
        return;
    };
    let suite = Suite::start(client, "admission", false)
        .await
        .expect("setting up the suite");
    suite.run(admission(&suite)).await;
}

async fn admission(s: &Suite) -> anyhow::Result<()> {
    let clusters = s.clusters();
    let paused = |replicas: i32| RaftClusterSpec {
        paused: true,
        ..spec(replicas)
    };
    let refused = |result: Result<RaftCluster, kube::Error>, message: &str| -> anyhow::Result<()> {
        match result {
            Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains(message) => Ok(()),
            Err(e) => anyhow::bail!("expected a 422 saying {message:?}, got {e}"),
            Ok(rc) => anyhow::bail!("{} was admitted; expected {message:?}", rc.name_any()),
        }
    };

    let mut bad = paused(3);
    bad.raft = RaftTiming {
        heartbeat_ticks: 10,
        election_ticks: 10,
        ..RaftTiming::default()
    };
    refused(
        clusters
            .create(&PostParams::default(), &RaftCluster::new("timing", bad))
            .await,
        "heartbeatTicks must be less than",
    )?;
    refused(
        clusters
            .create(
                &PostParams::default(),
                &RaftCluster::new(&"n".repeat(53), paused(3)),
            )
            .await,
        "at most 52 characters",
    )?;

    // A floor of two failures needs five members; `kubectl scale` below it is refused.
    let mut floor = paused(5);
    floor.min_failure_tolerance = 2;
    floor.storage.storage_class_name = Some("standard".to_owned());
    clusters
        .create(&PostParams::default(), &RaftCluster::new("floor", floor))
        .await
        .context("creating a valid RaftCluster")?;
    let scaled = clusters
        .patch_scale(
            "floor",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await;
    match scaled {
        Err(kube::Error::Api(e))
            if e.code == 422 && e.message.contains("needs at least 5 replicas") => {}
        other => anyhow::bail!("scaling below minFailureTolerance: expected a 422, got {other:?}"),
    }
    let moved = clusters
        .patch(
            "floor",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"storage": {"storageClassName": "other"}}})),
        )
        .await;
    refused(moved, "storageClassName is immutable")?;
    let resized = clusters
        .patch(
            "floor",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"storage": {"size": "512Mi"}}})),
        )
        .await;
    refused(resized, "spec.storage.size is immutable")?;
    ensure!(
        clusters.get("floor").await?.spec.replicas == 5,
        "the refused scale changed spec.replicas"
    );
    Ok(())
}
