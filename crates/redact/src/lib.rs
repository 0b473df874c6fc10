//! Security decision: replaces every occurrence of a session's secret values in a byte stream
//! with `[REDACTED:NAME]` (promise S18), so a server that echoes a password on its stderr never
//! puts it in the operator's log buffer.
//!
//! - [`Redactor`] is built once per session from the session's `(name, value)` secrets: one
//!   Aho-Corasick automaton over every form of every value, raw, URL-encoded, JSON-escaped and
//!   base64 (module `forms` says exactly which forms, and what of a base64 form is replaced),
//!   plus a filter of the positions where a form may start (module `starts`). It is immutable,
//!   `Send + Sync`, and shared through an `Arc`.
//! - Every occurrence is found, overlapping ones included, and overlapping occurrences become
//!   one marker named leftmost-longest: the longest value wins over one it contains, and a value
//!   that merely overlaps another in the text loses none of its bytes (plain leftmost-longest
//!   matching, which resumes after the first match, would let the second value's tail through).
//! - [`StreamRedactor`] is the state of one stream (one task owns it): `feed` chunks as they are
//!   read, `finish` at the end. A value split across reads at any byte is still redacted; it holds
//!   back at most the longest form's length minus one byte, and nothing behind a newline when no
//!   raw value contains one.
//! - [`LineRedactor`] turns a stream into complete redacted lines of bounded length, for log
//!   buffers. Lines are cut after redaction, so a cut never lets a value through.
//!
//! Short values: an empty value is ignored; a value shorter than [`MIN_ENCODED_LEN`] bytes is
//! matched raw, URL-encoded and JSON-escaped but not in base64, and also replaces unrelated text
//! that happens to equal it. [`coverage`] lets the API warn about both when a value is saved.
//!
//! Memory: the copies this crate makes while building (every form, each allocated at its final
//! size) are zeroized as soon as the automaton is built; the start filter's table is zeroized on
//! drop; a stream's held-back bytes live in one buffer allocated once and zeroized on drop.
//! **The automaton's own memory cannot be zeroized**: `aho-corasick` owns it (and the
//! intermediate structures it frees while building) and does not wipe it, so it holds the forms
//! of every value for as long as the session's `Redactor` lives, and leaves them in freed heap
//! memory afterwards.
//!
//! This crate never does I/O, never logs, and never prints a value (`Debug` shows names only).

mod forms;
mod lines;
mod starts;
mod stream;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};

use crate::starts::StartFilter;

pub use forms::MIN_ENCODED_LEN;
pub use lines::{LineEnd, LineRedactor};
pub use stream::StreamRedactor;

/// Why a redactor could not be built; never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum RedactorError {
    /// The name would make a marker that is ambiguous or breaks a log line.
    #[error("secret name {name:?} is not 1 to 64 printable ASCII characters without `]`")]
    InvalidName {
        /// The name as given (names are not secret).
        name: String,
    },
    /// The automaton could not be built (too many or too long values).
    #[error("cannot build the redaction automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

/// How a value will be redacted, so the API can warn when it is saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// An empty value: nothing to redact.
    Ignored,
    /// Under [`MIN_ENCODED_LEN`] bytes: matched raw, URL-encoded and JSON-escaped, not in base64.
    ShortValue,
    /// Matched in every form.
    AllForms,
}

impl Coverage {
    /// The sentence an API shows beside a value that is not fully covered.
    pub fn warning(self) -> Option<&'static str> {
        match self {
            Coverage::Ignored => Some("an empty value is never redacted"),
            Coverage::ShortValue => Some(
                "values under 8 bytes are not redacted in base64 output, and every occurrence \
                 of the value in a server's log is replaced, even inside unrelated text",
            ),
            Coverage::AllForms => None,
        }
    }
}

/// Tells how `value` will be redacted (see [`Coverage`]).
pub fn coverage(value: &[u8]) -> Coverage {
    match value.len() {
        0 => Coverage::Ignored,
        len if len < MIN_ENCODED_LEN => Coverage::ShortValue,
        _ => Coverage::AllForms,
    }
}

