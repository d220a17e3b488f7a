//! Real inotify in temporary directories. Every wait is bounded by a
//! patience; negative checks use a sentinel namespace: events are handled
//! in order, so once the sentinel's `Dirty` arrives, anything the earlier
//! action caused has arrived before it. That holds across watches (one
//! inotify instance has one queue, read in order), and inside one batch
//! too because `Dirty` events go out in namespace order and the
//! sentinel's name sorts after every namespace the tests use.
//!
//! The loops below repeat a racy sequence many times without waiting in
//! between: each race is lost only now and then, so one pass proves
//! little, forty make a regression fail almost every run.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::*;

const PATIENCE: Duration = Duration::from_secs(20);

struct Site {
    _dir: tempfile::TempDir,
    data_home: PathBuf,
    rx: UnboundedReceiver<WatchEvent>,
    watcher: Option<Watcher>,
}

impl Site {
    /// A data home with the given namespaces (each with `input/resources`)
    /// and a sentinel namespace `zz-sentinel`, watched.
    fn start(namespaces: &[&str]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let data_home = dir.path().join("dh");
        for ns in namespaces.iter().chain(&["zz-sentinel"]) {
            fs::create_dir_all(
                data_home
                    .join("namespaces")
                    .join(ns)
                    .join("input/resources"),
            )
            .unwrap();
        }
        Site::watch(dir, data_home)
    }

    fn watch(dir: tempfile::TempDir, data_home: PathBuf) -> Site {
        let (tx, rx) = unbounded_channel();
        let watcher = Watcher::start(&data_home, tx).unwrap();
        Site {
            _dir: dir,
            data_home,
            rx,
            watcher: Some(watcher),
        }
    }

    fn ns(&self, ns: &str) -> PathBuf {
        self.data_home.join("namespaces").join(ns)
    }

    /// Waits for an event matching `want`; returns the events before it.
    async fn expect(&mut self, what: &str, want: impl Fn(&WatchEvent) -> bool) -> Vec<WatchEvent> {
        let mut before = Vec::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(event)) if want(&event) => return before,
                Ok(Some(event)) => before.push(event),
                Ok(None) => panic!("channel closed waiting for {what}; got {before:?}"),
                Err(_) => panic!("no {what} within {PATIENCE:?}; got {before:?}"),
            }
        }
    }

    /// Waits for a `Dirty` of `ns` for `reason`, whatever files it names.
    async fn expect_dirty(&mut self, ns: &str, reason: Trigger) -> Vec<WatchEvent> {
        let want = dirty(ns, reason);
        self.expect(&format!("{want:?}"), |e| unnamed(e) == want)
            .await
    }

    /// Writes a new file in the sentinel namespace and waits for its
    /// Dirty: returns every event caused before that write.
    async fn settle(&mut self) -> Vec<WatchEvent> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = self
            .ns("zz-sentinel")
            .join(format!("input/resources/s{n}.yaml"));
        fs::write(path, "kind: Site\n").unwrap();
        self.expect_dirty("zz-sentinel", Trigger::Input).await
    }

    /// Asserts the events caused so far are exactly `want` (files named
    /// aside), ignoring sentinel events.
    async fn assert_settled(&mut self, want: &[WatchEvent]) {
        let got: Vec<WatchEvent> = self
            .settle()
            .await
            .into_iter()
            .filter(
                |e| !matches!(e, WatchEvent::Dirty { namespace, .. } if namespace == "zz-sentinel"),
            )
            .map(|e| unnamed(&e))
            .collect();
        assert_eq!(got, want);
    }
}

/// A `Dirty` naming no file.
fn dirty(ns: &str, reason: Trigger) -> WatchEvent {
    WatchEvent::Dirty {
        namespace: ns.to_string(),
        reason,
        changed: Changed::none(),
    }
}

/// `event` with the files it names left out, for the tests that are about
/// which namespaces are marked, not which files.
fn unnamed(event: &WatchEvent) -> WatchEvent {
    match event {
        WatchEvent::Dirty {
            namespace, reason, ..
        } => dirty(namespace, *reason),
        other => other.clone(),
    }
}

