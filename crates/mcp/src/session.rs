//! One client session: its upstream connections (one per server, owned by the session and ended
//! with it, S1), its streams, the member's tool access (S7), and the routing of everything that
//! crosses the gateway: requests to the right upstream under the gateway's own ids, progress and
//! logging back to the stream of the call that caused them, upstream requests (sampling,
//! elicitation, roots) to the client when it declared the capability.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use auth::tool_access::{MemberToolAccess, NAME_SEPARATOR};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::audit::{
    AuditEvent, AuditMethod, AuditOutcome, AuditServer, MAX_TARGET_BYTES, bounded, gateway_reason,
    is_error_result, json_size, redact_uri,
};
use crate::gateway::Runtime;
use crate::jsonrpc::{
    INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, Kind, METHOD_NOT_FOUND, Message, Object,
    REQUEST_TIMEOUT, RESOURCE_NOT_FOUND, RpcError,
};
use crate::launcher::LaunchLabel;
use crate::stream::EventStream;
use crate::upstream::{
    Connection, Exposure, ListKind, OpenContext, UpstreamError, UpstreamEvents, UpstreamSpec, lock,
};

/// Who opened a session; every later request must come from the same token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOwner {
    /// The organization's id.
    pub org: String,
    /// The member's user id.
    pub user: String,
    /// The id of the token the session was opened with.
    pub token: String,
    /// The member's role when the session opened; a role change ends the session.
    pub role: auth::Role,
}

/// What a session starts with: the servers the organization has enabled and the member's access.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// Enabled servers, in display order.
    pub servers: Vec<UpstreamSpec>,
    /// The member's tool access rules.
    pub access: MemberToolAccess,
}

/// A session's state as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// The member's user id.
    pub user: String,
    /// Seconds since the session started.
    pub age_seconds: u64,
    /// Seconds since the client last did something.
    pub idle_seconds: u64,
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// One entry per server.
    pub upstreams: Vec<UpstreamStatus>,
}

/// One server's connection state in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStatus {
    /// The server's id.
    pub server_id: String,
    /// The server's name.
    pub name: String,
    /// `starting`, `ready` or `failed`.
    pub state: &'static str,
    /// Why it failed.
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
enum SlotState {
    Starting,
    Ready(Arc<Connection>),
    Failed(Arc<str>),
}

/// One server's place in a session.
struct Slot {
    spec: UpstreamSpec,
    /// The server as audit events name it, shared so an event costs no copy of it.
    audit: AuditServer,
    state: watch::Sender<SlotState>,
    session: Weak<Session>,
}

impl Slot {
    /// The connection, waiting while it starts.
    async fn ready(&self, timeout: Duration) -> Result<Arc<Connection>, Arc<str>> {
        if let Some(connection) = self.connection() {
            return Ok(connection);
        }
        let mut state = self.state.subscribe();
        let settled = tokio::time::timeout(
            timeout,
            state.wait_for(|state| !matches!(state, SlotState::Starting)),
        )
        .await;
        match settled {
            Ok(Ok(state)) => match &*state {
                SlotState::Ready(connection) => Ok(connection.clone()),
                SlotState::Failed(reason) => Err(reason.clone()),
                SlotState::Starting => Err(Arc::from("is still starting")),
            },
            Ok(Err(_)) => Err(Arc::from("was removed")),
            Err(_) => Err(Arc::from(format!(
                "did not start within {} s",
                timeout.as_secs()
            ))),
        }
    }

    fn connection(&self) -> Option<Arc<Connection>> {
        match &*self.state.borrow() {
            SlotState::Ready(connection) => Some(connection.clone()),
            _ => None,
        }
    }

    fn fail(&self, reason: &str) {
        let reason: Arc<str> = Arc::from(reason);
        let previous = self.state.send_replace(SlotState::Failed(reason));
        if let SlotState::Ready(connection) = previous {
            connection.close("the session closed it");
        }
    }
}

impl UpstreamEvents for Slot {
    fn message(&self, message: Message, via: Option<u64>) {
        if let Some(session) = self.session.upgrade() {
            session.upstream_message(self, message, via);
        }
    }

    fn closed(&self, reason: &str) {
        let was_ready = matches!(&*self.state.borrow(), SlotState::Ready(_));
        if !was_ready {
            return;
        }
        self.state
            .send_replace(SlotState::Failed(Arc::from(reason)));
        if let Some(session) = self.session.upgrade()
            && !session.ended.is_cancelled()
        {
            tracing::warn!(
                org = %session.owner.org,
                server = %self.spec.name,
                session = %session.tag,
                %reason,
                "upstream server failed; the session goes on without it"
            );
            session.refresh_views_later();
        }
    }
}

/// A request of this session waiting for an upstream's answer.
struct InFlight {
    client_id: Value,
    slot: Weak<Slot>,
    upstream_id: u64,
    stream: Arc<EventStream>,
    client_progress_token: Option<Value>,
    cancel: CancellationToken,
}

/// An upstream's request that was passed to the client, waiting for its answer.
struct Relayed {
    slot: Weak<Slot>,
    upstream_id: Value,
}

/// Fingerprints of the lists last sent to the client, so a change is announced only when the
/// client's own filtered view changed.
type Fingerprints = [Option<u64>; 3];

