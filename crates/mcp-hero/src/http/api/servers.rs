//! `/api/v1/servers`: the organization's MCP servers; any member reads, owners and admins change
//! them (S7, S8), and every committed change is reported to the data plane.

use auth::{ManageServers, authorize};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use store::{Exposure, NewServer, Server, ServerId, ServerTransport, ServerUpdate};
use utoipa::ToSchema;

use crate::changes::Change;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Caller};

/// How the gateway reaches a server, tagged by `type`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransportBody {
    /// A command run in a sandbox per session, speaking MCP on stdin and stdout.
    Stdio {
        /// The program to run (no shell).
        command: String,
        /// Its arguments; at most 64, each at most 4096 bytes.
        #[serde(default)]
        args: Vec<String>,
        /// An absolute directory to run in; the sandbox's default when absent.
        #[serde(default)]
        working_dir: Option<String>,
    },
    /// A remote server speaking Streamable HTTP.
    StreamableHttp {
        /// Its MCP endpoint, `http://` or `https://`, without credentials.
        url: String,
    },
}

impl From<TransportBody> for ServerTransport {
    fn from(body: TransportBody) -> Self {
        match body {
            TransportBody::Stdio {
                command,
                args,
                working_dir,
            } => ServerTransport::Stdio {
                command,
                args,
                working_dir,
            },
            TransportBody::StreamableHttp { url } => ServerTransport::StreamableHttp { url },
        }
    }
}

impl From<ServerTransport> for TransportBody {
    fn from(transport: ServerTransport) -> Self {
        match transport {
            ServerTransport::Stdio {
                command,
                args,
                working_dir,
            } => TransportBody::Stdio {
                command,
                args,
                working_dir,
            },
            ServerTransport::StreamableHttp { url } => TransportBody::StreamableHttp { url },
        }
    }
}

/// How a server's tools are named on the organization's endpoint.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExposureName {
    /// As `server__tool` (the default).
    #[default]
    Prefixed,
    /// As `tool` alone; only while this is the organization's only enabled server.
    Unprefixed,
}

impl From<ExposureName> for Exposure {
    fn from(name: ExposureName) -> Self {
        match name {
            ExposureName::Prefixed => Exposure::Prefixed,
            ExposureName::Unprefixed => Exposure::Unprefixed,
        }
    }
}

impl From<Exposure> for ExposureName {
    fn from(exposure: Exposure) -> Self {
        match exposure {
            Exposure::Prefixed => ExposureName::Prefixed,
            Exposure::Unprefixed => ExposureName::Unprefixed,
        }
    }
}

/// A registered MCP server.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerView {
    id: String,
    name: String,
    transport: TransportBody,
    exposure: ExposureName,
    enabled: bool,
    /// Whether an admin allowed this remote server on a private or loopback address.
    internal: bool,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
    /// 1 when created, plus one for every update.
    revision: i64,
}

impl From<Server> for ServerView {
    fn from(server: Server) -> Self {
        ServerView {
            id: server.id.to_string(),
            name: server.name,
            transport: server.transport.into(),
            exposure: server.exposure.into(),
            enabled: server.enabled,
            internal: server.internal,
            created_at: server.created_at,
            updated_at: server.updated_at,
            revision: server.revision,
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

/// Register a server.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServerRequest {
    /// 1 to 32 of `a-z`, `0-9`, `-`, starting with a letter or digit; unique in the organization.
    name: String,
    transport: TransportBody,
    /// `prefixed` when absent.
    #[serde(default)]
    exposure: ExposureName,
    /// `true` when absent.
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    /// `false` when absent.
    #[serde(default)]
    internal: bool,
}

/// Change a server: each field given replaces the stored one; the transport is replaced whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServerRequest {
    name: Option<String>,
    transport: Option<TransportBody>,
    exposure: Option<ExposureName>,
    enabled: Option<bool>,
    internal: Option<bool>,
}

fn server_changed(state: &AppState, caller: &Caller, server: ServerId) {
    state.changes.changed(Change::Server {
        scope: caller.scope.clone(),
        server,
    });
}

/// Every server of the caller's organization, by name.
#[utoipa::path(
    get, path = "/api/v1/servers", tag = "servers", security(("bearer" = [])),
    responses((status = 200, body = [ServerView]), (status = 401, description = "Missing or bad token"))
)]
pub async fn list_servers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ServerView>>, ApiError> {
    let servers = state.store.list_servers(&caller.scope).await?;
    Ok(Json(servers.into_iter().map(ServerView::from).collect()))
}

/// Register a server (owners and admins).
#[utoipa::path(
    post, path = "/api/v1/servers", tag = "servers", security(("bearer" = [])), request_body = CreateServerRequest,
    responses(
        (status = 201, body = ServerView), (status = 400, description = "A field breaks a rule; the message names it"),
        (status = 403, description = "Role may not manage servers"), (status = 409, description = "Name taken")
    )
)]
pub async fn create_server(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateServerRequest>,
) -> Result<(StatusCode, Json<ServerView>), ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server = state
        .store
        .create_server(
            &caller.scope,
            &permit,
            NewServer {
                name: request.name,
                transport: request.transport.into(),
                exposure: request.exposure.into(),
                enabled: request.enabled,
                internal: request.internal,
            },
        )
        .await?;
    server_changed(&state, &caller, server.id.clone());
    Ok((StatusCode::CREATED, Json(server.into())))
}

/// One server.
#[utoipa::path(
    get, path = "/api/v1/servers/{server_id}", tag = "servers", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    responses((status = 200, body = ServerView), (status = 404, description = "No such server in this organization"))
)]
pub async fn get_server(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
) -> Result<Json<ServerView>, ApiError> {
    let server = state
        .store
        .server(&caller.scope, &ServerId::from_untrusted(&server_id))
        .await?;
    Ok(Json(server.into()))
}

/// Change a server (owners and admins); the revision goes up by one.
#[utoipa::path(
    patch, path = "/api/v1/servers/{server_id}", tag = "servers", security(("bearer" = [])), request_body = UpdateServerRequest,
    params(("server_id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, body = ServerView), (status = 400, description = "A field breaks a rule; the message names it"),
        (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server in this organization"), (status = 409, description = "Name taken")
    )
)]
pub async fn update_server(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
    ApiJson(request): ApiJson<UpdateServerRequest>,
) -> Result<Json<ServerView>, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server = state
        .store
        .update_server(
            &caller.scope,
            &permit,
            &ServerId::from_untrusted(&server_id),
            ServerUpdate {
                name: request.name,
                transport: request.transport.map(Into::into),
                exposure: request.exposure.map(Into::into),
                enabled: request.enabled,
                internal: request.internal,
            },
        )
        .await?;
    server_changed(&state, &caller, server.id.clone());
    Ok(Json(server.into()))
}

/// Delete a server (owners and admins); sessions using it end.
#[utoipa::path(
    delete, path = "/api/v1/servers/{server_id}", tag = "servers", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    responses(
        (status = 204, description = "Deleted"), (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server in this organization")
    )
)]
pub async fn delete_server(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let id = ServerId::from_untrusted(&server_id);
    state
        .store
        .delete_server(&caller.scope, &permit, &id)
        .await?;
    server_changed(&state, &caller, id);
    Ok(StatusCode::NO_CONTENT)
}
