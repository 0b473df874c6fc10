//! Per-tool access (S7): allow and deny patterns over `server__tool` names, for roles and for
//! single members, turned into one member's view and into [`ToolPermit`] proofs.
//!
//! Rules: a rule applies to a member when its subject is the member's role or the member itself.
//! A matching deny always wins; otherwise a matching allow grants; otherwise the answer is no.
//! Nothing is allowed by default: a new organization starts with `allow *` rules for the owner,
//! admin and member roles, which admins may narrow. Names are always the canonical
//! `server__name`, even when a server is exposed without its prefix, so a rule means the same thing
//! whatever the exposure.

use crate::Role;

/// The separator between a server's name and a tool's or prompt's name in canonical names.
pub const NAME_SEPARATOR: &str = "__";

/// Longest pattern accepted; a canonical name is at most a 32-byte server name plus a 128-byte tool name.
pub const MAX_PATTERN_LEN: usize = 162;

/// A glob over canonical names: `*` matches any run of characters, `?` exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolPattern(String);

/// A pattern that is empty, too long, or holds characters no tool name can have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern is empty.
    #[error("pattern is empty: use `*` to match every tool")]
    Empty,
    /// The pattern is longer than [`MAX_PATTERN_LEN`].
    #[error("pattern is {0} characters long; the limit is {MAX_PATTERN_LEN}")]
    TooLong(usize),
    /// The pattern holds a character that no canonical name can hold.
    #[error(
        "pattern holds {0:?}, which no tool name can hold: use letters, digits, `_`, `-`, `.`, `/` and the wildcards `*` and `?`"
    )]
    BadCharacter(char),
}

impl ToolPattern {
    /// Checks `text` and keeps it as a pattern.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong(text.len()));
        }
        if let Some(bad) = text.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '*' | '?'))
        }) {
            return Err(PatternError::BadCharacter(bad));
        }
        Ok(Self(text.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches; linear in the lengths (greedy star with one backtrack point).
    pub fn matches(&self, name: &str) -> bool {
        let (pattern, name) = (self.0.as_bytes(), name.as_bytes());
        let (mut p, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match pattern.get(p) {
                Some(b'*') => {
                    star = Some((p, n));
                    p += 1;
                }
                Some(&c) if c == b'?' || c == name[n] => {
                    p += 1;
                    n += 1;
                }
                _ => match star {
                    Some((star_p, star_n)) => {
                        p = star_p + 1;
                        n = star_n + 1;
                        star = Some((star_p, star_n + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&c| c == b'*')
    }
}

impl std::fmt::Display for ToolPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Grants the tool unless a deny also matches.
    Allow,
    /// Hides and refuses the tool, whatever else matches.
    Deny,
}

impl Effect {
    /// The stable name, as stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// Who a rule is about: everyone holding a role, or one member (`U` is the caller's user id type).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject<U> {
    /// Every member with this role.
    Role(Role),
    /// One member.
    Member(U),
}

/// One allow or deny rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRule<U> {
    /// Who it applies to.
    pub subject: Subject<U>,
    /// What it does.
    pub effect: Effect,
    /// Which canonical names it matches.
    pub pattern: ToolPattern,
}

/// The rules that apply to one member, ready to decide on every list and call of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberToolAccess {
    allow: Vec<ToolPattern>,
    deny: Vec<ToolPattern>,
}

/// Proof that the member's rules allow calling one canonical name; only
/// [`MemberToolAccess::permit`] builds it, so an unchecked call does not compile.
#[derive(Debug)]
pub struct ToolPermit<'a> {
    name: &'a str,
}

impl ToolPermit<'_> {
    /// The canonical name the permit is for.
    pub fn name(&self) -> &str {
        self.name
    }
}

impl MemberToolAccess {
    /// Picks the rules for the member `user` holding `role`.
    pub fn for_member<U: PartialEq>(rules: &[ToolRule<U>], role: Role, user: &U) -> Self {
        let mut access = Self::default();
        for rule in rules {
            let applies = match &rule.subject {
                Subject::Role(r) => *r == role,
                Subject::Member(u) => u == user,
            };
            if applies {
                match rule.effect {
                    Effect::Allow => access.allow.push(rule.pattern.clone()),
                    Effect::Deny => access.deny.push(rule.pattern.clone()),
                }
            }
        }
        access
    }

    /// Whether the member may see and call the canonical name `name`: deny wins, then allow, else no.
    pub fn allows(&self, name: &str) -> bool {
        !self.deny.iter().any(|p| p.matches(name)) && self.allow.iter().any(|p| p.matches(name))
    }

    /// The proof a call needs, or `None` when the rules do not allow `name`.
    pub fn permit<'a>(&self, name: &'a str) -> Option<ToolPermit<'a>> {
        self.allows(name).then_some(ToolPermit { name })
    }

    /// Whether the member may use the whole server (its resources, templates and completions):
    /// the rules must allow the literal name `server__*`, which only a pattern such as `*` or
    /// `server__*` matches, and no deny pattern may match it.
    pub fn allows_whole_server(&self, server: &str) -> bool {
        let mut whole = String::with_capacity(server.len() + 3);
        whole.push_str(server);
        whole.push_str(NAME_SEPARATOR);
        whole.push('*');
        self.allows(&whole)
    }
}
