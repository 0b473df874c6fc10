//! The stderr redactor's promise (S18): every occurrence of a session's secret values, raw or in
//! a common encoding, split across reads or not, becomes `[REDACTED:NAME]`, and nothing else
//! changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test helpers fail loudly.

use std::num::NonZeroUsize;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use redact::{
    Coverage, LineEnd, LineRedactor, MIN_ENCODED_LEN, Redactor, StreamRedactor, coverage,
};

fn redactor(secrets: &[(&str, &[u8])]) -> Arc<Redactor> {
    Arc::new(Redactor::new(secrets.iter().copied()).unwrap())
}

fn stream(redactor: &Arc<Redactor>, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = StreamRedactor::new(Arc::clone(redactor));
    for chunk in chunks {
        stream.feed(chunk, &mut out);
    }
    stream.finish(&mut out);
    out
}

/// The lines a `LineRedactor` hands over, joined back with the newlines it took off.
fn lines(redactor: &Arc<Redactor>, chunks: &[&[u8]], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut lines = LineRedactor::new(Arc::clone(redactor), NonZeroUsize::new(max).unwrap());
    let mut on_line = |line: &[u8], end: LineEnd| {
        assert!(line.len() <= max);
        out.extend_from_slice(line);
        if end == LineEnd::Newline {
            out.push(b'\n');
        }
    };
    for chunk in chunks {
        lines.feed(chunk, &mut on_line);
    }
    lines.finish(&mut on_line);
    out
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one helper: `input` redacts to `expected` whole, byte by byte, in chunks of several
/// sizes, and as lines.
fn check(secrets: &[(&str, &[u8])], input: &[u8], expected: &[u8]) {
    let redactor = redactor(secrets);
    let mut whole = Vec::new();
    redactor.redact(input, &mut whole);
    assert_eq!(show(&whole), show(expected), "whole");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        show(&stream(&redactor, &bytes)),
        show(expected),
        "byte by byte"
    );
    for size in [2, 3, 5, 7, 64, 4096] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        assert_eq!(
            show(&stream(&redactor, &chunks)),
            show(expected),
            "chunks of {size}"
        );
    }
    assert_eq!(
        show(&lines(&redactor, &[input], 1 << 20)),
        show(expected),
        "lines"
    );
}

/// Feeds `input` in three reads cut at every pair of positions (two reads when they coincide,
/// an empty read included), to the stream and to the line API.
fn check_every_split(redactor: &Arc<Redactor>, input: &[u8], expected: &[u8]) {
    for first in 0..=input.len() {
        for second in first..=input.len() {
            let chunks = [&input[..first], &input[first..second], &input[second..]];
            let out = stream(redactor, &chunks);
            assert!(
                out == expected,
                "cut at {first} and {second}: {} instead of {}",
                show(&out),
                show(expected)
            );
            let out = lines(redactor, &chunks, 1 << 20);
            assert!(
                out == expected,
                "lines cut at {first} and {second}: {}",
                show(&out)
            );
        }
    }
}

/// Percent-encoding as an encoder does it, for the tests: `literal` is what it leaves alone.
fn percent(value: &[u8], literal: &[u8], upper: bool, plus_for_space: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in value {
        if b == b' ' && plus_for_space {
            out.push(b'+');
        } else if b.is_ascii_alphanumeric() || literal.contains(&b) {
            out.push(b);
        } else if upper {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        }
    }
    out
}

/// A string's contents as serde_json writes them (without the quotes).
fn serde_json_inner(value: &str) -> Vec<u8> {
    let json = serde_json::to_string(value).unwrap();
    json.as_bytes()[1..json.len() - 1].to_vec()
}

/// Python's `json.dumps` with its default `ensure_ascii`: non-ASCII as `\uXXXX`.
fn ascii_only(json_inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in std::str::from_utf8(json_inner).unwrap().chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
            }
        }
    }
    out
}

