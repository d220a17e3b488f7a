//! The resource kinds skupperd reads, as typed values decoded strictly from
//! positioned documents (resources.md).
//!
//! Decoding classifies a document (known kind, kind local sites do not
//! support, unknown), decodes its typed spec with unknown fields refused,
//! and keeps the spec as written, so a resource that never validated can
//! still be shown to the user as they wrote it.

mod spec;

pub use spec::{
    ConnectorSpec, LinkEndpoint, LinkSpec, ListenerSpec, RouterAccessRole, RouterAccessSpec,
    SiteSpec,
};

use crate::input::de::from_node;
use crate::input::{Document, Mark, Marks, Node};
use crate::problem::Problem;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;

pub const API_VERSION: &str = "skupper.io/v2alpha1";

/// Kinds skupperd configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Site,
    Listener,
    Connector,
    Link,
    RouterAccess,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Site,
        Kind::Listener,
        Kind::Connector,
        Kind::Link,
        Kind::RouterAccess,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Site => "Site",
            Kind::Listener => "Listener",
            Kind::Connector => "Connector",
            Kind::Link => "Link",
            Kind::RouterAccess => "RouterAccess",
        }
    }

    /// The lower-case form used at the start of messages.
    pub fn lower(self) -> &'static str {
        match self {
            Kind::Site => "site",
            Kind::Listener => "listener",
            Kind::Connector => "connector",
            Kind::Link => "link",
            Kind::RouterAccess => "routeraccess",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Skupper kinds this version recognises but does not configure yet.
const NOT_YET_SUPPORTED: [&str; 1] = ["MultiKeyListener"];
/// Skupper kinds that only make sense on Kubernetes.
const NOT_ON_LOCAL_SITES: [&str; 6] = [
    "AccessGrant",
    "AccessToken",
    "Certificate",
    "SecuredAccess",
    "AttachedConnector",
    "AttachedConnectorBinding",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Site(SiteSpec),
    Listener(ListenerSpec),
    Connector(ConnectorSpec),
    Link(LinkSpec),
    RouterAccess(RouterAccessSpec),
}

impl Spec {
    /// The spec as JSON, the way a runtime record shows it (an empty map
    /// when it serializes to nothing).
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Spec::Site(s) => serde_json::to_value(s),
            Spec::Listener(s) => serde_json::to_value(s),
            Spec::Connector(s) => serde_json::to_value(s),
            Spec::Link(s) => serde_json::to_value(s),
            Spec::RouterAccess(s) => serde_json::to_value(s),
        };
        match value {
            Ok(serde_json::Value::Null) | Err(_) => serde_json::Value::Object(Default::default()),
            Ok(v) => v,
        }
    }
}

/// `written` unless it is exactly the JSON of `typed`: most specs are
/// written just as their typed form serializes, and ten thousand resources
/// would otherwise keep a second, JSON, copy of each (with one allocation
/// per key and string).
pub fn written_spec(typed: Option<&Spec>, written: serde_json::Value) -> Option<serde_json::Value> {
    match typed {
        Some(t) if t.to_json() == written => None,
        _ => Some(written),
    }
}

/// One resource document from the input, decoded or not.
#[derive(Debug, Clone, PartialEq)]
pub struct InputResource {
    pub kind: Kind,
    pub name: String,
    pub file: String,
    /// Where the document starts.
    pub mark: Mark,
    /// Where each field of the document was written, for the positions
    /// of fields named by validation (the document itself is not kept).
    pub marks: Marks,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The typed spec; `None` when strict decoding failed (the problem is
    /// already reported).
    pub spec: Option<Spec>,
    /// The spec exactly as written, when that is not just the JSON of
    /// `spec` (see [`InputResource::raw_spec`]).
    pub written_spec: Option<serde_json::Value>,
    /// SHA-256 of the canonical input spec: a change of it is a new generation.
    pub input_sha256: String,
}

impl InputResource {
    /// The spec exactly as written.
    pub fn raw_spec(&self) -> std::borrow::Cow<'_, serde_json::Value> {
        match (&self.written_spec, &self.spec) {
            (Some(v), _) => std::borrow::Cow::Borrowed(v),
            (None, Some(s)) => std::borrow::Cow::Owned(s.to_json()),
            (None, None) => std::borrow::Cow::Owned(serde_json::Value::Null),
        }
    }

