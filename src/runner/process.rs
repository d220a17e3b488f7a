//! The `process` runner (platform.md 1.2): skrouterd as a child of
//! skupperd, for hosts without systemd and for tests.
//!
//! One supervisor task per router owns the child. It starts
//! `<binary> -c <abs config path>` with `SKUPPER_SITE_ID` set, in a process
//! group of its own; logs the output (see [`super::output`]); restarts the
//! router when it exits on its own, with the policy of [`super::backoff`];
//! and stops it on request with SIGTERM to the group, then SIGKILL after
//! `stop_timeout`. An exit that follows skupperd's own stop request is a
//! normal stop, never a crash: the real router often aborts on SIGTERM
//! (router.md 6.1). Any other exit is explained ([`RouterExit`]) by the
//! router's last `(critical)`/`(error)` or start-up failure line, else by
//! its exit status, and says whether a listener's port was taken; that
//! explanation and `Failed` last until the router answers over management
//! ([`Runner::answered`]), stays up long enough, or skupperd restarts it.
//!
//! # Caveats
//! - platform.md asks for the parent-death signal, so that a router never
//!   outlives a skupperd that was killed. Setting it needs code between
//!   fork and exec (`pre_exec`), which is `unsafe`, and the crate forbids
//!   `unsafe`. The router is instead stopped, with its whole process group,
//!   when the runner is stopped or dropped, and SIGKILLed if the supervisor
//!   task is torn down (runtime shutdown). Only a SIGKILLed skupperd leaves
//!   the router behind; the management liveness check (router.md 5) then
//!   finds it by its site id.
//! - Running the router as the `skupper` user needs the user's ids, which
//!   the caller looks up: [`ProcessRunnerConfig::user`].

use super::backoff::{RestartConfig, RestartPolicy};
use super::output::{ExitKind, Lines, RateLimit, RouterExit, Verdict};
use super::{RouterDefinition, RouterProcessState, Runner, RunnerError, RunnerFuture};
use rustix::process::{kill_process_group, Pid, Signal};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Longest line kept from the router's output; a longer one is split.
const MAX_LINE: u64 = 16 * 1024;
/// How long to wait for the rest of the output once the router is gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ProcessRunnerConfig {
    pub restart: RestartConfig,
    /// Between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// Output lines logged per second per router; the rest are counted.
    pub lines_per_second: u32,
    /// Output lines kept for the error message.
    pub kept_lines: usize,
    /// `(uid, gid)` to run the router as (a root skupperd runs it as the
    /// `skupper` user when that user exists).
    pub user: Option<(u32, u32)>,
}

impl Default for ProcessRunnerConfig {
    fn default() -> Self {
        ProcessRunnerConfig {
            restart: RestartConfig::default(),
            stop_timeout: Duration::from_secs(10),
            lines_per_second: 50,
            kept_lines: 50,
            user: None,
        }
    }
}

/// What the supervisor tells the handle. A std mutex: nothing awaits while
/// holding it, and the handle's getters are not async.
#[derive(Debug)]
struct Shared {
    phase: RouterProcessState,
    /// Set while the router exits too often: `router exited: <cause>`.
    failed: Option<String>,
    /// The last exit skupperd did not ask for.
    last_exit: Option<RouterExit>,
    /// Here rather than in the supervisor task: the handle clears a
    /// failure when the router answers ([`Runner::answered`]).
    policy: RestartPolicy,
    restarts: u32,
    lines: Lines,
    limit: RateLimit,
    logged: u64,
    dropped: u64,
    pid: Option<u32>,
}

type SharedRef = Arc<Mutex<Shared>>;

fn lock(s: &SharedRef) -> MutexGuard<'_, Shared> {
    // A panic elsewhere cannot leave these counters inconsistent enough to
    // matter; keep serving them.
    s.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

enum Request {
    Update(RouterDefinition, oneshot::Sender<Result<(), RunnerError>>),
    Restart(oneshot::Sender<Result<(), RunnerError>>),
    Stop(oneshot::Sender<()>),
}

struct Supervisor {
    requests: mpsc::Sender<Request>,
    task: JoinHandle<()>,
}

/// The router of one namespace as a child process. Dropping it stops the
/// router.
pub struct ProcessRunner {
    config: ProcessRunnerConfig,
    shared: SharedRef,
    def: Option<RouterDefinition>,
    supervisor: Option<Supervisor>,
}

