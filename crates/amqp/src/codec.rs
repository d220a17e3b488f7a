//! AMQP 1.0 type system: one [`Value`] per AMQP type, a decoder that takes
//! every encoding the spec allows, and an encoder that picks encodings the
//! way qpid-proton does (the smallest fixed width for integers, `str8` /
//! `sym8` / `vbin8` when short, `list32` / `map32` for compounds, `list0`
//! for an empty list). Proton's choices matter because skupper-router's
//! management agent goes through proton's encoder, and the router double
//! must send the same bytes.
//!
//! Decoding never panics: every length is checked against what is left,
//! nesting is bounded by [`MAX_DEPTH`], and an element count can never make
//! it allocate more than the input could hold.

use std::fmt;

/// Deepest nesting of compound values the decoder accepts. Management
/// bodies nest four deep (map, list of rows, row, value); anything near
/// this bound is hostile.
pub const MAX_DEPTH: usize = 32;

/// An AMQP 1.0 value. Integers keep their AMQP type (an `Int` and a
/// `Long` with the same number differ), which is what lets a test check
/// that a reply says `int` where the real router says `int`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Ubyte(u8),
    Ushort(u16),
    Uint(u32),
    Ulong(u64),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Char(char),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
    Binary(Vec<u8>),
    String(String),
    Symbol(String),
    List(Vec<Value>),
    /// Pairs in wire order (AMQP maps are ordered on the wire, and the two
    /// router agents order keys differently).
    Map(Vec<(Value, Value)>),
    /// Elements of one type.
    Array(Vec<Value>),
    Described(Box<Value>, Box<Value>),
    /// Bytes that are already an encoded value (decimals, which nothing
    /// here interprets, and encodings a caller must control exactly, such
    /// as the C agent's empty `list32`).
    Raw(Vec<u8>),
}

