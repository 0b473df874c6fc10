//! [`Sandboxes`]: starts one sandbox per session per stdio server and tears it down completely
//! (S1). It owns the uid pool, the cgroup driver, the caps and each sandbox's egress proxy.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use zeroize::{Zeroize as _, Zeroizing};

use crate::SandboxError;
use crate::cgroup::{Cgroup, CgroupDriver, LimitHit};
use crate::config::SandboxConfig;
use crate::egress::{self, EgressPolicy};
use crate::plan::{ExecPlan, FileEntry, HostIdentity, ImageBind, Layout, Rlimits, inside};
use crate::uid_pool::UidPool;

/// How often a running sandbox's cgroup is checked for a limit it ran into.
const LIMIT_POLL: Duration = Duration::from_millis(500);

/// The sandbox runtime of one gateway.
#[derive(Clone)]
pub struct Sandboxes {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    helper_exe: PathBuf,
    pooled: bool,
    cgroups: Option<CgroupDriver>,
    state: Mutex<State>,
    decisions: Arc<dyn egress::DecisionSink>,
    host_addresses: egress::HostAddresses,
}

struct State {
    uids: UidPool,
    global: usize,
    per_org: HashMap<String, usize>,
    per_server: HashMap<(String, String), usize>,
}

/// One server to start in a new sandbox. Its `Debug` shows variable names, never values.
pub struct StartRequest {
    /// The organization, for caps and logs.
    pub org: String,
    /// The server's name, for caps and logs.
    pub server: String,
    /// A short, non-secret tag of the client session.
    pub session: String,
    /// The program and its arguments, as seen inside the sandbox.
    pub command: Vec<String>,
    /// The working directory inside; HOME when absent.
    pub working_dir: Option<String>,
    /// Variables the server gets (on top of PATH, HOME, LANG and the proxy variables).
    pub env: Vec<(String, Zeroizing<String>)>,
    /// Files injected from memory.
    pub files: Vec<InjectedFile>,
    /// The egress policy; `None` gives the sandbox no network at all.
    pub egress: Option<EgressPolicy>,
    /// The server's install image at `/opt/mcp-server`, if it has one.
    pub image: Option<ImageMount>,
    /// Where this sandbox's egress decisions go too, besides the runtime's sink (so the
    /// gateway can put them in the server's log).
    pub decisions: Option<Arc<dyn egress::DecisionSink>>,
}

/// How a sandbox sees a server's install image at `/opt/mcp-server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageMount {
    /// A session: the sealed image, read-only.
    ReadOnly(PathBuf),
    /// The image's install: an empty directory, bound read-write and owned by the sandbox's
    /// pooled uid while it runs. Seal it with [`crate::image::seal`] once the sandbox is gone.
    Install(PathBuf),
}

impl ImageMount {
    fn path(&self) -> &Path {
        match self {
            ImageMount::ReadOnly(path) | ImageMount::Install(path) => path,
        }
    }
}

/// Sends each decision to the runtime's sink and to the sandbox's own.
struct BothSinks(Arc<dyn egress::DecisionSink>, Arc<dyn egress::DecisionSink>);

impl egress::DecisionSink for BothSinks {
    fn record(&self, decision: egress::Decision) {
        self.0.record(decision.clone());
        self.1.record(decision);
    }
}

/// A file the server sees, handed over from memory (S12). Its `Debug` shows the path and
/// size, never the contents.
pub struct InjectedFile {
    /// Absolute path inside the sandbox.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// The contents, wiped from the gateway's memory once handed over.
    pub contents: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for StartRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartRequest")
            .field("org", &self.org)
            .field("server", &self.server)
            .field("session", &self.session)
            .field("command", &self.command)
            .field(
                "env",
                &self.env.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("files", &self.files)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for InjectedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InjectedFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("bytes", &self.contents.len())
            .finish()
    }
}

/// A started sandbox: the server's pipes and the handle that ends it.
pub struct RunningSandbox {
    /// The server's stdin.
    pub stdin: Tracked<ChildStdin>,
    /// The server's stdout.
    pub stdout: Tracked<ChildStdout>,
    /// The server's stderr (bubblewrap's and the init's complaints arrive here too).
    pub stderr: ChildStderr,
    /// Waits for and ends the sandbox.
    pub handle: SandboxHandle,
}

