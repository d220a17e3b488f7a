//! Which management and vanflow failures skupperd reports, and how often.
//!
//! A router that cannot be reached is retried every few seconds for as
//! long as it lasts; logging every attempt would bury everything else, and
//! logging nothing hides why a site is down. So each distinct reason is
//! logged once, further failures for the same reason are counted, and the
//! count is logged when the reason changes, when the failures end, and
//! every `every` (a minute by default) while they go on.
//!
//! Pure: the caller passes the instants and logs the lines returned.

use std::time::{Duration, Instant};

/// How long connection refusals are "the router is not started yet"
/// rather than a failure: platform.md 4 waits up to 30 s for management.
pub const STARTUP_GRACE: Duration = Duration::from_secs(30);

/// How often a count of repeated failures is logged while they go on.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// One reason at a time, with the failures since it was last reported.
#[derive(Debug, Clone)]
pub struct Repeats {
    every: Duration,
    reason: Option<String>,
    /// Failures for `reason` not reported yet.
    unreported: u64,
    reported_at: Option<Instant>,
}

impl Repeats {
    pub fn new(every: Duration) -> Repeats {
        Repeats {
            every,
            reason: None,
            unreported: 0,
            reported_at: None,
        }
    }

    /// The reason of the failures going on, if any.
    pub fn current(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// One more failure; answers the lines to log.
    pub fn failed(&mut self, reason: &str, now: Instant) -> Vec<String> {
        if self.reason.as_deref() == Some(reason) {
            self.unreported += 1;
            let due = self
                .reported_at
                .is_none_or(|at| now.saturating_duration_since(at) >= self.every);
            if !due {
                return Vec::new();
            }
            self.reported_at = Some(now);
            return self.flush().into_iter().collect();
        }
        let mut lines: Vec<String> = self.flush().into_iter().collect();
        lines.push(reason.to_string());
        self.reason = Some(reason.to_string());
        self.reported_at = Some(now);
        lines
    }

    /// The failures ended; answers the count still owed, if any.
    pub fn cleared(&mut self) -> Option<String> {
        let line = self.flush();
        self.reason = None;
        self.reported_at = None;
        line
    }

    fn flush(&mut self) -> Option<String> {
        let n = std::mem::take(&mut self.unreported);
        let reason = self.reason.as_deref()?;
        (n > 0).then(|| {
            let times = if n == 1 { "time" } else { "times" };
            format!("{reason} (repeated {n} {times})")
        })
    }
}

/// The management connection's failures: [`Repeats`], except that a
/// refused connection while the router is starting is not a failure.
#[derive(Debug, Clone)]
pub struct Failures {
    repeats: Repeats,
    /// The first refusal of the current run of refusals while the router
    /// was thought up.
    refused_since: Option<Instant>,
}

impl Default for Failures {
    fn default() -> Failures {
        Failures::new(REPORT_EVERY)
    }
}

impl Failures {
    pub fn new(every: Duration) -> Failures {
        Failures {
            repeats: Repeats::new(every),
            refused_since: None,
        }
    }

    /// Why the router cannot be reached, when that is a failure (not while
    /// it is only starting).
    pub fn reason(&self) -> Option<&str> {
        self.repeats.current()
    }

    /// A failed attempt: `refused` when nothing listens on the port,
    /// `router_down` when the runner knows the router is not running (it
    /// is being started, or waits to be restarted). Answers the lines to
    /// log.
    pub fn failed(
        &mut self,
        reason: &str,
        refused: bool,
        router_down: bool,
        now: Instant,
    ) -> Vec<String> {
        if refused {
            // The grace starts when the router is up: time spent down
            // (waiting out a restart backoff) does not use it up.
            let starting = if router_down {
                self.refused_since = None;
                true
            } else {
                let since = *self.refused_since.get_or_insert(now);
                now.saturating_duration_since(since) < STARTUP_GRACE
            };
            if starting {
                // Not started yet: not a failure, and no earlier reason
                // stands any more.
                return self.repeats.cleared().into_iter().collect();
            }
        } else {
            self.refused_since = None;
        }
        self.repeats.failed(reason, now)
    }

