//! The client tools against a real cluster: three `raft-node` processes on 127.0.0.1,
//! grown from one bootstrapped member with `raftctl member add`, then written, read,
//! benchmarked briefly, and administered: leadership transfer, snapshots, removal.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `raft-node` process, killed when dropped so a failing test leaves nothing behind.
struct NodeProcess {
    child: Child,
    client: String,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(dir: &Path, name: &str, bootstrap: bool) -> NodeProcess {
    let data = dir.join(name);
    let mut command = Command::new(env!("CARGO_BIN_EXE_raft-node"));
    command
        .args(["--name", name, "--data-dir"])
        .arg(&data)
        .args([
            "--peer-listen",
            "127.0.0.1:0",
            "--client-listen",
            "127.0.0.1:0",
        ])
        .args(["--http-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join(format!("{name}.log"))).unwrap(),
        ));
    if bootstrap {
        command.arg("--bootstrap");
    }
    let mut child = command.spawn().expect("raft-node starts");
    // The node writes its bound addresses once it listens: poll for them with a deadline.
    let path = data.join("addresses.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
        {
            break json["client"].as_str().unwrap().to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{name} exited with {status}; see {}",
                dir.join(format!("{name}.log")).display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not write {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    NodeProcess { child, client }
}

fn run(bin: &str, args: &[&str]) -> Output {
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn raftctl(args: &[&str]) -> String {
    String::from_utf8(run(env!("CARGO_BIN_EXE_raftctl"), args).stdout).unwrap()
}

#[test]
fn client_tools_grow_write_read_and_bench_a_real_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let dir: PathBuf = dir.path().to_owned();
    let n1 = start_node(&dir, "n1", true);
    let n2 = start_node(&dir, "n2", false);
    let n3 = start_node(&dir, "n3", false);

    for new in [&n2, &n3] {
        let steps = raftctl(&["--endpoints", &n1.client, "member", "add", &new.client]);
        assert!(
            steps.lines().last().unwrap().starts_with("Promote:"),
            "{steps}"
        );
    }
    let all = format!("{},{},{}", n1.client, n2.client, n3.client);

    let status = raftctl(&["--endpoints", &all, "-o", "json", "status"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&status).unwrap();
    assert_eq!(rows.len(), 3, "{status}");
    assert!(rows.iter().all(|r| r["kind"] == "voter"), "{status}");
    assert_eq!(
        rows.iter().filter(|r| r["role"] == "leader").count(),
        1,
        "{status}"
    );

    // A write through a follower's address is redirected; every consistency reads it.
    raftctl(&["--endpoints", &n3.client, "put", "greeting", "hello"]);
    for consistency in ["linearizable", "lease"] {
        let value = raftctl(&[
            "--endpoints",
            &all,
            "get",
            "greeting",
            "--consistency",
            consistency,
        ]);
        assert_eq!(value, "hello\n");
    }

    let out = run(
        env!("CARGO_BIN_EXE_raft-bench"),
        &[
            "--endpoints",
            &all,
            "--clients",
            "4",
            "--ops",
            "200",
            "--write-ratio",
            "0.5",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ops"], 200, "{report}");
    assert_eq!(report["errors"], 0, "{report}");

    let range = raftctl(&[
        "--endpoints",
        &all,
        "-o",
        "json",
        "range",
        "",
        "--limit",
        "3",
    ]);
    let kvs: Vec<serde_json::Value> = serde_json::from_str(&range).unwrap();
    assert_eq!(kvs.len(), 3, "{range}");

    // Leadership moves to a follower named on the command line.
    let rows = status_rows(&all);
    let role_of = |rows: &[serde_json::Value], name: &str| {
        let row = rows.iter().find(|r| r["name"] == name);
        row.map(|r| r["role"].as_str().unwrap().to_owned())
    };
    let old_leader = name_with_role(&rows, "leader");
    let target = name_with_role(&rows, "follower");
    let moved = raftctl(&[
        "--endpoints",
        &all,
        "-o",
        "json",
        "member",
        "transfer-leader",
        &target,
    ]);
    let moved: serde_json::Value = serde_json::from_str(&moved).unwrap();
    let target_id = rows.iter().find(|r| r["name"] == target).unwrap()["id"].clone();
    assert_eq!(moved["leader"], target_id, "{moved}");
    assert_eq!(
        role_of(&status_rows(&all), &target).as_deref(),
        Some("leader")
    );

    // Every member takes a snapshot at its applied index.
    let snaps = raftctl(&["--endpoints", &all, "-o", "json", "snapshot"]);
    let snaps: Vec<serde_json::Value> = serde_json::from_str(&snaps).unwrap();
    assert_eq!(snaps.len(), 3, "{snaps:?}");
    assert!(
        snaps.iter().all(|s| s["index"].as_u64() > Some(0)),
        "{snaps:?}"
    );

    // The old leader is removed by name; the other two carry on without it.
    let removed = raftctl(&["--endpoints", &all, "member", "remove", &old_leader]);
    assert!(
        removed.starts_with(&format!("removed {old_leader} (")),
        "{removed}"
    );
    let rest = [&n1, &n2, &n3]
        .iter()
        .zip(["n1", "n2", "n3"])
        .filter(|(_, name)| *name != old_leader)
        .map(|(n, _)| n.client.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let rows = status_rows(&rest);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(role_of(&rows, &old_leader), None, "{rows:?}");
    raftctl(&["--endpoints", &rest, "put", "after-removal", "yes"]);
    assert_eq!(
        raftctl(&["--endpoints", &rest, "get", "after-removal"]),
        "yes\n"
    );
}

fn status_rows(endpoints: &str) -> Vec<serde_json::Value> {
    let status = raftctl(&["--endpoints", endpoints, "-o", "json", "status"]);
    serde_json::from_str(&status).unwrap()
}

fn name_with_role(rows: &[serde_json::Value], role: &str) -> String {
    let row = rows.iter().find(|r| r["role"] == role);
    let row = row.unwrap_or_else(|| panic!("no {role} in {rows:?}"));
    row["name"].as_str().unwrap().to_owned()
}
