//! `raft-operator playground` end to end, with real processes: start 3 members and write;
//! scale to 5, then to 3; kill -9 a member process; trigger a snapshot; check every key is
//! still readable and the membership matches. Every wait polls with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kuberaft_node::client::{AdminClient, Client, ClientOptions, ReadConsistency};
use kuberaft_node::pb::admin::{MemberKind, StatusResponse};
use serde_json::Value;

/// `raft-node` and `raft-operator`, up to date (see `kuberaft_e2e::bin_dir`).
fn binaries() -> (PathBuf, PathBuf) {
    let dir = kuberaft_e2e::bin_dir();
    (dir.join("raft-node"), dir.join("raft-operator"))
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The running playground; SIGTERM (as Ctrl-C) on drop.
struct Playground {
    child: Option<Child>,
    dir: PathBuf,
    operator: PathBuf,
    log: PathBuf,
}

impl Playground {
    fn start(operator: &Path, node: &Path, dir: &Path, log: &Path) -> Playground {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(operator)
            .args(["playground", "--replicas", "3", "--data-dir"])
            .arg(dir)
            .arg("--raft-node")
            .arg(node)
            .args(["--tick-millis", "20", "--poll-millis", "100"])
            .args(["--snapshot-threshold", "100000"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting raft-operator playground");
        Playground {
            child: Some(child),
            dir: dir.to_path_buf(),
            operator: operator.to_path_buf(),
            log: log.to_path_buf(),
        }
    }

    fn command(&self, args: &[&str]) -> String {
        let out = Command::new(&self.operator)
            .arg("playground")
            .args(args)
            .arg("--data-dir")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "playground {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn status(&self) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(self.dir.join("status.json")).ok()?).ok()
    }

    fn endpoints(&self) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.join("endpoints")).ok()?;
        let eps: Vec<String> = text.trim().split(',').map(str::to_owned).collect();
        (!eps.is_empty() && !eps[0].is_empty()).then_some(eps)
    }

    /// SIGTERM, as Ctrl-C would; the playground stops its members and exits.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        kuberaft_e2e::stop_child(&mut child, "TERM", Duration::from_secs(20))
    }

    fn dump_log(&self) {
        if let Ok(text) = std::fs::read_to_string(&self.log) {
            eprintln!("---- playground output ----\n{text}---- end ----");
        }
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
            self.dump_log();
        }
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        call_timeout: Duration::from_secs(1),
        ..ClientOptions::default()
    }
}

/// The leader's status through the current endpoints, one short attempt.
async fn leader_status(pg: &Playground) -> Option<StatusResponse> {
    let eps = pg.endpoints()?;
    let admin = AdminClient::connect(&eps, options()).ok()?;
    tokio::time::timeout(Duration::from_secs(3), admin.leader_status())
        .await
        .ok()?
        .ok()
}

