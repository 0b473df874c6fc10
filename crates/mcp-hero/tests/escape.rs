//! The escape suite (issue 4): a hostile program, `mcp-sandbox-probe` (crates/probe), runs inside
//! the real sandbox and tries one named escape per test; each test asserts the precise denial
//! (the errno, the proxy's status and reason, the limit that ended the sandbox) and cites the
//! promise it proves: S1 (a sandbox lives and dies with its session), S2 (no shared writable
//! filesystem, no state between sessions), S3 (no way to the host or another sandbox), S4
//! (bounded resources, a bound ends that session's server only).
//!
//! Needs root and bubblewrap: elsewhere each test says so and returns; under `CI=true` it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

#[path = "escape/lab.rs"]
mod lab;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use lab::{
    Lab, Report, host_ipv4_addresses, host_namespace, host_processes_in_pool,
    host_processes_of_uid, lab, survivors_of_uid,
};
use sandbox::Limit;
use sandbox::egress::{EgressPolicy, Verdict};

/// The errno the seccomp filter answers for a refused call (`sandbox::seccomp`).
const FILTERED: &str = "EPERM";

/// Runs one check and asserts it was denied with exactly `errno`.
async fn check(args: &[&str], errno: &str) {
    let Some(lab) = lab() else { return };
    lab.probe(args).await.assert_denied(errno);
}

/// A "gateway port" on the host's loopback that nothing may reach from a sandbox; also listens
/// on `[::1]` with the same port when it can.
struct GatewayPort {
    v4: TcpListener,
    v6: Option<TcpListener>,
}

impl GatewayPort {
    fn new() -> GatewayPort {
        loop {
            let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = v4.local_addr().unwrap().port();
            // 3128 is the sandbox's own proxy port (its init listens there).
            if port == sandbox::plan::inside::PROXY_PORT {
                continue;
            }
            v4.set_nonblocking(true).unwrap();
            let v6 = TcpListener::bind(("::1", port)).ok();
            if let Some(v6) = &v6 {
                v6.set_nonblocking(true).unwrap();
            }
            return GatewayPort { v4, v6 };
        }
    }

    fn port(&self) -> u16 {
        self.v4.local_addr().unwrap().port()
    }

