use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use super::*;
use crate::config::MapEnv;

fn manager() -> (tempfile::TempDir, PathBuf, UnixDatagram) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (dir, path, socket)
}

fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn messages_reach_the_socket_named_by_notify_socket_in_order() {
    let (_dir, path, socket) = manager();
    let env = MapEnv::new().with("NOTIFY_SOCKET", path.to_str().unwrap());
    let notifier = Notifier::from_env(&env);
    assert!(notifier.is_enabled());

    notifier.status("3 namespaces,\n1 with errors").unwrap();
    notifier.ready().unwrap();
    notifier.watchdog().unwrap();
    notifier.reloading().unwrap();
    notifier.ready().unwrap();
    notifier.stopping().unwrap();

    assert_eq!(next(&socket), "STATUS=3 namespaces, 1 with errors\n");
    assert_eq!(next(&socket), "READY=1\n");
    assert_eq!(next(&socket), "WATCHDOG=1\n");
    let reloading = next(&socket);
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"));
    let usec = lines
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap();
    assert!(usec.parse::<u64>().unwrap() > 0, "{reloading}");
    assert_eq!(next(&socket), "READY=1\n");
    assert_eq!(next(&socket), "STOPPING=1\n");
}

#[test]
fn abstract_sockets_are_supported() {
    let name = format!("skupperd-test-{}-{:?}", std::process::id(), Instant::now());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let notifier = Notifier::from_env(&MapEnv::new().with("NOTIFY_SOCKET", &format!("@{name}")));
    notifier.ready().unwrap();
    assert_eq!(next(&socket), "READY=1\n");
}

#[test]
fn without_notify_socket_everything_is_a_no_op() {
    let notifier = Notifier::from_env(&MapEnv::new());
    assert!(!notifier.is_enabled());
    notifier.ready().unwrap();
    notifier.status("x").unwrap();
    assert_eq!(notifier.watchdog_interval(), None);
    assert_eq!(Notifier::disabled(), notifier);
}

#[test]
fn an_unreachable_socket_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.sock");
    let err = Notifier::to_socket(&path, None).ready().unwrap_err();
    assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    assert_eq!(err.what, "ready");
}

#[test]
fn watchdog_interval_is_half_the_period_and_only_for_our_pid() {
    let ours = std::process::id().to_string();
    let env = MapEnv::new().with("WATCHDOG_USEC", "30000000");
    assert_eq!(
        Notifier::from_env(&env).watchdog_interval(),
        Some(Duration::from_secs(15))
    );
    let env = env.with("WATCHDOG_PID", &ours);
    assert_eq!(
        Notifier::from_env(&env).watchdog_period(),
        Some(Duration::from_secs(30))
    );
    let env = env.with("WATCHDOG_PID", "1");
    assert_eq!(Notifier::from_env(&env).watchdog_interval(), None);
    let env = MapEnv::new().with("WATCHDOG_USEC", "soon");
    assert_eq!(Notifier::from_env(&env).watchdog_interval(), None);
}

#[tokio::test]
async fn readiness_waits_for_every_latch() {
    let (mut ready, root) = readiness();
    let a = root.clone();
    let b = root.clone();
    root.release();
    assert!(!ready.is_ready());

    let waiter = tokio::spawn(async move {
        ready.wait().await;
        ready
    });
    a.release();
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "one latch is still held");
    drop(b);
    let mut ready = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("ready once all latches are gone")
        .unwrap();
    assert!(ready.is_ready());
    ready.wait().await; // stays ready
}

#[test]
fn health_requires_a_recent_beat_from_every_registered_actor() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let health = Health::new(s(15));
    assert!(health.healthy(t0), "no actors: healthy");

    health.register("west", t0);
    health.register("east", t0);
    assert!(health.healthy(t0 + s(15)));
    health.beat("west", t0 + s(10));
    assert_eq!(health.stale(t0 + s(16)), ["east"]);
    assert!(!health.healthy(t0 + s(16)));

    health.beat("east", t0 + s(16));
    assert!(health.healthy(t0 + s(20)));
    assert_eq!(health.stale(t0 + s(30)), ["west"]);
    health.unregister("west");
    assert!(health.healthy(t0 + s(30)));
}
