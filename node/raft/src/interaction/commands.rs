//! The script commands: parse one command line, drive the [`Env`], return its output.
//! See the module documentation of [`crate::interaction`] for the list.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::args::{ArgResult, Args, parse_ids, unquote};
use super::env::{Env, Filter};
use super::print;
use crate::config::Config;
use crate::raw_node::InitialState;
use crate::types::*;

/// Runs one command. `Err` means the script is wrong (unknown command, bad argument,
/// unknown or crashed node), not that the core refused something: refusals are output.
pub(crate) fn exec(env: &mut Env<'_>, line: &str) -> ArgResult<String> {
    let a = Args::parse(line)?;
    let mut out = String::new();
    let o = &mut out;
    match a.cmd.as_str() {
        "add-nodes" => add_nodes(env, &a, o)?,
        "campaign" => {
            a.allow(&[])?;
            env.raw(a.id(0)?)?.campaign();
            o.push_str("ok\n");
        }
        "tick" => {
            a.allow(&[])?;
            let n = a.pos.get(1).ok_or("`tick ID N`")?;
            let n = super::args::parse_u64("N", n)?;
            let raw = env.raw(a.id(0)?)?;
            (0..n).for_each(|_| raw.tick());
            o.push_str("ok\n");
        }
        "tick-heartbeat" => {
            a.allow(&[])?;
            let id = a.id(0)?;
            let n = env.config(id)?.heartbeat_tick;
            let raw = env.raw(id)?;
            (0..n).for_each(|_| raw.tick());
            o.push_str("ok\n");
        }
        "tick-election" => {
            a.allow(&[])?;
            tick_election(env, a.id(0)?, o)?;
        }
        "propose" => {
            a.allow(&[])?;
            let data = a.pos.get(1).ok_or("`propose ID data`")?;
            let r = env.raw(a.id(0)?)?.propose(unquote(data).into_bytes());
            proposal(r, o);
        }
        "propose-conf-change" => {
            a.allow(&[])?;
            let cc = conf_change(&a.pos[1..])?;
            let r = env.raw(a.id(0)?)?.propose_conf_change(cc);
            proposal(r, o);
        }
        "transfer-leader" => {
            a.allow(&["to"])?;
            let to = a.u64_kv("to")?.ok_or("`transfer-leader ID to=X`")?;
            done(env.raw(a.id(0)?)?.transfer_leader(to), o);
        }
        "report-unreachable" => {
            a.allow(&["to"])?;
            let to = a.u64_kv("to")?.ok_or("`report-unreachable ID to=X`")?;
            env.raw(a.id(0)?)?.report_unreachable(to);
            o.push_str("ok\n");
        }
        "read-index" => {
            a.allow(&["ctx", "mode"])?;
            let ctx = a.str_kv("ctx").ok_or("`read-index ID ctx=...`")?;
            let mode = match a.get("mode") {
                None | Some("safe") => ReadMode::Safe,
                Some("lease") => ReadMode::Lease,
                Some(m) => return Err(format!("unknown read mode `{m}`")),
            };
            done(env.raw(a.id(0)?)?.read_index(ctx.into_bytes(), mode), o);
        }
        "compact" => {
            a.allow(&[])?;
            let index = super::args::parse_u64("index", a.pos.get(1).ok_or("`compact ID INDEX`")?)?;
            env.compact(a.id(0)?, index, o)?;
        }
        "process-ready" | "process-ready-async" => {
            a.allow(&[])?;
            let sync = a.cmd == "process-ready";
            let ids = a.ids(&[])?;
            if ids.is_empty() {
                return Err(format!("`{} ID...` needs at least one id", a.cmd));
            }
            for id in ids {
                env.process_ready(id, sync, false, o)?;
            }
        }
        "persist" => {
            a.allow(&["count"])?;
            let count = a.u64_kv("count")?.map_or(usize::MAX, |c| c as usize);
            for id in a.ids(&[])? {
                env.persist(id, count, false, o)?;
            }
        }
        "deliver-msgs" => {
            a.allow(&["drop", "from", "type", "count"])?;
            let to = a.ids(&["reverse", "dup"])?;
            let f = Filter {
                to: (!to.is_empty()).then(|| to.into_iter().collect()),
                from: a.u64_kv("from")?,
                kind: a.get("type").map(str::to_string),
                drop: a.ids_kv("drop")?.unwrap_or_default().into_iter().collect(),
                reverse: a.flag("reverse"),
                dup: a.flag("dup"),
                count: a.u64_kv("count")?.map_or(usize::MAX, |c| c as usize),
            };
            if !env.deliver(&f, o) {
                o.push_str("no messages\n");
            }
        }
        "msgs" => {
            a.allow(&[])?;
            env.print_queue(o);
        }
        "stabilize" => {
            a.allow(&[])?;
            let ids = a.ids(&[])?;
            let ids = (!ids.is_empty()).then(|| ids.into_iter().collect());
            env.stabilize(ids, o)?;
            if o.is_empty() {
                o.push_str("ok (nothing to do)\n");
            }
        }
        "partition" => {
            a.allow(&[])?;
            let groups: Vec<BTreeSet<NodeId>> = a
                .pos
                .iter()
                .map(|g| parse_ids(g).map(|v| v.into_iter().collect()))
                .collect::<ArgResult<_>>()?;
            let mut groups = groups;
            let listed: BTreeSet<NodeId> = groups.iter().flatten().copied().collect();
            for id in env.ids() {
                if !listed.contains(&id) {
                    groups.push([id].into());
                }
            }
            let text: Vec<String> = groups.iter().map(print::ids).collect();
            let _ = writeln!(o, "partitioned: {}", text.join(" "));
            env.set_partition(Some(groups));
        }
        "heal" => {
            a.allow(&[])?;
            env.set_partition(None);
            o.push_str("ok\n");
        }
        "crash" => {
            a.allow(&[])?;
            env.crash(a.id(0)?, o)?;
        }
        "restart" => {
            a.allow(&[])?;
            env.restart(a.id(0)?, o)?;
        }
        "status" => {
            a.allow(&[])?;
            let st = env.raw(a.id(0)?)?.status();
            print::status(&st, o);
        }
        "raft-log" => {
            a.allow(&[])?;
            env.raft_log(a.id(0)?, o)?;
        }
        "raft-state" => {
            a.allow(&[])?;
            env.raft_state(o);
        }
        "state-machine" => {
            a.allow(&[])?;
            env.state_machine(a.id(0)?, o)?;
        }
        other => return Err(format!("unknown command `{other}`")),
    }
    Ok(out)
}

