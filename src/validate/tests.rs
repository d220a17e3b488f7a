//! Every validation rule of resources.md 1-3 with its exact message.

use crate::plan::tests::{listener, Scenario};
use crate::problem::Severity;

const L: &str =
    "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: backend\nspec:\n";
const C: &str = "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n  name: db\nspec:\n";
const S: &str = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\nspec:\n";

/// The problems of a namespace holding the Site and `doc`.
fn problems(doc: &str) -> Vec<(Severity, String)> {
    let mut s = Scenario::new();
    if doc.contains("kind: Site") {
        s.remove("Site-west.yaml");
    }
    s.put("r.yaml", doc);
    s.outcome()
        .problems
        .into_iter()
        .map(|p| (p.severity, p.message))
        .collect()
}

fn assert_has(doc: &str, severity: Severity, message: &str) {
    let found = problems(doc);
    assert!(
        found.iter().any(|(s, m)| *s == severity && m == message),
        "expected {severity:?} {message:?}\nin {found:#?}\nfor\n{doc}"
    );
}

fn err(body: &str, message: &str) {
    assert_has(&format!("{L}{body}"), Severity::Error, message);
}

#[test]
fn control_characters_from_the_input_are_shown_escaped() {
    // YAML's own escapes put a NUL and an ESC into the host.
    let found = problems(&format!("{L}  host: \"a\\0b\\e[2Jc\"\n  port: 8080\n"));
    assert_eq!(
        found,
        vec![(
            Severity::Error,
            "listener \"backend\": spec.host \"a\\0b\\u{1b}[2Jc\" is not an IP address or a lower-case DNS name (a-z, 0-9, '-' and '.', at most 253 characters)".to_string()
        )]
    );
    let found = problems(&format!(
        "{L}  host: a\n  port: 8080\n  routingKey: \"k\\x07\"\n"
    ));
    assert!(
        found.iter().any(|(_, m)| m == "listener \"backend\": spec.routingKey \"k\\u{7}\" contains whitespace or control characters"),
        "{found:?}"
    );
}

#[test]
fn listener_rules() {
    err("  port: 8080\n", "listener \"backend\": spec.host is required; use 0.0.0.0 to listen on all interfaces or 127.0.0.1 for this host only");
    err(
        "  host: 0.0.0.0\n",
        "listener \"backend\": spec.port is required (1-65535)",
    );
    err(
        "  host: 0.0.0.0\n  port: 70000\n",
        "listener \"backend\": spec.port 70000 is out of range 1-65535",
    );
    err(
        "  host: 0.0.0.0\n  port: -1\n",
        "listener \"backend\": spec.port -1 is out of range 1-65535",
    );
    err("  host: Backend\n  port: 80\n", "listener \"backend\": spec.host \"Backend\" is not an IP address or a lower-case DNS name (a-z, 0-9, '-' and '.', at most 253 characters)");
    err("  host: a\n  port: 80\n  routingKey: \"\"\n", "listener \"backend\": spec.routingKey must not be empty (omit it to use the listener name)");
    err(
        "  host: a\n  port: 80\n  routingKey: \"a b\"\n",
        "listener \"backend\": spec.routingKey \"a b\" contains whitespace or control characters",
    );
    err(
        &format!("  host: a\n  port: 80\n  routingKey: {}\n", "k".repeat(254)),
        "listener \"backend\": spec.routingKey is 254 bytes long; the limit is 253",
    );
    err(
        "  host: a\n  port: 80\n  type: udp\n",
        "listener \"backend\": spec.type \"udp\" is not supported; only \"tcp\" is",
    );
    err(
        "  host: a\n  port: 80\n  observer: http3\n",
        "listener \"backend\": spec.observer \"http3\" is not one of auto, none, http1, http2",
    );
    err("  host: a\n  port: 80\n  settings:\n    observer: http3\n", "listener \"backend\": spec.settings.observer \"http3\" is not one of auto, none, http1, http2");
    err("  host: a\n  port: 80\n  observer: http1\n  settings:\n    observer: http2\n", "listener \"backend\": spec.observer \"http1\" and spec.settings.observer \"http2\" disagree; set only one");
    err("  host: a\n  port: 80\n  tlsCredentials: ../etc\n", "listener \"backend\": spec.tlsCredentials \"../etc\" must be an RFC 1123 name (a-z, 0-9, '-' and '.', at most 253 characters, no '/')");
    err("  host: a\n  port: 80\n  tlsCredentials: skupper-local-server\n", "listener \"backend\": spec.tlsCredentials \"skupper-local-server\" is reserved for skupperd's own certificates");
    err("  host: a\n  port: 80\n  tlsCredentials: skupper-service-ca\n", "listener \"backend\": spec.tlsCredentials \"skupper-service-ca\" names a CA; use a certificate bundle name");
    assert_has(
        &format!("{L}  host: a\n  port: 80\n  exposePodsByName: true\n"),
        Severity::Warning,
        "listener \"backend\": spec.exposePodsByName has no effect on local sites",
    );
    assert_has(
        &format!("{L}  host: a\n  port: 80\n  settings:\n    color: blue\n"),
        Severity::Warning,
        "listener \"backend\": spec.settings.color: unknown setting, ignored",
    );
}

