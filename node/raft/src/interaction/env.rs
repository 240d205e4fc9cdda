//! The in-memory world a script drives: nodes with their durable storage, a queue of
//! in-flight messages and a partition map. It is the application side of the Ready
//! contract, written out step by step so scripts can pause between the steps.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use super::print;
use super::storage::{Storage, Write, apply, install};
use crate::config::Config;
use crate::raw_node::{InitialState, RawNode};
use crate::types::*;

#[derive(Debug)]
struct Node {
    cfg: Config,
    /// `None` while crashed.
    raw: Option<RawNode>,
    storage: Storage,
    /// Writes handed to the "append thread" and not yet durable, oldest first.
    pending: VecDeque<Write>,
    /// The state machine: applied commands with their index. Volatile: rebuilt from the
    /// snapshot on restart.
    sm: Vec<(u64, String)>,
}

pub(crate) type CmdResult = Result<(), String>;

/// Which queued messages `deliver` takes.
#[derive(Debug)]
pub(crate) struct Filter {
    pub(crate) to: Option<BTreeSet<NodeId>>,
    pub(crate) from: Option<NodeId>,
    pub(crate) kind: Option<String>,
    pub(crate) drop: BTreeSet<NodeId>,
    pub(crate) reverse: bool,
    pub(crate) dup: bool,
    /// At most this many messages, oldest first.
    pub(crate) count: usize,
}

impl Filter {
    pub(crate) fn all() -> Filter {
        Filter {
            to: None,
            from: None,
            kind: None,
            drop: BTreeSet::new(),
            reverse: false,
            dup: false,
            count: usize::MAX,
        }
    }
}

pub(crate) struct Env<'a> {
    hook: &'a dyn Fn(&mut Config),
    nodes: BTreeMap<NodeId, Node>,
    queue: Vec<Message>,
    partition: Option<Vec<BTreeSet<NodeId>>>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("nodes", &self.nodes.keys())
            .field("queue", &self.queue.len())
            .finish()
    }
}

impl<'a> Env<'a> {
    pub(crate) fn new(hook: &'a dyn Fn(&mut Config)) -> Self {
        Env {
            hook,
            nodes: BTreeMap::new(),
            queue: Vec::new(),
            partition: None,
        }
    }

