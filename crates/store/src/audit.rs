//! The audit trail (S6, S19, S20): one row per `tools/call`, `resources/read` and `prompts/get`
//! the data plane answered, read newest first through an [`OrgScope`] with filters and a cursor.
//!
//! Events are appended by the gateway's audit writer for every organization at once, so
//! [`Store::append_audit_events`] takes organization ids, not scopes; it writes an event only
//! when its organization exists and its server (if any) belongs to that organization, so an
//! event racing the deletion of its server or organization is dropped, not orphaned. Reading
//! always takes a scope. Rows cascade with their organization and their server; the retention
//! sweep ([`Store::delete_audit_events_before`]) is the one deployment-wide delete.

use auth::{Permit, ViewAudit};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::{OrgId, OrgScope, ServerId, Store, StoreError, UserId};

/// Most events one page returns.
pub const MAX_AUDIT_PAGE: usize = 1000;

/// Which audited method a client called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditMethod {
    /// `tools/call`.
    ToolsCall,
    /// `resources/read`.
    ResourcesRead,
    /// `prompts/get`.
    PromptsGet,
}

impl AuditMethod {
    /// The JSON-RPC method name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditMethod::ToolsCall => "tools/call",
            AuditMethod::ResourcesRead => "resources/read",
            AuditMethod::PromptsGet => "prompts/get",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "tools/call" => Some(AuditMethod::ToolsCall),
            "resources/read" => Some(AuditMethod::ResourcesRead),
            "prompts/get" => Some(AuditMethod::PromptsGet),
            _ => None,
        }
    }
}

/// How an audited call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// Answered with a result.
    Ok,
    /// Answered with a JSON-RPC error, or a tool result with `isError`.
    Error,
    /// Refused by the member's tool rules.
    Denied,
    /// No such tool, prompt or resource.
    Unknown,
    /// The gateway got no answer (server down, connection ended, timeout).
    Failed,
    /// The client cancelled it.
    Cancelled,
}

impl AuditOutcome {
    /// Every outcome, for error messages.
    pub const ALL: [AuditOutcome; 6] = [
        AuditOutcome::Ok,
        AuditOutcome::Error,
        AuditOutcome::Denied,
        AuditOutcome::Unknown,
        AuditOutcome::Failed,
        AuditOutcome::Cancelled,
    ];

    /// The stable name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Error => "error",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Unknown => "unknown",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Cancelled => "cancelled",
        }
    }

    /// The outcome named `text`, or an error naming the field and the accepted names.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
            .ok_or_else(|| StoreError::Invalid {
                field: "outcome",
                reason: format!(
                    "{text:?} is not one of {}",
                    Self::ALL.map(AuditOutcome::as_str).join(", ")
                ),
            })
    }
}

/// An event as the data plane reports it, ready to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// The organization it belongs to.
    pub org: OrgId,
    /// The server the call went to, when the name led to one.
    pub server: Option<ServerId>,
    /// The member who called.
    pub user: UserId,
    /// The session's short log tag.
    pub session: String,
    /// Which method.
    pub method: AuditMethod,
    /// Tool or prompt name as called, or resource URI without query and fragment.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Why, in the gateway's words.
    pub reason: Option<String>,
    /// Microseconds from request to answer.
    pub latency_us: i64,
    /// Bytes of the request's params.
    pub request_bytes: i64,
    /// Bytes of the answer.
    pub response_bytes: i64,
    /// When the call arrived, in Unix milliseconds.
    pub at_ms: i64,
}

/// A stored event, as the API shows it (after conversion to a view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Its id.
    pub id: String,
    /// When the call arrived, in Unix milliseconds.
    pub at_ms: i64,
    /// The member who called.
    pub user: UserId,
    /// Their email, while the user exists.
    pub email: Option<String>,
    /// The session's short log tag.
    pub session: String,
    /// The server, when the call named one.
    pub server: Option<ServerId>,
    /// That server's current name.
    pub server_name: Option<String>,
    /// Which method.
    pub method: AuditMethod,
    /// Tool or prompt name as called, or resource URI.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Why, in the gateway's words.
    pub reason: Option<String>,
    /// Microseconds from request to answer.
    pub latency_us: i64,
    /// Bytes of the request's params.
    pub request_bytes: i64,
    /// Bytes of the answer.
    pub response_bytes: i64,
}

impl AuditEvent {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let method: String = row.try_get("method")?;
        let outcome: String = row.try_get("outcome")?;
        let server: Option<String> = row.try_get("server_id")?;
        Ok(AuditEvent {
            id: row.try_get("id")?,
            at_ms: row.try_get("at")?,
            user: UserId::from_untrusted(row.try_get("user_id")?),
            email: row.try_get("email")?,
            session: row.try_get("session")?,
            server: server.as_deref().map(ServerId::from_untrusted),
            server_name: row.try_get("server_name")?,
            method: AuditMethod::from_stored(&method).ok_or_else(|| {
                StoreError::corrupt("audit_events", format!("unknown method {method:?}"))
            })?,
            target: row.try_get("target")?,
            outcome: AuditOutcome::parse(&outcome).map_err(|_| {
                StoreError::corrupt("audit_events", format!("unknown outcome {outcome:?}"))
            })?,
            reason: row.try_get("reason")?,
            latency_us: row.try_get("latency_us")?,
            request_bytes: row.try_get("request_bytes")?,
            response_bytes: row.try_get("response_bytes")?,
        })
    }

    /// Where the page after this event starts.
    pub fn cursor(&self) -> AuditCursor {
        AuditCursor {
            at_ms: self.at_ms,
            id: self.id.clone(),
        }
    }
}

