use super::read::*;
use super::stage::*;
use super::sync::*;
use super::write::*;
use crate::input::MAX_FILE_BYTES;
use crate::model::Platform;
use crate::plan::{OutFile, Outcome};
use crate::validate::{FileRefusal, InputCerts};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn outcome(files: &[(&str, &str, u32)]) -> Outcome {
    let mut o = Outcome::default();
    for (rel, text, mode) in files {
        o.writes.insert(
            rel.to_string(),
            OutFile::bytes(text.as_bytes().to_vec(), *mode),
        );
    }
    o
}

/// Every path below `dir` whose name marks it as a temporary file.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(".skupperd-tmp") {
                out.push(p.clone());
            }
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

fn text(ns: &Path, rel: &str) -> String {
    fs::read_to_string(ns.join(rel)).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
}

#[test]
fn a_batch_lands_with_contents_and_modes_and_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    // Enough files for the temporaries to be written on several threads.
    let mut files: Vec<(String, String, u32)> = (0..crate::input::par::MIN_PARALLEL + 50)
        .map(|i| {
            (
                format!("runtime/resources/Listener-l{i}.yaml"),
                format!("name: l{i}\n"),
                0o644,
            )
        })
        .collect();
    files.push(("runtime/certs/c/tls.key".into(), "KEY".into(), 0o600));
    files.push(("runtime/router/skrouterd.json".into(), "[]".into(), 0o644));
    let borrowed: Vec<(&str, &str, u32)> = files
        .iter()
        .map(|(r, t, m)| (r.as_str(), t.as_str(), *m))
        .collect();
    apply(ns, &outcome(&borrowed)).unwrap();
    for (rel, text, mode) in &files {
        assert_eq!(&fs::read_to_string(ns.join(rel)).unwrap(), text, "{rel}");
        assert_eq!(mode_of(&ns.join(rel)), *mode, "{rel}");
    }
    assert_eq!(mode_of(&ns.join("runtime/certs/c")), 0o700);
    assert_eq!(mode_of(&ns.join("runtime/resources")), 0o755);
    assert_eq!(temporaries(ns), Vec::<PathBuf>::new());
}

#[test]
fn a_failure_on_one_writer_thread_publishes_nothing_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    let res = ns.join("runtime/resources");
    fs::create_dir_all(&res).unwrap();
    let n = 2 * crate::input::par::MIN_PARALLEL;
    let names: Vec<String> = (0..n)
        .map(|i| format!("runtime/resources/Listener-l{i:04}.yaml"))
        .collect();
    // One temporary name in the middle is taken by a directory.
    let blocked = res.join(format!(".Listener-l{:04}.yaml.skupperd-tmp", n / 2));
    fs::create_dir(&blocked).unwrap();
    let files: Vec<(&str, &str, u32)> = names.iter().map(|r| (r.as_str(), "x\n", 0o644)).collect();
    let err = apply(ns, &outcome(&files)).unwrap_err().to_string();
    assert!(err.contains(&format!("Listener-l{:04}", n / 2)), "{err}");
    let published: Vec<_> = fs::read_dir(&res)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|f| !f.to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(published, Vec::<OsString>::new());
    assert_eq!(temporaries(ns), vec![blocked]);
}

#[test]
fn a_missing_tree_is_staged_whole_and_a_failure_in_it_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    // A name too long for the file system fails its write, after
    // others were written into the staged tree.
    let long = format!("runtime/resources/Listener-{}.yaml", "x".repeat(300));
    let o = outcome(&[
        ("runtime/resources/Listener-a.yaml", "a\n", 0o644),
        (long.as_str(), "long\n", 0o644),
        ("runtime/status.yaml", "s\n", 0o644),
    ]);
    let err = apply(ns, &o).unwrap_err().to_string();
    assert!(err.contains("xxxx"), "{err}");
    let left: Vec<_> = fs::read_dir(ns)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new());

    // The same without the bad name lands whole, in one rename.
    let o = outcome(&[
        ("runtime/resources/Listener-a.yaml", "a\n", 0o644),
        ("runtime/status.yaml", "s\n", 0o644),
    ]);
    apply(ns, &o).unwrap();
    assert_eq!(text(ns, "runtime/status.yaml"), "s\n");
    assert_eq!(text(ns, "runtime/resources/Listener-a.yaml"), "a\n");
    assert_eq!(temporaries(ns), Vec::<PathBuf>::new());
}

