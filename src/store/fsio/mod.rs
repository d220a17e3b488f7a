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

mod read;
mod stage;
mod sync;
mod write;

#[cfg(test)]
pub(crate) use read::DirEntry;
pub(crate) use read::{is_listed, list_input_files_with, DirReader, Disk, EntryKind};
pub use read::{
    list_input_files, read_bundles, read_input_file, read_issuers, read_platform, read_runtime,
    read_runtime_file, read_runtime_hollow,
};
pub use stage::remove_temporaries;
pub use write::{apply, write_atomic};

use std::io;
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

/// This machine's host name, lower case: used in the SANs of generated
/// listener certificates for `0.0.0.0`/`::`. Empty when unknown. From
/// uname(2), not /proc/sys (hidden by the unit's `ProcSubset=pid`).
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_lowercase()
}

/// The host's non-loopback IPv4 addresses (from `/proc/net/fib_trie`) and
/// global IPv6 addresses (from `/proc/net/if_inet6`), sorted: the default
/// SANs of the link-access certificate. Empty where /proc does not say.
pub fn host_addresses() -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        // A local address is a `|-- a.b.c.d` line followed by `/32 host LOCAL`.
        let mut last: Option<&str> = None;
        for line in trie.lines() {
            let t = line.trim();
            if let Some(ip) = t.strip_prefix("|-- ") {
                last = Some(ip);
            } else if t.contains("/32 host LOCAL") {
                if let Some(ip) = last.and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok()) {
                    if !ip.is_loopback() {
                        out.insert(ip.to_string());
                    }
                }
            }
        }
    }
    if let Ok(v6) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in v6.lines() {
            let Some(hex) = line.split_whitespace().next() else {
                continue;
            };
            let Ok(n) = u128::from_str_radix(hex, 16) else {
                continue;
            };
            let ip = std::net::Ipv6Addr::from(n);
            // Loopback and link-local (fe80::/10) addresses reach no other host.
            if !ip.is_loopback() && (ip.segments()[0] & 0xffc0) != 0xfe80 {
                out.insert(ip.to_string());
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests;
