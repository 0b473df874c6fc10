//! The audit writer under pressure: a full queue drops and counts, and never blocks a call.

use std::sync::Arc;
use std::time::SystemTime;

use auth::{Role, ViewAudit, authorize};
use mcp::audit::{AuditEvent, AuditMethod, AuditOutcome};
use store::{AuditFilter, DatabaseLocation, Store};

use super::{AuditConfig, AuditWriter};

const ROOT_SECRET: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";

/// S6: the sink only tries to queue. On a single-threaded runtime the writer cannot run while
/// the calls record, so the queue fills: the rest are dropped and counted at once, nothing
/// waits, and what was queued is written.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let root = vault::RootSecret::from_base64(ROOT_SECRET).unwrap();
    let location = DatabaseLocation::Sqlite {
        path: dir.path().join("audit.db"),
    };
    let store = Store::open(&location, vault::Vault::new(&root, None))
        .await
        .unwrap();
    let (scope, _, owner) = store
        .create_organization("acme", "Acme", "alice@acme.example")
        .await
        .unwrap();
    let writer = AuditWriter::start_with_queue(store.clone(), &AuditConfig::default(), 4);
    let sink = writer.sink();
    for _ in 0..10 {
        sink.record(AuditEvent {
            org: Arc::from(scope.org_id().as_str()),
            user: Arc::from(owner.as_str()),
            session: Arc::from("tag"),
            server: None,
            method: AuditMethod::ToolsCall,
            target: "alpha__echo".to_owned(),
            outcome: AuditOutcome::Ok,
            reason: None,
            latency_us: 1,
            request_bytes: 2,
            response_bytes: 3,
            at: SystemTime::now(),
        });
    }
    assert_eq!(writer.dropped(), 6);
    writer.flush().await;
    let permit = authorize::<ViewAudit>(Role::Owner).unwrap();
    let page = store
        .audit_events(&scope, &permit, &AuditFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 4);
    assert_eq!(page.events[0].target, "alpha__echo");
}
