//! Coalescing one namespace's dirty flag: a burst of events becomes one
//! reconcile, run once the events pause for the quiet window, but never
//! later than the maximum delay after the burst's first event (a pure
//! debounce could be postponed forever by a steady trickle of events, the
//! trap kube-runtime's scheduler documents).
//!
//! The burst also gathers which input files its events named
//! ([`Changed`]): a pass takes the burst's trigger and files together, so
//! paths that arrive while a pass runs belong to the next burst.
//!
//! Only file events wait for quiet: an editor may still be writing. The
//! daemon's own reasons (the router's state changed, the periodic
//! resync) have nothing to wait for, so a burst of them alone is due at
//! once, and one that joins a burst of file events never pushes its
//! deadline out.
//!
//! [`Coalescer`] is a pure state machine over explicit [`Instant`]s, owned
//! by the namespace actor; [`sleep_until`] is what the actor `select!`s on.

use std::time::{Duration, Instant};

use super::{Changed, Trigger};

/// The pending burst of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coalescer {
    quiet: Duration,
    max_delay: Duration,
    burst: Option<Burst>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Burst {
    /// The first mark of any kind.
    first: Instant,
    /// The first and the last file event, when there was one.
    files: Option<(Instant, Instant)>,
    trigger: Trigger,
    changed: Changed,
}

// === impl Coalescer ===

impl Coalescer {
    /// `max_delay` shorter than `quiet` makes every reconcile wait
    /// `max_delay` (config rejects that combination).
    pub fn new(quiet: Duration, max_delay: Duration) -> Coalescer {
        Coalescer {
            quiet,
            max_delay,
            burst: None,
        }
    }

    /// Applies new intervals (SIGHUP); a pending burst keeps its events and
    /// gets a deadline computed with the new values.
    pub fn set_intervals(&mut self, quiet: Duration, max_delay: Duration) {
        self.quiet = quiet;
        self.max_delay = max_delay;
    }

    /// Records an event seen at `now` and the input files it changed.
    pub fn mark(&mut self, now: Instant, trigger: Trigger, changed: Changed) {
        let file = trigger.is_file_event().then_some((now, now));
        match &mut self.burst {
            None => {
                self.burst = Some(Burst {
                    first: now,
                    files: file,
                    trigger,
                    changed,
                })
            }
            Some(b) => {
                b.files = match (b.files, file) {
                    (Some((first, last)), Some(_)) => Some((first.min(now), last.max(now))),
                    (files, None) => files,
                    (None, file) => file,
                };
                b.trigger = b.trigger.merge(trigger);
                b.changed.merge(changed);
            }
        }
    }

    /// When the pending burst should be reconciled: with file events, the
    /// earlier of `last file event + quiet` and `first file event +
    /// max_delay`; without, at once; `None` when idle.
    pub fn deadline(&self) -> Option<Instant> {
        let b = self.burst.as_ref()?;
        let Some((first, last)) = b.files else {
            return Some(b.first);
        };
        // An overflowing deadline (absurd intervals) means "now", never a panic.
        let quiet_end = last.checked_add(self.quiet).unwrap_or(last);
        let max_end = first.checked_add(self.max_delay).unwrap_or(first);
        Some(quiet_end.min(max_end))
    }

    /// Whether an event is waiting.
    pub fn is_pending(&self) -> bool {
        self.burst.is_some()
    }

