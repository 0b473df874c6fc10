//! Newline-delimited JSON-RPC over a launched server's stdin and stdout, with stderr drained.
//!
//! Senders write their own line to stdin when nothing is queued (see [`Stdin`]). Four tasks per
//! server: a stdin drain (writes what the pipe did not take at once, in order), a reader
//! (bounded lines: a line over the size limit, or one that is not a JSON-RPC message, ends the
//! connection), a stderr drain, and a watcher that ends the server when the connection is
//! cancelled and records how it exited otherwise.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::{Shared, lock};
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

/// Bytes queued for a server's stdin before senders wait (one message always fits). The drain
/// task holds one more such chunk while it writes it.
const WRITE_QUEUE_BYTES: usize = 1024 * 1024;

/// How long a closed stdout waits for the exit status, which makes the better reason.
const EXIT_GRACE: Duration = Duration::from_millis(250);

/// Starts the I/O tasks and returns the server's stdin.
pub(super) fn spawn(
    launched: LaunchedServer,
    shared: Arc<Shared>,
    max_message_bytes: usize,
    log: ServerLog,
) -> Arc<Stdin> {
    let LaunchedServer {
        stdin,
        stdout,
        mut stderr,
        mut handle,
        events,
    } = launched;
    let log = Arc::new(log);
    log.line(LogStream::Sandbox, LogLevel::Info, "started".to_owned());
    let stdin = Arc::new(Stdin::new(stdin));
    tokio::spawn(stdin.clone().drain(shared.clone()));

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

    stdin
}

/// A server's stdin. A sender writes its line itself when nothing is queued and the pipe
/// takes it whole, which is the common case and costs no hand-off to another task; otherwise
/// the line (or what the pipe did not take) is queued, in order, for the drain task.
pub(super) struct Stdin {
    state: Mutex<StdinState>,
    /// Wakes the drain task: something was queued.
    queued: Notify,
    /// Wakes senders waiting for room in the queue.
    room: Notify,
}

struct StdinState {
    /// The pipe, unless the drain task holds it while it writes the queue.
    pipe: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// Bytes not yet written, in order; only ever written by whoever holds the pipe.
    queue: Vec<u8>,
    /// The pipe failed or the connection ended: nothing more is written.
    closed: bool,
}

/// The server's stdin no longer takes messages.
pub(super) struct StdinClosed;

impl Stdin {
    fn new(pipe: Pin<Box<dyn AsyncWrite + Send>>) -> Self {
        Stdin {
            state: Mutex::new(StdinState {
                pipe: Some(pipe),
                queue: Vec::new(),
                closed: false,
            }),
            queued: Notify::new(),
            room: Notify::new(),
        }
    }

