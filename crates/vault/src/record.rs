//! Sealing and opening records: the security decision of S9 and S10 lives in this module.
//!
//! Record layout (version 1), all of it authenticated:
//!
//! ```text
//! [version: 1 byte = 0x01][key id: 8 bytes][nonce: 12 bytes][ciphertext][tag: 16 bytes]
//! ```
//!
//! The associated data is the version and key id followed by the length-prefixed table, column,
//! row id and organization id of the record's home. The key id names which root secret sealed the
//! record, so records sealed before a rotation still open while `MCP_HERO_ROOT_SECRET_PREVIOUS` is
//! given, and `rotate-key` can tell which records still need re-sealing.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use secrecy::SecretBox;
use zeroize::{Zeroize, Zeroizing};

use crate::RootSecret;

const RECORD_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// HKDF salt: fixed and public, it separates MCP Hero's keys from any other use of the secret.
const HKDF_SALT: &[u8] = b"mcp-hero vault v1";
const DATA_KEY_INFO: &[u8] = b"mcp-hero aes-256-gcm data key";
const KEY_ID_INFO: &[u8] = b"mcp-hero key id";

/// Why sealing or opening failed; carries no plaintext and no key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    /// The bytes are not a vault record of a version this build understands.
    #[error("sealed record is malformed: {0}")]
    Malformed(&'static str),
    /// The record was sealed under a root secret that is neither the current nor the previous one.
    #[error(
        "sealed record uses key {0}, which is neither MCP_HERO_ROOT_SECRET nor MCP_HERO_ROOT_SECRET_PREVIOUS"
    )]
    UnknownKey(KeyId),
    /// Authentication failed: the record was altered, or moved to another row, column or organization.
    #[error("sealed record failed authentication: it was altered or does not belong to {0}")]
    Forged(String),
    /// The crypto library refused to seal (not expected with valid keys).
    #[error("sealing failed in the crypto library")]
    SealFailed,
}

/// A public, non-secret name for a root secret: the first 8 bytes of an HKDF output.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Where a record lives; it becomes the associated data, binding the ciphertext to its home.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext<'a> {
    /// The table the record is stored in.
    pub table: &'a str,
    /// The column the record is stored in.
    pub column: &'a str,
    /// The id of the row that holds the record.
    pub row_id: &'a str,
    /// The organization that owns the row (empty for deployment-wide rows).
    pub org_id: &'a str,
}

impl std::fmt::Display for RecordContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{} of row {} in organization {}",
            self.table, self.column, self.row_id, self.org_id
        )
    }
}

impl RecordContext<'_> {
    fn associated_data(&self, key_id: KeyId) -> Vec<u8> {
        let fields = [self.table, self.column, self.row_id, self.org_id];
        let mut aad =
            Vec::with_capacity(1 + KEY_ID_LEN + fields.iter().map(|f| 4 + f.len()).sum::<usize>());
        aad.push(RECORD_VERSION);
        aad.extend_from_slice(&key_id.0);
        for field in fields {
            // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
        aad
    }
}

/// The bytes of a sealed record, as a store keeps them; never serialized to an API.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRecord(Vec<u8>);

impl SealedRecord {
    /// Wraps bytes read back from storage; they are checked when opened.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Takes the bytes to store.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The id of the root secret that sealed this record.
    pub fn key_id(&self) -> Result<KeyId, VaultError> {
        let bytes = &self.0;
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(VaultError::Malformed("shorter than a header and a tag"));
        }
        if bytes[0] != RECORD_VERSION {
            return Err(VaultError::Malformed("unknown record version"));
        }
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&bytes[1..1 + KEY_ID_LEN]);
        Ok(KeyId(id))
    }
}

impl std::fmt::Debug for SealedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedRecord({} bytes)", self.0.len())
    }
}

/// One derived data key and the id of the root secret it came from.
struct DataKey {
    id: KeyId,
    key: RandomizedNonceKey,
}

impl DataKey {
    fn derive(root: &RootSecret) -> Self {
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(root.bytes());
        let mut key_bytes = Zeroizing::new([0u8; 32]);
        let mut id = [0u8; KEY_ID_LEN];
        // Expanding a fixed, small length from HKDF-SHA256 cannot fail; a failure would be a
        // broken crypto library, and continuing with a zero key would be worse than aborting.
        let derived = prk
            .expand(&[DATA_KEY_INFO], &AES_256_GCM)
            .and_then(|okm| okm.fill(key_bytes.as_mut()))
            .and_then(|()| prk.expand(&[KEY_ID_INFO], KeyIdLen))
            .and_then(|okm| okm.fill(&mut id));
        let key = derived.and_then(|()| RandomizedNonceKey::new(&AES_256_GCM, key_bytes.as_ref()));
        match key {
            Ok(key) => Self { id: KeyId(id), key },
            Err(_) => std::process::abort(),
        }
    }
}

