//! Daemon benchmark: drives the real `skupperd run` binary as a child
//! process (runner none, one namespace with a Site on platform linux and N
//! listeners) and measures what a user of the daemon notices, against the
//! targets of issue 3 ("Performance"):
//! change-to-output latency at 1, 1,000 and 10,000 listeners; a burst of
//! 1,000 new listener files; cold start and restart to `READY=1`; the CPU
//! of one reconcile at 10,000 listeners; peak RSS; idle CPU.
//! Run: cargo bench --bench daemon
//!
//! How it measures, and why:
//! - Output is observed with inotify (the `notify` crate) on `runtime/` and
//!   `runtime/router/`, so the bench sleeps instead of polling and does
//!   not compete for the 2 cores; `skrouterd.json` is read once per rename
//!   event and searched as text (a JSON parse of 1.5 MB would cost more
//!   than the pass being measured).
//! - A sample is done when `skrouterd.json` holds the new port AND a later
//!   rename of `status.yaml` has been seen (one inotify queue keeps order),
//!   or, when the pass leaves `status.yaml` alone (skupperd writes only
//!   changed files, and `reconcile.lastRun` has 1 s resolution), when
//!   `skrouterd.json` was renamed, its pass having logged its end while
//!   `status.yaml` kept its inode. The table says how many samples had
//!   the `status.yaml` rewrite.
//! - Input files are dated an hour back: skupperd re-reads files younger
//!   than its 2 s freshness window on every pass, and the question is the
//!   cost of one change in a namespace written earlier.
//! - CPU is the sum over the daemon's threads of `/proc/<pid>/task/*/
//!   schedstat` (nanoseconds), because `/proc/<pid>/stat` counts in clock
//!   ticks (10 ms), too coarse for a 20 ms target; the tick figure is
//!   printed beside it as a cross-check.
//! - Pass counts and the first-event delay come from the daemon's own log
//!   (`RUST_LOG=info,skupperd::actor=debug` logs every pass with
//!   `elapsed_ms`; the burst runs add `skupperd::watch=debug` for the
//!   `watch event` lines).
//!
//! - Each data home is synced to disk once written: skupperd's own
//!   `syncfs` flushes the whole file system, and a cold start measured
//!   right after writing 10,000 input files would flush those too.
//! - No mass delete before a measurement, and the cold starts run first.
//!   This VM's ext4 has no journal, and without one the kernel's inode
//!   allocator steps over every inode freed in the last 60-360 s
//!   (`recently_deleted()` in `find_inode_bit`, one inode-table lookup
//!   each, from the start of the group for every new file). Creating
//!   10,000 files right after deleting 20,000 took 3-6 s instead of 0.25 s
//!   (perf: 60% of the time in `recently_deleted`), and even the few
//!   hundred inodes freed by replacing files in the other sections made a
//!   later cold start's writes take 1.1 s instead of 0.25 s. So every
//!   data home is kept until the bench ends.
//!
//! Every wait has a patience bound; a section that runs out of patience
//! is reported as FAILED and the others still run. Data homes live under
//! `CARGO_TARGET_TMPDIR` (the real disk: fsync costs what it costs).
//!
//! Knobs (environment): `SKUPPERD_BENCH_SIZES` (latency sizes, default
//! `1,1000,10000`; start, CPU and RSS rows use the largest),
//! `SKUPPERD_BENCH_SAMPLES` (latency samples per size, default 40),
//! `SKUPPERD_BENCH_BURSTS` (default 5), `SKUPPERD_BENCH_STARTS` (cold
//! starts and restarts, default 3 each), `SKUPPERD_BENCH_IDLE_S` (default
//! 10), `SKUPPERD_BENCH_KEEP` (set: keep the data homes and daemon logs).

use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher as _};
use rustix::process::{kill_process, Pid, Signal};
use std::collections::BTreeMap;
use std::fs::{self, File, FileTimes};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NS: &str = "west";
const BURST: usize = 1_000;
/// One change or one burst must be applied within this, or the sample fails.
const CHANGE_PATIENCE: Duration = Duration::from_secs(30);
/// Spawn to `READY=1` (a cold start at 10,000 with per-file fsync is slow).
const START_PATIENCE: Duration = Duration::from_secs(180);
const STOP_PATIENCE: Duration = Duration::from_secs(30);
/// The pass log line follows the status rename by the pass's bookkeeping.
const LOG_PATIENCE: Duration = Duration::from_secs(10);
/// A burst is over when no pass was logged for this long (max delay 200 ms).
const BURST_QUIET: Duration = Duration::from_secs(1);
/// skupperd's default `resync_interval_s`.
const RESYNC: Duration = Duration::from_secs(60);
const LOG_BASE: &str = "info,skupperd::actor=debug";
const LOG_BURST: &str = "info,skupperd::actor=debug,skupperd::watch=debug";

type Res<T> = Result<T, String>;

fn ctx<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn listener(name: &str, port: usize) -> String {
    format!("apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: {name}\nspec:\n  host: 127.0.0.1\n  port: {port}\n")
}

const SITE: &str = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\nspec:\n  linkAccess: none\n";

/// The port of tcpListener `listener/<name>` in `skrouterd.json` text (the
/// renderer's fixed layout: one attribute a line, `"key": value`).
fn listener_port(cfg: &str, name: &str) -> Option<u16> {
    let key = format!("\"name\": \"listener/{name}\",");
    let start = cfg.find(&key)? + key.len();
    let rest = cfg.get(start..)?;
    let entity = rest.get(..rest.find("}]").unwrap_or(rest.len()))?;
    let at = entity.find("\"port\": \"")? + "\"port\": \"".len();
    entity.get(at..)?.split('"').next()?.parse().ok()
}

fn burst_listeners(cfg: &str) -> usize {
    cfg.matches("\"name\": \"listener/b").count()
}

// === data homes ===

