//! The reconcile core: `(inputs, runtime state, now, mint) -> outcome`.
//!
//! Pure. The shell hands in parsed input files, certificate bundles and the
//! bytes of the runtime files skupperd owns; the core returns the complete
//! set of runtime files that should exist, which of them changed, which are
//! orphans, and every problem. Generated keys, ids and ports come from
//! injected traits and are read back afterwards, so the same inputs and the
//! same runtime state give byte-identical outputs.
//!
//! # Expected flow
//! 1. Decode every document; group by kind and name (duplicates lose).
//! 2. Validate each resource on its own; apply the one-Site rule.
//! 3. Choose what each resource serves: the current version when valid,
//!    else its last accepted version (read back from `runtime/resources`).
//! 4. Place listeners on host/port (router ports first, unchanged ones
//!    next), so a working listener is never displaced by an edit.
//! 5. Ensure credentials, render `skrouterd.json`, the resource records
//!    and `runtime/status.yaml`.
//!
//! # Guarantees
//! One bad resource never changes the output for another; nothing here
//! panics on any input.

pub mod conditions;
pub mod creds;
pub mod entry;
pub mod memo;
mod pass;
pub mod prior;
pub mod record;
pub mod resolve;

use crate::certs::Mint;
use crate::problem::Problem;
use crate::resources::DecodedFile;
use crate::resources::Kind;

pub use crate::model::{Platform, ResourceSummary, RouterState, RouterView};
use crate::validate::InputCerts;
pub use memo::Memo;
pub use prior::{read_prior, Identity, Prior, PriorRecord};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// Chooses the management port the first time a site needs one. The shell's
/// implementation also skips ports recorded by other namespaces of the data
/// home and probes that the port can be bound.
pub trait PortPicker {
    fn pick(&mut self, from: u16, avoid: &BTreeSet<u16>) -> Option<u16>;
}

/// A file the core wants to exist, with its mode.
#[derive(Debug, Clone, PartialEq)]
pub struct OutFile {
    pub body: Body,
    pub mode: u32,
}

/// What a file holds: its bytes, or a resource record rendered only when
/// it is written. A cold start at 10,000 resources would otherwise hold
/// every record twice (about 10 MB of YAML beside the records themselves)
/// until the last one is on disk; rendered at write time, each exists only
/// while its own file is written, and on the writer threads.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Bytes(Vec<u8>),
    Record(Kind, String, std::sync::Arc<PriorRecord>),
}

impl OutFile {
    pub fn bytes(bytes: Vec<u8>, mode: u32) -> OutFile {
        OutFile {
            body: Body::Bytes(bytes),
            mode,
        }
    }

    /// The file's content (a record is rendered now).
    pub fn content(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.body {
            Body::Bytes(b) => std::borrow::Cow::Borrowed(b),
            Body::Record(kind, name, r) => {
                std::borrow::Cow::Owned(crate::render::records::record(*kind, name, r).into_bytes())
            }
        }
    }

    /// The content, owned.
    pub fn into_content(self) -> Vec<u8> {
        match self.body {
            Body::Bytes(b) => b,
            Body::Record(..) => self.content().into_owned(),
        }
    }

    /// Whether writing this file over `old` (the runtime bytes, `None` when
    /// absent) changes it. A record is rendered for the comparison only when
    /// its old bytes are known: the actor keeps records hollow (empty, see
    /// [`hollow_records`]), and a record the pass rebuilt differs from the
    /// prior one it was read back as.
    pub fn differs_from(&self, old: Option<&Vec<u8>>) -> bool {
        match (&self.body, old) {
            (_, None) => true,
            (Body::Bytes(b), Some(old)) => b != old,
            (Body::Record(..), Some(old)) if old.is_empty() => true,
            (Body::Record(..), Some(old)) => self.content().as_ref() != old.as_slice(),
        }
    }
}

pub struct Inputs<'a> {
    /// The namespace directory's name.
    pub namespace: &'a str,
    /// Absolute path of the namespace directory (linux certificate paths).
    pub namespace_path: &'a str,
    /// `Err` carries the problem of an invalid `internal/platform.yaml`:
    /// the Site's error, while the platform of the last `skrouterd.json`
    /// (`prior.platform`) keeps being used.
    pub platform: Result<Platform, Problem>,
    /// Used in SANs of generated listener certificates for `0.0.0.0`/`::`.
    pub hostname: &'a str,
    /// The host's non-loopback addresses: default SANs of the link-access
    /// certificate (resources.md 5).
    pub addresses: &'a [String],
    pub version: &'a str,
    pub now: OffsetDateTime,
    /// Parsed `input/resources` files by path relative to the namespace.
    pub files: &'a BTreeMap<String, DecodedFile>,
    /// `input/certs/`: bundles by name, and whether it could be listed.
    pub certs: &'a InputCerts,
    /// `input/issuers/<name>/` user CAs by name: used instead of generating
    /// `runtime/issuers/<name>/` (resources.md 9).
    pub issuers: &'a InputCerts,
    /// The renewal window (`renew_before_days`): what skupperd issued is
    /// issued again this long before it expires, and user certificates
    /// expiring within it are warned about.
    pub renew_before: time::Duration,
    /// Bytes of every runtime file skupperd owns, by relative path.
    pub runtime: &'a BTreeMap<String, Vec<u8>>,
    /// The prior state read from `runtime` (callers keep it between passes).
    pub prior: &'a Prior,
    pub router: RouterState,
    /// What caused this pass, for `runtime/status.yaml`.
    pub trigger: &'a str,
    /// Problems the shell met outside the input (runtime/ that could not
    /// be written), shown in `runtime/status.yaml` with the others.
    pub notices: &'a [Problem],
}

