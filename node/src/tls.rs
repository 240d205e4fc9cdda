//! TLS with rustls (the `ring` provider): server-authenticated TLS on the client port,
//! mutual TLS between members, and the client side of both.
//!
//! A node gets one key pair and one CA bundle (`--tls-cert`, `--tls-key`, `--tls-ca`):
//! - the client port presents the certificate and asks nothing of clients;
//! - the peer port presents it and requires a client certificate issued by the CA;
//! - peer dials present it as their client certificate and verify the peer's server
//!   certificate against the CA and the dialled host name (or IP).
//!
//! [`ServerTls`] re-reads the three files when their contents change (cert-manager and
//! Kubernetes Secrets rotate them in place), so new connections use the new material
//! while established ones keep theirs. A bad rotation (unreadable file, key that does
//! not match the certificate) is logged and the previous material stays in use.
//!
//! tonic's own TLS cannot reload, so the handshakes happen here: [`accept`] turns a
//! stream of TCP connections into TLS connections for `serve_with_incoming`, and
//! [`TlsConnector`] is the connector of client channels.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic::transport::Uri;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a TLS handshake may take before the connection is dropped. Handshakes run
/// off the accept loop, so a slow or silent client never holds up the others.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong loading TLS material; names the flag and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {}: {reason}", path.display())]
    File {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(flag: &'static str, path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::File {
        flag,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The three files a node's TLS comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first (`--tls-cert`).
    pub cert: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 or SEC1 (`--tls-key`).
    pub key: PathBuf,
    /// PEM CA bundle that peers' certificates must chain to (`--tls-ca`).
    pub ca: PathBuf,
}

/// The contents of [`TlsFiles`], compared to detect a rotation.
#[derive(Clone, PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

impl Contents {
    fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        let read = |flag, path: &Path| std::fs::read(path).map_err(|e| file_error(flag, path, e));
        Ok(Contents {
            cert: read("--tls-cert", &files.cert)?,
            key: read("--tls-key", &files.key)?,
            ca: read("--tls-ca", &files.ca)?,
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parse_certs(
    flag: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(flag, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(flag, path, "holds no CERTIFICATE block"));
    }
    Ok(certs)
}

fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        file_error(
            "--tls-key",
            path,
            format!("no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

fn parse_roots(flag: &'static str, path: &Path, pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(flag, path, pem)? {
        roots
            .add(cert)
            .map_err(|e| file_error(flag, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn config_error(e: rustls::Error, files: &TlsFiles) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(_) => file_error(
            "--tls-key",
            &files.key,
            format!("does not match the certificate in {}", files.cert.display()),
        ),
        other => TlsError::Config(other.to_string()),
    }
}

const ALPN_H2: &[u8] = b"h2";

/// The rustls configurations built from one set of files.
#[derive(Debug)]
struct Configs {
    client_port: Arc<ServerConfig>,
    peer_port: Arc<ServerConfig>,
    peer_dial: Arc<ClientConfig>,
}

impl Configs {
    fn build(files: &TlsFiles, c: &Contents) -> Result<Self, TlsError> {
        let certs = parse_certs("--tls-cert", &files.cert, &c.cert)?;
        let key = parse_key(&files.key, &c.key)?;
        let roots = Arc::new(parse_roots("--tls-ca", &files.ca, &c.ca)?);
        let provider = provider();
        let err = |e| config_error(e, files);

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| file_error("--tls-ca", &files.ca, e))?;
        let mut peer_port = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(err)?;
        peer_port.alpn_protocols = vec![ALPN_H2.to_vec()];

        let mut client_port = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_no_client_auth()
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(err)?;
        client_port.alpn_protocols = vec![ALPN_H2.to_vec()];

        let mut peer_dial = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(err)?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(err)?;
        peer_dial.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Configs {
            client_port: Arc::new(client_port),
            peer_port: Arc::new(peer_port),
            peer_dial: Arc::new(peer_dial),
        })
    }
}

/// A node's TLS material, reloaded when its files change.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<Configs>>,
    loaded: Mutex<Contents>,
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Contents").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the files; every problem names the flag, the file and the reason.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let contents = Contents::read(&files)?;
        let configs = Configs::build(&files, &contents)?;
        Ok(Arc::new(ServerTls {
            files,
            current: RwLock::new(Arc::new(configs)),
            loaded: Mutex::new(contents),
        }))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    fn configs(&self) -> Arc<Configs> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The configuration of the client port, as of now.
    pub fn client_port(&self) -> Arc<ServerConfig> {
        self.configs().client_port.clone()
    }

    /// The configuration of the peer port (client certificates required), as of now.
    pub fn peer_port(&self) -> Arc<ServerConfig> {
        self.configs().peer_port.clone()
    }

    /// The configuration of dials to other members, as of now.
    pub fn peer_dial(&self) -> Arc<ClientConfig> {
        self.configs().peer_dial.clone()
    }

    /// Re-reads the files. `Ok(true)`: they changed and the new material is in use;
    /// `Ok(false)`: unchanged; `Err`: they changed but cannot be used, and the previous
    /// material stays in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let contents = Contents::read(&self.files)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if *loaded == contents {
            return Ok(false);
        }
        let configs = Configs::build(&self.files, &contents)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(configs);
        *loaded = contents;
        Ok(true)
    }

    /// Checks the files every `every` until the returned task is aborted. A failed
    /// reload is logged once per distinct error, not on every check.
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut last_error = None;
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                match tls.reload() {
                    Ok(true) => {
                        tracing::info!(cert = %tls.files.cert.display(), "reloaded TLS certificate, key and CA");
                        last_error = None;
                    }
                    Ok(false) => last_error = None,
                    Err(e) => {
                        let text = e.to_string();
                        if last_error.as_ref() != Some(&text) {
                            tracing::warn!(error = %text, "TLS files changed but cannot be used; keeping the previous ones");
                            last_error = Some(text);
                        }
                    }
                }
            }
        })
    }
}

