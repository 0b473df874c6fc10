//! The one place the bubblewrap command line is built. Everything a sandbox is made of reads
//! top to bottom here: namespaces, identity, filesystem, seccomp, then the init.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::Path;

use crate::plan::{Layout, inside};

/// Top-level system directories bound read-only (or re-created as the same symlink, on
/// merged-/usr systems).
const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
];

/// Host files under `/etc` a program may need (TLS roots, the dynamic linker's cache, time
/// zone, name-service and protocol tables). Nothing with a secret: no shadow, no ssh, no
/// machine id. `passwd`, `group`, `hosts` and `resolv.conf` are written fresh instead.
const ETC_FILES: [&str; 14] = [
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/mime.types",
    "/etc/os-release",
];

/// The sandbox's own `/etc/passwd`: only root (unused) and the sandbox user exist.
pub const PASSWD: &str = "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                          mcp:x:1000:1000:MCP server:/home/mcp:/bin/sh\n\
                          nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
/// The sandbox's own `/etc/group`.
pub const GROUP: &str = "root:x:0:\nmcp:x:1000:\nnogroup:x:65534:\n";
/// The sandbox's own `/etc/hosts`: loopback only.
pub const HOSTS: &str = "127.0.0.1 localhost mcp\n::1 localhost ip6-localhost\n";
/// The sandbox's own `/etc/resolv.conf`: there is no DNS inside; names resolve at the proxy.
pub const RESOLV_CONF: &str =
    "# No DNS inside the sandbox: connections go through the egress proxy, which resolves names.\n";

/// File descriptors the helper opened for bubblewrap to bind or read.
#[derive(Debug)]
pub struct Fds {
    /// O_PATH of the init executable.
    pub init: RawFd,
    /// O_PATH of the egress socket directory.
    pub egress_dir: Option<RawFd>,
    /// O_PATH of the install image.
    pub image: Option<RawFd>,
    /// O_PATH of each extra read-only bind, with its path.
    pub ro_binds: Vec<(RawFd, String)>,
    /// memfds of the injected files, in layout order.
    pub files: Vec<RawFd>,
    /// memfds of `/etc/passwd`, `/etc/group`, `/etc/hosts`, `/etc/resolv.conf`.
    pub etc: [RawFd; 4],
    /// memfd of the seccomp program.
    pub seccomp: RawFd,
}

