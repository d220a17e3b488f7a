//! The validators against the real reference files: the router behaviour and
//! texts of router.md sections 1, 5, 6.2 and 9, and the Listener examples of
//! resources.md 10.1. A missing reference directory fails these tests.

use reference_check::router_schema::{Refusal, RouterSchema};
use reference_check::{reference_dir, Crds, LoadError};
use serde_json::{json, Map, Value};

fn schema() -> RouterSchema {
    let dir = reference_dir();
    RouterSchema::load(&dir).unwrap_or_else(|e| panic!("router schema from {}: {e}", dir.display()))
}

fn crds() -> Crds {
    let dir = reference_dir();
    Crds::load(&dir).unwrap_or_else(|e| panic!("CRDs from {}: {e}", dir.display()))
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn refusal(code: u16, text: &str) -> Refusal {
    Refusal::new(code, text)
}

/// Every problem must contain `needle`; and there must be at least one.
fn assert_problem(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "no problem mentions {needle:?}; problems: {problems:#?}"
    );
}

// ---------------------------------------------------------------- loading

#[test]
fn a_missing_reference_directory_is_an_error_not_a_skip() {
    let nowhere = std::path::Path::new("/nonexistent/reference");
    let err = RouterSchema::load(nowhere).unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }), "{err}");
    assert!(err.to_string().contains("SKUPPERD_REFERENCE_DIR"), "{err}");
    assert!(matches!(Crds::load(nowhere), Err(LoadError::Read { .. })));
}

#[test]
fn schema_types_resolve_with_inheritance() {
    let s = schema();
    let tcp = s.entity_type("tcpListener").unwrap();
    assert_eq!(tcp.long_name(), "io.skupper.router.tcpListener");
    assert!(std::ptr::eq(
        tcp,
        s.entity_type("io.skupper.router.tcpListener").unwrap()
    ));
    // router.md 1.1: `address` means router.config.address.
    assert_eq!(
        s.entity_type("address").unwrap().long_name(),
        "io.skupper.router.router.config.address"
    );
    assert_eq!(
        s.entity_type("router.address").unwrap().short_name(),
        "router.address"
    );
    assert!(s.entity_type("bogus").is_none());

    let names = s.attribute_names("tcpListener").unwrap();
    assert_eq!(names.first().map(String::as_str), Some("address"));
    assert_eq!(&names[names.len() - 3..], ["name", "identity", "type"]);
    assert!(names.contains(&"connectionMsg".to_owned()));
    assert_eq!(tcp.operations(), ["CREATE", "UPDATE", "DELETE", "READ"]);

    // `name` settable, `identity` read-only, `type` required.
    assert!(tcp.attribute("name").unwrap().create);
    assert!(!tcp.attribute("identity").unwrap().create);
    assert!(tcp.attribute("type").unwrap().required);
}

// ---------------------------------------------------------------- CREATE

#[test]
fn create_tcp_listener_fills_defaults_and_coerces() {
    let ok = schema()
        .check_create(
            "io.skupper.router.tcpListener",
            &map(json!({"name": "listener/backend", "address": "backend", "port": 8080})),
        )
        .unwrap();
    let expected = json!({
        "name": "listener/backend",
        "identity": "tcpListener/:8080:listener/backend",
        "type": "io.skupper.router.tcpListener",
        "address": "backend",
        "host": "",
        "port": "8080",
        "backlog": 0,
        "multiAddressStrategy": "none",
        "authenticatePeer": false,
        "observer": "auto"
    });
    assert_eq!(Value::Object(ok), expected);
}

#[test]
fn create_coerces_like_the_router() {
    let s = schema();
    let ok = s
        .check_create(
            "tcpListener",
            &map(json!({"name": "l", "address": "a", "host": "127.0.0.1", "port": "1", "backlog": " 16 ", "authenticatePeer": "Yes"})),
        )
        .unwrap();
    assert_eq!(ok["backlog"], json!(16));
    assert_eq!(ok["authenticatePeer"], json!(true));
    assert_eq!(ok["identity"], json!("tcpListener/127.0.0.1:1:l"));
    for (word, value) in [("on", true), ("off", false), ("no", false), ("TRUE", true)] {
        let ok = s
            .check_create(
                "tcpConnector",
                &map(json!({"name": "c", "address": "a", "port": "1", "verifyHostname": word})),
            )
            .unwrap();
        assert_eq!(ok["verifyHostname"], json!(value), "{word}");
        assert_eq!(ok["host"], json!("127.0.0.1"));
    }
    assert_eq!(
        s.check_create(
            "tcpConnector",
            &map(json!({"name": "c", "address": "a", "port": "1", "verifyHostname": "maybe"}))
        ),
        Err(refusal(
            400,
            "io.skupper.router.tcpConnector: Invalid Boolean value ''maybe''"
        ))
    );
    assert_eq!(
        s.check_create(
            "tcpListener",
            &map(json!({"name": "l", "address": "a", "port": "1", "backlog": "lots"}))
        ),
        Err(refusal(
            400,
            "io.skupper.router.tcpListener: invalid literal for int() with base 10: 'lots'"
        ))
    );
}

