//! Link access and Links (resources.md 1, 4, 5, 6): the site CA and
//! certificates, the router listeners and connectors, the link files,
//! and the errors of bad Links and Secrets.

use super::tests::{listener, Scenario};

const EAST: &str = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\nspec:\n  linkAccess: default\n";

fn link_access_site() -> Scenario {
    let mut s = Scenario::new();
    s.put("Site-west.yaml", EAST);
    s
}

fn link_files(s: &Scenario) -> Vec<String> {
    s.runtime
        .keys()
        .filter(|p| p.starts_with("runtime/links/"))
        .cloned()
        .collect()
}

/// The link file of another site (`east`), as its pass wrote it.
fn east_link_file() -> String {
    let mut east = link_access_site();
    east.files.clear();
    east.put("Site-east.yaml", &EAST.replace("name: west", "name: east"));
    east.seed = 7;
    east.pass();
    east.text("runtime/links/link-east-127.0.0.1.yaml")
}

#[test]
fn link_access_makes_listeners_certificates_and_link_files() {
    let mut s = link_access_site();
    let out = s.pass();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let ir = s.entity("listener", "west-inter-router").unwrap();
    assert_eq!(ir["role"], "inter-router");
    assert_eq!(ir["port"], "55671");
    assert_eq!(ir["sslProfile"], "west");
    assert_eq!(ir["saslMechanisms"], "EXTERNAL");
    assert_eq!(ir["authenticatePeer"], true);
    assert!(ir.get("host").is_none(), "all interfaces: {ir}");
    let edge = s.entity("listener", "west-edge").unwrap();
    assert_eq!(edge["port"], "45671");
    let profile = s.entity("sslProfile", "west").unwrap();
    assert!(profile["caCertFile"]
        .as_str()
        .unwrap()
        .ends_with("runtime/certs/west/ca.crt"));
    assert!(s
        .runtime
        .contains_key("runtime/issuers/skupper-site-ca/tls.crt"));
    assert!(s.runtime.contains_key("runtime/certs/client-west/tls.key"));
    // The site CA verifies linking sites: it is the profile's ca.crt.
    assert_eq!(
        s.text("runtime/certs/west/ca.crt"),
        s.text("runtime/issuers/skupper-site-ca/tls.crt")
    );
    assert_eq!(
        link_files(&s),
        [
            "runtime/links/link-west-127.0.0.1.yaml",
            "runtime/links/link-west-host1.yaml"
        ]
    );
    assert_eq!(
        out.writes["runtime/links/link-west-127.0.0.1.yaml"].mode,
        0o600
    );
    let text = s.text("runtime/links/link-west-host1.yaml");
    assert!(text.contains("kind: Secret\n"), "{text}");
    assert!(text.contains("type: kubernetes.io/tls\n"), "{text}");
    assert!(text.contains("tlsCredentials: link-west\n"), "{text}");
    assert!(text.contains("host: host1\n"), "{text}");
    assert!(text.contains("port: \"55671\"\n"), "{text}");
    assert!(text.contains("port: \"45671\"\n"), "{text}");
    assert!(s
        .text("runtime/identity.yaml")
        .contains("west-inter-router: 55671"));
    // The Site lists its endpoints; Resolved waits for the router.
    let site = s.text("runtime/resources/Site-west.yaml");
    assert!(
        site.contains("  endpoints:\n  - name: west-edge\n    host: host1\n    port: \"45671\"\n    group: skupper-router\n  - name: west-inter-router\n    host: host1\n    port: \"55671\"\n"),
        "{site}"
    );
    assert!(
        site.contains("type: Resolved\n    status: Unknown"),
        "{site}"
    );
}

