//! Plain data shared by the core's stages and the shell: what the planner
//! produces and the renderers and the daemon read. It sits below `plan`
//! and `render` so that the core reads one way,
//! `input -> resources -> validate -> plan -> render`, with no stage
//! importing a later one's types.

use crate::resources::{Kind, Spec};
use crate::status::{Condition, Phase};
use std::collections::{BTreeMap, BTreeSet};

/// Where the site's router runs; decides certificate paths in the config.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Linux,
    Podman,
    Docker,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Podman => "podman",
            Platform::Docker => "docker",
        }
    }

    /// Every accepted name, for messages.
    pub const NAMES: &'static [&'static str] = &["linux", "podman", "docker"];

    pub fn parse(s: &str) -> Option<Platform> {
        match s {
            "linux" => Some(Platform::Linux),
            "podman" => Some(Platform::Podman),
            "docker" => Some(Platform::Docker),
            _ => None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const ANN_SHA: &str = "skupperd.io/input-sha256";
pub const ANN_ACCEPTED: &str = "skupperd.io/accepted-generation";
pub const ANN_SOURCE: &str = "skupperd.io/source";
/// The certificate a resource's TLS serves (JSON: profile, file, subject,
/// serial, notAfter). An annotation because Skupper's CRDs close `status`.
pub const ANN_CERTIFICATE: &str = "skupperd.io/certificate";
/// skupperd's own annotations: never taken from the input, always written
/// by skupperd.
pub const OWN_ANNOTATIONS: [&str; 4] = [ANN_ACCEPTED, ANN_CERTIFICATE, ANN_SHA, ANN_SOURCE];

/// The site's identity: created once, kept until the namespace directory is
/// deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub site_id: String,
    pub management_port: u16,
    /// Link-access ports by router listener name (`<access>-<role>`):
    /// chosen once and kept, like the management port.
    pub link_ports: BTreeMap<String, u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriorRecord {
    pub generation: u64,
    pub input_sha256: String,
    pub accepted_generation: Option<u64>,
    pub accepted: Option<Spec>,
    pub source: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Annotations other than skupperd's own.
    pub annotations: BTreeMap<String, String>,
    pub conditions: Vec<Condition>,
    /// What the file says besides the above: two records that are equal
    /// render to the same bytes, which lets a pass reuse them.
    pub namespace: String,
    pub uid: Option<String>,
    /// The spec the record shows, when that is not just the JSON of
    /// `accepted` (see [`PriorRecord::spec`]).
    pub written_spec: Option<serde_json::Value>,
    /// Site only: `status.sitesInNetwork` from the network view.
    pub sites_in_network: Option<u64>,
    /// Site only: `status.endpoints` of its link access, as (name, host,
    /// port); group `skupper-router`.
    pub endpoints: Vec<(String, String, u16)>,
    /// The `skupperd.io/certificate` annotation: the certificate the
    /// resource's sslProfile serves, when it uses TLS.
    pub certificate: Option<String>,
}

impl PriorRecord {
    /// The spec the record shows: the accepted spec, or the input's as
    /// written when none was accepted.
    pub fn spec(&self) -> std::borrow::Cow<'_, serde_json::Value> {
        match (&self.written_spec, &self.accepted) {
            (Some(v), _) => std::borrow::Cow::Borrowed(v),
            (None, Some(a)) => std::borrow::Cow::Owned(a.to_json()),
            (None, None) => std::borrow::Cow::Owned(serde_json::Value::Object(Default::default())),
        }
    }
}

/// What the router side looks like, as far as the status needs to know.
/// Without a router (`render`, runner none, router down) every
/// router-backed condition is `router not reachable`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouterState {
    pub runner: String,
    pub state: String,
    pub message: String,
    /// `router exited: <cause>` when the runner gave up on the router.
    pub failure: Option<String>,
    /// Why the router cannot be reached, when more is known than "router
    /// not reachable": it exited (and why), its management port is taken,
    /// or the management connection fails. The Site's `Running` condition
    /// says it.
    pub unreachable: Option<String>,
    /// What the Site's status should say while the router runs fine (the
    /// management port it had to move from, say).
    pub notice: Option<String>,
    /// Another process holds this management port (the router exited
    /// because it could not listen on it): the pass picks a new port
    /// (platform.md 4).
    pub management_port_taken: Option<u16>,
    pub restarts: u32,
    /// What the router reported over management; `None` while it cannot be
    /// reached.
    pub view: Option<RouterView>,
}

