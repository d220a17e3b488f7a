//! What earlier reconciles left in `runtime/`, read back: the last accepted
//! version of every resource, condition history, and the site's identity.
//! This is how "last accepted version wins" and stable ids survive restarts.

use crate::input::de::from_node;
use crate::input::parse_document;
use crate::input::tree::{Node, Value};
use crate::resources::{
    ConnectorSpec, Kind, LinkSpec, ListenerSpec, RouterAccessSpec, SiteSpec, Spec,
};
use crate::status::{CondStatus, Condition, Phase};
use std::collections::BTreeMap;

pub use crate::model::{
    Identity, PriorRecord, ANN_ACCEPTED, ANN_CERTIFICATE, ANN_SHA, ANN_SOURCE, OWN_ANNOTATIONS,
};

pub const IDENTITY_FILE: &str = "runtime/identity.yaml";
pub const CONFIG_FILE: &str = "runtime/router/skrouterd.json";
pub const STATUS_FILE: &str = "runtime/status.yaml";
pub const RESOURCES_DIR: &str = "runtime/resources/";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prior {
    /// Shared, so carrying an unchanged record into the next pass is free.
    pub records: BTreeMap<(Kind, String), std::sync::Arc<PriorRecord>>,
    pub identity: Option<Identity>,
    /// `reconcile.lastRun` and `reconcile.trigger` of the previous status
    /// file.
    pub last_run: Option<String>,
    pub last_trigger: Option<String>,
    /// The `ordinal` of each sslProfile in the last `skrouterd.json` (0
    /// where it has none): raised by one whenever a profile's files change,
    /// so the router loads the new certificate (router.md 4).
    pub ordinals: BTreeMap<String, u64>,
    /// The platform the last `skrouterd.json` was rendered for (its `site`
    /// entity): what a pass keeps using while `internal/platform.yaml` is
    /// invalid (platform.md 0), so a bad edit there removes nothing.
    pub platform: Option<super::Platform>,
}

/// Reads the prior state from the runtime files (paths relative to the
/// namespace directory). Anything unreadable is treated as absent: the
/// worst case is a new generation number, never a failed reconcile.
pub fn read_prior(files: &BTreeMap<String, Vec<u8>>) -> Prior {
    let no_loader = |_: &str| Ok::<_, std::convert::Infallible>(None);
    match read_prior_with(files, no_loader) {
        Ok(prior) => prior,
        Err(never) => match never {},
    }
}

/// [`read_prior`] for runtime files whose resource records are hollow (an
/// empty value, see [`super::hollow_records`]): the bytes of such a record
/// come from `load` (its path; `None`: it is gone), called on several
/// threads, parsed and dropped one by one. A restart with ten thousand
/// resources thus never holds every record's bytes at once. The first
/// error of `load` is returned.
pub fn read_prior_with<E: Send>(
    files: &BTreeMap<String, Vec<u8>>,
    load: impl Fn(&str) -> Result<Option<Vec<u8>>, E> + Sync,
) -> Result<Prior, E> {
    let mut prior = Prior::default();
    // (path, file name, bytes) of every record.
    let records: Vec<(&str, &str, &[u8])> = files
        .range(RESOURCES_DIR.to_string()..)
        .map_while(|(path, bytes)| {
            let file_name = path.strip_prefix(RESOURCES_DIR)?;
            Some((path.as_str(), file_name, bytes.as_slice()))
        })
        .collect();
    // A restart reads one record per resource: thousands, independent.
    let read = crate::input::par::map(&records, |&(path, file_name, bytes)| {
        if !bytes.is_empty() {
            return Ok(read_record(file_name, bytes));
        }
        Ok(load(path)?.and_then(|b| read_record(file_name, &b)))
    });
    for found in read {
        if let Some((key, record)) = found? {
            prior.records.insert(key, std::sync::Arc::new(record));
        }
    }
    let identity_doc = files.get(IDENTITY_FILE).and_then(|b| parse(b));
    prior.identity = identity_doc
        .as_ref()
        .and_then(|doc| {
            let site_id = doc.get("siteId")?.as_str()?.to_string();
            let port = int(doc.get("managementPort")?)?;
            let link_ports = match doc.get("linkPorts").map(|n| &n.value) {
                Some(Value::Map(entries)) => entries
                    .iter()
                    .filter_map(|(k, v)| {
                        let name = k.as_str()?.to_string();
                        Some((name, u16::try_from(int(v)?).ok()?))
                    })
                    .collect(),
                _ => BTreeMap::new(),
            };
            Some(Identity {
                site_id,
                management_port: u16::try_from(port).ok()?,
                link_ports,
            })
        })
        .or_else(|| files.get(CONFIG_FILE).and_then(|b| identity_from_config(b)));
    let status = files.get(STATUS_FILE).and_then(|b| parse(b));
    let reconcile = |key: &str| {
        Some(
            status
                .as_ref()?
                .get("reconcile")?
                .get(key)?
                .as_str()?
                .to_string(),
        )
    };
    prior.last_run = reconcile("lastRun");
    prior.last_trigger = reconcile("trigger");
    (prior.ordinals, prior.platform) = files
        .get(CONFIG_FILE)
        .map(|b| facts_from_config(b))
        .unwrap_or_default();
    Ok(prior)
}

