//! Control-plane changes the data plane must act on at once: the API reports them here, and the
//! MCP sessions they touch end or refresh their tool lists (S1, S7, S19, S20).

use store::{OrgId, OrgScope, ServerId, TokenId, UserId};

/// One change, named by what it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A server was created, updated or deleted: sessions drop their connection to it and
    /// reconnect (or not, when it is gone or disabled).
    Server {
        /// Its organization.
        scope: OrgScope,
        /// The server.
        server: ServerId,
    },
    /// The organization's tool access rules changed: sessions recompute their filtered views.
    ToolRules {
        /// Its organization.
        scope: OrgScope,
    },
    /// A member's role changed or the member was removed: their sessions end.
    Member {
        /// Its organization.
        org: OrgId,
        /// The member.
        user: UserId,
    },
    /// The organization was deleted: every session of it ends, and with them their sandboxes.
    Organization {
        /// The organization that is gone.
        org: OrgId,
    },
    /// A token was revoked: sessions opened with it end.
    TokenRevoked {
        /// Its organization.
        org: OrgId,
        /// The token.
        token: TokenId,
    },
}

/// Receives [`Change`]s; the data plane implements it, tests may record them.
pub trait ChangeSink: Send + Sync + 'static {
    /// Called after the change was committed to the store.
    fn changed(&self, change: Change);
}
