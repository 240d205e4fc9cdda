//! The container images, checked as text (no container engine needed): each Dockerfile
//! builds a binary that exists in its crate, runs it as the non-root uid the operator's pods
//! use, carries the OCI labels, and the image names and tags agree across the Dockerfiles,
//! the chart's values, the sample RaftClusters, the e2e suite and the README.

use std::path::{Path, PathBuf};

use kuberaft_operator::build::RUN_AS_ID;
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const REGISTRY: &str = "ghcr.io/kuberaft";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// One image: its Dockerfile, the package and binary it builds.
struct Image {
    dockerfile: &'static str,
    crate_dir: &'static str,
    package: &'static str,
    bin: &'static str,
}

const IMAGES: &[Image] = &[
    Image {
        dockerfile: "docker/raft-node.Dockerfile",
        crate_dir: "node",
        package: "kuberaft-node",
        bin: "raft-node",
    },
    Image {
        dockerfile: "docker/raft-operator.Dockerfile",
        crate_dir: "operator",
        package: "kuberaft-operator",
        bin: "raft-operator",
    },
];

impl Image {
    fn reference(&self) -> String {
        format!("{REGISTRY}/{}:{VERSION}", self.bin)
    }
}

/// `(INSTRUCTION, arguments)` with continuation lines joined and comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                out.push((keyword.to_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "a continuation line ends the file");
    out
}

/// Instructions per stage (each starting with its FROM).
fn stages(text: &str) -> Vec<Vec<(String, String)>> {
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for (k, args) in instructions(text) {
        if k == "FROM" {
            stages.push(Vec::new());
        }
        match stages.last_mut() {
            Some(stage) => stage.push((k, args)),
            None if k == "ARG" => {}
            None => panic!("{k} before the first FROM"),
        }
    }
    stages
}

fn args_of<'a>(stage: &'a [(String, String)], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, a)| a.as_str())
        .collect()
}

/// `key="value"` pairs of LABEL instructions.
fn labels(stage: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for args in args_of(stage, "LABEL") {
        let mut rest = args.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=').expect("LABEL key=value");
            let after = after.strip_prefix('"').expect("LABEL values are quoted");
            let (value, tail) = after.split_once('"').expect("closing quote");
            out.push((key.trim().to_owned(), value.to_owned()));
            rest = tail.trim();
        }
    }
    out
}

/// A `key = "value"` line of the workspace manifest.
fn workspace_field(key: &str) -> String {
    read("Cargo.toml")
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("Cargo.toml has no {key}"))
}

