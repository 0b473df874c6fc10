//! Tests of the Landlock layer. Landlock cannot be lifted once applied, so every check that
//! restricts runs in a child process: the test re-runs its own binary with one probe test
//! selected, and the probe applies the policy to itself and tries what it should not do.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;

use super::*;
use crate::test_support::{describe, live_check_possible, probe_request, rerun_test, text};

#[test]
fn policy_survives_serde() {
    let policy = LandlockPolicy {
        read_exec: vec![PathBuf::from("/usr")],
        read_write: vec![PathBuf::from("/tmp")],
        tcp_connect_ports: Some(vec![8080]),
    };
    let json = serde_json::to_string(&policy).unwrap();
    assert_eq!(
        serde_json::from_str::<LandlockPolicy>(&json).unwrap(),
        policy
    );
}

#[test]
fn status_lines_name_the_abi() {
    assert_eq!(
        LandlockStatus::FullyEnforced { abi: 7 }.to_string(),
        "Landlock fully enforced (kernel ABI 7)"
    );
    assert!(
        LandlockStatus::PartiallyEnforced { abi: 3 }
            .to_string()
            .contains("ABI 3")
    );
}

fn landlock_requirement() -> Result<(), String> {
    // The only way to ask the kernel without unsafe code is to restrict a child and look.
    let output = rerun_test("landlock::tests::probe_support", "support");
    if text(&output.stdout).contains("landlock support: yes") {
        Ok(())
    } else {
        Err(format!(
            "this kernel does not enforce Landlock: {}",
            describe(&output)
        ))
    }
}

/// Not a test on its own: reports whether Landlock works here, for the check below.
#[test]
fn probe_support() {
    if probe_request().as_deref() != Some("support") {
        return;
    }
    let policy = LandlockPolicy {
        read_exec: Vec::new(),
        read_write: Vec::new(),
        tcp_connect_ports: None,
    };
    match restrict_self(&policy).unwrap() {
        LandlockStatus::NotSupported => println!("landlock support: no"),
        status => println!("landlock support: yes ({status})"),
    }
}

#[test]
fn a_restricted_process_and_its_children_keep_to_the_policy() {
    if !live_check_possible("the Landlock check", landlock_requirement()) {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    for directory in ["ro", "rw", "secret"] {
        std::fs::create_dir(scratch.path().join(directory)).unwrap();
        std::fs::write(scratch.path().join(directory).join("file"), directory).unwrap();
    }
    let request = format!("landlock-restricted:{}", scratch.path().to_str().unwrap());
    let output = rerun_test("landlock::tests::probe_restricted", &request);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stdout).contains("landlock probe: all checks passed"),
        "{}",
        describe(&output)
    );
}

fn assert_denied<T: std::fmt::Debug>(what: &str, result: std::io::Result<T>) {
    match result {
        Err(error) if error.kind() == ErrorKind::PermissionDenied => {}
        other => panic!("{what}: expected permission denied, got {other:?}"),
    }
}

/// Not a test on its own: the restricted side of the check above.
#[test]
fn probe_restricted() {
    let Some(request) = probe_request() else {
        return;
    };
    let Some(scratch) = request.strip_prefix("landlock-restricted:") else {
        return;
    };
    let scratch = Path::new(&scratch);
    let allowed_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let denied_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed_port = allowed_listener.local_addr().unwrap().port();
    let abstract_name = format!("mcp-hero-landlock-test-{}", std::process::id());
    let _abstract_listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(&abstract_name).unwrap()).unwrap();

    let policy = LandlockPolicy {
        read_exec: ["/usr", "/bin", "/lib", "/lib64", "/etc", "/does/not/exist"]
            .iter()
            .map(PathBuf::from)
            .chain([scratch.join("ro")])
            .collect(),
        read_write: vec![scratch.join("rw"), PathBuf::from("/dev/null")],
        tcp_connect_ports: Some(vec![allowed_port]),
    };
    let status = restrict_self(&policy).unwrap();
    assert!(
        matches!(status, LandlockStatus::FullyEnforced { abi } if abi >= 6),
        "{status}"
    );

    // Files.
    assert_eq!(
        std::fs::read_to_string(scratch.join("ro/file")).unwrap(),
        "ro"
    );
    assert_denied(
        "write beneath read_exec",
        std::fs::write(scratch.join("ro/new"), "x"),
    );
    assert_denied(
        "read outside the policy",
        std::fs::read(scratch.join("secret/file")),
    );
    assert_denied("list outside the policy", std::fs::read_dir(scratch));
    std::fs::write(scratch.join("rw/new"), "x").unwrap();
    std::fs::rename(scratch.join("rw/new"), scratch.join("rw/renamed")).unwrap();
    std::fs::remove_file(scratch.join("rw/renamed")).unwrap();
    std::fs::write("/dev/null", "x").unwrap();

    // TCP connect.
    TcpStream::connect(allowed_listener.local_addr().unwrap()).unwrap();
    assert_denied(
        "connect to a port outside the policy",
        TcpStream::connect(denied_listener.local_addr().unwrap()),
    );

    // Scopes.
    let abstract_address = SocketAddr::from_abstract_name(&abstract_name).unwrap();
    let refused = UnixStream::connect_addr(&abstract_address).unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::EPERM), "{refused}");
    let parent = rustix::process::getppid().unwrap();
    assert_eq!(
        rustix::process::test_kill_process(parent),
        Err(rustix::io::Errno::PERM)
    );

    // Children inherit the domain.
    let allowed = Command::new("cat")
        .arg(scratch.join("ro/file"))
        .output()
        .unwrap();
    assert!(allowed.status.success(), "{}", describe(&allowed));
    let denied = Command::new("cat")
        .arg(scratch.join("secret/file"))
        .output()
        .unwrap();
    assert!(!denied.status.success(), "{}", describe(&denied));
    assert!(
        text(&denied.stderr).contains("Permission denied"),
        "{}",
        describe(&denied)
    );

    println!("landlock probe: all checks passed");
}
