//! A short-lived cache of verified tokens: the security decision of who a token acts for, kept
//! off the database on the hot path so token checking stays within its 50 µs budget.
//!
//! Rules, all enforced here:
//! - only successful checks are cached, and a hit still compares the full digest in constant time
//!   and re-checks the token's expiry;
//! - an entry lives at most [`TOKEN_CACHE_TTL`]; revoking a token, removing a member, changing a
//!   role or deleting an organization through this store forgets the affected entries at once.
//!   Another replica sharing the database sees such a change within the TTL;
//! - a check that read the database before an invalidation cannot re-insert what was just forgotten:
//!   every invalidation bumps a generation, and inserts made under an older generation are dropped.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth::pat::TokenDigest;

use crate::{OrgId, Principal, TokenId, UserId};

/// How long a verified token is trusted without asking the database again.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);
/// Bound on memory: past this many live tokens, the cache starts over.
const MAX_ENTRIES: usize = 10_000;

struct CachedToken {
    digest: TokenDigest,
    principal: Principal,
    expires_at: Option<i64>,
    cached_at: Instant,
}

pub(crate) struct TokenCache {
    entries: RwLock<HashMap<[u8; 8], CachedToken>>,
    generation: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new() -> Self {
        TokenCache {
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The generation to pass to [`TokenCache::insert`] after a database check started now.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A still-valid cached principal for this exact token, if any.
    pub(crate) fn get(&self, presented: &TokenDigest, now: i64) -> Option<Principal> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(&presented.lookup_prefix())?;
        let fresh = entry.cached_at.elapsed() < TOKEN_CACHE_TTL;
        let unexpired = entry.expires_at.is_none_or(|expires_at| now < expires_at);
        (fresh && unexpired && presented.matches(&entry.digest)).then(|| entry.principal.clone())
    }

    /// Remembers a successful check made under `generation`; dropped if anything was invalidated since.
    pub(crate) fn insert(
        &self,
        generation: u64,
        digest: &TokenDigest,
        principal: &Principal,
        expires_at: Option<i64>,
    ) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        // Read under the write lock: invalidations bump the generation while holding it too.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            digest.lookup_prefix(),
            CachedToken {
                digest: digest.clone(),
                principal: principal.clone(),
                expires_at,
                cached_at: Instant::now(),
            },
        );
    }

    /// Forgets one token (it was revoked).
    pub(crate) fn forget_token(&self, token_id: &TokenId) {
        self.forget(|principal| &principal.token_id == token_id);
    }

    /// Forgets every token of one member (removed, or their role changed).
    pub(crate) fn forget_member(&self, org_id: &OrgId, user_id: &UserId) {
        self.forget(|principal| {
            principal.scope.org_id() == org_id && &principal.user_id == user_id
        });
    }

    /// Forgets every token of one organization (it was deleted).
    pub(crate) fn forget_org(&self, org_id: &OrgId) {
        self.forget(|principal| principal.scope.org_id() == org_id);
    }

    fn forget(&self, matches: impl Fn(&Principal) -> bool) {
        match self.entries.write() {
            Ok(mut entries) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
                entries.retain(|_, entry| !matches(&entry.principal));
            }
            // A poisoned lock means a panic mid-update; the cache cannot be trusted, so it goes.
            Err(poisoned) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
                poisoned.into_inner().clear();
            }
        }
    }
}

#[cfg(test)]
mod tests;
