//! What the gateway hands the exec helper: everything needed to build one sandbox, serialized
//! onto the helper's stdin ahead of the server's own input.
//!
//! The frame is a 4-byte little-endian length, a JSON [`ExecPlan`], then the injected files'
//! contents back to back. Secrets travel only through this pipe and the helper's memory, never
//! a command line or a file on disk (S12).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where things are inside every sandbox.
pub mod inside {
    /// The sandbox user's uid and gid (unprivileged; mapped to a pool uid on the host).
    pub const UID: u32 = 1000;
    /// HOME, a size-limited tmpfs.
    pub const HOME: &str = "/home/mcp";
    /// The init program (the gateway binary, bound read-only).
    pub const INIT: &str = "/run/mcp-hero/init";
    /// The directory holding the egress socket.
    pub const EGRESS_DIR: &str = "/run/mcp-hero/egress";
    /// The egress socket the init relays the proxy port to.
    pub const EGRESS_SOCKET: &str = "/run/mcp-hero/egress/egress.sock";
    /// The server's install image: read-only for sessions, writable only for its install.
    pub const IMAGE: &str = "/opt/mcp-server";
    /// Where programs of an install image live, searched before the system's: operator-placed
    /// binaries, npm's links, the Python virtual environment's scripts.
    pub const IMAGE_PATH: &str =
        "/opt/mcp-server/bin:/opt/mcp-server/node_modules/.bin:/opt/mcp-server/venv/bin";
    /// The loopback port the init listens on for the proxy.
    pub const PROXY_PORT: u16 = 3128;
    /// Where injected files may go: the server's home and a secrets directory. Anywhere else
    /// a file could shadow the init, a system file or the install image.
    pub const FILE_ROOTS: &[&str] = &["/home/mcp/", "/run/secrets/"];

    /// Checks that an injected file lands beneath [`FILE_ROOTS`], with a normalized path.
    pub fn check_file_path(path: &str) -> Result<(), String> {
        let normalized = path.starts_with('/')
            && !path.ends_with('/')
            && path
                .split('/')
                .skip(1)
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if normalized
            && !path.contains('\0')
            && FILE_ROOTS.iter().any(|root| path.starts_with(root))
        {
            Ok(())
        } else {
            Err(format!(
                "a file can be injected only beneath {} (an absolute, normalized path)",
                FILE_ROOTS.join(" or ")
            ))
        }
    }
}

/// Everything the exec helper needs; built by the launcher, consumed once by the helper.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecPlan {
    /// The bubblewrap program.
    pub bwrap: PathBuf,
    /// `cgroup.procs` files the helper joins before anything else.
    pub cgroup_procs: Vec<PathBuf>,
    /// The host uid and gid to become before `exec`ing bubblewrap (run as root).
    pub identity: Option<HostIdentity>,
    /// rlimits for everything in the sandbox.
    pub rlimits: Rlimits,
    /// Where the helper writes why it failed: a gateway-only file the server can never write,
    /// unlike stderr, so its text can go into the reason the client and the log see.
    pub status_file: PathBuf,
    /// The sandbox's filesystem, environment and program.
    pub layout: Layout,
}

/// A pooled host identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    /// The host uid.
    pub uid: u32,
    /// The host gid.
    pub gid: u32,
}

/// Per-process limits set with `setrlimit` (the cgroup bounds the sandbox as a whole).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Rlimits {
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_FSIZE, in bytes.
    pub file_size_bytes: u64,
}

/// What the sandbox looks like from inside. Its `Debug` names the variables but never shows
/// their values (S16); the launcher wipes them once the plan is encoded (S14).
#[derive(Clone, Serialize, Deserialize)]
pub struct Layout {
    /// The gateway binary, bound read-only as the init.
    pub init_exe: PathBuf,
    /// The host directory with the egress socket, when egress is on.
    pub egress_dir: Option<PathBuf>,
    /// The server's install image, when it has one.
    pub image: Option<ImageBind>,
    /// Extra read-only host paths, bound at the same place.
    pub ro_binds: Vec<PathBuf>,
    /// Size of `/tmp`, in bytes.
    pub tmp_bytes: u64,
    /// Size of HOME, in bytes.
    pub home_bytes: u64,
    /// The whole environment of the sandboxed program (nothing else is inherited).
    pub env: Vec<(String, String)>,
    /// Files injected from memory; their contents follow the JSON, in this order.
    pub files: Vec<FileEntry>,
    /// The init's arguments (after `__sandbox-init`).
    pub init_args: Vec<String>,
    /// The working directory inside.
    pub chdir: String,
}

/// How the install image reaches `/opt/mcp-server`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageBind {
    /// The image directory on the host.
    pub source: PathBuf,
    /// Bound read-write (its install) rather than read-only (a session).
    pub writable: bool,
    /// An empty directory the pooled uid can traverse to, where the helper binds `source` in a
    /// mount namespace of its own before bubblewrap starts: bubblewrap re-resolves the path of
    /// what it binds as the pooled uid, and the image's parents (the data directory) are
    /// private to the gateway. `None` when the sandbox runs as the gateway's own uid.
    pub mountpoint: Option<PathBuf>,
}

/// One injected file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Where the server sees it (absolute, inside the sandbox).
    pub path: String,
    /// Its permission bits.
    pub mode: u32,
    /// Its size in bytes, in the frame after the JSON.
    pub len: usize,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout")
            .field("init_exe", &self.init_exe)
            .field("egress_dir", &self.egress_dir)
            .field("ro_binds", &self.ro_binds)
            .field(
                "env",
                &self.env.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("files", &self.files)
            .field("chdir", &self.chdir)
            .finish_non_exhaustive()
    }
}
