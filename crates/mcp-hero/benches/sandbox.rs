//! Sandbox benchmark: how long a stdio server takes from launch to its first JSON-RPC answer in
//! a sandbox, beside the same server launched as a plain child process in the same run, and what
//! 200 concurrent sandboxed sessions cost. Run with `cargo bench -p mcp-hero --bench sandbox`
//! (as root, with bubblewrap); append `-- start` or `-- concurrent` to run one section.
//!
//! - Start: 200 rounds, each launching `mcp-fixture stdio` once sandboxed (the gateway's
//!   `Sandboxes`, with this package's `mcp-hero` binary as the exec helper and init) and once
//!   plain (the data plane's `PlainProcessLauncher`), alternating so drift hits both alike, and
//!   timing launch → `initialize` written → its answer read. Each server is torn down (the
//!   sandbox completely: cgroup killed and removed, uid released) before the next round.
//! - Concurrent: 200 sandboxes started at once, each answering `initialize`; the start-time
//!   distribution, this process's RSS with all of them up (it is the gateway here), then a
//!   teardown of all 200 that must leave no process, cgroup or socket directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{as_ns, build_fixture, percentile_micros, print_machine, verdict};
use mcp::launcher::{LaunchLabel, Launcher, PlainProcessLauncher, StdioCommand};
use sandbox::egress::{Decision, EgressPolicy};
use sandbox::{SandboxConfig, Sandboxes, StartRequest};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};

const ROUNDS: usize = 200;
const CONCURRENT: usize = 200;
const INITIALIZE: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}\n";

fn main() {
    if !rustix::process::geteuid().is_root() || !Path::new("/usr/bin/bwrap").exists() {
        eprintln!(
            "the sandbox benchmark needs root and /usr/bin/bwrap (apt-get install bubblewrap)"
        );
        std::process::exit(2);
    }
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let fixture = build_fixture();
    print_machine();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sandboxes = Sandboxes::new(config(&fixture), Arc::new(|_: Decision| {})).unwrap();
        println!("Sandbox runtime: {}", sandboxes.describe());
        if wants("start") {
            start_latency(&sandboxes, &fixture).await;
        }
        if wants("concurrent") {
            concurrent(&sandboxes, &fixture).await;
        }
    });
}

fn config(fixture: &Path) -> SandboxConfig {
    let mut config = SandboxConfig {
        helper_exe: env!("CARGO_BIN_EXE_mcp-hero").into(),
        ro_binds: vec![fixture.to_owned()],
        run_dir: PathBuf::from("/run/mcp-hero-bench"),
        grace: Duration::from_millis(200),
        ..SandboxConfig::default()
    };
    config.caps.global = CONCURRENT + 8;
    config.caps.per_org = CONCURRENT + 8;
    config.caps.per_server = CONCURRENT + 8;
    config
}

fn request(fixture: &Path, i: usize) -> StartRequest {
    StartRequest {
        org: "bench".into(),
        server: "fixture".into(),
        session: format!("s{i}"),
        command: vec![fixture.display().to_string(), "stdio".into()],
        working_dir: None,
        env: Vec::new(),
        files: Vec::new(),
        egress: Some(EgressPolicy::default()),
        image: None,
        decisions: None,
    }
}

