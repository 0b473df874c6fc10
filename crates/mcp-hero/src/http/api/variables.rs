//! `/api/v1/servers/{server_id}/variables` and `/files`: a server's variables (S9, S12, S15).
//!
//! Strings come back as stored; passwords and files are sealed and come back as metadata only
//! (name, type, a last-4 preview for long passwords, a file's path and size, times). Files are
//! uploaded as `multipart/form-data` and injected into the server's sandbox from memory. Only
//! owners and admins read or change variables: even their names and string values describe how
//! a server is reached. Every change reconnects the server in live sessions.

use auth::{ManageServers, authorize};
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::StatusCode;
use secrecy::{SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use store::{ServerId, VariableKind, VariableMeta, VariableValue};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::http::AppState;
use crate::http::api::servers::server_changed;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Caller};

/// The largest upload body the files routes accept: a file at the limit plus its form fields.
pub const MAX_UPLOAD_BODY_BYTES: usize = store::MAX_FILE_BYTES + 64 * 1024;

/// A variable's type.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VariableType {
    /// Readable configuration.
    String,
    /// A secret, sealed and never returned.
    Password,
    /// A file, sealed and never returned; upload it to `/files`.
    File,
}

impl From<VariableKind> for VariableType {
    fn from(kind: VariableKind) -> Self {
        match kind {
            VariableKind::String => VariableType::String,
            VariableKind::Password => VariableType::Password,
            VariableKind::File => VariableType::File,
        }
    }
}

/// A variable as the API shows it: never a password's or file's contents.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariableView {
    /// Its name: 1 to 64 of `A-Z`, `0-9`, `_`, referenced as `${NAME}`.
    name: String,
    #[serde(rename = "type")]
    kind: VariableType,
    /// A string variable's value; absent for passwords and files.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    /// `…` and the last four characters of a password of 12 or more characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<String>,
    /// Where a file appears inside the server's sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// The value's size in bytes.
    size_bytes: i64,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds; when its value last changed.
    updated_at: i64,
    /// Shown when a password was just saved that the log redactor can't fully cover (under 8
    /// bytes: not matched in base64, and matched inside unrelated text).
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<&'static str>,
}

impl From<VariableMeta> for VariableView {
    fn from(meta: VariableMeta) -> Self {
        VariableView {
            name: meta.name,
            kind: meta.kind.into(),
            value: meta.string_value,
            preview: meta.preview,
            path: meta.file_path,
            size_bytes: meta.size_bytes,
            created_at: meta.created_at,
            updated_at: meta.updated_at,
            warning: None,
        }
    }
}

/// Create a string or password variable.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVariableRequest {
    /// 1 to 64 of `A-Z`, `0-9`, `_`, not starting with a digit; unique on the server.
    name: String,
    /// `string` or `password` (files are uploaded to `/files`).
    #[serde(rename = "type")]
    kind: VariableType,
    /// At most 64 KiB.
    value: String,
}

/// Replace a string or password variable's value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceVariableRequest {
    /// Must be the variable's current type.
    #[serde(rename = "type")]
    kind: VariableType,
    /// At most 64 KiB.
    value: String,
}

/// What the redactor says of a password about to be saved.
fn redaction_warning(kind: VariableType, value: &str) -> Option<&'static str> {
    match kind {
        VariableType::Password => redact::coverage(value.as_bytes()).warning(),
        VariableType::String | VariableType::File => None,
    }
}

/// The JSON routes take strings and passwords; the value moves into a secret right away.
fn json_value(kind: VariableType, value: String) -> Result<VariableValue, ApiError> {
    match kind {
        VariableType::String => Ok(VariableValue::String(value)),
        VariableType::Password => Ok(VariableValue::Password(SecretString::from(value))),
        VariableType::File => Err(ApiError::BadRequest(
            "invalid type: files are uploaded as multipart/form-data to \
             /api/v1/servers/{server_id}/files"
                .into(),
        )),
    }
}

/// A server's variables, by name (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/servers/{server_id}/variables", tag = "variables", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    responses(
        (status = 200, body = [VariableView]), (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server in this organization")
    )
)]
pub async fn list_variables(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
) -> Result<Json<Vec<VariableView>>, ApiError> {
    authorize::<ManageServers>(caller.role)?;
    let variables = state
        .store
        .list_variables(&caller.scope, &ServerId::from_untrusted(&server_id))
        .await?;
    Ok(Json(
        variables.into_iter().map(VariableView::from).collect(),
    ))
}

