//! Shared test setup: a throwaway PKI made with rcgen, a started double,
//! a connected skupperd management client, and a patience-bounded poll.
#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use router_double::{DoubleConfig, RouterDouble};
use skupperd::router::{connect, AmqpManagement, Credentials};

/// PEM bytes of one certificate and its key.
pub struct Pem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// A CA with a server certificate for 127.0.0.1 and a client certificate.
pub struct Pki {
    pub ca: Vec<u8>,
    pub server: Pem,
    pub client: Pem,
}

impl Pki {
    pub fn new(ca_name: &str) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        server
            .distinguished_name
            .push(DnType::CommonName, "skupper-local-server");
        let server_cert = server.signed_by(&server_key, &ca).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "skupper-local-client");
        let client_cert = client.signed_by(&client_key, &ca).unwrap();

        Pki {
            ca: ca.pem().into_bytes(),
            server: Pem {
                cert: server_cert.pem().into_bytes(),
                key: server_key.serialize_pem().into_bytes(),
            },
            client: Pem {
                cert: client_cert.pem().into_bytes(),
                key: client_key.serialize_pem().into_bytes(),
            },
        }
    }

    pub fn credentials(&self) -> Credentials {
        Credentials {
            client_cert_pem: self.client.cert.clone(),
            client_key_pem: self.client.key.clone(),
            ca_pem: self.ca.clone(),
        }
    }

    pub fn double_config(&self) -> DoubleConfig {
        let mut config = DoubleConfig::new(
            self.server.cert.clone(),
            self.server.key.clone(),
            self.ca.clone(),
        )
        .expect("the reference schema must be readable (set SKUPPERD_REFERENCE_DIR)");
        // Beacons as the real router sends them, only faster, so a test
        // does not wait the real 10 s.
        config.beacon_interval = std::time::Duration::from_millis(200);
        config
    }

    /// Writes `tls.crt`, `tls.key`, `ca.crt` (the server's) into `dir`.
    pub fn write_server_files(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("tls.crt"), &self.server.cert).unwrap();
        std::fs::write(dir.join("tls.key"), &self.server.key).unwrap();
        std::fs::write(dir.join("ca.crt"), &self.ca).unwrap();
    }
}

/// A started double with its PKI and a connected client.
pub async fn started() -> (Pki, RouterDouble, AmqpManagement) {
    let pki = Pki::new("skupper-local-ca");
    let double = RouterDouble::start(pki.double_config()).await.unwrap();
    let client = connect(double.port(), &pki.credentials()).await.unwrap();
    (pki, double, client)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it returns true, for at most 10 s (a patience bound
/// on a shared noisy machine, not a timing assertion).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting: {what}");
}

/// A JSON object literal as an entity.
pub fn attrs(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap()
}
