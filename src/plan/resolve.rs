//! The steps of one reconcile pass (see the `plan` module doc).

use super::creds::{self, Creds};
use super::prior::{Identity, Prior, PriorRecord, ANN_ACCEPTED, ANN_SHA, ANN_SOURCE};
use super::{is_owned, Inputs, OutFile, Outcome, Platform, PortPicker};
use crate::certs::Mint;
use crate::problem::Problem;
use crate::render;
use crate::resources::{DecodedFile, InputResource, Kind, Spec};
use crate::status::{self, Condition};
use crate::validate::{
    self, cross::Placement, ConnectorConfig, ConnectorTls, Context, ListenerConfig, SiteConfig,
};
use std::collections::{BTreeMap, BTreeSet};

pub const MANAGEMENT_PORT_BASE: u16 = 5671;
pub const NO_SITE: &str = "no Site in input/resources; nothing is configured";

#[derive(Debug, Clone, PartialEq)]
pub enum Config {
    Site(SiteConfig),
    Listener(ListenerConfig),
    Connector(ConnectorConfig),
}

/// Everything known about one resource during a pass.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub kind: Kind,
    pub name: String,
    pub file: String,
    /// `None` when the resource comes only from its last accepted version
    /// because its file no longer parses.
    pub input: Option<&'a InputResource>,
    pub prior: Option<&'a PriorRecord>,
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
}

impl Entry<'_> {
    fn accepted_from_prior(&self) -> Option<(Config, u64)> {
        let prior = self.prior?;
        let generation = prior.accepted_generation?;
        let config = match prior.accepted.as_ref()? {
            Spec::Site(s) => Config::Site(site_from_accepted(s)),
            Spec::Listener(s) => Config::Listener(listener_from_accepted(&self.name, s)?),
            Spec::Connector(s) => Config::Connector(connector_from_accepted(&self.name, s)?),
        };
        Some((config, generation))
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

/// Steps 1-3: decoded, grouped, validated entries and all problems.
pub struct Resolution<'a> {
    pub problems: Vec<Problem>,
    pub entries: BTreeMap<(Kind, String), Entry<'a>>,
    /// The Site that runs, if any.
    pub site: Option<(String, SiteConfig)>,
}

