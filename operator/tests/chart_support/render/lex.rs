//! Lexing: text and actions, with the `{{-` and `-}}` trim markers applied.

use super::{Result, err};

#[derive(Clone, Debug)]
pub(super) enum Token {
    Text(String),
    /// The inside of `{{ ... }}` without delimiters, trim markers and surrounding blanks.
    Action {
        body: String,
        line: usize,
    },
}

pub(super) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub(super) fn lex(file: &str, src: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start_matches(is_blank);
        }
        let mut after = &rest[open + 2..];
        let action_line = line + rest[..open].matches('\n').count();
        let trim_left = after.starts_with('-') && after[1..].starts_with(is_blank);
        if trim_left {
            text = text.trim_end_matches(is_blank);
            after = &after[1..];
        }
        if !text.is_empty() {
            tokens.push(Token::Text(text.to_owned()));
        }
        let close = find_close(after)
            .ok_or_else(|| err(file, action_line, "unterminated action: no closing }}"))?;
        let mut body = &after[..close];
        let trim_right = body.ends_with('-') && body[..body.len() - 1].ends_with(is_blank);
        if trim_right {
            body = &body[..body.len() - 1];
        }
        let body = body.trim_matches(is_blank);
        let comment = body.starts_with("/*");
        if comment && !body.ends_with("*/") {
            return Err(err(
                file,
                action_line,
                "a comment must end with */ right before }}",
            ));
        }
        if !comment {
            tokens.push(Token::Action {
                body: body.to_owned(),
                line: action_line,
            });
        }
        trim_next = trim_right;
        let consumed = open + 2 + usize::from(trim_left) + close + 2;
        line += rest[..consumed].matches('\n').count();
        rest = &rest[consumed..];
    }
    let mut text = rest;
    if trim_next {
        text = text.trim_start_matches(is_blank);
    }
    if !text.is_empty() {
        tokens.push(Token::Text(text.to_owned()));
    }
    Ok(tokens)
}

/// Offset of the `}}` closing an action, skipping string literals and comments.
fn find_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let trimmed = s.trim_start_matches(is_blank);
    if trimmed.starts_with("/*") {
        let start = s.len() - trimmed.len();
        let end = start + trimmed.find("*/")? + 2;
        return s[end..].find("}}").map(|i| end + i);
    }
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}