    fn node(&mut self, id: NodeId) -> Result<&mut Node, String> {
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| format!("no node {id}"))
    }

    pub(crate) fn raw(&mut self, id: NodeId) -> Result<&mut RawNode, String> {
        self.node(id)?
            .raw
            .as_mut()
            .ok_or_else(|| format!("node {id} is down"))
    }

    pub(crate) fn config(&self, id: NodeId) -> Result<&Config, String> {
        self.nodes
            .get(&id)
            .map(|n| &n.cfg)
            .ok_or_else(|| format!("no node {id}"))
    }

    pub(crate) fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    pub(crate) fn next_id(&self) -> NodeId {
        self.nodes.keys().next_back().map_or(1, |id| id + 1)
    }

    // ------------------------------------------------------------ nodes

    pub(crate) fn add_node(
        &mut self,
        mut cfg: Config,
        state: InitialState,
        out: &mut String,
    ) -> CmdResult {
        (self.hook)(&mut cfg);
        let id = cfg.id;
        let raw = RawNode::new(cfg.clone(), state.clone()).map_err(|e| e.to_string())?;
        let mut node = Node {
            cfg,
            raw: Some(raw),
            storage: Storage::from_state(&state),
            pending: VecDeque::new(),
            sm: Vec::new(),
        };
        install(&mut node.sm, &state.snapshot);
        let _ = writeln!(out, "{}", summary(id, &node.storage));
        self.nodes.insert(id, node);
        Ok(())
    }

    pub(crate) fn crash(&mut self, id: NodeId, out: &mut String) -> CmdResult {
        let node = self.node(id)?;
        if node.raw.take().is_none() {
            return Err(format!("node {id} is already down"));
        }
        node.sm.clear();
        let lost: Vec<Write> = node.pending.drain(..).collect();
        if lost.is_empty() {
            let _ = writeln!(out, "> {id} crashed; no unsynced writes");
        } else {
            let _ = writeln!(
                out,
                "> {id} crashed; lost {} unsynced write(s):",
                lost.len()
            );
            for w in &lost {
                let _ = writeln!(out, "  {}", w.describe());
            }
        }
        Ok(())
    }

    pub(crate) fn restart(&mut self, id: NodeId, out: &mut String) -> CmdResult {
        let node = self.node(id)?;
        if node.raw.is_some() {
            return Err(format!("node {id} is running"));
        }
        let state = node.storage.initial_state();
        let raw = RawNode::new(node.cfg.clone(), state.clone()).map_err(|e| e.to_string())?;
        node.raw = Some(raw);
        install(&mut node.sm, &state.snapshot);
        let _ = writeln!(out, "> {id} restarted from {}", summary(id, &node.storage));
        Ok(())
    }

    pub(crate) fn compact(&mut self, id: NodeId, index: u64, out: &mut String) -> CmdResult {
        let node = self.node(id)?;
        let data: Vec<&str> = node
            .sm
            .iter()
            .filter(|(i, _)| *i <= index)
            .map(|(_, d)| d.as_str())
            .collect();
        let data = data.join(",").into_bytes();
        let Some(raw) = node.raw.as_mut() else {
            return Err(format!("node {id} is down"));
        };
        if let Err(e) = raw.compact(index, data.clone()) {
            let _ = writeln!(out, "{}", print::error(&e));
            return Ok(());
        }
        let term = raw
            .log_term(index)
            .expect("the compaction point keeps its term");
        let membership = node.storage.membership_at(index);
        let meta = SnapshotMeta {
            index,
            term,
            membership,
        };
        node.storage.entries.retain(|e| e.index > index);
        node.storage.snapshot = Snapshot { meta, data };
        let _ = writeln!(
            out,
            "ok snapshot={}",
            print::snapshot(&node.storage.snapshot)
        );
        Ok(())
    }

    // ------------------------------------------------------------ the Ready loop

    /// Handles one Ready. `sync`: persist it right away (after any writes still pending);
    /// otherwise leave its write pending until [`Env::persist`]. Messages go out at once
    /// either way; committed entries are applied at once (they are already durable).
    pub(crate) fn process_ready(
        &mut self,
        id: NodeId,
        sync: bool,
        skip_empty: bool,
        out: &mut String,
    ) -> CmdResult {
        if sync {
            self.persist(id, usize::MAX, true, out)?;
        }
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| format!("no node {id}"))?;
        let Some(raw) = node.raw.as_mut() else {
            return Err(format!("node {id} is down"));
        };
        if skip_empty && !raw.has_ready() {
            return Ok(());
        }
        let rd = raw.ready();
        let mode = if sync { "" } else { " (async)" };
        let _ = writeln!(
            out,
            "> {id} handling Ready{mode} must_sync={}",
            rd.must_sync()
        );
        print::ready(&rd, out);
        let write = Write::of(&rd);
        if sync {
            node.storage.write(&write);
            if let Some(s) = &rd.snapshot {
                install(&mut node.sm, s);
            }
            raw.advance(&rd);
            apply(&mut node.sm, &rd.committed_entries);
            self.queue.extend(rd.messages);
            self.queue.extend(rd.persisted_messages);
        } else {
            if let Some(e) = rd.committed_entries.last() {
                raw.on_applied(e.index);
            }
            apply(&mut node.sm, &rd.committed_entries);
            if !write.is_empty() {
                node.pending.push_back(write);
            }
            self.queue.extend(rd.messages);
        }
        Ok(())
    }

    /// Completes up to `count` pending writes, oldest first, and sends the messages that
    /// waited for them.
    pub(crate) fn persist(
        &mut self,
        id: NodeId,
        count: usize,
        quiet_if_none: bool,
        out: &mut String,
    ) -> CmdResult {
        let node = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| format!("no node {id}"))?;
        if node.raw.is_none() {
            return Err(format!("node {id} is down"));
        }
        if node.pending.is_empty() && !quiet_if_none {
            let _ = writeln!(out, "> {id} has no pending write");
        }
        for _ in 0..count {
            let Some(w) = node.pending.pop_front() else {
                break;
            };
            node.storage.write(&w);
            let _ = writeln!(out, "> {id} persisted {}", w.describe());
            if let Some(s) = &w.snapshot {
                install(&mut node.sm, s);
            }
            let raw = node.raw.as_mut().expect("checked above");
            if let Some(s) = &w.snapshot {
                raw.on_persisted(s.meta.index, s.meta.term);
                raw.on_applied(s.meta.index);
            }
            if let Some(e) = w.entries.last() {
                raw.on_persisted(e.index, e.term);
            }
            for m in &w.persisted_messages {
                let _ = writeln!(out, "  sent {}", print::message(m));
            }
            self.queue.extend(w.persisted_messages);
        }
        Ok(())
    }

    pub(crate) fn has_work(&self, id: NodeId) -> bool {
        self.nodes.get(&id).is_some_and(|n| {
            n.raw.as_ref().is_some_and(RawNode::has_ready)
                || (n.raw.is_some() && !n.pending.is_empty())
        })
    }

    // ------------------------------------------------------------ the network

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        match &self.partition {
            None => true,
            Some(groups) => groups.iter().any(|g| g.contains(&a) && g.contains(&b)),
        }
    }

    pub(crate) fn set_partition(&mut self, groups: Option<Vec<BTreeSet<NodeId>>>) {
        self.partition = groups;
    }

    pub(crate) fn print_queue(&self, out: &mut String) {
        if self.queue.is_empty() {
            out.push_str("no messages in flight\n");
        }
        for m in &self.queue {
            let _ = writeln!(out, "{}", print::message(m));
        }
    }

    /// Delivers (or drops) the queued messages `f` selects, grouped by recipient in id
    /// order. Returns whether any message was taken from the queue.
    pub(crate) fn deliver(&mut self, f: &Filter, out: &mut String) -> bool {
        let selected = |m: &Message| {
            (f.to.as_ref().is_none_or(|t| t.contains(&m.to)) || f.drop.contains(&m.to))
                && f.from.is_none_or(|from| m.from == from)
                && f.kind.as_deref().is_none_or(|k| m.body.name() == k)
        };
        let mut take = Vec::new();
        let mut keep = Vec::new();
        for m in std::mem::take(&mut self.queue) {
            if take.len() < f.count && selected(&m) {
                take.push(m);
            } else {
                keep.push(m);
            }
        }
        self.queue = keep;
        if f.dup {
            self.queue.extend(take.iter().cloned());
        }
        let mut by_to: BTreeMap<NodeId, Vec<Message>> = BTreeMap::new();
        for m in take.iter() {
            by_to.entry(m.to).or_default().push(m.clone());
        }
        for (to, mut msgs) in by_to {
            if f.reverse {
                msgs.reverse();
            }
            let _ = writeln!(out, "> {to} receiving messages");
            for m in msgs {
                let text = print::message(&m);
                let why = if f.drop.contains(&to) {
                    Some("")
                } else if !self.nodes.contains_key(&to) {
                    Some("no such node")
                } else if self.nodes[&to].raw.is_none() {
                    Some("node down")
                } else if !self.connected(m.from, to) {
                    Some("partitioned")
                } else {
                    None
                };
                if let Some(why) = why {
                    let why = if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    };
                    let _ = writeln!(out, "  DROPPED {text}{why}");
                    continue;
                }
                let _ = writeln!(out, "  {text}");
                let raw = self
                    .nodes
                    .get_mut(&to)
                    .and_then(|n| n.raw.as_mut())
                    .expect("checked above");
                if let Err(e) = raw.step(m) {
                    let _ = writeln!(out, "  {}", print::error(&e));
                }
            }
        }
        !take.is_empty()
    }

    /// Handles Readys and delivers messages among `ids` (all nodes if `None`) until
    /// nothing changes. Messages to other nodes stay queued.
    pub(crate) fn stabilize(
        &mut self,
        ids: Option<BTreeSet<NodeId>>,
        out: &mut String,
    ) -> CmdResult {
        let members: Vec<NodeId> = self
            .ids()
            .into_iter()
            .filter(|id| ids.as_ref().is_none_or(|s| s.contains(id)))
            .collect();
        let f = Filter {
            to: ids,
            ..Filter::all()
        };
        for _ in 0..1000 {
            let mut busy = false;
            for &id in &members {
                if self.has_work(id) {
                    self.process_ready(id, true, true, out)?;
                    busy = true;
                }
            }
            busy |= self.deliver(&f, out);
            if !busy {
                return Ok(());
            }
        }
        Err("stabilize did not converge within 1000 rounds".to_string())
    }

    // ------------------------------------------------------------ views

    pub(crate) fn raft_log(&mut self, id: NodeId, out: &mut String) -> CmdResult {
        let raw = self.raw(id)?;
        let st = raw.status();
        if st.snapshot_index > 0 {
            let term = raw.log_term(st.snapshot_index).unwrap_or(0);
            let _ = writeln!(out, "snapshot {term}/{}", st.snapshot_index);
        }
        let entries = raw.log_entries_from(st.first_index);
        if entries.is_empty() {
            let _ = writeln!(
                out,
                "log is empty: first index={}, last index={}",
                st.first_index, st.last_index
            );
        }
        for e in entries {
            let _ = writeln!(out, "{}", print::entry(&e));
        }
        Ok(())
    }

    pub(crate) fn raft_state(&self, out: &mut String) {
        for (id, n) in &self.nodes {
            let Some(raw) = &n.raw else {
                let _ = writeln!(out, "{id}: down");
                continue;
            };
            let st = raw.status();
            let m = &st.membership;
            let kind = if m.is_voter(*id) {
                "Voter"
            } else if m.is_learner(*id) {
                "Learner"
            } else {
                "NonMember"
            };
            let _ = writeln!(
                out,
                "{id}: {:?} ({kind}) term={} lead={}",
                st.role, st.term, st.leader
            );
        }
    }

    pub(crate) fn state_machine(&mut self, id: NodeId, out: &mut String) -> CmdResult {
        let n = self.node(id)?;
        let items: Vec<&str> = n.sm.iter().map(|(_, d)| d.as_str()).collect();
        let applied = n.raw.as_ref().map_or(0, |r| r.status().applied);
        let _ = writeln!(out, "applied={applied} [{}]", items.join(" "));
        Ok(())
    }
}

fn summary(id: NodeId, s: &Storage) -> String {
    let hs = &s.hard_state;
    let mut text = format!(
        "{id}: term={} vote={} commit={}",
        hs.term, hs.vote, hs.commit
    );
    if s.snapshot.meta.index > 0 {
        let _ = write!(
            text,
            " snap={}/{}",
            s.snapshot.meta.term, s.snapshot.meta.index
        );
    }
    match (s.entries.first(), s.entries.last()) {
        (Some(a), Some(b)) => {
            let _ = write!(text, " log={}/{}..{}/{}", a.term, a.index, b.term, b.index);
        }
        _ => text.push_str(" log=empty"),
    }
    if s.snapshot.meta.index == 0 && s.entries.is_empty() {
        text.push_str(" (uninitialized)");
    }
    let m = s.membership_at(u64::MAX);
    if !m.all().is_empty() {
        let _ = write!(text, " {}", print::membership(&m));
    }
    text
}
