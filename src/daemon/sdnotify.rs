//! systemd integration for `Type=notify`: the [`Notifier`] that sends
//! `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=` and `WATCHDOG=1`. When
//! to send them comes from the actors' readiness latches and health
//! tracker (`actor::health`).
//!
//! Messages are formatted by the sd-notify crate; the socket comes from the
//! injected environment (never read or changed here behind the caller's
//! back), so tests point the notifier at their own datagram socket.
//! Without `NOTIFY_SOCKET` every call is a no-op.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;

use std::time::Duration;

use sd_notify::NotifyState;

pub use crate::actor::health::{readiness, Health, Latch, Readiness};
use crate::config::Env;

/// A notification could not be delivered. The daemon logs it and goes on:
/// systemd will notice (start timeout, watchdog) on its own.
#[derive(Debug, thiserror::Error)]
#[error("cannot notify systemd at {socket} ({what}): {source}")]
pub struct NotifyError {
    pub socket: String,
    pub what: &'static str,
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    /// Linux abstract socket, written `@name` in `NOTIFY_SOCKET`.
    Abstract(Vec<u8>),
}

/// Sends state changes to the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

// === impl Notifier ===

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`. The
    /// watchdog is ours when `WATCHDOG_PID` is absent or is our pid.
    pub fn from_env(env: &dyn Env) -> Notifier {
        let target = env
            .var("NOTIFY_SOCKET")
            .and_then(|s| match s.strip_prefix('@') {
                Some(name) => Some(Target::Abstract(name.as_bytes().to_vec())),
                None if s.starts_with('/') => Some(Target::Path(PathBuf::from(s))),
                None => None,
            });
        let ours = env
            .var("WATCHDOG_PID")
            .is_none_or(|pid| pid.trim().parse::<u32>().ok() == Some(std::process::id()));
        let watchdog = env
            .var("WATCHDOG_USEC")
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && ours)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// Notifies the socket at `path` (tests, or an explicit override).
    pub fn to_socket(path: impl Into<PathBuf>, watchdog: Option<Duration>) -> Notifier {
        Notifier {
            target: Some(Target::Path(path.into())),
            watchdog,
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// Whether a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, as
    /// sd_watchdog_enabled(3) advises; `None` without a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|period| period / 2)
    }

    /// The whole watchdog period (`WATCHDOG_USEC`), if any.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1`: startup or a reload finished.
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("ready", &[NotifyState::Ready])
    }

    /// `RELOADING=1` with `MONOTONIC_USEC` (systemd 253 requires it for
    /// `Type=notify-reload`; older managers ignore it).
    pub fn reloading(&self) -> Result<(), NotifyError> {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send("reloading", &[NotifyState::Reloading, now]),
            Err(_) => self.send("reloading", &[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1`: shutdown began.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("stopping", &[NotifyState::Stopping])
    }

    /// `STATUS=<line>`, shown by `systemctl status`; line breaks become
    /// spaces because the protocol is line-based.
    pub fn status(&self, line: &str) -> Result<(), NotifyError> {
        let line: String = line
            .chars()
            .map(|c| if c == '\n' { ' ' } else { c })
            .collect();
        self.send("status", &[NotifyState::Status(&line)])
    }

    /// `WATCHDOG=1`; send only while [`Health::healthy`].
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("watchdog", &[NotifyState::Watchdog])
    }

    fn send(&self, what: &'static str, states: &[NotifyState<'_>]) -> Result<(), NotifyError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let message: String = states.iter().map(|s| format!("{s}\n")).collect();
        let error = |source| NotifyError {
            socket: match target {
                Target::Path(p) => p.display().to_string(),
                Target::Abstract(name) => format!("@{}", String::from_utf8_lossy(name)),
            },
            what,
            source,
        };
        let socket = UnixDatagram::unbound().map_err(error)?;
        match target {
            Target::Path(path) => socket.connect(path),
            Target::Abstract(name) => {
                SocketAddr::from_abstract_name(name).and_then(|addr| socket.connect_addr(&addr))
            }
        }
        .map_err(error)?;
        let sent = socket.send(message.as_bytes()).map_err(error)?;
        if sent == message.len() {
            Ok(())
        } else {
            Err(error(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "incomplete datagram",
            )))
        }
    }
}

#[cfg(test)]
mod tests;
