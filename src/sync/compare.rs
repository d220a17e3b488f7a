//! Attribute comparison between a rendered entity and a QUERY row
//! (router.md 3.3), and who owns what (router.md 3.4).
//!
//! The router answers QUERY with every attribute of the type: defaults
//! materialised, ports as strings, integers in whatever AMQP width it chose,
//! plus `identity`, `type` and counters. skupperd renders only what it sets,
//! with defaults left out. Comparing the two attribute by attribute, over
//! the attributes skupperd sets, with "absent" read as the router's default,
//! is what makes an unchanged entity compare equal.

use serde_json::{Map, Value};

pub const SSL_PROFILE: &str = "sslProfile";
pub const TCP_LISTENER: &str = "tcpListener";
pub const TCP_CONNECTOR: &str = "tcpConnector";
pub const CONNECTOR: &str = "connector";
pub const LISTENER: &str = "listener";
pub const LISTENER_ADDRESS: &str = "listenerAddress";
/// Log modules: never created or deleted, only their level is updated
/// (see [`super::log_updates`]).
pub const LOG: &str = "log";

/// The management sslProfile and listener: written to `skrouterd.json`,
/// never changed live (a change needs a restart, platform.md 4).
pub const MANAGEMENT_PROFILE: &str = "skupper-local-server";
pub const MANAGEMENT_LISTENER: &str = "skupper-local-normal";

/// Every entity type the live plan touches; all others (`router`, `log`,
/// `address`, `site`, ...) are file-only or not skupperd's.
pub const KINDS: [&str; 6] = [
    SSL_PROFILE,
    TCP_LISTENER,
    TCP_CONNECTOR,
    CONNECTOR,
    LISTENER,
    LISTENER_ADDRESS,
];

/// The short type for a type name the caller may give in either form.
pub fn short_kind(kind: &str) -> &str {
    kind.strip_prefix("io.skupper.router.").unwrap_or(kind)
}

/// Whether skupperd owns the entity `name` of type `kind` (router.md 3.4):
/// owned entities that are not desired are deleted; others are left alone.
pub fn owned(kind: &str, name: &str) -> bool {
    match kind {
        SSL_PROFILE => name != MANAGEMENT_PROFILE,
        LISTENER => name != MANAGEMENT_LISTENER,
        TCP_LISTENER | TCP_CONNECTOR | CONNECTOR | LISTENER_ADDRESS => true,
        _ => false,
    }
}

/// Attributes skupperd may set on each type (router.md 1.3 and 2). A
/// rendered entity that leaves one out means "the default", so a router
/// value other than the default there is a difference too (someone set
/// `observer` by hand, say).
/// The attributes skupperd sets on an entity type: all a plan compares, so
/// all a QUERY for it has to ask for (besides `name`).
pub fn set_by_skupperd(kind: &str) -> &'static [&'static str] {
    match kind {
        SSL_PROFILE => &[
            "caCertFile",
            "certFile",
            "privateKeyFile",
            "ordinal",
            "oldestValidOrdinal",
        ],
        TCP_LISTENER => &[
            "address",
            "host",
            "port",
            "sslProfile",
            "authenticatePeer",
            "observer",
            "multiAddressStrategy",
        ],
        TCP_CONNECTOR => &["address", "host", "port", "sslProfile", "verifyHostname"],
        CONNECTOR => &[
            "role",
            "host",
            "port",
            "cost",
            "sslProfile",
            "verifyHostname",
        ],
        LISTENER => &[
            "role",
            "host",
            "port",
            "sslProfile",
            "saslMechanisms",
            "authenticatePeer",
        ],
        LISTENER_ADDRESS => &["address", "value", "listener"],
        LOG => &["module", "enable"],
        _ => &[],
    }
}

/// The router's materialised default where skupperd relies on absence
/// meaning it (router.md 3.3, plus the schema defaults of `role`,
/// `multiAddressStrategy` and the listener `host`, which a QUERY row
/// carries the same way).
fn default_of(kind: &str, attr: &str) -> Option<Norm> {
    let d = match (kind, attr) {
        (TCP_LISTENER, "observer") => Norm::Str("auto".into()),
        (TCP_LISTENER, "multiAddressStrategy") => Norm::Str("none".into()),
        (TCP_LISTENER | LISTENER, "authenticatePeer") => Norm::Bool(false),
        (TCP_LISTENER | LISTENER, "host") => Norm::Str(String::new()),
        (TCP_CONNECTOR | CONNECTOR, "verifyHostname") => Norm::Bool(true),
        (CONNECTOR, "cost") => Norm::Int(1),
        (CONNECTOR | LISTENER, "role") => Norm::Str("normal".into()),
        (SSL_PROFILE, "ordinal" | "oldestValidOrdinal") => Norm::Int(0),
        _ => return None,
    };
    Some(d)
}

/// A value reduced to what the router means by it.
#[derive(Debug, Clone, PartialEq)]
pub enum Norm {
    Str(String),
    Int(i128),
    Bool(bool),
    /// Anything that does not fit the attribute's shape is compared as is.
    Raw(Value),
}

impl Norm {
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Norm::Int(i) => Some(*i),
            _ => None,
        }
    }
}

fn is_integer_attr(attr: &str) -> bool {
    matches!(attr, "cost" | "ordinal" | "oldestValidOrdinal" | "value")
}

fn is_boolean_attr(attr: &str) -> bool {
    matches!(attr, "authenticatePeer" | "verifyHostname")
}

fn int_of(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                // An integral float is how some decoders hand back wide ints.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e30)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn bool_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        // The router's coercion table (router.md 1.1).
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" => Some(true),
            "no" | "off" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `None` for null: the router leaves unset attributes null or out.
pub fn normalize(attr: &str, v: &Value) -> Option<Norm> {
    if v.is_null() {
        return None;
    }
    let n = if attr == "port" {
        match v {
            Value::String(s) => Norm::Str(s.clone()),
            Value::Number(n) => Norm::Str(n.to_string()),
            other => Norm::Raw(other.clone()),
        }
    } else if is_integer_attr(attr) {
        int_of(v).map_or_else(|| Norm::Raw(v.clone()), Norm::Int)
    } else if is_boolean_attr(attr) {
        bool_of(v).map_or_else(|| Norm::Raw(v.clone()), Norm::Bool)
    } else {
        match v {
            Value::String(s) => Norm::Str(s.clone()),
            other => Norm::Raw(other.clone()),
        }
    };
    Some(n)
}

/// The value an entity has for `attr`, with absence read as the default.
pub fn effective(kind: &str, attr: &str, attrs: &Map<String, Value>) -> Option<Norm> {
    attrs
        .get(attr)
        .and_then(|v| normalize(attr, v))
        .or_else(|| default_of(kind, attr))
}

/// The attributes, among those skupperd sets, where the rendered entity and
/// the router's row disagree, in a stable order.
pub fn differing(
    kind: &str,
    desired: &Map<String, Value>,
    observed: &Map<String, Value>,
) -> Vec<String> {
    let mut attrs: Vec<&str> = set_by_skupperd(kind).to_vec();
    for key in desired.keys() {
        if !matches!(key.as_str(), "name" | "identity" | "type") && !attrs.contains(&key.as_str()) {
            attrs.push(key);
        }
    }
    attrs
        .into_iter()
        .filter(|a| effective(kind, a, desired) != effective(kind, a, observed))
        .map(str::to_owned)
        .collect()
}

/// The entity a row refers to through `attr` (`sslProfile`, `listener`).
pub fn reference<'a>(attrs: &'a Map<String, Value>, attr: &str) -> Option<&'a str> {
    attrs
        .get(attr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}
