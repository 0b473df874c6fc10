//! Foundation benchmark: vault sealing, token checking and the HTTP API over loopback TCP, each
//! beside a baseline measured in the same run. Run with `cargo bench -p mcp-hero --bench foundation`.
//!
//! A plain program (no harness): it prints a report and exits nonzero if any API response was not
//! 200 or any token check failed. Every socket is on 127.0.0.1; the database is a temporary SQLite
//! file. The whole run stays well under two minutes on two cores.

#![allow(
    clippy::disallowed_methods,
    reason = "benchmarks use freshly generated secrets and tokens"
)]
// A benchmark reports on stdout and, like a test, should stop loudly when its fixture is broken.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use common::{as_ns, percentile_micros, print_machine};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use axum::serve::ListenerExt as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper::{StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_hero::http::{AppState, router};
use secrecy::ExposeSecret as _;
use store::{DatabaseLocation, Store};
use vault::{RecordContext, RootSecret, Vault};

const RECORD_BYTES: usize = 1024;
const CRYPTO_WARMUP_BATCHES: usize = 1;
const CRYPTO_BATCHES: usize = 7;
const CRYPTO_BATCH_OPS: usize = 20_000;

const TOKEN_WARMUP: usize = 500;
const TOKEN_ITERATIONS: usize = 5_000;
const TOKEN_TARGET_MICROS: f64 = 50.0;

const MAX_BODY: usize = 64 * 1024;
const SCENARIO_TIME_LIMIT: Duration = Duration::from_secs(10);
/// How many failed responses are described in full; the rest are only counted.
const FAILURES_SHOWN: usize = 5;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    println!("MCP Hero foundation benchmark");
    println!("=============================");
    print_machine();

    print_vault();

    let failures = runtime.block_on(async {
        let fixture = Fixture::new().await;
        let token_failures = print_token_check(&fixture).await;
        let api_failures = print_api(&fixture).await;
        fixture.store.close().await;
        token_failures + api_failures
    });

    println!();
    if failures == 0 {
        println!("Result: OK (every token check succeeded, every API response was 200)");
        ExitCode::SUCCESS
    } else {
        println!("Result: FAILED ({failures} failed token checks or non-200 API responses)");
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Vault
// ---------------------------------------------------------------------------------------------

/// Runs `ops` calls of `op` and returns nanoseconds per call.
fn batch_ns_per_op(ops: usize, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..ops {
        op();
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Measures several operations batch by batch, interleaved so drift hits them all alike; returns
/// the median ns/op of each, in order.
fn interleaved_medians<const N: usize>(ops: &mut [&mut dyn FnMut(); N]) -> [f64; N] {
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(CRYPTO_BATCHES));
    for round in 0..CRYPTO_WARMUP_BATCHES + CRYPTO_BATCHES {
        for (op, samples) in ops.iter_mut().zip(samples.iter_mut()) {
            let ns = batch_ns_per_op(CRYPTO_BATCH_OPS, &mut **op);
            if round >= CRYPTO_WARMUP_BATCHES {
                samples.push(ns);
            }
        }
    }
    samples.map(|mut samples| median(&mut samples))
}

fn print_vault() {
    let root = RootSecret::from_base64(RootSecret::generate_base64().expose_secret())
        .expect("generated root secret parses");
    let vault = Vault::new(&root, None);
    let context = RecordContext {
        table: "variables",
        column: "value_sealed",
        row_id: "5f0b6a52-2d7e-4c8f-9a51-3f1f4d0c2b7e",
        org_id: "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f",
    };
    let mut plaintext = vec![0u8; RECORD_BYTES];
    aws_lc_rs::rand::fill(&mut plaintext).expect("system RNG");

    let sealed = vault.seal(&context, &plaintext).expect("vault seals");
    let opened = vault.open(&context, &sealed).expect("vault opens");
    assert_eq!(opened.expose_secret(), plaintext.as_slice());

    // The baseline: the same AEAD, key size, nonce scheme and 1 KiB, with no vault around it.
    let mut key_bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key_bytes).expect("system RNG");
    let key = RandomizedNonceKey::new(&AES_256_GCM, &key_bytes).expect("AES-256-GCM key");
    let mut raw_ciphertext = plaintext.clone();
    let raw_nonce: [u8; NONCE_LEN] = *key
        .seal_in_place_append_tag(Aad::empty(), &mut raw_ciphertext)
        .expect("raw seal")
        .as_ref();
    {
        let mut check = raw_ciphertext.clone();
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(raw_nonce),
                Aad::empty(),
                &mut check,
            )
            .expect("raw open");
        assert_eq!(opened, plaintext.as_slice());
    }

    let mut vault_seal = || {
        black_box(vault.seal(&context, black_box(&plaintext)).expect("seal"));
    };
    let mut vault_open = || {
        black_box(vault.open(&context, black_box(&sealed)).expect("open"));
    };
    let mut raw_seal = || {
        // Copy into a fresh buffer as the vault does, so both pay for one allocation and copy.
        let mut buffer = Vec::with_capacity(RECORD_BYTES + AES_256_GCM.tag_len());
        buffer.extend_from_slice(black_box(&plaintext));
        let nonce = key
            .seal_in_place_append_tag(Aad::empty(), &mut buffer)
            .expect("seal");
        black_box((nonce, buffer));
    };
    let mut raw_open = || {
        let mut buffer = black_box(&raw_ciphertext).clone();
        let nonce = Nonce::assume_unique_for_key(black_box(raw_nonce));
        let opened = key
            .open_in_place(nonce, Aad::empty(), &mut buffer)
            .expect("open");
        black_box(opened);
    };
    let [vault_seal_ns, raw_seal_ns, vault_open_ns, raw_open_ns] = interleaved_medians(&mut [
        &mut vault_seal,
        &mut raw_seal,
        &mut vault_open,
        &mut raw_open,
    ]);

    println!();
    println!(
        "1. Vault seal/open of a {RECORD_BYTES}-byte record (median of {CRYPTO_BATCHES} batches \
         of {CRYPTO_BATCH_OPS} ops, after {CRYPTO_WARMUP_BATCHES} warm-up batch)"
    );
    println!(
        "   baseline: raw aws-lc-rs AES-256-GCM RandomizedNonceKey, same {RECORD_BYTES} bytes, \
         empty AAD, one buffer copy"
    );
    println!(
        "   {:<6} {:>14} {:>16} {:>16}",
        "op", "vault ns/op", "baseline ns/op", "vault/baseline"
    );
    for (name, vault_ns, raw_ns) in [
        ("seal", vault_seal_ns, raw_seal_ns),
        ("open", vault_open_ns, raw_open_ns),
    ] {
        println!(
            "   {name:<6} {vault_ns:>14.0} {raw_ns:>16.0} {:>15.2}x",
            vault_ns / raw_ns
        );
    }
    println!(
        "   (sealed record: {} bytes = 1 version + 8 key id + 12 nonce + {RECORD_BYTES} + 16 tag)",
        sealed.as_bytes().len()
    );
}

