//! The AMQP 1.0 management client (router.md 5).
//!
//! One connection, one session, a receiver with a dynamic source whose
//! address is every request's `reply-to`, and a sender to `$management`.
//! Requests go one at a time (the router's agent is serial anyway) and
//! wait at most [`REQUEST_TIMEOUT`] for the answer; a request that times
//! out, an answer that cannot be read, or any link or connection error
//! makes the client `Lost` for good, so the caller reconnects and
//! re-observes instead of guessing what the router did.
//!
//! The correlation-id is a string: the router's Python agent decodes a
//! request's id and encodes it again as the smallest signed integer that
//! holds it (a ulong 1 comes back as smallint 1, a uuid as null), while
//! its C agent copies the bytes. Strings are the one id type both echo
//! byte for byte (transcripts 01-11).

use std::time::Duration;

use skupperd_amqp::message::{CORRELATION_ID, REPLY_TO};
use skupperd_amqp::{Connection, Message, Options, Receiver, Sender, Terminus, Value};
use tokio::net::TcpStream;

use super::value::{map_from_json, map_to_json, to_json};
use super::{full_type, tls, Credentials, Entity, Key, Management, MgmtError, MgmtFuture};

/// How long one request may wait for its answer before the connection
/// counts as lost.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Numbers this process's connections, so each has its own container id.
static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rows asked for per QUERY request.
pub const DEFAULT_PAGE_SIZE: usize = 500;

/// A connected management client. Not `Clone`: one request at a time.
pub struct AmqpManagement {
    connection: Connection,
    sender: Sender,
    receiver: Receiver,
    reply_to: String,
    next_correlation_id: u64,
    page_size: usize,
    timeout: Duration,
    /// Set once the connection is known to be unusable; every later request
    /// fails with this reason without touching the network.
    lost: Option<String>,
}

fn lost(what: &str) -> impl Fn(skupperd_amqp::Error) -> MgmtError + '_ {
    move |e| match e {
        skupperd_amqp::Error::Protocol(p) => MgmtError::Protocol(format!("{what}: {p}")),
        skupperd_amqp::Error::Refused(r) => MgmtError::Protocol(format!("{what}: {r}")),
        other => MgmtError::Lost(format!("{what}: {other}")),
    }
}

/// Connects to the router's management listener on `127.0.0.1:<port>`
/// with mutual TLS and SASL EXTERNAL, and attaches the two links. Every
/// step is bounded by [`REQUEST_TIMEOUT`].
pub async fn connect(port: u16, creds: &Credentials) -> Result<AmqpManagement, MgmtError> {
    let config = tls::client_config(creds)?;
    tokio::time::timeout(REQUEST_TIMEOUT, open(port, config))
        .await
        .map_err(|_| MgmtError::Lost(format!("connecting to 127.0.0.1:{port} timed out")))?
}

async fn open(port: u16, config: rustls::ClientConfig) -> Result<AmqpManagement, MgmtError> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| MgmtError::Lost(format!("connecting to 127.0.0.1:{port}: {e}")))?;
    // Requests are tiny; do not wait for Nagle.
    tcp.set_nodelay(true).ok();
    let mut stream = tls::connect(config, tcp).await?;
    skupperd_amqp::sasl::client(&mut stream, "EXTERNAL", b"")
        .await
        .map_err(lost("SASL EXTERNAL"))?;
    let container_id = format!(
        "skupperd-{}-{}",
        std::process::id(),
        CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let connection = skupperd_amqp::client(stream, Options::new(&container_id))
        .await
        .map_err(lost("opening the AMQP connection"))?;
    let receiver = connection
        .receiver("skupperd-management-replies", Terminus::dynamic())
        .await
        .map_err(lost("attaching the reply receiver"))?;
    let reply_to = receiver
        .address
        .clone()
        .ok_or_else(|| MgmtError::Protocol("the router assigned no reply address".into()))?;
    let sender = connection
        .sender("skupperd-management", "$management")
        .await
        .map_err(lost("attaching the $management sender"))?;
    tracing::debug!(port, %reply_to, "management connection open");
    Ok(AmqpManagement {
        connection,
        sender,
        receiver,
        reply_to,
        next_correlation_id: 1,
        page_size: DEFAULT_PAGE_SIZE,
        timeout: REQUEST_TIMEOUT,
        lost: None,
    })
}

/// An answer: status code, description, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: u16,
    pub description: String,
    pub body: Value,
}

