//! One connection from one client session to one upstream MCP server: the gateway is the MCP
//! client here. It owns the upstream's process or remote session, matches answers to requests by
//! the gateway's own ids, caches the upstream's lists, and reports everything else to the session.
//!
//! A connection ends for one reason, recorded once: the server exited, wrote something that is not
//! JSON-RPC or over the size bound, its remote session ended, or the session closed it. Ending it
//! fails the calls in flight with that reason and ends the server's process.

mod http;
mod stdio;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{OnceCell, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

pub use self::http::{HttpClients, SsrfError, check_destination};
use crate::credentials::{CredentialTarget, Credentials, OpenedSecrets, Template};
use crate::jsonrpc::{Kind, Message, Object};
use crate::launcher::{Injection, LaunchLabel, Launcher, StdioCommand};
use crate::protocol;

/// One server a session should connect to, as the control plane registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// The server's id in the store.
    pub server_id: String,
    /// The server's name: the prefix of its tools' canonical names.
    pub name: String,
    /// Bumped on every change; a session reconnects when it moves.
    pub revision: i64,
    /// Whether its tools are shown with or without the `name__` prefix.
    pub exposure: Exposure,
    /// How to reach it.
    pub transport: UpstreamTransport,
}

/// Whether a server's names are prefixed in the organization's aggregated lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// `server__tool`, the default.
    Prefixed,
    /// `tool`, allowed only for an organization's only enabled server.
    Unprefixed,
}

/// How to reach an upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTransport {
    /// A local program speaking newline-delimited JSON-RPC on its stdio, started through the launcher.
    Stdio(StdioCommand),
    /// A remote Streamable HTTP endpoint.
    StreamableHttp {
        /// Its URL.
        url: String,
        /// An admin allowed private, loopback and link-local destinations for it.
        internal: bool,
        /// Headers sent on every request, rendered with their secrets when a session connects.
        headers: Vec<(String, Template)>,
        /// Whether every request carries an OAuth access token for the session's member.
        oauth: bool,
    },
    /// A server that cannot run now (its package is still installing, say): every session
    /// that has it fails it at once with `reason`.
    Unavailable {
        /// Why, in words for the client and the session status.
        reason: String,
    },
}

/// Which of an upstream's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `tools/list`.
    Tools,
    /// `prompts/list`.
    Prompts,
    /// `resources/list`.
    Resources,
    /// `resources/templates/list`.
    ResourceTemplates,
}

impl ListKind {
    /// Every list, in the order of the catalog array.
    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ];

    /// The list method.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
        }
    }

    /// The key holding the items in the list result.
    pub fn key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The server capability that announces the list.
    fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::ResourceTemplates => "resources",
        }
    }

    /// The list a `*/list` method asks for.
    pub fn from_list_method(method: &str) -> Option<Self> {
        ListKind::ALL
            .into_iter()
            .find(|kind| kind.method() == method)
    }

    /// The notification an upstream sends when the list changed.
    pub fn from_changed_notification(method: &str) -> Option<Self> {
        match method {
            "notifications/tools/list_changed" => Some(ListKind::Tools),
            "notifications/prompts/list_changed" => Some(ListKind::Prompts),
            "notifications/resources/list_changed" => Some(ListKind::Resources),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Bounds and settings every connection applies.
#[derive(Debug, Clone)]
pub struct UpstreamLimits {
    /// Largest message accepted from an upstream, in bytes.
    pub max_message_bytes: usize,
    /// How long the upstream may take to start and answer `initialize`.
    pub start_timeout: Duration,
    /// Most pages followed when reading one list.
    pub max_list_pages: usize,
}

/// What opening a connection needs from the session.
pub(crate) struct OpenContext<'a> {
    pub launcher: &'a dyn Launcher,
    /// Opens the server's secrets when it starts, and its OAuth tokens.
    pub credentials: &'a Arc<dyn Credentials>,
    /// The session's member, whose credentials a per-member server uses.
    pub member: &'a str,
    /// Where stdio servers' stderr and launcher events go.
    pub logs: &'a Arc<dyn crate::logs::ServerLogSink>,
    pub http: &'a HttpClients,
    pub limits: &'a UpstreamLimits,
    pub label: LaunchLabel,
    /// The client's capabilities, declared to the upstream as the gateway's own so it may ask
    /// for sampling, elicitation and roots that the gateway routes back to the client.
    pub client_capabilities: Value,
    pub protocol_version: &'static str,
}

/// Receives what an upstream sends that is not an answer to the gateway.
pub(crate) trait UpstreamEvents: Send + Sync {
    /// A request or notification; `via` names the gateway request whose HTTP stream carried it.
    fn message(&self, message: Message, via: Option<u64>);
    /// The connection ended for `reason`.
    fn closed(&self, reason: &str);
}

/// Why an upstream request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The connection ended.
    #[error("{0}")]
    Closed(Arc<str>),
    /// No answer in time.
    #[error("did not answer within {} s", .0.as_secs_f32())]
    Timeout(Duration),
}