fn appeared(ns: &str) -> WatchEvent {
    WatchEvent::NamespaceAppeared(ns.to_string())
}

#[test]
fn classify_places_paths_in_the_layout() {
    let nsd = Path::new("/dh/namespaces");
    let c = |p: &str| classify(nsd, Path::new(p));
    let frame = |ns: &str, trigger| Place::Frame {
        ns: ns.to_string(),
        trigger,
    };
    let content = |ns: &str, trigger| Place::Content {
        ns: ns.to_string(),
        trigger,
    };
    assert_eq!(c("/dh"), Place::Top);
    assert_eq!(c("/dh/namespaces"), Place::Top);
    assert_eq!(c("/dh/namespaces/west"), Place::Top);
    assert_eq!(c("/dh/namespaces/controller.lock"), Place::Top);
    assert_eq!(c("/dh/other"), Place::Ignored);
    assert_eq!(
        c("/dh/namespaces/west/input"),
        frame("west", Trigger::Input)
    );
    assert_eq!(
        c("/dh/namespaces/west/internal"),
        frame("west", Trigger::Input)
    );
    assert_eq!(
        c("/dh/namespaces/west/input/resources"),
        frame("west", Trigger::Input)
    );
    assert_eq!(
        c("/dh/namespaces/west/input/certs"),
        frame("west", Trigger::Certs)
    );
    assert_eq!(
        c("/dh/namespaces/west/input/resources/a/b.yaml"),
        content("west", Trigger::Input)
    );
    assert_eq!(
        c("/dh/namespaces/west/input/issuers/ca/tls.key"),
        content("west", Trigger::Certs)
    );
    assert_eq!(
        c("/dh/namespaces/west/internal/platform.yaml"),
        content("west", Trigger::Input)
    );
    assert_eq!(c("/dh/namespaces/west/internal/other"), Place::Ignored);
    assert_eq!(c("/dh/namespaces/west/input/notes.txt"), Place::Ignored);
    assert_eq!(c("/dh/namespaces/west/runtime"), Place::Ignored);
    assert_eq!(
        c("/dh/namespaces/west/runtime/router/skrouterd.json"),
        Place::Ignored
    );
}

#[tokio::test]
async fn start_announces_existing_namespace_directories_only() {
    let dir = tempfile::tempdir().unwrap();
    let nsd = dir.path().join("dh/namespaces");
    for ns in ["west", "east", ".hidden"] {
        fs::create_dir_all(nsd.join(ns)).unwrap();
    }
    fs::write(nsd.join("controller.lock"), "").unwrap();
    let mut site = Site::watch(dir, dir_path(&nsd));
    assert_eq!(site.rx.try_recv().unwrap(), appeared("east"));
    assert_eq!(site.rx.try_recv().unwrap(), appeared("west"));
    assert!(
        site.rx.try_recv().is_err(),
        "announced before start returns, and nothing else"
    );
}

fn dir_path(nsd: &Path) -> PathBuf {
    nsd.parent().unwrap().to_path_buf()
}

async fn started(namespaces: &[&str]) -> Site {
    let mut site = Site::start(namespaces);
    for _ in 0..=namespaces.len() {
        site.expect("startup announcement", |e| {
            matches!(e, WatchEvent::NamespaceAppeared(_))
        })
        .await;
    }
    site
}

