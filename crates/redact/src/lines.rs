//! Redacted lines of bounded length, the shape a server's stderr takes in the log buffer.
//!
//! Lines are cut from the redacted stream, never from the input, so a cut cannot split a value
//! into two halves that each escape the automaton. A piece is cut before a marker rather than
//! through it when the marker fits in a piece, and before a UTF-8 character rather than inside
//! it when the character's bytes are in view; the `\n` ending a line is not part of it.

use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::{Redactor, Sink, StreamRedactor};

/// Why a line handed to the callback ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnd {
    /// The stream had a `\n` here.
    Newline,
    /// The line reached the maximum length and goes on in the next piece.
    Cut,
    /// The stream ended without a final `\n`.
    EndOfStream,
}

/// Redacts one stream into complete lines of at most `max_line_bytes` bytes.
pub struct LineRedactor {
    stream: StreamRedactor,
    /// The redacted, not yet complete, current line; never longer than `max_line_bytes`.
    line: Vec<u8>,
    max_line_bytes: usize,
}

impl LineRedactor {
    /// Starts a stream whose lines are cut into pieces of at most `max_line_bytes` bytes.
    pub fn new(redactor: Arc<Redactor>, max_line_bytes: NonZeroUsize) -> LineRedactor {
        LineRedactor {
            stream: StreamRedactor::new(redactor),
            line: Vec::new(),
            max_line_bytes: max_line_bytes.get(),
        }
    }

    /// Feeds a chunk; calls `on_line` with each line (or piece) it completes, redacted.
    pub fn feed(&mut self, chunk: &[u8], mut on_line: impl FnMut(&[u8], LineEnd)) {
        let mut sink = LineSink {
            line: &mut self.line,
            max: self.max_line_bytes,
            on_line: &mut on_line,
        };
        self.stream.feed_into(chunk, &mut sink);
    }

    /// Ends the stream: redacts what was held back and hands over the last, unterminated line.
    pub fn finish(mut self, mut on_line: impl FnMut(&[u8], LineEnd)) {
        let mut sink = LineSink {
            line: &mut self.line,
            max: self.max_line_bytes,
            on_line: &mut on_line,
        };
        self.stream.finish_into(&mut sink);
        if !sink.line.is_empty() {
            sink.emit(LineEnd::EndOfStream);
        }
    }
}

impl std::fmt::Debug for LineRedactor {
    // Sizes only: the pending line is log text, which has no place in a `Debug` dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineRedactor")
            .field("stream", &self.stream)
            .field("pending_line", &self.line.len())
            .field("max_line_bytes", &self.max_line_bytes)
            .finish()
    }
}

struct LineSink<'a, F: FnMut(&[u8], LineEnd)> {
    line: &'a mut Vec<u8>,
    max: usize,
    on_line: &'a mut F,
}

impl<F: FnMut(&[u8], LineEnd)> LineSink<'_, F> {
    fn emit(&mut self, end: LineEnd) {
        (self.on_line)(self.line, end);
        self.line.clear();
    }

    /// Appends bytes holding no newline, cutting a piece each time the line is full.
    fn append(&mut self, mut bytes: &[u8]) {
        while self.line.len() + bytes.len() > self.max {
            let room = self.max - self.line.len();
            let mut take = room;
            // Back off to a character boundary (at most 3 continuation bytes).
            while take > 0 && room - take < 3 && bytes.get(take).is_some_and(|&b| b & 0xc0 == 0x80)
            {
                take -= 1;
            }
            if take == 0 && self.line.is_empty() {
                // Not even one character fits: cut inside it rather than never progress.
                take = room;
            }
            self.line.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            self.emit(LineEnd::Cut);
        }
        self.line.extend_from_slice(bytes);
    }
}

impl<F: FnMut(&[u8], LineEnd)> Sink for LineSink<'_, F> {
    fn text(&mut self, mut bytes: &[u8]) {
        while let Some(newline) = memchr::memchr(b'\n', bytes) {
            self.append(&bytes[..newline]);
            self.emit(LineEnd::Newline);
            bytes = &bytes[newline + 1..];
        }
        self.append(bytes);
    }

    fn marker(&mut self, marker: &[u8]) {
        if self.line.len() + marker.len() > self.max
            && marker.len() <= self.max
            && !self.line.is_empty()
        {
            self.emit(LineEnd::Cut);
        }
        self.append(marker);
    }
}
