//! The egress proxy: the gateway side of a sandbox's only way out (S3).
//!
//! A sandbox's network namespace has loopback only. A forwarder inside relays its local proxy port
//! to a unix socket bind-mounted from the gateway; [`EgressProxy::serve`] answers on that socket.
//! It speaks SOCKS5, HTTP `CONNECT` and plain absolute-form HTTP, resolves names itself, checks
//! every candidate address ([`classify`], host addresses, allowlist) and connects to exactly the
//! address it checked. One proxy runs per sandbox, so its policy, counters and connection tasks
//! are the sandbox's own and die with it.
//!
//! Nothing from a request other than the destination host and port reaches records or logs: paths,
//! headers and payloads may carry credentials (S16).

mod http;
mod policy;
mod relay;
mod resolve;
mod socks;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

pub use policy::{HostAddresses, HostAddressesError, Refusal, classify};
pub use resolve::{Resolve, ResolveFuture, SystemResolver};

use policy::{Acceptance, Host, HostPattern, check_address};

/// What one sandbox may reach through its egress proxy; operators set it per server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressPolicy {
    /// Host names the sandbox may reach (`api.example.com`, `*.example.com`, IP literals);
    /// `None` allows any public destination.
    pub allowlist: Option<Vec<String>>,
    /// Host names refused whatever the allowlist says and wherever they resolve (same syntax);
    /// sessions get the package registries here, so a server cannot install at run time what
    /// its image does not hold. A name only: it does not stop an IP literal or another name.
    pub denied_hosts: Vec<String>,
    /// Most connections open at once; more are refused with `connection-limit`.
    pub max_connections: usize,
    /// Bytes relayed in both directions over the sandbox's lifetime; past it connections end
    /// and new ones are refused with `byte-limit`.
    pub max_bytes: u64,
    /// Time allowed for resolving a name and connecting to it.
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    /// Time allowed for a client to send its whole request head or SOCKS handshake.
    #[serde(rename = "head_timeout_ms", with = "millis")]
    pub head_timeout: Duration,
    /// Operator-configured names (same syntax as the allowlist, e.g. a package registry) that
    /// may resolve to private, CGNAT, documentation, benchmarking or reserved addresses; never to
    /// loopback, unspecified, link-local, metadata or host addresses.
    pub trusted_hosts: Vec<String>,
    /// Exact address and port pairs that skip address classification entirely; exists so tests
    /// can prove a local destination is reachable through the proxy. Keep it empty in production.
    pub exempt_addresses: Vec<SocketAddr>,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self {
            allowlist: None,
            denied_hosts: Vec::new(),
            max_connections: 64,
            max_bytes: 1 << 30,
            connect_timeout: Duration::from_secs(10),
            head_timeout: Duration::from_secs(10),
            trusted_hosts: Vec::new(),
            exempt_addresses: Vec::new(),
        }
    }
}

/// Durations as whole milliseconds in configuration files.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Which proxy protocol a connection attempt used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// SOCKS5 `CONNECT`.
    Socks5,
    /// HTTP `CONNECT` tunnel.
    HttpConnect,
    /// Plain HTTP request in absolute form, forwarded in origin form.
    Http,
    /// The client sent nothing recognisable before it closed or timed out.
    Unknown,
}

impl Protocol {
    /// Stable name for logs and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Socks5 => "socks5",
            Protocol::HttpConnect => "http-connect",
            Protocol::Http => "http",
            Protocol::Unknown => "unknown",
        }
    }
}

/// The outcome of one connection attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The policy allowed it and the connection is open.
    Allowed,
    /// The policy (or a malformed request) refused it; no connection was attempted.
    Refused,
    /// The policy allowed it but the destination could not be resolved or reached.
    Failed,
}

