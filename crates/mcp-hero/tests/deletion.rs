//! Deleting a server and then its organization through the API (S19, S20): the confirmation and
//! the owner-only rule, and afterwards no image directory, no server process, no session and no
//! working token of theirs, while the other organization runs on. The store suite scans every
//! table for left-over rows (`s20_deleting_an_organization_removes_every_row_it_owned`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcp::launcher::PlainProcessLauncher;
use mcp_hero::images::{ImagesConfig, ImagesSetup};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Gateway, alive, eventually};

/// The pid of the fixture server behind `tool` in the client's session.
async fn pid_behind(client: &mut support::Client, tool: &str) -> u64 {
    let answer = client.call(tool, json!({})).await;
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"));
    serde_json::from_str::<Value>(text).unwrap()["pid"]
        .as_u64()
        .unwrap()
}

/// Lays out an installed-looking image for `server` as the installer leaves one: sealed
/// directories without write bits (this gateway has no install runtime to make a real one).
fn fake_image(images: &Path, server: &str) -> PathBuf {
    let dir = images.join(server);
    let bin = dir.join("1/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("server"), b"#!/bin/sh\n").unwrap();
    for sealed in [bin.clone(), dir.join("1")] {
        std::fs::set_permissions(&sealed, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    dir
}

/// Every file and directory under `root`, relative to it.
fn tree(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn s19_s20_deleting_a_server_then_the_organization_leaves_nothing_running_or_on_disk() {
    let images_root = tempfile::tempdir().unwrap();
    let images = images_root.path().join("images");
    let gateway = Gateway::start_full(
        mcp::GatewayConfig::default(),
        Arc::new(PlainProcessLauncher::new(None)),
        ImagesSetup {
            config: ImagesConfig {
                dir: Some(images.clone()),
                ..ImagesConfig::default()
            },
            runtime: Err("these tests install no packages".to_owned()),
        },
    )
    .await;
    let alpha = gateway.add_fixture("alpha", &[], false).await;
    let beta = gateway.add_fixture("beta", &[], false).await;
    let (status, answer) = gateway
        .api(
            &gateway.alice,
            Method::POST,
            &format!("/api/v1/servers/{alpha}/variables"),
            Some(
                json!({"name": "API_KEY", "type": "password", "value": "sk-live-0123456789abcdef"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let alpha_image = fake_image(&images, &alpha);
    let beta_image = fake_image(&images, &beta);

    // The other organization's server, session and image must survive all of it.
    let (status, answer) = gateway
        .api(
            &gateway.olga,
            Method::POST,
            "/api/v1/servers",
            Some(json!({
                "name": "gamma",
                "transport": {
                    "type": "stdio",
                    "command": support::fixture_binary().display().to_string(),
                    "args": ["stdio", "--name", "gamma"],
                },
            })),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let gamma = answer["id"].as_str().unwrap().to_owned();
    let gamma_image = fake_image(&images, &gamma);
    let mut olga = gateway.client(&gateway.olga, "other");
    olga.initialize(json!({})).await;
    let gamma_pid = pid_behind(&mut olga, "gamma__whoami").await;

    let mut alice = gateway.client(&gateway.alice, "acme");
    alice.initialize(json!({})).await;
    let alpha_pid = pid_behind(&mut alice, "alpha__whoami").await;
    let beta_pid = pid_behind(&mut alice, "beta__whoami").await;
    let mut mallory = gateway.client(&gateway.mallory, "acme");
    mallory.initialize(json!({})).await;
    let mallory_beta_pid = pid_behind(&mut mallory, "beta__whoami").await;
    assert!(
        [alpha_pid, beta_pid, mallory_beta_pid, gamma_pid]
            .into_iter()
            .all(alive)
    );

    // S19: deleting a server stops its processes and removes its image directory.
    let (status, answer) = gateway
        .api(
            &gateway.alice,
            Method::DELETE,
            &format!("/api/v1/servers/{alpha}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{answer}");
    assert!(!alpha_image.exists(), "the deleted server's image is left");
    assert!(beta_image.exists());
    eventually("the deleted server's process is gone", async || {
        !alive(alpha_pid)
    })
    .await;
    assert!(alive(beta_pid));

    // Only owners may delete the organization, and only when the slug is repeated.
    let delete = |who: &support::Member, body: Option<Value>| {
        let who = who.clone();
        let gateway = &gateway;
        async move {
            gateway
                .api(&who, Method::DELETE, "/api/v1/organization", body)
                .await
        }
    };
    for body in [
        json!({"confirm": "Acme"}),
        json!({"confirm": "other"}),
        json!({"confirm": ""}),
    ] {
        let (status, answer) = delete(&gateway.alice, Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("confirm"), "{message}");
    }
    let (status, answer) = delete(
        &gateway.alice,
        Some(json!({"confirm": "acme", "force": true})),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = delete(&gateway.mallory, Some(json!({"confirm": "acme"}))).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "the member role may not delete the organization"
    );
    // None of that deleted anything.
    let (status, _) = gateway
        .api(&gateway.mallory, Method::GET, "/api/v1/organization", None)
        .await;
    assert_eq!(status, 200);
    assert!(beta_image.exists() && alive(beta_pid) && alive(mallory_beta_pid));

    // S20: the owner deletes it.
    let (status, answer) = delete(&gateway.alice, Some(json!({"confirm": "acme"}))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["slug"].clone(),
            answer["servers"].clone(),
            answer["members"].clone(),
            answer["users_deleted"].clone()
        ),
        (json!("acme"), json!(1), json!(3), json!(3))
    );
    assert!(!beta_image.exists(), "the organization's image is left");
    eventually("the organization's server processes are gone", async || {
        !alive(beta_pid) && !alive(mallory_beta_pid)
    })
    .await;
    // Its sessions are gone with their processes; its tokens answer 401 on both planes.
    eventually(
        "only the other organization's session is left",
        async || gateway.gateway.session_count() == 1,
    )
    .await;
    assert_eq!(alice.request("ping", json!({})).await.status, 401);
    for who in [&gateway.alice, &gateway.mallory, &gateway.victor] {
        let (status, answer) = gateway
            .api(who, Method::GET, "/api/v1/organization", None)
            .await;
        assert_eq!(status, 401, "{answer}");
    }
    let mut again = gateway.client(&gateway.alice, "acme");
    assert_eq!(again.request("initialize", json!({})).await.status, 401);

    // Nothing of acme is left on disk: only the other organization's image remains.
    assert_eq!(
        tree(&images),
        [
            gamma.clone(),
            format!("{gamma}/1"),
            format!("{gamma}/1/bin"),
            format!("{gamma}/1/bin/server")
        ]
    );
    assert!(gamma_image.exists());
    for name in tree(&gateway.data_dir) {
        assert!(
            name.starts_with("test.db"),
            "{name} is left in the data dir"
        );
    }

    // The other organization runs on.
    assert!(alive(gamma_pid));
    assert_eq!(pid_behind(&mut olga, "gamma__whoami").await, gamma_pid);
    let (status, answer) = gateway
        .api(&gateway.olga, Method::GET, "/api/v1/servers", None)
        .await;
    assert_eq!(
        (status, answer.as_array().unwrap().len()),
        (200, 1),
        "{answer}"
    );
}

/// S19, S20 with the real sandbox: deleting a server destroys its sandboxes, deleting the
/// organization destroys every sandbox of it, and the other organization's keeps running.
#[tokio::test]
async fn s19_s20_deletion_destroys_the_sandboxes() {
    if !support::sandbox_available() {
        return;
    }
    let sandboxes = sandbox::Sandboxes::new(
        support::sandbox_config(Vec::new()),
        Arc::new(|_: sandbox::egress::Decision| {}),
    )
    .unwrap();
    let launcher = Arc::new(mcp_hero::launch::SandboxLauncher::new(sandboxes.clone()));
    let gateway = Gateway::start_with_launcher(mcp::GatewayConfig::default(), launcher).await;
    let alpha = gateway.add_fixture("alpha", &[], false).await;
    gateway.add_fixture("beta", &[], false).await;
    let (status, answer) = gateway
        .api(
            &gateway.olga,
            Method::POST,
            "/api/v1/servers",
            Some(json!({
                "name": "gamma",
                "transport": {
                    "type": "stdio",
                    "command": support::fixture_binary().display().to_string(),
                    "args": ["stdio", "--name", "gamma"],
                },
            })),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let echo = async |client: &mut support::Client, tool: &str| {
        let answer = client.call(tool, json!({"text": "hi"})).await;
        assert_eq!(answer["result"]["content"][0]["text"], "hi", "{answer}");
    };
    let mut olga = gateway.client(&gateway.olga, "other");
    olga.initialize(json!({})).await;
    echo(&mut olga, "gamma__echo").await;
    let mut alice = gateway.client(&gateway.alice, "acme");
    alice.initialize(json!({})).await;
    echo(&mut alice, "alpha__echo").await;
    echo(&mut alice, "beta__echo").await;
    assert_eq!(sandboxes.running(), 3, "one sandbox per session and server");

    let (status, answer) = gateway
        .api(
            &gateway.alice,
            Method::DELETE,
            &format!("/api/v1/servers/{alpha}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{answer}");
    eventually("the deleted server's sandbox is gone", async || {
        sandboxes.running() == 2
    })
    .await;

    let (status, answer) = gateway
        .api(
            &gateway.alice,
            Method::DELETE,
            "/api/v1/organization",
            Some(json!({"confirm": "acme"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    eventually(
        "only the other organization's sandbox is left",
        async || sandboxes.running() == 1,
    )
    .await;
    echo(&mut olga, "gamma__echo").await;
    assert_eq!(sandboxes.running(), 1);
}
