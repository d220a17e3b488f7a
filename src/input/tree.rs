//! A YAML document as a tree whose every node knows where it was written.
//!
//! Built from saphyr-parser's event stream. Positions are what make
//! validation messages point at `file:line:column`; the same pass enforces
//! the input limits of DESIGN.md 2 (nesting depth, alias expansion) and
//! rejects duplicate keys, so nothing downstream has to.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;

/// Nesting deeper than this is refused (DESIGN.md 2).
pub const MAX_DEPTH: usize = 64;
/// Nodes that alias expansion may add to one document; a "billion laughs"
/// document hits this long before it costs memory.
pub const ALIAS_BUDGET: usize = 10_000;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mark {
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order; duplicates were refused while building.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

/// A problem found while building the tree: a syntax error, a duplicate key
/// or a limit. `path` is the field path (`spec.port`), empty at the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    pub path: String,
    pub mark: Mark,
    pub message: String,
}

impl std::fmt::Display for TreeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} at {}", self.message, self.mark)
        } else {
            write!(f, "{}: {} at {}", self.path, self.message, self.mark)
        }
    }
}

impl Node {
    /// The value at `key` when this node is a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Where the node at a dotted field path (`spec.settings.observer`,
    /// `spec.endpoints[1].host`) was written, falling back to the deepest
    /// ancestor that exists, so a message about a missing field points at
    /// its parent.
    pub fn mark_of(&self, path: &str) -> Mark {
        let mut node = self;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let (key, index) = match part.split_once('[') {
                Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            match node.get(key) {
                Some(next) => node = next,
                None => return node.mark,
            }
            if let Some(i) = index {
                match &node.value {
                    Value::Seq(items) if i < items.len() => node = &items[i],
                    _ => return node.mark,
                }
            }
        }
        node.mark
    }

    /// Plain JSON for the parts of a document that are kept as given (the
    /// input spec of a resource that was never valid, the input hash).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (key_text(k), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A key as text, for paths and messages.
pub fn key_text(key: &Node) -> String {
    match &key.value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Null => "null".to_string(),
        Value::Seq(_) | Value::Map(_) => "<complex key>".to_string(),
    }
}

/// The keys of one map as it is built, for the duplicate-key rule: found
/// in constant time, so a map with a hundred thousand keys (a 1 MiB file)
/// is checked in milliseconds, not minutes. Keys compare as [`Value`]s do:
/// `1` and `1.0` differ, a NaN equals nothing, and collection keys (rare)
/// are compared one by one.
#[derive(Default)]
pub(crate) struct KeySet {
    scalars: HashMap<ScalarKey, usize>,
    /// Indexes of the keys that are sequences or maps.
    complex: Vec<usize>,
}

#[derive(PartialEq, Eq, Hash)]
enum ScalarKey {
    Null,
    Bool(bool),
    Int(i64),
    /// The bits of a float that is not NaN, with `-0.0` as `0.0`.
    Float(u64),
    Str(String),
}

impl KeySet {
    /// Adds `key`, the `index`-th key of `entries`; when an equal key is
    /// there already, returns its index instead.
    pub(crate) fn insert(
        &mut self,
        key: &Value,
        index: usize,
        entries: &[(Node, Node)],
    ) -> Result<(), usize> {
        let scalar = match key {
            Value::Null => ScalarKey::Null,
            Value::Bool(b) => ScalarKey::Bool(*b),
            Value::Int(i) => ScalarKey::Int(*i),
            Value::Float(f) if f.is_nan() => return Ok(()),
            Value::Float(f) => ScalarKey::Float(if *f == 0.0 { 0 } else { f.to_bits() }),
            Value::Str(s) => ScalarKey::Str(s.clone()),
            Value::Seq(_) | Value::Map(_) => {
                if let Some(&first) = self.complex.iter().find(|&&i| entries[i].0.value == *key) {
                    return Err(first);
                }
                self.complex.push(index);
                return Ok(());
            }
        };
        match self.scalars.entry(scalar) {
            std::collections::hash_map::Entry::Occupied(o) => Err(*o.get()),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(index);
                Ok(())
            }
        }
    }
}

fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn mark(span: &Span, line_offset: u32) -> Mark {
    Mark {
        line: span.start.line() as u32 + line_offset,
        column: span.start.col() as u32 + 1,
    }
}

/// [`super::parse_document`] through saphyr's parser alone: all of YAML,
/// and the wording of every error.
pub(crate) fn parse_general(text: &str, line_offset: u32) -> Result<Option<Node>, TreeError> {
    let mut builder = Builder {
        events: Parser::new_from_str(text),
        line_offset,
        anchors: HashMap::new(),
        budget: ALIAS_BUDGET,
    };
    builder.document()
}

struct Builder<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    line_offset: u32,
    anchors: HashMap<usize, Node>,
    budget: usize,
}

enum Step {
    Node(Node),
    End,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<Option<(Event<'a>, Mark)>, TreeError> {
        match self.events.next_event() {
            None => Ok(None),
            Some(Ok((event, span))) => Ok(Some((event, mark(&span, self.line_offset)))),
            Some(Err(e)) => Err(TreeError {
                path: String::new(),
                mark: Mark {
                    line: e.marker().line() as u32 + self.line_offset,
                    column: e.marker().col() as u32 + 1,
                },
                message: e.info().to_string(),
            }),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, TreeError> {
        let mut root = None;
        while let Some((event, at)) = self.next()? {
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) => {
                    if root.is_some() {
                        return Err(TreeError {
                            path: String::new(),
                            mark: at,
                            message: "more than one document in one chunk".to_string(),
                        });
                    }
                    match self.node_or_end("", 0)? {
                        // An explicit empty document (`---` alone) is a null.
                        Step::Node(n) if n.value == Value::Null => {}
                        Step::Node(n) => root = Some(n),
                        Step::End => {}
                    }
                }
                other => {
                    return Err(TreeError {
                        path: String::new(),
                        mark: at,
                        message: format!("unexpected YAML event {other:?}"),
                    })
                }
            }
        }
        Ok(root)
    }

