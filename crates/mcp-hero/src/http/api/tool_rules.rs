//! `/api/v1/tool-rules`: which tools each role or member may list and call (S7); any member
//! reads, owners and admins change them, and every committed change is reported.

use auth::tool_access::{Effect, Subject, ToolPattern};
use auth::{ManageServers, authorize};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use store::{ToolRuleId, ToolRuleView as StoredToolRule, UserId};
use utoipa::ToSchema;

use super::RoleName;
use crate::changes::Change;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Caller};

/// Who a rule is about: `{"role": "member"}` or `{"member": "<user id>"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SubjectBody {
    /// Every member holding this role.
    Role(RoleName),
    /// One member, by user id.
    Member(String),
}

/// What a matching rule does; a matching deny always wins.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EffectName {
    /// Grants the tool unless a deny also matches.
    Allow,
    /// Hides and refuses the tool.
    Deny,
}

impl From<EffectName> for Effect {
    fn from(name: EffectName) -> Self {
        match name {
            EffectName::Allow => Effect::Allow,
            EffectName::Deny => Effect::Deny,
        }
    }
}

impl From<Effect> for EffectName {
    fn from(effect: Effect) -> Self {
        match effect {
            Effect::Allow => EffectName::Allow,
            Effect::Deny => EffectName::Deny,
        }
    }
}

/// One tool access rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ToolRuleView {
    id: String,
    subject: SubjectBody,
    effect: EffectName,
    /// A glob over canonical `server__tool` names: `*` any run of characters, `?` one.
    pattern: String,
    /// Unix seconds.
    created_at: i64,
}

impl From<StoredToolRule> for ToolRuleView {
    fn from(rule: StoredToolRule) -> Self {
        ToolRuleView {
            id: rule.id.to_string(),
            subject: match rule.subject {
                Subject::Role(role) => SubjectBody::Role(role.into()),
                Subject::Member(user) => SubjectBody::Member(user.to_string()),
            },
            effect: rule.effect.into(),
            pattern: rule.pattern.to_string(),
            created_at: rule.created_at,
        }
    }
}

/// Add a rule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToolRuleRequest {
    subject: SubjectBody,
    effect: EffectName,
    /// Letters, digits, `_`, `-`, `.`, `/` and the wildcards `*`, `?`; at most 162 characters.
    pattern: String,
}

fn rules_changed(state: &AppState, caller: &Caller) {
    state.changes.changed(Change::ToolRules {
        scope: caller.scope.clone(),
    });
}

/// Every tool access rule of the caller's organization.
#[utoipa::path(
    get, path = "/api/v1/tool-rules", tag = "tool-rules", security(("bearer" = [])),
    responses((status = 200, body = [ToolRuleView]), (status = 401, description = "Missing or bad token"))
)]
pub async fn list_tool_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ToolRuleView>>, ApiError> {
    let rules = state.store.list_tool_rules(&caller.scope).await?;
    Ok(Json(rules.into_iter().map(ToolRuleView::from).collect()))
}

/// Add a rule (owners and admins).
#[utoipa::path(
    post, path = "/api/v1/tool-rules", tag = "tool-rules", security(("bearer" = [])), request_body = CreateToolRuleRequest,
    responses(
        (status = 201, body = ToolRuleView), (status = 400, description = "Bad pattern, subject or unknown field"),
        (status = 403, description = "Role may not manage tool rules"),
        (status = 404, description = "The member is not in this organization"), (status = 409, description = "The rule exists")
    )
)]
pub async fn create_tool_rule(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateToolRuleRequest>,
) -> Result<(StatusCode, Json<ToolRuleView>), ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    let pattern = ToolPattern::parse(&request.pattern)
        .map_err(|error| ApiError::BadRequest(format!("invalid pattern: {error}")))?;
    let subject = match request.subject {
        SubjectBody::Role(role) => Subject::Role(role.into()),
        SubjectBody::Member(user) => Subject::Member(UserId::from_untrusted(&user)),
    };
    let rule = state
        .store
        .create_tool_rule(
            &caller.scope,
            &permit,
            subject,
            request.effect.into(),
            pattern,
        )
        .await?;
    rules_changed(&state, &caller);
    Ok((StatusCode::CREATED, Json(rule.into())))
}

/// Delete a rule (owners and admins).
#[utoipa::path(
    delete, path = "/api/v1/tool-rules/{rule_id}", tag = "tool-rules", security(("bearer" = [])),
    params(("rule_id" = String, Path, description = "The rule's id")),
    responses(
        (status = 204, description = "Deleted"), (status = 403, description = "Role may not manage tool rules"),
        (status = 404, description = "No such rule in this organization")
    )
)]
pub async fn delete_tool_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(rule_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let permit = authorize::<ManageServers>(caller.role)?;
    state
        .store
        .delete_tool_rule(
            &caller.scope,
            &permit,
            &ToolRuleId::from_untrusted(&rule_id),
        )
        .await?;
    rules_changed(&state, &caller);
    Ok(StatusCode::NO_CONTENT)
}
