//! The conditions of each resource (resources.md 10), from what the pass
//! decided and what the router reported. Without a router every
//! router-backed condition is `router not reachable`; nothing is `Ready`
//! unless the router showed it.

use super::entry::{Config, Entry};
use super::{ResourceSummary, RouterState};
use crate::resources::Kind;
use crate::status::{self, Verdict};
use std::collections::BTreeSet;

/// Names as the router knows them (router.md 1.2).
pub fn entity_name(e: &Entry) -> Option<String> {
    match (&e.kind, e.serving.as_ref().map(|(c, _)| c)) {
        (Kind::Listener, _) => Some(format!("listener/{}", e.name)),
        (Kind::Connector, Some(Config::Connector(c))) => {
            Some(format!("connector/{}@{}", e.name, c.host))
        }
        (Kind::Link, _) => Some(e.name.clone()),
        _ => None,
    }
}

/// `Configured` of a Listener or Connector.
fn configured(e: &Entry, router: &RouterState) -> Verdict {
    if let Some(msg) = e.error_message() {
        return Verdict::error(msg);
    }
    let Some(view) = &router.view else {
        return Verdict::unreachable();
    };
    let Some(name) = entity_name(e) else {
        return Verdict::unreachable();
    };
    if let Some(why) = view.refused.get(&name) {
        return Verdict::error(format!("router refused {name}: {why}"));
    }
    if view.confirmed.contains(&name) {
        Verdict::ok()
    } else {
        Verdict::pending("waiting for the router to apply it")
    }
}

