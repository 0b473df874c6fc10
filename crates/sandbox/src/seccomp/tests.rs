//! Tests of the seccomp filter: a small classic-BPF interpreter runs the compiled program on
//! made-up syscalls (every architecture-independent decision, without a kernel), then bubblewrap
//! loads the real program and real programs run under it.

use std::process::Command;

use super::*;
use crate::test_support::{
    bwrap, bwrap_requirement, describe, live_check_possible, probe_request, single_test_args,
    test_binary, text,
};

const ALLOW: u32 = 0x7FFF_0000;
const EPERM: u32 = SECCOMP_RET_ERRNO | 1;
const ENOSYS: u32 = SECCOMP_RET_ERRNO | 38;

/// What the kernel hands a seccomp program: `struct seccomp_data`.
struct Call {
    number: i64,
    arch: u32,
    args: [u64; 6],
}

impl Call {
    fn new(number: libc::c_long, args: &[u64]) -> Call {
        let mut all = [0_u64; 6];
        all[..args.len()].copy_from_slice(args);
        Call {
            number,
            arch: NATIVE.1,
            args: all,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(64);
        // The kernel stores the number as an int; its low 32 bits are what BPF sees.
        data.extend_from_slice(&(self.number as u32).to_ne_bytes());
        data.extend_from_slice(&self.arch.to_ne_bytes());
        data.extend_from_slice(&0_u64.to_ne_bytes());
        for argument in self.args {
            data.extend_from_slice(&argument.to_ne_bytes());
        }
        data
    }
}

/// Runs the program the way the kernel does, for the opcodes seccompiler and the prologue emit;
/// any other opcode fails the test so a new construct cannot go unchecked.
fn run(program: &[sock_filter], call: &Call) -> u32 {
    let data = call.bytes();
    let mut accumulator: u32 = 0;
    let mut pc = 0_usize;
    loop {
        let instruction = &program[pc];
        let k = instruction.k;
        pc += 1;
        match instruction.code {
            0x20 => {
                let offset = k as usize;
                accumulator = u32::from_ne_bytes(data[offset..offset + 4].try_into().unwrap());
            }
            0x54 => accumulator &= k,
            0x05 => pc += k as usize,
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match instruction.code {
                    0x15 => accumulator == k,
                    0x25 => accumulator > k,
                    0x35 => accumulator >= k,
                    _ => accumulator & k != 0,
                };
                pc += usize::from(if taken {
                    instruction.jt
                } else {
                    instruction.jf
                });
            }
            0x06 => return k,
            other => panic!("unexpected BPF opcode {other:#x} at {}", pc - 1),
        }
    }
}

fn check(call: Call, expected: u32) {
    let program = filter_instructions().unwrap();
    let got = run(&program, &call);
    assert_eq!(
        got, expected,
        "syscall {} with args {:x?}: got {got:#x}, expected {expected:#x}",
        call.number, call.args
    );
}

fn flag(value: libc::c_int) -> u64 {
    u64::from(value.unsigned_abs())
}

#[test]
fn program_is_whole_instructions_within_the_kernel_limit() {
    let program = filter_program().unwrap();
    assert!(!program.is_empty());
    assert_eq!(program.len() % 8, 0);
    assert!(
        program.len() / 8 <= 4096,
        "{} instructions",
        program.len() / 8
    );
}

#[test]
fn every_denied_syscall_gets_eperm() {
    for &(name, number) in DENIED {
        let program = filter_instructions().unwrap();
        assert_eq!(run(&program, &Call::new(number, &[])), EPERM, "{name}");
    }
    assert_eq!(DENIED_SYSCALLS.len(), DENIED.len());
    let mut names = DENIED_SYSCALLS.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(
        names.len(),
        DENIED_SYSCALLS.len(),
        "a syscall is listed twice"
    );
}

#[test]
fn ordinary_syscalls_are_allowed() {
    check(Call::new(libc::SYS_read, &[0, 0, 10]), ALLOW);
    check(Call::new(libc::SYS_write, &[1, 0, 10]), ALLOW);
    check(Call::new(libc::SYS_openat, &[0, 0, 0]), ALLOW);
    check(Call::new(libc::SYS_execve, &[]), ALLOW);
    check(Call::new(libc::SYS_ioctl, &[0, 0x5401]), ALLOW); // TCGETS
}

#[test]
fn clone_is_refused_with_any_namespace_flag_only() {
    let thread_flags = flag(libc::CLONE_VM)
        | flag(libc::CLONE_FS)
        | flag(libc::CLONE_FILES)
        | flag(libc::CLONE_SIGHAND)
        | flag(libc::CLONE_THREAD)
        | flag(libc::CLONE_SYSVSEM)
        | flag(libc::CLONE_SETTLS)
        | flag(libc::CLONE_PARENT_SETTID)
        | flag(libc::CLONE_CHILD_CLEARTID);
    check(Call::new(libc::SYS_clone, &[thread_flags]), ALLOW);
    check(Call::new(libc::SYS_clone, &[flag(libc::SIGCHLD)]), ALLOW);
    for &namespace in NAMESPACE_FLAGS {
        check(Call::new(libc::SYS_clone, &[flag(namespace)]), EPERM);
        check(
            Call::new(
                libc::SYS_clone,
                &[flag(namespace) | flag(libc::SIGCHLD) | 0xFFFF_FFFF_0000_0000],
            ),
            EPERM,
        );
    }
}

