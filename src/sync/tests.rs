//! Unit tests of the live plan: each rule of router.md 3 on a small
//! scenario, with the router's side produced by the schema-driven model so
//! the rows look like real QUERY answers.

use super::model::Router;
use super::*;
use crate::plan::Platform;
use serde_json::json;

fn e(kind: &str, attrs: Value) -> Entity {
    let Value::Object(attrs) = attrs else {
        panic!("attrs must be an object")
    };
    Entity {
        kind: kind.into(),
        attrs,
    }
}

fn cert(profile: &str, file: &str) -> String {
    format!("/etc/skupper-router/runtime/certs/{profile}/{file}")
}

fn server_profile(name: &str) -> Entity {
    e(
        "sslProfile",
        json!({"name": name, "caCertFile": cert(name, "ca.crt"),
               "certFile": cert(name, "tls.crt"), "privateKeyFile": cert(name, "tls.key")}),
    )
}

fn management() -> Vec<Entity> {
    vec![
        server_profile("skupper-local-server"),
        e(
            "listener",
            json!({"name": "skupper-local-normal", "role": "normal", "host": "127.0.0.1",
                   "port": "5671", "sslProfile": "skupper-local-server",
                   "saslMechanisms": "EXTERNAL", "authenticatePeer": true}),
        ),
    ]
}

fn web(port: &str) -> Entity {
    e(
        "tcpListener",
        json!({"name": "listener/web", "address": "web", "host": "0.0.0.0", "port": port}),
    )
}

fn db(tls: Option<&str>) -> Entity {
    let mut attrs = json!({"name": "connector/db@10.0.0.5", "address": "db",
                           "host": "10.0.0.5", "port": "5432"});
    if let Some(p) = tls {
        attrs["sslProfile"] = json!(p);
        attrs["verifyHostname"] = json!(true);
    }
    e("tcpConnector", attrs)
}

/// A router holding `entities`, created in dependency order.
fn router(entities: &[Entity]) -> Router {
    let mut r = Router::new();
    let rank = |k: &str| KINDS.iter().position(|x| *x == k).unwrap_or(99);
    let mut sorted: Vec<&Entity> = entities.iter().collect();
    sorted.sort_by_key(|e| rank(&e.kind));
    for ent in sorted {
        if !KINDS.contains(&ent.kind.as_str()) {
            r.preload(&ent.kind, &ent.attrs);
            continue;
        }
        r.create(&ent.kind, &ent.attrs)
            .unwrap_or_else(|err| panic!("setup {:?}: {err}", ent.name()));
    }
    r
}

/// Applies the plan; every step must be accepted and the result must need
/// no further operation.
fn apply_and_converge(desired: &[Entity], r: &mut Router) -> Vec<String> {
    let ops = plan(desired, &r.table);
    for op in &ops {
        r.apply(op)
            .unwrap_or_else(|err| panic!("{op:?} refused: {err}"));
    }
    assert_eq!(plan(desired, &r.table), vec![], "not converged");
    summarize(&ops)
}

fn with_management(mut v: Vec<Entity>) -> Vec<Entity> {
    v.extend(management());
    v
}

#[test]
fn a_router_loaded_with_the_desired_entities_needs_nothing() {
    let desired = with_management(vec![
        server_profile("web-tls"),
        e(
            "tcpListener",
            json!({"name": "listener/web", "address": "web", "host": "0.0.0.0",
                   "port": "8080", "sslProfile": "web-tls", "authenticatePeer": true}),
        ),
        db(Some("web-tls")),
        e(
            "connector",
            json!({"name": "west", "role": "inter-router", "host": "w.example",
                   "port": "55671", "cost": 1, "sslProfile": "web-tls"}),
        ),
        e(
            "listener",
            json!({"name": "ra-inter-router", "role": "inter-router", "port": "55671",
                   "sslProfile": "web-tls", "saslMechanisms": "EXTERNAL",
                   "authenticatePeer": true}),
        ),
    ]);
    let r = router(&desired);
    // The rows carry materialised defaults the desired entities leave out.
    let row = r.get("tcpListener", "listener/web").unwrap();
    assert_eq!(row.get("observer"), Some(&json!("auto")));
    assert_eq!(plan(&desired, &r.table), vec![]);
}

