//! The datadriven file format (cockroachdb/datadriven, as etcd-io/raft uses it):
//!
//! ```text
//! # comments and blank lines between directives are kept as they are
//! command arg key=value
//! ----
//! expected output, ended by a blank line
//!
//! command whose output has blank lines
//! ----
//! ----
//! line
//!
//! line
//! ----
//! ----
//! ```

use std::ops::Range;

/// One `command ---- output` block of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// 1-based line of the command, for messages.
    pub(crate) line: usize,
    pub(crate) command: String,
    /// Lines between the command and `----` (no command uses them yet).
    pub(crate) input: Vec<String>,
    pub(crate) expected: String,
    /// The lines holding the expected output, replaced on rewrite.
    lines: Range<usize>,
}

const SEP: &str = "----";

pub(crate) fn parse(text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim_end();
        if l.is_empty() || l.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut input = Vec::new();
        i += 1;
        while i < lines.len() && lines[i].trim_end() != SEP {
            input.push(lines[i].to_string());
            i += 1;
        }
        if i == lines.len() {
            return Err(format!("line {}: `{l}` has no `{SEP}` line", start + 1));
        }
        i += 1;
        let from = i;
        let expected;
        if lines.get(i).map(|s| s.trim_end()) == Some(SEP) {
            // Long form: ends with two separator lines.
            i += 1;
            let body = i;
            while i + 1 < lines.len() && !(lines[i] == SEP && lines[i + 1] == SEP) {
                i += 1;
            }
            if i + 1 >= lines.len() {
                return Err(format!(
                    "line {}: unterminated `{SEP}`/`{SEP}` block",
                    start + 1
                ));
            }
            expected = lines[body..i].join("\n");
            i += 2;
        } else {
            while i < lines.len() && !lines[i].trim_end().is_empty() {
                i += 1;
            }
            expected = lines[from..i].join("\n");
        }
        blocks.push(Block {
            line: start + 1,
            command: l.to_string(),
            input,
            expected,
            lines: from..i,
        });
    }
    Ok(blocks)
}

/// The script text with each block's expected output replaced by `outputs[i]`.
pub(crate) fn rewrite(text: &str, blocks: &[Block], outputs: &[String]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    for (b, actual) in blocks.iter().zip(outputs) {
        for l in &lines[i..b.lines.start] {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(&format_output(actual));
        i = b.lines.end;
    }
    for l in &lines[i.min(lines.len())..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn format_output(actual: &str) -> String {
    let actual = actual.trim_end_matches('\n');
    if actual.is_empty() {
        String::new()
    } else if actual.lines().any(|l| l.trim().is_empty()) {
        format!("{SEP}\n{actual}\n{SEP}\n{SEP}\n")
    } else {
        format!("{actual}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_rewrite_round_trip() {
        let text =
            "# c\nfoo 1\n----\nold\nold2\n\nbar\n----\n----\na\n\nb\n----\n----\n\nbaz\n----\n";
        let blocks = parse(text).unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].expected, "old\nold2");
        assert_eq!(blocks[1].expected, "a\n\nb");
        assert_eq!(blocks[2].expected, "");
        let same: Vec<String> = blocks.iter().map(|b| b.expected.clone()).collect();
        assert_eq!(rewrite(text, &blocks, &same), text);
        let new = rewrite(text, &blocks, &["x".into(), "y".into(), "p\n\nq".into()]);
        assert_eq!(
            new,
            "# c\nfoo 1\n----\nx\n\nbar\n----\ny\n\nbaz\n----\n----\np\n\nq\n----\n----\n"
        );
        assert!(parse("foo\n").is_err());
    }
}
