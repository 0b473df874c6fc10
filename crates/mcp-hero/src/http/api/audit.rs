//! `/api/v1/audit`: the organization's audit trail (S6), for owners and admins (`ViewAudit`):
//! a page of events, newest first, with filters and a cursor, or the whole filtered set streamed
//! as JSON lines or CSV.
//!
//! Events hold who called which tool, prompt or resource of which server, when, how it ended,
//! how long it took and how big the request and answer were; never an argument value or any
//! result content (the data plane never records them). CSV fields that a spreadsheet would run
//! as a formula (a tool name is chosen by the client) are prefixed with `'`.

use std::borrow::Cow;
use std::fmt::Write as _;

use auth::{ViewAudit, authorize};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use store::{
    AuditCursor, AuditEvent, AuditFilter, AuditOutcome, MAX_AUDIT_PAGE, OrgScope, ServerId, Store,
    UserId,
};
use utoipa::{IntoParams, ToSchema};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::Caller;

/// Events per page when `limit` is not given.
const DEFAULT_PAGE: usize = 100;
/// Events read from the store per chunk of an export.
const EXPORT_CHUNK: usize = MAX_AUDIT_PAGE;

/// One audited call.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    id: String,
    /// When the call arrived, in Unix milliseconds.
    at_ms: i64,
    /// The member's user id.
    member: String,
    /// The member's email, while the user exists.
    member_email: Option<String>,
    /// The session's short log tag (matches the gateway log), not its id.
    session: String,
    /// The server the call went to; absent when the name matched no server.
    server_id: Option<String>,
    /// The server's current name.
    server_name: Option<String>,
    /// `tools/call`, `resources/read` or `prompts/get`.
    method: &'static str,
    /// The tool or prompt name as called, or the resource URI without query and fragment.
    target: String,
    /// `ok`, `error` (a JSON-RPC error or a tool result with `isError`), `denied` (tool rules;
    /// the client was told the name is unknown), `unknown`, `failed` (no answer from the
    /// server) or `cancelled` (by the client).
    outcome: &'static str,
    /// Why, in the gateway's words, when not `ok`.
    reason: Option<String>,
    /// From the request reaching the session to the answer, in microseconds.
    latency_us: i64,
    /// Size of the request's params as JSON.
    request_bytes: i64,
    /// Size of the answer as JSON.
    response_bytes: i64,
}

impl From<AuditEvent> for AuditEventView {
    fn from(event: AuditEvent) -> Self {
        AuditEventView {
            id: event.id,
            at_ms: event.at_ms,
            member: event.user.to_string(),
            member_email: event.email,
            session: event.session,
            server_id: event.server.map(|server| server.to_string()),
            server_name: event.server_name,
            method: event.method.as_str(),
            target: event.target,
            outcome: event.outcome.as_str(),
            reason: event.reason,
            latency_us: event.latency_us,
            request_bytes: event.request_bytes,
            response_bytes: event.response_bytes,
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageView {
    events: Vec<AuditEventView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    next_cursor: Option<String>,
}

/// Filters shared by the list and the export; each narrows, empty ones are ignored.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditListQuery {
    /// Only calls to this server (its id).
    server: Option<String>,
    /// Only calls by this member (their user id).
    member: Option<String>,
    /// Only calls of this tool or prompt name as called (`server__tool`), or this resource URI.
    tool: Option<String>,
    /// Only calls that ended so: ok, error, denied, unknown, failed, cancelled.
    outcome: Option<String>,
    /// Only calls at or after this time, in Unix seconds.
    #[param(value_type = Option<i64>)]
    since: Option<String>,
    /// Only calls before this time, in Unix seconds.
    #[param(value_type = Option<i64>)]
    until: Option<String>,
    /// Where to continue: `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
}

/// The export's format and filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditExportQuery {
    /// `jsonl` (one event per line, the list's JSON; the default) or `csv` (a header row,
    /// then one row per event).
    format: Option<String>,
    /// Only calls to this server (its id).
    server: Option<String>,
    /// Only calls by this member (their user id).
    member: Option<String>,
    /// Only calls of this tool or prompt name as called, or this resource URI.
    tool: Option<String>,
    /// Only calls that ended so: ok, error, denied, unknown, failed, cancelled.
    outcome: Option<String>,
    /// Only calls at or after this time, in Unix seconds.
    #[param(value_type = Option<i64>)]
    since: Option<String>,
    /// Only calls before this time, in Unix seconds.
    #[param(value_type = Option<i64>)]
    until: Option<String>,
}

/// A query parameter's value, unless absent or empty (`?server=` means no filter).
fn given(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    // serde names the offending parameter: "unknown field `x`, expected one of ...".
    query.map(|Query(query)| query).map_err(|rejection| {
        ApiError::BadRequest(format!("invalid query: {}", rejection.body_text()))
    })
}

fn unix_seconds_as_millis(name: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    given(value)
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .filter(|seconds| *seconds >= 0)
                .and_then(|seconds| seconds.checked_mul(1000))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "invalid {name}: {text:?}; expected a time in Unix seconds, such as 1767225600"
                    ))
                })
        })
        .transpose()
}

