//! The clients of a nemesis run. Each task owns a [`Client`] and loops over a small key
//! space (so operations conflict) doing reads, puts and compare-and-swaps; every
//! operation is invoked in the [`History`] before it is sent, completed on a definite
//! answer, and failed as unknown otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kuberaft_node::client::{Client, ClientOptions, Expected, ReadConsistency};
use kuberaft_raft::linearizability::{HistoryRecorder, KvInput, KvOperation, KvOutput, OpId};
use kuberaft_raft::rng::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Short deadlines keep the history moving through faults: an operation that cannot
/// finish within about two seconds is recorded as unknown and the client moves on.
pub fn client_options() -> ClientOptions {
    ClientOptions {
        call_timeout: Duration::from_millis(1000),
        retry_budget: Duration::from_millis(2000),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        max_sessions: 4,
        ..ClientOptions::default()
    }
}

/// Per mille of operations of each kind; the rest are puts.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub linearizable_reads: u64,
    pub lease_reads: u64,
    pub cas: u64,
}

/// What the checker does not see but a person reading a violation needs.
#[derive(Clone, Debug)]
pub struct Note {
    pub kind: &'static str,
    pub call: Duration,
    pub ret: Option<Duration>,
    pub error: Option<String>,
}

/// The shared recorder: one logical clock for every client.
#[derive(Debug)]
pub struct History {
    pub start: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rec: HistoryRecorder,
    notes: Vec<Note>,
    /// (invoked, acknowledged) of every acknowledged write.
    acks: Vec<(Instant, Instant)>,
}

/// An invoked operation: its recorder id and its index in the history.
#[derive(Debug)]
pub struct Pending(OpId, usize);

