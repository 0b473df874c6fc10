//! Unit tests of the forms a value is looked for in (S18).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::{MIN_ENCODED_LEN, forms};

fn has(value: &[u8], form: &[u8]) -> bool {
    forms(value).iter().any(|f| f.as_slice() == form)
}

/// S18: the base64 core of each alignment is exactly the characters made of the value's bits
/// only, and a value encoded on its own is generated whole, padded and unpadded.
#[test]
fn s18_base64_cores_are_the_stable_characters_of_each_alignment() {
    let value = b"abcdefgh"; // 8 bytes: alignments 0, 1, 2 give cores of 10 characters.
    let standalone = STANDARD.encode(value);
    assert!(has(value, standalone.as_bytes()), "{standalone}");
    assert!(has(value, URL_SAFE_NO_PAD.encode(value).as_bytes()));
    for prefix_len in 0..3 {
        let mut shifted = vec![b'x'; prefix_len];
        shifted.extend_from_slice(value);
        shifted.extend_from_slice(b"yyy");
        let encoded = STANDARD.encode(&shifted);
        let start = (8 * prefix_len).div_ceil(6);
        let end = 8 * (prefix_len + value.len()) / 6;
        let core = &encoded.as_bytes()[start..end];
        assert_eq!(core.len(), 10);
        assert!(has(value, core), "alignment {prefix_len}: {encoded}");
    }
}

/// S18: below the threshold no base64 form is generated; raw, URL and JSON forms still are.
#[test]
fn s18_short_values_have_no_base64_form() {
    let value = b"p@ss w\"";
    assert!(value.len() < MIN_ENCODED_LEN);
    let all = forms(value);
    assert!(all.iter().any(|f| f.as_slice() == value));
    assert!(all.iter().any(|f| f.as_slice() == b"p%40ss+w%22"));
    assert!(all.iter().any(|f| f.as_slice() == br#"p@ss w\""#));
    let base64 = STANDARD.encode(value);
    assert!(
        !all.iter().any(|f| base64
            .as_bytes()
            .windows(f.len())
            .any(|w| w == f.as_slice())
            && f.len() > 3),
        "a base64 piece of a short value was generated"
    );
    assert!(forms(b"").is_empty());
}

/// S18: the JSON forms include serde_json's own escaping and the `\u` and `\/` variants.
#[test]
fn s18_json_forms_follow_the_common_encoders() {
    let value = "a/\"b\\\n\u{1}<é😀".as_bytes();
    let serde = serde_json::to_string(std::str::from_utf8(value).unwrap()).unwrap();
    let inner = &serde.as_bytes()[1..serde.len() - 1];
    assert!(has(value, inner), "{serde}");
    assert!(has(value, r#"a/\"b\\\u000a\u0001<é😀"#.as_bytes()));
    assert!(has(value, br#"a\/\"b\\\n\u0001<\u00e9\ud83d\ude00"#));
    assert!(has(
        value,
        br#"a/\"b\\\u000A\u0001\u003C\u00E9\uD83D\uDE00"#
    ));
    assert!(has(value, r#"a/\"b\\\n\u0001\u003cé😀"#.as_bytes()));
}

/// S18: percent-encoding in upper and lower hex, with `+` or `%20` for a space.
#[test]
fn s18_url_forms_follow_the_common_encoders() {
    let value = b"a/b c+d~!";
    for form in [
        &b"a%2Fb%20c%2Bd~%21"[..],
        b"a%2fb+c%2bd~%21",
        b"a/b%20c%2Bd~%21",
        b"a%2Fb%20c%2Bd~!",
        b"a%2Fb+c%2Bd%7E%21",
        b"a%2fb%20c%2bd%7e%21",
    ] {
        assert!(has(value, form), "{}", String::from_utf8_lossy(form));
    }
}
