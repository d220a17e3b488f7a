//! The live reconcile plan: which management operations turn the entities a
//! running router reports into the entities skupperd rendered (router.md 3).
//!
//! Pure. The caller QUERYs the router, renders the accepted state with
//! management-path certificate paths ([`management_entities`]), and sends
//! the returned operations one at a time; refused ones are reported against
//! their resource and the rest continue (router.md 3.6).
//!
//! # Expected flow
//! 1. Index both sides by `(type, name)`; keep only the types of
//!    [`KINDS`] and the entities skupperd owns ([`owned`]).
//! 2. Compare each desired entity with the router's row over the
//!    attributes skupperd sets, absence meaning the router's default
//!    ([`compare`]).
//! 3. Decide: unchanged (no operation), UPDATE (a tcpListener whose only
//!    difference is `observer`; an sslProfile whose files are the same and
//!    whose `ordinal` went up), or replace (DELETE + CREATE).
//! 4. Emit in the order of router.md 3.5 (see [`plan`]).
//! 5. Bring log levels in line ([`log_updates`]): routerLogging is
//!    applied live, without a restart (router.md 2.4).
//!
//! # Guarantees
//! - An entity that compares equal, and whose sslProfile (and, for a
//!   listenerAddress, tcpListener) is not replaced, gets no operation.
//! - An sslProfile exists before any CREATE that names it and is deleted
//!   only after every entity that names it is gone; a listenerAddress is
//!   created after its tcpListener and deleted before it.
//! - Applied without refusals, the plan leaves a router for which `plan`
//!   returns nothing (checked against a schema-driven router model in the
//!   property tests).
//!
//! # Caveats
//! - A lower desired `ordinal` than the router's is not a change: ordinals
//!   only grow. Whoever bumps the ordinal must start from the router's
//!   value when it is higher than the persisted one.
//! - Desired entities are assumed consistent (names unique across types,
//!   references resolvable); validation guarantees that. A duplicate
//!   `(type, name)` keeps the first.

pub mod compare;
mod summary;

#[cfg(test)]
mod model;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use compare::MANAGEMENT_PROFILE;
pub use compare::{owned, set_by_skupperd, CONNECTOR, KINDS, LOG};
pub use summary::{management_entities, summarize, CONTAINER_BASE_PATH};

use compare::{
    differing, effective, reference, short_kind, Norm, LISTENER, LISTENER_ADDRESS, SSL_PROFILE,
    TCP_CONNECTOR, TCP_LISTENER,
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One router entity: its short type and its attributes, `name` included.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub kind: String,
    pub attrs: Map<String, Value>,
}

impl Entity {
    pub fn name(&self) -> Option<&str> {
        self.attrs.get("name").and_then(Value::as_str)
    }
}

/// One management request, addressed by name.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Create(Entity),
    /// Only the attributes that change.
    Update {
        kind: String,
        name: String,
        attrs: Map<String, Value>,
    },
    Delete {
        kind: String,
        name: String,
    },
}

impl Op {
    pub fn kind(&self) -> &str {
        match self {
            Op::Create(e) => &e.kind,
            Op::Update { kind, .. } | Op::Delete { kind, .. } => kind,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Op::Create(e) => e.name().unwrap_or_default(),
            Op::Update { name, .. } | Op::Delete { name, .. } => name,
        }
    }
}

type Attrs = Map<String, Value>;
type Key<'a> = (&'static str, &'a str);

/// Entity types other than sslProfile, in the order (b) deletes them.
const DELETE_ORDER: [&str; 5] = [
    LISTENER_ADDRESS,
    TCP_LISTENER,
    TCP_CONNECTOR,
    CONNECTOR,
    LISTENER,
];
/// And in the order (c) creates them.
const CREATE_ORDER: [&str; 5] = [
    TCP_CONNECTOR,
    TCP_LISTENER,
    LISTENER_ADDRESS,
    CONNECTOR,
    LISTENER,
];

fn static_kind(kind: &str) -> Option<&'static str> {
    let kind = short_kind(kind);
    KINDS.iter().copied().find(|k| *k == kind)
}

