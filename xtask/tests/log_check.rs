//! Tests of the static log check (S17): every planted leak in `fixtures/leaks` is reported at
//! its exact line, nothing in `fixtures/clean` is, and the project itself passes.

#![allow(clippy::unwrap_used)] // Test helpers fail loudly.

use std::path::{Path, PathBuf};

use xtask::log_check::{self, Finding};

fn fixture(relative: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative);
    let source = std::fs::read_to_string(&path).unwrap();
    (PathBuf::from(relative), source)
}

/// Checks a fixture and compares its findings, in order, with `(line, words of the message)`.
fn check(relative: &str, expected: &[(usize, &str)]) {
    let (path, source) = fixture(relative);
    let findings = log_check::check_source(&path, &source);
    let shown: Vec<String> = findings.iter().map(Finding::to_string).collect();
    assert_eq!(
        findings.len(),
        expected.len(),
        "{relative}: expected {} findings, got:\n{}",
        expected.len(),
        shown.join("\n")
    );
    for (finding, (line, words)) in findings.iter().zip(expected) {
        assert_eq!(finding.path(), path);
        assert_eq!(
            finding.line(),
            *line,
            "{relative}: expected a finding at line {line}, got:\n{}",
            shown.join("\n")
        );
        assert!(
            finding.message().contains(words),
            "{relative}:{line}: expected `{words}` in `{}`",
            finding.message()
        );
    }
}

/// S17: environment values, directly, through `use`, through `let`/`match`/`for` bindings.
#[test]
fn s17_environment_values_reaching_logs_are_reported() {
    check(
        "leaks/environment.rs",
        &[
            (8, "an environment value (`std::env::var`) reaches `info!`"),
            (12, "an environment value (`env::var_os`) reaches `debug!`"),
            (16, "an environment value (`read_var`) reaches `warn!`"),
            (
                23,
                "`shown` (holds `url` (holds an environment value (`std::env::var`))) reaches `info!` through `{shown}`",
            ),
            (
                29,
                "`value` (holds an environment value (`std::env::vars`)) reaches `trace!`",
            ),
            (
                35,
                "`base` (holds an environment value (`env::var`)) reaches `info!`",
            ),
        ],
    );
}

/// S17: header values by `headers().get`, by index, through `let` and `if let`, by type.
#[test]
fn s17_header_values_reaching_logs_are_reported() {
    check(
        "leaks/headers.rs",
        &[
            (
                6,
                "an HTTP header value (`headers().get(..)`) reaches `warn!`",
            ),
            (10, "an HTTP header value (`headers[..]`) reaches `error!`"),
            (15, "`value` (holds an HTTP header value"),
            (
                21,
                "`forwarded` (holds an HTTP header value (`headers().get(..)`)) reaches `debug!` through `{forwarded}`",
            ),
            (26, "`value` (holds a `HeaderValue`) reaches `debug!`"),
        ],
    );
}

/// S16, S17: `expose_secret()`, secret types (parameter, typed `let`, constructor, field) and
/// secret names, as fields, Debug shorthands, format captures, span fields, nested `format!`.
#[test]
fn s17_secrets_reaching_logs_are_reported() {
    check(
        "leaks/secrets.rs",
        &[
            (12, "an `expose_secret()` value reaches `error!`"),
            (16, "`database` (holds a `SecretString`) reaches `info!`"),
            (
                20,
                "`password` (a secret-looking name) reaches `info!` through `{password}` in the format string",
            ),
            (
                21,
                "`session_token` (a secret-looking name) reaches `info!` through `{session_token}`",
            ),
            (25, "`api_key` (a secret-looking name) reaches `info_span!`"),
            (29, "`bearer` (a secret-looking name) reaches `info!`"),
            (34, "`material` (holds a `Zeroizing`) reaches `event!`"),
            (39, "`root` (holds a `RootSecret`"),
            (
                45,
                "field `url` (declared with a secret type in this file) reaches `info!`",
            ),
            (
                50,
                "field `password` (a secret-looking name) reaches a span field",
            ),
            (55, "`credentials` (a secret-looking name) reaches `info!`"),
        ],
    );
}

