//! Mutual TLS for the management connection, built from PEM bytes.
//!
//! The router's management server certificate carries the IP SAN
//! `127.0.0.1` (router.md 5), so the server name is that IP, never a DNS
//! name. Only the ring provider is used (no aws-lc-rs in the tree).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{Credentials, MgmtError};

/// A client TLS configuration that presents the client certificate and
/// trusts only the given CA.
pub(crate) fn client_config(creds: &Credentials) -> Result<ClientConfig, MgmtError> {
    let bad =
        |what: &str, e: &dyn std::fmt::Display| MgmtError::Credentials(format!("{what}: {e}"));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&creds.ca_pem) {
        let cert = cert.map_err(|e| bad("CA certificate", &e))?;
        roots.add(cert).map_err(|e| bad("CA certificate", &e))?;
    }
    if roots.is_empty() {
        return Err(MgmtError::Credentials(
            "CA certificate: no certificate in PEM".into(),
        ));
    }
    let chain = CertificateDer::pem_slice_iter(&creds.client_cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("client certificate", &e))?;
    if chain.is_empty() {
        return Err(MgmtError::Credentials(
            "client certificate: no certificate in PEM".into(),
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&creds.client_key_pem).map_err(|e| bad("client key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("client certificate and key", &e))
}

/// Opens TLS over `tcp`, verifying the server for the IP 127.0.0.1.
pub(crate) async fn connect(
    config: ClientConfig,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, MgmtError> {
    let server = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    TlsConnector::from(Arc::new(config))
        .connect(server, tcp)
        .await
        .map_err(|e| MgmtError::Lost(format!("TLS handshake failed: {e}")))
}