/// Reads a management answer from a delivery's payload exactly as the
/// client does, with its correlation-id (tests decode the real router's
/// recorded answers with this).
pub fn read_answer(payload: &[u8]) -> Result<(Option<Value>, Reply), MgmtError> {
    let message = Message::decode(payload)
        .map_err(|e| MgmtError::Protocol(format!("an answer could not be read: {e}")))?;
    let correlation = message.correlation_id().cloned();
    Ok((correlation, parse_reply(message)?))
}

/// The rows of a QUERY answer's body as entities.
pub fn read_table(body: Value) -> Result<Vec<Entity>, MgmtError> {
    let (names, rows) = parse_table(body)?;
    rows.into_iter()
        .map(|row| row_entity(&names, row))
        .collect()
}

impl AmqpManagement {
    /// Rows per QUERY request (tests use small pages to exercise paging).
    pub fn set_page_size(&mut self, rows: usize) {
        self.page_size = rows.max(1);
    }

    /// The per-request timeout (default [`REQUEST_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The dynamic address the router gave the reply receiver.
    pub fn reply_to(&self) -> &str {
        &self.reply_to
    }

    /// Whether the connection has been found lost.
    pub fn is_lost(&self) -> bool {
        self.lost.is_some() || self.connection.close_reason().is_some()
    }

    /// Starts the vanflow network view (router.md 7) on this connection.
    pub async fn watch_network(&mut self) -> Result<super::vanflow::NetworkWatch, MgmtError> {
        super::vanflow::watch_network(&self.connection).await
    }

    /// Closes the connection politely. Errors are ignored: the peer may
    /// already be gone.
    pub async fn close(self) {
        self.connection.close().await;
    }

    /// Sends one request and waits for its answer.
    async fn request(&mut self, props: &[(&str, Value)], body: Value) -> Result<Reply, MgmtError> {
        if let Some(reason) = &self.lost {
            return Err(MgmtError::Lost(reason.clone()));
        }
        let id = Value::String(self.next_correlation_id.to_string());
        self.next_correlation_id += 1;
        let mut message = Message::with_value(body);
        message.set_property(REPLY_TO, Value::str(&self.reply_to));
        message.set_property(CORRELATION_ID, id.clone());
        message.application_properties = Some(
            props
                .iter()
                .map(|(k, v)| (Value::str(k), v.clone()))
                .collect(),
        );
        let exchange = exchange(&self.sender, &mut self.receiver, &id, message.encode());
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(self.timeout, exchange) => outcome,
            reason = self.connection.closed() => Ok(Err(MgmtError::Lost(reason))),
        };
        match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(MgmtError::Lost(reason))) => {
                self.lost = Some(reason.clone());
                Err(MgmtError::Lost(reason))
            }
            Ok(Err(other)) => Err(other),
            Err(_) => {
                let reason = format!("no answer within {} s", self.timeout.as_secs_f32());
                self.lost = Some(reason.clone());
                Err(MgmtError::Lost(reason))
            }
        }
    }

    async fn checked(
        &mut self,
        success: u16,
        props: &[(&str, Value)],
        body: Value,
    ) -> Result<Value, MgmtError> {
        let reply = self.request(props, body).await?;
        if reply.code == success {
            Ok(reply.body)
        } else {
            Err(MgmtError::Refused {
                code: reply.code,
                description: reply.description,
            })
        }
    }

    /// One QUERY page: attribute names and rows.
    async fn query_page(
        &mut self,
        entity_type: &str,
        attrs: &[&str],
        offset: usize,
        count: usize,
    ) -> Result<(Vec<String>, Vec<Vec<Value>>), MgmtError> {
        let names = Value::List(attrs.iter().map(|a| Value::str(a)).collect());
        let body = Value::Map(vec![(Value::str("attributeNames"), names)]);
        let props = [
            ("operation", Value::str("QUERY")),
            ("entityType", Value::String(full_type(entity_type))),
            ("offset", Value::Int(clamp_int(offset))),
            ("count", Value::Int(clamp_int(count))),
        ];
        let body = self.checked(200, &props, body).await?;
        parse_table(body)
    }

    async fn query_all(
        &mut self,
        entity_type: &str,
        attrs: &[&str],
    ) -> Result<Vec<Entity>, MgmtError> {
        let page_size = self.page_size;
        let mut names: Vec<String>;
        let mut rows: Vec<Vec<Value>> = Vec::new();
        let mut previous: Option<Vec<Vec<Value>>> = None;
        loop {
            let (page_names, page) = self
                .query_page(entity_type, attrs, rows.len(), page_size)
                .await?;
            names = page_names;
            // The Python agent ignores offset/count and answers every row
            // every time (transcript 28): a longer page, or the same page
            // again, ends the read.
            if page.len() > page_size || previous.as_ref() == Some(&page) {
                if page.len() > page_size {
                    rows = page;
                }
                break;
            }
            let last = page.len() < page_size;
            rows.extend(page.iter().cloned());
            previous = Some(page);
            if last {
                break;
            }
        }
        rows.into_iter()
            .map(|row| row_entity(&names, row))
            .collect()
    }
}

