//! One cgroup per sandbox (S4): memory without swap, processes and CPU are limited there, and
//! teardown kills the whole tree through it and checks that nothing is left (S1).
//!
//! cgroup v2 is used when the gateway's own cgroup delegates the memory, pids and cpu
//! controllers to it; otherwise the v1 hierarchies memory, pids, cpu and freezer (all four must
//! be mounted). Sandbox cgroups nest under the gateway's own cgroup, in
//! `[PARENT_NAME]/gw-{pid}/`: a gateway sweeps the directories of gateways that are no longer
//! running (a crash), never those of another live one on the same host.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::SandboxError;
use crate::config::Limits;

/// The directory, under the gateway's own cgroup, that holds one cgroup per sandbox.
pub const PARENT_NAME: &str = "mcp-hero-sandboxes";

const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "freezer"];
const CPU_PERIOD_US: u64 = 100_000;

/// Which cgroup version is in use, and where the sandboxes' parent directories are.
#[derive(Debug, Clone)]
pub enum CgroupDriver {
    /// The unified hierarchy, delegated to the gateway.
    V2 {
        /// The parent directory of this gateway's sandbox cgroups.
        parent: PathBuf,
    },
    /// The legacy hierarchies, one parent directory per controller.
    V1 {
        /// `memory`, `pids`, `cpu`, `freezer`, in that order.
        parents: [PathBuf; 4],
    },
}

/// A limit a sandbox ran into, as its owner and the operator are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// The kernel killed a process for exceeding the memory limit.
    Memory,
    /// A fork or thread creation was refused at the process limit.
    Processes,
}

/// The cgroup of one sandbox.
#[derive(Debug, Clone)]
pub struct Cgroup {
    version: Version,
}

#[derive(Debug, Clone)]
enum Version {
    V2(PathBuf),
    V1([PathBuf; 4]),
}

impl CgroupDriver {
    /// Finds a usable cgroup setup, or says why there is none (not root, nothing delegated).
    pub fn detect() -> Result<CgroupDriver, String> {
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mounts = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        match Self::detect_v2(&own, &mounts) {
            Ok(driver) => Ok(driver),
            Err(v2) => Self::detect_v1(&own, &mounts)
                .map_err(|v1| format!("cgroup v2: {v2}; cgroup v1: {v1}")),
        }
    }

    fn detect_v2(own: &str, mounts: &str) -> Result<CgroupDriver, String> {
        let mount = mounts
            .lines()
            .find(|line| {
                line.split(" - ")
                    .nth(1)
                    .is_some_and(|t| t.starts_with("cgroup2 "))
            })
            .and_then(|line| line.split(' ').nth(4))
            .ok_or("not mounted")?;
        let path = own
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .ok_or("the gateway is in no v2 cgroup")?;
        let own_dir = Path::new(mount).join(path.trim_start_matches('/'));
        let controllers = fs::read_to_string(own_dir.join("cgroup.controllers"))
            .map_err(|e| format!("cannot read cgroup.controllers: {e}"))?;
        for needed in ["memory", "pids", "cpu"] {
            if !controllers.split_whitespace().any(|c| c == needed) {
                return Err(format!("the `{needed}` controller is not delegated"));
            }
        }
        let base = own_dir.join(PARENT_NAME);
        let parent = base.join(instance_name());
        // These directories hold no process, so they may pass controllers down.
        for dir in [&base, &parent] {
            create_dir(dir).map_err(|e| e.to_string())?;
            fs::write(dir.join("cgroup.subtree_control"), "+memory +pids +cpu")
                .map_err(|e| format!("cannot enable controllers under {}: {e}", dir.display()))?;
        }
        Ok(CgroupDriver::V2 { parent })
    }

    fn detect_v1(own: &str, mounts: &str) -> Result<CgroupDriver, String> {
        let mut parents: [PathBuf; 4] = Default::default();
        for (slot, controller) in parents.iter_mut().zip(V1_CONTROLLERS) {
            let mount = mounts
                .lines()
                .find(|line| {
                    line.split(" - ").nth(1).is_some_and(|tail| {
                        let mut fields = tail.split(' ');
                        fields.next() == Some("cgroup")
                            && fields
                                .nth(1)
                                .is_some_and(|opts| opts.split(',').any(|o| o == controller))
                    })
                })
                .and_then(|line| line.split(' ').nth(4))
                .ok_or_else(|| format!("the `{controller}` hierarchy is not mounted"))?;
            let path = own
                .lines()
                .find_map(|line| {
                    let mut parts = line.splitn(3, ':');
                    let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
                    names.split(',').any(|n| n == controller).then_some(path)
                })
                .unwrap_or("/");
            let base = Path::new(mount)
                .join(path.trim_start_matches('/'))
                .join(PARENT_NAME);
            create_dir(&base).map_err(|e| e.to_string())?;
            *slot = base.join(instance_name());
            create_dir(slot).map_err(|e| e.to_string())?;
        }
        Ok(CgroupDriver::V1 { parents })
    }

