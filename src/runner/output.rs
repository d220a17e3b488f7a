//! The router's stdout and stderr (platform.md 1.2): every line is kept in
//! a short ring for the error message, and logged unless the router talks
//! faster than the limit allows, in which case the excess is counted and
//! the count logged. A router in a crash loop or at trace level must not
//! flood skupperd's journal.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The marker of the router's fatal start-up error (router.md 6.2).
pub const STARTUP_FAILED: &str = "Router start-up failed:";

/// The last lines a router printed.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    capacity: usize,
    lines: VecDeque<String>,
}

impl Lines {
    pub fn new(capacity: usize) -> Lines {
        Lines {
            capacity,
            lines: VecDeque::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, line: String) {
        if self.capacity == 0 {
            return;
        }
        while self.lines.len() >= self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn clear(&mut self) {
        self.lines.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// The line that explains an exit: the router's start-up failure if it
    /// printed one, else its last line.
    pub fn error_line(&self) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find(|l| l.contains(STARTUP_FAILED))
            .or_else(|| self.lines.back())
            .map(String::as_str)
    }
}

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; first report that this many lines were dropped, if any.
    Log {
        dropped_before: u64,
    },
    Drop,
}

/// At most `per_second` lines in each one-second window.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: u32,
    window_start: Option<Instant>,
    in_window: u32,
    dropped: u64,
}

impl RateLimit {
    pub fn new(per_second: u32) -> RateLimit {
        RateLimit {
            per_second,
            window_start: None,
            in_window: 0,
            dropped: 0,
        }
    }

    pub fn admit(&mut self, now: Instant) -> Verdict {
        let new_window = self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1));
        if new_window {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window >= self.per_second {
            self.dropped += 1;
            return Verdict::Drop;
        }
        self.in_window += 1;
        Verdict::Log {
            dropped_before: std::mem::take(&mut self.dropped),
        }
    }

    /// Lines dropped since the last report; reported once, at end of output.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_failure_wins_over_later_lines() {
        let mut l = Lines::new(3);
        assert_eq!(l.error_line(), None);
        l.push("starting".into());
        l.push("Router start-up failed: Python: Exception: Cannot load configuration file".into());
        l.push("SKUPPER-ROUTER FATAL ERROR".into());
        assert_eq!(
            l.error_line(),
            Some("Router start-up failed: Python: Exception: Cannot load configuration file")
        );
        l.push("a".into());
        l.push("b".into());
        // The failure scrolled out of the ring: the last line explains.
        assert_eq!(l.error_line(), Some("b"));
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            ["SKUPPER-ROUTER FATAL ERROR", "a", "b"]
        );
    }

    #[test]
    fn lines_beyond_the_rate_are_dropped_and_reported_with_the_next_logged_line() {
        let mut r = RateLimit::new(3);
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..5).map(|_| r.admit(t0)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Log { dropped_before: 0 },
                Verdict::Log { dropped_before: 0 },
                Verdict::Log { dropped_before: 0 },
                Verdict::Drop,
                Verdict::Drop
            ]
        );
        let t1 = t0 + Duration::from_millis(1000);
        assert_eq!(r.admit(t1), Verdict::Log { dropped_before: 2 });
        assert_eq!(r.admit(t1), Verdict::Log { dropped_before: 0 });
        assert_eq!(r.admit(t1), Verdict::Log { dropped_before: 0 });
        assert_eq!(r.admit(t1), Verdict::Drop);
        assert_eq!(r.take_dropped(), 1);
        assert_eq!(r.take_dropped(), 0);
    }
}
