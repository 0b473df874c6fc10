//! Configuration from the environment and an optional TOML file, validated once at start.
//!
//! This is the only module that reads the process environment (S11, S17): `clippy.toml` forbids
//! `std::env::var*` everywhere else. The root secret is read from `MCP_HERO_ROOT_SECRET` only,
//! never from a flag or a file, and lives in `secrecy` types from the moment it is read.
//!
//! Precedence, highest first: command-line flag, environment variable, config file, default.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use store::DatabaseLocation;
use vault::{RootSecret, RootSecretError, Vault};

/// The environment variable holding the deployment's root secret.
pub const ROOT_SECRET_VAR: &str = "MCP_HERO_ROOT_SECRET";
/// The environment variable holding the previous root secret during a rotation.
pub const ROOT_SECRET_PREVIOUS_VAR: &str = "MCP_HERO_ROOT_SECRET_PREVIOUS";
/// The environment variable selecting PostgreSQL.
pub const DATABASE_URL_VAR: &str = "MCP_HERO_DATABASE_URL";
/// The default listen address: loopback, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// The default request body limit for the API.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
const SQLITE_FILE_NAME: &str = "mcp-hero.db";

/// A configuration problem, phrased so an operator can fix it; never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The root secret is not set.
    #[error(
        "{ROOT_SECRET_VAR} is not set: every command that opens the store needs the deployment's root secret. \
         Generate one with `mcp-hero secret generate`, keep it somewhere safe (without it the data cannot be \
         decrypted), and pass it in the environment"
    )]
    MissingRootSecret,
    /// A root secret variable is set but unusable.
    #[error("{var} {reason}. Generate a valid one with `mcp-hero secret generate`")]
    BadRootSecret {
        /// Which variable.
        var: &'static str,
        /// What is wrong with it.
        reason: RootSecretError,
    },
    /// An environment variable is not valid UTF-8.
    #[error("environment variable {0} is not valid UTF-8")]
    NotUnicode(&'static str),
    /// A value is set but invalid; `source` names where it came from.
    #[error("invalid {key} {value:?} (from {origin}): {reason}")]
    Invalid {
        /// The setting's name.
        key: &'static str,
        /// The offending value (never a secret).
        value: String,
        /// Where the value came from: a flag, a variable or the config file.
        origin: String,
        /// What is expected instead.
        reason: String,
    },
    /// The config file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown or mistyped key.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
}

/// Every environment variable MCP Hero reads, captured once.
#[derive(Default)]
pub struct Environment {
    root_secret: Option<SecretString>,
    root_secret_previous: Option<SecretString>,
    database_url: Option<SecretString>,
    config_file: Option<String>,
    listen: Option<String>,
    data_dir: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
    allowed_hosts: Option<String>,
    allowed_origins: Option<String>,
    session_idle_timeout: Option<String>,
    call_timeout: Option<String>,
    max_message_bytes: Option<String>,
    public_url: Option<String>,
    path: Option<String>,
}