/// Why a sandbox ended, in words for the client and the log, and which limit if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// E.g. `exited with status 0` or `was ended: it went over its memory limit (512 MiB)`.
    pub description: String,
    /// The limit that ended it.
    pub limit: Option<Limit>,
}

/// The limits that end a sandbox (S4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Memory (the kernel's OOM killer acted in the sandbox's cgroup).
    Memory,
    /// Processes and threads.
    Processes,
    /// Total lifetime.
    WallClock,
    /// Time without a byte on stdin or stdout.
    Idle,
}

impl Sandboxes {
    /// Checks bubblewrap, picks the identity mode and cgroup driver, and sweeps what a crashed
    /// earlier run left behind. Decisions of every egress proxy go to `decisions`.
    pub fn new(
        config: SandboxConfig,
        decisions: Arc<dyn egress::DecisionSink>,
    ) -> Result<Sandboxes, SandboxError> {
        config.validate().map_err(SandboxError::Config)?;
        let bwrap_ok = std::process::Command::new(&config.bwrap)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match bwrap_ok {
            Ok(status) if status.success() => {}
            Ok(status) => {
                return Err(SandboxError::Unavailable(format!(
                    "`{} --version` failed ({status})",
                    config.bwrap.display()
                )));
            }
            Err(error) => {
                return Err(SandboxError::Unavailable(format!(
                    "cannot run {}: {error}",
                    config.bwrap.display()
                )));
            }
        }
        let helper_exe = if config.helper_exe.as_os_str().is_empty() {
            std::env::current_exe().map_err(|source| SandboxError::Io {
                what: "finding the gateway's own executable".into(),
                source,
            })?
        } else {
            config.helper_exe.clone()
        };
        let pooled = rustix::process::geteuid().is_root();
        if pooled {
            check_traversable(&config.run_dir)?;
        }
        let cgroups = if pooled {
            Some(CgroupDriver::detect().map_err(SandboxError::Cgroup)?)
        } else {
            CgroupDriver::detect().ok()
        };
        let host_addresses = egress::HostAddresses::system()
            .map_err(|e| SandboxError::Unavailable(format!("listing the host's addresses: {e}")))?;
        let inner = Inner {
            host_addresses,
            state: Mutex::new(State {
                uids: if pooled {
                    UidPool::host_wide(config.uid_pool).map_err(|source| SandboxError::Io {
                        what: format!("creating {}", crate::uid_pool::LEASE_DIR),
                        source,
                    })?
                } else {
                    UidPool::new(config.uid_pool)
                },
                global: 0,
                per_org: HashMap::new(),
                per_server: HashMap::new(),
            }),
            helper_exe,
            pooled,
            cgroups,
            config,
            decisions,
        };
        inner.sweep();
        Ok(Sandboxes {
            inner: Arc::new(inner),
        })
    }

    /// Whether sandboxes run as pooled uids (the gateway is root) or as the gateway's own uid.
    pub fn pooled_uids(&self) -> bool {
        self.inner.pooled
    }

    /// A one-line description of the setup, for the start-up log.
    pub fn describe(&self) -> String {
        let identity = if self.inner.pooled {
            format!(
                "pooled uids {}..{}",
                self.inner.config.uid_pool.first,
                self.inner.config.uid_pool.first + self.inner.config.uid_pool.count
            )
        } else {
            "the gateway's own uid (not root: no uid pool)".to_owned()
        };
        let cgroups = self.inner.cgroups.as_ref().map_or(
            "no cgroups (memory, process and CPU limits are off)".to_owned(),
            |d| d.describe(),
        );
        format!("bubblewrap sandboxes as {identity}, {cgroups}")
    }

    /// How many sandboxes run now.
    pub fn running(&self) -> usize {
        self.inner.lock().global
    }

