//! Where a session's servers' own output goes: their standard error (redacted first, S18) and
//! what the launcher reports about them (sandbox lifecycle, egress decisions). The gateway's
//! caller implements [`ServerLogSink`] over the operator's log buffer.

/// Which kind of line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The server's standard error, after redaction.
    Stderr,
    /// The sandbox's lifecycle: started, limit hit, ended.
    Sandbox,
    /// The egress proxy's decisions.
    Egress,
}

/// How much a line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Ordinary output.
    Info,
    /// Something was refused or looks wrong.
    Warn,
}

/// Whose line it is.
#[derive(Debug, Clone, Copy)]
pub struct LogSource<'a> {
    /// The organization's id.
    pub org: &'a str,
    /// The server's id.
    pub server_id: &'a str,
    /// The session's short, non-secret tag.
    pub session: &'a str,
}

/// Receives lines; called on the data plane's tasks, so it must never block.
pub trait ServerLogSink: Send + Sync + 'static {
    /// One line, already redacted.
    fn line(&self, source: LogSource<'_>, stream: LogStream, level: LogLevel, text: String);
}

/// For gateways without a log buffer (tests, benchmarks): lines are dropped.
#[derive(Debug, Default)]
pub struct NoServerLogs;

impl ServerLogSink for NoServerLogs {
    fn line(&self, _: LogSource<'_>, _: LogStream, _: LogLevel, _: String) {}
}