/// The output length of the key id expansion.
struct KeyIdLen;

impl aws_lc_rs::hkdf::KeyType for KeyIdLen {
    fn len(&self) -> usize {
        KEY_ID_LEN
    }
}

/// Seals records under the current root secret and opens records of the current or previous one.
pub struct Vault {
    current: DataKey,
    previous: Option<DataKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("current", &self.current.id)
            .field("previous", &self.previous.as_ref().map(|key| key.id))
            .finish()
    }
}

impl Vault {
    /// Derives the keys; `previous` is the secret being rotated away from, if a rotation is under way.
    pub fn new(current: &RootSecret, previous: Option<&RootSecret>) -> Self {
        let current = DataKey::derive(current);
        let previous = previous
            .map(DataKey::derive)
            .filter(|previous| previous.id != current.id);
        Self { current, previous }
    }

    /// The id of the root secret new records are sealed under.
    pub fn current_key_id(&self) -> KeyId {
        self.current.id
    }

    /// The id of the previous root secret, while one is configured.
    pub fn previous_key_id(&self) -> Option<KeyId> {
        self.previous.as_ref().map(|key| key.id)
    }

    /// Seals `plaintext` for the place `context` names, with a fresh random nonce.
    pub fn seal(
        &self,
        context: &RecordContext<'_>,
        plaintext: &[u8],
    ) -> Result<SealedRecord, VaultError> {
        let key = &self.current;
        let aad = context.associated_data(key.id);
        let mut in_out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        in_out.extend_from_slice(plaintext);
        let nonce = key
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .map_err(|_| VaultError::SealFailed)?;
        let mut record = Vec::with_capacity(HEADER_LEN + in_out.len());
        record.push(RECORD_VERSION);
        record.extend_from_slice(&key.id.0);
        record.extend_from_slice(nonce.as_ref());
        record.extend_from_slice(&in_out);
        Ok(SealedRecord(record))
    }

    /// Opens a record stored at the place `context` names; fails if it was sealed for another place.
    pub fn open(
        &self,
        context: &RecordContext<'_>,
        record: &SealedRecord,
    ) -> Result<SecretBox<[u8]>, VaultError> {
        let key_id = record.key_id()?;
        let key = self.key(key_id)?;
        let bytes = record.as_bytes();
        let nonce = Nonce::try_assume_unique_for_key(&bytes[1 + KEY_ID_LEN..HEADER_LEN])
            .map_err(|_| VaultError::Malformed("bad nonce"))?;
        let mut in_out = Zeroizing::new(bytes[HEADER_LEN..].to_vec());
        let plaintext = key
            .key
            .open_in_place(
                nonce,
                Aad::from(context.associated_data(key_id)),
                in_out.as_mut_slice(),
            )
            .map_err(|_| VaultError::Forged(context.to_string()))?;
        // Copy into an exactly sized box so no unzeroized reallocation of the plaintext is left behind.
        let opened = SecretBox::new(Box::from(&*plaintext));
        plaintext.zeroize();
        Ok(opened)
    }

    /// Re-seals a record under the current root secret; `None` when it already is.
    #[expect(
        clippy::disallowed_methods,
        reason = "re-seals the opened plaintext at once under the current key"
    )]
    pub fn reseal(
        &self,
        context: &RecordContext<'_>,
        record: &SealedRecord,
    ) -> Result<Option<SealedRecord>, VaultError> {
        if record.key_id()? == self.current.id {
            // Still authenticate it, so a forged record is reported rather than silently kept.
            self.open(context, record)?;
            return Ok(None);
        }
        let plaintext = self.open(context, record)?;
        self.seal(context, secrecy::ExposeSecret::expose_secret(&plaintext))
            .map(Some)
    }

    fn key(&self, id: KeyId) -> Result<&DataKey, VaultError> {
        if id == self.current.id {
            return Ok(&self.current);
        }
        match &self.previous {
            Some(previous) if previous.id == id => Ok(previous),
            _ => Err(VaultError::UnknownKey(id)),
        }
    }
}