    /// Starts `request` in a new sandbox. Refused, not queued, when a cap is reached.
    pub async fn start(&self, request: StartRequest) -> Result<RunningSandbox, SandboxError> {
        for file in &request.files {
            crate::plan::inside::check_file_path(&file.path).map_err(|reason| {
                SandboxError::Config(format!("injected file {}: {reason}", file.path))
            })?;
        }
        let slot = self.inner.reserve(&request.org, &request.server)?;
        let id = sandbox_id();
        let setup = {
            let inner = self.inner.clone();
            let id = id.clone();
            let with_egress = request.egress.is_some();
            let image = request.image.clone();
            let uid = slot.uid;
            tokio::task::spawn_blocking(move || {
                inner.prepare(&id, uid, with_egress, image.as_ref())
            })
            .await
            .map_err(|e| SandboxError::Teardown(format!("setup task failed: {e}")))?
        };
        let mut resources = Resources {
            inner: self.inner.clone(),
            id: id.clone(),
            slot: Some(slot),
            cgroup: None,
            dir: None,
            image_mountpoint: None,
            egress: None,
            outer_pid: None,
        };
        let prepared = setup?;
        resources.cgroup = prepared.cgroup;
        resources.dir = prepared.dir;
        resources.image_mountpoint = prepared.image_mountpoint;

        if let (Some(policy), Some(dir)) = (request.egress.clone(), resources.dir.as_ref()) {
            let listener = bind_egress_socket(dir, resources.uid())?;
            let proxy = egress::EgressProxy::new(
                policy,
                Arc::new(egress::SystemResolver),
                self.inner.host_addresses.clone(),
                match request.decisions.clone() {
                    Some(own) => Arc::new(BothSinks(self.inner.decisions.clone(), own)),
                    None => self.inner.decisions.clone(),
                },
            )
            .map_err(|e| SandboxError::Config(e.to_string()))?;
            let id = id.clone();
            resources.egress = Some(tokio::spawn(async move {
                if let Err(error) = proxy.serve(listener).await {
                    tracing::warn!(sandbox = %id, %error, "the egress proxy stopped");
                }
            }));
        }

        let (mut plan, contents) = self.inner.plan(&request, &resources);
        let mut frame =
            {
                let slices: Vec<&[u8]> = contents.iter().map(|c| c.as_slice()).collect();
                Zeroizing::new(crate::helper::encode(&plan, &slices).map_err(|e| {
                    SandboxError::Config(format!("the plan could not be encoded: {e}"))
                })?)
            };
        for (_, value) in &mut plan.layout.env {
            value.zeroize();
        }
        drop(plan);

        // Spawned from an async task, so from a runtime worker thread, which lives as long as
        // the runtime: bubblewrap's --die-with-parent is bound to the thread that forked it.
        let mut child = tokio::process::Command::new(&self.inner.helper_exe)
            .arg(crate::helper::ARG)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SandboxError::Io {
                what: format!("starting the helper {}", self.inner.helper_exe.display()),
                source,
            })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SandboxError::Unavailable(
                "the helper's pipes could not be opened".into(),
            ));
        };
        resources.outer_pid = child.id();
        let written = stdin.write_all(&frame).await;
        frame.zeroize();
        written.map_err(|source| SandboxError::Io {
            what: "handing the plan to the helper".into(),
            source,
        })?;
        tracing::debug!(
            sandbox = %id,
            server = %request.server,
            session = %request.session,
            "sandbox started"
        );
        let activity = Arc::new(Activity::new());
        let limits = &self.inner.config.limits;
        Ok(RunningSandbox {
            stdin: Tracked::new(stdin, activity.clone()),
            stdout: Tracked::new(stdout, activity.clone()),
            stderr,
            handle: SandboxHandle {
                id,
                child,
                resources: Some(resources),
                activity,
                deadline: tokio::time::Instant::now() + limits.wall_clock,
                idle: limits.idle,
                grace: self.inner.config.grace,
                memory_bytes: limits.memory_bytes,
                pids: limits.pids,
                exit: None,
            },
        })
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a place under every cap, and a uid when pooled.
    fn reserve(self: &Arc<Self>, org: &str, server: &str) -> Result<Slot, SandboxError> {
        let caps = self.config.caps;
        let mut state = self.lock();
        if state.global >= caps.global {
            return Err(SandboxError::Capacity(format!(
                "the gateway runs its maximum of {} sandboxes",
                caps.global
            )));
        }
        if state.per_org.get(org).copied().unwrap_or(0) >= caps.per_org {
            return Err(SandboxError::Capacity(format!(
                "this organization runs its maximum of {} sandboxes",
                caps.per_org
            )));
        }
        let key = (org.to_owned(), server.to_owned());
        if state.per_server.get(&key).copied().unwrap_or(0) >= caps.per_server {
            return Err(SandboxError::Capacity(format!(
                "server `{server}` runs its maximum of {} sandboxes",
                caps.per_server
            )));
        }
        let uid = if self.pooled {
            Some(state.uids.lease().ok_or_else(|| {
                SandboxError::Capacity("every uid of the sandbox pool is in use".into())
            })?)
        } else {
            None
        };
        state.global += 1;
        *state.per_org.entry(key.0.clone()).or_default() += 1;
        *state.per_server.entry(key.clone()).or_default() += 1;
        Ok(Slot {
            org: key.0,
            server: key.1,
            uid,
        })
    }

    /// Gives back a slot; its uid only when the sandbox's processes are known to be gone.
    fn release(&self, slot: Slot, uid_free: bool) {
        let mut state = self.lock();
        state.global = state.global.saturating_sub(1);
        if let Some(count) = state.per_org.get_mut(&slot.org) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.per_org.remove(&slot.org);
            }
        }
        let key = (slot.org, slot.server);
        if let Some(count) = state.per_server.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.per_server.remove(&key);
            }
        }
        match (slot.uid, uid_free) {
            (Some(uid), true) => state.uids.release(uid),
            (Some(uid), false) => {
                tracing::error!(
                    uid,
                    "a sandbox uid stays leased: its processes could not be confirmed gone"
                );
            }
            (None, _) => {}
        }
    }

    /// Blocking setup: the cgroup, the socket directory, and for an image the mountpoint the
    /// helper binds it at (run as root) and, for its install, its hand-over to the sandbox's uid.
    fn prepare(
        &self,
        id: &str,
        uid: Option<u32>,
        with_egress: bool,
        image: Option<&ImageMount>,
    ) -> Result<Prepared, SandboxError> {
        make_instance_dir(&self.config.run_dir)?;
        let mut prepared = Prepared::default();
        let result = self.prepare_into(&mut prepared, id, uid, with_egress, image);
        if result.is_err() {
            prepared.undo();
        }
        result.map(|()| prepared)
    }

    fn prepare_into(
        &self,
        prepared: &mut Prepared,
        id: &str,
        uid: Option<u32>,
        with_egress: bool,
        image: Option<&ImageMount>,
    ) -> Result<(), SandboxError> {
        if let Some(driver) = &self.cgroups {
            prepared.cgroup = Some(driver.create(id, &self.config.limits)?);
        }
        if with_egress {
            prepared.dir = Some(make_private_dir(&self.config.run_dir, id, uid)?);
        }
        if let Some(image) = image {
            check_image_dir(image.path())?;
            if let Some(uid) = uid {
                if let ImageMount::Install(path) = image {
                    hand_over(path, uid)?;
                }
                let mountpoint = instance_dir(&self.config.run_dir).join(format!("{id}.image"));
                std::fs::create_dir(&mountpoint).map_err(|source| SandboxError::Io {
                    what: format!("creating {}", mountpoint.display()),
                    source,
                })?;
                prepared.image_mountpoint = Some(mountpoint);
            }
        }
        Ok(())
    }

    fn plan(
        &self,
        request: &StartRequest,
        resources: &Resources,
    ) -> (ExecPlan, Vec<Zeroizing<Vec<u8>>>) {
        let config = &self.config;
        let path = match &request.image {
            Some(_) => format!("{}:/usr/local/bin:/usr/bin:/bin", inside::IMAGE_PATH),
            None => "/usr/local/bin:/usr/bin:/bin".to_owned(),
        };
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), path),
            ("HOME".into(), inside::HOME.into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("TMPDIR".into(), "/tmp".into()),
            ("USER".into(), "mcp".into()),
        ];
        for (name, value) in &request.env {
            env.retain(|(existing, _)| existing != name);
            env.push((name.clone(), value.as_str().to_owned()));
        }
        if request.egress.is_some() {
            let proxy = format!("http://127.0.0.1:{}", inside::PROXY_PORT);
            for name in [
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "ALL_PROXY",
                "http_proxy",
                "https_proxy",
                "all_proxy",
            ] {
                env.retain(|(existing, _)| existing != name);
                env.push((name.into(), proxy.clone()));
            }
            for name in ["NO_PROXY", "no_proxy"] {
                env.retain(|(existing, _)| existing != name);
            }
            // Node 22.21+ and 24 honour the proxy variables only when asked to.
            env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
        }
        let mut read_exec: Vec<PathBuf> = [
            "/usr",
            "/bin",
            "/sbin",
            "/lib",
            "/lib64",
            "/etc",
            "/run/mcp-hero",
            "/proc",
            "/dev",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        read_exec.extend(config.ro_binds.iter().cloned());
        if let Some(ImageMount::ReadOnly(_)) = &request.image {
            read_exec.push(inside::IMAGE.into());
        }
        let mut read_write: Vec<PathBuf> = [
            "/tmp",
            "/dev/shm",
            inside::HOME,
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/tty",
            "/dev/pts",
            "/dev/ptmx",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        if let Some(ImageMount::Install(_)) = &request.image {
            read_write.push(inside::IMAGE.into());
        }
        let chdir = request
            .working_dir
            .clone()
            .unwrap_or_else(|| inside::HOME.into());
        let init = crate::init::InitArgs {
            proxy_port: request.egress.as_ref().map(|_| inside::PROXY_PORT),
            egress_socket: request
                .egress
                .as_ref()
                .map(|_| inside::EGRESS_SOCKET.into()),
            landlock: Some(crate::landlock::LandlockPolicy {
                read_exec,
                read_write,
                tcp_connect_ports: None,
            }),
            command: request.command.iter().map(Into::into).collect(),
            working_dir: None,
        };
        let init_args = init
            .to_args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let files = request
            .files
            .iter()
            .map(|f| FileEntry {
                path: f.path.clone(),
                mode: f.mode,
                len: f.contents.len(),
            })
            .collect();
        let contents = request.files.iter().map(|f| f.contents.clone()).collect();
        let plan = ExecPlan {
            bwrap: config.bwrap.clone(),
            cgroup_procs: resources
                .cgroup
                .as_ref()
                .map(Cgroup::procs_files)
                .unwrap_or_default(),
            identity: resources.uid().map(|uid| HostIdentity { uid, gid: uid }),
            status_file: status_file(&config.run_dir, &resources.id),
            rlimits: Rlimits {
                open_files: config.limits.open_files,
                file_size_bytes: config.limits.file_size_bytes,
            },
            layout: Layout {
                init_exe: self.helper_exe.clone(),
                egress_dir: resources.dir.clone(),
                image: request.image.as_ref().map(|image| ImageBind {
                    source: image.path().to_owned(),
                    writable: matches!(image, ImageMount::Install(_)),
                    mountpoint: resources.image_mountpoint.clone(),
                }),
                ro_binds: config.ro_binds.clone(),
                tmp_bytes: config.limits.tmp_bytes,
                home_bytes: config.limits.home_bytes,
                env,
                files,
                init_args,
                chdir,
            },
        };
        (plan, contents)
    }

    /// Removes leftovers of gateways that crashed: their cgroups (killing what is in them) and
    /// socket directories. Another live gateway's are left alone.
    fn sweep(&self) {
        let cgroups = self.cgroups.as_ref().map_or(0, CgroupDriver::sweep);
        let mut dirs = 0;
        if let Ok(entries) = std::fs::read_dir(&self.config.run_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("gw-")) else {
                    continue;
                };
                if !Path::new("/proc").join(pid).exists()
                    && std::fs::remove_dir_all(entry.path()).is_ok()
                {
                    dirs += 1;
                }
            }
        }
        if cgroups + dirs > 0 {
            tracing::warn!(
                sandboxes = cgroups,
                socket_dirs = dirs,
                "removed sandboxes left by a gateway that is no longer running"
            );
        }
    }
}

