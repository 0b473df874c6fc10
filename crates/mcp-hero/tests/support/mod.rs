//! Shared harness for the MCP endpoint tests: a gateway on a real port with a fresh store, the
//! fixture server binary, and a small Streamable HTTP client that reads JSON and SSE answers.

#![allow(
    clippy::disallowed_methods,
    reason = "test helpers hand freshly created test tokens to requests"
)]
#![allow(dead_code)] // Each test file uses a different part of the harness.

pub mod capture;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use auth::{ManageMembers, Role, authorize};
use futures_util::StreamExt as _;
use mcp::launcher::PlainProcessLauncher;
use mcp_hero::http::{AppState, router};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use store::{DatabaseLocation, Store, UserId};

pub const ROOT_SECRET: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";

/// The fixture MCP server, built once per test binary.
pub fn fixture_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            // Integration tests live in target/<profile>/deps; the workspace's binaries one up.
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().unwrap().parent().unwrap().to_owned();
            let binary = dir.join("mcp-fixture");
            // `cargo test --workspace` builds the fixture (it has tests of its own), but
            // `cargo test -p mcp-hero` does not: build it when it is missing or older than its
            // source, so a stale fixture never answers for the current code. (Building it on
            // every run would resolve features for that package alone and rebuild half the
            // dependency tree.)
            if fixture_is_stale(&binary) {
                let cargo = setting("CARGO").unwrap_or_else(|| "cargo".into());
                let status = std::process::Command::new(cargo)
                    .args(["build", "--quiet", "--locked", "-p", "mcp-fixture"])
                    .env("CARGO_TARGET_DIR", dir.parent().unwrap())
                    .status()
                    .unwrap();
                assert!(status.success(), "building mcp-fixture failed");
            }
            assert!(binary.exists(), "{} is missing", binary.display());
            binary
        })
        .clone()
}

/// Whether the fixture binary is missing or older than a file of its crate.
fn fixture_is_stale(binary: &std::path::Path) -> bool {
    let Ok(built) = std::fs::metadata(binary).and_then(|meta| meta.modified()) else {
        return true;
    };
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixture");
    let mut pending = vec![crate_dir];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
        } else if meta.modified().is_ok_and(|modified| modified > built) {
            return true;
        }
    }
    false
}

/// Reads a test setting; the one place the harness looks at the environment.
#[allow(clippy::disallowed_methods)] // Test configuration (tool paths, CI), never a secret.
pub fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// An external tool exported by `scripts/tools.sh` (for example `MCP_HERO_NODE`). When it is
/// absent, a test returns early on a developer machine and fails under `CI=true`.
#[allow(clippy::print_stderr)] // Says why a test did nothing.
pub fn external_tool(name: &str) -> Option<String> {
    if let Some(value) = setting(name) {
        return Some(value);
    }
    assert!(
        setting("CI").as_deref() != Some("true"),
        "CI=true but {name} is not set: `source scripts/tools.sh` first (scripts/test does)"
    );
    eprintln!("skipped: {name} is not set (run scripts/tools.sh)");
    None
}

/// Whether the real sandbox can run here: root (for the uid pool and cgroups) and bubblewrap.
/// When it can't, a test returns early on a developer machine and fails under `CI=true`.
#[allow(clippy::print_stderr)] // Says why a test did nothing.
pub fn sandbox_available() -> bool {
    let root = rustix::process::geteuid().is_root();
    let bwrap = std::path::Path::new("/usr/bin/bwrap").exists();
    if root && bwrap {
        return true;
    }
    assert!(
        setting("CI").as_deref() != Some("true"),
        "CI=true but the sandbox can't run here (root: {root}, /usr/bin/bwrap: {bwrap}); .ci/run installs bubblewrap"
    );
    eprintln!("skipped: the sandbox needs root and /usr/bin/bwrap (root: {root}, bwrap: {bwrap})");
    false
}

