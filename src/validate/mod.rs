//! Per-resource validation (resources.md 1-3, 9) with the exact messages.
//!
//! Each validator returns the resource's configuration when it is usable,
//! and every problem it found (all at once, so a user fixes everything in
//! one pass). Rules that involve several resources (duplicates, one Site,
//! host/port overlap) live in `cross`.

pub mod cross;

use crate::certs::{self, BundleFiles, FileBytes};
use crate::names::{self, CRED_RULE};
use crate::problem::{Problem, Severity};
use crate::resources::{
    ConnectorSpec, InputResource, LinkSpec, ListenerSpec, RouterAccessSpec, SecretDoc, SiteSpec,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use time::OffsetDateTime;

/// Credential names skupperd generates for itself.
pub const RESERVED_CREDS: [&str; 3] = [
    "skupper-local-ca",
    "skupper-local-server",
    "skupper-local-client",
];
pub const SERVICE_CA: &str = "skupper-service-ca";
pub const SITE_CA: &str = "skupper-site-ca";

/// Why a file of an input bundle (or the bundle's entry itself) could not
/// be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRefusal {
    SymlinkLeavesNamespace,
    TooLarge,
    Unreadable(String),
    /// A FIFO, socket, device or directory where a file should be, named
    /// with its article (`a FIFO`): never opened for reading, since that
    /// could block or mean nothing.
    NotRegular(&'static str),
}

impl FileRefusal {
    /// The error of a resource that needs `path`.
    pub fn refused(&self, path: &str) -> String {
        match self {
            FileRefusal::SymlinkLeavesNamespace => {
                format!("{path} is a symbolic link that leaves the namespace; refused")
            }
            FileRefusal::TooLarge => format!("{path} is larger than 1 MiB; refused"),
            FileRefusal::Unreadable(why) => format!("{path} cannot be read: {why}"),
            FileRefusal::NotRegular(what) => {
                format!("{path} is {what}: not a regular file, refused")
            }
        }
    }

    /// The warning when no resource needs `path`: the pass still says it
    /// could not use it.
    pub fn ignored(&self, path: &str) -> String {
        match self {
            FileRefusal::SymlinkLeavesNamespace => {
                format!("{path} is a symbolic link that leaves the namespace; ignored")
            }
            FileRefusal::TooLarge => format!("{path} is larger than 1 MiB; ignored"),
            FileRefusal::Unreadable(why) => format!("{path} cannot be read, ignored: {why}"),
            FileRefusal::NotRegular(what) => {
                format!("{path} is {what}: not a regular file, ignored")
            }
        }
    }
}

/// `input/certs/<name>/` (or `input/issuers/<name>/`) as the shell found
/// it: each of `tls.crt`, `tls.key` and `ca.crt` that exists, read or
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputBundle {
    /// Why `input/certs/<name>` itself cannot be used (it cannot be read,
    /// or it is a FIFO or the like): then `files` is empty and what the
    /// bundle holds is unknown.
    pub refused: Option<FileRefusal>,
    pub files: BTreeMap<String, Result<FileBytes, FileRefusal>>,
}

impl InputBundle {
    /// A bundle whose entry cannot be used at all.
    pub fn refused(why: FileRefusal) -> InputBundle {
        InputBundle {
            refused: Some(why),
            files: BTreeMap::new(),
        }
    }

    /// The usable files, for the PEM checks and for copying.
    pub fn bundle_files(&self, name: &str) -> BundleFiles {
        self.files_at(format!("input/certs/{name}"))
    }

    /// The usable files, with messages naming them under `dir` (relative
    /// to the namespace directory, e.g. `input/issuers/my-ca`).
    pub fn files_at(&self, dir: String) -> BundleFiles {
        let get = |f: &str| self.files.get(f).and_then(|r| r.as_ref().ok()).cloned();
        BundleFiles {
            dir,
            tls_crt: get("tls.crt"),
            tls_key: get("tls.key"),
            ca_crt: get("ca.crt"),
        }
    }

    pub fn has(&self, file: &str) -> bool {
        self.files.contains_key(file)
    }
}

/// `input/certs/` as the shell found it. One entry that cannot be read
/// affects only the resources that name it; a directory that cannot be
/// listed at all affects every resource naming TLS credentials, and no
/// other.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputCerts {
    /// `input/certs/<name>/` bundles by name.
    pub bundles: BTreeMap<String, InputBundle>,
    /// Why `input/certs/` could not be listed (or not to its end): whether
    /// a bundle not in `bundles` exists is unknown, which is not the same
    /// as absent (absent means "generate a certificate").
    pub unreadable: Option<String>,
}

