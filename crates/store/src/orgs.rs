//! Organizations: creation by the operator, and the scoped read of the caller's own organization.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{OrgId, OrgScope, Store, StoreError, UserId, normalize_email, unix_now};

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
}
