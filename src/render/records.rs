//! `runtime/resources/<Kind>-<name>.yaml` (resources.md 10) and
//! `runtime/identity.yaml`.

use super::yaml::{pad, push_string, to_yaml, write_value};
use crate::model::{
    Identity, PriorRecord, ANN_ACCEPTED, ANN_CERTIFICATE, ANN_SHA, ANN_SOURCE, OWN_ANNOTATIONS,
};
use crate::resources::{Kind, API_VERSION};
use serde_json::json;

/// The record of resource `kind`/`name` whose content is `p`, written
/// straight into one buffer: a cold start renders ten thousand of these,
/// and building each as a JSON document first (maps hashed key by key)
/// cost more than writing it. Same bytes as that document through
/// [`to_yaml`] (property-tested against it).
pub fn record(kind: Kind, name: &str, p: &PriorRecord) -> String {
    let mut out = String::with_capacity(1024);
    let o = &mut out;
    line(o, 0, "apiVersion", API_VERSION);
    line(o, 0, "kind", kind.as_str());
    key(o, 0, "metadata");
    o.push('\n');
    line(o, 2, "name", name);
    line(o, 2, "namespace", &p.namespace);
    number(o, 2, "generation", p.generation);
    if let Some(uid) = &p.uid {
        line(o, 2, "uid", uid);
    }
    if !p.labels.is_empty() {
        key(o, 2, "labels");
        o.push('\n');
        for (k, v) in &p.labels {
            line(o, 4, k, v);
        }
    }
    key(o, 2, "annotations");
    o.push('\n');
    for (k, v) in p
        .annotations
        .iter()
        .filter(|(k, _)| !OWN_ANNOTATIONS.contains(&k.as_str()))
    {
        line(o, 4, k, v);
    }
    if let Some(g) = p.accepted_generation {
        line(o, 4, ANN_ACCEPTED, &g.to_string());
    }
    if let Some(c) = &p.certificate {
        line(o, 4, ANN_CERTIFICATE, c);
    }
    line(o, 4, ANN_SHA, &p.input_sha256);
    if let Some(source) = &p.source {
        line(o, 4, ANN_SOURCE, source);
    }
    key(o, 0, "spec");
    write_value(o, &p.spec(), 0, false);

    let ready = p.conditions.iter().find(|c| c.kind == "Ready");
    let matched = p
        .conditions
        .iter()
        .any(|c| c.kind == "Matched" && c.status == crate::status::CondStatus::True);
    key(o, 0, "status");
    o.push('\n');
    line(
        o,
        2,
        "status",
        ready.map(|c| c.reason.as_str()).unwrap_or("Pending"),
    );
    line(
        o,
        2,
        "message",
        ready.map(|c| c.message.as_str()).unwrap_or(""),
    );
    match kind {
        Kind::Listener => boolean(o, 2, "hasMatchingConnector", matched),
        Kind::Connector => boolean(o, 2, "hasMatchingListener", matched),
        Kind::Link | Kind::RouterAccess => {}
        Kind::Site => {
            if let Some(n) = p.sites_in_network {
                number(o, 2, "sitesInNetwork", n);
            }
            if !p.endpoints.is_empty() {
                key(o, 2, "endpoints");
                o.push('\n');
                for (name, host, port) in &p.endpoints {
                    pad(o, 2);
                    o.push('-');
                    line(o, 1, "name", name);
                    line(o, 4, "host", host);
                    line(o, 4, "port", &port.to_string());
                    line(o, 4, "group", "skupper-router");
                }
            }
        }
    }
    key(o, 2, "conditions");
    if p.conditions.is_empty() {
        o.push_str(" []\n");
    } else {
        // A sequence under a key is not indented; each item's first entry
        // goes on its dash line.
        o.push('\n');
        for c in &p.conditions {
            pad(o, 2);
            o.push('-');
            line(o, 1, "type", &c.kind);
            line(o, 4, "status", c.status.as_str());
            line(o, 4, "reason", c.reason.as_str());
            line(o, 4, "message", &c.message);
            line(o, 4, "lastTransitionTime", &c.last_transition_time);
            number(o, 4, "observedGeneration", c.observed_generation);
        }
    }
    out
}

fn key(out: &mut String, indent: usize, k: &str) {
    pad(out, indent);
    push_string(out, k);
    out.push(':');
}

fn line(out: &mut String, indent: usize, k: &str, v: &str) {
    key(out, indent, k);
    out.push(' ');
    push_string(out, v);
    out.push('\n');
}

fn number(out: &mut String, indent: usize, k: &str, n: u64) {
    key(out, indent, k);
    out.push(' ');
    out.push_str(&n.to_string());
    out.push('\n');
}

fn boolean(out: &mut String, indent: usize, k: &str, b: bool) {
    key(out, indent, k);
    out.push_str(if b { " true\n" } else { " false\n" });
}