/// Writes `initialize` and waits for the answer line.
async fn first_answer(
    stdin: &mut (impl AsyncWrite + Unpin),
    stdout: impl AsyncRead + Unpin,
) -> Result<(), String> {
    stdin
        .write_all(INITIALIZE)
        .await
        .map_err(|e| e.to_string())?;
    stdin.flush().await.map_err(|e| e.to_string())?;
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    match read {
        Ok(Ok(n)) if n > 0 && line.contains("\"result\"") => Ok(()),
        Ok(Ok(_)) => Err(format!("no answer: {line:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

async fn start_latency(sandboxes: &Sandboxes, fixture: &Path) {
    let plain = PlainProcessLauncher::new(None);
    let command = StdioCommand {
        command: fixture.display().to_string(),
        args: vec!["stdio".into()],
        working_dir: None,
        image: None,
        env: Vec::new(),
        files: Vec::new(),
    };
    let label = LaunchLabel {
        org: "bench".into(),
        server: "fixture".into(),
        session: "plain".into(),
    };
    let (mut sandboxed, mut direct) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    // A few unrecorded rounds warm the page cache and the allocator.
    for round in 0..ROUNDS + 5 {
        let start = Instant::now();
        let mut running = sandboxes.start(request(fixture, round)).await.unwrap();
        first_answer(&mut running.stdin, &mut running.stdout)
            .await
            .unwrap();
        let elapsed = start.elapsed();
        drop(running.stdin);
        running.handle.terminate().await.unwrap();
        if round >= 5 {
            sandboxed.push(as_ns(elapsed));
        }

        let start = Instant::now();
        let mut launched = plain
            .launch(&command, mcp::launcher::Injection::default(), &label)
            .await
            .unwrap();
        first_answer(&mut launched.stdin, &mut launched.stdout)
            .await
            .unwrap();
        let elapsed = start.elapsed();
        drop(launched.stdin);
        launched.handle.terminate().await;
        if round >= 5 {
            direct.push(as_ns(elapsed));
        }
    }
    sandboxed.sort_unstable();
    direct.sort_unstable();
    let ms = |v: &[u64], p: f64| percentile_micros(v, p) / 1000.0;
    let (s50, s99, d50, d99) = (
        ms(&sandboxed, 50.0),
        ms(&sandboxed, 99.0),
        ms(&direct, 50.0),
        ms(&direct, 99.0),
    );
    println!();
    println!("Launch → first JSON-RPC answer (`initialize`), {ROUNDS} rounds each, alternating");
    println!("  plain process : p50 {d50:7.2} ms   p99 {d99:7.2} ms");
    println!(
        "  sandboxed     : p50 {s50:7.2} ms   p99 {s99:7.2} ms   (×{:.1} at p50)",
        s50 / d50
    );
    println!(
        "  added by the sandbox: p50 {:+.2} ms (target ≤ 15: {})   p99 {:+.2} ms (target ≤ 40: {})",
        s50 - d50,
        verdict(s50 - d50 <= 15.0),
        s99 - d99,
        verdict(s99 - d99 <= 40.0)
    );
}

async fn concurrent(sandboxes: &Sandboxes, fixture: &Path) {
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT {
        let sandboxes = sandboxes.clone();
        let request = request(fixture, i);
        tasks.spawn(async move {
            let start = Instant::now();
            let mut running = sandboxes.start(request).await.map_err(|e| e.to_string())?;
            first_answer(&mut running.stdin, &mut running.stdout).await?;
            Ok::<_, String>((as_ns(start.elapsed()), running))
        });
    }
    let mut times = Vec::with_capacity(CONCURRENT);
    let mut running = Vec::with_capacity(CONCURRENT);
    let mut failures = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok((ns, sandbox)) => {
                times.push(ns);
                running.push(sandbox);
            }
            Err(error) => failures.push(error),
        }
    }
    let all_up = started.elapsed();
    let rss_up = rss_kib();
    times.sort_unstable();
    let ms = |p: f64| percentile_micros(&times, p) / 1000.0;
    let uids: Vec<u32> = running.iter().filter_map(|r| r.handle.host_uid()).collect();
    let cgroups: Vec<PathBuf> = running
        .iter()
        .flat_map(|r| r.handle.cgroup_paths())
        .collect();
    let dirs: Vec<PathBuf> = running.iter().filter_map(|r| r.handle.run_dir()).collect();
    println!();
    println!("{CONCURRENT} sandboxed sessions started at once");
    println!(
        "  answered: {} of {CONCURRENT}{}",
        times.len(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(" (failures: {:?})", &failures[..failures.len().min(3)])
        }
    );
    println!(
        "  start → first answer: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms; all up after {:.2} s",
        ms(50.0),
        ms(90.0),
        ms(99.0),
        ms(100.0),
        all_up.as_secs_f64()
    );
    println!(
        "  gateway RSS: {:.1} MiB before, {:.1} MiB with all up (+{:.1} KiB per sandbox; the servers' own memory is theirs, in their cgroups)",
        rss_before as f64 / 1024.0,
        rss_up as f64 / 1024.0,
        (rss_up.saturating_sub(rss_before)) as f64 / CONCURRENT as f64
    );
    let torn = Instant::now();
    let mut teardown = tokio::task::JoinSet::new();
    for mut sandbox in running {
        teardown.spawn(async move {
            drop(sandbox.stdin);
            sandbox.handle.terminate().await
        });
    }
    let mut errors = 0;
    while let Some(result) = teardown.join_next().await {
        if !matches!(result, Ok(Ok(()))) {
            errors += 1;
        }
    }
    // Processes of a killed sandbox may take a moment to be reaped; give them one second.
    let mut leftover_processes = usize::MAX;
    for _ in 0..20 {
        leftover_processes = uids.iter().filter(|uid| processes_of(**uid) > 0).count();
        if leftover_processes == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if leftover_processes > 0 {
        let _ = std::process::Command::new("sh")
            .args([
                "-c",
                "ps -eo uid,pid,ppid,stat,comm | awk '$1 >= 900000' | head -5",
            ])
            .status();
    }
    let leftover_cgroups = cgroups.iter().filter(|p| p.exists()).count();
    let leftover_dirs = dirs.iter().filter(|p| p.exists()).count();
    let clean = errors == 0
        && leftover_processes == 0
        && leftover_cgroups == 0
        && leftover_dirs == 0
        && sandboxes.running() == 0;
    println!(
        "  teardown of all: {:.2} s; errors {errors}, uids with processes left {leftover_processes}, cgroups left {leftover_cgroups}, socket dirs left {leftover_dirs}, still counted {}: {}",
        torn.elapsed().as_secs_f64(),
        sandboxes.running(),
        if clean { "CLEAN" } else { "LEAK" }
    );
    if !clean || !failures.is_empty() {
        std::process::exit(1);
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// How many processes run as host uid `uid`.
fn processes_of(uid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("status")).is_ok_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().next().map(|u| u == uid.to_string()))
                    .unwrap_or(false)
            })
        })
        .count()
}
