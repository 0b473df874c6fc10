//! Security decision: the Landlock layer a sandboxed program runs under (S2, S3), a second wall
//! behind bubblewrap's mount and network namespaces.
//!
//! [`restrict_self`] restricts the calling thread and every process it starts afterwards:
//! - files: everything Landlock can restrict is denied except read and execute beneath
//!   [`LandlockPolicy::read_exec`] and every right beneath [`LandlockPolicy::read_write`];
//! - TCP: `connect` only to [`LandlockPolicy::tcp_connect_ports`] when given (ABI 4 and later);
//! - scopes (ABI 6 and later): no signals to processes outside the Landlock domain, no
//!   connections to abstract unix sockets created outside it.
//!
//! Assumptions: it runs in the sandbox's init while that process still has a single thread
//! (Landlock restricts only the calling thread, and threads started later inherit it); the
//! enforcement is best effort, so an older kernel gets what it supports and the caller logs the
//! returned [`LandlockStatus`].
//!
//! The rights requested are those of Landlock ABI 7, the newest this code has been tested on.
//! Later ABIs add rights (connecting to pathname unix sockets, UDP) that would, for instance,
//! need a rule for the egress socket; raising [`TESTED_ABI`] is a deliberate, tested change.

use std::io;
use std::path::{Path, PathBuf};

use ::landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, PathFdError, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus,
    Scope,
};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// The newest Landlock ABI whose rights this module requests; see the module documentation.
const TESTED_ABI: ABI = ABI::V7;

/// What a sandboxed program may touch once Landlock applies; built by the launcher from the
/// server's configuration and handed to the sandbox's init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockPolicy {
    /// Directories or files the program may read and execute, with everything beneath them
    /// (system directories, the server's install image). Missing paths are skipped.
    pub read_exec: Vec<PathBuf>,
    /// Directories or files the program may read, write, create in and delete from (its tmpfs
    /// home and `/tmp`, `/dev` for `/dev/null`). Missing paths are skipped.
    pub read_write: Vec<PathBuf>,
    /// TCP ports the program may `connect` to (the local proxy port); `None` leaves TCP connect
    /// unrestricted, an empty list forbids it.
    pub tcp_connect_ports: Option<Vec<u16>>,
}

/// How much of a policy the running kernel enforces, for the launcher's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockStatus {
    /// Every requested restriction is in force.
    FullyEnforced {
        /// The kernel's Landlock ABI version.
        abi: u32,
    },
    /// The kernel is older than the tested ABI and enforces only what it knows (for example
    /// files but not TCP or scopes).
    PartiallyEnforced {
        /// The kernel's Landlock ABI version.
        abi: u32,
    },
    /// The kernel has no Landlock (not built in or not enabled at boot); nothing is enforced.
    NotSupported,
}

impl std::fmt::Display for LandlockStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LandlockStatus::FullyEnforced { abi } => {
                write!(f, "Landlock fully enforced (kernel ABI {abi})")
            }
            LandlockStatus::PartiallyEnforced { abi } => write!(
                f,
                "Landlock partially enforced: the kernel has ABI {abi}, the policy uses ABI {}",
                abi_number(TESTED_ABI)
            ),
            LandlockStatus::NotSupported => {
                write!(f, "Landlock is not supported or not enabled by this kernel")
            }
        }
    }
}

/// Why a policy could not be applied; the sandbox must not start when this happens.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// A policy path exists but cannot be opened to anchor a rule.
    #[error("cannot open {} for a Landlock rule: {source}", path.display())]
    OpenPath {
        /// The path from the policy.
        path: PathBuf,
        /// Why opening it failed.
        source: io::Error,
    },
    /// The kernel or the landlock crate refused the ruleset.
    #[error("cannot apply the Landlock ruleset: {0}")]
    Ruleset(#[from] RulesetError),
}

/// Restricts the calling thread, and every thread and process it creates afterwards, to
/// `policy`; irreversible. Call it before starting any other thread.
pub fn restrict_self(policy: &LandlockPolicy) -> Result<LandlockStatus, LandlockError> {
    let all_files = AccessFs::from_all(TESTED_ABI);
    let read_exec = AccessFs::from_read(TESTED_ABI);

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all_files)?
        .scope(Scope::from_all(TESTED_ABI))?;
    if policy.tcp_connect_ports.is_some() {
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp)?;
    }
    let mut created = ruleset.create()?;

    for (paths, access) in [
        (&policy.read_exec, read_exec),
        (&policy.read_write, all_files),
    ] {
        for path in paths {
            if let Some(rule) = path_rule(path, access)? {
                created = created.add_rule(rule)?;
            }
        }
    }
    for &port in policy.tcp_connect_ports.iter().flatten() {
        created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
    }

    let restriction = created.restrict_self()?;
    let abi = match restriction.landlock {
        ::landlock::LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi
            .and_then(|raw| u32::try_from(raw).ok())
            .unwrap_or_else(|| abi_number(effective_abi)),
        _ => 0,
    };
    Ok(match restriction.ruleset {
        RulesetStatus::FullyEnforced => LandlockStatus::FullyEnforced { abi },
        RulesetStatus::PartiallyEnforced => LandlockStatus::PartiallyEnforced { abi },
        RulesetStatus::NotEnforced => LandlockStatus::NotSupported,
    })
}

/// A rule granting `access` beneath `path`, or `None` when the path does not exist (a policy
/// lists the usual system directories, and not every image has `/lib64`).
fn path_rule(
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<Option<PathBeneath<PathFd>>, LandlockError> {
    let fd = match PathFd::new(path) {
        Ok(fd) => fd,
        Err(PathFdError::OpenCall { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(PathFdError::OpenCall { source, .. }) => {
            return Err(LandlockError::OpenPath {
                path: path.to_owned(),
                source,
            });
        }
        Err(other) => {
            return Err(LandlockError::OpenPath {
                path: path.to_owned(),
                source: io::Error::other(other),
            });
        }
    };
    // Directory-only rights on a file would make the crate report partial enforcement.
    let is_directory = rustix::fs::fstat(&fd)
        .map_err(|errno| LandlockError::OpenPath {
            path: path.to_owned(),
            source: errno.into(),
        })
        .map(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir())?;
    let access = if is_directory {
        access
    } else {
        access & AccessFs::from_file(TESTED_ABI)
    };
    Ok(Some(PathBeneath::new(fd, access)))
}

fn abi_number(abi: ABI) -> u32 {
    match abi {
        ABI::V1 => 1,
        ABI::V2 => 2,
        ABI::V3 => 3,
        ABI::V4 => 4,
        ABI::V5 => 5,
        ABI::V6 => 6,
        ABI::V7 => 7,
        ABI::V8 => 8,
        ABI::V9 => 9,
        ABI::V10 => 10,
        _ => 0,
    }
}
