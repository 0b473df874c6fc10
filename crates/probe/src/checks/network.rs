//! Network checks (S3): direct connects that bypass the proxy (the gateway's port on every
//! loopback spelling, host and private addresses, metadata), requests through the egress proxy,
//! unix sockets of the host or another sandbox, and listeners another sandbox may try to reach.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _, UdpSocket};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::time::Duration;

use super::{Args, Check, CheckResult, emit, io_refused, text_of};
use crate::addr::{parse_target, proxy_authority, split_authority};
use crate::report::{Finding, errno_name};
use crate::sys::{self, Errno};

/// The network checks.
pub const CHECKS: &[Check] = &[
    Check {
        name: "connect",
        arguments: "<host> <port>",
        summary: "TCP connect straight to an address in any spelling (0x7f.1, [::ffff:127.0.0.1], fe80::1%lo); escaped if it connects",
        run: connect,
    },
    Check {
        name: "connect-loopback",
        arguments: "<port>",
        summary: "connect to a port on every loopback spelling; escaped if any connects",
        run: connect_loopback,
    },
    Check {
        name: "metadata",
        arguments: "",
        summary: "connect to the cloud metadata service 169.254.169.254:80",
        run: metadata,
    },
    Check {
        name: "udp-send",
        arguments: "<host> <port>",
        summary: "send one UDP datagram straight to an address; escaped if sent",
        run: udp_send,
    },
    Check {
        name: "proxy-connect",
        arguments: "<host:port>",
        summary: "CONNECT through $HTTPS_PROXY; escaped on 200 (then a GET through the tunnel is reported)",
        run: proxy_connect,
    },
    Check {
        name: "proxy-get",
        arguments: "<http-url>",
        summary: "plain-HTTP GET through $HTTP_PROXY; escaped on 2xx; reports status and body",
        run: proxy_get,
    },
    Check {
        name: "socks5-connect",
        arguments: "<host:port>",
        summary: "SOCKS5 CONNECT to the host:port of $ALL_PROXY, whatever its scheme (the gateway's proxy speaks both); escaped on reply 0",
        run: socks5_connect,
    },
    Check {
        name: "unix-abstract",
        arguments: "<name>",
        summary: "connect to an abstract unix socket (the host's, another sandbox's); escaped if it connects",
        run: unix_abstract,
    },
    Check {
        name: "unix-path",
        arguments: "<path>",
        summary: "connect to a unix socket path (the gateway's, an egress socket); escaped if it connects",
        run: unix_path,
    },
    Check {
        name: "listen-tcp",
        arguments: "<port>",
        summary: "helper: listen on 127.0.0.1:port, say so, greet every connection, forever",
        run: listen_tcp,
    },
    Check {
        name: "listen-abstract",
        arguments: "<name>",
        summary: "helper: listen on an abstract unix socket, say so, greet every connection, forever",
        run: listen_abstract,
    },
    Check {
        name: "listen-unix",
        arguments: "<path>",
        summary: "helper: listen on a unix socket path, say so, greet every connection, forever",
        run: listen_unix,
    },
];

/// How long a connect or a proxy answer may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What a peer says within 300 ms of connecting (a greeting), for the report. The caller has
/// set a read timeout on the stream.
fn read_greeting(stream: &mut dyn std::io::Read) -> String {
    let mut buffer = [0u8; 256];
    match stream.read(&mut buffer) {
        Ok(count) if count > 0 => format!("; peer said {:?}", text_of(&buffer[..count], 120)),
        _ => String::new(),
    }
}

/// How long a connected peer has to greet.
const GREETING_WAIT: Duration = Duration::from_millis(300);

/// A direct TCP connect.
fn tcp_connect(address: SocketAddr) -> Finding {
    match TcpStream::connect_timeout(&address, TIMEOUT) {
        Ok(mut stream) => {
            let _ = stream.set_read_timeout(Some(GREETING_WAIT));
            let said = read_greeting(&mut stream);
            Finding::escaped(format!("connected to {address}{said}"))
        }
        Err(error) => connect_refused(&error, address),
    }
}

