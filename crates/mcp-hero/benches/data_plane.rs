//! Data-plane benchmark: `tools/call` through the gateway beside the same call made directly to
//! the fixture server, the memory an idle session costs, and how long a new session takes to list
//! the tools of two stdio servers. Run with `cargo bench -p mcp-hero --bench data_plane`; append
//! `-- idle`, `-- calls` or `-- startup` (any of them) to run only those sections.
//!
//! A plain program (no harness): it prints figures and a PASS/MISS per target, and exits nonzero
//! only if a call failed (a wrong answer is a broken fixture, not a slow gateway). Everything runs
//! on 127.0.0.1: the gateway in this process (as `mcp-hero serve` builds it, with a temporary
//! SQLite store), the fixture servers as child processes (`mcp-fixture`, built here in release).
//!
//! - Through the gateway: client → `POST /o/{org}/mcp` (Streamable HTTP, bearer token, one
//!   session per client task) → the session's own `mcp-fixture stdio` process (plain-process
//!   launcher, as the tests use).
//! - Direct: client → `mcp-fixture http` (Streamable HTTP, one session per client task).
//!
//! Both use the same client: hyper's HTTP/1.1 connection API, one kept-alive TCP connection per
//! task, one request at a time per connection.

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

use common::client::{Connection, ECHO_TEXT, Endpoint, McpClient, PROTOCOL_VERSION};
use common::{as_ns, build_fixture, load_average, percentile_micros, print_machine, verdict};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use mcp::launcher::PlainProcessLauncher;
use mcp_hero::http::{AppState, router};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use store::{DatabaseLocation, Store};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};
use vault::{RootSecret, Vault};

const MAX_BODY: usize = 64 * 1024;

/// Round-trip scenarios: (concurrency, warm-up calls per task, measured calls in all).
const ROUND_TRIPS: [(usize, usize, usize); 2] = [(1, 500, 5_000), (64, 50, 50_000)];
const ROUND_TRIP_TIME_LIMIT: Duration = Duration::from_secs(30);
const ADDED_P50_TARGET_MICROS: f64 = 150.0;
const ADDED_P99_TARGET_MICROS: f64 = 1_000.0;
const THROUGHPUT_TARGET: f64 = 0.70;

/// Idle sessions: measured at each of these counts (cumulative), after a warm-up batch.
const IDLE_SESSION_STEPS: [usize; 3] = [200, 1_000, 4_000];
const IDLE_WARMUP_SESSIONS: usize = 100;
const IDLE_TARGET_KIB: f64 = 64.0;

const STARTUP_WARMUP_RUNS: usize = 2;
const STARTUP_RUNS: usize = 20;

