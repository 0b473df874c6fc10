//! File escapes (S2, S3): host secrets and paths, writes outside the tmpfs, symlink and hard
//! link tricks, device nodes, mount visibility, state left between sessions, cgroup moves.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};

use super::{Args, Check, CheckResult, io_refused, scratch_path, text_of};
use crate::report::Finding;
use crate::sys::{self, Errno};

/// The file checks.
pub const CHECKS: &[Check] = &[
    Check {
        name: "read-shadow",
        arguments: "",
        summary: "read /etc/shadow; escaped if any byte is read",
        run: read_shadow,
    },
    Check {
        name: "read-file",
        arguments: "<path>",
        summary: "read a host path (the gateway's database, config, socket); escaped if any byte is read",
        run: read_file,
    },
    Check {
        name: "list-dir",
        arguments: "<path>",
        summary: "list a host directory (the gateway's data dir); escaped if it can be listed",
        run: list_dir,
    },
    Check {
        name: "stat",
        arguments: "<path>",
        summary: "stat a path; escaped if it exists in the sandbox",
        run: stat,
    },
    Check {
        name: "write-file",
        arguments: "<path>",
        summary: "create a file (or open an existing one for writing, writing nothing); escaped if that works",
        run: write_file,
    },
    Check {
        name: "write-usr",
        arguments: "",
        summary: "write-file /usr/mcp-probe-x",
        run: write_usr,
    },
    Check {
        name: "write-etc",
        arguments: "",
        summary: "write-file /etc/mcp-probe-x",
        run: write_etc,
    },
    Check {
        name: "write-root",
        arguments: "",
        summary: "write-file /mcp-probe-x",
        run: write_root,
    },
    Check {
        name: "write-proc-sys",
        arguments: "",
        summary: "open /proc/sys/kernel/core_pattern for writing (nothing is written)",
        run: write_proc_sys,
    },
    Check {
        name: "symlink-read",
        arguments: "<target>",
        summary: "make /tmp/link -> target and read through it; escaped if any byte is read",
        run: symlink_read,
    },
    Check {
        name: "symlink-proc-root",
        arguments: "[path=etc/shadow]",
        summary: "symlink-read /proc/1/root/<path>",
        run: symlink_proc_root,
    },
    Check {
        name: "symlink-dotdot",
        arguments: "[path=etc/shadow]",
        summary: "symlink-read ../../../../../../../../<path> from /tmp",
        run: symlink_dotdot,
    },
    Check {
        name: "hardlink",
        arguments: "<target>",
        summary: "hard-link a file outside the tmpfs into /tmp; escaped if the link is made",
        run: hardlink,
    },
    Check {
        name: "open-device",
        arguments: "<path>",
        summary: "open a device node read-only; escaped if it opens",
        run: open_device,
    },
    Check {
        name: "dev-mem",
        arguments: "",
        summary: "open-device /dev/mem",
        run: dev_mem,
    },
    Check {
        name: "dev-kmem",
        arguments: "",
        summary: "open-device /dev/kmem",
        run: dev_kmem,
    },
    Check {
        name: "dev-sda",
        arguments: "",
        summary: "open-device /dev/sda",
        run: dev_sda,
    },
    Check {
        name: "dev-kvm",
        arguments: "",
        summary: "open-device /dev/kvm",
        run: dev_kvm,
    },
    Check {
        name: "mknod-block",
        arguments: "",
        summary: "mknod a block device (8:0, a disk) in /tmp; escaped if made",
        run: mknod_block,
    },
    Check {
        name: "mknod-char",
        arguments: "",
        summary: "mknod a character device (1:1, /dev/mem) in /tmp; escaped if made",
        run: mknod_char,
    },
    Check {
        name: "mountinfo",
        arguments: "<needle>",
        summary: "read /proc/self/mountinfo; escaped if needle (a host path) appears",
        run: mountinfo,
    },
    Check {
        name: "persist",
        arguments: "<path>",
        summary: "escaped if a marker from an earlier run is at path; then leaves one",
        run: persist,
    },
    Check {
        name: "cgroup-escape",
        arguments: "",
        summary: "write own pid into a parent cgroup's cgroup.procs; escaped if moved",
        run: cgroup_escape,
    },
];

/// Reads at most 256 bytes of `path`.
fn read_some(path: &str) -> Finding {
    let mut buffer = vec![0u8; 256];
    let result = fs::File::open(path).and_then(|mut file| file.read(&mut buffer));
    match result {
        Ok(count) => Finding::escaped(format!(
            "read {count} bytes: {}",
            text_of(&buffer[..count], 80)
        )),
        Err(error) => io_refused(&error, &format!("read {path}")),
    }
}

