//! Security decision: the seccomp filter every sandboxed program runs under (S3, S4).
//!
//! The filter allows by default and refuses, with `EPERM`, the syscalls a stdio MCP server has no
//! business making: other processes' memory, kernel keyrings, mounts, namespaces, BPF, perf,
//! io_uring, module and kexec loading, and socket families other than UNIX, INET and INET6. It is
//! a second wall behind the namespaces, dropped capabilities and `--disable-userns` of bubblewrap:
//! most of these calls would fail anyway, and the filter makes sure they fail before reaching
//! kernel code that has a history of bugs.
//!
//! Bubblewrap loads the program through `--add-seccomp-fd`, so this module only compiles it;
//! nothing here installs a filter in the gateway itself.
//!
//! Decisions worth knowing:
//! - `clone3` answers `ENOSYS` rather than `EPERM`: its flags live behind a pointer the filter
//!   cannot read, and `ENOSYS` is what makes glibc (threads, `posix_spawn`) fall back to `clone`,
//!   whose flags the filter does check.
//! - `AF_NETLINK` is refused. glibc's `getaddrinfo` only uses it for `AI_ADDRCONFIG` and, when
//!   the socket is refused, assumes both IPv4 and IPv6 are present, which is harmless in a
//!   loopback-only network namespace; what breaks is interface listing (`getifaddrs`, Node's
//!   `os.networkInterfaces()`), which a server has no reason to need. Netlink is a large kernel
//!   attack surface and the design names UNIX, INET and INET6 as the only families.
//! - On x86_64 every syscall number with the x32 bit set answers `ENOSYS`: x32 calls share the
//!   x86_64 audit architecture but have their own numbers, so a filter keyed on x86_64 numbers
//!   would not see an x32 `ptrace`.
//! - A foreign architecture (a 32-bit `int 0x80` call on x86_64) kills the process, because its
//!   syscall numbers mean different things.
//! - Arguments the kernel reads as `int` (socket domain, ioctl request) are compared on their low
//!   32 bits, so garbage in the upper half cannot slip a value past the filter.
//!
//! Deliberately left out: an allow-list. Servers run arbitrary runtimes (Node, Python, Go
//! binaries), and a deny-list of dangerous calls is what bubblewrap-based sandboxes such as
//! Flatpak ship with.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

#[cfg(test)]
mod tests;

/// Why the seccomp program could not be built; any of these is a bug in this module, not in the
/// caller's input, so the launcher should refuse to start the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The gateway was built for an architecture this filter has no syscall table for.
    #[error(
        "the seccomp filter supports x86_64 and aarch64 only, this build is for {arch}; run the gateway on a supported architecture"
    )]
    UnsupportedArchitecture {
        /// The architecture the gateway was built for.
        arch: &'static str,
    },
    /// seccompiler refused the rules.
    #[error("cannot compile the seccomp filter: {0}")]
    Compile(#[from] seccompiler::BackendError),
}

/// Syscalls refused outright with `EPERM`, by name, for the escape tests and the documentation.
pub const DENIED_SYSCALLS: &[&str] = &DENIED_SYSCALL_NAMES;

/// Syscalls refused only for some arguments (see the module documentation): `clone` with a
/// namespace flag, `clone3` always with `ENOSYS`, `ioctl` with `TIOCSTI` or `TIOCLINUX`, and
/// `socket`/`socketpair` outside UNIX, INET and INET6.
pub const CONDITIONALLY_DENIED_SYSCALLS: &[&str] =
    &["clone", "clone3", "ioctl", "socket", "socketpair"];

/// Socket families a sandboxed program may create, for the escape tests.
pub const ALLOWED_SOCKET_FAMILIES: &[i32] = &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6];

/// The compiled filter as bubblewrap reads it from `--add-seccomp-fd`: the `sock_filter` array,
/// 8 bytes per instruction in native byte order, for the architecture the gateway runs on.
pub fn filter_program() -> Result<Vec<u8>, SeccompError> {
    let instructions = filter_instructions()?;
    let mut bytes = Vec::with_capacity(instructions.len() * 8);
    for instruction in &instructions {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    Ok(bytes)
}

/// Each entry pairs the name (for people) with the number for this architecture (for the kernel).
const DENIED: &[(&str, libc::c_long)] = &[
    // Other processes' memory and file descriptors.
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("process_madvise", libc::SYS_process_madvise),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("kcmp", libc::SYS_kcmp),
    // Kernel keyrings are shared across the whole uid, not scoped to the sandbox.
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    // The mount family, old and new API.
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    // New namespaces would undo bubblewrap's; `clone` and `clone3` are handled by argument.
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    // Kernel attack surface with a long record of privilege escalations.
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    // File handles bypass path-based checks (the "shocker" escape).
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    // Host administration.
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("acct", libc::SYS_acct),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("quotactl", libc::SYS_quotactl),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
];

const DENIED_SYSCALL_NAMES: [&str; DENIED.len()] = {
    let mut names = [""; DENIED.len()];
    let mut index = 0;
    while index < DENIED.len() {
        names[index] = DENIED[index].0;
        index += 1;
    }
    names
};

/// Every namespace a `clone` flag can create; `CLONE_NEWTIME` shares its bit with the exit
/// signal byte of `clone`, but no valid signal uses that bit, so refusing it costs nothing.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWTIME,
];

