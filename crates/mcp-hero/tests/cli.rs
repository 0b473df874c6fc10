//! The real `mcp-hero` binary: root secret refusals (S11), rotation, config errors, serving over
//! plain HTTP and TLS (S13), and the quickstart a newcomer runs first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SECRET_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const SECRET_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

/// The binary with an empty environment (only PATH), so nothing from the developer's shell leaks in.
fn mcp_hero(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-hero"));
    command.env_clear().env("PATH", "/usr/bin:/bin").args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    mcp_hero(env, args).stdin(Stdio::null()).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn check_refused(output: &Output, message: &str) {
    assert!(
        !output.status.success(),
        "expected failure, got success: {}",
        stderr(output)
    );
    let text = stderr(output);
    assert!(
        text.contains(message),
        "expected {message:?} in stderr:\n{text}"
    );
    for secret in [SECRET_A, SECRET_B] {
        assert!(
            !text.contains(secret),
            "the error echoes a root secret:\n{text}"
        );
    }
}

#[test]
fn s11_missing_malformed_short_and_wrong_root_secrets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for command in [
        &["migrate", "--data-dir", data][..],
        &["serve", "--data-dir", data],
        &["admin", "--data-dir", data, "rotate-key"],
    ] {
        let output = run(&[], command);
        check_refused(&output, "MCP_HERO_ROOT_SECRET is not set");
        check_refused(&output, "mcp-hero secret generate");
    }
    check_refused(
        &run(
            &[("MCP_HERO_ROOT_SECRET", "not base64 at all!")],
            &["migrate", "--data-dir", data],
        ),
        "MCP_HERO_ROOT_SECRET is not valid base64",
    );
    check_refused(
        &run(
            &[("MCP_HERO_ROOT_SECRET", "c2hvcnQ=")],
            &["migrate", "--data-dir", data],
        ),
        "MCP_HERO_ROOT_SECRET decodes to 5 bytes; at least 32 are required",
    );
    // A store created under A refuses B, before serving anything.
    assert!(
        run(
            &[("MCP_HERO_ROOT_SECRET", SECRET_A)],
            &["migrate", "--data-dir", data]
        )
        .status
        .success()
    );
    for command in [
        &["migrate", "--data-dir", data][..],
        &["serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
    ] {
        check_refused(
            &run(&[("MCP_HERO_ROOT_SECRET", SECRET_B)], command),
            "MCP_HERO_ROOT_SECRET does not match the root secret this store was created with",
        );
    }
    // The secret is never taken from a flag.
    let flag = run(
        &[],
        &["migrate", "--data-dir", data, "--root-secret", SECRET_A],
    );
    assert!(!flag.status.success());
    assert!(
        stderr(&flag).contains("unexpected argument '--root-secret'"),
        "{}",
        stderr(&flag)
    );
}

#[test]
fn secret_generate_prints_a_fresh_usable_secret() {
    let first = stdout(&run(&[], &["secret", "generate"]));
    let second = stdout(&run(&[], &["secret", "generate"]));
    assert_ne!(first, second);
    let first = first.trim();
    assert_eq!(first.len(), 44, "32 bytes in padded base64: {first}");
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        &[("MCP_HERO_ROOT_SECRET", first)],
        &["migrate", "--data-dir", dir.path().to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("schema is up to date"));
}

#[test]
fn admin_commands_and_rotate_key_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let with_a = [("MCP_HERO_ROOT_SECRET", SECRET_A)];
    let ok = |env: &[(&str, &str)], args: &[&str]| {
        let output = run(env, args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        stdout(&output)
    };
    ok(
        &with_a,
        &[
            "admin",
            "--data-dir",
            data,
            "org",
            "create",
            "--slug",
            "acme",
            "--owner",
            "Alice@Example.com",
        ],
    );
    ok(
        &with_a,
        &[
            "admin",
            "--data-dir",
            data,
            "member",
            "add",
            "--org",
            "acme",
            "--email",
            "bob@example.com",
            "--role",
            "admin",
        ],
    );
    let token = ok(
        &with_a,
        &[
            "admin",
            "--data-dir",
            data,
            "token",
            "create",
            "--org",
            "acme",
            "--email",
            "alice@example.com",
            "--name",
            "ci",
        ],
    );
    // log-check: allow(a token of this test's throwaway store, shown when its format is wrong)
    assert!(token.trim().starts_with("mcph_pat_"), "{token}");
    check_refused(
        &run(
            &with_a,
            &[
                "admin",
                "--data-dir",
                data,
                "member",
                "add",
                "--org",
                "nope",
                "--email",
                "c@example.com",
            ],
        ),
        "organization not found",
    );
    check_refused(
        &run(
            &with_a,
            &[
                "admin",
                "--data-dir",
                data,
                "member",
                "add",
                "--org",
                "acme",
                "--email",
                "c@example.com",
                "--role",
                "root",
            ],
        ),
        "unknown role \"root\"",
    );
    check_refused(
        &run(
            &with_a,
            &[
                "admin",
                "--data-dir",
                data,
                "token",
                "revoke",
                "--org",
                "acme",
                "--id",
                "nope",
            ],
        ),
        "token not found",
    );
    check_refused(
        &run(
            &with_a,
            &[
                "admin",
                "--data-dir",
                data,
                "token",
                "create",
                "--org",
                "acme",
                "--email",
                "x@example.com",
                "--name",
                "t",
            ],
        ),
        "x@example.com is not a member of acme",
    );

    // Rotation: new secret with the old as previous; rotate-key re-seals; then the old one is gone.
    let rotating = [
        ("MCP_HERO_ROOT_SECRET", SECRET_B),
        ("MCP_HERO_ROOT_SECRET_PREVIOUS", SECRET_A),
    ];
    check_refused(
        &run(
            &[("MCP_HERO_ROOT_SECRET", SECRET_B)],
            &["migrate", "--data-dir", data],
        ),
        "does not match",
    );
    let report = ok(&rotating, &["admin", "--data-dir", data, "rotate-key"]);
    assert!(report.contains("1 sealed records, 1 re-sealed"), "{report}");
    ok(
        &[("MCP_HERO_ROOT_SECRET", SECRET_B)],
        &["migrate", "--data-dir", data],
    );
    check_refused(
        &run(&with_a, &["migrate", "--data-dir", data]),
        "does not match",
    );
}

#[test]
fn config_file_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mcp-hero.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"x\"\n",
    )
    .unwrap();
    let output = run(
        &[
            ("MCP_HERO_ROOT_SECRET", SECRET_A),
            ("MCP_HERO_CONFIG", config.to_str().unwrap()),
        ],
        &[
            "serve",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ],
    );
    check_refused(&output, "unknown field `cert_file`");
    std::fs::write(&config, format!("root_secret = \"{SECRET_A}\"\n")).unwrap();
    let output = run(
        &[("MCP_HERO_ROOT_SECRET", SECRET_A)],
        &["serve", "--config", config.to_str().unwrap()],
    );
    check_refused(
        &output,
        "`root_secret` may not be set in a file; set MCP_HERO_ROOT_SECRET in the environment",
    );
    let output = run(
        &[
            ("MCP_HERO_ROOT_SECRET", SECRET_A),
            ("MCP_HERO_LISTEN", "nowhere"),
        ],
        &["serve", "--data-dir", dir.path().to_str().unwrap()],
    );
    check_refused(
        &output,
        "invalid listen address \"nowhere\" (from MCP_HERO_LISTEN)",
    );
    let output = run(
        &[("MCP_HERO_ROOT_SECRET", SECRET_A), ("MCP_HERO_LOG", "[[[")],
        &["migrate"],
    );
    check_refused(&output, "invalid MCP_HERO_LOG");
}