/// A data home with namespace `west`: a Site, platform linux, `n`
/// listeners `l0..` on ports 10000.., the config file (runner none) and a
/// staging directory beside `namespaces/` (same file system, not watched).
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(root: &Path, n: usize) -> Res<Home> {
        // Kept until the bench's root goes at the very end (see "No mass
        // delete" in the header).
        let dir = tempfile::Builder::new()
            .prefix("home-")
            .tempdir_in(root)
            .map_err(ctx("data home"))?
            .keep();
        let home = Home { dir };
        let res = home.resources();
        fs::create_dir_all(&res).map_err(ctx("input/resources"))?;
        fs::create_dir_all(home.ns().join("internal")).map_err(ctx("internal"))?;
        fs::create_dir_all(home.staging()).map_err(ctx("staging"))?;
        write_aged(
            &home.ns().join("internal/platform.yaml"),
            "platform: linux\n",
        )?;
        write_aged(&res.join("Site-west.yaml"), SITE)?;
        for i in 0..n {
            write_aged(
                &res.join(format!("l{i}.yaml")),
                &listener(&format!("l{i}"), 10_000 + i),
            )?;
        }
        fs::write(home.config(), "runner = \"none\"\n").map_err(ctx("config.toml"))?;
        // The input is on disk before the daemon starts, as it is when a
        // machine boots: skupperd's one syncfs would otherwise also flush
        // the 10,000 input files this bench has just written.
        let dir = File::open(home.path()).map_err(ctx("data home"))?;
        rustix::fs::syncfs(&dir).map_err(ctx("syncfs"))?;
        Ok(home)
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn ns(&self) -> PathBuf {
        self.path().join("namespaces").join(NS)
    }

    fn resources(&self) -> PathBuf {
        self.ns().join("input/resources")
    }

    fn staging(&self) -> PathBuf {
        self.path().join("staging")
    }

    fn config(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    fn skrouterd(&self) -> PathBuf {
        self.ns().join("runtime/router/skrouterd.json")
    }

    /// Writes `text` into the staging directory; `publish` renames it in.
    fn stage(&self, file: &str, text: &str) -> Res<(PathBuf, PathBuf)> {
        let tmp = self.staging().join(file);
        fs::write(&tmp, text).map_err(ctx("staging a file"))?;
        Ok((tmp, self.resources().join(file)))
    }
}

/// Writes an input file dated an hour ago: skupperd re-reads files
/// modified within its 2 s freshness window on every pass, and the
/// measurements are of a namespace whose files were written earlier.
fn write_aged(path: &Path, text: &str) -> Res<()> {
    let mut f = File::create(path).map_err(ctx(&path.display().to_string()))?;
    f.write_all(text.as_bytes())
        .map_err(ctx(&path.display().to_string()))?;
    let old = SystemTime::now() - Duration::from_secs(3600);
    f.set_times(FileTimes::new().set_modified(old))
        .map_err(ctx("setting mtime"))
}

fn publish((tmp, dest): &(PathBuf, PathBuf)) -> Res<()> {
    fs::rename(tmp, dest).map_err(ctx("renaming into input/resources"))
}

// === the daemon ===

/// A running `skupperd run`, its stderr in a file, its `NOTIFY_SOCKET`
/// drained by a thread (an unread socket would fill up and block it).
struct Daemon {
    child: Child,
    log: PathBuf,
    spawned: Instant,
    notes: mpsc::Receiver<(Instant, String)>,
    stop_reader: Arc<AtomicBool>,
    _sock_dir: tempfile::TempDir,
}

impl Daemon {
    fn spawn(bin: &Path, home: &Home, logs: &Path, tag: &str, rust_log: &str) -> Res<Daemon> {
        // The system temp dir: a socket path must fit in 108 bytes.
        let sock_dir = tempfile::Builder::new()
            .prefix("skupperd-bench-")
            .tempdir()
            .map_err(ctx("socket dir"))?;
        let sock_path = sock_dir.path().join("notify");
        let sock = UnixDatagram::bind(&sock_path).map_err(ctx("binding NOTIFY_SOCKET"))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(ctx("socket timeout"))?;
        let (tx, notes) = mpsc::channel();
        let stop_reader = Arc::new(AtomicBool::new(false));
        let stop = stop_reader.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        let text = String::from_utf8_lossy(buf.get(..n).unwrap_or(&[]));
                        if tx.send((Instant::now(), text.into_owned())).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        });

        let log = logs.join(format!("{tag}.log"));
        let log_file = File::create(&log).map_err(ctx("log file"))?;
        let mut cmd = Command::new(bin);
        for var in [
            "SKUPPER_PLATFORM",
            "SKUPPERD_DATA_HOME",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "JOURNAL_STREAM",
            "CONTAINER_ENDPOINT",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", rust_log)
            .env("NOTIFY_SOCKET", &sock_path)
            .arg("run")
            .arg("--config")
            .arg(home.config())
            .arg("--data-home")
            .arg(home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .map_err(ctx(&format!("spawning {}", bin.display())))?;
        Ok(Daemon {
            child,
            log,
            spawned,
            notes,
            stop_reader,
            _sock_dir: sock_dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Spawn to the first `READY=1` datagram.
    fn wait_ready(&mut self) -> Res<Duration> {
        let deadline = self.spawned + START_PATIENCE;
        loop {
            match self.notes.recv_timeout(Duration::from_millis(100)) {
                Ok((at, text)) if text.lines().any(|l| l == "READY=1") => {
                    return Ok(at.saturating_duration_since(self.spawned))
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the notify socket reader stopped".into())
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "skupperd exited ({status}) before READY=1:\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no READY=1 within {START_PATIENCE:?}:\n{}",
                    self.log_tail()
                ));
            }
        }
    }

    /// SIGTERM and wait (killed if it does not exit in time).
    fn stop(&mut self) -> Res<()> {
        if let Some(pid) = Pid::from_raw(self.pid() as i32) {
            let _ = kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + STOP_PATIENCE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("skupperd exited with {status}")),
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!("no exit {STOP_PATIENCE:?} after SIGTERM: killed"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("waiting for skupperd: {e}")),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_reader.store(true, Ordering::Relaxed);
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// === the daemon's log ===

/// Reads the lines appended to a log file since the last call.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    fn new(path: &Path) -> LogTail {
        LogTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    fn read_new(&mut self) -> Vec<String> {
        let mut bytes = Vec::new();
        if let Ok(mut f) = File::open(&self.path) {
            if f.seek(SeekFrom::Start(self.offset)).is_ok() {
                let _ = f.read_to_end(&mut bytes);
            }
        }
        self.offset += bytes.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut lines: Vec<String> = self.partial.split('\n').map(str::to_string).collect();
        self.partial = lines.pop().unwrap_or_default();
        lines
    }

    /// Waits until `n` more pass lines were logged; returns every new line.
    fn wait_passes(&mut self, n: usize) -> Res<Vec<String>> {
        let deadline = Instant::now() + LOG_PATIENCE;
        let mut lines = Vec::new();
        loop {
            lines.extend(self.read_new());
            if lines.iter().filter(|l| is_pass(l)).count() >= n {
                return Ok(lines);
            }
            if Instant::now() > deadline {
                return Err(format!("no reconcile pass logged within {LOG_PATIENCE:?}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn is_pass(line: &str) -> bool {
    line.contains("reconcile pass ")
}

/// Unix time in ns of a log line's RFC 3339 timestamp.
fn log_time(line: &str) -> Option<i128> {
    let stamp = line.split_whitespace().next()?;
    let t =
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos())
}

/// `read_ms`, `plan_ms` and `apply_ms` of the first pass logged in `log`.
fn first_pass_phases(log: &Path) -> Option<[Duration; 3]> {
    let text = fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("reconcile pass 1:"))?;
    let field = |name| Some(Duration::from_millis(logged_ms(line, name)?));
    Some([field("read_ms")?, field("plan_ms")?, field("apply_ms")?])
}

/// The value of the field `name=` (milliseconds) of a pass log line.
fn logged_ms(line: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    let at = line.find(&key)? + key.len();
    line.get(at..)?.split_whitespace().next()?.parse().ok()
}

fn elapsed_ms(line: &str) -> Option<i128> {
    logged_ms(line, "elapsed_ms").map(i128::from)
}

/// (start, end) in unix ns of a pass from its log line (the line is
/// written at the end; `elapsed_ms` is truncated, so the start estimate
/// is up to 1 ms late).
fn pass_span(line: &str) -> Option<(i128, i128)> {
    let end = log_time(line)?;
    Some((end - elapsed_ms(line)? * 1_000_000, end))
}

fn unix_ns(t: SystemTime) -> i128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn ns_to_duration(ns: i128) -> Duration {
    Duration::from_nanos(ns.max(0) as u64)
}

// === observing the outputs ===

/// inotify on `runtime/` and `runtime/router/` of one namespace.
struct RuntimeWatch {
    _watcher: notify::RecommendedWatcher,
    rx: mpsc::Receiver<notify::Result<notify::Event>>,
    cfg: PathBuf,
    status: PathBuf,
}

/// The outputs of a change are complete.
struct Applied {
    /// When the last output of the applying pass was seen renamed into
    /// place: `status.yaml`, or `skrouterd.json` when the pass left
    /// `status.yaml` alone (its content, `lastRun` to the second
    /// included, did not change; the records are written before
    /// `skrouterd.json`).
    at: Instant,
    status_rewritten: bool,
    /// Log lines read while waiting.
    lines: Vec<String>,
}

impl RuntimeWatch {
    fn new(home: &Home) -> Res<RuntimeWatch> {
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(tx).map_err(ctx("inotify"))?;
        for dir in ["runtime", "runtime/router"] {
            watcher
                .watch(&home.ns().join(dir), RecursiveMode::NonRecursive)
                .map_err(ctx(&format!("watching {dir}")))?;
        }
        Ok(RuntimeWatch {
            _watcher: watcher,
            rx,
            cfg: home.skrouterd(),
            status: home.ns().join("runtime/status.yaml"),
        })
    }

    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Which `status.yaml` is in place (a rename gives a new inode).
    fn status_ino(&self) -> Option<u64> {
        fs::metadata(&self.status).ok().map(|m| m.ino())
    }

    /// Waits until `skrouterd.json` satisfies `done` and then either a
    /// rename of `status.yaml` is seen (inotify keeps the order of one
    /// queue), or a pass line is logged while `status.yaml` is still the
    /// one of `status_before` (that pass did not rewrite it).
    fn wait_output(
        &self,
        tail: &mut LogTail,
        status_before: Option<u64>,
        done: impl Fn(&str) -> bool,
        deadline: Instant,
    ) -> Res<Applied> {
        let mut cfg_at: Option<Instant> = None;
        let mut status_at: Option<Instant> = None;
        let mut pass_logged = false;
        let mut lines = Vec::new();
        loop {
            match (cfg_at, status_at) {
                (Some(_), Some(at)) => {
                    return Ok(Applied {
                        at,
                        status_rewritten: true,
                        lines,
                    })
                }
                (Some(at), None) if pass_logged && self.status_ino() == status_before => {
                    return Ok(Applied {
                        at,
                        status_rewritten: false,
                        lines,
                    })
                }
                _ => {}
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("outputs not updated within {CHANGE_PATIENCE:?}"))?;
            // Until skrouterd.json is right nothing but inotify wakes us;
            // then the log is read every millisecond until the pass ends.
            let wait = if cfg_at.is_some() {
                left.min(Duration::from_millis(1))
            } else {
                left
            };
            match self.rx.recv_timeout(wait) {
                Ok(Ok(event)) => {
                    let seen = Instant::now();
                    if event.need_rescan() {
                        return Err("inotify queue overflow: sample lost".into());
                    }
                    let placed = matches!(
                        event.kind,
                        EventKind::Create(_)
                            | EventKind::Modify(ModifyKind::Name(
                                RenameMode::To | RenameMode::Both | RenameMode::Any
                            ))
                    );
                    for path in event.paths.iter().filter(|_| placed) {
                        if cfg_at.is_none() && path.ends_with("router/skrouterd.json") {
                            let ok = fs::read_to_string(&self.cfg)
                                .map(|t| done(&t))
                                .unwrap_or(false);
                            cfg_at = ok.then_some(seen);
                        } else if cfg_at.is_some()
                            && status_at.is_none()
                            && path.ends_with("runtime/status.yaml")
                        {
                            status_at = Some(seen);
                        }
                    }
                }
                Ok(Err(e)) => return Err(format!("inotify error: {e}")),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("inotify watcher stopped".into())
                }
            }
            if cfg_at.is_some() {
                let new = tail.read_new();
                pass_logged |= new.iter().any(|l| is_pass(l));
                lines.extend(new);
            }
        }
    }
}

// === CPU and memory of the child ===

/// One reading of the daemon's CPU: per thread (ns, from schedstat) and
/// the process's utime+stime (clock ticks, from stat).
#[derive(Debug, Clone, Default)]
struct Cpu {
    threads: BTreeMap<u32, u64>,
    ticks: u64,
}

fn read_cpu(pid: u32) -> Cpu {
    let mut cpu = Cpu::default();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let ns = fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()));
            if let Some(ns) = ns {
                cpu.threads.insert(tid, ns);
            }
        }
    }
    if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Fields after "(comm)": state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<u64> = after
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        cpu.ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
    }
    cpu
}

/// CPU used between two readings. A thread that exited in between loses
/// its share of the window (only idle pool threads exit, after 10 s idle).
fn cpu_between(a: &Cpu, b: &Cpu, clk_tck: u64) -> (Duration, Duration) {
    let ns: u64 = b
        .threads
        .iter()
        .map(|(tid, n)| n.saturating_sub(a.threads.get(tid).copied().unwrap_or(0)))
        .sum();
    let ticks = b.ticks.saturating_sub(a.ticks);
    (
        Duration::from_nanos(ns),
        Duration::from_millis(ticks * 1000 / clk_tck.max(1)),
    )
}

/// `AT_CLKTCK` from our own auxiliary vector (no libc call needed).
fn clock_ticks() -> u64 {
    let Ok(auxv) = fs::read("/proc/self/auxv") else {
        return 100;
    };
    let word = |c: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        u64::from_ne_bytes(b)
    };
    auxv.chunks_exact(16)
        .map(|pair| (word(&pair[..8]), word(&pair[8..])))
        .find(|(key, _)| *key == 17)
        .map_or(100, |(_, v)| v)
}

