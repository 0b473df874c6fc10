//! Harness of the escape suite: one sandbox runtime shared by every test of the binary, the probe
//! binary (`mcp-sandbox-probe`, built on demand), a fake gateway data directory and socket on the
//! host, and [`Lab::probe`], which runs one check in a fresh sandbox and returns what it printed
//! and how the sandbox ended.
//!
//! One runtime for the whole binary, not one per test, as one gateway has: its caps, uid pool and
//! counters then see every sandbox of the suite, and the leak test can wait for them to drain.

#![allow(dead_code)] // Each test uses a different part of the harness.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sandbox::egress::{Decision, EgressPolicy};
use sandbox::launcher::Tracked;
use sandbox::{
    Caps, Exit, Limits, RunningSandbox, SandboxConfig, SandboxHandle, Sandboxes, StartRequest,
    UidRange,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, BufReader};
use tokio::process::{ChildStdin, ChildStdout};

/// The limits every escape-suite sandbox runs under: small, so the resource tests end quickly,
/// with the file-size limit well below the tmpfs size so EFBIG comes before ENOSPC.
pub fn limits() -> Limits {
    const MIB: u64 = 1024 * 1024;
    Limits {
        memory_bytes: 128 * MIB,
        pids: 64,
        cpu_percent: 50,
        open_files: 256,
        file_size_bytes: 4 * MIB,
        tmp_bytes: 16 * MIB,
        home_bytes: 16 * MIB,
        wall_clock: Duration::from_secs(300),
        idle: Duration::from_secs(120),
    }
}

/// A uid range of its own, so the suite's sandboxes never share a host uid with sandboxes of
/// another test binary running at the same time (each runtime has its own pool).
pub const UID_POOL: UidRange = UidRange {
    first: 910_000,
    count: 1024,
};

/// How long a probe may take to print its line.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything the suite shares.
pub struct Lab {
    /// The sandbox runtime under test.
    pub sandboxes: Sandboxes,
    /// The probe binary on the host, bound read-only at the same path inside.
    pub probe: PathBuf,
    /// A stand-in for the gateway's data directory, holding `mcp-hero.db` and `gateway.sock`.
    pub data_dir: PathBuf,
    /// The socket directory root the runtime uses.
    pub run_dir: PathBuf,
    /// Every egress decision of every sandbox, in order.
    pub decisions: Arc<Mutex<Vec<Decision>>>,
    _host_dir: tempfile::TempDir,
    _gateway_socket: std::os::unix::net::UnixListener,
}

/// Reads a test setting; the one place the suite looks at the environment.
#[allow(clippy::disallowed_methods)] // Test configuration (CI), never a secret.
pub fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Why the suite cannot run here, if it cannot: it needs root and bubblewrap.
fn missing_requirement() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Some(format!("not running as root (euid {euid})"));
    }
    match std::process::Command::new("bwrap")
        .arg("--version")
        .output()
    {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!("`bwrap --version` failed: {}", output.status)),
        Err(error) => Some(format!("bwrap is not installed: {error}")),
    }
}

/// The shared lab, or `None` (after saying why) when the suite cannot run here. Under `CI=true`
/// a missing requirement fails the test instead: CI is root and installs bubblewrap.
#[allow(clippy::print_stderr)] // Says why a test did nothing.
pub fn lab() -> Option<&'static Lab> {
    static LAB: OnceLock<Option<Lab>> = OnceLock::new();
    LAB.get_or_init(|| {
        if let Some(reason) = missing_requirement() {
            assert!(
                setting("CI").as_deref() != Some("true"),
                "CI=true but the escape suite cannot run: {reason}"
            );
            eprintln!("skipped: the escape suite needs root and bubblewrap: {reason}");
            return None;
        }
        Some(Lab::new())
    })
    .as_ref()
}