/// The secrets of one session, compiled into one automaton over all their forms.
pub struct Redactor {
    /// `None` when no secret has a value: everything passes through.
    search: Option<Search>,
    /// For each pattern id, the index of its marker in `markers`.
    marker_of_pattern: Vec<usize>,
    /// `[REDACTED:NAME]` per distinct name, sorted by name.
    markers: Vec<Box<[u8]>>,
    /// Bytes a stream must hold back: the longest form's length minus one.
    hold: usize,
    /// No form contains `\n`, so no match can span one and a stream may release every byte
    /// before its last newline at once.
    newline_ends_matches: bool,
}

impl Redactor {
    /// Builds the automaton over every form of every non-empty value.
    ///
    /// When two names have a form in common (equal values, say), the form is redacted under the
    /// name that sorts first, whatever the order given. Overlapping occurrences in the text become
    /// one marker, named by the one starting first, and of those the longest.
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Redactor, RedactorError> {
        let mut names: Vec<&str> = Vec::new();
        // (form, index into `names`); the forms are zeroized when this drops.
        let mut patterns: Vec<(forms::Form, usize)> = Vec::new();
        for (name, value) in secrets {
            if !valid_name(name) {
                return Err(RedactorError::InvalidName {
                    name: name.to_owned(),
                });
            }
            let found = forms::forms(value);
            if found.is_empty() {
                continue;
            }
            let index = names.len();
            names.push(name);
            patterns.extend(found.into_iter().map(|form| (form, index)));
        }
        // Markers are numbered in name order, so that sorting equal forms by marker and keeping
        // the first gives every shared form to the name that sorts first.
        let mut distinct_names = names.clone();
        distinct_names.sort_unstable();
        distinct_names.dedup();
        for pattern in &mut patterns {
            pattern.1 = distinct_names
                .binary_search(&names[pattern.1])
                .unwrap_or(pattern.1);
        }
        patterns.sort_by(|a, b| a.0.as_slice().cmp(b.0.as_slice()).then(a.1.cmp(&b.1)));
        patterns.dedup_by(|later, first| later.0.as_slice() == first.0.as_slice());
        let markers: Vec<Box<[u8]>> = distinct_names
            .iter()
            .map(|name| format!("[REDACTED:{name}]").into_bytes().into_boxed_slice())
            .collect();
        let marker_of_pattern: Vec<usize> = patterns.iter().map(|p| p.1).collect();
        let hold = patterns
            .iter()
            .map(|p| p.0.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        let newline_ends_matches = !patterns.iter().any(|p| p.0.contains(&b'\n'));
        let search = if patterns.is_empty() {
            None
        } else {
            let forms = patterns.iter().map(|p| p.0.as_slice());
            Some(Search {
                // Anchored only: the start filter picks the positions, the automaton gives the
                // longest form at each. A contiguous NFA is a fraction of a DFA's memory
                // (0.4 MiB against 11.5 for 50 secrets) and these searches are a few bytes long.
                automaton: AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .start_kind(StartKind::Anchored)
                    .kind(Some(AhoCorasickKind::ContiguousNFA))
                    .build(forms.clone())?,
                starts: StartFilter::new(forms),
            })
        };
        Ok(Redactor {
            search,
            marker_of_pattern,
            markers,
            hold,
            newline_ends_matches,
        })
    }

    /// Redacts a whole buffer at once (an error message, a finished output).
    pub fn redact(&self, input: &[u8], out: &mut Vec<u8>) {
        self.process(input, true, 0, out);
    }

    /// How many distinct forms the automaton looks for (for benchmarks and diagnostics).
    pub fn pattern_count(&self) -> usize {
        self.marker_of_pattern.len()
    }

    /// The most bytes a stream holds back, waiting to see whether they start a value.
    pub fn max_held_back(&self) -> usize {
        self.hold
    }

    /// Heap bytes of the automaton, which holds the forms until the redactor drops.
    pub fn automaton_memory(&self) -> usize {
        self.search
            .as_ref()
            .map_or(0, |search| search.automaton.memory_usage())
    }

    /// Redacts the decided prefix of `buf` into `sink`: every byte before the returned horizon
    /// is written out or inside a marker, and the rest must be presented again with what follows.
    /// The first `covered` bytes of `buf` are already behind a marker (a match that ran past the
    /// previous horizon); the returned `covered` says the same of the bytes from the horizon on.
    /// With `at_end` every byte is decided.
    ///
    /// Every occurrence of every form is found: each position that may start a form (module
    /// `starts`) runs the automaton anchored there, which gives the longest form starting at
    /// that position. Occurrences that overlap are merged under one marker, so a value that
    /// overlaps another in the text loses none of its bytes. Of a run of overlapping
    /// occurrences, the one starting first, and of those the longest, names the marker: the
    /// longest value wins over one it contains.
    ///
    /// The horizon is `buf.len() - hold`: an occurrence that starts before it ends inside `buf`,
    /// so it has been found, and one found later starts at or after it. A newline is a second
    /// horizon when no form contains one, since then no occurrence crosses it.
    fn process(&self, buf: &[u8], at_end: bool, covered: usize, sink: &mut impl Sink) -> Decided {
        let Some(search) = &self.search else {
            sink.text(buf);
            return Decided {
                horizon: buf.len(),
                covered: 0,
            };
        };
        let mut horizon = if at_end {
            buf.len()
        } else {
            buf.len().saturating_sub(self.hold)
        };
        if self.newline_ends_matches
            && horizon < buf.len()
            && let Some(newline) = memchr::memrchr(b'\n', &buf[horizon..])
        {
            horizon += newline + 1;
        }
        // Everything before `done` is written out or behind a marker. Positions are visited in
        // order and each yields its longest form, so the union of those is the union of all
        // occurrences, and the first one of a run of overlapping occurrences names it.
        let mut done = covered.min(buf.len());
        search.starts.candidates(buf, horizon, |start| {
            let input = Input::new(buf).range(start..).anchored(Anchored::Yes);
            let Some(found) = search.automaton.find(input) else {
                return;
            };
            if start < done {
                // Overlaps what the last marker hides: hide the rest of it too.
                done = done.max(found.end());
                return;
            }
            sink.text(&buf[done..start]);
            sink.marker(self.marker(found.pattern().as_usize()));
            done = found.end();
        });
        if done < horizon {
            sink.text(&buf[done..horizon]);
        }
        Decided {
            horizon,
            covered: done.saturating_sub(horizon),
        }
    }

    fn marker(&self, pattern: usize) -> &[u8] {
        // Every pattern id has a marker by construction; the fallback still hides the value.
        let index = self.marker_of_pattern.get(pattern).copied().unwrap_or(0);
        self.markers
            .get(index)
            .map_or(b"[REDACTED]", |marker| marker)
    }
}

impl std::fmt::Debug for Redactor {
    // Names only: a value or a form must never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("names", &self.markers.len())
            .field("patterns", &self.marker_of_pattern.len())
            .field("max_held_back", &self.hold)
            .finish_non_exhaustive()
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic() && b != b']')
}

/// The automaton and the filter that tells where to run it.
struct Search {
    automaton: AhoCorasick,
    starts: StartFilter,
}

/// What [`Redactor::process`] decided about a buffer.
struct Decided {
    /// Every byte before this is written out or behind a marker.
    horizon: usize,
    /// How many bytes from the horizon on are behind the last marker already.
    covered: usize,
}

/// Where redacted output goes: plain bytes, or lines that keep a marker whole when they can.
trait Sink {
    fn text(&mut self, bytes: &[u8]);
    fn marker(&mut self, marker: &[u8]);
}

impl Sink for Vec<u8> {
    fn text(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn marker(&mut self, marker: &[u8]) {
        self.extend_from_slice(marker);
    }
}