impl Inputs<'_> {
    /// The platform the pass renders for: `internal/platform.yaml`'s, or
    /// while that is invalid the one the last `skrouterd.json` was
    /// rendered for (last accepted wins, as for resources).
    pub fn platform_in_use(&self) -> Option<Platform> {
        match &self.platform {
            Ok(p) => Some(*p),
            Err(_) => self.prior.platform,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Runtime files to write: new, or with bytes that differ from `runtime`.
    pub writes: BTreeMap<String, OutFile>,
    /// Owned runtime files that no longer belong to anything.
    pub deletes: Vec<String>,
    pub problems: Vec<Problem>,
    pub resources: Vec<std::sync::Arc<ResourceSummary>>,
    /// What turns this pass's prior state into the next pass's.
    pub prior: PriorChanges,
    /// A Site is configured (a router should run).
    pub site_active: bool,
    /// User certificates the input uses that expire within the renewal
    /// window, one per file, sorted: the daemon logs each once a day.
    pub expiring: Vec<Expiring>,
}

/// A user certificate (bundle or issuer) that expires within the renewal
/// window. The problems already carry the warning; this names the file
/// and the date, so the shell can tell one certificate from its successor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expiring {
    /// e.g. `input/certs/web/tls.crt`.
    pub file: String,
    pub not_after: OffsetDateTime,
    /// The warning, e.g. `input/certs/web/tls.crt expires on 2026-12-20
    /// (in 24 days)`; the problems about it end with this text.
    pub message: String,
}

/// A record to put (`Some`) or drop (`None`).
pub type RecordChange = ((Kind, String), Option<std::sync::Arc<PriorRecord>>);

/// The difference between the prior state a pass started from and the one
/// the next pass should start from: a pass that changed one record says so
/// in one line, instead of handing over a copy of every record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PriorChanges {
    /// Records to put (`Some`) or drop (`None`), in key order.
    pub records: Vec<RecordChange>,
    pub identity: Option<Identity>,
    pub last_run: Option<String>,
    pub last_trigger: Option<String>,
    /// The sslProfile ordinals the written `skrouterd.json` holds (`None`:
    /// unchanged, as when no config was written).
    pub ordinals: Option<BTreeMap<String, u64>>,
    /// The platform of the written `skrouterd.json` (`Some(None)`: it was
    /// removed; `None`: unchanged).
    pub platform: Option<Option<Platform>>,
}

impl PriorChanges {
    /// Applies the changes to the prior state the pass started from.
    pub fn apply(self, prior: &mut Prior) {
        for (key, record) in self.records {
            match record {
                Some(r) => {
                    prior.records.insert(key, r);
                }
                None => {
                    prior.records.remove(&key);
                }
            }
        }
        prior.identity = self.identity;
        prior.last_run = self.last_run;
        prior.last_trigger = self.last_trigger;
        if let Some(ordinals) = self.ordinals {
            prior.ordinals = ordinals;
        }
        if let Some(platform) = self.platform {
            prior.platform = platform;
        }
    }
}

impl Outcome {
    pub fn error_count(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }
}

/// Whether a runtime path is one skupperd writes (and so may delete). Files
/// other tools left there, such as the Go controller's
/// `ConfigMap-skupper-network-status.yaml`, are not.
pub fn is_owned(path: &str) -> bool {
    if let Some(file) = path.strip_prefix(prior::RESOURCES_DIR) {
        return file.ends_with(".yaml")
            && file
                .split_once('-')
                .map(|(kind, _)| {
                    Kind::parse(kind).is_some()
                        || ["Link", "RouterAccess", "MultiKeyListener"].contains(&kind)
                })
                .unwrap_or(false);
    }
    path == prior::CONFIG_FILE
        || path == prior::STATUS_FILE
        || path == prior::IDENTITY_FILE
        || path.starts_with("runtime/certs/")
        || path.starts_with("runtime/issuers/")
        || path.starts_with("runtime/links/")
}

/// Drops the bytes of the resource records from `runtime`, keeping their
/// paths. Only [`read_prior`] reads those bytes; a pass needs to know that
/// a record exists, and writes one only when it differs from the record
/// the prior state holds (an empty value just means "present"). With ten
/// thousand resources this is most of the memory `runtime` holds.
pub fn hollow_records(runtime: &mut BTreeMap<String, Vec<u8>>) {
    let dir = prior::RESOURCES_DIR;
    for (_, bytes) in runtime
        .range_mut::<str, _>((std::ops::Bound::Included(dir), std::ops::Bound::Unbounded))
        .take_while(|(p, _)| p.starts_with(dir))
    {
        *bytes = Vec::new();
    }
}

/// One reconcile pass from nothing. See the module documentation.
pub fn reconcile(inputs: &Inputs, mint: &mut dyn Mint, ports: &mut dyn PortPicker) -> Outcome {
    pass::run(inputs, &mut Memo::new(), mint, ports)
}

/// One reconcile pass that reuses what earlier passes with the same memo
/// derived from inputs that did not change: the same outcome as
/// [`reconcile`], for a fraction of the work when little changed.
pub fn reconcile_with(
    inputs: &Inputs,
    memo: &mut Memo,
    mint: &mut dyn Mint,
    ports: &mut dyn PortPicker,
) -> Outcome {
    pass::run(inputs, memo, mint, ports)
}

/// Every problem of the input without writing anything: what `skupperd
/// check` prints. Uses the runtime state for last-accepted placement, but
/// mints nothing.
pub fn check(inputs: &Inputs) -> Vec<Problem> {
    resolve::problems_only(inputs)
}

#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tls_tests;
