//! The double's management state: entities, the address table, the log of
//! operations, and the replies a real skupper-router gives (router.md 5).
//!
//! Everything here is plain data; sockets live in `tcp`, AMQP in `amqp`.
//! Status codes and descriptions copy the observed router replies, because
//! skupperd shows them to users and tests compare them.
use std::collections::HashMap;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::rules::{Entity, EntityRules, Refusal};

/// The prefix of long entity type names.
pub const PREFIX: &str = "io.skupper.router.";

/// Short type name for a long one or a config-file alias.
pub fn short_type(entity_type: &str) -> String {
    let short = entity_type.strip_prefix(PREFIX).unwrap_or(entity_type);
    match short {
        "address" => "router.config.address".to_string(),
        other => other.to_string(),
    }
}

/// One management request, decoded from its AMQP message.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub operation: String,
    /// `type` or `entityType`, long or short.
    pub entity_type: Option<String>,
    pub name: Option<String>,
    pub identity: Option<String>,
    /// The body map (CREATE/UPDATE attributes); empty otherwise.
    pub body: Entity,
    /// QUERY `attributeNames`; empty means all.
    pub attribute_names: Vec<String>,
    pub offset: usize,
    /// QUERY page size; `None` means all rows.
    pub count: Option<usize>,
}

/// The body of a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Entity(Entity),
    Empty,
    Table {
        names: Vec<String>,
        rows: Vec<Vec<Value>>,
    },
}

/// A reply: status code, description, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: u16,
    pub description: String,
    pub answer: Answer,
}

impl Reply {
    fn ok(code: u16, answer: Answer) -> Reply {
        let description = match code {
            201 => "Created",
            204 => "No Content",
            _ => "OK",
        };
        Reply {
            code,
            description: description.into(),
            answer,
        }
    }

    fn refused(r: Refusal) -> Reply {
        Reply {
            code: r.status_code,
            description: r.description,
            answer: Answer::Empty,
        }
    }
}

/// One received request, as the test sees it afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// `CREATE`, `UPDATE`, `DELETE`, `READ`, `QUERY`.
    pub operation: String,
    /// Short type name.
    pub entity_type: String,
    pub name: Option<String>,
    pub identity: Option<String>,
    pub body: Entity,
    pub status_code: u16,
}

impl Operation {
    /// Whether the operation changes the router (anything but READ/QUERY).
    pub fn is_mutation(&self) -> bool {
        matches!(self.operation.as_str(), "CREATE" | "UPDATE" | "DELETE")
    }
}

/// A stored entity.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntity {
    /// Short type name.
    pub entity_type: String,
    pub attrs: Entity,
}

impl StoredEntity {
    pub fn name(&self) -> &str {
        self.attrs.get("name").and_then(Value::as_str).unwrap_or("")
    }

    pub fn str_attr(&self, attr: &str) -> Option<&str> {
        self.attrs.get(attr).and_then(Value::as_str)
    }
}

/// Types that exist only in the config file or are computed; CREATE over
/// management is refused for them.
const NOT_CREATABLE_LIVE: &[&str] = &["router", "log", "site", "router.address"];

/// The entity table and everything the double answers from.
pub struct Table {
    rules: Arc<dyn EntityRules>,
    entities: Vec<StoredEntity>,
    /// Remote consumers injected by the test, per address.
    remote: BTreeMap<String, u32>,
    ops: Vec<Operation>,
    /// Refuse a listener whose sslProfile files cannot be read, as the real
    /// router does when it loads them.
    pub check_ssl_files: bool,
    anonymous: u64,
}

impl Table {
    pub fn new(rules: Arc<dyn EntityRules>) -> Table {
        Table {
            rules,
            entities: Vec::new(),
            remote: BTreeMap::new(),
            ops: Vec::new(),
            check_ssl_files: true,
            anonymous: 0,
        }
    }

    pub fn entities(&self) -> &[StoredEntity] {
        &self.entities
    }

