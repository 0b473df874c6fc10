//! The operator's log buffer (S6, S16, S18, S19): what each server's sandboxes said (stderr,
//! already redacted), sandbox lifecycle events and egress decisions, as lines per server and
//! session, persisted with byte bounds and a retention period, and fanned out to live tails.
//!
//! [`ServerLogs::append`] is called from the data plane's I/O tasks, so it never blocks and never
//! grows memory without bound: it cuts the line, puts it on a bounded queue and returns. When the
//! queue is full the line is dropped and counted per session; the writer later stores one
//! "N lines dropped" line (stream `gateway`) in that session's place, so the operator sees the
//! gap. One writer task drains the queue in batches, one transaction per batch
//! ([`store::Store::append_server_logs`] trims each touched session and server to its bound),
//! then hands the stored lines to live tails over a broadcast channel; a tail that falls behind
//! loses lines (and is told how many), never the writer's time. The same task sweeps lines past
//! the retention period.
//!
//! Assumptions: callers redact before appending (S18: the `redact` crate sits in front of
//! stderr); this module only cuts lines and replaces NUL bytes. Live tails see the lines this
//! gateway wrote; with several replicas, another replica's lines appear in reads, not in this
//! replica's tails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use store::{LogBounds, NewLogLine, OrgId, ServerId, Store, StoredLogLine};
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::ConfigError;

pub use store::{LogLevel, LogStream};

/// Lines waiting for the writer; past this, lines are dropped and counted. With lines cut at
/// `max_line_bytes` (8 KiB by default) the queue holds at most 8 MiB.
pub const QUEUE_LINES: usize = 1024;
/// Most lines written in one transaction.
const MAX_BATCH: usize = 256;
/// Lines a live tail may fall behind before it skips some.
const TAIL_LAG_LINES: usize = 1024;
/// Sessions whose drops are counted separately; beyond it drops only reach the gateway log, so
/// the count itself cannot grow without bound.
const MAX_DROP_SOURCES: usize = 1024;
/// How often lines past the retention period are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// What replaces the end of a line cut at `max_line_bytes`.
const CUT_MARK: &str = " [cut]";

/// `[logs]` in the config file: how much of each server's log the gateway keeps, and how long.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// Bytes kept per server, all sessions together; beyond it the oldest lines go.
    pub max_bytes_per_server: u64,
    /// Bytes kept per session of a server; beyond it that session's oldest lines go.
    pub max_bytes_per_session: u64,
    /// Seconds a line is kept.
    pub retention_secs: u64,
    /// Longest line; longer ones are cut and marked ` [cut]`.
    pub max_line_bytes: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            max_bytes_per_server: 4 * 1024 * 1024,
            max_bytes_per_session: 1024 * 1024,
            retention_secs: 7 * 24 * 3600,
            max_line_bytes: 8 * 1024,
        }
    }
}

impl LogsConfig {
    /// Checks every setting; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, value: u64, reason: String| ConfigError::Invalid {
            key,
            value: value.to_string(),
            origin: "the config file".to_owned(),
            reason,
        };
        let line = self.max_line_bytes as u64;
        if !(256..=1024 * 1024).contains(&line) {
            return Err(invalid(
                "logs.max_line_bytes",
                line,
                "expected between 256 and 1048576".to_owned(),
            ));
        }
        if !(line..=1 << 30).contains(&self.max_bytes_per_session) {
            return Err(invalid(
                "logs.max_bytes_per_session",
                self.max_bytes_per_session,
                format!("expected between logs.max_line_bytes ({line}) and 1073741824"),
            ));
        }
        if !(self.max_bytes_per_session..=1 << 34).contains(&self.max_bytes_per_server) {
            return Err(invalid(
                "logs.max_bytes_per_server",
                self.max_bytes_per_server,
                format!(
                    "expected between logs.max_bytes_per_session ({}) and 17179869184",
                    self.max_bytes_per_session
                ),
            ));
        }
        if !(60..=366 * 24 * 3600).contains(&self.retention_secs) {
            return Err(invalid(
                "logs.retention_secs",
                self.retention_secs,
                "expected between 60 (a minute) and 31622400 (366 days)".to_owned(),
            ));
        }
        Ok(())
    }

    fn bounds(&self) -> LogBounds {
        LogBounds {
            max_bytes_per_server: self.max_bytes_per_server,
            max_bytes_per_session: self.max_bytes_per_session,
        }
    }
}

/// One line for a server's buffer, as the data plane hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The organization of the session (the line is stored only if `server` is this
    /// organization's).
    pub org: OrgId,
    /// The server whose sandbox produced it.
    pub server: ServerId,
    /// The session's short, non-secret tag (the one the gateway log uses); never the
    /// `Mcp-Session-Id`, which with the token reaches the member's tools.
    pub session: String,
    /// Where it came from.
    pub stream: LogStream,
    /// How much it matters.
    pub level: LogLevel,
    /// The line, already redacted; cut here at `max_line_bytes`.
    pub text: String,
    /// When it was produced, Unix milliseconds.
    pub at_ms: i64,
}

