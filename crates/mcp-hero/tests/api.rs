//! The HTTP API in-process: cross-tenant matrix (S8), authentication, bad input, and no secret in
//! any answer (S15). Routes are walked from the OpenAPI document, so a new route joins every check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

use std::collections::BTreeMap;

use auth::{ManageMembers, Role, authorize};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use mcp_hero::http::{AppState, openapi, router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use store::{DatabaseLocation, Store, UserId};
use tower::ServiceExt as _;

const ROOT_SECRET: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const MAX_BODY: usize = 64 * 1024;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    app: Router,
    /// Organization A: alice (owner), carol (member); B: bob (owner).
    alice: String,
    carol_token: String,
    bob: String,
    carol_id: UserId,
    alice_token_id: String,
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
    store
        .put_password_variable(&scope_a, "CANARY", &SecretString::from(canary.clone()))
        .await
        .unwrap();
    let app = router(AppState::new(store.clone()), MAX_BODY);
    Fixture {
        _dir: dir,
        store,
        app,
        alice,
        carol_token,
        bob,
        carol_id: carol.user_id,
        alice_token_id,
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
        "GET /api/v1/tokens",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{token_id}",
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
    let rows: BTreeMap<(&str, &str), (String, Option<&'static str>)> = [
        (("GET", "/api/v1/members/{user_id}"), (carol.clone(), None)),
        (
            ("PATCH", "/api/v1/members/{user_id}"),
            (carol.clone(), Some(r#"{"role":"viewer"}"#)),
        ),
        (("DELETE", "/api/v1/members/{user_id}"), (carol, None)),
        (("DELETE", "/api/v1/tokens/{token_id}"), (token, None)),
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
        let concrete = path.split('{').next().unwrap().to_owned() + &id;
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
        let nonexistent =
            path.split('{').next().unwrap().to_owned() + "00000000-0000-0000-0000-000000000000";
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
    assert_eq!(checked, 4);

    // B's lists never show A's people, ids or tokens.
    let a_markers = [
        fixture.carol_id.to_string(),
        fixture.alice_token_id.clone(),
        "acme".to_owned(),
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
        let path = path.replace("{user_id}", "x").replace("{token_id}", "x");
        for (token, challenge) in &cases {
            let answer = call(&fixture.app, method.clone(), &path, *token, Some("{}")).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            let header = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
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
            let path = path
                .replace("{user_id}", fixture.carol_id.as_str())
                .replace("{token_id}", &fixture.alice_token_id);
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
