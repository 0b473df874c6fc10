//! The organization endpoint's Streamable HTTP transport (protocol 2025-03-26 to 2025-11-25) and
//! the registry of live sessions.
//!
//! The caller (the binary's router) authenticates the bearer token and calls [`Gateway::post`],
//! [`Gateway::get`] or [`Gateway::delete`] with the [`SessionOwner`] it proved. Everything about
//! MCP over HTTP happens here: Host and Origin checks (DNS rebinding), `Accept` and
//! `Content-Type`, version headers, session ids (random, bound to the token that opened them,
//! 404 once ended), JSON or SSE answers, the standalone GET stream, resumption with
//! `Last-Event-ID`, idle timeouts and the per-member session cap.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use auth::tool_access::MemberToolAccess;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditSink, NoAudit};
use crate::credentials::{Credentials, NoCredentials};
use crate::jsonrpc::{INVALID_REQUEST, Kind, Message, RpcError};
use crate::launcher::Launcher;
use crate::logs::{NoServerLogs, ServerLogSink};
use crate::protocol;
use crate::session::{Session, SessionOwner, SessionPlan, SessionStatus};
use crate::stream::{Event, EventStream, parse_event_id};
use crate::upstream::{HttpClients, UpstreamLimits, UpstreamSpec};

/// How long a client should wait before resuming a broken SSE stream (the `retry` field).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The data plane's settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Bounds on upstream connections.
    pub upstream: UpstreamLimits,
    /// Longest a request may wait for an upstream's answer.
    pub call_timeout: Duration,
    /// A session with no client activity and no open stream for this long ends.
    pub idle_timeout: Duration,
    /// Interval of SSE keep-alive comments.
    pub keep_alive: Duration,
    /// Most live sessions per member; opening one more ends that member's least recently used.
    pub max_sessions_per_member: usize,
    /// Items per page of an aggregated list.
    pub list_page_size: usize,
    /// `Host` values accepted (a name, or `name:port`); requests naming another host get 403.
    pub allowed_hosts: Vec<String>,
    /// `Origin` values accepted (`scheme://host[:port]`, `*` as port matches any); a request
    /// with another Origin gets 403. Requests without Origin (non-browser clients) pass.
    pub allowed_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            upstream: UpstreamLimits {
                max_message_bytes: 4 * 1024 * 1024,
                start_timeout: Duration::from_secs(30),
                max_list_pages: 100,
            },
            call_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(15 * 60),
            keep_alive: Duration::from_secs(15),
            max_sessions_per_member: 32,
            list_page_size: 500,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            allowed_origins: vec![
                "http://localhost:*".into(),
                "http://127.0.0.1:*".into(),
                "http://[::1]:*".into(),
            ],
        }
    }
}

/// What every session shares: settings, the launcher, the HTTP clients and the audit sink.
pub(crate) struct Runtime {
    pub config: GatewayConfig,
    pub launcher: Arc<dyn Launcher>,
    pub credentials: Arc<dyn Credentials>,
    pub logs: Arc<dyn ServerLogSink>,
    pub http: HttpClients,
    pub audit: Arc<dyn AuditSink>,
}

/// What the gateway's caller provides the data plane: secrets and OAuth tokens for
/// connections, a log buffer for servers' output, an audit trail for calls.
pub struct GatewayServices {
    /// Opens servers' secrets and OAuth tokens.
    pub credentials: Arc<dyn Credentials>,
    /// Receives servers' redacted stderr and launcher events.
    pub logs: Arc<dyn ServerLogSink>,
    /// Receives one event per audited call.
    pub audit: Arc<dyn AuditSink>,
}

impl Default for GatewayServices {
    /// No secrets (any asked for is refused), no log buffer, no audit trail.
    fn default() -> Self {
        GatewayServices {
            credentials: Arc::new(NoCredentials),
            logs: Arc::new(NoServerLogs),
            audit: Arc::new(NoAudit),
        }
    }
}

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The upstream HTTP client could not be built (TLS roots missing, ...).
    #[error("could not build the upstream HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// Why a session could not be planned: the caller's message goes to the client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// The live sessions of every organization, and the transport that serves them.
