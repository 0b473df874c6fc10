//! Newline-delimited JSON-RPC over a launched server's stdin and stdout, with stderr drained.
//!
//! Four tasks per server: a writer (batches lines, flushes when idle), a reader (bounded lines:
//! a line over the size limit, or one that is not a JSON-RPC message, ends the connection), a
//! stderr drain, and a watcher that ends the server when the connection is cancelled and
//! records how it exited otherwise.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::Shared;
use crate::jsonrpc::Message;
use crate::launcher::LaunchedServer;
use crate::logs::{LogLevel, LogSource, LogStream, ServerLogSink};

/// Longest stderr line kept whole; a longer one is cut (after redaction) into pieces.
const MAX_STDERR_LINE: usize = 8 * 1024;

/// Where one server's stderr and launcher events go: through the session's redactor into the
/// log sink (S18).
pub(super) struct ServerLog {
    /// The sink.
    pub sink: Arc<dyn ServerLogSink>,
    /// Knows the values of the secrets this server was given.
    pub redactor: Arc<redact::Redactor>,
    /// The organization's id.
    pub org: String,
    /// The server's id.
    pub server_id: String,
    /// The session's tag.
    pub session: String,
}

impl ServerLog {
    fn line(&self, stream: LogStream, level: LogLevel, text: String) {
        let source = LogSource {
            org: &self.org,
            server_id: &self.server_id,
            session: &self.session,
        };
        self.sink.line(source, stream, level, text);
    }
}

/// Lines queued for a server's stdin before senders wait.
const WRITE_QUEUE: usize = 256;

/// How long a closed stdout waits for the exit status, which makes the better reason.
const EXIT_GRACE: Duration = Duration::from_millis(250);

/// Starts the I/O tasks and returns the queue that writes to the server's stdin.
pub(super) fn spawn(
    launched: LaunchedServer,
    shared: Arc<Shared>,
    max_message_bytes: usize,
    log: ServerLog,
) -> mpsc::Sender<String> {
    let LaunchedServer {
        mut stdin,
        stdout,
        mut stderr,
        mut handle,
        events,
    } = launched;
    let log = Arc::new(log);
    log.line(LogStream::Sandbox, LogLevel::Info, "started".to_owned());
    let (lines, mut queue) = mpsc::channel::<String>(WRITE_QUEUE);

    let writer_shared = shared.clone();
    tokio::spawn(async move {
        let mut buffer = Vec::with_capacity(8 * 1024);
        // Ending the connection drops stdin here, so the server sees EOF and can exit on its
        // own before the launcher's grace period runs out.
        while let Some(line) = tokio::select! {
            line = queue.recv() => line,
            () = writer_shared.cancel.cancelled() => None,
        } {
            buffer.clear();
            buffer.extend_from_slice(line.as_bytes());
            buffer.push(b'\n');
            // Take what else is queued, so a burst costs one write and one flush.
            while let Ok(line) = queue.try_recv() {
                buffer.extend_from_slice(line.as_bytes());
                buffer.push(b'\n');
            }
            let written = async {
                stdin.write_all(&buffer).await?;
                stdin.flush().await
            };
            if written.await.is_err() {
                writer_shared.close("stopped reading its standard input");
                return;
            }
        }
    });

    let reader_shared = shared.clone();
    tokio::spawn(async move {
        let mut frames =
            FramedRead::new(stdout, LinesCodec::new_with_max_length(max_message_bytes));
        let reason = loop {
            let line = tokio::select! {
                line = frames.next() => line,
                () = reader_shared.cancel.cancelled() => return,
            };
            match line {
                Some(Ok(line)) if line.trim().is_empty() => continue,
                Some(Ok(line)) => match Message::parse(line.as_bytes()) {
                    Ok(message) => reader_shared.deliver(message, None),
                    Err(error) => {
                        // The line itself is not logged: it may hold anything the server knows.
                        break format!(
                            "wrote a line that is not a JSON-RPC message ({})",
                            error_kind(&error)
                        );
                    }
                },
                Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                    break format!("wrote a message over the {max_message_bytes}-byte limit");
                }
                Some(Err(LinesCodecError::Io(error))) => {
                    break format!("standard output failed: {error}");
                }
                None => {
                    tokio::time::sleep(EXIT_GRACE).await;
                    break "closed its standard output".to_owned();
                }
            }
        };
        reader_shared.close(reason);
    });

    let drain_cancel = shared.cancel.clone();
    let drain_log = log.clone();
    tokio::spawn(async move {
        // Every byte passes the redactor before it becomes a line (S18); a chatty server never
        // blocks on a full pipe, and a line over the bound is cut after redaction.
        let mut lines = redact::LineRedactor::new(
            drain_log.redactor.clone(),
            std::num::NonZeroUsize::new(MAX_STDERR_LINE).unwrap_or(std::num::NonZeroUsize::MIN),
        );
        let emit = |line: &[u8], _end: redact::LineEnd| {
            drain_log.line(
                LogStream::Stderr,
                LogLevel::Info,
                String::from_utf8_lossy(line).into_owned(),
            );
        };
        let mut chunk = vec![0_u8; 8 * 1024];
        loop {
            tokio::select! {
                read = stderr.read(&mut chunk) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => lines.feed(&chunk[..n], emit),
                },
                () = drain_cancel.cancelled() => break,
            }
        }
        lines.finish(emit);
    });

    if let Some(mut events) = events {
        let events_log = log.clone();
        let events_cancel = shared.gone.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => events_log.line(event.stream, event.level, event.text),
                        None => return,
                    },
                    () = events_cancel.cancelled() => return,
                }
            }
        });
    }

    tokio::spawn(async move {
        let ended = tokio::select! {
            exit = handle.wait() => {
                let line = format!("ended: it {exit}");
                shared.close(exit);
                line
            }
            () = shared.cancel.cancelled() => "ended: the session closed its connection".to_owned(),
        };
        handle.terminate().await;
        log.line(LogStream::Sandbox, LogLevel::Info, ended);
        shared.gone.cancel();
    });

    lines
}

/// Names a parse failure without quoting the input.
fn error_kind(error: &crate::jsonrpc::MessageError) -> &'static str {
    use crate::jsonrpc::MessageError as E;
    match error {
        E::NotJson(_) => "not JSON",
        E::Batch => "a batch",
        E::NotObject => "not an object",
        E::Version => "no \"jsonrpc\": \"2.0\"",
        E::BadId => "a bad id",
        E::BadMethod => "a bad method",
        E::BadParams => "bad params",
        E::Shape => "neither request, notification nor response",
    }
}
