//! The `podman` and `docker` runners (platform.md 2): the router as the
//! container `<ns>-skupper-router`, driven through the engine's
//! Docker-compatible REST API.
//!
//! # Layout
//! - [`spec`]: pure: the create request and its spec hash, the socket path,
//!   what to do with an existing container, log demultiplexing.
//! - [`engine`]: the [`Engine`] trait and its errors.
//! - [`rest`]: [`Engine`] over HTTP/1.1 on the engine's Unix socket.
//!
//! Every ensure and every poll inspects the container and converges it:
//! absent -> created and started; skupperd's with another spec hash, or
//! the Go tooling's for this site -> re-created; exited -> started again
//! after the restart backoff ([`super::backoff`]), its exit explained from
//! the container's logs and exit code; anyone else's -> left alone, Site
//! `Error`. Engine errors are the runner's `Failed` state, so they reach
//! the Site's `Running` condition with the fix in the message. Routers in
//! containers outlive skupperd ([`Runner::outlives_daemon`]).

pub mod engine;
pub mod rest;
pub mod spec;

use super::backoff::{RestartConfig, RestartPolicy};
use super::output::{ExitKind, Lines, RouterExit};
use super::{RouterDefinition, RouterProcessState, Runner, RunnerError, RunnerFuture};
use crate::config::ImagePull;
use engine::{Engine, EngineError};
use serde_json::Value;
use spec::{EngineKind, Identity, Inspect, Step};
use std::time::Instant;
use tracing::{info, warn};

/// Output lines read back to explain an exit.
const LOG_TAIL: u32 = 50;

/// What the container runner is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSettings {
    pub engine: EngineKind,
    pub image: String,
    pub pull: ImagePull,
    pub identity: Identity,
}

pub struct ContainerRunner<E: Engine> {
    engine: E,
    settings: ContainerSettings,
    namespace: String,
    name: String,
    def: Option<RouterDefinition>,
    request: Option<Value>,
    phase: RouterProcessState,
    /// The last engine error or conflict, shown as `Failed`.
    error: Option<String>,
    /// Set while the router exits too often.
    failed: Option<String>,
    last_exit: Option<RouterExit>,
    restarts: u32,
    policy: RestartPolicy,
    /// The end of the last run already accounted for (an exit seen, or
    /// skupperd's own restart).
    seen_finish: Option<String>,
    started: Instant,
    next_start: Option<Instant>,
}

impl<E: Engine> ContainerRunner<E> {
    pub fn new(engine: E, settings: ContainerSettings, namespace: &str) -> ContainerRunner<E> {
        ContainerRunner {
            engine,
            settings,
            namespace: namespace.to_string(),
            name: spec::container_name(namespace),
            def: None,
            request: None,
            phase: RouterProcessState::NotCreated,
            error: None,
            failed: None,
            last_exit: None,
            restarts: 0,
            policy: RestartPolicy::new(RestartConfig::default()),
            seen_finish: None,
            started: Instant::now(),
            next_start: None,
        }
    }

