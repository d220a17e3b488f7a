//! Skupper's v2alpha1 CRDs, applied to resource documents.
//!
//! skupperd writes `runtime/resources/<Kind>-<name>.yaml` (spec and status)
//! for Skupper's tools to read, and accepts Skupper resources as input.
//! [`Crds`] checks a document against the `openAPIV3Schema` of the CRD for
//! its `kind`, read from the reference directory at run time.
//!
//! It is stricter than Kubernetes on purpose: every object is CLOSED, so a
//! field the schema does not list is an error unless `additionalProperties`
//! allows it (Kubernetes would silently prune it; for skupperd an unlisted
//! field is a bug). At the top level `apiVersion` (which must be
//! `skupper.io/v2alpha1`), `kind` and `metadata` are allowed although most
//! schemas do not list them; `metadata` may hold `name` (required),
//! `namespace`, `labels`, `annotations`, `generation` and `uid`.
//!
//! The supported schema subset is what the CRDs use: `type`, `properties`,
//! `required`, `enum`, `items`, `additionalProperties`, `format` (`int32`,
//! `int64`, `date-time`), `minimum`/`maximum`, length, item and property
//! counts, `pattern`, `oneOf`/`anyOf`/`allOf`, `nullable`, set-typed lists,
//! and `x-kubernetes-validations` rules of the form "exactly one of these
//! fields" (transition rules, which compare with the previous object, are
//! skipped). Any other keyword fails [`Crds::load`], so a CRD change is
//! noticed rather than half-checked.
//!
//! Why this is not the `jsonschema` crate (measured): ARCHITECTURE.md, the
//! paragraph after the test-only crates.

mod pattern;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::LoadError;
use pattern::Pattern;

/// The directory of CRD files inside the reference directory.
pub const CRD_DIR: &str = "crds";
/// The only apiVersion skupperd reads and writes for Skupper kinds.
pub const API_VERSION: &str = "skupper.io/v2alpha1";
const GROUP: &str = "skupper.io";
const VERSION: &str = "v2alpha1";
/// The kinds whose CRDs must be present.
pub const KINDS: [&str; 6] = [
    "Site",
    "Listener",
    "Connector",
    "Link",
    "RouterAccess",
    "MultiKeyListener",
];

/// The Skupper CRDs, by kind.
#[derive(Debug, Clone)]
pub struct Crds {
    by_kind: BTreeMap<String, Node>,
}

impl Crds {
    /// Load every `crds/*.yaml` of the reference directory; each of
    /// [`KINDS`] must have a CRD with a v2alpha1 schema.
    pub fn load(reference_dir: &Path) -> Result<Crds, LoadError> {
        let dir = reference_dir.join(CRD_DIR);
        let read_error = |path: &Path, source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut files = std::fs::read_dir(&dir)
            .map_err(|e| read_error(&dir, e))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| read_error(&dir, e))?;
        files.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
        files.sort();

