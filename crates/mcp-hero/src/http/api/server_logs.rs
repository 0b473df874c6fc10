//! `/api/v1/servers/{server_id}/logs`: a server's log buffer, paged or as a live SSE tail; owners
//! and admins only (S6, S7, S8, S16).
//!
//! Lines may show what a server does with the organization's credentials (redacted, S18), so
//! reading takes the `ManageServers` permit, not mere membership. A server of another
//! organization answers 404 like one that does not exist. The tail sends the stored backlog
//! first, then every line this gateway stores; a tail that falls behind is told how many lines it
//! missed rather than slowing the writer, and it ends when the server is deleted.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use auth::{ManageServers, Permit, authorize};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use store::{LogLevel, LogQuery, MAX_LOG_PAGE, MAX_SESSION_TAG_BYTES, ServerId, StoredLogLine};
use tokio::sync::{broadcast, mpsc, watch};
use utoipa::{IntoParams, ToSchema};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::Caller;
use crate::server_logs::{TailLine, unix_millis};

/// Lines per page when `limit` is not given.
const DEFAULT_LIMIT: u32 = 100;
/// How often a tail checks that its server still exists (deletion through another replica, or
/// through the API, ends the tail within this time).
const TAIL_RECHECK: Duration = Duration::from_secs(2);
/// Events a tail's connection may hold before the tail waits on the client.
const TAIL_EVENTS: usize = 64;

/// Which lines to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// Only lines produced at or after this time: Unix milliseconds (`1764000000000`), or a
    /// time ago: a whole number followed by `s`, `m`, `h` or `d` (`15m`, `7d`).
    since: Option<String>,
    /// Only this session's lines (its tag, as lines show it).
    session: Option<String>,
    /// Only lines at least this severe: `error`, `warn`, `info` or `debug` (everything).
    level: Option<String>,
    /// The `next_cursor` of the previous page: only lines after it.
    cursor: Option<String>,
    /// Lines per page, 1 to 1000; 100 when absent.
    limit: Option<String>,
}

/// Which lines a live tail shows.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TailParams {
    /// As for reading: Unix milliseconds or a time ago (`15m`); the backlog starts there.
    since: Option<String>,
    /// Only this session's lines.
    session: Option<String>,
    /// Only lines at least this severe: `error`, `warn`, `info` or `debug`.
    level: Option<String>,
    /// A line id (a page's `next_cursor`, or the `id` of the last event received): the backlog
    /// starts after it.
    cursor: Option<String>,
}

/// One line of a server's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLineView {
    /// Increases with every line stored.
    id: i64,
    /// When it was produced, Unix milliseconds.
    at: i64,
    /// The tag of the session whose sandbox produced it.
    session: String,
    /// `stderr` (the server's, redacted), `sandbox` (lifecycle), `egress` (network decisions) or
    /// `gateway` (about the buffer itself, such as lines dropped).
    stream: String,
    /// `error`, `warn`, `info` or `debug`.
    level: String,
    /// The line.
    text: String,
}

impl From<&StoredLogLine> for LogLineView {
    fn from(line: &StoredLogLine) -> Self {
        LogLineView {
            id: line.id,
            at: line.at_ms,
            session: line.session.clone(),
            stream: line.stream.as_str().to_owned(),
            level: line.level.as_str().to_owned(),
            text: line.text.clone(),
        }
    }
}

/// One page of lines, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogPage {
    lines: Vec<LogLineView>,
    /// Pass as `cursor` for the next page; absent when this page was not full (poll again with
    /// the last line's `id` as `cursor` to follow new lines).
    next_cursor: Option<String>,
}

/// The filters shared by reads and tails, parsed once.
#[derive(Debug, Clone)]
struct Filters {
    since_ms: Option<i64>,
    session: Option<String>,
    min_level: Option<LogLevel>,
    after: Option<i64>,
}

