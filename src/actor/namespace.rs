//! The namespace actor: the single writer of one namespace directory.
//!
//! It owns the per-file input cache, the bytes of the runtime files
//! skupperd owns (read once, then kept in step with every applied
//! outcome; resource records by path only, see `plan::hollow_records`),
//! the reconcile memo, the prior state (read once, then updated by each outcome's
//! `prior` changes) and a [`Coalescer`]. Events only mark it dirty (with the
//! input files they named); a pass reads the current input
//! (level-triggered: the named files again, or the whole tree whenever
//! the names may be incomplete, see [`FileCache`]) and applies the outcome
//! atomically.
//!
//! # Expected flow
//! 1. First pass at once (trigger `startup`), then wait.
//! 2. On a message or tick: mark the coalescer (quiet window, bounded by
//!    the maximum delay); a periodic resync marks it too.
//! 3. When the coalescer's deadline passes: scan (cache), reconcile, write.
//!    The pass runs on the blocking pool, so a slow file system never
//!    stalls other namespaces' timers.
//! 4. After each loop iteration, beat the [`Health`] tracker; an idle actor
//!    still wakes on the heartbeat tick to do so.
//!
//! # Guarantees
//! - Stop requests are only honoured between passes: a pass that started
//!   finishes its writes.
//! - A pass that would deactivate a site that was active is held back until
//!   no Site has been seen for the grace period, then run again and applied
//!   only if the Site is still missing; an editor's save (truncate, then
//!   write) never clears the site.
//! - A deleted namespace directory is never written to (and never
//!   re-created by a late write).
//! - A part of the namespace that exists but cannot be listed (permission
//!   denied, EIO, a file where `input/resources/` or a directory of
//!   `runtime/` should be) skips the pass: nothing is written or removed,
//!   the failure is logged once at ERROR, and the next change or resync
//!   tries again. A directory that does not exist is simply empty. What
//!   cannot be read below that (one input file, anything under
//!   `input/certs/`) never skips a pass: it is a problem of the resources
//!   that need it, reported in `runtime/status.yaml` like any other.
//!
//! - Outputs that cannot be written (file system full, out of inodes,
//!   read-only, permissions) change nothing: the previous files stay and
//!   keep serving (no torn file, no temporary left), the router is left
//!   as it is, the failure is logged at ERROR once and is an error in
//!   `runtime/status.yaml` as soon as that can be written; the actor
//!   retries by itself (1 s, doubling up to 30 s, re-reading the runtime
//!   files) without waiting for an event, and the status then tells the
//!   failure as past (a warning with its start and end).
//!
//! # Errors
//! A panic inside a pass ends the actor with an [`ActorError`]; the
//! supervisor logs it and starts a fresh actor (which re-reads the
//! runtime files) after a backoff.

use super::cache::{FileCache, ScanStats};
use super::health::{Health, Latch};
use super::{ActorMsg, Intervals, NsSummary, Report};
use crate::certs::RcgenMint;
use crate::plan::{
    self, Inputs, Outcome, Platform, PortPicker, Prior, ResourceSummary, RouterState,
};
use crate::problem::{escape_controls, Problem};
use crate::status::Phase;
use crate::store::fsio::{self, ScanError, StoreError};
use crate::store::ports::DataHomePorts;
use crate::validate::InputCerts;
use crate::watch::{sleep_until, Changed, Coalescer, Trigger};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, info_span, warn, Instrument as _, Span};

/// Why an actor ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    /// Writing the outputs failed (disk full, permissions, a file where a
    /// directory should be...). Expected to be transient or fixed by hand.
    #[error("cannot write the outputs: {0}")]
    Store(#[from] StoreError),
    /// A pass panicked: a bug, reported with the panic message.
    #[error("a reconcile pass panicked: {0}")]
    Panic(String),
}

/// How an actor ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The daemon is shutting down (or the supervisor went away).
    Stopped,
    /// The namespace directory was deleted.
    Gone,
}

/// What every actor of a daemon shares: fixed for the daemon's life.
#[derive(Debug, Clone)]
pub struct Context {
    /// `<data home>/namespaces`.
    pub namespaces_dir: PathBuf,
    pub default_platform: Platform,
    pub hostname: String,
    /// The host's non-loopback addresses (link-access SANs).
    pub addresses: Vec<String>,
    /// The renewal window (`renew_before_days`).
    pub renew_before: time::Duration,
    /// How routers are started.
    pub runner: super::router::RunnerChoice,
    pub ports: SharedPorts,
    pub health: Health,
    pub reports: mpsc::UnboundedSender<Report>,
    /// Becomes `true` when the daemon stops.
    pub stop: watch::Receiver<bool>,
}