#[test]
fn create_with_an_unknown_attribute_is_refused() {
    assert_eq!(
        schema().check_create(
            "io.skupper.router.tcpListener",
            &map(json!({"name": "l", "address": "a", "port": "1", "bogus": 1}))
        ),
        Err(refusal(
            400,
            "Unknown attribute 'bogus' for 'io.skupper.router.tcpListener'"
        ))
    );
}

#[test]
fn create_with_a_bad_enum_value_is_refused() {
    assert_eq!(
        schema().check_create(
            "io.skupper.router.tcpListener",
            &map(json!({"name": "l", "address": "a", "port": "1", "observer": "http3"}))
        ),
        Err(refusal(
            400,
            "io.skupper.router.tcpListener: Invalid value for enum['none', 'auto', 'http1', 'http2']: 'http3'"
        ))
    );
}

#[test]
fn create_without_a_required_attribute_is_refused() {
    assert_eq!(
        schema().check_create(
            "listenerAddress",
            &map(json!({"name": "m/a", "value": 1, "listener": "multiAddress/m"}))
        ),
        Err(refusal(
            400,
            "io.skupper.router.listenerAddress: Missing required attribute 'address'"
        ))
    );
}

#[test]
fn create_of_read_only_attributes_or_types_is_refused() {
    let s = schema();
    assert_eq!(
        s.check_create(
            "tcpListener",
            &map(json!({"name": "l", "address": "a", "port": "1", "identity": "x"}))
        ),
        Err(refusal(400, "Cannot set attribute 'identity' in CREATE"))
    );
    assert_eq!(
        s.check_create(
            "tcpListener",
            &map(json!({"name": "l", "address": "a", "port": "1", "connectionMsg": "x"}))
        ),
        Err(refusal(
            400,
            "Cannot set attribute 'connectionMsg' in CREATE"
        ))
    );
    assert_eq!(
        s.check_create("log", &map(json!({"module": "DEFAULT"}))),
        Err(refusal(
            501,
            "Operation 'CREATE' not implemented for 'io.skupper.router.log' ['UPDATE', 'READ']"
        ))
    );
    assert_eq!(
        s.check_create("bogus", &Map::new()),
        Err(refusal(
            400,
            "No such entity type 'io.skupper.router.bogus'"
        ))
    );
    assert_eq!(
        s.check_create(
            "tcpListener",
            &map(json!({"name": "l", "type": "io.skupper.router.tcpConnector"}))
        ),
        Err(refusal(400, "Conflicting values for 'type'"))
    );
}

#[test]
fn create_tcp_listener_needs_exactly_one_of_address_and_strategy() {
    let s = schema();
    let rule = "Exactly one of the 'address' or 'multiAddressStrategy' field must be set";
    for attrs in [
        json!({"name": "l", "port": "1"}),
        json!({"name": "l", "port": "1", "address": "a", "multiAddressStrategy": "priority"}),
    ] {
        let err = s.check_create("tcpListener", &map(attrs)).unwrap_err();
        assert!(err.description.contains(rule), "{err}");
    }
    assert!(s
        .check_create(
            "tcpListener",
            &map(
                json!({"name": "multiAddress/m", "port": "1", "multiAddressStrategy": "weighted"})
            )
        )
        .is_ok());
}

#[test]
fn names_are_unique_across_entity_types() {
    let s = schema();
    let profile = s
        .check_create("sslProfile", &map(json!({"name": "west"})))
        .unwrap();
    let connector = s
        .check_create(
            "connector",
            &map(json!({"name": "west", "role": "inter-router", "port": "55671"})),
        )
        .unwrap();
    let err = s.check_unique(&connector, [&profile]).unwrap_err();
    assert_eq!(err.status_code, 400);
    assert!(
        err.description.starts_with("adding ConnectorEntity("),
        "{err}"
    );
    assert!(
        err.description
            .contains("duplicates unique attribute 'name'"),
        "{err}"
    );
    let other = s
        .check_create("sslProfile", &map(json!({"name": "east"})))
        .unwrap();
    assert!(s.check_unique(&other, [&profile]).is_ok());
    // Two MultiKeyListener keys: the router numbers their identities.
    let key = |k: &str| {
        s.check_create(
            "listenerAddress",
            &map(json!({"name": format!("m/{k}"), "address": k, "value": 1, "listener": "multiAddress/m"})),
        )
        .unwrap()
    };
    assert!(s.check_unique(&key("a"), [&key("b")]).is_ok());
    assert!(s.check_unique(&key("a"), [&key("a")]).is_err());
    // Created without a name, an entity has none (no default from identity).
    let unnamed = s.check_create("sslProfile", &Map::new()).unwrap();
    assert_eq!(unnamed.get("name"), None);
    assert_eq!(unnamed["identity"], json!("sslProfile/None"));
}