/// One MCP client session.
pub struct Session {
    pub(crate) id: Arc<str>,
    pub(crate) tag: String,
    pub(crate) owner: SessionOwner,
    pub(crate) version: &'static str,
    client_capabilities: Value,
    runtime: Arc<Runtime>,
    access: RwLock<Arc<MemberToolAccess>>,
    slots: RwLock<Arc<Vec<Arc<Slot>>>>,
    streams: Mutex<HashMap<u64, Arc<EventStream>>>,
    general: Arc<EventStream>,
    inflight: Mutex<HashMap<u64, InFlight>>,
    relayed: Mutex<HashMap<u64, Relayed>>,
    seq: AtomicU64,
    started: Instant,
    last_active_ms: AtomicU64,
    open_streams: AtomicUsize,
    listed: Mutex<Fingerprints>,
    pub(crate) ended: CancellationToken,
    /// Organization, member and session tag as audit events carry them, shared per event.
    audit_who: [Arc<str>; 3],
}

/// Which of a session's servers a resource is looked for among.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Those the member's rules let them use: where a call goes.
    MayUse,
    /// The others: only to tell the audit trail that a refused call was denied.
    MayNotUse,
}

/// What the routing of an audited call learned, for its audit event.
#[derive(Default)]
struct AuditNote {
    server: Option<AuditServer>,
    target: String,
    /// Set where the gateway itself decided the outcome; otherwise the answer decides it.
    verdict: Option<(AuditOutcome, Arc<str>)>,
}