    fn router_attr(&self, attr: &str, default: &str) -> String {
        self.of_type("router")
            .next()
            .and_then(|e| e.str_attr(attr))
            .unwrap_or(default)
            .to_string()
    }

    /// The `router` entity's id.
    pub fn router_id(&self) -> String {
        self.router_attr("id", "router-double")
    }

    /// The `router` entity's mode.
    pub fn router_mode(&self) -> String {
        self.router_attr("mode", "interior")
    }

    /// The `site` entity's attributes, if the config has one.
    pub fn site(&self) -> Option<Entity> {
        self.of_type("site").next().map(|e| e.attrs.clone())
    }

    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    pub fn rules(&self) -> &Arc<dyn EntityRules> {
        &self.rules
    }

    pub fn find(&self, name: &str) -> Option<&StoredEntity> {
        self.entities.iter().find(|e| e.name() == name)
    }

    pub fn add_remote_consumer(&mut self, address: &str) {
        *self.remote.entry(address.to_string()).or_default() += 1;
    }

    pub fn remove_remote_consumer(&mut self, address: &str) {
        if let Some(n) = self.remote.get_mut(address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.remote.remove(address);
            }
        }
    }

    /// Local tcpConnectors with the address (the router's subscriberCount).
    /// Every address's consumer count, local and injected, in one pass.
    pub fn consumer_counts(&self) -> HashMap<&str, usize> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for c in self.of_type("tcpConnector") {
            if let Some(a) = c.str_attr("address") {
                *counts.entry(a).or_default() += 1;
            }
        }
        for (a, n) in &self.remote {
            *counts.entry(a.as_str()).or_default() += *n as usize;
        }
        counts
    }

    pub fn local_consumers(&self, address: &str) -> usize {
        self.of_type("tcpConnector")
            .filter(|c| c.str_attr("address") == Some(address))
            .count()
    }

    /// Every consumer of an address anywhere in the (simulated) network.
    pub fn consumers(&self, address: &str) -> usize {
        self.local_consumers(address) + self.remote.get(address).copied().unwrap_or(0) as usize
    }

    fn of_type<'a>(&'a self, t: &'a str) -> impl Iterator<Item = &'a StoredEntity> + 'a {
        self.entities.iter().filter(move |e| e.entity_type == t)
    }

    /// The addresses a tcpListener serves: its `address`, or for a
    /// multi-address listener the addresses of its listenerAddresses.
    pub fn listener_addresses<'a>(&'a self, listener: &'a StoredEntity) -> Vec<&'a str> {
        let multi = listener
            .str_attr("multiAddressStrategy")
            .is_some_and(|s| s != "none");
        if multi {
            self.of_type("listenerAddress")
                .filter(|a| a.str_attr("listener") == Some(listener.name()))
                .filter_map(|a| a.str_attr("address"))
                .collect()
        } else {
            listener.str_attr("address").into_iter().collect()
        }
    }

    /// The first local tcpConnector for any of the addresses: its name,
    /// host and port.
    pub fn forward_target(&self, addresses: &[&str]) -> Option<(String, String, String)> {
        self.of_type("tcpConnector")
            .find(|c| {
                c.str_attr("address")
                    .is_some_and(|a| addresses.contains(&a))
            })
            .map(|c| {
                (
                    c.name().to_string(),
                    c.str_attr("host").unwrap_or("127.0.0.1").to_string(),
                    c.str_attr("port").unwrap_or("").to_string(),
                )
            })
    }

    /// Sets the runtime attributes of a tcpListener.
    /// Many at once: one pass over the table instead of one per listener.
    pub fn set_listener_statuses(&mut self, statuses: Vec<(String, bool, Option<String>)>) {
        let by_name: HashMap<String, (bool, Option<String>)> = statuses
            .into_iter()
            .map(|(n, up, m)| (n, (up, m)))
            .collect();
        for e in self.entities.iter_mut() {
            if let Some((up, message)) = by_name.get(e.name()) {
                e.attrs.insert(
                    "operStatus".into(),
                    Value::from(if *up { "up" } else { "down" }),
                );
                if let Some(message) = message {
                    e.attrs
                        .insert("connectionMsg".into(), Value::from(message.as_str()));
                }
            }
        }
    }

    pub fn set_listener_status(&mut self, name: &str, up: bool, message: Option<String>) {
        if let Some(e) = self.entities.iter_mut().find(|e| e.name() == name) {
            e.attrs.insert(
                "operStatus".into(),
                Value::from(if up { "up" } else { "down" }),
            );
            if let Some(message) = message {
                e.attrs.insert("connectionMsg".into(), Value::from(message));
            }
        }
    }

    /// Answers one request and logs it.
    pub fn handle(&mut self, req: &Request) -> Reply {
        let entity_type = req
            .entity_type
            .as_deref()
            .map(short_type)
            .unwrap_or_default();
        let reply = match req.operation.as_str() {
            "QUERY" => self.query(&entity_type, req),
            "CREATE" if NOT_CREATABLE_LIVE.contains(&entity_type.as_str()) => {
                Reply::refused(Refusal::new(
                    501,
                    format!("Operation 'CREATE' not implemented for '{PREFIX}{entity_type}'"),
                ))
            }
            "CREATE" => self.create(&entity_type, req),
            "UPDATE" => self.update(&entity_type, req),
            "DELETE" => self.delete(&entity_type, req),
            "READ" => self.read(&entity_type, req),
            other => Reply::refused(Refusal::new(400, format!("Unknown operation '{other}'"))),
        };
        self.ops.push(Operation {
            operation: req.operation.clone(),
            entity_type,
            name: req.name.clone(),
            identity: req.identity.clone(),
            body: req.body.clone(),
            status_code: reply.code,
        });
        reply
    }

    /// Creates an entity the way the config file does at start-up (no
    /// operation is logged, config-only types are allowed).
    pub fn create_from_config(&mut self, entity_type: &str, attrs: &Entity) -> Result<(), Refusal> {
        let req = Request {
            operation: "CREATE".into(),
            entity_type: Some(entity_type.to_string()),
            name: attrs.get("name").and_then(Value::as_str).map(String::from),
            body: attrs.clone(),
            ..Request::default()
        };
        let reply = self.create_checked(&short_type(entity_type), &req, true);
        match reply.code {
            201 => Ok(()),
            code => Err(Refusal::new(code, reply.description)),
        }
    }

    fn locate(&self, entity_type: &str, req: &Request) -> Result<usize, Refusal> {
        let found = match (&req.name, &req.identity) {
            (Some(name), _) => self.entities.iter().position(|e| e.name() == name),
            (None, Some(id)) => self
                .entities
                .iter()
                .position(|e| e.str_attr("identity") == Some(id.as_str())),
            (None, None) => return Err(Refusal::new(400, "No name or identity provided")),
        };
        match found {
            Some(i)
                if self
                    .entities
                    .get(i)
                    .is_some_and(|e| e.entity_type == entity_type) =>
            {
                Ok(i)
            }
            _ => Err(Refusal::new(
                404,
                match (&req.name, &req.identity) {
                    (Some(name), _) => format!("No entity with name={name}"),
                    (None, id) => {
                        format!("No entity with identity={}", id.as_deref().unwrap_or(""))
                    }
                },
            )),
        }
    }

    fn create(&mut self, entity_type: &str, req: &Request) -> Reply {
        self.create_checked(entity_type, req, false)
    }

    fn create_checked(&mut self, entity_type: &str, req: &Request, from_config: bool) -> Reply {
        match self.try_create(entity_type, req, from_config) {
            Ok(entity) => Reply::ok(201, Answer::Entity(entity)),
            Err(r) => Reply::refused(r),
        }
    }

    fn try_create(
        &mut self,
        entity_type: &str,
        req: &Request,
        from_config: bool,
    ) -> Result<Entity, Refusal> {
        let mut body = req.body.clone();
        body.remove("type");
        body.remove("identity");
        let body_name = body.get("name").and_then(Value::as_str).map(String::from);
        if let (Some(a), Some(b)) = (&req.name, &body_name) {
            if a != b {
                return Err(Refusal::new(
                    400,
                    format!("Conflicting values for 'name': '{a}' and '{b}'"),
                ));
            }
        }
        let name = req.name.clone().or(body_name);
        if let Some(name) = &name {
            body.insert("name".into(), Value::from(name.as_str()));
            if self.find(name).is_some() {
                return Err(Refusal::new(
                    400,
                    format!(
                        "adding {}Entity(name={name}) duplicates unique attribute 'name' with value '{name}'",
                        capitalised(entity_type)
                    ),
                ));
            }
        }
        let mut entity = if from_config {
            self.rules.check_config_entity(entity_type, &body)?
        } else {
            self.rules.check_create(entity_type, &body)?
        };
        if let Some(profile) = entity.get("sslProfile").and_then(Value::as_str) {
            self.check_profile(profile)?;
        }
        let identity = self.identity(entity_type, &entity);
        if name.is_none() {
            entity.insert("name".into(), Value::from(identity.as_str()));
        }
        entity.insert("identity".into(), Value::from(identity));
        entity.insert("type".into(), Value::from(format!("{PREFIX}{entity_type}")));
        if entity_type == "tcpListener" {
            // The socket opens only after the reply (router.md 6.1).
            entity.insert("operStatus".into(), Value::from("down"));
        }
        self.entities.push(StoredEntity {
            entity_type: entity_type.to_string(),
            attrs: entity.clone(),
        });
        Ok(entity)
    }

    fn check_profile(&self, profile: &str) -> Result<(), Refusal> {
        let Some(p) = self.find(profile).filter(|p| p.entity_type == "sslProfile") else {
            return Err(Refusal::new(
                500,
                format!("CError: Not found: sslProfile '{profile}' not found"),
            ));
        };
        if self.check_ssl_files {
            for attr in ["certFile", "privateKeyFile", "caCertFile"] {
                if let Some(path) = p.str_attr(attr) {
                    if std::fs::File::open(path).is_err() {
                        return Err(Refusal::new(
                            500,
                            format!(
                                "CError: Configuration: Failed to set TLS {attr} '{path}' for sslProfile '{profile}': (-3)"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn identity(&mut self, entity_type: &str, e: &Entity) -> String {
        let get = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        match entity_type {
            "tcpListener" | "tcpConnector" => {
                format!(
                    "{entity_type}/{}:{}:{}",
                    get("host"),
                    get("port"),
                    get("name")
                )
            }
            "log" => format!("log/{}", get("module")),
            _ if !get("name").is_empty() => format!("{entity_type}/{}", get("name")),
            _ => {
                self.anonymous += 1;
                format!("{entity_type}/{}", self.anonymous)
            }
        }
    }

    fn update(&mut self, entity_type: &str, req: &Request) -> Reply {
        let result = self.locate(entity_type, req).and_then(|i| {
            let mut changes = req.body.clone();
            for k in ["name", "identity", "type"] {
                changes.remove(k);
            }
            let current = self
                .entities
                .get(i)
                .map(|e| e.attrs.clone())
                .unwrap_or_default();
            let updated = self.rules.check_update(entity_type, &current, &changes)?;
            if let Some(e) = self.entities.get_mut(i) {
                e.attrs = updated.clone();
            }
            Ok(updated)
        });
        match result {
            Ok(e) => Reply::ok(200, Answer::Entity(e)),
            Err(r) => Reply::refused(r),
        }
    }

    fn delete(&mut self, entity_type: &str, req: &Request) -> Reply {
        match self.locate(entity_type, req) {
            Ok(i) => {
                self.entities.remove(i);
                Reply::ok(204, Answer::Entity(Entity::new()))
            }
            Err(r) => Reply::refused(r),
        }
    }

    fn read(&mut self, entity_type: &str, req: &Request) -> Reply {
        match self.locate(entity_type, req) {
            Ok(i) => Reply::ok(
                200,
                Answer::Entity(
                    self.entities
                        .get(i)
                        .map(|e| e.attrs.clone())
                        .unwrap_or_default(),
                ),
            ),
            Err(r) => Reply::refused(r),
        }
    }

    fn query(&self, entity_type: &str, req: &Request) -> Reply {
        let full = format!("{PREFIX}{entity_type}");
        let Some(all) = self.rules.attribute_names(entity_type) else {
            return Reply::refused(Refusal::new(400, format!("No such entity type '{full}'")));
        };
        let names = if req.attribute_names.is_empty() {
            all
        } else {
            let unknown: Vec<String> = req
                .attribute_names
                .iter()
                .filter(|a| !all.contains(a))
                .map(|a| format!("'{a}'"))
                .collect();
            if !unknown.is_empty() {
                return Reply::refused(Refusal::new(
                    404,
                    format!(
                        "Unknown attributes [{}] for type {full}.",
                        unknown.join(", ")
                    ),
                ));
            }
            req.attribute_names.clone()
        };
        // Rows are projected straight from the table: a page costs the rows
        // it returns, not a copy of every entity of the type.
        let count = req.count.unwrap_or(usize::MAX);
        let rows: Vec<Vec<Value>> = if entity_type == "router.address" {
            self.address_rows()
                .iter()
                .map(|row| names.iter().map(|n| row.attr(n)).collect::<Vec<_>>())
                .filter(|row| row.iter().any(|v| !v.is_null()))
                .skip(req.offset)
                .take(count)
                .collect()
        } else {
            self.of_type(entity_type)
                .filter(|e| {
                    names
                        .iter()
                        .any(|n| e.attrs.get(n).is_some_and(|v| !v.is_null()))
                })
                .skip(req.offset)
                .take(count)
                .map(|e| {
                    names
                        .iter()
                        .map(|n| e.attrs.get(n).cloned().unwrap_or(Value::Null))
                        .collect()
                })
                .collect()
        };
        Reply::ok(200, Answer::Table { names, rows })
    }

    /// `router.address` rows `M<address>` for every address a listener
    /// watches or a connector (local or remote) serves.
    fn address_rows(&self) -> Vec<AddressRow<'_>> {
        let mut addresses: Vec<&str> = self
            .of_type("tcpListener")
            .flat_map(|l| self.listener_addresses(l))
            .chain(
                self.of_type("tcpConnector")
                    .filter_map(|c| c.str_attr("address")),
            )
            .chain(self.remote.keys().map(String::as_str))
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let mut local: HashMap<&str, usize> = HashMap::new();
        for c in self.of_type("tcpConnector") {
            if let Some(a) = c.str_attr("address") {
                *local.entry(a).or_default() += 1;
            }
        }
        addresses
            .into_iter()
            .map(|address| AddressRow {
                address,
                local: local.get(address).copied().unwrap_or(0),
                remote: self.remote.get(address).copied().unwrap_or(0),
            })
            .collect()
    }
}

/// One `router.address` row, computed from the table; its attributes are
/// made only for the rows and names a QUERY asks for.
struct AddressRow<'a> {
    address: &'a str,
    local: usize,
    remote: u32,
}

impl AddressRow<'_> {
    fn attr(&self, name: &str) -> Value {
        match name {
            "name" | "identity" | "key" => Value::from(format!("M{}", self.address)),
            "type" => Value::from(format!("{PREFIX}router.address")),
            "distribution" => Value::from("balanced"),
            "subscriberCount" => Value::from(self.local),
            "remoteCount" => Value::from(self.remote),
            "inProcess" | "containerCount" => Value::from(0),
            _ => Value::Null,
        }
    }
}

fn capitalised(entity_type: &str) -> String {
    let last = entity_type.rsplit('.').next().unwrap_or(entity_type);
    let mut chars = last.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
