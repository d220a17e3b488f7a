//! The reconcile core, exercised in memory: a scenario holds input files and
//! a simulated `runtime/` that each pass's outcome is applied to.

use super::*;
use crate::certs::MemoMint;
use crate::status::Phase;
use crate::store::ports::FixedPorts;
use std::collections::BTreeMap;

pub const NOW: OffsetDateTime = time::macros::datetime!(2026-11-26 10:00:00 UTC);

pub struct Scenario {
    pub files: BTreeMap<String, String>,
    pub certs: InputCerts,
    pub issuers: InputCerts,
    pub renew_before: time::Duration,
    pub runtime: BTreeMap<String, Vec<u8>>,
    pub platform: Result<Platform, crate::problem::Problem>,
    pub now: OffsetDateTime,
    pub seed: u64,
    pub router: RouterState,
    pub trigger: &'static str,
}

impl Scenario {
    pub fn new() -> Scenario {
        let mut s = Scenario {
            files: BTreeMap::new(),
            certs: InputCerts::default(),
            issuers: InputCerts::default(),
            renew_before: crate::certs::DEFAULT_RENEW_BEFORE,
            runtime: BTreeMap::new(),
            platform: Ok(Platform::Linux),
            now: NOW,
            seed: 1,
            router: RouterState::default(),
            trigger: "input",
        };
        s.put("Site-west.yaml", SITE);
        s
    }

    pub fn put(&mut self, name: &str, text: &str) {
        self.files
            .insert(format!("input/resources/{name}"), text.to_string());
    }

    pub fn remove(&mut self, name: &str) {
        self.files.remove(&format!("input/resources/{name}"));
    }

    /// One pass without touching `runtime`.
    pub fn outcome(&self) -> Outcome {
        let parsed: BTreeMap<String, crate::resources::DecodedFile> = self
            .files
            .iter()
            .map(|(p, t)| (p.clone(), crate::resources::load_file(p, t.as_bytes())))
            .collect();
        let prior = read_prior(&self.runtime);
        let inputs = Inputs {
            namespace: "west",
            namespace_path: "/data/namespaces/west",
            platform: self.platform.clone(),
            hostname: "host1",
            addresses: &[],
            version: "0.1.0",
            now: self.now,
            files: &parsed,
            certs: &self.certs,
            issuers: &self.issuers,
            renew_before: self.renew_before,
            runtime: &self.runtime,
            prior: &prior,
            router: self.router.clone(),
            trigger: self.trigger,
            notices: &[],
        };
        reconcile(
            &inputs,
            &mut MemoMint::new(self.seed),
            &mut FixedPorts(BTreeSet::new()),
        )
    }

    /// One pass, applied to `runtime` as the shell would.
    pub fn pass(&mut self) -> Outcome {
        let outcome = self.outcome();
        for path in &outcome.deletes {
            self.runtime.remove(path);
        }
        for (path, file) in &outcome.writes {
            self.runtime
                .insert(path.clone(), file.content().into_owned());
        }
        outcome
    }

    pub fn text(&self, path: &str) -> String {
        String::from_utf8(self.runtime.get(path).cloned().unwrap_or_default()).unwrap()
    }

    pub fn config(&self) -> serde_json::Value {
        serde_json::from_str(&self.text("runtime/router/skrouterd.json")).unwrap()
    }

    pub fn entity(&self, kind: &str, name: &str) -> Option<serde_json::Value> {
        self.config()
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e[0] == kind && e[1]["name"] == name)
            .map(|e| e[1].clone())
    }
}

pub const SITE: &str =
    "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\nspec: {}\n";

pub fn listener(name: &str, host: &str, port: &str) -> String {
    format!(
        "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: {name}\nspec:\n  host: {host}\n  port: {port}\n"
    )
}

fn status_of(outcome: &Outcome, name: &str) -> (Phase, String) {
    let r = outcome
        .resources
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"));
    (r.status, r.message.clone())
}

#[test]
fn a_valid_listener_becomes_a_tcp_listener_and_waits_for_the_router() {
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    let out = s.pass();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let tl = s.entity("tcpListener", "listener/backend").unwrap();
    assert_eq!(tl["address"], "backend");
    assert_eq!(tl["port"], "8080");
    assert_eq!(
        status_of(&out, "backend"),
        (Phase::Pending, "router not reachable".to_string())
    );
    assert!(s
        .text("runtime/resources/Listener-backend.yaml")
        .contains("routingKey: backend"));
}

