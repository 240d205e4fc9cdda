//! Every command in README.md is exercised or marked.
//!
//! - Shell blocks that need Kubernetes or Docker follow a paragraph marked
//!   `*(needs a cluster)*` or `*(needs Docker and kind)*`; no other block may call
//!   kubectl, helm, kind, docker or sudo.
//! - The playground, "the node, by hand" and TLS blocks run here, as written, with three
//!   substitutions: the binaries of this target dir for `target/release/`, free ports for
//!   the fixed ones, temp dirs for `/tmp/...`; and without their `cargo build` step.
//! - The cargo commands are checked against the workspace (packages, test, bench and
//!   example targets exist) and against `.ci/run`, which runs `cargo test --workspace`
//!   and the simulator.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fenced `sh` block: its lines (continuations joined) and the paragraph before it.
#[derive(Debug)]
struct Block {
    line: usize,
    before: String,
    commands: Vec<String>,
}

impl Block {
    fn marked(&self) -> bool {
        self.before.contains("*(needs a cluster)*")
            || self.before.contains("*(needs Docker and kind)*")
    }

    fn starts_with(&self, prefix: &str) -> bool {
        self.commands.first().is_some_and(|c| c.starts_with(prefix))
    }
}

fn blocks() -> Vec<Block> {
    let text = read("README.md");
    let mut out = Vec::new();
    let mut before = String::new();
    let mut current: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(block) = &mut current {
            if line.starts_with("```") {
                out.push(current.take().unwrap());
                before.clear();
            } else if let Some(last) = block.commands.last_mut()
                && last.ends_with('\\')
            {
                last.pop();
                last.push(' ');
                last.push_str(line.trim());
            } else if !line.trim().is_empty() {
                block.commands.push(line.trim().to_owned());
            }
        } else if line.starts_with("```sh") {
            current = Some(Block {
                line: i + 1,
                before: std::mem::take(&mut before),
                commands: Vec::new(),
            });
        } else if line.starts_with("```") || line.starts_with('#') {
            before.clear();
        } else if line.trim().is_empty() {
            // Keep the paragraph closest to the block.
            if !before.trim().is_empty() {
                before.push('\n');
            }
        } else {
            if before.ends_with('\n') {
                before.clear();
            }
            before.push_str(line);
            before.push(' ');
        }
    }
    assert!(current.is_none(), "README.md: unclosed code block");
    out
}

/// Package name → directory, from the workspace members.
fn packages() -> BTreeMap<String, PathBuf> {
    let manifest = read("Cargo.toml");
    toml_lite::Doc::new(&manifest)
        .string_list("members")
        .into_iter()
        .map(|dir| {
            let manifest = read(&format!("{dir}/Cargo.toml"));
            let name = toml_lite::Doc::new(&manifest).string("name");
            (name, root().join(dir))
        })
        .collect()
}

/// Just enough TOML for `members = [...]` and `name = "..."`.
mod toml_lite {
    pub struct Doc<'a>(&'a str);

    impl<'a> Doc<'a> {
        pub fn new(text: &'a str) -> Self {
            Doc(text)
        }

        pub fn string(&self, key: &str) -> String {
            self.0
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
                })
                .unwrap_or_else(|| panic!("no {key} = \"...\""))
        }

        pub fn string_list(&self, key: &str) -> Vec<String> {
            let start = self
                .0
                .find(&format!("{key} = ["))
                .unwrap_or_else(|| panic!("no {key} = [...]"));
            let rest = &self.0[start..];
            let list = &rest[rest.find('[').unwrap() + 1..rest.find(']').unwrap()];
            list.split(',')
                .map(|s| s.trim().trim_matches('"').to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }
    }
}

/// The value after `flag` in a command line.
fn arg<'a>(words: &[&'a str], flag: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| *w == flag)
        .and_then(|i| words.get(i + 1).copied())
}

/// A cargo command names packages and targets that exist.
fn check_cargo(command: &str, packages: &BTreeMap<String, PathBuf>) {
    let words: Vec<&str> = command.split_whitespace().collect();
    let Some(package) = arg(&words, "-p") else {
        return;
    };
    let dir = packages
        .get(package)
        .unwrap_or_else(|| panic!("README: `{command}` names no workspace package"));
    for (flag, sub) in [
        ("--test", "tests"),
        ("--bench", "benches"),
        ("--example", "examples"),
    ] {
        let mut rest = &words[..];
        while let Some(i) = rest.iter().position(|w| *w == flag) {
            let name = rest[i + 1];
            assert!(
                dir.join(sub).join(format!("{name}.rs")).is_file(),
                "README: `{command}`: {package} has no {sub}/{name}.rs"
            );
            rest = &rest[i + 1..];
        }
    }
}

