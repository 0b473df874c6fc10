//! The sandbox runtime end to end (S1–S4): real bubblewrap, the real exec helper (this crate's
//! binary), the fixture server inside. The escape suite lives in `escape.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sandbox::egress::{Decision, EgressPolicy};
use sandbox::{Sandboxes, StartRequest};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

mod support;

fn fixture() -> PathBuf {
    support::fixture_binary()
}

fn sandboxes() -> Option<Sandboxes> {
    support::sandbox_available().then(|| {
        Sandboxes::new(
            support::sandbox_config(Vec::new()),
            Arc::new(|_: Decision| {}),
        )
        .unwrap()
    })
}

#[tokio::test]
async fn the_fixture_answers_from_inside_a_sandbox() {
    let Some(sandboxes) = sandboxes() else { return };
    let mut running = sandboxes
        .start(StartRequest {
            org: "o".into(),
            server: "fixture".into(),
            session: "s".into(),
            command: vec![fixture().to_string_lossy().into_owned(), "stdio".into()],
            working_dir: None,
            env: Vec::new(),
            files: Vec::new(),
            egress: Some(EgressPolicy::default()),
            image: None,
            decisions: None,
        })
        .await
        .unwrap();
    running
        .stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(running.stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    let mut stderr = String::new();
    if !matches!(line, Ok(Ok(Some(_)))) {
        use tokio::io::AsyncReadExt as _;
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            running.stderr.read_to_string(&mut stderr),
        )
        .await;
    }
    let line = line
        .unwrap()
        .unwrap()
        .unwrap_or_else(|| panic!("no answer; stderr: {stderr}"));
    assert!(line.contains("\"result\""), "{line}");
    let uid = running.handle.host_uid().unwrap();
    assert!(uid >= 900_000, "pooled uid {uid}");
    let cgroups = running.handle.cgroup_paths();
    assert!(cgroups.iter().all(|p| p.exists()));
    drop(running.stdin);
    running.handle.terminate().await.unwrap();
    assert!(cgroups.iter().all(|p| !p.exists()), "cgroups removed");
}

async fn run_shell(sandboxes: &Sandboxes, script: &str) -> (String, String, sandbox::Exit) {
    use tokio::io::AsyncReadExt as _;
    let mut running = sandboxes
        .start(StartRequest {
            org: "o".into(),
            server: "shell".into(),
            session: "s".into(),
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
            working_dir: None,
            env: vec![("GREETING".into(), zeroize::Zeroizing::new("hello".into()))],
            files: vec![sandbox::InjectedFile {
                path: "/home/mcp/.config/creds.json".into(),
                mode: 0o400,
                contents: zeroize::Zeroizing::new(b"{\"k\":1}".to_vec()),
            }],
            egress: Some(EgressPolicy::default()),
            image: None,
            decisions: None,
        })
        .await
        .unwrap();
    drop(running.stdin);
    let (mut out, mut err) = (String::new(), String::new());
    let _ = tokio::join!(
        running.stdout.read_to_string(&mut out),
        running.stderr.read_to_string(&mut err)
    );
    let exit = running.handle.wait().await;
    running.handle.terminate().await.unwrap();
    (out, err, exit)
}

