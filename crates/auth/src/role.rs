//! Roles and the permission proofs they grant: this module holds the RBAC decision for the API.

use std::marker::PhantomData;

/// A member's role in an organization, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Full control, including granting and removing ownership.
    Owner,
    /// Manages members (except owners) and the organization's servers.
    Admin,
    /// Uses the organization's tools.
    Member,
    /// Reads what the organization has; changes nothing.
    Viewer,
}

/// A role name that is not one of `owner`, `admin`, `member`, `viewer`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown role {0:?}: expected one of owner, admin, member, viewer")]
pub struct RoleParseError(pub String);

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    /// The role's stable name, as stored and as shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = RoleParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or_else(|| RoleParseError(value.to_owned()))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action that needs a permission; each is a marker type so a [`Permit`] names its action.
pub trait Permission: sealed::Sealed {
    /// The roles that hold this permission. Anything not listed is denied.
    const ROLES: &'static [Role];
    /// A short name for error messages.
    const NAME: &'static str;
}

/// Invite members, change their roles, and remove them.
#[derive(Debug)]
pub struct ManageMembers;

impl Permission for ManageMembers {
    const ROLES: &'static [Role] = &[Role::Owner, Role::Admin];
    const NAME: &'static str = "manage members";
}

/// Register, change and delete the organization's MCP servers, and edit its tool access rules.
#[derive(Debug)]
pub struct ManageServers;

impl Permission for ManageServers {
    const ROLES: &'static [Role] = &[Role::Owner, Role::Admin];
    const NAME: &'static str = "manage servers and tool access rules";
}

/// Read and export the organization's audit trail: who called which tool, when, and how it ended.
#[derive(Debug)]
pub struct ViewAudit;

impl Permission for ViewAudit {
    const ROLES: &'static [Role] = &[Role::Owner, Role::Admin];
    const NAME: &'static str = "view the audit trail";
}

/// Delete the whole organization with everything it holds; owners only, since it cannot be undone.
#[derive(Debug)]
pub struct DeleteOrganization;

impl Permission for DeleteOrganization {
    const ROLES: &'static [Role] = &[Role::Owner];
    const NAME: &'static str = "delete the organization";
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ManageMembers {}
    impl Sealed for super::ManageServers {}
    impl Sealed for super::ViewAudit {}
    impl Sealed for super::DeleteOrganization {}
}

/// Proof that a role was checked for permission `P`; private fields mean only [`authorize`] makes one.
#[derive(Debug)]
pub struct Permit<P: Permission> {
    role: Role,
    permission: PhantomData<P>,
}

impl<P: Permission> Permit<P> {
    /// The role the permit was granted to; later decisions (such as who may grant ownership) use it.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// A role lacks the permission an action needs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the {role} role may not {action}")]
pub struct Denied {
    /// The role that asked.
    pub role: Role,
    /// What it asked to do.
    pub action: &'static str,
}

/// Checks `role` for permission `P`, returning the proof that later code requires.
pub fn authorize<P: Permission>(role: Role) -> Result<Permit<P>, Denied> {
    if P::ROLES.contains(&role) {
        Ok(Permit {
            role,
            permission: PhantomData,
        })
    } else {
        Err(Denied {
            role,
            action: P::NAME,
        })
    }
}

/// Whether the holder of `permit` may move a member from `current` to `new` role: `None` as
/// `current` is a new member, `None` as `new` a removal. Only owners touch ownership, either way.
pub fn may_assign_role(
    permit: &Permit<ManageMembers>,
    current: Option<Role>,
    new: Option<Role>,
) -> Result<(), Denied> {
    let touches_owner = current == Some(Role::Owner) || new == Some(Role::Owner);
    if touches_owner && permit.role() != Role::Owner {
        return Err(Denied {
            role: permit.role(),
            action: "grant, change or remove the owner role",
        });
    }
    Ok(())
}
