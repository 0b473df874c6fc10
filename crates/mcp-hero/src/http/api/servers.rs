//! `/api/v1/servers`: the organization's MCP servers; any member reads, owners and admins change
//! them (S7, S8), and every committed change is reported to the data plane. A stdio server may
//! name a package, which the gateway installs into its image (`/api/v1/servers/{id}/image`).

use std::collections::BTreeMap;

use auth::{ManageServers, authorize};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use store::{
    Exposure, ImageStatus, NewServer, Package, PackageKind, Server, ServerId, ServerTransport,
    ServerUpdate,
};
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
        /// Environment variables; values may reference the server's variables as `${NAME}`
        /// (passwords are opened only when a session starts the server). At most 64;
        /// `HOME`, `PATH`, `LANG` and the proxy variables are the sandbox's.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
    },
    /// A remote server speaking Streamable HTTP.
    StreamableHttp {
        /// Its MCP endpoint, `http://` or `https://`, without credentials.
        url: String,
        /// Headers sent on every request (an API key, say); values may reference the server's
        /// string and password variables as `${NAME}`. At most 64.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

impl From<TransportBody> for ServerTransport {
    fn from(body: TransportBody) -> Self {
        match body {
            TransportBody::Stdio {
                command,
                args,
                working_dir,
                env,
            } => ServerTransport::Stdio {
                command,
                args,
                working_dir,
                env,
            },
            TransportBody::StreamableHttp { url, headers } => {
                ServerTransport::StreamableHttp { url, headers }
            }
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
                env,
            } => TransportBody::Stdio {
                command,
                args,
                working_dir,
                env,
            },
            ServerTransport::StreamableHttp { url, headers } => {
                TransportBody::StreamableHttp { url, headers }
            }
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

/// Which installer a package needs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PackageKindName {
    /// `name@1.2.3` or `@scope/name@1.2.3`, from the npm registry.
    Npm,
    /// `name==1.2.3`, from PyPI.
    Pypi,
    /// The absolute path of a file the operator placed under the gateway's binaries directory.
    Binary,
}

/// The package a stdio server runs from: installed once into its image, which every session
/// mounts read-only at `/opt/mcp-server` (programs in `bin`, `node_modules/.bin` and
/// `venv/bin` there are on the server's PATH).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageBody {
    #[serde(rename = "type")]
    kind: PackageKindName,
    /// An exact version: `name@1.2.3`, `name==1.2.3`, or an absolute path for a binary.
    spec: String,
}

impl PackageBody {
    fn parse(self, state: &AppState) -> Result<Package, ApiError> {
        let kind = match self.kind {
            PackageKindName::Npm => PackageKind::Npm,
            PackageKindName::Pypi => PackageKind::Pypi,
            PackageKindName::Binary => PackageKind::Binary,
        };
        let package = Package::parse(kind, &self.spec)?;
        state.images.check_package(&package)?;
        Ok(package)
    }
}

impl From<&Package> for PackageBody {
    fn from(package: &Package) -> Self {
        PackageBody {
            kind: match package.kind() {
                PackageKind::Npm => PackageKindName::Npm,
                PackageKind::Pypi => PackageKindName::Pypi,
                PackageKind::Binary => PackageKindName::Binary,
            },
            spec: package.spec().to_owned(),
        }
    }
}

/// A server's install image: where its install stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageView {
    /// The package it holds.
    package: PackageBody,
    /// `pending`, `installing`, `ready` or `failed`; sessions run the server only when `ready`.
    state: String,
    /// `queued`, `preparing`, `resolving`, `downloading`, `linking`, `sealing` or `done`; for a
    /// failed install, the phase it failed in.
    phase: String,
    /// Percent done, 0 to 100.
    progress: u8,
    /// Why the install failed.
    error: Option<String>,
    /// Bytes in the image's files, once ready.
    size_bytes: Option<i64>,
    /// Unix seconds; when it became ready.
    installed_at: Option<i64>,
    /// Unix seconds; when its state last changed.
    updated_at: i64,
    /// Goes up with every install of this server.
    generation: i64,
}

