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
//!   existed.
//! - Deleting and re-creating any watched directory, the namespace
//!   directory or `namespaces/` itself re-arms the watches: a directory
//!   event at a structural place re-walks that namespace, and a directory
//!   whose inode changed is re-armed.
//! - Nothing is dropped: the channel is unbounded; an inotify overflow or
//!   a watcher error sends `RescanAll` and re-walks everything.
//!
//! One thread owns the watcher state; the notify callback only forwards
//! events to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

use super::{Trigger, WatchEvent};

#[cfg(test)]
mod tests;

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
        let forward = control.clone();
        let watcher = notify::recommended_watcher(move |event| {
            // The receiver only goes away when the thread has stopped.
            let _ = forward.send(Msg::Fs(event));
        })
        .map_err(WatchError::Init)?;
        let mut state = State {
            namespaces_dir: data_home.join("namespaces"),
            watcher,
            armed: HashMap::new(),
            namespaces: BTreeMap::new(),
            events,
            limit_warned: false,
        };
        let mut out = Vec::new();
        state.reconcile_top(&mut out, &mut BTreeMap::new());
        state.send(out);
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

/// Identity of a directory: a re-created directory has a new inode.
type DirId = (u64, u64);

/// Where an event's path sits in the data home.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// `namespaces/` or an ancestor, a namespace directory, or another
    /// entry of `namespaces/` (such as `controller.lock`).
    Top,
    /// `input/`, `internal/` or a tree root: its appearance or removal
    /// changes what is watched.
    Frame {
        ns: String,
        trigger: Trigger,
    },
    /// Inside a watched tree, or `internal/platform.yaml`.
    Content {
        ns: String,
        trigger: Trigger,
    },
    Ignored,
}

fn classify(namespaces_dir: &Path, path: &Path) -> Place {
    let Ok(rest) = path.strip_prefix(namespaces_dir) else {
        return if namespaces_dir.starts_with(path) {
            Place::Top
        } else {
            Place::Ignored
        };
    };
    let parts: Vec<&str> = rest
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str().unwrap_or("\u{fffd}"),
            _ => "\u{fffd}",
        })
        .collect();
    let at = |ns: &str, trigger, frame| {
        let ns = ns.to_string();
        if frame {
            Place::Frame { ns, trigger }
        } else {
            Place::Content { ns, trigger }
        }
    };
    match parts.as_slice() {
        [] | [_] => Place::Top,
        [ns, "input" | "internal"] => at(ns, Trigger::Input, true),
        [ns, "input", tree, rest @ ..] => match TREES.iter().find(|t| t.0 == *tree) {
            Some(&(_, trigger)) => at(ns, trigger, rest.is_empty()),
            None => Place::Ignored,
        },
        [ns, "internal", "platform.yaml"] => at(ns, Trigger::Input, false),
        _ => Place::Ignored,
    }
}

