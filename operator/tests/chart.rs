//! The Helm chart `charts/kuberaft`, tested without `helm`: values against the schema, the
//! CRD copy, RBAC against `reconcile::rbac::RULES`, and every template rendered (by the
//! subset renderer in `chart_support::render`) into well-formed objects whose Deployment the
//! real `raft-operator` binary accepts.

mod chart_support;

use std::collections::BTreeSet;
use std::process::Command;

use chart_support::{
    NAMESPACE, RELEASE, chart_dir, default_values, read, render, repo_root, schema, schema_errors,
    yaml_file,
};
use kuberaft_operator::crd::RaftCluster;
use kuberaft_operator::reconcile::rbac::{self, RULES};
use serde_json::{Value, json};

#[test]
fn chart_metadata_names_the_workspace_release() {
    let chart = yaml_file(&chart_dir().join("Chart.yaml"));
    assert_eq!(chart["apiVersion"], "v2", "Helm 3 charts are apiVersion v2");
    assert_eq!(chart["name"], "kuberaft");
    assert_eq!(chart["version"], "0.1.0");
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml appVersion must be the workspace version in Cargo.toml"
    );
    assert_eq!(chart["type"], "application");
}

#[test]
fn default_values_are_valid_against_a_draft_07_schema() {
    let schema = schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    if let Err(e) = jsonschema::draft7::meta::validate(&schema) {
        panic!("values.schema.json is not a valid draft-07 schema: {e}");
    }
    let errors = schema_errors(&default_values());
    assert!(errors.is_empty(), "values.yaml is refused: {errors:#?}");
}

#[test]
fn schema_refuses_bad_values_naming_the_field() {
    // (override, text the error must contain)
    let cases = [
        (json!({"replicaCount": "two"}), "/replicaCount"),
        (json!({"replicaCount": -1}), "/replicaCount"),
        (json!({"replicas": 2}), "replicas"),
        (json!({"image": {"tga": "1.0"}}), "tga"),
        (
            json!({"image": {"pullPolicy": "Sometimes"}}),
            "/image/pullPolicy",
        ),
        (json!({"image": {"repository": ""}}), "/image/repository"),
        (json!({"logging": {"format": "xml"}}), "/logging/format"),
        (
            json!({"serviceMonitor": {"enabled": "yes"}}),
            "/serviceMonitor/enabled",
        ),
        (
            json!({"serviceMonitor": {"interval": "half a minute"}}),
            "/serviceMonitor/interval",
        ),
        (json!({"httpPort": 80}), "/httpPort"),
        (
            json!({"resources": {"requests": {"cpu": "lots"}}}),
            "/resources/requests/cpu",
        ),
        (
            json!({"watchNamespace": "Not_A_Namespace"}),
            "/watchNamespace",
        ),
        (
            json!({"leaderElection": {"enabled": false}}),
            "/replicaCount",
        ),
        (
            json!({"serviceAccount": {"create": false}}),
            "/serviceAccount/name",
        ),
        (
            json!({"tolerations": [{"key": "k", "effect": "Sometimes"}]}),
            "/tolerations/0/effect",
        ),
    ];
    let base = default_values();
    for (overrides, field) in cases {
        let values = chart_support::merged(&base, &overrides);
        let errors = schema_errors(&values);
        assert!(
            !errors.is_empty(),
            "the schema accepts {overrides} but must refuse it"
        );
        assert!(
            errors.iter().any(|e| e.contains(field)),
            "refusing {overrides}, no error names {field}: {errors:#?}"
        );
    }
    // The fixes of the last two cases are accepted.
    for fixed in [
        json!({"leaderElection": {"enabled": false}, "replicaCount": 1}),
        json!({"serviceAccount": {"create": false, "name": "existing"}}),
    ] {
        let errors = schema_errors(&chart_support::merged(&base, &fixed));
        assert!(errors.is_empty(), "{fixed} is refused: {errors:#?}");
    }
}