/// Why bytes are not an AMQP value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated: {what} needs {needed} more bytes at offset {offset}")]
    Truncated {
        what: &'static str,
        needed: usize,
        offset: usize,
    },
    #[error("unknown format code 0x{code:02x} at offset {offset}")]
    UnknownCode { code: u8, offset: usize },
    #[error("invalid {what} at offset {offset}")]
    Invalid { what: &'static str, offset: usize },
    #[error("values nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::String(s.to_string())
    }

    pub fn sym(s: &str) -> Value {
        Value::Symbol(s.to_string())
    }

    /// A described value with a `ulong` descriptor, as every performative
    /// and message section is.
    pub fn described(code: u64, value: Value) -> Value {
        Value::Described(Box::new(Value::Ulong(code)), Box::new(value))
    }

    /// The text of a string or symbol.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Symbol(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer type as i128 (wide enough for every AMQP integer).
    pub fn as_int(&self) -> Option<i128> {
        Some(match self {
            Value::Ubyte(n) => i128::from(*n),
            Value::Ushort(n) => i128::from(*n),
            Value::Uint(n) => i128::from(*n),
            Value::Ulong(n) => i128::from(*n),
            Value::Byte(n) => i128::from(*n),
            Value::Short(n) => i128::from(*n),
            Value::Int(n) => i128::from(*n),
            Value::Long(n) => i128::from(*n),
            _ => return None,
        })
    }

    pub fn as_u32(&self) -> Option<u32> {
        self.as_int().and_then(|n| u32::try_from(n).ok())
    }

    pub fn as_u64(&self) -> Option<u64> {
        self.as_int().and_then(|n| u64::try_from(n).ok())
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value of `key` in a map whose keys are strings or symbols.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// `Some((descriptor code, inner))` for a value described by a ulong.
    pub fn descriptor(&self) -> Option<(u64, &Value)> {
        match self {
            Value::Described(d, v) => d.as_u64().map(|code| (code, &**v)),
            _ => None,
        }
    }

    /// The encoded bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0x40),
            Value::Bool(true) => out.push(0x41),
            Value::Bool(false) => out.push(0x42),
            Value::Ubyte(n) => out.extend([0x50, *n]),
            Value::Ushort(n) => {
                out.push(0x60);
                out.extend(n.to_be_bytes());
            }
            Value::Uint(0) => out.push(0x43),
            Value::Uint(n) => match u8::try_from(*n) {
                Ok(small) => out.extend([0x52, small]),
                Err(_) => {
                    out.push(0x70);
                    out.extend(n.to_be_bytes());
                }
            },
            Value::Ulong(0) => out.push(0x44),
            Value::Ulong(n) => match u8::try_from(*n) {
                Ok(small) => out.extend([0x53, small]),
                Err(_) => {
                    out.push(0x80);
                    out.extend(n.to_be_bytes());
                }
            },
            Value::Byte(n) => out.extend([0x51, n.to_be_bytes()[0]]),
            Value::Short(n) => {
                out.push(0x61);
                out.extend(n.to_be_bytes());
            }
            Value::Int(n) => match i8::try_from(*n) {
                Ok(small) => out.extend([0x54, small.to_be_bytes()[0]]),
                Err(_) => {
                    out.push(0x71);
                    out.extend(n.to_be_bytes());
                }
            },
            Value::Long(n) => match i8::try_from(*n) {
                Ok(small) => out.extend([0x55, small.to_be_bytes()[0]]),
                Err(_) => {
                    out.push(0x81);
                    out.extend(n.to_be_bytes());
                }
            },
            Value::Float(f) => {
                out.push(0x72);
                out.extend(f.to_be_bytes());
            }
            Value::Double(f) => {
                out.push(0x82);
                out.extend(f.to_be_bytes());
            }
            Value::Char(c) => {
                out.push(0x73);
                out.extend(u32::from(*c).to_be_bytes());
            }
            Value::Timestamp(t) => {
                out.push(0x83);
                out.extend(t.to_be_bytes());
            }
            Value::Uuid(u) => {
                out.push(0x98);
                out.extend(u);
            }
            Value::Binary(b) => variable(out, 0xa0, 0xb0, b),
            Value::String(s) => variable(out, 0xa1, 0xb1, s.as_bytes()),
            Value::Symbol(s) => variable(out, 0xa3, 0xb3, s.as_bytes()),
            Value::List(items) if items.is_empty() => out.push(0x45),
            Value::List(items) => {
                let mut body = Vec::new();
                for item in items {
                    item.encode_into(&mut body);
                }
                compound32(out, 0xd0, items.len(), &body);
            }
            Value::Map(pairs) => {
                let mut body = Vec::new();
                for (k, v) in pairs {
                    k.encode_into(&mut body);
                    v.encode_into(&mut body);
                }
                compound32(out, 0xd1, pairs.len() * 2, &body);
            }
            Value::Array(items) => encode_array(out, items),
            Value::Described(d, v) => {
                out.push(0x00);
                d.encode_into(out);
                v.encode_into(out);
            }
            Value::Raw(bytes) => out.extend(bytes),
        }
    }

    /// Decodes one value and checks that nothing follows it.
    pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
        let mut reader = Reader::new(bytes);
        let value = reader.value(0)?;
        if reader.pos != bytes.len() {
            return Err(DecodeError::Invalid {
                what: "trailing bytes after the value",
                offset: reader.pos,
            });
        }
        Ok(value)
    }
}

fn variable(out: &mut Vec<u8>, code8: u8, code32: u8, bytes: &[u8]) {
    match u8::try_from(bytes.len()) {
        Ok(len) => out.extend([code8, len]),
        Err(_) => {
            out.push(code32);
            out.extend(len32(bytes.len()).to_be_bytes());
        }
    }
    out.extend(bytes);
}

/// Lengths are bounded by what a frame can carry, far below u32::MAX; a
/// longer value saturates rather than wrapping (the peer then rejects it).
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn compound32(out: &mut Vec<u8>, code: u8, count: usize, body: &[u8]) {
    out.push(code);
    out.extend(len32(body.len() + 4).to_be_bytes());
    out.extend(len32(count).to_be_bytes());
    out.extend(body);
}