impl InputCerts {
    /// The bundle `name`: `Ok(None)` when there is none, `Err` with the
    /// message for a resource that needs it when it cannot be used or
    /// cannot be known.
    pub fn get(&self, name: &str) -> Result<Option<&InputBundle>, String> {
        match self.bundles.get(name) {
            Some(b) => match &b.refused {
                Some(why) => Err(why.refused(&format!("input/certs/{name}"))),
                None => Ok(Some(b)),
            },
            None => match &self.unreadable {
                Some(why) => Err(format!("input/certs cannot be read: {why}")),
                None => Ok(None),
            },
        }
    }

    /// Whether anything of `input/certs/` could not be read or used.
    pub fn has_refusals(&self) -> bool {
        self.unreadable.is_some()
            || self
                .bundles
                .values()
                .any(|b| b.refused.is_some() || b.files.values().any(Result::is_err))
    }

    /// Warnings for what could not be read or used and that no resource
    /// needs (`used`: the bundle names resources name): a pass that could
    /// not read something says so even when nothing depends on it.
    /// Resources that need a refused entry report it as their error.
    pub fn unused_problems(&self, used: &BTreeSet<&str>) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut warn = |file: String, message: String| {
            let mut p = Problem::warning(message);
            p.file = Some(file);
            out.push(p);
        };
        if let (Some(why), true) = (&self.unreadable, used.is_empty()) {
            warn(
                "input/certs".to_string(),
                format!("input/certs cannot be read, so no bundle in it can be used: {why}"),
            );
        }
        for (name, bundle) in &self.bundles {
            if used.contains(name.as_str()) {
                continue;
            }
            let dir = format!("input/certs/{name}");
            if let Some(why) = &bundle.refused {
                let message = why.ignored(&dir);
                warn(dir.clone(), message);
            }
            for (file, result) in &bundle.files {
                if let Err(why) = result {
                    let path = format!("{dir}/{file}");
                    let message = why.ignored(&path);
                    warn(path, message);
                }
            }
        }
        out
    }
}

/// What every validator may look at besides the resource itself.
pub struct Context<'a> {
    pub namespace: &'a str,
    pub certs: &'a InputCerts,
    /// Names of CAs, which may not be used as a certificate bundle.
    pub ca_names: BTreeSet<String>,
    pub now: OffsetDateTime,
    /// The renewal window: bundle leaves expiring within it are warned about.
    pub renew_before: time::Duration,
    /// The namespace's v1 Secrets by name (only Links read them).
    pub secrets: &'a BTreeMap<String, Arc<SecretDoc>>,
}

/// A usable Listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub routing_key: String,
    pub host: String,
    pub port: u16,
    /// `None` means `auto`, which is not written.
    pub observer: Option<String>,
    pub tls_credentials: Option<String>,
    /// The spec as accepted, defaults filled in.
    pub spec: ListenerSpec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorTls {
    pub credentials: String,
    pub use_client_cert: bool,
    pub verify_hostname: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorConfig {
    pub routing_key: String,
    pub host: String,
    pub port: u16,
    pub tls: Option<ConnectorTls>,
    pub spec: ConnectorSpec,
}

/// A usable Link: its endpoints (name, host, port), cost and credentials.
/// Which endpoint is used depends on the Site (interior or edge), checked
/// once the Site is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    pub endpoints: Vec<(String, String, u16)>,
    pub cost: u32,
    pub tls_credentials: String,
    pub spec: LinkSpec,
}

