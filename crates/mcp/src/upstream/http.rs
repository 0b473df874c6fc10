//! Streamable HTTP to a remote upstream (reqwest), with the SSRF guard: unless an admin marked
//! the server internal, no request reaches a loopback, private, link-local or otherwise
//! non-public address, checked on the IP actually connected to (a resolver filter, so DNS
//! rebinding cannot slip past a check made earlier), and redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use secrecy::{ExposeSecret, SecretString};

use super::{Shared, lock};
use crate::credentials::{CredentialTarget, Credentials, OpenedSecrets, Template};
use crate::jsonrpc::{INTERNAL_ERROR, Message, RpcError};

/// Renders a server's configured headers with their secrets; every value is marked sensitive,
/// so no trace or debug output of a request shows it (S16).
pub(super) fn render_headers(
    headers: &[(String, Template)],
    opened: &OpenedSecrets,
) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("has a bad header name {name:?}"))?;
        let rendered = value
            .render(opened)
            .map_err(|error| format!("its header {name} could not be set: {error}"))?;
        let mut header_value = HeaderValue::from_str(&rendered).map_err(|_| {
            format!(
                "its header {name} holds characters a header cannot carry (check its variables)"
            )
        })?;
        header_value.set_sensitive(true);
        map.append(header_name, header_value);
    }
    Ok(map)
}

/// Where a remote server's OAuth access tokens come from: the session member's (or the
/// organization's) tokens, refreshed by the credential store.
pub(super) struct OAuthSource {
    pub credentials: Arc<dyn Credentials>,
    pub org: String,
    pub server_id: String,
    pub member: String,
}

impl OAuthSource {
    #[expect(
        clippy::disallowed_methods,
        reason = "puts the access token in a header marked sensitive (S16)"
    )]
    async fn bearer(&self, rejected: Option<&SecretString>) -> Result<Bearer, String> {
        let target = CredentialTarget {
            org: &self.org,
            server_id: &self.server_id,
            member: &self.member,
        };
        let token = self.credentials.access_token(target, rejected).await?;
        let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose_secret()))
            .map_err(|_| "its OAuth access token is not a valid header value".to_owned())?;
        value.set_sensitive(true);
        Ok(Bearer { token, value })
    }
}

/// An access token and the header carrying it.
#[derive(Clone)]
struct Bearer {
    token: SecretString,
    value: HeaderValue,
}

/// What authenticates a link's requests: static headers and, optionally, OAuth.
pub(super) struct LinkAuth {
    pub headers: HeaderMap,
    pub oauth: Option<OAuthSource>,
}

/// The two HTTP clients upstream connections share: one behind the SSRF guard, one for servers
/// an admin marked internal.
#[derive(Debug, Clone)]
pub struct HttpClients {
    public: reqwest::Client,
    internal: reqwest::Client,
}

impl HttpClients {
    /// Builds both clients: rustls, no proxy from the environment, no redirects, 10 s to connect.
    pub fn new() -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .user_agent(concat!("mcp-hero/", env!("CARGO_PKG_VERSION")))
        };
        Ok(HttpClients {
            public: builder().dns_resolver(PublicOnlyResolver).build()?,
            internal: builder().build()?,
        })
    }
}

/// A destination the SSRF guard refuses.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0} is a {1} address; only an admin can allow it, by marking the server internal")]
pub struct SsrfError(pub IpAddr, pub &'static str);

/// Refuses addresses that reach the gateway's host or private networks.
pub fn check_destination(ip: IpAddr) -> Result<(), SsrfError> {
    let refuse = |kind| Err(SsrfError(ip, kind));
    match ip {
        IpAddr::V4(v4) => check_v4(v4).map_or(Ok(()), &refuse),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return check_v4(v4).map_or(Ok(()), &refuse);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                refuse("loopback")
            } else if v6.is_unspecified() {
                refuse("unspecified")
            } else if v6.is_multicast() {
                refuse("multicast")
            } else if first & 0xffc0 == 0xfe80 {
                refuse("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                refuse("private (unique local)")
            } else if first == 0x0064 && v6.segments()[1] == 0xff9b {
                // NAT64 embeds an IPv4 address that could be private.
                let [.., a, b] = v6.segments();
                let v4 = Ipv4Addr::from((u32::from(a) << 16) | u32::from(b));
                check_v4(v4).map_or(Ok(()), refuse)
            } else {
                Ok(())
            }
        }
    }
}

fn check_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("broadcast or multicast")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if a == 198 && (18..20).contains(&b) {
        Some("benchmarking")
    } else if a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

