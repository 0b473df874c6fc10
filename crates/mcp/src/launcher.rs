//! The seam between the data plane and whatever runs stdio servers: the data plane asks a
//! [`Launcher`] for a process's pipes and never knows whether a sandbox is behind them.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

use crate::credentials::{FileMount, Template};

/// What to run for one stdio server, in one session. It holds no secret: its environment's
/// secret references and its files are opened when a session starts ([`Injection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioCommand {
    /// The program.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory, when the server has one.
    pub working_dir: Option<String>,
    /// The read-only directory its installed package lives in, which the launcher makes
    /// available to it (the sandbox mounts it at `/opt/mcp-server`); `None` when the server has
    /// no package. A new install is a new directory, so the command changes with it.
    pub image: Option<std::path::PathBuf>,
    /// Environment variables set for it, by name.
    pub env: Vec<(String, Template)>,
    /// Files it sees, filled from secret variables.
    pub files: Vec<FileMount>,
}

/// What a server gets from memory when it starts: its environment rendered with its secrets,
/// and its files' contents (S12, S14). Dropping it zeroizes them, so a launcher hands them on
/// and lets go; `Debug` shows names and sizes only.
#[derive(Default)]
pub struct Injection {
    /// Environment variables, by name.
    pub env: Vec<(String, Zeroizing<String>)>,
    /// Files, by absolute path inside the sandbox.
    pub files: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injection")
            .field(
                "env",
                &self.env.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field(
                "files",
                &self
                    .files
                    .iter()
                    .map(|(path, contents)| (path, contents.len()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Who a launch is for, so a launcher can label, account and log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchLabel {
    /// The organization's id.
    pub org: String,
    /// The server's name.
    pub server: String,
    /// A short, non-secret tag of the client session.
    pub session: String,
}

/// Something the launcher reports about a running server (an egress decision, a limit hit),
/// for the operator's log buffer; never the server's own output.
#[derive(Debug, Clone)]
pub struct LaunchEvent {
    /// Which kind.
    pub stream: crate::logs::LogStream,
    /// How much it matters.
    pub level: crate::logs::LogLevel,
    /// What happened, in the launcher's words.
    pub text: String,
}

/// A running server: its pipes and the handle that ends it.
pub struct LaunchedServer {
    /// Its standard input: the gateway writes JSON-RPC lines here. Unbuffered (the pipe itself,
    /// as both launchers give it): a line the write call accepted is on its way, with no flush
    /// needed.
    pub stdin: Pin<Box<dyn AsyncWrite + Send>>,
    /// Its standard output: JSON-RPC lines, nothing else.
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    /// Its standard error: free text, drained by the gateway.
    pub stderr: Pin<Box<dyn AsyncRead + Send>>,
    /// Ends the server; dropping it must end the server too.
    pub handle: Box<dyn ServerHandle>,
    /// What the launcher reports about it while it runs, if anything.
    pub events: Option<tokio::sync::mpsc::Receiver<LaunchEvent>>,
}

impl std::fmt::Debug for LaunchedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchedServer").finish_non_exhaustive()
    }
}

/// A boxed future, as the launcher trait returns them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Controls one launched server for the session that owns it.
pub trait ServerHandle: Send + Sync {
    /// Waits until the server has exited and says how, in words for logs and the API.
    fn wait(&mut self) -> BoxFuture<'_, String>;
    /// Ends the server and everything it started, and waits until they are gone.
    fn terminate(&mut self) -> BoxFuture<'_, ()>;
}

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The program could not be started (not found, not executable, bad working dir).
    #[error("could not start `{command}`: {reason}")]
    Spawn {
        /// The program.
        command: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The launcher refuses (a sandbox could not be built, a limit is reached).
    #[error("{0}")]
    Refused(String),
}

/// Starts stdio servers; the sandbox runtime implements it, and so does [`PlainProcessLauncher`].
pub trait Launcher: Send + Sync + 'static {
    /// Starts `command` for the session named in `label`, with `injection`'s environment and
    /// files.
    fn launch<'a>(
        &'a self,
        command: &'a StdioCommand,
        injection: Injection,
        label: &'a LaunchLabel,
    ) -> BoxFuture<'a, Result<LaunchedServer, LaunchError>>;

    /// A short name for logs: `sandbox` or `plain-process`.
    fn kind(&self) -> &'static str;
}

/// Runs servers as ordinary child processes of the gateway, with no isolation at all.
///
/// It exists for tests and for the explicit `--insecure-no-sandbox` flag; S1–S4 do not hold
/// with it. Each child gets a fresh environment (`PATH`, `HOME`, `LANG` and the server's own
/// variables), its own process group, and is killed with its group when the session ends. It
/// refuses servers with files: it has nowhere to put them but the host's disk (S12).
#[derive(Debug, Default)]
pub struct PlainProcessLauncher {
    path: Option<String>,
}

impl PlainProcessLauncher {
    /// A launcher whose children see `path` as `PATH` (the gateway's, usually).
    pub fn new(path: Option<String>) -> Self {
        PlainProcessLauncher { path }
    }
}

impl Launcher for PlainProcessLauncher {
    fn launch<'a>(
        &'a self,
        command: &'a StdioCommand,
        injection: Injection,
        _label: &'a LaunchLabel,
    ) -> BoxFuture<'a, Result<LaunchedServer, LaunchError>> {
        Box::pin(async move {
            if command.image.is_some() {
                return Err(LaunchError::Refused(
                    "runs from an install image, which only the sandbox runtime mounts".into(),
                ));
            }
            if !injection.files.is_empty() {
                return Err(LaunchError::Refused(
                    "has file variables, which only the sandbox runtime injects (from memory)"
                        .into(),
                ));
            }
            let mut child = tokio::process::Command::new(&command.command);
            child
                .args(&command.args)
                .env_clear()
                .env(
                    "PATH",
                    self.path
                        .as_deref()
                        .unwrap_or("/usr/local/bin:/usr/bin:/bin"),
                )
                .env("HOME", "/tmp")
                .env("LANG", "C.UTF-8")
                .envs(
                    injection
                        .env
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_str())),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true);
            if let Some(dir) = &command.working_dir {
                child.current_dir(dir);
            }
            let spawn_error = |reason: String| LaunchError::Spawn {
                command: command.command.clone(),
                reason,
            };
            let mut child = child.spawn().map_err(|e| spawn_error(e.to_string()))?;
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(spawn_error("its pipes could not be opened".into()));
            };
            Ok(LaunchedServer {
                stdin: Box::pin(stdin),
                stdout: Box::pin(stdout),
                stderr: Box::pin(stderr),
                handle: Box::new(PlainProcess { child }),
                events: None,
            })
        })
    }

    fn kind(&self) -> &'static str {
        "plain-process"
    }
}