    /// A short description for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            CgroupDriver::V2 { parent } => format!("cgroup v2 under {}", parent.display()),
            CgroupDriver::V1 { parents } => {
                format!(
                    "cgroup v1 (memory, pids, cpu, freezer) under {}",
                    parents[0].display()
                )
            }
        }
    }

    /// Creates the cgroup of sandbox `id` with `limits` applied, before anything runs in it.
    pub fn create(&self, id: &str, limits: &Limits) -> Result<Cgroup, SandboxError> {
        let cgroup = match self {
            CgroupDriver::V2 { parent } => Cgroup {
                version: Version::V2(parent.join(id)),
            },
            CgroupDriver::V1 { parents } => Cgroup {
                version: Version::V1(parents.clone().map(|p| p.join(id))),
            },
        };
        for dir in cgroup.dirs() {
            create_dir(dir)?;
        }
        if let Err(error) = cgroup.apply(limits) {
            let _ = cgroup.remove();
            return Err(error);
        }
        Ok(cgroup)
    }

    /// Kills and removes every sandbox cgroup left by gateways that are no longer running (a
    /// crash), returning how many sandboxes there were.
    pub fn sweep(&self) -> usize {
        let parents: Vec<PathBuf> = match self {
            CgroupDriver::V2 { parent } => vec![parent.clone()],
            CgroupDriver::V1 { parents } => parents.to_vec(),
        };
        let Some(base) = parents[0].parent() else {
            return 0;
        };
        let Ok(instances) = fs::read_dir(base) else {
            return 0;
        };
        let mut swept = 0;
        for instance in instances.flatten() {
            let name = instance.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("gw-")) else {
                continue;
            };
            if Path::new("/proc").join(pid).exists() {
                continue;
            }
            let dead: Vec<PathBuf> = parents
                .iter()
                .filter_map(|p| p.parent().map(|b| b.join(&name)))
                .collect();
            let Ok(sandboxes) = fs::read_dir(&dead[0]) else {
                continue;
            };
            for sandbox in sandboxes.flatten() {
                if !sandbox.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let id = sandbox.file_name();
                let cgroup = match self {
                    CgroupDriver::V2 { .. } => Cgroup {
                        version: Version::V2(dead[0].join(&id)),
                    },
                    CgroupDriver::V1 { .. } => Cgroup {
                        version: Version::V1([
                            dead[0].join(&id),
                            dead[1].join(&id),
                            dead[2].join(&id),
                            dead[3].join(&id),
                        ]),
                    },
                };
                let _ = cgroup.kill_all(None);
                if cgroup.remove().is_ok() {
                    swept += 1;
                }
            }
            for dir in &dead {
                let _ = fs::remove_dir(dir);
            }
        }
        swept
    }

    /// Removes this gateway's own parent directories at shutdown (they must be empty).
    pub fn remove_instance(&self) {
        let parents: Vec<&PathBuf> = match self {
            CgroupDriver::V2 { parent } => vec![parent],
            CgroupDriver::V1 { parents } => parents.iter().collect(),
        };
        for parent in parents {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// This gateway's directory name under [`PARENT_NAME`] (and under the run dir).
pub fn instance_name() -> String {
    format!("gw-{}", std::process::id())
}

impl Cgroup {
    fn dirs(&self) -> &[PathBuf] {
        match &self.version {
            Version::V2(dir) => std::slice::from_ref(dir),
            Version::V1(dirs) => dirs,
        }
    }

    fn apply(&self, limits: &Limits) -> Result<(), SandboxError> {
        let quota = u64::from(limits.cpu_percent) * CPU_PERIOD_US / 100;
        match &self.version {
            Version::V2(dir) => {
                write(dir, "memory.max", &limits.memory_bytes.to_string())?;
                write(dir, "memory.swap.max", "0").or_else(ignore_missing)?;
                write(dir, "pids.max", &limits.pids.to_string())?;
                write(dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
            }
            Version::V1([memory, pids, cpu, _freezer]) => {
                write(
                    memory,
                    "memory.limit_in_bytes",
                    &limits.memory_bytes.to_string(),
                )?;
                // With swap accounting, memory+swap gets the same limit: no swap on top.
                write(
                    memory,
                    "memory.memsw.limit_in_bytes",
                    &limits.memory_bytes.to_string(),
                )
                .or_else(ignore_missing)?;
                write(memory, "memory.swappiness", "0").or_else(ignore_missing)?;
                write(pids, "pids.max", &limits.pids.to_string())?;
                write(cpu, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                write(cpu, "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        Ok(())
    }

    /// The files a process writes its pid into to join this cgroup (one per hierarchy).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The processes in the cgroup now.
    pub fn pids(&self) -> Vec<u32> {
        fs::read_to_string(&self.procs_files()[0])
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Sends `signal` to every process in the cgroup but `spare`.
    pub fn signal_all(&self, signal: rustix::process::Signal, spare: Option<u32>) {
        for pid in self.pids() {
            if Some(pid) == spare {
                continue;
            }
            if let Some(pid) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    }

    /// Kills every process in the cgroup, frozen first so none can fork meanwhile, and waits
    /// until it is empty.
    ///
    /// `spare` (bubblewrap's outer process, the gateway's own child) is killed last: it reaps
    /// the sandbox's pid 1 and then exits by itself, so no zombie is left to the host's init
    /// (which, in a container, may never reap it).
    pub fn kill_all(&self, spare: Option<u32>) -> Result<(), SandboxError> {
        let frozen = self.freeze(true);
        self.signal_all(rustix::process::Signal::KILL, spare);
        if frozen {
            self.freeze(false);
        }
        let spare_gone = wait_until(Duration::from_secs(1), || {
            self.pids().iter().all(|pid| Some(*pid) != spare)
        });
        if !spare_gone {
            self.signal_all(rustix::process::Signal::KILL, None);
        }
        if wait_until(Duration::from_secs(5), || self.is_empty()) {
            return Ok(());
        }
        // One more round for anything that slipped in between.
        match &self.version {
            Version::V2(dir) => {
                let _ = write(dir, "cgroup.kill", "1");
            }
            Version::V1(_) => self.signal_all(rustix::process::Signal::KILL, None),
        }
        if wait_until(Duration::from_secs(2), || self.is_empty()) {
            Ok(())
        } else {
            Err(SandboxError::Teardown(format!(
                "{} process(es) survived SIGKILL in {}",
                self.pids().len(),
                self.dirs()[0].display()
            )))
        }
    }

    /// Freezes (or thaws) the cgroup; says whether it got there.
    fn freeze(&self, frozen: bool) -> bool {
        let (dir, file, value, done) = match &self.version {
            Version::V2(dir) => (dir, "cgroup.freeze", if frozen { "1" } else { "0" }, None),
            Version::V1([.., freezer]) => (
                freezer,
                "freezer.state",
                if frozen { "FROZEN" } else { "THAWED" },
                Some(if frozen { "FROZEN" } else { "THAWED" }),
            ),
        };
        if write(dir, file, value).is_err() {
            return false;
        }
        wait_until(Duration::from_secs(1), || match done {
            Some(state) => fs::read_to_string(dir.join(file)).is_ok_and(|s| s.trim() == state),
            None => fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|events| {
                events
                    .lines()
                    .any(|l| l == if frozen { "frozen 1" } else { "frozen 0" })
            }),
        })
    }

    /// Whether no process is left in any of the sandbox's hierarchies.
    pub fn is_empty(&self) -> bool {
        self.procs_files()
            .iter()
            .all(|file| fs::read_to_string(file).map_or(true, |text| text.trim().is_empty()))
    }

    /// Which limit, if any, the sandbox ran into.
    pub fn limit_hit(&self) -> Option<LimitHit> {
        let (memory_file, pids_file) = match &self.version {
            Version::V2(dir) => (dir.join("memory.events"), dir.join("pids.events")),
            Version::V1([memory, pids, ..]) => {
                (memory.join("memory.oom_control"), pids.join("pids.events"))
            }
        };
        if counter(&memory_file, "oom_kill") > 0 {
            Some(LimitHit::Memory)
        } else if counter(&pids_file, "max") > 0 {
            Some(LimitHit::Processes)
        } else {
            None
        }
    }

    /// Removes the cgroup's directories; it must be empty.
    pub fn remove(&self) -> Result<(), SandboxError> {
        for dir in self.dirs() {
            let mut tries = 0;
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    // The kernel lets go of a cgroup a moment after its last process is reaped.
                    Err(_) if tries < 50 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        return Err(SandboxError::Teardown(format!(
                            "cannot remove {}: {e}",
                            dir.display()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The cgroup's directories, for tests that check nothing is left.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs().to_vec()
    }
}

fn create_dir(dir: &Path) -> Result<(), SandboxError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(SandboxError::Cgroup(format!(
            "cannot create {}: {e}",
            dir.display()
        ))),
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), SandboxError> {
    fs::write(dir.join(file), value).map_err(|e| {
        SandboxError::Cgroup(format!(
            "cannot write `{value}` to {}/{file}: {e}",
            dir.display()
        ))
    })
}

fn ignore_missing(error: SandboxError) -> Result<(), SandboxError> {
    match &error {
        SandboxError::Cgroup(message) if message.contains("No such file") => Ok(()),
        _ => Err(error),
    }
}

/// Reads a `name value` line from a cgroup events or control file.
fn counter(file: &Path, name: &str) -> u64 {
    fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
