//! The double's management state: entities, the address table, the log of
//! operations, and the replies a real skupper-router gives (router.md 5).
//!
//! Everything here is plain data; sockets live in `tcp`, AMQP in `amqp`.
//! Status codes and descriptions copy the observed router replies, because
//! skupperd shows them to users and tests compare them. This is what the
//! real router's Python agent answers (every operation but the C agent's
//! QUERY types, see `core`), shaped as in the transcripts: entity maps in
//! the agent's key order, the runtime attributes the router adds, the
//! implicit `log` entities, `router.node`, GET-OPERATIONS and GET-TYPES.
use std::collections::{HashMap, HashSet};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::rules::{Entity, EntityRules, Refusal};

/// The prefix of long entity type names.
pub const PREFIX: &str = "io.skupper.router.";

/// Short type name for a long one or a config-file alias. The alias
/// `address` (for `router.config.address`) exists only in the config
/// file: over management `io.skupper.router.address` is no type at all
/// (transcript 16), so it stays `address`, which no rule knows.
pub fn short_type(entity_type: &str) -> String {
    match entity_type.strip_prefix(PREFIX) {
        Some(short) => short.to_string(),
        None if entity_type == "address" => "router.config.address".to_string(),
        None => entity_type.to_string(),
    }
}

/// The management node itself: `type` of GET-OPERATIONS, GET-TYPES and
/// of skmanage's QUERY.
pub const MANAGEMENT_NODE: &str = "org.amqp.management";

/// One management request, decoded from its AMQP message.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub operation: String,
    /// The type the request is about, long or short: `type` for CREATE,
    /// READ, UPDATE and DELETE, `entityType` for QUERY and GET-*.
    pub entity_type: Option<String>,
    /// The `type` property of a QUERY or GET-* request: the management
    /// node (`org.amqp.management`) or absent. Anything else is an entity
    /// type, and the agent then looks for an entity to answer for
    /// (transcript 31).
    pub node_type: Option<String>,
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
    /// A Python agent table: values as JSON, typed as that agent types
    /// them.
    Table {
        names: Vec<String>,
        rows: Vec<Vec<Value>>,
    },
    /// A C agent table, already typed.
    CTable {
        names: Vec<String>,
        rows: Vec<Vec<skupperd_amqp::Value>>,
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

/// The log modules the router registers itself, in the order its agent
/// lists them (transcript 20). They exist whatever the config says; a
/// config `log` entity sets one of them.
const LOG_MODULES: [&str; 23] = [
    "HTTP1_OBSERVER",
    "ROUTER_HELLO",
    "ROUTER_CORE",
    "AGENT",
    "SERVER",
    "PYTHON",
    "MESSAGE",
    "HTTP",
    "CONN_MGR",
    "TCP_ADAPTOR",
    "HTTP2_OBSERVER",
    "DEFAULT",
    "ROUTER",
    "HTTP2_DECODER",
    "HTTP_ADAPTOR",
    "ROUTER_LS",
    "FLOW_LOG",
    "ERROR",
    "ROUTER_MA",
    "ADDRESS_WATCH",
    "CONTAINER",
    "POLICY",
    "PROTOCOL",
];

/// Types whose identity the agent derives from attributes; the others are
/// numbered per type (`address/0`, ...), and `site` is `site/None`.
const DERIVED_IDENTITY: &[&str] = &[
    "listener",
    "connector",
    "tcpListener",
    "tcpConnector",
    "httpListener",
    "httpConnector",
    "sslProfile",
    "log",
    "router",
    "router.node",
    "vhost",
    "vhostStats",
    "router.address",
    "allocator",
    "policy",
];

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
    /// Next number of the numbered identities, per type.
    numbered: HashMap<String, u64>,
    /// Start time, seconds since the epoch (`router.node` `instance`).
    started: i64,
    /// The machine's host name (`router` `hostName`).
    host_name: String,
}