pub fn resolve<'a>(inputs: &Inputs<'a>) -> Resolution<'a> {
    let mut problems = Vec::new();
    let mut decoded: BTreeMap<(Kind, String), Vec<&'a InputResource>> = BTreeMap::new();
    let mut broken_files = BTreeMap::new();
    let files: &'a BTreeMap<String, DecodedFile> = inputs.files;
    for (path, file) in files {
        if let Some(p) = &file.broken {
            broken_files.insert(path.clone(), p.clone());
        }
        problems.extend(file.problems.iter().cloned());
        for r in &file.resources {
            decoded.entry((r.kind, r.name.clone())).or_default().push(r);
        }
    }
    // Problems by resource, so each entry finds its own without a scan.
    let mut by_resource: BTreeMap<(String, String), Vec<Problem>> = BTreeMap::new();
    for p in &problems {
        if let (true, Some(k), Some(n)) = (p.is_error(), &p.kind, &p.name) {
            by_resource
                .entry((k.clone(), n.clone()))
                .or_default()
                .push(p.clone());
        }
    }
    if let Err(msg) = &inputs.platform {
        let mut p = Problem::error(msg.clone());
        p.file = Some("internal/platform.yaml".to_string());
        problems.push(p);
    }

    let mut ca_names: BTreeSet<String> = [validate::SITE_CA, validate::SERVICE_CA]
        .map(String::from)
        .into();
    for ((kind, _), defs) in &decoded {
        if let (Kind::Site, Some(Spec::Site(s))) =
            (kind, defs.first().and_then(|d| d.spec.as_ref()))
        {
            if let Some(issuer) = &s.default_issuer {
                ca_names.insert(issuer.clone());
            }
        }
    }
    let cx = Context {
        namespace: inputs.namespace,
        bundles: inputs.bundles,
        ca_names,
        now: inputs.now,
    };

    let prior_state: &'a Prior = inputs.prior;
    let mut entries = BTreeMap::new();
    for ((kind, name), defs) in decoded {
        let prior = prior_state.records.get(&(kind, name.clone())).map(|p| &**p);
        let Some((&first, rest)) = defs.split_first() else {
            continue;
        };
        let mut errors: Vec<Problem> = by_resource
            .get(&(kind.as_str().to_string(), name.clone()))
            .cloned()
            .unwrap_or_default();
        if let Some(second) = rest.first() {
            let place = |r: &InputResource| format!("{}:{}:{}", r.file, r.mark.line, r.mark.column);
            let msg = format!(
                "{} \"{name}\" is defined twice ({} and {}); neither is used",
                kind.lower(),
                place(first),
                place(second)
            );
            for r in &defs {
                let p = r.problem(Problem::error(msg.clone()), None);
                problems.push(p.clone());
                errors.push(p);
            }
        }
        let mut current = None;
        if let (Some(spec), true) = (&first.spec, errors.is_empty()) {
            let (config, found) = match spec {
                Spec::Site(s) => {
                    let (c, p) = validate::site(first, s, &cx);
                    (c.map(Config::Site), p)
                }
                Spec::Listener(s) => {
                    let (c, p) = validate::listener(first, s, &cx);
                    (c.map(Config::Listener), p)
                }
                Spec::Connector(s) => {
                    let (c, p) = validate::connector(first, s, &cx);
                    (c.map(Config::Connector), p)
                }
            };
            errors.extend(found.iter().filter(|p| p.is_error()).cloned());
            problems.extend(found);
            current = config;
        }
        let generation = match &prior {
            Some(p) if p.input_sha256 == first.input_sha256 => p.generation.max(1),
            Some(p) => p.generation + 1,
            None => 1,
        };
        entries.insert(
            (kind, name.clone()),
            Entry {
                kind,
                name,
                file: first.file.clone(),
                input_sha256: first.input_sha256.clone(),
                input: Some(first),
                prior,
                generation,
                errors,
                current,
                serving: None,
                accepted: None,
            },
        );
    }

    // A resource whose file stopped parsing keeps its last accepted version.
    for ((kind, name), record) in &prior_state.records {
        let Some(source) = &record.source else {
            continue;
        };
        let Some(problem) = broken_files.get(source) else {
            continue;
        };
        if entries.contains_key(&(*kind, name.clone())) || record.accepted.is_none() {
            continue;
        }
        let mut p = problem.clone();
        p.message = format!(
            "{} \"{name}\": {source} no longer parses: {}",
            kind.lower(),
            problem.message
        );
        entries.insert(
            (*kind, name.clone()),
            Entry {
                kind: *kind,
                name: name.clone(),
                file: source.clone(),
                input: None,
                prior: Some(&**record),
                generation: record.generation,
                input_sha256: record.input_sha256.clone(),
                errors: vec![p],
                current: None,
                serving: None,
                accepted: None,
            },
        );
    }

    // Serving: the current version, else the last accepted one.
    for entry in entries.values_mut() {
        entry.accepted = entry.accepted_from_prior();
        entry.serving = match &entry.current {
            Some(c) => Some((c.clone(), entry.generation)),
            None => entry.accepted.clone(),
        };
    }

    // One Site per namespace.
    let sites: Vec<String> = entries
        .keys()
        .filter(|(k, _)| *k == Kind::Site)
        .map(|(_, n)| n.clone())
        .collect();
    if sites.len() > 1 {
        let msg_tail = format!(
            "more than one Site in namespace \"{}\" ({}); keep exactly one",
            inputs.namespace,
            sites.join(", ")
        );
        for name in &sites {
            if let Some(e) = entries.get_mut(&(Kind::Site, name.clone())) {
                let mut p = Problem::error(format!("site \"{name}\": {msg_tail}"));
                if let Some(input) = e.input {
                    p = input.problem(p, None);
                }
                problems.push(p.clone());
                e.errors.push(p);
                e.current = None;
                // Only a Site that was already accepted keeps running.
                e.serving = e.accepted.clone();
            }
        }
    }
    let site = entries
        .values()
        .filter(|e| e.kind == Kind::Site)
        .find_map(|e| match &e.serving {
            Some((Config::Site(s), _)) => Some((e.name.clone(), s.clone())),
            _ => None,
        });
    Resolution {
        problems,
        entries,
        site,
    }
}

