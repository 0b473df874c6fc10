//! The organization's MCP endpoint, `/o/{org}/mcp`, and the live-sessions API: the bearer token,
//! the organization in the path and the session plan are decided here; MCP itself is the `mcp`
//! crate's.

use std::sync::Arc;

use auth::tool_access::MemberToolAccess;
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mcp::credentials::{FileMount, Piece, Template};
use mcp::upstream::{Exposure, UpstreamSpec, UpstreamTransport};
use mcp::{Gateway, PlanError, SessionOwner, SessionPlan};
use serde::Serialize;
use store::{Principal, Server, ServerTransport, Store, TemplatePart, VariableKind, VariableMeta};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::Caller;
use crate::images::ImageDirs;

/// Passes only requests whose `Host` and `Origin` the gateway accepts (DNS rebinding, 403);
/// it runs before authentication.
pub struct HostChecked;

impl FromRequestParts<AppState> for HostChecked {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        state
            .gateway
            .check_host_and_origin(&parts.uri, &parts.headers)
            .map(|()| HostChecked)
    }
}

/// The caller's session owner, if the path names the caller's own organization. Another
/// organization's slug answers exactly like one that does not exist (S8).
fn owner_for(caller: &Principal, org: &str) -> Result<SessionOwner, ApiError> {
    if caller.org_slug != org {
        return Err(ApiError::NotFound("organization"));
    }
    Ok(SessionOwner {
        org: caller.scope.org_id().to_string(),
        user: caller.user_id.to_string(),
        token: caller.token_id.to_string(),
        role: caller.role,
    })
}

/// Send one JSON-RPC message to the organization's MCP endpoint (Streamable HTTP).
#[utoipa::path(
    post,
    path = "/o/{org}/mcp",
    tag = "mcp",
    params(("org" = String, Path, description = "The organization's slug")),
    request_body(content = Object, content_type = "application/json", description = "One JSON-RPC message"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The answer, as JSON or as an SSE stream"),
        (status = 202, description = "A notification or response was accepted"),
        (status = 400, description = "Not one JSON-RPC message, a missing session id or a bad version header"),
        (status = 401, description = "Missing or invalid token"),
        (status = 403, description = "Host or Origin not allowed"),
        (status = 404, description = "Unknown organization, or the session ended"),
        (status = 406, description = "Accept lacks application/json and text/event-stream"),
        (status = 413, description = "The message is over the size limit"),
        (status = 415, description = "Content-Type is not application/json"),
    )
)]
pub async fn mcp_post(
    _host: HostChecked,
    State(state): State<AppState>,
    Path(org): Path<String>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let owner = match owner_for(&caller, &org) {
        Ok(owner) => owner,
        Err(error) => return error.into_response(),
    };
    let store = state.store.clone();
    let images = state.images.dirs().clone();
    state
        .gateway
        .post(owner, &headers, body, async move || {
            plan(&store, &images, &caller).await
        })
        .await
}

/// Open the session's standalone SSE stream, or resume a stream with `Last-Event-ID`.
#[utoipa::path(
    get,
    path = "/o/{org}/mcp",
    tag = "mcp",
    params(("org" = String, Path, description = "The organization's slug")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An SSE stream"),
        (status = 401, description = "Missing or invalid token"),
        (status = 404, description = "Unknown organization, or the session ended"),
    )
)]
pub async fn mcp_get(
    _host: HostChecked,
    State(state): State<AppState>,
    Path(org): Path<String>,
    Caller(caller): Caller,
    headers: HeaderMap,
) -> Response {
    match owner_for(&caller, &org) {
        Ok(owner) => state.gateway.get(owner, &headers).await,
        Err(error) => error.into_response(),
    }
}

/// End the session and every server it started.
#[utoipa::path(
    delete,
    path = "/o/{org}/mcp",
    tag = "mcp",
    params(("org" = String, Path, description = "The organization's slug")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session ended"),
        (status = 401, description = "Missing or invalid token"),
        (status = 404, description = "Unknown organization, or the session ended"),
    )
)]
pub async fn mcp_delete(
    _host: HostChecked,
    State(state): State<AppState>,
    Path(org): Path<String>,
    Caller(caller): Caller,
    headers: HeaderMap,
) -> Response {
    match owner_for(&caller, &org) {
        Ok(owner) => state.gateway.delete(owner, &headers).await,
        Err(error) => error.into_response(),
    }
}