impl Table {
    pub fn new(rules: Arc<dyn EntityRules>) -> Table {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let mut table = Table {
            rules,
            entities: Vec::new(),
            remote: BTreeMap::new(),
            ops: Vec::new(),
            check_ssl_files: true,
            numbered: HashMap::new(),
            started,
            host_name: host_name(),
        };
        for module in LOG_MODULES {
            let mut attrs = Entity::new();
            attrs.insert("module".into(), Value::from(module));
            if module == "DEFAULT" {
                attrs.insert("enable".into(), Value::from("info+"));
                attrs.insert("includeTimestamp".into(), Value::Bool(true));
                attrs.insert("includeSource".into(), Value::Bool(false));
                attrs.insert("outputFile".into(), Value::from("stderr"));
            }
            let identity = format!("log/{module}");
            attrs.insert("name".into(), Value::from(identity.as_str()));
            attrs.insert("identity".into(), Value::from(identity));
            attrs.insert("type".into(), Value::from(format!("{PREFIX}log")));
            table.entities.push(StoredEntity {
                entity_type: "log".into(),
                attrs,
            });
        }
        table
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

    /// Logs a request answered elsewhere (the C agent's QUERY).
    pub fn log(&mut self, req: &Request, status_code: u16) {
        self.ops.push(Operation {
            operation: req.operation.clone(),
            entity_type: req
                .entity_type
                .as_deref()
                .map(short_type)
                .unwrap_or_default(),
            name: req.name.clone(),
            identity: req.identity.clone(),
            body: req.body.clone(),
            status_code,
        });
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

    /// Every address's consumer count, local and injected, in one pass.
    pub fn consumer_counts(&self) -> HashMap<&str, usize> {
        let mut counts = self.local_consumer_counts();
        for (a, n) in &self.remote {
            *counts.entry(a.as_str()).or_default() += *n as usize;
        }
        counts
    }

    /// Local tcpConnectors per address (the router's subscriberCount).
    pub fn local_consumer_counts(&self) -> HashMap<&str, usize> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for c in self.of_type("tcpConnector") {
            if let Some(a) = c.str_attr("address") {
                *counts.entry(a).or_default() += 1;
            }
        }
        counts
    }

    /// Injected consumers of an address (the router's remoteCount).
    pub fn remote_consumers(&self, address: &str) -> u32 {
        self.remote.get(address).copied().unwrap_or(0)
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

    /// The addresses tcpListeners watch, in listener order.
    pub fn watched_addresses(&self) -> Vec<&str> {
        // A set beside the list: a thousand listeners made this quadratic.
        let mut seen: HashSet<&str> = HashSet::new();
        let mut out: Vec<&str> = Vec::new();
        for l in self.of_type("tcpListener") {
            for a in self.listener_addresses(l) {
                if seen.insert(a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// The distribution of a mobile address: the longest matching prefix
    /// of a `router.config.address`, else the router's default.
    pub fn distribution(&self, address: &str) -> String {
        self.distributions().of(address)
    }

    /// The prefixes and the default [`Table::distribution`] reads, taken
    /// once for many addresses.
    pub fn distributions(&self) -> Distributions<'_> {
        Distributions {
            prefixes: self
                .of_type("router.config.address")
                .filter_map(|e| Some((e.str_attr("prefix")?, e.str_attr("distribution")?)))
                .collect(),
            default: self.router_attr("defaultDistribution", "balanced"),
        }
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

    /// Sets runtime attributes of the entity `name` (a connector's
    /// `connectionStatus` and `connectionMsg`).
    pub fn set_attrs(&mut self, name: &str, attrs: &[(&str, &str)]) {
        if let Some(e) = self.entities.iter_mut().find(|e| e.name() == name) {
            for (k, v) in attrs {
                e.attrs.insert((*k).into(), Value::from(*v));
            }
        }
    }

    pub fn set_listener_status(&mut self, name: &str, up: bool, message: Option<String>) {
        self.set_listener_statuses(vec![(name.to_string(), up, message)]);
    }

    /// Adds one to a counter attribute (`connectionsOpened`, ...) of the
    /// entity `name`.
    pub fn count(&mut self, name: &str, attr: &str) {
        if let Some(e) = self.entities.iter_mut().find(|e| e.name() == name) {
            let n = e.attrs.get(attr).and_then(Value::as_u64).unwrap_or(0);
            e.attrs.insert(attr.into(), Value::from(n + 1));
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
            "QUERY" => match req.node_type.as_deref() {
                // `type` names an entity type, not the management node:
                // the agent looks for that entity by name or identity.
                Some(t) if t != MANAGEMENT_NODE => Reply::refused(Refusal::new(
                    400,
                    format!("{}: No name or identity provided", long_type(t)),
                )),
                _ => self.query(&entity_type, req),
            },
            "GET-OPERATIONS" => self.get_operations(req),
            "GET-TYPES" => self.get_types(req),
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
    /// operation is logged, config-only types are allowed). A `log`
    /// entity sets the module's implicit entity.
    pub fn create_from_config(&mut self, entity_type: &str, attrs: &Entity) -> Result<(), Refusal> {
        let entity_type = short_type(entity_type);
        if entity_type == "log" {
            return self.configure_log(attrs);
        }
        let req = Request {
            operation: "CREATE".into(),
            entity_type: Some(entity_type.clone()),
            name: attrs.get("name").and_then(Value::as_str).map(String::from),
            body: attrs.clone(),
            ..Request::default()
        };
        let reply = self.create_checked(&entity_type, &req, true);
        match reply.code {
            201 => Ok(()),
            code => Err(Refusal::new(code, reply.description)),
        }
    }

    fn configure_log(&mut self, attrs: &Entity) -> Result<(), Refusal> {
        let checked = self.rules.check_config_entity(&long_type("log"), attrs)?;
        let module = checked
            .get("module")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = format!("log/{module}");
        match self.entities.iter_mut().find(|e| e.name() == name) {
            Some(existing) => {
                for key in attrs.keys() {
                    if let Some(v) = checked.get(key) {
                        existing.attrs.insert(key.clone(), v.clone());
                    }
                }
                Ok(())
            }
            None => Err(Refusal::new(400, format!("Log module {module} not found"))),
        }
    }

    fn locate(&self, entity_type: &str, req: &Request) -> Result<usize, Refusal> {
        let found = match (&req.name, &req.identity) {
            (Some(name), _) => self.entities.iter().position(|e| e.name() == name),
            (None, Some(id)) => self
                .entities
                .iter()
                .position(|e| e.str_attr("identity") == Some(id.as_str())),
            (None, None) => {
                return Err(Refusal::new(
                    400,
                    format!("{}: No name or identity provided", long_type(entity_type)),
                ))
            }
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

    /// A CREATE as the agent runs it: the request's `name` joins the body,
    /// the schema validates (defaults, coercion: a port given as a number
    /// comes back a string), `name` and `identity` must be new across all
    /// types, a referenced sslProfile must exist; then the router adds the
    /// entity's runtime attributes.
    fn try_create(
        &mut self,
        entity_type: &str,
        req: &Request,
        from_config: bool,
    ) -> Result<Entity, Refusal> {
        let mut body = req.body.clone();
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
        if let Some(name) = req.name.clone().or(body_name) {
            body.insert("name".into(), Value::from(name));
        }
        let mut entity = if from_config {
            self.rules
                .check_config_entity(&long_type(entity_type), &body)?
        } else {
            self.rules.check_create(&long_type(entity_type), &body)?
        };
        let identity = self.identity(entity_type, &entity);
        entity.insert("identity".into(), Value::from(identity.as_str()));
        if from_config && entity.get("name").is_none_or(Value::is_null) {
            entity.insert("name".into(), Value::from(identity.as_str()));
        }
        if let Some(existing) = self.entities.iter().find(|e| {
            ["name", "identity"].iter().any(|k| {
                entity
                    .get(*k)
                    .filter(|v| !v.is_null())
                    .is_some_and(|v| e.attrs.get(*k) == Some(v))
            })
        }) {
            let key = if entity
                .get("name")
                .is_some_and(|n| existing.attrs.get("name") == Some(n))
            {
                "name"
            } else {
                "identity"
            };
            return Err(Refusal::new(
                400,
                format!(
                    "adding {} duplicates unique attribute '{key}' from existing {}",
                    describe(entity_type, &entity),
                    describe(&existing.entity_type, &existing.attrs)
                ),
            ));
        }
        if let Some(profile) = entity.get("sslProfile").and_then(Value::as_str) {
            self.check_profile(profile)?;
        }
        if from_config {
            entity = config_order(entity);
        }
        self.add_runtime_attributes(entity_type, &mut entity);
        self.entities.push(StoredEntity {
            entity_type: entity_type.to_string(),
            attrs: entity.clone(),
        });
        Ok(entity)
    }

    /// What the router adds to an entity it created (transcripts 32, 34,
    /// 41): a tcpListener's counters, `operStatus` (down until a consumer
    /// exists: the socket opens after the reply) and an empty
    /// `connectionMsg`; a tcpConnector's counters, where the router counts
    /// one connection at once; the router's host name.
    fn add_runtime_attributes(&self, entity_type: &str, entity: &mut Entity) {
        let zero = || Value::from(0);
        match entity_type {
            "tcpListener" => {
                entity.insert("bytesIn".into(), zero());
                entity.insert("bytesOut".into(), zero());
                entity.insert("connectionsOpened".into(), zero());
                entity.insert("connectionsClosed".into(), zero());
                entity.insert("operStatus".into(), Value::from("down"));
                entity.insert("connectionMsg".into(), Value::from(""));
            }
            "tcpConnector" => {
                entity.insert("bytesIn".into(), zero());
                entity.insert("bytesOut".into(), zero());
                entity.insert("connectionsOpened".into(), Value::from(1));
                entity.insert("connectionsClosed".into(), zero());
            }
            "router" => {
                entity
                    .entry("hostName")
                    .or_insert_with(|| Value::from(self.host_name.as_str()));
            }
            _ => {}
        }
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

    /// The entity's identity: derived from its attributes as the schema
    /// checker computes it (`tcpListener/<host>:<port>:<name>`,
    /// `sslProfile/<name>`, `router/<id>`, ...), `site/None` for the site,
    /// numbered per type for the rest (`address/0`, `address/1`, ...).
    fn identity(&mut self, entity_type: &str, e: &Entity) -> String {
        if entity_type == "site" {
            return "site/None".into();
        }
        let derived = e.get("identity").and_then(Value::as_str);
        match derived {
            Some(identity) if DERIVED_IDENTITY.contains(&entity_type) => identity.to_string(),
            _ => {
                let short = entity_type
                    .strip_prefix("router.config.")
                    .unwrap_or(entity_type);
                let n = self.numbered.entry(entity_type.to_string()).or_insert(0);
                let identity = format!("{short}/{n}");
                *n += 1;
                identity
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
            let updated = self
                .rules
                .check_update(&long_type(entity_type), &current, &changes)?;
            if let Some(e) = self.entities.get_mut(i) {
                e.attrs = updated.clone();
            }
            // The agent merges the change into its record before the core
            // checks it, and keeps it when the core refuses: a refused
            // `ordinal: -1` makes every later UPDATE of the profile fail
            // (observed on 3.0.0-137).
            if short_type(entity_type) == "sslProfile" {
                ordinal_rules(&updated)?;
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
                Reply::ok(204, Answer::Empty)
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

    /// The Python agent's QUERY: every entity of the type, in creation
    /// order; `offset` and `count` are ignored (transcript 28); an unknown
    /// attribute name is refused.
    fn query(&self, entity_type: &str, req: &Request) -> Reply {
        let full = long_type(entity_type);
        let Some(all) = self.rules.attribute_names(&full) else {
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
        let project = |attrs: &Entity| -> Vec<Value> {
            names
                .iter()
                .map(|n| attrs.get(n).cloned().unwrap_or(Value::Null))
                .collect()
        };
        let rows: Vec<Vec<Value>> = if entity_type == "router.node" {
            vec![project(&self.router_node())]
        } else {
            self.of_type(entity_type)
                .map(|e| project(&e.attrs))
                .collect()
        };
        Reply::ok(200, Answer::Table { names, rows })
    }

    /// This router as a `router.node` (transcript 26): a router alone in
    /// its network.
    fn router_node(&self) -> Entity {
        let id = self.router_id();
        let identity = format!("router.node/{id}");
        let mut e = Entity::new();
        e.insert("id".into(), Value::from(id.as_str()));
        e.insert("protocolVersion".into(), Value::from(1));
        e.insert("instance".into(), Value::from(self.started));
        e.insert("linkState".into(), Value::Array(Vec::new()));
        e.insert("nextHop".into(), Value::from("(self)"));
        e.insert("validOrigins".into(), Value::Array(Vec::new()));
        e.insert("address".into(), Value::from(format!("amqp:/_topo/0/{id}")));
        e.insert("lastTopoChange".into(), Value::from(0));
        e.insert("index".into(), Value::from(0));
        e.insert("name".into(), Value::from(identity.as_str()));
        e.insert("identity".into(), Value::from(identity));
        e.insert("type".into(), Value::from(format!("{PREFIX}router.node")));
        e
    }

    /// GET-OPERATIONS: every type's operations (own first, then its
    /// bases'), or one type's with `entityType`.
    fn get_operations(&self, req: &Request) -> Reply {
        let wanted = req.entity_type.as_deref().map(long_type);
        let mut out = Entity::new();
        for t in self.rules.types() {
            let name = long_type(&t.name);
            if wanted.as_ref().is_some_and(|w| *w != name) {
                continue;
            }
            out.insert(name, Value::from(t.operations));
        }
        match wanted {
            Some(w) if out.is_empty() => {
                Reply::refused(Refusal::new(400, format!("No such entity type '{w}'")))
            }
            _ => Reply::ok(200, Answer::Entity(out)),
        }
    }

    /// GET-TYPES: every type with its bases, nearest first.
    fn get_types(&self, req: &Request) -> Reply {
        let wanted = req.entity_type.as_deref().map(long_type);
        let mut out = Entity::new();
        for t in self.rules.types() {
            let name = long_type(&t.name);
            if wanted.as_ref().is_some_and(|w| *w != name) {
                continue;
            }
            let bases: Vec<String> = t.bases.iter().map(|b| long_type(b)).collect();
            out.insert(name, Value::from(bases));
        }
        Reply::ok(200, Answer::Entity(out))
    }
}

/// The long (management) name of a type: every type, even the schema's
/// abstract ones and the management node, carries the prefix.
pub fn long_type(entity_type: &str) -> String {
    if entity_type.starts_with(PREFIX) {
        entity_type.to_string()
    } else {
        format!("{PREFIX}{entity_type}")
    }
}

/// A config-file entity in the agent's key order (transcripts 32, 56):
/// `type` first, then the file's attributes and the defaults, `identity`
/// last.
fn config_order(entity: Entity) -> Entity {
    let mut out = Entity::new();
    if let Some(t) = entity.get("type") {
        out.insert("type".into(), t.clone());
    }
    for (k, v) in &entity {
        if k != "type" && k != "identity" {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(i) = entity.get("identity") {
        out.insert("identity".into(), i.clone());
    }
    out
}

/// The agent's `str()` of an entity, as in its uniqueness refusal
/// (transcript 35): `TcpListenerEntity(k=v, ...)` with the keys sorted and
/// values as Python prints them.
fn describe(entity_type: &str, attrs: &Entity) -> String {
    let mut keys: Vec<&String> = attrs.keys().collect();
    keys.sort();
    let fields: Vec<String> = keys
        .into_iter()
        .map(|k| {
            let v = match &attrs[k] {
                Value::Null => "None".to_string(),
                Value::Bool(true) => "True".to_string(),
                Value::Bool(false) => "False".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}={v}")
        })
        .collect();
    format!("{}Entity({})", capitalised(entity_type), fields.join(", "))
}

/// The machine's host name, as the router reports it (`hostName`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn capitalised(entity_type: &str) -> String {
    let mut chars = entity_type.chars();
    match chars.next() {
        Some(c) => c
            .to_uppercase()
            .chain(chars.filter(|c| *c != '.'))
            .collect(),
        None => String::new(),
    }
}

/// The router core's checks of an sslProfile's ordinals, in its words
/// (observed on 3.0.0-137): a negative ordinal, and an ordinal below
/// `oldestValidOrdinal`, are refused with 500. A lower ordinal than
/// before is accepted.
fn ordinal_rules(profile: &Entity) -> Result<(), Refusal> {
    let int = |k: &str| profile.get(k).and_then(Value::as_i64).unwrap_or(0);
    let name = profile.get("name").and_then(Value::as_str).unwrap_or("");
    let (ordinal, oldest) = (int("ordinal"), int("oldestValidOrdinal"));
    let why = if ordinal < 0 || oldest < 0 {
        "Negative ordinal field values are invalid"
    } else if ordinal < oldest {
        "ordinal must be >= oldestValidOrdinal"
    } else {
        return Ok(());
    };
    Err(Refusal::new(
        500,
        format!("CError: Configuration: {why} (sslProfile '{name}')"),
    ))
}

/// `router.config.address` prefixes with their distributions, and the
/// router's default (see [`Table::distributions`]).
pub struct Distributions<'a> {
    prefixes: Vec<(&'a str, &'a str)>,
    default: String,
}

impl Distributions<'_> {
    /// The longest matching prefix's distribution, else the default.
    pub fn of(&self, address: &str) -> String {
        self.prefixes
            .iter()
            .filter(|(prefix, _)| {
                address == *prefix
                    || address
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with(['/', '.']))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or_else(|| self.default.clone(), |(_, d)| d.to_string())
    }
}