#[test]
fn a_tree_left_staged_by_a_crash_is_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    fs::create_dir(ns.join("runtime")).unwrap();
    fs::write(ns.join("runtime/status.yaml"), "old\n").unwrap();
    let leftover = ns.join("runtime/.resources.skupperd-tmp");
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join("Listener-stale.yaml"), "stale\n").unwrap();
    let o = outcome(&[
        ("runtime/resources/Listener-a.yaml", "a\n", 0o644),
        ("runtime/status.yaml", "new\n", 0o644),
    ]);
    apply(ns, &o).unwrap();
    let names: Vec<_> = fs::read_dir(ns.join("runtime/resources"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsString::from("Listener-a.yaml")]);
    assert_eq!(text(ns, "runtime/status.yaml"), "new\n");
    assert_eq!(temporaries(ns), Vec::<PathBuf>::new());
}

#[test]
fn the_early_sync_neither_changes_the_result_nor_waits_for_a_half_never_reached() {
    let dir = tempfile::tempdir().unwrap();
    let dirs = vec![dir.path().to_path_buf()];
    for (early, calls) in [(false, 8), (true, 8), (true, 3), (true, 0)] {
        let got = with_early_sync(early, &dirs, 4, |half_done| {
            (0..calls).for_each(|_| half_done());
            calls * 10
        });
        assert_eq!(got, calls * 10, "early {early}, {calls} calls");
    }
}

#[test]
fn a_single_change_replaces_the_file_in_place_of_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    apply(ns, &outcome(&[("runtime/status.yaml", "old\n", 0o644)])).unwrap();
    apply(ns, &outcome(&[("runtime/status.yaml", "new\n", 0o600)])).unwrap();
    assert_eq!(
        fs::read_to_string(ns.join("runtime/status.yaml")).unwrap(),
        "new\n"
    );
    assert_eq!(mode_of(&ns.join("runtime/status.yaml")), 0o600);
    assert_eq!(temporaries(ns), Vec::<PathBuf>::new());
}

#[test]
fn a_temporary_left_by_a_crash_does_not_lend_its_mode_or_content() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    let key = ns.join("runtime/certs/c/tls.key");
    fs::create_dir_all(key.parent().unwrap()).unwrap();
    let stale = temp_path(&key);
    fs::write(&stale, "stale and longer than the new content").unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o666)).unwrap();
    apply(ns, &outcome(&[("runtime/certs/c/tls.key", "KEY", 0o600)])).unwrap();
    assert_eq!(fs::read_to_string(&key).unwrap(), "KEY");
    assert_eq!(mode_of(&key), 0o600);
    assert_eq!(temporaries(ns), Vec::<PathBuf>::new());
}

#[test]
fn temporaries_a_killed_apply_left_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    let o = outcome(&[
        ("runtime/resources/Listener-a.yaml", "a\n", 0o644),
        ("runtime/certs/c/tls.key", "KEY", 0o600),
        ("runtime/status.yaml", "s\n", 0o644),
    ]);
    apply(ns, &o).unwrap();
    let stale = [
        // Records of resources removed since, a key, the status.
        "runtime/resources/.Listener-gone.yaml.skupperd-tmp",
        "runtime/resources/.Listener-a.yaml.skupperd-tmp",
        "runtime/certs/c/.tls.key.skupperd-tmp",
        "runtime/.status.yaml.skupperd-tmp",
    ];
    for rel in stale {
        fs::write(ns.join(rel), "stale").unwrap();
    }
    // Staged trees: all of runtime/ (a cold start), a new directory.
    fs::create_dir_all(ns.join(".runtime.skupperd-tmp/resources")).unwrap();
    fs::create_dir_all(ns.join("runtime/.router.skupperd-tmp")).unwrap();
    fs::write(ns.join("runtime/.router.skupperd-tmp/skrouterd.json"), "[").unwrap();
    // Not skupperd's: another tool's hidden file, a file that merely
    // ends like a temporary, a temporary of a file skupperd never
    // writes, and anything in input/.
    let foreign = [
        "runtime/resources/.ConfigMap-x.yaml.swp",
        "runtime/resources/x.skupperd-tmp",
        "runtime/resources/.ConfigMap-x.yaml.skupperd-tmp",
        "input/resources/.l.yaml.skupperd-tmp",
    ];
    for rel in foreign {
        fs::create_dir_all(ns.join(rel).parent().unwrap()).unwrap();
        fs::write(ns.join(rel), "theirs").unwrap();
    }
    let mut removed = remove_temporaries(ns).unwrap();
    removed.sort();
    let mut want: Vec<PathBuf> = stale
        .iter()
        .chain(&[".runtime.skupperd-tmp", "runtime/.router.skupperd-tmp"])
        .map(|rel| ns.join(rel))
        .collect();
    want.sort();
    assert_eq!(removed, want);
    for rel in foreign {
        assert_eq!(text(ns, rel), "theirs", "{rel}");
    }
    assert_eq!(text(ns, "runtime/resources/Listener-a.yaml"), "a\n");
    assert_eq!(text(ns, "runtime/certs/c/tls.key"), "KEY");
    assert_eq!(remove_temporaries(ns).unwrap(), Vec::<PathBuf>::new());
    // Nothing to do in a namespace without runtime/.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        remove_temporaries(empty.path()).unwrap(),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn the_umask_is_read_from_proc() {
    // The test harness does not change the umask; any value a process
    // can have is a permission mask.
    assert!(umask().is_some_and(|m| m <= 0o777));
}

