//! skupper-router's management schema, applied the way the router applies it.
//!
//! The router validates every entity, whether it comes from `skrouterd.json`
//! or from a management CREATE/UPDATE, in its Python agent
//! (`skupper_router_internal/management/{schema,agent,qdrouter,config}.py`):
//! defaults are filled in, values are coerced with Python's `str()`, `int()`
//! and a yes/no/on/off table, enum values are checked, and some entity kinds
//! add their own checks. [`RouterSchema`] re-implements that from the
//! schema file alone, with the router's texts and status codes
//! (router.md sections 1.1, 5 and 6.2), so skupperd's tests can show that
//! the router would accept what skupperd produces.
//!
//! Where this is stricter than the router it says so (a list or map given
//! for a string attribute, hyphenated names in the config file); where a
//! router text could not be observed it says what it was inferred from.

mod python;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::LoadError;
use python::{int_of, py_eq, repr, repr_str_list, str_of, IntError};

/// The schema file inside the reference directory.
pub const SCHEMA_FILE: &str = "skrouter-schema.json";

/// A management request the router refused: the reply's `statusCode` and
/// `statusDescription`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status_code} {description}")]
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

    fn bad_request(description: impl Into<String>) -> Refusal {
        Refusal::new(400, description)
    }

    /// CREATE of an entity whose `sslProfile` names no existing profile
    /// (router.md 5, observed).
    pub fn ssl_profile_not_found(profile: &str) -> Refusal {
        Refusal::new(
            500,
            format!("CError: Not found: sslProfile '{profile}' not found"),
        )
    }

    /// READ, UPDATE or DELETE of a name the router does not have
    /// (router.md 5, observed).
    pub fn no_entity(name: &str) -> Refusal {
        Refusal::new(404, format!("No entity with name={name}"))
    }
}

/// The value type of an attribute, as the schema spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrType {
    String,
    Path,
    EntityId,
    Integer,
    Boolean,
    List,
    /// `map` or `dict`.
    Map,
    /// A map whose keys must be ASCII (AMQP `fields`).
    Properties,
    /// The schema's list form: one of these strings (or their index).
    Enum(Vec<String>),
}

impl AttrType {
    fn parse(rep: &Value) -> Result<AttrType, String> {
        match rep {
            Value::String(s) => match s.as_str() {
                "string" => Ok(AttrType::String),
                "path" => Ok(AttrType::Path),
                "entityId" => Ok(AttrType::EntityId),
                "integer" => Ok(AttrType::Integer),
                "boolean" => Ok(AttrType::Boolean),
                "list" => Ok(AttrType::List),
                "map" | "dict" => Ok(AttrType::Map),
                "properties" => Ok(AttrType::Properties),
                other => Err(format!("No such schema type: {other}")),
            },
            Value::Array(tags) => tags
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("enum tag {t} is not a string"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(AttrType::Enum),
            other => Err(format!("No such schema type: {other}")),
        }
    }

    /// Coerce a request value the way the router's `Type.validate` does.
    /// The error is the router's text without the entity-type prefix.
    fn coerce(&self, v: &Value) -> Result<Value, String> {
        match self {
            AttrType::String | AttrType::Path | AttrType::EntityId => match v {
                Value::Array(_) | Value::Object(_) => Err(format!(
                    "{} given where a string is expected (the router would store its Python repr; refused here on purpose)",
                    repr(v)
                )),
                other => Ok(Value::String(str_of(other))),
            },
            AttrType::Integer => int_of(v)
                .map(Value::from)
                .map_err(|e| e.message().to_owned()),
            AttrType::Boolean => match v {
                Value::String(s) => match s.to_lowercase().as_str() {
                    "yes" | "true" | "on" => Ok(Value::Bool(true)),
                    "no" | "false" | "off" => Ok(Value::Bool(false)),
                    _ => Err(format!("Invalid Boolean value '{}'", repr(v))),
                },
                Value::Bool(b) => Ok(Value::Bool(*b)),
                Value::Number(n) => Ok(Value::Bool(n.as_f64().is_some_and(|f| f != 0.0))),
                Value::Array(a) => Ok(Value::Bool(!a.is_empty())),
                Value::Object(m) => Ok(Value::Bool(!m.is_empty())),
                Value::Null => Ok(Value::Bool(false)),
            },
            AttrType::List => match v {
                Value::Array(_) => Ok(v.clone()),
                // Python's list() of a string is its characters.
                Value::String(s) => Ok(Value::Array(
                    s.chars().map(|c| Value::String(c.to_string())).collect(),
                )),
                Value::Object(m) => Ok(Value::Array(
                    m.keys().map(|k| Value::String(k.clone())).collect(),
                )),
                other => Err(format!(
                    "'{}' object is not iterable",
                    python::type_name(other)
                )),
            },
            AttrType::Map => match v {
                Value::Object(_) => Ok(v.clone()),
                other => Err(format!(
                    "{} given where a map is expected",
                    repr(other)
                )),
            },
            AttrType::Properties => match v {
                Value::Object(m) => {
                    if m.keys().all(|k| k.is_ascii()) {
                        Ok(v.clone())
                    } else {
                        Err("Property keys must be ASCII encoded".into())
                    }
                }
                _ => Err("Properties must be a map".into()),
            },
            AttrType::Enum(tags) => {
                if let Value::String(s) = v {
                    if tags.contains(s) {
                        return Ok(v.clone());
                    }
                }
                let invalid = || {
                    format!(
                        "Invalid value for enum{}: {}",
                        repr_str_list(tags),
                        repr(v)
                    )
                };
                match int_of(v) {
                    // Python indexes from the end for negative numbers.
                    Ok(i) => {
                        let len = tags.len() as i64;
                        let index = if i < 0 { i + len } else { i };
                        usize::try_from(index)
                            .ok()
                            .and_then(|i| tags.get(i))
                            .map(|t| Value::String(t.clone()))
                            .ok_or_else(invalid)
                    }
                    // A TypeError escapes the enum's own message.
                    Err(IntError::Type(m)) => Err(m),
                    Err(_) => Err(invalid()),
                }
            }
        }
    }
}

/// One attribute of an entity type, own or inherited.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    pub attr_type: AttrType,
    pub default: Option<Value>,
    pub required: bool,
    pub unique: bool,
    /// May be set by CREATE.
    pub create: bool,
    /// May be changed by UPDATE.
    pub update: bool,
    pub graph: bool,
    /// Shown as stars in the router's messages.
    pub hidden: bool,
}

