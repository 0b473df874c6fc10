//! Role decisions (S7 for the API) and token format checks.

use secrecy::ExposeSecret;

use crate::pat::{self, TokenFormatError};
use crate::{Denied, ManageMembers, Role, authorize, may_assign_role};

#[test]
fn only_owners_and_admins_manage_members() {
    for role in Role::ALL {
        let allowed = authorize::<ManageMembers>(role).is_ok();
        assert_eq!(allowed, matches!(role, Role::Owner | Role::Admin), "{role}");
    }
    assert_eq!(
        authorize::<ManageMembers>(Role::Viewer).unwrap_err(),
        Denied {
            role: Role::Viewer,
            action: "manage members"
        }
    );
}

#[test]
fn only_owners_touch_ownership() {
    let admin = authorize::<ManageMembers>(Role::Admin).unwrap();
    let owner = authorize::<ManageMembers>(Role::Owner).unwrap();
    let check = |permit, current, new, ok: bool| {
        assert_eq!(may_assign_role(permit, current, new).is_ok(), ok)
    };
    check(&admin, Some(Role::Member), Some(Role::Admin), true);
    check(&admin, None, Some(Role::Member), true);
    check(&admin, Some(Role::Member), None, true);
    check(&admin, None, Some(Role::Owner), false);
    check(&admin, Some(Role::Member), Some(Role::Owner), false);
    check(&admin, Some(Role::Owner), Some(Role::Member), false);
    check(&admin, Some(Role::Owner), None, false);
    check(&owner, Some(Role::Owner), Some(Role::Member), true);
    check(&owner, Some(Role::Member), Some(Role::Owner), true);
    check(&owner, None, Some(Role::Owner), true);
}

#[test]
fn roles_parse_and_print() {
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
    }
    assert_eq!(
        "root".parse::<Role>().unwrap_err().to_string(),
        "unknown role \"root\": expected one of owner, admin, member, viewer"
    );
}

#[test]
fn tokens_are_random_prefixed_and_parse_to_their_digest() {
    let first = pat::generate();
    let second = pat::generate();
    let text = first.secret.expose_secret();
    assert!(text.starts_with("mcph_pat_"));
    assert_eq!(text.len(), "mcph_pat_".len() + 43);
    assert_ne!(text, second.secret.expose_secret());
    let parsed = pat::parse(text).unwrap();
    assert!(parsed.matches(&first.digest));
    assert!(!parsed.matches(&second.digest));
    assert_eq!(parsed.lookup_key().len(), 16);
    assert!(!format!("{parsed:?}").contains(&text[9..]));
}

#[test]
fn malformed_tokens_are_refused() {
    let check = |value: &str, want| assert_eq!(pat::parse(value).unwrap_err(), want, "{value}");
    check("", TokenFormatError::MissingPrefix);
    check("ghp_abcdef", TokenFormatError::MissingPrefix);
    check("mcph_pat_short", TokenFormatError::BadBody);
    check(
        &format!("mcph_pat_{}", "a".repeat(44)),
        TokenFormatError::BadBody,
    );
    check(
        &format!("mcph_pat_{}!", "a".repeat(42)),
        TokenFormatError::BadBody,
    );
}