#[test]
fn a_second_pass_on_unchanged_input_writes_nothing() {
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    s.put("c.yaml", "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n  name: db\nspec:\n  host: 127.0.0.1\n  port: 5432\n");
    let first = s.pass();
    assert!(!first.writes.is_empty());
    s.now += time::Duration::hours(1);
    let second = s.pass();
    assert!(second.writes.is_empty(), "{:?}", second.writes);
    assert!(second.deletes.is_empty());
}

#[test]
fn a_resync_that_changes_nothing_does_not_touch_the_status_file() {
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    s.pass();
    let before = s.text("runtime/status.yaml");
    s.trigger = "resync";
    s.now += time::Duration::minutes(1);
    let out = s.pass();
    assert!(out.writes.is_empty(), "{:?}", out.writes.keys());
    assert_eq!(before, s.text("runtime/status.yaml"));
    // A change is recorded with its trigger and time.
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8081"));
    s.pass();
    let after = s.text("runtime/status.yaml");
    assert!(after.contains("trigger: resync"), "{after}");
    assert!(
        after.contains("lastRun: \"2026-11-26T10:01:00Z\""),
        "{after}"
    );
}

#[test]
fn broken_edit_keeps_last_accepted() {
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    s.pass();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "70000"));
    let out = s.pass();
    let tl = s.entity("tcpListener", "listener/backend").unwrap();
    assert_eq!(tl["port"], "8080", "the accepted version keeps serving");
    let (phase, msg) = status_of(&out, "backend");
    assert_eq!(phase, Phase::Error);
    assert_eq!(
        msg,
        "listener \"backend\": spec.port 70000 is out of range 1-65535 (input/resources/l.yaml:7:9); still serving generation 1"
    );
    let record = s.text("runtime/resources/Listener-backend.yaml");
    assert!(record.contains("generation: 2"), "{record}");
    assert!(
        record.contains("skupperd.io/accepted-generation: \"1\""),
        "{record}"
    );
    assert!(record.contains("port: 8080"), "{record}");

    // A later pass, from the files alone, still knows what was accepted.
    let again = s.pass();
    assert_eq!(
        s.entity("tcpListener", "listener/backend").unwrap()["port"],
        "8080"
    );
    assert!(again.writes.is_empty(), "{:?}", again.writes);

    // Fixing it serves generation 2... as generation 3 (a new input).
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8081"));
    s.pass();
    assert_eq!(
        s.entity("tcpListener", "listener/backend").unwrap()["port"],
        "8081"
    );
    assert!(s
        .text("runtime/resources/Listener-backend.yaml")
        .contains("generation: 3"));
}

#[test]
fn a_file_that_stops_parsing_keeps_serving_its_resources() {
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    s.pass();
    s.put("l.yaml", "kind: [unclosed\n");
    let out = s.pass();
    assert!(s.entity("tcpListener", "listener/backend").is_some());
    let (phase, msg) = status_of(&out, "backend");
    assert_eq!(phase, Phase::Error);
    assert!(
        msg.contains("input/resources/l.yaml no longer parses"),
        "{msg}"
    );
    assert!(msg.ends_with("still serving generation 1"), "{msg}");
    // Deleting the file removes the resource.
    s.remove("l.yaml");
    let out = s.pass();
    assert!(s.entity("tcpListener", "listener/backend").is_none());
    assert!(out
        .deletes
        .contains(&"runtime/resources/Listener-backend.yaml".to_string()));
}

#[test]
fn a_never_valid_resource_is_not_configured_and_keeps_its_input_spec() {
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "eighty"));
    let out = s.pass();
    assert!(s.entity("tcpListener", "listener/backend").is_none());
    assert_eq!(status_of(&out, "backend").0, Phase::Error);
    let record = s.text("runtime/resources/Listener-backend.yaml");
    assert!(record.contains("port: eighty"), "{record}");
    assert!(!record.contains("accepted-generation"), "{record}");
}

#[test]
fn one_bad_resource_never_changes_the_output_for_the_others() {
    let mut good = Scenario::new();
    good.put("a.yaml", &listener("a", "127.0.0.1", "8080"));
    good.pass();
    let mut mixed = Scenario::new();
    mixed.put("a.yaml", &listener("a", "127.0.0.1", "8080"));
    mixed.put("b.yaml", &listener("b", "BAD_HOST", "8081"));
    mixed.put("c.yaml", "kind: [");
    mixed.pass();
    assert_eq!(
        good.text("runtime/router/skrouterd.json"),
        mixed.text("runtime/router/skrouterd.json")
    );
}