/// The management port allocator shared by the actors of one daemon: two
/// namespaces making their identity at the same moment must not pick the
/// same port before either has written it down.
#[derive(Debug, Clone, Default)]
pub struct SharedPorts {
    claimed: Arc<Mutex<BTreeSet<u16>>>,
}

struct NsPorts<'a> {
    inner: DataHomePorts,
    claimed: &'a Mutex<BTreeSet<u16>>,
}

impl PortPicker for NsPorts<'_> {
    fn pick(&mut self, from: u16, avoid: &BTreeSet<u16>) -> Option<u16> {
        // Held across the probe so two picks never interleave; nothing
        // awaits under it (this runs on the blocking pool).
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        let avoid: BTreeSet<u16> = avoid.union(&claimed).copied().collect();
        let port = self.inner.pick(from, &avoid)?;
        claimed.insert(port);
        Some(port)
    }
}

/// What a pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PassResult {
    Applied,
    /// Planned and taken in; its files are still to be written (see
    /// [`Deferred`]).
    Planned,
    /// Held back by the Site grace period: run again at `until`.
    Held {
        until: Instant,
    },
    /// The directory is gone; nothing was written.
    Skipped,
    /// Part of the namespace could not be read; nothing was written.
    InputUnknown,
    /// The outputs could not be written (file system full, out of inodes,
    /// read-only...): the previous files stay; retried after a backoff.
    WriteFailed(String),
}

/// A write of `runtime/` that failed, until a pass writes again.
#[derive(Debug, Clone)]
struct WriteFailure {
    message: String,
    since: String,
    attempts: u32,
}

/// The wait before retrying a failed write: 1 s, doubling, at most 30 s.
fn write_retry_delay(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// Everything one namespace owns between passes.
struct State {
    name: String,
    ns_dir: PathBuf,
    ns_path: String,
    ctx: Context,
    loaded: bool,
    cache: FileCache,
    /// What the last pass derived, reused for what did not change.
    memo: plan::Memo,
    runtime: BTreeMap<String, Vec<u8>>,
    prior: Prior,
    site_active: bool,
    /// First pass that found no active Site while one was active.
    site_missing_since: Option<Instant>,
    /// The last pass's statuses, sorted by kind and name.
    statuses: Vec<std::sync::Arc<ResourceSummary>>,
    problems: HashSet<Problem>,
    summary: NsSummary,
    passes: u64,
    /// What the router reported, as the next pass will see it.
    router: RouterState,
    /// The last read failure, logged once until it changes or clears.
    scan_failure: Option<String>,
    /// The platform the last pass read, for the router side.
    platform: Option<Platform>,
    /// The outputs could not be written: logged once, in status.yaml as
    /// soon as it can be written, retried by the actor.
    write_failure: Option<WriteFailure>,
    /// The last write failure that was overcome, for status.yaml.
    write_recovered: Option<Problem>,
    /// Which expiring user certificates were logged when.
    expiry_log: super::expiry::ExpiryLog,
}

/// Runs the actor of namespace `name` until it is stopped, its directory
/// is gone, or it fails.
pub async fn run(
    name: String,
    intervals: Intervals,
    inbox: mpsc::UnboundedReceiver<ActorMsg>,
    ctx: Context,
) -> Result<Exit, ActorError> {
    let span = info_span!("namespace", namespace = %name);
    Actor::new(name, intervals, inbox, ctx)
        .run()
        .instrument(span)
        .await
}

struct Actor {
    name: String,
    intervals: Intervals,
    inbox: mpsc::UnboundedReceiver<ActorMsg>,
    health: Health,
    reports: mpsc::UnboundedSender<Report>,
    stop: watch::Receiver<bool>,
    /// `None` only while a pass runs on the blocking pool (or after it
    /// panicked).
    state: Option<State>,
    coalescer: Coalescer,
    /// Latches of `Dirty` messages received since the last pass began.
    waiting: Vec<Latch>,
    /// The re-run that the Site grace period asked for.
    held: Option<(Instant, Trigger)>,
    next_resync: Instant,
    next_beat: Option<Instant>,
    router: super::router::RouterSide,
    /// When to poll the router next; `None` while nothing is expected to
    /// answer (no polling faster than the resync then).
    next_poll: Option<Instant>,
    /// When to retry a write that failed, without waiting for an event.
    next_write_retry: Option<Instant>,
    /// Since when a poll has been owed (see `schedule_poll`).
    poll_owed_since: Option<Instant>,
}

/// How soon after a change the poll that confirms it comes: the router
/// opens a created listener within milliseconds.
const FOLLOW_UP_POLL: Duration = Duration::from_millis(100);
const MIN_POLL_GAP: Duration = Duration::from_millis(10);

/// The coalescer's maximum delay: the configured one less a margin for
/// what happens outside it (the event's way from inotify to the actor, the
/// timer firing late by up to a millisecond), so a pass starts within the
/// configured maximum of the file event, never after it.
fn coalescer_max(intervals: &Intervals) -> Duration {
    let margin = (intervals.max_delay / 20).min(Duration::from_millis(10));
    intervals
        .max_delay
        .saturating_sub(margin)
        .max(intervals.quiet_window)
}

fn now() -> Instant {
    // The tokio clock, so paused-time tests drive it.
    tokio::time::Instant::now().into_std()
}

fn after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d).unwrap_or(at)
}

