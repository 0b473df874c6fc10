//! The audit writer (S6, S16): takes the data plane's audit events without ever blocking a call,
//! writes them to the store in batches, and deletes those older than the retention.
//!
//! The sink the gateway calls only tries to queue the event on a bounded channel. When the
//! queue is full (the database is slower than the calls), the event is dropped and counted, and
//! the writer warns with the count: a call is never slowed down or failed for its audit event.
//! One writer task empties the queue: after the first event it lets a batch gather briefly
//! (`LINGER`, 50 ms), then writes up to a batch in one transaction. Events carry no argument value and no result content (the
//! data plane never puts them there), so nothing here can leak one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp::audit::{AuditEvent, AuditMethod, AuditOutcome, AuditSink};
use store::{NewAuditEvent, OrgId, ServerId, Store, StoreError, UserId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// Events waiting to be written before new ones are dropped.
pub const QUEUE_EVENTS: usize = 16 * 1024;
/// Most events written in one transaction.
const BATCH_EVENTS: usize = 512;
/// How long the writer lets a batch gather after its first event: one transaction per many
/// calls instead of one per call, so a quiet gateway's calls do not each wake the database.
const LINGER: Duration = Duration::from_millis(50);
/// How often the retention sweep runs (and once at start).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// How long events are kept when `[audit] retention_days` is not set.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;

/// The `[audit]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Events older than this are deleted.
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Duration::from_secs(DEFAULT_RETENTION_DAYS * 86_400),
        }
    }
}

enum Item {
    Event(AuditEvent),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The sink handed to `mcp::Gateway::with_audit`.
struct QueueSink {
    queue: mpsc::Sender<Item>,
    dropped: Arc<Dropped>,
}

#[derive(Default)]
struct Dropped {
    /// Since the writer last warned.
    unreported: AtomicU64,
    /// Since start.
    total: AtomicU64,
}

impl AuditSink for QueueSink {
    fn record(&self, event: AuditEvent) {
        if self.queue.try_send(Item::Event(event)).is_err() {
            self.dropped.unreported.fetch_add(1, Ordering::Relaxed);
            self.dropped.total.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The running audit writer and retention sweep; dropping it stops both.
pub struct AuditWriter {
    queue: mpsc::Sender<Item>,
    dropped: Arc<Dropped>,
    tasks: [AbortHandle; 2],
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the writer task and the retention sweep (which runs at once, then hourly).
    pub fn start(store: Store, config: &AuditConfig) -> Self {
        Self::start_with_queue(store, config, QUEUE_EVENTS)
    }

    fn start_with_queue(store: Store, config: &AuditConfig, queue_events: usize) -> Self {
        let (queue, receiver) = mpsc::channel(queue_events);
        let dropped = Arc::new(Dropped::default());
        let writer = tokio::spawn(write_batches(store.clone(), receiver, dropped.clone()));
        let retention = config.retention;
        let sweeper = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SWEEP_EVERY);
            loop {
                ticks.tick().await;
                match sweep(&store, retention).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(deleted, "audit events past their retention deleted");
                    }
                    Err(error) => tracing::warn!(%error, "the audit retention sweep failed"),
                }
            }
        });
        AuditWriter {
            queue,
            dropped,
            tasks: [writer.abort_handle(), sweeper.abort_handle()],
        }
    }

    /// The sink the data plane records into.
    pub fn sink(&self) -> Arc<dyn AuditSink> {
        Arc::new(QueueSink {
            queue: self.queue.clone(),
            dropped: self.dropped.clone(),
        })
    }

    /// Waits until every event queued so far is written (or its batch failed and was logged).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Item::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Events dropped since start because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.total.load(Ordering::Relaxed)
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Deletes every organization's events older than `retention`; returns how many went.
pub async fn sweep(store: &Store, retention: Duration) -> Result<u64, StoreError> {
    let cutoff = SystemTime::now()
        .checked_sub(retention)
        .unwrap_or(UNIX_EPOCH);
    store.delete_audit_events_before(unix_millis(cutoff)).await
}

async fn write_batches(store: Store, mut queue: mpsc::Receiver<Item>, dropped: Arc<Dropped>) {
    let mut items = Vec::with_capacity(BATCH_EVENTS);
    let mut events = Vec::with_capacity(BATCH_EVENTS);
    let mut flushes = Vec::new();
    while queue.recv_many(&mut items, BATCH_EVENTS).await > 0 {
        let flushing = items.iter().any(|item| matches!(item, Item::Flush(_)));
        if items.len() < BATCH_EVENTS && !flushing {
            tokio::time::sleep(LINGER).await;
            while items.len() < BATCH_EVENTS {
                match queue.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
        }
        for item in items.drain(..) {
            match item {
                Item::Event(event) => events.push(stored(event)),
                Item::Flush(done) => flushes.push(done),
            }
        }
        if !events.is_empty() {
            if let Err(error) = store.append_audit_events(&events).await {
                tracing::error!(%error, events = events.len(), "audit events could not be written and are lost");
            }
            events.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
        let lost = dropped.unreported.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(
                dropped = lost,
                queue = QUEUE_EVENTS,
                "the audit queue was full and events were dropped: the database is slower than the calls"
            );
        }
    }
}

fn stored(event: AuditEvent) -> NewAuditEvent {
    let clamp = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    NewAuditEvent {
        org: OrgId::from_untrusted(&event.org),
        server: event
            .server
            .as_ref()
            .map(|server| ServerId::from_untrusted(&server.id)),
        user: UserId::from_untrusted(&event.user),
        session: event.session.to_string(),
        method: match event.method {
            AuditMethod::ToolsCall => store::AuditMethod::ToolsCall,
            AuditMethod::ResourcesRead => store::AuditMethod::ResourcesRead,
            AuditMethod::PromptsGet => store::AuditMethod::PromptsGet,
        },
        target: event.target,
        outcome: match event.outcome {
            AuditOutcome::Ok => store::AuditOutcome::Ok,
            AuditOutcome::Error => store::AuditOutcome::Error,
            AuditOutcome::Denied => store::AuditOutcome::Denied,
            AuditOutcome::Unknown => store::AuditOutcome::Unknown,
            AuditOutcome::Failed => store::AuditOutcome::Failed,
            AuditOutcome::Cancelled => store::AuditOutcome::Cancelled,
        },
        reason: event.reason.map(|reason| reason.to_string()),
        latency_us: clamp(event.latency_us),
        request_bytes: clamp(event.request_bytes),
        response_bytes: clamp(event.response_bytes),
        at_ms: unix_millis(event.at),
    }
}

fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

#[cfg(test)]
mod tests;