    pub fn with_restart(mut self, restart: RestartConfig) -> Self {
        self.policy = RestartPolicy::new(restart);
        self
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Records the outcome of a convergence: an error is logged once and
    /// becomes `Failed`; success clears it.
    fn settle(&mut self, result: Result<(), EngineError>) {
        match result {
            Ok(()) => {
                if self.error.take().is_some() {
                    info!(namespace = %self.namespace, "the {} engine serves the router again", self.settings.engine.as_str());
                }
            }
            Err(e) => {
                let message = e.to_string();
                if self.error.as_deref() != Some(message.as_str()) {
                    warn!(namespace = %self.namespace, "router container: {message}");
                }
                self.error = Some(message);
            }
        }
    }

    async fn ensure_image(&self) -> Result<(), EngineError> {
        let image = &self.settings.image;
        match self.settings.pull {
            ImagePull::Always => self.engine.pull(image).await,
            ImagePull::Missing if self.engine.image_present(image).await? => Ok(()),
            ImagePull::Missing => {
                info!(namespace = %self.namespace, "pulling the router image {image}");
                self.engine.pull(image).await
            }
            ImagePull::Never if self.engine.image_present(image).await? => Ok(()),
            ImagePull::Never => Err(EngineError::ImageAbsent {
                engine: self.settings.engine.as_str(),
                image: image.clone(),
            }),
        }
    }

    /// The container is (or is not) running now, after skupperd's start.
    async fn after_start(&mut self) -> Result<(), EngineError> {
        self.started = Instant::now();
        self.next_start = None;
        let now = self.engine.inspect(&self.name).await?;
        self.phase = match now {
            Some(c) if c.state.running() => RouterProcessState::Running,
            _ => RouterProcessState::Restarting,
        };
        Ok(())
    }

    async fn create_and_start(&mut self, request: &Value) -> Result<(), EngineError> {
        self.engine.create(&self.name, request).await?;
        self.seen_finish = None;
        self.phase = RouterProcessState::Starting;
        self.engine.start(&self.name).await?;
        info!(namespace = %self.namespace, "router container {} started", self.name);
        self.after_start().await
    }

    /// An exit of the container's router skupperd has not seen yet:
    /// explained from its logs, counted, and backed off.
    async fn observe_exit(&mut self, c: &Inspect) -> Result<(), EngineError> {
        let Some(finished) = c.state.finished() else {
            return Ok(());
        };
        if self.seen_finish.as_deref() == Some(finished) {
            return Ok(());
        }
        self.seen_finish = Some(finished.to_string());
        let mut lines = Lines::new(LOG_TAIL as usize);
        for line in self
            .engine
            .logs(&self.name, LOG_TAIL)
            .await
            .unwrap_or_default()
        {
            lines.push(line);
        }
        let code = i32::try_from(c.state.exit_code).unwrap_or(i32::MAX);
        let kind = if code > 128 {
            ExitKind::Signal(code - 128)
        } else {
            ExitKind::Code(code)
        };
        let exit = RouterExit::explain(&lines, kind);
        let now = Instant::now();
        let decision = self.policy.on_exit(self.started, now);
        if decision.failed {
            self.failed = Some(format!("router exited: {}", exit.cause));
        }
        warn!(
            namespace = %self.namespace,
            status = %exit.kind,
            failed = decision.failed,
            "router container exited: {}",
            exit.cause
        );
        self.restarts += 1;
        self.last_exit = Some(exit);
        self.next_start = Some(now + decision.delay);
        Ok(())
    }

    /// Brings the container in line with the current definition.
    async fn converge(&mut self) -> Result<(), EngineError> {
        let (Some(def), Some(request)) = (self.def.clone(), self.request.clone()) else {
            return Ok(());
        };
        let hash = spec::hash_of(&request).unwrap_or_default().to_string();
        let existing = self.engine.inspect(&self.name).await?;
        match spec::decide(existing.as_ref(), &self.namespace, &def.site_id, &hash) {
            Step::Conflict(message) => {
                self.phase = RouterProcessState::NotCreated;
                Err(EngineError::Api {
                    engine: self.settings.engine.as_str(),
                    what: "router container".into(),
                    status: 409,
                    message,
                })
            }
            Step::Create => {
                self.ensure_image().await?;
                self.create_and_start(&request).await
            }
            Step::Recreate { adopted } => {
                // The image first: a missing image must not cost the
                // running router.
                self.ensure_image().await?;
                if adopted {
                    info!(namespace = %self.namespace, "adopting the router container {} of the skupper CLI", self.name);
                } else {
                    info!(namespace = %self.namespace, "the router container's spec changed: re-creating {}", self.name);
                }
                self.engine.remove(&self.name).await?;
                self.create_and_start(&request).await
            }
            Step::Start => {
                if let Some(c) = &existing {
                    self.observe_exit(c).await?;
                }
                if self.next_start.is_some_and(|at| Instant::now() < at) {
                    self.phase = RouterProcessState::Restarting;
                    return Ok(());
                }
                self.engine.start(&self.name).await?;
                self.after_start().await
            }
            Step::Keep => {
                // The engine's restart policy may have restarted it.
                if let Some(c) = &existing {
                    self.observe_exit(c).await?;
                }
                self.phase = RouterProcessState::Running;
                Ok(())
            }
        }
    }
}

impl<E: Engine> Runner for ContainerRunner<E> {
    fn ensure<'a>(&'a mut self, def: &'a RouterDefinition) -> RunnerFuture<'a> {
        Box::pin(async move {
            let def = def.absolute()?;
            let request = spec::create_request(&spec::SpecInput {
                namespace: &self.namespace,
                config_path: &def.config_path,
                site_id: &def.site_id,
                image: &self.settings.image,
                engine: self.settings.engine,
                identity: &self.settings.identity,
            });
            self.def = Some(def);
            self.request = Some(request);
            let result = self.converge().await;
            self.settle(result);
            Ok(())
        })
    }