/// The servers a new session connects to and the member's tool access.
async fn plan(
    store: &Store,
    images: &ImageDirs,
    caller: &Principal,
) -> Result<SessionPlan, PlanError> {
    let failed = |error: store::StoreError| {
        tracing::error!(%error, "could not load servers for a new MCP session");
        PlanError("the database did not answer; try again".to_owned())
    };
    let servers = org_upstreams(store, &caller.scope, images)
        .await
        .map_err(failed)?;
    let rules = store.tool_rules(&caller.scope).await.map_err(failed)?;
    Ok(SessionPlan {
        servers,
        access: MemberToolAccess::for_member(&rules, caller.role, &caller.user_id),
    })
}

/// The organization's enabled servers, as the data plane wants them.
pub async fn org_upstreams(
    store: &Store,
    scope: &store::OrgScope,
    images: &ImageDirs,
) -> Result<Vec<UpstreamSpec>, store::StoreError> {
    let servers = store.list_servers(scope).await?;
    let variables = store.variables_for_plan(scope).await?;
    let mut oauth = Vec::new();
    for server in &servers {
        if server.enabled
            && matches!(server.transport, ServerTransport::StreamableHttp { .. })
            && store.server_oauth_mode(scope, &server.id).await?.is_some()
        {
            oauth.push(server.id.clone());
        }
    }
    Ok(upstream_specs(&servers, &variables, &oauth, images))
}

/// The enabled servers, as the data plane wants them. A server with a package runs from its
/// image once that is ready; until then every session fails it with the reason. String
/// variables and file paths are filled in here; password references stay references, opened
/// only when a session starts the server (S14).
pub fn upstream_specs(
    servers: &[Server],
    variables: &[VariableMeta],
    oauth: &[store::ServerId],
    images: &ImageDirs,
) -> Vec<UpstreamSpec> {
    servers
        .iter()
        .filter(|server| server.enabled)
        .map(|server| {
            let own: Vec<&VariableMeta> = variables
                .iter()
                .filter(|variable| variable.server_id == server.id)
                .collect();
            UpstreamSpec {
                server_id: server.id.to_string(),
                name: server.name.clone(),
                revision: server.revision,
                exposure: match server.exposure {
                    store::Exposure::Prefixed => Exposure::Prefixed,
                    store::Exposure::Unprefixed => Exposure::Unprefixed,
                },
                transport: transport_for(server, &own, oauth.contains(&server.id), images)
                    .unwrap_or_else(|reason| UpstreamTransport::Unavailable { reason }),
            }
        })
        .collect()
}

