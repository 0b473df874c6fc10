//! Splicing an allowed connection, with every relayed byte charged to the sandbox's budget.
//!
//! `copy_bidirectional` does the copying with its two fixed buffers; the only extra work per read
//! is one atomic update, done by [`Metered`], which also ends the connection when a read would
//! take the sandbox past its lifetime byte budget.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, copy_bidirectional};
use tokio::net::{TcpStream, UnixStream};

use super::{Direction, EgressCounters};

/// The error a [`Metered`] read returns once the byte budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("the sandbox's egress byte limit is reached")]
struct ByteLimitReached;

fn byte_limit() -> io::Error {
    io::Error::other(ByteLimitReached)
}

fn is_byte_limit(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<ByteLimitReached>())
}

/// A stream whose reads are charged to the budget; a read that does not fit is discarded and
/// fails, which makes `copy_bidirectional` close both sides.
struct Metered<'a, S> {
    inner: S,
    counters: &'a EgressCounters,
    direction: Direction,
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.counters.exhausted() {
            return Poll::Ready(Err(byte_limit()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        if read > 0 && !this.counters.charge(this.direction, read as u64) {
            // Drop the bytes that don't fit: nothing past the budget is ever relayed.
            buf.set_filled(before);
            return Poll::Ready(Err(byte_limit()));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Sends bytes the client had already sent with its request (a rewritten HTTP head, an early TLS
/// ClientHello) to the destination, charged like relayed bytes.
pub(super) async fn send_early(
    counters: &EgressCounters,
    remote: &mut TcpStream,
    bytes: &[u8],
) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    if !counters.charge(Direction::Sent, bytes.len() as u64) {
        tracing::info!("egress byte limit reached; connection closed");
        return Err(byte_limit());
    }
    remote.write_all(bytes).await
}

/// Relays both directions until both are done, an error occurs or the byte budget runs out.
pub(super) async fn relay(counters: &EgressCounters, client: UnixStream, remote: TcpStream) {
    let mut client = Metered {
        inner: client,
        counters,
        direction: Direction::Sent,
    };
    let mut remote = Metered {
        inner: remote,
        counters,
        direction: Direction::Received,
    };
    match copy_bidirectional(&mut client, &mut remote).await {
        Ok(_) => {}
        Err(error) if is_byte_limit(&error) => {
            tracing::info!("egress byte limit reached; connection closed");
        }
        Err(error) => tracing::debug!(%error, "egress connection ended with an error"),
    }
}