impl ProcessRunner {
    pub fn new(config: ProcessRunnerConfig) -> ProcessRunner {
        let shared = Shared {
            phase: RouterProcessState::NotCreated,
            failed: None,
            last_exit: None,
            policy: RestartPolicy::new(config.restart.clone()),
            restarts: 0,
            lines: Lines::new(config.kept_lines),
            limit: RateLimit::new(config.lines_per_second),
            logged: 0,
            dropped: 0,
            pid: None,
        };
        ProcessRunner {
            config,
            shared: Arc::new(Mutex::new(shared)),
            def: None,
            supervisor: None,
        }
    }

    /// The running router's process id (also its process group id).
    pub fn pid(&self) -> Option<u32> {
        lock(&self.shared).pid
    }

    /// The last lines of the current (or last) run's output.
    pub fn recent_lines(&self) -> Vec<String> {
        lock(&self.shared).lines.iter().map(str::to_owned).collect()
    }

    /// Output lines logged and dropped by the rate limit, since creation.
    pub fn output_counts(&self) -> (u64, u64) {
        let s = lock(&self.shared);
        (s.logged, s.dropped)
    }

    fn gone(&self) -> RunnerError {
        RunnerError::SupervisorGone {
            namespace: self
                .def
                .as_ref()
                .map(|d| d.namespace.clone())
                .unwrap_or_default(),
        }
    }

    fn alive(&self) -> Option<&Supervisor> {
        self.supervisor.as_ref().filter(|s| !s.task.is_finished())
    }

    async fn start(&mut self, def: RouterDefinition) -> Result<(), RunnerError> {
        let (requests, rx) = mpsc::channel(4);
        let (reply, first) = oneshot::channel();
        let task = tokio::spawn(supervise(
            def.clone(),
            self.config.clone(),
            self.shared.clone(),
            rx,
            reply,
        ));
        self.def = Some(def);
        self.supervisor = Some(Supervisor { requests, task });
        first.await.map_err(|_| self.gone())?
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, RunnerError> {
        let Some(sup) = self.alive() else {
            return Err(self.gone());
        };
        let (tx, rx) = oneshot::channel();
        sup.requests.send(make(tx)).await.map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())
    }
}

impl Runner for ProcessRunner {
    fn ensure<'a>(&'a mut self, def: &'a RouterDefinition) -> RunnerFuture<'a> {
        Box::pin(async move {
            let def = def.absolute()?;
            if self.alive().is_none() {
                return self.start(def).await;
            }
            if self.def.as_ref() == Some(&def) {
                return Ok(());
            }
            self.def = Some(def.clone());
            self.request(|tx| Request::Update(def, tx)).await?
        })
    }

    fn restart(&mut self) -> RunnerFuture<'_> {
        Box::pin(async move {
            if self.alive().is_some() {
                return self.request(Request::Restart).await?;
            }
            let def = self.def.clone().ok_or(RunnerError::NotDefined)?;
            self.start(def).await
        })
    }

    fn stop(&mut self) -> RunnerFuture<'_> {
        Box::pin(async move {
            if self.alive().is_some() {
                // The supervisor may end between the check and the send;
                // either way the router is down afterwards.
                let _ = self.request(Request::Stop).await;
            }
            if let Some(sup) = self.supervisor.take() {
                let _ = sup.task.await;
            }
            Ok(())
        })
    }

    fn state(&self) -> RouterProcessState {
        let s = lock(&self.shared);
        match &s.failed {
            Some(reason) => RouterProcessState::Failed(reason.clone()),
            None => s.phase.clone(),
        }
    }

    fn last_exit(&self) -> Option<RouterExit> {
        lock(&self.shared).last_exit.clone()
    }

    fn answered(&mut self) {
        let mut s = lock(&self.shared);
        // Only the run that is up now can have answered; an answer never
        // clears the exit of a router that is down.
        if s.phase != RouterProcessState::Running {
            return;
        }
        if let Some(failed) = s.failed.take() {
            tracing::info!("the router answers again; it is no longer failed ({failed})");
        }
        s.last_exit = None;
        s.policy.answered();
    }

    fn restarts(&self) -> u32 {
        lock(&self.shared).restarts
    }

    fn name(&self) -> &'static str {
        "process"
    }
}

// Dropping the handle closes the request channel; the supervisor takes that
// as a stop request.

/// How one run of the router ended.
enum Ended {
    /// It exited on its own.
    Exited(Option<ExitStatus>),
    /// It could not be started (the binary is missing, ...).
    NotStarted(String),
    /// skupperd stopped it to start it again (restart, new definition).
    Respawn(oneshot::Sender<Result<(), RunnerError>>),
    /// skupperd stopped it for good.
    Stop(Option<oneshot::Sender<()>>),
}

