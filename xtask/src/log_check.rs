//! Security check (S16, S17): fails the build when a log call, a print or a panic message receives a raw environment value, header value or secret.
//!
//! Sinks (`macros`): `tracing` events and spans (fields, `%`/`?` shorthands, format arguments and
//! `{name}` captures), `#[instrument]` parameters that are not skipped, `Span::record`, `log`
//! macros, `print!`-style macros, panic, `unreachable!`, `todo!` and assert messages, and a
//! `format!` inside any of them. Sources (`walk`, `rules`): `std::env::var*`, header values,
//! `expose_secret()`, bindings with a secret type or a secret-looking name, and simple `let`
//! bindings of those. The escape hatch (`allow`) is a comment on the line or the line before:
//! `// log-check: allow(<reason>)`; one without a reason is itself a finding.
//!
//! It reads syntax only: values that cross a function boundary or hide behind inferred types
//! are not followed. It is one layer of S16, beside `secrecy` types and redacting `Debug`.

mod allow;
mod macros;
mod rules;
mod walk;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

/// One place where a sensitive value reaches a sink, or a malformed allow comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    path: PathBuf,
    line: usize,
    column: usize,
    message: String,
}

impl Finding {
    /// The file, as it was given to the check (relative to the workspace root for a scan).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The 1-based line of the leaking value.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column of the leaking value.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What leaked and into which sink.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `path:line:col: message`, the shape editors and CI logs link to.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Why the check could not look at the files it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum LogCheckError {
    /// A directory of the workspace could not be listed.
    #[error("cannot list {}: {source}; is the workspace root right?", dir.display())]
    List {
        /// The directory.
        dir: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A source file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Directories of the workspace whose Rust files are checked.
const SCANNED_DIRS: &[&str] = &["crates", "xtask"];

/// Planted leaks for the check's own tests; reporting them is what those tests assert.
const FIXTURES_DIR: &str = "xtask/tests/fixtures";

/// Checks every Rust file of the workspace at `root`, in path order.
pub fn check_workspace(root: &Path) -> Result<Vec<Finding>, LogCheckError> {
    let mut findings = Vec::new();
    for path in workspace_sources(root)? {
        let source =
            std::fs::read_to_string(root.join(&path)).map_err(|source| LogCheckError::Read {
                path: root.join(&path),
                source,
            })?;
        findings.extend(check_source(&path, &source));
    }
    Ok(findings)
}

/// The Rust files the workspace scan covers, relative to `root`: everything under `crates/` and
/// `xtask/` except build output, hidden directories and the check's fixtures.
pub fn workspace_sources(root: &Path) -> Result<Vec<PathBuf>, LogCheckError> {
    let mut found = Vec::new();
    for dir in SCANNED_DIRS {
        collect_rust_files(root, Path::new(dir), &mut found)?;
    }
    found.sort();
    Ok(found)
}

fn collect_rust_files(
    root: &Path,
    relative: &Path,
    found: &mut Vec<PathBuf>,
) -> Result<(), LogCheckError> {
    let dir = root.join(relative);
    let entries = std::fs::read_dir(&dir).map_err(|source| LogCheckError::List {
        dir: dir.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| LogCheckError::List {
            dir: dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        let path = relative.join(&name);
        if name_text == "target" || name_text.starts_with('.') || path == Path::new(FIXTURES_DIR) {
            continue;
        }
        let file_type = entry.file_type().map_err(|source| LogCheckError::List {
            dir: dir.clone(),
            source,
        })?;
        if file_type.is_dir() {
            collect_rust_files(root, &path, found)?;
        } else if name_text.ends_with(".rs") {
            found.push(path);
        }
    }
    Ok(())
}

/// Checks one file's source; `path` only labels the findings. A file that does not parse is
/// one finding: the check cannot vouch for what it cannot read.
pub fn check_source(path: &Path, source: &str) -> Vec<Finding> {
    let finding = |line: usize, column: usize, message: String| Finding {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let file = match syn::parse_file(source) {
        Ok(file) => file,
        Err(error) => {
            let start = error.span().start();
            return vec![finding(
                start.line,
                start.column + 1,
                format!("cannot parse this file, so the log check cannot vouch for it: {error}"),
            )];
        }
    };
    let allows = allow::Allows::scan(source);
    let mut findings: Vec<Finding> = walk::FileWalk::run(&file)
        .into_iter()
        .filter(|raw| !raw.anchors.iter().any(|line| allows.covers(*line)))
        .map(|raw| finding(raw.line, raw.column, raw.message))
        .collect();
    findings.extend(
        allows
            .errors()
            .iter()
            .map(|error| finding(error.line, error.column, error.message.clone())),
    );
    findings.sort_by_key(|finding| (finding.line, finding.column));
    findings.dedup();
    findings
}