    /// Asserts that no connection ever arrived.
    #[track_caller]
    fn assert_untouched(&self) {
        assert!(
            self.v4.accept().is_err(),
            "a sandbox reached the gateway port on 127.0.0.1"
        );
        if let Some(v6) = &self.v6 {
            assert!(
                v6.accept().is_err(),
                "a sandbox reached the gateway port on ::1"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files (S2, S3)

/// S3: the host's password hashes are not in the sandbox's `/etc`.
#[tokio::test]
async fn escape_read_host_shadow() {
    check(&["read-shadow"], "ENOENT").await;
}

/// S3: the gateway's data directory (its database) is invisible, even beside a bound path.
#[tokio::test]
async fn escape_read_gateway_data_dir() {
    let Some(lab) = lab() else { return };
    let dir = lab.data_dir.to_str().unwrap();
    lab.probe(&["list-dir", dir]).await.assert_denied("ENOENT");
    let database = lab.data_dir.join("mcp-hero.db");
    lab.probe(&["read-file", database.to_str().unwrap()])
        .await
        .assert_denied("ENOENT");
}

/// S3: the gateway's unix socket cannot be reached by its path.
#[tokio::test]
async fn escape_connect_gateway_socket_file() {
    let Some(lab) = lab() else { return };
    let socket = lab.data_dir.join("gateway.sock");
    lab.probe(&["unix-path", socket.to_str().unwrap()])
        .await
        .assert_denied("ENOENT");
}

/// S2: system directories are read-only.
#[tokio::test]
async fn escape_write_usr() {
    check(&["write-usr"], "EROFS").await;
}

/// S2: the sandbox's `/etc` is read-only.
#[tokio::test]
async fn escape_write_etc() {
    check(&["write-etc"], "EROFS").await;
}

/// S2: nothing can be created at the top of the sandbox's root.
#[tokio::test]
async fn escape_write_root_dir() {
    check(&["write-root"], "EROFS").await;
}

/// S3: kernel settings (`core_pattern` runs a program as host root) cannot be opened for
/// writing: they belong to a root the sandbox user is not.
#[tokio::test]
async fn escape_write_proc_sys() {
    check(&["write-proc-sys"], "EACCES").await;
}

/// S3: `/proc/1/root` leads nowhere: pid 1 is the sandbox's own bubblewrap, whose root the
/// kernel's ptrace access check does not even let the server follow.
#[tokio::test]
async fn escape_symlink_via_proc_1_root() {
    let Some(lab) = lab() else { return };
    let database = lab.data_dir.join("mcp-hero.db");
    lab.probe(&["symlink-proc-root", database.to_str().unwrap()])
        .await
        .assert_denied("EACCES");
    lab.probe(&["symlink-proc-root", "etc/shadow"])
        .await
        .assert_denied("EACCES");
}

/// S3: `..` from the tmpfs stops at the sandbox's root.
#[tokio::test]
async fn escape_symlink_dotdot() {
    check(&["symlink-dotdot", "etc/shadow"], "ENOENT").await;
}

/// S2: a read-only file cannot be hard-linked into the writable tmpfs.
#[tokio::test]
async fn escape_hardlink_into_tmp() {
    check(&["hardlink", "/etc/passwd"], "EXDEV").await;
}

/// S3: no physical memory device.
#[tokio::test]
async fn escape_open_dev_mem() {
    check(&["dev-mem"], "ENOENT").await;
}

/// S3: no kernel memory device.
#[tokio::test]
async fn escape_open_dev_kmem() {
    check(&["dev-kmem"], "ENOENT").await;
}

/// S3: no host disk.
#[tokio::test]
async fn escape_open_dev_sda() {
    check(&["dev-sda"], "ENOENT").await;
}

/// S3: no hypervisor device.
#[tokio::test]
async fn escape_open_dev_kvm() {
    check(&["dev-kvm"], "ENOENT").await;
}

/// S3: a block device (a host disk) cannot be made in the tmpfs.
#[tokio::test]
async fn escape_mknod_block_device() {
    check(&["mknod-block"], "EPERM").await;
}

/// S3: a character device (`/dev/mem`) cannot be made in the tmpfs.
#[tokio::test]
async fn escape_mknod_char_device() {
    check(&["mknod-char"], "EPERM").await;
}

/// S3: the sandbox's mount table does not name the gateway's data directory.
#[tokio::test]
async fn escape_mountinfo_shows_gateway_paths() {
    let Some(lab) = lab() else { return };
    let report = lab
        .probe(&["mountinfo", lab.data_dir.to_str().unwrap()])
        .await;
    report.assert_denied_without_errno();
}

/// S2: `/tmp` and HOME keep nothing from one session to the next.
#[tokio::test]
async fn escape_state_between_sessions() {
    let Some(lab) = lab() else { return };
    for marker in ["/tmp/mcp-probe-marker", "/home/mcp/mcp-probe-marker"] {
        let first = lab.probe(&["persist", marker]).await;
        first.assert_denied("ENOENT");
        assert!(first.detail().contains("left a marker"), "{first:#?}");
        lab.probe(&["persist", marker])
            .await
            .assert_denied("ENOENT");
    }
}

/// S2: two sandboxes running at the same time share no `/tmp`.
#[tokio::test]
async fn escape_tmp_shared_with_another_sandbox() {
    let Some(lab) = lab() else { return };
    let mut neighbour = lab.start(&["listen-unix", "/tmp/neighbour.sock"]).await;
    assert_eq!(neighbour.line().await.unwrap()["outcome"], "escaped");
    lab.probe(&["stat", "/tmp/neighbour.sock"])
        .await
        .assert_denied("ENOENT");
    lab.probe(&["unix-path", "/tmp/neighbour.sock"])
        .await
        .assert_denied("ENOENT");
    neighbour.end().await;
}

/// S4: a sandbox cannot move itself out of its cgroup (out of its limits).
#[tokio::test]
async fn escape_cgroup_move() {
    check(&["cgroup-escape"], "ENOENT").await;
}

// ---------------------------------------------------------------------------------------------
// Privilege (S3)

/// S3: no capability in any set.
#[tokio::test]
async fn escape_capabilities() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["caps"]).await;
    report.assert_denied_without_errno();
    assert!(
        report.detail().contains("CapEff=0000000000000000"),
        "{report:#?}"
    );
    assert!(
        report.detail().contains("CapBnd=0000000000000000"),
        "{report:#?}"
    );
}

/// S3: setuid binaries and file capabilities grant nothing (NoNewPrivs).
#[tokio::test]
async fn escape_no_new_privs() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["no-new-privs"]).await;
    report.assert_denied_without_errno();
    assert_eq!(report.detail(), "NoNewPrivs=1");
}

/// S3: the seccomp filter is on (mode 2).
#[tokio::test]
async fn escape_seccomp_mode() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["seccomp-mode"]).await;
    report.assert_denied_without_errno();
    assert!(report.detail().starts_with("Seccomp=2 "), "{report:#?}");
}

/// S3: inside, uid 1000 without groups; on the host, every process of the sandbox runs as its
/// pooled uid, never 0.
#[tokio::test]
async fn escape_host_uid_is_root() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["ids"]).await;
    report.assert_denied_without_errno();
    // uid_map is relative to the parent user namespace: bubblewrap nests one for
    // --disable-userns, so it reads `1000 0 1` there; the host view below is what counts.
    assert!(
        report
            .detail()
            .starts_with("uid=1000 euid=1000 gid=1000 egid=1000 groups= uid_map=1000 "),
        "{report:#?}"
    );
    let mut session = lab.start(&["idle"]).await;
    assert_eq!(session.line().await.unwrap()["outcome"], "escaped");
    let host_uid = session.host_uid();
    assert_ne!(host_uid, 0);
    assert!((lab::UID_POOL.first..lab::UID_POOL.first + lab::UID_POOL.count).contains(&host_uid));
    let pids = session.host_pids();
    assert!(
        pids.len() >= 3,
        "bubblewrap, the init and the probe: {pids:?}"
    );
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        for key in ["Uid:", "Gid:"] {
            let ids: Vec<u32> = status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .unwrap()
                .split_whitespace()
                .map(|id| id.parse().unwrap())
                .collect();
            assert_eq!(ids, vec![host_uid; 4], "{}", lab::describe_process(pid));
        }
    }
    session.end().await;
}