impl LogLine {
    /// A line produced now.
    pub fn now(
        org: OrgId,
        server: ServerId,
        session: impl Into<String>,
        stream: LogStream,
        level: LogLevel,
        text: impl Into<String>,
    ) -> Self {
        LogLine {
            org,
            server,
            session: session.into(),
            stream,
            level,
            text: text.into(),
            at_ms: unix_millis(),
        }
    }
}

/// A stored line as live tails receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailLine {
    /// Its server's organization; tails show only their caller's.
    pub org: OrgId,
    /// The line, with the id it was stored under.
    pub line: StoredLogLine,
}

/// Unix milliseconds now; the log buffer's clock.
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Lines dropped because the queue was full, per (organization, server, session).
#[derive(Debug, Default)]
struct Drops {
    by_source: HashMap<(OrgId, ServerId, String), u64>,
    /// Drops of sessions beyond [`MAX_DROP_SOURCES`]; they reach only the gateway log.
    unattributed: u64,
}

impl Drops {
    fn count(&mut self, key: (OrgId, ServerId, String), lines: u64) {
        if self.by_source.len() < MAX_DROP_SOURCES || self.by_source.contains_key(&key) {
            *self.by_source.entry(key).or_default() += lines;
        } else {
            self.unattributed += lines;
        }
    }
}

/// The log buffer's handle: cheap to clone, shared by the data plane (which appends) and the API
/// (which reads and tails). The writer task ends when the last handle is dropped.
#[derive(Clone)]
pub struct ServerLogs {
    queue: mpsc::Sender<LogLine>,
    drops: Arc<Mutex<Drops>>,
    tail: broadcast::Sender<Arc<TailLine>>,
    /// Becomes `true` at shutdown: live tails end, so draining connections does not wait on them.
    closing: Arc<watch::Sender<bool>>,
    config: Arc<LogsConfig>,
}

impl std::fmt::Debug for ServerLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerLogs")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The task that stores queued lines; see the module notes.
struct Writer {
    store: Store,
    queue: mpsc::Receiver<LogLine>,
    drops: Arc<Mutex<Drops>>,
    tail: broadcast::Sender<Arc<TailLine>>,
    config: Arc<LogsConfig>,
}

impl ServerLogs {
    /// Starts the writer task on the current Tokio runtime and returns the handle. `config`
    /// should have passed [`LogsConfig::validate`].
    pub fn start(store: Store, config: LogsConfig) -> Self {
        let (logs, writer) = Self::unstarted(store, config);
        tokio::spawn(writer.run());
        logs
    }

    /// The handle and a writer not yet running, so a test can fill the queue first.
    fn unstarted(store: Store, config: LogsConfig) -> (Self, Writer) {
        let (queue, receiver) = mpsc::channel(QUEUE_LINES);
        let (tail, _) = broadcast::channel(TAIL_LAG_LINES);
        let drops = Arc::new(Mutex::new(Drops::default()));
        let config = Arc::new(config);
        let writer = Writer {
            store,
            queue: receiver,
            drops: drops.clone(),
            tail: tail.clone(),
            config: config.clone(),
        };
        let logs = ServerLogs {
            queue,
            drops,
            tail,
            closing: Arc::new(watch::Sender::new(false)),
            config,
        };
        (logs, writer)
    }

    /// The settings in force.
    pub fn config(&self) -> &LogsConfig {
        &self.config
    }

    /// Queues a line for its server's buffer. Never blocks and never waits: when the writer is
    /// behind, the line is dropped and counted, and a "lines dropped" line is stored later.
    pub fn append(&self, mut line: LogLine) {
        line.text = clean(&line.text, self.config.max_line_bytes);
        line.session = clean(&line.session, store::MAX_SESSION_TAG_BYTES);
        if let Err(error) = self.queue.try_send(line) {
            let line = match error {
                mpsc::error::TrySendError::Full(line) | mpsc::error::TrySendError::Closed(line) => {
                    line
                }
            };
            self.drops
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .count((line.org, line.server, line.session), 1);
        }
    }

    /// A handle that appends lines of one session of one server, for the data plane's adapters
    /// (stderr reader, sandbox events, egress decisions) to hold.
    pub fn session(&self, org: OrgId, server: ServerId, session: impl Into<String>) -> SessionLog {
        SessionLog {
            logs: self.clone(),
            org,
            server,
            session: session.into(),
        }
    }

    /// Ends every live tail (they send an `end` event); the gateway calls it when it begins to
    /// shut down, since a tail never ends on its own.
    pub fn close_tails(&self) {
        self.closing.send_replace(true);
    }

