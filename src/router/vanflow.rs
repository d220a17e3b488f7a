//! The network view built from vanflow, the routers' event stream
//! (router.md 7): which listeners exist anywhere in the network (for
//! Connector Matched) and how many sites there are.
//!
//! [`NetworkView`] is pure state: beacons and records go in (with `now`
//! passed in), answers come out. [`watch_network`] is the AMQP plumbing: a
//! receiver on `mc/sfe.all` for beacons, and for each new event source a
//! receiver on its address plus a `FLUSH` to its direct address, so the
//! source sends all its records.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use skupperd_amqp::message::{SUBJECT, TO};
use skupperd_amqp::{Connection, Message, Receiver, Terminus, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::value::to_json;
use super::MgmtError;

/// A source is forgotten after this long without a beacon.
pub const SOURCE_EXPIRY: Duration = Duration::from_secs(30);

/// Record type codes (attribute 0).
pub const SITE: u32 = 0;
pub const ROUTER: u32 = 1;
pub const LINK: u32 = 2;
pub const LISTENER: u32 = 4;
pub const CONNECTOR: u32 = 5;

/// Attribute codes skupperd reads.
pub const TYPE: u32 = 0;
pub const IDENTITY: u32 = 1;
pub const END_TIME: u32 = 4;
pub const ADDRESS: u32 = 19;
pub const NAME: u32 = 30;

/// A BEACON: an event source announcing itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    pub id: String,
    pub source_type: String,
    /// Where the source multicasts its records.
    pub address: String,
    /// Where the source takes FLUSH requests.
    pub direct: String,
}

/// One record's attributes, by vanflow attribute code.
pub type RecordAttrs = BTreeMap<u32, Json>;

#[derive(Debug, Clone, PartialEq)]
struct SourceState {
    address: String,
    direct: String,
    last_beacon: Instant,
    /// Set when a FLUSH has been sent to the source.
    flush_sent: bool,
    /// Set by the first RECORD message after the FLUSH. Records that come
    /// before it are changes only (a busy router sends them every second),
    /// so they do not make the source's state complete.
    flushed: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Record {
    source: String,
    attrs: RecordAttrs,
}

impl Record {
    fn record_type(&self) -> Option<u64> {
        self.attrs.get(&TYPE).and_then(Json::as_u64)
    }

    fn live(&self) -> bool {
        self.attrs.get(&END_TIME).is_none_or(Json::is_null)
    }

    fn text(&self, code: u32) -> Option<&str> {
        self.attrs.get(&code).and_then(Json::as_str)
    }
}

/// What skupperd knows about the network from vanflow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkView {
    sources: BTreeMap<String, SourceState>,
    /// By record identity.
    records: BTreeMap<String, Record>,
}

impl NetworkView {
    /// Takes a beacon. Answers it back when the source is new: the caller
    /// then subscribes to its address and sends FLUSH to its direct address.
    pub fn on_beacon(&mut self, beacon: Beacon, now: Instant) -> Option<Beacon> {
        match self.sources.get_mut(&beacon.id) {
            Some(source) => {
                source.last_beacon = now;
                None
            }
            None => {
                self.sources.insert(
                    beacon.id.clone(),
                    SourceState {
                        address: beacon.address.clone(),
                        direct: beacon.direct.clone(),
                        last_beacon: now,
                        flush_sent: false,
                        flushed: false,
                    },
                );
                Some(beacon)
            }
        }
    }

    /// A HEARTBEAT keeps a known source alive between beacons.
    pub fn on_heartbeat(&mut self, source: &str, now: Instant) {
        if let Some(state) = self.sources.get_mut(source) {
            state.last_beacon = now;
        }
    }

    /// Forgets a source (its subscription failed), so its next beacon is
    /// answered as new and subscribed again.
    pub fn forget(&mut self, source: &str) {
        self.sources.remove(source);
        self.records.retain(|_, r| r.source != source);
    }

