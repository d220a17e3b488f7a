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
    /// The management port of the last pass's identity.
    management_port: Option<u16>,
    /// Set after skupperd moved the router off a management port another
    /// process held: the Site's status says so while the router runs.
    port_notice: Option<String>,
    /// The runner's restart count when the router last answered.
    restarts_at_view: u32,
    /// The runner's restart count when the session was last told to try
    /// at once.
    restarts_retried: u32,
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
            management_port: None,
            port_notice: None,
            restarts_at_view: 0,
            restarts_retried: 0,
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

    /// The management port another process holds, as the router's own
    /// exit showed it (process runner only: another runner's router is
    /// not skupperd's to move).
    fn port_taken(&self) -> Option<u16> {
        if !self.runner_is_process {
            return None;
        }
        self.runner
            .last_exit()
            .and_then(|exit| exit.listener_port_taken)
            .filter(|port| Some(*port) == self.management_port)
    }

    /// The router state the statuses are computed from.
    fn current(&self, view: Option<crate::plan::RouterView>) -> RouterState {
        let process_state = self.runner.state();
        let failure = match (&process_state, &self.session.foreign) {
            (_, Some(foreign)) => Some(foreign.clone()),
            (RouterProcessState::Failed(why), _) => Some(why.clone()),
            _ => None,
        };
        let taken = self.port_taken();
        // Why the router cannot be reached, most telling first: a port
        // another process holds; a running router whose management fails;
        // the router's last exit (until it answers again); a management
        // failure.
        let exited = self
            .runner
            .last_exit()
            .map(|exit| format!("router exited: {}", exit.cause));
        let running = process_state == RouterProcessState::Running;
        let unreachable = match (&view, taken, self.session.failure(), exited) {
            (Some(_), ..) => None,
            (None, Some(port), ..) => Some(format!(
                "management port {port} is in use by another process; the router moves to another port"
            )),
            (None, None, Some(failure), _) if running => Some(failure.to_string()),
            (None, None, _, Some(exited)) => Some(exited),
            (None, None, failure, None) => failure.map(str::to_string),
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
            let message = match (&failure, &unreachable, &process_state, &self.restart_note) {
                (Some(failure), _, _, _) => failure.clone(),
                (None, Some(why), _, _) => why.clone(),
                (
                    None,
                    None,
                    RouterProcessState::Running | RouterProcessState::Starting,
                    Some(note),
                ) => note.clone(),
                _ => String::new(),
            };
            ("process", state, message)
        } else if view.is_some() {
            ("none", "Unmanaged", String::new())
        } else {
            let message = match (&failure, &unreachable) {
                (Some(why), _) | (None, Some(why)) => why.clone(),
                (None, None) => "runner is none: skupperd does not start routers".to_string(),
            };
            ("none", "NotCreated", message)
        };
        RouterState {
            runner: runner.to_string(),
            state: state.to_string(),
            message,
            failure,
            unreachable,
            notice: self.port_notice.clone(),
            management_port_taken: taken,
            restarts: self.runner.restarts(),
            view,
        }
    }

    /// Whether the router side must see the next pass's outcome even when
    /// the router caused that pass: the pass moves the management port,
    /// and only a restart makes the router use the new one.
    pub fn awaits_pass(&self) -> bool {
        self.state.management_port_taken.is_some()
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
        // The pass replaced a management port another process took: the
        // router only reads the new one when it starts again.
        let moved_from = self
            .state
            .management_port_taken
            .filter(|old| *old != identity.management_port);
        self.management_port = Some(identity.management_port);
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
                if let Some(old) = moved_from {
                    self.move_management_port(old, identity.management_port)
                        .await;
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
        if self.skip_taken_port() {
            return self.update(None);
        }
        self.tell_session();
        let view = self
            .session
            .sync(&crate::render::timestamp(time::OffsetDateTime::now_utc()))
            .await;
        self.restart_if_needed().await;
        self.update(view)
    }

    /// While another process holds the management port, whatever answers
    /// there is not this site's router: nothing is sent to it (a peer
    /// that accepts and never speaks would also stall the actor for the
    /// whole connect timeout at every attempt).
    fn skip_taken_port(&mut self) -> bool {
        if self.port_taken().is_none() {
            return false;
        }
        self.session.disconnect();
        true
    }

    /// Whether the runner knows its router is down: refused connections
    /// are expected then, not failures worth a warning.
    fn tell_session(&mut self) {
        let down =
            self.runner_is_process && !matches!(self.runner.state(), RouterProcessState::Running);
        self.session.set_router_down(down);
    }

    /// Restarts the router on its new management port (platform.md 4).
    async fn move_management_port(&mut self, old: u16, new: u16) {
        warn!(
            "management port {old} is in use by another process: the router is restarted on port {new}"
        );
        let notice = format!(
            "management port {old} is in use by another process; the router moved to port {new}"
        );
        self.restart_note = Some(format!(
            "restarted at {}: {notice}",
            crate::render::timestamp(time::OffsetDateTime::now_utc())
        ));
        self.port_notice = Some(notice);
        self.session.disconnect();
        if let Err(e) = self.runner.restart().await {
            warn!("cannot restart the router: {e}");
        }
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

    /// Before a pass: the runner learns at once that its router exited,
    /// the session only at its next request. A view from before the exit
    /// is not what the router shows any more, so a pass in between must
    /// not report it (it would keep, or even make, statuses `Ready` with
    /// the router gone). A router restarted since counts as exited too.
    pub fn forget_exited_router(&mut self) {
        let exited = self.runner_is_process
            && self.state.view.is_some()
            && (self.runner.state() != RouterProcessState::Running
                || self.runner.restarts() != self.restarts_at_view);
        if exited {
            self.session.disconnect();
            self.update(None);
        }
    }

    /// The light poll between passes (router.md 3.9); reconnects when the
    /// connection was lost. Returns whether the state changed.
    pub async fn poll(&mut self) -> bool {
        if self.skip_taken_port() {
            return self.update(None);
        }
        self.tell_session();
        // The runner has just started the router again: the reconnect
        // backoff grown while it was down (up to 5 s) would make the
        // resync wait that long after the router is back.
        let restarts = self.runner.restarts();
        if self.runner_is_process && restarts != self.restarts_retried {
            self.restarts_retried = restarts;
            self.session.retry_now();
        }
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
        if view.is_some() {
            // The router answers: whatever exits came before, this run
            // is good (a `Failed` from earlier exits no longer holds).
            self.runner.answered();
            self.restarts_at_view = self.runner.restarts();
        }
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
