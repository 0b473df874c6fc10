//! The probe's only unsafe code: thin wrappers around the raw system calls the escape checks make.
//!
//! Every function here makes one call (or one fixed short sequence) and returns a `Result` with
//! the kernel's errno, so the checks themselves stay safe code. The arguments are chosen so that
//! a call the sandbox fails to refuse does no lasting harm: mount targets are directories the probe
//! created, pivot_root names paths that do not exist, keys go to the process keyring, and so on.
//! Each unsafe block says why it is sound.

#![allow(unsafe_code)] // The reason this module exists; see the crate doc.

use std::ffi::{CString, c_int, c_long, c_uint, c_ulong};
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::time::Duration;

/// An errno value from a failed call: what the checks report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The errno left by the call that just failed.
    fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The errno of a `std::io::Error`, or 0 when it carries none (a probe-side failure).
    pub fn of(error: &std::io::Error) -> Self {
        Errno(error.raw_os_error().unwrap_or(0))
    }
}

/// Result of a wrapped call.
pub type SysResult<T> = Result<T, Errno>;

/// Turns a C return value (negative on failure) into a result carrying errno.
fn check(ret: c_long) -> SysResult<c_long> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

/// Turns an `int` return value into a result carrying errno.
fn check_int(ret: c_int) -> SysResult<c_int> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

/// A path as a C string; an interior NUL (never produced by the checks) becomes EINVAL.
fn c_path(path: &str) -> SysResult<CString> {
    CString::new(path).map_err(|_| Errno(libc::EINVAL))
}

/// Takes ownership of a descriptor a call just returned.
fn owned(fd: c_long) -> SysResult<OwnedFd> {
    let fd = RawFd::try_from(fd).map_err(|_| Errno(libc::EBADF))?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Process id as the probe's own pid namespace sees it.
pub fn getpid() -> i32 {
    // SAFETY: getpid has no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// Parent process id.
pub fn getppid() -> i32 {
    // SAFETY: getppid has no arguments and cannot fail.
    unsafe { libc::getppid() }
}

/// Real, effective uid and real, effective gid.
pub fn ids() -> (u32, u32, u32, u32) {
    // SAFETY: these four calls have no arguments and cannot fail.
    unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    }
}

/// Supplementary groups.
pub fn groups() -> SysResult<Vec<u32>> {
    let mut list = vec![0 as libc::gid_t; 256];
    let len = c_int::try_from(list.len()).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: the buffer holds `len` gids and the kernel writes at most that many.
    let count = check_int(unsafe { libc::getgroups(len, list.as_mut_ptr()) })?;
    list.truncate(usize::try_from(count).unwrap_or(0));
    Ok(list)
}

/// setuid(uid).
pub fn setuid(uid: u32) -> SysResult<()> {
    // SAFETY: setuid takes a plain integer.
    check_int(unsafe { libc::setuid(uid) }).map(drop)
}

/// setgid(gid).
pub fn setgid(gid: u32) -> SysResult<()> {
    // SAFETY: setgid takes a plain integer.
    check_int(unsafe { libc::setgid(gid) }).map(drop)
}

/// setgroups([0]): join the root group.
pub fn setgroups_root() -> SysResult<()> {
    let list = [0 as libc::gid_t];
    // SAFETY: the pointer refers to one gid, as the length says.
    check_int(unsafe { libc::setgroups(1, list.as_ptr()) }).map(drop)
}

/// ptrace(request, pid, 0, 0): only requests without pointer arguments are made.
pub fn ptrace(request: c_uint, pid: i32) -> SysResult<c_long> {
    // SAFETY: addr and data are null; the requests used (TRACEME, ATTACH, DETACH) read neither.
    check(unsafe {
        libc::ptrace(
            request,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    })
}

/// process_vm_readv(pid): copies `len` bytes at `remote_address` of `pid` into a fresh buffer.
pub fn process_vm_readv(pid: i32, remote_address: usize, len: usize) -> SysResult<Vec<u8>> {
    let mut buffer = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    let remote = libc::iovec {
        iov_base: remote_address as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: the local iovec describes our own buffer of exactly `len` bytes; the remote one is
    // only read by the kernel, which validates it against the target's address space.
    let read = check(unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) } as c_long)?;
    buffer.truncate(usize::try_from(read).unwrap_or(0));
    Ok(buffer)
}

/// The address of a static buffer, for process_vm_readv on the probe itself.
pub fn own_marker_address() -> (usize, usize) {
    static MARKER: [u8; 16] = *b"mcp-probe-marker";
    (MARKER.as_ptr() as usize, MARKER.len())
}

/// keyctl(KEYCTL_GET_KEYRING_ID, keyring, create = 0).
pub fn keyctl_get_keyring_id(keyring: i32) -> SysResult<c_long> {
    const KEYCTL_GET_KEYRING_ID: c_long = 0;
    // SAFETY: all three arguments are integers.
    check(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            keyring as c_long,
            0,
        )
    })
}