    /// Where a field was written (`spec.port`), or the nearest parent.
    pub fn mark_of(&self, field: &str) -> Mark {
        self.marks.mark_of(field)
    }

    /// A problem about this resource with its place filled in.
    pub fn problem(&self, mut p: Problem, field: Option<&str>) -> Problem {
        let mark = field.map(|f| self.mark_of(f)).unwrap_or(self.mark);
        p.file = Some(self.file.clone());
        p.line = Some(mark.line);
        p.column = Some(mark.column);
        p.kind = Some(self.kind.as_str().to_string());
        p.name = Some(self.name.clone());
        p.field = field.map(str::to_string);
        p
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // fields exist so that unknown ones are refused
struct Metadata {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    uid: Option<IgnoredAny>,
    resource_version: Option<IgnoredAny>,
    generation: Option<IgnoredAny>,
    creation_timestamp: Option<IgnoredAny>,
    managed_fields: Option<IgnoredAny>,
    owner_references: Option<IgnoredAny>,
    finalizers: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Envelope<S> {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Option<S>,
    status: Option<IgnoredAny>,
}

/// Decodes one document. Problems go to `problems`; a document of a kind
/// skupperd configures and with a usable name yields a resource even when
/// its spec is invalid, so its status can say why.
pub fn decode(doc: &Document, problems: &mut Vec<Problem>) -> Option<InputResource> {
    let at = |mut p: Problem, mark: Mark, field: Option<&str>| {
        p.file = Some(doc.file.clone());
        p.line = Some(mark.line);
        p.column = Some(mark.column);
        p.field = field.map(str::to_string);
        p
    };
    let root = &doc.root;
    if !matches!(root.value, crate::input::Value::Map(_)) {
        problems.push(at(
            Problem::error(
                "a resource document must be a mapping with apiVersion, kind, metadata and spec",
            ),
            doc.mark,
            None,
        ));
        return None;
    }
    let Some(kind_text) = root.get("kind").and_then(Node::as_str) else {
        problems.push(at(
            Problem::error("document has no kind; every resource needs apiVersion and kind"),
            root.mark_of("kind"),
            Some("kind"),
        ));
        return None;
    };
    let api_version = root.get("apiVersion").and_then(Node::as_str).unwrap_or("");
    let name_node = root.get("metadata").and_then(|m| m.get("name"));
    let name = name_node.and_then(Node::as_str).unwrap_or("");
    let kind = match (api_version, Kind::parse(kind_text)) {
        (API_VERSION, Some(k)) => k,
        (API_VERSION, None) if NOT_YET_SUPPORTED.contains(&kind_text) => {
            problems.push(at(
                Problem::warning(format!(
                    "{} \"{name}\": not yet supported by this version of skupperd, ignored",
                    kind_text.to_lowercase()
                )),
                doc.mark,
                None,
            ));
            return None;
        }
        (API_VERSION, None) if NOT_ON_LOCAL_SITES.contains(&kind_text) => {
            problems.push(at(
                Problem::warning(format!(
                    "{} \"{name}\": not supported on local sites, ignored",
                    kind_text.to_lowercase()
                )),
                doc.mark,
                None,
            ));
            return None;
        }
        ("v1", None) if kind_text == "ConfigMap" => {
            problems.push(at(
                Problem::warning(format!(
                    "configmap \"{name}\": ignored (skupperd does not use ConfigMaps)"
                )),
                doc.mark,
                None,
            ));
            return None;
        }
        _ => {
            let shown = if api_version.is_empty() {
                "no apiVersion"
            } else {
                api_version
            };
            problems.push(at(
                Problem::warning(format!("unknown kind \"{kind_text}\" ({shown}), ignored")),
                doc.mark,
                None,
            ));
            return None;
        }
    };
    let lower = kind.lower();
    if name_node.is_none() {
        problems.push(at(
            Problem::error(format!("{lower}: metadata.name is required")),
            root.mark_of("metadata.name"),
            Some("metadata.name"),
        ));
        return None;
    }
    if !crate::names::is_label(name) {
        let shown = name_node
            .map(|n| n.to_json().to_string())
            .unwrap_or_default();
        problems.push(at(
            Problem::error(format!(
                "{lower} {shown}: metadata.name {}",
                crate::names::LABEL_RULE
            )),
            root.mark_of("metadata.name"),
            Some("metadata.name"),
        ));
        return None;
    }

    let raw_spec = root
        .get("spec")
        .map(Node::to_json)
        .unwrap_or(serde_json::Value::Null);
    let input_sha256 = sha256_hex(raw_spec.to_string().as_bytes());
    let mut resource = InputResource {
        kind,
        name: name.to_string(),
        file: doc.file.clone(),
        mark: doc.mark,
        marks: Marks::of(root),
        namespace: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        spec: None,
        written_spec: Some(raw_spec),
        input_sha256,
    };

    let decoded = match kind {
        Kind::Site => decode_as::<SiteSpec>(root).map(|(m, s)| (m, Spec::Site(s))),
        Kind::Listener => decode_as::<ListenerSpec>(root).map(|(m, s)| (m, Spec::Listener(s))),
        Kind::Connector => decode_as::<ConnectorSpec>(root).map(|(m, s)| (m, Spec::Connector(s))),
        Kind::Link => decode_as::<LinkSpec>(root).map(|(m, s)| (m, Spec::Link(s))),
        Kind::RouterAccess => {
            decode_as::<RouterAccessSpec>(root).map(|(m, s)| (m, Spec::RouterAccess(s)))
        }
    };
    match decoded {
        Ok((meta, spec)) => {
            resource.namespace = meta.namespace;
            resource.labels = meta.labels;
            resource.annotations = meta.annotations;
            if let Some(raw) = resource.written_spec.take() {
                resource.written_spec = written_spec(Some(&spec), raw);
            }
            resource.spec = Some(spec);
            if root.get("status").is_some() {
                problems.push(resource.problem(
                    Problem::warning(format!("{lower} \"{name}\": status in input is ignored")),
                    Some("status"),
                ));
            }
        }
        Err(e) => {
            let mut p = resource.problem(Problem::error(e.to_string()), None);
            if let Some(m) = e.mark {
                p.line = Some(m.line);
                p.column = Some(m.column);
            }
            p.field = (!e.path.is_empty()).then(|| e.path.clone());
            problems.push(p);
        }
    }
    Some(resource)
}

/// One input file, parsed and decoded: what the shell caches per file (by
/// inode, size and times), so an unchanged file costs nothing on the next
/// pass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedFile {
    /// Shared, so a reconcile memo can hold a resource and tell by pointer
    /// that the cache has not replaced it.
    pub resources: Vec<std::sync::Arc<InputResource>>,
    /// The v1 Secrets of the file (Links name them), in document order.
    pub secrets: Vec<std::sync::Arc<SecretDoc>>,
    /// Parse and decode problems, in document order.
    pub problems: Vec<Problem>,
    /// The first error that kept part of the file from being read at all
    /// (syntax, size, encoding): resources last accepted from this file
    /// keep serving while it stands.
    pub broken: Option<Problem>,
}

/// Decodes every document of a parsed file.
pub fn decode_file(parsed: crate::input::ParsedFile) -> DecodedFile {
    let broken = parsed.problems.iter().find(|p| p.is_error()).cloned();
    let mut problems = parsed.problems;
    let mut resources = Vec::new();
    let mut secrets = Vec::new();
    for d in &parsed.documents {
        if is_secret(d) {
            secrets.extend(decode_secret(d, &mut problems).map(std::sync::Arc::new));
        } else {
            resources.extend(decode(d, &mut problems).map(std::sync::Arc::new));
        }
    }
    DecodedFile {
        resources,
        secrets,
        problems,
        broken,
    }
}

/// Parses and decodes one file's bytes.
pub fn load_file(file: &str, bytes: &[u8]) -> DecodedFile {
    decode_file(crate::input::parse_file(file, bytes))
}

fn decode_as<S: serde::de::DeserializeOwned + Default>(
    root: &Node,
) -> Result<(Metadata, S), crate::input::de::DeError> {
    let env: Envelope<S> = from_node(root, "")?;
    Ok((env.metadata, env.spec.unwrap_or_default()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    // One allocation, not one per byte: every input file is hashed.
    let mut out = String::with_capacity(2 * digest.as_ref().len());
    for b in digest.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

mod secret;
use secret::decode_secret;
pub use secret::{base64_decode, base64_encode, is_secret, SecretDoc};

#[cfg(test)]
mod tests;
