//! MCP Hero's persistence: schema, migrations and repositories, on SQLite (default) or PostgreSQL.
//!
//! Main types: [`Store`] (a connection pool plus the vault), [`OrgScope`] (the proof a caller was
//! authenticated into one organization), [`Principal`] (who is calling), and the row views each
//! repository returns ([`Server`] and [`ToolRuleView`] among them; [`Store::tool_rules`] gives the
//! data plane the rules `auth::tool_access` decides with). A stdio server may name a [`Package`];
//! its install image's state ([`ImageStatus`]) is kept per generation of installs. The audit
//! trail ([`AuditEvent`]) keeps one row per audited call, read through a scope with an
//! [`AuditFilter`].
//!
//! Invariant (S8): every function that reads or writes tenant data takes an [`OrgScope`], and
//! every such query filters on its organization id, so a row of another organization answers
//! exactly like a row that does not exist ([`StoreError::NotFound`]). Only this crate can build an
//! `OrgScope`: from a verified token ([`Store::authenticate_token`]) or on the operator's path
//! ([`Store::operator_scope`], used by the local admin CLI that already holds the root secret).
//!
//! Invariant (S9, S12): sealed columns are written only through the [`vault`]; their plaintext
//! never reaches SQL. [`sealed::SEALED_COLUMNS`] lists every one so key rotation reaches them all.
//!
//! This crate never speaks HTTP, never formats API JSON, and never logs a value it stores.

mod audit;
mod connect;
mod error;
mod ids;
mod images;
mod key_check;
mod members;
mod migrate;
mod orgs;
pub mod sealed;
mod server_logs;
mod servers;
mod template;
mod token_cache;
mod tokens;
mod tool_rules;
mod upstream_oauth;
mod variables;

use std::sync::Arc;

pub use audit::{
    AuditCursor, AuditEvent, AuditFilter, AuditMethod, AuditOutcome, AuditPage, MAX_AUDIT_PAGE,
    NewAuditEvent,
};
pub use connect::{Backend, DatabaseLocation};
pub use error::StoreError;
pub use ids::{OrgId, ServerId, TokenId, ToolRuleId, UserId, VariableId, normalize_email};
pub use images::{
    ImagePhase, ImageReport, ImageState, ImageStatus, ImageUpkeep, MAX_IMAGE_ERROR_BYTES,
    MAX_PACKAGE_SPEC_BYTES, Package, PackageKind,
};
pub use members::Member;
pub use orgs::{DeletedOrganization, Organization, validate_slug};
pub use sealed::RotationReport;
pub use server_logs::{
    LINE_OVERHEAD_BYTES, LogBounds, LogLevel, LogQuery, LogStream, MAX_LOG_PAGE,
    MAX_SESSION_TAG_BYTES, NewLogLine, StoredLogLine,
};
pub use servers::{
    Exposure, MAX_ARG_BYTES, MAX_ARGS, MAX_NAME_BYTES, MAX_SETTINGS, MAX_URL_BYTES, NewServer,
    RESERVED_ENV, RESERVED_HEADERS, Server, ServerTransport, ServerUpdate, validate_server_name,
};
pub use template::{Template, TemplatePart, is_variable_name};
pub use token_cache::TOKEN_CACHE_TTL;
pub use tokens::{Principal, TokenMeta, TokenOwner, TokenRejection};
pub use tool_rules::{DEFAULT_ALLOWED_ROLES, ToolRuleView};
pub use upstream_oauth::{
    AdminClient, AuthorizationServer, MAX_CLIENT_ID_BYTES, MAX_SCOPES_BYTES, MAX_SECRET_BYTES,
    NewPendingAuthorization, NewUpstreamTokens, OAuthClient, OAuthMode, OAuthSettings,
    PENDING_LIFETIME_SECS, PendingAuthorization, RemovedConnection, ServerOAuth, UpstreamAccount,
    UpstreamConnection, UpstreamTokens,
};
pub use variables::{
    MAX_FILE_BYTES, MAX_FILE_PATH_BYTES, MAX_VALUE_BYTES, MAX_VARIABLES_PER_SERVER, OpenedVariable,
    PREVIEW_MIN_CHARS, VariableKind, VariableMeta, VariableValue, validate_file_path,
};

/// The proof that a caller acts inside one organization; only this crate can make one (S8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgScope {
    org_id: OrgId,
}

impl OrgScope {
    /// The organization this scope grants access to.
    pub fn org_id(&self) -> &OrgId {
        &self.org_id
    }
}

/// The database pool and the vault: the one handle through which MCP Hero reads and writes state.
#[derive(Clone)]
pub struct Store {
    pool: sqlx::AnyPool,
    backend: Backend,
    vault: Arc<vault::Vault>,
    tokens: Arc<token_cache::TokenCache>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database, applies pending migrations and checks the root secret against the
    /// store's key-check record (S11); a wrong secret is refused before anything is served.
    pub async fn open(
        location: &DatabaseLocation,
        vault: vault::Vault,
    ) -> Result<Self, StoreError> {
        let (pool, backend) = connect::connect(location).await?;
        let store = Store {
            pool,
            backend,
            vault: Arc::new(vault),
            tokens: Arc::new(token_cache::TokenCache::new()),
        };
        migrate::run(&store.pool, backend).await?;
        key_check::verify_or_create(&store).await?;
        Ok(store)
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Answers whether the database responds, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to finish (SQLite checkpoints its WAL on close).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Seconds since the Unix epoch; the store's one clock.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}
