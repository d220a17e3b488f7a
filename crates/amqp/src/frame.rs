//! Frames and performatives (AMQP 1.0 part 2.3 and 2.7, SASL part 5.3).
//!
//! A performative is a described list; the structs below hold the fields
//! skupperd and the router double act on and keep everything else out.
//! Decoding is lenient in what it accepts for a field's type (any integer
//! width, string or symbol) and strict in what it needs (a transfer
//! without a handle is an error, never a default).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{Reader, Value};
use crate::Error;

/// The AMQP protocol header (part 2.2).
pub const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";
/// The SASL protocol header (part 5.3.1).
pub const SASL_HEADER: [u8; 8] = *b"AMQP\x03\x01\x00\x00";
pub const AMQP_FRAME: u8 = 0;
pub const SASL_FRAME: u8 = 1;
/// Frames before `open` settles a size may be at most this big (part 2.4.1).
pub const MIN_MAX_FRAME_SIZE: u32 = 512;

/// One frame as read: the channel, the performative (none for an empty
/// heartbeat frame) and whatever payload follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub frame_type: u8,
    pub channel: u16,
    pub body: Option<Value>,
    pub payload: Vec<u8>,
}

/// Reads one frame no bigger than `max_size`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: u32,
) -> Result<Frame, Error> {
    let mut head = [0u8; 8];
    reader
        .read_exact(&mut head)
        .await
        .map_err(Error::io("reading a frame"))?;
    let [s0, s1, s2, s3, doff, frame_type, c0, c1] = head;
    let size = u32::from_be_bytes([s0, s1, s2, s3]);
    let body_start = usize::from(doff) * 4;
    if size > max_size.max(MIN_MAX_FRAME_SIZE) || body_start < 8 || (size as usize) < body_start {
        return Err(Error::Protocol(format!(
            "bad frame header {head:02x?} (size {size}, largest accepted {max_size})"
        )));
    }
    let mut rest = vec![0u8; size as usize - 8];
    reader
        .read_exact(&mut rest)
        .await
        .map_err(Error::io("reading a frame"))?;
    let body = rest.get(body_start - 8..).unwrap_or_default();
    let channel = u16::from_be_bytes([c0, c1]);
    if body.is_empty() {
        return Ok(Frame {
            frame_type,
            channel,
            body: None,
            payload: Vec::new(),
        });
    }
    let mut r = Reader::new(body);
    let performative = r
        .next_value()
        .map_err(|e| Error::Protocol(format!("undecodable performative: {e}")))?;
    let payload = body.get(r.position()..).unwrap_or_default().to_vec();
    Ok(Frame {
        frame_type,
        channel,
        body: Some(performative),
        payload,
    })
}

/// Encodes one frame.
pub fn encode_frame(frame_type: u8, channel: u16, body: Option<&Value>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0, 2, frame_type];
    out.extend(channel.to_be_bytes());
    if let Some(body) = body {
        body.encode_into(&mut out);
    }
    out.extend(payload);
    let size = u32::try_from(out.len()).unwrap_or(u32::MAX).to_be_bytes();
    out[..4].copy_from_slice(&size);
    out
}

pub async fn write_all<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> Result<(), Error> {
    writer
        .write_all(bytes)
        .await
        .map_err(Error::io("writing"))?;
    writer.flush().await.map_err(Error::io("writing"))
}

/// Writes our protocol header and checks the peer's.
pub async fn exchange_header<S>(stream: &mut S, header: [u8; 8]) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    write_all(stream, &header).await?;
    expect_header(stream, header).await
}

pub async fn expect_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    header: [u8; 8],
) -> Result<(), Error> {
    let mut got = [0u8; 8];
    stream
        .read_exact(&mut got)
        .await
        .map_err(Error::io("reading the protocol header"))?;
    if got == header {
        Ok(())
    } else {
        Err(Error::Protocol(format!(
            "expected protocol header {:?}, got {:?}",
            String::from_utf8_lossy(&header),
            String::from_utf8_lossy(&got)
        )))
    }
}

/// Field `i` of a performative's list, absent when null.
fn field(fields: &[Value], i: usize) -> Option<&Value> {
    fields.get(i).filter(|v| !v.is_null())
}

fn u32_field(fields: &[Value], i: usize) -> Option<u32> {
    field(fields, i).and_then(Value::as_u32)
}

