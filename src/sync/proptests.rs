//! Property tests of the live plan against the schema-driven router model:
//! over generated desired sets and routers derived from them (entities kept,
//! changed or missing, plus unrelated extras, including names that clash
//! across types), applying the plan is accepted step by step, reaches the
//! desired state, and leaves nothing more to do; unchanged entities are
//! never touched, nor are the management entities or unmanaged types.

use super::model::{schema, Router};
use super::*;
use proptest::prelude::*;
use serde_json::json;

const PROFILES: [&str; 3] = ["alpha", "beta", "west"];

fn obj(v: Value) -> Attrs {
    match v {
        Value::Object(m) => m,
        _ => Attrs::new(),
    }
}

fn entity(kind: &str, v: Value) -> Entity {
    Entity {
        kind: kind.into(),
        attrs: obj(v),
    }
}

fn path(profile: &str, file: &str) -> Value {
    json!(format!(
        "/etc/skupper-router/runtime/certs/{profile}/{file}"
    ))
}

fn profile() -> impl Strategy<Value = Entity> {
    (prop::sample::select(PROFILES.to_vec()), 0..3u8, 0..3i64).prop_map(|(name, files, ordinal)| {
        let mut a = obj(json!({"name": name}));
        if files != 1 {
            a.insert("caCertFile".into(), path(name, "ca.crt"));
        }
        if files != 0 {
            a.insert("certFile".into(), path(name, "tls.crt"));
            a.insert("privateKeyFile".into(), path(name, "tls.key"));
        }
        if ordinal > 0 {
            a.insert("ordinal".into(), json!(ordinal));
        }
        Entity {
            kind: "sslProfile".into(),
            attrs: a,
        }
    })
}

fn port() -> impl Strategy<Value = Value> {
    // Ports as the renderer writes them, and as numbers (router.md 1.1).
    (
        prop::sample::select(vec![8080u16, 8081, 55671]),
        any::<bool>(),
    )
        .prop_map(|(p, s)| if s { json!(p.to_string()) } else { json!(p) })
}

fn tls() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(PROFILES.to_vec()))
}

fn tcp_listener() -> impl Strategy<Value = Entity> {
    let name = prop::sample::select(vec!["listener/web", "listener/db", "multiAddress/m"]);
    let observer = prop::option::of(prop::sample::select(vec!["auto", "http1", "none"]));
    let host = prop::option::of(prop::sample::select(vec!["", "0.0.0.0"]));
    (name, port(), host, tls(), observer, any::<bool>()).prop_map(
        |(name, port, host, tls, observer, auth)| {
            let mut a = obj(json!({"name": name, "port": port}));
            if name.starts_with("multiAddress/") {
                a.insert("multiAddressStrategy".into(), json!("priority"));
            } else {
                a.insert(
                    "address".into(),
                    json!(name.trim_start_matches("listener/")),
                );
            }
            if let Some(h) = host {
                a.insert("host".into(), json!(h));
            }
            if let Some(p) = tls {
                a.insert("sslProfile".into(), json!(p));
                if auth {
                    a.insert("authenticatePeer".into(), json!(true));
                }
            }
            if let Some(o) = observer {
                a.insert("observer".into(), json!(o));
            }
            entity("tcpListener", Value::Object(a))
        },
    )
}

fn tcp_connector() -> impl Strategy<Value = Entity> {
    let host = prop::sample::select(vec!["10.0.0.5", "db.local"]);
    (host, port(), tls(), any::<bool>()).prop_map(|(host, port, tls, verify)| {
        let mut a = obj(
            json!({"name": format!("connector/db@{host}"), "address": "db",
                               "host": host, "port": port}),
        );
        if let Some(p) = tls {
            a.insert("sslProfile".into(), json!(p));
            a.insert("verifyHostname".into(), json!(verify));
        }
        entity("tcpConnector", Value::Object(a))
    })
}

fn connector() -> impl Strategy<Value = Entity> {
    let name = prop::sample::select(vec!["west", "east"]);
    let role = prop::sample::select(vec!["inter-router", "edge"]);
    let cost = prop::option::of((1..3i64, any::<bool>()));
    (name, role, port(), cost, tls()).prop_map(|(name, role, port, cost, tls)| {
        let mut a = obj(json!({"name": name, "role": role, "host": "peer.example", "port": port}));
        if let Some((c, as_string)) = cost {
            a.insert(
                "cost".into(),
                if as_string {
                    json!(c.to_string())
                } else {
                    json!(c)
                },
            );
        }
        if let Some(p) = tls {
            a.insert("sslProfile".into(), json!(p));
        }
        entity("connector", Value::Object(a))
    })
}

