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

/// Lines queued for a server's stdin before senders wait.
const WRITE_QUEUE: usize = 256;

/// How long a closed stdout waits for the exit status, which makes the better reason.
const EXIT_GRACE: Duration = Duration::from_millis(250);

/// Starts the I/O tasks and returns the queue that writes to the server's stdin.
pub(super) fn spawn(
    launched: LaunchedServer,
    shared: Arc<Shared>,
    max_message_bytes: usize,
) -> mpsc::Sender<String> {
    let LaunchedServer {
        mut stdin,
        stdout,
        mut stderr,
        mut handle,
    } = launched;
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
    tokio::spawn(async move {
        // Server logs get their own redacting buffer in a later change; until then they are
        // read and dropped so a chatty server never blocks on a full pipe.
        let mut sink = vec![0_u8; 8 * 1024];
        loop {
            tokio::select! {
                read = stderr.read(&mut sink) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                () = drain_cancel.cancelled() => return,
            }
        }
    });

    tokio::spawn(async move {
        tokio::select! {
            exit = handle.wait() => shared.close(exit),
            () = shared.cancel.cancelled() => {}
        }
        handle.terminate().await;
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
