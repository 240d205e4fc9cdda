//! Keys written through the leader and read back from every member, over port-forwards to
//! the members' client port.
//!
//! A member answers NotLeader with the leader's in-cluster DNS name, which this host cannot
//! resolve, so the suite does not rely on redirects: writes go to the member that
//! `status.leader` names, and each member is read on its own with stale reads (what that
//! member has applied), which is what "the data survived on every member" means.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kuberaft_node::client::{Client, ClientOptions, ReadConsistency};
use kuberaft_operator::build::CLIENT_PORT;
use kuberaft_operator::crd::RaftCluster;
use tokio::sync::Mutex;

use super::forward::Forward;
use super::wait::until;

/// Prefix of every key the suite writes.
pub const PREFIX: &str = "e2e/";

/// What the cluster must hold: every key written so far, and the revision (log index) of
/// the last write.
#[derive(Debug, Default)]
pub struct Expected {
    pub kv: BTreeMap<String, String>,
    pub last_revision: u64,
}

/// A port-forward to each member and a client over it, per pod name, made on first use.
/// A client keeps its server-side session across writes, as a real client would.
#[derive(Debug)]
pub struct Members {
    pods: Api<Pod>,
    clients: Mutex<HashMap<String, (Forward, Client)>>,
}

fn options() -> ClientOptions {
    ClientOptions {
        // A new connection opens a port-forward through the apiserver first.
        call_timeout: Duration::from_secs(5),
        retry_budget: Duration::from_secs(15),
        ..ClientOptions::default()
    }
}

impl Members {
    pub fn new(pods: Api<Pod>) -> Self {
        Members {
            pods,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// A client that talks to `pod` only.
    pub async fn client(&self, pod: &str) -> anyhow::Result<Client> {
        let mut clients = self.clients.lock().await;
        if let Some((_, client)) = clients.get(pod) {
            return Ok(client.clone());
        }
        let port = u16::try_from(CLIENT_PORT)?;
        let forward = Forward::start(self.pods.clone(), pod.to_owned(), port).await?;
        let client = Client::connect(&[forward.addr.to_string()], options())?;
        clients.insert(pod.to_owned(), (forward, client.clone()));
        Ok(client)
    }

    /// Writes `count` keys `e2e/<batch>/<n>` through the leader `status.leader` names,
    /// following it when leadership moves.
    pub async fn write(
        &self,
        clusters: &Api<RaftCluster>,
        name: &str,
        batch: &str,
        count: usize,
        expected: &mut Expected,
    ) -> anyhow::Result<()> {
        for n in 0..count {
            let key = format!("{PREFIX}{batch}/{n:04}");
            let value = format!("{batch}-{n}");
            let revision = until(Duration::from_secs(60), &format!("put {key}"), || async {
                let leader = current_leader(clusters, name).await?;
                let client = self.client(&leader).await?;
                match client.put(key.clone(), value.clone()).await {
                    Ok(revision) => Ok(revision),
                    Err(e) => {
                        // Start over with a fresh forward and client on the next attempt.
                        self.clients.lock().await.remove(&leader);
                        Err(e).with_context(|| format!("put {key} on {leader}"))
                    }
                }
            })
            .await?;
            expected.kv.insert(key, value);
            expected.last_revision = expected.last_revision.max(revision);
        }
        Ok(())
    }

    /// Every member in `pods` holds exactly the expected keys (stale reads, so each member
    /// answers from its own state), and a linearizable read through the leader agrees.
    pub async fn check(
        &self,
        clusters: &Api<RaftCluster>,
        name: &str,
        pods: &[String],
        expected: &Expected,
    ) -> anyhow::Result<()> {
        for pod in pods {
            until(
                Duration::from_secs(60),
                &format!("{pod} to hold all {} keys", expected.kv.len()),
                || async {
                    let client = self.client(pod).await?;
                    let got = client
                        .range_with(PREFIX, 0, ReadConsistency::Stale)
                        .await
                        .with_context(|| format!("range on {pod}"))?;
                    same(&got, expected).with_context(|| format!("stale read on {pod}"))
                },
            )
            .await?;
        }
        until(
            Duration::from_secs(60),
            "a linearizable read through the leader",
            || async {
                let leader = current_leader(clusters, name).await?;
                let client = self.client(&leader).await?;
                let got = client
                    .range_with(PREFIX, 0, ReadConsistency::Linearizable)
                    .await
                    .with_context(|| format!("linearizable range on {leader}"))?;
                same(&got, expected).with_context(|| format!("linearizable read on {leader}"))
            },
        )
        .await
    }
}

/// The member `status.leader` names.
pub async fn current_leader(clusters: &Api<RaftCluster>, name: &str) -> anyhow::Result<String> {
    clusters
        .get(name)
        .await?
        .status
        .and_then(|s| s.leader)
        .context("status.leader is not set")
}

fn same(got: &[kuberaft_node::client::KeyValue], expected: &Expected) -> anyhow::Result<()> {
    let got: BTreeMap<String, String> = got
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect();
    let missing = expected.kv.keys().filter(|k| !got.contains_key(*k)).count();
    let wrong: Vec<&String> = expected
        .kv
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .map(|(k, _)| k)
        .collect();
    let unexpected: Vec<&String> = got
        .keys()
        .filter(|k| !expected.kv.contains_key(*k))
        .collect();
    ensure!(
        missing == 0 && wrong.is_empty() && unexpected.is_empty(),
        "{missing} of {} keys missing, wrong values at {wrong:?}, unexpected keys {unexpected:?}",
        expected.kv.len()
    );
    Ok(())
}