/// add_key("user", description, payload, keyring).
pub fn add_key(description: &str, payload: &[u8], keyring: i32) -> SysResult<c_long> {
    let kind = c_path("user")?;
    let description = c_path(description)?;
    // SAFETY: both strings are NUL-terminated and live across the call; the payload pointer and
    // length describe one slice.
    check(unsafe {
        libc::syscall(
            libc::SYS_add_key,
            kind.as_ptr(),
            description.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            keyring as c_long,
        )
    })
}

/// mount(source, target, fstype, flags, NULL).
pub fn mount(source: &str, target: &str, fstype: &str, flags: c_ulong) -> SysResult<()> {
    let (source, target, fstype) = (c_path(source)?, c_path(target)?, c_path(fstype)?);
    // SAFETY: three NUL-terminated strings that live across the call; no data argument.
    check_int(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// umount2(target, flags).
pub fn umount2(target: &str, flags: c_int) -> SysResult<()> {
    let target = c_path(target)?;
    // SAFETY: one NUL-terminated string that lives across the call.
    check_int(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// fsopen(fstype, FSOPEN_CLOEXEC).
pub fn fsopen(fstype: &str) -> SysResult<OwnedFd> {
    const FSOPEN_CLOEXEC: c_uint = 1;
    let fstype = c_path(fstype)?;
    // SAFETY: one NUL-terminated string that lives across the call.
    owned(check(unsafe {
        libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC)
    })?)
}

/// fspick(AT_FDCWD, path, FSPICK_CLOEXEC).
pub fn fspick(path: &str) -> SysResult<OwnedFd> {
    const FSPICK_CLOEXEC: c_uint = 1;
    let path = c_path(path)?;
    // SAFETY: one NUL-terminated string that lives across the call.
    owned(check(unsafe {
        libc::syscall(
            libc::SYS_fspick,
            libc::AT_FDCWD,
            path.as_ptr(),
            FSPICK_CLOEXEC,
        )
    })?)
}

/// fsmount(fs_fd, FSMOUNT_CLOEXEC, 0).
pub fn fsmount(fs_fd: RawFd) -> SysResult<OwnedFd> {
    const FSMOUNT_CLOEXEC: c_uint = 1;
    // SAFETY: integer arguments only; a bad descriptor is the kernel's to refuse.
    owned(check(unsafe {
        libc::syscall(libc::SYS_fsmount, fs_fd, FSMOUNT_CLOEXEC, 0)
    })?)
}

/// open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC).
pub fn open_tree_clone(path: &str) -> SysResult<OwnedFd> {
    const OPEN_TREE_CLONE: c_uint = 1;
    let path = c_path(path)?;
    // SAFETY: one NUL-terminated string that lives across the call.
    owned(check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as c_uint,
        )
    })?)
}

