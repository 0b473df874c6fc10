//! The exec helper: the gateway binary re-executed as `mcp-hero __sandbox-exec`, one per
//! sandbox. It is a fresh single-threaded process, so the privileged steps between start and
//! `exec` (joining the cgroup, rlimits, dropping to the pooled uid) never run in a forked copy
//! of the multi-threaded gateway.
//!
//! It reads its [`ExecPlan`](crate::plan::ExecPlan) from stdin, opens what bubblewrap binds
//! while it is still root, drops its identity, and `exec`s bubblewrap, which inherits stdin,
//! stdout and stderr as the server's pipes.

use std::convert::Infallible;
use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use rustix::fs::{MemfdFlags, Mode, OFlags};
use rustix::process::{Resource, Rlimit};
use zeroize::Zeroize as _;

use crate::bwrap::{self, Fds};
use crate::plan::ExecPlan;

/// The first argument that makes the gateway binary act as the exec helper.
pub const ARG: &str = "__sandbox-exec";

/// Exit status of a helper that could not build the sandbox (bubblewrap and the init use
/// others), so the launcher can tell the cases apart.
pub const SETUP_FAILED: u8 = 125;

/// The largest plan header accepted, so a broken writer can't make the helper allocate without
/// bound.
const MAX_HEADER: usize = 1024 * 1024;

/// Runs the helper; returns only when it failed, after saying why on stderr and in the plan's
/// status file.
pub fn main() -> ExitCode {
    let mut status = None;
    let Err(error) = run(&mut status);
    let _ = writeln!(std::io::stderr(), "mcp-hero sandbox: {error}");
    if let Some(file) = status.as_mut() {
        let _ = writeln!(file, "{error}");
    }
    ExitCode::from(SETUP_FAILED)
}

/// Why the helper could not start bubblewrap.
#[derive(Debug, thiserror::Error)]
enum HelperError {
    #[error("reading the plan: {0}")]
    Plan(String),
    #[error("{what}: {source}")]
    Os {
        what: String,
        source: std::io::Error,
    },
    #[error("building the seccomp filter: {0}")]
    Seccomp(String),
}