impl LinkConfig {
    /// The endpoint a site of this mode connects to.
    pub fn endpoint(&self, edge: bool) -> Option<(&str, u16)> {
        let role = if edge { "edge" } else { "inter-router" };
        self.endpoints
            .iter()
            .find(|(n, _, _)| n == role)
            .map(|(_, h, p)| (h.as_str(), *p))
    }
}

/// A usable RouterAccess (resources.md 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAccessConfig {
    /// (role, port); `None`: chosen once and kept.
    pub roles: Vec<(String, Option<u16>)>,
    /// The server certificate and sslProfile (default: the name).
    pub tls_credentials: String,
    /// `None`: the Site's defaultIssuer.
    pub issuer: Option<String>,
    /// `""`: all interfaces.
    pub bind_host: String,
    /// `spec.subjectAlternativeNames`; empty: the defaults.
    pub sans: Vec<String>,
    pub spec: RouterAccessSpec,
}

/// The message path of a Secret's data, as PEM checks name its files
/// (`secret/<name>/tls.crt`).
pub fn secret_dir(name: &str) -> String {
    format!("secret/{name}")
}

/// A Secret's data as a bundle (`tls.crt`, `tls.key`, `ca.crt`), with
/// the problem that keeps it from being one.
pub fn secret_bundle(doc: &SecretDoc) -> Result<InputBundle, Box<Problem>> {
    match doc.secret_type.as_deref() {
        None | Some("Opaque") | Some("kubernetes.io/tls") => {}
        Some(t) => {
            return Err(Box::new(doc.problem(
                Problem::error(format!(
                    "secret \"{}\": type \"{t}\" is not supported; use kubernetes.io/tls",
                    doc.name
                )),
                Some("type"),
            )))
        }
    }
    let files = doc.files().map_err(|key| {
        Box::new(doc.problem(
            Problem::error(format!(
                "secret \"{}\": data[\"{key}\"] is not valid base64",
                doc.name
            )),
            Some(&format!("data.{key}")),
        ))
    })?;
    let files = files
        .into_iter()
        .filter(|(k, _)| ["tls.crt", "tls.key", "ca.crt"].contains(&k.as_str()))
        // A Secret's key is no file anyone else can read: no mode warning.
        .map(|(k, bytes)| (k, Ok(FileBytes { bytes, mode: 0o600 })))
        .collect();
    Ok(InputBundle {
        refused: None,
        files,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    pub edge: bool,
    /// `spec.linkAccess` enables link access (`default`, or the
    /// Kubernetes-only values treated as it).
    pub link_access: bool,
    pub router_logging: String,
    pub data_connections: Option<u32>,
    pub default_issuer: String,
    pub spec: SiteSpec,
}

/// Collects problems about one resource and remembers whether any is an
/// error.
struct Report<'r> {
    resource: &'r InputResource,
    problems: Vec<Problem>,
}

impl<'r> Report<'r> {
    fn new(resource: &'r InputResource) -> Report<'r> {
        Report {
            resource,
            problems: Vec::new(),
        }
    }

    fn prefix(&self) -> String {
        format!("{} \"{}\":", self.resource.kind.lower(), self.resource.name)
    }

    fn error(&mut self, field: &str, message: String) {
        let p = Problem::error(format!("{} {message}", self.prefix()));
        self.problems.push(self.resource.problem(p, Some(field)));
    }

    fn warning(&mut self, field: &str, message: String) {
        let p = Problem::warning(format!("{} {message}", self.prefix()));
        self.problems.push(self.resource.problem(p, Some(field)));
    }

    fn ok(&self) -> bool {
        !self.problems.iter().any(Problem::is_error)
    }

    fn finish<T>(self, config: Option<T>) -> (Option<T>, Vec<Problem>) {
        let ok = self.ok();
        (config.filter(|_| ok), self.problems)
    }

    fn namespace(&mut self, cx: &Context) {
        if let Some(ns) = &self.resource.namespace {
            if ns != cx.namespace {
                self.error(
                    "metadata.namespace",
                    format!(
                        "metadata.namespace \"{ns}\" does not match the namespace directory \"{}\"; remove metadata.namespace or move the file",
                        cx.namespace
                    ),
                );
            }
        }
    }

    fn routing_key(&mut self, given: &Option<String>) -> String {
        match given {
            None => self.resource.name.clone(),
            Some(k) => {
                if let Some(why) = names::routing_key_problem("spec.routingKey", k) {
                    self.error("spec.routingKey", why);
                }
                k.clone()
            }
        }
    }

    fn host(&mut self, given: &Option<String>, missing: &str) -> String {
        match given {
            None => {
                self.error("spec.host", missing.to_string());
                String::new()
            }
            Some(h) => {
                if !names::is_host(h) {
                    self.error(
                        "spec.host",
                        format!("spec.host {}", names::host_fragment(h)),
                    );
                }
                h.clone()
            }
        }
    }

    fn port(&mut self, given: Option<i64>) -> u16 {
        match given {
            None => {
                self.error("spec.port", "spec.port is required (1-65535)".to_string());
                0
            }
            Some(p) => match u16::try_from(p) {
                Ok(p) if p > 0 => p,
                _ => {
                    self.error(
                        "spec.port",
                        format!("spec.port {p} is out of range 1-65535"),
                    );
                    0
                }
            },
        }
    }

    fn tcp_type(&mut self, given: &Option<String>) {
        if let Some(t) = given {
            if !(t.is_empty() || t == "tcp") {
                self.error(
                    "spec.type",
                    format!("spec.type \"{t}\" is not supported; only \"tcp\" is"),
                );
            }
        }
    }

    fn no_effect(&mut self, field: &str, set: bool) {
        if set {
            self.warning(field, format!("{field} has no effect on local sites"));
        }
    }

    fn credential_name(&mut self, cred: &str, cx: &Context) -> bool {
        if !names::is_cred_name(cred) {
            self.error(
                "spec.tlsCredentials",
                format!("spec.tlsCredentials \"{cred}\" {CRED_RULE}"),
            );
            false
        } else if RESERVED_CREDS.contains(&cred) {
            self.error(
                "spec.tlsCredentials",
                format!(
                    "spec.tlsCredentials \"{cred}\" is reserved for skupperd's own certificates"
                ),
            );
            false
        } else if cx.ca_names.contains(cred) {
            self.error(
                "spec.tlsCredentials",
                format!("spec.tlsCredentials \"{cred}\" names a CA; use a certificate bundle name"),
            );
            false
        } else {
            true
        }
    }

    /// Files that exist but cannot be used, each reported once.
    fn refused_files(&mut self, cred: &str, bundle: &InputBundle) {
        for message in refusals(&format!("input/certs/{cred}"), bundle) {
            self.error("spec.tlsCredentials", message);
        }
    }

    /// The PEM checks of resources.md 9, reported on this resource.
    fn pem_checks(&mut self, cred: &str, bundle: &InputBundle, cx: &Context, host: Option<&str>) {
        let files = bundle.bundle_files(cred);
        for finding in certs::check_bundle(&files, cx.now, host, cx.renew_before) {
            match finding.severity {
                Severity::Error => self.error("spec.tlsCredentials", finding.message),
                Severity::Warning => self.warning("spec.tlsCredentials", finding.message),
            }
        }
    }

    fn unknown_settings<'s>(&mut self, settings: impl Iterator<Item = &'s String>) {
        for key in settings {
            self.warning(
                &format!("spec.settings.{key}"),
                format!("spec.settings.{key}: unknown setting, ignored"),
            );
        }
    }
}

/// Why each file of `bundle` (found under `dir`) that exists cannot be
/// used, in file order.
pub fn refusals(dir: &str, bundle: &InputBundle) -> Vec<String> {
    bundle
        .files
        .iter()
        .filter_map(|(file, result)| {
            let why = result.as_ref().err()?;
            Some(why.refused(&format!("{dir}/{file}")))
        })
        .collect()
}

const OBSERVERS: [&str; 4] = ["auto", "none", "http1", "http2"];

pub fn listener(
    r: &InputResource,
    spec: &ListenerSpec,
    cx: &Context,
) -> (Option<ListenerConfig>, Vec<Problem>) {
    let mut rep = Report::new(r);
    rep.namespace(cx);
    let routing_key = rep.routing_key(&spec.routing_key);
    let host = rep.host(
        &spec.host,
        "spec.host is required; use 0.0.0.0 to listen on all interfaces or 127.0.0.1 for this host only",
    );
    let port = rep.port(spec.port);
    rep.tcp_type(&spec.kind);

    for (field, value) in [
        ("spec.observer", &spec.observer),
        (
            "spec.settings.observer",
            &spec.settings.get("observer").cloned(),
        ),
    ] {
        if let Some(v) = value {
            if !OBSERVERS.contains(&v.as_str()) {
                rep.error(
                    field,
                    format!("{field} \"{v}\" is not one of auto, none, http1, http2"),
                );
            }
        }
    }
    let observer = match (&spec.observer, spec.settings.get("observer")) {
        (Some(a), Some(b)) if a != b => {
            rep.error(
                "spec.observer",
                format!("spec.observer \"{a}\" and spec.settings.observer \"{b}\" disagree; set only one"),
            );
            None
        }
        (Some(v), _) | (None, Some(v)) => Some(v.clone()),
        (None, None) => None,
    }
    .filter(|v| v != "auto");
    rep.unknown_settings(spec.settings.keys().filter(|k| *k != "observer"));
    rep.no_effect(
        "spec.exposePodsByName",
        spec.expose_pods_by_name == Some(true),
    );

    if let Some(cred) = &spec.tls_credentials {
        if rep.credential_name(cred, cx) {
            match cx.certs.get(cred) {
                Err(why) => rep.error("spec.tlsCredentials", why),
                // No bundle: a server certificate is generated from the service CA.
                Ok(None) => {}
                Ok(Some(bundle)) => {
                    rep.refused_files(cred, bundle);
                    for required in ["tls.crt", "tls.key"] {
                        if !bundle.has(required) {
                            rep.error(
                                "spec.tlsCredentials",
                                format!("input/certs/{cred}/{required} is missing"),
                            );
                        }
                    }
                    rep.pem_checks(cred, bundle, cx, Some(&host));
                }
            }
        }
    }

    let mut accepted = spec.clone();
    accepted.routing_key = Some(routing_key.clone());
    let config = ListenerConfig {
        routing_key,
        host,
        port,
        observer,
        tls_credentials: spec.tls_credentials.clone(),
        spec: accepted,
    };
    rep.finish(Some(config))
}

pub fn connector(
    r: &InputResource,
    spec: &ConnectorSpec,
    cx: &Context,
) -> (Option<ConnectorConfig>, Vec<Problem>) {
    let mut rep = Report::new(r);
    rep.namespace(cx);
    let routing_key = rep.routing_key(&spec.routing_key);
    let host = rep.host(
        &spec.host,
        "spec.host is required on local sites (spec.selector only works on Kubernetes)",
    );
    let port = rep.port(spec.port);
    rep.tcp_type(&spec.kind);
    rep.no_effect("spec.selector", spec.selector.is_some());
    rep.no_effect(
        "spec.includeNotReadyPods",
        spec.include_not_ready_pods == Some(true),
    );
    rep.no_effect(
        "spec.exposePodsByName",
        spec.expose_pods_by_name == Some(true),
    );
    rep.unknown_settings(spec.settings.keys());

    let use_client_cert = spec.use_client_cert.unwrap_or(false);
    let verify_hostname = spec.verify_hostname.unwrap_or(false);
    let tls = match &spec.tls_credentials {
        None => {
            for (field, set) in [
                ("spec.useClientCert", spec.use_client_cert.is_some()),
                ("spec.verifyHostname", spec.verify_hostname.is_some()),
            ] {
                if set {
                    rep.warning(
                        field,
                        format!("{field} has no effect without spec.tlsCredentials"),
                    );
                }
            }
            None
        }
        Some(cred) => {
            if rep.credential_name(cred, cx) {
                match cx.certs.get(cred) {
                    Err(why) => rep.error("spec.tlsCredentials", why),
                    Ok(None) => rep.error(
                        "spec.tlsCredentials",
                        format!("input/certs/{cred}/ does not exist; put the CA that signed the server's certificate in input/certs/{cred}/ca.crt"),
                    ),
                    Ok(Some(bundle)) => {
                        rep.refused_files(cred, bundle);
                        if !bundle.has("ca.crt") {
                            rep.error(
                                "spec.tlsCredentials",
                                format!("input/certs/{cred}/ca.crt is missing; it is needed to verify the server"),
                            );
                        }
                        if use_client_cert && !(bundle.has("tls.crt") && bundle.has("tls.key")) {
                            rep.error(
                                "spec.useClientCert",
                                format!("spec.useClientCert is true but input/certs/{cred}/tls.crt and tls.key are missing"),
                            );
                        }
                        rep.pem_checks(cred, bundle, cx, None);
                    }
                }
            }
            Some(ConnectorTls {
                credentials: cred.clone(),
                use_client_cert,
                verify_hostname,
            })
        }
    };

    let mut accepted = spec.clone();
    accepted.routing_key = Some(routing_key.clone());
    let config = ConnectorConfig {
        routing_key,
        host,
        port,
        tls,
        spec: accepted,
    };
    rep.finish(Some(config))
}

pub fn site(
    r: &InputResource,
    spec: &SiteSpec,
    cx: &Context,
) -> (Option<SiteConfig>, Vec<Problem>) {
    let mut rep = Report::new(r);
    rep.namespace(cx);
    let edge = spec.edge.unwrap_or(false);
    let mut link_access = false;
    match spec.link_access.as_deref().unwrap_or("") {
        "" | "none" => {}
        v @ ("default" | "route" | "loadbalancer") => {
            if edge {
                rep.error(
                    "spec.linkAccess",
                    format!("spec.linkAccess \"{v}\" cannot be used with spec.edge: true (edge sites do not accept links)"),
                );
            } else if v != "default" {
                rep.warning(
                    "spec.linkAccess",
                    format!(
                        "spec.linkAccess \"{v}\" is Kubernetes-only; local sites use \"default\""
                    ),
                );
            }
            link_access = true;
        }
        v => rep.error(
            "spec.linkAccess",
            format!("spec.linkAccess \"{v}\" is not supported; use \"default\" or \"none\""),
        ),
    }
    if spec.ha == Some(true) {
        if edge {
            rep.error(
                "spec.ha",
                "spec.ha cannot be used with spec.edge (edge sites cannot have HA)".to_string(),
            );
        } else {
            rep.no_effect("spec.ha", true);
        }
    }
    let default_issuer = spec
        .default_issuer
        .clone()
        .unwrap_or_else(|| SITE_CA.to_string());
    if !names::is_cred_name(&default_issuer) {
        rep.error(
            "spec.defaultIssuer",
            format!("spec.defaultIssuer \"{default_issuer}\" {CRED_RULE}"),
        );
    }
    rep.no_effect("spec.serviceAccount", spec.service_account.is_some());

    let mut router_logging = "info".to_string();
    let mut data_connections = None;
    for (key, value) in &spec.settings {
        let field = format!("spec.settings.{key}");
        match key.as_str() {
            "routerLogging" | "router-logging" => {
                if ["info", "warning", "error", "debug"].contains(&value.as_str()) {
                    router_logging = value.clone();
                } else {
                    rep.error(
                        &field,
                        format!("spec.settings.routerLogging \"{value}\" is not one of info, warning, error, debug"),
                    );
                }
            }
            "routerDataConnections" | "router-data-connection-count" => {
                if value != "auto" {
                    match value.parse::<u32>() {
                        Ok(n) if n > 0 => data_connections = Some(n),
                        _ => rep.error(
                            &field,
                            format!("spec.settings.routerDataConnections \"{value}\" is not \"auto\" or a positive integer"),
                        ),
                    }
                }
            }
            _ => rep.warning(&field, format!("{field}: unknown setting, ignored")),
        }
    }
    let _ = cx;
    let config = SiteConfig {
        edge,
        link_access,
        router_logging,
        data_connections,
        default_issuer,
        spec: spec.clone(),
    };
    rep.finish(Some(config))
}

/// A RouterAccess on its own (resources.md 5). That an edge site accepts
/// no links is checked once the Site is known (`plan::resolve`).
pub fn router_access(
    r: &InputResource,
    spec: &RouterAccessSpec,
    cx: &Context,
) -> (Option<RouterAccessConfig>, Vec<Problem>) {
    let mut rep = Report::new(r);
    rep.namespace(cx);
    if r.name == "skupper-local" {
        rep.error(
            "metadata.name",
            "this name is reserved for skupperd's management access".to_string(),
        );
    }
    if spec.roles.is_empty() {
        rep.error(
            "spec.roles",
            "spec.roles must list at least one role (inter-router, edge)".to_string(),
        );
    }
    let mut roles: Vec<(String, Option<u16>)> = Vec::new();
    for (i, role) in spec.roles.iter().enumerate() {
        let field = format!("spec.roles[{i}]");
        let name = role.name.clone().unwrap_or_default();
        if name != "inter-router" && name != "edge" {
            rep.error(
                &format!("{field}.name"),
                format!("{field}.name \"{name}\" is not one of inter-router, edge"),
            );
            continue;
        }
        if roles.iter().any(|(n, _)| *n == name) {
            rep.error(&field, format!("role \"{name}\" is listed twice"));
            continue;
        }
        let port = match role.port {
            None | Some(0) => None,
            Some(p) => match u16::try_from(p) {
                Ok(p) => Some(p),
                Err(_) => {
                    rep.error(
                        &format!("{field}.port"),
                        format!("{field}.port {p} is out of range 1-65535"),
                    );
                    None
                }
            },
        };
        roles.push((name, port));
    }
    let tls_credentials = spec
        .tls_credentials
        .clone()
        .unwrap_or_else(|| r.name.clone());
    if spec.tls_credentials.is_some() {
        rep.credential_name(&tls_credentials, cx);
    }
    if let Some(issuer) = &spec.issuer {
        if !names::is_cred_name(issuer) {
            rep.error(
                "spec.issuer",
                format!("spec.issuer \"{issuer}\" {CRED_RULE}"),
            );
        }
    }
    let bind_host = spec.bind_host.clone().unwrap_or_default();
    if !bind_host.is_empty() && !names::is_host(&bind_host) {
        rep.error(
            "spec.bindHost",
            format!("spec.bindHost {}", names::host_fragment(&bind_host)),
        );
    }
    for (i, san) in spec.subject_alternative_names.iter().enumerate() {
        let name = san.strip_prefix("*.").unwrap_or(san);
        if !names::is_host(name) {
            rep.error(
                &format!("spec.subjectAlternativeNames[{i}]"),
                format!(
                    "spec.subjectAlternativeNames[{i}] \"{san}\" is not an IP address or DNS name"
                ),
            );
        }
    }
    rep.no_effect("spec.accessType", spec.access_type.is_some());
    rep.unknown_settings(spec.settings.keys());
    let config = RouterAccessConfig {
        roles,
        tls_credentials,
        issuer: spec.issuer.clone(),
        bind_host,
        sans: spec.subject_alternative_names.clone(),
        spec: spec.clone(),
    };
    rep.finish(Some(config))
}

/// A Link on its own (resources.md 4 and 6): endpoints, cost and the
/// credentials it names. Whether the endpoint for this site's role exists
/// is checked once the Site is known (`plan::resolve`).
pub fn link(
    r: &InputResource,
    spec: &LinkSpec,
    cx: &Context,
) -> (Option<LinkConfig>, Vec<Problem>) {
    let mut rep = Report::new(r);
    rep.namespace(cx);
    if spec.endpoints.is_empty() {
        rep.error("spec.endpoints", "spec.endpoints is empty".to_string());
    }
    let mut endpoints = Vec::new();
    for (i, ep) in spec.endpoints.iter().enumerate() {
        let Some(name) = &ep.name else { continue };
        if name != "inter-router" && name != "edge" {
            continue;
        }
        let field = format!("spec.endpoints[{i}]");
        let host = match &ep.host {
            Some(h) if names::is_host(h) => h.clone(),
            Some(h) => {
                rep.error(
                    &format!("{field}.host"),
                    format!("{field}.host {}", names::host_fragment(h)),
                );
                continue;
            }
            None => {
                rep.error(
                    &format!("{field}.host"),
                    format!("{field}.host is required"),
                );
                continue;
            }
        };
        let text = match &ep.port {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let port = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<u16>().ok().filter(|p| *p > 0)
        } else {
            None
        };
        match port {
            Some(p) => endpoints.push((name.clone(), host, p)),
            None => rep.error(
                &format!("{field}.port"),
                format!("{field}.port \"{text}\" is not a port number 1-65535"),
            ),
        }
    }
    let cost = match spec.cost {
        None | Some(0) => 1,
        Some(c) if c < 0 => {
            rep.error("spec.cost", format!("spec.cost {c} must be 1 or more"));
            1
        }
        Some(c) => u32::try_from(c).unwrap_or(u32::MAX),
    };
    for key in spec.settings.keys() {
        if key == "proxy-configuration" {
            rep.warning(
                "spec.settings.proxy-configuration",
                "spec.settings.proxy-configuration is not supported on local sites".to_string(),
            );
        } else {
            rep.warning(
                &format!("spec.settings.{key}"),
                format!("spec.settings.{key}: unknown setting, ignored"),
            );
        }
    }
    let cred = match &spec.tls_credentials {
        None => {
            rep.error(
                "spec.tlsCredentials",
                "spec.tlsCredentials is required (the Secret with the client certificate and the remote CA)".to_string(),
            );
            String::new()
        }
        Some(cred) => {
            if rep.credential_name(cred, cx) {
                match cx.secrets.get(cred.as_str()) {
                    Some(doc) => link_secret(&mut rep, r, doc, cx),
                    None => match cx.certs.get(cred) {
                        Err(why) => rep.error("spec.tlsCredentials", why),
                        Ok(None) => rep.error(
                            "spec.tlsCredentials",
                            format!("spec.tlsCredentials \"{cred}\": no Secret \"{cred}\" in input/resources and no input/certs/{cred}/"),
                        ),
                        Ok(Some(bundle)) => {
                            rep.refused_files(cred, bundle);
                            for f in ["tls.crt", "tls.key", "ca.crt"] {
                                if !bundle.has(f) {
                                    rep.error(
                                        "spec.tlsCredentials",
                                        format!("input/certs/{cred}/{f} is missing"),
                                    );
                                }
                            }
                            rep.pem_checks(cred, bundle, cx, None);
                        }
                    },
                }
            }
            cred.clone()
        }
    };
    let mut accepted = spec.clone();
    accepted.cost = Some(i64::from(cost));
    let config = LinkConfig {
        endpoints,
        cost,
        tls_credentials: cred,
        spec: accepted,
    };
    rep.finish(Some(config))
}

/// The checks of a Secret a Link names: its type and data, the three keys
/// a link needs, then the PEM checks. Reported on the Link (it cannot
/// connect) at the Secret's place.
fn link_secret(rep: &mut Report, link: &InputResource, doc: &SecretDoc, cx: &Context) {
    let mut error = |p: Problem| rep.problems.push(p);
    let bundle = match secret_bundle(doc) {
        Ok(b) => b,
        Err(p) => return error(*p),
    };
    for f in ["ca.crt", "tls.crt", "tls.key"] {
        if !bundle.has(f) {
            error(doc.problem(
                Problem::error(format!(
                    "secret \"{}\": data[\"{f}\"] is missing (needed by link \"{}\")",
                    doc.name, link.name
                )),
                Some("data"),
            ));
        }
    }
    let files = bundle.files_at(secret_dir(&doc.name));
    for finding in certs::check_bundle(&files, cx.now, None, cx.renew_before) {
        let p = match finding.severity {
            Severity::Error => {
                Problem::error(format!("secret \"{}\": {}", doc.name, finding.message))
            }
            Severity::Warning => {
                Problem::warning(format!("secret \"{}\": {}", doc.name, finding.message))
            }
        };
        error(doc.problem(p, Some("data")));
    }
}

#[cfg(test)]
mod tests;
