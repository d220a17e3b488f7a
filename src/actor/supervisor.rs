//! The supervisor: one namespace actor per namespace directory, started
//! when the watcher announces the directory, stopped when it is deleted,
//! restarted with backoff when it fails.
//!
//! # Guarantees
//! - At most one actor per namespace at any time: a directory that is
//!   deleted and re-created gets its new actor only after the old one has
//!   ended (single writer).
//! - An actor's failure (error or panic) is logged here and touches no
//!   other namespace. Restarts back off from 1 s, doubling to 60 s, and
//!   the count resets after a pass succeeds.
//! - Directory names that are not RFC 1123 labels get no actor and one
//!   warning.
//! - Each startup latch is released after the namespace's first pass, or
//!   when its actor fails or its directory goes, so one broken namespace
//!   never keeps the daemon from becoming ready.

use super::health::Latch;
use super::namespace::{self, ActorError, Context, Exit};
use super::{ActorMsg, Intervals, NsSummary, Report};
use crate::watch::{Changed, Trigger};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tracing::{error, info, warn};

/// What an actor task returns: its namespace and how it ended.
pub type ActorExit = (String, Result<Exit, ActorError>);
/// What [`JoinSet::join_next_with_id`] gives for an actor task.
pub type Joined = Result<(tokio::task::Id, ActorExit), JoinError>;

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

enum SlotState {
    Running {
        tx: mpsc::UnboundedSender<ActorMsg>,
    },
    /// Told to stop (its directory went); `reappeared` when a new directory
    /// of the same name is waiting for the old actor to end.
    Stopping {
        reappeared: bool,
    },
    /// Failed; restarted at `until`.
    Backoff {
        until: Instant,
    },
}

struct Slot {
    state: SlotState,
    /// Held until the first pass of the namespace (startup readiness).
    latch: Option<Latch>,
    /// Consecutive failures, for the backoff.
    failures: u32,
    summary: Option<NsSummary>,
}

/// The set of namespace actors. Owned by the daemon's main loop, which
/// feeds it watcher events, actor reports ([`Supervisor::reports`]) and
/// actor exits ([`Supervisor::tasks`]).
pub struct Supervisor {
    ctx: Context,
    intervals: Intervals,
    slots: BTreeMap<String, Slot>,
    warned: HashSet<String>,
    /// Running actors; each returns its namespace's name.
    pub tasks: JoinSet<ActorExit>,
    ids: HashMap<tokio::task::Id, String>,
    /// Pass reports of every actor.
    pub reports: mpsc::UnboundedReceiver<Report>,
    /// A latch handed to actors started while `Some` (startup).
    startup: Option<Latch>,
}

// === impl Supervisor ===

impl Supervisor {
    /// `ctx.reports` must be the sender of `reports`. Actors started while
    /// `startup` is held each hold a clone until their first pass.
    pub fn new(
        ctx: Context,
        reports: mpsc::UnboundedReceiver<Report>,
        intervals: Intervals,
        startup: Latch,
    ) -> Supervisor {
        Supervisor {
            ctx,
            intervals,
            slots: BTreeMap::new(),
            warned: HashSet::new(),
            tasks: JoinSet::new(),
            ids: HashMap::new(),
            reports,
            startup: Some(startup),
        }
    }

    /// Stops handing out startup latches: the namespaces present at start
    /// are all known.
    pub fn end_startup(&mut self) {
        self.startup = None;
    }

    /// A namespace directory exists.
    pub fn appeared(&mut self, name: &str) {
        if !crate::names::is_label(name) {
            if self.warned.insert(name.to_string()) {
                // Not a label, so possibly any text a directory name holds.
                let shown = crate::problem::escape_controls(name);
                warn!(
                    namespace = %shown,
                    "namespaces/{shown} is ignored: a namespace name {}",
                    crate::names::LABEL_RULE
                );
            }
            return;
        }
        match self.slots.get_mut(name).map(|s| &mut s.state) {
            None => self.spawn(name),
            Some(SlotState::Running { tx }) => {
                let _ = tx.send(ActorMsg::Dirty {
                    trigger: Trigger::Input,
                    changed: Changed::Everything,
                    done: None,
                });
            }
            Some(SlotState::Stopping { reappeared }) => *reappeared = true,
            // The restart reads everything anyway.
            Some(SlotState::Backoff { .. }) => {}
        }
    }