impl Drop for Inner {
    /// The last sandbox is gone with the last handle: this gateway's own directories go too.
    fn drop(&mut self) {
        if let Some(driver) = &self.cgroups {
            driver.remove_instance();
        }
        let _ = std::fs::remove_dir(instance_dir(&self.config.run_dir));
    }
}

/// What [`Inner::prepare`] made on the host for one sandbox.
#[derive(Default)]
struct Prepared {
    cgroup: Option<Cgroup>,
    dir: Option<PathBuf>,
    image_mountpoint: Option<PathBuf>,
}

impl Prepared {
    /// Removes what was made when a later step failed.
    fn undo(&mut self) {
        if let Some(cgroup) = self.cgroup.take() {
            let _ = cgroup.remove();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(mountpoint) = self.image_mountpoint.take() {
            let _ = std::fs::remove_dir(mountpoint);
        }
    }
}

/// A place under the caps, and the uid that goes with it.
#[derive(Debug)]
struct Slot {
    org: String,
    server: String,
    uid: Option<u32>,
}

/// What a sandbox holds on the host; released exactly once, by teardown or on drop.
struct Resources {
    inner: Arc<Inner>,
    id: String,
    slot: Option<Slot>,
    cgroup: Option<Cgroup>,
    dir: Option<PathBuf>,
    /// The empty directory the helper bound the image at, in its own mount namespace.
    image_mountpoint: Option<PathBuf>,
    egress: Option<tokio::task::JoinHandle<()>>,
    /// bubblewrap's outer process (the helper, after `exec`), killed last at teardown.
    outer_pid: Option<u32>,
}

impl Resources {
    fn uid(&self) -> Option<u32> {
        self.slot.as_ref().and_then(|s| s.uid)
    }

