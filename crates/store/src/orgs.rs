//! Organizations: creation by the operator, and the scoped read of the caller's own organization.

use sqlx::Row;
use sqlx::any::AnyRow;

use auth::{DeleteOrganization, Permit};

use crate::{OrgId, OrgScope, ServerId, Store, StoreError, UserId, normalize_email, unix_now};

/// An organization as the store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Its id.
    pub id: OrgId,
    /// Its URL name (`/o/{slug}/mcp` later).
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// When it was created (Unix seconds).
    pub created_at: i64,
}

impl Organization {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Organization {
            id: OrgId::from_untrusted(row.try_get("id")?),
            slug: row.try_get("slug")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// What [`Store::delete_organization`] removed, and what the caller must still clean up outside
/// the database (install images, live sessions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedOrganization {
    /// The organization as it was.
    pub organization: Organization,
    /// Its servers, whose install images and sessions go next.
    pub servers: Vec<ServerId>,
    /// How many memberships went with it.
    pub members: usize,
    /// How many of those members belonged to no other organization and were deleted as users.
    pub users_deleted: usize,
}

/// Checks an organization slug: 1 to 63 of `a-z`, `0-9`, `-`, starting with a letter or digit.
pub fn validate_slug(slug: &str) -> Result<(), StoreError> {
    let valid = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "slug",
            reason: "use 1 to 63 lower-case letters, digits and dashes, not starting with a dash"
                .to_owned(),
        })
    }
}

/// Checks a human-readable name: not blank, at most `max_chars`, no control characters (which
/// could forge lines in a terminal or a log).
pub(crate) fn validate_display_name(name: &str, max_chars: usize) -> Result<(), StoreError> {
    if name.trim().is_empty()
        || name.chars().count() > max_chars
        || name.chars().any(char::is_control)
    {
        return Err(StoreError::Invalid {
            field: "name",
            reason: format!("must be 1 to {max_chars} characters without control characters"),
        });
    }
    Ok(())
}

impl Store {
    /// Creates an organization with its first owner (created as a user if new) and the default
    /// `allow *` tool rules for owners, admins and members. Operator action.
    pub async fn create_organization(
        &self,
        slug: &str,
        name: &str,
        owner_email: &str,
    ) -> Result<(OrgScope, Organization, UserId), StoreError> {
        validate_slug(slug)?;
        validate_display_name(name, 200)?;
        let email = normalize_email(owner_email)?;
        let now = unix_now();
        let org = Organization {
            id: OrgId::random(),
            slug: slug.to_owned(),
            name: name.to_owned(),
            created_at: now,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO organizations (id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(org.id.as_str())
        .bind(slug)
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            crate::error::conflict_on_unique(e, || {
                format!("an organization with slug {slug:?} already exists")
            })
        })?;
        let user_id = crate::members::ensure_user(&mut tx, &email, now).await?;
        sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
            .bind(org.id.as_str())
            .bind(user_id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        crate::tool_rules::seed_default_rules(&mut tx, &org.id, now).await?;
        tx.commit().await?;
        let scope = OrgScope {
            org_id: org.id.clone(),
        };
        Ok((scope, org, user_id))
    }

    /// The operator's way into an organization by slug, for the local admin CLI only: whoever runs
    /// it already holds the root secret and the database.
    pub async fn operator_scope(&self, slug: &str) -> Result<OrgScope, StoreError> {
        let row = sqlx::query("SELECT id FROM organizations WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("organization"))?;
        Ok(OrgScope {
            org_id: OrgId::from_untrusted(row.try_get("id")?),
        })
    }

    /// The data plane's way back into the organization of a session it already authenticated,
    /// by id: only the credential provider uses it, to open the secrets of that session's
    /// servers.
    pub async fn session_scope(&self, org_id: &str) -> Result<OrgScope, StoreError> {
        let row = sqlx::query("SELECT id FROM organizations WHERE id = $1")
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("organization"))?;
        Ok(OrgScope {
            org_id: OrgId::from_untrusted(row.try_get("id")?),
        })
    }

    /// The scoped organization itself.
    pub async fn organization(&self, scope: &OrgScope) -> Result<Organization, StoreError> {
        let row = sqlx::query("SELECT id, slug, name, created_at FROM organizations WHERE id = $1")
            .bind(scope.org_id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("organization"))?;
        Organization::from_row(&row)
    }

    /// Deletes the scoped organization and everything it holds, in one transaction: its servers
    /// with their variables, files, images, OAuth settings and tokens, logs; its tool rules,
    /// memberships and access tokens (all by foreign-key cascade), and then every former member
    /// who is now in no organization. `confirm` must repeat the organization's slug.
    pub async fn delete_organization(
        &self,
        scope: &OrgScope,
        _permit: &Permit<DeleteOrganization>,
        confirm: &str,
    ) -> Result<DeletedOrganization, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Taking the lock first means no member or server can be added between the reads below
        // and the delete, so the returned lists are complete.
        crate::members::lock_organization(&mut tx, scope).await?;
        let org = scope.org_id().as_str();
        let row = sqlx::query("SELECT id, slug, name, created_at FROM organizations WHERE id = $1")
            .bind(org)
            .fetch_one(&mut *tx)
            .await?;
        let organization = Organization::from_row(&row)?;
        if confirm != organization.slug {
            return Err(StoreError::Invalid {
                field: "confirm",
                reason: "must repeat the organization's slug exactly, to confirm the deletion"
                    .to_owned(),
            });
        }
        let servers = sqlx::query("SELECT id FROM servers WHERE org_id = $1 ORDER BY id")
            .bind(org)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok(ServerId::from_untrusted(&row.try_get::<String, _>("id")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let members = sqlx::query("SELECT user_id FROM memberships WHERE org_id = $1")
            .bind(org)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok(UserId::from_untrusted(
                    &row.try_get::<String, _>("user_id")?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Every tenant table references organizations (id) ON DELETE CASCADE (SQLite connections
        // enable foreign keys), so this one statement removes every row the organization owned.
        sqlx::query("DELETE FROM organizations WHERE id = $1")
            .bind(org)
            .execute(&mut *tx)
            .await?;
        let mut users_deleted = 0;
        for user in &members {
            let deleted = sqlx::query(
                "DELETE FROM users WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)",
            )
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
            users_deleted += usize::try_from(deleted.rows_affected()).unwrap_or(0);
        }
        tx.commit().await?;
        self.tokens.forget_org(scope.org_id());
        Ok(DeletedOrganization {
            organization,
            servers,
            members: members.len(),
            users_deleted,
        })
    }
}
