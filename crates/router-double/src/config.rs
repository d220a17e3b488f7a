//! Reading a `skrouterd.json` the way the router does at start-up
//! (router.md 1.1), for the `skrouterd-double` binary.

use std::path::PathBuf;

use serde_json::Value;

use crate::rules::Entity;

/// The entities of a config document, in file order.
pub type ConfigEntities = Vec<(String, Entity)>;

/// Parses the document: lines whose first non-blank character is `#` are
/// dropped, the rest must be a JSON list of `[type, {attributes}]`.
pub fn parse(text: &str) -> Result<(Value, ConfigEntities), String> {
    let kept: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let doc: Value =
        serde_json::from_str(&kept).map_err(|e| format!("Cannot load configuration: {e}"))?;
    let items = doc
        .as_array()
        .ok_or("Cannot load configuration: expected a list of [type, attributes] pairs")?;
    let mut entities = Vec::new();
    for item in items {
        match item.as_array().map(Vec::as_slice) {
            Some([Value::String(t), Value::Object(attrs)]) => {
                entities.push((t.clone(), attrs.clone()))
            }
            _ => return Err(format!("Cannot load configuration: bad entry {item}")),
        }
    }
    Ok((doc, entities))
}

/// Where the management listener is and which files its TLS uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagementListener {
    pub port: u16,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

/// The `skupper-local-normal` listener and its sslProfile.
pub fn management_listener(entities: &ConfigEntities) -> Result<ManagementListener, String> {
    let find = |t: &str, name: &str| {
        entities
            .iter()
            .find(|(et, e)| et == t && e.get("name").and_then(Value::as_str) == Some(name))
            .map(|(_, e)| e)
    };
    let listener = find("listener", "skupper-local-normal").ok_or(
        "no listener named 'skupper-local-normal' (the double serves management only there)",
    )?;
    let port = match listener.get("port") {
        Some(Value::String(p)) => p.parse().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
    .ok_or("listener 'skupper-local-normal' has no numeric port")?;
    let profile_name = listener
        .get("sslProfile")
        .and_then(Value::as_str)
        .ok_or("listener 'skupper-local-normal' has no sslProfile")?;
    let profile = find("sslProfile", profile_name)
        .ok_or_else(|| format!("sslProfile '{profile_name}' not found"))?;
    let file = |attr: &str| {
        profile
            .get(attr)
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| format!("sslProfile '{profile_name}' has no {attr}"))
    };
    Ok(ManagementListener {
        port,
        cert_file: file("certFile")?,
        key_file: file("privateKeyFile")?,
        ca_file: file("caCertFile")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_dropped_and_pairs_read() {
        let text = "# generated\n[\n  [\"router\", {\"id\": \"a\"}],\n   # inner\n  [\"log\", {\"module\": \"DEFAULT\"}]\n]\n";
        let (_, entities) = parse(text).unwrap();
        assert_eq!(entities.len(), 2);
        assert_eq!(entities[1].0, "log");
    }

    #[test]
    fn a_document_that_is_not_a_list_of_pairs_is_refused() {
        assert!(parse("{\"router\": {}}").is_err());
        assert!(parse("[[\"router\"]]").is_err());
        assert!(parse("[[\"router\", {\"id\": \"a\"}").is_err());
    }

    #[test]
    fn the_management_listener_is_found_with_its_files() {
        let text = r#"[
            ["sslProfile", {"name": "skupper-local-server", "certFile": "/c/tls.crt",
                            "privateKeyFile": "/c/tls.key", "caCertFile": "/c/ca.crt"}],
            ["listener", {"name": "skupper-local-normal", "port": "5671",
                          "sslProfile": "skupper-local-server"}]
        ]"#;
        let (_, entities) = parse(text).unwrap();
        let m = management_listener(&entities).unwrap();
        assert_eq!(m.port, 5671);
        assert_eq!(m.key_file, PathBuf::from("/c/tls.key"));
    }
}
