//! MCP servers an organization registers: how to reach each one and how its tools are exposed
//! (S6, S8); changes need a `ManageServers` permit.
//!
//! A server is either a command the sandbox runs (stdio) or a remote Streamable HTTP endpoint.
//! Its name becomes the prefix of its tools' canonical names (`server__tool`), so names are short,
//! lower case and can never hold the `__` separator. A server may be exposed without that prefix
//! only while it is the organization's only enabled server; otherwise two servers' tools could
//! collide under one name. Every update bumps `revision`, so the data plane can tell a server it
//! holds a connection to from the one now stored.
//!
//! A stdio server may name a [`Package`]; its install image's state comes with every read (see
//! [`crate::images`]). Changing the package starts a new image generation.
//!
//! A stdio server's `env` and a remote server's `headers` are name → [`Template`] maps whose
//! `${NAME}` references resolve to the server's variables ([`crate::variables`]) when a
//! session starts; references are checked whenever the server is saved.

use std::collections::BTreeMap;

use auth::{ManageServers, Permit};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::images::{ImageStatus, Package, image_from_row, package_from_row};
use crate::template::Template;
use crate::{OrgScope, ServerId, Store, StoreError, unix_now};

/// Most arguments a stdio server's command may take.
pub const MAX_ARGS: usize = 64;
/// Longest single argument, command or working directory, in bytes.
pub const MAX_ARG_BYTES: usize = 4096;
/// Longest remote server URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest server name, in bytes (the prefix of every canonical tool name).
pub const MAX_NAME_BYTES: usize = 32;
/// Most environment variables or headers one server may set.
pub const MAX_SETTINGS: usize = 64;

/// Environment variables the sandbox sets itself; a server may not replace them, or its
/// process would lose its home or its way out through the egress proxy.
pub const RESERVED_ENV: &[&str] = &[
    "HOME",
    "PATH",
    "LANG",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "NODE_USE_ENV_PROXY",
];

/// Headers the gateway sets itself on every request to a remote server.
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "accept",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// How the gateway reaches a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTransport {
    /// A command run in a sandbox, speaking MCP on its stdin and stdout.
    Stdio {
        /// The program to run.
        command: String,
        /// Its arguments, passed as given (no shell).
        args: Vec<String>,
        /// An absolute directory to run it in, or the sandbox's default.
        working_dir: Option<String>,
        /// Environment variables, values possibly referencing variables as `${NAME}`.
        env: BTreeMap<String, String>,
    },
    /// A remote server speaking Streamable HTTP.
    StreamableHttp {
        /// Its MCP endpoint (`http` or `https`).
        url: String,
        /// Headers sent on every request (an API key, say), values possibly referencing
        /// variables as `${NAME}`.
        headers: BTreeMap<String, String>,
    },
}

impl ServerTransport {
    fn kind(&self) -> &'static str {
        match self {
            ServerTransport::Stdio { .. } => "stdio",
            ServerTransport::StreamableHttp { .. } => "streamable_http",
        }
    }
}

/// How a server's tools, resources and prompts are named on the organization's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// As `server__tool`: the default, and the only choice when several servers are enabled.
    Prefixed,
    /// As `tool` alone: allowed only while this is the organization's only enabled server.
    Unprefixed,
}

impl Exposure {
    /// The stable name, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Exposure::Prefixed => "prefixed",
            Exposure::Unprefixed => "unprefixed",
        }
    }
}

/// A registered server as the store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its id.
    pub id: ServerId,
    /// Its name, unique in the organization; the prefix of its canonical tool names.
    pub name: String,
    /// How it is reached.
    pub transport: ServerTransport,
    /// How its tools are named.
    pub exposure: Exposure,
    /// Whether sessions use it.
    pub enabled: bool,
    /// Whether an admin allowed this remote server on a private or loopback address (the egress
    /// guard refuses such addresses otherwise). Meaningless for stdio servers.
    pub internal: bool,
    /// The package its program comes from (stdio servers only), installed into its image.
    pub package: Option<Package>,
    /// Its install image, present exactly when it has a package.
    pub image: Option<ImageStatus>,
    /// When it was registered (Unix seconds).
    pub created_at: i64,
    /// When it last changed (Unix seconds).
    pub updated_at: i64,
    /// 1 when created, plus one for every update.
    pub revision: i64,
}

/// A server to register. No `Default`: every choice is the caller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServer {
    /// See [`Server::name`].
    pub name: String,
    /// See [`Server::transport`].
    pub transport: ServerTransport,
    /// See [`Server::exposure`].
    pub exposure: Exposure,
    /// See [`Server::enabled`].
    pub enabled: bool,
    /// See [`Server::internal`].
    pub internal: bool,
    /// See [`Server::package`].
    pub package: Option<Package>,
}