/// move_mount(AT_FDCWD, from, AT_FDCWD, to, 0).
pub fn move_mount(from: &str, to: &str) -> SysResult<()> {
    let (from, to) = (c_path(from)?, c_path(to)?);
    // SAFETY: two NUL-terminated strings that live across the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// pivot_root(new_root, put_old).
pub fn pivot_root(new_root: &str, put_old: &str) -> SysResult<()> {
    let (new_root, put_old) = (c_path(new_root)?, c_path(put_old)?);
    // SAFETY: two NUL-terminated strings that live across the call.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

/// chroot(path).
pub fn chroot(path: &str) -> SysResult<()> {
    let path = c_path(path)?;
    // SAFETY: one NUL-terminated string that lives across the call.
    check_int(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

/// unshare(flags).
pub fn unshare(flags: c_int) -> SysResult<()> {
    // SAFETY: an integer argument; the probe is single-threaded, so a new namespace affects
    // only this short-lived process.
    check_int(unsafe { libc::unshare(flags) }).map(drop)
}

/// setns(fd, nstype).
pub fn setns(fd: BorrowedFd<'_>, nstype: c_int) -> SysResult<()> {
    // SAFETY: the descriptor is borrowed and open for the duration of the call.
    check_int(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// clone(flags | SIGCHLD) through the raw system call; a child, if one is made, exits at once.
/// Returns the child's pid after reaping it.
pub fn clone_and_reap(flags: c_ulong) -> SysResult<i32> {
    // SAFETY: without CLONE_VM the child gets a copy of this single-threaded process, like
    // fork(); it calls only `_exit`, which is async-signal-safe. The stack argument is null,
    // which means "the same stack pointer, in the copy".
    let pid = check(unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
            0,
        )
    })?;
    if pid == 0 {
        exit_now(0);
    }
    let pid = i32::try_from(pid).unwrap_or(-1);
    wait_for(pid).map(|_| pid)
}

/// clone3 with `flags` and exit signal SIGCHLD; a child, if one is made, exits at once.
pub fn clone3_and_reap(flags: u64) -> SysResult<i32> {
    // struct clone_args, version 0: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
    // stack_size, tls.
    let mut args = [0u64; 8];
    args[0] = flags;
    args[4] = libc::SIGCHLD as u64;
    // SAFETY: `args` is a valid clone_args of the size passed; without CLONE_VM the child is a
    // copy of this single-threaded process and calls only `_exit`.
    let pid = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_mut_ptr(),
            std::mem::size_of_val(&args),
        )
    })?;
    if pid == 0 {
        exit_now(0);
    }
    let pid = i32::try_from(pid).unwrap_or(-1);
    wait_for(pid).map(|_| pid)
}

/// bpf(BPF_MAP_CREATE) of a one-entry array map.
pub fn bpf_map_create() -> SysResult<OwnedFd> {
    const BPF_MAP_CREATE: c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    // union bpf_attr for MAP_CREATE starts with map_type, key_size, value_size, max_entries;
    // the rest stays zero.
    let mut attr = [0u32; 32];
    attr[0] = BPF_MAP_TYPE_ARRAY;
    attr[1] = 4;
    attr[2] = 4;
    attr[3] = 1;
    // SAFETY: `attr` is a zeroed bpf_attr of the size passed.
    owned(check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    })?)
}

/// perf_event_open of a user-space-only software CPU clock on the probe itself.
pub fn perf_event_open_self() -> SysResult<OwnedFd> {
    const PERF_FLAG_FD_CLOEXEC: c_ulong = 8;
    // struct perf_event_attr (136 bytes, version 8): type, size, config, ..., flag bits at 40.
    let mut attr = [0u8; 136];
    let size = u32::try_from(attr.len()).unwrap_or(0);
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&size.to_ne_bytes());
    // config 0 = PERF_COUNT_SW_CPU_CLOCK; flags: disabled, exclude_kernel, exclude_hv, so that
    // an unfiltered kernel would allow it at perf_event_paranoid 2.
    let flags: u64 = 1 | (1 << 5) | (1 << 6);
    attr[40..48].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: `attr` is a perf_event_attr whose size field matches its length.
    owned(check(unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_mut_ptr(),
            0,
            -1,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    })?)
}

/// userfaultfd(UFFD_USER_MODE_ONLY | O_CLOEXEC): allowed to unprivileged users by an unfiltered
/// kernel, so a refusal shows the filter.
pub fn userfaultfd() -> SysResult<OwnedFd> {
    const UFFD_USER_MODE_ONLY: c_int = 1;
    // SAFETY: an integer argument.
    owned(check(unsafe {
        libc::syscall(libc::SYS_userfaultfd, UFFD_USER_MODE_ONLY | libc::O_CLOEXEC)
    })?)
}