// ---------------------------------------------------------------------------------------------
// Fixture: a SQLite store in a temporary directory, one organization, one token
// ---------------------------------------------------------------------------------------------

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    token: String,
    /// Tokens never checked before, one per cold (cache-missing) measurement.
    cold_tokens: Vec<String>,
}

/// How many cold token checks to time.
const COLD_TOKENS: usize = 1_000;

impl Fixture {
    async fn new() -> Self {
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
            .create_organization("bench", "Bench", "owner@bench.example")
            .await
            .expect("organization");
        let token = auth::pat::generate();
        store
            .create_token(&scope, &owner, "bench", None, &token.digest)
            .await
            .expect("token");
        let mut cold_tokens = Vec::with_capacity(COLD_TOKENS);
        for _ in 0..COLD_TOKENS {
            let cold = auth::pat::generate();
            store
                .create_token(&scope, &owner, "cold", None, &cold.digest)
                .await
                .expect("token");
            cold_tokens.push(cold.secret.expose_secret().to_owned());
        }
        Fixture {
            _dir: dir,
            store,
            token: token.secret.expose_secret().to_owned(),
            cold_tokens,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Token check
// ---------------------------------------------------------------------------------------------

fn mean_micros(ns: &[u64]) -> f64 {
    ns.iter().map(|&n| n as f64).sum::<f64>() / ns.len() as f64 / 1000.0
}

/// Returns how many token checks failed.
async fn print_token_check(fixture: &Fixture) -> usize {
    let token = fixture.token.as_str();
    let store = &fixture.store;

    let mut parse_only = || {
        black_box(auth::pat::parse(black_box(token)).expect("parse"));
    };
    let [parse_ns] = interleaved_medians(&mut [&mut parse_only]);

    // For scale: one trivial query through the same pool (SELECT 1), no token logic.
    for _ in 0..TOKEN_WARMUP {
        store.ping().await.expect("ping");
    }
    let mut ping_ns = Vec::with_capacity(TOKEN_ITERATIONS);
    for _ in 0..TOKEN_ITERATIONS {
        let start = Instant::now();
        store.ping().await.expect("ping");
        ping_ns.push(as_ns(start.elapsed()));
    }
    ping_ns.sort_unstable();

    let mut failures = 0;
    let mut check = async || {
        let digest = auth::pat::parse(black_box(token));
        let accepted = match digest {
            Ok(digest) => matches!(store.authenticate_token(&digest).await, Ok(Ok(_))),
            Err(_) => false,
        };
        if !accepted {
            failures += 1;
        }
    };
    for _ in 0..TOKEN_WARMUP {
        check().await;
    }
    let mut check_ns = Vec::with_capacity(TOKEN_ITERATIONS);
    for _ in 0..TOKEN_ITERATIONS {
        let start = Instant::now();
        check().await;
        check_ns.push(as_ns(start.elapsed()));
    }
    let mean = mean_micros(&check_ns);
    check_ns.sort_unstable();
    let p50 = percentile_micros(&check_ns, 50.0);
    let p99 = percentile_micros(&check_ns, 99.0);

    // Cold: each token's first check misses the cache and reads the database.
    let mut cold_ns = Vec::with_capacity(fixture.cold_tokens.len());
    for cold in &fixture.cold_tokens {
        let start = Instant::now();
        let accepted = match auth::pat::parse(cold) {
            Ok(digest) => matches!(store.authenticate_token(&digest).await, Ok(Ok(_))),
            Err(_) => false,
        };
        cold_ns.push(as_ns(start.elapsed()));
        if !accepted {
            failures += 1;
        }
    }
    let cold_mean = mean_micros(&cold_ns);
    cold_ns.sort_unstable();

    println!();
    println!("2. Token check against SQLite in a temporary directory (token issued by the store)");
    println!(
        "   auth::pat::parse alone (shape check + SHA-256): {parse_ns:.0} ns/op \
         (median of {CRYPTO_BATCHES} batches of {CRYPTO_BATCH_OPS})"
    );
    println!(
        "   for scale, store.ping() (SELECT 1 through the pool): p50 {:.1} µs, p99 {:.1} µs",
        percentile_micros(&ping_ns, 50.0),
        percentile_micros(&ping_ns, 99.0)
    );
    println!(
        "   warm: parse + store.authenticate_token of a token in use (token cache, TTL {} s), \
         {TOKEN_ITERATIONS} iterations after {TOKEN_WARMUP} warm-up:",
        store::TOKEN_CACHE_TTL.as_secs()
    );
    println!("     p50 {p50:.1} µs   p99 {p99:.1} µs   mean {mean:.1} µs");
    println!(
        "   cold: first check of {} distinct tokens (cache miss: one SELECT with two joins, one UPDATE of last_used_at):",
        cold_ns.len()
    );
    println!(
        "     p50 {:.1} µs   p99 {:.1} µs   mean {cold_mean:.1} µs",
        percentile_micros(&cold_ns, 50.0),
        percentile_micros(&cold_ns, 99.0)
    );
    println!("   failures {failures}");
    let verdict = if p50 < TOKEN_TARGET_MICROS {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "   target \"token checking under {TOKEN_TARGET_MICROS:.0} µs\" (judged on the warm p50 {p50:.1} µs, \
         the path every request after a token's first takes): {verdict}"
    );
    failures
}

// ---------------------------------------------------------------------------------------------
// 3. API over loopback TCP
// ---------------------------------------------------------------------------------------------

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn new_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // Each worker owns one client, and sends one request at a time: one kept-alive connection.
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build(connector)
}

#[derive(Clone)]
struct Target {
    uri: Uri,
    bearer: Option<HeaderValue>,
}

#[derive(Default)]
struct WorkerLog {
    latencies_ns: Vec<u64>,
    failures: usize,
    failure_notes: Vec<String>,
}

impl WorkerLog {
    fn merge(&mut self, other: WorkerLog) {
        self.latencies_ns.extend(other.latencies_ns);
        self.failures += other.failures;
        let room = FAILURES_SHOWN.saturating_sub(self.failure_notes.len());
        self.failure_notes
            .extend(other.failure_notes.into_iter().take(room));
    }
}

/// Sends one request and reads the whole body; records its latency and whether it was a 200.
async fn one_request(client: &HttpClient, target: &Target, log: &mut WorkerLog) {
    let mut request = hyper::Request::get(target.uri.clone());
    if let Some(bearer) = &target.bearer {
        request = request.header(AUTHORIZATION, bearer.clone());
    }
    let request = request.body(Empty::new()).expect("request");
    let start = Instant::now();
    let outcome = match client.request(request).await {
        Ok(response) => {
            let status = response.status();
            match response.into_body().collect().await {
                Ok(_) if status == StatusCode::OK => Ok(()),
                Ok(body) => {
                    let bytes = body.to_bytes();
                    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
                    Err(format!("{status}: {text}"))
                }
                Err(error) => Err(format!("{status}, body error: {error}")),
            }
        }
        Err(error) => Err(format!("request error: {error:?}")),
    };
    log.latencies_ns.push(as_ns(start.elapsed()));
    if let Err(note) = outcome {
        log.failures += 1;
        if log.failure_notes.len() < FAILURES_SHOWN {
            log.failure_notes.push(note);
        }
    }
}

struct ScenarioResult {
    path: &'static str,
    concurrency: usize,
    completed: usize,
    failures: usize,
    failure_notes: Vec<String>,
    connections: usize,
    p50: f64,
    p99: f64,
    rps: f64,
    hit_time_limit: bool,
}

struct Scenario {
    path: &'static str,
    authenticated: bool,
    concurrency: usize,
    warmup_per_worker: usize,
    requests: usize,
}

async fn run_scenario(
    address: SocketAddr,
    token: &str,
    accepted: &AtomicUsize,
    scenario: &Scenario,
) -> ScenarioResult {
    let bearer = scenario.authenticated.then(|| {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header value");
        value.set_sensitive(true);
        value
    });
    let target = Target {
        uri: format!("http://{address}{}", scenario.path)
            .parse()
            .expect("URI"),
        bearer,
    };
    let connections_before = accepted.load(Ordering::SeqCst);

    // Warm-up: each worker opens its connection and sends a few requests; failures still count.
    let mut warm = Vec::with_capacity(scenario.concurrency);
    for _ in 0..scenario.concurrency {
        let target = target.clone();
        let warmup = scenario.warmup_per_worker;
        warm.push(tokio::spawn(async move {
            let client = new_client();
            let mut log = WorkerLog::default();
            for _ in 0..warmup {
                one_request(&client, &target, &mut log).await;
            }
            (client, log)
        }));
    }
    let mut clients = Vec::with_capacity(scenario.concurrency);
    let mut warmup_log = WorkerLog::default();
    for handle in warm {
        let (client, log) = handle.await.expect("warm-up worker");
        clients.push(client);
        warmup_log.merge(log);
    }

    // Measured run: workers share a request budget and a deadline.
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + SCENARIO_TIME_LIMIT;
    let mut workers = Vec::with_capacity(scenario.concurrency);
    for client in clients {
        let target = target.clone();
        let next = Arc::clone(&next);
        let budget = scenario.requests;
        workers.push(tokio::spawn(async move {
            let mut log = WorkerLog {
                latencies_ns: Vec::with_capacity(budget),
                ..WorkerLog::default()
            };
            while next.fetch_add(1, Ordering::Relaxed) < budget && Instant::now() < deadline {
                one_request(&client, &target, &mut log).await;
            }
            (client, log)
        }));
    }
    let mut log = WorkerLog::default();
    let mut clients = Vec::with_capacity(scenario.concurrency);
    for handle in workers {
        let (client, worker_log) = handle.await.expect("worker");
        clients.push(client);
        log.merge(worker_log);
    }
    let elapsed = start.elapsed();
    let connections = accepted.load(Ordering::SeqCst) - connections_before;
    drop(clients);

    let completed = log.latencies_ns.len();
    log.latencies_ns.sort_unstable();
    let mut failure_notes = warmup_log.failure_notes;
    failure_notes.extend(log.failure_notes);
    failure_notes.truncate(FAILURES_SHOWN);
    ScenarioResult {
        path: scenario.path,
        concurrency: scenario.concurrency,
        completed,
        failures: warmup_log.failures + log.failures,
        failure_notes,
        connections,
        p50: percentile_micros(&log.latencies_ns, 50.0),
        p99: percentile_micros(&log.latencies_ns, 99.0),
        rps: completed as f64 / elapsed.as_secs_f64(),
        hit_time_limit: completed < scenario.requests,
    }
}

/// Returns how many responses were not 200.
async fn print_api(fixture: &Fixture) -> usize {
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    let address = listener.local_addr().expect("local address");
    assert!(
        address.ip().is_loopback(),
        "the benchmark only uses loopback"
    );
    // Served exactly as `mcp-hero serve` does (plain axum::serve); the tap only counts connections.
    let counter = Arc::clone(&accepted);
    let listener = listener.tap_io(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let gateway = mcp::Gateway::new(
        mcp::GatewayConfig::default(),
        std::sync::Arc::new(mcp_hero::launch::SandboxUnavailable::new(
            "stdio servers are not used here",
        )),
    )
    .expect("the MCP data plane starts");
    let app = router(AppState::new(fixture.store.clone(), gateway), MAX_BODY);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let scenarios = [
        Scenario {
            path: "/healthz",
            authenticated: false,
            concurrency: 1,
            warmup_per_worker: 300,
            requests: 3_000,
        },
        Scenario {
            path: "/api/v1/organization",
            authenticated: true,
            concurrency: 1,
            warmup_per_worker: 300,
            requests: 3_000,
        },
        Scenario {
            path: "/healthz",
            authenticated: false,
            concurrency: 32,
            warmup_per_worker: 20,
            requests: 20_000,
        },
        Scenario {
            path: "/api/v1/organization",
            authenticated: true,
            concurrency: 32,
            warmup_per_worker: 20,
            requests: 20_000,
        },
    ];
    let mut results = Vec::with_capacity(scenarios.len());
    for scenario in &scenarios {
        results.push(run_scenario(address, &fixture.token, &accepted, scenario).await);
    }

    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => eprintln!("server error: {error}"),
        Ok(Err(error)) => eprintln!("server task failed: {error}"),
        Err(_) => eprintln!("server did not stop within 5 s"),
    }

    println!();
    println!(
        "3. API end to end over loopback TCP (axum::serve on {address}, same process, \
         multi-thread runtime)"
    );
    println!(
        "   client: hyper-util legacy client, HTTP/1.1 keep-alive, one connection per worker; \
         client and server share the {} cores",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!(
        "   budget: 3000 requests at c=1, 20000 at c=32, or {} s, whichever first (after warm-up)",
        SCENARIO_TIME_LIMIT.as_secs()
    );
    println!(
        "   {:<26} {:>4} {:>9} {:>8} {:>6} {:>9} {:>9} {:>10}",
        "scenario", "c", "requests", "non-200", "conns", "p50 µs", "p99 µs", "req/s"
    );
    for result in &results {
        let name = format!("GET {}", result.path);
        println!(
            "   {name:<26} {:>4} {:>9} {:>8} {:>6} {:>9.1} {:>9.1} {:>10.0}{}",
            result.concurrency,
            result.completed,
            result.failures,
            result.connections,
            result.p50,
            result.p99,
            result.rps,
            if result.hit_time_limit {
                "  (stopped by time limit)"
            } else {
                ""
            }
        );
    }
    println!("   authenticated (/api/v1/organization) / baseline (/healthz):");
    for pair in results.chunks(2) {
        if let [baseline, authenticated] = pair {
            println!(
                "     c={:<3} p50 {:.2}x   req/s {:.2}x",
                baseline.concurrency,
                authenticated.p50 / baseline.p50,
                authenticated.rps / baseline.rps
            );
        }
    }

    let failures: usize = results.iter().map(|result| result.failures).sum();
    for result in results.iter().filter(|result| result.failures > 0) {
        println!(
            "   FAILURES in GET {} at c={}: {} non-200 responses (warm-up included); first ones:",
            result.path, result.concurrency, result.failures
        );
        for note in &result.failure_notes {
            println!("     {note}");
        }
    }
    failures
}