/// Sends one request and reads answers until the one for `id` arrives.
/// The request goes unsettled; the router's disposition may come before
/// or after its answer (transcripts), so it is only watched for a refusal.
async fn exchange(
    sender: &Sender,
    receiver: &mut Receiver,
    id: &Value,
    payload: Vec<u8>,
) -> Result<Reply, MgmtError> {
    let outcome = sender
        .send(payload, false)
        .map_err(|e| MgmtError::Lost(format!("sending the request: {e}")))?;
    let refused = async {
        match outcome.state().await {
            Some(state) => match state.descriptor() {
                Some((code, _)) if code == skupperd_amqp::frame::ACCEPTED => {
                    std::future::pending().await
                }
                _ => state,
            },
            // The connection ended: the receive side says so.
            None => std::future::pending().await,
        }
    };
    tokio::pin!(refused);
    loop {
        let delivery = tokio::select! {
            delivery = receiver.recv() => delivery.ok_or_else(|| {
                MgmtError::Lost("the reply link ended".into())
            })?,
            state = &mut refused => {
                return Err(MgmtError::Protocol(format!("$management did not accept the request: {state}")));
            }
        };
        let message = Message::decode(&delivery.payload)
            .map_err(|e| MgmtError::Lost(format!("an answer could not be read: {e}")))?;
        if message.correlation_id() != Some(id) {
            // A late answer to a request that timed out: not ours.
            tracing::debug!(
                correlation = ?message.correlation_id(),
                expected = %id,
                "ignoring unmatched management answer"
            );
            continue;
        }
        return parse_reply(message);
    }
}

fn clamp_int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn key_prop(key: Key<'_>) -> (&'static str, Value) {
    match key {
        Key::Name(name) => ("name", Value::str(name)),
        Key::Identity(identity) => ("identity", Value::str(identity)),
    }
}

fn parse_reply(message: Message) -> Result<Reply, MgmtError> {
    let code = message
        .application_property("statusCode")
        .and_then(Value::as_int)
        .and_then(|c| u16::try_from(c).ok())
        .ok_or_else(|| MgmtError::Protocol("answer without a valid statusCode".into()))?;
    let description = message
        .application_property("statusDescription")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let body = match message.body {
        skupperd_amqp::Body::Value(v) => v,
        skupperd_amqp::Body::None => Value::Null,
        skupperd_amqp::Body::Data(_) | skupperd_amqp::Body::Sequence(_) => {
            return Err(MgmtError::Protocol(
                "answer body is not an AMQP value".into(),
            ))
        }
    };
    Ok(Reply {
        code,
        description,
        body,
    })
}

/// The body of a CREATE/UPDATE/READ answer as an entity.
pub fn entity_body(body: Value) -> Result<Entity, MgmtError> {
    match body {
        Value::Map(pairs) => Ok(map_to_json(&pairs)),
        Value::Null => Ok(Entity::new()),
        other => Err(MgmtError::Protocol(format!(
            "answer body is not a map: {other}"
        ))),
    }
}

