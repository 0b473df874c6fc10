//! Security decision: the first program inside every sandbox (the gateway binary re-executed as
//! `mcp-hero __sandbox-init ...`), which applies Landlock and is the sandbox's only way out.
//!
//! In order, before the server starts:
//! 1. bind the local proxy port on loopback (before Landlock, which may forbid binding);
//! 2. apply Landlock while the process still has one thread, so every later thread and the
//!    server inherit it;
//! 3. start the relay (one thread, a tokio current-thread runtime): every TCP connection to the
//!    proxy port becomes a connection to the egress unix socket, where the gateway's proxy
//!    decides it;
//! 4. start the server with the environment bubblewrap gave, and exit with its status.
//!
//! The init writes to stderr only (stdout is the server's MCP channel), in lines starting with
//! `mcp-hero sandbox:`, and never prints the environment or the server's arguments, which may
//! carry secrets. It reaps nothing but its own child: bubblewrap's pid 1 reaps orphans.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

use crate::landlock::{LandlockError, LandlockPolicy, LandlockStatus, restrict_self};

#[cfg(test)]
mod tests;

/// Exit status when the init itself fails before the server starts (bad arguments, the proxy
/// port is taken, Landlock refused), like `env` and `chroot` use 125 for their own failures.
pub const EXIT_INIT_FAILED: u8 = 125;

/// Exit status when the server program cannot be started, as shells use for "not found".
pub const EXIT_CANNOT_START: u8 = 127;

const PROXY_PORT: &str = "--proxy-port";
const EGRESS_SOCKET: &str = "--egress-socket";
const LANDLOCK: &str = "--landlock";
const LANDLOCK_READ_EXEC: &str = "--landlock-read-exec";
const LANDLOCK_READ_WRITE: &str = "--landlock-read-write";
const LANDLOCK_TCP_CONNECT_PORTS: &str = "--landlock-tcp-connect-ports";
const WORKING_DIR: &str = "--working-dir";
const END_OF_OPTIONS: &str = "--";

/// Everything the init needs, passed by the launcher on the command line (never through the
/// environment, which belongs to the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitArgs {
    /// Loopback TCP port the server's `HTTP(S)_PROXY` points at; set together with
    /// `egress_socket`.
    pub proxy_port: Option<u16>,
    /// Unix socket, bind-mounted from the gateway, that every proxy connection is relayed to.
    pub egress_socket: Option<PathBuf>,
    /// Landlock policy to apply before the server starts; `None` applies none.
    pub landlock: Option<LandlockPolicy>,
    /// The server program and its arguments.
    pub command: Vec<OsString>,
    /// Directory the server starts in; `None` keeps bubblewrap's (`--chdir`).
    pub working_dir: Option<PathBuf>,
}