impl Lab {
    fn new() -> Lab {
        let probe = probe_binary();
        // Beside the target directory, whose probe binary is bound into every sandbox: a path
        // next to a bound one must stay invisible too.
        let host_dir = tempfile::Builder::new()
            .prefix("escape-host-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let data_dir = host_dir.path().join("data");
        std::fs::create_dir(&data_dir).unwrap();
        std::fs::write(
            data_dir.join("mcp-hero.db"),
            "SQLite format 3\0 the gateway's secrets",
        )
        .unwrap();
        let gateway_socket =
            std::os::unix::net::UnixListener::bind(data_dir.join("gateway.sock")).unwrap();
        let run_dir = host_dir.path().join("run");
        let decisions: Arc<Mutex<Vec<Decision>>> = Arc::default();
        let sink = {
            let decisions = decisions.clone();
            move |decision: Decision| decisions.lock().unwrap().push(decision)
        };
        let config = SandboxConfig {
            helper_exe: env!("CARGO_BIN_EXE_mcp-hero").into(),
            run_dir: run_dir.clone(),
            uid_pool: UID_POOL,
            limits: limits(),
            caps: Caps {
                global: 256,
                per_org: 256,
                per_server: 256,
            },
            ro_binds: vec![probe.clone()],
            grace: Duration::from_millis(500),
            ..SandboxConfig::default()
        };
        let sandboxes = Sandboxes::new(config, Arc::new(sink)).unwrap();
        assert!(
            sandboxes.pooled_uids(),
            "run as root, sandboxes must get pooled uids"
        );
        Lab {
            sandboxes,
            probe,
            data_dir,
            run_dir,
            decisions,
            _host_dir: host_dir,
            _gateway_socket: gateway_socket,
        }
    }

    /// Starts the probe with `args` in a new sandbox whose egress goes through a proxy with
    /// `egress` (the default policy when `None`).
    pub async fn start_with(&self, args: &[&str], egress: Option<EgressPolicy>) -> Session {
        let mut command = vec![self.probe.to_string_lossy().into_owned()];
        command.extend(args.iter().map(|arg| (*arg).to_owned()));
        let request = StartRequest {
            org: "escape".into(),
            server: "probe".into(),
            session: args.first().copied().unwrap_or("none").to_owned(),
            command,
            working_dir: None,
            env: Vec::new(),
            files: Vec::new(),
            egress: Some(egress.unwrap_or_default()),
            image: None,
            decisions: None,
        };
        let running = self.sandboxes.start(request).await.unwrap();
        Session::new(running, args)
    }

    /// Starts the probe with `args` in a new sandbox with the default egress policy.
    pub async fn start(&self, args: &[&str]) -> Session {
        self.start_with(args, None).await
    }

    /// Runs one check to its end: its line, how the sandbox ended, the sandbox torn down.
    pub async fn probe(&self, args: &[&str]) -> Report {
        self.probe_with(args, None).await
    }

    /// [`Lab::probe`] with an egress policy.
    pub async fn probe_with(&self, args: &[&str], egress: Option<EgressPolicy>) -> Report {
        let mut session = self.start_with(args, egress).await;
        let line = session.line().await;
        session.finish(line).await
    }

    /// The egress decisions recorded so far for destination port `port`.
    pub fn decisions_for_port(&self, port: u16) -> Vec<Decision> {
        self.decisions
            .lock()
            .unwrap()
            .iter()
            .filter(|decision| decision.port == port)
            .cloned()
            .collect()
    }
}

/// One running probe.
pub struct Session {
    args: Vec<String>,
    stdin: Option<Tracked<ChildStdin>>,
    reader: Option<BufReader<Tracked<ChildStdout>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Waits for and ends the sandbox.
    pub handle: SandboxHandle,
}

impl Session {
    fn new(running: RunningSandbox, args: &[&str]) -> Session {
        let RunningSandbox {
            stdin,
            stdout,
            stderr: stderr_pipe,
            handle,
        } = running;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(drain(stderr_pipe, stderr.clone()));
        Session {
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            stdin: Some(stdin),
            reader: Some(BufReader::new(stdout)),
            stderr,
            handle,
        }
    }

