//! Remote servers behind OAuth (S8, S9, S15): admins put a server behind OAuth, members connect
//! their own account (or an admin the organization's) through an authorize URL, and the
//! authorization server sends the browser back to the gateway's callback.
//!
//! No answer ever holds a token or a client secret: the secret is write-only and shows as
//! `client_secret_set`, a connection shows as its expiry and scope. The callback and the client
//! ID metadata document are public (a browser redirect and an authorization server's fetch
//! carry no bearer token); the callback's `state` is its capability.

use auth::{ManageServers, authorize};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use store::{AdminClient, OAuthMode, OAuthSettings, ServerId, ServerOAuth, UpstreamAccount};
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Caller};
use crate::upstream_oauth::{CallbackParams, UpstreamOAuthError};

/// Whose credentials a server uses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OAuthModeName {
    /// One connection for the whole organization, made by an owner or admin.
    Organization,
    /// Each member connects their own account.
    Member,
}

impl From<OAuthModeName> for OAuthMode {
    fn from(mode: OAuthModeName) -> Self {
        match mode {
            OAuthModeName::Organization => OAuthMode::Organization,
            OAuthModeName::Member => OAuthMode::Member,
        }
    }
}

impl From<OAuthMode> for OAuthModeName {
    fn from(mode: OAuthMode) -> Self {
        match mode {
            OAuthMode::Organization => OAuthModeName::Organization,
            OAuthMode::Member => OAuthModeName::Member,
        }
    }
}

/// Puts a remote server behind OAuth. The client secret is write-only.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutServerOAuthRequest {
    /// Whose credentials the server uses.
    mode: OAuthModeName,
    /// Scopes to ask for; empty lets the server's challenge or metadata decide.
    #[serde(default)]
    scopes: Vec<String>,
    /// A client registered by hand at the authorization server; without it the gateway uses a
    /// client ID metadata document or dynamic registration.
    #[serde(default)]
    client_id: Option<String>,
    /// That client's secret, for confidential clients; never shown again.
    #[serde(default)]
    client_secret: Option<String>,
}

/// The caller's connection (member mode) or the organization's (organization mode).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// Whether an account is connected.
    connected: bool,
    /// Unix seconds; absent when not connected or the lifetime is unknown.
    expires_at: Option<i64>,
    /// The scope granted.
    scope: Option<String>,
    /// Whether the gateway can renew it without the member.
    refreshable: bool,
    /// Unix seconds.
    connected_at: Option<i64>,
}

/// A server's OAuth settings and the caller's connection; never a token or a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerOAuthView {
    server_id: String,
    /// Whether the server is behind OAuth.
    enabled: bool,
    mode: Option<OAuthModeName>,
    scopes: Vec<String>,
    /// The admin's hand-registered client id, if any.
    client_id: Option<String>,
    /// Whether the admin gave a client secret (it is never shown).
    client_secret_set: bool,
    /// The authorization server found by discovery, once an authorization started.
    issuer: Option<String>,
    connection: ConnectionView,
}

/// Where to send the browser to connect an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizeView {
    /// The authorization server's URL, valid for ten minutes, usable once.
    authorize_url: String,
}

fn oauth_error(error: UpstreamOAuthError) -> ApiError {
    match error {
        UpstreamOAuthError::Store(error) => error.into(),
        UpstreamOAuthError::Forbidden(message) => ApiError::Forbidden(message),
        UpstreamOAuthError::NotRemote(_) => ApiError::BadRequest(error.to_string()),
        UpstreamOAuthError::NotEnabled(_)
        | UpstreamOAuthError::NotConnected { .. }
        | UpstreamOAuthError::Reconnect { .. }
        | UpstreamOAuthError::PublicUrlMissing => ApiError::Conflict(error.to_string()),
        UpstreamOAuthError::Discovery(_)
        | UpstreamOAuthError::NoPkce { .. }
        | UpstreamOAuthError::Registration(_)
        | UpstreamOAuthError::TokenEndpoint(_)
        | UpstreamOAuthError::Http(_)
        | UpstreamOAuthError::Ssrf(_) => ApiError::BadGateway(error.to_string()),
        UpstreamOAuthError::Denied { .. }
        | UpstreamOAuthError::BadState
        | UpstreamOAuthError::WrongIssuer { .. }
        | UpstreamOAuthError::MissingIssuer { .. }
        | UpstreamOAuthError::BadCallback(_) => ApiError::BadRequest(error.to_string()),
    }
}