#[test]
fn the_site_is_resolved_once_the_router_has_the_link_access_listeners() {
    let mut s = link_access_site();
    s.router.view = Some(super::RouterView {
        confirmed: ["west-inter-router".to_string()].into(),
        ..Default::default()
    });
    let out = s.pass();
    let site = out.resources.iter().find(|r| r.name == "west").unwrap();
    assert_eq!(site.message, "link access endpoints not known yet");
    s.router.view = Some(super::RouterView {
        confirmed: ["west-inter-router".to_string(), "west-edge".to_string()].into(),
        ..Default::default()
    });
    let out = s.pass();
    let text = s.text("runtime/resources/Site-west.yaml");
    assert!(
        text.contains("type: Resolved\n    status: \"True\""),
        "{text}"
    );
    let site = out.resources.iter().find(|r| r.name == "west").unwrap();
    assert_ne!(site.message, "link access endpoints not known yet");
}

#[test]
fn link_access_is_stable_a_second_pass_writes_nothing_and_ports_are_kept() {
    let mut s = link_access_site();
    s.pass();
    let config = s.text("runtime/router/skrouterd.json");
    let out = s.pass();
    assert!(out.writes.is_empty(), "{:?}", out.writes.keys());
    assert!(out.deletes.is_empty());
    // A listener put on the chosen port later does not move link access.
    s.put("l.yaml", &listener("l", "127.0.0.1", "9090"));
    s.pass();
    assert_eq!(
        s.entity("listener", "west-inter-router").unwrap()["port"],
        "55671"
    );
    // Removing link access keeps the ports for when it comes back.
    s.put("Site-west.yaml", super::tests::SITE);
    s.pass();
    assert!(s.entity("listener", "west-inter-router").is_none());
    assert!(link_files(&s).is_empty());
    s.put("Site-west.yaml", EAST);
    s.pass();
    s.remove("l.yaml");
    s.pass();
    assert_eq!(s.text("runtime/router/skrouterd.json"), config);
    assert_eq!(s.entity("listener", "west-edge").unwrap()["port"], "45671");
}

#[test]
fn a_link_file_from_another_site_becomes_a_connector_with_its_profile() {
    let link = east_link_file();
    let mut s = Scenario::new();
    s.put("link-east.yaml", &link);
    let out = s.pass();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let c = s.entity("connector", "link-east").unwrap();
    assert_eq!(c["role"], "inter-router");
    assert_eq!(c["host"], "127.0.0.1");
    assert_eq!(c["port"], "55671");
    assert_eq!(c["cost"], 1);
    assert_eq!(c["sslProfile"], "link-east-profile");
    let p = s.entity("sslProfile", "link-east-profile").unwrap();
    assert!(p["certFile"]
        .as_str()
        .unwrap()
        .ends_with("runtime/certs/link-east-profile/tls.crt"));
    for f in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(s
            .runtime
            .contains_key(&format!("runtime/certs/link-east-profile/{f}")));
    }
    // The Secret holds a key: it gets no runtime record; the Link does.
    assert!(!s.runtime.keys().any(|p| p.contains("Secret-")));
    assert!(s
        .runtime
        .contains_key("runtime/resources/Link-link-east.yaml"));
    let status = out
        .resources
        .iter()
        .find(|r| r.name == "link-east")
        .unwrap();
    assert_eq!(status.message, "router not reachable");
    // An edge site uses the edge endpoint.
    s.put(
        "Site-west.yaml",
        "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\nspec:\n  edge: true\n",
    );
    s.pass();
    let c = s.entity("connector", "link-east").unwrap();
    assert_eq!(c["role"], "edge");
    assert_eq!(c["port"], "45671");
}

fn link_doc(extra: &str) -> String {
    format!(
        "apiVersion: skupper.io/v2alpha1\nkind: Link\nmetadata:\n  name: to-east\nspec:\n{extra}"
    )
}