/// A partial update: each `Some` replaces that field, each `None` keeps it. The transport is
/// replaced whole, since a command's arguments mean nothing without the command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new transport.
    pub transport: Option<ServerTransport>,
    /// A new exposure.
    pub exposure: Option<Exposure>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Allow or refuse a private address.
    pub internal: Option<bool>,
    /// Set (`Some(Some(_))`) or remove (`Some(None)`) the package.
    pub package: Option<Option<Package>>,
}

/// The server query with a tail appended; a macro so the SQL stays a `&'static str`.
macro_rules! select_servers {
    ($tail:literal) => {
        concat!(
            "SELECT s.id, s.name, s.transport, s.command, s.args, s.working_dir, s.url, s.exposure, \
             s.enabled, s.internal, s.created_at, s.updated_at, s.revision, s.package_kind, s.env, s.headers, \
             s.package_spec, i.generation AS image_generation, i.state AS image_state, \
             i.phase AS image_phase, i.progress AS image_progress, i.error AS image_error, \
             i.size_bytes AS image_size_bytes, i.installed_at AS image_installed_at, \
             i.updated_at AS image_updated_at \
             FROM servers s LEFT JOIN server_images i ON i.server_id = s.id AND i.org_id = s.org_id \
             WHERE s.org_id = $1",
            $tail
        )
    };
}

impl Server {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::corrupt("servers", reason);
        let transport = match row.try_get::<String, _>("transport")?.as_str() {
            "stdio" => {
                let args: Option<String> = row.try_get("args")?;
                let args =
                    serde_json::from_str(&args.ok_or_else(|| corrupt("stdio without args"))?)
                        .map_err(|_| corrupt("args are not a JSON list of strings"))?;
                ServerTransport::Stdio {
                    command: row
                        .try_get::<Option<String>, _>("command")?
                        .ok_or_else(|| corrupt("stdio without a command"))?,
                    args,
                    working_dir: row.try_get("working_dir")?,
                    env: settings_from_row(row, "env")?,
                }
            }
            "streamable_http" => ServerTransport::StreamableHttp {
                url: row
                    .try_get::<Option<String>, _>("url")?
                    .ok_or_else(|| corrupt("streamable_http without a url"))?,
                headers: settings_from_row(row, "headers")?,
            },
            other => return Err(corrupt(&format!("unknown transport {other:?}"))),
        };
        let exposure = match row.try_get::<String, _>("exposure")?.as_str() {
            "prefixed" => Exposure::Prefixed,
            "unprefixed" => Exposure::Unprefixed,
            other => return Err(corrupt(&format!("unknown exposure {other:?}"))),
        };
        Ok(Server {
            id: ServerId::from_untrusted(row.try_get("id")?),
            name: row.try_get("name")?,
            transport,
            exposure,
            enabled: flag(row, "enabled")?,
            internal: flag(row, "internal")?,
            package: package_from_row(row)?,
            image: image_from_row(row)?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            revision: row.try_get("revision")?,
        })
    }
}

/// Reads a JSON object column of settings; NULL (servers saved before migration 0004) is none.
fn settings_from_row(row: &AnyRow, column: &str) -> Result<BTreeMap<String, String>, StoreError> {
    match row.try_get::<Option<String>, _>(column)? {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(&text).map_err(|_| {
            StoreError::corrupt(
                "servers",
                format!("{column} is not a JSON object of strings"),
            )
        }),
    }
}

/// Every `${NAME}` reference in a transport's settings, with where it is (`args`, `env` or
/// `headers`). Settings that do not parse have been refused on save, so they hold none.
pub(crate) fn references(transport: &ServerTransport) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let mut scan = |place: &'static str, text: &str| {
        if let Ok(template) = Template::parse(text) {
            found.extend(template.references().map(|name| (place, name.to_owned())));
        }
    };
    match transport {
        ServerTransport::Stdio { args, env, .. } => {
            args.iter().for_each(|arg| scan("args", arg));
            env.values().for_each(|value| scan("env", value));
        }
        ServerTransport::StreamableHttp { headers, .. } => {
            headers.values().for_each(|value| scan("headers", value));
        }
    }
    found
}