/// Resolves names and keeps only public addresses.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let public: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match check_destination(addr.ip()) {
                    Ok(()) => true,
                    Err(error) => {
                        refused = Some(error);
                        false
                    }
                })
                .collect();
            match (public.is_empty(), refused) {
                (true, Some(error)) => Err(format!("{host} resolves to {error}").into()),
                (true, None) => Err(format!("{host} has no address").into()),
                (false, _) => Ok(Box::new(public.into_iter()) as Addrs),
            }
        })
    }
}

/// One remote upstream session: its URL, session id and negotiated version.
pub(super) struct HttpLink {
    url: reqwest::Url,
    client: reqwest::Client,
    headers: HeaderMap,
    oauth: Option<OAuthSource>,
    /// The last access token, reused until the server answers 401.
    bearer: Mutex<Option<Bearer>>,
    session_id: Mutex<Option<HeaderValue>>,
    protocol_version: Mutex<Option<HeaderValue>>,
    shared: Arc<Shared>,
    max_message_bytes: usize,
}

impl HttpLink {
    /// Checks the URL (and, unless `internal`, a literal IP in it) and prepares the link.
    pub(super) fn new(
        url: &str,
        internal: bool,
        auth: LinkAuth,
        clients: &super::HttpClients,
        shared: Arc<Shared>,
        max_message_bytes: usize,
    ) -> Result<Arc<Self>, String> {
        let url = reqwest::Url::parse(url).map_err(|error| format!("has a bad URL: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("has a URL that is not http or https".into());
        }
        if !internal {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                Some(url::Host::Domain(_)) => None,
                None => return Err("has a URL without a host".into()),
            };
            if let Some(ip) = literal {
                check_destination(ip).map_err(|error| error.to_string())?;
            }
        }
        let client = if internal {
            clients.internal.clone()
        } else {
            clients.public.clone()
        };
        let link = Arc::new(HttpLink {
            url,
            client,
            headers: auth.headers,
            oauth: auth.oauth,
            bearer: Mutex::new(None),
            session_id: Mutex::new(None),
            protocol_version: Mutex::new(None),
            shared,
            max_message_bytes,
        });
        // End the remote session when the connection ends.
        let ending = link.clone();
        tokio::spawn(async move {
            ending.shared.cancel.cancelled().await;
            let session = lock(&ending.session_id).clone();
            if let Some(session) = session
                && let Ok(request) = ending
                    .authorized(ending.client.delete(ending.url.clone()), false)
                    .await
            {
                let _ = request
                    .header("mcp-session-id", session)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
            }
            ending.shared.gone.cancel();
        });
        Ok(link)
    }

    /// Remembers the version the upstream chose, sent on every later request.
    pub(super) fn set_protocol_version(&self, version: &str) {
        *lock(&self.protocol_version) = HeaderValue::from_str(version).ok();
    }

    /// Adds the server's headers and, with OAuth, a bearer token (a fresh one after a 401).
    async fn authorized(
        &self,
        request: reqwest::RequestBuilder,
        refresh: bool,
    ) -> Result<reqwest::RequestBuilder, String> {
        let mut request = request.headers(self.headers.clone());
        if let Some(oauth) = &self.oauth {
            let cached = lock(&self.bearer).clone();
            let bearer = match (cached, refresh) {
                (Some(bearer), false) => bearer,
                (cached, _) => {
                    let rejected = cached.filter(|_| refresh).map(|bearer| bearer.token);
                    let bearer = oauth.bearer(rejected.as_ref()).await?;
                    *lock(&self.bearer) = Some(bearer.clone());
                    bearer
                }
            };
            request = request.header(header::AUTHORIZATION, bearer.value);
        }
        Ok(request)
    }

    fn with_session(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut request = request;
        if let Some(session) = lock(&self.session_id).clone() {
            request = request.header("mcp-session-id", session);
        }
        if let Some(version) = lock(&self.protocol_version).clone() {
            request = request.header("mcp-protocol-version", version);
        }
        request
    }

    /// Sends one message in its own POST; what comes back is delivered to the connection.
    pub(super) fn post(self: &Arc<Self>, message: Message, request_id: Option<u64>) {
        let link = self.clone();
        tokio::spawn(async move {
            let body = message.to_json();
            let outcome = tokio::select! {
                outcome = link.post_once(&body, request_id) => outcome,
                () = link.shared.cancel.cancelled() => return,
            };
            if let Err(reason) = outcome {
                match request_id {
                    // One failed exchange fails its request; the connection goes on.
                    Some(id) => link.shared.deliver(
                        Message::error(id.into(), &RpcError::new(INTERNAL_ERROR, reason)),
                        None,
                    ),
                    None => tracing::debug!(%reason, "upstream notification not delivered"),
                }
            }
        });
    }