#[tokio::test]
async fn editor_save_patterns_mark_the_namespace_dirty() {
    let mut site = started(&["inplace", "truncate", "vim", "rename"]).await;
    for ns in ["inplace", "truncate", "vim", "rename"] {
        fs::write(site.ns(ns).join("input/resources/x.yaml"), "kind: Site\n").unwrap();
    }
    site.settle().await;

    // Write in place (open without truncating, overwrite).
    let path = site.ns("inplace").join("input/resources/x.yaml");
    let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(b"kind: Listener").unwrap();
    drop(f);
    site.expect_dirty("inplace", Trigger::Input).await;

    // Truncate, then write.
    let path = site.ns("truncate").join("input/resources/x.yaml");
    fs::File::create(&path).unwrap();
    fs::write(&path, "kind: Connector\n").unwrap();
    site.expect_dirty("truncate", Trigger::Input).await;

    // vim: swap file, rename the original to a backup, write anew, delete
    // the backup and the swap file.
    let res = site.ns("vim").join("input/resources");
    fs::write(res.join(".x.yaml.swp"), "swap").unwrap();
    fs::rename(res.join("x.yaml"), res.join("x.yaml~")).unwrap();
    fs::write(res.join("x.yaml"), "kind: Site\nmetadata: {}\n").unwrap();
    fs::remove_file(res.join("x.yaml~")).unwrap();
    fs::remove_file(res.join(".x.yaml.swp")).unwrap();
    site.expect_dirty("vim", Trigger::Input).await;

    // A temporary file renamed into place.
    let res = site.ns("rename").join("input/resources");
    fs::write(res.join(".x.yaml.tmp"), "kind: Link\n").unwrap();
    fs::rename(res.join(".x.yaml.tmp"), res.join("x.yaml")).unwrap();
    site.expect_dirty("rename", Trigger::Input).await;
}

#[tokio::test]
async fn runtime_writes_and_reads_never_trigger() {
    let mut site = started(&["west"]).await;
    let ns = site.ns("west");
    fs::write(ns.join("input/resources/site.yaml"), "kind: Site\n").unwrap();
    // internal/ appearing is a change (platform.yaml may be inside).
    fs::create_dir_all(ns.join("internal")).unwrap();
    site.expect_dirty("west", Trigger::Input).await;
    site.settle().await;

    fs::create_dir_all(ns.join("runtime/router")).unwrap();
    fs::write(ns.join("runtime/router/skrouterd.json"), "[]").unwrap();
    fs::write(ns.join("runtime/status.yaml"), "status: ok\n").unwrap();
    fs::write(ns.join("internal/other.yaml"), "x").unwrap();
    fs::write(ns.join("input/README"), "x").unwrap();
    let _ = fs::read(ns.join("input/resources/site.yaml")).unwrap();
    let _ = fs::read_dir(ns.join("input/resources")).unwrap().count();
    site.assert_settled(&[]).await;
}

#[tokio::test]
async fn certs_issuers_and_platform_file_mark_the_namespace_dirty() {
    let mut site = started(&["west"]).await;
    let ns = site.ns("west");
    fs::create_dir_all(ns.join("input/certs/tls")).unwrap();
    fs::write(ns.join("input/certs/tls/tls.crt"), "pem").unwrap();
    site.expect_dirty("west", Trigger::Certs).await;
    site.settle().await;

    // The bundle directory was created after the watch on certs/: its own
    // watch must be armed, or this rewrite goes unseen.
    fs::write(ns.join("input/certs/tls/tls.crt"), "pem2").unwrap();
    site.expect_dirty("west", Trigger::Certs).await;

    fs::create_dir_all(ns.join("input/issuers/ca")).unwrap();
    fs::write(ns.join("input/issuers/ca/ca.crt"), "pem").unwrap();
    site.expect_dirty("west", Trigger::Certs).await;

    fs::create_dir_all(ns.join("internal")).unwrap();
    site.settle().await;
    fs::write(ns.join("internal/platform.yaml"), "platform: linux\n").unwrap();
    site.expect_dirty("west", Trigger::Input).await;
}

#[tokio::test]
async fn deleting_and_recreating_input_resources_rearms_its_watch() {
    let mut site = started(&["west"]).await;
    let res = site.ns("west").join("input/resources");
    fs::write(res.join("site.yaml"), "kind: Site\n").unwrap();
    site.expect_dirty("west", Trigger::Input).await;

    fs::remove_dir_all(&res).unwrap();
    site.expect_dirty("west", Trigger::Input).await;
    fs::create_dir_all(res.join("nested")).unwrap();
    fs::write(res.join("nested/site.yaml"), "kind: Site\n").unwrap();
    site.expect_dirty("west", Trigger::Input).await;
    site.settle().await;

    // Only a re-armed watch on the new nested directory sees this.
    fs::write(res.join("nested/site.yaml"), "kind: Site\nmetadata: {}\n").unwrap();
    site.expect_dirty("west", Trigger::Input).await;

    // Same with the whole input/ directory.
    fs::remove_dir_all(site.ns("west").join("input")).unwrap();
    site.expect_dirty("west", Trigger::Input).await;
    fs::create_dir_all(&res).unwrap();
    site.settle().await;
    fs::write(res.join("site.yaml"), "kind: Site\n").unwrap();
    site.expect_dirty("west", Trigger::Input).await;
}

