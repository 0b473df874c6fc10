//! The sandbox runtime (S1–S4): every stdio MCP server runs in its own bubblewrap sandbox,
//! created for one client session and destroyed with it.
//!
//! The pieces, outside in:
//! - [`launcher`]: [`launcher::Sandboxes`], which leases a uid, builds a
//!   cgroup and an egress socket, and starts the exec helper;
//! - [`helper`]: the single-threaded helper (the gateway binary re-executed) that joins the
//!   cgroup, sets rlimits, drops to the leased uid and `exec`s bubblewrap;
//! - [`bwrap`]: the one place the bubblewrap command line is built;
//! - [`seccomp`] and [`landlock`]: the kernel filters the sandboxed program runs under;
//! - [`init`]: the first program inside the sandbox: it applies Landlock, relays the local proxy
//!   port to the egress socket and runs the server;
//! - [`egress`]: the proxy on the gateway side of that socket, which decides every connection;
//! - [`image`]: install images, sealed read-only and root-owned once their install sandbox ends;
//! - [`cgroup`] and [`uid_pool`]: limits, accounting and clean teardown.

pub mod bwrap;
pub mod cgroup;
pub mod config;
pub mod egress;
pub mod helper;
pub mod image;
pub mod init;
pub mod landlock;
pub mod launcher;
pub mod plan;
pub mod seccomp;
pub mod uid_pool;

pub use config::{Caps, Limits, SandboxConfig, UidRange};
pub use launcher::{
    Exit, ImageMount, InjectedFile, Limit, RunningSandbox, SandboxHandle, Sandboxes, StartRequest,
};

/// Why a sandbox could not be built, run or torn down.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The settings are wrong; the message names the field.
    #[error("invalid sandbox settings: {0}")]
    Config(String),
    /// bubblewrap or the kernel features it needs are missing.
    #[error("the sandbox runtime is unavailable: {0}")]
    Unavailable(String),
    /// A cap on concurrent sandboxes is reached; nothing was started.
    #[error("no sandbox can be started now: {0}")]
    Capacity(String),
    /// A cgroup could not be created, limited or read.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// Something of a sandbox could not be removed.
    #[error("sandbox teardown: {0}")]
    Teardown(String),
    /// A file system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod test_support;