/// The part of a connection its I/O tasks share.
pub(crate) struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Message>>>,
    closed: Mutex<Option<Arc<str>>>,
    events: Weak<dyn UpstreamEvents>,
    cancel: CancellationToken,
    /// Cancelled once the server behind the connection is gone.
    gone: CancellationToken,
}

impl Shared {
    /// Routes one message from the upstream: answers to their waiting request, the rest to the session.
    pub(crate) fn deliver(&self, message: Message, via: Option<u64>) {
        if message.kind() == Kind::Response {
            let waiting = message
                .id()
                .and_then(Value::as_u64)
                .and_then(|id| lock(&self.pending).remove(&id));
            if let Some(waiting) = waiting {
                let _ = waiting.send(message);
            }
            return;
        }
        if let Some(events) = self.events.upgrade() {
            events.message(message, via);
        }
    }

    /// Ends the connection for `reason`, once; later reasons are ignored.
    pub(crate) fn close(&self, reason: impl Into<Arc<str>>) {
        let reason = {
            let mut closed = lock(&self.closed);
            if closed.is_some() {
                return;
            }
            let reason: Arc<str> = reason.into();
            *closed = Some(reason.clone());
            reason
        };
        // Dropping the senders wakes every waiting call with the reason.
        lock(&self.pending).clear();
        self.cancel.cancel();
        if let Some(events) = self.events.upgrade() {
            events.closed(&reason);
        }
    }

    fn closed_reason(&self) -> Option<Arc<str>> {
        lock(&self.closed).clone()
    }

    fn closed_error(&self) -> UpstreamError {
        UpstreamError::Closed(
            self.closed_reason()
                .unwrap_or_else(|| Arc::from("the connection ended")),
        )
    }
}

/// Locks a mutex, recovering the data if a holder panicked (nothing here leaves it half-written).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

enum Link {
    Stdio(Arc<stdio::Stdin>),
    Http(Arc<http::HttpLink>),
}

type Catalog = Arc<OnceCell<Arc<Listing>>>;

/// One upstream list, read whole, with its items' identifying keys (tool and prompt names,
/// resource URIs) indexed: every call checks that the name it forwards is listed.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    items: Vec<Object>,
    keys: std::collections::HashSet<String>,
}