#[tokio::test]
async fn deleting_and_recreating_the_namespace_directory() {
    let mut site = started(&["west"]).await;
    let ns = site.ns("west");
    fs::remove_dir_all(&ns).unwrap();
    site.expect("west gone", |e| {
        *e == WatchEvent::NamespaceGone("west".into())
    })
    .await;

    fs::create_dir_all(ns.join("input/resources")).unwrap();
    fs::write(ns.join("input/resources/site.yaml"), "kind: Site\n").unwrap();
    site.expect("west back", |e| *e == appeared("west")).await;
    site.settle().await;
    fs::write(
        ns.join("input/resources/site.yaml"),
        "kind: Site\nspec: {}\n",
    )
    .unwrap();
    site.expect_dirty("west", Trigger::Input).await;

    // A new namespace appears too, and a rename away is a removal.
    fs::create_dir_all(site.ns("east")).unwrap();
    site.expect("east", |e| *e == appeared("east")).await;
    fs::rename(site.ns("east"), site.data_home.join("east-moved")).unwrap();
    site.expect("east gone", |e| {
        *e == WatchEvent::NamespaceGone("east".into())
    })
    .await;
}

#[tokio::test]
async fn a_missing_data_home_is_watched_through_its_nearest_ancestor() {
    let dir = tempfile::tempdir().unwrap();
    let data_home = dir.path().join("not/yet/dh");
    let mut site = Site::watch(dir, data_home.clone());
    assert!(site.rx.try_recv().is_err());

    let res = data_home.join("namespaces/west/input/resources");
    fs::create_dir_all(&res).unwrap();
    fs::write(res.join("site.yaml"), "kind: Site\n").unwrap();
    site.expect("west", |e| *e == appeared("west")).await;

    fs::create_dir_all(site.ns("zz-sentinel").join("input/resources")).unwrap();
    site.expect("sentinel", |e| *e == appeared("zz-sentinel"))
        .await;
    site.settle().await;
    fs::write(res.join("site.yaml"), "kind: Site\nspec: {}\n").unwrap();
    site.expect_dirty("west", Trigger::Input).await;

    // The whole namespaces/ directory goes and comes back.
    fs::remove_dir_all(data_home.join("namespaces")).unwrap();
    site.expect("west gone", |e| {
        *e == WatchEvent::NamespaceGone("west".into())
    })
    .await;
    fs::create_dir_all(&res).unwrap();
    site.expect("west again", |e| *e == appeared("west")).await;
}

#[tokio::test]
async fn a_burst_of_a_thousand_files_loses_nothing() {
    let mut site = started(&["west"]).await;
    let res = site.ns("west").join("input/resources");
    for i in 0..999 {
        fs::write(res.join(format!("r{i}.yaml")), "kind: Listener\n").unwrap();
    }
    let mut last = fs::File::create(res.join("r999.yaml")).unwrap();
    last.write_all(b"kind: Listener\n").unwrap();
    // The close below happens after this instant, and so does the event
    // it causes: some event must be received after it.
    let before_last_close = Instant::now();
    drop(last);

    let mut received = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline, site.rx.recv())
            .await
            .expect("the last write's event must arrive")
            .unwrap();
        assert_eq!(
            unnamed(&event),
            dirty("west", Trigger::Input),
            "a burst is only Dirty events"
        );
        received += 1;
        if Instant::now() > before_last_close {
            break;
        }
    }
    assert!(received >= 1);
}

