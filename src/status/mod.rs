//! The status model of resources.md 10: conditions, their transitions and
//! the resource's overall status. Pure: `now` is an argument.
//!
//! `lastTransitionTime` moves only when a condition's `status` flips; the
//! previous conditions come from the resource's runtime file, so this holds
//! across daemon restarts.

use serde::Serialize;

pub const ROUTER_NOT_REACHABLE: &str = "router not reachable";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CondStatus {
    True,
    False,
    Unknown,
}

impl CondStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CondStatus::True => "True",
            CondStatus::False => "False",
            CondStatus::Unknown => "Unknown",
        }
    }

    pub fn parse(s: &str) -> Option<CondStatus> {
        match s {
            "True" => Some(CondStatus::True),
            "False" => Some(CondStatus::False),
            "Unknown" => Some(CondStatus::Unknown),
            _ => None,
        }
    }
}

/// `Ready`, `Pending` or `Error`: a condition's reason and a resource's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Phase {
    Ready,
    Pending,
    Error,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ready => "Ready",
            Phase::Pending => "Pending",
            Phase::Error => "Error",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "Ready" => Some(Phase::Ready),
            "Pending" => Some(Phase::Pending),
            "Error" => Some(Phase::Error),
            _ => None,
        }
    }
}

/// A condition as computed for this pass, before its transition time is
/// known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: CondStatus,
    pub reason: Phase,
    pub message: String,
}

impl Verdict {
    pub fn ok() -> Verdict {
        Verdict {
            status: CondStatus::True,
            reason: Phase::Ready,
            message: "OK".to_string(),
        }
    }

    pub fn error(message: impl Into<String>) -> Verdict {
        Verdict {
            status: CondStatus::False,
            reason: Phase::Error,
            message: message.into(),
        }
    }

    pub fn pending(message: impl Into<String>) -> Verdict {
        Verdict {
            status: CondStatus::False,
            reason: Phase::Pending,
            message: message.into(),
        }
    }

    pub fn unreachable() -> Verdict {
        Verdict {
            status: CondStatus::Unknown,
            reason: Phase::Pending,
            message: ROUTER_NOT_REACHABLE.to_string(),
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == CondStatus::True
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: String,
    pub status: CondStatus,
    pub reason: Phase,
    pub message: String,
    pub last_transition_time: String,
    pub observed_generation: u64,
}

/// The conditions of one resource in order, each with its transition time:
/// kept from `previous` when the status did not flip, else `now`.
pub fn conditions(
    verdicts: Vec<(&str, Verdict)>,
    previous: &[Condition],
    generation: u64,
    now: &str,
) -> Vec<Condition> {
    verdicts
        .into_iter()
        .map(|(kind, v)| {
            let since = previous
                .iter()
                .find(|c| c.kind == kind && c.status == v.status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.to_string());
            Condition {
                kind: kind.to_string(),
                status: v.status,
                reason: v.reason,
                message: v.message,
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

/// `Ready` when every required condition is true; otherwise the reason and
/// message of the first one that is not.
pub fn ready(required: &[&Verdict], extra: Option<Verdict>) -> Verdict {
    for v in required {
        if !v.is_true() {
            return Verdict {
                status: CondStatus::False,
                reason: v.reason,
                message: v.message.clone(),
            };
        }
    }
    extra.unwrap_or_else(Verdict::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_flip() {
        let first = conditions(vec![("Configured", Verdict::unreachable())], &[], 1, "T1");
        let same = conditions(
            vec![("Configured", Verdict::unreachable())],
            &first,
            2,
            "T2",
        );
        assert_eq!(same[0].last_transition_time, "T1");
        assert_eq!(same[0].observed_generation, 2);
        let flipped = conditions(vec![("Configured", Verdict::error("bad"))], &same, 2, "T3");
        assert_eq!(flipped[0].last_transition_time, "T3");
        // A new message with the same status is not a transition.
        let reworded = conditions(
            vec![("Configured", Verdict::error("worse"))],
            &flipped,
            3,
            "T4",
        );
        assert_eq!(reworded[0].last_transition_time, "T3");
    }

    #[test]
    fn ready_copies_the_first_failing_condition() {
        let ok = Verdict::ok();
        let err = Verdict::error("broken");
        let r = ready(&[&ok, &err, &Verdict::unreachable()], None);
        assert_eq!(
            (r.status, r.reason, r.message.as_str()),
            (CondStatus::False, Phase::Error, "broken")
        );
        let unknown = ready(&[&Verdict::unreachable()], None);
        assert_eq!(unknown.status, CondStatus::False);
        assert_eq!(unknown.message, ROUTER_NOT_REACHABLE);
        assert!(ready(&[&ok], None).is_true());
    }
}
