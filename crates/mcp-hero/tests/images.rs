//! Install images end to end (issue 4): real npm and PyPI packages installed through the real
//! registries by the real install sandbox, then run by sessions from the read-only image; an
//! operator-placed binary that checks its own sandbox; a failing install; replacement and
//! deletion of images. Needs root and bubblewrap (skipped with a reason otherwise, failed under
//! `CI=true`) and the package registries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mcp_hero::images::{ImagesConfig, ImagesSetup, session_policy};
use mcp_hero::launch::SandboxLauncher;
use reqwest::Method;
use sandbox::Sandboxes;
use sandbox::egress::Decision;
use serde_json::{Value, json};
use support::Gateway;

mod support;

/// The longest an install may take here before the test gives up.
const INSTALL_WAIT: Duration = Duration::from_secs(150);

/// One sandbox runtime for the whole test binary (one uid pool), and every egress decision.
fn runtime() -> &'static (Sandboxes, Arc<Mutex<Vec<Decision>>>) {
    static RUNTIME: OnceLock<(Sandboxes, Arc<Mutex<Vec<Decision>>>)> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let decisions = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let decisions = decisions.clone();
            Arc::new(move |decision: Decision| decisions.lock().unwrap().push(decision))
        };
        let sandboxes = Sandboxes::new(support::sandbox_config(Vec::new()), sink).unwrap();
        (sandboxes, decisions)
    })
}

/// A gateway with the sandbox launcher and an installer writing under a private directory.
struct Harness {
    gateway: Gateway,
    images: PathBuf,
    binaries: PathBuf,
    _dir: tempfile::TempDir,
}

async fn harness() -> Option<Harness> {
    if !support::sandbox_available() {
        return None;
    }
    let (sandboxes, _) = runtime();
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("data/images");
    let binaries = dir.path().join("binaries");
    std::fs::create_dir_all(&binaries).unwrap();
    let config = ImagesConfig {
        dir: Some(images.clone()),
        binaries_dir: Some(binaries.clone()),
        timeout_secs: INSTALL_WAIT.as_secs(),
        ..ImagesConfig::default()
    };
    let launcher = Arc::new(SandboxLauncher::with_egress(
        sandboxes.clone(),
        session_policy(&config),
    ));
    let gateway = Gateway::start_full(
        mcp::GatewayConfig::default(),
        launcher,
        ImagesSetup {
            config,
            runtime: Ok(sandboxes.clone()),
        },
    )
    .await;
    Some(Harness {
        gateway,
        images,
        binaries,
        _dir: dir,
    })
}

