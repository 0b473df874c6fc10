//! The HTTP surface: router, middleware stack, operational endpoints and the OpenAPI document.
//!
//! Every route is registered through `utoipa_axum`'s `OpenApiRouter`, so a route cannot exist
//! without its entry in `/api/v1/openapi.json`; the cross-tenant matrix test walks that document.

pub mod api;
pub mod error;
pub mod extract;
pub mod mcp;
pub mod metrics;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::metrics::Metrics;
use crate::changes::ChangeSink;
use crate::images::{ImageDirs, Images, ImagesSetup};
use crate::server_logs::{LogsConfig, ServerLogs};

/// What every handler can reach, behind one pointer: extractors and middleware clone the state
/// on every request, which should cost one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`]: the store, the metrics registry, the change sink, the data plane,
/// the installer, the server log buffer and the upstream OAuth client.
#[derive(Clone)]
pub struct AppParts {
    /// The store (database + vault).
    pub store: store::Store,
    /// Prometheus counters.
    pub metrics: Arc<Metrics>,
    /// Where API handlers report committed changes the data plane must act on.
    pub changes: Arc<dyn ChangeSink>,
    /// The MCP data plane: live sessions and the transport serving them.
    pub gateway: Arc<::mcp::Gateway>,
    /// Installs server packages into images.
    pub images: Images,
    /// The operator's log buffer of each server: the data plane appends, the API reads and tails.
    pub server_logs: ServerLogs,
    /// The gateway as the OAuth client of remote servers: authorizations, callbacks, and the
    /// tokens the data plane sends upstream.
    pub upstream_oauth: crate::upstream_oauth::UpstreamOAuth,
}

impl AppState {
    /// Wraps a store and a gateway with fresh metrics; API changes reach the gateway's sessions.
    /// Packages do not install (every install fails, saying so).
    pub fn new(store: store::Store, gateway: Arc<::mcp::Gateway>) -> Self {
        Self::with_images(
            store,
            gateway,
            ImagesSetup::none("this gateway was built without an install runtime"),
        )
    }

    /// Like [`AppState::new`], with packages installed as `images` says.
    pub fn with_images(
        store: store::Store,
        gateway: Arc<::mcp::Gateway>,
        images: ImagesSetup,
    ) -> Self {
        Self::with_images_and_logs(store, gateway, images, LogsConfig::default())
    }

    /// Like [`AppState::with_images`], with server logs kept as `logs` says.
    pub fn with_images_and_logs(
        store: store::Store,
        gateway: Arc<::mcp::Gateway>,
        images: ImagesSetup,
        logs: LogsConfig,
    ) -> Self {
        let server_logs = ServerLogs::start(store.clone(), logs);
        let upstream_oauth = crate::upstream_oauth::UpstreamOAuth::new(store.clone(), None);
        Self::assemble(store, gateway, images, server_logs, upstream_oauth)
    }

    /// Puts the state together from parts the gateway shares: the data plane writes to the
    /// same log buffer and asks the same OAuth client the API serves.
    pub fn assemble(
        store: store::Store,
        gateway: Arc<::mcp::Gateway>,
        images: ImagesSetup,
        server_logs: ServerLogs,
        upstream_oauth: crate::upstream_oauth::UpstreamOAuth,
    ) -> Self {
        let dirs = ImageDirs::new(images.config.dir.clone());
        let changes: Arc<dyn ChangeSink> = Arc::new(mcp::DataPlaneSync::start(
            store.clone(),
            gateway.clone(),
            dirs,
        ));
        AppState(Arc::new(AppParts {
            images: Images::new(store.clone(), images, changes.clone()),
            server_logs,
            upstream_oauth,
            changes,
            store,
            metrics: Arc::new(Metrics::new()),
            gateway,
        }))
    }

    /// Sets the gateway's public URL, which upstream OAuth needs for its callback and client
    /// ID metadata document.
    pub fn with_public_url(self, public_url: Option<url::Url>) -> Self {
        let mut parts = self.into_parts();
        parts.upstream_oauth =
            crate::upstream_oauth::UpstreamOAuth::new(parts.store.clone(), public_url);
        AppState(Arc::new(parts))
    }

    /// Sends committed changes to `changes` instead of the data plane (tests record them).
    pub fn with_changes(self, changes: Arc<dyn ChangeSink>) -> Self {
        let mut parts = self.into_parts();
        parts.changes = changes;
        AppState(Arc::new(parts))
    }

    fn into_parts(self) -> AppParts {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| AppParts::clone(&shared))
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "MCP Hero API",
        description = "Manage an MCP Hero organization. Authenticate with a personal access token: \
                       `Authorization: Bearer mcph_pat_...`. Every id is scoped to the caller's organization: \
                       an id of another organization answers 404, like one that does not exist. \
                       No response ever contains a secret; a token is shown once, when created."
    ),
    modifiers(&BearerSecurity),
    tags(
        (name = "organization", description = "The caller's organization"),
        (name = "members", description = "Members and their roles"),
        (name = "tokens", description = "Personal access tokens"),
        (name = "mcp", description = "The organization's MCP endpoint (Streamable HTTP) and its live sessions"),
        (name = "servers", description = "The organization's MCP servers"),
        (name = "variables", description = "A server's variables and files: strings are readable; passwords and files are sealed and only their metadata comes back"),
        (name = "server-logs", description = "What each server's sandboxes said (stderr, redacted), sandbox events and egress decisions, per session; owners and admins"),
        (name = "upstream-oauth", description = "Remote servers behind OAuth, where the gateway is the OAuth client: settings, members' connections, and the browser callback"),
        (name = "tool-rules", description = "Which tools each role or member may list and call: a matching deny wins, then a matching allow; nothing is allowed otherwise"),
        (name = "audit", description = "Every tools/call, resources/read and prompts/get: who, which server and tool, outcome, latency and sizes; never argument values or results. Owners and admins only"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("mcph_pat_...")
                    .build(),
            ),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    control_routes().merge(upload_routes()).merge(mcp_routes())
}

