//! File watching: inotify events on a data home become "look again"
//! messages per namespace ([`WatchEvent`]), and [`coalesce`] turns a burst of
//! them into one reconcile.
//!
//! Events never say what changed: the namespace actor re-reads the whole
//! namespace (level-triggered), so a lost detail can never matter, only a
//! lost event could, and none is dropped: the channel is unbounded, an
//! inotify overflow or a watcher error becomes [`WatchEvent::RescanAll`],
//! and the periodic resync is a safety net behind both.

use serde::Serialize;

pub mod coalesce;
pub mod inotify;

pub use coalesce::{sleep_until, Coalescer};
pub use inotify::{WatchError, Watcher};

/// Why a namespace is reconciled. Also written to status files, hence the
/// lowercase names.
///
/// The declaration order is the priority when several triggers fall into
/// one burst (see [`Trigger::merge`]): the most specific reason wins, and
/// the periodic resync only shows when nothing else happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The first reconcile after the daemon or the namespace started.
    Startup,
    /// SIGHUP: configuration re-read and full rescan.
    Sighup,
    /// A change under `input/resources/` or `internal/platform.yaml`.
    Input,
    /// A change under `input/certs/` or `input/issuers/`.
    Certs,
    /// The router changed state (restarted, became reachable, ...).
    Router,
    /// The periodic safety-net resync.
    Resync,
}

impl Trigger {
    /// The trigger to report for a burst holding both.
    pub fn merge(self, other: Trigger) -> Trigger {
        self.min(other)
    }

    /// The lowercase name used in logs and status files.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Sighup => "sighup",
            Trigger::Input => "input",
            Trigger::Certs => "certs",
            Trigger::Router => "router",
            Trigger::Resync => "resync",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the watcher tells the supervisor. Each means "look again".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Something under the namespace's watched input changed.
    Dirty { namespace: String, reason: Trigger },
    /// A namespace directory exists that was not there before (including
    /// every namespace present when the watcher starts). Its watches are
    /// armed before this is sent, so a scan started on receipt misses
    /// nothing.
    NamespaceAppeared(String),
    /// The namespace directory is gone (or was replaced by a new directory,
    /// in which case `NamespaceAppeared` follows).
    NamespaceGone(String),
    /// Events may have been lost (inotify overflow, watcher error): every
    /// namespace must be rescanned.
    RescanAll,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_serializes_lowercase_and_merge_prefers_specific_reasons() {
        let names: Vec<String> = [
            Trigger::Startup,
            Trigger::Sighup,
            Trigger::Input,
            Trigger::Certs,
            Trigger::Router,
            Trigger::Resync,
        ]
        .iter()
        .map(|t| serde_json::to_string(t).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                "\"startup\"",
                "\"sighup\"",
                "\"input\"",
                "\"certs\"",
                "\"router\"",
                "\"resync\""
            ]
        );
        assert_eq!(Trigger::Resync.merge(Trigger::Certs), Trigger::Certs);
        assert_eq!(Trigger::Input.merge(Trigger::Resync), Trigger::Input);
        assert_eq!(Trigger::Input.merge(Trigger::Startup), Trigger::Startup);
        assert_eq!(Trigger::Router.to_string(), "router");
    }
}
