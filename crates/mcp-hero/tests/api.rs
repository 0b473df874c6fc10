//! The HTTP API in-process: cross-tenant matrix (S8), authentication, roles (S7), bad input,
//! changes reported to the data plane, and no secret in any answer (S15). Routes are walked from
//! the OpenAPI document, so a new route joins every check.

#![allow(
    clippy::disallowed_methods,
    reason = "tests send freshly created test tokens"
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use auth::tool_access::{Effect, Subject, ToolPattern};
use auth::{ManageMembers, ManageServers, Role, authorize};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use mcp_hero::changes::{Change, ChangeSink};
use mcp_hero::http::{AppState, openapi, router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use store::{
    DatabaseLocation, Exposure, NewServer, OrgId, OrgScope, ServerId, ServerTransport, Store,
    TokenId, UserId,
};
use tower::ServiceExt as _;

const ROOT_SECRET: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const MAX_BODY: usize = 64 * 1024;

/// Every change the API reported, in order: the data plane's view of the control plane.
#[derive(Debug, Default)]
struct RecordedChanges(Mutex<Vec<Change>>);

impl ChangeSink for RecordedChanges {
    fn changed(&self, change: Change) {
        self.0.lock().unwrap().push(change);
    }
}

impl RecordedChanges {
    fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    app: Router,
    changes: Arc<RecordedChanges>,
    /// Organization A: alice (owner), carol (member), server `files`, a deny rule for carol;
    /// B: bob (owner).
    scope_a: OrgScope,
    org_a: OrgId,
    alice: String,
    carol_token: String,
    bob: String,
    carol_id: UserId,
    alice_token_id: String,
    server_id: String,
    rule_id: String,
    canary: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = vault::RootSecret::from_base64(ROOT_SECRET).unwrap();
    let location = DatabaseLocation::Sqlite {
        path: dir.path().join("test.db"),
    };
    let store = Store::open(&location, vault::Vault::new(&root, None))
        .await
        .unwrap();
    let owner = authorize::<ManageMembers>(Role::Owner).unwrap();
    let (scope_a, _, alice_id) = store
        .create_organization("acme", "Acme", "alice@acme.example")
        .await
        .unwrap();
    let (scope_b, _, bob_id) = store
        .create_organization("beta", "Beta", "bob@beta.example")
        .await
        .unwrap();
    let carol = store
        .add_member(&scope_a, &owner, "carol@acme.example", Role::Member)
        .await
        .unwrap();
    let issue = |scope, user| {
        let store = store.clone();
        async move {
            let token = auth::pat::generate();
            let meta = store
                .create_token(&scope, &user, "test", None, &token.digest)
                .await
                .unwrap();
            (token.secret.expose_secret().to_owned(), meta.id.to_string())
        }
    };
    let (alice, alice_token_id) = issue(scope_a.clone(), alice_id).await;
    let (carol_token, _) = issue(scope_a.clone(), carol.user_id.clone()).await;
    let (bob, _) = issue(scope_b, bob_id).await;
    let canary = format!("canary-{}", uuid_like());
    let servers = authorize::<ManageServers>(Role::Owner).unwrap();
    let server = store
        .create_server(
            &scope_a,
            &servers,
            NewServer {
                name: "files".to_owned(),
                transport: ServerTransport::Stdio {
                    command: "npx".to_owned(),
                    args: vec!["-y".to_owned(), "server-files".to_owned()],
                    working_dir: None,
                    env: Default::default(),
                },
                exposure: Exposure::Prefixed,
                enabled: true,
                internal: false,
                package: Some(
                    store::Package::parse(store::PackageKind::Npm, "server-files@1.0.0").unwrap(),
                ),
            },
        )
        .await
        .unwrap();
    store
        .create_variable(
            &scope_a,
            &servers,
            &server.id,
            "CANARY",
            store::VariableValue::Password(SecretString::from(canary.clone())),
        )
        .await
        .unwrap();
    let rule = store
        .create_tool_rule(
            &scope_a,
            &servers,
            Subject::Member(carol.user_id.clone()),
            Effect::Deny,
            ToolPattern::parse("files__delete*").unwrap(),
        )
        .await
        .unwrap();
    // One audit event of A's, so the matrix shows B's reads of the trail never reach it (S8).
    let written = store
        .append_audit_events(&[store::NewAuditEvent {
            org: scope_a.org_id().clone(),
            server: Some(server.id.clone()),
            user: carol.user_id.clone(),
            session: "tag".to_owned(),
            method: store::AuditMethod::ToolsCall,
            target: "files__delete_all".to_owned(),
            outcome: store::AuditOutcome::Denied,
            reason: None,
            latency_us: 10,
            request_bytes: 20,
            response_bytes: 30,
            at_ms: store::unix_now() * 1000,
        }])
        .await
        .unwrap();
    assert_eq!(written, 1);
    let changes = Arc::new(RecordedChanges::default());
    let sink: Arc<dyn ChangeSink> = changes.clone();
    let gateway = mcp::Gateway::new(
        mcp::GatewayConfig::default(),
        Arc::new(mcp_hero::launch::SandboxUnavailable::new(
            "stdio servers are not used here",
        )),
    )
    .unwrap();
    let state = AppState::new(store.clone(), gateway).with_changes(sink);
    let app = router(state, MAX_BODY);
    Fixture {
        _dir: dir,
        store,
        app,
        changes,
        org_a: scope_a.org_id().clone(),
        scope_a,
        alice,
        carol_token,
        bob,
        carol_id: carol.user_id,
        alice_token_id,
        server_id: server.id.to_string(),
        rule_id: rule.id.to_string(),
        canary,
    }
}

fn uuid_like() -> String {
    let token = auth::pat::generate();
    token.secret.expose_secret()[9..29].to_owned()
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// `path` with each `{param}` replaced by `id(param)`.
fn with_ids(path: &str, id: impl Fn(&str) -> String) -> String {
    let mut concrete = String::new();
    let mut rest = path;
    while let Some((before, after)) = rest.split_once('{') {
        let (param, tail) = after.split_once('}').unwrap();
        concrete.push_str(before);
        concrete.push_str(&id(param));
        rest = tail;
    }
    concrete.push_str(rest);
    concrete
}

/// Every (method, path) in the OpenAPI document, with whether it requires a bearer token.
fn documented_routes() -> Vec<(Method, String, bool)> {
    let document = serde_json::to_value(openapi()).unwrap();
    let mut routes = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let secured = operation.get("security").is_some();
            routes.push((method, path.clone(), secured));
        }
    }
    routes
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let routes: Vec<String> = documented_routes()
        .into_iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    let expected = [
        "GET /api/v1/members",
        "POST /api/v1/members",
        "DELETE /api/v1/members/{user_id}",
        "GET /api/v1/members/{user_id}",
        "PATCH /api/v1/members/{user_id}",
        "GET /api/v1/openapi.json",
        "GET /api/v1/organization",
        "DELETE /api/v1/organization",
        "GET /api/v1/tokens",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{token_id}",
        "GET /api/v1/servers",
        "POST /api/v1/servers",
        "DELETE /api/v1/servers/{server_id}",
        "GET /api/v1/servers/{server_id}",
        "PATCH /api/v1/servers/{server_id}",
        "GET /api/v1/servers/{server_id}/image",
        "POST /api/v1/servers/{server_id}/image/reinstall",
        "GET /api/v1/servers/{server_id}/logs",
        "GET /api/v1/servers/{server_id}/logs/stream",
        "GET /api/v1/servers/{server_id}/variables",
        "POST /api/v1/servers/{server_id}/variables",
        "GET /api/v1/servers/{server_id}/variables/{name}",
        "PUT /api/v1/servers/{server_id}/variables/{name}",
        "DELETE /api/v1/servers/{server_id}/variables/{name}",
        "POST /api/v1/servers/{server_id}/files",
        "PUT /api/v1/servers/{server_id}/files/{name}",
        "PUT /api/v1/servers/{server_id}/oauth",
        "GET /api/v1/servers/{server_id}/oauth",
        "DELETE /api/v1/servers/{server_id}/oauth",
        "POST /api/v1/servers/{server_id}/oauth/authorize",
        "DELETE /api/v1/servers/{server_id}/oauth/connection",
        "GET /oauth/upstream/callback",
        "GET /oauth/client-metadata.json",
        "GET /api/v1/tool-rules",
        "POST /api/v1/tool-rules",
        "DELETE /api/v1/tool-rules/{rule_id}",
        "GET /api/v1/sessions",
        "GET /api/v1/audit",
        "GET /api/v1/audit/export",
        "POST /o/{org}/mcp",
        "GET /o/{org}/mcp",
        "DELETE /o/{org}/mcp",
        "GET /healthz",
        "GET /metrics",
        "GET /readyz",
    ];
    let mut sorted = routes.clone();
    sorted.sort();
    let mut expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(sorted, expected);

    let fixture = fixture().await;
    let served = call(
        &fixture.app,
        Method::GET,
        "/api/v1/openapi.json",
        None,
        None,
    )
    .await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.json(), serde_json::to_value(openapi()).unwrap());
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            call(&fixture.app, Method::GET, path, None, None)
                .await
                .status,
            StatusCode::OK,
            "{path}"
        );
    }
}

