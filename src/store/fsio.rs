//! The file-system edge of one namespace: reading its input, bundles and
//! owned runtime files, and applying an outcome with atomic writes.
//!
//! Only the namespace's single writer (the `render` command, or the
//! namespace actor of the daemon) calls `apply`. Every changed file is
//! written under a hidden temporary name in its own directory (or, when
//! that directory does not exist yet, into a hidden copy of the missing
//! tree) and made durable before a rename publishes it, so no reader sees
//! a torn file; many files share one `syncfs` instead of an fsync each (a
//! cold start writes thousands). Unchanged files are never rewritten.
//!
//! Reading distinguishes "not there" from "cannot be read": a directory
//! that does not exist holds nothing, but one that fails to list is a
//! [`ScanError`], so an unreadable `input/resources/` is never taken for
//! an empty one (which would delete every resource's outputs). Below
//! that, what cannot be read is a problem of what needs it: an input file
//! that cannot be read is that file's error, an entry of `input/certs/`
//! that cannot be read is refused (an error of the resources naming it, a
//! warning otherwise), and the rest of the namespace keeps reconciling.
//!
//! Only regular files are read. Every input file is opened without
//! blocking and its type taken from the open handle before a byte is read
//! (see [`read_regular`]): a FIFO, socket or device under `input/` is
//! reported (`not a regular file`), never waited on.

use crate::input::{is_input_file_name, parse_file, too_large, ParsedFile, MAX_FILE_BYTES};
use crate::plan::{is_owned, OutFile, Outcome, Platform};
use crate::problem::Problem;
use crate::validate::{FileRefusal, InputBundle, InputCerts};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A directory or file of the namespace that exists but could not be
/// read (permission denied, EIO, a file where a directory should be).
/// What it holds is unknown, which is not the same as empty: callers must
/// not act as if the input were gone.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct ScanError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// How a walk sees the file system, so tests can make any directory fail
/// the way EIO or EACCES would (as root, permissions do not).
pub(crate) trait DirReader {
    /// The entries of `dir`; a missing `dir` is `NotFound`.
    fn entries(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub(crate) struct DirEntry {
    pub path: PathBuf,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Dir,
    /// A regular file or a symbolic link (read through when it is used).
    File,
    /// Sockets, fifos, devices: never input.
    Other,
}

/// The real file system.
pub(crate) struct Disk;

impl DirReader for Disk {
    fn entries(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let kind = match entry.file_type() {
                Ok(t) if t.is_dir() => EntryKind::Dir,
                Ok(t) if t.is_file() || t.is_symlink() => EntryKind::File,
                Ok(_) => EntryKind::Other,
                // Removed since it was listed: it is simply not there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(DirEntry {
                path: entry.path(),
                kind,
            });
        }
        Ok(out)
    }
}

/// Every input file below `input/resources/`, relative to the namespace
/// directory, in a stable order. A missing `input/resources/` is no input;
/// one that cannot be read is a [`ScanError`].
pub fn list_input_files(ns_dir: &Path) -> Result<Vec<(String, PathBuf)>, ScanError> {
    list_input_files_with(&Disk, ns_dir)
}

pub(crate) fn list_input_files_with(
    reader: &dyn DirReader,
    ns_dir: &Path,
) -> Result<Vec<(String, PathBuf)>, ScanError> {
    let mut out = Vec::new();
    walk(
        reader,
        &ns_dir.join("input/resources"),
        &mut |path, kind| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if is_listed(name, kind) {
                if let Ok(rel) = path.strip_prefix(ns_dir) {
                    out.push((rel.to_string_lossy().into_owned(), path.to_path_buf()));
                }
            }
            Ok(())
        },
    )?;
    out.sort();
    Ok(out)
}

/// Whether an entry of `input/resources/` named `name` is listed: input
/// file names, and anything that is neither a file nor a directory
/// (whatever its name, unless hidden), which reading reports as not a
/// regular file rather than leave it unmentioned. `probe` in the actor's
/// cache judges a single path the same way.
pub(crate) fn is_listed(name: &str, kind: EntryKind) -> bool {
    match kind {
        EntryKind::File => is_input_file_name(name),
        EntryKind::Other => !name.starts_with('.'),
        EntryKind::Dir => false,
    }
}

