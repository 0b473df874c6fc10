//! The audit trail end to end (S6, S8, S16, S19): real sessions through the gateway to the
//! fixture server record one event per `tools/call`, `resources/read` and `prompts/get`, allowed
//! or not; the API reads them with filters and pages and exports them as JSON lines and CSV,
//! only for owners and admins of their own organization; they go with their server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Client, Gateway, Member};

/// An argument value that must never reach the audit trail.
const CANARY: &str = "canary-argument-7f3e9a";
/// A secret in a resource URI's query, which the trail must drop.
const URI_CANARY: &str = "uri-token-5c1d";

/// Every event of the organization `who` belongs to, newest first, through the API.
async fn events(gateway: &Gateway, who: &Member, query: &str) -> Vec<Value> {
    gateway.audit.flush().await;
    let (status, answer) = gateway
        .api(
            who,
            Method::GET,
            &format!("/api/v1/audit?limit=1000{query}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["next_cursor"].is_null(), "{answer}");
    answer["events"].as_array().unwrap().clone()
}

/// An export's status, content type, content disposition and body.
async fn export(gateway: &Gateway, who: &Member, query: &str) -> (u16, String, String, String) {
    gateway.audit.flush().await;
    let response = gateway
        .http
        .get(format!(
            "http://{}/api/v1/audit/export?{query}",
            gateway.addr
        ))
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let status = response.status().as_u16();
    (
        status,
        content_type,
        disposition,
        response.text().await.unwrap(),
    )
}

async fn session(gateway: &Gateway, who: &Member) -> Client {
    let mut client = gateway.client(who, "acme");
    client.initialize(json!({})).await;
    client
}

/// The one event of member `user` whose target is `target`.
fn event<'a>(events: &'a [Value], target: &str, user: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["target"] == target && e["member"] == user)
        .collect();
    assert_eq!(found.len(), 1, "events for {target}: {found:?}");
    found[0]
}

/// Parses RFC 4180 CSV: quoted fields, doubled quotes, CRLF rows.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "CSV ends mid-row");
    rows
}

