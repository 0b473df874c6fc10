//! The deployment's root secret: parsed from base64, held in zeroizing memory, never printed.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

/// The fewest bytes a root secret may decode to: the data key is 256 bits, so is its source.
pub const ROOT_SECRET_MIN_BYTES: usize = 32;

/// Why a root secret value was refused; never carries the value itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RootSecretError {
    /// The value is not valid base64.
    #[error("is not valid base64")]
    NotBase64,
    /// The value decodes to fewer than [`ROOT_SECRET_MIN_BYTES`] bytes.
    #[error("decodes to {decoded_len} bytes; at least {ROOT_SECRET_MIN_BYTES} are required")]
    TooShort {
        /// How many bytes the value decoded to.
        decoded_len: usize,
    },
}

/// The deployment-wide secret every key derives from; only the vault ever reads its bytes.
pub struct RootSecret(SecretBox<[u8]>);

impl RootSecret {
    /// Parses the base64 value of `MCP_HERO_ROOT_SECRET` (standard or URL-safe, padded or not).
    pub fn from_base64(value: &str) -> Result<Self, RootSecretError> {
        let trimmed = value.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(trimmed).ok())
            .map(Zeroizing::new)
            .ok_or(RootSecretError::NotBase64)?;
        if decoded.len() < ROOT_SECRET_MIN_BYTES {
            return Err(RootSecretError::TooShort {
                decoded_len: decoded.len(),
            });
        }
        Ok(Self(SecretBox::new(Box::from(decoded.as_slice()))))
    }

    /// Generates a fresh random root secret and returns it base64-encoded, for `secret generate`.
    pub fn generate_base64() -> SecretString {
        let mut bytes = Zeroizing::new([0u8; ROOT_SECRET_MIN_BYTES]);
        // The system RNG failing is not recoverable; aws-lc aborts on its own in that case.
        if aws_lc_rs::rand::fill(bytes.as_mut()).is_err() {
            std::process::abort();
        }
        SecretString::from(STANDARD.encode(bytes.as_ref()))
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "hands the root secret to HKDF inside the vault, the only use of its bytes"
    )]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootSecret([REDACTED])")
    }
}
