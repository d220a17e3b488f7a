//! The AMQP 1.0 management client (router.md 5).
//!
//! One connection, one session, a receiver with a dynamic source whose
//! address is every request's `reply-to`, and a sender to `$management`.
//! Requests go one at a time (the router's agent is serial anyway), carry an
//! increasing ulong `correlation-id`, and wait at most [`REQUEST_TIMEOUT`]
//! for the answer; a request that times out, or any link or connection
//! error, makes the client `Lost` for good, so the caller reconnects and
//! re-observes instead of guessing what the router did.

use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Message, MessageId, Outcome, Properties, Source,
};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Value};
use fe2o3_amqp::{Connection, Session};
use tokio::net::TcpStream;

use super::value::{map_from_json, map_to_json, to_json};
use super::{full_type, sasl, tls, Credentials, Entity, Key, Management, MgmtError, MgmtFuture};

/// How long one request may wait for its answer before the connection
/// counts as lost.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Numbers this process's connections, so each has its own container id.
static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rows asked for per QUERY request.
pub const DEFAULT_PAGE_SIZE: usize = 500;

/// A connected management client. Not `Clone`: one request at a time.
pub struct AmqpManagement {
    connection: ConnectionHandle<()>,
    session: SessionHandle<()>,
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
    let lost = |what: &str, e: &dyn std::fmt::Display| MgmtError::Lost(format!("{what}: {e}"));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| lost(&format!("connecting to 127.0.0.1:{port}"), &e))?;
    // Requests are tiny; do not wait for Nagle.
    tcp.set_nodelay(true).ok();
    let mut stream = tls::connect(config, tcp).await?;
    sasl::external(&mut stream).await?;
    let mut connection = Connection::builder()
        .container_id(format!(
            "skupperd-{}-{}",
            std::process::id(),
            CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ))
        .open_with_stream(stream)
        .await
        .map_err(|e| lost("opening the AMQP connection", &e))?;
    let mut session = Session::begin(&mut connection)
        .await
        .map_err(|e| lost("beginning the AMQP session", &e))?;
    let receiver = Receiver::builder()
        .name("skupperd-management-replies")
        .source(Source::builder().dynamic(true).build())
        .attach(&mut session)
        .await
        .map_err(|e| lost("attaching the reply receiver", &e))?;
    let reply_to = receiver
        .source()
        .as_ref()
        .and_then(|s| s.address.clone())
        .ok_or_else(|| MgmtError::Protocol("the router assigned no reply address".into()))?;
    let sender = Sender::attach(&mut session, "skupperd-management", "$management")
        .await
        .map_err(|e| lost("attaching the $management sender", &e))?;
    tracing::debug!(port, %reply_to, "management connection open");
    Ok(AmqpManagement {
        connection,
        session,
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
struct Reply {
    code: u16,
    description: String,
    body: Value,
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
        self.lost.is_some()
    }

    /// Starts the vanflow network view (router.md 7) on a second session
    /// of this connection.
    pub async fn watch_network(&mut self) -> Result<super::vanflow::NetworkWatch, MgmtError> {
        super::vanflow::watch_network(&mut self.connection).await
    }

    /// Closes links, session and connection politely. Errors are ignored:
    /// the peer may already be gone.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.sender.close().await;
            let _ = self.receiver.close().await;
            let _ = self.session.end().await;
            let _ = self.connection.close().await;
        })
        .await;
    }

    /// Sends one request and waits for its answer.
    async fn request(
        &mut self,
        props: &[(&str, SimpleValue)],
        body: Value,
    ) -> Result<Reply, MgmtError> {
        if let Some(reason) = &self.lost {
            return Err(MgmtError::Lost(reason.clone()));
        }
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let mut app = ApplicationProperties::default();
        for (k, v) in props {
            app.0.insert((*k).to_string(), v.clone());
        }
        let message = Message::builder()
            .properties(Properties {
                reply_to: Some(self.reply_to.clone()),
                correlation_id: Some(MessageId::Ulong(id)),
                ..Default::default()
            })
            .application_properties(app)
            .value(body)
            .build();
        // The library does not fail a pending delivery when the peer closes
        // the connection, so watch the connection itself as well.
        let exchange = exchange(&mut self.sender, &mut self.receiver, id, message);
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(self.timeout, exchange) => outcome,
            _ = self.connection.on_close() => Ok(Err(MgmtError::Lost(
                "the router closed the connection".into(),
            ))),
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
        props: &[(&str, SimpleValue)],
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
        let names = Value::List(
            attrs
                .iter()
                .map(|a| Value::String((*a).to_string()))
                .collect(),
        );
        let mut body = OrderedMap::new();
        body.insert(Value::String("attributeNames".into()), names);
        let props = [
            ("operation", text("QUERY")),
            ("entityType", text(&full_type(entity_type))),
            ("offset", SimpleValue::Int(clamp_int(offset))),
            ("count", SimpleValue::Int(clamp_int(count))),
        ];
        let body = self.checked(200, &props, Value::Map(body)).await?;
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
            // A router that ignores offset/count answers every row every
            // time: a longer page, or the same page again, ends the read.
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
async fn exchange(
    sender: &mut Sender,
    receiver: &mut Receiver,
    id: u64,
    message: Message<fe2o3_amqp::types::messaging::AmqpValue<Value>>,
) -> Result<Reply, MgmtError> {
    let outcome = sender
        .send(message)
        .await
        .map_err(|e| MgmtError::Lost(format!("sending the request: {e}")))?;
    if !matches!(outcome, Outcome::Accepted(_)) {
        return Err(MgmtError::Protocol(format!(
            "$management did not accept the request: {outcome:?}"
        )));
    }
    loop {
        let delivery = receiver
            .recv::<Body<Value>>()
            .await
            .map_err(|e| MgmtError::Lost(format!("receiving the answer: {e}")))?;
        // Answers arrive pre-settled; accepting is a no-op then, and
        // keeps an unsettled answer from blocking the link otherwise.
        let _ = receiver.accept(&delivery).await;
        let message = delivery.into_message();
        let correlation = message
            .properties
            .as_ref()
            .and_then(|p| p.correlation_id.clone());
        if correlation != Some(MessageId::Ulong(id)) {
            // A late answer to a request that timed out: not ours.
            tracing::debug!(
                ?correlation,
                expected = id,
                "ignoring unmatched management answer"
            );
            continue;
        }
        return parse_reply(message);
    }
}

fn text(s: &str) -> SimpleValue {
    SimpleValue::String(s.to_string())
}

fn clamp_int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn key_prop(key: Key<'_>) -> (&'static str, SimpleValue) {
    match key {
        Key::Name(name) => ("name", text(name)),
        Key::Identity(identity) => ("identity", text(identity)),
    }
}

fn parse_reply(message: Message<Body<Value>>) -> Result<Reply, MgmtError> {
    let props = message.application_properties.as_ref();
    let code = props
        .and_then(|p| p.0.get("statusCode"))
        .and_then(simple_int)
        .and_then(|c| u16::try_from(c).ok())
        .ok_or_else(|| MgmtError::Protocol("answer without a valid statusCode".into()))?;
    let description = match props.and_then(|p| p.0.get("statusDescription")) {
        Some(SimpleValue::String(s)) => s.clone(),
        Some(SimpleValue::Symbol(s)) => s.0.clone(),
        _ => String::new(),
    };
    let body = match message.body {
        Body::Value(v) => v.0,
        Body::Empty => Value::Null,
        Body::Data(_) | Body::Sequence(_) => {
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

fn simple_int(v: &SimpleValue) -> Option<i64> {
    match v {
        SimpleValue::Ubyte(n) => Some(i64::from(*n)),
        SimpleValue::Ushort(n) => Some(i64::from(*n)),
        SimpleValue::Uint(n) => Some(i64::from(*n)),
        SimpleValue::Ulong(n) => i64::try_from(*n).ok(),
        SimpleValue::Byte(n) => Some(i64::from(*n)),
        SimpleValue::Short(n) => Some(i64::from(*n)),
        SimpleValue::Int(n) => Some(i64::from(*n)),
        SimpleValue::Long(n) => Some(*n),
        _ => None,
    }
}

/// The body of a CREATE/UPDATE/READ answer as an entity.
fn entity_body(body: Value) -> Result<Entity, MgmtError> {
    match body {
        Value::Map(map) => Ok(map_to_json(&map)),
        Value::Null => Ok(Entity::new()),
        other => Err(MgmtError::Protocol(format!(
            "answer body is not a map: {other:?}"
        ))),
    }
}

/// `{attributeNames: [..], results: [[..], ..]}` from a QUERY answer.
fn parse_table(body: Value) -> Result<(Vec<String>, Vec<Vec<Value>>), MgmtError> {
    let bad = |what: &str| MgmtError::Protocol(format!("QUERY answer: {what}"));
    let Value::Map(mut map) = body else {
        return Err(bad("body is not a map"));
    };
    let names = match map.swap_remove(&Value::String("attributeNames".into())) {
        Some(Value::List(names)) => names,
        Some(Value::Array(names)) => names.0,
        _ => return Err(bad("no attributeNames list")),
    };
    let names = names
        .iter()
        .map(|n| match to_json(n) {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(bad("an attribute name is not a string")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows = match map.swap_remove(&Value::String("results".into())) {
        Some(Value::List(rows)) => rows,
        Some(Value::Array(rows)) => rows.0,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(bad("results is not a list")),
    };
    let rows = rows
        .into_iter()
        .map(|row| match row {
            Value::List(values) => Ok(values),
            Value::Array(values) => Ok(values.0),
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
                ("operation", text("CREATE")),
                ("type", text(&full_type(entity_type))),
                ("name", text(name)),
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
                ("operation", text("UPDATE")),
                ("type", text(&full_type(entity_type))),
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
                ("operation", text("DELETE")),
                ("type", text(&full_type(entity_type))),
                key_prop(key),
            ];
            self.checked(204, &props, Value::Map(OrderedMap::new()))
                .await?;
            Ok(())
        })
    }

    fn read<'a>(&'a mut self, entity_type: &'a str, key: Key<'a>) -> MgmtFuture<'a, Entity> {
        Box::pin(async move {
            let props = [
                ("operation", text("READ")),
                ("type", text(&full_type(entity_type))),
                key_prop(key),
            ];
            let body = self
                .checked(200, &props, Value::Map(OrderedMap::new()))
                .await?;
            entity_body(body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    #[test]
    fn query_rows_pair_values_with_attribute_names() {
        let mut map = OrderedMap::new();
        map.insert(
            s("attributeNames"),
            Value::List(vec![s("name"), s("port"), s("operStatus")]),
        );
        map.insert(
            s("results"),
            Value::List(vec![
                Value::List(vec![s("listener/a"), s("8080"), s("up")]),
                Value::List(vec![s("listener/b"), s("9090"), Value::Null]),
            ]),
        );
        let (names, rows) = parse_table(Value::Map(map)).unwrap();
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
        let message = Message::builder().body(Body::<Value>::Empty).build();
        assert!(matches!(parse_reply(message), Err(MgmtError::Protocol(_))));
    }

    #[test]
    fn status_codes_of_any_integer_width_are_read() {
        let mut app = ApplicationProperties::default();
        app.0.insert("statusCode".into(), SimpleValue::Uint(404));
        app.0.insert(
            "statusDescription".into(),
            text("No entity with name=listener/rt"),
        );
        let message = Message::builder()
            .application_properties(app)
            .body(Body::<Value>::Empty)
            .build();
        let reply = parse_reply(message).unwrap();
        assert_eq!(reply.code, 404);
        assert_eq!(reply.description, "No entity with name=listener/rt");
    }
}