/// The filters shared by the list and the export, each checked and named in its error.
fn filter(
    server: Option<String>,
    member: Option<String>,
    tool: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
) -> Result<AuditFilter, ApiError> {
    let since_ms = unix_seconds_as_millis("since", since)?;
    let until_ms = unix_seconds_as_millis("until", until)?;
    if let (Some(since), Some(until)) = (since_ms, until_ms)
        && since > until
    {
        return Err(ApiError::BadRequest(
            "invalid since: it is after until".to_owned(),
        ));
    }
    Ok(AuditFilter {
        server: given(server).map(|id| ServerId::from_untrusted(&id)),
        member: given(member).map(|id| UserId::from_untrusted(&id)),
        target: given(tool),
        outcome: given(outcome)
            .map(|text| AuditOutcome::parse(&text))
            .transpose()?,
        since_ms,
        until_ms,
    })
}

/// A page of the organization's audit events, newest first (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditListQuery),
    responses(
        (status = 200, body = AuditPageView),
        (status = 400, description = "A bad query parameter, named in the message"),
        (status = 403, description = "Only owners and admins read the audit trail")
    )
)]
pub async fn list_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<AuditListQuery>, QueryRejection>,
) -> Result<Json<AuditPageView>, ApiError> {
    let permit = authorize::<ViewAudit>(caller.role)?;
    let params = query(params)?;
    let limit = match given(params.limit) {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_AUDIT_PAGE).contains(limit))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "invalid limit: {text:?}; expected 1 to {MAX_AUDIT_PAGE}"
                ))
            })?,
    };
    let cursor = given(params.cursor)
        .map(|text| AuditCursor::parse(&text))
        .transpose()?;
    let filter = filter(
        params.server,
        params.member,
        params.tool,
        params.outcome,
        params.since,
        params.until,
    )?;
    let page = state
        .store
        .audit_events(&caller.scope, &permit, &filter, cursor.as_ref(), limit)
        .await?;
    Ok(Json(AuditPageView {
        events: page.events.into_iter().map(AuditEventView::from).collect(),
        next_cursor: page.next.map(|cursor| cursor.to_string()),
    }))
}

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    JsonLines,
    Csv,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::JsonLines => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::JsonLines => "jsonl",
            Format::Csv => "csv",
        }
    }
}

/// The CSV columns, in order: the JSON fields of an event.
const CSV_HEADER: &str = "id,at_ms,member,member_email,session,server_id,server_name,method,target,outcome,reason,latency_us,request_bytes,response_bytes\r\n";

