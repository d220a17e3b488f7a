//! `skupperd status`: the listener and connector tables of `skupper
//! listener status`, read from `runtime/resources`.

use super::Output;
use crate::input::parse_document;
use crate::input::tree::{Node, Value};
use anyhow::{Context as _, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, serde::Serialize)]
struct Row {
    namespace: String,
    kind: String,
    name: String,
    status: String,
    routing_key: String,
    host: String,
    port: String,
    matched: bool,
    message: String,
}

fn text(node: Option<&Node>) -> String {
    match node.map(|n| &n.value) {
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn rows(ns_dir: &std::path::Path, namespace: &str) -> Vec<Row> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(ns_dir.join("runtime/resources")) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Ok(body) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(Some(doc)) = parse_document(&body, 0) else {
            continue;
        };
        let kind = text(doc.get("kind"));
        if kind != "Listener" && kind != "Connector" {
            continue;
        }
        let spec = doc.get("spec");
        let status = doc.get("status");
        let matched_key = if kind == "Listener" {
            "hasMatchingConnector"
        } else {
            "hasMatchingListener"
        };
        out.push(Row {
            namespace: namespace.to_string(),
            name: text(doc.get("metadata").and_then(|m| m.get("name"))),
            status: text(status.and_then(|s| s.get("status"))),
            routing_key: text(spec.and_then(|s| s.get("routingKey"))),
            host: text(spec.and_then(|s| s.get("host"))),
            port: text(spec.and_then(|s| s.get("port"))),
            matched: text(status.and_then(|s| s.get(matched_key))) == "true",
            message: text(status.and_then(|s| s.get("message"))),
            kind,
        });
    }
    out
}

fn table(rows: &[&Row], matching: &str) {
    let header = [
        "NAME",
        "STATUS",
        "ROUTING-KEY",
        "HOST",
        "PORT",
        matching,
        "MESSAGE",
    ];
    // Records carry the spec as written (a rejected host included): every
    // cell is shown with its control characters escaped.
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                &r.name,
                &r.status,
                &r.routing_key,
                &r.host,
                &r.port,
                &r.matched.to_string(),
                &r.message,
            ]
            .map(|c| crate::problem::escape_controls(c).into_owned())
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cols: Vec<&str>| {
        let parts: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        say!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn run(
    data_home: Option<PathBuf>,
    namespace: Option<&str>,
    output: Output,
) -> Result<ExitCode> {
    let data_home = match data_home {
        Some(d) => d,
        None => super::default_data_home()?,
    };
    let ns_root = data_home.join("namespaces");
    let mut names: Vec<String> = match namespace {
        Some(n) => vec![n.to_string()],
        None => std::fs::read_dir(&ns_root)
            .with_context(|| format!("cannot read {}", ns_root.display()))?
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    };
    names.sort();
    let all: Vec<Row> = names
        .iter()
        .flat_map(|n| rows(&ns_root.join(n), n))
        .collect();
    match output {
        Output::Json => say!("{}", serde_json::to_string_pretty(&all)?),
        Output::Text => {
            for ns in &names {
                let of = |k: &str| {
                    all.iter()
                        .filter(|r| &r.namespace == ns && r.kind == k)
                        .collect::<Vec<_>>()
                };
                say!("Namespace {}", crate::problem::escape_controls(ns));
                say!("Listeners:");
                table(&of("Listener"), "MATCHING-CONNECTOR");
                say!("Connectors:");
                table(&of("Connector"), "MATCHING-LISTENER");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