impl Harness {
    /// Registers a stdio server with a package; returns its id.
    async fn add(&self, name: &str, command: &str, args: &[&str], package: Value) -> String {
        let body = json!({
            "name": name,
            "transport": {"type": "stdio", "command": command, "args": args},
            "package": package,
        });
        let (status, answer) = self
            .gateway
            .api(
                &self.gateway.alice,
                Method::POST,
                "/api/v1/servers",
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["image"]["state"], "pending", "{answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// Polls the image until it is ready or failed; returns it and every state seen on the way.
    async fn wait_image(&self, id: &str) -> (Value, Vec<Value>) {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let (status, image) = self
                .gateway
                .api(
                    &self.gateway.mallory,
                    Method::GET,
                    &format!("/api/v1/servers/{id}/image"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{image}");
            if image["state"] == "ready" || image["state"] == "failed" {
                return (image, seen);
            }
            seen.push(image);
            assert!(
                started.elapsed() < INSTALL_WAIT,
                "the install did not end: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn image_dir(&self, id: &str, generation: u64) -> PathBuf {
        self.images.join(id).join(generation.to_string())
    }

    /// The session status of server `name` in the only live session.
    async fn session_server(&self, name: &str) -> Value {
        let (status, sessions) = self
            .gateway
            .api(&self.gateway.alice, Method::GET, "/api/v1/sessions", None)
            .await;
        assert_eq!(status, 200);
        sessions[0]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|server| server["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// Runs `mcp-hero servers ARGS` against the harness's gateway as alice; returns whether it
/// succeeded, its stdout and its stderr.
async fn servers_cli(harness: &Harness, args: &[&str]) -> (bool, String, String) {
    let token_file = harness._dir.path().join("token");
    std::fs::write(&token_file, &harness.gateway.alice.token).unwrap();
    let url = format!("http://{}", harness.gateway.addr);
    // Not std's Command: the gateway answers on this test's (single) runtime thread.
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-hero"));
    command
        .env_clear()
        .args(["servers", "--url", &url, "--token-file"])
        .arg(&token_file)
        .args(args);
    let output = command.output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Waits until the session lists `tool`, up to a minute (a server from a fresh image starts).
async fn wait_for_tool(client: &mut support::Client, tool: &str) {
    let started = Instant::now();
    while !client.tool_names().await.iter().any(|name| name == tool) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{tool} never appeared: {:?}",
            client.tool_names().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A sealed image: root's, no write bit anywhere, the install cache gone.
fn assert_sealed(dir: &Path) {
    let meta = std::fs::metadata(dir).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", dir.display());
    assert_eq!(meta.mode() & 0o7777, 0o555);
    assert!(!dir.join(".install-cache").exists());
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_symlink() {
            continue;
        }
        assert_eq!(meta.uid(), 0, "{}", path.display());
        assert_eq!(meta.mode() & 0o222, 0, "{} is writable", path.display());
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
}

/// npm: installed once through the registry while a session waits (and is told so), then run
/// by that session from the sealed image.
#[tokio::test]
async fn an_npm_package_installs_once_and_sessions_run_it_from_the_image() {
    let Some(harness) = harness().await else {
        return;
    };
    let id = harness
        .add(
            "everything",
            "mcp-server-everything",
            &["stdio"],
            json!({"type": "npm", "spec": "@modelcontextprotocol/server-everything@2026.8.31"}),
        )
        .await;
    let mut client = harness.gateway.client(&harness.gateway.alice, "acme");
    client.initialize(json!({})).await;
    let mut waiting = harness.session_server("everything").await;
    while waiting["state"] == "starting" {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiting = harness.session_server("everything").await;
    }
    assert_eq!(waiting["state"], "failed", "{waiting}");
    assert!(
        waiting["reason"]
            .as_str()
            .unwrap()
            .starts_with("its package is still installing ("),
        "{waiting}"
    );

    // While it installs, the image belongs to the install sandbox's pooled uid.
    let dir = harness.image_dir(&id, 1);
    let started = Instant::now();
    let owner = loop {
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.uid() != 0 => break meta.uid(),
            _ => {}
        }
        assert!(
            started.elapsed() < INSTALL_WAIT,
            "the install never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(owner >= 900_000, "installing as pooled uid {owner}");

    let (image, seen) = harness.wait_image(&id).await;
    assert_eq!(image["state"], "ready", "{image}");
    assert_eq!(
        (image["phase"].clone(), image["progress"].clone()),
        (json!("done"), json!(100))
    );
    assert!(image["size_bytes"].as_u64().unwrap() > 1_000_000, "{image}");
    assert!(
        seen.iter().any(|s| s["state"] == "installing"
            && s["progress"].as_u64().is_some_and(|p| p > 0 && p < 100)),
        "progress was reported on the way: {seen:?}"
    );
    assert!(dir.join("node_modules/.bin/mcp-server-everything").exists());
    assert_sealed(&dir);

    // The waiting session picks the server up once its image is ready.
    wait_for_tool(&mut client, "everything__echo").await;
    let answer = client
        .call("everything__echo", json!({"message": "from the image"}))
        .await;
    assert!(
        answer["result"].to_string().contains("from the image"),
        "{answer}"
    );
}

/// PyPI: a virtual environment in the image, filled from the registry, run by a session.
#[tokio::test]
async fn a_pypi_package_installs_into_a_venv_and_sessions_run_it() {
    let Some(harness) = harness().await else {
        return;
    };
    let id = harness
        .add(
            "time",
            "mcp-server-time",
            &["--local-timezone", "UTC"],
            json!({"type": "pypi", "spec": "mcp-server-time==2026.10.19"}),
        )
        .await;
    let (image, _) = harness.wait_image(&id).await;
    assert_eq!(image["state"], "ready", "{image}");
    let dir = harness.image_dir(&id, 1);
    assert!(dir.join("venv/bin/mcp-server-time").exists());
    assert_sealed(&dir);

    let mut client = harness.gateway.client(&harness.gateway.alice, "acme");
    client.initialize(json!({})).await;
    wait_for_tool(&mut client, "time__get_current_time").await;
    let answer = client
        .call("time__get_current_time", json!({"timezone": "UTC"}))
        .await;
    assert!(answer["result"].to_string().contains("UTC"), "{answer}");
}

/// A nonexistent version fails the install with npm's own words, and sessions say so.
#[tokio::test]
async fn a_failing_install_ends_failed_with_its_reason() {
    let Some(harness) = harness().await else {
        return;
    };
    let id = harness
        .add(
            "pad",
            "left-pad",
            &[],
            json!({"type": "npm", "spec": "left-pad@99.99.99"}),
        )
        .await;
    let (image, _) = harness.wait_image(&id).await;
    assert_eq!(image["state"], "failed", "{image}");
    let error = image["error"].as_str().unwrap();
    assert!(
        error.starts_with("npm exited with status 1: ")
            && error.contains("No matching version found for left-pad@99.99.99"),
        "{error}"
    );
    assert!(
        !harness.image_dir(&id, 1).exists(),
        "a failed install leaves no directory"
    );
    let (ok, out, err) = servers_cli(&harness, &["install-status", "pad"]).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!(
            "pad: the install of left-pad@99.99.99 failed while resolving: {error}"
        )),
        "{err}"
    );
    let mut client = harness.gateway.client(&harness.gateway.alice, "acme");
    client.initialize(json!({})).await;
    let pad = harness.session_server("pad").await;
    assert_eq!(pad["state"], "failed");
    assert_eq!(pad["reason"], format!("its install failed: {error}"));
}

/// What the probe checks before it becomes the fixture: if the image were writable or a
/// registry reachable, it would exit instead of answering.
fn probe_script() -> String {
    format!(
        "#!/bin/sh\n\
         if touch /opt/mcp-server/bin/written 2>/dev/null; then echo 'the image is writable' >&2; exit 3; fi\n\
         for host in registry.npmjs.org pypi.org files.pythonhosted.org; do\n\
           if curl -sS --max-time 10 -o /dev/null \"https://$host/\" 2>/dev/null; then echo \"$host answered\" >&2; exit 4; fi\n\
         done\n\
         exec {} stdio --name probe\n",
        support::fixture_binary().display()
    )
}

/// An operator-placed binary: copied into the image, which its session sees read-only and from
/// which it cannot reach a registry; a new package replaces the image, deletion removes it.
#[tokio::test]
async fn a_binary_runs_read_only_without_registries_and_goes_with_its_server() {
    let Some(harness) = harness().await else {
        return;
    };
    for name in ["probe", "probe-v2"] {
        let path = harness.binaries.join(name);
        std::fs::write(&path, probe_script()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let spec = harness.binaries.join("probe").display().to_string();
    let id = harness
        .add(
            "probe",
            "probe",
            &[],
            json!({"type": "binary", "spec": spec}),
        )
        .await;
    let (image, _) = harness.wait_image(&id).await;
    assert_eq!(image["state"], "ready", "{image}");
    let first = harness.image_dir(&id, 1);
    assert_sealed(&first);
    assert_eq!(
        std::fs::metadata(first.join("bin/probe")).unwrap().mode() & 0o7777,
        0o555
    );

    let mut client = harness.gateway.client(&harness.gateway.alice, "acme");
    client.initialize(json!({})).await;
    let started = Instant::now();
    while !client.tool_names().await.iter().any(|t| t == "probe__echo") {
        let probe = harness.session_server("probe").await;
        assert!(
            started.elapsed() < Duration::from_secs(60) && probe["state"] != "failed",
            "the probe did not answer: {probe}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, decisions) = runtime();
    for host in ["registry.npmjs.org", "pypi.org", "files.pythonhosted.org"] {
        assert!(
            decisions
                .lock()
                .unwrap()
                .iter()
                .any(|d| d.host == host && d.reason == "denied-host"),
            "the session's connection to {host} was refused by name"
        );
    }

    // A new package is a new image; the old one goes once the new one is ready.
    let spec = harness.binaries.join("probe-v2").display().to_string();
    let (status, answer) = harness
        .gateway
        .api(
            &harness.gateway.alice,
            Method::PATCH,
            &format!("/api/v1/servers/{id}"),
            Some(json!({
                "transport": {"type": "stdio", "command": "probe-v2"},
                "package": {"type": "binary", "spec": spec},
            })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (image, _) = harness.wait_image(&id).await;
    assert_eq!(
        (image["state"].clone(), image["generation"].clone()),
        (json!("ready"), json!(2))
    );
    assert!(harness.image_dir(&id, 2).join("bin/probe-v2").exists());
    assert!(!first.exists(), "the replaced image is removed");

    // The command line follows an install to its end, and asks for a new one.
    let (ok, out, err) = servers_cli(&harness, &["install-status", "probe", "--no-wait"]).await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("probe: {spec} installed (")),
        "{out}"
    );
    let (ok, out, err) = servers_cli(&harness, &["reinstall", &id]).await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("probe: {spec} installed (")),
        "{out}"
    );
    assert!(harness.image_dir(&id, 3).join("bin/probe-v2").exists());
    assert!(!harness.image_dir(&id, 2).exists());

    let (status, _) = harness
        .gateway
        .api(
            &harness.gateway.alice,
            Method::DELETE,
            &format!("/api/v1/servers/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        !harness.images.join(&id).exists(),
        "deleting the server deletes its images"
    );
}

/// At start, an install a crash interrupted starts over as a new generation, and directories no
/// current image owns (a server deleted while the gateway was down, an old generation) go.
#[tokio::test]
async fn upkeep_resumes_interrupted_installs_and_sweeps_what_no_image_owns() {
    let Some(harness) = harness().await else {
        return;
    };
    let binary = harness.binaries.join("server");
    std::fs::write(&binary, probe_script()).unwrap();
    // Registered behind the API's back: nothing starts its install, as after a crash.
    let scope = harness.gateway.store.operator_scope("acme").await.unwrap();
    let permit = auth::authorize::<auth::ManageServers>(auth::Role::Owner).unwrap();
    let server = harness
        .gateway
        .store
        .create_server(
            &scope,
            &permit,
            store::NewServer {
                name: "resumed".into(),
                transport: store::ServerTransport::Stdio {
                    command: "server".into(),
                    args: Vec::new(),
                    working_dir: None,
                    env: Default::default(),
                },
                exposure: store::Exposure::Prefixed,
                enabled: true,
                internal: false,
                package: Some(
                    store::Package::parse(
                        store::PackageKind::Binary,
                        &binary.display().to_string(),
                    )
                    .unwrap(),
                ),
            },
        )
        .await
        .unwrap();
    let id = server.id.to_string();
    for stale in ["gone-server/1", &format!("{id}/1"), &format!("{id}/9")] {
        std::fs::create_dir_all(harness.images.join(stale).join("bin")).unwrap();
    }

    harness.gateway.images.upkeep().await;
    let (image, _) = harness.wait_image(&id).await;
    assert_eq!(
        (image["state"].clone(), image["generation"].clone()),
        (json!("ready"), json!(2)),
        "{image}"
    );
    assert!(harness.image_dir(&id, 2).join("bin/server").exists());
    for stale in ["gone-server", &format!("{id}/1"), &format!("{id}/9")] {
        assert!(!harness.images.join(stale).exists(), "{stale} was swept");
    }
}