/// `VmHWM` (peak resident set) in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits until creating files costs what it normally does (see "No mass
/// delete" in the header): after a big delete (a previous run's data
/// homes, a cargo build) this VM's journal-less ext4 makes every create
/// step over the inodes deleted in the last 60-360 s. Probes with 1,000
/// new files (kept until the end, so the probe deletes nothing) every
/// 15 s for up to 6 minutes; says what it found.
fn settle_inode_allocator(root: &Path) -> String {
    const PROBE: usize = 1_000;
    // 10,000 creates take 0.25 s on a settled file system, 3-6 s after a
    // mass delete.
    const NORMAL: Duration = Duration::from_millis(60);
    let waited = Instant::now();
    for round in 0..25 {
        let dir = root.join(format!("probe-{round}"));
        if fs::create_dir(&dir).is_err() {
            return "file system probe: could not create a directory".into();
        }
        let t = Instant::now();
        for i in 0..PROBE {
            if File::create(dir.join(format!("f{i}"))).is_err() {
                return "file system probe: could not create a file".into();
            }
        }
        let took = t.elapsed();
        if took <= NORMAL {
            return format!(
                "file system probe: {PROBE} creates took {}; waited {:.0} s for it to settle",
                ms(took),
                waited.elapsed().as_secs_f64()
            );
        }
        eprintln!(
            "daemon bench: {PROBE} file creates took {} (recently deleted inodes are being skipped); waiting 15 s",
            ms(took)
        );
        std::thread::sleep(Duration::from_secs(15));
    }
    format!(
        "file system probe: still slow after {:.0} s; figures below include it",
        waited.elapsed().as_secs_f64()
    )
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// === statistics and the table ===

/// Nearest-rank percentile of sorted values.
fn pct<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).copied()
}

