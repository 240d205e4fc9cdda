//! The members of a nemesis run and the faults applied to them. Members that a fault
//! leaves unresponsive (paused, killed) are never asked anything: every status probe
//! has a short deadline, so a stopped process cannot stall the nemesis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kuberaft_node::client::admin_pb::{Lifecycle, MemberKind, Role, StatusResponse};
use kuberaft_node::client::{AdminClient, ClientOptions, JoinOptions};
use tokio::sync::watch;

use super::Journal;
use crate::cluster_support::{NodeProc, eventually};

/// What the nemesis did to a member last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Up,
    /// SIGSTOP: the process exists and holds its sockets but answers nothing.
    Paused,
    /// kill -9: no process.
    Down,
}

#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub node: NodeProc,
    pub state: State,
}

impl Member {
    pub fn id(&self) -> u64 {
        self.node.addrs.node_id
    }
}

/// The current configuration as processes, plus what it takes to report a failure.
#[derive(Debug)]
pub struct Cluster {
    pub test: &'static str,
    pub seed: u64,
    pub journal: Arc<Journal>,
    pub members: Vec<Member>,
    /// Removed members, killed, kept for their logs.
    pub retired: Vec<Member>,
    tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
    spawned: usize,
    endpoints: watch::Sender<Vec<String>>,
}

const PROBE: Duration = Duration::from_millis(500);
const WAIT: Duration = Duration::from_secs(30);

impl Cluster {
    /// A cluster of `voters` members: the first bootstraps, the others join through
    /// [`AdminClient::add_member`]. `extra` goes to every `raft-node`.
    pub async fn start(test: &'static str, seed: u64, voters: usize, extra: &[&str]) -> Self {
        let (endpoints, _) = watch::channel(Vec::new());
        let mut cluster = Cluster {
            test,
            seed,
            journal: Arc::new(Journal::new()),
            members: Vec::new(),
            retired: Vec::new(),
            tmp: Some(tempfile::tempdir().unwrap()),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            spawned: 0,
            endpoints,
        };
        let first = cluster.spawn(true).await;
        cluster.members.push(first);
        cluster.publish();
        cluster.wait_leader(WAIT).await;
        cluster
            .journal
            .note(format!("{} bootstrapped", cluster.members[0].name));
        for _ in 1..voters {
            cluster.add_member().await;
        }
        cluster
    }

    async fn spawn(&mut self, bootstrap: bool) -> Member {
        self.spawned += 1;
        let name = format!("n{}", self.spawned);
        let dir = self.tmp.as_ref().unwrap().path().join(&name);
        let mut args: Vec<&str> = vec!["--name", &name];
        if bootstrap {
            args.push("--bootstrap");
        }
        args.extend(self.extra.iter().map(String::as_str));
        let node = NodeProc::spawn(&dir, &args).await;
        Member {
            name,
            node,
            state: State::Up,
        }
    }

    /// The client addresses of the configuration, as the workload's clients see it.
    pub fn endpoints(&self) -> watch::Receiver<Vec<String>> {
        self.endpoints.subscribe()
    }

    fn publish(&self) {
        let addrs = self
            .members
            .iter()
            .map(|m| m.node.addrs.client.clone())
            .collect();
        self.endpoints.send_replace(addrs);
    }

