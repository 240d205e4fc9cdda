//! The Helm chart (`charts/kuberaft`) as the tests see it: its metadata, values and schema,
//! and its templates rendered by [`render`] into parsed Kubernetes objects.

#![allow(dead_code)]

pub mod render;
#[cfg(test)]
mod render_tests;

use std::path::{Path, PathBuf};

use serde_json::Value;

use render::{ChartMeta, Release, Rendered, Templates};

/// The release every test renders: `helm install kuberaft charts/kuberaft -n kuberaft-system`.
pub const RELEASE: &str = "kuberaft";
pub const NAMESPACE: &str = "kuberaft-system";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent")
        .to_path_buf()
}

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/kuberaft")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn yaml_file(path: &Path) -> Value {
    serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

pub fn chart_meta() -> ChartMeta {
    let chart = yaml_file(&chart_dir().join("Chart.yaml"));
    let field = |k: &str| {
        chart[k]
            .as_str()
            .unwrap_or_else(|| panic!("Chart.yaml: {k} must be a string"))
            .to_owned()
    };
    ChartMeta {
        name: field("name"),
        version: field("version"),
        app_version: field("appVersion"),
    }
}

/// The chart's values.yaml.
pub fn default_values() -> Value {
    yaml_file(&chart_dir().join("values.yaml"))
}

/// The chart's values.schema.json.
pub fn schema() -> Value {
    let path = chart_dir().join("values.schema.json");
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Schema errors of `values`, one `path: message` each.
pub fn schema_errors(values: &Value) -> Vec<String> {
    let validator = jsonschema::draft7::new(&schema()).expect("values.schema.json compiles");
    validator
        .iter_errors(values)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// `base` with `overrides` merged in, as `helm install -f overrides.yaml` merges: maps
/// key by key, anything else replaced.
pub fn merged(base: &Value, overrides: &Value) -> Value {
    match (base, overrides) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let m = match out.get(k) {
                    Some(existing) => merged(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), m);
            }
            Value::Object(out)
        }
        (_, o) => o.clone(),
    }
}

/// Every file under `templates/`, by name.
pub fn template_sources() -> Vec<(String, String)> {
    let dir = chart_dir().join("templates");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, read(&path))
        })
        .collect();
    out.sort();
    out
}

/// The chart rendered with `overrides` over values.yaml, after checking the merged values
/// against the schema as `helm install` does.
pub fn render(overrides: Value) -> Chart {
    let values = merged(&default_values(), &overrides);
    let errors = schema_errors(&values);
    assert!(
        errors.is_empty(),
        "values refused by the schema: {errors:#?}"
    );
    let templates = Templates::parse(&template_sources()).unwrap_or_else(|e| panic!("{e}"));
    let release = Release {
        name: RELEASE.to_owned(),
        namespace: NAMESPACE.to_owned(),
    };
    let rendered = templates
        .render(&chart_meta(), &release, &values)
        .unwrap_or_else(|e| panic!("{e}"));
    Chart::parse(rendered)
}

/// Rendered output, with every YAML template split into its documents.
#[derive(Debug)]
pub struct Chart {
    pub rendered: Rendered,
    /// `(file, object)` for every non-empty document of every `.yaml` template.
    pub objects: Vec<(String, Value)>,
}

impl Chart {
    fn parse(rendered: Rendered) -> Self {
        let mut objects = Vec::new();
        for (file, text) in &rendered.files {
            if !file.ends_with(".yaml") {
                continue;
            }
            for (i, doc) in split_documents(text).iter().enumerate() {
                let value: Value = serde_yaml::from_str(doc).unwrap_or_else(|e| {
                    panic!("{file}, document {i}, is not well-formed YAML: {e}\n---\n{doc}\n---")
                });
                if value.is_null() {
                    continue;
                }
                for key in ["apiVersion", "kind"] {
                    assert!(
                        value[key].as_str().is_some_and(|s| !s.is_empty()),
                        "{file}, document {i}: no {key}\n{doc}"
                    );
                }
                assert!(
                    value["metadata"]["name"]
                        .as_str()
                        .is_some_and(|s| !s.is_empty()),
                    "{file}, document {i}: no metadata.name\n{doc}"
                );
                objects.push((file.clone(), value));
            }
        }
        Chart { rendered, objects }
    }

    /// Kinds of the rendered objects, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .objects
            .iter()
            .map(|(_, o)| o["kind"].as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        kinds
    }

    /// The one object of `kind`.
    pub fn one(&self, kind: &str) -> &Value {
        let found: Vec<&Value> = self.all(kind);
        match found.as_slice() {
            [one] => one,
            _ => panic!("expected one {kind}, rendered {}", found.len()),
        }
    }

    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(_, o)| o["kind"] == kind)
            .map(|(_, o)| o)
            .collect()
    }

    pub fn file(&self, name: &str) -> &str {
        self.rendered
            .files
            .get(name)
            .unwrap_or_else(|| panic!("no rendered {name}"))
    }
}

/// Documents of a YAML stream, split on `---` lines.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().unwrap();
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs
}
