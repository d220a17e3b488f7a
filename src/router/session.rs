//! One namespace's live link to its router: connect over AMQP management,
//! bring the router's entities in line with the rendered `skrouterd.json`
//! (router.md 3), and poll what the status needs (operStatus,
//! connectionMsg, address consumers, the network view).
//!
//! Only the namespace actor owns a session. Errors never escape: a lost
//! connection makes the view `None` (router not reachable) and the next
//! call reconnects after a backoff; a refused operation is recorded
//! against its entity and the rest of the plan continues.

pub mod failures;

use self::failures::{Failures, Repeats, REPORT_EVERY};
use super::mgmt::{connect, AmqpManagement};
use super::vanflow::NetworkWatch;
use super::{Credentials, Key, Management, MgmtError};
use crate::plan::{Platform, RouterView};
use crate::sync::{self, Entity, Op};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Reconnect backoff: from 100 ms, doubling, at most 5 s. It resets only
/// once the router has answered a request: a connection that opens and
/// then fails at once must not make the next attempt immediate.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long after a failed vanflow start the next one is tried.
const VANFLOW_RETRY: Duration = Duration::from_secs(5);
/// Bind failures are not retried by the router (router.md 3.8).
const BIND_RETRY_MIN: Duration = Duration::from_secs(5);
const BIND_RETRY_MAX: Duration = Duration::from_secs(300);

/// Where and who: the management port, the site this router must belong
/// to, and the client credentials.
#[derive(Debug, Clone)]
pub struct Target {
    pub port: u16,
    pub site_id: String,
    pub platform: Platform,
    pub credentials: Credentials,
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        self.port == other.port
            && self.site_id == other.site_id
            && self.platform == other.platform
            && self.credentials.client_cert_pem == other.credentials.client_cert_pem
            && self.credentials.client_key_pem == other.credentials.client_key_pem
            && self.credentials.ca_pem == other.credentials.ca_pem
    }
}

#[derive(Default)]
pub struct Session {
    target: Option<Target>,
    client: Option<AmqpManagement>,
    network: Option<NetworkWatch>,
    backoff: Duration,
    next_try: Option<Instant>,
    /// The rendered config and the entities derived from it.
    config_bytes: Vec<u8>,
    desired: Vec<Entity>,
    /// `router` entity id and mode the config asks for.
    desired_router: Option<(String, String)>,
    view: RouterView,
    bind_retry: BTreeMap<String, (Instant, Duration)>,
    /// Set when the management port is answered by another site's router.
    pub foreign: Option<String>,
    /// New management credentials waiting for the sync that tells the
    /// router about them (see [`Session::set_target`]).
    renewed: Option<Target>,
    /// Set when the running router's id or mode differs from the config:
    /// only a restart applies that (platform.md 4).
    pub restart_needed: bool,
    /// Management operations sent, by operation, for tests and benchmarks.
    pub counts: BTreeMap<&'static str, u64>,
    /// A sync that the reconnect backoff put off: it is owed at this time,
    /// even where nothing else polls.
    deferred: Option<Instant>,
    /// Each managed type's attribute names on the connected router.
    attributes: BTreeMap<String, Vec<String>>,
    /// Management failures: logged once per reason, then counted.
    failures: Failures,
    /// Vanflow failures, likewise; they do not make the router
    /// unreachable (only the network view is missing).
    vanflow_failures: VanflowRepeats,
    /// No vanflow start before this, after one failed.
    vanflow_retry: Option<Instant>,
    /// The runner says the router is not running: refused connections are
    /// expected, not failures.
    router_down: bool,
    /// `desired` and `desired_router` match `config_bytes`.
    parsed: bool,
    /// What the router has, per managed type, as this connection last saw
    /// it: the rows of the last observation with every operation answered
    /// since applied to them. `None` until observed, and after anything
    /// that makes it doubtful (a reconnect, a refusal).
    known: Option<Observed>,
    /// The config changed since the last sync: that sync plans from
    /// `known` instead of QUERYing every type again.
    changed: bool,
    /// The `router` row this connection read (id, mode, metadata,
    /// version).
    router_row: Option<Map<String, Value>>,
    /// The view lacks a poll: a sync applied a change without one, or a
    /// poll gave way to a pass (see [`Session::poll_owed`]).
    poll_owed: bool,
}

