//! Resource checks (S4): memory, processes, CPU, tmpfs space, output, descriptors, file size.
//!
//! Each runs until the sandbox stops it (a failed call, reported as `denied` with its errno, or
//! the probe being killed, which prints nothing) or until its optional cap is reached, reported
//! as `escaped`. Tests always pass a cap, so a missing limit fails the test instead of the host.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::time::{Duration, Instant};

use super::{Args, Check, CheckResult, scratch_path};
use crate::report::Finding;
use crate::sys::{self, Errno, Forked};

/// The resource checks.
pub const CHECKS: &[Check] = &[
    Check {
        name: "memory-bomb",
        arguments: "[max-mib]",
        summary: "allocate and touch 16 MiB blocks until killed or refused; escaped at max",
        run: memory_bomb,
    },
    Check {
        name: "fork-bomb",
        arguments: "[max]",
        summary: "fork sleeping children until fork fails (EAGAIN) and report the count; escaped at max",
        run: fork_bomb,
    },
    Check {
        name: "cpu-spin",
        arguments: "[seconds] [threads=1]",
        summary: "spin forever, or for seconds and report CPU time against wall time",
        run: cpu_spin,
    },
    Check {
        name: "fill-tmp",
        arguments: "[dir=/tmp] [max-bytes]",
        summary: "write files until ENOSPC and report the bytes; escaped at max",
        run: fill_tmp,
    },
    Check {
        name: "stdout-flood",
        arguments: "[max-bytes]",
        summary: "write to stdout without a newline until it fails; escaped at max",
        run: stdout_flood,
    },
    Check {
        name: "stderr-flood",
        arguments: "[max-bytes]",
        summary: "write to stderr without a newline until it fails; escaped at max",
        run: stderr_flood,
    },
    Check {
        name: "fd-exhaust",
        arguments: "[max]",
        summary: "open descriptors until EMFILE and report the count; escaped at max",
        run: fd_exhaust,
    },
    Check {
        name: "file-size",
        arguments: "[bytes=1g]",
        summary: "write one file past RLIMIT_FSIZE with SIGXFSZ ignored; denied with EFBIG",
        run: file_size,
    },
    Check {
        name: "file-size-signal",
        arguments: "[bytes=1g]",
        summary: "the same with SIGXFSZ at its default: the probe is killed, printing nothing",
        run: file_size_signal,
    },
    Check {
        name: "rlimits",
        arguments: "",
        summary: "report core, nofile, fsize, nproc, as; denied when core is 0 and nofile and fsize are finite",
        run: rlimits,
    },
];

const MIB: u64 = 1 << 20;

fn memory_bomb(args: &Args<'_>) -> CheckResult {
    let max_mib = args.number(0, u64::MAX)?;
    const BLOCK: usize = 16 << 20;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut total_mib = 0u64;
    loop {
        if total_mib >= max_mib {
            return Ok(Finding::escaped(format!(
                "allocated and touched {total_mib} MiB"
            )));
        }
        let mut block = Vec::new();
        if block.try_reserve_exact(BLOCK).is_err() {
            return Ok(Finding::denied(
                Errno(libc::ENOMEM),
                format!("allocation refused after {total_mib} MiB"),
            ));
        }
        // Writing every byte makes every page resident.
        block.resize(BLOCK, 0x5a);
        blocks.push(block);
        total_mib += (BLOCK as u64) / MIB;
    }
}