fn listener() -> impl Strategy<Value = Entity> {
    let name = prop::sample::select(vec!["ra-inter-router", "ra-edge", "alpha"]);
    let host = prop::option::of(prop::sample::select(vec!["", "::"]));
    (name, host, port(), tls()).prop_map(|(name, host, port, tls)| {
        let role = if name.ends_with("edge") {
            "edge"
        } else {
            "inter-router"
        };
        let mut a = obj(json!({"name": name, "role": role, "port": port,
                               "saslMechanisms": "EXTERNAL", "authenticatePeer": true}));
        if let Some(h) = host {
            a.insert("host".into(), json!(h));
        }
        if let Some(p) = tls {
            a.insert("sslProfile".into(), json!(p));
        }
        entity("listener", Value::Object(a))
    })
}

fn listener_address() -> impl Strategy<Value = Entity> {
    (prop::sample::select(vec!["a", "b", "c"]), 0..3i64).prop_map(|(key, value)| {
        entity(
            "listenerAddress",
            json!({"name": format!("m/{key}"), "address": key, "value": value,
                   "listener": "multiAddress/m"}),
        )
    })
}

fn any_entity() -> impl Strategy<Value = Entity> {
    prop_oneof![
        profile(),
        tcp_listener(),
        tcp_connector(),
        connector(),
        listener(),
        listener_address()
    ]
}

fn rank(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len())
}

/// What validation guarantees of a desired set: names unique across
/// types, references resolvable.
fn consistent(mut v: Vec<Entity>) -> Vec<Entity> {
    v.sort_by_key(|e| rank(&e.kind));
    let mut names = BTreeSet::new();
    v.retain(|e| names.insert(e.name().unwrap_or_default().to_owned()));
    let has = |kind: &str, name: &str| v.iter().any(|e| e.kind == kind && e.name() == Some(name));
    let profiles: BTreeSet<String> = PROFILES
        .iter()
        .filter(|p| has("sslProfile", p))
        .map(|p| p.to_string())
        .collect();
    let multi = has("tcpListener", "multiAddress/m");
    v.retain(|e| e.kind != "listenerAddress" || multi);
    for e in &mut v {
        if let Some(p) = e.attrs.get("sslProfile").and_then(Value::as_str) {
            if !profiles.contains(p) {
                e.attrs.remove("sslProfile");
                e.attrs.remove("verifyHostname");
                if e.kind == "tcpListener" {
                    e.attrs.remove("authenticatePeer");
                }
            }
        }
    }
    v
}

/// What skupperd must do about a difference.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Diff {
    /// Nothing: the same, or a difference that is no change.
    None,
    /// UPDATE observer.
    Observer,
    /// UPDATE ordinal.
    Ordinal,
    /// Replace.
    Other,
}

/// The router's copy of a desired entity, changed in one way.
fn perturb(e: &Entity, how: u8) -> (Attrs, Diff) {
    let mut a = e.attrs.clone();
    let bump_port = |a: &mut Attrs| {
        a.insert("port".into(), json!("9999"));
    };
    let diff = match (e.kind.as_str(), how % 3) {
        ("sslProfile", 0) => {
            // The router is behind: the ordinal went up since.
            let o = a.get("ordinal").and_then(Value::as_i64).unwrap_or(0);
            if o == 0 {
                a.insert("ordinal".into(), json!(1));
                return (a, Diff::None);
            }
            a.insert("ordinal".into(), json!(o - 1));
            Diff::Ordinal
        }
        ("sslProfile", 1) => {
            // The router is ahead (a lower desired ordinal is no change).
            let o = a.get("ordinal").and_then(Value::as_i64).unwrap_or(0);
            a.insert("ordinal".into(), json!(o + 1));
            Diff::None
        }
        ("sslProfile", _) => {
            if a.remove("caCertFile").is_none() {
                a.insert("caCertFile".into(), json!("/other/ca.crt"));
            }
            Diff::Other
        }
        ("tcpListener", 0) => {
            let o = a.get("observer").and_then(Value::as_str).unwrap_or("auto");
            a.insert(
                "observer".into(),
                json!(if o == "http2" { "none" } else { "http2" }),
            );
            Diff::Observer
        }
        ("listenerAddress", 0) => {
            a.insert("value".into(), json!(7));
            Diff::Other
        }
        ("connector", 0) => {
            a.insert("cost".into(), json!(9));
            Diff::Other
        }
        (_, 1) | ("listenerAddress", _) => {
            if e.kind == "listenerAddress" {
                a.insert("address".into(), json!("zzz"));
            } else {
                bump_port(&mut a);
            }
            Diff::Other
        }
        (_, _) => {
            a.insert("host".into(), json!("192.0.2.1"));
            Diff::Other
        }
    };
    (a, diff)
}