// === impl Actor ===

impl Actor {
    fn new(
        name: String,
        intervals: Intervals,
        inbox: mpsc::UnboundedReceiver<ActorMsg>,
        ctx: Context,
    ) -> Actor {
        let t = now();
        let ns_dir = ctx.namespaces_dir.join(&name);
        let router = super::router::RouterSide::new(ctx.runner.clone());
        Actor {
            router,
            next_poll: None,
            next_write_retry: None,
            poll_owed_since: None,
            intervals,
            inbox,
            health: ctx.health.clone(),
            reports: ctx.reports.clone(),
            stop: ctx.stop.clone(),
            state: Some(State {
                name: name.clone(),
                ns_path: ns_dir.to_string_lossy().into_owned(),
                ns_dir,
                ctx,
                loaded: false,
                cache: FileCache::new(),
                memo: plan::Memo::new(),
                runtime: BTreeMap::new(),
                prior: Prior::default(),
                site_active: false,
                site_missing_since: None,
                statuses: Vec::new(),
                problems: HashSet::new(),
                summary: NsSummary::default(),
                passes: 0,
                router: RouterState::default(),
                scan_failure: None,
                platform: None,
                write_failure: None,
                write_recovered: None,
                expiry_log: super::expiry::ExpiryLog::new(),
            }),
            name,
            coalescer: Coalescer::new(intervals.quiet_window, coalescer_max(&intervals)),
            waiting: Vec::new(),
            held: None,
            next_resync: after(t, intervals.resync),
            next_beat: intervals.heartbeat.map(|h| after(t, h)),
        }
    }

    async fn run(mut self) -> Result<Exit, ActorError> {
        let mut result = self.run_loop().await;
        // A pass that failed because the namespace directory was deleted
        // under it is the end of the namespace, not a failure to retry.
        let dir_gone = self.state.as_ref().is_some_and(|s| !s.ns_dir.is_dir());
        if result.is_err() && dir_gone {
            info!("namespace directory deleted: stopping its actor");
            result = Ok(Exit::Gone);
        }
        // Routers of the process runner are children: they stop with the
        // actor (platform.md 1.2). A deleted namespace's router is removed
        // whatever its runner (platform.md 4).
        if matches!(result, Ok(Exit::Gone)) {
            self.router.remove().await;
        } else {
            self.router.stop().await;
        }
        result
    }

