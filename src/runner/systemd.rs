//! The `systemd` runner (platform.md 1.1): the router as the template
//! instance `skupper-router@<ns>.service`, driven over systemd's D-Bus API
//! (zbus) on the manager's private socket (`/run/systemd/private`, or
//! `$XDG_RUNTIME_DIR/systemd/private` for a user manager): a peer-to-peer
//! connection, no bus daemon needed.
//!
//! Before every start skupperd writes the instance's environment file
//! (`SKUPPER_SITE_ID`, `SKUPPER_ROUTER_CONFIG`); a changed file restarts
//! the unit, an unchanged one only starts it when it is not active. The
//! unit's restart policy restarts the router; skupperd reads the unit's
//! state (`ActiveState`, `SubState`, `Result`, `ExecMainStatus`) on every
//! pass and poll, and after `start-limit-hit` resets the unit and starts it
//! again after a minute. Routers in units outlive skupperd; stop removes
//! the environment file.
//!
//! # Caveats
//! - The last error line comes from the unit's exit status, not from the
//!   journal (platform.md names `journalctl`; not read here yet).

use super::output::{ExitKind, RouterExit};
use super::{RouterDefinition, RouterProcessState, Runner, RunnerError, RunnerFuture};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{info, warn};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
/// After `start-limit-hit`, how long before the next start.
const START_LIMIT_PAUSE: Duration = Duration::from_secs(60);

/// System or user manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    System,
    User,
}

/// Where the manager and the environment files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdPaths {
    pub scope: Scope,
    /// The manager's private socket.
    pub socket: PathBuf,
    /// `%t/skupperd/routers`.
    pub env_dir: PathBuf,
}

impl SystemdPaths {
    /// platform.md 0: root uses the system manager; a user the user
    /// manager in `XDG_RUNTIME_DIR` (`None` without it).
    pub fn for_identity(is_root: bool, runtime_dir: Option<&Path>) -> Option<SystemdPaths> {
        if is_root {
            return Some(SystemdPaths {
                scope: Scope::System,
                socket: PathBuf::from("/run/systemd/private"),
                env_dir: PathBuf::from("/run/skupperd/routers"),
            });
        }
        let dir = runtime_dir?;
        Some(SystemdPaths {
            scope: Scope::User,
            socket: dir.join("systemd/private"),
            env_dir: dir.join("skupperd/routers"),
        })
    }

    /// A systemd manager is reachable (platform.md 0): for root, systemd
    /// is PID 1 (`/run/systemd/system`); for a user, the user manager's
    /// private socket exists.
    pub fn reachable(&self, exists: impl Fn(&Path) -> bool) -> bool {
        match self.scope {
            Scope::System => exists(Path::new("/run/systemd/system")),
            Scope::User => exists(&self.socket),
        }
    }
}

/// The instance of the template for a namespace.
pub fn unit_name(namespace: &str) -> String {
    format!("skupper-router@{namespace}.service")
}

/// The environment file's text.
pub fn env_file(site_id: &str, config_path: &Path) -> String {
    format!(
        "SKUPPER_SITE_ID={site_id}\nSKUPPER_ROUTER_CONFIG={}\n",
        config_path.display()
    )
}

/// What the unit's properties say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    pub active: String,
    pub sub: String,
    pub result: String,
    pub exec_main_status: i32,
}

