//! Role decisions (S7 for the API) and token format checks.

#![allow(
    clippy::disallowed_methods,
    reason = "tests compare and parse freshly generated tokens"
)]

use secrecy::ExposeSecret;

use crate::pat::{self, TokenFormatError};
use crate::{
    DeleteOrganization, Denied, ManageMembers, Role, ViewAudit, authorize, may_assign_role,
};

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

/// S6, S7: the audit trail shows every member's calls, so only owners and admins read it.
#[test]
fn only_owners_and_admins_view_the_audit_trail() {
    for role in Role::ALL {
        let allowed = authorize::<ViewAudit>(role).is_ok();
        assert_eq!(allowed, matches!(role, Role::Owner | Role::Admin), "{role}");
    }
    assert_eq!(
        authorize::<ViewAudit>(Role::Member)
            .unwrap_err()
            .to_string(),
        "the member role may not view the audit trail"
    );
}

#[test]
fn only_owners_delete_the_organization() {
    for role in Role::ALL {
        assert_eq!(
            authorize::<DeleteOrganization>(role).is_ok(),
            role == Role::Owner,
            "{role}"
        );
    }
    assert_eq!(
        authorize::<DeleteOrganization>(Role::Admin)
            .unwrap_err()
            .to_string(),
        "the admin role may not delete the organization"
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

mod tool_access {
    use crate::Role;
    use crate::tool_access::{
        Effect, MemberToolAccess, PatternError, Subject, ToolPattern, ToolRule,
    };

    fn rule(subject: Subject<u32>, effect: Effect, pattern: &str) -> ToolRule<u32> {
        ToolRule {
            subject,
            effect,
            pattern: ToolPattern::parse(pattern).unwrap(),
        }
    }

    #[test]
    fn globs_match_whole_names() {
        let m = |p: &str, n: &str| ToolPattern::parse(p).unwrap().matches(n);
        assert!(m("*", "files__read"));
        assert!(m("files__*", "files__read"));
        assert!(!m("files__*", "filesystem__read"));
        assert!(m("*__read", "files__read"));
        assert!(m("f?les__re*d", "files__read"));
        assert!(m("*a*b*c", "xxaxbxxc"));
        assert!(!m("*a*b*c", "xxaxbxxcd"));
        assert!(!m("files__read", "files__read_all"));
        assert!(m("files__read", "files__read"));
        assert!(m("**", ""));
        assert!(!m("?", ""));
    }

    #[test]
    fn patterns_are_checked() {
        assert_eq!(ToolPattern::parse(""), Err(PatternError::Empty));
        assert_eq!(
            ToolPattern::parse("a b"),
            Err(PatternError::BadCharacter(' '))
        );
        assert_eq!(
            ToolPattern::parse(&"a".repeat(200)),
            Err(PatternError::TooLong(200))
        );
    }

    /// S7: deny wins over allow, member rules and role rules combine, nothing is allowed by default.
    #[test]
    fn s7_deny_wins_and_nothing_is_default() {
        let rules = vec![
            rule(Subject::Role(Role::Member), Effect::Allow, "*"),
            rule(Subject::Role(Role::Member), Effect::Deny, "admin__*"),
            rule(Subject::Member(7), Effect::Allow, "admin__status"),
            rule(Subject::Member(8), Effect::Deny, "files__write"),
            rule(Subject::Member(9), Effect::Allow, "files__read"),
        ];
        let member = MemberToolAccess::for_member(&rules, Role::Member, &1);
        assert!(member.allows("files__write"));
        assert!(!member.allows("admin__status"));
        // A member-level allow does not beat a role-level deny.
        let seven = MemberToolAccess::for_member(&rules, Role::Member, &7);
        assert!(!seven.allows("admin__status"));
        let eight = MemberToolAccess::for_member(&rules, Role::Member, &8);
        assert!(!eight.allows("files__write"));
        assert!(eight.allows("files__read"));
        // No rule for viewers: nothing, except what a member rule grants.
        let viewer = MemberToolAccess::for_member(&rules, Role::Viewer, &1);
        assert!(!viewer.allows("files__read"));
        let nine = MemberToolAccess::for_member(&rules, Role::Viewer, &9);
        assert!(nine.allows("files__read"));
        assert!(nine.permit("files__read").is_some());
        assert!(nine.permit("files__write").is_none());
        assert!(!nine.allows_whole_server("files"));
        assert!(member.allows_whole_server("files"));
        assert!(!member.allows_whole_server("admin"));
    }
}