/// Reads a 0-or-1 column (flags are BIGINT on both backends; see migration 0002).
fn flag(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    match row.try_get::<i64, _>(column)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(StoreError::corrupt(
            "servers",
            format!("{column} is {other}, not 0 or 1"),
        )),
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks a server name against `^[a-z0-9][a-z0-9-]{0,31}$`.
pub fn validate_server_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(invalid(
            "name",
            "use 1 to 32 lower-case letters, digits and dashes, starting with a letter or digit \
             (no `_`, so a name never holds `__`, the separator of server__tool names)",
        ))
    }
}

fn no_nul(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(invalid(field, "must not contain a NUL byte"));
    }
    Ok(())
}

fn validate_transport(transport: &ServerTransport) -> Result<(), StoreError> {
    match transport {
        ServerTransport::Stdio {
            command,
            args,
            working_dir,
            env,
        } => {
            validate_env(env)?;
            if command.trim().is_empty() {
                return Err(invalid("command", "must not be empty"));
            }
            if command.len() > MAX_ARG_BYTES {
                return Err(invalid(
                    "command",
                    format!("is longer than {MAX_ARG_BYTES} bytes"),
                ));
            }
            no_nul("command", command)?;
            if args.len() > MAX_ARGS {
                return Err(invalid(
                    "args",
                    format!("{} arguments; the limit is {MAX_ARGS}", args.len()),
                ));
            }
            for (index, arg) in args.iter().enumerate() {
                Template::parse(arg)
                    .map_err(|reason| invalid("args", format!("argument {index}: {reason}")))?;
                if arg.len() > MAX_ARG_BYTES {
                    return Err(invalid(
                        "args",
                        format!("argument {index} is longer than {MAX_ARG_BYTES} bytes"),
                    ));
                }
                if arg.contains('\0') {
                    return Err(invalid(
                        "args",
                        format!("argument {index} contains a NUL byte"),
                    ));
                }
            }
            if let Some(dir) = working_dir {
                no_nul("working_dir", dir)?;
                if !dir.starts_with('/') || dir.len() > MAX_ARG_BYTES {
                    return Err(invalid(
                        "working_dir",
                        format!(
                            "must be an absolute path (starting with /) of at most {MAX_ARG_BYTES} bytes"
                        ),
                    ));
                }
            }
        }
        ServerTransport::StreamableHttp { url, headers } => {
            validate_url(url)?;
            validate_headers(headers)?;
        }
    }
    Ok(())
}

fn validate_env(env: &BTreeMap<String, String>) -> Result<(), StoreError> {
    if env.len() > MAX_SETTINGS {
        return Err(invalid(
            "env",
            format!("{} variables; the limit is {MAX_SETTINGS}", env.len()),
        ));
    }
    for (name, value) in env {
        let valid_name = !name.is_empty()
            && name.len() <= 128
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid_name {
            return Err(invalid(
                "env",
                format!(
                    "{name:?} is not a variable name: use A-Z, a-z, 0-9 and _, not starting with a digit"
                ),
            ));
        }
        if RESERVED_ENV
            .iter()
            .any(|reserved| reserved.eq_ignore_ascii_case(name))
        {
            return Err(invalid(
                "env",
                format!("{name} is set by the sandbox and cannot be replaced"),
            ));
        }
        if value.len() > MAX_ARG_BYTES || value.contains('\0') {
            return Err(invalid(
                "env",
                format!("the value of {name} must be at most {MAX_ARG_BYTES} bytes, without NUL"),
            ));
        }
        Template::parse(value).map_err(|reason| invalid("env", format!("{name}: {reason}")))?;
    }
    Ok(())
}

fn validate_headers(headers: &BTreeMap<String, String>) -> Result<(), StoreError> {
    if headers.len() > MAX_SETTINGS {
        return Err(invalid(
            "headers",
            format!("{} headers; the limit is {MAX_SETTINGS}", headers.len()),
        ));
    }
    for (name, value) in headers {
        // RFC 9110 token characters.
        let valid_name = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(invalid("headers", format!("{name:?} is not a header name")));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(invalid(
                "headers",
                format!("{name} is set by the gateway and cannot be replaced"),
            ));
        }
        if value.len() > MAX_ARG_BYTES
            || !value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(invalid(
                "headers",
                format!(
                    "the value of {name} must be at most {MAX_ARG_BYTES} bytes of visible ASCII, \
                     spaces and tabs"
                ),
            ));
        }
        Template::parse(value).map_err(|reason| invalid("headers", format!("{name}: {reason}")))?;
    }
    Ok(())
}

