//! Address classification and host-name matching: the pure part of every egress decision.
//!
//! A sandbox may reach the public internet only. Everything that could lead back to the gateway host
//! (S3), to the cloud's credential services or to the operator's private networks is refused here,
//! including IPv6 forms that embed an IPv4 address (a translator would otherwise carry the packet
//! to the embedded, unchecked address).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::{Ipv4Net, Ipv6Net};

/// Why a destination was refused; `as_str` is the stable reason written into decision records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    /// `0.0.0.0` or `::`: the kernel treats it as "this host".
    #[error("unspecified address")]
    Unspecified,
    /// `127.0.0.0/8` or `::1`: the gateway host itself.
    #[error("loopback address")]
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) or IPv6 unique-local (`fc00::/7`).
    #[error("private address")]
    Private,
    /// `169.254/16` or `fe80::/10`: the local link, where clouds put host services.
    #[error("link-local address")]
    LinkLocal,
    /// `100.64/10`: carrier-grade NAT space, used by overlay networks (e.g. Tailscale).
    #[error("carrier-grade NAT address")]
    Cgnat,
    /// `224/4` or `ff00::/8`.
    #[error("multicast address")]
    Multicast,
    /// `255.255.255.255`.
    #[error("broadcast address")]
    Broadcast,
    /// Documentation ranges (`192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`).
    #[error("documentation address")]
    Documentation,
    /// `198.18/15`: benchmarking networks.
    #[error("benchmarking address")]
    Benchmarking,
    /// Other special-purpose space: `0/8`, `192.0.0/24`, `240/4`, `2001::/23`, `100::/64`,
    /// `fec0::/10`, and any IPv6 outside global unicast `2000::/3`.
    #[error("reserved address")]
    Reserved,
    /// A cloud instance-metadata or host-agent endpoint (instance credentials live there).
    #[error("cloud metadata endpoint")]
    Metadata,
    /// One of the gateway host's own interface addresses.
    #[error("address of the gateway host")]
    HostAddress,
    /// The server's host allowlist does not name this host.
    #[error("host is not in the allowlist")]
    NotAllowlisted,
    /// The policy denies this host by name (a package registry, for a session).
    #[error("host is denied")]
    DeniedHost,
    /// `::ffff:0:0/96`: an IPv4 address in IPv6 clothing.
    #[error("IPv4-mapped IPv6 address")]
    Ipv4Mapped,
    /// `::/96` (deprecated IPv4-compatible form).
    #[error("IPv4-compatible IPv6 address")]
    Ipv4Compatible,
    /// `::ffff:0:0:0/96` (SIIT IPv4-translated form).
    #[error("IPv4-translated IPv6 address")]
    Ipv4Translated,
    /// `2002::/16`: 6to4, which embeds an IPv4 address.
    #[error("6to4 address")]
    SixToFour,
    /// `64:ff9b::/96` or `64:ff9b:1::/48`: NAT64, which embeds an IPv4 address.
    #[error("NAT64 address")]
    Nat64,
    /// `2001::/32`: Teredo, which embeds an IPv4 address.
    #[error("Teredo address")]
    Teredo,
    /// The sandbox already has its maximum number of concurrent connections open.
    #[error("connection limit reached")]
    ConnectionLimit,
    /// The sandbox has used up its byte budget.
    #[error("byte limit reached")]
    ByteLimit,
}

