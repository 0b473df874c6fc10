//! Operator commands: migrations, organizations, members, tokens and root secret rotation.
//!
//! These run locally with the root secret and the database, so they act with owner rights
//! through [`store::Store::operator_scope`]. Secrets they create go to standard output once.

use std::io::Write as _;

use anyhow::Context as _;
use auth::{DeleteOrganization, ManageMembers, Role, authorize};
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use store::{Store, TokenId, TokenOwner};

use crate::cli::{AdminCommand, MemberCommand, OrgCommand, TokenCommand};
use crate::config::{Environment, StoreConfig, StoreFlags};

/// Opens the store: root secret first (S11), then the database, migrations and key check.
pub async fn open_store(env: &Environment, config: &StoreConfig) -> anyhow::Result<Store> {
    let vault = env.vault()?;
    let store = Store::open(&config.location, vault).await?;
    tracing::debug!(database = %config.location.describe(), "store opened");
    Ok(store)
}

/// `mcp-hero migrate`.
pub async fn migrate(env: &Environment, flags: &StoreFlags) -> anyhow::Result<()> {
    let config = StoreConfig::resolve(env, flags)?;
    let store = open_store(env, &config).await?;
    store.close().await;
    writeln!(
        std::io::stdout(),
        "{}: schema is up to date",
        config.location.describe()
    )?;
    Ok(())
}

/// `mcp-hero admin ...`.
pub async fn run(
    env: &Environment,
    flags: &StoreFlags,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let config = StoreConfig::resolve(env, flags)?;
    let store = open_store(env, &config).await?;
    let result = dispatch(&store, &config, command).await;
    store.close().await;
    result
}

#[expect(
    clippy::disallowed_methods,
    reason = "`admin token create` prints the new token once to stdout for scripts; it is never stored"
)]
async fn dispatch(
    store: &Store,
    config: &StoreConfig,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let operator = authorize::<ManageMembers>(Role::Owner)?;
    match command {
        AdminCommand::Org {
            command: OrgCommand::Create { slug, name, owner },
        } => {
            let (_, org, _) = store
                .create_organization(&slug, name.as_deref().unwrap_or(&slug), &owner)
                .await?;
            writeln!(
                out,
                "created organization {} ({}) with owner {}",
                org.slug,
                org.id,
                owner.to_lowercase()
            )?;
        }
        AdminCommand::Org {
            command: OrgCommand::Delete { slug, confirm },
        } => delete_organization(store, config, &slug, &confirm).await?,
        AdminCommand::Member {
            command: MemberCommand::Add { org, email, role },
        } => {
            let role: Role = role.parse()?;
            let scope = store
                .operator_scope(&org)
                .await
                .with_context(|| format!("organization {org:?}"))?;
            let member = store.add_member(&scope, &operator, &email, role).await?;
            writeln!(
                out,
                "added {} to {org} as {} (user id {})",
                member.email, member.role, member.user_id
            )?;
        }
        AdminCommand::Token {
            command:
                TokenCommand::Create {
                    org,
                    email,
                    name,
                    expires_in_days,
                },
        } => {
            let scope = store
                .operator_scope(&org)
                .await
                .with_context(|| format!("organization {org:?}"))?;
            let email = store::normalize_email(&email)?;
            let member = store
                .list_members(&scope)
                .await?
                .into_iter()
                .find(|member| member.email == email)
                .with_context(|| format!("{email} is not a member of {org}"))?;
            let expires_at =
                expires_in_days.map(|days| store::unix_now() + i64::from(days) * 86_400);
            let token = auth::pat::generate();
            let meta = store
                .create_token(&scope, &member.user_id, &name, expires_at, &token.digest)
                .await?;
            // The token goes to stdout alone on its line so scripts can capture it; it is not stored.
            writeln!(out, "{}", token.secret.expose_secret())?;
            let _ = writeln!(
                std::io::stderr(),
                "created token {} ({}) for {email}; it is shown only once",
                meta.id,
                meta.name
            );
        }
        AdminCommand::Token {
            command: TokenCommand::Revoke { org, id },
        } => {
            let scope = store
                .operator_scope(&org)
                .await
                .with_context(|| format!("organization {org:?}"))?;
            let meta = store
                .revoke_token(
                    &scope,
                    TokenOwner::AnyMember(&operator),
                    &TokenId::from_untrusted(&id),
                )
                .await?;
            writeln!(
                out,
                "revoked token {} ({}) of {}",
                meta.id, meta.name, meta.email
            )?;
        }
        AdminCommand::RotateKey => rotate_key(store).await?,
    }
    Ok(())
}

/// `admin org delete`: the store's transaction, then each server's install image directory. No
/// gateway runs alongside (the operator stopped it), so there are no sessions to end.
async fn delete_organization(
    store: &Store,
    config: &StoreConfig,
    slug: &str,
    confirm: &str,
) -> anyhow::Result<()> {
    let images = config.images_dir()?;
    let scope = store
        .operator_scope(slug)
        .await
        .with_context(|| format!("organization {slug:?}"))?;
    // Checked before revoking anything: the store checks again inside its transaction.
    anyhow::ensure!(
        confirm == slug,
        "--confirm {confirm:?} does not repeat --slug {slug:?}; nothing was deleted"
    );
    let permit = authorize::<DeleteOrganization>(Role::Owner)?;
    crate::upstream_oauth::UpstreamOAuth::new(store.clone(), None)
        .revoke_before_deleting_organization(&scope)
        .await?;
    let deleted = store.delete_organization(&scope, &permit, confirm).await?;
    let mut left = Vec::new();
    for server in &deleted.servers {
        let dir = images.join(server.as_str());
        if let Err(error) = sandbox::image::remove(&dir) {
            left.push(format!("{}: {error}", dir.display()));
        }
    }
    writeln!(
        std::io::stdout(),
        "deleted organization {} ({}): {} servers, {} members, {} users in no other organization",
        deleted.organization.slug,
        deleted.organization.id,
        deleted.servers.len(),
        deleted.members,
        deleted.users_deleted
    )?;
    anyhow::ensure!(
        left.is_empty(),
        "the organization is deleted, but these install images could not be removed (the \
         gateway removes them when it next starts): {}",
        left.join("; ")
    );
    Ok(())
}

/// Re-seals every record under the current root secret, with a progress bar on a terminal.
async fn rotate_key(store: &Store) -> anyhow::Result<()> {
    let total = store.count_sealed_records().await?;
    // indicatif draws on stderr only when it is a terminal, so scripts see just the summary.
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("re-sealing {bar:40} {pos}/{len} records ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = store.rotate_sealed_records(|n| bar.inc(n)).await?;
    bar.finish_and_clear();
    writeln!(
        std::io::stdout(),
        "rotate-key: {} sealed records, {} re-sealed under the current root secret; \
         MCP_HERO_ROOT_SECRET_PREVIOUS can now be removed",
        report.records,
        report.resealed
    )?;
    Ok(())
}
