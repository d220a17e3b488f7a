//! The daemon shell: [`run`] is `skupperd run` (mini-redis's
//! `server::run(listener, shutdown)` shape: the shutdown trigger is an
//! argument, so tests pass one they control), with systemd notification,
//! signals and logging beside it.
//!
//! # Expected flow
//! 1. The caller has loaded and validated the configuration (a bad one
//!    exits 2 before any side effect).
//! 2. Take the controller lock (a second instance fails here, exit 1).
//! 3. Start the watcher; it announces every namespace present, whose actor
//!    is started with a startup latch.
//! 4. `READY=1` once every first pass has written its files; `STATUS=`
//!    whenever the one-line summary changes; `WATCHDOG=1` on a timer, only
//!    while every actor looped within half the watchdog period.
//! 5. SIGHUP (`hangups`): `RELOADING=1`, re-read the config file and apply
//!    the live keys, rescan every namespace, `READY=1` when all are done.
//! 6. Shutdown: stop the watcher, `STOPPING=1`, let every actor finish the
//!    pass in progress, return `Ok`.
//!
//! # Guarantees
//! No namespace's failure stops the daemon: actor errors stay in the
//! supervisor. Only the lock and the watcher can fail `run`.

pub mod logging;
pub mod sdnotify;
pub mod signals;

use crate::actor::namespace::{Context, SharedPorts};
use crate::actor::supervisor::Supervisor;
use crate::actor::Intervals;
use crate::config::{Config, Env, ProcessEnv, SettingsArgs};
use crate::store::lock::{ControllerLock, LockError};
use crate::watch::{sleep_until, Trigger, WatchError, WatchEvent, Watcher};
use sdnotify::{Health, Notifier, NotifyError, Readiness};
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// How long shutdown waits for passes in progress before giving up on
/// them (below systemd's `TimeoutStopSec=30s`).
const STOP_GRACE: Duration = Duration::from_secs(20);

