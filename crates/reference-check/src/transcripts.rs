//! The recorded real-router exchanges (`router-transcripts/NN-*.json`),
//! loaded for the tests that decode them and replay them.

use serde_json::Value as Json;

use crate::{reference_dir, LoadError};

/// One recorded file.
pub struct Transcript {
    /// `NN-name.json`.
    pub file: String,
    pub doc: Json,
}

impl Transcript {
    /// `NN` of the file name.
    pub fn number(&self) -> u32 {
        self.file
            .get(..2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX)
    }

    pub fn messages(&self) -> Vec<&Json> {
        self.doc["messages"]
            .as_array()
            .map(|m| m.iter().collect())
            .unwrap_or_default()
    }

    /// The messages in one direction (`client->router`, `router->client`),
    /// in order.
    pub fn messages_from(&self, dir: &str) -> Vec<&Json> {
        self.messages()
            .into_iter()
            .filter(|m| m["dir"] == dir)
            .collect()
    }
}

/// Every `NN-*.json` of the transcripts, in order.
pub fn load_all() -> Result<Vec<Transcript>, LoadError> {
    let dir = reference_dir().join("router-transcripts");
    let read_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Read { path, source }
    };
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(read_err(&dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n.as_bytes().first().is_some_and(u8::is_ascii_digit))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let path = dir.join(&file);
            let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
            let doc = serde_json::from_str(&text).map_err(|source| LoadError::Json {
                origin: file.clone(),
                source,
            })?;
            Ok(Transcript { file, doc })
        })
        .collect()
}

/// Bytes from the transcripts' hex strings (`None` for anything else).
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// A message's payload: its sections' bytes, which are contiguous.
pub fn payload(message: &Json) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for section in message["sections"].as_array()? {
        out.extend(unhex(section["hex"].as_str()?)?);
    }
    Some(out)
}