fn proposal(r: crate::Result<(u64, u64)>, o: &mut String) {
    match r {
        Ok((index, term)) => {
            let _ = writeln!(o, "ok {term}/{index}");
        }
        Err(e) => {
            let _ = writeln!(o, "{}", print::error(&e));
        }
    }
}

fn done(r: crate::Result<()>, o: &mut String) {
    match r {
        Ok(()) => o.push_str("ok\n"),
        Err(e) => {
            let _ = writeln!(o, "{}", print::error(&e));
        }
    }
}

/// `v4` adds voter 4, `l5` learner 5, `r3` removes 3; several make one (joint) change;
/// `leave` alone leaves a joint configuration.
fn conf_change(items: &[String]) -> ArgResult<ConfChange> {
    if items == ["leave"] {
        return Ok(ConfChange::leave_joint());
    }
    let changes = items
        .iter()
        .map(|it| {
            let (k, n) = it.split_at(1.min(it.len()));
            let kind = match k {
                "v" => ConfChangeKind::AddVoter,
                "l" => ConfChangeKind::AddLearner,
                "r" => ConfChangeKind::Remove,
                _ => {
                    return Err(format!(
                        "conf change item `{it}` is not v<id>, l<id> or r<id>"
                    ));
                }
            };
            Ok(ConfChangeSingle {
                kind,
                node: super::args::parse_u64("node id", n)?,
            })
        })
        .collect::<ArgResult<Vec<_>>>()?;
    Ok(ConfChange {
        changes,
        leave_joint: false,
    })
}