/// Add a string or password variable to a server (owners and admins).
#[utoipa::path(
    post, path = "/api/v1/servers/{server_id}/variables", tag = "variables", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    request_body = CreateVariableRequest,
    responses(
        (status = 201, body = VariableView), (status = 400, description = "A field breaks a rule; the message names it"),
        (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server in this organization"), (status = 409, description = "Name taken")
    )
)]
pub async fn create_variable(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
    ApiJson(request): ApiJson<CreateVariableRequest>,
) -> Result<(StatusCode, Json<VariableView>), ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server = ServerId::from_untrusted(&server_id);
    let warning = redaction_warning(request.kind, &request.value);
    let value = json_value(request.kind, request.value)?;
    state
        .store
        .create_variable(&caller.scope, &permit, &server, &request.name, value)
        .await?;
    server_changed(&state, &caller, server.clone());
    let mut view = VariableView::from(
        state
            .store
            .variable(&caller.scope, &server, &request.name)
            .await?,
    );
    view.warning = warning;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One variable (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/servers/{server_id}/variables/{name}", tag = "variables", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id"), ("name" = String, Path, description = "The variable's name")),
    responses(
        (status = 200, body = VariableView), (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server or variable")
    )
)]
pub async fn get_variable(
    State(state): State<AppState>,
    caller: Caller,
    Path((server_id, name)): Path<(String, String)>,
) -> Result<Json<VariableView>, ApiError> {
    authorize::<ManageServers>(caller.role)?;
    let server = ServerId::from_untrusted(&server_id);
    // An unknown server answers 404 for the server, not the variable.
    state.store.server(&caller.scope, &server).await?;
    let view = state.store.variable(&caller.scope, &server, &name).await?;
    Ok(Json(view.into()))
}

/// Replace a string or password variable's value (owners and admins).
#[utoipa::path(
    put, path = "/api/v1/servers/{server_id}/variables/{name}", tag = "variables", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id"), ("name" = String, Path, description = "The variable's name")),
    request_body = ReplaceVariableRequest,
    responses(
        (status = 200, body = VariableView), (status = 400, description = "A field breaks a rule; the message names it"),
        (status = 403, description = "Role may not manage servers"), (status = 404, description = "No such server or variable")
    )
)]
pub async fn replace_variable(
    State(state): State<AppState>,
    caller: Caller,
    Path((server_id, name)): Path<(String, String)>,
    ApiJson(request): ApiJson<ReplaceVariableRequest>,
) -> Result<Json<VariableView>, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server = ServerId::from_untrusted(&server_id);
    let warning = redaction_warning(request.kind, &request.value);
    let value = json_value(request.kind, request.value)?;
    state
        .store
        .replace_variable(&caller.scope, &permit, &server, &name, value)
        .await?;
    server_changed(&state, &caller, server.clone());
    let mut view = VariableView::from(state.store.variable(&caller.scope, &server, &name).await?);
    view.warning = warning;
    Ok(Json(view))
}

/// Delete a variable or file no setting of the server references (owners and admins).
#[utoipa::path(
    delete, path = "/api/v1/servers/{server_id}/variables/{name}", tag = "variables", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id"), ("name" = String, Path, description = "The variable's name")),
    responses(
        (status = 204, description = "Deleted; its sealed bytes are overwritten"),
        (status = 403, description = "Role may not manage servers"), (status = 404, description = "No such server or variable"),
        (status = 409, description = "Still referenced; the message says where")
    )
)]
pub async fn delete_variable(
    State(state): State<AppState>,
    caller: Caller,
    Path((server_id, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server = ServerId::from_untrusted(&server_id);
    state
        .store
        .delete_variable(&caller.scope, &permit, &server, &name)
        .await?;
    server_changed(&state, &caller, server);
    Ok(StatusCode::NO_CONTENT)
}

/// The form of a file upload, as documented for OpenAPI (the handler reads it field by field).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FileUpload {
    /// The variable's name (create only).
    name: Option<String>,
    /// The absolute path inside the sandbox, beneath `/home/mcp/` or `/run/secrets/`
    /// (required to create; replacing keeps the old one when absent).
    path: Option<String>,
    /// The file's contents, at most 1 MiB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// What an upload form held.
struct UploadForm {
    name: Option<String>,
    path: Option<String>,
    contents: Option<SecretBox<[u8]>>,
}

/// Reads an upload form once the caller may change the server and it exists (so nothing is
/// read for a server of another organization); the file's bytes go straight into a secret,
/// and anything unexpected is refused by name.
async fn read_upload(
    state: &AppState,
    caller: &Caller,
    server: &ServerId,
    request: Request,
) -> Result<UploadForm, ApiError> {
    state.store.server(&caller.scope, server).await?;
    let bad = |message: String| ApiError::BadRequest(message);
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|error| bad(format!("invalid form: {}", error.body_text())))?;
    let mut upload = UploadForm {
        name: None,
        path: None,
        contents: None,
    };
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|error| bad(format!("invalid form: {}", error.body_text())))?
    {
        let field_name = field.name().unwrap_or_default().to_owned();
        match field_name.as_str() {
            "name" | "path" => {
                let text = field
                    .text()
                    .await
                    .map_err(|error| bad(format!("invalid {field_name}: {}", error.body_text())))?;
                if field_name == "name" {
                    upload.name = Some(text);
                } else {
                    upload.path = Some(text);
                }
            }
            "file" => {
                let mut contents = Zeroizing::new(Vec::new());
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|error| bad(format!("invalid file: {}", error.body_text())))?
                {
                    if contents.len() + chunk.len() > store::MAX_FILE_BYTES {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "the file is over the {}-byte limit",
                            store::MAX_FILE_BYTES
                        )));
                    }
                    contents.extend_from_slice(&chunk);
                }
                upload.contents = Some(SecretBox::new(contents.to_vec().into_boxed_slice()));
            }
            other => {
                return Err(bad(format!(
                    "invalid form: unknown field {other:?}; expected name, path and file"
                )));
            }
        }
    }
    Ok(upload)
}