#[test]
fn a_failure_while_writing_publishes_nothing_and_leaves_no_temporaries() {
    for durability in [Durability::EachFile, Durability::SyncFs] {
        let dir = tempfile::tempdir().unwrap();
        let ns = dir.path();
        let res = ns.join("runtime/resources");
        fs::create_dir_all(&res).unwrap();
        fs::write(res.join("Listener-b.yaml"), "old b\n").unwrap();
        // The temporary name of c is taken by a directory: opening it fails
        // after a and b were written to theirs.
        fs::create_dir(res.join(".Listener-c.yaml.skupperd-tmp")).unwrap();
        let o = outcome(&[
            ("runtime/resources/Listener-a.yaml", "a\n", 0o644),
            ("runtime/resources/Listener-b.yaml", "new b\n", 0o644),
            ("runtime/resources/Listener-c.yaml", "c\n", 0o644),
        ]);
        let err = apply_with(ns, &o, durability).unwrap_err().to_string();
        assert!(err.contains(".Listener-c.yaml.skupperd-tmp"), "{err}");
        assert!(!res.join("Listener-a.yaml").exists(), "{durability:?}");
        assert_eq!(
            fs::read_to_string(res.join("Listener-b.yaml")).unwrap(),
            "old b\n",
            "{durability:?}"
        );
        // Only the directory in the way is left.
        assert_eq!(
            temporaries(ns),
            vec![res.join(".Listener-c.yaml.skupperd-tmp")],
            "{durability:?}"
        );
    }
}

#[test]
fn a_failure_while_renaming_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    let res = ns.join("runtime/resources");
    // A non-empty directory where b goes: its rename fails.
    fs::create_dir_all(res.join("Listener-b.yaml/x")).unwrap();
    let o = outcome(&[
        ("runtime/resources/Listener-a.yaml", "a\n", 0o644),
        ("runtime/resources/Listener-b.yaml", "b\n", 0o644),
        ("runtime/resources/Listener-c.yaml", "c\n", 0o644),
    ]);
    let err = apply(ns, &o).unwrap_err().to_string();
    assert!(err.contains("Listener-b.yaml"), "{err}");
    assert_eq!(temporaries(ns), Vec::<PathBuf>::new());
    // What was published before the failure is whole.
    assert_eq!(
        fs::read_to_string(res.join("Listener-a.yaml")).unwrap(),
        "a\n"
    );
    assert!(!res.join("Listener-c.yaml").exists());
}

#[test]
fn deletes_remove_the_file_and_the_directories_it_leaves_empty() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    apply(
        ns,
        &outcome(&[
            ("runtime/certs/c/tls.crt", "C", 0o644),
            ("runtime/certs/c/tls.key", "K", 0o600),
        ]),
    )
    .unwrap();
    let o = Outcome {
        deletes: vec![
            "runtime/certs/c/tls.crt".into(),
            "runtime/certs/c/tls.key".into(),
        ],
        ..Outcome::default()
    };
    apply(ns, &o).unwrap();
    assert!(!ns.join("runtime/certs").exists());
    assert!(ns.join("runtime").is_dir());
}

