//! Interoperability with independent MCP clients: the Python SDK's Streamable HTTP client and the
//! inspector CLI, each with a bearer token, list and call the tools of two stdio servers registered
//! together, the fixture and the reference "everything" server. The clients and the everything
//! server come from `scripts/tools.sh`; without them these tests are skipped (failed under CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Gateway, external_tool, setting};

/// The Python client: `MCP_HERO_TOKEN=... python client.py URL CALLS`.
const PYTHON_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/client.py");

/// Node 22 and the everything server's entry script, or `None` when the tools are not installed.
fn node_and_everything() -> Option<(String, String)> {
    Some((
        external_tool("MCP_HERO_NODE")?,
        external_tool("MCP_HERO_SERVER_EVERYTHING")?,
    ))
}

/// A gateway whose organization `acme` has `fixture` (mcp-fixture) and `everything`
/// (server-everything over stdio) registered, both prefixed.
async fn gateway_with_both_servers(node: &str, everything: &str) -> Gateway {
    let gateway = Gateway::start().await;
    gateway.add_fixture("fixture", &[], false).await;
    gateway
        .add_stdio_server("everything", node, &[everything, "stdio"], false)
        .await;
    gateway
}

/// Runs a client to completion (at most 60 s) and returns its stdout as JSON.
async fn run_json(mut command: tokio::process::Command) -> Value {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let what = format!("{command:?}");
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} took more than 60 s"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{what}: {error}:\n{stdout}"))
}

/// The first text block of a `CallToolResult`, which must not be an error.
fn text_of(result: &Value) -> String {
    assert_ne!(result["isError"], json!(true), "{result}");
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {result}"))
        .to_owned()
}

/// Both servers' tools are there, prefixed, and nothing else.
fn assert_both_servers_listed(names: &[&str]) {
    for name in [
        "fixture__echo",
        "fixture__whoami",
        "everything__echo",
        "everything__get-sum",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(
        names
            .iter()
            .all(|name| name.starts_with("fixture__") || name.starts_with("everything__")),
        "{names:?}"
    );
}

/// The fixture's `whoami` names the fixture server and a live process.
fn assert_fixture_whoami(result: &Value) {
    let whoami: Value = serde_json::from_str(&text_of(result)).unwrap();
    assert_eq!(whoami["name"], "fixture", "{whoami}");
    assert!(
        whoami["pid"].as_u64().is_some_and(|pid| pid > 0),
        "{whoami}"
    );
}

#[tokio::test]
async fn python_sdk_lists_and_calls_tools_of_both_servers() {
    let Some((node, everything)) = node_and_everything() else {
        return;
    };
    let Some(python) = external_tool("MCP_HERO_PYTHON") else {
        return;
    };
    let gateway = gateway_with_both_servers(&node, &everything).await;
    let calls = json!([
        ["fixture__whoami", {}],
        ["fixture__echo", {"text": "from python"}],
        ["everything__echo", {"message": "from python"}],
        ["everything__get-sum", {"a": 2, "b": 40}],
    ]);
    let mut command = tokio::process::Command::new(python);
    command
        .arg(PYTHON_CLIENT)
        .arg(gateway.mcp_url("acme"))
        .arg(calls.to_string())
        .env("MCP_HERO_TOKEN", &gateway.alice.token);
    let answer = run_json(command).await;

    let names: Vec<&str> = answer["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    assert_both_servers_listed(&names);
    let results = answer["calls"].as_array().unwrap();
    assert_fixture_whoami(&results[0]);
    assert_eq!(text_of(&results[1]), "from python");
    assert_eq!(text_of(&results[2]), "Echo: from python");
    assert!(text_of(&results[3]).contains("42"), "{}", results[3]);
}

#[tokio::test]
async fn inspector_cli_lists_and_calls_tools_of_both_servers() {
    let Some((node, everything)) = node_and_everything() else {
        return;
    };
    let Some(inspector) = external_tool("MCP_HERO_INSPECTOR_CLI") else {
        return;
    };
    let gateway = gateway_with_both_servers(&node, &everything).await;
    // cli.js runs its worker with the `node` on PATH: make that Node 22.
    let node_dir = Path::new(&node).parent().unwrap().display().to_string();
    let path = match setting("PATH") {
        Some(path) => format!("{node_dir}:{path}"),
        None => node_dir,
    };
    let url = gateway.mcp_url("acme");
    let header = format!("Authorization: Bearer {}", gateway.alice.token);
    let inspect = |args: &[&str]| {
        let mut command = tokio::process::Command::new(&node);
        command
            .arg(&inspector)
            .args(["--cli", &url, "--transport", "http", "--header", &header])
            .args(args)
            .env("PATH", &path);
        run_json(command)
    };

    let list = inspect(&["--method", "tools/list"]).await;
    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert_both_servers_listed(&names);

    let call = ["--method", "tools/call", "--tool-name"];
    let whoami = inspect(&[&call[..], &["fixture__whoami"]].concat()).await;
    assert_fixture_whoami(&whoami);
    let echo = inspect(
        &[
            &call[..],
            &["fixture__echo", "--tool-arg", "text=inspected"],
        ]
        .concat(),
    );
    assert_eq!(text_of(&echo.await), "inspected");
    let args = ["everything__echo", "--tool-arg", "message=inspected"];
    let echo = inspect(&[&call[..], &args].concat()).await;
    assert_eq!(text_of(&echo), "Echo: inspected");
    let args = ["everything__get-sum", "--tool-arg", "a=2", "b=40"];
    let sum = inspect(&[&call[..], &args].concat()).await;
    assert!(text_of(&sum).contains("42"), "{sum}");
}