#[test]
fn listener_before_site_works_once_the_site_appears() {
    let mut s = Scenario::new();
    s.remove("Site-west.yaml");
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    let out = s.pass();
    assert!(!s.runtime.contains_key("runtime/router/skrouterd.json"));
    assert!(s
        .text("runtime/status.yaml")
        .contains("no Site in input/resources"));
    assert!(out.resources.is_empty());
    s.put("Site-west.yaml", SITE);
    s.pass();
    assert!(s.entity("tcpListener", "listener/backend").is_some());
}

#[test]
fn removing_the_site_clears_derived_runtime_but_keeps_identity() {
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    s.put(
        "t.yaml",
        &listener("tls", "0.0.0.0", "8443")
            .replace("port: 8443", "port: 8443\n  tlsCredentials: web"),
    );
    s.pass();
    let id_before = s.text("runtime/identity.yaml");
    assert!(s.runtime.contains_key("runtime/certs/web/tls.crt"));
    s.remove("Site-west.yaml");
    s.pass();
    let left: Vec<&String> = s.runtime.keys().collect();
    assert!(
        left.iter().all(|p| p.starts_with("runtime/issuers/")
            || *p == "runtime/identity.yaml"
            || *p == "runtime/status.yaml"),
        "{left:?}"
    );
    s.put("Site-west.yaml", SITE);
    s.pass();
    assert_eq!(s.text("runtime/identity.yaml"), id_before);
}

#[test]
fn duplicates_are_errors_on_both_and_neither_is_used() {
    let mut s = Scenario::new();
    s.put("a.yaml", &listener("backend", "0.0.0.0", "8080"));
    s.put("b.yaml", &listener("backend", "0.0.0.0", "9090"));
    let out = s.pass();
    let dup: Vec<_> = out
        .problems
        .iter()
        .filter(|p| p.message.contains("defined twice"))
        .collect();
    assert_eq!(dup.len(), 2);
    assert_eq!(
        dup[0].message,
        "listener \"backend\" is defined twice (input/resources/a.yaml:1:1 and input/resources/b.yaml:1:1); neither is used"
    );
    assert!(s.entity("tcpListener", "listener/backend").is_none());
}

#[test]
fn an_existing_listener_is_never_displaced_by_a_new_one() {
    let mut s = Scenario::new();
    s.put("z.yaml", &listener("z", "127.0.0.1", "8080"));
    s.pass();
    // "a" sorts first but is new: it loses.
    s.put("a.yaml", &listener("a", "0.0.0.0", "8080"));
    let out = s.pass();
    assert!(s.entity("tcpListener", "listener/z").is_some());
    assert!(s.entity("tcpListener", "listener/a").is_none());
    assert_eq!(
        status_of(&out, "a").1,
        "listener \"a\": 0.0.0.0:8080 overlaps listener \"z\" (127.0.0.1:8080); a host and port can be used by one listener only (input/resources/a.yaml:7:9)"
    );
}

#[test]
fn an_edit_onto_a_taken_port_keeps_the_old_binding() {
    let mut s = Scenario::new();
    s.put("a.yaml", &listener("a", "127.0.0.1", "8080"));
    s.put("b.yaml", &listener("b", "127.0.0.1", "9090"));
    s.pass();
    s.put("b.yaml", &listener("b", "127.0.0.1", "8080"));
    let out = s.pass();
    assert_eq!(
        s.entity("tcpListener", "listener/b").unwrap()["port"],
        "9090"
    );
    assert!(status_of(&out, "b")
        .1
        .ends_with("still serving generation 1"));
}

#[test]
fn the_management_port_is_kept_and_avoided() {
    let mut s = Scenario::new();
    s.put("a.yaml", &listener("a", "127.0.0.1", "5671"));
    s.pass();
    let mgmt = s.entity("listener", "skupper-local-normal").unwrap();
    assert_eq!(mgmt["port"], "5672", "5671 is named by a listener in input");
    s.put("b.yaml", &listener("b", "0.0.0.0", "5672"));
    let out = s.pass();
    assert_eq!(
        status_of(&out, "b").1,
        "listener \"b\": 127.0.0.1:5672 is the router's management port; choose another port (input/resources/b.yaml:7:9)"
    );
}

