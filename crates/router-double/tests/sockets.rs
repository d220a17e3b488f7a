//! The double's tcpListener sockets, seen through skupperd's management
//! client and plain TCP: operStatus follows consumers, a bind failure shows
//! in connectionMsg and is not retried, data is forwarded to the local
//! tcpConnector, and deleting a listener closes its connections.

mod common;

use common::{attrs, eventually, free_port, started};
use serde_json::json;
use skupperd::router::{AmqpManagement, Entity, Key, Management};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn listener_row(client: &mut AmqpManagement, name: &str) -> Entity {
    let rows = client
        .query("tcpListener", &["name", "operStatus", "connectionMsg"])
        .await
        .unwrap();
    rows.into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no tcpListener {name}"))
}

async fn address_row(client: &mut AmqpManagement, key: &str) -> Option<Entity> {
    let rows = client
        .query(
            "router.address",
            &["name", "subscriberCount", "remoteCount", "inProcess"],
        )
        .await
        .unwrap();
    rows.into_iter().find(|r| r["name"] == key)
}

async fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

async fn create_listener(client: &mut AmqpManagement, name: &str, address: &str, port: u16) {
    client
        .create(
            "tcpListener",
            name,
            &attrs(json!({"address": address, "host": "127.0.0.1", "port": port.to_string()})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn oper_status_follows_remote_and_local_consumers() {
    let (_pki, double, mut client) = started().await;
    let port = free_port();
    create_listener(&mut client, "listener/backend", "backend", port).await;
    assert_eq!(
        listener_row(&mut client, "listener/backend").await["operStatus"],
        "down"
    );
    assert!(!accepts(port).await, "no consumer, no socket");
    let row = address_row(&mut client, "Mbackend")
        .await
        .expect("watched address has a row");
    assert_eq!(
        (row["subscriberCount"].clone(), row["remoteCount"].clone()),
        (json!(0), json!(0))
    );

    double.inject_remote_consumer("backend");
    assert_eq!(
        listener_row(&mut client, "listener/backend").await["operStatus"],
        "up"
    );
    assert!(accepts(port).await);
    assert_eq!(
        address_row(&mut client, "Mbackend").await.unwrap()["remoteCount"],
        1
    );

    double.remove_remote_consumer("backend");
    assert_eq!(
        listener_row(&mut client, "listener/backend").await["operStatus"],
        "down"
    );
    eventually("the socket to close", || async { !accepts(port).await }).await;

    client
        .create(
            "tcpConnector",
            "connector/backend@127.0.0.1",
            &attrs(
                json!({"address": "backend", "host": "127.0.0.1", "port": free_port().to_string()}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        listener_row(&mut client, "listener/backend").await["operStatus"],
        "up"
    );
    assert_eq!(
        address_row(&mut client, "Mbackend").await.unwrap()["subscriberCount"],
        1
    );

    client
        .delete("tcpConnector", Key::Name("connector/backend@127.0.0.1"))
        .await
        .unwrap();
    assert_eq!(
        listener_row(&mut client, "listener/backend").await["operStatus"],
        "down"
    );
    eventually("the socket to close", || async { !accepts(port).await }).await;
}

#[tokio::test]
async fn a_bind_failure_shows_in_connection_msg_and_is_not_retried() {
    let (_pki, double, mut client) = started().await;
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    create_listener(&mut client, "listener/busy", "busy", port).await;
    // An empty string, not null, as the real router shows it
    // (transcripts 39, 50; this test expected null before).
    assert_eq!(
        listener_row(&mut client, "listener/busy").await["connectionMsg"],
        "",
        "a conflict shows only once the listener is matched"
    );

    double.inject_remote_consumer("busy");
    let row = listener_row(&mut client, "listener/busy").await;
    assert_eq!(row["operStatus"], "down");
    assert_eq!(
        row["connectionMsg"],
        format!("Address already in use - listen on 127.0.0.1:{port}")
    );
    let matched = address_row(&mut client, "Mbusy").await.unwrap();
    assert_eq!(
        matched["remoteCount"], 1,
        "Matched stays visible during a bind failure"
    );

    drop(squatter);
    double.inject_remote_consumer("busy");
    assert_eq!(
        listener_row(&mut client, "listener/busy").await["operStatus"],
        "down",
        "the router does not retry the bind"
    );

    client
        .delete("tcpListener", Key::Name("listener/busy"))
        .await
        .unwrap();
    create_listener(&mut client, "listener/busy", "busy", port).await;
    let row = listener_row(&mut client, "listener/busy").await;
    assert_eq!(row["operStatus"], "up", "delete and re-create binds again");
    assert_eq!(row["connectionMsg"], "");
}

/// An echo server on a free port; returns the port.
async fn echo_backend() -> u16 {
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = backend.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = backend.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

async fn echo(conn: &mut TcpStream, text: &[u8]) -> Vec<u8> {
    conn.write_all(text).await.unwrap();
    let mut buf = vec![0u8; text.len()];
    conn.read_exact(&mut buf).await.unwrap();
    buf
}

#[tokio::test]
async fn connections_are_forwarded_and_survive_unrelated_changes() {
    let (_pki, double, mut client) = started().await;
    let backend = echo_backend().await;
    client
        .create(
            "tcpConnector",
            "connector/echo@127.0.0.1",
            &attrs(json!({"address": "echo", "host": "127.0.0.1", "port": backend.to_string()})),
        )
        .await
        .unwrap();
    let port = free_port();
    create_listener(&mut client, "listener/echo", "echo", port).await;
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(echo(&mut conn, b"hello").await, b"hello");

    // Unrelated changes and an observer UPDATE leave the connection alone.
    let other = free_port();
    create_listener(&mut client, "listener/other", "other", other).await;
    double.inject_remote_consumer("other");
    client
        .update(
            "tcpListener",
            Key::Name("listener/echo"),
            &attrs(json!({"observer": "none"})),
        )
        .await
        .unwrap();
    client
        .delete("tcpListener", Key::Name("listener/other"))
        .await
        .unwrap();
    assert_eq!(echo(&mut conn, b"still here").await, b"still here");

    // Deleting the listener closes its socket and its connections.
    client
        .delete("tcpListener", Key::Name("listener/echo"))
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("the connection must be closed");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    eventually("the socket to close", || async { !accepts(port).await }).await;
}

#[tokio::test]
async fn a_connector_delete_closes_the_connections_proxied_to_it() {
    let (_pki, double, mut client) = started().await;
    let backend = echo_backend().await;
    let port = free_port();
    create_listener(&mut client, "listener/db", "db", port).await;
    // A remote consumer keeps the listener up when the local one goes.
    double.inject_remote_consumer("db");
    client
        .create(
            "tcpConnector",
            "connector/db@127.0.0.1",
            &attrs(json!({"address": "db", "host": "127.0.0.1", "port": backend.to_string()})),
        )
        .await
        .unwrap();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(echo(&mut conn, b"ping").await, b"ping");
    client
        .delete("tcpConnector", Key::Name("connector/db@127.0.0.1"))
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("the connection must be closed");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert_eq!(
        listener_row(&mut client, "listener/db").await["operStatus"],
        "up"
    );
}
