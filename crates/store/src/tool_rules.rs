//! Tool access rules (S7): the allow and deny patterns `auth::tool_access` decides with, stored per
//! organization; changes need a `ManageServers` permit.
//!
//! Nothing is allowed by default, so every organization is created with `allow *` rules for the
//! owner, admin and member roles (migration 0002 adds them to organizations that existed before).
//! A rule about one member goes with that membership (foreign key, and `remove_member` says so).

use auth::tool_access::{Effect, Subject, ToolPattern, ToolRule};
use auth::{ManageServers, Permit, Role};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{OrgId, OrgScope, Store, StoreError, ToolRuleId, UserId, unix_now};

/// The roles a new organization allows every tool (`allow *`); viewers get nothing until an
/// admin says otherwise.
pub const DEFAULT_ALLOWED_ROLES: [Role; 3] = [Role::Owner, Role::Admin, Role::Member];

/// A stored rule with its id and age, for listing and deleting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRuleView {
    /// Its id.
    pub id: ToolRuleId,
    /// Who it applies to.
    pub subject: Subject<UserId>,
    /// Allow or deny.
    pub effect: Effect,
    /// Which canonical `server__tool` names it matches.
    pub pattern: ToolPattern,
    /// When it was created (Unix seconds).
    pub created_at: i64,
}

impl ToolRuleView {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::corrupt("tool_rules", reason);
        let subject = match row.try_get::<String, _>("subject_kind")?.as_str() {
            "role" => {
                let role: Option<String> = row.try_get("role")?;
                Subject::Role(
                    role.ok_or_else(|| corrupt("role rule without a role".to_owned()))?
                        .parse()
                        .map_err(|e: auth::RoleParseError| corrupt(e.to_string()))?,
                )
            }
            "member" => {
                let user: Option<String> = row.try_get("user_id")?;
                Subject::Member(UserId::from_untrusted(
                    &user.ok_or_else(|| corrupt("member rule without a user".to_owned()))?,
                ))
            }
            other => return Err(corrupt(format!("unknown subject kind {other:?}"))),
        };
        let effect = match row.try_get::<String, _>("effect")?.as_str() {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            other => return Err(corrupt(format!("unknown effect {other:?}"))),
        };
        let pattern: String = row.try_get("pattern")?;
        Ok(ToolRuleView {
            id: ToolRuleId::from_untrusted(row.try_get("id")?),
            subject,
            effect,
            pattern: ToolPattern::parse(&pattern).map_err(|e| corrupt(e.to_string()))?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// The rule query with a tail appended; a macro so the SQL stays a `&'static str`.
macro_rules! select_rules {
    ($tail:literal) => {
        concat!(
            "SELECT id, subject_kind, role, user_id, effect, pattern, created_at FROM tool_rules WHERE org_id = $1",
            $tail
        )
    };
}

fn subject_columns(
    subject: &Subject<UserId>,
) -> (&'static str, Option<&'static str>, Option<&str>) {
    match subject {
        Subject::Role(role) => ("role", Some(role.as_str()), None),
        Subject::Member(user) => ("member", None, Some(user.as_str())),
    }
}

async fn insert_rule(
    tx: &mut Transaction<'_, Any>,
    org_id: &OrgId,
    id: &ToolRuleId,
    subject: &Subject<UserId>,
    effect: Effect,
    pattern: &ToolPattern,
    now: i64,
) -> Result<(), StoreError> {
    let (kind, role, user) = subject_columns(subject);
    sqlx::query(
        "INSERT INTO tool_rules (id, org_id, subject_kind, role, user_id, effect, pattern, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.as_str())
    .bind(org_id.as_str())
    .bind(kind)
    .bind(role)
    .bind(user)
    .bind(effect.as_str())
    .bind(pattern.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
            "this organization already has the rule {} {pattern}",
            effect.as_str()
        )),
        // The member left between the check and the insert.
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound("member")
        }
        _ => StoreError::Database(error),
    })?;
    Ok(())
}

/// Gives a new organization its `allow *` rules, inside its creation's transaction.
pub(crate) async fn seed_default_rules(
    tx: &mut Transaction<'_, Any>,
    org_id: &OrgId,
    now: i64,
) -> Result<(), StoreError> {
    let everything = ToolPattern::parse("*").map_err(|e| StoreError::Invalid {
        field: "pattern",
        reason: e.to_string(),
    })?;
    for role in DEFAULT_ALLOWED_ROLES {
        insert_rule(
            tx,
            org_id,
            &ToolRuleId::random(),
            &Subject::Role(role),
            Effect::Allow,
            &everything,
            now,
        )
        .await?;
    }
    Ok(())
}

impl Store {
    /// Every rule of the scoped organization with its id, for the API.
    pub async fn list_tool_rules(&self, scope: &OrgScope) -> Result<Vec<ToolRuleView>, StoreError> {
        // Oldest first, then by subject, effect and pattern, so the order is stable.
        let rows = sqlx::query(select_rules!(
            " ORDER BY created_at, subject_kind, COALESCE(role, ''), COALESCE(user_id, ''), effect, pattern"
        ))
        .bind(scope.org_id().as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ToolRuleView::from_row).collect()
    }

    /// Every rule of the scoped organization, ready for `auth::tool_access::MemberToolAccess`:
    /// what the data plane decides each list and call with.
    pub async fn tool_rules(&self, scope: &OrgScope) -> Result<Vec<ToolRule<UserId>>, StoreError> {
        Ok(self
            .list_tool_rules(scope)
            .await?
            .into_iter()
            .map(|rule| ToolRule {
                subject: rule.subject,
                effect: rule.effect,
                pattern: rule.pattern,
            })
            .collect())
    }

    /// Adds a rule. A member subject must belong to the scoped organization (else not found, S8);
    /// the same subject, effect and pattern twice is a conflict.
    pub async fn create_tool_rule(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        subject: Subject<UserId>,
        effect: Effect,
        pattern: ToolPattern,
    ) -> Result<ToolRuleView, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write first: on SQLite a transaction that reads and then writes fails at once
        // (`SQLITE_BUSY`, no busy wait) if another connection wrote in between; one that starts
        // with a write waits its turn. It also keeps the member from being removed meanwhile.
        crate::members::lock_organization(&mut tx, scope).await?;
        if let Subject::Member(user) = &subject {
            crate::members::fetch_member(&mut *tx, scope, user).await?;
        }
        let id = ToolRuleId::random();
        insert_rule(
            &mut tx,
            scope.org_id(),
            &id,
            &subject,
            effect,
            &pattern,
            unix_now(),
        )
        .await?;
        let row = sqlx::query(select_rules!(" AND id = $2"))
            .bind(scope.org_id().as_str())
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let created = ToolRuleView::from_row(&row)?;
        tx.commit().await?;
        Ok(created)
    }

    /// Deletes a rule; another organization's rule is not found (S8).
    pub async fn delete_tool_rule(
        &self,
        scope: &OrgScope,
        _permit: &Permit<ManageServers>,
        id: &ToolRuleId,
    ) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM tool_rules WHERE org_id = $1 AND id = $2")
            .bind(scope.org_id().as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound("tool rule"));
        }
        Ok(())
    }
}