impl AuditNote {
    fn settle(&mut self, outcome: AuditOutcome, reason: impl Into<Arc<str>>) {
        if self.verdict.is_none() {
            self.verdict = Some((outcome, reason.into()));
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tag", &self.tag)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Requests one session may have waiting on upstreams at once (a bound on its memory).
const MAX_IN_FLIGHT: usize = 256;

/// Completed request streams kept for late resumption.
const KEPT_STREAMS: usize = 16;

impl Session {
    /// Creates the session and starts connecting to its servers in the background.
    pub(crate) fn start(
        id: Arc<str>,
        tag: String,
        owner: SessionOwner,
        version: &'static str,
        client_capabilities: Value,
        plan: SessionPlan,
        runtime: Arc<Runtime>,
    ) -> Arc<Session> {
        let general = Arc::new(EventStream::new(0));
        let audit_who = [
            Arc::from(owner.org.as_str()),
            Arc::from(owner.user.as_str()),
            Arc::from(tag.as_str()),
        ];
        let session = Arc::new_cyclic(|weak: &Weak<Session>| Session {
            audit_who,
            id,
            tag,
            owner,
            version,
            client_capabilities,
            runtime,
            access: RwLock::new(Arc::new(plan.access)),
            slots: RwLock::new(Arc::new(
                plan.servers
                    .into_iter()
                    .map(|spec| new_slot(spec, weak.clone()))
                    .collect(),
            )),
            streams: Mutex::new(HashMap::from([(0, general.clone())])),
            general,
            inflight: Mutex::new(HashMap::new()),
            relayed: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(1),
            started: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            open_streams: AtomicUsize::new(0),
            listed: Mutex::new([None; 3]),
            ended: CancellationToken::new(),
        });
        for slot in session.slots().iter() {
            session.connect(slot.clone());
        }
        session
    }

    fn slots(&self) -> Arc<Vec<Arc<Slot>>> {
        self.slots
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn access(&self) -> Arc<MemberToolAccess> {
        self.access
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn connect(self: &Arc<Self>, slot: Arc<Slot>) {
        let session = self.clone();
        tokio::spawn(async move {
            let events: Weak<dyn UpstreamEvents> = Arc::downgrade(&slot) as Weak<Slot>;
            let context = OpenContext {
                launcher: &*session.runtime.launcher,
                credentials: &session.runtime.credentials,
                logs: &session.runtime.logs,
                member: &session.owner.user,
                http: &session.runtime.http,
                limits: &session.runtime.config.upstream,
                label: LaunchLabel {
                    org: session.owner.org.clone(),
                    server: slot.spec.name.clone(),
                    session: session.tag.clone(),
                },
                client_capabilities: session.client_capabilities.clone(),
                protocol_version: session.version,
            };
            let opened = tokio::select! {
                opened = Connection::open(&slot.spec, context, events) => opened,
                () = session.ended.cancelled() => return,
            };
            match opened {
                Ok(connection) => {
                    if session.ended.is_cancelled() {
                        connection.close("the session ended");
                        return;
                    }
                    slot.state.send_replace(SlotState::Ready(connection));
                }
                Err(reason) => {
                    tracing::warn!(
                        org = %session.owner.org,
                        server = %slot.spec.name,
                        session = %session.tag,
                        %reason,
                        "upstream server could not be started; the session goes on without it"
                    );
                    slot.state
                        .send_replace(SlotState::Failed(Arc::from(reason)));
                }
            }
        });
    }

    /// Notes client activity, for the idle timeout.
    pub(crate) fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(now, Ordering::Relaxed);
    }

    /// How long the client has done nothing, and no stream of it is open.
    pub(crate) fn idle_for(&self) -> Duration {
        if self.open_streams.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Counts an open SSE connection until the returned guard drops.
    pub(crate) fn stream_opened(self: &Arc<Self>) -> OpenStream {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        OpenStream {
            session: self.clone(),
        }
    }

    /// Ends the session: every upstream connection (and so every server process) and stream.
    pub(crate) fn end(&self, reason: &str) {
        if self.ended.is_cancelled() {
            return;
        }
        self.ended.cancel();
        tracing::info!(org = %self.owner.org, session = %self.tag, %reason, "session ended");
        for slot in self.slots().iter() {
            slot.fail(reason);
        }
        for (_, call) in lock(&self.inflight).drain() {
            call.cancel.cancel();
        }
        for stream in lock(&self.streams).values() {
            stream.finish();
        }
    }

    /// Ends every connection and waits, briefly, until the processes behind them are gone.
    pub(crate) async fn end_and_wait(&self, reason: &str) {
        let connections: Vec<_> = self
            .slots()
            .iter()
            .filter_map(|slot| slot.connection())
            .collect();
        self.end(reason);
        for connection in connections {
            connection.wait_closed().await;
        }
    }

    /// The state of each upstream, for the API.
    pub(crate) fn status(&self) -> SessionStatus {
        SessionStatus {
            user: self.owner.user.clone(),
            age_seconds: self.started.elapsed().as_secs(),
            idle_seconds: self.idle_for().as_secs(),
            protocol_version: self.version.to_owned(),
            upstreams: self
                .slots()
                .iter()
                .map(|slot| {
                    let (state, reason) = match &*slot.state.borrow() {
                        SlotState::Starting => ("starting", None),
                        SlotState::Ready(_) => ("ready", None),
                        SlotState::Failed(reason) => ("failed", Some(reason.to_string())),
                    };
                    UpstreamStatus {
                        server_id: slot.spec.server_id.clone(),
                        name: slot.spec.name.clone(),
                        state,
                        reason,
                    }
                })
                .collect(),
        }
    }

    /// Replaces the member's tool access and tells the client if its lists changed.
    pub(crate) fn set_access(self: &Arc<Self>, access: MemberToolAccess) {
        *self
            .access
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(access);
        self.refresh_views_later();
    }

    /// Reconciles the session's upstreams with the organization's servers: unchanged ones stay
    /// connected, changed and removed ones end, new and changed ones start.
    pub(crate) fn set_servers(self: &Arc<Self>, servers: Vec<UpstreamSpec>) {
        let current = self.slots();
        let mut next = Vec::with_capacity(servers.len());
        let mut started = Vec::new();
        for spec in servers {
            match current.iter().find(|slot| slot.spec == spec) {
                Some(slot) => next.push(slot.clone()),
                None => {
                    let slot = new_slot(spec, Arc::downgrade(self));
                    started.push(slot.clone());
                    next.push(slot);
                }
            }
        }
        for slot in current.iter() {
            if !next.iter().any(|kept| Arc::ptr_eq(kept, slot)) {
                slot.fail("the server was changed or removed");
            }
        }
        *self
            .slots
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
        for slot in started {
            self.connect(slot);
        }
        self.refresh_views_later();
    }

    /// A new stream for one POSTed request.
    pub(crate) fn open_request_stream(&self) -> Arc<EventStream> {
        let index = self.seq.fetch_add(1, Ordering::Relaxed);
        let stream = Arc::new(EventStream::new(index));
        let mut streams = lock(&self.streams);
        if streams.len() > KEPT_STREAMS {
            let oldest_finished = streams
                .iter()
                .filter(|(index, stream)| **index != 0 && stream.is_finished())
                .map(|(index, _)| *index)
                .min();
            if let Some(oldest) = oldest_finished {
                streams.remove(&oldest);
            }
        }
        streams.insert(index, stream.clone());
        stream
    }

    /// Forgets a request stream whose answer went out as plain JSON.
    pub(crate) fn drop_stream(&self, index: u64) {
        lock(&self.streams).remove(&index);
    }

    /// The stream numbered `index`, for resumption.
    pub(crate) fn stream(&self, index: u64) -> Option<Arc<EventStream>> {
        lock(&self.streams).get(&index).cloned()
    }

    /// The stream for what belongs to no request.
    pub(crate) fn general_stream(&self) -> &Arc<EventStream> {
        &self.general
    }

    /// Answers one client request; `None` when the client cancelled it.
    pub(crate) async fn answer(
        self: &Arc<Self>,
        request: Message,
        stream: &Arc<EventStream>,
    ) -> Option<Message> {
        let id = request.id().cloned().unwrap_or(Value::Null);
        let method = request.method().unwrap_or_default().to_owned();
        if let Some(audited) = AuditMethod::from_method(&method) {
            return self.answer_audited(audited, request, stream).await;
        }
        if let Some(kind) = ListKind::from_list_method(&method) {
            return Some(match self.list(kind, &request).await {
                Ok(result) => Message::result(id, result),
                Err(error) => Message::error(id, &error),
            });
        }
        let outcome = match method.as_str() {
            "ping" => Ok(Some(Message::result(id.clone(), json!({})))),
            "initialize" => Err(RpcError::new(
                INVALID_REQUEST,
                "the session is already initialized; start a new session without Mcp-Session-Id",
            )),
            "resources/subscribe" | "resources/unsubscribe" => {
                self.call_resource(request, stream, &mut AuditNote::default())
                    .await
            }
            "completion/complete" => self.complete(request, stream).await,
            "logging/setLevel" => self
                .set_level(request)
                .await
                .map(|()| Some(Message::result(id.clone(), json!({})))),
            other => Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("method not found: {other}"),
            )),
        };
        match outcome {
            Ok(answer) => answer,
            Err(error) => Some(Message::error(id, &error)),
        }
    }

    /// Answers a `tools/call`, `resources/read` or `prompts/get` and records exactly one audit
    /// event for it, whatever the outcome (S6).
    async fn answer_audited(
        self: &Arc<Self>,
        method: AuditMethod,
        request: Message,
        stream: &Arc<EventStream>,
    ) -> Option<Message> {
        let started = Instant::now();
        let at = SystemTime::now();
        let id = request.id().cloned().unwrap_or(Value::Null);
        let request_bytes = request.params().map_or(0, json_size);
        let mut note = AuditNote::default();
        let outcome = match method {
            AuditMethod::ToolsCall => {
                self.call_named(ListKind::Tools, request, stream, &mut note)
                    .await
            }
            AuditMethod::PromptsGet => {
                self.call_named(ListKind::Prompts, request, stream, &mut note)
                    .await
            }
            AuditMethod::ResourcesRead => self.call_resource(request, stream, &mut note).await,
        };
        let answer = match outcome {
            Ok(answer) => answer,
            Err(error) => Some(Message::error(id, &error)),
        };
        let (outcome, reason) = match note.verdict {
            Some((outcome, reason)) => (outcome, Some(reason)),
            None => match &answer {
                None => (
                    AuditOutcome::Cancelled,
                    Some(Arc::from("cancelled by the client")),
                ),
                Some(answer) => match answer.error_value() {
                    Some(error) => (
                        AuditOutcome::Error,
                        Some(Arc::from(format!(
                            "the server answered with JSON-RPC error {}",
                            error
                                .get("code")
                                .and_then(Value::as_i64)
                                .unwrap_or_default()
                        ))),
                    ),
                    None if method == AuditMethod::ToolsCall
                        && is_error_result(answer.result_value()) =>
                    {
                        (
                            AuditOutcome::Error,
                            Some(Arc::from("the tool reported an error (isError)")),
                        )
                    }
                    None => (AuditOutcome::Ok, None),
                },
            },
        };
        let [org, user, session] = &self.audit_who;
        self.runtime.audit.record(AuditEvent {
            org: org.clone(),
            user: user.clone(),
            session: session.clone(),
            server: note.server,
            method,
            target: note.target,
            outcome,
            reason,
            latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            request_bytes,
            response_bytes: answer
                .as_ref()
                .map_or(0, |answer| json_size(answer.as_object())),
            at,
        });
        answer
    }

    /// Handles a client notification.
    pub(crate) async fn client_notification(&self, notification: Message) {
        match notification.method().unwrap_or_default() {
            "notifications/cancelled" => {
                let Some(request_id) = notification.params().and_then(|p| p.get("requestId"))
                else {
                    return;
                };
                for call in lock(&self.inflight).values() {
                    if &call.client_id == request_id {
                        call.cancel.cancel();
                    }
                }
            }
            "notifications/roots/list_changed" => {
                for slot in self.slots().iter() {
                    if let Some(connection) = slot.connection() {
                        connection
                            .notify("notifications/roots/list_changed", None)
                            .await;
                    }
                }
            }
            _ => {}
        }
    }

    /// Passes the client's answer to an upstream's request back to that upstream.
    pub(crate) async fn client_response(&self, mut response: Message) {
        let Some(id) = response.id().and_then(Value::as_u64) else {
            return;
        };
        let Some(relayed) = lock(&self.relayed).remove(&id) else {
            return;
        };
        let Some(connection) = relayed.slot.upgrade().and_then(|slot| slot.connection()) else {
            return;
        };
        response.set_id(relayed.upstream_id);
        connection.send(response, None).await;
    }

    async fn list(&self, kind: ListKind, request: &Message) -> Result<Value, RpcError> {
        let items = self.view(kind).await;
        if kind != ListKind::ResourceTemplates {
            let slot = fingerprint_slot(kind);
            lock(&self.listed)[slot] = Some(fingerprint(&items));
        }
        let page_size = self.runtime.config.list_page_size;
        let offset = match request.params().and_then(|p| p.get("cursor")) {
            None | Some(Value::Null) => 0,
            Some(Value::String(cursor)) => cursor
                .strip_prefix("o")
                .and_then(|offset| offset.parse::<usize>().ok())
                .filter(|offset| *offset <= items.len())
                .ok_or_else(|| {
                    RpcError::new(INVALID_PARAMS, format!("invalid cursor {cursor:?}"))
                })?,
            Some(_) => return Err(RpcError::new(INVALID_PARAMS, "cursor must be a string")),
        };
        let end = (offset + page_size).min(items.len());
        let mut result = Object::new();
        result.insert(kind.key().into(), Value::Array(items[offset..end].to_vec()));
        if end < items.len() {
            result.insert("nextCursor".into(), Value::String(format!("o{end}")));
        }
        Ok(Value::Object(result))
    }

    /// The member's view of one list: every ready upstream's items the rules allow, renamed.
    async fn view(&self, kind: ListKind) -> Vec<Value> {
        let slots = self.slots();
        let access = self.access();
        let unprefixed = is_unprefixed(&slots);
        let timeouts = &self.runtime.config;
        let lists = futures_util::future::join_all(slots.iter().map(|slot| async move {
            let connection = slot.ready(timeouts.upstream.start_timeout).await.ok()?;
            match connection.catalog(kind, timeouts.call_timeout).await {
                Ok(items) => Some(items),
                Err(error) => {
                    tracing::warn!(server = %slot.spec.name, %error, list = kind.method(), "upstream list failed");
                    None
                }
            }
        }))
        .await;
        let mut view = Vec::new();
        for (slot, items) in slots.iter().zip(lists) {
            let Some(items) = items else { continue };
            let server = slot.spec.name.as_str();
            match kind {
                ListKind::Tools | ListKind::Prompts => {
                    for item in items.iter() {
                        let Some(name) = item.get("name").and_then(Value::as_str) else {
                            continue;
                        };
                        let canonical = canonical_name(server, name);
                        if !access.allows(&canonical) {
                            continue;
                        }
                        let mut item = item.clone();
                        if !unprefixed {
                            item.insert("name".into(), Value::String(canonical));
                        }
                        view.push(Value::Object(item));
                    }
                }
                ListKind::Resources | ListKind::ResourceTemplates => {
                    if access.allows_whole_server(server) {
                        view.extend(items.iter().cloned().map(Value::Object));
                    }
                }
            }
        }
        view
    }

    /// Finds the slot and the upstream's own name for an exposed tool or prompt name.
    fn resolve(&self, exposed: &str) -> Option<(Arc<Slot>, String, String)> {
        let slots = self.slots();
        if is_unprefixed(&slots) {
            let slot = slots.first()?.clone();
            let canonical = canonical_name(&slot.spec.name, exposed);
            return Some((slot, exposed.to_owned(), canonical));
        }
        let (server, name) = exposed.split_once(NAME_SEPARATOR)?;
        let slot = slots.iter().find(|slot| slot.spec.name == server)?.clone();
        Some((slot, name.to_owned(), exposed.to_owned()))
    }

    /// `tools/call` and `prompts/get`: checks the rules, then forwards under the upstream's name.
    async fn call_named(
        self: &Arc<Self>,
        kind: ListKind,
        mut request: Message,
        stream: &Arc<EventStream>,
        note: &mut AuditNote,
    ) -> Result<Option<Message>, RpcError> {
        let what = if kind == ListKind::Tools {
            "tool"
        } else {
            "prompt"
        };
        let Some(exposed) = request
            .params()
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            note.settle(AuditOutcome::Unknown, "the request named no tool or prompt");
            return Err(RpcError::new(
                INVALID_PARAMS,
                format!("params.name (the {what} to use) is missing"),
            ));
        };
        // A forbidden name answers exactly like a name that does not exist (S7).
        let unknown = || RpcError::new(INVALID_PARAMS, format!("Unknown {what}: {exposed}"));
        let resolved = self.resolve(&exposed);
        note.target = bounded(&exposed, MAX_TARGET_BYTES).to_owned();
        let Some((slot, name, canonical)) = resolved else {
            note.settle(
                AuditOutcome::Unknown,
                "no server of the session has this name",
            );
            return Err(unknown());
        };
        note.server = Some(slot.audit.clone());
        let access = self.access();
        let Some(_permit) = access.permit(&canonical) else {
            // The client hears "unknown"; the audit trail tells the operator the truth.
            note.settle(AuditOutcome::Denied, "denied by the member's tool rules");
            return Err(unknown());
        };
        let connection = match slot.ready(self.runtime.config.upstream.start_timeout).await {
            Ok(connection) => connection,
            Err(reason) => {
                note.settle(AuditOutcome::Failed, gateway_reason(&reason));
                return Err(upstream_failure(
                    &slot.spec.name,
                    &UpstreamError::Closed(reason),
                ));
            }
        };
        let catalog = match connection
            .catalog(kind, self.runtime.config.call_timeout)
            .await
        {
            Ok(catalog) => catalog,
            Err(error) => {
                note.settle(AuditOutcome::Failed, gateway_reason(&error.to_string()));
                return Err(upstream_failure(&slot.spec.name, &error));
            }
        };
        if !catalog.contains(&name) {
            note.settle(
                AuditOutcome::Unknown,
                format!("the server has no such {what}"),
            );
            return Err(unknown());
        }
        if let Some(params) = request.params_mut() {
            params.insert("name".into(), Value::String(name));
        }
        Ok(self
            .forward(&slot, &connection, request, stream, note)
            .await)
    }

    /// `resources/*`: routes by URI to the server that lists it or has a template matching it.
    async fn call_resource(
        self: &Arc<Self>,
        request: Message,
        stream: &Arc<EventStream>,
        note: &mut AuditNote,
    ) -> Result<Option<Message>, RpcError> {
        let Some(uri) = request
            .params()
            .and_then(|p| p.get("uri"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            note.settle(AuditOutcome::Unknown, "the request named no resource");
            return Err(RpcError::new(INVALID_PARAMS, "params.uri is missing"));
        };
        note.target = bounded(redact_uri(&uri), MAX_TARGET_BYTES).to_owned();
        let not_found = || {
            let mut error = RpcError::new(RESOURCE_NOT_FOUND, format!("Resource not found: {uri}"));
            error.data = Some(json!({ "uri": uri }));
            error
        };
        let Some((slot, connection)) = self.route_uri(&uri, Reach::MayUse).await else {
            // As for tools: the client hears "not found" either way, the audit trail tells
            // whether a server the member may not use has it.
            match self.route_uri(&uri, Reach::MayNotUse).await {
                Some((slot, _)) => {
                    note.server = Some(slot.audit.clone());
                    note.settle(AuditOutcome::Denied, "denied by the member's tool rules");
                }
                None => note.settle(AuditOutcome::Unknown, "no server of the session has it"),
            }
            return Err(not_found());
        };
        note.server = Some(slot.audit.clone());
        Ok(self
            .forward(&slot, &connection, request, stream, note)
            .await)
    }

    /// The server that serves `uri` among those the member may use, or, for the audit trail,
    /// among those the member may not use.
    async fn route_uri(&self, uri: &str, reach: Reach) -> Option<(Arc<Slot>, Arc<Connection>)> {
        let access = self.access();
        let timeout = self.runtime.config.call_timeout;
        let mut eligible = Vec::new();
        for slot in self.slots().iter() {
            let may_use = access.allows_whole_server(&slot.spec.name);
            if may_use != (reach == Reach::MayUse) {
                continue;
            }
            if let Ok(connection) = slot.ready(self.runtime.config.upstream.start_timeout).await {
                eligible.push((slot.clone(), connection));
            }
        }
        for (slot, connection) in &eligible {
            let Ok(listed) = connection.catalog(ListKind::Resources, timeout).await else {
                continue;
            };
            if listed.contains(uri) {
                return Some((slot.clone(), connection.clone()));
            }
        }
        for (slot, connection) in &eligible {
            let Ok(templates) = connection
                .catalog(ListKind::ResourceTemplates, timeout)
                .await
            else {
                continue;
            };
            if templates.iter().any(|item| {
                item.get("uriTemplate")
                    .and_then(Value::as_str)
                    .is_some_and(|template| template_matches(template, uri))
            }) {
                return Some((slot.clone(), connection.clone()));
            }
        }
        // A server may serve URIs it does not list (dynamic resources); with one candidate, ask it.
        if reach == Reach::MayUse && eligible.len() == 1 {
            return eligible.pop();
        }
        None
    }

    /// `completion/complete`: routes by the prompt name or resource template in `ref`.
    async fn complete(
        self: &Arc<Self>,
        mut request: Message,
        stream: &Arc<EventStream>,
    ) -> Result<Option<Message>, RpcError> {
        let reference = request
            .params()
            .and_then(|p| p.get("ref"))
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| RpcError::new(INVALID_PARAMS, "params.ref is missing"))?;
        match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let exposed = reference
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| RpcError::new(INVALID_PARAMS, "params.ref.name is missing"))?;
                let unknown =
                    || RpcError::new(INVALID_PARAMS, format!("Unknown prompt: {exposed}"));
                let (slot, name, canonical) = self.resolve(exposed).ok_or_else(unknown)?;
                if self.access().permit(&canonical).is_none() {
                    return Err(unknown());
                }
                let connection = slot
                    .ready(self.runtime.config.upstream.start_timeout)
                    .await
                    .map_err(|reason| {
                        upstream_failure(&slot.spec.name, &UpstreamError::Closed(reason))
                    })?;
                if let Some(Value::Object(reference)) =
                    request.params_mut().and_then(|p| p.get_mut("ref"))
                {
                    reference.insert("name".into(), Value::String(name));
                }
                Ok(self
                    .forward(
                        &slot,
                        &connection,
                        request,
                        stream,
                        &mut AuditNote::default(),
                    )
                    .await)
            }
            Some("ref/resource") => {
                let uri = reference
                    .get("uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| RpcError::new(INVALID_PARAMS, "params.ref.uri is missing"))?;
                let mut found = None;
                for slot in self.slots().iter() {
                    if !self.access().allows_whole_server(&slot.spec.name) {
                        continue;
                    }
                    let Ok(connection) =
                        slot.ready(self.runtime.config.upstream.start_timeout).await
                    else {
                        continue;
                    };
                    let templates = connection
                        .catalog(
                            ListKind::ResourceTemplates,
                            self.runtime.config.call_timeout,
                        )
                        .await
                        .unwrap_or_default();
                    let matches =
                        templates.iter().any(|item| {
                            item.get("uriTemplate").and_then(Value::as_str).is_some_and(
                                |template| template == uri || template_matches(template, uri),
                            )
                        });
                    if matches {
                        found = Some((slot.clone(), connection));
                        break;
                    }
                }
                let (slot, connection) = found.ok_or_else(|| {
                    RpcError::new(RESOURCE_NOT_FOUND, format!("Resource not found: {uri}"))
                })?;
                Ok(self
                    .forward(
                        &slot,
                        &connection,
                        request,
                        stream,
                        &mut AuditNote::default(),
                    )
                    .await)
            }
            _ => Err(RpcError::new(
                INVALID_PARAMS,
                "params.ref.type must be \"ref/prompt\" or \"ref/resource\"",
            )),
        }
    }

