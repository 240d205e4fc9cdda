//! Evaluation: pipelines against the values, `.Release` and `.Chart`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::parse::{Command, Defines, Node, Operand, Pipeline};
use super::{ChartMeta, Release, Result, err};

/// A value in flight: the root context (`.`) or data.
#[derive(Clone, Debug)]
enum Val {
    Root,
    Data(Value),
}

pub(super) struct Ctx<'a> {
    pub(super) chart: &'a ChartMeta,
    pub(super) release: &'a Release,
    pub(super) values: &'a Value,
    pub(super) defines: &'a Defines,
    pub(super) used: std::cell::RefCell<BTreeSet<String>>,
    pub(super) depth: std::cell::Cell<usize>,
}

impl Ctx<'_> {
    pub(super) fn render_nodes(&self, file: &str, nodes: &[Node], out: &mut String) -> Result<()> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Output { pipe, line } => {
                    let v = self.eval(file, *line, pipe)?;
                    out.push_str(&print(&v).map_err(|m| err(file, *line, m))?);
                }
                Node::If {
                    cond,
                    then,
                    otherwise,
                    line,
                } => {
                    let v = self.eval(file, *line, cond)?;
                    let branch = if truthy(&v) { then } else { otherwise };
                    self.render_nodes(file, branch, out)?;
                }
            }
        }
        Ok(())
    }

    fn eval(&self, file: &str, line: usize, pipe: &Pipeline) -> Result<Val> {
        let mut prev: Option<Val> = None;
        for command in &pipe.0 {
            prev = Some(match command {
                Command::Operand(op) => self.operand(file, line, op)?,
                Command::Call(name, args) => {
                    let mut values = args
                        .iter()
                        .map(|a| self.operand(file, line, a))
                        .collect::<Result<Vec<_>>>()?;
                    values.extend(prev.take());
                    self.call(file, line, name, values)?
                }
            });
        }
        prev.ok_or_else(|| err(file, line, "empty pipeline"))
    }

    fn operand(&self, file: &str, line: usize, op: &Operand) -> Result<Val> {
        Ok(match op {
            Operand::Dot => Val::Root,
            Operand::Str(s) => Val::Data(Value::String(s.clone())),
            Operand::Int(n) => Val::Data(Value::from(*n)),
            Operand::Bool(b) => Val::Data(Value::Bool(*b)),
            Operand::Sub(p) => self.eval(file, line, p)?,
            Operand::Field(path) => Val::Data(self.field(path).map_err(|m| err(file, line, m))?),
        })
    }

    fn field(&self, path: &[String]) -> std::result::Result<Value, String> {
        let strs: Vec<&str> = path.iter().map(String::as_str).collect();
        let s = |v: &str| Ok(Value::String(v.to_owned()));
        match strs.as_slice() {
            ["Values", rest @ ..] if !rest.is_empty() => {
                let mut v = self.values;
                for (i, key) in rest.iter().enumerate() {
                    v = v.get(*key).ok_or_else(|| {
                        format!(
                            ".Values.{} is not in the values (Helm would print <no value>)",
                            rest[..=i].join(".")
                        )
                    })?;
                }
                self.used.borrow_mut().insert(rest.join("."));
                Ok(v.clone())
            }
            ["Release", "Name"] => s(&self.release.name),
            ["Release", "Namespace"] => s(&self.release.namespace),
            ["Release", "Service"] => s("Helm"),
            ["Chart", "Name"] => s(&self.chart.name),
            ["Chart", "Version"] => s(&self.chart.version),
            ["Chart", "AppVersion"] => s(&self.chart.app_version),
            _ => Err(format!(
                "unsupported field .{}: the test renderer knows .Values, .Release.{{Name,Namespace,Service}} and .Chart.{{Name,Version,AppVersion}}",
                path.join(".")
            )),
        }
    }

    fn call(&self, file: &str, line: usize, name: &str, args: Vec<Val>) -> Result<Val> {
        let fail = |m: String| err(file, line, format!("{name}: {m}"));
        let data = |v: &Val| match v {
            Val::Data(d) => Ok(d.clone()),
            Val::Root => Err(fail("the root context is not a value".into())),
        };
        let int = |v: &Val| match data(v)? {
            Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
            other => Err(fail(format!("expected an integer, got {other}"))),
        };
        let string = |v: &Val| match data(v)? {
            Value::String(s) => Ok(s),
            other => Err(fail(format!("expected a string, got {other}"))),
        };
        match (name, args.as_slice()) {
            ("include", [template, Val::Root]) => {
                let template = string(template)?;
                let (def_file, nodes) = self
                    .defines
                    .get(&template)
                    .ok_or_else(|| fail(format!("no template named {template:?}")))?;
                if self.depth.get() > 32 {
                    return Err(fail("include nested too deep (recursion?)".into()));
                }
                self.depth.set(self.depth.get() + 1);
                let mut out = String::new();
                let result = self.render_nodes(def_file, nodes, &mut out);
                self.depth.set(self.depth.get() - 1);
                result?;
                Ok(Val::Data(Value::String(out)))
            }
            ("include", _) => Err(fail(
                "expects a template name and . (the root context)".into(),
            )),
            ("default", [fallback, given]) => Ok(if truthy(given) {
                given.clone()
            } else {
                fallback.clone()
            }),
            ("quote", [v]) => {
                let text = print(&Val::Data(data(v)?)).map_err(fail)?;
                Ok(Val::Data(Value::String(go_quote(&text))))
            }
            ("toYaml", [v]) => {
                let yaml = serde_yaml::to_string(&data(v)?).map_err(|e| fail(e.to_string()))?;
                Ok(Val::Data(Value::String(
                    yaml.trim_end_matches('\n').to_owned(),
                )))
            }
            ("indent", [n, s]) => Ok(Val::Data(Value::String(indent(int(n)?, &string(s)?)))),
            ("nindent", [n, s]) => Ok(Val::Data(Value::String(format!(
                "\n{}",
                indent(int(n)?, &string(s)?)
            )))),
            _ => Err(fail(format!(
                "unsupported arity: {} argument(s)",
                args.len()
            ))),
        }
    }
}

