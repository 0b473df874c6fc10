//! Lifecycle checks (S1): a daemon that tries to outlive its session, and an idle helper that a
//! test can start, look at and tear down.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::time::Duration;

use super::{Args, Check, CheckResult, emit};
use crate::report::Finding;
use crate::sys::{self, Forked};

/// The lifecycle checks.
pub const CHECKS: &[Check] = &[
    Check {
        name: "daemonize",
        arguments: "[exit|stay] [seconds=3600]",
        summary: "double fork + setsid a child that sleeps (stdio on /dev/null); print its pid; then exit or stay",
        run: daemonize,
    },
    Check {
        name: "idle",
        arguments: "[seconds]",
        summary: "helper: say `idle` with the pid, then sleep (forever without seconds) and exit",
        run: idle,
    },
];

/// Sleeps for `seconds`, or forever.
fn sleep_for(seconds: Option<u64>) {
    match seconds {
        Some(seconds) => std::thread::sleep(Duration::from_secs(seconds)),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
}

/// The grandchild: report its pid through `writer`, leave the session's stdio, sleep.
fn become_daemon(mut writer: std::io::PipeWriter, seconds: u64) -> ! {
    let _ = write!(writer, "{}", sys::getpid());
    drop(writer);
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for stream in [0, 1, 2] {
            let _ = sys::dup2(null.as_fd(), stream);
        }
        if null.as_raw_fd() > 2 {
            drop(null);
        }
    }
    std::thread::sleep(Duration::from_secs(seconds));
    sys::exit_now(0)
}

fn daemonize(args: &Args<'_>) -> CheckResult {
    let stay = match args.optional(0) {
        None | Some("exit") => false,
        Some("stay") => true,
        Some(_) => return Err(args.usage()),
    };
    let seconds = args.number(1, 3600)?;
    let (mut reader, writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(error) => return Ok(Finding::error(format!("pipe: {error}"))),
    };
    let middle = match sys::fork() {
        Ok(Forked::Child) => {
            drop(reader);
            if sys::setsid().is_err() {
                sys::exit_now(1);
            }
            match sys::fork() {
                Ok(Forked::Child) => become_daemon(writer, seconds),
                _ => sys::exit_now(0),
            }
        }
        Ok(Forked::Parent(pid)) => pid,
        Err(errno) => return Ok(Finding::error_with(errno, "fork")),
    };
    drop(writer);
    let _ = sys::wait_for(middle);
    let mut pid = String::new();
    let _ = reader.read_to_string(&mut pid);
    let finding = match pid.trim().parse::<i32>() {
        Ok(pid) => Finding::escaped(format!(
            "daemon pid {pid} (sandbox view), in its own session, its parent {middle} gone; the probe {}",
            if stay { "stays" } else { "exits" }
        )),
        Err(_) => Finding::error("the daemon did not report its pid"),
    };
    if stay {
        emit(args.check, &finding);
        sleep_for(None);
    }
    Ok(finding)
}

fn idle(args: &Args<'_>) -> CheckResult {
    let seconds = args.optional_number(0)?;
    emit(
        args.check,
        &Finding::escaped(format!("idle pid {}", sys::getpid())),
    );
    sleep_for(seconds);
    std::process::exit(0)
}