/// S6, S16: every audited call is recorded exactly once with its organization, member, server,
/// tool, session, outcome, latency and sizes, allowed or not: a call denied by the rules is
/// `denied` in the trail though the client was told the tool is unknown. No argument value and
/// no URI query reaches the trail or its exports.
#[tokio::test]
async fn s6_every_audited_call_is_recorded_once_with_its_outcome() {
    let gateway = Gateway::start().await;
    let alpha = gateway.add_fixture("alpha", &[], false).await;
    gateway.add_fixture("beta", &[], false).await;
    gateway
        .add_rule(
            json!({"member": gateway.mallory.user_id.to_string()}),
            "deny",
            "alpha__echo",
        )
        .await;

    let mut alice = session(&gateway, &gateway.alice).await;
    let echo = alice.call("alpha__echo", json!({"text": CANARY})).await;
    assert_eq!(echo["result"]["content"][0]["text"], CANARY);
    let failing = alice.call("alpha__test_error_handling", json!({})).await;
    assert_eq!(failing["result"]["isError"], true, "{failing}");
    let nowhere = alice.call("nosuch__tool", json!({"text": CANARY})).await;
    assert!(nowhere["error"].is_object(), "{nowhere}");
    let missing = alice.call("alpha__nosuch", json!({"text": CANARY})).await;
    assert!(missing["error"].is_object(), "{missing}");
    let read = alice
        .request("resources/read", json!({"uri": "test://static-text"}))
        .await
        .answer;
    assert!(read["result"]["contents"].is_array(), "{read}");
    let secret_uri = format!("test://nowhere/x?token={URI_CANARY}#frag");
    let unread = alice
        .request("resources/read", json!({"uri": secret_uri}))
        .await
        .answer;
    assert!(unread["error"].is_object(), "{unread}");
    let prompt = alice
        .request("prompts/get", json!({"name": "alpha__test_simple_prompt"}))
        .await
        .answer;
    assert!(prompt["result"]["messages"].is_array(), "{prompt}");
    // Lists and pings are not audited.
    alice.request("tools/list", json!({})).await;
    alice.request("ping", json!({})).await;

    let mut mallory = session(&gateway, &gateway.mallory).await;
    let denied = mallory.call("alpha__echo", json!({"text": CANARY})).await;
    assert_eq!(
        denied["error"]["message"], "Unknown tool: alpha__echo",
        "the client learns nothing of the rule: {denied}"
    );

    let events = events(&gateway, &gateway.alice, "").await;
    assert_eq!(events.len(), 8, "{events:#?}");
    let alice_id = gateway.alice.user_id.to_string();
    let mallory_id = gateway.mallory.user_id.to_string();
    let expect = |target: &str, method: &str, outcome: &str, server: Option<&str>, user: &str| {
        let event = event(&events, target, user);
        assert_eq!(event["method"], method, "{event}");
        assert_eq!(event["outcome"], outcome, "{event}");
        assert_eq!(event["server_name"].as_str(), server, "{event}");
        assert_eq!(event["member"], user, "{event}");
        assert!(event["request_bytes"].as_i64().unwrap() > 0, "{event}");
        assert!(event["response_bytes"].as_i64().unwrap() > 0, "{event}");
        assert!(
            event["at_ms"].as_i64().unwrap() > 1_700_000_000_000,
            "{event}"
        );
        event.clone()
    };
    let ok = expect("alpha__echo", "tools/call", "ok", Some("alpha"), &alice_id);
    assert_eq!(ok["server_id"], alpha.as_str());
    assert!(ok["reason"].is_null(), "{ok}");
    assert!(ok["latency_us"].as_i64().unwrap() > 0, "{ok}");
    assert_eq!(ok["member_email"], "alice@acme.example");
    // The session's log tag, never its id (which the client uses as a credential).
    let tag = ok["session"].as_str().unwrap();
    assert!(!tag.is_empty());
    assert_ne!(Some(tag), alice.session.as_deref());
    let everything = Value::Array(events.clone()).to_string();
    assert!(!everything.contains(alice.session.as_deref().unwrap()));

    let is_error = expect(
        "alpha__test_error_handling",
        "tools/call",
        "error",
        Some("alpha"),
        &alice_id,
    );
    assert!(is_error["reason"].as_str().unwrap().contains("isError"));
    let unknown = expect("nosuch__tool", "tools/call", "unknown", None, &alice_id);
    assert!(unknown["server_id"].is_null());
    expect(
        "alpha__nosuch",
        "tools/call",
        "unknown",
        Some("alpha"),
        &alice_id,
    );
    expect(
        "test://static-text",
        "resources/read",
        "ok",
        Some("alpha"),
        &alice_id,
    );
    expect(
        "test://nowhere/x",
        "resources/read",
        "unknown",
        None,
        &alice_id,
    );
    expect(
        "alpha__test_simple_prompt",
        "prompts/get",
        "ok",
        Some("alpha"),
        &alice_id,
    );
    // Mallory's session and the same target as Alice's echo: tell them apart by member.
    let denied: Vec<&Value> = events
        .iter()
        .filter(|event| event["member"] == mallory_id.as_str())
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["target"], "alpha__echo");
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(denied[0]["server_name"], "alpha");
    assert_eq!(denied[0]["reason"], "denied by the member's tool rules");
    assert_ne!(denied[0]["session"], tag);

    // S16: no argument value, no URI query, in the list or either export.
    let (_, _, _, jsonl) = export(&gateway, &gateway.alice, "format=jsonl").await;
    let (_, _, _, csv) = export(&gateway, &gateway.alice, "format=csv").await;
    for text in [everything, jsonl, csv] {
        assert!(
            !text.contains(CANARY),
            "an argument value in the trail: {text}"
        );
        assert!(
            !text.contains(URI_CANARY),
            "a URI query in the trail: {text}"
        );
    }
}