    /// Reads one node, or reports the end of the enclosing collection or
    /// document.
    fn node_or_end(&mut self, path: &str, depth: usize) -> Result<Step, TreeError> {
        let Some((event, at)) = self.next()? else {
            return Ok(Step::End);
        };
        if depth > MAX_DEPTH {
            return Err(TreeError {
                path: path.to_string(),
                mark: at,
                message: format!("nesting deeper than {MAX_DEPTH} levels is refused"),
            });
        }
        let (node, anchor) = match event {
            Event::SequenceEnd | Event::MappingEnd | Event::DocumentEnd | Event::StreamEnd => {
                return Ok(Step::End)
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(TreeError {
                        path: path.to_string(),
                        mark: at,
                        message: "unknown alias".to_string(),
                    });
                };
                let size = count_nodes(target);
                if size > self.budget {
                    return Err(TreeError {
                        path: path.to_string(),
                        mark: at,
                        message: format!(
                            "alias expansion exceeds the budget of {ALIAS_BUDGET} nodes; refused"
                        ),
                    });
                }
                self.budget -= size;
                let mut node = target.clone();
                node.mark = at;
                (node, 0)
            }
            Event::Scalar(text, style, anchor, tag) => {
                let forced_str = tag
                    .as_ref()
                    .map(|t| t.suffix == "str" || t.suffix.ends_with(":str"))
                    .unwrap_or(false);
                let value = if style == ScalarStyle::Plain && !forced_str {
                    resolve_plain(&text)
                } else {
                    Value::Str(text.into_owned())
                };
                (Node { value, mark: at }, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let item_path = format!("{path}[{}]", items.len());
                    match self.node_or_end(&item_path, depth + 1)? {
                        Step::Node(n) => items.push(n),
                        Step::End => break,
                    }
                }
                (
                    Node {
                        value: Value::Seq(items),
                        mark: at,
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                let mut keys = KeySet::default();
                while let Step::Node(key) = self.node_or_end(path, depth + 1)? {
                    let key_name = key_text(&key);
                    if let Err(first) = keys.insert(&key.value, entries.len(), &entries) {
                        return Err(TreeError {
                            path: path.to_string(),
                            mark: key.mark,
                            message: format!(
                                "duplicate entry with key \"{key_name}\" (first at {})",
                                entries[first].0.mark
                            ),
                        });
                    }
                    let value_path = join_path(path, &key_name);
                    let value = match self.node_or_end(&value_path, depth + 1)? {
                        Step::Node(n) => n,
                        Step::End => Node {
                            value: Value::Null,
                            mark: key.mark,
                        },
                    };
                    entries.push((key, value));
                }
                (
                    Node {
                        value: Value::Map(entries),
                        mark: at,
                    },
                    anchor,
                )
            }
            other => {
                return Err(TreeError {
                    path: path.to_string(),
                    mark: at,
                    message: format!("unexpected YAML event {other:?}"),
                })
            }
        };
        if anchor != 0 {
            // The copy an anchor keeps costs what an alias does: nested
            // anchors around a big collection would otherwise keep one
            // copy per level (1.3 GB for a 1 MiB file).
            let size = count_nodes(&node);
            if size > self.budget {
                return Err(TreeError {
                    path: path.to_string(),
                    mark: node.mark,
                    message: format!(
                        "anchored content exceeds the budget of {ALIAS_BUDGET} nodes; refused"
                    ),
                });
            }
            self.budget -= size;
            self.anchors.insert(anchor, node.clone());
        }
        Ok(Step::Node(node))
    }
}

fn count_nodes(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(count_nodes).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| count_nodes(k) + count_nodes(v))
            .sum(),
        _ => 0,
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
pub(crate) fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(int) = parse_int(text) {
        return int;
    }
    if looks_like_float(text) {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(text.to_string())
}

fn parse_int(text: &str) -> Option<Value> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (oct, 8)
    } else {
        let body = text.strip_prefix(['-', '+']).unwrap_or(text);
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Too large for i64: still a number, so the type error says so.
        return Some(match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Float(text.parse::<f64>().unwrap_or(f64::MAX)),
        });
    };
    if digits.is_empty() {
        return None;
    }
    i64::from_str_radix(digits, radix).ok().map(Value::Int)
}

fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let mut seen_digit = false;
    for (i, c) in body.char_indices() {
        match c {
            '0'..='9' => seen_digit = true,
            '.' => {}
            'e' | 'E' => {
                let rest = &body[i + 1..];
                let rest = rest.strip_prefix(['-', '+']).unwrap_or(rest);
                return seen_digit && !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
            }
            _ => return false,
        }
    }
    seen_digit && body.matches('.').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::parse_document;

    fn parse(text: &str) -> Node {
        parse_document(text, 0).unwrap().unwrap()
    }

    #[test]
    fn scalars_resolve_like_yaml_1_2() {
        let n = parse("a: 8080\nb: '8080'\nc: true\nd: yes\ne: ~\nf: 1.5\ng: 0x1F\nh: eighty\n");
        assert_eq!(n.get("a").unwrap().value, Value::Int(8080));
        assert_eq!(n.get("b").unwrap().value, Value::Str("8080".into()));
        assert_eq!(n.get("c").unwrap().value, Value::Bool(true));
        assert_eq!(n.get("d").unwrap().value, Value::Str("yes".into()));
        assert_eq!(n.get("e").unwrap().value, Value::Null);
        assert_eq!(n.get("f").unwrap().value, Value::Float(1.5));
        assert_eq!(n.get("g").unwrap().value, Value::Int(31));
        assert_eq!(n.get("h").unwrap().value, Value::Str("eighty".into()));
    }

    #[test]
    fn positions_are_one_based_and_offset() {
        let n = parse_document("spec:\n  port: 70000\n", 7)
            .unwrap()
            .unwrap();
        assert_eq!(n.mark_of("spec.port"), Mark { line: 9, column: 9 });
        // A missing field points at its parent.
        assert_eq!(n.mark_of("spec.host"), Mark { line: 9, column: 3 });
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_places() {
        let e = parse_document("spec:\n  port: 1\n  port: 2\n", 0).unwrap_err();
        assert_eq!(e.path, "spec");
        assert_eq!(e.mark, Mark { line: 3, column: 3 });
        assert!(
            e.message.contains("duplicate entry with key \"port\""),
            "{e}"
        );
    }

    #[test]
    fn a_map_with_a_hundred_thousand_keys_is_checked_for_duplicates_quickly() {
        for (open, entry, close) in [("", "k{i}: v\n", ""), ("{", "k{i}: v, ", "}")] {
            let mut text = String::from(open);
            for i in 0..100_000 {
                text.push_str(&entry.replace("{i}", &i.to_string()));
            }
            let dup = entry.replace("{i}", "7").replace(", ", "");
            let start = std::time::Instant::now();
            let e = parse_document(&format!("{text}{dup}{close}"), 0).unwrap_err();
            // A scan of the keys per key took a minute and more.
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "{open}"
            );
            assert!(
                e.message
                    .contains("duplicate entry with key \"k7\" (first at line "),
                "{e}"
            );
        }
    }

    #[test]
    fn keys_are_duplicates_as_values_are_equal() {
        // Collection keys compare with their positions, so two are never
        // equal (as before the key index).
        for ok in [
            "1: a\n1.0: b\n",
            ".nan: a\n.nan: b\n",
            "'1': a\n1: b\n",
            "[1]: a\n[1]: b\n",
        ] {
            assert!(parse_document(ok, 0).is_ok(), "{ok}");
        }
        for dup in ["0.0: a\n-0.0: b\n", "~: a\nnull: b\n", "0x10: a\n16: b\n"] {
            let e = parse_document(dup, 0).unwrap_err();
            assert!(e.message.contains("duplicate entry"), "{dup}: {e}");
            assert_eq!(e.mark.line, 2, "{dup}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(80) + &"]".repeat(80);
        let e = parse_document(&text, 0).unwrap_err();
        assert!(e.message.contains("nesting deeper than 64"), "{e}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in ['b', 'c', 'd', 'e', 'f'] {
            text.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        let e = parse_document(&text, 0).unwrap_err();
        assert!(e.message.contains("alias expansion"), "{e}");
    }

    #[test]
    fn nested_anchors_around_a_big_collection_are_refused() {
        let text = format!(
            "a: {}{}1{}\n",
            (0..60).map(|i| format!("&a{i} [")).collect::<String>(),
            "1,".repeat(20_000),
            "]".repeat(60)
        );
        let e = parse_document(&text, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("a{}: anchored content exceeds the budget of 10000 nodes; refused at line 1 column 348", "[0]".repeat(59))
        );
        // The innermost anchor (`&a59`, after `a: ` and 10 + 49 anchors of
        // 5 and 6 characters) is the first one that is too big.
        // Small anchors and their aliases stay within the budget.
        let ok = "a: &a {x: 1, y: [1, 2]}\nb: *a\nc: *a\n";
        assert!(parse_document(ok, 0).is_ok());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse_document("a: [1, 2\nb: c\n", 0).unwrap_err();
        assert!(e.mark.line >= 1);
    }

    #[test]
    fn empty_documents_are_none() {
        assert!(parse_document("# only a comment\n", 0).unwrap().is_none());
        assert!(parse_document("---\n", 0).unwrap().is_none());
    }
}
