//! Step 5 of a pass: from the resolved entries to the files — identity,
//! credentials, `skrouterd.json`, the resource records, `status.yaml` —
//! and what changed against the runtime files. Texts of unchanged
//! listeners and connectors and statuses of unchanged resources come from
//! the memo.

use super::creds::{self, Creds};
use super::entry::{Config, Entry};
use super::memo::{Fragment, Memo, StatusSlot};
use super::prior::{Identity, Prior, PriorRecord};
use super::record::{record_of, record_unchanged};
use super::resolve::{place_listeners, resolve, sorted, Resolution, MANAGEMENT_PORT_BASE};
use super::{is_owned, Body, Inputs, OutFile, Outcome, Platform, PortPicker};
use super::{PriorChanges, RecordChange};
use crate::certs::Mint;
use crate::problem::Problem;
use crate::render;
use crate::resources::Kind;
use crate::status;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

/// Ports named by listeners in the input, which a newly chosen router port
/// must avoid.
fn listener_ports(res: &Resolution) -> BTreeSet<u16> {
    res.entries
        .iter()
        .filter_map(|e| match (&e.current, &e.serving) {
            (Some(Config::Listener(c)), _) | (_, Some((Config::Listener(c), _))) => Some(c.port),
            _ => e
                .input
                .as_ref()
                .and_then(|i| i.raw_spec().get("port").and_then(|p| p.as_u64()))
                .and_then(|p| u16::try_from(p).ok()),
        })
        .collect()
}

