//! A fast path for the plain block-style YAML that nearly every input file
//! and every file skupperd wrote itself is made of.
//!
//! saphyr's event parser handles all of YAML and costs tens of
//! microseconds per small document; at ten thousand resources, read at
//! start and again at every restart, that is most of the time to ready.
//! This reader takes a line-oriented subset (block maps and sequences,
//! one-line plain and quoted scalars, `[]` and `{}`, full-line comments)
//! and builds the very same [`Node`] tree, positions included. On anything
//! else — flow collections with content, anchors, tags, block or
//! multi-line scalars, tabs, non-ASCII text, duplicate keys, deep nesting —
//! it answers `None` and the caller uses the general parser, which also
//! words every error; so this path never decides what a document means
//! when it is unsure.

use super::tree::{resolve_plain, Mark, Node, Value};

/// Deeper documents go to the general parser, which enforces the limit.
const MAX_SIMPLE_DEPTH: usize = 32;

/// The tree of `text` when it is within the subset, else `None`.
/// `line_offset` is added to every line, as in [`super::parse_document`].
pub(crate) fn parse_simple(text: &str, line_offset: u32) -> Option<Node> {
    // Tabs and carriage returns have rules of their own; other control
    // characters (a raw NUL, ESC, DEL) are not YAML text at all, which
    // only the general parser says.
    if !text.is_ascii() || text.bytes().any(|b| b.is_ascii_control() && b != b'\n') {
        return None;
    }
    let mut lines = Vec::new();
    for (no, raw) in text.split('\n').enumerate() {
        let body = raw.trim_start_matches(' ');
        if body.is_empty() {
            // Blank lines are nothing to YAML between block entries; one
            // made of spaces only would be, inside a scalar we never read.
            if raw.is_empty() {
                continue;
            }
            return None;
        }
        if body.starts_with('#') {
            continue;
        }
        if no == 0 && raw == "---" {
            continue;
        }
        if raw.starts_with("---") || raw.starts_with("...") || raw.starts_with('%') {
            return None;
        }
        if body.ends_with(' ') {
            return None;
        }
        lines.push(Line {
            no: u32::try_from(no).ok()?,
            indent: raw.len() - body.len(),
            body,
        });
    }
    let first = lines.first()?;
    if first.indent != 0 {
        return None;
    }
    let mut reader = Reader {
        lines,
        pos: 0,
        line_offset,
    };
    let root = reader.block(0, 0)?;
    (reader.pos == reader.lines.len()).then_some(root)
}

struct Line<'a> {
    /// 0-based line number in the text.
    no: u32,
    indent: usize,
    /// The line after its indentation; never empty, never ending in a space.
    body: &'a str,
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
    line_offset: u32,
}

impl<'a> Reader<'a> {
    fn mark(&self, line: usize, column: usize) -> Option<Mark> {
        let line = self.lines.get(line)?;
        Some(Mark {
            line: line.no + 1 + self.line_offset,
            column: u32::try_from(column).ok()? + 1,
        })
    }

    /// The block collection whose first line is the current one, at `indent`.
    fn block(&mut self, indent: usize, depth: usize) -> Option<Node> {
        if depth > MAX_SIMPLE_DEPTH {
            return None;
        }
        let line = self.lines.get(self.pos)?;
        if line.indent != indent {
            return None;
        }
        if is_entry(line.body) {
            self.seq(indent, depth)
        } else {
            self.map(indent, line.body, depth)
        }
    }

    /// A block sequence whose `- ` are at `indent`; it ends at the first
    /// line that is not one of its entries at that indent.
    fn seq(&mut self, indent: usize, depth: usize) -> Option<Node> {
        self.seq_marked(indent, indent, depth)
    }

    /// A sequence whose `- ` are at `indent` and whose position is column
    /// `at` of its first line: saphyr places a sequence that is not indented
    /// under its key after its first dash, not at it.
    fn seq_marked(&mut self, indent: usize, at: usize, depth: usize) -> Option<Node> {
        if depth > MAX_SIMPLE_DEPTH {
            return None;
        }
        let mark = self.mark(self.pos, at)?;
        let mut items = Vec::new();
        while let Some(line) = self.lines.get(self.pos) {
            if line.indent > indent {
                return None;
            }
            if line.indent < indent || !is_entry(line.body) {
                break;
            }
            if line.body == "-" {
                // The item is the block on the following lines.
                self.pos += 1;
                let next = self.lines.get(self.pos)?;
                if next.indent <= indent {
                    return None;
                }
                items.push(self.block(next.indent, depth + 1)?);
                continue;
            }
            let rest = line.body.get(2..)?;
            let col = indent + 2;
            if rest.starts_with([' ', '-']) {
                return None;
            }
            let (value, used) = token(rest)?;
            let after = rest.get(used..)?;
            if after.is_empty() {
                items.push(Node {
                    value,
                    mark: self.mark(self.pos, col)?,
                });
                self.pos += 1;
            } else if after.starts_with(':') {
                // `- key: value`: a map whose first entry shares the dash
                // line, the rest aligned under it.
                items.push(self.map(col, rest, depth + 1)?);
            } else {
                return None;
            }
        }
        Some(Node {
            value: Value::Seq(items),
            mark,
        })
    }

