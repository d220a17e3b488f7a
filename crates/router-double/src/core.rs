//! The router core's side of management: what the real router's C agent
//! answers (QUERY of `router.address`, `router.link`, `connection` and
//! `router.config.address`), from the double's connections, links and
//! entities, with the C agent's column order and AMQP types
//! (transcripts 02, 17, 22-24, 27, 30, 40, 44, 48).
//!
//! The C agent differs from the Python one in ways a client can see: it
//! honours `offset` and `count`; it answers an unknown attribute name with
//! `name` instead of refusing (`containerCount` is unknown to it); its
//! integers keep their declared widths (counters ulong, counts uint,
//! `trackedDeliveries` long, `priority` int); empty lists are `list32`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use skupperd_amqp::Value;

use crate::table::{Answer, Reply, Request, Table, PREFIX};

/// The C agent's empty list: a `list32` with no elements, where proton
/// (and so the Python agent) writes `list0`.
pub(crate) fn c_empty_list() -> Value {
    Value::Raw(vec![0xd0, 0, 0, 0, 4, 0, 0, 0, 0])
}

/// Slots of the per-router arrays (`transitOutstanding`,
/// `ingressHistogram`): the router's maximum number of routers.
const ROUTER_SLOTS: usize = 128;

/// The entity types the C agent answers QUERY for.
pub(crate) const C_TYPES: [&str; 4] = [
    "router.address",
    "router.link",
    "connection",
    "router.config.address",
];

/// Columns, in the C agent's order (transcripts 17, 22, 23, 24).
const CONFIG_ADDRESS_COLUMNS: &[&str] = &[
    "name",
    "identity",
    "type",
    "prefix",
    "distribution",
    "pattern",
    "priority",
];
const ADDRESS_COLUMNS: &[&str] = &[
    "name",
    "identity",
    "type",
    "key",
    "distribution",
    "inProcess",
    "subscriberCount",
    "remoteCount",
    "remoteHostRouters",
    "deliveriesIngress",
    "deliveriesEgress",
    "deliveriesTransit",
    "deliveriesToContainer",
    "deliveriesFromContainer",
    "deliveriesEgressRouteContainer",
    "deliveriesIngressRouteContainer",
    "deliveriesEgressInterNetwork",
    "deliveriesIngressInterNetwork",
    "transitOutstanding",
    "trackedDeliveries",
    "priority",
    "deliveriesRedirectedToFallback",
    "watch",
];
const CONNECTION_COLUMNS: &[&str] = &[
    "name",
    "identity",
    "host",
    "localSocket",
    "role",
    "protocol",
    "dir",
    "container",
    "sasl",
    "isAuthenticated",
    "user",
    "isEncrypted",
    "sslProto",
    "sslCipher",
    "properties",
    "sslSsf",
    "type",
    "ssl",
    "opened",
    "active",
    "adminStatus",
    "operStatus",
    "uptimeSeconds",
    "lastDlvSeconds",
    "enableProtocolTrace",
    "meshId",
    "tlsOrdinal",
    "groupCorrelationId",
    "groupOrdinal",
];
/// The last column's name really is empty.
const LINK_COLUMNS: &[&str] = &[
    "name",
    "identity",
    "type",
    "linkName",
    "linkType",
    "linkDir",
    "owningAddr",
    "capacity",
    "undeliveredCount",
    "unsettledCount",
    "deliveryCount",
    "connectionId",
    "operStatus",
    "presettledCount",
    "droppedPresettledCount",
    "acceptedCount",
    "rejectedCount",
    "releasedCount",
    "modifiedCount",
    "deliveriesDelayed1Sec",
    "deliveriesDelayed10Sec",
    "deliveriesStuck",
    "openMovedStreams",
    "ingressHistogram",
    "priority",
    "settleRate",
    "creditAvailable",
    "zeroCreditSeconds",
    "",
];

fn columns(entity_type: &str) -> &'static [&'static str] {
    match entity_type {
        "router.address" => ADDRESS_COLUMNS,
        "router.link" => LINK_COLUMNS,
        "connection" => CONNECTION_COLUMNS,
        _ => CONFIG_ADDRESS_COLUMNS,
    }
}