#[test]
fn ssl_profile_references_are_reported_for_the_router_to_resolve() {
    let s = schema();
    let attrs = map(json!({"name": "l", "sslProfile": "nope"}));
    assert_eq!(s.ssl_profile_reference("tcpListener", &attrs), Some("nope"));
    assert_eq!(s.ssl_profile_reference("sslProfile", &attrs), None);
    assert_eq!(
        Refusal::ssl_profile_not_found("nope"),
        refusal(500, "CError: Not found: sslProfile 'nope' not found")
    );
}

// ---------------------------------------------------------------- UPDATE and QUERY

#[test]
fn update_changes_only_updatable_attributes() {
    let s = schema();
    let current = s
        .check_create(
            "tcpListener",
            &map(json!({"name": "listener/web", "address": "web", "port": "8443"})),
        )
        .unwrap();
    assert_eq!(
        s.check_update("tcpListener", &current, &map(json!({"port": "9090"}))),
        Err(refusal(400, "Cannot update attribute 'port' in UPDATE"))
    );
    let updated = s
        .check_update(
            "tcpListener",
            &current,
            &map(json!({"observer": "http1", "port": "8443", "name": "listener/web"})),
        )
        .unwrap();
    assert_eq!(updated["observer"], json!("http1"));
    assert_eq!(updated["port"], json!("8443"));
    // The same port as a number is a change to Python (8443 != "8443").
    assert!(s
        .check_update("tcpListener", &current, &map(json!({"port": 8443})))
        .is_err());
    assert_eq!(
        s.check_update("tcpListener", &current, &map(json!({"observer": "http3"}))),
        Err(refusal(
            400,
            "io.skupper.router.tcpListener: Invalid value for enum['none', 'auto', 'http1', 'http2']: 'http3'"
        ))
    );
}

#[test]
fn update_of_a_tcp_connector_is_not_implemented() {
    let s = schema();
    let current = s
        .check_create(
            "tcpConnector",
            &map(json!({"name": "connector/db@127.0.0.1", "address": "db", "port": "5432"})),
        )
        .unwrap();
    assert_eq!(
        s.check_update("io.skupper.router.tcpConnector", &current, &map(json!({"port": "5433"}))),
        Err(refusal(
            501,
            "Operation 'UPDATE' not implemented for 'io.skupper.router.tcpConnector' ['CREATE', 'DELETE', 'READ']"
        ))
    );
}

#[test]
fn ssl_profile_ordinal_and_log_level_can_be_updated() {
    let s = schema();
    let profile = s
        .check_create(
            "sslProfile",
            &map(json!({"name": "web-tls", "certFile": "/c/tls.crt"})),
        )
        .unwrap();
    let updated = s
        .check_update(
            "sslProfile",
            &profile,
            &map(json!({"ordinal": 1, "certFile": "/c/tls.crt"})),
        )
        .unwrap();
    assert_eq!(updated["ordinal"], json!(1));
    let log = map(
        json!({"identity": "log/DEFAULT", "name": "log/DEFAULT", "module": "DEFAULT", "enable": "info+", "type": "io.skupper.router.log"}),
    );
    assert_eq!(
        s.check_update("log", &log, &map(json!({"enable": "debug+"})))
            .unwrap()["enable"],
        json!("debug+")
    );
    assert_eq!(
        s.check_update("log", &log, &map(json!({"module": "ROUTER"}))),
        Err(refusal(400, "Cannot update attribute 'module' in UPDATE"))
    );
}

#[test]
fn operations_are_checked_per_type() {
    let s = schema();
    assert_eq!(
        s.check_operation("io.skupper.router.log", "DELETE")
            .unwrap_err(),
        refusal(
            501,
            "Operation 'DELETE' not implemented for 'io.skupper.router.log' ['UPDATE', 'READ']"
        )
    );
    assert!(s.check_operation("tcpListener", "delete").is_ok());
    assert!(s.check_operation("tcpConnector", "READ").is_ok());
    assert_eq!(
        s.check_operation("sslProfile", "READ")
            .unwrap()
            .short_name(),
        "sslProfile"
    );
}

#[test]
fn query_attribute_names_are_checked() {
    let s = schema();
    assert_eq!(
        s.check_query("tcpListener", &[]).unwrap(),
        s.attribute_names("tcpListener").unwrap()
    );
    assert_eq!(
        s.check_query(
            "io.skupper.router.tcpListener",
            &["name".into(), "nope".into()]
        ),
        Err(refusal(
            404,
            "Unknown attributes ['nope'] for type io.skupper.router.tcpListener."
        ))
    );
    assert_eq!(
        s.check_query("io.skupper.router.bogus", &[]),
        Err(refusal(
            400,
            "No such entity type 'io.skupper.router.bogus'"
        ))
    );
}

