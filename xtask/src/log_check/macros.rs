//! Security sinks of the log check (S16, S17): which macros write where a person can read, and how their arguments split.
//!
//! Macro arguments are tokens, not syntax, so each macro's arguments are split at top-level `,`
//! and `;` and every piece is read the way `tracing`, `log` and `std::fmt` read it: `target:` and
//! `parent:` prefixes, `key = value` fields (dotted or quoted keys), `%value` and `?value`
//! shorthands, bare values, and string literals, whose `{name}` captures name variables too.

use proc_macro2::{Spacing, TokenStream, TokenTree};

/// What a macro does with the values it receives.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    /// Writes a log record or a span (`tracing`, `log`).
    Log,
    /// Writes to the process's stdout or stderr.
    Print,
    /// Builds a panic message; its first `skip` arguments are compared values, not message.
    Panic { skip: usize },
    /// Builds a string, a leak only when that string goes into one of the sinks above.
    Format,
}

const LOG_MACROS: &[&str] = &[
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "event",
    "log",
    "span",
    "trace_span",
    "debug_span",
    "info_span",
    "warn_span",
    "error_span",
];

const PRINT_MACROS: &[&str] = &["println", "eprintln", "print", "eprint"];

/// Which sink a macro is, by the last segment of its path, so `tracing::info!`, `log::info!` and
/// an imported `info!` are all seen.
pub(crate) fn sink_of(path: &syn::Path) -> Option<Sink> {
    let name = path.segments.last()?.ident.to_string();
    let name = name.as_str();
    if LOG_MACROS.contains(&name) {
        return Some(Sink::Log);
    }
    if PRINT_MACROS.contains(&name) {
        return Some(Sink::Print);
    }
    match name {
        "panic" | "unreachable" | "todo" | "unimplemented" => Some(Sink::Panic { skip: 0 }),
        "assert" | "debug_assert" => Some(Sink::Panic { skip: 1 }),
        // The compared values of a failed `assert_eq!` are printed too, but tests compare secrets
        // on purpose; only the message is checked.
        "assert_eq" | "assert_ne" | "debug_assert_eq" | "debug_assert_ne" => {
            Some(Sink::Panic { skip: 2 })
        }
        "format" | "format_args" => Some(Sink::Format),
        _ => None,
    }
}

/// One argument of a sink macro, as the macro reads it.
pub(crate) enum Piece {
    /// `target: "x"`, an empty piece: carries no value of the program.
    Nothing,
    /// A string literal standing alone: a format string or a span name; its `{name}` captures
    /// are values.
    FormatString(syn::LitStr),
    /// A value: a field's value, a `%`/`?` shorthand, a format argument. `name` is the key of
    /// `name = value`, which a format string can refer to as `{name}`.
    Value {
        tokens: TokenStream,
        name: Option<String>,
    },
}

/// The top-level pieces of a macro's arguments.
pub(crate) fn pieces(tokens: TokenStream) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut current: Vec<TokenTree> = Vec::new();
    for token in tokens {
        match &token {
            TokenTree::Punct(punct) if punct.as_char() == ',' || punct.as_char() == ';' => {
                pieces.push(read_piece(std::mem::take(&mut current)));
            }
            _ => current.push(token),
        }
    }
    pieces.push(read_piece(current));
    pieces
}

fn read_piece(tokens: Vec<TokenTree>) -> Piece {
    if tokens.is_empty() {
        return Piece::Nothing;
    }
    if is_directive_prefix(&tokens) {
        return Piece::Value {
            tokens: tokens[2..].iter().cloned().collect(),
            name: None,
        };
    }
    if let Some(equals) = field_equals(&tokens) {
        let name = match &tokens[..equals] {
            [TokenTree::Ident(ident)] => Some(ident.to_string()),
            _ => None,
        };
        return Piece::Value {
            tokens: strip_sigil(&tokens[equals + 1..]),
            name,
        };
    }
    if let [TokenTree::Literal(literal)] = tokens.as_slice()
        && let Ok(syn::Lit::Str(text)) =
            syn::parse2::<syn::Lit>(TokenTree::Literal(literal.clone()).into())
    {
        return Piece::FormatString(text);
    }
    Piece::Value {
        tokens: strip_sigil(&tokens),
        name: None,
    }
}

/// `target: ...`, `parent: ...`, `name: ...` (a single `:`, not a `::` path).
fn is_directive_prefix(tokens: &[TokenTree]) -> bool {
    match tokens {
        [TokenTree::Ident(ident), TokenTree::Punct(colon), rest @ ..] => {
            ["target", "parent", "name"].contains(&ident.to_string().as_str())
                && colon.as_char() == ':'
                && colon.spacing() == Spacing::Alone
                && !matches!(rest.first(), Some(TokenTree::Punct(next)) if next.as_char() == ':')
        }
        _ => false,
    }
}

/// The index of the `=` of a `key = value` field, when the tokens before it form a key: an
/// identifier path with dots (`http.status`), or one literal (`"http.status"`).
fn field_equals(tokens: &[TokenTree]) -> Option<usize> {
    let equals = tokens.iter().enumerate().position(|(index, token)| {
        let TokenTree::Punct(punct) = token else {
            return false;
        };
        let after_joint = index > 0
            && matches!(&tokens[index - 1], TokenTree::Punct(before) if before.spacing() == Spacing::Joint);
        punct.as_char() == '=' && punct.spacing() == Spacing::Alone && !after_joint
    })?;
    let key = &tokens[..equals];
    let dotted_path = !key.is_empty()
        && key.iter().enumerate().all(|(index, token)| match token {
            TokenTree::Ident(_) => index % 2 == 0,
            TokenTree::Punct(punct) => index % 2 == 1 && punct.as_char() == '.',
            _ => false,
        });
    let literal = matches!(key, [TokenTree::Literal(_)]);
    (dotted_path || literal).then_some(equals)
}

/// Drops the `%` (Display) or `?` (Debug) of a `tracing` shorthand: the value is the same.
fn strip_sigil(tokens: &[TokenTree]) -> TokenStream {
    match tokens {
        [TokenTree::Punct(sigil), rest @ ..]
            if sigil.as_char() == '%' || sigil.as_char() == '?' =>
        {
            rest.iter().cloned().collect()
        }
        _ => tokens.iter().cloned().collect(),
    }
}

/// The names a format string captures from the enclosing scope (`{password}`, `{token:?}`);
/// positional (`{}`, `{0}`) and escaped (`{{`) braces capture nothing.
pub(crate) fn implicit_captures(format: &str) -> Vec<String> {
    let mut captures = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(character) = chars.next() {
        if character != '{' {
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            continue;
        }
        let mut argument = String::new();
        for inner in chars.by_ref() {
            if inner == '}' || inner == ':' {
                break;
            }
            argument.push(inner);
        }
        let argument = argument.trim();
        let is_identifier = argument
            .chars()
            .next()
            .is_some_and(|first| first.is_alphabetic() || first == '_')
            && argument.chars().all(|c| c.is_alphanumeric() || c == '_');
        if is_identifier {
            captures.push(argument.to_owned());
        }
    }
    captures
}
