//! The operator's log buffer through the API (S6, S7, S8, S16, S19): lines appended with
//! `ServerLogs::append` are read back with each filter and by page, tailed live over SSE, shown
//! only to owners and admins of the server's organization, and refused with a clear error for bad
//! input. The end-to-end path from a sandboxed server's stderr through the redactor is tested
//! where the data plane feeds the buffer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

mod support;

use std::time::Duration;

use mcp_hero::server_logs::{LogLevel, LogLine, LogStream, unix_millis};
use reqwest::Method;
use serde_json::Value;
use store::{OrgId, ServerId};
use support::{Gateway, Member, SseEvent, eventually, read_events};

/// The organization id of `acme`, as the data plane would name it.
async fn acme(gateway: &Gateway) -> OrgId {
    gateway
        .store
        .operator_scope("acme")
        .await
        .unwrap()
        .org_id()
        .clone()
}

fn line(
    org: &OrgId,
    server: &str,
    session: &str,
    level: LogLevel,
    text: &str,
    at_ms: i64,
) -> LogLine {
    LogLine {
        org: org.clone(),
        server: ServerId::from_untrusted(server),
        session: session.to_owned(),
        stream: LogStream::Stderr,
        level,
        text: text.to_owned(),
        at_ms,
    }
}

fn texts(page: &Value) -> Vec<String> {
    page["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines in {page}"))
        .iter()
        .map(|line| line["text"].as_str().unwrap().to_owned())
        .collect()
}

async fn read(gateway: &Gateway, who: &Member, path: &str) -> (u16, Value) {
    gateway.api(who, Method::GET, path, None).await
}

/// Waits until the server's buffer holds `count` lines.
async fn stored(gateway: &Gateway, server: &str, count: usize) {
    eventually(&format!("{count} lines are stored"), async || {
        let (status, page) = read(
            gateway,
            &gateway.alice,
            &format!("/api/v1/servers/{server}/logs?limit=1000"),
        )
        .await;
        status == 200 && page["lines"].as_array().unwrap().len() == count
    })
    .await;
}