// ---------------------------------------------------------------- config file

/// router.md section 9, as written (with `${SSL_PROFILE_BASE_PATH}`).
fn example_config() -> Value {
    json!([
        ["router", {
            "id": "west-6f1c2d3e",
            "mode": "interior",
            "helloMaxAgeSeconds": 3,
            "metadata": "{\"id\":\"6f1c2d3e-8a4b-4c1d-9e2f-0a1b2c3d4e5f\",\"version\":\"0.1.0\",\"platform\":\"podman\"}"
        }],
        ["sslProfile", {
            "name": "skupper-local-server",
            "caCertFile": "${SSL_PROFILE_BASE_PATH}/runtime/certs/skupper-local-server/ca.crt",
            "certFile": "${SSL_PROFILE_BASE_PATH}/runtime/certs/skupper-local-server/tls.crt",
            "privateKeyFile": "${SSL_PROFILE_BASE_PATH}/runtime/certs/skupper-local-server/tls.key"
        }],
        ["sslProfile", {
            "name": "web-tls",
            "caCertFile": "${SSL_PROFILE_BASE_PATH}/runtime/certs/web-tls/ca.crt",
            "certFile": "${SSL_PROFILE_BASE_PATH}/runtime/certs/web-tls/tls.crt",
            "privateKeyFile": "${SSL_PROFILE_BASE_PATH}/runtime/certs/web-tls/tls.key"
        }],
        ["sslProfile", {
            "name": "west",
            "caCertFile": "${SSL_PROFILE_BASE_PATH}/runtime/certs/west/ca.crt",
            "certFile": "${SSL_PROFILE_BASE_PATH}/runtime/certs/west/tls.crt",
            "privateKeyFile": "${SSL_PROFILE_BASE_PATH}/runtime/certs/west/tls.key"
        }],
        ["listener", {
            "name": "skupper-local-normal", "role": "normal", "host": "127.0.0.1", "port": "5671",
            "sslProfile": "skupper-local-server", "saslMechanisms": "EXTERNAL", "authenticatePeer": true
        }],
        ["listener", {
            "name": "west-edge", "role": "edge", "port": "45671",
            "sslProfile": "west", "saslMechanisms": "EXTERNAL", "authenticatePeer": true
        }],
        ["listener", {
            "name": "west-inter-router", "role": "inter-router", "port": "55671",
            "sslProfile": "west", "saslMechanisms": "EXTERNAL", "authenticatePeer": true
        }],
        ["address", {"prefix": "mc", "distribution": "multicast"}],
        ["tcpConnector", {"name": "connector/db@127.0.0.1", "address": "db", "host": "127.0.0.1", "port": "5432"}],
        ["tcpListener", {"name": "listener/backend", "address": "backend", "host": "0.0.0.0", "port": "8080"}],
        ["tcpListener", {
            "name": "listener/web", "address": "web", "host": "0.0.0.0", "port": "8443",
            "sslProfile": "web-tls", "authenticatePeer": true, "observer": "http1"
        }],
        ["log", {"module": "ROUTER_CORE", "enable": "error+"}],
        ["log", {"module": "DEFAULT", "enable": "info+"}],
        ["site", {"name": "west-6f1c2d3e", "namespace": "default", "platform": "podman", "version": "0.1.0"}]
    ])
}

fn entities(doc: &mut Value) -> &mut Vec<Value> {
    doc.as_array_mut().unwrap()
}

fn attrs_of(doc: &mut Value, index: usize) -> &mut Map<String, Value> {
    entities(doc)[index][1].as_object_mut().unwrap()
}

