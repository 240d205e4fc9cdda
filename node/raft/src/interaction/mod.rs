//! Scenario scripts: etcd-io/raft's `interaction_test.go` and `rafttest/` for this core.
//! A script drives several [`RawNode`](crate::RawNode)s in memory, one command at a
//! time, and every command's output (messages, Readys, state) is compared with the text
//! recorded under it. One script per rule of the protocol lives in `node/raft/testdata/`;
//! `tests/interaction.rs` runs them all.
//!
//! The harness is pure: [`check_script`] and [`run_script`] take the script's text and do
//! no IO. Only [`check_dir`] reads files, for the test and the mutation gate (which runs
//! every script with [`Config::mutation`](crate::Config) set and counts the scripts whose
//! output changes).
//!
//! **Regenerating the expected output:** `REWRITE=1 cargo test -p kuberaft-raft --test
//! interaction` writes each command's actual output into the scripts. Read the diff
//! before committing it: every expected block is a claim about Raft.
//! `cargo test -p kuberaft-raft --features mutations --test interaction` also runs every
//! script under each known bug and fails if one goes unnoticed.
//!
//! # Format (cockroachdb/datadriven)
//!
//! ```text
//! # A comment saying what the script shows.
//! command arg key=value
//! ----
//! expected output, ended by a blank line
//! ```
//!
//! Output containing blank lines is wrapped in `----`/`----` lines. Positions print as
//! `term/index`: `1->2 Append term=2 prev=1/5 commit=5 [2/6 "x"]` carries entry 6 of
//! term 2 after entry 5 of term 1.
//!
//! # Commands
//!
//! | command | what it does |
//! | --- | --- |
//! | `add-nodes N voters=(1,2,3) [learners=(4)] [index=I] [opts]` | N nodes from one bootstrap configuration: entry 1/1, or a snapshot 1/I with `index` |
//! | `add-nodes N [opts]` | N empty (uninitialized) nodes, to join later |
//! | opts | `election= heartbeat= lease-margin= max-entries= max-bytes= max-inflight= max-inflight-bytes= pre-vote= check-quorum= seed=` |
//! | `campaign ID` | start an election now (pre-vote first when enabled) |
//! | `tick ID N`, `tick-heartbeat ID` | N ticks, one heartbeat interval |
//! | `tick-election ID` | a leader ticks one election timeout; others tick until their timer fires and print how many ticks that took |
//! | `propose ID data` | a command; prints `ok term/index` or the typed error |
//! | `propose-conf-change ID v4 l5 r3` / `... leave` | AddVoter, AddLearner, Remove (several = joint), or leave joint |
//! | `transfer-leader ID to=X`, `read-index ID ctx=C [mode=lease]`, `compact ID INDEX`, `report-unreachable ID to=X` | the RawNode calls; a refusal prints as `error Variant: message` |
//! | `process-ready ID...` | take a Ready, print it, send `Messages`, persist synchronously, send `PersistedMessages`, `advance`, apply |
//! | `process-ready-async ID...` | the same, but the write stays pending (an append thread that has not synced): `PersistedMessages` wait |
//! | `persist ID [count=N]` | complete pending writes, oldest first, and send what waited for them |
//! | `deliver-msgs [ID...] [from=X] [type=Append] [count=N] [drop=(..)] [reverse] [dup]` | deliver queued messages to these recipients (default all), those to `drop` are discarded; `count` takes the oldest N, `reverse` reorders, `dup` keeps a copy queued for later |
//! | `msgs` | list the messages in flight |
//! | `stabilize [ID...]` | process Readys and deliver until nothing moves |
//! | `partition (1,2) (3)`, `heal` | cut the network (unlisted nodes are alone); messages across are dropped on delivery |
//! | `crash ID`, `restart ID` | lose the volatile state and every pending write; restart from storage |
//! | `status ID`, `raft-log ID`, `raft-state`, `state-machine ID` | views |

mod args;
mod commands;
mod diff;
mod env;
mod files;
mod print;
mod script;
mod storage;

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use diff::line_diff;
pub use files::{ScriptResult, check_dir, testdata_dir};

use crate::config::Config;

/// One command of a script and what it printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRun {
    /// 1-based line of the command in the script.
    pub line: usize,
    pub command: String,
    pub expected: String,
    pub actual: String,
}

/// The outcome of running one script.
#[derive(Clone, Debug)]
pub struct ScriptRun {
    pub blocks: Vec<BlockRun>,
    /// Errors in the script itself and panics: they fail it even when rewriting.
    pub errors: Vec<String>,
    /// The script with every expected output replaced by the actual one.
    pub rewritten: String,
}

impl ScriptRun {
    pub fn mismatches(&self) -> impl Iterator<Item = &BlockRun> {
        self.blocks.iter().filter(|b| b.expected != b.actual)
    }

    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.mismatches().next().is_none()
    }

    /// A readable report of every error and mismatch, with a line diff per command.
    pub fn report(&self, name: &str) -> String {
        let mut out = String::new();
        for e in &self.errors {
            let _ = writeln!(out, "{name}: {e}");
        }
        for b in self.mismatches() {
            let _ = writeln!(
                out,
                "{name}:{}: `{}` printed something else",
                b.line, b.command
            );
            out.push_str("  (- expected, + actual)\n");
            for l in line_diff(&b.expected, &b.actual).lines() {
                let _ = writeln!(out, "  {l}");
            }
        }
        out
    }
}

/// Runs a script and reports, per command, what was expected and what was printed.
/// `cfg_hook` adjusts every node's [`Config`] after the script's own options (the mutation
/// gate sets `mutation` there). Never panics: a panic in the core is caught and reported.
pub fn check_script(text: &str, cfg_hook: &dyn Fn(&mut Config)) -> ScriptRun {
    let blocks = match script::parse(text) {
        Ok(b) => b,
        Err(e) => {
            return ScriptRun {
                blocks: Vec::new(),
                errors: vec![e],
                rewritten: text.to_string(),
            };
        }
    };
    let mut env = env::Env::new(cfg_hook);
    let mut errors = Vec::new();
    let mut runs = Vec::new();
    let mut halted = false;
    for b in &blocks {
        let actual = if halted {
            // The world is in an unknown state after a panic: leave the rest as it was.
            b.expected.clone()
        } else if !b.input.is_empty() {
            errors.push(format!(
                "line {}: unexpected input lines after the command",
                b.line
            ));
            b.expected.clone()
        } else {
            match catch_unwind(AssertUnwindSafe(|| commands::exec(&mut env, &b.command))) {
                Ok(Ok(out)) => out.trim_end_matches('\n').to_string(),
                Ok(Err(e)) => {
                    errors.push(format!("line {}: `{}`: {e}", b.line, b.command));
                    format!("script error: {e}")
                }
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".to_string());
                    errors.push(format!("line {}: `{}` panicked: {msg}", b.line, b.command));
                    halted = true;
                    format!("panic: {msg}")
                }
            }
        };
        runs.push(BlockRun {
            line: b.line,
            command: b.command.clone(),
            expected: b.expected.clone(),
            actual,
        });
    }
    let outputs: Vec<String> = runs.iter().map(|r| r.actual.clone()).collect();
    let rewritten = script::rewrite(text, &blocks, &outputs);
    ScriptRun {
        blocks: runs,
        errors,
        rewritten,
    }
}

/// Runs a script and returns it with every expected output replaced by the actual one
/// (equal to `text` when the script passes).
pub fn run_script(text: &str, cfg_hook: &dyn Fn(&mut Config)) -> String {
    check_script(text, cfg_hook).rewritten
}
