//! Authorization decisions for MCP Hero (S7): roles, permission proofs, personal access tokens.
//!
//! Main types: [`Role`], [`Permit`] (a proof that a role was checked for an action; only
//! [`authorize`] builds one, so code that needs a permission cannot compile without the check),
//! [`pat`] (the format of personal access tokens and their stored digest), and [`tool_access`]
//! (which tools each member may list and call).
//!
//! This crate never does I/O and never stores anything: callers bring the facts (a role, a token
//! string) and get a decision. No rule means deny.

pub mod pat;
mod role;
pub mod tool_access;

#[cfg(test)]
mod tests;

pub use role::{
    DeleteOrganization, Denied, ManageMembers, ManageServers, Permission, Permit, Role,
    RoleParseError, ViewAudit, authorize, may_assign_role,
};
