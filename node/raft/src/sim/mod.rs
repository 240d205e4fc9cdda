//! A deterministic simulator: a whole cluster, its clients and a hostile world, driven by
//! one seeded generator. Faults: message drop, delay, reorder and duplication; symmetric
//! and asymmetric partitions; crashes that lose every unsynced write, and restarts. The
//! workload mixes client writes and linearizable reads with membership changes,
//! leadership transfers and compaction. Invariants are checked after every step; at the
//! end the client history must be linearizable, and once every fault heals the cluster
//! must make progress within a bound.
//!
//! Any seed replays exactly: `cargo run -p kuberaft-raft --release --example sim -- --seed S`.

mod check;
mod kv;
mod net;
mod node;
mod world;

pub use world::{SimOptions, SimReport, run};
