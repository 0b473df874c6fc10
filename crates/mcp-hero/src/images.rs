//! Install images (issue 4): a stdio server's package is installed once, when the server is
//! configured, into `{images.dir}/{server id}/{generation}`, which every session of that server
//! mounts read-only at `/opt/mcp-server`. Sessions never download.
//!
//! How an install runs:
//! - npm and PyPI packages install in a sandbox of their own ([`sandbox::ImageMount::Install`]):
//!   the image directory is its only writable host path, its egress reaches the configured
//!   registries and nothing else, it gets no variable or file of the server (so nothing secret
//!   can end up in its output), and package code does not run: npm gets `--ignore-scripts`,
//!   pip `--only-binary=:all:` (wheels only, no `setup.py`). npm installs into
//!   `/opt/mcp-server/node_modules`; PyPI packages into a virtual environment at
//!   `/opt/mcp-server/venv` (made without pip, filled by the system pip with `--python`).
//! - an operator-placed binary is copied from under `images.binaries_dir` into
//!   `/opt/mcp-server/bin`; nothing runs.
//! - the finished image is sealed ([`sandbox::image::seal`]): owned by root, no write bit.
//!
//! Progress comes from the installer's output ([`progress`]) and is written to the store, where
//! the API reads it. A new install of a server (package changed, reinstall) supersedes the one
//! running: that one is stopped, and its directory removed. Deleting the server removes every
//! directory of it ([`Images::forget`], retried in the background when it fails). At start,
//! [`Images::upkeep`] resumes installs a crash interrupted and removes directories no image owns.
//!
//! Deliberately left out: several replicas sharing one database each need the image on their own
//! disk, which this module does not arrange (one replica installs; see the issue).

mod progress;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mcp::upstream::UpstreamTransport;
use sandbox::egress::EgressPolicy;
use sandbox::{ImageMount, Sandboxes, StartRequest};
use serde::Deserialize;
use store::{
    ImagePhase, ImageReport, ImageState, ImageStatus, OrgScope, Package, PackageKind, Server,
    ServerId, Store, StoreError,
};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, BufReader};
use tokio::sync::{mpsc, watch};

use self::progress::{Installer, Tracker};
use crate::changes::{Change, ChangeSink};

/// Where the image is inside the install sandbox (and every session's).
const IMAGE: &str = sandbox::plan::inside::IMAGE;
/// The package managers' download caches, inside the image while it installs, removed before
/// sealing (HOME and `/tmp` are small tmpfs).
const INSTALL_CACHE: &str = ".install-cache";
/// Longest output line read from an installer; longer ones are read in pieces.
const MAX_LINE_BYTES: u64 = 8 * 1024;
/// Fewest milliseconds between two progress writes within one phase.
const REPORT_EVERY: Duration = Duration::from_millis(250);
/// Largest operator-placed binary copied into an image.
const MAX_BINARY_BYTES: u64 = 1 << 30;

/// `[images]` in the config file: how install images are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    /// Where images live; `{data_dir}/images` when unset. Private to the gateway: sessions reach
    /// an image only through the bind their sandbox makes.
    pub dir: Option<PathBuf>,
    /// Hosts an install may reach (its egress allowlist), trusted to resolve to non-public
    /// addresses (a mirror on a private network); sessions may not reach them.
    pub registries: Vec<String>,
    /// The npm registry URL npm uses, when not its default (`https://registry.npmjs.org/`).
    pub npm_registry: Option<String>,
    /// The package index pip uses, when not its default (`https://pypi.org/simple`).
    pub pypi_index: Option<String>,
    /// The npm program, as the install sandbox sees it (system directories are bound).
    pub npm: PathBuf,
    /// The Python that makes the virtual environment and runs pip.
    pub python: PathBuf,
    /// The CA bundle npm and pip trust for the registries.
    pub ca_bundle: PathBuf,
    /// Where operator-placed binaries must be; without it, binary packages are refused.
    pub binaries_dir: Option<PathBuf>,
    /// Longest an install may run, in seconds.
    pub timeout_secs: u64,
    /// Most bytes an install may move through its egress proxy.
    pub max_download_bytes: u64,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            dir: None,
            registries: vec![
                "registry.npmjs.org".into(),
                "pypi.org".into(),
                "files.pythonhosted.org".into(),
            ],
            npm_registry: None,
            pypi_index: None,
            npm: "/usr/bin/npm".into(),
            python: "/usr/bin/python3".into(),
            ca_bundle: "/etc/ssl/certs/ca-certificates.crt".into(),
            binaries_dir: None,
            timeout_secs: 600,
            max_download_bytes: 2 << 30,
        }
    }
}

