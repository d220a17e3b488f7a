//! The directories the watcher arms, read from the file system.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Identity of a directory: a re-created directory has a new inode.
pub(super) type DirId = (u64, u64);

/// The identity of the directory at `path` (symbolic links followed).
pub(super) fn dir_id(path: &Path) -> Option<DirId> {
    let meta = path.metadata().ok().filter(|m| m.is_dir())?;
    Some((meta.dev(), meta.ino()))
}

/// Namespace directories: entries of `namespaces/` that are directories
/// (symlinks followed) with UTF-8 names not starting with a dot. A missing
/// `namespaces/` has none; one that exists but cannot be read is an error.
pub(super) fn list_namespaces(nsd: &Path) -> std::io::Result<BTreeMap<String, DirId>> {
    let entries = match std::fs::read_dir(nsd) {
        Ok(entries) => entries,
        Err(_) if dir_id(nsd).is_none() => return Ok(BTreeMap::new()),
        Err(err) => return Err(err),
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let meta = entry.path().metadata().ok().filter(|m| m.is_dir())?;
            (!name.starts_with('.')).then(|| (name, (meta.dev(), meta.ino())))
        })
        .collect())
}

/// Real subdirectories (symlinks not followed). A directory gone since it
/// was armed has none (its removal is reported); one that cannot be read
/// is an error.
pub(super) fn subdirectories(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(_) if dir_id(dir).is_none() => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}
