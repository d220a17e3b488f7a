//! `runtime/resources/<Kind>-<name>.yaml` (resources.md 10) and
//! `runtime/identity.yaml`.

use super::yaml::to_yaml;
use crate::plan::prior::{ANN_ACCEPTED, ANN_SHA, ANN_SOURCE};
use crate::plan::{Identity, PriorRecord};
use crate::resources::{Kind, API_VERSION};
use serde_json::{json, Map, Value};

/// The record of resource `kind`/`name` whose content is `p`.
pub fn record(kind: Kind, name: &str, p: &PriorRecord) -> String {
    let mut annotations: Map<String, Value> = p
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    if let Some(g) = p.accepted_generation {
        annotations.insert(ANN_ACCEPTED.to_string(), json!(g.to_string()));
    }
    annotations.insert(ANN_SHA.to_string(), json!(p.input_sha256));
    if let Some(source) = &p.source {
        annotations.insert(ANN_SOURCE.to_string(), json!(source));
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    metadata.insert("namespace".into(), json!(p.namespace));
    metadata.insert("generation".into(), json!(p.generation));
    if let Some(uid) = &p.uid {
        metadata.insert("uid".into(), json!(uid));
    }
    if !p.labels.is_empty() {
        metadata.insert("labels".into(), json!(p.labels));
    }
    metadata.insert("annotations".into(), Value::Object(annotations));

    let ready = p.conditions.iter().find(|c| c.kind == "Ready");
    let matched = p
        .conditions
        .iter()
        .any(|c| c.kind == "Matched" && c.status == crate::status::CondStatus::True);
    let mut status = Map::new();
    status.insert(
        "status".into(),
        json!(ready.map(|c| c.reason.as_str()).unwrap_or("Pending")),
    );
    status.insert(
        "message".into(),
        json!(ready.map(|c| c.message.as_str()).unwrap_or("")),
    );
    match kind {
        Kind::Listener => {
            status.insert("hasMatchingConnector".into(), json!(matched));
        }
        Kind::Connector => {
            status.insert("hasMatchingListener".into(), json!(matched));
        }
        Kind::Site => {
            if let Some(n) = p.sites_in_network {
                status.insert("sitesInNetwork".into(), json!(n));
            }
        }
    }
    let conditions: Vec<Value> = p
        .conditions
        .iter()
        .map(|c| {
            json!({
                "type": c.kind,
                "status": c.status.as_str(),
                "reason": c.reason.as_str(),
                "message": c.message,
                "lastTransitionTime": c.last_transition_time,
                "observedGeneration": c.observed_generation,
            })
        })
        .collect();
    status.insert("conditions".into(), Value::Array(conditions));

    let spec = p.spec().into_owned();
    let doc = json!({
        "apiVersion": API_VERSION,
        "kind": kind.as_str(),
        "metadata": metadata,
        "spec": spec,
        "status": status,
    });
    to_yaml(&doc)
}

pub fn identity(id: &Identity) -> String {
    to_yaml(&json!({
        "siteId": id.site_id,
        "managementPort": id.management_port,
    }))
}