/// Calls `f` for every file and special file below `dir`, skipping hidden
/// directories. A directory that is not there (never was, or removed
/// while we walk) has no files, and so has a sub-directory that became a
/// file since it was listed (the change is the next pass's input); any
/// other failure to list one ends the walk.
fn walk(
    reader: &dyn DirReader,
    dir: &Path,
    f: &mut dyn FnMut(&Path, EntryKind) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let entries = match reader.entries(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ScanError {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries {
        let hidden = entry
            .path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        match entry.kind {
            EntryKind::Dir if !hidden => match walk(reader, &entry.path, f) {
                Err(e)
                    if e.path == entry.path && e.source.kind() == io::ErrorKind::NotADirectory => {}
                other => other?,
            },
            EntryKind::File | EntryKind::Other => f(&entry.path, entry.kind)?,
            EntryKind::Dir => {}
        }
    }
    Ok(())
}

/// Reads and parses one input file; an unreadable file is a problem of
/// that file, never of the namespace, and one that is not a regular file
/// (a FIFO, socket, device, or a link to a directory) is a warning.
pub fn read_input_file(rel: &str, path: &Path) -> ParsedFile {
    let problem = match read_regular(path, Links::Follow) {
        Ok((bytes, _)) => return parse_file(rel, &bytes),
        Err(Refusal::TooLarge(len)) => return too_large(rel, len),
        Err(Refusal::NotRegular(what)) => {
            Problem::warning(format!("{rel} is {what}: not a regular file, ignored"))
        }
        Err(Refusal::Io(e)) => Problem::error(format!("{rel} cannot be read: {e}")),
    };
    let mut p = problem;
    p.file = Some(rel.to_string());
    ParsedFile {
        documents: Vec::new(),
        problems: vec![p],
    }
}

/// Why [`read_regular`] read nothing.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Not a regular file, as its open handle says: what it is, with its
    /// article (`a FIFO`).
    NotRegular(&'static str),
    /// Larger than [`MAX_FILE_BYTES`]: its size.
    TooLarge(u64),
    Io(io::Error),
}

/// Whether [`read_regular`] may follow a symbolic link in the last
/// component of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Links {
    Follow,
    /// The path must be the file itself (a link gives `ELOOP`): for paths
    /// already resolved and checked.
    Refuse,
}

/// What a file is, with its article, for messages.
fn kind_of(t: fs::FileType) -> &'static str {
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "an unknown kind of file"
    }
}

/// One open, one fstat, the reads: a path is looked up once (a scan of a
/// big namespace reads thousands of files), and what is read is what was
/// checked, whatever replaces the path meanwhile.
///
/// The open never blocks: `O_NONBLOCK` makes opening a FIFO without a
/// writer return at once (a plain open would wait for one forever), and
/// `O_NOCTTY` keeps a terminal device from becoming ours. The type comes
/// from the open handle, and anything but a regular file is refused
/// before a byte is read. Reads stop one byte past [`MAX_FILE_BYTES`].
pub(crate) fn read_regular(path: &Path, links: Links) -> Result<(Vec<u8>, fs::Metadata), Refusal> {
    use rustix::fs::{Mode, OFlags};
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    if links == Links::Refuse {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        // A socket cannot be opened at all (ENXIO): say what it is.
        Err(rustix::io::Errno::NXIO) => {
            let meta = match links {
                Links::Follow => fs::metadata(path),
                Links::Refuse => fs::symlink_metadata(path),
            };
            return Err(match meta {
                Ok(m) if !m.is_file() => Refusal::NotRegular(kind_of(m.file_type())),
                _ => Refusal::Io(rustix::io::Errno::NXIO.into()),
            });
        }
        Err(e) => return Err(Refusal::Io(e.into())),
    };
    let mut file = fs::File::from(fd);
    let meta = file.metadata().map_err(Refusal::Io)?;
    if !meta.is_file() {
        return Err(Refusal::NotRegular(kind_of(meta.file_type())));
    }
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(Refusal::TooLarge(meta.len()));
    }
    // One byte more than announced, so the end is found without a second
    // allocation; a file that grew meanwhile is read only to one byte over
    // the limit, and refused.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    io::Read::read_to_end(
        &mut io::Read::take(&mut file, MAX_FILE_BYTES as u64 + 1),
        &mut bytes,
    )
    .map_err(Refusal::Io)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Refusal::TooLarge(bytes.len() as u64));
    }
    Ok((bytes, meta))
}

