//! Repository checks that are code rather than shell, run by CI as `cargo xtask <task>`.
//!
//! Today one task: `log-check`, the static check that no log call, print or panic message
//! receives an environment, header or secret value (S17). The binary (`main.rs`) only parses the
//! command line and prints; the checks live here so tests call them directly. This crate is
//! never linked into the gateway.

pub mod log_check;
