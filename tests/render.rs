//! `skupperd render`: one reconcile to files.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;

fn render(home: &DataHome, ns: &str) -> assert_cmd::assert::Assert {
    skupperd().arg("render").arg(home.ns(ns)).assert()
}

#[test]
fn render_of_the_sample_writes_config_credentials_and_status() {
    let home = DataHome::new();
    home.sample("west");
    render(&home, "west").code(0);
    let config: serde_json::Value =
        serde_json::from_str(&home.read("west", "runtime/router/skrouterd.json")).unwrap();
    let tl = config
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e[0] == "tcpListener")
        .unwrap();
    assert_eq!(tl[1]["name"], "listener/backend");
    assert_eq!(tl[1]["host"], "127.0.0.1");
    // linux platform: absolute certificate paths that exist.
    let profile = config
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e[0] == "sslProfile")
        .unwrap();
    for key in ["caCertFile", "certFile", "privateKeyFile"] {
        let path = profile[1][key].as_str().unwrap();
        assert!(std::path::Path::new(path).is_file(), "{key}: {path}");
    }
    let ns = home.ns("west");
    for dir in [
        "runtime/certs/skupper-local-server",
        "runtime/certs/skupper-local-client",
        "runtime/issuers/skupper-local-ca",
    ] {
        assert_eq!(mode(&ns.join(dir)), 0o700, "{dir}");
        assert_eq!(mode(&ns.join(dir).join("tls.key")), 0o600, "{dir}");
        assert_eq!(mode(&ns.join(dir).join("tls.crt")), 0o644, "{dir}");
    }
    let listener = home.read("west", "runtime/resources/Listener-backend.yaml");
    assert!(
        listener.contains("message: router not reachable"),
        "{listener}"
    );
    let status = home.read("west", "runtime/status.yaml");
    assert!(status.contains("kind: NamespaceStatus"), "{status}");
}

#[test]
fn a_second_render_touches_no_file() {
    let home = DataHome::new();
    home.sample("west");
    render(&home, "west").code(0);
    let before = snapshot(home.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    render(&home, "west").code(0);
    assert_eq!(
        before,
        snapshot(home.path()),
        "bytes, modes and mtimes unchanged"
    );
}

#[test]
fn render_never_touches_input() {
    let home = DataHome::new();
    let ns = home.sample("west");
    home.write("west", "input/resources/bad.yaml", "kind: [");
    home.write("west", "input/certs/web/tls.crt", "not a cert");
    let input_before = snapshot(&ns.join("input"));
    render(&home, "west").code(1);
    assert_eq!(input_before, snapshot(&ns.join("input")));
}

#[test]
fn last_accepted_version_survives_a_fresh_process() {
    let home = DataHome::new();
    home.sample("west");
    render(&home, "west").code(0);
    home.write(
        "west",
        "input/resources/Listener-backend.yaml",
        &listener("backend", "127.0.0.1", "70000"),
    );
    render(&home, "west").code(1);
    render(&home, "west").code(1);
    let config = home.read("west", "runtime/router/skrouterd.json");
    assert!(config.contains("\"port\": \"8080\""), "{config}");
    let record = home.read("west", "runtime/resources/Listener-backend.yaml");
    assert!(record.contains("status: Error"), "{record}");
    assert!(record.contains("still serving generation 1"), "{record}");
}

#[test]
fn render_refuses_while_the_lock_is_held() {
    let home = DataHome::new();
    home.sample("west");
    let lock = std::fs::File::create(home.path().join("namespaces/controller.lock")).unwrap();
    lock.try_lock().unwrap();
    let out = render(&home, "west").code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("another skupperd or skupper controller holds")
            && err.contains("controller.lock"),
        "{err}"
    );
    assert!(!home.ns("west").join("runtime").exists());
}

#[test]
fn namespaces_of_one_data_home_get_distinct_management_ports() {
    let home = DataHome::new();
    home.sample("west");
    home.sample("east");
    render(&home, "west").code(0);
    render(&home, "east").code(0);
    let port = |ns: &str| {
        let cfg: serde_json::Value =
            serde_json::from_str(&home.read(ns, "runtime/router/skrouterd.json")).unwrap();
        cfg.as_array()
            .unwrap()
            .iter()
            .find(|e| e[1]["name"] == "skupper-local-normal")
            .map(|e| e[1]["port"].as_str().unwrap().to_string())
            .unwrap()
    };
    // West's router is not running, yet its recorded port is not reused.
    assert_ne!(port("west"), port("east"));
    // And it is kept across renders.
    let west = port("west");
    render(&home, "west").code(0);
    assert_eq!(port("west"), west);
}

#[test]
fn a_port_in_use_is_skipped_when_choosing() {
    let home = DataHome::new();
    home.sample("west");
    // Hold whatever the first free port from 5671 is.
    let held = (5671..6000)
        .find_map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
        .unwrap();
    let held_port = held.local_addr().unwrap().port();
    render(&home, "west").code(0);
    let cfg = home.read("west", "runtime/router/skrouterd.json");
    assert!(
        !cfg.contains(&format!("\"port\": \"{held_port}\"")),
        "{cfg}"
    );
}