/// `input/certs/<name>/` bundles, with symbolic links that leave the
/// namespace refused. Never fails as a whole: an entry (or a file of a
/// bundle) that cannot be read or is not what it should be is refused,
/// which is an error of the resources naming it and nothing else, and an
/// `input/certs/` that cannot be listed is [`InputCerts::unreadable`],
/// which is an error of every resource naming TLS credentials. What is
/// unknown is never taken for absent (absent means "generate one").
pub fn read_bundles(ns_dir: &Path) -> InputCerts {
    read_bundle_dirs(ns_dir, "input/certs")
}

/// `input/issuers/<name>/` user CAs (resources.md 9), read exactly as
/// [`read_bundles`] reads `input/certs/`: the same three files, the same
/// symbolic link, file type and size rules.
pub fn read_issuers(ns_dir: &Path) -> InputCerts {
    read_bundle_dirs(ns_dir, "input/issuers")
}

/// The bundle directories below `rel` (relative to the namespace).
fn read_bundle_dirs(ns_dir: &Path, rel: &str) -> InputCerts {
    let mut out = InputCerts::default();
    let root = fs::canonicalize(ns_dir).unwrap_or_else(|_| ns_dir.to_path_buf());
    let certs = ns_dir.join(rel);
    let entries = match fs::read_dir(&certs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.unreadable = Some(e.to_string());
            return out;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                // The listing broke off: what it had not reached is unknown.
                out.unreadable = Some(e.to_string());
                break;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let dir = entry.path();
        // Symbolic links followed: a bundle may be a link to a directory,
        // inside the namespace. Its files are read below the resolved
        // directory, so a link out of the namespace is refused here as a
        // link to a file is (a file under a linked directory is no link
        // itself).
        let bundle = match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => match fs::canonicalize(&dir) {
                Ok(resolved) if resolved.starts_with(&root) => read_bundle(&resolved, &root),
                Ok(_) => InputBundle::refused(FileRefusal::SymlinkLeavesNamespace),
                // Removed since it was looked at: not there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => InputBundle::refused(FileRefusal::Unreadable(e.to_string())),
            },
            // A stray file is no bundle, as it always was.
            Ok(m) if m.is_file() => continue,
            Ok(m) => InputBundle::refused(FileRefusal::NotRegular(kind_of(m.file_type()))),
            // Removed since it was listed, or a dangling link.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            // A link loop (ELOOP), a directory we may not enter...
            Err(e) => InputBundle::refused(FileRefusal::Unreadable(e.to_string())),
        };
        out.bundles.insert(name, bundle);
    }
    out
}

/// The files of one bundle directory.
fn read_bundle(dir: &Path, root: &Path) -> InputBundle {
    let mut bundle = InputBundle::default();
    for file in ["tls.crt", "tls.key", "ca.crt"] {
        if let Some(result) = read_bundle_file(&dir.join(file), root) {
            bundle.files.insert(file.to_string(), result);
        }
    }
    bundle
}

/// One file of a bundle, `None` when there is none. A symbolic link is
/// followed only to a target inside the namespace `root`, and the target
/// is then opened by its resolved path without following links, so the
/// file read is the one checked.
fn read_bundle_file(
    path: &Path,
    root: &Path,
) -> Option<Result<crate::certs::FileBytes, FileRefusal>> {
    let link_meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(FileRefusal::Unreadable(e.to_string()))),
    };
    let target = if link_meta.file_type().is_symlink() {
        match fs::canonicalize(path) {
            Ok(t) if t.starts_with(root) => t,
            Ok(_) => return Some(Err(FileRefusal::SymlinkLeavesNamespace)),
            // Dangling, or a loop: it names no file that can be read.
            Err(e) => return Some(Err(FileRefusal::Unreadable(e.to_string()))),
        }
    } else {
        path.to_path_buf()
    };
    Some(match read_regular(&target, Links::Refuse) {
        Ok((bytes, meta)) => Ok(crate::certs::FileBytes {
            bytes,
            mode: meta.mode() & 0o777,
        }),
        Err(Refusal::NotRegular(what)) => Err(FileRefusal::NotRegular(what)),
        Err(Refusal::TooLarge(_)) => Err(FileRefusal::TooLarge),
        Err(Refusal::Io(e)) => Err(FileRefusal::Unreadable(e.to_string())),
    })
}

