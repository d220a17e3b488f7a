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
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        let _ = write!(out, "{:indent$}{}:", "", string(key));
        write_value(out, value, indent, false);
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        let _ = write!(out, "{:indent$}-", "");
        write_value(out, item, indent, true);
    }
}

/// Writes what follows `key:` or `-`.
fn write_value(out: &mut String, value: &Value, indent: usize, in_seq: bool) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            if in_seq {
                // First entry on the dash line, the rest aligned under it.
                let mut first = true;
                for (k, v) in map {
                    if first {
                        let _ = write!(out, " {}:", string(k));
                        first = false;
                    } else {
                        let _ = write!(out, "{:w$}{}:", "", string(k), w = indent + 2);
                    }
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
            let _ = writeln!(out, " {}", scalar(other));
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// Words that YAML 1.1 or 1.2 resolve to something other than a string.
const SPECIAL: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL",
];

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && !SPECIAL.contains(&s)
        && !s.ends_with(' ')
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '_' | '.' | '/' | '@' | ' ' | '(' | ')' | ',' | ';' | '+'
                )
        })
}

/// A string scalar, quoted when a YAML 1.1 or 1.2 reader could take it for
/// something else.
pub fn string(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else if !s.contains(['"', '\\']) && !s.chars().any(char::is_control) {
        format!("\"{s}\"")
    } else if !s.chars().any(char::is_control) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        // JSON string syntax is valid YAML double-quoted syntax.
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
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
        let node = crate::input::tree::parse_document(&text, 0)
            .unwrap()
            .unwrap();
        assert_eq!(node.to_json(), v, "{text}");
    }
}
