//! Input files to positioned YAML documents.
//!
//! A file may hold several documents; each is parsed on its own, so a
//! syntax error in one does not hide the others (DESIGN.md 2). Pure: the
//! shell hands in bytes, and caches the result per file by inode, size and
//! times.

pub mod de;
pub mod marks;
pub mod par;
pub(crate) mod simple;
pub mod tree;

use crate::problem::Problem;
pub use marks::Marks;
pub use tree::{Mark, Node, Value};

/// Parses one YAML document (the caller splits multi-document files) into a
/// tree. `None` is an empty document. `line_offset` is added to every line so
/// positions refer to the whole file. Plain block YAML goes through the fast
/// reader (`simple`), which gives the same tree; everything else through
/// saphyr (`tree`).
pub fn parse_document(text: &str, line_offset: u32) -> Result<Option<Node>, tree::TreeError> {
    if let Some(root) = simple::parse_simple(text, line_offset) {
        return Ok(Some(root));
    }
    tree::parse_general(text, line_offset)
}

/// Files larger than this are refused (DESIGN.md 2).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// One non-empty document of an input file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Path relative to the namespace directory.
    pub file: String,
    /// Where the document's content starts.
    pub mark: Mark,
    pub root: Node,
}

/// The documents of one file and the problems that kept others out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedFile {
    pub documents: Vec<Document>,
    pub problems: Vec<Problem>,
}

/// Whether a path below `input/resources/` is read at all: `.yaml`, `.yml`
/// and `.json`, and never hidden or editor files.
pub fn is_input_file_name(name: &str) -> bool {
    !name.starts_with('.')
        && (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json"))
}

/// A file of `len` bytes, over [`MAX_FILE_BYTES`]: refused unread.
pub fn too_large(file: &str, len: u64) -> ParsedFile {
    ParsedFile {
        documents: Vec::new(),
        problems: vec![file_problem(
            file,
            None,
            format!("{file} is {len} bytes; files over 1 MiB are refused"),
        )],
    }
}

/// Parses every document of one file. `file` is used in messages only.
pub fn parse_file(file: &str, bytes: &[u8]) -> ParsedFile {
    if bytes.len() > MAX_FILE_BYTES {
        return too_large(file, bytes.len() as u64);
    }
    let mut out = ParsedFile::default();
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            out.problems.push(file_problem(
                file,
                None,
                format!(
                    "{file} is not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            ));
            return out;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (line_offset, chunk) in split_documents(text) {
        match parse_document(chunk, line_offset) {
            Ok(Some(root)) => out.documents.push(Document {
                file: file.to_string(),
                mark: root.mark,
                root,
            }),
            Ok(None) => {}
            Err(e) => {
                let mut p = file_problem(file, Some(e.mark), e.to_string());
                if !e.path.is_empty() {
                    p.field = Some(e.path.clone());
                }
                out.problems.push(p);
            }
        }
    }
    out
}

fn file_problem(file: &str, mark: Option<Mark>, message: String) -> Problem {
    let mut p = Problem::error(message);
    p.file = Some(file.to_string());
    if let Some(m) = mark {
        p.line = Some(m.line);
        p.column = Some(m.column);
    }
    p
}

/// Splits a YAML stream at document start markers, and after document
/// end markers. A `---` or `...` at column 0 always begins or ends a
/// document (neither can occur inside content), so the split is exact.
/// Returns each chunk with the number of lines before it. Directive-only
/// chunks (`%YAML 1.2`, which may only follow a `...`) are joined to the
/// document they introduce.
fn split_documents(text: &str) -> Vec<(u32, &str)> {
    // Each start with the number of lines before it, counted on the way:
    // counting them again per document made a file of many small
    // documents take time quadratic in its length.
    let mut starts = vec![(0usize, 0u32)];
    let mut offset = 0usize;
    let mut after_end = false;
    for (line_number, line) in text.split_inclusive('\n').enumerate() {
        if offset > 0 && (after_end || is_document_marker(line)) {
            starts.push((offset, u32::try_from(line_number).unwrap_or(u32::MAX)));
        }
        after_end = is_document_end(line);
        offset += line.len();
    }
    let mut chunks = Vec::new();
    let mut pending_start: Option<(usize, u32)> = None;
    for (i, &(start, line)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |s| s.0);
        let (from, line_offset) = pending_start.take().unwrap_or((start, line));
        let chunk = &text[start..end];
        if is_directives_only(chunk) && i + 1 < starts.len() {
            pending_start = Some((from, line_offset));
            continue;
        }
        chunks.push((line_offset, &text[from..end]));
    }
    chunks
}

fn is_document_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .map(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
        .unwrap_or(false)
}

fn is_document_end(line: &str) -> bool {
    line.strip_prefix("...").is_some_and(|rest| {
        let rest = rest.trim_start_matches([' ', '\t']);
        rest.is_empty() || rest.starts_with(['#', '\r', '\n'])
    })
}

fn is_directives_only(chunk: &str) -> bool {
    let mut any_directive = false;
    for line in chunk.lines() {
        let t = line.trim();
        if t.starts_with('%') {
            any_directive = true;
        } else if !(t.is_empty() || t.starts_with('#')) {
            return false;
        }
    }
    any_directive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bad_document_does_not_hide_the_others() {
        let text = "kind: A\n---\nkind: [unclosed\n---\nkind: C\n";
        let parsed = parse_file("input/resources/x.yaml", text.as_bytes());
        let kinds: Vec<_> = parsed
            .documents
            .iter()
            .map(|d| {
                d.root
                    .get("kind")
                    .and_then(Node::as_str)
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(kinds, ["A", "C"]);
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].line, Some(4));
        assert_eq!(parsed.documents[1].mark.line, 5);
    }

    #[test]
    fn trailing_and_empty_documents_are_skipped() {
        let parsed = parse_file("f.yaml", b"---\nkind: A\n---\n---\n# nothing\n");
        assert_eq!(parsed.documents.len(), 1);
        assert!(parsed.problems.is_empty());
    }

    #[test]
    fn directives_stay_with_their_document() {
        let parsed = parse_file("f.yaml", b"%YAML 1.2\n---\nkind: A\n");
        assert_eq!(parsed.documents.len(), 1);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        // A directive after a document's end introduces the next one.
        let text = "%YAML 1.1\n---\nkind: A\n...\n%YAML 1.2\n---\nkind: B\n... # end\nkind: C\n";
        let parsed = parse_file("f.yaml", text.as_bytes());
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let found: Vec<_> = parsed
            .documents
            .iter()
            .map(|d| {
                (
                    d.root.get("kind").and_then(Node::as_str).unwrap(),
                    d.mark.line,
                )
            })
            .collect();
        assert_eq!(found, [("A", 3), ("B", 7), ("C", 9)]);
    }

    #[test]
    fn big_and_binary_files_are_refused() {
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        assert!(parse_file("f.yaml", &big).problems[0]
            .message
            .contains("over 1 MiB"));
        assert!(parse_file("f.yaml", &[0xff, 0xfe, 0x00]).problems[0]
            .message
            .contains("not UTF-8"));
    }

    #[test]
    fn editor_files_are_not_input() {
        for name in ["a.yaml", "b.yml", "c.json"] {
            assert!(is_input_file_name(name));
        }
        for name in [
            ".a.yaml",
            "a.yaml~",
            "a.yaml.swp",
            "a.bak",
            "a.tmp",
            "a.yaml.rpmnew",
        ] {
            assert!(!is_input_file_name(name), "{name}");
        }
    }
}