/// S16, S17: `#[instrument]` without the right skip, `log` macros, prints, panic and assert
/// messages, and allow comments without a reason (which also allow nothing).
#[test]
fn s17_other_sinks_and_unreasoned_allows_are_reported() {
    check(
        "leaks/sinks.rs",
        &[
            (
                6,
                "parameter `secret` (a `SecretString`) reaches `#[instrument]`",
            ),
            (
                9,
                "parameter `api_token` (a secret-looking name) reaches `#[instrument]`",
            ),
            (
                12,
                "`session_cookie` (a secret-looking name) reaches an `#[instrument]` field",
            ),
            (16, "`cookie` (a secret-looking name) reaches `warn!`"),
            (
                20,
                "`root_secret` (a secret-looking name) reaches `println!`",
            ),
            (
                21,
                "`credentials` (a secret-looking name) reaches `eprintln!` through `{credentials}`",
            ),
            (
                26,
                "`token` (a secret-looking name) reaches the `panic!` message",
            ),
            (
                28,
                "`private_key` (a secret-looking name) reaches the `assert!` message through `{private_key}`",
            ),
            (
                29,
                "an environment value (`std::env::var`) reaches the `unreachable!` message",
            ),
            (33, "log-check allow without a reason allows nothing"),
            (34, "`passphrase` (a secret-looking name) reaches `info!`"),
            (35, "`passphrase` (a secret-looking name) reaches `info!`"),
            (35, "log-check allow without a reason allows nothing"),
        ],
    );
}

/// S17: lookalike names, measured secrets, errors of secret parsing, shadowed bindings, skipped
/// `#[instrument]` parameters and reasoned allows are not reported.
#[test]
fn s17_clean_fixtures_produce_no_finding() {
    check("clean/lookalikes.rs", &[]);
    check("clean/allowed.rs", &[]);
}

/// A file the check cannot parse is a finding, never a silent pass.
#[test]
fn unparseable_files_fail_the_check() {
    let findings = log_check::check_source(Path::new("broken.rs"), "fn broken( {\n");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].to_string().starts_with("broken.rs:1:"),
        "{}",
        findings[0]
    );
    assert!(findings[0].message().contains("cannot parse"));
}

/// Findings print as `path:line:col: message`, which editors and CI logs link to.
#[test]
fn findings_print_as_path_line_column_message() {
    let findings = log_check::check_source(
        Path::new("crates/example/src/lib.rs"),
        "fn f(password: &str) {\n    tracing::info!(password);\n}\n",
    );
    let shown: Vec<String> = findings.iter().map(Finding::to_string).collect();
    assert_eq!(
        shown,
        ["crates/example/src/lib.rs:2:20: `password` (a secret-looking name) reaches `info!`"]
    );
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// S17: the scan covers every crate and the xtask itself, but not the planted fixtures.
#[test]
fn s17_the_scan_covers_the_workspace_but_not_the_fixtures() {
    let sources = log_check::workspace_sources(&workspace_root()).unwrap();
    let has = |path: &str| sources.iter().any(|source| source == Path::new(path));
    assert!(has("crates/mcp-hero/src/main.rs"), "{sources:?}");
    assert!(has("crates/vault/src/lib.rs"), "{sources:?}");
    assert!(has("xtask/src/log_check.rs"), "{sources:?}");
    assert!(has("xtask/tests/log_check.rs"), "{sources:?}");
    assert!(
        !sources
            .iter()
            .any(|source| source.starts_with("xtask/tests/fixtures")),
        "{sources:?}"
    );
}

/// S17: the project passes its own check (CI also runs `cargo xtask log-check`).
#[test]
fn s17_the_project_passes_the_log_check() {
    let findings = log_check::check_workspace(&workspace_root()).unwrap();
    let shown: Vec<String> = findings.iter().map(Finding::to_string).collect();
    assert!(
        findings.is_empty(),
        "log-check findings:\n{}",
        shown.join("\n")
    );
}
