//! Parsing: actions into a tree of text, outputs and `if` blocks; `define`s collected.

use std::collections::BTreeMap;

use super::lex::{Token, is_blank};
use super::{Result, err};

#[derive(Clone, Debug)]
pub(super) enum Node {
    Text(String),
    Output {
        pipe: Pipeline,
        line: usize,
    },
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
        line: usize,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Pipeline(pub(super) Vec<Command>);

#[derive(Clone, Debug)]
pub(super) enum Command {
    /// A lone operand (only first in a pipeline).
    Operand(Operand),
    /// A function and its arguments; later stages get the previous value appended.
    Call(String, Vec<Operand>),
}

#[derive(Clone, Debug)]
pub(super) enum Operand {
    Dot,
    Field(Vec<String>),
    Str(String),
    Int(i64),
    Bool(bool),
    Sub(Pipeline),
}

const FUNCTIONS: &[&str] = &["include", "default", "quote", "toYaml", "indent", "nindent"];

/// The keyword that ended a block (`end` or `else`) and its line.
type Stop = Option<(&'static str, usize)>;

/// Named templates: name → (defining file, body).
pub(super) type Defines = BTreeMap<String, (String, Vec<Node>)>;

pub(super) struct Parser<'a> {
    pub(super) file: &'a str,
    pub(super) tokens: Vec<Token>,
    pub(super) pos: usize,
}

impl Parser<'_> {
    /// Nodes until `end`/`else` (returned with its line) or the end of input.
    pub(super) fn nodes(&mut self, top: bool, defines: &mut Defines) -> Result<(Vec<Node>, Stop)> {
        let mut out = Vec::new();
        while self.pos < self.tokens.len() {
            let token = self.tokens[self.pos].clone();
            self.pos += 1;
            let (body, line) = match token {
                Token::Text(t) => {
                    out.push(Node::Text(t));
                    continue;
                }
                Token::Action { body, line } => (body, line),
            };
            let (keyword, rest) = split_keyword(&body);
            match keyword {
                "end" if rest.is_empty() => return Ok((out, Some(("end", line)))),
                "else" if rest.is_empty() => return Ok((out, Some(("else", line)))),
                "if" => {
                    let cond = parse_pipeline(self.file, line, rest)?;
                    let (then, stop) = self.nodes(false, defines)?;
                    let otherwise = match stop {
                        Some(("end", _)) => Vec::new(),
                        Some(("else", else_line)) => match self.nodes(false, defines)? {
                            (nodes, Some(("end", _))) => nodes,
                            _ => return Err(err(self.file, else_line, "else without end")),
                        },
                        _ => return Err(err(self.file, line, "if without end")),
                    };
                    out.push(Node::If {
                        cond,
                        then,
                        otherwise,
                        line,
                    });
                }
                "define" => {
                    if !top {
                        return Err(err(self.file, line, "define inside a block"));
                    }
                    let name = match tokenize(self.file, line, rest)?.as_slice() {
                        [Tok::Str(name)] => name.clone(),
                        _ => return Err(err(self.file, line, "define takes one string name")),
                    };
                    let (nodes, stop) = self.nodes(false, defines)?;
                    if !matches!(stop, Some(("end", _))) {
                        return Err(err(self.file, line, format!("define {name:?} without end")));
                    }
                    if defines
                        .insert(name.clone(), (self.file.to_owned(), nodes))
                        .is_some()
                    {
                        return Err(err(self.file, line, format!("{name:?} is defined twice")));
                    }
                }
                "range" | "with" | "template" | "block" | "break" | "continue" | "else" | "end" => {
                    return Err(err(
                        self.file,
                        line,
                        format!(
                            "unsupported construct {{{{ {body} }}}}: the test renderer implements only the subset in its module doc"
                        ),
                    ));
                }
                _ => out.push(Node::Output {
                    pipe: parse_pipeline(self.file, line, &body)?,
                    line,
                }),
            }
        }
        Ok((out, None))
    }
}

fn split_keyword(body: &str) -> (&str, &str) {
    let end = body.find(is_blank).unwrap_or(body.len());
    (&body[..end], body[end..].trim_matches(is_blank))
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Dot,
    Field(Vec<String>),
    Str(String),
    Int(i64),
    Ident(String),
    Pipe,
    Open,
    Close,
}