#[test]
fn bad_links_and_secrets_give_precise_errors_and_leave_the_rest_untouched() {
    let link = east_link_file();
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    s.pass();
    let before = s.entity("tcpListener", "listener/backend").unwrap();
    let cases: Vec<(String, &str)> = vec![
        (link_doc("  endpoints: []\n  tlsCredentials: link-east\n"), "link \"to-east\": spec.endpoints is empty"),
        (
            link_doc("  tlsCredentials: link-east\n  endpoints:\n  - name: edge\n    host: 127.0.0.1\n    port: \"45671\"\n"),
            "link \"to-east\": no endpoint named \"inter-router\" (this site is interior); endpoints: edge",
        ),
        (
            link_doc("  tlsCredentials: link-east\n  endpoints:\n  - name: inter-router\n    host: 127.0.0.1\n    port: \"99999\"\n"),
            "link \"to-east\": spec.endpoints[0].port \"99999\" is not a port number 1-65535",
        ),
        (
            link_doc("  tlsCredentials: link-east\n  endpoints:\n  - name: inter-router\n    host: Bad_Host\n    port: \"1\"\n"),
            "link \"to-east\": spec.endpoints[0].host \"Bad_Host\" is not an IP address or a lower-case DNS name (a-z, 0-9, '-' and '.', at most 253 characters)",
        ),
        (
            link_doc("  cost: -1\n  tlsCredentials: link-east\n  endpoints:\n  - name: inter-router\n    host: 127.0.0.1\n    port: 55671\n"),
            "link \"to-east\": spec.cost -1 must be 1 or more",
        ),
        (
            link_doc("  endpoints:\n  - name: inter-router\n    host: 127.0.0.1\n    port: \"55671\"\n"),
            "link \"to-east\": spec.tlsCredentials is required (the Secret with the client certificate and the remote CA)",
        ),
        (
            link_doc("  tlsCredentials: nope\n  endpoints:\n  - name: inter-router\n    host: 127.0.0.1\n    port: \"55671\"\n"),
            "link \"to-east\": spec.tlsCredentials \"nope\": no Secret \"nope\" in input/resources and no input/certs/nope/",
        ),
    ];
    // The Secret of east's link file, alone.
    let secret = link
        .split("---\n")
        .find(|d| d.contains("kind: Secret"))
        .unwrap()
        .to_string();
    for (doc, want) in cases {
        s.put("link.yaml", &format!("{doc}---\n{secret}"));
        let out = s.pass();
        let errors: Vec<&str> = out
            .problems
            .iter()
            .filter(|p| p.is_error())
            .map(|p| p.message.as_str())
            .collect();
        assert_eq!(errors, [want], "for\n{doc}");
        let p = out.problems.iter().find(|p| p.is_error()).unwrap();
        assert_eq!(p.file.as_deref(), Some("input/resources/link.yaml"));
        assert!(p.line.unwrap() > 1, "{p:?}");
        assert!(s.entity("connector", "to-east").is_none());
        assert_eq!(s.entity("tcpListener", "listener/backend").unwrap(), before);
    }
    // Secrets: a missing key, bad base64, another type.
    let good = link
        .split("---\n")
        .find(|d| d.contains("kind: Link"))
        .unwrap()
        .to_string();
    let no_ca = secret
        .lines()
        .filter(|l| !l.trim_start().starts_with("ca.crt"))
        .collect::<Vec<_>>()
        .join("\n");
    let bad_b64 = secret.replacen("tls.crt: ", "tls.crt: '!!'\n  x: ", 1);
    let opaque = secret.replace("kubernetes.io/tls", "kubernetes.io/ssh-auth");
    for (sec, want) in [
        (no_ca, "secret \"link-east\": data[\"ca.crt\"] is missing (needed by link \"link-east\")"),
        (bad_b64, "secret \"link-east\": data[\"tls.crt\"] is not valid base64"),
        (opaque, "secret \"link-east\": type \"kubernetes.io/ssh-auth\" is not supported; use kubernetes.io/tls"),
    ] {
        s.put("link.yaml", &format!("{good}---\n{sec}\n"));
        let out = s.pass();
        let errors: Vec<&str> = out.problems.iter().filter(|p| p.is_error()).map(|p| p.message.as_str()).collect();
        assert_eq!(errors, [want]);
        assert!(s.entity("connector", "link-east").is_none());
        let status = out.resources.iter().find(|r| r.name == "link-east").unwrap();
        assert!(status.message.starts_with(want), "{}", status.message);
        assert_eq!(s.entity("tcpListener", "listener/backend").unwrap(), before);
    }
}