/// How many failures are described in full; the rest are only counted.
const FAILURES_SHOWN: usize = 5;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    println!("MCP Hero data-plane benchmark");
    println!("=============================");
    print_machine();
    let fixture_binary = build_fixture();

    // Optional section names on the command line (`-- idle calls startup`) run only those; the
    // flags cargo adds (`--bench`) are not sections.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let runs = |section: &str| chosen.is_empty() || chosen.iter().any(|name| name == section);

    let failures = runtime.block_on(async {
        let bench = Bench::start(fixture_binary).await;
        let mut failures = 0;
        // Memory first, while the heap holds little freed memory that new sessions could reuse.
        if runs("idle") {
            failures += print_idle_sessions(&bench).await;
        }
        if runs("calls") {
            failures += print_round_trips(&bench).await;
        }
        if runs("startup") {
            failures += print_startup(&bench).await;
        }
        bench.gateway.shutdown().await;
        bench.store.close().await;
        failures
    });

    println!();
    println!("Load average at the end: {}", load_average());
    if failures == 0 {
        println!("Result: OK (every call was answered correctly; targets are reported above)");
        ExitCode::SUCCESS
    } else {
        println!("Result: FAILED ({failures} calls failed or answered wrongly)");
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture: the gateway in process, its store, three organizations, the fixture binary
// ---------------------------------------------------------------------------------------------

/// One organization with its slug and an owner's token.
struct Org {
    slug: &'static str,
    token: String,
}

struct Bench {
    _dir: tempfile::TempDir,
    store: Store,
    gateway: Arc<mcp::Gateway>,
    addr: SocketAddr,
    fixture_binary: PathBuf,
    /// One stdio fixture server registered, prefixed as `fx__`.
    calls: Org,
    /// No servers: only the gateway's own state per session.
    idle: Org,
    /// Two stdio fixture servers.
    two: Org,
}

impl Bench {
    async fn start(fixture_binary: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = RootSecret::from_base64(RootSecret::generate_base64().expose_secret())
            .expect("generated root secret parses");
        let location = DatabaseLocation::Sqlite {
            path: dir.path().join("bench.db"),
        };
        let store = Store::open(&location, Vault::new(&root, None))
            .await
            .expect("store opens");
        let mut orgs = Vec::new();
        for slug in ["calls", "idle", "two"] {
            let (scope, _, owner) = store
                .create_organization(slug, slug, &format!("owner@{slug}.example"))
                .await
                .expect("organization");
            let token = auth::pat::generate();
            store
                .create_token(&scope, &owner, "bench", None, &token.digest)
                .await
                .expect("token");
            orgs.push(Org {
                slug,
                token: token.secret.expose_secret().to_owned(),
            });
        }
        let [calls, idle, two] = <[Org; 3]>::try_from(orgs).ok().expect("three orgs");

        // As the test harness does; the one change is room for many sessions per member.
        let config = mcp::GatewayConfig {
            max_sessions_per_member: 4_096,
            ..mcp::GatewayConfig::default()
        };
        let gateway = mcp::Gateway::new(config, Arc::new(PlainProcessLauncher::new(None)))
            .expect("the MCP data plane starts");
        let app = router(AppState::new(store.clone(), gateway.clone()), MAX_BODY);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });

        let bench = Bench {
            _dir: dir,
            store,
            gateway,
            addr,
            fixture_binary,
            calls,
            idle,
            two,
        };
        bench.register(&bench.calls, "fx").await;
        bench.register(&bench.two, "fa").await;
        bench.register(&bench.two, "fb").await;
        bench
    }

    /// Registers a stdio fixture server through the API, as an operator would.
    async fn register(&self, org: &Org, name: &str) {
        let body = json!({
            "name": name,
            "transport": {
                "type": "stdio",
                "command": self.fixture_binary.display().to_string(),
                "args": ["stdio", "--name", name],
            },
            "exposure": "prefixed",
        });
        let mut connection = Connection::open(self.addr).await;
        let (status, _, answer) = connection
            .send(
                Method::POST,
                "/api/v1/servers",
                Some(&org.token),
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
    }

    fn endpoint(&self, org: &Org) -> Endpoint {
        Endpoint {
            addr: self.addr,
            path: format!("/o/{}/mcp", org.slug),
            token: Some(org.token.clone()),
        }
    }
}

/// `mcp-fixture http` on a free loopback port; killed when dropped.
struct DirectFixture {
    _child: Child,
    endpoint: Endpoint,
}