    async fn set_level(&self, request: Message) -> Result<(), RpcError> {
        let params = request.params().cloned().map(Value::Object);
        let timeout = self.runtime.config.call_timeout;
        let slots = self.slots();
        let mut asks = Vec::new();
        for slot in slots.iter() {
            if let Ok(connection) = slot.ready(self.runtime.config.upstream.start_timeout).await
                && connection.has_capability("logging")
            {
                let params = params.clone();
                asks.push(async move {
                    let _ = connection
                        .request("logging/setLevel", params, timeout)
                        .await;
                });
            }
        }
        futures_util::future::join_all(asks).await;
        Ok(())
    }

    /// Sends a client request to an upstream under the gateway's id, with progress remapped,
    /// and gives back the answer under the client's id; `note` learns of the gateway's failures.
    async fn forward(
        &self,
        slot: &Arc<Slot>,
        connection: &Arc<Connection>,
        mut request: Message,
        stream: &Arc<EventStream>,
        note: &mut AuditNote,
    ) -> Option<Message> {
        let client_id = request.id().cloned().unwrap_or(Value::Null);
        let method = request.method().unwrap_or_default().to_owned();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut client_progress_token = None;
        if let Some(meta) = request
            .params_mut()
            .and_then(|p| p.get_mut("_meta"))
            .and_then(Value::as_object_mut)
            && let Some(token) = meta.get_mut("progressToken")
        {
            client_progress_token = Some(std::mem::replace(token, Value::from(seq)));
        }
        if lock(&self.inflight).len() >= MAX_IN_FLIGHT {
            note.settle(
                AuditOutcome::Failed,
                "the session had too many requests in flight",
            );
            let error = RpcError::new(
                INTERNAL_ERROR,
                format!(
                    "the session already has {MAX_IN_FLIGHT} requests in flight; wait for some to finish"
                ),
            );
            return Some(Message::error(client_id, &error));
        }
        let params = request.take_params();
        let pending = match connection.start(&method, params).await {
            Ok(pending) => pending,
            Err(error) => {
                note.settle(AuditOutcome::Failed, gateway_reason(&error.to_string()));
                return Some(Message::error(
                    client_id,
                    &upstream_failure(&slot.spec.name, &error),
                ));
            }
        };
        let upstream_id = pending.id();
        let cancel = CancellationToken::new();
        lock(&self.inflight).insert(
            seq,
            InFlight {
                client_id: client_id.clone(),
                slot: Arc::downgrade(slot),
                upstream_id,
                stream: stream.clone(),
                client_progress_token,
                cancel: cancel.clone(),
            },
        );
        let outcome = tokio::select! {
            answer = connection.finish(pending, self.runtime.config.call_timeout) => Some(answer),
            () = cancel.cancelled() => None,
        };
        lock(&self.inflight).remove(&seq);
        match outcome {
            None => {
                connection
                    .forget(upstream_id, "cancelled by the client")
                    .await;
                None
            }
            Some(Ok(mut answer)) => {
                answer.set_id(client_id);
                Some(answer)
            }
            Some(Err(error)) => {
                note.settle(AuditOutcome::Failed, gateway_reason(&error.to_string()));
                Some(Message::error(
                    client_id,
                    &upstream_failure(&slot.spec.name, &error),
                ))
            }
        }
    }

