//! The signals skupperd acts on, as one stream (linkerd's `signal`):
//! SIGTERM and SIGINT ask for a graceful stop, SIGHUP for a config re-read
//! and a full rescan. Each arrival is logged once, here.

use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

/// A signal skupperd handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGTERM: finish the current write, `STOPPING=1`, exit 0.
    Terminate,
    /// SIGINT (Ctrl-C): as SIGTERM.
    Interrupt,
    /// SIGHUP: re-read the config file and rescan every namespace.
    Hangup,
}

impl Signal {
    /// The conventional name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
            Signal::Hangup => "SIGHUP",
        }
    }

    /// Whether this signal asks skupperd to stop.
    pub fn is_shutdown(self) -> bool {
        matches!(self, Signal::Terminate | Signal::Interrupt)
    }
}

/// The three signal handlers. Once created, these signals no longer have
/// their default action (terminating the process) for the whole process.
#[derive(Debug)]
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; needs a tokio runtime.
    ///
    /// # Errors
    /// When a handler cannot be registered (no runtime with signal support,
    /// or the OS refuses).
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal; cancel-safe, so it can sit in a `select!` loop.
    pub async fn recv(&mut self) -> Signal {
        let signal = tokio::select! {
            Some(()) = self.terminate.recv() => Signal::Terminate,
            Some(()) = self.interrupt.recv() => Signal::Interrupt,
            Some(()) = self.hangup.recv() => Signal::Hangup,
            else => std::future::pending().await,
        };
        info!(signal = signal.name(), "received {}", signal.name());
        signal
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustix::process::{getpid, kill_process, Signal as Sig};

    use super::*;

    #[tokio::test]
    async fn hangup_and_terminate_arrive_as_their_variants() {
        let mut signals = Signals::new().unwrap();
        let patience = Duration::from_secs(10);

        kill_process(getpid(), Sig::HUP).unwrap();
        let got = tokio::time::timeout(patience, signals.recv())
            .await
            .unwrap();
        assert_eq!(got, Signal::Hangup);
        assert!(!got.is_shutdown());

        kill_process(getpid(), Sig::TERM).unwrap();
        let got = tokio::time::timeout(patience, signals.recv())
            .await
            .unwrap();
        assert_eq!(got, Signal::Terminate);
        assert!(got.is_shutdown());
    }
}
