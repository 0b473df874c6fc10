//! HTTP proxying: `CONNECT host:port` tunnels and plain absolute-form requests
//! (`GET http://host/path`), which are forwarded once in origin form with `Connection: close`.
//!
//! The request head is bounded in size ([`MAX_HEAD`]) and time (the policy's head timeout) and
//! parsed with `httparse`; URIs are parsed with the `http` crate.

use std::time::Duration;

use http::Uri;
use http::uri::{Authority, Scheme};
use httparse::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::{Instant, timeout_at};

use super::policy::Host;
use super::{Denial, Protocol, Shared, Target, relay};

/// Largest request head accepted, request line and headers together.
pub(super) const MAX_HEAD: usize = 16 * 1024;

/// Most header fields accepted in one request head.
const MAX_HEADERS: usize = 100;

/// How long, and how much, a refused client's remaining input is drained before closing.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 64 * 1024;

/// Hop-by-hop fields a forwarding proxy must not pass on (RFC 9110 §7.6.1), plus `Host`, which
/// is rewritten from the request target.
const DROPPED_FIELDS: [&str; 5] = ["connection", "keep-alive", "proxy-connection", "te", "host"];

/// A request head that names a destination.
enum Parsed {
    /// `CONNECT`: tunnel to the target.
    Connect(Target),
    /// Absolute-form request, with its head already rewritten for the origin server.
    Forward(Target, Vec<u8>),
}

/// A head that could not be used: the protocol it claimed, the target if it got that far, why.
type Rejection = (Protocol, Option<Target>, &'static str);

/// Serves one HTTP client whose first byte (`first`) has been read.
pub(super) async fn serve(
    shared: &Shared,
    mut stream: UnixStream,
    first: u8,
    deadline: Instant,
    at_capacity: bool,
) {
    // One buffer per connection, sized for the largest head, reused for every read of it.
    let mut buffer = vec![0u8; MAX_HEAD];
    buffer[0] = first;
    let (filled, head_len) = match timeout_at(deadline, read_head(&mut stream, &mut buffer)).await {
        Ok(Ok(lengths)) => lengths,
        Ok(Err(reason)) => {
            shared.deny(Protocol::Http, None, Denial::Invalid(reason));
            respond_denial(&mut stream, Denial::Invalid(reason)).await;
            return;
        }
        Err(_) => {
            shared.deny(Protocol::Http, None, Denial::Invalid("head-timeout"));
            respond_denial(&mut stream, Denial::Invalid("head-timeout")).await;
            return;
        }
    };
    let (head, early) = buffer[..filled].split_at(head_len);
    let parsed = match parse(head, early) {
        Ok(parsed) => parsed,
        Err((protocol, target, reason)) => {
            shared.deny(protocol, target.as_ref(), Denial::Invalid(reason));
            respond_denial(&mut stream, Denial::Invalid(reason)).await;
            return;
        }
    };
    let (protocol, target, early) = match &parsed {
        Parsed::Connect(target) => (Protocol::HttpConnect, target, early),
        Parsed::Forward(target, forward) => (Protocol::Http, target, forward.as_slice()),
    };
    let mut remote = match shared.open(protocol, target, at_capacity).await {
        Ok(remote) => remote,
        Err(denial) => {
            respond_denial(&mut stream, denial).await;
            return;
        }
    };
    if protocol == Protocol::HttpConnect
        && stream
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
    {
        return;
    }
    if relay::send_early(&shared.counters, &mut remote, early)
        .await
        .is_err()
    {
        return;
    }
    drop(buffer);
    relay::relay(&shared.counters, stream, remote).await;
}

/// Reads until `buffer[..filled]` holds a complete head; returns `(filled, head_len)`, or the
/// reason the head is unusable.
async fn read_head(
    stream: &mut UnixStream,
    buffer: &mut [u8],
) -> Result<(usize, usize), &'static str> {
    let mut filled = 1;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        // Parsing each partial head also rejects garbage (e.g. a TLS ClientHello) at once.
        match httparse::Request::new(&mut headers).parse(&buffer[..filled]) {
            Ok(Status::Complete(head_len)) => return Ok((filled, head_len)),
            Ok(Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err("head-too-large"),
            Err(_) => return Err("bad-request"),
        }
        if filled == buffer.len() {
            return Err("head-too-large");
        }
        let read = stream
            .read(&mut buffer[filled..])
            .await
            .map_err(|_| "bad-request")?;
        if read == 0 {
            return Err("bad-request");
        }
        filled += read;
    }
}