    /// POSTs `body`; with OAuth, a 401 gets one retry with a refreshed token.
    async fn post_once(&self, body: &str, request_id: Option<u64>) -> Result<(), String> {
        let mut refresh = false;
        loop {
            let request = self
                .authorized(
                    self.with_session(self.client.post(self.url.clone())),
                    refresh,
                )
                .await
                .map_err(|error| format!("could not be authorized: {error}"))?
                .header(header::ACCEPT, "application/json, text/event-stream")
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_owned());
            let response = send(request).await?;
            if response.status() == StatusCode::UNAUTHORIZED && self.oauth.is_some() && !refresh {
                refresh = true;
                continue;
            }
            return self.exchange(response, request_id).await;
        }
    }

    async fn exchange(
        &self,
        response: reqwest::Response,
        request_id: Option<u64>,
    ) -> Result<(), String> {
        if let Some(session) = response.headers().get("mcp-session-id") {
            let mut current = lock(&self.session_id);
            if current.is_none() {
                *current = Some(session.clone());
            }
        }
        let status = response.status();
        if status == StatusCode::NOT_FOUND && lock(&self.session_id).is_some() {
            self.shared.close("its remote session ended (HTTP 404)");
            return Ok(());
        }
        if status == StatusCode::ACCEPTED {
            return Ok(());
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(format!(
                "answered HTTP {status}: check the server's credentials (its headers' variables, \
                 or its OAuth connection)"
            ));
        }
        if !status.is_success() {
            return Err(format!("answered HTTP {status}"));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            self.read_events(response, request_id).await;
            Ok(())
        } else if content_type.starts_with("application/json") {
            let body = self.read_limited(response).await?;
            match Message::parse(&body) {
                Ok(message) => self.shared.deliver(message, request_id),
                Err(_) => self
                    .shared
                    .close("answered with a body that is not a JSON-RPC message"),
            }
            Ok(())
        } else {
            Err(format!(
                "answered with content type {content_type:?}, neither JSON nor SSE"
            ))
        }
    }

    async fn read_limited(&self, response: reqwest::Response) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|error| {
                format!("answer broke off: {}", error_chain(&error.without_url()))
            })?;
            if body.len() + chunk.len() > self.max_message_bytes {
                self.shared.close(format!(
                    "sent a message over the {}-byte limit",
                    self.max_message_bytes
                ));
                return Err("sent a message over the size limit".into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn read_events(&self, response: reqwest::Response, via: Option<u64>) {
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let Ok(event) = event else {
                return;
            };
            if event.data.is_empty() {
                continue;
            }
            if event.data.len() > self.max_message_bytes {
                self.shared.close(format!(
                    "sent a message over the {}-byte limit",
                    self.max_message_bytes
                ));
                return;
            }
            match Message::parse(event.data.as_bytes()) {
                Ok(message) => self.shared.deliver(message, via),
                Err(_) => {
                    self.shared
                        .close("sent an event that is not a JSON-RPC message");
                    return;
                }
            }
        }
    }

    /// Opens the standalone GET stream for the upstream's own requests and notifications; an
    /// upstream that does not offer one (405) is fine.
    pub(super) fn open_listen_stream(self: &Arc<Self>) {
        let link = self.clone();
        tokio::spawn(async move {
            let listen = async {
                let Ok(request) = link
                    .authorized(link.with_session(link.client.get(link.url.clone())), false)
                    .await
                else {
                    return;
                };
                let request = request.header(header::ACCEPT, "text/event-stream");
                let Ok(response) = request.send().await else {
                    return;
                };
                let is_events = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .is_some_and(|value| value.starts_with("text/event-stream"));
                if response.status().is_success() && is_events {
                    link.read_events(response, None).await;
                }
            };
            tokio::select! {
                () = listen => {}
                () = link.shared.cancel.cancelled() => {}
            }
        });
    }
}

/// Sends a request; the URL is left out of the reason, since its query may hold a credential
/// (S16).
async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
    request.send().await.map_err(|error| {
        format!(
            "could not be reached: {}",
            error_chain(&error.without_url())
        )
    })
}

/// An error and its causes in one line (reqwest hides the useful part in the source chain).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrf_guard_refuses_private_destinations() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(check_destination(ip).is_err(), "{refused} must be refused");
        }
        for allowed in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = allowed.parse().unwrap();
            assert!(check_destination(ip).is_ok(), "{allowed} must be allowed");
        }
    }
}