struct Row {
    what: String,
    n: String,
    cols: [String; 4],
    target: String,
    result: String,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// p50, p90, p99, max of durations (sorted in place).
fn dur_cols(v: &mut [Duration]) -> [String; 4] {
    v.sort();
    [0.5, 0.9, 0.99, 1.0].map(|p| pct(v, p).map_or("-".into(), ms))
}

/// A row of durations that has no target.
fn info_row(what: String, v: &mut [Duration]) -> Row {
    Row {
        what,
        n: v.len().to_string(),
        cols: dur_cols(v),
        target: "(info)".into(),
        result: String::new(),
    }
}

fn verdict(ok: bool) -> String {
    if ok { "PASS" } else { "MISS" }.to_string()
}

/// PASS when every `(label, value, limit)` is within its limit and nothing
/// was lost; else MISS with by how much.
fn judge(checks: &[(&str, Option<Duration>, Duration)], lost: usize) -> String {
    let mut misses: Vec<String> = checks
        .iter()
        .filter_map(|(label, value, limit)| match value {
            None => Some(format!("no {label}")),
            Some(v) if v > limit => Some(format!("{label} +{}", ms(*v - *limit))),
            Some(_) => None,
        })
        .collect();
    if lost > 0 {
        misses.push(format!("{lost} lost"));
    }
    if misses.is_empty() {
        "PASS".into()
    } else {
        format!("MISS ({})", misses.join("; "))
    }
}

fn failed(what: &str, why: &str) -> Row {
    Row {
        what: what.to_string(),
        n: "0".into(),
        cols: ["-".into(), "-".into(), "-".into(), "-".into()],
        target: "-".into(),
        result: format!("FAILED: {}", why.lines().next().unwrap_or("")),
    }
}

fn print_table(rows: &[Row]) {
    let head = Row {
        what: "measure".into(),
        n: "n".into(),
        cols: ["p50".into(), "p90".into(), "p99".into(), "max".into()],
        target: "target".into(),
        result: "result".into(),
    };
    let all: Vec<&Row> = std::iter::once(&head).chain(rows).collect();
    let w_what = all.iter().map(|r| r.what.len()).max().unwrap_or(0);
    let w_n = all.iter().map(|r| r.n.len()).max().unwrap_or(0);
    let w_col = all
        .iter()
        .flat_map(|r| r.cols.iter().map(String::len))
        .max()
        .unwrap_or(0);
    let w_target = all.iter().map(|r| r.target.len()).max().unwrap_or(0);
    for (i, r) in all.iter().enumerate() {
        let cols: Vec<String> = r.cols.iter().map(|c| format!("{c:>w_col$}")).collect();
        println!(
            "{:<w_what$}  {:>w_n$}  {}  {:<w_target$}  {}",
            r.what,
            r.n,
            cols.join("  "),
            r.target,
            r.result
        );
        if i == 0 {
            println!(
                "{}",
                "-".repeat(w_what + w_n + 4 * (w_col + 2) + w_target + 12)
            );
        }
    }
}

// === the measurements ===

struct Bench {
    bin: PathBuf,
    root: PathBuf,
    logs: PathBuf,
    clk_tck: u64,
    samples: usize,
}

impl Bench {
    /// Progress goes to stderr, the table to stdout.
    fn spawn(&self, home: &Home, tag: &str, rust_log: &str) -> Res<Daemon> {
        eprintln!("daemon bench: {tag}");
        Daemon::spawn(&self.bin, home, &self.logs, tag, rust_log)
    }
}

/// Single changes to listener `l0` in a running daemon: latency, CPU by
/// schedstat and by stat ticks, the pass times skupperd logged, and why
/// samples were lost.
struct Changes {
    latency: Vec<Duration>,
    cpu: Vec<Duration>,
    cpu_ticks: Vec<Duration>,
    pass: Vec<Duration>,
    /// Samples whose pass rewrote `status.yaml`.
    status_rewritten: usize,
    lost: Vec<String>,
}

fn changes(bench: &Bench, home: &Home, d: &Daemon) -> Res<Changes> {
    let watch = RuntimeWatch::new(home)?;
    let cfg = fs::read_to_string(home.skrouterd()).map_err(ctx("skrouterd.json"))?;
    if listener_port(&cfg, "l0") != Some(10_000) {
        return Err(
            "cannot find listener/l0 on port 10000 in skrouterd.json (layout changed?)".into(),
        );
    }
    let mut tail = LogTail::new(&d.log);
    tail.read_new();
    let mut out = Changes {
        latency: Vec::new(),
        cpu: Vec::new(),
        cpu_ticks: Vec::new(),
        pass: Vec::new(),
        status_rewritten: 0,
        lost: Vec::new(),
    };
    for k in 0..bench.samples {
        let port = 30_000 + k;
        let staged = home.stage("l0.yaml", &listener("l0", port))?;
        watch.drain();
        tail.read_new();
        let status_before = watch.status_ino();
        let before = read_cpu(d.pid());
        let t0 = Instant::now();
        publish(&staged)?;
        let applied = watch.wait_output(
            &mut tail,
            status_before,
            |cfg| listener_port(cfg, "l0") == Some(port as u16),
            t0 + CHANGE_PATIENCE,
        );
        let applied = match applied {
            Ok(applied) => applied,
            Err(e) => {
                eprintln!("daemon bench: sample {k} (port {port}) lost: {e}");
                out.lost.push(e);
                // Let a late pass finish before the next sample.
                let _ = tail.wait_passes(1);
                continue;
            }
        };
        out.latency.push(applied.at.saturating_duration_since(t0));
        out.status_rewritten += usize::from(applied.status_rewritten);
        // One pass per sample: its line closes the CPU window.
        let mut lines = applied.lines;
        if !lines.iter().any(|l| is_pass(l)) {
            lines.extend(tail.wait_passes(1)?);
        }
        let after = read_cpu(d.pid());
        let (cpu, ticks) = cpu_between(&before, &after, bench.clk_tck);
        out.cpu.push(cpu);
        out.cpu_ticks.push(ticks);
        if let Some(ms) = lines
            .iter()
            .filter(|l| is_pass(l))
            .find_map(|l| elapsed_ms(l))
        {
            out.pass.push(ns_to_duration(ms * 1_000_000));
        }
    }
    Ok(out)
}

fn latency_rows(n: usize, c: &mut Changes, rows: &mut Vec<Row>) {
    let what = format!("change -> output, {n} listeners");
    if c.latency.is_empty() {
        rows.push(failed(&what, c.lost.first().map_or("no sample", |s| s)));
        return;
    }
    let mut sorted = c.latency.clone();
    sorted.sort();
    let result = judge(
        &[
            ("p50", pct(&sorted, 0.5), Duration::from_millis(40)),
            ("p99", pct(&sorted, 0.99), Duration::from_millis(100)),
        ],
        c.lost.len(),
    );
    let lost = if c.lost.is_empty() {
        String::new()
    } else {
        format!(" ({} lost)", c.lost.len())
    };
    rows.push(Row {
        what,
        n: format!("{}{lost}", c.latency.len()),
        cols: dur_cols(&mut c.latency),
        target: "p50 <= 40 ms, p99 <= 100 ms".into(),
        result,
    });
    rows.push(Row {
        what: format!("  samples whose pass rewrote status.yaml, {n}"),
        n: c.latency.len().to_string(),
        cols: [
            "-".into(),
            "-".into(),
            "-".into(),
            c.status_rewritten.to_string(),
        ],
        target: "(info: else skrouterd.json was last)".into(),
        result: String::new(),
    });
    rows.push(Row {
        what: format!("  pass time logged by skupperd, {n}"),
        n: c.pass.len().to_string(),
        cols: dur_cols(&mut c.pass),
        target: "(info)".into(),
        result: String::new(),
    });
}

/// One daemon at `n` listeners: latency rows.
fn latency_at(bench: &Bench, n: usize, rows: &mut Vec<Row>) {
    let what = format!("change -> output, {n} listeners");
    let run = || -> Res<Changes> {
        let home = Home::new(&bench.root, n)?;
        let mut d = bench.spawn(&home, &format!("latency-{n}"), LOG_BASE)?;
        d.wait_ready()?;
        let c = changes(bench, &home, &d)?;
        d.stop()?;
        Ok(c)
    };
    match run() {
        Ok(mut c) => latency_rows(n, &mut c, rows),
        Err(e) => rows.push(failed(&what, &e)),
    }
}

/// One burst in a fresh daemon (Site + `l0`).
struct BurstResult {
    /// First rename to last rename.
    writing: Duration,
    /// Last rename to outputs complete.
    applied: Duration,
    passes: usize,
    /// First `watch event` logged to the first pass's start.
    first_event_delay: Option<Duration>,
    /// First rename (bench clock) to the first pass's start.
    first_rename_delay: Option<Duration>,
    /// Worst over the burst's passes of start minus the moment the
    /// daemon had an event waiting (first event since the previous pass
    /// began, or the previous pass's end if later).
    worst_pass_delay: Option<Duration>,
}

fn burst(bench: &Bench, index: usize) -> Res<BurstResult> {
    let home = Home::new(&bench.root, 1)?;
    let mut d = bench.spawn(&home, &format!("burst-{index}"), LOG_BURST)?;
    d.wait_ready()?;
    let watch = RuntimeWatch::new(&home)?;
    let mut tail = LogTail::new(&d.log);
    tail.read_new();
    watch.drain();
    let status_before = watch.status_ino();

    let started_wall = unix_ns(SystemTime::now());
    let first = Instant::now();
    let mut first_rename_wall = None;
    for i in 0..BURST {
        let staged = home.stage(
            &format!("b{i}.yaml"),
            &listener(&format!("b{i}"), 20_000 + i),
        )?;
        publish(&staged)?;
        first_rename_wall.get_or_insert_with(|| unix_ns(SystemTime::now()));
    }
    let last = Instant::now();
    let applied = watch.wait_output(
        &mut tail,
        status_before,
        |cfg| burst_listeners(cfg) == BURST,
        last + CHANGE_PATIENCE,
    )?;

    // Passes still coming for the burst's events are counted too.
    let mut lines = applied.lines;
    lines.extend(tail.read_new());
    let mut quiet_since = Instant::now();
    let give_up = Instant::now() + CHANGE_PATIENCE;
    while quiet_since.elapsed() < BURST_QUIET && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
        let new = tail.read_new();
        if new.iter().any(|l| is_pass(l)) {
            quiet_since = Instant::now();
        }
        lines.extend(new);
    }
    d.stop()?;