#[test]
fn matching_observers_in_both_places_are_fine() {
    let doc =
        format!("{L}  host: a\n  port: 80\n  observer: http1\n  settings:\n    observer: http1\n");
    assert!(problems(&doc).is_empty());
}

#[test]
fn names_must_be_labels() {
    assert_has(
        &listener("Back_end", "a", "80"),
        Severity::Error,
        "listener \"Back_end\": metadata.name must be an RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit, at most 63 characters)",
    );
}

#[test]
fn connector_rules() {
    let c = |body: &str, sev: Severity, msg: &str| assert_has(&format!("{C}{body}"), sev, msg);
    c("  port: 5432\n", Severity::Error, "connector \"db\": spec.host is required on local sites (spec.selector only works on Kubernetes)");
    c(
        "  host: db\n  port: 5432\n  selector: app=db\n",
        Severity::Warning,
        "connector \"db\": spec.selector has no effect on local sites",
    );
    c(
        "  host: db\n  port: 5432\n  useClientCert: true\n",
        Severity::Warning,
        "connector \"db\": spec.useClientCert has no effect without spec.tlsCredentials",
    );
    c(
        "  host: db\n  port: 5432\n  verifyHostname: true\n",
        Severity::Warning,
        "connector \"db\": spec.verifyHostname has no effect without spec.tlsCredentials",
    );
    c("  host: db\n  port: 5432\n  tlsCredentials: db-tls\n", Severity::Error, "connector \"db\": input/certs/db-tls/ does not exist; put the CA that signed the server's certificate in input/certs/db-tls/ca.crt");
    c(
        "  host: db\n  port: 5432\n  includeNotReadyPods: true\n",
        Severity::Warning,
        "connector \"db\": spec.includeNotReadyPods has no effect on local sites",
    );
    c(
        "  host: db\n  port: 5432\n  settings:\n    x: y\n",
        Severity::Warning,
        "connector \"db\": spec.settings.x: unknown setting, ignored",
    );
}

#[test]
fn site_rules() {
    let s = |body: &str, sev: Severity, msg: &str| assert_has(&format!("{S}{body}"), sev, msg);
    s(
        "  linkAccess: bogus\n",
        Severity::Error,
        "site \"west\": spec.linkAccess \"bogus\" is not supported; use \"default\" or \"none\"",
    );
    s(
        "  linkAccess: route\n",
        Severity::Warning,
        "site \"west\": spec.linkAccess \"route\" is Kubernetes-only; local sites use \"default\"",
    );
    s("  linkAccess: default\n  edge: true\n", Severity::Error, "site \"west\": spec.linkAccess \"default\" cannot be used with spec.edge: true (edge sites do not accept links)");
    s(
        "  ha: true\n  edge: true\n",
        Severity::Error,
        "site \"west\": spec.ha cannot be used with spec.edge (edge sites cannot have HA)",
    );
    s(
        "  ha: true\n",
        Severity::Warning,
        "site \"west\": spec.ha has no effect on local sites",
    );
    s(
        "  serviceAccount: x\n",
        Severity::Warning,
        "site \"west\": spec.serviceAccount has no effect on local sites",
    );
    s("  settings:\n    routerLogging: loud\n", Severity::Error, "site \"west\": spec.settings.routerLogging \"loud\" is not one of info, warning, error, debug");
    s("  settings:\n    routerDataConnections: \"0\"\n", Severity::Error, "site \"west\": spec.settings.routerDataConnections \"0\" is not \"auto\" or a positive integer");
    s(
        "  settings:\n    flavour: x\n",
        Severity::Warning,
        "site \"west\": spec.settings.flavour: unknown setting, ignored",
    );
}

