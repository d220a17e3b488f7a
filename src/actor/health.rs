//! What the daemon's systemd notifications are decided from: readiness
//! latches held by the namespace actors until their first reconcile is
//! done, and the [`Health`] tracker the actors beat so the watchdog knows
//! they still run. Plain synchronisation, no I/O: the daemon's `sdnotify`
//! sends the messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Creates a readiness gate and its first latch. Clone the latch for each
/// thing that must finish first (each namespace's first reconcile), then
/// drop the original once all clones are handed out.
pub fn readiness() -> (Readiness, Latch) {
    let (tx, rx) = mpsc::channel(1);
    (Readiness { rx: Some(rx) }, Latch { _tx: tx })
}

/// Held by something the daemon waits for; dropping (or [`Latch::release`])
/// releases it. Nothing is ever sent through it.
#[derive(Debug, Clone)]
pub struct Latch {
    _tx: mpsc::Sender<()>,
}

impl Latch {
    /// Releases this latch (same as dropping it; reads better at call sites).
    pub fn release(self) {}
}

/// Resolves once every [`Latch`] is gone, and stays ready: it never
/// becomes unready again (a SIGHUP round uses a new gate).
#[derive(Debug)]
pub struct Readiness {
    rx: Option<mpsc::Receiver<()>>,
}

impl Readiness {
    /// Waits until every latch is released.
    pub async fn wait(&mut self) {
        if let Some(rx) = &mut self.rx {
            // Latches never send, so this only ends when all are dropped.
            while rx.recv().await.is_some() {}
            self.rx = None;
        }
    }

    /// Whether every latch is released, without waiting.
    pub fn is_ready(&self) -> bool {
        self.rx.as_ref().is_none_or(mpsc::Receiver::is_closed)
    }
}

/// Liveness of the namespace actors, for the watchdog: healthy when every
/// registered actor completed a loop iteration within `window` (half the
/// watchdog period). An idle actor must still wake and beat that often.
///
/// Shared by the actors and the watchdog task. A std `Mutex` is enough:
/// nothing awaits while holding it and each call is a map operation.
#[derive(Debug, Clone)]
pub struct Health {
    window: Duration,
    beats: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Health {
    /// Tracks actors with the given freshness window.
    pub fn new(window: Duration) -> Health {
        Health {
            window,
            beats: Arc::default(),
        }
    }

    /// Starts tracking an actor; registering counts as a beat.
    pub fn register(&self, namespace: &str, now: Instant) {
        self.beat(namespace, now);
    }

    /// Stops tracking an actor (its namespace is gone).
    pub fn unregister(&self, namespace: &str) {
        self.lock().remove(namespace);
    }

    /// The actor completed a loop iteration at `now`.
    pub fn beat(&self, namespace: &str, now: Instant) {
        self.lock().insert(namespace.to_string(), now);
    }

    /// Actors whose last beat is older than the window, sorted.
    pub fn stale(&self, now: Instant) -> Vec<String> {
        let mut stale: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, last)| now.saturating_duration_since(**last) > self.window)
            .map(|(ns, _)| ns.clone())
            .collect();
        stale.sort();
        stale
    }

    /// Whether every registered actor beat within the window.
    pub fn healthy(&self, now: Instant) -> bool {
        self.stale(now).is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panicking actor cannot leave the map half-updated (single
        // insert/remove), so a poisoned lock is still consistent.
        self.beats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
