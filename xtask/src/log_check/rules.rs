//! Security rules of the log check (S17): which names and types mark a value as secret.
//!
//! The check reads syntax, not types, so these rules decide from what the source spells: a
//! binding's name, a parameter's or `let`'s declared type, the type named in a constructor call.
//! They lean towards reporting: a false report costs a rename or a reasoned allow, a missed one
//! costs a credential in a log.

use syn::visit::Visit;

/// Words that make an identifier look secret, compared whole against its `_`-separated words.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "tokens",
    "credential",
    "credentials",
    "cookie",
    "cookies",
    "authorization",
    "bearer",
    "apikey",
];

/// Words after a secret word that still name the secret itself (`token_value`, `secret_bytes`,
/// `api_key`): the value, an encoding of it, or a key.
const VALUE_WORDS: &[&str] = &[
    "value",
    "values",
    "bytes",
    "str",
    "string",
    "text",
    "raw",
    "plain",
    "plaintext",
    "key",
    "data",
    "b64",
    "base64",
    "hex",
    "pem",
    "der",
    "header",
];

/// Two-word spellings of secrets whose second word is a value word (`api_key`, `private_key`,
/// `auth_header`).
const SECRET_WORD_PAIRS: &[(&str, &str)] =
    &[("api", "key"), ("private", "key"), ("auth", "header")];

/// A field's last word that names something about its owner rather than its contents
/// (`token.id`, `secret.len`), so the field is not the secret.
const METADATA_WORDS: &[&str] = &[
    "id", "ids", "count", "len", "length", "name", "names", "kind", "type", "preview", "digest",
    "hash", "prefix", "expiry", "expires", "ttl", "limit", "path", "dir", "file", "var", "env",
    "error", "err",
];

/// Words before `token` that make it something other than a credential: MCP progress tokens,
/// tokio cancellation tokens, model token budgets.
const NON_CREDENTIAL_TOKEN_QUALIFIERS: &[&str] = &[
    "progress",
    "cancel",
    "cancellation",
    "shutdown",
    "stop",
    "max",
    "min",
    "total",
    "input",
    "output",
];

/// Types whose values are secret by construction: `secrecy`'s and `zeroize`'s wrappers and the
/// project's own root secret. A binding declared with one of these anywhere in its type
/// (`Option<SecretString>`, `&RootSecret`), or built by one of their constructors
/// (`SecretString::from(..)`), holds a secret.
const SECRET_TYPES: &[&str] = &[
    "SecretString",
    "SecretBox",
    "SecretSlice",
    "SecretVec",
    "SecretStr",
    "Secret",
    "Zeroizing",
    "RootSecret",
];

/// Types that hold a raw HTTP header value: sensitive when declared (`value: &HeaderValue`),
/// not when built from a literal (`HeaderValue::from_static("application/json")`).
const HEADER_TYPES: &[&str] = &["HeaderValue"];

/// Whether an identifier's name says it holds a secret. The secret word must be the name's
/// noun: its last word (`password`, `root_secret`, `api_token`), or followed only by words that
/// still name the value (`token_value`, `secret_bytes`, `api_key`). So `token_id`,
/// `token_count`, `secret_len`, `TOKEN_ITERATIONS` are not secret, nor is a `token` qualified as
/// a non-credential (`max_tokens`, `progress_token`, `cancel_token`).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let lower = name.trim_start_matches('_').to_ascii_lowercase();
    let words: Vec<&str> = lower.split('_').filter(|word| !word.is_empty()).collect();
    let mut end = words.len();
    while end > 1 && VALUE_WORDS.contains(&words[end - 1]) {
        end -= 1;
    }
    let Some(noun) = end.checked_sub(1).and_then(|index| words.get(index)) else {
        return false;
    };
    if SECRET_WORDS.contains(noun) {
        let is_token = *noun == "token" || *noun == "tokens";
        let qualified = end >= 2 && NON_CREDENTIAL_TOKEN_QUALIFIERS.contains(&words[end - 2]);
        return !(is_token && qualified);
    }
    words
        .get(end)
        .is_some_and(|next| SECRET_WORD_PAIRS.contains(&(*noun, *next)))
}

/// Whether a field name is metadata about its owner rather than its contents, so `token.id` is
/// not the token.
pub(crate) fn is_metadata_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower
        .rsplit('_')
        .next()
        .is_some_and(|last| METADATA_WORDS.contains(&last))
}

/// The first secret or header-value type a type mentions (`Option<&SecretString>` gives
/// `SecretString`).
pub(crate) fn secret_type_in(ty: &syn::Type) -> Option<String> {
    let mut search = SecretTypeSearch { found: None };
    search.visit_type(ty);
    search.found
}

/// Whether a type is a number or a `bool` (possibly behind references), which cannot hold a
/// credential, so `const SECRETS: usize` or `tokens: u32` is not one.
pub(crate) fn is_number_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Reference(reference) => is_number_type(&reference.elem),
        syn::Type::Paren(paren) => is_number_type(&paren.elem),
        syn::Type::Path(path) => {
            path.qself.is_none()
                && path.path.get_ident().is_some_and(|ident| {
                    [
                        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
                        "i128", "isize", "f32", "f64", "bool",
                    ]
                    .contains(&ident.to_string().as_str())
                })
        }
        _ => false,
    }
}

/// The secret type a call path constructs from (`SecretString::from`, `RootSecret::from_base64`).
pub(crate) fn secret_type_of_constructor(path: &syn::Path) -> Option<String> {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    if segments.len() < 2 {
        return None;
    }
    segments[..segments.len() - 1]
        .iter()
        .find(|segment| SECRET_TYPES.contains(&segment.as_str()))
        .cloned()
}

struct SecretTypeSearch {
    found: Option<String>,
}

impl<'ast> Visit<'ast> for SecretTypeSearch {
    fn visit_path_segment(&mut self, segment: &'ast syn::PathSegment) {
        let name = segment.ident.to_string();
        if self.found.is_none()
            && (SECRET_TYPES.contains(&name.as_str()) || HEADER_TYPES.contains(&name.as_str()))
        {
            self.found = Some(segment.ident.to_string());
        }
        syn::visit::visit_path_segment(self, segment);
    }
}