fn os(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> HelperError {
    let what = what.into();
    move |errno| HelperError::Os {
        what,
        source: errno.into(),
    }
}

fn run(status: &mut Option<std::fs::File>) -> Result<Infallible, HelperError> {
    close_inherited_fds()?;
    let (plan, mut contents) = read_plan()?;
    // Opened while root, so it stays writable after the identity is dropped.
    *status = std::fs::File::create(&plan.status_file).ok();

    // Into the cgroup first, so everything after (bubblewrap included) is counted and killable.
    let pid = rustix::process::getpid().as_raw_nonzero().to_string();
    for file in &plan.cgroup_procs {
        std::fs::write(file, &pid).map_err(|source| HelperError::Os {
            what: format!("joining {}", file.display()),
            source,
        })?;
    }
    let limits = [
        (Resource::Core, 0),
        (Resource::Nofile, plan.rlimits.open_files),
        (Resource::Fsize, plan.rlimits.file_size_bytes),
    ];
    for (resource, value) in limits {
        let limit = Rlimit {
            current: Some(value),
            maximum: Some(value),
        };
        rustix::process::setrlimit(resource, limit).map_err(os(format!("setting {resource:?}")))?;
    }

    // Opened while still root: the pool uid may not be able to traverse to these paths.
    let layout = &plan.layout;
    let open_path = |path: &std::path::Path| {
        rustix::fs::open(path, OFlags::PATH, Mode::empty())
            .map_err(os(format!("opening {}", path.display())))
    };
    let init = open_path(&layout.init_exe)?;
    let egress_dir = layout.egress_dir.as_deref().map(open_path).transpose()?;
    let image = match &layout.image {
        None => None,
        Some(image) => match &image.mountpoint {
            Some(mountpoint) => {
                bind_in_own_mount_namespace(&image.source, mountpoint)?;
                Some(open_path(mountpoint)?)
            }
            None => Some(open_path(&image.source)?),
        },
    };
    let mut ro_binds = Vec::with_capacity(layout.ro_binds.len());
    for path in &layout.ro_binds {
        ro_binds.push((open_path(path)?, path.to_string_lossy().into_owned()));
    }
    let mut files = Vec::with_capacity(layout.files.len());
    let mut offset = 0;
    for entry in &layout.files {
        let end = offset + entry.len;
        files.push(memfd("mcp-file", &contents[offset..end])?);
        offset = end;
    }
    contents.zeroize();
    let etc = [
        memfd("passwd", bwrap::PASSWD.as_bytes())?,
        memfd("group", bwrap::GROUP.as_bytes())?,
        memfd("hosts", bwrap::HOSTS.as_bytes())?,
        memfd("resolv.conf", bwrap::RESOLV_CONF.as_bytes())?,
    ];
    let program =
        crate::seccomp::filter_program().map_err(|e| HelperError::Seccomp(e.to_string()))?;
    let seccomp = memfd("seccomp", &program)?;

    if let Some(identity) = plan.identity {
        use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
        // The helper is single-threaded, so these per-thread calls change the whole process.
        let gid = rustix::process::Gid::from_raw(identity.gid);
        let uid = rustix::process::Uid::from_raw(identity.uid);
        set_thread_groups(&[]).map_err(os("dropping supplementary groups"))?;
        set_thread_res_gid(gid, gid, gid).map_err(os("switching to the pooled gid"))?;
        set_thread_res_uid(uid, uid, uid).map_err(os("switching to the pooled uid"))?;
    }
    // bubblewrap resolves every bind source as the identity it runs with; say which path it
    // could not reach here, in our words, rather than let bubblewrap fail on it.
    let sources = std::iter::once(layout.init_exe.as_path())
        .chain(layout.egress_dir.as_deref())
        // An image is resolved where the helper bound it, when it did.
        .chain(
            layout
                .image
                .as_ref()
                .map(|image| image.mountpoint.as_deref().unwrap_or(&image.source)),
        )
        .chain(layout.ro_binds.iter().map(PathBuf::as_path));
    for path in sources {
        rustix::fs::access(path, rustix::fs::Access::EXISTS).map_err(|errno| HelperError::Os {
            what: format!(
                "{} is not reachable by the sandbox's uid (are all its parent directories world-executable?)",
                path.display()
            ),
            source: errno.into(),
        })?;
    }

    let raw = |fd: &OwnedFd| fd.as_fd().as_raw_fd();
    let fds = Fds {
        init: raw(&init),
        egress_dir: egress_dir.as_ref().map(raw),
        image: image.as_ref().map(raw),
        ro_binds: ro_binds
            .iter()
            .map(|(fd, path)| (raw(fd), path.clone()))
            .collect(),
        files: files.iter().map(raw).collect(),
        etc: [raw(&etc[0]), raw(&etc[1]), raw(&etc[2]), raw(&etc[3])],
        seccomp: raw(&seccomp),
    };
    let args = bwrap::arguments(layout, &fds);
    let error = std::process::Command::new(&plan.bwrap)
        .args(args)
        .env_clear()
        .envs(layout.env.iter().map(|(k, v)| (k, v)))
        .exec();
    Err(HelperError::Os {
        what: format!("starting {}", plan.bwrap.display()),
        source: error,
    })
}

/// Binds `source` at `mountpoint` in a mount namespace of the helper's own, so bubblewrap (which
/// inherits it) can resolve the image through a path the pooled uid may traverse, while the
/// host's mount table never changes: the namespace, and the bind with it, ends with the
/// sandbox. Needs root; the launcher asks for it only when it runs as root.
#[allow(unsafe_code)]
fn bind_in_own_mount_namespace(
    source: &std::path::Path,
    mountpoint: &std::path::Path,
) -> Result<(), HelperError> {
    use rustix::mount::{MountPropagationFlags, mount_bind, mount_change};
    // SAFETY: a new mount namespace only changes which mounts this process sees. Unlike
    // CLONE_FILES or CLONE_FS it touches no descriptor table or working directory Rust code
    // relies on, and the helper is single-threaded, so no other thread sees the switch.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(os("unsharing the mount namespace"))?;
    // Private first, so the bind below cannot propagate back to the host's namespace.
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(os("making the mount namespace private"))?;
    mount_bind(source, mountpoint).map_err(os(format!(
        "binding the image {} at {}",
        source.display(),
        mountpoint.display()
    )))
}

/// Marks every descriptor above stderr close-on-exec, so nothing the gateway inherited from
/// its own parent (a jobserver pipe, a socket) reaches bubblewrap or the sandbox. Descriptors
/// opened after this, on purpose without `O_CLOEXEC`, are the only ones passed on.
#[allow(unsafe_code)]
fn close_inherited_fds() -> Result<(), HelperError> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing and touches no memory; it
    // only sets a flag on descriptors, which no Rust object relies on being clear.
    let result = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3_u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(HelperError::Os {
            what: "marking inherited descriptors close-on-exec".into(),
            source: std::io::Error::last_os_error(),
        })
    }
}