#[test]
fn every_readme_block_is_marked_run_here_or_run_by_ci() {
    let packages = packages();
    let ci = read(".ci/run");
    let blocks = blocks();
    assert!(blocks.len() >= 10, "found only {} sh blocks", blocks.len());
    for b in &blocks {
        if b.marked() {
            continue;
        }
        for c in &b.commands {
            for tool in ["kubectl ", "helm ", "kind ", "docker ", "sudo "] {
                assert!(
                    !c.contains(tool),
                    "README.md line {}: `{c}` needs {tool}but its block is not marked \
                     *(needs a cluster)*",
                    b.line
                );
            }
        }
        let runs_here = RUN_HERE.iter().any(|p| b.starts_with(p));
        for c in &b.commands {
            let c = without_env_prefix(c);
            if c.starts_with("cargo ") {
                check_cargo(c, &packages);
                if c.starts_with("cargo test --workspace") {
                    assert!(ci.contains("cargo test --workspace"), ".ci/run must run it");
                } else if c.contains("--example sim") {
                    assert!(
                        ci.contains("--example sim"),
                        ".ci/run must run the simulator"
                    );
                } else if !c.starts_with("cargo build") && !c.starts_with("cargo bench") {
                    // `cargo test -p ...` tiers are part of `cargo test --workspace`.
                    assert!(
                        c.starts_with("cargo test") || c.starts_with("cargo run"),
                        "README.md line {}: `{c}` is neither run by CI nor marked",
                        b.line
                    );
                }
            } else {
                assert!(
                    runs_here,
                    "README.md line {}: `{c}` is not run by this test, not a cargo command \
                     CI runs, and not marked *(needs a cluster)*",
                    b.line
                );
            }
        }
    }
    // The test tiers table: every `cargo test -p P --test T` names a real target.
    let readme = read("README.md");
    for cell in readme.split('`').filter(|s| s.starts_with("cargo ")) {
        check_cargo(cell, &packages);
    }
}

/// The command after any leading `NAME=value` assignments.
fn without_env_prefix(command: &str) -> &str {
    let mut rest = command.trim();
    while let Some((word, tail)) = rest.split_once(' ')
        && word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
    {
        rest = tail.trim_start();
    }
    rest
}

/// The unmarked blocks this file runs, by their first command.
const RUN_HERE: &[&str] = &[
    "cargo build --release --bins && target/release/raft-operator playground",
    "target/release/raftctl --endpoints $(cat /tmp/kuberaft-playground/endpoints)",
    "cargo build --release -p kuberaft-node",
    "target/release/raftctl --endpoints 127.0.0.1:7101 --tls-ca",
];

fn block(prefix: &str) -> Block {
    blocks()
        .into_iter()
        .find(|b| b.starts_with(prefix))
        .unwrap_or_else(|| panic!("README.md has no block starting with `{prefix}`"))
}

/// `n` distinct free ports. The listeners stay bound until all are picked: a port
/// released at once can be handed out again by the next bind, and two members given one
/// port left a block waiting forever for the one that could not start.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// The block as a script: binaries from `bin`, `cargo build` steps dropped, the given
/// text substitutions made.
fn script(b: &Block, bin: &Path, subst: &[(String, String)]) -> String {
    let mut lines = Vec::new();
    for c in &b.commands {
        let mut c = c.clone();
        if c.starts_with("cargo build") {
            match c.split_once("&& ") {
                Some((_, rest)) => c = rest.to_owned(),
                None => continue,
            }
        }
        c = c.replace("target/release/", &format!("{}/", bin.display()));
        for (from, to) in subst {
            c = c.replace(from.as_str(), to);
        }
        lines.push(c);
    }
    lines.join("\n")
}

/// How long one README block may run before it counts as hung (a block's own wait
/// loops, like `until curl ...`, have no deadline of their own).
const BLOCK_TIMEOUT_S: u32 = 300;

