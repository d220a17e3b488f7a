//! Helpers for the daemon tests: `skupperd run` as a child process with a
//! scrubbed environment and its log in a file, a fake systemd notify socket
//! that records every datagram, and polling with a patience bound.

#![allow(dead_code)]

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use super::DataHome;

/// A namespace directory, without creating it (unlike `DataHome::ns`).
pub fn ns_path(home: &DataHome, ns: &str) -> PathBuf {
    home.path().join("namespaces").join(ns)
}

/// A resource record of namespace `ns` (`runtime/resources/<kind>-<name>.yaml`),
/// empty while it does not exist.
pub fn record(home: &DataHome, ns: &str, kind: &str, name: &str) -> String {
    std::fs::read_to_string(ns_path(home, ns).join(format!("runtime/resources/{kind}-{name}.yaml")))
        .unwrap_or_default()
}

/// `runtime/status.yaml` of namespace `ns`, empty while it does not exist.
pub fn status_file(home: &DataHome, ns: &str) -> String {
    std::fs::read_to_string(ns_path(home, ns).join("runtime/status.yaml")).unwrap_or_default()
}

/// Waits until a record contains `want`; on time-out shows the record,
/// the namespace's status.yaml and the daemon's log.
pub fn wait_record(
    d: &Daemon,
    home: &DataHome,
    ns: &str,
    kind: &str,
    name: &str,
    want: &str,
) -> String {
    eventually(
        &format!("{kind} {name} in {ns} to say {want:?}"),
        || {
            let r = record(home, ns, kind, name);
            r.contains(want).then_some(r)
        },
        || {
            format!(
                "{}\n--- status.yaml ---\n{}\n--- log ---\n{}",
                record(home, ns, kind, name),
                status_file(home, ns),
                d.log()
            )
        },
    )
}

/// How long a condition may take before the test fails. Generous: the
/// machine is shared and noisy; passing runs never wait this long.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `f` until it returns `Some`, failing the test after [`PATIENCE`]
/// with `what` and the last value of `show()`.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>, show: impl Fn() -> String) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > PATIENCE {
            panic!(
                "timed out after {:?} waiting for: {what}\n--- state ---\n{}",
                PATIENCE,
                show()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `skupperd run`.
pub struct Daemon {
    pub child: Child,
    pub log_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

/// How to start a daemon.
pub struct Start<'a> {
    pub home: &'a DataHome,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl<'a> Start<'a> {
    pub fn new(home: &'a DataHome) -> Start<'a> {
        Start {
            home,
            // Passes are logged at debug; the watcher's chatter is not needed.
            args: vec![
                "--log-level".into(),
                std::env::var("SKUPPERD_TEST_LOG")
                    .unwrap_or_else(|_| "info,skupperd::actor=debug".into()),
            ],
            env: Vec::new(),
        }
    }

    /// No arguments besides `--data-home`.
    pub fn bare(home: &'a DataHome) -> Start<'a> {
        Start {
            home,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.to_string(), v.into()));
        self
    }

    pub fn spawn(self) -> Daemon {
        let log_dir = tempfile::tempdir().unwrap();
        let log_path = log_dir.path().join("skupperd.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("skupperd"));
        for var in super::SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        // No config file of the machine (as root: /etc/skupperd/config.toml)
        // can leak in: an empty one unless the test brings its own.
        cmd.env("XDG_CONFIG_HOME", log_dir.path().join("no-config"));
        cmd.arg("run").arg("--data-home").arg(self.home.path());
        if !self.args.iter().any(|a| a == "--config") {
            let empty = log_dir.path().join("empty.toml");
            std::fs::write(&empty, "").unwrap();
            cmd.arg("--config").arg(empty);
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        Daemon {
            child: cmd.spawn().unwrap(),
            log_path,
            _log_dir: log_dir,
        }
    }
}

impl Daemon {
    /// A daemon on `home` with the default test arguments.
    pub fn start(home: &DataHome) -> Daemon {
        Start::new(home).spawn()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Log lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str) {
        eventually(
            &format!("log line {needle:?}"),
            || self.log().contains(needle).then_some(()),
            || self.log(),
        );
    }

    /// Waits until `needle` occurs at least `n` times.
    pub fn wait_count(&self, needle: &str, n: usize) {
        eventually(
            &format!("{n} log lines {needle:?}"),
            || (self.count(needle) >= n).then_some(()),
            || self.log(),
        );
    }

    /// Waits for the startup's `READY` (logged as such).
    pub fn wait_ready(&self) {
        self.wait_log("ready: every namespace has had its first reconcile");
    }

    pub fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(self.child.id() as i32).unwrap();
        kill_process(pid, sig).unwrap();
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = &mut self.child;
        let log = &self.log_path;
        eventually(
            "skupperd to exit",
            || child.try_wait().unwrap(),
            || std::fs::read_to_string(log).unwrap_or_default(),
        )
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::TERM);
        self.wait_exit()
    }
}

impl Drop for Daemon {
    /// SIGTERM first, so that skupperd stops the routers it started (a
    /// SIGKILLed skupperd leaves them running, holding their ports); SIGKILL
    /// if it has not exited within the patience bound.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = kill_process(pid, Signal::TERM);
            let start = Instant::now();
            while start.elapsed() < PATIENCE {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in for systemd's notify socket: every datagram is recorded, and
/// `on_message` runs in the receiving thread as each arrives (to check the
/// world at that very moment).
pub struct NotifySocket {
    pub path: PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    pub fn bind(on_message: impl Fn(&str) + Send + 'static) -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            // Ends when the test drops the socket's directory (recv fails
            // only then); a daemon that is gone simply sends nothing more.
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        on_message(&text);
                        sink.lock().unwrap().push(text);
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if Arc::strong_count(&sink) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        NotifySocket {
            path,
            messages,
            _dir: dir,
        }
    }

    /// Every datagram so far, in order.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Indexes of the datagrams whose first line starts with `prefix`.
    pub fn positions(&self, prefix: &str) -> Vec<usize> {
        self.messages()
            .iter()
            .enumerate()
            .filter(|(_, m)| m.lines().any(|l| l.starts_with(prefix)))
            .map(|(i, _)| i)
            .collect()
    }

    /// Waits until `prefix` has been received at least `n` times.
    pub fn wait_for(&self, prefix: &str, n: usize) {
        eventually(
            &format!("{n} notify message(s) {prefix:?}"),
            || (self.positions(prefix).len() >= n).then_some(()),
            || format!("{:#?}", self.messages()),
        );
    }
}

/// Writes `text` to `path` the way a careful tool does: a hidden temporary
/// file in the same directory, then a rename over the target.
pub fn write_by_rename(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The tcpListener names in a rendered skrouterd.json, or `None` while it
/// does not exist or does not parse.
pub fn tcp_listeners(home: &DataHome, ns: &str) -> Option<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(ns_path(home, ns).join("runtime/router/skrouterd.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut out: Vec<(String, String)> = doc
        .as_array()?
        .iter()
        .filter(|e| e[0] == "tcpListener")
        .map(|e| {
            (
                e[1]["name"].as_str().unwrap_or("").to_string(),
                e[1]["port"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    Some(out)
}

/// Names of the files in `runtime/resources/` of `ns`.
pub fn resource_files(home: &DataHome, ns: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(ns_path(home, ns).join("runtime/resources")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}