/// The real file system, except that listing `fail` gives EIO.
struct FailingDir {
    fail: PathBuf,
}

impl DirReader for FailingDir {
    fn entries(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        if dir == self.fail {
            return Err(io::Error::from_raw_os_error(5));
        }
        Disk.entries(dir)
    }
}

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, "x").unwrap();
}

#[test]
fn a_missing_resources_directory_is_no_input() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(list_input_files(dir.path()).unwrap(), vec![]);
    assert!(read_runtime(dir.path()).unwrap().is_empty());
    assert_eq!(read_bundles(dir.path()), InputCerts::default());
}

#[test]
fn a_file_where_input_resources_should_be_is_an_error_not_an_empty_input() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("input/resources"));
    let err = list_input_files(dir.path()).unwrap_err();
    assert_eq!(err.path, dir.path().join("input/resources"));
    assert_eq!(err.source.kind(), io::ErrorKind::NotADirectory);
    assert!(err.to_string().contains("input/resources"), "{err}");
}

#[test]
fn an_unreadable_subdirectory_fails_the_whole_listing() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("input/resources");
    touch(&res.join("a.yaml"));
    touch(&res.join("team/b.yaml"));
    let reader = FailingDir {
        fail: res.join("team"),
    };
    let err = list_input_files_with(&reader, dir.path()).unwrap_err();
    assert_eq!(err.path, res.join("team"));
    assert_eq!(err.source.raw_os_error(), Some(5));
    // Read normally, both files are there.
    let names: Vec<String> = list_input_files(dir.path())
        .unwrap()
        .into_iter()
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(
        names,
        ["input/resources/a.yaml", "input/resources/team/b.yaml"]
    );
}

/// The real file system, except that `changed` has become a file
/// since its parent was listed.
struct ChangedDir {
    changed: PathBuf,
}

impl DirReader for ChangedDir {
    fn entries(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        if dir == self.changed {
            return Err(io::Error::from_raw_os_error(20));
        }
        Disk.entries(dir)
    }
}

#[test]
fn a_subdirectory_replaced_by_a_file_while_listed_is_skipped_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("input/resources");
    touch(&res.join("a.yaml"));
    touch(&res.join("team/b.yaml"));
    let reader = ChangedDir {
        changed: res.join("team"),
    };
    let names: Vec<String> = list_input_files_with(&reader, dir.path())
        .unwrap()
        .into_iter()
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(names, ["input/resources/a.yaml"]);
    // input/resources/ itself is never taken for empty.
    let reader = ChangedDir { changed: res };
    assert!(list_input_files_with(&reader, dir.path()).is_err());
}

#[test]
fn hidden_directories_and_temporary_files_are_not_input() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("input/resources");
    touch(&res.join("a.yaml"));
    touch(&res.join(".a.yaml.skupperd-tmp"));
    touch(&res.join(".git/b.yaml"));
    // Never listed, so its failure does not matter.
    let reader = FailingDir {
        fail: res.join(".git"),
    };
    let listed = list_input_files_with(&reader, dir.path()).unwrap();
    assert_eq!(
        listed,
        vec![("input/resources/a.yaml".into(), res.join("a.yaml"))]
    );
}

#[test]
fn an_unreadable_runtime_directory_is_an_error_and_temporaries_are_not_runtime_files() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    apply(
        ns,
        &outcome(&[
            ("runtime/resources/Listener-a.yaml", "a\n", 0o644),
            ("runtime/router/skrouterd.json", "[]", 0o644),
        ]),
    )
    .unwrap();
    touch(&ns.join("runtime/resources/.Listener-b.yaml.skupperd-tmp"));
    let runtime = read_runtime(ns).unwrap();
    assert_eq!(
        runtime.keys().collect::<Vec<_>>(),
        [
            "runtime/resources/Listener-a.yaml",
            "runtime/router/skrouterd.json"
        ]
    );
    let reader = FailingDir {
        fail: ns.join("runtime/resources"),
    };
    let err = read_runtime_with(&reader, ns, true).unwrap_err();
    assert_eq!(err.path, ns.join("runtime/resources"));
}