    let passes: Vec<(i128, i128)> = lines
        .iter()
        .filter(|l| is_pass(l))
        .filter_map(|l| pass_span(l))
        .collect();
    let events: Vec<i128> = lines
        .iter()
        .filter(|l| l.contains("watch event"))
        .filter_map(|l| log_time(l))
        .filter(|t| *t >= started_wall)
        .collect();
    let first_pass = passes.first().map(|(s, _)| *s);
    let first_event_delay = first_pass
        .zip(events.first())
        .map(|(p, e)| ns_to_duration(p - e));
    let first_rename_delay = first_pass
        .zip(first_rename_wall)
        .map(|(p, r)| ns_to_duration(p - r));
    let mut worst: Option<Duration> = None;
    let mut prev: Option<(i128, i128)> = None;
    for &(start, end) in &passes {
        let since = prev.map_or(started_wall, |(s, _)| s);
        if let Some(ev) = events.iter().find(|t| **t >= since) {
            let waiting = prev.map_or(*ev, |(_, e)| (*ev).max(e));
            if waiting <= start {
                let d = ns_to_duration(start - waiting);
                worst = Some(worst.map_or(d, |w| w.max(d)));
            }
        }
        prev = Some((start, end));
    }
    Ok(BurstResult {
        writing: last.saturating_duration_since(first),
        applied: applied.at.saturating_duration_since(last),
        passes: passes.len(),
        first_event_delay,
        first_rename_delay,
        worst_pass_delay: worst,
    })
}