#[tokio::test]
async fn overflow_and_errors_ask_for_a_rescan() {
    let mut site = started(&["west"]).await;
    let control = site.watcher.as_ref().unwrap().control.clone();
    let overflow =
        notify::Event::new(notify::EventKind::Other).set_flag(notify::event::Flag::Rescan);
    control.send(Msg::Fs(Ok(overflow))).unwrap();
    site.expect("rescan", |e| *e == WatchEvent::RescanAll).await;
    let error = notify::Error::generic("boom");
    control.send(Msg::Fs(Err(error))).unwrap();
    site.expect("rescan", |e| *e == WatchEvent::RescanAll).await;
    // The watches still work after the re-walk.
    fs::write(site.ns("west").join("input/resources/a.yaml"), "x").unwrap();
    site.expect_dirty("west", Trigger::Input).await;
}

#[tokio::test]
async fn dropping_the_watcher_closes_the_channel() {
    let mut site = started(&["west"]).await;
    drop(site.watcher.take());
    let closed =
        tokio::time::timeout(PATIENCE, async { while site.rx.recv().await.is_some() {} }).await;
    assert!(
        closed.is_ok(),
        "the sender must be dropped with the watcher"
    );
}

/// Deleting a directory and re-creating it at once races the deletion's
/// events (`DELETE_SELF` on the directory, `DELETE` in its parent) against
/// the re-arm; every cycle must end with working watches on the new tree.
#[tokio::test]
async fn repeated_delete_and_recreate_cycles_never_lose_a_watch() {
    let mut site = started(&["west"]).await;
    let input = site.ns("west").join("input");
    let res = input.join("resources");
    for i in 0..40 {
        // Alternate the deleted level: the tree root, or input/ above it.
        fs::remove_dir_all(if i % 2 == 0 { &res } else { &input }).unwrap();
        fs::create_dir_all(res.join("nested")).unwrap();
        site.settle().await;
        fs::write(res.join("nested/site.yaml"), format!("kind: Site # {i}\n")).unwrap();
        site.expect_dirty("west", Trigger::Input).await;
    }
}

/// A directory renamed inside a watched tree keeps its inode, hence its
/// inotify watch descriptor: it must be watched under its new path, and
/// unwatching the old path must not take that watch away.
#[tokio::test]
async fn a_directory_renamed_inside_a_tree_stays_watched() {
    let mut site = started(&["west"]).await;
    let res = site.ns("west").join("input/resources");
    fs::create_dir_all(res.join("d0")).unwrap();
    site.settle().await;
    for i in 0..40 {
        // A sibling appearing just before may make the watcher walk the
        // tree before the rename's own events are handled (when the
        // timing allows; notify usually drops the old watch first).
        fs::create_dir(res.join(format!("s{i}"))).unwrap();
        fs::rename(res.join(format!("d{i}")), res.join(format!("d{}", i + 1))).unwrap();
        site.settle().await;
        fs::write(res.join(format!("d{}/site.yaml", i + 1)), "kind: Site\n").unwrap();
        site.expect_dirty("west", Trigger::Input).await;
    }
}

/// The data home created from nothing, level by level as `mkdir -p` does,
/// while the watcher climbs down from the nearest existing ancestor.
#[tokio::test]
async fn a_data_home_created_from_nothing_is_always_followed_down() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let data_home = dir.path().join("a/b/dh");
        let mut site = Site::watch(dir, data_home.clone());
        fs::create_dir_all(site.ns("west").join("input/resources")).unwrap();
        site.expect("west", |e| *e == appeared("west")).await;
        // namespaces/ itself must be watched by now.
        fs::create_dir_all(site.ns("zz-sentinel").join("input/resources")).unwrap();
        site.expect("sentinel", |e| *e == appeared("zz-sentinel"))
            .await;
        site.settle().await;
        fs::write(
            site.ns("west").join("input/resources/site.yaml"),
            "kind: Site\n",
        )
        .unwrap();
        site.expect_dirty("west", Trigger::Input).await;
    }
}

/// The watch state driven by hand, without its thread, so that a test
/// decides which events are handled when.
struct Manual {
    _dir: tempfile::TempDir,
    nsd: PathBuf,
    state: State,
    inbox: std::sync::mpsc::Receiver<Msg>,
    rx: UnboundedReceiver<WatchEvent>,
    markers: u64,
}

