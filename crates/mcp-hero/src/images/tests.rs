//! Unit tests of the installer's pure parts: settings, package checks, commands, what sessions
//! are told, and the upkeep sweep. The live installs are in `tests/images.rs`.

use std::os::unix::fs::PermissionsExt as _;

use store::{ImagePhase, ImageState, ImageStatus, Package, PackageKind, Server, ServerId};

use super::*;

fn server(
    package: Option<(PackageKind, &str)>,
    image: Option<(ImageState, u8, Option<&str>)>,
) -> Server {
    Server {
        id: ServerId::from_untrusted("s1"),
        name: "time".into(),
        transport: store::ServerTransport::Stdio {
            command: "mcp-server-time".into(),
            args: Vec::new(),
            working_dir: None,
            env: Default::default(),
        },
        exposure: store::Exposure::Prefixed,
        enabled: true,
        internal: false,
        package: package.map(|(kind, spec)| Package::parse(kind, spec).unwrap()),
        image: image.map(|(state, progress, error)| ImageStatus {
            generation: 7,
            state,
            phase: ImagePhase::Downloading,
            progress,
            error: error.map(str::to_owned),
            size_bytes: None,
            installed_at: None,
            updated_at: 0,
        }),
        created_at: 0,
        updated_at: 0,
        revision: 1,
    }
}

fn command() -> mcp::launcher::StdioCommand {
    mcp::launcher::StdioCommand {
        command: "mcp-server-time".into(),
        args: Vec::new(),
        working_dir: None,
        image: None,
        env: Vec::new(),
        files: Vec::new(),
    }
}

#[test]
fn sessions_run_from_a_ready_image_and_are_told_why_otherwise() {
    let dirs = ImageDirs::new(Some("/var/lib/mcp-hero/images".into()));
    let plain = server(None, None);
    assert_eq!(
        dirs.session_transport(&plain, command()),
        UpstreamTransport::Stdio(command())
    );
    let pypi = Some((PackageKind::Pypi, "mcp-server-time==2026.10.19"));
    let cases = [
        (
            ImageState::Pending,
            0,
            None,
            "its package is still installing (0%)",
        ),
        (
            ImageState::Installing,
            42,
            None,
            "its package is still installing (42%)",
        ),
        (
            ImageState::Failed,
            30,
            Some("pip exited with status 1: No matching distribution"),
            "its install failed: pip exited with status 1: No matching distribution",
        ),
    ];
    for (state, progress, error, reason) in cases {
        assert_eq!(
            dirs.session_transport(&server(pypi, Some((state, progress, error))), command()),
            UpstreamTransport::Unavailable {
                reason: reason.into()
            }
        );
    }
    let ready = server(pypi, Some((ImageState::Ready, 100, None)));
    assert_eq!(
        dirs.session_transport(&ready, command()),
        UpstreamTransport::Stdio(mcp::launcher::StdioCommand {
            image: Some("/var/lib/mcp-hero/images/s1/7".into()),
            ..command()
        })
    );
    assert!(matches!(
        ImageDirs::new(None).session_transport(&ready, command()),
        UpstreamTransport::Unavailable { .. }
    ));
}

