//! Histories of a simulated store whose true order is known: every operation takes effect
//! at one moment strictly between its call and its return, so the true order is a
//! linearization and the checker must accept it; a read corrupted to a value never
//! written must be rejected.

use std::collections::BTreeMap;
use std::mem;
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;

use super::{
    CheckResult, HistoryRecorder, KvInput, KvModel, KvOperation, KvOutput, OpId, check, check_kv,
};

const BUDGET: u64 = 1_000_000;

/// One scheduling decision: which client acts, and the dice that decide how.
#[derive(Clone, Debug)]
struct Action {
    client: usize,
    dice: u8,
    key: u8,
    value: u8,
}

#[derive(Debug)]
enum Client {
    Idle,
    /// Invoked; `applied` holds the output once the store executed it.
    Waiting {
        id: OpId,
        input: KvInput,
        applied: Option<KvOutput>,
    },
}

/// A reference store with clients whose requests take effect at a moment of the
/// scheduler's choosing, time out, or linger after a timeout and take effect later.
struct Sim {
    rec: HistoryRecorder,
    store: BTreeMap<Vec<u8>, Vec<u8>>,
    clients: Vec<Client>,
    /// Requests whose client gave up but that may still take effect.
    orphans: Vec<KvInput>,
    /// Whether every write writes a value of its own, as real tests do. Without it values
    /// come from a tiny domain, which makes histories far more ambiguous to check.
    unique_values: bool,
    /// Percent of the chances to time out that a waiting client takes.
    timeouts: u8,
}

impl Sim {
    fn new(clients: usize) -> Self {
        Self {
            rec: HistoryRecorder::new(),
            store: BTreeMap::new(),
            clients: (0..clients).map(|_| Client::Idle).collect(),
            orphans: Vec::new(),
            unique_values: false,
            timeouts: 10,
        }
    }

    fn request(&self, a: &Action) -> KvInput {
        let key = format!("k{}", a.key);
        let (value, expected) = if self.unique_values {
            let n = self.rec.len();
            let expected = match a.value % 2 {
                // Read-modify-write: expects what is there now (it may change meanwhile).
                0 => self.store.get(key.as_bytes()).cloned(),
                _ => Some(format!("v{}", n.saturating_sub(usize::from(a.value))).into_bytes()),
            };
            (format!("v{n}"), expected)
        } else {
            (
                format!("v{}", a.value),
                Some(format!("v{}", a.value / 2).into_bytes()),
            )
        };
        match a.dice % 8 {
            0..=2 => KvInput::get(key),
            3 | 4 => KvInput::put(key, value),
            5 => KvInput::delete(key),
            6 => KvInput::cas(key, expected, value),
            _ => KvInput::cas(key, None::<Vec<u8>>, value),
        }
    }

    /// The linearization point: executes `input` on the reference store.
    fn apply(&mut self, input: &KvInput) -> KvOutput {
        match input {
            KvInput::Put { key, value } => {
                self.store.insert(key.clone(), value.clone());
                KvOutput::Ok
            }
            KvInput::Get { key } => KvOutput::Value(self.store.get(key).cloned()),
            KvInput::Delete { key } => {
                self.store.remove(key);
                KvOutput::Ok
            }
            KvInput::Cas { key, expected, new } => {
                let succeeded = self.store.get(key) == expected.as_ref();
                if succeeded {
                    self.store.insert(key.clone(), new.clone());
                }
                KvOutput::Cas { succeeded }
            }
        }
    }

    fn act(&mut self, a: &Action) {
        let c = a.client % self.clients.len();
        let next = match mem::replace(&mut self.clients[c], Client::Idle) {
            Client::Idle => {
                let input = self.request(a);
                let id = self.rec.invoke(c as u64, input.clone());
                Client::Waiting {
                    id,
                    input,
                    applied: None,
                }
            }
            Client::Waiting {
                id,
                input,
                applied: None,
            } => match a.dice % 100 {
                roll if roll < self.timeouts => {
                    self.rec.fail_unknown(id);
                    self.orphans.push(input);
                    Client::Idle
                }
                ..60 => {
                    let out = self.apply(&input);
                    Client::Waiting {
                        id,
                        input,
                        applied: Some(out),
                    }
                }
                roll @ 60..80 if !self.orphans.is_empty() => {
                    // A request whose client gave up takes effect late, or is lost.
                    let orphan = self
                        .orphans
                        .swap_remove(usize::from(a.value) % self.orphans.len());
                    if roll < 70 {
                        self.apply(&orphan);
                    }
                    Client::Waiting {
                        id,
                        input,
                        applied: None,
                    }
                }
                _ => Client::Waiting {
                    id,
                    input,
                    applied: None,
                },
            },
            Client::Waiting {
                id,
                applied: Some(out),
                ..
            } => {
                if a.dice % 100 < self.timeouts {
                    self.rec.fail_unknown(id);
                } else {
                    self.rec.complete(id, out);
                }
                Client::Idle
            }
        };
        self.clients[c] = next;
    }

