//! Reading a namespace: the input files (regular files only, opened
//! without blocking, typed by fstat, size-limited), the bundles of
//! `input/certs/` and `input/issuers/`, `internal/platform.yaml`, and the
//! runtime files skupperd owns.

use super::ScanError;
use crate::input::{is_input_file_name, parse_file, too_large, ParsedFile, MAX_FILE_BYTES};
use crate::plan::is_owned;
use crate::plan::Platform;
use crate::problem::Problem;
use crate::validate::{FileRefusal, InputBundle, InputCerts};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

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
pub(super) fn walk(
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
pub(super) fn kind_of(t: fs::FileType) -> &'static str {
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
pub(super) fn read_bundle_dirs(ns_dir: &Path, rel: &str) -> InputCerts {
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
pub(super) fn read_bundle(dir: &Path, root: &Path) -> InputBundle {
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
pub(super) fn read_bundle_file(
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

pub(super) fn scan_at(path: &Path) -> impl FnOnce(io::Error) -> ScanError + '_ {
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

pub(super) fn read_runtime_with(
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
