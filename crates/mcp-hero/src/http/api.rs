//! `/api/v1` handlers and their JSON views: thin handlers, one store call each (S8, S15).
//!
//! Views are built by hand from store rows, so no field reaches JSON by accident. A token's
//! secret appears in exactly one response: the one that creates it. Organization, members and
//! tokens live here; [`servers`], [`tool_rules`] and [`audit`] in their own modules. Every committed change
//! the data plane must act on is reported to [`AppState::changes`].

pub mod audit;
pub mod server_logs;
pub mod servers;
pub mod tool_rules;
pub mod upstream_oauth;
pub mod variables;

use auth::{DeleteOrganization, ManageMembers, Permit, Role, authorize};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use store::{DeletedOrganization, Member, Organization, TokenId, TokenMeta, TokenOwner, UserId};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Caller};
use crate::changes::Change;

const SECONDS_PER_DAY: i64 = 86_400;

/// A role name in the API.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Full control.
    Owner,
    /// Manages members other than owners, and the servers and tool rules.
    Admin,
    /// Uses the organization's tools.
    Member,
    /// Read only.
    Viewer,
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Self {
        match role {
            RoleName::Owner => Role::Owner,
            RoleName::Admin => Role::Admin,
            RoleName::Member => Role::Member,
            RoleName::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => RoleName::Owner,
            Role::Admin => RoleName::Admin,
            Role::Member => RoleName::Member,
            Role::Viewer => RoleName::Viewer,
        }
    }
}

/// The caller's organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    id: String,
    slug: String,
    name: String,
    /// Unix seconds.
    created_at: i64,
}

impl From<Organization> for OrganizationView {
    fn from(org: Organization) -> Self {
        OrganizationView {
            id: org.id.to_string(),
            slug: org.slug,
            name: org.name,
            created_at: org.created_at,
        }
    }
}

/// A member of the organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    user_id: String,
    email: String,
    role: RoleName,
    /// Unix seconds.
    created_at: i64,
}

impl From<Member> for MemberView {
    fn from(member: Member) -> Self {
        MemberView {
            user_id: member.user_id.to_string(),
            email: member.email,
            role: member.role.into(),
            created_at: member.created_at,
        }
    }
}

/// A token's metadata; the token itself is never stored and never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    id: String,
    name: String,
    user_id: String,
    email: String,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds; absent when the token does not expire.
    expires_at: Option<i64>,
    /// Unix seconds; absent while the token is active.
    revoked_at: Option<i64>,
    /// Unix seconds, to the minute.
    last_used_at: Option<i64>,
}

impl From<TokenMeta> for TokenView {
    fn from(token: TokenMeta) -> Self {
        TokenView {
            id: token.id.to_string(),
            name: token.name,
            user_id: token.user_id.to_string(),
            email: token.email,
            created_at: token.created_at,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
            last_used_at: token.last_used_at,
        }
    }
}

/// A new token: shown once, here; store it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenView {
    /// The bearer token. It cannot be retrieved again.
    token: String,
    /// Its metadata, as later listed.
    metadata: TokenView,
}

/// Invite a person by email with a role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    email: String,
    role: RoleName,
}

/// Change a member's role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    role: RoleName,
}

/// Create a personal access token for the caller.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    name: String,
    /// 1 to 365; the token never expires when absent.
    #[schema(minimum = 1, maximum = 365)]
    expires_in_days: Option<u16>,
}

/// Whose tokens the caller may see and revoke: everyone's with a `ManageMembers` permit, else their own.
fn token_reach<'a>(
    caller: &'a Caller,
    permit: Option<&'a Permit<ManageMembers>>,
) -> TokenOwner<'a> {
    match permit {
        Some(permit) => TokenOwner::AnyMember(permit),
        None => TokenOwner::Member(&caller.user_id),
    }
}

/// The caller's organization.
#[utoipa::path(
    get, path = "/api/v1/organization", tag = "organization", security(("bearer" = [])),
    responses((status = 200, body = OrganizationView), (status = 401, description = "Missing or bad token"))
)]
pub async fn get_organization(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OrganizationView>, ApiError> {
    Ok(Json(state.store.organization(&caller.scope).await?.into()))
}

/// Delete the organization: the body must repeat its slug.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteOrganizationRequest {
    /// The organization's slug, exactly, to confirm.
    confirm: String,
}