fn parse(bytes: &[u8]) -> Option<Node> {
    parse_document(std::str::from_utf8(bytes).ok()?, 0).ok()?
}

fn int(node: &Node) -> Option<i64> {
    match node.value {
        Value::Int(i) => Some(i),
        _ => None,
    }
}

/// The site id and management port of a config written earlier, by skupperd
/// or by Skupper's Go controller (whose sites are adopted with their ids).
/// The sslProfiles of a `skrouterd.json` with their ordinals (0 when not
/// set), and the platform of its `site` entity. Only those are
/// materialised; every other entity is skipped unparsed, so a file with
/// ten thousand listeners costs little more than a scan.
fn facts_from_config(bytes: &[u8]) -> (BTreeMap<String, u64>, Option<super::Platform>) {
    use serde::de::{IgnoredAny, SeqAccess, Visitor};

    #[derive(serde::Deserialize)]
    struct Profile {
        name: String,
        #[serde(default)]
        ordinal: u64,
    }

    #[derive(serde::Deserialize)]
    struct Site {
        #[serde(default)]
        platform: Option<String>,
    }

    /// One `[type, attributes]` pair: an sslProfile, the site, or other.
    enum Pair {
        Profile(Profile),
        Site(Site),
        Other,
    }

    impl<'de> serde::Deserialize<'de> for Pair {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pair, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Pair;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a [type, attributes] pair")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pair, A::Error> {
                    let kind: Option<std::borrow::Cow<'de, str>> = seq.next_element()?;
                    let pair = match kind.as_deref() {
                        Some("sslProfile") => seq
                            .next_element::<Profile>()?
                            .map_or(Pair::Other, Pair::Profile),
                        Some("site") => seq.next_element::<Site>()?.map_or(Pair::Other, Pair::Site),
                        _ => {
                            seq.next_element::<IgnoredAny>()?;
                            Pair::Other
                        }
                    };
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(pair)
                }
            }
            d.deserialize_seq(V)
        }
    }

    let mut ordinals = BTreeMap::new();
    let mut platform = None;
    for pair in serde_json::from_slice::<Vec<Pair>>(bytes).unwrap_or_default() {
        match pair {
            Pair::Profile(p) => {
                ordinals.insert(p.name, p.ordinal);
            }
            Pair::Site(s) => platform = s.platform.as_deref().and_then(super::Platform::parse),
            Pair::Other => {}
        }
    }
    (ordinals, platform)
}