#[test]
fn warnings_alone_still_configure() {
    let mut s = Scenario::new();
    s.put(
        "r.yaml",
        &format!("{L}  host: a\n  port: 80\n  exposePodsByName: true\n"),
    );
    s.pass();
    assert!(s.entity("tcpListener", "listener/backend").is_some());
}

mod bundles {
    use super::*;
    use crate::certs::{FileBytes, MemoMint, Mint};
    use crate::validate::{FileRefusal, InputBundle};

    fn bundle(files: &[(&str, &str)]) -> InputBundle {
        InputBundle {
            refused: None,
            files: files
                .iter()
                .map(|(n, t)| {
                    let mode = if n.ends_with(".key") { 0o600 } else { 0o644 };
                    (
                        n.to_string(),
                        Ok(FileBytes {
                            bytes: t.as_bytes().to_vec(),
                            mode,
                        }),
                    )
                })
                .collect(),
        }
    }

    fn server_cert(host: &str) -> (String, String, String) {
        let mut mint = MemoMint::new(7);
        let ca = mint.issue_ca("test-ca", crate::plan::tests::NOW).unwrap();
        let leaf = mint
            .issue_leaf(&ca, "web", &[host.to_string()], crate::plan::tests::NOW)
            .unwrap();
        (leaf.cert_pem, leaf.key_pem, ca.cert_pem)
    }

    fn scenario(doc: &str, name: &str, b: InputBundle) -> Scenario {
        let mut s = Scenario::new();
        s.certs.bundles.insert(name.to_string(), b);
        s.put("r.yaml", doc);
        s
    }