/// Arrays go out as `array32` with each element's wide constructor, as
/// proton writes them (`array32<sym32>` for capabilities).
fn encode_array(out: &mut Vec<u8>, items: &[Value]) {
    let mut body = Vec::new();
    let constructor = match items.first() {
        None => 0x40,
        Some(first) => array_constructor(first),
    };
    body.push(constructor);
    for item in items {
        array_element(&mut body, constructor, item);
    }
    out.push(0xf0);
    out.extend(len32(body.len() + 4).to_be_bytes());
    out.extend(len32(items.len()).to_be_bytes());
    out.extend(body);
}

fn array_constructor(v: &Value) -> u8 {
    match v {
        Value::Bool(_) => 0x56,
        Value::Ubyte(_) => 0x50,
        Value::Ushort(_) => 0x60,
        Value::Uint(_) => 0x70,
        Value::Ulong(_) => 0x80,
        Value::Byte(_) => 0x51,
        Value::Short(_) => 0x61,
        Value::Int(_) => 0x71,
        Value::Long(_) => 0x81,
        Value::Float(_) => 0x72,
        Value::Double(_) => 0x82,
        Value::Char(_) => 0x73,
        Value::Timestamp(_) => 0x83,
        Value::Uuid(_) => 0x98,
        Value::Binary(_) => 0xb0,
        Value::String(_) => 0xb1,
        Value::Symbol(_) => 0xb3,
        Value::List(_) => 0xd0,
        Value::Map(_) => 0xd1,
        Value::Array(_) => 0xf0,
        Value::Null | Value::Described(..) | Value::Raw(_) => 0x40,
    }
}

/// One array element without its constructor. Callers build arrays of
/// one type; the constructor comes from the first element.
fn array_element(out: &mut Vec<u8>, constructor: u8, v: &Value) {
    let mut full = Vec::new();
    match (constructor, v) {
        (0x56, Value::Bool(b)) => out.push(u8::from(*b)),
        (0x70, Value::Uint(n)) => out.extend(n.to_be_bytes()),
        (0x80, Value::Ulong(n)) => out.extend(n.to_be_bytes()),
        (0x71, Value::Int(n)) => out.extend(n.to_be_bytes()),
        (0x81, Value::Long(n)) => out.extend(n.to_be_bytes()),
        (0xb0, Value::Binary(b)) => {
            out.extend(len32(b.len()).to_be_bytes());
            out.extend(b);
        }
        (0xb1, Value::String(s)) | (0xb3, Value::Symbol(s)) => {
            out.extend(len32(s.len()).to_be_bytes());
            out.extend(s.as_bytes());
        }
        (0xd0, Value::List(items)) => {
            let mut body = Vec::new();
            for item in items {
                item.encode_into(&mut body);
            }
            out.extend(len32(body.len() + 4).to_be_bytes());
            out.extend(len32(items.len()).to_be_bytes());
            out.extend(body);
        }
        _ => {
            // Fixed-width scalars: the full encoding minus its code.
            v.encode_into(&mut full);
            out.extend(full.get(1..).unwrap_or_default());
        }
    }
}