/// Step 4: host/port placement. Router ports first, then listeners whose
/// current version equals the accepted one, then new or edited ones, each
/// group by name. A loser falls back to its last accepted version when that
/// one fits.
pub fn place_listeners(res: &mut Resolution, management_port: Option<u16>) {
    let mut placement = management_port
        .map(Placement::management)
        .unwrap_or_default();
    let mut unchanged = Vec::new();
    let mut changed = Vec::new();
    for (key, e) in &res.entries {
        if e.kind != Kind::Listener || e.serving.is_none() {
            continue;
        }
        let same = match (&e.current, &e.accepted) {
            (Some(c), Some((a, _))) => c == a,
            _ => false,
        };
        if same {
            unchanged.push(key.clone());
        } else {
            changed.push(key.clone());
        }
    }
    for key in unchanged.into_iter().chain(changed) {
        let Some(e) = res.entries.get_mut(&key) else {
            continue;
        };
        let mut served = false;
        if let Some(Config::Listener(c)) = &e.current {
            match placement.conflict(&c.host, c.port) {
                None => {
                    placement.place(&c.host, c.port, &e.name);
                    served = true;
                }
                Some(why) => {
                    let msg = format!("listener \"{}\": {why}", e.name);
                    let p = match e.input {
                        Some(input) => input.problem(Problem::error(msg), Some("spec.port")),
                        None => Problem::error(msg),
                    };
                    res.problems.push(p.clone());
                    e.errors.push(p);
                    e.current = None;
                }
            }
        }
        if served {
            continue;
        }
        // The current version is absent or lost: the last accepted one
        // serves when it fits.
        e.serving = match &e.accepted {
            Some((Config::Listener(a), g)) if placement.conflict(&a.host, a.port).is_none() => {
                placement.place(&a.host, a.port, &e.name);
                Some((Config::Listener(a.clone()), *g))
            }
            _ => None,
        };
    }
}

/// What `skupperd check` reports.
pub fn problems_only(inputs: &Inputs) -> Vec<Problem> {
    let mut res = resolve(inputs);
    let port = inputs.prior.identity.as_ref().map(|i| i.management_port);
    place_listeners(&mut res, port);
    sorted(res.problems)
}

fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by(|a, b| {
        (&a.kind, &a.name, &a.file, a.line, a.column, &a.message)
            .cmp(&(&b.kind, &b.name, &b.file, b.line, b.column, &b.message))
    });
    problems.dedup();
    problems
}

/// Ports named by listeners in the input, which a newly chosen router port
/// must avoid.
fn listener_ports(res: &Resolution) -> BTreeSet<u16> {
    res.entries
        .values()
        .filter_map(|e| match (&e.current, &e.serving) {
            (Some(Config::Listener(c)), _) | (_, Some((Config::Listener(c), _))) => Some(c.port),
            _ => e
                .input
                .as_ref()
                .and_then(|i| i.raw_spec.get("port"))
                .and_then(|p| p.as_u64())
                .and_then(|p| u16::try_from(p).ok()),
        })
        .collect()
}