impl DirectFixture {
    async fn start(binary: &PathBuf) -> Self {
        let mut child = Command::new(binary)
            .args(["http", "--listen", "127.0.0.1:0", "--name", "direct"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("mcp-fixture http starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("listening line");
        let url = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let (addr, path) = url.split_once('/').expect("ADDR/mcp");
        DirectFixture {
            _child: child,
            endpoint: Endpoint {
                addr: addr.parse().expect("socket address"),
                path: format!("/{path}"),
                token: None,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. tools/call round trips
// ---------------------------------------------------------------------------------------------

/// CPU time (user + system) of a process from /proc/PID/stat, in µs; USER_HZ is 100 on Linux.
fn process_cpu_micros(stat: &str) -> Option<(u32, u64)> {
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, (utime + stime) * 10_000))
}

/// CPU time so far of this process and of all its live child processes (the fixture servers), µs.
fn cpu_micros() -> (u64, u64) {
    let me = std::process::id();
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| process_cpu_micros(&stat))
        .map_or(0, |(_, micros)| micros);
    let mut children = 0;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
                && let Some((ppid, micros)) = process_cpu_micros(&stat)
                && ppid == me
            {
                children += micros;
            }
        }
    }
    (own, children)
}

#[derive(Default)]
struct WorkerLog {
    latencies_ns: Vec<u64>,
    failures: usize,
    notes: Vec<String>,
}

impl WorkerLog {
    fn record(&mut self, outcome: Result<(), String>) {
        if let Err(note) = outcome {
            self.failures += 1;
            if self.notes.len() < FAILURES_SHOWN {
                self.notes.push(note);
            }
        }
    }

    fn merge(&mut self, other: WorkerLog) {
        self.latencies_ns.extend(other.latencies_ns);
        self.failures += other.failures;
        let room = FAILURES_SHOWN.saturating_sub(self.notes.len());
        self.notes.extend(other.notes.into_iter().take(room));
    }
}

struct RoundTrip {
    completed: usize,
    failures: usize,
    notes: Vec<String>,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    calls_per_sec: f64,
    hit_time_limit: bool,
    /// CPU µs per call in this process (client, and the gateway when it is on the path).
    own_cpu: f64,
    /// CPU µs per call in the fixture server processes.
    child_cpu: f64,
}

/// How a round-trip client reaches the fixture's `echo`.
#[derive(Clone)]
enum Route {
    /// Streamable HTTP: the gateway or `mcp-fixture http`; the tool's name there.
    Http(Endpoint, &'static str),
    /// Its own `mcp-fixture stdio` process over pipes (the gateway's last hop, without it).
    Stdio(PathBuf),
}

/// `mcp-fixture stdio` spoken to directly: one line out, one line back.
struct StdioClient {
    _child: Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    next_id: u64,
}

impl StdioClient {
    async fn start(binary: &PathBuf) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .args(["stdio", "--name", "pipes"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("mcp-fixture stdio: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut client = StdioClient {
            _child: child,
            stdin,
            lines,
            next_id: 1,
        };
        let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "data-plane-bench", "version": "1"}}});
        client.exchange(&initialize).await?;
        client
            .write(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(client)
    }

    async fn write(&mut self, message: &Value) -> Result<(), String> {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("stdin: {e}"))
    }

    async fn exchange(&mut self, message: &Value) -> Result<Value, String> {
        self.write(message).await?;
        let line = self
            .lines
            .next_line()
            .await
            .map_err(|e| format!("stdout: {e}"))?
            .ok_or("stdout closed")?;
        serde_json::from_str(&line).map_err(|e| format!("stdout: {e}"))
    }

    async fn echo(&mut self) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        let answer = self
            .exchange(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": ECHO_TEXT}}}))
            .await?;
        if answer["id"] == id && answer["result"]["content"][0]["text"] == ECHO_TEXT {
            Ok(())
        } else {
            Err(format!("stdio tools/call echo: unexpected answer {answer}"))
        }
    }
}

enum CallClient {
    Http(McpClient, &'static str),
    Stdio(StdioClient),
}

impl CallClient {
    async fn start(route: &Route) -> Result<Self, String> {
        match route {
            Route::Http(endpoint, tool) => {
                let mut client = McpClient::connect(endpoint).await;
                client.initialize().await?;
                Ok(CallClient::Http(client, tool))
            }
            Route::Stdio(binary) => Ok(CallClient::Stdio(StdioClient::start(binary).await?)),
        }
    }

    async fn echo(&mut self) -> Result<(), String> {
        match self {
            CallClient::Http(client, tool) => client.echo(tool).await,
            CallClient::Stdio(client) => client.echo().await,
        }
    }

