//! The gateway as the OAuth client of remote MCP servers (S9, S14, S15, S16): discovery, client
//! identity, PKCE authorization with a callback on the gateway, and tokens the data plane asks
//! for, refreshed before they expire and after a `401`.
//!
//! Main type: [`UpstreamOAuth`] (cheap to clone; one per gateway, in `AppState`). The control
//! plane calls [`UpstreamOAuth::start_authorization`] (the API's authorize URL) and
//! [`UpstreamOAuth::complete_authorization`] (the browser's callback); the data plane calls
//! [`UpstreamOAuth::access_token`] before connecting and
//! [`UpstreamOAuth::refresh_after_unauthorized`] when the server answered `401` to a token.
//!
//! Security decisions made here:
//! - Client identity, in order: the admin's client, a client ID metadata document (the gateway's
//!   own URL, when the authorization server supports them and the gateway's public URL is
//!   https), dynamic registration (RFC 7591).
//! - PKCE `S256` always (servers without it are refused); `resource` (RFC 8707) is the server's
//!   URL on every authorization and token request; `state` is 256 random bits, stored only as
//!   its SHA-256, bound to organization, server and member, single use, ten minutes.
//! - The callback's `iss` (RFC 9207) must equal the expected issuer when present, and must be
//!   present when the authorization server promised it. A failed callback stores nothing.
//! - A refresh token the authorization server refuses (`invalid_grant`) deletes the connection.
//! - Tokens, codes, verifiers and states never reach an error message or a log line; URLs in
//!   messages lose their query.
//!
//! Deliberately left out: token introspection, DPoP, and `private_key_jwt` client
//! authentication. Concurrent refreshes collapse within one gateway; two replicas refreshing the
//! same rotating refresh token at once may make one of them ask the member to reconnect.

mod discovery;
mod http;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use auth::{ManageServers, authorize};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, Url, header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use store::{
    AuthorizationServer, NewPendingAuthorization, NewUpstreamTokens, OAuthClient, OAuthMode,
    OrgScope, Principal, ServerId, ServerTransport, Store, StoreError, UpstreamAccount, UserId,
};

use self::http::{OAuthHttp, read_bounded, send, without_query};

/// The path, under the gateway's public URL, where authorization servers send the browser back.
pub const CALLBACK_PATH: &str = "/oauth/upstream/callback";
/// The path, under the gateway's public URL, of its client ID metadata document.
pub const CLIENT_METADATA_PATH: &str = "/oauth/client-metadata.json";
/// A token that expires within this many seconds is refreshed before use.
pub const REFRESH_MARGIN_SECS: i64 = 60;
/// The configuration key naming the gateway's public URL (environment, then config file).
pub const PUBLIC_URL_KEY: &str = "MCP_HERO_PUBLIC_URL (or public_url in the config file)";

