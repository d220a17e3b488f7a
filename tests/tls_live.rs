//! TLS through the router double's listener sockets, driven by `skupperd
//! run`: real handshakes with the files skupperd wrote, and a rotation
//! that new connections see while one opened before stays up.

use crate::router_live::{serial, site, wait_status, with_process_runner};
use crate::support::daemon::{eventually, write_by_rename, Daemon};
use crate::support::tls::{der, pki, tls_client, tls_client_with, tls_connect, tls_echo, Pki};
use crate::support::*;
use skupperd::certs::{Mint, RcgenMint};

/// A TLS listener `web` (routing key `web`) with the bundle's files and a
/// local connector for its key to an echo server; answers the listener's
/// port.
fn tls_site(home: &DataHome, bundle: &[(&str, &str)]) -> u16 {
    site(home);
    let certs = home.ns("west").join("input/certs/web");
    std::fs::create_dir_all(&certs).unwrap();
    for (file, text) in bundle {
        write_by_rename(&certs.join(file), text);
    }
    let port = crate::router_live::free_port();
    home.write(
        "west",
        "input/resources/l.yaml",
        &format!(
            "{}  tlsCredentials: web\n",
            listener("web", "127.0.0.1", &port.to_string())
        ),
    );
    home.write(
        "west",
        "input/resources/c.yaml",
        &format!(
            "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n  name: backend\nspec:\n  routingKey: web\n  host: 127.0.0.1\n  port: {}\n",
            echo_server()
        ),
    );
    port
}

#[test]
fn a_rotated_bundle_reaches_new_connections_and_open_ones_stay() {
    let _one = serial();
    let pki = pki();
    let home = DataHome::new();
    let port = tls_site(
        &home,
        &[
            ("tls.crt", &pki.first.cert_pem),
            ("tls.key", &pki.first.key_pem),
        ],
    );
    let mut d = with_process_runner(&home);
    wait_status(&d, &home, "Listener", "web", "status: Ready");
    let client = tls_client(&pki.ca.cert_pem).unwrap();
    let (mut open, leaf) = eventually(
        "a TLS handshake with the bundle's certificate",
        || tls_connect(port, &client).ok(),
        || d.log(),
    );
    assert_eq!(leaf, der(&pki.first.cert_pem));
    tls_echo(&mut open, b"before").unwrap();

    // The key first: the pair does not match until the certificate
    // follows, and nothing of it reaches the router before then.
    let certs = home.ns("west").join("input/certs/web");
    write_by_rename(&certs.join("tls.key"), &pki.second.key_pem);
    write_by_rename(&certs.join("tls.crt"), &pki.second.cert_pem);
    eventually(
        "a new connection to get the new certificate",
        || {
            let (_, leaf) = tls_connect(port, &client).ok()?;
            (leaf == der(&pki.second.cert_pem)).then_some(())
        },
        || {
            let config =
                std::fs::read_to_string(home.ns("west").join("runtime/router/skrouterd.json"))
                    .unwrap_or_default();
            format!("{config}\n--- log ---\n{}", d.log())
        },
    );
    tls_echo(&mut open, b"after").unwrap();
    let config =
        std::fs::read_to_string(home.ns("west").join("runtime/router/skrouterd.json")).unwrap();
    assert!(config.contains("\"ordinal\": 1"), "{config}");
    d.stop();
}

/// [`tls_site`] with the CA in the bundle (mutual TLS), served by
/// `skupperd run` until the listener is Ready.
fn mutual_site(pki: &Pki) -> (DataHome, u16, Daemon) {
    let home = DataHome::new();
    let port = tls_site(
        &home,
        &[
            ("tls.crt", &pki.first.cert_pem),
            ("tls.key", &pki.first.key_pem),
            ("ca.crt", &pki.ca.cert_pem),
        ],
    );
    let d = with_process_runner(&home);
    wait_status(&d, &home, "Listener", "web", "status: Ready");
    (home, port, d)
}