/// One egress decision, for the audit trail; holds only the destination, never the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Requested host (a validated name or IP literal; empty if the request never named one).
    pub host: String,
    /// Requested port (0 if the request never named one).
    pub port: u16,
    /// The address connected to, or the one refused; `None` before resolution.
    pub address: Option<IpAddr>,
    /// What happened.
    pub verdict: Verdict,
    /// Short stable reason: `public`, `trusted` or `exempt` when allowed, a [`Refusal`] reason,
    /// or one of `bad-request`, `head-too-large`, `head-timeout`, `unsupported-auth`,
    /// `unsupported-command`, `unsupported-address-type`, `resolve-failed`, `timeout`,
    /// `connection-refused`, `unreachable`.
    pub reason: &'static str,
    /// The proxy protocol used.
    pub protocol: Protocol,
}

/// Receives every [`Decision`]; the gateway turns them into audit events and metrics.
pub trait DecisionSink: Send + Sync {
    /// Called once per connection attempt, on the connection's task: keep it quick.
    fn record(&self, decision: Decision);
}

impl<F: Fn(Decision) + Send + Sync> DecisionSink for F {
    fn record(&self, decision: Decision) {
        self(decision)
    }
}

/// A point-in-time view of one proxy's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EgressStats {
    /// Client connections currently held (handshaking or relaying).
    pub active_connections: u64,
    /// Decisions recorded.
    pub attempts: u64,
    /// Attempts allowed.
    pub allowed: u64,
    /// Attempts refused.
    pub refused: u64,
    /// Attempts that failed to resolve or connect.
    pub failed: u64,
    /// Bytes relayed from the sandbox to destinations.
    pub bytes_sent: u64,
    /// Bytes relayed from destinations to the sandbox.
    pub bytes_received: u64,
}

/// Live counters of one proxy, shared with the gateway for metrics and session accounting.
#[derive(Clone, Debug)]
pub struct EgressCounters {
    inner: Arc<CountersInner>,
}

#[derive(Debug)]
struct CountersInner {
    active: AtomicU64,
    attempts: AtomicU64,
    allowed: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    /// Sum of both directions, the quantity the byte budget limits.
    charged: AtomicU64,
    /// Set once a read did not fit the budget, so no later read can slip under it.
    exhausted: AtomicBool,
    max_bytes: u64,
}

/// Direction of relayed bytes, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// Sandbox to destination.
    Sent,
    /// Destination to sandbox.
    Received,
}

impl EgressCounters {
    fn new(max_bytes: u64) -> Self {
        Self {
            inner: Arc::new(CountersInner {
                active: AtomicU64::new(0),
                attempts: AtomicU64::new(0),
                allowed: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                bytes_sent: AtomicU64::new(0),
                bytes_received: AtomicU64::new(0),
                charged: AtomicU64::new(0),
                exhausted: AtomicBool::new(false),
                max_bytes,
            }),
        }
    }

    /// Reads every counter (each atomically; the set is not one transaction).
    pub fn snapshot(&self) -> EgressStats {
        let c = &*self.inner;
        EgressStats {
            active_connections: c.active.load(Ordering::Relaxed),
            attempts: c.attempts.load(Ordering::Relaxed),
            allowed: c.allowed.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
        }
    }

    /// Takes `n` bytes from the budget; `false` (and the budget closed for good) if they don't fit.
    fn charge(&self, direction: Direction, n: u64) -> bool {
        let c = &*self.inner;
        if c.exhausted.load(Ordering::Acquire) {
            return false;
        }
        let fits = c
            .charged
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| {
                total.checked_add(n).filter(|total| *total <= c.max_bytes)
            })
            .is_ok();
        if !fits {
            c.exhausted.store(true, Ordering::Release);
            return false;
        }
        let counter = match direction {
            Direction::Sent => &c.bytes_sent,
            Direction::Received => &c.bytes_received,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        true
    }

    /// Whether no byte may be relayed any more.
    fn exhausted(&self) -> bool {
        let c = &*self.inner;
        c.exhausted.load(Ordering::Acquire) || c.charged.load(Ordering::Acquire) >= c.max_bytes
    }