/// S6: filters narrow, pages run newest first without gaps or repeats, both export formats
/// parse back to the same events, and bad parameters are named.
#[tokio::test]
async fn audit_is_filtered_paged_and_exported() {
    let gateway = Gateway::start().await;
    let alpha = gateway.add_fixture("alpha", &[], false).await;
    gateway.add_fixture("beta", &[], false).await;
    let mut alice = session(&gateway, &gateway.alice).await;
    for _ in 0..3 {
        alice.call("alpha__echo", json!({"text": "a"})).await;
    }
    alice.call("beta__echo", json!({"text": "b"})).await;
    alice.call("beta__test_error_handling", json!({})).await;
    // A client-chosen name with every character CSV must quote, and a formula.
    let awkward = "x,\"y\"\nz";
    alice.call(awkward, json!({})).await;
    alice.call("=1+1", json!({})).await;
    let mut mallory = session(&gateway, &gateway.mallory).await;
    mallory.call("beta__echo", json!({"text": "m"})).await;

    let all = events(&gateway, &gateway.alice, "").await;
    assert_eq!(all.len(), 8);
    let at: Vec<i64> = all.iter().map(|e| e["at_ms"].as_i64().unwrap()).collect();
    assert!(
        at.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first: {at:?}"
    );

    let count = |query: String| {
        let gateway = &gateway;
        async move { events(gateway, &gateway.alice, &query).await.len() }
    };
    assert_eq!(count(format!("&server={alpha}")).await, 3);
    assert_eq!(
        count(format!("&member={}", gateway.mallory.user_id)).await,
        1
    );
    assert_eq!(count("&tool=beta__echo".to_owned()).await, 2);
    assert_eq!(count("&outcome=unknown".to_owned()).await, 2);
    assert_eq!(
        count("&outcome=error&tool=beta__test_error_handling".to_owned()).await,
        1
    );
    // Empty parameters filter nothing, as a form would send them.
    assert_eq!(count("&server=&member=&tool=&outcome=".to_owned()).await, 8);
    let now = store::unix_now();
    assert_eq!(count(format!("&since={}", now - 600)).await, 8);
    assert_eq!(count(format!("&until={}", now - 600)).await, 0);
    assert_eq!(
        count(format!("&since={}&until={}", now - 600, now + 600)).await,
        8
    );

    // Pages of three, following next_cursor.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = gateway
            .api(
                &gateway.alice,
                Method::GET,
                &format!("/api/v1/audit?limit=3{cursor}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 3);
        paged.extend(events.iter().map(|e| e["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let ids: Vec<Value> = all.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(paged, ids);

    // JSON lines: the list's events, one per line.
    let (status, content_type, disposition, jsonl) =
        export(&gateway, &gateway.alice, "format=jsonl").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/x-ndjson");
    assert!(
        disposition.starts_with("attachment; filename=\"mcp-hero-audit-")
            && disposition.ends_with(".jsonl\""),
        "{disposition}"
    );
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, all);
    // CSV: a header, then the same events, every field back as it was.
    let (status, content_type, disposition, csv) =
        export(&gateway, &gateway.alice, "format=csv").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    assert!(disposition.ends_with(".csv\""), "{disposition}");
    let rows = parse_csv(&csv);
    assert_eq!(
        rows[0],
        [
            "id",
            "at_ms",
            "member",
            "member_email",
            "session",
            "server_id",
            "server_name",
            "method",
            "target",
            "outcome",
            "reason",
            "latency_us",
            "request_bytes",
            "response_bytes"
        ]
    );
    assert_eq!(rows.len(), 9);
    for (row, event) in rows[1..].iter().zip(&all) {
        for (column, value) in rows[0].iter().zip(row) {
            let expected = match &event[column.as_str()] {
                Value::Null => String::new(),
                Value::String(text) if text.starts_with('=') => format!("'{text}"),
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(value, &expected, "{column} of {event}");
        }
    }
    assert!(rows.iter().any(|row| row[8] == awkward));
    assert!(rows.iter().any(|row| row[8] == "'=1+1"));
    // Filters apply to exports too; the default format is JSON lines.
    let (_, content_type, _, filtered) =
        export(&gateway, &gateway.alice, &format!("server={alpha}")).await;
    assert_eq!(content_type, "application/x-ndjson");
    assert_eq!(filtered.lines().count(), 3);

    // Bad input: 400 naming the parameter.
    for (query, named) in [
        ("/api/v1/audit?limit=0", "limit"),
        ("/api/v1/audit?limit=1001", "limit"),
        ("/api/v1/audit?outcome=fine", "outcome"),
        ("/api/v1/audit?since=yesterday", "since"),
        ("/api/v1/audit?until=-5", "until"),
        ("/api/v1/audit?since=200&until=100", "since"),
        ("/api/v1/audit?cursor=nonsense", "cursor"),
        ("/api/v1/audit?colour=red", "colour"),
        ("/api/v1/audit/export?format=xml", "format"),
        ("/api/v1/audit/export?cursor=1.a", "cursor"),
        ("/api/v1/audit/export?outcome=fine", "outcome"),
    ] {
        let (status, answer) = gateway.api(&gateway.alice, Method::GET, query, None).await;
        assert_eq!(status, 400, "{query}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{query}: {message}");
    }
}

/// S8, S6: an organization's trail is its own: another organization's owner sees none of it,
/// even filtering on its ids, and members and viewers may not read it at all.
#[tokio::test]
async fn s8_audit_belongs_to_its_organization_and_its_admins() {
    let gateway = Gateway::start().await;
    let alpha = gateway.add_fixture("alpha", &[], false).await;
    let mut alice = session(&gateway, &gateway.alice).await;
    alice.call("alpha__echo", json!({"text": "a"})).await;
    assert_eq!(events(&gateway, &gateway.alice, "").await.len(), 1);

    let olga = &gateway.olga;
    assert!(events(&gateway, olga, "").await.is_empty());
    assert!(
        events(&gateway, olga, &format!("&server={alpha}"))
            .await
            .is_empty()
    );
    let alice_filter = format!("&member={}", gateway.alice.user_id);
    assert!(events(&gateway, olga, &alice_filter).await.is_empty());
    for format in ["jsonl", "csv"] {
        let (status, _, _, body) = export(&gateway, olga, &format!("format={format}")).await;
        assert_eq!(status, 200);
        assert!(
            !body.contains(&alpha) && !body.contains("alpha__echo"),
            "{body}"
        );
    }

    for who in [&gateway.mallory, &gateway.victor] {
        for path in ["/api/v1/audit", "/api/v1/audit/export?format=csv"] {
            let (status, answer) = gateway.api(who, Method::GET, path, None).await;
            assert_eq!(status, 403, "{path}: {answer}");
            assert_eq!(answer["error"]["code"], "forbidden");
        }
    }
}

/// S19: deleting a server deletes its audit events; the rest of the trail stays.
#[tokio::test]
async fn s19_audit_events_go_with_their_server() {
    let gateway = Gateway::start().await;
    let alpha = gateway.add_fixture("alpha", &[], false).await;
    let beta = gateway.add_fixture("beta", &[], false).await;
    let mut alice = session(&gateway, &gateway.alice).await;
    alice.call("alpha__echo", json!({"text": "a"})).await;
    alice.call("beta__echo", json!({"text": "b"})).await;
    alice.call("nosuch__tool", json!({})).await;
    assert_eq!(events(&gateway, &gateway.alice, "").await.len(), 3);

    let (status, answer) = gateway
        .api(
            &gateway.alice,
            Method::DELETE,
            &format!("/api/v1/servers/{alpha}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{answer}");
    let left = events(&gateway, &gateway.alice, "").await;
    let targets: Vec<&str> = left.iter().map(|e| e["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["nosuch__tool", "beta__echo"]);
    assert_eq!(left[1]["server_id"], beta.as_str());
    assert!(
        events(&gateway, &gateway.alice, &format!("&server={alpha}"))
            .await
            .is_empty()
    );
}

/// S6, S16: calls that get no answer are `failed` with the gateway's reason (an exit, a
/// timeout, a server already gone), and a call the client cancels is `cancelled`.
#[tokio::test]
async fn failed_and_cancelled_calls_are_audited_with_the_gateway_s_reason() {
    let config = mcp::GatewayConfig {
        call_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let gateway = Gateway::start_with(config).await;
    for name in ["exits", "hangs", "slow"] {
        gateway.add_fixture(name, &["--chaos"], false).await;
    }
    let mut alice = session(&gateway, &gateway.alice).await;
    alice.tool_names().await;
    alice.call("exits__chaos_exit", json!({})).await;
    // The server is gone now: the next call fails before reaching it.
    alice.call("exits__echo", json!({"text": CANARY})).await;
    alice.call("hangs__chaos_hang", json!({})).await;
    let call = alice
        .post()
        .json(
            &json!({"jsonrpc": "2.0", "id": "c-1", "method": "tools/call",
            "params": {"name": "slow__chaos_hang", "arguments": {}}}),
        )
        .send();
    let cancel = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        alice
            .notify(
                "notifications/cancelled",
                json!({"requestId": "c-1", "reason": "changed my mind"}),
            )
            .await
    };
    let (response, status) = tokio::join!(call, cancel);
    assert_eq!(status, 202);
    response.unwrap().text().await.unwrap();

    let alice_id = gateway.alice.user_id.to_string();
    let events = events(&gateway, &gateway.alice, "").await;
    assert_eq!(events.len(), 4, "{events:#?}");
    for (target, outcome, reason) in [
        ("exits__chaos_exit", "failed", "exited with status 3"),
        ("exits__echo", "failed", "exited with status 3"),
        ("hangs__chaos_hang", "failed", "did not answer within 1"),
        ("slow__chaos_hang", "cancelled", "cancelled by the client"),
    ] {
        let event = event(&events, target, &alice_id);
        assert_eq!(event["outcome"], outcome, "{event}");
        let text = event["reason"].as_str().unwrap();
        assert!(text.contains(reason), "{target}: {text}");
    }
    assert!(!Value::Array(events).to_string().contains(CANARY));
}
