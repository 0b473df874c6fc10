//! Secrets an upstream connection needs, opened at the moment it starts (S12, S14).
//!
//! A session plan carries no secret: a server's environment and headers are [`Template`]s whose
//! [`Piece::Secret`]s name the values to open. When a connection starts, it asks the
//! [`Credentials`] its gateway was given for exactly those values, renders them into what the
//! launcher or the HTTP client takes, and drops (zeroizes) what it opened. A remote server
//! with OAuth gets its access token the same way, for the session's member, on every request.

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

use crate::launcher::BoxFuture;

/// One piece of a setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text used as written (string variables and file paths are already substituted).
    Text(String),
    /// The value of the server's secret (password) variable of this name.
    Secret(String),
}

/// A setting's value with its secret references; it never holds a secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// A value made of `pieces`.
    pub fn new(pieces: Vec<Piece>) -> Self {
        Template { pieces }
    }

    /// A value without references.
    pub fn literal(text: impl Into<String>) -> Self {
        Template {
            pieces: vec![Piece::Text(text.into())],
        }
    }

    /// The secrets it references.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Secret(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The value as text when it references no secret.
    pub fn as_text(&self) -> Option<String> {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => Some(text.as_str()),
                Piece::Secret(_) => None,
            })
            .collect()
    }

    /// Fills in the secrets from `opened`; a value that is not UTF-8 text is refused, since
    /// environment variables and headers are text.
    pub fn render(&self, opened: &OpenedSecrets) -> Result<Zeroizing<String>, String> {
        let mut out = Zeroizing::new(String::new());
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Secret(name) => {
                    let value = opened.get(name)?;
                    let text = std::str::from_utf8(value)
                        .map_err(|_| format!("variable {name} is not UTF-8 text"))?;
                    out.push_str(text);
                }
            }
        }
        Ok(out)
    }
}

/// A file the server sees, filled from a secret variable when its session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    /// The file variable's name.
    pub variable: String,
    /// The absolute path inside the sandbox.
    pub path: String,
}

/// Whose credentials a connection asks for.
#[derive(Debug, Clone, Copy)]
pub struct CredentialTarget<'a> {
    /// The organization's id.
    pub org: &'a str,
    /// The server's id.
    pub server_id: &'a str,
    /// The session's member (user id), for credentials kept per member.
    pub member: &'a str,
}

/// Secret values opened for one connection start; dropping them zeroizes them.
#[derive(Default)]
pub struct OpenedSecrets {
    values: HashMap<String, SecretBox<[u8]>>,
}

impl std::fmt::Debug for OpenedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl OpenedSecrets {
    /// Collects opened values by name.
    pub fn new(values: impl IntoIterator<Item = (String, SecretBox<[u8]>)>) -> Self {
        OpenedSecrets {
            values: values.into_iter().collect(),
        }
    }

    /// One value; a name that was not opened is an error naming it.
    #[expect(
        clippy::disallowed_methods,
        reason = "renders a secret into the environment or header the launcher or HTTP client takes; the result is zeroized (S14)"
    )]
    pub fn get(&self, name: &str) -> Result<&[u8], String> {
        self.values
            .get(name)
            .map(|value| value.expose_secret())
            .ok_or_else(|| format!("variable {name} could not be opened"))
    }

    /// Every opened value with its name, so a redactor can learn them.
    #[expect(
        clippy::disallowed_methods,
        reason = "renders a secret into the environment or header the launcher or HTTP client takes; the result is zeroized (S14)"
    )]
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.values
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose_secret()))
    }

    /// Whether nothing was opened.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Opens secrets for connections; the gateway's caller implements it over its store.
pub trait Credentials: Send + Sync + 'static {
    /// Opens the named secret variables of `target`'s server.
    fn open<'a>(
        &'a self,
        target: CredentialTarget<'a>,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<OpenedSecrets, String>>;

    /// An OAuth access token for `target`'s server and member; `rejected` is the token the
    /// server just answered 401 to, which must be refreshed rather than returned again.
    fn access_token<'a>(
        &'a self,
        target: CredentialTarget<'a>,
        rejected: Option<&'a SecretString>,
    ) -> BoxFuture<'a, Result<SecretString, String>>;
}

/// For gateways without a store (tests, benchmarks): any secret asked for is refused.
#[derive(Debug, Default)]
pub struct NoCredentials;

impl Credentials for NoCredentials {
    fn open<'a>(
        &'a self,
        _target: CredentialTarget<'a>,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<OpenedSecrets, String>> {
        Box::pin(async move {
            if names.is_empty() {
                Ok(OpenedSecrets::default())
            } else {
                Err("this gateway has no credential store".to_owned())
            }
        })
    }

    fn access_token<'a>(
        &'a self,
        _target: CredentialTarget<'a>,
        _rejected: Option<&'a SecretString>,
    ) -> BoxFuture<'a, Result<SecretString, String>> {
        Box::pin(async { Err("this gateway has no credential store".to_owned()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S14: rendering fills secrets in and names a missing one; `Debug` of the opened values
    /// shows names only.
    #[test]
    fn templates_render_opened_secrets_and_debug_shows_names_only() {
        let template = Template::new(vec![
            Piece::Text("Bearer ".into()),
            Piece::Secret("API_KEY".into()),
        ]);
        let opened = OpenedSecrets::new([(
            "API_KEY".to_owned(),
            SecretBox::new(b"canary-123".to_vec().into_boxed_slice()),
        )]);
        assert_eq!(
            template.render(&opened).unwrap().as_str(),
            "Bearer canary-123"
        );
        assert_eq!(template.secrets().collect::<Vec<_>>(), ["API_KEY"]);
        assert!(!format!("{opened:?}").contains("canary"));
        let missing = Template::new(vec![Piece::Secret("OTHER".into())]);
        assert!(missing.render(&opened).unwrap_err().contains("OTHER"));
    }
}