    fn count(&self, verdict: Verdict) {
        let c = &*self.inner;
        c.attempts.fetch_add(1, Ordering::Relaxed);
        let counter = match verdict {
            Verdict::Allowed => &c.allowed,
            Verdict::Refused => &c.refused,
            Verdict::Failed => &c.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Keeps `active_connections` right however a connection task ends (including abort).
struct ActiveGuard(EgressCounters);

impl ActiveGuard {
    fn new(counters: &EgressCounters) -> Self {
        counters.inner.active.fetch_add(1, Ordering::Relaxed);
        Self(counters.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.inner.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Errors of the egress proxy itself (per-connection problems become decisions, not errors).
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// An allowlist or trusted-host entry is not a name, `*.name` or IP literal.
    #[error(
        "egress policy entry {pattern:?} in {field} is not a host name, a `*.`-prefixed name or an \
         IP literal; fix the server's egress settings"
    )]
    InvalidPattern {
        /// The list the entry is in (`allowlist`, `denied_hosts` or `trusted_hosts`).
        field: &'static str,
        /// The offending entry as written.
        pattern: String,
    },
    /// The listening socket failed; the sandbox has no network access until it is restarted.
    #[error(
        "accepting on the sandbox's egress socket failed: {0}; the sandbox has no network access \
         until its session is restarted"
    )]
    Accept(#[source] std::io::Error),
}

/// Client connections allowed to handshake while the connection limit is reached, so they get a
/// proper `connection-limit` answer; beyond this they are closed at once.
const OVERFLOW_HANDSHAKES: usize = 8;

/// One sandbox's egress proxy: policy, resolver, host addresses, decision sink and counters.
pub struct EgressProxy {
    shared: Arc<Shared>,
}

/// State shared by all connection tasks of one proxy.
struct Shared {
    allowlist: Option<Vec<HostPattern>>,
    denied_hosts: Vec<HostPattern>,
    trusted_hosts: Vec<HostPattern>,
    exempt_addresses: Vec<SocketAddr>,
    max_connections: usize,
    connect_timeout: Duration,
    head_timeout: Duration,
    resolver: Arc<dyn Resolve>,
    host_addresses: HostAddresses,
    sink: Arc<dyn DecisionSink>,
    counters: EgressCounters,
}

/// A destination as requested: validated host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    host: Host,
    port: u16,
}

/// Why a request got no connection; each protocol maps it to its own reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Denial {
    /// The policy refused the destination.
    Refused(Refusal),
    /// The request was malformed or asked for something unsupported; the reason says what.
    Invalid(&'static str),
    /// The name did not resolve.
    ResolveFailed,
    /// Resolution or connection took longer than the connect timeout.
    Timeout,
    /// The destination actively refused the connection.
    ConnectionRefused,
    /// The destination could not be reached.
    Unreachable,
}

impl Denial {
    fn reason(self) -> &'static str {
        match self {
            Denial::Refused(refusal) => refusal.as_str(),
            Denial::Invalid(reason) => reason,
            Denial::ResolveFailed => "resolve-failed",
            Denial::Timeout => "timeout",
            Denial::ConnectionRefused => "connection-refused",
            Denial::Unreachable => "unreachable",
        }
    }

    fn verdict(self) -> Verdict {
        match self {
            Denial::Refused(_) | Denial::Invalid(_) => Verdict::Refused,
            _ => Verdict::Failed,
        }
    }
}

