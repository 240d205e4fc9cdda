//! Command-line parsing for scenario scripts: `cmd pos pos key=value key=(1,2)`, where a
//! parenthesised group or a double-quoted string is one token even if it holds spaces.

use crate::types::NodeId;

/// One parsed command line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Args {
    pub(crate) cmd: String,
    pub(crate) pos: Vec<String>,
    pub(crate) kv: Vec<(String, String)>,
}

/// A script error: the command itself is wrong, not the core.
pub(crate) type ArgResult<T> = Result<T, String>;

impl Args {
    pub(crate) fn parse(line: &str) -> ArgResult<Args> {
        let mut tokens = tokenize(line)?.into_iter();
        let cmd = tokens.next().ok_or("empty command")?;
        let mut args = Args {
            cmd,
            ..Args::default()
        };
        for t in tokens {
            match t.split_once('=') {
                Some((k, v)) if !t.starts_with('"') && !t.starts_with('(') => {
                    args.kv.push((k.to_string(), v.to_string()));
                }
                _ => args.pos.push(t),
            }
        }
        Ok(args)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.kv
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Fails on keys the command does not know, so a typo never passes silently.
    pub(crate) fn allow(&self, keys: &[&str]) -> ArgResult<()> {
        match self.kv.iter().find(|(k, _)| !keys.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("unknown argument `{k}=` for `{}`", self.cmd)),
            None => Ok(()),
        }
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.pos.iter().any(|p| p == name)
    }

    pub(crate) fn u64_kv(&self, key: &str) -> ArgResult<Option<u64>> {
        self.get(key).map(|v| parse_u64(key, v)).transpose()
    }

    pub(crate) fn bool_kv(&self, key: &str) -> ArgResult<Option<bool>> {
        self.get(key)
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("`{key}` must be true or false, got `{v}`")),
            })
            .transpose()
    }

    pub(crate) fn ids_kv(&self, key: &str) -> ArgResult<Option<Vec<NodeId>>> {
        self.get(key).map(parse_ids).transpose()
    }

    /// The `i`-th positional argument as a node id.
    pub(crate) fn id(&self, i: usize) -> ArgResult<NodeId> {
        let v = self
            .pos
            .get(i)
            .ok_or_else(|| format!("`{}` needs a node id", self.cmd))?;
        parse_u64("node id", v)
    }

    /// Every positional argument as a node id (except the named flags).
    pub(crate) fn ids(&self, flags: &[&str]) -> ArgResult<Vec<NodeId>> {
        self.pos
            .iter()
            .filter(|p| !flags.contains(&p.as_str()))
            .map(|p| parse_u64("node id", p))
            .collect()
    }

    /// A string value, with surrounding double quotes removed.
    pub(crate) fn str_kv(&self, key: &str) -> Option<String> {
        self.get(key).map(unquote)
    }
}

pub(crate) fn unquote(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
        .to_string()
}

pub(crate) fn parse_u64(what: &str, v: &str) -> ArgResult<u64> {
    v.parse()
        .map_err(|_| format!("`{what}` must be a number, got `{v}`"))
}

/// `(1,2,3)`, `(1 2 3)`, `()` or a bare `4`.
pub(crate) fn parse_ids(v: &str) -> ArgResult<Vec<NodeId>> {
    let inner = v
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(v);
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| parse_u64("node id", s))
        .collect()
}

fn tokenize(line: &str) -> ArgResult<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quoted) = (0u32, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '(' if !quoted => {
                depth += 1;
                cur.push(c);
            }
            ')' if !quoted => {
                depth = depth.checked_sub(1).ok_or("unbalanced `)`")?;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted || depth != 0 {
        return Err(format!("unbalanced quotes or parentheses in `{line}`"));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_quotes_are_single_tokens() {
        let a = Args::parse(r#"partition (1, 2) (3) ctx="a b" voters=(1,2,3) leave"#).unwrap();
        assert_eq!(a.cmd, "partition");
        assert_eq!(a.pos, vec!["(1, 2)", "(3)", "leave"]);
        assert_eq!(a.str_kv("ctx").as_deref(), Some("a b"));
        assert_eq!(a.ids_kv("voters").unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(parse_ids("()").unwrap(), Vec::<u64>::new());
        assert!(Args::parse("x (1").is_err());
    }
}