    /// Kills what is left, removes the cgroup and the socket directory, and gives the uid back
    /// once the cgroup was seen empty. Blocking.
    fn release(mut self) -> Result<(), SandboxError> {
        self.release_now()
    }

    fn release_now(&mut self) -> Result<(), SandboxError> {
        if let Some(task) = self.egress.take() {
            task.abort();
        }
        let mut outcome = Ok(());
        let mut empty = true;
        if let Some(cgroup) = self.cgroup.take() {
            match cgroup
                .kill_all(self.outer_pid)
                .and_then(|()| cgroup.remove())
            {
                Ok(()) => {}
                Err(error) => {
                    empty = cgroup.is_empty();
                    outcome = Err(error);
                }
            }
        } else if self.inner.pooled {
            empty = false;
        }
        let _ = std::fs::remove_file(status_file(&self.inner.config.run_dir, &self.id));
        if let Some(dir) = self.dir.take()
            && let Err(source) = std::fs::remove_dir_all(&dir)
            && source.kind() != std::io::ErrorKind::NotFound
        {
            outcome = outcome.and(Err(SandboxError::Io {
                what: format!("removing {}", dir.display()),
                source,
            }));
        }
        // The bind lived in the helper's mount namespace, gone with the sandbox's last process,
        // so on the host this is an empty directory.
        if let Some(mountpoint) = self.image_mountpoint.take()
            && let Err(source) = std::fs::remove_dir(&mountpoint)
            && source.kind() != std::io::ErrorKind::NotFound
        {
            outcome = outcome.and(Err(SandboxError::Io {
                what: format!("removing {}", mountpoint.display()),
                source,
            }));
        }
        if let Some(slot) = self.slot.take() {
            self.inner.release(slot, empty);
        }
        outcome
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        if self.slot.is_none()
            && self.cgroup.is_none()
            && self.dir.is_none()
            && self.image_mountpoint.is_none()
        {
            return;
        }
        // Dropped without a teardown (a panic, a cancelled start): clean up off the async
        // threads, since it blocks.
        let mut rest = Resources {
            inner: self.inner.clone(),
            id: std::mem::take(&mut self.id),
            slot: self.slot.take(),
            cgroup: self.cgroup.take(),
            dir: self.dir.take(),
            image_mountpoint: self.image_mountpoint.take(),
            egress: self.egress.take(),
            outer_pid: self.outer_pid,
        };
        let _ = std::thread::Builder::new()
            .name("sandbox-teardown".into())
            .spawn(move || {
                if let Err(error) = rest.release_now() {
                    tracing::error!(sandbox = %rest.id, %error, "sandbox teardown failed");
                }
            });
    }
}

/// Waits for and ends one sandbox.
pub struct SandboxHandle {
    id: String,
    child: Child,
    resources: Option<Resources>,
    activity: Arc<Activity>,
    deadline: tokio::time::Instant,
    idle: Duration,
    grace: Duration,
    memory_bytes: u64,
    pids: u32,
    exit: Option<Exit>,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// The sandbox's id (`sb-` and 16 hex digits), as its cgroup and socket dir are named.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host uid the sandbox runs as, when pooled.
    pub fn host_uid(&self) -> Option<u32> {
        self.resources.as_ref().and_then(Resources::uid)
    }

