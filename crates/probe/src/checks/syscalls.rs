//! The system calls the sandbox's seccomp filter must refuse (S3), each made once with harmless
//! arguments, and the socket families other than UNIX, INET and INET6.

use std::fs::{self, OpenOptions};
use std::os::fd::{AsFd as _, AsRawFd as _};

use super::{Args, Check, CheckResult, Usage, scratch_path, syscall_finding};
use crate::report::Finding;
use crate::sys;

/// The system call checks.
pub const CHECKS: &[Check] = &[
    Check {
        name: "ptrace-traceme",
        arguments: "",
        summary: "ptrace(PTRACE_TRACEME)",
        run: ptrace_traceme,
    },
    Check {
        name: "ptrace-attach",
        arguments: "[pid=1]",
        summary: "ptrace(PTRACE_ATTACH, pid), detached again at once",
        run: ptrace_attach,
    },
    Check {
        name: "process-vm-readv",
        arguments: "[pid=self]",
        summary: "process_vm_readv of the probe's own memory (or of pid's)",
        run: process_vm_readv,
    },
    Check {
        name: "keyctl",
        arguments: "",
        summary: "keyctl(KEYCTL_GET_KEYRING_ID, session keyring)",
        run: keyctl,
    },
    Check {
        name: "add-key",
        arguments: "",
        summary: "add_key(\"user\") into the process keyring",
        run: add_key,
    },
    Check {
        name: "mount",
        arguments: "",
        summary: "mount a tmpfs on a directory in /tmp (unmounted again)",
        run: mount,
    },
    Check {
        name: "umount2",
        arguments: "",
        summary: "umount2 of a directory in /tmp (EINVAL, not a mount point, means permitted)",
        run: umount2,
    },
    Check {
        name: "fsopen",
        arguments: "",
        summary: "fsopen(\"tmpfs\")",
        run: fsopen,
    },
    Check {
        name: "fspick",
        arguments: "",
        summary: "fspick(/tmp)",
        run: fspick,
    },
    Check {
        name: "fsmount",
        arguments: "",
        summary: "fsmount(-1) (EBADF means permitted)",
        run: fsmount,
    },
    Check {
        name: "open-tree",
        arguments: "",
        summary: "open_tree(/tmp, OPEN_TREE_CLONE)",
        run: open_tree,
    },
    Check {
        name: "move-mount",
        arguments: "",
        summary: "move_mount between missing paths (ENOENT means permitted)",
        run: move_mount,
    },
    Check {
        name: "pivot-root",
        arguments: "",
        summary: "pivot_root between missing paths (ENOENT means permitted)",
        run: pivot_root,
    },
    Check {
        name: "chroot",
        arguments: "",
        summary: "chroot(/tmp)",
        run: chroot,
    },
    Check {
        name: "unshare",
        arguments: "<user|net|mount|pid|ipc|uts|cgroup|time>",
        summary: "unshare one namespace",
        run: unshare,
    },
    Check {
        name: "unshare-user",
        arguments: "",
        summary: "unshare(CLONE_NEWUSER)",
        run: unshare_user,
    },
    Check {
        name: "unshare-net",
        arguments: "",
        summary: "unshare(CLONE_NEWNET)",
        run: unshare_net,
    },
    Check {
        name: "setns",
        arguments: "[path=/proc/self/ns/net]",
        summary: "setns into a namespace file",
        run: setns,
    },
    Check {
        name: "clone-ns",
        arguments: "<user|net|mount|pid|ipc|uts|cgroup|time>",
        summary: "raw clone() with one namespace flag",
        run: clone_ns,
    },
    Check {
        name: "clone-newuser",
        arguments: "",
        summary: "raw clone(CLONE_NEWUSER)",
        run: clone_newuser,
    },
    Check {
        name: "clone3",
        arguments: "[namespace]",
        summary: "clone3 (plain, or with a namespace flag); the filter must answer ENOSYS",
        run: clone3,
    },
    Check {
        name: "bpf",
        arguments: "",
        summary: "bpf(BPF_MAP_CREATE)",
        run: bpf,
    },
    Check {
        name: "perf-event-open",
        arguments: "",
        summary: "perf_event_open of a user-only CPU clock on self",
        run: perf_event_open,
    },
    Check {
        name: "userfaultfd",
        arguments: "",
        summary: "userfaultfd(UFFD_USER_MODE_ONLY)",
        run: userfaultfd,
    },
    Check {
        name: "io-uring-setup",
        arguments: "",
        summary: "io_uring_setup(1)",
        run: io_uring_setup,
    },
    Check {
        name: "open-by-handle-at",
        arguments: "",
        summary: "open_by_handle_at of /tmp's handle (ESTALE means permitted)",
        run: open_by_handle_at,
    },
    Check {
        name: "tiocsti",
        arguments: "",
        summary: "ioctl(TIOCSTI) on a new pty's slave (stdin without a pty)",
        run: tiocsti,
    },
    Check {
        name: "tioclinux",
        arguments: "",
        summary: "ioctl(TIOCLINUX) on a new pty's slave (ENOTTY means it reached the tty layer)",
        run: tioclinux,
    },
    Check {
        name: "socket",
        arguments: "<domain> <type> [protocol]",
        summary: "socket() with numeric arguments",
        run: socket,
    },
    Check {
        name: "socket-vsock",
        arguments: "",
        summary: "socket(AF_VSOCK, SOCK_STREAM)",
        run: socket_vsock,
    },
    Check {
        name: "socket-packet",
        arguments: "",
        summary: "socket(AF_PACKET, SOCK_RAW, ETH_P_ALL)",
        run: socket_packet,
    },
    Check {
        name: "socket-netlink",
        arguments: "",
        summary: "socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)",
        run: socket_netlink,
    },
    Check {
        name: "socket-bluetooth",
        arguments: "",
        summary: "socket(AF_BLUETOOTH, SOCK_STREAM, RFCOMM)",
        run: socket_bluetooth,
    },
    Check {
        name: "socket-alg",
        arguments: "",
        summary: "socket(AF_ALG, SOCK_SEQPACKET)",
        run: socket_alg,
    },
    Check {
        name: "socket-raw",
        arguments: "",
        summary: "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)",
        run: socket_raw,
    },
];