/// S3: setuid(0) fails: root is not even mapped in the sandbox's user namespace.
#[tokio::test]
async fn escape_setuid_root() {
    check(&["setuid-root"], "EINVAL").await;
}

/// S3: the root group cannot be joined.
#[tokio::test]
async fn escape_setgroups_root() {
    check(&["setgroups-root"], "EPERM").await;
}

/// S3: a setuid-root binary (su, mount...) runs with the sandbox's uid.
#[tokio::test]
async fn escape_setuid_binary() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["setuid-exec"]).await;
    report.assert_denied_without_errno();
    assert!(
        report.detail().contains("Uid=1000 1000 1000 1000"),
        "{report:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// System calls the seccomp filter refuses (S3)

/// S3: a server cannot make its parent trace it.
#[tokio::test]
async fn escape_ptrace_traceme() {
    check(&["ptrace-traceme"], FILTERED).await;
}

/// S3: a server cannot attach to the sandbox's init.
#[tokio::test]
async fn escape_ptrace_attach_init() {
    check(&["ptrace-attach", "1"], FILTERED).await;
}

/// S3: no reading other processes' memory (the probe tries its own, which the kernel allows).
#[tokio::test]
async fn escape_process_vm_readv() {
    check(&["process-vm-readv"], FILTERED).await;
}

/// S3: kernel keyrings are shared by the whole host uid.
#[tokio::test]
async fn escape_keyctl() {
    check(&["keyctl"], FILTERED).await;
}

/// S3: no adding keys either.
#[tokio::test]
async fn escape_add_key() {
    check(&["add-key"], FILTERED).await;
}

/// S2, S3: no mounts.
#[tokio::test]
async fn escape_mount() {
    check(&["mount"], FILTERED).await;
}

/// S2, S3: no unmounting (which could uncover what a mount hides).
#[tokio::test]
async fn escape_umount2() {
    check(&["umount2"], FILTERED).await;
}

/// S2, S3: the new mount API: fsopen.
#[tokio::test]
async fn escape_fsopen() {
    check(&["fsopen"], FILTERED).await;
}

/// S2, S3: the new mount API: fspick.
#[tokio::test]
async fn escape_fspick() {
    check(&["fspick"], FILTERED).await;
}

/// S2, S3: the new mount API: fsmount.
#[tokio::test]
async fn escape_fsmount() {
    check(&["fsmount"], FILTERED).await;
}

/// S2, S3: the new mount API: open_tree (detached copies of mounts).
#[tokio::test]
async fn escape_open_tree() {
    check(&["open-tree"], FILTERED).await;
}

/// S2, S3: the new mount API: move_mount.
#[tokio::test]
async fn escape_move_mount() {
    check(&["move-mount"], FILTERED).await;
}

/// S3: no changing the root.
#[tokio::test]
async fn escape_pivot_root() {
    check(&["pivot-root"], FILTERED).await;
}

/// S3: no chroot (the classic way out of a chroot is another chroot).
#[tokio::test]
async fn escape_chroot() {
    check(&["chroot"], FILTERED).await;
}

/// S3: no new user namespace (in which the server would hold every capability).
#[tokio::test]
async fn escape_unshare_user() {
    check(&["unshare-user"], FILTERED).await;
}

/// S3: no new network namespace.
#[tokio::test]
async fn escape_unshare_net() {
    check(&["unshare-net"], FILTERED).await;
}

/// S3: no new mount namespace.
#[tokio::test]
async fn escape_unshare_mount() {
    check(&["unshare", "mount"], FILTERED).await;
}

/// S3: no joining another namespace.
#[tokio::test]
async fn escape_setns() {
    check(&["setns"], FILTERED).await;
}

/// S3: clone with CLONE_NEWUSER is refused by its flags.
#[tokio::test]
async fn escape_clone_newuser() {
    check(&["clone-newuser"], FILTERED).await;
}

/// S3: clone with CLONE_NEWNET too.
#[tokio::test]
async fn escape_clone_newnet() {
    check(&["clone-ns", "net"], FILTERED).await;
}

/// S3: clone3 hides its flags from the filter, so it answers ENOSYS (libc falls back to clone).
#[tokio::test]
async fn escape_clone3() {
    let Some(lab) = lab() else { return };
    lab.probe(&["clone3"]).await.assert_denied("ENOSYS");
    lab.probe(&["clone3", "user"]).await.assert_denied("ENOSYS");
}

/// S3: no BPF programs or maps.
#[tokio::test]
async fn escape_bpf() {
    check(&["bpf"], FILTERED).await;
}

/// S3: no perf events (allowed to unprivileged users on this kernel for user-space counting).
#[tokio::test]
async fn escape_perf_event_open() {
    check(&["perf-event-open"], FILTERED).await;
}

/// S3: no userfaultfd (a favourite of kernel exploits), even in user-mode-only form.
#[tokio::test]
async fn escape_userfaultfd() {
    check(&["userfaultfd"], FILTERED).await;
}

/// S3: no io_uring.
#[tokio::test]
async fn escape_io_uring_setup() {
    check(&["io-uring-setup"], FILTERED).await;
}

/// S3: no opening files by handle (the "shocker" escape).
#[tokio::test]
async fn escape_open_by_handle_at() {
    check(&["open-by-handle-at"], FILTERED).await;
}

/// S3: no pushing input into a terminal.
#[tokio::test]
async fn escape_tiocsti() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["tiocsti"]).await;
    report.assert_denied(FILTERED);
    assert!(
        report.detail().contains("/dev/pts/"),
        "tried on a real pty: {report:#?}"
    );
}

