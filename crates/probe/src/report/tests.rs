//! The output line: its exact shape, escaping, errno names and truncation.

use serde_json::Value;

use super::{DETAIL_LIMIT, Finding, errno_name, shorten};
use crate::sys::Errno;

fn parsed(finding: &Finding, check: &str) -> Value {
    let line = finding.to_json_line(check);
    assert!(!line.contains('\n'), "one line: {line}");
    serde_json::from_str(&line).unwrap()
}

#[test]
fn denied_line_has_exactly_the_four_fields_in_order() {
    let line = Finding::denied(Errno(libc::EPERM), "keyctl refused").to_json_line("keyctl");
    assert_eq!(
        line,
        r#"{"check":"keyctl","outcome":"denied","errno":"EPERM","detail":"keyctl refused"}"#
    );
}

#[test]
fn escaped_and_error_lines_carry_null_errno() {
    let value = parsed(&Finding::escaped("read 3 bytes"), "read-shadow");
    assert_eq!(value["outcome"], "escaped");
    assert_eq!(value["errno"], Value::Null);
    let value = parsed(&Finding::error("bad"), "x");
    assert_eq!(value["outcome"], "error");
    assert_eq!(value["errno"], Value::Null);
    let value = parsed(
        &Finding::escaped_with(Errno(libc::EINVAL), "passed"),
        "umount2",
    );
    assert_eq!(value["outcome"], "escaped");
    assert_eq!(value["errno"], "EINVAL");
}

#[test]
fn details_with_quotes_newlines_and_control_bytes_stay_one_valid_line() {
    let nasty = "root:$6$x\"y\\z:\n\r\t\u{0}\u{1b}[31m end";
    let value = parsed(&Finding::escaped(nasty), "read-file");
    assert_eq!(value["detail"], nasty);
}

#[test]
fn long_details_are_cut() {
    let long = "x".repeat(DETAIL_LIMIT * 3);
    let value = parsed(&Finding::escaped(long), "list-dir");
    let detail = value["detail"].as_str().unwrap();
    assert_eq!(detail.chars().count(), DETAIL_LIMIT);
    assert!(detail.ends_with('…'));
    assert_eq!(shorten("short"), "short");
}

#[test]
fn errno_names() {
    let check = |code: i32, name: &str| assert_eq!(errno_name(Errno(code)), name);
    check(libc::EPERM, "EPERM");
    check(libc::EACCES, "EACCES");
    check(libc::ENOSYS, "ENOSYS");
    check(libc::EROFS, "EROFS");
    check(libc::EAFNOSUPPORT, "EAFNOSUPPORT");
    check(libc::ENETUNREACH, "ENETUNREACH");
    check(libc::ECONNREFUSED, "ECONNREFUSED");
    check(libc::EMFILE, "EMFILE");
    check(libc::EFBIG, "EFBIG");
    check(libc::ENOSPC, "ENOSPC");
    check(libc::EAGAIN, "EAGAIN");
    check(4095, "E4095");
}
