//! AMQP value <-> JSON conversion at the management edge.
//!
//! The router answers with whatever AMQP type its agent picked (ports as
//! strings, counters as int32 or uint32, enums as strings, symbols as keys
//! in vanflow). skupperd compares values as JSON, where every integer width
//! is just a number (router.md 3.3), so the conversion is lossless for what
//! the router sends and deliberately simple for what skupperd sends:
//! strings, booleans, integers as AMQP long, maps and lists.

use fe2o3_amqp::types::primitives::{OrderedMap, Value};
use serde_json::{Map, Number, Value as Json};

/// JSON for an AMQP value. Integers of any width become numbers, strings,
/// symbols and chars become strings, binaries become (lossy UTF-8) strings,
/// timestamps become milliseconds since the epoch, described values become
/// their value, maps become objects (non-string keys are written as their
/// JSON text), decimals become null (the router never sends them).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Ubyte(n) => Json::from(*n),
        Value::Ushort(n) => Json::from(*n),
        Value::Uint(n) => Json::from(*n),
        Value::Ulong(n) => Json::from(*n),
        Value::Byte(n) => Json::from(*n),
        Value::Short(n) => Json::from(*n),
        Value::Int(n) => Json::from(*n),
        Value::Long(n) => Json::from(*n),
        Value::Float(f) => float(f64::from(f.into_inner())),
        Value::Double(f) => float(f.into_inner()),
        Value::Char(c) => Json::String(c.to_string()),
        Value::Timestamp(t) => Json::from(t.milliseconds()),
        Value::Uuid(u) => Json::String(
            u.as_inner()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        ),
        Value::Binary(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::String(s) => Json::String(s.clone()),
        Value::Symbol(s) => Json::String(s.0.clone()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Array(items) => Json::Array(items.0.iter().map(to_json).collect()),
        Value::Map(map) => Json::Object(map_to_json(map)),
        Value::Described(d) => to_json(&d.value),
        Value::Decimal32(_) | Value::Decimal64(_) | Value::Decimal128(_) => Json::Null,
    }
}

fn float(f: f64) -> Json {
    Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
}

/// A JSON object for an AMQP map; see [`key_text`] for the keys.
pub fn map_to_json(map: &OrderedMap<Value, Value>) -> Map<String, Json> {
    map.iter().map(|(k, v)| (key_text(k), to_json(v))).collect()
}

/// The text of a map key: strings and symbols as they are, anything else
/// (vanflow uses uint keys) as its JSON text, so `Uint(19)` is `"19"`.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Symbol(s) => s.0.clone(),
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
                Value::Double(n.as_f64().unwrap_or(0.0).into())
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(from_json).collect()),
        Json::Object(map) => Value::Map(map_from_json(map)),
    }
}

/// An AMQP map with string keys for a JSON object.
pub fn map_from_json(map: &Map<String, Json>) -> OrderedMap<Value, Value> {
    let mut out = OrderedMap::new();
    for (k, v) in map {
        out.insert(Value::String(k.clone()), from_json(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::primitives::Symbol;
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
        let mut map = OrderedMap::new();
        map.insert(Value::String("port".into()), Value::String("8080".into()));
        map.insert(
            Value::String("operStatus".into()),
            Value::Symbol(Symbol::from("up")),
        );
        map.insert(Value::String("authenticatePeer".into()), Value::Bool(false));
        map.insert(Value::String("connectionMsg".into()), Value::Null);
        map.insert(Value::Uint(19), Value::String("backend".into()));
        assert_eq!(
            to_json(&Value::Map(map)),
            json!({"port": "8080", "operStatus": "up", "authenticatePeer": false,
                   "connectionMsg": null, "19": "backend"})
        );
    }

    #[test]
    fn requests_send_integers_as_long_and_round_trip() {
        let attrs = json!({"name": "listener/web", "port": "8443", "ordinal": 2,
                           "authenticatePeer": true, "list": [1, "a"], "none": null});
        let amqp = from_json(&attrs);
        let Value::Map(map) = &amqp else {
            panic!("not a map: {amqp:?}")
        };
        assert_eq!(
            map.get(&Value::String("ordinal".into())),
            Some(&Value::Long(2))
        );
        assert_eq!(
            map.get(&Value::String("port".into())),
            Some(&Value::String("8443".into()))
        );
        assert_eq!(to_json(&amqp), attrs);
    }

    #[test]
    fn floats_and_huge_numbers_survive() {
        assert_eq!(from_json(&json!(u64::MAX)), Value::Ulong(u64::MAX));
        assert_eq!(to_json(&from_json(&json!(1.5))), json!(1.5));
        assert_eq!(to_json(&Value::Double(f64::NAN.into())), Json::Null);
    }
}
