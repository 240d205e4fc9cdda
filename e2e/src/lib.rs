//! Whole-system tests for KubeRaft live in `tests/`.
//!
//! They run the real binaries (`raft-node`, `raft-operator`) as processes. Cargo only
//! offers `CARGO_BIN_EXE_*` inside the package that owns a binary, so each test finds
//! them in the target dir next to its own executable (`target/<profile>/deps/<test>` →
//! `target/<profile>/`), after running
//! `cargo build -p kuberaft-node --bin raft-node -p kuberaft-operator --bin raft-operator`
//! into that same target dir (a no-op when they are up to date, so the binaries are never
//! stale). Set `KUBERAFT_BIN_DIR` to use prebuilt binaries from another directory and skip
//! the build.
