//! The regular expressions of the CRDs' `pattern` keywords.
//!
//! Kubernetes checks `pattern` with Go's `regexp` (RE2 syntax), so the
//! `regex` crate, which follows RE2's syntax, is the matcher here. Its
//! Unicode tables are left out (no `unicode-*` features), which changes two
//! things, both handled before compiling:
//!
//! - `\d \w \s` (and `\D \W \S`) are rewritten to the ASCII classes they
//!   mean in Go; the `regex` crate would otherwise want Unicode tables for
//!   them.
//! - Anything else that needs the tables (`\b`, `\p{..}`, `(?i)`) is refused
//!   by the `regex` crate at compile time, as is syntax it does not have
//!   (look-around, back-references).
//!
//! Class set operations (`&&`, `--`, `~~` inside `[...]`) are `regex`-only:
//! Go reads them as literal characters, so a pattern using them is refused
//! rather than silently read another way.
//!
//! A refused pattern fails the CRD's load, so a new pattern cannot be
//! silently mis-checked. As in OpenAPI (and `Regex::is_match`), a pattern
//! matches anywhere in the value unless anchored.

use regex::Regex;

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    source: String,
    regex: Regex,
}

/// Why a pattern was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PatternError {
    #[error("pattern {pattern:?}: {what}, which Go's regexp reads differently")]
    Divergent { pattern: String, what: &'static str },
    #[error("pattern {pattern:?}: {source}")]
    Syntax {
        pattern: String,
        source: Box<regex::Error>,
    },
}