#[test]
fn settings_are_checked_with_the_key_named() {
    assert_eq!(ImagesConfig::default().validate(), Ok(()));
    let check = |config: ImagesConfig| config.validate().unwrap_err();
    let relative = ImagesConfig {
        dir: Some("images".into()),
        ..ImagesConfig::default()
    };
    assert!(check(relative).starts_with("images.dir must be"));
    let pattern = ImagesConfig {
        registries: vec!["registry.*.org".into()],
        ..ImagesConfig::default()
    };
    assert!(check(pattern).starts_with("images.registries"));
    let credentials = ImagesConfig {
        npm_registry: Some("https://user:hunter2@npm.example.com/".into()),
        ..ImagesConfig::default()
    };
    let message = check(credentials);
    assert!(message.starts_with("images.npm_registry"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    let timeout = ImagesConfig {
        timeout_secs: 0,
        ..ImagesConfig::default()
    };
    assert!(check(timeout).starts_with("images.timeout_secs"));
}

#[test]
fn binaries_must_lie_under_the_operators_directory() {
    let store_less = |binaries_dir: Option<&str>| ImagesConfig {
        binaries_dir: binaries_dir.map(Into::into),
        ..ImagesConfig::default()
    };
    let check = |config: ImagesConfig, spec: &str| {
        let package = Package::parse(PackageKind::Binary, spec).unwrap();
        check_binary_package(&config, &package).map_err(|error| error.to_string())
    };
    assert!(
        check(store_less(None), "/srv/bin/server")
            .unwrap_err()
            .contains("need images.binaries_dir")
    );
    assert_eq!(
        check(store_less(Some("/srv/bin")), "/srv/bin/server"),
        Ok(())
    );
    for outside in ["/srv/binaries/server", "/etc/shadow", "/srv/bin"] {
        assert!(
            check(store_less(Some("/srv/bin")), outside)
                .unwrap_err()
                .starts_with("invalid package: a binary must be a file under /srv/bin"),
            "{outside}"
        );
    }
    let npm = Package::parse(PackageKind::Npm, "left-pad@1.3.0").unwrap();
    assert!(check_binary_package(&store_less(None), &npm).is_ok());
}

#[test]
fn copying_a_binary_follows_no_link_out_of_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("binaries");
    std::fs::create_dir(&base).unwrap();
    std::fs::write(base.join("server"), b"\x7fELF").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", base.join("escape")).unwrap();
    std::fs::create_dir(base.join("subdir")).unwrap();

    let image = dir.path().join("image");
    std::fs::create_dir(&image).unwrap();
    copy_binary(Some(&base), &base.join("server"), &image).unwrap();
    let copied = image.join("bin/server");
    assert_eq!(std::fs::read(&copied).unwrap(), b"\x7fELF");
    assert_eq!(
        std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777,
        0o755
    );

    let fresh = dir.path().join("image2");
    std::fs::create_dir(&fresh).unwrap();
    let escape = copy_binary(Some(&base), &base.join("escape"), &fresh).unwrap_err();
    assert!(
        escape.contains("is not under the binaries directory"),
        "{escape}"
    );
    let not_file = copy_binary(Some(&base), &base.join("subdir"), &fresh).unwrap_err();
    assert!(not_file.contains("is not a regular file"), "{not_file}");
    let missing = copy_binary(Some(&base), &base.join("missing"), &fresh).unwrap_err();
    assert!(missing.contains("No such file"), "{missing}");
}

#[test]
fn install_commands_never_interpolate_the_spec() {
    let config = ImagesConfig::default();
    let npm = install_command(&config, Installer::Npm, "@scope/server@1.0.0");
    assert_eq!(npm[0], "/usr/bin/npm");
    assert_eq!(npm.last().unwrap(), "@scope/server@1.0.0");
    for flag in ["--ignore-scripts", "--no-audit", "--loglevel"] {
        assert!(npm.iter().any(|arg| arg == flag), "{flag}");
    }
    let pip = install_command(&config, Installer::Pip, "mcp==1.0");
    assert_eq!(&pip[..2], ["/bin/sh", "-c"]);
    assert!(
        !pip[2].contains("mcp==1.0"),
        "the script names $2, not the spec"
    );
    assert!(pip[2].contains("--only-binary=:all:"));
    assert_eq!(&pip[3..], ["sh", "/usr/bin/python3", "mcp==1.0"]);

    let env = install_env(&config, Installer::Pip);
    assert!(env.contains(&("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt".into())));
    let policy = install_policy(&config);
    assert_eq!(policy.allowlist.as_deref(), Some(&config.registries[..]));
    assert_eq!(policy.trusted_hosts, config.registries);
    assert_eq!(session_policy(&config).denied_hosts, config.registries);
    assert_eq!(session_policy(&config).allowlist, None);
}

#[test]
fn the_sweep_keeps_only_current_generations() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for path in [
        "kept/3/bin",
        "kept/2/bin",
        "orphan/1",
        "kept/3/node_modules",
    ] {
        std::fs::create_dir_all(root.join(path)).unwrap();
    }
    // A sealed old generation, read-only, goes too.
    std::fs::set_permissions(root.join("kept/2"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let keep = HashMap::from([("kept".to_owned(), "3".to_owned())]);
    assert_eq!(sweep(root, &keep), 2);
    let mut left: Vec<String> = walk(root);
    left.sort();
    assert_eq!(
        left,
        ["kept", "kept/3", "kept/3/bin", "kept/3/node_modules"]
    );
}

fn walk(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found
}