#[test]
fn values_compare_by_meaning_not_by_json_shape() {
    let observed = router(&with_management(vec![
        e(
            "connector",
            json!({"name": "west", "role": "inter-router", "host": "w", "port": "55671", "cost": 2}),
        ),
        web("8080"),
    ]));
    // Port as a number, cost as a string, booleans as the router's words,
    // defaults spelled out: all the same entity to the router.
    let desired = with_management(vec![
        e(
            "connector",
            json!({"name": "west", "role": "inter-router", "host": "w", "port": 55671,
                   "cost": "2", "verifyHostname": "yes"}),
        ),
        e(
            "tcpListener",
            json!({"name": "listener/web", "address": "web", "host": "0.0.0.0",
                   "port": 8080, "observer": "auto", "authenticatePeer": "off"}),
        ),
    ]);
    assert_eq!(plan(&desired, &observed.table), vec![]);
}

#[test]
fn an_observer_change_alone_is_an_update_of_observer() {
    let mut r = router(&with_management(vec![e(
        "tcpListener",
        json!({"name": "listener/web", "address": "web", "host": "0.0.0.0",
               "port": "8080", "observer": "http1"}),
    )]));
    let lines = apply_and_converge(&with_management(vec![web("8080")]), &mut r);
    assert_eq!(lines, ["update tcpListener listener/web (observer auto)"]);
}

#[test]
fn any_other_tcp_listener_change_replaces_it() {
    let mut r = router(&with_management(vec![web("8080")]));
    let mut changed = web("8081");
    changed.attrs.insert("observer".into(), json!("http2"));
    let lines = apply_and_converge(&with_management(vec![changed]), &mut r);
    assert_eq!(
        lines,
        [
            "delete tcpListener listener/web",
            "create tcpListener listener/web"
        ]
    );
    assert_eq!(
        r.get("tcpListener", "listener/web").unwrap().get("port"),
        Some(&json!("8081"))
    );
}

#[test]
fn a_higher_ordinal_is_an_update_and_a_lower_one_is_no_change() {
    let mut rotated = server_profile("web-tls");
    rotated.attrs.insert("ordinal".into(), json!(2));
    let mut r = router(&with_management(vec![
        server_profile("web-tls"),
        db(Some("web-tls")),
    ]));
    let desired = with_management(vec![rotated.clone(), db(Some("web-tls"))]);
    let lines = apply_and_converge(&desired, &mut r);
    assert_eq!(lines, ["update sslProfile web-tls (ordinal 2)"]);

    let stale = with_management(vec![server_profile("web-tls"), db(Some("web-tls"))]);
    assert_eq!(plan(&stale, &r.table), vec![]);
}

#[test]
fn a_profile_whose_files_change_is_replaced_with_the_entities_bound_to_it() {
    let ca_only = e(
        "sslProfile",
        json!({"name": "db-tls-profile", "caCertFile": cert("db-tls-profile", "ca.crt")}),
    );
    let mut r = router(&with_management(vec![
        server_profile("db-tls-profile"),
        db(Some("db-tls-profile")),
        web("8080"),
    ]));
    let desired = with_management(vec![ca_only, db(Some("db-tls-profile")), web("8080")]);
    let lines = apply_and_converge(&desired, &mut r);
    assert_eq!(
        lines,
        [
            "delete tcpConnector connector/db@10.0.0.5",
            "delete sslProfile db-tls-profile",
            "create sslProfile db-tls-profile",
            "create tcpConnector connector/db@10.0.0.5",
        ]
    );
    let row = r.get("sslProfile", "db-tls-profile").unwrap();
    assert!(row.get("certFile").is_none_or(Value::is_null));
}