#[test]
fn namespace_mismatch_is_an_error_for_that_resource_only() {
    let mut s = Scenario::new();
    s.put(
        "a.yaml",
        &listener("a", "127.0.0.1", "8080").replace("  name: a", "  name: a\n  namespace: east"),
    );
    let out = s.pass();
    assert_eq!(
        out.problems[0].message,
        "listener \"a\": metadata.namespace \"east\" does not match the namespace directory \"west\"; remove metadata.namespace or move the file"
    );
    assert!(s.entity("tcpListener", "listener/a").is_none());
    assert_eq!(status_of(&out, "west").1, "router not reachable");
}

#[test]
fn generated_listener_certificates_come_from_the_service_ca() {
    let mut s = Scenario::new();
    s.put(
        "t.yaml",
        &listener("web", "0.0.0.0", "8443")
            .replace("port: 8443", "port: 8443\n  tlsCredentials: web-tls"),
    );
    let out = s.pass();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let profile = s.entity("sslProfile", "web-tls").unwrap();
    assert!(profile.get("caCertFile").is_none(), "server-only TLS");
    assert_eq!(
        profile["certFile"],
        "/data/namespaces/west/runtime/certs/web-tls/tls.crt"
    );
    let tl = s.entity("tcpListener", "listener/web").unwrap();
    assert_eq!(tl["sslProfile"], "web-tls");
    assert!(tl.get("authenticatePeer").is_none());
    assert_eq!(
        s.text("runtime/certs/web-tls/ca.crt"),
        s.text("runtime/issuers/skupper-service-ca/tls.crt")
    );
}

#[test]
fn container_platforms_use_the_base_path_variable() {
    let mut s = Scenario::new();
    s.platform = Ok(Platform::Podman);
    s.pass();
    let profile = s.entity("sslProfile", "skupper-local-server").unwrap();
    assert_eq!(
        profile["certFile"],
        "${SSL_PROFILE_BASE_PATH}/runtime/certs/skupper-local-server/tls.crt"
    );
}

#[test]
fn orphaned_runtime_files_are_removed_and_foreign_ones_kept() {
    let mut s = Scenario::new();
    s.put("a.yaml", &listener("a", "127.0.0.1", "8080"));
    s.runtime.insert(
        "runtime/resources/ConfigMap-skupper-network-status.yaml".into(),
        b"kept".to_vec(),
    );
    s.pass();
    s.remove("a.yaml");
    let out = s.pass();
    assert_eq!(out.deletes, ["runtime/resources/Listener-a.yaml"]);
}

#[test]
fn two_sites_are_an_error_and_nothing_runs_without_an_accepted_one() {
    let mut s = Scenario::new();
    s.put("Site-east.yaml", &SITE.replace("name: west", "name: east"));
    let out = s.pass();
    let msgs: Vec<_> = out.problems.iter().map(|p| p.message.as_str()).collect();
    assert!(msgs.contains(&"site \"east\": more than one Site in namespace \"west\" (east, west); keep exactly one"), "{msgs:?}");
    assert!(!s.runtime.contains_key("runtime/router/skrouterd.json"));
}

#[test]
fn condition_times_survive_passes_and_move_on_flips() {
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    s.pass();
    let t0 = s.text("runtime/resources/Listener-backend.yaml");
    assert!(t0.contains("lastTransitionTime: \"2026-11-26T10:00:00Z\""));
    s.now += time::Duration::minutes(5);
    s.put("l.yaml", &listener("backend", "0.0.0.0", "0"));
    s.pass();
    let t1 = s.text("runtime/resources/Listener-backend.yaml");
    // Configured flipped Unknown -> False; Matched stayed Unknown.
    assert!(
        t1.contains("lastTransitionTime: \"2026-11-26T10:05:00Z\""),
        "{t1}"
    );
    assert!(
        t1.contains("lastTransitionTime: \"2026-11-26T10:00:00Z\""),
        "{t1}"
    );
}

mod with_a_router {
    use super::*;

    fn connected(view: RouterView) -> RouterState {
        RouterState {
            runner: "process".into(),
            state: "Running".into(),
            view: Some(view),
            ..RouterState::default()
        }
    }