#[test]
fn a_listener_on_a_link_access_port_is_refused_and_link_access_keeps_it() {
    let mut s = link_access_site();
    s.pass();
    s.put("l.yaml", &listener("l", "0.0.0.0", "55671"));
    let out = s.pass();
    let errors: Vec<&str> = out
        .problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(
        errors,
        ["listener \"l\": port 55671 is used by the router for link access (routeraccess \"west\", role inter-router); choose another port"]
    );
    assert!(s.entity("tcpListener", "listener/l").is_none());
    assert_eq!(
        s.entity("listener", "west-inter-router").unwrap()["port"],
        "55671"
    );
}

#[test]
fn a_changed_secret_raises_its_profiles_ordinal_and_keeps_the_connector() {
    let first = east_link_file();
    let mut s = Scenario::new();
    s.put("link-east.yaml", &first);
    s.pass();
    let connector = s.entity("connector", "link-east").unwrap();
    assert!(s
        .entity("sslProfile", "link-east-profile")
        .unwrap()
        .get("ordinal")
        .is_none());
    // East issued its client certificate again: another key, same CA.
    let mut east = link_access_site();
    east.files.clear();
    east.put("Site-east.yaml", &EAST.replace("name: west", "name: east"));
    east.seed = 7;
    east.pass();
    for f in ["tls.crt", "tls.key"] {
        east.runtime
            .remove(&format!("runtime/certs/client-east/{f}"));
    }
    east.seed = 8;
    east.pass();
    let second = east.text("runtime/links/link-east-127.0.0.1.yaml");
    assert_ne!(first, second);
    s.put("link-east.yaml", &second);
    let out = s.pass();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(
        s.entity("sslProfile", "link-east-profile").unwrap()["ordinal"],
        1
    );
    assert_eq!(s.entity("connector", "link-east").unwrap(), connector);
}