    /// The host pid of bubblewrap's outer process.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The sandbox's cgroup directories (empty without cgroups).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.resources
            .as_ref()
            .and_then(|r| r.cgroup.as_ref())
            .map(Cgroup::paths)
            .unwrap_or_default()
    }

    /// The sandbox's socket directory on the host.
    pub fn run_dir(&self) -> Option<PathBuf> {
        self.resources.as_ref().and_then(|r| r.dir.clone())
    }

    /// Waits until the server has exited, or a limit ended it, and says why.
    pub async fn wait(&mut self) -> Exit {
        if let Some(exit) = &self.exit {
            return exit.clone();
        }
        let mut poll = tokio::time::interval(LIMIT_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let limit = loop {
            tokio::select! {
                status = self.child.wait() => {
                    let limit = self.limit_hit();
                    let exit = self.describe(status, limit);
                    self.exit = Some(exit.clone());
                    return exit;
                }
                () = tokio::time::sleep_until(self.deadline) => break Limit::WallClock,
                _ = poll.tick() => {
                    if let Some(limit) = self.limit_hit() {
                        break limit;
                    }
                    if self.activity.idle_for() > self.idle {
                        break Limit::Idle;
                    }
                }
            }
        };
        self.kill().await;
        let _ = self.child.wait().await;
        let exit = self.describe(Ok(Default::default()), Some(limit));
        self.exit = Some(exit.clone());
        exit
    }

    /// Ends the sandbox: a grace period for the server to exit on its own (its stdin should be
    /// closed already), SIGTERM to everything in it, another grace period, then SIGKILL to the
    /// whole cgroup, which must be seen empty before it, the socket directory and the uid are
    /// released.
    pub async fn terminate(&mut self) -> Result<(), SandboxError> {
        if self.exit.is_none() {
            let exited = tokio::time::timeout(self.grace, self.child.wait())
                .await
                .is_ok();
            if !exited {
                self.signal(rustix::process::Signal::TERM);
                if tokio::time::timeout(self.grace, self.child.wait())
                    .await
                    .is_err()
                {
                    self.kill().await;
                    let _ = self.child.wait().await;
                }
            }
        }
        let Some(resources) = self.resources.take() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || resources.release())
            .await
            .map_err(|e| SandboxError::Teardown(format!("teardown task failed: {e}")))?
    }

