//! Staging one apply's files: temporaries beside their targets (or a
//! hidden copy of a directory tree that does not exist yet), published by
//! rename, and undone on drop; the temporaries an unfinished apply left.

use super::sync::Durability;
use super::{io_at, StoreError};
use crate::plan::is_owned;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Directory mode for a runtime path: key material is private.
pub(super) fn dir_mode(rel_dir: &str) -> u32 {
    if rel_dir.starts_with("runtime/certs")
        || rel_dir.starts_with("runtime/issuers")
        || rel_dir.starts_with("runtime/links")
    {
        0o700
    } else {
        0o755
    }
}

/// What one apply stages before anything is published, and undoes if it
/// fails. Targets are paths relative to `base`, in the order they are to
/// be published. A target in an existing directory is written under its
/// own temporary name beside it; every target below a directory that does
/// not exist yet (a `root`: all of `runtime/` on a cold start) is written
/// into a temporary copy of that directory's tree, which is renamed into
/// place whole: one rename instead of one per file (10,000 renames took
/// 120-170 ms on this VM), and readers see the new tree complete or not at
/// all. Paths are derived when used instead of kept. Dropping it removes
/// whatever was staged and not published (never-written temporaries
/// included: removing what is not there is harmless), so an error at any
/// step leaves no temporary file behind.
pub(super) struct Staged<'a> {
    base: &'a Path,
    targets: Vec<&'a Path>,
    /// Top-most missing directories, with whether they are published.
    roots: Vec<(&'a Path, bool)>,
    published: usize,
}

impl<'a> Staged<'a> {
    /// Claims `targets` and `roots`, before anything of theirs exists.
    pub(super) fn new(base: &'a Path, targets: Vec<&'a Path>, roots: Vec<&'a Path>) -> Staged<'a> {
        Staged {
            base,
            targets,
            roots: roots.into_iter().map(|r| (r, false)).collect(),
            published: 0,
        }
    }

    /// The root `target` is staged under, if any.
    pub(super) fn root_of(&self, target: &Path) -> Option<usize> {
        self.roots.iter().position(|(r, _)| target.starts_with(r))
    }

    /// Where `rel` (a file or directory) is while it is staged below a
    /// root; `None` when it is not below one.
    pub(super) fn in_staged_tree(&self, rel: &Path) -> Option<PathBuf> {
        let root = self.roots[self.root_of(rel)?].0;
        let rest = rel.strip_prefix(root).unwrap_or(Path::new(""));
        Some(temp_path(&self.base.join(root)).join(rest))
    }

    /// Where `target` is written before it is published.
    pub(super) fn staging_path(&self, target: &Path) -> PathBuf {
        self.in_staged_tree(target)
            .unwrap_or_else(|| temp_path(&self.base.join(target)))
    }

    /// Where directory `rel_dir` is while staging: its staged copy below a
    /// root, else itself.
    pub(super) fn dir_now(&self, rel_dir: &Path) -> PathBuf {
        self.in_staged_tree(rel_dir)
            .unwrap_or_else(|| self.base.join(rel_dir))
    }

    /// Removes the staged trees a crash may have left behind.
    pub(super) fn clear_leftovers(&self) -> Result<(), StoreError> {
        for (root, _) in &self.roots {
            let staged_root = temp_path(&self.base.join(root));
            match fs::remove_dir_all(&staged_root) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_at(&staged_root)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Creates the staged copy of `rel_dir` (below a root), and of each
    /// directory between it and its root, with the modes the real ones get.
    pub(super) fn make_dir(&self, rel_dir: &Path) -> Result<(), StoreError> {
        let Some(i) = self.root_of(rel_dir) else {
            return Ok(());
        };
        let root = self.roots[i].0;
        let mut chain: Vec<&Path> = rel_dir
            .ancestors()
            .take_while(|d| d.starts_with(root))
            .collect();
        chain.reverse();
        for dir in chain {
            let at = self.dir_now(dir);
            if !at.is_dir() {
                fs::create_dir(&at).map_err(io_at(&at))?;
                let mode = dir_mode(&dir.to_string_lossy());
                fs::set_permissions(&at, fs::Permissions::from_mode(mode)).map_err(io_at(&at))?;
            }
        }
        Ok(())
    }

    /// Publishes in target order (the first target below a root publishes
    /// its whole tree), then makes the renames durable with one fsync per
    /// directory that received one.
    pub(super) fn publish(&mut self) -> Result<(), StoreError> {
        let mut dirs: Vec<&Path> = Vec::new();
        while let Some(&rel) = self.targets.get(self.published) {
            let root = self.root_of(rel);
            let renamed = match root {
                Some(i) if self.roots[i].1 => {
                    self.published += 1;
                    continue;
                }
                Some(i) => self.roots[i].0,
                None => rel,
            };
            let to = self.base.join(renamed);
            fs::rename(temp_path(&to), &to).map_err(io_at(&to))?;
            if let Some(i) = root {
                self.roots[i].1 = true;
            }
            self.published += 1;
            let dir = renamed.parent().unwrap_or(Path::new(""));
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        for dir in dirs {
            let dir = self.base.join(dir);
            fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io_at(&dir))?;
        }
        Ok(())
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        // Best effort: the error that got us here is the one to report.
        for rel in self.targets.iter().skip(self.published) {
            if self.root_of(rel).is_none() {
                let _ = fs::remove_file(temp_path(&self.base.join(rel)));
            }
        }
        for (root, published) in &self.roots {
            if !published {
                let _ = fs::remove_dir_all(temp_path(&self.base.join(root)));
            }
        }
    }
}

/// The top-most directory of `rel_dir` (relative to `base`) that does not
/// exist, if any.
pub(super) fn first_missing<'d>(base: &Path, rel_dir: &'d Path) -> Option<&'d Path> {
    let mut above: Vec<&Path> = rel_dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .collect();
    above.reverse();
    above.into_iter().find(|a| !base.join(a).is_dir())
}

/// Writes `bytes` to the new file `path`, mode first so the content is
/// never readable with a wider mode than asked for.
pub(super) fn write_new(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durability: Durability,
) -> Result<(), StoreError> {
    let open = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
    };
    // Always a new file, so `mode` applies: a temporary left by a crash
    // is removed first (it may have another mode).
    let mut f = match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path).map_err(io_at(path))?;
            open()
        }
        other => other,
    }
    .map_err(io_at(path))?;
    // The mode given at creation is narrowed by the umask; only when
    // that took a bit away does the file need a chmod (a cold start
    // creates thousands of files).
    if umask().is_none_or(|mask| mode & mask != 0) {
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_at(path))?;
    }
    f.write_all(bytes).map_err(io_at(path))?;
    if durability == Durability::EachFile {
        f.sync_all().map_err(io_at(path))?;
    }
    Ok(())
}

