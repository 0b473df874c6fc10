//! Parsing the addresses the network checks are given, in every spelling an attacker might use.
//!
//! IPv4 follows the BSD `inet_aton` rules that C programs (and so many MCP servers) accept:
//! one to four parts, each decimal, hex (`0x7f`) or octal (`0177`), the last part filling the
//! remaining bytes, so `127.1`, `0x7f.1`, `2130706433` and `0177.0.0.1` all mean 127.0.0.1.
//! IPv6 takes the usual forms, with or without brackets, with an optional `%interface` scope.

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// One part of a dotted IPv4 address, in C's number syntax.
fn ipv4_part(part: &str) -> Option<u32> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        // "0x" alone is zero for inet_aton.
        return (radix == 16).then_some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// An IPv4 address in any `inet_aton` spelling.
pub fn parse_ipv4_loose(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<u32> = text.split('.').map(ipv4_part).collect::<Option<_>>()?;
    let value = match parts.as_slice() {
        [a] => *a,
        [a, b] if *a <= 0xff && *b <= 0xff_ffff => (a << 24) | b,
        [a, b, c] if *a <= 0xff && *b <= 0xff && *c <= 0xffff => (a << 24) | (b << 16) | c,
        [a, b, c, d] if [a, b, c, d].iter().all(|part| **part <= 0xff) => {
            (a << 24) | (b << 16) | (c << 8) | d
        }
        _ => return None,
    };
    Some(Ipv4Addr::from(value))
}

/// A host (IPv4 in any spelling, or IPv6 with optional brackets and `%scope`) and a port.
pub fn parse_target(host: &str, port: &str) -> Result<SocketAddr, String> {
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Some(v4) = parse_ipv4_loose(host) {
        return Ok(SocketAddr::new(IpAddr::V4(v4), port));
    }
    let (address, scope) = match host.split_once('%') {
        Some((address, scope)) => (address, Some(scope)),
        None => (host, None),
    };
    let v6: Ipv6Addr = address
        .parse()
        .map_err(|_| format!("bad address {host:?}"))?;
    let scope_id = match scope {
        None => 0,
        Some(scope) => match scope.parse::<u32>() {
            Ok(index) => index,
            Err(_) => crate::sys::interface_index(scope)
                .map_err(|_| format!("unknown interface {scope:?}"))?,
        },
    };
    Ok(SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope_id)))
}

/// Splits `host:port` (`[v6]:port` for IPv6) into its two halves, unparsed.
pub fn split_authority(authority: &str) -> Option<(&str, &str)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        return Some((host, port));
    }
    authority.rsplit_once(':')
}

/// `http://host:port/...` (or `socks5://`, `socks5h://`): the `host:port` part of a proxy URL.
pub fn proxy_authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    (!authority.is_empty()).then_some(authority)
}
