//! Remote servers behind OAuth, where the gateway is the OAuth client: each server's OAuth
//! settings, the tokens held for the organization or for each member, and authorizations under
//! way (S6, S8, S9, S10, S15, S19, S20).
//!
//! Every secret (client secrets, access and refresh tokens, PKCE verifiers) is sealed by the vault
//! with its own row as associated data before it reaches SQL, and opened only into `secrecy`
//! types. A member's tokens and pending authorizations go with their membership (a foreign key on
//! `memberships` with `ON DELETE CASCADE`); everything goes with the server's OAuth settings, and
//! so with the server and the organization.
//!
//! Pending authorizations are keyed by a digest of their `state` the caller computes, so the
//! database never holds a usable state value; the callback that redeems one is unauthenticated
//! (a browser redirect), and the state is the capability: [`Store::take_upstream_oauth_pending`]
//! is the one function here that finds its organization from the row rather than from a scope.
//!
//! Deliberately left out: talking to the authorization server (the binary's `upstream_oauth`
//! module does that) and any notion of token validity beyond the stored expiry.

use auth::{ManageServers, Permit};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::any::AnyRow;
use vault::{RecordContext, SealedRecord};

use crate::{OrgId, OrgScope, ServerId, Store, StoreError, UserId, unix_now};

/// Longest scope list an admin may configure, in bytes.
pub const MAX_SCOPES_BYTES: usize = 1024;
/// Longest client id an admin may configure, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 512;
/// Longest client secret or token accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;
/// How long an authorization may stay pending, in seconds (ten minutes).
pub const PENDING_LIFETIME_SECS: i64 = 600;

/// Whose credentials a server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthMode {
    /// One connection for the whole organization, made by an admin.
    Organization,
    /// Each member connects their own account; nobody uses another's.
    Member,
}

impl OAuthMode {
    /// The stable name, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthMode::Organization => "organization",
            OAuthMode::Member => "member",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "organization" => Ok(OAuthMode::Organization),
            "member" => Ok(OAuthMode::Member),
            other => Err(StoreError::corrupt(
                "server_oauth",
                format!("unknown mode {other:?}"),
            )),
        }
    }
}

/// Whose tokens a row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAccount {
    /// The organization's connection (servers in [`OAuthMode::Organization`]).
    Organization,
    /// One member's own connection (servers in [`OAuthMode::Member`]).
    Member(UserId),
}

impl UpstreamAccount {
    /// The account a caller uses on a server in `mode`.
    pub fn for_mode(mode: OAuthMode, caller: &UserId) -> Self {
        match mode {
            OAuthMode::Organization => UpstreamAccount::Organization,
            OAuthMode::Member => UpstreamAccount::Member(caller.clone()),
        }
    }

    fn user_key(&self) -> &str {
        match self {
            UpstreamAccount::Organization => "",
            UpstreamAccount::Member(user) => user.as_str(),
        }
    }

    fn user_id(&self) -> Option<&str> {
        match self {
            UpstreamAccount::Organization => None,
            UpstreamAccount::Member(user) => Some(user.as_str()),
        }
    }
}

/// A client the admin registered with the authorization server by hand.
#[derive(Debug)]
pub struct AdminClient {
    /// Its client id.
    pub client_id: String,
    /// Its secret, for confidential clients; write-only.
    pub client_secret: Option<SecretString>,
}

/// What an admin sets when putting a server behind OAuth. No `Default`: every choice is theirs.
#[derive(Debug)]
pub struct OAuthSettings {
    /// See [`OAuthMode`].
    pub mode: OAuthMode,
    /// Scopes to ask for; empty lets the authorization server decide.
    pub scopes: Vec<String>,
    /// A hand-registered client, used instead of discovery's client identity.
    pub client: Option<AdminClient>,
}

/// A server's OAuth settings as the store returns them: never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOAuth {
    /// The server.
    pub server_id: ServerId,
    /// Whose credentials it uses.
    pub mode: OAuthMode,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// The admin's client id, if one was given.
    pub admin_client_id: Option<String>,
    /// Whether the admin gave a client secret (it is never shown).
    pub admin_client_secret_set: bool,
    /// The authorization server found by discovery, once it ran.
    pub authorization_server: Option<AuthorizationServer>,
    /// The client identity in use with that authorization server.
    pub client_id: Option<String>,
    /// The redirect URI that client identity was registered with.
    pub redirect_uri: Option<String>,
    /// When OAuth was enabled or last configured (Unix seconds).
    pub created_at: i64,
    /// When the settings or discovery results last changed (Unix seconds).
    pub updated_at: i64,
}