pub struct Gateway {
    runtime: Arc<Runtime>,
    sessions: RwLock<HashMap<Arc<str>, Arc<Session>>>,
    stopping: CancellationToken,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds a gateway whose servers need no secrets (any asked for is refused).
    pub fn new(
        config: GatewayConfig,
        launcher: Arc<dyn Launcher>,
    ) -> Result<Arc<Self>, GatewayError> {
        Self::with_services(config, launcher, GatewayServices::default())
    }

    /// Builds a gateway whose every `tools/call`, `resources/read` and `prompts/get` is
    /// reported to `audit`, and nothing else (benchmarks compare it with [`Gateway::new`]).
    pub fn with_audit(
        config: GatewayConfig,
        launcher: Arc<dyn Launcher>,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Arc<Self>, GatewayError> {
        Self::with_services(
            config,
            launcher,
            GatewayServices {
                audit,
                ..GatewayServices::default()
            },
        )
    }

    /// Builds the gateway with its `services`, and starts its idle-session reaper.
    pub fn with_services(
        config: GatewayConfig,
        launcher: Arc<dyn Launcher>,
        services: GatewayServices,
    ) -> Result<Arc<Self>, GatewayError> {
        let gateway = Arc::new(Gateway {
            runtime: Arc::new(Runtime {
                config,
                launcher,
                credentials: services.credentials,
                logs: services.logs,
                http: HttpClients::new()?,
                audit: services.audit,
            }),
            sessions: RwLock::new(HashMap::new()),
            stopping: CancellationToken::new(),
        });
        let reaper = Arc::downgrade(&gateway);
        let period = (gateway.runtime.config.idle_timeout / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(30));
        let stopping = gateway.stopping.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = stopping.cancelled() => return,
                }
                let Some(gateway) = reaper.upgrade() else {
                    return;
                };
                let idle = gateway.runtime.config.idle_timeout;
                gateway.end_where(|session| session.idle_for() >= idle, "idle timeout");
            }
        });
        Ok(gateway)
    }

    /// The settings in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.runtime.config
    }

    /// Checks `Host` and `Origin` against the allowed lists (DNS rebinding protection); the
    /// caller runs it before authentication so a rebinding page learns nothing.
    #[allow(clippy::result_large_err)] // The refusal is the response itself, built once per refusal.
    pub fn check_host_and_origin(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Response> {
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| uri.authority().map(|authority| authority.as_str()));
        let config = &self.runtime.config;
        match host {
            Some(host) if host_allowed(host, &config.allowed_hosts) => {}
            Some(host) => {
                return Err(forbidden(&format!(
                    "Host {host:?} is not an allowed host of this gateway (allowed_hosts)"
                )));
            }
            // Browsers, the only clients a rebinding attack can drive, always send Host.
            None => {}
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            if !origin_allowed(origin, &config.allowed_origins) {
                return Err(forbidden(&format!(
                    "Origin {origin:?} is not an allowed origin of this gateway (allowed_origins)"
                )));
            }
        }
        Ok(())
    }

    /// `POST /o/{org}/mcp`: one JSON-RPC message from the client.
    ///
    /// `plan` loads the organization's servers and the member's access; it runs only for
    /// `initialize`.
    pub async fn post<P>(
        &self,
        owner: SessionOwner,
        headers: &HeaderMap,
        body: Bytes,
        plan: P,
    ) -> Response
    where
        P: AsyncFnOnce() -> Result<SessionPlan, PlanError>,
    {
        if !accepts(headers, "application/json") || !accepts(headers, "text/event-stream") {
            return http_error(
                StatusCode::NOT_ACCEPTABLE,
                "Accept must list both application/json and text/event-stream",
            );
        }
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !is_json {
            return http_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            );
        }
        let message = match Message::parse(&body) {
            Ok(message) => message,
            Err(error) => {
                let body =
                    Message::error(Value::Null, &RpcError::new(error.code(), error.to_string()));
                return json_response(StatusCode::BAD_REQUEST, body.to_json(), None);
            }
        };
        if message.method() == Some("initialize") {
            if message.kind() != Kind::Request {
                return http_error(
                    StatusCode::BAD_REQUEST,
                    "initialize must be a request with an id",
                );
            }
            if headers.contains_key("mcp-session-id") {
                return http_error(
                    StatusCode::BAD_REQUEST,
                    "initialize starts a new session and must not carry Mcp-Session-Id",
                );
            }
            return self.initialize(owner, message, plan).await;
        }
        let session = match self.session_for(&owner, headers) {
            Ok(session) => session,
            Err(response) => return response,
        };
        session.touch();
        match message.kind() {
            Kind::Notification => {
                session.client_notification(message).await;
                StatusCode::ACCEPTED.into_response()
            }
            Kind::Response => {
                session.client_response(message).await;
                StatusCode::ACCEPTED.into_response()
            }
            Kind::Request => self.answer(session, message).await,
        }
    }

    /// `GET /o/{org}/mcp`: the standalone stream, or the resumption of any stream of the session.
    pub async fn get(&self, owner: SessionOwner, headers: &HeaderMap) -> Response {
        if !accepts(headers, "text/event-stream") {
            return http_error(
                StatusCode::NOT_ACCEPTABLE,
                "Accept must list text/event-stream",
            );
        }
        let session = match self.session_for(&owner, headers) {
            Ok(session) => session,
            Err(response) => return response,
        };
        session.touch();
        let resume = headers
            .get("last-event-id")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_event_id);
        if let Some((index, after)) = resume
            && let Some(stream) = session.stream(index)
        {
            let (replay, live) = stream.attach(Some(after));
            return self.sse(&session, &stream, false, replay, live);
        }
        let stream = session.general_stream().clone();
        let (replay, live) = stream.attach(None);
        let prime = protocol::sends_priming_event(session.version);
        self.sse(&session, &stream, prime, replay, live)
    }

    /// `DELETE /o/{org}/mcp`: the client ends its session.
    pub async fn delete(&self, owner: SessionOwner, headers: &HeaderMap) -> Response {
        let session = match self.session_for(&owner, headers) {
            Ok(session) => session,
            Err(response) => return response,
        };
        self.remove(&session.id);
        session.end_and_wait("the client ended it").await;
        StatusCode::OK.into_response()
    }

    async fn initialize<P>(&self, owner: SessionOwner, request: Message, plan: P) -> Response
    where
        P: AsyncFnOnce() -> Result<SessionPlan, PlanError>,
    {
        let id = request.id().cloned().unwrap_or(Value::Null);
        let params = request.params();
        let version = protocol::negotiate(
            params
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str),
        );
        let client_capabilities = params
            .and_then(|p| p.get("capabilities"))
            .filter(|caps| caps.is_object())
            .cloned()
            .unwrap_or_else(|| json!({}));
        let plan = match plan().await {
            Ok(plan) => plan,
            Err(error) => {
                let error = RpcError::new(
                    crate::jsonrpc::INTERNAL_ERROR,
                    format!("could not load the organization's servers: {error}"),
                );
                return json_response(StatusCode::OK, Message::error(id, &error).to_json(), None);
            }
        };
        let session_id: Arc<str> = Arc::from(random_token(32));
        let tag = random_token(6);
        self.make_room_for(&owner);
        let session = Session::start(
            session_id.clone(),
            tag,
            owner,
            version,
            client_capabilities,
            plan,
            self.runtime.clone(),
        );
        session.touch();
        tracing::info!(org = %session.owner.org, session = %session.tag, version, "session started");
        self.write_sessions().insert(session_id.clone(), session);
        let result = json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "completions": {},
                "logging": {},
            },
            "serverInfo": {
                "name": "mcp-hero",
                "title": "MCP Hero gateway",
                "version": env!("CARGO_PKG_VERSION"),
            },
        });
        json_response(
            StatusCode::OK,
            Message::result(id, result).to_json(),
            HeaderValue::from_str(&session_id).ok(),
        )
    }

    /// Answers a request: as JSON when the answer comes first, as SSE when anything (progress,
    /// logging, a sampling request) comes before it.
    ///
    /// The work runs in this task until its first event (no spawn on the common path); if the
    /// answer turns into a stream, or the client goes away, the rest of the work moves to a task
    /// of its own, so a disconnect is never taken as a cancellation and the stream can resume.
    async fn answer(&self, session: Arc<Session>, request: Message) -> Response {
        let stream = session.open_request_stream();
        let (_, mut live) = stream.attach(None);
        let worker_session = session.clone();
        let worker_stream = stream.clone();
        let mut worker = Detached(Some(Box::pin(async move {
            match worker_session.answer(request, &worker_stream).await {
                Some(answer) => worker_stream.push(&answer, true),
                None => worker_stream.finish(),
            }
        })));
        let first = match worker.0.as_mut() {
            Some(work) => tokio::select! {
                biased;
                event = live.recv() => event,
                () = work => {
                    worker.0 = None;
                    live.recv().await
                }
            },
            None => None,
        };
        match first {
            Some(first) if first.last => {
                session.drop_stream(stream.index());
                json_response(StatusCode::OK, first.json.to_string(), None)
            }
            first => {
                worker.detach();
                let prime = protocol::sends_priming_event(session.version);
                self.sse(&session, &stream, prime, first.into_iter().collect(), live)
            }
        }
    }

    fn sse(
        &self,
        session: &Arc<Session>,
        stream: &Arc<EventStream>,
        prime: bool,
        replay: Vec<Event>,
        live: mpsc::Receiver<Event>,
    ) -> Response {
        let stream = stream.clone();
        let mut head = Vec::new();
        if prime {
            // The priming event: an id to resume from, and how long to wait before reconnecting.
            head.push(Bytes::from(format!(
                "id: {}\nretry: {}\ndata: \n\n",
                stream.event_id(0),
                RECONNECT_AFTER.as_millis()
            )));
        }
        head.extend(replay.iter().map(|event| frame(&stream, event)));
        let state = SseState {
            head: head.into_iter(),
            live,
            stream,
            keep_alive: tokio::time::interval_at(
                tokio::time::Instant::now() + self.runtime.config.keep_alive,
                self.runtime.config.keep_alive,
            ),
            ended: session.ended.clone(),
            _open: session.stream_opened(),
        };
        let body = futures_util::stream::unfold(state, |mut state| async move {
            if let Some(bytes) = state.head.next() {
                return Some((Ok::<_, Infallible>(bytes), state));
            }
            tokio::select! {
                event = state.live.recv() => {
                    let event = event?;
                    let bytes = frame(&state.stream, &event);
                    Some((Ok(bytes), state))
                }
                _ = state.keep_alive.tick() => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), state)),
                () = state.ended.cancelled() => None,
            }
        });
        let mut response = Response::new(Body::from_stream(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }

    #[allow(clippy::result_large_err)] // As above: the refusal is the response.
    fn session_for(
        &self,
        owner: &SessionOwner,
        headers: &HeaderMap,
    ) -> Result<Arc<Session>, Response> {
        let Some(id) = headers.get("mcp-session-id") else {
            return Err(http_error(
                StatusCode::BAD_REQUEST,
                "Mcp-Session-Id header is required: send initialize first",
            ));
        };
        let id = id.to_str().unwrap_or_default();
        let session = self
            .read_sessions()
            .get(id)
            .filter(|session| &session.owner == owner && !session.ended.is_cancelled())
            .cloned();
        // A session of another token answers like one that never existed.
        let Some(session) = session else {
            return Err(http_error(
                StatusCode::NOT_FOUND,
                "session not found: it ended or never existed; initialize a new one",
            ));
        };
        if let Some(version) = headers.get("mcp-protocol-version") {
            let version = version.to_str().unwrap_or_default();
            if !protocol::is_supported(version) {
                return Err(http_error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "unsupported MCP-Protocol-Version {version:?}: this gateway speaks {}",
                        protocol::SUPPORTED_VERSIONS.join(", ")
                    ),
                ));
            }
            // A supported version other than the negotiated one is accepted: clients in the
            // wild (and the conformance suite) send the oldest header on some requests.
        }
        Ok(session)
    }

    /// Ends the sessions `filter` picks, e.g. those of a revoked token or a removed member.
    pub fn end_sessions(&self, filter: impl Fn(&SessionOwner) -> bool, reason: &str) {
        self.end_where(|session| filter(&session.owner), reason);
    }

    fn end_where(&self, filter: impl Fn(&Session) -> bool, reason: &str) {
        let ended: Vec<Arc<Session>> = {
            let mut sessions = self.write_sessions();
            let ids: Vec<Arc<str>> = sessions
                .iter()
                .filter(|(_, session)| filter(session))
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| sessions.remove(id)).collect()
        };
        for session in ended {
            session.end(reason);
        }
    }

    /// Gives every session of `org` the organization's current servers.
    pub fn set_org_servers(&self, org: &str, servers: &[UpstreamSpec]) {
        for session in self.sessions_of(org) {
            session.set_servers(servers.to_vec());
        }
    }

    /// Gives every session of `org` its member's current access.
    pub fn set_org_access(&self, org: &str, access: impl Fn(&SessionOwner) -> MemberToolAccess) {
        for session in self.sessions_of(org) {
            session.set_access(access(&session.owner));
        }
    }

    /// The live sessions of `org`, for the API.
    pub fn statuses(&self, org: &str) -> Vec<SessionStatus> {
        self.sessions_of(org)
            .iter()
            .map(|session| session.status())
            .collect()
    }

    /// How many sessions are live, for metrics and tests.
    pub fn session_count(&self) -> usize {
        self.read_sessions().len()
    }

    /// Ends every session and waits until their servers are gone.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        let sessions: Vec<Arc<Session>> = self
            .write_sessions()
            .drain()
            .map(|(_, session)| session)
            .collect();
        futures_util::future::join_all(
            sessions
                .iter()
                .map(|session| session.end_and_wait("the gateway is shutting down")),
        )
        .await;
    }

    fn sessions_of(&self, org: &str) -> Vec<Arc<Session>> {
        self.read_sessions()
            .values()
            .filter(|session| session.owner.org == org)
            .cloned()
            .collect()
    }

    fn make_room_for(&self, owner: &SessionOwner) {
        let max = self.runtime.config.max_sessions_per_member.max(1);
        let evicted = {
            let mut sessions = self.write_sessions();
            let mut mine: Vec<(Arc<str>, Duration)> = sessions
                .iter()
                .filter(|(_, session)| {
                    session.owner.org == owner.org && session.owner.user == owner.user
                })
                .map(|(id, session)| (id.clone(), session.idle_for()))
                .collect();
            if mine.len() < max {
                return;
            }
            mine.sort_by_key(|(_, idle)| std::cmp::Reverse(*idle));
            let excess = mine.len() + 1 - max;
            mine.iter()
                .take(excess)
                .filter_map(|(id, _)| sessions.remove(id))
                .collect::<Vec<_>>()
        };
        for session in evicted {
            session.end("the member opened more sessions than max_sessions_per_member");
        }
    }

    fn remove(&self, id: &str) {
        self.write_sessions().remove(id);
    }

    fn read_sessions(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_sessions(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Work that must run to completion: dropped unfinished, it moves to a task of its own.
struct Detached(Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>);

impl Detached {
    fn detach(&mut self) {
        if let Some(work) = self.0.take() {
            tokio::spawn(work);
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        self.detach();
    }
}

struct SseState {
    head: std::vec::IntoIter<Bytes>,
    live: mpsc::Receiver<Event>,
    stream: Arc<EventStream>,
    keep_alive: tokio::time::Interval,
    ended: CancellationToken,
    _open: crate::session::OpenStream,
}

fn frame(stream: &EventStream, event: &Event) -> Bytes {
    let id = stream.event_id(event.seq);
    let mut bytes = Vec::with_capacity(event.json.len() + id.len() + 32);
    bytes.extend_from_slice(b"event: message\nid: ");
    bytes.extend_from_slice(id.as_bytes());
    bytes.extend_from_slice(b"\ndata: ");
    bytes.extend_from_slice(event.json.as_bytes());
    bytes.extend_from_slice(b"\n\n");
    Bytes::from(bytes)
}

/// Random bytes as base64url: session ids (visible ASCII, as the spec requires) and log tags.
fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0_u8; bytes];
    // The system RNG failing is unrecoverable and aws-lc aborts on it; the error path is unused.
    let _ = aws_lc_rs::rand::fill(&mut buffer);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|value| {
        value.to_str().unwrap_or_default().split(',').any(|item| {
            let item = item.split(';').next().unwrap_or_default().trim();
            item.eq_ignore_ascii_case(media) || item == "*/*"
        })
    })
}

fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    let name = strip_port(&host);
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        entry == "*" || entry == host || (entry == name && strip_port(&entry) == entry)
    })
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(inner, _)| &host[..inner.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.to_ascii_lowercase();
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        if entry == "*" || entry == origin {
            return true;
        }
        match entry.strip_suffix(":*") {
            Some(base) => {
                origin == base
                    || origin.strip_prefix(base).is_some_and(|rest| {
                        rest.strip_prefix(':').is_some_and(|port| {
                            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                        })
                    })
            }
            None => false,
        }
    })
}

fn forbidden(message: &str) -> Response {
    http_error(StatusCode::FORBIDDEN, message)
}

/// An HTTP-level refusal, with a JSON-RPC error body as MCP clients expect.
fn http_error(status: StatusCode, message: &str) -> Response {
    let body = Message::error(Value::Null, &RpcError::new(INVALID_REQUEST, message));
    json_response(status, body.to_json(), None)
}

fn json_response(status: StatusCode, body: String, session: Option<HeaderValue>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(session) = session {
        headers.insert("mcp-session-id", session);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins_are_matched_exactly() {
        let hosts: Vec<String> = vec![
            "localhost".into(),
            "[::1]".into(),
            "mcp.example.com:8443".into(),
        ];
        assert!(host_allowed("localhost:3000", &hosts));
        assert!(host_allowed("LOCALHOST", &hosts));
        assert!(host_allowed("[::1]:80", &hosts));
        assert!(host_allowed("mcp.example.com:8443", &hosts));
        assert!(!host_allowed("mcp.example.com", &hosts));
        assert!(!host_allowed("evil.example", &hosts));
        assert!(!host_allowed("localhost.evil.example", &hosts));
        let origins: Vec<String> = vec![
            "http://localhost:*".into(),
            "https://app.example.com".into(),
        ];
        assert!(origin_allowed("http://localhost:6274", &origins));
        assert!(origin_allowed("http://localhost", &origins));
        assert!(origin_allowed("https://app.example.com", &origins));
        assert!(!origin_allowed(
            "http://localhost.evil.example:80",
            &origins
        ));
        assert!(!origin_allowed("http://evil.example", &origins));
        assert!(!origin_allowed("null", &origins));
    }

    #[test]
    fn accept_lists_are_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json; q=0.9, text/event-stream"),
        );
        assert!(accepts(&headers, "application/json"));
        assert!(accepts(&headers, "text/event-stream"));
        assert!(!accepts(&headers, "text/html"));
    }
}
