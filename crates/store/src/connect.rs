//! Opening the database: SQLite under the data dir by default, PostgreSQL when a URL is given.

use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::StoreError;

/// Which SQL dialect the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file, WAL, `secure_delete=ON`.
    Sqlite,
    /// For several gateway replicas sharing one database.
    Postgres,
}

/// Where the database lives; the PostgreSQL URL may hold a password, so it stays secret.
pub enum DatabaseLocation {
    /// A SQLite file, created when missing.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A `postgres://` URL.
    Postgres {
        /// The connection URL, password included.
        url: SecretString,
    },
}

impl DatabaseLocation {
    /// A description safe to print: the SQLite path, or the PostgreSQL URL without its password.
    #[expect(
        clippy::disallowed_methods,
        reason = "parses the URL only to print it without its password"
    )]
    pub fn describe(&self) -> String {
        match self {
            DatabaseLocation::Sqlite { path } => format!("sqlite file {}", path.display()),
            DatabaseLocation::Postgres { url } => match url::Url::parse(url.expose_secret()) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("REDACTED"));
                    }
                    format!("postgres {parsed}")
                }
                Err(_) => "postgres (unparseable URL)".to_owned(),
            },
        }
    }
}

impl std::fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Percent-encodes the characters SQLite URLs give meaning to, so any path works.
fn sqlite_url(path: &std::path::Path) -> String {
    let mut encoded = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    encoded.push_str("?mode=rwc");
    encoded
}

#[expect(
    clippy::disallowed_methods,
    reason = "hands the URL to the database driver"
)]
pub(crate) async fn connect(location: &DatabaseLocation) -> Result<(AnyPool, Backend), StoreError> {
    sqlx::any::install_default_drivers();
    let connect_error = |source| StoreError::Connect {
        location: location.describe(),
        source,
    };
    let (url, backend) = match location {
        DatabaseLocation::Sqlite { path } => {
            (SecretString::from(sqlite_url(path)), Backend::Sqlite)
        }
        DatabaseLocation::Postgres { url } => (url.clone(), Backend::Postgres),
    };
    let options = AnyConnectOptions::from_str(url.expose_secret()).map_err(connect_error)?;
    let pool_options = match backend {
        // SQLite allows one writer; a few readers suffice, and `busy_timeout` queues writers
        // instead of failing them.
        Backend::Sqlite => AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; \
                     PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
                    )
                    .await?;
                    Ok(())
                })
            }),
        Backend::Postgres => AnyPoolOptions::new().max_connections(16),
    };
    let pool = pool_options
        .connect_with(options)
        .await
        .map_err(connect_error)?;
    if backend == Backend::Sqlite {
        // WAL is a property of the file, set once; it lets readers run beside the writer.
        pool.execute("PRAGMA journal_mode = WAL")
            .await
            .map_err(connect_error)?;
    }
    Ok((pool, backend))
}
