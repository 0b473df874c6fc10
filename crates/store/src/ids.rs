//! Identifier newtypes, so an organization id can never be passed where a user id belongs.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub(crate) fn random() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// Wraps an id given by a caller (an API path, a CLI flag). It is not checked here:
            /// an id that names nothing in the caller's organization is simply not found.
            pub fn from_untrusted(value: &str) -> Self {
                Self(value.to_owned())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// Identifies an organization.
    OrgId
);
id_type!(
    /// Identifies a user (a person, by email, across organizations).
    UserId
);
id_type!(
    /// Identifies a personal access token (not the token itself).
    TokenId
);
id_type!(
    /// Identifies a variable.
    VariableId
);
id_type!(
    /// Identifies a registered MCP server.
    ServerId
);
id_type!(
    /// Identifies one tool access rule.
    ToolRuleId
);

/// Lower-cases and checks an email address: one `@`, non-empty parts, no spaces, at most 254 bytes.
pub fn normalize_email(email: &str) -> Result<String, crate::StoreError> {
    let email = email.trim().to_lowercase();
    let invalid = |reason: &str| crate::StoreError::Invalid {
        field: "email",
        reason: reason.to_owned(),
    };
    if email.len() > 254 {
        return Err(invalid("longer than 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("must look like name@example.com"));
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') || !domain.contains('.') {
        return Err(invalid("must look like name@example.com"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain spaces or control characters"));
    }
    Ok(email)
}
