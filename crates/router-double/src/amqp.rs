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

use crate::core::{address_key, c_empty_list, ConnectionInfo, C_TYPES};
use crate::table::{short_type, Answer, Reply, Request, MANAGEMENT_NODE};
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

/// A TLS acceptor that presents the server certificate and asks nothing
/// of clients (a tcpListener's sslProfile without `authenticatePeer`).
pub(crate) fn tls_server(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, DoubleError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| DoubleError::Tls(format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("server certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad("server key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_no_client_auth()
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
    // The real router's first client connection is `qd.conn-id` 2
    // (transcript 00).
    let connections_opened = Arc::new(AtomicU64::new(1));
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
    let host = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut stream = tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let session = stream.get_ref().1;
    let tls_info = session
        .protocol_version()
        .zip(session.negotiated_cipher_suite())
        .map(|(version, suite)| {
            let version = match version {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                other => format!("{other:?}"),
            };
            let suite = suite
                .suite()
                .as_str()
                .map_or_else(|| format!("{:?}", suite.suite()), String::from);
            (version, suite)
        });
    skupperd_amqp::sasl::server(&mut stream, &["EXTERNAL"], |m| m == "EXTERNAL")
        .await
        .map_err(|e| format!("SASL failed: {e}"))?;
    let router_id = lock(&shared).table.router_id();
    let (connection, mut incoming) =
        skupperd_amqp::server(stream, router_options(&router_id, conn_id))
            .await
            .map_err(|e| format!("AMQP open failed: {e}"))?;
    let peer = connection.peer();
    let properties = match &peer.properties {
        Value::Null => Value::Map(Vec::new()),
        other => other.clone(),
    };
    lock(&shared).core.connections.push(ConnectionInfo {
        id: conn_id,
        host,
        container: peer.container_id.clone(),
        sasl: "EXTERNAL".into(),
        tls: tls_info,
        properties,
        opened: std::time::Instant::now(),
        last_delivery: None,
    });
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            link = incoming.recv() => {
                let Some(link) = link else { break };
                if let Err(e) = accept(&connection, link, &shared, &temp, &router_id, conn_id, &mut tasks).await {
                    tracing::info!("link attach failed: {e}");
                }
            }
            _ = connection.closed() => break,
        }
    }
    // The connection is gone with its links and their addresses.
    tasks.shutdown().await;
    let mut state = lock(&shared);
    state.core.remove_connection(conn_id);
    state.routes.retain(|r| r.connection != conn_id);
    state.note_addresses();
    Ok(())
}