impl ImagesConfig {
    /// Says what is wrong, naming the key, before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        let paths = [
            ("images.dir", self.dir.as_ref()),
            ("images.npm", Some(&self.npm)),
            ("images.python", Some(&self.python)),
            ("images.ca_bundle", Some(&self.ca_bundle)),
            ("images.binaries_dir", self.binaries_dir.as_ref()),
        ];
        for (key, path) in paths {
            if let Some(path) = path
                && !path.is_absolute()
            {
                return Err(format!("{key} must be an absolute path"));
            }
        }
        if self.registries.is_empty() {
            return Err("images.registries must name at least one host".into());
        }
        let policy = install_policy(self);
        sandbox::egress::EgressProxy::new(
            policy,
            Arc::new(sandbox::egress::SystemResolver),
            sandbox::egress::HostAddresses::fixed([]),
            Arc::new(|_: sandbox::egress::Decision| {}),
        )
        .map_err(|error| format!("images.registries: {error}"))?;
        for (key, url) in [
            ("images.npm_registry", &self.npm_registry),
            ("images.pypi_index", &self.pypi_index),
        ] {
            if let Some(url) = url {
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"));
                let authority = rest.map(|rest| rest.split('/').next().unwrap_or_default());
                match authority {
                    Some(authority) if !authority.is_empty() && !authority.contains('@') => {}
                    _ => {
                        return Err(format!(
                            "{key} must be an http(s) URL without credentials (the install \
                             sandbox gets no secret)"
                        ));
                    }
                }
            }
        }
        if !(1..=24 * 3600).contains(&self.timeout_secs) {
            return Err("images.timeout_secs must be between 1 and 86400".into());
        }
        if self.max_download_bytes < 1 << 20 {
            return Err("images.max_download_bytes must be at least 1 MiB".into());
        }
        Ok(())
    }
}

/// The install sandbox's egress: the registries, and nothing else.
fn install_policy(config: &ImagesConfig) -> EgressPolicy {
    EgressPolicy {
        allowlist: Some(config.registries.clone()),
        trusted_hosts: config.registries.clone(),
        max_bytes: config.max_download_bytes,
        ..EgressPolicy::default()
    }
}

/// The egress of every session's sandbox: any public destination but the package registries,
/// so a server cannot install at run time what its image does not hold.
pub fn session_policy(config: &ImagesConfig) -> EgressPolicy {
    EgressPolicy {
        denied_hosts: config.registries.clone(),
        ..EgressPolicy::default()
    }
}

/// Where images are on disk; the data plane reads it to mount them.
#[derive(Debug, Clone, Default)]
pub struct ImageDirs {
    root: Option<PathBuf>,
}

impl ImageDirs {
    /// Images under `root`; none at all without one.
    pub fn new(root: Option<PathBuf>) -> Self {
        ImageDirs { root }
    }

    /// All images of `server`.
    fn server(&self, server: &ServerId) -> Option<PathBuf> {
        Some(self.root.as_ref()?.join(server.as_str()))
    }

    /// One generation of `server`'s image.
    pub fn image(&self, server: &ServerId, generation: i64) -> Option<PathBuf> {
        Some(self.server(server)?.join(generation.to_string()))
    }

