//! `cargo xtask <task>`: the command line of the repository checks; the checks are in the library.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask log-check\n\n  log-check   fail when a log call, print or panic message receives an environment,\n              header or secret value (S17)";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("log-check") => log_check(),
        Some("-h" | "--help") => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            let _ = writeln!(std::io::stderr(), "{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn log_check() -> ExitCode {
    // The workspace root is the parent of this crate, wherever cargo was started from.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let findings = match xtask::log_check::check_workspace(&root) {
        Ok(findings) => findings,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "log-check: {error}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    for finding in &findings {
        let _ = writeln!(stdout, "{finding}");
    }
    if findings.is_empty() {
        return ExitCode::SUCCESS;
    }
    let _ = writeln!(
        std::io::stderr(),
        "log-check: {} finding(s). Log an id, a name or a length instead of the value; if the value \
         is safe to log, say why on the line before: // log-check: allow(<reason>)",
        findings.len()
    );
    ExitCode::FAILURE
}
