//! `${NAME}` references from a server's arguments, environment and headers to its variables.
//!
//! The syntax is deliberately small: `${NAME}` (a variable name: `A-Z`, `0-9`, `_`, not starting
//! with a digit) is replaced by the variable's value when a session starts; `$${` stands for a
//! literal `${`; any other `$` is itself. A `${` that does not close on a valid name is an error
//! naming the offset, so a typo is refused when the server is saved rather than passed through.

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text used as written.
    Text(String),
    /// A reference to the server's variable of this name.
    Variable(String),
}

/// A parsed value with its references; `Debug` shows names, never a variable's value, because
/// a template holds none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<TemplatePart>,
}

impl Template {
    /// Parses `text`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("$${") {
                literal.push_str("${");
                offset += at + 3;
                rest = after;
            } else if let Some(after) = tail.strip_prefix("${") {
                let Some(end) = after.find('}') else {
                    return Err(format!(
                        "`${{` at byte {} is not closed by `}}` (write `$${{` for a literal `${{`)",
                        offset + at
                    ));
                };
                let name = &after[..end];
                if !is_variable_name(name) {
                    return Err(format!(
                        "`${{{name}}}` at byte {} is not a variable reference: names use A-Z, 0-9 \
                         and _, not starting with a digit (write `$${{` for a literal `${{`)",
                        offset + at
                    ));
                }
                if !literal.is_empty() {
                    parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
                }
                parts.push(TemplatePart::Variable(name.to_owned()));
                offset += at + 2 + end + 1;
                rest = &after[end + 1..];
            } else {
                literal.push('$');
                offset += at + 1;
                rest = &tail[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(TemplatePart::Text(literal));
        }
        Ok(Template { parts })
    }

    /// Its pieces, in order.
    pub fn parts(&self) -> &[TemplatePart] {
        &self.parts
    }

    /// The names it references, in order, with repeats.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            TemplatePart::Variable(name) => Some(name.as_str()),
            TemplatePart::Text(_) => None,
        })
    }
}

/// Whether `name` is a valid variable name (`^[A-Z_][A-Z0-9_]{0,63}$`).
pub fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> TemplatePart {
        TemplatePart::Text(s.into())
    }

    fn var(s: &str) -> TemplatePart {
        TemplatePart::Variable(s.into())
    }

    #[test]
    fn references_literals_and_escapes_parse() {
        let parsed = Template::parse("Bearer ${API_KEY}").unwrap();
        assert_eq!(parsed.parts(), [text("Bearer "), var("API_KEY")]);
        let parsed = Template::parse("${A}${B}-$5 $${C} $").unwrap();
        assert_eq!(parsed.parts(), [var("A"), var("B"), text("-$5 ${C} $")]);
        assert_eq!(parsed.references().collect::<Vec<_>>(), ["A", "B"]);
        assert!(Template::parse("").unwrap().parts().is_empty());
    }

    #[test]
    fn malformed_references_are_refused_with_their_offset() {
        let error = Template::parse("x ${API_KEY").unwrap_err();
        assert!(
            error.contains("byte 2") && error.contains("not closed"),
            "{error}"
        );
        let error = Template::parse("${api_key}").unwrap_err();
        assert!(error.contains("`${api_key}`"), "{error}");
        assert!(Template::parse("${}").is_err());
        assert!(Template::parse("${1A}").is_err());
    }
}
