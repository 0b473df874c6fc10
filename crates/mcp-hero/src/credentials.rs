//! The data plane's credential provider: opens a server's secret variables from the store at
//! the moment a session starts the server (S12, S14), and hands out remote servers' OAuth
//! access tokens.
//!
//! Nothing here caches a value: each start opens what it needs, the connection renders it into
//! the sandbox's environment and files or the request headers, and drops (zeroizes) the rest.

use mcp::credentials::{CredentialTarget, Credentials, OpenedSecrets};
use mcp::launcher::BoxFuture;
use secrecy::SecretString;
use store::{ServerId, Store, UserId};

use crate::upstream_oauth::UpstreamOAuth;

/// Opens secrets through the store (and its vault), and OAuth tokens through the gateway's
/// OAuth client.
#[derive(Clone)]
pub struct StoreCredentials {
    store: Store,
    oauth: UpstreamOAuth,
}

impl StoreCredentials {
    /// A provider over `store` and `oauth` (the same client the API's callbacks use, so
    /// refreshes of one connection collapse into one).
    pub fn new(store: Store, oauth: UpstreamOAuth) -> Self {
        StoreCredentials { store, oauth }
    }
}

impl Credentials for StoreCredentials {
    fn open<'a>(
        &'a self,
        target: CredentialTarget<'a>,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<OpenedSecrets, String>> {
        Box::pin(async move {
            let scope = self
                .store
                .session_scope(target.org)
                .await
                .map_err(|error| error.to_string())?;
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let opened = self
                .store
                .open_variables(&scope, &ServerId::from_untrusted(target.server_id), &names)
                .await
                .map_err(|error| match error {
                    store::StoreError::Invalid { reason, .. } => reason,
                    other => {
                        tracing::error!(error = %other, "a server's variables could not be opened");
                        "the gateway could not open them; see its log".to_owned()
                    }
                })?;
            Ok(OpenedSecrets::new(
                opened
                    .into_iter()
                    .map(|variable| (variable.name, variable.value)),
            ))
        })
    }

    fn access_token<'a>(
        &'a self,
        target: CredentialTarget<'a>,
        rejected: Option<&'a SecretString>,
    ) -> BoxFuture<'a, Result<SecretString, String>> {
        Box::pin(async move {
            let scope = self
                .store
                .session_scope(target.org)
                .await
                .map_err(|error| error.to_string())?;
            let server = ServerId::from_untrusted(target.server_id);
            let member = UserId::from_untrusted(target.member);
            let token = match rejected {
                None => self.oauth.access_token(&scope, &server, &member).await,
                Some(rejected) => {
                    self.oauth
                        .refresh_after_unauthorized(&scope, &server, &member, rejected)
                        .await
                }
            };
            // The errors say what the member can do (connect, reconnect) and carry no token.
            token.map_err(|error| error.to_string())
        })
    }
}

/// Puts servers' stderr (already redacted) and their sandboxes' events into the operator's
/// log buffer.
impl mcp::logs::ServerLogSink for crate::server_logs::ServerLogs {
    fn line(
        &self,
        source: mcp::logs::LogSource<'_>,
        stream: mcp::logs::LogStream,
        level: mcp::logs::LogLevel,
        text: String,
    ) {
        use crate::server_logs::{LogLevel, LogLine, LogStream};
        self.append(LogLine::now(
            store::OrgId::from_untrusted(source.org),
            ServerId::from_untrusted(source.server_id),
            source.session,
            match stream {
                mcp::logs::LogStream::Stderr => LogStream::Stderr,
                mcp::logs::LogStream::Sandbox => LogStream::Sandbox,
                mcp::logs::LogStream::Egress => LogStream::Egress,
            },
            match level {
                mcp::logs::LogLevel::Info => LogLevel::Info,
                mcp::logs::LogLevel::Warn => LogLevel::Warn,
            },
            text,
        ));
    }
}