/// Whether a poll should give way: asked before each of its requests.
pub type Interrupt<'a> = &'a (dyn Fn() -> bool + Sync);

/// Never gives way.
pub const NEVER: Interrupt<'static> = &|| false;

/// QUERY rows per short type.
type Observed = BTreeMap<String, Vec<Map<String, Value>>>;

/// [`Repeats`] with the default reporting period.
#[derive(Debug, Clone)]
struct VanflowRepeats(Repeats);

impl Default for VanflowRepeats {
    fn default() -> VanflowRepeats {
        VanflowRepeats(Repeats::new(REPORT_EVERY))
    }
}

/// Whether a connection failed because nothing listens on the port: what
/// a router that is still starting looks like. The management client
/// keeps the operating system's words (`Connection refused`) in its
/// message.
fn is_refused(e: &MgmtError) -> bool {
    matches!(e, MgmtError::Lost(m) if m.to_ascii_lowercase().contains("connection refused"))
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn count(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

impl Session {
    /// Points the session at a router; a different target drops the
    /// current connection.
    pub fn set_target(&mut self, target: Option<Target>) {
        if self.target == target {
            self.renewed = None;
            return;
        }
        let same_router = matches!((&self.target, &target),
            (Some(a), Some(b)) if a.port == b.port && a.site_id == b.site_id && a.platform == b.platform);
        if same_router && self.connected() {
            // Re-issued management certificates: the connection made with
            // the old ones carries the next sync, which raises the
            // management profile's ordinal so the router takes the new
            // ones; the sync after it connects with them. No restart.
            self.renewed = target;
            return;
        }
        self.renewed = None;
        if self.target != target {
            self.target = target;
            // Certificate paths depend on the platform.
            self.parsed = false;
            self.disconnect();
            self.backoff = Duration::ZERO;
            self.next_try = None;
            // Failures of another port or certificate say nothing of this
            // one.
            self.failures = Failures::default();
        }
    }

    /// The rendered `skrouterd.json`; returns whether it changed. It is
    /// only parsed when a router is there to sync: a namespace without a
    /// reachable router pays nothing for it.
    pub fn set_config(&mut self, bytes: &[u8]) -> bool {
        if bytes == self.config_bytes.as_slice() {
            return false;
        }
        self.config_bytes = bytes.to_vec();
        self.parsed = false;
        self.changed = true;
        true
    }

    fn parse_config(&mut self) {
        if self.parsed {
            return;
        }
        self.parsed = true;
        // Taken apart in place: a config of a thousand entities is not
        // copied on the way.
        let parsed: Vec<(String, Map<String, Value>)> =
            match serde_json::from_slice::<Value>(&self.config_bytes) {
                Ok(Value::Array(pairs)) => pairs
                    .into_iter()
                    .filter_map(|pair| {
                        let Value::Array(pair) = pair else {
                            return None;
                        };
                        let mut pair = pair.into_iter();
                        let kind = match pair.next()? {
                            Value::String(kind) => kind,
                            _ => return None,
                        };
                        let attrs = match pair.next()? {
                            Value::Object(attrs) => attrs,
                            _ => return None,
                        };
                        Some((kind, attrs))
                    })
                    .collect(),
                _ => Vec::new(),
            };
        self.desired_router = parsed.iter().find(|(k, _)| k == "router").map(|(_, a)| {
            (
                text(a.get("id")).unwrap_or_default(),
                text(a.get("mode")).unwrap_or_else(|| "interior".to_string()),
            )
        });
        let platform = self
            .target
            .as_ref()
            .map(|t| t.platform)
            .unwrap_or(Platform::Linux);
        self.desired = sync::management_entities(parsed, platform);
    }

    /// When a sync that the backoff put off is due.
    pub fn deferred(&self) -> Option<Instant> {
        self.deferred
    }

    /// Tells the session whether the router is known to be down (being
    /// started, or waiting to be restarted), so a refused connection is
    /// not reported as a failure.
    pub fn set_router_down(&mut self, down: bool) {
        self.router_down = down;
    }

    /// Why the router cannot be reached, when that is a failure rather
    /// than a router that is still starting: for the status.
    pub fn failure(&self) -> Option<&str> {
        self.failures.reason()
    }

    fn port(&self) -> u16 {
        self.target.as_ref().map_or(0, |t| t.port)
    }

    /// Logs a failed attempt at WARN, rate limited (see [`failures`]).
    fn report_failure(&mut self, e: &MgmtError) {
        let lines = self.failures.failed(
            &e.to_string(),
            is_refused(e),
            self.router_down,
            Instant::now(),
        );
        let port = self.port();
        for line in lines {
            tracing::warn!(port, "router management on 127.0.0.1:{port}: {line}");
        }
    }

    /// The router answered a request.
    fn report_success(&mut self) {
        let (owed, had_failed) = self.failures.succeeded();
        let port = self.port();
        if let Some(line) = owed {
            tracing::warn!(port, "router management on 127.0.0.1:{port}: {line}");
        }
        if had_failed {
            tracing::info!(port, "router management on 127.0.0.1:{port} answers again");
        }
        self.backoff = Duration::ZERO;
        self.next_try = None;
    }

    fn report_vanflow(&mut self, failure: Option<String>) {
        let lines = match failure {
            Some(why) => {
                self.vanflow_retry = Some(Instant::now() + VANFLOW_RETRY);
                self.vanflow_failures.0.failed(&why, Instant::now())
            }
            None => self.vanflow_failures.0.cleared().into_iter().collect(),
        };
        for line in lines {
            tracing::warn!("router network view (vanflow): {line}");
        }
    }

    /// Starts the network view unless it runs, or failed moments ago.
    async fn ensure_network(&mut self) {
        if self.network.is_some() || self.vanflow_retry.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let Some(client) = self.client.as_mut() else {
            return;
        };
        match client.watch_network().await {
            Ok(watch) => {
                self.network = Some(watch);
                self.vanflow_retry = None;
                self.report_vanflow(None);
            }
            Err(e) => self.report_vanflow(Some(e.to_string())),
        }
    }

    /// One QUERY on the open connection, counted.
    async fn query(
        &mut self,
        kind: &str,
        attrs: &[&str],
    ) -> Result<Vec<Map<String, Value>>, MgmtError> {
        self.bump("query");
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| MgmtError::Lost("not connected".to_string()))?;
        client.query(kind, attrs).await
    }

    pub fn connected(&self) -> bool {
        self.client.as_ref().map(|c| !c.is_lost()).unwrap_or(false)
    }

    /// Forgets the reconnect backoff while disconnected: the router was
    /// just started again, so the next attempt is worth making at once
    /// (and the backoff starts over from its minimum).
    pub fn retry_now(&mut self) {
        if !self.connected() {
            self.backoff = Duration::ZERO;
            self.next_try = None;
        }
    }

    pub fn disconnect(&mut self) {
        self.client = None;
        self.network = None;
        // The reconnect's full sync polls.
        self.poll_owed = false;
        self.known = None;
        self.router_row = None;
        self.view = RouterView::default();
    }

    fn bump(&mut self, op: &'static str) {
        *self.counts.entry(op).or_default() += 1;
    }

    fn lost(&mut self, why: &MgmtError) -> Option<RouterView> {
        tracing::debug!(error = %why, "router management connection lost");
        self.report_failure(why);
        self.disconnect();
        self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        self.next_try = Some(Instant::now() + self.backoff);
        None
    }

    /// `Ok(false)`: no target, or still waiting out the reconnect backoff
    /// (which only a real attempt may lengthen).
    async fn ensure_connected(&mut self) -> Result<bool, MgmtError> {
        if self.connected() {
            return Ok(true);
        }
        let Some(target) = self.target.clone() else {
            return Ok(false);
        };
        if let Some(t) = self.next_try {
            if Instant::now() < t {
                self.deferred = Some(t);
                return Ok(false);
            }
        }
        self.deferred = None;
        let mut client = match connect(target.port, &target.credentials).await {
            Ok(c) => c,
            Err(e) => {
                self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                self.next_try = Some(Instant::now() + self.backoff);
                self.report_failure(&e);
                return Err(e);
            }
        };
        // The backoff stays until the router answers (`report_success`):
        // a TLS peer that is not this router, or a router that drops the
        // connection at its first request, opens connections too.
        self.view = RouterView::default();
        self.known = None;
        self.router_row = None;
        self.attributes = BTreeMap::new();
        for kind in sync::KINDS {
            self.bump("query");
            if let Ok(names) = client.attribute_names(kind).await {
                self.attributes.insert(kind.to_string(), names);
            }
        }
        self.view.capabilities = capabilities(&self.attributes);
        self.client = Some(client);
        self.vanflow_retry = None;
        self.ensure_network().await;
        Ok(true)
    }

    /// Full sync: connect if needed, check the router is this site's,
    /// apply the difference, then poll. `None` = router not reachable.
    ///
    /// A sync after a config change plans from what this connection knows
    /// the router has (the last observation plus the operations answered
    /// since), so a change costs its own operations, not a QUERY of every
    /// entity. Every other sync (the periodic resync, a pass that changed
    /// nothing for the router, the first after a connect) observes the
    /// router from scratch: that is the drift check that repairs changes
    /// made behind skupperd's back. A refusal met while planning from
    /// memory means memory may be wrong: the plan is made again from a
    /// fresh observation at once.
    pub async fn sync(&mut self, now: &str) -> Option<RouterView> {
        if !self.connected() {
            self.take_renewed();
        }
        let result = self.sync_inner(now).await;
        self.take_renewed();
        result
    }

    /// Moves to credentials that were held back for one sync.
    fn take_renewed(&mut self) {
        if let Some(target) = self.renewed.take() {
            tracing::info!("management certificates renewed: reconnecting with them");
            self.disconnect();
            self.set_target(Some(target));
        }
    }

    async fn sync_inner(&mut self, now: &str) -> Option<RouterView> {
        let started = Instant::now();
        match self.ensure_connected().await {
            Ok(true) => self.parse_config(),
            Ok(false) => return None,
            Err(e) => {
                // `ensure_connected` already set the backoff.
                tracing::debug!(error = %e, "router management not reachable");
                self.disconnect();
                return None;
            }
        }
        let from_memory = self.changed && self.known.is_some();
        self.changed = false;
        if let Err(e) = self.check_identity(from_memory).await {
            return self.lost(&e);
        }
        self.report_success();
        if self.foreign.is_some() {
            return None;
        }
        let applied_at = Instant::now();
        let (known, ops_sent) = match self.apply(now, from_memory).await {
            Ok(applied) => applied,
            Err(e) => return self.lost(&e),
        };
        let polled_at = Instant::now();
        let result = if from_memory {
            // A change costs its own operations only. Whether created
            // listeners opened, and who consumes their addresses, comes
            // from the poll owed now, which gives way to the next change
            // (at a thousand listeners it takes longer than the change).
            if ops_sent {
                self.view.listeners = known;
                self.refresh_network();
                self.poll_owed = true;
            }
            Some(self.view.clone())
        } else {
            match self.poll_inner(Some(known), NEVER).await {
                Ok(_) => {
                    self.poll_owed = false;
                    Some(self.view.clone())
                }
                Err(e) => self.lost(&e),
            }
        };
        tracing::debug!(
            from_memory,
            identity_ms = ms(applied_at - started),
            apply_ms = ms(polled_at - applied_at),
            poll_ms = ms(polled_at.elapsed()),
            "router sync"
        );
        result
    }

    /// Whose router answers, and whether its id and mode are the
    /// config's. The `router` row cannot change without a restart, which
    /// drops the connection: a sync planned from memory reuses the row
    /// this connection read.
    async fn check_identity(&mut self, from_memory: bool) -> Result<(), MgmtError> {
        let row = match self.router_row.clone().filter(|_| from_memory) {
            Some(row) => row,
            None => {
                let rows = self
                    .query("router", &["id", "mode", "metadata", "version"])
                    .await?;
                let row = rows.into_iter().next().unwrap_or_default();
                self.router_row = Some(row.clone());
                row
            }
        };
        let site = text(row.get("metadata"))
            .and_then(|m| serde_json::from_str::<Value>(&m).ok())
            .and_then(|m| text(m.get("id")));
        let want = self.target.as_ref().map(|t| t.site_id.clone());
        self.foreign = match (&site, &want) {
            (Some(s), Some(w)) if s != w => Some(format!(
                "management port {} is answered by the router of site {s}, not this one",
                self.target.as_ref().map(|t| t.port).unwrap_or(0)
            )),
            _ => None,
        };
        self.view.version = text(row.get("version"));
        let running = (
            text(row.get("id")).unwrap_or_default(),
            text(row.get("mode")).unwrap_or_default(),
        );
        self.restart_needed = self
            .desired_router
            .as_ref()
            .map(|d| *d != running)
            .unwrap_or(false);
        Ok(())
    }

    /// The attributes observed of a type: what a plan compares (and the
    /// listener states the status needs), among what this router has, so
    /// answers stay small.
    fn observed_attributes(&self, kind: &str) -> Vec<&'static str> {
        let available = self.attributes.get(kind);
        let mut attrs: Vec<&'static str> = vec!["name"];
        attrs.extend(sync::set_by_skupperd(kind));
        if kind == "tcpListener" {
            attrs.extend(["operStatus", "connectionMsg"]);
        }
        attrs.retain(|a| available.is_none_or(|names| names.iter().any(|n| n == a)));
        attrs
    }

    async fn observe(&mut self) -> Result<Observed, MgmtError> {
        let mut observed = BTreeMap::new();
        let with_addresses = self
            .view
            .capabilities
            .iter()
            .any(|c| c == "multiKeyListener");
        for kind in sync::KINDS {
            if kind == "listenerAddress" && !with_addresses {
                continue;
            }
            let attrs = self.observed_attributes(kind);
            observed.insert(kind.to_string(), self.query(kind, &attrs).await?);
        }
        // Log levels are changed live too (router.md 2.4).
        let attrs = self.observed_attributes(sync::LOG);
        observed.insert(sync::LOG.to_string(), self.query(sync::LOG, &attrs).await?);
        Ok(observed)
    }

    /// Keeps `known` in line with an operation the router accepted; its
    /// answer (the entity with the router's defaults) is what a QUERY
    /// would show.
    fn remember(&mut self, op: &Op, answer: Option<Map<String, Value>>) {
        let attrs = self.observed_attributes(op.kind());
        let Some(known) = self.known.as_mut() else {
            return;
        };
        let rows = known.entry(op.kind().to_string()).or_default();
        let at = rows
            .iter()
            .position(|r| r.get("name").and_then(Value::as_str) == Some(op.name()));
        let project = |from: &Map<String, Value>| -> Map<String, Value> {
            attrs
                .iter()
                .map(|a| (a.to_string(), from.get(*a).cloned().unwrap_or(Value::Null)))
                .collect()
        };
        match op {
            Op::Delete { .. } => {
                if let Some(i) = at {
                    rows.remove(i);
                }
            }
            Op::Create(e) => {
                let mut row = project(
                    answer
                        .as_ref()
                        .filter(|a| !a.is_empty())
                        .unwrap_or(&e.attrs),
                );
                row.insert("name".into(), Value::from(op.name()));
                match at {
                    Some(i) => {
                        if let Some(r) = rows.get_mut(i) {
                            *r = row;
                        }
                    }
                    None => rows.push(row),
                }
            }
            Op::Update { attrs: changes, .. } => {
                let Some(row) = at.and_then(|i| rows.get_mut(i)) else {
                    // Updated something memory did not have: it is stale.
                    self.known = None;
                    return;
                };
                let answer = answer.filter(|a| !a.is_empty());
                for (k, v) in answer.as_ref().unwrap_or(changes) {
                    if attrs.contains(&k.as_str()) {
                        row.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }

    /// One plan, from memory or from a fresh observation, sent operation
    /// by operation (each appended to `sent`). Answers the refusals and the
    /// listener states before the plan; `None`: planned from memory and
    /// the router refused something, so memory may be wrong and nothing is
    /// concluded.
    async fn apply_round(
        &mut self,
        from_memory: bool,
        sent: &mut Vec<Op>,
    ) -> Result<Option<(BTreeMap<String, String>, ListenerStatuses)>, MgmtError> {
        let statuses: ListenerStatuses = if from_memory {
            // Listener states as the last sync or poll saw them.
            self.view.listeners.clone()
        } else {
            let observed = self.observe().await?;
            let statuses = observed
                .get("tcpListener")
                .map(|rows| listener_statuses(rows))
                .unwrap_or_default();
            self.known = Some(observed);
            statuses
        };
        let planning = Instant::now();
        let ops = match &self.known {
            Some(known) => sync::plan(&self.desired, known),
            None => return Err(MgmtError::Lost("nothing observed".into())),
        };
        tracing::debug!(
            from_memory,
            ops = ops.len(),
            plan_ms = ms(planning.elapsed()),
            "router plan"
        );
        let mut refused = BTreeMap::new();
        for op in ops {
            let result = self.send(&op).await;
            sent.push(op);
            let Some(op) = sent.last() else { continue };
            match result {
                Ok(()) => {}
                Err(MgmtError::Refused { code, description }) => {
                    if from_memory {
                        return Ok(None);
                    }
                    tracing::warn!(op = %op.name(), code, %description, "router refused");
                    refused.insert(op.name().to_string(), format!("{code} {description}"));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some((refused, statuses)))
    }

    /// Applies the plan; answers the listener statuses the observation
    /// already showed (entities just created or replaced are down until
    /// the next poll), so the poll that follows need not ask again.
    async fn apply(
        &mut self,
        now: &str,
        from_memory: bool,
    ) -> Result<(ListenerStatuses, bool), MgmtError> {
        let mut ops = Vec::new();
        let (refused, mut statuses) = match self.apply_round(from_memory, &mut ops).await? {
            Some(round) => round,
            None => {
                tracing::debug!("a refusal while planning from memory: observing the router again");
                self.known = None;
                self.apply_round(false, &mut ops)
                    .await?
                    .ok_or_else(|| MgmtError::Lost("no plan from a fresh observation".into()))?
            }
        };
        if !ops.is_empty() {
            self.view.last_sync = Some(now.to_string());
            self.view.last_changes = sync::summarize(&ops);
        }
        // Desired entities the router now has: every one not refused (the
        // others compared equal, or their CREATE/UPDATE answered 2xx).
        self.view.confirmed = self
            .desired
            .iter()
            .filter_map(|e| e.name().map(str::to_string))
            .filter(|n| !refused.contains_key(n))
            .collect();
        self.view.refused = refused;
        for op in &ops {
            match op {
                Op::Delete { kind, name } if kind == "tcpListener" => {
                    statuses.remove(name);
                }
                _ => {}
            }
        }
        for op in &ops {
            if let Op::Create(e) = op {
                if e.kind == "tcpListener" && !self.view.refused.contains_key(op.name()) {
                    statuses.insert(op.name().to_string(), (false, None));
                }
            }
        }
        Ok((statuses, !ops.is_empty()))
    }

    /// Sends one operation and keeps `known` in line with the answer: a
    /// refusal makes it doubtful.
    async fn send(&mut self, op: &Op) -> Result<(), MgmtError> {
        let Some(client) = self.client.as_mut() else {
            return Err(MgmtError::Lost("not connected".to_string()));
        };
        let (name, result) = match op {
            Op::Create(e) => {
                let name = e.name().unwrap_or_default().to_string();
                (
                    "create",
                    client.create(&e.kind, &name, &e.attrs).await.map(Some),
                )
            }
            Op::Update { kind, name, attrs } => {
                // Log entities are addressed by identity (`log/DEFAULT`).
                let key = if kind == sync::LOG {
                    Key::Identity(name)
                } else {
                    Key::Name(name)
                };
                ("update", client.update(kind, key, attrs).await.map(Some))
            }
            Op::Delete { kind, name } => (
                "delete",
                client.delete(kind, Key::Name(name)).await.map(|()| None),
            ),
        };
        self.bump(name);
        match result {
            Ok(answer) => {
                self.remember(op, answer);
                Ok(())
            }
            Err(e) => {
                self.known = None;
                Err(e)
            }
        }
    }

    /// Whether the view lacks a poll that is due soon: after a change was
    /// applied, or after a poll gave way (right after [`Session::poll`],
    /// whether it did: its view is then the one from before it).
    pub fn poll_owed(&self) -> bool {
        self.poll_owed
    }

    /// The light poll of router.md 3.9, plus bind-failure retries. Before
    /// each request it asks `interrupt`; when that says a pass is waiting,
    /// the poll stops there (between requests, so the connection stays in
    /// step), keeps the view as it was and is owed.
    pub async fn poll(&mut self, interrupt: Interrupt<'_>) -> Option<RouterView> {
        if !self.connected() {
            return None;
        }
        match self.poll_inner(None, interrupt).await {
            Ok(done) => {
                self.poll_owed = !done;
                Some(self.view.clone())
            }
            Err(e) => self.lost(&e),
        }
    }

    /// `Ok(false)`: interrupted, nothing of it kept.
    ///
    /// Interrupted only between requests: a request given up while its
    /// answer is on the way would leave that answer to the next one.
    async fn poll_inner(
        &mut self,
        known: Option<ListenerStatuses>,
        interrupt: Interrupt<'_>,
    ) -> Result<bool, MgmtError> {
        let listeners = match known {
            Some(known) => known,
            None => {
                if interrupt() {
                    return Ok(false);
                }
                let with_msg = self.view.capabilities.iter().any(|c| c == "connectionMsg");
                let attrs: &[&str] = if with_msg {
                    &["name", "operStatus", "connectionMsg"]
                } else {
                    &["name", "operStatus"]
                };
                listener_statuses(&self.query("tcpListener", attrs).await?)
            }
        };
        if interrupt() {
            return Ok(false);
        }
        let rows = self
            .query(
                "router.address",
                &["name", "subscriberCount", "remoteCount", "inProcess"],
            )
            .await?;
        let consumers = rows
            .iter()
            .filter_map(|r| {
                let name = text(r.get("name"))?;
                let key = routing_key(&name)?.to_string();
                let n = count(r.get("subscriberCount"))
                    + count(r.get("remoteCount"))
                    + count(r.get("inProcess"));
                Some((key, n))
            })
            .collect();
        // Links: the router's own word on each connector (router.md 7),
        // asked only while there are any, so a site without links polls
        // as before.
        let mut links = None;
        if self.desired.iter().any(|e| e.kind == sync::CONNECTOR) || !self.view.links.is_empty() {
            if interrupt() {
                return Ok(false);
            }
            let rows = self
                .query(
                    sync::CONNECTOR,
                    &["name", "connectionStatus", "connectionMsg"],
                )
                .await?;
            links = Some(
                rows.iter()
                    .filter_map(|r| {
                        let name = text(r.get("name"))?;
                        let status = text(r.get("connectionStatus")).unwrap_or_default();
                        let msg = text(r.get("connectionMsg")).filter(|m| !m.is_empty());
                        Some((name, (status, msg)))
                    })
                    .collect(),
            );
        }
        // Taken into the view only once every answer is in: an
        // interrupted poll leaves the view as one consistent moment.
        self.view.consumers = consumers;
        if let Some(links) = links {
            self.view.links = links;
        }
        self.retry_bind_failures(&listeners).await?;
        self.view.listeners = listeners;
        // The view's task ends when its links do: start it again (the
        // network view is part of the status).
        if self.network.as_ref().is_some_and(NetworkWatch::ended) {
            self.network = None;
            self.report_vanflow(Some("the network view stopped".to_string()));
        }
        self.ensure_network().await;
        self.refresh_network();
        Ok(true)
    }

    /// The routing keys of the desired connectors that the network view
    /// shows a listener for, and the sites it knows: no request, the view
    /// is kept up to date by its own task.
    fn refresh_network(&mut self) {
        if let Some(watch) = &self.network {
            let view = watch.view.borrow();
            if view.available() {
                let keys: BTreeSet<String> = self
                    .desired
                    .iter()
                    .filter(|e| e.kind == "tcpConnector")
                    .filter_map(|e| text(e.attrs.get("address")))
                    .filter(|k| view.listener_for(k) == Some(true))
                    .collect();
                self.view.network_listeners = Some(keys);
                self.view.sites_in_network = view.sites_in_network().map(|n| n as u64);
            }
        }
    }

    /// A tcpListener that failed to bind stays down; delete and re-create
    /// it after 5 s, doubling to 5 min, while its resource is unchanged.
    async fn retry_bind_failures(
        &mut self,
        listeners: &BTreeMap<String, (bool, Option<String>)>,
    ) -> Result<(), MgmtError> {
        let now = Instant::now();
        self.bind_retry.retain(|name, _| {
            listeners
                .get(name)
                .map(|(_, msg)| msg.is_some())
                .unwrap_or(false)
        });
        for (name, (_, msg)) in listeners {
            if msg.is_none() {
                continue;
            }
            let (due, delay) = *self
                .bind_retry
                .entry(name.clone())
                .or_insert((now + BIND_RETRY_MIN, BIND_RETRY_MIN));
            if now < due {
                continue;
            }
            let Some(entity) = self
                .desired
                .iter()
                .find(|e| e.kind == "tcpListener" && e.name() == Some(name.as_str()))
                .cloned()
            else {
                continue;
            };
            let next = (delay * 2).min(BIND_RETRY_MAX);
            self.bind_retry.insert(name.clone(), (now + next, next));
            tracing::info!(listener = %name, "re-creating a listener that failed to bind");
            self.send(&Op::Delete {
                kind: entity.kind.clone(),
                name: name.clone(),
            })
            .await
            .or_else(ignore_refusal)?;
            self.send(&Op::Create(entity))
                .await
                .or_else(ignore_refusal)?;
        }
        Ok(())
    }
}

/// tcpListener name -> (operStatus up, connectionMsg).
type ListenerStatuses = BTreeMap<String, (bool, Option<String>)>;

fn listener_statuses(rows: &[Map<String, Value>]) -> ListenerStatuses {
    rows.iter()
        .filter_map(|r| {
            let name = text(r.get("name"))?;
            let up = text(r.get("operStatus")).as_deref() == Some("up");
            Some((
                name,
                (up, text(r.get("connectionMsg")).filter(|m| !m.is_empty())),
            ))
        })
        .collect()
}

fn ignore_refusal(e: MgmtError) -> Result<(), MgmtError> {
    match e {
        MgmtError::Refused { .. } => Ok(()),
        other => Err(other),
    }
}

/// Capabilities from the attribute lists, never from version strings
/// (router.md 8). A type the router does not know has no list.
/// The routing key a `router.address` row counts consumers for: mobile
/// addresses are `M<key>`. The router's own addresses (`M$management`,
/// `M_$qd.*`, vanflow's `Mmc/sfe.*`, `Msfe.*`, `Mvfcr.*`) have in-process
/// or collector consumers that serve no listener, so they are never taken
/// for a routing key's consumers (transcript 22).
fn routing_key(address: &str) -> Option<&str> {
    let key = address.strip_prefix('M')?;
    let internal = key.starts_with('$')
        || key.starts_with("_$")
        || key.starts_with("mc/sfe.")
        || key.starts_with("sfe.")
        || key.starts_with("vfcr.");
    (!internal).then_some(key)
}

fn capabilities(attributes: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let has = |kind: &str, attr: &str| {
        attributes
            .get(kind)
            .is_some_and(|names| names.iter().any(|n| n == attr))
    };
    let mut caps = Vec::new();
    if has("tcpListener", "connectionMsg") {
        caps.push("connectionMsg".to_string());
    }
    if has("sslProfile", "ordinal") {
        caps.push("sslProfileOrdinal".to_string());
    }
    if attributes.contains_key("listenerAddress") {
        caps.push("multiKeyListener".to_string());
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mobile_addresses_of_user_keys_count_as_consumers() {
        // Rows a real router answered (transcript 22).
        let real = [
            "Lqdhello",
            "Lqdrouter",
            "Tqdrouter",
            "M_$qd.mesh_discovery",
            "Mmc/sfe.all",
            "Mmc/sfe.llNiF:0",
            "Msfe.llNiF:0",
            "Mvfcr.llNiF:0",
            "M$management",
            "L$management",
            "Mbackend",
            "Ltemp.xJiWymTVYCLaGiQ",
        ];
        let keys: Vec<&str> = real.iter().filter_map(|a| routing_key(a)).collect();
        assert_eq!(keys, ["backend"]);
    }
}