fn read_shadow(_: &Args<'_>) -> CheckResult {
    Ok(read_some("/etc/shadow"))
}

fn read_file(args: &Args<'_>) -> CheckResult {
    Ok(read_some(args.required(0)?))
}

fn list_dir(args: &Args<'_>) -> CheckResult {
    let path = args.required(0)?;
    Ok(match fs::read_dir(path) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect();
            Finding::escaped(format!("{} entries: {}", names.len(), names.join(",")))
        }
        Err(error) => io_refused(&error, &format!("list {path}")),
    })
}

fn stat(args: &Args<'_>) -> CheckResult {
    let path = args.required(0)?;
    Ok(match fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
            let kind = meta.file_type();
            let kind = if kind.is_socket() {
                "socket"
            } else if kind.is_dir() {
                "directory"
            } else if kind.is_symlink() {
                "symlink"
            } else if kind.is_file() {
                "file"
            } else {
                "other"
            };
            Finding::escaped(format!(
                "{path} exists: {kind}, mode {:o}, uid {}",
                meta.mode(),
                meta.uid()
            ))
        }
        Err(error) => io_refused(&error, &format!("stat {path}")),
    })
}

/// Creates `path` (or opens it for appending when it exists, writing nothing), then removes
/// what it created: a write that works leaves no trace even outside a sandbox.
fn try_write(path: &str) -> Finding {
    match fs::symlink_metadata(path) {
        Ok(_) => match OpenOptions::new().append(true).open(path) {
            Ok(_) => Finding::escaped(format!(
                "opened existing {path} for writing (wrote nothing)"
            )),
            Err(error) => io_refused(&error, &format!("open {path} for writing")),
        },
        Err(error) if error.kind() == ErrorKind::NotFound => {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    let written = file.write(b"mcp-probe\n").unwrap_or(0);
                    let _ = fs::remove_file(path);
                    Finding::escaped(format!(
                        "created {path} and wrote {written} bytes (removed again)"
                    ))
                }
                Err(error) => io_refused(&error, &format!("create {path}")),
            }
        }
        Err(error) => io_refused(&error, &format!("stat {path}")),
    }
}

fn write_file(args: &Args<'_>) -> CheckResult {
    Ok(try_write(args.required(0)?))
}

fn write_usr(_: &Args<'_>) -> CheckResult {
    Ok(try_write("/usr/mcp-probe-x"))
}

fn write_etc(_: &Args<'_>) -> CheckResult {
    Ok(try_write("/etc/mcp-probe-x"))
}

fn write_root(_: &Args<'_>) -> CheckResult {
    Ok(try_write("/mcp-probe-x"))
}

fn write_proc_sys(_: &Args<'_>) -> CheckResult {
    Ok(try_write("/proc/sys/kernel/core_pattern"))
}

/// Makes a symlink in /tmp to `target`, reads through it, removes it.
fn read_through_symlink(target: &str) -> Finding {
    let link = scratch_path("link");
    if let Err(error) = std::os::unix::fs::symlink(target, &link) {
        return Finding::error(format!("could not make the symlink {link}: {error}"));
    }
    let finding = read_some(&link);
    let _ = fs::remove_file(&link);
    Finding {
        detail: format!("via {link} -> {target}: {}", finding.detail),
        ..finding
    }
}

fn symlink_read(args: &Args<'_>) -> CheckResult {
    Ok(read_through_symlink(args.required(0)?))
}

fn symlink_proc_root(args: &Args<'_>) -> CheckResult {
    let path = args
        .optional(0)
        .unwrap_or("etc/shadow")
        .trim_start_matches('/');
    Ok(read_through_symlink(&format!("/proc/1/root/{path}")))
}

fn symlink_dotdot(args: &Args<'_>) -> CheckResult {
    let path = args
        .optional(0)
        .unwrap_or("etc/shadow")
        .trim_start_matches('/');
    Ok(read_through_symlink(&format!(
        "../../../../../../../../{path}"
    )))
}

fn hardlink(args: &Args<'_>) -> CheckResult {
    let target = args.required(0)?;
    let link = scratch_path("hardlink");
    Ok(match fs::hard_link(target, &link) {
        Ok(()) => {
            let _ = fs::remove_file(&link);
            Finding::escaped(format!("linked {target} as {link} (removed again)"))
        }
        Err(error) => io_refused(&error, &format!("link {target} into /tmp")),
    })
}