impl Refusal {
    /// The short stable reason string used in decision records, logs and proxy replies.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unspecified => "unspecified",
            Refusal::Loopback => "loopback",
            Refusal::Private => "private",
            Refusal::LinkLocal => "link-local",
            Refusal::Cgnat => "cgnat",
            Refusal::Multicast => "multicast",
            Refusal::Broadcast => "broadcast",
            Refusal::Documentation => "documentation",
            Refusal::Benchmarking => "benchmarking",
            Refusal::Reserved => "reserved",
            Refusal::Metadata => "metadata",
            Refusal::HostAddress => "host-address",
            Refusal::NotAllowlisted => "not-allowlisted",
            Refusal::DeniedHost => "denied-host",
            Refusal::Ipv4Mapped => "ipv4-mapped",
            Refusal::Ipv4Compatible => "ipv4-compatible",
            Refusal::Ipv4Translated => "ipv4-translated",
            Refusal::SixToFour => "6to4",
            Refusal::Nat64 => "nat64",
            Refusal::Teredo => "teredo",
            Refusal::ConnectionLimit => "connection-limit",
            Refusal::ByteLimit => "byte-limit",
        }
    }

    /// Whether an operator-trusted host (e.g. a package registry) may resolve to `ip` although
    /// it is refused for `self`.
    ///
    /// Only the "not public" categories are relaxed: private, CGNAT, documentation,
    /// benchmarking and reserved space (registries behind a corporate proxy or a test network
    /// resolve there). Loopback, unspecified, metadata and host addresses stay refused (S3), and
    /// so do link-local (clouds run credential services on more of `169.254/16` than the named
    /// metadata addresses), multicast, broadcast, the IPv4-embedding IPv6 forms and `0/8`, which
    /// some kernels route to the host itself.
    fn relaxed_for_trusted(self, ip: IpAddr) -> bool {
        match self {
            Refusal::Private | Refusal::Cgnat | Refusal::Documentation | Refusal::Benchmarking => {
                true
            }
            Refusal::Reserved => !matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 0),
            _ => false,
        }
    }
}

/// Cloud metadata and host-agent endpoints, checked before the wider ranges that contain them so
/// that records name them for what they are.
const METADATA_V4: [Ipv4Addr; 5] = [
    // AWS, GCP, Azure, OpenStack, Oracle and others.
    Ipv4Addr::new(169, 254, 169, 254),
    // AWS ECS task credentials and EKS pod identity.
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    // Alibaba Cloud.
    Ipv4Addr::new(100, 100, 100, 200),
    // Azure WireServer: a public address that only answers VMs, with host-agent secrets.
    Ipv4Addr::new(168, 63, 129, 16),
];

/// IPv6 forms of the AWS metadata and pod identity endpoints.
const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254),
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023),
];

/// IPv4 special-purpose ranges, most specific first where they nest.
const V4_RANGES: [(Ipv4Net, Refusal); 15] = [
    (v4(0, 0, 0, 0, 8), Refusal::Reserved),
    (v4(10, 0, 0, 0, 8), Refusal::Private),
    (v4(100, 64, 0, 0, 10), Refusal::Cgnat),
    (v4(127, 0, 0, 0, 8), Refusal::Loopback),
    (v4(169, 254, 0, 0, 16), Refusal::LinkLocal),
    (v4(172, 16, 0, 0, 12), Refusal::Private),
    (v4(192, 0, 0, 0, 24), Refusal::Reserved),
    (v4(192, 0, 2, 0, 24), Refusal::Documentation),
    // Deprecated 6to4 relay anycast: it forwards into 6to4 space.
    (v4(192, 88, 99, 0, 24), Refusal::Reserved),
    (v4(192, 168, 0, 0, 16), Refusal::Private),
    (v4(198, 18, 0, 0, 15), Refusal::Benchmarking),
    (v4(198, 51, 100, 0, 24), Refusal::Documentation),
    (v4(203, 0, 113, 0, 24), Refusal::Documentation),
    (v4(224, 0, 0, 0, 4), Refusal::Multicast),
    (v4(240, 0, 0, 0, 4), Refusal::Reserved),
];

/// IPv6 special-purpose ranges inside or beside global unicast, most specific first.
const V6_RANGES: [(Ipv6Net, Refusal); 13] = [
    (v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), Refusal::Ipv4Mapped),
    (
        v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),
        Refusal::Ipv4Translated,
    ),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), Refusal::Ipv4Compatible),
    (v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), Refusal::Nat64),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), Refusal::Nat64),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Refusal::Reserved),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), Refusal::Teredo),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), Refusal::Reserved),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        Refusal::Documentation,
    ),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), Refusal::SixToFour),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        Refusal::Documentation,
    ),
    // SRv6 segment identifiers (RFC 9602): never a TCP destination.
    (v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), Refusal::Reserved),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Refusal::Private),
];