fn fork_bomb(args: &Args<'_>) -> CheckResult {
    let max = args.number(0, u64::MAX)?;
    let parent = sys::getpid();
    let mut children = 0u64;
    while children < max {
        match sys::fork() {
            Ok(Forked::Child) => {
                // Sleep until the parent goes (it exits after reporting), then die with it.
                let _ = sys::set_parent_death_signal(libc::SIGKILL);
                if sys::getppid() != parent {
                    sys::exit_now(0);
                }
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            Ok(Forked::Parent(_)) => children += 1,
            Err(errno) => {
                return Ok(Finding::denied(
                    errno,
                    format!("forked {children} children, then fork failed"),
                ));
            }
        }
    }
    Ok(Finding::escaped(format!("forked {children} children")))
}

fn spin_until(deadline: Option<Instant>) {
    let mut value = 0u64;
    loop {
        for _ in 0..1_000_000 {
            value = std::hint::black_box(value.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return;
        }
    }
}

fn cpu_spin(args: &Args<'_>) -> CheckResult {
    let Some(seconds) = args.optional_number(0)? else {
        spin_until(None);
        return Ok(Finding::error("unreachable: spinning forever"));
    };
    let threads = args.number(1, 1)?.clamp(1, 64);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let helpers: Vec<_> = (1..threads)
        .map(|_| std::thread::spawn(move || spin_until(Some(deadline))))
        .collect();
    spin_until(Some(deadline));
    for helper in helpers {
        let _ = helper.join();
    }
    let wall = started.elapsed().as_millis();
    let cpu = sys::cpu_time().as_millis();
    let percent = cpu * 100 / wall.max(1);
    Ok(Finding::escaped(format!(
        "cpu_ms={cpu} wall_ms={wall} percent={percent} threads={threads}"
    )))
}

fn fill_tmp(args: &Args<'_>) -> CheckResult {
    let dir = args.optional(0).unwrap_or("/tmp");
    let max = args.number(1, u64::MAX)?;
    // Files stop at RLIMIT_FSIZE with EFBIG rather than a fatal SIGXFSZ; the fill then goes on
    // in a new file, so only the filesystem's size can end it.
    let _ = sys::ignore_signal(libc::SIGXFSZ);
    let chunk = vec![0x5au8; 1 << 20];
    let mut total = 0u64;
    let mut made = Vec::new();
    let finding = 'fill: loop {
        let path = format!("{dir}/mcp-probe-fill-{}-{}", sys::getpid(), made.len());
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(error) => {
                break super::io_refused(&error, &format!("create {path} after {total} bytes"));
            }
        };
        made.push(path);
        loop {
            if total >= max {
                break 'fill Finding::escaped(format!("wrote {total} bytes into {dir}"));
            }
            match file.write(&chunk) {
                Ok(0) => {
                    break 'fill Finding::error(format!("a write of 0 bytes after {total} bytes"));
                }
                Ok(count) => total += count as u64,
                Err(error) if error.raw_os_error() == Some(libc::EFBIG) => break,
                Err(error) => {
                    break 'fill Finding::denied(
                        Errno::of(&error),
                        format!("wrote {total} bytes into {dir}, then {error}"),
                    );
                }
            }
        }
    };
    for path in made {
        let _ = fs::remove_file(path);
    }
    Ok(finding)
}

/// Writes `A` without a newline to `out` until it fails or `max` bytes are out.
fn flood(out: &mut dyn std::io::Write, max: u64, name: &str) -> Finding {
    let chunk = vec![b'A'; 64 * 1024];
    let mut total = 0u64;
    while total < max {
        match out.write(&chunk) {
            Ok(count) => total += count as u64,
            Err(error) => {
                return Finding::denied(
                    Errno::of(&error),
                    format!("wrote {total} bytes to {name}, then {error}"),
                );
            }
        }
    }
    let _ = out.flush();
    Finding::escaped(format!("wrote {total} bytes to {name} without a newline"))
}

fn stdout_flood(args: &Args<'_>) -> CheckResult {
    let max = args.number(0, u64::MAX)?;
    let mut out = std::io::stdout().lock();
    let finding = flood(&mut out, max, "stdout");
    // The report goes on its own line after the flood.
    let _ = out.write_all(b"\n");
    Ok(finding)
}

fn stderr_flood(args: &Args<'_>) -> CheckResult {
    let max = args.number(0, u64::MAX)?;
    Ok(flood(&mut std::io::stderr().lock(), max, "stderr"))
}

/// A limit for a report: `unlimited` or the number.
fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |value| value.to_string())
}

