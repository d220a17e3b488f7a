//! A small block-style YAML emitter for the files skupperd writes.
//!
//! Why not a YAML library's serializer: readers of these files include
//! YAML 1.1 parsers (Skupper's Go tools), for which a plain `yes`, `on` or
//! `0.0.0.0`-like scalar can mean something else. Here a string is written
//! plain only when it is unambiguous under both YAML 1.1 and 1.2, and key
//! order is the order of the value (serde_json with `preserve_order`), so
//! output is deterministic and reads like the examples in resources.md.

use serde_json::Value;
use std::fmt::Write;

pub fn to_yaml(value: &Value) -> String {
    let mut out = String::with_capacity(512);
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            push_scalar(&mut out, other);
            out.push('\n');
        }
    }
    out
}

pub(crate) fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        pad(out, indent);
        push_string(out, key);
        out.push(':');
        write_value(out, value, indent, false);
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        write_value(out, item, indent, true);
    }
}

/// Writes what follows `key:` or `-`.
pub(crate) fn write_value(out: &mut String, value: &Value, indent: usize, in_seq: bool) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            if in_seq {
                // First entry on the dash line, the rest aligned under it.
                let mut first = true;
                for (k, v) in map {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        pad(out, indent + 2);
                    }
                    push_string(out, k);
                    out.push(':');
                    write_value(out, v, indent + 2, false);
                }
            } else {
                out.push('\n');
                write_map(out, map, indent + 2);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            // Sequences under a key are not indented, as kubectl writes them.
            write_seq(out, items, if in_seq { indent + 2 } else { indent });
        }
        other => {
            out.push(' ');
            push_scalar(out, other);
            out.push('\n');
        }
    }
}

fn push_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => push_string(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// Words that YAML 1.1 or 1.2 resolve to something other than a string.
const SPECIAL: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL",
];

fn is_plain_safe(s: &str) -> bool {
    // Every allowed character is ASCII, so bytes can be checked alone.
    let Some(first) = s.bytes().next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && !s.ends_with(' ')
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'_' | b'.' | b'/' | b'@' | b' ' | b'(' | b')' | b',' | b';' | b'+'
                )
        })
        && !SPECIAL.contains(&s)
}

/// A string scalar, written to `out`; quoted when a YAML 1.1 or 1.2
/// reader could take it for something else.
pub fn push_string(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else if !s.contains(['"', '\\']) && !s.chars().any(char::is_control) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else if !s.chars().any(char::is_control) {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    } else {
        // JSON string syntax is valid YAML double-quoted syntax.
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_block_style_with_safe_quoting() {
        let v = json!({
            "metadata": {"name": "backend", "generation": 1},
            "spec": {"host": "0.0.0.0", "port": 8080, "routingKey": "yes"},
            "status": {
                "message": "listener \"b\": it's bad",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-26T10:00:01Z"}],
                "empty": [],
                "multi": "a\nb"
            }
        });
        let text = to_yaml(&v);
        assert_eq!(
            text,
            "metadata:\n  name: backend\n  generation: 1\nspec:\n  host: \"0.0.0.0\"\n  port: 8080\n  routingKey: \"yes\"\nstatus:\n  message: 'listener \"b\": it''s bad'\n  conditions:\n  - type: Ready\n    status: \"True\"\n    lastTransitionTime: \"2026-11-26T10:00:01Z\"\n  empty: []\n  multi: \"a\\nb\"\n"
        );
    }

    #[test]
    fn output_reads_back_as_the_same_value() {
        let v = json!({"a": ["x", {"b": "on", "c": [1, 2]}, "No"], "d": {"e": "' \" \\ \t"}, "f": null, "g": true});
        let text = to_yaml(&v);
        let node = crate::input::parse_document(&text, 0).unwrap().unwrap();
        assert_eq!(node.to_json(), v, "{text}");
    }
}
