//! The `mcp-hero` command line (clap derive); each subcommand maps to one function elsewhere.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{ServeFlags, StoreFlags};

/// MCP Hero: one MCP endpoint per organization, every server sandboxed, every secret sealed.
#[derive(Debug, Parser)]
#[command(name = "mcp-hero", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (applies pending migrations first).
    Serve {
        /// Where the store is.
        #[command(flatten)]
        store: StoreFlags,
        /// Where and how to listen.
        #[command(flatten)]
        serve: ServeFlags,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        /// Where the store is.
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Root secret helpers.
    Secret {
        /// What to do with secrets.
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Operator commands on the store (organizations, members, tokens, key rotation).
    Admin {
        /// Where the store is.
        #[command(flatten)]
        store: StoreFlags,
        /// The operation.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Talk to a running gateway's API about the organization's servers.
    Servers {
        /// Which gateway, and as whom.
        #[command(flatten)]
        api: ApiFlags,
        /// The operation.
        #[command(subcommand)]
        command: ServersCommand,
    },
    /// First run for newcomers: a fresh data dir, a new root secret, a demo organization and token, then serve.
    Quickstart {
        /// A directory that does not exist yet or is empty.
        #[arg(long, value_name = "DIR", default_value = "./mcp-hero-quickstart")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = crate::config::DEFAULT_LISTEN)]
        listen: String,
        /// The demo organization's owner.
        #[arg(long, default_value = "admin@example.com")]
        email: String,
    },
}

/// How a client command reaches a running gateway.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiFlags {
    /// The gateway's base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A file holding a personal access token (`mcph_pat_...`); never given on the command line,
    /// where every user of the host could read it.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
}

/// `mcp-hero servers ...`
#[derive(Debug, Subcommand)]
pub enum ServersCommand {
    /// Follow a server's package install, with a progress bar, until it is ready (exit 0) or
    /// failed (exit 1, saying why).
    InstallStatus {
        /// The server's name or id.
        server: String,
        /// Print the state once instead of waiting for the install to end.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
        timeout_secs: u64,
    },
    /// Install a server's package again, into a new image, and follow it like `install-status`.
    Reinstall {
        /// The server's name or id.
        server: String,
        /// Give up waiting after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
        timeout_secs: u64,
    },
}

/// `mcp-hero secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a fresh random root secret (base64, 32 bytes) for MCP_HERO_ROOT_SECRET.
    Generate,
}

/// `mcp-hero admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Organizations.
    Org {
        /// The operation.
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Members of an organization.
    Member {
        /// The operation.
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Personal access tokens.
    Token {
        /// The operation.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Re-seal every secret under MCP_HERO_ROOT_SECRET (records under MCP_HERO_ROOT_SECRET_PREVIOUS included).
    RotateKey,
}

/// `mcp-hero admin org ...`
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization with its first owner.
    Create {
        /// URL name: lower-case letters, digits and dashes.
        #[arg(long)]
        slug: String,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
        /// The first owner's email.
        #[arg(long, value_name = "EMAIL")]
        owner: String,
    },
    /// Delete an organization with everything it holds: servers, variables, files, images,
    /// logs, tool rules, members, tokens, and users in no other organization. Stop the gateway
    /// first, or its live sessions of the organization run on until they end.
    Delete {
        /// The organization's slug.
        #[arg(long)]
        slug: String,
        /// The slug again, to confirm; nothing is deleted unless it matches.
        #[arg(long, value_name = "SLUG")]
        confirm: String,
    },
}

/// `mcp-hero admin member ...`
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member to an organization.
    Add {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// The member's email.
        #[arg(long)]
        email: String,
        /// owner, admin, member or viewer.
        #[arg(long, default_value = "member")]
        role: String,
    },
}

/// `mcp-hero admin token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a personal access token for a member; it is printed once and never stored.
    Create {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// The member's email.
        #[arg(long)]
        email: String,
        /// A name to recognize the token by.
        #[arg(long)]
        name: String,
        /// Days until it expires (1 to 365); no expiry when omitted.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u16).range(1..=365))]
        expires_in_days: Option<u16>,
    },
    /// Revoke a token by id.
    Revoke {
        /// The organization's slug.
        #[arg(long)]
        org: String,
        /// The token's id (from the API's token list).
        #[arg(long)]
        id: String,
    },
}
