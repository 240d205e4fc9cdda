//! Real `raft-node` processes on 127.0.0.1 for cluster tests: spawn, kill -9, restart on
//! the same ports, and raw tonic clients. Everything waits by polling with a deadline.
#![allow(dead_code)] // each test file uses a different part

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kuberaft_node::pb::admin::admin_client::AdminClient;
use kuberaft_node::pb::admin::{self, StatusRequest, StatusResponse};
use kuberaft_node::pb::kv::kv_client::KvClient;
use kuberaft_node::pb::kv::{GetRequest, PutRequest, ReadConsistency};
use tonic::transport::{Channel, Endpoint};

pub const BIN: &str = env!("CARGO_BIN_EXE_raft-node");
/// Short ticks keep elections around 200–400 ms.
pub const TICK_ARGS: [&str; 4] = ["--tick-millis", "20", "--election-ticks", "10"];

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Clone, Debug)]
pub struct Addrs {
    pub node_id: u64,
    pub peer: String,
    pub client: String,
    pub http: String,
}

/// One `raft-node` process and its data dir.
#[derive(Debug)]
pub struct NodeProc {
    pub dir: PathBuf,
    pub addrs: Addrs,
    extra: Vec<String>,
    child: Option<Child>,
}

impl NodeProc {
    /// Starts a node on fresh ports.
    pub async fn spawn(dir: &Path, extra: &[&str]) -> NodeProc {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let ports = ["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"].map(String::from);
        let (child, addrs) = start(dir, &ports, &extra).await;
        NodeProc {
            dir: dir.to_path_buf(),
            addrs,
            extra,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node runs").id()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().ok()
    }

    /// Starts the process again with the same data dir and the same ports.
    pub async fn restart(&mut self) {
        self.kill9();
        let ports = [
            self.addrs.peer.clone(),
            self.addrs.client.clone(),
            self.addrs.http.clone(),
        ];
        let (child, addrs) = start(&self.dir, &ports, &self.extra).await;
        assert_eq!(
            addrs.node_id, self.addrs.node_id,
            "a restart keeps the node id"
        );
        self.child = Some(child);
        self.addrs = addrs;
    }

    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::new(channel(&self.addrs.client).await)
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(channel(&self.addrs.client).await)
    }

    pub async fn status(&self) -> Option<StatusResponse> {
        let mut admin = self.admin().await;
        admin
            .status(StatusRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(&self.addrs.http, path).await
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn start(dir: &Path, ports: &[String; 3], extra: &[String]) -> (Child, Addrs) {
    std::fs::create_dir_all(dir).unwrap();
    let addresses = dir.join("addresses.json");
    let _ = std::fs::remove_file(&addresses);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))
        .unwrap();
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["--peer-listen", &ports[0]])
        .args(["--client-listen", &ports[1]])
        .args(["--http-listen", &ports[2]])
        .args(TICK_ARGS)
        .args(extra)
        .env("RUST_LOG", "info,kuberaft_node=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawning raft-node");
    let addrs = eventually(Duration::from_secs(20), "addresses.json", || {
        let path = addresses.clone();
        async move {
            let text = std::fs::read_to_string(path).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some(Addrs {
                node_id: v["node_id"].as_u64()?,
                peer: v["peer"].as_str()?.to_owned(),
                client: v["client"].as_str()?.to_owned(),
                http: v["http"].as_str()?.to_owned(),
            })
        }
    })
    .await;
    (child, addrs)
}

pub async fn channel(addr: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_lazy()
}

/// A minimal HTTP/1.1 GET, enough for the node's endpoints.
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (code, body)
}

/// Waits until one of `nodes` says it leads; returns its index.
pub async fn leader_of(nodes: &[&NodeProc]) -> usize {
    eventually(Duration::from_secs(20), "a leader", || async {
        for (i, n) in nodes.iter().enumerate() {
            if let Some(s) = n.status().await
                && s.role == admin::Role::Leader as i32
            {
                return Some(i);
            }
        }
        None
    })
    .await
}

pub async fn put(node: &NodeProc, key: &str, value: &str) -> Result<(), tonic::Status> {
    node.kv()
        .await
        .put(PutRequest {
            key: key.into(),
            value: value.into(),
            session: None,
        })
        .await
        .map(|_| ())
}

pub async fn get(
    node: &NodeProc,
    key: &str,
    consistency: ReadConsistency,
) -> Result<Option<String>, tonic::Status> {
    let r = node
        .kv()
        .await
        .get(GetRequest {
            key: key.into(),
            consistency: consistency as i32,
        })
        .await?
        .into_inner();
    Ok(r.kv.map(|kv| String::from_utf8(kv.value).unwrap()))
}

/// Brings `joiner` into the cluster led by `leader` as a voter: PrepareJoin,
/// AddLearner, wait until it caught up, Promote.
pub async fn join(leader: &NodeProc, joiner: &NodeProc) {
    let cluster_id = leader.status().await.unwrap().cluster_id;
    let info = joiner
        .admin()
        .await
        .prepare_join(admin::PrepareJoinRequest { cluster_id })
        .await
        .unwrap()
        .into_inner();
    leader
        .admin()
        .await
        .add_learner(admin::AddLearnerRequest {
            node_id: info.node_id,
            name: info.name,
            peer_addr: info.peer_addr,
            client_addr: info.client_addr,
        })
        .await
        .unwrap();
    let id = joiner.addrs.node_id;
    eventually(
        Duration::from_secs(20),
        "the learner to catch up",
        || async {
            let s = leader.status().await?;
            let m = s.members.iter().find(|m| m.node_id == id)?;
            (m.match_index > 0 && m.lag == 0).then_some(())
        },
    )
    .await;
    leader
        .admin()
        .await
        .promote(admin::PromoteRequest { node_id: id })
        .await
        .unwrap();
}