/// IPv6 ranges outside global unicast that deserve their own reason (the rest is `Reserved`).
const V6_NON_GLOBAL: [(Ipv6Net, Refusal); 3] = [
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Refusal::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Refusal::Reserved),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Refusal::Multicast),
];

/// Global unicast: the only IPv6 space a public destination can live in.
const V6_GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// Decides whether `ip` is a public destination a sandbox may reach; host addresses are checked
/// separately (see [`HostAddresses`]) because they change at run time.
pub fn classify(ip: IpAddr) -> Result<(), Refusal> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Result<(), Refusal> {
    if METADATA_V4.contains(&ip) {
        return Err(Refusal::Metadata);
    }
    if ip.is_unspecified() {
        return Err(Refusal::Unspecified);
    }
    if ip.is_broadcast() {
        return Err(Refusal::Broadcast);
    }
    match V4_RANGES.iter().find(|(net, _)| net.contains(&ip)) {
        Some((_, refusal)) => Err(*refusal),
        None => Ok(()),
    }
}

fn classify_v6(ip: Ipv6Addr) -> Result<(), Refusal> {
    if METADATA_V6.contains(&ip) {
        return Err(Refusal::Metadata);
    }
    // Checked before the `::/96` IPv4-compatible range, which contains both.
    if ip.is_unspecified() {
        return Err(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Err(Refusal::Loopback);
    }
    if let Some((_, refusal)) = V6_RANGES.iter().find(|(net, _)| net.contains(&ip)) {
        return Err(*refusal);
    }
    if let Some((_, refusal)) = V6_NON_GLOBAL.iter().find(|(net, _)| net.contains(&ip)) {
        return Err(*refusal);
    }
    // Anything else outside 2000::/3 is unassigned or special-purpose: refuse it rather than
    // keep a list of every IANA reservation.
    if !V6_GLOBAL_UNICAST.contains(&ip) {
        return Err(Refusal::Reserved);
    }
    Ok(())
}

/// Where an accepted address stands, for the decision record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acceptance {
    /// A public address.
    Public,
    /// A non-public address reached because the host is operator-trusted.
    Trusted,
}

/// The full per-address check: classification (relaxed for trusted hosts), then host addresses.
pub(crate) fn check_address(
    ip: IpAddr,
    trusted: bool,
    host_addresses: &HostAddresses,
) -> Result<Acceptance, Refusal> {
    let acceptance = match classify(ip) {
        Ok(()) => Acceptance::Public,
        Err(refusal) if trusted && refusal.relaxed_for_trusted(ip) => Acceptance::Trusted,
        Err(refusal) => return Err(refusal),
    };
    if host_addresses.contains(ip) {
        return Err(Refusal::HostAddress);
    }
    Ok(acceptance)
}

/// The gateway host's own interface addresses, which no sandbox may reach (S3).
///
/// A public address on a host interface passes [`classify`], so it needs this separate list. The
/// system variant re-reads the interfaces on every check (one netlink round trip, far cheaper
/// than the TCP connect it guards) so an address added at run time is refused at once.
#[derive(Clone, Debug)]
pub struct HostAddresses {
    inner: Arc<HostAddressesInner>,
}

#[derive(Debug)]
enum HostAddressesInner {
    /// Read from the kernel; `last` is the newest good snapshot, used if a refresh fails.
    System { last: Mutex<Arc<[IpAddr]>> },
    /// Given by the caller (tests, or a deployment that knows better).
    Fixed(Arc<[IpAddr]>),
}

