//! Security decision: which byte strings count as "the secret" in a server's output. Every form a
//! value is looked for in is generated here, and only here.
//!
//! Assumptions, and what is deliberately left out:
//! - Forms are not composed: the URL-encoding of a value's base64, or the JSON escaping of its
//!   URL-encoding, is not generated (base64 text needs no JSON escaping except `\/`, and its core
//!   is matched wherever it contains no `+`, `/` or `=` that an outer encoding rewrote).
//! - Each encoding follows a handful of real encoders' profiles (listed on each function); a value
//!   encoded with a mix of profiles inside one string (say `%2F` and `%3a` together) is missed.
//! - Every generated form lives in a [`Zeroizing`] buffer, so the copies this module makes are
//!   wiped when the automaton has been built from them.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

/// Values shorter than this are matched raw, URL-encoded and JSON-escaped, but not in base64.
///
/// The base64 core of a value (see [`base64_forms`]) drops up to two characters at each end, so
/// a short value leaves a core of a few alphanumeric characters that would match inside unrelated
/// base64 text and tokens everywhere. From 8 bytes on, every core is at least 10 characters
/// (60 bits), which does not occur by chance in a log. The raw, URL and JSON forms are never
/// shorter than the value itself, so matching them adds no false positive the raw form does not
/// already have; they are kept for every value, because the product must never leak silently.
pub const MIN_ENCODED_LEN: usize = 8;

/// One form of one value: the exact bytes the automaton looks for.
pub(crate) type Form = Zeroizing<Vec<u8>>;

/// Every distinct form of `value`, sorted; empty for an empty value.
pub(crate) fn forms(value: &[u8]) -> Vec<Form> {
    let mut found: Vec<Form> = Vec::new();
    if value.is_empty() {
        return found;
    }
    found.push(Zeroizing::new(value.to_vec()));
    url_forms(value, &mut found);
    json_forms(value, &mut found);
    if value.len() >= MIN_ENCODED_LEN {
        base64_forms(value, &mut found);
    }
    found.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
    found.dedup_by(|a, b| a.as_slice() == b.as_slice());
    found
}

/// Base64, standard (`+/`) and URL-safe (`-_`) alphabets, padded and unpadded.
///
/// A value inside a larger encoded text starts at byte offset 0, 1 or 2 of a 3-byte group, and
/// each alignment encodes it differently. For each alignment this generates the *stable core*:
/// the characters whose 6 bits all come from the value, so they are the same whatever bytes
/// surround it. The characters at each end that mix the value's bits with a neighbour's are not
/// part of the core and stay in the output: at most 4 bits of the value's first byte before the
/// marker, and at most 4 bits of its last byte after it.
///
/// When the value ends the encoded text (the usual `base64(secret)` or `user:secret`), its last
/// character is zero-filled and may be followed by `=` padding; those endings are generated too,
/// and as the longest form starting at a position wins, the last character and the padding are
/// replaced as well. Generated: for each alignment and alphabet, the core, and when the value
/// does not end on a group boundary, the core plus the zero-filled character, and that plus
/// its padding.
fn base64_forms(value: &[u8], found: &mut Vec<Form>) {
    for alignment in 0..3 {
        let mut shifted = Zeroizing::new(Vec::with_capacity(alignment + value.len()));
        shifted.resize(alignment, 0);
        shifted.extend_from_slice(value);
        let first_bit = 8 * alignment;
        let end_bit = 8 * (alignment + value.len());
        let core_start = first_bit.div_ceil(6);
        let core_end = end_bit / 6;
        let padding = (3 - (alignment + value.len()) % 3) % 3;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = Zeroizing::new(engine.encode(shifted.as_slice()).into_bytes());
            let core = &encoded[core_start..core_end];
            found.push(Zeroizing::new(core.to_vec()));
            if padding > 0 {
                // The unpadded encoding has one more, zero-filled, character.
                let ending = &encoded[core_start..];
                found.push(Zeroizing::new(ending.to_vec()));
                let mut padded = Zeroizing::new(Vec::with_capacity(ending.len() + padding));
                padded.extend_from_slice(ending);
                padded.resize(ending.len() + padding, b'=');
                found.push(padded);
            }
        }
    }
}

/// Which bytes an encoder leaves as they are, besides ASCII letters and digits.
struct UrlProfile {
    literal: &'static [u8],
}

/// Percent-encoders in common use, by the bytes they leave unencoded.
const URL_PROFILES: [UrlProfile; 5] = [
    // RFC 3986 unreserved: Python `quote_plus` and `quote(safe="")`, Go `QueryEscape`, Rust `urlencoding`.
    UrlProfile { literal: b"-._~" },
    // Python `quote` with its default `safe="/"`.
    UrlProfile { literal: b"-._~/" },
    // JavaScript `encodeURIComponent`.
    UrlProfile {
        literal: b"-_.!~*'()",
    },
    // WHATWG `application/x-www-form-urlencoded` (URLSearchParams, Rust `form_urlencoded`).
    UrlProfile { literal: b"*-._" },
    // Everything but letters and digits (Rust `percent-encoding`'s `NON_ALPHANUMERIC`).
    UrlProfile { literal: b"" },
];