    fn messages(s: &Scenario) -> Vec<String> {
        s.outcome()
            .problems
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn a_listener_bundle_with_ca_requires_client_certificates() {
        let (crt, key, ca) = server_cert("a");
        let doc = format!("{L}  host: a\n  port: 8443\n  tlsCredentials: web\n");
        let mut s = scenario(
            &doc,
            "web",
            bundle(&[("tls.crt", &crt), ("tls.key", &key), ("ca.crt", &ca)]),
        );
        let out = s.pass();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let tl = s.entity("tcpListener", "listener/backend").unwrap();
        assert_eq!(tl["authenticatePeer"], true);
        assert!(s
            .entity("sslProfile", "web")
            .unwrap()
            .get("caCertFile")
            .is_some());
        assert_eq!(s.text("runtime/certs/web/tls.crt"), crt);
    }

    #[test]
    fn a_listener_bundle_without_a_key_is_an_error_naming_the_file() {
        let (crt, _, _) = server_cert("a");
        let doc = format!("{L}  host: a\n  port: 8443\n  tlsCredentials: web\n");
        let s = scenario(&doc, "web", bundle(&[("tls.crt", &crt)]));
        assert!(messages(&s)
            .contains(&"listener \"backend\": input/certs/web/tls.key is missing".to_string()));
    }

    #[test]
    fn a_symlink_leaving_the_namespace_is_refused() {
        let mut b = InputBundle::default();
        b.files
            .insert("tls.crt".into(), Err(FileRefusal::SymlinkLeavesNamespace));
        let doc = format!("{L}  host: a\n  port: 8443\n  tlsCredentials: web\n");
        let s = scenario(&doc, "web", b);
        assert!(messages(&s).contains(&"listener \"backend\": input/certs/web/tls.crt is a symbolic link that leaves the namespace; refused".to_string()));
    }

    #[test]
    fn a_connector_needs_the_ca_and_client_files_when_asked() {
        let (crt, key, _) = server_cert("db");
        let doc = format!(
            "{C}  host: db\n  port: 5432\n  tlsCredentials: db-tls\n  useClientCert: true\n"
        );
        let s = scenario(
            &doc,
            "db-tls",
            bundle(&[("tls.crt", &crt), ("tls.key", &key)]),
        );
        assert!(messages(&s).contains(&"connector \"db\": input/certs/db-tls/ca.crt is missing; it is needed to verify the server".to_string()));
        let (_, _, ca) = server_cert("db");
        let s = scenario(&doc, "db-tls", bundle(&[("ca.crt", &ca)]));
        assert!(messages(&s).contains(&"connector \"db\": spec.useClientCert is true but input/certs/db-tls/tls.crt and tls.key are missing".to_string()));
    }

    #[test]
    fn a_connector_without_client_cert_uses_a_ca_only_profile() {
        let (_, _, ca) = server_cert("db");
        let doc = format!(
            "{C}  host: db\n  port: 5432\n  tlsCredentials: db-tls\n  verifyHostname: true\n"
        );
        let mut s = scenario(&doc, "db-tls", bundle(&[("ca.crt", &ca)]));
        let out = s.pass();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let profile = s.entity("sslProfile", "db-tls-profile").unwrap();
        assert!(profile.get("certFile").is_none());
        assert_eq!(s.text("runtime/certs/db-tls-profile/ca.crt"), ca);
        let tc = s.entity("tcpConnector", "connector/db@db").unwrap();
        assert_eq!(tc["sslProfile"], "db-tls-profile");
        assert_eq!(tc["verifyHostname"], true);
    }

    #[test]
    fn a_bundle_that_breaks_keeps_its_last_accepted_copy() {
        let (crt, key, _) = server_cert("a");
        let doc = format!("{L}  host: a\n  port: 8443\n  tlsCredentials: web\n");
        let mut s = scenario(&doc, "web", bundle(&[("tls.crt", &crt), ("tls.key", &key)]));
        s.pass();
        s.certs.bundles.insert(
            "web".into(),
            bundle(&[("tls.crt", "garbage"), ("tls.key", &key)]),
        );
        let out = s.pass();
        assert_eq!(
            s.text("runtime/certs/web/tls.crt"),
            crt,
            "the last good copy stays"
        );
        assert!(s.entity("tcpListener", "listener/backend").is_some());
        let r = out.resources.iter().find(|r| r.name == "backend").unwrap();
        assert!(
            r.message.contains("is not a PEM certificate"),
            "{}",
            r.message
        );
        assert!(
            r.message.ends_with("still serving generation 1"),
            "{}",
            r.message
        );
    }

    fn warnings(s: &Scenario) -> Vec<(Option<String>, String)> {
        s.outcome()
            .problems
            .into_iter()
            .filter(|p| !p.is_error())
            .map(|p| (p.file, p.message))
            .collect()
    }

    const LOOP: &str = "Too many levels of symbolic links (os error 40)";

    #[test]
    fn a_bundle_that_cannot_be_read_is_an_error_of_its_users_only() {
        let doc = format!("{L}  host: a\n  port: 8443\n  tlsCredentials: loop\n");
        let mut s = scenario(
            &doc,
            "loop",
            InputBundle::refused(FileRefusal::Unreadable(LOOP.into())),
        );
        s.put("other.yaml", &listener("other", "0.0.0.0", "9090"));
        let out = s.pass();
        let errors: Vec<_> = out.problems.iter().filter(|p| p.is_error()).collect();
        assert_eq!(errors.len(), 1, "{:?}", out.problems);
        assert_eq!(
            errors[0].message,
            format!("listener \"backend\": input/certs/loop cannot be read: {LOOP}")
        );
        assert_eq!(errors[0].field.as_deref(), Some("spec.tlsCredentials"));
        let r = out.resources.iter().find(|r| r.name == "backend").unwrap();
        assert_eq!(r.status, crate::status::Phase::Error);
        assert!(
            r.message.contains("input/certs/loop cannot be read"),
            "{}",
            r.message
        );
        // Nothing was generated in the bundle's place; the other listener
        // is configured as ever.
        assert!(s.entity("tcpListener", "listener/backend").is_none());
        assert!(!s.runtime.contains_key("runtime/certs/loop/tls.crt"));
        assert!(s.entity("tcpListener", "listener/other").is_some());
    }

    #[test]
    fn what_no_resource_needs_is_a_warning_naming_its_path() {
        let mut b = InputBundle::default();
        b.files
            .insert("tls.crt".into(), Err(FileRefusal::NotRegular("a FIFO")));
        let mut s = Scenario::new();
        s.certs.bundles.insert("web".into(), b);
        s.certs.bundles.insert(
            "loop".into(),
            InputBundle::refused(FileRefusal::Unreadable(LOOP.into())),
        );
        s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
        let out = s.pass();
        assert!(
            out.problems.iter().all(|p| !p.is_error()),
            "{:?}",
            out.problems
        );
        assert_eq!(
            warnings(&s),
            vec![
                (
                    Some("input/certs/loop".to_string()),
                    format!("input/certs/loop cannot be read, ignored: {LOOP}")
                ),
                (
                    Some("input/certs/web/tls.crt".to_string()),
                    "input/certs/web/tls.crt is a FIFO: not a regular file, ignored".to_string()
                ),
            ]
        );
        assert!(s.entity("tcpListener", "listener/backend").is_some());
        assert!(s
            .text("runtime/status.yaml")
            .contains("not a regular file, ignored"));
    }

    #[test]
    fn a_fifo_in_a_bundle_a_listener_uses_is_its_error() {
        let (_, key, _) = server_cert("a");
        let doc = format!("{L}  host: a\n  port: 8443\n  tlsCredentials: web\n");
        let mut b = bundle(&[("tls.key", &key)]);
        b.files
            .insert("tls.crt".into(), Err(FileRefusal::NotRegular("a FIFO")));
        let s = scenario(&doc, "web", b);
        assert!(messages(&s).contains(
            &"listener \"backend\": input/certs/web/tls.crt is a FIFO: not a regular file, refused"
                .to_string()
        ));
        assert_eq!(warnings(&s), vec![]);
    }

    #[test]
    fn an_unlistable_input_certs_fails_only_resources_naming_credentials() {
        let doc = format!("{L}  host: a\n  port: 8443\n  tlsCredentials: web\n");
        let mut s = scenario(&doc, "unused", InputBundle::default());
        s.certs = crate::validate::InputCerts {
            unreadable: Some("Permission denied (os error 13)".into()),
            ..Default::default()
        };
        s.put("other.yaml", &listener("other", "0.0.0.0", "9090"));
        let out = s.pass();
        let shown: Vec<_> = out.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            shown,
            ["listener \"backend\": input/certs cannot be read: Permission denied (os error 13)"]
        );
        // Unknown is not absent: no certificate is generated for it.
        assert!(!s.runtime.contains_key("runtime/certs/web/tls.crt"));
        assert!(s.entity("tcpListener", "listener/other").is_some());

        // With nobody naming credentials, it is a warning of the pass.
        s.remove("r.yaml");
        let out = s.pass();
        assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
        assert_eq!(out.problems[0].severity, Severity::Warning);
        assert_eq!(
            out.problems[0].message,
            "input/certs cannot be read, so no bundle in it can be used: Permission denied (os error 13)"
        );
    }

    #[test]
    fn a_bundle_that_becomes_unreadable_keeps_its_last_accepted_copy() {
        let (crt, key, _) = server_cert("a");
        let doc = format!("{L}  host: a\n  port: 8443\n  tlsCredentials: web\n");
        let mut s = scenario(&doc, "web", bundle(&[("tls.crt", &crt), ("tls.key", &key)]));
        s.pass();
        s.certs.bundles.insert(
            "web".into(),
            InputBundle::refused(FileRefusal::Unreadable(LOOP.into())),
        );
        let out = s.pass();
        assert_eq!(s.text("runtime/certs/web/tls.crt"), crt);
        assert!(s.entity("tcpListener", "listener/backend").is_some());
        let r = out.resources.iter().find(|r| r.name == "backend").unwrap();
        assert!(
            r.message.ends_with("still serving generation 1"),
            "{}",
            r.message
        );
    }
}
