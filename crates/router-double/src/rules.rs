//! What the double asks about the router's schema, behind one trait.
//!
//! The real checks (types, enums, required attributes, coercion, defaults)
//! belong to the `reference-check` crate, which reads
//! `skrouter-schema.json`; the double must not grow a second validator. It
//! only needs the answers, so it asks an [`EntityRules`]. [`default_rules`]
//! is the single place that picks the implementation.
//! The implementation is `reference_check::RouterSchema`, the same checker
//! that validates every `skrouterd.json` skupperd renders.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reference_check::RouterSchema;
use serde_json::{Map, Value};

/// One entity's attributes.
pub type Entity = Map<String, Value>;

/// A refusal in the router's words: the status code and description a
/// management reply (or a start-up failure) carries. The schema checker's
/// own type, so its answers pass through unchanged.
pub use reference_check::Refusal;

/// One entity type as GET-OPERATIONS and GET-TYPES show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// The schema's name (long, or short for the abstract types).
    pub name: String,
    /// Own operations first, then those of each base.
    pub operations: Vec<String>,
    /// The types it extends, nearest first.
    pub bases: Vec<String>,
}

/// The schema questions the double asks. Entity types are short names
/// (`tcpListener`, `router.address`); `address` is the config-file alias of
/// `router.config.address` and is resolved by the caller.
pub trait EntityRules: Send + Sync {
    /// Checks a CREATE body; answers the entity with defaults filled in and
    /// values coerced, or the router's refusal.
    fn check_create(&self, entity_type: &str, attrs: &Entity) -> Result<Entity, Refusal>;
    /// Checks an entity of the config file, where types that management
    /// cannot CREATE (`router`, `log`, ...) are allowed.
    fn check_config_entity(&self, entity_type: &str, attrs: &Entity) -> Result<Entity, Refusal> {
        self.check_create(entity_type, attrs)
    }
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
    /// Every entity type in schema order, abstract ones included.
    fn types(&self) -> Vec<TypeInfo> {
        Vec::new()
    }
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

/// The rules the double uses unless a test passes its own: skupper-router's
/// schema as `reference_check` reads and enforces it.
pub fn default_rules(dir: &Path) -> Result<Arc<dyn EntityRules>, String> {
    RouterSchema::load(dir)
        .map(|s| Arc::new(s) as Arc<dyn EntityRules>)
        .map_err(|e| e.to_string())
}

impl EntityRules for RouterSchema {
    fn check_create(&self, entity_type: &str, attrs: &Entity) -> Result<Entity, Refusal> {
        RouterSchema::check_create(self, entity_type, attrs)
    }

    fn check_config_entity(&self, entity_type: &str, attrs: &Entity) -> Result<Entity, Refusal> {
        RouterSchema::check_config_entity(self, entity_type, attrs)
    }

    fn check_update(
        &self,
        entity_type: &str,
        current: &Entity,
        changes: &Entity,
    ) -> Result<Entity, Refusal> {
        RouterSchema::check_update(self, entity_type, current, changes)
    }

    fn attribute_names(&self, entity_type: &str) -> Option<Vec<String>> {
        RouterSchema::attribute_names(self, entity_type)
    }

    fn check_config(&self, config: &Value) -> Vec<String> {
        RouterSchema::check_config(self, config)
    }

    fn types(&self) -> Vec<TypeInfo> {
        self.entity_types()
            .iter()
            .map(|t| TypeInfo {
                name: t.long_name().to_string(),
                operations: t.operations().to_vec(),
                bases: t.bases().to_vec(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Arc<dyn EntityRules> {
        default_rules(&reference_dir()).expect("reference schema must be readable")
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

    #[test]
    fn enum_values_and_required_attributes_are_enforced() {
        let err = rules()
            .check_create(
                "tcpListener",
                &map(json!({"address": "a", "port": "1", "observer": "http3"})),
            )
            .unwrap_err();
        assert_eq!(err.status_code, 400);
        assert_eq!(
            err.description,
            "io.skupper.router.tcpListener: Invalid value for enum['none', 'auto', 'http1', 'http2']: 'http3'"
        );
    }
}