/// Interprets a complete head; for absolute-form requests also builds the forwarded head, with
/// `early` (bytes the client sent after the head) appended.
fn parse(head: &[u8], early: &[u8]) -> Result<Parsed, Rejection> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let bad = |protocol| (protocol, None, "bad-request");
    if !matches!(request.parse(head), Ok(Status::Complete(_))) {
        return Err(bad(Protocol::Http));
    }
    let (Some(method), Some(path), Some(version)) = (request.method, request.path, request.version)
    else {
        return Err(bad(Protocol::Http));
    };

    if method == "CONNECT" {
        let authority: Authority = path.parse().map_err(|_| bad(Protocol::HttpConnect))?;
        let host = Host::parse(authority.host()).ok_or(bad(Protocol::HttpConnect))?;
        let port = authority.port_u16().filter(|port| *port != 0);
        let Some(port) = port else {
            return Err(bad(Protocol::HttpConnect));
        };
        return Ok(Parsed::Connect(Target { host, port }));
    }

    let uri: Uri = path.parse().map_err(|_| bad(Protocol::Http))?;
    // `https://` in absolute form would mean the proxy speaks TLS for the client: clients use
    // CONNECT for that. Origin-form requests (no scheme) are not proxy requests at all.
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(bad(Protocol::Http));
    }
    let authority = uri.authority().ok_or(bad(Protocol::Http))?;
    let host = Host::parse(authority.host()).ok_or(bad(Protocol::Http))?;
    let port = authority.port_u16().unwrap_or(80);
    let target = Target { host, port };
    if port == 0 {
        return Err((Protocol::Http, Some(target), "bad-request"));
    }

    let mut forward = Vec::with_capacity(head.len() + early.len() + 32);
    forward.extend_from_slice(method.as_bytes());
    forward.push(b' ');
    let origin = uri.path_and_query().map_or("/", |path| path.as_str());
    if !origin.starts_with('/') {
        forward.push(b'/');
    }
    forward.extend_from_slice(origin.as_bytes());
    forward.extend_from_slice(if version == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    // Host comes from the checked target, so a forged Host field cannot pick another virtual
    // host behind the same address; userinfo is left out.
    forward.extend_from_slice(b"Host: ");
    forward.extend_from_slice(authority.host().as_bytes());
    if let Some(port) = authority.port() {
        forward.push(b':');
        forward.extend_from_slice(port.as_str().as_bytes());
    }
    forward.extend_from_slice(b"\r\n");
    let connection_fields: Vec<&[u8]> = request
        .headers
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case("connection"))
        .map(|field| field.value)
        .collect();
    for field in request.headers.iter() {
        if is_dropped(field.name, &connection_fields) {
            continue;
        }
        forward.extend_from_slice(field.name.as_bytes());
        forward.extend_from_slice(b": ");
        forward.extend_from_slice(field.value);
        forward.extend_from_slice(b"\r\n");
    }
    forward.extend_from_slice(b"Connection: close\r\n\r\n");
    forward.extend_from_slice(early);
    Ok(Parsed::Forward(target, forward))
}

/// Whether a request field stays with the proxy: `Proxy-*` (credentials for us, not the
/// origin), hop-by-hop fields and any field the client's `Connection` field names.
fn is_dropped(name: &str, connection_fields: &[&[u8]]) -> bool {
    let lower_prefix = name
        .get(..6)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("proxy-"));
    lower_prefix
        || DROPPED_FIELDS
            .iter()
            .any(|dropped| name.eq_ignore_ascii_case(dropped))
        || connection_fields.iter().any(|value| {
            value
                .split(|byte| *byte == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        })
}

/// Answers a request that gets no connection, with a short plain-text reason, and closes.
async fn respond_denial(stream: &mut UnixStream, denial: Denial) {
    let status = match denial {
        Denial::Refused(_) => "403 Forbidden",
        Denial::Invalid("head-timeout") => "408 Request Timeout",
        Denial::Invalid(_) => "400 Bad Request",
        Denial::Timeout => "504 Gateway Timeout",
        Denial::ResolveFailed | Denial::ConnectionRefused | Denial::Unreachable => {
            "502 Bad Gateway"
        }
    };
    let body = format!("mcp-hero egress: {}\n", denial.reason());
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len(),
    );
    if stream.write_all(response.as_bytes()).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    // Closing a unix socket with unread input resets it, and the client may lose the answer: read
    // and discard what it still sends, briefly and boundedly, before closing.
    let mut discard = [0u8; 4096];
    let mut drained = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while drained < LINGER_BYTES {
            match stream.read(&mut discard).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    })
    .await;
}