/// An entity type with its inherited attributes and operations resolved.
#[derive(Debug, Clone)]
pub struct EntityType {
    long_name: String,
    short_name: String,
    /// Own attributes first, then those of each base, as the router orders
    /// them (QUERY with empty `attributeNames` returns this order).
    attributes: Vec<Attribute>,
    /// Own operations first, then those of each base.
    operations: Vec<String>,
    /// Long names of the base types, nearest first.
    bases: Vec<String>,
    singleton: bool,
    configuration: bool,
}

impl EntityType {
    /// `io.skupper.router.tcpListener`.
    pub fn long_name(&self) -> &str {
        &self.long_name
    }

    /// `tcpListener`; `address` for `router.config.address`.
    pub fn short_name(&self) -> &str {
        &self.short_name
    }

    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn operations(&self) -> &[String] {
        &self.operations
    }

    /// Long names of the types this one extends, nearest first.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    pub fn singleton(&self) -> bool {
        self.singleton
    }

    /// Whether the type derives from `configurationEntity`, i.e. may appear
    /// in the config file.
    pub fn is_configuration(&self) -> bool {
        self.configuration
    }

    fn allowed(&self, op: &str) -> Result<(), Refusal> {
        if self.operations.iter().any(|o| o == op) {
            Ok(())
        } else {
            Err(Refusal::new(
                501,
                format!(
                    "Operation '{op}' not implemented for '{}' {}",
                    self.long_name,
                    repr_str_list(&self.operations)
                ),
            ))
        }
    }

    fn unknown_attribute(&self, name: &str) -> String {
        format!("Unknown attribute '{name}' for '{}'", self.long_name)
    }

    /// The router's `str()` of an entity of this type, as used in its
    /// uniqueness messages: `TcpListenerEntity(address=..., name=...)`.
    fn describe(&self, attrs: &Map<String, Value>) -> String {
        let mut class = String::new();
        let mut chars = self.short_name.chars();
        if let Some(first) = chars.next() {
            class.extend(first.to_uppercase());
            class.extend(chars.filter(|c| *c != '.'));
        }
        let fields: Vec<String> = attrs
            .iter()
            .map(|(k, v)| {
                let hidden = self.attribute(k).is_some_and(|a| a.hidden);
                if hidden {
                    format!("{k}=*******")
                } else {
                    format!("{k}={}", str_of(v))
                }
            })
            .collect();
        format!("{class}Entity({})", fields.join(", "))
    }
}

/// Where an entity comes from; the router checks CREATE requests a little
/// more than config-file entities.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Create,
    ConfigFile,
}

/// skupper-router's management schema.
#[derive(Debug, Clone)]
pub struct RouterSchema {
    prefix: String,
    types: Vec<EntityType>,
    by_long_name: HashMap<String, usize>,
}