impl Listing {
    fn new(kind: ListKind, items: Vec<Object>) -> Self {
        let field = match kind {
            ListKind::Tools | ListKind::Prompts => Some("name"),
            ListKind::Resources => Some("uri"),
            ListKind::ResourceTemplates => None,
        };
        let keys = field
            .map(|field| {
                items
                    .iter()
                    .filter_map(|item| item.get(field).and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Listing { items, keys }
    }

    /// Whether an item has this name (tools, prompts) or URI (resources).
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }
}

impl std::ops::Deref for Listing {
    type Target = [Object];

    fn deref(&self) -> &[Object] {
        &self.items
    }
}

/// A live connection to one upstream, owned by one session.
pub struct Connection {
    shared: Arc<Shared>,
    link: Link,
    next_id: AtomicU64,
    initialize: Object,
    catalogs: [Mutex<Catalog>; 4],
    max_list_pages: usize,
    _ends_server: DropGuard,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

/// A request sent upstream whose answer has not arrived yet.
pub(crate) struct Pending {
    id: u64,
    answer: oneshot::Receiver<Message>,
}

impl Pending {
    /// The gateway's id for the request, as the upstream sees it.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Connection {
    /// Starts or reaches the server, and completes the `initialize` handshake.
    pub(crate) async fn open(
        spec: &UpstreamSpec,
        context: OpenContext<'_>,
        events: Weak<dyn UpstreamEvents>,
    ) -> Result<Arc<Connection>, String> {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            closed: Mutex::new(None),
            events,
            cancel: cancel.clone(),
            gone: CancellationToken::new(),
        });
        let target = CredentialTarget {
            org: &context.label.org,
            server_id: &spec.server_id,
            member: context.member,
        };
        let link = match &spec.transport {
            UpstreamTransport::Stdio(command) => {
                let mut names: Vec<String> = command
                    .env
                    .iter()
                    .flat_map(|(_, value)| value.secrets())
                    .chain(command.files.iter().map(|file| file.variable.as_str()))
                    .map(str::to_owned)
                    .collect();
                names.sort_unstable();
                names.dedup();
                let opened = open_secrets(context.credentials, target, &names).await?;
                let injection = inject(command, &opened)?;
                // The redactor learns the values of the secrets in the server's environment:
                // those are what it could echo (S18). File contents are not matched.
                let env_secrets: Vec<&str> = command
                    .env
                    .iter()
                    .flat_map(|(_, value)| value.secrets())
                    .collect();
                let redactor = redact::Redactor::new(
                    opened.iter().filter(|(name, _)| env_secrets.contains(name)),
                )
                .map_err(|error| format!("its log redactor could not be built: {error}"))?;
                // The launcher owns the only rendered copies now; ours go when `opened` drops.
                drop(opened);
                let launched = context
                    .launcher
                    .launch(command, injection, &context.label)
                    .await
                    .map_err(|error| error.to_string())?;
                Link::Stdio(stdio::spawn(
                    launched,
                    shared.clone(),
                    context.limits.max_message_bytes,
                    stdio::ServerLog {
                        sink: context.logs.clone(),
                        redactor: Arc::new(redactor),
                        org: context.label.org.clone(),
                        server_id: spec.server_id.clone(),
                        session: context.label.session.clone(),
                    },
                ))
            }
            UpstreamTransport::StreamableHttp {
                url,
                internal,
                headers,
                oauth,
            } => {
                let mut names: Vec<String> = headers
                    .iter()
                    .flat_map(|(_, value)| value.secrets())
                    .map(str::to_owned)
                    .collect();
                names.sort_unstable();
                names.dedup();
                let opened = open_secrets(context.credentials, target, &names).await?;
                let headers = http::render_headers(headers, &opened)?;
                let oauth = oauth.then(|| http::OAuthSource {
                    credentials: context.credentials.clone(),
                    org: context.label.org.clone(),
                    server_id: spec.server_id.clone(),
                    member: context.member.to_owned(),
                });
                Link::Http(http::HttpLink::new(
                    url,
                    *internal,
                    http::LinkAuth { headers, oauth },
                    context.http,
                    shared.clone(),
                    context.limits.max_message_bytes,
                )?)
            }
            UpstreamTransport::Unavailable { reason } => return Err(reason.clone()),
        };
        let mut connection = Connection {
            shared,
            link,
            next_id: AtomicU64::new(1),
            initialize: Object::new(),
            catalogs: Default::default(),
            max_list_pages: context.limits.max_list_pages,
            _ends_server: cancel.drop_guard(),
        };
        let params = json!({
            "protocolVersion": context.protocol_version,
            "capabilities": context.client_capabilities,
            "clientInfo": {"name": "mcp-hero", "version": env!("CARGO_PKG_VERSION")},
        });
        let answer = connection
            .request("initialize", Some(params), context.limits.start_timeout)
            .await
            .map_err(|error| format!("did not complete initialize: {error}"))?;
        let result = match answer.into_result() {
            Ok(Value::Object(result)) => result,
            Ok(_) => return Err("answered initialize without a result object".into()),
            Err(error) => return Err(format!("refused initialize: {}", error_text(&error))),
        };
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !protocol::is_supported(version) {
            connection.close("speaks an unsupported protocol version");
            return Err(format!(
                "answered initialize with protocol version {version:?}, which the gateway does not speak"
            ));
        }
        if let Link::Http(link) = &connection.link {
            link.set_protocol_version(version);
        }
        connection.initialize = result;
        connection.notify("notifications/initialized", None).await;
        if let Link::Http(link) = &connection.link {
            link.open_listen_stream();
        }
        Ok(Arc::new(connection))
    }

    /// Whether the upstream declared capability `name` (`tools`, `logging`, ...).
    pub fn has_capability(&self, name: &str) -> bool {
        self.initialize
            .get("capabilities")
            .and_then(|caps| caps.get(name))
            .is_some_and(|cap| !cap.is_null())
    }

    /// Why the connection ended, if it has.
    pub fn closed_reason(&self) -> Option<Arc<str>> {
        self.shared.closed_reason()
    }

    /// Ends the connection and the server behind it.
    pub fn close(&self, reason: &str) {
        self.shared.close(reason);
    }

    /// Waits (at most five seconds) until the server behind a closed connection is gone.
    pub(crate) async fn wait_closed(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.shared.gone.cancelled()).await;
    }