    /// How a session reaches `server`, given its image: the command with the image when it is
    /// ready, otherwise the reason it cannot run.
    pub fn session_transport(
        &self,
        server: &Server,
        command: mcp::launcher::StdioCommand,
    ) -> UpstreamTransport {
        if server.package.is_none() {
            return UpstreamTransport::Stdio(command);
        }
        let reason = match &server.image {
            Some(image) if image.state == ImageState::Ready => {
                match self.image(&server.id, image.generation) {
                    Some(path) => {
                        return UpstreamTransport::Stdio(mcp::launcher::StdioCommand {
                            image: Some(path),
                            ..command
                        });
                    }
                    None => "its image is not on this gateway".to_owned(),
                }
            }
            Some(image) => not_ready(image),
            None => "it has a package but no image".to_owned(),
        };
        UpstreamTransport::Unavailable { reason }
    }
}

/// How many more times a failed image removal is tried, after the first.
const REMOVAL_RETRIES: u32 = 6;
/// The pause before the first retry; it doubles each time (about two minutes in all).
const REMOVAL_RETRY_FIRST_PAUSE: Duration = Duration::from_secs(2);

/// Why a session cannot run a server whose image is not ready.
fn not_ready(image: &ImageStatus) -> String {
    match image.state {
        ImageState::Failed => format!(
            "its install failed: {}",
            image.error.as_deref().unwrap_or("no reason was recorded")
        ),
        _ => format!("its package is still installing ({}%)", image.progress),
    }
}

/// What the installer is given: its settings (with `dir` resolved) and the sandbox runtime, or
/// why there is none.
pub struct ImagesSetup {
    /// The settings; `dir` set.
    pub config: ImagesConfig,
    /// The sandbox runtime installs run in.
    pub runtime: Result<Sandboxes, String>,
}

impl ImagesSetup {
    /// No installs: every package fails with `reason` (tests, and gateways without a runtime).
    pub fn none(reason: &str) -> Self {
        ImagesSetup {
            config: ImagesConfig::default(),
            runtime: Err(reason.to_owned()),
        }
    }
}

/// A binary package must name a file under `binaries_dir` (checked again, links resolved, when
/// it is copied); other kinds pass.
fn check_binary_package(config: &ImagesConfig, package: &Package) -> Result<(), StoreError> {
    if package.kind() != PackageKind::Binary {
        return Ok(());
    }
    let invalid = |reason: String| StoreError::Invalid {
        field: "package",
        reason,
    };
    let Some(base) = &config.binaries_dir else {
        return Err(invalid(
            "binary packages need images.binaries_dir, which this gateway does not set".into(),
        ));
    };
    let path = Path::new(package.spec());
    if !path.starts_with(base) || path == base {
        return Err(invalid(format!(
            "a binary must be a file under {}, the gateway's binaries directory",
            base.display()
        )));
    }
    Ok(())
}

/// The installer of one gateway.
#[derive(Clone)]
pub struct Images {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: ImagesConfig,
    dirs: ImageDirs,
    runtime: Result<Sandboxes, String>,
    changes: Arc<dyn ChangeSink>,
    jobs: Mutex<HashMap<ServerId, Job>>,
}

