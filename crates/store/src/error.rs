//! The store's one error type; messages name what went wrong and never carry a stored value.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot open the database ({location}): {source}")]
    Connect {
        /// Where it was looked for, with any password removed.
        location: String,
        /// The driver's reason.
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The root secret does not open this store's key-check record (S11).
    #[error(
        "MCP_HERO_ROOT_SECRET does not match the root secret this store was created with \
         (store key id {stored}, given key id {given}); set the original secret, or during a \
         rotation give the old one as MCP_HERO_ROOT_SECRET_PREVIOUS"
    )]
    WrongRootSecret {
        /// Key id found in the key-check record.
        stored: String,
        /// Key id of the secret given.
        given: vault::KeyId,
    },
    /// The thing asked for does not exist in the caller's organization (or at all: S8).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique name or membership already exists.
    #[error("{0}")]
    Conflict(String),
    /// An input value breaks a rule; the field and the rule are named.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What rule it broke.
        reason: String,
    },
    /// The caller's role may not do this.
    #[error(transparent)]
    Denied(#[from] auth::Denied),
    /// The change would leave the organization without an owner.
    #[error("the organization must keep at least one owner")]
    LastOwner,
    /// Sealing or opening a secret failed.
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    /// A row holds a value this build does not understand (a corrupted or newer database).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// The table holding the bad row.
        table: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn corrupt(table: &'static str, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            table,
            reason: reason.into(),
        }
    }
}

/// Maps a unique-constraint violation to a conflict with the given message.
pub(crate) fn conflict_on_unique(
    error: sqlx::Error,
    message: impl FnOnce() -> String,
) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(error),
    }
}