    async fn run_loop(&mut self) -> Result<Exit, ActorError> {
        self.health.register(&self.name, Instant::now());
        let mut run_now = Some((Trigger::Startup, Changed::Everything));
        loop {
            if let Some((trigger, changed)) = run_now.take() {
                self.pass(trigger, changed).await?;
            }
            if *self.stop.borrow() {
                return Ok(Exit::Stopped);
            }
            let held_at = self.held.map(|(at, _)| at);
            // Deadlines before messages: a steady stream of events must not
            // starve the coalescer's deadline (the maximum delay).
            tokio::select! {
                biased;
                _ = self.stop.changed() => return Ok(Exit::Stopped),
                _ = sleep_until(self.coalescer.deadline()) => run_now = self.coalescer.take(now()),
                // The held pass read everything changed before it.
                _ = sleep_until(held_at) => run_now = self.held.take().map(|(_, t)| (t, Changed::none())),
                _ = sleep_until(Some(self.next_resync)) => {
                    self.coalescer.mark(now(), Trigger::Resync, Changed::Everything);
                    self.next_resync = after(now(), self.intervals.resync);
                }
                _ = sleep_until(self.next_poll) => {
                    // A poll gives way to a pending pass or an event that
                    // arrived (at a thousand listeners it takes longer than
                    // applying a change), unless it has been owed for a
                    // whole poll interval: statuses move on even while
                    // changes keep coming.
                    let overdue = self
                        .poll_owed_since
                        .is_some_and(|since| now() >= after(since, self.intervals.router_poll));
                    let (inbox, coalescer) = (&self.inbox, &self.coalescer);
                    let waiting = || !overdue && (!inbox.is_empty() || coalescer.is_pending());
                    if self.router.poll(&waiting).await {
                        self.coalescer.mark(now(), Trigger::Router, Changed::none());
                    }
                    self.schedule_poll();
                }
                _ = sleep_until(self.next_write_retry) => {
                    self.next_write_retry = None;
                    // Everything again: a failed publish may have left
                    // part of the outputs on disk.
                    run_now = Some((Trigger::Resync, Changed::Everything));
                }
                _ = sleep_until(self.next_beat) => {
                    self.next_beat = self.intervals.heartbeat.map(|h| after(now(), h));
                }
                msg = self.inbox.recv() => match msg {
                    None => return Ok(Exit::Stopped),
                    Some(ActorMsg::Gone) => return Ok(Exit::Gone),
                    Some(ActorMsg::Dirty { trigger, changed, done }) => {
                        self.coalescer.mark(now(), trigger, changed);
                        self.waiting.extend(done);
                    }
                    Some(ActorMsg::Intervals(new)) => self.set_intervals(new),
                },
            }
            self.health.beat(&self.name, Instant::now());
        }
    }

    fn schedule_poll(&mut self) {
        // A poll owed after a change (or one that gave way) comes soon,
        // but no later than the poll interval after it became owed, even
        // while changes keep coming.
        let owed = self.router.poll_owed();
        if !owed {
            self.poll_owed_since = None;
        }
        // A router that is expected but not connected yet is retried soon
        // (the session's own backoff spaces the attempts).
        let every = if owed {
            let since = *self.poll_owed_since.get_or_insert_with(now);
            let latest = after(since, self.intervals.router_poll);
            // Never at once: a poll that gave way must let the actor take
            // in what it gave way to first.
            latest
                .saturating_duration_since(now())
                .clamp(MIN_POLL_GAP, FOLLOW_UP_POLL)
        } else if self.router.connected() || self.router.watches_failed() {
            self.intervals.router_poll
        } else {
            self.intervals.router_poll.min(Duration::from_millis(250))
        };
        // Otherwise only a sync the backoff put off is owed (once): a router
        // started by hand is found at the next pass or resync.
        self.next_poll = if self.router.polls() {
            Some(after(now(), every))
        } else {
            self.router.deferred()
        };
    }

    fn set_intervals(&mut self, new: Intervals) {
        let t = now();
        self.coalescer
            .set_intervals(new.quiet_window, coalescer_max(&new));
        if new.resync != self.intervals.resync {
            self.next_resync = after(t, new.resync);
        }
        if new.heartbeat != self.intervals.heartbeat {
            self.next_beat = new.heartbeat.map(|h| after(t, h));
        }
        self.intervals = new;
    }

