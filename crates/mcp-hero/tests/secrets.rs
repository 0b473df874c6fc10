//! Server secrets end to end (issue 5 and 6): variables and files through the API, injected
//! into the server's process when a session starts it and nowhere else (S12, S14, S15), the
//! server's stderr redacted before it reaches the log buffer (S18), and bad input refused
//! with the field named.

#![allow(
    clippy::disallowed_methods,
    reason = "tests compare their own canaries with what the gateway shows"
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};
use support::Gateway;
use support::capture::captured_logs;

fn canary(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a variable through the API and returns its view.
async fn variable(gateway: &Gateway, server: &str, name: &str, kind: &str, value: &str) -> Value {
    let (status, answer) = gateway
        .api(
            &gateway.alice,
            Method::POST,
            &format!("/api/v1/servers/{server}/variables"),
            Some(json!({"name": name, "type": kind, "value": value})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    answer
}

/// Uploads a file variable through the API.
async fn upload(gateway: &Gateway, server: &str, form: reqwest::multipart::Form) -> (u16, Value) {
    let response = gateway
        .http
        .post(format!(
            "http://{}/api/v1/servers/{server}/files",
            gateway.addr
        ))
        .bearer_auth(&gateway.alice.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn file_form(name: &str, path: &str, contents: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("name", name.to_owned())
        .text("path", path.to_owned())
        .part("file", reqwest::multipart::Part::bytes(contents))
}

/// Sets a stdio server's environment through the API.
async fn set_env(gateway: &Gateway, server: &str, name: &str, env: Value) -> (u16, Value) {
    let fixture = support::fixture_binary().display().to_string();
    gateway
        .api(
            &gateway.alice,
            Method::PATCH,
            &format!("/api/v1/servers/{server}"),
            Some(json!({"transport": {
                "type": "stdio",
                "command": fixture,
                "args": ["stdio", "--name", name, "--chaos"],
                "env": env,
            }})),
        )
        .await
}

fn text_of(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// S18: a hostile server prints its password raw, base64, base64url, URL-encoded,
/// JSON-escaped and split across two writes; the log buffer, read through the API and the live
/// tail, shows `[REDACTED:API_KEY]` for each and never the value. Injection through the
/// environment works (the server sees its value), and no API answer shows it.
#[tokio::test]
async fn s18_a_servers_stderr_is_redacted_before_the_log_buffer() {
    // Every thread of this test binary logs into one global capture at trace level (S16).
    let logs = captured_logs();
    tracing::info!("capture check");
    let gateway = Gateway::start().await;
    let server = gateway.add_fixture("vault", &["--chaos"], false).await;
    let secret = canary("sk-live");
    variable(&gateway, &server, "API_KEY", "password", &secret).await;
    variable(&gateway, &server, "REGION", "string", "eu-west-1").await;
    let (status, answer) = set_env(
        &gateway,
        &server,
        "vault",
        json!({"API_KEY": "${API_KEY}", "WHERE": "region ${REGION}"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // The live tail, opened before the leak.
    let tail = gateway
        .http
        .get(format!(
            "http://{}/api/v1/servers/{server}/logs/stream",
            gateway.addr
        ))
        .bearer_auth(&gateway.alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    let mut tail = tail.bytes_stream();

    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({})).await;
    let seen = client
        .call("vault__chaos_env", json!({"name": "API_KEY"}))
        .await;
    assert_eq!(text_of(&seen), secret, "the server gets its password");
    let seen = client
        .call("vault__chaos_env", json!({"name": "WHERE"}))
        .await;
    assert_eq!(text_of(&seen), "region eu-west-1");
    let leaked = client
        .call("vault__chaos_leak_env", json!({"name": "API_KEY"}))
        .await;
    assert_eq!(text_of(&leaked), "leaked", "{leaked}");

    // Up to 30 s: the log writer batches, and CI machines are busy.
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..300 {
        let (status, page) = gateway
            .api(
                &gateway.alice,
                Method::GET,
                &format!("/api/v1/servers/{server}/logs?limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        lines = page["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["text"].as_str().unwrap_or_default().to_owned())
            .collect();
        if lines.iter().any(|line| line.starts_with("split:")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = lines.join("\n");
    assert!(
        !all.contains(&secret),
        "a canary reached the log buffer:\n{all}"
    );
    for prefix in ["raw:", "base64:", "base64url:", "url:", "json:", "split:"] {
        let line = lines
            .iter()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in\n{all}"));
        assert!(line.contains("[REDACTED:API_KEY]"), "{line}");
    }
    assert!(
        lines.iter().any(|line| line == "started"),
        "the sandbox lifecycle is logged too:\n{all}"
    );

    // The live tail shows the same: markers, never the value.
    let mut streamed = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !streamed.contains("split:") {
        let chunk = tokio::time::timeout_at(deadline, tail.next())
            .await
            .expect("the live tail showed the leak in time")
            .unwrap()
            .unwrap();
        streamed.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(streamed.contains("[REDACTED:API_KEY]"), "{streamed}");
    assert!(!streamed.contains(&secret), "{streamed}");

    // S15: the API shows metadata only.
    for path in [
        format!("/api/v1/servers/{server}/variables"),
        format!("/api/v1/servers/{server}/variables/API_KEY"),
        format!("/api/v1/servers/{server}"),
        "/api/v1/sessions".to_owned(),
        "/api/v1/audit?limit=100".to_owned(),
    ] {
        let (status, answer) = gateway.api(&gateway.alice, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert!(!answer.to_string().contains(&secret), "{path}: {answer}");
    }
    let (_, listed) = gateway
        .api(
            &gateway.alice,
            Method::GET,
            &format!("/api/v1/servers/{server}/variables"),
            None,
        )
        .await;
    assert_eq!(listed[0]["name"], "API_KEY");
    assert_eq!(listed[0]["type"], "password");
    assert_eq!(
        listed[0]["preview"],
        format!("…{}", &secret[secret.len() - 4..])
    );
    assert!(listed[0].get("value").is_none(), "{listed}");
    assert_eq!(listed[1]["value"], "eu-west-1", "strings are readable");
    client.delete().await;
    let captured = logs.text();
    assert!(captured.contains("capture check"), "nothing was captured");
    assert!(
        captured.contains("/api/v1/servers"),
        "the gateway's request logs were not captured"
    );
    assert!(
        !captured.contains(&secret),
        "the gateway's own log holds the password"
    );
}

/// The regular files under `dir` (recursively) written since `since` that hold a needle; build
/// and VCS directories are skipped (they predate the test, and are large).
fn scan(dir: &Path, needles: &[&str], since: std::time::SystemTime) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let skipped = matches!(
            path.file_name().and_then(|name| name.to_str()),
            Some("target" | ".git" | "node_modules")
        );
        let recent = meta.modified().is_ok_and(|modified| modified >= since);
        if meta.is_dir() && !skipped {
            found.extend(scan(&path, needles, since));
        } else if meta.is_file() && recent {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for needle in needles {
                if memchr::memmem::find(&bytes, needle.as_bytes()).is_some() {
                    found.push(format!("{} holds {needle}", path.display()));
                }
            }
        }
    }
    found
}

/// S12, S14: a password and a file reach the server's sandbox (environment and a file from
/// memory) and nothing else: another organization's session of the same program sees neither,
/// and afterwards no canary is in the database files, the data directory, the temporary
/// directory or the gateway's trace-level log.
#[tokio::test]
async fn s12_injected_secrets_reach_only_their_sandbox_and_touch_no_disk() {
    if !support::sandbox_available() {
        return;
    }
    let started = std::time::SystemTime::now() - Duration::from_secs(1);
    let sandboxes = sandbox::Sandboxes::new(
        support::sandbox_config(Vec::new()),
        Arc::new(|_: sandbox::egress::Decision| {}),
    )
    .unwrap();
    let gateway = Gateway::start_with_launcher(
        mcp::GatewayConfig::default(),
        Arc::new(mcp_hero::launch::SandboxLauncher::new(sandboxes)),
    )
    .await;
    let server = gateway.add_fixture("vault", &["--chaos"], false).await;
    let password = canary("pw");
    let file = canary("file");
    variable(&gateway, &server, "API_KEY", "password", &password).await;
    let (status, answer) = upload(
        &gateway,
        &server,
        file_form(
            "CREDS",
            "/home/mcp/.config/creds.json",
            format!("{{\"key\":\"{file}\"}}").into_bytes(),
        ),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["path"], "/home/mcp/.config/creds.json");
    assert!(!answer.to_string().contains(&file), "{answer}");
    let (status, answer) = set_env(
        &gateway,
        &server,
        "vault",
        json!({"API_KEY": "${API_KEY}", "CREDS_FILE": "${CREDS}"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    let mut alice = gateway.client(&gateway.alice, "acme");
    alice.initialize(json!({})).await;
    let env = alice
        .call("vault__chaos_env", json!({"name": "API_KEY"}))
        .await;
    assert_eq!(text_of(&env), password, "{env}");
    let path = alice
        .call("vault__chaos_env", json!({"name": "CREDS_FILE"}))
        .await;
    assert_eq!(text_of(&path), "/home/mcp/.config/creds.json");
    let read = alice
        .call(
            "vault__chaos_read_file",
            json!({"path": "/home/mcp/.config/creds.json"}),
        )
        .await;
    assert!(text_of(&read).contains(&file), "{read}");

    // Another organization runs the same program: none of acme's secrets reach it.
    let (status, answer) = gateway
        .api(
            &gateway.olga,
            Method::POST,
            "/api/v1/servers",
            Some(json!({
                "name": "vault",
                "transport": {"type": "stdio",
                    "command": support::fixture_binary().display().to_string(),
                    "args": ["stdio", "--name", "vault", "--chaos"]},
            })),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let mut olga = gateway.client(&gateway.olga, "other");
    olga.initialize(json!({})).await;
    let env = olga
        .call("vault__chaos_env", json!({"name": "API_KEY"}))
        .await;
    assert!(text_of(&env).contains("not set"), "{env}");
    let read = olga
        .call(
            "vault__chaos_read_file",
            json!({"path": "/home/mcp/.config/creds.json"}),
        )
        .await;
    assert!(!read.to_string().contains(&file), "{read}");
    alice.delete().await;
    olga.delete().await;

    // Nothing on disk holds a canary: the database (main file and WAL), the data directory,
    // the temporary directory (sandbox run dirs included).
    let needles = [password.as_str(), file.as_str()];
    let mut found = scan(&gateway.data_dir, &needles, started);
    found.extend(scan(&std::env::temp_dir(), &needles, started));
    assert!(found.is_empty(), "{found:#?}");
}

/// Bad input: each refused with the field named, nothing stored half.
#[tokio::test]
async fn variable_input_errors_name_the_field_and_store_nothing() {
    let gateway = Gateway::start().await;
    let server = gateway.add_fixture("vault", &["--chaos"], false).await;
    let url = format!("/api/v1/servers/{server}/variables");
    let post = |body: Value| {
        let url = url.clone();
        let gateway = &gateway;
        async move {
            gateway
                .api(&gateway.alice, Method::POST, &url, Some(body))
                .await
        }
    };
    variable(
        &gateway,
        &server,
        "API_KEY",
        "password",
        "sk-0123456789abcdef",
    )
    .await;
    // A password too short to redact in every form is stored, with a warning (S18).
    let short = variable(&gateway, &server, "PIN", "password", "4711").await;
    assert!(
        short["warning"].as_str().unwrap().contains("under 8 bytes"),
        "{short}"
    );
    assert!(short.get("preview").is_none(), "{short}");
    for (body, status, message) in [
        (
            json!({"name": "API_KEY", "type": "password", "value": "x"}),
            409,
            "already has a variable named API_KEY",
        ),
        (
            json!({"name": "api-key", "type": "string", "value": "x"}),
            400,
            "invalid name",
        ),
        (
            json!({"name": "K", "type": "secret", "value": "x"}),
            400,
            "type",
        ),
        (
            json!({"name": "K", "type": "file", "value": "x"}),
            400,
            "multipart",
        ),
        (
            json!({"name": "K", "type": "password", "value": ""}),
            400,
            "must not be empty",
        ),
        (
            json!({"name": "K", "type": "string", "value": "x", "extra": 1}),
            400,
            "unknown field `extra`",
        ),
    ] {
        let (got, answer) = post(body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{body}: {answer}"
        );
    }
    // Oversized: over the body limit, or over the value limit.
    let (got, _) =
        post(json!({"name": "BIG", "type": "string", "value": "x".repeat(70_000)})).await;
    assert!(got == 413 || got == 400, "{got}");

    // References: unknown, and a password in arguments.
    let (got, answer) = set_env(&gateway, &server, "vault", json!({"K": "${MISSING}"})).await;
    assert_eq!(got, 400, "{answer}");
    assert!(answer.to_string().contains("${MISSING}"), "{answer}");
    let (got, answer) = gateway
        .api(
            &gateway.alice,
            Method::PATCH,
            &format!("/api/v1/servers/{server}"),
            Some(json!({"transport": {"type": "stdio", "command": "x", "args": ["--key=${API_KEY}"]}})),
        )
        .await;
    assert_eq!(got, 400, "{answer}");
    assert!(answer.to_string().contains("/proc"), "{answer}");
    let (got, answer) = set_env(&gateway, &server, "vault", json!({"HOME": "/x"})).await;
    assert_eq!(got, 400, "{answer}");

    // Files: a bad path, an oversized file, a missing field.
    let (got, answer) = upload(
        &gateway,
        &server,
        file_form("F", "/etc/passwd", b"x".to_vec()),
    )
    .await;
    assert_eq!(got, 400, "{answer}");
    assert!(answer.to_string().contains("invalid path"), "{answer}");
    let (got, answer) = upload(
        &gateway,
        &server,
        file_form("F", "/home/mcp/big", vec![b'x'; store::MAX_FILE_BYTES + 1]),
    )
    .await;
    assert_eq!(got, 413, "{answer}");
    let (got, answer) = upload(
        &gateway,
        &server,
        reqwest::multipart::Form::new().text("name", "F"),
    )
    .await;
    assert_eq!(got, 400, "{answer}");

    // A referenced variable can't go; once unreferenced it can.
    let (got, _) = set_env(&gateway, &server, "vault", json!({"K": "${API_KEY}"})).await;
    assert_eq!(got, 200);
    let (got, answer) = gateway
        .api(
            &gateway.alice,
            Method::DELETE,
            &format!("{url}/API_KEY"),
            None,
        )
        .await;
    assert_eq!(got, 409, "{answer}");

    // Only API_KEY and PIN were ever stored; members may not read variables.
    let (_, listed) = gateway.api(&gateway.alice, Method::GET, &url, None).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let (got, _) = gateway.api(&gateway.mallory, Method::GET, &url, None).await;
    assert_eq!(got, 403);
}