/// Every audit event matching the filters, newest first, as JSON lines or CSV (owners and
/// admins). Streamed: the whole set, however large, without paging.
#[utoipa::path(
    get, path = "/api/v1/audit/export", tag = "audit", security(("bearer" = [])), params(AuditExportQuery),
    responses(
        (status = 200, description = "`application/x-ndjson` (one event per line) or `text/csv` (header row first), as an attachment", body = String),
        (status = 400, description = "A bad query parameter, named in the message"),
        (status = 403, description = "Only owners and admins read the audit trail")
    )
)]
pub async fn export_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<AuditExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let permit = authorize::<ViewAudit>(caller.role)?;
    let params = query(params)?;
    let format = match given(params.format).as_deref() {
        None | Some("jsonl") => Format::JsonLines,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid format: {other:?}; expected jsonl or csv"
            )));
        }
    };
    let filter = filter(
        params.server,
        params.member,
        params.tool,
        params.outcome,
        params.since,
        params.until,
    )?;
    // The first chunk is read before answering, so a failing store is a clean 500, not a
    // truncated download.
    let first = state
        .store
        .audit_events(&caller.scope, &permit, &filter, None, EXPORT_CHUNK)
        .await?;
    let mut head = String::new();
    if format == Format::Csv {
        head.push_str(CSV_HEADER);
    }
    encode(format, first.events, &mut head);
    let rest = Export {
        store: state.store.clone(),
        scope: caller.scope.clone(),
        permit,
        filter,
        format,
        next: first.next,
    };
    let body = futures_util::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(futures_util::stream::unfold(rest, Export::next_chunk));
    let filename = format!(
        "attachment; filename=\"mcp-hero-audit-{}.{}\"",
        store::unix_now(),
        format.extension()
    );
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The rest of an export: one store page per chunk, until the last.
struct Export {
    store: Store,
    scope: OrgScope,
    permit: auth::Permit<ViewAudit>,
    filter: AuditFilter,
    format: Format,
    next: Option<AuditCursor>,
}

impl Export {
    async fn next_chunk(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        let cursor = self.next.take()?;
        let page = self
            .store
            .audit_events(
                &self.scope,
                &self.permit,
                &self.filter,
                Some(&cursor),
                EXPORT_CHUNK,
            )
            .await;
        match page {
            Ok(page) => {
                let mut chunk = String::new();
                encode(self.format, page.events, &mut chunk);
                self.next = page.next;
                Some((Ok(Bytes::from(chunk)), self))
            }
            Err(error) => {
                // The status is already sent: ending the body with an error makes the client
                // see a broken download rather than a complete-looking, short one.
                tracing::error!(%error, "audit export failed part way");
                Some((Err(std::io::Error::other("the audit export failed")), self))
            }
        }
    }
}

fn encode(format: Format, events: Vec<AuditEvent>, into: &mut String) {
    for event in events {
        let view = AuditEventView::from(event);
        match format {
            Format::JsonLines => {
                // Serializing a view of strings and numbers cannot fail.
                if let Ok(line) = serde_json::to_string(&view) {
                    into.push_str(&line);
                    into.push('\n');
                }
            }
            Format::Csv => csv_row(&view, into),
        }
    }
}

fn csv_row(view: &AuditEventView, into: &mut String) {
    let text = |value: &str, into: &mut String| into.push_str(&csv_field(value));
    let optional = |value: &Option<String>, into: &mut String| {
        if let Some(value) = value {
            into.push_str(&csv_field(value));
        }
    };
    text(&view.id, into);
    let _ = write!(into, ",{},", view.at_ms);
    text(&view.member, into);
    into.push(',');
    optional(&view.member_email, into);
    into.push(',');
    text(&view.session, into);
    into.push(',');
    optional(&view.server_id, into);
    into.push(',');
    optional(&view.server_name, into);
    into.push(',');
    text(view.method, into);
    into.push(',');
    text(&view.target, into);
    into.push(',');
    text(view.outcome, into);
    into.push(',');
    optional(&view.reason, into);
    let _ = write!(
        into,
        ",{},{},{}\r\n",
        view.latency_us, view.request_bytes, view.response_bytes
    );
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break, quotes doubled;
/// a leading `=`, `+`, `-`, `@`, tab or carriage return gets a `'` first so a spreadsheet shows
/// the text instead of running it as a formula.
fn csv_field(value: &str) -> Cow<'_, str> {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = value.contains([',', '"', '\n', '\r']);
    if !formula && !quote {
        return Cow::Borrowed(value);
    }
    let mut field = String::with_capacity(value.len() + 3);
    if quote {
        field.push('"');
    }
    if formula {
        field.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            field.push('"');
        }
        field.push(c);
    }
    if quote {
        field.push('"');
    }
    Cow::Owned(field)
}

#[cfg(test)]
mod tests;