/// A cursor over encoded bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let slice = self.bytes.get(self.pos..end).unwrap_or_default();
                self.pos = end;
                Ok(slice)
            }
            None => Err(DecodeError::Truncated {
                what,
                needed: n.saturating_sub(self.bytes.len().saturating_sub(self.pos)),
                offset: self.pos,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// The next value.
    pub fn next_value(&mut self) -> Result<Value, DecodeError> {
        self.value(0)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let at = self.pos;
        let code = self.u8("a format code")?;
        if code == 0x00 {
            let descriptor = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            return Ok(Value::Described(Box::new(descriptor), Box::new(value)));
        }
        self.body(code, at, depth)
    }

    /// The value after its format code `code` (read at `at`).
    fn body(&mut self, code: u8, at: usize, depth: usize) -> Result<Value, DecodeError> {
        Ok(match code {
            0x40 => Value::Null,
            0x41 => Value::Bool(true),
            0x42 => Value::Bool(false),
            0x56 => match self.u8("a boolean")? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => {
                    return Err(DecodeError::Invalid {
                        what: "boolean",
                        offset: at,
                    })
                }
            },
            0x50 => Value::Ubyte(self.u8("a ubyte")?),
            0x60 => Value::Ushort(u16::from_be_bytes(self.array("a ushort")?)),
            0x70 => Value::Uint(self.u32("a uint")?),
            0x52 => Value::Uint(u32::from(self.u8("a smalluint")?)),
            0x43 => Value::Uint(0),
            0x80 => Value::Ulong(u64::from_be_bytes(self.array("a ulong")?)),
            0x53 => Value::Ulong(u64::from(self.u8("a smallulong")?)),
            0x44 => Value::Ulong(0),
            0x51 => Value::Byte(i8::from_be_bytes(self.array("a byte")?)),
            0x61 => Value::Short(i16::from_be_bytes(self.array("a short")?)),
            0x71 => Value::Int(i32::from_be_bytes(self.array("an int")?)),
            0x54 => Value::Int(i32::from(i8::from_be_bytes(self.array("a smallint")?))),
            0x81 => Value::Long(i64::from_be_bytes(self.array("a long")?)),
            0x55 => Value::Long(i64::from(i8::from_be_bytes(self.array("a smalllong")?))),
            0x72 => Value::Float(f32::from_be_bytes(self.array("a float")?)),
            0x82 => Value::Double(f64::from_be_bytes(self.array("a double")?)),
            0x74 => Value::Raw(self.raw_from(at, 4, "a decimal32")?),
            0x84 => Value::Raw(self.raw_from(at, 8, "a decimal64")?),
            0x94 => Value::Raw(self.raw_from(at, 16, "a decimal128")?),
            0x73 => {
                let n = self.u32("a char")?;
                Value::Char(char::from_u32(n).ok_or(DecodeError::Invalid {
                    what: "char",
                    offset: at,
                })?)
            }
            0x83 => Value::Timestamp(i64::from_be_bytes(self.array("a timestamp")?)),
            0x98 => Value::Uuid(self.array("a uuid")?),
            0xa0 | 0xb0 => Value::Binary(self.variable(code == 0xb0, "binary")?.to_vec()),
            0xa1 | 0xb1 => Value::String(self.text(code == 0xb1, at, "string")?),
            0xa3 | 0xb3 => Value::Symbol(self.text(code == 0xb3, at, "symbol")?),
            0x45 => Value::List(Vec::new()),
            0xc0 | 0xd0 => {
                let (count, mut inner) = self.compound(code == 0xd0, "list")?;
                let mut items = Vec::with_capacity(count.min(inner.bytes.len()));
                for _ in 0..count {
                    items.push(inner.value(depth + 1)?);
                }
                inner.finish("list")?;
                Value::List(items)
            }
            0xc1 | 0xd1 => {
                let (count, mut inner) = self.compound(code == 0xd1, "map")?;
                if count % 2 != 0 {
                    return Err(DecodeError::Invalid {
                        what: "map with an odd element count",
                        offset: at,
                    });
                }
                let mut pairs = Vec::with_capacity((count / 2).min(inner.bytes.len()));
                for _ in 0..count / 2 {
                    let k = inner.value(depth + 1)?;
                    let v = inner.value(depth + 1)?;
                    pairs.push((k, v));
                }
                inner.finish("map")?;
                Value::Map(pairs)
            }
            0xe0 | 0xf0 => {
                let (count, mut inner) = self.compound(code == 0xf0, "array")?;
                let (_, items) = inner.array_items(count, depth)?;
                inner.finish("array")?;
                Value::Array(items)
            }
            _ => return Err(DecodeError::UnknownCode { code, offset: at }),
        })
    }

    fn raw_from(
        &mut self,
        at: usize,
        n: usize,
        what: &'static str,
    ) -> Result<Vec<u8>, DecodeError> {
        self.take(n, what)?;
        Ok(self.bytes.get(at..self.pos).unwrap_or_default().to_vec())
    }

    fn variable(&mut self, wide: bool, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = if wide {
            self.u32(what)? as usize
        } else {
            usize::from(self.u8(what)?)
        };
        self.take(len, what)
    }

    fn text(&mut self, wide: bool, at: usize, what: &'static str) -> Result<String, DecodeError> {
        let bytes = self.variable(wide, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid {
            what: "UTF-8 in a string or symbol",
            offset: at,
        })
    }

    /// Size and count of a compound, and a reader over exactly its
    /// elements.
    fn compound(
        &mut self,
        wide: bool,
        what: &'static str,
    ) -> Result<(usize, Reader<'a>), DecodeError> {
        let (size, count) = if wide {
            (self.u32(what)? as usize, self.u32(what)? as usize)
        } else {
            (usize::from(self.u8(what)?), usize::from(self.u8(what)?))
        };
        let width = if wide { 4 } else { 1 };
        let body_len = size.checked_sub(width).ok_or(DecodeError::Invalid {
            what: "compound size",
            offset: self.pos,
        })?;
        let body = self.take(body_len, what)?;
        Ok((count, Reader::new(body)))
    }

    fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(DecodeError::Invalid {
                what: match what {
                    "list" => "list: bytes left after its elements",
                    "map" => "map: bytes left after its elements",
                    _ => "array: bytes left after its elements",
                },
                offset: self.pos,
            })
        }
    }

    /// The element constructor and `count` elements of an array.
    fn array_items(&mut self, count: usize, depth: usize) -> Result<(u8, Vec<Value>), DecodeError> {
        let at = self.pos;
        let mut code = self.u8("an array constructor")?;
        let mut descriptor = None;
        if code == 0x00 {
            descriptor = Some(self.value(depth + 1)?);
            code = self.u8("an array constructor")?;
        }
        // Every element takes at least one byte except nulls and the
        // zero-width constants; bound the allocation by the input either way.
        let mut items = Vec::with_capacity(count.min(self.bytes.len()));
        for _ in 0..count {
            let before = self.pos;
            let item = self.body(code, at, depth + 1)?;
            if self.pos == before && items.len() > self.bytes.len() {
                return Err(DecodeError::Invalid {
                    what: "array of zero-width elements longer than its bytes",
                    offset: at,
                });
            }
            items.push(match &descriptor {
                Some(d) => Value::Described(Box::new(d.clone()), Box::new(item)),
                None => item,
            });
        }
        Ok((code, items))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Symbol(s) => write!(f, ":{s}"),
            Value::List(items) | Value::Array(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            Value::Map(pairs) => {
                write!(f, "{{")?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                write!(f, "}}")
            }
            Value::Described(d, v) => write!(f, "@{d} {v}"),
            other => match other.as_int() {
                Some(n) => write!(f, "{n}"),
                None => write!(f, "{other:?}"),
            },
        }
    }
}

