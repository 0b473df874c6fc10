//! Unit tests of the log check's rules (S17): which names look secret, which format captures count.

use super::macros::implicit_captures;
use super::rules::is_secret_name;

fn check_name(name: &str, secret: bool) {
    assert_eq!(is_secret_name(name), secret, "is `{name}` secret?");
}

/// S17: the secret word must be the name's noun; metadata, budgets and progress tokens are not.
#[test]
fn s17_secret_names_and_their_lookalikes() {
    for name in [
        "password",
        "root_secret",
        "api_token",
        "session_token",
        "token_value",
        "secret_bytes",
        "api_key",
        "private_key_pem",
        "auth_header",
        "credentials",
        "cookie",
        "authorization",
        "bearer",
        "ROOT_SECRET",
        "_password",
    ] {
        check_name(name, true);
    }
    for name in [
        "token_id",
        "token_count",
        "max_tokens",
        "progress_token",
        "cancel_token",
        "secret_len",
        "password_preview",
        "TOKEN_ITERATIONS",
        "key",
        "digest",
        "user",
        "api_key_id",
    ] {
        check_name(name, false);
    }
}

/// S17: `{name}` and `{name:?}` capture; `{}`, `{0}`, `{{` and `{:>8}` do not.
#[test]
fn s17_format_strings_capture_named_arguments_only() {
    assert_eq!(
        implicit_captures("{password} {token:?} {} {0} {{literal}} {:>8}"),
        ["password", "token"]
    );
}
