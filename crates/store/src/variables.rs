//! A server's variables: strings stored as given, passwords and files sealed by the vault (S9,
//! S12, S15), all deleted with their server (S19).
//!
//! A password's last-4 preview is sealed in its own column when the value is stored, so listing
//! metadata opens only those four characters, never the secret itself (S14). Values shorter than
//! [`PREVIEW_MIN_CHARS`] get no preview: four characters would give away too much of them.
//!
//! A server's arguments, environment and headers reference its variables as `${NAME}`
//! ([`crate::Template`]). Every change here runs under the organization lock and bumps the
//! server's revision, so live sessions reconnect with the new values, and a variable still
//! referenced cannot be deleted (the error names where it is used).

use auth::{ManageServers, Permit};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use vault::{RecordContext, SealedRecord};

use crate::servers::{Server, ServerTransport, fetch_server};
use crate::template::is_variable_name;
use crate::{OrgScope, ServerId, Store, StoreError, VariableId, unix_now};

/// Passwords shorter than this show no preview at all.
pub const PREVIEW_MIN_CHARS: usize = 12;
/// Largest string or password value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest file, in bytes: files are handed to sandboxes from memory.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most variables one server may have.
pub const MAX_VARIABLES_PER_SERVER: usize = 100;
/// Longest path a file variable may be injected at.
pub const MAX_FILE_PATH_BYTES: usize = 1024;

/// What a variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableKind {
    /// Plain configuration, readable back.
    String,
    /// A secret: sealed at rest, never returned.
    Password,
    /// A credential or configuration file: sealed at rest, never returned, injected at a path.
    File,
}

impl VariableKind {
    /// The stable name, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            VariableKind::String => "string",
            VariableKind::Password => "password",
            VariableKind::File => "file",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "string" => Ok(VariableKind::String),
            "password" => Ok(VariableKind::Password),
            "file" => Ok(VariableKind::File),
            other => Err(StoreError::corrupt(
                "variables",
                format!("unknown kind {other:?}"),
            )),
        }
    }
}

/// A variable's value as the caller hands it in; secrets stay in `secrecy` types until sealed.
pub enum VariableValue {
    /// A readable string.
    String(String),
    /// A password.
    Password(SecretString),
    /// A file's contents and the absolute path the server sees it at.
    File {
        /// Where inside the sandbox.
        path: String,
        /// The bytes.
        contents: SecretBox<[u8]>,
    },
}

impl std::fmt::Debug for VariableValue {
    #[expect(
        clippy::disallowed_methods,
        reason = "seals the value, checks it before sealing, or counts its bytes (S9)"
    )]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VariableValue::String(value) => f.debug_tuple("String").field(value).finish(),
            VariableValue::Password(_) => f.write_str("Password([REDACTED])"),
            VariableValue::File { path, contents } => f
                .debug_struct("File")
                .field("path", path)
                .field("bytes", &contents.expose_secret().len())
                .finish(),
        }
    }
}

impl VariableValue {
    fn kind(&self) -> VariableKind {
        match self {
            VariableValue::String(_) => VariableKind::String,
            VariableValue::Password(_) => VariableKind::Password,
            VariableValue::File { .. } => VariableKind::File,
        }
    }
}

/// A variable's metadata as the API may show it: never a password's or file's contents (S15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableMeta {
    /// Its id.
    pub id: VariableId,
    /// The server it belongs to.
    pub server_id: ServerId,
    /// Its name, unique on the server.
    pub name: String,
    /// Its kind.
    pub kind: VariableKind,
    /// The value of a string variable; always `None` for passwords and files.
    pub string_value: Option<String>,
    /// `…` and the last four characters of a long enough password; `None` otherwise.
    pub preview: Option<String>,
    /// Where a file variable appears inside the sandbox.
    pub file_path: Option<String>,
    /// The value's size in bytes.
    pub size_bytes: i64,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When its value last changed (Unix seconds).
    pub updated_at: i64,
}

/// A variable opened for one session start; the caller zeroizes it by dropping it (S14).
pub struct OpenedVariable {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: VariableKind,
    /// Its value (a string variable's too, so every reference resolves the same way).
    pub value: SecretBox<[u8]>,
    /// Where a file variable goes.
    pub file_path: Option<String>,
}

impl std::fmt::Debug for OpenedVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedVariable")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("file_path", &self.file_path)
            .finish_non_exhaustive()
    }
}

