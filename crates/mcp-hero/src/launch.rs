//! Which launcher runs stdio servers: the sandbox runtime (S1–S4) by default; when it can't run
//! here (no bubblewrap, no cgroups as root), stdio servers are refused with that reason, and
//! only `--insecure-no-sandbox` runs them as plain child processes, warning on every start.
//! The same runtime installs server packages (see [`crate::images`]).

use std::sync::Arc;

use mcp::launcher::{
    BoxFuture, Injection, LaunchError, LaunchEvent, LaunchLabel, LaunchedServer, Launcher,
    PlainProcessLauncher, ServerHandle, StdioCommand,
};
use mcp::logs::{LogLevel, LogStream};
use sandbox::egress::{Decision, DecisionSink, EgressPolicy};
use sandbox::{ImageMount, InjectedFile, SandboxHandle, Sandboxes, StartRequest};
use tokio::sync::mpsc;

use crate::config::ServeConfig;

/// The launcher of stdio servers, and the runtime installs run in (or why there is none), for
/// a gateway with `config`. `path` is handed to plain processes under `--insecure-no-sandbox`.
pub fn launchers(
    config: &ServeConfig,
    path: Option<String>,
) -> (Arc<dyn Launcher>, Result<Sandboxes, String>) {
    if config.insecure_no_sandbox {
        return (
            Arc::new(InsecurePlainProcesses::new(path)),
            Err(
                "the gateway runs with --insecure-no-sandbox, so it has no sandbox to install \
                 packages in"
                    .into(),
            ),
        );
    }
    match Sandboxes::new(config.sandbox.clone(), Arc::new(LogDecisions)) {
        Ok(sandboxes) => {
            tracing::info!(setup = %sandboxes.describe(), "sandbox runtime ready");
            if !sandboxes.pooled_uids() {
                tracing::warn!(
                    "the gateway is not root: sandboxes run as the gateway's own uid, without a \
                     uid pool; run as root for per-sandbox uids"
                );
            }
            let launcher = SandboxLauncher::with_egress(
                sandboxes.clone(),
                crate::images::session_policy(&config.images),
            );
            (Arc::new(launcher), Ok(sandboxes))
        }
        Err(error) => {
            tracing::warn!(
                %error,
                "the sandbox runtime is unavailable: stdio MCP servers will be refused \
                 (remote servers work) and packages will not install; install bubblewrap, or \
                 for development only pass --insecure-no-sandbox"
            );
            (
                Arc::new(SandboxUnavailable::new(error.to_string())),
                Err(error.to_string()),
            )
        }
    }
}

/// Every sandbox's egress decisions go to the gateway log.
struct LogDecisions;

impl DecisionSink for LogDecisions {
    fn record(&self, decision: Decision) {
        tracing::info!(
            host = %decision.host,
            port = decision.port,
            verdict = ?decision.verdict,
            reason = %decision.reason,
            "sandbox egress"
        );
    }
}

/// How many launcher events wait for the data plane before new ones are dropped.
const EVENT_QUEUE: usize = 256;

/// A session sandbox's egress decisions (the runtime's sink logs them too) as events the data
/// plane puts in the server's log buffer (host, port, verdict and reason; never a path or header).
struct SessionDecisions(mpsc::Sender<LaunchEvent>);

impl DecisionSink for SessionDecisions {
    fn record(&self, decision: Decision) {
        let allowed = matches!(decision.verdict, sandbox::egress::Verdict::Allowed);
        let verdict = if allowed { "allowed" } else { "refused" };
        let target = match decision.address {
            Some(address) => format!("{}:{} ({address})", decision.host, decision.port),
            None => format!("{}:{}", decision.host, decision.port),
        };
        // A full queue drops the event rather than slow the proxy down.
        let _ = self.0.try_send(LaunchEvent {
            stream: LogStream::Egress,
            level: if allowed {
                LogLevel::Info
            } else {
                LogLevel::Warn
            },
            text: format!("{verdict} {target}: {}", decision.reason),
        });
    }
}

/// Runs each stdio server in its own sandbox.
pub struct SandboxLauncher {
    sandboxes: Sandboxes,
    egress: EgressPolicy,
}

impl SandboxLauncher {
    /// A launcher over `sandboxes`, whose sandboxes may reach any public destination.
    pub fn new(sandboxes: Sandboxes) -> Self {
        Self::with_egress(sandboxes, EgressPolicy::default())
    }

