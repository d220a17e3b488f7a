//! Publishing an outcome: changed files staged, made durable and renamed
//! into place; orphans removed with the directories they leave empty.

use super::stage::{first_missing, temp_path, write_new, Staged};
use super::sync::{
    sync_file_systems, with_early_sync, Durability, EARLY_SYNC_FROM, FSYNC_EACH_UP_TO,
};
use super::{io_at, StoreError};
use crate::plan::{OutFile, Outcome};
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically with `mode`: a temporary file in
/// the same directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut staged = Staged::new(Path::new(""), vec![path], Vec::new());
    write_new(&temp_path(path), bytes, mode, Durability::EachFile)?;
    staged.publish()
}

/// Applies an outcome: changed files written, orphans removed, empty
/// directories they leave behind removed too.
///
/// Every changed file is first written under its temporary name, then all
/// are made durable together, then renamed into place, then each directory
/// that received a rename is fsynced once; deletes come last. A crash
/// leaves every file either old or new, never torn.
pub fn apply(ns_dir: &Path, outcome: &Outcome) -> Result<(), StoreError> {
    let durability = if outcome.writes.len() <= FSYNC_EACH_UP_TO {
        Durability::EachFile
    } else {
        Durability::SyncFs
    };
    apply_with(ns_dir, outcome, durability)
}

pub(super) fn apply_with(
    ns_dir: &Path,
    outcome: &Outcome,
    mut durability: Durability,
) -> Result<(), StoreError> {
    if !outcome.writes.is_empty() {
        let dirs: BTreeSet<&Path> = outcome
            .writes
            .keys()
            .filter_map(|rel| Path::new(rel).parent())
            .collect();
        let roots: BTreeSet<&Path> = dirs
            .iter()
            .filter_map(|d| first_missing(ns_dir, d))
            .collect();
        // A new directory is durable only once its parent is; the syncfs
        // covers that, an fsync of the file would not.
        if !roots.is_empty() {
            durability = Durability::SyncFs;
        }
        let writes: Vec<(&str, &OutFile)> = outcome
            .writes
            .iter()
            .map(|(rel, file)| (rel.as_str(), file))
            .collect();
        let mut staged = Staged::new(
            ns_dir,
            writes.iter().map(|(rel, _)| Path::new(*rel)).collect(),
            roots.into_iter().collect(),
        );
        staged.clear_leftovers()?;
        for dir in &dirs {
            staged.make_dir(dir)?;
        }
        // Where the directories are until published: what the syncs flush.
        let now: Vec<PathBuf> = match durability {
            Durability::SyncFs => dirs.iter().map(|d| staged.dir_now(d)).collect(),
            Durability::EachFile => Vec::new(),
        };
        let early = durability == Durability::SyncFs && writes.len() >= EARLY_SYNC_FROM;
        // Files in one directory are created one at a time (the kernel
        // locks the directory), but two writers still overlap rendering,
        // writing and closing with each other's creates: 10,000 records
        // took 230 ms on one thread and 125-145 ms on two on this VM.
        let written = with_early_sync(early, &now, writes.len() / 2, |half_done| {
            crate::input::par::map(&writes, |(rel, file)| {
                let path = staged.staging_path(Path::new(rel));
                let result = write_new(&path, &file.content(), file.mode, durability);
                half_done();
                result
            })
        });
        written.into_iter().collect::<Result<(), StoreError>>()?;
        if durability == Durability::SyncFs {
            sync_file_systems(now.iter().map(PathBuf::as_path))?;
        }
        staged.publish()?;
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