#[derive(Debug, Clone)]
enum Fate {
    Keep,
    Change(u8),
    Missing,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![3 => Just(Fate::Keep), 2 => (0..3u8).prop_map(Fate::Change), 1 => Just(Fate::Missing)]
}

fn management() -> Vec<Entity> {
    let p = "skupper-local-server";
    vec![
        entity(
            "sslProfile",
            json!({"name": p, "caCertFile": path(p, "ca.crt"), "certFile": path(p, "tls.crt"),
                   "privateKeyFile": path(p, "tls.key")}),
        ),
        entity(
            "listener",
            json!({"name": "skupper-local-normal", "role": "normal", "host": "127.0.0.1",
                   "port": "5671", "sslProfile": p, "saslMechanisms": "EXTERNAL",
                   "authenticatePeer": true}),
        ),
    ]
}

struct Scenario {
    desired: Vec<Entity>,
    router: Router,
    /// `(kind, name)` of desired entities the router already has as desired.
    unchanged: BTreeSet<(String, String)>,
}

fn scenario(
    desired: Vec<Entity>,
    fates: Vec<Fate>,
    extras: Vec<Entity>,
    odd_management: bool,
) -> Scenario {
    let desired = consistent(desired);
    let mut router = Router::new();
    let mut management_rows = management();
    if odd_management {
        // The router's management entities differ from the rendered ones.
        management_rows[0].attrs.remove("caCertFile");
        management_rows[1]
            .attrs
            .insert("port".into(), json!("5999"));
    }
    for m in &management_rows {
        router.create(&m.kind, &m.attrs).unwrap();
    }
    router.preload("site", &obj(json!({"name": "s-0", "namespace": "ns"})));

    // How each desired entity the router has differs from it.
    let mut state: BTreeMap<(String, String), Diff> = BTreeMap::new();
    for (i, e) in desired.iter().enumerate() {
        let fate = fates
            .get(i % fates.len().max(1))
            .cloned()
            .unwrap_or(Fate::Keep);
        let (attrs, changed) = match fate {
            Fate::Keep => (e.attrs.clone(), Diff::None),
            Fate::Change(how) => perturb(e, how),
            Fate::Missing => continue,
        };
        if router.create(&e.kind, &attrs).is_ok() {
            let key = (e.kind.clone(), e.name().unwrap_or_default().to_owned());
            state.insert(key, changed);
        }
    }
    let mut extras = extras;
    extras.sort_by_key(|e| rank(&e.kind));
    for e in &extras {
        // Refused ones (clashes, dangling references) are simply absent.
        let _ = router.create(&e.kind, &e.attrs);
    }

    // An sslProfile the plan creates or replaces takes its users with it,
    // and a tcpListener it replaces takes its listenerAddresses.
    let diff_of = |kind: &str, name: &str| state.get(&(kind.to_owned(), name.to_owned())).copied();
    let profile_of = |kind: &str, name: &str| {
        desired
            .iter()
            .find(|d| d.kind == kind && d.name() == Some(name))
            .and_then(|d| d.attrs.get("sslProfile"))
            .and_then(Value::as_str)
    };
    let profile_settled = |kind: &str, name: &str| {
        profile_of(kind, name)
            .is_none_or(|p| matches!(diff_of("sslProfile", p), Some(Diff::None | Diff::Ordinal)))
    };
    let listener_settled = |l: &str| {
        matches!(diff_of("tcpListener", l), Some(Diff::None | Diff::Observer))
            && profile_settled("tcpListener", l)
    };
    let unchanged = desired
        .iter()
        .filter(|e| {
            let key = (e.kind.clone(), e.name().unwrap_or_default().to_owned());
            state.get(&key) == Some(&Diff::None)
                && profile_settled(&e.kind, &key.1)
                && (e.kind != "listenerAddress"
                    || e.attrs
                        .get("listener")
                        .and_then(Value::as_str)
                        .is_some_and(listener_settled))
        })
        .map(|e| (e.kind.clone(), e.name().unwrap_or_default().to_owned()))
        .collect();

    let mut desired = desired;
    desired.extend(management());
    desired.push(entity(
        "log",
        json!({"module": "DEFAULT", "enable": "info+"}),
    ));
    Scenario {
        desired,
        router,
        unchanged,
    }
}

