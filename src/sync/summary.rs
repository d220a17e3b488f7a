//! The two ends of a plan: rendered config entities in (with certificate
//! paths as the router sees them over management, router.md 1.4), and one
//! line per operation out, for logs and status files.

use super::{Entity, Op};
use crate::plan::Platform;
use serde_json::{Map, Value};

/// The variable the container's launch script expands in `skrouterd.json`.
const BASE_PATH_VAR: &str = "${SSL_PROFILE_BASE_PATH}";
/// Its value inside the router container; nothing expands it over
/// management, so requests carry the expanded path.
pub const CONTAINER_BASE_PATH: &str = "/etc/skupper-router";

/// The entities of a rendered `skrouterd.json` as the entities
/// to compare with a live router: on podman and docker the certificate
/// paths of sslProfiles get the container's base path; on linux they are
/// already absolute host paths. Other entity types pass through unchanged
/// ([`super::plan`] ignores those it does not manage).
pub fn management_entities(
    rendered: Vec<(String, Map<String, Value>)>,
    platform: Platform,
) -> Vec<Entity> {
    rendered
        .into_iter()
        .map(|(kind, attrs)| management_entity(kind, attrs, platform))
        .collect()
}

fn management_entity(kind: String, mut attrs: Map<String, Value>, platform: Platform) -> Entity {
    if kind == super::compare::SSL_PROFILE && platform != Platform::Linux {
        for value in attrs.values_mut() {
            if let Value::String(s) = value {
                if let Some(rest) = s.strip_prefix(BASE_PATH_VAR) {
                    *s = format!("{CONTAINER_BASE_PATH}{rest}");
                }
            }
        }
    }
    Entity { kind, attrs }
}

/// One line per operation: `create tcpListener listener/backend`,
/// `update sslProfile web-tls (ordinal 2)`, `delete connector west`.
pub fn summarize(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Op::Create(e) => format!("create {} {}", e.kind, op.name()),
            Op::Delete { kind, name } => format!("delete {kind} {name}"),
            Op::Update { kind, name, attrs } => {
                let changes: Vec<String> = attrs
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k} {s}"),
                        other => format!("{k} {other}"),
                    })
                    .collect();
                format!("update {kind} {name} ({})", changes.join(", "))
            }
        })
        .collect()
}
