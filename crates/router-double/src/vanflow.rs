//! The double's vanflow event source (router.md 7), as the real router
//! runs it (transcript 65): a BEACON to `mc/sfe.all` every beacon
//! interval (10 s by default, from start, whoever listens), a HEARTBEAT to
//! `mc/sfe.<id>` every 2 s, RECORD messages to `mc/sfe.<id>` whenever a
//! listener or connector comes or goes, and on FLUSH one RECORD with
//! everything (SITE, ROUTER, every LISTENER and CONNECTOR, plus listeners
//! a test injects as living on other routers).
//!
//! Encodings are the router's: message-id a long counter, application
//! property keys symbols, record keys uint attribute numbers, identities
//! `<source>:<n>`, the SITE's identity the site id, times ulong
//! microseconds.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use skupperd_amqp::message::{MESSAGE_ID, SUBJECT, TO};
use skupperd_amqp::{Message, Value};

use crate::table::Table;
use crate::{lock, Shared};

/// Where beacons go.
pub(crate) const BEACONS_ADDRESS: &str = "mc/sfe.all";
/// How often the real router sends a HEARTBEAT.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// Record types and attribute numbers (vanflow's).
const SITE: u32 = 0;
const ROUTER: u32 = 1;
const LISTENER: u32 = 4;
const CONNECTOR: u32 = 5;
const RECORD_TYPE: u32 = 0;
const IDENTITY: u32 = 1;
const PARENT: u32 = 2;
const START_TIME: u32 = 3;
const END_TIME: u32 = 4;
const PLATFORM: u32 = 11;
const NAMESPACE: u32 = 12;
const MODE: u32 = 13;
const DEST_HOST: u32 = 15;
const PROTOCOL: u32 = 16;
const DEST_PORT: u32 = 18;
const VAN_ADDRESS: u32 = 19;
const NAME: u32 = 30;
const BUILD_VERSION: u32 = 32;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One announced listener or connector.
#[derive(Debug, Clone, PartialEq)]
struct Announced {
    identity: String,
    kind: u32,
    attrs: Vec<(u32, Value)>,
}

/// The event source's state.
pub(crate) struct Vanflow {
    /// `<prefix>:0`: the source id, also the ROUTER record's identity.
    id: String,
    prefix: String,
    site_id: String,
    next_record: u64,
    next_message: i64,
    started: u64,
    /// By entity name (or `remote/<name>` for injected listeners).
    announced: BTreeMap<String, Announced>,
}

