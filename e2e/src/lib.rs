//! Whole-system tests for KubeRaft live in `tests/`.