#[test]
fn the_router_md_example_config_loads() {
    let problems = schema().check_config(&example_config());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn config_ports_may_be_numbers() {
    // router.md 1.1: `"port": 19095` works (observed).
    let mut doc = example_config();
    attrs_of(&mut doc, 9).insert("port".into(), json!(19095));
    assert!(schema().check_config(&doc).is_empty());
}

#[test]
fn config_with_an_unknown_attribute_fails() {
    let mut doc = example_config();
    attrs_of(&mut doc, 9).insert("bogusAttr".into(), json!("x"));
    let problems = schema().check_config(&doc);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_problem(
        &problems,
        "Unknown attribute 'bogusAttr' for 'io.skupper.router.tcpListener'",
    );
    assert_problem(&problems, "entity #9 (tcpListener \"listener/backend\")");
}

#[test]
fn config_with_an_unknown_entity_type_fails() {
    let mut doc = example_config();
    entities(&mut doc).push(json!(["tcpListenerX", {"name": "x"}]));
    assert_problem(
        &schema().check_config(&doc),
        "No such entity type 'io.skupper.router.tcpListenerX'",
    );
}

#[test]
fn config_with_operational_entities_fails() {
    let mut doc = example_config();
    entities(&mut doc).push(json!(["connection", {"name": "x"}]));
    assert_problem(
        &schema().check_config(&doc),
        "is not a configuration entity type",
    );
}

#[test]
fn config_tcp_listener_without_address_fails() {
    let mut doc = example_config();
    attrs_of(&mut doc, 9).remove("address");
    assert_problem(
        &schema().check_config(&doc),
        "Exactly one of the 'address' or 'multiAddressStrategy' field must be set",
    );
}

#[test]
fn config_reference_to_a_missing_ssl_profile_fails() {
    let mut doc = example_config();
    attrs_of(&mut doc, 10).insert("sslProfile".into(), json!("nope"));
    let problems = schema().check_config(&doc);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_problem(&problems, "sslProfile 'nope' not found");

    // A link-access listener and a Link connector are resolved the same way.
    let mut doc = example_config();
    entities(&mut doc).push(json!(["connector", {"name": "east", "role": "inter-router", "host": "10.0.0.2", "port": "55671", "sslProfile": "east-profile"}]));
    assert_problem(
        &schema().check_config(&doc),
        "sslProfile 'east-profile' not found",
    );
}

#[test]
fn config_names_are_unique_across_all_types() {
    // An sslProfile `west` and a connector `west` clash (router.md 1.1).
    let mut doc = example_config();
    entities(&mut doc).push(json!(["connector", {"name": "west", "role": "inter-router", "host": "10.0.0.2", "port": "55671", "sslProfile": "west"}]));
    let problems = schema().check_config(&doc);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_problem(&problems, "duplicates unique attribute 'name'");
}

#[test]
fn config_missing_required_attributes_fail() {
    let mut doc = example_config();
    attrs_of(&mut doc, 11).remove("module");
    assert_problem(
        &schema().check_config(&doc),
        "io.skupper.router.log: Missing required attribute 'module'",
    );
}

#[test]
fn config_bad_values_fail() {
    let mut doc = example_config();
    attrs_of(&mut doc, 0).insert("mode".into(), json!("core"));
    attrs_of(&mut doc, 0).insert("helloMaxAgeSeconds".into(), json!("three"));
    let problems = schema().check_config(&doc);
    assert_problem(
        &problems,
        "io.skupper.router.router: Invalid value for enum['standalone', 'interior', 'edge']: 'core'",
    );
    assert_problem(&problems, "invalid literal for int() with base 10: 'three'");
}

#[test]
fn config_singletons_and_log_modules_appear_once() {
    let mut doc = example_config();
    entities(&mut doc).push(json!(["router", {"id": "other", "mode": "interior"}]));
    entities(&mut doc).push(json!(["log", {"module": "DEFAULT", "enable": "debug+"}]));
    let problems = schema().check_config(&doc);
    assert_problem(
        &problems,
        "Adding io.skupper.router.router singleton RouterEntity(",
    );
    assert_problem(
        &problems,
        // The attribute order inside the repr follows serde_json's map
        // order, which a workspace feature (preserve_order) may change.
        "entity #15 (log): adding LogEntity(",
    );
    assert_problem(
        &problems,
        "duplicates unique attribute 'name' from existing LogEntity(",
    );
}

#[test]
fn config_roles_must_fit_the_router_mode() {
    // An edge router accepts no links: neither edge nor inter-router
    // listeners.
    let mut doc = example_config();
    attrs_of(&mut doc, 0).insert("mode".into(), json!("edge"));
    let problems = schema().check_config(&doc);
    assert_problem(
        &problems,
        "role='edge' only allowed with router mode='interior'",
    );
    assert_problem(
        &problems,
        "role='inter-router' only allowed with router mode='interior'",
    );

    // Without a router entity the router runs standalone.
    let mut doc = example_config();
    entities(&mut doc).remove(0);
    assert_problem(
        &schema().check_config(&doc),
        "role='standalone' not allowed to connect to or accept connections from other routers.",
    );

    // An edge router with its own listener for the management connection
    // and an edge connector (a Link) is fine.
    let doc = json!([
        ["router", {"id": "e-1", "mode": "edge"}],
        ["sslProfile", {"name": "p", "caCertFile": "/ca.crt"}],
        ["connector", {"name": "link1", "role": "edge", "host": "h", "port": "45671", "sslProfile": "p"}],
        ["listener", {"name": "skupper-local-normal", "role": "normal", "host": "127.0.0.1", "port": "5671"}]
    ]);
    let problems = schema().check_config(&doc);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn config_router_id_characters_are_checked() {
    let mut doc = example_config();
    attrs_of(&mut doc, 0).insert("id".into(), json!("west|1"));
    assert_problem(
        &schema().check_config(&doc),
        "containes at least one illegal character",
    );
    let mut doc = example_config();
    attrs_of(&mut doc, 0).insert("id".into(), json!("west 1"));
    assert_problem(
        &schema().check_config(&doc),
        "Router id attribute containing character ' '",
    );
}

#[test]
fn config_document_shape_is_checked() {
    let s = schema();
    assert_problem(
        &s.check_config(&json!({"router": {}})),
        "must be a JSON list",
    );
    assert_problem(
        &s.check_config(&json!([["router"]])),
        "entity #0: expected [entityType, {attributes}]",
    );
    assert_problem(
        &s.check_config(&json!([["site", {"type": "site"}]])),
        "multiple values for keyword argument 'type'",
    );
}

// ---------------------------------------------------------------- CRDs

/// resources.md 10.1 (1).
const LISTENER_READY: &str = r#"apiVersion: skupper.io/v2alpha1
kind: Listener
metadata:
  name: backend
  namespace: west
  generation: 1
  annotations:
    skupperd.io/accepted-generation: "1"
    skupperd.io/input-sha256: 9c1e4f0d2b7a3c58e6f1a0b4d9c2e7f3a1b5c8d0e2f4a6b8c0d2e4f6a8b0c2d4
    skupperd.io/source: input/resources/Listener-backend.yaml
spec:
  routingKey: backend
  host: 0.0.0.0
  port: 8080
status:
  status: Ready
  message: OK
  hasMatchingConnector: true
  conditions:
  - type: Configured
    status: "True"
    reason: Ready
    message: OK
    lastTransitionTime: "2026-11-26T10:00:01Z"
    observedGeneration: 1
  - type: Matched
    status: "True"
    reason: Ready
    message: OK
    lastTransitionTime: "2026-11-26T10:00:04Z"
    observedGeneration: 1
  - type: Ready
    status: "True"
    reason: Ready
    message: OK
    lastTransitionTime: "2026-11-26T10:00:05Z"
    observedGeneration: 1
"#;

/// resources.md 10.1 (4).
const LISTENER_ERROR: &str = r#"apiVersion: skupper.io/v2alpha1
kind: Listener
metadata:
  name: backend
  namespace: west
  generation: 2
  annotations:
    skupperd.io/accepted-generation: "1"
    skupperd.io/input-sha256: 47d0b1e2c3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0
    skupperd.io/source: input/resources/Listener-backend.yaml
spec:
  routingKey: backend
  host: 0.0.0.0
  port: 8080
status:
  status: Error
  message: 'listener "backend": spec.port 70000 is out of range 1-65535 (input/resources/Listener-backend.yaml:9:9); still serving generation 1'
  hasMatchingConnector: true
  conditions:
  - {type: Configured, status: "False", reason: Error, message: 'listener "backend": spec.port 70000 is out of range 1-65535 (input/resources/Listener-backend.yaml:9:9); still serving generation 1', lastTransitionTime: "2026-11-26T10:30:00Z", observedGeneration: 2}
  - {type: Matched, status: "True", reason: Ready, message: OK, lastTransitionTime: "2026-11-26T10:00:04Z", observedGeneration: 2}
  - {type: Ready, status: "False", reason: Error, message: 'listener "backend": spec.port 70000 is out of range 1-65535 (input/resources/Listener-backend.yaml:9:9); still serving generation 1', lastTransitionTime: "2026-11-26T10:30:00Z", observedGeneration: 2}
"#;

/// resources.md 10.1 (3): only the status differs from (1).
const LISTENER_UNREACHABLE_STATUS: &str = r#"
status:
  status: Pending
  message: router not reachable
  hasMatchingConnector: false
  conditions:
  - {type: Configured, status: "Unknown", reason: Pending, message: router not reachable, lastTransitionTime: "2026-11-26T10:20:00Z", observedGeneration: 1}
  - {type: Matched, status: "Unknown", reason: Pending, message: router not reachable, lastTransitionTime: "2026-11-26T10:20:00Z", observedGeneration: 1}
  - {type: Ready, status: "False", reason: Pending, message: router not reachable, lastTransitionTime: "2026-11-26T10:20:00Z", observedGeneration: 1}
"#;

fn listener_ready() -> Value {
    yaml_serde::from_str(LISTENER_READY).unwrap()
}

fn at<'a>(doc: &'a mut Value, pointer: &str) -> &'a mut Value {
    doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}"))
}

