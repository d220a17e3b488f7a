//! Where an event lands in the data home's layout, and what it changed:
//! pure functions over paths and notify's event kinds.

use super::TREES;
use crate::watch::{Changed, Trigger};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::EventKind;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Where an event's path sits in the data home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
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

pub(super) fn classify(namespaces_dir: &Path, path: &Path) -> Place {
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
pub(super) fn is_read(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

/// The paths an event reports as gone from where they were: notify's
/// inotify backend removes its own watches at and below exactly these
/// (on `DELETE`, `DELETE_SELF` and `MOVED_FROM`). A rename's "to" side is
/// not among them (a "both" event repeats its "from", already reported).
pub(super) fn gone_paths(event: &notify::Event) -> &[PathBuf] {
    match event.kind {
        EventKind::Remove(_)
        | EventKind::Modify(ModifyKind::Name(
            RenameMode::From | RenameMode::Any | RenameMode::Other,
        )) => &event.paths,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            event.paths.get(..1).unwrap_or_default()
        }
        _ => &[],
    }
}

/// What a directory event or a newly armed directory changed: a
/// directory under `input/` (or `input/`, or `internal/`) may have brought
/// or taken whole directories of input files, which the events did not
/// name one by one. Certificates and issuers are read in full on every
/// pass anyway (`Certs` never comes from the resources tree).
pub(super) fn structural(trigger: Trigger) -> Changed {
    if trigger == Trigger::Certs {
        Changed::none()
    } else {
        Changed::Everything
    }
}

pub(super) fn merge(
    dirty: &mut BTreeMap<String, (Trigger, Changed)>,
    ns: String,
    trigger: Trigger,
    changed: Changed,
) {
    match dirty.entry(ns) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert((trigger, changed));
        }
        std::collections::btree_map::Entry::Occupied(mut e) => {
            let (t, c) = e.get_mut();
            *t = t.merge(trigger);
            c.merge(changed);
        }
    }
}