#[test]
fn operations_follow_the_order_of_router_md_3_5() {
    let mut observed = with_management(vec![
        server_profile("old-tls"),
        server_profile("rot-tls"),
        e(
            "tcpListener",
            json!({"name": "listener/gone", "address": "g", "port": "9000", "sslProfile": "old-tls"}),
        ),
        e(
            "tcpListener",
            json!({"name": "listener/obs", "address": "o", "port": "9001", "observer": "none"}),
        ),
        e(
            "tcpListener",
            json!({"name": "multiAddress/m", "multiAddressStrategy": "priority", "port": "9002"}),
        ),
        e(
            "listenerAddress",
            json!({"name": "m/a", "address": "a", "value": 1, "listener": "multiAddress/m"}),
        ),
        db(None),
        e(
            "connector",
            json!({"name": "west", "role": "inter-router", "host": "w", "port": "55671",
                   "sslProfile": "old-tls"}),
        ),
        e(
            "listener",
            json!({"name": "ra-edge", "role": "edge", "port": "45671"}),
        ),
    ]);
    let mut r = router(&observed);
    observed.clear();
    let mut rot = server_profile("rot-tls");
    rot.attrs.insert("ordinal".into(), json!(1));
    let desired = with_management(vec![
        server_profile("new-tls"),
        rot,
        e(
            "tcpListener",
            json!({"name": "listener/obs", "address": "o", "port": "9001"}),
        ),
        e(
            "tcpListener",
            json!({"name": "multiAddress/m", "multiAddressStrategy": "priority", "port": "9003"}),
        ),
        e(
            "listenerAddress",
            json!({"name": "m/a", "address": "a", "value": 1, "listener": "multiAddress/m"}),
        ),
        e(
            "listenerAddress",
            json!({"name": "m/b", "address": "b", "value": 0, "listener": "multiAddress/m"}),
        ),
        db(Some("new-tls")),
        e(
            "connector",
            json!({"name": "east", "role": "inter-router", "host": "e", "port": "55671",
                   "sslProfile": "new-tls"}),
        ),
        e(
            "listener",
            json!({"name": "ra-edge", "role": "edge", "port": "45672", "sslProfile": "rot-tls"}),
        ),
    ]);
    let lines = apply_and_converge(&desired, &mut r);
    assert_eq!(
        lines,
        [
            // (a)
            "create sslProfile new-tls",
            "update sslProfile rot-tls (ordinal 1)",
            // (b)
            "delete listenerAddress m/a",
            "delete tcpListener listener/gone",
            "delete tcpListener multiAddress/m",
            "delete tcpConnector connector/db@10.0.0.5",
            "delete connector west",
            "delete listener ra-edge",
            // (c)
            "create tcpConnector connector/db@10.0.0.5",
            "create tcpListener multiAddress/m",
            "create listenerAddress m/a",
            "create listenerAddress m/b",
            "create connector east",
            "create listener ra-edge",
            "update tcpListener listener/obs (observer auto)",
            // (d)
            "delete sslProfile old-tls",
        ]
    );
}

#[test]
fn management_entities_and_unmanaged_types_are_never_touched() {
    let mut observed = vec![
        // Differs from the desired management profile and listener.
        e(
            "sslProfile",
            json!({"name": "skupper-local-server", "caCertFile": "/elsewhere/ca.crt"}),
        ),
        e(
            "listener",
            json!({"name": "skupper-local-normal", "role": "normal", "port": "5999",
                   "sslProfile": "skupper-local-server"}),
        ),
    ];
    observed.push(e("site", json!({"name": "s-1234", "location": "here"})));
    let r = router(&observed);
    let mut desired = management();
    desired.push(e("router", json!({"id": "s-1234", "mode": "interior"})));
    desired.push(e("log", json!({"module": "DEFAULT", "enable": "info+"})));
    desired.push(e("site", json!({"name": "s-1234", "namespace": "ns"})));
    assert_eq!(plan(&desired, &r.table), vec![]);
    // Not desired at all: still left alone.
    assert_eq!(plan(&[], &r.table), vec![]);
}