    async fn end(&mut self) {
        if let CallClient::Http(client, _) = self {
            client.end().await;
        }
    }
}

async fn run_round_trips(
    route: &Route,
    concurrency: usize,
    warmup: usize,
    calls: usize,
) -> RoundTrip {
    // Each task connects, initializes its session and warms up; then all start together.
    let mut starting = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let route = route.clone();
        starting.push(tokio::spawn(async move {
            let mut log = WorkerLog::default();
            let client = match CallClient::start(&route).await {
                Ok(mut client) => {
                    for _ in 0..warmup {
                        log.record(client.echo().await);
                    }
                    Some(client)
                }
                Err(note) => {
                    log.record(Err(note));
                    None
                }
            };
            (client, log)
        }));
    }
    let mut clients = Vec::with_capacity(concurrency);
    let mut log = WorkerLog::default();
    for handle in starting {
        let (client, warm) = handle.await.expect("warm-up task");
        clients.extend(client);
        log.merge(warm);
    }

    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = cpu_micros();
    let start = Instant::now();
    let deadline = start + ROUND_TRIP_TIME_LIMIT;
    let mut workers = Vec::with_capacity(concurrency);
    for mut client in clients {
        let next = Arc::clone(&next);
        workers.push(tokio::spawn(async move {
            let mut log = WorkerLog {
                latencies_ns: Vec::with_capacity(calls / concurrency + 1),
                ..WorkerLog::default()
            };
            while next.fetch_add(1, Ordering::Relaxed) < calls && Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = client.echo().await;
                log.latencies_ns.push(as_ns(sent.elapsed()));
                log.record(outcome);
            }
            (client, log)
        }));
    }
    let mut clients = Vec::with_capacity(concurrency);
    for handle in workers {
        let (client, worker) = handle.await.expect("worker");
        clients.push(client);
        log.merge(worker);
    }
    let elapsed = start.elapsed();
    let cpu_after = cpu_micros();
    // End the sessions (and so the gateway's stdio servers) before the next scenario.
    futures_util::future::join_all(clients.iter_mut().map(CallClient::end)).await;
    drop(clients);

    let completed = log.latencies_ns.len();
    log.latencies_ns.sort_unstable();
    let sorted = &log.latencies_ns;
    RoundTrip {
        completed,
        failures: log.failures,
        notes: log.notes,
        p50: percentile_micros(sorted, 50.0),
        p90: percentile_micros(sorted, 90.0),
        p99: percentile_micros(sorted, 99.0),
        p999: percentile_micros(sorted, 99.9),
        calls_per_sec: completed as f64 / elapsed.as_secs_f64(),
        hit_time_limit: completed < calls,
        own_cpu: cpu_after.0.saturating_sub(cpu_before.0) as f64 / completed.max(1) as f64,
        child_cpu: cpu_after.1.saturating_sub(cpu_before.1) as f64 / completed.max(1) as f64,
    }
}

/// The paths measured, in print order; the first two are the ones the targets compare.
const PATHS: [&str; 3] = ["direct", "gateway", "stdio"];