/// io_uring_setup(entries, zeroed params).
pub fn io_uring_setup(entries: u32) -> SysResult<OwnedFd> {
    // struct io_uring_params is 120 bytes; zero asks for defaults.
    let mut params = [0u8; 120];
    // SAFETY: `params` is a zeroed io_uring_params the kernel may write into.
    owned(check(unsafe {
        libc::syscall(libc::SYS_io_uring_setup, entries, params.as_mut_ptr())
    })?)
}

/// name_to_handle_at(AT_FDCWD, path): the file handle's bytes (header included).
pub fn name_to_handle_at(path: &str) -> SysResult<Vec<u8>> {
    const MAX_HANDLE_SZ: u32 = 128;
    let path = c_path(path)?;
    // struct file_handle: handle_bytes (u32), handle_type (i32), f_handle[handle_bytes].
    let mut handle = vec![0u8; 8 + MAX_HANDLE_SZ as usize];
    handle[0..4].copy_from_slice(&MAX_HANDLE_SZ.to_ne_bytes());
    let mut mount_id: c_int = 0;
    // SAFETY: `handle` has room for the header plus MAX_HANDLE_SZ bytes, as its header says;
    // `mount_id` is a valid int to write.
    check(unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            path.as_ptr(),
            handle.as_mut_ptr(),
            &mut mount_id as *mut c_int,
            0,
        )
    })?;
    Ok(handle)
}

/// open_by_handle_at(mount_fd, handle, O_RDONLY).
pub fn open_by_handle_at(mount_fd: BorrowedFd<'_>, handle: &mut [u8]) -> SysResult<OwnedFd> {
    // The header's handle_bytes must not claim more than the buffer holds.
    let room = u32::try_from(handle.len().saturating_sub(8)).unwrap_or(0);
    let claimed = handle
        .get(0..4)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0);
    if handle.len() < 8 || claimed > room {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: `handle` is a file_handle whose handle_bytes fits inside the buffer (checked above);
    // the descriptor is borrowed for the call.
    owned(check(unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd.as_raw_fd(),
            handle.as_mut_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    })?)
}

/// ioctl(fd, TIOCSTI, &byte): push one byte into a terminal's input queue.
pub fn ioctl_tiocsti(fd: BorrowedFd<'_>, byte: u8) -> SysResult<()> {
    let byte = byte as libc::c_char;
    // SAFETY: TIOCSTI reads one char through the pointer, which refers to a live local.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSTI, &byte as *const libc::c_char) })
        .map(drop)
}

/// ioctl(fd, TIOCLINUX, &subcode): a virtual console request (6 = TIOCL_GETSHIFTSTATE, harmless).
pub fn ioctl_tioclinux(fd: BorrowedFd<'_>, subcode: u8) -> SysResult<()> {
    let mut argument = [subcode, 0u8, 0, 0, 0, 0, 0, 0];
    // SAFETY: TIOCLINUX reads the subcode byte and may write a few bytes back into the buffer,
    // which is larger than any reply of the subcode used.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCLINUX, argument.as_mut_ptr()) })
        .map(drop)
}

/// Unlocks a pseudo-terminal master and returns its slave's number (TIOCSPTLCK, TIOCGPTN).
pub fn unlock_pty(master: BorrowedFd<'_>) -> SysResult<u32> {
    let unlock: c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which refers to a live local.
    check_int(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCSPTLCK,
            &unlock as *const c_int,
        )
    })?;
    let mut number: c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, which refers to a live local.
    check_int(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTN,
            &mut number as *mut c_uint,
        )
    })?;
    Ok(number)
}

/// Whether a descriptor is a terminal.
pub fn isatty(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: the descriptor is borrowed and open for the call.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// socket(domain, kind | SOCK_CLOEXEC, protocol).
pub fn socket(domain: c_int, kind: c_int, protocol: c_int) -> SysResult<OwnedFd> {
    // SAFETY: integer arguments only.
    owned(c_long::from(check_int(unsafe {
        libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol)
    })?))
}