impl Pattern {
    pub(crate) fn new(source: &str) -> Result<Pattern, PatternError> {
        let translated = go_to_regex(source).map_err(|what| PatternError::Divergent {
            pattern: source.to_owned(),
            what,
        })?;
        let regex = Regex::new(&translated).map_err(|e| PatternError::Syntax {
            pattern: source.to_owned(),
            source: Box::new(e),
        })?;
        Ok(Pattern {
            source: source.to_owned(),
            regex,
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

/// Rewrite Go's ASCII Perl classes into bracket classes the `regex` crate
/// compiles without Unicode tables, and refuse class set operators.
///
/// `regex` allows a class inside a class (`[a[0-9]]` is a union), so the
/// same bracket form serves inside and outside brackets.
fn go_to_regex(source: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(source.len() + 16);
    let mut chars = source.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            // What `regex` compiles only with Unicode tables, refused here so
            // that no other crate of the build enabling those features can
            // change which patterns load.
            '\\' if matches!(chars.peek(), Some('p' | 'P' | 'b' | 'B')) => {
                return Err("a Unicode class or word boundary (\\p, \\P, \\b, \\B)");
            }
            '(' if !in_class && chars.peek() == Some(&'?') => {
                chars.next();
                if chars.peek() != Some(&':') {
                    return Err("a flag group or look-around ((?...)");
                }
                out.push_str("(?");
            }
            '\\' => match chars.next() {
                Some(e) => match perl_class(e) {
                    Some(class) => out.push_str(class),
                    None => {
                        out.push('\\');
                        out.push(e);
                    }
                },
                // Left for `regex` to refuse.
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                // A ']' first in a class is a literal in both syntaxes.
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push(']');
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '-' | '~' if in_class && chars.peek() == Some(&c) => {
                return Err("a class set operator (&&, --, ~~)");
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Go's Perl classes, which are ASCII (`\s` is `[\t\n\f\r ]`, no `\v`).
fn perl_class(escape: char) -> Option<&'static str> {
    Some(match escape {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        's' => r"[\t\n\x0C\r ]",
        'S' => r"[^\t\n\x0C\r ]",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REASON: &str = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";
    const TYPE: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

    fn pattern(source: &str) -> Pattern {
        Pattern::new(source).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn condition_reason_pattern() {
        let p = pattern(REASON);
        for ok in ["Ready", "Pending", "A", "Error_1", "x:y,z_"] {
            assert!(p.is_match(ok), "{ok}");
        }
        for bad in [
            "",
            "1Ready",
            "Ready ",
            "not ready",
            "Ready:",
            "Ready,",
            "-x",
        ] {
            assert!(!p.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn condition_type_pattern() {
        let p = pattern(TYPE);
        for ok in [
            "Ready",
            "Configured",
            "example.com/Ready",
            "a-b.c/X_y.z",
            "x",
        ] {
            assert!(p.is_match(ok), "{ok}");
        }
        for bad in ["", "-Ready", "Ready-", "Example.com/Ready", "a/b/c", "a b"] {
            assert!(!p.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn long_inputs_stay_fast() {
        // Nested stars: a backtracking engine would take exponential time.
        let p = pattern(TYPE);
        let long = format!("{}!", "a-".repeat(5000));
        assert!(!p.is_match(&long));
    }

    #[test]
    fn unanchored_counted_and_alternation() {
        let p = pattern("ab{2,3}(c|d)");
        assert!(p.is_match("xxabbd"));
        assert!(p.is_match("abbbc"));
        assert!(!p.is_match("abc"));
        assert!(!p.is_match("abbbbe"));
        assert!(pattern("^a{2}$").is_match("aa"));
        assert!(!pattern("^a{2}$").is_match("aaa"));
        assert!(pattern(r"^\d+(\.\d+)?$").is_match("3.14"));
        assert!(pattern("[^a-c]").is_match("abcd"));
        assert!(!pattern("^[^a-c]+$").is_match("abcd"));
        // `.` and negated classes take whole characters, not bytes.
        assert!(pattern("^.$").is_match("é"));
        assert!(pattern("^[^a]{2}$").is_match("éü"));
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let digits = pattern(r"^\d+$");
        assert!(digits.is_match("0123456789"));
        // ARABIC-INDIC DIGIT THREE: a Unicode digit, not a Go `\d`.
        assert!(!digits.is_match("\u{663}"));
        let word = pattern(r"^\w+$");
        assert!(word.is_match("a_Z9"));
        assert!(!word.is_match("é"));
        assert!(!word.is_match("a-b"));
        assert!(pattern(r"^\W$").is_match("é"));
        assert!(pattern(r"^\D$").is_match("x"));
        assert!(pattern(r"^\s$").is_match("\t"));
        // Go's `\s` has no vertical tab.
        assert!(!pattern(r"^\s$").is_match("\u{b}"));
        assert!(pattern(r"^\S+$").is_match("a-b"));
        // Inside a class, next to other members and negated.
        let mixed = pattern(r"^[\d.-]+$");
        assert!(mixed.is_match("1.2-3"));
        assert!(!mixed.is_match("1,2"));
        let not_space_or_digit = pattern(r"^[^\s\d]+$");
        assert!(not_space_or_digit.is_match("abc"));
        assert!(!not_space_or_digit.is_match("a1"));
        assert!(!not_space_or_digit.is_match("a b"));
        // Escaped backslash then `d`: a literal backslash and a `d`.
        assert!(pattern(r"^\\d$").is_match(r"\d"));
        // `]` first in a class is a literal.
        assert!(pattern("^[]a]+$").is_match("]a]"));
    }

    #[test]
    fn unsupported_syntax_is_refused() {
        for bad in [
            r"\bword",
            "(?=x)",
            "[z-a]",
            "(ab",
            "ab)",
            r"\p{L}",
            "(?i)ready",
            r"(a)\1",
            // Set operators: Go reads these as literal characters.
            "[a-z&&[^x]]",
            "[a--b]",
            "[a~~b]",
            r"abc\",
        ] {
            assert!(Pattern::new(bad).is_err(), "{bad}");
        }
        let err = Pattern::new("[a-z&&[^x]]").map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("[a-z&&[^x]]"), "{err}");
    }

    #[test]
    fn nested_repetition_matches_like_the_single_one() {
        // Go refuses `a**` (so no CRD the API server took can hold it); the
        // regex crate reads it as `a*`, which matches the same strings, so
        // accepting it mis-checks nothing.
        let p = pattern("^a**$");
        assert!(p.is_match(""));
        assert!(p.is_match("aaa"));
        assert!(!p.is_match("ab"));
    }
}
