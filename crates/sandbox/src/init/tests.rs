//! Tests of the sandbox init without a sandbox: the command line round trip, the relay (TCP to
//! a unix socket, both directions, half-close), exit statuses, and, in a child process, its
//! stderr and Landlock.

use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::test_support::{
    PROBE_ENV, bwrap, bwrap_requirement, describe, live_check_possible, probe_request,
    single_test_args, test_binary, text,
};

fn os(values: &[&str]) -> Vec<OsString> {
    values.iter().map(OsString::from).collect()
}

fn minimal(command: &[&str]) -> InitArgs {
    InitArgs {
        proxy_port: None,
        egress_socket: None,
        landlock: None,
        command: os(command),
        working_dir: None,
    }
}

fn check_round_trip(init: InitArgs) {
    let args = init.to_args();
    assert_eq!(InitArgs::parse(args.clone()).unwrap(), init, "{args:?}");
}

#[test]
fn arguments_round_trip() {
    check_round_trip(minimal(&["node", "server.js"]));
    check_round_trip(minimal(&["--proxy-port", "--", "-x"]));
    let not_utf8 = OsString::from_vec(vec![b'/', 0xFF, b'x']);
    check_round_trip(InitArgs {
        proxy_port: Some(3128),
        egress_socket: Some(PathBuf::from("/run/mcp-hero/egress.sock")),
        landlock: Some(LandlockPolicy {
            read_exec: vec![PathBuf::from("/usr"), PathBuf::from(not_utf8.clone())],
            read_write: vec![PathBuf::from("/tmp")],
            tcp_connect_ports: Some(vec![3128, 443]),
        }),
        command: vec![not_utf8.clone(), OsString::from("--")],
        working_dir: Some(PathBuf::from(not_utf8)),
    });
    for ports in [None, Some(Vec::new())] {
        let mut init = minimal(&["true"]);
        init.landlock = Some(LandlockPolicy {
            read_exec: Vec::new(),
            read_write: Vec::new(),
            tcp_connect_ports: ports,
        });
        check_round_trip(init);
    }
}

fn parse_error(args: &[&str]) -> InitError {
    InitArgs::parse(os(args)).unwrap_err()
}

#[test]
fn bad_command_lines_are_refused() {
    assert!(
        matches!(parse_error(&["--bogus", "--", "true"]), InitError::UnknownOption(o) if o == "--bogus")
    );
    assert!(matches!(
        parse_error(&["--proxy-port"]),
        InitError::MissingValue(PROXY_PORT)
    ));
    assert!(matches!(
        parse_error(&["--working-dir", "/a", "--working-dir", "/b", "--", "true"]),
        InitError::Repeated(WORKING_DIR)
    ));
    for bad_port in ["0", "65536", "x", ""] {
        assert!(matches!(
            parse_error(&[
                "--proxy-port",
                bad_port,
                "--egress-socket",
                "/s",
                "--",
                "true"
            ]),
            InitError::InvalidPort { .. }
        ));
    }
    assert!(matches!(
        parse_error(&[
            "--landlock",
            "--landlock-tcp-connect-ports",
            "80,,443",
            "--",
            "true"
        ]),
        InitError::InvalidPort { .. }
    ));
    assert!(matches!(
        parse_error(&["--landlock-read-exec", "/usr", "--", "true"]),
        InitError::LandlockDetailWithoutLandlock(LANDLOCK_READ_EXEC)
    ));
    assert!(matches!(
        parse_error(&["--landlock", "--landlock", "--", "true"]),
        InitError::Repeated(LANDLOCK)
    ));
    assert!(matches!(
        parse_error(&["--proxy-port", "80", "--", "true"]),
        InitError::ProxyHalfConfigured
    ));
    assert!(matches!(
        parse_error(&["--egress-socket", "/s", "--", "true"]),
        InitError::ProxyHalfConfigured
    ));
    assert!(matches!(parse_error(&[]), InitError::MissingCommand));
    assert!(matches!(parse_error(&["--"]), InitError::MissingCommand));
    assert!(matches!(
        parse_error(&["true"]),
        InitError::UnknownOption(_)
    ));
}

#[test]
fn exit_statuses_pass_through() {
    assert_eq!(run(os(&["--", "sh", "-c", "exit 7"])), 7);
    assert_eq!(run(os(&["--", "true"])), 0);
    assert_eq!(run(os(&["--", "sh", "-c", "kill -TERM $$"])), 128 + 15);
    assert_eq!(run(os(&["--", "/nonexistent/program"])), EXIT_CANNOT_START);
    assert_eq!(run(os(&["--bogus", "--", "true"])), EXIT_INIT_FAILED);
    assert_eq!(
        run(os(&[
            "--working-dir",
            "/tmp",
            "--",
            "sh",
            "-c",
            r#"test "$(pwd)" = /tmp"#
        ])),
        0
    );
}