/// A TLS connection accepted by [`accept`], ready for tonic's `serve_with_incoming`.
#[derive(Debug)]
pub struct TlsIo(tokio_rustls::server::TlsStream<TcpStream>);

impl TlsIo {
    /// The certificate chain the client presented, if any.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.0.get_ref().1.peer_certificates()
    }
}

impl Connected for TlsIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// TLS handshakes over `incoming`, each with the configuration `config()` returns at
/// that moment (so a reload applies to the next connection). Handshakes run in their own
/// tasks; one that fails or times out is logged (a peer without a certificate from the
/// CA ends here) and never reaches the server. The accept task ends when the returned
/// stream is dropped.
pub fn accept<S, F>(
    incoming: S,
    config: F,
    port: &'static str,
) -> impl Stream<Item = io::Result<TlsIo>> + Send + 'static
where
    S: Stream<Item = io::Result<TcpStream>> + Send + 'static,
    F: Fn() -> Arc<ServerConfig> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel::<TlsIo>(64);
    tokio::spawn(async move {
        let mut incoming = std::pin::pin!(incoming);
        loop {
            let tcp = tokio::select! {
                _ = tx.closed() => return,
                next = incoming.next() => match next {
                    Some(Ok(tcp)) => tcp,
                    Some(Err(e)) => {
                        tracing::warn!(port, error = %e, "accept failed");
                        continue;
                    }
                    None => return,
                },
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(config());
            let tx = tx.clone();
            tokio::spawn(async move {
                let from = tcp.peer_addr().ok();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(TlsIo(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(port, ?from, error = %e, "TLS handshake refused");
                    }
                    Err(_) => {
                        tracing::warn!(port, ?from, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|io| (Ok(io), rx))
    })
}

type ConfigSource = Arc<dyn Fn() -> Arc<ClientConfig> + Send + Sync>;

/// A tonic connector that dials TCP (with TCP_NODELAY) and runs a TLS handshake, for
/// `Endpoint::connect_with_connector`. The endpoint's URI stays `http://host:port`
/// (tonic must not try TLS itself); the host is the name the server certificate must
/// carry (a DNS name, or an IP address SAN).
#[derive(Clone)]
pub struct TlsConnector {
    config: ConfigSource,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Uses `config()` at every dial, so a node's reloaded material applies to new
    /// connections.
    pub fn new(config: impl Fn() -> Arc<ClientConfig> + Send + Sync + 'static) -> Self {
        TlsConnector {
            config: Arc::new(config),
        }
    }

    /// For a member's dials to other members.
    pub fn for_peers(tls: Arc<ServerTls>) -> Self {
        TlsConnector::new(move || tls.peer_dial())
    }
}

/// The server name a dial to `uri` must find in the certificate.
fn server_name(uri: &Uri) -> io::Result<(String, u16, ServerName<'static>)> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: {why}"));
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned())
        .map_err(|e| invalid(&format!("not a valid TLS server name: {e}")))?;
    Ok((bare.to_owned(), port, name))
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = (self.config)();
        Box::pin(async move {
            let (host, port, name) = server_name(&uri)?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// TLS settings of a client (`kuberaft_node::Client`, raftctl, raft-bench, the operator):
/// the CA that members' certificates chain to and, optionally, a client certificate.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the CA bundle at `ca`; presents `cert`/`key` when given.
    pub fn from_files(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Self, TlsError> {
        let read = |flag, path: &Path| std::fs::read(path).map_err(|e| file_error(flag, path, e));
        let roots = parse_roots("--tls-ca", ca, &read("--tls-ca", ca)?)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let files = TlsFiles {
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                    ca: ca.to_owned(),
                };
                let certs = parse_certs("--tls-cert", cert, &read("--tls-cert", cert)?)?;
                let key_der = parse_key(key, &read("--tls-key", key)?)?;
                builder
                    .with_client_auth_cert(certs, key_der)
                    .map_err(|e| config_error(e, &files))?
            }
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    pub fn connector(&self) -> TlsConnector {
        let config = self.config.clone();
        TlsConnector::new(move || config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    fn cert_and_key(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn files(dir: &Path) -> TlsFiles {
        let (cert, key) = cert_and_key(&["localhost"]);
        TlsFiles {
            cert: write(dir, "tls.crt", &cert),
            key: write(dir, "tls.key", &key),
            ca: write(dir, "ca.crt", &cert),
        }
    }

    #[test]
    fn errors_name_the_flag_the_file_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let good = files(dir.path());

        let missing = TlsFiles {
            ca: dir.path().join("nope.crt"),
            ..good.clone()
        };
        let e = ServerTls::load(missing).unwrap_err().to_string();
        assert!(e.starts_with("--tls-ca ") && e.contains("nope.crt"), "{e}");

        let empty = TlsFiles {
            cert: write(dir.path(), "empty.crt", "not pem at all\n"),
            ..good.clone()
        };
        let e = ServerTls::load(empty).unwrap_err().to_string();
        assert!(
            e.contains("--tls-cert") && e.contains("no CERTIFICATE"),
            "{e}"
        );

        let no_key = TlsFiles {
            key: good.cert.clone(),
            ..good.clone()
        };
        let e = ServerTls::load(no_key).unwrap_err().to_string();
        assert!(
            e.starts_with("--tls-key ") && e.contains("private key"),
            "{e}"
        );

        let (_, other_key) = cert_and_key(&["localhost"]);
        let mismatched = TlsFiles {
            key: write(dir.path(), "other.key", &other_key),
            ..good.clone()
        };
        let e = ServerTls::load(mismatched).unwrap_err().to_string();
        assert!(e.contains("does not match the certificate"), "{e}");

        ServerTls::load(good).unwrap();
    }

    #[test]
    fn reload_swaps_valid_material_and_keeps_the_old_on_a_bad_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let tls = ServerTls::load(f.clone()).unwrap();
        assert!(!tls.reload().unwrap(), "unchanged files are not a reload");
        let before = tls.client_port();

        // A half-done rotation: new certificate, old key. Refused; old config kept.
        let (cert, key) = cert_and_key(&["localhost"]);
        std::fs::write(&f.cert, &cert).unwrap();
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&before, &tls.client_port()));

        // The rotation completes.
        std::fs::write(&f.key, &key).unwrap();
        std::fs::write(&f.ca, &cert).unwrap();
        assert!(tls.reload().unwrap());
        assert!(!Arc::ptr_eq(&before, &tls.client_port()));
        assert!(!tls.reload().unwrap());
    }

    #[test]
    fn server_names_accept_dns_names_and_ip_addresses() {
        let (host, port, name) = server_name(&"http://node-0.demo:7000".parse().unwrap()).unwrap();
        assert_eq!((host.as_str(), port), ("node-0.demo", 7000));
        assert!(matches!(name, ServerName::DnsName(_)));
        let (_, _, name) = server_name(&"http://[::1]:7000".parse().unwrap()).unwrap();
        assert!(matches!(name, ServerName::IpAddress(_)));
        let e = server_name(&"http://node-0".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("no port"), "{e}");
    }

    #[test]
    fn client_tls_reports_a_bad_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "ca.crt", "garbage");
        let e = ClientTls::from_files(&bad, None).unwrap_err().to_string();
        assert!(
            e.starts_with("--tls-ca ") && e.contains("no CERTIFICATE"),
            "{e}"
        );
    }
}
