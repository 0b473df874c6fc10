//! TEMP stub (replaced by the egress branch).
use std::sync::Arc;
/// stub
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct EgressPolicy {}
/// stub
#[derive(Debug)]
pub struct Decision;
/// stub
pub trait DecisionSink: Send + Sync { /// stub
fn record(&self, decision: Decision); }
/// stub
pub trait Resolve: Send + Sync {}
/// stub
pub struct SystemResolver;
impl Resolve for SystemResolver {}
/// stub
pub struct HostAddresses;
impl HostAddresses { /// stub
pub fn snapshot() -> Self { HostAddresses } }
/// stub
pub struct EgressProxy;
impl EgressProxy {
/// stub
pub fn new(_p: EgressPolicy, _r: Arc<dyn Resolve>, _h: HostAddresses, _s: Arc<dyn DecisionSink>) -> Self { EgressProxy }
/// stub
pub async fn serve(self, _l: tokio::net::UnixListener) {} }