#[test]
fn removing_the_listener_removes_its_runtime_files() {
    let home = DataHome::new();
    home.sample("west");
    home.write(
        "west",
        "input/resources/web.yaml",
        &format!(
            "{}  tlsCredentials: web\n",
            listener("web", "0.0.0.0", "8443")
        ),
    );
    render(&home, "west").code(0);
    assert!(home.ns("west").join("runtime/certs/web/tls.crt").is_file());
    std::fs::remove_file(home.ns("west").join("input/resources/web.yaml")).unwrap();
    home.write(
        "west",
        "runtime/resources/ConfigMap-skupper-network-status.yaml",
        "kept: true\n",
    );
    render(&home, "west").code(0);
    assert!(!home.ns("west").join("runtime/certs/web").exists());
    assert!(!home
        .ns("west")
        .join("runtime/resources/Listener-web.yaml")
        .exists());
    assert!(home
        .ns("west")
        .join("runtime/resources/ConfigMap-skupper-network-status.yaml")
        .is_file());
}

#[test]
fn an_unreadable_input_directory_fails_render_and_check_and_keeps_the_outputs() {
    let home = DataHome::new();
    let ns = home.sample("west");
    render(&home, "west").code(0);
    let before = snapshot(&ns.join("runtime"));
    assert!(before.keys().any(|p| p.ends_with("Listener-backend.yaml")));
    // A file where the directory should be: listing it fails (ENOTDIR), the
    // same way an unreadable directory does for a non-root user.
    std::fs::remove_dir_all(ns.join("input/resources")).unwrap();
    std::fs::write(ns.join("input/resources"), "not a directory").unwrap();
    for command in ["render", "check"] {
        let out = skupperd().arg(command).arg(&ns).assert().code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(
            stderr.contains("cannot read") && stderr.contains("input/resources"),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("Not a directory"), "{command}: {stderr}");
    }
    assert_eq!(before, snapshot(&ns.join("runtime")));
}

#[test]
fn a_symlinked_key_outside_the_namespace_is_refused() {
    let home = DataHome::new();
    home.sample("west");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("tls.key"), "secret").unwrap();
    std::fs::set_permissions(
        outside.path().join("tls.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    home.write("west", "input/certs/web/tls.crt", "x");
    std::os::unix::fs::symlink(
        outside.path().join("tls.key"),
        home.ns("west").join("input/certs/web/tls.key"),
    )
    .unwrap();
    home.write(
        "west",
        "input/resources/web.yaml",
        &format!(
            "{}  tlsCredentials: web\n",
            listener("web", "0.0.0.0", "8443")
        ),
    );
    let out = render(&home, "west").code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains(
            "input/certs/web/tls.key is a symbolic link that leaves the namespace; refused"
        ),
        "{text}"
    );
}

#[test]
fn a_user_issuer_signs_generated_certificates_and_status_names_them() {
    use skupperd::certs::{leaf_info, MemoMint, Mint};
    let home = DataHome::new();
    home.sample("west");
    home.write(
        "west",
        "input/resources/gen.yaml",
        &format!(
            "{}  tlsCredentials: gen-tls\n",
            listener("gen", "127.0.0.1", "9443")
        ),
    );
    let now = time::OffsetDateTime::now_utc();
    let ca = MemoMint::new(41)
        .issue_ca("Example Services CA", now)
        .unwrap();
    home.write(
        "west",
        "input/issuers/skupper-service-ca/tls.crt",
        &ca.cert_pem,
    );
    let key = home.write(
        "west",
        "input/issuers/skupper-service-ca/tls.key",
        &ca.key_pem,
    );
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    render(&home, "west").code(0);
    assert_eq!(
        home.read("west", "runtime/certs/gen-tls/ca.crt"),
        ca.cert_pem
    );
    let served = home.read("west", "runtime/certs/gen-tls/tls.crt");
    let serial = leaf_info(served.as_bytes()).unwrap().serial;
    let record = home.read("west", "runtime/resources/Listener-gen.yaml");
    assert!(
        record.contains(&format!("skupperd.io/certificate: '{{\"profile\":\"gen-tls\",\"file\":\"runtime/certs/gen-tls/tls.crt\",\"subject\":\"CN=gen-tls\",\"serial\":\"{serial}\"")),
        "{record}"
    );
    let status = home.read("west", "runtime/status.yaml");
    assert!(
        status.contains(&format!("- profile: gen-tls\n  file: runtime/certs/gen-tls/tls.crt\n  subject: \"CN=gen-tls\"\n  serial: \"{serial}\"\n")),
        "{status}"
    );

    // A key that is not the CA's: `check` says so, and `render` keeps the
    // certificate it made.
    let other = MemoMint::new(42).issue_ca("Other", now).unwrap();
    home.write(
        "west",
        "input/issuers/skupper-service-ca/tls.key",
        &other.key_pem,
    );
    let out = skupperd()
        .arg("check")
        .arg(home.ns("west"))
        .assert()
        .code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains("error: issuer \"skupper-service-ca\": input/issuers/skupper-service-ca/tls.key: tls.key does not match tls.crt"),
        "{text}"
    );
    render(&home, "west").code(1);
    assert_eq!(home.read("west", "runtime/certs/gen-tls/tls.crt"), served);
}

#[test]
fn status_prints_the_listener_table() {
    let home = DataHome::new();
    home.sample("west");
    render(&home, "west").code(0);
    let out = skupperd()
        .args(["status", "--data-home"])
        .arg(home.path())
        .assert()
        .code(0);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains(
            "NAME     STATUS   ROUTING-KEY  HOST       PORT  MATCHING-CONNECTOR  MESSAGE"
        ),
        "{text}"
    );
    assert!(text.contains("backend  Pending  backend      127.0.0.1  8080  false               router not reachable"), "{text}");
}