fn ptrace_traceme(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(
        sys::ptrace(libc::PTRACE_TRACEME, 0),
        "ptrace(PTRACE_TRACEME)",
        &[],
    ))
}

fn ptrace_attach(args: &Args<'_>) -> CheckResult {
    let pid = i32::try_from(args.number(0, 1)?).map_err(|_| args.usage())?;
    let result = sys::ptrace(libc::PTRACE_ATTACH, pid);
    if result.is_ok() {
        let _ = sys::wait_for(pid);
        let _ = sys::ptrace(libc::PTRACE_DETACH, pid);
    }
    Ok(syscall_finding(
        result,
        &format!("ptrace(PTRACE_ATTACH, {pid})"),
        &[],
    ))
}

fn process_vm_readv(args: &Args<'_>) -> CheckResult {
    let own = sys::getpid();
    let pid = match args.optional_number(0)? {
        Some(pid) => i32::try_from(pid).map_err(|_| args.usage())?,
        None => own,
    };
    let (address, len) = if pid == own {
        sys::own_marker_address()
    } else {
        (0x40_0000, 16)
    };
    Ok(match sys::process_vm_readv(pid, address, len) {
        Ok(bytes) => Finding::escaped(format!(
            "process_vm_readv({pid}) read {} bytes: {}",
            bytes.len(),
            super::text_of(&bytes, 16)
        )),
        // EFAULT (a bad remote address) or ESRCH come after the permission checks.
        Err(errno) if pid != own && errno.0 == libc::EFAULT => Finding::escaped_with(
            errno,
            format!("process_vm_readv({pid}) passed the filter and permission checks"),
        ),
        Err(errno) => Finding::denied(errno, format!("process_vm_readv({pid}) refused")),
    })
}