/// The transcript notation of encoded bytes: every value as
/// `[format-code, value]` (`["0x54", 5]`), lists as `["0xd0", [..]]`, maps
/// as `["0xd1", [[k, v], ..]]`, arrays as `["0xe0", element-code, [..]]`,
/// described values as `["0x00", descriptor, value]`; binary as hex, uuids
/// as text. Tests compare replies in this form, so a wrong width shows.
pub fn typed(bytes: &[u8]) -> Result<serde_json::Value, DecodeError> {
    let mut reader = Reader::new(bytes);
    let value = typed_value(&mut reader, 0)?;
    if !reader.is_empty() {
        return Err(DecodeError::Invalid {
            what: "trailing bytes after the value",
            offset: reader.pos,
        });
    }
    Ok(value)
}

fn hex_code(code: u8) -> serde_json::Value {
    serde_json::Value::String(format!("0x{code:02x}"))
}

fn typed_value(r: &mut Reader<'_>, depth: usize) -> Result<serde_json::Value, DecodeError> {
    use serde_json::{json, Value as Json};
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let at = r.pos;
    let code = r.u8("a format code")?;
    Ok(match code {
        0x00 => {
            let descriptor = typed_value(r, depth + 1)?;
            let value = typed_value(r, depth + 1)?;
            json!(["0x00", descriptor, value])
        }
        0x45 => json!([hex_code(code), []]),
        0xc0 | 0xd0 => {
            let (count, mut inner) = r.compound(code == 0xd0, "list")?;
            let items = (0..count)
                .map(|_| typed_value(&mut inner, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            inner.finish("list")?;
            json!([hex_code(code), items])
        }
        0xc1 | 0xd1 => {
            let (count, mut inner) = r.compound(code == 0xd1, "map")?;
            let mut pairs = Vec::new();
            for _ in 0..count / 2 {
                let k = typed_value(&mut inner, depth + 1)?;
                let v = typed_value(&mut inner, depth + 1)?;
                pairs.push(json!([k, v]));
            }
            inner.finish("map")?;
            json!([hex_code(code), pairs])
        }
        0xe0 | 0xf0 => {
            let (count, mut inner) = r.compound(code == 0xf0, "array")?;
            let element = inner.bytes.first().copied().unwrap_or(0x40);
            let (_, items) = inner.array_items(count, depth)?;
            inner.finish("array")?;
            let items: Vec<Json> = items.iter().map(plain).collect();
            json!([hex_code(code), hex_code(element), items])
        }
        _ => {
            let value = r.body(code, at, depth)?;
            json!([hex_code(code), plain(&value)])
        }
    })
}

/// A scalar's value in the transcript notation (no type).
pub fn plain(v: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Float(f) => serde_json::Number::from_f64(f64::from(*f))
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Double(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Char(c) => Json::String(c.to_string()),
        Value::Timestamp(t) => Json::from(*t),
        Value::Uuid(u) => Json::String(uuid_text(u)),
        Value::Binary(b) | Value::Raw(b) => Json::String(hex(b)),
        Value::String(s) | Value::Symbol(s) => Json::String(s.clone()),
        Value::List(items) | Value::Array(items) => Json::Array(items.iter().map(plain).collect()),
        Value::Map(pairs) => Json::Array(
            pairs
                .iter()
                .map(|(k, v)| Json::Array(vec![plain(k), plain(v)]))
                .collect(),
        ),
        Value::Described(d, v) => Json::Array(vec![plain(d), plain(v)]),
        other => other.as_int().map_or(Json::Null, int_json),
    }
}

/// An integer of any AMQP width as a JSON number (null past u64).
pub fn int_json(n: i128) -> serde_json::Value {
    i64::try_from(n)
        .map(serde_json::Value::from)
        .or_else(|_| u64::try_from(n).map(serde_json::Value::from))
        .unwrap_or(serde_json::Value::Null)
}

/// JSON for a value, as management entities are compared: integers of
/// every width are numbers, strings, symbols and chars are strings,
/// binaries are (lossy UTF-8) strings, timestamps are milliseconds, uuids
/// text, described values their value, maps objects whose non-string keys
/// are written as their JSON text (vanflow's uint keys: `Uint(19)` is
/// `"19"`), and raw encodings their hex bytes.
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Value::Binary(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(items) | Value::Array(items) => {
            Json::Array(items.iter().map(to_json).collect())
        }
        Value::Map(pairs) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| (key_text(k), to_json(v)))
                .collect(),
        ),
        Value::Described(_, v) => to_json(v),
        other => plain(other),
    }
}

