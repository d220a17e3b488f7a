//! The per-file input cache of one namespace actor: each file under
//! `input/resources/` is parsed and decoded once and reused while its inode,
//! size, modification time and change time stay the same (DESIGN.md 3).
//!
//! Coarse file-system timestamps can hide a same-size rewrite that lands in
//! the same tick as our read, so a file whose modification time was within
//! [`FRESH_WINDOW`] of the moment it was read is parsed again on the next
//! scan, until it has been stable for that long. Entries of files that are
//! no longer listed are dropped; a listing that fails changes nothing.
//! Owned by the namespace actor alone.
//!
//! # Targeted scans
//! Listing and stat'ing 10,000 files costs more than the reconcile of one
//! changed file, so a scan looks only at what changed when that is known
//! exactly: the files the watcher's events named ([`FileCache::note`]),
//! plus the few files that must be read again anyway (fresh, or not
//! stat'able). Each is stat'ed again and read, added or dropped. Anything
//! that makes the named set doubtful lists the whole tree instead: a new
//! cache (startup), [`Changed::Everything`] (resync, SIGHUP, lost events,
//! directory events, a set past the bound), a named path that is a
//! directory, lies outside the tree or cannot be stat'ed, and any scan
//! after a failed one. Names are kept until a scan succeeds, so a skipped
//! or failed pass loses none.
//!
//! A full scan reads and parses the files it must on several threads (a
//! cold start parses every file); the result does not depend on how the
//! work was split.

use crate::resources::{decode_file, DecodedFile};
use crate::store::fsio::{self, EntryKind, ScanError};
use crate::watch::Changed;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A file modified this close to our read of it is read again next time.
pub const FRESH_WINDOW: Duration = Duration::from_secs(2);

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    fn modified(&self) -> SystemTime {
        let (secs, nanos) = self.mtime;
        let nanos = Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
        match u64::try_from(secs) {
            Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s) + nanos,
            // Before 1970: certainly not fresh.
            Err(_) => SystemTime::UNIX_EPOCH,
        }
    }
}

/// The stamp a file had when it was read (`None`: it could not be
/// stat'ed, so it is read every time), and when that read began.
type Seen = (Option<Stamp>, SystemTime);

/// One file read and decoded.
struct Read {
    decoded: DecodedFile,
    stamp: Option<Stamp>,
    read_at: SystemTime,
}

/// How one scan went, for the reconcile log line and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanStats {
    /// Input files known after the scan.
    pub files: usize,
    /// Files read and parsed in this scan (the rest came from the cache).
    pub parsed: usize,
    /// Cache entries dropped because their file is gone.
    pub dropped: usize,
    /// Whether the whole tree was listed (else only named and fresh files
    /// were looked at).
    pub listed: bool,
}

/// Decoded input files by path relative to the namespace directory.
#[derive(Debug)]
pub struct FileCache {
    files: BTreeMap<String, DecodedFile>,
    stamps: HashMap<String, Seen>,
    /// Files a targeted scan looks at although no event named them: the
    /// fresh and the unstat'able ones.
    recheck: BTreeSet<String>,
    /// What changed since the last successful scan.
    pending: Changed,
    /// Every parse since the cache was created.
    parses: u64,
}

impl Default for FileCache {
    fn default() -> FileCache {
        FileCache::new()
    }
}

/// Where a named path stands in the tree.
enum Found {
    /// An input file (or a symbolic link, read through), or a FIFO,
    /// socket or device (read as a warning), at this path.
    Input(PathBuf),
    /// Nothing that a listing would return: gone, hidden, or a file
    /// without an input file name; nor anything below it.
    NotInput,
}

// === impl FileCache ===

impl FileCache {
    /// An empty cache; its first scan lists the whole tree.
    pub fn new() -> FileCache {
        FileCache {
            files: BTreeMap::new(),
            stamps: HashMap::new(),
            recheck: BTreeSet::new(),
            pending: Changed::Everything,
            parses: 0,
        }
    }

    /// The decoded files as of the last scan, as `plan::Inputs` wants them.
    pub fn files(&self) -> &BTreeMap<String, DecodedFile> {
        &self.files
    }

    /// Parses performed since the cache was created.
    pub fn parses(&self) -> u64 {
        self.parses
    }

    /// Records what changed since the last scan; the next successful scan
    /// takes it into account.
    pub fn note(&mut self, changed: Changed) {
        self.pending.merge(changed);
    }

    /// Brings the cache in line with `input/resources/` of `ns_dir`, as far
    /// as what was noted since the last scan says it changed (see the
    /// module documentation). When the directory cannot be listed the
    /// cache is left as it was: what the input holds is unknown, not empty.
    pub fn scan(&mut self, ns_dir: &Path) -> Result<ScanStats, ScanError> {
        self.scan_with(&fsio::Disk, ns_dir)
    }

    fn scan_with(
        &mut self,
        reader: &dyn fsio::DirReader,
        ns_dir: &Path,
    ) -> Result<ScanStats, ScanError> {
        // Until this scan succeeds, the next one must be a full one.
        let pending = std::mem::replace(&mut self.pending, Changed::Everything);
        let targeted = match pending {
            Changed::Files(paths) => self.scan_paths(ns_dir, paths),
            Changed::Everything => None,
        };
        let stats = match targeted {
            Some(stats) => stats,
            None => self.scan_all(reader, ns_dir)?,
        };
        self.pending = Changed::none();
        Ok(stats)
    }

