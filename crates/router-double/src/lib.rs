//! A test double of skupper-router, for skupperd's tests.
//!
//! CI has no real router, so this crate plays the parts skupperd talks to:
//! the AMQP 1.0 management listener (mutual TLS, SASL EXTERNAL, a
//! `$management` node answering CREATE/UPDATE/DELETE/READ/QUERY with the
//! router's observed status codes and descriptions) and the tcpListener
//! sockets whose `operStatus` follows the router's consumer rules
//! (router.md 5 and 6). It is not a router: it routes nothing but a plain
//! TCP proxy from a listener to a local tcpConnector.
//!
//! Layout: [`table`] holds the entities and the Python agent's replies,
//! `core` the connections, links and addresses and the C agent's replies,
//! [`rules`] asks the schema (the single wiring point for
//! `reference-check`), `tcp` runs the listener sockets, `amqp` the
//! management connection, [`config`] reads a `skrouterd.json` for the
//! `skrouterd-double` binary. `tests/transcripts.rs` replays the real
//! router's recorded exchanges against the double and compares every
//! answer.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

mod amqp;
pub mod config;
mod core;
mod links;
pub mod rules;
pub mod table;
mod tcp;
mod vanflow;

pub use rules::{default_rules, reference_dir, Entity, EntityRules, Refusal, TypeInfo};
pub use table::{Operation, StoredEntity};