/// The text of a map key: strings and symbols as they are, anything else
/// as its JSON text.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) | Value::Symbol(s) => s.clone(),
        other => to_json(other).to_string(),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn uuid_text(u: &[u8; 16]) -> String {
    let h = hex(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round(v: Value) -> Vec<u8> {
        let bytes = v.encode();
        assert_eq!(Value::decode(&bytes).unwrap(), v, "{bytes:02x?}");
        bytes
    }

    #[test]
    fn integers_take_proton_widths() {
        assert_eq!(round(Value::Int(1)), [0x54, 1]);
        assert_eq!(round(Value::Int(200)), [0x71, 0, 0, 0, 200]);
        assert_eq!(round(Value::Int(-1)), [0x54, 0xff]);
        assert_eq!(round(Value::Long(0)), [0x55, 0]);
        assert_eq!(round(Value::Ulong(0)), [0x44]);
        assert_eq!(round(Value::Ulong(1)), [0x53, 1]);
        assert_eq!(round(Value::Ulong(5_000_000_000))[0], 0x80);
        assert_eq!(round(Value::Uint(0)), [0x43]);
        assert_eq!(round(Value::Uint(40)), [0x52, 40]);
        assert_eq!(round(Value::Uint(400))[0], 0x70);
    }

    #[test]
    fn compounds_are_32_bit_and_empty_lists_list0() {
        assert_eq!(round(Value::List(vec![])), [0x45]);
        let header = Value::described(0x70, Value::List(vec![Value::Bool(false)]));
        assert_eq!(
            round(header),
            [0x00, 0x53, 0x70, 0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x42]
        );
        assert_eq!(round(Value::Map(vec![])), [0xd1, 0, 0, 0, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn short_and_narrow_encodings_decode_too() {
        // list8 [smallint 1, str8 "a"], map8 {sym8 v: smalluint 1}
        let list8 = [0xc0, 0x06, 0x02, 0x54, 0x01, 0xa1, 0x01, b'a'];
        assert_eq!(
            Value::decode(&list8).unwrap(),
            Value::List(vec![Value::Int(1), Value::str("a")])
        );
        let map8 = [0xc1, 0x06, 0x02, 0xa3, 0x01, b'v', 0x52, 0x01];
        assert_eq!(
            Value::decode(&map8).unwrap(),
            Value::Map(vec![(Value::sym("v"), Value::Uint(1))])
        );
        // array8 of sym8: ANONYMOUS
        let arr = [
            0xe0, 0x0c, 0x01, 0xa3, 0x09, b'A', b'N', b'O', b'N', b'Y', b'M', b'O', b'U', b'S',
        ];
        assert_eq!(
            Value::decode(&arr).unwrap(),
            Value::Array(vec![Value::sym("ANONYMOUS")])
        );
    }

    #[test]
    fn arrays_round_trip() {
        round(Value::Array(vec![
            Value::sym("ANONYMOUS-RELAY"),
            Value::sym("qd.streaming-links"),
        ]));
        round(Value::Array(vec![Value::Uint(1), Value::Uint(70000)]));
        round(Value::Array(vec![]));
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        for bytes in [
            &[0xd0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0xa1, 0x05, b'a'],
            &[0xf0, 0, 0, 0, 5, 0x7f, 0xff, 0xff, 0xff, 0x40],
            &[0xc1, 0x03, 0x01, 0x40, 0x40],
            &[0xa1, 0x02, 0xff, 0xfe],
            &[0x00],
            &[0x99],
        ] {
            assert!(Value::decode(bytes).is_err(), "{bytes:02x?}");
        }
        let mut deep = vec![0xc0u8; 0];
        for _ in 0..100 {
            deep.extend([0x00, 0x53, 0x01]);
        }
        deep.push(0x40);
        assert_eq!(Value::decode(&deep), Err(DecodeError::TooDeep));
    }

    #[test]
    fn typed_notation_keeps_format_codes() {
        let bytes = [0x00, 0x53, 0x70, 0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x42];
        assert_eq!(
            typed(&bytes).unwrap(),
            serde_json::json!(["0x00", ["0x53", 112], ["0xd0", [["0x42", false]]]])
        );
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u32>().prop_map(Value::Uint),
            any::<u64>().prop_map(Value::Ulong),
            any::<i32>().prop_map(Value::Int),
            any::<i64>().prop_map(Value::Long),
            any::<i16>().prop_map(Value::Short),
            ".{0,300}".prop_map(Value::String),
            "[a-z.]{0,20}".prop_map(Value::Symbol),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Binary),
            any::<[u8; 16]>().prop_map(Value::Uuid),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
                proptest::collection::vec((inner.clone(), inner.clone()), 0..6)
                    .prop_map(Value::Map),
                (any::<u8>(), inner).prop_map(|(c, v)| Value::described(u64::from(c), v)),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_value_round_trips(v in arb_value()) {
            let bytes = v.encode();
            prop_assert_eq!(Value::decode(&bytes).unwrap(), v);
            prop_assert!(typed(&bytes).is_ok());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Value::decode(&bytes);
            let _ = typed(&bytes);
        }
    }
}