        let mut by_kind = BTreeMap::new();
        for path in files {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
            let crd: Value = yaml_serde::from_str(&text).map_err(|source| LoadError::Yaml {
                origin: origin.clone(),
                source,
            })?;
            let unsupported = |message: String| LoadError::Unsupported {
                origin: origin.clone(),
                message,
            };
            let kind = crd
                .pointer("/spec/names/kind")
                .and_then(Value::as_str)
                .ok_or_else(|| unsupported("no spec.names.kind".into()))?;
            if crd.pointer("/spec/group").and_then(Value::as_str) != Some(GROUP) {
                return Err(unsupported(format!("spec.group is not {GROUP}")));
            }
            let schema = crd
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .and_then(|vs| {
                    vs.iter()
                        .find(|v| v.get("name").and_then(Value::as_str) == Some(VERSION))
                })
                .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
                .ok_or_else(|| unsupported(format!("no {VERSION} openAPIV3Schema")))?;
            let node = Node::compile(schema, "openAPIV3Schema").map_err(unsupported)?;
            if by_kind.insert(kind.to_owned(), node).is_some() {
                return Err(unsupported(format!("a second CRD for kind {kind}")));
            }
        }
        if let Some(missing) = KINDS.iter().find(|k| !by_kind.contains_key(**k)) {
            return Err(LoadError::Unsupported {
                origin: dir.display().to_string(),
                message: format!("no CRD for kind {missing}"),
            });
        }
        Ok(Crds { by_kind })
    }

    /// The kinds loaded.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.by_kind.keys().map(String::as_str)
    }

    /// Every problem of one resource document, each as
    /// `<json path>: <what>` (e.g. `spec.port: expected an integer, found a
    /// string "8080"`). Empty means the document fits its CRD.
    pub fn validate(&self, doc: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let Some(fields) = doc.as_object() else {
            out.push(format!(
                "(document): expected an object, found {}",
                describe(doc)
            ));
            return out;
        };
        match fields.get("apiVersion") {
            None => out.push("apiVersion: required field is missing".into()),
            Some(Value::String(v)) if v == API_VERSION => {}
            Some(other) => out.push(format!(
                "apiVersion: must be \"{API_VERSION}\", found {}",
                describe(other)
            )),
        }
        let schema = match fields.get("kind") {
            None => {
                out.push("kind: required field is missing".into());
                None
            }
            Some(Value::String(kind)) => {
                let found = self.by_kind.get(kind);
                if found.is_none() {
                    let known: Vec<&str> = self.kinds().collect();
                    out.push(format!(
                        "kind: {} is not a Skupper {VERSION} kind (one of {})",
                        quoted(kind),
                        known.join(", ")
                    ));
                }
                found
            }
            Some(other) => {
                out.push(format!(
                    "kind: expected a string, found {}",
                    describe(other)
                ));
                None
            }
        };
        match fields.get("metadata") {
            None => out.push("metadata: required field is missing".into()),
            Some(metadata) => check_metadata(metadata, &mut out),
        }
        if let Some(schema) = schema {
            check_fields(
                schema,
                fields,
                "",
                &["apiVersion", "kind", "metadata"],
                &mut out,
            );
            check_alternatives(schema, doc, "", &mut out);
        }
        out
    }

    /// [`Crds::validate`] for YAML text. Every document of a multi-document
    /// stream is checked, its problems prefixed with `document <n>: `.
    pub fn validate_yaml(&self, text: &str) -> Vec<String> {
        let mut docs: Vec<Result<Value, yaml_serde::Error>> = Vec::new();
        for doc in yaml_serde::Deserializer::from_str(text) {
            let parsed = Value::deserialize(doc);
            let failed = parsed.is_err();
            docs.push(parsed);
            // After a syntax error the stream does not move on.
            if failed {
                break;
            }
        }
        if docs.is_empty() {
            return vec!["(document): the YAML text holds no document".into()];
        }
        let several = docs.len() > 1;
        let mut out = Vec::new();
        for (i, doc) in docs.into_iter().enumerate() {
            let prefix = if several {
                format!("document {}: ", i + 1)
            } else {
                String::new()
            };
            match doc {
                Err(e) => out.push(format!("{prefix}(document): not valid YAML: {e}")),
                Ok(doc) => out.extend(
                    self.validate(&doc)
                        .into_iter()
                        .map(|p| format!("{prefix}{p}")),
                ),
            }
        }
        out
    }
}

