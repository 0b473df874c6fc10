//! Unit tests of the parsing and URL rules discovery relies on.

use reqwest::Url;

use super::discovery::{bearer_params, well_known};
use super::http::{check_url, without_query};
use super::{printable, state_digest};

fn check_challenge(header: &str, expected: &[(&str, &str)]) {
    let got = bearer_params(header);
    let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, expected, "parsing {header:?}");
}

#[test]
fn bearer_challenges_yield_their_parameters_only() {
    check_challenge(
        r#"Bearer resource_metadata="https://r.example/.well-known/oauth-protected-resource/mcp", scope="a b""#,
        &[
            (
                "resource_metadata",
                "https://r.example/.well-known/oauth-protected-resource/mcp",
            ),
            ("scope", "a b"),
        ],
    );
    check_challenge(
        r#"Basic realm="x", Bearer error=invalid_token, error_description="say \"hi\"""#,
        &[
            ("error", "invalid_token"),
            ("error_description", "say \"hi\""),
        ],
    );
    check_challenge(r#"Basic realm="x""#, &[]);
    check_challenge("Bearer", &[]);
    check_challenge(
        r#"Bearer scope="unterminated"#,
        &[("scope", "unterminated")],
    );
}

#[test]
fn well_known_locations_insert_the_path_first() {
    let urls = |base: &str| -> Vec<String> {
        well_known(&Url::parse(base).unwrap(), "oauth-protected-resource")
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect()
    };
    assert_eq!(
        urls("https://r.example/api/mcp?x=1"),
        [
            "https://r.example/.well-known/oauth-protected-resource/api/mcp",
            "https://r.example/.well-known/oauth-protected-resource"
        ]
    );
    assert_eq!(
        urls("https://r.example/"),
        ["https://r.example/.well-known/oauth-protected-resource"]
    );
}

/// S16: URLs in messages lose their query, fragment and credentials.
#[test]
fn urls_in_messages_lose_queries_and_credentials() {
    let url = Url::parse("https://u:p@as.example/cb?code=secret#frag").unwrap();
    assert_eq!(without_query(&url), "https://as.example/cb");
}

#[test]
fn only_https_and_public_addresses_unless_internal() {
    let check = |url: &str, internal: bool| check_url(&Url::parse(url).unwrap(), internal).is_ok();
    assert!(check("https://as.example/token", false));
    assert!(!check("http://as.example/token", false));
    assert!(check("http://127.0.0.1:9/token", true));
    assert!(!check("https://127.0.0.1/token", false));
    assert!(!check("https://[::1]/token", false));
    assert!(!check("https://10.0.0.1/token", false));
    assert!(!check("https://user:pw@as.example/token", false));
    assert!(!check("ftp://as.example/token", true));
}

#[test]
fn states_are_stored_as_their_sha256() {
    assert_eq!(
        state_digest("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(printable("a\u{7}b\nc", 2), "ab");
}