/// `add-nodes N [voters=(..) [learners=(..)] [index=I]] [config...]`: N new nodes with the
/// next free ids. With `voters`, every one starts from the same bootstrap configuration
/// (a committed entry 1/1, or with `index` a snapshot 1/I); without, they start empty.
fn add_nodes(env: &mut Env<'_>, a: &Args, o: &mut String) -> ArgResult<()> {
    a.allow(&[
        "voters",
        "learners",
        "index",
        "election",
        "heartbeat",
        "lease-margin",
        "max-entries",
        "max-bytes",
        "max-inflight",
        "max-inflight-bytes",
        "pre-vote",
        "check-quorum",
        "seed",
    ])?;
    let n = super::args::parse_u64("N", a.pos.first().ok_or("`add-nodes N ...`")?)?;
    let voters = a.ids_kv("voters")?;
    let learners = a.ids_kv("learners")?.unwrap_or_default();
    let index = a.u64_kv("index")?;
    if voters.is_none() && (index.is_some() || !learners.is_empty()) {
        return Err("`learners=` and `index=` need `voters=`".to_string());
    }
    for _ in 0..n {
        let id = env.next_id();
        let mut cfg = Config::new(id);
        configure(&mut cfg, a)?;
        let state = match &voters {
            None => InitialState::default(),
            Some(v) => bootstrap(v, &learners, index),
        };
        env.add_node(cfg, state, o)?;
    }
    Ok(())
}

fn bootstrap(voters: &[NodeId], learners: &[NodeId], index: Option<u64>) -> InitialState {
    let mut st = InitialState::bootstrap(voters);
    if let Some(EntryPayload::ConfChange(cc)) = st.entries.first_mut().map(|e| &mut e.payload) {
        for &node in learners {
            cc.changes.push(ConfChangeSingle {
                kind: ConfChangeKind::AddLearner,
                node,
            });
        }
    }
    if let Some(index) = index {
        let mut membership = Membership::with_voters(voters.iter().copied());
        membership.learners = learners.iter().copied().collect();
        st = InitialState {
            hard_state: HardState {
                term: 1,
                vote: NO_NODE,
                commit: index,
            },
            snapshot: Snapshot {
                meta: SnapshotMeta {
                    index,
                    term: 1,
                    membership,
                },
                data: Vec::new(),
            },
            entries: Vec::new(),
            applied: index,
        };
    }
    st
}

fn configure(cfg: &mut Config, a: &Args) -> ArgResult<()> {
    let u32_of = |k: &str| -> ArgResult<Option<u32>> {
        a.u64_kv(k)?
            .map(|v| u32::try_from(v).map_err(|_| format!("`{k}` too large")))
            .transpose()
    };
    if let Some(v) = u32_of("election")? {
        cfg.election_tick = v;
    }
    if let Some(v) = u32_of("heartbeat")? {
        cfg.heartbeat_tick = v;
    }
    if let Some(v) = u32_of("lease-margin")? {
        cfg.lease_margin_ticks = v;
    }
    if let Some(v) = a.u64_kv("max-entries")? {
        cfg.max_entries_per_msg = v;
    }
    if let Some(v) = a.u64_kv("max-bytes")? {
        cfg.max_bytes_per_msg = v;
    }
    if let Some(v) = a.u64_kv("max-inflight")? {
        cfg.max_inflight_msgs = v as usize;
    }
    if let Some(v) = a.u64_kv("max-inflight-bytes")? {
        cfg.max_inflight_bytes = v;
    }
    if let Some(v) = a.bool_kv("pre-vote")? {
        cfg.pre_vote = v;
    }
    if let Some(v) = a.bool_kv("check-quorum")? {
        cfg.check_quorum = v;
    }
    if let Some(v) = a.u64_kv("seed")? {
        cfg.seed = v;
    }
    Ok(())
}

/// A leader ticks one election timeout (a check-quorum round). Any other node ticks until
/// its election timer fires, which the output reports with the number of ticks it took,
/// so a script shows exactly when the (randomized, seeded) timer expires.
fn tick_election(env: &mut Env<'_>, id: NodeId, o: &mut String) -> ArgResult<()> {
    let e = env.config(id)?.election_tick;
    let raw = env.raw(id)?;
    let before = raw.status();
    if before.role == Role::Leader {
        (0..e).for_each(|_| raw.tick());
        o.push_str("ok\n");
        return Ok(());
    }
    let had_ready = raw.has_ready();
    for n in 1..=2 * e {
        raw.tick();
        let st = raw.status();
        if st.role != before.role || st.term != before.term || (!had_ready && raw.has_ready()) {
            let _ = writeln!(o, "election timeout after {n} ticks");
            return Ok(());
        }
    }
    let _ = writeln!(o, "no election after {} ticks", 2 * e);
    Ok(())
}
