//! The organization MCP endpoint end to end, over real HTTP with the fixture server as upstream:
//! aggregation, per-tool access (S7), tenant isolation (S8), session lifecycle (S1 at the gateway
//! level), transport rules and bad input from clients and from upstreams.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Gateway, alive, eventually};

fn text_of(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_owned()
}

fn whoami(answer: &Value) -> (String, u64) {
    let text: Value = serde_json::from_str(&text_of(answer)).unwrap();
    (
        text["name"].as_str().unwrap().to_owned(),
        text["pid"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn aggregates_servers_with_prefixes_and_routes_calls() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("alpha", &[], false).await;
    gateway.add_fixture("beta", &[], false).await;
    let mut client = gateway.client(&gateway.alice, "acme");
    let init = client.initialize(json!({})).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-hero");
    let names = client.tool_names().await;
    assert!(names.contains(&"alpha__echo".to_owned()), "{names:?}");
    assert!(names.contains(&"beta__echo".to_owned()), "{names:?}");
    assert!(
        names
            .iter()
            .all(|name| name.starts_with("alpha__") || name.starts_with("beta__"))
    );
    assert_eq!(
        whoami(&client.call("alpha__whoami", json!({})).await).0,
        "alpha"
    );
    assert_eq!(
        whoami(&client.call("beta__whoami", json!({})).await).0,
        "beta"
    );
    let echo = client.call("beta__echo", json!({"text": "héllo"})).await;
    assert_eq!(text_of(&echo), "héllo");
    // Prompts are prefixed the same way; resources keep their URIs.
    let prompts = client.request("prompts/list", json!({})).await.answer;
    assert!(prompts.to_string().contains("alpha__test_simple_prompt"));
    let read = client
        .request("resources/read", json!({"uri": "test://static-text"}))
        .await
        .answer;
    assert!(read["result"]["contents"].is_array(), "{read}");
}

#[tokio::test]
async fn a_lone_unprefixed_server_keeps_its_names() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("solo", &[], true).await;
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({})).await;
    let names = client.tool_names().await;
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert_eq!(
        text_of(&client.call("echo", json!({"text": "x"})).await),
        "x"
    );
}

/// S7: rules decide which tools each member lists and calls; deny wins; a forbidden tool is
/// indistinguishable from one that does not exist.
#[tokio::test]
async fn s7_tool_rules_filter_lists_and_calls() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("alpha", &[], false).await;
    gateway.add_fixture("beta", &[], false).await;
    gateway
        .add_rule(json!({"role": "member"}), "deny", "beta__*")
        .await;
    // A member-level allow does not beat the role's deny.
    gateway
        .add_rule(
            json!({"member": gateway.mallory.user_id.to_string()}),
            "allow",
            "beta__echo",
        )
        .await;
    gateway
        .add_rule(
            json!({"member": gateway.mallory.user_id.to_string()}),
            "deny",
            "alpha__whoami",
        )
        .await;
    gateway
        .add_rule(
            json!({"member": gateway.victor.user_id.to_string()}),
            "allow",
            "alpha__echo",
        )
        .await;

    let mut mallory = gateway.client(&gateway.mallory, "acme");
    mallory.initialize(json!({})).await;
    let names = mallory.tool_names().await;
    assert!(names.contains(&"alpha__echo".to_owned()));
    assert!(
        !names.iter().any(|name| name.starts_with("beta__")),
        "{names:?}"
    );
    assert!(!names.contains(&"alpha__whoami".to_owned()));
    let denied = mallory.call("beta__echo", json!({"text": "x"})).await;
    let unknown = mallory.call("beta__no_such_tool", json!({})).await;
    let missing_server = mallory.call("gamma__echo", json!({})).await;
    assert_eq!(denied["error"]["code"], unknown["error"]["code"]);
    assert_eq!(denied["error"]["message"], "Unknown tool: beta__echo");
    assert_eq!(
        unknown["error"]["message"],
        "Unknown tool: beta__no_such_tool"
    );
    assert_eq!(
        missing_server["error"]["message"],
        "Unknown tool: gamma__echo"
    );
    let denied = mallory.call("alpha__whoami", json!({})).await;
    assert_eq!(denied["error"]["message"], "Unknown tool: alpha__whoami");
    // Resources of a server denied as a whole are hidden too.
    let resources = mallory.request("resources/list", json!({})).await.answer;
    assert_eq!(
        resources["result"]["resources"].as_array().unwrap().len(),
        gateway_resources_of_one_server(&gateway).await,
    );

    // The viewer role has no rule: only what a member rule grants.
    let mut victor = gateway.client(&gateway.victor, "acme");
    victor.initialize(json!({})).await;
    assert_eq!(victor.tool_names().await, ["alpha__echo"]);

    // The owner keeps everything.
    let mut alice = gateway.client(&gateway.alice, "acme");
    alice.initialize(json!({})).await;
    assert!(
        alice
            .tool_names()
            .await
            .contains(&"beta__whoami".to_owned())
    );

    // Rules apply to live sessions: removing the role deny shows beta's tools to mallory.
    let (_, rules) = gateway
        .api(
            &gateway.alice,
            reqwest::Method::GET,
            "/api/v1/tool-rules",
            None,
        )
        .await;
    let deny = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["pattern"] == "beta__*")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = gateway
        .api(
            &gateway.alice,
            reqwest::Method::DELETE,
            &format!("/api/v1/tool-rules/{deny}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    eventually("mallory sees beta's tools", async || {
        mallory
            .tool_names()
            .await
            .contains(&"beta__echo".to_owned())
    })
    .await;
}