    /// Ends the burst and returns its trigger and changed files once the
    /// deadline has passed at `now`; `None` while idle or still inside the
    /// window.
    pub fn take(&mut self, now: Instant) -> Option<(Trigger, Changed)> {
        if self.deadline()? <= now {
            self.burst.take().map(|b| (b.trigger, b.changed))
        } else {
            None
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none, so an idle
/// actor's `select!` arm never fires. `deadline` comes from
/// [`Coalescer::deadline`]; when the actor marks events with
/// `tokio::time::Instant::now().into_std()`, paused-clock tests work too.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Duration = Duration::from_millis(20);
    const MAX: Duration = Duration::from_millis(200);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn idle_coalescer_has_no_deadline_and_yields_nothing() {
        let mut c = Coalescer::new(Q, MAX);
        let t0 = Instant::now();
        assert_eq!(c.deadline(), None);
        assert!(!c.is_pending());
        assert_eq!(c.take(t0 + ms(10_000)), None);
    }

    #[test]
    fn single_event_fires_after_the_quiet_window() {
        let mut c = Coalescer::new(Q, MAX);
        let t0 = Instant::now();
        c.mark(t0, Trigger::Input, Changed::none());
        assert_eq!(c.deadline(), Some(t0 + Q));
        assert_eq!(c.take(t0 + ms(19)), None);
        assert_eq!(c.take(t0 + Q), Some((Trigger::Input, Changed::none())));
        assert_eq!(c.deadline(), None, "take resets the burst");
        assert_eq!(c.take(t0 + ms(1_000)), None);
    }

    #[test]
    fn events_inside_the_window_extend_it() {
        let mut c = Coalescer::new(Q, MAX);
        let t0 = Instant::now();
        c.mark(t0, Trigger::Input, Changed::none());
        c.mark(t0 + ms(15), Trigger::Input, Changed::none());
        assert_eq!(c.take(t0 + ms(25)), None);
        assert_eq!(c.deadline(), Some(t0 + ms(35)));
        assert_eq!(c.take(t0 + ms(35)), Some((Trigger::Input, Changed::none())));
    }

    #[test]
    fn a_steady_trickle_cannot_postpone_past_the_max_delay() {
        let mut c = Coalescer::new(Q, MAX);
        let t0 = Instant::now();
        let mut fired = Vec::new();
        // An event every 10 ms for one second: never 20 ms of quiet.
        for i in 0..100u64 {
            let now = t0 + ms(i * 10);
            if let Some((trigger, _)) = c.take(now) {
                fired.push((now - t0, trigger));
            }
            c.mark(now, Trigger::Certs, Changed::none());
        }
        assert_eq!(
            fired,
            [
                (ms(200), Trigger::Certs),
                (ms(400), Trigger::Certs),
                (ms(600), Trigger::Certs),
                (ms(800), Trigger::Certs)
            ],
            "each burst fires max_delay after its first event"
        );
    }

    #[test]
    fn late_marks_never_move_the_deadline_backwards_and_burst_keeps_the_best_trigger() {
        let mut c = Coalescer::new(Q, MAX);
        let t0 = Instant::now();
        c.mark(t0 + ms(50), Trigger::Input, Changed::none());
        // An Instant taken earlier but marked later (another task's clock read).
        c.mark(t0 + ms(40), Trigger::Certs, Changed::none());
        c.mark(t0 + ms(45), Trigger::Resync, Changed::none());
        assert_eq!(c.deadline(), Some(t0 + ms(70)));
        assert_eq!(c.take(t0 + ms(70)), Some((Trigger::Input, Changed::none())));
    }

    #[test]
    fn the_daemons_own_reasons_are_due_at_once_and_never_postpone_file_events() {
        let mut c = Coalescer::new(Q, MAX);
        let t0 = Instant::now();
        // The router changed state: nothing is being written, no quiet
        // window to wait for.
        c.mark(t0, Trigger::Router, Changed::none());
        assert_eq!(c.deadline(), Some(t0));
        assert_eq!(c.take(t0), Some((Trigger::Router, Changed::none())));

        // A file event waits for quiet; a router mark after it (a sync
        // that ended meanwhile) does not push that out.
        c.mark(t0 + ms(100), Trigger::Input, Changed::none());
        c.mark(t0 + ms(115), Trigger::Router, Changed::none());
        c.mark(t0 + ms(118), Trigger::Resync, Changed::Everything);
        assert_eq!(c.deadline(), Some(t0 + ms(120)));
        assert_eq!(
            c.take(t0 + ms(120)),
            Some((Trigger::Input, Changed::Everything))
        );

        // A file event joining a router mark still gets its quiet window,
        // and the maximum delay counts from the first file event.
        c.mark(t0 + ms(300), Trigger::Router, Changed::none());
        c.mark(t0 + ms(301), Trigger::Input, Changed::none());
        assert_eq!(c.deadline(), Some(t0 + ms(321)));
        for i in 1..30u64 {
            c.mark(t0 + ms(301 + i * 10), Trigger::Input, Changed::none());
        }
        assert_eq!(c.deadline(), Some(t0 + ms(501)));
    }

    #[test]
    fn a_burst_gathers_its_files_and_the_next_burst_starts_empty() {
        let mut c = Coalescer::new(Q, MAX);
        let t0 = Instant::now();
        c.mark(t0, Trigger::Input, Changed::file("input/resources/a.yaml"));
        c.mark(t0 + ms(5), Trigger::Certs, Changed::none());
        c.mark(
            t0 + ms(10),
            Trigger::Input,
            Changed::file("input/resources/b.yaml"),
        );
        let (trigger, changed) = c.take(t0 + ms(30)).unwrap();
        assert_eq!(trigger, Trigger::Input);
        let mut want = Changed::file("input/resources/a.yaml");
        want.merge(Changed::file("input/resources/b.yaml"));
        assert_eq!(changed, want);

        // Marked after the take (e.g. while that pass ran): the next pass's.
        c.mark(
            t0 + ms(40),
            Trigger::Input,
            Changed::file("input/resources/c.yaml"),
        );
        c.mark(t0 + ms(45), Trigger::Resync, Changed::Everything);
        c.mark(
            t0 + ms(50),
            Trigger::Input,
            Changed::file("input/resources/d.yaml"),
        );
        assert_eq!(
            c.take(t0 + ms(70)),
            Some((Trigger::Input, Changed::Everything))
        );
    }

    #[test]
    fn new_intervals_apply_to_a_pending_burst() {
        let mut c = Coalescer::new(Q, MAX);
        let t0 = Instant::now();
        c.mark(t0, Trigger::Input, Changed::none());
        c.set_intervals(ms(100), ms(150));
        assert_eq!(c.deadline(), Some(t0 + ms(100)));
        c.mark(t0 + ms(90), Trigger::Input, Changed::none());
        assert_eq!(c.deadline(), Some(t0 + ms(150)));
    }

    #[test]
    fn absurd_intervals_fire_at_once_instead_of_panicking() {
        let mut c = Coalescer::new(Duration::MAX, Duration::MAX);
        let t0 = Instant::now();
        c.mark(t0, Trigger::Input, Changed::none());
        assert_eq!(c.take(t0), Some((Trigger::Input, Changed::none())));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_until_waits_for_the_deadline_and_never_returns_when_idle() {
        let start = tokio::time::Instant::now();
        let deadline = start.into_std() + ms(20);
        sleep_until(Some(deadline)).await;
        assert!(tokio::time::Instant::now() >= tokio::time::Instant::from_std(deadline));

        let idle = tokio::time::timeout(Duration::from_secs(3600), sleep_until(None)).await;
        assert!(idle.is_err(), "an idle coalescer must never wake the actor");
    }
}
