//! `mcp-hero`: parses the command line, sets up logging, and runs one command.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use mcp_hero::cli::{Cli, Command, SecretCommand};
use mcp_hero::config::Environment;
use secrecy::ExposeSecret;

fn main() -> ExitCode {
    // The sandbox runtime re-executes this binary: as the single-threaded exec helper outside a
    // sandbox, and as the init inside one. Neither parses the CLI, reads the environment or
    // starts a runtime.
    let mut args = std::env::args_os();
    match args.nth(1).as_deref().and_then(|a| a.to_str()) {
        Some(sandbox::helper::ARG) => return sandbox::helper::main(),
        Some(sandbox::init::ARG) => return sandbox::init::main(args),
        _ => {}
    }
    let cli = Cli::parse();
    let result = Environment::capture()
        .map_err(anyhow::Error::from)
        .and_then(|env| {
            init_logging(&env)?;
            // After logging is set up, so a panic reaches the gateway log (without its payload).
            mcp_hero::panics::install_panic_hook();
            run(cli, env)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Errors are built to carry no secret (see config::ConfigError and store::StoreError).
            let _ = writeln!(std::io::stderr(), "error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "`secret generate` prints the new root secret to stdout, which is its whole job"
)]
fn run(cli: Cli, env: Environment) -> anyhow::Result<()> {
    if let Command::Secret {
        command: SecretCommand::Generate,
    } = cli.command
    {
        // Needs neither the store nor a runtime.
        let secret = vault::RootSecret::generate_base64();
        writeln!(std::io::stdout(), "{}", secret.expose_secret())?;
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { store, serve } => mcp_hero::serve::run(&env, &store, &serve).await,
            Command::Migrate { store } => mcp_hero::admin::migrate(&env, &store).await,
            Command::Admin { store, command } => mcp_hero::admin::run(&env, &store, command).await,
            Command::Quickstart {
                data_dir,
                listen,
                email,
            } => mcp_hero::quickstart::run(&env, data_dir, listen, &email).await,
            Command::Servers { api, command } => mcp_hero::client::servers(&api, command).await,
            Command::Secret { .. } => Ok(()),
        }
    })
}

fn init_logging(env: &Environment) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let directive = env.log_filter().unwrap_or("info");
    let filter = EnvFilter::try_new(directive)
        .map_err(|e| anyhow::anyhow!("invalid MCP_HERO_LOG {directive:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match env.log_format().unwrap_or("text") {
        "text" => builder.init(),
        "json" => builder.json().init(),
        other => anyhow::bail!("invalid MCP_HERO_LOG_FORMAT {other:?}: expected text or json"),
    }
    Ok(())
}