    fn signal(&self, signal: rustix::process::Signal) {
        match self.resources.as_ref().and_then(|r| r.cgroup.as_ref()) {
            // bubblewrap's outer process exits by itself once the sandbox's pid 1 is gone.
            Some(cgroup) => cgroup.signal_all(signal, self.child.id()),
            // Without a cgroup, bubblewrap's outer process is the handle: when it dies, its
            // child gets --die-with-parent's SIGKILL, and with it the whole pid namespace.
            None => {
                if let Some(pid) = self
                    .child
                    .id()
                    .and_then(|p| i32::try_from(p).ok())
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, signal);
                }
            }
        }
    }

    async fn kill(&mut self) {
        match self.resources.as_ref().and_then(|r| r.cgroup.clone()) {
            Some(cgroup) => {
                let spare = self.child.id();
                let _ = tokio::task::spawn_blocking(move || cgroup.kill_all(spare)).await;
            }
            None => self.signal(rustix::process::Signal::KILL),
        }
    }

    /// What the helper wrote to its status file, bounded; the server can't write there.
    fn setup_failure(&self) -> Option<String> {
        let resources = self.resources.as_ref()?;
        let path = status_file(&resources.inner.config.run_dir, &resources.id);
        let text = std::fs::read_to_string(path).ok()?;
        let line = text.lines().next()?.trim();
        (!line.is_empty()).then(|| line.chars().take(400).collect())
    }

    fn limit_hit(&self) -> Option<Limit> {
        let cgroup = self.resources.as_ref()?.cgroup.as_ref()?;
        cgroup.limit_hit().map(|hit| match hit {
            LimitHit::Memory => Limit::Memory,
            LimitHit::Processes => Limit::Processes,
        })
    }

    fn describe(
        &self,
        status: std::io::Result<std::process::ExitStatus>,
        limit: Option<Limit>,
    ) -> Exit {
        let description = match limit {
            Some(Limit::Memory) => format!(
                "was ended: it went over its memory limit ({} MiB)",
                self.memory_bytes / (1024 * 1024)
            ),
            Some(Limit::Processes) => {
                format!("was ended: it hit its limit of {} processes", self.pids)
            }
            Some(Limit::WallClock) => "was ended: it ran past its wall-clock limit".to_owned(),
            Some(Limit::Idle) => "was ended: it was idle past its idle limit".to_owned(),
            None => match status {
                Ok(status) => match status.code() {
                    Some(code) if code == i32::from(crate::helper::SETUP_FAILED) => {
                        match self.setup_failure() {
                            Some(reason) => format!("could not be sandboxed: {reason}"),
                            None => "could not be sandboxed, or its init failed (status 125)".to_owned(),
                        }
                    }
                    Some(127) => "could not be started inside its sandbox: the command was not found or is not executable there (status 127)".to_owned(),
                    _ => describe_status(status),
                },
                Err(error) => format!("could not be waited for: {error}"),
            },
        };
        Exit { description, limit }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if self.resources.is_some() {
            // Resources' own Drop kills the cgroup and cleans up on a separate thread; bubblewrap
            // itself is killed by kill_on_drop, and its sandbox with it (--die-with-parent).
            let _ = self.child.start_kill();
        }
    }
}