impl History {
    pub fn new(start: Instant) -> Arc<Self> {
        Arc::new(Self {
            start,
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn invoke(&self, client: u64, input: KvInput, kind: &'static str) -> Pending {
        let mut inner = self.lock();
        let id = inner.rec.invoke(client, input);
        let index = inner.notes.len();
        inner.notes.push(Note {
            kind,
            call: self.start.elapsed(),
            ret: None,
            error: None,
        });
        Pending(id, index)
    }

    pub fn complete(&self, op: Pending, output: KvOutput) {
        let now = Instant::now();
        let mut inner = self.lock();
        let is_ack = matches!(output, KvOutput::Ok | KvOutput::Cas { succeeded: true });
        inner.rec.complete(op.0, output);
        let note = &mut inner.notes[op.1];
        note.ret = Some(now - self.start);
        let invoked = self.start + note.call;
        if is_ack {
            inner.acks.push((invoked, now));
        }
    }

    pub fn fail_unknown(&self, op: Pending, error: String) {
        let mut inner = self.lock();
        inner.rec.fail_unknown(op.0);
        inner.notes[op.1].error = Some(error);
    }

    /// The first write acknowledged after `t` that a member other than one which led
    /// at `t` must have answered: one invoked after `t`, or one in flight at `t` that
    /// returned more than 50 ms later (an answer already on its way at `t` is recorded
    /// within microseconds, while a retry through a new leader takes an election).
    pub fn first_ack_after(&self, t: Instant) -> Option<Instant> {
        let inner = self.lock();
        inner
            .acks
            .iter()
            .filter(|(call, ret)| *call > t || *ret > t + Duration::from_millis(50))
            .map(|(_, ret)| *ret)
            .min()
    }

    pub fn acks(&self) -> usize {
        self.lock().acks.len()
    }

    pub fn finish(&self) -> (Vec<KvOperation>, Vec<Note>) {
        let mut inner = self.lock();
        let Inner { rec, notes, .. } = std::mem::take(&mut *inner);
        (rec.finish(), notes)
    }
}

/// Client tasks running until [`Workload::stop`].
#[derive(Debug)]
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workload {
    /// `clients` tasks over `keys`, each with its own [`Client`] that is rebuilt when
    /// the configuration (`endpoints`) changes.
    pub fn start(
        seed: u64,
        clients: u64,
        keys: &[String],
        mix: Mix,
        endpoints: watch::Receiver<Vec<String>>,
        history: Arc<History>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (1..=clients)
            .map(|c| {
                let task = Task {
                    id: c,
                    rng: Rng::new(seed.wrapping_add(c.wrapping_mul(0x9E37_79B9))),
                    keys: keys.to_vec(),
                    mix,
                    endpoints: endpoints.clone(),
                    history: history.clone(),
                    stop: stop.clone(),
                    seq: 0,
                    known: std::collections::HashMap::new(),
                };
                tokio::spawn(task.run())
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops every client after its current operation and waits for them.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("a client task panicked");
        }
    }
}

struct Task {
    id: u64,
    rng: Rng,
    keys: Vec<String>,
    mix: Mix,
    endpoints: watch::Receiver<Vec<String>>,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
    seq: u64,
    /// The last value this client saw per key: what its compare-and-swaps expect.
    known: std::collections::HashMap<String, Option<Bytes>>,
}

/// A bound on one operation on top of the client's retry budget.
const OP_DEADLINE: Duration = Duration::from_secs(3);

impl Task {
    async fn run(mut self) {
        let mut client = self.connect();
        while !self.stop.load(Ordering::SeqCst) {
            if self.endpoints.has_changed().unwrap_or(false) {
                client = self.connect();
            }
            let key = self.keys[self.rng.range(0, self.keys.len() as u64) as usize].clone();
            let roll = self.rng.range(0, 1000);
            let m = self.mix;
            if roll < m.linearizable_reads {
                self.read(&client, key, ReadConsistency::Linearizable).await;
            } else if roll < m.linearizable_reads + m.lease_reads {
                self.read(&client, key, ReadConsistency::Lease).await;
            } else if roll < m.linearizable_reads + m.lease_reads + m.cas {
                self.cas(&client, key).await;
            } else {
                self.put(&client, key).await;
            }
            // Pacing: keeps the history (and the checker's work) bounded and leaves
            // CPU to the nodes on a small machine.
            tokio::time::sleep(Duration::from_millis(self.rng.range(2, 12))).await;
        }
    }

    fn connect(&mut self) -> Client {
        let endpoints = self.endpoints.borrow_and_update().clone();
        Client::connect(&endpoints, client_options()).expect("valid endpoints")
    }

    fn next_value(&mut self) -> String {
        self.seq += 1;
        format!("c{}-{}", self.id, self.seq)
    }

    async fn read(&mut self, client: &Client, key: String, consistency: ReadConsistency) {
        let kind = match consistency {
            ReadConsistency::Lease => "get(lease)",
            _ => "get",
        };
        let op = self
            .history
            .invoke(self.id, KvInput::get(key.as_str()), kind);
        let result = tokio::time::timeout(OP_DEADLINE, client.get(key.clone(), consistency)).await;
        match result {
            Ok(Ok(kv)) => {
                let value = kv.map(|kv| kv.value);
                self.known.insert(key, value.clone());
                self.history
                    .complete(op, KvOutput::Value(value.map(|v| v.to_vec())));
            }
            Ok(Err(e)) => self.history.fail_unknown(op, e.to_string()),
            Err(_) => self.history.fail_unknown(op, "deadline".into()),
        }
    }

    async fn put(&mut self, client: &Client, key: String) {
        let value = self.next_value();
        let op = self
            .history
            .invoke(self.id, KvInput::put(key.as_str(), value.as_str()), "put");
        let result =
            tokio::time::timeout(OP_DEADLINE, client.put(key.clone(), value.clone())).await;
        match result {
            Ok(Ok(_)) => {
                self.known.insert(key, Some(Bytes::from(value)));
                self.history.complete(op, KvOutput::Ok);
            }
            // Every failure of a write is in doubt: the entry may be in some log.
            Ok(Err(e)) => self.history.fail_unknown(op, e.to_string()),
            Err(_) => self.history.fail_unknown(op, "deadline".into()),
        }
    }

    async fn cas(&mut self, client: &Client, key: String) {
        let expected = self.known.get(&key).cloned().flatten();
        let new = self.next_value();
        let op = self.history.invoke(
            self.id,
            KvInput::cas(
                key.as_str(),
                expected.as_ref().map(|b| b.to_vec()),
                new.as_str(),
            ),
            "cas",
        );
        let want = match &expected {
            Some(v) => Expected::Value(v.clone()),
            None => Expected::Absent,
        };
        let result = tokio::time::timeout(
            OP_DEADLINE,
            client.compare_and_swap(key.clone(), want, Some(Bytes::from(new.clone()))),
        )
        .await;
        match result {
            Ok(Ok(outcome)) => {
                let seen = match outcome.succeeded {
                    true => Some(Bytes::from(new)),
                    false => outcome.current.map(|kv| kv.value),
                };
                self.known.insert(key, seen);
                self.history.complete(
                    op,
                    KvOutput::Cas {
                        succeeded: outcome.succeeded,
                    },
                );
            }
            Ok(Err(e)) => self.history.fail_unknown(op, e.to_string()),
            Err(_) => self.history.fail_unknown(op, "deadline".into()),
        }
    }
}
