//! The probe's one output line: `{"check":..,"outcome":..,"errno":..,"detail":..}`.
//!
//! `outcome` says whether the attempted action went through: `denied` (the kernel or the
//! sandbox refused it; `errno` names how), `escaped` (it worked; for an attack that is an
//! escape) or `error` (the probe could not carry the attempt out, for example a bad argument).
//! `errno` may accompany `escaped` too, when a call failed only after passing every permission
//! check (say EINVAL from umount2 on a directory that is not a mount point).

#[cfg(test)]
mod tests;

use crate::sys::Errno;

/// The longest `detail` the probe prints, in characters: a report is a line, not a dump.
pub const DETAIL_LIMIT: usize = 400;

/// Whether the attempt went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sandbox or the kernel refused it.
    Denied,
    /// It worked.
    Escaped,
    /// The probe could not make the attempt.
    Error,
}

impl Outcome {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Denied => "denied",
            Outcome::Escaped => "escaped",
            Outcome::Error => "error",
        }
    }
}

/// What one check found: everything in the line but the check's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Whether the attempt went through.
    pub outcome: Outcome,
    /// The errno of the refusing call, if a call failed.
    pub errno: Option<Errno>,
    /// A short, precise account: what was read, how far a loop got.
    pub detail: String,
}

impl Finding {
    /// A refusal with the errno that carried it.
    pub fn denied(errno: Errno, detail: impl Into<String>) -> Self {
        Finding {
            outcome: Outcome::Denied,
            errno: Some(errno),
            detail: detail.into(),
        }
    }

    /// A refusal seen without an errno (say, a value read from /proc).
    pub fn denied_without_errno(detail: impl Into<String>) -> Self {
        Finding {
            outcome: Outcome::Denied,
            errno: None,
            detail: detail.into(),
        }
    }

    /// The attempt worked.
    pub fn escaped(detail: impl Into<String>) -> Self {
        Finding {
            outcome: Outcome::Escaped,
            errno: None,
            detail: detail.into(),
        }
    }

    /// The call failed, but only after every permission check passed.
    pub fn escaped_with(errno: Errno, detail: impl Into<String>) -> Self {
        Finding {
            outcome: Outcome::Escaped,
            errno: Some(errno),
            detail: detail.into(),
        }
    }

    /// The probe could not make the attempt.
    pub fn error(detail: impl Into<String>) -> Self {
        Finding {
            outcome: Outcome::Error,
            errno: None,
            detail: detail.into(),
        }
    }

    /// The probe could not make the attempt, because of a failed call.
    pub fn error_with(errno: Errno, detail: impl Into<String>) -> Self {
        Finding {
            outcome: Outcome::Error,
            errno: Some(errno),
            detail: detail.into(),
        }
    }

    /// The line the probe prints for check `check`, without the trailing newline.
    pub fn to_json_line(&self, check: &str) -> String {
        let errno = match self.errno {
            Some(errno) => json_string(&errno_name(errno)),
            None => "null".to_owned(),
        };
        format!(
            "{{\"check\":{},\"outcome\":\"{}\",\"errno\":{},\"detail\":{}}}",
            json_string(check),
            self.outcome.as_str(),
            errno,
            json_string(&shorten(&self.detail)),
        )
    }
}

/// A JSON string literal; serde_json does the escaping, so control bytes read from files are safe.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// `text` cut to [`DETAIL_LIMIT`] characters, marked with an ellipsis when cut.
pub fn shorten(text: &str) -> String {
    if text.chars().count() <= DETAIL_LIMIT {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(DETAIL_LIMIT - 1).collect();
    cut.push('…');
    cut
}

/// The symbolic name of an errno (`EPERM`), or `E<number>` for one not listed.
pub fn errno_name(errno: Errno) -> String {
    let name = match errno.0 {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENOKEY => "ENOKEY",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EDESTADDRREQ => "EDESTADDRREQ",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ESTALE => "ESTALE",
        libc::EDQUOT => "EDQUOT",
        other => return format!("E{other}"),
    };
    name.to_owned()
}