/// Why an upstream OAuth step failed; phrased for the member or admin who must act, never
/// holding a token, code, verifier, state or a URL's query.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamOAuthError {
    /// The server is not behind OAuth.
    #[error(
        "server {0} does not use OAuth; an admin enables it with PUT /api/v1/servers/{0}/oauth"
    )]
    NotEnabled(ServerId),
    /// OAuth applies only to remote servers.
    #[error("server {0} is not a remote (streamable_http) server")]
    NotRemote(ServerId),
    /// Nobody connected the account this caller would use.
    #[error(
        "no account is connected to server {server_id} for {whom}; connect one: POST /api/v1/servers/{server_id}/oauth/authorize"
    )]
    NotConnected {
        /// The server.
        server_id: ServerId,
        /// "you" or "the organization".
        whom: &'static str,
    },
    /// The refresh token was refused; the connection is gone and must be made again.
    #[error(
        "the authorization server refused to renew the connection to server {server_id} ({reason}); it was removed: connect again with POST /api/v1/servers/{server_id}/oauth/authorize"
    )]
    Reconnect {
        /// The server.
        server_id: ServerId,
        /// The OAuth error code.
        reason: String,
    },
    /// The gateway's public URL is needed but not configured.
    #[error(
        "the gateway's public URL is not configured: set {PUBLIC_URL_KEY} to the address browsers reach this gateway at (such as https://mcp.example.com), so the authorization server can send them back"
    )]
    PublicUrlMissing,
    /// The caller's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Discovery or a metadata document failed a check.
    #[error("OAuth discovery failed: {0}")]
    Discovery(String),
    /// The authorization server does not support PKCE S256.
    #[error(
        "the authorization server {issuer} does not support PKCE with S256 (code_challenge_methods_supported); MCP Hero refuses to authorize without it"
    )]
    NoPkce {
        /// Its issuer.
        issuer: String,
    },
    /// No way to get a client identity.
    #[error("client registration failed: {0}")]
    Registration(String),
    /// The member or the authorization server declined.
    #[error(
        "the authorization server did not grant access ({code}{description}); nothing was stored"
    )]
    Denied {
        /// The OAuth error code (`access_denied`, ...).
        code: String,
        /// `: ` and the server's description, shortened and stripped of control characters.
        description: String,
    },
    /// The callback's `state` is unknown, used or expired.
    #[error(
        "this authorization link is unknown, already used or expired (state); start again from POST /api/v1/servers/{{server_id}}/oauth/authorize"
    )]
    BadState,
    /// The callback came from another issuer than the one the authorization was sent to.
    #[error(
        "the authorization response names issuer {got:?}, but the request went to {expected:?} (RFC 9207): possibly a mix-up attack; nothing was stored"
    )]
    WrongIssuer {
        /// The issuer the authorization was sent to.
        expected: String,
        /// The `iss` the response carried.
        got: String,
    },
    /// The callback lacks `iss` although the authorization server promised it.
    #[error(
        "the authorization response has no iss parameter although {expected:?} promises one (RFC 9207); nothing was stored"
    )]
    MissingIssuer {
        /// The expected issuer.
        expected: String,
    },
    /// The callback is malformed.
    #[error("the authorization response is malformed: {0}; nothing was stored")]
    BadCallback(&'static str),
    /// The token endpoint refused or answered badly.
    #[error("the token endpoint refused: {0}")]
    TokenEndpoint(String),
    /// A transport failure talking to the authorization server or the resource.
    #[error("cannot reach the authorization server: {0}")]
    Http(String),
    /// The SSRF guard refused an address.
    #[error(transparent)]
    Ssrf(::mcp::upstream::SsrfError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a finished authorization connected, for the callback page.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The server's name.
    pub server_name: String,
}

/// The query of the authorization server's redirect to the callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state the gateway sent.
    pub state: Option<String>,
    /// The issuer (RFC 9207).
    pub iss: Option<String>,
    /// An OAuth error code, when the authorization failed.
    pub error: Option<String>,
    /// Its description.
    pub error_description: Option<String>,
}

impl std::fmt::Debug for UpstreamOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamOAuth")
            .field("public_url", &self.inner.public_url)
            .finish_non_exhaustive()
    }
}

/// The gateway's OAuth client for remote servers; clone it freely.
#[derive(Clone)]
pub struct UpstreamOAuth {
    inner: Arc<Inner>,
}

/// Organization, server and member (empty for the organization's connection).
type ConnectionKey = (String, String, String);