#[test]
fn a_bundle_with_a_ca_refuses_clients_without_a_certificate() {
    let _one = serial();
    let pki = pki();
    let (_home, port, mut d) = mutual_site(&pki);
    let with_cert = tls_client_with(&pki.ca.cert_pem, Some(&pki.client)).unwrap();
    let (mut stream, _) = eventually(
        "a handshake with a client certificate",
        || tls_connect(port, &with_cert).ok(),
        || d.log(),
    );
    tls_echo(&mut stream, b"mutual").unwrap();
    let anonymous = tls_client(&pki.ca.cert_pem).unwrap();
    // TLS 1.3 completes the client's side first; the refusal shows on the
    // first read.
    let refused = match tls_connect(port, &anonymous) {
        Err(_) => true,
        Ok((mut s, _)) => tls_echo(&mut s, b"no certificate").is_err(),
    };
    assert!(refused, "a client without a certificate got through");
    d.stop();
}

/// Files rewritten in place (no rename), the certificate before its key:
/// in between, the pair does not match and the old one keeps serving;
/// once whole, new connections get the new certificate.
#[test]
fn a_bundle_rewritten_in_place_certificate_first_rotates_once_whole() {
    let _one = serial();
    let pki = pki();
    let home = DataHome::new();
    let port = tls_site(
        &home,
        &[
            ("tls.crt", &pki.first.cert_pem),
            ("tls.key", &pki.first.key_pem),
        ],
    );
    let mut d = with_process_runner(&home);
    wait_status(&d, &home, "Listener", "web", "status: Ready");
    let client = tls_client(&pki.ca.cert_pem).unwrap();
    eventually(
        "a TLS handshake with the bundle's certificate",
        || tls_connect(port, &client).ok(),
        || d.log(),
    );
    let certs = home.ns("west").join("input/certs/web");
    std::fs::write(certs.join("tls.crt"), &pki.second.cert_pem).unwrap();
    // The half-written pair is an error on the listener, and the
    // certificate in use stays the old one.
    wait_status(&d, &home, "Listener", "web", "does not match");
    let (_, leaf) = tls_connect(port, &client).unwrap();
    assert_eq!(
        leaf,
        der(&pki.first.cert_pem),
        "an inconsistent pair reached the router"
    );
    std::fs::write(certs.join("tls.key"), &pki.second.key_pem).unwrap();
    eventually(
        "a new connection to get the new certificate",
        || {
            let (_, leaf) = tls_connect(port, &client).ok()?;
            (leaf == der(&pki.second.cert_pem)).then_some(())
        },
        || d.log(),
    );
    wait_status(&d, &home, "Listener", "web", "status: Ready");
    let config =
        std::fs::read_to_string(home.ns("west").join("runtime/router/skrouterd.json")).unwrap();
    assert!(config.contains("\"ordinal\": 1"), "rotated once: {config}");
    d.stop();
}

/// A new CA in a mutual-TLS bundle: clients with certificates from the new
/// CA get in, clients of the old one no longer do.
#[test]
fn a_changed_client_ca_is_enforced_for_new_connections() {
    let _one = serial();
    let pki = pki();
    let now = time::OffsetDateTime::now_utc();
    let mut mint = RcgenMint;
    let new_ca = mint.issue_ca("new-client-ca", now).unwrap();
    let new_client = mint
        .issue_leaf(&new_ca, "client", &["127.0.0.1".to_string()], now)
        .unwrap();
    let (home, port, mut d) = mutual_site(&pki);
    let old_client = tls_client_with(&pki.ca.cert_pem, Some(&pki.client)).unwrap();
    let (mut open, _) = eventually(
        "a handshake with a client of the first CA",
        || tls_connect(port, &old_client).ok(),
        || d.log(),
    );
    tls_echo(&mut open, b"old CA").unwrap();
    write_by_rename(
        &home.ns("west").join("input/certs/web/ca.crt"),
        &new_ca.cert_pem,
    );
    let new = tls_client_with(&pki.ca.cert_pem, Some(&new_client)).unwrap();
    eventually(
        "a client of the new CA to get through",
        || {
            let (mut s, _) = tls_connect(port, &new).ok()?;
            tls_echo(&mut s, b"new CA").ok()
        },
        || d.log(),
    );
    let refused = match tls_connect(port, &old_client) {
        Err(_) => true,
        Ok((mut s, _)) => tls_echo(&mut s, b"old CA again").is_err(),
    };
    assert!(refused, "a client of the old CA still got in");
    tls_echo(&mut open, b"the open connection stays").unwrap();
    d.stop();
}
