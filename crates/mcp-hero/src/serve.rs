//! Serving: bind, optionally terminate TLS (S13), run until Ctrl-C or SIGTERM, then drain.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::config::{Environment, ServeConfig, ServeFlags, StoreConfig, StoreFlags};
use crate::credentials::StoreCredentials;
use crate::http::{AppState, router};
use crate::images::ImagesSetup;
use crate::server_logs::ServerLogs;
use crate::upstream_oauth::UpstreamOAuth;
use mcp::launcher::Launcher;
use std::sync::Arc;

/// How long in-flight requests get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `mcp-hero serve`: validates everything, opens (and migrates) the store, then serves.
pub async fn run(
    env: &Environment,
    store_flags: &StoreFlags,
    serve_flags: &ServeFlags,
) -> anyhow::Result<()> {
    let store_config = StoreConfig::resolve(env, store_flags)?;
    let serve_config = store_config.serve_config(env, serve_flags)?;
    let store = crate::admin::open_store(env, &store_config).await?;
    let (launcher, installs) =
        crate::launch::launchers(&serve_config, env.path().map(str::to_owned));
    serve(store, serve_config, launcher, installs, |_| ()).await
}

/// Serves the API until a shutdown signal; `on_listening` learns the bound address (port 0 works).
/// Stdio servers start through `launcher`; packages install in `installs`, or fail saying why
/// there is no runtime.
pub async fn serve(
    store: store::Store,
    config: ServeConfig,
    launcher: Arc<dyn Launcher>,
    installs: Result<sandbox::Sandboxes, String>,
    on_listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    if config.insecure_no_sandbox {
        tracing::warn!(
            "--insecure-no-sandbox: stdio MCP servers run as plain child processes with the gateway's \
             user, files and network; never use this with servers you do not fully trust"
        );
    }
    tracing::info!(
        launcher = launcher.kind(),
        "stdio MCP servers run through this launcher"
    );
    let server_logs = ServerLogs::start(store.clone(), config.logs.clone());
    let upstream_oauth = UpstreamOAuth::new(store.clone(), config.public_url.clone());
    // Every tools/call, resources/read and prompts/get is queued for the audit writer (S6).
    let audit = crate::audit::AuditWriter::start(store.clone(), &config.audit);
    let gateway = mcp::Gateway::with_services(
        config.gateway.clone(),
        launcher,
        mcp::GatewayServices {
            credentials: Arc::new(StoreCredentials::new(store.clone(), upstream_oauth.clone())),
            logs: Arc::new(server_logs.clone()),
            audit: audit.sink(),
        },
    )
    .context("cannot start the MCP data plane")?;
    let state = AppState::assemble(
        store.clone(),
        gateway.clone(),
        ImagesSetup {
            config: config.images.clone(),
            runtime: installs,
        },
        server_logs,
        upstream_oauth,
    );
    // Before any request can start an install: resume the installs a crash interrupted (they
    // run on in the background) and remove what no image owns.
    state.images.upkeep().await;
    let server_logs = state.server_logs.clone();
    let app = router(state, config.max_body_bytes);
    // Ending the sessions and the log tails first closes their SSE streams, so draining does not
    // wait on them.
    let stop = {
        let gateway = gateway.clone();
        async move {
            shutdown_signal().await;
            server_logs.close_tails();
            gateway.shutdown().await;
        }
    };
    let result = match &config.tls {
        None => {
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let local = listener.local_addr()?;
            announce(local, "http");
            on_listening(local);
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
                .context("HTTP server failed")
        }
        Some(tls) => {
            let rustls = RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load the TLS certificate {} and key {} (PEM expected)",
                        tls.cert.display(),
                        tls.key.display()
                    )
                })?;
            let handle: Handle<SocketAddr> = Handle::new();
            let server = axum_server::bind_rustls(config.listen, rustls)
                .handle(handle.clone())
                .serve(app.into_make_service());
            let server = tokio::spawn(server);
            let local = handle
                .listening()
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            announce(local, "https");
            on_listening(local);
            stop.await;
            handle.graceful_shutdown(Some(DRAIN_TIMEOUT));
            server
                .await
                .context("HTTPS server task failed")?
                .context("HTTPS server failed")
        }
    };
    gateway.shutdown().await;
    // Sessions are gone, so no event comes after this: write what is queued before closing.
    audit.flush().await;
    drop(audit);
    store.close().await;
    tracing::info!("stopped");
    result
}

fn announce(local: SocketAddr, scheme: &str) {
    tracing::info!(address = %local, "listening on {scheme}://{local}");
    if scheme == "http" && !local.ip().is_loopback() {
        // S13: public traffic must be encrypted; say so loudly when it is not.
        tracing::warn!(
            address = %local,
            "serving plain HTTP on a non-loopback address: tokens cross the network unencrypted. \
             Use --tls-cert/--tls-key, or put a TLS-terminating proxy in front and listen on loopback"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}