/// `TIOCSTI` pushes bytes into a terminal's input (typing commands into the operator's shell);
/// `TIOCLINUX` can do the same through the console selection.
const DENIED_IOCTLS: &[libc::c_ulong] = &[libc::TIOCSTI as libc::c_ulong, libc::TIOCLINUX];

// Classic BPF opcodes and seccomp constants from linux/filter.h, linux/seccomp.h and
// linux/audit.h, for the few instructions written by hand in front of seccompiler's program.
// BPF_LD | BPF_W | BPF_ABS, where BPF_LD and BPF_W are zero.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
#[cfg(target_arch = "x86_64")]
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_DATA_NR_OFFSET: u32 = 0;
const SECCOMP_DATA_ARCH_OFFSET: u32 = 4;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
const NATIVE: (TargetArch, u32) = (TargetArch::x86_64, 0xC000_003E);
#[cfg(target_arch = "aarch64")]
const NATIVE: (TargetArch, u32) = (TargetArch::aarch64, 0xC000_00B7);

/// The program as instructions: a hand-written prologue (architecture check, x32 guard,
/// `clone3` → `ENOSYS`) followed by seccompiler's compilation of the `EPERM` rules.
///
/// A prologue rather than a second seccompiler filter because one seccompiler filter has a
/// single match action, and `clone3` needs a different errno from everything else.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn filter_instructions() -> Result<BpfProgram, SeccompError> {
    let (target_arch, audit_arch) = NATIVE;
    let mut program = vec![
        statement(BPF_LD_W_ABS, SECCOMP_DATA_ARCH_OFFSET),
        jump(BPF_JMP_JEQ_K, audit_arch, 1, 0),
        statement(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        statement(BPF_LD_W_ABS, SECCOMP_DATA_NR_OFFSET),
    ];
    #[cfg(target_arch = "x86_64")]
    program.extend([
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1),
        statement(BPF_RET_K, SECCOMP_RET_ERRNO | errno(libc::ENOSYS)),
    ]);
    program.extend([
        jump(BPF_JMP_JEQ_K, syscall_number(libc::SYS_clone3), 0, 1),
        statement(BPF_RET_K, SECCOMP_RET_ERRNO | errno(libc::ENOSYS)),
    ]);

    let filter = SeccompFilter::new(
        eperm_rules()?,
        SeccompAction::Allow,
        SeccompAction::Errno(errno(libc::EPERM)),
        target_arch,
    )?;
    program.extend(BpfProgram::try_from(filter)?);
    Ok(program)
}

/// Other architectures get an error rather than a build failure, so the rest of the gateway
/// (remote upstreams, the dashboard) still builds and runs there without sandboxes.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn filter_instructions() -> Result<BpfProgram, SeccompError> {
    Err(SeccompError::UnsupportedArchitecture {
        arch: std::env::consts::ARCH,
    })
}

fn eperm_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED
        .iter()
        .map(|&(_, number)| (number, Vec::new()))
        .collect();

    // Rules of one syscall are alternatives: any namespace bit set refuses the call.
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let bit = u64::from(flag.unsigned_abs());
            single_condition(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(bit), bit)
        })
        .collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);

    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|&request| single_condition(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, request))
        .collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);

    // Conditions of one rule must all hold: the domain differs from every allowed family.
    for syscall in [libc::SYS_socket, libc::SYS_socketpair] {
        let conditions = ALLOWED_SOCKET_FAMILIES
            .iter()
            .map(|&family| {
                SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Ne,
                    u64::from(family.unsigned_abs()),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.insert(syscall, vec![SeccompRule::new(conditions)?]);
    }
    Ok(rules)
}

fn single_condition(
    argument: u8,
    length: SeccompCmpArgLen,
    operator: SeccompCmpOp,
    value: u64,
) -> Result<SeccompRule, seccompiler::BackendError> {
    SeccompRule::new(vec![SeccompCondition::new(
        argument, length, operator, value,
    )?])
}

fn statement(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Errno values are small positive constants; the seccomp return data field is 16 bits.
fn errno(value: libc::c_int) -> u32 {
    value.unsigned_abs() & 0xFFFF
}

/// Syscall numbers are small non-negative constants of the target's syscall table.
fn syscall_number(value: libc::c_long) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}