    /// Lists the whole tree and examines every file.
    fn scan_all(
        &mut self,
        reader: &dyn fsio::DirReader,
        ns_dir: &Path,
    ) -> Result<ScanStats, ScanError> {
        let listed = fsio::list_input_files_with(reader, ns_dir)?;
        let mut stats = ScanStats {
            files: listed.len(),
            listed: true,
            ..ScanStats::default()
        };
        let reads = examine_all(&self.stamps, &listed);
        // A first scan has nothing to forget (ten thousand names fewer to
        // hash and look up on a cold start).
        let first = self.files.is_empty() && self.stamps.is_empty() && self.recheck.is_empty();
        let mut seen = (!first).then(|| HashSet::with_capacity(listed.len()));
        for ((rel, _), read) in listed.into_iter().zip(reads) {
            if let Some(seen) = &mut seen {
                seen.insert(rel.clone());
            }
            if let Some(read) = read {
                self.store(rel, read);
                stats.parsed += 1;
            }
        }
        if let Some(seen) = seen {
            let before = self.files.len();
            self.files.retain(|rel, _| seen.contains(rel));
            self.stamps.retain(|rel, _| seen.contains(rel));
            self.recheck.retain(|rel| seen.contains(rel));
            stats.dropped = before - self.files.len();
        }
        Ok(stats)
    }

    /// Examines the named files and those due for a re-read; `None` (and
    /// nothing changed) when a name makes a full listing necessary.
    fn scan_paths(&mut self, ns_dir: &Path, mut paths: BTreeSet<String>) -> Option<ScanStats> {
        paths.extend(self.recheck.iter().cloned());
        let mut inputs = Vec::new();
        let mut gone = Vec::new();
        for rel in paths {
            match probe(ns_dir, &rel)? {
                Found::Input(path) => inputs.push((rel, path)),
                Found::NotInput => gone.push(rel),
            }
        }
        let mut stats = ScanStats::default();
        for rel in gone {
            stats.dropped += self.drop_at(&rel);
        }
        let reads = examine_all(&self.stamps, &inputs);
        for ((rel, _), read) in inputs.into_iter().zip(reads) {
            if let Some(read) = read {
                self.store(rel, read);
                stats.parsed += 1;
            }
        }
        stats.files = self.files.len();
        Some(stats)
    }

    fn store(&mut self, rel: String, read: Read) {
        let again = read
            .stamp
            .is_none_or(|s| is_fresh(s.modified(), read.read_at));
        if again {
            self.recheck.insert(rel.clone());
        } else {
            self.recheck.remove(&rel);
        }
        self.files.insert(rel.clone(), read.decoded);
        self.stamps.insert(rel, (read.stamp, read.read_at));
        self.parses += 1;
    }

    /// Forgets `rel` and everything below it (a directory renamed away
    /// may be named like a file); returns how many files were forgotten.
    fn drop_at(&mut self, rel: &str) -> usize {
        let prefix = format!("{rel}/");
        let mut gone: Vec<String> = self
            .files
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        gone.push(rel.to_string());
        let mut dropped = 0;
        for key in gone {
            dropped += usize::from(self.files.remove(&key).is_some());
            self.stamps.remove(&key);
            self.recheck.remove(&key);
        }
        dropped
    }
}

/// Where the file named `rel` (relative to `ns_dir`) stands, judged the
/// way the full listing would judge it; `None` when only a listing can
/// tell (a directory, a path outside the tree, a failed stat).
fn probe(ns_dir: &Path, rel: &str) -> Option<Found> {
    let inside = rel.strip_prefix("input/resources/")?;
    let mut parts: Vec<&str> = inside.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return None;
    }
    let name = parts.pop()?;
    let mut path = ns_dir.join("input/resources");
    for dir in parts {
        // The listing never enters hidden directories, nor follows a
        // symbolic link to one.
        if dir.starts_with('.') {
            return Some(Found::NotInput);
        }
        path.push(dir);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Some(Found::NotInput),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Found::NotInput),
            Err(_) => return None,
        }
    }
    path.push(name);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => None,
        Ok(meta) => {
            let kind = if meta.is_file() || meta.is_symlink() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            Some(if fsio::is_listed(name, kind) {
                Found::Input(path)
            } else {
                Found::NotInput
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Found::NotInput),
        Err(_) => None,
    }
}

/// Reads and decodes one file unless its cached version (`prev`) is still
/// good; `None` when it is.
fn examine(prev: Option<&Seen>, rel: &str, path: &Path) -> Option<Read> {
    // Taken before the stat, so a write racing with our read falls inside
    // the window and is read again next time.
    let read_at = SystemTime::now();
    let stamp = std::fs::metadata(path).ok().map(|m| Stamp::of(&m));
    if let (Some((Some(old), old_read_at)), Some(new)) = (prev, stamp) {
        if *old == new && !is_fresh(new.modified(), *old_read_at) {
            return None;
        }
    }
    let decoded = decode_file(fsio::read_input_file(rel, path));
    Some(Read {
        decoded,
        stamp,
        read_at,
    })
}

/// [`examine`] for every file, in order, split over a few threads when
/// there are many.
fn examine_all(stamps: &HashMap<String, Seen>, files: &[(String, PathBuf)]) -> Vec<Option<Read>> {
    crate::input::par::map(files, |(rel, path)| examine(stamps.get(rel), rel, path))
}

/// Whether a file modified at `modified` may still change within the same
/// timestamp tick as a read at `read_at` (or has a time in the future).
fn is_fresh(modified: SystemTime, read_at: SystemTime) -> bool {
    match read_at.duration_since(modified) {
        Ok(age) => age < FRESH_WINDOW,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests;
