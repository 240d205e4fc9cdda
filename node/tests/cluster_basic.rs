//! Real `raft-node` processes on 127.0.0.1: forming a cluster over Admin, writes and
//! reads through raw tonic clients, NotLeader hints, kill -9 of the leader and of every
//! member, snapshot catch-up, removal, and refusal of bad input.

mod cluster_support;

use std::time::Duration;

use cluster_support::*;
use kuberaft_node::pb::admin;
use kuberaft_node::pb::kv::{NotLeader, ReadConsistency};
use prost::Message;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(20);

/// Three voters in `dir`: n1 bootstraps and leads, n2 and n3 join it.
async fn three_members(dir: &std::path::Path) -> [NodeProc; 3] {
    let n1 = NodeProc::spawn(&dir.join("n1"), &["--bootstrap"]).await;
    let n2 = NodeProc::spawn(&dir.join("n2"), &[]).await;
    let n3 = NodeProc::spawn(&dir.join("n3"), &[]).await;
    leader_of(&[&n1]).await;
    join(&n1, &n2).await;
    join(&n1, &n3).await;
    [n1, n2, n3]
}

/// Writes `key` through whichever member leads, retrying while leadership moves.
async fn put_via_leader(nodes: &[&NodeProc], key: &str, value: &str) {
    eventually(WAIT, &format!("write of {key}"), || async {
        let i = leader_of(nodes).await;
        put(nodes[i], key, value).await.ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_form_fail_over_and_keep_every_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let n1 = NodeProc::spawn(&tmp.path().join("n1"), &["--bootstrap", "--name", "n1"]).await;
    let n2 = NodeProc::spawn(&tmp.path().join("n2"), &["--name", "n2"]).await;
    let n3 = NodeProc::spawn(&tmp.path().join("n3"), &["--name", "n3"]).await;
    assert_eq!(leader_of(&[&n1]).await, 0);
    let (code, body) = n2.http_get("/readyz").await;
    assert_eq!(code, 503, "an uninitialized node is not ready: {body}");
    join(&n1, &n2).await;
    join(&n1, &n3).await;
    let mut nodes = [n1, n2, n3];

    // The configuration holds three voters with their addresses.
    let st = nodes[0].status().await.unwrap();
    assert_eq!(st.members.len(), 3, "{st:?}");
    for m in &st.members {
        assert_eq!(m.kind, admin::MemberKind::Voter as i32);
        assert!(
            !m.client_addr.is_empty() && !m.peer_addr.is_empty(),
            "{m:?}"
        );
    }

    // Writes and linearizable reads on the leader.
    for i in 0..20 {
        put(&nodes[0], &format!("k{i}"), &format!("v{i}"))
            .await
            .unwrap();
    }
    assert_eq!(
        get(&nodes[0], "k7", ReadConsistency::Linearizable)
            .await
            .unwrap(),
        Some("v7".into())
    );
    assert_eq!(
        get(&nodes[0], "k8", ReadConsistency::Lease).await.unwrap(),
        Some("v8".into())
    );
    assert_eq!(
        get(&nodes[0], "nope", ReadConsistency::Linearizable)
            .await
            .unwrap(),
        None
    );

    // A follower names the leader's client address.
    let err = put(&nodes[1], "x", "y").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let hint = NotLeader::decode(err.details()).unwrap();
    assert_eq!(hint.leader_id, nodes[0].addrs.node_id);
    assert_eq!(hint.leader_client_addr, nodes[0].addrs.client);
    let err = get(&nodes[1], "k1", ReadConsistency::Linearizable)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // Stale reads are served by any member once it applied the write.
    eventually(WAIT, "a stale read on a follower", || async {
        let v = get(&nodes[2], "k19", ReadConsistency::Stale).await.ok()?;
        (v.as_deref() == Some("v19")).then_some(())
    })
    .await;
    eventually(WAIT, "followers ready", || async {
        (nodes[1].http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;

    // kill -9 the leader: another member takes over and writes resume.
    nodes[0].kill9();
    let survivors = [&nodes[1], &nodes[2]];
    let i = leader_of(&survivors).await;
    put_via_leader(&survivors, "after-failover", "1").await;
    assert_eq!(
        get(survivors[i], "k3", ReadConsistency::Linearizable)
            .await
            .unwrap(),
        Some("v3".into())
    );
    nodes[0].restart().await;
    put_via_leader(&[&nodes[0], &nodes[1], &nodes[2]], "after-restart", "2").await;

    // kill -9 every member, restart all: every acknowledged write is there.
    for n in &mut nodes {
        n.kill9();
    }
    for n in &mut nodes {
        n.restart().await;
    }
    let all = [&nodes[0], &nodes[1], &nodes[2]];
    let mut expected: Vec<(String, String)> = (0..20)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    expected.push(("after-failover".into(), "1".into()));
    expected.push(("after-restart".into(), "2".into()));
    for (k, v) in &expected {
        let got = eventually(WAIT, &format!("read of {k}"), || async {
            let i = leader_of(&all).await;
            get(all[i], k, ReadConsistency::Linearizable).await.ok()
        })
        .await;
        assert_eq!(got.as_deref(), Some(v.as_str()), "{k}");
    }
    let (code, text) = all[leader_of(&all).await].http_get("/metrics").await;
    assert_eq!(code, 200);
    for metric in [
        "raft_term",
        "raft_commit_index",
        "raft_fsync_seconds",
        "raft_peer_lag",
    ] {
        assert!(text.contains(metric), "{metric} missing from /metrics");
    }

    // SIGTERM on the leader: it hands leadership to another voter, then exits cleanly.
    let i = leader_of(&all).await;
    let old_leader = all[i].addrs.node_id;
    let status = nodes[i].terminate().unwrap();
    assert!(status.success(), "raft-node exited with {status:?}");
    let rest: Vec<&NodeProc> = nodes
        .iter()
        .filter(|n| n.addrs.node_id != old_leader)
        .collect();
    let j = leader_of(&rest).await;
    put(rest[j], "after-sigterm", "3").await.unwrap();
    eprintln!(
        "SIGTERM-CHECK old={old_leader} new={}",
        rest[j].addrs.node_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_after_compaction_catches_up_through_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--bootstrap", "--snapshot-threshold", "40"];
    let mut n1 = NodeProc::spawn(&tmp.path().join("n1"), &args).await;
    leader_of(&[&n1]).await;
    for i in 0..120 {
        put(&n1, &format!("k{i}"), &format!("v{i}")).await.unwrap();
    }
    // An on-demand snapshot on top of the threshold ones.
    let snap = n1
        .admin()
        .await
        .snapshot(admin::SnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(snap.index >= 120, "{snap:?}");
    eventually(WAIT, "the leader to compact its log", || async {
        let s = n1.status().await?;
        (s.snapshot_index >= snap.index).then_some(())
    })
    .await;

    let mut n2 = NodeProc::spawn(&tmp.path().join("n2"), &["--snapshot-threshold", "40"]).await;
    join(&n1, &n2).await;
    let st = n2.status().await.unwrap();
    assert!(
        st.snapshot_index >= snap.index,
        "n2 installed a snapshot: {st:?}"
    );
    assert_eq!(st.lifecycle, admin::Lifecycle::Member as i32);
    eventually(
        WAIT,
        "a stale read of an early key on the new member",
        || async {
            let v = get(&n2, "k0", ReadConsistency::Stale).await.ok()?;
            (v.as_deref() == Some("v0")).then_some(())
        },
    )
    .await;
    // The snapshot carried the address book: n2 knows n1's client address.
    let members = st.members;
    let m1 = members
        .iter()
        .find(|m| m.node_id == n1.addrs.node_id)
        .unwrap();
    assert_eq!(m1.client_addr, n1.addrs.client);
    let (_, metrics) = n2.http_get("/metrics").await;
    assert!(
        metrics.contains("raft_snapshots_total{kind=\"installed\"} 1"),
        "{metrics}"
    );
    let (_, metrics) = n1.http_get("/metrics").await;
    assert!(
        metrics.contains("raft_snapshots_total{kind=\"sent\"} 1"),
        "{metrics}"
    );
    // Writes after the snapshot replicate to the new member too.
    put(&n1, "late", "x").await.unwrap();
    eventually(WAIT, "the late write on n2", || async {
        let v = get(&n2, "late", ReadConsistency::Stale).await.ok()?;
        (v.as_deref() == Some("x")).then_some(())
    })
    .await;

    // Both restart from their snapshot (taken locally, or received) plus their log.
    n1.kill9();
    n2.kill9();
    n1.restart().await;
    n2.restart().await;
    for key in ["k0", "k119", "late"] {
        let v = eventually(WAIT, &format!("{key} after the restart"), || async {
            let i = leader_of(&[&n1, &n2]).await;
            get([&n1, &n2][i], key, ReadConsistency::Linearizable)
                .await
                .ok()
        })
        .await;
        assert!(v.is_some(), "{key} lost across the restart");
    }
    eventually(WAIT, "n2 to serve after its restart", || async {
        let v = get(&n2, "k5", ReadConsistency::Stale).await.ok()?;
        (v.as_deref() == Some("v5")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_missing_tokens_are_refused_with_clear_errors() {
    use kuberaft_node::pb::kv::CompareAndSwapRequest;
    use kuberaft_node::pb::raft::{self as pbr, raft_peer_client::RaftPeerClient};
    use tonic::metadata::MetadataValue;

    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let n1 = NodeProc::spawn(
        &tmp.path().join("n1"),
        &[
            "--bootstrap",
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
    )
    .await;

    // Admin without (or with a wrong) token is refused; with it, it answers.
    let err = n1
        .admin()
        .await
        .status(admin::StatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("Bearer"), "{}", err.message());
    let mut req = tonic::Request::new(admin::StatusRequest {});
    req.metadata_mut()
        .insert("authorization", MetadataValue::from_static("Bearer nope"));
    let err = n1.admin().await.status(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let status = eventually(WAIT, "leader status with the token", || async {
        let mut req = tonic::Request::new(admin::StatusRequest {});
        req.metadata_mut()
            .insert("authorization", MetadataValue::from_static("Bearer s3cret"));
        let s = n1.admin().await.status(req).await.ok()?.into_inner();
        (s.role == admin::Role::Leader as i32).then_some(s)
    })
    .await;
    // KV never needs the token.
    put(&n1, "a", "1").await.unwrap();

    // Oversized and malformed KV requests.
    let big = "x".repeat(2 << 20);
    let err = put(&n1, "big", &big).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{err:?}"
    );
    assert!(
        err.message().contains("too large") || err.message().contains("limit"),
        "{}",
        err.message()
    );
    let err = n1
        .kv()
        .await
        .compare_and_swap(CompareAndSwapRequest {
            key: b"a".to_vec(),
            expected: None,
            new_value: Some(b"2".to_vec()),
            session: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("`expected` is missing"),
        "{}",
        err.message()
    );
    let err = put(&n1, "", "v").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Peer traffic from another cluster, and a message without a body.
    let mut peer = RaftPeerClient::new(channel(&n1.addrs.peer).await);
    let heartbeat = pbr::Message {
        from: 99,
        to: n1.addrs.node_id,
        term: 1,
        body: Some(pbr::message::Body::Heartbeat(pbr::Heartbeat {
            commit: 0,
            round: 1,
        })),
    };
    let err = peer
        .send(pbr::Envelope {
            cluster_id: "some-other-cluster".into(),
            from: 99,
            to: n1.addrs.node_id,
            messages: vec![heartbeat.clone()],
            from_addr: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("cluster id mismatch"),
        "{}",
        err.message()
    );
    let no_body = pbr::Message {
        body: None,
        ..heartbeat
    };
    let err = peer
        .send(pbr::Envelope {
            cluster_id: status.cluster_id.clone(),
            from: 99,
            to: n1.addrs.node_id,
            messages: vec![no_body],
            from_addr: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("field `body` is missing"),
        "{}",
        err.message()
    );
    // Nothing of it reached the core: still the leader of the same term.
    put(&n1, "b", "2").await.unwrap();
    assert_eq!(
        get(&n1, "b", ReadConsistency::Linearizable).await.unwrap(),
        Some("2".into())
    );

    // An unknown flag is a usage error (exit code 2) that names the flag.
    let out = std::process::Command::new(BIN)
        .args(["--data-dir", "/nonexistent", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    // Values that parse but make no sense stop the node before it touches anything, with
    // the flag and the reason.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let dir = tmp.path().join("unused");
    for (args, expected) in [
        (
            vec!["--data-dir", file.to_str().unwrap()],
            "exists and is not a directory",
        ),
        (
            vec!["--data-dir", dir.to_str().unwrap(), "--election-ticks", "1"],
            "--election-ticks must be greater than --heartbeat-ticks",
        ),
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(!dir.exists(), "a refused start created its data dir");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joint_change_transfer_and_removal_are_final() {
    let tmp = tempfile::tempdir().unwrap();
    let n1 = NodeProc::spawn(&tmp.path().join("n1"), &[]).await;
    let mut n2 = NodeProc::spawn(&tmp.path().join("n2"), &[]).await;
    let n3 = NodeProc::spawn(&tmp.path().join("n3"), &[]).await;
    // Admin.Bootstrap founds the cluster; asking again answers the same cluster id.
    let boot = |cluster_id: &str| admin::BootstrapRequest {
        cluster_id: cluster_id.into(),
    };
    let first = n1
        .admin()
        .await
        .bootstrap(boot(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.node_id, n1.addrs.node_id);
    let again = n1
        .admin()
        .await
        .bootstrap(boot(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.cluster_id, first.cluster_id);
    let err = n1.admin().await.bootstrap(boot("other")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    leader_of(&[&n1]).await;
    join(&n1, &n2).await;
    // n3 only as a learner: the joint change promotes it and removes n2 at once.
    let cluster_id = n1.status().await.unwrap().cluster_id;
    let info = n3
        .admin()
        .await
        .prepare_join(admin::PrepareJoinRequest { cluster_id })
        .await
        .unwrap()
        .into_inner();
    let add = admin::AddLearnerRequest {
        node_id: info.node_id,
        name: info.name,
        peer_addr: info.peer_addr,
        client_addr: info.client_addr,
    };
    n1.admin().await.add_learner(add.clone()).await.unwrap();
    // AddLearner is idempotent.
    n1.admin().await.add_learner(add).await.unwrap();
    let (id1, id2, id3) = (n1.addrs.node_id, n2.addrs.node_id, n3.addrs.node_id);
    let resp = n1
        .admin()
        .await
        .change_membership(admin::ChangeMembershipRequest {
            promote: vec![id3],
            remove: vec![id2],
        })
        .await
        .unwrap()
        .into_inner();
    let voters: Vec<u64> = resp
        .members
        .iter()
        .filter(|m| m.kind == admin::MemberKind::Voter as i32)
        .map(|m| m.node_id)
        .collect();
    assert_eq!(voters.len(), 2, "{resp:?}");
    assert!(voters.contains(&id3) && !resp.members.iter().any(|m| m.node_id == id2));
    let st = n1.status().await.unwrap();
    assert!(!st.joint, "answered once the joint config was left");
    assert!(st.outgoing_voters.is_empty(), "{st:?}");
    // The leave-joint entry is the last configuration entry and it is committed.
    assert!(
        st.config_index > 0 && st.config_index <= st.commit_index,
        "{st:?}"
    );

    // The removed member learns it and never serves again, even after a restart.
    eventually(WAIT, "n2 to report Removed", || async {
        let s = n2.status().await?;
        (s.lifecycle == admin::Lifecycle::Removed as i32).then_some(())
    })
    .await;
    let err = put(&n2, "k", "v").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("removed"), "{}", err.message());
    n2.restart().await;
    let s = n2.status().await.unwrap();
    assert_eq!(s.lifecycle, admin::Lifecycle::Removed as i32);
    assert_eq!(n2.http_get("/readyz").await.0, 503);
    // Its id is refused by the others, and cannot be added back.
    let err = n1
        .admin()
        .await
        .add_learner(admin::AddLearnerRequest {
            node_id: id2,
            name: "again".into(),
            peer_addr: n2.addrs.peer.clone(),
            client_addr: n2.addrs.client.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("never reused"), "{}", err.message());

    // Leadership moves to the most caught-up voter on request.
    let to = n1
        .admin()
        .await
        .transfer_leadership(admin::TransferLeadershipRequest { to: 0, from: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(to.leader_id, id3);
    assert_eq!(leader_of(&[&n1, &n3]).await, 1);
    put(&n3, "after-transfer", "1").await.unwrap();
    // A retried transfer to the member that now leads reports success, wherever the
    // retry lands (a client moves a call that waits too long to the new leader).
    for node in [&n1, &n3] {
        let again = node
            .admin()
            .await
            .transfer_leadership(admin::TransferLeadershipRequest { to: id3, from: 0 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.leader_id, id3);
        // So is a retried "any voter" transfer that names the leader it meant to leave.
        let again = node
            .admin()
            .await
            .transfer_leadership(admin::TransferLeadershipRequest { to: 0, from: id1 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.leader_id, id3);
    }
    assert_eq!(leader_of(&[&n1, &n3]).await, 1);
    // Without `from`, a follower cannot tell a retry from a first request: it points
    // the caller at the leader rather than answer for it.
    let err = n1
        .admin()
        .await
        .transfer_leadership(admin::TransferLeadershipRequest { to: 0, from: 0 })
        .await
        .unwrap_err();
    assert!(err.message().contains("not the leader"), "{err:?}");
    assert_eq!(leader_of(&[&n1, &n3]).await, 1);
}

/// A follower removed by a single-member change holds its removal in its log, but the
/// leader stops replicating to it once the removal commits: it must still find out (by
/// asking its peers) and report Removed, not stay a follower of nobody forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_follower_learns_that_it_was_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let [n1, _n2, n3] = three_members(tmp.path()).await;
    put(&n1, "k", "v").await.unwrap();
    n1.admin()
        .await
        .remove_member(admin::RemoveMemberRequest {
            node_id: n3.addrs.node_id,
        })
        .await
        .unwrap();
    eventually(WAIT, "n3 to report Removed", || async {
        let s = n3.status().await?;
        (s.lifecycle == admin::Lifecycle::Removed as i32).then_some(())
    })
    .await;
    let (code, _) = n3.http_get("/readyz").await;
    assert_eq!(code, 503);
    // The other two carry on.
    put(&n1, "k", "v2").await.unwrap();
    let s = n1.status().await.unwrap();
    assert!(
        s.members.iter().all(|m| m.node_id != n3.addrs.node_id),
        "{s:?}"
    );
    assert_eq!(
        s.removed_node_ids,
        [n3.addrs.node_id],
        "Admin.Status lists removed ids"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_never_serves_a_stale_read_after_it_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let [n1, n2, n3] = three_members(tmp.path()).await;
    put(&n1, "k", "old").await.unwrap();

    // SIGSTOP behaves like a partition: the others elect a leader and move on.
    let signal = |sig: &str, node: &NodeProc| {
        let pid = node.pid().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP", &n1);
    let others = [&n2, &n3];
    put_via_leader(&others, "k", "new").await;

    // On SIGCONT the old leader first catches up on the ticks it missed, so its lease
    // has run out before it looks at the read: it answers the new value or refuses.
    signal("-CONT", &n1);
    for consistency in [ReadConsistency::Lease, ReadConsistency::Linearizable] {
        match get(&n1, "k", consistency).await {
            Ok(v) => assert_eq!(v.as_deref(), Some("new"), "{consistency:?} read went stale"),
            Err(e) => assert!(
                matches!(e.code(), Code::FailedPrecondition | Code::Unavailable),
                "{e:?}"
            ),
        }
    }
    // It rejoins as a follower and catches up.
    eventually(WAIT, "the resumed member to catch up", || async {
        let v = get(&n1, "k", ReadConsistency::Stale).await.ok()?;
        (v.as_deref() == Some("new")).then_some(())
    })
    .await;
    let all = [&n1, &n2, &n3];
    put_via_leader(&all, "k2", "v").await;
}
