//! Runners: how the router of one namespace is started, kept running and
//! stopped (platform.md 0). Every runner offers the same operations, so the
//! namespace actor does not care whether the router is a systemd unit, a
//! container or a child process.
//!
//! # Layout
//! - [`none`]: starts nothing (runner `none`, platform.md 3).
//! - [`process`]: the router as a child of skupperd (platform.md 1.2), with
//!   its restart policy in [`backoff`] and output handling in [`output`].
//! - [`systemd`]: the `systemd` runner (platform.md 1.1): the template
//!   instance `skupper-router@<ns>.service` over systemd's D-Bus API.
//! - [`container`]: the `podman` and `docker` runners (platform.md 2): the
//!   router container through the engine's Docker-compatible REST API.

pub mod backoff;
pub mod container;
pub mod none;
pub mod output;
pub mod process;
pub mod systemd;

pub use none::NoneRunner;
pub use output::{ExitKind, RouterExit};
pub use process::{ProcessRunner, ProcessRunnerConfig};

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// Where a runner's router is, as the status reports it (platform.md 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterProcessState {
    /// Nothing was ever started (or the runner starts nothing).
    NotCreated,
    /// Being started for the first time, or after a definition change.
    Starting,
    Running,
    /// Exited on its own; waiting out the backoff before the next start.
    Restarting,
    /// Exits too often (five times within a minute); the reason names the
    /// cause of the last exit. Retries continue, slower. Cleared as soon
    /// as a start succeeds and the router answers ([`Runner::answered`]).
    Failed(String),
    /// Stopped on request.
    Stopped,
}

/// What a runner needs to start the router of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterDefinition {
    pub namespace: String,
    /// `runtime/router/skrouterd.json`; made absolute before use.
    pub config_path: PathBuf,
    /// Passed as `SKUPPER_SITE_ID`.
    pub site_id: String,
    /// `router_binary` (default `/usr/sbin/skrouterd`).
    pub binary: PathBuf,
}

impl RouterDefinition {
    /// The same definition with an absolute `config_path`: the router (a
    /// child, a unit or a container mount) does not run in skupperd's
    /// working directory.
    pub fn absolute(&self) -> Result<RouterDefinition, RunnerError> {
        let config_path =
            std::path::absolute(&self.config_path).map_err(|source| RunnerError::ConfigPath {
                path: self.config_path.clone(),
                source,
            })?;
        Ok(RouterDefinition {
            config_path,
            ..self.clone()
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The router binary could not be executed (missing, not executable).
    /// The runner keeps retrying with its backoff.
    #[error("cannot start router {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    /// The config path could not be made absolute (no current directory).
    #[error("config path {path}: {source}")]
    ConfigPath {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `restart` before any `ensure`: there is nothing to restart.
    #[error("no router definition for this runner yet")]
    NotDefined,
    /// The task supervising the router is gone (it panicked, or the runtime
    /// is shutting down).
    #[error("router supervisor of namespace {namespace} is gone")]
    SupervisorGone { namespace: String },
}

/// A boxed future, so runners can be chosen at run time (`Box<dyn Runner>`).
pub type RunnerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), RunnerError>> + Send + 'a>>;

/// The operations every runner offers (platform.md 0).
pub trait Runner: Send {
    /// Create or update the router definition and make sure it runs; a
    /// changed definition restarts the router.
    fn ensure<'a>(&'a mut self, def: &'a RouterDefinition) -> RunnerFuture<'a>;
    /// Stop and start again, e.g. after a change that needs a restart
    /// (platform.md 4).
    fn restart(&mut self) -> RunnerFuture<'_>;
    /// Stop the router and remove its definition (a container is
    /// removed); it stays stopped until the next `ensure`.
    fn stop(&mut self) -> RunnerFuture<'_>;
    /// Look at the router again between passes (a container runner
    /// inspects its container, starts it again after an exit, and notes
    /// why it exited). The process runner learns this from its child.
    fn refresh(&mut self) -> RunnerFuture<'_> {
        Box::pin(async { Ok(()) })
    }
    /// The router keeps running when skupperd stops (containers, systemd
    /// units); child processes stop with skupperd (platform.md 1.2).
    fn outlives_daemon(&self) -> bool {
        false
    }
    fn state(&self) -> RouterProcessState;
    /// The last exit skupperd did not ask for, explained, until a start
    /// after it is known good (the router answered, or stayed up long
    /// enough) or skupperd restarts the router itself.
    fn last_exit(&self) -> Option<RouterExit>;
    /// The router answered over management: whatever exits came before,
    /// the current run is good, so `Failed` and the last exit are cleared.
    fn answered(&mut self) {}
    /// Automatic restarts after exits skupperd did not ask for.
    fn restarts(&self) -> u32;
    /// `none`, `process`, `systemd`, `podman`, `docker`.
    fn name(&self) -> &'static str;
}