#[test]
fn dockerfiles_build_a_static_binary_of_the_crate_and_run_it_as_non_root() {
    let channel = read("rust-toolchain.toml")
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("channel = ")
                .map(|v| v.trim_matches('"').to_owned())
        })
        .expect("rust-toolchain.toml channel");
    let minor = channel
        .rsplit_once('.')
        .map_or(channel.as_str(), |(m, _)| m)
        .to_owned();
    for image in IMAGES {
        let text = read(image.dockerfile);
        let name = image.dockerfile;
        let stages = stages(&text);
        assert!(stages.len() >= 2, "{name}: multi-stage build expected");

        // The builder: the pinned toolchain, building exactly the binary, statically.
        let builder = &stages[0];
        assert_eq!(
            builder[0].1,
            format!("rust:{minor} AS builder"),
            "{name}: builder on the toolchain rust-toolchain.toml pins"
        );
        let manifest = read(&format!("{}/Cargo.toml", image.crate_dir));
        assert!(
            manifest.contains(&format!("name = \"{}\"", image.package)),
            "{}/Cargo.toml is not package {}",
            image.crate_dir,
            image.package
        );
        let bin_file = root()
            .join(image.crate_dir)
            .join("src/bin")
            .join(format!("{}.rs", image.bin));
        let bin_dir = root()
            .join(image.crate_dir)
            .join("src/bin")
            .join(image.bin)
            .join("main.rs");
        assert!(
            bin_file.is_file()
                || bin_dir.is_file()
                || manifest.contains(&format!("[[bin]]\nname = \"{}\"", image.bin)),
            "{name}: package {} has no binary {}",
            image.package,
            image.bin
        );
        let build = format!("-p {} --bin {}", image.package, image.bin);
        let runs = args_of(builder, "RUN");
        let cargo = runs
            .iter()
            .find(|r| r.contains("cargo build"))
            .unwrap_or_else(|| panic!("{name}: no cargo build"));
        for needle in [build.as_str(), "--release", "--locked", "--target"] {
            assert!(
                cargo.contains(needle),
                "{name}: cargo build lacks {needle}: {cargo}"
            );
        }
        assert!(
            runs.iter().any(|r| r.contains("x86_64-unknown-linux-musl")),
            "{name}: builds for x86_64-unknown-linux-musl (a static binary)"
        );

        // The final stage: distroless static (or scratch), non-root, labelled.
        let last = stages.last().unwrap();
        let base = &last[0].1;
        assert!(
            base == "gcr.io/distroless/static-debian12:nonroot" || base == "scratch",
            "{name}: final stage on {base}"
        );
        let users = args_of(last, "USER");
        assert_eq!(
            users,
            [format!("{RUN_AS_ID}:{RUN_AS_ID}").as_str()],
            "{name}: USER must be the uid the operator's pods run as"
        );
        assert!(
            args_of(last, "ARG").contains(&format!("VERSION={VERSION}").as_str()),
            "{name}: ARG VERSION={VERSION} (the workspace version)"
        );
        let labels = labels(last);
        let label = |k: &str| {
            labels
                .iter()
                .find(|(key, _)| key == &format!("org.opencontainers.image.{k}"))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name}: no org.opencontainers.image.{k} label"))
        };
        assert_eq!(label("title"), image.bin);
        assert!(!label("description").is_empty());
        assert_eq!(label("source"), workspace_field("repository"));
        assert_eq!(label("licenses"), "Apache-2.0");
        assert_eq!(label("licenses"), workspace_field("license"));
        assert_eq!(label("version"), "${VERSION}");
        let installed = format!("/usr/local/bin/{}", image.bin);
        assert!(
            args_of(last, "COPY")
                .iter()
                .any(|c| c.starts_with("--from=builder") && c.ends_with(&installed)),
            "{name}: the binary is copied from the builder to {installed}"
        );
        assert_eq!(
            args_of(last, "ENTRYPOINT"),
            [format!("[\"{installed}\"]").as_str()],
            "{name}: exec-form ENTRYPOINT of the binary"
        );
        assert!(
            text.contains(&format!(
                "docker build -t {} -f {name} .",
                image.reference()
            )),
            "{name}: the header shows how to build {}",
            image.reference()
        );
    }
}

#[test]
fn dockerignore_keeps_build_outputs_and_git_out_but_not_the_sources() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target", "target-*", ".git"] {
        assert!(patterns.contains(&needed), ".dockerignore lacks {needed}");
    }
    let members = read("Cargo.toml");
    let members = members
        .lines()
        .find_map(|l| l.strip_prefix("members = "))
        .expect("workspace members");
    for image in IMAGES {
        let copies: Vec<String> = stages(&read(image.dockerfile))[0]
            .iter()
            .filter(|(k, _)| k == "COPY")
            .map(|(_, a)| a.clone())
            .collect();
        for member in members.trim_matches(|c| c == '[' || c == ']').split(',') {
            let member = member.trim().trim_matches('"');
            let top = member.split('/').next().unwrap();
            assert!(
                copies
                    .iter()
                    .any(|c| c.split_whitespace().next() == Some(top)),
                "{}: workspace member {member} is not copied; cargo cannot load the workspace",
                image.dockerfile
            );
            assert!(
                !patterns.contains(&top),
                ".dockerignore drops workspace member {member}"
            );
        }
        for file in ["Cargo.toml", "Cargo.lock"] {
            assert!(
                copies.iter().any(|c| c.contains(file)),
                "{}: {file} not copied",
                image.dockerfile
            );
            assert!(!patterns.contains(&file), ".dockerignore drops {file}");
        }
    }
}

