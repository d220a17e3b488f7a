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

/// One step of a shell's life between passes.
#[derive(Debug, Clone)]
enum Step {
    Put(usize, String),
    Remove(usize),
    /// The router comes up with these entities confirmed, or goes away.
    Router(Option<Vec<String>>),
    Later,
    /// The safety net: the prior state is read back from `runtime/`.
    Reread,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..5usize, document()).prop_map(|(i, d)| Step::Put(i, d)),
        2 => (0..5usize).prop_map(Step::Remove),
        1 => prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["listener/a", "listener/b", "listener/web", "connector/db@127.0.0.1"])
                .prop_map(String::from),
            0..4,
        ))
        .prop_map(Step::Router),
        1 => Just(Step::Later),
        1 => Just(Step::Reread),
    ]
}

/// A shell as the namespace actor is one: files parsed once and kept until
/// they change, the next pass's prior state taken from the outcome.
struct Shell {
    parsed: std::collections::BTreeMap<String, crate::resources::DecodedFile>,
    prior: super::Prior,
    runtime: std::collections::BTreeMap<String, Vec<u8>>,
    memo: super::Memo,
    router: super::RouterState,
    now: time::OffsetDateTime,
    /// `runtime` with the record bytes, for reading the prior state back.
    full_runtime: std::collections::BTreeMap<String, Vec<u8>>,
}

impl Shell {
    fn path(i: usize) -> String {
        format!("input/resources/r{i}.yaml")
    }

    /// Passes once with the memo and once without; they must agree. The
    /// outcome is applied unless `lost`. Returns how many files it wrote.
    fn pass(&mut self, lost: bool) -> Result<usize, TestCaseError> {
        use crate::certs::MemoMint;
        use crate::store::ports::FixedPorts;
        let certs = crate::validate::InputCerts::default();
        let inputs = super::Inputs {
            namespace: "west",
            namespace_path: "/data/namespaces/west",
            platform: Ok(super::Platform::Linux),
            hostname: "host1",
            addresses: &[],
            version: "0.1.0",
            now: self.now,
            files: &self.parsed,
            certs: &certs,
            issuers: &certs,
            renew_before: crate::certs::DEFAULT_RENEW_BEFORE,
            runtime: &self.runtime,
            prior: &self.prior,
            router: self.router.clone(),
            trigger: "input",
            notices: &[],
        };
        let fresh = super::reconcile(
            &inputs,
            &mut MemoMint::new(1),
            &mut FixedPorts(Default::default()),
        );
        let memoised = super::reconcile_with(
            &inputs,
            &mut self.memo,
            &mut MemoMint::new(1),
            &mut FixedPorts(Default::default()),
        );
        prop_assert_eq!(&fresh, &memoised);
        if lost {
            return Ok(0);
        }
        let writes = memoised.writes.len();
        for p in &memoised.deletes {
            self.full_runtime.remove(p);
        }
        for (p, f) in memoised.writes {
            self.full_runtime.insert(p, f.into_content());
        }
        // As the namespace actor keeps it: record bytes are read back once
        // (`Reread`) and not kept.
        self.runtime = self.full_runtime.clone();
        super::hollow_records(&mut self.runtime);
        memoised.prior.apply(&mut self.prior);
        Ok(writes)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The memo never changes what a pass decides: after every edit, a pass
    /// that reuses the earlier passes' work gives exactly the outcome of a
    /// pass from nothing.
    #[test]
    fn a_memoised_pass_equals_a_pass_from_nothing(
        docs in prop::collection::vec(document(), 0..5),
        // With each step, whether the writes of its pass fail (nothing of
        // its outcome is kept).
        steps in prop::collection::vec((step(), prop::bool::weighted(0.2)), 1..12),
    ) {
        let site = super::tests::SITE;
        let mut shell = Shell {
            parsed: Default::default(),
            prior: Default::default(),
            runtime: Default::default(),
            memo: super::Memo::new(),
            router: Default::default(),
            now: super::tests::NOW,
            full_runtime: Default::default(),
        };
        let load = |p: &str, t: &str| crate::resources::load_file(p, t.as_bytes());
        let site_path = "input/resources/Site-west.yaml";
        shell.parsed.insert(site_path.to_string(), load(site_path, site));
        for (i, d) in docs.iter().enumerate() {
            shell.parsed.insert(Shell::path(i), load(&Shell::path(i), d));
        }
        shell.pass(false)?;
        for (s, lost) in steps {
            match s {
                Step::Put(i, d) => {
                    shell.parsed.insert(Shell::path(i), load(&Shell::path(i), &d));
                }
                Step::Remove(i) => {
                    shell.parsed.remove(&Shell::path(i));
                }
                Step::Router(None) => shell.router = Default::default(),
                Step::Router(Some(confirmed)) => {
                    shell.router.view = Some(super::RouterView {
                        confirmed: confirmed.into_iter().collect(),
                        ..Default::default()
                    });
                }
                Step::Later => shell.now += time::Duration::minutes(7),
                Step::Reread => shell.prior = super::read_prior(&shell.full_runtime),
            }
            shell.pass(lost)?;
        }
        // Settled, a pass writes nothing, though record bytes are not kept
        // (later, so only a real change could rewrite a status).
        shell.pass(false)?;
        shell.now += time::Duration::hours(2);
        prop_assert_eq!(shell.pass(false)?, 0);
    }
}
