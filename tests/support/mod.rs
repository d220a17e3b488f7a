//! Helpers for the integration tests: a temporary data home with
//! namespaces, the real `skupperd` binary with a scrubbed environment, and
//! file snapshots.

#![allow(dead_code)]

pub mod daemon;
pub mod live;
pub mod rng;
pub mod tls;

use assert_cmd::Command;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct DataHome {
    pub dir: tempfile::TempDir,
}

impl DataHome {
    pub fn new() -> DataHome {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("namespaces")).unwrap();
        DataHome { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn ns(&self, name: &str) -> PathBuf {
        let p = self.path().join("namespaces").join(name);
        std::fs::create_dir_all(p.join("input/resources")).unwrap();
        p
    }

    /// Writes a file below a namespace, creating directories.
    pub fn write(&self, ns: &str, rel: &str, text: &str) -> PathBuf {
        let p = self.ns(ns).join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn read(&self, ns: &str, rel: &str) -> String {
        std::fs::read_to_string(self.ns(ns).join(rel)).unwrap_or_else(|e| panic!("{ns}/{rel}: {e}"))
    }

    /// The bundled sample site, copied in as namespace `ns`.
    pub fn sample(&self, ns: &str) -> PathBuf {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/hello-world-west");
        let dst = self.ns(ns);
        copy_tree(&src, &dst);
        dst
    }
}

pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Environment variables that change skupperd's behaviour: never
/// inherited by the binary under test.
pub const SCRUBBED_ENV: [&str; 9] = [
    "SKUPPER_PLATFORM",
    "SKUPPERD_DATA_HOME",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "RUST_LOG",
    "CONTAINER_ENDPOINT",
    "XDG_CONFIG_HOME",
];

/// The real binary, with every variable that changes its behaviour removed.
pub fn skupperd() -> Command {
    let mut cmd = Command::cargo_bin("skupperd").expect("binary");
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// Every file below `dir` with its bytes, mode and modification time.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, i64, i64)> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32, i64, i64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.insert(
                    p.strip_prefix(base).unwrap().to_path_buf(),
                    (bytes, m.mode() & 0o7777, m.mtime(), m.mtime_nsec()),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// Makes a FIFO at `path` (and its directories). Nothing ever writes to
/// it: a reader that waits for a writer waits forever.
pub fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// How long a one-shot command may take before the test fails: a command
/// that blocks on its input fails instead of hanging the suite.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub const SITE: &str = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n";

pub fn listener(name: &str, host: &str, port: &str) -> String {
    format!("apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: {name}\nspec:\n  host: {host}\n  port: {port}\n")
}

/// An echo server on a free port of 127.0.0.1, served on its own threads
/// until the process ends.
pub fn echo_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an echo server");
    let port = listener.local_addr().expect("echo server address").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}
