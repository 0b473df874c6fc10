//! The operator's log buffer of each server (S6, S8, S19, S20): lines its sandboxes produced,
//! per session, bounded in bytes and kept for a retention period.
//!
//! Lines arrive already redacted (S18 is the caller's redactor's job) and already cut to the
//! gateway's line length. Writing is the gateway's ingest path: a line names its organization and
//! server, and is stored only when that server belongs to that organization (checked in the same
//! statement), so a line can never land in another organization's buffer; a line for a server
//! deleted meanwhile is simply not stored. Reading always takes an [`OrgScope`].
//!
//! Bounds: after each batch, the oldest lines of every session and server the batch touched are
//! deleted until the newest ones fit ([`LogBounds`]). Retention is a separate sweep by age
//! ([`Store::sweep_server_logs`]). Deleting a server or an organization deletes its lines (foreign
//! keys with `ON DELETE CASCADE`).
//!
//! Deliberately left out: full-text search, and ordering across gateway replicas (each line's id
//! comes from the database, so on PostgreSQL a line committed late by another replica may get a
//! smaller id than one a reader already paged past).

use std::collections::BTreeSet;

use auth::{ManageServers, Permit};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{OrgId, OrgScope, ServerId, Store, StoreError};

/// What a line costs against the byte bounds on top of its text: its row, session and indexes.
/// Without it, a flood of empty lines would never reach a bound.
pub const LINE_OVERHEAD_BYTES: usize = 64;
/// Longest session tag, in bytes; tags are short labels, never the session id itself.
pub const MAX_SESSION_TAG_BYTES: usize = 64;
/// Most lines one read returns.
pub const MAX_LOG_PAGE: u32 = 1000;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogStream {
    /// The server's standard error, after redaction.
    Stderr,
    /// The sandbox's lifecycle: started, limit hit, exited.
    Sandbox,
    /// The egress proxy's decisions for this sandbox.
    Egress,
    /// The gateway about the buffer itself (lines dropped because the writer fell behind).
    Gateway,
}

impl LogStream {
    /// The stable name, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stderr => "stderr",
            LogStream::Sandbox => "sandbox",
            LogStream::Egress => "egress",
            LogStream::Gateway => "gateway",
        }
    }

    /// The stream of a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "stderr" => Some(LogStream::Stderr),
            "sandbox" => Some(LogStream::Sandbox),
            "egress" => Some(LogStream::Egress),
            "gateway" => Some(LogStream::Gateway),
            _ => None,
        }
    }
}

/// How much a line matters, most severe first (so `Error < Debug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something was refused or looks wrong.
    Warn,
    /// Ordinary output.
    Info,
    /// Detail.
    Debug,
}

impl LogLevel {
    /// Every level, most severe first.
    pub const ALL: [LogLevel; 4] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
    ];

    /// The stable name, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }

    /// The level of a name: `error`, `warn`, `info` or `debug`.
    pub fn parse(text: &str) -> Option<Self> {
        LogLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == text)
    }
}

/// A line to store. No `Default`: every field is the caller's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogLine {
    /// The organization the server belongs to; checked against the server when stored.
    pub org: OrgId,
    /// The server whose sandbox produced the line.
    pub server: ServerId,
    /// The session's short, non-secret tag (at most [`MAX_SESSION_TAG_BYTES`]).
    pub session: String,
    /// Where it came from.
    pub stream: LogStream,
    /// How much it matters.
    pub level: LogLevel,
    /// The line, redacted and cut by the caller; no NUL byte.
    pub text: String,
    /// When it was produced, Unix milliseconds.
    pub at_ms: i64,
}

impl NewLogLine {
    /// What the line counts against the byte bounds.
    pub fn bytes(&self) -> usize {
        self.text.len() + LINE_OVERHEAD_BYTES
    }
}

