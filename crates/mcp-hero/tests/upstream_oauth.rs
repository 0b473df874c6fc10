//! Upstream OAuth against a local authorization server (npm `oauth2-mock-server`, driven by
//! `scripts/lib/oauth-upstream.mjs`, which also serves the protected MCP resource): first
//! authorization, refresh on expiry and after a 401, per-member isolation, revocation on member
//! removal, and the callback's failures, each storing nothing (S8, S9, S12, S15, S16, S20).
//!
//! Needs `MCP_HERO_NODE` and `MCP_HERO_OAUTH_MOCK_DIR` from `scripts/tools.sh`: without them the
//! tests say so and return, unless `CI=true`, where they fail.

#![allow(
    clippy::disallowed_methods,
    reason = "tests read the tokens they issued to compare them with what the gateway sent"
)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

mod support;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use store::{OrgScope, ServerId, UpstreamAccount};
use support::{Gateway, Member};
use tokio::io::AsyncBufReadExt as _;

/// The authorization server and protected resource, stopped when dropped.
struct Upstream {
    _child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
}

impl Upstream {
    async fn start() -> Option<Self> {
        let node = support::external_tool("MCP_HERO_NODE")?;
        let mock_dir = support::external_tool("MCP_HERO_OAUTH_MOCK_DIR")?;
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/lib/oauth-upstream.mjs");
        let mut child = tokio::process::Command::new(node)
            .arg(script)
            .arg(mock_dir)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .unwrap();
        let port = serde_json::from_str::<Value>(&line).unwrap()["port"]
            .as_u64()
            .unwrap();
        Some(Upstream {
            _child: child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        })
    }

    fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }

    async fn control(&self, path: &str, body: Value) {
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }

    async fn log(&self) -> Value {
        self.http
            .get(format!("{}/control/log", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Whose token this is, as the protected resource sees it; `None` when it answers 401.
    async fn subject(&self, token: &SecretString) -> Option<String> {
        let answer = self
            .http
            .post(self.resource())
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .unwrap();
        if answer.status() == reqwest::StatusCode::UNAUTHORIZED {
            return None;
        }
        assert!(answer.status().is_success());
        let body: Value = answer.json().await.unwrap();
        Some(body["sub"].as_str().unwrap().to_owned())
    }
}

/// A gateway with a remote server (marked internal: it is on loopback) behind the upstream.
async fn setup(upstream: &Upstream, mode: &str) -> (Gateway, OrgScope, ServerId) {
    let gateway = Gateway::start().await;
    let (status, server) = gateway
        .api(
            &gateway.alice,
            Method::POST,
            "/api/v1/servers",
            Some(json!({
                "name": "remote",
                "transport": {"type": "streamable_http", "url": upstream.resource()},
                "internal": true,
            })),
        )
        .await;
    assert_eq!(status, 201, "{server}");
    let id = server["id"].as_str().unwrap().to_owned();
    let (status, body) = gateway
        .api(
            &gateway.alice,
            Method::PUT,
            &format!("/api/v1/servers/{id}/oauth"),
            Some(json!({"mode": mode})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let scope = gateway.store.operator_scope("acme").await.unwrap();
    (gateway, scope, ServerId::from_untrusted(&id))
}

/// What the browser sees at the end of an authorization.
struct Callback {
    status: u16,
    page: String,
    url: String,
}

/// Asks the API for an authorize URL as `who`, follows it at the authorization server (which
/// approves at once), and returns where it redirects to, without following it.
async fn authorize(
    gateway: &Gateway,
    upstream: &Upstream,
    who: &Member,
    server: &ServerId,
) -> String {
    let (status, body) = gateway
        .api(
            who,
            Method::POST,
            &format!("/api/v1/servers/{server}/oauth/authorize"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let authorize_url = body["authorize_url"].as_str().unwrap();
    let redirect = upstream.http.get(authorize_url).send().await.unwrap();
    assert_eq!(redirect.status(), reqwest::StatusCode::FOUND);
    redirect
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

/// Opens a callback URL as the browser would.
async fn open(upstream: &Upstream, url: &str) -> Callback {
    let answer = upstream.http.get(url).send().await.unwrap();
    Callback {
        status: answer.status().as_u16(),
        page: answer.text().await.unwrap(),
        url: url.to_owned(),
    }
}

async fn connect(
    gateway: &Gateway,
    upstream: &Upstream,
    who: &Member,
    server: &ServerId,
) -> Callback {
    let url = authorize(gateway, upstream, who, server).await;
    assert!(
        url.starts_with(&format!("http://{}/oauth/upstream/callback?", gateway.addr)),
        "{url}"
    );
    open(upstream, &url).await
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Every byte of the data directory (the SQLite database, its WAL and shared memory).
fn database_bytes(gateway: &Gateway) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&gateway.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

/// S9, S12, S15, S20: a member connects their own account, the gateway refreshes it before it
/// expires and after a 401 (once for concurrent callers), no member ever gets another's token,
/// no token reaches an API answer or the database file, and removing a member removes and
/// revokes their connection.
/// S14 end to end: a session calls a remote server with the member's own access token, sent
/// only on requests to that server; when the server answers 401 (the token expired), the gateway
/// refreshes it and retries once; a member who never connected sees the server fail, told how
/// to connect.
#[tokio::test]
async fn sessions_call_oauth_servers_with_the_members_own_token() {
    let Some(upstream) = Upstream::start().await else {
        return;
    };
    let (gateway, _scope, server) = setup(&upstream, "member").await;
    upstream
        .control("/control", json!({"subject": "alice"}))
        .await;
    let done = connect(&gateway, &upstream, &gateway.alice, &server).await;
    assert_eq!(done.status, 200, "{}", done.page);

    let mut alice = gateway.client(&gateway.alice, "acme");
    alice.initialize(json!({})).await;
    let answer = alice.call("remote__whoami", json!({})).await;
    assert_eq!(answer["result"]["content"][0]["text"], "alice", "{answer}");

    // Every access token expires; the next call gets a 401, a refresh and one retry.
    let refreshes = |log: &Value| {
        log["token"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["grant_type"] == "refresh_token")
            .count()
    };
    let before = refreshes(&upstream.log().await);
    upstream.control("/control/expire", json!({})).await;
    let answer = alice.call("remote__whoami", json!({})).await;
    assert_eq!(answer["result"]["content"][0]["text"], "alice", "{answer}");
    assert_eq!(refreshes(&upstream.log().await), before + 1);

    // Mallory never connected her account: the server fails in her session, saying how.
    let mut mallory = gateway.client(&gateway.mallory, "acme");
    mallory.initialize(json!({})).await;
    let mut sessions = Value::Null;
    support::eventually("mallory's session gives up on the server", async || {
        let (_, answer) = gateway
            .api(&gateway.mallory, Method::GET, "/api/v1/sessions", None)
            .await;
        sessions = answer;
        sessions.to_string().contains("\"failed\"")
    })
    .await;
    assert!(
        sessions.to_string().contains("oauth/authorize"),
        "{sessions}"
    );
    alice.delete().await;
    mallory.delete().await;
}

#[tokio::test]
async fn members_connect_their_own_accounts_and_tokens_stay_fresh_and_apart() {
    let Some(upstream) = Upstream::start().await else {
        return;
    };
    let (gateway, scope, server) = setup(&upstream, "member").await;
    let oauth = &gateway.upstream_oauth;
    let alice = &gateway.alice;
    let mallory = &gateway.mallory;

    // Nobody connected yet: the error says how to connect.
    let error = oauth
        .access_token(&scope, &server, &alice.user_id)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!("POST /api/v1/servers/{server}/oauth/authorize")),
        "{error}"
    );

    // First authorization: discovery through the resource's 401, dynamic registration, PKCE
    // S256 and the resource indicator on both requests.
    upstream
        .control("/control", json!({"subject": "alice"}))
        .await;
    let done = connect(&gateway, &upstream, alice, &server).await;
    assert_eq!(done.status, 200, "{}", done.page);
    assert!(
        done.page.contains("You can close this tab"),
        "{}",
        done.page
    );
    let log = upstream.log().await;
    assert_eq!(log["registrations"], 1);
    assert_eq!(log["authorize"][0]["code_challenge_method"], "S256");
    assert_eq!(log["authorize"][0]["resource"], upstream.resource());
    assert_eq!(log["authorize"][0]["scope"], "mcp:tools");
    assert_eq!(log["token"][0]["grant_type"], "authorization_code");
    assert_eq!(log["token"][0]["resource"], upstream.resource());

    let alice_token = oauth
        .access_token(&scope, &server, &alice.user_id)
        .await
        .unwrap();
    assert_eq!(
        upstream.subject(&alice_token).await.as_deref(),
        Some("alice")
    );
    // A fresh token is used as it is: no refresh.
    let again = oauth
        .access_token(&scope, &server, &alice.user_id)
        .await
        .unwrap();
    assert_eq!(again.expose_secret(), alice_token.expose_secret());

    // Per-member isolation: Mallory never gets Alice's token, before or after connecting.
    assert!(
        oauth
            .access_token(&scope, &server, &mallory.user_id)
            .await
            .is_err()
    );
    upstream
        .control("/control", json!({"subject": "mallory"}))
        .await;
    assert_eq!(
        connect(&gateway, &upstream, mallory, &server).await.status,
        200
    );
    let mallory_token = oauth
        .access_token(&scope, &server, &mallory.user_id)
        .await
        .unwrap();
    assert_ne!(mallory_token.expose_secret(), alice_token.expose_secret());
    assert_eq!(
        upstream.subject(&mallory_token).await.as_deref(),
        Some("mallory")
    );
    assert_eq!(
        upstream.log().await["registrations"],
        1,
        "the client is reused"
    );

    // Refresh on 401: the resource stops accepting the token; two callers that both saw the
    // 401 get one new token from one refresh.
    upstream.control("/control/expire", json!({})).await;
    assert_eq!(upstream.subject(&alice_token).await, None);
    let refreshes_before = refresh_count(&upstream).await;
    let (first, second) = tokio::join!(
        oauth.refresh_after_unauthorized(&scope, &server, &alice.user_id, &alice_token),
        oauth.refresh_after_unauthorized(&scope, &server, &alice.user_id, &alice_token),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.expose_secret(), second.expose_secret());
    assert_ne!(first.expose_secret(), alice_token.expose_secret());
    assert_eq!(refresh_count(&upstream).await, refreshes_before + 1);
    assert_eq!(upstream.subject(&first).await.as_deref(), Some("alice"));
    let log = upstream.log().await;
    let last = log["token"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["grant_type"], "refresh_token");
    assert_eq!(last["resource"], upstream.resource());

    // Refresh on expiry: a token with less than a minute left is renewed before use.
    upstream.control("/control", json!({"expiresIn": 30})).await;
    upstream.control("/control/expire", json!({})).await;
    let short = oauth
        .refresh_after_unauthorized(&scope, &server, &alice.user_id, &first)
        .await
        .unwrap();
    upstream
        .control("/control", json!({"expiresIn": 3600}))
        .await;
    let renewed = oauth
        .access_token(&scope, &server, &alice.user_id)
        .await
        .unwrap();
    assert_ne!(renewed.expose_secret(), short.expose_secret());
    assert_eq!(upstream.subject(&renewed).await.as_deref(), Some("alice"));
    let later = oauth
        .access_token(&scope, &server, &alice.user_id)
        .await
        .unwrap();
    assert_eq!(later.expose_secret(), renewed.expose_secret());

    // S15: the API shows the connection, never a token.
    let (status, view) = gateway
        .api(
            alice,
            Method::GET,
            &format!("/api/v1/servers/{server}/oauth"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(view["connection"]["connected"], true);
    assert_eq!(view["mode"], "member");
    assert_eq!(view["issuer"], upstream.base);
    let tokens = [&alice_token, &mallory_token, &first, &short, &renewed];
    for token in tokens {
        assert!(!view.to_string().contains(token.expose_secret()));
    }
    // S9, S12: sealed at rest (the database, its WAL and shared memory files).
    let bytes = database_bytes(&gateway);
    for token in tokens {
        assert!(
            !contains(&bytes, token.expose_secret().as_bytes()),
            "a token is in the database file"
        );
    }

    // S20: removing Mallory removes her connection and revokes it at the authorization server.
    let revoked_before = upstream.log().await["revoked"].as_u64().unwrap();
    let (status, _) = gateway
        .api(
            alice,
            Method::DELETE,
            &format!("/api/v1/members/{}", mallory.user_id),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        upstream.log().await["revoked"].as_u64().unwrap(),
        revoked_before + 1
    );
    assert!(
        gateway
            .store
            .upstream_tokens(
                &scope,
                &server,
                &UpstreamAccount::Member(mallory.user_id.clone())
            )
            .await
            .unwrap()
            .is_none()
    );

    // Disconnecting forgets and revokes Alice's own; the refresh token no longer works there.
    let (status, _) = gateway
        .api(
            alice,
            Method::DELETE,
            &format!("/api/v1/servers/{server}/oauth/connection"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        gateway
            .upstream_oauth
            .access_token(&scope, &server, &alice.user_id)
            .await
            .is_err()
    );
}

async fn refresh_count(upstream: &Upstream) -> usize {
    upstream.log().await["token"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["grant_type"] == "refresh_token")
        .count()
}

/// Bad input at the callback: denied consent, a bad or replayed state, a wrong or missing
/// issuer (RFC 9207); each a clear page, nothing stored. A refused refresh token removes the
/// connection and says to reconnect.
#[tokio::test]
async fn upstream_oauth_errors_are_clear_and_store_nothing() {
    let Some(upstream) = Upstream::start().await else {
        return;
    };
    let (gateway, scope, server) = setup(&upstream, "member").await;
    let alice = &gateway.alice;
    let nothing_stored = || async {
        assert!(
            gateway
                .store
                .upstream_connection(
                    &scope,
                    &server,
                    &UpstreamAccount::Member(alice.user_id.clone())
                )
                .await
                .unwrap()
                .is_none()
        );
    };

    upstream.control("/control", json!({"deny": true})).await;
    let denied = connect(&gateway, &upstream, alice, &server).await;
    assert_eq!(denied.status, 400);
    assert!(denied.page.contains("access_denied"), "{}", denied.page);
    nothing_stored().await;

    let unknown = open(
        &upstream,
        &format!(
            "http://{}/oauth/upstream/callback?code=abc&state=forged",
            gateway.addr
        ),
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.page.contains("unknown, already used or expired"));
    nothing_stored().await;

    upstream
        .control("/control", json!({"wrongIssuer": true}))
        .await;
    let wrong = connect(&gateway, &upstream, alice, &server).await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.page.contains("http://evil.example"), "{}", wrong.page);
    assert!(wrong.page.contains("RFC 9207"), "{}", wrong.page);
    nothing_stored().await;

    // The authorization server promises `iss`; a response without it is refused.
    let url = authorize(&gateway, &upstream, alice, &server).await;
    let mut stripped = url::Url::parse(&url).unwrap();
    let kept: Vec<(String, String)> = stripped
        .query_pairs()
        .filter(|(name, _)| name != "iss")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    stripped.query_pairs_mut().clear().extend_pairs(kept);
    let missing = open(&upstream, stripped.as_str()).await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.page.contains("no iss parameter"),
        "{}",
        missing.page
    );
    // The state was spent by that attempt: replaying the genuine response fails too.
    let replayed = open(&upstream, &url).await;
    assert_eq!(replayed.status, 400);
    assert!(replayed.page.contains("unknown, already used or expired"));
    nothing_stored().await;

    // S16: no page or message carries the code or the state.
    for page in [&denied, &unknown, &wrong, &missing, &replayed] {
        let callback = url::Url::parse(&page.url).unwrap();
        for (name, value) in callback.query_pairs() {
            if name == "code" || name == "state" {
                assert!(!page.page.contains(value.as_ref()), "{name} in the page");
            }
        }
    }

    // A working connection whose refresh token the server refuses is removed.
    assert_eq!(
        connect(&gateway, &upstream, alice, &server).await.status,
        200
    );
    let token = gateway
        .upstream_oauth
        .access_token(&scope, &server, &alice.user_id)
        .await
        .unwrap();
    let stored = gateway
        .store
        .upstream_tokens(
            &scope,
            &server,
            &UpstreamAccount::Member(alice.user_id.clone()),
        )
        .await
        .unwrap()
        .unwrap();
    let refresh = stored.refresh_token.unwrap();
    upstream
        .http
        .post(format!("{}/revoke", upstream.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", refresh.expose_secret()))
        .send()
        .await
        .unwrap();
    let error = gateway
        .upstream_oauth
        .refresh_after_unauthorized(&scope, &server, &alice.user_id, &token)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid_grant"), "{error}");
    assert!(error.contains("connect again"), "{error}");
    nothing_stored().await;
}

/// S7, S8: organization mode is connected by owners and admins only; OAuth applies to remote
/// servers only; another organization's owner cannot see or touch it.
#[tokio::test]
async fn organization_connections_are_for_admins_and_stay_in_their_organization() {
    let Some(upstream) = Upstream::start().await else {
        return;
    };
    let (gateway, scope, server) = setup(&upstream, "organization").await;
    let (status, body) = gateway
        .api(
            &gateway.mallory,
            Method::POST,
            &format!("/api/v1/servers/{server}/oauth/authorize"),
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = gateway
        .api(
            &gateway.mallory,
            Method::PUT,
            &format!("/api/v1/servers/{server}/oauth"),
            Some(json!({"mode": "member"})),
        )
        .await;
    assert_eq!(status, 403);
    for (method, path) in [
        (Method::GET, format!("/api/v1/servers/{server}/oauth")),
        (
            Method::POST,
            format!("/api/v1/servers/{server}/oauth/authorize"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/servers/{server}/oauth/connection"),
        ),
        (Method::DELETE, format!("/api/v1/servers/{server}/oauth")),
    ] {
        let (status, body) = gateway.api(&gateway.olga, method, &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }

    // The organization's connection serves every member.
    assert_eq!(
        connect(&gateway, &upstream, &gateway.alice, &server)
            .await
            .status,
        200
    );
    let for_alice = gateway
        .upstream_oauth
        .access_token(&scope, &server, &gateway.alice.user_id)
        .await
        .unwrap();
    let for_mallory = gateway
        .upstream_oauth
        .access_token(&scope, &server, &gateway.mallory.user_id)
        .await
        .unwrap();
    assert_eq!(for_alice.expose_secret(), for_mallory.expose_secret());

    // Tokens are bound to the server's URL: after an admin changes it, they are deleted
    // unsent, and the organization must connect again.
    let (status, body) = gateway
        .api(
            &gateway.alice,
            Method::PATCH,
            &format!("/api/v1/servers/{server}"),
            Some(json!({"transport": {"type": "streamable_http", "url": format!("{}/elsewhere", upstream.base)}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let error = gateway
        .upstream_oauth
        .access_token(&scope, &server, &gateway.alice.user_id)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("URL changed"), "{error}");
    assert!(
        gateway
            .store
            .upstream_tokens(&scope, &server, &UpstreamAccount::Organization)
            .await
            .unwrap()
            .is_none()
    );
    let (status, _) = gateway
        .api(
            &gateway.alice,
            Method::PATCH,
            &format!("/api/v1/servers/{server}"),
            Some(json!({"transport": {"type": "streamable_http", "url": upstream.resource()}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        connect(&gateway, &upstream, &gateway.alice, &server)
            .await
            .status,
        200
    );

    // Bad input names the field; a secret never comes back.
    let (status, body) = gateway
        .api(
            &gateway.alice,
            Method::PUT,
            &format!("/api/v1/servers/{server}/oauth"),
            Some(json!({"mode": "member", "scopes": ["a b"]})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("scopes"), "{body}");
    let (status, body) = gateway
        .api(
            &gateway.alice,
            Method::PUT,
            &format!("/api/v1/servers/{server}/oauth"),
            Some(json!({"mode": "member", "client_secret": "s3cr3t-value"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("client_secret"), "{body}");
    let (status, body) = gateway
        .api(
            &gateway.alice,
            Method::PUT,
            &format!("/api/v1/servers/{server}/oauth"),
            Some(json!({"mode": "member", "client_id": "hand-made", "client_secret": "s3cr3t-value"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_secret_set"], true);
    assert!(!body.to_string().contains("s3cr3t-value"));
    // The mode changed: the organization's connection is gone.
    assert_eq!(body["connection"]["connected"], false);

    // The client ID metadata document names itself and the callback.
    let document_url = format!("http://{}/oauth/client-metadata.json", gateway.addr);
    let document: Value = upstream
        .http
        .get(&document_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["client_id"], document_url);
    assert_eq!(
        document["redirect_uris"][0],
        format!("http://{}/oauth/upstream/callback", gateway.addr)
    );
    assert_eq!(document["token_endpoint_auth_method"], "none");

    let stdio = gateway
        .add_stdio_server("local", "/bin/true", &[], false)
        .await;
    let (status, body) = gateway
        .api(
            &gateway.alice,
            Method::PUT,
            &format!("/api/v1/servers/{stdio}/oauth"),
            Some(json!({"mode": "member"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("streamable_http"), "{body}");
}

/// S19, S20: deleting a server, and deleting the organization, revoke their members' upstream
/// tokens at the authorization server before the rows (and with them the endpoints) go.
#[tokio::test]
async fn deleting_a_server_or_its_organization_revokes_its_upstream_tokens() {
    let Some(upstream) = Upstream::start().await else {
        return;
    };
    for whole_organization in [false, true] {
        let (gateway, scope, server) = setup(&upstream, "member").await;
        for who in [&gateway.alice, &gateway.mallory] {
            assert_eq!(connect(&gateway, &upstream, who, &server).await.status, 200);
        }
        let revoked_before = upstream.log().await["revoked"].as_u64().unwrap();
        let (path, body, want) = if whole_organization {
            (
                "/api/v1/organization".to_owned(),
                Some(json!({"confirm": "acme"})),
                200,
            )
        } else {
            (format!("/api/v1/servers/{server}"), None, 204)
        };
        let (status, answer) = gateway
            .api(&gateway.alice, Method::DELETE, &path, body)
            .await;
        assert_eq!(status, want, "{path}: {answer}");
        assert_eq!(
            upstream.log().await["revoked"].as_u64().unwrap(),
            revoked_before + 2,
            "{path}"
        );
        if !whole_organization {
            assert!(matches!(
                gateway.store.server(&scope, &server).await,
                Err(store::StoreError::NotFound("server"))
            ));
        }
    }
}