/// S3: no console requests (selection paste is another way to inject input).
#[tokio::test]
async fn escape_tioclinux() {
    check(&["tioclinux"], FILTERED).await;
}

/// S3: AF_VSOCK reaches the host from any network namespace.
#[tokio::test]
async fn escape_socket_vsock() {
    check(&["socket-vsock"], FILTERED).await;
}

/// S3: no raw link-layer sockets.
#[tokio::test]
async fn escape_socket_packet() {
    check(&["socket-packet"], FILTERED).await;
}

/// S3: no netlink (routing, audit, a large kernel surface).
#[tokio::test]
async fn escape_socket_netlink() {
    check(&["socket-netlink"], FILTERED).await;
}

/// S3: no Bluetooth.
#[tokio::test]
async fn escape_socket_bluetooth() {
    check(&["socket-bluetooth"], FILTERED).await;
}

/// S3: no kernel crypto sockets.
#[tokio::test]
async fn escape_socket_alg() {
    check(&["socket-alg"], FILTERED).await;
}

/// S3: raw IP sockets (INET is allowed, but raw needs CAP_NET_RAW, which is dropped).
#[tokio::test]
async fn escape_socket_raw() {
    check(&["socket-raw"], "EPERM").await;
}

// ---------------------------------------------------------------------------------------------
// Processes (S3)

/// S3: the gateway's pid does not exist in the sandbox.
#[tokio::test]
async fn escape_signal_gateway() {
    let gateway = std::process::id().to_string();
    check(&["kill", &gateway], "ESRCH").await;
}

/// S3: nor can the gateway be traced (the filter answers before the lookup).
#[tokio::test]
async fn escape_ptrace_gateway() {
    let gateway = std::process::id().to_string();
    check(&["ptrace-attach", &gateway], FILTERED).await;
}

/// S3: no process of another sandbox can be signalled, by any of its host pids.
#[tokio::test]
async fn escape_signal_another_sandbox() {
    let Some(lab) = lab() else { return };
    let mut neighbour = lab.start(&["idle"]).await;
    assert_eq!(neighbour.line().await.unwrap()["outcome"], "escaped");
    let mut pids = neighbour.host_pids();
    pids.push(neighbour.host_pid());
    for pid in pids {
        lab.probe(&["kill", &pid.to_string(), "9"])
            .await
            .assert_denied("ESRCH");
    }
    assert!(neighbour.is_running());
    neighbour.end().await;
}

/// S3: `/proc` shows the sandbox's own processes only.
#[tokio::test]
async fn escape_see_other_pids() {
    let Some(lab) = lab() else { return };
    let mut neighbour = lab.start(&["idle"]).await;
    assert_eq!(neighbour.line().await.unwrap()["outcome"], "escaped");
    let mut wanted: Vec<String> = neighbour.host_pids().iter().map(u32::to_string).collect();
    wanted.push(std::process::id().to_string());
    let mut args = vec!["proc-pids"];
    args.extend(wanted.iter().map(String::as_str));
    let report = lab.probe(&args).await;
    report.assert_denied_without_errno();
    // bubblewrap's pid 1, the init, the probe: a handful at most.
    let count: usize = report.detail().split(' ').next().unwrap().parse().unwrap();
    assert!(count <= 4, "{report:#?}");
    neighbour.end().await;
}

/// S3: a pid namespace of its own.
#[tokio::test]
async fn escape_pid_namespace() {
    let Some(lab) = lab() else { return };
    let host = host_namespace("pid");
    let report = lab.probe(&["pidns", &host]).await;
    report.assert_denied_without_errno();
    assert!(report.detail().contains("pid1=bwrap"), "{report:#?}");
}

/// S3: every other namespace of its own too.
#[tokio::test]
async fn escape_shared_namespaces() {
    let Some(lab) = lab() else { return };
    for kind in ["net", "mnt", "ipc", "uts", "user", "cgroup"] {
        let host = host_namespace(kind);
        lab.probe(&["namespace", kind, &host])
            .await
            .assert_denied_without_errno();
    }
}

/// S3: the network namespace has loopback only.
#[tokio::test]
async fn escape_network_interfaces() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["interfaces"]).await;
    report.assert_denied_without_errno();
    assert_eq!(report.detail(), "interfaces: lo");
}

// ---------------------------------------------------------------------------------------------
// Network: direct connections that bypass the proxy (S3)