fn bool_field(fields: &[Value], i: usize) -> bool {
    field(fields, i).and_then(Value::as_bool).unwrap_or(false)
}

fn text_field(fields: &[Value], i: usize) -> Option<String> {
    field(fields, i).and_then(Value::as_str).map(String::from)
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map_or(Value::Null, f)
}

fn performative(code: u64, fields: Vec<Value>) -> Value {
    let end = fields
        .iter()
        .rposition(|v| !v.is_null())
        .map_or(0, |i| i + 1);
    let mut fields = fields;
    fields.truncate(end);
    Value::described(code, Value::List(fields))
}

/// `(code, fields)` of a described list.
pub fn split(body: &Value) -> Option<(u64, &[Value])> {
    let (code, inner) = body.descriptor()?;
    match inner {
        Value::List(fields) => Some((code, fields)),
        _ => None,
    }
}

/// A link's source or target. Both lists start `address, durable,
/// expiry-policy, timeout, dynamic`, which is all that is read here; the
/// other fields are kept as sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Terminus {
    pub fields: Vec<Value>,
}

impl Terminus {
    pub fn address(address: &str) -> Terminus {
        Terminus {
            fields: vec![Value::str(address)],
        }
    }

    pub fn dynamic() -> Terminus {
        Terminus {
            fields: vec![
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Bool(true),
            ],
        }
    }

    pub fn get_address(&self) -> Option<&str> {
        field(&self.fields, 0).and_then(Value::as_str)
    }

    pub fn set_address(&mut self, address: &str) {
        if self.fields.is_empty() {
            self.fields.push(Value::Null);
        }
        self.fields[0] = Value::str(address);
    }

    pub fn is_dynamic(&self) -> bool {
        bool_field(&self.fields, 4)
    }

    fn encode(&self, code: u64) -> Value {
        performative(code, self.fields.clone())
    }

    fn decode(v: Option<&Value>) -> Option<Terminus> {
        let (_, fields) = split(v?)?;
        Some(Terminus {
            fields: fields.to_vec(),
        })
    }
}

pub const SOURCE: u64 = 0x28;
pub const TARGET: u64 = 0x29;
pub const ACCEPTED: u64 = 0x24;
pub const REJECTED: u64 = 0x25;
pub const RELEASED: u64 = 0x26;
pub const MODIFIED: u64 = 0x27;

