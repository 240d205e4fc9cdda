//! The end of a nemesis run: final reads recorded into the history, then the verdicts —
//! linearizability of the whole history, no acknowledged write lost, members agreeing.

use std::time::{Duration, Instant};

use kuberaft_node::client::{Client, ReadConsistency};
use kuberaft_node::pb::kv::ReadConsistency as PbConsistency;
use kuberaft_raft::linearizability::{
    CheckResult, DEFAULT_BUDGET, KvInput, KvOperation, KvOutput, NO_RETURN, check_kv,
};

use super::workload::{Note, client_options};
use super::{Cluster, History};
use crate::cluster_support::{eventually, get};

/// The client id of the final reads in the history.
pub const FINAL: u64 = 0;

/// Reads every key linearizably (recording each attempt), then checks that every member
/// serves the same values as stale reads: their state machines agree. Returns the final
/// values by key.
pub async fn final_reads(
    cluster: &Cluster,
    history: &History,
    keys: &[String],
) -> Vec<Option<Vec<u8>>> {
    let endpoints: Vec<String> = cluster
        .members
        .iter()
        .map(|m| m.node.addrs.client.clone())
        .collect();
    let client = Client::connect(&endpoints, client_options()).unwrap();
    let mut values = Vec::new();
    for key in keys {
        let value = eventually(
            Duration::from_secs(30),
            &format!("a final read of {key}"),
            || async {
                let op = history.invoke(FINAL, KvInput::get(key.as_str()), "final get");
                match client.get(key.clone(), ReadConsistency::Linearizable).await {
                    Ok(kv) => {
                        let v = kv.map(|kv| kv.value.to_vec());
                        history.complete(op, KvOutput::Value(v.clone()));
                        Some(v)
                    }
                    Err(e) => {
                        history.fail_unknown(op, e.to_string());
                        None
                    }
                }
            },
        )
        .await;
        for m in &cluster.members {
            let stale = get(&m.node, key, PbConsistency::Stale)
                .await
                .unwrap_or_else(|e| panic!("stale read of {key} on {}: {e}", m.name));
            let stale = stale.map(String::into_bytes);
            assert_eq!(
                stale,
                value,
                "{} disagrees on {key} after convergence: {:?} vs {:?}",
                m.name,
                stale.as_deref().map(String::from_utf8_lossy),
                value.as_deref().map(String::from_utf8_lossy)
            );
        }
        values.push(value);
    }
    values
}

/// Checks the history: prints its counts, asserts that it is linearizable and that no
/// acknowledged write was lost.
pub fn check(test: &str, seed: u64, ops: &[KvOperation], notes: &[Note]) {
    let total = ops.len();
    let unknown = ops.iter().filter(|o| o.output == KvOutput::Unknown).count();
    let writes_acked = ops
        .iter()
        .filter(|o| matches!(o.output, KvOutput::Ok | KvOutput::Cas { succeeded: true }))
        .count();
    let unknown_writes = ops
        .iter()
        .filter(|o| o.output == KvOutput::Unknown && !matches!(o.input, KvInput::Get { .. }))
        .count();
    let started = Instant::now();
    let verdict = check_kv(ops, DEFAULT_BUDGET * 4);
    eprintln!(
        "HISTORY {test}: ops={total} ok={} unknown={unknown} (unknown writes {unknown_writes}), acknowledged writes={writes_acked}; checked in {}ms: {}",
        total - unknown,
        started.elapsed().as_millis(),
        short(&verdict)
    );
    if !verdict.is_ok() {
        explain(ops, notes, &verdict);
        panic!("{test} (NEMESIS_SEED={seed}): {verdict}");
    }
    if let Err(lost) = no_lost_acknowledged_write(ops) {
        panic!("{test} (NEMESIS_SEED={seed}): {lost}");
    }
}

fn short(verdict: &CheckResult) -> String {
    match verdict {
        CheckResult::Ok => "linearizable".into(),
        CheckResult::Illegal(_) => "NOT LINEARIZABLE".into(),
        CheckResult::Unknown { .. } => "UNDECIDED".into(),
    }
}

