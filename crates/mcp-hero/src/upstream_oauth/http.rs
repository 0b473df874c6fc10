//! HTTP to authorization servers and protected resources, behind the same SSRF guard as remote
//! MCP servers: no loopback, private, link-local or otherwise non-public address unless an admin
//! marked the server internal, checked on the address actually connected to; redirects are never
//! followed; answers are read up to a fixed size.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, Response, StatusCode, Url, header};

use super::UpstreamOAuthError;

/// Largest metadata or token answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The two clients: one behind the guard, one for servers an admin marked internal.
#[derive(Debug, Clone)]
pub(super) struct OAuthHttp {
    public: reqwest::Client,
    internal: reqwest::Client,
}

impl OAuthHttp {
    pub(super) fn new() -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(30))
                .user_agent(concat!("mcp-hero/", env!("CARGO_PKG_VERSION")))
        };
        Ok(OAuthHttp {
            public: builder().dns_resolver(PublicOnlyResolver).build()?,
            internal: builder().build()?,
        })
    }

    /// A request to `url`, refused before it is sent when the URL's scheme or literal address
    /// breaks the rules for this server.
    pub(super) fn request(
        &self,
        method: Method,
        url: &Url,
        internal: bool,
    ) -> Result<reqwest::RequestBuilder, UpstreamOAuthError> {
        check_url(url, internal)?;
        let client = if internal {
            &self.internal
        } else {
            &self.public
        };
        Ok(client.request(method, url.clone()))
    }
}

/// Only `https`, or `http` for an internal server; a literal address must pass the guard too,
/// since it never goes through the resolver.
pub(super) fn check_url(url: &Url, internal: bool) -> Result<(), UpstreamOAuthError> {
    match url.scheme() {
        "https" => {}
        "http" if internal => {}
        scheme => {
            return Err(UpstreamOAuthError::Discovery(format!(
                "{} uses {scheme}://; only https:// is allowed (http:// only for a server an admin marked internal)",
                without_query(url)
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UpstreamOAuthError::Discovery(format!(
            "{} carries credentials in the URL",
            without_query(url)
        )));
    }
    if internal {
        return Ok(());
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => {
            return Err(UpstreamOAuthError::Discovery(format!(
                "{} has no host",
                without_query(url)
            )));
        }
    };
    if let Some(ip) = literal {
        ::mcp::upstream::check_destination(ip).map_err(UpstreamOAuthError::Ssrf)?;
    }
    Ok(())
}

/// A URL as it may appear in messages and logs: no query (codes, states), no fragment.
pub(super) fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

/// Sends a request; transport errors are reported without the URL's query.
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<Response, UpstreamOAuthError> {
    request
        .send()
        .await
        .map_err(|error| UpstreamOAuthError::Http(format!("{what}: {}", error.without_url())))
}

/// Reads an answer's body up to [`MAX_ANSWER_BYTES`].
pub(super) async fn read_bounded(
    mut response: Response,
    what: &str,
) -> Result<Vec<u8>, UpstreamOAuthError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| UpstreamOAuthError::Http(format!("{what}: {}", error.without_url())))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(UpstreamOAuthError::Http(format!(
                "{what}: the answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Fetches a JSON document; `Ok(None)` for 404 (a well-known location that is not there).
pub(super) async fn get_json(
    http: &OAuthHttp,
    url: &Url,
    internal: bool,
    what: &str,
) -> Result<Option<serde_json::Value>, UpstreamOAuthError> {
    let request = http
        .request(Method::GET, url, internal)?
        .header(header::ACCEPT, "application/json");
    let response = send(request, what).await?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(UpstreamOAuthError::Discovery(format!(
            "{what} at {} answered HTTP {status}",
            without_query(url)
        )));
    }
    let body = read_bounded(response, what).await?;
    serde_json::from_slice(&body).map(Some).map_err(|_| {
        UpstreamOAuthError::Discovery(format!("{what} at {} is not JSON", without_query(url)))
    })
}

/// Resolves names and keeps only public addresses, like the remote upstream client does.
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
                .filter(|addr| match ::mcp::upstream::check_destination(addr.ip()) {
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