fn burst_rows(bench: &Bench, bursts: usize, rows: &mut Vec<Row>) {
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for b in 0..bursts {
        match burst(bench, b) {
            Ok(r) => results.push(r),
            Err(e) => errors.push(e),
        }
    }
    if results.is_empty() {
        rows.push(failed(
            "burst of 1,000 new files",
            errors.first().map_or("no burst", |s| s),
        ));
        return;
    }
    let lost = if errors.is_empty() {
        String::new()
    } else {
        format!(" ({} failed)", errors.len())
    };
    let n = format!("{}{lost}", results.len());
    let max_of = |v: &[Duration]| v.iter().max().copied();
    let ms200 = Duration::from_millis(200);

    let mut applied: Vec<Duration> = results.iter().map(|r| r.applied).collect();
    let result = judge(
        &[("max", max_of(&applied), Duration::from_secs(2))],
        errors.len(),
    );
    rows.push(Row {
        what: "burst 1,000: last rename -> all applied".into(),
        n: n.clone(),
        cols: dur_cols(&mut applied),
        target: "max <= 2 s".into(),
        result,
    });
    let mut passes: Vec<usize> = results.iter().map(|r| r.passes).collect();
    passes.sort();
    rows.push(Row {
        what: "burst 1,000: reconcile passes".into(),
        n: n.clone(),
        cols: [0.5, 0.9, 0.99, 1.0].map(|p| pct(&passes, p).map_or("-".into(), |c| c.to_string())),
        target: "max <= 5".into(),
        result: verdict(passes.iter().all(|p| *p <= 5) && errors.is_empty()),
    });
    let mut first: Vec<Duration> = results.iter().filter_map(|r| r.first_event_delay).collect();
    rows.push(Row {
        what: "burst: first event (log) -> first pass start".into(),
        n: first.len().to_string(),
        cols: dur_cols(&mut first),
        target: "max <= 200 ms".into(),
        result: judge(&[("max", max_of(&first), ms200)], 0),
    });
    let mut renamed: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.first_rename_delay)
        .collect();
    rows.push(Row {
        what: "burst: first rename -> first pass start".into(),
        n: renamed.len().to_string(),
        cols: dur_cols(&mut renamed),
        target: "(info: incl. inotify delivery)".into(),
        result: String::new(),
    });
    let mut worst: Vec<Duration> = results.iter().filter_map(|r| r.worst_pass_delay).collect();
    rows.push(Row {
        what: "burst: worst pass delay after its first event".into(),
        n: worst.len().to_string(),
        cols: dur_cols(&mut worst),
        target: "max <= 200 ms".into(),
        result: judge(&[("max", max_of(&worst), ms200)], 0),
    });
    let mut writing: Vec<Duration> = results.iter().map(|r| r.writing).collect();
    rows.push(Row {
        what: "burst: writing 1,000 files (first -> last rename)".into(),
        n,
        cols: dur_cols(&mut writing),
        target: "(info)".into(),
        result: String::new(),
    });
    for e in &errors {
        eprintln!("daemon bench: burst failed: {e}");
    }
}