/// Prints the operations on the culprit's key around the point the search got stuck.
fn explain(ops: &[KvOperation], notes: &[Note], verdict: &CheckResult) {
    let violation = match verdict {
        CheckResult::Illegal(v) => v,
        CheckResult::Unknown {
            furthest: Some(v), ..
        } => v,
        _ => return,
    };
    let blocked = &ops[violation.blocked];
    let key = blocked.input.key();
    eprintln!(
        "operations on the key of the violation (index: client kind [call..ret] logical [call..ret] input -> output):"
    );
    let near: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].input.key() == key)
        .collect();
    let at = near
        .iter()
        .position(|&i| i == violation.blocked)
        .unwrap_or(0);
    for &i in &near[at.saturating_sub(25)..(at + 10).min(near.len())] {
        let (o, n) = (&ops[i], &notes[i]);
        let ret = n
            .ret
            .map_or("never".to_owned(), |r| format!("{:.3}s", r.as_secs_f64()));
        eprintln!(
            "{}{i}: c{} {} [{:.3}s..{ret}] logical [{}..{}] {} -> {}{}",
            if i == violation.blocked { ">>" } else { "  " },
            o.client,
            n.kind,
            n.call.as_secs_f64(),
            o.call,
            if o.ret == NO_RETURN {
                "never".to_owned()
            } else {
                o.ret.to_string()
            },
            show_input(&o.input),
            show_output(&o.output),
            n.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show_input(input: &KvInput) -> String {
    match input {
        KvInput::Put { key, value } => format!("put {}={}", text(key), text(value)),
        KvInput::Get { key } => format!("get {}", text(key)),
        KvInput::Delete { key } => format!("delete {}", text(key)),
        KvInput::Cas { key, expected, new } => format!(
            "cas {} {}->{}",
            text(key),
            expected.as_deref().map_or("<absent>".to_owned(), text),
            text(new)
        ),
    }
}

fn show_output(output: &KvOutput) -> String {
    match output {
        KvOutput::Ok => "ok".into(),
        KvOutput::Value(v) => v.as_deref().map_or("<absent>".to_owned(), text),
        KvOutput::Cas { succeeded } => format!("cas {}", if *succeeded { "ok" } else { "failed" }),
        KvOutput::Unknown => "unknown".into(),
    }
}

/// For every key's final read, every acknowledged write on that key must be what it read,
/// or be overwritten by a write that may have taken effect after it: one that wrote the
/// value read and did not return before the acknowledged write was called. Implied by
/// linearizability, and stated on its own so a lost write is named as such.
pub fn no_lost_acknowledged_write(ops: &[KvOperation]) -> Result<(), String> {
    let finals = ops.iter().enumerate().filter(|(_, o)| {
        o.client == FINAL && matches!(o.output, KvOutput::Value(_)) && o.ret != NO_RETURN
    });
    for (_, read) in finals {
        let KvOutput::Value(seen) = &read.output else {
            unreachable!()
        };
        let key = read.input.key();
        let written = |o: &KvOperation| -> Option<Vec<u8>> {
            match (&o.input, &o.output) {
                (KvInput::Put { value, .. }, KvOutput::Ok | KvOutput::Unknown) => {
                    Some(value.clone())
                }
                (
                    KvInput::Cas { new, .. },
                    KvOutput::Cas { succeeded: true } | KvOutput::Unknown,
                ) => Some(new.clone()),
                _ => None,
            }
        };
        for acked in ops.iter().filter(|o| {
            o.input.key() == key
                && o.ret < read.call
                && matches!(o.output, KvOutput::Ok | KvOutput::Cas { succeeded: true })
        }) {
            let value = written(acked).unwrap();
            if seen.as_ref() == Some(&value) {
                continue;
            }
            let overwritten = ops.iter().any(|o| {
                o.input.key() == key
                    && o.call < read.ret
                    && o.ret >= acked.call
                    && written(o).is_some_and(|v| seen.as_ref() == Some(&v))
            });
            if !overwritten {
                return Err(format!(
                    "acknowledged write lost: {:?} (client {}, logical [{}..{}]) is neither the final value {:?} nor overwritten by a later write of it",
                    acked.input,
                    acked.client,
                    acked.call,
                    acked.ret,
                    seen.as_deref().map(String::from_utf8_lossy)
                ));
            }
        }
    }
    Ok(())
}
