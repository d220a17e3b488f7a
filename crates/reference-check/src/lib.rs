//! Ground-truth validators for what skupperd writes.
//!
//! skupperd's tests (and the router double) use this crate to prove that the
//! files and management requests skupperd produces would be accepted by the
//! real skupper-router and by Skupper's own tools. Nothing here is a copy of
//! the reference data: both validators read the upstream files at run time
//! from the reference directory ([`reference_dir`]).
//!
//! # Layout
//!
//! - [`router_schema`]: skupper-router's management schema
//!   (`skrouter-schema.json`). Validates one CREATE or UPDATE the way the
//!   router's Python agent does, with the router's own error texts and status
//!   codes, and checks a whole `skrouterd.json` the way the router's config
//!   loader does.
//! - [`crd`]: Skupper's v2alpha1 CustomResourceDefinitions (`crds/*.yaml`).
//!   Validates a resource document against the matching `openAPIV3Schema`,
//!   treating every object as closed.
#![forbid(unsafe_code)]

pub mod crd;
pub mod router_schema;
pub mod transcripts;

pub use crd::Crds;
pub use router_schema::{Refusal, RouterSchema};

use std::path::PathBuf;

/// The environment variable that names the reference directory.
pub const REFERENCE_DIR_ENV: &str = "SKUPPERD_REFERENCE_DIR";

/// The reference directory: `SKUPPERD_REFERENCE_DIR` when it is set and not
/// empty, else `<workspace root>/../shared/reference`.
///
/// There is no fallback beyond that: if the directory is missing, loading
/// from it fails with a [`LoadError`] naming the path, so a test that needs
/// the reference fails instead of silently skipping.
pub fn reference_dir() -> PathBuf {
    match std::env::var_os(REFERENCE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        // This crate lives in `<workspace root>/crates/reference-check`.
        _ => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/reference"
        )),
    }
}

/// Why a reference file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file or directory could not be read (usually: the reference
    /// directory is not where [`reference_dir`] points).
    #[error("cannot read {path}: {source} (set {REFERENCE_DIR_ENV} to the reference directory)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid JSON, or not shaped like a router schema.
    #[error("{origin}: {source}")]
    Json {
        origin: String,
        source: serde_json::Error,
    },
    /// The file is not valid YAML.
    #[error("{origin}: {source}")]
    Yaml {
        origin: String,
        source: yaml_serde::Error,
    },
    /// The file parsed but uses something this crate does not understand.
    /// Failing here, rather than ignoring it, keeps the validators honest
    /// when the upstream files change.
    #[error("{origin}: {message}")]
    Unsupported { origin: String, message: String },
}