impl Filters {
    fn parse(
        since: Option<&str>,
        session: Option<String>,
        level: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Self, ApiError> {
        let since_ms = since.map(parse_since).transpose()?;
        if let Some(session) = &session
            && (session.is_empty() || session.len() > MAX_SESSION_TAG_BYTES)
        {
            return Err(ApiError::BadRequest(format!(
                "invalid session: expected a session tag of 1 to {MAX_SESSION_TAG_BYTES} bytes"
            )));
        }
        let min_level = level
            .map(|text| {
                LogLevel::parse(text).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "invalid level {text:?}: expected error, warn, info or debug"
                    ))
                })
            })
            .transpose()?;
        let after = cursor
            .map(|text| {
                text.parse::<i64>()
                    .ok()
                    .filter(|id| *id >= 0)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "invalid cursor {text:?}: pass a next_cursor or line id as given"
                        ))
                    })
            })
            .transpose()?;
        Ok(Filters {
            since_ms,
            session,
            min_level,
            after,
        })
    }

    fn query(&self, limit: u32) -> LogQuery {
        LogQuery {
            since_ms: self.since_ms,
            session: self.session.clone(),
            min_level: self.min_level,
            after: self.after,
            limit,
        }
    }

    fn matches(&self, line: &StoredLogLine) -> bool {
        self.since_ms.is_none_or(|since| line.at_ms >= since)
            && self
                .session
                .as_deref()
                .is_none_or(|session| line.session == session)
            && self.min_level.is_none_or(|min| line.level <= min)
            && self.after.is_none_or(|after| line.id > after)
    }
}

/// `since`: Unix milliseconds, or a whole number of seconds, minutes, hours or days ago.
fn parse_since(text: &str) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::BadRequest(format!(
            "invalid since {text:?}: expected Unix milliseconds (such as 1764000000000) or a time \
             ago such as 30s, 15m, 2h or 7d"
        ))
    };
    if let Ok(millis) = text.parse::<i64>() {
        return if millis >= 0 {
            Ok(millis)
        } else {
            Err(invalid())
        };
    }
    let split = text.len().checked_sub(1).ok_or_else(invalid)?;
    let (number, unit) = text.split_at_checked(split).ok_or_else(invalid)?;
    let unit_ms: i64 = match unit {
        "s" => 1000,
        "m" => 60 * 1000,
        "h" => 3600 * 1000,
        "d" => 24 * 3600 * 1000,
        _ => return Err(invalid()),
    };
    let ago = number
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .and_then(|n| n.checked_mul(unit_ms))
        .ok_or_else(invalid)?;
    Ok(unix_millis().saturating_sub(ago).max(0))
}

fn parse_limit(text: Option<&str>) -> Result<u32, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    text.parse::<u32>()
        .ok()
        .filter(|limit| (1..=MAX_LOG_PAGE).contains(limit))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "invalid limit {text:?}: expected 1 to {MAX_LOG_PAGE}"
            ))
        })
}

fn query_error(rejection: &QueryRejection) -> ApiError {
    // serde's message names the parameter: "unknown field `x`, expected ...".
    ApiError::BadRequest(format!(
        "invalid query string: {}",
        rejection
            .body_text()
            .trim_start_matches("Failed to deserialize query string: ")
    ))
}

/// A server's log lines, oldest first, a page at a time (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/servers/{server_id}/logs", tag = "server-logs", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id"), LogsParams),
    responses(
        (status = 200, body = LogPage),
        (status = 400, description = "A query parameter is invalid; the message names it"),
        (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server in this organization")
    )
)]
pub async fn list_server_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
    params: Result<Query<LogsParams>, QueryRejection>,
) -> Result<Json<LogPage>, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let Query(params) = params.map_err(|rejection| query_error(&rejection))?;
    let filters = Filters::parse(
        params.since.as_deref(),
        params.session,
        params.level.as_deref(),
        params.cursor.as_deref(),
    )?;
    let limit = parse_limit(params.limit.as_deref())?;
    let lines = state
        .store
        .server_logs(
            &caller.scope,
            &permit,
            &ServerId::from_untrusted(&server_id),
            &filters.query(limit),
        )
        .await?;
    let full = lines.len() == limit as usize;
    let next_cursor = lines
        .last()
        .filter(|_| full)
        .map(|line| line.id.to_string());
    Ok(Json(LogPage {
        lines: lines.iter().map(LogLineView::from).collect(),
        next_cursor,
    }))
}

