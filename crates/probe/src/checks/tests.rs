//! The registry and the checks that are safe to run outside a sandbox: argument parsing, the
//! line's shape, and read-only or self-contained attempts against a normal process.

use std::collections::HashSet;
use std::io::Write as _;

use serde_json::Value;

use super::{all, find, parse_number, run, syscall_finding};
use crate::sys::Errno;

/// Runs a command line and returns the parsed line and exit status.
fn check(arguments: &[&str]) -> (Value, u8) {
    let arguments: Vec<String> = arguments
        .iter()
        .map(|argument| (*argument).to_owned())
        .collect();
    let (line, status) = run(&arguments);
    let value: Value =
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("{line}: {error}"));
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{line}");
    for key in ["check", "outcome", "errno", "detail"] {
        assert!(value.get(key).is_some(), "{key} missing in {line}");
    }
    (value, status)
}

fn outcome(value: &Value) -> &str {
    value["outcome"].as_str().unwrap()
}

#[test]
fn at_least_forty_five_distinct_checks_each_documented() {
    let names: Vec<&str> = all().map(|check| check.name).collect();
    let unique: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "duplicate names in {names:?}");
    let helpers = ["listen-tcp", "listen-abstract", "listen-unix", "idle"];
    let escapes = names.iter().filter(|name| !helpers.contains(name)).count();
    assert!(escapes >= 45, "only {escapes} checks");
    for check in all() {
        assert!(!check.summary.is_empty(), "{} has no summary", check.name);
        assert!(
            check
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{} is not kebab-case",
            check.name
        );
        assert!(find(check.name).is_some());
    }
}

#[test]
fn usage_mistakes_exit_2_with_an_error_line() {
    let (value, status) = check(&[]);
    assert_eq!((outcome(&value), status), ("error", 2));
    let (value, status) = check(&["no-such-check"]);
    assert_eq!((outcome(&value), status), ("error", 2));
    assert_eq!(value["check"], "no-such-check");
    let (value, status) = check(&["read-file"]);
    assert_eq!((outcome(&value), status), ("error", 2));
    assert!(
        value["detail"]
            .as_str()
            .unwrap()
            .contains("usage: mcp-sandbox-probe read-file <path>")
    );
    let (_, status) = check(&["connect", "127.0.0.1", "not-a-port"]);
    assert_eq!(status, 2);
    let (_, status) = check(&["unshare", "no-such-namespace"]);
    assert_eq!(status, 2);
    let (_, status) = check(&["memory-bomb", "lots"]);
    assert_eq!(status, 2);
    let (_, status) = check(&["daemonize", "sometimes"]);
    assert_eq!(status, 2);
}

#[test]
fn list_names_every_check() {
    let (text, status) = run(&["list".to_owned()]);
    assert_eq!(status, 0);
    let entries: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), all().count());
    assert_eq!(entries[0]["check"], "read-shadow");
    assert!(
        entries
            .iter()
            .all(|entry| entry["summary"].as_str().is_some_and(|s| !s.is_empty()))
    );
}

#[test]
fn numbers_take_binary_suffixes() {
    assert_eq!(parse_number("12"), Some(12));
    assert_eq!(parse_number("4k"), Some(4096));
    assert_eq!(parse_number("3M"), Some(3 << 20));
    assert_eq!(parse_number("1g"), Some(1 << 30));
    assert_eq!(parse_number("x"), None);
    assert_eq!(parse_number(""), None);
    assert_eq!(parse_number("99999999999999g"), None);
}

#[test]
fn syscall_findings_separate_refusals_from_calls_that_got_through() {
    let escaped = syscall_finding::<()>(Ok(()), "call", &[]);
    assert_eq!(escaped.outcome, crate::report::Outcome::Escaped);
    let reached = syscall_finding::<()>(Err(Errno(libc::EINVAL)), "call", &[libc::EINVAL]);
    assert_eq!(
        (reached.outcome, reached.errno),
        (crate::report::Outcome::Escaped, Some(Errno(libc::EINVAL)))
    );
    let refused = syscall_finding::<()>(Err(Errno(libc::EPERM)), "call", &[libc::EINVAL]);
    assert_eq!(
        (refused.outcome, refused.errno),
        (crate::report::Outcome::Denied, Some(Errno(libc::EPERM)))
    );
}

#[test]
fn files_read_stat_and_list_a_real_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret.txt");
    std::fs::write(&file, "db-password").unwrap();
    let path = file.to_str().unwrap();
    let (value, _) = check(&["read-file", path]);
    assert_eq!(outcome(&value), "escaped");
    assert!(value["detail"].as_str().unwrap().contains("db-password"));
    let (value, _) = check(&["stat", path]);
    assert_eq!(outcome(&value), "escaped");
    let (value, _) = check(&["list-dir", dir.path().to_str().unwrap()]);
    assert!(value["detail"].as_str().unwrap().contains("secret.txt"));
    let missing = dir.path().join("missing");
    let (value, _) = check(&["read-file", missing.to_str().unwrap()]);
    assert_eq!(
        (outcome(&value), &value["errno"]),
        ("denied", &Value::from("ENOENT"))
    );
}

