//! The inotify watcher of one data home (through the notify crate).
//!
//! What is watched, each directory on its own (non-recursive watches, so
//! this module, not notify, decides when a new subdirectory is armed):
//! - `<data home>/namespaces/`, or its nearest existing ancestor while it is
//!   missing;
//! - per namespace: the namespace directory, `input/`, `internal/` (for
//!   `platform.yaml`) and every directory under `input/resources/`,
//!   `input/certs/` and `input/issuers/` (symbolic links not followed).
//!
//! `runtime/` is never watched, so skupperd's own writes never trigger a
//! reconcile. Opens and read-only closes are ignored for the same reason
//! (the actor reads the input it is told about).
//!
//! # Guarantees
//! - A directory is armed before it is listed, and a `Dirty` (or
//!   `NamespaceAppeared`) is sent after every newly armed directory, so a
//!   scan started on receipt sees everything written before the watch
//!   existed. The same holds for the ancestors of a missing
//!   `namespaces/`: after arming one, the next level down is checked
//!   again, so a level created in between is not missed.
//! - Deleting and re-creating any watched directory, the namespace
//!   directory or `namespaces/` itself re-arms the watches: a directory
//!   event at a structural place re-walks that namespace, and a directory
//!   whose inode changed is re-armed.
//! - What we believe is armed is what notify has armed. notify drops its
//!   watch on a path (and every watch below it) by itself when it reports
//!   that path deleted or renamed away, even when the event is stale and
//!   the watch is one we added for a new directory at the same path. So
//!   every such event makes us forget (and unwatch) what we held at and
//!   below the path, and the re-walk arms it again; a directory's identity
//!   (device, inode) is never trusted across a deletion, because file
//!   systems reuse inode numbers at once.
//! - One watch per directory inode: inotify gives a second path to the
//!   same inode the same watch descriptor, so a directory that moved is
//!   unwatched under its old path before it is armed under the new one.
//! - Nothing is dropped: the channel is unbounded; an inotify overflow or
//!   a watcher error sends `RescanAll`, drops every watch and re-arms
//!   everything from scratch.
//! - A `Dirty` names the files under `input/resources/` its events named
//!   ([`Changed::Files`]) only while that is the whole story: any
//!   directory event in a namespace (a tree root, `input/`, a subdirectory
//!   created, moved or deleted), a newly armed watch, an event without a
//!   path or a path that is not UTF-8 makes it [`Changed::Everything`].
//!
//! One thread owns the watcher state; the notify callback only forwards
//! events to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use notify::event::{CreateKind, ModifyKind, RemoveKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

use super::{Changed, Trigger, WatchEvent};

mod dirs;
mod layout;
#[cfg(test)]
mod tests;

use dirs::{dir_id, list_namespaces, subdirectories, DirId};
use layout::{classify, gone_paths, is_read, merge, structural, Place};

/// Subdirectories of `input/` that are watched as whole trees.
const TREES: [(&str, Trigger); 3] = [
    ("resources", Trigger::Input),
    ("certs", Trigger::Certs),
    ("issuers", Trigger::Certs),
];

/// Deeper trees are not followed (no symlinks are followed, so this only
/// guards against bind-mount loops).
const MAX_DEPTH: usize = 32;

/// Most inotify events handled as one batch.
const MAX_BATCH: usize = 4096;

