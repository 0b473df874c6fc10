//! Gateway logs at trace level (S16): no token, password or root secret reaches them; credential
//! headers are marked sensitive both ways; a panic is logged without its message. In a test
//! binary of its own, because `tracing` subscribers set per test race with other tests' threads.

#![allow(
    clippy::disallowed_methods,
    reason = "tests look for their own test secrets in the logs"
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

use axum::body::Body;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt as _;
use mcp_hero::http::{AppState, router};
use secrecy::{ExposeSecret, SecretString};
use store::{DatabaseLocation, Store};
use tower::ServiceExt as _;

mod support;
use support::ROOT_SECRET;
use support::capture::{CapturedLogs, captured_logs};

async fn call(
    app: &axum::Router,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> String {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn s16_trace_level_gateway_logs_hold_no_token() {
    let logs = captured_logs();

    let dir = tempfile::tempdir().unwrap();
    let root = vault::RootSecret::from_base64(ROOT_SECRET).unwrap();
    let location = DatabaseLocation::Sqlite {
        path: dir.path().join("logs.db"),
    };
    let store = Store::open(&location, vault::Vault::new(&root, None))
        .await
        .unwrap();
    let (scope, _, alice) = store
        .create_organization("acme", "Acme", "alice@acme.example")
        .await
        .unwrap();
    let canary = format!(
        "canary-{}",
        &auth::pat::generate().secret.expose_secret()[9..29]
    );
    let owner = auth::authorize::<auth::ManageServers>(auth::Role::Owner).unwrap();
    let server = store
        .create_server(
            &scope,
            &owner,
            store::NewServer {
                name: "vault".into(),
                transport: store::ServerTransport::StreamableHttp {
                    url: "https://mcp.example.com/mcp".into(),
                    headers: Default::default(),
                },
                exposure: store::Exposure::Prefixed,
                enabled: false,
                internal: false,
                package: None,
            },
        )
        .await
        .unwrap();
    store
        .create_variable(
            &scope,
            &owner,
            &server.id,
            "CANARY",
            store::VariableValue::Password(SecretString::from(canary.clone())),
        )
        .await
        .unwrap();
    let token = auth::pat::generate();
    store
        .create_token(&scope, &alice, "t", None, &token.digest)
        .await
        .unwrap();
    let token = token.secret.expose_secret().to_owned();
    let gateway = mcp::Gateway::new(
        mcp::GatewayConfig::default(),
        std::sync::Arc::new(mcp_hero::launch::SandboxUnavailable::new(
            "stdio servers are not used here",
        )),
    )
    .unwrap();
    let app = router(AppState::new(store, gateway), 64 * 1024);

    let created = call(
        &app,
        Method::POST,
        "/api/v1/tokens",
        &token,
        Some(r#"{"name":"logged?"}"#),
    )
    .await;
    let new_token = serde_json::from_str::<serde_json::Value>(&created).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    call(&app, Method::GET, "/api/v1/members", &new_token, None).await;
    call(
        &app,
        Method::GET,
        "/api/v1/members",
        "mcph_pat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        None,
    )
    .await;
    call(
        &app,
        Method::POST,
        "/api/v1/members",
        &token,
        Some(r#"{"email":"bad","role":"member"}"#),
    )
    .await;

    // The MCP endpoint: a session is opened and used; neither the token nor the session id
    // (which, with the token, reaches the member's tools) may be logged.
    let mcp_request = |body: &'static str, session: Option<&str>| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/o/acme/mcp")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.body(Body::from(body)).unwrap()
    };
    let opened = app
        .clone()
        .oneshot(mcp_request(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            None,
        ))
        .await
        .unwrap();
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let listed = app
        .clone()
        .oneshot(mcp_request(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            Some(&session),
        ))
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);

    let text = logs.text();
    assert!(
        text.contains("session started"),
        "the capture saw no MCP session:\n{text}"
    );
    assert!(
        !text.contains(session.as_str()),
        "an MCP session id reached the gateway log:\n{text}"
    );
    assert!(
        text.contains("started processing request"),
        "the capture saw no request events:\n{text}"
    );
    for secret in [&token, &new_token, &canary, &ROOT_SECRET.to_owned()] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret reached the gateway log:\n{text}"
        );
    }
    assert!(
        !text.contains("mcph_pat_"),
        "something token-shaped reached the gateway log:\n{text}"
    );
}

/// The four credential headers reach a handler marked sensitive (so no `Debug` of the request
/// shows them), and the session id the gateway returns is marked sensitive on the way out (S16).
#[tokio::test(flavor = "current_thread")]
async fn s16_credential_headers_are_marked_sensitive_both_ways() {
    use axum::http::HeaderMap;
    let probe = axum::Router::new().route(
        "/probe",
        axum::routing::get(|headers: HeaderMap| async move {
            let marked: Vec<String> = [
                "authorization",
                "cookie",
                "proxy-authorization",
                "mcp-session-id",
            ]
            .into_iter()
            .filter(|name| headers.get(*name).is_some_and(|value| value.is_sensitive()))
            .map(str::to_owned)
            .collect();
            let shown = format!("{headers:?}");
            (
                [("mcp-session-id", "minted-session-id")],
                format!("{}\n{shown}", marked.join(",")),
            )
        }),
    );
    let app = mcp_hero::http::with_middleware(probe);
    let request = Request::builder()
        .uri("/probe")
        .header(header::AUTHORIZATION, "Bearer secret-token")
        .header(header::COOKIE, "session=secret-cookie")
        .header(header::PROXY_AUTHORIZATION, "Basic secret-proxy")
        .header("mcp-session-id", "secret-session")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert!(response.headers()["mcp-session-id"].is_sensitive());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let (marked, shown) = text.split_once('\n').unwrap();
    assert_eq!(
        marked,
        "authorization,cookie,proxy-authorization,mcp-session-id"
    );
    for secret in [
        "secret-token",
        "secret-cookie",
        "secret-proxy",
        "secret-session",
    ] {
        // log-check: allow(a test's own fake header value, named so the failure says which)
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

/// A panic is logged with its location, never its message (which may format a secret) (S16).
#[test]
fn s16_a_panic_is_logged_with_its_location_and_without_its_message() {
    let logs = CapturedLogs::default();
    mcp_hero::panics::install_panic_hook();
    let canary = format!(
        "canary-{}",
        &auth::pat::generate().secret.expose_secret()[9..29]
    );
    let writer = logs.clone();
    let message = canary.clone();
    let panicked = std::thread::Builder::new()
        .name("doomed".to_owned())
        .spawn(move || {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(writer)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                // log-check: allow(the test panics with a canary to prove the hook drops it)
                panic!("the value was {message}");
            });
        })
        .unwrap()
        .join();
    assert!(panicked.is_err(), "the thread did not panic");
    let _ = std::panic::take_hook();
    let text = logs.text();
    assert!(text.contains("panic"), "no panic line:\n{text}");
    assert!(text.contains("tests/logs.rs:"), "no location:\n{text}");
    assert!(text.contains("doomed"), "no thread name:\n{text}");
    assert!(
        !text.contains(&canary),
        "the panic message reached the log:\n{text}"
    );
}