/// Returns how many calls failed.
async fn print_round_trips(bench: &Bench) -> usize {
    let direct = DirectFixture::start(&bench.fixture_binary).await;
    let through = bench.endpoint(&bench.calls);
    let routes = [
        Route::Http(direct.endpoint.clone(), "echo"),
        Route::Http(through.clone(), "fx__echo"),
        Route::Stdio(bench.fixture_binary.clone()),
    ];

    let mut rows: Vec<(usize, Vec<RoundTrip>)> = Vec::new();
    for (concurrency, warmup, calls) in ROUND_TRIPS {
        let mut results = Vec::with_capacity(routes.len());
        for route in &routes {
            results.push(run_round_trips(route, concurrency, warmup, calls).await);
        }
        rows.push((concurrency, results));
    }
    drop(direct);

    println!();
    println!(
        "1. tools/call round trip (fixture `echo`, {} B of text), through the gateway vs direct",
        ECHO_TEXT.len()
    );
    println!("   direct : client → mcp-fixture http (Streamable HTTP, its own session per task)");
    println!(
        "   gateway: client → {} → mcp-fixture stdio (one process per session, plain launcher)",
        through.path
    );
    println!(
        "   stdio  : (for attribution, no target) client → its own mcp-fixture stdio over pipes"
    );
    println!(
        "   client: hyper HTTP/1.1, one kept-alive connection and one initialized session per task;"
    );
    println!(
        "   warm-up {} calls/task at c=1, {} at c=64; then {} calls at c=1, {} at c=64 (or {} s)",
        ROUND_TRIPS[0].1,
        ROUND_TRIPS[1].1,
        ROUND_TRIPS[0].2,
        ROUND_TRIPS[1].2,
        ROUND_TRIP_TIME_LIMIT.as_secs()
    );
    println!(
        "   {:<8} {:>3} {:>7} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "path",
        "c",
        "calls",
        "fail",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "calls/s",
        "CPU µs/call"
    );
    let mut failures = 0;
    for (concurrency, results) in &rows {
        for (name, result) in PATHS.iter().zip(results) {
            println!(
                "   {name:<8} {concurrency:>3} {:>7} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.0} {:>5.0} + {:<5.0}{}",
                result.completed,
                result.failures,
                result.p50,
                result.p90,
                result.p99,
                result.p999,
                result.calls_per_sec,
                result.own_cpu,
                result.child_cpu,
                if result.hit_time_limit {
                    "  (time limit)"
                } else {
                    ""
                }
            );
            failures += result.failures;
        }
    }
    println!(
        "   CPU µs/call = this process (client, plus the gateway on its path) + fixture processes"
    );
    println!("   gateway / direct:");
    for (concurrency, results) in &rows {
        let [direct, gateway, ..] = results.as_slice() else {
            continue;
        };
        println!(
            "     c={concurrency:<3} p50 {:.2}x (+{:.1} µs)   p99 {:.2}x (+{:.1} µs)   calls/s {:.2}x",
            gateway.p50 / direct.p50,
            gateway.p50 - direct.p50,
            gateway.p99 / direct.p99,
            gateway.p99 - direct.p99,
            gateway.calls_per_sec / direct.calls_per_sec
        );
    }
    if let [(_, at1), (c64, at64)] = rows.as_slice()
        && let ([direct1, gateway1, ..], [direct64, gateway64, ..]) =
            (at1.as_slice(), at64.as_slice())
    {
        let added_p50 = gateway1.p50 - direct1.p50;
        let added_p99 = gateway1.p99 - direct1.p99;
        let share = gateway64.calls_per_sec / direct64.calls_per_sec;
        println!("   targets:");
        println!(
            "     added p50 at c=1 ≤ {ADDED_P50_TARGET_MICROS:.0} µs: {added_p50:.1} µs  {}",
            verdict(added_p50 <= ADDED_P50_TARGET_MICROS)
        );
        println!(
            "     added p99 at c=1 ≤ {ADDED_P99_TARGET_MICROS:.0} µs: {added_p99:.1} µs  {}",
            verdict(added_p99 <= ADDED_P99_TARGET_MICROS)
        );
        println!(
            "     gateway throughput at c={c64} ≥ {:.0}% of direct: {:.0}%  {}",
            THROUGHPUT_TARGET * 100.0,
            share * 100.0,
            verdict(share >= THROUGHPUT_TARGET)
        );
        if let [.., stdio64] = at64.as_slice() {
            print_ceiling(*c64, direct64, gateway64, stdio64);
        }
    }
    for (concurrency, results) in &rows {
        for (name, result) in PATHS.iter().zip(results) {
            if result.failures > 0 {
                println!(
                    "   FAILURES {name} c={concurrency}: {} (warm-up included); first ones:",
                    result.failures
                );
                for note in &result.notes {
                    println!("     {note}");
                }
            }
        }
    }
    failures
}