    /// Sends a request and returns the handle to await its answer.
    pub(crate) async fn start(
        &self,
        method: &str,
        params: Option<Value>,
    ) -> Result<Pending, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, answer) = oneshot::channel();
        {
            if self.shared.closed_reason().is_some() {
                return Err(self.shared.closed_error());
            }
            lock(&self.shared.pending).insert(id, sender);
        }
        let message = Message::request(Value::from(id), method, params);
        self.send(message, Some(id)).await;
        Ok(Pending { id, answer })
    }

    /// Waits for the answer to `pending`; on timeout the upstream is told to cancel.
    pub(crate) async fn finish(
        &self,
        pending: Pending,
        timeout: Duration,
    ) -> Result<Message, UpstreamError> {
        match tokio::time::timeout(timeout, pending.answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(self.shared.closed_error()),
            Err(_) => {
                self.forget(pending.id, "the gateway's per-call timeout elapsed")
                    .await;
                Err(UpstreamError::Timeout(timeout))
            }
        }
    }

    /// Sends a request and waits for its answer.
    pub(crate) async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Message, UpstreamError> {
        let pending = self.start(method, params).await?;
        self.finish(pending, timeout).await
    }

    /// Stops waiting for request `id` and tells the upstream to cancel it.
    pub(crate) async fn forget(&self, id: u64, reason: &str) {
        let was_pending = lock(&self.shared.pending).remove(&id).is_some();
        if was_pending {
            self.notify(
                "notifications/cancelled",
                Some(json!({"requestId": id, "reason": reason})),
            )
            .await;
        }
    }

    /// Sends a notification.
    pub(crate) async fn notify(&self, method: &str, params: Option<Value>) {
        self.send(Message::notification(method, params), None).await;
    }

    /// Sends any message (also answers to the upstream's own requests).
    pub(crate) async fn send(&self, message: Message, request_id: Option<u64>) {
        match &self.link {
            Link::Stdio(stdin) => {
                if stdin.send(message.to_json()).await.is_err() {
                    self.shared.close("stopped reading its standard input");
                }
            }
            Link::Http(link) => link.post(message, request_id),
        }
    }

    /// The upstream's whole list of `kind`, read once (following its pages) and cached until
    /// the upstream says it changed.
    pub(crate) async fn catalog(
        &self,
        kind: ListKind,
        timeout: Duration,
    ) -> Result<Arc<Listing>, UpstreamError> {
        if !self.has_capability(kind.capability()) {
            return Ok(Arc::default());
        }
        let cell = lock(&self.catalogs[kind.index()]).clone();
        cell.get_or_try_init(|| self.read_list(kind, timeout))
            .await
            .cloned()
    }

    /// Forgets the cached list of `kind`.
    pub(crate) fn invalidate(&self, kind: ListKind) {
        *lock(&self.catalogs[kind.index()]) = Catalog::default();
    }

    async fn read_list(
        &self,
        kind: ListKind,
        timeout: Duration,
    ) -> Result<Arc<Listing>, UpstreamError> {
        let mut items = Vec::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..self.max_list_pages {
            let params = cursor.take().map(|cursor| json!({ "cursor": cursor }));
            let answer = self.request(kind.method(), params, timeout).await?;
            let Ok(Value::Object(mut result)) = answer.into_result() else {
                // An upstream that refuses its own list has an empty one.
                break;
            };
            if let Some(Value::Array(page)) = result.remove(kind.key()) {
                items.extend(page.into_iter().filter_map(|item| match item {
                    Value::Object(item) => Some(item),
                    _ => None,
                }));
            }
            match result.remove("nextCursor") {
                Some(next @ Value::String(_)) => cursor = Some(next),
                _ => break,
            }
        }
        Ok(Arc::new(Listing::new(kind, items)))
    }
}

/// Opens the secrets a connection needs; none needed costs nothing.
async fn open_secrets(
    credentials: &Arc<dyn Credentials>,
    target: CredentialTarget<'_>,
    names: &[String],
) -> Result<OpenedSecrets, String> {
    if names.is_empty() {
        return Ok(OpenedSecrets::default());
    }
    credentials
        .open(target, names)
        .await
        .map_err(|error| format!("its secrets could not be opened: {error}"))
}

/// Renders a stdio server's environment and files from its opened secrets (S14).
fn inject(command: &StdioCommand, opened: &OpenedSecrets) -> Result<Injection, String> {
    let mut injection = Injection::default();
    for (name, value) in &command.env {
        let value = value.render(opened).map_err(|error| {
            format!("its environment variable {name} could not be set: {error}")
        })?;
        injection.env.push((name.clone(), value));
    }
    for file in &command.files {
        let contents = opened
            .get(&file.variable)
            .map_err(|error| format!("its file {} could not be written: {error}", file.path))?;
        injection.files.push((
            file.path.clone(),
            zeroize::Zeroizing::new(contents.to_vec()),
        ));
    }
    Ok(injection)
}

/// The message of a JSON-RPC error object, for reasons shown to people.
pub(crate) fn error_text(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| error.to_string(), str::to_owned)
}