    /// The router answered. Answers the count still owed, if any, and
    /// whether there had been a failure.
    pub fn succeeded(&mut self) -> (Option<String>, bool) {
        self.refused_since = None;
        let had = self.repeats.current().is_some();
        (self.repeats.cleared(), had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_reason_is_logged_once_then_counted_until_it_changes() {
        let mut r = Repeats::new(Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(r.failed("tls: unknown issuer", t), ["tls: unknown issuer"]);
        for i in 1..=12 {
            assert!(r.failed("tls: unknown issuer", t + ms(i * 100)).is_empty());
        }
        assert_eq!(r.current(), Some("tls: unknown issuer"));
        assert_eq!(
            r.failed("connection reset", t + ms(2000)),
            [
                "tls: unknown issuer (repeated 12 times)",
                "connection reset"
            ]
        );
        assert_eq!(r.cleared(), None, "nothing repeated since");
        assert_eq!(r.current(), None);
        // After clearing, the same reason is news again.
        assert_eq!(
            r.failed("connection reset", t + ms(3000)),
            ["connection reset"]
        );
        assert!(r.failed("connection reset", t + ms(3100)).is_empty());
        assert_eq!(
            r.cleared().as_deref(),
            Some("connection reset (repeated 1 time)")
        );
    }

    #[test]
    fn a_long_run_of_one_reason_is_counted_periodically() {
        let mut r = Repeats::new(Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(r.failed("x", t).len(), 1);
        let mut logged = Vec::new();
        // Every 5 s for three minutes.
        for i in 1..=36 {
            logged.extend(r.failed("x", t + Duration::from_secs(i * 5)));
        }
        assert_eq!(
            logged,
            [
                "x (repeated 12 times)",
                "x (repeated 12 times)",
                "x (repeated 12 times)"
            ]
        );
    }

    #[test]
    fn refusals_while_the_router_starts_are_not_failures() {
        let mut f = Failures::new(Duration::from_secs(60));
        let t = Instant::now();
        let refused = "connecting to 127.0.0.1:5671: Connection refused";
        // The runner says the router is down: quiet for as long as it is.
        for i in 0..100 {
            assert!(f.failed(refused, true, true, t + ms(i * 1000)).is_empty());
        }
        // Up, but not listening yet: quiet for the grace period.
        let up = t + ms(100_000);
        assert!(f.failed(refused, true, false, up).is_empty());
        assert!(f
            .failed(refused, true, false, up + STARTUP_GRACE - ms(1))
            .is_empty());
        assert_eq!(f.reason(), None);
        // Still refusing after it: that is a failure.
        assert_eq!(
            f.failed(refused, true, false, up + STARTUP_GRACE),
            [refused]
        );
        assert_eq!(f.reason(), Some(refused));
        assert_eq!(f.succeeded(), (None, true));
        assert_eq!(f.succeeded(), (None, false));
    }

    #[test]
    fn other_failures_count_at_once_and_a_restart_clears_them() {
        let mut f = Failures::new(Duration::from_secs(60));
        let t = Instant::now();
        assert_eq!(
            f.failed("tls: bad certificate", false, false, t),
            ["tls: bad certificate"]
        );
        assert!(f
            .failed("tls: bad certificate", false, false, t + ms(100))
            .is_empty());
        assert_eq!(f.reason(), Some("tls: bad certificate"));
        // The router goes down to be restarted: the old reason no longer
        // stands, and its count is logged.
        assert_eq!(
            f.failed("refused", true, true, t + ms(200)),
            ["tls: bad certificate (repeated 1 time)"]
        );
        assert_eq!(f.reason(), None);
    }
}