fn router_access(name: &str, spec: &str) -> String {
    format!("apiVersion: skupper.io/v2alpha1\nkind: RouterAccess\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

#[test]
fn an_explicit_router_access_works_like_link_access() {
    let mut s = Scenario::new();
    s.put(
        "ra.yaml",
        &router_access(
            "ra1",
            "  roles:\n  - name: inter-router\n    port: 56000\n  - name: edge\n  bindHost: 127.0.0.1\n  subjectAlternativeNames: [example.test]\n",
        ),
    );
    let out = s.pass();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let ir = s.entity("listener", "ra1-inter-router").unwrap();
    assert_eq!(ir["host"], "127.0.0.1");
    assert_eq!(ir["port"], "56000");
    assert_eq!(ir["sslProfile"], "ra1");
    assert_eq!(s.entity("listener", "ra1-edge").unwrap()["port"], "45671");
    assert_eq!(
        link_files(&s),
        [
            "runtime/links/link-ra1-127.0.0.1.yaml",
            "runtime/links/link-ra1-example.test.yaml"
        ]
    );
    let text = s.text("runtime/links/link-ra1-example.test.yaml");
    assert!(text.contains("name: link-ra1\n"), "{text}");
    assert!(text.contains("host: example.test\n"), "{text}");
    let record = s.text("runtime/resources/RouterAccess-ra1.yaml");
    assert!(record.contains("type: Resolved"), "{record}");
    // Stable: a second pass writes nothing.
    assert!(s.pass().writes.is_empty());
}

#[test]
fn an_input_router_access_named_after_the_site_replaces_the_implicit_one() {
    let mut s = link_access_site();
    s.put(
        "ra.yaml",
        &router_access(
            "west",
            "  roles:\n  - name: inter-router\n    port: 56001\n",
        ),
    );
    let out = s.pass();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(
        s.entity("listener", "west-inter-router").unwrap()["port"],
        "56001"
    );
    assert!(s.entity("listener", "west-edge").is_none());
}

#[test]
fn bad_router_accesses_give_precise_errors() {
    let cases = [
        ("ra", "  roles: []\n", "routeraccess \"ra\": spec.roles must list at least one role (inter-router, edge)"),
        ("ra", "  roles:\n  - name: normal\n", "routeraccess \"ra\": spec.roles[0].name \"normal\" is not one of inter-router, edge"),
        ("ra", "  roles:\n  - name: edge\n  - name: edge\n", "routeraccess \"ra\": role \"edge\" is listed twice"),
        ("ra", "  roles:\n  - name: edge\n    port: 70000\n", "routeraccess \"ra\": spec.roles[0].port 70000 is out of range 1-65535"),
        ("ra", "  roles:\n  - name: edge\n  subjectAlternativeNames: [\"bad name\"]\n", "routeraccess \"ra\": spec.subjectAlternativeNames[0] \"bad name\" is not an IP address or DNS name"),
        ("skupper-local", "  roles:\n  - name: edge\n", "routeraccess \"skupper-local\": this name is reserved for skupperd's management access"),
    ];
    for (name, spec, want) in cases {
        let mut s = Scenario::new();
        s.put("ra.yaml", &router_access(name, spec));
        let out = s.pass();
        let errors: Vec<&str> = out
            .problems
            .iter()
            .filter(|p| p.is_error())
            .map(|p| p.message.as_str())
            .collect();
        assert_eq!(errors, [want], "for {spec}");
        assert!(link_files(&s).is_empty());
    }
    let mut s = Scenario::new();
    s.put(
        "Site-west.yaml",
        "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\nspec:\n  edge: true\n",
    );
    s.put(
        "ra.yaml",
        &router_access("ra", "  roles:\n  - name: edge\n"),
    );
    let out = s.pass();
    let errors: Vec<&str> = out
        .problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(
        errors,
        ["routeraccess \"ra\": edge sites cannot accept links; remove it or set spec.edge: false on the Site"]
    );
    assert!(s.entity("listener", "ra-edge").is_none());
}

#[test]
fn link_status_follows_the_connector_row_in_the_routers_words() {
    let link = east_link_file();
    let mut s = Scenario::new();
    s.put("link-east.yaml", &link);
    let cases = [
        ("SUCCESS", "[C4] Connection Opened: dir=out host=127.0.0.1:55671 encrypted=TLSv1.3 auth=EXTERNAL user=(null) container_id=east-cb1c403d", "OK"),
        ("FAILED", "Connection to 127.0.0.1:55671 failed: proton:io Connection refused - disconnected 127.0.0.1:55671", "link to 127.0.0.1:55671 failed: Connection to 127.0.0.1:55671 failed: proton:io Connection refused - disconnected 127.0.0.1:55671"),
        ("CONNECTING", "Connection to 127.0.0.1:55671 failed: amqp:connection:framing-error SSL Failure: error:0A000086:SSL routines::certificate verify failed", "link to 127.0.0.1:55671 failed: Connection to 127.0.0.1:55671 failed: amqp:connection:framing-error SSL Failure: error:0A000086:SSL routines::certificate verify failed"),
        ("CONNECTING", "[C4] Connection Opened: dir=out host=127.0.0.1:55671", "connecting to 127.0.0.1:55671"),
        ("CONNECTING", "", "connecting to 127.0.0.1:55671"),
    ];
    for (status, msg, want) in cases {
        let msg = (!msg.is_empty()).then(|| msg.to_string());
        s.router.view = Some(super::RouterView {
            confirmed: ["link-east".to_string()].into(),
            links: [("link-east".to_string(), (status.to_string(), msg))].into(),
            ..Default::default()
        });
        let out = s.pass();
        let r = out
            .resources
            .iter()
            .find(|r| r.name == "link-east")
            .unwrap();
        assert_eq!(r.message, want, "{status}");
    }
}