fn sealed_context<'a>(scope: &'a OrgScope, id: &'a str) -> RecordContext<'a> {
    RecordContext {
        table: "variables",
        column: "value_sealed",
        row_id: id,
        org_id: scope.org_id().as_str(),
    }
}

fn preview_context<'a>(scope: &'a OrgScope, id: &'a str) -> RecordContext<'a> {
    RecordContext {
        column: "preview_sealed",
        ..sealed_context(scope, id)
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn validate_name(name: &str) -> Result<(), StoreError> {
    if is_variable_name(name) {
        Ok(())
    } else {
        Err(invalid(
            "name",
            "use 1 to 64 of A-Z, 0-9 and _, not starting with a digit",
        ))
    }
}

/// Checks a file variable's path: absolute and normalized (no `.`, `..` or empty components),
/// so what the admin sees is where the file lands. Which directories the sandbox allows is the
/// sandbox's rule, checked by the API and again at every start.
pub fn validate_file_path(path: &str) -> Result<(), StoreError> {
    let normalized = path.starts_with('/')
        && !path.ends_with('/')
        && path
            .split('/')
            .skip(1)
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !normalized {
        return Err(invalid(
            "path",
            "must be an absolute, normalized file path (no `.`, `..`, `//` or trailing `/`)",
        ));
    }
    if path.len() > MAX_FILE_PATH_BYTES || path.contains('\0') {
        return Err(invalid(
            "path",
            format!("must be at most {MAX_FILE_PATH_BYTES} bytes, without NUL"),
        ));
    }
    Ok(())
}

#[expect(
    clippy::disallowed_methods,
    reason = "seals the value, checks it before sealing, or counts its bytes (S9)"
)]
fn validate_value(value: &VariableValue) -> Result<(), StoreError> {
    let (len, limit) = match value {
        VariableValue::String(text) => (text.len(), MAX_VALUE_BYTES),
        VariableValue::Password(secret) => (secret.expose_secret().len(), MAX_VALUE_BYTES),
        VariableValue::File { path, contents } => {
            validate_file_path(path)?;
            (contents.expose_secret().len(), MAX_FILE_BYTES)
        }
    };
    if len > limit {
        return Err(invalid(
            "value",
            format!("is {len} bytes; the limit is {limit}"),
        ));
    }
    if let VariableValue::String(text) = value
        && text.contains('\0')
    {
        return Err(invalid("value", "must not contain a NUL byte"));
    }
    if let VariableValue::Password(secret) = value {
        if secret.expose_secret().is_empty() {
            return Err(invalid("value", "a password must not be empty"));
        }
        if secret.expose_secret().contains('\0') {
            return Err(invalid("value", "must not contain a NUL byte"));
        }
    }
    Ok(())
}

/// The columns a value is stored in.
struct StoredValue {
    text: Option<String>,
    sealed: Option<Vec<u8>>,
    preview_sealed: Option<Vec<u8>>,
    file_path: Option<String>,
    size: i64,
}

fn password_preview(text: &str) -> Option<String> {
    let count = text.chars().count();
    (count >= PREVIEW_MIN_CHARS).then(|| {
        let last_four: String = text.chars().skip(count - 4).collect();
        format!("…{last_four}")
    })
}

/// The metadata query with a tail appended; a macro so the SQL stays a `&'static str`.
macro_rules! select_meta {
    ($tail:literal) => {
        concat!(
            "SELECT id, server_id, name, kind, value_text, preview_sealed, file_path, size_bytes, \
             created_at, updated_at FROM variables WHERE org_id = $1 AND server_id = $2",
            $tail
        )
    };
}