/// A live tail of a server's log as Server-Sent Events (owners and admins): the stored lines
/// matching the filters first, then new ones as they are stored. Events: `line` (a
/// `LogLineView`, with the line id as the event id), `skipped` (`{"skipped": N}`: this tail fell
/// behind while N lines were stored gateway-wide, so up to N of its own are missing; reads still
/// return them), `end` (`{"reason": ...}`: the server was
/// deleted or the gateway is stopping; the stream closes). Comments keep the connection alive.
#[utoipa::path(
    get, path = "/api/v1/servers/{server_id}/logs/stream", tag = "server-logs", security(("bearer" = [])),
    params(("server_id" = String, Path, description = "The server's id"), TailParams),
    responses(
        (status = 200, content_type = "text/event-stream", description = "`line`, `skipped` and `end` events"),
        (status = 400, description = "A query parameter is invalid; the message names it"),
        (status = 403, description = "Role may not manage servers"),
        (status = 404, description = "No such server in this organization")
    )
)]
pub async fn tail_server_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(server_id): Path<String>,
    params: Result<Query<TailParams>, QueryRejection>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let Query(params) = params.map_err(|rejection| query_error(&rejection))?;
    let filters = Filters::parse(
        params.since.as_deref(),
        params.session,
        params.level.as_deref(),
        params.cursor.as_deref(),
    )?;
    let server = ServerId::from_untrusted(&server_id);
    // Subscribe before reading the backlog, so no line falls between the two; lines seen in
    // both are told apart by id.
    let live = state.server_logs.subscribe();
    let closing = state.server_logs.closing();
    // The first page answers 404 (or 400) before the stream starts.
    let first = state
        .store
        .server_logs(
            &caller.scope,
            &permit,
            &server,
            &filters.query(MAX_LOG_PAGE),
        )
        .await?;
    let (events, receiver) = mpsc::channel(TAIL_EVENTS);
    let tail = Tail {
        state,
        caller,
        permit,
        server,
        filters,
        events,
    };
    tokio::spawn(tail.run(first, live, closing));
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        Some((Ok(event), receiver))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One client's live tail: the task feeding its SSE stream.
struct Tail {
    state: AppState,
    caller: Caller,
    permit: Permit<ManageServers>,
    server: ServerId,
    filters: Filters,
    events: mpsc::Sender<Event>,
}

impl Tail {
    async fn run(
        mut self,
        first: Vec<StoredLogLine>,
        mut live: broadcast::Receiver<Arc<TailLine>>,
        mut closing: watch::Receiver<bool>,
    ) {
        // The backlog, a page at a time; the client's pace sets ours.
        let mut page = first;
        loop {
            let full = page.len() == MAX_LOG_PAGE as usize;
            for line in &page {
                if !self.send_line(line).await {
                    return;
                }
            }
            if !full {
                break;
            }
            match self
                .state
                .store
                .server_logs(
                    &self.caller.scope,
                    &self.permit,
                    &self.server,
                    &self.filters.query(MAX_LOG_PAGE),
                )
                .await
            {
                Ok(next) => page = next,
                Err(store::StoreError::NotFound(_)) => {
                    return self.end("the server was deleted").await;
                }
                Err(error) => {
                    tracing::warn!(%error, "server log tail: reading the backlog failed");
                    return self
                        .end("reading the log failed; reconnect with the last id as cursor")
                        .await;
                }
            }
        }
        let mut recheck = tokio::time::interval(TAIL_RECHECK);
        recheck.tick().await;
        let already_closing = *closing.borrow();
        if already_closing {
            return self.end("the gateway is stopping").await;
        }
        loop {
            tokio::select! {
                () = self.events.closed() => return,
                _ = closing.changed() => return self.end("the gateway is stopping").await,
                received = live.recv() => match received {
                    Ok(tail) => {
                        if tail.org == *self.caller.scope.org_id()
                            && tail.line.server == self.server
                            && self.filters.matches(&tail.line)
                            && !self.send_line(&tail.line).await
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        let event = Event::default()
                            .event("skipped")
                            .data(format!("{{\"skipped\":{skipped}}}"));
                        if self.events.send(event).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return self.end("the gateway is stopping").await;
                    }
                },
                _ = recheck.tick() => {
                    if let Err(store::StoreError::NotFound(_)) =
                        self.state.store.server(&self.caller.scope, &self.server).await
                    {
                        return self.end("the server was deleted").await;
                    }
                }
            }
        }
    }

    /// Sends one line and moves the cursor past it; false when the client is gone.
    async fn send_line(&mut self, line: &StoredLogLine) -> bool {
        self.filters.after = Some(line.id);
        let Ok(event) = Event::default()
            .event("line")
            .id(line.id.to_string())
            .json_data(LogLineView::from(line))
        else {
            return true;
        };
        self.events.send(event).await.is_ok()
    }

    async fn end(self, reason: &str) {
        let data = serde_json::json!({ "reason": reason }).to_string();
        let _ = self
            .events
            .send(Event::default().event("end").data(data))
            .await;
    }
}
