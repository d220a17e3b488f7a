//! What the double asks about the router's schema, behind one trait.
//!
//! The real checks (types, enums, required attributes, coercion, defaults)
//! belong to the `reference-check` crate, which reads
//! `skrouter-schema.json`; the double must not grow a second validator. It
//! only needs the answers, so it asks an [`EntityRules`]. [`default_rules`]
//! is the single place that picks the implementation.
//!
//! Until `reference_check::RouterSchema` is wired in, [`StandInRules`]
//! answers from the same schema file but checks only what the double's own
//! tests lean on: known types and attributes, updatable attributes,
//! defaults, and the loose coercion the router applies to strings, integers
//! and booleans. It refuses no enum value and requires no attribute.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

/// One entity's attributes.
pub type Entity = Map<String, Value>;

/// A refusal in the router's words: the status code and description a
/// management reply (or a start-up failure) carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status_code: u16,
    pub description: String,
}

impl Refusal {
    pub fn new(status_code: u16, description: impl Into<String>) -> Refusal {
        Refusal {
            status_code,
            description: description.into(),
        }
    }
}

/// The schema questions the double asks. Entity types are short names
/// (`tcpListener`, `router.address`); `address` is the config-file alias of
/// `router.config.address` and is resolved by the caller.
pub trait EntityRules: Send + Sync {
    /// Checks a CREATE body; answers the entity with defaults filled in and
    /// values coerced, or the router's refusal.
    fn check_create(&self, entity_type: &str, attrs: &Entity) -> Result<Entity, Refusal>;
    /// Checks an UPDATE; answers the whole entity after the change.
    fn check_update(
        &self,
        entity_type: &str,
        current: &Entity,
        changes: &Entity,
    ) -> Result<Entity, Refusal>;
    /// Every attribute of the type in schema order, `None` for an unknown
    /// type.
    fn attribute_names(&self, entity_type: &str) -> Option<Vec<String>>;
    /// Whole-file problems of a `skrouterd.json` document, in the words of
    /// the router's start-up failure.
    fn check_config(&self, config: &Value) -> Vec<String>;
}

/// Where the reference data lives: `SKUPPERD_REFERENCE_DIR`, else
/// `shared/reference` beside the repository.
pub fn reference_dir() -> PathBuf {
    match std::env::var_os("SKUPPERD_REFERENCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/reference"
        )),
    }
}

/// The rules the double uses unless a test passes its own.
///
/// LEAD: WIRE `reference_check::RouterSchema` HERE. After the merge, add
/// `reference-check = { path = "../reference-check" }` to this crate's
/// dependencies, implement `EntityRules` for `RouterSchema` (the methods
/// map one to one; convert its refusal into [`Refusal`]), and return
/// `RouterSchema::load(dir)` from this function. Then delete
/// [`StandInRules`].
pub fn default_rules(dir: &Path) -> Result<Arc<dyn EntityRules>, String> {
    Ok(Arc::new(StandInRules::load(dir)?))
}

/// A minimal stand-in for the reference checker; see the module doc.
pub struct StandInRules {
    types: HashMap<String, TypeRules>,
}

struct TypeRules {
    /// Attribute name, schema type, default, updatable; base type first.
    attrs: Vec<(String, Value, Option<Value>, bool)>,
    operations: Vec<String>,
}

const PREFIX: &str = "io.skupper.router.";

impl StandInRules {
    /// Reads `skrouter-schema.json` from `dir`.
    pub fn load(dir: &Path) -> Result<StandInRules, String> {
        let path = dir.join("skrouter-schema.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let schema: Value =
            serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
        let entity_types = schema
            .get("entityTypes")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{}: no entityTypes", path.display()))?;
        let mut types = HashMap::new();
        for name in entity_types.keys() {
            let mut chain = Vec::new();
            let mut next = Some(name.as_str());
            while let Some(t) = next {
                let Some(def) = entity_types.get(t) else {
                    break;
                };
                chain.push(def);
                next = def.get("extends").and_then(Value::as_str);
                if chain.len() > 16 {
                    break;
                }
            }
            let mut attrs = Vec::new();
            let mut operations = Vec::new();
            for def in chain.iter().rev() {
                if let Some(map) = def.get("attributes").and_then(Value::as_object) {
                    for (attr, a) in map {
                        let kind = a.get("type").cloned().unwrap_or(Value::Null);
                        let default = a.get("default").cloned();
                        let update = a.get("update").and_then(Value::as_bool).unwrap_or(false);
                        attrs.push((attr.clone(), kind, default, update));
                    }
                }
                if let Some(ops) = def.get("operations").and_then(Value::as_array) {
                    operations.extend(ops.iter().filter_map(Value::as_str).map(String::from));
                }
            }
            types.insert(name.clone(), TypeRules { attrs, operations });
        }
        Ok(StandInRules { types })
    }

    fn get(&self, entity_type: &str) -> Result<&TypeRules, Refusal> {
        self.types.get(entity_type).ok_or_else(|| {
            Refusal::new(400, format!("No such entity type '{PREFIX}{entity_type}'"))
        })
    }
}

fn coerce(kind: &Value, value: &Value) -> Value {
    match (kind.as_str(), value) {
        (Some("string" | "path"), Value::Number(n)) => Value::String(n.to_string()),
        (Some("integer"), Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| value.clone()),
        (Some("boolean"), Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" => Value::Bool(true),
            "no" | "off" | "false" => Value::Bool(false),
            _ => value.clone(),
        },
        _ => value.clone(),
    }
}

impl EntityRules for StandInRules {
    fn check_create(&self, entity_type: &str, attrs: &Entity) -> Result<Entity, Refusal> {
        let rules = self.get(entity_type)?;
        let mut out = Entity::new();
        for (name, value) in attrs {
            let Some((_, kind, _, _)) = rules.attrs.iter().find(|(a, ..)| a == name) else {
                return Err(Refusal::new(
                    400,
                    format!("Unknown attribute '{name}' for '{PREFIX}{entity_type}'"),
                ));
            };
            out.insert(name.clone(), coerce(kind, value));
        }
        for (name, _, default, _) in &rules.attrs {
            if let (Some(default), false) = (default, out.contains_key(name)) {
                out.insert(name.clone(), default.clone());
            }
        }
        Ok(out)
    }

