//! Compact, deterministic text for everything a script prints. Positions are written
//! `term/index` throughout, like etcd-io/raft's `Log:1/5`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::raw_node::{Ready, Status};
use crate::types::*;

pub(crate) fn ids(set: &BTreeSet<NodeId>) -> String {
    let v: Vec<String> = set.iter().map(u64::to_string).collect();
    format!("({})", v.join(","))
}

/// `voters=(1,2,3)`, `voters=(1,2,4)&&(1,2,3)` in joint consensus, `learners=(5)` if any.
pub(crate) fn membership(m: &Membership) -> String {
    let mut s = format!("voters={}", ids(&m.voters));
    if m.is_joint() {
        s.push_str(&format!("&&{}", ids(&m.outgoing)));
    }
    if !m.learners.is_empty() {
        s.push_str(&format!(" learners={}", ids(&m.learners)));
    }
    s
}

pub(crate) fn conf_change(cc: &ConfChange) -> String {
    if cc.leave_joint {
        return "conf(leave)".to_string();
    }
    let parts: Vec<String> = cc
        .changes
        .iter()
        .map(|c| {
            let k = match c.kind {
                ConfChangeKind::AddVoter => 'v',
                ConfChangeKind::AddLearner => 'l',
                ConfChangeKind::Remove => 'r',
            };
            format!("{k}{}", c.node)
        })
        .collect();
    format!("conf({})", parts.join(" "))
}

pub(crate) fn data(d: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(d))
}

pub(crate) fn entry(e: &Entry) -> String {
    let payload = match &e.payload {
        EntryPayload::Empty => "empty".to_string(),
        EntryPayload::Normal(d) => data(d),
        EntryPayload::ConfChange(cc) => conf_change(cc),
    };
    format!("{}/{} {payload}", e.term, e.index)
}

pub(crate) fn snapshot(s: &Snapshot) -> String {
    let m = &s.meta;
    format!(
        "{}/{} {} data={}",
        m.term,
        m.index,
        membership(&m.membership),
        data(&s.data)
    )
}

pub(crate) fn message(m: &Message) -> String {
    let mut s = format!("{}->{} {} term={}", m.from, m.to, m.body.name(), m.term);
    match &m.body {
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
        } => {
            let _ = write!(s, " prev={prev_term}/{prev_index} commit={commit}");
            if !entries.is_empty() {
                let es: Vec<String> = entries.iter().map(entry).collect();
                let _ = write!(s, " [{}]", es.join(", "));
            }
        }
        MessageBody::AppendResp {
            index,
            reject,
            hint_index,
            hint_term,
        } => {
            let _ = write!(s, " index={index}");
            if *reject {
                let _ = write!(s, " reject hint={hint_term}/{hint_index}");
            }
        }
        MessageBody::Heartbeat { commit, round } => {
            let _ = write!(s, " commit={commit} round={round}");
        }
        MessageBody::HeartbeatResp { round } => {
            let _ = write!(s, " round={round}");
        }
        MessageBody::Vote {
            last_index,
            last_term,
            force,
            ..
        } => {
            let _ = write!(s, " last={last_term}/{last_index}");
            if *force {
                s.push_str(" force");
            }
        }
        MessageBody::VoteResp { reject, .. } => {
            if *reject {
                s.push_str(" reject");
            }
        }
        MessageBody::Snapshot { snapshot: snap } => {
            let _ = write!(s, " snap={}", snapshot(snap));
        }
        MessageBody::TimeoutNow => {}
        MessageBody::ReadIndex { request } => {
            let _ = write!(s, " ctx={}", data(request));
        }
        MessageBody::ReadIndexResp {
            request,
            index,
            reject,
        } => {
            let _ = write!(s, " ctx={} index={index}", data(request));
            if *reject {
                s.push_str(" reject");
            }
        }
    }
    s
}

pub(crate) fn hard_state(hs: &HardState) -> String {
    format!(
        "HardState term={} vote={} commit={}",
        hs.term, hs.vote, hs.commit
    )
}

/// The body of a Ready, one item per line, indented by two spaces.
pub(crate) fn ready(rd: &Ready, out: &mut String) {
    let mut empty = true;
    let mut line = |out: &mut String, s: String| {
        empty = false;
        out.push_str("  ");
        out.push_str(&s);
        out.push('\n');
    };
    if let Some(ss) = &rd.soft_state {
        line(
            out,
            format!("SoftState role={:?} lead={}", ss.role, ss.leader),
        );
    }
    if let Some(hs) = &rd.hard_state {
        line(out, hard_state(hs));
    }
    if let Some(s) = &rd.snapshot {
        line(out, format!("Snapshot {}", snapshot(s)));
    }
    let lists: [(&str, Vec<String>); 6] = [
        ("Entries", rd.entries.iter().map(entry).collect()),
        ("Messages", rd.messages.iter().map(message).collect()),
        (
            "PersistedMessages",
            rd.persisted_messages.iter().map(message).collect(),
        ),
        (
            "CommittedEntries",
            rd.committed_entries.iter().map(entry).collect(),
        ),
        (
            "ReadStates",
            rd.read_states
                .iter()
                .map(|r| format!("ctx={} index={}", data(&r.request), r.index))
                .collect(),
        ),
        (
            "RejectedReads",
            rd.rejected_reads
                .iter()
                .map(|r| format!("ctx={}", data(r)))
                .collect(),
        ),
    ];
    for (name, items) in lists {
        if items.is_empty() {
            continue;
        }
        line(out, format!("{name}:"));
        for i in items {
            line(out, format!("  {i}"));
        }
    }
    if empty {
        out.push_str("  <empty Ready>\n");
    }
}

pub(crate) fn status(st: &Status, out: &mut String) {
    let _ = writeln!(
        out,
        "{}: {:?} term={} vote={} lead={} commit={} applied={} durable={} log={}..{} snap={} {}",
        st.id,
        st.role,
        st.term,
        st.vote,
        st.leader,
        st.commit,
        st.applied,
        st.durable,
        st.first_index,
        st.last_index,
        st.snapshot_index,
        membership(&st.membership),
    );
    for (id, p) in &st.progress {
        let active = if p.recent_active { " active" } else { "" };
        let _ = writeln!(
            out,
            "  {id}: {:?} match={} next={} inflight={}{active}",
            p.state, p.matched, p.next, p.inflight
        );
    }
    if st.transferee != NO_NODE {
        let _ = writeln!(out, "  transferring to {}", st.transferee);
    }
}

/// `error NotLeader: not the leader (known leader: 2)`: the variant name, as metrics use
/// it, then the message.
pub(crate) fn error(e: &crate::error::Error) -> String {
    let debug = format!("{e:?}");
    let name: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    format!("error {name}: {e}")
}
