//! The MCP Hero gateway binary's library: configuration, CLI commands and the HTTP surface.
//!
//! Main pieces: [`config`] (the only module that reads the process environment), [`audit`]
//! (the writer of the data plane's audit trail), [`cli`] (the
//! command line), [`http`] (router, API, OpenAPI document, metrics), [`serve`] (listeners and
//! shutdown), [`admin`] (operator commands), [`panics`] (a panic hook that logs no payload),
//! [`images`] (installing server packages into read-only images), [`server_logs`] (the
//! operator's log buffer of each server), [`client`] (commands that talk to a running gateway)
//! and [`quickstart`] (a first run for newcomers).
//!
//! Only this crate knows routes and API JSON; it turns store rows into view structs by hand and
//! never serializes a store or vault type directly.

/// The process's allocator: the data plane allocates small, short-lived buffers on every request
/// from both worker threads, where glibc's malloc (arena locks, consolidation) took about a sixth
/// of a busy gateway process's CPU samples. Declared in the library so the binary, its tests and its benchmarks all run on
/// the allocator that ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod admin;
pub mod audit;
pub mod changes;
pub mod cli;
pub mod client;
pub mod config;
pub mod credentials;
pub mod http;
pub mod images;
pub mod launch;
pub mod panics;
pub mod quickstart;
pub mod serve;
pub mod server_logs;
pub mod upstream_oauth;