    /// A block map whose keys are at column `indent`; `body` is the text
    /// from its first key on (on the current line).
    fn map(&mut self, indent: usize, mut body: &'a str, depth: usize) -> Option<Node> {
        if depth > MAX_SIMPLE_DEPTH {
            return None;
        }
        let mark = self.mark(self.pos, indent)?;
        let mut entries: Vec<(Node, Node)> = Vec::new();
        let mut keys = super::tree::KeySet::default();
        loop {
            let (key, used) = token(body)?;
            let key = Node {
                value: key,
                mark: self.mark(self.pos, indent)?,
            };
            let after = body.get(used..)?.strip_prefix(':')?;
            let value = if after.is_empty() {
                // The value is the block on the following lines: deeper, or
                // a sequence at the key's own indent (as kubectl writes).
                self.pos += 1;
                let next = self.lines.get(self.pos)?;
                if next.indent > indent {
                    self.block(next.indent, depth + 1)?
                } else if next.indent == indent && is_entry(next.body) {
                    // After the dash and the spaces that follow it.
                    let at = if next.body == "-" {
                        indent + 1
                    } else {
                        indent + 2
                    };
                    self.seq_marked(indent, at, depth + 1)?
                } else {
                    return None;
                }
            } else {
                let text = after.strip_prefix(' ')?;
                if text.starts_with(' ') {
                    return None;
                }
                let col = indent + used + 2;
                let value = match text {
                    "[]" => Value::Seq(Vec::new()),
                    "{}" => Value::Map(Vec::new()),
                    _ => {
                        let (value, used) = token(text)?;
                        if used != text.len() {
                            return None;
                        }
                        value
                    }
                };
                let node = Node {
                    value,
                    mark: self.mark(self.pos, col)?,
                };
                self.pos += 1;
                node
            };
            // The general parser words the duplicate-key error.
            if keys.insert(&key.value, entries.len(), &entries).is_err() {
                return None;
            }
            entries.push((key, value));
            let Some(line) = self.lines.get(self.pos) else {
                break;
            };
            if line.indent < indent {
                break;
            }
            if line.indent > indent || is_entry(line.body) {
                return None;
            }
            body = line.body;
        }
        Some(Node {
            value: Value::Map(entries),
            mark,
        })
    }
}

fn is_entry(body: &str) -> bool {
    body.starts_with("- ") || body == "-"
}

/// One scalar at the start of `text`: its value and its length in bytes.
/// Plain scalars end at `:` followed by a space or the end; anything a
/// plain scalar could mean beyond one simple line is refused.
fn token(text: &str) -> Option<(Value, usize)> {
    let bytes = text.as_bytes();
    match bytes.first()? {
        b'"' => double_quoted(text),
        b'\'' => single_quoted(text),
        b'-' if bytes.get(1).is_some_and(|b| *b != b' ') => plain(text),
        b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
        | b'|' | b'>' | b'%' | b'@' | b'`' => None,
        _ => plain(text),
    }
}

fn plain(text: &str) -> Option<(Value, usize)> {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b':' if bytes.get(i + 1).is_none_or(|n| *n == b' ') => {
                end = i;
                break;
            }
            b'#' | b'[' | b']' | b'{' | b'}' => return None,
            _ => {}
        }
    }
    let body = text.get(..end)?;
    if body.is_empty() || body.ends_with(' ') {
        return None;
    }
    Some((resolve_plain(body), end))
}

fn single_quoted(text: &str) -> Option<(Value, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some((Value::Str(out), i + 1));
            }
        } else {
            out.push(c);
        }
    }
    None
}

