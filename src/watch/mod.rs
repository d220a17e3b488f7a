//! File watching: inotify events on a data home become "look again"
//! messages per namespace ([`WatchEvent`]), and [`coalesce`] turns a burst of
//! them into one reconcile.
//!
//! Events are level-triggered: the namespace actor reads the current
//! state, never an event's content. The one detail an event carries is
//! which input files under `input/resources/` it named ([`Changed`]), so a
//! pass after a few file events re-reads those files instead of listing
//! and stat'ing the whole tree; whenever that list could be incomplete
//! (a directory event, a re-armed watch, a burst past
//! [`MAX_CHANGED_FILES`], lost events) it is [`Changed::Everything`] and
//! the actor lists everything again. No event is dropped: the channel is
//! unbounded, an inotify overflow or a watcher error becomes
//! [`WatchEvent::RescanAll`], and the periodic resync is a safety net
//! behind both.

use serde::Serialize;
use std::collections::BTreeSet;

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

    /// Whether a file under the namespace changed, so the file may still
    /// be being written: only these wait for the quiet window.
    pub fn is_file_event(self) -> bool {
        matches!(self, Trigger::Input | Trigger::Certs)
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

/// More changed files than this in one burst are not worth tracking one
/// by one: the actor lists the whole tree instead.
pub const MAX_CHANGED_FILES: usize = 4096;

/// Which files under `input/resources/` a burst of events may have
/// changed (created, written, renamed in or out, deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Only these, relative to the namespace directory
    /// (`input/resources/...`); empty when the events were elsewhere
    /// (certificates, `platform.yaml`, the router).
    Files(BTreeSet<String>),
    /// Unknown: list and stat the whole tree.
    Everything,
}

// === impl Changed ===

impl Changed {
    /// No file under `input/resources/` changed.
    pub fn none() -> Changed {
        Changed::Files(BTreeSet::new())
    }

    /// One file, relative to the namespace directory.
    pub fn file(rel: impl Into<String>) -> Changed {
        Changed::Files(BTreeSet::from([rel.into()]))
    }

    /// Adds what `other` changed; past [`MAX_CHANGED_FILES`] the set
    /// becomes `Everything`.
    pub fn merge(&mut self, other: Changed) {
        match (&mut *self, other) {
            (Changed::Everything, _) => {}
            (this, Changed::Everything) => *this = Changed::Everything,
            (Changed::Files(mine), Changed::Files(theirs)) => {
                if mine.len() < theirs.len() {
                    let smaller = std::mem::replace(mine, theirs);
                    mine.extend(smaller);
                } else {
                    mine.extend(theirs);
                }
                if mine.len() > MAX_CHANGED_FILES {
                    *self = Changed::Everything;
                }
            }
        }
    }

    pub fn is_everything(&self) -> bool {
        matches!(self, Changed::Everything)
    }
}

impl Default for Changed {
    fn default() -> Changed {
        Changed::none()
    }
}

/// What the watcher tells the supervisor. Each means "look again".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Something under the namespace's watched input changed; `changed`
    /// says which input files, as far as the events tell.
    Dirty {
        namespace: String,
        reason: Trigger,
        changed: Changed,
    },
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

    #[test]
    fn changed_files_add_up_until_the_bound_then_mean_everything() {
        let mut c = Changed::none();
        c.merge(Changed::file("input/resources/a.yaml"));
        c.merge(Changed::file("input/resources/b.yaml"));
        c.merge(Changed::file("input/resources/a.yaml"));
        assert_eq!(
            c,
            Changed::Files(BTreeSet::from([
                "input/resources/a.yaml".to_string(),
                "input/resources/b.yaml".to_string()
            ]))
        );
        let mut all = c.clone();
        all.merge(Changed::Everything);
        assert!(all.is_everything());
        all.merge(Changed::file("input/resources/c.yaml"));
        assert!(all.is_everything(), "nothing narrows Everything again");

        let many: BTreeSet<String> = (0..MAX_CHANGED_FILES)
            .map(|i| format!("input/resources/r{i}.yaml"))
            .collect();
        let mut big = Changed::Files(many);
        big.merge(Changed::file("input/resources/r0.yaml"));
        assert!(!big.is_everything(), "a path seen twice counts once");
        big.merge(Changed::file("input/resources/one-more.yaml"));
        assert!(big.is_everything());
    }
}