    pub fn admin(&self) -> AdminClient {
        let up: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.state == State::Up)
            .map(|m| m.node.addrs.client.clone())
            .collect();
        let options = ClientOptions {
            call_timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(15),
            backoff_max: Duration::from_millis(200),
            ..ClientOptions::default()
        };
        AdminClient::connect(&up, options).unwrap()
    }

    /// A member's status if it is up and answers within a short deadline.
    pub async fn status(&self, i: usize) -> Option<StatusResponse> {
        let m = &self.members[i];
        if m.state != State::Up {
            return None;
        }
        tokio::time::timeout(PROBE, m.node.status())
            .await
            .ok()
            .flatten()
    }

    pub async fn statuses(&self) -> Vec<Option<StatusResponse>> {
        join_all((0..self.members.len()).map(|i| self.status(i))).await
    }

    /// The up member that says it leads in the highest term, if any.
    pub async fn leader(&self) -> Option<usize> {
        self.statuses()
            .await
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.filter(|s| s.role == Role::Leader as i32)
                    .map(|s| (s.term, i))
            })
            .max()
            .map(|(_, i)| i)
    }

    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        eventually(timeout, "a leader among the up members", || self.leader()).await
    }

    /// Up followers, by index.
    pub async fn followers(&self) -> Vec<usize> {
        let leader = self.leader().await;
        (0..self.members.len())
            .filter(|&i| Some(i) != leader && self.members[i].state == State::Up)
            .collect()
    }

    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.node.kill9();
        m.state = State::Down;
        self.journal
            .note(format!("kill -9 {} ({})", m.name, m.id()));
    }

    pub async fn restart(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.node.restart().await;
        m.state = State::Up;
        self.journal.note(format!("restarted {}", m.name));
    }

    pub fn pause(&mut self, i: usize) {
        signal("-STOP", &self.members[i].node);
        let m = &mut self.members[i];
        m.state = State::Paused;
        self.journal
            .note(format!("SIGSTOP {} ({})", m.name, m.id()));
    }

    pub fn resume(&mut self, i: usize) {
        signal("-CONT", &self.members[i].node);
        let m = &mut self.members[i];
        m.state = State::Up;
        self.journal.note(format!("SIGCONT {}", m.name));
    }

    /// Brings a member back whatever happened to it: SIGCONT or restart.
    pub async fn heal(&mut self, i: usize) {
        match self.members[i].state {
            State::Up => {}
            State::Paused => self.resume(i),
            State::Down => self.restart(i).await,
        }
    }

    pub async fn heal_all(&mut self) {
        for i in 0..self.members.len() {
            self.heal(i).await;
        }
    }

    /// Spawns a fresh node (empty data dir, no `--bootstrap`) and adds it as a voter
    /// with the join flow; returns its index and the leader's snapshot index when the
    /// learner was added (above 0: the log was compacted, so it had to be sent a
    /// snapshot).
    pub async fn add_member(&mut self) -> (usize, u64) {
        let new = self.spawn(false).await;
        let (name, addr) = (new.name.clone(), new.node.addrs.client.clone());
        self.journal
            .note(format!("spawned {name} ({}), joining", new.id()));
        let admin = self.admin();
        let options = JoinOptions {
            max_lag: 50,
            catch_up_timeout: Duration::from_secs(20),
            poll: Duration::from_millis(50),
        };
        let journal = self.journal.clone();
        let compacted = admin
            .leader_status()
            .await
            .map(|s| s.snapshot_index)
            .unwrap_or(0);
        let id = admin
            .add_member(&addr, &options, |step| {
                journal.note(format!("join {name}: {step}"))
            })
            .await
            .unwrap_or_else(|e| panic!("adding {name}: {e}"));
        assert_eq!(id, new.id());
        self.members.push(new);
        self.publish();
        (self.members.len() - 1, compacted)
    }

    /// Removes member `i` from the configuration through Admin.RemoveMember (it may be
    /// the leader, or down), then kills its process and retires it.
    pub async fn remove_member(&mut self, i: usize) {
        let (id, name) = (self.members[i].id(), self.members[i].name.clone());
        self.journal.note(format!("RemoveMember {name} ({id})"));
        let started = Instant::now();
        let resp = self
            .admin()
            .remove_member(id)
            .await
            .unwrap_or_else(|e| panic!("removing {name}: {e}"));
        assert!(
            !resp.members.iter().any(|m| m.node_id == id),
            "{name} still in {resp:?}"
        );
        self.journal.note(format!(
            "{name} removed at index {} after {}ms",
            resp.index,
            started.elapsed().as_millis()
        ));
        let mut m = self.members.remove(i);
        self.publish();
        if m.state == State::Up {
            // Once the change commits the leader stops replicating to it; it must still
            // learn of its removal from its peers.
            let removed = super::within(Duration::from_secs(10), || async {
                let s = tokio::time::timeout(PROBE, m.node.status()).await.ok()??;
                (s.lifecycle == Lifecycle::Removed as i32).then_some(())
            })
            .await;
            let seen = match removed {
                Some(()) => "yes".to_owned(),
                None => match tokio::time::timeout(PROBE, m.node.status())
                    .await
                    .ok()
                    .flatten()
                {
                    Some(s) => format!(
                        "not within 10s: lifecycle {:?} role {:?} term {} leader {} commit {} applied {} last {} config_index {}",
                        Lifecycle::try_from(s.lifecycle),
                        Role::try_from(s.role),
                        s.term,
                        s.leader_id,
                        s.commit_index,
                        s.applied_index,
                        s.last_index,
                        s.config_index
                    ),
                    None => "not within 10s (no status)".to_owned(),
                },
            };
            self.journal.note(format!("{name} reports Removed: {seen}"));
            assert_eq!(seen, "yes", "{name} must learn that it was removed");
        }
        m.node.kill9();
        m.state = State::Down;
        self.retired.push(m);
    }

    /// Waits until every member is up, one leader leads them all in one configuration
    /// (exactly the members the nemesis believes in, all voters, not joint), and every
    /// member applied everything the leader committed.
    pub async fn converge(&self, timeout: Duration) -> StatusResponse {
        let want: std::collections::BTreeSet<u64> = self.members.iter().map(Member::id).collect();
        eventually(timeout, "every member to converge", || async {
            let all = self.statuses().await;
            let all: Vec<StatusResponse> = all.into_iter().collect::<Option<_>>()?;
            let leader = all.iter().find(|s| s.role == Role::Leader as i32)?;
            let config: std::collections::BTreeSet<u64> =
                leader.members.iter().map(|m| m.node_id).collect();
            let converged = config == want
                && !leader.joint
                && leader
                    .members
                    .iter()
                    .all(|m| m.kind == MemberKind::Voter as i32)
                && leader.last_index == leader.commit_index
                && all.iter().all(|s| {
                    s.lifecycle == Lifecycle::Member as i32
                        && s.leader_id == leader.node_id
                        && s.applied_index == leader.commit_index
                });
            converged.then(|| leader.clone())
        })
        .await
    }

    /// On a failed test: the seed, the nemesis log and the tail of every node's log;
    /// the data dirs are kept.
    fn dump(&mut self) {
        let mut out = String::new();
        out.push_str(&format!(
            "\n===== NEMESIS FAILURE in {} — NEMESIS_SEED={} =====\n",
            self.test, self.seed
        ));
        out.push_str("----- nemesis log -----\n");
        for line in self.journal.lines() {
            out.push_str(&line);
            out.push('\n');
        }
        for m in self.members.iter().chain(&self.retired) {
            let log = m.node.dir.join("node.log");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!(
                "----- {} ({}, {:?}) last {} of {} lines of {} -----\n",
                m.name,
                m.id(),
                m.state,
                tail.len(),
                lines.len(),
                log.display()
            ));
            for line in tail {
                out.push_str(&strip_ansi(line));
                out.push('\n');
            }
        }
        if let Some(tmp) = self.tmp.take() {
            out.push_str(&format!("data dirs kept in {}\n", tmp.keep().display()));
        }
        eprintln!("{out}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        // Continue stopped processes so that dropping them (kill -9) reaps them cleanly.
        for m in &mut self.members {
            if m.state == State::Paused {
                signal("-CONT", &m.node);
            }
        }
    }
}

/// Sends a signal with kill(1): the workspace forbids unsafe code, so no libc::kill.
fn signal(sig: &str, node: &NodeProc) {
    let status = std::process::Command::new("kill")
        .args([sig, &node.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {sig} {} failed", node.pid());
}

/// The node's log has terminal colours; a failure report reads better without them.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // Skip to the end of the escape sequence: a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