    /// A launcher over `sandboxes`, each with `egress` (the gateway's is
    /// [`crate::images::session_policy`]).
    pub fn with_egress(sandboxes: Sandboxes, egress: EgressPolicy) -> Self {
        SandboxLauncher { sandboxes, egress }
    }
}

impl Launcher for SandboxLauncher {
    fn launch<'a>(
        &'a self,
        command: &'a StdioCommand,
        injection: Injection,
        label: &'a LaunchLabel,
    ) -> BoxFuture<'a, Result<LaunchedServer, LaunchError>> {
        Box::pin(async move {
            let mut program = Vec::with_capacity(command.args.len() + 1);
            program.push(command.command.clone());
            program.extend(command.args.iter().cloned());
            // Moved, not copied: the sandbox wipes them once its helper has them (S14).
            let Injection { env, files } = injection;
            let (events, events_received) = mpsc::channel(EVENT_QUEUE);
            let request = StartRequest {
                org: label.org.clone(),
                server: label.server.clone(),
                session: label.session.clone(),
                command: program,
                working_dir: command.working_dir.clone(),
                env,
                files: files
                    .into_iter()
                    .map(|(path, contents)| InjectedFile {
                        path,
                        mode: 0o400,
                        contents,
                    })
                    .collect(),
                egress: Some(self.egress.clone()),
                image: command.image.clone().map(ImageMount::ReadOnly),
                decisions: Some(Arc::new(SessionDecisions(events))),
            };
            let running = self.sandboxes.start(request).await.map_err(|error| match error {
                sandbox::SandboxError::Capacity(_) => LaunchError::Refused(error.to_string()),
                other => {
                    tracing::error!(server = %label.server, error = %other, "a sandbox could not be started");
                    LaunchError::Refused(format!("its sandbox could not be started: {other}"))
                }
            })?;
            Ok(LaunchedServer {
                stdin: Box::pin(running.stdin),
                stdout: Box::pin(running.stdout),
                stderr: Box::pin(running.stderr),
                handle: Box::new(Sandboxed(running.handle)),
                events: Some(events_received),
            })
        })
    }

    fn kind(&self) -> &'static str {
        "sandbox"
    }
}

struct Sandboxed(SandboxHandle);

impl ServerHandle for Sandboxed {
    fn wait(&mut self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            let exit = self.0.wait().await;
            if exit.limit.is_some() {
                tracing::warn!(sandbox = %self.0.id(), reason = %exit.description, "a sandbox hit a limit");
            }
            exit.description
        })
    }

    fn terminate(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(error) = self.0.terminate().await {
                tracing::error!(sandbox = %self.0.id(), %error, "sandbox teardown failed");
            }
        })
    }
}

/// Refuses stdio servers because the sandbox runtime could not start, saying why; running them
/// outside a sandbox would break S1–S4 silently.
#[derive(Debug)]
pub struct SandboxUnavailable(String);

impl SandboxUnavailable {
    /// A launcher that refuses every stdio server, saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        SandboxUnavailable(reason.into())
    }
}

impl Launcher for SandboxUnavailable {
    fn launch<'a>(
        &'a self,
        _command: &'a StdioCommand,
        _injection: Injection,
        _label: &'a LaunchLabel,
    ) -> BoxFuture<'a, Result<LaunchedServer, LaunchError>> {
        Box::pin(async move {
            Err(LaunchError::Refused(format!(
                "needs the sandbox runtime, which is unavailable on this gateway ({})",
                self.0
            )))
        })
    }

    fn kind(&self) -> &'static str {
        "sandbox (unavailable)"
    }
}

/// Plain child processes, each start logged as a warning (`--insecure-no-sandbox`).
#[derive(Debug)]
pub struct InsecurePlainProcesses(PlainProcessLauncher);

impl InsecurePlainProcesses {
    /// Children see `path` as their `PATH`.
    pub fn new(path: Option<String>) -> Self {
        InsecurePlainProcesses(PlainProcessLauncher::new(path))
    }
}

impl Launcher for InsecurePlainProcesses {
    fn launch<'a>(
        &'a self,
        command: &'a StdioCommand,
        injection: Injection,
        label: &'a LaunchLabel,
    ) -> BoxFuture<'a, Result<LaunchedServer, LaunchError>> {
        tracing::warn!(
            server = %label.server,
            session = %label.session,
            "starting a stdio server WITHOUT a sandbox (--insecure-no-sandbox): it runs with the gateway's user and can reach everything the gateway can"
        );
        self.0.launch(command, injection, label)
    }

    fn kind(&self) -> &'static str {
        "plain-process (insecure)"
    }
}
