//! Whole-system tests for KubeRaft live in `tests/`.
//!
//! They run the real binaries (`raft-node`, `raftctl`, `raft-bench`, `raft-operator`) as
//! processes.
//! Cargo only offers `CARGO_BIN_EXE_*` inside the package that owns a binary, so
//! [`bin_dir`] finds them in the target dir next to the running test executable
//! (`target/<profile>/deps/<test>` → `target/<profile>/`), after building them into that
//! same target dir (a no-op when they are up to date, so the binaries are never stale).
//! Set `KUBERAFT_BIN_DIR` to use prebuilt binaries from another directory and skip the
//! build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The directory holding up-to-date `raft-node`, `raftctl`, `raft-bench` and `raft-operator`.
pub fn bin_dir() -> PathBuf {
    let dir = match std::env::var_os("KUBERAFT_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("the test executable's path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("tests run from target/<profile>/deps")
                .to_path_buf();
            let target_dir = profile_dir.parent().expect("a target dir");
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "-p", "kuberaft-node", "--bin", "raft-node"])
                .args(["--bin", "raftctl", "--bin", "raft-bench"])
                .args(["-p", "kuberaft-operator", "--bin", "raft-operator"])
                .env("CARGO_TARGET_DIR", target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if release {
                build.arg("--release");
            }
            let status = build.status().expect("running cargo build");
            assert!(status.success(), "cargo build of the binaries failed");
            profile_dir
        }
    };
    for bin in ["raft-node", "raftctl", "raft-bench", "raft-operator"] {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing",
            dir.join(bin).display()
        );
    }
    dir
}

/// Stops `child` gracefully: sends `signal` (`"TERM"`, `"INT"`), waits up to `grace` for
/// it to exit, then SIGKILLs it. Its exit status, if it could be read.
pub fn stop_child(child: &mut Child, signal: &str, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait().ok()
}
