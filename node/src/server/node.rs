//! Assembling a node: open the identity, WAL and snapshot store, recover the state
//! machine, start the storage thread, the apply task, the driver and the three servers, and
//! stop them in an order that answers what is in flight.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use kuberaft_raft::{InitialState, RawNode, Snapshot};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::Router;

use super::admin_service::{AdminService, check_token, hand_off_leadership};
use super::apply::Applier;
use super::driver::{Driver, raft_config};
use super::identity::{Identity, Lifecycle};
use super::kv_service::{KvService, MAX_CLIENT_MESSAGE};
use super::listen::nodelay_incoming;
use super::metrics::Metrics;
use super::node_sm::NodeStateMachine;
use super::peer_service::PeerService;
use super::shared::{DriverMsg, Settings, Shared, View};
use super::transport::MAX_PEER_MESSAGE;
use super::{ServerError, persist};
use crate::pb::admin::admin_server::AdminServer;
use crate::pb::kv::kv_server::KvServer;
use crate::pb::raft::raft_peer_server::RaftPeerServer;
use crate::sm::kv::{KvConfig, KvStateMachine};
use crate::storage::fs::RealFs;
use crate::storage::{SnapshotStore, Wal, WalOptions};
use crate::tls::{self, ServerTls};

/// Snapshot files kept on disk (older ones are pruned).
const SNAPSHOTS_KEPT: usize = 3;
/// Deadline of every KV and Admin call that carries none of its own.
const CLIENT_CALL_DEADLINE: Duration = Duration::from_secs(30);
/// How long in-flight client calls get to finish at shutdown.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// What a node needs besides its listeners.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub name: String,
    pub data_dir: PathBuf,
    /// The peer address other members use; the bound address when `None`.
    pub advertise_peer: Option<String>,
    pub advertise_client: Option<String>,
    pub tick: Duration,
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    pub snapshot_threshold: u64,
    pub admin_token: Option<String>,
    /// TLS on the client port and mutual TLS between members.
    pub tls: Option<Arc<ServerTls>>,
    /// How often the TLS files are checked for a rotation.
    pub tls_reload: Duration,
    /// Found a one-voter cluster if the data dir is empty.
    pub bootstrap: bool,
}

/// The bound sockets: tests bind port 0 and read the addresses back.
#[derive(Debug)]
pub struct Listeners {
    pub peer: TcpListener,
    pub client: TcpListener,
    pub http: TcpListener,
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    shared: Arc<Shared>,
    pub node_id: u64,
    pub peer_addr: SocketAddr,
    pub client_addr: SocketAddr,
    pub http_addr: SocketAddr,
    driver: JoinHandle<Result<(), String>>,
    applier: JoinHandle<()>,
    peer_server: JoinHandle<()>,
    client_server: JoinHandle<()>,
    http_server: JoinHandle<()>,
    stop_peer: Option<oneshot::Sender<()>>,
    stop_client: Option<oneshot::Sender<()>>,
    stop_http: Option<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    tls_reloader: Option<JoinHandle<()>>,
}

/// The address to advertise for a bound socket: a wildcard bind is advertised as
/// loopback, since it cannot be dialled as it is.
fn advertised(explicit: Option<String>, bound: SocketAddr) -> String {
    explicit.unwrap_or_else(|| {
        if bound.ip().is_unspecified() {
            tracing::warn!(%bound, "no advertise address given; advertising loopback");
            format!("127.0.0.1:{}", bound.port())
        } else {
            bound.to_string()
        }
    })
}