async fn view(
    state: &AppState,
    caller: &Caller,
    server_id: &ServerId,
    settings: Option<ServerOAuth>,
) -> Result<ServerOAuthView, ApiError> {
    let Some(settings) = settings else {
        return Ok(ServerOAuthView {
            server_id: server_id.to_string(),
            enabled: false,
            mode: None,
            scopes: Vec::new(),
            client_id: None,
            client_secret_set: false,
            issuer: None,
            connection: ConnectionView {
                connected: false,
                expires_at: None,
                scope: None,
                refreshable: false,
                connected_at: None,
            },
        });
    };
    let account = UpstreamAccount::for_mode(settings.mode, &caller.user_id);
    let connection = state
        .store
        .upstream_connection(&caller.scope, server_id, &account)
        .await?;
    Ok(ServerOAuthView {
        server_id: server_id.to_string(),
        enabled: true,
        mode: Some(settings.mode.into()),
        scopes: settings.scopes,
        client_id: settings.admin_client_id,
        client_secret_set: settings.admin_client_secret_set,
        issuer: settings.authorization_server.map(|server| server.issuer),
        connection: match connection {
            Some(connection) => ConnectionView {
                connected: true,
                expires_at: connection.expires_at,
                scope: connection.scope,
                refreshable: connection.refreshable,
                connected_at: Some(connection.connected_at),
            },
            None => ConnectionView {
                connected: false,
                expires_at: None,
                scope: None,
                refreshable: false,
                connected_at: None,
            },
        },
    })
}

/// Put a remote server behind OAuth, or change its settings (owners and admins). Discovery
/// starts over; connections stay unless the mode or the client changes.
#[utoipa::path(
    put, path = "/api/v1/servers/{server_id}/oauth", tag = "upstream-oauth", security(("bearer" = [])),
    request_body = PutServerOAuthRequest,
    params(("server_id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, body = ServerOAuthView),
        (status = 400, description = "A field breaks a rule, or the server is not remote; the message names it"),
        (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server in this organization")
    )
)]
pub async fn put_server_oauth(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
    ApiJson(request): ApiJson<PutServerOAuthRequest>,
) -> Result<Json<ServerOAuthView>, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server_id = ServerId::from_untrusted(&server_id);
    let client = match (request.client_id, request.client_secret) {
        (Some(client_id), secret) => Some(AdminClient {
            client_id,
            client_secret: secret.map(SecretString::from),
        }),
        (None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "invalid client_secret: give it together with its client_id".to_owned(),
            ));
        }
        (None, None) => None,
    };
    let settings = state
        .store
        .put_server_oauth(
            &caller.scope,
            &permit,
            &server_id,
            OAuthSettings {
                mode: request.mode.into(),
                scopes: request.scopes,
                client,
            },
        )
        .await?;
    // Live sessions re-plan the server: its requests carry bearer tokens from now on.
    crate::http::api::servers::server_changed(&state, &caller, server_id.clone());
    Ok(Json(
        view(&state, &caller, &server_id, Some(settings)).await?,
    ))
}

/// A server's OAuth settings and the caller's connection (any member).
#[utoipa::path(
    get, path = "/api/v1/servers/{server_id}/oauth", tag = "upstream-oauth", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    responses((status = 200, body = ServerOAuthView), (status = 404, description = "No such server in this organization"))
)]
pub async fn get_server_oauth(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
) -> Result<Json<ServerOAuthView>, ApiError> {
    let server_id = ServerId::from_untrusted(&server_id);
    let settings = state.store.server_oauth(&caller.scope, &server_id).await?;
    Ok(Json(view(&state, &caller, &server_id, settings).await?))
}