/// Failure to list the host's interface addresses.
#[derive(Debug, thiserror::Error)]
#[error(
    "listing the host's network interface addresses failed ({0}); the egress proxy cannot refuse \
     the gateway's own addresses without them: check that the gateway may open netlink sockets"
)]
pub struct HostAddressesError(#[source] std::io::Error);

impl HostAddresses {
    /// Reads the host's interface addresses now and again before every check.
    pub fn system() -> Result<Self, HostAddressesError> {
        let snapshot = read_interfaces().map_err(HostAddressesError)?;
        Ok(Self {
            inner: Arc::new(HostAddressesInner::System {
                last: Mutex::new(snapshot),
            }),
        })
    }

    /// A fixed list, for tests and for deployments that add addresses the interfaces don't show
    /// (e.g. a cloud's public address that is NATed onto the host).
    pub fn fixed(addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            inner: Arc::new(HostAddressesInner::Fixed(addresses.into_iter().collect())),
        }
    }

    /// The current list of host addresses.
    pub fn snapshot(&self) -> Arc<[IpAddr]> {
        match &*self.inner {
            HostAddressesInner::Fixed(list) => list.clone(),
            HostAddressesInner::System { last } => {
                // Read outside the lock: one refresh never waits on another's syscall.
                let fresh = read_interfaces();
                let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
                match fresh {
                    Ok(fresh) => *last = fresh,
                    Err(error) => {
                        // Keep the previous snapshot: an interface list that can't be read now
                        // most likely hasn't changed, and refusing all egress would be worse.
                        tracing::warn!(
                            %error,
                            "re-reading host interface addresses failed; using the previous list"
                        );
                    }
                }
                last.clone()
            }
        }
    }

    /// Whether `ip` is one of the host's addresses (compared after unwrapping IPv4-mapped IPv6).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.snapshot().iter().any(|own| own.to_canonical() == ip)
    }
}

/// Every address and directed-broadcast address of every interface, up or down.
fn read_interfaces() -> std::io::Result<Arc<[IpAddr]>> {
    let interfaces = if_addrs::get_if_addrs()?;
    let mut list = Vec::with_capacity(interfaces.len() * 2);
    for interface in interfaces {
        list.push(interface.ip());
        if let if_addrs::IfAddr::V4(v4) = &interface.addr
            && let Some(broadcast) = v4.broadcast
        {
            list.push(IpAddr::V4(broadcast));
        }
    }
    Ok(list.into())
}

/// One entry of a host allowlist or trusted-host list, parsed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// An exact host name (lower case, no trailing dot).
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: any name strictly below it.
    Suffix(String),
    /// An IP literal: matches a request for that literal only.
    Ip(IpAddr),
}

impl HostPattern {
    /// Parses an operator-written pattern; `None` for anything that isn't a plain name, a
    /// `*.`-prefixed name or an IP literal.
    pub(crate) fn parse(pattern: &str) -> Option<Self> {
        let trimmed = pattern.trim();
        let unbracketed = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(trimmed);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Some(Self::Ip(ip));
        }
        if let Some(suffix) = trimmed.strip_prefix("*.") {
            let suffix = normalize_name(suffix)?;
            return Some(Self::Suffix(format!(".{suffix}")));
        }
        normalize_name(trimmed).map(Self::Exact)
    }

    /// Whether the requested host matches this pattern.
    pub(crate) fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (Self::Exact(name), Host::Name(requested)) => name == requested,
            (Self::Suffix(suffix), Host::Name(requested)) => requested.ends_with(suffix.as_str()),
            (Self::Ip(ip), Host::Ip(requested)) => ip == requested,
            _ => false,
        }
    }
}

/// A requested destination host, validated so it is safe to put into records and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    /// A DNS name: lower case, no trailing dot, only letters, digits, `-`, `_` and `.`.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