    /// Changes to `true` when the gateway shuts down; live tails end then.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Every line stored from now on, for live tails; a receiver that falls more than
    /// [`TAIL_LAG_LINES`] behind gets `Lagged` with the number it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TailLine>> {
        self.tail.subscribe()
    }
}

/// The log of one session of one server: [`ServerLogs::append`] with the names filled in.
#[derive(Debug, Clone)]
pub struct SessionLog {
    logs: ServerLogs,
    org: OrgId,
    server: ServerId,
    session: String,
}

impl SessionLog {
    /// Appends a line produced now; never blocks (see [`ServerLogs::append`]).
    pub fn line(&self, stream: LogStream, level: LogLevel, text: impl Into<String>) {
        self.logs.append(LogLine::now(
            self.org.clone(),
            self.server.clone(),
            self.session.clone(),
            stream,
            level,
            text,
        ));
    }
}

/// `text` without trailing line breaks, NUL bytes replaced, and cut to at most `max_bytes`
/// (marked, on a character boundary).
fn clean(text: &str, max_bytes: usize) -> String {
    let text = text.trim_end_matches(['\n', '\r']);
    let mut cleaned = if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    };
    if cleaned.len() > max_bytes {
        let mark = if max_bytes > CUT_MARK.len() * 4 {
            CUT_MARK
        } else {
            ""
        };
        let mut keep = max_bytes - mark.len();
        while !cleaned.is_char_boundary(keep) {
            keep -= 1;
        }
        cleaned.truncate(keep);
        cleaned.push_str(mark);
    }
    cleaned
}

impl Writer {
    async fn run(mut self) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = self.queue.recv() => match received {
                    Some(first) => self.write_batch(first).await,
                    None => {
                        // Every handle is gone: store what dropped counts remain, then stop.
                        self.write_lines(Vec::new()).await;
                        return;
                    }
                },
                _ = sweep.tick() => self.sweep().await,
            }
        }
    }

    async fn write_batch(&mut self, first: LogLine) {
        let mut lines = vec![first];
        while lines.len() < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        self.write_lines(lines).await;
    }

    /// Stores `lines` plus one line per session that had lines dropped since the last batch.
    async fn write_lines(&mut self, lines: Vec<LogLine>) {
        let drops = std::mem::take(&mut *self.drops.lock().unwrap_or_else(PoisonError::into_inner));
        if drops.unattributed > 0 {
            tracing::warn!(
                lines = drops.unattributed,
                "server log lines dropped: the log writer fell behind"
            );
        }
        let now = unix_millis();
        let lines_given = lines.len();
        let mut batch: Vec<NewLogLine> = lines
            .into_iter()
            .map(|line| NewLogLine {
                org: line.org,
                server: line.server,
                session: line.session,
                stream: line.stream,
                level: line.level,
                text: line.text,
                at_ms: line.at_ms,
            })
            .collect();
        let notices: Vec<_> = drops.by_source.into_iter().collect();
        batch.extend(
            notices
                .iter()
                .map(|((org, server, session), count)| NewLogLine {
                    org: org.clone(),
                    server: server.clone(),
                    session: session.clone(),
                    stream: LogStream::Gateway,
                    level: LogLevel::Warn,
                    text: format!("{count} lines dropped: the log writer fell behind"),
                    at_ms: now,
                }),
        );
        if batch.is_empty() {
            return;
        }
        match self
            .store
            .append_server_logs(&self.config.bounds(), &batch)
            .await
        {
            Ok(ids) => {
                for (line, id) in batch.iter().zip(ids) {
                    let Some(id) = id else { continue };
                    // No tail listening is not an error.
                    let _ = self.tail.send(Arc::new(TailLine {
                        org: line.org.clone(),
                        line: StoredLogLine::stored(id, line),
                    }));
                }
            }
            Err(error) => {
                // The store's errors name tables and fields, never a stored value.
                tracing::warn!(%error, lines = batch.len(), "server log lines not stored");
                let mut drops = self.drops.lock().unwrap_or_else(PoisonError::into_inner);
                // Counted like queue drops (with the notices that failed too), so a notice says
                // what is missing once the store answers again.
                for (source, count) in notices {
                    drops.count(source, count);
                }
                for line in batch.into_iter().take(lines_given) {
                    drops.count((line.org, line.server, line.session), 1);
                }
            }
        }
    }

    async fn sweep(&self) {
        let retention_ms = i64::try_from(self.config.retention_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let before = unix_millis().saturating_sub(retention_ms);
        match self.store.sweep_server_logs(before).await {
            Ok(0) => {}
            Ok(swept) => tracing::debug!(lines = swept, "server log lines past retention deleted"),
            Err(error) => tracing::warn!(%error, "server log retention sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests;