/// The addresses the router makes for itself at start-up, in its order,
/// with their distribution, `inProcess` and `watch`. `{id}` is the
/// vanflow source id.
const INTERNAL_ADDRESSES: &[(&str, &str, u32, bool)] = &[
    ("Lqdhello", "flood", 1, false),
    ("Lqdrouter", "flood", 1, false),
    ("Lqdrouter.ma", "multicast", 1, false),
    ("Tqdrouter", "flood", 1, false),
    ("Tqdrouter.ma", "multicast", 1, false),
    ("M_$qd.mesh_discovery", "balanced", 0, false),
    ("M_$qd.edge_addr_tracking", "balanced", 0, false),
    ("Mmc/sfe.all", "multicast", 0, true),
    ("Mmc/sfe.{id}", "multicast", 0, true),
    ("Mmc/sfe.{id}.flows", "multicast", 0, true),
    ("Mmc/sfe.{id}.logs", "multicast", 0, true),
    ("Msfe.{id}", "closest", 1, false),
    ("Mvfcr.{id}", "closest", 1, false),
    ("M$management", "closest", 1, false),
    ("L$management", "closest", 1, false),
    ("L$_management_internal", "closest", 1, false),
];

/// The internal address keys with the vanflow id filled in.
fn internal(vanflow_id: &str) -> impl Iterator<Item = (String, &'static str, u32, bool)> + '_ {
    INTERNAL_ADDRESSES
        .iter()
        .map(move |(k, d, p, w)| (k.replace("{id}", vanflow_id), *d, *p, *w))
}

/// One client connection, as the `connection` entity shows it.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    /// The router's connection id (`qd.conn-id` of its open).
    pub(crate) id: u64,
    /// `127.0.0.1:<port>` of the peer.
    pub(crate) host: String,
    pub(crate) container: String,
    pub(crate) sasl: String,
    /// The TLS protocol and cipher suite names.
    pub(crate) tls: Option<(String, String)>,
    /// The peer's open properties.
    pub(crate) properties: Value,
    pub(crate) opened: Instant,
    pub(crate) last_delivery: Option<Instant>,
}

/// One link of a client connection.
#[derive(Debug, Clone)]
pub(crate) struct LinkInfo {
    pub(crate) identity: u64,
    pub(crate) connection: u64,
    pub(crate) name: String,
    /// The router sends on it (`out`) or receives (`in`).
    pub(crate) outgoing: bool,
    /// `Ltemp.<id>` for a dynamic address, `M<address>` otherwise.
    pub(crate) owning: String,
    pub(crate) deliveries: u64,
    pub(crate) presettled: u64,
    pub(crate) accepted: u64,
}

/// Delivery counters of one address.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) ingress: u64,
    pub(crate) egress: u64,
    pub(crate) to_container: u64,
    pub(crate) from_container: u64,
}

/// The core's state.
#[derive(Debug, Default)]
pub(crate) struct Core {
    /// The core's identifier counter: config addresses and links take
    /// theirs from it (transcripts 17, 24: address `1`, links `2`, `3`).
    next_identifier: u64,
    config_address_ids: HashMap<String, u64>,
    pub(crate) connections: Vec<ConnectionInfo>,
    pub(crate) links: Vec<LinkInfo>,
    /// router.address keys in the order the router made them.
    addresses: Vec<String>,
    counters: HashMap<String, Counters>,
}

/// The router.address key of a link's address: `temp.<x>` of a dynamic
/// address `amqp:/_topo/0/<router>/temp.<x>` is a local (`L`) address;
/// everything else is mobile (`M`).
pub(crate) fn address_key(address: &str) -> String {
    match address.rsplit_once('/') {
        Some((topo, local)) if topo.starts_with("amqp:/_topo/") && local.starts_with("temp.") => {
            format!("L{local}")
        }
        _ => format!("M{address}"),
    }
}

impl Core {
    fn identifier(&mut self) -> u64 {
        self.next_identifier += 1;
        self.next_identifier
    }