/// The install running (or queued) for one server.
struct Job {
    generation: i64,
    cancel: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Images {
    /// An installer writing under `setup.config.dir`, reporting finished installs to `changes`.
    pub fn new(store: Store, setup: ImagesSetup, changes: Arc<dyn ChangeSink>) -> Images {
        Images {
            inner: Arc::new(Inner {
                store,
                dirs: ImageDirs::new(setup.config.dir.clone()),
                config: setup.config,
                runtime: setup.runtime,
                changes,
                jobs: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Where images are.
    pub fn dirs(&self) -> &ImageDirs {
        &self.inner.dirs
    }

    /// Checks what only the gateway knows about a package: a binary must lie under
    /// `images.binaries_dir` (its syntax was checked by the store).
    pub fn check_package(&self, package: &Package) -> Result<(), StoreError> {
        check_binary_package(&self.inner.config, package)
    }

    /// Starts installing `server`'s image if it waits for one; a newer generation supersedes
    /// the install running for an older one.
    pub fn install(&self, scope: &OrgScope, server: &Server) {
        let (Some(package), Some(image)) = (&server.package, &server.image) else {
            return;
        };
        if image.state != ImageState::Pending {
            return;
        }
        let mut jobs = self.inner.lock_jobs();
        let superseded = match jobs.remove(&server.id) {
            Some(job) if job.generation >= image.generation => {
                jobs.insert(server.id.clone(), job);
                return;
            }
            Some(job) => {
                let _ = job.cancel.send(true);
                Some(job.task)
            }
            None => None,
        };
        let (cancel, cancelled) = watch::channel(false);
        let work = Work {
            inner: self.inner.clone(),
            scope: scope.clone(),
            server: server.id.clone(),
            name: server.name.clone(),
            generation: image.generation,
            package: package.clone(),
            cancelled,
        };
        let task = tokio::spawn(async move {
            // One install per server at a time: the superseded one removes its directory first.
            if let Some(previous) = superseded {
                let _ = previous.await;
            }
            work.run().await;
        });
        jobs.insert(
            server.id.clone(),
            Job {
                generation: image.generation,
                cancel,
                task,
            },
        );
    }

    /// Stops `server`'s install, if one runs, and removes every image of it (the server was
    /// deleted or lost its package).
    pub async fn forget(&self, server: &ServerId) {
        let job = self.inner.lock_jobs().remove(server);
        if let Some(job) = job {
            let _ = job.cancel.send(true);
            let _ = job.task.await;
        }
        let Some(dir) = self.inner.dirs.server(server) else {
            return;
        };
        let first = dir.clone();
        match tokio::task::spawn_blocking(move || sandbox::image::remove(&first)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(server = %server, %error, "an install image could not be removed; retrying");
                // Deleted data must not linger (S19): keep trying in the background, and the
                // next start's upkeep sweeps whatever is still left.
                tokio::spawn(self.clone().retry_removal(server.clone(), dir));
            }
            Err(error) => {
                tracing::error!(server = %server, %error, "removing an install image panicked");
            }
        }
    }

    /// Retries removing a forgotten server's image directory with a growing pause, until it is
    /// gone, a new install of the server took the directory over, or the tries run out.
    async fn retry_removal(self, server: ServerId, dir: PathBuf) {
        let mut pause = REMOVAL_RETRY_FIRST_PAUSE;
        for attempt in 1..=REMOVAL_RETRIES {
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
            // The server got a package again: its new install owns the directory now.
            if self.inner.lock_jobs().contains_key(&server) {
                return;
            }
            let path = dir.clone();
            match tokio::task::spawn_blocking(move || sandbox::image::remove(&path)).await {
                Ok(Ok(())) => {
                    tracing::info!(server = %server, attempt, "an install image was removed on a retry");
                    return;
                }
                Ok(Err(error)) if attempt == REMOVAL_RETRIES => {
                    tracing::error!(server = %server, %error, "an install image could not be removed; the next start removes it");
                }
                Ok(Err(_)) => {}
                Err(error) => {
                    tracing::error!(server = %server, %error, "removing an install image panicked");
                    return;
                }
            }
        }
    }

    /// At start, before requests are served: removes directories no current image owns, then
    /// resumes the installs a stop or crash interrupted.
    pub async fn upkeep(&self) {
        let images = match self.inner.store.images_for_upkeep().await {
            Ok(images) => images,
            Err(error) => {
                tracing::error!(%error, "install images could not be listed for upkeep");
                return;
            }
        };
        if let Some(root) = self.inner.dirs.root.clone() {
            let keep: HashMap<String, String> = images
                .iter()
                .map(|image| {
                    (
                        image.server.to_string(),
                        image.status.generation.to_string(),
                    )
                })
                .collect();
            let swept = tokio::task::spawn_blocking(move || sweep(&root, &keep)).await;
            match swept {
                Ok(0) | Err(_) => {}
                Ok(removed) => tracing::info!(removed, "removed install images no server owns"),
            }
        }
        for image in images {
            // An install this gateway started since (a request raced the upkeep) is not stale.
            let running = self.inner.lock_jobs().contains_key(&image.server);
            if !running
                && matches!(
                    image.status.state,
                    ImageState::Pending | ImageState::Installing
                )
            {
                // An interrupted install starts over as a new generation, so nothing of the
                // old one is trusted. The gateway acts as the operator here, as `admin` does.
                let permit = auth::authorize::<auth::ManageServers>(auth::Role::Owner);
                let Ok(permit) = permit else { continue };
                match self
                    .inner
                    .store
                    .reinstall_image(&image.scope, &permit, &image.server)
                    .await
                {
                    Ok(server) => {
                        tracing::info!(server = %server.name, "resuming an interrupted install");
                        self.install(&image.scope, &server);
                    }
                    Err(error) => {
                        tracing::error!(server = %image.server, %error, "an interrupted install could not be resumed");
                    }
                }
            }
        }
    }
}

impl Inner {
    fn lock_jobs(&self) -> std::sync::MutexGuard<'_, HashMap<ServerId, Job>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes `{root}/{server}` directories of servers without an image and generations that are
/// not current; returns how many it removed.
fn sweep(root: &Path, keep: &HashMap<String, String>) -> usize {
    let mut removed = 0;
    let Ok(servers) = std::fs::read_dir(root) else {
        return 0;
    };
    for server in servers.flatten() {
        let name = server.file_name().to_string_lossy().into_owned();
        let Some(generation) = keep.get(&name) else {
            removed += usize::from(sandbox::image::remove(&server.path()).is_ok());
            continue;
        };
        let Ok(generations) = std::fs::read_dir(server.path()) else {
            continue;
        };
        for entry in generations.flatten() {
            if entry.file_name().to_string_lossy() != *generation {
                removed += usize::from(sandbox::image::remove(&entry.path()).is_ok());
            }
        }
    }
    removed
}

/// One install, from start to its report.
struct Work {
    inner: Arc<Inner>,
    scope: OrgScope,
    server: ServerId,
    name: String,
    generation: i64,
    package: Package,
    cancelled: watch::Receiver<bool>,
}

/// Why an install did not finish.
enum Stop {
    /// Superseded or its server deleted: nothing to report.
    Cancelled,
    /// It failed in this phase, for this reason.
    Failed(ImagePhase, String),
}

impl Work {
    async fn run(mut self) {
        let Some(dir) = self.inner.dirs.image(&self.server, self.generation) else {
            let reason = match &self.inner.runtime {
                Err(reason) => unavailable(reason),
                Ok(_) => "this gateway has no image directory".into(),
            };
            self.finish(Err(Stop::Failed(ImagePhase::Preparing, reason)))
                .await;
            return;
        };
        let started = Instant::now();
        let outcome = self.install(&dir).await;
        if outcome.is_err() {
            let dir = dir.clone();
            let _ = tokio::task::spawn_blocking(move || sandbox::image::remove(&dir)).await;
        } else {
            self.remove_older_generations().await;
        }
        if let Ok(size) = &outcome {
            tracing::info!(
                server = %self.name,
                package = %self.package.spec(),
                bytes = size,
                seconds = started.elapsed().as_secs(),
                "install image ready"
            );
        }
        self.finish(outcome).await;
    }

    /// Writes the outcome and tells live sessions, unless the install was cancelled.
    async fn finish(&mut self, outcome: Result<i64, Stop>) {
        let report = match outcome {
            Ok(size_bytes) => ImageReport::Ready { size_bytes },
            Err(Stop::Cancelled) => return,
            Err(Stop::Failed(phase, error)) => {
                tracing::warn!(server = %self.name, package = %self.package.spec(), %error, "install failed");
                ImageReport::Failed { phase, error }
            }
        };
        match self
            .inner
            .store
            .report_image(&self.scope, &self.server, self.generation, report)
            .await
        {
            Ok(true) => self.inner.changes.changed(Change::Server {
                scope: self.scope.clone(),
                server: self.server.clone(),
            }),
            Ok(false) => {}
            Err(error) => {
                tracing::error!(server = %self.name, %error, "the install's outcome could not be stored")
            }
        }
        let mut jobs = self.inner.lock_jobs();
        if jobs
            .get(&self.server)
            .is_some_and(|job| job.generation == self.generation)
        {
            jobs.remove(&self.server);
        }
    }

    fn cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    async fn report(&self, phase: ImagePhase, progress: u8) -> Result<(), Stop> {
        match self
            .inner
            .store
            .report_image(
                &self.scope,
                &self.server,
                self.generation,
                ImageReport::Progress { phase, progress },
            )
            .await
        {
            Ok(true) => Ok(()),
            // Superseded or deleted meanwhile.
            Ok(false) => Err(Stop::Cancelled),
            Err(error) => {
                tracing::warn!(server = %self.name, %error, "install progress could not be stored");
                Ok(())
            }
        }
    }

    /// Installs into `dir` and seals it; returns its size in bytes.
    async fn install(&mut self, dir: &Path) -> Result<i64, Stop> {
        self.report(ImagePhase::Preparing, 1).await?;
        let fresh = dir.to_owned();
        blocking(ImagePhase::Preparing, move || fresh_dir(&fresh)).await?;
        if self.cancelled() {
            return Err(Stop::Cancelled);
        }
        match self.package.kind() {
            PackageKind::Binary => {
                let (source, dir) = (self.package.spec().to_owned(), dir.to_owned());
                let base = self.inner.config.binaries_dir.clone();
                self.report(ImagePhase::Linking, 50).await?;
                blocking(ImagePhase::Linking, move || {
                    copy_binary(base.as_deref(), Path::new(&source), &dir)
                })
                .await?;
            }
            PackageKind::Npm => self.run_installer(dir, Installer::Npm).await?,
            PackageKind::Pypi => self.run_installer(dir, Installer::Pip).await?,
        }
        if self.cancelled() {
            return Err(Stop::Cancelled);
        }
        self.report(ImagePhase::Sealing, 97).await?;
        let sealed = dir.to_owned();
        let size = blocking(ImagePhase::Sealing, move || {
            sandbox::image::remove(&sealed.join(INSTALL_CACHE)).map_err(|e| e.to_string())?;
            sandbox::image::seal(&sealed).map_err(|e| e.to_string())
        })
        .await?;
        Ok(i64::try_from(size.bytes).unwrap_or(i64::MAX))
    }

    /// Runs npm or pip in an install sandbox, following its output.
    async fn run_installer(&mut self, dir: &Path, installer: Installer) -> Result<(), Stop> {
        let sandboxes = match &self.inner.runtime {
            Ok(sandboxes) => sandboxes.clone(),
            Err(reason) => return Err(Stop::Failed(ImagePhase::Preparing, unavailable(reason))),
        };
        let config = &self.inner.config;
        let request = StartRequest {
            org: self.scope.org_id().to_string(),
            server: format!("{} (install)", self.name),
            session: format!("install-{}", self.generation),
            command: install_command(config, installer, self.package.spec()),
            working_dir: Some(IMAGE.to_owned()),
            env: install_env(config, installer)
                .into_iter()
                .map(|(name, value)| (name.to_owned(), zeroize::Zeroizing::new(value)))
                .collect(),
            files: Vec::new(),
            egress: Some(install_policy(config)),
            image: Some(ImageMount::Install(dir.to_owned())),
            decisions: None,
        };
        let timeout = Duration::from_secs(config.timeout_secs);
        let mut running = sandboxes.start(request).await.map_err(|error| {
            Stop::Failed(
                ImagePhase::Preparing,
                format!("its install sandbox could not be started: {error}"),
            )
        })?;
        drop(running.stdin);
        self.report(ImagePhase::Resolving, 5).await?;

        let (lines, mut received) = mpsc::channel::<String>(64);
        tokio::spawn(forward_lines(running.stdout, lines.clone()));
        tokio::spawn(forward_lines(running.stderr, lines));
        let mut tracker = Tracker::new(installer);
        let mut last_report = (ImagePhase::Resolving, 5, Instant::now());
        let mut cancelled = self.cancelled.clone();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut output_open = true;
        let ended: Result<String, Stop> = loop {
            tokio::select! {
                line = received.recv(), if output_open => match line {
                    Some(line) => {
                        tracker.line(&line);
                        let (phase, percent) = tracker.state();
                        let (last_phase, last_percent, at) = last_report;
                        if phase != last_phase || (percent != last_percent && at.elapsed() >= REPORT_EVERY) {
                            last_report = (phase, percent, Instant::now());
                            if let Err(stop) = self.report(phase, percent).await {
                                break Err(stop);
                            }
                        }
                    }
                    None => output_open = false,
                },
                exit = running.handle.wait(), if !output_open => break Ok(exit.description),
                () = until_cancelled(&mut cancelled) => break Err(Stop::Cancelled),
                () = &mut deadline => break Err(Stop::Failed(
                    tracker.state().0,
                    format!("it took longer than {} seconds (images.timeout_secs)", config.timeout_secs),
                )),
            }
        };
        // Whatever happened, the sandbox is gone (its cgroup seen empty) before the image is
        // sealed or removed.
        if let Err(error) = running.handle.terminate().await {
            tracing::error!(server = %self.name, %error, "an install sandbox's teardown failed");
        }
        let exit = ended?;
        if exit != "exited with status 0" {
            return Err(Stop::Failed(tracker.state().0, tracker.failure(&exit)));
        }
        Ok(())
    }

    /// Removes the server's other generations once this one is ready.
    async fn remove_older_generations(&self) {
        let Some(server_dir) = self.inner.dirs.server(&self.server) else {
            return;
        };
        let current = self.generation.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&server_dir) else {
                return;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy() != current
                    && let Err(error) = sandbox::image::remove(&entry.path())
                {
                    tracing::warn!(%error, "an old install image could not be removed");
                }
            }
        })
        .await;
    }
}

/// Why nothing installs without the sandbox runtime.
fn unavailable(reason: &str) -> String {
    format!("installs need the sandbox runtime, which is unavailable on this gateway ({reason})")
}

/// Returns once the install is cancelled (or its job forgotten, which drops the sender).
async fn until_cancelled(cancelled: &mut watch::Receiver<bool>) {
    let _ = cancelled.wait_for(|cancelled| *cancelled).await;
}

/// Runs blocking file work; its error fails the install in `phase`.
async fn blocking<T: Send + 'static>(
    phase: ImagePhase,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, Stop> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Stop::Failed(phase, error)),
        Err(error) => Err(Stop::Failed(
            phase,
            format!("the install task failed: {error}"),
        )),
    }
}