    /// The host uid the sandbox runs as.
    pub fn host_uid(&self) -> u32 {
        self.handle.host_uid().unwrap()
    }

    /// The host pid of bubblewrap's outer process.
    pub fn host_pid(&self) -> u32 {
        self.handle.pid().unwrap()
    }

    /// Every host pid in the sandbox's cgroup.
    pub fn host_pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for dir in self.handle.cgroup_paths() {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            pids.extend(
                procs
                    .lines()
                    .filter_map(|line| line.trim().parse::<u32>().ok()),
            );
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The sandbox's socket directory on the host.
    pub fn run_dir(&self) -> PathBuf {
        self.handle.run_dir().unwrap()
    }

    /// The next line the probe prints, parsed; `None` when stdout ends first.
    pub async fn line(&mut self) -> Option<Value> {
        let reader = self.reader.as_mut()?;
        let mut line = Vec::new();
        let read = tokio::time::timeout(
            LINE_TIMEOUT,
            reader.take(1 << 20).read_until(b'\n', &mut line),
        )
        .await
        .unwrap_or_else(|_| panic!("{:?} printed nothing within {LINE_TIMEOUT:?}", self.args));
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_slice(&line).unwrap_or_else(|error| {
                panic!(
                    "{:?} printed a bad line {:?}: {error}",
                    self.args,
                    String::from_utf8_lossy(&line)
                )
            })),
        }
    }

    /// Reads up to `limit` raw bytes of stdout (for the flood test).
    pub async fn read_raw(&mut self, limit: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        if let Some(reader) = self.reader.as_mut() {
            let _ = tokio::time::timeout(
                LINE_TIMEOUT,
                reader.take(limit as u64).read_to_end(&mut bytes),
            )
            .await;
        }
        bytes
    }

    /// Closes the probe's stdout, as a gateway does with a server that floods it.
    pub fn close_stdout(&mut self) {
        self.reader = None;
    }

    /// Waits for the sandbox to end (closing its stdin first), tears it down, and reports.
    pub async fn finish(mut self, line: Option<Value>) -> Report {
        let host_uid = self.handle.host_uid();
        self.stdin = None;
        let exit = tokio::time::timeout(Duration::from_secs(60), self.handle.wait())
            .await
            .unwrap_or_else(|_| panic!("{:?} did not end within 60 s", self.args));
        self.handle.terminate().await.unwrap();
        let stderr = String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned();
        Report {
            args: std::mem::take(&mut self.args),
            line,
            exit,
            stderr,
            host_uid,
        }
    }

    /// Tears the sandbox down now, whatever it is doing; returns how it ended.
    pub async fn end(mut self) -> Exit {
        self.stdin = None;
        self.handle.terminate().await.unwrap();
        self.handle.wait().await
    }

    /// Whether bubblewrap's outer process still runs.
    pub fn is_running(&self) -> bool {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.host_pid())).unwrap_or_default();
        !stat.is_empty() && !stat.contains(") Z ")
    }
}

async fn drain(mut pipe: impl AsyncRead + Unpin, into: Arc<Mutex<Vec<u8>>>) {
    let mut buffer = [0u8; 4096];
    while let Ok(count) = pipe.read(&mut buffer).await {
        if count == 0 {
            break;
        }
        let mut kept = into.lock().unwrap();
        if kept.len() < 64 * 1024 {
            kept.extend_from_slice(&buffer[..count]);
        }
    }
}

/// What one probe run showed.
#[derive(Debug)]
pub struct Report {
    /// The probe's arguments.
    pub args: Vec<String>,
    /// Its JSON line, if it printed one before it ended.
    pub line: Option<Value>,
    /// How the sandbox ended.
    pub exit: Exit,
    /// Its stderr (the init's and bubblewrap's complaints too).
    pub stderr: String,
    /// The host uid it ran as.
    pub host_uid: Option<u32>,
}

