//! Personal access tokens: format, generation, parsing and the digest a store keeps (never the token).
//!
//! A token is `mcph_pat_` followed by 43 base64url characters encoding 256 random bits. The store
//! keeps only its SHA-256 digest, split into a lookup key (the first 16 hex characters, indexed)
//! and the whole digest, compared in constant time after the lookup. A fast hash is right here:
//! a 256-bit random token cannot be guessed, so a slow KDF would only slow every request.

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

/// The recognizable prefix, so secret scanners and humans can tell what leaked.
pub const TOKEN_PREFIX: &str = "mcph_pat_";
const RANDOM_BYTES: usize = 32;
const ENCODED_LEN: usize = 43;

/// Why a bearer value is not a personal access token; says nothing about the value itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenFormatError {
    /// The value lacks the `mcph_pat_` prefix.
    #[error("the token does not start with {TOKEN_PREFIX}")]
    MissingPrefix,
    /// The part after the prefix is not 43 base64url characters.
    #[error("the token is not {TOKEN_PREFIX} followed by {ENCODED_LEN} base64url characters")]
    BadBody,
}

/// What the store keeps of a token: enough to recognize it, never enough to use it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest {
    digest: [u8; 32],
}

impl TokenDigest {
    /// Rebuilds a digest read from storage; `None` if the stored bytes are not a SHA-256 digest.
    pub fn from_stored(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(|digest| Self { digest })
    }

    /// The indexed lookup key: the first 8 bytes of the digest, as hex.
    pub fn lookup_key(&self) -> String {
        self.digest[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// The lookup key's raw bytes, for in-memory maps that should not allocate per request.
    pub fn lookup_prefix(&self) -> [u8; 8] {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&self.digest[..8]);
        prefix
    }

    /// The full digest, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digest
    }

    /// Compares two digests in constant time.
    pub fn matches(&self, stored: &TokenDigest) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.digest, &stored.digest).is_ok()
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenDigest({}…)", self.lookup_key())
    }
}

/// A freshly minted token: the secret to show once, and the digest to store.
pub struct NewToken {
    /// The token itself, to hand to the user exactly once.
    pub secret: SecretString,
    /// Its digest, the only thing stored.
    pub digest: TokenDigest,
}

/// Mints a new random token.
pub fn generate() -> NewToken {
    let mut random = [0u8; RANDOM_BYTES];
    if aws_lc_rs::rand::fill(&mut random).is_err() {
        // Without a working system RNG no token is safe to issue.
        std::process::abort();
    }
    let secret = SecretString::from(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random)));
    random.fill(0);
    let digest = digest_of(&secret);
    NewToken { secret, digest }
}

/// Checks a presented bearer value's shape and returns its digest for lookup.
pub fn parse(presented: &str) -> Result<TokenDigest, TokenFormatError> {
    let body = presented
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(TokenFormatError::MissingPrefix)?;
    let well_formed = body.len() == ENCODED_LEN
        && body
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !well_formed {
        return Err(TokenFormatError::BadBody);
    }
    Ok(digest_bytes(presented.as_bytes()))
}

#[expect(
    clippy::disallowed_methods,
    reason = "hashes the token; only its SHA-256 digest is kept"
)]
fn digest_of(secret: &SecretString) -> TokenDigest {
    digest_bytes(secret.expose_secret().as_bytes())
}

fn digest_bytes(bytes: &[u8]) -> TokenDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    TokenDigest { digest: out }
}
