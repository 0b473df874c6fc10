//! Process checks (S3): signal a host pid, see other processes, compare namespaces with the
//! host's, list network interfaces.

use std::fs;
use std::os::unix::fs::MetadataExt as _;

use super::{Args, Check, CheckResult};
use crate::report::Finding;
use crate::sys;

/// The process checks.
pub const CHECKS: &[Check] = &[
    Check {
        name: "kill",
        arguments: "<pid> [signal=0]",
        summary: "kill(pid, signal) on a host pid (the gateway, another sandbox); escaped if delivered",
        run: kill,
    },
    Check {
        name: "proc-pids",
        arguments: "[host-pid...]",
        summary: "list /proc; escaped if a given pid, or a process of another uid, is visible",
        run: proc_pids,
    },
    Check {
        name: "pidns",
        arguments: "<host-pid-ns-link>",
        summary: "report own pid, NSpid and pid 1; escaped if the pid namespace is the host's",
        run: pidns,
    },
    Check {
        name: "namespace",
        arguments: "<kind> <host-link>",
        summary: "compare /proc/self/ns/<kind> with the host's link; escaped if equal",
        run: namespace,
    },
    Check {
        name: "interfaces",
        arguments: "",
        summary: "list network interfaces; escaped if any besides lo",
        run: interfaces,
    },
];

fn kill(args: &Args<'_>) -> CheckResult {
    let pid = args.required(0)?.parse::<i32>().map_err(|_| args.usage())?;
    let signal = i32::try_from(args.number(1, 0)?).map_err(|_| args.usage())?;
    Ok(match sys::kill(pid, signal) {
        Ok(()) => Finding::escaped(format!("kill({pid}, {signal}) delivered")),
        Err(errno) => Finding::denied(errno, format!("kill({pid}, {signal}) refused")),
    })
}

/// The numeric entries of /proc, sorted.
fn visible_pids() -> std::io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = fs::read_dir("/proc")?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

fn proc_pids(args: &Args<'_>) -> CheckResult {
    let wanted: Vec<u32> = args
        .rest(0)
        .iter()
        .map(|text| text.parse().map_err(|_| args.usage()))
        .collect::<Result<_, _>>()?;
    let pids = match visible_pids() {
        Ok(pids) => pids,
        Err(error) => return Ok(super::io_refused(&error, "list /proc")),
    };
    let (own_uid, ..) = sys::ids();
    let foreign: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|pid| fs::metadata(format!("/proc/{pid}")).is_ok_and(|meta| meta.uid() != own_uid))
        .collect();
    let seen: Vec<u32> = wanted
        .iter()
        .copied()
        .filter(|pid| pids.contains(pid))
        .collect();
    let list = pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let detail = format!(
        "{} pids: {list}; of another uid: {foreign:?}; wanted and seen: {seen:?}",
        pids.len()
    );
    Ok(if seen.is_empty() && foreign.is_empty() {
        Finding::denied_without_errno(detail)
    } else {
        Finding::escaped(detail)
    })
}

/// The link of one of the probe's namespaces (`pid:[4026531836]`).
fn own_namespace(kind: &str) -> Result<String, Finding> {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|link| link.to_string_lossy().into_owned())
        .map_err(|error| Finding::error(format!("readlink /proc/self/ns/{kind}: {error}")))
}

/// Escaped when the probe's namespace link equals the host's.
fn compare(own: &str, host: &str, extra: &str) -> Finding {
    let detail = format!("own {own}, host {host}{extra}");
    if own == host {
        Finding::escaped(detail)
    } else {
        Finding::denied_without_errno(detail)
    }
}

fn pidns(args: &Args<'_>) -> CheckResult {
    let host = args.required(0)?;
    let own = match own_namespace("pid") {
        Ok(own) => own,
        Err(finding) => return Ok(finding),
    };
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let nspid = super::privilege::status_values(&status, &["NSpid"])
        .first()
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let init = fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let count = visible_pids().map(|pids| pids.len()).unwrap_or(0);
    let extra = format!(
        "; getpid={} NSpid={nspid} pid1={} visible={count}",
        sys::getpid(),
        init.trim()
    );
    Ok(compare(&own, host, &extra))
}

fn namespace(args: &Args<'_>) -> CheckResult {
    let kind = args.required(0)?;
    let host = args.required(1)?;
    if !["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"].contains(&kind) {
        return Err(args.usage());
    }
    Ok(match own_namespace(kind) {
        Ok(own) => compare(&own, host, ""),
        Err(finding) => finding,
    })
}

fn interfaces(_: &Args<'_>) -> CheckResult {
    let text = match fs::read_to_string("/proc/net/dev") {
        Ok(text) => text,
        Err(error) => return Ok(super::io_refused(&error, "read /proc/net/dev")),
    };
    // Two header lines, then `name: counters...`.
    let names: Vec<&str> = text
        .lines()
        .skip(2)
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.trim()))
        .collect();
    let detail = format!("interfaces: {}", names.join(","));
    Ok(if names.iter().all(|name| *name == "lo") {
        Finding::denied_without_errno(detail)
    } else {
        Finding::escaped(detail)
    })
}