/// Why the init could not do its job; printed on stderr, the sandbox then ends.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The launcher passed an option this init does not know (the two are out of step).
    #[error("unknown option {0:?}; the launcher and the sandbox init come from different builds")]
    UnknownOption(String),
    /// An option that takes a value came last.
    #[error("option {0} needs a value")]
    MissingValue(&'static str),
    /// An option that may appear once appeared twice.
    #[error("option {0} is given twice")]
    Repeated(&'static str),
    /// A port was not a number from 1 to 65535.
    #[error("option {option} needs a TCP port from 1 to 65535, got {value:?}")]
    InvalidPort {
        /// The option.
        option: &'static str,
        /// What was given.
        value: String,
    },
    /// A Landlock detail came without `--landlock`.
    #[error("option {0} needs --landlock before it")]
    LandlockDetailWithoutLandlock(&'static str),
    /// The proxy port and the egress socket make sense only together.
    #[error("--proxy-port and --egress-socket must be given together")]
    ProxyHalfConfigured,
    /// Nothing to run.
    #[error("no program given after --")]
    MissingCommand,
    /// The proxy port could not be bound.
    #[error("cannot listen on {address} for the egress proxy: {source}")]
    Bind {
        /// The loopback address and port.
        address: SocketAddr,
        /// Why binding failed.
        source: io::Error,
    },
    /// Landlock could not be applied.
    #[error(transparent)]
    Landlock(#[from] LandlockError),
}

impl InitArgs {
    /// The arguments that follow `__sandbox-init` on the init's command line; [`InitArgs::parse`]
    /// reads them back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(port) = self.proxy_port {
            args.extend([PROXY_PORT.into(), port.to_string().into()]);
        }
        if let Some(socket) = &self.egress_socket {
            args.extend([EGRESS_SOCKET.into(), socket.into()]);
        }
        if let Some(policy) = &self.landlock {
            args.push(LANDLOCK.into());
            for path in &policy.read_exec {
                args.extend([LANDLOCK_READ_EXEC.into(), path.into()]);
            }
            for path in &policy.read_write {
                args.extend([LANDLOCK_READ_WRITE.into(), path.into()]);
            }
            if let Some(ports) = &policy.tcp_connect_ports {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                args.extend([LANDLOCK_TCP_CONNECT_PORTS.into(), list.join(",").into()]);
            }
        }
        if let Some(directory) = &self.working_dir {
            args.extend([WORKING_DIR.into(), directory.into()]);
        }
        args.push(END_OF_OPTIONS.into());
        args.extend(self.command.iter().cloned());
        args
    }

    /// Reads the arguments that follow `__sandbox-init`, as written by [`InitArgs::to_args`].
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<InitArgs, InitError> {
        let mut args = args.into_iter();
        let mut parsed = InitArgs {
            proxy_port: None,
            egress_socket: None,
            landlock: None,
            command: Vec::new(),
            working_dir: None,
        };
        let mut saw_end_of_options = false;
        while let Some(arg) = args.next() {
            let option = match arg.to_str() {
                Some(END_OF_OPTIONS) => {
                    saw_end_of_options = true;
                    break;
                }
                Some(PROXY_PORT) => PROXY_PORT,
                Some(EGRESS_SOCKET) => EGRESS_SOCKET,
                Some(LANDLOCK) => LANDLOCK,
                Some(LANDLOCK_READ_EXEC) => LANDLOCK_READ_EXEC,
                Some(LANDLOCK_READ_WRITE) => LANDLOCK_READ_WRITE,
                Some(LANDLOCK_TCP_CONNECT_PORTS) => LANDLOCK_TCP_CONNECT_PORTS,
                Some(WORKING_DIR) => WORKING_DIR,
                _ => return Err(InitError::UnknownOption(shorten(&arg))),
            };
            if option == LANDLOCK {
                if parsed.landlock.is_some() {
                    return Err(InitError::Repeated(LANDLOCK));
                }
                parsed.landlock = Some(LandlockPolicy {
                    read_exec: Vec::new(),
                    read_write: Vec::new(),
                    tcp_connect_ports: None,
                });
                continue;
            }
            let value = args.next().ok_or(InitError::MissingValue(option))?;
            match option {
                PROXY_PORT => set_once(&mut parsed.proxy_port, option, port(option, &value)?)?,
                EGRESS_SOCKET => set_once(&mut parsed.egress_socket, option, value.into())?,
                WORKING_DIR => set_once(&mut parsed.working_dir, option, value.into())?,
                _ => {
                    let policy = parsed
                        .landlock
                        .as_mut()
                        .ok_or(InitError::LandlockDetailWithoutLandlock(option))?;
                    match option {
                        LANDLOCK_READ_EXEC => policy.read_exec.push(value.into()),
                        LANDLOCK_READ_WRITE => policy.read_write.push(value.into()),
                        _ => set_once(
                            &mut policy.tcp_connect_ports,
                            option,
                            ports(option, &value)?,
                        )?,
                    }
                }
            }
        }
        if !saw_end_of_options {
            return Err(InitError::MissingCommand);
        }
        parsed.command = args.collect();
        if parsed.command.is_empty() {
            return Err(InitError::MissingCommand);
        }
        if parsed.proxy_port.is_some() != parsed.egress_socket.is_some() {
            return Err(InitError::ProxyHalfConfigured);
        }
        Ok(parsed)
    }
}

/// The first argument that makes the gateway binary act as the init inside a sandbox.
pub const ARG: &str = "__sandbox-init";

/// Runs the init: `args` are the arguments after `__sandbox-init`. Returns the server's exit
/// status (128 + N when signal N killed it), [`EXIT_INIT_FAILED`] or [`EXIT_CANNOT_START`].
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    ExitCode::from(run(args))
}

fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    match InitArgs::parse(args) {
        Ok(init) => run_parsed(init),
        Err(error) => {
            report(format_args!("{error}"));
            EXIT_INIT_FAILED
        }
    }
}

fn run_parsed(init: InitArgs) -> u8 {
    let proxy = match (init.proxy_port, &init.egress_socket) {
        (Some(port), Some(socket)) => match bind_proxy_port(port) {
            Ok(listeners) => Some((listeners, socket.clone())),
            Err(error) => {
                report(format_args!("{error}"));
                return EXIT_INIT_FAILED;
            }
        },
        _ => None,
    };

    if let Some(policy) = &init.landlock {
        match restrict_self(policy) {
            Ok(LandlockStatus::FullyEnforced { .. }) => {}
            Ok(status) => report(format_args!("warning: {status}")),
            Err(error) => {
                report(format_args!("{}", InitError::from(error)));
                return EXIT_INIT_FAILED;
            }
        }
    }

    // Started after Landlock so the relay thread inherits it.
    if let Some((listeners, egress_socket)) = proxy {
        start_relay(listeners, egress_socket);
    }

    let Some((program, arguments)) = init.command.split_first() else {
        report(format_args!("{}", InitError::MissingCommand));
        return EXIT_INIT_FAILED;
    };
    let mut command = Command::new(program);
    command.args(arguments);
    if let Some(directory) = &init.working_dir {
        command.current_dir(directory);
    }
    let status = command.spawn().and_then(|mut child| child.wait());
    match status {
        Ok(status) => exit_code(status),
        Err(error) => {
            report(format_args!(
                "cannot start {}: {error}",
                Path::new(program).display()
            ));
            EXIT_CANNOT_START
        }
    }
}

