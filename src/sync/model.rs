//! A tiny router for the tests: a table of entities that CREATE, UPDATE and
//! DELETE act on with the real router's rules, taken from the reference
//! schema (`reference_check::RouterSchema`: defaults materialised, values
//! coerced, only updatable attributes updated, names unique across types,
//! sslProfile references resolved at CREATE).
//!
//! It is stricter than the router in two ways the plan promises to honour:
//! deleting an sslProfile that an entity still names, and deleting a
//! tcpListener that a listenerAddress still names, are refused (the router
//! accepts both, leaving entities bound to something gone), and a
//! listenerAddress must name an existing tcpListener.

use super::compare::{reference, short_kind, LISTENER_ADDRESS, SSL_PROFILE, TCP_LISTENER};
use super::Op;
use reference_check::{reference_dir, RouterSchema};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

type Attrs = Map<String, Value>;

pub fn schema() -> &'static RouterSchema {
    static SCHEMA: OnceLock<RouterSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        RouterSchema::load(&reference_dir())
            .unwrap_or_else(|e| panic!("reference schema is required: {e}"))
    })
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    /// QUERY rows per short type, as `plan` takes them.
    pub table: BTreeMap<String, Vec<Attrs>>,
}

fn name_of(row: &Attrs) -> Option<&str> {
    row.get("name").and_then(Value::as_str)
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    fn rows(&self) -> impl Iterator<Item = (&str, &Attrs)> {
        self.table
            .iter()
            .flat_map(|(k, rows)| rows.iter().map(move |r| (k.as_str(), r)))
    }

    fn position(&self, kind: &str, name: &str) -> Result<usize, String> {
        self.table
            .get(kind)
            .and_then(|rows| rows.iter().position(|r| name_of(r) == Some(name)))
            .ok_or_else(|| format!("404 No entity with name={name}"))
    }

    pub fn get(&self, kind: &str, name: &str) -> Option<&Attrs> {
        let i = self.position(kind, name).ok()?;
        self.table.get(kind).and_then(|rows| rows.get(i))
    }

    pub fn create(&mut self, kind: &str, attrs: &Attrs) -> Result<(), String> {
        let kind = short_kind(kind);
        let s = schema();
        let row = s.check_create(kind, attrs).map_err(|r| r.to_string())?;
        s.check_unique(&row, self.rows().map(|(_, r)| r))
            .map_err(|r| r.to_string())?;
        if let Some(p) = s.ssl_profile_reference(kind, &row) {
            if self.get(SSL_PROFILE, p).is_none() {
                return Err(format!("500 CError: Not found: sslProfile '{p}' not found"));
            }
        }
        if kind == LISTENER_ADDRESS {
            let l = reference(&row, "listener").unwrap_or_default();
            if self.get(TCP_LISTENER, l).is_none() {
                return Err(format!("listenerAddress names missing tcpListener {l}"));
            }
        }
        self.table.entry(kind.to_owned()).or_default().push(row);
        Ok(())
    }

    /// An entity the router loaded from its config file, for types that
    /// management cannot create (`site`): stored as given.
    pub fn preload(&mut self, kind: &str, attrs: &Attrs) {
        let mut row = attrs.clone();
        let name = name_of(attrs).unwrap_or_default().to_owned();
        row.insert("identity".into(), Value::String(format!("{kind}/{name}")));
        row.insert(
            "type".into(),
            Value::String(format!("io.skupper.router.{kind}")),
        );
        self.table.entry(kind.to_owned()).or_default().push(row);
    }

    pub fn update(&mut self, kind: &str, name: &str, changes: &Attrs) -> Result<(), String> {
        let kind = short_kind(kind);
        let i = self.position(kind, name)?;
        let rows = self.table.get_mut(kind).ok_or("no table")?;
        let row = rows.get_mut(i).ok_or("no row")?;
        *row = schema()
            .check_update(kind, row, changes)
            .map_err(|r| r.to_string())?;
        Ok(())
    }

    pub fn delete(&mut self, kind: &str, name: &str) -> Result<(), String> {
        let kind = short_kind(kind);
        schema()
            .check_operation(kind, "DELETE")
            .map_err(|r| r.to_string())?;
        let i = self.position(kind, name)?;
        let user = |attr: &str| {
            self.rows()
                .find(|(k, r)| *k != kind && reference(r, attr) == Some(name))
                .map(|(k, r)| format!("{k} {}", name_of(r).unwrap_or("?")))
        };
        let in_use = match kind {
            SSL_PROFILE => user("sslProfile"),
            TCP_LISTENER => user("listener"),
            _ => None,
        };
        if let Some(by) = in_use {
            return Err(format!("{kind} {name} deleted while {by} names it"));
        }
        if let Some(rows) = self.table.get_mut(kind) {
            rows.remove(i);
        }
        Ok(())
    }

    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Create(e) => self.create(&e.kind, &e.attrs),
            Op::Update { kind, name, attrs } => self.update(kind, name, attrs),
            Op::Delete { kind, name } => self.delete(kind, name),
        }
    }
}