/// A running gateway, killed when dropped.
struct Running {
    child: Child,
    address: String,
    log: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a command and waits for its "listening on" log line (stderr).
fn start(command: Command) -> Running {
    start_until(command, "listening on ")
}

/// Starts a command and reads its log (stderr) until a line containing `marker`, noting the
/// address of its "listening on" line on the way.
fn start_until(mut command: Command, marker: &str) -> Running {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // From here on, dropping `running` kills and reaps the child, whatever happens.
    let mut running = Running {
        child,
        address: String::new(),
        log: String::new(),
    };
    let mut reader = BufReader::new(running.child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            panic!("the gateway never logged {marker:?}:\n{}", running.log);
        }
        running.log.push_str(&line);
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap();
            running.address = url.split("://").nth(1).unwrap_or(url).to_owned();
        }
        if line.contains(marker) {
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
            return running;
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn s13_loopback_serves_without_warning_and_bad_tls_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [("MCP_HERO_ROOT_SECRET", SECRET_A)];
    let loopback = start(mcp_hero(
        &env,
        &["serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
    ));
    assert!(
        !loopback.log.contains("plain HTTP on a non-loopback"),
        "{}",
        loopback.log
    );
    assert_eq!(
        client()
            .get(format!("http://{}/readyz", loopback.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(loopback);
    let missing = run(
        &env,
        &[
            "serve",
            "--data-dir",
            data,
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ],
    );
    check_refused(
        &missing,
        "cannot load the TLS certificate /nonexistent.pem and key /nonexistent.key",
    );
    let half = run(
        &env,
        &[
            "serve",
            "--data-dir",
            data,
            "--tls-cert",
            "/nonexistent.pem",
        ],
    );
    check_refused(&half, "--tls-key / tls.key is missing");
}

#[test]
fn s13_non_loopback_warning_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let running = start_until(
        mcp_hero(
            &[("MCP_HERO_ROOT_SECRET", SECRET_A)],
            &["serve", "--data-dir", data, "--listen", "0.0.0.0:0"],
        ),
        "plain HTTP on a non-loopback address",
    );
    assert!(running.log.contains("WARN"), "{}", running.log);
}

fn write_self_signed(dir: &Path) -> (String, String, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
        cert_pem.into_bytes(),
    )
}

#[tokio::test]
async fn s13_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = write_self_signed(dir.path());
    let data = dir.path().join("data");
    let running = start(mcp_hero(
        &[("MCP_HERO_ROOT_SECRET", SECRET_A)],
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    ));
    assert!(
        running.log.contains("listening on https://"),
        "{}",
        running.log
    );
    let port = running.address.rsplit(':').next().unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert_pem).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let answer = trusting
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "ok");
    // Plain HTTP to the TLS port gets no API answer.
    let plain = client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test]