    /// A new link; answers its identity.
    pub(crate) fn add_link(
        &mut self,
        connection: u64,
        name: &str,
        outgoing: bool,
        address: &str,
    ) -> u64 {
        let identity = self.identifier();
        self.links.push(LinkInfo {
            identity,
            connection,
            name: name.to_string(),
            outgoing,
            owning: address_key(address),
            deliveries: 0,
            presettled: 0,
            accepted: 0,
        });
        identity
    }

    pub(crate) fn remove_link(&mut self, identity: u64) {
        self.links.retain(|l| l.identity != identity);
    }

    pub(crate) fn link_mut(&mut self, identity: u64) -> Option<&mut LinkInfo> {
        self.links.iter_mut().find(|l| l.identity == identity)
    }

    pub(crate) fn connection_mut(&mut self, id: u64) -> Option<&mut ConnectionInfo> {
        self.connections.iter_mut().find(|c| c.id == id)
    }

    /// Forgets a connection and its links.
    pub(crate) fn remove_connection(&mut self, id: u64) {
        self.connections.retain(|c| c.id != id);
        self.links.retain(|l| l.connection != id);
    }

    pub(crate) fn count(&mut self, key: &str) -> &mut Counters {
        self.counters.entry(key.to_string()).or_default()
    }

    /// Brings the address table and the config addresses' identities in
    /// line with the entities and links: new addresses are appended (the
    /// router lists them in the order it made them), unused mobile ones
    /// dropped.
    pub(crate) fn note(&mut self, table: &Table, vanflow_id: &str) {
        for e in table.entities() {
            if e.entity_type == "router.config.address"
                && !self.config_address_ids.contains_key(e.name())
            {
                let id = self.identifier();
                self.config_address_ids.insert(e.name().to_string(), id);
            }
        }
        let mut wanted: Vec<String> = internal(vanflow_id).map(|(k, ..)| k).collect();
        wanted.extend(
            table
                .watched_addresses()
                .into_iter()
                .chain(table.consumer_counts().into_keys())
                .map(|a| format!("M{a}")),
        );
        wanted.extend(self.links.iter().map(|l| l.owning.clone()));
        // Sets beside the lists: at a thousand addresses the lookups were
        // quadratic, after every mutation.
        let keep: HashSet<&str> = wanted.iter().map(String::as_str).collect();
        self.addresses.retain(|k| keep.contains(k.as_str()));
        let mut have: HashSet<String> = self.addresses.iter().cloned().collect();
        for key in wanted {
            if have.insert(key.clone()) {
                self.addresses.push(key);
            }
        }
    }