/// Percent-encoding: each profile above, with upper- (`%2F`) and lower-case (`%2f`) hex, and a
/// space as `%20` or `+` (then a literal `+` is `%2B`). Bytes outside ASCII are always encoded.
fn url_forms(value: &[u8], found: &mut Vec<Form>) {
    for profile in &URL_PROFILES {
        for hex in [HEX_UPPER, HEX_LOWER] {
            for plus_for_space in [false, true] {
                let mut encoded = Zeroizing::new(Vec::with_capacity(3 * value.len()));
                for &byte in value {
                    if byte == b' ' && plus_for_space {
                        encoded.push(b'+');
                    } else if byte.is_ascii_alphanumeric() || profile.literal.contains(&byte) {
                        encoded.push(byte);
                    } else {
                        encoded.extend_from_slice(&[
                            b'%',
                            hex[usize::from(byte >> 4)],
                            hex[usize::from(byte & 0xf)],
                        ]);
                    }
                }
                found.push(encoded);
            }
        }
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// How one JSON encoder writes a string's contents.
#[derive(Clone, Copy)]
struct JsonProfile {
    /// `\b \f \n \r \t` for those five (serde_json, JavaScript, Python), or `\u00XX` for every
    /// control character (Jackson, older Go for `\b` and `\f`).
    short_controls: bool,
    /// Hex digits of `\uXXXX`: lower case (serde_json, JavaScript, Python, Go) or upper (Jackson).
    hex: &'static [u8; 16],
    /// `/` as `\/` (PHP `json_encode`).
    escape_slash: bool,
    /// Non-ASCII characters as `\uXXXX`, with surrogate pairs (Python `ensure_ascii`, PHP).
    ascii_only: bool,
    /// `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX` (Go `encoding/json`).
    escape_html: bool,
}

/// JSON string escaping: serde_json's own (`\"`, `\\`, the five short control escapes, `\u00xx`
/// for the other control characters), and every combination of the variations in
/// [`JsonProfile`]. A value that is not UTF-8 keeps its non-ASCII bytes as they are.
fn json_forms(value: &[u8], found: &mut Vec<Form>) {
    let text = std::str::from_utf8(value).ok();
    for short_controls in [true, false] {
        for hex in [HEX_LOWER, HEX_UPPER] {
            for escape_slash in [false, true] {
                for ascii_only in [false, true] {
                    for escape_html in [false, true] {
                        let profile = JsonProfile {
                            short_controls,
                            hex,
                            escape_slash,
                            ascii_only,
                            escape_html,
                        };
                        found.push(json_escape(value, text, profile));
                    }
                }
            }
        }
    }
}

fn json_escape(value: &[u8], text: Option<&str>, profile: JsonProfile) -> Form {
    let mut escaped = Zeroizing::new(Vec::with_capacity(6 * value.len()));
    let Some(text) = text else {
        for &byte in value {
            if byte.is_ascii() {
                json_escape_ascii(byte, profile, &mut escaped);
            } else {
                escaped.push(byte);
            }
        }
        return escaped;
    };
    for character in text.chars() {
        if character.is_ascii() {
            let byte = u8::try_from(u32::from(character)).unwrap_or(b'?');
            json_escape_ascii(byte, profile, &mut escaped);
        } else if profile.ascii_only
            || (profile.escape_html && matches!(character, '\u{2028}' | '\u{2029}'))
        {
            let mut units = [0u16; 2];
            for &unit in character.encode_utf16(&mut units).iter() {
                push_unicode(unit, profile, &mut escaped);
            }
        } else {
            let mut utf8 = [0u8; 4];
            escaped.extend_from_slice(character.encode_utf8(&mut utf8).as_bytes());
        }
    }
    escaped
}

fn push_unicode(code: u16, profile: JsonProfile, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(profile.hex[usize::from((code >> shift) & 0xf)]);
    }
}

fn json_escape_ascii(byte: u8, profile: JsonProfile, out: &mut Vec<u8>) {
    let short = match byte {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'/' if profile.escape_slash => Some(b'/'),
        0x08 if profile.short_controls => Some(b'b'),
        0x0c if profile.short_controls => Some(b'f'),
        b'\n' if profile.short_controls => Some(b'n'),
        b'\r' if profile.short_controls => Some(b'r'),
        b'\t' if profile.short_controls => Some(b't'),
        _ => None,
    };
    if let Some(letter) = short {
        out.extend_from_slice(&[b'\\', letter]);
    } else if byte < 0x20 || (profile.escape_html && matches!(byte, b'<' | b'>' | b'&')) {
        push_unicode(u16::from(byte), profile, out);
    } else {
        out.push(byte);
    }
}

#[cfg(test)]
mod tests;