fn arb_scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(any_entity(), 0..12),
        prop::collection::vec(fate(), 1..12),
        prop::collection::vec(any_entity(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(d, f, x, m)| scenario(d, f, x, m))
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("desired", &self.desired)
            .field("router", &self.router.table)
            .field("unchanged", &self.unchanged)
            .finish()
    }
}

proptest! {
    #[test]
    fn the_plan_is_accepted_and_converges(s in arb_scenario()) {
        let mut router = s.router.clone();
        let untouchable: Vec<(String, Option<Attrs>)> = ["skupper-local-server", "skupper-local-normal"]
            .iter()
            .map(|n| {
                let kind = if n.ends_with("server") { "sslProfile" } else { "listener" };
                (n.to_string(), router.get(kind, n).cloned())
            })
            .collect();
        let site = router.get("site", "s-0").cloned();

        let ops = plan(&s.desired, &router.table);
        for op in &ops {
            prop_assert!(KINDS.contains(&op.kind()), "{op:?} is of an unmanaged type");
            prop_assert!(owned(op.kind(), op.name()), "{op:?} touches a management entity");
            let key = (op.kind().to_owned(), op.name().to_owned());
            prop_assert!(!s.unchanged.contains(&key), "{op:?} touches an unchanged entity");
            // The model refuses references to missing or deleted entities.
            if let Err(e) = router.apply(op) {
                prop_assert!(false, "{op:?} refused: {e}\nplan: {:#?}", summarize(&ops));
            }
        }
        prop_assert_eq!(plan(&s.desired, &router.table), vec![]);

        // The desired state, checked without the plan's own comparison: each
        // desired entity as the router would hold it, attribute by attribute.
        for d in s.desired.iter().filter(|d| KINDS.contains(&d.kind.as_str())) {
            let name = d.name().unwrap_or_default();
            if !owned(&d.kind, name) {
                continue;
            }
            let want = schema().check_create(&d.kind, &d.attrs).unwrap();
            let row = router.get(&d.kind, name);
            prop_assert!(row.is_some(), "{} {} missing", d.kind, name);
            let row = row.unwrap();
            for key in d.attrs.keys() {
                let (w, h) = (want.get(key), row.get(key));
                if key == "ordinal" {
                    prop_assert!(h.and_then(Value::as_i64) >= w.and_then(Value::as_i64));
                } else {
                    prop_assert_eq!(w, h, "{} {} attribute {}", d.kind, name, key);
                }
            }
        }
        for (kind, rows) in &router.table {
            for row in rows {
                let name = row.get("name").and_then(Value::as_str).unwrap_or_default();
                if owned(kind, name) {
                    prop_assert!(
                        s.desired.iter().any(|d| &d.kind == kind && d.name() == Some(name)),
                        "{} {} left behind", kind, name
                    );
                }
            }
        }
        for (name, before) in untouchable {
            let kind = if name.ends_with("server") { "sslProfile" } else { "listener" };
            prop_assert_eq!(router.get(kind, &name).cloned(), before);
        }
        prop_assert_eq!(router.get("site", "s-0").cloned(), site);
    }

    #[test]
    fn a_router_built_from_the_desired_entities_needs_nothing(
        d in prop::collection::vec(any_entity(), 0..12),
    ) {
        let s = scenario(d, vec![Fate::Keep], vec![], false);
        prop_assert_eq!(plan(&s.desired, &s.router.table), vec![]);
    }
}