fn fd_exhaust(args: &Args<'_>) -> CheckResult {
    let max = args.number(0, u64::MAX)?;
    let soft = sys::getrlimit(libc::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(None);
    // One open, then duplicates: no path rule (Landlock) can stop a dup, only the limit.
    let first = match fs::File::open("/dev/null") {
        Ok(file) => std::os::fd::OwnedFd::from(file),
        Err(error) => return Ok(Finding::error(format!("open /dev/null: {error}"))),
    };
    let mut open = vec![];
    while (open.len() as u64) + 1 < max {
        match first.try_clone() {
            Ok(duplicate) => open.push(duplicate),
            Err(error) => {
                return Ok(Finding::denied(
                    Errno::of(&error),
                    format!(
                        "opened {} descriptors, then {error}; RLIMIT_NOFILE={}",
                        open.len() + 1,
                        limit_text(soft)
                    ),
                ));
            }
        }
    }
    Ok(Finding::escaped(format!(
        "opened {} descriptors; RLIMIT_NOFILE={}",
        open.len() + 1,
        limit_text(soft)
    )))
}

/// Writes one file of `bytes` in /tmp; reports how far it got.
fn write_big_file(bytes: u64) -> Finding {
    let soft = sys::getrlimit(libc::RLIMIT_FSIZE)
        .map(|(soft, _)| soft)
        .unwrap_or(None);
    let path = scratch_path("fsize");
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(error) => return Finding::error(format!("create {path}: {error}")),
    };
    let chunk = vec![0x5au8; 1 << 20];
    let mut total = 0u64;
    let finding = loop {
        if total >= bytes {
            break Finding::escaped(format!(
                "wrote {total} bytes; RLIMIT_FSIZE={}",
                limit_text(soft)
            ));
        }
        match file.write(&chunk) {
            Ok(count) => total += count as u64,
            Err(error) => {
                break Finding::denied(
                    Errno::of(&error),
                    format!(
                        "wrote {total} bytes, then {error}; RLIMIT_FSIZE={}",
                        limit_text(soft)
                    ),
                );
            }
        }
    };
    let _ = fs::remove_file(&path);
    finding
}

fn file_size(args: &Args<'_>) -> CheckResult {
    let bytes = args.number(0, 1 << 30)?;
    if let Err(errno) = sys::ignore_signal(libc::SIGXFSZ) {
        return Ok(Finding::error_with(errno, "could not ignore SIGXFSZ"));
    }
    Ok(write_big_file(bytes))
}

fn file_size_signal(args: &Args<'_>) -> CheckResult {
    let bytes = args.number(0, 1 << 30)?;
    // A disposition inherited as "ignored" would turn the signal into EFBIG: restore the default.
    if let Err(errno) = sys::default_signal(libc::SIGXFSZ) {
        return Ok(Finding::error_with(errno, "could not restore SIGXFSZ"));
    }
    Ok(write_big_file(bytes))
}

fn rlimits(_: &Args<'_>) -> CheckResult {
    let resources = [
        ("core", libc::RLIMIT_CORE),
        ("nofile", libc::RLIMIT_NOFILE),
        ("fsize", libc::RLIMIT_FSIZE),
        ("nproc", libc::RLIMIT_NPROC),
        ("as", libc::RLIMIT_AS),
        ("cpu", libc::RLIMIT_CPU),
    ];
    let mut parts = Vec::new();
    let mut soft_of = std::collections::HashMap::new();
    for (name, resource) in resources {
        match sys::getrlimit(resource) {
            Ok((soft, hard)) => {
                parts.push(format!("{name}={}/{}", limit_text(soft), limit_text(hard)));
                soft_of.insert(name, soft);
            }
            Err(errno) => return Ok(Finding::error_with(errno, format!("getrlimit({name})"))),
        }
    }
    let bounded = soft_of.get("core") == Some(&Some(0))
        && soft_of.get("nofile").is_some_and(Option::is_some)
        && soft_of.get("fsize").is_some_and(Option::is_some);
    let detail = parts.join(" ");
    Ok(if bounded {
        Finding::denied_without_errno(detail)
    } else {
        Finding::escaped(detail)
    })
}
