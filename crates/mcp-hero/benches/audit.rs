//! Audit benchmark: what recording an audit event adds to a `tools/call` round trip, and what
//! the sink's `record()` costs on its own. Run with `cargo bench -p mcp-hero --bench audit`.
//!
//! Two gateways run in this process on the same store, organization and fixture server: one
//! built with the audit writer `serve` uses (`mcp_hero::audit::AuditWriter`, SQLite store), one
//! with the no-op sink. A single client (concurrency 1) calls `fx__echo` through each, in
//! alternating blocks, so both see the same machine load; the added p50 is the difference of
//! the two medians (target: at most 20 µs). Then `record()` is timed directly, in bursts the
//! writer keeps up with, so it measures the queueing path and not the drop path.
//!
//! A plain program (no harness): it prints figures and PASS/MISS, and exits nonzero only if a
//! call failed or an event was lost.

// A benchmark reports on stdout and, like a test, should stop loudly when its fixture is broken.
#![allow(
    clippy::disallowed_methods,
    reason = "the benchmark sends the token it issued itself"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use common::client::{Connection, Endpoint, McpClient};
use common::{as_ns, build_fixture, load_average, percentile_micros, print_machine, verdict};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use mcp::audit::{AuditEvent, AuditMethod, AuditOutcome, AuditServer};
use mcp::launcher::PlainProcessLauncher;
use mcp_hero::audit::{AuditConfig, AuditWriter};
use mcp_hero::http::{AppState, router};
use secrecy::ExposeSecret as _;
use serde_json::json;
use store::{AuditFilter, DatabaseLocation, Store};
use vault::{RootSecret, Vault};

const MAX_BODY: usize = 64 * 1024;
/// Alternating blocks of calls per gateway, and calls per block (after a warm-up block each).
const BLOCKS: usize = 10;
const CALLS_PER_BLOCK: usize = 500;
const ADDED_P50_TARGET_MICROS: f64 = 20.0;
/// Direct `record()` timing: bursts, each followed by a flush so the queue never fills.
const RECORD_BURSTS: usize = 20;
const RECORDS_PER_BURST: usize = 5_000;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("MCP Hero audit benchmark");
    println!("========================");
    print_machine();
    let fixture = build_fixture();
    let failures = runtime.block_on(run(fixture));
    println!();
    println!("Load average at the end: {}", load_average());
    if failures == 0 {
        println!("Result: OK (every call answered correctly, no audit event lost)");
        ExitCode::SUCCESS
    } else {
        println!("Result: FAILED ({failures} calls failed or events were lost)");
        ExitCode::FAILURE
    }
}