fn tokenize(file: &str, line: usize, s: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let bad = |what: String| err(file, line, what);
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if is_blank(c) => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '"' => {
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(bad(format!("unterminated string in {s:?}"))),
                        Some('"') => break,
                        Some('\\') => {
                            let escaped = match chars.get(i + 1) {
                                Some('"') => '"',
                                Some('\\') => '\\',
                                Some('n') => '\n',
                                Some('t') => '\t',
                                other => {
                                    return Err(bad(format!("unsupported escape \\{other:?}")));
                                }
                            };
                            lit.push(escaped);
                            i += 2;
                            continue;
                        }
                        Some(&ch) => lit.push(ch),
                    }
                    i += 1;
                }
                out.push(Tok::Str(lit));
                i += 1;
            }
            '.' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || "._".contains(chars[i])) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                if text == "." {
                    out.push(Tok::Dot);
                } else {
                    let parts: Vec<String> = text[1..].split('.').map(str::to_owned).collect();
                    if parts.iter().any(String::is_empty) {
                        return Err(bad(format!("malformed field {text:?}")));
                    }
                    out.push(Tok::Field(parts));
                }
            }
            '-' | '0'..='9' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse()
                    .map_err(|_| bad(format!("unsupported number {text:?}")))?;
                out.push(Tok::Int(n));
            }
            _ if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            _ => {
                return Err(bad(format!(
                    "unsupported syntax {:?} in {s:?} (variables, raw strings and operators are outside the subset)",
                    c
                )));
            }
        }
    }
    Ok(out)
}

fn parse_pipeline(file: &str, line: usize, s: &str) -> Result<Pipeline> {
    let toks = tokenize(file, line, s)?;
    let mut pos = 0;
    let pipe = pipeline(file, line, &toks, &mut pos)?;
    if pos != toks.len() {
        return Err(err(
            file,
            line,
            format!("unexpected {:?} in {s:?}", toks[pos]),
        ));
    }
    Ok(pipe)
}

fn pipeline(file: &str, line: usize, toks: &[Tok], pos: &mut usize) -> Result<Pipeline> {
    let mut commands = Vec::new();
    loop {
        let mut words: Vec<&Tok> = Vec::new();
        let mut operands = Vec::new();
        let mut name = None;
        while let Some(t) = toks.get(*pos) {
            match t {
                Tok::Pipe | Tok::Close => break,
                Tok::Ident(id) if words.is_empty() => {
                    match id.as_str() {
                        "true" | "false" => operands.push(Operand::Bool(id == "true")),
                        f if FUNCTIONS.contains(&f) => name = Some(id.clone()),
                        other => {
                            return Err(err(file, line, format!("unsupported function {other:?}")));
                        }
                    }
                    *pos += 1;
                }
                Tok::Ident(id) if id == "true" || id == "false" => {
                    operands.push(Operand::Bool(id == "true"));
                    *pos += 1;
                }
                Tok::Ident(id) => {
                    return Err(err(file, line, format!("{id:?} cannot be an argument")));
                }
                Tok::Open => {
                    *pos += 1;
                    let sub = pipeline(file, line, toks, pos)?;
                    if toks.get(*pos) != Some(&Tok::Close) {
                        return Err(err(file, line, "unclosed ("));
                    }
                    *pos += 1;
                    operands.push(Operand::Sub(sub));
                }
                Tok::Dot => {
                    operands.push(Operand::Dot);
                    *pos += 1;
                }
                Tok::Field(f) => {
                    operands.push(Operand::Field(f.clone()));
                    *pos += 1;
                }
                Tok::Str(s) => {
                    operands.push(Operand::Str(s.clone()));
                    *pos += 1;
                }
                Tok::Int(n) => {
                    operands.push(Operand::Int(*n));
                    *pos += 1;
                }
            }
            words.push(t);
        }
        let command = match (name, operands.len()) {
            (Some(f), _) => Command::Call(f, operands),
            (None, 1) if commands.is_empty() => Command::Operand(operands.remove(0)),
            (None, 0) => return Err(err(file, line, "empty command")),
            (None, _) => {
                return Err(err(
                    file,
                    line,
                    "only a function may take arguments or follow |",
                ));
            }
        };
        commands.push(command);
        if toks.get(*pos) == Some(&Tok::Pipe) {
            *pos += 1;
        } else {
            return Ok(Pipeline(commands));
        }
    }
}
