//! MCP Hero's data plane: the organization endpoint that aggregates its MCP servers.
//!
//! Main pieces: [`audit`] (the hook every `tools/call`, `resources/read` and `prompts/get` is
//! reported through, S6), [`jsonrpc`] (messages kept as the JSON that arrived, so unknown fields pass
//! through), [`gateway::Gateway`] (Streamable HTTP toward clients, the session registry),
//! [`session`] (one client session: upstream connections, routing, the member's tool view),
//! [`upstream`] (the gateway as an MCP client of one server, over stdio or Streamable HTTP), and
//! [`launcher`] (the seam to whatever runs stdio servers; the sandbox runtime plugs in there).
//!
//! Invariant (S1): a session owns its upstream connections, and the servers behind them live
//! exactly as long as the connection; ending a session ends them.
//! Invariant (S7): every list is filtered and every call checked against the member's
//! [`auth::tool_access::MemberToolAccess`]; a forbidden name answers like an unknown one.
//!
//! This crate knows nothing of the store, tokens or sandboxes: its caller proves who the client
//! is ([`session::SessionOwner`]) and says which servers it may reach ([`session::SessionPlan`]).

pub mod audit;
pub mod credentials;
pub mod gateway;
pub mod jsonrpc;
pub mod launcher;
pub mod logs;
pub mod protocol;
pub mod session;
mod stream;
pub mod upstream;

pub use gateway::{Gateway, GatewayConfig, GatewayError, GatewayServices, PlanError};
pub use session::{SessionOwner, SessionPlan, SessionStatus, UpstreamStatus};
