//! Privilege checks (S3): capabilities, NoNewPrivs, seccomp mode, identities, setuid(0) and a
//! setuid-root binary.

use std::fs;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Args, Check, CheckResult};
use crate::report::Finding;
use crate::sys;

/// The privilege checks.
pub const CHECKS: &[Check] = &[
    Check {
        name: "caps",
        arguments: "",
        summary: "report CapInh/CapPrm/CapEff/CapBnd/CapAmb; escaped if any capability is held",
        run: caps,
    },
    Check {
        name: "no-new-privs",
        arguments: "",
        summary: "report NoNewPrivs; escaped unless it is 1",
        run: no_new_privs,
    },
    Check {
        name: "seccomp-mode",
        arguments: "",
        summary: "report Seccomp and Seccomp_filters; escaped unless mode is 2 (filter)",
        run: seccomp_mode,
    },
    Check {
        name: "ids",
        arguments: "",
        summary: "report uid, gid, groups and uid_map; escaped if any id is 0",
        run: ids,
    },
    Check {
        name: "setuid-root",
        arguments: "",
        summary: "setuid(0); escaped if it works",
        run: setuid_root,
    },
    Check {
        name: "setgid-root",
        arguments: "",
        summary: "setgid(0); escaped if it works",
        run: setgid_root,
    },
    Check {
        name: "setgroups-root",
        arguments: "",
        summary: "setgroups([0]); escaped if it works",
        run: setgroups_root,
    },
    Check {
        name: "setuid-exec",
        arguments: "[path]",
        summary: "run a setuid binary (su, passwd, mount...) and read its euid; escaped if 0",
        run: setuid_exec,
    },
];

/// The `Key:` fields of /proc/self/status, in order.
fn status_fields(keys: &[&str]) -> Result<Vec<(String, String)>, Finding> {
    let text = fs::read_to_string("/proc/self/status")
        .map_err(|error| Finding::error(format!("read /proc/self/status: {error}")))?;
    Ok(status_values(&text, keys))
}

/// The values of `keys` in a /proc status text (missing keys are left out).
pub fn status_values(text: &str, keys: &[&str]) -> Vec<(String, String)> {
    keys.iter()
        .filter_map(|key| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
                .map(|value| {
                    (
                        (*key).to_owned(),
                        value.split_whitespace().collect::<Vec<_>>().join(" "),
                    )
                })
        })
        .collect()
}