pub fn run(inputs: &Inputs, mint: &mut dyn Mint, ports: &mut dyn PortPicker) -> Outcome {
    let mut res = resolve(inputs);
    let now = crate::render::timestamp(inputs.now);
    let mut files: BTreeMap<String, OutFile> = BTreeMap::new();
    // Runtime files that stay exactly as they are.
    let mut kept: std::collections::BTreeSet<String> = Default::default();
    let mut outcome = Outcome::default();

    // Identity: kept forever once made; made when a Site first needs it.
    let mut identity = inputs.prior.identity.clone();
    if identity.is_none() && res.site.is_some() {
        let avoid = listener_ports(&res);
        match (ports.pick(MANAGEMENT_PORT_BASE, &avoid), mint.uuid()) {
            (Some(port), Ok(site_id)) => {
                identity = Some(Identity {
                    site_id,
                    management_port: port,
                })
            }
            (None, _) => res.problems.push(Problem::error(format!(
                "no free management port from {MANAGEMENT_PORT_BASE}; nothing is configured"
            ))),
            (_, Err(e)) => res
                .problems
                .push(Problem::error(format!("could not create a site id: {e}"))),
        }
    }
    place_listeners(&mut res, identity.as_ref().map(|i| i.management_port));

    let platform = inputs.platform.clone().unwrap_or(Platform::Podman);
    let active = match (&res.site, &identity, &inputs.platform) {
        (Some((name, site)), Some(id), Ok(_)) => Some((name.clone(), site.clone(), id.clone())),
        _ => None,
    };

    let mut site_error: Option<String> = None;
    if let Some((site_name, site, id)) = &active {
        let creds = creds::ensure(inputs, &res, mint);
        match creds {
            Ok(Creds {
                files: cred_files,
                profiles,
                unusable,
            }) => {
                for (key, why) in unusable {
                    if let Some(e) = res.entries.get_mut(&key) {
                        let p = Problem::error(format!("{} \"{}\": {why}", e.kind.lower(), e.name));
                        res.problems.push(p.clone());
                        e.errors.push(p);
                        e.serving = None;
                    }
                }
                files.extend(cred_files);
                let config = render::skrouterd::Config {
                    site_name,
                    site,
                    identity: id,
                    platform,
                    namespace: inputs.namespace,
                    namespace_path: inputs.namespace_path,
                    version: inputs.version,
                    profiles: &profiles,
                    listeners: serving_of(&res, Kind::Listener),
                    connectors: serving_of(&res, Kind::Connector),
                };
                files.insert(
                    super::prior::CONFIG_FILE.to_string(),
                    OutFile {
                        bytes: render::skrouterd::render(&config).into_bytes(),
                        mode: 0o644,
                    },
                );
            }
            Err(e) => {
                site_error = Some(format!(
                    "site \"{site_name}\": could not issue credentials: {e}"
                ))
            }
        }
    }
    if let Some(msg) = &site_error {
        res.problems.push(Problem::error(msg.clone()));
    }
    if let Some(id) = &identity {
        files.insert(
            super::prior::IDENTITY_FILE.to_string(),
            OutFile {
                bytes: render::records::identity(id).into_bytes(),
                mode: 0o644,
            },
        );
    }
    // Generated CAs are identity too: kept while the namespace exists.
    for (path, bytes) in inputs.runtime {
        if path.starts_with("runtime/issuers/") && !files.contains_key(path) {
            let mode = if path.ends_with(".key") { 0o600 } else { 0o644 };
            files.insert(
                path.clone(),
                OutFile {
                    bytes: bytes.clone(),
                    mode,
                },
            );
        }
    }

    // Resource records and statuses.
    let mut next = Prior {
        identity: identity.clone(),
        ..Prior::default()
    };
    if active.is_some() && site_error.is_none() {
        let uid = identity.as_ref().map(|i| i.site_id.as_str());
        let sites = inputs.router.view.as_ref().and_then(|v| v.sites_in_network);
        let local_keys: std::collections::BTreeSet<String> = res
            .entries
            .values()
            .filter_map(|e| match &e.serving {
                Some((Config::Listener(l), _)) => Some(l.routing_key.clone()),
                _ => None,
            })
            .collect();
        for e in res.entries.values() {
            let (verdicts, summary) = super::conditions::verdicts(e, &inputs.router, &local_keys);
            let previous = e.prior.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
            let conditions = status::conditions(verdicts, previous, e.generation, &now);
            let path = format!("runtime/resources/{}-{}.yaml", e.kind.as_str(), e.name);
            let key = (e.kind, e.name.clone());
            outcome.resources.push(summary);
            // An unchanged record is neither rebuilt nor rendered: equal
            // records give equal bytes.
            if inputs.runtime.contains_key(&path)
                && record_unchanged(e, &conditions, inputs.namespace, uid, sites)
            {
                if let Some(p) = inputs.prior.records.get(&key) {
                    next.records.insert(key, p.clone());
                    kept.insert(path);
                    continue;
                }
            }
            let record = record_of(e, conditions, inputs.namespace, identity.as_ref(), sites);
            let bytes = render::records::record(&record).into_bytes();
            files.insert(path, OutFile { bytes, mode: 0o644 });
            next.records.insert(key, std::sync::Arc::new(record.prior));
        }
    }
    outcome.site_active = active.is_some() && site_error.is_none();

    // Status file last: it says whether anything else changed.
    let problems = sorted(res.problems);
    // The status file is decided below and is always in `files`.
    kept.insert(super::prior::STATUS_FILE.to_string());
    let gone = |p: &String| is_owned(p) && !files.contains_key(p) && !kept.contains(p);
    let deletes: Vec<String> = inputs.runtime.keys().filter(|p| gone(p)).cloned().collect();
    let changed_other = files
        .iter()
        .any(|(p, f)| inputs.runtime.get(p) != Some(&f.bytes))
        || inputs.runtime.keys().any(gone);
    let summary = render::summary::Summary {
        namespace: inputs.namespace,
        site: active.as_ref().map(|(n, _, _)| n.as_str()),
        identity: identity.as_ref(),
        platform: inputs.platform.as_ref().ok().copied(),
        router: &inputs.router,
        site_id_prefix_router: active
            .as_ref()
            .map(|(n, _, id)| render::skrouterd::router_id(n, &id.site_id)),
        trigger: inputs.trigger,
        resources: &outcome.resources,
        problems: &problems,
        no_site: res.site.is_none(),
    };
    // The status file records the last pass that changed something: a pass
    // that changes nothing else (a resync, a SIGHUP) keeps it as it is,
    // trigger and time included.
    let body_prev = inputs.runtime.get(super::prior::STATUS_FILE);
    let unchanged = match (&inputs.prior.last_run, &inputs.prior.last_trigger) {
        (Some(run), Some(trigger)) if !changed_other => {
            let same = render::summary::Summary {
                trigger,
                ..summary.clone()
            };
            let bytes = render::summary::render(&same, run).into_bytes();
            (body_prev == Some(&bytes)).then_some((bytes, run.clone(), trigger.clone()))
        }
        _ => None,
    };
    let (status_bytes, last_run, last_trigger) = match unchanged {
        Some(kept) => kept,
        None => (
            render::summary::render(&summary, &now).into_bytes(),
            now.clone(),
            inputs.trigger.to_string(),
        ),
    };
    next.last_run = Some(last_run);
    next.last_trigger = Some(last_trigger);
    files.insert(
        super::prior::STATUS_FILE.to_string(),
        OutFile {
            bytes: status_bytes,
            mode: 0o644,
        },
    );

    outcome.deletes = deletes;
    outcome.writes = files
        .into_iter()
        .filter(|(p, f)| inputs.runtime.get(p) != Some(&f.bytes))
        .collect();
    outcome.problems = problems;
    outcome.resources.sort();
    outcome.next_prior = next;
    outcome
}

