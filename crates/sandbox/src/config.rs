//! What an operator can tune about sandboxes: limits, the uid pool, caps, and which host paths a
//! sandbox sees. Defaults are the safe ones; every field has one.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the sandbox runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// The bubblewrap program.
    pub bwrap: PathBuf,
    /// The gateway binary, re-executed as the exec helper outside and as the init inside.
    /// Empty means the running executable.
    pub helper_exe: PathBuf,
    /// Where per-sandbox directories (the egress socket) live; must be traversable by the pool
    /// uids, so not under the data dir.
    pub run_dir: PathBuf,
    /// Host uids (and gids) handed to sandboxes when the gateway runs as root.
    pub uid_pool: UidRange,
    /// Per-sandbox limits (S4).
    pub limits: Limits,
    /// How many sandboxes may run at once.
    pub caps: Caps,
    /// Extra host paths a sandbox sees read-only at the same place (runtimes such as a Node or
    /// Python install outside `/usr`, or an operator-placed binary).
    pub ro_binds: Vec<PathBuf>,
    /// How long a server gets to exit after its stdin closes, and again after SIGTERM.
    #[serde(with = "seconds")]
    pub grace: Duration,
}

/// A contiguous range of host uids, used for gids too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UidRange {
    /// The first uid of the pool.
    pub first: u32,
    /// How many uids it has; also a hard cap on concurrent sandboxes when run as root.
    pub count: u32,
}

/// Resource limits of one sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Memory, in bytes, with no swap on top.
    pub memory_bytes: u64,
    /// Processes and threads.
    pub pids: u32,
    /// CPU time as a share of one core, in percent (100 = one core).
    pub cpu_percent: u32,
    /// Open files per process.
    pub open_files: u64,
    /// The largest file a process may write, in bytes.
    pub file_size_bytes: u64,
    /// Size of the `/tmp` tmpfs, in bytes.
    pub tmp_bytes: u64,
    /// Size of the HOME tmpfs, in bytes.
    pub home_bytes: u64,
    /// The longest a sandbox may live, whatever it does.
    #[serde(with = "seconds")]
    pub wall_clock: Duration,
    /// How long a sandbox may go without a byte on its stdin or stdout.
    #[serde(with = "seconds")]
    pub idle: Duration,
}

/// Caps on concurrent sandboxes; a start beyond them is refused, never queued.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Caps {
    /// On the whole gateway.
    pub global: usize,
    /// Per organization.
    pub per_org: usize,
    /// Per server of an organization.
    pub per_server: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            helper_exe: PathBuf::new(),
            run_dir: PathBuf::from("/run/mcp-hero"),
            uid_pool: UidRange {
                first: 900_000,
                count: 4096,
            },
            limits: Limits::default(),
            caps: Caps::default(),
            ro_binds: Vec::new(),
            grace: Duration::from_secs(2),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        Limits {
            memory_bytes: 512 * MIB,
            pids: 256,
            cpu_percent: 100,
            open_files: 1024,
            file_size_bytes: 64 * MIB,
            tmp_bytes: 64 * MIB,
            home_bytes: 64 * MIB,
            wall_clock: Duration::from_secs(12 * 3600),
            idle: Duration::from_secs(3600),
        }
    }
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            global: 512,
            per_org: 128,
            per_server: 64,
        }
    }
}

impl SandboxConfig {
    /// Says what is wrong with the settings, naming the field, before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        let positive = [
            ("limits.memory_bytes", l.memory_bytes),
            ("limits.pids", u64::from(l.pids)),
            ("limits.cpu_percent", u64::from(l.cpu_percent)),
            ("limits.open_files", l.open_files),
            ("limits.file_size_bytes", l.file_size_bytes),
            ("limits.tmp_bytes", l.tmp_bytes),
            ("limits.home_bytes", l.home_bytes),
            ("uid_pool.count", u64::from(self.uid_pool.count)),
            ("caps.global", self.caps.global as u64),
            ("caps.per_org", self.caps.per_org as u64),
            ("caps.per_server", self.caps.per_server as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("sandbox.{name} must be greater than zero"));
        }
        if l.memory_bytes < 16 * 1024 * 1024 {
            return Err("sandbox.limits.memory_bytes must be at least 16 MiB".into());
        }
        if self.uid_pool.first < 1000 {
            return Err(
                "sandbox.uid_pool.first must be at least 1000, away from system users".into(),
            );
        }
        if self
            .uid_pool
            .first
            .checked_add(self.uid_pool.count)
            .is_none_or(|end| end > u32::MAX - 2)
        {
            return Err("sandbox.uid_pool runs past the largest uid".into());
        }
        if l.wall_clock.is_zero() || l.idle.is_zero() {
            return Err("sandbox.limits.wall_clock and idle must be greater than zero".into());
        }
        if !self.run_dir.is_absolute() {
            return Err("sandbox.run_dir must be an absolute path".into());
        }
        if let Some(path) = self.ro_binds.iter().find(|p| !p.is_absolute()) {
            return Err(format!(
                "sandbox.ro_binds: `{}` must be an absolute path",
                path.display()
            ));
        }
        Ok(())
    }
}

/// Durations in config files are whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}