impl EgressProxy {
    /// Builds a proxy for one sandbox; fails if the policy has an unparseable host pattern.
    pub fn new(
        policy: EgressPolicy,
        resolver: Arc<dyn Resolve>,
        host_addresses: HostAddresses,
        sink: Arc<dyn DecisionSink>,
    ) -> Result<Self, EgressError> {
        let parse_all = |field: &'static str, patterns: &[String]| {
            patterns
                .iter()
                .map(|pattern| {
                    HostPattern::parse(pattern).ok_or_else(|| EgressError::InvalidPattern {
                        field,
                        pattern: pattern.clone(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let allowlist = match &policy.allowlist {
            Some(list) => Some(parse_all("allowlist", list)?),
            None => None,
        };
        let trusted_hosts = parse_all("trusted_hosts", &policy.trusted_hosts)?;
        let denied_hosts = parse_all("denied_hosts", &policy.denied_hosts)?;
        Ok(Self {
            shared: Arc::new(Shared {
                allowlist,
                denied_hosts,
                trusted_hosts,
                exempt_addresses: policy.exempt_addresses,
                max_connections: policy.max_connections,
                connect_timeout: policy.connect_timeout,
                head_timeout: policy.head_timeout,
                resolver,
                host_addresses,
                sink,
                counters: EgressCounters::new(policy.max_bytes),
            }),
        })
    }

    /// A handle on this proxy's counters that stays valid after [`serve`](Self::serve) starts.
    pub fn counters(&self) -> EgressCounters {
        self.shared.counters.clone()
    }

    /// Answers connections on `listener` until it fails or this future is dropped; dropping it
    /// (sandbox teardown) ends every connection it opened.
    pub async fn serve(self, listener: UnixListener) -> Result<(), EgressError> {
        let slots = Arc::new(Semaphore::new(self.shared.max_connections));
        let overflow = Arc::new(Semaphore::new(OVERFLOW_HANDSHAKES));
        // Owned here so that dropping this future aborts every connection task.
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(error) if is_transient_accept_error(&error) => {
                            tracing::warn!(%error, "egress proxy: accept failed; retrying shortly");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                        Err(error) => return Err(EgressError::Accept(error)),
                    };
                    let admission = match slots.clone().try_acquire_owned() {
                        Ok(permit) => Admission { _permit: permit, at_capacity: false },
                        Err(_) => match overflow.clone().try_acquire_owned() {
                            Ok(permit) => Admission { _permit: permit, at_capacity: true },
                            Err(_) => {
                                let denial = Denial::Refused(Refusal::ConnectionLimit);
                                self.shared.deny(Protocol::Unknown, None, denial);
                                continue;
                            }
                        },
                    };
                    tasks.spawn(self.shared.clone().handle(stream, admission));
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }
}

/// Accept errors that say the gateway is short of resources right now, not that the socket broke.
fn is_transient_accept_error(error: &std::io::Error) -> bool {
    use rustix::io::Errno;
    if error.kind() == std::io::ErrorKind::ConnectionAborted
        || error.kind() == std::io::ErrorKind::Interrupted
    {
        return true;
    }
    error.raw_os_error().is_some_and(|code| {
        [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
            .iter()
            .any(|errno| errno.raw_os_error() == code)
    })
}

/// A connection's place under the connection limit, held for the connection's lifetime.
struct Admission {
    /// A connection slot, or one of the few overflow handshakes when all slots are taken.
    _permit: OwnedSemaphorePermit,
    /// Over the limit: the connection may only handshake and be told `connection-limit`.
    at_capacity: bool,
}

impl Shared {
    /// Serves one client connection from first byte to close.
    async fn handle(self: Arc<Self>, mut stream: UnixStream, admission: Admission) {
        let _active = ActiveGuard::new(&self.counters);
        let at_capacity = admission.at_capacity;
        let deadline = Instant::now() + self.head_timeout;
        let mut first = [0u8; 1];
        match timeout_at(deadline, stream.read_exact(&mut first)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                self.record(
                    Protocol::Unknown,
                    None,
                    None,
                    Verdict::Refused,
                    "bad-request",
                );
                return;
            }
            Err(_) => {
                self.record(
                    Protocol::Unknown,
                    None,
                    None,
                    Verdict::Refused,
                    "head-timeout",
                );
                return;
            }
        }
        if first[0] == socks::VERSION {
            socks::serve(&self, stream, deadline, at_capacity).await;
        } else {
            http::serve(&self, stream, first[0], deadline, at_capacity).await;
        }
        drop(admission);
    }

    /// Records a decision: counters, a debug log line (destination only) and the sink.
    fn record(
        &self,
        protocol: Protocol,
        target: Option<&Target>,
        address: Option<IpAddr>,
        verdict: Verdict,
        reason: &'static str,
    ) {
        self.counters.count(verdict);
        let (host, port) = match target {
            Some(target) => (target.host.to_string(), target.port),
            None => (String::new(), 0),
        };
        tracing::debug!(
            protocol = protocol.as_str(),
            %host,
            port,
            address = ?address,
            verdict = ?verdict,
            reason,
            "egress decision"
        );
        self.sink.record(Decision {
            host,
            port,
            address,
            verdict,
            reason,
            protocol,
        });
    }

    /// Records a denial of a request that did not get as far as an address.
    fn deny(&self, protocol: Protocol, target: Option<&Target>, denial: Denial) {
        self.record(protocol, target, None, denial.verdict(), denial.reason());
    }

    /// Decides `target` and connects to the first allowed address; records the decision either way.
    async fn open(
        &self,
        protocol: Protocol,
        target: &Target,
        at_capacity: bool,
    ) -> Result<TcpStream, Denial> {
        match self.open_unrecorded(target, at_capacity).await {
            Ok((stream, address, reason)) => {
                self.record(
                    protocol,
                    Some(target),
                    Some(address),
                    Verdict::Allowed,
                    reason,
                );
                Ok(stream)
            }
            Err((denial, address)) => {
                self.record(
                    protocol,
                    Some(target),
                    address,
                    denial.verdict(),
                    denial.reason(),
                );
                Err(denial)
            }
        }
    }

    async fn open_unrecorded(
        &self,
        target: &Target,
        at_capacity: bool,
    ) -> Result<(TcpStream, IpAddr, &'static str), (Denial, Option<IpAddr>)> {
        if at_capacity {
            return Err((Denial::Refused(Refusal::ConnectionLimit), None));
        }
        if self.counters.exhausted() {
            return Err((Denial::Refused(Refusal::ByteLimit), None));
        }
        if self
            .denied_hosts
            .iter()
            .any(|pattern| pattern.matches(&target.host))
        {
            return Err((Denial::Refused(Refusal::DeniedHost), None));
        }
        if let Some(allowlist) = &self.allowlist
            && !allowlist
                .iter()
                .any(|pattern| pattern.matches(&target.host))
        {
            // Not resolved at all: a refused name leaks nothing through the gateway's DNS.
            return Err((Denial::Refused(Refusal::NotAllowlisted), None));
        }
        let deadline = Instant::now() + self.connect_timeout;
        let candidates = match &target.host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => {
                match timeout_at(deadline, self.resolver.resolve(name, target.port)).await {
                    Err(_) => return Err((Denial::Timeout, None)),
                    Ok(Err(_)) => return Err((Denial::ResolveFailed, None)),
                    Ok(Ok(list)) if list.is_empty() => return Err((Denial::ResolveFailed, None)),
                    Ok(Ok(list)) => list,
                }
            }
        };
        let trusted = self
            .trusted_hosts
            .iter()
            .any(|pattern| pattern.matches(&target.host));

        let mut first_refusal: Option<(Refusal, IpAddr)> = None;
        let mut last_failure: Option<(Denial, IpAddr)> = None;
        for ip in candidates {
            let address = SocketAddr::new(ip, target.port);
            let reason = if self.exempt_addresses.contains(&address) {
                "exempt"
            } else {
                match check_address(ip, trusted, &self.host_addresses) {
                    Ok(Acceptance::Public) => "public",
                    Ok(Acceptance::Trusted) => "trusted",
                    Err(refusal) => {
                        first_refusal.get_or_insert((refusal, ip));
                        continue;
                    }
                }
            };
            // Connect to exactly the address just checked: no second resolution.
            match timeout_at(deadline, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => {
                    // Interactive protocols (TLS handshakes, JSON-RPC) suffer from Nagle delays.
                    let _ = stream.set_nodelay(true);
                    return Ok((stream, ip, reason));
                }
                Ok(Err(error)) => {
                    let denial = if error.kind() == std::io::ErrorKind::ConnectionRefused {
                        Denial::ConnectionRefused
                    } else {
                        Denial::Unreachable
                    };
                    last_failure = Some((denial, ip));
                }
                Err(_) => return Err((Denial::Timeout, Some(ip))),
            }
        }
        match (last_failure, first_refusal) {
            (Some((denial, ip)), _) => Err((denial, Some(ip))),
            (None, Some((refusal, ip))) => Err((Denial::Refused(refusal), Some(ip))),
            (None, None) => Err((Denial::ResolveFailed, None)),
        }
    }
}