fn keyctl(_: &Args<'_>) -> CheckResult {
    const KEY_SPEC_SESSION_KEYRING: i32 = -3;
    Ok(syscall_finding(
        sys::keyctl_get_keyring_id(KEY_SPEC_SESSION_KEYRING),
        "keyctl(KEYCTL_GET_KEYRING_ID)",
        &[libc::ENOKEY],
    ))
}

fn add_key(_: &Args<'_>) -> CheckResult {
    const KEY_SPEC_PROCESS_KEYRING: i32 = -2;
    Ok(syscall_finding(
        sys::add_key("mcp-probe", b"x", KEY_SPEC_PROCESS_KEYRING),
        "add_key(user)",
        &[libc::EDQUOT],
    ))
}

/// Runs `attempt` on a fresh directory in /tmp, removed afterwards.
fn with_scratch_dir(attempt: impl FnOnce(&str) -> Finding) -> Finding {
    let dir = scratch_path("mnt");
    if let Err(error) = fs::create_dir(&dir) {
        return Finding::error(format!("could not make {dir}: {error}"));
    }
    let finding = attempt(&dir);
    let _ = fs::remove_dir(&dir);
    finding
}

fn mount(_: &Args<'_>) -> CheckResult {
    Ok(with_scratch_dir(|dir| {
        let result = sys::mount("none", dir, "tmpfs", 0);
        if result.is_ok() {
            let _ = sys::umount2(dir, libc::MNT_DETACH);
        }
        syscall_finding(result, &format!("mount(tmpfs on {dir})"), &[])
    }))
}

fn umount2(_: &Args<'_>) -> CheckResult {
    Ok(with_scratch_dir(|dir| {
        syscall_finding(
            sys::umount2(dir, 0),
            &format!("umount2({dir})"),
            &[libc::EINVAL],
        )
    }))
}

fn fsopen(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(sys::fsopen("tmpfs"), "fsopen(tmpfs)", &[]))
}

fn fspick(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(sys::fspick("/tmp"), "fspick(/tmp)", &[]))
}

fn fsmount(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(
        sys::fsmount(-1),
        "fsmount(-1)",
        &[libc::EBADF],
    ))
}

fn open_tree(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(
        sys::open_tree_clone("/tmp"),
        "open_tree(/tmp, OPEN_TREE_CLONE)",
        &[],
    ))
}

fn move_mount(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(
        sys::move_mount(
            "/tmp/mcp-probe-no-such-source",
            "/tmp/mcp-probe-no-such-target",
        ),
        "move_mount",
        &[libc::ENOENT],
    ))
}

fn pivot_root(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(
        sys::pivot_root("/mcp-probe-no-such-new-root", "/mcp-probe-no-such-old-root"),
        "pivot_root",
        &[libc::ENOENT, libc::ENOTDIR, libc::EINVAL],
    ))
}

fn chroot(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(sys::chroot("/tmp"), "chroot(/tmp)", &[]))
}

/// The clone flag of a namespace kind.
fn namespace_flag(args: &Args<'_>, kind: &str) -> Result<libc::c_int, Usage> {
    Ok(match kind {
        "user" => libc::CLONE_NEWUSER,
        "net" => libc::CLONE_NEWNET,
        "mount" => libc::CLONE_NEWNS,
        "pid" => libc::CLONE_NEWPID,
        "ipc" => libc::CLONE_NEWIPC,
        "uts" => libc::CLONE_NEWUTS,
        "cgroup" => libc::CLONE_NEWCGROUP,
        "time" => 0x80, // CLONE_NEWTIME
        _ => return Err(args.usage()),
    })
}

fn unshare_kind(kind: &str, flag: libc::c_int) -> Finding {
    syscall_finding(sys::unshare(flag), &format!("unshare({kind})"), &[])
}

