//! Linking sites with the router double (its `connector` entities connect
//! and report `connectionStatus` as the real router does): two namespaces
//! under one `skupperd run`, east with link access, west given the link
//! file east wrote.

use crate::router_live::{double_binary, serial};
use crate::support::daemon::{eventually, resource_files, wait_record, Daemon, Start};
use crate::support::*;

const EAST: &str = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: east\nspec:\n  linkAccess: default\n";
const WEST: &str = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n";

fn two_namespaces() -> DataHome {
    let home = DataHome::new();
    for (ns, site) in [("east", EAST), ("west", WEST)] {
        home.write(ns, "internal/platform.yaml", "platform: linux\n");
        home.write(ns, "input/resources/site.yaml", site);
    }
    home
}

fn start(home: &DataHome) -> Daemon {
    let path = home.path().join("skupperd.toml");
    std::fs::write(
        &path,
        format!(
            "router_binary = \"{}\"\nrouter_poll_interval_ms = 200\n",
            double_binary().display()
        ),
    )
    .unwrap();
    Start::new(home)
        .arg("--config")
        .arg(path.to_string_lossy())
        .spawn()
}

fn read(home: &DataHome, ns: &str, rel: &str) -> Option<Vec<u8>> {
    std::fs::read(home.ns(ns).join(rel)).ok()
}

fn entity(home: &DataHome, ns: &str, kind: &str, name: &str) -> Option<serde_json::Value> {
    let config: serde_json::Value =
        serde_json::from_slice(&read(home, ns, "runtime/router/skrouterd.json")?).ok()?;
    config
        .as_array()?
        .iter()
        .find(|e| e[0] == kind && e[1]["name"] == name)
        .map(|e| e[1].clone())
}

/// The value of `key:` in a YAML text (the first one), unquoted.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}: ")))
        .map(|v| v.trim_matches('"').trim_matches('\''))
}

#[test]
fn a_link_file_dropped_into_a_second_namespace_links_it_and_stays_linked_across_restarts() {
    let _serial = serial();
    let home = two_namespaces();
    let port = crate::router_live::free_port();
    home.write(
        "west",
        "input/resources/l.yaml",
        &listener("backend", "127.0.0.1", &port.to_string()),
    );
    let mut d = start(&home);
    wait_record(&d, &home, "east", "Site", "east", "status: Ready");
    let ir = entity(&home, "east", "listener", "east-inter-router").expect("east-inter-router");
    let ir_port = ir["port"].as_str().unwrap().to_string();
    assert_eq!(ir["role"], "inter-router");
    assert_eq!(ir["sslProfile"], "east");
    assert_eq!(ir["authenticatePeer"], true);
    assert_eq!(ir["saslMechanisms"], "EXTERNAL");
    let edge = entity(&home, "east", "listener", "east-edge").expect("east-edge");
    let links_dir = home.ns("east").join("runtime/links");
    let link_path = links_dir.join("link-east-127.0.0.1.yaml");
    let link = eventually(
        "east's link file",
        || std::fs::read_to_string(&link_path).ok(),
        || d.log(),
    );
    assert_eq!(mode(&link_path), 0o600);
    assert_eq!(mode(&links_dir) & 0o077, 0, "runtime/links is private");

    // West: the link file as it is.
    home.write("west", "input/resources/link-east.yaml", &link);
    let status = wait_record(&d, &home, "west", "Link", "link-east", "status: Ready");
    assert!(status.contains("type: Operational"), "{status}");
    let c = entity(&home, "west", "connector", "link-east").expect("connector link-east");
    assert_eq!(c["role"], "inter-router");
    assert_eq!(c["host"], "127.0.0.1");
    assert_eq!(c["port"].as_str(), Some(ir_port.as_str()));
    assert_eq!(c["cost"], 1);
    assert_eq!(c["sslProfile"], "link-east-profile");
    // The Secret's files, decoded, are what the profile reads.
    let secret = link
        .split("---")
        .find(|d| d.contains("kind: Secret"))
        .unwrap();
    for f in ["ca.crt", "tls.crt", "tls.key"] {
        let b64 = field(secret, f).unwrap_or_else(|| panic!("{f} in the Secret"));
        let want = skupperd::resources::base64_decode(b64).unwrap();
        let got = read(
            &home,
            "west",
            &format!("runtime/certs/link-east-profile/{f}"),
        )
        .unwrap();
        assert_eq!(got, want, "{f}");
    }
    assert_eq!(
        mode(
            &home
                .ns("west")
                .join("runtime/certs/link-east-profile/tls.key")
        ),
        0o600
    );
    // No Secret is copied into runtime/resources (it holds a key).
    assert!(!resource_files(&home, "west")
        .iter()
        .any(|f| f.starts_with("Secret")));

    // Restarted, both namespaces come back on the same ports and files,
    // and link again.
    let east_config = read(&home, "east", "runtime/router/skrouterd.json").unwrap();
    let east_link = read(&home, "east", "runtime/links/link-east-127.0.0.1.yaml").unwrap();
    let east_identity = read(&home, "east", "runtime/identity.yaml").unwrap();
    d.stop();
    let d = start(&home);
    wait_record(&d, &home, "east", "Site", "east", "status: Ready");
    wait_record(&d, &home, "west", "Link", "link-east", "status: Ready");
    assert_eq!(
        read(&home, "east", "runtime/router/skrouterd.json").unwrap(),
        east_config
    );
    assert_eq!(
        read(&home, "east", "runtime/links/link-east-127.0.0.1.yaml").unwrap(),
        east_link
    );
    assert_eq!(
        read(&home, "east", "runtime/identity.yaml").unwrap(),
        east_identity
    );
    assert_eq!(entity(&home, "east", "listener", "east-edge"), Some(edge));

    // A Link to a port where nothing listens fails in the router's words;
    // the Listener of the namespace is untouched.
    let closed = crate::router_live::free_port();
    let broken = link.replace(
        &format!("port: \"{ir_port}\""),
        &format!("port: \"{closed}\""),
    );
    let before = entity(&home, "west", "tcpListener", "listener/backend");
    home.write("west", "input/resources/link-east.yaml", &broken);
    let status = wait_record(
        &d,
        &home,
        "west",
        "Link",
        "link-east",
        &format!("link to 127.0.0.1:{closed} failed: Connection to 127.0.0.1:{closed} failed: proton:io Connection refused"),
    );
    assert!(status.contains("status: Error"), "{status}");
    assert_eq!(
        entity(&home, "west", "tcpListener", "listener/backend"),
        before
    );
    assert_eq!(
        entity(&home, "west", "connector", "link-east").unwrap()["port"].as_str(),
        Some(closed.to_string().as_str())
    );
}