impl Host {
    /// Parses a host as written in a request (IPv6 literals may be bracketed); `None` if it is
    /// not a plausible host name, which also keeps control characters out of records.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        let unbracketed = raw
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(raw);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Some(Self::Ip(ip));
        }
        normalize_name(raw).map(Self::Name)
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Lower-cases a DNS name and drops one trailing dot; `None` if it has characters no host name
/// has, or is empty or longer than DNS allows.
fn normalize_name(raw: &str) -> Option<String> {
    let name = raw.strip_suffix('.').unwrap_or(raw);
    let plausible = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plausible.then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn reason(ip: &str) -> &'static str {
        match classify(ip.parse().unwrap()) {
            Ok(()) => "public",
            Err(refusal) => refusal.as_str(),
        }
    }

    #[test]
    fn classification_table() {
        let table = [
            // Public.
            ("93.184.215.14", "public"),
            ("8.8.8.8", "public"),
            ("1.1.1.1", "public"),
            ("2606:4700:4700::1111", "public"),
            ("2a00:1450:4001:80b::200e", "public"),
            // Unspecified and loopback.
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("127.1.2.3", "loopback"),
            ("::1", "loopback"),
            // Private.
            ("10.0.0.1", "private"),
            ("10.255.255.255", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            // Just outside the private ranges.
            ("172.15.255.255", "public"),
            ("172.32.0.0", "public"),
            ("11.0.0.0", "public"),
            // Link-local.
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            // CGNAT.
            ("100.64.0.1", "cgnat"),
            ("100.127.255.255", "cgnat"),
            ("100.128.0.0", "public"),
            // Multicast and broadcast.
            ("224.0.0.1", "multicast"),
            ("239.255.255.255", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            // Reserved and special-purpose.
            ("0.1.2.3", "reserved"),
            ("192.0.0.8", "reserved"),
            ("192.88.99.1", "reserved"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.254", "reserved"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.1", "documentation"),
            ("203.0.113.1", "documentation"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("2001:2::1", "reserved"),
            ("2001:10::1", "reserved"),
            ("100::1", "reserved"),
            ("fec0::1", "reserved"),
            ("5f00::1", "reserved"),
            ("4000::1", "reserved"),
            ("1::1", "reserved"),
            // Metadata endpoints, inside their wider ranges.
            ("169.254.169.254", "metadata"),
            ("169.254.170.2", "metadata"),
            ("100.100.100.200", "metadata"),
            ("168.63.129.16", "metadata"),
            ("fd00:ec2::254", "metadata"),
            // IPv6 forms embedding IPv4 are refused outright, even around a public address.
            ("::ffff:127.0.0.1", "ipv4-mapped"),
            ("::ffff:8.8.8.8", "ipv4-mapped"),
            ("::ffff:169.254.169.254", "ipv4-mapped"),
            ("::127.0.0.1", "ipv4-compatible"),
            ("::8.8.8.8", "ipv4-compatible"),
            ("::ffff:0:7f00:1", "ipv4-translated"),
            ("2002:7f00:1::1", "6to4"),
            ("2002:808:808::1", "6to4"),
            ("64:ff9b::7f00:1", "nat64"),
            ("64:ff9b::808:808", "nat64"),
            ("64:ff9b:1::a00:1", "nat64"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
        ];
        for (ip, expected) in table {
            assert_eq!(reason(ip), expected, "{ip}");
        }
    }

    #[test]
    fn host_addresses_are_refused_even_when_public() {
        let host =
            HostAddresses::fixed(["8.8.4.4".parse().unwrap(), "2a01:4f8::1".parse().unwrap()]);
        for ip in ["8.8.4.4", "2a01:4f8::1"] {
            assert_eq!(
                check_address(ip.parse().unwrap(), false, &host),
                Err(Refusal::HostAddress),
                "{ip}"
            );
            assert_eq!(Refusal::HostAddress.as_str(), "host-address");
        }
        assert_eq!(
            check_address("8.8.8.8".parse().unwrap(), false, &host),
            Ok(Acceptance::Public)
        );
    }

    #[test]
    fn trusted_hosts_may_be_private_but_never_the_host_itself() {
        let host = HostAddresses::fixed(["10.0.0.5".parse().unwrap()]);
        let check = |ip: &str| check_address(ip.parse().unwrap(), true, &host);
        assert_eq!(check("10.1.2.3"), Ok(Acceptance::Trusted));
        assert_eq!(check("fd00::10"), Ok(Acceptance::Trusted));
        assert_eq!(check("100.64.1.1"), Ok(Acceptance::Trusted));
        assert_eq!(check("10.0.0.5"), Err(Refusal::HostAddress));
        assert_eq!(check("127.0.0.1"), Err(Refusal::Loopback));
        assert_eq!(check("0.0.0.0"), Err(Refusal::Unspecified));
        assert_eq!(check("169.254.169.254"), Err(Refusal::Metadata));
        assert_eq!(check("fd00:ec2::254"), Err(Refusal::Metadata));
        assert_eq!(check("169.254.1.1"), Err(Refusal::LinkLocal));
        assert_eq!(check("::ffff:10.1.2.3"), Err(Refusal::Ipv4Mapped));
        // Untrusted names get no such relaxation.
        assert_eq!(
            check_address("10.1.2.3".parse().unwrap(), false, &host),
            Err(Refusal::Private)
        );
    }

    /// Package registries may sit in documentation, benchmarking or reserved space (a test
    /// network, a corporate mirror); a trusted name may resolve there, never to the host.
    #[test]
    fn trusted_hosts_may_resolve_to_documentation_benchmarking_and_reserved_space() {
        let host = HostAddresses::fixed(["203.0.113.9".parse().unwrap()]);
        let check = |ip: &str| check_address(ip.parse().unwrap(), true, &host);
        for ip in [
            "203.0.113.80",
            "192.0.2.1",
            "198.51.100.7",
            "2001:db8::1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.9",
            "100::1",
            "fec0::1",
        ] {
            assert_eq!(check(ip), Ok(Acceptance::Trusted), "{ip}");
            assert!(
                check_address(ip.parse().unwrap(), false, &host).is_err(),
                "{ip} stays refused for untrusted names"
            );
        }
        assert_eq!(check("203.0.113.9"), Err(Refusal::HostAddress));
        assert_eq!(check("0.1.2.3"), Err(Refusal::Reserved));
        assert_eq!(check("127.0.0.1"), Err(Refusal::Loopback));
        assert_eq!(check("::1"), Err(Refusal::Loopback));
        assert_eq!(check("169.254.169.254"), Err(Refusal::Metadata));
        assert_eq!(check("169.254.3.4"), Err(Refusal::LinkLocal));
        assert_eq!(check("fe80::1"), Err(Refusal::LinkLocal));
        assert_eq!(check("224.0.0.1"), Err(Refusal::Multicast));
        assert_eq!(check("255.255.255.255"), Err(Refusal::Broadcast));
        assert_eq!(check("::ffff:203.0.113.80"), Err(Refusal::Ipv4Mapped));
        assert_eq!(check("64:ff9b::cb00:7150"), Err(Refusal::Nat64));
    }

    #[test]
    fn system_host_addresses_include_loopback() {
        let host = HostAddresses::system().unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(host.contains("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn patterns_match_exact_names_and_strict_subdomains() {
        let exact = HostPattern::parse("API.Example.com.").unwrap();
        let suffix = HostPattern::parse("*.example.com").unwrap();
        let ip = HostPattern::parse("[2001:4860::1]").unwrap();
        let host = |raw: &str| Host::parse(raw).unwrap();
        assert!(exact.matches(&host("api.example.com")));
        assert!(exact.matches(&host("API.EXAMPLE.COM.")));
        assert!(!exact.matches(&host("www.example.com")));
        assert!(suffix.matches(&host("www.example.com")));
        assert!(suffix.matches(&host("a.b.example.com")));
        assert!(!suffix.matches(&host("example.com")));
        assert!(!suffix.matches(&host("evilexample.com")));
        assert!(!suffix.matches(&host("example.com.evil.net")));
        assert!(ip.matches(&host("[2001:4860:0::1]")));
        assert!(!ip.matches(&host("2001:4860::2")));
        for bad in ["", "*", "a.*.com", "*example.com", "exa mple.com", "a..b"] {
            assert_eq!(HostPattern::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hosts_with_odd_characters_are_rejected() {
        for bad in [
            "",
            "a b",
            "a\r\nb",
            "a/b",
            "a@b",
            "..",
            "x".repeat(300).as_str(),
        ] {
            assert_eq!(Host::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Host::parse("[::1]"), Some(Host::Ip("::1".parse().unwrap())));
        assert_eq!(
            Host::parse("Ex-am_ple.COM"),
            Some(Host::Name("ex-am_ple.com".into()))
        );
    }
}