/// mknod(path, mode, makedev(major, minor)).
pub fn mknod(path: &str, mode: u32, major: u32, minor: u32) -> SysResult<()> {
    let path = c_path(path)?;
    let device = libc::makedev(major, minor);
    // SAFETY: one NUL-terminated string that lives across the call.
    check_int(unsafe { libc::mknod(path.as_ptr(), mode, device) }).map(drop)
}

/// kill(pid, signal).
pub fn kill(pid: i32, signal: c_int) -> SysResult<()> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Which side of a fork this is.
pub enum Forked {
    /// The original process, with the child's pid.
    Parent(i32),
    /// The new process.
    Child,
}

/// fork(). The probe never starts threads before a check that forks, so the child is a whole copy.
pub fn fork() -> SysResult<Forked> {
    // SAFETY: the probe is single-threaded when it forks (checks that fork start no threads), so
    // the child may run ordinary code.
    let pid = check_int(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// setsid().
pub fn setsid() -> SysResult<i32> {
    // SAFETY: no arguments.
    check_int(unsafe { libc::setsid() })
}

/// _exit(code): leave at once, without running destructors or flushing (used by children).
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// waitpid(pid, 0): the raw wait status.
pub fn wait_for(pid: i32) -> SysResult<c_int> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a valid int to write.
        match check_int(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Ok(_) => return Ok(status),
            Err(Errno(libc::EINTR)) => continue,
            Err(errno) => return Err(errno),
        }
    }
}

/// prctl(PR_SET_PDEATHSIG, signal): this process gets `signal` when its parent exits.
pub fn set_parent_death_signal(signal: c_int) -> SysResult<()> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as c_ulong, 0, 0, 0) }).map(drop)
}

/// Sets a signal to be ignored (SIG_IGN).
pub fn ignore_signal(signal: c_int) -> SysResult<()> {
    // SAFETY: installing SIG_IGN runs no code of ours in signal context.
    let previous = unsafe { libc::signal(signal, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// getrlimit(resource): (soft, hard); `None` stands for RLIM_INFINITY.
pub fn getrlimit(resource: libc::__rlimit_resource_t) -> SysResult<(Option<u64>, Option<u64>)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to write.
    check_int(unsafe { libc::getrlimit(resource, &mut limit) })?;
    let finite = |value: libc::rlim_t| (value != libc::RLIM_INFINITY).then_some(value);
    Ok((finite(limit.rlim_cur), finite(limit.rlim_max)))
}

/// CPU time (user plus system) the probe has used so far, all threads included.
pub fn cpu_time() -> Duration {
    // SAFETY: rusage is plain old data; zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to write.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let micros = |time: libc::timeval| {
        u64::try_from(time.tv_sec).unwrap_or(0) * 1_000_000
            + u64::try_from(time.tv_usec).unwrap_or(0)
    };
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// fcntl(fd, F_GETPIPE_SZ): a pipe's capacity in bytes.
pub fn pipe_capacity(fd: BorrowedFd<'_>) -> SysResult<usize> {
    // SAFETY: F_GETPIPE_SZ takes no argument.
    let size = check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) })?;
    Ok(usize::try_from(size).unwrap_or(0))
}

/// dup2(from, to): used by the daemon to point its standard streams at /dev/null.
pub fn dup2(from: BorrowedFd<'_>, to: RawFd) -> SysResult<()> {
    // SAFETY: `from` is open for the call; `to` is a standard stream number the caller replaces.
    check_int(unsafe { libc::dup2(from.as_raw_fd(), to) }).map(drop)
}

/// if_nametoindex(name): an interface's index, for IPv6 scope ids.
pub fn interface_index(name: &str) -> SysResult<u32> {
    let name = c_path(name)?;
    // SAFETY: one NUL-terminated string that lives across the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(Errno::last())
    } else {
        Ok(index)
    }
}

/// Restores a signal's default action (SIG_DFL).
pub fn default_signal(signal: c_int) -> SysResult<()> {
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    let previous = unsafe { libc::signal(signal, libc::SIG_DFL) };
    if previous == libc::SIG_ERR {
        Err(Errno::last())
    } else {
        Ok(())
    }
}