fn double_quoted(text: &str) -> Option<(Value, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((Value::Str(out), i + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    '0' => '\0',
                    'u' => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            let (_, h) = chars.next()?;
                            code = code * 16 + h.to_digit(16)?;
                        }
                        char::from_u32(code)?
                    }
                    _ => return None,
                });
            }
            _ => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tree::parse_general;
    use proptest::prelude::*;

    /// What the general parser makes of `text`: `Some` tree or `None`
    /// for an error or an empty document.
    fn general(text: &str) -> Option<Node> {
        parse_general(text, 3).ok().flatten()
    }

    /// Asserts the fast path is either silent or right.
    fn agrees(text: &str) -> Result<bool, TestCaseError> {
        match parse_simple(text, 3) {
            None => Ok(false),
            Some(fast) => {
                prop_assert_eq!(Some(fast), general(text), "text:\n{}", text);
                Ok(true)
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Doc {
        Scalar(String),
        Seq(Vec<Doc>),
        Map(Vec<(String, Doc)>),
    }

    /// Mostly what files hold, sometimes something only YAML's corners
    /// know what to do with.
    fn scalar_text() -> impl Strategy<Value = String> {
        prop_oneof![
            10 => "[a-z][a-z0-9.-]{0,6}",
            4 => "-?[0-9]{1,4}(\\.[0-9]{1,2})?",
            3 => tricky_text(),
        ]
    }

    fn tricky_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("0x1F".to_string()),
            Just("1e5".to_string()),
            Just("~".to_string()),
            Just("null".to_string()),
            Just("true".to_string()),
            Just("yes".to_string()),
            Just("::1".to_string()),
            Just("a:b".to_string()),
            Just("a: b".to_string()),
            Just("http://x:80/y".to_string()),
            Just("a #b".to_string()),
            Just("a#b".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just("[a, b]".to_string()),
            Just("{a: b}".to_string()),
            Just("-".to_string()),
            Just("- a".to_string()),
            Just("---".to_string()),
            Just("&x a".to_string()),
            Just("!!str 1".to_string()),
            Just("\"8080\"".to_string()),
            Just("\"a\\\"b\\\\c\\n\\u0001\\b\\f\\t\\r\"".to_string()),
            Just("\"a\\/b\"".to_string()),
            Just("\"a\\0b\"".to_string()),
            Just("\"a\\x41\"".to_string()),
            Just("'it''s'".to_string()),
            Just("'a\"b'".to_string()),
            Just("\"unclosed".to_string()),
            Just("'unclosed".to_string()),
            Just("a  b".to_string()),
            Just("? a".to_string()),
            Just("|".to_string()),
            Just("*a".to_string()),
            Just("%a".to_string()),
            Just("@a".to_string()),
        ]
    }

    fn key_text() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[a-d]{1,2}",
            1 => Just("\"q\"".to_string()),
            1 => Just("'s'".to_string()),
            1 => Just("1".to_string()),
            1 => Just("null".to_string()),
            1 => Just("a b".to_string()),
            1 => Just("skupperd.io/x-y".to_string()),
        ]
    }

    fn doc() -> impl Strategy<Value = Doc> {
        scalar_text()
            .prop_map(Doc::Scalar)
            .prop_recursive(4, 40, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Doc::Seq),
                    prop::collection::vec((key_text(), inner), 0..4).prop_map(Doc::Map),
                ]
            })
    }

    /// Writes `doc` as block YAML, choosing among the layouts people and
    /// tools use by `style` bits.
    fn emit(doc: &Doc, out: &mut String, indent: usize, style: &mut impl Iterator<Item = bool>) {
        match doc {
            Doc::Map(entries) if !entries.is_empty() => {
                for (k, v) in entries {
                    if style.next().unwrap_or(false) {
                        out.push_str(&format!("{:indent$}# note\n", ""));
                    }
                    out.push_str(&format!("{:indent$}{k}:", ""));
                    emit_value(v, out, indent, style);
                }
            }
            Doc::Seq(items) if !items.is_empty() => {
                for item in items {
                    out.push_str(&format!("{:indent$}-", ""));
                    emit_item(item, out, indent, style);
                }
            }
            Doc::Map(_) => out.push_str("{}\n"),
            Doc::Seq(_) => out.push_str("[]\n"),
            Doc::Scalar(s) => out.push_str(&format!("{s}\n")),
        }
    }

    fn emit_value(
        v: &Doc,
        out: &mut String,
        indent: usize,
        style: &mut impl Iterator<Item = bool>,
    ) {
        match v {
            Doc::Map(e) if !e.is_empty() => {
                out.push('\n');
                let deeper = if style.next().unwrap_or(false) { 4 } else { 2 };
                emit(v, out, indent + deeper, style);
            }
            Doc::Seq(items) if !items.is_empty() => {
                out.push('\n');
                let same = style.next().unwrap_or(false);
                emit(v, out, if same { indent } else { indent + 2 }, style);
            }
            Doc::Map(_) => out.push_str(" {}\n"),
            Doc::Seq(_) => out.push_str(" []\n"),
            Doc::Scalar(s) => out.push_str(&format!(" {s}\n")),
        }
    }

    fn emit_item(v: &Doc, out: &mut String, indent: usize, style: &mut impl Iterator<Item = bool>) {
        match v {
            Doc::Map(entries) if !entries.is_empty() => {
                let mut first = true;
                for (k, val) in entries {
                    if first {
                        out.push_str(&format!(" {k}:"));
                        first = false;
                    } else {
                        out.push_str(&format!("{:w$}{k}:", "", w = indent + 2));
                    }
                    emit_value(val, out, indent + 2, style);
                }
            }
            Doc::Seq(items) if !items.is_empty() => {
                out.push('\n');
                emit(v, out, indent + 2, style);
            }
            other => emit_value(other, out, indent, style),
        }
    }

    fn text_of(doc: &Doc, style: &[bool], header: bool) -> String {
        let mut out = String::new();
        if header {
            out.push_str("---\n# header\n\n");
        }
        emit(doc, &mut out, 0, &mut style.iter().copied().cycle());
        out
    }

    /// Random block documents in the layouts people and tools write, half
    /// of them with one edit that may take them out of the subset or out of
    /// YAML: whenever the fast path answers, the general parser agrees.
    /// The run fails too if the fast path answered too rarely to mean much.
    #[test]
    fn the_fast_path_builds_the_general_tree_or_declines() {
        use proptest::test_runner::{Config, TestRunner};
        let edits = prop::sample::select(vec![
            " ", "  ", "\t", "#", ":", ": ", "- ", "-", "'", "\"", "\n", "\n  ", "&a ", "*a", "[",
            "{", "\\", "é", "\r",
        ]);
        let case = (
            doc(),
            prop::collection::vec(any::<bool>(), 1..8),
            any::<bool>(),
            prop::option::of((any::<prop::sample::Index>(), edits)),
        );
        let accepted = std::cell::Cell::new(0usize);
        let mut runner = TestRunner::new(Config {
            cases: 6000,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&case, |(d, style, header, edit)| {
                let mut text = text_of(&d, &style, header);
                if let Some((at, what)) = edit {
                    let mut i = at.index(text.len() + 1);
                    while !text.is_char_boundary(i) {
                        i -= 1;
                    }
                    text.insert_str(i, what);
                }
                if agrees(&text)? {
                    accepted.set(accepted.get() + 1);
                }
                Ok(())
            })
            .unwrap();
        assert!(accepted.get() > 1200, "only {} accepted", accepted.get());
    }

    /// Our own emitter's output always takes the fast path, and reads back
    /// the same as through the general parser.
    #[test]
    fn emitted_files_take_the_fast_path() {
        use serde_json::json;
        let docs = [
            json!({
                "apiVersion": "skupper.io/v2alpha1",
                "kind": "Listener",
                "metadata": {"name": "l1", "namespace": "west", "generation": 3,
                    "labels": {"app": "x", "a b": "yes"},
                    "annotations": {"skupperd.io/input-sha256": "ab12", "skupperd.io/accepted-generation": "3"}},
                "spec": {"host": "0.0.0.0", "port": 8080, "settings": {}},
                "status": {"status": "Ready", "message": "it's \"ok\": fine\n\u{1}", "hasMatchingConnector": false,
                    "conditions": [
                        {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-11-26T10:00:01Z", "observedGeneration": 3},
                        {"type": "Matched", "status": "False", "reason": "Pending", "message": "no connector", "lastTransitionTime": "2026-11-26T10:00:01Z", "observedGeneration": 3}
                    ],
                    "empty": [], "nested": [["a", {"b": [1, 2]}], {"c": null}], "f": 1.5, "neg": -7}
            }),
            json!({"siteId": "0b3c-11", "managementPort": 5672}),
        ];
        for value in docs {
            let text = crate::render::yaml::to_yaml(&value);
            let fast = parse_simple(&text, 0).unwrap_or_else(|| panic!("declined:\n{text}"));
            assert_eq!(
                Some(fast.clone()),
                parse_general(&text, 0).unwrap(),
                "{text}"
            );
            assert_eq!(fast.to_json(), value);
        }
    }

    #[test]
    fn a_typical_input_file_takes_the_fast_path_with_positions() {
        let text = "# backend\napiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: backend\n\nspec:\n  host: 0.0.0.0\n  port: 8080\n";
        let n = parse_simple(text, 0).unwrap();
        assert_eq!(n.mark_of("spec.port"), Mark { line: 9, column: 9 });
        assert_eq!(Some(n), parse_general(text, 0).unwrap());
    }

    #[test]
    fn what_only_the_general_parser_can_word_is_left_to_it() {
        for text in [
            "a: 1\na: 2\n",
            "a: [1, 2]\n",
            "a: &x 1\nb: *x\n",
            "a: |\n  text\n",
            "a: b\n  c\n",
            "a:\n",
            "a:\tb\n",
            "a: b # note\n",
            "a: b\0c\n",
            "a: \"b\x1bc\"\n",
            "a: b\x7f\n",
        ] {
            assert_eq!(parse_simple(text, 0), None, "{text}");
        }
    }
}