#[test]
fn listener_examples_of_resources_md_pass() {
    let c = crds();
    assert_eq!(c.validate_yaml(LISTENER_READY), Vec::<String>::new());
    assert_eq!(c.validate_yaml(LISTENER_ERROR), Vec::<String>::new());
    let mut unreachable = listener_ready();
    let status: Value = yaml_serde::from_str(LISTENER_UNREACHABLE_STATUS).unwrap();
    unreachable["status"] = status["status"].clone();
    assert_eq!(c.validate(&unreachable), Vec::<String>::new());
}

#[test]
fn an_extra_field_anywhere_fails() {
    let c = crds();
    for (pointer, path) in [
        ("", "extra"),
        ("/metadata", "metadata.extra"),
        ("/spec", "spec.extra"),
        ("/status", "status.extra"),
        ("/status/conditions/1", "status.conditions[1].extra"),
    ] {
        let mut doc = listener_ready();
        at(&mut doc, pointer)
            .as_object_mut()
            .unwrap()
            .insert("extra".into(), json!("x"));
        let problems = c.validate(&doc);
        assert_eq!(problems.len(), 1, "{pointer}: {problems:#?}");
        assert!(
            problems[0].starts_with(&format!("{path}: unknown field")),
            "{problems:#?}"
        );
    }
    // `settings` is an open map of strings.
    let mut doc = listener_ready();
    at(&mut doc, "/spec")
        .as_object_mut()
        .unwrap()
        .insert("settings".into(), json!({"observer": "http1"}));
    assert!(c.validate(&doc).is_empty());
    at(&mut doc, "/spec/settings")
        .as_object_mut()
        .unwrap()
        .insert("n".into(), json!(1));
    assert_eq!(
        c.validate(&doc),
        ["spec.settings.n: expected a string, found a number (1)"]
    );
}