    /// Routes one message an upstream sent on its own.
    fn upstream_message(self: Arc<Self>, slot: &Slot, mut message: Message, via: Option<u64>) {
        let method = message.method().unwrap_or_default().to_owned();
        if message.kind() == Kind::Notification {
            if method == "notifications/progress" {
                let token = message
                    .params()
                    .and_then(|p| p.get("progressToken"))
                    .and_then(Value::as_u64);
                let target = token.and_then(|token| {
                    lock(&self.inflight)
                        .get(&token)
                        .map(|call| (call.stream.clone(), call.client_progress_token.clone()))
                });
                if let Some((stream, Some(client_token))) = target {
                    if let Some(params) = message.params_mut() {
                        params.insert("progressToken".into(), client_token);
                    }
                    stream.push(&message, false);
                }
                return;
            }
            if let Some(kind) = ListKind::from_changed_notification(&method) {
                if let Some(connection) = slot.connection() {
                    connection.invalidate(kind);
                    if kind == ListKind::Resources {
                        connection.invalidate(ListKind::ResourceTemplates);
                    }
                }
                self.refresh_views_later();
                return;
            }
            if method == "notifications/cancelled" {
                // The upstream withdrew a request it had passed to the client.
                let upstream_id = message.params().and_then(|p| p.get("requestId")).cloned();
                let ours = upstream_id.and_then(|upstream_id| {
                    let mut relayed = lock(&self.relayed);
                    let ours = relayed.iter().find_map(|(ours, r)| {
                        (r.upstream_id == upstream_id && std::ptr::eq(r.slot.as_ptr(), slot))
                            .then_some(*ours)
                    })?;
                    relayed.remove(&ours);
                    Some(ours)
                });
                if let (Some(ours), Some(params)) = (ours, message.params_mut()) {
                    params.insert("requestId".into(), Value::from(ours));
                    self.general.push(&message, false);
                }
                return;
            }
            if method == "notifications/resources/updated" {
                self.general.push(&message, false);
                return;
            }
            self.stream_for(slot, via).push(&message, false);
            return;
        }
        // A request from the upstream.
        let upstream_id = message.id().cloned().unwrap_or(Value::Null);
        if method == "ping" {
            self.reply_upstream(slot, Message::result(upstream_id, json!({})));
            return;
        }
        let needed = match method.as_str() {
            "sampling/createMessage" => Some("sampling"),
            "elicitation/create" => Some("elicitation"),
            "roots/list" => Some("roots"),
            _ => None,
        };
        if let Some(capability) = needed {
            let declared = self
                .client_capabilities
                .get(capability)
                .is_some_and(|value| !value.is_null());
            if !declared {
                let error = RpcError::new(
                    METHOD_NOT_FOUND,
                    format!("the client did not declare the {capability} capability"),
                );
                self.reply_upstream(slot, Message::error(upstream_id, &error));
                return;
            }
        }
        let ours = self.seq.fetch_add(1, Ordering::Relaxed);
        let slot_ref = self
            .slots()
            .iter()
            .find(|candidate| std::ptr::eq(Arc::as_ptr(candidate), slot))
            .map(Arc::downgrade)
            .unwrap_or_default();
        lock(&self.relayed).insert(
            ours,
            Relayed {
                slot: slot_ref,
                upstream_id,
            },
        );
        message.set_id(Value::from(ours));
        self.stream_for(slot, via).push(&message, false);
    }

