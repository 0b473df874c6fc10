//! Memberships: who belongs to an organization with which role; changes need a `ManageMembers` permit.

use auth::{ManageMembers, Permit, Role, may_assign_role};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row, Transaction};

use crate::{OrgScope, Store, StoreError, UserId, normalize_email, unix_now};

/// A member of an organization as the store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user's id.
    pub user_id: UserId,
    /// The user's email (lower case).
    pub email: String,
    /// The role in this organization.
    pub role: Role,
    /// When the membership began (Unix seconds).
    pub created_at: i64,
}

impl Member {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let role: String = row.try_get("role")?;
        Ok(Member {
            user_id: UserId::from_untrusted(row.try_get("user_id")?),
            email: row.try_get("email")?,
            role: role.parse().map_err(|e: auth::RoleParseError| {
                StoreError::corrupt("memberships", e.to_string())
            })?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// The member query with a tail appended; a macro so the SQL stays a `&'static str`.
macro_rules! select_members {
    ($tail:literal) => {
        concat!(
            "SELECT m.user_id, u.email, m.role, m.created_at \
             FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1",
            $tail
        )
    };
}

/// Finds the user with this (normalized) email, creating it if new.
pub(crate) async fn ensure_user(
    tx: &mut Transaction<'_, Any>,
    email: &str,
    now: i64,
) -> Result<UserId, StoreError> {
    sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING")
        .bind(UserId::random().as_str())
        .bind(email)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&mut **tx)
        .await?;
    Ok(UserId::from_untrusted(row.try_get("id")?))
}

/// Serializes membership changes within one organization: a no-op update takes the organization
/// row's lock on PostgreSQL and the write lock on SQLite, so two concurrent demotions cannot both
/// see "another owner remains".
pub(crate) async fn lock_organization(
    tx: &mut Transaction<'_, Any>,
    scope: &OrgScope,
) -> Result<(), StoreError> {
    let locked = sqlx::query("UPDATE organizations SET slug = slug WHERE id = $1")
        .bind(scope.org_id().as_str())
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(StoreError::NotFound("organization"));
    }
    Ok(())
}

/// One member of the scoped organization, read through the pool or inside a transaction.
pub(crate) async fn fetch_member<'e>(
    executor: impl Executor<'e, Database = Any>,
    scope: &OrgScope,
    user_id: &UserId,
) -> Result<Member, StoreError> {
    let row = sqlx::query(select_members!(" AND m.user_id = $2"))
        .bind(scope.org_id().as_str())
        .bind(user_id.as_str())
        .fetch_optional(executor)
        .await?
        .ok_or(StoreError::NotFound("member"))?;
    Member::from_row(&row)
}

async fn other_owners(
    tx: &mut Transaction<'_, Any>,
    scope: &OrgScope,
    user_id: &UserId,
) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS owners FROM memberships WHERE org_id = $1 AND role = 'owner' AND user_id <> $2")
        .bind(scope.org_id().as_str())
        .bind(user_id.as_str())
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("owners")?)
}

impl Store {
    /// Every member of the scoped organization, oldest first.
    pub async fn list_members(&self, scope: &OrgScope) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(select_members!(" ORDER BY m.created_at, u.email"))
            .bind(scope.org_id().as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Member::from_row).collect()
    }

    /// One member of the scoped organization; another organization's member is not found.
    pub async fn member(&self, scope: &OrgScope, user_id: &UserId) -> Result<Member, StoreError> {
        fetch_member(&self.pool, scope, user_id).await
    }

    /// Adds a person by email with a role (the invitation; sign-in arrives with OIDC).
    pub async fn add_member(
        &self,
        scope: &OrgScope,
        permit: &Permit<ManageMembers>,
        email: &str,
        role: Role,
    ) -> Result<Member, StoreError> {
        may_assign_role(permit, None, Some(role))?;
        let email = normalize_email(email)?;
        let now = unix_now();
        let mut tx = self.pool.begin().await?;
        lock_organization(&mut tx, scope).await?;
        let user_id = ensure_user(&mut tx, &email, now).await?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(scope.org_id().as_str())
        .bind(user_id.as_str())
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            crate::error::conflict_on_unique(e, || format!("{email} is already a member"))
        })?;
        let member = fetch_member(&mut *tx, scope, &user_id).await?;
        tx.commit().await?;
        Ok(member)
    }

    /// Changes a member's role; only owners touch ownership, and one owner always remains.
    pub async fn change_member_role(
        &self,
        scope: &OrgScope,
        permit: &Permit<ManageMembers>,
        user_id: &UserId,
        role: Role,
    ) -> Result<Member, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_organization(&mut tx, scope).await?;
        let current = fetch_member(&mut *tx, scope, user_id).await?;
        may_assign_role(permit, Some(current.role), Some(role))?;
        if current.role == Role::Owner
            && role != Role::Owner
            && other_owners(&mut tx, scope, user_id).await? == 0
        {
            return Err(StoreError::LastOwner);
        }
        sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND user_id = $3")
            .bind(role.as_str())
            .bind(scope.org_id().as_str())
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await?;
        let member = fetch_member(&mut *tx, scope, user_id).await?;
        tx.commit().await?;
        self.tokens.forget_member(scope.org_id(), user_id);
        Ok(member)
    }

    /// Removes a member and, with the membership, their tokens and tool rules; a user left in no
    /// organization is deleted too, so nothing of a departed person lingers.
    pub async fn remove_member(
        &self,
        scope: &OrgScope,
        permit: &Permit<ManageMembers>,
        user_id: &UserId,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_organization(&mut tx, scope).await?;
        let current = fetch_member(&mut *tx, scope, user_id).await?;
        may_assign_role(permit, Some(current.role), None)?;
        if current.role == Role::Owner && other_owners(&mut tx, scope, user_id).await? == 0 {
            return Err(StoreError::LastOwner);
        }
        // Tokens first: the foreign key cascades too, but saying it keeps PostgreSQL and SQLite alike
        // even where foreign keys were switched off by hand.
        sqlx::query("DELETE FROM access_tokens WHERE org_id = $1 AND user_id = $2")
            .bind(scope.org_id().as_str())
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await?;
        // Their tool rules go with the membership (S7): a later member of the same email starts clean.
        sqlx::query("DELETE FROM tool_rules WHERE org_id = $1 AND user_id = $2")
            .bind(scope.org_id().as_str())
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(scope.org_id().as_str())
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM memberships WHERE user_id = $1)")
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.tokens.forget_member(scope.org_id(), user_id);
        Ok(())
    }
}