async fn gateway_resources_of_one_server(gateway: &Gateway) -> usize {
    let mut alice = gateway.client(&gateway.alice, "acme");
    alice.initialize(json!({})).await;
    let all = alice.request("resources/list", json!({})).await.answer;
    all["result"]["resources"].as_array().unwrap().len() / 2
}

/// S8: a token of another organization cannot open a session on this one, and sessions are
/// bound to the token that opened them.
#[tokio::test]
async fn s8_sessions_stay_in_their_organization() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("alpha", &[], false).await;
    let mut olga = gateway.client(&gateway.olga, "acme");
    let response = olga
        .post()
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let missing = gateway.client(&gateway.olga, "nonexistent");
    let baseline = missing
        .post()
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(baseline.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        baseline.text().await.unwrap()
    );

    // Alice's session id is useless with another token, even of the same organization.
    let mut alice = gateway.client(&gateway.alice, "acme");
    alice.initialize(json!({})).await;
    olga.url = gateway.mcp_url("other");
    olga.session = alice.session.clone();
    assert_eq!(olga.request("tools/list", json!({})).await.status, 404);
    let mut mallory = gateway.client(&gateway.mallory, "acme");
    mallory.session = alice.session.clone();
    assert_eq!(mallory.request("tools/list", json!({})).await.status, 404);
    assert_eq!(alice.request("tools/list", json!({})).await.status, 200);
}

#[tokio::test]
async fn transport_rules_are_enforced() {
    let gateway = Gateway::start().await;
    let url = gateway.mcp_url("acme");
    let token = gateway.alice.token.clone();
    let post = |body: &'static str| {
        gateway
            .http
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body)
    };
    // No token: 401 with a challenge.
    let anonymous = gateway.http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    // Malformed JSON, batches, non-messages.
    let bad = post("{not json").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"]["code"], -32700);
    let batch = post(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 400);
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch["error"]["code"], -32600);
    assert!(
        batch["error"]["message"]
            .as_str()
            .unwrap()
            .contains("batch")
    );
    let version = post(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(version.status(), 400);
    // Requests other than initialize need a session; unknown sessions are 404.
    let no_session = post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(no_session.status(), 400);
    let unknown = post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .header("mcp-session-id", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // Accept and Content-Type.
    let accept = gateway
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(accept.status(), 406);
    let content_type = gateway
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "text/plain")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(content_type.status(), 415);
    // Oversized messages (the default limit is 4 MiB).
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let oversized = gateway
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    // DNS rebinding: a foreign Host or Origin is refused before authentication.
    let rebinding = post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebinding.status(), 403);
    let origin = post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(origin.status(), 403);

    // A session: ping, version header checks, notifications are 202, DELETE ends it.
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({})).await;
    assert_eq!(
        client.request("ping", json!({})).await.answer["result"],
        json!({})
    );
    assert_eq!(
        client
            .notify("notifications/roots/list_changed", json!({}))
            .await,
        202
    );
    let wrong_version = gateway
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", client.session.as_deref().unwrap())
        .header("mcp-protocol-version", "1999-01-01")
        .body(r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_version.status(), 400);
    let unknown_method = client.request("no/such/method", json!({})).await;
    assert_eq!(unknown_method.answer["error"]["code"], -32601);
    let again = client
        .request("initialize", json!({"protocolVersion": "2025-11-25"}))
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(client.delete().await, 200);
    assert_eq!(client.request("ping", json!({})).await.status, 404);
}

