//! The router side of a namespace actor: the runner that keeps the site's
//! router process alive, and the management session that applies the
//! rendered config live and reports what the router really has.
//!
//! Owned by the namespace actor; everything here runs on its task, after a
//! pass has written the files (the router always starts from the current
//! `skrouterd.json`).

use crate::plan::{prior, Identity, Platform, RouterState};
use crate::router::session::{Interrupt, Session, Target};
use crate::router::Credentials;
use crate::runner::container::{
    rest::RestEngine,
    spec::{self, EngineKind},
    ContainerRunner, ContainerSettings,
};
use crate::runner::{
    none::NoneRunner,
    process::{ProcessRunner, ProcessRunnerConfig},
    systemd::{Scope, SystemdPaths, SystemdRunner},
    RouterDefinition, RouterProcessState, Runner,
};
use crate::store::fsio::StoreError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// How routers are started, from the daemon's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerChoice {
    /// Start nothing; still sync a router that is reachable.
    None,
    /// Start each namespace's router as its platform says: `binary` as a
    /// child process for linux, the router container for podman and docker.
    Auto {
        binary: PathBuf,
        linux: LinuxChoice,
        containers: ContainerChoice,
    },
}

/// How linux namespaces run their router (platform.md 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinuxChoice {
    /// `binary` as a child process.
    Process,
    /// `skupper-router@<ns>.service` of this manager.
    Systemd(SystemdPaths),
}

impl LinuxChoice {
    /// `linux_runner`: `process`; `systemd`; or `auto`: systemd when a
    /// manager is reachable and the `skupper-router@.service` template is
    /// installed for it (a host without the package, a test machine, keeps
    /// child processes), else the process runner, said once.
    pub fn resolve(
        setting: crate::config::LinuxRunner,
        paths: Option<SystemdPaths>,
        exists: impl Fn(&Path) -> bool,
    ) -> LinuxChoice {
        use crate::config::LinuxRunner;
        match (setting, paths) {
            (LinuxRunner::Process, _) => LinuxChoice::Process,
            (LinuxRunner::Systemd, Some(paths)) => LinuxChoice::Systemd(paths),
            (LinuxRunner::Systemd, None) => {
                warn!("linux_runner = \"systemd\": a user skupperd needs XDG_RUNTIME_DIR to reach its systemd manager; linux routers run as child processes of skupperd");
                LinuxChoice::Process
            }
            // The system template runs skrouterd as `skupper`, and a root
            // skupperd does not hand runtime/ to that user yet (platform.md
            // 1.1): only a user manager is chosen by itself.
            (LinuxRunner::Auto, Some(paths))
                if paths.scope == Scope::System
                    && paths.reachable(&exists)
                    && template_installed(paths.scope, &exists) =>
            {
                info!("linux routers run as child processes of skupperd: skupper-router@.service runs skrouterd as the skupper user, which cannot read runtime/ yet (linux_runner = \"systemd\" forces the units)");
                LinuxChoice::Process
            }
            (LinuxRunner::Auto, Some(paths))
                if paths.reachable(&exists) && template_installed(paths.scope, &exists) =>
            {
                info!("linux routers run as systemd units skupper-router@<namespace>.service");
                LinuxChoice::Systemd(paths)
            }
            (LinuxRunner::Auto, _) => {
                info!("no systemd manager with the skupper-router@.service template is reachable: linux routers run as child processes of skupperd");
                LinuxChoice::Process
            }
        }
    }
}

/// The router template unit is installed for `scope`'s manager.
fn template_installed(scope: Scope, exists: impl Fn(&Path) -> bool) -> bool {
    let dirs: &[&str] = match scope {
        Scope::System => &[
            "/etc/systemd/system",
            "/usr/lib/systemd/system",
            "/lib/systemd/system",
        ],
        Scope::User => &["/etc/systemd/user", "/usr/lib/systemd/user"],
    };
    dirs.iter()
        .any(|d| exists(&Path::new(d).join("skupper-router@.service")))
}