    fn refresh(&mut self) -> RunnerFuture<'_> {
        Box::pin(async move {
            if self.phase != RouterProcessState::Stopped {
                let result = self.converge().await;
                self.settle(result);
            }
            Ok(())
        })
    }

    fn restart(&mut self) -> RunnerFuture<'_> {
        Box::pin(async move {
            if self.def.is_none() {
                return Err(RunnerError::NotDefined);
            }
            let name = self.name.clone();
            let result = async {
                self.engine.restart(&name, spec::STOP_TIMEOUT_S).await?;
                // skupperd's own restart is not an exit of the router.
                if let Some(c) = self.engine.inspect(&name).await? {
                    self.seen_finish = c.state.finished().map(str::to_string);
                }
                self.policy.healthy();
                self.failed = None;
                self.last_exit = None;
                self.after_start().await
            }
            .await;
            self.settle(result);
            Ok(())
        })
    }

    /// Stops and removes the container, if it is skupperd's.
    fn stop(&mut self) -> RunnerFuture<'_> {
        Box::pin(async move {
            if self.phase == RouterProcessState::Stopped {
                return Ok(());
            }
            let name = self.name.clone();
            let namespace = self.namespace.clone();
            let result = async {
                let existing = self.engine.inspect(&name).await?;
                let ours = existing.as_ref().is_some_and(|c| {
                    c.config.labels.get(spec::LABEL_NAMESPACE) == Some(&namespace)
                });
                if ours {
                    self.engine.remove(&name).await?;
                    info!(namespace = %namespace, "router container {name} removed");
                }
                Ok(())
            }
            .await;
            if result.is_ok() {
                self.phase = RouterProcessState::Stopped;
                self.def = None;
                self.request = None;
                self.failed = None;
                self.last_exit = None;
            }
            self.settle(result);
            Ok(())
        })
    }

    fn state(&self) -> RouterProcessState {
        match (&self.error, &self.failed) {
            (Some(e), _) => RouterProcessState::Failed(e.clone()),
            (None, Some(f)) => RouterProcessState::Failed(f.clone()),
            _ => self.phase.clone(),
        }
    }

    fn last_exit(&self) -> Option<RouterExit> {
        self.last_exit.clone()
    }

    fn answered(&mut self) {
        if self.phase != RouterProcessState::Running {
            return;
        }
        if let Some(failed) = self.failed.take() {
            info!(namespace = %self.namespace, "the router answers again; it is no longer failed ({failed})");
        }
        self.last_exit = None;
        self.policy.answered();
    }

    fn restarts(&self) -> u32 {
        self.restarts
    }

    fn outlives_daemon(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        self.settings.engine.as_str()
    }
}

#[cfg(test)]
mod tests;
