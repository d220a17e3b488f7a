//! Python's spellings of values, for the router's error texts.
//!
//! skupper-router's management agent is Python: its messages embed `%r` and
//! `%s` of request values, and its type coercions are Python's `str()`,
//! `int()` and `bool()`. These helpers reproduce the parts of that behaviour
//! the agent's validation reaches, so the texts here match the router's.

use serde_json::{Number, Value};

/// Python `repr()` of a string: single quotes unless the text holds a single
/// quote and no double quote.
pub(crate) fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `repr()` of a float (shortest round trip; exponent outside
/// 1e-4 <= |f| < 1e16, as Python does).
pub(crate) fn repr_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Rust: "1e16", "1.5e-5"; Python: "1e+16", "1.5e-05".
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn repr_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        repr_float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Python `repr()` of a JSON value as the agent would hold it.
pub(crate) fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => repr_number(n),
        Value::String(s) => repr_str(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", repr_str(k), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python `str()` of a JSON value: strings as they are, everything else as
/// `repr()`.
pub(crate) fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python's `repr()` of a list of strings, e.g. `['none', 'auto']`.
pub(crate) fn repr_str_list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| repr_str(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

/// Python's type name of a JSON value, as in `TypeError` texts.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Why Python's `int()` refused a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntError {
    /// `ValueError`: the text is not a base-10 integer.
    Invalid(String),
    /// `TypeError`: the value is not a string or a number at all.
    Type(String),
    /// Python would accept it, but it does not fit the router's 64-bit
    /// integers (Python itself has no limit; the router's C side has).
    Overflow(String),
}

impl IntError {
    pub(crate) fn message(&self) -> &str {
        match self {
            IntError::Invalid(m) | IntError::Type(m) | IntError::Overflow(m) => m,
        }
    }
}

/// Python `int()` of a JSON value: numeric strings (surrounding whitespace,
/// a sign and single `_` between digits allowed), integers, floats
/// (truncated) and booleans (0/1).
pub(crate) fn int_of(v: &Value) -> Result<i64, IntError> {
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err(IntError::Overflow(format!(
                    "{n} does not fit a 64-bit signed integer"
                )))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                let t = f.trunc();
                if t.is_finite() && t >= i64::MIN as f64 && t < i64::MAX as f64 {
                    Ok(t as i64)
                } else {
                    Err(IntError::Overflow(format!(
                        "{} does not fit a 64-bit signed integer",
                        repr_float(f)
                    )))
                }
            }
        }
        Value::String(s) => parse_int(s),
        other => Err(IntError::Type(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            type_name(other)
        ))),
    }
}

fn parse_int(s: &str) -> Result<i64, IntError> {
    let invalid = || {
        IntError::Invalid(format!(
            "invalid literal for int() with base 10: {}",
            repr_str(s)
        ))
    };
    let t = s.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err(invalid());
    }
    let mut value: i128 = 0;
    for c in digits.chars() {
        match c {
            '_' => {}
            '0'..='9' => {
                value = value * 10 + i128::from(c as u8 - b'0');
                if value > i128::from(i64::MAX) + 1 {
                    return Err(IntError::Overflow(format!(
                        "{} does not fit a 64-bit signed integer",
                        repr_str(s)
                    )));
                }
            }
            _ => return Err(invalid()),
        }
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).map_err(|_| {
        IntError::Overflow(format!(
            "{} does not fit a 64-bit signed integer",
            repr_str(s)
        ))
    })
}

/// Python `==` between a stored value and a request value, for the UPDATE
/// rule "unchanged attributes may be included". Numbers and booleans compare
/// numerically (`True == 1`), strings only with strings.
pub(crate) fn py_eq(a: &Value, b: &Value) -> bool {
    fn numeric(v: &Value) -> Option<f64> {
        match v {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (numeric(a), numeric(b)) {
            (Some(p), Some(q)) => match (a, b) {
                // Exact for large integers, which f64 would round.
                (Value::Number(m), Value::Number(n))
                    if m.as_i64().is_some() && n.as_i64().is_some() =>
                {
                    m.as_i64() == n.as_i64()
                }
                _ => p == q,
            },
            _ => a == b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repr_quotes_like_python() {
        assert_eq!(repr_str("http3"), "'http3'");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(repr_str("tab\there"), "'tab\\there'");
    }

    #[test]
    fn floats_print_like_python() {
        assert_eq!(repr_float(3.0), "3.0");
        assert_eq!(repr_float(1.5), "1.5");
        assert_eq!(repr_float(1e16), "1e+16");
        assert_eq!(repr_float(1.5e-5), "1.5e-05");
    }

    #[test]
    fn int_accepts_what_python_accepts() {
        assert_eq!(int_of(&json!(" 42 ")), Ok(42));
        assert_eq!(int_of(&json!("-1_000")), Ok(-1000));
        assert_eq!(int_of(&json!("+7")), Ok(7));
        assert_eq!(int_of(&json!(3.9)), Ok(3));
        assert_eq!(int_of(&json!(true)), Ok(1));
        assert_eq!(
            int_of(&json!("1.5")),
            Err(IntError::Invalid(
                "invalid literal for int() with base 10: '1.5'".into()
            ))
        );
        assert!(matches!(int_of(&json!("1__0")), Err(IntError::Invalid(_))));
        assert!(matches!(int_of(&json!([1])), Err(IntError::Type(_))));
        assert!(matches!(
            int_of(&json!("99999999999999999999")),
            Err(IntError::Overflow(_))
        ));
    }

    #[test]
    fn equality_is_pythons() {
        assert!(py_eq(&json!(true), &json!(1)));
        assert!(py_eq(&json!(8080), &json!(8080.0)));
        assert!(!py_eq(&json!("8080"), &json!(8080)));
        assert!(py_eq(&json!({"a": [1]}), &json!({"a": [1.0]})));
    }
}