/// S3: the gateway's port on every spelling of loopback reaches the sandbox's own loopback,
/// where nothing listens.
#[tokio::test]
async fn escape_gateway_port_on_every_loopback_spelling() {
    let Some(lab) = lab() else { return };
    let gateway = GatewayPort::new();
    let report = lab
        .probe(&["connect-loopback", &gateway.port().to_string()])
        .await;
    assert_eq!(report.outcome(), "denied", "{report:#?}");
    for result in report.detail().split(", ") {
        let (spelling, errno) = result.rsplit_once(' ').unwrap();
        assert!(
            ["ECONNREFUSED", "ENETUNREACH"].contains(&errno),
            "{spelling}: {errno}: {report:#?}"
        );
    }
    assert!(report.detail().starts_with(
        "127.0.0.1 ECONNREFUSED, 127.1 ECONNREFUSED, 127.0.1 ECONNREFUSED, 0x7f.1 ECONNREFUSED"
    ));
    assert!(report.detail().contains("::1 ECONNREFUSED"));
    gateway.assert_untouched();
}

/// S3: the host's own interface addresses are unreachable.
#[tokio::test]
async fn escape_host_interface_addresses() {
    let Some(lab) = lab() else { return };
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    for address in host_ipv4_addresses().into_iter().take(4) {
        lab.probe(&["connect", &address.to_string(), &port])
            .await
            .assert_denied("ENETUNREACH");
    }
}

/// S3: the cloud metadata service (instance credentials) is unreachable.
#[tokio::test]
async fn escape_metadata_service() {
    check(&["metadata"], "ENETUNREACH").await;
}

/// S3: RFC 1918 and CGNAT space are unreachable directly.
#[tokio::test]
async fn escape_private_and_cgnat_addresses() {
    let Some(lab) = lab() else { return };
    for address in ["10.0.0.1", "172.16.0.1", "192.168.0.1", "100.64.0.1"] {
        lab.probe(&["connect", address, "80"])
            .await
            .assert_denied("ENETUNREACH");
    }
}

/// S3: IPv6 link-local and unique-local addresses are unreachable directly.
#[tokio::test]
async fn escape_ipv6_local_addresses() {
    let Some(lab) = lab() else { return };
    lab.probe(&["connect", "fe80::1%1", "80"])
        .await
        .assert_denied("ENETUNREACH");
    lab.probe(&["connect", "fc00::1", "80"])
        .await
        .assert_denied("ENETUNREACH");
    // Without a scope the kernel cannot even pick an interface.
    lab.probe(&["connect", "fe80::1", "80"])
        .await
        .assert_denied("EINVAL");
}

/// S3: a public address cannot be reached around the proxy, by TCP or UDP (DNS to a resolver).
#[tokio::test]
async fn escape_direct_public_connection() {
    let Some(lab) = lab() else { return };
    lab.probe(&["connect", "1.1.1.1", "443"])
        .await
        .assert_denied("ENETUNREACH");
    lab.probe(&["udp-send", "8.8.8.8", "53"])
        .await
        .assert_denied("ENETUNREACH");
    for address in host_ipv4_addresses().into_iter().take(2) {
        lab.probe(&["udp-send", &address.to_string(), "53"])
            .await
            .assert_denied("ENETUNREACH");
    }
}

// ---------------------------------------------------------------------------------------------
// Network: through the egress proxy (S3)

/// Asserts that `proxy-connect authority` was refused with 403 and `reason`.
async fn proxy_refuses(lab: &Lab, authority: &str, reason: &str) {
    let report = lab.probe(&["proxy-connect", authority]).await;
    report.assert_denied_without_errno();
    let expected = format!("HTTP/1.1 403 Forbidden | mcp-hero egress: {reason}");
    assert_eq!(report.detail(), expected, "{report:#?}");
}

/// S3: the proxy refuses the gateway's port on loopback, and records why.
#[tokio::test]
async fn escape_proxy_to_gateway_port() {
    let Some(lab) = lab() else { return };
    let gateway = GatewayPort::new();
    let port = gateway.port();
    proxy_refuses(lab, &format!("127.0.0.1:{port}"), "loopback").await;
    proxy_refuses(lab, &format!("[::1]:{port}"), "loopback").await;
    let decisions = lab.decisions_for_port(port);
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert!(
        decisions
            .iter()
            .all(|d| d.verdict == Verdict::Refused && d.reason == "loopback")
    );
    gateway.assert_untouched();
}