/// The helper's status file of sandbox `id`.
fn status_file(run_dir: &Path, id: &str) -> PathBuf {
    instance_dir(run_dir).join(format!("{id}.status"))
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "exited".to_owned(),
    }
}

/// `sb-` and 64 random bits in hex: unique, and says what it is in a `ps` or `ls`.
fn sandbox_id() -> String {
    let mut bytes = [0_u8; 8];
    let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty());
    let mut id = String::with_capacity(19);
    id.push_str("sb-");
    for byte in bytes {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// Pool uids must pass through every existing parent of the run dir to reach their socket.
fn check_traversable(run_dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::MetadataExt as _;
    for dir in run_dir.ancestors().skip(1) {
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.mode() & 0o001 == 0
        {
            return Err(SandboxError::Config(format!(
                "sandbox.run_dir: its parent {} (mode {:04o}) can't be traversed by sandbox uids; \
                 pick a directory whose parents are world-executable, such as /run/mcp-hero",
                dir.display(),
                meta.mode() & 0o7777
            )));
        }
    }
    Ok(())
}

/// This gateway's directory under the run dir: sandbox socket dirs and helper status files.
fn instance_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(crate::cgroup::instance_name())
}

/// Creates `{run_dir}/gw-{pid}`. bubblewrap, running as the pool uid, resolves the path of the
/// directory it binds, so this and the run dir must be traversable (not listable) by every uid.
fn make_instance_dir(run_dir: &Path) -> Result<(), SandboxError> {
    let io = |what: String| move |source| SandboxError::Io { what, source };
    let instance = instance_dir(run_dir);
    std::fs::create_dir_all(&instance).map_err(io(format!("creating {}", instance.display())))?;
    for dir in [run_dir, instance.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .map_err(io(format!("setting the mode of {}", dir.display())))?;
    }
    Ok(())
}

/// An image must be a real directory (not a symlink to one): the install hands it to a pooled
/// uid, and a session binds exactly what was sealed.
fn check_image_dir(path: &Path) -> Result<(), SandboxError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(SandboxError::Config(format!(
            "the image {} is not a directory",
            path.display()
        ))),
        Err(source) => Err(SandboxError::Io {
            what: format!("reading the image {}", path.display()),
            source,
        }),
    }
}

/// Gives an install's (empty, fresh) image directory to the install sandbox's pooled uid.
fn hand_over(path: &Path, uid: u32) -> Result<(), SandboxError> {
    let io = |what: String| move |source| SandboxError::Io { what, source };
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))
        .map_err(io(format!("handing {} to uid {uid}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("setting the mode of {}", path.display())))
}

/// Creates `{run_dir}/gw-{pid}/{id}` mode 0700, owned by the sandbox's uid.
fn make_private_dir(run_dir: &Path, id: &str, uid: Option<u32>) -> Result<PathBuf, SandboxError> {
    let io = |what: String| move |source| SandboxError::Io { what, source };
    let dir = instance_dir(run_dir).join(id);
    std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("setting the mode of {}", dir.display())))?;
    if let Some(uid) = uid {
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid))
            .map_err(io(format!("handing {} to uid {uid}", dir.display())))?;
    }
    Ok(dir)
}

fn bind_egress_socket(
    dir: &Path,
    uid: Option<u32>,
) -> Result<tokio::net::UnixListener, SandboxError> {
    let path = dir.join("egress.sock");
    let listener = tokio::net::UnixListener::bind(&path).map_err(|source| SandboxError::Io {
        what: format!("binding {}", path.display()),
        source,
    })?;
    if let Some(uid) = uid {
        std::os::unix::fs::chown(&path, Some(uid), Some(uid)).map_err(|source| {
            SandboxError::Io {
                what: format!("handing {} to uid {uid}", path.display()),
                source,
            }
        })?;
    }
    Ok(listener)
}

/// When a byte last crossed the sandbox's stdin or stdout, for the idle limit.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A pipe end that records activity for the idle limit; otherwise transparent.
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    fn new(inner: T, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