/// A stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLogLine {
    /// Increases with every line stored; the paging cursor.
    pub id: i64,
    /// The server whose sandbox produced it.
    pub server: ServerId,
    /// The session's tag.
    pub session: String,
    /// Where it came from.
    pub stream: LogStream,
    /// How much it matters.
    pub level: LogLevel,
    /// The line.
    pub text: String,
    /// When it was produced, Unix milliseconds.
    pub at_ms: i64,
}

impl StoredLogLine {
    /// The stored line a new one became under `id`.
    pub fn stored(id: i64, line: &NewLogLine) -> Self {
        StoredLogLine {
            id,
            server: line.server.clone(),
            session: line.session.clone(),
            stream: line.stream,
            level: line.level,
            text: line.text.clone(),
            at_ms: line.at_ms,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::corrupt("server_logs", reason);
        let stream: String = row.try_get("stream")?;
        let level: String = row.try_get("level")?;
        Ok(StoredLogLine {
            id: row.try_get("id")?,
            server: ServerId::from_untrusted(row.try_get("server_id")?),
            session: row.try_get("session")?,
            stream: LogStream::parse(&stream)
                .ok_or_else(|| corrupt(format!("unknown stream {stream:?}")))?,
            level: LogLevel::parse(&level)
                .ok_or_else(|| corrupt(format!("unknown level {level:?}")))?,
            text: row.try_get("text")?,
            at_ms: row.try_get("at")?,
        })
    }
}

/// How many bytes of lines (text plus [`LINE_OVERHEAD_BYTES`] each) are kept; beyond either
/// bound the oldest lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// Per server, all sessions together.
    pub max_bytes_per_server: u64,
    /// Per session of a server.
    pub max_bytes_per_session: u64,
}

/// Which lines a read returns, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// Only lines produced at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Only this session's lines.
    pub session: Option<String>,
    /// Only lines at least this severe (`Warn` gives warnings and errors).
    pub min_level: Option<LogLevel>,
    /// Only lines after this id (the previous page's cursor).
    pub after: Option<i64>,
    /// At most this many lines, 1 to [`MAX_LOG_PAGE`].
    pub limit: u32,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn check_line(line: &NewLogLine) -> Result<(), StoreError> {
    if line.session.len() > MAX_SESSION_TAG_BYTES {
        return Err(invalid(
            "session",
            format!("is longer than {MAX_SESSION_TAG_BYTES} bytes"),
        ));
    }
    if line.session.contains('\0') {
        return Err(invalid("session", "must not contain a NUL byte"));
    }
    if line.text.contains('\0') {
        return Err(invalid("text", "must not contain a NUL byte"));
    }
    Ok(())
}