    /// Where an upstream's message belongs: the call whose HTTP stream carried it, else the one
    /// call in flight on that upstream (or the newest), else the general stream.
    fn stream_for(&self, slot: &Slot, via: Option<u64>) -> Arc<EventStream> {
        let inflight = lock(&self.inflight);
        let mut newest: Option<(u64, &InFlight)> = None;
        for (seq, call) in inflight.iter() {
            if !std::ptr::eq(call.slot.as_ptr(), slot) {
                continue;
            }
            if via == Some(call.upstream_id) {
                return call.stream.clone();
            }
            if newest.is_none_or(|(newest_seq, _)| *seq > newest_seq) {
                newest = Some((*seq, call));
            }
        }
        newest.map_or_else(|| self.general.clone(), |(_, call)| call.stream.clone())
    }

    fn reply_upstream(&self, slot: &Slot, message: Message) {
        if let Some(connection) = slot.connection() {
            tokio::spawn(async move { connection.send(message, None).await });
        }
    }

    /// Recomputes the client's lists in the background and announces those that changed.
    pub(crate) fn refresh_views_later(self: &Arc<Self>) {
        let session = self.clone();
        tokio::spawn(async move {
            for kind in [ListKind::Tools, ListKind::Prompts, ListKind::Resources] {
                if session.ended.is_cancelled() {
                    return;
                }
                let slot = fingerprint_slot(kind);
                let Some(before) = lock(&session.listed)[slot] else {
                    continue;
                };
                let now = fingerprint(&session.view(kind).await);
                if now != before {
                    lock(&session.listed)[slot] = Some(now);
                    let method = match kind {
                        ListKind::Tools => "notifications/tools/list_changed",
                        ListKind::Prompts => "notifications/prompts/list_changed",
                        _ => "notifications/resources/list_changed",
                    };
                    session
                        .general
                        .push(&Message::notification(method, None), false);
                }
            }
        });
    }
}