fn scan_at(path: &Path) -> impl FnOnce(io::Error) -> ScanError + '_ {
    move |source| ScanError {
        path: path.to_path_buf(),
        source,
    }
}

/// The namespace's platform from `internal/platform.yaml`, or `default`.
/// Read like input: a FIFO there would otherwise block every pass. An
/// invalid value is a problem at its line and column.
// Read once a pass, and the problem goes into the pass as it is.
#[allow(clippy::result_large_err)]
pub fn read_platform(ns_dir: &Path, default: Platform) -> Result<Platform, Problem> {
    const FILE: &str = "internal/platform.yaml";
    let problem = |message: String, at: Option<(usize, usize)>| {
        let mut p = Problem::error(message);
        p.file = Some(FILE.to_string());
        if let Some((line, column)) = at {
            p.line = u32::try_from(line).ok();
            p.column = u32::try_from(column).ok();
        }
        p
    };
    let text = match read_regular(&ns_dir.join(FILE), Links::Follow) {
        Ok((bytes, _)) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return Ok(default),
        },
        Err(Refusal::NotRegular(what)) => {
            return Err(problem(
                format!("{FILE} is {what}: not a regular file, refused"),
                None,
            ))
        }
        Err(_) => return Ok(default),
    };
    // The value's text, line and column (1-based, in characters).
    let found = text.lines().enumerate().find_map(|(i, l)| {
        let indent = l.len() - l.trim_start().len();
        let rest = l.trim_start().strip_prefix("platform:")?;
        let value_at = l.len() - rest.trim_start().len();
        let column = if rest.trim().is_empty() {
            indent + 1
        } else {
            l[..value_at].chars().count() + 1
        };
        Some((
            rest.trim().trim_matches(['"', '\'']).to_string(),
            (i + 1, column),
        ))
    });
    let (value, at) = match found {
        Some((value, at)) => (value, Some(at)),
        None => (String::new(), None),
    };
    Platform::parse(&value).ok_or_else(|| {
        problem(
            format!("{FILE}: platform \"{value}\" is not one of linux, podman, docker"),
            at,
        )
    })
}

/// Every runtime file skupperd owns, by path relative to the namespace.
/// An owned file or a directory of `runtime/` that cannot be read is a
/// [`ScanError`]: taking it for absent would make a new identity.
pub fn read_runtime(ns_dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, ScanError> {
    read_runtime_with(&Disk, ns_dir, true)
}

/// [`read_runtime`] with the resource records listed but not read: their
/// bytes are empty, as `plan::hollow_records` leaves them. What the
/// periodic resync needs, without reading a file per resource.
pub fn read_runtime_hollow(ns_dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, ScanError> {
    read_runtime_with(&Disk, ns_dir, false)
}

fn read_runtime_with(
    reader: &dyn DirReader,
    ns_dir: &Path,
    records: bool,
) -> Result<BTreeMap<String, Vec<u8>>, ScanError> {
    let mut owned = Vec::new();
    let mut listed_records = Vec::new();
    walk(reader, &ns_dir.join("runtime"), &mut |path, kind| {
        let Ok(rel) = path.strip_prefix(ns_dir) else {
            return Ok(());
        };
        if kind == EntryKind::Other {
            // Never one skupperd wrote.
            return Ok(());
        }
        let rel = rel.to_string_lossy().into_owned();
        if !is_owned(&rel) {
            return Ok(());
        }
        if !records && rel.starts_with(crate::plan::prior::RESOURCES_DIR) {
            listed_records.push(rel);
        } else {
            owned.push((rel, path.to_path_buf()));
        }
        Ok(())
    })?;
    // A restart reads one record per resource: thousands of small files.
    let read = crate::input::par::map(&owned, |(_, path)| match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(scan_at(path)(e)),
    });
    let mut out: BTreeMap<String, Vec<u8>> = listed_records
        .into_iter()
        .map(|rel| (rel, Vec::new()))
        .collect();
    for ((rel, _), bytes) in owned.into_iter().zip(read) {
        if let Some(bytes) = bytes? {
            out.insert(rel, bytes);
        }
    }
    Ok(out)
}

/// One runtime file by its path relative to the namespace, `None` when it
/// is gone: what `plan::prior::read_prior_with` loads hollow records with.
pub fn read_runtime_file(ns_dir: &Path, rel: &str) -> Result<Option<Vec<u8>>, ScanError> {
    let path = ns_dir.join(rel);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(scan_at(&path)(e)),
    }
}