/// `{attributeNames: [..], results: [[..], ..]}` from a QUERY answer.
fn parse_table(body: Value) -> Result<(Vec<String>, Vec<Vec<Value>>), MgmtError> {
    let bad = |what: &str| MgmtError::Protocol(format!("QUERY answer: {what}"));
    let Value::Map(pairs) = body else {
        return Err(bad("body is not a map"));
    };
    let mut names = None;
    let mut rows = Vec::new();
    for (k, v) in pairs {
        match (k.as_str(), v) {
            (Some("attributeNames"), Value::List(n) | Value::Array(n)) => names = Some(n),
            (Some("results"), Value::List(r) | Value::Array(r)) => rows = r,
            (Some("results"), Value::Null) => {}
            (Some("results"), _) => return Err(bad("results is not a list")),
            _ => {}
        }
    }
    let names = names
        .ok_or_else(|| bad("no attributeNames list"))?
        .iter()
        .map(|n| {
            n.as_str()
                .map(String::from)
                .ok_or_else(|| bad("an attribute name is not a string"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows = rows
        .into_iter()
        .map(|row| match row {
            Value::List(values) | Value::Array(values) => Ok(values),
            _ => Err(bad("a row is not a list")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((names, rows))
}

fn row_entity(names: &[String], row: Vec<Value>) -> Result<Entity, MgmtError> {
    if row.len() != names.len() {
        return Err(MgmtError::Protocol(format!(
            "QUERY answer: a row has {} values for {} attributes",
            row.len(),
            names.len()
        )));
    }
    Ok(names.iter().cloned().zip(row.iter().map(to_json)).collect())
}

impl Management for AmqpManagement {
    fn query<'a>(
        &'a mut self,
        entity_type: &'a str,
        attrs: &'a [&'a str],
    ) -> MgmtFuture<'a, Vec<Entity>> {
        Box::pin(self.query_all(entity_type, attrs))
    }

    fn attribute_names<'a>(&'a mut self, entity_type: &'a str) -> MgmtFuture<'a, Vec<String>> {
        Box::pin(async move {
            let (names, _) = self.query_page(entity_type, &[], 0, 1).await?;
            Ok(names)
        })
    }

    fn create<'a>(
        &'a mut self,
        entity_type: &'a str,
        name: &'a str,
        attrs: &'a Entity,
    ) -> MgmtFuture<'a, Entity> {
        Box::pin(async move {
            let props = [
                ("operation", Value::str("CREATE")),
                ("type", Value::String(full_type(entity_type))),
                ("name", Value::str(name)),
            ];
            let body = self
                .checked(201, &props, Value::Map(map_from_json(attrs)))
                .await?;
            entity_body(body)
        })
    }

    fn update<'a>(
        &'a mut self,
        entity_type: &'a str,
        key: Key<'a>,
        attrs: &'a Entity,
    ) -> MgmtFuture<'a, Entity> {
        Box::pin(async move {
            let props = [
                ("operation", Value::str("UPDATE")),
                ("type", Value::String(full_type(entity_type))),
                key_prop(key),
            ];
            let body = self
                .checked(200, &props, Value::Map(map_from_json(attrs)))
                .await?;
            entity_body(body)
        })
    }

    fn delete<'a>(&'a mut self, entity_type: &'a str, key: Key<'a>) -> MgmtFuture<'a, ()> {
        Box::pin(async move {
            let props = [
                ("operation", Value::str("DELETE")),
                ("type", Value::String(full_type(entity_type))),
                key_prop(key),
            ];
            self.checked(204, &props, Value::Map(Vec::new())).await?;
            Ok(())
        })
    }

    fn read<'a>(&'a mut self, entity_type: &'a str, key: Key<'a>) -> MgmtFuture<'a, Entity> {
        Box::pin(async move {
            let props = [
                ("operation", Value::str("READ")),
                ("type", Value::String(full_type(entity_type))),
                key_prop(key),
            ];
            let body = self.checked(200, &props, Value::Map(Vec::new())).await?;
            entity_body(body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::str(v)
    }

    #[test]
    fn query_rows_pair_values_with_attribute_names() {
        let body = Value::Map(vec![
            (
                s("attributeNames"),
                Value::List(vec![s("name"), s("port"), s("operStatus")]),
            ),
            (
                s("results"),
                Value::List(vec![
                    Value::List(vec![s("listener/a"), s("8080"), s("up")]),
                    Value::List(vec![s("listener/b"), s("9090"), Value::Null]),
                ]),
            ),
        ]);
        let (names, rows) = parse_table(body).unwrap();
        let entities: Vec<Entity> = rows
            .into_iter()
            .map(|r| row_entity(&names, r).unwrap())
            .collect();
        assert_eq!(entities[0]["port"], "8080");
        assert_eq!(entities[1]["operStatus"], serde_json::Value::Null);
        assert_eq!(entities[0]["name"], "listener/a");
        assert_eq!(entities[1]["name"], "listener/b");
    }

    #[test]
    fn a_row_of_the_wrong_length_is_a_protocol_error() {
        let err = row_entity(&["a".into(), "b".into()], vec![s("x")]).unwrap_err();
        assert!(matches!(err, MgmtError::Protocol(_)), "{err:?}");
    }

    #[test]
    fn an_answer_without_status_code_is_a_protocol_error() {
        assert!(matches!(
            parse_reply(Message::default()),
            Err(MgmtError::Protocol(_))
        ));
    }

    #[test]
    fn status_codes_of_any_integer_width_are_read() {
        let message = Message {
            application_properties: Some(vec![
                (s("statusCode"), Value::Uint(404)),
                (s("statusDescription"), s("No entity with name=listener/rt")),
            ]),
            ..Message::default()
        };
        let reply = parse_reply(message).unwrap();
        assert_eq!(reply.code, 404);
        assert_eq!(reply.description, "No entity with name=listener/rt");
    }
}
