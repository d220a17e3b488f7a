//! Real TCP sockets for tcpListeners, with the router's operStatus rules
//! (router.md 6.1).
//!
//! A listener's socket is open only while one of its addresses has a
//! consumer (a local tcpConnector or an injected remote one). A bind
//! failure is recorded in `connectionMsg` and never retried, as observed.
//! Accepted connections are proxied to the local tcpConnector's host and
//! port when there is one, and closed at once otherwise (a remote consumer
//! the double cannot reach). Deleting a listener closes its socket and its
//! connections; deleting a connector closes the connections proxied to it.
//!
//! A listener with an sslProfile terminates TLS as the router does: with
//! the profile's certificate and key, requiring a client certificate
//! signed by its `caCertFile` when `authenticatePeer` is set. The files
//! are loaded when the profile is first used and again only when its
//! `ordinal` rises (router.md 4): rewriting the files alone changes
//! nothing, and connections made before keep their session.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

use crate::table::StoredEntity;
use crate::{lock, Shared, State};

/// Socket state per tcpListener name.
#[derive(Default)]
pub(crate) struct Sockets {
    listeners: HashMap<String, ListenerRuntime>,
    /// TLS servers by sslProfile name, with the ordinal they were loaded at.
    tls: HashMap<String, (u64, tokio_rustls::TlsAcceptor)>,
}

struct ListenerRuntime {
    /// Identity of the entity this runtime belongs to: a DELETE and CREATE
    /// of the same name is a new listener.
    identity: String,
    /// The accept loop, while the socket is open.
    accept: Option<JoinHandle<()>>,
    /// Set when the bind failed; the router does not try again.
    bind_failed: bool,
    /// Proxied connections and the connector each one goes to.
    conns: Vec<(Option<String>, AbortHandle)>,
}

impl ListenerRuntime {
    fn close(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for (_, conn) in self.conns.drain(..) {
            conn.abort();
        }
    }
}

impl Drop for Sockets {
    fn drop(&mut self) {
        for rt in self.listeners.values_mut() {
            rt.close();
        }
    }
}

/// Brings every listener socket in line with the entity table. Must run
/// inside the tokio runtime (it registers new sockets with it). It runs
/// after every mutation, so it allocates only for what changes: one pass
/// over the listeners, a status written only where it differs.
pub(crate) fn sync(state: &mut State, shared: &Shared) {
    let State { table, sockets, .. } = state;
    let counts = table.consumer_counts();
    // In creation order: of two listeners on one port, the older binds.
    let listeners: Vec<&StoredEntity> = table
        .entities()
        .iter()
        .filter(|e| e.entity_type == "tcpListener")
        .collect();
    let identities: HashMap<&str, &str> = listeners
        .iter()
        .map(|l| (l.name(), l.str_attr("identity").unwrap_or("")))
        .collect();
    let connectors: HashSet<&str> = table
        .entities()
        .iter()
        .filter(|e| e.entity_type == "tcpConnector")
        .map(StoredEntity::name)
        .collect();

    sockets.listeners.retain(|name, rt| {
        let keep = identities
            .get(name.as_str())
            .is_some_and(|identity| *identity == rt.identity);
        if !keep {
            rt.close();
        }
        keep
    });
    for rt in sockets.listeners.values_mut() {
        rt.conns.retain(|(connector, conn)| {
            let keep = !conn.is_finished()
                && connector
                    .as_ref()
                    .is_none_or(|c| connectors.contains(c.as_str()));
            if !keep {
                conn.abort();
            }
            keep
        });
    }

    let mut statuses = Vec::new();
    for l in listeners {
        let name = l.name();
        let consumed = table
            .listener_addresses(l)
            .iter()
            .any(|a| counts.get(a).copied().unwrap_or(0) > 0);
        if !sockets.listeners.contains_key(name) {
            sockets.listeners.insert(
                name.to_string(),
                ListenerRuntime {
                    identity: l.str_attr("identity").unwrap_or("").to_string(),
                    accept: None,
                    bind_failed: false,
                    conns: Vec::new(),
                },
            );
        }
        let Some(rt) = sockets.listeners.get_mut(name) else {
            continue;
        };
        let (host, port) = (
            l.str_attr("host").unwrap_or(""),
            l.str_attr("port").unwrap_or(""),
        );
        let mut message = None;
        if consumed && rt.accept.is_none() && !rt.bind_failed {
            match bind(host, port) {
                Ok(listener) => {
                    tracing::info!(listener = %name, %host, %port, "listening for client connections");
                    rt.accept = Some(tokio::spawn(accept_loop(
                        listener,
                        name.to_string(),
                        shared.clone(),
                    )));
                }
                Err(e) => {
                    let text = match e.kind() {
                        std::io::ErrorKind::AddrInUse => "Address already in use".to_string(),
                        // getaddrinfo's EAI_SERVICE, as the router reports
                        // a port that is no number (transcript 52).
                        std::io::ErrorKind::InvalidInput if e.to_string() == INVALID_PORT => {
                            "Servname not supported for ai_socktype".to_string()
                        }
                        _ => e.to_string(),
                    };
                    let msg = format!("{text} - listen on {host}:{port}");
                    tracing::warn!(listener = %name, "{msg}");
                    rt.bind_failed = true;
                    message = Some(msg);
                }
            }
        } else if !consumed {
            if let Some(accept) = rt.accept.take() {
                tracing::info!(listener = %name, "closing listener socket: no service available");
                accept.abort();
            }
        }
        let up = rt.accept.is_some();
        let shown = l.str_attr("operStatus") == Some(if up { "up" } else { "down" });
        if !shown || message.is_some() {
            statuses.push((name.to_string(), up, message));
        }
    }
    if !statuses.is_empty() {
        table.set_listener_statuses(statuses);
    }
}

