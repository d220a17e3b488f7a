//! `runtime/router/skrouterd.json` (router.md 1.3): entities in a fixed
//! order, attributes in a fixed order, 4-space indentation, one entity per
//! block, final newline. The `skupper` CLI parses this file as plain JSON,
//! so it carries no comments.

use crate::model::{Identity, LinkAccess, Platform, Profile, LOCAL_SERVER};
use crate::validate::{ConnectorConfig, ListenerConfig, SiteConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct Config<'a> {
    pub site_name: &'a str,
    pub site: &'a SiteConfig,
    pub identity: &'a Identity,
    pub platform: Platform,
    pub namespace: &'a str,
    /// Absolute namespace directory, for linux certificate paths.
    pub namespace_path: &'a str,
    pub version: &'a str,
    pub profiles: &'a BTreeMap<String, Profile>,
    /// The site's link accesses: a router `listener` per role.
    pub access: &'a [LinkAccess],
    /// The `connector` of each Link, sorted by name.
    pub links: &'a [LinkConnector],
}

/// The router `connector` of a Link (router.md 1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConnector {
    pub name: String,
    /// `inter-router` on an interior site, `edge` on an edge site.
    pub role: &'static str,
    pub host: String,
    pub port: u16,
    pub cost: u32,
    pub ssl_profile: String,
}

/// `<site name>-<first 8 hex digits of the site id>`: stable across renders.
pub fn router_id(site_name: &str, site_id: &str) -> String {
    let hex: String = site_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    format!("{site_name}-{hex}")
}

/// Where the router reads the files of profile `profile`.
pub fn cert_path(platform: Platform, namespace_path: &str, profile: &str, file: &str) -> String {
    match platform {
        Platform::Linux => format!("{namespace_path}/runtime/certs/{profile}/{file}"),
        Platform::Podman | Platform::Docker => {
            format!("${{SSL_PROFILE_BASE_PATH}}/runtime/certs/{profile}/{file}")
        }
    }
}

/// An entity as rendered: attributes in file order, keys not allocated.
type Light = (&'static str, Vec<(&'static str, Value)>);

/// router, sslProfiles, the management listener and the address.
fn head_entities(c: &Config) -> Vec<Light> {
    let mut out: Vec<Light> = Vec::new();
    let router_id = router_id(c.site_name, &c.identity.site_id);
    let metadata =
        json!({"id": c.identity.site_id, "version": c.version, "platform": c.platform.as_str()});
    let mut router = vec![
        ("id", json!(router_id)),
        ("mode", json!(if c.site.edge { "edge" } else { "interior" })),
        ("helloMaxAgeSeconds", json!(3)),
        ("metadata", json!(metadata.to_string())),
    ];
    if let Some(n) = c.site.data_connections {
        router.push(("dataConnectionCount", json!(n.to_string())));
    }
    out.push(("router", router));

    for (name, p) in c.profiles {
        let path = |f: &str| json!(cert_path(c.platform, c.namespace_path, name, f));
        let mut a = vec![("name", json!(name))];
        if p.ca {
            a.push(("caCertFile", path("ca.crt")));
        }
        if p.cert {
            a.push(("certFile", path("tls.crt")));
            a.push(("privateKeyFile", path("tls.key")));
        }
        if p.ordinal > 0 {
            a.push(("ordinal", json!(p.ordinal)));
        }
        out.push(("sslProfile", a));
    }

    for l in c.links {
        out.push((
            "connector",
            vec![
                ("name", json!(l.name)),
                ("role", json!(l.role)),
                ("host", json!(l.host)),
                ("port", json!(l.port.to_string())),
                ("cost", json!(l.cost)),
                ("sslProfile", json!(l.ssl_profile)),
            ],
        ));
    }

    out.push((
        "listener",
        vec![
            ("name", json!("skupper-local-normal")),
            ("role", json!("normal")),
            ("host", json!("127.0.0.1")),
            ("port", json!(c.identity.management_port.to_string())),
            ("sslProfile", json!(LOCAL_SERVER)),
            ("saslMechanisms", json!("EXTERNAL")),
            ("authenticatePeer", json!(true)),
        ],
    ));
    // Sorted by name: `<access>-edge` before `<access>-inter-router`.
    let mut roles: Vec<(&LinkAccess, &String, u16)> = c
        .access
        .iter()
        .flat_map(|a| a.roles.iter().map(move |(r, p)| (a, r, *p)))
        .collect();
    roles.sort_by_key(|(a, r, _)| a.listener_name(r));
    {
        for (a, role, port) in roles {
            let mut attrs = vec![
                ("name", json!(a.listener_name(role))),
                ("role", json!(role)),
            ];
            if !a.bind_host.is_empty() {
                attrs.push(("host", json!(a.bind_host)));
            }
            attrs.extend([
                ("port", json!(port.to_string())),
                ("sslProfile", json!(a.cred)),
                ("saslMechanisms", json!("EXTERNAL")),
                ("authenticatePeer", json!(true)),
            ]);
            out.push(("listener", attrs));
        }
    }
    out.push((
        "address",
        vec![
            ("prefix", json!("mc")),
            ("distribution", json!("multicast")),
        ],
    ));

    out
}

/// The tcpConnector of connector `name`, with its entity name (the file
/// lists connectors in entity-name order).
fn connector_entity(name: &str, k: &ConnectorConfig) -> (String, Light) {
    let entity_name = format!("connector/{name}@{}", k.host);
    let mut a = vec![
        ("name", json!(entity_name)),
        ("address", json!(k.routing_key)),
        ("host", json!(k.host)),
        ("port", json!(k.port.to_string())),
    ];
    if let Some(tls) = &k.tls {
        let profile = if tls.use_client_cert {
            tls.credentials.clone()
        } else {
            format!("{}-profile", tls.credentials)
        };
        a.push(("sslProfile", json!(profile)));
        a.push(("verifyHostname", json!(tls.verify_hostname)));
    }
    (entity_name, ("tcpConnector", a))
}

