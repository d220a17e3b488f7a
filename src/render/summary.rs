//! `runtime/status.yaml` (resources.md 11): the namespace summary.

use super::yaml::{push_string, to_yaml};
use crate::model::{CertInUse, Identity, Platform, ResourceSummary, RouterState, NO_SITE};
use crate::problem::Problem;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Clone)]
pub struct Summary<'a> {
    pub namespace: &'a str,
    pub site: Option<&'a str>,
    pub identity: Option<&'a Identity>,
    pub platform: Option<Platform>,
    pub router: &'a RouterState,
    pub site_id_prefix_router: Option<String>,
    pub trigger: &'a str,
    pub resources: &'a [std::sync::Arc<ResourceSummary>],
    pub problems: &'a [Problem],
    pub no_site: bool,
    /// Every sslProfile's certificate in use with the profile's ordinal,
    /// by profile name: a rotation shows as a new serial and a higher
    /// ordinal.
    pub certificates: &'a [(String, CertInUse, u64)],
}

pub fn render(s: &Summary, last_run: &str) -> String {
    let errors = s.problems.iter().filter(|p| p.is_error()).count();
    let warnings = s.problems.len() - errors;
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let (result, mut message) = if s.problems.is_empty() {
        ("Clean", "no problems".to_string())
    } else {
        (
            "Degraded",
            format!(
                "{}, {}",
                plural(errors, "error"),
                plural(warnings, "warning")
            ),
        )
    };
    if s.no_site {
        message = format!("{message}; {}", NO_SITE);
    }

    let mut doc = Map::new();
    doc.insert("apiVersion".into(), json!("skupperd.io/v1alpha1"));
    doc.insert("kind".into(), json!("NamespaceStatus"));
    doc.insert("namespace".into(), json!(s.namespace));
    if let Some(site) = s.site {
        doc.insert("site".into(), json!(site));
    }
    if let Some(id) = s.identity {
        doc.insert("siteId".into(), json!(id.site_id));
    }
    if let Some(p) = s.platform {
        doc.insert("platform".into(), json!(p.as_str()));
    }
    doc.insert(
        "reconcile".into(),
        json!({"lastRun": last_run, "trigger": s.trigger, "result": result, "message": message}),
    );
    let mut router = Map::new();
    router.insert("runner".into(), json!(s.router.runner));
    router.insert("state".into(), json!(s.router.state));
    let view = s.router.view.as_ref();
    router.insert("reachable".into(), json!(view.is_some()));
    if let Some(id) = s.identity {
        router.insert("managementPort".into(), json!(id.management_port));
    }
    if let Some(rid) = &s.site_id_prefix_router {
        router.insert("routerId".into(), json!(rid));
    }
    if let Some(v) = view.and_then(|v| v.version.as_ref()) {
        router.insert("version".into(), json!(v));
    }
    if let Some(v) = view.filter(|v| !v.capabilities.is_empty()) {
        router.insert("capabilities".into(), json!(v.capabilities));
    }
    if let Some(v) = view.and_then(|v| v.last_sync.as_ref()) {
        router.insert("lastSync".into(), json!(v));
    }
    if let Some(v) = view.filter(|v| !v.last_changes.is_empty()) {
        router.insert("lastChanges".into(), json!(v.last_changes));
    }
    router.insert("restarts".into(), json!(s.router.restarts));
    router.insert("message".into(), json!(s.router.message));
    doc.insert("router".into(), Value::Object(router));
    if !s.certificates.is_empty() {
        let certificates: Vec<Value> = s
            .certificates
            .iter()
            .map(|(profile, c, ordinal)| {
                json!({
                    "profile": profile,
                    "file": c.file,
                    "subject": c.subject,
                    "serial": c.serial,
                    "notAfter": c.not_after,
                    "ordinal": ordinal,
                })
            })
            .collect();
        doc.insert("certificates".into(), Value::Array(certificates));
    }

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in s.resources {
        *counts.entry(r.status.as_str()).or_default() += 1;
    }
    doc.insert("counts".into(), json!(counts));
    // The two lists can hold every resource of a namespace: written
    // directly rather than through a value tree.
    let mut out = to_yaml(&Value::Object(doc));
    if s.resources.is_empty() {
        out.push_str("resources: []\n");
    } else {
        out.push_str("resources:\n");
        for r in s.resources {
            out.push_str("- kind: ");
            out.push_str(r.kind.as_str());
            out.push_str("\n  name: ");
            push_string(&mut out, &r.name);
            out.push_str("\n  status: ");
            out.push_str(r.status.as_str());
            out.push_str("\n  message: ");
            push_string(&mut out, &r.message);
            out.push('\n');
        }
    }
    let problems: Vec<Value> = s
        .problems
        .iter()
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .collect();
    out.push_str(&to_yaml(&json!({ "problems": problems })));
    out
}
