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

    /// The line that explains an exit (router.md 6.2): the router's
    /// start-up failure if it printed one, else its last `(critical)` or
    /// `(error)` line, without the timestamp. Info lines never explain an
    /// exit: `None` then, and the exit status is the explanation.
    pub fn error_line(&self) -> Option<&str> {
        let last = |pred: &dyn Fn(&str) -> bool| {
            self.lines
                .iter()
                .rev()
                .map(String::as_str)
                .find(|l| pred(l))
        };
        last(&|l| l.contains(STARTUP_FAILED))
            .or_else(|| last(&|l| l.contains(CRITICAL) || l.contains(ERROR)))
            .map(strip_timestamp)
    }
}

/// The severity markers of the router's log lines
/// (`<date> <time> <zone> <MODULE> (<severity>) <text>`).
const CRITICAL: &str = "(critical)";
const ERROR: &str = "(error)";

/// A router log line without its leading `2026-12-03 10:00:00.123456
/// +0000 ` timestamp: the status shows the same cause with the same words
/// at every exit, so a crash loop does not rewrite status files.
pub fn strip_timestamp(line: &str) -> &str {
    let mut parts = line.splitn(4, ' ');
    let (Some(date), Some(time), Some(zone), Some(rest)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return line;
    };
    let digits = |s: &str, extra: &[char]| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || extra.contains(&c))
    };
    let is_date = date.len() == 10 && digits(date, &['-']);
    let is_time = time.len() >= 8 && digits(time, &[':', '.']);
    let is_zone = zone.len() == 5 && zone.starts_with(['+', '-']) && digits(&zone[1..], &[]);
    if is_date && is_time && is_zone {
        rest
    } else {
        line
    }
}

/// The port of the listener the router could not open, from its
/// `Shutting down, required listener failed <host>:<port>` line (observed
/// when the management port is taken: the router exits with status 1).
pub fn required_listener_failed(line: &str) -> Option<u16> {
    let (_, addr) = line.split_once("Shutting down, required listener failed ")?;
    let addr = addr.split_whitespace().next()?;
    addr.rsplit_once(':')?.1.parse().ok()
}

/// How the router process ended, as the operating system said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
    /// Waiting for it failed, or it never started.
    Unknown,
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::Code(c) => write!(f, "exited with status {c}"),
            ExitKind::Signal(s) => write!(f, "killed by signal {s}"),
            ExitKind::Unknown => write!(f, "exited (no exit status)"),
        }
    }
}

/// Why the router exited on its own: what the status shows, and what
/// skupperd can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterExit {
    pub kind: ExitKind,
    /// The explanation: the router's own error line (see
    /// [`Lines::error_line`]), else the exit status in words.
    pub cause: String,
    /// The router exited with status 1 because it could not open a listener
    /// of its config file on this port (another process holds it).
    pub listener_port_taken: Option<u16>,
}

impl RouterExit {
    /// Explains an exit from the router's last lines.
    pub fn explain(lines: &Lines, kind: ExitKind) -> RouterExit {
        let line = lines.error_line();
        let listener_port_taken = match kind {
            ExitKind::Code(1) => line.and_then(required_listener_failed),
            _ => None,
        };
        RouterExit {
            kind,
            cause: line.map_or_else(|| kind.to_string(), str::to_owned),
            listener_port_taken,
        }
    }