/// What the container runners are made from (platform.md 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChoice {
    pub image: String,
    pub pull: crate::config::ImagePull,
    pub podman_endpoint: Option<PathBuf>,
    pub docker_endpoint: Option<PathBuf>,
    pub identity: spec::Identity,
}

impl ContainerChoice {
    /// The runner of `engine` for `namespace`, on the socket platform.md
    /// 2.3 names.
    fn runner(&self, engine: EngineKind, namespace: &str) -> Box<dyn Runner> {
        let configured = match engine {
            EngineKind::Podman => self.podman_endpoint.as_deref(),
            EngineKind::Docker => self.docker_endpoint.as_deref(),
        };
        let socket = spec::socket_path(engine, configured, &self.identity, |p| p.exists());
        let fix = spec::socket_fix(engine, &self.identity);
        let settings = ContainerSettings {
            engine,
            image: self.image.clone(),
            pull: self.pull,
            identity: self.identity.clone(),
        };
        Box::new(ContainerRunner::new(
            RestEngine::new(engine, socket, fix),
            settings,
            namespace,
        ))
    }
}

impl RunnerChoice {
    pub fn from_config(config: &crate::config::Config) -> RunnerChoice {
        use crate::config::RunnerMode;
        match config.runner {
            RunnerMode::None => RunnerChoice::None,
            RunnerMode::Auto => {
                let identity = spec::Identity {
                    uid: rustix::process::getuid().as_raw(),
                    gid: rustix::process::getgid().as_raw(),
                    runtime_dir: std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
                };
                let paths = SystemdPaths::for_identity(
                    rustix::process::geteuid().is_root(),
                    identity.runtime_dir.as_deref(),
                );
                let linux = LinuxChoice::resolve(config.linux_runner, paths, |p| p.exists());
                RunnerChoice::Auto {
                    binary: config.router_binary.clone(),
                    linux,
                    containers: ContainerChoice {
                        image: config.router_image.clone(),
                        pull: config.image_pull,
                        podman_endpoint: config.podman_endpoint.clone(),
                        docker_endpoint: config.docker_endpoint.clone(),
                        identity,
                    },
                }
            }
        }
    }