    /// Answers a QUERY of one of [`C_TYPES`].
    pub(crate) fn query(
        &self,
        table: &Table,
        vanflow_id: &str,
        req: &Request,
        entity_type: &str,
    ) -> Reply {
        let all = columns(entity_type);
        // Unknown names are answered as `name`.
        let names: Vec<&str> = if req.attribute_names.is_empty() {
            all.to_vec()
        } else {
            req.attribute_names
                .iter()
                .map(|n| all.iter().copied().find(|c| c == n).unwrap_or("name"))
                .collect()
        };
        let rows: Vec<HashMap<&str, Value>> = match entity_type {
            "router.address" => self.address_rows(table, vanflow_id),
            "router.link" => self.link_rows(),
            "connection" => self.connection_rows(),
            _ => self.config_address_rows(table),
        };
        let count = req.count.unwrap_or(usize::MAX);
        let rows = rows
            .into_iter()
            .skip(req.offset)
            .take(count)
            .map(|row| {
                names
                    .iter()
                    .map(|n| row.get(n).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        Reply {
            code: 200,
            description: "OK".into(),
            answer: Answer::CTable {
                names: names.into_iter().map(String::from).collect(),
                rows,
            },
        }
    }

    fn config_address_rows(&self, table: &Table) -> Vec<HashMap<&'static str, Value>> {
        table
            .entities()
            .iter()
            .filter(|e| e.entity_type == "router.config.address")
            .map(|e| {
                let text = |k: &str| e.str_attr(k).map_or(Value::Null, Value::str);
                let priority = e
                    .attrs
                    .get("priority")
                    .and_then(serde_json::Value::as_i64)
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or(-1);
                HashMap::from([
                    ("name", Value::str(e.name())),
                    (
                        "identity",
                        Value::String(
                            self.config_address_ids
                                .get(e.name())
                                .map(u64::to_string)
                                .unwrap_or_default(),
                        ),
                    ),
                    (
                        "type",
                        Value::String(format!("{PREFIX}router.config.address")),
                    ),
                    ("prefix", text("prefix")),
                    ("distribution", text("distribution")),
                    ("pattern", text("pattern")),
                    ("priority", Value::Int(priority)),
                ])
            })
            .collect()
    }

    fn address_rows(&self, table: &Table, vanflow_id: &str) -> Vec<HashMap<&'static str, Value>> {
        let internal: HashMap<String, (&str, u32, bool)> = internal(vanflow_id)
            .map(|(k, d, p, w)| (k, (d, p, w)))
            .collect();
        let watched: HashSet<&str> = table.watched_addresses().into_iter().collect();
        let distributions = table.distributions();
        let local = table.local_consumer_counts();
        self.addresses
            .iter()
            .map(|key| {
                let address = key.get(1..).unwrap_or("");
                let (distribution, in_process, watch) = match internal.get(key) {
                    Some((d, p, w)) => (d.to_string(), *p, *w),
                    None if key.starts_with('L') => ("balanced".to_string(), 0, false),
                    None => (distributions.of(address), 0, watched.contains(address)),
                };
                let links = self
                    .links
                    .iter()
                    .filter(|l| l.outgoing && &l.owning == key)
                    .count();
                let subscribers = links
                    + if key.starts_with('M') {
                        local.get(address).copied().unwrap_or(0)
                    } else {
                        0
                    };
                let remote = table.remote_consumers(address);
                let c = self.counters.get(key).copied().unwrap_or_default();
                // A reply address keeps a per-router outstanding count.
                let outstanding = if key.starts_with("Ltemp.") {
                    Value::List(vec![Value::Long(0); ROUTER_SLOTS])
                } else {
                    Value::Null
                };
                HashMap::from([
                    ("name", Value::str(key)),
                    ("identity", Value::str(key)),
                    ("type", Value::String(format!("{PREFIX}router.address"))),
                    ("key", Value::str(key)),
                    ("distribution", Value::String(distribution)),
                    ("inProcess", Value::Uint(in_process)),
                    ("subscriberCount", Value::Uint(clamp(subscribers))),
                    ("remoteCount", Value::Uint(remote)),
                    ("remoteHostRouters", c_empty_list()),
                    ("deliveriesIngress", Value::Ulong(c.ingress)),
                    ("deliveriesEgress", Value::Ulong(c.egress)),
                    ("deliveriesTransit", Value::Ulong(0)),
                    ("deliveriesToContainer", Value::Ulong(c.to_container)),
                    ("deliveriesFromContainer", Value::Ulong(c.from_container)),
                    ("deliveriesEgressRouteContainer", Value::Ulong(0)),
                    ("deliveriesIngressRouteContainer", Value::Ulong(0)),
                    ("deliveriesEgressInterNetwork", Value::Ulong(0)),
                    ("deliveriesIngressInterNetwork", Value::Ulong(0)),
                    ("transitOutstanding", outstanding),
                    ("trackedDeliveries", Value::Long(0)),
                    ("priority", Value::Int(-1)),
                    ("deliveriesRedirectedToFallback", Value::Ulong(0)),
                    ("watch", Value::Bool(watch)),
                ])
            })
            .collect()
    }

    fn link_rows(&self) -> Vec<HashMap<&'static str, Value>> {
        self.links
            .iter()
            .map(|l| {
                let histogram = if l.outgoing {
                    Value::List(vec![Value::Ulong(0); ROUTER_SLOTS])
                } else {
                    Value::Null
                };
                HashMap::from([
                    ("name", Value::str(&l.name)),
                    ("identity", Value::String(l.identity.to_string())),
                    ("type", Value::String(format!("{PREFIX}router.link"))),
                    ("linkName", Value::str(&l.name)),
                    ("linkType", Value::str("endpoint")),
                    ("linkDir", Value::str(if l.outgoing { "out" } else { "in" })),
                    ("owningAddr", Value::str(&l.owning)),
                    ("capacity", Value::Uint(250)),
                    ("undeliveredCount", Value::Ulong(0)),
                    ("unsettledCount", Value::Ulong(0)),
                    ("deliveryCount", Value::Ulong(l.deliveries)),
                    ("connectionId", Value::String(l.connection.to_string())),
                    ("operStatus", Value::str("up")),
                    ("presettledCount", Value::Ulong(l.presettled)),
                    ("droppedPresettledCount", Value::Ulong(0)),
                    ("acceptedCount", Value::Ulong(l.accepted)),
                    ("rejectedCount", Value::Ulong(0)),
                    ("releasedCount", Value::Ulong(0)),
                    ("modifiedCount", Value::Ulong(0)),
                    ("deliveriesDelayed1Sec", Value::Ulong(0)),
                    ("deliveriesDelayed10Sec", Value::Ulong(0)),
                    ("deliveriesStuck", Value::Ulong(0)),
                    ("openMovedStreams", Value::Ulong(0)),
                    ("ingressHistogram", histogram),
                    ("priority", Value::Uint(4)),
                    ("settleRate", Value::Uint(0)),
                    // The double does not track the peer's credit: an
                    // incoming link shows the credit it grants (250).
                    (
                        "creditAvailable",
                        Value::Uint(if l.outgoing { 0 } else { 250 }),
                    ),
                    ("zeroCreditSeconds", Value::Uint(0)),
                ])
            })
            .collect()
    }