struct PlainProcess {
    child: tokio::process::Child,
}

impl ServerHandle for PlainProcess {
    fn wait(&mut self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            match self.child.wait().await {
                Ok(status) => describe_exit(status),
                Err(error) => format!("could not be waited for: {error}"),
            }
        })
    }

    fn terminate(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(pid) = self.child.id() {
                kill_group(pid);
            }
            let _ = self.child.kill().await;
        })
    }
}

impl Drop for PlainProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            kill_group(pid);
        }
    }
}

/// Kills the process group the child leads (it was started with `process_group(0)`), so
/// grandchildren such as `npx`'s node go too.
fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Says how a process ended: `exited with status 3` or `was killed by signal 9`.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "exited".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    /// S12/S16: an unsandboxed server inherits none of the gateway's environment (the root
    /// secret and database URL live there), only PATH, HOME and LANG.
    #[tokio::test]
    async fn plain_processes_get_a_clean_environment() {
        let launcher = PlainProcessLauncher::new(Some("/usr/bin:/bin".into()));
        let command = StdioCommand {
            command: "env".into(),
            args: Vec::new(),
            working_dir: None,
            image: None,
            env: Vec::new(),
            files: Vec::new(),
        };
        let label = LaunchLabel {
            org: "o".into(),
            server: "s".into(),
            session: "t".into(),
        };
        let mut launched = launcher
            .launch(&command, Injection::default(), &label)
            .await
            .unwrap();
        let mut output = String::new();
        launched.stdout.read_to_string(&mut output).await.unwrap();
        let mut names: Vec<&str> = output
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["HOME", "LANG", "PATH"], "{output}");
        assert!(launched.handle.wait().await.contains("status 0"));
    }
}