fn every_standalone_form(value: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut forms = vec![
        ("raw".to_owned(), value.to_vec()),
        ("base64".to_owned(), STANDARD.encode(value).into_bytes()),
        (
            "base64 unpadded".to_owned(),
            STANDARD_NO_PAD.encode(value).into_bytes(),
        ),
        ("base64url".to_owned(), URL_SAFE.encode(value).into_bytes()),
        (
            "base64url unpadded".to_owned(),
            URL_SAFE_NO_PAD.encode(value).into_bytes(),
        ),
        ("quote_plus".to_owned(), percent(value, b"-._~", true, true)),
        (
            "quote_plus lower".to_owned(),
            percent(value, b"-._~", false, true),
        ),
        (
            "quote %20".to_owned(),
            percent(value, b"-._~/", true, false),
        ),
        (
            "encodeURIComponent".to_owned(),
            percent(value, b"-_.!~*'()", true, false),
        ),
        (
            "form-urlencoded".to_owned(),
            percent(value, b"*-._", true, true),
        ),
        (
            "all non-alphanumeric lower".to_owned(),
            percent(value, b"", false, false),
        ),
    ];
    if let Ok(text) = std::str::from_utf8(value) {
        let serde = serde_json_inner(text);
        let slash = String::from_utf8(serde.clone())
            .unwrap()
            .replace('/', "\\/");
        forms.push(("json ensure_ascii".to_owned(), ascii_only(&serde)));
        forms.push(("json \\/".to_owned(), slash.into_bytes()));
        forms.push(("json serde".to_owned(), serde));
    }
    forms
}

const VALUES: [&[u8]; 4] = [
    b"hunter2-is/not a \"good\" p@ss\\word!~*",
    "pässwörd\n\t€𝄞 <b>&</b>\u{1}".as_bytes(),
    b"sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    b"\x00\xff\xfe binary \x80\x81 value \x7f",
];

/// S18: each value, raw and in every encoding an independent encoder produces on its own, is
/// replaced whole, padding included, and the surrounding text is untouched.
#[test]
fn s18_every_form_is_redacted() {
    for (index, value) in VALUES.iter().enumerate() {
        let name = format!("SECRET_{index}");
        for (form_name, form) in every_standalone_form(value) {
            let mut input = b"before ".to_vec();
            input.extend_from_slice(&form);
            input.extend_from_slice(b" after\n");
            let expected = format!("before [REDACTED:{name}] after\n");
            let secrets: &[(&str, &[u8])] = &[(&name, value)];
            let redactor = redactor(secrets);
            let mut out = Vec::new();
            redactor.redact(&input, &mut out);
            assert_eq!(show(&out), expected, "value {index}, form {form_name}");
        }
    }
}

/// S18: a value inside a larger base64 text (`user:password`, a JSON blob) is redacted at every
/// alignment: exactly the characters made only of the value's bits are replaced, plus the last
/// character and the padding when the value ends the text.
#[test]
fn s18_base64_inside_a_larger_encoding_is_redacted_at_every_alignment() {
    let value: &[u8] = b"correct horse battery staple";
    let secrets: &[(&str, &[u8])] = &[("PW", value)];
    let redactor = redactor(secrets);
    for prefix_len in 0..7 {
        // 'y' is 0b0111_1001: its first bits are not zero, so no zero-filled ending matches.
        for suffix in [&b""[..], b"y", b"yz", b"yz!", b"y\xff\x00 tail"] {
            let mut plain = b"user:x".repeat(2)[..prefix_len].to_vec();
            plain.extend_from_slice(value);
            plain.extend_from_slice(suffix);
            for (engine, padded) in [
                (&STANDARD, true),
                (&STANDARD_NO_PAD, false),
                (&URL_SAFE, true),
                (&URL_SAFE_NO_PAD, false),
            ] {
                let encoded = engine.encode(&plain);
                let start = (8 * prefix_len).div_ceil(6);
                let end = if suffix.is_empty() {
                    encoded.len()
                } else {
                    8 * (prefix_len + value.len()) / 6
                };
                let expected = format!(
                    "Basic {}[REDACTED:PW]{}\n",
                    &encoded[..start],
                    &encoded[end..]
                );
                let input = format!("Basic {encoded}\n");
                let mut out = Vec::new();
                redactor.redact(input.as_bytes(), &mut out);
                assert_eq!(
                    show(&out),
                    expected,
                    "prefix {prefix_len}, suffix {suffix:?}, padded {padded}"
                );
                // What is left of the value: at most 4 of its bits on each side of the marker.
                assert!(6 * start - 8 * prefix_len <= 4);
                if !suffix.is_empty() {
                    assert!(8 * (prefix_len + value.len()) - 6 * end <= 4);
                }
            }
        }
    }
}

