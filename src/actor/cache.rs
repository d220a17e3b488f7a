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

use crate::resources::{decode_file, DecodedFile};
use crate::store::fsio::{self, ScanError};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
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

/// How one scan went, for the reconcile log line and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanStats {
    /// Input files listed.
    pub files: usize,
    /// Files read and parsed in this scan (the rest came from the cache).
    pub parsed: usize,
    /// Cache entries dropped because their file is gone.
    pub dropped: usize,
}

/// Decoded input files by path relative to the namespace directory.
#[derive(Debug, Default)]
pub struct FileCache {
    files: BTreeMap<String, DecodedFile>,
    /// `None` when the file could not be stat'ed: it is read every time.
    stamps: HashMap<String, (Option<Stamp>, SystemTime)>,
    /// Every parse since the cache was created.
    parses: u64,
}

// === impl FileCache ===

impl FileCache {
    pub fn new() -> FileCache {
        FileCache::default()
    }

    /// The decoded files as of the last scan, as `plan::Inputs` wants them.
    pub fn files(&self) -> &BTreeMap<String, DecodedFile> {
        &self.files
    }

    /// Parses performed since the cache was created.
    pub fn parses(&self) -> u64 {
        self.parses
    }

    /// Brings the cache in line with `input/resources/` of `ns_dir`. When
    /// the directory cannot be listed the cache is left as it was: what the
    /// input holds is unknown, not empty.
    pub fn scan(&mut self, ns_dir: &Path) -> Result<ScanStats, ScanError> {
        self.scan_with(&fsio::Disk, ns_dir)
    }

    fn scan_with(
        &mut self,
        reader: &dyn fsio::DirReader,
        ns_dir: &Path,
    ) -> Result<ScanStats, ScanError> {
        let listed = fsio::list_input_files_with(reader, ns_dir)?;
        let mut stats = ScanStats {
            files: listed.len(),
            ..ScanStats::default()
        };
        let mut seen = std::collections::HashSet::with_capacity(listed.len());
        for (rel, path) in listed {
            // Taken before the stat, so a write racing with our read falls
            // inside the window and is read again next time.
            let read_at = SystemTime::now();
            let stamp = std::fs::metadata(&path).ok().map(|m| Stamp::of(&m));
            let reusable = match (self.stamps.get(&rel), stamp) {
                (Some((Some(old), old_read_at)), Some(new)) => {
                    *old == new && !is_fresh(new.modified(), *old_read_at)
                }
                _ => false,
            };
            if !reusable {
                let decoded = decode_file(fsio::read_input_file(&rel, &path));
                self.files.insert(rel.clone(), decoded);
                self.stamps.insert(rel.clone(), (stamp, read_at));
                self.parses += 1;
                stats.parsed += 1;
            }
            seen.insert(rel);
        }
        let before = self.files.len();
        self.files.retain(|rel, _| seen.contains(rel));
        self.stamps.retain(|rel, _| seen.contains(rel));
        stats.dropped = before - self.files.len();
        Ok(stats)
    }
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
mod tests {
    use super::*;
    use std::fs::{File, FileTimes};

    const LISTENER: &str = "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: a\nspec:\n  host: 127.0.0.1\n  port: 8080\n  routingKey: a\n";

    fn write_old(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(old))
            .unwrap();
    }

    #[test]
    fn unchanged_old_files_are_parsed_once() {
        let dir = tempfile::tempdir().unwrap();
        let res = dir.path().join("input/resources");
        write_old(&res.join("a.yaml"), LISTENER);
        write_old(&res.join("b.yaml"), &LISTENER.replace("name: a", "name: b"));
        let mut cache = FileCache::new();
        assert_eq!(cache.scan(dir.path()).unwrap().parsed, 2);
        assert_eq!(cache.scan(dir.path()).unwrap().parsed, 0);
        assert_eq!(cache.files().len(), 2);
        assert_eq!(cache.parses(), 2);
    }

    #[test]
    fn a_changed_file_is_parsed_again_and_a_vanished_one_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let res = dir.path().join("input/resources");
        write_old(&res.join("a.yaml"), LISTENER);
        write_old(&res.join("b.yaml"), LISTENER);
        let mut cache = FileCache::new();
        cache.scan(dir.path()).unwrap();
        write_old(&res.join("a.yaml"), &LISTENER.replace("8080", "9090"));
        std::fs::remove_file(res.join("b.yaml")).unwrap();
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.parsed, stats.dropped, stats.files), (1, 1, 1));
        let a = &cache.files()["input/resources/a.yaml"];
        assert_eq!(a.resources.len(), 1);
        assert!(a.resources[0].raw_spec.to_string().contains("9090"));
    }

    #[test]
    fn a_recently_modified_file_is_read_again_until_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let res = dir.path().join("input/resources");
        std::fs::create_dir_all(&res).unwrap();
        std::fs::write(res.join("a.yaml"), LISTENER).unwrap();
        let mut cache = FileCache::new();
        assert_eq!(cache.scan(dir.path()).unwrap().parsed, 1);
        // Same inode, size and times, but written within the window: a
        // same-size rewrite in the same tick would look exactly like this.
        assert_eq!(cache.scan(dir.path()).unwrap().parsed, 1);
    }

    /// The real file system, except that listing `input/resources` of
    /// the namespace gives EIO.
    struct BrokenResources;

    impl fsio::DirReader for BrokenResources {
        fn entries(&self, dir: &Path) -> std::io::Result<Vec<fsio::DirEntry>> {
            if dir.ends_with("input/resources") {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            fsio::Disk.entries(dir)
        }
    }

    #[test]
    fn a_failed_listing_keeps_every_cached_file() {
        let dir = tempfile::tempdir().unwrap();
        let res = dir.path().join("input/resources");
        write_old(&res.join("a.yaml"), LISTENER);
        write_old(&res.join("b.yaml"), &LISTENER.replace("name: a", "name: b"));
        let mut cache = FileCache::new();
        cache.scan(dir.path()).unwrap();
        let err = cache.scan_with(&BrokenResources, dir.path()).unwrap_err();
        assert_eq!(err.path, res);
        assert_eq!(cache.files().len(), 2);
        // Nothing was forgotten: readable again, nothing is parsed again.
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.files, stats.parsed, stats.dropped), (2, 0, 0));
    }

    #[test]
    fn freshness_is_measured_from_the_read() {
        let now = SystemTime::now();
        assert!(is_fresh(now - Duration::from_millis(1500), now));
        assert!(!is_fresh(now - Duration::from_millis(2500), now));
        assert!(is_fresh(now + Duration::from_secs(60), now));
    }
}
