//! Inter-router and edge links, as far as a site sees them: `listener`
//! entities with role `inter-router` or `edge` open a TLS socket, and
//! `connector` entities with those roles connect to their host and port
//! and report `connectionStatus` and `connectionMsg` as the real router
//! does (router.md 7, observed with skupper-router main e2ec51a4):
//!
//! - a new connector is `CONNECTING`; a TCP connection and a TLS
//!   handshake with the connector's sslProfile (its CA verifies the
//!   server, whose certificate must cover the host; its certificate and
//!   key are the client's) make it `SUCCESS` with `connectionMsg` `[C<n>]
//!   Connection Opened: dir=out host=<host>:<port> encrypted=TLSv1.3
//!   auth=EXTERNAL user=(null)` (the real router adds ` container_id=<the
//!   peer router's id>`, which the double does not learn);
//! - a refused TCP connection is `FAILED` with `Connection to <host>:<port>
//!   failed: proton:io Connection refused - disconnected <host>:<port>`;
//!   a failed handshake `FAILED` with `Connection to <host>:<port> failed:
//!   amqp:connection:framing-error SSL Failure: <why>`. The real router's
//!   `<why>` is OpenSSL's (`error:0A000086:SSL routines::certificate verify
//!   failed`); the double's is rustls's, so tests match the prefix only;
//! - while it retries, the last failure stays in `connectionMsg`; a link
//!   that drops goes back to `CONNECTING` (message kept) and is retried.
//!
//! A link listener accepts a handshake with its sslProfile (requiring a
//! client certificate signed by its CA with `authenticatePeer`) and holds
//! the connection; nothing is routed over it: the double does not join
//! routers into a network (no remote addresses, no SITE records of the
//! peer).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::table::StoredEntity;
use crate::{lock, Shared, State};

/// How long a failed connector waits before trying again (the real router
/// retried a refused handshake 5 s later).
const RETRY: Duration = Duration::from_secs(5);

/// The router numbers its connections (`[C4]`); the double's link
/// connections count from 100 so they never look like management ones.
static CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);

/// Link sockets and connector tasks by entity name, with the identity of
/// the entity they serve (a DELETE and CREATE of one name is new).
#[derive(Default)]
pub(crate) struct Links {
    tasks: HashMap<String, (String, JoinHandle<()>)>,
}

impl Drop for Links {
    fn drop(&mut self) {
        for (_, (_, task)) in self.tasks.drain() {
            task.abort();
        }
    }
}

fn is_link(e: &StoredEntity) -> bool {
    matches!(e.entity_type.as_str(), "listener" | "connector")
        && matches!(e.str_attr("role"), Some("inter-router" | "edge"))
}

/// Brings link sockets and connector tasks in line with the table. Must
/// run inside the tokio runtime.
pub(crate) fn sync(state: &mut State, shared: &Shared) {
    let wanted: Vec<(String, String, String)> = state
        .table
        .entities()
        .iter()
        .filter(|e| is_link(e))
        .map(|e| {
            (
                e.name().to_string(),
                e.str_attr("identity").unwrap_or("").to_string(),
                e.entity_type.clone(),
            )
        })
        .collect();
    state.links.tasks.retain(|name, (identity, task)| {
        let keep = wanted.iter().any(|(n, i, _)| n == name && i == identity);
        if !keep {
            task.abort();
        }
        keep
    });
    for (name, identity, kind) in wanted {
        if state.links.tasks.contains_key(&name) {
            continue;
        }
        let task = if kind == "listener" {
            tokio::spawn(serve(name.clone(), shared.clone()))
        } else {
            state.table.set_attrs(
                &name,
                &[("connectionStatus", "CONNECTING"), ("connectionMsg", "")],
            );
            tokio::spawn(connect(name.clone(), shared.clone()))
        };
        state.links.tasks.insert(name, (identity, task));
    }
}

/// The files of sslProfile `profile`: (caCertFile, certFile, privateKeyFile).
/// An sslProfile's (caCertFile, certFile, privateKeyFile) contents.
type ProfileFiles = (Vec<u8>, Vec<u8>, Vec<u8>);

fn profile_files(state: &State, profile: &str) -> Result<ProfileFiles, String> {
    let entity = state
        .table
        .find(profile)
        .ok_or_else(|| format!("sslProfile '{profile}' not found"))?;
    let read = |attr: &str| -> Result<Vec<u8>, String> {
        let path = entity
            .str_attr(attr)
            .ok_or_else(|| format!("sslProfile {profile} has no {attr}"))?;
        std::fs::read(path).map_err(|e| format!("{path}: {e}"))
    };
    Ok((
        read("caCertFile")?,
        read("certFile")?,
        read("privateKeyFile")?,
    ))
}