/// Sandbox settings for tests: this crate's binary as the helper, the fixture (and `extra`)
/// visible read-only, a short grace period, and a run dir of the tests' own.
pub fn sandbox_config(extra: Vec<PathBuf>) -> sandbox::SandboxConfig {
    let mut ro_binds = vec![fixture_binary()];
    ro_binds.extend(extra);
    sandbox::SandboxConfig {
        helper_exe: env!("CARGO_BIN_EXE_mcp-hero").into(),
        ro_binds,
        run_dir: std::env::temp_dir().join("mcp-hero-sandbox-tests"),
        grace: Duration::from_millis(500),
        ..sandbox::SandboxConfig::default()
    }
}

/// A member of the test organization and their token.
#[derive(Clone)]
pub struct Member {
    pub user_id: UserId,
    pub token: String,
    pub token_id: String,
}

/// A running gateway: organization `acme` (alice owner, mallory member, victor viewer) and
/// organization `other` (olga owner).
pub struct Gateway {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub alice: Member,
    pub mallory: Member,
    pub victor: Member,
    pub olga: Member,
    pub gateway: Arc<mcp::Gateway>,
    /// The installer of server packages.
    pub images: mcp_hero::images::Images,
    /// The server log buffer the API reads and tails.
    pub server_logs: mcp_hero::server_logs::ServerLogs,
    /// The upstream OAuth client the data plane asks for tokens.
    pub upstream_oauth: mcp_hero::upstream_oauth::UpstreamOAuth,
    /// The data directory (the SQLite database lives here).
    pub data_dir: PathBuf,
    /// The audit writer the gateway records into, as `serve` builds it.
    pub audit: Arc<mcp_hero::audit::AuditWriter>,
}

impl Gateway {
    pub async fn start() -> Self {
        Self::start_with(mcp::GatewayConfig::default()).await
    }

    pub async fn start_with(config: mcp::GatewayConfig) -> Self {
        Self::start_with_launcher(config, Arc::new(PlainProcessLauncher::new(None))).await
    }

    /// A gateway whose stdio servers start through `launcher`; it installs no package.
    pub async fn start_with_launcher(
        config: mcp::GatewayConfig,
        launcher: Arc<dyn mcp::launcher::Launcher>,
    ) -> Self {
        Self::start_full(
            config,
            launcher,
            mcp_hero::images::ImagesSetup::none("these tests install no packages"),
        )
        .await
    }

