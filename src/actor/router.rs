//! The router side of a namespace actor: the runner that keeps the site's
//! router process alive, and the management session that applies the
//! rendered config live and reports what the router really has.
//!
//! Owned by the namespace actor; everything here runs on its task, after a
//! pass has written the files (the router always starts from the current
//! `skrouterd.json`).

use crate::plan::{prior, Identity, Platform, RouterState};
use crate::router::session::{Session, Target};
use crate::router::Credentials;
use crate::runner::{
    none::NoneRunner,
    process::{ProcessRunner, ProcessRunnerConfig},
    RouterDefinition, RouterProcessState, Runner,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// How routers are started, from the daemon's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerChoice {
    /// Start nothing; still sync a router that is reachable.
    None,
    /// Start `binary` as a child process for linux namespaces.
    Process { binary: PathBuf },
}

impl RunnerChoice {
    pub fn from_config(config: &crate::config::Config) -> RunnerChoice {
        use crate::config::{LinuxRunner, RunnerMode};
        match config.runner {
            RunnerMode::None => RunnerChoice::None,
            RunnerMode::Auto => {
                if config.linux_runner == LinuxRunner::Systemd {
                    warn!("linux_runner = \"systemd\" is not implemented yet; routers run as child processes");
                }
                RunnerChoice::Process {
                    binary: config.router_binary.clone(),
                }
            }
        }
    }
}

/// What the router side needs to know about the namespace after a pass.
pub struct Facts<'a> {
    pub namespace: &'a str,
    pub ns_dir: &'a Path,
    pub platform: Option<Platform>,
    pub site_active: bool,
    pub identity: Option<&'a Identity>,
    pub runtime: &'a BTreeMap<String, Vec<u8>>,
}

pub struct RouterSide {
    choice: RunnerChoice,
    /// The runner in use for the current platform.
    runner: Box<dyn Runner>,
    runner_is_process: bool,
    session: Session,
    /// What the last pass was given; the actor re-runs the pass when this
    /// changes.
    pub state: RouterState,
    restart_logged: bool,
    /// Why the router was last restarted, for `runtime/status.yaml`.
    restart_note: Option<String>,
}

fn credentials(runtime: &BTreeMap<String, Vec<u8>>) -> Option<Credentials> {
    let get = |f: &str| {
        runtime
            .get(&format!("runtime/certs/skupper-local-client/{f}"))
            .cloned()
    };
    Some(Credentials {
        client_cert_pem: get("tls.crt")?,
        client_key_pem: get("tls.key")?,
        ca_pem: get("ca.crt")?,
    })
}

impl RouterSide {
    pub fn new(choice: RunnerChoice) -> RouterSide {
        let mut side = RouterSide {
            choice,
            runner: Box::new(NoneRunner::new()),
            runner_is_process: false,
            session: Session::default(),
            state: RouterState::default(),
            restart_logged: false,
            restart_note: None,
        };
        side.state = side.current(None);
        side
    }

    pub fn connected(&self) -> bool {
        self.session.connected()
    }

    /// A sync put off by the reconnect backoff, owed at this time.
    pub fn deferred(&self) -> Option<std::time::Instant> {
        self.session.deferred()
    }

    /// Whether to poll at the poll interval: a router is connected, or a
    /// router process is expected to answer soon. Otherwise nothing polls
    /// faster than the resync period.
    pub fn polls(&self) -> bool {
        self.session.connected()
            || (self.runner_is_process
                && matches!(
                    self.runner.state(),
                    RouterProcessState::Starting
                        | RouterProcessState::Running
                        | RouterProcessState::Restarting
                ))
    }