/// The runner state the unit's properties mean.
pub fn phase(u: &UnitState) -> RouterProcessState {
    match (u.active.as_str(), u.sub.as_str()) {
        ("active", _) | ("reloading", _) => RouterProcessState::Running,
        ("activating", "auto-restart") => RouterProcessState::Restarting,
        ("activating", _) => RouterProcessState::Starting,
        ("failed", _) => RouterProcessState::Failed(format!(
            "router exited: {} (unit result {})",
            ExitKind::Code(u.exec_main_status),
            u.result
        )),
        ("deactivating", _) | ("inactive", _) => RouterProcessState::Stopped,
        _ => RouterProcessState::NotCreated,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("systemd manager at {} is not reachable: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: Box<zbus::Error>,
    },
    #[error("systemd {method} {unit}: {source}")]
    Call {
        method: &'static str,
        unit: String,
        source: Box<zbus::Error>,
    },
    #[error("router environment file {}: {source}", path.display())]
    EnvFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct SystemdRunner {
    paths: SystemdPaths,
    namespace: String,
    unit: String,
    conn: Option<zbus::Connection>,
    def: Option<RouterDefinition>,
    phase: RouterProcessState,
    error: Option<String>,
    last_exit: Option<RouterExit>,
    restarts: u32,
    /// `NRestarts` seen last.
    seen_restarts: Option<u32>,
    start_again_at: Option<Instant>,
}

impl SystemdRunner {
    pub fn new(paths: SystemdPaths, namespace: &str) -> SystemdRunner {
        SystemdRunner {
            paths,
            namespace: namespace.to_string(),
            unit: unit_name(namespace),
            conn: None,
            def: None,
            phase: RouterProcessState::NotCreated,
            error: None,
            last_exit: None,
            restarts: 0,
            seen_restarts: None,
            start_again_at: None,
        }
    }

    async fn connection(&mut self) -> Result<zbus::Connection, SystemdError> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        let connect = |source| SystemdError::Connect {
            path: self.paths.socket.clone(),
            source: Box::new(source),
        };
        let stream = tokio::net::UnixStream::connect(&self.paths.socket)
            .await
            .map_err(|e| connect(zbus::Error::InputOutput(std::sync::Arc::new(e))))?;
        let conn = zbus::connection::Builder::unix_stream(stream)
            .p2p()
            .build()
            .await
            .map_err(connect)?;
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    async fn manager<B>(&mut self, method: &'static str, args: &B) -> Result<(), SystemdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let conn = self.connection().await?;
        let unit = self.unit.clone();
        let result = conn
            .call_method(None::<&str>, MANAGER_PATH, Some(MANAGER), method, args)
            .await;
        if result.is_err() {
            // The next call connects again (the manager may have been
            // re-executed).
            self.conn = None;
        }
        result.map(|_| ()).map_err(|source| SystemdError::Call {
            method,
            unit,
            source: Box::new(source),
        })
    }

    async fn get(
        &self,
        conn: &zbus::Connection,
        path: &OwnedObjectPath,
        iface: &str,
        name: &str,
    ) -> Result<OwnedValue, zbus::Error> {
        let reply = conn
            .call_method(
                None::<&str>,
                path.as_str(),
                Some(PROPERTIES),
                "Get",
                &(iface, name),
            )
            .await?;
        let value: zbus::zvariant::OwnedValue = reply.body().deserialize()?;
        Ok(value)
    }

    /// Reads the unit's state.
    async fn unit_state(&mut self) -> Result<(UnitState, u32), SystemdError> {
        let conn = self.connection().await?;
        let call = |source| SystemdError::Call {
            method: "LoadUnit",
            unit: self.unit.clone(),
            source: Box::new(source),
        };
        let reply = conn
            .call_method(
                None::<&str>,
                MANAGER_PATH,
                Some(MANAGER),
                "LoadUnit",
                &(self.unit.as_str(),),
            )
            .await
            .map_err(call)?;
        let path: OwnedObjectPath = reply.body().deserialize().map_err(call)?;
        let text = |v: OwnedValue| String::try_from(v).unwrap_or_default();
        let state = UnitState {
            active: text(
                self.get(&conn, &path, UNIT, "ActiveState")
                    .await
                    .map_err(call)?,
            ),
            sub: text(
                self.get(&conn, &path, UNIT, "SubState")
                    .await
                    .map_err(call)?,
            ),
            result: text(
                self.get(&conn, &path, SERVICE, "Result")
                    .await
                    .map_err(call)?,
            ),
            exec_main_status: self
                .get(&conn, &path, SERVICE, "ExecMainStatus")
                .await
                .ok()
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0),
        };
        let restarts = self
            .get(&conn, &path, SERVICE, "NRestarts")
            .await
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        Ok((state, restarts))
    }

    fn write_env(&self, def: &RouterDefinition) -> Result<bool, SystemdError> {
        let path = self.paths.env_dir.join(format!("{}.env", self.namespace));
        let err = |source| SystemdError::EnvFile {
            path: path.clone(),
            source,
        };
        let text = env_file(&def.site_id, &def.config_path);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.paths.env_dir).map_err(err)?;
        let tmp = path.with_extension("env.tmp");
        std::fs::write(&tmp, &text).map_err(err)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(true)
    }

    /// Looks at the unit and starts it when it should run and does not.
    async fn converge(&mut self, env_changed: bool) -> Result<(), SystemdError> {
        let (state, n_restarts) = self.unit_state().await?;
        if let Some(seen) = self.seen_restarts {
            if n_restarts > seen {
                self.restarts += n_restarts - seen;
                self.last_exit = Some(RouterExit::explain(
                    &super::output::Lines::new(1),
                    ExitKind::Code(state.exec_main_status),
                ));
            }
        }
        self.seen_restarts = Some(n_restarts);
        let running = matches!(state.active.as_str(), "active" | "activating" | "reloading");
        if running && env_changed {
            info!(namespace = %self.namespace, "the router's environment changed: restarting {}", self.unit);
            self.manager("RestartUnit", &(self.unit.clone(), "replace"))
                .await?;
        } else if !running {
            if state.result == "start-limit-hit" {
                let at = *self
                    .start_again_at
                    .get_or_insert_with(|| Instant::now() + START_LIMIT_PAUSE);
                if Instant::now() < at {
                    self.phase = phase(&state);
                    return Ok(());
                }
                self.manager("ResetFailedUnit", &(self.unit.clone(),))
                    .await
                    .ok();
            }
            self.start_again_at = None;
            if state.active == "failed" {
                self.last_exit = Some(RouterExit::explain(
                    &super::output::Lines::new(1),
                    ExitKind::Code(state.exec_main_status),
                ));
            }
            self.manager("StartUnit", &(self.unit.clone(), "replace"))
                .await?;
        }
        let (state, _) = self.unit_state().await?;
        self.phase = phase(&state);
        Ok(())
    }

    fn settle(&mut self, result: Result<(), SystemdError>) {
        match result {
            Ok(()) => self.error = None,
            Err(e) => {
                let message = e.to_string();
                if self.error.as_deref() != Some(message.as_str()) {
                    warn!(namespace = %self.namespace, "{message}");
                }
                self.error = Some(message);
            }
        }
    }
}

