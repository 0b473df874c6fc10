//! Server-sent event streams of one session, with the bounded replay buffer behind resumability.
//!
//! Each POSTed request gets a stream; the session has one more, number 0, for what belongs to no
//! request (list changes, resource updates, upstream requests outside a call). Event ids are
//! `{stream}-{sequence}`, so a `Last-Event-ID` names both the stream and where to resume. A
//! stream keeps its last [`BUFFER_EVENTS`] events (and at most [`BUFFER_BYTES`]) for a client
//! that reconnects; one live connection reads it at a time, and a reader that falls
//! [`LIVE_QUEUE`] events behind is cut off (it may resume from the buffer).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::jsonrpc::Message;
use crate::upstream::lock;

/// Events a stream keeps for resumption.
pub const BUFFER_EVENTS: usize = 256;
/// Bytes a stream keeps for resumption.
pub const BUFFER_BYTES: usize = 4 * 1024 * 1024;
/// Events queued for a live reader before it is cut off.
const LIVE_QUEUE: usize = 128;

/// One event: a JSON-RPC message and its place in the stream.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Its sequence number in the stream (from 1).
    pub seq: u64,
    /// The message, serialized once.
    pub json: Arc<str>,
    /// The answer that completes a request stream.
    pub last: bool,
}

/// One stream's buffer and live reader.
#[derive(Debug)]
pub(crate) struct EventStream {
    index: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    buffer: VecDeque<Event>,
    bytes: usize,
    live: Option<mpsc::Sender<Event>>,
    finished: bool,
}

impl EventStream {
    /// A new, empty stream.
    pub(crate) fn new(index: u64) -> Self {
        EventStream {
            index,
            state: Mutex::new(State {
                next_seq: 1,
                ..State::default()
            }),
        }
    }

    /// Its number in the session.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    /// The SSE id of event `seq`.
    pub(crate) fn event_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.index)
    }

    /// Appends a message; `last` completes the stream after it.
    pub(crate) fn push(&self, message: &Message, last: bool) {
        let json: Arc<str> = Arc::from(message.to_json());
        let mut state = lock(&self.state);
        if state.finished {
            return;
        }
        let event = Event {
            seq: state.next_seq,
            json,
            last,
        };
        state.next_seq += 1;
        state.bytes += event.json.len();
        state.buffer.push_back(event.clone());
        while state.buffer.len() > BUFFER_EVENTS
            || (state.bytes > BUFFER_BYTES && state.buffer.len() > 1)
        {
            if let Some(old) = state.buffer.pop_front() {
                state.bytes -= old.json.len();
            }
        }
        if let Some(live) = &state.live
            && live.try_send(event).is_err()
        {
            state.live = None;
        }
        if last {
            state.finished = true;
            state.live = None;
        }
    }

    /// Completes the stream without an answer (a cancelled request, an ended session).
    pub(crate) fn finish(&self) {
        let mut state = lock(&self.state);
        state.finished = true;
        state.live = None;
    }

    /// Whether the stream has received its last event.
    pub(crate) fn is_finished(&self) -> bool {
        lock(&self.state).finished
    }

    /// Becomes the stream's live reader: the buffered events after `after` (none when `after`
    /// is `None`), then what comes next; an earlier reader is cut off.
    pub(crate) fn attach(&self, after: Option<u64>) -> (Vec<Event>, mpsc::Receiver<Event>) {
        let (sender, receiver) = mpsc::channel(LIVE_QUEUE);
        let mut state = lock(&self.state);
        let replay = match after {
            Some(after) => state
                .buffer
                .iter()
                .filter(|event| event.seq > after)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        state.live = (!state.finished).then_some(sender);
        (replay, receiver)
    }
}

/// Splits a `Last-Event-ID` into stream number and sequence.
pub(crate) fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn note(n: u64) -> Message {
        Message::notification("notifications/message", Some(json!({ "n": n })))
    }

    #[tokio::test]
    async fn replays_after_the_last_seen_event_then_goes_live() {
        let stream = EventStream::new(3);
        let (_, mut first) = stream.attach(None);
        stream.push(&note(1), false);
        stream.push(&note(2), false);
        assert_eq!(first.recv().await.unwrap().seq, 1);
        drop(first);
        stream.push(&note(3), false);
        let (replay, mut live) = stream.attach(Some(1));
        assert_eq!(replay.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        stream.push(&note(4), true);
        let last = live.recv().await.unwrap();
        assert!(last.last);
        assert_eq!(stream.event_id(last.seq), "3-4");
        assert!(live.recv().await.is_none(), "a finished stream closes");
        assert_eq!(parse_event_id("3-4"), Some((3, 4)));
        assert_eq!(parse_event_id("x"), None);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let stream = EventStream::new(0);
        for n in 0..(BUFFER_EVENTS as u64 + 10) {
            stream.push(&note(n), false);
        }
        let (replay, _) = stream.attach(Some(0));
        assert_eq!(replay.len(), BUFFER_EVENTS);
        assert_eq!(replay[0].seq, 11);
    }
}