/// The endpoints discovery found for a server (RFC 9728, RFC 8414).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationServer {
    /// The issuer identifier, as the metadata states it.
    pub issuer: String,
    /// Where the browser is sent.
    pub authorization_endpoint: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: String,
    /// Where tokens are revoked (RFC 7009), if the server has one.
    pub revocation_endpoint: Option<String>,
    /// Whether every authorization response carries `iss` (RFC 9207).
    pub iss_parameter_supported: bool,
}

/// The client identity the gateway uses with a server's authorization server.
#[derive(Debug)]
pub struct OAuthClient {
    /// Its id (possibly a client ID metadata document URL).
    pub client_id: String,
    /// Its secret, for confidential clients.
    pub client_secret: Option<SecretString>,
    /// The redirect URI it was registered with.
    pub redirect_uri: String,
}

/// A token set to store: the plaintext lives only in `secrecy` types until sealed.
#[derive(Debug)]
pub struct NewUpstreamTokens {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, if one was issued.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires (Unix seconds), if known.
    pub expires_at: Option<i64>,
    /// The scope granted, as the authorization server said it.
    pub scope: Option<String>,
    /// The server URL they were issued for (RFC 8707).
    pub resource: String,
}

/// A stored token set, opened.
#[derive(Debug)]
pub struct UpstreamTokens {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, if any.
    pub refresh_token: Option<SecretString>,
    /// When the access token expires (Unix seconds), if known.
    pub expires_at: Option<i64>,
    /// The scope granted.
    pub scope: Option<String>,
    /// The server URL they were issued for; they are sent nowhere else.
    pub resource: String,
}

/// A connection's metadata, for status views: never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConnection {
    /// When the access token expires (Unix seconds), if known.
    pub expires_at: Option<i64>,
    /// The scope granted.
    pub scope: Option<String>,
    /// Whether a refresh token is held.
    pub refreshable: bool,
    /// When the account was first connected (Unix seconds).
    pub connected_at: i64,
    /// When the tokens last changed (Unix seconds).
    pub updated_at: i64,
}

/// An authorization to remember until its callback arrives.
#[derive(Debug)]
pub struct NewPendingAuthorization {
    /// The digest of its `state` (the caller's choice of digest; hex text).
    pub state_digest: String,
    /// The server being connected.
    pub server_id: ServerId,
    /// Who started it.
    pub started_by: UserId,
    /// The account the tokens will belong to.
    pub account: UpstreamAccount,
    /// The PKCE verifier, sealed at rest.
    pub verifier: SecretString,
    /// The issuer the callback's `iss` must match.
    pub issuer: String,
    /// The client id the code was requested for.
    pub client_id: String,
    /// The redirect URI the code was requested with.
    pub redirect_uri: String,
    /// The server URL the code is requested for.
    pub resource: String,
}

/// A redeemed pending authorization: removed from the store when returned (single use).
#[derive(Debug)]
pub struct PendingAuthorization {
    /// The organization it belongs to: the state proved it, like a token proves a principal.
    pub scope: OrgScope,
    /// The server being connected.
    pub server_id: ServerId,
    /// Who started it.
    pub started_by: UserId,
    /// The account the tokens belong to.
    pub account: UpstreamAccount,
    /// The PKCE verifier.
    pub verifier: SecretString,
    /// The issuer the callback's `iss` must match.
    pub issuer: String,
    /// The client id the code was requested for.
    pub client_id: String,
    /// The redirect URI the code was requested with.
    pub redirect_uri: String,
    /// The server URL the code was requested for.
    pub resource: String,
}

/// What best-effort revocation at the authorization server needs about one removed connection.
#[derive(Debug)]
pub struct RemovedConnection {
    /// The server it was for.
    pub server_id: ServerId,
    /// Its refresh token (revoking it ends the grant), else its access token.
    pub token: SecretString,
}

fn context<'a>(
    table: &'static str,
    column: &'static str,
    row_id: &'a str,
    org_id: &'a OrgId,
) -> RecordContext<'a> {
    RecordContext {
        table,
        column,
        row_id,
        org_id: org_id.as_str(),
    }
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.len() > max {
        return Err(StoreError::Invalid {
            field,
            reason: format!("is {} bytes; the limit is {max}", value.len()),
        });
    }
    Ok(())
}

