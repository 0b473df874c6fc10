//! Finding a remote server's authorization server, as the MCP authorization spec (2025-11-25)
//! says: the server's `401` names its protected resource metadata (RFC 9728), else the
//! well-known location with path insertion; the metadata names the authorization server, whose
//! own metadata comes from RFC 8414 (path insertion), falling back to OpenID Connect discovery.
//!
//! Every document is checked before use: the resource must be the server's URL, the issuer must
//! be the one asked for, PKCE `S256` must be supported, and every endpoint must pass the same
//! URL rules as the server itself.

use reqwest::{Method, StatusCode, Url, header};
use serde_json::Value;

use super::UpstreamOAuthError;
use super::http::{OAuthHttp, check_url, get_json, send, without_query};

/// What discovery learned about one server's authorization server.
#[derive(Debug, Clone)]
pub(super) struct Discovered {
    pub(super) issuer: String,
    pub(super) authorization_endpoint: Url,
    pub(super) token_endpoint: Url,
    pub(super) revocation_endpoint: Option<Url>,
    pub(super) registration_endpoint: Option<Url>,
    pub(super) iss_parameter_supported: bool,
    pub(super) client_id_metadata_document_supported: bool,
    /// Scopes the resource asked for in its challenge, else those its metadata lists.
    pub(super) suggested_scopes: Vec<String>,
}

/// Runs discovery for the server at `resource`.
pub(super) async fn discover(
    http: &OAuthHttp,
    resource: &Url,
    internal: bool,
) -> Result<Discovered, UpstreamOAuthError> {
    let challenge = probe(http, resource, internal).await?;
    let (metadata, metadata_url) = match &challenge.resource_metadata {
        Some(url) => {
            let url = Url::parse(url).map_err(|_| {
                UpstreamOAuthError::Discovery(
                    "the server's WWW-Authenticate names a resource_metadata that is not a URL"
                        .to_owned(),
                )
            })?;
            let document = get_json(http, &url, internal, "protected resource metadata")
                .await?
                .ok_or_else(|| {
                    UpstreamOAuthError::Discovery(format!(
                        "the protected resource metadata the server names ({}) is not there",
                        without_query(&url)
                    ))
                })?;
            (document, url)
        }
        None => {
            let mut found = None;
            for url in well_known(resource, "oauth-protected-resource")? {
                if let Some(document) =
                    get_json(http, &url, internal, "protected resource metadata").await?
                {
                    found = Some((document, url));
                    break;
                }
            }
            found.ok_or_else(|| {
                UpstreamOAuthError::Discovery(format!(
                    "{} publishes no protected resource metadata (RFC 9728): it answered without a \
                     resource_metadata challenge and /.well-known/oauth-protected-resource is missing",
                    without_query(resource)
                ))
            })?
        }
    };
    let stated = metadata.get("resource").and_then(Value::as_str);
    if stated.map(|s| s.trim_end_matches('/')) != Some(resource.as_str().trim_end_matches('/')) {
        return Err(UpstreamOAuthError::Discovery(format!(
            "the protected resource metadata at {} is for {:?}, not for this server's URL {}",
            without_query(&metadata_url),
            stated.unwrap_or("(no resource)"),
            without_query(resource)
        )));
    }
    let issuer = metadata
        .get("authorization_servers")
        .and_then(Value::as_array)
        .and_then(|servers| servers.first())
        .and_then(Value::as_str)
        .ok_or_else(|| {
            UpstreamOAuthError::Discovery(format!(
                "the protected resource metadata at {} names no authorization server",
                without_query(&metadata_url)
            ))
        })?
        .to_owned();
    let suggested_scopes = if challenge.scopes.is_empty() {
        string_list(&metadata, "scopes_supported")
    } else {
        challenge.scopes
    };
    authorization_server(http, &issuer, internal, suggested_scopes).await
}

/// What the unauthenticated probe's challenge said.
struct Challenge {
    resource_metadata: Option<String>,
    scopes: Vec<String>,
}

/// Calls the server without a token; a `401` with a Bearer challenge may name the metadata.
async fn probe(
    http: &OAuthHttp,
    resource: &Url,
    internal: bool,
) -> Result<Challenge, UpstreamOAuthError> {
    let request = http
        .request(Method::GET, resource, internal)?
        .header(header::ACCEPT, "text/event-stream, application/json");
    let response = send(request, "probing the server").await?;
    let mut challenge = Challenge {
        resource_metadata: None,
        scopes: Vec::new(),
    };
    if response.status() == StatusCode::UNAUTHORIZED {
        for value in response.headers().get_all(header::WWW_AUTHENTICATE) {
            let Ok(text) = value.to_str() else { continue };
            let params = bearer_params(text);
            if let Some(url) = param(&params, "resource_metadata") {
                challenge.resource_metadata = Some(url.to_owned());
            }
            if let Some(scope) = param(&params, "scope") {
                challenge.scopes = scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
        }
    }
    Ok(challenge)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// The parameters of the `Bearer` challenge in a `WWW-Authenticate` value (RFC 9110 §11.6.1):
/// `Bearer key="quoted \" value", key=token`. Other schemes' parameters are skipped.
pub(super) fn bearer_params(header_value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = header_value.trim();
    let mut in_bearer = false;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', ',']);
        let name_end = rest.find(['=', ' ', ',']).unwrap_or(rest.len());
        let name = &rest[..name_end];
        let after = rest[name_end..].trim_start_matches(' ');
        if let Some(after_eq) = after.strip_prefix('=') {
            let after_eq = after_eq.trim_start_matches(' ');
            let (value, remaining) = if let Some(quoted) = after_eq.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((index, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = index + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end.min(quoted.len())..])
            } else {
                let end = after_eq.find([',', ' ']).unwrap_or(after_eq.len());
                (after_eq[..end].to_owned(), &after_eq[end..])
            };
            if in_bearer && !name.is_empty() {
                params.push((name.to_owned(), value));
            }
            rest = remaining;
        } else {
            // A bare word starts a new challenge (its scheme).
            in_bearer = name.eq_ignore_ascii_case("bearer");
            if name.is_empty() {
                break;
            }
            rest = after;
        }
    }
    params
}