/// The verdicts of one resource, in condition order, and its summary.
/// `local_keys`: routing keys of the listeners this router serves; `edge`:
/// the Site is an edge site (which endpoint a Link uses).
pub fn verdicts(
    e: &Entry,
    router: &RouterState,
    local_keys: &BTreeSet<&str>,
    edge: bool,
    access_listeners: &[String],
) -> (Vec<(&'static str, Verdict)>, ResourceSummary) {
    let conditions = match e.kind {
        Kind::Site => site(e, router, access_listeners),
        Kind::Listener => listener(e, router),
        Kind::Connector => connector(e, router, local_keys),
        Kind::Link => link(e, router, edge),
        Kind::RouterAccess => router_access(e, router),
    };
    let ready = conditions
        .iter()
        .find(|(k, _)| *k == "Ready")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(Verdict::unreachable);
    let summary = ResourceSummary {
        kind: e.kind,
        name: e.name.clone(),
        status: ready.reason,
        // "OK" when Ready, unless the Site has a notice to show.
        message: ready.message,
    };
    (conditions, summary)
}

fn site(e: &Entry, router: &RouterState, access: &[String]) -> Vec<(&'static str, Verdict)> {
    // The Site is configured once its files are written; the router's part
    // is `Running`.
    let configured = match e.error_message() {
        Some(msg) => Verdict::error(msg),
        None => Verdict::ok(),
    };
    let running = match (&router.failure, &router.view) {
        (Some(failure), _) => Verdict::error(failure.clone()),
        (None, Some(_)) => match &router.notice {
            Some(notice) => Verdict {
                message: notice.clone(),
                ..Verdict::ok()
            },
            None => Verdict::ok(),
        },
        (None, None) => match &router.unreachable {
            Some(why) => Verdict {
                message: format!("{}: {why}", status::ROUTER_NOT_REACHABLE),
                ..Verdict::unreachable()
            },
            None => Verdict::unreachable(),
        },
    };
    // A notice stays visible in the Site's status message while it is
    // Ready.
    let notice = (running.is_true() && router.notice.is_some()).then(|| running.clone());
    if access.is_empty() {
        let ready = status::ready(&[&configured, &running], notice);
        return vec![
            ("Configured", configured),
            ("Running", running),
            ("Ready", ready),
        ];
    }
    // Link access: its endpoints are known once the router has its
    // listeners.
    let resolved = match &router.view {
        None => Verdict::unreachable(),
        Some(view) if access.iter().all(|l| view.confirmed.contains(l)) => Verdict::ok(),
        Some(view) => match access
            .iter()
            .find_map(|l| view.refused.get(l).map(|w| (l, w)))
        {
            Some((l, why)) => Verdict::error(format!("router refused listener {l}: {why}")),
            None => Verdict::pending("link access endpoints not known yet"),
        },
    };
    let ready = status::ready(&[&configured, &running, &resolved], notice);
    vec![
        ("Configured", configured),
        ("Running", running),
        ("Resolved", resolved),
        ("Ready", ready),
    ]
}

fn listener(e: &Entry, router: &RouterState) -> Vec<(&'static str, Verdict)> {
    let configured = configured(e, router);
    let serving = match e.serving.as_ref().map(|(c, _)| c) {
        Some(Config::Listener(l)) => Some(l),
        _ => None,
    };
    let (matched, extra) = match (&router.view, serving) {
        (Some(view), Some(l)) => {
            let name = format!("listener/{}", e.name);
            let (up, msg) = view.listeners.get(&name).cloned().unwrap_or((false, None));
            let consumers = view.consumers.get(&l.routing_key).copied().unwrap_or(0);
            let matched = if up || consumers > 0 {
                Verdict::ok()
            } else {
                Verdict::pending("No matching connectors")
            };
            let extra = if up {
                None
            } else {
                Some(match msg.filter(|m| !m.is_empty()) {
                    Some(m) => {
                        Verdict::error(format!("the router cannot open the listening socket: {m}"))
                    }
                    None => Verdict::pending(format!(
                        "waiting for the router to open {}",
                        crate::validate::cross::host_port(&l.host, l.port)
                    )),
                })
            };
            (matched, extra)
        }
        (Some(_), None) => (Verdict::pending("No matching connectors"), None),
        (None, _) => (Verdict::unreachable(), None),
    };
    let ready = status::ready(&[&configured, &matched], extra);
    vec![
        ("Configured", configured),
        ("Matched", matched),
        ("Ready", ready),
    ]
}

fn connector(
    e: &Entry,
    router: &RouterState,
    local_keys: &BTreeSet<&str>,
) -> Vec<(&'static str, Verdict)> {
    let configured = configured(e, router);
    let key = match e.serving.as_ref().map(|(c, _)| c) {
        Some(Config::Connector(c)) => Some(c.routing_key.as_str()),
        _ => None,
    };
    let matched = match (&router.view, key) {
        (None, _) => Verdict::unreachable(),
        (Some(_), Some(k)) if local_keys.contains(k) => Verdict::ok(),
        (Some(view), Some(k)) => match &view.network_listeners {
            Some(keys) if keys.contains(k) => Verdict::ok(),
            Some(_) => Verdict::pending("No matching listeners"),
            None => Verdict {
                status: status::CondStatus::Unknown,
                reason: status::Phase::Pending,
                message: "network view not available yet".to_string(),
            },
        },
        (Some(_), None) => Verdict::pending("No matching listeners"),
    };
    let ready = status::ready(&[&configured, &matched], None);
    vec![
        ("Configured", configured),
        ("Matched", matched),
        ("Ready", ready),
    ]
}

fn link(e: &Entry, router: &RouterState, edge: bool) -> Vec<(&'static str, Verdict)> {
    let configured = configured(e, router);
    let endpoint = match e.serving.as_ref().map(|(c, _)| c) {
        Some(Config::Link(l)) => l
            .endpoint(edge)
            .map(|(h, p)| crate::validate::cross::host_port(h, p)),
        _ => None,
    };
    let operational = match (&router.view, endpoint) {
        (None, _) => Verdict::unreachable(),
        (Some(_), None) => Verdict::pending("the link is not configured"),
        (Some(view), Some(at)) => match view.links.get(&e.name) {
            Some((status, _)) if status == "SUCCESS" => Verdict::ok(),
            Some((status, Some(msg))) if status == "FAILED" => {
                Verdict::error(format!("link to {at} failed: {msg}"))
            }
            // While it retries, the router keeps the last failure in
            // connectionMsg: the link stays failed, not "connecting", so
            // the status does not flip at every attempt. On SUCCESS the
            // message is "[C4] Connection Opened: ..." (observed), which is
            // no failure if it lingers while reconnecting.
            Some((_, Some(msg))) if msg.contains(" failed: ") => {
                Verdict::error(format!("link to {at} failed: {msg}"))
            }
            _ => Verdict::pending(format!("connecting to {at}")),
        },
    };
    let ready = status::ready(&[&configured, &operational], None);
    vec![
        ("Configured", configured),
        ("Operational", operational),
        ("Ready", ready),
    ]
}

/// A RouterAccess: Configured and Resolved once the router reports its
/// listeners `<name>-<role>` (their ports are then the endpoints).
fn router_access(e: &Entry, router: &RouterState) -> Vec<(&'static str, Verdict)> {
    let listeners: Vec<String> = match e.serving.as_ref().map(|(c, _)| c) {
        Some(Config::RouterAccess(ra)) => ra
            .roles
            .iter()
            .map(|(role, _)| format!("{}-{role}", e.name))
            .collect(),
        _ => Vec::new(),
    };
    let configured = match (e.error_message(), &router.view) {
        (Some(msg), _) => Verdict::error(msg),
        (None, None) => Verdict::unreachable(),
        (None, Some(view)) => match listeners
            .iter()
            .find_map(|l| view.refused.get(l).map(|w| (l, w)))
        {
            Some((l, why)) => Verdict::error(format!("router refused listener {l}: {why}")),
            None if listeners.iter().all(|l| view.confirmed.contains(l)) => Verdict::ok(),
            None => Verdict::pending("waiting for the router to apply it"),
        },
    };
    let resolved = match (&router.view, configured.is_true()) {
        (None, _) => Verdict::unreachable(),
        (Some(_), true) => Verdict::ok(),
        (Some(_), false) => Verdict::pending("link access endpoints not known yet"),
    };
    let ready = status::ready(&[&configured, &resolved], None);
    vec![
        ("Configured", configured),
        ("Resolved", resolved),
        ("Ready", ready),
    ]
}