    /// The router could not be started at all (the binary is missing...).
    pub fn not_started(why: String) -> RouterExit {
        RouterExit {
            kind: ExitKind::Unknown,
            cause: why,
            listener_port_taken: None,
        }
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

    const INFO: &str = "2026-12-03 10:00:00.1 +0000 ROUTER (info) Router started in Interior mode";
    const LISTENER_ERROR: &str = "2026-12-03 10:00:00.123456 +0000 SERVER (error) Listener error on 127.0.0.1:5671: Address already in use - listen on 127.0.0.1:5671 (proton:io)";
    const SHUTDOWN: &str = "2026-12-03 10:00:00.123456 +0000 SERVER (critical) Shutting down, required listener failed 127.0.0.1:5671";

    fn lines(of: &[&str]) -> Lines {
        let mut l = Lines::new(50);
        for line in of {
            l.push(line.to_string());
        }
        l
    }

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
        // The failure scrolled out of the ring, and nothing else is an
        // error line: the exit status will have to explain.
        assert_eq!(l.error_line(), None);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            ["SKUPPER-ROUTER FATAL ERROR", "a", "b"]
        );
    }

    #[test]
    fn the_last_critical_or_error_line_explains_not_the_last_info_line() {
        let l = lines(&[INFO, LISTENER_ERROR, SHUTDOWN, INFO]);
        assert_eq!(
            l.error_line(),
            Some("SERVER (critical) Shutting down, required listener failed 127.0.0.1:5671")
        );
        let l = lines(&[INFO, LISTENER_ERROR, INFO]);
        assert_eq!(
            l.error_line(),
            Some("SERVER (error) Listener error on 127.0.0.1:5671: Address already in use - listen on 127.0.0.1:5671 (proton:io)")
        );
        assert_eq!(lines(&[INFO, INFO]).error_line(), None);
    }

    #[test]
    fn a_failed_start_of_the_real_router_is_explained_by_its_start_up_line() {
        // Observed (skupper-router main e2ec51a4, a config with an unknown
        // attribute; exit status 1).
        let l = lines(&[
            "2026-12-03 10:48:12.997708 +0000 ERROR (error) Python: Exception: Cannot load configuration file /x/skrouterd.json: io.skupper.router.tcpListener: Unknown attribute 'bogusAttr' for 'io.skupper.router.tcpListener'",
            "2026-12-03 10:48:12.997815 +0000 ROUTER (critical) Router start-up failed: Python: Exception: Cannot load configuration file /x/skrouterd.json: io.skupper.router.tcpListener: Unknown attribute 'bogusAttr' for 'io.skupper.router.tcpListener'",
            "/usr/sbin/skrouterd: Python: Exception: Cannot load configuration file /x/skrouterd.json: io.skupper.router.tcpListener: Unknown attribute 'bogusAttr' for 'io.skupper.router.tcpListener'",
        ]);
        let e = RouterExit::explain(&l, ExitKind::Code(1));
        assert_eq!(
            e.cause,
            "ROUTER (critical) Router start-up failed: Python: Exception: Cannot load configuration file /x/skrouterd.json: io.skupper.router.tcpListener: Unknown attribute 'bogusAttr' for 'io.skupper.router.tcpListener'"
        );
        assert_eq!(e.listener_port_taken, None);
    }

    #[test]
    fn timestamps_are_stripped_only_when_they_are_timestamps() {
        assert_eq!(
            strip_timestamp(INFO),
            "ROUTER (info) Router started in Interior mode"
        );
        assert_eq!(strip_timestamp("2026-12-03 10:00:00 -0130 X"), "X");
        for kept in [
            "SERVER (critical) a b c",
            "2026-12-03 later +0000 X",
            "2026-12-03 10:00:00 UTC X",
            "",
        ] {
            assert_eq!(strip_timestamp(kept), kept);
        }
    }

    #[test]
    fn an_exit_without_an_error_line_is_explained_by_its_status() {
        let l = lines(&[INFO, "free(): double free detected in tcache 2"]);
        let e = RouterExit::explain(&l, ExitKind::Signal(9));
        assert_eq!(e.cause, "killed by signal 9");
        assert_eq!(e.listener_port_taken, None);
        let e = RouterExit::explain(&l, ExitKind::Code(1));
        assert_eq!(e.cause, "exited with status 1");
    }

    #[test]
    fn a_required_listener_failure_with_status_1_names_the_taken_port() {
        let l = lines(&[INFO, LISTENER_ERROR, SHUTDOWN]);
        let e = RouterExit::explain(&l, ExitKind::Code(1));
        assert_eq!(e.listener_port_taken, Some(5671));
        assert_eq!(
            e.cause,
            "SERVER (critical) Shutting down, required listener failed 127.0.0.1:5671"
        );
        // The line alone is not enough: the router must have exited with
        // the status that line comes with.
        let e = RouterExit::explain(&l, ExitKind::Signal(6));
        assert_eq!(e.listener_port_taken, None);
        assert_eq!(
            required_listener_failed("Shutting down, required listener failed [::1]:5672"),
            Some(5672)
        );
        assert_eq!(
            required_listener_failed("Shutting down, required listener failed nowhere"),
            None
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
