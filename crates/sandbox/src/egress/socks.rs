//! SOCKS5 (RFC 1928), `CONNECT` only and without authentication: the sandbox's proxy socket is
//! already private to one sandbox, so there is no one to authenticate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::{Instant, timeout_at};

use super::policy::Host;
use super::{Denial, Protocol, Shared, Target, relay};

/// The SOCKS protocol version byte, also how a connection is told apart from HTTP.
pub(super) const VERSION: u8 = 0x05;

const NO_AUTH: u8 = 0x00;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CMD_CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// Reply codes (RFC 1928 §6).
const REPLY_SUCCEEDED: u8 = 0x00;
const REPLY_GENERAL_FAILURE: u8 = 0x01;
const REPLY_NOT_ALLOWED: u8 = 0x02;
const REPLY_HOST_UNREACHABLE: u8 = 0x04;
const REPLY_CONNECTION_REFUSED: u8 = 0x05;
const REPLY_COMMAND_NOT_SUPPORTED: u8 = 0x07;
const REPLY_ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;

/// Why a handshake ended before a destination could be decided.
enum HandshakeError {
    /// The client broke the protocol, went away or was too slow; close without a reply.
    Silent(&'static str),
    /// Reply with this code, record this reason (and the target, if it was read).
    Reply(u8, &'static str, Option<Target>),
}

/// Serves one SOCKS5 client whose version byte has been read.
pub(super) async fn serve(
    shared: &Shared,
    mut stream: UnixStream,
    deadline: Instant,
    at_capacity: bool,
) {
    let target = match timeout_at(deadline, handshake(&mut stream)).await {
        Ok(Ok(target)) => target,
        Ok(Err(HandshakeError::Silent(reason))) => {
            shared.deny(Protocol::Socks5, None, Denial::Invalid(reason));
            return;
        }
        Ok(Err(HandshakeError::Reply(code, reason, target))) => {
            shared.deny(Protocol::Socks5, target.as_ref(), Denial::Invalid(reason));
            let _ = reply(&mut stream, code).await;
            return;
        }
        Err(_) => {
            shared.deny(Protocol::Socks5, None, Denial::Invalid("head-timeout"));
            return;
        }
    };
    let remote = match shared.open(Protocol::Socks5, &target, at_capacity).await {
        Ok(remote) => remote,
        Err(denial) => {
            let _ = reply(&mut stream, reply_code(denial)).await;
            return;
        }
    };
    if reply(&mut stream, REPLY_SUCCEEDED).await.is_err() {
        return;
    }
    // The handshake reads exact lengths, so nothing the client sent early is left to forward.
    relay::relay(&shared.counters, stream, remote).await;
}

/// Reads the method negotiation and the request; answers the negotiation itself.
async fn handshake(stream: &mut UnixStream) -> Result<Target, HandshakeError> {
    let io_error = |_| HandshakeError::Silent("bad-request");
    let method_count = stream.read_u8().await.map_err(io_error)?;
    let mut methods = [0u8; 255];
    let methods = &mut methods[..usize::from(method_count)];
    stream.read_exact(methods).await.map_err(io_error)?;
    if !methods.contains(&NO_AUTH) {
        let _ = stream.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await;
        return Err(HandshakeError::Silent("unsupported-auth"));
    }
    stream
        .write_all(&[VERSION, NO_AUTH])
        .await
        .map_err(io_error)?;

    let mut request = [0u8; 4];
    stream.read_exact(&mut request).await.map_err(io_error)?;
    let [version, command, _reserved, address_type] = request;
    if version != VERSION {
        return Err(HandshakeError::Silent("bad-request"));
    }
    let host = match address_type {
        ATYP_IPV4 => {
            let mut octets = [0u8; 4];
            stream.read_exact(&mut octets).await.map_err(io_error)?;
            Some(Host::Ip(IpAddr::V4(Ipv4Addr::from(octets))))
        }
        ATYP_IPV6 => {
            let mut octets = [0u8; 16];
            stream.read_exact(&mut octets).await.map_err(io_error)?;
            Some(Host::Ip(IpAddr::V6(Ipv6Addr::from(octets))))
        }
        ATYP_DOMAIN => {
            let length = stream.read_u8().await.map_err(io_error)?;
            let mut name = [0u8; 255];
            let name = &mut name[..usize::from(length)];
            stream.read_exact(name).await.map_err(io_error)?;
            std::str::from_utf8(name).ok().and_then(Host::parse)
        }
        _ => {
            return Err(HandshakeError::Reply(
                REPLY_ADDRESS_TYPE_NOT_SUPPORTED,
                "unsupported-address-type",
                None,
            ));
        }
    };
    let port = stream.read_u16().await.map_err(io_error)?;
    let Some(host) = host else {
        return Err(HandshakeError::Reply(
            REPLY_GENERAL_FAILURE,
            "bad-request",
            None,
        ));
    };
    let target = Target { host, port };
    if command != CMD_CONNECT {
        // BIND and UDP ASSOCIATE would open listening or UDP sockets on the gateway.
        return Err(HandshakeError::Reply(
            REPLY_COMMAND_NOT_SUPPORTED,
            "unsupported-command",
            Some(target),
        ));
    }
    if port == 0 {
        return Err(HandshakeError::Reply(
            REPLY_GENERAL_FAILURE,
            "bad-request",
            Some(target),
        ));
    }
    Ok(target)
}

/// The reply code for a denial.
fn reply_code(denial: Denial) -> u8 {
    match denial {
        Denial::Refused(_) => REPLY_NOT_ALLOWED,
        Denial::Invalid(_) => REPLY_GENERAL_FAILURE,
        Denial::ConnectionRefused => REPLY_CONNECTION_REFUSED,
        Denial::ResolveFailed | Denial::Timeout | Denial::Unreachable => REPLY_HOST_UNREACHABLE,
    }
}

/// Sends a reply. The bound address is always `0.0.0.0:0`: the real one is the gateway's own
/// address, which the sandbox has no business learning.
async fn reply(stream: &mut UnixStream, code: u8) -> std::io::Result<()> {
    stream
        .write_all(&[VERSION, code, 0x00, ATYP_IPV4, 0, 0, 0, 0, 0, 0])
        .await
}
