//! The file-system edge of one namespace: reading its input, bundles and
//! owned runtime files, and applying an outcome with atomic writes.
//!
//! Only the namespace's single writer (the `render` command, or the
//! namespace actor of the daemon) calls `apply`. Every write is a temporary
//! file in the same directory, fsync, rename, then fsync of the directory,
//! so no reader sees a torn file; unchanged files are never rewritten.

use crate::input::{is_input_file_name, parse_file, ParsedFile, MAX_FILE_BYTES};
use crate::plan::{is_owned, Outcome, Platform};
use crate::validate::{FileRefusal, InputBundle};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every input file below `input/resources/`, relative to the namespace
/// directory, in a stable order.
pub fn list_input_files(ns_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    walk(&ns_dir.join("input/resources"), &mut |path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_input_file_name(name) {
            if let Ok(rel) = path.strip_prefix(ns_dir) {
                out.push((rel.to_string_lossy().into_owned(), path.to_path_buf()));
            }
        }
    });
    out.sort();
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        match entry.file_type() {
            Ok(t) if t.is_dir() && !hidden => walk(&path, f),
            Ok(t) if t.is_file() || t.is_symlink() => f(&path),
            _ => {}
        }
    }
}

/// Reads and parses one input file; an unreadable file is a problem of
/// that file, never of the namespace.
pub fn read_input_file(rel: &str, path: &Path) -> ParsedFile {
    match read_limited(path) {
        Ok(bytes) => parse_file(rel, &bytes),
        Err(e) => {
            let mut p = crate::problem::Problem::error(format!("{rel} cannot be read: {e}"));
            p.file = Some(rel.to_string());
            ParsedFile {
                documents: Vec::new(),
                problems: vec![p],
            }
        }
    }
}

fn read_limited(path: &Path) -> io::Result<Vec<u8>> {
    let meta = fs::metadata(path)?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        // parse_file reports the size; hand it something of that size only
        // in length, not in memory.
        return Ok(vec![b'#'; MAX_FILE_BYTES + 1]);
    }
    fs::read(path)
}

/// `input/certs/<name>/` bundles, with symbolic links that leave the
/// namespace refused.
pub fn read_bundles(ns_dir: &Path) -> BTreeMap<String, InputBundle> {
    let mut out = BTreeMap::new();
    let root = fs::canonicalize(ns_dir).unwrap_or_else(|_| ns_dir.to_path_buf());
    let Ok(entries) = fs::read_dir(ns_dir.join("input/certs")) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let mut bundle = InputBundle::default();
        for file in ["tls.crt", "tls.key", "ca.crt"] {
            let path = entry.path().join(file);
            let Ok(link_meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let result = if link_meta.file_type().is_symlink()
                && !fs::canonicalize(&path)
                    .map(|t| t.starts_with(&root))
                    .unwrap_or(false)
            {
                Err(FileRefusal::SymlinkLeavesNamespace)
            } else {
                match fs::metadata(&path) {
                    Ok(m) if m.len() > MAX_FILE_BYTES as u64 => Err(FileRefusal::TooLarge),
                    Ok(m) => fs::read(&path)
                        .map(|bytes| crate::certs::FileBytes {
                            bytes,
                            mode: m.mode() & 0o777,
                        })
                        .map_err(|e| FileRefusal::Unreadable(e.to_string())),
                    Err(e) => Err(FileRefusal::Unreadable(e.to_string())),
                }
            };
            bundle.files.insert(file.to_string(), result);
        }
        out.insert(name, bundle);
    }
    out
}

/// The namespace's platform from `internal/platform.yaml`, or `default`.
pub fn read_platform(ns_dir: &Path, default: Platform) -> Result<Platform, String> {
    let Ok(text) = fs::read_to_string(ns_dir.join("internal/platform.yaml")) else {
        return Ok(default);
    };
    let value = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("platform:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .next()
        .unwrap_or_default();
    Platform::parse(&value).ok_or_else(|| {
        format!("internal/platform.yaml: platform \"{value}\" is not one of linux, podman, docker")
    })
}

/// Every runtime file skupperd owns, by path relative to the namespace.
pub fn read_runtime(ns_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(&ns_dir.join("runtime"), &mut |path| {
        if let Ok(rel) = path.strip_prefix(ns_dir) {
            let rel = rel.to_string_lossy().into_owned();
            if is_owned(&rel) {
                if let Ok(bytes) = fs::read(path) {
                    out.insert(rel, bytes);
                }
            }
        }
    });
    out
}

/// Directory mode for a runtime path: key material is private.
fn dir_mode(rel_dir: &str) -> u32 {
    if rel_dir.starts_with("runtime/certs")
        || rel_dir.starts_with("runtime/issuers")
        || rel_dir.starts_with("runtime/links")
    {
        0o700
    } else {
        0o755
    }
}

fn ensure_dir(ns_dir: &Path, rel_dir: &Path) -> Result<(), StoreError> {
    let mut current = ns_dir.to_path_buf();
    for part in rel_dir.components() {
        current.push(part);
        if !current.is_dir() {
            fs::create_dir(&current).map_err(io_at(&current))?;
            let rel = current
                .strip_prefix(ns_dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            fs::set_permissions(&current, fs::Permissions::from_mode(dir_mode(&rel)))
                .map_err(io_at(&current))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.skupperd-tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_at(&tmp))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_at(&tmp))?;
    f.write_all(bytes).map_err(io_at(&tmp))?;
    f.sync_all().map_err(io_at(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_at(path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Applies an outcome: changed files written, orphans removed, empty
/// directories they leave behind removed too.
pub fn apply(ns_dir: &Path, outcome: &Outcome) -> Result<(), StoreError> {
    for (rel, file) in &outcome.writes {
        let rel_path = Path::new(rel);
        if let Some(parent) = rel_path.parent() {
            ensure_dir(ns_dir, parent)?;
        }
        write_atomic(&ns_dir.join(rel_path), &file.bytes, file.mode)?;
    }
    for rel in &outcome.deletes {
        let path = ns_dir.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
        // Directories that only held what skupperd wrote go with it.
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == ns_dir.join("runtime") || !d.starts_with(ns_dir.join("runtime")) {
                break;
            }
            if fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    Ok(())
}
