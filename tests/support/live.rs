//! A namespace's management endpoint as the router-side tests drive it:
//! the namespace rendered, a router double serving its server credentials,
//! and the client credentials skupperd connects with.

use super::{skupperd, DataHome};
use router_double::DoubleConfig;
use skupperd::plan::Platform;
use skupperd::router::session::Target;
use skupperd::router::Credentials;

/// A file under `namespaces/<ns>/`.
pub fn ns_file(home: &DataHome, ns: &str, rel: &str) -> Vec<u8> {
    std::fs::read(home.ns(ns).join(rel)).unwrap()
}

/// `skupperd render` of the namespace, which must succeed.
pub fn render(home: &DataHome, ns: &str) {
    skupperd().arg("render").arg(home.ns(ns)).assert().code(0);
}

/// A double with the namespace's management server credentials.
pub fn double_config(home: &DataHome, ns: &str) -> DoubleConfig {
    let read = |f: &str| ns_file(home, ns, &format!("runtime/certs/skupper-local-server/{f}"));
    DoubleConfig::new(read("tls.crt"), read("tls.key"), read("ca.crt")).expect("reference schema")
}

/// The client credentials skupperd manages the router with.
pub fn client_credentials(home: &DataHome, ns: &str) -> Credentials {
    let read = |f: &str| ns_file(home, ns, &format!("runtime/certs/skupper-local-client/{f}"));
    Credentials {
        client_cert_pem: read("tls.crt"),
        client_key_pem: read("tls.key"),
        ca_pem: read("ca.crt"),
    }
}

/// A session target: the double on `port`, reached with the namespace's
/// client credentials.
pub fn target(home: &DataHome, ns: &str, port: u16, site_id: &str) -> Option<Target> {
    Some(Target {
        port,
        site_id: site_id.into(),
        platform: Platform::Linux,
        credentials: client_credentials(home, ns),
    })
}