#[test]
fn renewed_management_certificates_raise_the_management_profiles_ordinal_only() {
    let r = router(&management());
    let mut desired = management();
    desired[0].attrs.insert("ordinal".into(), json!(1));
    // Even with other attributes differing, only the ordinal moves live.
    desired[0]
        .attrs
        .insert("caCertFile".into(), json!("/elsewhere/ca.crt"));
    assert_eq!(
        plan(&desired, &r.table),
        vec![Op::Update {
            kind: "sslProfile".into(),
            name: "skupper-local-server".into(),
            attrs: [("ordinal".to_string(), json!(1))].into_iter().collect(),
        }]
    );
    let mut current = management();
    current[0].attrs.insert("ordinal".into(), json!(1));
    let r = router(&current);
    assert_eq!(
        plan(&desired, &r.table),
        vec![],
        "never backwards, never twice"
    );
}

/// Log rows as the router lists them: one per module, named by identity.
fn log_row(module: &str, enable: &str) -> Entity {
    e(
        "log",
        json!({"name": format!("log/{module}"), "module": module, "enable": enable}),
    )
}

#[test]
fn a_changed_log_level_is_an_update_of_enable_by_identity() {
    let mut r = router(&with_management(vec![
        log_row("ROUTER_CORE", "error+"),
        log_row("DEFAULT", "info+"),
        log_row("ROUTER", "info+"),
    ]));
    let mut desired = management();
    desired.push(e(
        "log",
        json!({"module": "ROUTER_CORE", "enable": "error+"}),
    ));
    desired.push(e("log", json!({"module": "DEFAULT", "enable": "debug+"})));
    assert_eq!(
        plan(&desired, &r.table),
        vec![Op::Update {
            kind: "log".into(),
            name: "log/DEFAULT".into(),
            attrs: json!({"enable": "debug+"}).as_object().cloned().unwrap(),
        }]
    );
    assert_eq!(
        apply_and_converge(&desired, &mut r),
        ["update log log/DEFAULT (enable debug+)"]
    );
    assert_eq!(
        r.get("log", "log/DEFAULT")
            .and_then(|row| row.get("enable")),
        Some(&json!("debug+"))
    );
}

#[test]
fn a_log_module_the_router_does_not_list_is_left_alone() {
    let r = router(&with_management(vec![log_row("DEFAULT", "info+")]));
    let mut desired = management();
    desired.push(e(
        "log",
        json!({"module": "ROUTER_CORE", "enable": "error+"}),
    ));
    desired.push(e("log", json!({"module": "DEFAULT", "enable": "info+"})));
    assert_eq!(plan(&desired, &r.table), vec![]);
    // Nothing desired: log levels are never reset or deleted.
    assert_eq!(plan(&management(), &r.table), vec![]);
}

#[test]
fn owned_entities_nobody_desires_are_deleted_profiles_last() {
    let mut r = router(&with_management(vec![
        server_profile("web-tls"),
        e(
            "tcpListener",
            json!({"name": "listener/web", "address": "web", "port": "8080", "sslProfile": "web-tls"}),
        ),
    ]));
    let lines = apply_and_converge(&management(), &mut r);
    assert_eq!(
        lines,
        [
            "delete tcpListener listener/web",
            "delete sslProfile web-tls"
        ]
    );
}

#[test]
fn a_name_taken_by_another_type_is_freed_before_it_is_reused() {
    // A Link "west" goes away while credentials "west" appear.
    let mut r = router(&with_management(vec![e(
        "connector",
        json!({"name": "west", "role": "inter-router", "host": "w", "port": "55671"}),
    )]));
    let lines = apply_and_converge(&with_management(vec![server_profile("west")]), &mut r);
    assert_eq!(lines, ["delete connector west", "create sslProfile west"]);

    // And back: the profile must go before the connector can be created.
    let desired = with_management(vec![e(
        "connector",
        json!({"name": "west", "role": "inter-router", "host": "w", "port": "55671"}),
    )]);
    let lines = apply_and_converge(&desired, &mut r);
    assert_eq!(lines, ["delete sslProfile west", "create connector west"]);
}

