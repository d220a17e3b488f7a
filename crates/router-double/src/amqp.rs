//! The double's AMQP side: mutual TLS, SASL EXTERNAL, dynamic reply
//! addresses and the `$management` node.
//!
//! The router's management listener (`skupper-local-normal`) requires a
//! client certificate and offers only EXTERNAL, so the double does the
//! same: a client without a certificate fails the TLS handshake. Replies
//! are routed by `reply-to` to the sender link whose dynamic source got
//! that address, and go out pre-settled, as the router's do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAcceptor,
    SessionAcceptor,
};
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::definitions::Role;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties, Source, TargetArchetype,
};
use fe2o3_amqp::types::primitives::{Array, OrderedMap, SimpleValue, Symbol, Value};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde_json::Value as Json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::table::{Answer, Reply, Request};
use crate::{apply, lock, vanflow, DoubleError, Shared};

/// A TLS acceptor that presents the server certificate and requires a
/// client certificate signed by `client_ca_pem`.
pub(crate) fn tls_acceptor(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<TlsAcceptor, DoubleError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| DoubleError::Tls(format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("server certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad("server key", &e))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem) {
        roots
            .add(ca.map_err(|e| bad("client CA", &e))?)
            .map_err(|e| bad("client CA", &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad("client verifier", &e))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad("server certificate and key", &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// SASL EXTERNAL only: the identity is the TLS client certificate, which
/// the TLS layer has already required and verified.
#[derive(Debug, Clone)]
struct External;

impl SaslAcceptor for External {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![Symbol::from("EXTERNAL")])
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        let code = if init.mechanism.0 == "EXTERNAL" {
            SaslCode::Ok
        } else {
            SaslCode::Auth
        };
        SaslServerFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        })
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        SaslServerFrame::Outcome(SaslOutcome {
            code: SaslCode::Auth,
            additional_data: None,
        })
    }
}

/// Accepts management connections until `shutdown` turns true; then every
/// connection is dropped (which sends AMQP close).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let temp = Arc::new(AtomicU64::new(0));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                // Replies are small: without this, Nagle and delayed ACKs
                // add ~40 ms to every request.
                tcp.set_nodelay(true).ok();
                let (tls, shared, temp) = (tls.clone(), shared.clone(), temp.clone());
                connections.spawn(async move {
                    if let Err(e) = connection(tcp, tls, shared, temp).await {
                        tracing::info!("management connection ended: {e}");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.shutdown().await;
}

async fn connection(
    tcp: TcpStream,
    tls: TlsAcceptor,
    shared: Shared,
    temp: Arc<AtomicU64>,
) -> Result<(), String> {
    let stream = tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let acceptor = ConnectionAcceptor::builder()
        .container_id("router-double")
        .sasl_acceptor(External)
        .build();
    let mut connection = acceptor
        .accept(stream)
        .await
        .map_err(|e| format!("AMQP open failed: {e}"))?;
    let mut sessions = JoinSet::new();
    while let Some(incoming) = connection.next_incoming_session().await {
        let session = SessionAcceptor::new()
            .accept_incoming_session(incoming, &mut connection)
            .await
            .map_err(|e| format!("session begin failed: {e}"))?;
        sessions.spawn(links(session, shared.clone(), temp.clone()));
    }
    Ok(())
}

/// Accepts the links of one session and starts a task per useful link.
async fn links(mut session: ListenerSessionHandle, shared: Shared, temp: Arc<AtomicU64>) {
    let mut tasks = JoinSet::new();
    while let Some(attach) = session.next_incoming_attach().await {
        let dynamic = attach.source.as_ref().is_some_and(|s| s.dynamic);
        let source = attach.source.as_ref().and_then(|s| s.address.clone());
        let target = match attach.target.as_deref() {
            Some(TargetArchetype::Target(t)) => t.address.clone(),
            _ => None,
        };
        let endpoint = if attach.role == Role::Receiver && dynamic {
            let address = format!(
                "amqp:/_topo/0/router-double/temp.{}",
                temp.fetch_add(1, Ordering::Relaxed)
            );
            let assigned = address.clone();
            let acceptor = LinkAcceptor::builder()
                .on_dynamic_source(move |mut s: Source| {
                    s.address = Some(assigned.clone());
                    Some(s)
                })
                .build();
            acceptor
                .accept_incoming_attach(attach, &mut session)
                .await
                .map(|e| (e, Some(address)))
        } else {
            LinkAcceptor::new()
                .accept_incoming_attach(attach, &mut session)
                .await
                .map(|e| (e, None))
        };
        match endpoint {
            Ok((LinkEndpoint::Sender(sender), dynamic)) => {
                let address = dynamic.or(source).unwrap_or_default();
                let (tx, rx) = mpsc::channel(64);
                if address == vanflow::BEACONS_ADDRESS {
                    let _ = tx.try_send(vanflow::beacon());
                }
                let id = lock(&shared).add_route(&address, tx);
                tasks.spawn(pump(sender, rx, id, shared.clone()));
            }
            Ok((LinkEndpoint::Receiver(receiver), _)) => {
                let node = match target.as_deref() {
                    Some("$management") => Node::Management,
                    Some(vanflow::DIRECT_ADDRESS) => Node::Flush,
                    _ => Node::Sink,
                };
                tasks.spawn(incoming(receiver, node, shared.clone()));
            }
            Err(e) => tracing::info!("link attach refused: {e}"),
        }
    }
}

/// Sends the messages routed to one sender link, pre-settled.
async fn pump(
    mut sender: Sender,
    mut replies: mpsc::Receiver<Message<AmqpValue<Value>>>,
    id: u64,
    shared: Shared,
) {
    while let Some(message) = replies.recv().await {
        let sendable = Sendable::builder().message(message).settled(true).build();
        if sender.send(sendable).await.is_err() {
            break;
        }
    }
    lock(&shared).routes.retain(|r| r.id != id);
}

/// What a link the client sends on is attached to.
enum Node {
    /// `$management`: requests are answered.
    Management,
    /// The vanflow direct address: FLUSH publishes the records.
    Flush,
    /// Anything else: accepted and dropped.
    Sink,
}

/// Takes messages from a link the client sends on.
async fn incoming(mut receiver: Receiver, node: Node, shared: Shared) {
    while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
        let _ = receiver.accept(&delivery).await;
        let message = delivery.into_message();
        match node {
            Node::Sink => continue,
            Node::Flush => {
                let (records, routes) = {
                    let state = lock(&shared);
                    (
                        vanflow::records(&state.table, &state.remote_listeners),
                        state.routes_to(vanflow::RECORDS_ADDRESS),
                    )
                };
                for route in routes {
                    let _ = route.send(records.clone()).await;
                }
                continue;
            }
            Node::Management if lock(&shared).unresponsive => continue,
            Node::Management => {}
        }
        let properties = message.properties.clone().unwrap_or_default();
        let reply = match decode(message) {
            Ok(request) => apply(&shared, &request),
            Err(description) => Reply {
                code: 400,
                description,
                answer: Answer::Empty,
            },
        };
        let Some(reply_to) = properties.reply_to else {
            continue;
        };
        let message = encode(reply, properties.correlation_id, &reply_to);
        let route = lock(&shared).routes_to(&reply_to).into_iter().next();
        if let Some(route) = route {
            let _ = route.send(message).await;
        }
    }
}

fn decode(message: Message<Body<Value>>) -> Result<Request, String> {
    let props = message.application_properties.unwrap_or_default();
    let text = |k: &str| match props.0.get(k) {
        Some(SimpleValue::String(s)) => Some(s.clone()),
        Some(SimpleValue::Symbol(s)) => Some(s.0.clone()),
        _ => None,
    };
    let number = |k: &str| match props.0.get(k) {
        Some(SimpleValue::Int(n)) => usize::try_from(*n).ok(),
        Some(SimpleValue::Long(n)) => usize::try_from(*n).ok(),
        Some(SimpleValue::Uint(n)) => usize::try_from(*n).ok(),
        Some(SimpleValue::Ulong(n)) => usize::try_from(*n).ok(),
        Some(SimpleValue::String(s)) => s.parse().ok(),
        _ => None,
    };
    let operation = text("operation").ok_or("No operation specified")?;
    let body = match message.body {
        Body::Value(v) => match to_json(&v.0) {
            Json::Object(map) => map,
            _ => Default::default(),
        },
        _ => Default::default(),
    };
    let attribute_names = body
        .get("attributeNames")
        .and_then(Json::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(Request {
        operation,
        entity_type: text("type").or_else(|| text("entityType")),
        name: text("name"),
        identity: text("identity"),
        body,
        attribute_names,
        offset: number("offset").unwrap_or(0),
        count: number("count"),
    })
}

fn encode(
    reply: Reply,
    correlation: Option<MessageId>,
    reply_to: &str,
) -> Message<AmqpValue<Value>> {
    let mut app = ApplicationProperties::default();
    app.0
        .insert("statusCode".into(), SimpleValue::Int(i32::from(reply.code)));
    app.0.insert(
        "statusDescription".into(),
        SimpleValue::String(reply.description),
    );
    let body = match reply.answer {
        Answer::Entity(entity) => map_value(entity.iter().map(|(k, v)| (k.as_str(), v))),
        Answer::Empty => Value::Map(OrderedMap::new()),
        Answer::Table { names, rows } => {
            let rows = rows
                .iter()
                .map(|row| {
                    Value::List(
                        names
                            .iter()
                            .zip(row)
                            .map(|(n, v)| attr_value(n, v))
                            .collect(),
                    )
                })
                .collect();
            let mut map = OrderedMap::new();
            map.insert(
                Value::String("attributeNames".into()),
                Value::List(names.iter().map(|n| Value::String(n.clone())).collect()),
            );
            map.insert(Value::String("results".into()), Value::List(rows));
            Value::Map(map)
        }
    };
    Message::builder()
        .properties(Properties {
            to: Some(reply_to.to_string()),
            correlation_id: correlation,
            ..Default::default()
        })
        .application_properties(app)
        .value(body)
        .build()
}

fn map_value<'a>(entries: impl Iterator<Item = (&'a str, &'a Json)>) -> Value {
    let mut map = OrderedMap::new();
    for (k, v) in entries {
        map.insert(Value::String(k.to_string()), attr_value(k, v));
    }
    Value::Map(map)
}

/// The AMQP value of an attribute. Counters go out as uint32 and other
/// integers as int32 where they fit, because the real router mixes widths
/// and clients must cope.
fn attr_value(name: &str, v: &Json) -> Value {
    let counter = matches!(
        name,
        "subscriberCount" | "remoteCount" | "inProcess" | "containerCount"
    );
    match v {
        Json::Number(n) if counter => n
            .as_u64()
            .and_then(|u| u32::try_from(u).ok())
            .map(Value::Uint)
            .unwrap_or_else(|| from_json(v)),
        _ => from_json(v),
    }
}

fn from_json(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i32::try_from(i).map(Value::Int).unwrap_or(Value::Long(i)),
            (None, Some(u)) => Value::Ulong(u),
            _ => Value::Double(n.as_f64().unwrap_or(0.0).into()),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(from_json).collect()),
        Json::Object(map) => map_value(map.iter().map(|(k, v)| (k.as_str(), v))),
    }
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::Ubyte(n) => Json::from(*n),
        Value::Ushort(n) => Json::from(*n),
        Value::Uint(n) => Json::from(*n),
        Value::Ulong(n) => Json::from(*n),
        Value::Byte(n) => Json::from(*n),
        Value::Short(n) => Json::from(*n),
        Value::Int(n) => Json::from(*n),
        Value::Long(n) => Json::from(*n),
        Value::Double(f) => serde_json::Number::from_f64(f.into_inner())
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::String(s) => Json::String(s.clone()),
        Value::Symbol(s) => Json::String(s.0.clone()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Array(items) => Json::Array(items.0.iter().map(to_json).collect()),
        Value::Map(map) => Json::Object(
            map.iter()
                .filter_map(|(k, v)| match k {
                    Value::String(k) => Some((k.clone(), to_json(v))),
                    Value::Symbol(k) => Some((k.0.clone(), to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Json::Null,
    }
}