fn validate_url(text: &str) -> Result<(), StoreError> {
    no_nul("url", text)?;
    if text.len() > MAX_URL_BYTES {
        return Err(invalid(
            "url",
            format!("is longer than {MAX_URL_BYTES} bytes"),
        ));
    }
    let url =
        url::Url::parse(text).map_err(|error| invalid("url", format!("is not a URL ({error})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("url", "must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", "must name a host"));
    }
    // A password in the URL would be shown by every read of the server (S15).
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "url",
            "must not hold a user name or password; keep credentials in a password variable",
        ));
    }
    Ok(())
}

fn validate(server: &NewServer) -> Result<(), StoreError> {
    validate_server_name(&server.name)?;
    validate_transport(&server.transport)?;
    if server.package.is_some() && !matches!(server.transport, ServerTransport::Stdio { .. }) {
        return Err(invalid(
            "package",
            "only a stdio server runs from a package; a remote server has none",
        ));
    }
    Ok(())
}

/// The columns a transport is stored in: (command, args JSON, working_dir, url, env JSON,
/// headers JSON).
type TransportColumns = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn transport_columns(transport: &ServerTransport) -> Result<TransportColumns, StoreError> {
    Ok(match transport {
        ServerTransport::Stdio {
            command,
            args,
            working_dir,
            env,
        } => (
            Some(command.clone()),
            Some(
                serde_json::to_string(args)
                    .map_err(|_| invalid("args", "cannot be written as JSON"))?,
            ),
            working_dir.clone(),
            None,
            Some(
                serde_json::to_string(env)
                    .map_err(|_| invalid("env", "cannot be written as JSON"))?,
            ),
            None,
        ),
        ServerTransport::StreamableHttp { url, headers } => (
            None,
            None,
            None,
            Some(url.clone()),
            None,
            Some(
                serde_json::to_string(headers)
                    .map_err(|_| invalid("headers", "cannot be written as JSON"))?,
            ),
        ),
    })
}