/// A memfd holding `data`, left open across `exec` (the helper is single-threaded, so it can't
/// leak into another child) and rewound for bubblewrap to read.
fn memfd(name: &str, data: &[u8]) -> Result<OwnedFd, HelperError> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::empty())
        .map_err(os(format!("creating memfd {name}")))?;
    let mut written = 0;
    while written < data.len() {
        written += rustix::io::write(&fd, &data[written..])
            .map_err(os(format!("writing memfd {name}")))?;
    }
    rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))
        .map_err(os(format!("rewinding memfd {name}")))?;
    Ok(fd)
}

/// Reads exactly one frame from stdin (unbuffered: whatever follows is the server's input).
fn read_plan() -> Result<(ExecPlan, Vec<u8>), HelperError> {
    let mut length = [0_u8; 4];
    read_exact(&mut length)?;
    let length = u32::from_le_bytes(length) as usize;
    if length > MAX_HEADER {
        return Err(HelperError::Plan(format!(
            "header of {length} bytes is too large"
        )));
    }
    let mut header = vec![0_u8; length];
    read_exact(&mut header)?;
    let plan: ExecPlan =
        serde_json::from_slice(&header).map_err(|e| HelperError::Plan(e.to_string()))?;
    header.zeroize();
    let total: usize = plan.layout.files.iter().map(|f| f.len).sum();
    let mut contents = vec![0_u8; total];
    read_exact(&mut contents)?;
    Ok((plan, contents))
}

fn read_exact(mut buffer: &mut [u8]) -> Result<(), HelperError> {
    let stdin = rustix::stdio::stdin();
    while !buffer.is_empty() {
        match rustix::io::read(stdin, &mut *buffer) {
            Ok(0) => return Err(HelperError::Plan("stdin ended early".into())),
            Ok(n) => buffer = &mut buffer[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(os("reading stdin")(errno)),
        }
    }
    Ok(())
}

/// Encodes `plan` and the files' contents as the helper reads them.
pub fn encode(plan: &ExecPlan, contents: &[&[u8]]) -> Result<Vec<u8>, serde_json::Error> {
    let header = serde_json::to_vec(plan)?;
    let total: usize = contents.iter().map(|c| c.len()).sum();
    let mut frame = Vec::with_capacity(4 + header.len() + total);
    frame.extend_from_slice(&(header.len() as u32).to_le_bytes());
    frame.extend_from_slice(&header);
    let mut header = header;
    header.zeroize();
    for content in contents {
        frame.extend_from_slice(content);
    }
    Ok(frame)
}

/// The helper's arguments (after the program), for the launcher.
pub fn args() -> [OsString; 1] {
    [OsString::from(ARG)]
}