#[test]
fn schema_and_values_describe_the_same_keys() {
    fn walk(values: &Value, schema: &Value, root: &Value, path: &str, problems: &mut Vec<String>) {
        let schema = resolve(schema, root);
        let props = schema["properties"].as_object();
        let Some(props) = props else { return };
        let given = values.as_object().cloned().unwrap_or_default();
        for (key, sub) in props {
            let at = format!("{path}{key}");
            if key == "global" && path.is_empty() {
                continue;
            }
            if sub.get("description").and_then(Value::as_str).is_none() {
                problems.push(format!("schema property {at} has no description"));
            }
            match given.get(key) {
                None => problems.push(format!("schema property {at} is not in values.yaml")),
                Some(v) if v.as_object().is_some_and(|o| !o.is_empty()) => {
                    walk(v, sub, root, &format!("{at}."), problems);
                }
                Some(_) => {}
            }
        }
        for key in given.keys() {
            if !props.contains_key(key) {
                problems.push(format!("values.yaml key {path}{key} is not in the schema"));
            }
        }
    }
    fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.strip_prefix("#/definitions/").expect("local $ref");
                &root["definitions"][name]
            }
            None => schema,
        }
    }
    let schema = schema();
    let mut problems = Vec::new();
    walk(&default_values(), &schema, &schema, "", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown top-level values must be refused"
    );
}

#[test]
fn chart_crd_is_a_byte_copy_of_the_generated_crd() {
    let source =
        std::fs::read(repo_root().join("crds/raftcluster.yaml")).expect("crds/raftcluster.yaml");
    let copy = std::fs::read(chart_dir().join("crds/raftcluster.yaml")).ok();
    assert!(
        copy.as_deref() == Some(source.as_slice()),
        "charts/kuberaft/crds/raftcluster.yaml {} crds/raftcluster.yaml. From the repository root run:\n    \
         cp crds/raftcluster.yaml charts/kuberaft/crds/raftcluster.yaml",
        if copy.is_some() {
            "differs from"
        } else {
            "is missing; it must be a copy of"
        }
    );
}

type Grant = (String, String, String);

/// `RULES` as the chart's YAML, for a failure message that says what to paste.
fn rules_yaml() -> String {
    let mut out = String::from("rules:\n");
    for r in RULES {
        let verbs: Vec<String> = r.verbs.iter().map(|v| format!("{v:?}")).collect();
        out.push_str(&format!(
            "  - apiGroups: [{:?}]\n    resources: [{:?}]\n    verbs: [{}]\n",
            r.api_group,
            r.resource,
            verbs.join(", ")
        ));
    }
    out
}

#[test]
fn rbac_is_exactly_the_operators_rules() {
    let chart = render(json!({}));
    let mut granted: BTreeSet<Grant> = BTreeSet::new();
    let roles: Vec<&Value> = chart
        .all("ClusterRole")
        .into_iter()
        .chain(chart.all("Role"))
        .collect();
    assert!(
        !roles.is_empty(),
        "the chart renders no ClusterRole or Role"
    );
    for role in roles {
        for rule in role["rules"].as_array().expect("rules") {
            let strings = |k: &str| -> Vec<String> {
                rule[k]
                    .as_array()
                    .unwrap_or_else(|| panic!("rule without {k}: {rule}"))
                    .iter()
                    .map(|v| v.as_str().expect("string").to_owned())
                    .collect()
            };
            assert!(
                rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
                "RULES has no resourceNames or nonResourceURLs: {rule}"
            );
            for g in strings("apiGroups") {
                for r in strings("resources") {
                    for v in strings("verbs") {
                        assert!(
                            !(g.contains('*') || r.contains('*') || v.contains('*')),
                            "wildcard grant {g}/{r} {v}"
                        );
                        granted.insert((g.clone(), r.clone(), v));
                    }
                }
            }
        }
    }
    let wanted: BTreeSet<Grant> = rbac::grants()
        .into_iter()
        .map(|(g, r, v)| (g.to_owned(), r.to_owned(), v.to_owned()))
        .collect();
    let missing: Vec<&Grant> = wanted.difference(&granted).collect();
    let extra: Vec<&Grant> = granted.difference(&wanted).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the chart's RBAC differs from reconcile::rbac::RULES\n\
         in RULES, not granted by the chart: {missing:?}\n\
         granted by the chart, not in RULES: {extra:?}\n\
         templates/clusterrole.yaml should read:\n{}",
        rules_yaml()
    );
}