    /// The router state the statuses are computed from.
    fn current(&self, view: Option<crate::plan::RouterView>) -> RouterState {
        let process_state = self.runner.state();
        let failure = match (&process_state, &self.session.foreign) {
            (_, Some(foreign)) => Some(foreign.clone()),
            (RouterProcessState::Failed(why), _) => Some(why.clone()),
            _ => None,
        };
        let (runner, state, message) = if self.runner_is_process {
            let state = match &process_state {
                RouterProcessState::NotCreated => "NotCreated",
                RouterProcessState::Starting => "Starting",
                RouterProcessState::Running => "Running",
                RouterProcessState::Restarting => "Restarting",
                RouterProcessState::Failed(_) => "Failed",
                RouterProcessState::Stopped => "Stopped",
            };
            let message = match (&process_state, &self.restart_note) {
                (RouterProcessState::Running | RouterProcessState::Starting, Some(note)) => {
                    note.clone()
                }
                _ => self.runner.last_error_line().unwrap_or_default(),
            };
            ("process", state, message)
        } else if view.is_some() {
            ("none", "Unmanaged", String::new())
        } else {
            (
                "none",
                "NotCreated",
                "runner is none: skupperd does not start routers".to_string(),
            )
        };
        RouterState {
            runner: runner.to_string(),
            state: state.to_string(),
            message,
            failure,
            restarts: self.runner.restarts(),
            view,
        }
    }

    /// After an applied pass: keep the router running with the current
    /// config, bring it in line over management, and report. Returns
    /// whether the state the statuses depend on changed.
    pub async fn after_pass(&mut self, facts: &Facts<'_>) -> bool {
        let wants_process = matches!(self.choice, RunnerChoice::Process { .. })
            && facts.platform == Some(Platform::Linux);
        if wants_process != self.runner_is_process {
            self.runner.stop().await.ok();
            self.runner = match (&self.choice, wants_process) {
                (RunnerChoice::Process { .. }, true) => {
                    Box::new(ProcessRunner::new(ProcessRunnerConfig::default()))
                }
                _ => Box::new(NoneRunner::new()),
            };
            self.runner_is_process = wants_process;
        }
        let (Some(identity), true) = (facts.identity, facts.site_active) else {
            // No Site: the router stops, nothing is synced.
            self.runner.stop().await.ok();
            self.session.set_target(None);
            return self.update(None);
        };
        if let RunnerChoice::Process { binary } = &self.choice {
            if self.runner_is_process {
                let def = RouterDefinition {
                    namespace: facts.namespace.to_string(),
                    config_path: facts.ns_dir.join(prior::CONFIG_FILE),
                    site_id: identity.site_id.clone(),
                    binary: binary.clone(),
                };
                if let Err(e) = self.runner.ensure(&def).await {
                    warn!("cannot start the router: {e}");
                }
            }
        }
        let target = credentials(facts.runtime).map(|credentials| Target {
            port: identity.management_port,
            site_id: identity.site_id.clone(),
            platform: facts.platform.unwrap_or(Platform::Podman),
            credentials,
        });
        self.session.set_target(target);
        if let Some(config) = facts.runtime.get(prior::CONFIG_FILE) {
            self.session.set_config(config);
        }
        let view = self
            .session
            .sync(&crate::render::timestamp(time::OffsetDateTime::now_utc()))
            .await;
        self.restart_if_needed().await;
        self.update(view)
    }

    /// Changes the router cannot take live (router id or mode) need a
    /// restart (platform.md 4).
    async fn restart_if_needed(&mut self) {
        if !self.session.restart_needed {
            self.restart_logged = false;
            return;
        }
        if self.runner_is_process {
            info!("the router's id or mode changed: restarting it");
            self.restart_note = Some(format!(
                "restarted at {} to apply a new router id or mode",
                crate::render::timestamp(time::OffsetDateTime::now_utc())
            ));
            self.runner.restart().await.ok();
            self.session.disconnect();
            self.session.restart_needed = false;
        } else if !self.restart_logged {
            warn!("the router's id or mode differ from skrouterd.json; restart the router to apply them");
            self.restart_logged = true;
        }
    }

    /// The light poll between passes (router.md 3.9); reconnects when the
    /// connection was lost. Returns whether the state changed.
    pub async fn poll(&mut self) -> bool {
        let view = if self.session.connected() {
            self.session.poll().await
        } else {
            let now = crate::render::timestamp(time::OffsetDateTime::now_utc());
            self.session.sync(&now).await
        };
        self.restart_if_needed().await;
        self.update(view)
    }

    fn update(&mut self, view: Option<crate::plan::RouterView>) -> bool {
        let next = self.current(view);
        let changed = next != self.state;
        self.state = next;
        changed
    }

    /// The daemon stops: child routers stop with it (platform.md 1.2).
    pub async fn stop(&mut self) {
        self.session.set_target(None);
        self.runner.stop().await.ok();
    }
}