/// S18: a value split across two or three reads at every byte position, in every form, is
/// still redacted, by the stream and by the line API (exhaustive for these values).
#[test]
fn s18_every_split_of_every_form_across_two_and_three_reads_is_redacted() {
    let values: [&[u8]; 3] = [
        b"s3cr3t/value+x y",
        "kéy\"\\\n/x".as_bytes(),
        b"\xffab\x00cdef\x80",
    ];
    for value in values {
        let secrets: &[(&str, &[u8])] = &[("TOKEN", value)];
        let redactor = redactor(secrets);
        for (form_name, form) in every_standalone_form(value) {
            let mut input = b"ab ".to_vec();
            input.extend_from_slice(&form);
            input.extend_from_slice(b" cd");
            let expected = b"ab [REDACTED:TOKEN] cd";
            let mut whole = Vec::new();
            redactor.redact(&input, &mut whole);
            assert_eq!(show(&whole), show(expected), "{form_name}");
            check_every_split(&redactor, &input, expected);
        }
    }
}

/// S18: text without any secret comes out byte for byte, whatever the chunking.
#[test]
fn s18_clean_text_comes_out_unchanged() {
    let secrets: &[(&str, &[u8])] = &[
        ("API_KEY", b"sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("DB_PASSWORD", b"Tr0ub4dor&3 with spaces"),
    ];
    let mut rng = Rng(18);
    let mut text = Vec::new();
    for line in 0..300 {
        text.extend_from_slice(
            format!(
                "2026-11-25T04:45:{:02}Z INFO tool=search id={} q=\"sk_live and Tr0ub4dor\" ",
                line % 60,
                rng.next()
            )
            .as_bytes(),
        );
        let blob: Vec<u8> = (0..40).map(|_| rng.next() as u8).collect();
        text.extend_from_slice(STANDARD.encode(&blob).as_bytes());
        text.extend_from_slice(b" ");
        text.extend_from_slice(&blob);
        text.push(b'\n');
    }
    check(secrets, &text, &text);
}

/// S18: with no secret, or only empty values, the output is the input.
#[test]
fn s18_without_secrets_the_output_is_the_input() {
    let input = b"anything \x00\xff at all\nsecond line";
    check(&[], input, input);
    check(&[("EMPTY", b"")], input, input);
    let empty = redactor(&[("EMPTY", b"")]);
    assert_eq!(empty.pattern_count(), 0);
    assert_eq!(empty.max_held_back(), 0);
}

/// S18: a value containing another is redacted under the longer one's name; values that
/// overlap in the text are both hidden entirely, under one marker; equal values under two names
/// get the same one, whatever the order they were given in.
#[test]
fn s18_overlapping_values_hide_every_byte_and_the_longest_names_the_marker() {
    let secrets: &[(&str, &[u8])] = &[("SHORT", b"password"), ("LONG", b"mypassword123")];
    check(secrets, b"a mypassword123 b", b"a [REDACTED:LONG] b");
    check(secrets, b"a password b", b"a [REDACTED:SHORT] b");
    check(
        secrets,
        b"passwordmypassword123",
        b"[REDACTED:SHORT][REDACTED:LONG]",
    );

    // The end of A is the start of B: leftmost-longest alone would leave B's tail.
    let secrets: &[(&str, &[u8])] = &[("A", b"abcdef12"), ("B", b"ef12ghij")];
    check(secrets, b"x abcdef12ghij y", b"x [REDACTED:A] y");
    check(
        secrets,
        b"x ef12ghijabcdef12 y",
        b"x [REDACTED:B][REDACTED:A] y",
    );
    // Chains of overlaps stay one marker, even across reads.
    check(
        secrets,
        b"abcdef12ghijabcdef12ghij",
        b"[REDACTED:A][REDACTED:A]",
    );
    let secrets: &[(&str, &[u8])] = &[("A", b"abcabcab")];
    check(secrets, b"-abcabcabcabcab-", b"-[REDACTED:A]-");
    let redactor = redactor(secrets);
    check_every_split(&redactor, b"-abcabcabcabcab-", b"-[REDACTED:A]-");

    for secrets in [
        [
            ("ZULU", &b"same-value-123"[..]),
            ("ALPHA", b"same-value-123"),
        ],
        [
            ("ALPHA", &b"same-value-123"[..]),
            ("ZULU", b"same-value-123"),
        ],
    ] {
        check(&secrets, b"v=same-value-123", b"v=[REDACTED:ALPHA]");
        let b64 = format!("v={}", STANDARD.encode("same-value-123"));
        check(&secrets, b64.as_bytes(), b"v=[REDACTED:ALPHA]");
    }
}

/// S18: binary, non-UTF-8 input and values pass through the byte-level automaton like text.
#[test]
fn s18_binary_input_and_values_are_redacted() {
    let value: &[u8] = b"\x00\x01\xfe\xff\x80secret\xc3";
    let secrets: &[(&str, &[u8])] = &[("BLOB", value)];
    let mut input = b"\xff\xfe\x00".to_vec();
    input.extend_from_slice(value);
    input.extend_from_slice(b"\xc3\x28\n");
    input.extend_from_slice(STANDARD.encode(value).as_bytes());
    input.extend_from_slice(b"\x00");
    check(
        secrets,
        &input,
        b"\xff\xfe\x00[REDACTED:BLOB]\xc3\x28\n[REDACTED:BLOB]\x00",
    );
    let redactor = redactor(secrets);
    check_every_split(
        &redactor,
        &input,
        b"\xff\xfe\x00[REDACTED:BLOB]\xc3\x28\n[REDACTED:BLOB]\x00",
    );
}

/// S18: a line longer than the maximum is cut into pieces after redaction, so no piece holds
/// any part of the value; markers are moved whole to the next piece when they fit, UTF-8
/// characters are not cut, and line ends say why each piece ended.
#[test]
fn s18_long_lines_are_cut_after_redaction() {
    let value: &[u8] = b"0123456789abcdefghij";
    let secrets: &[(&str, &[u8])] = &[("K", value)];
    let redactor = redactor(secrets);
    let mut input = b"x".repeat(10);
    input.extend_from_slice(value);
    input.extend_from_slice(&b"y".repeat(32));
    input.extend_from_slice("é€\n".as_bytes());
    input.extend_from_slice(b"short\nlast");

    for first in 0..=input.len() {
        let mut pieces: Vec<(Vec<u8>, LineEnd)> = Vec::new();
        let mut lines = LineRedactor::new(Arc::clone(&redactor), NonZeroUsize::new(16).unwrap());
        lines.feed(&input[..first], |line, end| {
            pieces.push((line.to_vec(), end))
        });
        lines.feed(&input[first..], |line, end| {
            pieces.push((line.to_vec(), end))
        });
        lines.finish(|line, end| pieces.push((line.to_vec(), end)));
        let expected: Vec<(Vec<u8>, LineEnd)> = vec![
            (b"xxxxxxxxxx".to_vec(), LineEnd::Cut),
            (b"[REDACTED:K]yyyy".to_vec(), LineEnd::Cut),
            (b"y".repeat(16), LineEnd::Cut),
            ("yyyyyyyyyyyyé".as_bytes().to_vec(), LineEnd::Cut),
            ("€".as_bytes().to_vec(), LineEnd::Newline),
            (b"short".to_vec(), LineEnd::Newline),
            (b"last".to_vec(), LineEnd::EndOfStream),
        ];
        assert_eq!(pieces, expected, "cut at {first}");
    }

    // A marker longer than a piece is cut like text: the value stays hidden.
    let mut pieces = Vec::new();
    let mut lines = LineRedactor::new(Arc::clone(&redactor), NonZeroUsize::new(5).unwrap());
    lines.feed(b"ab0123456789abcdefghij\n", |line, _| {
        pieces.push(show(line))
    });
    lines.finish(|line, _| pieces.push(show(line)));
    assert_eq!(pieces, ["ab[RE", "DACTE", "D:K]"]);
}

/// S18: with no value holding a newline, a complete line comes out as soon as its newline is
/// read, though the stream holds back up to the longest form's length otherwise; a value that
/// holds a newline is still redacted across lines.
#[test]
fn s18_complete_lines_are_not_held_back() {
    let long_value = vec![b'q'; 200];
    let secrets: &[(&str, &[u8])] = &[("LONG", &long_value)];
    let redactor = redactor(secrets);
    assert!(redactor.max_held_back() >= 199);
    let mut out = Vec::new();
    let mut stream = StreamRedactor::new(Arc::clone(&redactor));
    stream.feed(b"first line\nsecond", &mut out);
    assert_eq!(show(&out), "first line\n");
    let mut seen = Vec::new();
    let mut lines = LineRedactor::new(Arc::clone(&redactor), NonZeroUsize::new(100).unwrap());
    lines.feed(b"ready\npartial", |line, end| seen.push((show(line), end)));
    assert_eq!(seen, [("ready".to_owned(), LineEnd::Newline)]);

    let pem: &[u8] = b"-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----";
    let secrets: &[(&str, &[u8])] = &[("PEM", pem)];
    let mut input = b"loaded key ".to_vec();
    input.extend_from_slice(pem);
    input.extend_from_slice(b"\nnext\n");
    check(secrets, &input, b"loaded key [REDACTED:PEM]\nnext\n");
}

/// S18: the stream never holds back more than the longest form minus one byte: everything
/// that can no longer start a value is emitted at once.
#[test]
fn s18_the_stream_holds_back_at_most_the_longest_form() {
    let secrets: &[(&str, &[u8])] = &[("A", b"a value of 24 bytes long"), ("B", b"short1")];
    let redactor = redactor(secrets);
    let hold = redactor.max_held_back();
    let input =
        b"no secret on this line but no newline either, and it goes on for a while ".repeat(4);
    let mut out = Vec::new();
    let mut stream = StreamRedactor::new(Arc::clone(&redactor));
    for (fed, byte) in input.chunks(1).enumerate() {
        stream.feed(byte, &mut out);
        assert!(
            out.len() + hold > fed,
            "after {} bytes, {} out",
            fed + 1,
            out.len()
        );
    }
    stream.finish(&mut out);
    assert_eq!(out, input);
}

/// S18: the short-value policy: empty values are ignored; values under `MIN_ENCODED_LEN` are
/// matched raw, URL-encoded and JSON-escaped but not in base64, and replace unrelated text that
/// equals them; `coverage` tells the API which, with the warning to show.
#[test]
fn s18_short_values_are_matched_raw_url_and_json_only() {
    assert_eq!(MIN_ENCODED_LEN, 8);
    assert_eq!(coverage(b""), Coverage::Ignored);
    assert_eq!(coverage(b"abc"), Coverage::ShortValue);
    assert_eq!(coverage(b"1234567"), Coverage::ShortValue);
    assert_eq!(coverage(b"12345678"), Coverage::AllForms);
    assert!(Coverage::ShortValue.warning().unwrap().contains("base64"));
    assert!(Coverage::Ignored.warning().is_some());
    assert_eq!(Coverage::AllForms.warning(), None);

    let secrets: &[(&str, &[u8])] = &[("PIN", b"a b/c"), ("EMPTY", b"")];
    check(secrets, b"x a b/c y", b"x [REDACTED:PIN] y");
    check(secrets, b"x a+b%2Fc y", b"x [REDACTED:PIN] y");
    check(secrets, b"x a%20b%2fc y", b"x [REDACTED:PIN] y");
    check(secrets, b"x \"a b\\/c\" y", b"x \"[REDACTED:PIN]\" y");
    let b64 = format!("x {} y", STANDARD.encode("a b/c"));
    check(secrets, b64.as_bytes(), b64.as_bytes());

    // The price of never leaking: a 3-byte value also hides the same letters in other words.
    let secrets: &[(&str, &[u8])] = &[("SHORT", b"cat")];
    check(secrets, b"concatenate", b"con[REDACTED:SHORT]enate");
}

/// S18: random values planted in random forms in random text, cut at random places: the
/// stream's output equals the whole-buffer redaction and holds no value, raw or encoded.
#[test]
fn s18_random_streams_match_whole_buffer_redaction_and_leak_nothing() {
    let mut rng = Rng(0x5318);
    for round in 0..40 {
        let values: Vec<Vec<u8>> = (0..5)
            .map(|_| {
                (0..8 + rng.below(30))
                    .map(|_| 0x20 + rng.below(95) as u8)
                    .collect()
            })
            .collect();
        let names: Vec<String> = (0..values.len()).map(|i| format!("V{i}")).collect();
        let secrets: Vec<(&str, &[u8])> = names
            .iter()
            .zip(&values)
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let redactor = redactor(&secrets);
        let mut input = Vec::new();
        for _ in 0..30 {
            let filler: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            input.extend_from_slice(&filler);
            let value = &values[rng.below(values.len())];
            let forms = every_standalone_form(value);
            input.extend_from_slice(&forms[rng.below(forms.len())].1);
        }
        let mut whole = Vec::new();
        redactor.redact(&input, &mut whole);
        let mut chunks = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rng.below(rest.len().min(50)) + 1);
            chunks.push(chunk);
            rest = tail;
        }
        assert!(stream(&redactor, &chunks) == whole, "round {round}");
        for value in &values {
            for (form_name, form) in every_standalone_form(value) {
                let hit = whole.windows(form.len()).any(|w| w == form.as_slice());
                assert!(!hit, "round {round}: {form_name} of a value survived");
            }
        }
    }
}