fn unshare(args: &Args<'_>) -> CheckResult {
    let kind = args.required(0)?;
    Ok(unshare_kind(kind, namespace_flag(args, kind)?))
}

fn unshare_user(_: &Args<'_>) -> CheckResult {
    Ok(unshare_kind("user", libc::CLONE_NEWUSER))
}

fn unshare_net(_: &Args<'_>) -> CheckResult {
    Ok(unshare_kind("net", libc::CLONE_NEWNET))
}

fn setns(args: &Args<'_>) -> CheckResult {
    let path = args.optional(0).unwrap_or("/proc/self/ns/net");
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) => return Ok(super::io_refused(&error, &format!("open {path}"))),
    };
    Ok(syscall_finding(
        sys::setns(file.as_fd(), 0),
        &format!("setns({path})"),
        &[],
    ))
}

fn clone_with(kind: &str, flag: libc::c_int) -> Finding {
    let flag = libc::c_ulong::try_from(flag).unwrap_or(0);
    match sys::clone_and_reap(flag) {
        Ok(child) => Finding::escaped(format!("clone({kind}) made child {child}")),
        Err(errno) => Finding::denied(errno, format!("clone({kind}) refused")),
    }
}

fn clone_ns(args: &Args<'_>) -> CheckResult {
    let kind = args.required(0)?;
    Ok(clone_with(kind, namespace_flag(args, kind)?))
}

fn clone_newuser(_: &Args<'_>) -> CheckResult {
    Ok(clone_with("user", libc::CLONE_NEWUSER))
}

fn clone3(args: &Args<'_>) -> CheckResult {
    let (kind, flag) = match args.optional(0) {
        None => ("plain", 0),
        Some(kind) => (kind, namespace_flag(args, kind)?),
    };
    let flag = u64::try_from(flag).unwrap_or(0);
    Ok(match sys::clone3_and_reap(flag) {
        Ok(child) => Finding::escaped(format!("clone3({kind}) made child {child}")),
        Err(errno) => Finding::denied(errno, format!("clone3({kind}) refused")),
    })
}

fn bpf(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(
        sys::bpf_map_create(),
        "bpf(BPF_MAP_CREATE)",
        &[],
    ))
}

fn perf_event_open(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(
        sys::perf_event_open_self(),
        "perf_event_open",
        &[],
    ))
}

fn userfaultfd(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(sys::userfaultfd(), "userfaultfd", &[]))
}

fn io_uring_setup(_: &Args<'_>) -> CheckResult {
    Ok(syscall_finding(
        sys::io_uring_setup(1),
        "io_uring_setup",
        &[],
    ))
}

fn open_by_handle_at(_: &Args<'_>) -> CheckResult {
    let (mut handle, source) = match sys::name_to_handle_at("/tmp") {
        Ok(handle) => (handle, "the handle of /tmp"),
        Err(_) => {
            // A made-up handle: 8 bytes of type 1 (FILEID_INO32_GEN).
            let mut handle = vec![0u8; 16];
            handle[0..4].copy_from_slice(&8u32.to_ne_bytes());
            handle[4..8].copy_from_slice(&1i32.to_ne_bytes());
            (handle, "a made-up handle")
        }
    };
    let mount_fd = match fs::File::open("/tmp") {
        Ok(file) => file,
        Err(error) => return Ok(Finding::error(format!("open /tmp: {error}"))),
    };
    Ok(syscall_finding(
        sys::open_by_handle_at(mount_fd.as_fd(), &mut handle),
        &format!("open_by_handle_at({source})"),
        &[libc::ESTALE],
    ))
}

