//! serde deserialization from a positioned YAML tree.
//!
//! Typed resource structs are derived with `deny_unknown_fields`; this
//! deserializer feeds them from a [`Node`] and turns every serde error into
//! the YAML library's wording with the field path and the position of the
//! offending node: `spec.port: invalid type: string "eighty", expected an
//! integer at line 8 column 9`.

use super::tree::{key_text, Mark, Node, Value};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

/// A deserialization error with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    pub path: String,
    pub mark: Option<Mark>,
    pub message: String,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(m) = self.mark {
            write!(f, " at {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: String::new(),
            mark: None,
            message: msg.to_string(),
        }
    }
}

/// Deserializes `T` from `node`, whose field path is `path`.
pub fn from_node<T: DeserializeOwned>(node: &Node, path: &str) -> Result<T, DeError> {
    T::deserialize(NodeDe { node, path }).map_err(|mut e| {
        // serde names Rust types; users wrote YAML.
        for rust in ["i64", "i32", "u16", "u32", "u64"] {
            e.message = e
                .message
                .replace(&format!("expected {rust}"), "expected an integer");
        }
        e
    })
}

#[derive(Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
    path: &'a str,
}

impl NodeDe<'_> {
    /// Errors raised by a visitor know nothing of the place; the innermost
    /// node that sees one unplaced claims it.
    fn place(&self, mut e: DeError) -> DeError {
        if e.mark.is_none() {
            e.mark = Some(self.node.mark);
            e.path = self.path.to_string();
        }
        e
    }

    fn unexpected(&self) -> de::Unexpected<'_> {
        match &self.node.value {
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Int(i) => de::Unexpected::Signed(*i),
            Value::Float(f) => de::Unexpected::Float(*f),
            Value::Str(s) => de::Unexpected::Str(s),
            Value::Seq(_) => de::Unexpected::Seq,
            Value::Map(_) => de::Unexpected::Map,
        }
    }
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                index: 0,
                path: self.path,
            }),
            Value::Map(entries) => {
                let mut access = MapDe {
                    entries: entries.iter(),
                    pending: None,
                    path: self.path,
                };
                visitor.visit_map(&mut access)
            }
        };
        result.map_err(|e| self.place(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Strings are strict: `port: "8080"` is a string and `name: 8080` is
        // an integer; neither is silently converted.
        match &self.node.value {
            Value::Str(s) => visitor.visit_str(s).map_err(|e| self.place(e)),
            _ => Err(self.place(de::Error::invalid_type(self.unexpected(), &visitor))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| self.place(e)),
            _ => Err(self.place(de::Error::invalid_type(self.unexpected(), &visitor))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // Only a map: a derived struct would also take a sequence, its
        // items given to the fields in order (`spec: [key, 127.0.0.1, 80]`
        // a valid Listener), which strict parsing must not allow.
        match &self.node.value {
            Value::Map(_) => self.deserialize_any(visitor),
            _ => Err(self.place(de::Error::invalid_type(self.unexpected(), &visitor))),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map identifier
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: &'a str,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe { node, path: &path }).map(Some)
    }
}

struct MapDe<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    pending: Option<(&'a Node, String)>,
    path: &'a str,
}

impl<'de> de::MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((value, child_path(self.path, &key_text(key))));
        // Unknown-field errors come from the key and name the map's path,
        // as in `spec: unknown field `bogus``.
        seed.deserialize(NodeDe {
            node: key,
            path: self.path,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((node, path)) = self.pending.take() else {
            return Err(de::Error::custom("value requested before its key"));
        };
        seed.deserialize(NodeDe { node, path: &path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::parse_document;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        spec: Spec,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Spec {
        port: Option<i64>,
        host: Option<String>,
        #[serde(default)]
        settings: BTreeMap<String, String>,
        #[serde(default)]
        use_client_cert: bool,
    }

    fn de(text: &str) -> Result<Doc, DeError> {
        let node = parse_document(text, 0).unwrap().unwrap();
        from_node(&node, "")
    }

    #[test]
    fn wrong_type_names_path_and_position() {
        let e = de("spec:\n  host: a\n  port: eighty\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.port: invalid type: string \"eighty\", expected an integer at line 3 column 9"
        );
    }

    #[test]
    fn quoted_numbers_are_not_integers() {
        let e = de("spec:\n  port: \"8080\"\n").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("spec.port: invalid type: string \"8080\""));
    }

    #[test]
    fn unknown_fields_name_the_parent() {
        let e = de("spec:\n  bogus: 1\n").unwrap_err();
        assert!(
            e.to_string().starts_with("spec: unknown field `bogus`"),
            "{e}"
        );
        assert_eq!(e.mark, Some(Mark { line: 2, column: 3 }));
    }

    #[test]
    fn numbers_are_not_strings() {
        let e = de("spec:\n  settings:\n    observer: 1\n").unwrap_err();
        assert_eq!(e.path, "spec.settings.observer");
        let d = de("spec:\n  settings:\n    observer: http1\n").unwrap();
        assert_eq!(d.spec.settings["observer"], "http1");
    }

    #[test]
    fn good_documents_decode() {
        let d = de("spec:\n  port: 8080\n  host: ::1\n  useClientCert: true\n").unwrap();
        assert_eq!(d.spec.port, Some(8080));
        assert_eq!(d.spec.host.as_deref(), Some("::1"));
        assert!(d.spec.use_client_cert);
    }
}
