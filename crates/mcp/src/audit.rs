//! The data plane's audit hook (S6, S16): one [`AuditEvent`] for every `tools/call`,
//! `resources/read` and `prompts/get` a session answers, allowed or not, handed to an
//! [`AuditSink`] the binary provides.
//!
//! An event says who called what, where, how it ended, how long it took and how big the request
//! and answer were. It never holds an argument value or any content of a result, and its reason
//! is always the gateway's own words: an upstream's text can carry anything the server knows,
//! credentials included. A resource URI loses its query and fragment for the same reason.
//!
//! The sink is called on the call path, so it must never block: the binary's sink queues the
//! event for a writer task and counts what it had to drop. This crate only defines the hook and
//! builds events; where they are kept is not its business.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

/// Receives the audit events of the data plane.
pub trait AuditSink: Send + Sync {
    /// Takes one event. Runs on the call path: it must return at once, never block or wait.
    fn record(&self, event: AuditEvent);
}

/// The sink of a gateway built without an audit trail (tests, benchmarks' baselines).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _event: AuditEvent) {}
}

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
    /// The audited method named `method`, if it is one.
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "tools/call" => Some(AuditMethod::ToolsCall),
            "resources/read" => Some(AuditMethod::ResourcesRead),
            "prompts/get" => Some(AuditMethod::PromptsGet),
            _ => None,
        }
    }

    /// The JSON-RPC method name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditMethod::ToolsCall => "tools/call",
            AuditMethod::ResourcesRead => "resources/read",
            AuditMethod::PromptsGet => "prompts/get",
        }
    }
}

/// How an audited call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// The server answered with a result.
    Ok,
    /// The server answered with a JSON-RPC error, or a tool result with `isError` set.
    Error,
    /// The member's tool rules refused it (the client was told the name is unknown, S7).
    Denied,
    /// No server has that tool, prompt or resource (or the request named none).
    Unknown,
    /// The gateway could not get an answer: the server is not running, the connection ended,
    /// the call timed out, or the session had too many calls in flight.
    Failed,
    /// The client cancelled the call before the answer came.
    Cancelled,
}

impl AuditOutcome {
    /// The outcome's stable name, as stored and shown.
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
}

/// The server a call went to (or would have gone to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditServer {
    /// Its id.
    pub id: Arc<str>,
    /// Its name.
    pub name: Arc<str>,
}

/// One audited call. Holds no argument value and no result content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The organization's id.
    pub org: Arc<str>,
    /// The member's user id.
    pub user: Arc<str>,
    /// The session's short log tag (not its id, which is a bearer secret of the client).
    pub session: Arc<str>,
    /// The server, when the name or URI led to one.
    pub server: Option<AuditServer>,
    /// Which method.
    pub method: AuditMethod,
    /// The tool or prompt name as the client called it, or the resource URI without its query
    /// and fragment.
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Why, in the gateway's words, when it did not end `ok`.
    pub reason: Option<Arc<str>>,
    /// From the request reaching the session to the answer being ready, in microseconds.
    pub latency_us: u64,
    /// Size of the request's `params` as JSON, in bytes.
    pub request_bytes: u64,
    /// Size of the answer as JSON, in bytes (0 when there was none).
    pub response_bytes: u64,
    /// When the call arrived.
    pub at: SystemTime,
}

/// Longest target kept, in bytes: the client chooses the name it calls, and the audit trail must
/// not grow by whatever a client sends.
pub const MAX_TARGET_BYTES: usize = 512;

/// `text` cut to [`MAX_TARGET_BYTES`] on a character boundary.
pub(crate) fn bounded(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A resource URI as it may be kept: without query and fragment, which can carry tokens.
pub fn redact_uri(uri: &str) -> &str {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    &uri[..end]
}

/// The number of bytes `value` takes as compact JSON, counted without building the text.
pub fn json_size<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing JSON values into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Whether a `tools/call` result reports a failure of the tool itself.
pub(crate) fn is_error_result(result: Option<&Value>) -> bool {
    result
        .and_then(|result| result.get("isError"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A connection failure reason fit for the audit trail: the gateway's reasons pass; the one that
/// quotes the server (a refused `initialize`) keeps only the gateway's part.
pub(crate) fn gateway_reason(reason: &str) -> Arc<str> {
    const QUOTES_SERVER: &str = "refused initialize";
    if reason.starts_with(QUOTES_SERVER) {
        return Arc::from(QUOTES_SERVER);
    }
    // Gateway reasons are short; the bound only guards against a future one that is not.
    Arc::from(bounded(reason, 200))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uris_lose_query_and_fragment() {
        assert_eq!(redact_uri("file:///a/b?token=secret#x"), "file:///a/b");
        assert_eq!(redact_uri("test://static#frag"), "test://static");
        assert_eq!(redact_uri("test://static"), "test://static");
    }

    #[test]
    fn sizes_are_the_compact_json_length() {
        let value = json!({"name": "echo", "arguments": {"text": "héllo"}});
        assert_eq!(json_size(&value), value.to_string().len() as u64);
    }

    #[test]
    fn reasons_never_quote_the_server() {
        assert_eq!(
            &*gateway_reason("refused initialize: key sk-123 is invalid"),
            "refused initialize"
        );
        assert_eq!(
            &*gateway_reason("exited with status 1"),
            "exited with status 1"
        );
        assert_eq!(gateway_reason(&"é".repeat(300)).len(), 200);
    }
}