    /// One pass on the blocking pool; releases the latches that were
    /// waiting for it and reports to the supervisor.
    async fn pass(&mut self, trigger: Trigger, changed: Changed) -> Result<(), ActorError> {
        let latches = std::mem::take(&mut self.waiting);
        let Some(mut state) = self.state.take() else {
            return Err(ActorError::Panic("the namespace state was lost".into()));
        };
        // Kept by the cache until a scan succeeds, so a skipped or failed
        // pass loses none of them.
        state.cache.note(changed);
        let grace = self.intervals.site_grace;
        self.router.forget_exited_router();
        state.router = self.router.state.clone();
        // A pass the router caused does not drive the router again: that
        // would loop. Every other applied pass brings the router in line,
        // and so does one that moved the management port (the router must
        // be restarted on the new one).
        let drives_router = trigger != Trigger::Router || self.router.awaits_pass();
        let may_defer = drives_router && self.router.syncs_live();
        let span = Span::current();
        let joined = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let result = state.pass(trigger, grace, may_defer);
            (state, result)
        })
        .await;
        let (mut state, result) = match joined {
            Ok(done) => done,
            Err(e) => return Err(ActorError::Panic(panic_message(e))),
        };
        let (result, writing) = match result {
            Ok((r, deferred)) => (Ok(r), deferred.map(Deferred::start)),
            Err(e) => (Err(e), None),
        };
        let summary = state.summary;
        let applied = matches!(result, Ok(PassResult::Applied | PassResult::Planned));
        let mut files = super::router::Files::new(writing);
        if applied && drives_router {
            let facts = super::router::Facts {
                namespace: &state.name,
                ns_dir: &state.ns_dir,
                platform: state.platform,
                site_active: state.site_active,
                identity: state.prior.identity.as_ref(),
                runtime: &state.runtime,
            };
            if self.router.after_pass(&facts, &mut files).await {
                self.coalescer.mark(now(), Trigger::Router, Changed::none());
            }
            self.schedule_poll();
        }
        let written = match files.written().await {
            Ok(written) => written,
            Err(e) => return Err(ActorError::Panic(panic_message(e))),
        };
        let mut result = result;
        if let Err(e) = written {
            if !state.ns_dir.is_dir() {
                self.state = Some(state);
                debug!("the namespace directory went away during the pass: {e}");
                return Ok(());
            }
            // The router may already have what the files could not keep;
            // what was taken in is not what the disk has, so the retry
            // reads the runtime files again.
            state.loaded = false;
            result = Ok(PassResult::WriteFailed(
                escape_controls(&e.to_string()).into_owned(),
            ));
        }
        self.state = Some(state);
        match result? {
            PassResult::Held { until } => self.held = Some((until, trigger)),
            PassResult::Applied | PassResult::Planned => {
                self.held = None;
                self.next_write_retry = None;
                if self.state.as_mut().is_some_and(State::write_recovered) {
                    // Once more, so status.yaml tells the failure as past.
                    self.coalescer.mark(now(), Trigger::Resync, Changed::none());
                }
            }
            PassResult::Skipped => self.held = None,
            // Retried on the next event or resync; a grace re-run that is
            // still pending stays, as one more retry.
            PassResult::InputUnknown => {}
            PassResult::WriteFailed(message) => {
                if let Some(state) = self.state.as_mut() {
                    let delay = state.write_failed(message);
                    self.next_write_retry = Some(after(now(), delay));
                }
            }
        }
        drop(latches);
        // The supervisor only goes away when the daemon stops.
        let _ = self.reports.send(Report {
            namespace: self.name.clone(),
            summary,
        });
        Ok(())
    }
}

/// The files of a pass whose router sync runs while they are written.
/// The router reads TLS files itself (an sslProfile CREATE or a higher
/// ordinal), so a pass that writes any is never deferred; the runner's
/// starts and restarts read `skrouterd.json` and wait for [`Files`].
struct Deferred {
    ns_dir: PathBuf,
    /// Only the writes and deletes.
    files: Outcome,
}

impl Deferred {
    fn start(self) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let span = Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            fsio::apply(&self.ns_dir, &self.files)
        })
    }
}

/// Whether an outcome writes or removes a file the router reads while it
/// runs: the TLS files its sslProfiles name.
fn writes_router_reads(outcome: &Outcome) -> bool {
    let read_live =
        |rel: &str| rel.starts_with("runtime/certs/") || rel.starts_with("runtime/issuers/");
    outcome.writes.keys().any(|rel| read_live(rel))
        || outcome.deletes.iter().any(|rel| read_live(rel))
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string()),
        Err(e) => e.to_string(),
    }
}

// === impl State ===

