//! A minimal vanflow event source (router.md 7), so skupperd's network
//! view can be tested: a BEACON to every `mc/sfe.all` subscriber, and on
//! FLUSH the records of this double's listeners, connectors and site, plus
//! listeners a test injects as living on other routers.

use fe2o3_amqp::types::messaging::{AmqpValue, ApplicationProperties, Message, Properties};
use fe2o3_amqp::types::primitives::{OrderedMap, SimpleValue, Value};

use crate::table::Table;

/// The event source id of the double.
pub(crate) const SOURCE_ID: &str = "router-double";
/// Where the double multicasts its records.
pub(crate) const RECORDS_ADDRESS: &str = "mc/sfe.router-double";
/// Where the double takes FLUSH requests.
pub(crate) const DIRECT_ADDRESS: &str = "sfe.router-double";
/// Where beacons go.
pub(crate) const BEACONS_ADDRESS: &str = "mc/sfe.all";

fn message(
    subject: &str,
    app: Option<ApplicationProperties>,
    body: Value,
) -> Message<AmqpValue<Value>> {
    Message::builder()
        .properties(Properties {
            subject: Some(subject.to_string()),
            ..Default::default()
        })
        .application_properties(app)
        .value(body)
        .build()
}

/// The double's BEACON.
pub(crate) fn beacon() -> Message<AmqpValue<Value>> {
    let mut app = ApplicationProperties::default();
    for (k, v) in [
        ("v", "1"),
        ("sourceType", "ROUTER"),
        ("id", SOURCE_ID),
        ("address", RECORDS_ADDRESS),
        ("direct", DIRECT_ADDRESS),
    ] {
        app.0
            .insert(k.to_string(), SimpleValue::String(v.to_string()));
    }
    message("BEACON", Some(app), Value::Null)
}

fn record(record_type: u32, identity: &str, address: Option<&str>, name: &str) -> Value {
    let mut map = OrderedMap::new();
    map.insert(Value::Uint(0), Value::Uint(record_type));
    map.insert(Value::Uint(1), Value::String(identity.to_string()));
    if let Some(address) = address {
        map.insert(Value::Uint(19), Value::String(address.to_string()));
    }
    map.insert(Value::Uint(30), Value::String(name.to_string()));
    Value::Map(map)
}

/// One RECORD message with every record the double knows.
pub(crate) fn records(
    table: &Table,
    remote_listeners: &[(String, String)],
) -> Message<AmqpValue<Value>> {
    let mut records = vec![record(0, "site-router-double", None, "router-double")];
    for e in table.entities() {
        let kind = match e.entity_type.as_str() {
            "tcpListener" => 4,
            "tcpConnector" => 5,
            _ => continue,
        };
        let identity = e.str_attr("identity").unwrap_or(e.name());
        records.push(record(kind, identity, e.str_attr("address"), e.name()));
    }
    for (name, address) in remote_listeners {
        records.push(record(4, &format!("remote/{name}"), Some(address), name));
    }
    message("RECORD", None, Value::List(records))
}
