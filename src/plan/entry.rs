//! One resource during a pass: its definitions, what validation made of
//! them, the last accepted version, and what it serves. Built per resource
//! with no view of the others, so a pass can reuse an entry whose inputs
//! did not change (see `memo`).

use super::prior::PriorRecord;
use crate::problem::Problem;
use crate::resources::{InputResource, Kind, Spec};
use crate::validate::{
    self, ConnectorConfig, ConnectorTls, Context, LinkConfig, ListenerConfig, RouterAccessConfig,
    SiteConfig,
};
use std::sync::Arc;

/// A valid version of a resource. Shared: an entry holds its current,
/// served and accepted versions, usually the same one.
#[derive(Debug, Clone, PartialEq)]
pub enum Config {
    Site(Arc<SiteConfig>),
    Listener(Arc<ListenerConfig>),
    Connector(Arc<ConnectorConfig>),
    Link(Arc<LinkConfig>),
    RouterAccess(Arc<RouterAccessConfig>),
}

/// Everything known about one resource during a pass.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    pub name: String,
    pub file: String,
    /// `None` when the resource comes only from its last accepted version
    /// because its file no longer parses.
    pub input: Option<Arc<InputResource>>,
    pub prior: Option<Arc<PriorRecord>>,
    pub generation: u64,
    pub input_sha256: String,
    /// Error problems about this resource, in the order found.
    pub errors: Vec<Problem>,
    /// The current version, when valid.
    pub current: Option<Config>,
    /// What the router is given: the current version or the last accepted
    /// one, with its generation.
    pub serving: Option<(Config, u64)>,
    /// The last accepted version, from the prior pass.
    pub accepted: Option<(Config, u64)>,
    /// The current version is the last accepted one: placement keeps it
    /// ahead of new and edited listeners.
    pub unchanged: bool,
}

impl Entry {
    fn accepted_from_prior(&self) -> Option<(Config, u64)> {
        let prior = self.prior.as_deref()?;
        let generation = prior.accepted_generation?;
        let config = match prior.accepted.as_ref()? {
            Spec::Site(s) => Config::Site(Arc::new(site_from_accepted(s))),
            Spec::Listener(s) => Config::Listener(Arc::new(listener_from_accepted(&self.name, s)?)),
            Spec::Connector(s) => {
                Config::Connector(Arc::new(connector_from_accepted(&self.name, s)?))
            }
            Spec::Link(s) => Config::Link(Arc::new(link_from_accepted(s)?)),
            Spec::RouterAccess(s) => {
                Config::RouterAccess(Arc::new(router_access_from_accepted(&self.name, s)))
            }
        };
        // The accepted version is most often the current one: shared.
        match &self.current {
            Some(c) if *c == config => Some((c.clone(), generation)),
            _ => Some((config, generation)),
        }
    }

    /// Fills `accepted`, `serving` and `unchanged` from `current` and the
    /// prior record.
    fn settle(&mut self) {
        self.accepted = self.accepted_from_prior();
        self.serving = match &self.current {
            Some(c) => Some((c.clone(), self.generation)),
            None => self.accepted.clone(),
        };
        self.unchanged = match (&self.current, &self.accepted) {
            (Some(c), Some((a, _))) => c == a,
            _ => false,
        };
    }

    /// The status message for an error: where, and what still runs.
    pub fn error_message(&self) -> Option<String> {
        let first = self.errors.first()?;
        let mut msg = first.message.clone();
        if let Some(place) = first.place() {
            msg = format!("{msg} ({place})");
        }
        if let Some((_, g)) = &self.serving {
            msg = format!("{msg}; still serving generation {g}");
        }
        Some(msg)
    }

    /// Whether the entry's validation reads anything besides its own
    /// definition, its prior record and the namespace's CA names: the Site
    /// (issuers) and anything naming TLS credentials (bundles, and the
    /// clock for certificate expiry). Such entries are built every pass.
    pub fn reads_context(kind: Kind, input: &InputResource) -> bool {
        match (kind, &input.spec) {
            // A Link reads the Secrets and bundles it names.
            (Kind::Site | Kind::Link, _) => true,
            (_, Some(Spec::Listener(s))) => s.tls_credentials.is_some(),
            (_, Some(Spec::Connector(s))) => s.tls_credentials.is_some(),
            _ => false,
        }
    }
}