impl Vanflow {
    /// A source whose id is derived from `seed` (the real router picks five
    /// random letters; a double only needs them distinct per instance).
    pub(crate) fn new(seed: u64, site_id: &str) -> Vanflow {
        const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut n = seed;
        let prefix: String = (0..5)
            .map(|_| {
                let c = LETTERS[(n % LETTERS.len() as u64) as usize];
                n /= LETTERS.len() as u64;
                char::from(c)
            })
            .collect();
        Vanflow {
            id: format!("{prefix}:0"),
            prefix,
            site_id: site_id.to_string(),
            next_record: 1,
            next_message: 0,
            started: now_us(),
            announced: BTreeMap::new(),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn address(&self) -> String {
        format!("mc/sfe.{}", self.id)
    }

    pub(crate) fn direct(&self) -> String {
        format!("sfe.{}", self.id)
    }

    fn message(
        &mut self,
        to: &str,
        subject: &str,
        props: Option<Vec<(&str, Value)>>,
        body: Value,
    ) -> Vec<u8> {
        let mut m = Message::with_value(body);
        m.set_property(MESSAGE_ID, Value::Long(self.next_message));
        self.next_message += 1;
        m.set_property(TO, Value::str(to));
        m.set_property(SUBJECT, Value::str(subject));
        m.application_properties =
            props.map(|p| p.into_iter().map(|(k, v)| (Value::sym(k), v)).collect());
        m.encode()
    }

    pub(crate) fn beacon(&mut self) -> Vec<u8> {
        let props = vec![
            ("v", Value::Uint(1)),
            ("sourceType", Value::str("ROUTER")),
            ("id", Value::str(&self.id)),
            ("address", Value::str(&self.address())),
            ("direct", Value::str(&self.direct())),
        ];
        self.message(BEACONS_ADDRESS, "BEACON", Some(props), Value::Null)
    }

    pub(crate) fn heartbeat(&mut self) -> Vec<u8> {
        let props = vec![
            ("v", Value::Uint(1)),
            ("now", Value::Ulong(now_us())),
            ("id", Value::str(&self.id)),
        ];
        let to = self.address();
        self.message(&to, "HEARTBEAT", Some(props), Value::Null)
    }

    fn record(attrs: &[(u32, Value)]) -> Value {
        Value::Map(
            attrs
                .iter()
                .map(|(k, v)| (Value::Uint(*k), v.clone()))
                .collect(),
        )
    }

    /// The SITE and ROUTER records.
    fn fixed(&self, table: &Table) -> Vec<Value> {
        let site = table.site();
        let text = |k: &str| {
            site.as_ref()
                .and_then(|s| s.get(k))
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        let site_id = &self.site_id;
        vec![
            Self::record(&[
                (RECORD_TYPE, Value::Uint(SITE)),
                (IDENTITY, Value::str(site_id)),
                (START_TIME, Value::Ulong(self.started)),
                (PLATFORM, Value::String(text("platform"))),
                (NAMESPACE, Value::String(text("namespace"))),
                (NAME, Value::String(text("name"))),
                (BUILD_VERSION, Value::String(text("version"))),
            ]),
            Self::record(&[
                (RECORD_TYPE, Value::Uint(ROUTER)),
                (IDENTITY, Value::str(&self.id)),
                (PARENT, Value::str(site_id)),
                (START_TIME, Value::Ulong(self.started)),
                (MODE, Value::String(table.router_mode())),
                (NAME, Value::String(format!("0/{}", table.router_id()))),
                (BUILD_VERSION, Value::str("0.0.0")),
            ]),
        ]
    }

    /// What should be announced now: every tcpListener and tcpConnector,
    /// and the injected remote listeners, by key.
    fn current(
        &self,
        table: &Table,
        remote: &[(String, String)],
    ) -> BTreeMap<String, (u32, Vec<(u32, Value)>)> {
        let mut out = BTreeMap::new();
        for e in table.entities() {
            let kind = match e.entity_type.as_str() {
                "tcpListener" => LISTENER,
                "tcpConnector" => CONNECTOR,
                _ => continue,
            };
            let s = |k: &str| Value::str(e.str_attr(k).unwrap_or(""));
            let port = match e.attrs.get("port") {
                Some(Json::String(p)) => Value::str(p),
                Some(other) => Value::String(other.to_string()),
                None => Value::str(""),
            };
            out.insert(
                e.name().to_string(),
                (
                    kind,
                    vec![
                        (DEST_HOST, s("host")),
                        (PROTOCOL, Value::str("tcp")),
                        (DEST_PORT, port),
                        (VAN_ADDRESS, s("address")),
                        (NAME, Value::str(e.name())),
                    ],
                ),
            );
        }
        for (name, address) in remote {
            out.insert(
                format!("remote/{name}"),
                (
                    LISTENER,
                    vec![
                        (PROTOCOL, Value::str("tcp")),
                        (VAN_ADDRESS, Value::str(address)),
                        (NAME, Value::str(name)),
                    ],
                ),
            );
        }
        out
    }

    /// Brings the announced set in line with `current`; answers the
    /// records of what began or ended.
    fn diff(&mut self, table: &Table, remote: &[(String, String)]) -> Vec<Value> {
        let current = self.current(table, remote);
        let mut records = Vec::new();
        let ended: Vec<String> = self
            .announced
            .iter()
            .filter(|(k, a)| {
                current
                    .get(*k)
                    .is_none_or(|(kind, attrs)| *kind != a.kind || *attrs != a.attrs)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in ended {
            if let Some(a) = self.announced.remove(&key) {
                records.push(Self::record(&[
                    (RECORD_TYPE, Value::Uint(a.kind)),
                    (IDENTITY, Value::str(&a.identity)),
                    (END_TIME, Value::Ulong(now_us())),
                ]));
            }
        }
        for (key, (kind, attrs)) in current {
            if self.announced.contains_key(&key) {
                continue;
            }
            let identity = format!("{}:{}", self.prefix, self.next_record);
            self.next_record += 1;
            let mut all = vec![
                (RECORD_TYPE, Value::Uint(kind)),
                (IDENTITY, Value::str(&identity)),
                (PARENT, Value::str(&self.id)),
                (START_TIME, Value::Ulong(now_us())),
            ];
            all.extend(attrs.iter().cloned());
            records.push(Self::record(&all));
            self.announced.insert(
                key,
                Announced {
                    identity,
                    kind,
                    attrs,
                },
            );
        }
        records
    }

    /// The RECORD answering a FLUSH: everything, as BEGIN records.
    fn everything(&mut self, table: &Table, remote: &[(String, String)]) -> Vec<u8> {
        self.diff(table, remote);
        let mut records = self.fixed(table);
        for a in self.announced.values() {
            let mut all = vec![
                (RECORD_TYPE, Value::Uint(a.kind)),
                (IDENTITY, Value::str(&a.identity)),
                (PARENT, Value::str(&self.id)),
                (START_TIME, Value::Ulong(self.started)),
            ];
            all.extend(a.attrs.iter().cloned());
            records.push(Self::record(&all));
        }
        let to = self.address();
        self.message(&to, "RECORD", None, Value::List(records))
    }

    /// A RECORD with what changed since the last one, if anything did.
    fn changes(&mut self, table: &Table, remote: &[(String, String)]) -> Option<Vec<u8>> {
        let records = self.diff(table, remote);
        if records.is_empty() {
            return None;
        }
        let to = self.address();
        Some(self.message(&to, "RECORD", None, Value::List(records)))
    }
}

/// Sends `payload` to every link subscribed to `address`. Never waits: a
/// subscriber that does not keep up loses messages, as on a real
/// multicast address.
fn publish(state: &crate::State, address: &str, payload: &[u8]) {
    for route in state.routes_to(address) {
        let _ = route.try_send(payload.to_vec());
    }
}

/// Answers a FLUSH.
pub(crate) fn flush(shared: &Shared) {
    let mut guard = lock(shared);
    let state = &mut *guard;
    let payload = state
        .vanflow
        .everything(&state.table, &state.remote_listeners);
    let address = state.vanflow.address();
    publish(state, &address, &payload);
}

/// Publishes what changed, after a mutation.
pub(crate) fn announce_changes(state: &mut crate::State) {
    if let Some(payload) = state.vanflow.changes(&state.table, &state.remote_listeners) {
        let address = state.vanflow.address();
        publish(state, &address, &payload);
    }
}

/// Runs the timers: a heartbeat every 2 s, a beacon every
/// `beacon_interval` (the first one at once).
pub(crate) async fn timers(shared: Shared, beacon_interval: Duration) {
    let mut beacons = tokio::time::interval(beacon_interval);
    let mut heartbeats = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tokio::select! {
            _ = beacons.tick() => {
                let mut state = lock(&shared);
                let payload = state.vanflow.beacon();
                publish(&state, BEACONS_ADDRESS, &payload);
            }
            _ = heartbeats.tick() => {
                let mut state = lock(&shared);
                let payload = state.vanflow.heartbeat();
                let address = state.vanflow.address();
                publish(&state, &address, &payload);
            }
        }
    }
}