/// The well-known URLs to try for `suffix`, with path insertion first (RFC 9728 §3.1,
/// RFC 8414 §3.1), then at the root.
pub(super) fn well_known(base: &Url, suffix: &str) -> Result<Vec<Url>, UpstreamOAuthError> {
    let path = base.path().trim_end_matches('/');
    let mut candidates = Vec::new();
    let mut at = |path: String| -> Result<(), UpstreamOAuthError> {
        let mut url = base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.set_path(&path);
        if !candidates.contains(&url) {
            candidates.push(url);
        }
        Ok(())
    };
    if !path.is_empty() {
        at(format!("/.well-known/{suffix}{path}"))?;
    }
    at(format!("/.well-known/{suffix}"))?;
    Ok(candidates)
}

/// Fetches and checks an authorization server's metadata.
async fn authorization_server(
    http: &OAuthHttp,
    issuer: &str,
    internal: bool,
    suggested_scopes: Vec<String>,
) -> Result<Discovered, UpstreamOAuthError> {
    let issuer_url = Url::parse(issuer).map_err(|_| {
        UpstreamOAuthError::Discovery(format!("the authorization server {issuer:?} is not a URL"))
    })?;
    if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
        return Err(UpstreamOAuthError::Discovery(format!(
            "the issuer {} has a query or fragment (RFC 8414 §2)",
            without_query(&issuer_url)
        )));
    }
    check_url(&issuer_url, internal)?;
    let path = issuer_url.path().trim_end_matches('/');
    let mut candidates = Vec::new();
    let with_path = |p: String| {
        let mut url = issuer_url.clone();
        url.set_path(&p);
        url
    };
    if path.is_empty() {
        candidates.push(with_path(
            "/.well-known/oauth-authorization-server".to_owned(),
        ));
        candidates.push(with_path("/.well-known/openid-configuration".to_owned()));
    } else {
        candidates.push(with_path(format!(
            "/.well-known/oauth-authorization-server{path}"
        )));
        candidates.push(with_path(format!(
            "/.well-known/openid-configuration{path}"
        )));
        candidates.push(with_path(format!(
            "{path}/.well-known/openid-configuration"
        )));
    }
    let mut metadata = None;
    for url in &candidates {
        if let Some(document) =
            get_json(http, url, internal, "authorization server metadata").await?
        {
            metadata = Some(document);
            break;
        }
    }
    let metadata = metadata.ok_or_else(|| {
        UpstreamOAuthError::Discovery(format!(
            "the authorization server {issuer} publishes no metadata (RFC 8414 or OpenID Connect discovery)"
        ))
    })?;
    let stated = metadata.get("issuer").and_then(Value::as_str);
    if stated != Some(issuer) {
        return Err(UpstreamOAuthError::Discovery(format!(
            "the authorization server metadata names issuer {:?}, not {issuer:?} (RFC 8414 §3.3)",
            stated.unwrap_or("(none)")
        )));
    }
    if !string_list(&metadata, "code_challenge_methods_supported")
        .iter()
        .any(|m| m == "S256")
    {
        return Err(UpstreamOAuthError::NoPkce {
            issuer: issuer.to_owned(),
        });
    }
    let endpoint = |name: &str| -> Result<Option<Url>, UpstreamOAuthError> {
        let Some(text) = metadata.get(name).and_then(Value::as_str) else {
            return Ok(None);
        };
        let url = Url::parse(text).map_err(|_| {
            UpstreamOAuthError::Discovery(format!("the authorization server's {name} is not a URL"))
        })?;
        check_url(&url, internal)?;
        Ok(Some(url))
    };
    let required = |name: &str| -> Result<Url, UpstreamOAuthError> {
        endpoint(name)?.ok_or_else(|| {
            UpstreamOAuthError::Discovery(format!(
                "the authorization server {issuer} has no {name}"
            ))
        })
    };
    Ok(Discovered {
        issuer: issuer.to_owned(),
        authorization_endpoint: required("authorization_endpoint")?,
        token_endpoint: required("token_endpoint")?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        registration_endpoint: endpoint("registration_endpoint")?,
        iss_parameter_supported: metadata
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        client_id_metadata_document_supported: metadata
            .get("client_id_metadata_document_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        suggested_scopes,
    })
}

fn string_list(document: &Value, name: &str) -> Vec<String> {
    document
        .get(name)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
