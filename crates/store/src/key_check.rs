//! The key-check record: how a store refuses a wrong root secret instead of serving garbage (S11).

use sqlx::Row;
use vault::{RecordContext, SealedRecord, VaultError};

use crate::{Store, StoreError};

const KEY_CHECK_NAME: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"mcp-hero key check v1";

pub(crate) fn context() -> RecordContext<'static> {
    RecordContext {
        table: "deployment_meta",
        column: "value",
        row_id: KEY_CHECK_NAME,
        org_id: "",
    }
}

/// Opens the key-check record with the configured secrets, or writes it on a fresh store.
#[expect(
    clippy::disallowed_methods,
    reason = "compares the opened key-check record with its known, non-secret plaintext"
)]
pub(crate) async fn verify_or_create(store: &Store) -> Result<(), StoreError> {
    let sealed = store.vault.seal(&context(), KEY_CHECK_PLAINTEXT)?;
    // Two replicas starting on a fresh database race here; the loser keeps the winner's record.
    sqlx::query(
        "INSERT INTO deployment_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(KEY_CHECK_NAME)
    .bind(sealed.into_bytes())
    .execute(&store.pool)
    .await?;
    let row = sqlx::query("SELECT value FROM deployment_meta WHERE name = $1")
        .bind(KEY_CHECK_NAME)
        .fetch_one(&store.pool)
        .await?;
    let record = SealedRecord::from_bytes(row.try_get("value")?);
    let wrong_secret = |stored: String| StoreError::WrongRootSecret {
        stored,
        given: store.vault.current_key_id(),
    };
    match store.vault.open(&context(), &record) {
        Ok(plaintext)
            if secrecy::ExposeSecret::expose_secret(&plaintext) == KEY_CHECK_PLAINTEXT =>
        {
            Ok(())
        }
        Ok(_) => Err(wrong_secret("unknown".to_owned())),
        Err(VaultError::UnknownKey(stored)) => Err(wrong_secret(stored.to_string())),
        Err(VaultError::Forged(_)) => Err(wrong_secret(
            record
                .key_id()
                .map_or_else(|_| "unknown".to_owned(), |id| id.to_string()),
        )),
        Err(other) => Err(other.into()),
    }
}