/// Cold starts, restarts, then latency, CPU, RSS and idle CPU at `n`.
fn big(bench: &Bench, n: usize, starts: usize, idle: Duration, rows: &mut Vec<Row>) {
    let mut cold = Vec::new();
    // VmHWM of the cold-started daemons, then of the restarted ones.
    let mut cold_kib: Vec<u64> = Vec::new();
    // The first pass's read, plan and apply phases, as skupperd logs them.
    let mut phases: [Vec<Duration>; 3] = Default::default();
    let mut warm_kib: Vec<u64> = Vec::new();
    let mut home: Option<Home> = None;
    let mut errors = Vec::new();
    for s in 0..starts.max(1) {
        let mut attempt = || -> Res<(Home, Duration, Option<u64>)> {
            let h = Home::new(&bench.root, n)?;
            let mut d = bench.spawn(&h, &format!("cold-{n}-{s}"), LOG_BASE)?;
            let t = d.wait_ready()?;
            let kib = peak_rss_kib(d.pid());
            d.stop()?;
            if let Some(p) = first_pass_phases(&d.log) {
                for (all, one) in phases.iter_mut().zip(p) {
                    all.push(one);
                }
            }
            Ok((h, t, kib))
        };
        match attempt() {
            Ok((h, t, kib)) => {
                cold.push(t);
                cold_kib.extend(kib);
                home = Some(h);
            }
            Err(e) => errors.push(e),
        }
    }
    let what = format!("cold start -> READY=1, {n} listeners");
    if cold.is_empty() {
        rows.push(failed(&what, errors.first().map_or("", |s| s)));
    } else {
        cold.sort();
        let result = judge(
            &[("p50", pct(&cold, 0.5), Duration::from_millis(500))],
            errors.len(),
        );
        rows.push(Row {
            what,
            n: cold.len().to_string(),
            cols: dur_cols(&mut cold),
            target: "p50 <= 500 ms".into(),
            result,
        });
        for (name, mut v) in ["read", "plan", "apply"].into_iter().zip(phases) {
            rows.push(info_row(
                format!("  first pass {name} (logged: {name}_ms)"),
                &mut v,
            ));
        }
    }
    let Some(home) = home else {
        return;
    };

    let mut restart = Vec::new();
    let mut daemon = None;
    for r in 0..starts.max(1) {
        let mut d = match bench.spawn(&home, &format!("restart-{n}-{r}"), LOG_BASE) {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match d.wait_ready() {
            Ok(t) => restart.push(t),
            Err(e) => {
                errors.push(e);
                continue;
            }
        }
        if r + 1 < starts.max(1) {
            warm_kib.extend(peak_rss_kib(d.pid()));
            if let Err(e) = d.stop() {
                errors.push(e);
            }
        } else {
            daemon = Some(d);
        }
    }
    rows.push(info_row(
        format!("restart (runtime present) -> READY=1, {n}"),
        &mut restart,
    ));
    let Some(mut d) = daemon else {
        rows.push(failed(
            &format!("change -> output, {n} listeners"),
            errors.last().map_or("", |s| s),
        ));
        return;
    };

    match changes(bench, &home, &d) {
        Ok(mut c) => {
            latency_rows(n, &mut c, rows);
            let mut cpu = c.cpu.clone();
            cpu.sort();
            let result = judge(&[("p50", pct(&cpu, 0.5), Duration::from_millis(20))], 0);
            rows.push(Row {
                what: format!("reconcile CPU, one change at {n}"),
                n: cpu.len().to_string(),
                cols: dur_cols(&mut cpu),
                target: "p50 <= 20 ms".into(),
                result,
            });
            let mean = |v: &[Duration]| {
                v.iter().sum::<Duration>() / u32::try_from(v.len().max(1)).unwrap_or(1)
            };
            rows.push(Row {
                what: format!("  same, /proc/stat utime+stime ({} Hz)", bench.clk_tck),
                n: c.cpu_ticks.len().to_string(),
                cols: dur_cols(&mut c.cpu_ticks),
                target: format!("(info: mean {})", ms(mean(&c.cpu_ticks))),
                result: String::new(),
            });
        }
        Err(e) => rows.push(failed(&format!("change -> output, {n} listeners"), &e)),
    }
    warm_kib.extend(peak_rss_kib(d.pid()));

    // Idle: between two of the safety-net resyncs (every 60 s from the
    // actor's start), after the last pass settled. A resync is a full
    // pass, not idleness; a pass inside the window is reported.
    let mut tail = LogTail::new(&d.log);
    tail.read_new();
    let since = d.spawned.elapsed().as_secs();
    let next_resync = d.spawned + RESYNC * u32::try_from(since / RESYNC.as_secs() + 1).unwrap_or(1);
    if next_resync < Instant::now() + idle + Duration::from_secs(2) {
        let give_up = next_resync + LOG_PATIENCE;
        while Instant::now() < give_up
            && !tail.read_new().iter().any(|l| l.contains("trigger resync"))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    tail.read_new();
    let before = read_cpu(d.pid());
    std::thread::sleep(idle);
    let after = read_cpu(d.pid());
    let in_window = tail.read_new().iter().filter(|l| is_pass(l)).count();
    let (idle_cpu, idle_ticks) = cpu_between(&before, &after, bench.clk_tck);
    let share = idle_cpu.as_secs_f64() / idle.as_secs_f64() * 100.0;
    // "0%": at most 0.1% of one core (10 ms over 10 s).
    let ok = share <= 0.1;
    rows.push(Row {
        what: format!("idle CPU over {} s, no router, {n}", idle.as_secs()),
        n: "1".into(),
        cols: [
            "-".into(),
            "-".into(),
            "-".into(),
            format!("{} ({share:.3}%)", ms(idle_cpu)),
        ],
        target: format!("<= 0.1% (ticks {}, {in_window} passes)", ms(idle_ticks)),
        result: verdict(ok),
    });
    if let Err(e) = d.stop() {
        errors.push(e);
    }
    drop(d);

    for (label, kib) in [
        ("cold start", &cold_kib),
        ("restart, then the changes", &warm_kib),
    ] {
        let peak = kib.iter().max().map(|k| *k as f64 / 1024.0);
        rows.push(Row {
            what: format!("peak RSS (VmHWM), {n}: {label}"),
            n: kib.len().to_string(),
            cols: [
                "-".into(),
                "-".into(),
                "-".into(),
                peak.map_or("?".into(), |m| format!("{m:.1} MiB")),
            ],
            target: "max <= 64 MiB".into(),
            result: peak.map_or("FAILED: no VmHWM".into(), |m| {
                if m <= 64.0 {
                    "PASS".into()
                } else {
                    format!("MISS (+{:.1} MiB)", m - 64.0)
                }
            }),
        });
    }
    for e in &errors {
        eprintln!("daemon bench: {e}");
    }
}

fn main() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_skupperd"));
    let sizes: Vec<usize> = std::env::var("SKUPPERD_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 1_000, 10_000]);
    let samples = env_num("SKUPPERD_BENCH_SAMPLES", 40).max(1);
    let bursts = env_num("SKUPPERD_BENCH_BURSTS", 5);
    let starts = env_num("SKUPPERD_BENCH_STARTS", 3).max(1);
    let idle = Duration::from_secs(env_num("SKUPPERD_BENCH_IDLE_S", 10).max(1) as u64);
    let dir = match tempfile::Builder::new()
        .prefix("daemon-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("daemon bench: cannot create a temp dir: {e}");
            std::process::exit(1);
        }
    };
    let logs = dir.path().join("logs");
    if let Err(e) = fs::create_dir_all(&logs) {
        eprintln!("daemon bench: {e}");
        std::process::exit(1);
    }
    let bench = Bench {
        bin,
        root: dir.path().to_path_buf(),
        logs,
        clk_tck: clock_ticks(),
        samples,
    };
    let settled = settle_inode_allocator(dir.path());
    let load_before = load_average();
    let started = Instant::now();

    let big_n = sizes.iter().copied().max();
    let mut rows = Vec::new();
    // The cold starts come first, as a daemon's start comes first on a
    // machine: every pass of the other sections replaces files, and the
    // inodes they free slow later creates on this VM (see "No mass
    // delete"): a cold start measured after them took 1.35 s, of which
    // 1.13 s writing, against 0.43 s measured first.
    if let Some(n) = big_n {
        big(&bench, n, starts, idle, &mut rows);
    }
    for &n in &sizes {
        if Some(n) != big_n {
            latency_at(&bench, n, &mut rows);
        }
    }
    if bursts > 0 {
        burst_rows(&bench, bursts, &mut rows);
    }

    println!();
    println!(
        "skupperd daemon benchmark: {} (runner none, platform linux, one namespace)",
        bench.bin.display()
    );
    println!(
        "data homes under {}; {} latency samples per size, {bursts} bursts, {starts} cold starts and restarts",
        env!("CARGO_TARGET_TMPDIR"),
        samples
    );
    println!(
        "load average before: {load_before}, after: {}; {} cpus; {:.0} s",
        load_average(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
    println!("{settled}");
    println!();
    print_table(&rows);
    println!();
    for line in [
        "Percentiles are nearest-rank: with fewer than 100 samples p99 is the maximum.",
        "change -> output: from the rename of the listener file until skrouterd.json holds the new",
        "port and status.yaml has been renamed into place after it (inotify on runtime/); when the",
        "pass does not rewrite status.yaml (same content: lastRun has 1 s resolution), until the",
        "skrouterd.json rename, the last write of that pass. Input files are dated an hour back.",
        "reconcile CPU: the daemon's threads (schedstat ns) from the rename until the pass was logged.",
        "burst pass start = log time of the pass line - elapsed_ms (truncated: up to 1 ms late).",
    ] {
        println!("{line}");
    }
    if std::env::var_os("SKUPPERD_BENCH_KEEP").is_some() {
        println!("kept (logs under logs/): {}", dir.keep().display());
    }
}
