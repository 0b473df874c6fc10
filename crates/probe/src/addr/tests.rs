//! Address spellings: every loopback form an attacker might try parses to the same address.

use std::net::{Ipv4Addr, SocketAddr};

use super::{parse_ipv4_loose, parse_target, proxy_authority, split_authority};

fn check_v4(input: &str, expected: Option<Ipv4Addr>) {
    assert_eq!(parse_ipv4_loose(input), expected, "input {input:?}");
}

#[test]
fn loopback_spellings_all_mean_127_0_0_1() {
    let loopback = Some(Ipv4Addr::new(127, 0, 0, 1));
    for spelling in [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "0x7f.1",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "0177.1",
        "0x7F.0.0.0x1",
    ] {
        check_v4(spelling, loopback);
    }
}

#[test]
fn other_ipv4_forms() {
    check_v4("0.0.0.0", Some(Ipv4Addr::UNSPECIFIED));
    check_v4("0", Some(Ipv4Addr::UNSPECIFIED));
    check_v4("169.254.169.254", Some(Ipv4Addr::new(169, 254, 169, 254)));
    check_v4("10.1", Some(Ipv4Addr::new(10, 0, 0, 1)));
    check_v4("192.168.0x1.010", Some(Ipv4Addr::new(192, 168, 1, 8)));
}

#[test]
fn malformed_ipv4_is_refused() {
    for bad in [
        "",
        "256.0.0.1",
        "1.2.3.4.5",
        "127..1",
        "08",
        "1.2.3.256",
        "abc",
        "::1",
        "127.1.65536",
    ] {
        check_v4(bad, None);
    }
}

#[test]
fn targets_with_ipv6_forms() {
    let check = |host: &str, expected: &str| {
        let parsed = parse_target(host, "8080").unwrap();
        assert_eq!(
            parsed,
            expected.parse::<SocketAddr>().unwrap(),
            "host {host:?}"
        );
    };
    check("::1", "[::1]:8080");
    check("[::1]", "[::1]:8080");
    check("::ffff:127.0.0.1", "[::ffff:127.0.0.1]:8080");
    check("fc00::1", "[fc00::1]:8080");
    check("fe80::1%1", "[fe80::1%1]:8080");
    check("0x7f.1", "127.0.0.1:8080");
    assert!(parse_target("::1", "99999").is_err());
    assert!(parse_target("not-an-address", "80").is_err());
}

#[test]
fn authorities_and_proxy_urls() {
    assert_eq!(
        split_authority("example.com:443"),
        Some(("example.com", "443"))
    );
    assert_eq!(split_authority("[::1]:80"), Some(("::1", "80")));
    assert_eq!(split_authority("nope"), None);
    assert_eq!(
        proxy_authority("http://127.0.0.1:3128"),
        Some("127.0.0.1:3128")
    );
    assert_eq!(
        proxy_authority("http://127.0.0.1:3128/"),
        Some("127.0.0.1:3128")
    );
    assert_eq!(
        proxy_authority("socks5h://user:pw@127.0.0.1:1080"),
        Some("127.0.0.1:1080")
    );
    assert_eq!(proxy_authority("127.0.0.1:3128"), Some("127.0.0.1:3128"));
    assert_eq!(proxy_authority("http://"), None);
}