/// Makes `dir` empty and new, its parents private to the gateway.
fn fresh_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    sandbox::image::remove(dir).map_err(|e| e.to_string())?;
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))
}

/// Copies an operator-placed binary into `{dir}/bin`, after checking it really lies under the
/// binaries directory (links resolved) and is a regular file.
fn copy_binary(base: Option<&Path>, source: &Path, dir: &Path) -> Result<(), String> {
    let base =
        base.ok_or("binary packages need images.binaries_dir, which this gateway does not set")?;
    let base = std::fs::canonicalize(base)
        .map_err(|e| format!("the binaries directory {}: {e}", base.display()))?;
    let real = std::fs::canonicalize(source).map_err(|e| format!("{}: {e}", source.display()))?;
    if !real.starts_with(&base) {
        return Err(format!(
            "{} is not under the binaries directory {}",
            source.display(),
            base.display()
        ));
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", source.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", source.display()));
    }
    if meta.len() > MAX_BINARY_BYTES {
        return Err(format!("{} is larger than 1 GiB", source.display()));
    }
    let name = source
        .file_name()
        .ok_or_else(|| format!("{} has no file name", source.display()))?;
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).map_err(|e| format!("creating {}: {e}", bin.display()))?;
    let target = bin.join(name);
    std::fs::copy(&real, &target).map_err(|e| format!("copying {}: {e}", source.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("setting the mode of {}: {e}", target.display()))
}