const INVALID_PORT: &str = "invalid port";

pub(crate) fn bind(host: &str, port: &str) -> std::io::Result<TcpListener> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let port: u16 = port
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, INVALID_PORT))?;
    let addr: SocketAddr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

async fn accept_loop(listener: TcpListener, name: String, shared: Shared) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                tracing::warn!(listener = %name, "accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut state = lock(&shared);
        let target = state
            .table
            .find(&name)
            .map(|l| state.table.listener_addresses(l))
            .and_then(|addresses| state.table.forward_target(&addresses));
        // The router counts every accepted connection, and every one a
        // connector opens (or tries to: transcript 45), and each again
        // when it ends.
        state.table.count(&name, "connectionsOpened");
        let ended = {
            let (shared, listener) = (shared.clone(), name.clone());
            move |connector: Option<&str>| {
                let mut state = lock(&shared);
                if let Some(connector) = connector {
                    state.table.count(connector, "connectionsClosed");
                }
                state.table.count(&listener, "connectionsClosed");
            }
        };
        let tls = match tls_acceptor(&mut state, &name) {
            Ok(tls) => tls,
            Err(e) => {
                tracing::warn!(listener = %name, "TLS unusable, connection closed: {e}");
                continue;
            }
        };
        let (connector, task) = match target {
            Some((connector, host, port)) => {
                state.table.count(&connector, "connectionsOpened");
                let c = connector.clone();
                let task = tokio::spawn(async move {
                    match tls {
                        Some(tls) => {
                            if let Ok(Ok(client)) = tokio::time::timeout(
                                std::time::Duration::from_secs(10),
                                tls.accept(client),
                            )
                            .await
                            {
                                proxy(client, host, port).await;
                            }
                        }
                        None => proxy(client, host, port).await,
                    }
                    ended(Some(&c));
                });
                (Some(connector), task)
            }
            // A consumer the double cannot reach: accept, then close.
            None => (
                None,
                tokio::spawn(async move {
                    drop(client);
                    ended(None);
                }),
            ),
        };
        if let Some(rt) = state.sockets.listeners.get_mut(&name) {
            rt.conns.retain(|(_, c)| !c.is_finished());
            rt.conns.push((connector, task.abort_handle()));
        }
    }
}

/// The TLS server of listener `name`, if it has an sslProfile: loaded
/// from the profile's files at its current ordinal, kept until the ordinal
/// changes.
pub(crate) fn tls_acceptor(
    state: &mut State,
    name: &str,
) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    let Some(listener) = state.table.find(name) else {
        return Ok(None);
    };
    let Some(profile) = listener.str_attr("sslProfile").map(String::from) else {
        return Ok(None);
    };
    let mutual = listener
        .attrs
        .get("authenticatePeer")
        .and_then(|v| v.as_bool())
        == Some(true);
    let entity = state
        .table
        .find(&profile)
        .ok_or_else(|| format!("sslProfile {profile} not found"))?;
    let ordinal = entity
        .attrs
        .get("ordinal")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if let Some((loaded, acceptor)) = state.sockets.tls.get(&profile) {
        if *loaded == ordinal {
            return Ok(Some(acceptor.clone()));
        }
    }
    let read = |attr: &str| -> Result<Vec<u8>, String> {
        let path = entity
            .str_attr(attr)
            .ok_or_else(|| format!("sslProfile {profile} has no {attr}"))?;
        std::fs::read(path).map_err(|e| format!("{path}: {e}"))
    };
    let cert = read("certFile")?;
    let key = read("privateKeyFile")?;
    let acceptor = if mutual {
        crate::amqp::tls_acceptor(&cert, &key, &read("caCertFile")?)
    } else {
        crate::amqp::tls_server(&cert, &key)
    }
    .map_err(|e| e.to_string())?;
    state
        .sockets
        .tls
        .insert(profile, (ordinal, acceptor.clone()));
    Ok(Some(acceptor))
}

async fn proxy<S>(mut client: S, host: String, port: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(port) = port.parse::<u16>() else {
        return;
    };
    let Ok(mut server) = TcpStream::connect((host.as_str(), port)).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
