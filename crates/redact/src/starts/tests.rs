//! The start filter may pass positions where no form starts, but never skips one that does
//! (S18: a skipped position would be a leaked value).

use super::StartFilter;

fn positions(filter: &StartFilter, buf: &[u8], end: usize) -> Vec<usize> {
    let mut found = Vec::new();
    filter.candidates(buf, end, |position| found.push(position));
    found
}

/// S18: every start of every form is a candidate, for forms of 1 to 4 and more bytes, up to the
/// given end and never past the last position with `width` bytes after it.
#[test]
fn s18_no_start_of_a_form_is_skipped() {
    let cases: [&[&[u8]]; 4] = [
        &[b"secret-value", b"c2VjcmV0", b"\xff\x00binary"],
        &[b"abc", b"other-longer-form"],
        &[b"xy", b"zw"],
        &[b"\x00", b"q"],
    ];
    for forms in cases {
        let filter = StartFilter::new(forms.iter().copied());
        let mut text = b"noise \x00\xff ".to_vec();
        let mut starts = Vec::new();
        for (round, form) in forms.iter().cycle().take(12).enumerate() {
            starts.push(text.len());
            text.extend_from_slice(form);
            text.extend_from_slice(&b"-filler-"[..round % 8]);
        }
        let found = positions(&filter, &text, text.len());
        for start in &starts {
            assert!(found.contains(start), "{start} skipped for {forms:?}");
        }
        assert!(found.iter().all(|&p| p + filter.width <= text.len()));
        let half = text.len() / 2;
        assert!(positions(&filter, &text, half).iter().all(|&p| p < half));
    }
    let filter = StartFilter::new([&b"abcd"[..]].into_iter());
    assert!(positions(&filter, b"abc", 3).is_empty());
    assert_eq!(positions(&filter, b"abcd", 4), [0]);
}