impl Store {
    #[expect(
        clippy::disallowed_methods,
        reason = "seals the value, checks it before sealing, or counts its bytes (S9)"
    )]
    fn store_value(
        &self,
        scope: &OrgScope,
        id: &str,
        value: &VariableValue,
    ) -> Result<StoredValue, StoreError> {
        Ok(match value {
            VariableValue::String(text) => StoredValue {
                text: Some(text.clone()),
                sealed: None,
                preview_sealed: None,
                file_path: None,
                size: len_i64(text.len()),
            },
            VariableValue::Password(secret) => {
                let plain = secret.expose_secret();
                let sealed = self
                    .vault
                    .seal(&sealed_context(scope, id), plain.as_bytes())?;
                let preview_sealed = password_preview(plain)
                    .map(|preview| {
                        self.vault
                            .seal(&preview_context(scope, id), preview.as_bytes())
                    })
                    .transpose()?;
                StoredValue {
                    text: None,
                    sealed: Some(sealed.into_bytes()),
                    preview_sealed: preview_sealed.map(SealedRecord::into_bytes),
                    file_path: None,
                    size: len_i64(plain.len()),
                }
            }
            VariableValue::File { path, contents } => {
                let sealed = self
                    .vault
                    .seal(&sealed_context(scope, id), contents.expose_secret())?;
                StoredValue {
                    text: None,
                    sealed: Some(sealed.into_bytes()),
                    preview_sealed: None,
                    file_path: Some(path.clone()),
                    size: len_i64(contents.expose_secret().len()),
                }
            }
        })
    }

    /// Adds a variable to a server; a taken name or file path is a conflict naming it.
    pub async fn create_variable(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        server_id: &ServerId,
        name: &str,
        value: VariableValue,
    ) -> Result<VariableMeta, StoreError> {
        validate_name(name)?;
        validate_value(&value)?;
        let id = VariableId::random();
        let stored = self.store_value(scope, id.as_str(), &value)?;
        let mut tx = self.pool.begin().await?;
        crate::members::lock_organization(&mut tx, scope).await?;
        fetch_server(&mut *tx, scope, server_id).await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM variables WHERE org_id = $1 AND server_id = $2",
        )
        .bind(scope.org_id().as_str())
        .bind(server_id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_VARIABLES_PER_SERVER {
            return Err(invalid(
                "name",
                format!("the server already has {MAX_VARIABLES_PER_SERVER} variables, the limit"),
            ));
        }
        if fetch_meta(&mut tx, scope, server_id, name).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "the server already has a variable named {name}"
            )));
        }
        check_path_free(&mut tx, scope, server_id, name, stored.file_path.as_deref()).await?;
        let now = unix_now();
        sqlx::query(
            "INSERT INTO variables (id, org_id, server_id, name, kind, value_text, value_sealed, preview_sealed, \
             file_path, size_bytes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(id.as_str())
        .bind(scope.org_id().as_str())
        .bind(server_id.as_str())
        .bind(name)
        .bind(value.kind().as_str())
        .bind(stored.text)
        .bind(stored.sealed)
        .bind(stored.preview_sealed)
        .bind(stored.file_path)
        .bind(stored.size)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            crate::error::conflict_on_unique(e, || {
                format!("the server already has a variable named {name} or a file at that path")
            })
        })?;
        bump_revision(&mut tx, scope, server_id).await?;
        let created = fetch_meta(&mut tx, scope, server_id, name)
            .await?
            .ok_or(StoreError::NotFound("variable"))?;
        tx.commit().await?;
        Ok(created)
    }

    /// Replaces a variable's value (and a file's path); its kind stays what it was, since the
    /// server's references were checked against that kind.
    pub async fn replace_variable(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        server_id: &ServerId,
        name: &str,
        value: VariableValue,
    ) -> Result<VariableMeta, StoreError> {
        validate_value(&value)?;
        let mut tx = self.pool.begin().await?;
        crate::members::lock_organization(&mut tx, scope).await?;
        fetch_server(&mut *tx, scope, server_id).await?;
        let current = fetch_meta(&mut tx, scope, server_id, name)
            .await?
            .ok_or(StoreError::NotFound("variable"))?;
        if current.kind != value.kind() {
            return Err(invalid(
                "type",
                format!(
                    "{name} is a {} variable; delete it and create it again to change its type",
                    current.kind.as_str()
                ),
            ));
        }
        let stored = self.store_value(scope, current.id.as_str(), &value)?;
        check_path_free(&mut tx, scope, server_id, name, stored.file_path.as_deref()).await?;
        sqlx::query(
            "UPDATE variables SET value_text = $1, value_sealed = $2, preview_sealed = $3, file_path = $4, \
             size_bytes = $5, updated_at = $6 WHERE org_id = $7 AND server_id = $8 AND name = $9",
        )
        .bind(stored.text)
        .bind(stored.sealed)
        .bind(stored.preview_sealed)
        .bind(stored.file_path)
        .bind(stored.size)
        .bind(unix_now())
        .bind(scope.org_id().as_str())
        .bind(server_id.as_str())
        .bind(name)
        .execute(&mut *tx)
        .await?;
        bump_revision(&mut tx, scope, server_id).await?;
        let replaced = fetch_meta(&mut tx, scope, server_id, name)
            .await?
            .ok_or(StoreError::NotFound("variable"))?;
        tx.commit().await?;
        Ok(replaced)
    }

    /// One variable's metadata.
    pub async fn variable(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        name: &str,
    ) -> Result<VariableMeta, StoreError> {
        let row = sqlx::query(select_meta!(" AND name = $3"))
            .bind(scope.org_id().as_str())
            .bind(server_id.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("variable"))?;
        self.variable_meta(scope, &row)
    }

    /// Every variable's metadata on a server, by name; another organization's server is not
    /// found (S8).
    pub async fn list_variables(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
    ) -> Result<Vec<VariableMeta>, StoreError> {
        fetch_server(&self.pool, scope, server_id).await?;
        let rows = sqlx::query(select_meta!(" ORDER BY name"))
            .bind(scope.org_id().as_str())
            .bind(server_id.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| self.variable_meta(scope, row))
            .collect()
    }

    /// Every variable of the organization's servers, without password previews: what the data
    /// plane needs to plan sessions (string values and file paths are not secret).
    pub async fn variables_for_plan(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<VariableMeta>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, server_id, name, kind, value_text, file_path, size_bytes, created_at, updated_at \
             FROM variables WHERE org_id = $1 ORDER BY server_id, name",
        )
        .bind(scope.org_id().as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(meta_without_preview).collect()
    }

    /// Opens the named variables of a server for one session start (S14): the caller hands them
    /// to the sandbox and drops them, which zeroizes them. A name that is not a variable of the
    /// server is an error naming it.
    pub async fn open_variables(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        names: &[&str],
    ) -> Result<Vec<OpenedVariable>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, kind, value_text, value_sealed, file_path FROM variables \
             WHERE org_id = $1 AND server_id = $2",
        )
        .bind(scope.org_id().as_str())
        .bind(server_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut opened = Vec::with_capacity(names.len());
        for name in names {
            let Some(row) = rows
                .iter()
                .find(|row| row.try_get::<String, _>("name").is_ok_and(|n| n == *name))
            else {
                return Err(invalid(
                    "variables",
                    format!("${{{name}}} is not a variable of this server"),
                ));
            };
            let kind = VariableKind::parse(&row.try_get::<String, _>("kind")?)?;
            let value = match kind {
                VariableKind::String => {
                    let text: String = row.try_get("value_text")?;
                    SecretBox::new(text.into_bytes().into_boxed_slice())
                }
                VariableKind::Password | VariableKind::File => {
                    let id: String = row.try_get("id")?;
                    let record = SealedRecord::from_bytes(row.try_get("value_sealed")?);
                    self.vault.open(&sealed_context(scope, &id), &record)?
                }
            };
            opened.push(OpenedVariable {
                name: (*name).to_owned(),
                kind,
                value,
                file_path: row.try_get("file_path")?,
            });
        }
        Ok(opened)
    }

    /// Deletes a variable no server setting references; its sealed bytes are overwritten on
    /// SQLite (`secure_delete`).
    pub async fn delete_variable(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        server_id: &ServerId,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        crate::members::lock_organization(&mut tx, scope).await?;
        let server = fetch_server(&mut *tx, scope, server_id).await?;
        if let Some(place) = referenced_in(&server, name) {
            return Err(StoreError::Conflict(format!(
                "{name} is still referenced in the server's {place}; remove the reference first"
            )));
        }
        let deleted =
            sqlx::query("DELETE FROM variables WHERE org_id = $1 AND server_id = $2 AND name = $3")
                .bind(scope.org_id().as_str())
                .bind(server_id.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound("variable"));
        }
        bump_revision(&mut tx, scope, server_id).await?;
        tx.commit().await?;
        Ok(())
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "opens only the sealed last-4 preview the API may show (S15)"
    )]
    fn variable_meta(&self, scope: &OrgScope, row: &AnyRow) -> Result<VariableMeta, StoreError> {
        let mut meta = meta_without_preview(row)?;
        if let Some(bytes) = row.try_get::<Option<Vec<u8>>, _>("preview_sealed")? {
            let opened = self.vault.open(
                &preview_context(scope, meta.id.as_str()),
                &SealedRecord::from_bytes(bytes),
            )?;
            meta.preview = Some(
                String::from_utf8(opened.expose_secret().to_vec())
                    .map_err(|_| StoreError::corrupt("variables", "preview is not UTF-8"))?,
            );
        }
        Ok(meta)
    }
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