fn validate_scopes(scopes: &[String]) -> Result<String, StoreError> {
    for scope in scopes {
        // RFC 6749 §3.3: scope tokens are printable ASCII except space, `"` and `\`.
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
        if !valid {
            return Err(StoreError::Invalid {
                field: "scopes",
                reason: format!(
                    "{scope:?} is not a scope token (printable ASCII without spaces, quotes or backslashes)"
                ),
            });
        }
    }
    let joined = scopes.join(" ");
    check_len("scopes", &joined, MAX_SCOPES_BYTES)?;
    Ok(joined)
}

fn split_scopes(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Store {
    /// Puts a remote server behind OAuth, or changes its settings. Discovery and registration
    /// start over; connections survive unless the mode or the admin's client changed, since
    /// tokens issued to another client or for other accounts must not be used.
    #[expect(
        clippy::disallowed_methods,
        reason = "seals the value, or checks its length before sealing it (S9)"
    )]
    pub async fn put_server_oauth(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        server_id: &ServerId,
        settings: OAuthSettings,
    ) -> Result<ServerOAuth, StoreError> {
        let scopes = validate_scopes(&settings.scopes)?;
        if let Some(client) = &settings.client {
            if client.client_id.trim().is_empty() {
                return Err(StoreError::Invalid {
                    field: "client_id",
                    reason: "must not be empty".to_owned(),
                });
            }
            check_len("client_id", &client.client_id, MAX_CLIENT_ID_BYTES)?;
            if client
                .client_id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(StoreError::Invalid {
                    field: "client_id",
                    reason: "must not contain spaces or control characters".to_owned(),
                });
            }
            if let Some(secret) = &client.client_secret {
                check_len("client_secret", secret.expose_secret(), MAX_SECRET_BYTES)?;
                if secret.expose_secret().is_empty() {
                    return Err(StoreError::Invalid {
                        field: "client_secret",
                        reason: "must not be empty; leave it out for a public client".to_owned(),
                    });
                }
            }
        }
        let org = scope.org_id();
        let mut tx = self.pool.begin().await?;
        let transport: Option<String> =
            sqlx::query("SELECT transport FROM servers WHERE id = $1 AND org_id = $2")
                .bind(server_id.as_str())
                .bind(org.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("transport"))
                .transpose()?;
        match transport.as_deref() {
            None => return Err(StoreError::NotFound("server")),
            Some("streamable_http") => {}
            Some(_) => {
                return Err(StoreError::Invalid {
                    field: "server_id",
                    reason: "OAuth applies to remote (streamable_http) servers only; a stdio server gets its credentials from variables".to_owned(),
                });
            }
        }
        let previous = sqlx::query(
            "SELECT mode, admin_client_id FROM server_oauth WHERE server_id = $1 AND org_id = $2",
        )
        .bind(server_id.as_str())
        .bind(org.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let admin_client_id = settings.client.as_ref().map(|c| c.client_id.clone());
        if let Some(previous) = previous {
            let old_mode: String = previous.try_get("mode")?;
            let old_client: Option<String> = previous.try_get("admin_client_id")?;
            if old_mode != settings.mode.as_str() || old_client != admin_client_id {
                sqlx::query(
                    "DELETE FROM upstream_oauth_tokens WHERE server_id = $1 AND org_id = $2",
                )
                .bind(server_id.as_str())
                .bind(org.as_str())
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM upstream_oauth_pending WHERE server_id = $1 AND org_id = $2")
                .bind(server_id.as_str())
                .bind(org.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let secret_sealed = match settings
            .client
            .as_ref()
            .and_then(|c| c.client_secret.as_ref())
        {
            Some(secret) => Some(
                self.vault
                    .seal(
                        &context(
                            "server_oauth",
                            "admin_client_secret_sealed",
                            server_id.as_str(),
                            org,
                        ),
                        secret.expose_secret().as_bytes(),
                    )?
                    .into_bytes(),
            ),
            None => None,
        };
        let now = unix_now();
        sqlx::query(
            "INSERT INTO server_oauth (server_id, org_id, mode, scopes, admin_client_id, admin_client_secret_sealed, \
             issuer, authorization_endpoint, token_endpoint, revocation_endpoint, iss_parameter_supported, \
             client_id, client_secret_sealed, redirect_uri, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, $7, $7) \
             ON CONFLICT (server_id) DO UPDATE SET mode = excluded.mode, scopes = excluded.scopes, \
             admin_client_id = excluded.admin_client_id, admin_client_secret_sealed = excluded.admin_client_secret_sealed, \
             issuer = NULL, authorization_endpoint = NULL, token_endpoint = NULL, revocation_endpoint = NULL, \
             iss_parameter_supported = 0, client_id = NULL, client_secret_sealed = NULL, redirect_uri = NULL, \
             updated_at = excluded.updated_at",
        )
        .bind(server_id.as_str())
        .bind(org.as_str())
        .bind(settings.mode.as_str())
        .bind(scopes)
        .bind(admin_client_id)
        .bind(secret_sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.server_oauth(scope, server_id)
            .await?
            .ok_or(StoreError::NotFound("server"))
    }

    /// A server's OAuth settings, or `None` when the server does not use OAuth.
    pub async fn server_oauth(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
    ) -> Result<Option<ServerOAuth>, StoreError> {
        let exists = sqlx::query("SELECT 1 AS one FROM servers WHERE id = $1 AND org_id = $2")
            .bind(server_id.as_str())
            .bind(scope.org_id().as_str())
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("server"));
        }
        let row = sqlx::query(
            "SELECT server_id, mode, scopes, admin_client_id, admin_client_secret_sealed IS NOT NULL AS secret_set, \
             issuer, authorization_endpoint, token_endpoint, revocation_endpoint, iss_parameter_supported, \
             client_id, redirect_uri, created_at, updated_at \
             FROM server_oauth WHERE server_id = $1 AND org_id = $2",
        )
        .bind(server_id.as_str())
        .bind(scope.org_id().as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| server_oauth_from_row(&row)).transpose()
    }

    /// Takes a server off OAuth; its connections and pending authorizations go with it.
    pub async fn delete_server_oauth(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        server_id: &ServerId,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Said explicitly, though the foreign keys cascade, so both backends behave alike even
        // where foreign keys were switched off by hand.
        for sql in [
            "DELETE FROM upstream_oauth_tokens WHERE server_id = $1 AND org_id = $2",
            "DELETE FROM upstream_oauth_pending WHERE server_id = $1 AND org_id = $2",
        ] {
            sqlx::query(sql)
                .bind(server_id.as_str())
                .bind(scope.org_id().as_str())
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM server_oauth WHERE server_id = $1 AND org_id = $2")
            .bind(server_id.as_str())
            .bind(scope.org_id().as_str())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound("server OAuth settings"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every connection to a server, opened, so they can be revoked at the authorization server
    /// before the server's OAuth settings (and with them the endpoints) go.
    pub async fn server_upstream_connections(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
    ) -> Result<Vec<RemovedConnection>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found = self
            .removed_connections(&mut tx, scope, Some(server_id), None)
            .await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Every connection of the organization on every server, opened, so they can be revoked at
    /// their authorization servers before the organization (and with it the endpoints) goes.
    pub async fn organization_upstream_connections(
        &self,
        scope: &OrgScope,
    ) -> Result<Vec<RemovedConnection>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found = self.removed_connections(&mut tx, scope, None, None).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Remembers what discovery found and the client identity to use with it. Connections made
    /// through another issuer or client are dropped: their tokens belong to that client.
    #[expect(
        clippy::disallowed_methods,
        reason = "seals the value, or checks its length before sealing it (S9)"
    )]
    pub async fn record_oauth_discovery(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        server: &AuthorizationServer,
        client: &OAuthClient,
    ) -> Result<(), StoreError> {
        let org = scope.org_id();
        let sealed = client
            .client_secret
            .as_ref()
            .map(|secret| {
                self.vault.seal(
                    &context(
                        "server_oauth",
                        "client_secret_sealed",
                        server_id.as_str(),
                        org,
                    ),
                    secret.expose_secret().as_bytes(),
                )
            })
            .transpose()?
            .map(SealedRecord::into_bytes);
        let mut tx = self.pool.begin().await?;
        let previous = sqlx::query(
            "SELECT issuer, client_id FROM server_oauth WHERE server_id = $1 AND org_id = $2",
        )
        .bind(server_id.as_str())
        .bind(org.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("server OAuth settings"))?;
        let old_issuer: Option<String> = previous.try_get("issuer")?;
        let old_client: Option<String> = previous.try_get("client_id")?;
        if old_issuer.is_some()
            && (old_issuer.as_deref() != Some(server.issuer.as_str())
                || old_client.as_deref() != Some(client.client_id.as_str()))
        {
            sqlx::query("DELETE FROM upstream_oauth_tokens WHERE server_id = $1 AND org_id = $2")
                .bind(server_id.as_str())
                .bind(org.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE server_oauth SET issuer = $1, authorization_endpoint = $2, token_endpoint = $3, \
             revocation_endpoint = $4, iss_parameter_supported = $5, client_id = $6, client_secret_sealed = $7, \
             redirect_uri = $8, updated_at = $9 WHERE server_id = $10 AND org_id = $11",
        )
        .bind(&server.issuer)
        .bind(&server.authorization_endpoint)
        .bind(&server.token_endpoint)
        .bind(server.revocation_endpoint.as_deref())
        .bind(i64::from(server.iss_parameter_supported))
        .bind(&client.client_id)
        .bind(sealed)
        .bind(&client.redirect_uri)
        .bind(unix_now())
        .bind(server_id.as_str())
        .bind(org.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The client identity to use with a server's authorization server, opened: the one
    /// discovery recorded, else `None`. The admin's secret stands in when the recorded client is
    /// the admin's own.
    pub async fn oauth_client(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
    ) -> Result<Option<OAuthClient>, StoreError> {
        let org = scope.org_id();
        let row = sqlx::query(
            "SELECT client_id, client_secret_sealed, redirect_uri, admin_client_id, admin_client_secret_sealed \
             FROM server_oauth WHERE server_id = $1 AND org_id = $2",
        )
        .bind(server_id.as_str())
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("server OAuth settings"))?;
        let (Some(client_id), Some(redirect_uri)) = (
            row.try_get::<Option<String>, _>("client_id")?,
            row.try_get::<Option<String>, _>("redirect_uri")?,
        ) else {
            return Ok(None);
        };
        let admin_client_id: Option<String> = row.try_get("admin_client_id")?;
        let (column, bytes): (&'static str, Option<Vec<u8>>) =
            if admin_client_id.as_deref() == Some(client_id.as_str()) {
                (
                    "admin_client_secret_sealed",
                    row.try_get("admin_client_secret_sealed")?,
                )
            } else {
                ("client_secret_sealed", row.try_get("client_secret_sealed")?)
            };
        let client_secret = bytes
            .map(|bytes| {
                self.open_text(
                    &context("server_oauth", column, server_id.as_str(), org),
                    bytes,
                    "server_oauth",
                )
            })
            .transpose()?;
        Ok(Some(OAuthClient {
            client_id,
            client_secret,
            redirect_uri,
        }))
    }

    /// The admin's hand-registered client, opened, if one was configured.
    pub async fn oauth_admin_client(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
    ) -> Result<Option<AdminClient>, StoreError> {
        let org = scope.org_id();
        let row = sqlx::query(
            "SELECT admin_client_id, admin_client_secret_sealed FROM server_oauth WHERE server_id = $1 AND org_id = $2",
        )
        .bind(server_id.as_str())
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("server OAuth settings"))?;
        let Some(client_id) = row.try_get::<Option<String>, _>("admin_client_id")? else {
            return Ok(None);
        };
        let client_secret = row
            .try_get::<Option<Vec<u8>>, _>("admin_client_secret_sealed")?
            .map(|bytes| {
                self.open_text(
                    &context(
                        "server_oauth",
                        "admin_client_secret_sealed",
                        server_id.as_str(),
                        org,
                    ),
                    bytes,
                    "server_oauth",
                )
            })
            .transpose()?;
        Ok(Some(AdminClient {
            client_id,
            client_secret,
        }))
    }

    /// Remembers an authorization until its callback; expired ones are swept on the way.
    #[expect(
        clippy::disallowed_methods,
        reason = "seals the value, or checks its length before sealing it (S9)"
    )]
    pub async fn create_upstream_oauth_pending(
        &self,
        scope: &OrgScope,
        pending: NewPendingAuthorization,
    ) -> Result<(), StoreError> {
        if let UpstreamAccount::Member(user) = &pending.account
            && user != &pending.started_by
        {
            return Err(StoreError::Invalid {
                field: "account",
                reason: "a member connects only their own account".to_owned(),
            });
        }
        let org = scope.org_id();
        let now = unix_now();
        sqlx::query("DELETE FROM upstream_oauth_pending WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let sealed = self.vault.seal(
            &context(
                "upstream_oauth_pending",
                "verifier_sealed",
                &pending.state_digest,
                org,
            ),
            pending.verifier.expose_secret().as_bytes(),
        )?;
        let inserted = sqlx::query(
            "INSERT INTO upstream_oauth_pending (id, org_id, server_id, user_id, for_member, verifier_sealed, issuer, \
             client_id, redirect_uri, expires_at, created_at, resource) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
             WHERE EXISTS (SELECT 1 FROM server_oauth WHERE server_id = $3 AND org_id = $2)",
        )
        .bind(&pending.state_digest)
        .bind(org.as_str())
        .bind(pending.server_id.as_str())
        .bind(pending.started_by.as_str())
        .bind(i64::from(matches!(
            pending.account,
            UpstreamAccount::Member(_)
        )))
        .bind(sealed.into_bytes())
        .bind(&pending.issuer)
        .bind(&pending.client_id)
        .bind(&pending.redirect_uri)
        .bind(now + PENDING_LIFETIME_SECS)
        .bind(now)
        .bind(&pending.resource)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::NotFound("server OAuth settings"));
        }
        Ok(())
    }

    /// Redeems a pending authorization by the digest of its `state`: at most once, and only
    /// within its lifetime. Unknown, used and expired states all answer not found.
    pub async fn take_upstream_oauth_pending(
        &self,
        state_digest: &str,
    ) -> Result<PendingAuthorization, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT org_id, server_id, user_id, for_member, verifier_sealed, issuer, client_id, redirect_uri, resource, expires_at \
             FROM upstream_oauth_pending WHERE id = $1",
        )
        .bind(state_digest)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("authorization request"))?;
        let deleted = sqlx::query("DELETE FROM upstream_oauth_pending WHERE id = $1")
            .bind(state_digest)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let expires_at: i64 = row.try_get("expires_at")?;
        if deleted.rows_affected() != 1 || expires_at < unix_now() {
            return Err(StoreError::NotFound("authorization request"));
        }
        let org_id = OrgId::from_untrusted(row.try_get("org_id")?);
        let started_by = UserId::from_untrusted(row.try_get("user_id")?);
        let for_member: i64 = row.try_get("for_member")?;
        let verifier = self.open_text(
            &context(
                "upstream_oauth_pending",
                "verifier_sealed",
                state_digest,
                &org_id,
            ),
            row.try_get("verifier_sealed")?,
            "upstream_oauth_pending",
        )?;
        Ok(PendingAuthorization {
            scope: OrgScope { org_id },
            server_id: ServerId::from_untrusted(row.try_get("server_id")?),
            account: if for_member == 1 {
                UpstreamAccount::Member(started_by.clone())
            } else {
                UpstreamAccount::Organization
            },
            started_by,
            verifier,
            issuer: row.try_get("issuer")?,
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            resource: row.try_get("resource")?,
        })
    }

    /// Seals and stores an account's tokens, replacing any it had. Refused when the server is no
    /// longer behind OAuth in a mode this account fits, or a member left meanwhile.
    #[expect(
        clippy::disallowed_methods,
        reason = "seals the value, or checks its length before sealing it (S9)"
    )]
    pub async fn put_upstream_tokens(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        account: &UpstreamAccount,
        tokens: NewUpstreamTokens,
    ) -> Result<(), StoreError> {
        check_len(
            "access_token",
            tokens.access_token.expose_secret(),
            MAX_SECRET_BYTES,
        )?;
        if let Some(refresh) = &tokens.refresh_token {
            check_len("refresh_token", refresh.expose_secret(), MAX_SECRET_BYTES)?;
        }
        let org = scope.org_id();
        let mut tx = self.pool.begin().await?;
        let mode: String =
            sqlx::query("SELECT mode FROM server_oauth WHERE server_id = $1 AND org_id = $2")
                .bind(server_id.as_str())
                .bind(org.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("server OAuth settings"))?
                .try_get("mode")?;
        let fits = matches!(
            (OAuthMode::parse(&mode)?, account),
            (OAuthMode::Organization, UpstreamAccount::Organization)
                | (OAuthMode::Member, UpstreamAccount::Member(_))
        );
        if !fits {
            return Err(StoreError::Conflict(format!(
                "the server's OAuth mode changed to {mode} while this account was connecting; connect again"
            )));
        }
        if let UpstreamAccount::Member(user) = account {
            let member =
                sqlx::query("SELECT 1 AS one FROM memberships WHERE org_id = $1 AND user_id = $2")
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if member.is_none() {
                return Err(StoreError::NotFound("member"));
            }
        }
        let existing: Option<(String, i64)> = sqlx::query(
            "SELECT id, created_at FROM upstream_oauth_tokens WHERE server_id = $1 AND org_id = $2 AND COALESCE(user_id, '') = $3",
        )
        .bind(server_id.as_str())
        .bind(org.as_str())
        .bind(account.user_key())
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| Ok::<_, StoreError>((row.try_get("id")?, row.try_get("created_at")?)))
        .transpose()?;
        // A fresh row id on every write: the sealed values are bound to it, and a replaced
        // token's ciphertext can never be confused with the new one's.
        let id = uuid::Uuid::new_v4().to_string();
        let access = self.vault.seal(
            &context("upstream_oauth_tokens", "access_token_sealed", &id, org),
            tokens.access_token.expose_secret().as_bytes(),
        )?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|refresh| {
                self.vault.seal(
                    &context("upstream_oauth_tokens", "refresh_token_sealed", &id, org),
                    refresh.expose_secret().as_bytes(),
                )
            })
            .transpose()?
            .map(SealedRecord::into_bytes);
        let now = unix_now();
        let created_at = match &existing {
            Some((old_id, created_at)) => {
                sqlx::query("DELETE FROM upstream_oauth_tokens WHERE id = $1")
                    .bind(old_id)
                    .execute(&mut *tx)
                    .await?;
                *created_at
            }
            None => now,
        };
        sqlx::query(
            "INSERT INTO upstream_oauth_tokens (id, org_id, server_id, user_id, access_token_sealed, refresh_token_sealed, \
             expires_at, scope, created_at, updated_at, resource) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(org.as_str())
        .bind(server_id.as_str())
        .bind(account.user_id())
        .bind(access.into_bytes())
        .bind(refresh)
        .bind(tokens.expires_at)
        .bind(tokens.scope)
        .bind(created_at)
        .bind(now)
        .bind(&tokens.resource)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An account's tokens for a server, opened, or `None` when it never connected.
    pub async fn upstream_tokens(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        account: &UpstreamAccount,
    ) -> Result<Option<UpstreamTokens>, StoreError> {
        let org = scope.org_id();
        let Some(row) = sqlx::query(
            "SELECT id, access_token_sealed, refresh_token_sealed, expires_at, scope, resource FROM upstream_oauth_tokens \
             WHERE server_id = $1 AND org_id = $2 AND COALESCE(user_id, '') = $3",
        )
        .bind(server_id.as_str())
        .bind(org.as_str())
        .bind(account.user_key())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let access_token = self.open_text(
            &context("upstream_oauth_tokens", "access_token_sealed", &id, org),
            row.try_get("access_token_sealed")?,
            "upstream_oauth_tokens",
        )?;
        let refresh_token = row
            .try_get::<Option<Vec<u8>>, _>("refresh_token_sealed")?
            .map(|bytes| {
                self.open_text(
                    &context("upstream_oauth_tokens", "refresh_token_sealed", &id, org),
                    bytes,
                    "upstream_oauth_tokens",
                )
            })
            .transpose()?;
        Ok(Some(UpstreamTokens {
            access_token,
            refresh_token,
            expires_at: row.try_get("expires_at")?,
            scope: row.try_get("scope")?,
            resource: row.try_get("resource")?,
        }))
    }

    /// An account's connection metadata, without opening any token.
    pub async fn upstream_connection(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        account: &UpstreamAccount,
    ) -> Result<Option<UpstreamConnection>, StoreError> {
        let row = sqlx::query(
            "SELECT expires_at, scope, refresh_token_sealed IS NOT NULL AS refreshable, created_at, updated_at \
             FROM upstream_oauth_tokens WHERE server_id = $1 AND org_id = $2 AND COALESCE(user_id, '') = $3",
        )
        .bind(server_id.as_str())
        .bind(scope.org_id().as_str())
        .bind(account.user_key())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(UpstreamConnection {
                expires_at: row.try_get("expires_at")?,
                scope: row.try_get("scope")?,
                refreshable: flag(&row, "refreshable")?,
                connected_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    /// Forgets an account's tokens for a server; returns what to revoke at the authorization
    /// server, or `None` when nothing was connected.
    pub async fn delete_upstream_tokens(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
        account: &UpstreamAccount,
    ) -> Result<Option<RemovedConnection>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut removed = self
            .removed_connections(&mut tx, scope, Some(server_id), Some(account))
            .await?;
        sqlx::query(
            "DELETE FROM upstream_oauth_tokens WHERE server_id = $1 AND org_id = $2 AND COALESCE(user_id, '') = $3",
        )
        .bind(server_id.as_str())
        .bind(scope.org_id().as_str())
        .bind(account.user_key())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed.pop())
    }

    /// A member's connections on every server, opened, so they can be revoked at their
    /// authorization servers before the membership (and with it the rows) goes.
    pub async fn member_upstream_connections(
        &self,
        scope: &OrgScope,
        user_id: &UserId,
    ) -> Result<Vec<RemovedConnection>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let removed = self
            .removed_connections(
                &mut tx,
                scope,
                None,
                Some(&UpstreamAccount::Member(user_id.clone())),
            )
            .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Whether a server uses OAuth, and in which mode, for the session plan.
    pub async fn server_oauth_mode(
        &self,
        scope: &OrgScope,
        server_id: &ServerId,
    ) -> Result<Option<OAuthMode>, StoreError> {
        sqlx::query("SELECT mode FROM server_oauth WHERE server_id = $1 AND org_id = $2")
            .bind(server_id.as_str())
            .bind(scope.org_id().as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| OAuthMode::parse(&row.try_get::<String, _>("mode")?))
            .transpose()
    }

    async fn removed_connections(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        scope: &OrgScope,
        server_id: Option<&ServerId>,
        account: Option<&UpstreamAccount>,
    ) -> Result<Vec<RemovedConnection>, StoreError> {
        let org = scope.org_id();
        let rows = sqlx::query(
            "SELECT id, server_id, access_token_sealed, refresh_token_sealed FROM upstream_oauth_tokens \
             WHERE org_id = $1 AND ($2 = '' OR server_id = $2) AND ($3 = 0 OR COALESCE(user_id, '') = $4)",
        )
        .bind(org.as_str())
        .bind(server_id.map_or("", ServerId::as_str))
        .bind(i64::from(account.is_some()))
        .bind(account.map_or("", UpstreamAccount::user_key))
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let token = match row.try_get::<Option<Vec<u8>>, _>("refresh_token_sealed")? {
                    Some(bytes) => self.open_text(
                        &context("upstream_oauth_tokens", "refresh_token_sealed", &id, org),
                        bytes,
                        "upstream_oauth_tokens",
                    )?,
                    None => self.open_text(
                        &context("upstream_oauth_tokens", "access_token_sealed", &id, org),
                        row.try_get("access_token_sealed")?,
                        "upstream_oauth_tokens",
                    )?,
                };
                Ok(RemovedConnection {
                    server_id: ServerId::from_untrusted(row.try_get("server_id")?),
                    token,
                })
            })
            .collect()
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "seals the value, or checks its length before sealing it (S9)"
    )]
    fn open_text(
        &self,
        context: &RecordContext<'_>,
        bytes: Vec<u8>,
        table: &'static str,
    ) -> Result<SecretString, StoreError> {
        let opened = self.vault.open(context, &SealedRecord::from_bytes(bytes))?;
        let text = std::str::from_utf8(opened.expose_secret())
            .map_err(|_| StoreError::corrupt(table, "a sealed value is not UTF-8"))?;
        Ok(SecretString::from(text))
    }
}