fn serving_of<'r>(res: &'r Resolution, kind: Kind) -> Vec<(&'r str, &'r Config)> {
    res.entries
        .values()
        .filter(|e| e.kind == kind)
        .filter_map(|e| e.serving.as_ref().map(|(c, _)| (e.name.as_str(), c)))
        .collect()
}

/// The runtime record of one resource: accepted spec when there is one,
/// else the input spec as written.
pub struct Record {
    pub kind: Kind,
    pub name: String,
    pub prior: PriorRecord,
}

fn record_of(
    e: &Entry,
    conditions: Vec<Condition>,
    namespace: &str,
    identity: Option<&Identity>,
    sites_in_network: Option<u64>,
) -> Record {
    let (spec_value, accepted, accepted_generation) = match &e.serving {
        Some((config, g)) => {
            let (value, spec) = match config {
                Config::Site(c) => (serde_json::to_value(&c.spec), Spec::Site(c.spec.clone())),
                Config::Listener(c) => (
                    serde_json::to_value(&c.spec),
                    Spec::Listener(c.spec.clone()),
                ),
                Config::Connector(c) => (
                    serde_json::to_value(&c.spec),
                    Spec::Connector(c.spec.clone()),
                ),
            };
            (
                value.unwrap_or(serde_json::Value::Null),
                Some(spec),
                Some(*g),
            )
        }
        None => (
            e.input
                .map(|i| i.raw_spec.clone())
                .unwrap_or(serde_json::Value::Null),
            None,
            None,
        ),
    };
    let spec_value = match spec_value {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other,
    };
    let (labels, annotations) = match (e.input, e.prior) {
        (Some(i), _) => (i.labels.clone(), user_annotations(&i.annotations)),
        (None, Some(p)) => (p.labels.clone(), p.annotations.clone()),
        (None, None) => Default::default(),
    };
    Record {
        kind: e.kind,
        name: e.name.clone(),
        prior: PriorRecord {
            generation: e.generation,
            input_sha256: e.input_sha256.clone(),
            accepted_generation,
            accepted,
            source: Some(e.file.clone()),
            labels,
            annotations,
            conditions,
            namespace: namespace.to_string(),
            uid: identity
                .filter(|_| e.kind == Kind::Site)
                .map(|i| i.site_id.clone()),
            sites_in_network: sites_in_network.filter(|_| e.kind == Kind::Site),
            spec: spec_value,
        },
    }
}