fn identity_from_config(bytes: &[u8]) -> Option<Identity> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut site_id = None;
    let mut port = None;
    let mut link_ports = BTreeMap::new();
    let port_of = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.parse::<u16>().ok(),
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    };
    for entity in doc.as_array()? {
        let pair = entity.as_array()?;
        let (kind, attrs) = (pair.first()?.as_str()?, pair.get(1)?);
        match kind {
            "router" => {
                let meta: serde_json::Value =
                    serde_json::from_str(attrs.get("metadata")?.as_str()?).ok()?;
                site_id = meta.get("id")?.as_str().map(str::to_string);
            }
            "listener" if attrs.get("name")?.as_str()? == "skupper-local-normal" => {
                port = port_of(attrs.get("port")?);
            }
            // Link-access listeners: their ports are kept too.
            "listener" => {
                let role = attrs.get("role").and_then(|r| r.as_str());
                if matches!(role, Some("inter-router" | "edge")) {
                    if let (Some(name), Some(p)) = (
                        attrs.get("name").and_then(|n| n.as_str()),
                        attrs.get("port").and_then(port_of),
                    ) {
                        link_ports.insert(name.to_string(), p);
                    }
                }
            }
            _ => {}
        }
    }
    Some(Identity {
        site_id: site_id?,
        management_port: port?,
        link_ports,
    })
}

fn read_record(file_name: &str, bytes: &[u8]) -> Option<((Kind, String), PriorRecord)> {
    let (kind_text, name) = file_name.strip_suffix(".yaml")?.split_once('-')?;
    let kind = Kind::parse(kind_text)?;
    let doc = parse(bytes)?;
    let meta = doc.get("metadata")?;
    if meta.get("name")?.as_str()? != name {
        return None;
    }
    let mut annotations: BTreeMap<String, String> = meta
        .get("annotations")
        .and_then(|a| from_node(a, "").ok())
        .unwrap_or_default();
    let labels = meta
        .get("labels")
        .and_then(|a| from_node(a, "").ok())
        .unwrap_or_default();
    let input_sha256 = annotations.remove(ANN_SHA)?;
    let accepted_generation = annotations
        .remove(ANN_ACCEPTED)
        .and_then(|g| g.parse::<u64>().ok());
    let source = annotations.remove(ANN_SOURCE);
    let certificate = annotations.remove(ANN_CERTIFICATE);
    // A map emptied by `remove` keeps its node (half a kilobyte); most
    // records have no other annotations, and ten thousand are kept.
    if annotations.is_empty() {
        annotations = BTreeMap::new();
    }
    let spec_node = doc.get("spec");
    let accepted = match (accepted_generation, spec_node) {
        (Some(_), Some(spec)) => match kind {
            Kind::Site => from_node::<SiteSpec>(spec, "spec").ok().map(Spec::Site),
            Kind::Listener => from_node::<ListenerSpec>(spec, "spec")
                .ok()
                .map(Spec::Listener),
            Kind::Connector => from_node::<ConnectorSpec>(spec, "spec")
                .ok()
                .map(Spec::Connector),
            Kind::Link => from_node::<LinkSpec>(spec, "spec").ok().map(Spec::Link),
            Kind::RouterAccess => from_node::<RouterAccessSpec>(spec, "spec")
                .ok()
                .map(Spec::RouterAccess),
        },
        _ => None,
    };
    let conditions = doc
        .get("status")
        .and_then(|s| s.get("conditions"))
        .map(read_conditions)
        .unwrap_or_default();
    let written_spec = crate::resources::written_spec(
        accepted.as_ref(),
        spec_node
            .map(Node::to_json)
            .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
    );
    let record = PriorRecord {
        generation: meta.get("generation").and_then(int).unwrap_or(0).max(0) as u64,
        input_sha256,
        accepted_generation: accepted.as_ref().and(accepted_generation),
        accepted,
        source,
        labels,
        annotations,
        conditions,
        namespace: meta
            .get("namespace")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_string(),
        uid: meta.get("uid").and_then(Node::as_str).map(str::to_string),
        sites_in_network: doc
            .get("status")
            .and_then(|s| s.get("sitesInNetwork"))
            .and_then(int)
            .and_then(|n| u64::try_from(n).ok()),
        endpoints: doc
            .get("status")
            .and_then(|s| s.get("endpoints"))
            .map(read_endpoints)
            .unwrap_or_default(),
        written_spec,
        certificate,
    };
    Some(((kind, name.to_string()), record))
}