#[test]
fn wrong_types_and_enum_values_fail() {
    let c = crds();
    let cases: [(&str, Value, &str); 6] = [
        ("/spec/port", json!("8080"), "spec.port: expected an integer, found a string \"8080\""),
        ("/spec/host", json!(0), "spec.host: expected a string, found a number (0)"),
        ("/status/hasMatchingConnector", json!("true"), "status.hasMatchingConnector: expected a boolean"),
        ("/status/conditions/0/status", json!(true), "status.conditions[0].status: expected a string, found a boolean (true)"),
        ("/status/conditions/0/status", json!("Maybe"), "status.conditions[0].status: \"Maybe\" is not one of [\"True\", \"False\", \"Unknown\"]"),
        ("/status/conditions/0/observedGeneration", json!(-1), "status.conditions[0].observedGeneration: -1 must be >= 0"),
    ];
    for (pointer, value, expected) in cases {
        let mut doc = listener_ready();
        *at(&mut doc, pointer) = value;
        let problems = c.validate(&doc);
        assert_eq!(problems.len(), 1, "{pointer}: {problems:#?}");
        assert!(problems[0].starts_with(expected), "{problems:#?}");
    }
    let mut doc = listener_ready();
    at(&mut doc, "/spec")
        .as_object_mut()
        .unwrap()
        .insert("observer".into(), json!("http3"));
    assert_problem(&c.validate(&doc), "spec.observer: \"http3\" is not one of");
    // An unquoted True in YAML is a boolean, not the string "True".
    let unquoted = LISTENER_READY.replacen("status: \"True\"", "status: True", 1);
    assert_problem(
        &c.validate_yaml(&unquoted),
        "status.conditions[0].status: expected a string",
    );
}

#[test]
fn condition_fields_follow_their_patterns_and_formats() {
    let c = crds();
    for (pointer, value, needle) in [
        (
            "/status/conditions/0/reason",
            json!("not ready"),
            "does not match the pattern",
        ),
        (
            "/status/conditions/0/reason",
            json!("Ready!"),
            "does not match the pattern",
        ),
        (
            "/status/conditions/0/reason",
            json!(""),
            "0 characters long, allowed 1 to 1024",
        ),
        (
            "/status/conditions/0/type",
            json!("-Configured"),
            "does not match the pattern",
        ),
        (
            "/status/conditions/0/lastTransitionTime",
            json!("2026-11-26 10:00:01"),
            "is not an RFC 3339 date-time",
        ),
    ] {
        let mut doc = listener_ready();
        *at(&mut doc, pointer) = value;
        assert_problem(&c.validate(&doc), needle);
    }
    let mut doc = listener_ready();
    at(&mut doc, "/status/conditions/0")
        .as_object_mut()
        .unwrap()
        .remove("message");
    assert_eq!(
        c.validate(&doc),
        ["status.conditions[0].message: required field is missing"]
    );
}

#[test]
fn top_level_fields_are_checked() {
    let c = crds();
    let mut doc = listener_ready();
    doc["apiVersion"] = json!("skupper.io/v1alpha1");
    assert_problem(
        &c.validate(&doc),
        "apiVersion: must be \"skupper.io/v2alpha1\"",
    );
    let mut doc = listener_ready();
    doc["kind"] = json!("Gadget");
    assert_problem(
        &c.validate(&doc),
        "kind: \"Gadget\" is not a Skupper v2alpha1 kind",
    );
    let mut doc = listener_ready();
    at(&mut doc, "/metadata")
        .as_object_mut()
        .unwrap()
        .remove("name");
    assert_eq!(
        c.validate(&doc),
        ["metadata.name: required field is missing"]
    );
    let mut doc = listener_ready();
    at(&mut doc, "/metadata/annotations")
        .as_object_mut()
        .unwrap()
        .insert("n".into(), json!(1));
    assert_eq!(
        c.validate(&doc),
        ["metadata.annotations.n: expected a string, found a number (1)"]
    );
    let mut doc = listener_ready();
    at(&mut doc, "/spec")
        .as_object_mut()
        .unwrap()
        .remove("port");
    assert_eq!(c.validate(&doc), ["spec.port: required field is missing"]);
    assert_problem(&c.validate(&json!([1])), "(document): expected an object");
}