#[test]
fn default_render_has_the_operator_objects() {
    let chart = render(json!({}));
    assert_eq!(
        chart.kinds(),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ServiceAccount"
        ]
    );
    for (file, object) in &chart.objects {
        let meta = &object["metadata"];
        let cluster_scoped = matches!(
            object["kind"].as_str(),
            Some("ClusterRole" | "ClusterRoleBinding")
        );
        assert_eq!(
            meta["namespace"].as_str(),
            (!cluster_scoped).then_some(NAMESPACE),
            "{file}: namespace"
        );
        assert_eq!(
            meta["labels"]["app.kubernetes.io/instance"], RELEASE,
            "{file}: labels"
        );
        assert_eq!(
            meta["labels"]["app.kubernetes.io/version"],
            env!("CARGO_PKG_VERSION")
        );
    }
}

#[test]
fn service_monitor_only_when_enabled() {
    let chart = render(json!({"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}}));
    let kinds = chart.kinds();
    assert!(kinds.contains(&"ServiceMonitor".to_owned()), "{kinds:?}");
    let sm = chart.one("ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let service = chart.one("Service");
    let port = &service["spec"]["ports"][0];
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(
        endpoint["port"], port["name"],
        "ServiceMonitor scrapes the Service's port"
    );
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["interval"], "30s");
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"],
        json!([NAMESPACE])
    );
    let selector = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    for (k, v) in selector {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service by {k}"
        );
    }
    assert!(
        !render(json!({}))
            .kinds()
            .contains(&"ServiceMonitor".to_owned())
    );
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one operator container");
    &containers[0]
}

/// The container's env as `(name, value)`; downward-API variables give their field path.
fn env(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("env name").to_owned();
            let value = match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
                (Value::String(v), _) => v.clone(),
                (_, Value::String(path)) => format!("fieldRef:{path}"),
                other => panic!("env {name}: every value must be a string, got {other:?}"),
            };
            (name, value)
        })
        .collect()
}