/// Owned entities of the managed types, by `(type, name)`; the first of a
/// duplicate wins.
fn index<'a>(entities: impl Iterator<Item = (&'a str, &'a Attrs)>) -> BTreeMap<Key<'a>, &'a Attrs> {
    let mut out = BTreeMap::new();
    for (kind, attrs) in entities {
        let Some(kind) = static_kind(kind) else {
            continue;
        };
        let Some(name) = attrs.get("name").and_then(Value::as_str) else {
            continue;
        };
        if owned(kind, name) {
            out.entry((kind, name)).or_insert(attrs);
        }
    }
    out
}

fn of_kind<'m, 'a>(
    map: &'m BTreeMap<Key<'a>, &'a Attrs>,
    kind: &'static str,
) -> impl Iterator<Item = (&'a str, &'a Attrs)> + 'm {
    map.iter()
        .filter(move |((k, _), _)| *k == kind)
        .map(|((_, n), a)| (*n, *a))
}

/// The operations that take the router from `observed` (QUERY rows per
/// short type) to `desired`, in this order (router.md 3.5):
///
/// - (a) CREATE new sslProfiles, UPDATE changed ones (`ordinal`,
///   `oldestValidOrdinal`);
/// - (b) DELETE listenerAddresses, then tcpListeners, tcpConnectors,
///   connectors and listeners that are extra or changed;
/// - (c) CREATE tcpConnectors, tcpListeners, listenerAddresses,
///   connectors, listeners, then UPDATE observer-only tcpListeners;
/// - (d) DELETE owned sslProfiles that are not desired and that nothing
///   left references.
///
/// Three refinements keep every step acceptable to the router:
/// - An sslProfile whose files differ cannot be updated in place (an
///   attribute cannot be unset by UPDATE, and the router binds a profile
///   when an entity is created): it is deleted and re-created between (b)
///   and (c), and every owned entity that names it is replaced with it.
/// - Names are unique across all types: when an sslProfile created in (a)
///   takes the name of an entity that (b) deletes, that DELETE moves to the
///   front of (a); when an entity created in (c) takes the name of an
///   sslProfile that (d) deletes, that DELETE moves to the end of (b).
/// - A listenerAddress whose tcpListener is replaced is replaced too.
///
/// Last, (e): the [`log_updates`] of the `log` rows in `observed`.
pub fn plan(desired: &[Entity], observed: &BTreeMap<String, Vec<Attrs>>) -> Vec<Op> {
    let want = index(desired.iter().map(|e| (e.kind.as_str(), &e.attrs)));
    let rows = observed
        .iter()
        .flat_map(|(kind, rows)| rows.iter().map(move |r| (kind.as_str(), r)));
    let have = index(rows.clone());

    // (a): profiles.
    let mut profile_creates: Vec<&str> = Vec::new();
    let mut profile_updates: Vec<Op> = Vec::new();
    let mut replaced_profiles: Vec<&str> = Vec::new();
    for (name, w) in of_kind(&want, SSL_PROFILE) {
        let Some(h) = have.get(&(SSL_PROFILE, name)) else {
            profile_creates.push(name);
            continue;
        };
        match profile_update(w, h) {
            Some(attrs) if attrs.is_empty() => {}
            Some(attrs) => profile_updates.push(Op::Update {
                kind: SSL_PROFILE.into(),
                name: name.into(),
                attrs,
            }),
            None => replaced_profiles.push(name),
        }
    }
    // Entities bound to these must be re-created after them.
    let fresh: BTreeSet<&str> = profile_creates
        .iter()
        .chain(&replaced_profiles)
        .copied()
        .collect();

    // (b) and (c): everything else. tcpListeners are decided before
    // listenerAddresses, which follow their tcpListener.
    let mut doomed: BTreeSet<Key> = BTreeSet::new();
    let mut creates: BTreeSet<Key> = BTreeSet::new();
    let mut observer_updates: Vec<Op> = Vec::new();
    for kind in [
        TCP_LISTENER,
        TCP_CONNECTOR,
        CONNECTOR,
        LISTENER,
        LISTENER_ADDRESS,
    ] {
        for (name, _) in of_kind(&have, kind) {
            if !want.contains_key(&(kind, name)) {
                doomed.insert((kind, name));
            }
        }
        for (name, w) in of_kind(&want, kind) {
            let Some(h) = have.get(&(kind, name)) else {
                creates.insert((kind, name));
                continue;
            };
            let stale = reference(h, "sslProfile").is_some_and(|p| fresh.contains(p))
                || (kind == LISTENER_ADDRESS
                    && reference(h, "listener")
                        .is_some_and(|l| doomed.contains(&(TCP_LISTENER, l))));
            let diff = differing(kind, w, h);
            if !stale && diff.is_empty() {
                continue;
            }
            if !stale && kind == TCP_LISTENER && diff == ["observer"] {
                let value = w.get("observer").cloned().filter(|v| !v.is_null());
                let mut attrs = Attrs::new();
                attrs.insert("observer".into(), value.unwrap_or_else(|| "auto".into()));
                observer_updates.push(Op::Update {
                    kind: kind.into(),
                    name: name.into(),
                    attrs,
                });
                continue;
            }
            doomed.insert((kind, name));
            creates.insert((kind, name));
        }
    }

    // (d): owned profiles nobody desires and nothing left references.
    let mut still_named: BTreeSet<&str> = want
        .iter()
        .filter(|((k, _), _)| *k != SSL_PROFILE)
        .filter_map(|(_, a)| reference(a, "sslProfile"))
        .collect();
    for (kind, row) in rows {
        let (Some(kind), Some(name)) = (static_kind(kind), row.get("name").and_then(Value::as_str))
        else {
            continue;
        };
        if kind != SSL_PROFILE && !doomed.contains(&(kind, name)) {
            still_named.extend(reference(row, "sslProfile"));
        }
    }
    let profile_deletes: Vec<&str> = of_kind(&have, SSL_PROFILE)
        .map(|(n, _)| n)
        .filter(|n| !want.contains_key(&(SSL_PROFILE, *n)) && !still_named.contains(n))
        .collect();

    // Name clashes across types.
    let mut early: Vec<Key> = Vec::new();
    for name in &profile_creates {
        for kind in DELETE_ORDER {
            if doomed.contains(&(kind, *name)) && !early.contains(&(kind, *name)) {
                if kind == TCP_LISTENER {
                    // Its listenerAddresses are doomed with it (above).
                    for (la, row) in of_kind(&have, LISTENER_ADDRESS) {
                        let key = (LISTENER_ADDRESS, la);
                        if reference(row, "listener") == Some(*name) && !early.contains(&key) {
                            early.push(key);
                        }
                    }
                }
                early.push((kind, *name));
            }
        }
    }
    let created_names: BTreeSet<&str> = creates.iter().map(|(_, n)| *n).collect();
    let (late_b, profile_deletes): (Vec<&str>, Vec<&str>) = profile_deletes
        .into_iter()
        .partition(|n| created_names.contains(n));

    let delete = |(kind, name): Key| Op::Delete {
        kind: kind.into(),
        name: name.into(),
    };
    let create = |key: Key| {
        want.get(&key).map(|attrs| {
            Op::Create(Entity {
                kind: key.0.into(),
                attrs: (*attrs).clone(),
            })
        })
    };

    let mut ops: Vec<Op> = Vec::new();
    early.sort_by_key(|(k, n)| (DELETE_ORDER.iter().position(|d| d == k), *n));
    ops.extend(early.iter().map(|k| delete(*k)));
    ops.extend(
        profile_creates
            .iter()
            .filter_map(|n| create((SSL_PROFILE, n))),
    );
    ops.extend(profile_updates);
    for kind in DELETE_ORDER {
        ops.extend(
            doomed
                .iter()
                .filter(|key| key.0 == kind && !early.contains(key))
                .map(|key| delete(*key)),
        );
    }
    ops.extend(late_b.iter().map(|n| delete((SSL_PROFILE, n))));
    for name in &replaced_profiles {
        ops.push(delete((SSL_PROFILE, name)));
        ops.extend(create((SSL_PROFILE, name)));
    }
    for kind in CREATE_ORDER {
        ops.extend(
            creates
                .iter()
                .filter(|key| key.0 == kind)
                .filter_map(|key| create(*key)),
        );
    }
    ops.extend(observer_updates);
    ops.extend(profile_deletes.iter().map(|n| delete((SSL_PROFILE, n))));
    if let Some(rows) = observed.get(LOG) {
        ops.extend(log_updates(desired, rows));
    }
    ops.extend(management_profile_update(desired, observed));
    ops
}