/// The finding for a failed connect; a timeout without an errno is reported as ETIMEDOUT.
fn connect_refused(error: &std::io::Error, address: impl std::fmt::Display) -> Finding {
    if error.raw_os_error().is_none() && error.kind() == ErrorKind::TimedOut {
        return Finding::denied(
            Errno(libc::ETIMEDOUT),
            format!("connect {address}: timed out"),
        );
    }
    io_refused(error, &format!("connect {address}"))
}

fn connect(args: &Args<'_>) -> CheckResult {
    let address = parse_target(args.required(0)?, args.required(1)?).map_err(|_| args.usage())?;
    Ok(tcp_connect(address))
}

/// Every spelling of the host's loopback an attacker might try.
pub const LOOPBACK_SPELLINGS: &[&str] = &[
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "0x7f.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "0",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "::",
];

fn connect_loopback(args: &Args<'_>) -> CheckResult {
    let port = args.required(0)?;
    let mut results = Vec::new();
    let mut errnos = Vec::new();
    for spelling in LOOPBACK_SPELLINGS {
        let address = parse_target(spelling, port).map_err(|_| args.usage())?;
        let finding = tcp_connect(address);
        if finding.outcome == crate::report::Outcome::Escaped {
            return Ok(Finding::escaped(format!("{spelling}: {}", finding.detail)));
        }
        let name = finding.errno.map_or_else(|| "?".to_owned(), errno_name);
        results.push(format!("{spelling} {name}"));
        errnos.push(finding.errno);
    }
    let detail = results.join(", ");
    Ok(match errnos.first().copied().flatten() {
        Some(first) if errnos.iter().all(|errno| *errno == Some(first)) => {
            Finding::denied(first, detail)
        }
        _ => Finding::denied_without_errno(detail),
    })
}

fn metadata(_: &Args<'_>) -> CheckResult {
    Ok(tcp_connect(SocketAddr::from(([169, 254, 169, 254], 80))))
}

fn udp_send(args: &Args<'_>) -> CheckResult {
    let address = parse_target(args.required(0)?, args.required(1)?).map_err(|_| args.usage())?;
    let local: SocketAddr = if address.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = match UdpSocket::bind(local) {
        Ok(socket) => socket,
        Err(error) => return Ok(io_refused(&error, "bind a UDP socket")),
    };
    Ok(match socket.send_to(b"mcp-probe", address) {
        Ok(count) => Finding::escaped(format!("sent {count} bytes to {address}")),
        Err(error) => io_refused(&error, &format!("send to {address}")),
    })
}

/// The first set variable among `names`: the proxy settings the sandbox gives its server.
#[allow(clippy::disallowed_methods)] // Reading the proxy variables is what these checks test.
fn variable(names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|name| {
        let value = std::env::var(name).ok().filter(|value| !value.is_empty())?;
        Some(((*name).to_owned(), value))
    })
}

/// Connects to the proxy named by the first set variable in `names`.
fn connect_to_proxy(names: &[&str]) -> Result<(TcpStream, String), Finding> {
    let Some((name, url)) = variable(names) else {
        return Err(Finding::error(format!(
            "none of {} is set",
            names.join(", ")
        )));
    };
    let authority = proxy_authority(&url)
        .ok_or_else(|| Finding::error(format!("{name}={url} has no host:port")))?;
    let addresses: Vec<SocketAddr> = match split_authority(authority) {
        Some((host, port)) => match parse_target(host, port) {
            Ok(address) => vec![address],
            Err(_) => authority
                .to_socket_addrs()
                .map(Iterator::collect)
                .unwrap_or_default(),
        },
        None => Vec::new(),
    };
    let Some(address) = addresses.first().copied() else {
        return Err(Finding::error(format!(
            "{name}={url}: cannot resolve {authority}"
        )));
    };
    let stream = TcpStream::connect_timeout(&address, TIMEOUT).map_err(|error| {
        Finding::error(format!("connect to the proxy {address} ({name}): {error}"))
    })?;
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    Ok((stream, format!("{name}={url}")))
}

