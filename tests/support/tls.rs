//! TLS clients and servers for tests: rustls over std sockets, with the
//! certificates a test mints.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

type Outcome = Result<(), String>;

fn ensure(ok: bool, what: impl Into<String>) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// A TLS client trusting only `ca_pem`, verifying the server as 127.0.0.1.
pub fn tls_client(ca_pem: &str) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    tls_client_with(ca_pem, None)
}

/// The same, presenting `cert` (certificate and key PEM) when given.
pub fn tls_client_with(
    ca_pem: &str,
    cert: Option<&skupperd::certs::Credential>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match cert {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let (chain, key) = chain_and_key(c)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
    };
    Ok(std::sync::Arc::new(config))
}

pub type Chain = Vec<rustls::pki_types::CertificateDer<'static>>;

pub fn chain_and_key(
    c: &skupperd::certs::Credential,
) -> Result<(Chain, rustls::pki_types::PrivateKeyDer<'static>), String> {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok((chain, key))
}

/// A TLS echo server with `cert` on a free port (one thread per
/// connection, served until the process ends).
pub fn tls_echo_server(cert: &skupperd::certs::Credential) -> Result<u16, String> {
    let (chain, key) = chain_and_key(cert)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    let config = std::sync::Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let _ = stream.flush();
                }
            });
        }
    });
    Ok(port)
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A finished TLS handshake to 127.0.0.1:`port`, and the server's leaf.
pub fn tls_connect(
    port: u16,
    config: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<(TlsStream, Vec<u8>), String> {
    use std::net::{IpAddr, Ipv4Addr};
    let server = rustls::pki_types::ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let conn = rustls::ClientConnection::new(config.clone(), server).map_err(|e| e.to_string())?;
    let tcp =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect {port}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    let leaf = stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or("no server certificate")?;
    Ok((stream, leaf))
}

pub fn tls_echo(stream: &mut TlsStream, payload: &[u8]) -> Outcome {
    stream
        .write_all(payload)
        .map_err(|e| format!("TLS write: {e}"))?;
    let mut got = vec![0u8; payload.len()];
    stream
        .read_exact(&mut got)
        .map_err(|e| format!("TLS read back: {e}"))?;
    ensure(got == payload, "TLS echo mismatch")
}

pub fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .unwrap_or_default()
}

/// A user CA with two server certificates for 127.0.0.1 (a rotation's
/// before and after) and a client certificate, minted now.
pub struct Pki {
    pub ca: skupperd::certs::Credential,
    pub first: skupperd::certs::Credential,
    pub second: skupperd::certs::Credential,
    pub client: skupperd::certs::Credential,
}

pub fn pki() -> Pki {
    use skupperd::certs::{Mint, RcgenMint};
    let now = time::OffsetDateTime::now_utc();
    let mut mint = RcgenMint;
    let sans = ["127.0.0.1".to_string()];
    let ca = mint.issue_ca("user-ca", now).expect("a CA");
    Pki {
        first: mint.issue_leaf(&ca, "web", &sans, now).expect("a leaf"),
        second: mint.issue_leaf(&ca, "web", &sans, now).expect("a leaf"),
        client: mint.issue_leaf(&ca, "client", &sans, now).expect("a leaf"),
        ca,
    }
}