    fn scenario() -> Scenario {
        let mut s = Scenario::new();
        s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
        s.put("c.yaml", "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n  name: db\nspec:\n  host: 127.0.0.1\n  port: 5432\n");
        s
    }

    fn confirmed() -> RouterView {
        RouterView {
            confirmed: ["listener/backend", "connector/db@127.0.0.1"]
                .map(String::from)
                .into(),
            network_listeners: Some(BTreeSet::new()),
            ..RouterView::default()
        }
    }

    #[test]
    fn a_listener_is_ready_only_when_the_router_opened_it() {
        let mut s = scenario();
        let mut view = confirmed();
        s.router = connected(view.clone());
        let out = s.pass();
        assert_eq!(
            status_of(&out, "backend"),
            (Phase::Pending, "No matching connectors".into())
        );
        view.consumers.insert("backend".into(), 1);
        s.router = connected(view.clone());
        let out = s.pass();
        assert_eq!(
            status_of(&out, "backend"),
            (
                Phase::Pending,
                "waiting for the router to open 0.0.0.0:8080".into()
            )
        );
        view.listeners
            .insert("listener/backend".into(), (true, None));
        s.router = connected(view);
        let out = s.pass();
        assert_eq!(status_of(&out, "backend"), (Phase::Ready, "OK".into()));
        let record = s.text("runtime/resources/Listener-backend.yaml");
        assert!(record.contains("hasMatchingConnector: true"), "{record}");
        assert!(s.text("runtime/status.yaml").contains("reachable: true"));
    }

    #[test]
    fn a_bind_failure_is_an_error_in_the_routers_words() {
        let mut s = scenario();
        let mut view = confirmed();
        view.consumers.insert("backend".into(), 1);
        view.listeners.insert(
            "listener/backend".into(),
            (
                false,
                Some("Address already in use - listen on 0.0.0.0:8080".into()),
            ),
        );
        s.router = connected(view);
        let out = s.pass();
        assert_eq!(
            status_of(&out, "backend"),
            (Phase::Error, "the router cannot open the listening socket: Address already in use - listen on 0.0.0.0:8080".into())
        );
    }

    #[test]
    fn a_refused_create_is_an_error_with_the_routers_description() {
        let mut s = scenario();
        let mut view = confirmed();
        view.confirmed.remove("listener/backend");
        view.refused.insert(
            "listener/backend".into(),
            "400 Unknown attribute 'x' for 'io.skupper.router.tcpListener'".into(),
        );
        s.router = connected(view);
        let out = s.pass();
        assert_eq!(
            status_of(&out, "backend").1,
            "router refused listener/backend: 400 Unknown attribute 'x' for 'io.skupper.router.tcpListener'"
        );
    }

    #[test]
    fn connectors_match_local_and_network_listeners() {
        let mut s = scenario();
        let mut view = confirmed();
        view.network_listeners = None;
        s.router = connected(view.clone());
        let out = s.pass();
        assert_eq!(
            status_of(&out, "db"),
            (Phase::Pending, "network view not available yet".into())
        );
        view.network_listeners = Some(["db".to_string()].into());
        s.router = connected(view);
        let out = s.pass();
        assert_eq!(status_of(&out, "db"), (Phase::Ready, "OK".into()));
        // A local listener on the same key matches too.
        s.put("l2.yaml", &listener("db", "127.0.0.1", "9999"));
        s.router = connected(confirmed());
        let out = s.pass();
        let connector = out
            .resources
            .iter()
            .find(|r| r.kind == Kind::Connector)
            .unwrap();
        assert_eq!(
            (connector.status, connector.message.as_str()),
            (Phase::Ready, "OK")
        );
    }

    #[test]
    fn losing_the_router_is_never_ready() {
        let mut s = scenario();
        let mut view = confirmed();
        view.consumers.insert("backend".into(), 1);
        view.listeners
            .insert("listener/backend".into(), (true, None));
        s.router = connected(view);
        s.pass();
        s.router = RouterState::default();
        let out = s.pass();
        for r in &out.resources {
            assert_eq!(
                (r.status, r.message.as_str()),
                (Phase::Pending, "router not reachable"),
                "{}",
                r.name
            );
        }
    }