    /// The runner a namespace on `platform` gets (`None`: the none
    /// runner).
    fn runner_for(&self, platform: Option<Platform>, namespace: &str) -> Option<Box<dyn Runner>> {
        let RunnerChoice::Auto {
            containers, linux, ..
        } = self
        else {
            return None;
        };
        match platform? {
            Platform::Linux => match linux {
                LinuxChoice::Process => {
                    Some(Box::new(ProcessRunner::new(ProcessRunnerConfig::default())))
                }
                LinuxChoice::Systemd(paths) => {
                    Some(Box::new(SystemdRunner::new(paths.clone(), namespace)))
                }
            },
            Platform::Podman => Some(containers.runner(EngineKind::Podman, namespace)),
            Platform::Docker => Some(containers.runner(EngineKind::Docker, namespace)),
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

/// The files of the pass, when they are still being written while the
/// router is synced (see `namespace::Deferred`). Whatever reads them from
/// disk (a router start or restart) waits for them first.
pub struct Files {
    writing: Option<Writing>,
    result: Option<Result<Result<(), StoreError>, tokio::task::JoinError>>,
}

/// The pass's write on the blocking pool.
pub type Writing = tokio::task::JoinHandle<Result<(), StoreError>>;

impl Files {
    pub fn new(writing: Option<Writing>) -> Files {
        Files {
            writing,
            result: None,
        }
    }

    /// Waits until the files are on disk (or failed to get there).
    pub async fn wait(&mut self) {
        if let Some(handle) = self.writing.take() {
            self.result = Some(handle.await);
        }
    }

    /// How the write ended: a store error, or the writing thread's panic.
    pub async fn written(mut self) -> Result<Result<(), StoreError>, tokio::task::JoinError> {
        self.wait().await;
        self.result.unwrap_or(Ok(Ok(())))
    }
}

pub struct RouterSide {
    choice: RunnerChoice,
    /// The runner in use for the current platform.
    runner: Box<dyn Runner>,
    /// The platform whose runner is in use (`None`: the none runner).
    active: Option<Platform>,
    /// The runner starts routers (it is not the none runner).
    starts_routers: bool,
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
            active: None,
            starts_routers: false,
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
    /// router is expected to answer soon, or a failed router may come back
    /// without skupperd (see [`RouterSide::watches_failed`]). Otherwise
    /// nothing polls faster than the resync period.
    pub fn polls(&self) -> bool {
        self.session.connected()
            || (self.starts_routers
                && matches!(
                    self.runner.state(),
                    RouterProcessState::Starting
                        | RouterProcessState::Running
                        | RouterProcessState::Restarting
                ))
            || self.watches_failed()
    }

    /// A failed container or unit can be started again by its engine's
    /// restart policy or by an operator who fixed the cause, so it is
    /// watched (at the poll interval, not faster) until it recovers; a
    /// failed child process only skupperd starts again.
    pub fn watches_failed(&self) -> bool {
        self.starts_routers
            && matches!(self.runner.state(), RouterProcessState::Failed(_))
            && self.runner.name() != "process"
    }

    /// The management port another process holds, as the router's own
    /// exit showed it (only for routers skupperd starts: another router is
    /// not skupperd's to move).
    fn port_taken(&self) -> Option<u16> {
        if !self.starts_routers {
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
        let (runner, state, message) = if self.starts_routers {
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
            (self.runner.name(), state, message)
        } else if view.is_some() {
            ("none", "Unmanaged", String::new())
        } else {
            let message = match (&failure, &unreachable) {
                (Some(why), _) | (None, Some(why)) => why.clone(),
                (None, None) if matches!(self.choice, RunnerChoice::Auto { .. }) => {
                    // Before the first pass has picked the platform's runner.
                    "the router is not started yet".to_string()
                }
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

    /// Whether the next pass's changes go to a running router over
    /// management, with nothing to start: then the pass's files may still
    /// be in flight while the router is synced.
    pub fn syncs_live(&self) -> bool {
        self.session.connected()
            && !self.awaits_pass()
            && (!self.starts_routers || self.runner.state() == RouterProcessState::Running)
    }

    /// After an applied pass: keep the router running with the current
    /// config, bring it in line over management, and report. Returns
    /// whether the state the statuses depend on changed.
    pub async fn after_pass(&mut self, facts: &Facts<'_>, files: &mut Files) -> bool {
        // The platform picks the runner; a changed platform moves the site:
        // the old runner's router stops, the new one starts (platform.md 0).
        let wanted = match self.choice {
            RunnerChoice::Auto { .. } => facts.platform,
            RunnerChoice::None => None,
        };
        if wanted != self.active {
            if self.starts_routers {
                info!(
                    "platform {} -> {}: stopping the {} runner's router",
                    self.active.map_or("none", Platform::as_str),
                    wanted.map_or("none", Platform::as_str),
                    self.runner.name()
                );
            }
            self.runner.stop().await.ok();
            self.session.disconnect();
            self.runner = match self.choice.runner_for(wanted, facts.namespace) {
                Some(runner) => {
                    self.starts_routers = true;
                    runner
                }
                None => {
                    self.starts_routers = false;
                    Box::new(NoneRunner::new())
                }
            };
            self.active = wanted;
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
        if let RunnerChoice::Auto { binary, .. } = &self.choice {
            if self.starts_routers {
                let def = RouterDefinition {
                    namespace: facts.namespace.to_string(),
                    config_path: facts.ns_dir.join(prior::CONFIG_FILE),
                    site_id: identity.site_id.clone(),
                    binary: binary.clone(),
                };
                if self.runner.state() != RouterProcessState::Running {
                    // A start reads skrouterd.json.
                    files.wait().await;
                }
                if let Err(e) = self.runner.ensure(&def).await {
                    warn!("cannot start the router: {e}");
                }
                if let Some(old) = moved_from {
                    files.wait().await;
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
        if self.session.restart_needed {
            files.wait().await;
        }
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
            self.starts_routers && !matches!(self.runner.state(), RouterProcessState::Running);
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
        if self.starts_routers {
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
        let exited = self.starts_routers
            && self.state.view.is_some()
            && (self.runner.state() != RouterProcessState::Running
                || self.runner.restarts() != self.restarts_at_view);
        if exited {
            self.session.disconnect();
            self.update(None);
        }
    }

    /// Whether the view lacks a poll that is due soon (see
    /// [`Session::poll_owed`]).
    pub fn poll_owed(&self) -> bool {
        self.session.connected() && self.session.poll_owed()
    }

    /// The light poll between passes (router.md 3.9), which gives way
    /// when `interrupt` says a pass is waiting; reconnects when the
    /// connection was lost. Returns whether the state changed.
    pub async fn poll(&mut self, interrupt: Interrupt<'_>) -> bool {
        if self.starts_routers {
            self.runner.refresh().await.ok();
        }
        if self.skip_taken_port() {
            return self.update(None);
        }
        self.tell_session();
        // The runner has just started the router again: the reconnect
        // backoff grown while it was down (up to 5 s) would make the
        // resync wait that long after the router is back.
        let restarts = self.runner.restarts();
        if self.starts_routers && restarts != self.restarts_retried {
            self.restarts_retried = restarts;
            self.session.retry_now();
        }
        let view = if self.session.connected() {
            let view = self.session.poll(interrupt).await;
            if self.session.poll_owed() {
                // It gave way: the view from before, not a new answer of
                // the router.
                return false;
            }
            view
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

    /// The namespace is gone: its router is stopped and its definition
    /// removed, whatever the runner (platform.md 4).
    pub async fn remove(&mut self) {
        self.session.set_target(None);
        self.runner.stop().await.ok();
    }

    /// The daemon stops: child routers stop with it (platform.md 1.2);
    /// containers keep running.
    pub async fn stop(&mut self) {
        self.session.set_target(None);
        if !self.runner.outlives_daemon() {
            self.runner.stop().await.ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LinuxRunner;

    #[test]
    fn linux_routers_use_the_user_manager_when_reachable_with_the_template_installed() {
        let root = SystemdPaths::for_identity(true, None);
        let systemd = LinuxChoice::Systemd(root.clone().unwrap());
        let pid1 = |p: &Path| p == Path::new("/run/systemd/system");
        let packaged =
            |p: &Path| pid1(p) || p == Path::new("/usr/lib/systemd/system/skupper-router@.service");
        // A root skupperd does not hand runtime/ to the skupper user yet:
        // child processes unless forced.
        assert_eq!(
            LinuxChoice::resolve(LinuxRunner::Auto, root.clone(), packaged),
            LinuxChoice::Process
        );
        // systemd without the template, or no systemd: child processes.
        assert_eq!(
            LinuxChoice::resolve(LinuxRunner::Auto, root.clone(), pid1),
            LinuxChoice::Process
        );
        assert_eq!(
            LinuxChoice::resolve(LinuxRunner::Auto, root.clone(), |_| false),
            LinuxChoice::Process
        );
        // Forced either way.
        assert_eq!(
            LinuxChoice::resolve(LinuxRunner::Systemd, root.clone(), |_| false),
            systemd
        );
        assert_eq!(
            LinuxChoice::resolve(LinuxRunner::Process, root, packaged),
            LinuxChoice::Process
        );
        // A user without XDG_RUNTIME_DIR has no manager to reach.
        assert_eq!(
            LinuxChoice::resolve(LinuxRunner::Systemd, None, packaged),
            LinuxChoice::Process
        );
        let user = SystemdPaths::for_identity(false, Some(Path::new("/run/user/1000")));
        let user_packaged = |p: &Path| {
            p == Path::new("/run/user/1000/systemd/private")
                || p == Path::new("/usr/lib/systemd/user/skupper-router@.service")
        };
        assert!(matches!(
            LinuxChoice::resolve(LinuxRunner::Auto, user, user_packaged),
            LinuxChoice::Systemd(SystemdPaths {
                scope: Scope::User,
                ..
            })
        ));
    }
}