/// Which events to read; every field narrows, none set means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Calls to this server.
    pub server: Option<ServerId>,
    /// Calls by this member.
    pub member: Option<UserId>,
    /// Calls of this tool or prompt name, or resource URI, exactly.
    pub target: Option<String>,
    /// Calls that ended so.
    pub outcome: Option<AuditOutcome>,
    /// Calls at or after this time (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Calls before this time (Unix milliseconds).
    pub until_ms: Option<i64>,
}

/// The position after the last event of a page (newest first): its time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCursor {
    at_ms: i64,
    id: String,
}

impl AuditCursor {
    /// Reads a cursor a previous page handed out; anything else is refused naming `cursor`.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::Invalid {
            field: "cursor",
            reason: "not a cursor this API handed out; use next_cursor of the previous page"
                .to_owned(),
        };
        let (at, id) = text.split_once('.').ok_or_else(invalid)?;
        let at_ms = at.parse::<i64>().map_err(|_| invalid())?;
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !id_ok {
            return Err(invalid());
        }
        Ok(AuditCursor {
            at_ms,
            id: id.to_owned(),
        })
    }
}

impl std::fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.at_ms, self.id)
    }
}

/// One page of events, newest first, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Set when more events match.
    pub next: Option<AuditCursor>,
}

/// A value bound to a dynamically assembled query.
enum Bind {
    Text(String),
    Int(i64),
}

impl Store {
    /// Appends events in one transaction. An event whose organization is gone, or whose server
    /// is gone or belongs to another organization, is skipped; returns how many were written.
    pub async fn append_audit_events(&self, events: &[NewAuditEvent]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut written = 0;
        for event in events {
            let id = uuid::Uuid::new_v4().to_string();
            let server = event.server.as_ref().map(ServerId::as_str);
            let inserted = sqlx::query(
                "INSERT INTO audit_events (id, org_id, server_id, user_id, session, method, target, \
                 outcome, reason, latency_us, request_bytes, response_bytes, at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
                 WHERE EXISTS (SELECT 1 FROM organizations WHERE id = $2) \
                 AND ($3 IS NULL OR EXISTS (SELECT 1 FROM servers WHERE id = $3 AND org_id = $2))",
            )
            .bind(id)
            .bind(event.org.as_str())
            .bind(server)
            .bind(event.user.as_str())
            .bind(event.session.as_str())
            .bind(event.method.as_str())
            .bind(event.target.as_str())
            .bind(event.outcome.as_str())
            .bind(event.reason.as_deref())
            .bind(event.latency_us)
            .bind(event.request_bytes)
            .bind(event.response_bytes)
            .bind(event.at_ms)
            .execute(&mut *tx)
            .await?;
            written += inserted.rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    /// One page (at most `limit`, capped at [`MAX_AUDIT_PAGE`]) of the scoped organization's
    /// events matching `filter`, newest first, starting after `after`. Reading the trail needs
    /// a `ViewAudit` permit: it shows every member's calls.
    pub async fn audit_events(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ViewAudit>,
        filter: &AuditFilter,
        after: Option<&AuditCursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let limit = limit.clamp(1, MAX_AUDIT_PAGE);
        // Only these fixed fragments are joined; every value is bound.
        let mut sql = String::from(
            "SELECT e.id, e.at, e.user_id, u.email, e.session, e.server_id, s.name AS server_name, \
             e.method, e.target, e.outcome, e.reason, e.latency_us, e.request_bytes, \
             e.response_bytes \
             FROM audit_events e \
             LEFT JOIN servers s ON s.id = e.server_id \
             LEFT JOIN users u ON u.id = e.user_id \
             WHERE e.org_id = $1",
        );
        let mut binds = vec![Bind::Text(scope.org_id().as_str().to_owned())];
        let mut condition = |fragment: &str, value: Bind, binds: &mut Vec<Bind>| {
            binds.push(value);
            sql.push_str(&fragment.replace('?', &format!("${}", binds.len())));
        };
        if let Some(server) = &filter.server {
            condition(
                " AND e.server_id = ?",
                Bind::Text(server.as_str().to_owned()),
                &mut binds,
            );
        }
        if let Some(member) = &filter.member {
            condition(
                " AND e.user_id = ?",
                Bind::Text(member.as_str().to_owned()),
                &mut binds,
            );
        }
        if let Some(target) = &filter.target {
            condition(" AND e.target = ?", Bind::Text(target.clone()), &mut binds);
        }
        if let Some(outcome) = filter.outcome {
            condition(
                " AND e.outcome = ?",
                Bind::Text(outcome.as_str().to_owned()),
                &mut binds,
            );
        }
        if let Some(since) = filter.since_ms {
            condition(" AND e.at >= ?", Bind::Int(since), &mut binds);
        }
        if let Some(until) = filter.until_ms {
            condition(" AND e.at < ?", Bind::Int(until), &mut binds);
        }
        if let Some(after) = after {
            condition(" AND (e.at < ?", Bind::Int(after.at_ms), &mut binds);
            condition(" OR (e.at = ?", Bind::Int(after.at_ms), &mut binds);
            condition(" AND e.id < ?))", Bind::Text(after.id.clone()), &mut binds);
        }
        // One more than asked tells whether another page follows.
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        condition(
            " ORDER BY e.at DESC, e.id DESC LIMIT ?",
            Bind::Int(fetch),
            &mut binds,
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(number) => query.bind(number),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut events = rows
            .iter()
            .map(AuditEvent::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if events.len() > limit {
            events.truncate(limit);
            events.last().map(AuditEvent::cursor)
        } else {
            None
        };
        Ok(AuditPage { events, next })
    }

    /// The retention sweep: deletes every organization's events older than `before_ms` (Unix
    /// milliseconds) and returns how many went. Deployment-wide, for the gateway's own upkeep.
    pub async fn delete_audit_events_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }
}
