//! The steps of one reconcile pass (see the `plan` module doc): group and
//! build the entries (reusing the memo's), the one-Site rule, placement.
//! `run` in `pass` renders what they decided.

use super::entry::{self, Config, Entry};
use super::memo::{Built, Memo, Slot};
use super::Inputs;
use crate::problem::Problem;
use crate::resources::{InputResource, Kind, SecretDoc, Spec};
use crate::validate::{self, cross::Placement, Context, SiteConfig};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub use crate::model::NO_SITE;
pub const MANAGEMENT_PORT_BASE: u16 = 5671;

/// Steps 1-3: decoded, grouped, validated entries and all problems.
pub struct Resolution {
    pub problems: Vec<Problem>,
    /// Sorted by kind, then name.
    pub entries: Vec<Arc<Entry>>,
    /// The Site that runs, if any.
    pub site: Option<(String, SiteConfig)>,
    /// The namespace's Secrets by name (the first of duplicates).
    pub secrets: BTreeMap<String, Arc<SecretDoc>>,
}

impl Resolution {
    pub fn find(&self, kind: Kind, name: &str) -> Option<usize> {
        self.entries
            .binary_search_by(|e| (e.kind, e.name.as_str()).cmp(&(kind, name)))
            .ok()
    }

    /// The entry at `i` for changing: a copy when the memo shares it.
    pub fn entry_mut(&mut self, i: usize) -> Option<&mut Entry> {
        self.entries.get_mut(i).map(Arc::make_mut)
    }
}