fn listener_entity(name: &str, l: &ListenerConfig, profiles: &BTreeMap<String, Profile>) -> Light {
    let mut a = vec![
        ("name", json!(format!("listener/{name}"))),
        ("address", json!(l.routing_key)),
        ("host", json!(l.host)),
        ("port", json!(l.port.to_string())),
    ];
    if let Some(cred) = &l.tls_credentials {
        a.push(("sslProfile", json!(cred)));
        if profiles.get(cred).map(|p| p.ca).unwrap_or(false) {
            a.push(("authenticatePeer", json!(true)));
        }
    }
    if let Some(o) = &l.observer {
        a.push(("observer", json!(o)));
    }
    ("tcpListener", a)
}

/// The logs and the site.
fn tail_entities(c: &Config) -> Vec<Light> {
    let router_id = router_id(c.site_name, &c.identity.site_id);
    let mut out: Vec<Light> = Vec::new();
    out.push((
        "log",
        vec![
            ("module", json!("ROUTER_CORE")),
            ("enable", json!("error+")),
        ],
    ));
    out.push((
        "log",
        vec![
            ("module", json!("DEFAULT")),
            ("enable", json!(format!("{}+", c.site.router_logging))),
        ],
    ));
    out.push((
        "site",
        vec![
            ("name", json!(router_id)),
            ("namespace", json!(c.namespace)),
            ("platform", json!(c.platform.as_str())),
            ("version", json!(c.version)),
        ],
    ));
    out
}

/// The text of one entity as the file holds it, without the separator.
fn entity_text(out: &mut Vec<u8>, (kind, a): &Light) {
    out.extend_from_slice(b"    [\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\", {\n");
    for (j, (k, v)) in a.iter().enumerate() {
        out.extend_from_slice(b"        \"");
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\": ");
        // Writing a JSON value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, v);
        out.extend_from_slice(if j + 1 < a.len() { b",\n" } else { b"\n" });
    }
    out.extend_from_slice(b"    }]");
}

fn text_of(entity: &Light) -> String {
    let mut out = Vec::with_capacity(200);
    entity_text(&mut out, entity);
    String::from_utf8(out).unwrap_or_default()
}

/// The text of the tcpConnector of `name`, and the key it is ordered by.
pub fn connector_text(name: &str, k: &ConnectorConfig) -> (String, String) {
    let (order, entity) = connector_entity(name, k);
    (order, text_of(&entity))
}

/// The text of the tcpListener of `name`.
pub fn listener_text(
    name: &str,
    l: &ListenerConfig,
    profiles: &BTreeMap<String, Profile>,
) -> String {
    text_of(&listener_entity(name, l, profiles))
}

/// The file from the texts of its tcpConnectors (in entity-name order,
/// [`connector_text`]) and tcpListeners (in resource-name order,
/// [`listener_text`]).
pub fn render_with(c: &Config, connectors: &[&str], listeners: &[&str]) -> String {
    let head: Vec<String> = head_entities(c).iter().map(text_of).collect();
    let tail: Vec<String> = tail_entities(c).iter().map(text_of).collect();
    join(
        head.iter()
            .map(String::as_str)
            .chain(connectors.iter().copied())
            .chain(listeners.iter().copied())
            .chain(tail.iter().map(String::as_str)),
    )
}

/// Entity texts as the file holds them: a JSON array, one entity a block.
fn join<'t>(texts: impl Iterator<Item = &'t str> + Clone) -> String {
    let size: usize = texts.clone().map(|t| t.len() + 2).sum();
    let mut out = String::with_capacity(size + 8);
    out.push_str("[\n");
    for (i, t) in texts.enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str(t);
    }
    out.push_str("\n]\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    type Entity = (&'static str, Map<String, Value>);

    /// The file layout of router.md 9: `["type", {` then one attribute a line.
    fn format_entities(entities: &[Entity]) -> String {
        let mut out = String::from("[\n");
        for (i, (kind, a)) in entities.iter().enumerate() {
            out.push_str(&format!("    [{}, {{\n", Value::from(*kind)));
            let lines: Vec<String> = a
                .iter()
                .map(|(k, v)| format!("        {}: {}", Value::from(k.as_str()), v))
                .collect();
            out.push_str(&lines.join(",\n"));
            out.push_str("\n    }]");
            out.push_str(if i + 1 < entities.len() { ",\n" } else { "\n" });
        }
        out.push_str("]\n");
        out
    }

    #[test]
    fn the_fast_writer_matches_the_reference_layout() {
        use crate::plan::tests::{listener, Scenario};
        let mut s = Scenario::new();
        s.put("a.yaml", &listener("a\"q", "0.0.0.0", "8080"));
        s.put(
            "b.yaml",
            &listener("b", "::", "8081").replace(
                "port: 8081",
                "port: 8081\n  tlsCredentials: t\n  observer: none\n  routingKey: \"k\\u00e9\\t\"",
            ),
        );
        s.pass();
        let text = s.text("runtime/router/skrouterd.json");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let entities: Vec<(&'static str, serde_json::Map<String, serde_json::Value>)> = doc
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let kind: &'static str =
                    Box::leak(e[0].as_str().unwrap().to_string().into_boxed_str());
                (kind, e[1].as_object().unwrap().clone())
            })
            .collect();
        assert_eq!(format_entities(&entities), text);
    }
}
