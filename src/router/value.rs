//! AMQP value <-> JSON conversion at the management edge.
//!
//! The router answers with whatever AMQP type its agent picked (ports as
//! strings, counters as int, uint or ulong, enums as strings, symbols as
//! keys in vanflow). skupperd compares values as JSON, where every integer
//! width is just a number (router.md 3.3), so the conversion is lossless
//! for what the router sends and deliberately simple for what skupperd
//! sends: strings, booleans, integers as AMQP long, maps and lists.

use serde_json::{Map, Value as Json};
use skupperd_amqp::Value;

pub use skupperd_amqp::codec::{key_text, to_json};

/// A JSON object for an AMQP map; see [`key_text`] for the keys.
pub fn map_to_json(pairs: &[(Value, Value)]) -> Map<String, Json> {
    pairs
        .iter()
        .map(|(k, v)| (key_text(k), to_json(v)))
        .collect()
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
