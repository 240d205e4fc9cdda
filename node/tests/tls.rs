//! TLS on real `raft-node` processes: a three-member cluster formed and replicating over
//! mutual TLS; the peer port refusing a client certificate from another CA and a client
//! without one; the client port refusing plain TCP; certificate and CA rotation picked up
//! without a restart.

mod cluster_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cluster_support::{NodeProc, eventually};
use kuberaft_node::client::{AdminClient, Client, ClientOptions, JoinOptions, ReadConsistency};
use kuberaft_node::tls::ClientTls;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A certificate authority that signs leaf certificates for 127.0.0.1.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf valid for 127.0.0.1 and localhost, as server and as client; PEMs of the
    /// certificate and the key.
    fn leaf(&self, serial: u64) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("member-{serial}"));
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The files one node is started with.
struct NodeTls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl NodeTls {
    fn write(dir: &Path, ca: &Ca, serial: u64) -> NodeTls {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = ca.leaf(serial);
        let files = NodeTls {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            ca: dir.join("ca.crt"),
        };
        replace(&files.cert, &cert);
        replace(&files.key, &key);
        replace(&files.ca, &ca.pem);
        files
    }

    fn args(&self) -> Vec<String> {
        let p = |p: &Path| p.to_str().unwrap().to_owned();
        vec![
            "--tls-cert".into(),
            p(&self.cert),
            "--tls-key".into(),
            p(&self.key),
            "--tls-ca".into(),
            p(&self.ca),
            "--tls-reload-interval".into(),
            "100ms".into(),
        ]
    }
}