#[test]
fn clone3_answers_enosys_so_libc_falls_back_to_clone() {
    check(Call::new(libc::SYS_clone3, &[0, 88]), ENOSYS);
}

#[test]
fn terminal_injection_ioctls_are_refused_whatever_the_upper_bits() {
    for request in DENIED_IOCTLS {
        check(Call::new(libc::SYS_ioctl, &[0, *request]), EPERM);
        check(
            Call::new(libc::SYS_ioctl, &[0, *request | 0xDEAD_0000_0000_0000]),
            EPERM,
        );
    }
}

#[test]
fn only_unix_and_internet_sockets_can_be_created() {
    for syscall in [libc::SYS_socket, libc::SYS_socketpair] {
        for &family in ALLOWED_SOCKET_FAMILIES {
            check(Call::new(syscall, &[flag(family), 1, 0]), ALLOW);
        }
        for family in [
            libc::AF_VSOCK,
            libc::AF_NETLINK,
            libc::AF_PACKET,
            libc::AF_BLUETOOTH,
            libc::AF_ALG,
            libc::AF_UNSPEC,
        ] {
            check(Call::new(syscall, &[flag(family), 1, 0]), EPERM);
            check(
                Call::new(syscall, &[flag(family) | 0x1_0000_0000, 1, 0]),
                EPERM,
            );
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_syscalls_answer_enosys() {
    // 521 is ptrace in the x32 table.
    check(Call::new(0x4000_0000 + 521, &[]), ENOSYS);
    check(Call::new(0x4000_0000 + libc::SYS_read, &[]), ENOSYS);
}

#[test]
fn a_foreign_architecture_kills_the_process() {
    let mut call = Call::new(libc::SYS_read, &[]);
    call.arch = 0x4000_0003; // AUDIT_ARCH_I386
    check(call, SECCOMP_RET_KILL_PROCESS);
}

// Live checks: bubblewrap loads the program and real programs run under it.

#[test]
fn bubblewrap_loads_the_filter_and_it_refuses_unshare() {
    if !live_check_possible("the seccomp bubblewrap check", bwrap_requirement()) {
        return;
    }
    let ordinary = bwrap(true, &["sh", "-c", "echo ok"]);
    assert!(ordinary.status.success(), "{}", describe(&ordinary));
    assert_eq!(text(&ordinary.stdout), "ok\n");
    let true_program = bwrap(true, &["true"]);
    assert!(true_program.status.success(), "{}", describe(&true_program));

    let filtered = bwrap(true, &["unshare", "-U", "true"]);
    assert!(!filtered.status.success(), "{}", describe(&filtered));
    assert!(
        text(&filtered.stderr).contains("Operation not permitted"),
        "{}",
        describe(&filtered)
    );
    // Without the filter unshare fails too (--disable-userns), but differently: the EPERM above
    // is the filter's.
    let unfiltered = bwrap(false, &["unshare", "-U", "true"]);
    assert!(
        !text(&unfiltered.stderr).contains("Operation not permitted"),
        "{}",
        describe(&unfiltered)
    );
}

#[test]
fn under_the_filter_threads_and_processes_work_and_foreign_sockets_fail() {
    if !live_check_possible("the seccomp probe", bwrap_requirement()) {
        return;
    }
    let binary = test_binary().to_string_lossy().into_owned();
    let mut command = vec![
        "env",
        "MCP_HERO_SANDBOX_TEST_PROBE=seccomp",
        binary.as_str(),
    ];
    let probe_args = single_test_args("seccomp::tests::probe_under_the_filter");
    command.extend(probe_args.iter().map(String::as_str));
    let output = bwrap(true, &command);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stdout).contains("seccomp probe: all checks passed"),
        "{}",
        describe(&output)
    );
}

/// Not a test on its own: the body of the check above, run inside bubblewrap under the filter.
#[test]
fn probe_under_the_filter() {
    if probe_request().as_deref() != Some("seccomp") {
        return;
    }
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socket, socketpair};

    // libtest already started this test on a thread, and Rust's process spawning goes through
    // posix_spawn: both use clone3 first in recent glibc, so these prove the ENOSYS fallback.
    let thread = std::thread::spawn(|| 42);
    assert_eq!(thread.join().unwrap(), 42);
    let status = Command::new("true").status().unwrap();
    assert!(status.success());

    for family in [AddressFamily::UNIX, AddressFamily::INET] {
        socket(family, SocketType::STREAM, None).unwrap();
    }
    socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::empty(),
        None,
    )
    .unwrap();
    for family in [
        AddressFamily::VSOCK,
        AddressFamily::NETLINK,
        AddressFamily::PACKET,
    ] {
        let refused = socket(family, SocketType::DGRAM, None).unwrap_err();
        assert_eq!(refused, rustix::io::Errno::PERM, "{family:?}");
        let refused =
            socketpair(family, SocketType::DGRAM, SocketFlags::empty(), None).unwrap_err();
        assert_eq!(refused, rustix::io::Errno::PERM, "{family:?}");
    }
    println!("seccomp probe: all checks passed");
}
