//! AMQP value <-> JSON conversion at the management edge.
//!
//! The router answers with whatever AMQP type its agent picked (ports as
//! strings, counters as int, uint or ulong, enums as strings, symbols as
//! keys in vanflow). skupperd compares values as JSON, where every integer
//! width is just a number (router.md 3.3), so the conversion is lossless
//! for what the router sends and deliberately simple for what skupperd
//! sends: strings, booleans, integers as AMQP long, maps and lists.

use serde_json::{Map, Number, Value as Json};
use skupperd_amqp::codec::{hex, uuid_text};
use skupperd_amqp::Value;

/// JSON for an AMQP value. Integers of any width become numbers, strings,
/// symbols and chars become strings, binaries become (lossy UTF-8) strings,
/// timestamps become milliseconds since the epoch, described values become
/// their value, maps become objects (non-string keys are written as their
/// JSON text), decimals become their hex bytes (the router never sends
/// them).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Float(f) => float(f64::from(*f)),
        Value::Double(f) => float(*f),
        Value::Char(c) => Json::String(c.to_string()),
        Value::Timestamp(t) => Json::from(*t),
        Value::Uuid(u) => Json::String(uuid_text(u)),
        Value::Binary(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::Raw(b) => Json::String(hex(b)),
        Value::String(s) | Value::Symbol(s) => Json::String(s.clone()),
        Value::List(items) | Value::Array(items) => {
            Json::Array(items.iter().map(to_json).collect())
        }
        Value::Map(pairs) => Json::Object(map_to_json(pairs)),
        Value::Described(_, v) => to_json(v),
        other => match other.as_int() {
            Some(n) => i64::try_from(n)
                .map(Json::from)
                .or_else(|_| u64::try_from(n).map(Json::from))
                .unwrap_or(Json::Null),
            None => Json::Null,
        },
    }
}

fn float(f: f64) -> Json {
    Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
}

/// A JSON object for an AMQP map; see [`key_text`] for the keys.
pub fn map_to_json(pairs: &[(Value, Value)]) -> Map<String, Json> {
    pairs
        .iter()
        .map(|(k, v)| (key_text(k), to_json(v)))
        .collect()
}

/// The text of a map key: strings and symbols as they are, anything else
/// (vanflow uses uint keys) as its JSON text, so `Uint(19)` is `"19"`.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) | Value::Symbol(s) => s.clone(),
        other => to_json(other).to_string(),
    }
}

/// The AMQP value skupperd sends for a JSON value: integers as long (or
/// ulong above `i64::MAX`), other numbers as double, objects as maps with
/// string keys.
pub fn from_json(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Long(i)
            } else if let Some(u) = n.as_u64() {
                Value::Ulong(u)
            } else {
                Value::Double(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(from_json).collect()),
        Json::Object(map) => Value::Map(map_from_json(map)),
    }
}

/// An AMQP map with string keys for a JSON object.
pub fn map_from_json(map: &Map<String, Json>) -> Vec<(Value, Value)> {
    map.iter()
        .map(|(k, v)| (Value::String(k.clone()), from_json(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_of_every_width_compare_equal_as_json() {
        let widths = [
            Value::Ubyte(7),
            Value::Ushort(7),
            Value::Uint(7),
            Value::Ulong(7),
            Value::Byte(7),
            Value::Short(7),
            Value::Int(7),
            Value::Long(7),
        ];
        for v in &widths {
            assert_eq!(to_json(v), json!(7), "{v:?}");
        }
        assert_eq!(to_json(&Value::Int(-3)), json!(-3));
        assert_eq!(to_json(&Value::Ulong(u64::MAX)), json!(u64::MAX));
    }

    #[test]
    fn router_row_values_convert_as_the_diff_expects() {
        let map = Value::Map(vec![
            (Value::str("port"), Value::str("8080")),
            (Value::str("operStatus"), Value::sym("up")),
            (Value::str("authenticatePeer"), Value::Bool(false)),
            (Value::str("connectionMsg"), Value::Null),
            (Value::Uint(19), Value::str("backend")),
        ]);
        assert_eq!(
            to_json(&map),
            json!({"port": "8080", "operStatus": "up", "authenticatePeer": false,
                   "connectionMsg": null, "19": "backend"})
        );
    }

    #[test]
    fn requests_send_integers_as_long_and_round_trip() {
        let attrs = json!({"name": "listener/web", "port": "8443", "ordinal": 2,
                           "authenticatePeer": true, "list": [1, "a"], "none": null});
        let amqp = from_json(&attrs);
        assert_eq!(amqp.get("ordinal"), Some(&Value::Long(2)));
        assert_eq!(amqp.get("port"), Some(&Value::str("8443")));
        assert_eq!(to_json(&amqp), attrs);
    }

    #[test]
    fn floats_and_huge_numbers_survive() {
        assert_eq!(from_json(&json!(u64::MAX)), Value::Ulong(u64::MAX));
        assert_eq!(to_json(&from_json(&json!(1.5))), json!(1.5));
        assert_eq!(to_json(&Value::Double(f64::NAN)), Json::Null);
    }
}