    /// A gateway whose stdio servers start through `launcher` and whose packages install as
    /// `images` says.
    pub async fn start_full(
        config: mcp::GatewayConfig,
        launcher: Arc<dyn mcp::launcher::Launcher>,
        images: mcp_hero::images::ImagesSetup,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = vault::RootSecret::from_base64(ROOT_SECRET).unwrap();
        let location = DatabaseLocation::Sqlite {
            path: dir.path().join("test.db"),
        };
        let store = Store::open(&location, vault::Vault::new(&root, None))
            .await
            .unwrap();
        let owner = authorize::<ManageMembers>(Role::Owner).unwrap();
        let (acme, _, alice_id) = store
            .create_organization("acme", "Acme", "alice@acme.example")
            .await
            .unwrap();
        let (other, _, olga_id) = store
            .create_organization("other", "Other", "olga@other.example")
            .await
            .unwrap();
        let mallory = store
            .add_member(&acme, &owner, "mallory@acme.example", Role::Member)
            .await
            .unwrap()
            .user_id;
        let victor = store
            .add_member(&acme, &owner, "victor@acme.example", Role::Viewer)
            .await
            .unwrap()
            .user_id;
        let issue = |scope: store::OrgScope, user: UserId| {
            let store = store.clone();
            async move {
                let token = auth::pat::generate();
                let meta = store
                    .create_token(&scope, &user, "test", None, &token.digest)
                    .await
                    .unwrap();
                Member {
                    user_id: user,
                    token: token.secret.expose_secret().to_owned(),
                    token_id: meta.id.to_string(),
                }
            }
        };
        let alice = issue(acme.clone(), alice_id).await;
        let mallory = issue(acme.clone(), mallory).await;
        let victor = issue(acme.clone(), victor).await;
        let olga = issue(other, olga_id).await;

        let audit = Arc::new(mcp_hero::audit::AuditWriter::start(
            store.clone(),
            &mcp_hero::audit::AuditConfig::default(),
        ));
        // Bound first: the public URL (upstream OAuth's callback) names its port.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_logs = mcp_hero::server_logs::ServerLogs::start(
            store.clone(),
            mcp_hero::server_logs::LogsConfig::default(),
        );
        let upstream_oauth = mcp_hero::upstream_oauth::UpstreamOAuth::new(
            store.clone(),
            Some(url::Url::parse(&format!("http://{addr}")).unwrap()),
        );
        let gateway = mcp::Gateway::with_services(
            config,
            launcher,
            mcp::GatewayServices {
                credentials: Arc::new(mcp_hero::credentials::StoreCredentials::new(
                    store.clone(),
                    upstream_oauth.clone(),
                )),
                logs: Arc::new(server_logs.clone()),
                audit: audit.sink(),
            },
        )
        .unwrap();
        let state = AppState::assemble(
            store.clone(),
            gateway.clone(),
            images,
            server_logs,
            upstream_oauth,
        );
        let images = state.images.clone();
        let server_logs = state.server_logs.clone();
        let upstream_oauth = state.upstream_oauth.clone();
        let app = router(state, 64 * 1024);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Gateway {
            data_dir: dir.path().to_owned(),
            _dir: dir,
            upstream_oauth,
            store,
            addr,
            http: reqwest::Client::new(),
            alice,
            mallory,
            victor,
            olga,
            gateway,
            images,
            server_logs,
            audit,
        }
    }

    /// The organization's MCP URL.
    pub fn mcp_url(&self, org: &str) -> String {
        format!("http://{}/o/{org}/mcp", self.addr)
    }

    /// Calls the JSON API as `who`.
    pub async fn api(
        &self,
        who: &Member,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.addr))
            .bearer_auth(&who.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Registers a fixture stdio server named `name` and returns its id.
    pub async fn add_fixture(&self, name: &str, extra_args: &[&str], unprefixed: bool) -> String {
        let mut args = vec!["stdio", "--name", name];
        args.extend_from_slice(extra_args);
        let command = fixture_binary().display().to_string();
        self.add_stdio_server(name, &command, &args, unprefixed)
            .await
    }

    /// Registers a stdio server `name` running `command args` and returns its id.
    pub async fn add_stdio_server(
        &self,
        name: &str,
        command: &str,
        args: &[&str],
        unprefixed: bool,
    ) -> String {
        let body = json!({
            "name": name,
            "transport": {"type": "stdio", "command": command, "args": args},
            "exposure": if unprefixed { "unprefixed" } else { "prefixed" },
        });
        let (status, answer) = self
            .api(
                &self.alice,
                reqwest::Method::POST,
                "/api/v1/servers",
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// Adds a tool rule.
    pub async fn add_rule(&self, subject: Value, effect: &str, pattern: &str) -> String {
        let body = json!({"subject": subject, "effect": effect, "pattern": pattern});
        let (status, answer) = self
            .api(
                &self.alice,
                reqwest::Method::POST,
                "/api/v1/tool-rules",
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// A client for `who` on organization `org`.
    pub fn client(&self, who: &Member, org: &str) -> Client {
        Client {
            http: self.http.clone(),
            url: self.mcp_url(org),
            token: who.token.clone(),
            session: None,
            version: "2025-11-25".into(),
            next_id: 1,
        }
    }
}

/// A minimal Streamable HTTP client.
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
    pub session: Option<String>,
    pub version: String,
    pub next_id: u64,
}

/// What a POST got back: the final answer and what came before it on the stream.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub answer: Value,
    pub before: Vec<Value>,
}

impl Client {
    /// A POST with the usual headers.
    pub fn post(&self) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        if let Some(session) = &self.session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", &self.version);
        }
        request
    }

    pub async fn initialize(&mut self, capabilities: Value) -> Value {
        let response = self
            .post()
            .json(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": self.version, "capabilities": capabilities,
                "clientInfo": {"name": "test", "version": "1"}}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        self.session = Some(
            response.headers()["mcp-session-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let answer: Value = response.json().await.unwrap();
        self.notify("notifications/initialized", json!({})).await;
        answer
    }

    pub async fn notify(&self, method: &str, params: Value) -> u16 {
        self.post()
            .json(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Sends a request and reads its answer, JSON or SSE; server requests on the stream are
    /// answered by `on_request`.
    pub async fn request_with(
        &mut self,
        method: &str,
        params: Value,
        on_request: impl Fn(&Value) -> Value,
    ) -> Reply {
        let id = self.next_id;
        self.next_id += 1;
        let response = self
            .post()
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let is_sse = response
            .headers()
            .get("content-type")
            .is_some_and(|value| value.to_str().unwrap().starts_with("text/event-stream"));
        if !is_sse {
            let answer = response.json().await.unwrap_or(Value::Null);
            return Reply {
                status,
                answer,
                before: Vec::new(),
            };
        }
        let mut before = Vec::new();
        let mut buffer = String::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .expect("SSE stream stalled")
        {
            buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let message: Value = serde_json::from_str(&data).unwrap();
                if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                    return Reply {
                        status,
                        answer: message,
                        before,
                    };
                }
                if message.get("method").is_some() && message.get("id").is_some() {
                    let result = on_request(&message);
                    let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": result});
                    assert_eq!(self.post().json(&reply).send().await.unwrap().status(), 202);
                }
                before.push(message);
            }
        }
        Reply {
            status,
            answer: Value::Null,
            before,
        }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Reply {
        self.request_with(method, params, |_| json!({})).await
    }

    /// Exposed tool names.
    pub async fn tool_names(&mut self) -> Vec<String> {
        let reply = self.request("tools/list", json!({})).await;
        let mut names: Vec<String> = reply.answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools in {}", reply.answer))
            .iter()
            .map(|tool| tool["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    pub async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await
            .answer
    }

    pub async fn delete(&self) -> u16 {
        self.http
            .delete(&self.url)
            .bearer_auth(&self.token)
            .header("mcp-session-id", self.session.as_deref().unwrap())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// Waits until `check` holds, up to five seconds.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Whether a process is alive.
pub fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

/// One SSE event: its id and its JSON message (`Value::Null` for the priming event).
pub type SseEvent = (Option<String>, Value);

/// Opens a GET stream (optionally resuming after `last_event_id`) and forwards its events.
pub async fn open_stream(
    client: &Client,
    last_event_id: Option<&str>,
) -> tokio::sync::mpsc::UnboundedReceiver<SseEvent> {
    let mut request = client
        .http
        .get(&client.url)
        .bearer_auth(&client.token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", client.session.as_deref().unwrap());
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    read_events(response)
}

/// Forwards the SSE events of `response` to a channel until the stream ends.
pub fn read_events(response: reqwest::Response) -> tokio::sync::mpsc::UnboundedReceiver<SseEvent> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        let mut body = response.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if event.starts_with(':') {
                    continue;
                }
                let id = event
                    .lines()
                    .find_map(|line| line.strip_prefix("id: "))
                    .map(str::to_owned);
                let data: String = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                let message = serde_json::from_str(&data).unwrap_or(Value::Null);
                if sender.send((id, message)).is_err() {
                    return;
                }
            }
        }
    });
    receiver
}

/// The next event whose message has `method`, within five seconds.
pub async fn next_with_method(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<SseEvent>,
    method: &str,
) -> Option<SseEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .ok()??;
        if event.1["method"] == method {
            return Some(event);
        }
    }
}