/// Opens and read-only closes are our own (or anyone's) reads.
fn is_read(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

/// The watch thread's state.
struct State {
    namespaces_dir: PathBuf,
    watcher: RecommendedWatcher,
    /// Every directory we hold a watch on, with the identity it had.
    armed: HashMap<PathBuf, DirId>,
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
    frames: BTreeSet<String>,
    dirty: BTreeMap<String, Trigger>,
}

// === impl State ===

impl State {
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
        for path in &event.paths {
            match classify(&self.namespaces_dir, path) {
                Place::Top => batch.top = true,
                Place::Frame { ns, trigger } => {
                    batch.frames.insert(ns.clone());
                    merge(&mut batch.dirty, ns, trigger);
                }
                Place::Content { ns, trigger } => {
                    if self.is_directory_event(&event.kind, path) {
                        batch.frames.insert(ns.clone());
                    }
                    merge(&mut batch.dirty, ns, trigger);
                }
                Place::Ignored => {}
            }
        }
        true
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
        if batch.rescan {
            out.push(WatchEvent::RescanAll);
        }
        let before: BTreeSet<String> = self.namespaces.keys().cloned().collect();
        // Events of a namespace not announced yet mean the top level moved.
        batch.top |= batch.frames.iter().any(|ns| !before.contains(ns))
            || batch.dirty.keys().any(|ns| !before.contains(ns));
        if batch.rescan || batch.top {
            self.reconcile_top(&mut out, &mut batch.dirty);
        } else {
            for ns in &batch.frames {
                if let Some(trigger) = self.reconcile_ns(ns) {
                    merge(&mut batch.dirty, ns.clone(), trigger);
                }
            }
        }
        for (ns, reason) in batch.dirty {
            // A namespace announced (or gone) in this batch needs no Dirty.
            if before.contains(&ns) && self.namespaces.contains_key(&ns) {
                out.push(WatchEvent::Dirty {
                    namespace: ns,
                    reason,
                });
            }
        }
        self.send(out)
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
    fn reconcile_top(&mut self, out: &mut Vec<WatchEvent>, dirty: &mut BTreeMap<String, Trigger>) {
        let nsd = self.namespaces_dir.clone();
        // Arm first, list second: a namespace created in between is listed.
        let mut anchor = nsd.as_path();
        let mut seen = BTreeSet::new();
        loop {
            if self.ensure(anchor).is_some() {
                seen.insert(anchor.to_path_buf());
                break;
            }
            match anchor.parent() {
                Some(parent) => anchor = parent,
                None => break,
            }
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
        let present = list_namespaces(&nsd);
        let known: Vec<(String, DirId)> = self
            .namespaces
            .iter()
            .map(|(n, id)| (n.clone(), *id))
            .collect();
        for (ns, id) in known {
            if present.get(&ns) != Some(&id) {
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
                merge(dirty, ns, trigger);
            }
        }
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
                        stack.extend(subdirectories(&dir).into_iter().map(|d| (d, depth + 1)));
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
        let meta = path.metadata().ok().filter(|m| m.is_dir())?;
        let id = (meta.dev(), meta.ino());
        match self.armed.get(path) {
            Some(old) if *old == id => return Some(false),
            Some(_) => self.disarm(path),
            None => {}
        }
        match self.watcher.watch(path, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.armed.insert(path.to_path_buf(), id);
                Some(true)
            }
            Err(err) if matches!(err.kind, notify::ErrorKind::PathNotFound) => None,
            Err(err) => {
                // Still a directory worth walking; the periodic resync
                // covers what this watch would have seen.
                if !matches!(err.kind, notify::ErrorKind::MaxFilesWatch) || !self.limit_warned {
                    warn!(path = %path.display(), error = %err, "cannot watch directory; changes there are seen at the next resync");
                }
                self.limit_warned |= matches!(err.kind, notify::ErrorKind::MaxFilesWatch);
                Some(false)
            }
        }
    }

    fn disarm(&mut self, path: &Path) {
        if self.armed.remove(path).is_some() {
            // notify may have dropped it already when the directory went.
            let _ = self.watcher.unwatch(path);
        }
    }

    fn disarm_under(&mut self, root: &Path, keep: &BTreeSet<PathBuf>) {
        let stale: Vec<PathBuf> = self
            .armed
            .keys()
            .filter(|p| p.starts_with(root) && !keep.contains(*p))
            .cloned()
            .collect();
        for path in stale {
            self.disarm(&path);
        }
    }
}

fn merge(dirty: &mut BTreeMap<String, Trigger>, ns: String, trigger: Trigger) {
    dirty
        .entry(ns)
        .and_modify(|t| *t = t.merge(trigger))
        .or_insert(trigger);
}

/// Namespace directories: entries of `namespaces/` that are directories
/// (symlinks followed) with UTF-8 names not starting with a dot.
fn list_namespaces(nsd: &Path) -> BTreeMap<String, DirId> {
    let Ok(entries) = std::fs::read_dir(nsd) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let meta = entry.path().metadata().ok().filter(|m| m.is_dir())?;
            (!name.starts_with('.')).then(|| (name, (meta.dev(), meta.ino())))
        })
        .collect()
}

/// Real subdirectories (symlinks not followed).
fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}