/// S3: every other spelling of loopback the proxy might be handed.
#[tokio::test]
async fn escape_proxy_loopback_spellings() {
    let Some(lab) = lab() else { return };
    let gateway = GatewayPort::new();
    let port = gateway.port();
    for (host, reason) in [
        ("127.1", "loopback"),
        ("0x7f.1", "loopback"),
        ("2130706433", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("[::ffff:127.0.0.1]", "ipv4-mapped"),
        ("[::127.0.0.1]", "ipv4-compatible"),
        ("[64:ff9b::7f00:1]", "nat64"),
    ] {
        proxy_refuses(lab, &format!("{host}:{port}"), reason).await;
    }
    gateway.assert_untouched();
}

/// S3: DNS rebinding: a name the proxy resolves to loopback is refused after resolution.
#[tokio::test]
async fn escape_proxy_name_resolving_to_loopback() {
    let Some(lab) = lab() else { return };
    let gateway = GatewayPort::new();
    proxy_refuses(lab, &format!("localhost:{}", gateway.port()), "loopback").await;
    gateway.assert_untouched();
}

/// S3: the metadata service through the proxy.
#[tokio::test]
async fn escape_proxy_to_metadata_service() {
    let Some(lab) = lab() else { return };
    proxy_refuses(lab, "169.254.169.254:80", "metadata").await;
}

/// S3: private, CGNAT, link-local and unique-local destinations through the proxy.
#[tokio::test]
async fn escape_proxy_to_private_addresses() {
    let Some(lab) = lab() else { return };
    for (authority, reason) in [
        ("10.0.0.1:80", "private"),
        ("172.16.0.1:80", "private"),
        ("192.168.1.1:80", "private"),
        ("100.64.0.1:80", "cgnat"),
        ("[fc00::1]:80", "private"),
        ("[fe80::1]:80", "link-local"),
    ] {
        proxy_refuses(lab, authority, reason).await;
    }
}

/// S3: the host's own addresses through the proxy.
#[tokio::test]
async fn escape_proxy_to_host_addresses() {
    let Some(lab) = lab() else { return };
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    for address in host_ipv4_addresses().into_iter().take(2) {
        let report = lab
            .probe(&["proxy-connect", &format!("{address}:{port}")])
            .await;
        report.assert_denied_without_errno();
        assert!(
            report.detail().starts_with("HTTP/1.1 403 Forbidden"),
            "{report:#?}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "a sandbox reached a host address"
    );
}

/// S3: plain HTTP through the proxy is held to the same rules.
#[tokio::test]
async fn escape_proxy_get_to_gateway_port() {
    let Some(lab) = lab() else { return };
    let gateway = GatewayPort::new();
    let report = lab
        .probe(&[
            "proxy-get",
            &format!("http://127.0.0.1:{}/api/v1/", gateway.port()),
        ])
        .await;
    report.assert_denied_without_errno();
    assert_eq!(
        report.detail(),
        "HTTP/1.1 403 Forbidden | mcp-hero egress: loopback",
        "{report:#?}"
    );
    gateway.assert_untouched();
}

/// S3: SOCKS5 on the same proxy port is held to the same rules.
#[tokio::test]
async fn escape_socks5_to_gateway_port() {
    let Some(lab) = lab() else { return };
    let gateway = GatewayPort::new();
    let report = lab
        .probe(&["socks5-connect", &format!("127.0.0.1:{}", gateway.port())])
        .await;
    report.assert_denied_without_errno();
    assert_eq!(
        report.detail(),
        "reply 2 (connection not allowed by ruleset)",
        "{report:#?}"
    );
    gateway.assert_untouched();
}

/// S3, positive: an allowed destination (a test-only exemption for a local server) is reached
/// through the proxy, with CONNECT and with plain HTTP, so the proxy is proven to work too.
#[tokio::test]
async fn escape_proxy_reaches_an_allowed_destination() {
    let Some(lab) = lab() else { return };
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = server.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut stream, _)) = server.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let body = "hello from the allowed destination";
                let answer = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    let policy = || EgressPolicy {
        exempt_addresses: vec![address],
        ..EgressPolicy::default()
    };
    let report = lab
        .probe_with(&["proxy-connect", &address.to_string()], Some(policy()))
        .await;
    assert_eq!(report.outcome(), "escaped", "{report:#?}");
    assert!(
        report
            .detail()
            .starts_with("HTTP/1.1 200 Connection established | HTTP/1.0 200 OK"),
        "{report:#?}"
    );
    assert!(
        report
            .detail()
            .contains("hello from the allowed destination"),
        "{report:#?}"
    );
    let report = lab
        .probe_with(
            &["proxy-get", &format!("http://{address}/")],
            Some(policy()),
        )
        .await;
    assert_eq!(report.outcome(), "escaped", "{report:#?}");
    assert!(
        report
            .detail()
            .ends_with("| hello from the allowed destination"),
        "{report:#?}"
    );
    let decisions = lab.decisions_for_port(address.port());
    assert!(
        decisions
            .iter()
            .all(|d| d.verdict == Verdict::Allowed && d.reason == "exempt"),
        "{decisions:?}"
    );
    // The exemption is exact: the same host on another port stays refused.
    let other = GatewayPort::new();
    let report = lab
        .probe_with(
            &["proxy-connect", &format!("127.0.0.1:{}", other.port())],
            Some(policy()),
        )
        .await;
    assert_eq!(
        report.detail(),
        "HTTP/1.1 403 Forbidden | mcp-hero egress: loopback",
        "{report:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Network: unix sockets of the host and of other sandboxes (S3)

/// S3: an abstract unix socket of the host (they are per network namespace).
#[tokio::test]
async fn escape_host_abstract_socket() {
    use std::os::linux::net::SocketAddrExt as _;
    let Some(lab) = lab() else { return };
    let name = format!("mcp-hero-escape-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&address).unwrap();
    lab.probe(&["unix-abstract", &name])
        .await
        .assert_denied("ECONNREFUSED");
}

/// S3: an abstract unix socket of another sandbox.
#[tokio::test]
async fn escape_another_sandbox_abstract_socket() {
    let Some(lab) = lab() else { return };
    let name = format!("mcp-hero-neighbour-{}", std::process::id());
    let mut neighbour = lab.start(&["listen-abstract", &name]).await;
    assert_eq!(neighbour.line().await.unwrap()["outcome"], "escaped");
    lab.probe(&["unix-abstract", &name])
        .await
        .assert_denied("ECONNREFUSED");
    neighbour.end().await;
}

/// S3: a loopback port another sandbox listens on.
#[tokio::test]
async fn escape_another_sandbox_loopback_port() {
    let Some(lab) = lab() else { return };
    let mut neighbour = lab.start(&["listen-tcp", "4100"]).await;
    assert_eq!(neighbour.line().await.unwrap()["outcome"], "escaped");
    lab.probe(&["connect", "127.0.0.1", "4100"])
        .await
        .assert_denied("ECONNREFUSED");
    neighbour.end().await;
}

/// S3: another sandbox's egress socket (its way out, bound from the host).
#[tokio::test]
async fn escape_another_sandbox_egress_socket() {
    let Some(lab) = lab() else { return };
    let mut neighbour = lab.start(&["idle"]).await;
    assert_eq!(neighbour.line().await.unwrap()["outcome"], "escaped");
    let socket = neighbour.run_dir().join("egress.sock");
    assert!(socket.exists());
    lab.probe(&["unix-path", socket.to_str().unwrap()])
        .await
        .assert_denied("ENOENT");
    neighbour.end().await;
}

// ---------------------------------------------------------------------------------------------
// Resources (S4)

/// S4: a memory bomb is ended by its memory limit, and only its own session ends.
#[tokio::test]
async fn escape_memory_bomb() {
    let Some(lab) = lab() else { return };
    let mut bystander = lab.start(&["idle"]).await;
    assert_eq!(bystander.line().await.unwrap()["outcome"], "escaped");
    // The cap (1 GiB, eight times the limit) keeps a broken limit from hurting the host.
    let report = lab.probe(&["memory-bomb", "1024"]).await;
    eprintln!("{:?} / {}", report.line, report.exit.description);
    assert_eq!(report.exit.limit, Some(Limit::Memory), "{report:#?}");
    assert!(
        report.line.is_none(),
        "the bomb was killed before it could report: {report:#?}"
    );
    assert!(
        bystander.is_running(),
        "a neighbour's memory bomb ended this sandbox"
    );
    assert_eq!(bystander.end().await.limit, None);
}

/// S4: a fork bomb stops at the process limit.
#[tokio::test]
async fn escape_fork_bomb() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["fork-bomb", "100000"]).await;
    eprintln!("{:?} / {}", report.line, report.exit.description);
    match &report.line {
        Some(_) => {
            report.assert_denied("EAGAIN");
            let forked: u32 = report.detail().split(' ').nth(1).unwrap().parse().unwrap();
            assert!(forked < lab::limits().pids, "{report:#?}");
            // The gateway learns which limit was hit, to tell the client and the log.
            assert_eq!(report.exit.limit, Some(Limit::Processes), "{report:#?}");
        }
        None => assert_eq!(report.exit.limit, Some(Limit::Processes), "{report:#?}"),
    }
}

/// S4: a CPU spin on four threads gets its CPU quota, not the machine.
#[tokio::test]
async fn escape_cpu_spin() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["cpu-spin", "3", "4"]).await;
    eprintln!("{:?} / {}", report.line, report.exit.description);
    let percent: u32 = report
        .detail()
        .split(' ')
        .find_map(|field| field.strip_prefix("percent="))
        .unwrap()
        .parse()
        .unwrap();
    let quota = lab::limits().cpu_percent;
    assert!(
        percent <= quota + quota / 4 + 5,
        "used {percent}% against a {quota}% quota: {report:#?}"
    );
}

