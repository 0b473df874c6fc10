//! Which launcher runs stdio servers: the sandbox runtime (not in this build yet, so stdio servers
//! are refused with a message saying so), or, only with `--insecure-no-sandbox`, plain child
//! processes with a warning on every start.

use mcp::launcher::{
    BoxFuture, LaunchError, LaunchLabel, LaunchedServer, Launcher, PlainProcessLauncher,
    StdioCommand,
};

/// The launcher for a gateway started without `--insecure-no-sandbox`: it refuses, because
/// running a server outside a sandbox would break S1–S4 silently.
#[derive(Debug, Default)]
pub struct SandboxRequired;

impl Launcher for SandboxRequired {
    fn launch<'a>(
        &'a self,
        _command: &'a StdioCommand,
        _label: &'a LaunchLabel,
    ) -> BoxFuture<'a, Result<LaunchedServer, LaunchError>> {
        Box::pin(async {
            Err(LaunchError::Refused(
                "needs the sandbox runtime, which this build does not include yet; \
                 only a gateway started with --insecure-no-sandbox runs stdio servers (unsandboxed, for development)"
                    .to_owned(),
            ))
        })
    }

    fn kind(&self) -> &'static str {
        "sandbox"
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
        label: &'a LaunchLabel,
    ) -> BoxFuture<'a, Result<LaunchedServer, LaunchError>> {
        tracing::warn!(
            server = %label.server,
            session = %label.session,
            "starting a stdio server WITHOUT a sandbox (--insecure-no-sandbox): it runs with the gateway's user and can reach everything the gateway can"
        );
        self.0.launch(command, label)
    }

    fn kind(&self) -> &'static str {
        "plain-process (insecure)"
    }
}
