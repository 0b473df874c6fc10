//! Helpers the benchmarks share: the machine report, latency statistics, the fixture build and
//! an MCP client ([`client`]).

// Each benchmark uses a subset.
#![allow(dead_code)]

pub mod client;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current UTC time as `YYYY-MM-DD HH:MM:SS UTC`, without a date crate.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn as_ns(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// Nearest-rank percentile of sorted nanosecond samples, in microseconds.
pub fn percentile_micros(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1000.0
}

/// Prints what the figures were measured on.
pub fn print_machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown (no \"model name\" in /proc/cpuinfo)".to_owned());
    let processors = cpuinfo
        .lines()
        .filter(|line| line.split(':').next().map(str::trim) == Some("processor"))
        .count();
    let available = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let profile = if cfg!(debug_assertions) {
        "debug assertions ON: not an optimized build, figures are meaningless"
    } else {
        "bench (inherits release: optimized, debug assertions off)"
    };

    println!();
    println!("Machine");
    println!("  CPU      : {model}");
    println!("  Cores    : {available} available to this process ({processors} in /proc/cpuinfo)");
    println!("  Kernel   : {}", command_output("uname", &["-srm"]));
    println!("  Profile  : {profile}");
    println!(
        "  rustc    : {} (on PATH at run time)",
        command_output("rustc", &["--version"])
    );
    println!("  Date     : {}", utc_now());
    println!(
        "  Load     : {} (1, 5, 15 min; above the core count, other work competes)",
        load_average()
    );
    println!();
    println!("  Note: client, gateway and fixture servers share these cores. Each baseline is");
    println!("  measured in the same run, so compare the ratios rather than the absolutes.");
}

/// The 1, 5 and 15 minute load averages from /proc/loadavg.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// PASS or MISS against a target.
pub fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// Builds `mcp-fixture` in release (a no-op when fresh): `cargo bench -p mcp-hero` builds only this
/// package, and a stale fixture must never answer for the current source.
pub fn build_fixture() -> PathBuf {
    // Benches run from target/release/deps; the workspace's binaries are one up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_owned();
    let binary = dir.join("mcp-fixture");
    // The cargo that compiled this bench (read at compile time: the environment is the config
    // module's alone, S16).
    let mut build = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"));
    build
        .args(["build", "--quiet", "--locked", "-p", "mcp-fixture"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build
        .env("CARGO_TARGET_DIR", dir.parent().expect("target dir"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building mcp-fixture failed");
    assert!(binary.exists(), "{} is missing", binary.display());
    binary
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |output| String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )
}