/// A link listener: its socket, a handshake per connection, and the
/// connection held until the peer closes it.
async fn serve(name: String, shared: Shared) {
    let (host, port, acceptor) = {
        let mut state = lock(&shared);
        let Some(l) = state.table.find(&name) else {
            return;
        };
        let host = l.str_attr("host").unwrap_or("").to_string();
        let port = l.str_attr("port").unwrap_or("").to_string();
        match crate::tcp::tls_acceptor(&mut state, &name) {
            Ok(Some(a)) => (host, port, a),
            Ok(None) | Err(_) => {
                tracing::warn!(listener = %name, "link listener without a usable sslProfile");
                return;
            }
        }
    };
    let listener = match crate::tcp::bind(&host, &port) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(listener = %name, "link listener cannot listen on {host}:{port}: {e}");
            return;
        }
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let mut buf = [0u8; 4096];
                while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
            }
        });
    }
}

/// A link connector: connect, report, hold, and retry.
async fn connect(name: String, shared: Shared) {
    loop {
        let setup = {
            let state = lock(&shared);
            let Some(c) = state.table.find(&name) else {
                return;
            };
            let host = c.str_attr("host").unwrap_or("").to_string();
            let port = c.str_attr("port").unwrap_or("").to_string();
            let verify = c.attrs.get("verifyHostname").and_then(|v| v.as_bool()) != Some(false);
            let files = c.str_attr("sslProfile").map(|p| profile_files(&state, p));
            (host, port, verify, files)
        };
        let (host, port, verify, files) = setup;
        let at = format!("{host}:{port}");
        let result = attempt(&host, &port, verify, files).await;
        let held = match result {
            Ok(stream) => {
                let opened = format!(
                    "[C{}] Connection Opened: dir=out host={at} encrypted=TLSv1.3 auth=EXTERNAL user=(null)",
                    CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                );
                lock(&shared).table.set_attrs(
                    &name,
                    &[("connectionStatus", "SUCCESS"), ("connectionMsg", &opened)],
                );
                stream
            }
            Err(why) => {
                let msg = format!("Connection to {at} failed: {why}");
                lock(&shared).table.set_attrs(
                    &name,
                    &[("connectionStatus", "FAILED"), ("connectionMsg", &msg)],
                );
                tokio::time::sleep(RETRY).await;
                lock(&shared)
                    .table
                    .set_attrs(&name, &[("connectionStatus", "CONNECTING")]);
                continue;
            }
        };
        let mut held = held;
        let mut buf = [0u8; 4096];
        while matches!(held.read(&mut buf).await, Ok(n) if n > 0) {}
        // The link dropped: connecting again, the last message kept.
        lock(&shared)
            .table
            .set_attrs(&name, &[("connectionStatus", "CONNECTING")]);
        tokio::time::sleep(RETRY).await;
    }
}

type Held = tokio_rustls::client::TlsStream<TcpStream>;

/// One connection attempt; the error in the router's words.
async fn attempt(
    host: &str,
    port: &str,
    verify: bool,
    files: Option<Result<ProfileFiles, String>>,
) -> Result<Held, String> {
    let at = format!("{host}:{port}");
    let port_n: u16 = port.parse().map_err(|_| {
        format!("proton:io Servname not supported for ai_socktype - disconnected {at}")
    })?;
    let tcp = TcpStream::connect((host, port_n)).await.map_err(|e| {
        let text = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "Connection refused".to_string(),
            _ => e.to_string(),
        };
        format!("proton:io {text} - disconnected {at}")
    })?;
    let ssl = |why: String| format!("amqp:connection:framing-error SSL Failure: {why}");
    let (ca, cert, key) = match files {
        Some(Ok(f)) => f,
        Some(Err(why)) => return Err(ssl(why)),
        // The double speaks no plain AMQP between routers: links use TLS.
        None => return Err(ssl("the double links over TLS only".to_string())),
    };
    let config = client_config(&ca, &cert, &key, verify).map_err(ssl)?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| ssl(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(ssl(e.to_string())),
        Err(_) => Err(ssl("handshake timed out".to_string())),
    }
}

fn client_config(
    ca: &[u8],
    cert: &[u8],
    key: &[u8],
    verify_hostname: bool,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
    };
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())
}

/// `verifyHostname: false`: the chain is verified, the name is not.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