    /// Takes the records of one RECORD message from `source`. Later
    /// records for an identity update only the attributes they carry.
    pub fn on_records(&mut self, source: &str, records: Vec<RecordAttrs>) {
        let Some(state) = self.sources.get_mut(source) else {
            return;
        };
        state.flushed |= state.flush_sent;
        for attrs in records {
            let Some(identity) = attrs
                .get(&IDENTITY)
                .and_then(Json::as_str)
                .map(String::from)
            else {
                continue;
            };
            let record = self.records.entry(identity).or_insert_with(|| Record {
                source: source.to_string(),
                attrs: RecordAttrs::new(),
            });
            record.attrs.extend(attrs);
        }
    }

    /// Forgets sources without a beacon for [`SOURCE_EXPIRY`], with their
    /// records; answers the forgotten source ids.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .sources
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_beacon) >= SOURCE_EXPIRY)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.sources.remove(id);
        }
        self.records.retain(|_, r| !gone.contains(&r.source));
        gone
    }

    /// The direct address of a known source that has sent no records yet
    /// (it still owes the answer to a FLUSH).
    pub fn awaiting_flush(&self, source: &str) -> Option<&str> {
        self.sources
            .get(source)
            .filter(|s| !s.flushed)
            .map(|s| s.direct.as_str())
    }

    /// Notes that a FLUSH went to `source`: its next records complete it.
    pub fn flush_sent(&mut self, source: &str) {
        if let Some(state) = self.sources.get_mut(source) {
            state.flush_sent = true;
        }
    }

    /// True once some source has answered its FLUSH.
    pub fn available(&self) -> bool {
        self.sources.values().any(|s| s.flushed)
    }

    /// Whether a live LISTENER record anywhere serves `routing_key`; `None`
    /// while the view is not available yet.
    pub fn listener_for(&self, routing_key: &str) -> Option<bool> {
        self.available().then(|| {
            self.live(LISTENER)
                .any(|r| r.text(ADDRESS) == Some(routing_key))
        })
    }

    /// The number of live SITE records; `None` while not available.
    pub fn sites_in_network(&self) -> Option<usize> {
        self.available().then(|| self.live(SITE).count())
    }

    /// Names of the live records of a type (e.g. [`LISTENER`]).
    pub fn names(&self, record_type: u32) -> Vec<String> {
        self.live(record_type)
            .filter_map(|r| r.text(NAME).map(String::from))
            .collect()
    }

    fn live(&self, record_type: u32) -> impl Iterator<Item = &Record> {
        self.records
            .values()
            .filter(move |r| r.live() && r.record_type() == Some(u64::from(record_type)))
    }
}

/// A BEACON from its application properties (keys may have been symbols;
/// the library reads them as strings).
pub fn parse_beacon(props: &BTreeMap<String, String>) -> Option<Beacon> {
    Some(Beacon {
        id: props.get("id")?.clone(),
        source_type: props.get("sourceType").cloned().unwrap_or_default(),
        address: props.get("address")?.clone(),
        direct: props.get("direct")?.clone(),
    })
}