/// Builds the entry of one resource from its definitions (more than one is
/// an error), the decode errors its files reported about it and its prior
/// record. Returns the entry and every problem found, warnings included.
pub fn build(
    kind: Kind,
    name: &str,
    defs: &[&Arc<InputResource>],
    file_errors: &[Problem],
    prior: Option<&Arc<PriorRecord>>,
    cx: &Context,
) -> Option<(Entry, Vec<Problem>)> {
    let (&first, rest) = defs.split_first()?;
    let mut found = Vec::new();
    let mut errors: Vec<Problem> = file_errors.to_vec();
    if let Some(second) = rest.first() {
        let place = |r: &InputResource| format!("{}:{}:{}", r.file, r.mark.line, r.mark.column);
        let msg = format!(
            "{} \"{name}\" is defined twice ({} and {}); neither is used",
            kind.lower(),
            place(first),
            place(second)
        );
        for r in defs {
            let p = r.problem(Problem::error(msg.clone()), None);
            found.push(p.clone());
            errors.push(p);
        }
    }
    let mut current = None;
    if let (Some(spec), true) = (&first.spec, errors.is_empty()) {
        let (config, problems) = match spec {
            Spec::Site(s) => {
                let (c, p) = validate::site(first, s, cx);
                (c.map(|c| Config::Site(Arc::new(c))), p)
            }
            Spec::Listener(s) => {
                let (c, p) = validate::listener(first, s, cx);
                (c.map(|c| Config::Listener(Arc::new(c))), p)
            }
            Spec::Connector(s) => {
                let (c, p) = validate::connector(first, s, cx);
                (c.map(|c| Config::Connector(Arc::new(c))), p)
            }
            Spec::Link(s) => {
                let (c, p) = validate::link(first, s, cx);
                (c.map(|c| Config::Link(Arc::new(c))), p)
            }
            Spec::RouterAccess(s) => {
                let (c, p) = validate::router_access(first, s, cx);
                (c.map(|c| Config::RouterAccess(Arc::new(c))), p)
            }
        };
        errors.extend(problems.iter().filter(|p| p.is_error()).cloned());
        found.extend(problems);
        current = config;
    }
    let generation = match prior {
        Some(p) if p.input_sha256 == first.input_sha256 => p.generation.max(1),
        Some(p) => p.generation + 1,
        None => 1,
    };
    let mut entry = Entry {
        kind,
        name: name.to_string(),
        file: first.file.clone(),
        input_sha256: first.input_sha256.clone(),
        input: Some(Arc::clone(first)),
        prior: prior.cloned(),
        generation,
        errors,
        current,
        serving: None,
        accepted: None,
        unchanged: false,
    };
    entry.settle();
    Some((entry, found))
}

/// The entry of a resource whose file stopped parsing: it keeps its last
/// accepted version, with the parse error as its own.
pub fn from_broken_file(
    kind: Kind,
    name: &str,
    record: &Arc<PriorRecord>,
    source: &str,
    problem: &Problem,
) -> Entry {
    let mut p = problem.clone();
    // The source is a path as the directory holds it: escaped like every
    // message (the parse error already is).
    p.message = crate::problem::escape_controls(&format!(
        "{} \"{name}\": {source} no longer parses: {}",
        kind.lower(),
        problem.message
    ))
    .into_owned();
    let mut entry = Entry {
        kind,
        name: name.to_string(),
        file: source.to_string(),
        input: None,
        prior: Some(Arc::clone(record)),
        generation: record.generation,
        input_sha256: record.input_sha256.clone(),
        errors: vec![p],
        current: None,
        serving: None,
        accepted: None,
        unchanged: false,
    };
    entry.settle();
    entry
}