/// Reads an HTTP response head (up to the blank line) and whatever body bytes came with it.
fn read_head(stream: &mut TcpStream) -> Result<(String, Vec<u8>), Finding> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let body = received.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&received).into_owned(), body));
        }
        if received.len() > 16 * 1024 {
            return Err(Finding::error("the proxy's answer head exceeds 16 KiB"));
        }
        match stream.read(&mut buffer) {
            Ok(0) if received.is_empty() => {
                return Err(Finding::error("the proxy closed without answering"));
            }
            Ok(0) => return Ok((String::from_utf8_lossy(&received).into_owned(), Vec::new())),
            Ok(count) => received.extend_from_slice(&buffer[..count]),
            Err(error) => {
                return Err(Finding::error(format!(
                    "reading the proxy's answer: {error}"
                )));
            }
        }
    }
}

/// Reads until end of stream, `limit` bytes, or the read timeout, starting from `start`.
fn read_rest(stream: &mut TcpStream, mut start: Vec<u8>, limit: usize) -> Vec<u8> {
    let mut buffer = [0u8; 4096];
    while start.len() < limit {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(count) => start.extend_from_slice(&buffer[..count]),
        }
    }
    start
}

/// The status code of a status line (`HTTP/1.1 403 Forbidden` gives 403).
fn status_code(status_line: &str) -> Option<u16> {
    status_line.split_whitespace().nth(1)?.parse().ok()
}

fn proxy_connect(args: &Args<'_>) -> CheckResult {
    let authority = args.required(0)?;
    let (mut stream, proxy) = match connect_to_proxy(&["HTTPS_PROXY", "https_proxy"]) {
        Ok(connected) => connected,
        Err(finding) => return Ok(finding),
    };
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    if let Err(error) = stream.write_all(request.as_bytes()) {
        return Ok(Finding::error(format!(
            "sending CONNECT to {proxy}: {error}"
        )));
    }
    let (head, early) = match read_head(&mut stream) {
        Ok(answer) => answer,
        Err(finding) => return Ok(finding),
    };
    let status = head.lines().next().unwrap_or_default().to_owned();
    if status_code(&status) != Some(200) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let body = read_rest(&mut stream, early, 2048);
        return Ok(Finding::denied_without_errno(format!(
            "{status} | {}",
            text_of(&body, 200).trim()
        )));
    }
    // Through the tunnel, say something an HTTP server answers, and report its first line.
    let hello = format!("GET / HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    let upstream = match stream.write_all(hello.as_bytes()) {
        Ok(()) => {
            let answer = read_rest(&mut stream, early, 2048);
            text_of(&answer, 200)
        }
        Err(error) => format!("(writing through the tunnel failed: {error})"),
    };
    Ok(Finding::escaped(format!("{status} | {}", upstream.trim())))
}

fn proxy_get(args: &Args<'_>) -> CheckResult {
    let url = args.required(0)?;
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .filter(|host| !host.is_empty())
        .ok_or_else(|| args.usage())?;
    let (mut stream, proxy) = match connect_to_proxy(&["HTTP_PROXY", "http_proxy"]) {
        Ok(connected) => connected,
        Err(finding) => return Ok(finding),
    };
    let request = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if let Err(error) = stream.write_all(request.as_bytes()) {
        return Ok(Finding::error(format!("sending GET to {proxy}: {error}")));
    }
    let (head, early) = match read_head(&mut stream) {
        Ok(answer) => answer,
        Err(finding) => return Ok(finding),
    };
    let status = head.lines().next().unwrap_or_default().to_owned();
    let body = read_rest(&mut stream, early, 64 * 1024);
    let detail = format!("{status} | {}", text_of(&body, 300).trim());
    Ok(match status_code(&status) {
        Some(code) if (200..300).contains(&code) => Finding::escaped(detail),
        _ => Finding::denied_without_errno(detail),
    })
}

/// The meaning of a SOCKS5 reply code (RFC 1928).
fn socks5_reply(code: u8) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "general failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown",
    }
}