/// Bytes written before a fill stopped, from a `fill-tmp` report.
fn bytes_written(report: &Report) -> u64 {
    report.detail().split(' ').nth(1).unwrap().parse().unwrap()
}

/// S4: filling `/tmp` stops at its size.
#[tokio::test]
async fn escape_fill_tmp() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["fill-tmp", "/tmp", "1g"]).await;
    eprintln!("{:?} / {}", report.line, report.exit.description);
    report.assert_denied("ENOSPC");
    assert!(
        bytes_written(&report) <= lab::limits().tmp_bytes,
        "{report:#?}"
    );
}

/// S4: filling HOME stops at its size.
#[tokio::test]
async fn escape_fill_home() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["fill-tmp", "/home/mcp", "1g"]).await;
    report.assert_denied("ENOSPC");
    assert!(
        bytes_written(&report) <= lab::limits().home_bytes,
        "{report:#?}"
    );
}

/// S4: a server that floods stdout without a newline is read only as far as the gateway wants;
/// closing its stdout stops it, and teardown still works.
#[tokio::test]
async fn escape_stdout_flood() {
    let Some(lab) = lab() else { return };
    let mut session = lab.start(&["stdout-flood"]).await;
    let bytes = session.read_raw(1 << 20).await;
    assert_eq!(bytes.len(), 1 << 20);
    assert!(!bytes.contains(&b'\n'));
    session.close_stdout();
    let report = session.finish(None).await;
    assert!(
        report.exit.description.starts_with("exited with status"),
        "a closed stdout ends the flooder: {report:#?}"
    );
}

