//! The daemon's actors: one [`namespace`] actor per namespace directory,
//! the single writer of everything that namespace writes, and the
//! [`supervisor`] that starts, stops and restarts them as directories come
//! and go or actors fail.
//!
//! Actors own their state (input cache, runtime bytes, prior state) and are
//! only ever sent messages: "look again" ([`ActorMsg::Dirty`]), new
//! intervals, or "your directory is gone". They report each finished pass
//! back ([`Report`]), which is how the daemon knows when to say `READY=1`
//! and what to put in `STATUS=`.

pub mod cache;
pub mod expiry;
pub mod health;
pub mod namespace;
pub mod router;
pub mod supervisor;

use crate::actor::health::Latch;
use crate::watch::{Changed, Trigger};
use std::time::Duration;

/// The intervals an actor works with; all of them change live on SIGHUP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// Quiet time that ends a burst of events.
    pub quiet_window: Duration,
    /// Longest delay from a burst's first event to its reconcile.
    pub max_delay: Duration,
    /// Period of the safety-net full resync.
    pub resync: Duration,
    /// How long a Site must stay missing before its outputs are cleared.
    pub site_grace: Duration,
    /// How often an idle actor wakes to prove it is alive (a quarter of the
    /// watchdog period); `None` without a watchdog.
    pub heartbeat: Option<Duration>,
    /// Light router poll while a router is connected or expected.
    pub router_poll: Duration,
}

impl Intervals {
    pub fn from_config(config: &crate::config::Config, watchdog: Option<Duration>) -> Intervals {
        Intervals {
            quiet_window: config.quiet_window,
            max_delay: config.max_delay,
            resync: config.resync_interval,
            site_grace: config.site_grace_period,
            heartbeat: watchdog.map(|period| (period / 4).max(Duration::from_millis(1))),
            router_poll: config.router_poll_interval,
        }
    }
}

/// What the supervisor tells a namespace actor.
#[derive(Debug)]
pub enum ActorMsg {
    /// Look again. `changed` says which input files may differ (see
    /// [`Changed`]). `done` is released once a pass that started after
    /// this message has finished (SIGHUP waits on it before `READY=1`).
    Dirty {
        trigger: Trigger,
        changed: Changed,
        done: Option<Latch>,
    },
    /// New intervals (SIGHUP).
    Intervals(Intervals),
    /// The namespace directory was deleted: stop without writing.
    Gone,
}

/// Resources by status and problems of one namespace, for `STATUS=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NsSummary {
    pub ready: usize,
    pub pending: usize,
    pub error: usize,
    pub errors: usize,
    pub warnings: usize,
}

/// An actor finished a pass (applied, or held back by the Site grace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub namespace: String,
    pub summary: NsSummary,
}