/// Opens a device node read-only (reads nothing).
fn open_device_at(path: &str) -> Finding {
    match fs::File::open(path) {
        Ok(_) => Finding::escaped(format!("opened {path} read-only")),
        Err(error) => io_refused(&error, &format!("open {path}")),
    }
}

fn open_device(args: &Args<'_>) -> CheckResult {
    Ok(open_device_at(args.required(0)?))
}

fn dev_mem(_: &Args<'_>) -> CheckResult {
    Ok(open_device_at("/dev/mem"))
}

fn dev_kmem(_: &Args<'_>) -> CheckResult {
    Ok(open_device_at("/dev/kmem"))
}

fn dev_sda(_: &Args<'_>) -> CheckResult {
    Ok(open_device_at("/dev/sda"))
}

fn dev_kvm(_: &Args<'_>) -> CheckResult {
    Ok(open_device_at("/dev/kvm"))
}

/// mknod of a device in /tmp, removed again if it was made.
fn make_device(kind: u32, major: u32, minor: u32) -> Finding {
    let path = scratch_path("device");
    match sys::mknod(&path, kind | 0o600, major, minor) {
        Ok(()) => {
            let _ = fs::remove_file(&path);
            Finding::escaped(format!(
                "made device {major}:{minor} at {path} (removed again)"
            ))
        }
        Err(errno) => Finding::denied(errno, format!("mknod {major}:{minor} at {path} refused")),
    }
}

fn mknod_block(_: &Args<'_>) -> CheckResult {
    Ok(make_device(libc::S_IFBLK, 8, 0))
}

fn mknod_char(_: &Args<'_>) -> CheckResult {
    Ok(make_device(libc::S_IFCHR, 1, 1))
}

fn mountinfo(args: &Args<'_>) -> CheckResult {
    let needle = args.required(0)?;
    let text = match fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text,
        Err(error) => {
            return Ok(Finding::error(format!(
                "read /proc/self/mountinfo: {error}"
            )));
        }
    };
    Ok(match text.lines().find(|line| line.contains(needle)) {
        Some(line) => Finding::escaped(format!("mounted: {line}")),
        None => Finding::denied_without_errno(format!(
            "{needle} absent from {} mounts",
            text.lines().count()
        )),
    })
}

fn persist(args: &Args<'_>) -> CheckResult {
    let path = args.required(0)?;
    let earlier = fs::read_to_string(path);
    let marker = format!("mcp-probe marker from pid {}", sys::getpid());
    let left = match fs::write(path, &marker) {
        Ok(()) => "left a marker".to_owned(),
        Err(error) => format!("could not leave a marker: {error}"),
    };
    Ok(match earlier {
        Ok(text) => Finding::escaped(format!(
            "found {:?} from an earlier run; {left}",
            text_of(text.as_bytes(), 80)
        )),
        Err(error) if error.kind() == ErrorKind::NotFound => Finding::denied(
            Errno(libc::ENOENT),
            format!("no earlier marker at {path}; {left}"),
        ),
        Err(error) => io_refused(&error, &format!("read {path}")),
    })
}

fn cgroup_escape(_: &Args<'_>) -> CheckResult {
    const TARGETS: &[&str] = &[
        "/sys/fs/cgroup/cgroup.procs",
        "/sys/fs/cgroup/unified/cgroup.procs",
        "/sys/fs/cgroup/memory/cgroup.procs",
        "/sys/fs/cgroup/pids/cgroup.procs",
        "/sys/fs/cgroup/cpu/cgroup.procs",
        "/sys/fs/cgroup/freezer/cgroup.procs",
    ];
    let pid = sys::getpid().to_string();
    let mut refusals = Vec::new();
    let mut first_errno = None;
    for target in TARGETS {
        match OpenOptions::new()
            .write(true)
            .open(target)
            .and_then(|mut file| file.write_all(pid.as_bytes()))
        {
            Ok(()) => return Ok(Finding::escaped(format!("moved pid {pid} into {target}"))),
            Err(error) => {
                let errno = Errno::of(&error);
                first_errno.get_or_insert(errno);
                refusals.push(format!("{target}: {}", crate::report::errno_name(errno)));
            }
        }
    }
    let detail = refusals.join(", ");
    Ok(match first_errno {
        Some(errno) if errno.0 != 0 => Finding::denied(errno, detail),
        _ => Finding::error(detail),
    })
}
