//! v1 Secrets (resources.md 6): the client certificate, key and remote CA
//! a Link names. Kept apart from the resources skupperd configures: a
//! Secret has no status and no runtime record (it holds a private key), and
//! it is only checked when something names it.

use super::Metadata;
use crate::input::de::from_node;
use crate::input::{Document, Mark, Marks, Node};
use crate::problem::Problem;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One Secret document as written.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretDoc {
    pub name: String,
    pub file: String,
    pub mark: Mark,
    pub marks: Marks,
    /// `type`; absent means Opaque.
    pub secret_type: Option<String>,
    /// `data`, still base64.
    pub data: BTreeMap<String, String>,
    pub string_data: BTreeMap<String, String>,
}

impl SecretDoc {
    /// A problem about this Secret with its place filled in.
    pub fn problem(&self, mut p: Problem, field: Option<&str>) -> Problem {
        let mark = field.map(|f| self.marks.mark_of(f)).unwrap_or(self.mark);
        p.file = Some(self.file.clone());
        p.line = Some(mark.line);
        p.column = Some(mark.column);
        p.kind = Some("Secret".to_string());
        p.name = Some(self.name.clone());
        p.field = field.map(str::to_string);
        p
    }

    /// The Secret's files (`tls.crt`, `tls.key`, `ca.crt`, ...): `data`
    /// decoded, with `stringData` merged over it as Kubernetes does. `Err`
    /// names the first key whose base64 is invalid.
    pub fn files(&self) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.data {
            match base64_decode(v) {
                Some(bytes) => {
                    out.insert(k.clone(), bytes);
                }
                None => return Err(k.clone()),
            }
        }
        for (k, v) in &self.string_data {
            out.insert(k.clone(), v.clone().into_bytes());
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // fields exist so that unknown ones are refused
struct SecretEnvelope {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(rename = "type")]
    secret_type: Option<String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    string_data: BTreeMap<String, String>,
    immutable: Option<IgnoredAny>,
}

/// Whether a document is a v1 Secret.
pub fn is_secret(doc: &Document) -> bool {
    doc.root.get("apiVersion").and_then(Node::as_str) == Some("v1")
        && doc.root.get("kind").and_then(Node::as_str) == Some("Secret")
}

/// Decodes a v1 Secret strictly; problems go to `problems`.
pub fn decode_secret(doc: &Document, problems: &mut Vec<Problem>) -> Option<SecretDoc> {
    let root = &doc.root;
    let at = |mut p: Problem, mark: Mark, field: Option<&str>| {
        p.file = Some(doc.file.clone());
        p.line = Some(mark.line);
        p.column = Some(mark.column);
        p.field = field.map(str::to_string);
        p
    };
    let name_node = root.get("metadata").and_then(|m| m.get("name"));
    let name = name_node.and_then(Node::as_str).unwrap_or("");
    if name_node.is_none() {
        problems.push(at(
            Problem::error("secret: metadata.name is required"),
            root.mark_of("metadata.name"),
            Some("metadata.name"),
        ));
        return None;
    }
    if !crate::names::is_cred_name(name) {
        let shown = name_node
            .map(|n| n.to_json().to_string())
            .unwrap_or_default();
        problems.push(at(
            Problem::error(format!(
                "secret {shown}: metadata.name {}",
                crate::names::CRED_RULE
            )),
            root.mark_of("metadata.name"),
            Some("metadata.name"),
        ));
        return None;
    }
    let env: SecretEnvelope = match from_node(root, "") {
        Ok(env) => env,
        Err(e) => {
            let mut p = at(Problem::error(e.to_string()), doc.mark, None);
            if let Some(m) = e.mark {
                p.line = Some(m.line);
                p.column = Some(m.column);
            }
            p.kind = Some("Secret".to_string());
            p.name = Some(name.to_string());
            p.field = (!e.path.is_empty()).then(|| e.path.clone());
            problems.push(p);
            return None;
        }
    };
    Some(SecretDoc {
        name: name.to_string(),
        file: doc.file.clone(),
        mark: doc.mark,
        marks: Marks::of(root),
        secret_type: env.secret_type,
        data: env.data,
        string_data: env.string_data,
    })
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Kubernetes writes Secret data.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; whitespace (line breaks of wrapped data) is
/// skipped, padding is optional. `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut padding = 0;
    for c in text.bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return None;
        }
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    // Leftover bits must be zero padding of the last group.
    if padding > 2 || bits >= 6 || (acc & ((1 << bits) - 1)) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_bad_text() {
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let text = base64_encode(input);
            assert_eq!(base64_decode(&text).as_deref(), Some(input));
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(
            base64_decode("Zm9v\nYmFy\n").as_deref(),
            Some(&b"foobar"[..])
        );
        assert_eq!(base64_decode("Zm8").as_deref(), Some(&b"fo"[..]));
        assert_eq!(base64_decode("not base64!"), None);
        assert_eq!(base64_decode("Zm=8"), None);
    }
}
