//! CSV fields: quoting (RFC 4180) and formula neutralization of client-chosen names.

use super::csv_field;

fn check(input: &str, expected: &str) {
    assert_eq!(csv_field(input), expected, "{input:?}");
}

#[test]
fn csv_fields_are_quoted_and_never_formulas() {
    check("alpha__echo", "alpha__echo");
    check("a,b", "\"a,b\"");
    check("say \"hi\"", "\"say \"\"hi\"\"\"");
    check("line\nbreak", "\"line\nbreak\"");
    check("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\"");
    check("+1", "'+1");
    check("-1", "'-1");
    check("@SUM(A1)", "'@SUM(A1)");
    check("", "");
}
