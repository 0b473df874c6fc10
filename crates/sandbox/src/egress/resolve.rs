//! Name resolution for the egress proxy.
//!
//! The proxy resolves names itself and connects to exactly the address it checked: a sandbox never
//! gets a name resolved twice, so DNS rebinding (public answer for the check, private answer for
//! the connect) has nothing to exploit. The trait lets tests inject hostile answers.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;

/// The future a [`Resolve`] implementation returns (boxed so the trait stays object-safe).
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into candidate addresses; swappable so tests can prove hostile answers are
/// refused.
pub trait Resolve: Send + Sync {
    /// Resolves `host` (never an IP literal: the proxy parses those itself) for `port`.
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> ResolveFuture<'a>;
}

/// The gateway's system resolver, through tokio's `lookup_host`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> ResolveFuture<'a> {
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((host, port)).await?;
            Ok(addresses.map(|address| address.ip()).collect())
        })
    }
}