    /// The namespace directory was deleted.
    pub fn gone(&mut self, name: &str) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        slot.latch = None;
        match &slot.state {
            SlotState::Running { tx } => {
                info!(
                    namespace = name,
                    "namespace directory deleted: stopping its actor"
                );
                let _ = tx.send(ActorMsg::Gone);
                slot.state = SlotState::Stopping { reappeared: false };
            }
            SlotState::Stopping { .. } => {
                slot.state = SlotState::Stopping { reappeared: false };
            }
            SlotState::Backoff { .. } => {
                info!(
                    namespace = name,
                    "namespace directory deleted: its failed actor is not restarted"
                );
                self.slots.remove(name);
            }
        }
        self.ctx.health.unregister(name);
    }

    /// Marks one namespace dirty, with the input files that changed.
    pub fn dirty(&mut self, name: &str, trigger: Trigger, changed: Changed, done: Option<Latch>) {
        if let Some(Slot {
            state: SlotState::Running { tx },
            ..
        }) = self.slots.get(name)
        {
            let _ = tx.send(ActorMsg::Dirty {
                trigger,
                changed,
                done,
            });
        }
    }

    /// Marks every namespace dirty, each to list its whole input again;
    /// each running actor holds a clone of `done` until its next pass has
    /// finished.
    pub fn dirty_all(&mut self, trigger: Trigger, done: Option<&Latch>) {
        for slot in self.slots.values() {
            if let SlotState::Running { tx } = &slot.state {
                let _ = tx.send(ActorMsg::Dirty {
                    trigger,
                    changed: Changed::Everything,
                    done: done.cloned(),
                });
            }
        }
    }

    /// New intervals for every actor, now and later.
    pub fn set_intervals(&mut self, intervals: Intervals) {
        self.intervals = intervals;
        for slot in self.slots.values() {
            if let SlotState::Running { tx } = &slot.state {
                let _ = tx.send(ActorMsg::Intervals(intervals));
            }
        }
    }

    /// Takes a pass report in; true when the summary changed.
    pub fn report(&mut self, report: Report) -> bool {
        let Some(slot) = self.slots.get_mut(&report.namespace) else {
            return false;
        };
        slot.latch = None;
        slot.failures = 0;
        let changed = slot.summary != Some(report.summary);
        slot.summary = Some(report.summary);
        changed
    }

    /// An actor task ended.
    pub fn exited(&mut self, joined: Joined) {
        let (name, result) = match joined {
            Ok((id, (name, result))) => {
                self.ids.remove(&id);
                (name, result.map_err(|e| e.to_string()))
            }
            Err(e) => {
                let name = self.ids.remove(&e.id()).unwrap_or_default();
                (name, Err(format!("the actor task failed: {e}")))
            }
        };
        self.ctx.health.unregister(&name);
        let Some(slot) = self.slots.get_mut(&name) else {
            return;
        };
        slot.latch = None;
        match (&slot.state, result) {
            (SlotState::Stopping { reappeared: true }, _) => {
                self.slots.remove(&name);
                self.spawn(&name);
            }
            (SlotState::Stopping { reappeared: false }, _) | (_, Ok(Exit::Gone)) => {
                self.slots.remove(&name);
            }
            (_, Ok(Exit::Stopped)) => {
                self.slots.remove(&name);
            }
            (_, Err(e)) => {
                slot.failures = slot.failures.saturating_add(1);
                let delay = backoff(slot.failures);
                error!(
                    namespace = %name,
                    "namespace actor failed: {e}; restarting in {} ms",
                    delay.as_millis()
                );
                slot.state = SlotState::Backoff {
                    until: Instant::now() + delay,
                };
            }
        }
    }

    /// The earliest pending restart.
    pub fn next_restart(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|s| match s.state {
                SlotState::Backoff { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Restarts the actors whose backoff has passed (or forgets them when
    /// their directory is gone meanwhile).
    pub fn restart_due(&mut self, now: Instant) {
        let due: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.state, SlotState::Backoff { until } if until <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            if self.ctx.namespaces_dir.join(&name).is_dir() {
                info!(namespace = %name, "restarting the namespace actor");
                self.spawn(&name);
            } else {
                self.slots.remove(&name);
            }
        }
    }

    /// Summaries of the namespaces with an actor, for `STATUS=`.
    pub fn status_line(&self) -> String {
        let namespaces = self
            .slots
            .values()
            .filter(|s| !matches!(s.state, SlotState::Stopping { .. }))
            .count();
        let mut total = NsSummary::default();
        let live = self
            .slots
            .values()
            .filter(|s| !matches!(s.state, SlotState::Stopping { .. }));
        for s in live.filter_map(|s| s.summary) {
            total.ready += s.ready;
            total.pending += s.pending;
            total.error += s.error;
            total.errors += s.errors;
            total.warnings += s.warnings;
        }
        let resources = total.ready + total.pending + total.error;
        let failing = self
            .slots
            .values()
            .filter(|s| matches!(s.state, SlotState::Backoff { .. }))
            .count();
        let mut line = format!(
            "{namespaces} namespace{}, {resources} resource{} ({} Ready, {} Pending, {} Error), {} problem{} ({} errors, {} warnings)",
            plural(namespaces),
            plural(resources),
            total.ready,
            total.pending,
            total.error,
            total.errors + total.warnings,
            plural(total.errors + total.warnings),
            total.errors,
            total.warnings,
        );
        if failing > 0 {
            line.push_str(&format!(", {failing} failing"));
        }
        line
    }

    /// Waits for every actor to end (the daemon has raised the shared stop
    /// signal, which each actor honours at its next safe point).
    pub async fn join_all(&mut self) {
        while let Some(joined) = self.tasks.join_next_with_id().await {
            if let Ok((_, (name, Err(e)))) = &joined {
                error!(namespace = %name, "namespace actor failed while stopping: {e}");
            }
        }
    }

    fn spawn(&mut self, name: &str) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = self.ctx.clone();
        let intervals = self.intervals;
        let owned = name.to_string();
        let handle = self.tasks.spawn(async move {
            let result = namespace::run(owned.clone(), intervals, rx, ctx).await;
            (owned, result)
        });
        self.ids.insert(handle.id(), name.to_string());
        let previous = self.slots.remove(name);
        self.slots.insert(
            name.to_string(),
            Slot {
                state: SlotState::Running { tx },
                latch: self.startup.clone(),
                failures: previous.as_ref().map_or(0, |s| s.failures),
                summary: previous.and_then(|s| s.summary),
            },
        );
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_a_minute() {
        let delays: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