impl Runner for SystemdRunner {
    fn ensure<'a>(&'a mut self, def: &'a RouterDefinition) -> RunnerFuture<'a> {
        Box::pin(async move {
            let def = def.absolute()?;
            let result = match self.write_env(&def) {
                Ok(changed) => {
                    self.def = Some(def);
                    self.converge(changed).await
                }
                Err(e) => Err(e),
            };
            self.settle(result);
            Ok(())
        })
    }

    fn refresh(&mut self) -> RunnerFuture<'_> {
        Box::pin(async move {
            if self.def.is_some() {
                let result = self.converge(false).await;
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
            let unit = self.unit.clone();
            let result = self
                .manager("RestartUnit", &(unit.as_str(), "replace"))
                .await;
            self.last_exit = None;
            self.settle(result);
            Ok(())
        })
    }

    fn stop(&mut self) -> RunnerFuture<'_> {
        Box::pin(async move {
            if self.def.is_none() && self.phase == RouterProcessState::Stopped {
                return Ok(());
            }
            let unit = self.unit.clone();
            let result = self.manager("StopUnit", &(unit.as_str(), "replace")).await;
            let _ =
                std::fs::remove_file(self.paths.env_dir.join(format!("{}.env", self.namespace)));
            if result.is_ok() {
                self.def = None;
                self.phase = RouterProcessState::Stopped;
                self.last_exit = None;
            }
            self.settle(result);
            Ok(())
        })
    }

    fn state(&self) -> RouterProcessState {
        match &self.error {
            Some(e) => RouterProcessState::Failed(e.clone()),
            None => self.phase.clone(),
        }
    }

    fn last_exit(&self) -> Option<RouterExit> {
        self.last_exit.clone()
    }

    fn answered(&mut self) {
        if self.phase == RouterProcessState::Running {
            self.last_exit = None;
        }
    }

    fn restarts(&self) -> u32 {
        self.restarts
    }

    fn outlives_daemon(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "systemd"
    }
}

#[cfg(test)]
mod tests;
