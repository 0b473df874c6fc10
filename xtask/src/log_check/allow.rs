//! Security escape hatch of the log check (S17): reasoned allow comments, and refusal of unreasoned ones.
//!
//! Comments are not in the syntax tree, so they are read from the source text: a `//` comment
//! starting with `log-check:` is a directive. A `//` inside a string literal is told apart by
//! counting the unescaped quotes before it on the line, which is enough for this repository's
//! sources (a raw string holding `"` and `//` on one line would fool it; none does).

use std::collections::BTreeSet;

/// The allow comments of one file: the lines they cover and the malformed ones.
pub(crate) struct Allows {
    covered: BTreeSet<usize>,
    errors: Vec<AllowError>,
}

/// A directive that allows nothing, reported as a finding so nobody mistakes it for one that does.
pub(crate) struct AllowError {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

impl Allows {
    /// Reads every directive of a file's source.
    pub(crate) fn scan(source: &str) -> Self {
        let mut allows = Allows {
            covered: BTreeSet::new(),
            errors: Vec::new(),
        };
        for (index, line) in source.lines().enumerate() {
            let line_number = index + 1;
            let Some((column, comment)) = line_comment(line) else {
                continue;
            };
            let Some(directive) = comment.trim_start().strip_prefix("log-check:") else {
                continue;
            };
            match parse_allow(directive.trim()) {
                Ok(()) => {
                    allows.covered.insert(line_number);
                    allows.covered.insert(line_number + 1);
                }
                Err(message) => allows.errors.push(AllowError {
                    line: line_number,
                    column: column + 1,
                    message,
                }),
            }
        }
        allows
    }

    /// Whether a reasoned allow sits on this line or the line before it.
    pub(crate) fn covers(&self, line: usize) -> bool {
        self.covered.contains(&line)
    }

    /// The directives that allow nothing.
    pub(crate) fn errors(&self) -> &[AllowError] {
        &self.errors
    }
}

/// The text after the first `//` of a line that is outside a string literal, with its column.
/// Doc comments (`///`, `//!`) are not directives, so documentation can show the syntax.
fn line_comment(line: &str) -> Option<(usize, &str)> {
    let bytes = line.as_bytes();
    let mut quotes = 0usize;
    let mut index = 0;
    while index + 1 < bytes.len() {
        match bytes[index] {
            b'\\' => {
                index += 2;
                continue;
            }
            b'"' => quotes += 1,
            b'/' if bytes[index + 1] == b'/' && quotes.is_multiple_of(2) => {
                let rest = &line[index + 2..];
                if rest.starts_with('/') || rest.starts_with('!') {
                    return None;
                }
                return Some((line[..index].chars().count(), rest));
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// Checks `allow(<reason>)` and that the reason says something.
fn parse_allow(directive: &str) -> Result<(), String> {
    let Some(inner) = directive.strip_prefix("allow(") else {
        return Err(format!(
            "unknown log-check directive `{directive}`; write `log-check: allow(<why this value is safe to log>)`"
        ));
    };
    let Some(reason) = inner.rfind(')').map(|end| &inner[..end]) else {
        return Err(
            "log-check allow is missing its closing `)`; write `log-check: allow(<why this value is safe to log>)`"
                .to_owned(),
        );
    };
    if reason.trim().is_empty() {
        return Err(
            "log-check allow without a reason allows nothing; write why this value is safe to log inside `allow(...)`"
                .to_owned(),
        );
    }
    Ok(())
}