/// The entry `build` would give for the same definitions with another
/// prior record: validation does not read the prior record, so only the
/// generation and what is accepted and served are derived again.
pub fn rebase(e: &Entry, prior: Option<&Arc<PriorRecord>>) -> Entry {
    let mut next = Entry {
        prior: prior.cloned(),
        serving: None,
        accepted: None,
        unchanged: false,
        ..e.clone()
    };
    next.generation = match prior {
        Some(p) if p.input_sha256 == e.input_sha256 => p.generation.max(1),
        Some(p) => p.generation + 1,
        None => 1,
    };
    next.settle();
    next
}

fn site_from_accepted(s: &crate::resources::SiteSpec) -> SiteConfig {
    let mut logging = "info".to_string();
    let mut data_connections = None;
    for (k, v) in &s.settings {
        match k.as_str() {
            "routerLogging" | "router-logging" => logging = v.clone(),
            "routerDataConnections" | "router-data-connection-count" => {
                data_connections = v.parse::<u32>().ok()
            }
            _ => {}
        }
    }
    SiteConfig {
        edge: s.edge.unwrap_or(false),
        link_access: matches!(
            s.link_access.as_deref(),
            Some("default" | "route" | "loadbalancer")
        ),
        router_logging: logging,
        data_connections,
        default_issuer: s
            .default_issuer
            .clone()
            .unwrap_or_else(|| validate::SITE_CA.to_string()),
        spec: s.clone(),
    }
}

fn listener_from_accepted(
    name: &str,
    s: &crate::resources::ListenerSpec,
) -> Option<ListenerConfig> {
    let observer = s
        .observer
        .clone()
        .or_else(|| s.settings.get("observer").cloned())
        .filter(|o| o != "auto");
    Some(ListenerConfig {
        routing_key: s.routing_key.clone().unwrap_or_else(|| name.to_string()),
        host: s.host.clone()?,
        port: u16::try_from(s.port?).ok().filter(|p| *p > 0)?,
        observer,
        tls_credentials: s.tls_credentials.clone(),
        spec: s.clone(),
    })
}

fn connector_from_accepted(
    name: &str,
    s: &crate::resources::ConnectorSpec,
) -> Option<ConnectorConfig> {
    Some(ConnectorConfig {
        routing_key: s.routing_key.clone().unwrap_or_else(|| name.to_string()),
        host: s.host.clone()?,
        port: u16::try_from(s.port?).ok().filter(|p| *p > 0)?,
        tls: s.tls_credentials.clone().map(|c| ConnectorTls {
            credentials: c,
            use_client_cert: s.use_client_cert.unwrap_or(false),
            verify_hostname: s.verify_hostname.unwrap_or(false),
        }),
        spec: s.clone(),
    })
}

fn link_from_accepted(s: &crate::resources::LinkSpec) -> Option<LinkConfig> {
    let endpoints = s
        .endpoints
        .iter()
        .filter_map(|e| {
            let port = match e.port.as_ref()? {
                serde_json::Value::String(p) => p.parse::<u16>().ok()?,
                serde_json::Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
                _ => return None,
            };
            Some((e.name.clone()?, e.host.clone()?, port))
        })
        .collect();
    Some(LinkConfig {
        endpoints,
        cost: s
            .cost
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(1)
            .max(1),
        tls_credentials: s.tls_credentials.clone()?,
        spec: s.clone(),
    })
}

fn router_access_from_accepted(
    name: &str,
    s: &crate::resources::RouterAccessSpec,
) -> RouterAccessConfig {
    RouterAccessConfig {
        roles: s
            .roles
            .iter()
            .filter_map(|r| {
                let port = r
                    .port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0);
                Some((r.name.clone()?, port))
            })
            .collect(),
        tls_credentials: s
            .tls_credentials
            .clone()
            .unwrap_or_else(|| name.to_string()),
        issuer: s.issuer.clone(),
        bind_host: s.bind_host.clone().unwrap_or_default(),
        sans: s.subject_alternative_names.clone(),
        spec: s.clone(),
    }
}