#[test]
fn a_big_runtime_is_read_whole_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    let files: Vec<(String, String)> = (0..1_200)
        .map(|i| {
            (
                format!("runtime/resources/Listener-l{i}.yaml"),
                format!("name: l{i}\n"),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str, u32)> = files
        .iter()
        .map(|(r, t)| (r.as_str(), t.as_str(), 0o644))
        .collect();
    apply(ns, &outcome(&borrowed)).unwrap();
    let runtime = read_runtime(ns).unwrap();
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(r, t)| (r.clone(), t.as_bytes().to_vec()))
        .collect();
    assert_eq!(runtime, expected);
}

#[test]
fn a_hollow_read_lists_records_and_reads_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path();
    apply(
        ns,
        &outcome(&[
            ("runtime/resources/Listener-a.yaml", "name: a\n", 0o644),
            ("runtime/status.yaml", "status: x\n", 0o644),
        ]),
    )
    .unwrap();
    let full = read_runtime(ns).unwrap();
    let mut hollowed = full.clone();
    crate::plan::hollow_records(&mut hollowed);
    let hollow = read_runtime_hollow(ns).unwrap();
    assert_eq!(hollow, hollowed);
    assert_eq!(hollow["runtime/status.yaml"], b"status: x\n");
    assert!(hollow["runtime/resources/Listener-a.yaml"].is_empty());
}

#[test]
fn input_files_are_read_whole_and_big_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("a.yaml");
    fs::write(&small, "kind: A\n").unwrap();
    let parsed = read_input_file("input/resources/a.yaml", &small);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    assert_eq!(parsed.documents.len(), 1);
    let big = dir.path().join("b.yaml");
    fs::write(&big, vec![b'#'; MAX_FILE_BYTES + 10]).unwrap();
    let parsed = read_input_file("input/resources/b.yaml", &big);
    assert!(parsed.problems[0].message.contains("over 1 MiB"));
    let parsed = read_input_file("input/resources/c.yaml", &dir.path().join("c.yaml"));
    assert!(parsed.problems[0].message.contains("cannot be read"));
}

#[test]
fn issuers_are_read_like_bundles_with_links_leaving_the_namespace_refused() {
    let home = tempfile::tempdir().unwrap();
    let ns = home.path().join("west");
    assert!(read_issuers(&ns).bundles.is_empty(), "no input/issuers/");
    let ca = ns.join("input/issuers/my-ca");
    fs::create_dir_all(&ca).unwrap();
    fs::write(ca.join("tls.crt"), "cert").unwrap();
    fs::write(ca.join("tls.key"), "key").unwrap();
    fs::set_permissions(ca.join("tls.key"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(home.path().join("outside.crt"), "elsewhere").unwrap();
    std::os::unix::fs::symlink(home.path().join("outside.crt"), ca.join("ca.crt")).unwrap();
    fs::write(ca.join("notes.txt"), "ignored").unwrap();

    let issuers = read_issuers(&ns);
    let files = &issuers.bundles["my-ca"].files;
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["ca.crt", "tls.crt", "tls.key"]
    );
    let key = files["tls.key"].as_ref().unwrap();
    assert_eq!((key.bytes.as_slice(), key.mode), (&b"key"[..], 0o600));
    assert_eq!(files["ca.crt"], Err(FileRefusal::SymlinkLeavesNamespace));
    assert!(
        read_bundles(&ns).bundles.is_empty(),
        "issuers are not bundles"
    );
}

#[test]
fn a_file_where_input_certs_should_be_makes_every_bundle_unknown_not_absent() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("input/certs"));
    let certs = read_bundles(dir.path());
    assert!(certs.bundles.is_empty());
    assert_eq!(
        certs.get("web"),
        Err("input/certs cannot be read: Not a directory (os error 20)".to_string())
    );
}

/// Runs `f` on its own thread and fails the test when it takes longer
/// than a few seconds: a read that blocks is a failure, not a hang.
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("reading blocked")
}

fn mkfifo(path: &Path) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

fn refusal(certs: &InputCerts, bundle: &str, file: &str) -> Option<FileRefusal> {
    certs.bundles[bundle].files[file].clone().err()
}