#[test]
fn bad_links_and_secrets_are_reported_with_their_place_and_change_nothing_else() {
    let _serial = serial();
    let home = two_namespaces();
    let d = start(&home);
    let link_path = home
        .ns("east")
        .join("runtime/links/link-east-127.0.0.1.yaml");
    let link = eventually(
        "east's link file",
        || std::fs::read_to_string(&link_path).ok(),
        || d.log(),
    );
    let port = crate::router_live::free_port();
    home.write(
        "west",
        "input/resources/l.yaml",
        &listener("backend", "127.0.0.1", &port.to_string()),
    );
    wait_record(
        &d,
        &home,
        "west",
        "Listener",
        "backend",
        "No matching connectors",
    );
    let config = read(&home, "west", "runtime/router/skrouterd.json").unwrap();
    // The Secret without its CA.
    let no_ca: String = link
        .lines()
        .filter(|l| !l.trim_start().starts_with("ca.crt:"))
        .map(|l| format!("{l}\n"))
        .collect();
    home.write("west", "input/resources/link-east.yaml", &no_ca);
    let status = wait_record(
        &d,
        &home,
        "west",
        "Link",
        "link-east",
        "secret \"link-east\": data[\"ca.crt\"] is missing (needed by link \"link-east\") (input/resources/link-east.yaml:",
    );
    assert!(status.contains("status: Error"), "{status}");
    let summary = String::from_utf8(read(&home, "west", "runtime/status.yaml").unwrap()).unwrap();
    assert!(
        summary.contains("file: input/resources/link-east.yaml"),
        "{summary}"
    );
    // Nothing else changed: the router config is as before.
    assert_eq!(
        read(&home, "west", "runtime/router/skrouterd.json").unwrap(),
        config
    );
}

#[test]
fn the_hello_world_samples_link_as_the_readme_says() {
    let _serial = serial();
    let home = DataHome::new();
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sites");
    for ns in ["hello-world-east", "hello-world-west"] {
        copy_tree(&samples.join(ns), &home.path().join("namespaces").join(ns));
    }
    let d = start(&home);
    let link_path = home
        .ns("hello-world-east")
        .join("runtime/links/link-east-127.0.0.1.yaml");
    let link = eventually(
        "east's link file",
        || std::fs::read_to_string(&link_path).ok(),
        || d.log(),
    );
    home.write("hello-world-west", "input/resources/link-east.yaml", &link);
    wait_record(
        &d,
        &home,
        "hello-world-west",
        "Link",
        "link-east",
        "status: Ready",
    );
    let east = wait_record(
        &d,
        &home,
        "hello-world-east",
        "Site",
        "east",
        "type: Resolved",
    );
    assert!(east.contains("name: east-inter-router"), "{east}");
    for ns in ["hello-world-east", "hello-world-west"] {
        let summary = String::from_utf8(read(&home, ns, "runtime/status.yaml").unwrap()).unwrap();
        assert!(summary.contains("problems: []"), "{ns}: {summary}");
    }
}