fn ids(s: &StatusResponse, kind: MemberKind) -> Vec<u64> {
    let mut ids: Vec<u64> = s
        .members
        .iter()
        .filter(|m| m.kind == kind as i32)
        .map(|m| m.node_id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Until the leader reports `n` voters and no learner, and the playground runs exactly
/// `n` members, all healthy voters, with no operation in flight. Returns the voter ids.
async fn converged(pg: &Playground, n: usize, timeout: Duration) -> Vec<u64> {
    eventually(timeout, &format!("{n} healthy voters"), || async {
        let s = leader_status(pg).await?;
        let voters = ids(&s, MemberKind::Voter);
        if voters.len() != n
            || !ids(&s, MemberKind::Learner).is_empty()
            || !ids(&s, MemberKind::OutgoingVoter).is_empty()
        {
            return None;
        }
        let st = pg.status()?;
        let members = st["members"].as_array()?;
        let running = members.iter().filter(|m| m["pid"].is_u64()).count();
        let mut recorded: Vec<u64> = members
            .iter()
            .filter_map(|m| m["node_id"].as_u64())
            .collect();
        recorded.sort_unstable();
        (st["phase"] == "Running"
            && st["healthy_voters"].as_u64() == Some(n as u64)
            && st.get("operation").is_none()
            && members.len() == n
            && running == n
            && recorded == voters
            && pg.endpoints()?.len() == n)
            .then_some(voters)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_scales_survives_kill_and_snapshots() {
    let (node, operator) = binaries();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pg");
    let mut pg = Playground::start(&operator, &node, &dir, &tmp.path().join("playground.log"));
    let started = Instant::now();

    // 1. Three members, then writes.
    let three = converged(&pg, 3, Duration::from_secs(30)).await;
    eprintln!("3 voters after {:?}", started.elapsed());
    let client = Client::connect(&pg.endpoints().unwrap(), ClientOptions::default()).unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("key-{i:02}")).collect();
    for k in &keys {
        client
            .put(k.clone(), format!("value of {k}"))
            .await
            .unwrap();
    }

    // 2. Scale to 5, then back to 3.
    assert_eq!(pg.command(&["scale", "5"]), "desired replicas: 5");
    let five = converged(&pg, 5, Duration::from_secs(40)).await;
    assert!(
        three.iter().all(|id| five.contains(id)),
        "scale-up keeps the members"
    );
    eprintln!("5 voters after {:?}", started.elapsed());
    pg.command(&["scale", "3"]);
    let back = converged(&pg, 3, Duration::from_secs(40)).await;
    eprintln!("3 voters again after {:?}", started.elapsed());

    // 3. kill -9 one member process: the playground restarts it on its data dir, so the
    // same member comes back and catches up.
    let st = pg.status().unwrap();
    let victim = &st["members"][1];
    let (name, pid) = (victim["name"].clone(), victim["pid"].as_u64().unwrap());
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(
        Duration::from_secs(30),
        "the killed member to come back",
        || async {
            let st = pg.status()?;
            let m = st["members"]
                .as_array()?
                .iter()
                .find(|m| m["name"] == name)?;
            let new_pid = m["pid"].as_u64()?;
            (new_pid != pid).then_some(())
        },
    )
    .await;
    let after_kill = converged(&pg, 3, Duration::from_secs(30)).await;
    assert_eq!(after_kill, back, "the restarted process is the same member");
    eprintln!("killed member back after {:?}", started.elapsed());

    // Then a snapshot, through the planner.
    let request = pg.command(&["snapshot"]);
    assert!(request.starts_with("snap-"), "{request}");
    eventually(
        Duration::from_secs(20),
        "the snapshot to be taken",
        || async { (pg.status()?["last_snapshot_request_id"] == request.as_str()).then_some(()) },
    )
    .await;
    let eps = pg.endpoints().unwrap();
    let admin = AdminClient::connect(&eps, options()).unwrap();
    for ep in &eps {
        let s = admin.status(ep).await.unwrap();
        assert!(s.snapshot_index > 0, "{ep} has no snapshot: {s:?}");
    }

    // 4. Every key is readable, and the membership matches.
    let client = Client::connect(&eps, ClientOptions::default()).unwrap();
    for k in &keys {
        let kv = client
            .get(k.clone(), ReadConsistency::Linearizable)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{k} is missing"));
        assert_eq!(kv.value.as_ref(), format!("value of {k}").as_bytes());
    }
    let leader = leader_status(&pg).await.unwrap();
    assert_eq!(ids(&leader, MemberKind::Voter), after_kill);
    let mut addrs: Vec<String> = leader
        .members
        .iter()
        .map(|m| m.client_addr.clone())
        .collect();
    addrs.sort();
    let mut eps_sorted = eps.clone();
    eps_sorted.sort();
    assert_eq!(addrs, eps_sorted, "D/endpoints lists exactly the members");

    // Ctrl-C (SIGTERM) stops every process the playground started.
    let pids: Vec<u64> = pg.status().unwrap()["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["pid"].as_u64())
        .collect();
    let exit = pg.stop().expect("the playground ran");
    assert!(exit.success(), "playground exit: {exit:?}");
    for pid in pids {
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "member process {pid} survived the playground");
    }
    eprintln!("done after {:?}", started.elapsed());
}