/// A unix listener in a temporary directory, standing in for the gateway's egress proxy.
fn egress_socket() -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("egress.sock");
    (directory, path)
}

#[tokio::test]
async fn relay_copies_both_ways_and_passes_half_closes_on() {
    let (_directory, socket_path) = egress_socket();
    let egress = tokio::net::UnixListener::bind(&socket_path).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(relay::serve(vec![listener], socket_path));

    // The client sends a request and half-closes; the answer comes after that.
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    client.write_all(b"request").await.unwrap();
    client.shutdown().await.unwrap();
    let (mut server, _) = egress.accept().await.unwrap();
    let mut request = Vec::new();
    server.read_to_end(&mut request).await.unwrap();
    assert_eq!(request, b"request");
    server.write_all(b"answer").await.unwrap();
    server.shutdown().await.unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, b"answer");

    // The other way round: the server speaks first and half-closes, the client still sends.
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut server, _) = egress.accept().await.unwrap();
    server.write_all(b"banner").await.unwrap();
    server.shutdown().await.unwrap();
    let mut banner = Vec::new();
    client.read_to_end(&mut banner).await.unwrap();
    assert_eq!(banner, b"banner");
    client.write_all(b"late words").await.unwrap();
    client.shutdown().await.unwrap();
    let mut late = Vec::new();
    server.read_to_end(&mut late).await.unwrap();
    assert_eq!(late, b"late words");

    // Large transfers arrive whole, in both directions at once.
    let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut server, _) = egress.accept().await.unwrap();
    let payload: Vec<u8> = (0..1_000_000_u32).map(|i| (i % 251) as u8).collect();
    let expected = payload.clone();
    let server_side = tokio::spawn(async move {
        let (mut read, mut write) = server.split();
        let echo = tokio::io::copy(&mut read, &mut write);
        echo.await.unwrap();
        write.shutdown().await.unwrap();
    });
    let (mut read, mut write) = client.split();
    let send = async {
        write.write_all(&payload).await.unwrap();
        write.shutdown().await.unwrap();
    };
    let mut received = Vec::new();
    let receive = read.read_to_end(&mut received);
    let ((), count) = tokio::join!(send, receive);
    assert_eq!(count.unwrap(), expected.len());
    assert_eq!(received, expected);
    server_side.await.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_server_reaches_the_egress_socket_through_the_proxy_port() {
    let (_directory, socket_path) = egress_socket();
    let egress = StdUnixListener::bind(&socket_path).unwrap();
    let gateway = std::thread::spawn(move || {
        let (connection, _) = egress.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&connection).read_line(&mut line).unwrap();
        assert_eq!(line, "ping\n");
        (&connection).write_all(b"pong\n").unwrap();
    });
    let port = free_port().to_string();
    let script = format!(
        r#"exec 3<>/dev/tcp/127.0.0.1/{port}; echo ping >&3; read -r reply <&3; test "$reply" = pong"#
    );
    let code = run(vec![
        OsString::from("--proxy-port"),
        OsString::from(&port),
        OsString::from("--egress-socket"),
        socket_path.into_os_string(),
        OsString::from("--"),
        OsString::from("bash"),
        OsString::from("-c"),
        OsString::from(script),
    ]);
    assert_eq!(code, 0);
    gateway.join().unwrap();
}

/// Runs the init in a child process (the probe below) with `args`, a secret in its
/// environment, and returns its output.
fn run_init_in_child(args: &[&str]) -> std::process::Output {
    let request = format!("init:{}", serde_json::to_string(args).unwrap());
    Command::new(test_binary())
        .args(single_test_args("init::tests::probe_init"))
        .env(PROBE_ENV, request)
        .env("MCP_HERO_TEST_SECRET", "hunter2-secret-value")
        .output()
        .unwrap()
}

/// Not a test on its own: runs the init as the whole process, for the checks below.
#[test]
fn probe_init() {
    let Some(request) = probe_request() else {
        return;
    };
    let Some(args) = request.strip_prefix("init:") else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(args).unwrap();
    let code = run(args.into_iter().map(OsString::from));
    std::process::exit(i32::from(code));
}

