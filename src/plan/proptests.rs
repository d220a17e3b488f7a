//! Property tests: over generated sets of valid and invalid resources, a
//! pass is deterministic (same input and state, same bytes) and idempotent
//! (a second pass writes nothing), and never panics.

use super::tests::{listener, Scenario};
use proptest::prelude::*;

fn listener_doc() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["a", "b", "c", "web", "Bad_Name"]),
        prop::sample::select(vec!["0.0.0.0", "127.0.0.1", "::", "backend", "NOT A HOST"]),
        prop::sample::select(vec!["8080", "8081", "0", "70000", "5671", "eighty"]),
        prop::option::of(prop::sample::select(vec!["auto", "http1", "none", "bogus"])),
        prop::option::of(prop::sample::select(vec![
            "web-tls",
            "skupper-local-ca",
            "../x",
        ])),
    )
        .prop_map(|(name, host, port, observer, tls)| {
            let mut doc = listener(name, host, port);
            if let Some(o) = observer {
                doc.push_str(&format!("  observer: {o}\n"));
            }
            if let Some(t) = tls {
                doc.push_str(&format!("  tlsCredentials: \"{t}\"\n"));
            }
            doc
        })
}

fn connector_doc() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["db", "a", "web"]),
        prop::sample::select(vec!["127.0.0.1", "db.example.com", "bad host"]),
        prop::sample::select(vec!["5432", "0"]),
    )
        .prop_map(|(name, host, port)| {
            format!("apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n  name: {name}\nspec:\n  host: {host}\n  port: {port}\n")
        })
}

fn document() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => listener_doc(),
        2 => connector_doc(),
        1 => Just("kind: [broken".to_string()),
        1 => Just("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".to_string()),
    ]
}

fn scenario(docs: &[String], with_site: bool) -> Scenario {
    let mut s = Scenario::new();
    if !with_site {
        s.remove("Site-west.yaml");
    }
    for (i, d) in docs.iter().enumerate() {
        s.put(&format!("r{i}.yaml"), d);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn reconcile_is_deterministic(docs in prop::collection::vec(document(), 0..6), with_site in any::<bool>()) {
        let mut a = scenario(&docs, with_site);
        let mut b = scenario(&docs, with_site);
        a.pass();
        b.pass();
        prop_assert_eq!(&a.runtime, &b.runtime);
    }

    #[test]
    fn reconcile_is_idempotent(docs in prop::collection::vec(document(), 0..6), edits in prop::collection::vec(document(), 0..3)) {
        let mut s = scenario(&docs, true);
        s.pass();
        // Edits between passes (including breaking ones) still settle.
        for (i, d) in edits.iter().enumerate() {
            s.put(&format!("r{i}.yaml"), d);
            s.pass();
        }
        s.now += time::Duration::hours(2);
        let again = s.pass();
        prop_assert!(again.writes.is_empty(), "second pass wrote {:?}", again.writes);
        prop_assert!(again.deletes.is_empty(), "second pass deleted {:?}", again.deletes);
    }
}
