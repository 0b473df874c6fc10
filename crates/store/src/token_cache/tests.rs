//! The token cache never outlives an invalidation, never answers for a different token, and
//! never serves an expired one.

use auth::Role;
use auth::pat;

use super::TokenCache;
use crate::{OrgId, OrgScope, Principal, TokenId, UserId};

fn principal(org: &str, user: &str, token: &str) -> Principal {
    Principal {
        scope: OrgScope {
            org_id: OrgId::from_untrusted(org),
        },
        org_slug: org.to_owned(),
        user_id: UserId::from_untrusted(user),
        email: format!("{user}@example.com"),
        role: Role::Member,
        token_id: TokenId::from_untrusted(token),
    }
}

#[test]
fn hits_only_for_the_exact_unexpired_token() {
    let cache = TokenCache::new();
    let token = pat::generate();
    let now = 1_000;
    cache.insert(
        cache.generation(),
        &token.digest,
        &principal("o", "u", "t"),
        Some(now + 10),
    );
    assert_eq!(
        cache.get(&token.digest, now).map(|p| p.token_id),
        Some(TokenId::from_untrusted("t"))
    );
    assert!(
        cache.get(&token.digest, now + 10).is_none(),
        "expired tokens are not served from the cache"
    );
    assert!(cache.get(&pat::generate().digest, now).is_none());
}

#[test]
fn invalidation_forgets_tokens_and_members() {
    let cache = TokenCache::new();
    let (a, b) = (pat::generate(), pat::generate());
    cache.insert(
        cache.generation(),
        &a.digest,
        &principal("o", "alice", "ta"),
        None,
    );
    cache.insert(
        cache.generation(),
        &b.digest,
        &principal("o", "bob", "tb"),
        None,
    );
    cache.forget_token(&TokenId::from_untrusted("ta"));
    assert!(cache.get(&a.digest, 0).is_none());
    assert!(cache.get(&b.digest, 0).is_some());
    // Same user id in another organization is a different membership.
    cache.forget_member(
        &OrgId::from_untrusted("other"),
        &UserId::from_untrusted("bob"),
    );
    assert!(cache.get(&b.digest, 0).is_some());
    cache.forget_member(&OrgId::from_untrusted("o"), &UserId::from_untrusted("bob"));
    assert!(cache.get(&b.digest, 0).is_none());
}

#[test]
fn a_check_that_raced_an_invalidation_is_not_cached() {
    let cache = TokenCache::new();
    let token = pat::generate();
    // A database check starts, a revocation lands meanwhile, then the check tries to cache its result.
    let generation = cache.generation();
    cache.forget_token(&TokenId::from_untrusted("t"));
    cache.insert(generation, &token.digest, &principal("o", "u", "t"), None);
    assert!(cache.get(&token.digest, 0).is_none());
}