#[test]
fn write_file_creates_and_removes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x");
    let (value, _) = check(&["write-file", target.to_str().unwrap()]);
    assert_eq!(outcome(&value), "escaped");
    assert!(!target.exists(), "the probe leaves nothing behind");
}

#[test]
fn persist_reports_a_marker_from_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let marker = marker.to_str().unwrap();
    let (first, _) = check(&["persist", marker]);
    assert_eq!(
        (outcome(&first), &first["errno"]),
        ("denied", &Value::from("ENOENT"))
    );
    let (second, _) = check(&["persist", marker]);
    assert_eq!(outcome(&second), "escaped");
}

#[test]
fn mountinfo_finds_what_is_mounted() {
    let (value, _) = check(&["mountinfo", "/proc"]);
    assert_eq!(outcome(&value), "escaped");
    let (value, _) = check(&["mountinfo", "/no/such/mount/anywhere"]);
    assert_eq!((outcome(&value), &value["errno"]), ("denied", &Value::Null));
}

#[test]
fn status_checks_report_their_fields() {
    let (value, _) = check(&["caps"]);
    assert!(value["detail"].as_str().unwrap().contains("CapEff="));
    let (value, _) = check(&["seccomp-mode"]);
    assert!(value["detail"].as_str().unwrap().contains("Seccomp="));
    let (value, _) = check(&["no-new-privs"]);
    assert!(value["detail"].as_str().unwrap().contains("NoNewPrivs="));
    let (value, _) = check(&["ids"]);
    assert!(value["detail"].as_str().unwrap().contains("uid="));
    let (value, _) = check(&["rlimits"]);
    assert!(value["detail"].as_str().unwrap().contains("nofile="));
}

#[test]
fn namespaces_compare_with_the_host_link() {
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let (value, _) = check(&["namespace", "net", own.to_str().unwrap()]);
    assert_eq!(outcome(&value), "escaped");
    let (value, _) = check(&["namespace", "net", "net:[1]"]);
    assert_eq!(outcome(&value), "denied");
    let own = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let (value, _) = check(&["pidns", own.to_str().unwrap()]);
    assert_eq!(outcome(&value), "escaped");
}

#[test]
fn proc_pids_sees_a_given_pid() {
    let own = std::process::id().to_string();
    let (value, _) = check(&["proc-pids", &own]);
    assert_eq!(outcome(&value), "escaped");
}

#[test]
fn connect_reaches_a_listener_and_reports_a_closed_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let greeter = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"hi").unwrap();
    });
    let (value, _) = check(&["connect", "0x7f.1", &port]);
    assert_eq!(outcome(&value), "escaped", "{value}");
    assert!(
        value["detail"]
            .as_str()
            .unwrap()
            .contains("peer said \"hi\""),
        "{value}"
    );
    greeter.join().unwrap();
    // The listener is gone: the same port now refuses on every spelling.
    let (value, _) = check(&["connect-loopback", &port]);
    assert_eq!(outcome(&value), "denied", "{value}");
    let (value, _) = check(&["connect", "127.1", &port]);
    assert_eq!(
        (outcome(&value), &value["errno"]),
        ("denied", &Value::from("ECONNREFUSED"))
    );
}

#[test]
fn unix_path_connects_to_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (value, _) = check(&["unix-path", path.to_str().unwrap()]);
    assert_eq!(outcome(&value), "escaped", "{value}");
    drop(listener);
    let (value, _) = check(&["unix-path", dir.path().join("none.sock").to_str().unwrap()]);
    assert_eq!(
        (outcome(&value), &value["errno"]),
        ("denied", &Value::from("ENOENT"))
    );
}

#[test]
fn resource_checks_stop_at_their_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (value, _) = check(&["fill-tmp", dir.path().to_str().unwrap(), "3m"]);
    assert_eq!(outcome(&value), "escaped", "{value}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "fill-tmp removes its files"
    );
    let (value, _) = check(&["fd-exhaust", "16"]);
    assert_eq!(outcome(&value), "escaped", "{value}");
    let (value, _) = check(&["memory-bomb", "32"]);
    assert_eq!(
        (outcome(&value), value["detail"].as_str().unwrap()),
        ("escaped", "allocated and touched 32 MiB")
    );
    let (value, _) = check(&["file-size", "2m"]);
    assert_eq!(outcome(&value), "escaped", "{value}");
    let (value, _) = check(&["cpu-spin", "0"]);
    assert!(
        value["detail"].as_str().unwrap().starts_with("cpu_ms="),
        "{value}"
    );
}

#[test]
fn socks5_requests_encode_each_address_type() {
    use super::network::socks5_request;
    assert_eq!(
        socks5_request("127.1", 80).unwrap(),
        vec![5, 1, 0, 1, 127, 0, 0, 1, 0, 80]
    );
    let v6 = socks5_request("::1", 443).unwrap();
    assert_eq!((v6[3], v6.len()), (4, 4 + 16 + 2));
    let name = socks5_request("example.com", 443).unwrap();
    assert_eq!(&name[..5], &[5, 1, 0, 3, 11]);
    assert_eq!(&name[name.len() - 2..], &443u16.to_be_bytes());
}