/// The process's umask from `/proc/self/status` (read once: skupperd never
/// changes it), `None` when that cannot be read. Setting it to learn it
/// would race with files created meanwhile by other threads.
pub(super) fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))?
            .trim();
        u32::from_str_radix(value, 8).ok()
    })
}

/// What a temporary name ends with.
pub(super) const TEMP_SUFFIX: &str = ".skupperd-tmp";

/// The temporary name of `target`: hidden, so input scans and the
/// runtime walk ignore it, and with a suffix no file skupperd publishes has.
pub(super) fn temp_path(target: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(target.file_name().unwrap_or(OsStr::new("file")));
    name.push(TEMP_SUFFIX);
    target.with_file_name(name)
}

/// Removes the temporaries of an apply that never finished (the process
/// was killed between writing them and renaming them into place): hidden
/// `.<name>.skupperd-tmp` files beside the owned runtime files they were
/// to replace, and staged trees (`.runtime.skupperd-tmp` beside
/// `runtime/`, hidden `.<dir>.skupperd-tmp` directories in it). An apply
/// replaces the temporary of a file it writes again, but the temporary of
/// a file that is not written again (its resource was removed meanwhile,
/// or the file is already current) would stay forever. For the
/// namespace's single writer, before its first apply; returns what it
/// removed.
pub fn remove_temporaries(ns_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut removed = Vec::new();
    let staged_runtime = temp_path(&ns_dir.join("runtime"));
    match fs::remove_dir_all(&staged_runtime) {
        Ok(()) => removed.push(staged_runtime),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_at(&staged_runtime)(e)),
    }
    remove_temporaries_in(ns_dir, Path::new("runtime"), &mut removed)?;
    Ok(removed)
}

pub(super) fn remove_temporaries_in(
    ns_dir: &Path,
    rel_dir: &Path,
    removed: &mut Vec<PathBuf>,
) -> Result<(), StoreError> {
    let dir = ns_dir.join(rel_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_at(&dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_at(&dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Not following links: a link is never a staged tree.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let path = entry.path();
        let result = match name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
        {
            Some(_) if is_dir => fs::remove_dir_all(&path),
            Some(target) if is_owned(&rel_dir.join(target).to_string_lossy()) => {
                fs::remove_file(&path)
            }
            None if is_dir && !name.starts_with('.') => {
                remove_temporaries_in(ns_dir, &rel_dir.join(&name), removed)?;
                continue;
            }
            _ => continue,
        };
        match result {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
    }
    Ok(())
}