impl State {
    /// Reads, plans and writes; with `may_defer`, a pass that writes
    /// nothing the router reads by itself (TLS files) leaves its writing
    /// to the caller, so the router is synced while the files go to disk.
    fn pass(
        &mut self,
        trigger: Trigger,
        grace: Duration,
        may_defer: bool,
    ) -> Result<(PassResult, Option<Deferred>), ActorError> {
        let started = Instant::now();
        if !self.ns_dir.is_dir() {
            debug!("the namespace directory is gone; pass skipped");
            return Ok((PassResult::Skipped, None));
        }
        let (stats, certs, issuers) = match self.read(trigger) {
            Ok(read) => read,
            Err(e) => {
                self.scan_failed(&e);
                return Ok((PassResult::InputUnknown, None));
            }
        };
        if self.scan_failure.take().is_some() {
            info!("the namespace can be read again");
        }
        let read_ms = started.elapsed().as_millis();
        let notices = self.write_notices();
        let platform = fsio::read_platform(&self.ns_dir, self.ctx.default_platform);
        // While the file is invalid the router stays where it runs
        // (`Inputs::platform_in_use`).
        self.platform = platform.as_ref().ok().copied().or(self.prior.platform);
        let wall_now = time::OffsetDateTime::now_utc();
        let inputs = Inputs {
            namespace: &self.name,
            namespace_path: &self.ns_path,
            platform,
            hostname: &self.ctx.hostname,
            addresses: &self.ctx.addresses,
            version: env!("CARGO_PKG_VERSION"),
            now: wall_now,
            files: self.cache.files(),
            certs: &certs,
            issuers: &issuers,
            renew_before: self.ctx.renew_before,
            runtime: &self.runtime,
            prior: &self.prior,
            router: self.router.clone(),
            trigger: trigger.as_str(),
            notices: &notices,
        };
        let mut ports = NsPorts {
            inner: DataHomePorts {
                namespaces_dir: self.ctx.namespaces_dir.clone(),
                namespace: self.name.clone(),
            },
            claimed: &self.ctx.ports.claimed,
        };
        let outcome = plan::reconcile_with(&inputs, &mut self.memo, &mut RcgenMint, &mut ports);

        let t = Instant::now();
        let plan_ms = (t - started).as_millis() - read_ms;
        if self.site_active && !outcome.site_active {
            let since = *self.site_missing_since.get_or_insert_with(|| {
                info!(
                    "no active Site: runtime/ is cleared in {} ms unless one appears",
                    grace.as_millis()
                );
                t
            });
            let until = after(since, grace);
            if t < until {
                return Ok((PassResult::Held { until }, None));
            }
            info!(
                "no active Site for {} ms: clearing what runtime/ derived from resources",
                grace.as_millis()
            );
        }
        self.site_missing_since = None;
        if !self.ns_dir.is_dir() {
            return Ok((PassResult::Skipped, None));
        }
        let deferred = (may_defer && !writes_router_reads(&outcome)).then(|| Deferred {
            ns_dir: self.ns_dir.clone(),
            files: Outcome {
                writes: outcome.writes.clone(),
                deletes: outcome.deletes.clone(),
                ..Outcome::default()
            },
        });
        if deferred.is_none() {
            if let Err(e) = fsio::apply(&self.ns_dir, &outcome) {
                if !self.ns_dir.is_dir() {
                    debug!("the namespace directory went away during the pass: {e}");
                    return Ok((PassResult::Skipped, None));
                }
                // The runtime files are read again before the next pass: a
                // publish that failed half way left some of the new files.
                self.loaded = false;
                return Ok((
                    PassResult::WriteFailed(escape_controls(&e.to_string()).into_owned()),
                    None,
                ));
            }
        }
        let apply_ms = t.elapsed().as_millis();
        let (written, removed) = (outcome.writes.len(), outcome.deletes.len());
        self.absorb(outcome, wall_now);
        self.passes += 1;
        let elapsed_ms = started.elapsed().as_millis();
        let message = format!(
            "reconcile pass {}: trigger {trigger}, {} of {} input files parsed, {written} written, {removed} removed",
            self.passes, stats.parsed, stats.files
        );
        let deferred_write = deferred.is_some();
        if written + removed > 0 {
            info!(
                elapsed_ms,
                read_ms, plan_ms, apply_ms, deferred_write, "{message}"
            );
        } else {
            debug!(
                elapsed_ms,
                read_ms, plan_ms, apply_ms, deferred_write, "{message}"
            );
        }
        match deferred {
            Some(d) => Ok((PassResult::Planned, Some(d))),
            None => Ok((PassResult::Applied, None)),
        }
    }

