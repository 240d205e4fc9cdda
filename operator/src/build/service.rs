//! The two Services of a cluster: a headless one that names every member, and a ClusterIP
//! one in front of the ready members for clients.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{ClusterIdentity, client_service_name, peer_service_name, selector_labels};
use super::{CLIENT_PORT, CLIENT_PORT_NAME, HTTP_PORT, HTTP_PORT_NAME, PEER_PORT, PEER_PORT_NAME};

/// Headless `<name>-peer`: the StatefulSet's governing Service, giving each pod the DNS
/// name `<pod>.<name>-peer.<ns>.svc`.
///
/// `publishNotReadyAddresses` keeps those names resolvable while a member is unready: a
/// new member must be reachable to join (PrepareJoin, AddLearner) before it can be ready,
/// and members that lost quorum must still find each other to elect a leader.
pub fn peer_service(id: &ClusterIdentity) -> Service {
    Service {
        metadata: id.object_meta(peer_service_name(&id.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(id)),
            ports: Some(vec![
                port(PEER_PORT_NAME, PEER_PORT),
                port(CLIENT_PORT_NAME, CLIENT_PORT),
                port(HTTP_PORT_NAME, HTTP_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// `<name>`: ClusterIP on the client port of ready members only. Any member serves as an
/// entry point; followers redirect writes to the leader's advertised client address.
pub fn client_service(id: &ClusterIdentity) -> Service {
    Service {
        metadata: id.object_meta(client_service_name(&id.name)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(id)),
            ports: Some(vec![port(CLIENT_PORT_NAME, CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}