impl Manual {
    /// A data home with `west/input/resources/nested`, armed.
    fn start() -> Manual {
        let dir = tempfile::tempdir().unwrap();
        let data_home = dir.path().join("dh");
        let nsd = data_home.join("namespaces");
        fs::create_dir_all(nsd.join("west/input/resources/nested")).unwrap();
        let (forward, inbox) = std::sync::mpsc::channel();
        let (tx, mut rx) = unbounded_channel();
        let state = State::start(&data_home, tx, forward).unwrap();
        assert_eq!(rx.try_recv().unwrap(), appeared("west"));
        Manual {
            _dir: dir,
            nsd,
            state,
            inbox,
            rx,
            markers: 0,
        }
    }

    /// Handles every inotify event caused so far as one batch (a marker
    /// written to `west/input/` now is the last of them) and returns what
    /// the watcher sent.
    fn handle_pending(&mut self) -> Vec<WatchEvent> {
        self.markers += 1;
        let marker = self.nsd.join(format!("west/input/marker{}", self.markers));
        fs::write(&marker, "").unwrap();
        let mut batch = Batch::default();
        loop {
            let msg = self
                .inbox
                .recv_timeout(PATIENCE)
                .expect("the marker's event");
            let is_marker = matches!(&msg, Msg::Fs(Ok(e)) if e.paths.contains(&marker));
            self.state.note(msg, &mut batch);
            if is_marker {
                break;
            }
        }
        assert!(self.state.apply(batch));
        std::iter::from_fn(|| self.rx.try_recv().ok()).collect()
    }
}

/// A directory deleted and re-created before the watcher handles the
/// deletion, then walked because of some other event: on ext4 the new
/// directory nearly always gets the old inode number, so it looks armed
/// while its watch died with the old directory. The deletion's events,
/// handled afterwards, must arm it again.
#[test]
fn a_directory_recreated_before_its_deletion_is_handled_is_armed_again() {
    let mut m = Manual::start();
    let nested = m.nsd.join("west/input/resources/nested");
    fs::remove_dir(&nested).unwrap();
    fs::create_dir(&nested).unwrap();
    let mut walk = Batch::default();
    walk.frames.insert("west".to_string());
    assert!(m.state.apply(walk));
    m.handle_pending();

    fs::write(nested.join("site.yaml"), "kind: Site\n").unwrap();
    assert_eq!(
        m.handle_pending(),
        [named(
            Trigger::Input,
            Changed::file("input/resources/nested/site.yaml")
        )]
    );
}

fn named(reason: Trigger, changed: Changed) -> WatchEvent {
    WatchEvent::Dirty {
        namespace: "west".to_string(),
        reason,
        changed,
    }
}

fn files(rels: &[&str]) -> Changed {
    Changed::Files(
        rels.iter()
            .map(|r| format!("input/resources/{r}"))
            .collect(),
    )
}

#[test]
fn file_events_name_their_files_and_directory_events_mean_everything() {
    let mut m = Manual::start();
    let res = m.nsd.join("west/input/resources");
    fs::write(res.join("nested/c.yaml"), "kind: Site\n").unwrap();
    fs::write(res.join("gone.yaml"), "kind: Site\n").unwrap();
    m.handle_pending();

    // Written, renamed into place, deleted, renamed out of the tree.
    fs::write(res.join("a.yaml"), "kind: Site\n").unwrap();
    fs::write(res.join(".b.yaml.tmp"), "kind: Site\n").unwrap();
    fs::rename(res.join(".b.yaml.tmp"), res.join("b.yaml")).unwrap();
    fs::remove_file(res.join("nested/c.yaml")).unwrap();
    fs::rename(res.join("gone.yaml"), m.nsd.join("gone.yaml")).unwrap();
    assert_eq!(
        m.handle_pending(),
        [named(
            Trigger::Input,
            files(&[
                "a.yaml",
                ".b.yaml.tmp",
                "b.yaml",
                "nested/c.yaml",
                "gone.yaml"
            ])
        )]
    );

    // A subdirectory created, renamed, deleted: whole directories of files.
    fs::create_dir(res.join("sub")).unwrap();
    assert_eq!(
        m.handle_pending(),
        [named(Trigger::Input, Changed::Everything)]
    );
    fs::rename(res.join("sub"), res.join("sub2")).unwrap();
    assert_eq!(
        m.handle_pending(),
        [named(Trigger::Input, Changed::Everything)]
    );
    fs::remove_dir(res.join("sub2")).unwrap();
    assert_eq!(
        m.handle_pending(),
        [named(Trigger::Input, Changed::Everything)]
    );
    // The tree root itself.
    fs::remove_dir_all(&res).unwrap();
    fs::create_dir(&res).unwrap();
    assert_eq!(
        m.handle_pending(),
        [named(Trigger::Input, Changed::Everything)]
    );
}