    /// The runtime files (when they are due) and the input, or the first
    /// part that could not be read.
    fn read(&mut self, trigger: Trigger) -> Result<(ScanStats, InputCerts, InputCerts), ScanError> {
        if !self.loaded {
            // A writer killed mid-apply leaves its temporaries behind.
            match fsio::remove_temporaries(&self.ns_dir) {
                Ok(removed) if !removed.is_empty() => info!(
                    "removed {} temporary file(s) an unfinished write left in runtime/",
                    removed.len()
                ),
                Ok(_) => {}
                Err(e) => warn!("cannot remove the temporaries an unfinished write left: {e}"),
            }
            // Records are listed, then read, parsed and dropped one by one.
            self.runtime = fsio::read_runtime_hollow(&self.ns_dir)?;
            let ns_dir = &self.ns_dir;
            self.prior = plan::prior::read_prior_with(&self.runtime, |rel| {
                fsio::read_runtime_file(ns_dir, rel)
            })?;
            self.site_active = self.runtime.contains_key(plan::prior::CONFIG_FILE);
            self.loaded = true;
        } else if trigger == Trigger::Resync {
            // The safety net also covers runtime files someone else
            // removed or changed: they are compared against the disk again.
            self.runtime = fsio::read_runtime_hollow(&self.ns_dir)?;
        }
        if matches!(
            trigger,
            Trigger::Startup | Trigger::Sighup | Trigger::Resync
        ) {
            // These promise a full look whatever the events said.
            self.cache.note(Changed::Everything);
        }
        let stats = self.cache.scan(&self.ns_dir)?;
        // Never a reason to skip the pass: what cannot be read there is
        // an error of the resources that need it (and a warning if none).
        let certs = fsio::read_bundles(&self.ns_dir);
        let issuers = fsio::read_issuers(&self.ns_dir);
        Ok((stats, certs, issuers))
    }

    /// A failed write: logged at ERROR once per distinct failure, the
    /// delay before the retry returned.
    fn write_failed(&mut self, message: String) -> Duration {
        let attempts = match &mut self.write_failure {
            Some(f) if f.message == message => {
                f.attempts += 1;
                debug!(
                    attempts = f.attempts,
                    "runtime/ still cannot be written: {message}"
                );
                f.attempts
            }
            _ => {
                let since = crate::render::timestamp(time::OffsetDateTime::now_utc());
                self.write_failure = Some(WriteFailure {
                    message: message.clone(),
                    since,
                    attempts: 1,
                });
                1
            }
        };
        let delay = write_retry_delay(attempts);
        if attempts == 1 {
            error!(
                "cannot write the outputs: {message}; the outputs of the last successful pass are kept and still serve; retried in {} ms and then with backoff",
                delay.as_millis()
            );
        }
        delay
    }

    /// After an applied pass: whether it ended a write failure (logged
    /// then, and kept for status.yaml).
    fn write_recovered(&mut self) -> bool {
        let Some(f) = self.write_failure.take() else {
            return false;
        };
        let until = crate::render::timestamp(time::OffsetDateTime::now_utc());
        info!(
            "runtime/ is written again after {} failed attempt(s) since {}: {}",
            f.attempts, f.since, f.message
        );
        self.write_recovered = Some(Problem::warning(format!(
            "runtime/ could not be written from {} to {until} ({} attempts): {}; the outputs of the last successful pass were kept meanwhile",
            f.since, f.attempts, f.message
        )));
        true
    }

    /// The write failure (current or overcome) as status.yaml shows it.
    fn write_notices(&self) -> Vec<Problem> {
        match (&self.write_failure, &self.write_recovered) {
            (Some(f), _) => vec![Problem::error(format!(
                "runtime/ cannot be written since {} ({} attempts): {}; the outputs of the last successful pass are kept and still serve",
                f.since, f.attempts, f.message
            ))],
            (None, Some(p)) => vec![p.clone()],
            (None, None) => Vec::new(),
        }
    }

    /// Unreadable is not empty: reconciling now would delete what the
    /// unreadable part stands for (and, after the grace period, the Site).
    /// Logged at ERROR once per distinct failure.
    fn scan_failed(&mut self, e: &ScanError) {
        // The path is the input's: any byte but `/` and NUL.
        let message = escape_controls(&e.to_string()).into_owned();
        if self.scan_failure.as_deref() == Some(message.as_str()) {
            debug!("{message}; still nothing changed");
            return;
        }
        error!(
            path = %escape_controls(&e.path.to_string_lossy()),
            error = %e.source,
            "{message}; nothing is changed until it can be read (retried on the next change or resync)"
        );
        self.scan_failure = Some(message);
    }

