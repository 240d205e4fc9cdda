//! Prints the `RaftCluster` CustomResourceDefinition as YAML.
//!
//! `crds/raftcluster.yaml` is this program's output, committed; a test fails when they
//! differ. Regenerate with:
//! `cargo run -p kuberaft-operator --bin crdgen > crds/raftcluster.yaml`

fn main() -> anyhow::Result<()> {
    print!("{}", kuberaft_operator::crd::crd_yaml()?);
    Ok(())
}
