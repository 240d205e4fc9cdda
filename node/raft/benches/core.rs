//! The consensus core alone, shaped like openraft's `benchmarks/minimal`: three nodes in
//! one process, in-memory, no network and no disk. A proposer proposes, waits until its
//! entry is applied on the leader, and proposes again; `N` proposers keep `N` proposals in
//! flight. Criterion reports commits per second.

use std::collections::VecDeque;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kuberaft_raft::{Config, InitialState, Message, RawNode, Role};

struct Cluster {
    nodes: Vec<RawNode>,
    queue: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Self {
        let init = InitialState::bootstrap(&[1, 2, 3]);
        let nodes = (1..=3)
            .map(|id| {
                let mut cfg = Config::new(id);
                cfg.max_entries_per_msg = 4096;
                cfg.max_inflight_msgs = 4096;
                RawNode::new(cfg, init.clone()).expect("valid config")
            })
            .collect();
        let mut c = Cluster {
            nodes,
            queue: VecDeque::new(),
        };
        c.nodes[0].campaign();
        loop {
            let applied = c.pump();
            if c.nodes[0].status().role == Role::Leader && applied == 0 {
                return c;
            }
        }
    }

    /// Processes every Ready and delivers every message until quiet; returns the number
    /// of entries the leader applied.
    fn pump(&mut self) -> usize {
        let mut applied = 0;
        loop {
            let mut progress = false;
            for (i, n) in self.nodes.iter_mut().enumerate() {
                while n.has_ready() {
                    progress = true;
                    let rd = n.ready();
                    if i == 0 {
                        applied += rd.committed_entries.len();
                    }
                    self.queue.extend(rd.messages.iter().cloned());
                    self.queue.extend(rd.persisted_messages.iter().cloned());
                    n.advance(&rd);
                }
            }
            while let Some(m) = self.queue.pop_front() {
                progress = true;
                let to = m.to as usize - 1;
                self.nodes[to].step(m).expect("addressed correctly");
            }
            if !progress {
                return applied;
            }
        }
    }

    /// Commits `total` entries with `proposers` in flight at a time.
    fn run(&mut self, total: usize, proposers: usize) {
        let payload = vec![7u8; 256];
        let (mut proposed, mut done, mut in_flight) = (0, 0, 0);
        while done < total {
            while in_flight < proposers && proposed < total {
                self.nodes[0]
                    .propose(payload.clone())
                    .expect("node 1 leads");
                proposed += 1;
                in_flight += 1;
            }
            let n = self.pump();
            done += n;
            in_flight -= n.min(in_flight);
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_3_nodes");
    let total = 2048;
    group.throughput(Throughput::Elements(total as u64));
    for proposers in [1, 64, 256] {
        group.bench_with_input(
            BenchmarkId::from_parameter(proposers),
            &proposers,
            |b, &p| {
                let mut cluster = Cluster::new();
                b.iter(|| cluster.run(total, p));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
