//! The process runner with real child processes: small `sh` scripts stand
//! in for skrouterd. The scripts are given as the "config file" to one
//! dispatcher binary (`exec sh "$2" "$@"`), written once, so no test execs a
//! file that another test's fork may still hold open for writing (ETXTBSY).

use super::*;
use crate::runner::{ExitKind, RouterDefinition, RouterProcessState, Runner};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Patience for anything that involves processes on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn dispatcher() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("skrouterd");
        std::fs::write(&bin, "#!/bin/sh\nexec /bin/sh \"$2\" \"$@\"\n").unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let probe = dir.path().join("probe.sh");
        std::fs::write(&probe, "exit 0\n").unwrap();
        // Wait out any fork that inherited the write descriptor.
        for _ in 0..200 {
            match std::process::Command::new(&bin)
                .arg("-c")
                .arg(&probe)
                .status()
            {
                Ok(s) if s.success() => break,
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        dir
    })
    .path()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        captured_log();
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A definition whose "config file" is this script.
    fn router(&self, name: &str, script: &str) -> RouterDefinition {
        let path = self.dir.path().join(name);
        std::fs::write(&path, script).unwrap();
        RouterDefinition {
            namespace: "ns1".into(),
            config_path: path,
            site_id: "site-0001".into(),
            binary: dispatcher().join("skrouterd"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn fast() -> ProcessRunnerConfig {
    ProcessRunnerConfig {
        restart: RestartConfig {
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            reset_after: Duration::from_secs(3600),
            crash_window: Duration::from_secs(3600),
            crash_limit: 1000,
            failed_retry: Duration::from_millis(40),
        },
        stop_timeout: Duration::from_secs(10),
        ..ProcessRunnerConfig::default()
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a process exists and is not a zombie (a zombie holds nothing,
/// and an init that is slow to reap it must not fail the test).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
    }
}

const SERVE: &str = "while :; do sleep 0.05; done\n";

#[tokio::test]
async fn starts_with_the_absolute_config_path_and_site_id_and_stops() {
    let f = Fixture::new();
    let def = f.router(
        "run.sh",
        &format!("echo \"args $1 $2 site=$SKUPPER_SITE_ID\"\n{SERVE}"),
    );
    let mut r = ProcessRunner::new(fast());
    assert_eq!(r.state(), RouterProcessState::NotCreated);
    r.ensure(&def).await.unwrap();
    assert_eq!(r.state(), RouterProcessState::Running);
    let pid = r.pid().unwrap();
    assert!(alive(pid));
    let expected = format!("args -c {} site=site-0001", def.config_path.display());
    eventually("the first line", || r.recent_lines().contains(&expected)).await;

    r.stop().await.unwrap();
    assert_eq!(r.state(), RouterProcessState::Stopped);
    assert!(!alive(pid), "router still running after stop");
    assert_eq!(r.restarts(), 0);
    assert_eq!(r.last_exit(), None);
}

#[tokio::test]
async fn a_relative_config_path_is_made_absolute() {
    let f = Fixture::new();
    let mut def = f.router("rel.sh", &format!("echo \"$2\"\n{SERVE}"));
    let cwd = std::env::current_dir().unwrap();
    let relative = pathdiff(&def.config_path, &cwd);
    def.config_path = relative.clone();
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    let expected = cwd.join(&relative).display().to_string();
    eventually("the path line", || r.recent_lines().contains(&expected)).await;
    r.stop().await.unwrap();
}

/// `target` relative to `base`, with `..` as needed.
fn pathdiff(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

#[tokio::test]
async fn sigterm_is_sent_first_and_honoured() {
    let f = Fixture::new();
    let def = f.router(
        "term.sh",
        &format!("trap 'echo got TERM; exit 0' TERM\necho ready\n{SERVE}"),
    );
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    eventually("ready", || r.recent_lines().contains(&"ready".to_owned())).await;
    let pid = r.pid().unwrap();
    r.stop().await.unwrap();
    assert!(
        r.recent_lines().contains(&"got TERM".to_owned()),
        "{:?}",
        r.recent_lines()
    );
    assert!(!alive(pid));
    assert_eq!(r.state(), RouterProcessState::Stopped);
}

#[tokio::test]
async fn a_router_that_aborts_on_sigterm_has_stopped_normally() {
    let f = Fixture::new();
    let def = f.router(
        "abort.sh",
        &format!("trap 'echo \"free(): double free detected in tcache 2\"; kill -ABRT $$' TERM\necho ready\n{SERVE}"),
    );
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    eventually("ready", || r.recent_lines().contains(&"ready".to_owned())).await;
    r.stop().await.unwrap();
    assert!(r.recent_lines().iter().any(|l| l.contains("double free")));
    assert_eq!(r.state(), RouterProcessState::Stopped);
    assert_eq!(r.restarts(), 0);
    assert_eq!(r.last_exit(), None);
}

#[tokio::test]
async fn a_router_ignoring_sigterm_is_killed_after_the_timeout() {
    let f = Fixture::new();
    let def = f.router("stubborn.sh", &format!("trap '' TERM\necho ready\n{SERVE}"));
    let mut r = ProcessRunner::new(ProcessRunnerConfig {
        stop_timeout: Duration::from_millis(200),
        ..fast()
    });
    r.ensure(&def).await.unwrap();
    eventually("ready", || r.recent_lines().contains(&"ready".to_owned())).await;
    let pid = r.pid().unwrap();
    r.stop().await.unwrap();
    assert!(!alive(pid));
    assert_eq!(r.state(), RouterProcessState::Stopped);
}

fn cause(r: &ProcessRunner) -> Option<String> {
    r.last_exit().map(|e| e.cause)
}

#[tokio::test]
async fn a_crashed_router_is_started_again_and_its_error_line_explains() {
    let f = Fixture::new();
    let runs = f.path("runs");
    let def = f.router(
        "crash.sh",
        &format!(
            "echo run >> '{}'\n\
             echo '2026-12-03 10:00:00.1 +0000 ROUTER (info) Router started in Interior mode'\n\
             echo '2026-12-03 10:00:00.2 +0000 ROUTER_CORE (error) lost my way'\n\
             echo '2026-12-03 10:00:00.3 +0000 ROUTER (info) Router stopped'\n\
             exit 3\n",
            runs.display()
        ),
    );
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    let count = || std::fs::read_to_string(&runs).map_or(0, |s| s.lines().count());
    eventually("four runs", || count() >= 4).await;
    assert!(r.restarts() >= 3, "{} restarts", r.restarts());
    assert_eq!(
        cause(&r).as_deref(),
        Some("ROUTER_CORE (error) lost my way")
    );
    assert_eq!(r.last_exit().map(|e| e.kind), Some(ExitKind::Code(3)));
    assert!(!matches!(r.state(), RouterProcessState::Failed(_)));
    r.stop().await.unwrap();
    assert_eq!(r.state(), RouterProcessState::Stopped);
}

#[tokio::test]
async fn a_crash_loop_fails_with_the_startup_error_and_keeps_retrying() {
    let f = Fixture::new();
    let failure = "Router start-up failed: Python: Exception: Cannot load configuration file x";
    let def = f.router(
        "loop.sh",
        &format!("echo '{failure}'\necho 'SKUPPER-ROUTER FATAL ERROR'\nexit 1\n"),
    );
    let mut config = fast();
    config.restart.crash_limit = 3;
    config.restart.crash_window = Duration::from_secs(3600);
    let mut r = ProcessRunner::new(config);
    r.ensure(&def).await.unwrap();
    let expected = RouterProcessState::Failed(format!("router exited: {failure}"));
    eventually("failed", || r.state() == expected).await;
    let at_failure = r.restarts();
    eventually("a retry while failed", || r.restarts() > at_failure).await;
    assert_eq!(cause(&r).as_deref(), Some(failure));
    r.stop().await.unwrap();
    assert_eq!(r.state(), RouterProcessState::Stopped);
}

#[tokio::test]
async fn without_an_error_line_the_exit_status_explains() {
    let f = Fixture::new();
    let def = f.router(
        "killed.sh",
        "echo '2026-12-03 10:00:00.1 +0000 ROUTER (info) Router started in Interior mode'\nkill -9 $$\n",
    );
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    eventually("an exit", || r.last_exit().is_some()).await;
    assert_eq!(cause(&r).as_deref(), Some("killed by signal 9"));
    r.stop().await.unwrap();

    let def = f.router("one.sh", "echo 'nothing to see'\nexit 1\n");
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    eventually("an exit", || r.last_exit().is_some()).await;
    assert_eq!(cause(&r).as_deref(), Some("exited with status 1"));
    r.stop().await.unwrap();
}

#[tokio::test]
async fn a_taken_required_listener_port_is_reported_with_the_exit() {
    let f = Fixture::new();
    // What the real router prints when its management port is taken.
    let def = f.router(
        "taken.sh",
        "echo '2026-12-03 10:00:00.1 +0000 ROUTER (info) Router started in Interior mode'\n\
         echo '2026-12-03 10:00:00.123456 +0000 SERVER (error) Listener error on 127.0.0.1:5671: Address already in use - listen on 127.0.0.1:5671 (proton:io)' >&2\n\
         echo '2026-12-03 10:00:00.123456 +0000 SERVER (critical) Shutting down, required listener failed 127.0.0.1:5671' >&2\n\
         exit 1\n",
    );
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    eventually("an exit", || r.last_exit().is_some()).await;
    let exit = r.last_exit().unwrap();
    assert_eq!(exit.listener_port_taken, Some(5671));
    assert_eq!(
        exit.cause,
        "SERVER (critical) Shutting down, required listener failed 127.0.0.1:5671"
    );
    r.stop().await.unwrap();
}

#[tokio::test]
async fn failed_is_cleared_once_a_later_start_answers() {
    let f = Fixture::new();
    let fixed = f.path("fixed");
    let def = f.router(
        "flaky.sh",
        &format!(
            "if [ -e '{}' ]; then\necho up\n{SERVE}fi\n\
             echo '2026-12-03 10:00:00.2 +0000 SERVER (critical) it broke'\nexit 1\n",
            fixed.display()
        ),
    );
    let mut config = fast();
    config.restart.crash_limit = 2;
    let mut r = ProcessRunner::new(config);
    r.ensure(&def).await.unwrap();
    let failed = RouterProcessState::Failed("router exited: SERVER (critical) it broke".into());
    eventually("failed", || r.state() == failed).await;
    // An answer while the router is down clears nothing.
    r.answered();
    std::fs::write(&fixed, "").unwrap();
    eventually("the fixed router up", || {
        r.recent_lines().contains(&"up".to_owned())
    })
    .await;
    // Up, but not known good yet: still failed.
    assert_eq!(r.state(), failed);
    r.answered();
    assert_eq!(r.state(), RouterProcessState::Running);
    assert_eq!(r.last_exit(), None);
    r.stop().await.unwrap();
}

#[tokio::test]
async fn a_missing_binary_is_an_error_and_is_retried() {
    let f = Fixture::new();
    let mut def = f.router("unused.sh", SERVE);
    def.binary = f.path("no-such-skrouterd");
    let mut r = ProcessRunner::new(fast());
    let err = r.ensure(&def).await.unwrap_err();
    assert!(matches!(err, RunnerError::Spawn { .. }), "{err}");
    eventually("a retry", || r.restarts() >= 1).await;
    let line = cause(&r).unwrap_or_default();
    assert!(line.contains("no-such-skrouterd"), "{line}");
    r.stop().await.unwrap();
}

#[tokio::test]
async fn a_changed_definition_restarts_the_router_and_the_same_one_does_not() {
    let f = Fixture::new();
    let mut def = f.router(
        "site.sh",
        &format!("echo \"site=$SKUPPER_SITE_ID\"\n{SERVE}"),
    );
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    let first = r.pid().unwrap();
    r.ensure(&def).await.unwrap();
    assert_eq!(r.pid(), Some(first));

    def.site_id = "site-0002".into();
    r.ensure(&def).await.unwrap();
    let second = r.pid().unwrap();
    assert_ne!(first, second);
    assert!(!alive(first));
    eventually("new site id", || {
        r.recent_lines().contains(&"site=site-0002".to_owned())
    })
    .await;
    assert_eq!(r.restarts(), 0, "a requested restart is not a crash");
    assert_eq!(r.state(), RouterProcessState::Running);

    r.restart().await.unwrap();
    let third = r.pid().unwrap();
    assert_ne!(second, third);
    assert!(!alive(second));
    r.stop().await.unwrap();
}

#[tokio::test]
async fn nothing_the_router_started_outlives_a_stop() {
    let f = Fixture::new();
    let child_pid = f.path("child.pid");
    let def = f.router(
        "forks.sh",
        &format!(
            "sleep 1000 &\necho $! > '{}'\necho ready\nwait\n",
            child_pid.display()
        ),
    );
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    eventually("ready", || r.recent_lines().contains(&"ready".to_owned())).await;
    let pid = r.pid().unwrap();
    let grandchild: u32 = std::fs::read_to_string(&child_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(grandchild));
    r.stop().await.unwrap();
    assert!(!alive(pid));
    eventually("the background sleep to go", || !alive(grandchild)).await;
}

#[tokio::test]
async fn dropping_the_runner_stops_the_router() {
    let f = Fixture::new();
    let def = f.router("drop.sh", SERVE);
    let mut r = ProcessRunner::new(fast());
    r.ensure(&def).await.unwrap();
    let pid = r.pid().unwrap();
    drop(r);
    eventually("the router to go", || !alive(pid)).await;
}

/// What the runner logs, from every test of this binary.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A global subscriber, installed before any test here logs. (A
/// thread-local one is not enough: tracing caches a callsite's interest
/// when the callsite is first hit, and a test on another thread can hit the
/// runner's callsites first, concurrently with `set_default`, caching
/// "not interested" for good.)
fn captured_log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

#[tokio::test]
async fn output_beyond_the_rate_is_counted_not_logged() {
    let f = Fixture::new();
    let def = f.router(
        "chatty.sh",
        &format!("i=1\nwhile [ $i -le 100 ]; do echo \"line $i\"; i=$((i+1)); done\n{SERVE}"),
    );
    let def = RouterDefinition {
        namespace: "chatty".into(),
        ..def
    };
    let mut r = ProcessRunner::new(ProcessRunnerConfig {
        lines_per_second: 5,
        ..fast()
    });
    r.ensure(&def).await.unwrap();
    eventually("100 lines", || {
        let (logged, dropped) = r.output_counts();
        logged + dropped == 100
    })
    .await;
    r.stop().await.unwrap();

    let (logged, dropped) = r.output_counts();
    assert!(
        logged >= 5 && dropped > 0,
        "logged {logged}, dropped {dropped}"
    );
    // The last 50 lines are kept whether logged or not.
    let kept = r.recent_lines();
    assert_eq!(kept.len(), 50);
    assert_eq!(kept.first().map(String::as_str), Some("line 51"));
    assert_eq!(kept.last().map(String::as_str), Some("line 100"));

    let log = String::from_utf8(captured_log().0.lock().unwrap().clone()).unwrap();
    let ours: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("namespace=chatty"))
        .collect();
    let router_lines = ours.iter().filter(|l| l.contains(" router: line ")).count();
    assert_eq!(router_lines as u64, logged, "{ours:#?}");
    let reported: u64 = ours
        .iter()
        .filter_map(|l| {
            l.split(" router output lines not logged")
                .next()
                .filter(|_| l.contains("not logged"))
        })
        .filter_map(|head| head.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(reported, dropped, "{ours:#?}");
}