fn flag(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    // SQLite answers a boolean expression as an integer, PostgreSQL as a boolean.
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

fn server_oauth_from_row(row: &AnyRow) -> Result<ServerOAuth, StoreError> {
    let issuer: Option<String> = row.try_get("issuer")?;
    let authorization_endpoint: Option<String> = row.try_get("authorization_endpoint")?;
    let token_endpoint: Option<String> = row.try_get("token_endpoint")?;
    let authorization_server = match (issuer, authorization_endpoint, token_endpoint) {
        (Some(issuer), Some(authorization_endpoint), Some(token_endpoint)) => {
            Some(AuthorizationServer {
                issuer,
                authorization_endpoint,
                token_endpoint,
                revocation_endpoint: row.try_get("revocation_endpoint")?,
                iss_parameter_supported: row.try_get::<i64, _>("iss_parameter_supported")? == 1,
            })
        }
        _ => None,
    };
    Ok(ServerOAuth {
        server_id: ServerId::from_untrusted(row.try_get("server_id")?),
        mode: OAuthMode::parse(&row.try_get::<String, _>("mode")?)?,
        scopes: split_scopes(&row.try_get::<String, _>("scopes")?),
        admin_client_id: row.try_get("admin_client_id")?,
        admin_client_secret_set: flag(row, "secret_set")?,
        authorization_server,
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
