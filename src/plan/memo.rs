//! What one pass leaves for the next, so that a resource whose inputs did
//! not change costs a few pointer comparisons instead of being validated,
//! rendered and compared again.
//!
//! Pure data, owned by the caller (the namespace actor keeps one per
//! namespace). One slot per entry of the latest pass, in entry order (kind,
//! then name), so the next pass finds them by walking alongside its own
//! sorted entries rather than by lookups. Every reuse is guarded by the
//! identity of what it was derived from: the `Arc`s of the decoded
//! definitions and of the prior record (held here, so an address can never
//! be reused by a different value), plus the namespace-wide context. A pass
//! with an empty memo computes everything; a pass with a memo gives the
//! same outcome (property-tested in `proptests`).

use super::entry::Entry;
use super::prior::PriorRecord;
use crate::model::{Profile, ResourceSummary, RouterState};
use crate::problem::Problem;
use crate::resources::{InputResource, Kind};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Memo {
    /// Namespace and CA names the entries were validated against.
    pub(crate) context: Option<(String, BTreeSet<String>)>,
    /// One per entry of the latest pass, in the same order.
    pub(crate) slots: Vec<Slot>,
    /// The set of slot keys differs from the pass before.
    pub(crate) keys_changed: bool,
    /// `runtime/resources/` paths of the slots, sorted, with the slot
    /// index: rebuilt only when the set of keys changes.
    pub(crate) record_paths: Vec<(String, usize)>,
    /// Profiles the fragments were rendered with.
    pub(crate) profiles: Option<BTreeMap<String, Profile>>,
    /// Router state and local routing keys the statuses were derived from.
    pub(crate) router: Option<RouterState>,
    pub(crate) local_keys: Option<Vec<String>>,
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub kind: Kind,
    pub name: String,
    pub built: Option<Built>,
    pub fragment: Option<Fragment>,
    pub status: Option<StatusSlot>,
}

impl Slot {
    pub fn new(kind: Kind, name: &str) -> Slot {
        Slot {
            kind,
            name: name.to_string(),
            built: None,
            fragment: None,
            status: None,
        }
    }
}

/// An entry and what it was built from.
#[derive(Debug)]
pub(crate) struct Built {
    pub defs: Vec<Arc<InputResource>>,
    pub file_errors: Vec<Problem>,
    pub prior: Option<Arc<PriorRecord>>,
    pub entry: Arc<Entry>,
    /// Problems `build` found (duplicates, validation), replayed on reuse.
    pub found: Vec<Problem>,
}

/// The `skrouterd.json` text of one tcpListener or tcpConnector.
#[derive(Debug)]
pub(crate) struct Fragment {
    pub entry: Arc<Entry>,
    /// The entity name: connectors are written in its order.
    pub order: String,
    pub text: String,
}

#[derive(Debug)]
pub(crate) struct StatusSlot {
    pub entry: Arc<Entry>,
    /// The record written (or kept) for `entry`.
    pub record: Arc<PriorRecord>,
    pub summary: Arc<ResourceSummary>,
}

impl Memo {
    pub fn new() -> Memo {
        Memo::default()
    }
}
