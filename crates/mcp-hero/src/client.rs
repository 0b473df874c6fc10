//! Commands that talk to a running gateway over its API, as a member with a personal access
//! token: `mcp-hero servers install-status` and `mcp-hero servers reinstall`, which follow a
//! server's package install with an `indicatif` progress bar.
//!
//! The token is read from a file, never taken from the command line, and is sent only to the
//! URL given.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::cli::{ApiFlags, ServersCommand};

/// How often the install's state is read.
const POLL: Duration = Duration::from_millis(500);

/// A server as the API lists it (only what these commands need).
#[derive(Debug, Deserialize)]
struct ServerSummary {
    id: String,
    name: String,
}

/// The package of an image.
#[derive(Debug, Deserialize)]
struct PackageSummary {
    spec: String,
}

/// An image as `GET /api/v1/servers/{id}/image` answers.
#[derive(Debug, Deserialize)]
struct ImageSummary {
    package: PackageSummary,
    state: String,
    phase: String,
    progress: u64,
    error: Option<String>,
    size_bytes: Option<i64>,
}

/// The API's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    message: String,
}

/// An API client for one gateway and token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(flags: &ApiFlags) -> anyhow::Result<Self> {
        let token = std::fs::read_to_string(&flags.token_file)
            .with_context(|| format!("cannot read the token file {}", flags.token_file.display()))?
            .trim()
            .to_owned();
        if !token.starts_with("mcph_pat_") {
            bail!(
                "{} does not hold an MCP Hero personal access token (mcph_pat_...)",
                flags.token_file.display()
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Api {
            http,
            base: flags.url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<ErrorBody>(&text)
                .map(|body| body.error.message)
                .unwrap_or(text);
            bail!("{method} {url}: {status}: {message}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {url}: unexpected answer"))
    }

    /// The id of the server named or numbered `server`.
    async fn server_id(&self, server: &str) -> anyhow::Result<ServerSummary> {
        let servers: Vec<ServerSummary> =
            self.send(reqwest::Method::GET, "/api/v1/servers").await?;
        servers
            .into_iter()
            .find(|s| s.name == server || s.id == server)
            .with_context(|| format!("the organization has no server named {server:?}"))
    }
}

/// `mcp-hero servers ...`.
pub async fn servers(flags: &ApiFlags, command: ServersCommand) -> anyhow::Result<()> {
    let api = Api::new(flags)?;
    match command {
        ServersCommand::InstallStatus {
            server,
            no_wait,
            timeout_secs,
        } => {
            let server = api.server_id(&server).await?;
            if no_wait {
                let image = image(&api, &server).await?;
                writeln!(std::io::stdout(), "{}", describe(&server, &image))?;
                return Ok(());
            }
            follow(&api, &server, Duration::from_secs(timeout_secs)).await
        }
        ServersCommand::Reinstall {
            server,
            timeout_secs,
        } => {
            let server = api.server_id(&server).await?;
            let _: ImageSummary = api
                .send(
                    reqwest::Method::POST,
                    &format!("/api/v1/servers/{}/image/reinstall", server.id),
                )
                .await?;
            follow(&api, &server, Duration::from_secs(timeout_secs)).await
        }
    }
}

async fn image(api: &Api, server: &ServerSummary) -> anyhow::Result<ImageSummary> {
    api.send(
        reqwest::Method::GET,
        &format!("/api/v1/servers/{}/image", server.id),
    )
    .await
    .with_context(|| format!("server {} (does it have a package?)", server.name))
}

/// One line saying where an install stands.
fn describe(server: &ServerSummary, image: &ImageSummary) -> String {
    match image.state.as_str() {
        "ready" => format!(
            "{}: {} installed ({} bytes)",
            server.name,
            image.package.spec,
            image.size_bytes.unwrap_or(0)
        ),
        "failed" => format!(
            "{}: the install of {} failed while {}: {}",
            server.name,
            image.package.spec,
            image.phase,
            image.error.as_deref().unwrap_or("no reason was recorded")
        ),
        state => format!(
            "{}: {} is {state} ({}, {}%)",
            server.name, image.package.spec, image.phase, image.progress
        ),
    }
}

/// Draws the install's progress until it ends; an error when it failed or took too long.
async fn follow(api: &Api, server: &ServerSummary, timeout: Duration) -> anyhow::Result<()> {
    // indicatif draws on stderr only when it is a terminal, so scripts see just the last line.
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:40}] {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(server.name.clone());
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    loop {
        let image = match image(api, server).await {
            Ok(image) => image,
            Err(error) => {
                bar.abandon();
                return Err(error);
            }
        };
        bar.set_position(image.progress);
        bar.set_message(format!("{} {}", image.package.spec, image.phase));
        match image.state.as_str() {
            "ready" => {
                bar.finish_and_clear();
                writeln!(std::io::stdout(), "{}", describe(server, &image))?;
                return Ok(());
            }
            "failed" => {
                bar.abandon();
                bail!("{}", describe(server, &image));
            }
            _ if started.elapsed() > timeout => {
                bar.abandon();
                bail!(
                    "{} (gave up waiting after {} seconds)",
                    describe(server, &image),
                    timeout.as_secs()
                );
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}