    #[test]
    fn the_site_says_why_the_router_cannot_be_reached() {
        let mut s = scenario();
        s.router = RouterState {
            unreachable: Some(
                "router exited: SERVER (critical) Shutting down, required listener failed 127.0.0.1:5671"
                    .into(),
            ),
            ..RouterState::default()
        };
        let out = s.pass();
        assert_eq!(
            status_of(&out, "west"),
            (
                Phase::Pending,
                "router not reachable: router exited: SERVER (critical) Shutting down, required listener failed 127.0.0.1:5671".into()
            )
        );
        // Only the Site: the other resources just wait for the router.
        assert_eq!(status_of(&out, "backend").1, "router not reachable");
    }

    #[test]
    fn a_notice_stays_in_the_ready_sites_message() {
        let mut s = scenario();
        s.router = RouterState {
            notice: Some(
                "management port 5671 is in use by another process; the router moved to 5672"
                    .into(),
            ),
            ..connected(confirmed())
        };
        let out = s.pass();
        let note = "management port 5671 is in use by another process; the router moved to 5672";
        assert_eq!(status_of(&out, "west"), (Phase::Ready, note.into()));
        let record = s.text("runtime/resources/Site-west.yaml");
        assert!(record.contains(&format!("message: {note}")), "{record}");
        s.router = connected(confirmed());
        let out = s.pass();
        assert_eq!(status_of(&out, "west"), (Phase::Ready, "OK".into()));
    }

    #[test]
    fn a_taken_management_port_is_replaced_and_the_site_id_kept() {
        let mut s = scenario();
        s.pass();
        let before = s.text("runtime/identity.yaml");
        let site_id = read_prior(&s.runtime).identity.unwrap().site_id;
        let management_port =
            |s: &Scenario| s.entity("listener", "skupper-local-normal").unwrap()["port"].clone();
        assert_eq!(management_port(&s), "5671");
        // Another port taken: nothing moves.
        s.router = RouterState {
            management_port_taken: Some(5999),
            ..RouterState::default()
        };
        assert!(!s.pass().writes.contains_key("runtime/identity.yaml"));
        s.router = RouterState {
            management_port_taken: Some(5671),
            ..RouterState::default()
        };
        s.pass();
        let id = read_prior(&s.runtime).identity.unwrap();
        assert_eq!(
            (id.site_id.as_str(), id.management_port),
            (site_id.as_str(), 5672)
        );
        assert_ne!(s.text("runtime/identity.yaml"), before);
        assert_eq!(management_port(&s), "5672");
        assert!(s
            .text("runtime/status.yaml")
            .contains("managementPort: 5672"));
        // The same router state again changes nothing more.
        let again = s.pass();
        assert!(!again.writes.contains_key("runtime/identity.yaml"));
        assert!(!again.writes.contains_key("runtime/router/skrouterd.json"));
    }

    #[test]
    fn a_crash_looping_router_makes_the_site_error() {
        let mut s = scenario();
        s.router = RouterState {
            failure: Some("router exited: Router start-up failed: bad".into()),
            ..RouterState::default()
        };
        let out = s.pass();
        assert_eq!(
            status_of(&out, "west"),
            (
                Phase::Error,
                "router exited: Router start-up failed: bad".into()
            )
        );
    }
}

mod rotation {
    use super::*;
    use crate::certs::{FileBytes, Mint};
    use crate::validate::InputBundle;