/// A gateway of its own on its own port, over the shared store.
async fn serve(store: &Store, gateway: Arc<mcp::Gateway>) -> SocketAddr {
    let app = router(AppState::new(store.clone(), gateway), MAX_BODY);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn run(fixture: std::path::PathBuf) -> usize {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = RootSecret::from_base64(RootSecret::generate_base64().expose_secret())
        .expect("generated root secret parses");
    let location = DatabaseLocation::Sqlite {
        path: dir.path().join("bench.db"),
    };
    let store = Store::open(&location, Vault::new(&root, None))
        .await
        .expect("store opens");
    let (scope, _, owner) = store
        .create_organization("calls", "calls", "owner@calls.example")
        .await
        .expect("organization");
    let token = auth::pat::generate();
    store
        .create_token(&scope, &owner, "bench", None, &token.digest)
        .await
        .expect("token");
    let token = token.secret.expose_secret().to_owned();

    let writer = AuditWriter::start(store.clone(), &AuditConfig::default());
    let launcher = Arc::new(PlainProcessLauncher::new(None));
    let config = mcp::GatewayConfig::default();
    let plain = mcp::Gateway::new(config.clone(), launcher.clone()).expect("gateway");
    let audited =
        mcp::Gateway::with_audit(config, launcher, writer.sink()).expect("audited gateway");
    let plain_addr = serve(&store, plain.clone()).await;
    let audited_addr = serve(&store, audited.clone()).await;

    // The fixture, registered once through the API, as an operator would.
    let body = json!({
        "name": "fx",
        "transport": {"type": "stdio", "command": fixture.display().to_string(), "args": ["stdio", "--name", "fx"]},
    });
    let mut api = Connection::open(plain_addr).await;
    let (status, _, answer) = api
        .send(
            Method::POST,
            "/api/v1/servers",
            Some(&token),
            None,
            Bytes::from(body.to_string()),
        )
        .await
        .expect("API answers");
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let endpoint = |addr| Endpoint {
        addr,
        path: "/o/calls/mcp".to_owned(),
        token: Some(token.clone()),
    };
    let mut without = McpClient::connect(&endpoint(plain_addr)).await;
    let mut with = McpClient::connect(&endpoint(audited_addr)).await;
    without.initialize().await.expect("session without audit");
    with.initialize().await.expect("session with audit");

    println!();
    println!(
        "1. tools/call round trip, concurrency 1: {BLOCKS} alternating blocks of {CALLS_PER_BLOCK} calls per gateway"
    );
    println!(
        "   client → gateway (HTTP, bearer token) → the session's own mcp-fixture stdio → back"
    );
    let mut failures = 0;
    let mut plain_ns = Vec::with_capacity(BLOCKS * CALLS_PER_BLOCK);
    let mut audited_ns = Vec::with_capacity(BLOCKS * CALLS_PER_BLOCK);
    for block in 0..=BLOCKS {
        // Block 0 warms both up (servers started, catalogs cached) and is not counted.
        for (client, samples) in [(&mut without, &mut plain_ns), (&mut with, &mut audited_ns)] {
            for _ in 0..CALLS_PER_BLOCK {
                let started = Instant::now();
                let outcome = client.echo("fx__echo").await;
                let elapsed = as_ns(started.elapsed());
                match outcome {
                    Ok(()) if block > 0 => samples.push(elapsed),
                    Ok(()) => {}
                    Err(error) => {
                        failures += 1;
                        if failures <= 5 {
                            eprintln!("call failed: {error}");
                        }
                    }
                }
            }
        }
    }
    plain_ns.sort_unstable();
    audited_ns.sort_unstable();
    let (p50_plain, p99_plain) = (
        percentile_micros(&plain_ns, 50.0),
        percentile_micros(&plain_ns, 99.0),
    );
    let (p50_audited, p99_audited) = (
        percentile_micros(&audited_ns, 50.0),
        percentile_micros(&audited_ns, 99.0),
    );
    let added = p50_audited - p50_plain;
    println!();
    println!(
        "   {:<28} {:>10} {:>10} {:>8}",
        "", "p50 µs", "p99 µs", "calls"
    );
    println!(
        "   {:<28} {:>10.1} {:>10.1} {:>8}",
        "no-op sink",
        p50_plain,
        p99_plain,
        plain_ns.len()
    );
    println!(
        "   {:<28} {:>10.1} {:>10.1} {:>8}",
        "audit writer (SQLite)",
        p50_audited,
        p99_audited,
        audited_ns.len()
    );
    println!(
        "   added p50: {added:.1} µs (target ≤ {ADDED_P50_TARGET_MICROS} µs) {}; added p99: {:.1} µs",
        verdict(added <= ADDED_P50_TARGET_MICROS),
        p99_audited - p99_plain
    );

    writer.flush().await;
    let recorded = count_events(&store, &scope).await;
    let expected = (BLOCKS + 1) * CALLS_PER_BLOCK;
    println!(
        "   events written: {recorded} of {expected} audited calls; dropped: {}",
        writer.dropped()
    );
    if recorded != expected {
        failures += 1;
    }

    // 2. record() alone.
    println!();
    println!(
        "2. AuditSink::record() alone (queue onto the writer): {RECORD_BURSTS} bursts of {RECORDS_PER_BURST}, a flush after each"
    );
    let sink = writer.sink();
    let event = AuditEvent {
        org: Arc::from(scope.org_id().as_str()),
        user: Arc::from(owner.as_str()),
        session: Arc::from("bench1"),
        server: None,
        method: AuditMethod::ToolsCall,
        target: String::new(),
        outcome: AuditOutcome::Ok,
        reason: None,
        latency_us: 100,
        request_bytes: 60,
        response_bytes: 120,
        at: SystemTime::now(),
    };
    let mut record_ns = Vec::with_capacity(RECORD_BURSTS * RECORDS_PER_BURST);
    let server = AuditServer {
        id: Arc::from("no-such-server"),
        name: Arc::from("fx"),
    };
    for _ in 0..RECORD_BURSTS {
        for _ in 0..RECORDS_PER_BURST {
            // As the data plane builds it: shared names, one owned target.
            let event = AuditEvent {
                target: "fx__echo".to_owned(),
                server: Some(server.clone()),
                ..event.clone()
            };
            let started = Instant::now();
            sink.record(event);
            record_ns.push(as_ns(started.elapsed()));
        }
        writer.flush().await;
    }
    record_ns.sort_unstable();
    println!(
        "   p50 {:.3} µs, p99 {:.3} µs, max {:.1} µs; dropped: {}",
        percentile_micros(&record_ns, 50.0),
        percentile_micros(&record_ns, 99.0),
        percentile_micros(&record_ns, 100.0),
        writer.dropped()
    );
    if writer.dropped() > 0 {
        failures += 1;
    }

    without.end().await;
    with.end().await;
    plain.shutdown().await;
    audited.shutdown().await;
    drop(writer);
    store.close().await;
    failures
}

async fn count_events(store: &Store, scope: &store::OrgScope) -> usize {
    let permit = auth::authorize::<auth::ViewAudit>(auth::Role::Owner).expect("owner");
    let mut total = 0;
    let mut cursor = None;
    loop {
        let page = store
            .audit_events(
                scope,
                &permit,
                &AuditFilter::default(),
                cursor.as_ref(),
                1000,
            )
            .await
            .expect("audit events");
        total += page.events.len();
        match page.next {
            Some(next) => cursor = Some(next),
            None => return total,
        }
    }
}