fn env_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn deployment_is_hardened() {
    let chart = render(json!({}));
    let deployment = chart.one("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let pod_sc = &pod["securityContext"];
    assert_eq!(pod_sc["runAsNonRoot"], true);
    assert_eq!(pod_sc["runAsUser"], kuberaft_operator::build::RUN_AS_ID);
    assert_eq!(pod_sc["seccompProfile"]["type"], "RuntimeDefault");
    let sc = &container(deployment)["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(
        sc["capabilities"].get("add").is_none(),
        "no capability is added"
    );
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(sc.get("privileged").is_none_or(|p| p == false));
    let resources = &container(deployment)["resources"];
    assert!(resources["requests"]["cpu"].is_string() && resources["limits"]["memory"].is_string());
}

#[test]
fn deployment_runs_the_operator_with_leader_election_and_json_logs() {
    let chart = render(json!({}));
    let deployment = chart.one("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let c = container(deployment);
    assert_eq!(
        c["image"],
        format!(
            "ghcr.io/kuberaft/raft-operator:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(c["args"], json!(["run"]));
    let env = env(c);
    assert_eq!(env_value(&env, "KUBERAFT_LEADER_ELECTION"), Some("true"));
    assert_eq!(env_value(&env, "KUBERAFT_LOG_FORMAT"), Some("json"));
    assert_eq!(env_value(&env, "POD_NAME"), Some("fieldRef:metadata.name"));
    assert_eq!(
        env_value(&env, "POD_NAMESPACE"),
        Some("fieldRef:metadata.namespace")
    );
    assert_eq!(
        env_value(&env, "KUBERAFT_NAMESPACE"),
        None,
        "every namespace by default"
    );
    // Each remaining variable carries its value from values.yaml.
    let values = default_values();
    for (var, path) in [
        ("RUST_LOG", "/logging/level"),
        ("KUBERAFT_STATUS_DEADLINE_MS", "/statusDeadlineMs"),
        ("KUBERAFT_LEASE_NAME", "/leaderElection/leaseName"),
        ("KUBERAFT_LEASE_DURATION", "/leaderElection/leaseDuration"),
        ("KUBERAFT_LEASE_GRACE", "/leaderElection/leaseGrace"),
    ] {
        let want = match values.pointer(path) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => panic!("values.yaml has no {path}"),
        };
        assert_eq!(
            env_value(&env, var),
            Some(want.as_str()),
            "{var} from {path}"
        );
    }
    assert_eq!(
        env_value(&env, "KUBERAFT_HTTP_LISTEN"),
        Some(format!("0.0.0.0:{}", values["httpPort"]).as_str())
    );

    // Selector labels select the pod template.
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&labels[k], v, "pod template lacks selector label {k}");
    }

    let chart = render(json!({
        "replicaCount": 1,
        "leaderElection": {"enabled": false},
        "watchNamespace": "team-a",
        "image": {"tag": "1.2.3"},
        "logging": {"format": "text"},
    }));
    let deployment = chart.one("Deployment");
    let c = container(deployment);
    let env = self::env(c);
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(c["image"], "ghcr.io/kuberaft/raft-operator:1.2.3");
    assert_eq!(env_value(&env, "KUBERAFT_LEADER_ELECTION"), Some("false"));
    assert_eq!(env_value(&env, "KUBERAFT_NAMESPACE"), Some("team-a"));
    assert_eq!(env_value(&env, "KUBERAFT_LOG_FORMAT"), Some("text"));
}

#[test]
fn probes_and_ports_match_the_operators_http_server() {
    let http_rs = read(&repo_root().join("operator/src/bin/raft_operator/http.rs"));
    let chart = render(json!({"httpPort": 9090, "service": {"port": 80}}));
    let c = container(chart.one("Deployment"));
    let ports = c["ports"].as_array().unwrap();
    let [port] = ports.as_slice() else {
        panic!("one container port expected: {ports:?}");
    };
    assert_eq!(port["containerPort"], 9090);
    let env = env(c);
    assert_eq!(
        env_value(&env, "KUBERAFT_HTTP_LISTEN"),
        Some("0.0.0.0:9090")
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["port"], port["name"], "{probe} uses the http port");
        let path = get["path"].as_str().expect("probe path");
        assert!(
            http_rs.contains(&format!(".route(\"{path}\"")),
            "{probe} probes {path}, which raft-operator's http server does not serve"
        );
    }
    let service = chart.one("Service");
    let sp = &service["spec"]["ports"][0];
    assert_eq!(sp["port"], 80);
    assert_eq!(sp["targetPort"], port["name"]);
    let selector = service["spec"]["selector"].as_object().unwrap();
    let labels = &chart.one("Deployment")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector {
        assert_eq!(&labels[k], v, "the Service selects operator pods by {k}");
    }
}

