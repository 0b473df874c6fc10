//! Personal access tokens: issuing (digest only), listing metadata, revoking, and authenticating.

use auth::pat::TokenDigest;
use auth::{ManageMembers, Permit, Role};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{OrgId, OrgScope, Store, StoreError, TokenId, UserId, unix_now};

/// Who is calling: a verified token's member, inside the organization the token belongs to.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The organization the caller may act in.
    pub scope: OrgScope,
    /// That organization's slug, as it appears in `/o/{org}/mcp`.
    pub org_slug: String,
    /// The calling user.
    pub user_id: UserId,
    /// The calling user's email.
    pub email: String,
    /// The caller's role in the organization (at most `TOKEN_CACHE_TTL` old).
    pub role: Role,
    /// The token that authenticated the call.
    pub token_id: TokenId,
}

/// Why a well-formed token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// No such token (never issued, or deleted with its member).
    Unknown,
    /// The token passed its expiry time.
    Expired,
    /// The token was revoked.
    Revoked,
}

/// A token's metadata; the token itself is never stored, so it can never be returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMeta {
    /// The token's id (not the token).
    pub id: TokenId,
    /// The name its owner gave it.
    pub name: String,
    /// The member it acts as.
    pub user_id: UserId,
    /// That member's email.
    pub email: String,
    /// When it was issued (Unix seconds).
    pub created_at: i64,
    /// When it stops working, if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// When it was last used, to the minute.
    pub last_used_at: Option<i64>,
}

impl TokenMeta {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(TokenMeta {
            id: TokenId::from_untrusted(row.try_get("id")?),
            name: row.try_get("name")?,
            user_id: UserId::from_untrusted(row.try_get("user_id")?),
            email: row.try_get("email")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }
}

/// Whose tokens an operation may touch: the caller's own, or (with a permit) any member's.
#[derive(Debug, Clone, Copy)]
pub enum TokenOwner<'a> {
    /// Only this user's tokens.
    Member(&'a UserId),
    /// Every member's tokens, for those who manage members.
    AnyMember(&'a Permit<ManageMembers>),
}

macro_rules! select_tokens {
    ($tail:literal) => {
        concat!(
            "SELECT t.id, t.name, t.user_id, u.email, t.created_at, t.expires_at, t.revoked_at, t.last_used_at \
             FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.org_id = $1",
            $tail
        )
    };
}

/// `last_used_at` is written at most once a minute per token, keeping writes off most requests.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;

impl Store {
    /// Stores a new token's digest for a member of the scoped organization.
    pub async fn create_token(
        &self,
        scope: &OrgScope,
        user_id: &UserId,
        name: &str,
        expires_at: Option<i64>,
        digest: &TokenDigest,
    ) -> Result<TokenMeta, StoreError> {
        crate::orgs::validate_display_name(name, 100)?;
        // The member must exist in this organization; another organization's user is not found.
        self.member(scope, user_id).await?;
        let id = TokenId::random();
        sqlx::query(
            "INSERT INTO access_tokens (id, org_id, user_id, name, lookup_key, token_digest, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.as_str())
        .bind(scope.org_id().as_str())
        .bind(user_id.as_str())
        .bind(name)
        .bind(digest.lookup_key())
        .bind(digest.as_bytes().to_vec())
        .bind(unix_now())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        self.token(scope, &id).await
    }

    async fn token(&self, scope: &OrgScope, id: &TokenId) -> Result<TokenMeta, StoreError> {
        let row = sqlx::query(select_tokens!(" AND t.id = $2"))
            .bind(scope.org_id().as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("token"))?;
        TokenMeta::from_row(&row)
    }

    /// Lists token metadata in the scoped organization, newest first.
    pub async fn list_tokens(
        &self,
        scope: &OrgScope,
        owner: TokenOwner<'_>,
    ) -> Result<Vec<TokenMeta>, StoreError> {
        let rows = match owner {
            TokenOwner::Member(user_id) => {
                sqlx::query(select_tokens!(
                    " AND t.user_id = $2 ORDER BY t.created_at DESC, t.id"
                ))
                .bind(scope.org_id().as_str())
                .bind(user_id.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            TokenOwner::AnyMember(_) => {
                sqlx::query(select_tokens!(" ORDER BY t.created_at DESC, t.id"))
                    .bind(scope.org_id().as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(TokenMeta::from_row).collect()
    }

    /// Revokes a token; revoking twice is harmless. A token outside `owner`'s reach is not found.
    pub async fn revoke_token(
        &self,
        scope: &OrgScope,
        owner: TokenOwner<'_>,
        id: &TokenId,
    ) -> Result<TokenMeta, StoreError> {
        let token = self.token(scope, id).await?;
        if let TokenOwner::Member(user_id) = owner
            && &token.user_id != user_id
        {
            return Err(StoreError::NotFound("token"));
        }
        sqlx::query("UPDATE access_tokens SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL")
            .bind(unix_now())
            .bind(scope.org_id().as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        self.tokens.forget_token(id);
        self.token(scope, id).await
    }

    /// Verifies a presented token's digest and returns who it acts for (the only way, besides the
    /// operator path, to obtain an [`OrgScope`]). The digest is compared in constant time.
    pub async fn authenticate_token(
        &self,
        presented: &TokenDigest,
    ) -> Result<Result<Principal, TokenRejection>, StoreError> {
        let now = unix_now();
        if let Some(principal) = self.tokens.get(presented, now) {
            return Ok(Ok(principal));
        }
        // Taken before the query, so an invalidation racing with it keeps the result out of the cache.
        let generation = self.tokens.generation();
        let row = sqlx::query(
            "SELECT t.id, t.org_id, t.user_id, t.token_digest, t.expires_at, t.revoked_at, t.last_used_at, m.role, u.email, o.slug \
             FROM access_tokens t \
             JOIN memberships m ON m.org_id = t.org_id AND m.user_id = t.user_id \
             JOIN users u ON u.id = t.user_id \
             JOIN organizations o ON o.id = t.org_id \
             WHERE t.lookup_key = $1",
        )
        .bind(presented.lookup_key())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Err(TokenRejection::Unknown));
        };
        let stored_digest: Vec<u8> = row.try_get("token_digest")?;
        let stored = TokenDigest::from_stored(&stored_digest)
            .ok_or_else(|| StoreError::corrupt("access_tokens", "digest is not 32 bytes"))?;
        if !presented.matches(&stored) {
            return Ok(Err(TokenRejection::Unknown));
        }
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            return Ok(Err(TokenRejection::Revoked));
        }
        let expires_at: Option<i64> = row.try_get("expires_at")?;
        if expires_at.is_some_and(|expires_at| expires_at <= now) {
            return Ok(Err(TokenRejection::Expired));
        }
        let token_id = TokenId::from_untrusted(row.try_get("id")?);
        let last_used: Option<i64> = row.try_get("last_used_at")?;
        if last_used.is_none_or(|last| now - last >= LAST_USED_RESOLUTION_SECONDS) {
            sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(token_id.as_str())
                .execute(&self.pool)
                .await?;
        }
        let role: String = row.try_get("role")?;
        let principal = Principal {
            scope: OrgScope {
                org_id: OrgId::from_untrusted(row.try_get("org_id")?),
            },
            org_slug: row.try_get("slug")?,
            user_id: UserId::from_untrusted(row.try_get("user_id")?),
            email: row.try_get("email")?,
            role: role.parse().map_err(|e: auth::RoleParseError| {
                StoreError::corrupt("memberships", e.to_string())
            })?,
            token_id,
        };
        self.tokens
            .insert(generation, presented, &principal, expires_at);
        Ok(Ok(principal))
    }
}