#[test]
fn an_input_certs_entry_that_cannot_be_read_is_refused_alone() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("input/certs");
    fs::create_dir_all(&certs).unwrap();
    std::os::unix::fs::symlink("loop", certs.join("loop")).unwrap();
    fs::create_dir(certs.join("web")).unwrap();
    fs::write(certs.join("web/tls.crt"), "CRT").unwrap();
    std::os::unix::fs::symlink("missing", certs.join("web/tls.key")).unwrap();
    std::os::unix::fs::symlink("ca.crt", certs.join("web/ca.crt")).unwrap();
    // A stray file is no bundle; a dangling link to a bundle is none.
    fs::write(certs.join("README"), "notes").unwrap();
    std::os::unix::fs::symlink("missing", certs.join("gone")).unwrap();

    let read = read_bundles(dir.path());
    assert_eq!(read.unreadable, None);
    assert_eq!(
        read.bundles.keys().collect::<Vec<_>>(),
        ["loop", "web"],
        "{read:?}"
    );
    let why = match &read.bundles["loop"].refused {
        Some(FileRefusal::Unreadable(why)) => why.clone(),
        other => panic!("{other:?}"),
    };
    assert!(why.contains("Too many levels of symbolic links"), "{why}");
    assert!(read
        .get("loop")
        .unwrap_err()
        .starts_with("input/certs/loop cannot be read: Too many levels of symbolic links"));
    // Its neighbour is read as ever, with its own refusals.
    let web = read.get("web").unwrap().unwrap();
    assert_eq!(web.files["tls.crt"].as_ref().unwrap().bytes, b"CRT");
    assert!(matches!(
        refusal(&read, "web", "tls.key"),
        Some(FileRefusal::Unreadable(w)) if w.contains("No such file")
    ));
    assert!(matches!(
        refusal(&read, "web", "ca.crt"),
        Some(FileRefusal::Unreadable(w)) if w.contains("Too many levels")
    ));
    assert_eq!(read.get("other"), Ok(None));
}

#[test]
fn bundle_links_are_read_inside_the_namespace_only() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("key"), "SECRET").unwrap();
    let web = dir.path().join("input/certs/web");
    fs::create_dir_all(&web).unwrap();
    fs::write(dir.path().join("input/shared.crt"), "SHARED").unwrap();
    std::os::unix::fs::symlink("../../shared.crt", web.join("tls.crt")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("key"), web.join("tls.key")).unwrap();
    let read = read_bundles(dir.path());
    assert_eq!(
        read.bundles["web"].files["tls.crt"].as_ref().unwrap().bytes,
        b"SHARED"
    );
    assert_eq!(
        refusal(&read, "web", "tls.key"),
        Some(FileRefusal::SymlinkLeavesNamespace)
    );
}

#[test]
fn bundle_directories_linked_out_of_the_namespace_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("tls.key"), "SECRET").unwrap();
    let certs = dir.path().join("input/certs");
    fs::create_dir_all(dir.path().join("keep/mine")).unwrap();
    fs::write(dir.path().join("keep/mine/tls.key"), "MINE").unwrap();
    fs::create_dir_all(&certs).unwrap();
    std::os::unix::fs::symlink(outside.path(), certs.join("out")).unwrap();
    std::os::unix::fs::symlink("/etc", certs.join("etc")).unwrap();
    std::os::unix::fs::symlink("../../keep/mine", certs.join("in")).unwrap();
    let read = read_bundles(dir.path());
    for name in ["out", "etc"] {
        assert_eq!(
            read.bundles[name].refused,
            Some(FileRefusal::SymlinkLeavesNamespace),
            "{name}"
        );
        assert!(read.bundles[name].files.is_empty(), "{name}");
    }
    assert_eq!(
        read.bundles["in"].files["tls.key"].as_ref().unwrap().bytes,
        b"MINE"
    );
}