/// The install command, as the sandbox sees it. No shell interpolates the spec: it is an
/// argument of its own (the PyPI case passes it to `sh` as `$2`).
fn install_command(config: &ImagesConfig, installer: Installer, spec: &str) -> Vec<String> {
    match installer {
        Installer::Npm => {
            let mut command = vec![
                config.npm.to_string_lossy().into_owned(),
                "install".into(),
                "--prefix".into(),
                IMAGE.into(),
                "--cache".into(),
                format!("{IMAGE}/{INSTALL_CACHE}/npm"),
            ];
            command.extend(
                [
                    "--no-audit",
                    "--no-fund",
                    "--no-update-notifier",
                    // Package code does not run at install: no preinstall, install or postinstall.
                    "--ignore-scripts",
                    "--omit=dev",
                    "--loglevel",
                    "http",
                    spec,
                ]
                .map(str::to_owned),
            );
            command
        }
        Installer::Pip => vec![
            "/bin/sh".into(),
            "-c".into(),
            // A venv without pip (fast, nothing downloaded), filled by the system's pip.
            format!(
                "set -e; \"$1\" -m venv --without-pip {IMAGE}/venv; \
                 exec \"$1\" -m pip --python {IMAGE}/venv/bin/python install --no-input \
                 --disable-pip-version-check --no-cache-dir --progress-bar off \
                 --no-warn-script-location --only-binary=:all: \"$2\""
            ),
            "sh".into(),
            config.python.to_string_lossy().into_owned(),
            spec.to_owned(),
        ],
    }
}

/// The install's environment: TLS roots and registries; nothing of the server.
fn install_env(config: &ImagesConfig, installer: Installer) -> Vec<(&'static str, String)> {
    let ca = config.ca_bundle.to_string_lossy().into_owned();
    match installer {
        Installer::Npm => {
            let mut env = vec![("NODE_EXTRA_CA_CERTS", ca)];
            if let Some(registry) = &config.npm_registry {
                env.push(("npm_config_registry", registry.clone()));
            }
            env
        }
        Installer::Pip => {
            let mut env = vec![
                ("PIP_CERT", ca.clone()),
                ("SSL_CERT_FILE", ca),
                // The host's pip configuration is not the image's business.
                ("PIP_CONFIG_FILE", "/dev/null".into()),
            ];
            if let Some(index) = &config.pypi_index {
                env.push(("PIP_INDEX_URL", index.clone()));
            }
            env
        }
    }
}

/// Sends each line `reader` writes to `lines`, lines longer than [`MAX_LINE_BYTES`] in pieces.
async fn forward_lines(reader: impl AsyncRead + Unpin, lines: mpsc::Sender<String>) {
    let mut reader = BufReader::new(reader);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut buffer)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer).trim_end().to_owned();
                if lines.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