    fn check_update(
        &self,
        entity_type: &str,
        current: &Entity,
        changes: &Entity,
    ) -> Result<Entity, Refusal> {
        let rules = self.get(entity_type)?;
        if !rules.operations.iter().any(|op| op == "UPDATE") {
            let mut ops = rules.operations.clone();
            ops.sort_by_key(|op| {
                ["CREATE", "UPDATE", "DELETE", "READ"]
                    .iter()
                    .position(|o| o == op)
            });
            let listed: Vec<String> = ops.iter().map(|op| format!("'{op}'")).collect();
            return Err(Refusal::new(
                501,
                format!(
                    "Operation 'UPDATE' not implemented for '{PREFIX}{entity_type}' [{}]",
                    listed.join(", ")
                ),
            ));
        }
        let mut out = current.clone();
        for (name, value) in changes {
            let Some((_, kind, _, updatable)) = rules.attrs.iter().find(|(a, ..)| a == name) else {
                return Err(Refusal::new(
                    400,
                    format!("Unknown attribute '{name}' for '{PREFIX}{entity_type}'"),
                ));
            };
            let value = coerce(kind, value);
            if !updatable && current.get(name) != Some(&value) {
                return Err(Refusal::new(
                    400,
                    format!("Cannot update attribute '{name}' in UPDATE"),
                ));
            }
            out.insert(name.clone(), value);
        }
        Ok(out)
    }

    fn attribute_names(&self, entity_type: &str) -> Option<Vec<String>> {
        self.types
            .get(entity_type)
            .map(|t| t.attrs.iter().map(|(a, ..)| a.clone()).collect())
    }

    fn check_config(&self, config: &Value) -> Vec<String> {
        match config.as_array() {
            Some(_) => Vec::new(),
            None => vec!["the configuration is not a list of [type, attributes] pairs".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> StandInRules {
        StandInRules::load(&reference_dir()).expect("reference schema must be readable")
    }

    fn map(v: Value) -> Entity {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn create_fills_defaults_and_coerces_ports() {
        let e = rules()
            .check_create(
                "tcpListener",
                &map(json!({"name": "l", "address": "a", "port": 8080})),
            )
            .unwrap();
        assert_eq!(e["port"], "8080");
        assert_eq!(e["observer"], "auto");
        assert_eq!(e["authenticatePeer"], false);
    }

    #[test]
    fn unknown_attributes_and_types_are_refused_in_the_routers_words() {
        let r = rules();
        let err = r
            .check_create("tcpListener", &map(json!({"bogus": 1})))
            .unwrap_err();
        assert_eq!(err.status_code, 400);
        assert_eq!(
            err.description,
            "Unknown attribute 'bogus' for 'io.skupper.router.tcpListener'"
        );
        let err = r.check_create("bogus", &Entity::new()).unwrap_err();
        assert_eq!(
            err.description,
            "No such entity type 'io.skupper.router.bogus'"
        );
    }

    #[test]
    fn updates_follow_the_schemas_update_flags() {
        let r = rules();
        let current = r
            .check_create("tcpListener", &map(json!({"address": "a", "port": "1"})))
            .unwrap();
        let err = r
            .check_update("tcpListener", &current, &map(json!({"port": "2"})))
            .unwrap_err();
        assert_eq!(err.description, "Cannot update attribute 'port' in UPDATE");
        let ok = r
            .check_update(
                "tcpListener",
                &current,
                &map(json!({"observer": "http1", "port": "1"})),
            )
            .unwrap();
        assert_eq!(ok["observer"], "http1");
        let err = r
            .check_update("tcpConnector", &Entity::new(), &map(json!({"port": "2"})))
            .unwrap_err();
        assert_eq!(err.status_code, 501);
        assert_eq!(
            err.description,
            "Operation 'UPDATE' not implemented for 'io.skupper.router.tcpConnector' ['CREATE', 'DELETE', 'READ']"
        );
    }
}