impl Environment {
    /// Reads the process environment; the one audited place that does.
    #[allow(clippy::disallowed_methods)] // This is the audited place: values go straight into typed fields.
    pub fn capture() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Builds an environment from a lookup function, for tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        let text = |name: &'static str| -> Result<Option<String>, ConfigError> {
            match lookup(name) {
                None => Ok(None),
                Some(value) if value.is_empty() => Ok(None),
                Some(value) => value
                    .into_string()
                    .map(Some)
                    .map_err(|_| ConfigError::NotUnicode(name)),
            }
        };
        let secret = |name: &'static str| text(name).map(|value| value.map(SecretString::from));
        Ok(Environment {
            root_secret: secret(ROOT_SECRET_VAR)?,
            root_secret_previous: secret(ROOT_SECRET_PREVIOUS_VAR)?,
            database_url: secret(DATABASE_URL_VAR)?,
            config_file: text("MCP_HERO_CONFIG")?,
            listen: text("MCP_HERO_LISTEN")?,
            data_dir: text("MCP_HERO_DATA_DIR")?,
            log: text("MCP_HERO_LOG")?,
            log_format: text("MCP_HERO_LOG_FORMAT")?,
            allowed_hosts: text("MCP_HERO_ALLOWED_HOSTS")?,
            allowed_origins: text("MCP_HERO_ALLOWED_ORIGINS")?,
            session_idle_timeout: text("MCP_HERO_SESSION_IDLE_TIMEOUT")?,
            call_timeout: text("MCP_HERO_CALL_TIMEOUT")?,
            max_message_bytes: text("MCP_HERO_MAX_MESSAGE_BYTES")?,
            public_url: text("MCP_HERO_PUBLIC_URL")?,
            path: text("PATH")?,
        })
    }

    /// The `tracing` filter directive from `MCP_HERO_LOG`, if set.
    pub fn log_filter(&self) -> Option<&str> {
        self.log.as_deref()
    }

    /// The log format from `MCP_HERO_LOG_FORMAT` (`text` or `json`), if set.
    pub fn log_format(&self) -> Option<&str> {
        self.log_format.as_deref()
    }

    /// The gateway's `PATH`, handed to unsandboxed stdio servers so they find their programs.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// Whether a PostgreSQL URL was given.
    pub fn has_database_url(&self) -> bool {
        self.database_url.is_some()
    }

    /// Builds the vault from `MCP_HERO_ROOT_SECRET` (and `_PREVIOUS` during a rotation) (S11).
    pub fn vault(&self) -> Result<Vault, ConfigError> {
        let current = self
            .root_secret
            .as_ref()
            .ok_or(ConfigError::MissingRootSecret)?;
        let current = parse_root_secret(ROOT_SECRET_VAR, current)?;
        let previous = self
            .root_secret_previous
            .as_ref()
            .map(|previous| parse_root_secret(ROOT_SECRET_PREVIOUS_VAR, previous))
            .transpose()?;
        Ok(Vault::new(&current, previous.as_ref()))
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "parses the root secret into the vault's own secret type"
)]
fn parse_root_secret(var: &'static str, value: &SecretString) -> Result<RootSecret, ConfigError> {
    RootSecret::from_base64(value.expose_secret())
        .map_err(|reason| ConfigError::BadRootSecret { var, reason })
}

/// The config file's shape; unknown keys are refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    mcp: FileMcp,
    sandbox: Option<sandbox::SandboxConfig>,
    images: Option<crate::images::ImagesConfig>,
    logs: Option<crate::server_logs::LogsConfig>,
    #[serde(default)]
    audit: FileAudit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAudit {
    retention_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMcp {
    allowed_hosts: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
    session_idle_timeout_secs: Option<u64>,
    call_timeout_secs: Option<u64>,
    max_message_bytes: Option<usize>,
    max_sessions_per_member: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    max_body_bytes: Option<usize>,
}

/// Keys that must never be in a file: secrets come from the environment only.
const FORBIDDEN_FILE_KEYS: &[(&str, &str)] = &[
    ("root_secret", ROOT_SECRET_VAR),
    ("root_secret_previous", ROOT_SECRET_PREVIOUS_VAR),
    ("database_url", DATABASE_URL_VAR),
];

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let file_error = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| file_error(e.message().to_owned()))?;
    for (key, var) in FORBIDDEN_FILE_KEYS {
        if table.contains_key(*key) {
            return Err(file_error(format!(
                "`{key}` may not be set in a file; set {var} in the environment instead"
            )));
        }
    }
    toml::from_str(&text).map_err(|e| file_error(e.to_string().trim_end().to_owned()))
}

/// Flags shared by the commands that open the store.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct StoreFlags {
    /// Directory for the embedded database [env: MCP_HERO_DATA_DIR] [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML config file [env: MCP_HERO_CONFIG].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Flags of `serve`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeFlags {
    /// Address to listen on [env: MCP_HERO_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// PEM certificate chain: serve HTTPS (needs --tls-key).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Run stdio MCP servers as plain child processes, with NO sandbox: for development only.
    #[arg(long)]
    pub insecure_no_sandbox: bool,
}

/// Where the store is, resolved from flags, environment, file and defaults.
pub struct StoreConfig {
    /// The database to open.
    pub location: DatabaseLocation,
    /// The data directory (SQLite file, install images unless `images.dir` says otherwise).
    pub data_dir: PathBuf,
    file: FileConfig,
}