pub fn run(
    inputs: &Inputs,
    memo: &mut Memo,
    mint: &mut dyn Mint,
    ports: &mut dyn PortPicker,
) -> Outcome {
    let mut res = resolve(inputs, memo);
    res.problems.extend(inputs.notices.iter().cloned());
    let now = render::timestamp(inputs.now);
    let mut files: BTreeMap<String, OutFile> = BTreeMap::new();
    let mut outcome = Outcome::default();

    // Identity: kept forever once made; made when a Site first needs it.
    // The management port alone changes, when another process took it
    // (platform.md 4): the first free port from the base again, never the
    // taken one.
    let mut identity = inputs.prior.identity.clone();
    let taken = inputs.router.management_port_taken;
    if let Some(id) = identity
        .as_mut()
        .filter(|id| Some(id.management_port) == taken)
    {
        if res.site.is_some() {
            let mut avoid = listener_ports(&res);
            avoid.insert(id.management_port);
            match ports.pick(MANAGEMENT_PORT_BASE, &avoid) {
                Some(port) => id.management_port = port,
                None => res.problems.push(Problem::error(format!(
                    "management port {} is in use by another process and no other port from {MANAGEMENT_PORT_BASE} is free",
                    id.management_port
                ))),
            }
        }
    }
    if identity.is_none() && res.site.is_some() {
        let avoid = listener_ports(&res);
        match (ports.pick(MANAGEMENT_PORT_BASE, &avoid), mint.uuid()) {
            (Some(port), Ok(site_id)) => {
                identity = Some(Identity {
                    site_id,
                    management_port: port,
                    link_ports: BTreeMap::new(),
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
    let accesses = link_accesses(inputs, &mut res, identity.as_mut(), ports);
    place_listeners(
        &mut res,
        identity.as_ref().map(|i| i.management_port),
        &accesses,
    );

    let in_use = inputs.platform_in_use();
    let platform = in_use.unwrap_or(Platform::Podman);
    let active = match (&res.site, &identity, in_use) {
        (Some((name, site)), Some(id), Some(_)) => Some((name.clone(), site.clone(), id.clone())),
        _ => None,
    };
    // An invalid `internal/platform.yaml` is the Site's error; the site
    // keeps serving on the platform it had (platform.md 0).
    if let (Err(p), Some((name, _))) = (&inputs.platform, &res.site) {
        if let Some(e) = res.find(Kind::Site, name).and_then(|i| res.entry_mut(i)) {
            e.errors.push(p.clone());
        }
    }

    let mut site_error: Option<String> = None;
    let mut ordinals = None;
    // The certificate each sslProfile serves, and (for status.yaml) with
    // its ordinal.
    let mut certificates = BTreeMap::new();
    let mut profile_certs: Vec<(String, creds::CertInUse, u64)> = Vec::new();
    outcome.expiring = creds::expiring(inputs, &res);
    if let Some((site_name, site, id)) = &active {
        match creds::ensure(inputs, &res, &accesses, mint) {
            Ok(Creds {
                files: cred_files,
                profiles,
                certificates: in_use,
                unusable,
                site_unusable,
            }) => {
                for (access, why) in site_unusable {
                    let msg = match res.find(Kind::RouterAccess, &access) {
                        Some(_) => format!("routeraccess \"{access}\": {why}"),
                        None => format!("site \"{site_name}\": link access: {why}"),
                    };
                    res.problems.push(Problem::error(msg));
                }
                for ((kind, name), why) in unusable {
                    let Some(i) = res.find(kind, &name) else {
                        continue;
                    };
                    let p = Problem::error(format!("{} \"{name}\": {why}", kind.lower()));
                    res.problems.push(p.clone());
                    if let Some(e) = res.entry_mut(i) {
                        e.errors.push(p);
                        e.serving = None;
                    }
                }
                // Link files for other sites, from the files just made.
                for a in &accesses {
                    if let Some((ca, crt, key)) = creds::link_client(&cred_files, &a.cred) {
                        for host in a.hosts() {
                            files.insert(
                                format!("runtime/links/link-{}-{host}.yaml", a.name),
                                OutFile::bytes(
                                    link_file(a, &host, &ca, &crt, &key).into_bytes(),
                                    0o600,
                                ),
                            );
                        }
                    }
                }
                files.extend(cred_files);
                let links = link_connectors(&res, site.edge, &profiles);
                let served_access: Vec<creds::LinkAccess> = accesses
                    .iter()
                    .filter(|a| profiles.contains_key(&a.cred))
                    .cloned()
                    .collect();
                let config = render::skrouterd::Config {
                    site_name,
                    site,
                    identity: id,
                    platform,
                    namespace: inputs.namespace,
                    namespace_path: inputs.namespace_path,
                    version: inputs.version,
                    profiles: &profiles,
                    access: &served_access,
                    links: &links,
                };
                ordinals = Some(
                    profiles
                        .iter()
                        .map(|(n, p)| (n.clone(), p.ordinal))
                        .collect(),
                );
                profile_certs = in_use
                    .iter()
                    .map(|(n, c)| {
                        let ordinal = profiles.get(n).map_or(0, |p| p.ordinal);
                        (n.clone(), c.clone(), ordinal)
                    })
                    .collect();
                certificates = in_use;
                let text = render_config(&config, &res, memo);
                files.insert(
                    super::prior::CONFIG_FILE.to_string(),
                    OutFile::bytes(text.into_bytes(), 0o644),
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
            OutFile::bytes(render::records::identity(id).into_bytes(), 0o644),
        );
    }
    // Generated CAs are identity too: kept while the namespace exists.
    for (path, bytes) in inputs.runtime.range::<str, _>((
        Bound::Included("runtime/issuers/"),
        Bound::Excluded("runtime/issuers0"),
    )) {
        if !files.contains_key(path) {
            let mode = if path.ends_with(".key") { 0o600 } else { 0o644 };
            files.insert(path.clone(), OutFile::bytes(bytes.clone(), mode));
        }
    }

    // Resource records and statuses.
    let mut next = PriorChanges {
        identity: identity.clone(),
        ..PriorChanges::default()
    };
    let records_written = active.is_some() && site_error.is_none();
    let (present, stale_records) = record_files(inputs, memo);
    let records = if records_written {
        statuses(
            inputs,
            &res,
            memo,
            identity.as_ref(),
            &now,
            &mut files,
            &present,
            &certificates,
            &accesses,
            &mut outcome.resources,
        )
    } else {
        Vec::new()
    };
    next.records = prior_changes(inputs.prior, &records);
    next.ordinals = ordinals;
    next.platform = if files.contains_key(super::prior::CONFIG_FILE) {
        Some(Some(platform))
    } else if inputs.runtime.contains_key(super::prior::CONFIG_FILE) {
        Some(None)
    } else {
        None
    };
    outcome.site_active = records_written;

    // Status file last: it says whether anything else changed.
    let problems = sorted(std::mem::take(&mut res.problems));
    let deletes = deletes(inputs, &files, &stale_records, records_written);
    let changed_other = !deletes.is_empty()
        || files
            .iter()
            .any(|(p, f)| f.differs_from(inputs.runtime.get(p)));
    let summary = render::summary::Summary {
        namespace: inputs.namespace,
        site: active.as_ref().map(|(n, _, _)| n.as_str()),
        identity: identity.as_ref(),
        platform: in_use,
        router: &inputs.router,
        site_id_prefix_router: active
            .as_ref()
            .map(|(n, _, id)| render::skrouterd::router_id(n, &id.site_id)),
        trigger: inputs.trigger,
        resources: &outcome.resources,
        problems: &problems,
        no_site: res.site.is_none(),
        certificates: &profile_certs,
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
        OutFile::bytes(status_bytes, 0o644),
    );

    outcome.deletes = deletes;
    outcome.writes = files
        .into_iter()
        .filter(|(p, f)| f.differs_from(inputs.runtime.get(p)))
        .collect();
    outcome.problems = problems;
    outcome.resources.sort();
    outcome.prior = next;
    outcome
}

fn record_path(kind: Kind, name: &str) -> String {
    format!(
        "{}{}-{name}.yaml",
        super::prior::RESOURCES_DIR,
        kind.as_str()
    )
}

/// The record changes from `prior` to `records` (in entry order, which is
/// the records' key order): records that are not the same `Arc` are put,
/// keys that are gone are dropped.
fn prior_changes(prior: &Prior, records: &[(Arc<Entry>, Arc<PriorRecord>)]) -> Vec<RecordChange> {
    let mut out = Vec::new();
    let mut old = prior.records.iter().peekable();
    for (e, r) in records {
        // A record carried over is the very `Arc` of the prior state: found
        // without comparing keys.
        if old.next_if(|(_, p)| Arc::ptr_eq(p, r)).is_some() {
            continue;
        }
        let key = (e.kind, e.name.as_str());
        while let Some(((k, n), _)) = old.next_if(|((k, n), _)| (*k, n.as_str()) < key) {
            out.push(((*k, n.clone()), None));
        }
        match old.next_if(|((k, n), _)| (*k, n.as_str()) == key) {
            Some((_, p)) if Arc::ptr_eq(p, r) => {}
            _ => out.push(((e.kind, e.name.clone()), Some(Arc::clone(r)))),
        }
    }
    out.extend(old.map(|((k, n), _)| ((*k, n.clone()), None)));
    out
}

/// Which slots have their record in `runtime/resources/`, and the record
/// files there that belong to no slot. Both lists are walked in path order.
fn record_files<'i>(inputs: &'i Inputs, memo: &mut Memo) -> (Vec<bool>, Vec<&'i str>) {
    if memo.keys_changed {
        memo.record_paths = memo
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (record_path(s.kind, &s.name), i))
            .collect();
        memo.record_paths.sort_unstable();
    }
    let mut present = vec![false; memo.slots.len()];
    let mut stale = Vec::new();
    let mut ours = memo.record_paths.iter().peekable();
    let dir = super::prior::RESOURCES_DIR;
    for (path, _) in inputs
        .runtime
        .range::<str, _>((Bound::Included(dir), Bound::Unbounded))
        .take_while(|(p, _)| p.starts_with(dir))
    {
        while ours.next_if(|(p, _)| p < path).is_some() {}
        match ours.next_if(|(p, _)| p == path) {
            Some((_, i)) => {
                if let Some(slot) = present.get_mut(*i) {
                    *slot = true;
                }
            }
            None => stale.push(path.as_str()),
        }
    }
    (present, stale)
}

/// Runtime files skupperd owns that this pass does not want: records of
/// resources that are gone (or of every resource, when no records are
/// written) and any other owned file the pass did not produce.
fn deletes(
    inputs: &Inputs,
    files: &BTreeMap<String, OutFile>,
    stale_records: &[&str],
    records_written: bool,
) -> Vec<String> {
    let dir = super::prior::RESOURCES_DIR;
    // Everything but `runtime/resources/`, by ranges: that directory holds
    // nearly all files.
    let resources_end = "runtime/resources0";
    let others = inputs
        .runtime
        .range::<str, _>((Bound::Unbounded, Bound::Excluded(dir)))
        .chain(
            inputs
                .runtime
                .range::<str, _>((Bound::Included(resources_end), Bound::Unbounded)),
        );
    let mut out: Vec<String> = others
        .map(|(p, _)| p)
        .filter(|p| {
            is_owned(p) && !files.contains_key(*p) && p.as_str() != super::prior::STATUS_FILE
        })
        .cloned()
        .collect();
    let records: Vec<String> = if records_written {
        stale_records
            .iter()
            .filter(|p| is_owned(p))
            .map(|p| p.to_string())
            .collect()
    } else {
        inputs
            .runtime
            .range::<str, _>((Bound::Included(dir), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(dir))
            .filter(|(p, _)| is_owned(p) && !files.contains_key(*p))
            .map(|(p, _)| p.clone())
            .collect()
    };
    out.extend(records);
    out.sort_unstable();
    out
}

/// `skrouterd.json`, with the tcpListener and tcpConnector texts of
/// entries the memo has already rendered with the same profiles.
fn render_config(config: &render::skrouterd::Config, res: &Resolution, memo: &mut Memo) -> String {
    if memo.profiles.as_ref() != Some(config.profiles) {
        for s in &mut memo.slots {
            s.fragment = None;
        }
        memo.profiles = Some(config.profiles.clone());
    }
    for (e, slot) in res.entries.iter().zip(memo.slots.iter_mut()) {
        if slot
            .fragment
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(&f.entry, e))
        {
            continue;
        }
        let (order, text) = match e.serving.as_ref().map(|(c, _)| c) {
            Some(Config::Listener(l)) => (
                String::new(),
                render::skrouterd::listener_text(&e.name, l, config.profiles),
            ),
            Some(Config::Connector(k)) => render::skrouterd::connector_text(&e.name, k),
            _ => {
                slot.fragment = None;
                continue;
            }
        };
        slot.fragment = Some(Fragment {
            entry: Arc::clone(e),
            order,
            text,
        });
    }
    let fragments = || {
        memo.slots
            .iter()
            .filter_map(|s| s.fragment.as_ref().map(|f| (s.kind, f)))
    };
    let mut connectors: Vec<(&str, &str)> = fragments()
        .filter(|(k, _)| *k == Kind::Connector)
        .map(|(_, f)| (f.order.as_str(), f.text.as_str()))
        .collect();
    connectors.sort_unstable();
    let connectors: Vec<&str> = connectors.into_iter().map(|(_, t)| t).collect();
    let listeners: Vec<&str> = fragments()
        .filter(|(k, _)| *k == Kind::Listener)
        .map(|(_, f)| f.text.as_str())
        .collect();
    render::skrouterd::render_with(config, &connectors, &listeners)
}

/// The record of every entry, in entry order, with its summary added to
/// `summaries`: from the memo when the entry, the router state (and for
/// connectors the local routing keys) and the prior record are the ones it
/// was derived from, else derived again; records that changed are added to
/// `files`. `present`: per entry, whether its record file exists.
/// `certificates`: the certificate each sslProfile serves, named in the
/// records of the resources using it.
#[allow(clippy::too_many_arguments)]
fn statuses(
    inputs: &Inputs,
    res: &Resolution,
    memo: &mut Memo,
    identity: Option<&Identity>,
    now: &str,
    files: &mut BTreeMap<String, OutFile>,
    present: &[bool],
    certificates: &BTreeMap<String, creds::CertInUse>,
    accesses: &[creds::LinkAccess],
    summaries: &mut Vec<Arc<super::ResourceSummary>>,
) -> Vec<(Arc<Entry>, Arc<PriorRecord>)> {
    // The Site's link-access endpoints (resources.md 10): one per role, at
    // the bind host, else the host's name.
    let mut endpoints: Vec<(String, String, u16)> = accesses
        .iter()
        .flat_map(|a| {
            let host = if !a.bind_host.is_empty() {
                a.bind_host.clone()
            } else if crate::names::is_dns_name(inputs.hostname) {
                inputs.hostname.to_string()
            } else {
                "127.0.0.1".to_string()
            };
            a.roles
                .iter()
                .map(|(role, port)| (a.listener_name(role), host.clone(), *port))
                .collect::<Vec<_>>()
        })
        .collect();
    endpoints.sort();
    let access_listeners: Vec<String> = endpoints.iter().map(|(n, _, _)| n.clone()).collect();
    let router_same = memo.router.as_ref() == Some(&inputs.router);
    if !router_same {
        memo.router = Some(inputs.router.clone());
    }
    // Routing keys of the listeners this router serves, which decide
    // whether a connector has a matching listener.
    let local_keys: BTreeSet<&str> = if res.entries.iter().any(|e| e.kind == Kind::Connector) {
        res.entries
            .iter()
            .filter_map(|e| match &e.serving {
                Some((Config::Listener(l), _)) => Some(l.routing_key.as_str()),
                _ => None,
            })
            .collect()
    } else {
        BTreeSet::new()
    };
    let keys_same = memo
        .local_keys
        .as_ref()
        .is_some_and(|k| k.iter().map(String::as_str).eq(local_keys.iter().copied()));
    if !keys_same {
        memo.local_keys = Some(local_keys.iter().map(|k| k.to_string()).collect());
    }
    let uid = identity.map(|i| i.site_id.as_str());
    let edge = res.site.as_ref().is_some_and(|(_, s)| s.edge);
    let sites = inputs.router.view.as_ref().and_then(|v| v.sites_in_network);
    let mut out = Vec::with_capacity(res.entries.len());
    for ((e, slot), &present) in res.entries.iter().zip(memo.slots.iter_mut()).zip(present) {
        let certificate = e
            .serving
            .as_ref()
            .and_then(|(c, _)| creds::profile_of(c))
            .and_then(|p| certificates.get(&p).map(|c| c.annotation(&p)));
        if let Some(s) = &slot.status {
            // Entries using TLS are built anew every pass and so never
            // reused; the certificate is compared all the same, as it does
            // not come from the entry.
            let same = router_same
                && present
                && (keys_same || e.kind != Kind::Connector)
                && Arc::ptr_eq(&s.entry, e)
                && e.prior.as_ref().is_some_and(|p| Arc::ptr_eq(p, &s.record))
                && s.record.certificate == certificate;
            if same {
                summaries.push(Arc::clone(&s.summary));
                out.push((Arc::clone(e), Arc::clone(&s.record)));
                continue;
            }
        }
        let (verdicts, summary) =
            super::conditions::verdicts(e, &inputs.router, &local_keys, edge, &access_listeners);
        let summary = Arc::new(summary);
        let previous = e
            .prior
            .as_ref()
            .map(|p| p.conditions.as_slice())
            .unwrap_or(&[]);
        let conditions = status::conditions(verdicts, previous, e.generation, now);
        // An unchanged record is neither rebuilt nor rendered: equal
        // records give equal bytes.
        let kept = match &e.prior {
            Some(p)
                if present
                    && p.certificate == certificate
                    && record_unchanged(
                        e,
                        &conditions,
                        inputs.namespace,
                        uid,
                        sites,
                        &endpoints,
                    ) =>
            {
                Some(Arc::clone(p))
            }
            _ => None,
        };
        let record = match kept {
            Some(p) => p,
            None => {
                let mut record =
                    record_of(e, conditions, inputs.namespace, identity, sites, &endpoints);
                record.prior.certificate = certificate;
                let prior = Arc::new(record.prior);
                let path = record_path(e.kind, &e.name);
                let body = Body::Record(record.kind, record.name, Arc::clone(&prior));
                files.insert(path, OutFile { body, mode: 0o644 });
                prior
            }
        };
        slot.status = Some(StatusSlot {
            entry: Arc::clone(e),
            record: Arc::clone(&record),
            summary: Arc::clone(&summary),
        });
        summaries.push(summary);
        out.push((Arc::clone(e), record));
    }
    out
}

/// Default ports of link access (resources.md 5): the first free port
/// from these is chosen once per role and kept.
pub const INTER_ROUTER_PORT_BASE: u16 = 55671;
pub const EDGE_PORT_BASE: u16 = 45671;

/// The site's link accesses (resources.md 1, 5): the one `linkAccess`
/// makes (named after the Site; an input RouterAccess of that name
/// replaces it) and every input RouterAccess that serves, by name. Ports
/// not set are chosen once (kept in the identity, so across reconciles and
/// restarts), avoiding the listeners' ports, the management port, the
/// other accesses' ports and what other namespaces recorded (the shell's
/// picker). A port that an earlier access (by name) already uses is the
/// later one's error.
fn link_accesses(
    inputs: &Inputs,
    res: &mut Resolution,
    identity: Option<&mut Identity>,
    ports: &mut dyn PortPicker,
) -> Vec<creds::LinkAccess> {
    let (Some((site_name, site)), Some(id)) = (res.site.clone(), identity) else {
        return Vec::new();
    };
    // (name, tlsCredentials, issuer, bindHost, SANs, roles, input entry).
    type Wanted = (
        String,
        String,
        Option<String>,
        String,
        Vec<String>,
        Vec<(String, Option<u16>)>,
        Option<usize>,
    );
    let mut wanted: Vec<Wanted> = Vec::new();
    for (i, e) in res.entries.iter().enumerate() {
        if let Some((Config::RouterAccess(ra), _)) = &e.serving {
            wanted.push((
                e.name.clone(),
                ra.tls_credentials.clone(),
                ra.issuer.clone(),
                ra.bind_host.clone(),
                ra.sans.clone(),
                ra.roles.clone(),
                Some(i),
            ));
        }
    }
    let replaced = res.find(Kind::RouterAccess, &site_name).is_some();
    if site.link_access && !replaced {
        wanted.push((
            site_name.clone(),
            site_name.clone(),
            None,
            String::new(),
            Vec::new(),
            vec![
                ("inter-router".to_string(), None),
                ("edge".to_string(), None),
            ],
            None,
        ));
    }
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    // Fixed ports first: a chosen port never takes one that is set.
    let mut used: BTreeMap<u16, (String, String)> = BTreeMap::new();
    let mut out = Vec::new();
    for (name, cred, issuer, bind_host, given_sans, roles, entry) in wanted {
        let mut chosen = Vec::new();
        let mut failed = None;
        for (role, fixed) in &roles {
            let listener = format!("{name}-{role}");
            let port = match fixed.or_else(|| id.link_ports.get(&listener).copied()) {
                Some(p) => Some(p),
                None => {
                    let base = if role == "edge" {
                        EDGE_PORT_BASE
                    } else {
                        INTER_ROUTER_PORT_BASE
                    };
                    let mut avoid = listener_ports(res);
                    avoid.insert(id.management_port);
                    avoid.extend(id.link_ports.values().copied());
                    avoid.extend(used.keys().copied());
                    let picked = ports.pick(base, &avoid);
                    match picked {
                        Some(p) => {
                            id.link_ports.insert(listener.clone(), p);
                        }
                        None => {
                            failed = Some(format!("no free port from {base} for role {role}"));
                        }
                    }
                    picked
                }
            };
            let Some(port) = port else { continue };
            if let Some((other, other_role)) = used.get(&port) {
                failed = Some(format!(
                    "port {port} is already used by routeraccess \"{other}\" (role {other_role})"
                ));
                continue;
            }
            chosen.push((role.clone(), port));
        }
        if let Some(why) = failed {
            let msg = format!("routeraccess \"{name}\": {why}");
            match entry.and_then(|i| res.entry_mut(i)) {
                Some(e) => {
                    let p = match &e.input {
                        Some(input) => input.problem(Problem::error(msg), Some("spec.roles")),
                        None => Problem::error(msg),
                    };
                    e.errors.push(p.clone());
                    e.serving = None;
                    res.problems.push(p);
                }
                None => res.problems.push(Problem::error(format!(
                    "site \"{site_name}\": link access: {why}"
                ))),
            }
            continue;
        }
        for (role, port) in &chosen {
            used.insert(*port, (name.clone(), role.clone()));
        }
        let sans = if given_sans.is_empty() {
            default_sans(inputs, &bind_host)
        } else {
            with_dns_forms(given_sans)
        };
        out.push(creds::LinkAccess {
            name,
            cred,
            issuer: issuer.unwrap_or_else(|| site.default_issuer.clone()),
            bind_host,
            sans,
            roles: chosen,
        });
    }
    out
}

/// The host's name and addresses, the bind host, and 127.0.0.1: the link
/// file for 127.0.0.1 is written when the access binds all interfaces,
/// and a connector verifies the host name (router default), so the
/// certificate must cover it too.
fn default_sans(inputs: &Inputs, bind_host: &str) -> Vec<String> {
    let mut sans: Vec<String> = Vec::new();
    if crate::names::is_dns_name(inputs.hostname) {
        sans.push(inputs.hostname.to_string());
    }
    sans.extend(inputs.addresses.iter().cloned());
    for extra in [bind_host, "127.0.0.1"] {
        if !extra.is_empty()
            && extra != "0.0.0.0"
            && extra != "::"
            && !sans.iter().any(|s| s == extra)
        {
            sans.push(extra.to_string());
        }
    }
    with_dns_forms(sans)
}

/// Each address as a DNS name too: the router matches a connector's host
/// against DNS names only (see `certs::DNS_PREFIX`).
fn with_dns_forms(mut sans: Vec<String>) -> Vec<String> {
    let as_names: Vec<String> = sans
        .iter()
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
        .map(|s| format!("{}{s}", crate::certs::DNS_PREFIX))
        .collect();
    sans.extend(as_names);
    sans
}

/// The router connector of every Link that serves and whose sslProfile
/// exists, sorted by name.
fn link_connectors(
    res: &Resolution,
    edge: bool,
    profiles: &BTreeMap<String, creds::Profile>,
) -> Vec<render::skrouterd::LinkConnector> {
    res.entries
        .iter()
        .filter(|e| e.kind == Kind::Link)
        .filter_map(|e| match &e.serving {
            Some((super::entry::Config::Link(l), _)) => {
                let (host, port) = l.endpoint(edge)?;
                let ssl_profile = format!("{}-profile", l.tls_credentials);
                profiles
                    .contains_key(&ssl_profile)
                    .then(|| render::skrouterd::LinkConnector {
                        name: e.name.clone(),
                        role: if edge { "edge" } else { "inter-router" },
                        host: host.to_string(),
                        port,
                        cost: l.cost,
                        ssl_profile,
                    })
            }
            _ => None,
        })
        .collect()
}

/// `runtime/links/link-<access>-<host>.yaml` (resources.md 5): a Secret
/// `link-<access>` of type kubernetes.io/tls with the client certificate
/// and the CA, and a Link `link-<access>` to `host`, the format Skupper's
/// system controller writes, so either can read the other's.
fn link_file(a: &creds::LinkAccess, host: &str, ca: &[u8], crt: &[u8], key: &[u8]) -> String {
    use crate::resources::base64_encode;
    let name = format!("link-{}", a.name);
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "data": {
            "ca.crt": base64_encode(ca),
            "tls.crt": base64_encode(crt),
            "tls.key": base64_encode(key),
        },
    });
    let endpoints: Vec<serde_json::Value> = a
        .roles
        .iter()
        .map(|(role, port)| serde_json::json!({"name": role, "host": host, "port": port.to_string()}))
        .collect();
    let link = serde_json::json!({
        "apiVersion": crate::resources::API_VERSION,
        "kind": "Link",
        "metadata": {"name": name},
        "spec": {
            "endpoints": endpoints,
            "tlsCredentials": name,
            "cost": 1,
        },
    });
    format!(
        "---\n{}---\n{}",
        render::yaml::to_yaml(&secret),
        render::yaml::to_yaml(&link)
    )
}