/// `skupperd run`: loads the configuration (exit 2 with every problem when
/// it is bad, before any side effect), installs logging and the signal
/// handlers, then runs the daemon until SIGTERM or SIGINT (exit 0). A
/// second SIGTERM or SIGINT exits at once. Lock and watcher failures exit 1.
pub fn command(args: SettingsArgs) -> ExitCode {
    let env: Arc<dyn Env> = Arc::new(ProcessEnv);
    let config = match Config::load(&args, env.as_ref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("skupperd: {e}");
            return ExitCode::from(2);
        }
    };
    let log = logging::init(&config, env.as_ref());
    match log.as_ref().map(|(_, sink)| sink) {
        Some(logging::Sink::Journald) => info!("logging to journald"),
        Some(logging::Sink::Stderr) => info!("logging to stderr"),
        Some(logging::Sink::StderrJournaldUnreachable(why)) => {
            warn!("JOURNAL_STREAM is set but journald cannot be reached ({why}): logging to stderr")
        }
        None => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("skupperd")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("skupperd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let mut signals = match signals::Signals::new() {
            Ok(signals) => signals,
            Err(e) => {
                eprintln!("skupperd: cannot install signal handlers: {e}");
                return Err(ExitCode::from(1));
            }
        };
        let (hangup_tx, hangups) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut stop_tx = Some(stop_tx);
            loop {
                let signal = signals.recv().await;
                if !signal.is_shutdown() {
                    let _ = hangup_tx.send(());
                } else if let Some(tx) = stop_tx.take() {
                    let _ = tx.send(());
                } else {
                    error!("second {}: exiting at once", signal.name());
                    std::process::exit(1);
                }
            }
        });
        let opts = Options {
            args,
            notifier: Notifier::from_env(env.as_ref()),
            env,
            log: log.map(|(handle, _)| handle),
            hangups,
        };
        run(config, opts, async {
            let _ = stop_rx.await;
        })
        .await
        .map_err(|e| {
            eprintln!("skupperd: {e}");
            ExitCode::from(1)
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Why the daemon could not run. Everything else is logged and survived.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another controller holds the data home (or the lock file cannot be
    /// opened). `skupperd run` exits 1.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// inotify could not be started (e.g. the instance limit).
    #[error(transparent)]
    Watch(#[from] WatchError),
}

/// What `run` needs besides the configuration.
pub struct Options {
    /// The settings `config` was loaded from: re-read on SIGHUP.
    pub args: SettingsArgs,
    pub env: Arc<dyn Env>,
    pub notifier: Notifier,
    /// The installed subscriber's filter, swapped on SIGHUP.
    pub log: Option<logging::LogHandle>,
    /// One message per SIGHUP.
    pub hangups: mpsc::UnboundedReceiver<()>,
}

/// Runs the daemon until `shutdown` resolves. See the module documentation.
pub async fn run(
    mut config: Config,
    mut opts: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let lock = ControllerLock::acquire(&config.data_home)?;
    info!(
        "skupperd {} starting; holding {}; {}",
        env!("CARGO_PKG_VERSION"),
        lock.path().display(),
        config.summary_line()
    );
    let notifier = opts.notifier.clone();
    let watchdog_period = notifier.watchdog_period();
    let health = Health::new(watchdog_period.map_or(Duration::MAX, |p| p / 2));

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let watcher = Watcher::start(&config.data_home, events_tx)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let ctx = Context {
        namespaces_dir: config.data_home.join("namespaces"),
        default_platform: config.default_platform,
        hostname: crate::store::fsio::hostname(),
        addresses: crate::store::fsio::host_addresses(),
        renew_before: time::Duration::days(i64::from(config.renew_before_days)),
        runner: crate::actor::router::RunnerChoice::from_config(&config),
        ports: SharedPorts::default(),
        health: health.clone(),
        reports: reports_tx,
        stop: stop_rx,
    };
    let (startup_gate, startup) = sdnotify::readiness();
    let mut sup = Supervisor::new(
        ctx,
        reports_rx,
        Intervals::from_config(&config, watchdog_period),
        startup,
    );
    // The watcher has queued every namespace present before returning.
    while let Ok(event) = events.try_recv() {
        on_event(&mut sup, event);
    }
    sup.end_startup();

    let mut gate: Option<Readiness> = Some(startup_gate);
    let mut started = false;
    let mut status = String::new();
    let watchdog_every = notifier.watchdog_interval();
    let mut next_watchdog = watchdog_every.map(|_| Instant::now());
    let mut unhealthy = false;
    tokio::pin!(shutdown);
    loop {
        let has_tasks = !sup.tasks.is_empty();
        let restart_at = sup.next_restart();
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = events.recv() => on_event(&mut sup, event),
            Some(report) = sup.reports.recv() => {
                sup.report(report);
            }
            Some(joined) = sup.tasks.join_next_with_id(), if has_tasks => sup.exited(joined),
            () = wait_ready(&mut gate), if gate.is_some() => {
                gate = None;
                log_notify(notifier.ready());
                if started {
                    info!("reload done");
                } else {
                    started = true;
                    info!("ready: every namespace has had its first reconcile");
                }
            }
            Some(()) = opts.hangups.recv() => {
                log_notify(notifier.reloading());
                reload(&mut config, &opts, &mut sup, watchdog_period);
                let (reload_gate, done) = sdnotify::readiness();
                sup.dirty_all(Trigger::Sighup, Some(&done));
                drop(done);
                gate = Some(reload_gate);
            }
            () = sleep_until(restart_at) => sup.restart_due(Instant::now()),
            () = sleep_until(next_watchdog) => {
                let now = Instant::now();
                let stale = health.stale(now);
                if stale.is_empty() {
                    log_notify(notifier.watchdog());
                    if unhealthy {
                        info!("every namespace actor is looping again; watchdog resumed");
                    }
                    unhealthy = false;
                } else if !unhealthy {
                    warn!("namespace actors not looping: {}; watchdog withheld", stale.join(", "));
                    unhealthy = true;
                }
                next_watchdog = watchdog_every.map(|every| now + every);
            }
        }
        let line = sup.status_line();
        if line != status {
            log_notify(notifier.status(&line));
            status = line;
        }
    }

    info!("stopping: finishing the writes in progress");
    drop(watcher);
    log_notify(notifier.stopping());
    let _ = stop_tx.send(true);
    if tokio::time::timeout(STOP_GRACE, sup.join_all())
        .await
        .is_err()
    {
        warn!(
            "namespace actors still busy after {} s; exiting anyway",
            STOP_GRACE.as_secs()
        );
    }
    info!("stopped");
    drop(lock);
    Ok(())
}

async fn wait_ready(gate: &mut Option<Readiness>) {
    match gate {
        Some(g) => g.wait().await,
        None => std::future::pending().await,
    }
}

fn on_event(sup: &mut Supervisor, event: WatchEvent) {
    match event {
        WatchEvent::Dirty {
            namespace,
            reason,
            changed,
        } => sup.dirty(&namespace, reason, changed, None),
        WatchEvent::NamespaceAppeared(namespace) => sup.appeared(&namespace),
        WatchEvent::NamespaceGone(namespace) => sup.gone(&namespace),
        WatchEvent::RescanAll => {
            warn!("file events may have been lost: rescanning every namespace");
            sup.dirty_all(Trigger::Input, None);
        }
    }
}

/// SIGHUP: re-reads the configuration and applies the keys that can change
/// live; the others keep their values and are logged as needing a restart.
fn reload(
    config: &mut Config,
    opts: &Options,
    sup: &mut Supervisor,
    watchdog_period: Option<Duration>,
) {
    let new = match Config::load(&opts.args, opts.env.as_ref()) {
        Ok(new) => new,
        Err(e) => {
            error!("configuration not reloaded, the previous one stays: {e}");
            return;
        }
    };
    let diff = config.reload_diff(&new);
    if diff.live.is_empty() && diff.restart.is_empty() {
        info!("configuration re-read: nothing changed");
    }
    for change in &diff.live {
        info!("configuration: {change}");
    }
    for change in &diff.restart {
        warn!("configuration: {change} needs a restart of skupperd to take effect");
    }
    config.log_level = new.log_level;
    config.router_poll_interval = new.router_poll_interval;
    config.quiet_window = new.quiet_window;
    config.max_delay = new.max_delay;
    config.resync_interval = new.resync_interval;
    config.site_grace_period = new.site_grace_period;
    if let Some(log) = &opts.log {
        if let Err(e) = log.set_filter(&config.log_filter(opts.env.as_ref())) {
            warn!("log filter not changed: {e}");
        }
    }
    sup.set_intervals(Intervals::from_config(config, watchdog_period));
}

fn log_notify(result: Result<(), NotifyError>) {
    if let Err(e) = result {
        warn!("{e}");
    }
}

#[cfg(test)]
mod tests;
