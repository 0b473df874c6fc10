//! The vault seals and opens MCP Hero's secrets at rest (promises S9, S10, S11 in DESIGN.md).
//!
//! A deployment has one root secret (`MCP_HERO_ROOT_SECRET`). From it, HKDF-SHA256 derives a
//! 256-bit AES-GCM data key and a short public key id. Every record is sealed with a fresh random
//! 96-bit nonce and bound, through the AEAD's associated data, to the table, column, row and
//! organization it is stored in, so a ciphertext copied elsewhere fails to open.
//!
//! Main types: [`RootSecret`] (the parsed environment value), [`Vault`] (current key plus an
//! optional previous one during rotation), [`RecordContext`] (where a record lives) and
//! [`SealedRecord`] (the bytes a store keeps).
//!
//! This crate never does I/O: it does not read the environment, files or the database. Callers
//! hand it the secret and the bytes.

mod record;
mod root_secret;

#[cfg(test)]
mod tests;

pub use record::{KeyId, RecordContext, SealedRecord, Vault, VaultError};
pub use root_secret::{ROOT_SECRET_MIN_BYTES, RootSecret, RootSecretError};
