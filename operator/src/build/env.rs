//! How the StatefulSet passes flags to `raft-node`: environment variables, never args, so
//! the image's entrypoint stays `raft-node` and `kubectl describe pod` shows every setting.
//!
//! Convention: a flag's variable is `RAFT_` + the flag name without dashes, upper-snake-cased
//! (`--data-dir` → `RAFT_DATA_DIR`). `raft-node` reads each flag from that variable (clap's
//! `env`); [`FLAGS`] is the complete list the operator sets.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};

use super::meta::{ClusterIdentity, member_host};
use super::statefulset::DATA_DIR;
use super::{CLIENT_PORT, HTTP_PORT, PEER_PORT};
use crate::crd::RaftClusterSpec;

/// Prefix of every flag variable.
pub const PREFIX: &str = "RAFT_";

/// Downward-API variable with the pod's name; other values expand it as `$(POD_NAME)`.
/// Kubernetes only expands variables defined earlier in the list, so it comes first.
pub const POD_NAME: &str = "POD_NAME";

/// `(flag, variable)` for every flag the StatefulSet sets, in container order.
pub const FLAGS: &[(&str, &str)] = &[
    ("--name", "RAFT_NAME"),
    ("--data-dir", "RAFT_DATA_DIR"),
    ("--peer-listen", "RAFT_PEER_LISTEN"),
    ("--client-listen", "RAFT_CLIENT_LISTEN"),
    ("--http-listen", "RAFT_HTTP_LISTEN"),
    ("--advertise-peer", "RAFT_ADVERTISE_PEER"),
    ("--advertise-client", "RAFT_ADVERTISE_CLIENT"),
    ("--tick-millis", "RAFT_TICK_MILLIS"),
    ("--election-ticks", "RAFT_ELECTION_TICKS"),
    ("--heartbeat-ticks", "RAFT_HEARTBEAT_TICKS"),
    ("--snapshot-threshold", "RAFT_SNAPSHOT_THRESHOLD"),
    ("--log-format", "RAFT_LOG_FORMAT"),
];

/// The variable that carries `flag` (`--data-dir` → `RAFT_DATA_DIR`).
pub fn var_for_flag(flag: &str) -> String {
    let name = flag.trim_start_matches('-').replace('-', "_");
    format!("{PREFIX}{}", name.to_ascii_uppercase())
}

/// The container's environment: [`POD_NAME`], then one variable per entry of [`FLAGS`].
///
/// Listeners bind every IPv4 address; peers and clients reach a member through its stable
/// DNS name under the headless peer Service, which survives rescheduling.
pub fn container_env(id: &ClusterIdentity, spec: &RaftClusterSpec) -> Vec<EnvVar> {
    let host = member_host(id, &format!("$({POD_NAME})"));
    let pod_name = || EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: "metadata.name".to_owned(),
            api_version: None,
        }),
        ..EnvVarSource::default()
    };
    let values: [(&str, String); 12] = [
        ("--name", String::new()),
        ("--data-dir", DATA_DIR.to_owned()),
        ("--peer-listen", format!("0.0.0.0:{PEER_PORT}")),
        ("--client-listen", format!("0.0.0.0:{CLIENT_PORT}")),
        ("--http-listen", format!("0.0.0.0:{HTTP_PORT}")),
        ("--advertise-peer", format!("{host}:{PEER_PORT}")),
        ("--advertise-client", format!("{host}:{CLIENT_PORT}")),
        ("--tick-millis", spec.raft.tick_millis.to_string()),
        ("--election-ticks", spec.raft.election_ticks.to_string()),
        ("--heartbeat-ticks", spec.raft.heartbeat_ticks.to_string()),
        (
            "--snapshot-threshold",
            spec.snapshot.entry_threshold.to_string(),
        ),
        ("--log-format", "json".to_owned()),
    ];
    let mut env = vec![EnvVar {
        name: POD_NAME.to_owned(),
        value_from: Some(pod_name()),
        ..EnvVar::default()
    }];
    env.extend(values.into_iter().map(|(flag, value)| {
        let name = var_for_flag(flag);
        if flag == "--name" {
            // The member name is the pod name, straight from the downward API.
            EnvVar {
                name,
                value_from: Some(pod_name()),
                ..EnvVar::default()
            }
        } else {
            EnvVar {
                name,
                value: Some(value),
                ..EnvVar::default()
            }
        }
    }));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_follows_the_convention() {
        for (flag, var) in FLAGS {
            assert_eq!(var_for_flag(flag), *var, "{flag}");
        }
    }

    #[test]
    fn env_lists_pod_name_then_every_flag_in_order() {
        let id = ClusterIdentity {
            name: "demo".into(),
            namespace: "ns".into(),
            uid: "u".into(),
        };
        let env = container_env(&id, &RaftClusterSpec::with_image("img"));
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        let mut expected = vec![POD_NAME];
        expected.extend(FLAGS.iter().map(|(_, var)| *var));
        assert_eq!(names, expected);
    }
}