/// Decrements the session's open-stream count when an SSE connection ends.
pub(crate) struct OpenStream {
    session: Arc<Session>,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.session.open_streams.fetch_sub(1, Ordering::Relaxed);
        self.session.touch();
    }
}

fn new_slot(spec: UpstreamSpec, session: Weak<Session>) -> Arc<Slot> {
    Arc::new(Slot {
        audit: AuditServer {
            id: Arc::from(spec.server_id.as_str()),
            name: Arc::from(spec.name.as_str()),
        },
        spec,
        state: watch::Sender::new(SlotState::Starting),
        session,
    })
}

fn is_unprefixed(slots: &[Arc<Slot>]) -> bool {
    slots.len() == 1 && slots[0].spec.exposure == Exposure::Unprefixed
}

/// `server__name`, the name access rules are written against.
pub fn canonical_name(server: &str, name: &str) -> String {
    let mut canonical = String::with_capacity(server.len() + NAME_SEPARATOR.len() + name.len());
    canonical.push_str(server);
    canonical.push_str(NAME_SEPARATOR);
    canonical.push_str(name);
    canonical
}

fn fingerprint_slot(kind: ListKind) -> usize {
    match kind {
        ListKind::Tools => 0,
        ListKind::Prompts => 1,
        ListKind::Resources | ListKind::ResourceTemplates => 2,
    }
}