    /// Writes one message as a line; waits only while the queue is full.
    pub(super) async fn send(&self, mut line: String) -> Result<(), StdinClosed> {
        line.push('\n');
        let mut line = Some(line.into_bytes());
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            // Polled once, never held across an await: the lock is taken and released inside.
            let sent = std::future::poll_fn(|cx| {
                let mut state = lock(&self.state);
                if state.closed {
                    return Poll::Ready(Err(StdinClosed));
                }
                if state.queue.len() >= WRITE_QUEUE_BYTES {
                    return Poll::Ready(Ok(false));
                }
                let Some(bytes) = line.take() else {
                    return Poll::Ready(Ok(true));
                };
                let state = &mut *state;
                let written = match state.pipe.as_mut() {
                    Some(pipe) if state.queue.is_empty() => {
                        match pipe.as_mut().poll_write(cx, &bytes) {
                            Poll::Ready(Ok(written)) => written,
                            Poll::Ready(Err(_)) => {
                                state.closed = true;
                                return Poll::Ready(Err(StdinClosed));
                            }
                            Poll::Pending => 0,
                        }
                    }
                    _ => 0,
                };
                if written < bytes.len() {
                    state.queue.extend_from_slice(&bytes[written..]);
                    self.queued.notify_one();
                }
                Poll::Ready(Ok(true))
            })
            .await?;
            if sent {
                return Ok(());
            }
            room.await;
        }
    }

    /// Writes what senders queued, in order, until the connection ends; then drops the pipe,
    /// so the server sees end of file and can exit on its own.
    async fn drain(self: Arc<Self>, shared: Arc<Shared>) {
        loop {
            tokio::select! {
                () = self.queued.notified() => {}
                () = shared.cancel.cancelled() => break,
            }
            loop {
                let (mut pipe, chunk) = {
                    let mut state = lock(&self.state);
                    if state.queue.is_empty() {
                        break;
                    }
                    let Some(pipe) = state.pipe.take() else {
                        break;
                    };
                    (pipe, std::mem::take(&mut state.queue))
                };
                self.room.notify_waiters();
                let written = tokio::select! {
                    written = async {
                        pipe.write_all(&chunk).await?;
                        pipe.flush().await
                    } => written,
                    () = shared.cancel.cancelled() => break,
                };
                if written.is_err() {
                    lock(&self.state).closed = true;
                    self.room.notify_waiters();
                    shared.close("stopped reading its standard input");
                    return;
                }
                lock(&self.state).pipe = Some(pipe);
            }
        }
        let pipe = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.pipe.take()
        };
        drop(pipe);
        self.room.notify_waiters();
    }
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Weak;

    use tokio::io::{AsyncBufReadExt as _, BufReader};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::upstream::UpstreamEvents;

    struct NoEvents;

    impl UpstreamEvents for NoEvents {
        fn message(&self, _: Message, _: Option<u64>) {}
        fn closed(&self, _: &str) {}
    }

    fn shared() -> Arc<Shared> {
        let events: Weak<dyn UpstreamEvents> = Weak::<NoEvents>::new();
        Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            closed: Mutex::new(None),
            events,
            cancel: CancellationToken::new(),
            gone: CancellationToken::new(),
        })
    }

    /// A server that does not read for a while: lines are queued, not lost or reordered, and
    /// arrive once it reads; a sender waits only when the queue is full.
    #[tokio::test]
    async fn a_full_pipe_queues_lines_in_order_and_holds_senders_back_at_the_bound() {
        let (pipe, server_end) = tokio::io::duplex(64);
        let stdin = Arc::new(Stdin::new(Box::pin(pipe)));
        let shared = shared();
        tokio::spawn(stdin.clone().drain(shared.clone()));

        // 64 bytes fit in the pipe; the rest of these go to the queue, and sending never waits.
        let lines: Vec<String> = (0..200).map(|n| format!("line {n:03}")).collect();
        for line in &lines {
            tokio::time::timeout(Duration::from_secs(5), stdin.send(line.clone()))
                .await
                .expect("a sender waits only for a full queue")
                .unwrap_or_else(|_| panic!("stdin closed"));
        }
        // Over the bound, the next sender waits until the server reads. (The drain task holds
        // one taken chunk while it writes, so memory stays under two bounds and a message.)
        // Let the drain task take what is queued; it then waits on the full pipe.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let big = "x".repeat(WRITE_QUEUE_BYTES);
        stdin
            .send(big.clone())
            .await
            .unwrap_or_else(|_| panic!("stdin closed"));
        let waiting = tokio::spawn({
            let stdin = stdin.clone();
            async move { stdin.send("after the bound".to_owned()).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "a sender went past a full queue");

        let mut read = BufReader::new(server_end).lines();
        for line in &lines {
            assert_eq!(
                read.next_line().await.unwrap().as_deref(),
                Some(line.as_str())
            );
        }
        assert_eq!(
            read.next_line().await.unwrap().map(|line| line.len()),
            Some(big.len())
        );
        assert!(waiting.await.unwrap(), "the waiting sender was let through");
        assert_eq!(
            read.next_line().await.unwrap().as_deref(),
            Some("after the bound")
        );

        // Ending the connection closes the pipe: the server reads end of file, and nothing
        // more can be sent.
        shared.cancel.cancel();
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), read.next_line())
                .await
                .expect("the pipe closes")
                .unwrap(),
            None
        );
        assert!(stdin.send("late".to_owned()).await.is_err());
    }
}
