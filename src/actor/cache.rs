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
        cache.note(Changed::Everything);
        let again = cache.scan(dir.path()).unwrap();
        assert_eq!((again.parsed, again.listed), (0, true));
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
        cache.note(Changed::Everything);
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.parsed, stats.dropped, stats.files), (1, 1, 1));
        let a = &cache.files()["input/resources/a.yaml"];
        assert_eq!(a.resources.len(), 1);
        assert!(a.resources[0].raw_spec().to_string().contains("9090"));
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
        cache.note(Changed::Everything);
        let err = cache.scan_with(&BrokenResources, dir.path()).unwrap_err();
        assert_eq!(err.path, res);
        assert_eq!(cache.files().len(), 2);
        // Nothing was forgotten: readable again, nothing is parsed again.
        // Nothing was noted meanwhile, yet after a failure it lists again.
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!(
            (stats.files, stats.parsed, stats.dropped, stats.listed),
            (2, 0, 0, true)
        );
    }

    /// A cache after its first (full) scan of `names`, all written an
    /// hour ago.
    fn scanned(names: &[&str]) -> (tempfile::TempDir, PathBuf, FileCache) {
        let dir = tempfile::tempdir().unwrap();
        let res = dir.path().join("input/resources");
        std::fs::create_dir_all(&res).unwrap();
        for name in names {
            let resource = name.trim_end_matches(".yaml").replace('/', "-");
            write_old(
                &res.join(name),
                &LISTENER.replace("name: a", &format!("name: {resource}")),
            );
        }
        let mut cache = FileCache::new();
        let first = cache.scan(dir.path()).unwrap();
        assert_eq!((first.parsed, first.listed), (names.len(), true));
        (dir, res, cache)
    }

    fn port_of(cache: &FileCache, rel: &str) -> String {
        let spec = cache.files()[rel].resources[0].raw_spec().to_string();
        spec.split("port")
            .nth(1)
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect()
    }

    #[test]
    fn a_targeted_scan_reads_only_the_named_file() {
        let (dir, res, mut cache) = scanned(&["a.yaml", "b.yaml"]);
        write_old(&res.join("a.yaml"), &LISTENER.replace("8080", "9090"));
        // Changed too, but not named: a targeted scan does not look.
        write_old(&res.join("b.yaml"), &LISTENER.replace("8080", "7070"));
        cache.note(Changed::file("input/resources/a.yaml"));
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!(
            (stats.files, stats.parsed, stats.dropped, stats.listed),
            (2, 1, 0, false)
        );
        assert_eq!(port_of(&cache, "input/resources/a.yaml"), "9090");
        assert_eq!(port_of(&cache, "input/resources/b.yaml"), "8080");
        // Nothing noted, nothing fresh: nothing looked at.
        let idle = cache.scan(dir.path()).unwrap();
        assert_eq!((idle.parsed, idle.listed), (0, false));
        // The resync's full look finds what no event named.
        cache.note(Changed::Everything);
        let full = cache.scan(dir.path()).unwrap();
        assert_eq!((full.parsed, full.listed), (1, true));
        assert_eq!(port_of(&cache, "input/resources/b.yaml"), "7070");
    }

    #[test]
    fn a_named_file_that_did_not_change_is_not_parsed_again() {
        let (dir, _res, mut cache) = scanned(&["a.yaml"]);
        cache.note(Changed::file("input/resources/a.yaml"));
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.parsed, stats.listed), (0, false));
    }

    #[test]
    fn a_targeted_scan_drops_deleted_files_and_adds_renamed_in_ones() {
        let (dir, res, mut cache) = scanned(&["a.yaml", "b.yaml", "c.yaml"]);
        std::fs::remove_file(res.join("b.yaml")).unwrap();
        // A temporary file renamed into place: both names are reported.
        write_old(
            &res.join(".d.yaml.tmp"),
            &LISTENER.replace("name: a", "name: d"),
        );
        std::fs::rename(res.join(".d.yaml.tmp"), res.join("d.yaml")).unwrap();
        // Renamed away out of the tree.
        std::fs::rename(res.join("c.yaml"), dir.path().join("c.yaml")).unwrap();
        for rel in ["b.yaml", ".d.yaml.tmp", "d.yaml", "c.yaml"] {
            cache.note(Changed::file(format!("input/resources/{rel}")));
        }
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!(
            (stats.files, stats.parsed, stats.dropped, stats.listed),
            (2, 1, 2, false)
        );
        let names: Vec<&String> = cache.files().keys().collect();
        assert_eq!(names, ["input/resources/a.yaml", "input/resources/d.yaml"]);
        // Exactly what a full listing finds.
        let mut fresh = FileCache::new();
        fresh.scan(dir.path()).unwrap();
        assert_eq!(fresh.files(), cache.files());
    }

    #[test]
    fn a_file_in_a_subdirectory_is_targeted_and_hidden_or_other_names_ignored() {
        let (dir, res, mut cache) = scanned(&["a.yaml"]);
        std::fs::create_dir_all(res.join("sub/.git")).unwrap();
        std::fs::create_dir_all(res.join("sub")).unwrap();
        // The directory's creation was a full scan; these are file events.
        cache.note(Changed::Everything);
        cache.scan(dir.path()).unwrap();
        write_old(&res.join("sub/b.yaml"), LISTENER);
        write_old(&res.join("sub/.git/c.yaml"), LISTENER);
        write_old(&res.join("sub/notes.txt"), LISTENER);
        for rel in ["sub/b.yaml", "sub/.git/c.yaml", "sub/notes.txt"] {
            cache.note(Changed::file(format!("input/resources/{rel}")));
        }
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.files, stats.parsed, stats.listed), (2, 1, false));
        assert!(cache.files().contains_key("input/resources/sub/b.yaml"));
    }

    #[test]
    fn a_fifo_named_by_an_event_is_a_warning_as_in_a_full_listing() {
        let (dir, res, mut cache) = scanned(&["a.yaml"]);
        for name in ["b.yaml", "pipe", ".hidden"] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                res.join(name),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap();
            cache.note(Changed::file(format!("input/resources/{name}")));
        }
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.files, stats.parsed, stats.listed), (3, 2, false));
        let fifo = &cache.files()["input/resources/b.yaml"];
        assert!(fifo.resources.is_empty());
        assert_eq!(
            fifo.problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>(),
            ["input/resources/b.yaml is a FIFO: not a regular file, ignored"]
        );
        let mut fresh = FileCache::new();
        fresh.scan(dir.path()).unwrap();
        assert_eq!(fresh.files(), cache.files());
    }

    #[test]
    fn a_directory_event_makes_the_scan_list_everything() {
        let (dir, res, mut cache) = scanned(&["a.yaml"]);
        write_old(&res.join("sub/b.yaml"), LISTENER);
        write_old(&res.join("sub/c.yaml"), LISTENER);
        // What the watcher sends for a directory event.
        cache.note(Changed::Everything);
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.files, stats.parsed, stats.listed), (3, 2, true));

        // A directory named as if it were a file is listed too.
        write_old(&res.join("more/d.yaml"), LISTENER);
        cache.note(Changed::file("input/resources/more"));
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.files, stats.parsed, stats.listed), (4, 1, true));

        // So is a path outside the tree.
        cache.note(Changed::file("input/certs/x.yaml"));
        assert!(cache.scan(dir.path()).unwrap().listed);
    }

    #[test]
    fn a_directory_renamed_away_under_a_file_name_drops_its_files() {
        let (dir, res, mut cache) = scanned(&["a.yaml", "sub/b.yaml", "sub/c.yaml", "subway.yaml"]);
        std::fs::rename(res.join("sub"), dir.path().join("sub")).unwrap();
        // Once gone, the event cannot tell it was a directory.
        cache.note(Changed::file("input/resources/sub"));
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.files, stats.dropped, stats.listed), (2, 2, false));
        let names: Vec<&String> = cache.files().keys().collect();
        assert_eq!(
            names,
            ["input/resources/a.yaml", "input/resources/subway.yaml"]
        );
    }

    #[test]
    fn fresh_files_are_read_again_by_targeted_scans_until_they_settle() {
        let (dir, res, mut cache) = scanned(&["a.yaml", "b.yaml"]);
        // Written just now: within the window of the read that follows.
        std::fs::write(res.join("a.yaml"), LISTENER.replace("8080", "9090")).unwrap();
        cache.note(Changed::file("input/resources/a.yaml"));
        assert_eq!(cache.scan(dir.path()).unwrap().parsed, 1);
        // Not named again, yet read again: a same-size rewrite in the same
        // tick would look exactly like this. b is not looked at.
        let again = cache.scan(dir.path()).unwrap();
        assert_eq!((again.parsed, again.listed), (1, false));
        // Once it is older than the window, it is settled for good.
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(res.join("a.yaml"))
            .unwrap()
            .set_times(FileTimes::new().set_modified(old))
            .unwrap();
        assert_eq!(cache.scan(dir.path()).unwrap().parsed, 1);
        assert_eq!(cache.scan(dir.path()).unwrap().parsed, 0);
    }

    #[test]
    fn a_failed_scan_keeps_what_was_noted_for_the_next() {
        let (dir, res, mut cache) = scanned(&["a.yaml"]);
        write_old(&res.join("b.yaml"), LISTENER);
        cache.note(Changed::file("input/resources/b.yaml"));
        cache.note(Changed::Everything);
        cache.scan_with(&BrokenResources, dir.path()).unwrap_err();
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.files, stats.parsed, stats.listed), (2, 1, true));
    }

    #[test]
    fn a_parallel_cold_scan_equals_reading_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        let res = dir.path().join("input/resources");
        let n = crate::input::par::MIN_PARALLEL * 3 + 7;
        for i in 0..n {
            let text = if i % 97 == 0 {
                "kind: [broken\n".to_string()
            } else {
                LISTENER
                    .replace("name: a", &format!("name: l{i}"))
                    .replace("8080", &format!("{}", 1000 + i))
            };
            write_old(&res.join(format!("d{}/l{i}.yaml", i % 5)), &text);
        }
        let mut cache = FileCache::new();
        let stats = cache.scan(dir.path()).unwrap();
        assert_eq!((stats.files, stats.parsed), (n, n));
        let listed = fsio::list_input_files(dir.path()).unwrap();
        let one_by_one: BTreeMap<String, DecodedFile> = listed
            .iter()
            .map(|(rel, path)| (rel.clone(), decode_file(fsio::read_input_file(rel, path))))
            .collect();
        assert_eq!(cache.files(), &one_by_one);
        assert!(cache.files().values().any(|f| f.broken.is_some()));
        assert_eq!(cache.parses(), n as u64);
    }

    #[test]
    fn freshness_is_measured_from_the_read() {
        let now = SystemTime::now();
        assert!(is_fresh(now - Duration::from_millis(1500), now));
        assert!(!is_fresh(now - Duration::from_millis(2500), now));
        assert!(is_fresh(now + Duration::from_secs(60), now));
    }
}