#[test]
fn connector_needs_exactly_one_of_host_and_selector() {
    let c = crds();
    let base = json!({
        "apiVersion": "skupper.io/v2alpha1", "kind": "Connector",
        "metadata": {"name": "db"},
        "spec": {"routingKey": "db", "host": "127.0.0.1", "port": 5432, "tlsCredentials": "db-tls", "useClientCert": true}
    });
    assert!(c.validate(&base).is_empty(), "{:#?}", c.validate(&base));
    let mut both = base.clone();
    both["spec"]["selector"] = json!("app=db");
    assert_problem(
        &c.validate(&both),
        "spec: must match exactly one of: {has selector}, {has host} (matches 2)",
    );
    let mut neither = base.clone();
    neither["spec"].as_object_mut().unwrap().remove("host");
    assert_problem(&c.validate(&neither), "(matches 0)");
}

#[test]
fn multi_key_listener_strategy_rules() {
    let c = crds();
    let base = json!({
        "apiVersion": "skupper.io/v2alpha1", "kind": "MultiKeyListener",
        "metadata": {"name": "m"},
        "spec": {"host": "0.0.0.0", "port": 9090, "strategy": {"priority": {"routingKeys": ["a", "b"]}}},
        "status": {"status": "Ready", "hasDestination": true,
                   "strategy": {"priority": {"routingKeysReachable": ["a"]}}}
    });
    assert!(c.validate(&base).is_empty(), "{:#?}", c.validate(&base));
    let mut both = base.clone();
    both["spec"]["strategy"]["weighted"] = json!({"routingKeys": {"a": 1}});
    assert_problem(
        &c.validate(&both),
        "spec.strategy: exactly one of the fields in [priority weighted] must be set",
    );
    let mut empty = base.clone();
    empty["spec"]["strategy"]["priority"]["routingKeys"] = json!([]);
    assert_problem(
        &c.validate(&empty),
        "spec.strategy.priority.routingKeys: 0 items, allowed 1 to 256",
    );
    let mut repeated = base.clone();
    repeated["spec"]["strategy"]["priority"]["routingKeys"] = json!(["a", "a"]);
    assert_problem(
        &c.validate(&repeated),
        "spec.strategy.priority.routingKeys[1]: duplicate",
    );
    let mut no_strategy = base;
    no_strategy["spec"]
        .as_object_mut()
        .unwrap()
        .remove("strategy");
    assert_problem(
        &c.validate(&no_strategy),
        "spec.strategy: required field is missing",
    );
}

#[test]
fn other_kinds_validate_against_their_own_crds() {
    let c = crds();
    let docs = r#"apiVersion: skupper.io/v2alpha1
kind: Site
metadata: {name: west, namespace: default, uid: 6f1c2d3e-8a4b-4c1d-9e2f-0a1b2c3d4e5f}
spec: {linkAccess: default, settings: {routerLogging: info}}
status:
  status: Ready
  message: OK
  sitesInNetwork: 2
  endpoints:
  - {name: west-inter-router, host: 10.0.0.1, port: "55671", group: skupper-router}
---
apiVersion: skupper.io/v2alpha1
kind: Link
metadata: {name: link-west}
spec:
  tlsCredentials: link-west
  cost: 1
  endpoints:
  - {name: inter-router, host: 10.0.0.1, port: "55671"}
  - {name: edge, host: 10.0.0.1, port: "45671"}
status: {status: Pending, message: connecting to 10.0.0.1:55671, remoteSiteId: x}
---
apiVersion: skupper.io/v2alpha1
kind: RouterAccess
metadata: {name: skupper-local}
spec:
  roles: [{name: normal, port: 5671}]
  bindHost: 127.0.0.1
  tlsCredentials: skupper-local-server
  issuer: skupper-local-ca
"#;
    assert_eq!(c.validate_yaml(docs), Vec::<String>::new());
    // A Site has no `port`; the Link endpoint port is a string.
    let bad = docs
        .replacen("linkAccess: default", "linkAccess: default, port: 1", 1)
        .replacen("port: \"45671\"", "port: 45671", 1);
    let problems = c.validate_yaml(&bad);
    assert_eq!(
        problems,
        [
            "document 1: spec.port: unknown field (not in the schema)",
            "document 2: spec.endpoints[1].port: expected a string, found a number (45671)"
        ]
    );
    assert_problem(
        &c.validate_yaml("a: [unclosed"),
        "(document): not valid YAML",
    );
}
