//! Security decision: the per-stream state that redacts a value split across reads at any byte.
//!
//! Only the undecided tail of the input (at most [`Redactor::max_held_back`] bytes) is kept
//! between reads, in a buffer sized once for twice that and never grown, so unredacted bytes
//! are never left behind in memory freed by a reallocation; it is zeroized on drop. Chunks
//! themselves are searched in place, not copied.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::{Redactor, Sink};

/// Redacts one byte stream (a server's stderr) read in chunks of any size.
pub struct StreamRedactor {
    redactor: Arc<Redactor>,
    /// The undecided tail of what was fed so far; at most `hold` bytes between calls.
    carry: Zeroizing<Vec<u8>>,
    /// How many leading bytes of `carry` are already behind an emitted marker.
    covered: usize,
}

impl StreamRedactor {
    /// Starts a stream over the session's secrets.
    pub fn new(redactor: Arc<Redactor>) -> StreamRedactor {
        let carry = Zeroizing::new(Vec::with_capacity(2 * redactor.hold));
        StreamRedactor {
            redactor,
            carry,
            covered: 0,
        }
    }

    /// Appends to `out` every byte of the stream so far that can no longer be part of a value,
    /// redacted; keeps the rest for the next call.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.feed_into(chunk, out);
    }

    /// Appends the redacted rest of the stream to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.finish_into(out);
    }

    pub(crate) fn feed_into(&mut self, chunk: &[u8], sink: &mut impl Sink) {
        let hold = self.redactor.hold;
        let mut rest = chunk;
        if !self.carry.is_empty() {
            // Search the tail and the start of the chunk together. With `hold` bytes of the
            // chunk appended, every carried position is decided (its horizon is the carry's
            // length), so afterwards the chunk can be searched on its own.
            let carried = self.carry.len();
            let take = rest.len().min(hold);
            self.carry.extend_from_slice(&rest[..take]);
            let decided = self
                .redactor
                .process(&self.carry, false, self.covered, sink);
            self.covered = decided.covered;
            if take == rest.len() {
                self.carry.drain(..decided.horizon);
                return;
            }
            self.carry.clear();
            // The horizon is at least `carried` here (see above), so no carried byte is lost.
            rest = &rest[decided.horizon.saturating_sub(carried)..];
        }
        let decided = self.redactor.process(rest, false, self.covered, sink);
        self.covered = decided.covered;
        self.carry.extend_from_slice(&rest[decided.horizon..]);
    }

    pub(crate) fn finish_into(&mut self, sink: &mut impl Sink) {
        self.redactor.process(&self.carry, true, self.covered, sink);
        self.carry.clear();
        self.covered = 0;
    }
}

impl std::fmt::Debug for StreamRedactor {
    // The carry is unredacted input: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRedactor")
            .field("held_back", &self.carry.len())
            .finish_non_exhaustive()
    }
}