#[test]
fn a_program_that_cannot_start_is_reported_without_secrets() {
    let output = run_init_in_child(&["--", "/nonexistent/server", "hunter2-secret-argument"]);
    assert_eq!(
        output.status.code(),
        Some(i32::from(EXIT_CANNOT_START)),
        "{}",
        describe(&output)
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "mcp-hero sandbox: cannot start /nonexistent/server: No such file or directory"
        ),
        "{}",
        describe(&output)
    );
    assert!(!stderr.contains("hunter2"), "{}", describe(&output));
}

fn cat_requirement() -> Result<(), String> {
    if Path::new("/usr/bin/cat").exists() {
        Ok(())
    } else {
        Err("there is no /usr/bin/cat".to_owned())
    }
}

fn landlock_requirement(unsupported: bool) -> Result<(), String> {
    if unsupported {
        Err("this kernel does not enforce Landlock".to_owned())
    } else {
        Ok(())
    }
}

#[test]
fn landlock_applies_to_the_server() {
    if !live_check_possible("the init Landlock check", cat_requirement()) {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let allowed = scratch.path().join("allowed");
    let secret = scratch.path().join("secret");
    std::fs::write(&allowed, "allowed").unwrap();
    std::fs::write(&secret, "secret").unwrap();
    let landlock = [
        "--landlock",
        "--landlock-read-exec",
        "/usr",
        "--landlock-read-exec",
        "/lib",
        "--landlock-read-exec",
        "/lib64",
        "--landlock-read-exec",
        "/etc",
        "--landlock-read-exec",
        allowed.to_str().unwrap(),
        "--landlock-read-write",
        "/dev/null",
        "--landlock-tcp-connect-ports",
        "",
    ];
    let mut reads_allowed = landlock.to_vec();
    reads_allowed.extend(["--", "/usr/bin/cat", allowed.to_str().unwrap()]);
    let output = run_init_in_child(&reads_allowed);
    let unsupported = text(&output.stderr).contains("not supported");
    if !live_check_possible("the init Landlock check", landlock_requirement(unsupported)) {
        return;
    }
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stdout).contains("allowed"),
        "{}",
        describe(&output)
    );

    let mut reads_secret = landlock.to_vec();
    reads_secret.extend(["--", "/usr/bin/cat", secret.to_str().unwrap()]);
    let output = run_init_in_child(&reads_secret);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        text(&output.stderr).contains("Permission denied"),
        "{}",
        describe(&output)
    );
    assert!(
        !text(&output.stdout).contains("secret"),
        "{}",
        describe(&output)
    );
}

#[test]
fn inside_bubblewrap_with_seccomp_and_landlock_the_proxy_port_reaches_the_gateway() {
    if !live_check_possible("the init bubblewrap check", bwrap_requirement()) {
        return;
    }
    let (directory, socket_path) = egress_socket();
    let secret = directory.path().join("secret");
    std::fs::write(&secret, "secret").unwrap();
    let egress = StdUnixListener::bind(&socket_path).unwrap();
    let gateway = std::thread::spawn(move || {
        let (connection, _) = egress.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&connection).read_line(&mut line).unwrap();
        assert_eq!(line, "ping\n");
        (&connection).write_all(b"pong\n").unwrap();
    });

    // Any port works: the sandbox has its own network namespace.
    let port = "3128";
    let script = format!(
        r#"if cat {secret} 2>/dev/null; then exit 10; fi
exec 3<>/dev/tcp/127.0.0.1/{port} || exit 11
echo ping >&3; read -r reply <&3; test "$reply" = pong || exit 12"#,
        secret = secret.display()
    );
    let init_args = InitArgs {
        proxy_port: Some(3128),
        egress_socket: Some(socket_path.clone()),
        landlock: Some(LandlockPolicy {
            read_exec: ["/usr", "/bin", "/lib", "/lib64", "/etc"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            read_write: vec![PathBuf::from("/dev/null")],
            tcp_connect_ports: Some(vec![3128]),
        }),
        command: os(&["bash", "-c", &script]),
        working_dir: None,
    };
    let args: Vec<String> = init_args
        .to_args()
        .into_iter()
        .map(|arg| arg.into_string().unwrap())
        .collect();
    let request = format!("{PROBE_ENV}=init:{}", serde_json::to_string(&args).unwrap());
    let binary = test_binary().to_string_lossy().into_owned();
    let mut command = vec!["env", request.as_str(), binary.as_str()];
    let probe_args = single_test_args("init::tests::probe_init");
    command.extend(probe_args.iter().map(String::as_str));
    let output = bwrap(true, &command);
    assert!(output.status.success(), "{}", describe(&output));
    gateway.join().unwrap();
}