/// Errors starting the watcher. Once started, problems are logged and
/// turned into `RescanAll`, never returned.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// inotify could not be initialised (e.g. the per-user instance limit).
    #[error("cannot start the inotify watcher: {0}")]
    Init(#[source] notify::Error),
    /// The watch thread could not be spawned.
    #[error("cannot start the watch thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A running watcher. Dropping it stops the watch thread, which then drops
/// the event sender.
#[derive(Debug)]
pub struct Watcher {
    control: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

enum Msg {
    Fs(notify::Result<notify::Event>),
    Stop,
}

// === impl Watcher ===

impl Watcher {
    /// Arms the watches of `data_home` and sends `NamespaceAppeared` for
    /// every namespace present now; both are done when this returns.
    ///
    /// # Errors
    /// Only when inotify or the thread cannot be started; a missing data
    /// home is watched through its nearest existing ancestor.
    pub fn start(
        data_home: &Path,
        events: UnboundedSender<WatchEvent>,
    ) -> Result<Watcher, WatchError> {
        let (control, inbox) = mpsc::channel();
        let state = State::start(data_home, events, control.clone())?;
        let thread = std::thread::Builder::new()
            .name("skupperd-watch".to_string())
            .spawn(move || state.run(&inbox))
            .map_err(WatchError::Thread)?;
        Ok(Watcher {
            control,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.control.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the watch thread panicked");
            }
        }
    }
}

/// The watch thread's state.
struct State {
    namespaces_dir: PathBuf,
    watcher: RecommendedWatcher,
    /// Every directory we hold a watch on, with the identity it had.
    /// Ordered, so that a path and everything below it form one range.
    armed: BTreeMap<PathBuf, DirId>,
    /// The path each armed identity is watched under (one per inode).
    by_id: HashMap<DirId, PathBuf>,
    /// Namespaces announced with `NamespaceAppeared`, by directory identity.
    namespaces: BTreeMap<String, DirId>,
    events: UnboundedSender<WatchEvent>,
    /// The inotify watch limit is logged once, not per directory.
    limit_warned: bool,
}

/// What one batch of inotify events asks for.
#[derive(Default)]
struct Batch {
    rescan: bool,
    top: bool,
    /// An event named no path: every namespace lists its input again.
    unknown: bool,
    frames: BTreeSet<String>,
    dirty: BTreeMap<String, (Trigger, Changed)>,
    /// Paths reported deleted or renamed away (see [`gone_paths`]).
    gone: BTreeSet<PathBuf>,
}

// === impl State ===

impl State {
    /// Creates the notify watcher (its events go to `forward`), arms the
    /// watches and sends the first announcements.
    fn start(
        data_home: &Path,
        events: UnboundedSender<WatchEvent>,
        forward: mpsc::Sender<Msg>,
    ) -> Result<State, WatchError> {
        // Every kind but opens and read-only closes: skupperd's own reads
        // of the input would otherwise queue one event each (a full read
        // of 10,000 files: 10,000 events, about 85 ms of CPU on the notify
        // and watch threads, and an overflow of the kernel's 16,384-event
        // queue past that many files). Writes still end in a close-write.
        let kinds = notify::EventKindMask::CORE | notify::EventKindMask::ACCESS_CLOSE;
        let watcher = RecommendedWatcher::new(
            move |event| {
                // The receiver only goes away when the thread has stopped.
                let _ = forward.send(Msg::Fs(event));
            },
            notify::Config::default().with_event_kinds(kinds),
        )
        .map_err(WatchError::Init)?;
        let mut state = State {
            namespaces_dir: data_home.join("namespaces"),
            watcher,
            armed: BTreeMap::new(),
            by_id: HashMap::new(),
            namespaces: BTreeMap::new(),
            events,
            limit_warned: false,
        };
        let mut out = Vec::new();
        state.reconcile_top(&mut out, &mut BTreeMap::new(), &BTreeSet::new());
        state.send(out);
        Ok(state)
    }

    fn run(mut self, inbox: &mpsc::Receiver<Msg>) {
        while let Ok(msg) = inbox.recv() {
            let mut batch = Batch::default();
            let mut stop = !self.note(msg, &mut batch);
            // What is already queued joins this batch (one re-walk and one
            // Dirty per namespace for a burst), up to a bound, so a steady
            // stream of events still gets its Dirty out.
            for _ in 1..MAX_BATCH {
                if stop {
                    break;
                }
                match inbox.try_recv() {
                    Ok(msg) => stop = !self.note(msg, &mut batch),
                    Err(_) => break,
                }
            }
            if !self.apply(batch) || stop {
                break;
            }
        }
        debug!("watch thread stopped");
    }

    /// Adds one message to the batch; false on `Stop`.
    fn note(&self, msg: Msg, batch: &mut Batch) -> bool {
        let event = match msg {
            Msg::Stop => return false,
            Msg::Fs(Ok(event)) => event,
            Msg::Fs(Err(err)) => {
                warn!(error = %err, "file watcher error; rescanning every namespace");
                batch.rescan = true;
                return true;
            }
        };
        if event.need_rescan() {
            warn!("inotify queue overflow; rescanning every namespace");
            batch.rescan = true;
            return true;
        }
        if is_read(&event.kind) {
            return true;
        }
        if event.paths.is_empty() {
            debug!(
                ?event,
                "file event without a path; every namespace lists its input again"
            );
            batch.unknown = true;
            return true;
        }
        batch.gone.extend(gone_paths(&event).iter().cloned());
        for path in &event.paths {
            match classify(&self.namespaces_dir, path) {
                Place::Top => batch.top = true,
                Place::Frame { ns, trigger } => {
                    batch.frames.insert(ns.clone());
                    merge(&mut batch.dirty, ns, trigger, structural(trigger));
                }
                Place::Content { ns, trigger } => {
                    let changed = if self.is_directory_event(&event.kind, path) {
                        batch.frames.insert(ns.clone());
                        structural(trigger)
                    } else {
                        self.changed_file(&ns, path)
                    };
                    merge(&mut batch.dirty, ns, trigger, changed);
                }
                Place::Ignored => {}
            }
        }
        true
    }

    /// What a file event at `path` in namespace `ns` changed: the file
    /// itself when it is under `input/resources/` (the rest of the input
    /// is read in full on every pass).
    fn changed_file(&self, ns: &str, path: &Path) -> Changed {
        let Ok(rel) = path.strip_prefix(self.namespaces_dir.join(ns)) else {
            return Changed::Everything;
        };
        if !rel.starts_with("input/resources") {
            return Changed::none();
        }
        match rel.to_str() {
            Some(rel) => Changed::file(rel),
            // The cache keys files by a lossy name: only a full listing
            // finds such a file under its key.
            None => Changed::Everything,
        }
    }

    fn is_directory_event(&self, kind: &EventKind, path: &Path) -> bool {
        match kind {
            EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => true,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => {
                self.armed.contains_key(path) || path.symlink_metadata().is_ok_and(|m| m.is_dir())
            }
            _ => false,
        }
    }

    /// Re-walks what the batch asks for, then sends; false once the
    /// receiver is gone.
    fn apply(&mut self, mut batch: Batch) -> bool {
        let mut out = Vec::new();
        // Namespaces whose directory may have been replaced, even by one
        // with the same inode number.
        let mut replaced = BTreeSet::new();
        if batch.rescan {
            out.push(WatchEvent::RescanAll);
            // Events were lost, so no watch can be trusted: start afresh.
            let all: Vec<PathBuf> = self.armed.keys().cloned().collect();
            for path in all {
                self.disarm(&path);
            }
        }
        for path in std::mem::take(&mut batch.gone) {
            self.forget(&path, &mut batch, &mut replaced);
        }
        let before: BTreeSet<String> = self.namespaces.keys().cloned().collect();
        // Events of a namespace not announced yet mean the top level moved.
        batch.top |= batch.frames.iter().any(|ns| !before.contains(ns))
            || batch.dirty.keys().any(|ns| !before.contains(ns));
        if batch.unknown {
            for ns in &before {
                merge(
                    &mut batch.dirty,
                    ns.clone(),
                    Trigger::Input,
                    Changed::Everything,
                );
            }
        }
        if batch.rescan || batch.top {
            self.reconcile_top(&mut out, &mut batch.dirty, &replaced);
        } else {
            for ns in &batch.frames {
                if let Some(trigger) = self.reconcile_ns(ns) {
                    merge(&mut batch.dirty, ns.clone(), trigger, structural(trigger));
                }
            }
        }
        for (ns, (reason, changed)) in batch.dirty {
            // A namespace announced (or gone) in this batch needs no Dirty.
            let announced = out
                .iter()
                .any(|e| matches!(e, WatchEvent::NamespaceAppeared(n) if *n == ns));
            if before.contains(&ns) && self.namespaces.contains_key(&ns) && !announced {
                out.push(WatchEvent::Dirty {
                    namespace: ns,
                    reason,
                    changed,
                });
            }
        }
        self.send(out)
    }

    /// `path` was reported deleted or renamed away: notify has dropped
    /// (or is about to drop, before it handles our next request) its
    /// watches at and below it, so drop ours too and re-walk what held
    /// them. A namespace directory (or `namespaces/`, or an ancestor)
    /// reported gone is announced anew if it is back.
    fn forget(&mut self, path: &Path, batch: &mut Batch, replaced: &mut BTreeSet<String>) {
        for dir in self.armed_under(path) {
            self.disarm(&dir);
            match classify(&self.namespaces_dir, &dir) {
                Place::Top => batch.top = true,
                Place::Frame { ns, .. } | Place::Content { ns, .. } => {
                    batch.frames.insert(ns);
                }
                Place::Ignored => {}
            }
        }
        if self.namespaces_dir.starts_with(path) {
            replaced.extend(self.namespaces.keys().cloned());
            batch.top = true;
        } else if path.parent() == Some(self.namespaces_dir.as_path()) {
            let name = path.file_name().and_then(|n| n.to_str());
            if let Some(ns) = name.filter(|n| self.namespaces.contains_key(*n)) {
                replaced.insert(ns.to_string());
                batch.top = true;
            }
        }
    }

    fn send(&self, out: Vec<WatchEvent>) -> bool {
        for event in out {
            debug!(?event, "watch event");
            if self.events.send(event).is_err() {
                return false;
            }
        }
        true
    }

    /// Re-arms `namespaces/` (or its nearest existing ancestor), finds the
    /// namespaces that came and went, and re-walks every namespace.
    /// `replaced` namespaces are announced gone, and again if present.
    fn reconcile_top(
        &mut self,
        out: &mut Vec<WatchEvent>,
        dirty: &mut BTreeMap<String, (Trigger, Changed)>,
        replaced: &BTreeSet<String>,
    ) {
        let nsd = self.namespaces_dir.clone();
        let mut seen = BTreeSet::new();
        if let Some(anchor) = self.arm_anchor() {
            seen.insert(anchor);
        }
        let stale: Vec<PathBuf> = self
            .armed
            .keys()
            .filter(|p| (*p == &nsd || !p.starts_with(&nsd)) && !seen.contains(*p))
            .cloned()
            .collect();
        for path in stale {
            self.disarm(&path);
        }
        let present = match list_namespaces(&nsd) {
            Ok(present) => present,
            Err(err) => {
                // Unreadable is not empty: announcing every namespace gone
                // would stop their routers. The next top-level event, or
                // the periodic resync, lists again.
                warn!(path = %shown(&nsd), error = %err, "cannot list namespaces; keeping the known ones");
                self.namespaces.clone()
            }
        };
        let known: Vec<(String, DirId)> = self
            .namespaces
            .iter()
            .map(|(n, id)| (n.clone(), *id))
            .collect();
        for (ns, id) in known {
            if present.get(&ns) != Some(&id) || replaced.contains(&ns) {
                self.namespaces.remove(&ns);
                self.disarm_under(&nsd.join(&ns), &BTreeSet::new());
                out.push(WatchEvent::NamespaceGone(ns));
            }
        }
        for (ns, id) in present {
            let new = !self.namespaces.contains_key(&ns);
            let newly_armed = self.reconcile_ns(&ns);
            if new {
                self.namespaces.insert(ns.clone(), id);
                out.push(WatchEvent::NamespaceAppeared(ns));
            } else if let Some(trigger) = newly_armed {
                merge(dirty, ns, trigger, structural(trigger));
            }
        }
    }

    /// Arms `namespaces/`, or while it is missing its nearest existing
    /// ancestor, and returns what was armed. Arm first, look below second:
    /// a level created before the watch existed is found by the look and
    /// armed in turn; one created after it is reported by the watch.
    fn arm_anchor(&mut self) -> Option<PathBuf> {
        let nsd = self.namespaces_dir.clone();
        // `namespaces/` first, then each parent up to the root.
        let chain: Vec<&Path> = nsd.ancestors().collect();
        let mut at = None;
        for (i, dir) in chain.iter().enumerate() {
            if self.ensure(dir).is_some() {
                at = Some(i);
                break;
            }
        }
        let mut at = at?;
        while let Some(below) = at.checked_sub(1).and_then(|i| chain.get(i)) {
            if self.ensure(below).is_none() {
                break;
            }
            at -= 1;
        }
        chain.get(at).map(|dir| dir.to_path_buf())
    }

    /// Arms one namespace's directories top-down and disarms those that
    /// are gone; returns the trigger of the newly armed ones, if any.
    fn reconcile_ns(&mut self, ns: &str) -> Option<Trigger> {
        let ns_dir = self.namespaces_dir.join(ns);
        let mut seen = BTreeSet::new();
        let mut newly = None;
        let mut arm =
            |state: &mut State, path: &Path, trigger: Trigger, seen: &mut BTreeSet<PathBuf>| {
                let armed = state.ensure(path)?;
                seen.insert(path.to_path_buf());
                if armed {
                    newly = Some(newly.map_or(trigger, |t: Trigger| t.merge(trigger)));
                }
                Some(())
            };
        if arm(self, &ns_dir, Trigger::Input, &mut seen).is_some() {
            let input = ns_dir.join("input");
            if arm(self, &input, Trigger::Input, &mut seen).is_some() {
                for (name, trigger) in TREES {
                    let mut stack = vec![(input.join(name), 0)];
                    while let Some((dir, depth)) = stack.pop() {
                        if arm(self, &dir, trigger, &mut seen).is_none() || depth >= MAX_DEPTH {
                            continue;
                        }
                        match subdirectories(&dir) {
                            Ok(subs) => stack.extend(subs.into_iter().map(|d| (d, depth + 1))),
                            Err(err) => {
                                // Unlisted is not empty: keep what is
                                // armed below rather than disarm it.
                                warn!(path = %shown(&dir), error = %err, "cannot list directory; keeping its watches");
                                seen.extend(self.armed_under(&dir));
                            }
                        }
                    }
                }
            }
            let _ = arm(self, &ns_dir.join("internal"), Trigger::Input, &mut seen);
        }
        self.disarm_under(&ns_dir, &seen);
        newly
    }

    /// Makes sure `path` is watched when it is a directory: `None` when it
    /// is not one, `Some(true)` when a watch was added now.
    fn ensure(&mut self, path: &Path) -> Option<bool> {
        let id = dir_id(path)?;
        match self.armed.get(path) {
            Some(old) if *old == id => return Some(false),
            Some(_) => self.disarm(path),
            None => {}
        }
        if let Some(other) = self.by_id.get(&id).cloned() {
            if dir_id(&other) == Some(id) {
                // An alias (bind mount, symbolic link): inotify would hand
                // both paths one descriptor, so the first one keeps it.
                debug!(path = %path.display(), watched = %other.display(), "directory already watched under another path");
                return Some(false);
            }
            // The directory moved here (or its inode number was reused):
            // unwatching the old path later would remove this watch.
            self.disarm(&other);
        }
        match self.watcher.watch(path, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.armed.insert(path.to_path_buf(), id);
                self.by_id.insert(id, path.to_path_buf());
                Some(true)
            }
            Err(err) if matches!(err.kind, notify::ErrorKind::PathNotFound) => None,
            // Gone while being armed (notify stats it after adding).
            Err(_) if dir_id(path).is_none() => None,
            Err(err) => {
                // Still a directory worth walking; the periodic resync
                // covers what this watch would have seen.
                if !matches!(err.kind, notify::ErrorKind::MaxFilesWatch) || !self.limit_warned {
                    warn!(path = %shown(path), error = %err, "cannot watch directory; changes there are seen at the next resync");
                }
                self.limit_warned |= matches!(err.kind, notify::ErrorKind::MaxFilesWatch);
                Some(false)
            }
        }
    }

    fn disarm(&mut self, path: &Path) {
        if let Some(id) = self.armed.remove(path) {
            if self.by_id.get(&id).is_some_and(|p| p == path) {
                self.by_id.remove(&id);
            }
            // notify may have dropped it already when the directory went.
            let _ = self.watcher.unwatch(path);
        }
    }

    fn disarm_under(&mut self, root: &Path, keep: &BTreeSet<PathBuf>) {
        for path in self.armed_under(root) {
            if !keep.contains(&path) {
                self.disarm(&path);
            }
        }
    }

    /// The armed directories at and below `root`: one range of the map,
    /// as paths order component by component.
    fn armed_under(&self, root: &Path) -> Vec<PathBuf> {
        self.armed
            .range::<Path, _>((Bound::Included(root), Bound::Unbounded))
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(root))
            .cloned()
            .collect()
    }
}

/// A path for the log: directory names below `input/` are the user's and
/// may hold control characters, shown escaped.
fn shown(path: &Path) -> String {
    crate::problem::escape_controls(&path.to_string_lossy()).into_owned()
}
