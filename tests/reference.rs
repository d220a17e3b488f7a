//! What skupperd writes, checked against ground truth it did not write:
//! skupper-router's management schema (every `skrouterd.json` must load in
//! the real router) and Skupper's CRDs (every accepted runtime resource
//! must fit Skupper's own schema, every object closed). Runs over every
//! fixture namespace below.

use crate::support::*;
use reference_check::{reference_dir, Crds, RouterSchema};
use skupperd::certs::{MemoMint, Mint};
use std::path::Path;

const L: &str = "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n";
const C: &str = "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n";

/// A fixture: a name and a function that fills a namespace.
type Fixture = (&'static str, fn(&DataHome, &str));

fn tls_bundle(home: &DataHome, ns: &str, name: &str, host: &str, with_ca: bool) {
    let now = time::OffsetDateTime::now_utc();
    let mut mint = MemoMint::new(3);
    let ca = mint.issue_ca("fixture-ca", now).unwrap();
    let leaf = mint
        .issue_leaf(&ca, name, &[host.to_string()], now)
        .unwrap();
    home.write(ns, &format!("input/certs/{name}/tls.crt"), &leaf.cert_pem);
    let key = home.write(ns, &format!("input/certs/{name}/tls.key"), &leaf.key_pem);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    if with_ca {
        home.write(ns, &format!("input/certs/{name}/ca.crt"), &ca.cert_pem);
    }
}

fn fixtures() -> Vec<Fixture> {
    vec![
        ("sample", |home, ns| {
            home.sample(ns);
        }),
        ("everything-podman", |home, ns| {
            home.write(ns, "internal/platform.yaml", "platform: podman\n");
            home.write(ns, "input/resources/site.yaml", "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n  labels: {team: a}\nspec:\n  settings:\n    routerLogging: debug\n    routerDataConnections: \"4\"\n");
            home.write(
                ns,
                "input/resources/plain.yaml",
                &format!(
                    "{L}  name: backend\nspec:\n  host: 0.0.0.0\n  port: 8080\n  observer: none\n"
                ),
            );
            home.write(ns, "input/resources/web.yaml", &format!("{L}  name: web\n  annotations: {{owner: me}}\nspec:\n  routingKey: web-key\n  host: 0.0.0.0\n  port: 8443\n  tlsCredentials: web-tls\n  settings:\n    observer: http1\n"));
            tls_bundle(home, ns, "web-tls", "localhost", true);
            home.write(ns, "input/resources/gen.yaml", &format!("{L}  name: gen\nspec:\n  host: \"::\"\n  port: 9443\n  tlsCredentials: gen-tls\n  exposePodsByName: false\n"));
            home.write(
                ns,
                "input/resources/db.yaml",
                &format!("{C}  name: db\nspec:\n  host: 127.0.0.1\n  port: 5432\n"),
            );
            home.write(ns, "input/resources/dbtls.yaml", &format!("{C}  name: dbtls\nspec:\n  host: db.example.com\n  port: 5433\n  tlsCredentials: db-ca\n  verifyHostname: true\n"));
            tls_bundle(home, ns, "db-ca", "db.example.com", true);
            home.write(ns, "input/resources/mtls.yaml", &format!("{C}  name: mtls\nspec:\n  host: db.example.com\n  port: 5434\n  tlsCredentials: client-tls\n  useClientCert: true\n"));
            tls_bundle(home, ns, "client-tls", "client", true);
        }),
        ("edge-with-errors-linux", |home, ns| {
            home.write(ns, "internal/platform.yaml", "platform: linux\n");
            home.write(ns, "input/resources/site.yaml", "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: edge1\nspec:\n  edge: true\n");
            home.write(
                ns,
                "input/resources/ok.yaml",
                &listener("ok", "127.0.0.1", "8080"),
            );
            home.write(
                ns,
                "input/resources/bad.yaml",
                &format!("{L}  name: bad\nspec:\n  host: 0.0.0.0\n  port: lots\n  bogus: true\n"),
            );
            home.write(
                ns,
                "input/resources/clash.yaml",
                &listener("clash", "0.0.0.0", "8080"),
            );
            home.write(
                ns,
                "input/resources/multi.yaml",
                &format!(
                    "{}---\n{}---\n",
                    listener("m1", "127.0.0.2", "81"),
                    "kind: [oops\n"
                ),
            );
        }),
    ]
}

/// Renders the fixture, then edits one listener into an invalid version so
/// records with a last accepted version are covered too.
fn render_fixture(home: &DataHome, ns: &str, fill: fn(&DataHome, &str)) {
    fill(home, ns);
    let _ = skupperd().arg("render").arg(home.ns(ns)).assert();
    let ok = home.ns(ns).join("input/resources/ok.yaml");
    if ok.exists() {
        std::fs::write(&ok, listener("ok", "127.0.0.1", "99999")).unwrap();
        skupperd().arg("render").arg(home.ns(ns)).assert().code(1);
    }
}

#[test]
fn every_rendered_config_is_accepted_by_the_router_schema() {
    let schema =
        RouterSchema::load(&reference_dir()).expect("reference schema (../shared/reference)");
    for (name, fill) in fixtures() {
        let home = DataHome::new();
        render_fixture(&home, "west", fill);
        let text = home.read("west", "runtime/router/skrouterd.json");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let problems = schema.check_config(&doc);
        assert!(problems.is_empty(), "fixture {name}: {problems:#?}\n{text}");
    }
}

#[test]
fn every_accepted_runtime_resource_fits_skuppers_crds() {
    let crds = Crds::load(&reference_dir()).expect("reference CRDs (../shared/reference)");
    let mut checked = 0;
    for (name, fill) in fixtures() {
        let home = DataHome::new();
        render_fixture(&home, "west", fill);
        let dir = home.ns("west").join("runtime/resources");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.contains("skupperd.io/accepted-generation") {
                // Never valid: kept as given, exempt from the CRD check.
                assert!(text.contains("status: Error"), "{}", path.display());
                continue;
            }
            let problems = crds.validate_yaml(&text);
            assert!(
                problems.is_empty(),
                "fixture {name}, {}: {problems:#?}\n{text}",
                file_name(&path)
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} records checked");
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}
