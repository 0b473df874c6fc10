//! TEMP stub (replaced by the filters branch).
use std::ffi::OsString;
use std::path::PathBuf;
/// stub
#[derive(Debug, Clone)]
pub struct InitArgs { /// a
pub proxy_port: Option<u16>, /// b
pub egress_socket: Option<PathBuf>, /// c
pub landlock: Option<crate::landlock::LandlockPolicy>, /// d
pub command: Vec<OsString>, /// e
pub working_dir: Option<PathBuf> }
impl InitArgs { /// stub
pub fn to_args(&self) -> Vec<OsString> { vec![] } }
/// stub
pub fn main(_args: impl IntoIterator<Item = OsString>) -> std::process::ExitCode { std::process::ExitCode::FAILURE }
/// stub
pub const ARG: &str = "__sandbox-init";