impl Node {
    pub async fn start(opts: NodeOptions, listeners: Listeners) -> Result<Node, ServerError> {
        let peer_addr = listeners.peer.local_addr()?;
        let client_addr = listeners.client.local_addr()?;
        let http_addr = listeners.http.local_addr()?;
        let identity = Identity::load_or_create(&opts.data_dir)?;
        let node_id = identity.node_id;
        let fs = Arc::new(RealFs);
        let store = Arc::new(SnapshotStore::open(
            fs.clone(),
            opts.data_dir.join("snap"),
            SNAPSHOTS_KEPT,
        )?);
        let (wal, recovered) = Wal::open(fs, opts.data_dir.join("wal"), WalOptions::default())?;
        let lifecycle = identity.lifecycle;
        let name = if opts.name.is_empty() {
            node_id.to_string()
        } else {
            opts.name.clone()
        };
        let settings = Settings {
            name,
            advertise_peer: advertised(opts.advertise_peer.clone(), peer_addr),
            advertise_client: advertised(opts.advertise_client.clone(), client_addr),
            tick: opts.tick,
            election_ticks: opts.election_ticks,
            heartbeat_ticks: opts.heartbeat_ticks,
            snapshot_threshold: opts.snapshot_threshold,
            admin_token: opts.admin_token.clone(),
            tls: opts.tls.clone(),
        };
        let (driver_tx, driver_rx) = mpsc::channel(4096);
        let (view_tx, _) = watch::channel(View {
            lifecycle,
            brief: Default::default(),
            membership: Default::default(),
        });
        let shared = Arc::new(Shared {
            node_id,
            settings,
            identity: std::sync::RwLock::new(identity),
            book: Default::default(),
            learned: Default::default(),
            view: view_tx,
            metrics: Metrics::default(),
            store,
            driver: driver_tx,
        });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let runs_core = matches!(lifecycle, Lifecycle::Joining | Lifecycle::Member);

        // State machine: restore the snapshot the WAL starts from.
        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let sm = NodeStateMachine::new(Box::new(KvStateMachine::new(KvConfig::default())));
        let mut applier = Applier::new(sm, shared.clone(), events_tx.clone(), apply_tx.clone());
        if runs_core && let Some(meta) = &recovered.snapshot {
            applier.restore(meta).map_err(ServerError::Recovery)?;
        }
        let core = if runs_core {
            let snapshot_index = recovered.snapshot_index();
            let state = InitialState {
                hard_state: recovered.hard_state,
                snapshot: Snapshot {
                    meta: recovered.snapshot.clone().unwrap_or_default(),
                    data: Vec::new(),
                },
                entries: recovered.entries,
                applied: snapshot_index,
            };
            Some(
                RawNode::new(raft_config(&shared), state)
                    .map_err(|e| ServerError::Recovery(e.to_string()))?,
            )
        } else {
            None
        };
        let applier = tokio::spawn(applier.run(apply_rx));
        let (storage_tx, storage_thread) = persist::spawn(wal, events_tx.clone(), shared.clone());
        let threads = vec![storage_thread];
        let driver = Driver::new(
            shared.clone(),
            core,
            driver_rx,
            events_rx,
            events_tx,
            storage_tx,
            apply_tx,
        );
        let driver = tokio::spawn(driver.run());

        let (stop_peer, peer_rx) = oneshot::channel::<()>();
        let peer_svc = RaftPeerServer::new(PeerService::new(shared.clone()))
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        let peer_router = Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(1)))
            .http2_keepalive_timeout(Some(Duration::from_secs(3)))
            .add_service(peer_svc);
        let peer_tls = opts.tls.clone().map(|t| move || t.peer_port());
        let peer_server = serve_grpc(peer_router, listeners.peer, peer_tls, "peer", peer_rx);

        let (stop_client, client_rx) = oneshot::channel::<()>();
        let kv = KvServer::new(KvService::new(shared.clone()))
            .max_decoding_message_size(MAX_CLIENT_MESSAGE);
        let admin = AdminServer::new(AdminService::new(shared.clone()));
        let admin = InterceptedService::new(admin, check_token(opts.admin_token.map(Arc::new)));
        let client_router = Server::builder()
            .timeout(CLIENT_CALL_DEADLINE)
            .add_service(kv)
            .add_service(admin);
        let client_tls = opts.tls.clone().map(|t| move || t.client_port());
        let client_server = serve_grpc(
            client_router,
            listeners.client,
            client_tls,
            "client",
            client_rx,
        );
        let tls_reloader = opts.tls.as_ref().map(|t| t.spawn_reloader(opts.tls_reload));

        let (stop_http, http_rx) = oneshot::channel::<()>();
        let router = super::http::router(shared.clone());
        let http_listener = listeners.http.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let http_server = tokio::spawn(async move {
            let res = axum::serve(http_listener, router)
                .with_graceful_shutdown(async {
                    let _ = http_rx.await;
                })
                .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "http server failed");
            }
        });

        let node = Node {
            shared,
            node_id,
            peer_addr,
            client_addr,
            http_addr,
            driver,
            applier,
            peer_server,
            client_server,
            http_server,
            stop_peer: Some(stop_peer),
            stop_client: Some(stop_client),
            stop_http: Some(stop_http),
            threads,
            tls_reloader,
        };
        if opts.bootstrap && lifecycle == Lifecycle::Uninitialized {
            let cluster_id = node
                .shared
                .ask(|reply| DriverMsg::Bootstrap {
                    cluster_id: String::new(),
                    reply,
                })
                .await
                .map_err(|e| ServerError::Recovery(format!("bootstrap: {e}")))?;
            tracing::info!(cluster_id, "bootstrapped because of --bootstrap");
        }
        Ok(node)
    }

    pub fn advertise_peer(&self) -> &str {
        &self.shared.settings.advertise_peer
    }

    pub fn advertise_client(&self) -> &str {
        &self.shared.settings.advertise_client
    }

    /// Runs until `shutdown` completes (then stops gracefully) or the node fails.
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let failed = tokio::select! {
            _ = shutdown => None,
            res = &mut self.driver => Some(match res {
                Ok(Ok(())) => "the driver stopped".to_owned(),
                Ok(Err(e)) => e,
                Err(e) => format!("the driver panicked: {e}"),
            }),
        };
        if let Some(why) = failed {
            self.abort_servers();
            return Err(ServerError::Fatal(why));
        }
        tracing::info!("stopping");
        hand_off_leadership(&self.shared).await;
        if let Some(tx) = self.stop_client.take() {
            let _ = tx.send(());
        }
        if let Some(tx) = self.stop_http.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(DRAIN_DEADLINE, &mut self.client_server)
            .await
            .is_err()
        {
            tracing::warn!("client calls still running after {DRAIN_DEADLINE:?}; failing them");
        }
        let _ = self.shared.driver.send(DriverMsg::Shutdown).await;
        let result = match (&mut self.driver).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServerError::Fatal(e)),
            Err(e) => Err(ServerError::Fatal(format!("the driver panicked: {e}"))),
        };
        if let Some(tx) = self.stop_peer.take() {
            let _ = tx.send(());
        }
        self.abort_servers();
        // The driver told the apply task to stop and dropped the storage channel: both
        // finish their queues (the storage thread syncs what is buffered) and exit.
        let _ = (&mut self.applier).await;
        let threads = std::mem::take(&mut self.threads);
        drop(self);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        result
    }

    fn abort_servers(&self) {
        self.peer_server.abort();
        self.client_server.abort();
        self.http_server.abort();
        if let Some(t) = &self.tls_reloader {
            t.abort();
        }
    }
}

/// Serves `router` on `listener` until `stop` fires: over TLS with the configuration
/// `tls()` gives at each handshake, or over plain TCP. Either way with TCP_NODELAY.
fn serve_grpc<F>(
    router: Router,
    listener: TcpListener,
    tls: Option<F>,
    port: &'static str,
    stop: oneshot::Receiver<()>,
) -> JoinHandle<()>
where
    F: Fn() -> Arc<rustls::ServerConfig> + Send + Sync + 'static,
{
    let incoming = nodelay_incoming(listener);
    let shutdown = async {
        let _ = stop.await;
    };
    tokio::spawn(async move {
        let res = match tls {
            Some(config) => {
                let incoming = tls::accept(incoming, config, port);
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
            None => {
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
        };
        if let Err(e) = res {
            tracing::error!(port, error = %e, "gRPC server failed");
        }
    })
}
