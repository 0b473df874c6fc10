//! Organization variables: strings stored as given, passwords sealed by the vault (S9, S12, S15).
//!
//! Issue 5 attaches variables to servers; the table and the sealing rules are settled here.
//! A password's last-4 preview is sealed in its own column when the value is stored, so listing
//! metadata opens only those four characters, never the secret itself (S14). Values shorter than
//! [`PREVIEW_MIN_CHARS`] get no preview: four characters would give away too much of them.

use secrecy::{ExposeSecret, SecretBox, SecretString};
use sqlx::Row;
use sqlx::any::AnyRow;
use vault::{RecordContext, SealedRecord};

use crate::{OrgScope, Store, StoreError, VariableId, unix_now};

/// Passwords shorter than this show no preview at all.
pub const PREVIEW_MIN_CHARS: usize = 12;
const MAX_VALUE_BYTES: usize = 64 * 1024;

/// What a variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableKind {
    /// Plain configuration, readable back.
    String,
    /// A secret: sealed at rest, never returned.
    Password,
}

impl VariableKind {
    fn as_str(self) -> &'static str {
        match self {
            VariableKind::String => "string",
            VariableKind::Password => "password",
        }
    }
}

/// A variable's metadata as the API may show it: never a password's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableMeta {
    /// Its id.
    pub id: VariableId,
    /// Its name, unique in the organization.
    pub name: String,
    /// Its kind.
    pub kind: VariableKind,
    /// The value of a string variable; always `None` for passwords.
    pub string_value: Option<String>,
    /// `…` and the last four characters of a long enough password; `None` otherwise.
    pub preview: Option<String>,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When its value last changed (Unix seconds).
    pub updated_at: i64,
}

fn sealed_context<'a>(scope: &'a OrgScope, id: &'a str) -> RecordContext<'a> {
    RecordContext {
        table: "variables",
        column: "value_sealed",
        row_id: id,
        org_id: scope.org_id().as_str(),
    }
}

fn preview_context<'a>(scope: &'a OrgScope, id: &'a str) -> RecordContext<'a> {
    RecordContext {
        column: "preview_sealed",
        ..sealed_context(scope, id)
    }
}

/// A sealed column's value as the insert binds it.
struct StoredValue {
    text: Option<String>,
    sealed: Option<Vec<u8>>,
    preview_sealed: Option<Vec<u8>>,
}

fn validate_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "name",
            reason: "use 1 to 64 of A-Z, 0-9 and _, not starting with a digit".to_owned(),
        })
    }
}

fn validate_size(len: usize) -> Result<(), StoreError> {
    if len > MAX_VALUE_BYTES {
        return Err(StoreError::Invalid {
            field: "value",
            reason: format!("is {len} bytes; the limit is {MAX_VALUE_BYTES}"),
        });
    }
    Ok(())
}

impl Store {
    /// Stores a string variable, readable back through the API.
    pub async fn put_string_variable(
        &self,
        scope: &OrgScope,
        name: &str,
        value: &str,
    ) -> Result<VariableMeta, StoreError> {
        validate_name(name)?;
        validate_size(value.len())?;
        self.insert_variable(scope, name, VariableKind::String, |_| {
            Ok(StoredValue {
                text: Some(value.to_owned()),
                sealed: None,
                preview_sealed: None,
            })
        })
        .await
    }