async fn accept(
    connection: &Connection,
    link: IncomingLink,
    shared: &Shared,
    temp: &AtomicU64,
    router_id: &str,
    conn_id: u64,
    tasks: &mut JoinSet<()>,
) -> Result<(), skupperd_amqp::Error> {
    let link_name = link.attach.name.clone();
    match link.peer_role() {
        // The peer receives: we send on this link.
        Role::Receiver => {
            let dynamic = link.source().is_some_and(|s| s.is_dynamic());
            let assigned = dynamic.then(|| {
                format!(
                    "amqp:/_topo/0/{router_id}/temp.{}",
                    temp_id(temp.fetch_add(1, Ordering::Relaxed))
                )
            });
            let sender = connection.accept_sender(link, assigned).await?;
            let address = sender.address().unwrap_or_default().to_string();
            let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
            let (id, link_id) = {
                let mut state = lock(shared);
                let link_id = state.core.add_link(conn_id, &link_name, true, &address);
                let id = state.add_route(&address, conn_id, tx);
                state.note_addresses();
                (id, link_id)
            };
            let shared = shared.clone();
            let key = address_key(&address);
            tasks.spawn(async move {
                while let Some(payload) = rx.recv().await {
                    // Counted before it goes out: the peer may answer it
                    // at once, and what it asks next must see the count.
                    {
                        let mut state = lock(&shared);
                        if let Some(l) = state.core.link_mut(link_id) {
                            l.deliveries += 1;
                            l.presettled += 1;
                        }
                        let c = state.core.count(&key);
                        c.egress += 1;
                        c.from_container += 1;
                    }
                    if sender.send(payload, true).is_err() {
                        break;
                    }
                }
                let mut state = lock(&shared);
                state.routes.retain(|r| r.id != id);
                state.core.remove_link(link_id);
                state.note_addresses();
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
            let link_id = {
                let mut state = lock(shared);
                let link_id = state.core.add_link(conn_id, &link_name, false, &target);
                state.note_addresses();
                link_id
            };
            let shared = shared.clone();
            tasks.spawn(async move {
                incoming(receiver, node, shared.clone(), conn_id, link_id).await;
                let mut state = lock(&shared);
                state.core.remove_link(link_id);
                state.note_addresses();
            });
        }
    }
    Ok(())
}

/// The random part of a dynamic address: 15 letters and digits, as the
/// real router's (`temp.xJiWymTVYCLaGiQ`); distinct per link, and per
/// process so that two doubles do not hand out the same addresses.
fn temp_id(n: u64) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // splitmix64 of the counter and the process id.
    let mut z = n
        .wrapping_add(u64::from(std::process::id()) << 32)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut out = String::with_capacity(15);
    // 15 base-62 digits need 90 bits: the counter's low bits pad the rest.
    let mut wide = (u128::from(z) << 64) | u128::from(n);
    for _ in 0..15 {
        out.push(char::from(CHARS[(wide % 62) as usize]));
        wide /= 62;
    }
    out
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
async fn incoming(
    mut receiver: skupperd_amqp::Receiver,
    node: Node,
    shared: Shared,
    conn_id: u64,
    link_id: u64,
) {
    while let Some(delivery) = receiver.recv().await {
        {
            let mut state = lock(&shared);
            if let Some(l) = state.core.link_mut(link_id) {
                l.deliveries += 1;
            }
            if let Some(c) = state.core.connection_mut(conn_id) {
                c.last_delivery = Some(std::time::Instant::now());
            }
            let key = state
                .core
                .links
                .iter()
                .find(|l| l.identity == link_id)
                .map(|l| l.owning.clone());
            if let Some(key) = key {
                let c = state.core.count(&key);
                c.ingress += 1;
                c.to_container += 1;
            }
        }
        let accepted = |shared: &Shared| {
            if let Some(l) = lock(shared).core.link_mut(link_id) {
                l.accepted += 1;
            }
        };
        let Ok(message) = Message::decode(&delivery.payload) else {
            accepted(&shared);
            continue;
        };
        match node {
            Node::Sink => {
                accepted(&shared);
                continue;
            }
            Node::Flush => {
                if message.subject() == Some("FLUSH") {
                    vanflow::flush(&shared);
                }
                accepted(&shared);
                continue;
            }
            Node::Management if lock(&shared).unresponsive => continue,
            Node::Management => {}
        }
        let Some(reply_to) = message.reply_to().map(String::from) else {
            accepted(&shared);
            continue;
        };
        let request = decode(&message);
        let agent = Agent::of(&request);
        if agent == Agent::Python {
            // The C agent hands the request to the Python agent and takes
            // its answer back, through this address.
            let mut state = lock(&shared);
            let c = state.core.count("L$_management_internal");
            c.to_container += 1;
            c.from_container += 1;
        }
        let reply = apply(&shared, &request);
        let payload = encode(&reply, agent, message.correlation_id(), &reply_to);
        let route = lock(&shared).routes_to(&reply_to).into_iter().next();
        if let Some(route) = route {
            let _ = route.send(payload).await;
        }
        accepted(&shared);
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
    let operation = text("operation").unwrap_or_default();
    // QUERY and the GET-* operations are addressed to the management node
    // (`type`, if any) and name their entity type in `entityType`; the
    // others name the entity's type in `type`.
    let node_operation = operation == "QUERY" || operation.starts_with("GET-");
    let (entity_type, node_type) = if node_operation {
        (text("entityType"), text("type"))
    } else {
        (text("type"), None)
    };
    Request {
        operation,
        entity_type,
        node_type,
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
        if c_agent_type(request).is_some() {
            Agent::C
        } else {
            Agent::Python
        }
    }
}

/// The short entity type of a QUERY the C agent answers.
pub(crate) fn c_agent_type(request: &Request) -> Option<String> {
    if request.operation != "QUERY"
        || request
            .node_type
            .as_deref()
            .is_some_and(|t| t != MANAGEMENT_NODE)
    {
        return None;
    }
    let t = short_type(request.entity_type.as_deref()?);
    C_TYPES.contains(&t.as_str()).then_some(t)
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
        Answer::CTable { names, rows } => {
            let results = if rows.is_empty() {
                c_empty_list()
            } else {
                Value::List(rows.iter().cloned().map(Value::List).collect())
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