fn read_endpoints(node: &Node) -> Vec<(String, String, u16)> {
    let Value::Seq(items) = &node.value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|e| {
            let port = e.get("port")?.as_str()?.parse::<u16>().ok()?;
            Some((
                e.get("name")?.as_str()?.to_string(),
                e.get("host")?.as_str()?.to_string(),
                port,
            ))
        })
        .collect()
}

fn read_conditions(node: &Node) -> Vec<Condition> {
    let Value::Seq(items) = &node.value else {
        return Vec::new();
    };
    // Sized up front: a collected `filter_map` would keep room for four.
    let mut out = Vec::with_capacity(items.len());
    out.extend(items.iter().filter_map(|c| {
        Some(Condition {
            kind: c.get("type")?.as_str()?.to_string(),
            status: CondStatus::parse(c.get("status")?.as_str()?)?,
            reason: Phase::parse(c.get("reason")?.as_str()?)?,
            message: c.get("message")?.as_str()?.to_string(),
            last_transition_time: c.get("lastTransitionTime")?.as_str()?.to_string(),
            observed_generation: c
                .get("observedGeneration")
                .and_then(int)
                .unwrap_or(0)
                .max(0) as u64,
        })
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as skupperd writes it (block layout: the fast path).
    fn record_text(i: usize) -> String {
        crate::render::yaml::to_yaml(&serde_json::json!({
            "apiVersion": "skupper.io/v2alpha1",
            "kind": "Listener",
            "metadata": {
                "name": format!("l{i}"),
                "namespace": "west",
                "generation": 2,
                "labels": {"app": "x"},
                "annotations": {
                    "team": "a: b",
                    ANN_ACCEPTED: "2",
                    ANN_SHA: format!("{i:064x}"),
                    ANN_SOURCE: format!("input/resources/l{i}.yaml"),
                },
            },
            "spec": {"host": "0.0.0.0", "port": 10_000 + i, "settings": {"observer": "auto"}},
            "status": {
                "status": "Ready",
                "message": "ok",
                "hasMatchingConnector": false,
                "conditions": [{
                    "type": "Ready",
                    "status": "True",
                    "reason": "Ready",
                    "message": "it's \"ready\"",
                    "lastTransitionTime": "2026-11-26T10:00:01Z",
                    "observedGeneration": 2,
                }],
            },
        }))
    }

    #[test]
    fn records_in_our_layout_read_like_any_other_layout_of_them() {
        let fast = record_text(7);
        // The same document in flow style, with a comment: only the
        // general parser reads it.
        let general = format!(
            "# rewritten by hand\n{}",
            fast.replace("  labels:\n    app: x\n", "  labels: {app: x}\n")
        );
        assert_ne!(fast, general);
        assert!(crate::input::simple::parse_simple(&general, 0).is_none());
        assert!(crate::input::simple::parse_simple(&fast, 0).is_some());
        let a = read_record("Listener-l7.yaml", fast.as_bytes()).unwrap();
        let b = read_record("Listener-l7.yaml", general.as_bytes()).unwrap();
        assert_eq!(a, b);
        let record = a.1;
        assert_eq!(record.accepted_generation, Some(2));
        assert_eq!(
            record.annotations.get("team").map(String::as_str),
            Some("a: b")
        );
        assert_eq!(record.conditions[0].message, "it's \"ready\"");
        match record.accepted {
            Some(Spec::Listener(spec)) => assert_eq!(spec.port, Some(10_007)),
            other => panic!("{other:?}"),
        }
    }

    /// The runtime files of `n` listener records.
    fn records(n: usize) -> BTreeMap<String, Vec<u8>> {
        (0..n)
            .map(|i| {
                (
                    format!("{RESOURCES_DIR}Listener-l{i}.yaml"),
                    record_text(i).into_bytes(),
                )
            })
            .collect()
    }

    #[test]
    fn thousands_of_records_are_all_read_under_their_names() {
        let files: BTreeMap<String, Vec<u8>> = records(1_500)
            .into_iter()
            .chain([(
                STATUS_FILE.to_string(),
                b"reconcile:\n  lastRun: \"x\"\n".to_vec(),
            )])
            .collect();
        let prior = read_prior(&files);
        assert_eq!(prior.records.len(), 1_500);
        for i in [0, 511, 512, 1_499] {
            let record = &prior.records[&(Kind::Listener, format!("l{i}"))];
            assert_eq!(record.input_sha256, format!("{i:064x}"));
        }
        assert_eq!(prior.last_run.as_deref(), Some("x"));
    }

    #[test]
    fn hollow_records_are_loaded_one_by_one_and_read_as_if_they_were_there() {
        let full = records(600);
        let mut hollow = full.clone();
        super::super::hollow_records(&mut hollow);
        let loaded = std::sync::atomic::AtomicUsize::new(0);
        let prior = read_prior_with(&hollow, |path| {
            loaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, String>(full.get(path).cloned())
        })
        .unwrap();
        assert_eq!(prior, read_prior(&full));
        assert_eq!(prior.records.len(), 600);
        assert_eq!(loaded.into_inner(), 600);

        // A record that cannot be loaded fails the read (it is not taken
        // for absent).
        let failed = read_prior_with(&hollow, |path| {
            if path.ends_with("l321.yaml") {
                Err(format!("{path}: permission denied"))
            } else {
                Ok(full.get(path).cloned())
            }
        });
        assert_eq!(
            failed,
            Err("runtime/resources/Listener-l321.yaml: permission denied".to_string())
        );
    }

    #[test]
    fn the_accepted_spec_is_kept_once_when_the_record_shows_just_that() {
        let (_, record) = read_record("Listener-l7.yaml", record_text(7).as_bytes()).unwrap();
        assert_eq!(record.written_spec, None);
        assert_eq!(
            *record.spec(),
            serde_json::json!({"host": "0.0.0.0", "port": 10_007, "settings": {"observer": "auto"}})
        );
        // An empty `settings` is not in the typed form: the file's spec is
        // kept as written.
        let text = record_text(7)
            .replace("    observer: auto\n", "")
            .replace("settings:\n", "settings: {}\n");
        let (_, record) = read_record("Listener-l7.yaml", text.as_bytes()).unwrap();
        assert!(record.accepted.is_some());
        let written = serde_json::json!({"host": "0.0.0.0", "port": 10_007, "settings": {}});
        assert_eq!(record.written_spec.as_ref(), Some(&written));
        assert_eq!(*record.spec(), written);
    }

    #[test]
    fn identity_is_adopted_from_a_go_controller_config() {
        let config = br#"[["router", {"id": "west-123-456", "mode": "interior", "metadata": "{\"id\":\"0b3c\",\"version\":\"2.0\"}"}],
            ["listener", {"name": "skupper-local-normal", "port": 5672, "role": "normal"}]]"#;
        let files = BTreeMap::from([(CONFIG_FILE.to_string(), config.to_vec())]);
        let prior = read_prior(&files);
        assert_eq!(
            prior.identity,
            Some(Identity {
                site_id: "0b3c".into(),
                management_port: 5672,
                link_ports: BTreeMap::new(),
            })
        );
    }

    #[test]
    fn records_that_do_not_match_their_file_name_are_ignored() {
        let text = b"apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: other\n  annotations:\n    skupperd.io/input-sha256: ab\nspec: {}\n";
        let files = BTreeMap::from([(
            "runtime/resources/Listener-backend.yaml".to_string(),
            text.to_vec(),
        )]);
        assert!(read_prior(&files).records.is_empty());
    }
}
