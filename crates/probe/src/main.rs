//! `mcp-sandbox-probe`: a deliberately hostile program for MCP Hero's escape tests.
//!
//! The escape suite (`crates/mcp-hero/tests/escape.rs`) runs it inside a real sandbox as
//! `mcp-sandbox-probe <check> [args...]`. It performs exactly one named escape attempt (read a
//! host secret, call a filtered system call, connect to the gateway's port, fork without end...)
//! and prints exactly one JSON line to stdout, then exits 0:
//!
//! ```text
//! {"check":"keyctl","outcome":"denied","errno":"EPERM","detail":"keyctl(KEYCTL_GET_KEYRING_ID) refused"}
//! ```
//!
//! `outcome` is `denied`, `escaped` or `error` (see `report`); a usage mistake prints an `error`
//! line and exits 2; `mcp-sandbox-probe list` names every check. Checks that end only when the
//! sandbox stops them (memory bomb, CPU spin, stdout flood, `file-size-signal`) may be killed
//! before they print anything; that is their expected result, and the test reads it from the
//! sandbox's exit description. Helpers (`listen-*`, `idle`, `daemonize stay`) print their line
//! first and then keep running.
//!
//! Why this crate may use `unsafe`: the workspace forbids unsafe code, but this program exists to
//! make raw system calls the sandbox must refuse (ptrace, keyctl, mount, clone3, TIOCSTI...), most
//! of which no safe crate wraps, and whose errno is the evidence. So its `[lints]` table copies the
//! workspace's levels with `unsafe_code = "deny"` instead of `forbid`, and exactly one module,
//! `sys`, allows it; `clippy::undocumented_unsafe_blocks` makes each block say why it is sound.
//! The probe is never linked into the gateway: it is a separate binary that only tests run, and
//! only inside a sandbox. Its arguments are chosen so that an attempt that is not refused does
//! no lasting harm even outside one (files it creates are removed, mounts are undone, pivot_root
//! names missing paths), except the resource checks, which tests always run with a cap.
//!
//! The probe never starts a thread before a check that forks (only `cpu-spin` with several
//! threads uses them), so `fork` in it is a plain copy of a single-threaded process.

mod addr;
mod checks;
mod report;
mod sys;

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let (line, status) = checks::run(&arguments);
    let mut out = std::io::stdout().lock();
    // A closed stdout (the flood checks) leaves nobody to tell.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    ExitCode::from(status)
}
