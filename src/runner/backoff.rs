//! When to start a router again after it exited on its own (platform.md
//! 1.2): after 1 s, doubling up to 60 s; the delay resets once the router
//! has been up for 120 s; five exits within 60 s mark it failed, and a
//! failed router is retried every 60 s. Pure: the caller passes the
//! instants, so the policy is tested without waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The numbers of the policy; the defaults are platform.md's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartConfig {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Uptime after which the router counts as healthy again.
    pub reset_after: Duration,
    /// `crash_limit` exits within `crash_window` mean failed.
    pub crash_window: Duration,
    pub crash_limit: usize,
    /// Delay between attempts while failed.
    pub failed_retry: Duration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            reset_after: Duration::from_secs(120),
            crash_window: Duration::from_secs(60),
            crash_limit: 5,
            failed_retry: Duration::from_secs(60),
        }
    }
}

/// What to do after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Wait this long, then start again.
    pub delay: Duration,
    /// The router exits too often.
    pub failed: bool,
}

#[derive(Debug, Clone)]
pub struct RestartPolicy {
    config: RestartConfig,
    next_delay: Duration,
    recent_exits: VecDeque<Instant>,
    failed: bool,
}

impl RestartPolicy {
    pub fn new(config: RestartConfig) -> RestartPolicy {
        RestartPolicy {
            next_delay: config.initial_delay,
            config,
            recent_exits: VecDeque::new(),
            failed: false,
        }
    }

    pub fn config(&self) -> &RestartConfig {
        &self.config
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// A router started at `started` exited at `now`.
    pub fn on_exit(&mut self, started: Instant, now: Instant) -> Decision {
        if now.saturating_duration_since(started) >= self.config.reset_after {
            self.healthy();
        }
        self.recent_exits.push_back(now);
        while self
            .recent_exits
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.config.crash_window)
        {
            self.recent_exits.pop_front();
        }
        if self.recent_exits.len() >= self.config.crash_limit {
            self.failed = true;
        }
        let delay = if self.failed {
            self.config.failed_retry
        } else {
            self.next_delay
        };
        self.next_delay = (self.next_delay * 2).min(self.config.max_delay);
        Decision {
            delay,
            failed: self.failed,
        }
    }

    /// The router answered over management after failing: it is not
    /// failed any more. The delay and the recent exits stay, so a router
    /// that answers and then dies again soon still backs off, and fails
    /// again if it keeps exiting within the window.
    pub fn answered(&mut self) {
        self.failed = false;
    }

    /// The router stayed up for `reset_after`, or skupperd restarted it on
    /// purpose: forget the past exits.
    pub fn healthy(&mut self) {
        self.next_delay = self.config.initial_delay;
        self.recent_exits.clear();
        self.failed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Exits after `uptime` each, waiting the decided delay in between.
    fn run(policy: &mut RestartPolicy, t0: Instant, uptimes: &[u64]) -> Vec<Decision> {
        let mut now = t0;
        uptimes
            .iter()
            .map(|u| {
                let started = now;
                now += secs(*u);
                let d = policy.on_exit(started, now);
                now += d.delay;
                d
            })
            .collect()
    }

    #[test]
    fn delays_double_from_one_second_up_to_a_minute() {
        let mut p = RestartPolicy::new(RestartConfig::default());
        // Each run lasts 30 s: never five exits in a minute, never healthy.
        let delays: Vec<u64> = run(&mut p, Instant::now(), &[30; 9])
            .iter()
            .map(|d| d.delay.as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(!p.failed());
    }

    #[test]
    fn two_minutes_of_uptime_reset_the_delay() {
        let mut p = RestartPolicy::new(RestartConfig::default());
        let t0 = Instant::now();
        let d = run(&mut p, t0, &[30, 30, 30, 120, 30]);
        let delays: Vec<u64> = d.iter().map(|d| d.delay.as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 1, 2]);
    }

    #[test]
    fn five_exits_within_a_minute_fail_and_retry_every_minute() {
        let mut p = RestartPolicy::new(RestartConfig::default());
        let d = run(&mut p, Instant::now(), &[0, 0, 0, 0, 0, 0, 0]);
        let failed: Vec<bool> = d.iter().map(|d| d.failed).collect();
        assert_eq!(failed, [false, false, false, false, true, true, true]);
        let delays: Vec<u64> = d.iter().map(|d| d.delay.as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 60, 60, 60]);
    }

    #[test]
    fn a_failed_router_that_stays_up_is_healthy_again() {
        let mut p = RestartPolicy::new(RestartConfig::default());
        let t0 = Instant::now();
        run(&mut p, t0, &[0; 5]);
        assert!(p.failed());
        let later = t0 + secs(1000);
        let d = p.on_exit(later, later + secs(120));
        assert_eq!(
            d,
            Decision {
                delay: secs(1),
                failed: false
            }
        );
    }

    #[test]
    fn an_answer_clears_the_failure_but_not_the_backoff() {
        let mut p = RestartPolicy::new(RestartConfig::default());
        let t0 = Instant::now();
        run(&mut p, t0, &[0; 5]);
        assert!(p.failed());
        p.answered();
        assert!(!p.failed());
        // Dying right away again: the next exit is within the window of
        // the five before it, so it fails again.
        let t = t0 + secs(20);
        let d = p.on_exit(t, t + secs(1));
        assert!(d.failed, "{d:?}");
        // Long after: not failed, and the delay did not start over.
        p.answered();
        let t = t0 + secs(1000);
        let d = p.on_exit(t, t + secs(10));
        assert_eq!(
            d,
            Decision {
                delay: secs(60),
                failed: false
            }
        );
    }

    #[test]
    fn exits_spread_over_more_than_a_minute_do_not_fail() {
        let mut p = RestartPolicy::new(RestartConfig::default());
        // 20 s up each, plus the growing delays: at most three exits fall
        // within any minute.
        let d = run(&mut p, Instant::now(), &[20; 6]);
        assert!(d.iter().all(|d| !d.failed), "{d:?}");
    }
}