/// What a request means between runs or during one.
enum Asked {
    Nothing,
    Respawn(oneshot::Sender<Result<(), RunnerError>>),
    Stop(Option<oneshot::Sender<()>>),
}

fn interpret(req: Option<Request>, def: &mut RouterDefinition) -> Asked {
    match req {
        None => Asked::Stop(None),
        Some(Request::Stop(tx)) => Asked::Stop(Some(tx)),
        Some(Request::Restart(tx)) => Asked::Respawn(tx),
        Some(Request::Update(new, tx)) if new == *def => {
            let _ = tx.send(Ok(()));
            Asked::Nothing
        }
        Some(Request::Update(new, tx)) => {
            *def = new;
            Asked::Respawn(tx)
        }
    }
}

fn set_phase(shared: &SharedRef, phase: RouterProcessState) {
    lock(shared).phase = phase;
}

/// Forget past exits: the router is healthy, or restarted on purpose.
fn clear_failure(shared: &SharedRef) {
    let mut s = lock(shared);
    s.policy.healthy();
    s.failed = None;
    s.last_exit = None;
}

/// The exit status in the words the status shows.
fn exit_kind(status: Option<ExitStatus>) -> ExitKind {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(st) => match (st.code(), st.signal()) {
            (Some(code), _) => ExitKind::Code(code),
            (None, Some(signal)) => ExitKind::Signal(signal),
            (None, None) => ExitKind::Unknown,
        },
        None => ExitKind::Unknown,
    }
}

async fn supervise(
    mut def: RouterDefinition,
    config: ProcessRunnerConfig,
    shared: SharedRef,
    mut rx: mpsc::Receiver<Request>,
    first: oneshot::Sender<Result<(), RunnerError>>,
) {
    let namespace = def.namespace.clone();
    let mut reply = Some(first);
    loop {
        set_phase(&shared, RouterProcessState::Starting);
        let started = Instant::now();
        let ended = match Run::spawn(&def, &config, &shared) {
            Err(e) => {
                tracing::warn!(namespace = %namespace, "{e}");
                let why = e.to_string();
                lock(&shared).lines.push(why.clone());
                if let Some(r) = reply.take() {
                    let _ = r.send(Err(e));
                }
                Ended::NotStarted(why)
            }
            Ok(mut run) => {
                set_phase(&shared, RouterProcessState::Running);
                tracing::info!(namespace = %namespace, pid = ?run.child.id(), "router started");
                if let Some(r) = reply.take() {
                    let _ = r.send(Ok(()));
                }
                run.watch(&mut rx, &mut def, &config, &shared, started)
                    .await
            }
        };
        lock(&shared).pid = None;

        let (status, not_started) = match ended {
            Ended::Stop(tx) => {
                stopped(&shared, &namespace, tx);
                return;
            }
            Ended::Respawn(tx) => {
                clear_failure(&shared);
                reply = Some(tx);
                continue;
            }
            Ended::Exited(status) => (Some(status), None),
            Ended::NotStarted(why) => (None, Some(why)),
        };
        let (exit, decision) = {
            let mut s = lock(&shared);
            let exit = match not_started {
                Some(why) => RouterExit::not_started(why),
                None => RouterExit::explain(&s.lines, exit_kind(status.flatten())),
            };
            let decision = s.policy.on_exit(started, Instant::now());
            if decision.failed {
                s.failed = Some(format!("router exited: {}", exit.cause));
            }
            s.last_exit = Some(exit.clone());
            s.phase = RouterProcessState::Restarting;
            (exit, decision)
        };
        tracing::warn!(
            namespace = %namespace,
            status = %exit.kind,
            failed = decision.failed,
            "router exited: {}; starting it again in {:?}",
            exit.cause,
            decision.delay
        );

        let backoff = tokio::time::sleep(decision.delay);
        tokio::pin!(backoff);
        loop {
            tokio::select! {
                _ = &mut backoff => {
                    lock(&shared).restarts += 1;
                    break;
                }
                req = rx.recv() => match interpret(req, &mut def) {
                    Asked::Nothing => {}
                    Asked::Stop(tx) => {
                        stopped(&shared, &namespace, tx);
                        return;
                    }
                    Asked::Respawn(tx) => {
                        clear_failure(&shared);
                        reply = Some(tx);
                        break;
                    }
                },
            }
        }
    }
}

fn stopped(shared: &SharedRef, namespace: &str, tx: Option<oneshot::Sender<()>>) {
    {
        let mut s = lock(shared);
        s.phase = RouterProcessState::Stopped;
        s.failed = None;
    }
    tracing::info!(namespace = %namespace, "router stopped");
    if let Some(tx) = tx {
        let _ = tx.send(());
    }
}

