//! The data plane's credential provider: opens a server's secret variables from the store at
//! the moment a session starts the server (S12, S14), and hands out remote servers' OAuth
//! access tokens.
//!
//! Nothing here caches a value: each start opens what it needs, the connection renders it into
//! the sandbox's environment and files or the request headers, and drops (zeroizes) the rest.

use mcp::credentials::{CredentialTarget, Credentials, OpenedSecrets};
use mcp::launcher::BoxFuture;
use secrecy::SecretString;
use store::{ServerId, Store};

/// Opens secrets through the store (and its vault).
#[derive(Clone)]
pub struct StoreCredentials {
    store: Store,
}

impl StoreCredentials {
    /// A provider over `store`.
    pub fn new(store: Store) -> Self {
        StoreCredentials { store }
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
        _target: CredentialTarget<'a>,
        _force_refresh: bool,
    ) -> BoxFuture<'a, Result<SecretString, String>> {
        Box::pin(async { Err("OAuth is not set up for this server".to_owned()) })
    }
}