pub fn resolve(inputs: &Inputs, memo: &mut Memo) -> Resolution {
    let mut problems = Vec::new();
    let mut defs_found: Vec<((Kind, &str), &Arc<InputResource>)> = Vec::new();
    let mut broken_files: HashMap<&str, &Problem> = HashMap::new();
    // Decode errors by resource, so each entry finds its own without a scan.
    let mut by_resource: HashMap<(&str, &str), Vec<&Problem>> = HashMap::new();
    let mut secrets: BTreeMap<String, Arc<SecretDoc>> = BTreeMap::new();
    for (path, file) in inputs.files {
        for doc in &file.secrets {
            match secrets.get(&doc.name) {
                Some(first) => {
                    let place =
                        |d: &SecretDoc| format!("{}:{}:{}", d.file, d.mark.line, d.mark.column);
                    problems.push(doc.problem(
                        Problem::error(format!(
                            "secret \"{}\" is defined twice ({} and {}); the first is used",
                            doc.name,
                            place(first),
                            place(doc)
                        )),
                        None,
                    ));
                }
                None => {
                    secrets.insert(doc.name.clone(), Arc::clone(doc));
                }
            }
        }
        if let Some(p) = &file.broken {
            broken_files.insert(path.as_str(), p);
        }
        for p in &file.problems {
            problems.push(p.clone());
            if let (true, Some(k), Some(n)) = (p.is_error(), &p.kind, &p.name) {
                by_resource
                    .entry((k.as_str(), n.as_str()))
                    .or_default()
                    .push(p);
            }
        }
        defs_found.extend(
            file.resources
                .iter()
                .map(|r| ((r.kind, r.name.as_str()), r)),
        );
    }
    // Grouped by kind and name; a stable sort keeps definitions in file
    // order, so the first one names the duplicate.
    defs_found.sort_by(|a, b| a.0.cmp(&b.0));
    let (keys, refs): (Vec<(Kind, &str)>, Vec<&Arc<InputResource>>) =
        defs_found.into_iter().unzip();
    let decoded = group(&keys, &refs);
    if let Err(p) = &inputs.platform {
        problems.push(p.clone());
    }

    let mut ca_names: BTreeSet<String> = [validate::SITE_CA, validate::SERVICE_CA]
        .map(String::from)
        .into();
    // A user issuer's name is a CA's name too: a listener naming it would
    // get the CA's key as its own.
    ca_names.extend(inputs.issuers.bundles.keys().cloned());
    problems.extend(issuer_problems(inputs));
    for defs in decoded
        .iter()
        .take_while(|((k, _), _)| *k == Kind::Site)
        .map(|(_, d)| d)
    {
        if let Some(crate::resources::Spec::Site(s)) = defs.first().and_then(|d| d.spec.as_ref()) {
            if let Some(issuer) = &s.default_issuer {
                ca_names.insert(issuer.clone());
            }
        }
    }
    let context = (inputs.namespace.to_string(), ca_names);
    if memo.context.as_ref() != Some(&context) {
        for s in &mut memo.slots {
            s.built = None;
        }
    }
    let (_, ca_names) = memo.context.insert(context);
    if inputs.certs.has_refusals() {
        problems.extend(inputs.certs.unused_problems(&cred_names(&decoded)));
    }
    let cx = Context {
        namespace: inputs.namespace,
        certs: inputs.certs,
        ca_names: ca_names.clone(),
        now: inputs.now,
        renew_before: inputs.renew_before,
        secrets: &secrets,
    };

    // The definitions, the prior records and the memo's slots are all
    // sorted by (kind, name): each is found by walking alongside.
    let mut priors = inputs.prior.records.iter().peekable();
    let mut old = std::mem::take(&mut memo.slots).into_iter().peekable();
    let mut keys_changed = false;
    let mut entries: Vec<Arc<Entry>> = Vec::with_capacity(decoded.len());
    let mut slots: Vec<Slot> = Vec::with_capacity(decoded.len());
    for &((kind, name), defs) in &decoded {
        let key = (kind, name);
        // The old slot, found first by the identity of its first
        // definition (no string comparison), else by key.
        let first_def = defs.first().copied();
        let same_def = |s: &Slot| {
            let built = s.built.as_ref().and_then(|b| b.defs.first());
            matches!((built, first_def), (Some(a), Some(b)) if Arc::ptr_eq(a, b))
        };
        let mut slot = match old.next_if(same_def) {
            Some(s) => s,
            None => {
                while old.next_if(|s| (s.kind, s.name.as_str()) < key).is_some() {
                    keys_changed = true;
                }
                match old.next_if(|s| (s.kind, s.name.as_str()) == key) {
                    Some(s) => s,
                    None => {
                        keys_changed = true;
                        Slot::new(kind, name)
                    }
                }
            }
        };
        // Its prior record likewise: the one the slot was built with is
        // most often still the next one.
        let slot_prior = slot.built.as_ref().and_then(|b| b.prior.as_ref());
        let prior = match priors.next_if(|(_, r)| slot_prior.is_some_and(|p| Arc::ptr_eq(p, r))) {
            Some((_, r)) => Some(r),
            None => {
                while priors
                    .next_if(|((k, n), _)| (*k, n.as_str()) < key)
                    .is_some()
                {}
                priors
                    .next_if(|((k, n), _)| (*k, n.as_str()) == key)
                    .map(|(_, r)| r)
            }
        };
        let file_errors: &[&Problem] = if by_resource.is_empty() {
            &[]
        } else {
            by_resource
                .get(&(kind.as_str(), name))
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        let Some(first) = defs.first() else {
            continue;
        };
        let memoisable = !Entry::reads_context(kind, first);
        if let Some(b) = slot.built.as_mut().filter(|_| memoisable) {
            if reusable(b, defs, file_errors, prior) {
                problems.extend(b.found.iter().cloned());
                entries.push(Arc::clone(&b.entry));
                slots.push(slot);
                continue;
            }
        }
        let errors: Vec<Problem> = file_errors.iter().map(|p| (*p).clone()).collect();
        let Some((built, found)) = entry::build(kind, name, defs, &errors, prior, &cx) else {
            continue;
        };
        let built = Arc::new(built);
        problems.extend(found.iter().cloned());
        slot.built = memoisable.then(|| Built {
            defs: defs.iter().map(|d| Arc::clone(d)).collect(),
            file_errors: errors,
            prior: prior.cloned(),
            entry: Arc::clone(&built),
            found,
        });
        entries.push(built);
        slots.push(slot);
    }
    keys_changed |= old.next().is_some();

    // A resource whose file stopped parsing keeps its last accepted version.
    if !broken_files.is_empty() {
        let mut pairs: Vec<(Arc<Entry>, Slot)> = entries.into_iter().zip(slots).collect();
        for ((kind, name), record) in &inputs.prior.records {
            let Some(problem) = record.source.as_deref().and_then(|s| broken_files.get(s)) else {
                continue;
            };
            let defined = decoded
                .binary_search_by(|(k, _)| k.cmp(&(*kind, name.as_str())))
                .is_ok();
            if defined || record.accepted.is_none() {
                continue;
            }
            let source = record.source.as_deref().unwrap_or_default();
            let e = entry::from_broken_file(*kind, name, record, source, problem);
            pairs.push((Arc::new(e), Slot::new(*kind, name)));
            keys_changed = true;
        }
        pairs.sort_by(|a, b| (a.0.kind, &a.0.name).cmp(&(b.0.kind, &b.0.name)));
        (entries, slots) = pairs.into_iter().unzip();
    }
    memo.slots = slots;
    memo.keys_changed = keys_changed || memo.record_paths.len() != memo.slots.len();

    let mut res = Resolution {
        problems,
        entries,
        site: None,
        secrets: BTreeMap::new(),
    };
    one_site(&mut res, inputs.namespace);
    res.site = res
        .entries
        .iter()
        .take_while(|e| e.kind == Kind::Site)
        .find_map(|e| match &e.serving {
            Some((Config::Site(s), _)) => Some((e.name.clone(), (**s).clone())),
            _ => None,
        });
    let edge = res.site.as_ref().is_some_and(|(_, s)| s.edge);
    link_roles(&mut res, edge);
    res.secrets = secrets;
    res
}

/// A Link must have the endpoint for this site's role (resources.md 4):
/// `inter-router` on an interior site, `edge` on an edge site. A Link
/// without it serves nothing (its last accepted version neither, when
/// that lacks it too).
fn link_roles(res: &mut Resolution, edge: bool) {
    let role = if edge { "edge" } else { "inter-router" };
    let mode = if edge { "edge" } else { "interior" };
    for i in 0..res.entries.len() {
        let Some(e) = res.entries.get(i) else {
            continue;
        };
        if e.kind == Kind::RouterAccess && edge && e.serving.is_some() {
            let Some(e) = res.entries.get_mut(i).map(Arc::make_mut) else {
                continue;
            };
            let msg = format!(
                "routeraccess \"{}\": edge sites cannot accept links; remove it or set spec.edge: false on the Site",
                e.name
            );
            let p = match &e.input {
                Some(input) => input.problem(Problem::error(msg), None),
                None => Problem::error(msg),
            };
            res.problems.push(p.clone());
            e.errors.push(p);
            e.current = None;
            e.serving = None;
            e.unchanged = false;
            continue;
        }
        if e.kind != Kind::Link {
            continue;
        }
        let has = |c: Option<&Config>| match c {
            Some(Config::Link(l)) => l.endpoint(edge).is_some(),
            _ => true,
        };
        let current_ok = has(e.current.as_ref());
        let accepted_ok = has(e.accepted.as_ref().map(|(c, _)| c));
        if current_ok && accepted_ok {
            continue;
        }
        let Some(e) = res.entries.get_mut(i).map(Arc::make_mut) else {
            continue;
        };
        if !current_ok {
            let names: Vec<String> = match &e.current {
                Some(Config::Link(l)) => l
                    .spec
                    .endpoints
                    .iter()
                    .filter_map(|p| p.name.clone())
                    .collect(),
                _ => Vec::new(),
            };
            let msg = format!(
                "link \"{}\": no endpoint named \"{role}\" (this site is {mode}); endpoints: {}",
                e.name,
                names.join(", ")
            );
            let p = match &e.input {
                Some(input) => input.problem(Problem::error(msg), Some("spec.endpoints")),
                None => Problem::error(msg),
            };
            res.problems.push(p.clone());
            e.errors.push(p);
            e.current = None;
        }
        e.serving = match (&e.current, &e.accepted) {
            (Some(c), _) => Some((c.clone(), e.generation)),
            (None, Some((a, g))) if accepted_ok => Some((a.clone(), *g)),
            _ => None,
        };
        e.unchanged = false;
    }
}

type Defs<'k, 'a> = Vec<((Kind, &'a str), &'k [&'a Arc<InputResource>])>;

/// The TLS credential names the definitions name, valid or not: what
/// `input/certs/` entries are needed for.
fn cred_names<'a>(decoded: &Defs<'_, 'a>) -> BTreeSet<&'a str> {
    decoded
        .iter()
        .flat_map(|(_, defs)| defs.iter())
        .filter_map(|d| match &d.spec {
            Some(Spec::Listener(l)) => l.tls_credentials.as_deref(),
            Some(Spec::Connector(c)) => c.tls_credentials.as_deref(),
            Some(Spec::Link(l)) => l.tls_credentials.as_deref(),
            _ => None,
        })
        .collect()
}

/// Runs of equal keys of a sorted list, as (key, definitions).
fn group<'k, 'a>(keys: &[(Kind, &'a str)], refs: &'k [&'a Arc<InputResource>]) -> Defs<'k, 'a> {
    let mut out: Defs<'k, 'a> = Vec::with_capacity(keys.len());
    let mut start = 0;
    for (i, key) in keys.iter().enumerate() {
        if keys.get(i + 1) != Some(key) {
            if let Some(defs) = refs.get(start..=i) {
                out.push((*key, defs));
            }
            start = i + 1;
        }
    }
    out
}

/// Whether the memo's entry was built from exactly these definitions and
/// decode errors; when the prior record is another one, the entry is
/// rebased on it in place (validation does not read it).
fn reusable(
    s: &mut Built,
    defs: &[&Arc<InputResource>],
    file_errors: &[&Problem],
    prior: Option<&Arc<PriorRecord>>,
) -> bool {
    let same_defs =
        s.defs.len() == defs.len() && s.defs.iter().zip(defs).all(|(a, b)| Arc::ptr_eq(a, b));
    if !same_defs || !s.file_errors.iter().eq(file_errors.iter().copied()) {
        return false;
    }
    let same_prior = match (&s.prior, prior) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    if !same_prior {
        s.entry = Arc::new(entry::rebase(&s.entry, prior));
        s.prior = prior.cloned();
    }
    true
}

use super::prior::PriorRecord;

/// One Site per namespace: with more, none of them is current, and only
/// one already accepted keeps running.
fn one_site(res: &mut Resolution, namespace: &str) {
    let sites: Vec<String> = res
        .entries
        .iter()
        .take_while(|e| e.kind == Kind::Site)
        .map(|e| e.name.clone())
        .collect();
    if sites.len() <= 1 {
        return;
    }
    let msg_tail = format!(
        "more than one Site in namespace \"{namespace}\" ({}); keep exactly one",
        sites.join(", ")
    );
    for (i, name) in sites.iter().enumerate() {
        let Some(e) = res.entries.get_mut(i).map(Arc::make_mut) else {
            continue;
        };
        let mut p = Problem::error(format!("site \"{name}\": {msg_tail}"));
        if let Some(input) = &e.input {
            p = input.problem(p, None);
        }
        res.problems.push(p.clone());
        e.errors.push(p);
        e.current = None;
        e.serving = e.accepted.clone();
    }
}

/// What placement decided for a listener that does not keep its current
/// version as it is.
struct Loss {
    index: usize,
    /// The current version lost, with why.
    why: Option<String>,
    /// Whether the last accepted version serves instead.
    fallback: bool,
}

/// Step 4: host/port placement. Router ports first, then listeners whose
/// current version equals the accepted one, then new or edited ones, each
/// group by name. A loser falls back to its last accepted version when that
/// one fits.
pub fn place_listeners(
    res: &mut Resolution,
    management_port: Option<u16>,
    accesses: &[crate::model::LinkAccess],
) {
    let listeners = || {
        res.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == Kind::Listener && e.serving.is_some())
    };
    let order = listeners()
        .filter(|(_, e)| e.unchanged)
        .chain(listeners().filter(|(_, e)| !e.unchanged));
    let mut placement = Placement::with_capacity(res.entries.len() + 1);
    if let Some(port) = management_port {
        placement = placement.with_management(port);
    }
    for a in accesses {
        for (role, port) in &a.roles {
            placement = placement.with_link_access(&a.name, role, &a.bind_host, *port);
        }
    }
    let mut losses = Vec::new();
    for (index, e) in order {
        let mut why = None;
        if let Some(Config::Listener(c)) = &e.current {
            match placement.try_place(&c.host, c.port, &e.name) {
                Ok(()) => continue,
                Err(w) => why = Some(w),
            }
        }
        // The current version is absent or lost: the last accepted one
        // serves when it fits.
        let fallback = match &e.accepted {
            Some((Config::Listener(a), _)) => placement.try_place(&a.host, a.port, &e.name).is_ok(),
            _ => false,
        };
        // An entry already serving its accepted version that still fits
        // stays as it is.
        if why.is_some() || !fallback {
            losses.push(Loss {
                index,
                why,
                fallback,
            });
        }
    }
    for loss in losses {
        let Some(e) = res.entries.get_mut(loss.index).map(Arc::make_mut) else {
            continue;
        };
        if let Some(why) = loss.why {
            let msg = format!("listener \"{}\": {why}", e.name);
            let p = match &e.input {
                Some(input) => input.problem(Problem::error(msg), Some("spec.port")),
                None => Problem::error(msg),
            };
            res.problems.push(p.clone());
            e.errors.push(p);
            e.current = None;
        }
        e.serving = if loss.fallback {
            e.accepted.clone()
        } else {
            None
        };
    }
}

/// The problems of the user issuers in `input/issuers/` (resources.md 9),
/// each starting `issuer "<name>": `: files that cannot be read, and the
/// issuer checks. skupperd's management CA cannot be replaced: its
/// directory is ignored with a warning.
pub fn issuer_problems(inputs: &Inputs) -> Vec<Problem> {
    // The messages name the file, so the problems carry no place of their
    // own (a place is where a resource was written).
    let mut out = Vec::new();
    for (name, bundle) in &inputs.issuers.bundles {
        let dir = format!("input/issuers/{name}");
        if name == crate::model::LOCAL_CA {
            out.push(Problem::warning(format!(
                "issuer \"{name}\": {dir}/ is ignored: skupperd always generates its management CA"
            )));
            continue;
        }
        if let Some(why) = &bundle.refused {
            // Not a directory that can be read: that is all there is to
            // say (not that each of its files is missing).
            out.push(Problem::error(format!(
                "issuer \"{name}\": {}",
                why.refused(&dir)
            )));
            continue;
        }
        for message in validate::refusals(&dir, bundle) {
            out.push(Problem::error(format!("issuer \"{name}\": {message}")));
        }
        // A file that was refused is reported as such, once: the checks
        // see it as absent and would add that it is missing.
        let refused: BTreeSet<String> = bundle
            .files
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(file, _)| format!("{dir}/{file}"))
            .collect();
        let files = bundle.files_at(dir);
        for f in crate::certs::check_issuer(&files, inputs.now, inputs.renew_before)
            .into_iter()
            .filter(|f| !refused.contains(&f.file))
        {
            let message = format!("issuer \"{name}\": {}", f.message);
            out.push(match f.severity {
                crate::problem::Severity::Error => Problem::error(message),
                crate::problem::Severity::Warning => Problem::warning(message),
            });
        }
    }
    out
}

/// What `skupperd check` reports.
pub fn problems_only(inputs: &Inputs) -> Vec<Problem> {
    let mut res = resolve(inputs, &mut Memo::new());
    let port = inputs.prior.identity.as_ref().map(|i| i.management_port);
    // The link-access ports already chosen or set (check chooses none).
    let mut accesses = Vec::new();
    if let (Some((name, site)), Some(id)) = (&res.site, &inputs.prior.identity) {
        let mut add = |name: &str, bind_host: &str, roles: Vec<(String, Option<u16>)>| {
            let roles = roles
                .into_iter()
                .filter_map(|(role, fixed)| {
                    let port =
                        fixed.or_else(|| id.link_ports.get(&format!("{name}-{role}")).copied())?;
                    Some((role, port))
                })
                .collect();
            accesses.push(crate::model::LinkAccess {
                name: name.to_string(),
                cred: name.to_string(),
                issuer: site.default_issuer.clone(),
                bind_host: bind_host.to_string(),
                sans: Vec::new(),
                roles,
            });
        };
        for e in &res.entries {
            if let Some((Config::RouterAccess(ra), _)) = &e.serving {
                add(&e.name, &ra.bind_host, ra.roles.clone());
            }
        }
        if site.link_access && res.find(Kind::RouterAccess, name).is_none() {
            let both = vec![
                ("inter-router".to_string(), None),
                ("edge".to_string(), None),
            ];
            add(name, "", both);
        }
    }
    place_listeners(&mut res, port, &accesses);
    sorted(res.problems)
}

pub(crate) fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by(|a, b| {
        (&a.kind, &a.name, &a.file, a.line, a.column, &a.message)
            .cmp(&(&b.kind, &b.name, &b.file, b.line, b.column, &b.message))
    });
    problems.dedup();
    problems
}