/// Binds 127.0.0.1 and, where the sandbox has IPv6, [::1]; programs try either for
/// `localhost`.
fn bind_proxy_port(port: u16) -> Result<Vec<TcpListener>, InitError> {
    let ipv4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut listeners = vec![TcpListener::bind(ipv4).map_err(|source| InitError::Bind {
        address: ipv4,
        source,
    })?];
    if let Ok(listener) = TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))) {
        listeners.push(listener);
    }
    Ok(listeners)
}

fn start_relay(listeners: Vec<TcpListener>, egress_socket: PathBuf) {
    let started = std::thread::Builder::new()
        .name("egress-relay".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(relay::serve(listeners, egress_socket)),
                Err(error) => report(format_args!(
                    "the egress relay cannot start, the server has no network: {error}"
                )),
            }
        });
    if let Err(error) = started {
        report(format_args!(
            "the egress relay cannot start, the server has no network: {error}"
        ));
    }
}

mod relay {
    //! The relay from the loopback proxy port to the egress unix socket.

    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpStream, UnixStream};

    use super::report;

    /// Relays every connection accepted on `listeners` until the process exits.
    pub(crate) async fn serve(listeners: Vec<std::net::TcpListener>, egress_socket: PathBuf) {
        let egress_socket = Arc::new(egress_socket);
        let mut accept_loops = tokio::task::JoinSet::new();
        for listener in listeners {
            let listener = match listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
            {
                Ok(listener) => listener,
                Err(error) => {
                    report(format_args!("the egress relay cannot listen: {error}"));
                    continue;
                }
            };
            accept_loops.spawn(accept_loop(listener, Arc::clone(&egress_socket)));
        }
        while accept_loops.join_next().await.is_some() {}
    }

    async fn accept_loop(listener: TcpListener, egress_socket: Arc<PathBuf>) {
        loop {
            match listener.accept().await {
                Ok((connection, _)) => {
                    let egress_socket = Arc::clone(&egress_socket);
                    tokio::spawn(async move {
                        if let Err(error) = relay_one(connection, &egress_socket).await {
                            report(format_args!("egress connection failed: {error}"));
                        }
                    });
                }
                // Out of file descriptors or a connection reset before accept: pause rather
                // than spin, and keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Copies both ways until both directions have ended, passing each end-of-stream on as a
    /// write shutdown so half-closed connections (a request sent, the answer still coming)
    /// work.
    pub(crate) async fn relay_one(
        mut connection: TcpStream,
        egress_socket: &Path,
    ) -> io::Result<()> {
        let mut egress = UnixStream::connect(egress_socket).await.map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot reach the gateway's egress socket {}: {error}",
                    egress_socket.display()
                ),
            )
        })?;
        // A reset by either peer is an ordinary end of a proxied connection, not worth a line.
        let _ = tokio::io::copy_bidirectional(&mut connection, &mut egress).await;
        Ok(())
    }
}

fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xFF).unwrap_or(EXIT_INIT_FAILED);
    }
    let signal = status.signal().unwrap_or(0);
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

fn set_once<T>(slot: &mut Option<T>, option: &'static str, value: T) -> Result<(), InitError> {
    if slot.is_some() {
        return Err(InitError::Repeated(option));
    }
    *slot = Some(value);
    Ok(())
}

fn port(option: &'static str, value: &OsStr) -> Result<u16, InitError> {
    value
        .to_str()
        .and_then(|text| text.parse::<u16>().ok())
        .filter(|&port| port != 0)
        .ok_or_else(|| InitError::InvalidPort {
            option,
            value: shorten(value),
        })
}

fn ports(option: &'static str, value: &OsStr) -> Result<Vec<u16>, InitError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let Some(text) = value.to_str() else {
        return Err(InitError::InvalidPort {
            option,
            value: shorten(value),
        });
    };
    text.split(',')
        .map(|item| port(option, OsStr::new(item)))
        .collect()
}

/// Options come from the launcher, but an error message still should not carry an unbounded
/// string.
fn shorten(value: &OsStr) -> String {
    value.to_string_lossy().chars().take(64).collect()
}

/// One line on stderr; stdout belongs to the server's MCP stream. A failed write has nowhere
/// else to go.
fn report(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "mcp-hero sandbox: {message}");
}
