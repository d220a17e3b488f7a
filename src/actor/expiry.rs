//! The once-a-day memory of certificate expiry warnings (resources.md 9).
//!
//! A user certificate close to its end is in every pass's problems, and
//! the actor logs new problems. The warning's text counts the days, so
//! that would log it once a day per resource using the bundle, and a
//! certificate kept across a restart or replaced by one that also expires
//! soon would follow no rule at all. This memory makes it one line per
//! certificate per day: keyed by the file and the certificate's notAfter,
//! so a replacement is a new certificate and is logged at once.

use crate::plan::Expiring;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

/// How often the same certificate is logged again.
pub const EVERY: Duration = Duration::DAY;

/// When each expiring certificate (file and notAfter) was last logged.
#[derive(Debug, Default)]
pub struct ExpiryLog {
    logged: HashMap<(String, OffsetDateTime), OffsetDateTime>,
}

impl ExpiryLog {
    pub fn new() -> ExpiryLog {
        ExpiryLog::default()
    }

    /// The certificates of `expiring` (a pass's outcome) to log at `now`:
    /// those not logged within the last day. Certificates that no longer
    /// expire soon (replaced, or no longer used) are forgotten, so the
    /// memory holds at most what the last pass reported.
    pub fn due<'a>(&mut self, expiring: &'a [Expiring], now: OffsetDateTime) -> Vec<&'a Expiring> {
        self.logged.retain(|(file, not_after), _| {
            expiring
                .iter()
                .any(|e| &e.file == file && e.not_after == *not_after)
        });
        let mut out = Vec::new();
        for e in expiring {
            let key = (e.file.clone(), e.not_after);
            match self.logged.get(&key) {
                Some(at) if now - *at < EVERY => {}
                _ => {
                    self.logged.insert(key, now);
                    out.push(e);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn expiring(file: &str, not_after: OffsetDateTime) -> Expiring {
        Expiring {
            file: file.to_string(),
            not_after,
            message: format!("{file} expires on {}", not_after.date()),
        }
    }

    fn files(due: Vec<&Expiring>) -> Vec<&str> {
        due.into_iter().map(|e| e.file.as_str()).collect()
    }

    #[test]
    fn each_certificate_is_logged_once_a_day_and_a_replacement_at_once() {
        let t0 = datetime!(2026-11-26 10:00 UTC);
        let end = datetime!(2026-12-20 00:00 UTC);
        let web = "input/certs/web/tls.crt";
        let ca = "input/issuers/skupper-service-ca/tls.crt";
        let mut log = ExpiryLog::new();
        let both = [expiring(web, end), expiring(ca, end)];

        assert_eq!(files(log.due(&both, t0)), [web, ca], "first seen");
        // Every pass of the day (resyncs, edits) says nothing more.
        assert!(log.due(&both, t0 + Duration::minutes(1)).is_empty());
        assert!(log.due(&both, t0 + Duration::hours(23)).is_empty());
        assert_eq!(
            files(log.due(&both, t0 + Duration::DAY)),
            [web, ca],
            "a day later"
        );

        // The web bundle is replaced by one that also expires soon: a new
        // certificate, logged at once; the CA waits for its day.
        let t1 = t0 + Duration::DAY + Duration::hours(2);
        let replaced = [expiring(web, end + Duration::DAY), expiring(ca, end)];
        assert_eq!(files(log.due(&replaced, t1)), [web]);

        // A certificate that left the list (renewed for long) is forgotten:
        // if it is back, it is logged at once.
        let t2 = t1 + Duration::hours(1);
        assert!(log.due(&[expiring(ca, end)], t2).is_empty());
        assert_eq!(log.logged.len(), 1, "the replaced web entry is gone");
        assert_eq!(files(log.due(&replaced, t2 + Duration::minutes(1))), [web]);
    }
}