    /// A bundle for `input/certs/<name>/` with a fresh leaf from a CA
    /// minted with `seed` (a different seed: a different certificate).
    fn bundle(seed: u64, sans: &[&str]) -> InputBundle {
        let mut mint = MemoMint::new(seed);
        let ca = mint.issue_ca("user-ca", NOW).unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let leaf = mint.issue_leaf(&ca, "web", &sans, NOW).unwrap();
        let file = |t: &str, mode| {
            Ok(FileBytes {
                bytes: t.as_bytes().to_vec(),
                mode,
            })
        };
        InputBundle {
            refused: None,
            files: [
                ("tls.crt".to_string(), file(&leaf.cert_pem, 0o644)),
                ("tls.key".to_string(), file(&leaf.key_pem, 0o600)),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn ordinal(s: &Scenario, profile: &str) -> Option<u64> {
        s.entity("sslProfile", profile)?
            .get("ordinal")
            .and_then(serde_json::Value::as_u64)
    }

    /// A listener `web` with bundle `web` (certificate 1), after one pass.
    fn tls_listener() -> Scenario {
        let mut s = Scenario::new();
        s.put(
            "l.yaml",
            &listener("web", "127.0.0.1", "8443")
                .replace("port: 8443", "port: 8443\n  tlsCredentials: web"),
        );
        s.certs
            .bundles
            .insert("web".into(), bundle(1, &["127.0.0.1"]));
        s.pass();
        s
    }

    #[test]
    fn a_changed_bundle_raises_its_profiles_ordinal_once() {
        let mut s = tls_listener();
        assert_eq!(
            ordinal(&s, "web"),
            None,
            "a new profile starts at 0 (not written)"
        );
        assert!(
            s.pass().writes.is_empty(),
            "an unchanged pass writes nothing"
        );

        s.certs
            .bundles
            .insert("web".into(), bundle(2, &["127.0.0.1"]));
        let rotated = s.pass();
        assert!(rotated.writes.contains_key("runtime/certs/web/tls.crt"));
        assert_eq!(ordinal(&s, "web"), Some(1));
        assert!(s.pass().writes.is_empty(), "the rotation is applied once");
        assert_eq!(ordinal(&s, "web"), Some(1));

        // A restart reads the ordinal back from skrouterd.json; the next
        // rotation goes on from it.
        s.certs
            .bundles
            .insert("web".into(), bundle(3, &["127.0.0.1"]));
        s.pass();
        assert_eq!(ordinal(&s, "web"), Some(2));
        assert_eq!(
            read_prior(&s.runtime).ordinals.get("web"),
            Some(&2),
            "persisted in skrouterd.json"
        );
    }

    #[test]
    fn a_bundle_whose_key_does_not_match_keeps_the_old_files_and_ordinal() {
        let mut s = tls_listener();
        let served = s.text("runtime/certs/web/tls.crt");
        // The certificate written before its key: the pair does not match.
        let mut half = bundle(1, &["127.0.0.1"]);
        let new = bundle(2, &["127.0.0.1"]);
        half.files
            .insert("tls.crt".into(), new.files["tls.crt"].clone());
        s.certs.bundles.insert("web".into(), half);
        let outcome = s.pass();
        assert!(!outcome.writes.contains_key("runtime/certs/web/tls.crt"));
        assert_eq!(s.text("runtime/certs/web/tls.crt"), served);
        assert_eq!(
            ordinal(&s, "web"),
            None,
            "nothing inconsistent reaches the router"
        );
        assert!(
            outcome
                .problems
                .iter()
                .any(|p| p.message.contains("does not match")),
            "{:?}",
            outcome.problems
        );
        // The key arrives: now the rotation happens, once.
        s.certs.bundles.insert("web".into(), new);
        s.pass();
        assert_eq!(ordinal(&s, "web"), Some(1));
    }
}

#[test]
fn an_invalid_platform_file_is_the_sites_error_and_keeps_every_output() {
    let mut s = Scenario::new();
    s.put("l.yaml", &listener("backend", "0.0.0.0", "8080"));
    s.pass();
    let before = s.runtime.clone();
    let mut p = crate::problem::Problem::error(
        "internal/platform.yaml: platform \"linuxx\" is not one of linux, podman, docker",
    );
    p.file = Some("internal/platform.yaml".to_string());
    p.line = Some(1);
    p.column = Some(11);
    s.platform = Err(p.clone());
    let out = s.pass();
    assert!(out.deletes.is_empty(), "{:?}", out.deletes);
    assert!(out.problems.contains(&p), "{:?}", out.problems);
    // skrouterd.json and the certificates stay as they were (linux paths).
    for (path, bytes) in &before {
        if path.starts_with("runtime/router/") || path.starts_with("runtime/certs/") {
            assert_eq!(s.runtime.get(path), Some(bytes), "{path}");
        }
    }
    let (phase, message) = status_of(&out, "west");
    assert_eq!(phase, Phase::Error);
    assert_eq!(
        message,
        "internal/platform.yaml: platform \"linuxx\" is not one of linux, podman, docker (internal/platform.yaml:1:11); still serving generation 1"
    );
    assert_eq!(status_of(&out, "backend").0, Phase::Pending);
    // Fixed: the Site is clean again, and nothing else changed.
    s.platform = Ok(Platform::Linux);
    let out = s.pass();
    assert!(out.deletes.is_empty());
    assert_eq!(status_of(&out, "west").1, "router not reachable");
    assert_eq!(
        s.text("runtime/router/skrouterd.json"),
        String::from_utf8(before["runtime/router/skrouterd.json"].clone()).unwrap()
    );
}
