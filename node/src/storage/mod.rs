//! Durable storage: WAL, hard state, snapshot files and recovery.
