//! A renderer for the subset of Helm's Go templates the chart uses, so the chart is tested
//! without a `helm` binary: field references (`.Values.a.b`, `.Release.Name`,
//! `.Release.Namespace`, `.Release.Service`, `.Chart.Name`, `.Chart.Version`,
//! `.Chart.AppVersion`), string, integer and boolean literals, `(...)` sub-pipelines,
//! `|` pipelines, `define`/`include`, `if`/`else`/`end`, comments, `{{-`/`-}}` trimming,
//! and the functions `default`, `quote`, `toYaml`, `indent` and `nindent`.
//!
//! Anything else (`range`, `with`, variables, other functions, `.Capabilities`, a value
//! missing from the values, printing a map) is an error naming the file and line, never
//! skipped: a chart that strays outside the subset fails its test until the renderer learns
//! the construct. Semantics follow Go's text/template and Sprig where the chart relies on
//! them (a pipeline passes its value as the last argument; `if` and `default` treat false,
//! 0, "", null and empty collections as empty).

mod eval;
mod lex;
mod parse;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use eval::Ctx;
use lex::lex;
use parse::{Defines, Node, Parser};

/// What `.Chart` exposes.
#[derive(Clone, Debug)]
pub struct ChartMeta {
    pub name: String,
    pub version: String,
    pub app_version: String,
}

/// What `.Release` exposes.
#[derive(Clone, Debug)]
pub struct Release {
    pub name: String,
    pub namespace: String,
}

/// A rendering or parsing failure, located in its template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for RenderError {}

type Result<T, E = RenderError> = std::result::Result<T, E>;

/// Every template's output, and every `.Values` path the templates read.
#[derive(Debug)]
pub struct Rendered {
    /// Output per template file name (`templates/` files only, `_*.tpl` excluded).
    pub files: BTreeMap<String, String>,
    /// Dotted paths below `.Values` that were read, e.g. `image.tag`.
    pub used_values: BTreeSet<String>,
}

/// Parsed templates, ready to render with any values.
#[derive(Debug)]
pub struct Templates {
    files: BTreeMap<String, Vec<Node>>,
    defines: Defines,
}

impl Templates {
    /// Parses `(file name, source)` pairs. Defines from every file are visible everywhere,
    /// as in Helm; a name defined twice is an error.
    pub fn parse(sources: &[(String, String)]) -> Result<Self> {
        let mut files = BTreeMap::new();
        let mut defines = BTreeMap::new();
        for (file, source) in sources {
            let tokens = lex(file, source)?;
            let mut parser = Parser {
                file,
                tokens,
                pos: 0,
            };
            let (nodes, stop) = parser.nodes(true, &mut defines)?;
            if let Some((keyword, line)) = stop {
                return Err(err(
                    file,
                    line,
                    format!("{{{{ {keyword} }}}} without an open block"),
                ));
            }
            files.insert(file.clone(), nodes);
        }
        Ok(Templates { files, defines })
    }

    /// Renders every non-partial file (names not starting with `_`).
    pub fn render(&self, chart: &ChartMeta, release: &Release, values: &Value) -> Result<Rendered> {
        let ctx = Ctx {
            chart,
            release,
            values,
            defines: &self.defines,
            used: std::cell::RefCell::new(BTreeSet::new()),
            depth: std::cell::Cell::new(0),
        };
        let mut out = BTreeMap::new();
        for (file, nodes) in &self.files {
            if file.starts_with('_') {
                continue;
            }
            let mut text = String::new();
            ctx.render_nodes(file, nodes, &mut text)?;
            out.insert(file.clone(), text);
        }
        Ok(Rendered {
            files: out,
            used_values: ctx.used.into_inner(),
        })
    }
}

fn err(file: &str, line: usize, message: impl Into<String>) -> RenderError {
    RenderError {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}