#[tokio::test]
async fn versions_are_negotiated() {
    let gateway = Gateway::start().await;
    for (asked, agreed) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
    ] {
        let mut client = gateway.client(&gateway.alice, "acme");
        client.version = asked.into();
        let init = client.initialize(json!({})).await;
        assert_eq!(init["result"]["protocolVersion"], agreed, "{asked}");
    }
}

/// S1 at the gateway level: a session's servers end with it, whatever ends it.
#[tokio::test]
async fn s1_servers_end_with_their_session() {
    let config = mcp::GatewayConfig {
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let gateway = Gateway::start_with(config).await;
    let alpha = gateway.add_fixture("alpha", &[], false).await;

    // Explicit end.
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({})).await;
    let (_, pid) = whoami(&client.call("alpha__whoami", json!({})).await);
    assert!(alive(pid));
    assert_eq!(client.delete().await, 200);
    assert!(!alive(pid), "DELETE waits until the server is gone");

    // Two sessions never share a server process.
    let mut one = gateway.client(&gateway.alice, "acme");
    one.initialize(json!({})).await;
    let mut two = gateway.client(&gateway.alice, "acme");
    two.initialize(json!({})).await;
    let (_, pid_one) = whoami(&one.call("alpha__whoami", json!({})).await);
    let (_, pid_two) = whoami(&two.call("alpha__whoami", json!({})).await);
    assert_ne!(pid_one, pid_two);

    // Server changed: the session reconnects to a fresh process; server deleted: it is gone.
    let (status, _) = gateway
        .api(
            &gateway.alice,
            reqwest::Method::PATCH,
            &format!("/api/v1/servers/{alpha}"),
            Some(json!({"enabled": true, "exposure": "prefixed"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = gateway
        .api(
            &gateway.alice,
            reqwest::Method::DELETE,
            &format!("/api/v1/servers/{alpha}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    eventually("the deleted server's processes are gone", async || {
        !alive(pid_one) && !alive(pid_two)
    })
    .await;
    eventually("the deleted server's tools are gone", async || {
        one.tool_names().await.is_empty()
    })
    .await;

    // Token revocation ends the session.
    gateway.add_fixture("beta", &[], false).await;
    let mut mallory = gateway.client(&gateway.mallory, "acme");
    mallory.initialize(json!({})).await;
    let (_, pid) = whoami(&mallory.call("beta__whoami", json!({})).await);
    let (status, _) = gateway
        .api(
            &gateway.mallory,
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{}", gateway.mallory.token_id),
            None,
        )
        .await;
    assert_eq!(status, 204);
    eventually("the revoked token's server is gone", async || !alive(pid)).await;

    // Idle timeout.
    let (_, pid) = whoami(&one.call("beta__whoami", json!({})).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    eventually("the idle session's server is gone", async || !alive(pid)).await;
    assert_eq!(one.request("ping", json!({})).await.status, 404);

    // Shutdown.
    let mut last = gateway.client(&gateway.alice, "acme");
    last.initialize(json!({})).await;
    let (_, pid) = whoami(&last.call("beta__whoami", json!({})).await);
    gateway.gateway.shutdown().await;
    assert!(!alive(pid));
}

/// A failing upstream degrades the session: its tools vanish, the client gets an error naming
/// the server and the reason, and the gateway and the other servers go on.
#[tokio::test]
async fn misbehaving_upstreams_are_contained() {
    let mut config = mcp::GatewayConfig {
        call_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    config.upstream.max_message_bytes = 1024 * 1024;
    let gateway = Gateway::start_with(config).await;
    gateway.add_fixture("good", &[], false).await;
    for name in ["garbage", "exits", "floods", "hangs"] {
        gateway.add_fixture(name, &["--chaos"], false).await;
    }
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({})).await;
    let before = client.tool_names().await;
    assert!(before.contains(&"garbage__chaos_garbage".to_owned()));

    let cases = [
        (
            "garbage__chaos_garbage",
            json!({}),
            "not a JSON-RPC message",
        ),
        ("exits__chaos_exit", json!({}), "exited with status 3"),
        ("floods__chaos_flood", json!({}), "byte limit"),
        ("hangs__chaos_hang", json!({}), "did not answer within 2"),
    ];
    for (tool, arguments, reason) in cases {
        let answer = client.call(tool, arguments).await;
        let error = &answer["error"];
        let server = tool.split("__").next().unwrap();
        assert_eq!(error["data"]["server"], server, "{answer}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(server) && message.contains(reason),
            "{tool}: {message}"
        );
    }
    // The dead upstreams' tools are gone; the good one and the hanging one remain.
    let after = client.tool_names().await;
    assert!(after.contains(&"good__echo".to_owned()));
    assert!(
        !after.iter().any(|name| name.starts_with("garbage__")
            || name.starts_with("exits__")
            || name.starts_with("floods__")),
        "{after:?}"
    );
    assert_eq!(
        text_of(
            &client
                .call("good__echo", json!({"text": "still here"}))
                .await
        ),
        "still here"
    );
    let call_dead = client.call("exits__echo", json!({"text": "x"})).await;
    assert!(
        call_dead["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exited with status 3"),
        "{call_dead}"
    );

    // The failure is visible through the API.
    let (_, sessions) = gateway
        .api(
            &gateway.alice,
            reqwest::Method::GET,
            "/api/v1/sessions",
            None,
        )
        .await;
    let servers = &sessions[0]["servers"];
    let exits = servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "exits")
        .unwrap();
    assert_eq!(exits["state"], "failed");
    assert!(
        exits["reason"]
            .as_str()
            .unwrap()
            .contains("exited with status 3")
    );
}

/// Progress and logging go to the stream of the call that caused them, with the client's own
/// progress token; an upstream's sampling request reaches the client that declared sampling.
#[tokio::test]
async fn notifications_and_server_requests_are_routed_to_their_call() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("alpha", &[], false).await;
    gateway.add_fixture("beta", &[], false).await;
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({"sampling": {}})).await;
    let progress = client
        .request(
            "tools/call",
            json!({"name": "alpha__test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "mine-7"}}),
        )
        .await;
    assert!(progress.answer["result"].is_object(), "{:?}", progress);
    let tokens: Vec<&Value> = progress
        .before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| &m["params"]["progressToken"])
        .collect();
    assert!(!tokens.is_empty());
    assert!(tokens.iter().all(|token| **token == json!("mine-7")));

    let logging = client
        .request(
            "tools/call",
            json!({"name": "beta__test_tool_with_logging", "arguments": {}}),
        )
        .await;
    assert!(
        logging
            .before
            .iter()
            .any(|m| m["method"] == "notifications/message")
    );

    let sampled = client
        .request_with(
            "tools/call",
            json!({"name": "alpha__test_sampling", "arguments": {"prompt": "hi"}}),
            |request| {
                assert_eq!(request["method"], "sampling/createMessage");
                json!({"role": "assistant", "content": {"type": "text", "text": "sampled!"}, "model": "test"})
            },
        )
        .await;
    assert!(
        sampled.answer.to_string().contains("sampled!"),
        "{:?}",
        sampled
    );

    // A client without the capability: the upstream gets an error, the call reports it.
    let mut plain = gateway.client(&gateway.alice, "acme");
    plain.initialize(json!({})).await;
    let refused = plain
        .call("alpha__test_sampling", json!({"prompt": "hi"}))
        .await;
    assert!(!refused.to_string().contains("sampled!"));
}

/// A remote upstream over Streamable HTTP: refused on loopback by the SSRF guard unless an admin
/// marks it internal; then it aggregates like any server, sampling included.
#[tokio::test]
async fn remote_upstreams_are_ssrf_guarded_and_aggregated() {
    let gateway = Gateway::start().await;
    let mut fixture = tokio::process::Command::new(support::fixture_binary())
        .args(["http", "--listen", "127.0.0.1:0", "--name", "remote"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(fixture.stdout.take().unwrap());
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line)
        .await
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();

    let body = json!({"name": "remote", "transport": {"type": "streamable_http", "url": url}});
    let (status, server) = gateway
        .api(
            &gateway.alice,
            reqwest::Method::POST,
            "/api/v1/servers",
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{server}");
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({"sampling": {}})).await;
    assert!(
        client.tool_names().await.is_empty(),
        "a loopback URL must be refused"
    );
    let (_, sessions) = gateway
        .api(
            &gateway.alice,
            reqwest::Method::GET,
            "/api/v1/sessions",
            None,
        )
        .await;
    let reason = sessions[0]["servers"][0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("loopback") && reason.contains("internal"),
        "{reason}"
    );

    let id = server["id"].as_str().unwrap();
    let (status, _) = gateway
        .api(
            &gateway.alice,
            reqwest::Method::PATCH,
            &format!("/api/v1/servers/{id}"),
            Some(json!({"internal": true})),
        )
        .await;
    assert_eq!(status, 200);
    eventually("the internal server's tools appear", async || {
        client
            .tool_names()
            .await
            .contains(&"remote__echo".to_owned())
    })
    .await;
    assert_eq!(
        whoami(&client.call("remote__whoami", json!({})).await).0,
        "remote"
    );
    let sampled = client
        .request_with(
            "tools/call",
            json!({"name": "remote__test_sampling", "arguments": {"prompt": "hi"}}),
            |_| json!({"role": "assistant", "content": {"type": "text", "text": "from afar"}, "model": "m"}),
        )
        .await;
    assert!(
        sampled.answer.to_string().contains("from afar"),
        "{sampled:?}"
    );
}

/// A client that lost a stream resumes it with Last-Event-ID and gets what it missed.
#[tokio::test]
async fn streams_resume_after_the_last_seen_event() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("alpha", &[], false).await;
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({})).await;
    let response = client
        .post()
        .json(&json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
            "params": {"name": "alpha__test_tool_with_logging", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = support::read_events(response);
    // Read the priming event and the first log message, then drop the connection.
    let (priming_id, priming) = events.recv().await.unwrap();
    assert_eq!(priming, Value::Null);
    let (first_id, first) = events.recv().await.unwrap();
    assert_eq!(first["method"], "notifications/message");
    drop(events);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut resumed = support::open_stream(&client, first_id.as_deref()).await;
    let mut seen = Vec::new();
    while let Ok(Some((id, message))) =
        tokio::time::timeout(Duration::from_secs(5), resumed.recv()).await
    {
        seen.push(id.clone());
        if message["id"] == 42 {
            assert!(message["result"].is_object(), "{message}");
            assert_ne!(id, first_id, "nothing already seen is replayed");
            assert!(priming_id.is_some());
            return;
        }
        assert_eq!(message["method"], "notifications/message");
    }
    panic!("the answer never came on the resumed stream; saw {seen:?}");
}

/// list_changed goes only to sessions whose own filtered view changed (S7).
#[tokio::test]
async fn list_changed_reaches_only_the_sessions_it_concerns() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("alpha", &[], false).await;
    let mut alice = gateway.client(&gateway.alice, "acme");
    alice.initialize(json!({})).await;
    alice.tool_names().await;
    let mut mallory = gateway.client(&gateway.mallory, "acme");
    mallory.initialize(json!({})).await;
    let before = mallory.tool_names().await;
    let mut alice_events = support::open_stream(&alice, None).await;
    let mut mallory_events = support::open_stream(&mallory, None).await;
    gateway
        .add_rule(json!({"role": "member"}), "deny", "alpha__echo")
        .await;
    let changed =
        support::next_with_method(&mut mallory_events, "notifications/tools/list_changed").await;
    assert!(changed.is_some(), "the member's view changed");
    let after = mallory.tool_names().await;
    assert_eq!(before.len(), after.len() + 1);
    assert!(
        support::next_with_method(&mut alice_events, "notifications/tools/list_changed")
            .await
            .is_none(),
        "the owner's view did not change"
    );
}

/// Subscriptions are forwarded; updates reach the subscriber's standalone stream.
#[tokio::test]
async fn resource_updates_reach_subscribers() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("alpha", &[], false).await;
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({})).await;
    let mut events = support::open_stream(&client, None).await;
    let subscribed = client
        .request(
            "resources/subscribe",
            json!({"uri": "test://watched-resource"}),
        )
        .await;
    assert_eq!(subscribed.answer["result"], json!({}), "{:?}", subscribed);
    let notified = client
        .call(
            "alpha__notify_resource_updated",
            json!({"uri": "test://watched-resource"}),
        )
        .await;
    assert_eq!(text_of(&notified), "notification sent");
    let (_, update) = support::next_with_method(&mut events, "notifications/resources/updated")
        .await
        .expect("an update on the standalone stream");
    assert_eq!(update["params"]["uri"], "test://watched-resource");
}

/// A cancelled call gets no answer, and the session goes on.
#[tokio::test]
async fn cancellation_is_forwarded() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("slow", &["--chaos"], false).await;
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({})).await;
    client.tool_names().await;
    let call = client
        .post()
        .json(
            &json!({"jsonrpc": "2.0", "id": "c-1", "method": "tools/call",
            "params": {"name": "slow__chaos_hang", "arguments": {}}}),
        )
        .send();
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client
            .notify(
                "notifications/cancelled",
                json!({"requestId": "c-1", "reason": "changed my mind"}),
            )
            .await
    };
    let (response, status) = tokio::join!(call, cancel);
    assert_eq!(status, 202);
    let body = tokio::time::timeout(Duration::from_secs(5), response.unwrap().text())
        .await
        .expect("the cancelled call's stream ends")
        .unwrap();
    assert!(!body.contains("\"result\""), "{body}");
    assert_eq!(
        text_of(&client.call("slow__echo", json!({"text": "on"})).await),
        "on"
    );
}

