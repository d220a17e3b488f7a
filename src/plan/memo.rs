//! What one pass leaves for the next, so that a resource whose inputs did
//! not change costs a lookup and a few pointer comparisons instead of being
//! validated, rendered and compared again.
//!
//! Pure data, owned by the caller (the namespace actor keeps one per
//! namespace). Every reuse is guarded by the identity of what it was
//! computed from: the `Arc`s of the decoded definitions and of the prior
//! record (held here, so an address can never be reused by a different
//! value), plus the namespace-wide context. A pass with an empty memo
//! computes everything; a pass with a memo gives byte-identical output
//! (property-tested in `proptests`).

use super::creds::Profile;
use super::entry::Entry;
use super::prior::PriorRecord;
use super::{ResourceSummary, RouterState};
use crate::problem::Problem;
use crate::resources::{InputResource, Kind};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Per kind, by resource name: lookups by `&str` without building a key.
pub(crate) type ByKind<T> = [HashMap<String, T>; 3];

pub(crate) fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Site => 0,
        Kind::Listener => 1,
        Kind::Connector => 2,
    }
}

#[derive(Debug, Default)]
pub struct Memo {
    /// Passes so far: slots not touched by the latest pass are dropped.
    pub(crate) pass: u64,
    /// Namespace and CA names the entries were validated against.
    pub(crate) context: Option<(String, BTreeSet<String>)>,
    pub(crate) entries: ByKind<EntrySlot>,
    /// Profiles the fragments were rendered with.
    pub(crate) profiles: Option<BTreeMap<String, Profile>>,
    pub(crate) fragments: ByKind<Fragment>,
    /// Router state and local routing keys the statuses were derived from.
    pub(crate) router: Option<RouterState>,
    pub(crate) local_keys: Option<Vec<String>>,
    pub(crate) statuses: ByKind<StatusSlot>,
}

#[derive(Debug)]
pub(crate) struct EntrySlot {
    pub defs: Vec<Arc<InputResource>>,
    pub file_errors: Vec<Problem>,
    pub prior: Option<Arc<PriorRecord>>,
    pub entry: Arc<Entry>,
    /// Problems `build` found (duplicates, validation), replayed on reuse.
    pub found: Vec<Problem>,
    pub pass: u64,
}

/// The `skrouterd.json` text of one tcpListener or tcpConnector.
#[derive(Debug)]
pub(crate) struct Fragment {
    pub entry: Arc<Entry>,
    /// The entity name: connectors are written in its order.
    pub order: String,
    pub text: String,
    pub pass: u64,
}

#[derive(Debug)]
pub(crate) struct StatusSlot {
    pub entry: Arc<Entry>,
    /// The record written (or kept) for `entry`.
    pub record: Arc<PriorRecord>,
    pub summary: ResourceSummary,
    pub path: String,
    pub pass: u64,
}

impl Memo {
    pub fn new() -> Memo {
        Memo::default()
    }

    /// Drops what the latest pass did not use.
    pub(crate) fn sweep(&mut self) {
        let pass = self.pass;
        for map in &mut self.entries {
            map.retain(|_, s| s.pass == pass);
        }
        for map in &mut self.fragments {
            map.retain(|_, s| s.pass == pass);
        }
        for map in &mut self.statuses {
            map.retain(|_, s| s.pass == pass);
        }
    }

    /// Forgets everything (a context change).
    pub(crate) fn clear_entries(&mut self) {
        for map in &mut self.entries {
            map.clear();
        }
    }
}