/// The `accepted` outcome.
pub fn accepted() -> Value {
    Value::described(ACCEPTED, Value::List(Vec::new()))
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Open {
    pub container_id: String,
    pub hostname: Option<String>,
    pub max_frame_size: Option<u32>,
    pub channel_max: Option<u16>,
    /// Milliseconds.
    pub idle_time_out: Option<u32>,
    pub offered_capabilities: Value,
    pub desired_capabilities: Value,
    pub properties: Value,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Begin {
    pub remote_channel: Option<u16>,
    pub next_outgoing_id: u32,
    pub incoming_window: u32,
    pub outgoing_window: u32,
    pub handle_max: Option<u32>,
}

/// Link roles: the spec encodes receiver as `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender,
    Receiver,
}

impl Role {
    fn encode(self) -> Value {
        Value::Bool(self == Role::Receiver)
    }

    fn decode(v: bool) -> Role {
        if v {
            Role::Receiver
        } else {
            Role::Sender
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attach {
    pub name: String,
    pub handle: u32,
    pub role: Role,
    /// 0 unsettled, 1 settled, 2 mixed.
    pub snd_settle_mode: Option<u8>,
    pub rcv_settle_mode: Option<u8>,
    pub source: Option<Terminus>,
    pub target: Option<Terminus>,
    pub initial_delivery_count: Option<u32>,
    pub max_message_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flow {
    pub next_incoming_id: Option<u32>,
    pub incoming_window: u32,
    pub next_outgoing_id: u32,
    pub outgoing_window: u32,
    pub handle: Option<u32>,
    pub delivery_count: Option<u32>,
    pub link_credit: Option<u32>,
    pub drain: bool,
    pub echo: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transfer {
    pub handle: u32,
    pub delivery_id: Option<u32>,
    pub delivery_tag: Option<Vec<u8>>,
    pub message_format: Option<u32>,
    pub settled: Option<bool>,
    pub more: bool,
    pub state: Option<Value>,
    pub aborted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Disposition {
    pub role: Role,
    pub first: u32,
    pub last: Option<u32>,
    pub settled: bool,
    pub state: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detach {
    pub handle: u32,
    pub closed: bool,
    pub error: Option<Value>,
}

/// Every connection-level performative.
#[derive(Debug, Clone, PartialEq)]
pub enum Performative {
    Open(Open),
    Begin(Begin),
    Attach(Attach),
    Flow(Flow),
    Transfer(Transfer),
    Disposition(Disposition),
    Detach(Detach),
    End(Option<Value>),
    Close(Option<Value>),
}

impl Performative {
    pub fn encode(&self) -> Value {
        match self {
            Performative::Open(o) => performative(
                0x10,
                vec![
                    Value::str(&o.container_id),
                    opt(o.hostname.as_deref(), Value::str),
                    opt(o.max_frame_size, Value::Uint),
                    opt(o.channel_max, Value::Ushort),
                    opt(o.idle_time_out, Value::Uint),
                    Value::Null,
                    Value::Null,
                    o.offered_capabilities.clone(),
                    o.desired_capabilities.clone(),
                    o.properties.clone(),
                ],
            ),
            Performative::Begin(b) => performative(
                0x11,
                vec![
                    opt(b.remote_channel, Value::Ushort),
                    Value::Uint(b.next_outgoing_id),
                    Value::Uint(b.incoming_window),
                    Value::Uint(b.outgoing_window),
                    opt(b.handle_max, Value::Uint),
                ],
            ),
            Performative::Attach(a) => performative(
                0x12,
                vec![
                    Value::str(&a.name),
                    Value::Uint(a.handle),
                    a.role.encode(),
                    opt(a.snd_settle_mode, Value::Ubyte),
                    opt(a.rcv_settle_mode, Value::Ubyte),
                    opt(a.source.as_ref(), |t| t.encode(SOURCE)),
                    opt(a.target.as_ref(), |t| t.encode(TARGET)),
                    Value::Null,
                    Value::Null,
                    opt(a.initial_delivery_count, Value::Uint),
                    opt(a.max_message_size, Value::Ulong),
                ],
            ),
            Performative::Flow(f) => performative(
                0x13,
                vec![
                    opt(f.next_incoming_id, Value::Uint),
                    Value::Uint(f.incoming_window),
                    Value::Uint(f.next_outgoing_id),
                    Value::Uint(f.outgoing_window),
                    opt(f.handle, Value::Uint),
                    opt(f.delivery_count, Value::Uint),
                    opt(f.link_credit, Value::Uint),
                    Value::Null,
                    if f.drain {
                        Value::Bool(true)
                    } else {
                        Value::Null
                    },
                    if f.echo {
                        Value::Bool(true)
                    } else {
                        Value::Null
                    },
                ],
            ),
            Performative::Transfer(t) => performative(
                0x14,
                vec![
                    Value::Uint(t.handle),
                    opt(t.delivery_id, Value::Uint),
                    opt(t.delivery_tag.clone(), Value::Binary),
                    opt(t.message_format, Value::Uint),
                    opt(t.settled, Value::Bool),
                    if t.more {
                        Value::Bool(true)
                    } else {
                        Value::Null
                    },
                    Value::Null,
                    t.state.clone().unwrap_or(Value::Null),
                    Value::Null,
                    if t.aborted {
                        Value::Bool(true)
                    } else {
                        Value::Null
                    },
                ],
            ),
            Performative::Disposition(d) => performative(
                0x15,
                vec![
                    d.role.encode(),
                    Value::Uint(d.first),
                    opt(d.last, Value::Uint),
                    Value::Bool(d.settled),
                    d.state.clone().unwrap_or(Value::Null),
                ],
            ),
            Performative::Detach(d) => performative(
                0x16,
                vec![
                    Value::Uint(d.handle),
                    Value::Bool(d.closed),
                    d.error.clone().unwrap_or(Value::Null),
                ],
            ),
            Performative::End(e) => performative(0x17, vec![e.clone().unwrap_or(Value::Null)]),
            Performative::Close(e) => performative(0x18, vec![e.clone().unwrap_or(Value::Null)]),
        }
    }

    pub fn decode(body: &Value) -> Result<Performative, Error> {
        let bad = |what: &str| Error::Protocol(format!("malformed {what}: {body}"));
        let (code, f) = split(body).ok_or_else(|| bad("performative"))?;
        Ok(match code {
            0x10 => Performative::Open(Open {
                container_id: text_field(f, 0).ok_or_else(|| bad("open"))?,
                hostname: text_field(f, 1),
                max_frame_size: u32_field(f, 2),
                channel_max: field(f, 3)
                    .and_then(Value::as_int)
                    .and_then(|n| u16::try_from(n).ok()),
                idle_time_out: u32_field(f, 4),
                offered_capabilities: field(f, 7).cloned().unwrap_or(Value::Null),
                desired_capabilities: field(f, 8).cloned().unwrap_or(Value::Null),
                properties: field(f, 9).cloned().unwrap_or(Value::Null),
            }),
            0x11 => Performative::Begin(Begin {
                remote_channel: field(f, 0)
                    .and_then(Value::as_int)
                    .and_then(|n| u16::try_from(n).ok()),
                next_outgoing_id: u32_field(f, 1).ok_or_else(|| bad("begin"))?,
                incoming_window: u32_field(f, 2).ok_or_else(|| bad("begin"))?,
                outgoing_window: u32_field(f, 3).ok_or_else(|| bad("begin"))?,
                handle_max: u32_field(f, 4),
            }),
            0x12 => Performative::Attach(Attach {
                name: text_field(f, 0).ok_or_else(|| bad("attach"))?,
                handle: u32_field(f, 1).ok_or_else(|| bad("attach"))?,
                role: Role::decode(
                    field(f, 2)
                        .and_then(Value::as_bool)
                        .ok_or_else(|| bad("attach"))?,
                ),
                snd_settle_mode: field(f, 3)
                    .and_then(Value::as_int)
                    .and_then(|n| u8::try_from(n).ok()),
                rcv_settle_mode: field(f, 4)
                    .and_then(Value::as_int)
                    .and_then(|n| u8::try_from(n).ok()),
                source: Terminus::decode(field(f, 5)),
                target: Terminus::decode(field(f, 6)),
                initial_delivery_count: u32_field(f, 9),
                max_message_size: field(f, 10).and_then(Value::as_u64),
            }),
            0x13 => Performative::Flow(Flow {
                next_incoming_id: u32_field(f, 0),
                incoming_window: u32_field(f, 1).ok_or_else(|| bad("flow"))?,
                next_outgoing_id: u32_field(f, 2).ok_or_else(|| bad("flow"))?,
                outgoing_window: u32_field(f, 3).ok_or_else(|| bad("flow"))?,
                handle: u32_field(f, 4),
                delivery_count: u32_field(f, 5),
                link_credit: u32_field(f, 6),
                drain: bool_field(f, 8),
                echo: bool_field(f, 9),
            }),
            0x14 => Performative::Transfer(Transfer {
                handle: u32_field(f, 0).ok_or_else(|| bad("transfer"))?,
                delivery_id: u32_field(f, 1),
                delivery_tag: match field(f, 2) {
                    Some(Value::Binary(tag)) => Some(tag.clone()),
                    _ => None,
                },
                message_format: u32_field(f, 3),
                settled: field(f, 4).and_then(Value::as_bool),
                more: bool_field(f, 5),
                state: field(f, 7).cloned(),
                aborted: bool_field(f, 9),
            }),
            0x15 => Performative::Disposition(Disposition {
                role: Role::decode(
                    field(f, 0)
                        .and_then(Value::as_bool)
                        .ok_or_else(|| bad("disposition"))?,
                ),
                first: u32_field(f, 1).ok_or_else(|| bad("disposition"))?,
                last: u32_field(f, 2),
                settled: bool_field(f, 3),
                state: field(f, 4).cloned(),
            }),
            0x16 => Performative::Detach(Detach {
                handle: u32_field(f, 0).ok_or_else(|| bad("detach"))?,
                closed: bool_field(f, 1),
                error: field(f, 2).cloned(),
            }),
            0x17 => Performative::End(field(f, 0).cloned()),
            0x18 => Performative::Close(field(f, 0).cloned()),
            other => {
                return Err(Error::Protocol(format!(
                    "unknown performative 0x{other:02x}"
                )))
            }
        })
    }
}

/// The text of an AMQP error (`condition` and `description`).
pub fn error_text(error: &Value) -> String {
    match split(error) {
        Some((_, f)) => {
            let condition = text_field(f, 0).unwrap_or_default();
            match text_field(f, 1) {
                Some(description) => format!("{condition}: {description}"),
                None => condition,
            }
        }
        None => error.to_string(),
    }
}

/// An AMQP error value.
pub fn error_value(condition: &str, description: &str) -> Value {
    performative(0x1d, vec![Value::sym(condition), Value::str(description)])
}

/// SASL frames.
pub const SASL_MECHANISMS: u64 = 0x40;
pub const SASL_INIT: u64 = 0x41;
pub const SASL_OUTCOME: u64 = 0x44;

pub fn sasl_mechanisms(mechanisms: &[&str]) -> Value {
    performative(
        SASL_MECHANISMS,
        vec![Value::Array(
            mechanisms.iter().map(|m| Value::sym(m)).collect(),
        )],
    )
}

pub fn sasl_init(mechanism: &str, initial_response: &[u8]) -> Value {
    performative(
        SASL_INIT,
        vec![
            Value::sym(mechanism),
            Value::Binary(initial_response.to_vec()),
        ],
    )
}

pub fn sasl_outcome(code: u8) -> Value {
    performative(SASL_OUTCOME, vec![Value::Ubyte(code)])
}

/// The mechanisms a `sasl-mechanisms` frame offers (an array, or a single
/// symbol, which the spec's multiple="true" also allows).
pub fn offered_mechanisms(body: &Value) -> Option<Vec<String>> {
    let (code, f) = split(body)?;
    if code != SASL_MECHANISMS {
        return None;
    }
    Some(match field(f, 0)? {
        Value::Array(items) | Value::List(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        single => vec![single.as_str()?.to_string()],
    })
}

/// The mechanism a `sasl-init` frame picks.
pub fn init_mechanism(body: &Value) -> Option<String> {
    let (code, f) = split(body)?;
    (code == SASL_INIT).then(|| text_field(f, 0)).flatten()
}

/// The code of a `sasl-outcome` frame (0 = ok).
pub fn outcome_code(body: &Value) -> Option<u8> {
    let (code, f) = split(body)?;
    (code == SASL_OUTCOME)
        .then(|| {
            field(f, 0)
                .and_then(Value::as_int)
                .and_then(|n| u8::try_from(n).ok())
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn performatives_round_trip() {
        let all = [
            Performative::Open(Open {
                container_id: "c".into(),
                max_frame_size: Some(65536),
                idle_time_out: Some(8000),
                ..Open::default()
            }),
            Performative::Begin(Begin {
                remote_channel: Some(0),
                next_outgoing_id: 0,
                incoming_window: 100,
                outgoing_window: 100,
                handle_max: None,
            }),
            Performative::Attach(Attach {
                name: "l".into(),
                handle: 3,
                role: Role::Receiver,
                snd_settle_mode: None,
                rcv_settle_mode: None,
                source: Some(Terminus::dynamic()),
                target: Some(Terminus::address("x")),
                initial_delivery_count: None,
                max_message_size: None,
            }),
            Performative::Transfer(Transfer {
                handle: 1,
                delivery_id: Some(7),
                delivery_tag: Some(vec![1]),
                message_format: Some(0),
                settled: Some(true),
                more: true,
                ..Transfer::default()
            }),
            Performative::Disposition(Disposition {
                role: Role::Receiver,
                first: 4,
                last: None,
                settled: true,
                state: Some(accepted()),
            }),
            Performative::Detach(Detach {
                handle: 2,
                closed: true,
                error: Some(error_value("amqp:not-found", "no such node")),
            }),
            Performative::Close(None),
        ];
        for p in all {
            assert_eq!(Performative::decode(&p.encode()).unwrap(), p);
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let body = Performative::Close(None).encode();
        let bytes = encode_frame(AMQP_FRAME, 3, Some(&body), b"xyz");
        let frame = read_frame(&mut &bytes[..], 1024).await.unwrap();
        assert_eq!(frame.channel, 3);
        assert_eq!(frame.body, Some(body));
        assert_eq!(frame.payload, b"xyz");
        let heartbeat = encode_frame(AMQP_FRAME, 0, None, &[]);
        assert_eq!(heartbeat, [0, 0, 0, 8, 2, 0, 0, 0]);
        let big = [0u8, 1, 0, 0, 2, 0, 0, 0];
        assert!(read_frame(&mut &big[..], 1024).await.is_err());
    }
}
