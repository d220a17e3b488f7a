//! The runtime record of a resource (`runtime/resources/<Kind>-<name>.yaml`)
//! as the pass wants it, and the check that the record of the prior pass is
//! already exactly that.

use super::entry::{Config, Entry};
use super::prior::{Identity, PriorRecord, OWN_ANNOTATIONS};
use crate::resources::{Kind, Spec};
use crate::status::Condition;
use std::collections::BTreeMap;

/// The runtime record of one resource: accepted spec when there is one,
/// else the input spec as written.
pub struct Record {
    pub kind: Kind,
    pub name: String,
    pub prior: PriorRecord,
}

pub fn record_of(
    e: &Entry,
    conditions: Vec<Condition>,
    namespace: &str,
    identity: Option<&Identity>,
    sites_in_network: Option<u64>,
    endpoints: &[(String, String, u16)],
) -> Record {
    // The record shows the accepted spec when there is one, else the input's
    // as written; only the latter is kept as JSON (see `PriorRecord::spec`).
    let (written_spec, accepted, accepted_generation) = match &e.serving {
        Some((config, g)) => {
            let spec = match config {
                Config::Site(c) => Spec::Site(c.spec.clone()),
                Config::Listener(c) => Spec::Listener(c.spec.clone()),
                Config::Connector(c) => Spec::Connector(c.spec.clone()),
                Config::Link(c) => Spec::Link(c.spec.clone()),
                Config::RouterAccess(c) => Spec::RouterAccess(c.spec.clone()),
            };
            (None, Some(spec), Some(*g))
        }
        None => (Some(shown_input_spec(e.input.as_deref())), None, None),
    };
    let (labels, annotations) = match (e.input.as_deref(), e.prior.as_deref()) {
        (Some(i), _) => (i.labels.clone(), user_annotations(&i.annotations)),
        (None, Some(p)) => (p.labels.clone(), p.annotations.clone()),
        (None, None) => Default::default(),
    };
    Record {
        kind: e.kind,
        name: e.name.clone(),
        prior: PriorRecord {
            generation: e.generation,
            input_sha256: e.input_sha256.clone(),
            accepted_generation,
            accepted,
            source: Some(e.file.clone()),
            labels,
            annotations,
            conditions,
            namespace: namespace.to_string(),
            uid: identity
                .filter(|_| e.kind == Kind::Site)
                .map(|i| i.site_id.clone()),
            sites_in_network: sites_in_network.filter(|_| e.kind == Kind::Site),
            endpoints: if e.kind == Kind::Site {
                endpoints.to_vec()
            } else {
                Vec::new()
            },
            written_spec,
            // The pass sets it: it knows which certificate each profile serves.
            certificate: None,
        },
    }
}

/// Whether the record the prior pass wrote for `e` is exactly what this
/// pass would write, checked field by field without building it.
pub fn record_unchanged(
    e: &Entry,
    conditions: &[Condition],
    namespace: &str,
    uid: Option<&str>,
    sites_in_network: Option<u64>,
    endpoints: &[(String, String, u16)],
) -> bool {
    let Some(p) = e.prior.as_deref() else {
        return false;
    };
    let spec_same = match (&e.serving, &p.accepted) {
        (Some((Config::Site(c), g)), Some(Spec::Site(a))) => {
            *a == c.spec && Some(*g) == p.accepted_generation
        }
        (Some((Config::Listener(c), g)), Some(Spec::Listener(a))) => {
            *a == c.spec && Some(*g) == p.accepted_generation
        }
        (Some((Config::Connector(c), g)), Some(Spec::Connector(a))) => {
            *a == c.spec && Some(*g) == p.accepted_generation
        }
        (Some((Config::Link(c), g)), Some(Spec::Link(a))) => {
            *a == c.spec && Some(*g) == p.accepted_generation
        }
        (Some((Config::RouterAccess(c), g)), Some(Spec::RouterAccess(a))) => {
            *a == c.spec && Some(*g) == p.accepted_generation
        }
        (None, None) => {
            p.accepted_generation.is_none()
                && e.input
                    .as_ref()
                    .map(|i| shown_input_spec(Some(i)) == *p.spec())
                    .unwrap_or(false)
        }
        _ => false,
    };
    let meta_same = match e.input.as_deref() {
        Some(i) => {
            i.labels == p.labels
                && i.annotations
                    .iter()
                    .filter(|(k, _)| !OWN_ANNOTATIONS.contains(&k.as_str()))
                    .eq(p.annotations.iter())
        }
        None => true,
    };
    spec_same
        && meta_same
        && p.generation == e.generation
        && p.input_sha256 == e.input_sha256
        && p.source.as_deref() == Some(e.file.as_str())
        && p.namespace == namespace
        && p.uid.as_deref() == uid.filter(|_| e.kind == Kind::Site)
        && p.conditions == conditions
        && p.sites_in_network == sites_in_network.filter(|_| e.kind == Kind::Site)
        && (e.kind != Kind::Site || p.endpoints == endpoints)
        && (e.kind == Kind::Site || p.endpoints.is_empty())
}

/// The input's spec as a record shows it: as written, or an empty map when
/// there is none.
fn shown_input_spec(input: Option<&crate::resources::InputResource>) -> serde_json::Value {
    match input.map(|i| i.raw_spec()) {
        Some(v) if !v.is_null() => v.into_owned(),
        _ => serde_json::Value::Object(Default::default()),
    }
}

fn user_annotations(a: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    a.iter()
        .filter(|(k, _)| !OWN_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
