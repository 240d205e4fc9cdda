//! `raftctl` as a user runs it: the real binary against in-process fake members.

mod client_support;

use std::process::Output;

use client_support::admin::member;
use client_support::{Fake, Script, dead_addr};
use kuberaft_node::pb::admin::{Lifecycle, MemberKind, PrepareJoinResponse, Role, StatusResponse};

async fn raftctl(args: &[&str]) -> Output {
    raftctl_with_log(args, None).await
}

/// `raftctl` with `RUST_LOG` set to `log`, or unset.
async fn raftctl_with_log(args: &[&str], log: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_raftctl"));
    command
        .args(args)
        .env_remove("RAFTCTL_ENDPOINTS")
        .env_remove("RAFTCTL_ADMIN_TOKEN_FILE")
        .env_remove("RUST_LOG");
    if let Some(log) = log {
        command.env("RUST_LOG", log);
    }
    command.output().await.unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[tokio::test]
async fn client_raftctl_kv_commands_in_table_and_json() {
    let fake = Fake::start(Script::default()).await;
    let e = fake.addr.as_str();

    let out = raftctl(&["--endpoints", e, "put", "greeting", "hello"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "OK (revision 2)\n"); // revision 1 opened the session

    let out = raftctl(&["--endpoints", e, "get", "greeting"]).await;
    assert_eq!(stdout(&out), "hello\n");
    let out = raftctl(&["--endpoints", e, "-o", "json", "get", "greeting"]).await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["value"], "hello");
    assert_eq!(json["version"], 1);

    let out = raftctl(&["--endpoints", e, "get", "missing"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "raftctl: key \"missing\" not found\n");

    let out = raftctl(&["--endpoints", e, "cas", "greeting", "--expect", "nope", "x"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "not swapped: current value hello (mod_revision 2)\n"
    );
    let out = raftctl(&[
        "--endpoints",
        e,
        "cas",
        "greeting",
        "--expect-rev",
        "2",
        "bye",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));

    raftctl(&["--endpoints", e, "put", "gz", "z"]).await;
    let out = raftctl(&["--endpoints", e, "range", "g"]).await;
    assert_eq!(
        stdout(&out),
        // Every raftctl run opens its own session, which takes a revision too.
        "KEY       VALUE  MOD_REVISION  VERSION\ngreeting  bye    5             2\ngz        z      7             1\n"
    );
    let out = raftctl(&["--endpoints", e, "del", "gz"]).await;
    assert_eq!(stdout(&out), "deleted\n");
}

fn leader_status(addr: &str) -> StatusResponse {
    StatusResponse {
        node_id: 0xa1,
        name: "n1".into(),
        cluster_id: "c-1".into(),
        role: Role::Leader as i32,
        term: 2,
        leader_id: 0xa1,
        commit_index: 10,
        applied_index: 10,
        members: vec![member(0xa1, "n1", addr, MemberKind::Voter, 0)],
        ..StatusResponse::default()
    }
}

#[tokio::test]
async fn client_raftctl_member_add_then_status() {
    let leader = Fake::start(Script::default()).await;
    leader.state().admin.status = leader_status(&leader.addr);
    leader.state().admin.token = Some("s3cret".into());
    let joining = Fake::start(Script::default()).await;
    joining.state().admin.join_identity = PrepareJoinResponse {
        node_id: 0xb2,
        name: "n2".into(),
        peer_addr: "127.0.0.1:1".into(),
        client_addr: joining.addr.clone(),
    };
    joining.state().admin.token = Some("s3cret".into());
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "s3cret\n").unwrap();
    let token = token.path().to_str().unwrap();

    let add = [
        "--endpoints",
        &leader.addr,
        "--admin-token-file",
        token,
        "member",
        "add",
        &joining.addr,
    ];
    let out = raftctl(&add).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let steps: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(steps.first(), Some(&"PrepareJoin"), "{text}");
    assert_eq!(steps.get(1), Some(&"AddLearner"), "{text}");
    assert_eq!(steps.last(), Some(&"Promote"), "{text}");
    assert!(text.contains("caught up: n2"), "{text}");
    assert_eq!(joining.state().admin.log, ["prepare_join c-1"]);
    assert_eq!(
        leader.state().admin.log,
        ["add_learner 178 n2", "promote 178"]
    );

    // Run again, it finds n2 a voter already and stops there.
    let out = raftctl(&add).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().last(),
        Some("already a voter: n2 (index 12); nothing to do"),
        "{text}"
    );
    assert_eq!(
        leader.state().admin.log,
        ["add_learner 178 n2", "promote 178", "add_learner 178 n2"]
    );

    let out = raftctl(&[
        "--endpoints",
        &leader.addr,
        "--admin-token-file",
        token,
        "status",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("NAME  ID                ROLE      KIND   TERM  COMMIT"),
        "{text}"
    );
    assert!(
        text.contains("n2    00000000000000b2  follower  voter"),
        "{text}"
    );

    let out = raftctl(&[
        "--endpoints",
        &leader.addr,
        "--admin-token-file",
        token,
        "-o",
        "json",
        "status",
    ])
    .await;
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows[0]["role"], "leader");
    assert_eq!(rows[1]["name"], "n2");

    // Without the token the Admin API refuses, and raftctl says so in one line.
    let out = raftctl(&["--endpoints", &leader.addr, "status"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("raftctl: status: Unauthenticated"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[tokio::test]
async fn client_raftctl_says_in_one_line_that_no_member_answers() {
    let (a, b) = (dead_addr().await, dead_addr().await);
    let endpoints = format!("{a},{b}");
    let out = raftctl(&[
        "--endpoints",
        &endpoints,
        "--timeout",
        "300ms",
        "put",
        "k",
        "v",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("raftctl: no member answered"), "{err}");
    assert!(err.contains(&format!("(tried {a}, {b})")), "{err}");
    assert!(stdout(&out).is_empty());
}

#[tokio::test]
async fn client_raftctl_logs_its_retries_on_stderr_when_rust_log_asks() {
    let a = dead_addr().await;
    let args = ["--endpoints", &a, "--timeout", "200ms", "get", "k"];
    let out = raftctl_with_log(&args, Some("kuberaft_node::client=debug")).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let retries = err
        .lines()
        .filter(|l| l.contains("DEBUG") && l.contains("call failed; trying another member"))
        .count();
    assert!(retries >= 2, "{err}");
    assert!(
        !err.contains('\x1b'),
        "no colours when stderr is not a terminal: {err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("raftctl: no member answered"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[tokio::test]
async fn client_raftctl_usage_errors_exit_2() {
    let out = raftctl(&["--endpoints", "127.0.0.1:1", "--bogus", "status"]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = raftctl(&["get", "k"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--endpoints"));
}

/// A member removed from the cluster still answers Status, knowing no leader and only
/// its old view. Listed first among the endpoints, it must not hide the leader that the
/// other members know.
#[tokio::test]
async fn client_raftctl_finds_the_leader_past_a_removed_member() {
    let leader = Fake::start(Script::default()).await;
    leader.state().admin.status = leader_status(&leader.addr);
    let removed = Fake::start(Script {
        not_leader: Some(String::new()),
        ..Script::default()
    })
    .await;
    removed.state().admin.status = StatusResponse {
        node_id: 0xd4,
        name: "gone".into(),
        cluster_id: "c-1".into(),
        lifecycle: Lifecycle::Removed as i32,
        role: Role::Follower as i32,
        members: vec![member(0xd4, "gone", &removed.addr, MemberKind::Voter, 0)],
        ..StatusResponse::default()
    };
    let endpoints = format!("{},{}", removed.addr, leader.addr);

    let out = raftctl(&[
        "--endpoints",
        &endpoints,
        "--timeout",
        "5s",
        "member",
        "transfer-leader",
        "n1",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(leader.state().admin.log, ["transfer_leadership 161"]);
    assert!(removed.state().admin.log.is_empty());

    // The configuration shown is the leader's, not the removed member's old view.
    let out = raftctl(&["--endpoints", &endpoints, "-o", "json", "status"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["n1"], "{rows:?}");
}

/// `status` through only a member that lists no configuration (removed, or never in a
/// cluster) says so and what to do, rather than print an empty table.
#[tokio::test]
async fn client_raftctl_status_explains_a_member_outside_any_cluster() {
    for (lifecycle, expected) in [
        (Lifecycle::Removed, "was removed from its cluster"),
        (Lifecycle::Uninitialized, "start it with --bootstrap"),
    ] {
        let lone = Fake::start(Script {
            not_leader: Some(String::new()),
            ..Script::default()
        })
        .await;
        lone.state().admin.status = StatusResponse {
            node_id: 0xd4,
            name: "lone".into(),
            lifecycle: lifecycle as i32,
            ..StatusResponse::default()
        };
        let out = raftctl(&["--endpoints", &lone.addr, "status"]).await;
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains("lone (00000000000000d4)"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}
