//! Configuration parsing: every bad value is refused with a message naming it (S11).

use std::ffi::OsString;
use std::io::Write as _;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Environment {
    let pairs: Vec<(String, OsString)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    Environment::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

fn vault_error(pairs: &[(&str, &str)]) -> String {
    env(pairs).vault().unwrap_err().to_string()
}

#[test]
fn s11_root_secret_is_required_and_validated() {
    let missing = vault_error(&[]);
    assert!(
        missing.starts_with("MCP_HERO_ROOT_SECRET is not set"),
        "{missing}"
    );
    assert!(missing.contains("mcp-hero secret generate"), "{missing}");
    let malformed = vault_error(&[(ROOT_SECRET_VAR, "%%%not base64%%%")]);
    assert_eq!(
        malformed,
        "MCP_HERO_ROOT_SECRET is not valid base64. Generate a valid one with `mcp-hero secret generate`"
    );
    let short = vault_error(&[(ROOT_SECRET_VAR, "c2hvcnQ=")]);
    assert!(
        short.contains("MCP_HERO_ROOT_SECRET decodes to 5 bytes; at least 32 are required"),
        "{short}"
    );
    let previous = vault_error(&[
        (
            ROOT_SECRET_VAR,
            "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        ),
        (ROOT_SECRET_PREVIOUS_VAR, "c2hvcnQ="),
    ]);
    assert!(
        previous.starts_with("MCP_HERO_ROOT_SECRET_PREVIOUS decodes to 5 bytes"),
        "{previous}"
    );
    assert!(
        env(&[(
            ROOT_SECRET_VAR,
            "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
        )])
        .vault()
        .is_ok()
    );
}

fn file_error(contents: &str) -> String {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    let flags = StoreFlags {
        data_dir: Some(tempfile::tempdir().unwrap().keep()),
        config: Some(file.path().to_owned()),
    };
    match StoreConfig::resolve(&env(&[]), &flags) {
        Ok(_) => panic!("{contents:?} was accepted"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn config_file_errors_name_the_key() {
    assert!(file_error("lisen = \"1.2.3.4:5\"").contains("unknown field `lisen`"));
    assert!(file_error("[tls]\ncertificate = \"x\"").contains("unknown field `certificate`"));
    assert!(file_error("listen = 5").contains("invalid type"));
    assert!(file_error("listen = ").contains("config file"));
    let refusal = file_error("root_secret = \"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\"");
    assert!(
        refusal.contains(
            "`root_secret` may not be set in a file; set MCP_HERO_ROOT_SECRET in the environment"
        ),
        "{refusal}"
    );
    assert!(
        !refusal.contains("QUFB"),
        "the message must not echo the secret: {refusal}"
    );
}

#[test]
fn serve_settings_are_validated_with_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    let flags = StoreFlags {
        data_dir: Some(dir.path().to_owned()),
        config: None,
    };
    let store_config = StoreConfig::resolve(&env(&[]), &flags).unwrap();
    let serve = |env_pairs: &[(&str, &str)], serve_flags: ServeFlags| {
        store_config.serve_config(&env(env_pairs), &serve_flags)
    };

    let default = serve(&[], ServeFlags::default()).unwrap();
    assert_eq!(default.listen.to_string(), "127.0.0.1:8080");
    let from_env = serve(&[("MCP_HERO_LISTEN", "127.0.0.1:9")], ServeFlags::default()).unwrap();
    assert_eq!(from_env.listen.to_string(), "127.0.0.1:9");
    let flag_wins = ServeFlags {
        listen: Some("[::1]:7".to_owned()),
        ..ServeFlags::default()
    };
    assert_eq!(
        serve(&[("MCP_HERO_LISTEN", "127.0.0.1:9")], flag_wins)
            .unwrap()
            .listen
            .to_string(),
        "[::1]:7"
    );

    let bad = ServeFlags {
        listen: Some("localhost".to_owned()),
        ..ServeFlags::default()
    };
    let message = serve(&[], bad).unwrap_err().to_string();
    assert!(
        message.starts_with("invalid listen address \"localhost\" (from --listen)"),
        "{message}"
    );
    let half_tls = ServeFlags {
        tls_cert: Some("cert.pem".into()),
        ..ServeFlags::default()
    };
    assert!(
        serve(&[], half_tls)
            .unwrap_err()
            .to_string()
            .contains("--tls-key / tls.key is missing")
    );
}

#[test]
fn database_url_must_be_postgres_and_is_never_echoed() {
    let flags = StoreFlags::default();
    let result = StoreConfig::resolve(
        &env(&[(DATABASE_URL_VAR, "mysql://user:hunter2@db/x")]),
        &flags,
    );
    let message = result.err().unwrap().to_string();
    assert!(message.contains("expected a postgres:// URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn data_dir_that_is_a_file_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let flags = StoreFlags {
        data_dir: Some(file.path().to_owned()),
        config: None,
    };
    let message = StoreConfig::resolve(&env(&[]), &flags)
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("exists and is not a directory") && message.contains("(from --data-dir)"),
        "{message}"
    );
}

#[test]
fn mcp_settings_come_from_env_and_file_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(
        b"[mcp]\nallowed_hosts = [\"mcp.example.com\"]\nsession_idle_timeout_secs = 60\nmax_message_bytes = 2048\nmax_sessions_per_member = 3\n",
    )
    .unwrap();
    let flags = StoreFlags {
        data_dir: Some(dir.path().to_owned()),
        config: Some(file.path().to_owned()),
    };
    let serve = |pairs: &[(&str, &str)], listen: &str| {
        let environment = env(pairs);
        let store_config = StoreConfig::resolve(&environment, &flags).unwrap();
        let serve_flags = ServeFlags {
            listen: Some(listen.to_owned()),
            ..ServeFlags::default()
        };
        store_config.serve_config(&environment, &serve_flags)
    };

    let from_file = serve(&[], "10.0.0.5:8080").unwrap().gateway;
    assert!(
        from_file
            .allowed_hosts
            .contains(&"mcp.example.com".to_owned())
    );
    assert!(from_file.allowed_hosts.contains(&"localhost".to_owned()));
    assert!(
        from_file.allowed_hosts.contains(&"10.0.0.5".to_owned()),
        "the listen IP is allowed"
    );
    assert_eq!(from_file.idle_timeout.as_secs(), 60);
    assert_eq!(from_file.upstream.max_message_bytes, 2048);
    assert_eq!(from_file.max_sessions_per_member, 3);

    let from_env = serve(
        &[
            ("MCP_HERO_ALLOWED_HOSTS", "a.example, b.example"),
            ("MCP_HERO_SESSION_IDLE_TIMEOUT", "5"),
            ("MCP_HERO_CALL_TIMEOUT", "7"),
        ],
        "127.0.0.1:8080",
    )
    .unwrap()
    .gateway;
    assert!(from_env.allowed_hosts.contains(&"b.example".to_owned()));
    assert!(
        !from_env
            .allowed_hosts
            .contains(&"mcp.example.com".to_owned()),
        "env beats file"
    );
    assert_eq!(from_env.idle_timeout.as_secs(), 5);
    assert_eq!(from_env.call_timeout.as_secs(), 7);

    let not_a_number = serve(&[("MCP_HERO_CALL_TIMEOUT", "soon")], "127.0.0.1:8080")
        .unwrap_err()
        .to_string();
    assert!(
        not_a_number
            .starts_with("invalid mcp.call_timeout_secs \"soon\" (from MCP_HERO_CALL_TIMEOUT)"),
        "{not_a_number}"
    );
    let too_small = serve(&[("MCP_HERO_MAX_MESSAGE_BYTES", "10")], "127.0.0.1:8080")
        .unwrap_err()
        .to_string();
    assert!(
        too_small.contains("mcp.max_message_bytes") && too_small.contains("between 1024"),
        "{too_small}"
    );
}

/// `[images]`: the image directory defaults to an absolute path in the data directory; bad keys
/// and values are named.
#[test]
fn image_settings_default_into_the_data_dir_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let serve_with = |file: &str| {
        let path = dir.path().join("mcp-hero.toml");
        std::fs::write(&path, file).unwrap();
        let flags = StoreFlags {
            data_dir: Some(dir.path().join("data")),
            config: Some(path),
        };
        StoreConfig::resolve(&env(&[]), &flags)?.serve_config(&env(&[]), &ServeFlags::default())
    };
    let defaults = serve_with("").unwrap();
    let images_dir = defaults.images.dir.unwrap();
    assert!(images_dir.is_absolute());
    assert_eq!(images_dir, dir.path().join("data/images"));
    assert_eq!(defaults.images.registries.len(), 3);

    let set = serve_with("[images]\ndir = \"/srv/images\"\nbinaries_dir = \"/srv/bin\"\n").unwrap();
    assert_eq!(set.images.dir.unwrap(), PathBuf::from("/srv/images"));
    let empty = serve_with("[images]\nregistries = []\n")
        .unwrap_err()
        .to_string();
    assert!(
        empty.contains("images.registries must name at least one host"),
        "{empty}"
    );
    let relative = serve_with("[images]\nbinaries_dir = \"bin\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        relative.contains("images.binaries_dir must be an absolute path"),
        "{relative}"
    );
    let unknown = serve_with("[images]\nregistry = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown field `registry`"), "{unknown}");
}

#[test]
fn log_settings_come_from_the_file_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let serve_with = |file: &str| {
        let path = dir.path().join("mcp-hero.toml");
        std::fs::write(&path, file).unwrap();
        let flags = StoreFlags {
            data_dir: Some(dir.path().join("data")),
            config: Some(path),
        };
        StoreConfig::resolve(&env(&[]), &flags)?.serve_config(&env(&[]), &ServeFlags::default())
    };
    assert_eq!(
        serve_with("").unwrap().logs,
        crate::server_logs::LogsConfig::default()
    );
    let set = serve_with("[logs]\nretention_secs = 3600\nmax_line_bytes = 1024\n").unwrap();
    assert_eq!(
        (set.logs.retention_secs, set.logs.max_line_bytes),
        (3600, 1024)
    );
    assert_eq!(set.logs.max_bytes_per_server, 4 * 1024 * 1024);
    let short = serve_with("[logs]\nretention_secs = 5\n")
        .unwrap_err()
        .to_string();
    assert!(
        short.contains("invalid logs.retention_secs \"5\""),
        "{short}"
    );
    let inverted = serve_with("[logs]\nmax_bytes_per_session = 8388608\n")
        .unwrap_err()
        .to_string();
    assert!(inverted.contains("logs.max_bytes_per_server"), "{inverted}");
    let unknown = serve_with("[logs]\nretention = \"7d\"\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown field `retention`"), "{unknown}");
}

