//! Making staged files durable: an fsync each for a single file, one
//! `syncfs` per file system for many (started early for very many).

use super::{io_at, StoreError};
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Up to this many changed files are made durable with an fsync each;
/// more share one `syncfs`.
///
/// Measured with small files in one existing directory of a fresh ext4
/// file system on the 2-core development VM (medians of five runs):
/// one file takes 1.7 ms with its own fsync and 2.5 ms with `syncfs`,
/// two files 2.5 ms against 2.0 ms, 1,000 files 560 ms against 60 ms.
/// So one changed file, the common case of an edit, keeps its own fsync;
/// it also does not make the edit wait for whatever else is dirty on the
/// file system, which `syncfs` flushes too.
pub(super) const FSYNC_EACH_UP_TO: usize = 1;

/// How the temporary files of one apply reach the disk before the first
/// of them is renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// An fsync of each temporary file as it is written.
    EachFile,
    /// One `syncfs` per file system once all are written.
    SyncFs,
}

/// From this many files on, a first `syncfs` starts once half of them are
/// written, on its own thread.
pub(super) const EARLY_SYNC_FROM: usize = 2_048;

/// Runs `write` (which calls the function it is given once per file
/// written); when `early`, a `syncfs` of `dirs` starts on another thread
/// as soon as `half` files are written. The disk then takes the first half
/// while the second is written, and the final `syncfs` (the one whose
/// result counts) waits for less: 10,000 small files waited 37-54 ms
/// instead of 90-97 ms on this VM. An error of the early one is not
/// reported: the final one meets it again.
pub(super) fn with_early_sync<R>(
    early: bool,
    dirs: &[PathBuf],
    half: usize,
    write: impl FnOnce(&(dyn Fn() + Sync)) -> R,
) -> R {
    if !early {
        return write(&|| {});
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // Without the thread the write simply goes without the early sync.
        let _syncer = std::thread::Builder::new()
            .name("skupperd-sync".to_string())
            .spawn_scoped(scope, move || {
                if rx.recv().is_ok() {
                    let _ = sync_file_systems(dirs.iter().map(PathBuf::as_path));
                }
            });
        let half_done = || {
            if done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == half {
                let _ = tx.send(());
            }
        };
        // Returning drops `tx`, which ends the sync thread if half was
        // never reached; the scope then waits for it.
        write(&half_done)
    })
}

/// One `syncfs` for each file system the directories `dirs` live on.
pub(super) fn sync_file_systems<'a>(
    dirs: impl IntoIterator<Item = &'a Path>,
) -> Result<(), StoreError> {
    let mut synced = HashSet::new();
    for dir in dirs {
        let d = fs::File::open(dir).map_err(io_at(dir))?;
        let dev = d.metadata().map_err(io_at(dir))?.dev();
        if synced.insert(dev) {
            rustix::fs::syncfs(&d).map_err(|e| io_at(dir)(e.into()))?;
        }
    }
    Ok(())
}
