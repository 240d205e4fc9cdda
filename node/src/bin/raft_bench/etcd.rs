//! The etcd driver: the same workload against etcd through the `etcd-client` crate, so
//! both systems are measured by one loop. Only with the `etcd` cargo feature, because
//! etcd-client's build needs a system `protoc`.

use anyhow::{Context, Result};
use bytes::Bytes;
use etcd_client::{ConnectOptions, GetOptions, KvClient};
use kuberaft_node::client::ReadConsistency;
use kuberaft_node::client::bench::Driver;

/// One etcd connection (etcd-client balances it over the endpoints).
#[derive(Clone)]
pub struct EtcdDriver {
    kv: KvClient,
    /// etcd has no lease reads: `stale` maps to serializable, the others to linearizable.
    serializable: bool,
}

impl std::fmt::Debug for EtcdDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdDriver")
            .field("serializable", &self.serializable)
            .finish_non_exhaustive()
    }
}

impl EtcdDriver {
    pub async fn connect(
        endpoints: &[String],
        consistency: ReadConsistency,
        timeout: std::time::Duration,
    ) -> Result<Self> {
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout);
        let client = etcd_client::Client::connect(endpoints, Some(options))
            .await
            .with_context(|| format!("connecting to etcd at {}", endpoints.join(",")))?;
        Ok(Self {
            kv: client.kv_client(),
            serializable: consistency == ReadConsistency::Stale,
        })
    }
}

impl Driver for EtcdDriver {
    async fn write(&self, key: Bytes, value: Bytes) -> Result<(), String> {
        let mut kv = self.kv.clone();
        kv.put(key.to_vec(), value.to_vec(), None)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn read(&self, key: Bytes) -> Result<(), String> {
        let mut kv = self.kv.clone();
        let options = self
            .serializable
            .then(|| GetOptions::new().with_serializable());
        kv.get(key.to_vec(), options)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