/// The SOCKS5 CONNECT request for `host:port`.
pub fn socks5_request(host: &str, port: u16) -> Option<Vec<u8>> {
    let mut request = vec![5, 1, 0];
    match parse_target(host, "0").map(|address| address.ip()) {
        Ok(std::net::IpAddr::V4(v4)) => {
            request.push(1);
            request.extend_from_slice(&v4.octets());
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            request.push(4);
            request.extend_from_slice(&v6.octets());
        }
        Err(_) => {
            let name = u8::try_from(host.len()).ok()?;
            request.push(3);
            request.push(name);
            request.extend_from_slice(host.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Some(request)
}

fn socks5_connect(args: &Args<'_>) -> CheckResult {
    let authority = args.required(0)?;
    let (host, port) = split_authority(authority).ok_or_else(|| args.usage())?;
    let port: u16 = port.parse().map_err(|_| args.usage())?;
    let request = socks5_request(host, port).ok_or_else(|| args.usage())?;
    let (mut stream, proxy) = match connect_to_proxy(&["ALL_PROXY", "all_proxy"]) {
        Ok(connected) => connected,
        Err(finding) => return Ok(finding),
    };
    let mut choice = [0u8; 2];
    let greeting = stream
        .write_all(&[5, 1, 0])
        .and_then(|()| stream.read_exact(&mut choice));
    if let Err(error) = greeting {
        return Ok(Finding::error(format!(
            "SOCKS5 greeting to {proxy}: {error}"
        )));
    }
    if choice != [5, 0] {
        return Ok(Finding::denied_without_errno(format!(
            "the proxy refused the no-auth method: {choice:?}"
        )));
    }
    let mut reply = [0u8; 4];
    let answered = stream
        .write_all(&request)
        .and_then(|()| stream.read_exact(&mut reply));
    if let Err(error) = answered {
        return Ok(Finding::error(format!(
            "SOCKS5 request to {proxy}: {error}"
        )));
    }
    let detail = format!("reply {} ({})", reply[1], socks5_reply(reply[1]));
    Ok(if reply[1] == 0 {
        Finding::escaped(detail)
    } else {
        Finding::denied_without_errno(detail)
    })
}

fn unix_connect(result: std::io::Result<UnixStream>, what: &str) -> Finding {
    match result {
        Ok(mut stream) => {
            let _ = stream.set_read_timeout(Some(GREETING_WAIT));
            let said = read_greeting(&mut stream);
            Finding::escaped(format!("connected to {what}{said}"))
        }
        Err(error) => connect_refused(&error, what),
    }
}

fn unix_abstract(args: &Args<'_>) -> CheckResult {
    let name = args.required(0)?;
    let address = match UnixAddr::from_abstract_name(name.as_bytes()) {
        Ok(address) => address,
        Err(_) => return Err(args.usage()),
    };
    Ok(unix_connect(
        UnixStream::connect_addr(&address),
        &format!("abstract socket @{name}"),
    ))
}

fn unix_path(args: &Args<'_>) -> CheckResult {
    let path = args.required(0)?;
    Ok(unix_connect(UnixStream::connect(path), path))
}

/// The greeting a listener helper writes to every connection.
fn greeting() -> String {
    format!("hello from sandboxed pid {}\n", sys::getpid())
}

fn listen_tcp(args: &Args<'_>) -> CheckResult {
    let port: u16 = args.required(0)?.parse().map_err(|_| args.usage())?;
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(error) => return Ok(io_refused(&error, &format!("listen on 127.0.0.1:{port}"))),
    };
    emit(
        args.check,
        &Finding::escaped(format!("listening on 127.0.0.1:{port}")),
    );
    for mut stream in listener.incoming().flatten() {
        let _ = stream.write_all(greeting().as_bytes());
    }
    std::process::exit(0)
}

fn serve_unix(listener: UnixListener) -> ! {
    for mut stream in listener.incoming().flatten() {
        let _ = stream.write_all(greeting().as_bytes());
    }
    std::process::exit(0)
}

fn listen_abstract(args: &Args<'_>) -> CheckResult {
    let name = args.required(0)?;
    let address = UnixAddr::from_abstract_name(name.as_bytes()).map_err(|_| args.usage())?;
    let listener = match UnixListener::bind_addr(&address) {
        Ok(listener) => listener,
        Err(error) => return Ok(io_refused(&error, &format!("listen on @{name}"))),
    };
    emit(
        args.check,
        &Finding::escaped(format!("listening on @{name}")),
    );
    serve_unix(listener)
}

fn listen_unix(args: &Args<'_>) -> CheckResult {
    let path = args.required(0)?;
    let listener = match UnixListener::bind(path) {
        Ok(listener) => listener,
        Err(error) => return Ok(io_refused(&error, &format!("listen on {path}"))),
    };
    emit(
        args.check,
        &Finding::escaped(format!("listening on {path}")),
    );
    serve_unix(listener)
}