async fn fetch_meta(
    tx: &mut Transaction<'_, Any>,
    scope: &OrgScope,
    server_id: &ServerId,
    name: &str,
) -> Result<Option<VariableMeta>, StoreError> {
    let row = sqlx::query(select_meta!(" AND name = $3"))
        .bind(scope.org_id().as_str())
        .bind(server_id.as_str())
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    // Metadata inside a transaction never needs the preview opened: callers that show it read
    // it again through `Store::variable`.
    row.as_ref().map(meta_without_preview).transpose()
}

/// A row's metadata without opening the sealed preview.
fn meta_without_preview(row: &AnyRow) -> Result<VariableMeta, StoreError> {
    Ok(VariableMeta {
        id: VariableId::from_untrusted(&row.try_get::<String, _>("id")?),
        server_id: ServerId::from_untrusted(row.try_get("server_id")?),
        name: row.try_get("name")?,
        kind: VariableKind::parse(&row.try_get::<String, _>("kind")?)?,
        string_value: row.try_get("value_text")?,
        preview: None,
        file_path: row.try_get("file_path")?,
        size_bytes: row.try_get("size_bytes")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Refuses a file path another variable of the server already uses.
async fn check_path_free(
    tx: &mut Transaction<'_, Any>,
    scope: &OrgScope,
    server_id: &ServerId,
    name: &str,
    path: Option<&str>,
) -> Result<(), StoreError> {
    let Some(path) = path else {
        return Ok(());
    };
    let holder: Option<String> = sqlx::query_scalar(
        "SELECT name FROM variables WHERE org_id = $1 AND server_id = $2 AND file_path = $3 AND name <> $4",
    )
    .bind(scope.org_id().as_str())
    .bind(server_id.as_str())
    .bind(path)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    match holder {
        Some(other) => Err(StoreError::Conflict(format!(
            "file variable {other} is already injected at {path}"
        ))),
        None => Ok(()),
    }
}

/// Bumps a server's revision, so every live session reconnects with the new values.
async fn bump_revision(
    tx: &mut Transaction<'_, Any>,
    scope: &OrgScope,
    server_id: &ServerId,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE servers SET revision = revision + 1, updated_at = $1 WHERE org_id = $2 AND id = $3",
    )
    .bind(unix_now())
    .bind(scope.org_id().as_str())
    .bind(server_id.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where a server's settings reference variable `name` (`args`, `env` or `headers`), if anywhere.
fn referenced_in(server: &Server, name: &str) -> Option<&'static str> {
    crate::servers::references(&server.transport)
        .into_iter()
        .find(|(_, referenced)| referenced == name)
        .map(|(place, _)| place)
}

/// Checks a transport's references against the server's variables: each must exist, a
/// password may not appear in arguments (every host user can read them in `/proc`), and a
/// file may not appear in headers (its value is its path inside the sandbox).
pub(crate) async fn check_references(
    tx: &mut Transaction<'_, Any>,
    scope: &OrgScope,
    server_id: &ServerId,
    transport: &ServerTransport,
) -> Result<(), StoreError> {
    let references = crate::servers::references(transport);
    if references.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query("SELECT name, kind FROM variables WHERE org_id = $1 AND server_id = $2")
        .bind(scope.org_id().as_str())
        .bind(server_id.as_str())
        .fetch_all(&mut **tx)
        .await?;
    let mut kinds = Vec::with_capacity(rows.len());
    for row in &rows {
        kinds.push((
            row.try_get::<String, _>("name")?,
            VariableKind::parse(&row.try_get::<String, _>("kind")?)?,
        ));
    }
    for (place, name) in references {
        let Some((_, kind)) = kinds.iter().find(|(known, _)| *known == name) else {
            return Err(invalid(
                place,
                format!(
                    "references ${{{name}}}, which is not a variable of this server; create the \
                     variable first"
                ),
            ));
        };
        match (place, kind) {
            ("args", VariableKind::Password) => {
                return Err(invalid(
                    "args",
                    format!(
                        "references password variable ${{{name}}}: a program's arguments are \
                         visible to every user of the host in /proc; pass it in env instead"
                    ),
                ));
            }
            ("headers", VariableKind::File) => {
                return Err(invalid(
                    "headers",
                    format!(
                        "references file variable ${{{name}}}; headers take strings and passwords"
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}