/// Certificate and key for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Everything `serve` needs besides the store.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// HTTPS files, if the gateway terminates TLS itself.
    pub tls: Option<TlsFiles>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// The MCP data plane's settings.
    pub gateway: mcp::GatewayConfig,
    /// Run stdio servers without a sandbox (`--insecure-no-sandbox`).
    pub insecure_no_sandbox: bool,
    /// The sandbox runtime's settings (`[sandbox]` in the config file).
    pub sandbox: sandbox::SandboxConfig,
    /// How install images are made (`[images]` in the config file); `dir` is always set.
    pub images: crate::images::ImagesConfig,
    /// How much of each server's log is kept, and how long (`[logs]` in the config file).
    pub logs: crate::server_logs::LogsConfig,
    /// The address browsers and authorization servers reach this gateway at
    /// (`MCP_HERO_PUBLIC_URL` or `public_url`): upstream OAuth's callback lives under it.
    pub public_url: Option<url::Url>,
    /// How long audit events are kept (`[audit]` in the config file).
    pub audit: crate::audit::AuditConfig,
}

impl StoreConfig {
    /// Where install images live: `images.dir` from the config file, else `{data_dir}/images`.
    pub fn images_dir(&self) -> Result<PathBuf, ConfigError> {
        if let Some(dir) = self
            .file
            .images
            .as_ref()
            .and_then(|images| images.dir.clone())
        {
            return Ok(dir);
        }
        let dir = self.data_dir.join("images");
        std::path::absolute(&dir).map_err(|e| ConfigError::Invalid {
            key: "images.dir",
            value: dir.display().to_string(),
            origin: "the data directory".to_owned(),
            reason: format!("cannot make it absolute: {e}"),
        })
    }