    /// Seals and stores a password variable; its plaintext never reaches SQL.
    #[expect(
        clippy::disallowed_methods,
        reason = "measures, seals and previews the password; its plaintext never reaches SQL"
    )]
    pub async fn put_password_variable(
        &self,
        scope: &OrgScope,
        name: &str,
        value: &SecretString,
    ) -> Result<VariableMeta, StoreError> {
        validate_name(name)?;
        validate_size(value.expose_secret().len())?;
        self.insert_variable(scope, name, VariableKind::Password, |id| {
            let sealed = self
                .vault
                .seal(&sealed_context(scope, id), value.expose_secret().as_bytes())?;
            let preview_sealed = password_preview(value.expose_secret())
                .map(|preview| {
                    self.vault
                        .seal(&preview_context(scope, id), preview.as_bytes())
                })
                .transpose()?;
            Ok(StoredValue {
                text: None,
                sealed: Some(sealed.into_bytes()),
                preview_sealed: preview_sealed.map(vault::SealedRecord::into_bytes),
            })
        })
        .await
    }

    async fn insert_variable(
        &self,
        scope: &OrgScope,
        name: &str,
        kind: VariableKind,
        value: impl FnOnce(&str) -> Result<StoredValue, StoreError>,
    ) -> Result<VariableMeta, StoreError> {
        let id = VariableId::random();
        let stored = value(id.as_str())?;
        let now = unix_now();
        sqlx::query(
            "INSERT INTO variables (id, org_id, name, kind, value_text, value_sealed, preview_sealed, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(id.as_str())
        .bind(scope.org_id().as_str())
        .bind(name)
        .bind(kind.as_str())
        .bind(stored.text)
        .bind(stored.sealed)
        .bind(stored.preview_sealed)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| crate::error::conflict_on_unique(e, || format!("a variable named {name} already exists")))?;
        self.variable(scope, name).await
    }

    /// One variable's metadata by name.
    pub async fn variable(&self, scope: &OrgScope, name: &str) -> Result<VariableMeta, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, kind, value_text, preview_sealed, created_at, updated_at FROM variables WHERE org_id = $1 AND name = $2",
        )
        .bind(scope.org_id().as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("variable"))?;
        self.variable_meta(scope, &row)
    }

    /// Every variable's metadata in the scoped organization, by name.
    pub async fn list_variables(&self, scope: &OrgScope) -> Result<Vec<VariableMeta>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, kind, value_text, preview_sealed, created_at, updated_at FROM variables WHERE org_id = $1 ORDER BY name",
        )
        .bind(scope.org_id().as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| self.variable_meta(scope, row))
            .collect()
    }

    /// Opens a password variable for injection into a session; the caller zeroizes it when done.
    pub async fn reveal_password(
        &self,
        scope: &OrgScope,
        name: &str,
    ) -> Result<SecretBox<[u8]>, StoreError> {
        let row = sqlx::query("SELECT id, value_sealed FROM variables WHERE org_id = $1 AND name = $2 AND kind = 'password'")
            .bind(scope.org_id().as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("variable"))?;
        let id: String = row.try_get("id")?;
        let record = SealedRecord::from_bytes(row.try_get("value_sealed")?);
        Ok(self.vault.open(&sealed_context(scope, &id), &record)?)
    }

    /// Deletes a variable; its sealed bytes are overwritten on SQLite (`secure_delete`).
    pub async fn delete_variable(&self, scope: &OrgScope, name: &str) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM variables WHERE org_id = $1 AND name = $2")
            .bind(scope.org_id().as_str())
            .bind(name)
            .execute(&self.pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound("variable"));
        }
        Ok(())
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "opens only the sealed last-4 preview, which the API shows by design (S15)"
    )]
    fn variable_meta(&self, scope: &OrgScope, row: &AnyRow) -> Result<VariableMeta, StoreError> {
        let id: String = row.try_get("id")?;
        let kind = match row.try_get::<String, _>("kind")?.as_str() {
            "string" => VariableKind::String,
            "password" => VariableKind::Password,
            other => {
                return Err(StoreError::corrupt(
                    "variables",
                    format!("unknown kind {other:?}"),
                ));
            }
        };
        let preview = match row.try_get::<Option<Vec<u8>>, _>("preview_sealed")? {
            None => None,
            Some(bytes) => {
                let opened = self.vault.open(
                    &preview_context(scope, &id),
                    &SealedRecord::from_bytes(bytes),
                )?;
                Some(
                    String::from_utf8(opened.expose_secret().to_vec())
                        .map_err(|_| StoreError::corrupt("variables", "preview is not UTF-8"))?,
                )
            }
        };
        Ok(VariableMeta {
            id: VariableId::from_untrusted(&id),
            name: row.try_get("name")?,
            kind,
            string_value: row.try_get("value_text")?,
            preview,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

fn password_preview(text: &str) -> Option<String> {
    let count = text.chars().count();
    (count >= PREVIEW_MIN_CHARS).then(|| {
        let last_four: String = text.chars().skip(count - 4).collect();
        format!("…{last_four}")
    })
}
