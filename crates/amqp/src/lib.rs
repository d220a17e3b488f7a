//! A small AMQP 1.0 implementation for talking to skupper-router: the
//! type codec, messages, frames, SASL, and a connection engine with one
//! session, usable as a client (skupperd) or a server (the router double).
//!
//! Why not a general AMQP crate: the router's replies do not fit the
//! stricter readers (its Python agent echoes a ulong correlation-id as a
//! signed int, its vanflow messages carry a long message-id and symbol
//! application-property keys), and the double must send exactly the bytes
//! the real router sends. This crate reads every section as the spec
//! allows it and keeps each value's AMQP type, so both are possible.

pub mod codec;
pub mod connection;
pub mod frame;
pub mod message;
pub mod sasl;

pub use codec::Value;
pub use connection::{
    client, server, Connection, Delivery, IncomingLink, Options, Outcome, Receiver, Sender,
};
pub use frame::{Role, Terminus};
pub use message::{Body, Message};

/// Why an AMQP operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Reading or writing the stream failed.
    #[error("{what}: {reason}")]
    Io { what: &'static str, reason: String },
    /// The peer broke the protocol (or we could not read what it sent).
    #[error("AMQP protocol error: {0}")]
    Protocol(String),
    /// The connection has ended; the reason says how.
    #[error("{0}")]
    Closed(String),
    /// The peer refused a link or authentication.
    #[error("refused: {0}")]
    Refused(String),
}

impl Error {
    /// An I/O error mapper naming what was being done.
    pub fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
        move |e| Error::Io {
            what,
            reason: match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "the peer closed the stream".to_string(),
                _ => e.to_string(),
            },
        }
    }
}