/// One row per route that takes an id: the id of organization A's object to aim at it, and a body.
fn matrix_row(
    fixture: &Fixture,
    method: &Method,
    path: &str,
) -> Option<(String, Option<&'static str>)> {
    let carol = fixture.carol_id.to_string();
    let token = fixture.alice_token_id.clone();
    let server = fixture.server_id.clone();
    let rows: BTreeMap<(&str, &str), (String, Option<&'static str>)> = [
        (("GET", "/api/v1/members/{user_id}"), (carol.clone(), None)),
        (
            ("PATCH", "/api/v1/members/{user_id}"),
            (carol.clone(), Some(r#"{"role":"viewer"}"#)),
        ),
        (("DELETE", "/api/v1/members/{user_id}"), (carol, None)),
        (("DELETE", "/api/v1/tokens/{token_id}"), (token, None)),
        (
            ("GET", "/api/v1/servers/{server_id}"),
            (server.clone(), None),
        ),
        (
            ("PATCH", "/api/v1/servers/{server_id}"),
            (server.clone(), Some(r#"{"enabled":false}"#)),
        ),
        (
            ("GET", "/api/v1/servers/{server_id}/image"),
            (server.clone(), None),
        ),
        (
            ("POST", "/api/v1/servers/{server_id}/image/reinstall"),
            (server.clone(), None),
        ),
        (
            ("GET", "/api/v1/servers/{server_id}/logs"),
            (server.clone(), None),
        ),
        (
            ("GET", "/api/v1/servers/{server_id}/logs/stream"),
            (server.clone(), None),
        ),
        (
            ("GET", "/api/v1/servers/{server_id}/variables"),
            (server.clone(), None),
        ),
        (
            ("POST", "/api/v1/servers/{server_id}/variables"),
            (
                server.clone(),
                Some(r#"{"name":"K","type":"password","value":"x-secret-value"}"#),
            ),
        ),
        (
            ("GET", "/api/v1/servers/{server_id}/variables/{name}"),
            (server.clone(), None),
        ),
        (
            ("PUT", "/api/v1/servers/{server_id}/variables/{name}"),
            (
                server.clone(),
                Some(r#"{"type":"password","value":"x-secret-value"}"#),
            ),
        ),
        (
            ("DELETE", "/api/v1/servers/{server_id}/variables/{name}"),
            (server.clone(), None),
        ),
        (
            ("POST", "/api/v1/servers/{server_id}/files"),
            (server.clone(), None),
        ),
        (
            ("PUT", "/api/v1/servers/{server_id}/files/{name}"),
            (server.clone(), None),
        ),
        (
            ("PUT", "/api/v1/servers/{server_id}/oauth"),
            (server.clone(), Some(r#"{"mode":"member"}"#)),
        ),
        (
            ("GET", "/api/v1/servers/{server_id}/oauth"),
            (server.clone(), None),
        ),
        (
            ("DELETE", "/api/v1/servers/{server_id}/oauth"),
            (server.clone(), None),
        ),
        (
            ("POST", "/api/v1/servers/{server_id}/oauth/authorize"),
            (server.clone(), None),
        ),
        (
            ("DELETE", "/api/v1/servers/{server_id}/oauth/connection"),
            (server.clone(), None),
        ),
        (("DELETE", "/api/v1/servers/{server_id}"), (server, None)),
        (
            ("DELETE", "/api/v1/tool-rules/{rule_id}"),
            (fixture.rule_id.clone(), None),
        ),
        // Organization A's MCP endpoint, aimed at with B's token: an unknown organization.
        (
            ("POST", "/o/{org}/mcp"),
            (
                "acme".to_owned(),
                Some(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#),
            ),
        ),
        (("GET", "/o/{org}/mcp"), ("acme".to_owned(), None)),
        (("DELETE", "/o/{org}/mcp"), ("acme".to_owned(), None)),
    ]
    .into_iter()
    .collect();
    rows.get(&(method.as_str(), path)).cloned()
}

#[tokio::test]
async fn s8_cross_tenant_matrix() {
    let fixture = fixture().await;
    let mut checked = 0;
    for (method, path, _) in documented_routes() {
        if !path.contains('{') {
            continue;
        }
        let (id, body) = matrix_row(&fixture, &method, &path).unwrap_or_else(|| {
            panic!("{method} {path} takes an id but is missing from the cross-tenant matrix")
        });
        let concrete = with_ids(&path, |_| id.clone());
        // Organization B's owner aims at A's object: exactly like an id that does not exist.
        let answer = call(
            &fixture.app,
            method.clone(),
            &concrete,
            Some(&fixture.bob),
            body,
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{method} {concrete}: {}",
            answer.text
        );
        let nonexistent = with_ids(&path, |_| "00000000-0000-0000-0000-000000000000".to_owned());
        let baseline = call(
            &fixture.app,
            method.clone(),
            &nonexistent,
            Some(&fixture.bob),
            body,
        )
        .await;
        let what =
            |text: &str| serde_json::from_str::<Value>(text).unwrap()["error"]["code"].clone();
        assert_eq!(
            (baseline.status, what(&baseline.text)),
            (answer.status, what(&answer.text)),
            "{method} {path}"
        );
        checked += 1;
    }
    assert_eq!(checked, 27);

    // B's lists never show A's people, ids, tokens, servers or rules.
    let a_markers = [
        fixture.carol_id.to_string(),
        fixture.alice_token_id.clone(),
        fixture.server_id.clone(),
        fixture.rule_id.clone(),
        "acme".to_owned(),
        "server-files".to_owned(),
        "files__delete_all".to_owned(),
    ];
    for (method, path, secured) in documented_routes() {
        if method != Method::GET || path.contains('{') || !secured {
            continue;
        }
        let answer = call(&fixture.app, Method::GET, &path, Some(&fixture.bob), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        for marker in &a_markers {
            assert!(
                !answer.text.contains(marker.as_str()),
                "{path} shows organization A's {marker}"
            );
        }
    }
    // And A's objects are untouched by B's attempts.
    let carol = call(
        &fixture.app,
        Method::GET,
        &format!("/api/v1/members/{}", fixture.carol_id),
        Some(&fixture.alice),
        None,
    )
    .await;
    assert_eq!(carol.json()["role"], "member");
    let server = call(
        &fixture.app,
        Method::GET,
        &format!("/api/v1/servers/{}", fixture.server_id),
        Some(&fixture.alice),
        None,
    )
    .await;
    assert_eq!(
        (
            server.json()["enabled"].clone(),
            server.json()["revision"].clone()
        ),
        (json!(true), json!(2))
    );
    let rules = call(
        &fixture.app,
        Method::GET,
        "/api/v1/tool-rules",
        Some(&fixture.alice),
        None,
    )
    .await;
    assert!(rules.text.contains(&fixture.rule_id));
    assert_eq!(
        fixture.changes.take(),
        [],
        "refused attempts report nothing"
    );
    assert_eq!(
        call(
            &fixture.app,
            Method::GET,
            "/api/v1/organization",
            Some(&fixture.alice),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_secured_route_demands_a_valid_token() {
    let fixture = fixture().await;
    let expired = {
        let scope = fixture.store.operator_scope("acme").await.unwrap();
        let alice = fixture.store.list_members(&scope).await.unwrap()[0]
            .user_id
            .clone();
        let token = auth::pat::generate();
        fixture
            .store
            .create_token(
                &scope,
                &alice,
                "expired",
                Some(store::unix_now() - 5),
                &token.digest,
            )
            .await
            .unwrap();
        token.secret.expose_secret().to_owned()
    };
    let revoked = {
        let created = call(
            &fixture.app,
            Method::POST,
            "/api/v1/tokens",
            Some(&fixture.alice),
            Some(r#"{"name":"soon revoked"}"#),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED);
        let id = created.json()["metadata"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let answer = call(
            &fixture.app,
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&fixture.alice),
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        created.json()["token"].as_str().unwrap().to_owned()
    };
    let cases: [(Option<&str>, &str); 5] = [
        (None, "Bearer realm=\"mcp-hero\""),
        (
            Some("not-a-token"),
            "error=\"invalid_token\", error_description=\"the token is not an MCP Hero personal access token\"",
        ),
        (
            Some("mcph_pat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            "error_description=\"the token is not valid\"",
        ),
        (
            Some(&expired),
            "error_description=\"the token has expired\"",
        ),
        (
            Some(&revoked),
            "error_description=\"the token was revoked\"",
        ),
    ];
    for (method, path, secured) in documented_routes() {
        if !secured {
            continue;
        }
        let path = with_ids(&path, |_| "x".to_owned());
        for (token, challenge) in &cases {
            let answer = call(&fixture.app, method.clone(), &path, *token, Some("{}")).await;
            // log-check: allow(the refused test tokens of this table, shown to say which case failed)
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            let header = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            // log-check: allow(a WWW-Authenticate challenge names no credential)
            assert!(header.contains(challenge), "{method} {path}: {header}");
            assert_eq!(answer.json()["error"]["code"], "unauthenticated");
        }
    }
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let alice = Some(fixture.alice.as_str());
    let check = |answer: Answer, status: StatusCode, message: &str| {
        assert_eq!(answer.status, status, "{}", answer.text);
        let got = answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(got.contains(message), "expected {message:?} in {got:?}");
    };
    let post_member =
        |body: &'static str| call(app, Method::POST, "/api/v1/members", alice, Some(body));
    check(
        post_member("{not json").await,
        StatusCode::BAD_REQUEST,
        "invalid JSON body",
    );
    check(
        post_member(r#"{"email":"d@acme.example","role":"member","admin":true}"#).await,
        StatusCode::BAD_REQUEST,
        "unknown field `admin`",
    );
    check(
        post_member(r#"{"email":"d@acme.example"}"#).await,
        StatusCode::BAD_REQUEST,
        "missing field `role`",
    );
    check(
        post_member(r#"{"email":"d@acme.example","role":"root"}"#).await,
        StatusCode::BAD_REQUEST,
        "role: unknown variant `root`",
    );
    check(
        post_member(r#"{"email":"nope","role":"member"}"#).await,
        StatusCode::BAD_REQUEST,
        "invalid email",
    );
    check(
        post_member(r#"{"email":"carol@acme.example","role":"member"}"#).await,
        StatusCode::CONFLICT,
        "already a member",
    );
    let huge = format!(
        r#"{{"email":"{}@acme.example","role":"member"}}"#,
        "a".repeat(MAX_BODY)
    );
    check(
        call(app, Method::POST, "/api/v1/members", alice, Some(&huge)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than the limit",
    );
    let no_type = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/members")
        .header(header::AUTHORIZATION, format!("Bearer {}", fixture.alice))
        .body(Body::from(r#"{"email":"d@acme.example","role":"member"}"#))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(no_type).await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    check(
        call(
            app,
            Method::POST,
            "/api/v1/tokens",
            alice,
            Some(r#"{"name":"x","expires_in_days":0}"#),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "expires_in_days",
    );
    check(
        call(
            app,
            Method::POST,
            "/api/v1/tokens",
            alice,
            Some(r#"{"name":"x","expires_in_days":-1}"#),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "expires_in_days",
    );
    check(
        call(
            app,
            Method::POST,
            "/api/v1/tokens",
            alice,
            Some(r#"{"name":""}"#),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid name",
    );
    check(
        call(app, Method::GET, "/api/v1/members/unknown", alice, None).await,
        StatusCode::NOT_FOUND,
        "member not found",
    );
    check(
        call(app, Method::DELETE, "/api/v1/tokens/unknown", alice, None).await,
        StatusCode::NOT_FOUND,
        "token not found",
    );
    check(
        call(app, Method::GET, "/api/v1/nope", alice, None).await,
        StatusCode::NOT_FOUND,
        "route not found",
    );

    // Nothing was half-stored: still exactly alice and carol, and only the fixture's tokens.
    let members = call(app, Method::GET, "/api/v1/members", alice, None)
        .await
        .json();
    assert_eq!(members.as_array().unwrap().len(), 2);
    let tokens = call(app, Method::GET, "/api/v1/tokens", alice, None)
        .await
        .json();
    assert_eq!(tokens.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn roles_decide_who_manages_members() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let carol = Some(fixture.carol_token.as_str());
    let alice = Some(fixture.alice.as_str());
    // A member may read but not manage, and sees only their own tokens.
    assert_eq!(
        call(app, Method::GET, "/api/v1/members", carol, None)
            .await
            .status,
        StatusCode::OK
    );
    let denied = call(
        app,
        Method::POST,
        "/api/v1/members",
        carol,
        Some(r#"{"email":"d@acme.example","role":"viewer"}"#),
    )
    .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        denied.json()["error"]["message"],
        "the member role may not manage members"
    );
    assert_eq!(
        call(app, Method::GET, "/api/v1/tokens", carol, None)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let alice_token = format!("/api/v1/tokens/{}", fixture.alice_token_id);
    assert_eq!(
        call(app, Method::DELETE, &alice_token, carol, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The owner promotes carol to admin; an admin cannot make owners; the last owner stays.
    let carol_path = format!("/api/v1/members/{}", fixture.carol_id);
    let promoted = call(
        app,
        Method::PATCH,
        &carol_path,
        alice,
        Some(r#"{"role":"admin"}"#),
    )
    .await;
    assert_eq!(
        (promoted.status, promoted.json()["role"].clone()),
        (StatusCode::OK, json!("admin"))
    );
    let grab = call(
        app,
        Method::PATCH,
        &carol_path,
        carol,
        Some(r#"{"role":"owner"}"#),
    )
    .await;
    assert_eq!(grab.status, StatusCode::FORBIDDEN);
    let members = call(app, Method::GET, "/api/v1/members", alice, None)
        .await
        .json();
    let alice_id = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "owner")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let alone = call(
        app,
        Method::PATCH,
        &format!("/api/v1/members/{alice_id}"),
        alice,
        Some(r#"{"role":"member"}"#),
    )
    .await;
    assert_eq!(alone.status, StatusCode::CONFLICT);
    assert_eq!(
        alone.json()["error"]["message"],
        "the organization must keep at least one owner"
    );

    // Removing carol ends her token at once.
    assert_eq!(
        call(app, Method::DELETE, &carol_path, alice, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(app, Method::GET, "/api/v1/members", carol, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn s15_no_answer_contains_a_secret() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let created = call(
        app,
        Method::POST,
        "/api/v1/tokens",
        Some(&fixture.alice),
        Some(r#"{"name":"shown once"}"#),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let new_token = created.json()["token"].as_str().unwrap().to_owned();
    assert!(new_token.starts_with("mcph_pat_"));

    let secrets = [
        fixture.alice.as_str(),
        fixture.bob.as_str(),
        fixture.carol_token.as_str(),
        new_token.as_str(),
        fixture.canary.as_str(),
        ROOT_SECRET,
    ];
    let bodies = [
        None,
        Some("{}"),
        Some(r#"{"role":"viewer","email":"e@acme.example","name":"n"}"#),
    ];
    let mut answers = 0;
    for token in [
        Some(fixture.alice.as_str()),
        Some(fixture.bob.as_str()),
        None,
        Some("mcph_pat_bogus"),
    ] {
        for (method, path, _) in documented_routes() {
            if method == Method::DELETE {
                continue; // Deleting would remove the very things whose absence is checked.
            }
            if path.ends_with("/logs/stream") {
                // A live tail never ends on its own; it sends the same line views as `/logs`,
                // checked here, and is tested in tests/server_logs.rs.
                continue;
            }
            let path = with_ids(&path, |param| match param {
                "user_id" => fixture.carol_id.to_string(),
                "token_id" => fixture.alice_token_id.clone(),
                "server_id" => fixture.server_id.clone(),
                "rule_id" => fixture.rule_id.clone(),
                "org" => "acme".to_owned(),
                "name" => "CANARY".to_owned(),
                other => panic!("no id for {{{other}}}: add one here"),
            });
            for body in bodies {
                let answer = call(app, method.clone(), &path, token, body).await;
                let headers = format!("{:?}", answer.headers);
                for secret in secrets {
                    assert!(
                        !answer.text.contains(secret),
                        "{method} {path} answered with a secret: {}",
                        answer.text
                    );
                    assert!(
                        !headers.contains(secret),
                        "{method} {path} put a secret in a header"
                    );
                }
                answers += 1;
            }
        }
    }
    assert!(answers > 100);
}

#[tokio::test]
async fn metrics_count_requests_and_token_outcomes() {
    let fixture = fixture().await;
    let app = &fixture.app;
    call(
        app,
        Method::GET,
        "/api/v1/organization",
        Some(&fixture.alice),
        None,
    )
    .await;
    call(
        app,
        Method::GET,
        "/api/v1/organization",
        Some("mcph_pat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        None,
    )
    .await;
    call(app, Method::GET, "/api/v1/organization", None, None).await;
    let metrics = call(app, Method::GET, "/metrics", None, None).await;
    assert!(
        metrics.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    for line in [
        r#"mcp_hero_http_requests_total{method="GET",route="/api/v1/organization",status="200"} 1"#,
        r#"mcp_hero_http_requests_total{method="GET",route="/api/v1/organization",status="401"} 2"#,
        r#"mcp_hero_api_token_authentications_total{outcome="ok"} 1"#,
        r#"mcp_hero_api_token_authentications_total{outcome="unknown"} 1"#,
        r#"mcp_hero_api_token_authentications_total{outcome="missing"} 1"#,
        r#"mcp_hero_build_info{version=""#,
    ] {
        assert!(
            metrics.text.contains(line),
            "missing {line} in:\n{}",
            metrics.text
        );
    }
}

/// Adds a member to organization A with a role and returns a token for them.
async fn member_with_token(fixture: &Fixture, email: &str, role: Role) -> (String, UserId) {
    let owner = authorize::<ManageMembers>(Role::Owner).unwrap();
    let member = fixture
        .store
        .add_member(&fixture.scope_a, &owner, email, role)
        .await
        .unwrap();
    let token = auth::pat::generate();
    fixture
        .store
        .create_token(&fixture.scope_a, &member.user_id, "t", None, &token.digest)
        .await
        .unwrap();
    (token.secret.expose_secret().to_owned(), member.user_id)
}

#[tokio::test]
async fn s7_roles_decide_who_manages_servers_and_tool_rules() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let (viewer, _) = member_with_token(&fixture, "dave@acme.example", Role::Viewer).await;
    let (admin, _) = member_with_token(&fixture, "erin@acme.example", Role::Admin).await;
    let server = format!("/api/v1/servers/{}", fixture.server_id);
    let rule = format!("/api/v1/tool-rules/{}", fixture.rule_id);
    let new_server = r#"{"name":"docs","transport":{"type":"streamable_http","url":"https://docs.example/mcp"}}"#;
    let new_rule = r#"{"subject":{"role":"viewer"},"effect":"allow","pattern":"docs__*"}"#;
    let writes = [
        (Method::POST, "/api/v1/servers".to_owned(), Some(new_server)),
        (Method::PATCH, server.clone(), Some(r#"{"enabled":false}"#)),
        (Method::POST, format!("{server}/image/reinstall"), None),
        (Method::DELETE, server.clone(), None),
        (
            Method::POST,
            "/api/v1/tool-rules".to_owned(),
            Some(new_rule),
        ),
        (Method::DELETE, rule.clone(), None),
    ];
    let image = format!("{server}/image");
    let reads = ["/api/v1/servers", &server, &image, "/api/v1/tool-rules"];
    for (token, role) in [(&viewer, "viewer"), (&fixture.carol_token, "member")] {
        for path in reads {
            let answer = call(app, Method::GET, path, Some(token), None).await;
            assert_eq!(answer.status, StatusCode::OK, "{role} GET {path}");
        }
        for (method, path, body) in &writes {
            let answer = call(app, method.clone(), path, Some(token), *body).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{role} {method} {path}"
            );
            assert_eq!(
                answer.json()["error"]["message"],
                format!("the {role} role may not manage servers and tool access rules")
            );
        }
    }
    assert_eq!(fixture.changes.take(), [], "refused writes report nothing");
    // Owners and admins may: the admin does every write, in an order where each one succeeds.
    let expected = [
        StatusCode::CREATED,
        StatusCode::OK,
        StatusCode::ACCEPTED,
        StatusCode::NO_CONTENT,
        StatusCode::CREATED,
        StatusCode::NO_CONTENT,
    ];
    for ((method, path, body), status) in writes.iter().zip(expected) {
        let answer = call(app, method.clone(), path, Some(&admin), *body).await;
        assert_eq!(
            answer.status, status,
            "admin {method} {path}: {}",
            answer.text
        );
    }
    assert_eq!(fixture.changes.take().len(), 6);
    let owner_creates = call(
        app,
        Method::POST,
        "/api/v1/servers",
        Some(&fixture.alice),
        Some(r#"{"name":"more","transport":{"type":"stdio","command":"uvx"}}"#),
    )
    .await;
    assert_eq!(
        owner_creates.status,
        StatusCode::CREATED,
        "{}",
        owner_creates.text
    );
}

#[tokio::test]
async fn server_and_rule_input_errors_name_the_field_and_change_nothing() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let alice = Some(fixture.alice.as_str());
    let check = |answer: Answer, status: StatusCode, message: &str| {
        assert_eq!(answer.status, status, "{}", answer.text);
        let got = answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(got.contains(message), "expected {message:?} in {got:?}");
    };
    let stdio = |name: &str, transport: &str| {
        format!(r#"{{"name":"{name}","transport":{transport},"enabled":false}}"#)
    };
    let ok = r#"{"type":"stdio","command":"npx"}"#;
    let long_arg = format!(
        r#"{{"type":"stdio","command":"npx","args":["{}"]}}"#,
        "a".repeat(4097)
    );
    let many_args = format!(
        r#"{{"type":"stdio","command":"npx","args":[{}]}}"#,
        vec![r#""a""#; 65].join(",")
    );
    let cases: Vec<(String, StatusCode, &str)> =
        vec![
        (stdio("Bad Name", ok), StatusCode::BAD_REQUEST, "invalid name"),
        (stdio("a__b", ok), StatusCode::BAD_REQUEST, "invalid name"),
        (
            stdio("x", r#"{"type":"stdio","command":""}"#),
            StatusCode::BAD_REQUEST,
            "invalid command",
        ),
        (
            stdio("x", r#"{"type":"stdio","command":"np\u0000x"}"#),
            StatusCode::BAD_REQUEST,
            "invalid command: must not contain a NUL byte",
        ),
        (stdio("x", &long_arg), StatusCode::BAD_REQUEST, "invalid args"),
        (stdio("x", &many_args), StatusCode::BAD_REQUEST, "invalid args"),
        (
            stdio("x", r#"{"type":"stdio","command":"npx","working_dir":"rel"}"#),
            StatusCode::BAD_REQUEST,
            "invalid working_dir",
        ),
        (
            stdio("x", r#"{"type":"streamable_http","url":"ftp://example.com"}"#),
            StatusCode::BAD_REQUEST,
            "invalid url",
        ),
        (
            stdio("x", r#"{"type":"streamable_http","url":"https://u:p@example.com"}"#),
            StatusCode::BAD_REQUEST,
            "invalid url",
        ),
        (
            stdio("x", r#"{"type":"stdio","command":"npx","shell":true}"#),
            StatusCode::BAD_REQUEST,
            "unknown field `shell`",
        ),
        (
            stdio("x", r#"{"type":"sse","url":"https://example.com"}"#),
            StatusCode::BAD_REQUEST,
            "unknown variant `sse`",
        ),
        (
            stdio("x", r#"{"type":"streamable_http"}"#),
            StatusCode::BAD_REQUEST,
            "missing field `url`",
        ),
        (
            r#"{"name":"x","transport":{"type":"stdio","command":"npx"},"exposure":"unprefixed"}"#
                .to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid exposure",
        ),
        (stdio("files", ok), StatusCode::CONFLICT, "already exists"),
    ];
    for (body, status, message) in &cases {
        let answer = call(app, Method::POST, "/api/v1/servers", alice, Some(body)).await;
        check(answer, *status, message);
    }
    let server = format!("/api/v1/servers/{}", fixture.server_id);
    for (body, status, message) in [
        (r#"{"name":"-x"}"#, StatusCode::BAD_REQUEST, "invalid name"),
        (
            r#"{"exposure":"sideways"}"#,
            StatusCode::BAD_REQUEST,
            "unknown variant `sideways`",
        ),
        (
            r#"{"revision":7}"#,
            StatusCode::BAD_REQUEST,
            "unknown field `revision`",
        ),
    ] {
        check(
            call(app, Method::PATCH, &server, alice, Some(body)).await,
            status,
            message,
        );
    }
    check(
        call(app, Method::GET, "/api/v1/servers/unknown", alice, None).await,
        StatusCode::NOT_FOUND,
        "server not found",
    );
    let carol = fixture.carol_id.to_string();
    let rule = |subject: &str, effect: &str, pattern: &str| {
        format!(r#"{{"subject":{subject},"effect":"{effect}","pattern":"{pattern}"}}"#)
    };
    for (body, status, message) in [
        (
            rule(r#"{"role":"member"}"#, "allow", ""),
            StatusCode::BAD_REQUEST,
            "invalid pattern",
        ),
        (
            rule(r#"{"role":"member"}"#, "allow", "files__{x}"),
            StatusCode::BAD_REQUEST,
            "invalid pattern",
        ),
        (
            rule(r#"{"role":"root"}"#, "allow", "*"),
            StatusCode::BAD_REQUEST,
            "unknown variant `root`",
        ),
        (
            rule(r#"{"role":"member"}"#, "maybe", "*"),
            StatusCode::BAD_REQUEST,
            "unknown variant `maybe`",
        ),
        (
            rule(r#"{"member":"nobody"}"#, "allow", "*"),
            StatusCode::NOT_FOUND,
            "member not found",
        ),
        (
            rule(r#"{"role":"member"}"#, "allow", "*"),
            StatusCode::CONFLICT,
            "already has the rule",
        ),
        (
            rule(
                &format!(r#"{{"member":"{carol}"}}"#),
                "deny",
                "files__delete*",
            ),
            StatusCode::CONFLICT,
            "already has the rule",
        ),
    ] {
        check(
            call(app, Method::POST, "/api/v1/tool-rules", alice, Some(&body)).await,
            status,
            message,
        );
    }
    check(
        call(
            app,
            Method::DELETE,
            "/api/v1/tool-rules/unknown",
            alice,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "tool rule not found",
    );

    // Nothing was stored, nothing changed, nothing reported.
    let servers = call(app, Method::GET, "/api/v1/servers", alice, None)
        .await
        .json();
    assert_eq!(servers.as_array().unwrap().len(), 1);
    // 2: the fixture gave the server its CANARY variable after creating it.
    assert_eq!(servers[0]["revision"], 2);
    let rules = call(app, Method::GET, "/api/v1/tool-rules", alice, None)
        .await
        .json();
    assert_eq!(rules.as_array().unwrap().len(), 4);
    assert_eq!(fixture.changes.take(), []);
}

#[tokio::test]
async fn servers_and_rules_round_trip_and_every_committed_change_is_reported() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let alice = Some(fixture.alice.as_str());
    let org = fixture.org_a.clone();
    let scope = fixture.store.operator_scope("acme").await.unwrap();

    let created = call(
        app,
        Method::POST,
        "/api/v1/servers",
        alice,
        Some(r#"{"name":"docs","transport":{"type":"streamable_http","url":"http://10.0.0.7:9000/mcp"},"internal":true,"enabled":false}"#),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let docs = created.json();
    let docs_id = docs["id"].as_str().unwrap().to_owned();
    assert_eq!(
        docs,
        json!({
            "id": docs_id,
            "name": "docs",
            "transport": {"type": "streamable_http", "url": "http://10.0.0.7:9000/mcp"},
            "exposure": "prefixed",
            "enabled": false,
            "internal": true,
            "package": null,
            "image": null,
            "created_at": docs["created_at"],
            "updated_at": docs["updated_at"],
            "revision": 1,
        })
    );
    let files = call(
        app,
        Method::GET,
        &format!("/api/v1/servers/{}", fixture.server_id),
        alice,
        None,
    )
    .await
    .json();
    assert_eq!(
        files["transport"],
        json!({"type": "stdio", "command": "npx", "args": ["-y", "server-files"], "working_dir": null})
    );
    let docs_path = format!("/api/v1/servers/{docs_id}");
    let patched = call(
        app,
        Method::PATCH,
        &docs_path,
        alice,
        Some(r#"{"transport":{"type":"stdio","command":"uvx","args":["docs"],"working_dir":"/srv"}}"#),
    )
    .await
    .json();
    assert_eq!(
        (
            patched["revision"].clone(),
            patched["transport"].clone(),
            patched["internal"].clone()
        ),
        (
            json!(2),
            json!({"type": "stdio", "command": "uvx", "args": ["docs"], "working_dir": "/srv"}),
            json!(true)
        )
    );
    assert_eq!(
        call(app, Method::DELETE, &docs_path, alice, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    let carol = fixture.carol_id.to_string();
    let rule = call(
        app,
        Method::POST,
        "/api/v1/tool-rules",
        alice,
        Some(&format!(
            r#"{{"subject":{{"member":"{carol}"}},"effect":"allow","pattern":"files__read"}}"#
        )),
    )
    .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.text);
    let rule = rule.json();
    assert_eq!(
        (
            rule["subject"].clone(),
            rule["effect"].clone(),
            rule["pattern"].clone()
        ),
        (
            json!({"member": carol}),
            json!("allow"),
            json!("files__read")
        )
    );
    let listed = call(app, Method::GET, "/api/v1/tool-rules", alice, None)
        .await
        .json();
    let role_subjects: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pattern"] == "*")
        .map(|r| (r["subject"].clone(), r["effect"].clone()))
        .collect();
    assert_eq!(role_subjects.len(), 3, "the seeded allow * rules: {listed}");
    assert!(role_subjects.contains(&(json!({"role": "member"}), json!("allow"))));
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(
            app,
            Method::DELETE,
            &format!("/api/v1/tool-rules/{rule_id}"),
            alice,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );

    // The member and token handlers report too.
    let carol_path = format!("/api/v1/members/{carol}");
    call(
        app,
        Method::PATCH,
        &carol_path,
        alice,
        Some(r#"{"role":"viewer"}"#),
    )
    .await;
    call(
        app,
        Method::DELETE,
        &format!("/api/v1/tokens/{}", fixture.alice_token_id),
        alice,
        None,
    )
    .await;
    let (_, dave) = member_with_token(&fixture, "dave@acme.example", Role::Member).await;
    // Alice revoked her fixture token above; she continues with a fresh one.
    let fresh = auth::pat::generate();
    let alice_id = fixture.store.list_members(&fixture.scope_a).await.unwrap()[0]
        .user_id
        .clone();
    fixture
        .store
        .create_token(&fixture.scope_a, &alice_id, "again", None, &fresh.digest)
        .await
        .unwrap();
    let alice = Some(fresh.secret.expose_secret());
    assert_eq!(
        call(
            app,
            Method::DELETE,
            &format!("/api/v1/members/{dave}"),
            alice,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );

    let docs_id = ServerId::from_untrusted(&docs_id);
    assert_eq!(
        fixture.changes.take(),
        [
            Change::Server {
                scope: scope.clone(),
                server: docs_id.clone()
            },
            Change::Server {
                scope: scope.clone(),
                server: docs_id.clone()
            },
            Change::Server {
                scope: scope.clone(),
                server: docs_id
            },
            Change::ToolRules {
                scope: scope.clone()
            },
            Change::ToolRules {
                scope: scope.clone()
            },
            Change::Member {
                org: org.clone(),
                user: fixture.carol_id.clone()
            },
            Change::TokenRevoked {
                org: org.clone(),
                token: TokenId::from_untrusted(&fixture.alice_token_id)
            },
            Change::Member { org, user: dave },
        ]
    );
}

/// Putting a remote server behind OAuth, changing it and taking it off each report the server,
/// so live sessions re-plan it with or without bearer tokens; a refused change reports nothing.
#[tokio::test]
async fn oauth_settings_changes_are_reported_to_the_data_plane() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let alice = Some(fixture.alice.as_str());
    let scope = fixture.store.operator_scope("acme").await.unwrap();
    let created = call(
        app,
        Method::POST,
        "/api/v1/servers",
        alice,
        Some(r#"{"name":"crm","transport":{"type":"streamable_http","url":"https://crm.example.com/mcp"}}"#),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let server = ServerId::from_untrusted(created.json()["id"].as_str().unwrap());
    let oauth = format!("/api/v1/servers/{server}/oauth");
    fixture.changes.take();

    for body in [
        r#"{"mode":"member"}"#,
        r#"{"mode":"organization","scopes":["crm.read"]}"#,
    ] {
        let put = call(app, Method::PUT, &oauth, alice, Some(body)).await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    }
    let refused = call(
        app,
        Method::PUT,
        &oauth,
        alice,
        Some(r#"{"mode":"everyone"}"#),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(
        call(app, Method::DELETE, &oauth, alice, None).await.status,
        StatusCode::NO_CONTENT
    );
    let reported = Change::Server {
        scope: scope.clone(),
        server: server.clone(),
    };
    assert_eq!(
        fixture.changes.take(),
        [reported.clone(), reported.clone(), reported]
    );
}

/// Packages are checked strictly, the field named; a server's image shows in the server and at
/// `/image`; without an install runtime the install fails saying why; no package, no image.
#[tokio::test]
async fn packages_are_checked_and_their_image_is_shown() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let alice = Some(fixture.alice.as_str());
    let create = |body: String| {
        call(
            app,
            Method::POST,
            "/api/v1/servers",
            alice,
            Some(Box::leak(body.into_boxed_str())),
        )
    };
    let stdio = |package: &str| {
        format!(
            r#"{{"name":"pkg","transport":{{"type":"stdio","command":"mcp-server-time"}},"package":{package}}}"#
        )
    };
    for (package, message) in [
        (
            r#"{"type":"npm","spec":"left-pad"}"#,
            "invalid package: an npm package is `name@1.2.3`",
        ),
        (
            r#"{"type":"npm","spec":"left-pad@latest"}"#,
            "\"latest\" is not an exact version",
        ),
        (
            r#"{"type":"pypi","spec":"mcp>=1.0"}"#,
            "invalid package: a PyPI package is `name==1.2.3`",
        ),
        (
            r#"{"type":"binary","spec":"/usr/bin/env"}"#,
            "invalid package: binary packages need images.binaries_dir",
        ),
        (
            r#"{"type":"binary","spec":"relative"}"#,
            "invalid package: a binary is the absolute path",
        ),
        (
            r#"{"type":"cargo","spec":"x@1.0.0"}"#,
            "unknown variant `cargo`",
        ),
        (
            r#"{"type":"npm","spec":"x@1.0.0","integrity":"sha"}"#,
            "unknown field `integrity`",
        ),
    ] {
        let answer = create(stdio(package)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{package}: {}",
            answer.text
        );
        let got = answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            got.contains(message),
            "{package}: expected {message:?} in {got:?}"
        );
    }
    let remote = create(
        r#"{"name":"docs","transport":{"type":"streamable_http","url":"https://docs.example/mcp"},"package":{"type":"npm","spec":"x@1.0.0"}}"#.to_owned(),
    )
    .await;
    assert_eq!(remote.status, StatusCode::BAD_REQUEST, "{}", remote.text);
    assert!(
        remote.text.contains("invalid package: only a stdio server"),
        "{}",
        remote.text
    );
    assert_eq!(
        fixture
            .store
            .list_servers(&fixture.scope_a)
            .await
            .unwrap()
            .len(),
        1,
        "nothing was created"
    );

    let created = create(stdio(
        r#"{"type":"pypi","spec":"mcp-server-time==2026.10.19"}"#,
    ))
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let server = created.json();
    assert_eq!(
        server["package"],
        json!({"type": "pypi", "spec": "mcp-server-time==2026.10.19"})
    );
    assert_eq!(server["image"]["generation"], 1);
    let id = server["id"].as_str().unwrap().to_owned();
    let image_path = format!("/api/v1/servers/{id}/image");
    // This gateway has no install runtime: the install fails, and says so.
    let mut image = Value::Null;
    for _ in 0..100 {
        image = call(
            app,
            Method::GET,
            &image_path,
            Some(&fixture.carol_token),
            None,
        )
        .await
        .json();
        if image["state"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(image["state"], "failed", "{image}");
    assert!(
        image["error"]
            .as_str()
            .unwrap()
            .starts_with("installs need the sandbox runtime"),
        "{image}"
    );
    assert_eq!(image["package"]["spec"], "mcp-server-time==2026.10.19");

    let reinstalled = call(
        app,
        Method::POST,
        &format!("{image_path}/reinstall"),
        alice,
        None,
    )
    .await;
    assert_eq!(
        reinstalled.status,
        StatusCode::ACCEPTED,
        "{}",
        reinstalled.text
    );
    assert_eq!(reinstalled.json()["generation"], 2);
    assert_eq!(reinstalled.json()["state"], "pending");

    // Removing the package removes the image.
    let bare = call(
        app,
        Method::PATCH,
        &format!("/api/v1/servers/{id}"),
        alice,
        Some(r#"{"package":null}"#),
    )
    .await;
    assert_eq!(bare.status, StatusCode::OK, "{}", bare.text);
    assert_eq!(
        (bare.json()["package"].clone(), bare.json()["image"].clone()),
        (Value::Null, Value::Null)
    );
    let gone = call(app, Method::GET, &image_path, alice, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let nothing = call(
        app,
        Method::POST,
        &format!("{image_path}/reinstall"),
        alice,
        None,
    )
    .await;
    assert_eq!(nothing.status, StatusCode::BAD_REQUEST);
    assert!(nothing.text.contains("has no package"), "{}", nothing.text);
    // A PATCH without `package` keeps what is there.
    let renamed = call(
        app,
        Method::PATCH,
        &format!("/api/v1/servers/{}", fixture.server_id),
        alice,
        Some(r#"{"name":"files2"}"#),
    )
    .await;
    assert_eq!(
        renamed.json()["package"]["spec"],
        "server-files@1.0.0",
        "{}",
        renamed.text
    );
}