pub fn identity(id: &Identity) -> String {
    let mut doc = json!({
        "siteId": id.site_id,
        "managementPort": id.management_port,
    });
    // Only once there are any: an identity without link access keeps its
    // bytes.
    if !id.link_ports.is_empty() {
        doc["linkPorts"] = json!(id.link_ports);
    }
    to_yaml(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{ListenerSpec, Spec};
    use crate::status::{CondStatus, Condition, Phase};
    use proptest::prelude::*;
    use serde_json::{Map, Value};
    use std::collections::BTreeMap;

    /// The record as a JSON document through the general emitter: what
    /// `record` writes directly.
    fn record_via_json(kind: Kind, name: &str, p: &PriorRecord) -> String {
        let mut annotations: Map<String, Value> = p
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        if let Some(g) = p.accepted_generation {
            annotations.insert(ANN_ACCEPTED.to_string(), json!(g.to_string()));
        }
        if let Some(c) = &p.certificate {
            annotations.insert(ANN_CERTIFICATE.to_string(), json!(c));
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
            .any(|c| c.kind == "Matched" && c.status == CondStatus::True);
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
            Kind::Link | Kind::RouterAccess => {}
            Kind::Site => {
                if let Some(n) = p.sites_in_network {
                    status.insert("sitesInNetwork".into(), json!(n));
                }
                if !p.endpoints.is_empty() {
                    let endpoints: Vec<Value> = p
                        .endpoints
                        .iter()
                        .map(|(name, host, port)| {
                            json!({"name": name, "host": host, "port": port.to_string(), "group": "skupper-router"})
                        })
                        .collect();
                    status.insert("endpoints".into(), Value::Array(endpoints));
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
        to_yaml(&json!({
            "apiVersion": API_VERSION,
            "kind": kind.as_str(),
            "metadata": metadata,
            "spec": p.spec().into_owned(),
            "status": status,
        }))
    }

    /// Strings that exercise every way the emitter writes one.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9-]{0,8}",
            Just(String::new()),
            Just("yes".to_string()),
            Just("0.0.0.0".to_string()),
            Just("it's \"quoted\"".to_string()),
            Just("line\nbreak".to_string()),
            "[ -~]{0,12}",
        ]
    }

    fn condition() -> impl Strategy<Value = Condition> {
        (
            prop_oneof![Just("Ready"), Just("Matched"), Just("Configured")],
            0..3usize,
            0..3usize,
            text(),
            text(),
            0..5u64,
        )
            .prop_map(|(kind, s, r, message, time, g)| Condition {
                kind: kind.to_string(),
                status: [CondStatus::True, CondStatus::False, CondStatus::Unknown][s],
                reason: [Phase::Ready, Phase::Pending, Phase::Error][r],
                message,
                last_transition_time: time,
                observed_generation: g,
            })
    }

    fn any_record() -> impl Strategy<Value = (Kind, String, PriorRecord)> {
        let spec = prop_oneof![
            (text(), 0..70_000i64).prop_map(|(host, port)| (
                Some(Spec::Listener(ListenerSpec {
                    host: Some(host),
                    port: Some(port),
                    ..ListenerSpec::default()
                })),
                None
            )),
            proptest::collection::btree_map("[a-zA-Z]{1,6}", text(), 0..4).prop_map(|m| (
                None,
                Some(Value::Object(
                    m.into_iter().map(|(k, v)| (k, json!(v))).collect()
                ))
            )),
        ];
        (
            0..3usize,
            "[a-z]{1,8}",
            spec,
            proptest::collection::btree_map("[a-z]{1,5}", text(), 0..3),
            proptest::collection::btree_map("[a-z./]{1,8}", text(), 0..3),
            proptest::collection::vec(condition(), 0..4),
            (
                any::<Option<u8>>(),
                any::<Option<u8>>(),
                any::<bool>(),
                0..9u64,
            ),
            prop::option::of(prop_oneof![
                text(),
                Just(r#"{"profile":"web","subject":"CN=web, O=A: b","serial":"0A"}"#.to_string()),
            ]),
        )
            .prop_map(
                |(
                    k,
                    name,
                    (accepted, written),
                    labels,
                    annotations,
                    conditions,
                    (uid, sites, source, g),
                    certificate,
                )| {
                    let kind = [Kind::Site, Kind::Listener, Kind::Connector][k];
                    let record = PriorRecord {
                        generation: g,
                        input_sha256: format!("{g:064x}"),
                        accepted_generation: accepted.as_ref().map(|_| g),
                        accepted,
                        source: source.then(|| format!("input/resources/{name}.yaml")),
                        labels,
                        annotations,
                        conditions,
                        namespace: "west".into(),
                        uid: uid.map(|u| format!("uid-{u}")),
                        written_spec: written,
                        sites_in_network: sites.map(u64::from),
                        endpoints: if k == 0 && g % 2 == 0 {
                            vec![("west-inter-router".into(), "host1".into(), 55671)]
                        } else {
                            Vec::new()
                        },
                        certificate,
                    };
                    (kind, name, record)
                },
            )
    }

    proptest! {
        #[test]
        fn writing_a_record_directly_gives_the_bytes_of_its_json_document(
            (kind, name, p) in any_record()
        ) {
            prop_assert_eq!(record(kind, &name, &p), record_via_json(kind, &name, &p));
        }
    }

    #[test]
    fn an_example_record_reads_as_expected() {
        let p = PriorRecord {
            generation: 2,
            input_sha256: "ab".into(),
            accepted_generation: Some(2),
            accepted: Some(Spec::Listener(ListenerSpec {
                host: Some("0.0.0.0".into()),
                port: Some(8080),
                ..ListenerSpec::default()
            })),
            source: Some("input/resources/backend.yaml".into()),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            conditions: Vec::new(),
            namespace: "west".into(),
            uid: None,
            written_spec: None,
            sites_in_network: None,
            endpoints: Vec::new(),
            certificate: None,
        };
        assert_eq!(
            record(Kind::Listener, "backend", &p),
            "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: backend\n  namespace: west\n  generation: 2\n  annotations:\n    skupperd.io/accepted-generation: \"2\"\n    skupperd.io/input-sha256: ab\n    skupperd.io/source: input/resources/backend.yaml\nspec:\n  host: \"0.0.0.0\"\n  port: 8080\nstatus:\n  status: Pending\n  message: \"\"\n  hasMatchingConnector: false\n  conditions: []\n"
        );
    }
}
