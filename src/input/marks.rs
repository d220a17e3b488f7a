//! Where every field of a document was written, without the document.
//!
//! A decoded resource is cached for as long as its file is unchanged, and
//! validation only ever asks it one thing of its YAML: the line and column
//! of a field (`spec.port`) for a message. Keeping the whole positioned
//! tree for that costs about a kilobyte per resource in many small
//! allocations; [`Marks`] answers the same question from one flat array
//! and one string, a fifth of that, with [`Node::mark_of`]'s exact rules.

use super::tree::{Mark, Node, Value};

/// The positions of a document's nodes, in pre-order (node 0 is the root),
/// each with its parent and the key or index it sits under.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Marks {
    entries: Box<[Entry]>,
    /// Every map key's text, back to back; entries point into it.
    keys: Box<str>,
    /// For each map with more than [`WIDE`] entries, by its entry index:
    /// its string-keyed children sorted by key (document order among
    /// equal keys). Empty for almost every document.
    wide: Box<[(u32, Box<[u32]>)]>,
}

/// Maps with more entries than this are indexed: one warning per unknown
/// setting asks for each key of the map in turn, which a scan would make
/// quadratic (minutes for a 1 MiB file of settings).
const WIDE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Index of the parent entry; `NO_PARENT` for the root.
    parent: u32,
    key: Key,
    mark: Mark,
}

/// How an entry hangs off its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// A map value under a string key (`keys[start..start + len]`).
    Field { start: u32, len: u32 },
    /// A sequence item.
    Item(u32),
    /// A map value under a key that is not a string: [`Node::get`] never
    /// finds it, and neither does [`Marks::mark_of`].
    Other,
}

const NO_PARENT: u32 = u32::MAX;

impl Marks {
    /// The positions of `root` and everything below it.
    pub fn of(root: &Node) -> Marks {
        let mut entries = Vec::new();
        let mut keys = String::new();
        let mut wide = Vec::new();
        collect(
            root,
            NO_PARENT,
            Key::Other,
            &mut entries,
            &mut keys,
            &mut wide,
        );
        wide.sort_unstable_by_key(|(map, _)| *map);
        let mut marks = Marks {
            entries: entries.into_boxed_slice(),
            keys: keys.into_boxed_str(),
            wide: Box::default(),
        };
        for (_, children) in &mut wide {
            // Stable: equal keys keep document order, so the first wins
            // as it does in a scan.
            children.sort_by(|a, b| marks.field_name(*a).cmp(marks.field_name(*b)));
        }
        marks.wide = wide.into_boxed_slice();
        marks
    }

    /// Where the node at a dotted field path (`spec.settings.observer`,
    /// `spec.endpoints[1].host`) was written, falling back to the deepest
    /// ancestor that exists: the same answer as [`Node::mark_of`] on the
    /// document this was made from.
    pub fn mark_of(&self, path: &str) -> Mark {
        let mut node = 0usize;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let (key, index) = match part.split_once('[') {
                Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            match self.field(node, key) {
                Some(next) => node = next,
                None => return self.mark(node),
            }
            if let Some(i) = index {
                match self.child(node, |k| matches!(k, Key::Item(n) if n as usize == i)) {
                    Some(next) => node = next,
                    None => return self.mark(node),
                }
            }
        }
        self.mark(node)
    }

    fn mark(&self, node: usize) -> Mark {
        self.entries.get(node).map(|e| e.mark).unwrap_or_default()
    }

    fn is_field(&self, key: Key, name: &str) -> bool {
        match key {
            Key::Field { start, len } => {
                let (start, len) = (start as usize, len as usize);
                self.keys.get(start..start + len) == Some(name)
            }
            Key::Item(_) | Key::Other => false,
        }
    }

    /// The first child of `node` under the string key `name`.
    fn field(&self, node: usize, name: &str) -> Option<usize> {
        let Ok(i) = self
            .wide
            .binary_search_by_key(&u32::try_from(node).ok()?, |(map, _)| *map)
        else {
            return self.child(node, |k| self.is_field(k, name));
        };
        let children = &self.wide[i].1;
        let at = children.partition_point(|c| self.field_name(*c) < name);
        children
            .get(at)
            .filter(|c| self.field_name(**c) == name)
            .map(|c| *c as usize)
    }

    /// The key text of an entry that hangs under a string key.
    fn field_name(&self, entry: u32) -> &str {
        match self.entries.get(entry as usize).map(|e| e.key) {
            Some(Key::Field { start, len }) => {
                let (start, len) = (start as usize, len as usize);
                self.keys.get(start..start + len).unwrap_or("")
            }
            _ => "",
        }
    }

    /// The first child of `node` whose key satisfies `wanted`. A node's
    /// subtree is the run of entries after it whose parents are at or
    /// after it (pre-order), so the scan stops where the subtree ends.
    fn child(&self, node: usize, wanted: impl Fn(Key) -> bool) -> Option<usize> {
        let rest = self.entries.get(node + 1..)?;
        for (offset, entry) in rest.iter().enumerate() {
            if entry.parent == NO_PARENT || (entry.parent as usize) < node {
                return None;
            }
            if entry.parent as usize == node && wanted(entry.key) {
                return Some(node + 1 + offset);
            }
        }
        None
    }
}