/// Checks that the sandbox can put a file at `path`.
fn check_path(path: &str) -> Result<(), ApiError> {
    store::validate_file_path(path)?;
    sandbox::plan::inside::check_file_path(path)
        .map_err(|reason| ApiError::BadRequest(format!("invalid path: {reason}")))
}

/// Upload a file variable (owners and admins): `multipart/form-data` with `name`, `path` and
/// `file`. The file is sealed at once and injected into each session's sandbox from memory.
#[utoipa::path(
    post, path = "/api/v1/servers/{server_id}/files", tag = "variables", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id")),
    request_body(content = FileUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = VariableView), (status = 400, description = "A field breaks a rule; the message names it"),
        (status = 403, description = "Role may not manage servers"), (status = 404, description = "No such server in this organization"),
        (status = 409, description = "Name or path taken"), (status = 413, description = "The file is over 1 MiB")
    )
)]
pub async fn upload_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<VariableView>), ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server = ServerId::from_untrusted(&server_id);
    let upload = read_upload(&state, &caller, &server, request).await?;
    let name = upload
        .name
        .ok_or_else(|| ApiError::BadRequest("invalid name: the form has no name field".into()))?;
    let path = upload
        .path
        .ok_or_else(|| ApiError::BadRequest("invalid path: the form has no path field".into()))?;
    let contents = upload
        .contents
        .ok_or_else(|| ApiError::BadRequest("invalid file: the form has no file field".into()))?;
    check_path(&path)?;
    state
        .store
        .create_variable(
            &caller.scope,
            &permit,
            &server,
            &name,
            VariableValue::File { path, contents },
        )
        .await?;
    server_changed(&state, &caller, server.clone());
    let view = state.store.variable(&caller.scope, &server, &name).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// Replace a file variable's contents, and its path when the form has one (owners and admins).
#[utoipa::path(
    put, path = "/api/v1/servers/{server_id}/files/{name}", tag = "variables", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id"), ("name" = String, Path, description = "The variable's name")),
    request_body(content = FileUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, body = VariableView), (status = 400, description = "A field breaks a rule; the message names it"),
        (status = 403, description = "Role may not manage servers"), (status = 404, description = "No such server or variable"),
        (status = 409, description = "Path taken"), (status = 413, description = "The file is over 1 MiB")
    )
)]
pub async fn replace_file(
    State(state): State<AppState>,
    caller: Caller,
    Path((server_id, name)): Path<(String, String)>,
    request: Request,
) -> Result<Json<VariableView>, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let server = ServerId::from_untrusted(&server_id);
    let upload = read_upload(&state, &caller, &server, request).await?;
    if upload.name.is_some() {
        return Err(ApiError::BadRequest(
            "invalid name: the name is in the URL; the form takes path and file".into(),
        ));
    }
    let contents = upload
        .contents
        .ok_or_else(|| ApiError::BadRequest("invalid file: the form has no file field".into()))?;
    let path = match upload.path {
        Some(path) => path,
        None => state
            .store
            .variable(&caller.scope, &server, &name)
            .await?
            .file_path
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "invalid type: {name} is not a file variable; replace it with PUT \
                     /api/v1/servers/{{server_id}}/variables/{name}"
                ))
            })?,
    };
    check_path(&path)?;
    state
        .store
        .replace_variable(
            &caller.scope,
            &permit,
            &server,
            &name,
            VariableValue::File { path, contents },
        )
        .await?;
    server_changed(&state, &caller, server.clone());
    let view = state.store.variable(&caller.scope, &server, &name).await?;
    Ok(Json(view.into()))
}
