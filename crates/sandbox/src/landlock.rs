//! TEMP stub (replaced by the filters branch).
use std::path::PathBuf;
/// stub
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LandlockPolicy { /// a
pub read_exec: Vec<PathBuf>, /// b
pub read_write: Vec<PathBuf>, /// c
pub tcp_connect_ports: Option<Vec<u16>> }