/// File uploads: their own body limit, a file at the limit plus its form.
fn upload_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::variables::upload_file))
        .routes(routes!(api::variables::replace_file))
}

/// The MCP endpoint, whose messages have their own (larger) size limit.
fn mcp_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mcp::mcp_post, mcp::mcp_get, mcp::mcp_delete))
}

fn control_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
        .routes(routes!(openapi_json))
        .routes(routes!(api::get_organization, api::delete_organization))
        .routes(routes!(api::list_members, api::add_member))
        .routes(routes!(
            api::get_member,
            api::change_member_role,
            api::remove_member
        ))
        .routes(routes!(api::list_tokens, api::create_token))
        .routes(routes!(api::revoke_token))
        .routes(routes!(mcp::list_sessions))
        .routes(routes!(
            api::servers::list_servers,
            api::servers::create_server
        ))
        .routes(routes!(
            api::servers::get_server,
            api::servers::update_server,
            api::servers::delete_server
        ))
        .routes(routes!(api::servers::get_image))
        .routes(routes!(api::servers::reinstall_image))
        .routes(routes!(api::server_logs::list_server_logs))
        .routes(routes!(api::server_logs::tail_server_logs))
        .routes(routes!(
            api::tool_rules::list_tool_rules,
            api::tool_rules::create_tool_rule
        ))
        .routes(routes!(api::tool_rules::delete_tool_rule))
        .routes(routes!(
            api::variables::list_variables,
            api::variables::create_variable
        ))
        .routes(routes!(
            api::variables::get_variable,
            api::variables::replace_variable,
            api::variables::delete_variable
        ))
        .routes(routes!(
            api::upstream_oauth::put_server_oauth,
            api::upstream_oauth::get_server_oauth,
            api::upstream_oauth::delete_server_oauth
        ))
        .routes(routes!(api::upstream_oauth::start_authorization))
        .routes(routes!(api::upstream_oauth::delete_connection))
        .routes(routes!(api::upstream_oauth::callback))
        .routes(routes!(api::upstream_oauth::client_metadata))
        .routes(routes!(api::audit::list_audit_events))
        .routes(routes!(api::audit::export_audit_events))
}

/// The OpenAPI document, built once from the same router that serves the routes.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| api_router().into_openapi())
}

/// Request headers that carry credentials: never shown by a trace or a `Debug` of the request.
/// `Mcp-Session-Id` is one too: with the token, it reaches the member's tools.
pub const SENSITIVE_REQUEST_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("mcp-session-id"),
];

/// Response headers that carry credentials: the session id the gateway mints, and cookies.
pub const SENSITIVE_RESPONSE_HEADERS: [HeaderName; 2] = [
    header::SET_COOKIE,
    HeaderName::from_static("mcp-session-id"),
];

/// The complete application with its middleware stack.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let max_message_bytes = state.gateway.config().upstream.max_message_bytes;
    let (routes, _) = control_routes()
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .merge(upload_routes().layer(DefaultBodyLimit::max(api::variables::MAX_UPLOAD_BODY_BYTES)))
        .merge(mcp_routes().layer(DefaultBodyLimit::max(max_message_bytes)))
        .split_for_parts();
    let routes = routes
        // Innermost: count requests by route and status (sees the matched route).
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .fallback(not_found)
        .with_state(state);
    with_middleware(routes)
}

/// Wraps routes in the gateway's middleware stack; public so a test can check the stack's
/// effect on a route of its own.
pub fn with_middleware(routes: Router) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    // Layers run top to bottom on the way in:
    let middleware = ServiceBuilder::new()
        // 1. Mark credentials sensitive before anything can log or debug-print the headers; on
        //    the way out, the session id and cookies the gateway sets.
        .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE_REQUEST_HEADERS))
        .layer(SetSensitiveResponseHeadersLayer::new(SENSITIVE_RESPONSE_HEADERS))
        // 2. Name the request, so its log lines and the client's error can be matched.
        .layer(SetRequestIdLayer::new(
            request_id.clone(),
            RequestIds::new(),
        ))
        // 3. One span per request: method, path and request id; never the query string (it may
        //    carry credentials in later protocols) nor headers. Routing has not happened yet
        //    here, so the path is the raw one; /metrics counts by matched route instead.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    let path = request.uri().path();
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", method = %request.method(), path, request_id = id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
        // 4. Return the request id to the client.
        .layer(PropagateRequestIdLayer::new(request_id));
    routes.layer(middleware)
}

/// Names requests `{run}-{n}`: a random prefix for this process's run and a counter. Unique
/// among the gateway's logs like a UUID, without asking the kernel for randomness on every
/// request (a random UUID each cost a `getrandom` system call on the data plane's hot path).
#[derive(Clone)]
struct RequestIds {
    run: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
        let mut run = [0_u8; 6];
        // Without randomness the prefix is zeros: ids stay unique within the run.
        let _ = SystemRandom::new().fill(&mut run);
        RequestIds {
            run: run
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
                .into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n}", self.run))
            .ok()
            .map(RequestId::new)
    }
}

async fn not_found() -> error::ApiError {
    error::ApiError::NotFound("route")
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers within two seconds.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses((status = 200, description = "Ready to serve", body = String), (status = 503, description = "The database does not answer"))
)]
async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => "ready".into_response(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timed out").into_response(),
    }
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Metrics", body = String)))]
async fn metrics_text(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "The OpenAPI 3.1 document")))]
async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(openapi())
}