fn collect(
    node: &Node,
    parent: u32,
    key: Key,
    entries: &mut Vec<Entry>,
    keys: &mut String,
    wide: &mut Vec<(u32, Box<[u32]>)>,
) {
    let me = u32::try_from(entries.len()).unwrap_or(NO_PARENT);
    entries.push(Entry {
        parent,
        key,
        mark: node.mark,
    });
    match &node.value {
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let key = u32::try_from(i).map(Key::Item).unwrap_or(Key::Other);
                collect(item, me, key, entries, keys, wide);
            }
        }
        Value::Map(map) => {
            let mut fields = Vec::new();
            for (k, v) in map {
                let key = match &k.value {
                    Value::Str(s) => match (u32::try_from(keys.len()), u32::try_from(s.len())) {
                        (Ok(start), Ok(len)) => {
                            keys.push_str(s);
                            Key::Field { start, len }
                        }
                        _ => Key::Other,
                    },
                    _ => Key::Other,
                };
                if map.len() > WIDE && matches!(key, Key::Field { .. }) {
                    if let Ok(at) = u32::try_from(entries.len()) {
                        fields.push(at);
                    }
                }
                collect(v, me, key, entries, keys, wide);
            }
            if me != NO_PARENT && !fields.is_empty() {
                wide.push((me, fields.into_boxed_slice()));
            }
        }
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::parse_document;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(Value::Int),
            "[a-c]{0,2}".prop_map(Value::Str),
        ]
    }

    fn node_with(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Node> {
        (value, 1u32..50, 1u32..20).prop_map(|(value, line, column)| Node {
            value,
            mark: Mark { line, column },
        })
    }

    /// Trees with few distinct key names, so paths often hit, and some
    /// keys that are not strings, which `Node::get` never matches.
    fn tree() -> impl Strategy<Value = Node> {
        node_with(leaf()).prop_recursive(5, 48, 4, |inner| {
            let key = prop_oneof![
                4 => "[a-c]{1,2}".prop_map(Value::Str),
                1 => (0i64..3).prop_map(Value::Int),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Seq),
                prop::collection::vec((node_with(key), inner), 0..4).prop_map(Value::Map),
            ]
            .prop_flat_map(|v| node_with(Just(v)))
        })
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(("[a-c]{1,2}", prop::option::of(0usize..4)), 0..5).prop_map(|parts| {
            parts
                .into_iter()
                .map(|(k, i)| match i {
                    Some(i) => format!("{k}[{i}]"),
                    None => k,
                })
                .collect::<Vec<_>>()
                .join(".")
        })
    }

    proptest! {
        #[test]
        fn marks_answer_like_the_tree(root in tree(), paths in prop::collection::vec(path(), 1..16)) {
            let marks = Marks::of(&root);
            for p in paths.iter().map(String::as_str).chain(["", ".", "a..b", "a[x]", "a[1"]) {
                prop_assert_eq!(marks.mark_of(p), root.mark_of(p), "path {}", p);
            }
        }
    }

    /// Maps wide enough to be indexed, nested, with repeated keys (the
    /// first one answers) and keys that are not strings.
    fn wide_tree() -> impl Strategy<Value = Node> {
        let key = prop_oneof![
            6 => "[a-f]{1,2}".prop_map(Value::Str),
            1 => (0i64..3).prop_map(Value::Int),
        ];
        let flat = prop::collection::vec((node_with(key.clone()), node_with(leaf())), 0..60)
            .prop_map(Value::Map)
            .prop_flat_map(|v| node_with(Just(v)));
        prop::collection::vec((node_with(key), flat), 10..30)
            .prop_map(Value::Map)
            .prop_flat_map(|v| node_with(Just(v)))
    }

    proptest! {
        #[test]
        fn marks_of_wide_maps_answer_like_the_tree(root in wide_tree(), paths in prop::collection::vec("[a-f]{1,2}(\\.[a-f]{1,2})?", 1..40)) {
            let marks = Marks::of(&root);
            for p in &paths {
                prop_assert_eq!(marks.mark_of(p), root.mark_of(p), "path {}", p);
            }
        }
    }

    #[test]
    fn every_key_of_a_huge_map_is_found_quickly() {
        let mut text = String::from("spec:\n  settings:\n");
        for i in 0..50_000 {
            text.push_str(&format!("    k{i}: v\n"));
        }
        let root = parse_document(&text, 0).unwrap().unwrap();
        let marks = Marks::of(&root);
        let start = std::time::Instant::now();
        for i in 0..50_000u32 {
            let m = marks.mark_of(&format!("spec.settings.k{i}"));
            assert_eq!(
                (m.line, m.column),
                (i + 3, 8 + (i.to_string().len() as u32))
            );
        }
        // A scan per key took minutes; the index takes milliseconds.
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn marks_of_a_parsed_resource_match_its_tree() {
        let text = "apiVersion: v1\nkind: Listener\nmetadata:\n  name: x\n  labels: {a: b}\nspec:\n  port: 1\n  endpoints:\n  - host: a\n    port: 2\n  - {host: b}\n  settings:\n    1: one\n    observer: auto\n";
        let root = parse_document(text, 3).unwrap().unwrap();
        let marks = Marks::of(&root);
        for p in [
            "spec.port",
            "spec.host",
            "metadata.labels.a",
            "spec.endpoints[1].host",
            "spec.endpoints[0].port",
            "spec.endpoints[2].host",
            "spec.endpoints.host",
            "spec.port[0]",
            "spec.settings.1",
            "spec.settings.observer",
            "status",
            "",
        ] {
            assert_eq!(marks.mark_of(p), root.mark_of(p), "{p}");
        }
        assert_eq!(
            marks.mark_of("spec.port"),
            Mark {
                line: 10,
                column: 9
            }
        );
    }
}
