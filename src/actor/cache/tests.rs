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