/// S18: names make readable markers and never carry a value; `Debug` shows no value; the
/// redactor is shared across tasks and a stream moves into one.
#[test]
fn s18_names_debug_and_sharing() {
    let err = Redactor::new([("BAD]NAME", &b"value123"[..])]).unwrap_err();
    assert!(err.to_string().contains("BAD]NAME"));
    assert!(Redactor::new([("", &b"value123"[..])]).is_err());
    assert!(Redactor::new([("LINE\nBREAK", &b"value123"[..])]).is_err());

    let redactor = redactor(&[("API_KEY", b"sk_live_4eC39HqLyjWDarjtT1zdp7dc")]);
    let mut stream = StreamRedactor::new(Arc::clone(&redactor));
    let mut out = Vec::new();
    stream.feed(b"key sk_live_4eC39Hq", &mut out);
    let debug = format!("{redactor:?} {stream:?}");
    assert!(
        !debug.contains("sk_live") && !debug.contains("4eC39"),
        "{debug}"
    );
    // Raw (which is also its URL and JSON forms) and at least 7 base64 forms.
    assert!(
        redactor.pattern_count() >= 8,
        "{}",
        redactor.pattern_count()
    );

    fn shared<T: Send + Sync + 'static>(_: &T) {}
    fn owned<T: Send + 'static>(_: &T) {}
    shared(&redactor);
    owned(&stream);
    let handle = std::thread::spawn(move || {
        let mut out = Vec::new();
        stream.feed(b"LyjWDarjtT1zdp7dc done", &mut out);
        stream.finish(&mut out);
        out
    });
    let rest = handle.join().unwrap();
    out.extend_from_slice(&rest);
    assert_eq!(show(&out), "key [REDACTED:API_KEY] done");
}

/// splitmix64: reproducible random data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
