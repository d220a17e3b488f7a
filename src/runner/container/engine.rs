//! The engine operations the container runner needs (platform.md 2.2),
//! behind a trait so the runner is tested without an engine, and the REST
//! implementation over the engine's Unix socket ([`super::rest`]).

use super::spec::Inspect;
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;

/// An engine request that failed, with what the Site's status should say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The socket does not exist.
    #[error("{engine} API socket {} not found; run: {fix}", path.display())]
    NoSocket {
        engine: &'static str,
        path: PathBuf,
        fix: String,
    },
    /// The socket exists but cannot be connected to, or the connection
    /// broke.
    #[error("{engine} API at {}: {detail}", path.display())]
    Connect {
        engine: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// The engine answered with an error status; `message` is its own.
    #[error("{engine} API {what}: {message} (HTTP {status})")]
    Api {
        engine: &'static str,
        what: String,
        status: u16,
        message: String,
    },
    /// An answer skupperd cannot read.
    #[error("{engine} API {what}: {detail}")]
    Protocol {
        engine: &'static str,
        what: String,
        detail: String,
    },
    /// The image is absent and may not be pulled.
    #[error(
        "image {image} is not present and image_pull is \"never\"; run: {engine} pull {image}"
    )]
    ImageAbsent { engine: &'static str, image: String },
}

impl EngineError {
    /// The engine said "no such container/image".
    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::Api { status: 404, .. })
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// The engine's Docker-compatible API, as the runner uses it.
pub trait Engine: Send + Sync + 'static {
    /// `GET /containers/<name>/json`; `None` when there is no such
    /// container.
    fn inspect(&self, name: &str) -> impl Future<Output = EngineResult<Option<Inspect>>> + Send;
    fn image_present(&self, image: &str) -> impl Future<Output = EngineResult<bool>> + Send;
    fn pull(&self, image: &str) -> impl Future<Output = EngineResult<()>> + Send;
    fn create(&self, name: &str, request: &Value) -> impl Future<Output = EngineResult<()>> + Send;
    /// Starting a running container is not an error.
    fn start(&self, name: &str) -> impl Future<Output = EngineResult<()>> + Send;
    fn restart(&self, name: &str, timeout_s: u32) -> impl Future<Output = EngineResult<()>> + Send;
    /// Stops and removes; an absent container is not an error.
    fn remove(&self, name: &str) -> impl Future<Output = EngineResult<()>> + Send;
    /// The last `tail` lines of output, stdout and stderr.
    fn logs(&self, name: &str, tail: u32)
        -> impl Future<Output = EngineResult<Vec<String>>> + Send;
}