fn fingerprint(items: &[Value]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for item in items {
        item.to_string().hash(&mut hasher);
    }
    hasher.finish()
}

/// The JSON-RPC error a client gets when an upstream fails: it names the server and the reason.
fn upstream_failure(server: &str, error: &UpstreamError) -> RpcError {
    let code = match error {
        UpstreamError::Timeout(_) => REQUEST_TIMEOUT,
        UpstreamError::Closed(_) => INTERNAL_ERROR,
    };
    RpcError {
        code,
        message: format!("server {server} {error}"),
        data: Some(json!({ "server": server, "reason": error.to_string() })),
    }
}

/// Whether `uri` fits an RFC 6570 template, treating each `{...}` as one or more characters.
pub fn template_matches(template: &str, uri: &str) -> bool {
    let mut rest = uri;
    let mut parts = template.split('{');
    let Some(head) = parts.next() else {
        return false;
    };
    let Some(after_head) = rest.strip_prefix(head) else {
        return false;
    };
    rest = after_head;
    let mut pieces = Vec::new();
    for part in parts {
        let Some((_, literal)) = part.split_once('}') else {
            return false;
        };
        pieces.push(literal);
    }
    for (index, literal) in pieces.iter().enumerate() {
        let is_last = index + 1 == pieces.len();
        if literal.is_empty() {
            if is_last {
                return !rest.is_empty();
            }
            continue;
        }
        let found = if is_last {
            rest.rfind(literal)
                .filter(|at| at + literal.len() == rest.len())
        } else {
            rest.find(literal)
        };
        match found {
            Some(at) if at > 0 => rest = &rest[at + literal.len()..],
            _ => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    fn templates_match_uris() {
        assert!(template_matches(
            "test://template/{id}/data",
            "test://template/42/data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template//data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://other/42/data"
        ));
        assert!(template_matches("file:///{path}", "file:///etc/hosts"));
        assert!(!template_matches("file:///{path}", "file:///"));
        assert!(template_matches("test://static", "test://static"));
        assert!(!template_matches("test://static", "test://static2"));
        assert!(template_matches("a://{x}-{y}", "a://1-2"));
    }
}
