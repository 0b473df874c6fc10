//! The sandbox runtime (S1–S4): every stdio MCP server runs in its own bubblewrap sandbox,
//! created for one client session and destroyed with it.
//!
//! The pieces, outside in:
//! - [`launcher`]: [`launcher::Sandboxes`], which leases a uid, builds a
//!   cgroup and an egress socket, and starts the exec helper;
//! - [`helper`]: the single-threaded helper (the gateway binary re-executed) that joins the
//!   cgroup, sets rlimits, drops to the leased uid and `exec`s bubblewrap;
//! - [`bwrap`]: the one place the bubblewrap command line is built;
//! - [`seccomp`] and [`landlock`]: the kernel filters the sandboxed program runs under;
//! - [`init`]: the first program inside the sandbox: it applies Landlock, relays the local proxy
//!   port to the egress socket and runs the server;
//! - [`egress`]: the proxy on the gateway side of that socket, which decides every connection;
//! - [`cgroup`] and [`uid_pool`]: limits, accounting and clean teardown.

pub mod egress;
pub mod init;
pub mod landlock;
pub mod seccomp;

#[cfg(test)]
mod test_support;