#[test]
fn special_files_in_input_certs_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("input/certs");
    mkfifo(&certs.join("web/tls.crt"));
    fs::write(certs.join("web/tls.key"), "KEY").unwrap();
    // A link inside the namespace to a FIFO is refused the same way.
    std::os::unix::fs::symlink("tls.crt", certs.join("web/ca.crt")).unwrap();
    mkfifo(&certs.join("pipe"));
    let _socket = std::os::unix::net::UnixListener::bind(certs.join("sock")).unwrap();
    fs::create_dir(certs.join("web2")).unwrap();
    let _inner = std::os::unix::net::UnixListener::bind(certs.join("web2/tls.crt")).unwrap();
    let ns = dir.path().to_path_buf();
    let read = promptly(move || read_bundles(&ns));
    let fifo = FileRefusal::NotRegular("a FIFO");
    assert_eq!(refusal(&read, "web", "tls.crt"), Some(fifo.clone()));
    assert_eq!(refusal(&read, "web", "ca.crt"), Some(fifo.clone()));
    assert_eq!(
        read.bundles["web"].files["tls.key"].as_ref().unwrap().bytes,
        b"KEY"
    );
    assert_eq!(read.bundles["pipe"].refused, Some(fifo));
    assert_eq!(
        read.bundles["sock"].refused,
        Some(FileRefusal::NotRegular("a socket"))
    );
    assert_eq!(
        refusal(&read, "web2", "tls.crt"),
        Some(FileRefusal::NotRegular("a socket"))
    );
    assert_eq!(
        read.get("pipe"),
        Err("input/certs/pipe is a FIFO: not a regular file, refused".to_string())
    );
}

#[test]
#[allow(clippy::result_large_err)]
fn a_fifo_as_the_platform_file_is_an_error_not_a_wait() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("internal/platform.yaml"));
    let ns = dir.path().to_path_buf();
    assert_eq!(
        promptly(move || read_platform(&ns, Platform::Podman)).map_err(|p| p.message),
        Err("internal/platform.yaml is a FIFO: not a regular file, refused".to_string())
    );
}

#[test]
fn special_files_in_input_resources_are_listed_and_read_as_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("input/resources");
    touch(&res.join("a.yaml"));
    mkfifo(&res.join("fifo.yaml"));
    // Whatever its name: it is reported, not silently skipped.
    mkfifo(&res.join("team/pipe"));
    mkfifo(&res.join(".hidden-pipe"));
    std::os::unix::fs::symlink("fifo.yaml", res.join("link.yaml")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(res.join("sock.yaml")).unwrap();
    let ns = dir.path().to_path_buf();
    let parsed = promptly(move || {
        list_input_files(&ns)
            .unwrap()
            .into_iter()
            .map(|(rel, path)| {
                let file = read_input_file(&rel, &path);
                (rel, file.problems)
            })
            .collect::<Vec<_>>()
    });
    let shown: Vec<(String, Vec<String>)> = parsed
        .into_iter()
        .map(|(rel, problems)| {
            let texts = problems
                .iter()
                .map(|p| {
                    assert_eq!(p.file.as_deref(), Some(rel.as_str()));
                    assert!(!p.is_error(), "{p:?}");
                    p.message.clone()
                })
                .collect();
            (rel, texts)
        })
        .collect();
    let warn = |rel: &str, what: &str| {
        (
            rel.to_string(),
            vec![format!("{rel} is {what}: not a regular file, ignored")],
        )
    };
    assert_eq!(
        shown,
        vec![
            ("input/resources/a.yaml".to_string(), vec![]),
            warn("input/resources/fifo.yaml", "a FIFO"),
            warn("input/resources/link.yaml", "a FIFO"),
            warn("input/resources/sock.yaml", "a socket"),
            warn("input/resources/team/pipe", "a FIFO"),
        ]
    );
}

#[test]
fn big_files_are_refused_with_their_size_and_resolved_paths_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    fs::write(&big, vec![b'#'; MAX_FILE_BYTES + 10]).unwrap();
    match read_regular(&big, Links::Follow) {
        Err(Refusal::TooLarge(n)) => assert_eq!(n, MAX_FILE_BYTES as u64 + 10),
        other => panic!("{other:?}"),
    }
    let parsed = read_input_file("input/resources/big.yaml", &big);
    assert_eq!(
        parsed.problems[0].message,
        format!(
            "input/resources/big.yaml is {} bytes; files over 1 MiB are refused",
            MAX_FILE_BYTES + 10
        )
    );
    // Links are refused where the caller resolved them already.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&big, &link).unwrap();
    match read_regular(&link, Links::Refuse) {
        Err(Refusal::Io(e)) => assert_eq!(e.raw_os_error(), Some(40), "{e}"),
        other => panic!("{other:?}"),
    }
}
