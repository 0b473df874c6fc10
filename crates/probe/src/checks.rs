//! The registry of named checks, their arguments, and the one place a finding is printed.
//!
//! Each area module (`files`, `privilege`, `syscalls`, `processes`, `network`, `resources`,
//! `lifecycle`) lists its checks as [`Check`] values; [`run`] finds one by name, runs it and
//! renders the line. Helpers that must answer before they finish (listeners, `idle`,
//! `daemonize stay`) print through [`emit`] themselves and then never return.

mod files;
mod lifecycle;
mod network;
mod privilege;
mod processes;
mod resources;
mod syscalls;

#[cfg(test)]
mod tests;

use std::io::Write as _;

use crate::report::Finding;
use crate::sys::Errno;

/// A mistake in the command line: the probe prints an `error` line and exits with status 2.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage(pub String);

/// What a check returns: a finding, or a usage mistake.
pub type CheckResult = Result<Finding, Usage>;

/// One named escape attempt.
pub struct Check {
    /// The name given on the command line.
    pub name: &'static str,
    /// Its arguments, for the usage text (`<required> [optional]`).
    pub arguments: &'static str,
    /// What it attempts and what `escaped` would mean.
    pub summary: &'static str,
    /// The attempt.
    pub run: fn(&Args<'_>) -> CheckResult,
}

/// The arguments after the check's name.
pub struct Args<'a> {
    /// The check being run (for usage messages and for helpers that print early).
    pub check: &'static Check,
    values: &'a [String],
}

impl<'a> Args<'a> {
    /// Arguments `values` for `check`.
    pub fn new(check: &'static Check, values: &'a [String]) -> Self {
        Args { check, values }
    }

    /// Argument `index`, if given.
    pub fn optional(&self, index: usize) -> Option<&'a str> {
        self.values.get(index).map(String::as_str)
    }

    /// Argument `index`, or a usage error naming what was expected.
    pub fn required(&self, index: usize) -> Result<&'a str, Usage> {
        self.optional(index).ok_or_else(|| self.usage())
    }

    /// Argument `index` as a number, or `default` when absent.
    pub fn number(&self, index: usize, default: u64) -> Result<u64, Usage> {
        match self.optional(index) {
            None => Ok(default),
            Some(text) => parse_number(text).ok_or_else(|| self.usage()),
        }
    }

    /// Argument `index` as a number, if given.
    pub fn optional_number(&self, index: usize) -> Result<Option<u64>, Usage> {
        match self.optional(index) {
            None => Ok(None),
            Some(text) => parse_number(text).map(Some).ok_or_else(|| self.usage()),
        }
    }

    /// Every argument from `index` on.
    pub fn rest(&self, index: usize) -> &'a [String] {
        self.values.get(index..).unwrap_or(&[])
    }

    /// The usage error for this check.
    pub fn usage(&self) -> Usage {
        Usage(format!(
            "usage: mcp-sandbox-probe {} {}",
            self.check.name, self.check.arguments
        ))
    }
}

/// A decimal number, with an optional binary suffix (`k`, `m`, `g`: KiB, MiB, GiB).
pub fn parse_number(text: &str) -> Option<u64> {
    let (digits, scale) = match text.char_indices().last()? {
        (at, 'k' | 'K') => (&text[..at], 1u64 << 10),
        (at, 'm' | 'M') => (&text[..at], 1 << 20),
        (at, 'g' | 'G') => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// Every check, in a stable order.
pub fn all() -> impl Iterator<Item = &'static Check> {
    [
        files::CHECKS,
        privilege::CHECKS,
        syscalls::CHECKS,
        processes::CHECKS,
        network::CHECKS,
        resources::CHECKS,
        lifecycle::CHECKS,
    ]
    .into_iter()
    .flatten()
}

/// The check called `name`.
pub fn find(name: &str) -> Option<&'static Check> {
    all().find(|check| check.name == name)
}

/// Runs the command line `arguments` (without the program name): the line to print and the
/// exit status (0 for any finding, 2 for a usage mistake). `list` gives the catalogue instead.
pub fn run(arguments: &[String]) -> (String, u8) {
    let Some(name) = arguments.first() else {
        return (
            usage_line(
                "(none)",
                "usage: mcp-sandbox-probe <check> [args...]; `list` names the checks",
            ),
            2,
        );
    };
    if name == "list" {
        return (catalogue(), 0);
    }
    let Some(check) = find(name) else {
        return (
            usage_line(
                name,
                &format!("unknown check {name:?}; `list` names the checks"),
            ),
            2,
        );
    };
    let args = Args::new(check, &arguments[1..]);
    match (check.run)(&args) {
        Ok(finding) => (finding.to_json_line(check.name), 0),
        Err(Usage(message)) => (usage_line(check.name, &message), 2),
    }
}

/// `list`: one JSON object per check (name, arguments, summary), one per line. This is help
/// text, not a finding.
fn catalogue() -> String {
    let lines: Vec<String> = all()
        .map(|check| {
            serde_json::json!({
                "check": check.name,
                "arguments": check.arguments,
                "summary": check.summary,
            })
            .to_string()
        })
        .collect();
    lines.join("\n")
}

/// The `error` line of a usage mistake.
fn usage_line(check: &str, message: &str) -> String {
    Finding::error(message).to_json_line(check)
}

/// Prints one finding line now and flushes it: for helpers that keep running after they answer.
pub fn emit(check: &Check, finding: &Finding) {
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves nobody to tell; the check goes on regardless.
    let _ = writeln!(out, "{}", finding.to_json_line(check.name));
    let _ = out.flush();
}

/// The finding for a failed `std::io` call: `denied` with its errno, or `error` when the failure
/// carries no errno (a probe-side problem rather than the kernel's answer).
pub fn io_refused(error: &std::io::Error, what: &str) -> Finding {
    match error.raw_os_error() {
        Some(code) => Finding::denied(Errno(code), format!("{what}: {error}")),
        None => Finding::error(format!("{what}: {error}")),
    }
}

/// The finding for one system call made with harmless arguments: success is an escape; an errno
/// in `reached_kernel` means the call passed the filter and every permission check and failed
/// only on those arguments, which is an escape too; any other errno is a denial.
pub fn syscall_finding<T>(result: Result<T, Errno>, call: &str, reached_kernel: &[i32]) -> Finding {
    match result {
        Ok(_) => Finding::escaped(format!("{call} succeeded")),
        Err(errno) if reached_kernel.contains(&errno.0) => Finding::escaped_with(
            errno,
            format!(
                "{call} passed the filter and permission checks; failed only on its harmless arguments"
            ),
        ),
        Err(errno) => Finding::denied(errno, format!("{call} refused")),
    }
}

/// A path unique to this probe process, under `/tmp`, for files and directories a check makes.
pub fn scratch_path(what: &str) -> String {
    format!("/tmp/mcp-probe-{what}-{}", crate::sys::getpid())
}

/// Text for a report: lossy UTF-8, at most `limit` bytes of input.
pub fn text_of(bytes: &[u8], limit: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned()
}
