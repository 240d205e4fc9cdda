//! Reads the NotLeader hint from a FAILED_PRECONDITION status. The server may put the
//! encoded `kuberaft.kv.v1.NotLeader` in the status details as it is, or wrap it in a
//! `google.rpc.Status` as an `Any` (the gRPC richer error model); both are accepted so
//! the client does not depend on which one the server picked.

use prost::Message;
use tonic::Status;

use crate::pb::kv::NotLeader;

/// `google.rpc.Status`, declared here to avoid a dependency for three fields.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `Some(hint)` when the status says "not the leader"; the hint is the leader's client
/// address, `None` when the member knows no leader. `None` when the status is about
/// something else.
pub(crate) fn not_leader(status: &Status) -> Option<Option<String>> {
    let details = status.details();
    if details.is_empty() {
        // An all-default NotLeader (leader unknown) encodes to no bytes at all, so an
        // empty detail is read from the message, which must then mention the leader.
        let message = status.message().to_ascii_lowercase();
        return message.contains("leader").then_some(None);
    }
    let hint = wrapped(details).or_else(|| NotLeader::decode(details).ok())?;
    let addr = hint.leader_client_addr.trim();
    Some((!addr.is_empty()).then(|| addr.to_owned()))
}

/// The NotLeader inside a `google.rpc.Status`, if the details are one that holds it.
fn wrapped(details: &[u8]) -> Option<NotLeader> {
    let status = RpcStatus::decode(details).ok()?;
    status
        .details
        .iter()
        .find(|any| any.type_url.ends_with("kuberaft.kv.v1.NotLeader"))
        .and_then(|any| NotLeader::decode(any.value.as_slice()).ok())
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn leader(addr: &str) -> NotLeader {
        NotLeader {
            leader_id: 7,
            leader_client_addr: addr.into(),
        }
    }

    #[test]
    fn client_reads_a_bare_not_leader_detail() {
        let status = Status::with_details(
            Code::FailedPrecondition,
            "not the leader",
            leader("10.0.0.1:2379").encode_to_vec().into(),
        );
        assert_eq!(not_leader(&status), Some(Some("10.0.0.1:2379".into())));
    }

    #[test]
    fn client_reads_a_not_leader_wrapped_in_google_rpc_status() {
        let wrapped = RpcStatus {
            code: Code::FailedPrecondition as i32,
            message: "not the leader".into(),
            details: vec![Any {
                type_url: "type.googleapis.com/kuberaft.kv.v1.NotLeader".into(),
                value: leader("b:1").encode_to_vec(),
            }],
        };
        let status = Status::with_details(
            Code::FailedPrecondition,
            "not the leader",
            wrapped.encode_to_vec().into(),
        );
        assert_eq!(not_leader(&status), Some(Some("b:1".into())));
    }

    #[test]
    fn client_treats_an_empty_leader_address_as_unknown() {
        let status = Status::with_details(
            Code::FailedPrecondition,
            "no leader",
            NotLeader::default().encode_to_vec().into(),
        );
        assert_eq!(not_leader(&status), Some(None));
        let status = Status::with_details(
            Code::FailedPrecondition,
            "electing",
            NotLeader {
                leader_id: 3,
                leader_client_addr: " ".into(),
            }
            .encode_to_vec()
            .into(),
        );
        assert_eq!(not_leader(&status), Some(None));
    }

    #[test]
    fn client_does_not_mistake_other_preconditions_for_not_leader() {
        let status = Status::failed_precondition("a configuration change is pending");
        assert_eq!(not_leader(&status), None);
    }
}