impl ImageView {
    fn of(package: &Package, image: &ImageStatus) -> Self {
        ImageView {
            package: package.into(),
            state: image.state.as_str().to_owned(),
            phase: image.phase.as_str().to_owned(),
            progress: image.progress,
            error: image.error.clone(),
            size_bytes: image.size_bytes,
            installed_at: image.installed_at,
            updated_at: image.updated_at,
            generation: image.generation,
        }
    }

    fn of_server(server: &Server) -> Option<Self> {
        Some(ImageView::of(
            server.package.as_ref()?,
            server.image.as_ref()?,
        ))
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
    /// The package its program comes from (stdio servers only).
    package: Option<PackageBody>,
    /// Its install image, when it has a package.
    image: Option<ImageView>,
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
            package: server.package.as_ref().map(PackageBody::from),
            image: ImageView::of_server(&server),
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
    /// The package to install (stdio servers only); none when absent.
    #[serde(default)]
    package: Option<PackageBody>,
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
    /// A different package installs a new image; `null` removes the package and its image.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PackageBody>)]
    package: Option<Option<PackageBody>>,
}

/// A field that is present, `null` included: absent stays `None`, `null` is `Some(None)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

pub(crate) fn server_changed(state: &AppState, caller: &Caller, server: ServerId) {
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
    let package = request.package.map(|p| p.parse(&state)).transpose()?;
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
                package,
            },
        )
        .await?;
    server_changed(&state, &caller, server.id.clone());
    state.images.install(&caller.scope, &server);
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
    let package = match request.package {
        None => None,
        Some(None) => Some(None),
        Some(Some(body)) => Some(Some(body.parse(&state)?)),
    };
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
                package,
            },
        )
        .await?;
    server_changed(&state, &caller, server.id.clone());
    if server.package.is_none() {
        state.images.forget(&server.id).await;
    } else {
        state.images.install(&caller.scope, &server);
    }
    Ok(Json(server.into()))
}

/// Delete a server (owners and admins); sessions using it end.
///
/// What is gone, and when: at once and in one database transaction, the server's row with its
/// variables (strings, sealed passwords and files), its upstream OAuth settings and tokens, its
/// image record and its log lines; SQLite overwrites the freed pages (`secure_delete`). Before
/// that, its upstream OAuth tokens are revoked at their authorization server (best effort). Right
/// after the commit, live sessions drop the server, which stops its sandboxes, and its install
/// image directory is removed; a removal that fails is retried, and the next start removes any
/// image directory no server owns. Copies in database backups last until the backup retention
/// window rolls over them.
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
    // Best effort; the tokens are deleted with the server either way.
    state
        .upstream_oauth
        .revoke_before_deleting_server(&caller.scope, &id)
        .await?;
    state
        .store
        .delete_server(&caller.scope, &permit, &id)
        .await?;
    server_changed(&state, &caller, id.clone());
    state.images.forget(&id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A server's install image: its state, phase and progress.
#[utoipa::path(
    get, path = "/api/v1/servers/{server_id}/image", tag = "servers", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, body = ImageView),
        (status = 404, description = "No such server in this organization, or it has no package")
    )
)]
pub async fn get_image(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
) -> Result<Json<ImageView>, ApiError> {
    let server = state
        .store
        .server(&caller.scope, &ServerId::from_untrusted(&server_id))
        .await?;
    ImageView::of_server(&server)
        .map(Json)
        .ok_or(ApiError::NotFound("image"))
}

/// Install a server's package again, into a new image (owners and admins); until it is ready,
/// sessions fail the server saying it is installing.
#[utoipa::path(
    post, path = "/api/v1/servers/{server_id}/image/reinstall", tag = "servers", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    responses(
        (status = 202, body = ImageView, description = "The install is queued"),
        (status = 400, description = "The server has no package"),
        (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server in this organization")
    )
)]
pub async fn reinstall_image(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
) -> Result<(StatusCode, Json<ImageView>), ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server = state
        .store
        .reinstall_image(
            &caller.scope,
            &permit,
            &ServerId::from_untrusted(&server_id),
        )
        .await?;
    server_changed(&state, &caller, server.id.clone());
    state.images.install(&caller.scope, &server);
    let view = ImageView::of_server(&server).ok_or(ApiError::Internal)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}
