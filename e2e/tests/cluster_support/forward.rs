//! Port-forwards from the host to a pod, like `kubectl port-forward`: a local listener whose
//! every connection becomes one forwarded stream through the apiserver. The pod is looked up
//! by name per connection, so a forward outlives the pod's restarts.

use std::net::SocketAddr;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct Forward {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Forward {
    pub async fn start(pods: Api<Pod>, pod: String, port: u16) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (pods, pod) = (pods.clone(), pod.clone());
                tokio::spawn(async move {
                    if let Err(e) = bridge(&pods, &pod, port, conn).await {
                        eprintln!("port-forward to {pod}:{port}: {e:#}");
                    }
                });
            }
        });
        Ok(Forward { addr, accept })
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn bridge(pods: &Api<Pod>, pod: &str, port: u16, mut conn: TcpStream) -> anyhow::Result<()> {
    conn.set_nodelay(true)?;
    let mut forwarder = pods.portforward(pod, &[port]).await?;
    let mut upstream = forwarder
        .take_stream(port)
        .context("the port-forward has no stream for the port")?;
    // Either side closing ends the bridge; the client reconnects through a new one.
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    drop(upstream);
    forwarder.join().await?;
    Ok(())
}