/// `Key=value Key=value` for a report.
fn describe(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn caps(_: &Args<'_>) -> CheckResult {
    let fields = match status_fields(&["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) {
        Ok(fields) => fields,
        Err(finding) => return Ok(finding),
    };
    let held = fields
        .iter()
        .any(|(_, value)| u64::from_str_radix(value, 16).ok() != Some(0));
    let detail = describe(&fields);
    Ok(if fields.len() < 5 {
        Finding::error(format!("missing capability lines: {detail}"))
    } else if held {
        Finding::escaped(detail)
    } else {
        Finding::denied_without_errno(detail)
    })
}

fn no_new_privs(_: &Args<'_>) -> CheckResult {
    let fields = match status_fields(&["NoNewPrivs"]) {
        Ok(fields) => fields,
        Err(finding) => return Ok(finding),
    };
    let detail = describe(&fields);
    Ok(match fields.first().map(|(_, value)| value.as_str()) {
        Some("1") => Finding::denied_without_errno(detail),
        Some(_) => Finding::escaped(detail),
        None => Finding::error("no NoNewPrivs line"),
    })
}

fn seccomp_mode(_: &Args<'_>) -> CheckResult {
    let fields = match status_fields(&["Seccomp", "Seccomp_filters"]) {
        Ok(fields) => fields,
        Err(finding) => return Ok(finding),
    };
    let detail = describe(&fields);
    Ok(match fields.first().map(|(_, value)| value.as_str()) {
        Some("2") => Finding::denied_without_errno(detail),
        Some(_) => Finding::escaped(detail),
        None => Finding::error("no Seccomp line"),
    })
}

fn ids(_: &Args<'_>) -> CheckResult {
    let (uid, euid, gid, egid) = sys::ids();
    let groups = sys::groups().unwrap_or_default();
    let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let uid_map = uid_map.split_whitespace().collect::<Vec<_>>().join(" ");
    let group_list = groups
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let detail = format!(
        "uid={uid} euid={euid} gid={gid} egid={egid} groups={group_list} uid_map={uid_map}"
    );
    let root = [uid, euid, gid, egid].contains(&0) || groups.contains(&0);
    Ok(if root {
        Finding::escaped(detail)
    } else {
        Finding::denied_without_errno(detail)
    })
}

fn setuid_root(_: &Args<'_>) -> CheckResult {
    Ok(match sys::setuid(0) {
        Ok(()) => Finding::escaped(format!("setuid(0) worked: euid={}", sys::ids().1)),
        Err(errno) => Finding::denied(errno, "setuid(0) refused"),
    })
}

fn setgid_root(_: &Args<'_>) -> CheckResult {
    Ok(match sys::setgid(0) {
        Ok(()) => Finding::escaped("setgid(0) worked"),
        Err(errno) => Finding::denied(errno, "setgid(0) refused"),
    })
}

fn setgroups_root(_: &Args<'_>) -> CheckResult {
    Ok(match sys::setgroups_root() {
        Ok(()) => Finding::escaped("setgroups([0]) worked"),
        Err(errno) => Finding::denied(errno, "setgroups([0]) refused"),
    })
}

/// Setuid-root binaries commonly present on Debian, tried in order.
const SETUID_CANDIDATES: &[&str] = &[
    "/usr/bin/su",
    "/bin/su",
    "/usr/bin/passwd",
    "/usr/bin/mount",
    "/usr/bin/chsh",
    "/usr/bin/newgrp",
    "/usr/bin/gpasswd",
];

/// Runs a setuid-root binary with `--help` whose stdout and stderr are a full pipe, so it blocks
/// on its first write; reads its effective uid from /proc while it waits; kills it.
fn setuid_exec(args: &Args<'_>) -> CheckResult {
    let candidates: Vec<&str> = match args.optional(0) {
        Some(path) => vec![path],
        None => SETUID_CANDIDATES.to_vec(),
    };
    // Inside a user namespace the host's root shows as the overflow uid (65534): the setuid bit
    // is what matters, whoever the owner appears to be.
    let binary = candidates.iter().copied().find_map(|path| {
        let meta = fs::metadata(path).ok()?;
        (meta.mode() & libc::S_ISUID != 0).then_some((path, meta.uid()))
    });
    let Some((binary, owner)) = binary else {
        return Ok(Finding::error(format!(
            "no setuid binary among {}",
            candidates.join(",")
        )));
    };
    Ok(observe_setuid(binary, owner).unwrap_or_else(|finding| finding))
}

fn observe_setuid(binary: &str, owner: u32) -> Result<Finding, Finding> {
    let failed = |what: &str, error: std::io::Error| Finding::error(format!("{what}: {error}"));
    let (reader, mut writer) = std::io::pipe().map_err(|error| failed("pipe", error))?;
    // Fill the pipe so the binary's first write blocks: write its exact capacity in page-sized
    // chunks, which a blocking write accepts without waiting.
    let capacity = sys::pipe_capacity(writer.as_fd())
        .map_err(|errno| Finding::error_with(errno, "F_GETPIPE_SZ"))?;
    let page = vec![b'.'; 4096];
    let mut filled = 0;
    while filled + page.len() <= capacity {
        writer
            .write_all(&page)
            .map_err(|error| failed("fill pipe", error))?;
        filled += page.len();
    }
    let stderr = writer
        .try_clone()
        .map_err(|error| failed("dup pipe", error))?;
    let mut child = Command::new(binary)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .spawn()
        .map_err(|error| failed(&format!("exec {binary}"), error))?;
    let status_path = format!("/proc/{}/status", child.id());
    let own_name = fs::read_to_string("/proc/self/comm").unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seen = None;
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(&status_path) {
            let fields = status_values(&text, &["Name", "Uid", "Gid"]);
            let name = fields
                .first()
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            // The name changes after the new credentials are committed.
            if !name.is_empty() && name != own_name.trim() && fields.len() == 3 {
                seen = Some(fields);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(reader);
    let Some(fields) = seen else {
        return Err(Finding::error(format!(
            "{binary} was not seen running within 3 s"
        )));
    };
    // Uid: real effective saved filesystem.
    let euid = fields[1]
        .1
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_owned();
    let detail = format!(
        "{binary} (setuid, owner uid {owner} here) ran with {}",
        describe(&fields)
    );
    Ok(if euid == "0" {
        Finding::escaped(detail)
    } else {
        Finding::denied_without_errno(detail)
    })
}