/// What an organization's deletion removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedOrganizationView {
    /// The deleted organization's id.
    id: String,
    /// Its slug, now free for reuse.
    slug: String,
    /// How many servers were deleted with it.
    servers: usize,
    /// How many memberships (and with them every access token) were deleted.
    members: usize,
    /// How many of those members were in no other organization and were deleted as users.
    users_deleted: usize,
}

impl From<DeletedOrganization> for DeletedOrganizationView {
    fn from(deleted: DeletedOrganization) -> Self {
        DeletedOrganizationView {
            id: deleted.organization.id.to_string(),
            slug: deleted.organization.slug,
            servers: deleted.servers.len(),
            members: deleted.members,
            users_deleted: deleted.users_deleted,
        }
    }
}

/// Delete the caller's organization and everything it holds (owners only; cannot be undone).
///
/// The body repeats the organization's slug: `{"confirm": "<slug>"}`; anything else answers 400
/// and deletes nothing. What is gone, and when:
///
/// - **Before the delete**, upstream OAuth tokens of every server are revoked at their
///   authorization servers, best effort (a failure is logged; the gateway forgets the tokens
///   either way).
/// - **At once, in one database transaction**: the organization; every server with its variables
///   (strings, sealed passwords, files), upstream OAuth settings and tokens, image records and log
///   lines; its tool rules; every membership with its access tokens, which answer 401 from then on;
///   and every member who belongs to no other organization. SQLite overwrites the freed pages
///   (`secure_delete`).
/// - **Right after the commit**: every live MCP session of the organization ends, which stops its
///   sandboxes; every server's install image directory is removed. A removal that fails is
///   retried in the background, and each start of the gateway removes image directories no
///   server owns.
/// - **Backups**: copies in database backups remain until the backup retention window rolls
///   over them; after that the data is unrecoverable.
#[utoipa::path(
    delete, path = "/api/v1/organization", tag = "organization", security(("bearer" = [])),
    request_body = DeleteOrganizationRequest,
    responses(
        (status = 200, body = DeletedOrganizationView, description = "Deleted"),
        (status = 400, description = "`confirm` does not repeat the organization's slug, or the body is malformed"),
        (status = 401, description = "Missing or bad token"),
        (status = 403, description = "Only owners may delete the organization")
    )
)]
pub async fn delete_organization(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<DeleteOrganizationRequest>,
) -> Result<Json<DeletedOrganizationView>, ApiError> {
    let permit = authorize::<DeleteOrganization>(caller.role)?;
    // Checked here as well as in the store's transaction, so a wrong confirmation revokes nothing.
    let organization = state.store.organization(&caller.scope).await?;
    if request.confirm != organization.slug {
        return Err(ApiError::BadRequest(format!(
            "invalid confirm: must repeat the organization's slug ({:?}) exactly, to confirm the deletion",
            organization.slug
        )));
    }
    state
        .upstream_oauth
        .revoke_before_deleting_organization(&caller.scope)
        .await?;
    let deleted = state
        .store
        .delete_organization(&caller.scope, &permit, &request.confirm)
        .await?;
    state.changes.changed(Change::Organization {
        org: caller.scope.org_id().clone(),
    });
    for server in &deleted.servers {
        state.images.forget(server).await;
    }
    Ok(Json(deleted.into()))
}

/// Every member of the caller's organization.
#[utoipa::path(
    get, path = "/api/v1/members", tag = "members", security(("bearer" = [])),
    responses((status = 200, body = [MemberView]), (status = 401, description = "Missing or bad token"))
)]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let members = state.store.list_members(&caller.scope).await?;
    Ok(Json(members.into_iter().map(MemberView::from).collect()))
}

/// Invite a person by email (owners and admins; only owners may add owners).
#[utoipa::path(
    post, path = "/api/v1/members", tag = "members", security(("bearer" = [])), request_body = AddMemberRequest,
    responses(
        (status = 201, body = MemberView), (status = 400, description = "Bad email, role or unknown field"),
        (status = 403, description = "Role may not manage members"), (status = 409, description = "Already a member")
    )
)]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<AddMemberRequest>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    let permit = authorize::<ManageMembers>(caller.role)?;
    let member = state
        .store
        .add_member(&caller.scope, &permit, &request.email, request.role.into())
        .await?;
    Ok((StatusCode::CREATED, Json(member.into())))
}