/// Take a server off OAuth (owners and admins); every connection to it is removed and, where the
/// authorization server allows, revoked.
#[utoipa::path(
    delete, path = "/api/v1/servers/{server_id}/oauth", tag = "upstream-oauth", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    responses(
        (status = 204, description = "Removed"), (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server in this organization, or it is not behind OAuth")
    )
)]
pub async fn delete_server_oauth(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server_id = ServerId::from_untrusted(&server_id);
    state
        .upstream_oauth
        .revoke_before_deleting_server(&caller.scope, &server_id)
        .await?;
    state
        .store
        .delete_server_oauth(&caller.scope, &permit, &server_id)
        .await?;
    // Live sessions re-plan the server: its requests stop carrying tokens.
    crate::http::api::servers::server_changed(&state, &caller, server_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Start connecting an account: the caller's own (member mode) or the organization's
/// (organization mode; owners and admins). Answers the URL to open in a browser.
#[utoipa::path(
    post, path = "/api/v1/servers/{server_id}/oauth/authorize", tag = "upstream-oauth", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, body = AuthorizeView),
        (status = 400, description = "The server is not remote"),
        (status = 403, description = "Organization mode and the role may not manage servers"),
        (status = 404, description = "No such server in this organization"),
        (status = 409, description = "The server is not behind OAuth, or the gateway's public URL is not configured"),
        (status = 502, description = "Discovery or registration at the authorization server failed; the message says why")
    )
)]
pub async fn start_authorization(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
) -> Result<Json<AuthorizeView>, ApiError> {
    let url = state
        .upstream_oauth
        .start_authorization(&caller, &ServerId::from_untrusted(&server_id))
        .await
        .map_err(oauth_error)?;
    Ok(Json(AuthorizeView {
        authorize_url: url.to_string(),
    }))
}

/// Disconnect the caller's account (member mode) or the organization's (organization mode;
/// owners and admins), revoking it at the authorization server where possible.
#[utoipa::path(
    delete, path = "/api/v1/servers/{server_id}/oauth/connection", tag = "upstream-oauth", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    responses(
        (status = 204, description = "Disconnected"),
        (status = 403, description = "Organization mode and the role may not manage servers"),
        (status = 404, description = "No such server in this organization, or nothing connected"),
        (status = 409, description = "The server is not behind OAuth")
    )
)]
pub async fn delete_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .upstream_oauth
        .disconnect(&caller, &ServerId::from_untrusted(&server_id))
        .await
        .map_err(oauth_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where authorization servers send the browser back: finishes the connection and answers a
/// small page saying so, or naming what went wrong (nothing is stored then).
#[utoipa::path(
    get, path = "/oauth/upstream/callback", tag = "upstream-oauth",
    params(
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("state" = Option<String>, Query, description = "The state the gateway sent"),
        ("iss" = Option<String>, Query, description = "The issuer (RFC 9207)"),
        ("error" = Option<String>, Query, description = "An OAuth error code"),
        ("error_description" = Option<String>, Query, description = "Its description"),
    ),
    responses(
        (status = 200, description = "Connected", content_type = "text/html", body = String),
        (status = 400, description = "Denied, unknown or expired state, wrong issuer, or the token endpoint refused; the page says which", content_type = "text/html", body = String)
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    Query(params): Query<CallbackParams>,
) -> Response {
    match state.upstream_oauth.complete_authorization(params).await {
        Ok(connected) => page(
            StatusCode::OK,
            "Connected",
            &format!(
                "Your account is connected to {}. You can close this tab.",
                connected.server_name
            ),
        ),
        Err(error) => {
            let status = match &error {
                UpstreamOAuthError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                UpstreamOAuthError::Http(_)
                | UpstreamOAuthError::TokenEndpoint(_)
                | UpstreamOAuthError::Ssrf(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::BAD_REQUEST,
            };
            tracing::info!(%error, "upstream OAuth callback failed");
            let message = match &error {
                UpstreamOAuthError::Store(_) => {
                    "internal error; the gateway log has the details".to_owned()
                }
                other => other.to_string(),
            };
            page(status, "Not connected", &message)
        }
    }
}

/// The gateway's client ID metadata document, for authorization servers that accept URLs as
/// client ids.
#[utoipa::path(
    get, path = "/oauth/client-metadata.json", tag = "upstream-oauth",
    responses(
        (status = 200, description = "The client ID metadata document", body = Object),
        (status = 404, description = "The gateway's public URL is not configured")
    )
)]
pub async fn client_metadata(State(state): State<AppState>) -> Response {
    match state.upstream_oauth.client_metadata_document() {
        Some(document) => Json(document).into_response(),
        None => ApiError::NotFound("client metadata document (public URL not configured)")
            .into_response(),
    }
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>MCP Hero: {title}</title></head>\
         <body><h1>{title}</h1><p>{}</p></body></html>",
        escape_html(message)
    );
    (
        status,
        [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("content-security-policy", "default-src 'none'"),
        ],
        Html(body),
    )
        .into_response()
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