/// One run of the router.
struct Run {
    child: Child,
    /// `None` once the group is known to be gone.
    group: Option<Pid>,
    readers: Vec<JoinHandle<()>>,
}

impl Run {
    fn spawn(
        def: &RouterDefinition,
        config: &ProcessRunnerConfig,
        shared: &SharedRef,
    ) -> Result<Run, RunnerError> {
        let mut cmd = Command::new(&def.binary);
        cmd.arg("-c")
            .arg(&def.config_path)
            .env("SKUPPER_SITE_ID", &def.site_id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so a stop reaches everything it started.
            .process_group(0)
            .kill_on_drop(true);
        if let Some((uid, gid)) = config.user {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd.spawn().map_err(|source| RunnerError::Spawn {
            binary: def.binary.clone(),
            source,
        })?;
        let pid = child.id();
        {
            let mut s = lock(shared);
            s.lines.clear();
            s.pid = pid;
        }
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_lines(
                out,
                def.namespace.clone(),
                shared.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_lines(
                err,
                def.namespace.clone(),
                shared.clone(),
            )));
        }
        let group = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw);
        Ok(Run {
            child,
            group,
            readers,
        })
    }

    /// Wait for the router to exit or for a request about it.
    async fn watch(
        &mut self,
        rx: &mut mpsc::Receiver<Request>,
        def: &mut RouterDefinition,
        config: &ProcessRunnerConfig,
        shared: &SharedRef,
        started: Instant,
    ) -> Ended {
        let healthy_at = tokio::time::Instant::from_std(started + config.restart.reset_after);
        let mut healthy = false;
        loop {
            tokio::select! {
                status = self.child.wait() => {
                    self.finish().await;
                    return Ended::Exited(status.ok());
                }
                _ = tokio::time::sleep_until(healthy_at), if !healthy => {
                    healthy = true;
                    clear_failure(shared);
                }
                req = rx.recv() => match interpret(req, def) {
                    Asked::Nothing => {}
                    Asked::Stop(tx) => {
                        self.terminate(config.stop_timeout).await;
                        return Ended::Stop(tx);
                    }
                    Asked::Respawn(tx) => {
                        set_phase(shared, RouterProcessState::Restarting);
                        self.terminate(config.stop_timeout).await;
                        return Ended::Respawn(tx);
                    }
                },
            }
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(group) = self.group {
            // ESRCH: the whole group is already gone, which is the goal.
            let _ = kill_process_group(group, signal);
        }
    }

    /// SIGTERM, then SIGKILL after `timeout`. Whatever the exit looks like
    /// (the router may abort on SIGTERM), it is the stop skupperd asked for.
    async fn terminate(&mut self, timeout: Duration) {
        self.signal(Signal::TERM);
        if tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_err()
        {
            self.signal(Signal::KILL);
            let _ = self.child.wait().await;
        }
        self.finish().await;
    }

    /// After the router exited: nothing it started may outlive it (it would
    /// keep ports and the output pipes), and its last lines are read.
    async fn finish(&mut self) {
        self.signal(Signal::KILL);
        self.group = None;
        for reader in self.readers.drain(..) {
            let abort = reader.abort_handle();
            if tokio::time::timeout(DRAIN_TIMEOUT, reader).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Run {
    /// The supervisor was torn down mid-run (runtime shutdown): take the
    /// whole group down, not only the child that `kill_on_drop` reaches.
    fn drop(&mut self) {
        self.signal(Signal::KILL);
    }
}

async fn read_lines(stream: impl AsyncRead + Unpin, namespace: String, shared: SharedRef) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']).to_owned();
        let verdict = {
            let mut s = lock(&shared);
            s.lines.push(line.clone());
            let verdict = s.limit.admit(Instant::now());
            match verdict {
                Verdict::Log { .. } => s.logged += 1,
                Verdict::Drop => s.dropped += 1,
            }
            verdict
        };
        if let Verdict::Log { dropped_before } = verdict {
            report_dropped(&namespace, dropped_before);
            tracing::info!(target: "router", namespace = %namespace, "{line}");
        }
    }
    let dropped = lock(&shared).limit.take_dropped();
    report_dropped(&namespace, dropped);
}

fn report_dropped(namespace: &str, dropped: u64) {
    if dropped > 0 {
        tracing::warn!(
            target: "router",
            namespace = %namespace,
            dropped,
            "{dropped} router output lines not logged (rate limit)"
        );
    }
}

#[cfg(test)]
mod tests;