/// Removing a member ends their sessions (and the servers in them).
#[tokio::test]
async fn removing_a_member_ends_their_sessions() {
    let gateway = Gateway::start().await;
    gateway.add_fixture("alpha", &[], false).await;
    let mut mallory = gateway.client(&gateway.mallory, "acme");
    mallory.initialize(json!({})).await;
    let (_, pid) = whoami(&mallory.call("alpha__whoami", json!({})).await);
    let (status, _) = gateway
        .api(
            &gateway.alice,
            reqwest::Method::DELETE,
            &format!("/api/v1/members/{}", gateway.mallory.user_id),
            None,
        )
        .await;
    assert_eq!(status, 204);
    eventually("the removed member's server is gone", async || !alive(pid)).await;
}

/// The aggregated list is paged by the gateway with opaque cursors; a bad cursor is refused.
#[tokio::test]
async fn aggregated_lists_are_paginated() {
    let gateway = Gateway::start_with(mcp::GatewayConfig {
        list_page_size: 3,
        ..Default::default()
    })
    .await;
    gateway.add_fixture("alpha", &[], false).await;
    gateway.add_fixture("beta", &[], false).await;
    let mut client = gateway.client(&gateway.alice, "acme");
    client.initialize(json!({})).await;
    let mut names = Vec::new();
    let mut cursor: Option<Value> = None;
    let mut pages = 0;
    loop {
        let params = cursor.map_or_else(|| json!({}), |cursor| json!({"cursor": cursor}));
        let page = client.request("tools/list", params).await.answer;
        let tools = page["result"]["tools"].as_array().unwrap();
        assert!(tools.len() <= 3);
        names.extend(
            tools
                .iter()
                .map(|tool| tool["name"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        match page["result"].get("nextCursor") {
            Some(next) => cursor = Some(next.clone()),
            None => break,
        }
    }
    assert!(pages > 2);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "no tool twice");
    assert!(names.contains(&"alpha__echo".to_owned()) && names.contains(&"beta__echo".to_owned()));
    let bad = client
        .request("tools/list", json!({"cursor": "nope"}))
        .await
        .answer;
    assert_eq!(bad["error"]["code"], -32602);
}