/// Enforces the exposure rule against the organization's other enabled servers: an unprefixed
/// server must be the only enabled one, whichever of the two is being changed. Runs under the
/// organization lock, so two concurrent changes cannot both pass.
async fn check_exposure(
    tx: &mut Transaction<'_, Any>,
    scope: &OrgScope,
    id: &ServerId,
    server: &NewServer,
) -> Result<(), StoreError> {
    if !server.enabled {
        return Ok(());
    }
    let others = sqlx::query(
        "SELECT name, exposure FROM servers WHERE org_id = $1 AND id <> $2 AND enabled = $3 ORDER BY name",
    )
    .bind(scope.org_id().as_str())
    .bind(id.as_str())
    .bind(1_i64)
    .fetch_all(&mut **tx)
    .await?;
    if others.is_empty() {
        return Ok(());
    }
    if server.exposure == Exposure::Unprefixed {
        return Err(invalid(
            "exposure",
            format!(
                "a server may be unprefixed only while it is the organization's only enabled \
                 server, and {} other server(s) are enabled; keep it prefixed or disable the others",
                others.len()
            ),
        ));
    }
    for other in &others {
        if other.try_get::<String, _>("exposure")? == Exposure::Unprefixed.as_str() {
            let name: String = other.try_get("name")?;
            return Err(invalid(
                "enabled",
                format!(
                    "server {name:?} is enabled and unprefixed, so it must stay the organization's \
                     only enabled server; make it prefixed or disable it first"
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) async fn fetch_server(
    executor: impl sqlx::Executor<'_, Database = Any>,
    scope: &OrgScope,
    id: &ServerId,
) -> Result<Server, StoreError> {
    let row = sqlx::query(select_servers!(" AND s.id = $2"))
        .bind(scope.org_id().as_str())
        .bind(id.as_str())
        .fetch_optional(executor)
        .await?
        .ok_or(StoreError::NotFound("server"))?;
    Server::from_row(&row)
}

/// The package columns: (kind, spec).
fn package_columns(package: Option<&Package>) -> (Option<&'static str>, Option<String>) {
    match package {
        Some(package) => (
            Some(package.kind().as_str()),
            Some(package.spec().to_owned()),
        ),
        None => (None, None),
    }
}

fn name_taken(name: &str) -> impl FnOnce() -> String + '_ {
    move || format!("a server named {name:?} already exists")
}

impl Store {
    /// Every server of the scoped organization, by name.
    pub async fn list_servers(&self, scope: &OrgScope) -> Result<Vec<Server>, StoreError> {
        let rows = sqlx::query(select_servers!(" ORDER BY s.name"))
            .bind(scope.org_id().as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Server::from_row).collect()
    }

    /// One server of the scoped organization; another organization's server is not found (S8).
    pub async fn server(&self, scope: &OrgScope, id: &ServerId) -> Result<Server, StoreError> {
        fetch_server(&self.pool, scope, id).await
    }

    /// Registers a server after checking its name, transport and exposure; a package starts the
    /// first generation of its image, pending.
    pub async fn create_server(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        server: NewServer,
    ) -> Result<Server, StoreError> {
        validate(&server)?;
        let (command, args, working_dir, url, env, headers) = transport_columns(&server.transport)?;
        let (package_kind, package_spec) = package_columns(server.package.as_ref());
        let id = ServerId::random();
        let now = unix_now();
        let mut tx = self.pool.begin().await?;
        crate::members::lock_organization(&mut tx, scope).await?;
        check_exposure(&mut tx, scope, &id, &server).await?;
        // A new server has no variables yet, so any reference is refused here, naming it.
        crate::variables::check_references(&mut tx, scope, &id, &server.transport).await?;
        sqlx::query(
            "INSERT INTO servers (id, org_id, name, transport, command, args, working_dir, url, exposure, \
             enabled, internal, created_at, updated_at, revision, package_kind, package_spec, image_generation, \
             env, headers) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1, $13, $14, 0, $15, $16)",
        )
        .bind(id.as_str())
        .bind(scope.org_id().as_str())
        .bind(server.name.as_str())
        .bind(server.transport.kind())
        .bind(command)
        .bind(args)
        .bind(working_dir)
        .bind(url)
        .bind(server.exposure.as_str())
        .bind(i64::from(server.enabled))
        .bind(i64::from(server.internal))
        .bind(now)
        .bind(package_kind)
        .bind(package_spec)
        .bind(env)
        .bind(headers)
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::error::conflict_on_unique(e, name_taken(&server.name)))?;
        if server.package.is_some() {
            crate::images::start_generation(&mut tx, scope, &id).await?;
        }
        let created = fetch_server(&mut *tx, scope, &id).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Changes the fields `update` names, checks the result as a whole, and bumps the revision.
    /// A different package starts a new generation of the image; no package drops it.
    pub async fn update_server(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        id: &ServerId,
        update: ServerUpdate,
    ) -> Result<Server, StoreError> {
        let mut tx = self.pool.begin().await?;
        crate::members::lock_organization(&mut tx, scope).await?;
        let current = fetch_server(&mut *tx, scope, id).await?;
        let next = NewServer {
            name: update.name.unwrap_or(current.name),
            transport: update.transport.unwrap_or(current.transport),
            exposure: update.exposure.unwrap_or(current.exposure),
            enabled: update.enabled.unwrap_or(current.enabled),
            internal: update.internal.unwrap_or(current.internal),
            package: update.package.unwrap_or_else(|| current.package.clone()),
        };
        validate(&next)?;
        check_exposure(&mut tx, scope, id, &next).await?;
        crate::variables::check_references(&mut tx, scope, id, &next.transport).await?;
        let (command, args, working_dir, url, env, headers) = transport_columns(&next.transport)?;
        let (package_kind, package_spec) = package_columns(next.package.as_ref());
        sqlx::query(
            "UPDATE servers SET name = $1, transport = $2, command = $3, args = $4, working_dir = $5, \
             url = $6, exposure = $7, enabled = $8, internal = $9, updated_at = $10, revision = revision + 1, \
             package_kind = $13, package_spec = $14, env = $15, headers = $16 \
             WHERE org_id = $11 AND id = $12",
        )
        .bind(next.name.as_str())
        .bind(next.transport.kind())
        .bind(command)
        .bind(args)
        .bind(working_dir)
        .bind(url)
        .bind(next.exposure.as_str())
        .bind(i64::from(next.enabled))
        .bind(i64::from(next.internal))
        .bind(unix_now())
        .bind(scope.org_id().as_str())
        .bind(id.as_str())
        .bind(package_kind)
        .bind(package_spec)
        .bind(env)
        .bind(headers)
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::error::conflict_on_unique(e, name_taken(&next.name)))?;
        match (&current.package, &next.package) {
            (before, Some(after)) if before.as_ref() != Some(after) => {
                crate::images::start_generation(&mut tx, scope, id).await?;
            }
            (Some(_), None) => crate::images::drop_image(&mut tx, scope, id).await?,
            _ => {}
        }
        let updated = fetch_server(&mut *tx, scope, id).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Deletes a server and, by cascade in the same statement, everything stored for it: its
    /// variables and files, its image's state (S19). Its image directory and running sandboxes
    /// are the gateway's to remove.
    pub async fn delete_server(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        id: &ServerId,
    ) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM servers WHERE org_id = $1 AND id = $2")
            .bind(scope.org_id().as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound("server"));
        }
        Ok(())
    }
}