/// S2/S12: the server gets exactly its configured environment (plus PATH, HOME, LANG and the
/// proxy variables), its injected file from memory, and no descriptor beyond stdio: nothing the
/// gateway inherited (a jobserver pipe in tests) leaks in.
#[tokio::test]
async fn the_server_sees_its_environment_its_file_and_only_stdio() {
    let Some(sandboxes) = sandboxes() else { return };
    let (out, err, exit) = run_shell(
        &sandboxes,
        "ls -l /proc/self/fd > /tmp/fds; grep -v ' -> /proc/' /tmp/fds | awk 'NF >= 9 {print $9}' | sort -n | tr '\\n' ' '; echo; env | cut -d= -f1 | sort | tr '\\n' ' '; echo; \
         cat /home/mcp/.config/creds.json; echo; stat -c '%a %U' /home/mcp/.config/creds.json; \
         grep -E '^Max (open files|file size|core file size)' /proc/self/limits | tr -s ' '",
    )
    .await;
    assert_eq!(exit.description, "exited with status 0", "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // `ls` itself holds one more, on /proc/self/fd, which the listing leaves out.
    assert_eq!(lines[0].trim(), "0 1 2", "only stdio is open: {out}");
    assert_eq!(
        lines[1].trim(),
        "ALL_PROXY GREETING HOME HTTPS_PROXY HTTP_PROXY LANG NODE_USE_ENV_PROXY PATH PWD TMPDIR USER all_proxy http_proxy https_proxy",
    );
    assert_eq!(lines[2], "{\"k\":1}");
    assert_eq!(lines[3], "400 mcp");
    assert!(
        lines[4].starts_with("Max file size 67108864 67108864"),
        "{out}"
    );
    assert!(lines[5].starts_with("Max core file size 0 0"), "{out}");
    assert!(lines[6].starts_with("Max open files 1024 1024"), "{out}");
}

/// A gateway whose stdio servers run in real sandboxes, with `limits` and `caps`.
async fn sandboxed_gateway(
    adjust: impl FnOnce(&mut sandbox::SandboxConfig),
) -> Option<(support::Gateway, Sandboxes)> {
    if !support::sandbox_available() {
        return None;
    }
    let mut config = support::sandbox_config(Vec::new());
    adjust(&mut config);
    let sandboxes = Sandboxes::new(config, Arc::new(|_: Decision| {})).unwrap();
    let launcher = Arc::new(mcp_hero::launch::SandboxLauncher::new(sandboxes.clone()));
    let gateway =
        support::Gateway::start_with_launcher(mcp::GatewayConfig::default(), launcher).await;
    Some((gateway, sandboxes))
}

/// S1: a client session's server runs in a sandbox of its own, and ending the session (DELETE)
/// destroys it: no process, cgroup or socket directory is left.
#[tokio::test]
async fn ending_a_session_destroys_its_sandbox() {
    let Some((gateway, sandboxes)) = sandboxed_gateway(|_| {}).await else {
        return;
    };
    gateway.add_fixture("fixture", &[], true).await;
    let mut first = gateway.client(&gateway.alice, "acme");
    first.initialize(serde_json::json!({})).await;
    let mut second = gateway.client(&gateway.alice, "acme");
    second.initialize(serde_json::json!({})).await;
    for client in [&mut first, &mut second] {
        let answer = client.call("echo", serde_json::json!({"text": "hi"})).await;
        assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    }
    assert_eq!(sandboxes.running(), 2, "one sandbox per session");
    assert_eq!(first.delete().await, 200);
    support::eventually("the first session's sandbox is gone", async || {
        sandboxes.running() == 1
    })
    .await;
    assert_eq!(second.delete().await, 200);
    support::eventually("every sandbox is gone", async || sandboxes.running() == 0).await;
}

/// S4: the caps refuse a sandbox beyond them, and the client gets a JSON-RPC error saying so
/// rather than waiting in a queue.
#[tokio::test]
async fn a_sandbox_beyond_the_cap_is_refused_with_a_clear_error() {
    let Some((gateway, _sandboxes)) = sandboxed_gateway(|config| config.caps.per_server = 1).await
    else {
        return;
    };
    gateway.add_fixture("fixture", &[], true).await;
    let mut first = gateway.client(&gateway.alice, "acme");
    first.initialize(serde_json::json!({})).await;
    let answer = first.call("echo", serde_json::json!({"text": "hi"})).await;
    assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    let mut second = gateway.client(&gateway.alice, "acme");
    second.initialize(serde_json::json!({})).await;
    let answer = second.call("echo", serde_json::json!({"text": "hi"})).await;
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("server `fixture` runs its maximum of 1 sandboxes"),
        "{answer}"
    );
}

/// S4: a server past its wall-clock limit is ended, and the client's next call says why.
#[tokio::test]
async fn a_server_past_its_wall_clock_limit_is_ended_with_the_reason() {
    let Some((gateway, sandboxes)) =
        sandboxed_gateway(|config| config.limits.wall_clock = Duration::from_secs(1)).await
    else {
        return;
    };
    gateway.add_fixture("fixture", &[], true).await;
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(serde_json::json!({})).await;
    let answer = client.call("echo", serde_json::json!({"text": "hi"})).await;
    assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    support::eventually("the sandbox is ended", async || sandboxes.running() == 0).await;
    let answer = client.call("echo", serde_json::json!({"text": "hi"})).await;
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("wall-clock limit"), "{answer}");
}

/// S4: a server that sees no traffic for its idle limit is ended, and the client's next call
/// says why.
#[tokio::test]
async fn an_idle_server_is_ended_with_the_reason() {
    let Some((gateway, sandboxes)) =
        sandboxed_gateway(|config| config.limits.idle = Duration::from_secs(1)).await
    else {
        return;
    };
    gateway.add_fixture("fixture", &[], true).await;
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(serde_json::json!({})).await;
    let answer = client.call("echo", serde_json::json!({"text": "hi"})).await;
    assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    support::eventually("the idle sandbox is ended", async || {
        sandboxes.running() == 0
    })
    .await;
    let answer = client.call("echo", serde_json::json!({"text": "hi"})).await;
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("idle limit"), "{answer}");
}
