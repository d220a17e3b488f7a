//! AMQP 1.0 messages (part 3.2): the sections of a delivery, read as the
//! spec allows them and as real peers send them.
//!
//! Fields are kept as [`Value`]s, not narrowed to the types the spec
//! prefers, because skupper-router breaks those preferences in ways that
//! matter: its Python management agent echoes a ulong correlation-id as a
//! signed int, and its vanflow messages carry a long message-id. A reader
//! that insisted on the spec's id types could not read a single reply.

use crate::codec::{DecodeError, Reader, Value};

/// Section descriptors.
pub const HEADER: u64 = 0x70;
pub const DELIVERY_ANNOTATIONS: u64 = 0x71;
pub const MESSAGE_ANNOTATIONS: u64 = 0x72;
pub const PROPERTIES: u64 = 0x73;
pub const APPLICATION_PROPERTIES: u64 = 0x74;
pub const DATA: u64 = 0x75;
pub const AMQP_SEQUENCE: u64 = 0x76;
pub const AMQP_VALUE: u64 = 0x77;
pub const FOOTER: u64 = 0x78;

/// Section names, for the symbolic descriptors the spec also allows.
const NAMES: [(&str, u64); 9] = [
    ("amqp:header:list", HEADER),
    ("amqp:delivery-annotations:map", DELIVERY_ANNOTATIONS),
    ("amqp:message-annotations:map", MESSAGE_ANNOTATIONS),
    ("amqp:properties:list", PROPERTIES),
    ("amqp:application-properties:map", APPLICATION_PROPERTIES),
    ("amqp:data:binary", DATA),
    ("amqp:amqp-sequence:list", AMQP_SEQUENCE),
    ("amqp:amqp-value:*", AMQP_VALUE),
    ("amqp:footer:map", FOOTER),
];

/// The properties section's fields, in order (part 3.2.4).
pub const MESSAGE_ID: usize = 0;
pub const USER_ID: usize = 1;
pub const TO: usize = 2;
pub const SUBJECT: usize = 3;
pub const REPLY_TO: usize = 4;
pub const CORRELATION_ID: usize = 5;

/// The body of a message.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Body {
    /// No body section at all (go-amqp sends DELETE like this).
    #[default]
    None,
    Value(Value),
    Data(Vec<Vec<u8>>),
    Sequence(Vec<Value>),
}

/// A message. `properties` holds the properties list as sent and is
/// encoded as it is (the router sends six fields, trailing nulls
/// included); the accessors read it by position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// The header list (`durable`, `priority`, ...), if a header was sent.
    pub header: Option<Vec<Value>>,
    pub delivery_annotations: Option<Value>,
    pub message_annotations: Option<Value>,
    pub properties: Option<Vec<Value>>,
    /// Keys as sent: strings, or symbols (vanflow).
    pub application_properties: Option<Vec<(Value, Value)>>,
    pub body: Body,
    pub footer: Option<Value>,
}

/// Why a delivery is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("section {index} is not a described section")]
    NotASection { index: usize },
    #[error("unknown section descriptor {descriptor}")]
    UnknownSection { descriptor: String },
    #[error("the {section} section is not a {expected}")]
    BadSection {
        section: &'static str,
        expected: &'static str,
    },
}

impl Message {
    /// A message with an amqp-value body.
    pub fn with_value(body: Value) -> Message {
        Message {
            body: Body::Value(body),
            ..Message::default()
        }
    }

    fn property(&self, index: usize) -> Option<&Value> {
        self.properties
            .as_ref()
            .and_then(|p| p.get(index))
            .filter(|v| !v.is_null())
    }

    fn property_text(&self, index: usize) -> Option<&str> {
        self.property(index).and_then(Value::as_str)
    }

    pub fn message_id(&self) -> Option<&Value> {
        self.property(MESSAGE_ID)
    }

    pub fn to(&self) -> Option<&str> {
        self.property_text(TO)
    }