/// The metadata fields skupperd reads and writes.
fn check_metadata(metadata: &Value, out: &mut Vec<String>) {
    let Some(fields) = metadata.as_object() else {
        out.push(format!(
            "metadata: expected an object, found {}",
            describe(metadata)
        ));
        return;
    };
    match fields.get("name") {
        None => out.push("metadata.name: required field is missing".into()),
        Some(Value::String(name)) if name.is_empty() => {
            out.push("metadata.name: must not be empty".into())
        }
        Some(Value::String(_)) => {}
        Some(other) => out.push(format!(
            "metadata.name: expected a string, found {}",
            describe(other)
        )),
    }
    for (key, value) in fields {
        let path = child(&child("", "metadata"), key);
        match key.as_str() {
            "name" => {}
            "namespace" | "uid" => {
                if !value.is_string() {
                    out.push(format!("{path}: expected a string, found {}", describe(value)));
                }
            }
            "generation" => {
                if !is_integer(value) {
                    out.push(format!("{path}: expected an integer, found {}", describe(value)));
                }
            }
            "labels" | "annotations" => match value.as_object() {
                None => out.push(format!("{path}: expected an object, found {}", describe(value))),
                Some(map) => {
                    for (k, v) in map {
                        if !v.is_string() {
                            out.push(format!(
                                "{}: expected a string, found {}",
                                child(&path, k),
                                describe(v)
                            ));
                        }
                    }
                }
            },
            _ => out.push(format!(
                "{path}: unknown field (metadata allows name, namespace, labels, annotations, generation and uid)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl Type {
    fn parse(name: &str) -> Option<Type> {
        Some(match name {
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            _ => return None,
        })
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            Type::Object => v.is_object(),
            Type::Array => v.is_array(),
            Type::String => v.is_string(),
            Type::Integer => is_integer(v),
            Type::Number => v.is_number(),
            Type::Boolean => v.is_boolean(),
        }
    }

    fn article(self) -> &'static str {
        match self {
            Type::Object => "an object",
            Type::Array => "an array",
            Type::String => "a string",
            Type::Integer => "an integer",
            Type::Number => "a number",
            Type::Boolean => "a boolean",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Int32,
    Int64,
    DateTime,
}

#[derive(Debug, Clone)]
enum Additional {
    /// Absent or `false`: only the listed properties.
    Closed,
    /// `true` or `x-kubernetes-preserve-unknown-fields`.
    Open,
    Schema(Box<Node>),
}

/// One compiled schema node.
#[derive(Debug, Clone)]
struct Node {
    ty: Option<Type>,
    nullable: bool,
    format: Option<Format>,
    enumeration: Option<Vec<Value>>,
    properties: BTreeMap<String, Node>,
    required: Vec<String>,
    additional: Additional,
    items: Option<Box<Node>>,
    minimum: Option<(f64, bool)>,
    maximum: Option<(f64, bool)>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    unique_items: bool,
    pattern: Option<Pattern>,
    one_of: Vec<Node>,
    any_of: Vec<Node>,
    all_of: Vec<Node>,
    /// `x-kubernetes-validations` "exactly one of" rules: fields, message.
    exactly_one: Vec<(Vec<String>, String)>,
}

impl Node {
    fn compile(v: &Value, at: &str) -> Result<Node, String> {
        let fields = v
            .as_object()
            .ok_or_else(|| format!("{at}: a schema must be an object"))?;
        let mut node = Node {
            ty: None,
            nullable: false,
            format: None,
            enumeration: None,
            properties: BTreeMap::new(),
            required: Vec::new(),
            additional: Additional::Closed,
            items: None,
            minimum: None,
            maximum: None,
            min_length: None,
            max_length: None,
            min_items: None,
            max_items: None,
            min_properties: None,
            max_properties: None,
            unique_items: false,
            pattern: None,
            one_of: Vec::new(),
            any_of: Vec::new(),
            all_of: Vec::new(),
            exactly_one: Vec::new(),
        };
        let bad = |key: &str, what: &str| format!("{at}.{key}: {what}");
        let count =
            |key: &str, value: &Value| value.as_u64().ok_or_else(|| bad(key, "expected a count"));
        let bool_of = |key: &str, value: &Value| {
            value
                .as_bool()
                .ok_or_else(|| bad(key, "expected a boolean"))
        };
        let number =
            |key: &str, value: &Value| value.as_f64().ok_or_else(|| bad(key, "expected a number"));
        let mut exclusive_min = false;
        let mut exclusive_max = false;
        for (key, value) in fields {
            let here = format!("{at}.{key}");
            match key.as_str() {
                // Documentation and hints that do not change what is valid.
                // (`default` is applied by the API server, not checked.)
                "description" | "title" | "example" | "default" | "x-kubernetes-map-type" => {}
                "type" => {
                    let name = value
                        .as_str()
                        .ok_or_else(|| bad(key, "expected a string"))?;
                    node.ty = Some(
                        Type::parse(name)
                            .ok_or_else(|| bad(key, &format!("unsupported type {name}")))?,
                    );
                }
                "nullable" => node.nullable = bool_of(key, value)?,
                "format" => {
                    node.format = Some(match value.as_str() {
                        Some("int32") => Format::Int32,
                        Some("int64") => Format::Int64,
                        Some("date-time") => Format::DateTime,
                        _ => return Err(bad(key, &format!("unsupported format {value}"))),
                    })
                }
                "enum" => {
                    node.enumeration = Some(
                        value
                            .as_array()
                            .cloned()
                            .ok_or_else(|| bad(key, "expected a list"))?,
                    )
                }
                "properties" => {
                    let props = value
                        .as_object()
                        .ok_or_else(|| bad(key, "expected an object"))?;
                    for (name, schema) in props {
                        node.properties.insert(
                            name.clone(),
                            Node::compile(schema, &format!("{here}.{name}"))?,
                        );
                    }
                }
                "required" => {
                    node.required = value
                        .as_array()
                        .and_then(|names| {
                            names
                                .iter()
                                .map(|n| n.as_str().map(str::to_owned))
                                .collect()
                        })
                        .ok_or_else(|| bad(key, "expected a list of names"))?
                }
                "additionalProperties" => {
                    node.additional = match value {
                        Value::Bool(true) => Additional::Open,
                        Value::Bool(false) => Additional::Closed,
                        schema => Additional::Schema(Box::new(Node::compile(schema, &here)?)),
                    }
                }
                "x-kubernetes-preserve-unknown-fields" => {
                    if bool_of(key, value)? {
                        node.additional = Additional::Open;
                    }
                }
                "items" => node.items = Some(Box::new(Node::compile(value, &here)?)),
                "minimum" => node.minimum = Some((number(key, value)?, false)),
                "maximum" => node.maximum = Some((number(key, value)?, false)),
                "exclusiveMinimum" => exclusive_min = bool_of(key, value)?,
                "exclusiveMaximum" => exclusive_max = bool_of(key, value)?,
                "minLength" => node.min_length = Some(count(key, value)?),
                "maxLength" => node.max_length = Some(count(key, value)?),
                "minItems" => node.min_items = Some(count(key, value)?),
                "maxItems" => node.max_items = Some(count(key, value)?),
                "minProperties" => node.min_properties = Some(count(key, value)?),
                "maxProperties" => node.max_properties = Some(count(key, value)?),
                "uniqueItems" => node.unique_items = bool_of(key, value)?,
                "x-kubernetes-list-type" => match value.as_str() {
                    Some("atomic") => {}
                    Some("set") => node.unique_items = true,
                    _ => return Err(bad(key, &format!("unsupported list type {value}"))),
                },
                "pattern" => {
                    let source = value
                        .as_str()
                        .ok_or_else(|| bad(key, "expected a string"))?;
                    node.pattern =
                        Some(Pattern::new(source).map_err(|e| bad(key, &e.to_string()))?);
                }
                "oneOf" | "anyOf" | "allOf" => {
                    let list = value
                        .as_array()
                        .ok_or_else(|| bad(key, "expected a list"))?;
                    let nodes = list
                        .iter()
                        .enumerate()
                        .map(|(i, s)| Node::compile(s, &format!("{here}[{i}]")))
                        .collect::<Result<Vec<_>, _>>()?;
                    match key.as_str() {
                        "oneOf" => node.one_of = nodes,
                        "anyOf" => node.any_of = nodes,
                        _ => node.all_of = nodes,
                    }
                }
                "x-kubernetes-validations" => {
                    let rules = value
                        .as_array()
                        .ok_or_else(|| bad(key, "expected a list"))?;
                    for rule in rules {
                        let text = rule
                            .get("rule")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad(key, "rule without text"))?;
                        let message = rule
                            .get("message")
                            .and_then(Value::as_str)
                            .map_or_else(|| format!("failed rule: {text}"), str::to_owned);
                        if text.contains("oldSelf") {
                            // A transition rule: it needs the previous object.
                            continue;
                        }
                        let fields = exactly_one_rule(text)
                            .ok_or_else(|| bad(key, &format!("unsupported rule {text:?}")))?;
                        node.exactly_one.push((fields, message));
                    }
                }
                other => return Err(format!("{here}: unsupported schema keyword {other:?}")),
            }
        }
        if let Some((_, exclusive)) = node.minimum.as_mut() {
            *exclusive = exclusive_min;
        }
        if let Some((_, exclusive)) = node.maximum.as_mut() {
            *exclusive = exclusive_max;
        }
        Ok(node)
    }
}

/// `[has(self.a),has(self.b)].filter(x,x==true).size() == 1` → `[a, b]`.
fn exactly_one_rule(rule: &str) -> Option<Vec<String>> {
    let compact: String = rule.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = compact
        .strip_prefix('[')?
        .strip_suffix("].filter(x,x==true).size()==1")?;
    inner
        .split(',')
        .map(|term| {
            let name = term.strip_prefix("has(self.")?.strip_suffix(')')?;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| name.to_owned())
        })
        .collect()
}

/// Check one value against one node, appending `<path>: <what>` problems.
fn check(node: &Node, v: &Value, path: &str, out: &mut Vec<String>) {
    let at = if path.is_empty() { "(document)" } else { path };
    if v.is_null() {
        if !node.nullable && node.ty.is_some() {
            out.push(format!("{at}: must not be null"));
        }
        return;
    }
    if let Some(ty) = node.ty {
        if !ty.accepts(v) {
            out.push(format!(
                "{at}: expected {}, found {}",
                ty.article(),
                describe(v)
            ));
            return;
        }
    }
    if let Some(allowed) = &node.enumeration {
        if !allowed.contains(v) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            out.push(format!("{at}: {} is not one of [{}]", v, list.join(", ")));
        }
    }
    match v {
        Value::String(s) => check_string(node, s, at, out),
        Value::Number(_) => check_number(node, v, at, out),
        Value::Object(fields) => {
            check_fields(node, fields, path, &[], out);
        }
        Value::Array(items) => {
            if let Some(item) = &node.items {
                for (i, value) in items.iter().enumerate() {
                    check(item, value, &format!("{path}[{i}]"), out);
                }
            }
            let n = items.len() as u64;
            if node.min_items.is_some_and(|m| n < m) || node.max_items.is_some_and(|m| n > m) {
                out.push(format!(
                    "{at}: {n} items, {}",
                    bounds(node.min_items, node.max_items)
                ));
            }
            if node.unique_items {
                for (i, a) in items.iter().enumerate() {
                    if items[..i].contains(a) {
                        out.push(format!(
                            "{at}[{i}]: duplicate of an earlier item ({a}) in a set"
                        ));
                    }
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
    check_alternatives(node, v, path, out);
}

fn check_string(node: &Node, s: &str, at: &str, out: &mut Vec<String>) {
    let len = s.chars().count() as u64;
    if node.min_length.is_some_and(|m| len < m) || node.max_length.is_some_and(|m| len > m) {
        out.push(format!(
            "{at}: {} characters long, {}",
            len,
            bounds(node.min_length, node.max_length)
        ));
    }
    if let Some(p) = &node.pattern {
        if !p.is_match(s) {
            out.push(format!(
                "{at}: {} does not match the pattern {}",
                quoted(s),
                p.source()
            ));
        }
    }
    if node.format == Some(Format::DateTime) && !is_rfc3339(s) {
        out.push(format!("{at}: {} is not an RFC 3339 date-time", quoted(s)));
    }
}

fn check_number(node: &Node, v: &Value, at: &str, out: &mut Vec<String>) {
    let range = match node.format {
        Some(Format::Int32) => Some((i64::from(i32::MIN), i64::from(i32::MAX), "int32")),
        Some(Format::Int64) => Some((i64::MIN, i64::MAX, "int64")),
        _ => None,
    };
    if let Some((lo, hi, name)) = range {
        if !v.as_i64().is_some_and(|i| lo <= i && i <= hi) {
            out.push(format!("{at}: {v} does not fit format {name}"));
        }
    }
    let Some(f) = v.as_f64() else { return };
    if let Some((min, exclusive)) = node.minimum {
        if f < min || (exclusive && f == min) {
            let op = if exclusive { ">" } else { ">=" };
            out.push(format!("{at}: {v} must be {op} {min}"));
        }
    }
    if let Some((max, exclusive)) = node.maximum {
        if f > max || (exclusive && f == max) {
            let op = if exclusive { "<" } else { "<=" };
            out.push(format!("{at}: {v} must be {op} {max}"));
        }
    }
}

/// The object rules: listed properties, closedness, required fields,
/// property counts and "exactly one of" rules. `skip` names fields the
/// caller has checked itself (the top level's apiVersion, kind, metadata).
fn check_fields(
    node: &Node,
    fields: &Map<String, Value>,
    path: &str,
    skip: &[&str],
    out: &mut Vec<String>,
) {
    let at = if path.is_empty() { "(document)" } else { path };
    for (key, value) in fields {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let here = child(path, key);
        match node.properties.get(key) {
            Some(schema) => check(schema, value, &here, out),
            None => match &node.additional {
                Additional::Schema(schema) => check(schema, value, &here, out),
                Additional::Open => {}
                // Closed; a node without a type (a oneOf branch) only adds
                // constraints and does not close the object.
                Additional::Closed if node.ty == Some(Type::Object) => {
                    out.push(format!("{here}: unknown field (not in the schema)"))
                }
                Additional::Closed => {}
            },
        }
    }
    for name in &node.required {
        if !skip.contains(&name.as_str()) && !fields.contains_key(name) {
            out.push(format!("{}: required field is missing", child(path, name)));
        }
    }
    let n = fields.len() as u64;
    if node.min_properties.is_some_and(|m| n < m) || node.max_properties.is_some_and(|m| n > m) {
        out.push(format!(
            "{at}: {n} entries, {}",
            bounds(node.min_properties, node.max_properties)
        ));
    }
    for (names, message) in &node.exactly_one {
        let set = names.iter().filter(|n| fields.contains_key(*n)).count();
        if set != 1 {
            out.push(format!(
                "{at}: {message} ({set} of {} set)",
                names.join(", ")
            ));
        }
    }
}

/// `oneOf`, `anyOf` and `allOf`.
fn check_alternatives(node: &Node, v: &Value, path: &str, out: &mut Vec<String>) {
    let at = if path.is_empty() { "(document)" } else { path };
    let passes = |branch: &Node| {
        let mut scratch = Vec::new();
        check(branch, v, path, &mut scratch);
        scratch.is_empty()
    };
    if !node.one_of.is_empty() {
        let matched = node.one_of.iter().filter(|b| passes(b)).count();
        if matched != 1 {
            out.push(format!(
                "{at}: must match exactly one of: {} (matches {matched})",
                summarise(&node.one_of)
            ));
        }
    }
    if !node.any_of.is_empty() && !node.any_of.iter().any(passes) {
        out.push(format!(
            "{at}: must match at least one of: {}",
            summarise(&node.any_of)
        ));
    }
    for branch in &node.all_of {
        check(branch, v, path, out);
    }
}

fn summarise(branches: &[Node]) -> String {
    let parts: Vec<String> = branches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if !b.required.is_empty() && b.properties.is_empty() && b.ty.is_none() {
                format!("{{has {}}}", b.required.join(" and "))
            } else {
                format!("{{alternative {}}}", i + 1)
            }
        })
        .collect();
    parts.join(", ")
}

fn bounds(min: Option<u64>, max: Option<u64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("allowed {lo} to {hi}"),
        (Some(lo), None) => format!("at least {lo} allowed"),
        (None, Some(hi)) => format!("at most {hi} allowed"),
        (None, None) => String::new(),
    }
}

fn is_integer(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

/// A path segment: `.key`, or `["key"]` for keys that are not plain names.
fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", quoted(key)),
    }
}

fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A short description of a value for messages: `a string "8080"`.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => {
            let shown: String = s.chars().take(60).collect();
            let ellipsis = if shown.len() < s.len() { "..." } else { "" };
            format!("a string {}{ellipsis}", quoted(&shown))
        }
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// RFC 3339 `date-time`: `2026-11-26T10:00:01Z`, optional fraction, `Z` or
/// a numeric offset.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return false;
    };
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return false;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        i += 1 + digits;
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len()
                && sep(i + 3, b":")
                && num(i + 1..i + 3).is_some_and(|h| h <= 23)
                && num(i + 4..i + 6).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        for ok in [
            "2026-11-26T10:00:01Z",
            "2024-02-29T23:59:60.123456789+05:30",
            "2026-01-01t00:00:00z",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2026-11-26 10:00:01Z",
            "2026-11-26T10:00:01",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T10:00:01.Z",
            "2026-11-26T10:00:01+0530",
            "yesterday",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn exactly_one_rules_are_recognised() {
        assert_eq!(
            exactly_one_rule(
                "[has(self.priority),has(self.weighted)].filter(x,x==true).size()\n == 1"
            ),
            Some(vec!["priority".to_owned(), "weighted".to_owned()])
        );
        assert_eq!(exactly_one_rule("self.size() > 1"), None);
    }

    fn problems(schema: Value, doc: Value) -> Vec<String> {
        let node = Node::compile(&schema, "openAPIV3Schema").unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        check(&node, &doc, "", &mut out);
        out
    }

    #[test]
    fn nullable_allows_null_and_only_there() {
        let schema = serde_json::json!({"type": "object", "properties": {
            "a": {"type": "string", "nullable": true},
            "b": {"type": "string"}
        }});
        assert_eq!(
            problems(schema.clone(), serde_json::json!({"a": null})),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(schema, serde_json::json!({"b": null})),
            ["b: must not be null"]
        );
    }

    #[test]
    fn integer_formats_bound_the_value() {
        let schema = serde_json::json!({"type": "object", "properties": {
            "small": {"type": "integer", "format": "int32"},
            "big": {"type": "integer", "format": "int64"}
        }});
        let fits = serde_json::json!({"small": 2147483647, "big": 2147483648_i64});
        assert_eq!(problems(schema.clone(), fits), Vec::<String>::new());
        let over = serde_json::json!({"small": 2147483648_i64, "big": u64::MAX});
        // Sorted: the key order depends on serde_json's preserve_order,
        // which the workspace turns on.
        let mut found = problems(schema, over);
        found.sort();
        assert_eq!(
            found,
            [
                format!("big: {} does not fit format int64", u64::MAX),
                "small: 2147483648 does not fit format int32".to_owned()
            ]
        );
    }

    #[test]
    fn unsupported_keywords_and_patterns_fail_the_load() {
        // Not handled (Kubernetes' int-or-string): refused, not ignored.
        let err = Node::compile(
            &serde_json::json!({"properties": {"port": {"x-kubernetes-int-or-string": true}}}),
            "openAPIV3Schema",
        )
        .map(|_| ())
        .unwrap_err();
        assert!(err.contains("openAPIV3Schema.properties.port"), "{err}");
        assert!(err.contains("x-kubernetes-int-or-string"), "{err}");
        let err = Node::compile(
            &serde_json::json!({"type": "string", "pattern": "^(?=a)"}),
            "openAPIV3Schema",
        )
        .map(|_| ())
        .unwrap_err();
        assert!(err.starts_with("openAPIV3Schema.pattern: "), "{err}");
    }

    #[test]
    fn paths_quote_odd_keys() {
        assert_eq!(child("", "spec"), "spec");
        assert_eq!(child("spec", "port"), "spec.port");
        assert_eq!(
            child("metadata.annotations", "skupperd.io/source"),
            "metadata.annotations[\"skupperd.io/source\"]"
        );
    }
}