#[test]
fn other_input_names_no_resource_file_and_a_pathless_event_means_everything() {
    let mut m = Manual::start();
    let ns = m.nsd.join("west");
    fs::create_dir_all(ns.join("internal")).unwrap();
    fs::create_dir_all(ns.join("input/certs/tls")).unwrap();
    m.handle_pending();

    fs::write(ns.join("internal/platform.yaml"), "platform: linux\n").unwrap();
    assert_eq!(m.handle_pending(), [named(Trigger::Input, Changed::none())]);
    fs::write(ns.join("input/certs/tls/tls.crt"), "pem").unwrap();
    assert_eq!(m.handle_pending(), [named(Trigger::Certs, Changed::none())]);
    // A new bundle directory: read in full on every pass anyway.
    fs::create_dir(ns.join("input/certs/other")).unwrap();
    assert_eq!(m.handle_pending(), [named(Trigger::Certs, Changed::none())]);

    let mut batch = Batch::default();
    let pathless = notify::Event::new(EventKind::Modify(ModifyKind::Any));
    assert!(m.state.note(Msg::Fs(Ok(pathless)), &mut batch));
    assert!(m.state.apply(batch));
    let sent: Vec<WatchEvent> = std::iter::from_fn(|| m.rx.try_recv().ok()).collect();
    assert_eq!(sent, [named(Trigger::Input, Changed::Everything)]);
}

/// Reads of the input reach the watcher as nothing at all, not as events
/// it must drop: a full read of a big namespace would otherwise queue one
/// event per file (and overflow the kernel's queue past 16,384 files).
/// A write still arrives, ending in its close.
#[test]
fn reading_input_files_queues_no_events() {
    let mut m = Manual::start();
    let res = m.nsd.join("west/input/resources");
    for i in 0..50 {
        fs::write(res.join(format!("l{i}.yaml")), "kind: Listener\n").unwrap();
    }
    m.handle_pending();

    for i in 0..50 {
        let _ = fs::read(res.join(format!("l{i}.yaml"))).unwrap();
    }
    let marker = m.nsd.join("west/input/marker-read");
    fs::write(&marker, "").unwrap();
    let mut before_marker = Vec::new();
    loop {
        match m.inbox.recv_timeout(PATIENCE).expect("the marker's event") {
            Msg::Fs(Ok(e)) if e.paths.contains(&marker) => break,
            // The close of an earlier marker.
            Msg::Fs(Ok(e))
                if e.paths.iter().all(|p| {
                    p.parent() == Some(&m.nsd.join("west/input"))
                        && p.to_string_lossy().contains("/marker")
                }) => {}
            other => before_marker.push(other),
        }
    }
    assert!(
        before_marker.is_empty(),
        "{} events for 50 reads, the first: {:?}",
        before_marker.len(),
        before_marker.first().map(|m| match m {
            Msg::Fs(Ok(e)) => format!("{:?}", e.kind),
            _ => "other".to_string(),
        })
    );

    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(res.join("l7.yaml"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"# edited\n").unwrap();
    drop(f);
    let got = m.handle_pending();
    assert!(
        got.iter().any(|e| matches!(e, WatchEvent::Dirty { .. })),
        "{got:?}"
    );
}