/// The records of a RECORD body: a list of maps with uint keys. Entries
/// that are not maps, and keys that are not unsigned integers, are skipped.
pub fn parse_records(body: &Value) -> Vec<RecordAttrs> {
    let (Value::List(items) | Value::Array(items)) = body else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::Map(pairs) => Some(
                pairs
                    .iter()
                    .filter_map(|(k, v)| {
                        let code = match k {
                            Value::Ubyte(_)
                            | Value::Ushort(_)
                            | Value::Uint(_)
                            | Value::Ulong(_) => k.as_u32(),
                            _ => None,
                        }?;
                        Some((code, to_json(v)))
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// A vanflow message, as the network view reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum VanflowMessage {
    Beacon(Beacon),
    Heartbeat,
    Records(Vec<RecordAttrs>),
    /// Any other subject (FLUSH, LOG, ...), or a BEACON without its
    /// addresses.
    Other,
}

/// Reads one vanflow message from a delivery's payload.
pub fn read_message(payload: &[u8]) -> Result<VanflowMessage, MgmtError> {
    let message = Message::decode(payload)
        .map_err(|e| MgmtError::Protocol(format!("a vanflow message could not be read: {e}")))?;
    Ok(match message.subject() {
        Some("BEACON") => {
            let props: BTreeMap<String, String> = message
                .application_properties
                .iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect();
            parse_beacon(&props).map_or(VanflowMessage::Other, VanflowMessage::Beacon)
        }
        Some("HEARTBEAT") => VanflowMessage::Heartbeat,
        Some("RECORD") => {
            VanflowMessage::Records(message.value().map(parse_records).unwrap_or_default())
        }
        _ => VanflowMessage::Other,
    })
}

/// A running network view. Dropping it stops the task (its links end with
/// the connection).
pub struct NetworkWatch {
    /// The latest view; changes whenever a beacon or record changes it.
    pub view: watch::Receiver<NetworkView>,
    task: JoinHandle<()>,
}

impl NetworkWatch {
    /// True once the view has stopped following the network (its beacon
    /// link ended); the caller starts a new one.
    pub fn ended(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for NetworkWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Messages from the per-link forwarders to the view task.
enum Event {
    Beacon(Beacon),
    Heartbeat(String),
    Records(String, Vec<RecordAttrs>),
    /// A FLUSH went out (or failed) for a source.
    Flushed(String, Result<(), String>),
    /// A source's record link ended.
    SourceGone(String),
    /// The beacon link ended: the view is over.
    Closed(String),
}

/// How long after a FLUSH the records may take before it is sent again.
const FLUSH_RETRY: Duration = Duration::from_secs(5);

/// Starts the vanflow view on `connection`.
pub async fn watch_network(connection: &Connection) -> Result<NetworkWatch, MgmtError> {
    let beacons = connection
        .receiver("skupperd-vanflow-beacons", Terminus::address(BEACONS))
        .await
        .map_err(|e| MgmtError::Lost(format!("attaching to {BEACONS}: {e}")))?;
    let (events, rx) = mpsc::channel(256);
    let beacon_task = tokio::spawn(forward(beacons, None, events.clone()));
    let (tx, view) = watch::channel(NetworkView::default());
    let task = tokio::spawn(run(connection.clone(), events, rx, tx, beacon_task));
    Ok(NetworkWatch { view, task })
}

/// Where every event source sends its BEACON.
pub const BEACONS: &str = "mc/sfe.all";

async fn run(
    connection: Connection,
    events: mpsc::Sender<Event>,
    mut rx: mpsc::Receiver<Event>,
    tx: watch::Sender<NetworkView>,
    beacon_task: JoinHandle<()>,
) {
    let mut view = NetworkView::default();
    let mut forwarders: HashMap<String, JoinHandle<()>> = HashMap::new();
    // FLUSHes sent and when, per source, until its records arrive.
    let mut flushes: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::Beacon(beacon)) => {
                    if let Some(new) = view.on_beacon(beacon, Instant::now()) {
                        tracing::debug!(source = %new.id, address = %new.address, "vanflow: new event source");
                        match subscribe(&connection, &new, events.clone()).await {
                            Ok(task) => {
                                if let Some(old) = forwarders.insert(new.id.clone(), task) {
                                    old.abort();
                                }
                            }
                            Err(e) => {
                                // Answered again at its next beacon.
                                tracing::warn!(source = %new.id, "vanflow: {e}");
                                view.forget(&new.id);
                            }
                        }
                    }
                }
                Some(Event::Heartbeat(source)) => {
                    view.on_heartbeat(&source, Instant::now());
                    // A heartbeat on the source's address proves the
                    // subscription reaches the source, so the records a
                    // FLUSH makes it send will reach us (as Skupper's
                    // collector does it); one sent earlier can be lost on a
                    // remote router.
                    let due = flushes.get(&source).is_none_or(|t| t.elapsed() >= FLUSH_RETRY);
                    if let (Some(direct), true) = (view.awaiting_flush(&source).map(String::from), due) {
                        tracing::debug!(%source, %direct, "vanflow: FLUSH");
                        view.flush_sent(&source);
                        flushes.insert(source.clone(), Instant::now());
                        tokio::spawn(flush(connection.clone(), source, direct, events.clone()));
                    }
                }
                Some(Event::Records(source, records)) => {
                    tracing::debug!(%source, records = records.len(), "vanflow: records");
                    flushes.remove(&source);
                    view.on_records(&source, records);
                }
                Some(Event::Flushed(source, Err(e))) => {
                    tracing::debug!(%source, "vanflow: {e}; sent again at the next heartbeat");
                    flushes.remove(&source);
                }
                Some(Event::Flushed(_, Ok(()))) => {}
                Some(Event::SourceGone(source)) => {
                    forwarders.remove(&source);
                    flushes.remove(&source);
                    view.forget(&source);
                }
                Some(Event::Closed(why)) => {
                    tracing::debug!("vanflow beacon link ended: {why}");
                    break;
                }
                None => break,
            },
            _ = tick.tick() => {
                for id in view.expire(Instant::now()) {
                    flushes.remove(&id);
                    if let Some(task) = forwarders.remove(&id) {
                        task.abort();
                    }
                }
            }
        }
        tx.send_if_modified(|current| {
            let changed = *current != view;
            if changed {
                *current = view.clone();
            }
            changed
        });
    }
    beacon_task.abort();
    for task in forwarders.into_values() {
        task.abort();
    }
}

/// How long a FLUSH may wait for the source to take it.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Attaches to a new source's address; its first heartbeat there makes
/// the view ask for a FLUSH.
async fn subscribe(
    connection: &Connection,
    source: &Beacon,
    events: mpsc::Sender<Event>,
) -> Result<JoinHandle<()>, String> {
    let receiver = connection
        .receiver(
            &format!("skupperd-vanflow-{}", source.id),
            Terminus::address(&source.address),
        )
        .await
        .map_err(|e| format!("attaching to {}: {e}", source.address))?;
    Ok(tokio::spawn(forward(
        receiver,
        Some(source.id.clone()),
        events,
    )))
}

/// Sends one FLUSH to a source's direct address and reports the outcome.
async fn flush(
    connection: Connection,
    source: String,
    direct: String,
    events: mpsc::Sender<Event>,
) {
    let result = async {
        let sender = connection
            .sender(&format!("skupperd-flush-{source}"), &direct)
            .await
            .map_err(|e| format!("attaching to {direct}: {e}"))?;
        let mut message = Message::with_value(Value::Null);
        message.set_property(TO, Value::str(&direct));
        message.set_property(SUBJECT, Value::str("FLUSH"));
        let sent = sender
            .send(message.encode(), false)
            .map_err(|e| format!("sending FLUSH to {direct}: {e}"))?;
        // Detaching before the router has taken the FLUSH would drop it.
        let taken = tokio::time::timeout(FLUSH_TIMEOUT, sent.state()).await;
        sender.close();
        match taken {
            Ok(Some(state)) => match state.descriptor() {
                Some((code, _)) if code == skupperd_amqp::frame::ACCEPTED => Ok(()),
                _ => Err(format!("FLUSH to {direct} not accepted: {state}")),
            },
            Ok(None) => Err(format!("FLUSH to {direct}: the connection ended")),
            Err(_) => Err(format!(
                "FLUSH to {direct}: not taken within {} s",
                FLUSH_TIMEOUT.as_secs()
            )),
        }
    }
    .await;
    let _ = events.send(Event::Flushed(source, result)).await;
}

/// Reads one link (the connection accepts and settles every message: an
/// unsettled multicast blocks its senders, Skupper issue #2331) and turns
/// BEACON, HEARTBEAT and RECORD messages into events. `source` is the id
/// whose records this link carries.
async fn forward(mut receiver: Receiver, source: Option<String>, events: mpsc::Sender<Event>) {
    loop {
        let Some(delivery) = receiver.recv().await else {
            let event = match source {
                Some(source) => Event::SourceGone(source),
                None => Event::Closed("the link ended".into()),
            };
            let _ = events.send(event).await;
            return;
        };
        let message = match read_message(&delivery.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("vanflow: skipping a message: {e}");
                continue;
            }
        };
        let event = match (message, &source) {
            (VanflowMessage::Beacon(beacon), _) => Some(Event::Beacon(beacon)),
            (VanflowMessage::Heartbeat, Some(source)) => Some(Event::Heartbeat(source.clone())),
            (VanflowMessage::Records(records), Some(source)) => {
                Some(Event::Records(source.clone(), records))
            }
            _ => None,
        };
        if let Some(event) = event {
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn beacon(id: &str) -> Beacon {
        Beacon {
            id: id.into(),
            source_type: "ROUTER".into(),
            address: format!("mc/sfe.{id}"),
            direct: format!("sfe.{id}"),
        }
    }

    fn record(pairs: &[(u32, Json)]) -> RecordAttrs {
        pairs.iter().cloned().collect()
    }

    #[test]
    fn new_sources_are_answered_once_and_expire_without_beacons() {
        let t0 = Instant::now();
        let mut view = NetworkView::default();
        assert_eq!(view.on_beacon(beacon("r1"), t0), Some(beacon("r1")));
        assert_eq!(
            view.on_beacon(beacon("r1"), t0 + Duration::from_secs(10)),
            None
        );
        assert!(view.expire(t0 + Duration::from_secs(39)).is_empty());
        assert_eq!(
            view.expire(t0 + Duration::from_secs(40)),
            vec!["r1".to_string()]
        );
        assert_eq!(
            view.on_beacon(beacon("r1"), t0 + Duration::from_secs(41)),
            Some(beacon("r1"))
        );
    }

    #[test]
    fn listener_records_decide_connector_matched_after_the_first_flush() {
        let t0 = Instant::now();
        let mut view = NetworkView::default();
        view.on_beacon(beacon("r1"), t0);
        view.on_records(
            "r1",
            vec![record(&[(TYPE, json!(LINK)), (IDENTITY, json!("k0"))])],
        );
        assert_eq!(
            view.listener_for("db"),
            None,
            "change records before a FLUSH do not make the view available"
        );
        assert_eq!(view.awaiting_flush("r1"), Some("sfe.r1"));
        view.flush_sent("r1");
        view.on_records(
            "r1",
            vec![
                record(&[
                    (TYPE, json!(LISTENER)),
                    (IDENTITY, json!("l1")),
                    (ADDRESS, json!("db")),
                    (NAME, json!("db")),
                ]),
                record(&[(TYPE, json!(SITE)), (IDENTITY, json!("s1"))]),
            ],
        );
        assert_eq!(view.listener_for("db"), Some(true));
        assert_eq!(view.listener_for("web"), Some(false));
        assert_eq!(view.sites_in_network(), Some(1));
        assert_eq!(view.names(LISTENER), vec!["db".to_string()]);

        // An update carrying only the end time ends the record.
        view.on_records(
            "r1",
            vec![record(&[(IDENTITY, json!("l1")), (END_TIME, json!(123))])],
        );
        assert_eq!(view.listener_for("db"), Some(false));

        // Records of an expired source go with it.
        view.on_records(
            "r1",
            vec![record(&[
                (TYPE, json!(LISTENER)),
                (IDENTITY, json!("l2")),
                (ADDRESS, json!("db")),
            ])],
        );
        view.expire(t0 + SOURCE_EXPIRY);
        assert_eq!(view.listener_for("db"), None);
    }

    #[test]
    fn records_from_unknown_sources_are_ignored() {
        let mut view = NetworkView::default();
        view.on_records(
            "ghost",
            vec![record(&[(TYPE, json!(SITE)), (IDENTITY, json!("s"))])],
        );
        assert_eq!(view.sites_in_network(), None);
    }

    #[test]
    fn record_bodies_are_lists_of_uint_keyed_maps() {
        let map = Value::Map(vec![
            (Value::Uint(0), Value::Uint(4)),
            (Value::Uint(1), Value::str("l1")),
            (Value::Uint(19), Value::str("db")),
            (Value::str("junk"), Value::Bool(true)),
        ]);
        let body = Value::List(vec![map, Value::Null]);
        let records = parse_records(&body);
        assert_eq!(
            records,
            vec![record(&[
                (0, json!(4)),
                (1, json!("l1")),
                (19, json!("db"))
            ])]
        );
        assert!(parse_records(&Value::Null).is_empty());
    }

    #[test]
    fn beacons_need_id_address_and_direct() {
        let mut props: BTreeMap<String, String> = [
            ("id", "r1"),
            ("sourceType", "ROUTER"),
            ("address", "mc/sfe.r1"),
            ("direct", "sfe.r1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(parse_beacon(&props), Some(beacon("r1")));
        props.remove("direct");
        assert_eq!(parse_beacon(&props), None);
    }
}