async fn quickstart_starts_a_fresh_gateway_and_says_how_to_connect() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("quickstart");
    let data = data.to_str().unwrap();
    let mut running = start(mcp_hero(
        &[],
        &["quickstart", "--data-dir", data, "--listen", "127.0.0.1:0"],
    ));
    // The welcome text goes to stdout after the listening line.
    let mut stdout = BufReader::new(running.child.stdout.take().unwrap());
    let mut welcome = String::new();
    while !welcome.contains("Stop with Ctrl-C") {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "quickstart output ended early:\n{welcome}"
        );
        welcome.push_str(&line);
    }
    let value_of = |key: &str| {
        welcome
            .lines()
            .find_map(|line| line.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in:\n{welcome}"))
            .to_owned()
    };
    let root_secret = value_of("MCP_HERO_ROOT_SECRET=");
    let token = value_of("MCP_HERO_TOKEN=");
    assert!(welcome.contains("WITHOUT IT THIS DATA CAN NEVER BE OPENED AGAIN"));
    assert!(welcome.contains(&format!(
        "curl -H \"Authorization: Bearer $MCP_HERO_TOKEN\" http://{}/api/v1/organization",
        running.address
    )));
    let org: serde_json::Value = client()
        .get(format!("http://{}/api/v1/organization", running.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(org["slug"], "demo");
    assert!(
        welcome.contains(&format!("http://{}/o/demo/mcp", running.address)),
        "the welcome says where MCP clients connect:\n{welcome}"
    );
    drop(running);

    // The root secret is not kept on disk: not in the data dir, in any file.
    for entry in std::fs::read_dir(data).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(root_secret.len())
                .any(|w| w == root_secret.as_bytes())
        );
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    }
    // A second quickstart on the same directory is refused and says how to restart it instead.
    check_refused(
        &run(&[], &["quickstart", "--data-dir", data]),
        "already holds data",
    );
    // The printed secret reopens the data with `serve`.
    let again = start(mcp_hero(
        &[("MCP_HERO_ROOT_SECRET", &root_secret)],
        &["serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
    ));
    let members = client()
        .get(format!("http://{}/api/v1/members", again.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(members.status(), 200);
}

/// Stdio servers run sandboxed by default; when the sandbox runtime can't run (here: a missing
/// bubblewrap) they are refused with a reason the API shows; `--insecure-no-sandbox` runs them
/// unsandboxed, warning at start and at every server start.
#[tokio::test]
async fn stdio_servers_run_sandboxed_refused_without_a_sandbox_or_run_insecure_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [("MCP_HERO_ROOT_SECRET", SECRET_A)];
    let created = run(
        &env,
        &[
            "admin",
            "--data-dir",
            data,
            "org",
            "create",
            "--slug",
            "acme",
            "--owner",
            "a@acme.example",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let issued = run(
        &env,
        &[
            "admin",
            "--data-dir",
            data,
            "token",
            "create",
            "--org",
            "acme",
            "--email",
            "a@acme.example",
            "--name",
            "t",
        ],
    );
    let token = stdout(&issued).lines().next().unwrap().to_owned();

    let list_tools = async |address: &str| -> (serde_json::Value, serde_json::Value) {
        let url = format!("http://{address}/o/acme/mcp");
        let init = client()
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
            .send()
            .await
            .unwrap();
        let session = init.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let tools: serde_json::Value = client()
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", session)
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sessions: serde_json::Value = client()
            .get(format!("http://{address}/api/v1/sessions"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (tools, sessions)
    };

    let fixture = support::fixture_binary().display().to_string();
    let config = |extra: &str| {
        let path = dir.path().join(format!("config-{}.toml", extra.len()));
        std::fs::write(
            &path,
            format!("[sandbox]\nro_binds = [{fixture:?}]\n{extra}"),
        )
        .unwrap();
        path.display().to_string()
    };
    let serve = |config: &str, extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--data-dir",
            data,
            "--listen",
            "127.0.0.1:0",
            "--config",
        ];
        args.push(config);
        args.extend_from_slice(extra);
        mcp_hero(&env, &args)
    };

    let unavailable = start(serve(&config("bwrap = \"/nonexistent/bwrap\"\n"), &[]));
    let registered = client()
        .post(format!("http://{}/api/v1/servers", unavailable.address))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "fixture", "transport": {"type": "stdio", "command": fixture, "args": ["stdio"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let (tools, sessions) = list_tools(&unavailable.address).await;
    assert_eq!(tools["result"]["tools"], serde_json::json!([]), "{tools}");
    let reason = sessions[0]["servers"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("needs the sandbox runtime") && reason.contains("/nonexistent/bwrap"),
        "{reason}"
    );
    assert!(
        unavailable
            .log
            .contains("the sandbox runtime is unavailable"),
        "{}",
        unavailable.log
    );
    drop(unavailable);

    if support::sandbox_available() {
        let sandboxed = start(serve(&config(""), &[]));
        assert!(
            sandboxed.log.contains("sandbox runtime ready"),
            "{}",
            sandboxed.log
        );
        assert!(
            !sandboxed.log.contains("--insecure-no-sandbox"),
            "{}",
            sandboxed.log
        );
        let (tools, sessions) = list_tools(&sandboxed.address).await;
        assert!(
            tools.to_string().contains("fixture__echo"),
            "{tools} {sessions}"
        );
    }

    let insecure = start(serve(&config(""), &["--insecure-no-sandbox"]));
    assert!(
        insecure.log.contains("WARN") && insecure.log.contains("--insecure-no-sandbox"),
        "{}",
        insecure.log
    );
    let (tools, _) = list_tools(&insecure.address).await;
    assert!(tools.to_string().contains("fixture__echo"), "{tools}");
}

/// S1: after a gateway crash (SIGKILL), `--die-with-parent` ends its sandboxes, and the next
/// start removes what they left (cgroups, socket directories).
#[tokio::test]
async fn a_crashed_gateways_sandboxes_die_and_the_next_start_sweeps_them() {
    if !support::sandbox_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [("MCP_HERO_ROOT_SECRET", SECRET_A)];
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--data-dir", data];
        all.extend_from_slice(args);
        run(&env, &all)
    };
    assert!(
        admin(&[
            "org",
            "create",
            "--slug",
            "acme",
            "--owner",
            "a@acme.example"
        ])
        .status
        .success()
    );
    let issued = admin(&[
        "token",
        "create",
        "--org",
        "acme",
        "--email",
        "a@acme.example",
        "--name",
        "t",
    ]);
    let token = stdout(&issued).lines().next().unwrap().to_owned();
    let fixture = support::fixture_binary().display().to_string();
    let config = dir.path().join("config.toml");
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    // tempdir is 0700: the sandbox uids must traverse to the run dir.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::write(
        &config,
        format!(
            "[sandbox]\nro_binds = [{fixture:?}]\nrun_dir = {:?}\n",
            run_dir.display().to_string()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let serve = || {
        mcp_hero(
            &env,
            &[
                "serve",
                "--data-dir",
                data,
                "--listen",
                "127.0.0.1:0",
                "--config",
                &config,
            ],
        )
    };

    let mut first = start(serve());
    let gateway_pid = first.child.id();
    let registered = client()
        .post(format!("http://{}/api/v1/servers", first.address))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "fixture", "transport": {"type": "stdio", "command": fixture, "args": ["stdio"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let url = format!("http://{}/o/acme/mcp", first.address);
    let mcp = |body: serde_json::Value, session: Option<&str>| {
        let mut request = client()
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
    };
    let init = mcp(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}), None).await.unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let tools: serde_json::Value = mcp(
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        Some(&session),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(tools.to_string().contains("echo"), "{tools}");

    let instance = format!("gw-{gateway_pid}");
    let sandboxed: Vec<u32> = processes_in_cgroup(&instance);
    assert!(
        !sandboxed.is_empty(),
        "the session's sandbox runs under {instance}"
    );
    let leftover_dirs = cgroup_dirs_named(&instance);
    assert!(!leftover_dirs.is_empty());

    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sandboxed
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(
            Instant::now() < deadline,
            "sandbox processes outlived the gateway"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        run_dir.join(&instance).exists(),
        "the crash left its socket directory"
    );

    let second = start(serve());
    assert!(
        second
            .log
            .contains("removed sandboxes left by a gateway that is no longer running"),
        "{}",
        second.log
    );
    assert!(
        cgroup_dirs_named(&instance).is_empty(),
        "the old cgroups are gone"
    );
    assert!(
        !run_dir.join(&instance).exists(),
        "the old socket directory is gone"
    );
}

/// Every directory named `name` under /sys/fs/cgroup (a few levels deep).
fn cgroup_dirs_named(name: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, name: &str, depth: usize, found: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if entry.file_name() == name {
                found.push(entry.path());
            } else if depth > 0 {
                walk(&entry.path(), name, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 6, &mut found);
    found
}

/// Pids whose cgroup path mentions `instance`.
fn processes_in_cgroup(instance: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains(instance))
        })
        .collect()
}

/// S20 from the CLI: `admin org delete` refuses a wrong confirmation, then deletes the
/// organization with its members and tokens and removes its servers' image directories, leaving
/// the other organization's.
#[tokio::test]
async fn s20_admin_org_delete_removes_the_organization_and_its_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let with_a = [("MCP_HERO_ROOT_SECRET", SECRET_A)];
    let ok = |args: &[&str]| {
        let output = run(&with_a, args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        stdout(&output)
    };
    for (slug, owner) in [("acme", "alice@acme.example"), ("beta", "bob@beta.example")] {
        ok(&[
            "admin",
            "--data-dir",
            data,
            "org",
            "create",
            "--slug",
            slug,
            "--owner",
            owner,
        ]);
    }
    // Servers come from the API; here the store is written directly while no gateway runs.
    let root = vault::RootSecret::from_base64(SECRET_A).unwrap();
    let location = store::DatabaseLocation::Sqlite {
        path: dir.path().join("mcp-hero.db"),
    };
    let store = store::Store::open(&location, vault::Vault::new(&root, None))
        .await
        .unwrap();
    let permit = auth::authorize::<auth::ManageServers>(auth::Role::Owner).unwrap();
    let mut images = Vec::new();
    for slug in ["acme", "beta"] {
        let scope = store.operator_scope(slug).await.unwrap();
        let server = store
            .create_server(
                &scope,
                &permit,
                store::NewServer {
                    name: "files".to_owned(),
                    transport: store::ServerTransport::Stdio {
                        command: "server-files".to_owned(),
                        args: Vec::new(),
                        working_dir: None,
                        env: Default::default(),
                    },
                    exposure: store::Exposure::Prefixed,
                    enabled: true,
                    internal: false,
                    package: None,
                },
            )
            .await
            .unwrap();
        let image = dir.path().join("images").join(server.id.as_str()).join("1");
        std::fs::create_dir_all(&image).unwrap();
        std::fs::write(image.join("server"), b"#!/bin/sh\n").unwrap();
        images.push(image.parent().unwrap().to_owned());
    }
    store.close().await;

    check_refused(
        &run(
            &with_a,
            &[
                "admin",
                "--data-dir",
                data,
                "org",
                "delete",
                "--slug",
                "acme",
                "--confirm",
                "beta",
            ],
        ),
        "--confirm \"beta\" does not repeat --slug \"acme\"; nothing was deleted",
    );
    assert!(images[0].exists());
    let said = ok(&[
        "admin",
        "--data-dir",
        data,
        "org",
        "delete",
        "--slug",
        "acme",
        "--confirm",
        "acme",
    ]);
    assert!(
        said.contains("deleted organization acme") && said.contains("1 servers, 1 members"),
        "{said}"
    );
    assert!(!images[0].exists(), "acme's image directory is left");
    assert!(images[1].exists(), "beta's image directory was removed");
    check_refused(
        &run(
            &with_a,
            &[
                "admin",
                "--data-dir",
                data,
                "token",
                "create",
                "--org",
                "acme",
                "--email",
                "alice@acme.example",
                "--name",
                "ci",
            ],
        ),
        "organization \"acme\"",
    );
    // Beta is untouched.
    ok(&[
        "admin",
        "--data-dir",
        data,
        "token",
        "create",
        "--org",
        "beta",
        "--email",
        "bob@beta.example",
        "--name",
        "ci",
    ]);
}