/// Each filter, paging by cursor, the line's fields, and who may read: owners and admins of the
/// server's organization; a member or viewer gets 403, another organization's owner 404 (S7, S8).
#[tokio::test]
async fn server_logs_are_read_with_each_filter_and_by_page() {
    let gateway = Gateway::start().await;
    let org = acme(&gateway).await;
    let server = gateway
        .add_stdio_server("files", "/bin/true", &[], false)
        .await;
    let now = unix_millis();
    let hour = 3600 * 1000;
    for (session, level, text, at) in [
        ("s1", LogLevel::Debug, "one", now - 3 * hour),
        ("s1", LogLevel::Info, "two", now - 2 * hour),
        ("s2", LogLevel::Warn, "three", now - hour / 2),
        ("s2", LogLevel::Error, "four", now - 1000),
        ("s1", LogLevel::Info, "five", now),
    ] {
        gateway
            .server_logs
            .append(line(&org, &server, session, level, text, at));
    }
    stored(&gateway, &server, 5).await;
    let base = format!("/api/v1/servers/{server}/logs");
    let (status, all) = read(&gateway, &gateway.alice, &base).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(texts(&all), ["one", "two", "three", "four", "five"]);
    assert_eq!(all["next_cursor"], Value::Null, "a page that is not full");
    let three = &all["lines"][2];
    assert_eq!(
        (
            three["session"].as_str(),
            three["stream"].as_str(),
            three["level"].as_str(),
            three["at"].as_i64()
        ),
        (
            Some("s2"),
            Some("stderr"),
            Some("warn"),
            Some(now - hour / 2)
        )
    );
    for (query, want) in [
        (
            format!("since={}", now - hour),
            vec!["three", "four", "five"],
        ),
        ("since=1h".to_owned(), vec!["three", "four", "five"]),
        (
            "since=150m".to_owned(),
            vec!["two", "three", "four", "five"],
        ),
        ("session=s2".to_owned(), vec!["three", "four"]),
        ("level=warn".to_owned(), vec!["three", "four"]),
        ("level=info&session=s1".to_owned(), vec!["two", "five"]),
        (
            "level=debug".to_owned(),
            vec!["one", "two", "three", "four", "five"],
        ),
    ] {
        let (status, page) = read(&gateway, &gateway.alice, &format!("{base}?{query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(texts(&page), want, "{query}");
    }
    // Pages of two, each after the previous page's cursor.
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) =
            read(&gateway, &gateway.alice, &format!("{base}?limit=2{cursor}")).await;
        assert_eq!(status, 200, "{page}");
        pages.push(texts(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [vec!["one", "two"], vec!["three", "four"], vec!["five"]]
    );

    // Admins read too; members and viewers may not; another organization's owner finds nothing.
    let (status, _) = read(&gateway, &gateway.mallory, &base).await;
    assert_eq!(status, 403, "a member read the server's log");
    let (status, _) = read(&gateway, &gateway.victor, &base).await;
    assert_eq!(status, 403, "a viewer read the server's log");
    let (status, answer) = read(&gateway, &gateway.olga, &base).await;
    assert_eq!(status, 404, "{answer}");
    assert!(!answer.to_string().contains("three"));
    let (status, answer) = read(
        &gateway,
        &gateway.olga,
        "/api/v1/servers/00000000-0000-0000-0000-000000000000/logs",
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // A line naming another organization for this server is not stored anywhere.
    let other = gateway
        .store
        .operator_scope("other")
        .await
        .unwrap()
        .org_id()
        .clone();
    gateway
        .server_logs
        .append(line(&other, &server, "s9", LogLevel::Info, "forged", now));
    gateway
        .server_logs
        .append(line(&org, &server, "s1", LogLevel::Info, "six", now));
    stored(&gateway, &server, 6).await;
    let (_, all) = read(&gateway, &gateway.alice, &base).await;
    assert!(!texts(&all).contains(&"forged".to_owned()));
}

/// Bad parameters are refused with 400 naming the parameter; nothing is read.
#[tokio::test]
async fn bad_log_parameters_are_refused_naming_the_parameter() {
    let gateway = Gateway::start().await;
    let server = gateway
        .add_stdio_server("files", "/bin/true", &[], false)
        .await;
    for route in ["logs", "logs/stream"] {
        for (query, named) in [
            ("level=loud", "level"),
            ("since=yesterday", "since"),
            ("since=-5", "since"),
            ("since=5w", "since"),
            ("cursor=abc", "cursor"),
            ("session=", "session"),
            ("surprise=1", "surprise"),
        ] {
            let path = format!("/api/v1/servers/{server}/{route}?{query}");
            let (status, answer) = read(&gateway, &gateway.alice, &path).await;
            assert_eq!(status, 400, "{path}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(named), "{path}: {message}");
        }
    }
    for limit in ["0", "1001", "many"] {
        let path = format!("/api/v1/servers/{server}/logs?limit={limit}");
        let (status, answer) = read(&gateway, &gateway.alice, &path).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limit")
        );
    }
    // `limit` means nothing to a tail.
    let path = format!("/api/v1/servers/{server}/logs/stream?limit=5");
    assert_eq!(read(&gateway, &gateway.alice, &path).await.0, 400);
}

/// Opens a live tail as `who`; the status, and the events when it is 200.
async fn tail(
    gateway: &Gateway,
    who: &Member,
    server: &str,
    query: &str,
) -> (u16, Option<tokio::sync::mpsc::UnboundedReceiver<SseEvent>>) {
    let response = gateway
        .http
        .get(format!(
            "http://{}/api/v1/servers/{server}/logs/stream?{query}",
            gateway.addr
        ))
        .bearer_auth(&who.token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    (status, Some(read_events(response)))
}

async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<SseEvent>) -> SseEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no event within 10 s")
        .expect("the stream ended")
}

/// The live tail sends the stored backlog, then new lines as they are stored, both filtered; it
/// ends when the server is deleted (S19). Members get 403, another organization 404 (S7, S8).
#[tokio::test]
async fn live_tail_sends_the_backlog_then_new_lines_and_ends_with_its_server() {
    let gateway = Gateway::start().await;
    let org = acme(&gateway).await;
    let server = gateway
        .add_stdio_server("files", "/bin/true", &[], false)
        .await;
    let neighbour = gateway
        .add_stdio_server("other", "/bin/true", &[], false)
        .await;
    let now = unix_millis();
    for (session, level, text) in [
        ("a", LogLevel::Info, "backlog a"),
        ("b", LogLevel::Info, "backlog b"),
        ("a", LogLevel::Debug, "backlog a debug"),
    ] {
        gateway
            .server_logs
            .append(line(&org, &server, session, level, text, now));
    }
    stored(&gateway, &server, 3).await;

    assert_eq!(tail(&gateway, &gateway.mallory, &server, "").await.0, 403);
    assert_eq!(tail(&gateway, &gateway.olga, &server, "").await.0, 404);
    let (status, events) = tail(&gateway, &gateway.alice, &server, "session=a&level=info").await;
    assert_eq!(status, 200);
    let mut events = events.unwrap();
    let (id, first) = next_event(&mut events).await;
    assert_eq!(first["text"], "backlog a", "{first}");
    assert_eq!(id, Some(first["id"].as_i64().unwrap().to_string()));

    // New lines: only session a's, at info or above, of this server.
    for (server, session, level, text) in [
        (&server, "b", LogLevel::Info, "live b"),
        (&server, "a", LogLevel::Debug, "live a debug"),
        (&neighbour, "a", LogLevel::Info, "live neighbour"),
        (&server, "a", LogLevel::Error, "live a error"),
        (&server, "a", LogLevel::Info, "live a info"),
    ] {
        gateway
            .server_logs
            .append(line(&org, server, session, level, text, unix_millis()));
    }
    let (_, second) = next_event(&mut events).await;
    assert_eq!(second["text"], "live a error", "{second}");
    assert_eq!(second["level"], "error");
    let (_, third) = next_event(&mut events).await;
    assert_eq!(third["text"], "live a info", "{third}");
    assert!(third["id"].as_i64() > second["id"].as_i64());

    // Deleting the server ends the tail with the reason, and the stream closes.
    let (status, _) = gateway
        .api(
            &gateway.alice,
            Method::DELETE,
            &format!("/api/v1/servers/{server}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, end) = next_event(&mut events).await;
    assert_eq!(end["reason"], "the server was deleted", "{end}");
    let closed = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("the stream stayed open");
    assert!(closed.is_none(), "an event after the end: {closed:?}");
    // Its lines are gone with it (S19): the log answers 404 like any unknown server.
    let (status, _) = read(
        &gateway,
        &gateway.alice,
        &format!("/api/v1/servers/{server}/logs"),
    )
    .await;
    assert_eq!(status, 404);
}

/// A tail started with a cursor sends only what came after it, so a client can resume; lines
/// come through a session's handle as the data plane appends them; shutdown ends the tail.
#[tokio::test]
async fn a_tail_resumes_after_its_cursor_and_ends_at_shutdown() {
    let gateway = Gateway::start().await;
    let org = acme(&gateway).await;
    let server = gateway
        .add_stdio_server("files", "/bin/true", &[], false)
        .await;
    // The per-session handle the data plane's adapters hold.
    let session = gateway
        .server_logs
        .session(org, ServerId::from_untrusted(&server), "s");
    for text in ["first", "second", "third"] {
        session.line(LogStream::Sandbox, LogLevel::Info, text);
    }
    stored(&gateway, &server, 3).await;
    let (_, page) = read(
        &gateway,
        &gateway.alice,
        &format!("/api/v1/servers/{server}/logs?limit=1"),
    )
    .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, events) = tail(
        &gateway,
        &gateway.alice,
        &server,
        &format!("cursor={cursor}"),
    )
    .await;
    let mut events = events.unwrap();
    let (_, second) = next_event(&mut events).await;
    assert_eq!(
        (second["text"].as_str(), second["stream"].as_str()),
        (Some("second"), Some("sandbox"))
    );
    assert_eq!(next_event(&mut events).await.1["text"], "third");

    // Shutting down ends every tail, so draining connections does not wait on them.
    gateway.server_logs.close_tails();
    let (_, end) = next_event(&mut events).await;
    assert_eq!(end["reason"], "the gateway is stopping", "{end}");
    let closed = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("the stream stayed open");
    assert!(closed.is_none());
}