/// Runs `script` with bash (errexit, pipefail); background jobs are killed at exit, and
/// the whole script after [`BLOCK_TIMEOUT_S`] (exit status 124).
fn bash(script: &str, cwd: &Path) -> Output {
    let wrapped =
        format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}\n");
    Command::new("timeout")
        .args([
            "--kill-after=10",
            &BLOCK_TIMEOUT_S.to_string(),
            "bash",
            "-c",
        ])
        .arg(wrapped)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("running bash")
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let hung = match out.status.code() {
        Some(124) => format!(" (ran past {BLOCK_TIMEOUT_S} s, stopped)"),
        _ => String::new(),
    };
    assert!(
        out.status.success(),
        "{what} failed: {:?}{hung}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_node_by_hand_block_runs() {
    let bin = kuberaft_e2e::bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let b = block("cargo build --release -p kuberaft-node");
    let subst: Vec<(String, String)> = ["7100", "7101", "7102", "7200", "7201", "7202"]
        .iter()
        .zip(free_ports::<6>())
        .map(|(p, free)| (format!("127.0.0.1:{p}"), format!("127.0.0.1:{free}")))
        .collect();
    let out = bash(&script(&b, &bin, &subst), tmp.path());
    let stdout = ok(&out, "README: the node, by hand");
    assert!(stdout.contains("OK (revision"), "put: {stdout}");
    assert!(
        stdout.contains("n1") && stdout.contains("n2"),
        "status: {stdout}"
    );
}

#[test]
fn the_playground_blocks_run() {
    let bin = kuberaft_e2e::bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kuberaft-playground");
    let subst = vec![(
        "/tmp/kuberaft-playground".to_owned(),
        dir.display().to_string(),
    )];
    let start = script(
        &block("cargo build --release --bins && target/release/raft-operator playground"),
        &bin,
        &subst,
    );
    let log = std::fs::File::create(tmp.path().join("playground.log")).unwrap();
    let mut playground = Reaper(
        Command::new("bash")
            .arg("-c")
            .arg(format!("exec {start}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let endpoints = dir.join("endpoints");
    poll(Duration::from_secs(60), "three playground members", || {
        let text = std::fs::read_to_string(&endpoints).ok()?;
        (text.trim().split(',').count() == 3).then_some(())
    });
    let talk = script(
        &block("target/release/raftctl --endpoints $(cat /tmp/kuberaft-playground/endpoints)"),
        &bin,
        &subst,
    );
    let out = bash(&talk, tmp.path());
    let stdout = ok(&out, "README: talking to the playground");
    assert!(stdout.contains("OK (revision"), "{stdout}");
    assert!(stdout.contains("desired replicas: 5"), "{stdout}");
    let desired = std::fs::read_to_string(dir.join("desired.json")).unwrap();
    assert!(
        desired.contains("\"replicas\":5") || desired.contains("\"replicas\": 5"),
        "{desired}"
    );
    assert!(desired.contains("snapshot_request_id"), "{desired}");

    // Ctrl-C stops it and every member.
    let pid = playground.0.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = poll(Duration::from_secs(30), "the playground to stop", || {
        playground.0.try_wait().unwrap()
    });
    let mut text = String::new();
    std::fs::File::open(tmp.path().join("playground.log"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(status.success(), "{status:?}\n{text}");
    assert!(!endpoints.exists(), "endpoints removed at stop");
}

/// A process that is stopped when the test ends, also when it fails half-way: SIGINT
/// (the playground then stops its members), and after 10 s SIGKILL.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        kuberaft_e2e::stop_child(&mut self.0, "INT", Duration::from_secs(10));
    }
}

#[test]
fn the_tls_block_runs() {
    let bin = kuberaft_e2e::bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    // A CA and a member certificate for 127.0.0.1.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(tmp.path().join("ca.crt"), &ca_pem).unwrap();
    std::fs::write(tmp.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(tmp.path().join("tls.key"), key.serialize_pem()).unwrap();

    let [peer, client, http] = free_ports::<3>();
    let node = Command::new(bin.join("raft-node"))
        .args([
            "--name",
            "n1",
            "--bootstrap",
            "--tick-millis",
            "20",
            "--data-dir",
        ])
        .arg(tmp.path().join("n1"))
        .args(["--peer-listen", &format!("127.0.0.1:{peer}")])
        .args(["--client-listen", &format!("127.0.0.1:{client}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .args([
            "--tls-cert",
            "tls.crt",
            "--tls-key",
            "tls.key",
            "--tls-ca",
            "ca.crt",
        ])
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _node = Reaper(node);
    let b = block("target/release/raftctl --endpoints 127.0.0.1:7101 --tls-ca");
    let subst = vec![("127.0.0.1:7101".to_owned(), format!("127.0.0.1:{client}"))];
    let cmd = script(&b, &bin, &subst);
    // Right after bootstrap the member's own address-book entry may not be committed
    // yet; poll until the table names it.
    poll(Duration::from_secs(20), "raftctl status over TLS", || {
        let out = bash(&cmd, tmp.path());
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && stdout.contains("n1") && stdout.contains("leader")).then_some(())
    });
    // Without the CA, the same command fails.
    let plain = cmd.replace("--tls-ca ca.crt", "--timeout 1s");
    assert!(!bash(&plain, tmp.path()).status.success(), "{plain}");
}