#[test]
fn public_url_is_an_http_base_url_and_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let flags = StoreFlags {
        data_dir: Some(dir.path().to_owned()),
        config: None,
    };
    let store_config = StoreConfig::resolve(&env(&[]), &flags).unwrap();
    let serve = |value: &str| {
        store_config.serve_config(
            &env(&[("MCP_HERO_PUBLIC_URL", value)]),
            &ServeFlags::default(),
        )
    };
    assert_eq!(
        store_config
            .serve_config(&env(&[]), &ServeFlags::default())
            .unwrap()
            .public_url,
        None
    );
    assert_eq!(
        serve("https://mcp.example.com/gw")
            .unwrap()
            .public_url
            .unwrap()
            .as_str(),
        "https://mcp.example.com/gw"
    );
    for bad in [
        "mcp.example.com",
        "ftp://mcp.example.com",
        "https://mcp.example.com/?x=1",
        "https://user:pw@mcp.example.com",
    ] {
        let message = serve(bad).unwrap_err().to_string();
        assert!(
            message.starts_with("invalid public_url") && message.contains("MCP_HERO_PUBLIC_URL"),
            "{message}"
        );
        assert!(!message.contains("pw"), "{message}");
    }
}

/// `[audit]`: events are kept 90 days unless `retention_days` says otherwise; bad values and
/// unknown keys are named.
#[test]
fn audit_retention_defaults_to_90_days_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let serve_with = |file: &str| {
        let path = dir.path().join("mcp-hero.toml");
        std::fs::write(&path, file).unwrap();
        let flags = StoreFlags {
            data_dir: Some(dir.path().join("data")),
            config: Some(path),
        };
        StoreConfig::resolve(&env(&[]), &flags)?.serve_config(&env(&[]), &ServeFlags::default())
    };
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(serve_with("").unwrap().audit.retention, day * 90);
    assert_eq!(
        serve_with("[audit]\nretention_days = 7\n")
            .unwrap()
            .audit
            .retention,
        day * 7
    );
    for bad in ["0", "3651"] {
        let error = serve_with(&format!("[audit]\nretention_days = {bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("invalid audit.retention_days") && error.contains("between 1 and 3650"),
            "{error}"
        );
    }
    let unknown = serve_with("[audit]\nretention = 7\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown field `retention`"), "{unknown}");
}
