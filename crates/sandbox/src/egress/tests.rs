//! Tests of the egress proxy over real sockets: a unix socket in front, local TCP servers behind.
//!
//! Local destinations are reachable only through `exempt_addresses`, so each "allowed" test also
//! has a twin proving the same destination is refused without the exemption.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

/// A resolver with canned answers that remembers what it was asked.
#[derive(Default)]
struct FakeResolver {
    answers: HashMap<String, Vec<IpAddr>>,
    asked: Mutex<Vec<String>>,
    delay: Option<Duration>,
}

impl FakeResolver {
    fn with(answers: &[(&str, &[&str])]) -> Self {
        Self {
            answers: answers
                .iter()
                .map(|(name, ips)| {
                    (
                        name.to_string(),
                        ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                    )
                })
                .collect(),
            ..Self::default()
        }
    }
}

impl Resolve for FakeResolver {
    fn resolve<'a>(&'a self, host: &'a str, _port: u16) -> ResolveFuture<'a> {
        Box::pin(async move {
            self.asked.lock().unwrap().push(host.to_string());
            if let Some(delay) = self.delay {
                tokio::time::sleep(delay).await;
            }
            self.answers
                .get(host)
                .cloned()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

struct Harness {
    path: PathBuf,
    decisions: Arc<Mutex<Vec<Decision>>>,
    counters: EgressCounters,
    task: JoinHandle<Result<(), EgressError>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start(
        policy: EgressPolicy,
        resolver: Arc<dyn Resolve>,
        host_addresses: HostAddresses,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("egress.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let decisions = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let decisions = decisions.clone();
            move |decision: Decision| decisions.lock().unwrap().push(decision)
        };
        let proxy = EgressProxy::new(policy, resolver, host_addresses, Arc::new(sink)).unwrap();
        let counters = proxy.counters();
        let task = tokio::spawn(proxy.serve(listener));
        Self {
            path,
            decisions,
            counters,
            task,
            _dir: dir,
        }
    }

    /// A proxy with the system's host addresses and a resolver that knows no names.
    fn simple(policy: EgressPolicy) -> Self {
        Self::start(
            policy,
            Arc::new(FakeResolver::default()),
            HostAddresses::system().unwrap(),
        )
    }

    async fn client(&self) -> UnixStream {
        UnixStream::connect(&self.path).await.unwrap()
    }

    fn decisions(&self) -> Vec<Decision> {
        self.decisions.lock().unwrap().clone()
    }

    fn last(&self) -> Decision {
        self.decisions()
            .last()
            .cloned()
            .expect("a decision was recorded")
    }
}

fn exempt(addresses: &[SocketAddr]) -> EgressPolicy {
    EgressPolicy {
        exempt_addresses: addresses.to_vec(),
        ..EgressPolicy::default()
    }
}

/// A TCP echo server on loopback.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.into_split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    address
}

/// A loopback port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Reads up to and including the blank line that ends an HTTP head.
async fn read_head(stream: &mut UnixStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.expect("head ended early");
        head.push(byte);
    }
    String::from_utf8(head).unwrap()
}

async fn read_all(stream: &mut UnixStream) -> String {
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

async fn http_connect(harness: &Harness, target: &str) -> UnixStream {
    let mut client = harness.client().await;
    client
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    client
}

async fn assert_echoes(stream: &mut UnixStream, payload: &[u8]) {
    stream.write_all(payload).await.unwrap();
    let mut echoed = vec![0u8; payload.len()];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(echoed, payload);
}

fn assert_decision(decision: &Decision, protocol: Protocol, verdict: Verdict, reason: &str) {
    assert_eq!(
        (decision.protocol, decision.verdict, decision.reason),
        (protocol, verdict, reason),
        "{decision:?}"
    );
}

#[tokio::test]
async fn connect_to_an_exempt_local_server_is_allowed_and_counted() {
    let echo = echo_server().await;
    let harness = Harness::simple(exempt(&[echo]));
    let mut client = http_connect(&harness, &echo.to_string()).await;
    assert_eq!(
        read_head(&mut client).await,
        "HTTP/1.1 200 Connection established\r\n\r\n"
    );
    assert_echoes(&mut client, b"ping through the tunnel").await;

    let decision = harness.last();
    assert_decision(&decision, Protocol::HttpConnect, Verdict::Allowed, "exempt");
    assert_eq!(decision.host, "127.0.0.1");
    assert_eq!(decision.port, echo.port());
    assert_eq!(decision.address, Some(echo.ip()));
    let stats = harness.counters.snapshot();
    assert_eq!(
        (stats.attempts, stats.allowed, stats.active_connections),
        (1, 1, 1)
    );
    assert_eq!((stats.bytes_sent, stats.bytes_received), (23, 23));

    drop(client);
    tokio::time::timeout(Duration::from_secs(5), async {
        while harness.counters.snapshot().active_connections != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn connect_data_sent_with_the_request_is_forwarded() {
    let echo = echo_server().await;
    let harness = Harness::simple(exempt(&[echo]));
    let mut client = harness.client().await;
    // Clients may send the first tunnel bytes (a TLS ClientHello) without waiting for the 200.
    client
        .write_all(format!("CONNECT {echo} HTTP/1.1\r\n\r\nearly").as_bytes())
        .await
        .unwrap();
    read_head(&mut client).await;
    let mut early = [0u8; 5];
    client.read_exact(&mut early).await.unwrap();
    assert_eq!(&early, b"early");
}

#[tokio::test]
async fn connect_to_the_same_server_without_exemption_is_refused_as_loopback() {
    let echo = echo_server().await;
    let harness = Harness::simple(EgressPolicy::default());
    for target in [echo.to_string(), format!("[::1]:{}", echo.port())] {
        let mut client = http_connect(&harness, &target).await;
        let response = read_all(&mut client).await;
        assert!(
            response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{response}"
        );
        assert!(
            response.ends_with("\r\n\r\nmcp-hero egress: loopback\n"),
            "{response}"
        );
        let decision = harness.last();
        assert_decision(
            &decision,
            Protocol::HttpConnect,
            Verdict::Refused,
            "loopback",
        );
        assert!(decision.address.unwrap().is_loopback());
    }
    // The exemption is for one address and port, not for the whole address.
    let other = closed_port().await;
    let harness = Harness::simple(exempt(&[other]));
    let mut client = http_connect(&harness, &echo.to_string()).await;
    assert!(read_all(&mut client).await.starts_with("HTTP/1.1 403"));
    assert_decision(
        &harness.last(),
        Protocol::HttpConnect,
        Verdict::Refused,
        "loopback",
    );
}

#[tokio::test]
async fn metadata_and_mapped_literals_are_refused_without_connecting() {
    let harness = Harness::simple(EgressPolicy::default());
    for (target, reason) in [
        ("169.254.169.254:80", "metadata"),
        ("[::ffff:127.0.0.1]:80", "ipv4-mapped"),
        ("[64:ff9b::a9fe:a9fe]:80", "nat64"),
        ("[2002:a9fe:a9fe::1]:80", "6to4"),
        ("10.0.0.1:443", "private"),
        ("0.0.0.0:80", "unspecified"),
    ] {
        let mut client = http_connect(&harness, target).await;
        let response = read_all(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 403"), "{target}: {response}");
        assert_decision(
            &harness.last(),
            Protocol::HttpConnect,
            Verdict::Refused,
            reason,
        );
    }
}

/// A server that answers one request and hands over the head it received.
async fn http_origin() -> (SocketAddr, oneshot::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, receiver) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.unwrap());
        }
        let mut body = [0u8; 4];
        stream.read_exact(&mut body).await.unwrap();
        head.extend_from_slice(&body);
        sender.send(String::from_utf8(head).unwrap()).unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .await
            .unwrap();
    });
    (address, receiver)
}

#[tokio::test]
async fn plain_http_is_forwarded_in_origin_form_without_proxy_fields() {
    let (origin, received) = http_origin().await;
    let harness = Harness::simple(exempt(&[origin]));
    let mut client = harness.client().await;
    let request = format!(
        "POST http://user:secret@{origin}/path/x?token=abc HTTP/1.1\r\n\
         Host: forged.example\r\n\
         Proxy-Authorization: Basic c2VjcmV0\r\n\
         Proxy-Connection: keep-alive\r\n\
         Connection: keep-alive, X-Hop\r\n\
         X-Hop: 1\r\n\
         Keep-Alive: timeout=5\r\n\
         Accept: */*\r\n\
         Content-Length: 4\r\n\r\nbody"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let response = read_all(&mut client).await;
    assert_eq!(
        response,
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    );
    assert_eq!(
        received.await.unwrap(),
        format!(
            "POST /path/x?token=abc HTTP/1.1\r\n\
             Host: 127.0.0.1:{}\r\n\
             Accept: */*\r\n\
             Content-Length: 4\r\n\
             Connection: close\r\n\r\nbody",
            origin.port()
        )
    );
    let decision = harness.last();
    assert_decision(&decision, Protocol::Http, Verdict::Allowed, "exempt");
    // Only host and port are recorded: never the path, query or credentials.
    assert_eq!(
        (decision.host.as_str(), decision.port),
        ("127.0.0.1", origin.port())
    );
    let recorded = format!("{:?}", harness.decisions());
    for secret in ["secret", "token", "abc", "path", "c2VjcmV0", "user"] {
        assert!(!recorded.contains(secret), "{recorded}");
    }
}

#[tokio::test]
async fn plain_http_to_a_loopback_origin_is_refused() {
    let (origin, _received) = http_origin().await;
    let harness = Harness::simple(EgressPolicy::default());
    let mut client = harness.client().await;
    client
        .write_all(format!("GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(
        read_all(&mut client)
            .await
            .starts_with("HTTP/1.1 403 Forbidden")
    );
    assert_decision(
        &harness.last(),
        Protocol::Http,
        Verdict::Refused,
        "loopback",
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_are_recorded() {
    let harness = Harness::simple(EgressPolicy::default());
    for (request, protocol) in [
        ("GET https://example.com/ HTTP/1.1\r\n\r\n", Protocol::Http),
        (
            "GET /relative HTTP/1.1\r\nHost: example.com\r\n\r\n",
            Protocol::Http,
        ),
        (
            "CONNECT example.com HTTP/1.1\r\n\r\n",
            Protocol::HttpConnect,
        ),
        (
            "CONNECT exa%20mple.com:443 HTTP/1.1\r\n\r\n",
            Protocol::HttpConnect,
        ),
        ("\x16\x03\x01\x02\x00\x01\x00", Protocol::Http),
    ] {
        let mut client = harness.client().await;
        client.write_all(request.as_bytes()).await.unwrap();
        let response = read_all(&mut client).await;
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request"),
            "{request:?}: {response}"
        );
        assert_decision(&harness.last(), protocol, Verdict::Refused, "bad-request");
    }
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let harness = Harness::simple(EgressPolicy::default());
    let mut client = harness.client().await;
    let mut request = b"GET http://example.com/ HTTP/1.1\r\nX-Big: ".to_vec();
    request.resize(http::MAX_HEAD + 100, b'a');
    // The proxy stops reading at the limit, so the write may fail part-way: ignore that.
    let _ = client.write_all(&request).await;
    let response = read_all(&mut client).await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request"),
        "{response}"
    );
    assert!(response.contains("head-too-large"), "{response}");
    let decision = harness.last();
    assert_decision(
        &decision,
        Protocol::Http,
        Verdict::Refused,
        "head-too-large",
    );
    assert_eq!((decision.host.as_str(), decision.port), ("", 0));
}

#[tokio::test]
async fn slow_heads_time_out() {
    let harness = Harness::simple(EgressPolicy {
        head_timeout: Duration::from_millis(200),
        ..EgressPolicy::default()
    });
    let mut client = harness.client().await;
    client.write_all(b"CONNECT example.com:4").await.unwrap();
    let response = read_all(&mut client).await;
    assert!(
        response.starts_with("HTTP/1.1 408 Request Timeout"),
        "{response}"
    );
    assert_decision(
        &harness.last(),
        Protocol::Http,
        Verdict::Refused,
        "head-timeout",
    );

    // A client that sends nothing is closed and recorded too.
    let mut silent = harness.client().await;
    assert_eq!(read_all(&mut silent).await, "");
    assert_decision(
        &harness.last(),
        Protocol::Unknown,
        Verdict::Refused,
        "head-timeout",
    );
}

/// Sends a SOCKS5 greeting and a request; returns the reply code (or the method reply's second
/// byte if negotiation failed).
async fn socks_request(client: &mut UnixStream, command: u8, address: &[u8], port: u16) -> u8 {
    client.write_all(&[5, 1, 0]).await.unwrap();
    let mut method = [0u8; 2];
    client.read_exact(&mut method).await.unwrap();
    assert_eq!(method, [5, 0]);
    let mut request = vec![5, command, 0];
    request.extend_from_slice(address);
    request.extend_from_slice(&port.to_be_bytes());
    client.write_all(&request).await.unwrap();
    let mut reply = [0u8; 10];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[0], 5);
    // The bound address never reveals the gateway's own address.
    assert_eq!(&reply[2..], &[0, 1, 0, 0, 0, 0, 0, 0]);
    reply[1]
}

fn socks_ipv4(ip: [u8; 4]) -> Vec<u8> {
    let mut address = vec![1];
    address.extend_from_slice(&ip);
    address
}

fn socks_domain(name: &str) -> Vec<u8> {
    let mut address = vec![3, u8::try_from(name.len()).unwrap()];
    address.extend_from_slice(name.as_bytes());
    address
}

#[tokio::test]
async fn socks5_connect_is_allowed_by_address_and_by_name() {
    let echo = echo_server().await;
    let resolver = Arc::new(FakeResolver::with(&[("echo.test", &["127.0.0.1"])]));
    let harness = Harness::start(exempt(&[echo]), resolver, HostAddresses::system().unwrap());

    let mut client = harness.client().await;
    assert_eq!(
        socks_request(&mut client, 1, &socks_ipv4([127, 0, 0, 1]), echo.port()).await,
        0
    );
    assert_echoes(&mut client, b"over socks").await;
    assert_decision(
        &harness.last(),
        Protocol::Socks5,
        Verdict::Allowed,
        "exempt",
    );

    let mut client = harness.client().await;
    assert_eq!(
        socks_request(&mut client, 1, &socks_domain("echo.test"), echo.port()).await,
        0
    );
    assert_echoes(&mut client, b"by name").await;
    let decision = harness.last();
    assert_decision(&decision, Protocol::Socks5, Verdict::Allowed, "exempt");
    assert_eq!(decision.host, "echo.test");
    assert_eq!(decision.address, Some(echo.ip()));
}

#[tokio::test]
async fn socks5_refusals_use_the_right_reply_codes() {
    let echo = echo_server().await;
    let closed = closed_port().await;
    let harness = Harness::simple(exempt(&[closed]));
    let cases: [(u8, Vec<u8>, u16, u8, &str); 5] = [
        (1, socks_ipv4([127, 0, 0, 1]), echo.port(), 0x02, "loopback"),
        (1, socks_ipv4([169, 254, 169, 254]), 80, 0x02, "metadata"),
        (1, socks_domain("unknown.test"), 443, 0x04, "resolve-failed"),
        (
            2,
            socks_ipv4([93, 184, 215, 14]),
            80,
            0x07,
            "unsupported-command",
        ),
        (
            3,
            socks_ipv4([93, 184, 215, 14]),
            53,
            0x07,
            "unsupported-command",
        ),
    ];
    for (command, address, port, code, reason) in cases {
        let mut client = harness.client().await;
        assert_eq!(
            socks_request(&mut client, command, &address, port).await,
            code,
            "{reason}"
        );
        let decision = harness.last();
        assert_eq!(decision.reason, reason);
        assert_eq!(decision.protocol, Protocol::Socks5);
    }
    let mut client = harness.client().await;
    assert_eq!(
        socks_request(&mut client, 1, &socks_ipv4([127, 0, 0, 1]), closed.port()).await,
        0x05
    );
    assert_decision(
        &harness.last(),
        Protocol::Socks5,
        Verdict::Failed,
        "connection-refused",
    );

    // Only "no authentication" is offered.
    let mut client = harness.client().await;
    client.write_all(&[5, 1, 2]).await.unwrap();
    let mut method = [0u8; 2];
    client.read_exact(&mut method).await.unwrap();
    assert_eq!(method, [5, 0xff]);
    assert_decision(
        &harness.last(),
        Protocol::Socks5,
        Verdict::Refused,
        "unsupported-auth",
    );

    // Unknown address types are answered with 0x08.
    let mut client = harness.client().await;
    client.write_all(&[5, 1, 0, 5, 1, 0, 9]).await.unwrap();
    let mut replies = [0u8; 12];
    client.read_exact(&mut replies).await.unwrap();
    assert_eq!(&replies[..4], &[5, 0, 5, 0x08]);
    assert_decision(
        &harness.last(),
        Protocol::Socks5,
        Verdict::Refused,
        "unsupported-address-type",
    );
}

#[tokio::test]
async fn allowlist_matches_names_and_refuses_others_without_resolving_them() {
    let echo = echo_server().await;
    let resolver = Arc::new(FakeResolver::with(&[
        ("api.example.test", &["127.0.0.1"]),
        ("other.test", &["127.0.0.1"]),
    ]));
    let policy = EgressPolicy {
        allowlist: Some(vec!["*.example.test".into(), "exact.test".into()]),
        ..exempt(&[echo])
    };
    let harness = Harness::start(policy, resolver.clone(), HostAddresses::system().unwrap());

    let mut client = http_connect(&harness, &format!("API.example.test:{}", echo.port())).await;
    assert!(read_head(&mut client).await.starts_with("HTTP/1.1 200"));
    assert_echoes(&mut client, b"allowed").await;
    assert_decision(
        &harness.last(),
        Protocol::HttpConnect,
        Verdict::Allowed,
        "exempt",
    );

    for target in ["other.test", "example.test", "127.0.0.1"] {
        let mut client = http_connect(&harness, &format!("{target}:{}", echo.port())).await;
        let response = read_all(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
        assert!(response.contains("not-allowlisted"), "{response}");
        let decision = harness.last();
        assert_decision(
            &decision,
            Protocol::HttpConnect,
            Verdict::Refused,
            "not-allowlisted",
        );
        assert_eq!(decision.address, None);
    }
    assert_eq!(*resolver.asked.lock().unwrap(), ["api.example.test"]);
}

/// Denied names are refused before the allowlist and before resolution, even when trusted.
#[tokio::test]
async fn denied_hosts_are_refused_without_resolving_them() {
    let echo = echo_server().await;
    let resolver = Arc::new(FakeResolver::with(&[
        ("registry.npmjs.org", &["127.0.0.1"]),
        ("api.example.test", &["127.0.0.1"]),
    ]));
    let policy = EgressPolicy {
        denied_hosts: vec!["registry.npmjs.org".into(), "*.pythonhosted.org".into()],
        trusted_hosts: vec!["registry.npmjs.org".into()],
        allowlist: Some(vec!["registry.npmjs.org".into(), "api.example.test".into()]),
        ..exempt(&[echo])
    };
    let harness = Harness::start(policy, resolver.clone(), HostAddresses::system().unwrap());
    for target in ["Registry.NPMjs.org", "files.pythonhosted.org"] {
        let mut client = http_connect(&harness, &format!("{target}:{}", echo.port())).await;
        let response = read_all(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
        assert!(response.contains("denied-host"), "{response}");
        let decision = harness.last();
        assert_decision(
            &decision,
            Protocol::HttpConnect,
            Verdict::Refused,
            "denied-host",
        );
        assert_eq!(decision.address, None);
    }
    let mut client = http_connect(&harness, &format!("api.example.test:{}", echo.port())).await;
    assert!(read_head(&mut client).await.starts_with("HTTP/1.1 200"));
    assert_eq!(*resolver.asked.lock().unwrap(), ["api.example.test"]);
}

#[tokio::test]
async fn names_resolving_to_forbidden_addresses_are_refused() {
    let echo = echo_server().await;
    let resolver = Arc::new(FakeResolver::with(&[
        ("rebind.test", &["10.0.0.5"]),
        ("metadata.test", &["169.254.169.254"]),
        ("mapped.test", &["::ffff:10.0.0.5"]),
        ("gateway.test", &["8.8.4.4"]),
        ("mixed.test", &["10.0.0.5", "127.0.0.1"]),
    ]));
    let harness = Harness::start(
        exempt(&[echo]),
        resolver,
        HostAddresses::fixed(["8.8.4.4".parse().unwrap()]),
    );
    for (name, reason, address) in [
        ("rebind.test", "private", "10.0.0.5"),
        ("metadata.test", "metadata", "169.254.169.254"),
        ("mapped.test", "ipv4-mapped", "::ffff:10.0.0.5"),
        ("gateway.test", "host-address", "8.8.4.4"),
    ] {
        let mut client = http_connect(&harness, &format!("{name}:443")).await;
        let response = read_all(&mut client).await;
        assert!(response.starts_with("HTTP/1.1 403"), "{name}: {response}");
        let decision = harness.last();
        assert_decision(&decision, Protocol::HttpConnect, Verdict::Refused, reason);
        assert_eq!(decision.address, Some(address.parse().unwrap()));
    }
    // Among several answers only the checked ones are tried, in order.
    let mut client = http_connect(&harness, &format!("mixed.test:{}", echo.port())).await;
    assert!(read_head(&mut client).await.starts_with("HTTP/1.1 200"));
    assert_echoes(&mut client, b"checked").await;
    assert_eq!(harness.last().address, Some(echo.ip()));
}

#[tokio::test]
async fn trusted_hosts_may_resolve_privately_but_never_to_loopback() {
    let resolver = Arc::new(FakeResolver::with(&[(
        "registry.corp.test",
        &["127.0.0.1"],
    )]));
    let policy = EgressPolicy {
        trusted_hosts: vec!["registry.corp.test".into()],
        ..EgressPolicy::default()
    };
    let harness = Harness::start(policy, resolver, HostAddresses::system().unwrap());
    let mut client = http_connect(&harness, "registry.corp.test:443").await;
    assert!(read_all(&mut client).await.starts_with("HTTP/1.1 403"));
    assert_decision(
        &harness.last(),
        Protocol::HttpConnect,
        Verdict::Refused,
        "loopback",
    );
}

#[tokio::test]
async fn connect_failures_answer_502_and_504() {
    let closed = closed_port().await;
    let resolver = Arc::new(FakeResolver {
        delay: Some(Duration::from_secs(5)),
        ..FakeResolver::default()
    });
    let policy = EgressPolicy {
        connect_timeout: Duration::from_millis(100),
        ..exempt(&[closed])
    };
    let harness = Harness::start(policy, resolver, HostAddresses::system().unwrap());

    let mut client = http_connect(&harness, &closed.to_string()).await;
    let response = read_all(&mut client).await;
    assert!(
        response.starts_with("HTTP/1.1 502 Bad Gateway"),
        "{response}"
    );
    assert_decision(
        &harness.last(),
        Protocol::HttpConnect,
        Verdict::Failed,
        "connection-refused",
    );

    let mut client = http_connect(&harness, "slow.test:443").await;
    let response = read_all(&mut client).await;
    assert!(
        response.starts_with("HTTP/1.1 504 Gateway Timeout"),
        "{response}"
    );
    assert_decision(
        &harness.last(),
        Protocol::HttpConnect,
        Verdict::Failed,
        "timeout",
    );
}

#[tokio::test]
async fn the_connection_limit_is_enforced_and_released() {
    let echo = echo_server().await;
    let harness = Harness::simple(EgressPolicy {
        max_connections: 1,
        ..exempt(&[echo])
    });
    let mut first = http_connect(&harness, &echo.to_string()).await;
    assert!(read_head(&mut first).await.starts_with("HTTP/1.1 200"));

    let mut second = http_connect(&harness, &echo.to_string()).await;
    let response = read_all(&mut second).await;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(response.contains("connection-limit"), "{response}");
    let decision = harness.last();
    assert_decision(
        &decision,
        Protocol::HttpConnect,
        Verdict::Refused,
        "connection-limit",
    );
    assert_eq!(decision.port, echo.port());
    assert_echoes(&mut first, b"first still works").await;

    drop(first);
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut client = http_connect(&harness, &echo.to_string()).await;
            if read_head(&mut client).await.starts_with("HTTP/1.1 200") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_byte_limit_ends_the_connection_and_refuses_new_ones() {
    let echo = echo_server().await;
    let harness = Harness::simple(EgressPolicy {
        max_bytes: 1000,
        ..exempt(&[echo])
    });
    let mut client = http_connect(&harness, &echo.to_string()).await;
    assert!(read_head(&mut client).await.starts_with("HTTP/1.1 200"));
    assert_echoes(&mut client, &[7u8; 400]).await;
    // 800 bytes used; another 400 out and back would make 1600.
    client.write_all(&[8u8; 400]).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    assert!(rest.len() < 400, "{}", rest.len());
    let stats = harness.counters.snapshot();
    assert!(stats.bytes_sent + stats.bytes_received <= 1000, "{stats:?}");

    let mut client = http_connect(&harness, &echo.to_string()).await;
    assert!(read_all(&mut client).await.contains("byte-limit"));
    assert_decision(
        &harness.last(),
        Protocol::HttpConnect,
        Verdict::Refused,
        "byte-limit",
    );
}

#[tokio::test]
async fn dropping_serve_ends_open_connections() {
    let echo = echo_server().await;
    let harness = Harness::simple(exempt(&[echo]));
    let mut client = http_connect(&harness, &echo.to_string()).await;
    assert!(read_head(&mut client).await.starts_with("HTTP/1.1 200"));
    assert_echoes(&mut client, b"alive").await;

    harness.task.abort();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .expect("the tunnel closes when the proxy is torn down")
        .unwrap();
    assert!(rest.is_empty());
}

#[test]
fn policy_serializes_durations_as_milliseconds_and_has_defaults() {
    let policy: EgressPolicy = serde_json::from_str(
        r#"{"allowlist": ["*.npmjs.org"], "connect_timeout_ms": 2500, "max_connections": 8}"#,
    )
    .unwrap();
    assert_eq!(policy.connect_timeout, Duration::from_millis(2500));
    assert_eq!(policy.max_connections, 8);
    assert_eq!(policy.max_bytes, 1 << 30);
    assert_eq!(policy.head_timeout, Duration::from_secs(10));
    let json = serde_json::to_value(&policy).unwrap();
    assert_eq!(json["connect_timeout_ms"], 2500);
    assert_eq!(
        serde_json::from_value::<EgressPolicy>(json).unwrap(),
        policy
    );
    assert!(serde_json::from_str::<EgressPolicy>(r#"{"allow_list": []}"#).is_err());
}

#[test]
fn invalid_patterns_are_rejected_with_the_field_named() {
    let policy = EgressPolicy {
        trusted_hosts: vec!["registry.*.test".into()],
        ..EgressPolicy::default()
    };
    let error = EgressProxy::new(
        policy,
        Arc::new(SystemResolver),
        HostAddresses::fixed([]),
        Arc::new(|_: Decision| {}),
    )
    .err()
    .unwrap();
    let message = error.to_string();
    assert!(
        message.contains("trusted_hosts") && message.contains("registry.*.test"),
        "{message}"
    );
}
