//! `mcp-hero quickstart`: a first run that needs nothing prepared and says exactly how to connect.
//!
//! It refuses a data directory that already holds something (the secret that opened it was shown
//! only once and is not kept anywhere), generates a root secret, creates the organization `demo`
//! with one owner and one token, prints them once, and serves on the embedded database.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use store::{DatabaseLocation, Store};

use crate::config::{DEFAULT_MAX_BODY_BYTES, Environment, ServeConfig};

const DEMO_ORG: &str = "demo";

/// Runs the quickstart; see the module documentation.
#[expect(
    clippy::disallowed_methods,
    reason = "parses the freshly generated root secret into the vault's own secret type"
)]
pub async fn run(
    env: &Environment,
    data_dir: PathBuf,
    listen: String,
    email: &str,
) -> anyhow::Result<()> {
    if env.has_database_url() {
        anyhow::bail!(
            "quickstart always uses the embedded database; unset MCP_HERO_DATABASE_URL, or use `mcp-hero serve` for PostgreSQL"
        );
    }
    let listen = listen
        .parse()
        .with_context(|| format!("invalid listen address {listen:?} (from --listen): expected IP:PORT such as 127.0.0.1:8080"))?;
    let occupied = data_dir.exists()
        && std::fs::read_dir(&data_dir)
            .with_context(|| format!("cannot read {}", data_dir.display()))?
            .next()
            .is_some();
    if occupied {
        anyhow::bail!(
            "{dir} already holds data. Start it again with \
             `MCP_HERO_ROOT_SECRET=<the secret printed at its first start> mcp-hero serve --data-dir {dir}`, \
             or remove it (or pick another --data-dir) for a fresh quickstart",
            dir = data_dir.display()
        );
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))?;
    }

    let secret = vault::RootSecret::generate_base64();
    let root = vault::RootSecret::from_base64(secret.expose_secret())?;
    let location = DatabaseLocation::Sqlite {
        path: data_dir.join("mcp-hero.db"),
    };
    let store = Store::open(&location, vault::Vault::new(&root, None)).await?;
    let (scope, _, owner) = store.create_organization(DEMO_ORG, "Demo", email).await?;
    let token = auth::pat::generate();
    store
        .create_token(&scope, &owner, "quickstart", None, &token.digest)
        .await?;

    let config = ServeConfig {
        listen,
        tls: None,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        gateway: mcp::GatewayConfig::default(),
        insecure_no_sandbox: false,
        // Browsers on this machine reach the gateway here, so upstream OAuth works locally.
        public_url: url::Url::parse(&format!("http://{listen}")).ok(),
        sandbox: crate::config::sandbox_defaults(),
        images: crate::images::ImagesConfig {
            dir: Some(std::path::absolute(data_dir.join("images"))?),
            ..crate::images::ImagesConfig::default()
        },
        logs: crate::server_logs::LogsConfig::default(),
        audit: crate::audit::AuditConfig::default(),
    };
    let data_dir_text = data_dir.display().to_string();
    let (launcher, installs) = crate::launch::launchers(&config, None);
    crate::serve::serve(store, config, launcher, installs, move |local| {
        let _ = print_welcome(local, &data_dir_text, &secret, &token.secret);
    })
    .await
}

#[expect(
    clippy::disallowed_methods,
    reason = "quickstart shows the new root secret and token once, on the operator's terminal, with a warning"
)]
fn print_welcome(
    local: std::net::SocketAddr,
    data_dir: &str,
    root: &SecretString,
    token: &SecretString,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let base = format!("http://{local}");
    writeln!(out)?;
    writeln!(
        out,
        "MCP Hero is running at {base} with a fresh embedded database in {data_dir}"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Root secret (shown once; WITHOUT IT THIS DATA CAN NEVER BE OPENED AGAIN, store it safely):"
    )?;
    writeln!(out, "  MCP_HERO_ROOT_SECRET={}", root.expose_secret())?;
    writeln!(out)?;
    writeln!(
        out,
        "Organization `{DEMO_ORG}`, personal access token (shown once):"
    )?;
    writeln!(out, "  MCP_HERO_TOKEN={}", token.expose_secret())?;
    writeln!(out)?;
    writeln!(out, "Try the API:")?;
    writeln!(
        out,
        "  curl -H \"Authorization: Bearer $MCP_HERO_TOKEN\" {base}/api/v1/organization"
    )?;
    writeln!(
        out,
        "  curl -H \"Authorization: Bearer $MCP_HERO_TOKEN\" {base}/api/v1/members"
    )?;
    writeln!(out, "  curl {base}/api/v1/openapi.json")?;
    writeln!(out)?;
    writeln!(
        out,
        "Connect an MCP client (Streamable HTTP) to {base}/o/{DEMO_ORG}/mcp with the header \
         `Authorization: Bearer $MCP_HERO_TOKEN`. For example:"
    )?;
    writeln!(
        out,
        "  npx @modelcontextprotocol/inspector@1.0.3 --cli {base}/o/{DEMO_ORG}/mcp --transport http \\\n    --header \"Authorization: Bearer $MCP_HERO_TOKEN\" --method tools/list"
    )?;
    writeln!(
        out,
        "  VS Code / Cursor mcp.json: {{\"servers\": {{\"mcp-hero\": {{\"type\": \"http\", \"url\": \"{base}/o/{DEMO_ORG}/mcp\", \
         \"headers\": {{\"Authorization\": \"Bearer <token>\"}}}}}}}}"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Register a remote MCP server for the organization (its tools appear as <name>__<tool>):"
    )?;
    writeln!(
        out,
        "  curl -H \"Authorization: Bearer $MCP_HERO_TOKEN\" -H 'Content-Type: application/json' {base}/api/v1/servers \\\n    \
         -d '{{\"name\": \"docs\", \"transport\": {{\"type\": \"streamable_http\", \"url\": \"https://example.com/mcp\"}}}}'"
    )?;
    writeln!(out)?;
    writeln!(out, "Restart later with:")?;
    writeln!(
        out,
        "  MCP_HERO_ROOT_SECRET=... mcp-hero serve --data-dir {data_dir} --listen {local}"
    )?;
    writeln!(out, "Stop with Ctrl-C.")?;
    out.flush()
}