    /// Resolves the store's location; creates the data directory if missing.
    #[expect(
        clippy::disallowed_methods,
        reason = "checks only the URL's scheme; the URL stays in its `SecretString`"
    )]
    pub fn resolve(env: &Environment, flags: &StoreFlags) -> Result<Self, ConfigError> {
        let config_path = flags
            .config
            .clone()
            .or_else(|| env.config_file.as_ref().map(PathBuf::from));
        let file = match &config_path {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let (data_dir, origin) = first_set(
            [
                (flags.data_dir.clone(), "--data-dir"),
                (
                    env.data_dir.as_ref().map(PathBuf::from),
                    "MCP_HERO_DATA_DIR",
                ),
                (file.data_dir.clone(), "the config file"),
            ],
            PathBuf::from(DEFAULT_DATA_DIR),
        );
        let location = match &env.database_url {
            Some(url) => {
                let scheme_ok = ["postgres://", "postgresql://"]
                    .iter()
                    .any(|s| url.expose_secret().starts_with(s));
                if !scheme_ok {
                    return Err(ConfigError::Invalid {
                        key: "database URL",
                        value: "(hidden)".to_owned(),
                        origin: DATABASE_URL_VAR.to_owned(),
                        reason: "expected a postgres:// URL; leave it unset for the embedded SQLite database".to_owned(),
                    });
                }
                DatabaseLocation::Postgres { url: url.clone() }
            }
            None => {
                ensure_data_dir(&data_dir, origin)?;
                DatabaseLocation::Sqlite {
                    path: data_dir.join(SQLITE_FILE_NAME),
                }
            }
        };
        Ok(StoreConfig {
            location,
            data_dir,
            file,
        })
    }

    /// Resolves the serve settings, using the same config file.
    pub fn serve_config(
        &self,
        env: &Environment,
        flags: &ServeFlags,
    ) -> Result<ServeConfig, ConfigError> {
        let (listen, origin) = first_set(
            [
                (flags.listen.clone(), "--listen"),
                (env.listen.clone(), "MCP_HERO_LISTEN"),
                (self.file.listen.clone(), "the config file"),
            ],
            DEFAULT_LISTEN.to_owned(),
        );
        let listen = listen
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::Invalid {
                key: "listen address",
                value: listen.clone(),
                origin: origin.to_owned(),
                reason: "expected IP:PORT, such as 127.0.0.1:8080 or [::1]:8080".to_owned(),
            })?;
        let cert = flags
            .tls_cert
            .clone()
            .or_else(|| self.file.tls.cert.clone());
        let key = flags.tls_key.clone().or_else(|| self.file.tls.key.clone());
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(cert), None) => return Err(tls_pair_error("--tls-key / tls.key", &cert)),
            (None, Some(key)) => return Err(tls_pair_error("--tls-cert / tls.cert", &key)),
        };
        let max_body_bytes = self
            .file
            .http
            .max_body_bytes
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::Invalid {
                key: "http.max_body_bytes",
                value: max_body_bytes.to_string(),
                origin: "the config file".to_owned(),
                reason: "expected between 1024 and 16777216".to_owned(),
            });
        }
        let gateway = self.gateway_config(env, listen)?;
        let sandbox = match &self.file.sandbox {
            Some(config) => config.clone(),
            None => sandbox_defaults(),
        };
        sandbox.validate().map_err(|reason| ConfigError::Invalid {
            key: "sandbox",
            value: String::new(),
            origin: "the config file".to_owned(),
            reason,
        })?;
        let mut images = self.file.images.clone().unwrap_or_default();
        images.validate().map_err(|reason| ConfigError::Invalid {
            key: "images",
            value: String::new(),
            origin: "the config file".to_owned(),
            reason,
        })?;
        images.dir = Some(self.images_dir()?);
        let logs = self.file.logs.clone().unwrap_or_default();
        logs.validate()?;
        let public_url = self.public_url(env)?;
        let audit = self.audit_config()?;
        Ok(ServeConfig {
            public_url,
            listen,
            tls,
            max_body_bytes,
            gateway,
            insecure_no_sandbox: flags.insecure_no_sandbox,
            sandbox,
            images,
            logs,
            audit,
        })
    }

    /// The gateway's public URL: environment over file; `http(s)://host[:port][/path]` without
    /// query, fragment or credentials.
    fn public_url(&self, env: &Environment) -> Result<Option<url::Url>, ConfigError> {
        let (text, origin) = match (&env.public_url, &self.file.public_url) {
            (Some(text), _) => (text.clone(), "MCP_HERO_PUBLIC_URL"),
            (None, Some(text)) => (text.clone(), "the config file (public_url)"),
            (None, None) => return Ok(None),
        };
        // A URL with credentials in it is refused, and not echoed either.
        let shown = if text.contains('@') {
            "(hidden: it contains @)".to_owned()
        } else {
            text.clone()
        };
        let invalid = |reason: &str| ConfigError::Invalid {
            key: "public_url",
            value: shown.clone(),
            origin: origin.to_owned(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(text.trim())
            .map_err(|_| invalid("expected a URL such as https://mcp.example.com"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid("expected an http:// or https:// URL with a host"));
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(invalid("must not carry a query, fragment or credentials"));
        }
        Ok(Some(url))
    }

    /// The `[audit]` settings: file over defaults.
    fn audit_config(&self) -> Result<crate::audit::AuditConfig, ConfigError> {
        let mut config = crate::audit::AuditConfig::default();
        if let Some(days) = self.file.audit.retention_days {
            if !(1..=3650).contains(&days) {
                return Err(ConfigError::Invalid {
                    key: "audit.retention_days",
                    value: days.to_string(),
                    origin: "the config file".to_owned(),
                    reason: "expected between 1 and 3650 days".to_owned(),
                });
            }
            config.retention = std::time::Duration::from_secs(days * 86_400);
        }
        Ok(config)
    }

    /// The data plane's settings: environment over file over defaults. Allowed hosts default to
    /// the loopback names plus the listen address, so a gateway reached by another name must be
    /// told that name (DNS rebinding protection).
    fn gateway_config(
        &self,
        env: &Environment,
        listen: SocketAddr,
    ) -> Result<mcp::GatewayConfig, ConfigError> {
        let file = &self.file.mcp;
        let mut config = mcp::GatewayConfig::default();
        if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
            config.allowed_hosts.push(match listen.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            });
        }
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        };
        if let Some(hosts) = env
            .allowed_hosts
            .as_deref()
            .map(list)
            .or_else(|| file.allowed_hosts.clone())
        {
            config.allowed_hosts.extend(hosts);
        }
        if let Some(origins) = env
            .allowed_origins
            .as_deref()
            .map(list)
            .or_else(|| file.allowed_origins.clone())
        {
            config.allowed_origins.extend(origins);
        }
        let number = |key: &'static str,
                      env_value: &Option<String>,
                      var: &str,
                      file_value: Option<u64>,
                      range: std::ops::RangeInclusive<u64>|
         -> Result<Option<u64>, ConfigError> {
            let (value, origin) = match (env_value, file_value) {
                (Some(text), _) => (
                    text.trim()
                        .parse::<u64>()
                        .map_err(|_| ConfigError::Invalid {
                            key,
                            value: text.clone(),
                            origin: var.to_owned(),
                            reason: "expected a whole number".to_owned(),
                        })?,
                    var.to_owned(),
                ),
                (None, Some(value)) => (value, "the config file".to_owned()),
                (None, None) => return Ok(None),
            };
            if !range.contains(&value) {
                return Err(ConfigError::Invalid {
                    key,
                    value: value.to_string(),
                    origin,
                    reason: format!("expected between {} and {}", range.start(), range.end()),
                });
            }
            Ok(Some(value))
        };
        if let Some(secs) = number(
            "mcp.session_idle_timeout_secs",
            &env.session_idle_timeout,
            "MCP_HERO_SESSION_IDLE_TIMEOUT",
            file.session_idle_timeout_secs,
            1..=7 * 24 * 3600,
        )? {
            config.idle_timeout = std::time::Duration::from_secs(secs);
        }
        if let Some(secs) = number(
            "mcp.call_timeout_secs",
            &env.call_timeout,
            "MCP_HERO_CALL_TIMEOUT",
            file.call_timeout_secs,
            1..=24 * 3600,
        )? {
            config.call_timeout = std::time::Duration::from_secs(secs);
        }
        if let Some(bytes) = number(
            "mcp.max_message_bytes",
            &env.max_message_bytes,
            "MCP_HERO_MAX_MESSAGE_BYTES",
            file.max_message_bytes.map(|bytes| bytes as u64),
            1024..=256 * 1024 * 1024,
        )? {
            config.upstream.max_message_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(max) = number(
            "mcp.max_sessions_per_member",
            &None,
            "",
            file.max_sessions_per_member.map(|max| max as u64),
            1..=10_000,
        )? {
            config.max_sessions_per_member = usize::try_from(max).unwrap_or(usize::MAX);
        }
        Ok(config)
    }
}