/// One member.
#[utoipa::path(
    get, path = "/api/v1/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = String, Path, description = "The member's user id")),
    responses((status = 200, body = MemberView), (status = 404, description = "No such member in this organization"))
)]
pub async fn get_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<MemberView>, ApiError> {
    let member = state
        .store
        .member(&caller.scope, &UserId::from_untrusted(&user_id))
        .await?;
    Ok(Json(member.into()))
}

/// Change a member's role (owners and admins; only owners touch ownership; one owner remains).
#[utoipa::path(
    patch, path = "/api/v1/members/{user_id}", tag = "members", security(("bearer" = [])), request_body = ChangeRoleRequest,
    params(("user_id" = String, Path, description = "The member's user id")),
    responses(
        (status = 200, body = MemberView), (status = 403, description = "Role may not do this"),
        (status = 404, description = "No such member in this organization"), (status = 409, description = "Would leave no owner")
    )
)]
pub async fn change_member_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
    ApiJson(request): ApiJson<ChangeRoleRequest>,
) -> Result<Json<MemberView>, ApiError> {
    let permit = authorize::<ManageMembers>(caller.role)?;
    let member = state
        .store
        .change_member_role(
            &caller.scope,
            &permit,
            &UserId::from_untrusted(&user_id),
            request.role.into(),
        )
        .await?;
    state.changes.changed(Change::Member {
        org: caller.scope.org_id().clone(),
        user: member.user_id.clone(),
    });
    Ok(Json(member.into()))
}

/// Remove a member; their tokens stop working at once.
#[utoipa::path(
    delete, path = "/api/v1/members/{user_id}", tag = "members", security(("bearer" = [])),
    params(("user_id" = String, Path, description = "The member's user id")),
    responses(
        (status = 204, description = "Removed"), (status = 403, description = "Role may not do this"),
        (status = 404, description = "No such member in this organization"), (status = 409, description = "Would leave no owner")
    )
)]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let permit = authorize::<ManageMembers>(caller.role)?;
    let user = UserId::from_untrusted(&user_id);
    // The member's upstream OAuth tokens go with the membership (S20); read them first so they
    // can also be revoked at their authorization servers once the removal is committed.
    let upstream = state
        .store
        .member_upstream_connections(&caller.scope, &user)
        .await?;
    state
        .store
        .remove_member(&caller.scope, &permit, &user)
        .await?;
    state.upstream_oauth.revoke(&caller.scope, upstream).await;
    state.changes.changed(Change::Member {
        org: caller.scope.org_id().clone(),
        user,
    });
    Ok(StatusCode::NO_CONTENT)
}

/// Token metadata: every member's for owners and admins, one's own otherwise.
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = [TokenView]))
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let permit = authorize::<ManageMembers>(caller.role).ok();
    let owner = token_reach(&caller, permit.as_ref());
    let tokens = state.store.list_tokens(&caller.scope, owner).await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

/// Create a token for the caller. The response holds the token; it is never shown again.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])), request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedTokenView), (status = 400, description = "Bad name, expiry or unknown field"))
)]
#[expect(
    clippy::disallowed_methods,
    reason = "a new token is shown once, in the answer to the caller who created it (S15)"
)]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedTokenView>), ApiError> {
    let expires_at = match request.expires_in_days {
        None => None,
        Some(days @ 1..=365) => Some(store::unix_now() + i64::from(days) * SECONDS_PER_DAY),
        Some(days) => {
            return Err(ApiError::BadRequest(format!(
                "invalid expires_in_days: {days}; expected 1 to 365, or absent for no expiry"
            )));
        }
    };
    let token = auth::pat::generate();
    let metadata = state
        .store
        .create_token(
            &caller.scope,
            &caller.user_id,
            &request.name,
            expires_at,
            &token.digest,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTokenView {
            token: token.secret.expose_secret().to_owned(),
            metadata: metadata.into(),
        }),
    ))
}

/// Revoke a token: one's own, or any member's for owners and admins.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{token_id}", tag = "tokens", security(("bearer" = [])),
    params(("token_id" = String, Path, description = "The token's id (not the token)")),
    responses((status = 204, description = "Revoked (or already revoked)"), (status = 404, description = "No such token within reach"))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let permit = authorize::<ManageMembers>(caller.role).ok();
    let owner = token_reach(&caller, permit.as_ref());
    let token = state
        .store
        .revoke_token(&caller.scope, owner, &TokenId::from_untrusted(&token_id))
        .await?;
    state.changes.changed(Change::TokenRevoked {
        org: caller.scope.org_id().clone(),
        token: token.id,
    });
    Ok(StatusCode::NO_CONTENT)
}