/// `docker build` and `kind load docker-image` commands of the README, with line
/// continuations joined.
fn documented_commands() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for doc in ["README.md"] {
        let Ok(text) = std::fs::read_to_string(root().join(doc)) else {
            continue;
        };
        let joined = text.replace("\\\n", " ");
        for line in joined.lines() {
            let line = line.trim();
            if line.starts_with("docker build") || line.starts_with("kind load docker-image") {
                out.push((
                    doc.to_owned(),
                    line.split_whitespace().collect::<Vec<_>>().join(" "),
                ));
            }
        }
    }
    out
}

#[test]
fn image_names_agree_across_values_samples_e2e_and_readme() {
    // The chart's default image is the operator image at the chart's appVersion.
    let values: Value = serde_yaml::from_str(&read("charts/kuberaft/values.yaml")).unwrap();
    let chart: Value = serde_yaml::from_str(&read("charts/kuberaft/Chart.yaml")).unwrap();
    assert_eq!(
        values["image"]["repository"],
        format!("{REGISTRY}/raft-operator")
    );
    assert_eq!(values["image"]["tag"], "", "the tag defaults to appVersion");
    assert_eq!(chart["appVersion"], VERSION);

    // Every sample runs the node image this workspace builds.
    let node_image = IMAGES[0].reference();
    let samples = root().join("crds/samples");
    for entry in std::fs::read_dir(&samples).unwrap() {
        let path = entry.unwrap().path();
        let sample: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            sample["spec"]["image"],
            node_image.as_str(),
            "{}",
            path.display()
        );
    }

    // The real-cluster e2e suite defaults to the same node image.
    let e2e = read("e2e/tests/cluster_support/env.rs");
    assert!(
        e2e.contains(&format!("\"{REGISTRY}/raft-node\"")),
        "e2e/tests/cluster_support/env.rs: default node image repository"
    );

    // The README builds each Dockerfile under its image name and loads both into kind.
    let commands = documented_commands();
    for image in IMAGES {
        let builds: Vec<&(String, String)> = commands
            .iter()
            .filter(|(_, c)| {
                c.starts_with("docker build") && c.contains(&format!("-f {}", image.dockerfile))
            })
            .collect();
        assert!(
            !builds.is_empty(),
            "no README documents `docker build -f {}`",
            image.dockerfile
        );
        for (doc, command) in builds {
            assert!(
                command.contains(&format!("-t {} ", image.reference())),
                "{doc}: `{command}` must tag {}",
                image.reference()
            );
        }
        assert!(
            commands
                .iter()
                .any(|(_, c)| c.starts_with("kind load docker-image")
                    && c.contains(&image.reference())),
            "no README loads {} into kind",
            image.reference()
        );
    }
    // Any other image loaded into kind (an upgrade's new tag, say) is still one of ours.
    for (doc, command) in &commands {
        if let Some(args) = command.strip_prefix("kind load docker-image") {
            let mut words = args.split_whitespace();
            while let Some(word) = words.next() {
                if word.starts_with('-') {
                    if !word.contains('=') {
                        words.next(); // the option's value, e.g. `--name kind`
                    }
                    continue;
                }
                let repository = word.rsplit_once(':').map_or(word, |(r, _)| r);
                assert!(
                    IMAGES
                        .iter()
                        .any(|i| repository == format!("{REGISTRY}/{}", i.bin)),
                    "{doc}: `{command}` loads {word}, which no Dockerfile builds"
                );
            }
        }
    }
}