impl RouterSchema {
    /// Load `skrouter-schema.json` from the reference directory.
    pub fn load(reference_dir: &Path) -> Result<RouterSchema, LoadError> {
        let path = reference_dir.join(SCHEMA_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Build the schema from the text of a schema file.
    pub fn from_json(text: &str) -> Result<RouterSchema, LoadError> {
        Self::parse(text, "router schema")
    }

    fn parse(text: &str, origin: &str) -> Result<RouterSchema, LoadError> {
        let raw: RawSchema = serde_json::from_str(text).map_err(|source| LoadError::Json {
            origin: origin.to_owned(),
            source,
        })?;
        let unsupported = |message: String| LoadError::Unsupported {
            origin: origin.to_owned(),
            message,
        };
        let prefix = raw.prefix.trim_matches('.').to_owned();
        let long = |name: &str| long_name(&prefix, name);

        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, (name, ty)) in raw.entity_types.0.iter().enumerate() {
            let key = if ty.full_name {
                long(name)
            } else {
                name.clone()
            };
            if index.insert(key, i).is_some() {
                return Err(unsupported(format!(
                    "entity type '{name}' is defined twice"
                )));
            }
        }
        let find = |name: &str| index.get(name).or_else(|| index.get(&long(name))).copied();

        let mut types = Vec::with_capacity(raw.entity_types.0.len());
        for (name, ty) in &raw.entity_types.0 {
            let (long_name, short_name) = if ty.full_name {
                let short = name
                    .strip_prefix(&format!("{prefix}."))
                    .unwrap_or(name)
                    .replacen("router.config.", "", 1);
                (long(name), short)
            } else {
                (name.clone(), name.clone())
            };

            let mut attributes = ty
                .attributes
                .0
                .iter()
                .map(|(n, a)| a.resolve(n))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| unsupported(format!("{name}: {m}")))?;
            let mut operations = ty.operations.clone();
            let mut bases = Vec::new();

            // Walk the `extends` chain; each base contributes its own
            // attributes after ours (replacing a same-named one in place, as
            // Python's OrderedDict.update does) and its operations after ours.
            let mut next = ty.extends.clone();
            while let Some(base_name) = next {
                let b = find(&base_name).ok_or_else(|| {
                    unsupported(format!("{name} extends unknown type '{base_name}'"))
                })?;
                let (base_key, base) = &raw.entity_types.0[b];
                let base_long = if base.full_name {
                    long(base_key)
                } else {
                    base_key.clone()
                };
                if bases.contains(&base_long) || base_long == long_name {
                    return Err(unsupported(format!("{name}: cycle in 'extends'")));
                }
                if let Some(op) = base.operations.iter().find(|o| operations.contains(o)) {
                    return Err(unsupported(format!(
                        "'{long_name}' cannot extend '{base_key}', re-defines operations: {op}"
                    )));
                }
                operations.extend(base.operations.iter().cloned());
                for (attr_name, attr) in &base.attributes.0 {
                    let resolved = attr
                        .resolve(attr_name)
                        .map_err(|m| unsupported(format!("{base_key}: {m}")))?;
                    match attributes.iter_mut().find(|a| &a.name == attr_name) {
                        Some(existing) => *existing = resolved,
                        None => attributes.push(resolved),
                    }
                }
                bases.push(base_long);
                next = base.extends.clone();
            }

            let configuration = bases.contains(&long("configurationEntity"));
            types.push(EntityType {
                long_name,
                short_name,
                attributes,
                operations,
                bases,
                singleton: ty.singleton,
                configuration,
            });
        }
        let by_long_name = types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.long_name.clone(), i))
            .collect();
        Ok(RouterSchema {
            prefix,
            types,
            by_long_name,
        })
    }

    /// The schema's prefix, `io.skupper.router`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every entity type, in schema order.
    pub fn entity_types(&self) -> &[EntityType] {
        &self.types
    }

    fn long_name(&self, name: &str) -> String {
        long_name(&self.prefix, name)
    }

    /// Entity type lookup by short name (`tcpListener`) or full name
    /// (`io.skupper.router.tcpListener`). As in the config file, `address`
    /// (and `autoLink`) mean `router.config.address` (`router.config.autoLink`).
    pub fn entity_type(&self, name: &str) -> Option<&EntityType> {
        let found = self
            .by_long_name
            .get(name)
            .or_else(|| self.by_long_name.get(&self.long_name(name)))
            .or_else(|| {
                if name.starts_with(&format!("{}.", self.prefix)) {
                    None
                } else {
                    self.by_long_name
                        .get(&self.long_name(&format!("router.config.{name}")))
                }
            });
        found.and_then(|&i| self.types.get(i))
    }

    fn request_type(&self, name: &str) -> Result<&EntityType, Refusal> {
        self.entity_type(name).ok_or_else(|| {
            Refusal::bad_request(format!("No such entity type '{}'", self.long_name(name)))
        })
    }

    /// The router's first check of any request on an entity: the type must
    /// exist (400 `No such entity type ...`) and allow the operation (501
    /// `Operation 'DELETE' not implemented for ...`). This is all the schema
    /// says about READ and DELETE, which carry no attributes.
    pub fn check_operation(
        &self,
        entity_type: &str,
        operation: &str,
    ) -> Result<&EntityType, Refusal> {
        let et = self.request_type(entity_type)?;
        et.allowed(&operation.to_uppercase())?;
        Ok(et)
    }

    /// Attribute names of a type in schema order: what QUERY with an empty
    /// `attributeNames` returns.
    pub fn attribute_names(&self, entity_type: &str) -> Option<Vec<String>> {
        self.entity_type(entity_type)
            .map(|t| t.attributes.iter().map(|a| a.name.clone()).collect())
    }

    /// Check a QUERY's `attributeNames` the way the router does: the names
    /// to report (all of them, in schema order, when none are asked for), or
    /// the router's refusal (400 for an unknown type, 404 for unknown
    /// attributes).
    pub fn check_query(
        &self,
        entity_type: &str,
        attribute_names: &[String],
    ) -> Result<Vec<String>, Refusal> {
        let et = self.request_type(entity_type)?;
        if attribute_names.is_empty() {
            return Ok(et.attributes.iter().map(|a| a.name.clone()).collect());
        }
        let unknown: Vec<&String> = attribute_names
            .iter()
            .filter(|n| et.attribute(n).is_none())
            .collect();
        if unknown.is_empty() {
            Ok(attribute_names.to_vec())
        } else {
            Err(Refusal::new(
                404,
                format!(
                    "Unknown attributes {} for type {}.",
                    repr_str_list(&unknown),
                    et.long_name
                ),
            ))
        }
    }

    /// Validate one CREATE the way the router does (router.md 5): the
    /// operation must be allowed for the type, every attribute known and
    /// settable by CREATE, values of the right type (with the router's
    /// coercions), enum values valid, required attributes present, plus the
    /// per-kind checks of the agent and of the tcpListener adaptor.
    ///
    /// `Ok` is the entity as the router then holds it and a QUERY returns
    /// it: schema defaults filled in, values coerced (ports stay strings,
    /// enums strings), `identity` and `type` set. Types whose identity the
    /// router numbers (`listenerAddress`, `site`, `address`, ...) come out
    /// as `<type>/0` here, as the router's number depends on its history.
    /// Checks that need the router's other entities (duplicate names,
    /// missing sslProfile) are left to the caller: see
    /// [`RouterSchema::check_unique`] and
    /// [`RouterSchema::ssl_profile_reference`].
    pub fn check_create(
        &self,
        entity_type: &str,
        attrs: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Refusal> {
        let et = self.request_type(entity_type)?;
        et.allowed("CREATE")?;
        self.validate_new(et, attrs, false)
    }

    /// Like [`RouterSchema::check_create`] for an entity of the config
    /// file, where types the management agent cannot CREATE (`router`,
    /// `log`, `address`, `site`) are allowed too.
    pub fn check_config_entity(
        &self,
        entity_type: &str,
        attrs: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Refusal> {
        let et = self.request_type(entity_type)?;
        self.validate_new(et, attrs, true)
    }

    /// `from_config`: the config loader may set attributes that a
    /// management CREATE may not (`log.module`).
    fn validate_new(
        &self,
        et: &EntityType,
        attrs: &Map<String, Value>,
        from_config: bool,
    ) -> Result<Map<String, Value>, Refusal> {
        // The request's `type` property is the long name; a body that says
        // otherwise conflicts with it.
        if let Some(t) = attrs.get("type") {
            if !t.is_null() && t.as_str() != Some(et.long_name.as_str()) {
                return Err(Refusal::bad_request("Conflicting values for 'type'"));
            }
        }
        let mut entity = attrs.clone();
        entity.insert("type".into(), Value::String(et.long_name.clone()));
        // The agent copies the request's `name` property into the body, None
        // when absent; an entity created without a name keeps none (it does
        // not default to its identity as config-file entities do).
        entity.entry("name").or_insert(Value::Null);
        for key in entity.keys() {
            match et.attribute(key) {
                None => return Err(Refusal::bad_request(et.unknown_attribute(key))),
                Some(a) if !a.create && !from_config => {
                    return Err(Refusal::bad_request(format!(
                        "Cannot set attribute '{key}' in CREATE"
                    )))
                }
                Some(_) => {}
            }
        }
        let mut counters = HashMap::new();
        let errors = self.materialise(et, &mut entity, &mut counters, Origin::Create);
        if let Some(first) = errors.into_iter().next() {
            return Err(Refusal::bad_request(first));
        }
        if let Some(message) = adaptor_problem(et, &entity) {
            // Inferred, not observed: the tcp adaptor reports this through
            // qd_error like the other CError texts of router.md 5.
            return Err(Refusal::new(
                500,
                format!("CError: Configuration: {message}"),
            ));
        }
        Ok(entity)
    }

    /// Validate one UPDATE: the operation must be allowed for the type
    /// (501 otherwise), only attributes marked updatable may change (400
    /// `Cannot update attribute 'port' in UPDATE`; unchanged ones may be
    /// included), and the result must validate. `current` is the entity as
    /// the router holds it (the `Ok` of [`RouterSchema::check_create`] or a
    /// QUERY row); `Ok` is the entity after the update.
    pub fn check_update(
        &self,
        entity_type: &str,
        current: &Map<String, Value>,
        changes: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Refusal> {
        let et = self.request_type(entity_type)?;
        et.allowed("UPDATE")?;
        for (key, value) in changes {
            let Some(attr) = et.attribute(key) else {
                return Err(Refusal::bad_request(et.unknown_attribute(key)));
            };
            let unchanged = current.get(key).is_some_and(|c| same_value(attr, c, value));
            if !attr.update && !unchanged {
                return Err(Refusal::bad_request(format!(
                    "Cannot update attribute '{key}' in UPDATE"
                )));
            }
        }
        let mut entity = current.clone();
        entity
            .entry("type")
            .or_insert_with(|| Value::String(et.long_name.clone()));
        for (key, value) in changes {
            entity.insert(key.clone(), value.clone());
        }
        match self.validate_attributes(et, &mut entity).into_iter().next() {
            Some(first) => Err(Refusal::bad_request(first)),
            None => Ok(entity),
        }
    }

    /// The sslProfile an entity of this type names, for the four types whose
    /// profile the router resolves when the entity is created (a missing one
    /// is [`Refusal::ssl_profile_not_found`]).
    pub fn ssl_profile_reference<'a>(
        &self,
        entity_type: &str,
        attrs: &'a Map<String, Value>,
    ) -> Option<&'a str> {
        let et = self.entity_type(entity_type)?;
        if !matches!(
            et.short_name.as_str(),
            "tcpListener" | "tcpConnector" | "listener" | "connector"
        ) {
            return None;
        }
        attrs.get("sslProfile").and_then(Value::as_str)
    }

    /// The router's uniqueness rule for adding `candidate` (a validated
    /// entity, e.g. the `Ok` of [`RouterSchema::check_create`]) next to
    /// `existing` entities of ANY type: `name` and `identity` must be new.
    /// Identities the router numbers itself (see
    /// [`RouterSchema::check_create`]) are not compared.
    pub fn check_unique<'a>(
        &self,
        candidate: &Map<String, Value>,
        existing: impl IntoIterator<Item = &'a Map<String, Value>>,
    ) -> Result<(), Refusal> {
        let describe = |attrs: &Map<String, Value>| {
            attrs
                .get("type")
                .and_then(Value::as_str)
                .and_then(|t| self.entity_type(t))
                .map_or_else(
                    || repr(&Value::Object(attrs.clone())),
                    |t| t.describe(attrs),
                )
        };
        let numbered = candidate
            .get("type")
            .and_then(Value::as_str)
            .and_then(|t| self.entity_type(t))
            .is_some_and(numbered_identity);
        let keys: &[&str] = if numbered {
            &["name"]
        } else {
            &["name", "identity"]
        };
        for other in existing {
            for &key in keys {
                if let (Some(a), Some(b)) = (candidate.get(key), other.get(key)) {
                    if !a.is_null() && py_eq(a, b) {
                        return Err(Refusal::bad_request(format!(
                            "adding {} duplicates unique attribute '{key}' from existing {}",
                            describe(candidate),
                            describe(other)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Check a whole `skrouterd.json` document (a list of
    /// `[entityType, {attributes}]` pairs) the way the router loads it:
    /// every entity validated (defaults, coercions, enums, required
    /// attributes, unknown attributes), only configuration entity types, at
    /// most one of each singleton, `name` and `identity` unique across ALL
    /// entity types (so also one `log` entity per module, as its identity is
    /// `log/<module>`), every `sslProfile` of a tcpListener, tcpConnector,
    /// listener or connector naming an sslProfile in the file, the
    /// tcpListener address rule, the router id characters, and the
    /// router-mode rules for listener and connector roles.
    ///
    /// Returns every problem found; empty means the router would load the
    /// file. Each problem names the entity (`entity #3 (tcpListener
    /// "listener/web")`) and then carries the router's own text where
    /// router.md 6.2 gives one. The router does not expand `${VAR}`, so such
    /// values are checked as written.
    pub fn check_config(&self, doc: &Value) -> Vec<String> {
        let Some(entries) = doc.as_array() else {
            return vec![format!(
                "the config file must be a JSON list of [entityType, {{attributes}}] pairs, not {}",
                kind_of(doc)
            )];
        };
        let mut problems = Vec::new();

        struct Entry<'s> {
            label: String,
            et: &'s EntityType,
            attrs: Map<String, Value>,
        }
        let mut entries_ok: Vec<Entry> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let pair = entry.as_array().filter(|p| p.len() == 2);
            let (Some(type_name), Some(attrs)) = (
                pair.and_then(|p| p.first()).and_then(Value::as_str),
                pair.and_then(|p| p.get(1)).and_then(Value::as_object),
            ) else {
                problems.push(format!(
                    "entity #{i}: expected [entityType, {{attributes}}], found {}",
                    kind_of(entry)
                ));
                continue;
            };
            let Some(et) = self.config_type(type_name) else {
                problems.push(format!(
                    "entity #{i} ({type_name}): No such entity type '{}'",
                    self.long_name(type_name)
                ));
                continue;
            };
            let label = match attrs.get("name") {
                Some(Value::String(n)) => format!("entity #{i} ({type_name} {})", quoted(n)),
                _ => format!("entity #{i} ({type_name})"),
            };
            if !et.is_configuration() {
                problems.push(format!(
                    "{label}: '{}' is not a configuration entity type; the router cannot create it from its config file",
                    et.long_name
                ));
                continue;
            }
            if attrs.contains_key("type") {
                // The loader builds dict(type=..., **attributes).
                problems.push(format!(
                    "{label}: dict() got multiple values for keyword argument 'type'"
                ));
                continue;
            }
            entries_ok.push(Entry {
                label,
                et,
                attrs: attrs.clone(),
            });
        }
        // The loader adds every singleton the file leaves out, with defaults.
        for et in self
            .types
            .iter()
            .filter(|t| t.singleton && t.is_configuration())
        {
            if !entries_ok.iter().any(|e| e.et.long_name == et.long_name) {
                entries_ok.push(Entry {
                    label: format!("default {} (not in the file)", et.short_name),
                    et,
                    attrs: Map::new(),
                });
            }
        }

        let mut counters = HashMap::new();
        for e in &mut entries_ok {
            e.attrs
                .insert("type".into(), Value::String(e.et.long_name.clone()));
            for message in self.materialise(e.et, &mut e.attrs, &mut counters, Origin::ConfigFile) {
                problems.push(format!("{}: {message}", e.label));
            }
            if let Some(message) = adaptor_problem(e.et, &e.attrs) {
                problems.push(format!("{}: {message}", e.label));
            }
        }

        // Uniqueness and singletons, in file order.
        for (i, e) in entries_ok.iter().enumerate() {
            let earlier = &entries_ok[..i];
            if e.et.singleton {
                if let Some(first) = earlier.iter().find(|o| o.et.long_name == e.et.long_name) {
                    problems.push(format!(
                        "{}: Adding {} singleton {} when {} already exists",
                        e.label,
                        e.et.long_name,
                        e.et.describe(&e.attrs),
                        first.et.describe(&first.attrs)
                    ));
                }
            }
            if let Err(refusal) = self.check_unique(&e.attrs, earlier.iter().map(|o| &o.attrs)) {
                problems.push(format!("{}: {}", e.label, refusal.description));
            }
        }

        let profiles: HashSet<&str> = entries_ok
            .iter()
            .filter(|e| e.et.short_name == "sslProfile")
            .filter_map(|e| e.attrs.get("name").and_then(Value::as_str))
            .collect();
        for e in &entries_ok {
            if let Some(profile) = self.ssl_profile_reference(&e.et.long_name, &e.attrs) {
                if !profiles.contains(profile) {
                    problems.push(format!("{}: sslProfile '{profile}' not found", e.label));
                }
            }
        }

        let router = entries_ok.iter().find(|e| e.et.short_name == "router");
        if let Some(router) = router {
            problems.extend(
                router_id_problems(&router.attrs).map(|m| format!("{}: {m}", router.label)),
            );
            let mode = router
                .attrs
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("");
            for e in entries_ok
                .iter()
                .filter(|e| matches!(e.et.short_name.as_str(), "listener" | "connector"))
            {
                let role = e.attrs.get("role").and_then(Value::as_str).unwrap_or("");
                if let Some(m) = role_problem(mode, e.et, role, &e.attrs) {
                    problems.push(format!("{}: {m}", e.label));
                }
            }
        }
        problems
    }

    /// The config loader's entity type lookup: the short names `address`
    /// and `autoLink` (and `exchange`, `binding`) are `router.config.*`.
    fn config_type(&self, name: &str) -> Option<&EntityType> {
        let name = match name {
            "address" | "autoLink" | "exchange" | "binding" => format!("router.config.{name}"),
            other => other.to_owned(),
        };
        self.by_long_name
            .get(&self.long_name(&name))
            .and_then(|&i| self.types.get(i))
    }

    /// Turn request or config attributes into the entity the router holds:
    /// the agent's per-kind preparation, identity and default name, then
    /// schema validation. Returns every problem (the router stops at the
    /// first); `attrs` is left as complete as validation got it.
    fn materialise(
        &self,
        et: &EntityType,
        attrs: &mut Map<String, Value>,
        counters: &mut HashMap<String, u64>,
        origin: Origin,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        if et.short_name == "log" {
            prepare_log(attrs);
        }
        let identity_given = attrs.get("identity").is_some_and(|v| !v.is_null());
        if identity_given {
            if origin == Origin::ConfigFile {
                errors.push(format!(
                    "'identity' attribute cannot be specified {}",
                    repr(&Value::Object(attrs.clone()))
                ));
            }
        } else {
            match identifier(et, attrs, counters) {
                Ok(id) => {
                    let identity = Value::String(format!("{}/{id}", et.short_name));
                    attrs.entry("name").or_insert_with(|| identity.clone());
                    attrs.insert("identity".into(), identity);
                }
                Err(e) => errors.push(e),
            }
        }
        errors.extend(self.validate_attributes(et, attrs));
        if matches!(et.short_name.as_str(), "listener" | "connector") {
            errors.extend(open_properties_problem(attrs));
        }
        errors
    }

    /// The router's `EntityType.validate`: add missing defaults (or report
    /// a missing required attribute), then coerce every attribute. Messages
    /// carry the router's `<type>: ` prefix.
    fn validate_attributes(&self, et: &EntityType, attrs: &mut Map<String, Value>) -> Vec<String> {
        let mut errors = Vec::new();
        let prefixed = |m: String| format!("{}: {m}", et.long_name);
        for attr in &et.attributes {
            if attrs.get(&attr.name).is_none_or(Value::is_null) {
                match &attr.default {
                    Some(default) => {
                        attrs.insert(attr.name.clone(), default.clone());
                    }
                    None => {
                        attrs.remove(&attr.name);
                        if attr.required {
                            errors.push(prefixed(format!(
                                "Missing required attribute '{}'",
                                attr.name
                            )));
                        }
                    }
                }
            }
        }
        let keys: Vec<String> = attrs.keys().cloned().collect();
        for key in keys {
            let Some(value) = attrs.get(&key) else {
                continue;
            };
            let Some(attr) = et.attribute(&key) else {
                errors.push(prefixed(et.unknown_attribute(&key)));
                continue;
            };
            let value = if key == "type" {
                match value.as_str() {
                    Some(t) => Value::String(self.long_name(t)),
                    None => {
                        errors.push(prefixed(format!("type {} is not a string", repr(value))));
                        continue;
                    }
                }
            } else {
                value.clone()
            };
            match attr.attr_type.coerce(&value) {
                Ok(v) => {
                    attrs.insert(key, v);
                }
                Err(m) => errors.push(prefixed(m)),
            }
        }
        errors
    }
}

fn long_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() || name.starts_with(&format!("{prefix}.")) {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Python `==` with the agent's enum values, which also equal their index.
fn same_value(attr: &Attribute, stored: &Value, given: &Value) -> bool {
    if let (AttrType::Enum(tags), Value::String(s), Value::Number(n)) =
        (&attr.attr_type, stored, given)
    {
        return tags.iter().position(|t| t == s).map(|i| i as u64) == n.as_u64();
    }
    py_eq(stored, given)
}

/// The log entity's own preparation: `trace` was renamed `debug`, and the
/// DEFAULT module has its own defaults.
fn prepare_log(attrs: &mut Map<String, Value>) {
    if let Some(Value::String(enable)) = attrs.get_mut("enable") {
        if enable.contains("trace") {
            *enable = enable.replace("trace", "debug");
        }
    }
    if attrs.get("module").and_then(Value::as_str) == Some("DEFAULT") {
        let defaults = [
            ("enable", Value::from("info+")),
            ("includeTimestamp", Value::Bool(true)),
            ("includeSource", Value::Bool(false)),
            ("outputFile", Value::from("stderr")),
        ];
        for (k, v) in defaults {
            attrs.entry(k).or_insert(v);
        }
    }
}

/// The identifier part of `identity` (`<short type>/<identifier>`), per the
/// agent's entity classes.
fn identifier(
    et: &EntityType,
    attrs: &mut Map<String, Value>,
    counters: &mut HashMap<String, u64>,
) -> Result<String, String> {
    let get = |attrs: &Map<String, Value>, k: &str| attrs.get(k).map_or("None".to_owned(), str_of);
    match et.short_name.as_str() {
        "listener" | "connector" | "tcpListener" | "tcpConnector" | "httpListener"
        | "httpConnector" => {
            for key in ["host", "port", "name"] {
                if !attrs.contains_key(key) {
                    let attr = et.attribute(key);
                    let missing = match attr {
                        Some(a) if a.default.is_some() => a.default.clone().unwrap_or(Value::Null),
                        Some(a) if a.required => {
                            return Err(format!("Missing required attribute '{key}'"))
                        }
                        _ => Value::Null,
                    };
                    attrs.insert(key.into(), missing);
                }
            }
            let name_set = attrs.get("name").is_some_and(truthy);
            Ok(if name_set {
                format!(
                    "{}:{}:{}",
                    get(attrs, "host"),
                    get(attrs, "port"),
                    get(attrs, "name")
                )
            } else {
                format!("{}:{}", get(attrs, "host"), get(attrs, "port"))
            })
        }
        "sslProfile" => Ok(get(attrs, "name")),
        "log" => Ok(get(attrs, "module")),
        "router" | "router.node" => Ok(get(attrs, "id")),
        "vhost" | "vhostStats" => Ok(get(attrs, "hostname")),
        "router.address" => Ok(get(attrs, "key")),
        "allocator" => Ok(get(attrs, "typeName")),
        "policy" => Ok(get(attrs, "module")),
        _ => {
            debug_assert!(numbered_identity(et));
            let counter = counters.entry(et.long_name.clone()).or_insert(0);
            let id = counter.to_string();
            *counter += 1;
            Ok(id)
        }
    }
}

/// Whether the router numbers this type's identities (`address/0`,
/// `address/1`, ...) instead of deriving them from attributes.
fn numbered_identity(et: &EntityType) -> bool {
    !matches!(
        et.short_name.as_str(),
        "listener"
            | "connector"
            | "tcpListener"
            | "tcpConnector"
            | "httpListener"
            | "httpConnector"
            | "sslProfile"
            | "log"
            | "router"
            | "router.node"
            | "vhost"
            | "vhostStats"
            | "router.address"
            | "allocator"
            | "policy"
    )
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// The listener/connector agent check on `openProperties`.
fn open_properties_problem(attrs: &Map<String, Value>) -> Option<String> {
    // The router's list really joins 'scheme' and 'hostname' (a missing
    // comma), so neither is reserved on its own.
    const RESERVED: [&str; 6] = [
        "product",
        "version",
        "failover-server-list",
        "network-host",
        "port",
        "schemehostname",
    ];
    let props = attrs.get("openProperties").and_then(Value::as_object)?;
    if props.is_empty() {
        return None;
    }
    if let Some(key) = props.keys().find(|k| {
        RESERVED.contains(&k.as_str()) || k.starts_with("qd.") || k.starts_with("x-opt-qd.")
    }) {
        return Some(format!(
            "Reserved key '{key}' not allowed in openProperties"
        ));
    }
    match attrs.get("role").and_then(Value::as_str) {
        Some(role @ ("inter-router" | "edge")) => {
            Some(format!("openProperties not allowed for role {role}"))
        }
        _ => None,
    }
}

/// The tcp adaptor's own check of a tcpListener (router.md 6.2).
fn adaptor_problem(et: &EntityType, attrs: &Map<String, Value>) -> Option<String> {
    if et.short_name != "tcpListener" {
        return None;
    }
    let has_address = attrs.get("address").is_some_and(|v| !v.is_null());
    let has_strategy = attrs
        .get("multiAddressStrategy")
        .and_then(Value::as_str)
        .is_some_and(|s| s != "none");
    (has_address == has_strategy).then(|| {
        "Exactly one of the 'address' or 'multiAddressStrategy' field must be set".to_owned()
    })
}

/// The router id checks: `|` is refused by the schema layer, control and
/// white-space characters by the router entity.
fn router_id_problems(attrs: &Map<String, Value>) -> impl Iterator<Item = String> + '_ {
    let id = attrs.get("id").and_then(Value::as_str);
    let pipe = id
        .filter(|id| id.contains('|'))
        .map(|id| format!("Router ID \"{id}\" containes at least one illegal character (\"|\")."));
    let bad_char = id.and_then(|id| {
        id.chars().find(|c| is_other_or_separator(*c)).map(|c| {
            format!("Router id attribute containing character '{c}' in id '{id}' is disallowed.")
        })
    });
    pipe.into_iter().chain(bad_char)
}

/// Unicode general categories C* and Z*, as far as std can tell them apart:
/// controls, white space, the common format characters and private use.
fn is_other_or_separator(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || c.is_whitespace()
        || matches!(u, 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
            | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}

/// The router-mode rules for listener and connector roles (`qdrouter.py`).
fn role_problem(
    mode: &str,
    et: &EntityType,
    role: &str,
    attrs: &Map<String, Value>,
) -> Option<String> {
    if mode == "standalone" && matches!(role, "inter-router" | "edge") {
        return Some(
            "role='standalone' not allowed to connect to or accept connections from other routers."
                .into(),
        );
    }
    if mode != "interior" && role == "inter-router" {
        return Some(format!(
            "role='inter-router' only allowed with router mode='interior' for {}",
            repr(&Value::Object(attrs.clone()))
        ));
    }
    if mode == "edge" && role == "edge" && et.short_name == "listener" {
        return Some(format!(
            "role='edge' only allowed with router mode='interior' for {}",
            repr(&Value::Object(attrs.clone()))
        ));
    }
    None
}

fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The schema file, parsed with the order of its maps kept: attribute order
/// is what QUERY returns.
#[derive(Deserialize)]
struct RawSchema {
    prefix: String,
    #[serde(rename = "entityTypes")]
    entity_types: Ordered<RawEntityType>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntityType {
    #[serde(default)]
    attributes: Ordered<RawAttribute>,
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    singleton: bool,
    #[serde(default = "yes")]
    full_name: bool,
    // description, operationDefs, referential and deprecated do not affect
    // validation.
}

fn yes() -> bool {
    true
}

/// `deny_unknown_fields`: a schema that starts using fixed values (`value`)
/// or renamed attributes (`deprecationName`) must fail to load here rather
/// than be validated wrongly.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAttribute {
    #[serde(rename = "type")]
    attr_type: Value,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    default: Option<Value>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    create: bool,
    #[serde(default)]
    update: bool,
    #[serde(default)]
    graph: bool,
    #[serde(default)]
    hidden: bool,
    #[serde(default)]
    #[allow(dead_code)]
    deprecated: bool,
}

impl RawAttribute {
    fn resolve(&self, name: &str) -> Result<Attribute, String> {
        let attr_type =
            AttrType::parse(&self.attr_type).map_err(|m| format!("attribute '{name}': {m}"))?;
        Ok(Attribute {
            name: name.to_owned(),
            attr_type,
            default: self.default.clone().filter(|d| !d.is_null()),
            required: self.required,
            unique: self.unique,
            create: self.create,
            update: self.update,
            graph: self.graph,
            hidden: self.hidden,
        })
    }
}

/// A JSON object read as an ordered list of entries (serde_json's own map
/// would sort them). An empty list is accepted as an empty map, as the
/// schema writes `"attributes": []` for the abstract base types.
struct Ordered<T>(Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Ordered<T>, A::Error> {
                let mut entries: Vec<(String, T)> = Vec::new();
                while let Some((key, value)) = access.next_entry::<String, T>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(A::Error::custom(format!("duplicate key '{key}'")));
                    }
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Ordered<T>, A::Error> {
                match access.next_element::<Value>()? {
                    None => Ok(Ordered(Vec::new())),
                    Some(_) => Err(A::Error::custom("expected a map, found a non-empty list")),
                }
            }
        }
        deserializer.deserialize_any(OrderedVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A two-type schema shaped like the real one, to test the mechanics
    /// without the reference directory (the tests in `tests/` use the real
    /// file).
    fn tiny() -> RouterSchema {
        RouterSchema::from_json(
            r#"{
              "prefix": "x.y",
              "entityTypes": {
                "entity": {"attributes": {
                  "name": {"type": "string", "unique": true, "create": true},
                  "identity": {"type": "string", "unique": true},
                  "type": {"type": "string", "required": true, "create": true}}},
                "configurationEntity": {"extends": "entity", "attributes": [], "operations": ["READ"]},
                "widget": {"extends": "configurationEntity", "operations": ["CREATE"],
                  "attributes": {
                    "size": {"type": "integer", "default": 3, "create": true},
                    "mode": {"type": ["a", "b"], "create": true, "update": true}}},
                "router.config.gadget": {"extends": "configurationEntity", "attributes": {}}
              }
            }"#,
        )
        .unwrap()
    }

    #[test]
    fn inherited_attributes_follow_own_ones() {
        let s = tiny();
        assert_eq!(
            s.attribute_names("widget").unwrap(),
            ["size", "mode", "name", "identity", "type"]
        );
        assert_eq!(
            s.entity_type("widget").unwrap().operations(),
            ["CREATE", "READ"]
        );
        assert!(s.entity_type("widget").unwrap().is_configuration());
        assert!(!s.entity_type("entity").unwrap().is_configuration());
    }

    #[test]
    fn router_config_types_answer_to_their_short_name() {
        let s = tiny();
        let t = s.entity_type("gadget").unwrap();
        assert_eq!(t.long_name(), "x.y.router.config.gadget");
        assert_eq!(t.short_name(), "gadget");
        assert!(s.entity_type("x.y.gadget").is_none());
    }

    #[test]
    fn enum_accepts_its_index_like_python() {
        let s = tiny();
        let mut attrs = Map::new();
        attrs.insert("mode".into(), json!("1"));
        let ok = s.check_create("widget", &attrs).unwrap();
        assert_eq!(ok["mode"], json!("b"));
        attrs.insert("mode".into(), json!(-1));
        assert_eq!(
            s.check_create("widget", &attrs).unwrap()["mode"],
            json!("b")
        );
        attrs.insert("mode".into(), json!(2));
        assert_eq!(
            s.check_create("widget", &attrs).unwrap_err().description,
            "x.y.widget: Invalid value for enum['a', 'b']: 2"
        );
    }

    #[test]
    fn create_fills_identity_type_and_defaults() {
        let s = tiny();
        let ok = s.check_create("widget", &Map::new()).unwrap();
        assert_eq!(ok["identity"], json!("widget/0"));
        assert_eq!(ok.get("name"), None);
        assert_eq!(ok["type"], json!("x.y.widget"));
        assert_eq!(ok["size"], json!(3));
    }

    #[test]
    fn config_entities_are_named_after_their_identity() {
        let s = tiny();
        let doc = json!([["widget", {}], ["widget", {"name": "widget/0"}]]);
        let problems = s.check_config(&doc);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("duplicates unique attribute 'name'"),
            "{problems:#?}"
        );
    }

    #[test]
    fn schema_with_unknown_attribute_keys_does_not_load() {
        let err = RouterSchema::from_json(
            r#"{"prefix": "p", "entityTypes": {"t": {"attributes": {"a": {"type": "string", "value": "x"}}}}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("value"), "{err}");
    }
}
