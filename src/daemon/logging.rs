//! Logging for `skupperd run`: `tracing` to journald (with the structured
//! fields `NAMESPACE`, `KIND`, `NAME`, `FILE`) when systemd started us
//! (`JOURNAL_STREAM` is set), to stderr otherwise. The filter comes from
//! [`Config::log_filter`] (`RUST_LOG` over `log_level`) and can be swapped
//! while running ([`LogHandle::set_filter`], used on SIGHUP).
//!
//! Installed once per process, by the `run` command; the library itself
//! never installs a subscriber.

use crate::config::{Config, Env};
use std::io::IsTerminal as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the active filter of the installed subscriber.
#[derive(Debug, Clone)]
pub struct LogHandle {
    handle: reload::Handle<EnvFilter, Registry>,
}

/// Where the logs went, for the first log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
    /// `JOURNAL_STREAM` was set but journald could not be reached (why).
    StderrJournaldUnreachable(String),
}

// === impl LogHandle ===

impl LogHandle {
    /// Replaces the filter; a filter that does not parse keeps the old one
    /// (config validation already refuses bad `log_level` values).
    pub fn set_filter(&self, filter: &str) -> Result<(), String> {
        let parsed = EnvFilter::builder()
            .parse(filter)
            .map_err(|e| format!("{filter:?} is not a valid filter: {e}"))?;
        self.handle.reload(parsed).map_err(|e| e.to_string())
    }
}

/// Installs the process-wide subscriber. Returns `None` when one is
/// already installed (tests calling `run` in-process).
pub fn init(config: &Config, env: &dyn Env) -> Option<(LogHandle, Sink)> {
    let filter = EnvFilter::builder().parse_lossy(config.log_filter(env));
    let (filter, handle) = reload::Layer::new(filter);
    let (journald, sink) = match env.var("JOURNAL_STREAM").filter(|v| !v.is_empty()) {
        None => (None, Sink::Stderr),
        Some(_) => match tracing_journald::layer() {
            Ok(layer) => (
                Some(
                    layer
                        .with_field_prefix(None)
                        .with_syslog_identifier("skupperd".to_string()),
                ),
                Sink::Journald,
            ),
            Err(e) => (None, Sink::StderrJournaldUnreachable(e.to_string())),
        },
    };
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .try_init()
        .ok()?;
    Some((LogHandle { handle }, sink))
}
