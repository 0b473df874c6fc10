//! Schema migrations, embedded in the binary: one folder per backend, applied in order at open.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};

use crate::{Backend, StoreError};

/// (version, description, SQLite text, PostgreSQL text). Append only; never edit an applied one.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/sqlite/0001_foundation.sql"),
        include_str!("../migrations/postgres/0001_foundation.sql"),
    ),
    (
        2,
        "servers",
        include_str!("../migrations/sqlite/0002_servers.sql"),
        include_str!("../migrations/postgres/0002_servers.sql"),
    ),
    (
        3,
        "images",
        include_str!("../migrations/sqlite/0003_images.sql"),
        include_str!("../migrations/postgres/0003_images.sql"),
    ),
    (
        4,
        "server variables",
        include_str!("../migrations/sqlite/0004_server_variables.sql"),
        include_str!("../migrations/postgres/0004_server_variables.sql"),
    ),
    (
        5,
        "upstream oauth",
        include_str!("../migrations/sqlite/0005_upstream_oauth.sql"),
        include_str!("../migrations/postgres/0005_upstream_oauth.sql"),
    ),
    (
        6,
        "server logs",
        include_str!("../migrations/sqlite/0006_server_logs.sql"),
        include_str!("../migrations/postgres/0006_server_logs.sql"),
    ),
    (
        7,
        "audit",
        include_str!("../migrations/sqlite/0007_audit.sql"),
        include_str!("../migrations/postgres/0007_audit.sql"),
    ),
];

pub(crate) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sqlite, postgres)| {
            let sql = match backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations).run(pool).await?;
    Ok(())
}