/// The router's own view of the entities skupperd gave it, from the last
/// sync and poll (router.md 3 and 7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouterView {
    /// Desired entities the router has with the desired attributes (a
    /// CREATE/UPDATE answered 2xx, or a QUERY shows them).
    pub confirmed: BTreeSet<String>,
    /// Entities the router refused: `<code> <description>`.
    pub refused: BTreeMap<String, String>,
    /// tcpListener name -> (operStatus up, connectionMsg).
    pub listeners: BTreeMap<String, (bool, Option<String>)>,
    /// connector (Link) name -> (connectionStatus, connectionMsg).
    pub links: BTreeMap<String, (String, Option<String>)>,
    /// Routing key -> consumers (`subscriberCount + remoteCount +
    /// inProcess` of `M<key>`).
    pub consumers: BTreeMap<String, u64>,
    /// Routing keys with a live LISTENER record in the network; `None`
    /// until the network view's first flush completed.
    pub network_listeners: Option<BTreeSet<String>>,
    pub sites_in_network: Option<u64>,
    pub version: Option<String>,
    pub capabilities: Vec<String>,
    pub last_sync: Option<String>,
    pub last_changes: Vec<String>,
}

/// One resource's place in the status summary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResourceSummary {
    pub kind: Kind,
    pub name: String,
    pub status: Phase,
    pub message: String,
}

pub const LOCAL_CA: &str = "skupper-local-ca";
pub const LOCAL_SERVER: &str = "skupper-local-server";
pub const LOCAL_CLIENT: &str = "skupper-local-client";

/// Which files an sslProfile names (the key goes with the certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub ca: bool,
    pub cert: bool,
    /// Raised by one each time the profile's files change, so the router
    /// loads them for new connections while existing ones stay up
    /// (router.md 4); 0 is not written.
    pub ordinal: u64,
}

/// The certificate an sslProfile hands the router: its `tls.crt` leaf, or
/// for a profile with only a CA (a Connector verifying its server) the
/// first certificate of `ca.crt`. What status files show, so a user can
/// see which certificate is served and that a rotation happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInUse {
    /// e.g. `runtime/certs/web-tls/tls.crt`.
    pub file: String,
    pub subject: String,
    /// Upper-case hex, as `openssl x509 -noout -serial` prints it.
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_after: String,
}

impl CertInUse {
    /// The value of a resource record's `skupperd.io/certificate`
    /// annotation: a JSON object (profile, file, subject, serial,
    /// notAfter). Skupper's CRDs close `status` to unknown fields, so the
    /// record carries it as an annotation, whose values are free strings.
    pub fn annotation(&self, profile: &str) -> String {
        serde_json::json!({
            "profile": profile,
            "file": self.file,
            "subject": self.subject,
            "serial": self.serial,
            "notAfter": self.not_after,
        })
        .to_string()
    }
}

/// The site's link access (resources.md 5): the RouterAccess `linkAccess`
/// makes, named after the Site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAccess {
    /// The RouterAccess name: its listeners `<name>-<role>` and link files.
    pub name: String,
    /// Its tlsCredentials: the server certificate and sslProfile, and
    /// `client-<cred>` for the link files.
    pub cred: String,
    /// The CA that issues both and verifies linking sites.
    pub issuer: String,
    /// `""`: all interfaces.
    pub bind_host: String,
    /// SANs of the server certificate.
    pub sans: Vec<String>,
    /// (role, port) in the order of the link file's endpoints.
    pub roles: Vec<(String, u16)>,
}

impl LinkAccess {
    /// The router listener of a role: `<access>-<role>`.
    pub fn listener_name(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    /// The hosts a link file is written for, in order: the bind host (or
    /// 127.0.0.1 when it binds all interfaces), then every SAN that is an
    /// address or a plain DNS name.
    pub fn hosts(&self) -> Vec<String> {
        let first =
            if self.bind_host.is_empty() || self.bind_host == "0.0.0.0" || self.bind_host == "::" {
                "127.0.0.1".to_string()
            } else {
                self.bind_host.clone()
            };
        let mut out = vec![first];
        for san in &self.sans {
            if !san.starts_with("*.")
                && !san.starts_with(crate::certs::DNS_PREFIX)
                && !out.contains(san)
            {
                out.push(san.clone());
            }
        }
        out
    }
}

/// The Site's message while the namespace has none.
pub const NO_SITE: &str = "no Site in input/resources; nothing is configured";