    fn finish(self) -> Vec<KvOperation> {
        self.rec.finish()
    }
}

fn simulate(clients: usize, actions: &[Action]) -> Vec<KvOperation> {
    let mut sim = Sim::new(clients);
    for a in actions {
        sim.act(a);
    }
    sim.finish()
}

fn actions(keys: u8, max_len: usize) -> impl Strategy<Value = Vec<Action>> {
    let action =
        (0..8usize, any::<u8>(), 0..keys, 0..4u8).prop_map(|(client, dice, key, value)| Action {
            client,
            dice,
            key,
            value,
        });
    prop::collection::vec(action, 1..max_len)
}

/// Indices of the reads whose value the client saw.
fn answered_reads(h: &[KvOperation]) -> Vec<usize> {
    (0..h.len())
        .filter(|&i| {
            matches!(
                (&h[i].input, &h[i].output),
                (KvInput::Get { .. }, KvOutput::Value(_))
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn true_executions_are_linearizable(clients in 1..6usize, actions in actions(3, 400)) {
        let h = simulate(clients, &actions);
        prop_assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
        prop_assert_eq!(check(&KvModel, &h, BUDGET), CheckResult::Ok);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_illegal(
        clients in 1..6usize,
        actions in actions(3, 400),
        pick in any::<Index>(),
    ) {
        let mut h = simulate(clients, &actions);
        let reads = answered_reads(&h);
        prop_assume!(!reads.is_empty());
        let corrupt = reads[pick.index(reads.len())];
        h[corrupt].output = KvOutput::Value(Some(b"never written".to_vec()));
        match check_kv(&h, BUDGET) {
            CheckResult::Illegal(v) => {
                let key = String::from_utf8(h[corrupt].input.key().to_vec()).unwrap();
                prop_assert_eq!(v.partition, format!("key {key:?}"));
            }
            other => prop_assert!(false, "expected a violation, got {}", other),
        }
    }
}

/// A fixed schedule from a seed (xorshift64*), with every written value distinct as in
/// real tests, until the history has `ops` operations.
fn schedule(seed: u64, keys: u8, timeouts: u8, ops: usize) -> Vec<KvOperation> {
    let mut x = seed;
    let mut sim = Sim::new(8);
    sim.unique_values = true;
    sim.timeouts = timeouts;
    while sim.rec.len() < ops {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        let a = Action {
            client: usize::from(r[0]),
            dice: r[1],
            key: r[2] % keys,
            value: r[3] % 8,
        };
        sim.act(&a);
    }
    sim.finish()
}

fn corrupt_a_read(h: &mut [KvOperation], which: usize) -> usize {
    let reads = answered_reads(h);
    let corrupt = reads[which % reads.len()];
    h[corrupt].output = KvOutput::Value(Some(b"never written".to_vec()));
    corrupt
}

#[test]
fn large_history_checks_within_budget() {
    let mut h = schedule(0x5eed, 10, 3, 2000);
    let started = Instant::now();
    assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
    eprintln!(
        "2000 ops, 10 keys, 8 clients: linearizable in {:?}",
        started.elapsed()
    );

    let corrupt = corrupt_a_read(&mut h, 1500);
    let started = Instant::now();
    let CheckResult::Illegal(v) = check_kv(&h, BUDGET) else {
        panic!("corrupted read missed")
    };
    eprintln!(
        "... with a corrupted read: illegal in {:?}",
        started.elapsed()
    );
    assert_eq!(v.blocked, corrupt, "{v}");
}

#[test]
fn thousands_of_operations_on_one_key_check_within_budget() {
    let h = schedule(7, 1, 2, 3000);
    let started = Instant::now();
    assert_eq!(check_kv(&h, BUDGET), CheckResult::Ok);
    eprintln!(
        "3000 ops on one key: linearizable in {:?}",
        started.elapsed()
    );
}

#[test]
fn an_undecided_search_still_points_at_the_culprit() {
    // Many timeouts make refuting every order expensive; the furthest point the search
    // reached is the corrupted read all the same.
    let mut h = schedule(10, 1, 2, 3000);
    let corrupt = corrupt_a_read(&mut h, 10 * 7919);
    match check_kv(&h, 300_000) {
        CheckResult::Unknown {
            furthest: Some(v), ..
        }
        | CheckResult::Illegal(v) => {
            assert_eq!(v.blocked, corrupt, "{v}");
        }
        other => panic!("{other}"),
    }
}