/// What throughput share the gateway could reach at all when the cores are the limit, from the
/// CPU each part of its path cost in this run. A call through the gateway costs at least the
/// direct call's client and HTTP server (the gateway terminates the same request) plus one call
/// over a server's pipes (the stdio row: pipe client and fixture process, one per session by
/// S1). So even a gateway whose own work cost nothing more reaches at most
/// direct / (direct + stdio) of direct's calls per second; the rest of the gap is the gateway's
/// own CPU per call, printed beside it.
fn print_ceiling(concurrency: usize, direct: &RoundTrip, gateway: &RoundTrip, stdio: &RoundTrip) {
    let direct_cpu = direct.own_cpu + direct.child_cpu;
    let stdio_cpu = stdio.own_cpu + stdio.child_cpu;
    let ceiling = direct_cpu / (direct_cpu + stdio_cpu);
    // This process runs the client too; the direct row measured what the client costs alone.
    let gateway_own = gateway.own_cpu - direct.own_cpu;
    println!(
        "   ceiling at c={concurrency} with the cores as the limit: direct {direct_cpu:.0} µs CPU/call, \
         one stdio call {stdio_cpu:.0} µs"
    );
    println!(
        "     → a gateway costing no more than an HTTP server plus a pipe client reaches at most \
         {:.0}% of direct",
        ceiling * 100.0
    );
    println!(
        "     the gateway's own CPU per call in this run (HTTP, MCP, pipes; the client's taken \
         out): {gateway_own:.0} µs"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Memory per idle session
// ---------------------------------------------------------------------------------------------

/// This process's resident set, in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Opens `count` initialized sessions one after another on one connection; keeps only their ids.
async fn open_sessions(endpoint: &Endpoint, count: usize, into: &mut Vec<HeaderValue>) -> usize {
    let mut client = McpClient::connect(endpoint).await;
    let mut failures = 0;
    for _ in 0..count {
        client.session = None;
        match client.initialize().await {
            Ok(()) => into.push(client.session.take().expect("session id")),
            Err(note) => {
                failures += 1;
                if failures == 1 {
                    println!("   FAILURE: {note}");
                }
            }
        }
    }
    failures
}

async fn end_sessions(endpoint: &Endpoint, sessions: &mut Vec<HeaderValue>) {
    let mut client = McpClient::connect(endpoint).await;
    for session in sessions.drain(..) {
        client.session = Some(session);
        client.end().await;
    }
}

/// Returns how many sessions failed to open.
async fn print_idle_sessions(bench: &Bench) -> usize {
    let endpoint = bench.endpoint(&bench.idle);
    let before_all = bench.gateway.session_count();
    let mut sessions = Vec::new();
    // Warm-up: grows the allocator's arenas and the registry once, then gives the sessions back.
    let mut failures = open_sessions(&endpoint, IDLE_WARMUP_SESSIONS, &mut sessions).await;
    end_sessions(&endpoint, &mut sessions).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let base = rss_kib();
    let mut rows = Vec::new();
    for step in IDLE_SESSION_STEPS {
        failures += open_sessions(&endpoint, step - sessions.len(), &mut sessions).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        rows.push((
            sessions.len(),
            bench.gateway.session_count() - before_all,
            rss_kib(),
        ));
    }
    end_sessions(&endpoint, &mut sessions).await;

    println!();
    println!(
        "2. Gateway memory per idle session (measured first; an organization with no servers)"
    );
    println!(
        "   sessions opened one by one (initialize + notifications/initialized) on one connection,"
    );
    println!(
        "   after {IDLE_WARMUP_SESSIONS} warm-up sessions opened and ended; VmRSS of this process (mimalloc, the gateway's allocator)"
    );
    println!("   baseline VmRSS {base} KiB");
    println!(
        "   {:>8} {:>10} {:>12} {:>12} {:>16}",
        "sessions", "live", "VmRSS KiB", "delta KiB", "KiB per session"
    );
    let mut worst = 0.0_f64;
    for (opened, live, rss) in &rows {
        let delta = rss.saturating_sub(base);
        let per = delta as f64 / *opened as f64;
        worst = worst.max(per);
        println!("   {opened:>8} {live:>10} {rss:>12} {delta:>12} {per:>16.2}");
    }
    println!(
        "   target ≤ {IDLE_TARGET_KIB:.0} KiB per idle session: {worst:.2} KiB (worst step)  {}",
        verdict(worst <= IDLE_TARGET_KIB)
    );
    failures
}

// ---------------------------------------------------------------------------------------------
// 3. initialize → first tools/list with two stdio upstreams
// ---------------------------------------------------------------------------------------------

/// The floor: two `mcp-fixture stdio` processes spawned directly, each sent initialize,
/// notifications/initialized and tools/list over its pipes, in parallel; returns the tool count.
async fn direct_stdio_listing(binary: &PathBuf) -> usize {
    let one = async |name: &str| {
        let mut child = Command::new(binary)
            .args(["stdio", "--name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mcp-fixture stdio starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "data-plane-bench", "version": "1"}}});
        stdin
            .write_all(format!("{initialize}\n").as_bytes())
            .await
            .expect("write");
        lines
            .next_line()
            .await
            .expect("read")
            .expect("initialize answer");
        let rest = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string()
            + "\n"
            + &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string()
            + "\n";
        stdin.write_all(rest.as_bytes()).await.expect("write");
        let answer: Value =
            serde_json::from_str(&lines.next_line().await.expect("read").expect("answer"))
                .expect("JSON");
        drop(stdin);
        let _ = child.wait().await;
        answer["result"]["tools"].as_array().map_or(0, Vec::len)
    };
    let (a, b) = tokio::join!(one("fa"), one("fb"));
    a + b
}

/// Returns how many runs failed.
async fn print_startup(bench: &Bench) -> usize {
    let endpoint = bench.endpoint(&bench.two);
    let mut failures = 0;
    let mut notes = Vec::new();
    let mut to_initialize = Vec::new();
    let mut to_list = Vec::new();
    let mut direct = Vec::new();
    let mut expected_tools = 0;
    for run in 0..STARTUP_WARMUP_RUNS + STARTUP_RUNS {
        let measured = run >= STARTUP_WARMUP_RUNS;
        // Baseline first, interleaved run by run with the gateway so drift hits both alike.
        let start = Instant::now();
        expected_tools = direct_stdio_listing(&bench.fixture_binary).await;
        if measured {
            direct.push(as_ns(start.elapsed()));
        }

        let mut client = McpClient::connect(&endpoint).await;
        let start = Instant::now();
        let outcome = async {
            client.initialize().await?;
            let initialized = start.elapsed();
            let result = client.request("tools/list", json!({})).await?;
            let listed = start.elapsed();
            let tools = result["tools"].as_array().map_or(0, Vec::len);
            if tools != expected_tools {
                return Err(format!(
                    "tools/list: {tools} tools, expected {expected_tools}"
                ));
            }
            Ok((initialized, listed))
        }
        .await;
        client.end().await;
        match outcome {
            Ok((initialized, listed)) if measured => {
                to_initialize.push(as_ns(initialized));
                to_list.push(as_ns(listed));
            }
            Ok(_) => {}
            Err(note) => {
                failures += 1;
                if notes.len() < FAILURES_SHOWN {
                    notes.push(note);
                }
            }
        }
    }
    for samples in [&mut to_initialize, &mut to_list, &mut direct] {
        samples.sort_unstable();
    }
    let ms = |sorted: &[u64], p: f64| percentile_micros(sorted, p) / 1000.0;

    println!();
    println!(
        "3. initialize → first tools/list answer, two stdio upstreams (fa, fb: {expected_tools} tools in all)"
    );
    println!(
        "   {STARTUP_RUNS} runs after {STARTUP_WARMUP_RUNS} warm-up; a fresh connection and session per run, ended (DELETE) after"
    );
    println!("   {:<64} {:>9} {:>9}", "", "p50 ms", "p90 ms");
    println!(
        "   {:<64} {:>9.2} {:>9.2}",
        "gateway: initialize + initialized answered",
        ms(&to_initialize, 50.0),
        ms(&to_initialize, 90.0)
    );
    println!(
        "   {:<64} {:>9.2} {:>9.2}",
        "gateway: initialize → tools/list answered (both servers)",
        ms(&to_list, 50.0),
        ms(&to_list, 90.0)
    );
    println!(
        "   {:<64} {:>9.2} {:>9.2}",
        "baseline: spawn both directly, initialize + tools/list (pipes)",
        ms(&direct, 50.0),
        ms(&direct, 90.0)
    );
    println!(
        "   gateway / baseline: p50 {:.2}x ({:+.2} ms)",
        ms(&to_list, 50.0) / ms(&direct, 50.0),
        ms(&to_list, 50.0) - ms(&direct, 50.0)
    );
    for note in &notes {
        println!("   FAILURE: {note}");
    }
    failures
}