/// The first value that is set, in precedence order, with where it came from (for error messages).
fn first_set<T>(candidates: [(Option<T>, &'static str); 3], default: T) -> (T, &'static str) {
    candidates
        .into_iter()
        .find_map(|(value, origin)| value.map(|value| (value, origin)))
        .unwrap_or((default, "the default"))
}

fn tls_pair_error(missing: &'static str, given: &Path) -> ConfigError {
    ConfigError::Invalid {
        key: "TLS configuration",
        value: given.display().to_string(),
        origin: "--tls-cert/--tls-key or [tls]".to_owned(),
        reason: format!("a certificate and a key are needed together; {missing} is missing"),
    }
}

fn ensure_data_dir(dir: &Path, origin: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: "data directory",
        value: dir.display().to_string(),
        origin: origin.to_owned(),
        reason,
    };
    if dir.exists() {
        return if dir.is_dir() {
            Ok(())
        } else {
            Err(invalid("exists and is not a directory".to_owned()))
        };
    }
    // A directory we create holds the database: only the gateway's user may read it. An existing
    // one keeps the permissions its operator gave it.
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| invalid(format!("cannot create it: {e}")))
}

#[cfg(test)]
mod tests;

/// Sandbox settings when the config file has no `[sandbox]` table: the defaults, with the
/// socket directory somewhere the gateway's user may write when it is not root.
pub fn sandbox_defaults() -> sandbox::SandboxConfig {
    let mut config = sandbox::SandboxConfig::default();
    let uid = rustix::process::geteuid();
    if !uid.is_root() {
        config.run_dir = std::env::temp_dir().join(format!("mcp-hero-{}", uid.as_raw()));
    }
    config
}
