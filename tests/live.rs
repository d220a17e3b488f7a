//! The management session against the router double: a rendered config
//! reaches the router live, unchanged entities are never touched, and the
//! router's answers become the view the status is computed from.

use crate::support::live::{double_config, ns_file, render, target};
use crate::support::*;
use router_double::RouterDouble;
use skupperd::router::session::{Session, NEVER};

struct Live {
    home: DataHome,
    double: RouterDouble,
    session: Session,
}

async fn live() -> Live {
    let home = DataHome::new();
    home.sample("west");
    home.write("west", "input/resources/db.yaml", "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n  name: db\nspec:\n  host: 127.0.0.1\n  port: 5432\n");
    render(&home, "west");
    let double = RouterDouble::start(double_config(&home, "west"))
        .await
        .unwrap();
    let mut session = Session::default();
    session.set_target(target(&home, "west", double.port(), "unused-by-the-double"));
    session.set_config(&ns_file(&home, "west", "runtime/router/skrouterd.json"));
    Live {
        home,
        double,
        session,
    }
}

#[tokio::test]
async fn a_rendered_config_is_applied_live_and_then_left_alone() {
    let mut l = live().await;
    let view = l
        .session
        .sync("2026-11-26T10:00:00Z")
        .await
        .expect("reachable");
    assert!(l.double.entity("listener/backend").is_some());
    assert!(l.double.entity("connector/db@127.0.0.1").is_some());
    assert!(view.confirmed.contains("listener/backend"), "{view:?}");
    assert!(view.refused.is_empty(), "{view:?}");
    // The double, like a router not started from this file, has its log
    // modules at their defaults: the config's log level is applied too.
    assert_eq!(
        view.last_changes,
        [
            "create tcpConnector connector/db@127.0.0.1",
            "create tcpListener listener/backend",
            "update log log/ROUTER_CORE (enable error+)"
        ],
    );
    // The local connector is a consumer of the listener's address.
    assert_eq!(view.consumers.get("db").copied(), Some(1), "{view:?}");

    let mutations = l.double.mutations().len();
    for _ in 0..3 {
        l.session
            .sync("2026-11-26T10:00:01Z")
            .await
            .expect("reachable");
    }
    assert_eq!(
        l.double.mutations().len(),
        mutations,
        "a resync of unchanged entities sends only QUERYs"
    );
}

/// Listener `backend` rewritten with `spec` after its host, rendered, and
/// handed to the session.
fn change_backend(l: &mut Live, spec: &str) {
    l.home.write(
        "west",
        "input/resources/Listener-backend.yaml",
        &format!("apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: backend\nspec:\n  host: 127.0.0.1\n{spec}"),
    );
    skupperd()
        .arg("render")
        .arg(l.home.ns("west"))
        .assert()
        .code(0);
    assert!(l
        .session
        .set_config(&ns_file(&l.home, "west", "runtime/router/skrouterd.json")));
}

#[tokio::test]
async fn an_observer_change_is_an_update_in_place() {
    let mut l = live().await;
    l.session.sync("t0").await.expect("reachable");
    change_backend(&mut l, "  port: 8080\n  observer: http1\n");
    let before = l.double.mutations().len();
    let view = l.session.sync("t1").await.expect("reachable");
    let ops: Vec<String> = l.double.mutations()[before..]
        .iter()
        .map(|o| format!("{} {}", o.operation, o.name.clone().unwrap_or_default()))
        .collect();
    assert_eq!(ops, ["UPDATE listener/backend"]);
    assert_eq!(
        view.last_changes,
        ["update tcpListener listener/backend (observer http1)"]
    );
}

#[tokio::test]
async fn a_remote_consumer_makes_the_listener_up() {
    let mut l = live().await;
    let view = l.session.sync("t0").await.expect("reachable");
    assert_eq!(
        view.listeners.get("listener/backend").map(|l| l.0),
        Some(false)
    );
    l.double.inject_remote_consumer("backend");
    let view = l.session.poll(NEVER).await.expect("reachable");
    assert_eq!(
        view.listeners.get("listener/backend").map(|l| l.0),
        Some(true),
        "{view:?}"
    );
    assert_eq!(view.consumers.get("backend").copied(), Some(1));
}

/// The management QUERYs the session has sent so far.
fn queries(session: &Session) -> u64 {
    session.counts.get("query").copied().unwrap_or(0)
}

#[tokio::test]
async fn a_change_costs_its_own_operations_and_the_poll_after_it_gives_way_to_the_next() {
    let mut l = live().await;
    l.session.sync("t0").await.expect("reachable");
    assert!(!l.session.poll_owed(), "a full sync polls");
    change_backend(&mut l, "  port: 8081\n");
    let asked = queries(&l.session);
    let view = l.session.sync("t1").await.expect("reachable");
    assert_eq!(
        queries(&l.session),
        asked,
        "a change planned from memory sends no QUERY"
    );
    assert_eq!(
        view.last_changes,
        [
            "delete tcpListener listener/backend",
            "create tcpListener listener/backend"
        ]
    );
    assert_eq!(
        view.listeners.get("listener/backend"),
        Some(&(false, None)),
        "a re-created listener is down until a poll says otherwise"
    );
    assert!(l.session.poll_owed(), "the change's poll is owed");
    assert_eq!(view.consumers.get("backend").copied(), Some(0), "{view:?}");

    // A poll that is told a pass is waiting sends nothing and keeps the
    // view; it stays owed.
    l.double.inject_remote_consumer("backend");
    let gave_way = l.session.poll(&|| true).await.expect("reachable");
    assert_eq!(queries(&l.session), asked);
    assert_eq!(gave_way, view);
    assert!(l.session.poll_owed());

    let view = l.session.poll(NEVER).await.expect("reachable");
    assert!(!l.session.poll_owed());
    assert_eq!(view.consumers.get("backend").copied(), Some(1), "{view:?}");
    assert_eq!(
        view.listeners.get("listener/backend").map(|l| l.0),
        Some(true),
        "{view:?}"
    );
}

#[tokio::test]
async fn a_stopped_router_is_not_reachable_and_a_new_one_is_synced_again() {
    let mut l = live().await;
    l.session.sync("t0").await.expect("reachable");
    l.double.stop().await;
    assert!(l.session.sync("t1").await.is_none());
    assert!(!l.session.connected());
}