/// Deletes the oldest lines of one server (and, with `session`, one session of it) until the
/// newest fit in `max_bytes`. A running sum over newest-first rows finds the cut.
async fn trim(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &str,
    server: &str,
    session: Option<&str>,
    max_bytes: u64,
) -> Result<(), StoreError> {
    let max_bytes = i64::try_from(max_bytes).unwrap_or(i64::MAX);
    // `session` NULL means "every session"; typed binds make `$3 IS NULL` valid on PostgreSQL.
    let total: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS total FROM server_logs \
         WHERE org_id = $1 AND server_id = $2 AND ($3 IS NULL OR session = $3)",
    )
    .bind(org)
    .bind(server)
    .bind(session)
    .fetch_one(&mut **tx)
    .await?
    .try_get("total")?;
    if total <= max_bytes {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM server_logs WHERE id IN (SELECT id FROM (\
           SELECT id, SUM(bytes) OVER (ORDER BY id DESC) AS newer_bytes FROM server_logs \
           WHERE org_id = $1 AND server_id = $2 AND ($3 IS NULL OR session = $3)\
         ) ranked WHERE newer_bytes > $4)",
    )
    .bind(org)
    .bind(server)
    .bind(session)
    .bind(max_bytes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a batch of lines in one transaction, then trims every session and server it touched
    /// to `bounds`. Returns each line's id, or `None` for a line whose server is not (or no
    /// longer) in the line's organization. This is the gateway's ingest path, across
    /// organizations like [`Store::images_for_upkeep`]; request handlers never call it.
    pub async fn append_server_logs(
        &self,
        bounds: &LogBounds,
        lines: &[NewLogLine],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        for line in lines {
            check_line(line)?;
        }
        let mut ids = Vec::with_capacity(lines.len());
        let mut servers = BTreeSet::new();
        let mut sessions = BTreeSet::new();
        let mut tx = self.pool.begin().await?;
        for line in lines {
            let bytes = i64::try_from(line.bytes()).unwrap_or(i64::MAX);
            let id: Option<i64> = sqlx::query(
                "INSERT INTO server_logs (org_id, server_id, session, stream, level, text, at, bytes) \
                 SELECT org_id, id, $3, $4, $5, $6, $7, $8 FROM servers WHERE org_id = $1 AND id = $2 \
                 RETURNING id",
            )
            .bind(line.org.as_str())
            .bind(line.server.as_str())
            .bind(line.session.as_str())
            .bind(line.stream.as_str())
            .bind(line.level.as_str())
            .bind(line.text.as_str())
            .bind(line.at_ms)
            .bind(bytes)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("id"))
            .transpose()?;
            if id.is_some() {
                servers.insert((line.org.as_str(), line.server.as_str()));
                sessions.insert((
                    line.org.as_str(),
                    line.server.as_str(),
                    line.session.as_str(),
                ));
            }
            ids.push(id);
        }
        for (org, server, session) in sessions {
            trim(
                &mut tx,
                org,
                server,
                Some(session),
                bounds.max_bytes_per_session,
            )
            .await?;
        }
        for (org, server) in servers {
            trim(&mut tx, org, server, None, bounds.max_bytes_per_server).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// One page of a server's lines, oldest first; a server of another organization is not found
    /// (S8). Reading needs a `ManageServers` permit: lines may show what a server does with the
    /// organization's credentials, which members who merely use its tools need not see.
    pub async fn server_logs(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        server: &ServerId,
        query: &LogQuery,
    ) -> Result<Vec<StoredLogLine>, StoreError> {
        if !(1..=MAX_LOG_PAGE).contains(&query.limit) {
            return Err(invalid(
                "limit",
                format!("expected 1 to {MAX_LOG_PAGE}, got {}", query.limit),
            ));
        }
        let exists = sqlx::query("SELECT id FROM servers WHERE org_id = $1 AND id = $2")
            .bind(scope.org_id().as_str())
            .bind(server.as_str())
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("server"));
        }
        // The level filter is an `IN` over four binds, padded with the most severe level, so the
        // statement stays one fixed string whatever the filters.
        let wanted: Vec<LogLevel> = LogLevel::ALL
            .into_iter()
            .filter(|level| query.min_level.is_none_or(|min| *level <= min))
            .collect();
        let level = |index: usize| wanted.get(index).copied().unwrap_or(LogLevel::Error);
        let rows = sqlx::query(
            "SELECT id, server_id, session, stream, level, text, at FROM server_logs \
             WHERE org_id = $1 AND server_id = $2 AND id > $3 \
             AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR session = $5) \
             AND level IN ($6, $7, $8, $9) \
             ORDER BY id LIMIT $10",
        )
        .bind(scope.org_id().as_str())
        .bind(server.as_str())
        .bind(query.after.unwrap_or(0))
        .bind(query.since_ms)
        .bind(query.session.as_deref())
        .bind(level(0).as_str())
        .bind(level(1).as_str())
        .bind(level(2).as_str())
        .bind(level(3).as_str())
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(StoredLogLine::from_row).collect()
    }

    /// Deletes every line produced before `before_ms` (Unix milliseconds), in every organization:
    /// the retention sweep. Returns how many lines went.
    pub async fn sweep_server_logs(&self, before_ms: i64) -> Result<u64, StoreError> {
        let swept = sqlx::query("DELETE FROM server_logs WHERE at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(swept.rows_affected())
    }
}