/// Directory mode for a runtime path: key material is private.
fn dir_mode(rel_dir: &str) -> u32 {
    if rel_dir.starts_with("runtime/certs")
        || rel_dir.starts_with("runtime/issuers")
        || rel_dir.starts_with("runtime/links")
    {
        0o700
    } else {
        0o755
    }
}

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
const FSYNC_EACH_UP_TO: usize = 1;

/// How the temporary files of one apply reach the disk before the first
/// of them is renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// An fsync of each temporary file as it is written.
    EachFile,
    /// One `syncfs` per file system once all are written.
    SyncFs,
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
struct Staged<'a> {
    base: &'a Path,
    targets: Vec<&'a Path>,
    /// Top-most missing directories, with whether they are published.
    roots: Vec<(&'a Path, bool)>,
    published: usize,
}

impl<'a> Staged<'a> {
    /// Claims `targets` and `roots`, before anything of theirs exists.
    fn new(base: &'a Path, targets: Vec<&'a Path>, roots: Vec<&'a Path>) -> Staged<'a> {
        Staged {
            base,
            targets,
            roots: roots.into_iter().map(|r| (r, false)).collect(),
            published: 0,
        }
    }

    /// The root `target` is staged under, if any.
    fn root_of(&self, target: &Path) -> Option<usize> {
        self.roots.iter().position(|(r, _)| target.starts_with(r))
    }

    /// Where `rel` (a file or directory) is while it is staged below a
    /// root; `None` when it is not below one.
    fn in_staged_tree(&self, rel: &Path) -> Option<PathBuf> {
        let root = self.roots[self.root_of(rel)?].0;
        let rest = rel.strip_prefix(root).unwrap_or(Path::new(""));
        Some(temp_path(&self.base.join(root)).join(rest))
    }

    /// Where `target` is written before it is published.
    fn staging_path(&self, target: &Path) -> PathBuf {
        self.in_staged_tree(target)
            .unwrap_or_else(|| temp_path(&self.base.join(target)))
    }

    /// Where directory `rel_dir` is while staging: its staged copy below a
    /// root, else itself.
    fn dir_now(&self, rel_dir: &Path) -> PathBuf {
        self.in_staged_tree(rel_dir)
            .unwrap_or_else(|| self.base.join(rel_dir))
    }

    /// Removes the staged trees a crash may have left behind.
    fn clear_leftovers(&self) -> Result<(), StoreError> {
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
    fn make_dir(&self, rel_dir: &Path) -> Result<(), StoreError> {
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
    fn publish(&mut self) -> Result<(), StoreError> {
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
fn first_missing<'d>(base: &Path, rel_dir: &'d Path) -> Option<&'d Path> {
    let mut above: Vec<&Path> = rel_dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .collect();
    above.reverse();
    above.into_iter().find(|a| !base.join(a).is_dir())
}

/// Writes `bytes` to the new file `path`, mode first so the content is
/// never readable with a wider mode than asked for.
fn write_new(
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
fn umask() -> Option<u32> {
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
const TEMP_SUFFIX: &str = ".skupperd-tmp";

/// The temporary name of `target`: hidden, so input scans and the
/// runtime walk ignore it, and with a suffix no file skupperd publishes has.
fn temp_path(target: &Path) -> PathBuf {
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

fn remove_temporaries_in(
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

/// From this many files on, a first `syncfs` starts once half of them are
/// written, on its own thread.
const EARLY_SYNC_FROM: usize = 2_048;

/// Runs `write` (which calls the function it is given once per file
/// written); when `early`, a `syncfs` of `dirs` starts on another thread
/// as soon as `half` files are written. The disk then takes the first half
/// while the second is written, and the final `syncfs` (the one whose
/// result counts) waits for less: 10,000 small files waited 37-54 ms
/// instead of 90-97 ms on this VM. An error of the early one is not
/// reported: the final one meets it again.
fn with_early_sync<R>(
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
fn sync_file_systems<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Result<(), StoreError> {
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

/// Writes `bytes` to `path` atomically with `mode`: a temporary file in
/// the same directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut staged = Staged::new(Path::new(""), vec![path], Vec::new());
    write_new(&temp_path(path), bytes, mode, Durability::EachFile)?;
    staged.publish()
}

/// Applies an outcome: changed files written, orphans removed, empty
/// directories they leave behind removed too.
///
/// Every changed file is first written under its temporary name, then all
/// are made durable together, then renamed into place, then each directory
/// that received a rename is fsynced once; deletes come last. A crash
/// leaves every file either old or new, never torn.
pub fn apply(ns_dir: &Path, outcome: &Outcome) -> Result<(), StoreError> {
    let durability = if outcome.writes.len() <= FSYNC_EACH_UP_TO {
        Durability::EachFile
    } else {
        Durability::SyncFs
    };
    apply_with(ns_dir, outcome, durability)
}

fn apply_with(
    ns_dir: &Path,
    outcome: &Outcome,
    mut durability: Durability,
) -> Result<(), StoreError> {
    if !outcome.writes.is_empty() {
        let dirs: BTreeSet<&Path> = outcome
            .writes
            .keys()
            .filter_map(|rel| Path::new(rel).parent())
            .collect();
        let roots: BTreeSet<&Path> = dirs
            .iter()
            .filter_map(|d| first_missing(ns_dir, d))
            .collect();
        // A new directory is durable only once its parent is; the syncfs
        // covers that, an fsync of the file would not.
        if !roots.is_empty() {
            durability = Durability::SyncFs;
        }
        let writes: Vec<(&str, &OutFile)> = outcome
            .writes
            .iter()
            .map(|(rel, file)| (rel.as_str(), file))
            .collect();
        let mut staged = Staged::new(
            ns_dir,
            writes.iter().map(|(rel, _)| Path::new(*rel)).collect(),
            roots.into_iter().collect(),
        );
        staged.clear_leftovers()?;
        for dir in &dirs {
            staged.make_dir(dir)?;
        }
        // Where the directories are until published: what the syncs flush.
        let now: Vec<PathBuf> = match durability {
            Durability::SyncFs => dirs.iter().map(|d| staged.dir_now(d)).collect(),
            Durability::EachFile => Vec::new(),
        };
        let early = durability == Durability::SyncFs && writes.len() >= EARLY_SYNC_FROM;
        // Files in one directory are created one at a time (the kernel
        // locks the directory), but two writers still overlap rendering,
        // writing and closing with each other's creates: 10,000 records
        // took 230 ms on one thread and 125-145 ms on two on this VM.
        let written = with_early_sync(early, &now, writes.len() / 2, |half_done| {
            crate::input::par::map(&writes, |(rel, file)| {
                let path = staged.staging_path(Path::new(rel));
                let result = write_new(&path, &file.content(), file.mode, durability);
                half_done();
                result
            })
        });
        written.into_iter().collect::<Result<(), StoreError>>()?;
        if durability == Durability::SyncFs {
            sync_file_systems(now.iter().map(PathBuf::as_path))?;
        }
        staged.publish()?;
    }
    for rel in &outcome.deletes {
        let path = ns_dir.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
        // Directories that only held what skupperd wrote go with it.
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == ns_dir.join("runtime") || !d.starts_with(ns_dir.join("runtime")) {
                break;
            }
            if fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    Ok(())
}

/// This machine's host name, lower case: used in the SANs of generated
/// listener certificates for `0.0.0.0`/`::`. Empty when unknown.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::OutFile;

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
        let files: Vec<(&str, &str, u32)> =
            names.iter().map(|r| (r.as_str(), "x\n", 0o644)).collect();
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
}
