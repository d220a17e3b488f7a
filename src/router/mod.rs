//! Talking to the running skupper-router (router.md sections 5 and 7).
//!
//! The reconcile core never touches the network: it sees the router through
//! the [`Management`] trait, so unit tests pass a fake and the daemon passes
//! an [`AmqpManagement`] connected with [`connect`]. Entities travel as JSON
//! maps ([`Entity`]) because the rest of skupperd (rendering, diffing,
//! status) already speaks JSON; [`value`] converts at the AMQP edge.
//!
//! - [`mgmt`]: the AMQP 1.0 management client (one connection, one session,
//!   a dynamic reply receiver and a `$management` sender) over the
//!   `skupperd-amqp` crate, which reads replies as the real router sends
//!   them.
//! - `tls`: mutual TLS from PEM bytes, before SASL EXTERNAL and AMQP.
//! - [`value`]: AMQP value <-> JSON conversion.
//! - [`vanflow`]: the network view built from the router's event stream.

use std::future::Future;
use std::pin::Pin;

pub mod mgmt;
pub mod session;
mod tls;
pub mod value;
pub mod vanflow;

pub use mgmt::{connect, AmqpManagement};

/// One management entity (or QUERY row): attribute name -> value. Unset
/// attributes come back from the router as JSON `null`.
pub type Entity = serde_json::Map<String, serde_json::Value>;

/// The boxed future every [`Management`] operation returns. Boxed so the
/// trait stays object safe (`Box<dyn Management>`) and the futures are `Send`
/// (they run inside a namespace actor's task).
pub type MgmtFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, MgmtError>> + Send + 'a>>;

/// The management prefix the router puts before every short type name.
pub const TYPE_PREFIX: &str = "io.skupper.router.";

/// Long type name for a short one (`tcpListener` ->
/// `io.skupper.router.tcpListener`); a name that already has the prefix is
/// kept as it is.
pub fn full_type(entity_type: &str) -> String {
    if entity_type.starts_with(TYPE_PREFIX) {
        entity_type.to_string()
    } else {
        format!("{TYPE_PREFIX}{entity_type}")
    }
}

/// How a request names its entity: skupperd uses `name` everywhere except
/// for log entities, which it addresses by identity (`log/DEFAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    Name(&'a str),
    Identity(&'a str),
}

impl<'a> From<&'a str> for Key<'a> {
    fn from(name: &'a str) -> Self {
        Key::Name(name)
    }
}

/// Why a management operation failed. The split matters to the caller:
/// `Refused` marks one resource `Error` and the plan continues, `Lost`
/// stops the plan and reconnects (router.md 3.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MgmtError {
    /// The router answered with a status code other than the operation's
    /// success code. `description` is the router's own `statusDescription`.
    #[error("{code} {description}")]
    Refused { code: u16, description: String },
    /// The connection could not be opened, broke, or a request got no
    /// answer within the timeout: reconnect and re-observe.
    #[error("management connection lost: {0}")]
    Lost(String),
    /// The peer broke the management protocol (an answer without
    /// `statusCode`, a QUERY body that is not a table, SASL refused, ...).
    #[error("management protocol error: {0}")]
    Protocol(String),
    /// The local credentials (PEM files) could not be used.
    #[error("management credentials unusable: {0}")]
    Credentials(String),
}

/// The PEM bytes for the management connection: the client certificate
/// chain and key from `runtime/certs/skupper-local-client/`, and the CA
/// that signed the router's management server certificate.
#[derive(Clone)]
pub struct Credentials {
    pub client_cert_pem: Vec<u8>,
    pub client_key_pem: Vec<u8>,
    pub ca_pem: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    // Never print the private key, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_cert_pem", &self.client_cert_pem.len())
            .field("client_key_pem", &"<redacted>")
            .field("ca_pem", &self.ca_pem.len())
            .finish()
    }
}

/// The router's management operations, as skupperd uses them. Entity types
/// may be short (`tcpListener`) or long (`io.skupper.router.tcpListener`).
pub trait Management: Send {
    /// QUERY every row of a type with the given attributes (an empty list
    /// means all attributes), reading page after page until all rows are in.
    fn query<'a>(
        &'a mut self,
        entity_type: &'a str,
        attrs: &'a [&'a str],
    ) -> MgmtFuture<'a, Vec<Entity>>;

    /// The type's full attribute list, in schema order, from a QUERY with an
    /// empty `attributeNames`; used to probe router capabilities (router.md
    /// 8). An unknown type is `Refused` with code 400.
    fn attribute_names<'a>(&'a mut self, entity_type: &'a str) -> MgmtFuture<'a, Vec<String>>;

    /// CREATE; answers the full entity with the router's defaults (201).
    fn create<'a>(
        &'a mut self,
        entity_type: &'a str,
        name: &'a str,
        attrs: &'a Entity,
    ) -> MgmtFuture<'a, Entity>;

    /// UPDATE the given attributes; answers the entity (200).
    fn update<'a>(
        &'a mut self,
        entity_type: &'a str,
        key: Key<'a>,
        attrs: &'a Entity,
    ) -> MgmtFuture<'a, Entity>;

    /// DELETE (204).
    fn delete<'a>(&'a mut self, entity_type: &'a str, key: Key<'a>) -> MgmtFuture<'a, ()>;

    /// READ one entity (200).
    fn read<'a>(&'a mut self, entity_type: &'a str, key: Key<'a>) -> MgmtFuture<'a, Entity>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names_get_the_router_prefix_once() {
        assert_eq!(full_type("tcpListener"), "io.skupper.router.tcpListener");
        assert_eq!(
            full_type("router.address"),
            "io.skupper.router.router.address"
        );
        assert_eq!(
            full_type("io.skupper.router.sslProfile"),
            "io.skupper.router.sslProfile"
        );
    }

    #[test]
    fn credentials_debug_never_shows_the_key() {
        let creds = Credentials {
            client_cert_pem: b"cert".to_vec(),
            client_key_pem: b"-----BEGIN PRIVATE KEY-----secret".to_vec(),
            ca_pem: b"ca".to_vec(),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