fn transport_for(
    server: &Server,
    variables: &[&VariableMeta],
    oauth: bool,
    images: &ImageDirs,
) -> Result<UpstreamTransport, String> {
    Ok(match &server.transport {
        ServerTransport::Stdio {
            command,
            args,
            working_dir,
            env,
        } => {
            let args = args
                .iter()
                .map(|arg| {
                    resolve(arg, variables)?.as_text().ok_or_else(|| {
                        "references a password variable in its arguments, which every host user \
                         could read"
                            .to_owned()
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let env = env
                .iter()
                .map(|(name, value)| Ok((name.clone(), resolve(value, variables)?)))
                .collect::<Result<Vec<_>, String>>()?;
            let files = variables
                .iter()
                .filter(|variable| variable.kind == VariableKind::File)
                .filter_map(|variable| {
                    Some(FileMount {
                        variable: variable.name.clone(),
                        path: variable.file_path.clone()?,
                    })
                })
                .collect();
            images.session_transport(
                server,
                mcp::launcher::StdioCommand {
                    command: command.clone(),
                    args,
                    working_dir: working_dir.clone(),
                    image: None,
                    env,
                    files,
                },
            )
        }
        ServerTransport::StreamableHttp { url, headers } => UpstreamTransport::StreamableHttp {
            url: url.clone(),
            internal: server.internal,
            headers: headers
                .iter()
                .map(|(name, value)| Ok((name.clone(), resolve(value, variables)?)))
                .collect::<Result<Vec<_>, String>>()?,
            oauth,
        },
    })
}

/// Turns a stored setting into the data plane's template: string variables and file paths
/// are filled in, passwords stay named references. A reference that no longer resolves (the
/// server was saved before its variable went) makes the server unavailable, saying which.
fn resolve(text: &str, variables: &[&VariableMeta]) -> Result<Template, String> {
    let parsed = store::Template::parse(text)
        .map_err(|reason| format!("has a setting that does not parse: {reason}"))?;
    let pieces = parsed
        .parts()
        .iter()
        .map(|part| match part {
            TemplatePart::Text(text) => Ok(Piece::Text(text.clone())),
            TemplatePart::Variable(name) => {
                let variable = variables
                    .iter()
                    .find(|variable| variable.name == *name)
                    .ok_or_else(|| {
                        format!("references ${{{name}}}, which is not one of its variables")
                    })?;
                Ok(match variable.kind {
                    VariableKind::String => {
                        Piece::Text(variable.string_value.clone().unwrap_or_default())
                    }
                    VariableKind::File => {
                        Piece::Text(variable.file_path.clone().unwrap_or_default())
                    }
                    VariableKind::Password => Piece::Secret(name.clone()),
                })
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Template::new(pieces))
}

/// One live MCP session.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The member who opened it.
    pub user_id: String,
    /// Seconds since it started.
    pub age_seconds: u64,
    /// Seconds since the client last did something.
    pub idle_seconds: u64,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// Each server's connection in this session.
    pub servers: Vec<SessionServerView>,
}

/// One server's connection in a session.
#[derive(Serialize, ToSchema)]
pub struct SessionServerView {
    /// The server.
    pub server_id: String,
    /// Its name.
    pub name: String,
    /// `starting`, `ready` or `failed`.
    pub state: String,
    /// Why it failed.
    pub reason: Option<String>,
}

/// List live MCP sessions: all of the organization's for owners and admins, one's own otherwise.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "mcp",
    security(("bearer" = [])),
    responses((status = 200, description = "Live sessions", body = [SessionView]))
)]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Json<Vec<SessionView>> {
    let sees_all = auth::authorize::<auth::ManageServers>(caller.role).is_ok();
    let user = caller.user_id.to_string();
    let sessions = state
        .gateway
        .statuses(caller.scope.org_id().as_str())
        .into_iter()
        .filter(|status| sees_all || status.user == user)
        .map(|status| SessionView {
            user_id: status.user,
            age_seconds: status.age_seconds,
            idle_seconds: status.idle_seconds,
            protocol_version: status.protocol_version,
            servers: status
                .upstreams
                .into_iter()
                .map(|upstream| SessionServerView {
                    server_id: upstream.server_id,
                    name: upstream.name,
                    state: upstream.state.to_owned(),
                    reason: upstream.reason,
                })
                .collect(),
        })
        .collect();
    Json(sessions)
}

/// Applies control-plane changes to live sessions, one at a time in commit order.
pub struct DataPlaneSync {
    changes: tokio::sync::mpsc::UnboundedSender<crate::changes::Change>,
}

impl DataPlaneSync {
    /// Starts the worker that applies changes to `gateway`'s sessions.
    pub fn start(store: Store, gateway: Arc<Gateway>, images: ImageDirs) -> Self {
        let (changes, mut queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(change) = queue.recv().await {
                apply(&store, &gateway, &images, change).await;
            }
        });
        DataPlaneSync { changes }
    }
}

impl crate::changes::ChangeSink for DataPlaneSync {
    fn changed(&self, change: crate::changes::Change) {
        let _ = self.changes.send(change);
    }
}

async fn apply(
    store: &Store,
    gateway: &Gateway,
    images: &ImageDirs,
    change: crate::changes::Change,
) {
    use crate::changes::Change;
    match change {
        Change::Member { org, user } => gateway.end_sessions(
            |owner| owner.org == org.as_str() && owner.user == user.as_str(),
            "the member's role changed or the member was removed",
        ),
        Change::Organization { org } => gateway.end_sessions(
            |owner| owner.org == org.as_str(),
            "the organization was deleted",
        ),
        Change::TokenRevoked { org, token } => gateway.end_sessions(
            |owner| owner.org == org.as_str() && owner.token == token.as_str(),
            "its token was revoked",
        ),
        Change::Server { scope, .. } => match org_upstreams(store, &scope, images).await {
            Ok(servers) => gateway.set_org_servers(scope.org_id().as_str(), &servers),
            Err(error) => tracing::error!(%error, "could not reload servers for live sessions"),
        },
        Change::ToolRules { scope } => match store.tool_rules(&scope).await {
            Ok(rules) => gateway.set_org_access(scope.org_id().as_str(), |owner| {
                MemberToolAccess::for_member(
                    &rules,
                    owner.role,
                    &store::UserId::from_untrusted(&owner.user),
                )
            }),
            Err(error) => tracing::error!(%error, "could not reload tool rules for live sessions"),
        },
    }
}