/// A new pseudo-terminal's slave, or stdin when it is not a terminal (never the caller's own
/// terminal: pushing input into it would be a real injection outside a sandbox).
fn terminal_target() -> Result<(fs::File, String), Finding> {
    let master = OpenOptions::new().read(true).write(true).open("/dev/ptmx");
    if let Ok(master) = master
        && let Ok(number) = sys::unlock_pty(master.as_fd())
    {
        let path = format!("/dev/pts/{number}");
        if let Ok(slave) = OpenOptions::new().read(true).write(true).open(&path) {
            // Keep the master open as long as the slave: leak it into the process.
            std::mem::forget(master);
            return Ok((slave, path));
        }
    }
    let stdin = std::io::stdin();
    if sys::isatty(stdin.as_fd()) {
        return Err(Finding::error(
            "no pty available and stdin is a terminal; refusing to inject into it",
        ));
    }
    let duplicate = stdin
        .as_fd()
        .try_clone_to_owned()
        .map_err(|error| Finding::error(format!("dup stdin: {error}")))?;
    Ok((fs::File::from(duplicate), "stdin (a pipe)".to_owned()))
}

fn tiocsti(_: &Args<'_>) -> CheckResult {
    let (terminal, name) = match terminal_target() {
        Ok(target) => target,
        Err(finding) => return Ok(finding),
    };
    Ok(syscall_finding(
        sys::ioctl_tiocsti(terminal.as_fd(), b'x'),
        &format!("ioctl({name}, TIOCSTI)"),
        &[],
    ))
}

fn tioclinux(_: &Args<'_>) -> CheckResult {
    let (terminal, name) = match terminal_target() {
        Ok(target) => target,
        Err(finding) => return Ok(finding),
    };
    Ok(syscall_finding(
        sys::ioctl_tioclinux(terminal.as_fd(), 6),
        &format!("ioctl({name}, TIOCLINUX)"),
        &[libc::ENOTTY, libc::EINVAL],
    ))
}

fn open_socket(
    domain: libc::c_int,
    kind: libc::c_int,
    protocol: libc::c_int,
    label: &str,
) -> Finding {
    match sys::socket(domain, kind, protocol) {
        Ok(fd) => Finding::escaped(format!("socket({label}) gave fd {}", fd.as_raw_fd())),
        Err(errno) => Finding::denied(errno, format!("socket({label}) refused")),
    }
}

fn socket(args: &Args<'_>) -> CheckResult {
    let number = |index: usize| -> Result<libc::c_int, Usage> {
        let text = args.required(index)?;
        text.parse().map_err(|_| args.usage())
    };
    let (domain, kind) = (number(0)?, number(1)?);
    let protocol = match args.optional(2) {
        Some(_) => number(2)?,
        None => 0,
    };
    Ok(open_socket(
        domain,
        kind,
        protocol,
        &format!("{domain}, {kind}, {protocol}"),
    ))
}

fn socket_vsock(_: &Args<'_>) -> CheckResult {
    Ok(open_socket(
        libc::AF_VSOCK,
        libc::SOCK_STREAM,
        0,
        "AF_VSOCK",
    ))
}

fn socket_packet(_: &Args<'_>) -> CheckResult {
    let protocol = libc::c_int::from((libc::ETH_P_ALL as u16).to_be());
    Ok(open_socket(
        libc::AF_PACKET,
        libc::SOCK_RAW,
        protocol,
        "AF_PACKET",
    ))
}

fn socket_netlink(_: &Args<'_>) -> CheckResult {
    Ok(open_socket(
        libc::AF_NETLINK,
        libc::SOCK_RAW,
        libc::NETLINK_ROUTE,
        "AF_NETLINK",
    ))
}

fn socket_bluetooth(_: &Args<'_>) -> CheckResult {
    const BTPROTO_RFCOMM: libc::c_int = 3;
    Ok(open_socket(
        libc::AF_BLUETOOTH,
        libc::SOCK_STREAM,
        BTPROTO_RFCOMM,
        "AF_BLUETOOTH",
    ))
}

fn socket_alg(_: &Args<'_>) -> CheckResult {
    Ok(open_socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0, "AF_ALG"))
}

fn socket_raw(_: &Args<'_>) -> CheckResult {
    Ok(open_socket(
        libc::AF_INET,
        libc::SOCK_RAW,
        libc::IPPROTO_ICMP,
        "AF_INET, SOCK_RAW",
    ))
}