/// Why the double could not start.
#[derive(Debug, thiserror::Error)]
pub enum DoubleError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("binding the management listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// What a test (or the binary) starts the double with.
pub struct DoubleConfig {
    /// Management port on 127.0.0.1; 0 picks an ephemeral port.
    pub port: u16,
    pub server_cert_pem: Vec<u8>,
    pub server_key_pem: Vec<u8>,
    /// CA that client certificates must chain to.
    pub client_ca_pem: Vec<u8>,
    /// Entities created before serving, as from the config file; they are
    /// loaded in the router's fixed type order.
    pub entities: Vec<(String, Entity)>,
    pub rules: Arc<dyn EntityRules>,
    /// Refuse listeners whose sslProfile files are unreadable.
    pub check_ssl_files: bool,
    /// How often the vanflow BEACON goes out (the real router: 10 s).
    pub beacon_interval: Duration,
    /// The SITE record's identity (the real router takes it from
    /// `SKUPPER_SITE_ID`).
    pub site_id: String,
}

impl DoubleConfig {
    /// A config with the default rules (from the reference directory), an
    /// ephemeral port and a router entity `router-double` in interior mode.
    pub fn new(
        server_cert_pem: Vec<u8>,
        server_key_pem: Vec<u8>,
        client_ca_pem: Vec<u8>,
    ) -> Result<DoubleConfig, DoubleError> {
        let rules = default_rules(&reference_dir()).map_err(DoubleError::Config)?;
        let mut router = Entity::new();
        router.insert("id".into(), "router-double".into());
        router.insert("mode".into(), "interior".into());
        Ok(DoubleConfig {
            port: 0,
            server_cert_pem,
            server_key_pem,
            client_ca_pem,
            entities: vec![("router".into(), router)],
            rules,
            check_ssl_files: true,
            beacon_interval: Duration::from_secs(10),
            site_id: "site-router-double".into(),
        })
    }
}

/// Everything the tasks of one double share. A std mutex: nothing awaits
/// while holding it.
pub(crate) struct State {
    pub(crate) table: table::Table,
    pub(crate) sockets: tcp::Sockets,
    /// Inter-router and edge listeners and connectors.
    pub(crate) links: links::Links,
    /// Sender links to clients, by source address (a dynamic reply
    /// address, `mc/sfe.all`, ...): messages for an address go to these.
    pub(crate) routes: Vec<Route>,
    next_route: u64,
    /// Listeners a test says exist on other routers (vanflow records only).
    pub(crate) remote_listeners: Vec<(String, String)>,
    /// When set, `$management` requests are swallowed (timeout tests).
    pub(crate) unresponsive: bool,
    pub(crate) vanflow: vanflow::Vanflow,
    /// Connections, links and addresses, as the C agent shows them.
    pub(crate) core: core::Core,
    runtime: tokio::runtime::Handle,
}

/// One sender link to a client.
pub(crate) struct Route {
    pub(crate) id: u64,
    pub(crate) address: String,
    /// The connection the link belongs to.
    pub(crate) connection: u64,
    /// Encoded messages for the link.
    pub(crate) tx: mpsc::Sender<Vec<u8>>,
}

impl State {
    /// Registers a sender link's channel; answers its id.
    pub(crate) fn add_route(
        &mut self,
        address: &str,
        connection: u64,
        tx: mpsc::Sender<Vec<u8>>,
    ) -> u64 {
        self.next_route += 1;
        self.routes.push(Route {
            id: self.next_route,
            address: address.to_string(),
            connection,
            tx,
        });
        self.next_route
    }

    /// The channels of every link subscribed to `address`.
    pub(crate) fn routes_to(&self, address: &str) -> Vec<mpsc::Sender<Vec<u8>>> {
        self.routes
            .iter()
            .filter(|r| r.address == address)
            .map(|r| r.tx.clone())
            .collect()
    }

    /// Brings the C agent's address table in line with the entities and
    /// links.
    pub(crate) fn note_addresses(&mut self) {
        let State {
            core,
            table,
            vanflow,
            ..
        } = self;
        core.note(table, vanflow.id());
    }
}

pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state; a panic elsewhere must not wedge the double.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers a request and brings the listener sockets in line with it.
pub(crate) fn apply(shared: &Shared, request: &table::Request) -> table::Reply {
    let mut state = lock(shared);
    if let Some(entity_type) = amqp::c_agent_type(request) {
        let reply = {
            let State {
                core,
                table,
                vanflow,
                ..
            } = &*state;
            core.query(table, vanflow.id(), request, &entity_type)
        };
        state.table.log(request, reply.code);
        return reply;
    }
    let reply = state.table.handle(request);
    // Only a change to a listener, a connector or a listener's address can
    // open or close sockets; QUERY and READ are hot.
    let sockets_change = request
        .entity_type
        .as_deref()
        .map(table::short_type)
        .is_some_and(|t| {
            matches!(
                t.as_str(),
                "tcpListener" | "tcpConnector" | "listenerAddress" | "listener" | "connector"
            )
        });
    if sockets_change && !matches!(request.operation.as_str(), "QUERY" | "READ") {
        sync_sockets(&mut state, shared);
        vanflow::announce_changes(&mut state);
    }
    if matches!(request.operation.as_str(), "CREATE" | "DELETE" | "UPDATE") {
        state.note_addresses();
    }
    reply
}

fn sync_sockets(state: &mut State, shared: &Shared) {
    let runtime = state.runtime.clone();
    let _guard = runtime.enter();
    tcp::sync(state, shared);
    links::sync(state, shared);
}

/// The router's load order: references resolve whatever the file order.
fn load_rank(entity_type: &str) -> u8 {
    match table::short_type(entity_type).as_str() {
        "log" => 0,
        "router" => 1,
        "sslProfile" | "router.config.address" => 2,
        "connector" => 4,
        "listener" => 5,
        "tcpListener" => 6,
        "tcpConnector" => 7,
        "listenerAddress" => 8,
        _ => 3,
    }
}

/// A running double. Dropping it stops it (without waiting).
pub struct RouterDouble {
    shared: Shared,
    port: u16,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    timers: JoinHandle<()>,
}

impl RouterDouble {
    /// Creates the configured entities, binds the management listener on
    /// 127.0.0.1 and serves. Must be called inside a tokio runtime.
    pub async fn start(config: DoubleConfig) -> Result<RouterDouble, DoubleError> {
        let tls = amqp::tls_acceptor(
            &config.server_cert_pem,
            &config.server_key_pem,
            &config.client_ca_pem,
        )?;
        let mut table = table::Table::new(config.rules.clone());
        table.check_ssl_files = config.check_ssl_files;
        let mut entities = config.entities.clone();
        entities.sort_by_key(|(t, _)| load_rank(t));
        for (entity_type, attrs) in &entities {
            table
                .create_from_config(entity_type, attrs)
                .map_err(|r| DoubleError::Config(startup_message(&r)))?;
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Mutex::new(State {
            table,
            sockets: tcp::Sockets::default(),
            links: links::Links::default(),
            routes: Vec::new(),
            next_route: 0,
            remote_listeners: Vec::new(),
            unresponsive: false,
            vanflow: vanflow::Vanflow::new(
                u64::from(port) ^ u64::from(std::process::id()) << 16,
                &config.site_id,
            ),
            core: core::Core::default(),
            runtime: tokio::runtime::Handle::current(),
        }));
        {
            let mut state = lock(&shared);
            state.note_addresses();
            sync_sockets(&mut state, &shared);
        }
        let (shutdown, stop) = watch::channel(false);
        let server = tokio::spawn(amqp::serve(listener, tls, shared.clone(), stop));
        let timers = tokio::spawn(vanflow::timers(shared.clone(), config.beacon_interval));
        Ok(RouterDouble {
            shared,
            port,
            shutdown,
            server: Some(server),
            timers,
        })
    }

    /// The management port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The vanflow source id (`<5 letters>:0`), which also names the
    /// router's vanflow addresses (`mc/sfe.<id>`).
    pub fn vanflow_id(&self) -> String {
        lock(&self.shared).vanflow.id().to_string()
    }

    /// Every entity, in creation order.
    pub fn entities(&self) -> Vec<StoredEntity> {
        lock(&self.shared).table.entities().to_vec()
    }

    /// The entity with this name, of any type.
    pub fn entity(&self, name: &str) -> Option<StoredEntity> {
        lock(&self.shared).table.find(name).cloned()
    }

    /// Every management request received so far, in order.
    pub fn operations(&self) -> Vec<Operation> {
        lock(&self.shared).table.operations().to_vec()
    }

    /// Only the CREATE/UPDATE/DELETE requests.
    pub fn mutations(&self) -> Vec<Operation> {
        self.operations()
            .into_iter()
            .filter(Operation::is_mutation)
            .collect()
    }

    /// Pretends a router elsewhere in the network gained a consumer
    /// (tcpConnector) for `address`.
    pub fn inject_remote_consumer(&self, address: &str) {
        let mut state = lock(&self.shared);
        state.table.add_remote_consumer(address);
        state.note_addresses();
        sync_sockets(&mut state, &self.shared);
    }

    /// Takes back one injected remote consumer of `address`.
    pub fn remove_remote_consumer(&self, address: &str) {
        let mut state = lock(&self.shared);
        state.table.remove_remote_consumer(address);
        state.note_addresses();
        sync_sockets(&mut state, &self.shared);
    }

    /// Pretends a tcpListener `name` for `address` exists on another
    /// router: it shows in the vanflow records sent on FLUSH.
    pub fn inject_remote_listener(&self, name: &str, address: &str) {
        let mut state = lock(&self.shared);
        state
            .remote_listeners
            .push((name.to_string(), address.to_string()));
        vanflow::announce_changes(&mut state);
    }

    /// Makes `$management` swallow requests without answering (or answer
    /// again), to exercise client timeouts.
    pub fn set_unresponsive(&self, unresponsive: bool) {
        lock(&self.shared).unresponsive = unresponsive;
    }

    /// Stops serving: management connections are closed, listener sockets
    /// and their connections too.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
        }
        self.close_sockets();
    }

    fn close_sockets(&self) {
        self.timers.abort();
        let mut state = lock(&self.shared);
        state.sockets = tcp::Sockets::default();
        state.links = links::Links::default();
        state.routes.clear();
    }
}

impl Drop for RouterDouble {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
        self.close_sockets();
    }
}

/// A refusal in the words of the router's start-up failure: the same text
/// without the management layer's `CError: <kind>: ` prefix.
pub fn startup_message(refusal: &Refusal) -> String {
    let d = refusal.description.as_str();
    d.strip_prefix("CError: Not found: ")
        .or_else(|| d.strip_prefix("CError: Configuration: "))
        .unwrap_or(d)
        .to_string()
}