struct Inner {
    store: Store,
    public_url: Option<Url>,
    http: Result<OAuthHttp, String>,
    random: SystemRandom,
    /// One lock per connection being refreshed, so concurrent refreshes become one. The map's
    /// own lock is never held across an await.
    refreshing: Mutex<HashMap<ConnectionKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// Tokens as the token endpoint answered.
struct TokenAnswer {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    expires_in: Option<i64>,
    scope: Option<String>,
}

impl UpstreamOAuth {
    /// Builds the client. `public_url` is the gateway's external base URL; without it, no
    /// authorization can start (the error names the setting).
    pub fn new(store: Store, public_url: Option<Url>) -> Self {
        UpstreamOAuth {
            inner: Arc::new(Inner {
                store,
                public_url,
                http: OAuthHttp::new().map_err(|error| error.to_string()),
                random: SystemRandom::new(),
                refreshing: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn http(&self) -> Result<&OAuthHttp, UpstreamOAuthError> {
        self.inner
            .http
            .as_ref()
            .map_err(|reason| UpstreamOAuthError::Http(format!("no HTTP client: {reason}")))
    }

    fn public_path(&self, path: &str) -> Result<Url, UpstreamOAuthError> {
        let base = self
            .inner
            .public_url
            .as_ref()
            .ok_or(UpstreamOAuthError::PublicUrlMissing)?;
        let joined = format!("{}{path}", base.as_str().trim_end_matches('/'));
        Url::parse(&joined).map_err(|_| UpstreamOAuthError::PublicUrlMissing)
    }

    /// The gateway's client ID metadata document, served at [`CLIENT_METADATA_PATH`]; `None`
    /// without a public URL.
    pub fn client_metadata_document(&self) -> Option<Value> {
        let client_id = self.public_path(CLIENT_METADATA_PATH).ok()?;
        let redirect = self.public_path(CALLBACK_PATH).ok()?;
        Some(serde_json::json!({
            "client_id": client_id.as_str(),
            "client_name": "MCP Hero gateway",
            "client_uri": self.inner.public_url.as_ref().map(Url::as_str),
            "redirect_uris": [redirect.as_str()],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }))
    }

    /// Whether a server uses OAuth, and whose credentials: the session plan marks such servers.
    pub async fn mode(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
    ) -> Result<Option<OAuthMode>, UpstreamOAuthError> {
        Ok(self.inner.store.server_oauth_mode(scope, server_id).await?)
    }

    /// Starts connecting the caller's account (member mode) or the organization's (organization
    /// mode, owners and admins only): discovery, client identity, a pending authorization, and
    /// the URL to send the browser to.
    #[expect(
        clippy::disallowed_methods,
        reason = "sends the value to the authorization server or seals it (S9)"
    )]
    pub async fn start_authorization(
        &self,
        caller: &Principal,
        server_id: &ServerId,
    ) -> Result<Url, UpstreamOAuthError> {
        let store = &self.inner.store;
        let scope = &caller.scope;
        let server = store.server(scope, server_id).await?;
        let resource = resource_of(&server)?;
        let settings = store
            .server_oauth(scope, server_id)
            .await?
            .ok_or_else(|| UpstreamOAuthError::NotEnabled(server_id.clone()))?;
        if settings.mode == OAuthMode::Organization {
            authorize::<ManageServers>(caller.role).map_err(|_| {
                UpstreamOAuthError::Forbidden(
                    "this server uses one connection for the whole organization; only owners and admins connect it"
                        .to_owned(),
                )
            })?;
        }
        let redirect_uri = self.public_path(CALLBACK_PATH)?;
        let http = self.http()?;
        let found = discovery::discover(http, &resource, server.internal).await?;
        let client = self
            .client_identity(scope, server_id, &found, &redirect_uri, server.internal)
            .await?;
        store
            .record_oauth_discovery(
                scope,
                server_id,
                &AuthorizationServer {
                    issuer: found.issuer.clone(),
                    authorization_endpoint: found.authorization_endpoint.to_string(),
                    token_endpoint: found.token_endpoint.to_string(),
                    revocation_endpoint: found.revocation_endpoint.as_ref().map(Url::to_string),
                    iss_parameter_supported: found.iss_parameter_supported,
                },
                &client,
            )
            .await?;
        let verifier = SecretString::from(self.random_token()?);
        let state = self.random_token()?;
        let challenge = URL_SAFE_NO_PAD.encode(digest::digest(
            &digest::SHA256,
            verifier.expose_secret().as_bytes(),
        ));
        store
            .create_upstream_oauth_pending(
                scope,
                NewPendingAuthorization {
                    state_digest: state_digest(&state),
                    server_id: server_id.clone(),
                    started_by: caller.user_id.clone(),
                    account: UpstreamAccount::for_mode(settings.mode, &caller.user_id),
                    verifier,
                    issuer: found.issuer.clone(),
                    client_id: client.client_id.clone(),
                    redirect_uri: redirect_uri.to_string(),
                    resource: resource.to_string(),
                },
            )
            .await?;
        let scopes = if settings.scopes.is_empty() {
            found.suggested_scopes.join(" ")
        } else {
            settings.scopes.join(" ")
        };
        let mut authorize_url = found.authorization_endpoint.clone();
        {
            let mut query = authorize_url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &client.client_id)
                .append_pair("redirect_uri", redirect_uri.as_str())
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("resource", resource.as_str());
            if !scopes.is_empty() {
                query.append_pair("scope", &scopes);
            }
        }
        tracing::info!(server = %server_id, org = %scope.org_id(), issuer = %found.issuer, "upstream OAuth authorization started");
        Ok(authorize_url)
    }

    /// The client identity to use with the discovered authorization server.
    async fn client_identity(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        found: &discovery::Discovered,
        redirect_uri: &Url,
        internal: bool,
    ) -> Result<OAuthClient, UpstreamOAuthError> {
        let store = &self.inner.store;
        if let Some(admin) = store.oauth_admin_client(scope, server_id).await? {
            return Ok(OAuthClient {
                client_id: admin.client_id,
                client_secret: admin.client_secret,
                redirect_uri: redirect_uri.to_string(),
            });
        }
        let metadata_url = self.public_path(CLIENT_METADATA_PATH)?;
        if found.client_id_metadata_document_supported && metadata_url.scheme() == "https" {
            return Ok(OAuthClient {
                client_id: metadata_url.to_string(),
                client_secret: None,
                redirect_uri: redirect_uri.to_string(),
            });
        }
        // A client registered earlier with the same issuer and redirect URI is reused.
        let settings = store.server_oauth(scope, server_id).await?;
        let same_issuer = settings
            .as_ref()
            .and_then(|s| s.authorization_server.as_ref())
            .is_some_and(|s| s.issuer == found.issuer);
        if same_issuer
            && let Some(existing) = store.oauth_client(scope, server_id).await?
            && existing.redirect_uri == redirect_uri.as_str()
            && existing.client_id != metadata_url.as_str()
        {
            return Ok(existing);
        }
        let Some(registration) = &found.registration_endpoint else {
            return Err(UpstreamOAuthError::Registration(format!(
                "the authorization server {} supports neither client ID metadata documents (over https) nor dynamic registration; \
                 register a client there and give its client_id (and client_secret) in PUT /api/v1/servers/{server_id}/oauth",
                found.issuer
            )));
        };
        let body = serde_json::json!({
            "client_name": "MCP Hero gateway",
            "redirect_uris": [redirect_uri.as_str()],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        let request = self
            .http()?
            .request(Method::POST, registration, internal)?
            .header(header::ACCEPT, "application/json")
            .json(&body);
        let response = send(request, "dynamic client registration").await?;
        let status = response.status();
        let answer = read_bounded(response, "dynamic client registration").await?;
        let answer: Value = serde_json::from_slice(&answer).map_err(|_| {
            UpstreamOAuthError::Registration(format!(
                "the registration endpoint answered HTTP {status} without JSON"
            ))
        })?;
        if !status.is_success() {
            return Err(UpstreamOAuthError::Registration(format!(
                "the registration endpoint answered HTTP {status} ({})",
                oauth_error_code(&answer)
            )));
        }
        let client_id = answer
            .get("client_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                UpstreamOAuthError::Registration(
                    "the registration answer has no client_id".to_owned(),
                )
            })?;
        Ok(OAuthClient {
            client_id: client_id.to_owned(),
            client_secret: answer
                .get("client_secret")
                .and_then(Value::as_str)
                .map(SecretString::from),
            redirect_uri: redirect_uri.to_string(),
        })
    }

    /// Finishes an authorization from the browser's callback: checks the state, the error, the
    /// issuer, exchanges the code and stores the tokens. On any failure nothing is stored and
    /// the state is spent.
    #[expect(
        clippy::disallowed_methods,
        reason = "sends the value to the authorization server or seals it (S9)"
    )]
    pub async fn complete_authorization(
        &self,
        params: CallbackParams,
    ) -> Result<Connected, UpstreamOAuthError> {
        let store = &self.inner.store;
        let state = params
            .state
            .as_deref()
            .ok_or(UpstreamOAuthError::BadState)?;
        let pending = match store
            .take_upstream_oauth_pending(&state_digest(state))
            .await
        {
            Ok(pending) => pending,
            Err(StoreError::NotFound(_)) => return Err(UpstreamOAuthError::BadState),
            Err(other) => return Err(other.into()),
        };
        let scope = &pending.scope;
        if let Some(code) = &params.error {
            return Err(UpstreamOAuthError::Denied {
                code: printable(code, 64),
                description: params
                    .error_description
                    .as_deref()
                    .map(|d| format!(": {}", printable(d, 200)))
                    .unwrap_or_default(),
            });
        }
        let settings = store
            .server_oauth(scope, &pending.server_id)
            .await?
            .ok_or_else(|| UpstreamOAuthError::NotEnabled(pending.server_id.clone()))?;
        let authorization_server = settings
            .authorization_server
            .as_ref()
            .filter(|server| server.issuer == pending.issuer)
            .ok_or(UpstreamOAuthError::BadState)?;
        match &params.iss {
            Some(iss) if iss != &pending.issuer => {
                return Err(UpstreamOAuthError::WrongIssuer {
                    expected: pending.issuer.clone(),
                    got: printable(iss, 200),
                });
            }
            None if authorization_server.iss_parameter_supported => {
                return Err(UpstreamOAuthError::MissingIssuer {
                    expected: pending.issuer.clone(),
                });
            }
            _ => {}
        }
        let code = params
            .code
            .as_deref()
            .filter(|code| !code.is_empty())
            .ok_or(UpstreamOAuthError::BadCallback("no code"))?;
        let server = store.server(scope, &pending.server_id).await?;
        if resource_of(&server)?.as_str() != pending.resource {
            return Err(UpstreamOAuthError::BadCallback(
                "the server's URL changed while the authorization was under way; start again",
            ));
        }
        let client = store
            .oauth_client(scope, &pending.server_id)
            .await?
            .filter(|client| client.client_id == pending.client_id)
            .ok_or(UpstreamOAuthError::BadState)?;
        let answer = self
            .token_request(
                &authorization_server.token_endpoint,
                server.internal,
                &client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", &pending.redirect_uri),
                    ("code_verifier", pending.verifier.expose_secret()),
                    ("resource", &pending.resource),
                ],
            )
            .await?
            .map_err(|(code, _)| UpstreamOAuthError::TokenEndpoint(code))?;
        store
            .put_upstream_tokens(
                scope,
                &pending.server_id,
                &pending.account,
                new_tokens(answer, pending.resource.clone()),
            )
            .await?;
        tracing::info!(server = %pending.server_id, org = %scope.org_id(), user = %pending.started_by, "upstream OAuth account connected");
        Ok(Connected {
            server_name: server.name,
        })
    }

    /// The access token to send to a remote server for `user_id`: the organization's or the
    /// member's, per the server's mode; refreshed first when it expires within
    /// [`REFRESH_MARGIN_SECS`].
    pub async fn access_token(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        user_id: &UserId,
    ) -> Result<SecretString, UpstreamOAuthError> {
        let account = self.account(scope, server_id, user_id).await?;
        let (tokens, _) = self.stored(scope, server_id, &account).await?;
        if !expires_soon(tokens.expires_at) {
            return Ok(tokens.access_token);
        }
        self.refresh(scope, server_id, &account, |current| {
            expires_soon(current.expires_at)
        })
        .await
    }

    /// After the server answered `401` to `rejected`: a new access token. When another caller
    /// already replaced `rejected`, that replacement is returned without a second refresh.
    #[expect(
        clippy::disallowed_methods,
        reason = "sends the value to the authorization server or seals it (S9)"
    )]
    pub async fn refresh_after_unauthorized(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        user_id: &UserId,
        rejected: &SecretString,
    ) -> Result<SecretString, UpstreamOAuthError> {
        let account = self.account(scope, server_id, user_id).await?;
        self.refresh(scope, server_id, &account, |current| {
            current.access_token.expose_secret() == rejected.expose_secret()
        })
        .await
    }

    /// Disconnects the caller's account (member mode) or the organization's (organization mode,
    /// owners and admins only), revoking the token at the authorization server when it can.
    pub async fn disconnect(
        &self,
        caller: &Principal,
        server_id: &ServerId,
    ) -> Result<(), UpstreamOAuthError> {
        let store = &self.inner.store;
        let settings = store
            .server_oauth(&caller.scope, server_id)
            .await?
            .ok_or_else(|| UpstreamOAuthError::NotEnabled(server_id.clone()))?;
        if settings.mode == OAuthMode::Organization {
            authorize::<ManageServers>(caller.role).map_err(|_| {
                UpstreamOAuthError::Forbidden(
                    "only owners and admins disconnect the organization's account".to_owned(),
                )
            })?;
        }
        let account = UpstreamAccount::for_mode(settings.mode, &caller.user_id);
        let removed = store
            .delete_upstream_tokens(&caller.scope, server_id, &account)
            .await?
            .ok_or(StoreError::NotFound("connection"))?;
        self.revoke(&caller.scope, vec![removed]).await;
        Ok(())
    }

    /// Revokes, best effort, every connection to `server` ahead of deleting the server or its
    /// OAuth settings: the revocation endpoint is in the rows that deletion removes.
    pub async fn revoke_before_deleting_server(
        &self,
        scope: &OrgScope,
        server: &ServerId,
    ) -> Result<(), StoreError> {
        let connections = self
            .inner
            .store
            .server_upstream_connections(scope, server)
            .await?;
        self.revoke(scope, connections).await;
        Ok(())
    }

    /// Revokes, best effort, every connection of the organization ahead of deleting it, for the
    /// same reason as [`UpstreamOAuth::revoke_before_deleting_server`].
    pub async fn revoke_before_deleting_organization(
        &self,
        scope: &OrgScope,
    ) -> Result<(), StoreError> {
        let connections = self
            .inner
            .store
            .organization_upstream_connections(scope)
            .await?;
        self.revoke(scope, connections).await;
        Ok(())
    }

    /// Best-effort RFC 7009 revocation of connections already removed from the store, for
    /// servers whose authorization server has a revocation endpoint. Failures are logged (never
    /// the token) and otherwise ignored: the gateway has forgotten the token either way.
    pub async fn revoke(&self, scope: &OrgScope, removed: Vec<store::RemovedConnection>) {
        for connection in removed {
            if let Err(error) = self.revoke_one(scope, &connection).await {
                tracing::warn!(server = %connection.server_id, %error, "revoking an upstream OAuth token failed");
            }
        }
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "sends the value to the authorization server or seals it (S9)"
    )]
    async fn revoke_one(
        &self,
        scope: &OrgScope,
        connection: &store::RemovedConnection,
    ) -> Result<(), UpstreamOAuthError> {
        let store = &self.inner.store;
        let Some(settings) = store.server_oauth(scope, &connection.server_id).await? else {
            return Ok(());
        };
        let Some(endpoint) = settings
            .authorization_server
            .and_then(|server| server.revocation_endpoint)
        else {
            return Ok(());
        };
        let Some(client) = store.oauth_client(scope, &connection.server_id).await? else {
            return Ok(());
        };
        let internal = store.server(scope, &connection.server_id).await?.internal;
        let endpoint = Url::parse(&endpoint)
            .map_err(|_| UpstreamOAuthError::Discovery("revocation_endpoint".into()))?;
        let request = self.form_request(
            &endpoint,
            internal,
            &client,
            &[("token", connection.token.expose_secret())],
        )?;
        let response = send(request, "token revocation").await?;
        if !response.status().is_success() {
            return Err(UpstreamOAuthError::TokenEndpoint(format!(
                "revocation answered HTTP {}",
                response.status()
            )));
        }
        Ok(())
    }

    /// The account `user_id` uses on the server.
    async fn account(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        user_id: &UserId,
    ) -> Result<UpstreamAccount, UpstreamOAuthError> {
        let mode = self
            .inner
            .store
            .server_oauth_mode(scope, server_id)
            .await?
            .ok_or_else(|| UpstreamOAuthError::NotEnabled(server_id.clone()))?;
        Ok(UpstreamAccount::for_mode(mode, user_id))
    }

    /// The account's tokens, if they were issued for the server's current URL. Tokens issued for
    /// another URL are deleted unsent: an admin changing the URL must not redirect them.
    async fn stored(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        account: &UpstreamAccount,
    ) -> Result<(store::UpstreamTokens, store::Server), UpstreamOAuthError> {
        let store = &self.inner.store;
        let server = store.server(scope, server_id).await?;
        let tokens = store
            .upstream_tokens(scope, server_id, account)
            .await?
            .ok_or_else(|| UpstreamOAuthError::NotConnected {
                server_id: server_id.clone(),
                whom: match account {
                    UpstreamAccount::Organization => "the organization",
                    UpstreamAccount::Member(_) => "you",
                },
            })?;
        if resource_of(&server)?.as_str() != tokens.resource {
            store
                .delete_upstream_tokens(scope, server_id, account)
                .await?;
            return Err(UpstreamOAuthError::Reconnect {
                server_id: server_id.clone(),
                reason: "the server's URL changed since the account was connected".to_owned(),
            });
        }
        Ok((tokens, server))
    }

    /// Refreshes under the connection's lock, if `still_needed` says so once the lock is held
    /// (another caller may have refreshed meanwhile).
    async fn refresh(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        account: &UpstreamAccount,
        still_needed: impl Fn(&store::UpstreamTokens) -> bool,
    ) -> Result<SecretString, UpstreamOAuthError> {
        let key = (
            scope.org_id().to_string(),
            server_id.to_string(),
            match account {
                UpstreamAccount::Organization => String::new(),
                UpstreamAccount::Member(user) => user.to_string(),
            },
        );
        let lock = {
            let mut map = self
                .inner
                .refreshing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(key.clone()).or_default().clone()
        };
        let result = {
            let _guard = lock.lock().await;
            self.refresh_locked(scope, server_id, account, still_needed)
                .await
        };
        drop(lock);
        let mut map = self
            .inner
            .refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map
            .get(&key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            map.remove(&key);
        }
        result
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "sends the value to the authorization server or seals it (S9)"
    )]
    async fn refresh_locked(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        account: &UpstreamAccount,
        still_needed: impl Fn(&store::UpstreamTokens) -> bool,
    ) -> Result<SecretString, UpstreamOAuthError> {
        let store = &self.inner.store;
        let (current, server) = self.stored(scope, server_id, account).await?;
        if !still_needed(&current) {
            return Ok(current.access_token);
        }
        let Some(refresh_token) = current.refresh_token.as_ref() else {
            store
                .delete_upstream_tokens(scope, server_id, account)
                .await?;
            return Err(UpstreamOAuthError::Reconnect {
                server_id: server_id.clone(),
                reason: "no refresh token was issued".to_owned(),
            });
        };
        let settings = store
            .server_oauth(scope, server_id)
            .await?
            .ok_or_else(|| UpstreamOAuthError::NotEnabled(server_id.clone()))?;
        let authorization_server = settings.authorization_server.ok_or_else(|| {
            UpstreamOAuthError::Discovery("the server's authorization server is unknown".into())
        })?;
        let client = store
            .oauth_client(scope, server_id)
            .await?
            .ok_or_else(|| UpstreamOAuthError::Registration("no client is registered".into()))?;
        let answer = self
            .token_request(
                &authorization_server.token_endpoint,
                server.internal,
                &client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose_secret()),
                    ("resource", &current.resource),
                ],
            )
            .await?;
        let answer = match answer {
            Ok(answer) => answer,
            Err((code, Some(oauth_code)))
                if oauth_code == "invalid_grant" || oauth_code == "invalid_client" =>
            {
                store
                    .delete_upstream_tokens(scope, server_id, account)
                    .await?;
                tracing::info!(server = %server_id, org = %scope.org_id(), "upstream OAuth refresh refused; connection removed");
                return Err(UpstreamOAuthError::Reconnect {
                    server_id: server_id.clone(),
                    reason: code,
                });
            }
            Err((code, _)) => return Err(UpstreamOAuthError::TokenEndpoint(code)),
        };
        let access_token = answer.access_token.clone();
        let mut tokens = new_tokens(answer, current.resource.clone());
        if tokens.refresh_token.is_none() {
            // No rotation: the refresh token stays valid (RFC 6749 §6).
            tokens.refresh_token = current.refresh_token;
        }
        if tokens.scope.is_none() {
            tokens.scope = current.scope;
        }
        store
            .put_upstream_tokens(scope, server_id, account, tokens)
            .await?;
        Ok(access_token)
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "sends the value to the authorization server or seals it (S9)"
    )]
    fn form_request(
        &self,
        endpoint: &Url,
        internal: bool,
        client: &OAuthClient,
        fields: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, UpstreamOAuthError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            form.append_pair(name, value);
        }
        let mut request = self
            .http()?
            .request(Method::POST, endpoint, internal)?
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        match &client.client_secret {
            // client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded first.
            Some(secret) => {
                let encode = |text: &str| {
                    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
                };
                request = request.basic_auth(
                    encode(&client.client_id),
                    Some(encode(secret.expose_secret())),
                );
            }
            None => {
                form.append_pair("client_id", &client.client_id);
            }
        }
        Ok(request.body(form.finish()))
    }

    /// Posts to the token endpoint. `Ok(Err((message, oauth_code)))` is a refusal.
    async fn token_request(
        &self,
        token_endpoint: &str,
        internal: bool,
        client: &OAuthClient,
        fields: &[(&str, &str)],
    ) -> Result<Result<TokenAnswer, (String, Option<String>)>, UpstreamOAuthError> {
        let endpoint = Url::parse(token_endpoint)
            .map_err(|_| UpstreamOAuthError::Discovery("token_endpoint is not a URL".into()))?;
        let request = self.form_request(&endpoint, internal, client, fields)?;
        let response = send(request, "token endpoint").await?;
        let status = response.status();
        let body = read_bounded(response, "token endpoint").await?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            UpstreamOAuthError::TokenEndpoint(format!(
                "{} answered HTTP {status} without JSON",
                without_query(&endpoint)
            ))
        })?;
        if !status.is_success() {
            let code = answer
                .get("error")
                .and_then(Value::as_str)
                .map(|c| printable(c, 64));
            return Ok(Err((
                format!("HTTP {status}, {}", oauth_error_code(&answer)),
                code,
            )));
        }
        let text = |name: &str| answer.get(name).and_then(Value::as_str);
        let Some(access_token) = text("access_token").filter(|t| !t.is_empty()) else {
            return Ok(Err(("the answer has no access_token".to_owned(), None)));
        };
        if !text("token_type").is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
            return Ok(Err((
                "the token_type is not Bearer (only bearer tokens are supported)".to_owned(),
                None,
            )));
        }
        Ok(Ok(TokenAnswer {
            access_token: SecretString::from(access_token),
            refresh_token: text("refresh_token")
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            expires_in: answer.get("expires_in").and_then(Value::as_i64),
            scope: text("scope").map(|s| printable(s, 1024)),
        }))
    }

    /// 256 random bits, base64url (43 characters): a PKCE verifier or a state.
    fn random_token(&self) -> Result<String, UpstreamOAuthError> {
        let mut bytes = [0u8; 32];
        self.inner
            .random
            .fill(&mut bytes)
            .map_err(|_| UpstreamOAuthError::Http("the system random source failed".into()))?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// The server's URL as the `resource` of every request and token (RFC 8707), normalized once.
fn resource_of(server: &store::Server) -> Result<Url, UpstreamOAuthError> {
    let ServerTransport::StreamableHttp { url, .. } = &server.transport else {
        return Err(UpstreamOAuthError::NotRemote(server.id.clone()));
    };
    Url::parse(url)
        .map_err(|_| UpstreamOAuthError::Discovery("the server's URL does not parse".into()))
}

fn new_tokens(answer: TokenAnswer, resource: String) -> NewUpstreamTokens {
    NewUpstreamTokens {
        resource,
        access_token: answer.access_token,
        refresh_token: answer.refresh_token,
        expires_at: answer
            .expires_in
            .map(|secs| store::unix_now().saturating_add(secs.max(0))),
        scope: answer.scope,
    }
}

fn expires_soon(expires_at: Option<i64>) -> bool {
    expires_at.is_some_and(|at| at - store::unix_now() <= REFRESH_MARGIN_SECS)
}

/// The hex SHA-256 of a state: what the store keeps instead of the state itself.
fn state_digest(state: &str) -> String {
    digest::digest(&digest::SHA256, state.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An OAuth error answer's code, for messages (`error` only: descriptions may echo input).
fn oauth_error_code(answer: &Value) -> String {
    answer
        .get("error")
        .and_then(Value::as_str)
        .map_or_else(|| "no error code".to_owned(), |code| printable(code, 64))
}

/// Text from another party, made safe to show: printable characters only, at most `max`.
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}