    /// Takes an applied outcome in: runtime bytes, prior state, statuses.
    fn absorb(&mut self, mut outcome: Outcome, now: time::OffsetDateTime) {
        let first = self.passes == 0;
        self.log_changes(&mut outcome, first, now);
        let Outcome {
            writes,
            deletes,
            prior,
            site_active,
            ..
        } = outcome;
        for rel in deletes {
            self.runtime.remove(&rel);
        }
        for (rel, file) in writes {
            // Record bytes are not kept (see `plan::hollow_records`).
            let bytes = if rel.starts_with(plan::prior::RESOURCES_DIR) {
                Vec::new()
            } else {
                file.into_content()
            };
            self.runtime.insert(rel, bytes);
        }
        prior.apply(&mut self.prior);
        self.site_active = site_active;
    }

    /// Status changes once at INFO, new input problems once at WARN,
    /// user certificates close to their end once a day each.
    fn log_changes(&mut self, outcome: &mut Outcome, first: bool, now: time::OffsetDateTime) {
        let resources = std::mem::take(&mut outcome.resources);
        let mut summary = NsSummary::default();
        for r in &resources {
            match r.status {
                Phase::Ready => summary.ready += 1,
                Phase::Pending => summary.pending += 1,
                Phase::Error => summary.error += 1,
            }
        }
        if first {
            info!(
                "{} resources: {} Ready, {} Pending, {} Error",
                resources.len(),
                summary.ready,
                summary.pending,
                summary.error
            );
        } else {
            // Both lists are sorted by kind and name: walked side by side.
            let removed = |o: &std::sync::Arc<ResourceSummary>| {
                info!(
                    kind = o.kind.as_str(),
                    name = %o.name,
                    "{} {}: {} -> (removed)",
                    o.kind.lower(),
                    o.name,
                    o.status.as_str()
                )
            };
            let mut old = self.statuses.iter().peekable();
            for r in &resources {
                while let Some(o) = old.next_if(|o| (o.kind, &o.name) < (r.kind, &r.name)) {
                    removed(o);
                }
                let prev = old.next_if(|o| o.kind == r.kind && o.name == r.name);
                if prev.is_some_and(|p| p.status == r.status && p.message == r.message) {
                    continue;
                }
                let was = prev.map_or("(new)", |p| p.status.as_str());
                // Names are RFC 1123 labels; messages were escaped
                // when made, and are again here in case one was not.
                info!(
                    kind = r.kind.as_str(),
                    name = %r.name,
                    "{} {}: {was} -> {}: {}",
                    r.kind.lower(),
                    r.name,
                    r.status.as_str(),
                    escape_controls(&r.message)
                );
            }
            old.for_each(removed);
        }
        for e in self.expiry_log.due(&outcome.expiring, now) {
            warn!(
                file = %e.file,
                "warning: {}; replace it before then (repeated once a day)",
                e.message
            );
        }
        // The problems that carry those warnings (one per resource using
        // the certificate) are left to the once-a-day line.
        let about_expiry = |p: &Problem| {
            !p.is_error()
                && outcome
                    .expiring
                    .iter()
                    .any(|e| p.message.ends_with(&e.message))
        };
        for p in &outcome.problems {
            if p.is_error() {
                summary.errors += 1;
            } else {
                summary.warnings += 1;
            }
            if self.problems.contains(p) || about_expiry(p) {
                continue;
            }
            let severity = if p.is_error() { "error" } else { "warning" };
            let place = p.place().map(|s| format!("{s}: ")).unwrap_or_default();
            // Kind and name may be any text of an unknown kind's
            // document, the file any name a directory can hold.
            let field =
                |v: &Option<String>| escape_controls(v.as_deref().unwrap_or("")).into_owned();
            warn!(
                kind = field(&p.kind),
                name = field(&p.name),
                file = field(&p.file),
                "{place}{severity}: {}",
                p.message
            );
        }
        self.problems = outcome.problems.iter().cloned().collect();
        self.statuses = resources;
        self.summary = summary;
    }
}