impl Report {
    /// The line, or a failure naming everything else that is known.
    pub fn line(&self) -> &Value {
        self.line
            .as_ref()
            .unwrap_or_else(|| panic!("the probe printed no line: {self:#?}"))
    }

    /// `outcome` of the line.
    pub fn outcome(&self) -> &str {
        self.line()["outcome"].as_str().unwrap_or("?")
    }

    /// `errno` of the line.
    pub fn errno(&self) -> Option<&str> {
        self.line()["errno"].as_str()
    }

    /// `detail` of the line.
    pub fn detail(&self) -> &str {
        self.line()["detail"].as_str().unwrap_or("")
    }

    /// Asserts `denied` with exactly `errno`.
    #[track_caller]
    pub fn assert_denied(&self, errno: &str) {
        assert_eq!(
            (self.outcome(), self.errno()),
            ("denied", Some(errno)),
            "expected denied with {errno}: {self:#?}"
        );
    }

    /// Asserts `denied` without an errno (a value read from /proc, a proxy status).
    #[track_caller]
    pub fn assert_denied_without_errno(&self) {
        assert_eq!(
            (self.outcome(), self.errno()),
            ("denied", None),
            "{self:#?}"
        );
    }
}

/// The probe binary, built once per test binary when missing or older than its sources.
pub fn probe_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // Integration tests live in target/<profile>/deps; the workspace's binaries one up.
    let dir = exe.parent().unwrap().parent().unwrap().to_owned();
    let binary = dir.join("mcp-sandbox-probe");
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../probe");
    if is_stale(&binary, &sources) {
        let cargo = setting("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "--locked", "-p", "sandbox-probe"])
            .env("CARGO_TARGET_DIR", dir.parent().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "building sandbox-probe failed");
    }
    assert!(binary.exists(), "{} is missing", binary.display());
    binary
}

fn is_stale(binary: &Path, sources: &Path) -> bool {
    let Ok(built) = std::fs::metadata(binary).and_then(|meta| meta.modified()) else {
        return true;
    };
    let mut pending = vec![sources.to_owned()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
        } else if meta.modified().is_ok_and(|modified| modified > built) {
            return true;
        }
    }
    false
}

/// Host processes whose real uid is `uid`.
pub fn host_processes_of_uid(uid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|meta| meta.uid() == uid))
        .collect()
}

/// A host process in words, for a failure message: name, state, parent, cgroup.
pub fn describe_process(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let cgroup = cgroup
        .lines()
        .find(|line| line.contains("pids") || line.starts_with("0::"))
        .unwrap_or("");
    format!(
        "pid {pid} {} state {} ppid {} uid {} cgroup {cgroup}",
        field("Name:"),
        field("State:"),
        field("PPid:"),
        field("Uid:")
    )
}

/// Waits up to five seconds for every process of `uid` to be gone (killed processes leave
/// `/proc` only once reaped), then returns those still there, described.
pub async fn survivors_of_uid(uid: u32) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = host_processes_of_uid(uid);
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left.into_iter().map(describe_process).collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Host processes whose uid falls in the suite's pool.
pub fn host_processes_in_pool() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pool = UID_POOL.first..UID_POOL.first + UID_POOL.count;
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|meta| pool.contains(&meta.uid()))
        })
        .collect()
}

/// The host's own non-loopback IPv4 addresses (from the kernel's local routing table).
pub fn host_ipv4_addresses() -> Vec<IpAddr> {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let lines: Vec<&str> = trie.lines().collect();
    let mut found: Vec<IpAddr> = lines
        .windows(2)
        .filter(|pair| pair[1].contains("/32 host LOCAL"))
        .filter_map(|pair| pair[0].trim().trim_start_matches("|--").trim().parse().ok())
        .filter(|ip: &IpAddr| !ip.is_loopback())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The host's namespace link of `kind` (`net:[4026531840]`).
pub fn host_namespace(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