/// The one live change the management sslProfile takes: a higher
/// `ordinal` once its certificates were re-issued, so the router serves
/// the new server certificate and trusts the new client one on the next
/// management connection while the current one carries on (router.md 4).
/// Everything else about it needs a restart (platform.md 4).
fn management_profile_update(
    desired: &[Entity],
    observed: &BTreeMap<String, Vec<Attrs>>,
) -> Option<Op> {
    let named = |a: &&Attrs| a.get("name").and_then(Value::as_str) == Some(MANAGEMENT_PROFILE);
    let want = desired
        .iter()
        .filter(|e| short_kind(&e.kind) == SSL_PROFILE)
        .map(|e| &e.attrs)
        .find(named)?;
    let have = observed.get(SSL_PROFILE)?.iter().find(named)?;
    let ordinal = |a: &Attrs| a.get("ordinal").and_then(Value::as_u64).unwrap_or(0);
    (ordinal(want) > ordinal(have)).then(|| Op::Update {
        kind: SSL_PROFILE.into(),
        name: MANAGEMENT_PROFILE.into(),
        attrs: [("ordinal".to_string(), Value::from(ordinal(want)))]
            .into_iter()
            .collect(),
    })
}

/// The UPDATEs that give each rendered `log` module its `enable` level,
/// for the router's `log` rows (QUERY `module`, `enable`). A log entity
/// exists for every module and can be neither created nor deleted over
/// management: a module the router does not list is left alone, and only
/// `enable` is changed. Each UPDATE is addressed by the entity's identity,
/// `log/<module>` (the name in the [`Op`]), as the router expects.
pub fn log_updates(desired: &[Entity], observed: &[Attrs]) -> Vec<Op> {
    let module = |a: &Attrs| a.get("module").and_then(Value::as_str).map(str::to_owned);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut ops = Vec::new();
    for want in desired.iter().filter(|e| e.kind == LOG) {
        let (Some(m), Some(enable)) = (module(&want.attrs), want.attrs.get("enable")) else {
            continue;
        };
        // A module rendered twice: the router applies the first.
        if !seen.insert(m.clone()) {
            continue;
        }
        let Some(row) = observed
            .iter()
            .find(|r| module(r).as_deref() == Some(m.as_str()))
        else {
            continue;
        };
        if row.get("enable") == Some(enable) {
            continue;
        }
        let mut attrs = Attrs::new();
        attrs.insert("enable".into(), enable.clone());
        ops.push(Op::Update {
            kind: LOG.into(),
            name: format!("{LOG}/{m}"),
            attrs,
        });
    }
    ops
}

/// The UPDATE an sslProfile needs (empty: none), or `None` when it must be
/// replaced because something other than its ordinals differs.
fn profile_update(want: &Attrs, have: &Attrs) -> Option<Attrs> {
    let mut attrs = Attrs::new();
    for attr in differing(SSL_PROFILE, want, have) {
        let w = effective(SSL_PROFILE, &attr, want);
        let h = effective(SSL_PROFILE, &attr, have);
        let (Some(wi), Some(hi)) = (
            w.as_ref().and_then(Norm::as_int),
            h.as_ref().and_then(Norm::as_int),
        ) else {
            return None;
        };
        let changes = match attr.as_str() {
            // Only forward: a lower ordinal would not make the router
            // reload anything and may undercut oldestValidOrdinal.
            "ordinal" => wi > hi,
            "oldestValidOrdinal" => true,
            _ => return None,
        };
        if changes {
            let value = want.get(&attr).cloned().filter(|v| !v.is_null());
            attrs.insert(attr, value.unwrap_or_else(|| Value::from(0)));
        }
    }
    Some(attrs)
}