/// S4: descriptors stop at RLIMIT_NOFILE.
#[tokio::test]
async fn escape_fd_exhaustion() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["fd-exhaust", "100000"]).await;
    eprintln!("{:?} / {}", report.line, report.exit.description);
    report.assert_denied("EMFILE");
    let limit = lab::limits().open_files;
    assert!(
        report.detail().ends_with(&format!("RLIMIT_NOFILE={limit}")),
        "{report:#?}"
    );
}

/// S4: a file stops growing at RLIMIT_FSIZE (EFBIG when SIGXFSZ is ignored).
#[tokio::test]
async fn escape_file_size() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["file-size", "64m"]).await;
    eprintln!("{:?} / {}", report.line, report.exit.description);
    report.assert_denied("EFBIG");
    let limit = lab::limits().file_size_bytes;
    assert!(
        report
            .detail()
            .starts_with(&format!("wrote {limit} bytes,")),
        "{report:#?}"
    );
}

/// S4: with SIGXFSZ at its default, going past RLIMIT_FSIZE kills the writer.
#[tokio::test]
async fn escape_file_size_signal() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["file-size-signal", "64m"]).await;
    assert!(
        report.line.is_none(),
        "killed before it could report: {report:#?}"
    );
    assert_ne!(
        report.exit.description, "exited with status 0",
        "{report:#?}"
    );
}

/// S4: core dumps are off and descriptors and file sizes are bounded.
#[tokio::test]
async fn escape_rlimits() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["rlimits"]).await;
    report.assert_denied_without_errno();
    let limits = lab::limits();
    let detail = report.detail();
    assert!(detail.contains("core=0/0"), "{report:#?}");
    assert!(
        detail.contains(&format!("nofile={0}/{0}", limits.open_files)),
        "{report:#?}"
    );
    assert!(
        detail.contains(&format!("fsize={0}/{0}", limits.file_size_bytes)),
        "{report:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Lifecycle (S1)

/// S1: a daemon (double fork, new session, stdio on /dev/null) dies with its session.
#[tokio::test]
async fn escape_daemon_survives_teardown() {
    let Some(lab) = lab() else { return };
    let mut session = lab.start(&["daemonize", "stay"]).await;
    let line = session.line().await.unwrap();
    assert_eq!(line["outcome"], "escaped", "{line}");
    let uid = session.host_uid();
    let cgroups = session.handle.cgroup_paths();
    assert!(
        host_processes_of_uid(uid).len() >= 2,
        "the probe and its daemon run"
    );
    session.end().await;
    assert_eq!(
        survivors_of_uid(uid).await,
        Vec::<String>::new(),
        "something of uid {uid} survived"
    );
    assert!(
        cgroups.iter().all(|dir| !dir.exists()),
        "cgroups left: {cgroups:?}"
    );
}

/// S1: a daemon left behind by a server that exits is ended with the sandbox.
#[tokio::test]
async fn escape_daemon_outlives_its_server() {
    let Some(lab) = lab() else { return };
    let report = lab.probe(&["daemonize", "exit"]).await;
    assert_eq!(report.outcome(), "escaped", "{report:#?}");
    assert_eq!(
        report.exit.description, "exited with status 0",
        "{report:#?}"
    );
    let uid = report.host_uid.unwrap();
    assert_eq!(
        survivors_of_uid(uid).await,
        Vec::<String>::new(),
        "the daemon survived its sandbox"
    );
}

/// The host's mount table, as lines.
fn host_mounts() -> Vec<String> {
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|line| line.split(' ').skip(4).collect::<Vec<_>>().join(" "))
        .collect();
    mounts.sort();
    mounts
}

/// S1: a hundred start and stop cycles leak no cgroup, mount, socket directory, uid, process or
/// descriptor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_hundred_cycles_leak_nothing() {
    let Some(lab) = lab() else { return };
    let mounts = host_mounts();
    let descriptors = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let mut uids = std::collections::HashSet::new();
    let mut cgroups = Vec::new();
    let mut run_dirs = Vec::new();
    for _ in 0..100 {
        let mut session = lab.start(&["idle"]).await;
        assert_eq!(session.line().await.unwrap()["outcome"], "escaped");
        uids.insert(session.host_uid());
        cgroups.extend(session.handle.cgroup_paths());
        run_dirs.push(session.run_dir());
        session.end().await;
    }
    assert!(cgroups.iter().all(|dir| !dir.exists()), "a cgroup was left");
    assert!(
        run_dirs.iter().all(|dir| !dir.exists()),
        "a socket directory was left"
    );
    for uid in &uids {
        assert_eq!(
            survivors_of_uid(*uid).await,
            Vec::<String>::new(),
            "uid {uid} still runs something"
        );
    }
    // Other tests run sandboxes at the same time: wait for the pool to be quiet before comparing
    // what is shared.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (lab.sandboxes.running() > 0 || !host_processes_in_pool().is_empty())
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if lab.sandboxes.running() == 0 {
        assert_eq!(host_mounts(), mounts, "the host's mount table changed");
        let now = std::fs::read_dir("/proc/self/fd").unwrap().count();
        assert!(
            now <= descriptors + 2,
            "descriptors grew from {descriptors} to {now}"
        );
    }
}