/// Builds bubblewrap's arguments for `layout`, binding the open descriptors in `fds`.
///
/// The environment is not on this command line: the helper `exec`s bubblewrap with exactly the
/// sandbox's environment, which bubblewrap hands to the init unchanged. That has the effect of
/// `--clearenv` plus `--setenv` for each variable, without putting a value (a password
/// variable, say) into a command line every host user can read in `/proc`.
pub fn arguments(layout: &Layout, fds: &Fds) -> Vec<OsString> {
    let mut args = Args::default();
    // Namespaces and identity: every namespace, no way to make another user namespace, no
    // capabilities, a session of its own (no TIOCSTI into the gateway's terminal), gone when
    // the gateway goes.
    args.flags(&[
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "mcp",
    ]);
    let uid = inside::UID.to_string();
    args.flags(&["--uid", &uid, "--gid", &uid]);

    // Filesystem (S2): read-only system, fresh /etc, private /proc, minimal /dev.
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(path) {
                    args.os("--symlink");
                    args.os(target);
                    args.os(dir);
                }
            }
            Ok(_) => args.flags(&["--ro-bind", dir, dir]),
            Err(_) => {}
        }
    }
    for file in ETC_FILES {
        args.flags(&["--ro-bind-try", file, file]);
    }
    let etc = [
        "/etc/passwd",
        "/etc/group",
        "/etc/hosts",
        "/etc/resolv.conf",
    ];
    for (fd, path) in fds.etc.iter().zip(etc) {
        args.flags(&["--perms", "0444", "--ro-bind-data", &fd.to_string(), path]);
    }
    args.flags(&["--proc", "/proc", "--dev", "/dev"]);
    let tmp = layout.tmp_bytes.to_string();
    let home = layout.home_bytes.to_string();
    args.flags(&["--perms", "01777", "--size", &tmp, "--tmpfs", "/tmp"]);
    args.flags(&["--perms", "01777", "--size", &tmp, "--tmpfs", "/dev/shm"]);
    args.flags(&["--perms", "0700", "--size", &home, "--tmpfs", inside::HOME]);

    for (fd, path) in &fds.ro_binds {
        args.flags(&["--ro-bind-fd", &fd.to_string(), path]);
    }
    if let Some(fd) = fds.image {
        // Writable only while its install runs; every session sees it read-only.
        let bind = match &layout.image {
            Some(image) if image.writable => "--bind-fd",
            _ => "--ro-bind-fd",
        };
        args.flags(&[bind, &fd.to_string(), inside::IMAGE]);
    }
    if let Some(fd) = fds.egress_dir {
        args.flags(&["--ro-bind-fd", &fd.to_string(), inside::EGRESS_DIR]);
    }
    args.flags(&["--ro-bind-fd", &fds.init.to_string(), inside::INIT]);
    // Injected files come from memfds: bubblewrap copies them into its own tmpfs.
    for (fd, file) in fds.files.iter().zip(&layout.files) {
        let mode = format!("{:04o}", file.mode & 0o7777);
        args.flags(&[
            "--perms",
            &mode,
            "--ro-bind-data",
            &fd.to_string(),
            &file.path,
        ]);
    }
    // Nothing may be created at the top level of the sandbox's root.
    args.flags(&["--remount-ro", "/"]);

    args.flags(&["--add-seccomp-fd", &fds.seccomp.to_string()]);
    args.flags(&["--chdir", &layout.chdir]);
    args.flags(&["--", inside::INIT, "__sandbox-init"]);
    for arg in &layout.init_args {
        args.os(arg);
    }
    args.0
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn flags(&mut self, flags: &[&str]) {
        self.0.extend(flags.iter().map(OsString::from));
    }

    fn os(&mut self, arg: impl Into<OsString>) {
        self.0.push(arg.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_hardens_and_ends_with_the_init() {
        let layout = Layout {
            init_exe: "/usr/bin/mcp-hero".into(),
            egress_dir: None,
            image: None,
            ro_binds: Vec::new(),
            tmp_bytes: 1024,
            home_bytes: 2048,
            env: vec![("SECRET".into(), "canary-value".into())],
            files: Vec::new(),
            init_args: vec!["--".into(), "server".into()],
            chdir: inside::HOME.into(),
        };
        let fds = Fds {
            init: 3,
            egress_dir: None,
            image: None,
            ro_binds: Vec::new(),
            files: Vec::new(),
            etc: [4, 5, 6, 7],
            seccomp: 8,
        };
        let args: Vec<String> = arguments(&layout, &fds)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        for needed in [
            "--unshare-all",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop ALL",
            "--hostname mcp",
            "--uid 1000 --gid 1000",
            "--add-seccomp-fd 8",
            "--size 1024 --tmpfs /tmp",
            "--size 2048 --tmpfs /home/mcp",
            "--remount-ro /",
        ] {
            assert!(line.contains(needed), "missing `{needed}` in {line}");
        }
        assert!(line.ends_with("-- /run/mcp-hero/init __sandbox-init -- server"));
        assert!(
            !line.contains("canary-value"),
            "no value on the command line"
        );
        assert!(!line.contains("/opt/mcp-server"), "no image, no bind");
        // S16: neither the plan nor the request prints a value, should either reach a log.
        assert!(!format!("{layout:?}").contains("canary-value"));
        let request = crate::StartRequest {
            org: "o".into(),
            server: "s".into(),
            session: "t".into(),
            command: vec!["server".into()],
            working_dir: None,
            env: vec![(
                "SECRET".into(),
                zeroize::Zeroizing::new("canary-value".into()),
            )],
            files: vec![crate::InjectedFile {
                path: "/home/mcp/key".into(),
                mode: 0o400,
                contents: zeroize::Zeroizing::new(b"canary-file".to_vec()),
            }],
            egress: None,
            image: None,
            decisions: None,
        };
        let shown = format!("{request:?}");
        assert!(
            shown.contains("SECRET") && shown.contains("/home/mcp/key"),
            "{shown}"
        );
        assert!(
            !shown.contains("canary-value") && !shown.contains("canary-file"),
            "{shown}"
        );

        // An image is read-only for sessions and writable only for its install.
        let fds = Fds {
            image: Some(9),
            ..fds
        };
        for (writable, bind) in [
            (false, "--ro-bind-fd 9 /opt/mcp-server"),
            (true, "--bind-fd 9 /opt/mcp-server"),
        ] {
            let layout = Layout {
                image: Some(crate::plan::ImageBind {
                    source: "/var/lib/mcp-hero/images/s/1".into(),
                    writable,
                    mountpoint: None,
                }),
                ..layout.clone()
            };
            let line: Vec<String> = arguments(&layout, &fds)
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let line = line.join(" ");
            assert!(line.contains(bind), "missing `{bind}` in {line}");
            assert_eq!(line.matches("/opt/mcp-server").count(), 1, "{line}");
        }
    }
}