    pub fn subject(&self) -> Option<&str> {
        self.property_text(SUBJECT)
    }

    pub fn reply_to(&self) -> Option<&str> {
        self.property_text(REPLY_TO)
    }

    pub fn correlation_id(&self) -> Option<&Value> {
        self.property(CORRELATION_ID)
    }

    /// Sets one properties field, growing the list as needed.
    pub fn set_property(&mut self, index: usize, value: Value) {
        let props = self.properties.get_or_insert_with(Vec::new);
        if props.len() <= index {
            props.resize(index + 1, Value::Null);
        }
        if let Some(slot) = props.get_mut(index) {
            *slot = value;
        }
    }

    /// The application property `key` (a string or symbol key).
    pub fn application_property(&self, key: &str) -> Option<&Value> {
        self.application_properties
            .as_ref()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The amqp-value body, if that is the body.
    pub fn value(&self) -> Option<&Value> {
        match &self.body {
            Body::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The encoded message: sections in the spec's order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut section = |code: u64, value: Value| {
            Value::described(code, value).encode_into(&mut out);
        };
        if let Some(header) = &self.header {
            section(HEADER, Value::List(header.clone()));
        }
        if let Some(v) = &self.delivery_annotations {
            section(DELIVERY_ANNOTATIONS, v.clone());
        }
        if let Some(v) = &self.message_annotations {
            section(MESSAGE_ANNOTATIONS, v.clone());
        }
        if let Some(props) = &self.properties {
            section(PROPERTIES, Value::List(props.clone()));
        }
        if let Some(app) = &self.application_properties {
            section(APPLICATION_PROPERTIES, Value::Map(app.clone()));
        }
        match &self.body {
            Body::None => {}
            Body::Value(v) => section(AMQP_VALUE, v.clone()),
            Body::Data(chunks) => {
                for chunk in chunks {
                    section(DATA, Value::Binary(chunk.clone()));
                }
            }
            Body::Sequence(items) => section(AMQP_SEQUENCE, Value::List(items.clone())),
        }
        if let Some(v) = &self.footer {
            section(FOOTER, v.clone());
        }
        out
    }

    /// Reads a message from a delivery's payload.
    pub fn decode(bytes: &[u8]) -> Result<Message, MessageError> {
        let mut message = Message::default();
        for (index, (code, value)) in sections(bytes)?.into_iter().enumerate() {
            match code {
                HEADER => message.header = Some(list(value, "header")?),
                DELIVERY_ANNOTATIONS => message.delivery_annotations = Some(value),
                MESSAGE_ANNOTATIONS => message.message_annotations = Some(value),
                PROPERTIES => message.properties = Some(list(value, "properties")?),
                APPLICATION_PROPERTIES => match value {
                    Value::Map(pairs) => message.application_properties = Some(pairs),
                    Value::Null => {}
                    _ => {
                        return Err(MessageError::BadSection {
                            section: "application-properties",
                            expected: "map",
                        })
                    }
                },
                AMQP_VALUE => message.body = Body::Value(value),
                DATA => {
                    let Value::Binary(chunk) = value else {
                        return Err(MessageError::BadSection {
                            section: "data",
                            expected: "binary",
                        });
                    };
                    match &mut message.body {
                        Body::Data(chunks) => chunks.push(chunk),
                        body => *body = Body::Data(vec![chunk]),
                    }
                }
                AMQP_SEQUENCE => {
                    let items = list(value, "amqp-sequence")?;
                    match &mut message.body {
                        Body::Sequence(all) => all.extend(items),
                        body => *body = Body::Sequence(items),
                    }
                }
                FOOTER => message.footer = Some(value),
                _ => {
                    // sections() only yields known codes.
                    return Err(MessageError::NotASection { index });
                }
            }
        }
        Ok(message)
    }
}

fn list(value: Value, section: &'static str) -> Result<Vec<Value>, MessageError> {
    match value {
        Value::List(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        _ => Err(MessageError::BadSection {
            section,
            expected: "list",
        }),
    }
}

/// The sections of a payload: descriptor code and value, in order.
pub fn sections(bytes: &[u8]) -> Result<Vec<(u64, Value)>, MessageError> {
    let mut reader = Reader::new(bytes);
    let mut out = Vec::new();
    while !reader.is_empty() {
        let index = out.len();
        let Value::Described(descriptor, value) = reader.next_value()? else {
            return Err(MessageError::NotASection { index });
        };
        let code = match &*descriptor {
            Value::Symbol(name) => NAMES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| *c)
                .ok_or_else(|| MessageError::UnknownSection {
                    descriptor: name.clone(),
                })?,
            other => other
                .as_u64()
                .filter(|c| (HEADER..=FOOTER).contains(c))
                .ok_or_else(|| MessageError::UnknownSection {
                    descriptor: other.to_string(),
                })?,
        };
        out.push((code, *value));
    }
    Ok(out)
}

/// The byte ranges of a payload's sections, for comparing section bytes.
pub fn section_ranges(bytes: &[u8]) -> Result<Vec<std::ops::Range<usize>>, MessageError> {
    let mut reader = Reader::new(bytes);
    let mut out = Vec::new();
    while !reader.is_empty() {
        let start = reader.position();
        reader.next_value()?;
        out.push(start..reader.position());
    }
    Ok(out)
}

/// A section's name, for messages.
pub fn section_name(code: u64) -> &'static str {
    match code {
        HEADER => "header",
        DELIVERY_ANNOTATIONS => "delivery-annotations",
        MESSAGE_ANNOTATIONS => "message-annotations",
        PROPERTIES => "properties",
        APPLICATION_PROPERTIES => "application-properties",
        DATA => "data",
        AMQP_SEQUENCE => "amqp-sequence",
        AMQP_VALUE => "body(amqp-value)",
        FOOTER => "footer",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_with_an_int_correlation_id_and_a_header_reads() {
        let mut reply = Message::with_value(Value::Map(vec![]));
        reply.header = Some(vec![Value::Bool(false)]);
        reply.set_property(TO, Value::str("amqp:/_topo/0/r/temp.x"));
        reply.set_property(CORRELATION_ID, Value::Int(1));
        reply.application_properties = Some(vec![
            (Value::str("statusCode"), Value::Int(200)),
            (Value::str("statusDescription"), Value::str("OK")),
        ]);
        let bytes = reply.encode();
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back, reply);
        assert_eq!(back.correlation_id(), Some(&Value::Int(1)));
        assert_eq!(
            back.application_property("statusCode"),
            Some(&Value::Int(200))
        );
        assert_eq!(back.to(), Some("amqp:/_topo/0/r/temp.x"));
    }

    #[test]
    fn symbol_keys_and_a_long_message_id_read() {
        let mut beacon = Message::with_value(Value::Null);
        beacon.set_property(MESSAGE_ID, Value::Long(0));
        beacon.set_property(SUBJECT, Value::str("BEACON"));
        beacon.application_properties = Some(vec![(Value::sym("id"), Value::str("abc:0"))]);
        let back = Message::decode(&beacon.encode()).unwrap();
        assert_eq!(back.subject(), Some("BEACON"));
        assert_eq!(back.application_property("id"), Some(&Value::str("abc:0")));
        assert_eq!(back.message_id(), Some(&Value::Long(0)));
    }

    #[test]
    fn a_payload_without_a_body_is_a_message_without_one() {
        let mut m = Message::default();
        m.set_property(REPLY_TO, Value::str("r"));
        assert_eq!(Message::decode(&m.encode()).unwrap().body, Body::None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Message::decode(&[0x40]).is_err());
        assert!(Message::decode(&[0x00, 0x53, 0x99, 0x40]).is_err());
        assert!(Message::decode(&[0x00, 0x53, 0x74, 0x54, 0x01]).is_err());
    }
}
