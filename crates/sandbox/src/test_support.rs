//! Helpers shared by this crate's tests that touch the real kernel: deciding whether a live
//! check can run here, and re-running one test function of the current test binary in a child
//! process (inside bubblewrap or under Landlock) so the test runner itself is never restricted.

#![allow(
    clippy::disallowed_methods,
    reason = "tests read their own switches from the environment"
)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Environment variable that tells a probe test it runs as the child of another test.
pub(crate) const PROBE_ENV: &str = "MCP_HERO_SANDBOX_TEST_PROBE";

/// The probe request when this process is a child started by [`rerun_test`], else `None`.
pub(crate) fn probe_request() -> Option<String> {
    std::env::var(PROBE_ENV).ok()
}

/// Whether a live check can run; prints why not, or panics when `CI=true` because there a
/// skipped security check must fail the build.
pub(crate) fn live_check_possible(what: &str, requirement: Result<(), String>) -> bool {
    match requirement {
        Ok(()) => true,
        Err(reason) => {
            let in_ci = std::env::var("CI").is_ok_and(|value| value == "true");
            assert!(!in_ci, "{what} cannot run in CI: {reason}");
            eprintln!("skipping {what}: {reason}");
            false
        }
    }
}

/// Root and a working `bwrap`, which the bubblewrap checks need.
pub(crate) fn bwrap_requirement() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not running as root".to_owned());
    }
    match Command::new("bwrap").arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`bwrap --version` failed: {}", output.status)),
        Err(error) => Err(format!("cannot run bwrap: {error}")),
    }
}

/// The current test binary.
pub(crate) fn test_binary() -> PathBuf {
    std::env::current_exe().unwrap()
}

/// Arguments that make the test binary run exactly one test, single-threaded, showing output.
pub(crate) fn single_test_args(test_name: &str) -> Vec<String> {
    vec![
        "--exact".to_owned(),
        test_name.to_owned(),
        "--nocapture".to_owned(),
        "--test-threads=1".to_owned(),
    ]
}

/// Runs `test_name` of the current test binary in a child process with `request` in
/// [`PROBE_ENV`].
pub(crate) fn rerun_test(test_name: &str, request: &str) -> Output {
    Command::new(test_binary())
        .args(single_test_args(test_name))
        .env(PROBE_ENV, request)
        .output()
        .unwrap()
}

/// Lossy text of a child's output, for assertions and failure messages.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Describes a finished child for an assertion message.
pub(crate) fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// The bubblewrap options of the live checks: the hardening flags, the host read-only.
const BWRAP_BASE: &[&str] = &[
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--die-with-parent",
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
];

/// Runs `command` in bubblewrap, under the filter when `with_filter` is true.
pub(crate) fn bwrap(with_filter: bool, command: &[&str]) -> std::process::Output {
    let mut filter_file = tempfile::NamedTempFile::new().unwrap();
    filter_file
        .write_all(&crate::seccomp::filter_program().unwrap())
        .unwrap();
    let mut arguments: Vec<String> = BWRAP_BASE.iter().map(|s| (*s).to_owned()).collect();
    if with_filter {
        arguments.extend(["--add-seccomp-fd".to_owned(), "3".to_owned()]);
    }
    arguments.push("--".to_owned());
    arguments.extend(command.iter().map(|s| (*s).to_owned()));
    // bash opens the file on descriptor 3 without close-on-exec, which is how bwrap expects it.
    Command::new("bash")
        .arg("-c")
        .arg(r#"exec 3<"$1"; shift; exec bwrap "$@""#)
        .arg("bash")
        .arg(filter_file.path())
        .args(arguments)
        .output()
        .unwrap()
}