    fn connection_rows(&self) -> Vec<HashMap<&'static str, Value>> {
        let now = Instant::now();
        self.connections
            .iter()
            .map(|c| {
                let seconds = |since: Instant| {
                    Value::Uint(clamp(
                        now.saturating_duration_since(since).as_secs() as usize
                    ))
                };
                let (proto, cipher, ssf) = match &c.tls {
                    Some((proto, cipher)) => (
                        Value::str(proto),
                        Value::str(cipher),
                        Value::Long(if cipher.contains("128") { 128 } else { 256 }),
                    ),
                    None => (Value::Null, Value::Null, Value::Long(0)),
                };
                HashMap::from([
                    ("name", Value::String(format!("connection/{}", c.host))),
                    ("identity", Value::String(c.id.to_string())),
                    ("host", Value::str(&c.host)),
                    ("localSocket", Value::Null),
                    ("role", Value::str("normal")),
                    ("protocol", Value::str("amqp")),
                    ("dir", Value::str("in")),
                    ("container", Value::str(&c.container)),
                    ("sasl", Value::str(&c.sasl)),
                    ("isAuthenticated", Value::Bool(true)),
                    // The double does not read the client certificate's
                    // subject.
                    ("user", Value::Null),
                    ("isEncrypted", Value::Bool(c.tls.is_some())),
                    ("sslProto", proto),
                    ("sslCipher", cipher),
                    ("properties", c.properties.clone()),
                    ("sslSsf", ssf),
                    ("type", Value::String(format!("{PREFIX}connection"))),
                    ("ssl", Value::Bool(c.tls.is_some())),
                    ("opened", Value::Bool(true)),
                    ("active", Value::Bool(true)),
                    ("adminStatus", Value::str("enabled")),
                    ("operStatus", Value::str("up")),
                    ("uptimeSeconds", seconds(c.opened)),
                    (
                        "lastDlvSeconds",
                        c.last_delivery.map_or(Value::Uint(0), seconds),
                    ),
                    ("enableProtocolTrace", Value::Bool(false)),
                    ("meshId", Value::Null),
                    ("tlsOrdinal", Value::Null),
                    ("groupCorrelationId", Value::Null),
                    ("groupOrdinal", Value::Null),
                ])
            })
            .collect()
    }
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