/// Whether the record the prior pass wrote for `e` is exactly what this
/// pass would write, checked field by field without building it.
fn record_unchanged(
    e: &Entry,
    conditions: &[Condition],
    namespace: &str,
    uid: Option<&str>,
    sites_in_network: Option<u64>,
) -> bool {
    let Some(p) = e.prior else {
        return false;
    };
    let spec_same = match (&e.serving, &p.accepted) {
        (Some((Config::Site(c), g)), Some(Spec::Site(a))) => {
            *a == c.spec && Some(*g) == p.accepted_generation
        }
        (Some((Config::Listener(c), g)), Some(Spec::Listener(a))) => {
            *a == c.spec && Some(*g) == p.accepted_generation
        }
        (Some((Config::Connector(c), g)), Some(Spec::Connector(a))) => {
            *a == c.spec && Some(*g) == p.accepted_generation
        }
        (None, None) => {
            p.accepted_generation.is_none()
                && e.input.map(|i| i.raw_spec == p.spec).unwrap_or(false)
        }
        _ => false,
    };
    let meta_same = match e.input {
        Some(i) => {
            i.labels == p.labels
                && i.annotations
                    .iter()
                    .filter(|(k, _)| ![ANN_SHA, ANN_ACCEPTED, ANN_SOURCE].contains(&k.as_str()))
                    .eq(p.annotations.iter())
        }
        None => true,
    };
    spec_same
        && meta_same
        && p.generation == e.generation
        && p.input_sha256 == e.input_sha256
        && p.source.as_deref() == Some(e.file.as_str())
        && p.namespace == namespace
        && p.uid.as_deref() == uid.filter(|_| e.kind == Kind::Site)
        && p.conditions == conditions
        && p.sites_in_network == sites_in_network.filter(|_| e.kind == Kind::Site)
}

fn user_annotations(a: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    a.iter()
        .filter(|(k, _)| ![ANN_SHA, ANN_ACCEPTED, ANN_SOURCE].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
