//! The double's AMQP side: mutual TLS, SASL EXTERNAL, dynamic reply
//! addresses and the `$management` node, answering with the sections,
//! types and values the real router sends (the transcripts in
//! `shared/reference/router-transcripts`).
//!
//! The router's management listener (`skupper-local-normal`) requires a
//! client certificate and offers only EXTERNAL, so the double does the
//! same: a client without a certificate fails the TLS handshake. Replies
//! are routed by `reply-to` to the sender link whose dynamic source got
//! that address, and go out pre-settled, as the router's do.
//!
//! Two agents answer in the real router, and they encode differently: the
//! C agent (QUERY of `router.address`, `router.link`, `connection`,
//! `router.config.address`) copies the correlation-id and writes
//! `statusDescription` first; the Python agent (everything else) decodes
//! the correlation-id and encodes it again as the smallest signed integer
//! (a uuid becomes null) and writes `statusCode` first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde_json::Value as Json;
use skupperd_amqp::codec::to_json;
use skupperd_amqp::message::{CORRELATION_ID, TO};
use skupperd_amqp::{Connection, IncomingLink, Message, Options, Role, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::table::{short_type, Answer, Reply, Request};
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

/// Accepts management connections until `shutdown` turns true; then every
/// connection is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let temp = Arc::new(AtomicU64::new(0));
    let connections_opened = Arc::new(AtomicU64::new(0));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                // Replies are small: without this, Nagle and delayed ACKs
                // add ~40 ms to every request.
                tcp.set_nodelay(true).ok();
                let conn_id = connections_opened.fetch_add(1, Ordering::Relaxed) + 1;
                let (tls, shared, temp) = (tls.clone(), shared.clone(), temp.clone());
                connections.spawn(async move {
                    if let Err(e) = connection(tcp, tls, shared, temp, conn_id).await {
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

/// The router's `open`: container-id is the router id; frame size, channel
/// limit, idle time-out, capabilities and properties as the real one sends
/// them (transcript 00).
fn router_options(router_id: &str, conn_id: u64) -> Options {
    let capabilities = Value::Array(vec![
        Value::sym("ANONYMOUS-RELAY"),
        Value::sym("qd.streaming-links"),
        Value::sym("qd.connection_trunking"),
    ]);
    let mut options = Options::new(router_id);
    options.max_frame_size = 16384;
    // Advertised as half: the router says 8000 ms.
    options.idle_time_out = Some(Duration::from_millis(16000));
    options.offered_capabilities = capabilities;
    options.properties = Value::Map(vec![
        (Value::sym("product"), Value::str("skupper-router")),
        (Value::sym("version"), Value::str("0.0.0")),
        (
            Value::sym("qd.conn-id"),
            Value::Int(i32::try_from(conn_id).unwrap_or(i32::MAX)),
        ),
    ]);
    options
}

async fn connection(
    tcp: TcpStream,
    tls: TlsAcceptor,
    shared: Shared,
    temp: Arc<AtomicU64>,
    conn_id: u64,
) -> Result<(), String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    skupperd_amqp::sasl::server(&mut stream, &["EXTERNAL"], |m| m == "EXTERNAL")
        .await
        .map_err(|e| format!("SASL failed: {e}"))?;
    let router_id = lock(&shared).table.router_id();
    let (connection, mut incoming) =
        skupperd_amqp::server(stream, router_options(&router_id, conn_id))
            .await
            .map_err(|e| format!("AMQP open failed: {e}"))?;
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            link = incoming.recv() => {
                let Some(link) = link else { break };
                if let Err(e) = accept(&connection, link, &shared, &temp, &router_id, &mut tasks).await {
                    tracing::info!("link attach failed: {e}");
                }
            }
            _ = connection.closed() => break,
        }
    }
    Ok(())
}

async fn accept(
    connection: &Connection,
    link: IncomingLink,
    shared: &Shared,
    temp: &AtomicU64,
    router_id: &str,
    tasks: &mut JoinSet<()>,
) -> Result<(), skupperd_amqp::Error> {
    match link.peer_role() {
        // The peer receives: we send on this link.
        Role::Receiver => {
            let dynamic = link.source().is_some_and(|s| s.is_dynamic());
            let assigned = dynamic.then(|| {
                format!(
                    "amqp:/_topo/0/{router_id}/temp.{}",
                    temp.fetch_add(1, Ordering::Relaxed)
                )
            });
            let sender = connection.accept_sender(link, assigned).await?;
            let address = sender.address().unwrap_or_default().to_string();
            let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
            let id = lock(shared).add_route(&address, tx);
            let shared = shared.clone();
            tasks.spawn(async move {
                while let Some(payload) = rx.recv().await {
                    if sender.send(payload, true).is_err() {
                        break;
                    }
                }
                lock(&shared).routes.retain(|r| r.id != id);
            });
        }
        // The peer sends: we take messages on this link.
        Role::Sender => {
            let target = link
                .target()
                .and_then(|t| t.get_address())
                .unwrap_or_default()
                .to_string();
            let node = if target == "$management" {
                Node::Management
            } else if target == lock(shared).vanflow.direct() {
                Node::Flush
            } else {
                Node::Sink
            };
            let receiver = connection.accept_receiver(link).await?;
            tasks.spawn(incoming(receiver, node, shared.clone()));
        }
    }
    Ok(())
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

/// Takes messages from a link the client sends on (the connection has
/// already accepted and settled each).
async fn incoming(mut receiver: skupperd_amqp::Receiver, node: Node, shared: Shared) {
    while let Some(delivery) = receiver.recv().await {
        let Ok(message) = Message::decode(&delivery.payload) else {
            continue;
        };
        match node {
            Node::Sink => continue,
            Node::Flush => {
                if message.subject() == Some("FLUSH") {
                    vanflow::flush(&shared);
                }
                continue;
            }
            Node::Management if lock(&shared).unresponsive => continue,
            Node::Management => {}
        }
        let Some(reply_to) = message.reply_to().map(String::from) else {
            continue;
        };
        let request = decode(&message);
        let agent = Agent::of(&request);
        let reply = apply(&shared, &request);
        let payload = encode(&reply, agent, message.correlation_id(), &reply_to);
        let route = lock(&shared).routes_to(&reply_to).into_iter().next();
        if let Some(route) = route {
            let _ = route.send(payload).await;
        }
    }
}

/// A request from its message. A request the router cannot make sense of
/// is answered by the table (no operation: 400).
pub(crate) fn decode(message: &Message) -> Request {
    let text = |k: &str| {
        message
            .application_property(k)
            .and_then(Value::as_str)
            .map(String::from)
    };
    let number = |k: &str| {
        message.application_property(k).and_then(|v| match v {
            Value::String(s) => s.parse().ok(),
            other => other.as_int().and_then(|n| usize::try_from(n).ok()),
        })
    };
    let body = match message.value().map(to_json) {
        Some(Json::Object(map)) => map,
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
    Request {
        operation: text("operation").unwrap_or_default(),
        entity_type: text("type").or_else(|| text("entityType")),
        name: text("name"),
        identity: text("identity"),
        body,
        attribute_names,
        offset: number("offset").unwrap_or(0),
        count: number("count"),
    }
}

/// Which of the router's two management agents answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Agent {
    Python,
    C,
}

impl Agent {
    pub(crate) fn of(request: &Request) -> Agent {
        let c_types = [
            "router.address",
            "router.link",
            "connection",
            "router.config.address",
        ];
        let c = request.operation == "QUERY"
            && request
                .entity_type
                .as_deref()
                .map(short_type)
                .is_some_and(|t| c_types.contains(&t.as_str()));
        if c {
            Agent::C
        } else {
            Agent::Python
        }
    }
}

/// The reply message's bytes.
pub(crate) fn encode(
    reply: &Reply,
    agent: Agent,
    correlation: Option<&Value>,
    reply_to: &str,
) -> Vec<u8> {
    let mut message = Message::with_value(body(reply, agent));
    message.header = Some(vec![Value::Bool(false)]);
    message.set_property(TO, Value::str(reply_to));
    let correlation = match (agent, correlation) {
        (_, None) => Value::Null,
        (Agent::C, Some(id)) => id.clone(),
        (Agent::Python, Some(id)) => python_id(id),
    };
    // Six fields, the last one even when null (a uuid id).
    message.set_property(CORRELATION_ID, correlation);
    let code = (Value::str("statusCode"), Value::Int(i32::from(reply.code)));
    let description = (
        Value::str("statusDescription"),
        Value::str(&reply.description),
    );
    message.application_properties = Some(match agent {
        Agent::Python => vec![code, description],
        Agent::C => vec![description, code],
    });
    message.encode()
}

/// The Python agent's echo of a correlation-id: integers come back as the
/// smallest signed type that holds them (a ulong above i64::MAX wraps, as
/// the agent's encoding of it does), uuids as null, the rest unchanged.
pub(crate) fn python_id(id: &Value) -> Value {
    match id {
        Value::Uuid(_) => Value::Null,
        Value::Ulong(n) => python_int(i64::from_ne_bytes(n.to_ne_bytes())),
        other => match other.as_int().and_then(|n| i64::try_from(n).ok()) {
            Some(n) => python_int(n),
            None => other.clone(),
        },
    }
}

fn python_int(n: i64) -> Value {
    i32::try_from(n).map(Value::Int).unwrap_or(Value::Long(n))
}

/// The C agent's empty list: a `list32` with no elements, where proton
/// (and so the Python agent) writes `list0`.
fn c_empty_list() -> Value {
    Value::Raw(vec![0xd0, 0, 0, 0, 4, 0, 0, 0, 0])
}

fn body(reply: &Reply, agent: Agent) -> Value {
    match &reply.answer {
        Answer::Entity(entity) => Value::Map(
            entity
                .iter()
                .map(|(k, v)| (Value::str(k), value(agent, k, v)))
                .collect(),
        ),
        Answer::Empty => Value::Map(Vec::new()),
        Answer::Table { names, rows } => {
            let rows: Vec<Value> = rows
                .iter()
                .map(|row| {
                    Value::List(
                        names
                            .iter()
                            .zip(row)
                            .map(|(n, v)| value(agent, n, v))
                            .collect(),
                    )
                })
                .collect();
            let results = match agent {
                Agent::C if rows.is_empty() => c_empty_list(),
                _ => Value::List(rows),
            };
            Value::Map(vec![
                (
                    Value::str("attributeNames"),
                    Value::List(names.iter().map(|n| Value::str(n)).collect()),
                ),
                (Value::str("results"), results),
            ])
        }
    }
}

/// An attribute's AMQP value as the answering agent types it: the Python
/// agent writes every integer as a signed int or long; the C agent keeps
/// the declared widths (counters ulong, `inProcess` uint, `priority` int).
fn value(agent: Agent, name: &str, v: &Json) -> Value {
    match (agent, v) {
        (Agent::C, Json::Number(n)) => match name {
            "inProcess" => n
                .as_u64()
                .and_then(|u| u32::try_from(u).ok())
                .map(Value::Uint)
                .unwrap_or(Value::Null),
            "priority" => n
                .as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .map(Value::Int)
                .unwrap_or(Value::Null),
            _ => match n.as_u64() {
                Some(u) => Value::Ulong(u),
                None => Value::Long(n.as_i64().unwrap_or(0)),
            },
        },
        (Agent::C, Json::Array(items)) if items.is_empty() => c_empty_list(),
        (_, Json::Null) => Value::Null,
        (_, Json::Bool(b)) => Value::Bool(*b),
        (_, Json::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => python_int(i),
            (None, Some(u)) => Value::Ulong(u),
            _ => Value::Double(n.as_f64().unwrap_or(0.0)),
        },
        (_, Json::String(s)) => Value::str(s),
        (_, Json::Array(items)) => {
            Value::List(items.iter().map(|i| value(agent, name, i)).collect())
        }
        (_, Json::Object(map)) => Value::Map(
            map.iter()
                .map(|(k, v)| (Value::str(k), value(agent, k, v)))
                .collect(),
        ),
    }
}