/// Sprig's `indent`: every line, empty ones included, gets the padding.
fn indent(n: i64, s: &str) -> String {
    let pad = " ".repeat(usize::try_from(n).unwrap_or(0));
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

/// Go's `%q` for the characters a chart plausibly quotes.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's and Sprig's notion of empty.
fn truthy(v: &Val) -> bool {
    match v {
        Val::Root => true,
        Val::Data(Value::Null) => false,
        Val::Data(Value::Bool(b)) => *b,
        Val::Data(Value::Number(n)) => n.as_f64() != Some(0.0),
        Val::Data(Value::String(s)) => !s.is_empty(),
        Val::Data(Value::Array(a)) => !a.is_empty(),
        Val::Data(Value::Object(o)) => !o.is_empty(),
    }
}

/// How `{{ value }}` prints. Helm parses values into float64, which Go prints in exponent
/// form from 1e6 up, and prints maps as `map[...]`; both are refused rather than emulated.
fn print(v: &Val) -> std::result::Result<String, String> {
    match v {
        Val::Root => Err("printing the root context".into()),
        Val::Data(Value::String(s)) => Ok(s.clone()),
        Val::Data(Value::Bool(b)) => Ok(b.to_string()),
        Val::Data(Value::Number(n)) => match n.as_i64() {
            Some(i) if i.abs() < 1_000_000 => Ok(i.to_string()),
            _ => Err(format!(
                "{n} would print in Go's float format (Helm reads numbers as float64); quote it in the values"
            )),
        },
        Val::Data(Value::Null) => Err("printing a null value (Helm would print <no value>)".into()),
        Val::Data(other) => Err(format!("printing a collection ({other}); use toYaml")),
    }
}