/// Replaces a file atomically, as a Secret volume update does.
fn replace(path: &Path, body: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn spawn(dir: &Path, tls: &NodeTls, bootstrap: bool) -> NodeProc {
    let mut args = tls.args();
    if bootstrap {
        args.push("--bootstrap".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NodeProc::spawn(dir, &args).await
}

fn client_options(ca: &Path) -> ClientOptions {
    ClientOptions {
        call_timeout: Duration::from_secs(2),
        retry_budget: Duration::from_secs(20),
        tls: Some(ClientTls::from_files(ca, None).unwrap()),
        ..ClientOptions::default()
    }
}

/// A rustls client configuration trusting `ca_pem`, presenting `identity` if given.
fn raw_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// What a raw TLS session to `addr` got: the server's leaf certificate, and whether the
/// server answered an HTTP/2 preface (it does not once it has rejected the client's
/// certificate: TLS 1.3 checks that after the client's side of the handshake is done).
struct Session {
    server_cert: Option<Vec<u8>>,
    answered: bool,
}

async fn session(addr: &str, config: Arc<rustls::ClientConfig>) -> Session {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connect = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    let mut tls = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(_)) | Err(_) => {
            return Session {
                server_cert: None,
                answered: false,
            };
        }
    };
    let server_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    // The client preface and an empty SETTINGS frame; a server that accepted us answers
    // with its own SETTINGS.
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let answered = async {
        tls.write_all(&preface).await.ok()?;
        tls.flush().await.ok()?;
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).await.ok()?;
        (n > 0).then_some(())
    };
    let answered = tokio::time::timeout(Duration::from_secs(5), answered)
        .await
        .ok()
        .flatten()
        .is_some();
    Session {
        server_cert,
        answered,
    }
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_mutual_tls_refuses_peers_and_clients_without_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("kuberaft test CA");
    let rogue = Ca::new("someone else's CA");
    let mut nodes = Vec::new();
    let mut tls = Vec::new();
    for i in 0..3u64 {
        let dir = tmp.path().join(format!("n{i}"));
        let files = NodeTls::write(&tmp.path().join(format!("tls{i}")), &ca, 10 + i);
        nodes.push(spawn(&dir, &files, i == 0).await);
        tls.push(files);
    }
    let endpoints: Vec<String> = nodes.iter().map(|n| n.addrs.client.clone()).collect();
    let options = client_options(&tls[0].ca);

    // Members 1 and 2 join through the TLS client port; replication to them runs over
    // mutual TLS on the peer ports.
    let admin = AdminClient::connect(&endpoints[..1], options.clone()).unwrap();
    for joiner in &endpoints[1..] {
        admin
            .add_member(joiner, &JoinOptions::default(), |_| {})
            .await
            .unwrap_or_else(|e| panic!("adding {joiner} over TLS: {e}"));
    }
    let client = Client::connect(&endpoints, options.clone()).unwrap();
    for i in 0..20 {
        client.put(format!("k{i}"), format!("v{i}")).await.unwrap();
    }
    let status = admin.leader_status().await.unwrap();
    let voters = status.members.iter().filter(|m| m.match_index > 0).count();
    assert_eq!(voters, 3, "every member replicates: {status:?}");
    for addr in &endpoints {
        let only = Client::connect(std::slice::from_ref(addr), options.clone()).unwrap();
        let read = only
            .get("k19", ReadConsistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(
            read.map(|kv| kv.value),
            Some("v19".into()),
            "through {addr}"
        );
    }

    // Plain TCP to a TLS client port gets nowhere.
    let plain = Client::connect(
        &endpoints[..1],
        ClientOptions {
            call_timeout: Duration::from_millis(500),
            retry_budget: Duration::from_secs(2),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    assert!(plain.put("plain", "x").await.is_err());

    // The peer port: a certificate from our CA is served; one from another CA, or none,
    // is refused.
    let peer = nodes[1].addrs.peer.clone();
    let (good_cert, good_key) = ca.leaf(99);
    let good = session(&peer, raw_config(&ca.pem, Some((&good_cert, &good_key)))).await;
    assert!(good.answered, "a member certificate is accepted");
    assert_eq!(
        good.server_cert,
        Some(der(&std::fs::read_to_string(&tls[1].cert).unwrap()))
    );
    let (rogue_cert, rogue_key) = rogue.leaf(66);
    let refused = session(&peer, raw_config(&ca.pem, Some((&rogue_cert, &rogue_key)))).await;
    assert!(
        !refused.answered,
        "a certificate from another CA is refused"
    );
    let anonymous = session(&peer, raw_config(&ca.pem, None)).await;
    assert!(
        !anonymous.answered,
        "a peer without a certificate is refused"
    );
    // The client port asks for no client certificate.
    let client_port = session(&endpoints[1], raw_config(&ca.pem, None)).await;
    assert!(client_port.answered);
    // A client that does not trust our CA does not talk to the member either.
    let untrusting = session(&endpoints[1], raw_config(&rogue.pem, None)).await;
    assert!(untrusting.server_cert.is_none() && !untrusting.answered);

    let log = nodes[1].dir.join("node.log");
    eventually(Duration::from_secs(10), "the refusal in the log", || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(log).ok()?;
            text.contains("TLS handshake refused").then_some(())
        }
    })
    .await;

    // The cluster still works after the refused attempts.
    client.put("after", "refusals").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_and_cas_are_used_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("kuberaft test CA");
    let files = NodeTls::write(&tmp.path().join("tls"), &ca, 1);
    let node = spawn(&tmp.path().join("n0"), &files, true).await;
    let client_addr = node.addrs.client.clone();
    let peer_addr = node.addrs.peer.clone();
    let client = Client::connect(
        std::slice::from_ref(&client_addr),
        client_options(&files.ca),
    )
    .unwrap();
    client.put("before", "rotation").await.unwrap();

    // raftctl speaks TLS with --tls-ca, and says which flag is missing.
    let raftctl = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_raftctl"))
            .args(["--endpoints", &client_addr])
            .args(args)
            .output()
            .unwrap()
    };
    let ca_path = files.ca.to_str().unwrap();
    let out = raftctl(&["--tls-ca", ca_path, "get", "before", "-o", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("rotation"),
        "{out:?}"
    );
    let out = raftctl(&["--tls-ca", ca_path, "--tls-cert", ca_path, "get", "before"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--tls-key"),
        "{stderr}"
    );
    let out = raftctl(&["get", "before", "--timeout", "1s"]);
    assert!(!out.status.success(), "plain TCP to a TLS port fails");

    let first = der(&std::fs::read_to_string(&files.cert).unwrap());
    let seen = session(&client_addr, raw_config(&ca.pem, None)).await;
    assert_eq!(seen.server_cert, Some(first.clone()));

    // A half-done rotation (new certificate, old key) is not used; the node keeps
    // serving the old pair.
    let (cert2, key2) = ca.leaf(2);
    replace(&files.cert, &cert2);
    let log = node.dir.join("node.log");
    eventually(
        Duration::from_secs(10),
        "the refused rotation in the log",
        || {
            let log = log.clone();
            async move {
                let text = std::fs::read_to_string(log).ok()?;
                text.contains("does not match the certificate")
                    .then_some(())
            }
        },
    )
    .await;
    let seen = session(&client_addr, raw_config(&ca.pem, None)).await;
    assert_eq!(
        seen.server_cert,
        Some(first.clone()),
        "the old pair stays in use"
    );

    // The key arrives: new handshakes present the new certificate.
    replace(&files.key, &key2);
    let second = der(&cert2);
    eventually(
        Duration::from_secs(10),
        "the new certificate served",
        || {
            let config = raw_config(&ca.pem, None);
            let addr = client_addr.clone();
            let second = second.clone();
            async move {
                let s = session(&addr, config).await;
                (s.server_cert == Some(second)).then_some(())
            }
        },
    )
    .await;
    client.put("after", "rotation").await.unwrap();

    // A new CA is added to the bundle: its certificates are accepted on the peer port.
    let other = Ca::new("the next CA");
    let (other_cert, other_key) = other.leaf(3);
    let refused = session(
        &peer_addr,
        raw_config(&ca.pem, Some((&other_cert, &other_key))),
    )
    .await;
    assert!(!refused.answered, "not trusted yet");
    replace(&files.ca, &format!("{}{}", ca.pem, other.pem));
    eventually(Duration::from_secs(10), "the new CA trusted", || {
        let config = raw_config(&ca.pem, Some((&other_cert, &other_key)));
        let addr = peer_addr.clone();
        async move { session(&addr, config).await.answered.then_some(()) }
    })
    .await;
    let read = client
        .get("after", ReadConsistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(read.map(|kv| kv.value), Some("rotation".into()));
}

#[test]
fn raft_node_names_the_tls_flag_that_is_missing_or_bad() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(cluster_support::BIN)
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .args([
                "--peer-listen",
                "127.0.0.1:0",
                "--client-listen",
                "127.0.0.1:0",
            ])
            .args(["--http-listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} must be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let ca = Ca::new("ca");
    let files = NodeTls::write(&tmp.path().join("tls"), &ca, 1);
    let cert = files.cert.to_str().unwrap();
    let stderr = run(&["--tls-cert", cert]);
    assert!(
        stderr.contains("--tls-key") && stderr.contains("--tls-ca"),
        "{stderr}"
    );

    std::fs::write(&files.key, "not a key").unwrap();
    let args = files.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stderr = run(&args);
    assert!(
        stderr.contains("--tls-key")
            && stderr.contains("tls.key")
            && stderr.contains("private key"),
        "{stderr}"
    );
}