/// Runs `raft-operator` with `args` and `env` and no Kubernetes configuration: flags that
/// parse get as far as looking for a cluster.
fn run_operator(args: &[String], env: &[(String, String)]) -> (Option<i32>, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_raft-operator"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("no-such-kubeconfig"))
        .output()
        .expect("running raft-operator");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_operator_binary_accepts_the_deployments_args_and_env() {
    for overrides in [
        json!({}),
        json!({"replicaCount": 1, "leaderElection": {"enabled": false}, "watchNamespace": "ns"}),
    ] {
        let chart = render(overrides.clone());
        let c = container(chart.one("Deployment"));
        let args: Vec<String> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let env: Vec<(String, String)> = env(c)
            .into_iter()
            .map(|(k, v)| match v.strip_prefix("fieldRef:") {
                Some(_) => (k.clone(), format!("{}-from-downward-api", k.to_lowercase())),
                None => (k, v),
            })
            .collect();
        let (code, stderr) = run_operator(&args, &env);
        assert!(
            code == Some(1) && stderr.contains("no Kubernetes configuration"),
            "with {overrides}, raft-operator {args:?} should parse its flags and stop at the \
             missing cluster; exit {code:?}:\n{stderr}"
        );
        // Every variable is one the binary reads: its help shows each flag's variable with
        // the value it sees. RUST_LOG is the log filter's, read by tracing-subscriber.
        let mut help_args = args.clone();
        help_args.push("--help".to_owned());
        let help = Command::new(env!("CARGO_BIN_EXE_raft-operator"))
            .args(&help_args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("running raft-operator --help");
        let help = String::from_utf8_lossy(&help.stdout);
        for (name, value) in &env {
            if name == "RUST_LOG" {
                let logging = read(&repo_root().join("operator/src/bin/raft_operator/logging.rs"));
                assert!(logging.contains("EnvFilter::try_from_default_env"));
                continue;
            }
            assert!(
                help.contains(&format!("[env: {name}={value}]")),
                "the Deployment sets {name}={value}, which `raft-operator {}` does not read:\n{help}",
                help_args.join(" ")
            );
        }
    }
    // The check above can fail: an env value the parser refuses is an error before any
    // cluster lookup.
    let (code, stderr) = run_operator(
        &["run".to_owned()],
        &[("KUBERAFT_LEADER_ELECTION".to_owned(), "maybe".to_owned())],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid value"), "{stderr}");
}

#[test]
fn the_deployment_runs_as_the_service_account_the_binding_grants() {
    for (overrides, expected) in [
        (json!({}), RELEASE.to_owned()),
        (
            json!({"fullnameOverride": "raft-ops"}),
            "raft-ops".to_owned(),
        ),
        (
            json!({"serviceAccount": {"create": false, "name": "preexisting"}}),
            "preexisting".to_owned(),
        ),
    ] {
        let chart = render(overrides.clone());
        let deployment = chart.one("Deployment");
        let sa_name = &deployment["spec"]["template"]["spec"]["serviceAccountName"];
        assert_eq!(sa_name, expected.as_str(), "{overrides}");
        let accounts = chart.all("ServiceAccount");
        if overrides["serviceAccount"]["create"] == false {
            assert!(
                accounts.is_empty(),
                "create: false renders no ServiceAccount"
            );
        } else {
            assert_eq!(accounts.len(), 1);
            assert_eq!(&accounts[0]["metadata"]["name"], sa_name);
        }
        let binding = chart.one("ClusterRoleBinding");
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": expected, "namespace": NAMESPACE}]),
            "{overrides}"
        );
        let role = chart.one("ClusterRole");
        assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    }
}

#[test]
fn every_value_is_used_by_a_template() {
    let mut used: BTreeSet<String> = BTreeSet::new();
    for overrides in [json!({}), json!({"serviceMonitor": {"enabled": true}})] {
        used.extend(render(overrides).rendered.used_values);
    }
    fn leaves(v: &Value, path: String, out: &mut Vec<String>) {
        match v.as_object() {
            Some(o) if !o.is_empty() => {
                for (k, sub) in o {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    leaves(sub, p, out);
                }
            }
            _ => out.push(path),
        }
    }
    let mut all = Vec::new();
    leaves(&default_values(), String::new(), &mut all);
    let unused: Vec<&String> = all
        .iter()
        .filter(|leaf| {
            !used
                .iter()
                .any(|u| *leaf == u || leaf.starts_with(&format!("{u}.")))
        })
        .collect();
    assert!(unused.is_empty(), "values no template reads: {unused:?}");
}

#[test]
fn notes_show_the_first_commands_on_the_minimal_sample() {
    let chart = render(json!({}));
    let notes = chart.file("NOTES.txt");
    let manifest = notes
        .split_once("<<EOF\n")
        .and_then(|(_, rest)| rest.split_once("\nEOF\n"))
        .map(|(m, _)| m)
        .expect("NOTES.txt applies a RaftCluster from a heredoc");
    let shown: RaftCluster =
        serde_yaml::from_str(manifest).expect("the NOTES manifest is a RaftCluster");
    let sample: RaftCluster =
        serde_yaml::from_str(&read(&repo_root().join("crds/samples/minimal.yaml"))).unwrap();
    assert_eq!(shown.metadata.name, sample.metadata.name);
    assert_eq!(
        shown.spec, sample.spec,
        "NOTES.txt shows crds/samples/minimal.yaml"
    );
    let name = shown.metadata.name.unwrap();
    for command in [
        "kubectl apply -f - <<EOF".to_owned(),
        format!("kubectl get raft {name}"),
        format!("kubectl scale raftcluster/{name} --replicas=5"),
        format!(
            "kubectl get events --field-selector involvedObject.kind=RaftCluster,involvedObject.name={name}"
        ),
        format!(
            "kubectl -n {NAMESPACE} get deployment,pods -l app.kubernetes.io/instance={RELEASE}"
        ),
    ] {
        assert!(
            notes.contains(&command),
            "NOTES.txt lacks `{command}`:\n{notes}"
        );
    }
}