#[test]
fn summaries_name_the_operation_type_entity_and_change() {
    let mut attrs = Map::new();
    attrs.insert("observer".into(), json!("http1"));
    attrs.insert("ordinal".into(), json!(3));
    let ops = [
        Op::Create(web("8080")),
        Op::Update {
            kind: "tcpListener".into(),
            name: "listener/web".into(),
            attrs,
        },
        Op::Delete {
            kind: "connector".into(),
            name: "west".into(),
        },
    ];
    assert_eq!(
        summarize(&ops),
        [
            "create tcpListener listener/web",
            "update tcpListener listener/web (observer http1, ordinal 3)",
            "delete connector west",
        ]
    );
}

#[test]
fn management_paths_replace_the_container_variable_on_podman_and_docker_only() {
    use crate::render::skrouterd::cert_path;
    let mut attrs = Map::new();
    attrs.insert("name".into(), json!("web-tls"));
    for platform in [Platform::Podman, Platform::Docker, Platform::Linux] {
        attrs.insert(
            "certFile".into(),
            json!(cert_path(
                platform,
                "/data/namespaces/ns",
                "web-tls",
                "tls.crt"
            )),
        );
        let rendered = vec![
            ("sslProfile".to_string(), attrs.clone()),
            ("tcpListener".to_string(), Map::new()),
        ];
        let out = management_entities(rendered, platform);
        let got = out[0].attrs.get("certFile").and_then(Value::as_str);
        let expected = match platform {
            Platform::Linux => "/data/namespaces/ns/runtime/certs/web-tls/tls.crt",
            _ => "/etc/skupper-router/runtime/certs/web-tls/tls.crt",
        };
        assert_eq!(got, Some(expected), "{platform:?}");
        assert_eq!(out[0].kind, "sslProfile");
        assert_eq!(out[1].kind, "tcpListener");
    }
}

fn link(name: &str, port: &str) -> Entity {
    e(
        "connector",
        json!({"name": name, "role": "inter-router", "host": "127.0.0.1",
               "port": port, "cost": 1, "sslProfile": format!("{name}-profile")}),
    )
}

fn link_profile(name: &str) -> Entity {
    server_profile(&format!("{name}-profile"))
}

#[test]
fn links_are_added_and_removed_live_and_a_changed_endpoint_replaces_only_its_connector() {
    let mut r = router(&with_management(vec![]));
    let two = with_management(vec![
        link_profile("to-east"),
        link("to-east", "55671"),
        link_profile("to-north"),
        link("to-north", "55671"),
    ]);
    assert_eq!(
        apply_and_converge(&two, &mut r),
        [
            "create sslProfile to-east-profile",
            "create sslProfile to-north-profile",
            "create connector to-east",
            "create connector to-north",
        ]
    );
    let moved = with_management(vec![
        link_profile("to-east"),
        link("to-east", "55672"),
        link_profile("to-north"),
        link("to-north", "55671"),
    ]);
    assert_eq!(
        apply_and_converge(&moved, &mut r),
        ["delete connector to-east", "create connector to-east"]
    );
    // A rotated Secret: the profile's ordinal only, the connector stays.
    let mut rotated = link_profile("to-east");
    rotated.attrs.insert("ordinal".into(), json!(1));
    let rotated = with_management(vec![
        rotated,
        link("to-east", "55672"),
        link_profile("to-north"),
        link("to-north", "55671"),
    ]);
    assert_eq!(
        apply_and_converge(&rotated, &mut r),
        ["update sslProfile to-east-profile (ordinal 1)"]
    );
    let one = with_management(vec![link_profile("to-north"), link("to-north", "55671")]);
    assert_eq!(
        apply_and_converge(&one, &mut r),
        [
            "delete connector to-east",
            "delete sslProfile to-east-profile"
        ]
    );
}
