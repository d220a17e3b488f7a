//! `skupperd run` driving a router live: with the process runner starting
//! the router double as its child, and with runner none against a double
//! the test starts itself (so it can inject remote consumers).

use crate::support::daemon::{eventually, Daemon, Start};
use crate::support::*;
use router_double::RouterDouble;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

const C: &str = "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n";

/// These tests bind real management ports, chosen per data home from 5671
/// upwards: run one at a time so two data homes never race for one port.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The router double's binary, built on demand beside skupperd.
pub(crate) fn double_binary() -> PathBuf {
    let skupperd = assert_cmd::cargo::cargo_bin("skupperd");
    let path = skupperd.with_file_name("skrouterd-double");
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "router-double", "--bin", "skrouterd-double"])
            .status()
            .expect("cargo build");
        assert!(status.success());
    }
    path
}

pub(crate) fn site(home: &DataHome) {
    home.write("west", "internal/platform.yaml", "platform: linux\n");
    home.write("west", "input/resources/site.yaml", SITE);
}

/// `skupperd run` whose process runner starts the router double.
pub(crate) fn with_process_runner(home: &DataHome) -> Daemon {
    let config = config_file(
        home,
        &format!(
            "router_binary = \"{}\"\nrouter_poll_interval_ms = 200\n",
            double_binary().display()
        ),
    );
    Start::new(home).arg("--config").arg(config).spawn()
}

fn config_file(home: &DataHome, body: &str) -> String {
    let path = home.path().join("skupperd.toml");
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().into_owned()
}

fn record(home: &DataHome, kind: &str, name: &str) -> String {
    std::fs::read_to_string(
        home.ns("west")
            .join(format!("runtime/resources/{kind}-{name}.yaml")),
    )
    .unwrap_or_default()
}

pub(crate) fn wait_status(
    d: &Daemon,
    home: &DataHome,
    kind: &str,
    name: &str,
    want: &str,
) -> String {
    eventually(
        &format!("{kind} {name} to say {want:?}"),
        || {
            let r = record(home, kind, name);
            r.contains(want).then_some(r)
        },
        || format!("{}\n--- log ---\n{}", record(home, kind, name), d.log()),
    )
}

/// Listener `backend` on a free port and a local connector `backend` to an
/// echo server: the connector consumes the listener's address, so a router
/// opens the listener's socket. Returns the listener's port.
fn backend_with_local_connector(home: &DataHome) -> u16 {
    let port = free_port();
    home.write(
        "west",
        "input/resources/l.yaml",
        &listener("backend", "127.0.0.1", &port.to_string()),
    );
    home.write(
        "west",
        "input/resources/c.yaml",
        &format!(
            "{C}  name: backend\nspec:\n  host: 127.0.0.1\n  port: {}\n",
            echo_server()
        ),
    );
    port
}

fn echo(stream: &mut TcpStream, text: &[u8]) -> Vec<u8> {
    stream.write_all(text).unwrap();
    let mut buf = vec![0u8; text.len()];
    stream.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn the_process_runner_starts_the_router_and_changes_apply_live() {
    let _serial = serial();
    let home = DataHome::new();
    site(&home);
    let port = backend_with_local_connector(&home);

    let d = with_process_runner(&home);
    // The local connector consumes the listener's address: the router opens
    // the socket and the listener is Ready, as the router reports it.
    wait_status(&d, &home, "Listener", "backend", "status: Ready");
    let status = wait_status(&d, &home, "Site", "west", "status: Ready");
    assert!(status.contains("type: Running"), "{status}");

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(echo(&mut client, b"hello"), b"hello");

    // 100 unrelated changes: the open connection survives them all.
    for i in 0..100 {
        home.write(
            "west",
            "input/resources/other.yaml",
            &listener("other", "127.0.0.1", &(30000 + i).to_string()),
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_status(&d, &home, "Listener", "other", "port: 30099");
    eventually(
        "the router to have the last change",
        || {
            let s = std::fs::read_to_string(home.ns("west").join("runtime/status.yaml")).ok()?;
            s.contains("listener/other").then_some(())
        },
        || d.log(),
    );
    assert_eq!(echo(&mut client, b"still here"), b"still here");
}

#[test]
fn a_killed_router_is_restarted_and_synced_again() {
    let _serial = serial();
    let home = DataHome::new();
    site(&home);
    backend_with_local_connector(&home);
    let d = with_process_runner(&home);
    wait_status(&d, &home, "Listener", "backend", "status: Ready");
    let pid = router_pid(&home).expect("the router child");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // While it is gone nothing claims Ready; then it comes back.
    wait_status(&d, &home, "Listener", "backend", "router not reachable");
    // A change made while the router is down reaches the new one.
    home.write(
        "west",
        "input/resources/l2.yaml",
        &listener("late", "127.0.0.1", &free_port().to_string()),
    );
    wait_status(
        &d,
        &home,
        "Listener",
        "late",
        "type: Configured\n    status: \"True\"",
    );
    wait_status(&d, &home, "Listener", "backend", "status: Ready");
    assert_ne!(router_pid(&home), Some(pid), "a new router process");
}

/// The router child of this data home, found by its config path.
fn router_pid(home: &DataHome) -> Option<i32> {
    let config = home.ns("west").join("runtime/router/skrouterd.json");
    let needle = config.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("skrouterd-double") && cmdline.contains(&needle) {
            return Some(pid);
        }
    }
    None
}

/// Runner none, and a double the test starts on the namespace's management
/// port with the namespace's own certificates.
fn with_external_double(home: &DataHome) -> (Daemon, RouterDouble, tokio::runtime::Runtime) {
    with_external_double_and(
        home,
        "runner = \"none\"\nresync_interval_s = 1\nrouter_poll_interval_ms = 200\n",
    )
}

fn with_external_double_and(
    home: &DataHome,
    config: &str,
) -> (Daemon, RouterDouble, tokio::runtime::Runtime) {
    site(home);
    let config = config_file(home, config);
    let d = Start::new(home).arg("--config").arg(config).spawn();
    d.wait_ready();
    let identity = std::fs::read_to_string(home.ns("west").join("runtime/identity.yaml")).unwrap();
    let port: u16 = identity
        .lines()
        .find_map(|l| l.strip_prefix("managementPort: "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Another test may hold the port for a moment (tests that probe ports
    // run in parallel): try again rather than fail.
    let double = eventually(
        "the double to bind the management port",
        || {
            let mut cfg = crate::support::live::double_config(home, "west");
            cfg.port = port;
            let started = rt.block_on(RouterDouble::start(cfg)).ok();
            if started.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            started
        },
        || d.log(),
    );
    (d, double, rt)
}

/// Listener `backend` on a free port, with no connector; returns the port.
fn backend_listener(home: &DataHome) -> u16 {
    let port = free_port();
    home.write(
        "west",
        "input/resources/l.yaml",
        &listener("backend", "127.0.0.1", &port.to_string()),
    );
    port
}

fn wait_unmatched(d: &Daemon, home: &DataHome) {
    wait_status(
        d,
        home,
        "Listener",
        "backend",
        "message: No matching connectors",
    );
}

#[test]
fn matching_follows_the_routers_consumers_and_observer_is_an_update() {
    let _serial = serial();
    let home = DataHome::new();
    let port = backend_listener(&home);
    let (d, double, _rt) = with_external_double(&home);
    wait_unmatched(&d, &home);
    double.inject_remote_consumer("backend");
    wait_status(&d, &home, "Listener", "backend", "status: Ready");
    double.remove_remote_consumer("backend");
    wait_unmatched(&d, &home);

    let before = double.mutations().len();
    home.write(
        "west",
        "input/resources/l.yaml",
        &format!(
            "{}  observer: http2\n",
            listener("backend", "127.0.0.1", &port.to_string())
        ),
    );
    eventually(
        "the observer to reach the router",
        || {
            let e = double.entity("listener/backend")?;
            (e.attrs.get("observer")?.as_str()? == "http2").then_some(())
        },
        || d.log(),
    );
    let ops: Vec<String> = double.mutations()[before..]
        .iter()
        .map(|o| format!("{} {}", o.operation, o.name.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        ops,
        ["UPDATE listener/backend"],
        "an UPDATE, not a re-create"
    );
}

#[test]
fn statuses_follow_the_router_while_changes_keep_coming() {
    let _serial = serial();
    let home = DataHome::new();
    backend_listener(&home);
    home.write(
        "west",
        "input/resources/m.yaml",
        &listener("moving", "127.0.0.1", &free_port().to_string()),
    );
    // No resync to fall back on: only the polls can tell the status.
    let (d, double, _rt) = with_external_double_and(
        &home,
        "runner = \"none\"\nresync_interval_s = 3600\nrouter_poll_interval_ms = 500\n",
    );
    // Runner none finds a router started by hand at the next pass.
    home.write(
        "west",
        "input/resources/m.yaml",
        &listener("moving", "127.0.0.1", &free_port().to_string()),
    );
    wait_unmatched(&d, &home);
    // A change every 40 ms: each one owes a poll and each poll gives way
    // to the next change, but not for longer than the poll interval.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let editor = {
        let stop = stop.clone();
        let file = home.ns("west").join("input/resources/m.yaml");
        std::thread::spawn(move || {
            let mut edits = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && edits < 500 {
                let port = (41000 + edits % 2000).to_string();
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, listener("moving", "127.0.0.1", &port)).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
                edits += 1;
                std::thread::sleep(Duration::from_millis(40));
            }
            edits
        })
    };
    // Well into the stream: no poll has had a quiet moment since.
    std::thread::sleep(Duration::from_secs(1));
    double.inject_remote_consumer("backend");
    wait_status(&d, &home, "Listener", "backend", "status: Ready");
    let still_editing = !editor.is_finished();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let edits = editor.join().unwrap();
    assert!(
        still_editing,
        "the status moved only after {edits} edits stopped\n{}",
        d.log()
    );
}

#[test]
fn a_bind_failure_and_a_refusal_are_errors_in_the_routers_words() {
    let _serial = serial();
    let home = DataHome::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    home.write(
        "west",
        "input/resources/l.yaml",
        &listener("busy", "127.0.0.1", &taken_port.to_string()),
    );
    let (d, double, rt) = with_external_double(&home);
    double.inject_remote_consumer("busy");
    wait_status(
        &d,
        &home,
        "Listener",
        "busy",
        &format!("message: \"the router cannot open the listening socket: Address already in use - listen on 127.0.0.1:{taken_port}\""),
    );

    // Something else already holds the entity name the listener needs.
    let creds = skupperd::router::Credentials {
        client_cert_pem: std::fs::read(
            home.ns("west")
                .join("runtime/certs/skupper-local-client/tls.crt"),
        )
        .unwrap(),
        client_key_pem: std::fs::read(
            home.ns("west")
                .join("runtime/certs/skupper-local-client/tls.key"),
        )
        .unwrap(),
        ca_pem: std::fs::read(
            home.ns("west")
                .join("runtime/certs/skupper-local-client/ca.crt"),
        )
        .unwrap(),
    };
    rt.block_on(async {
        use skupperd::router::Management;
        let mut client = skupperd::router::connect(double.port(), &creds)
            .await
            .unwrap();
        let mut attrs = serde_json::Map::new();
        attrs.insert("prefix".into(), "web".into());
        attrs.insert("distribution".into(), "balanced".into());
        client
            .create("router.config.address", "listener/web", &attrs)
            .await
            .unwrap();
    });
    home.write(
        "west",
        "input/resources/w.yaml",
        &listener("web", "127.0.0.1", &free_port().to_string()),
    );
    let r = wait_status(
        &d,
        &home,
        "Listener",
        "web",
        "router refused listener/web: 400",
    );
    assert!(r.contains("duplicates unique attribute 'name'"), "{r}");
}

#[test]
fn a_router_mode_change_restarts_the_router_and_says_so() {
    let _serial = serial();
    let home = DataHome::new();
    site(&home);
    home.write(
        "west",
        "input/resources/l.yaml",
        &listener("backend", "127.0.0.1", &free_port().to_string()),
    );
    let d = with_process_runner(&home);
    wait_status(&d, &home, "Site", "west", "status: Ready");
    let first = router_pid(&home).expect("router");
    home.write(
        "west",
        "input/resources/site.yaml",
        &format!("{SITE}spec:\n  edge: true\n"),
    );
    eventually(
        "status.yaml to say the router was restarted",
        || {
            let s = std::fs::read_to_string(home.ns("west").join("runtime/status.yaml")).ok()?;
            s.contains("to apply a new router id or mode").then_some(())
        },
        || d.log(),
    );
    d.wait_log("the router's id or mode changed: restarting it");
    wait_status(&d, &home, "Site", "west", "status: Ready");
    assert_ne!(router_pid(&home), Some(first));
}

fn status_file(home: &DataHome) -> String {
    std::fs::read_to_string(home.ns("west").join("runtime/status.yaml")).unwrap_or_default()
}

fn wait_status_file(d: &Daemon, home: &DataHome, want: &str) -> String {
    eventually(
        &format!("status.yaml to say {want:?}"),
        || {
            let s = status_file(home);
            s.contains(want).then_some(s)
        },
        || format!("{}\n--- log ---\n{}", status_file(home), d.log()),
    )
}

fn management_port(home: &DataHome) -> u16 {
    let identity = std::fs::read_to_string(home.ns("west").join("runtime/identity.yaml")).unwrap();
    identity
        .lines()
        .find_map(|l| l.strip_prefix("managementPort: "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap()
}

/// A TLS server on `port` that is not this site's router: a double with
/// the certificates of a site in another data home, so the handshake
/// fails on skupperd's side (unknown issuer).
fn foreign_tls_server(port: u16, rt: &tokio::runtime::Runtime) -> (DataHome, RouterDouble) {
    let other = DataHome::new();
    other.write("east", "input/resources/site.yaml", SITE);
    crate::support::live::render(&other, "east");
    let double = eventually(
        "the foreign server to bind the management port",
        || {
            let mut cfg = crate::support::live::double_config(&other, "east");
            cfg.port = port;
            let started = rt.block_on(RouterDouble::start(cfg)).ok();
            if started.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            started
        },
        String::new,
    );
    (other, double)
}

/// A fake `skrouterd` that prints `lines` (as the real router formats
/// them) and exits with `status`.
fn failing_router(home: &DataHome, lines: &[&str], status: u8) -> PathBuf {
    let path = home.path().join("fake-skrouterd");
    let mut script = String::from("#!/bin/sh\n");
    for line in lines {
        script.push_str(&format!("echo '{line}' >&2\n"));
    }
    script.push_str(&format!("exit {status}\n"));
    // Written to a temporary name and renamed: nothing holds the final
    // name open for writing when the runner executes it (ETXTBSY).
    let tmp = home.path().join("fake-skrouterd.tmp");
    std::fs::write(&tmp, script).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

#[test]
fn a_router_exit_is_explained_by_its_error_line_not_its_last_line() {
    let _serial = serial();
    let home = DataHome::new();
    site(&home);
    let binary = failing_router(
        &home,
        &[
            "2026-12-03 10:00:00.1 +0000 ROUTER (info) Router started in Interior mode",
            "2026-12-03 10:00:00.2 +0000 ROUTER_CORE (error) Core thread failed",
            "2026-12-03 10:00:00.3 +0000 ROUTER (info) Router stopped",
        ],
        1,
    );
    let config = config_file(
        &home,
        &format!(
            "router_binary = \"{}\"\nrouter_poll_interval_ms = 200\n",
            binary.display()
        ),
    );
    let d = Start::new(&home).arg("--config").arg(config).spawn();
    wait_status(
        &d,
        &home,
        "Site",
        "west",
        "router not reachable: router exited: ROUTER_CORE (error) Core thread failed",
    );
    let status = wait_status_file(
        &d,
        &home,
        "router exited: ROUTER_CORE (error) Core thread failed",
    );
    assert!(status.contains("reachable: false"), "{status}");
    assert!(!status.contains("Router stopped"), "{status}");
}

#[test]
fn a_management_port_taken_by_another_process_moves_the_router() {
    let _serial = serial();
    let home = DataHome::new();
    site(&home);
    let first = {
        let mut d = with_process_runner(&home);
        wait_status(&d, &home, "Site", "west", "status: Ready");
        let port = management_port(&home);
        // Its router stops with it and frees the port.
        d.stop();
        port
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Another process takes the port meanwhile: a TLS server that is not
    // this site's router.
    let (_other, foreign) = foreign_tls_server(first, &rt);

    let d = with_process_runner(&home);
    let record = wait_status(
        &d,
        &home,
        "Site",
        "west",
        &format!("management port {first} is in use by another process; the router moved to port"),
    );
    assert!(record.contains("status: Ready"), "{record}");
    let moved = management_port(&home);
    assert_ne!(moved, first);
    let config =
        std::fs::read_to_string(home.ns("west").join("runtime/router/skrouterd.json")).unwrap();
    assert!(
        config.contains(&format!("\"port\": \"{moved}\"")),
        "{config}"
    );
    let status = wait_status_file(&d, &home, "reachable: true");
    assert!(
        status.contains(&format!("the router moved to port {moved}")),
        "{status}"
    );
    assert!(
        status.contains(&format!("managementPort: {moved}")),
        "{status}"
    );
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains(&format!("management port {first} is in use by another process: the router is restarted on port {moved}"))),
        "{log}"
    );
    // What answered on the taken port was never taken for the router.
    assert!(
        foreign.operations().is_empty(),
        "{:?}",
        foreign.operations()
    );
}

#[test]
fn a_management_failure_is_warned_once_counted_and_shown_in_status() {
    let _serial = serial();
    let home = DataHome::new();
    let (d, double, rt) = with_external_double(&home);
    wait_status(&d, &home, "Site", "west", "status: Ready");
    let port = double.port();
    rt.block_on(double.stop());
    let (_other, foreign) = foreign_tls_server(port, &rt);
    let warned = format!("router management on 127.0.0.1:{port}: ");
    // (First the lost connection of the stopped router is the reason.)
    let status = wait_status_file(&d, &home, "TLS");
    let router = status.split("router:\n").nth(1).unwrap_or_default();
    let message = router
        .lines()
        .find_map(|l| l.trim().strip_prefix("message: "))
        .unwrap_or_default();
    assert!(router.contains("reachable: false"), "{status}");
    assert!(
        message.contains("TLS"),
        "the reason is the status message: {status}"
    );
    wait_status(
        &d,
        &home,
        "Site",
        "west",
        "router not reachable: management connection lost: TLS",
    );
    // Resyncs every second keep failing for the same reason: logged once.
    std::thread::sleep(Duration::from_secs(3));
    let tls_lines = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(&warned) && l.contains("TLS") && !l.contains("(repeated "))
            .map(str::to_owned)
            .collect()
    };
    let lines = tls_lines(&d.log());
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("WARN"), "{lines:#?}");

    // The foreign server goes; this site's router comes back: the count
    // of the repeated failures is logged, and the status is clean again.
    rt.block_on(foreign.stop());
    let _double = eventually(
        "the double to bind the management port again",
        || {
            rt.block_on(RouterDouble::start(double_on(&home, port)))
                .ok()
        },
        || d.log(),
    );
    let status = wait_status_file(&d, &home, "reachable: true");
    assert!(!status.contains("TLS"), "{status}");
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&warned) && l.contains("TLS") && l.contains("(repeated ")),
        "{log}"
    );
    assert_eq!(tls_lines(&log).len(), 1, "{log}");
}

/// A double of this site's router on `port`.
fn double_on(home: &DataHome, port: u16) -> router_double::DoubleConfig {
    let mut cfg = crate::support::live::double_config(home, "west");
    cfg.port = port;
    cfg
}

#[test]
fn a_router_logging_change_reaches_the_running_router_without_a_restart() {
    let _serial = serial();
    let home = DataHome::new();
    site(&home);
    let d = with_process_runner(&home);
    wait_status(&d, &home, "Site", "west", "status: Ready");
    let pid = router_pid(&home).expect("the router child");
    home.write(
        "west",
        "input/resources/site.yaml",
        &format!("{SITE}spec:\n  settings:\n    routerLogging: debug\n"),
    );
    wait_status_file(&d, &home, "update log log/DEFAULT (enable debug+)");
    assert_eq!(router_pid(&home), Some(pid), "no restart");
    let config =
        std::fs::read_to_string(home.ns("west").join("runtime/router/skrouterd.json")).unwrap();
    assert!(config.contains("\"enable\": \"debug+\""), "{config}");
}

/// The management session alone against a double: how a sync decides
/// between planning from what it already knows and observing the router.
mod memory {
    use super::*;
    use crate::support::live::{client_credentials, double_config, ns_file, render, target};
    use skupperd::router::session::Session;
    use skupperd::router::{Key, Management};

    struct Live {
        home: DataHome,
        double: RouterDouble,
        session: Session,
        config: serde_json::Value,
    }

    /// The sample site (listener/backend) rendered, a double, and a
    /// session that has synced it once.
    async fn live() -> Live {
        let home = DataHome::new();
        home.sample("west");
        render(&home, "west");
        let bytes = ns_file(&home, "west", "runtime/router/skrouterd.json");
        let mut cfg = double_config(&home, "west");
        // The log modules the router loaded from its config file (the
        // other entities are for the session to create).
        let rendered: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for pair in rendered.as_array().unwrap() {
            if pair[0] == "log" {
                cfg.entities
                    .push(("log".into(), pair[1].as_object().unwrap().clone()));
            }
        }
        let double = RouterDouble::start(cfg).await.unwrap();
        let mut session = Session::default();
        session.set_target(target(&home, "west", double.port(), "first"));
        session.set_config(&bytes);
        session.sync("t0").await.expect("reachable");
        assert!(double.entity("listener/backend").is_some());
        Live {
            config: serde_json::from_slice(&bytes).unwrap(),
            home,
            double,
            session,
        }
    }

    impl Live {
        /// A new config where listener/backend has this observer.
        fn observer(&mut self, value: &str) {
            for pair in self.config.as_array_mut().unwrap() {
                if pair[1]["name"] == "listener/backend" {
                    pair[1]["observer"] = value.into();
                }
            }
            assert!(self
                .session
                .set_config(&serde_json::to_vec(&self.config).unwrap()));
        }

        /// A new config where the DEFAULT log module has this level.
        fn logging(&mut self, enable: &str) {
            for pair in self.config.as_array_mut().unwrap() {
                if pair[0] == "log" && pair[1]["module"] == "DEFAULT" {
                    pair[1]["enable"] = enable.into();
                }
            }
            assert!(self
                .session
                .set_config(&serde_json::to_vec(&self.config).unwrap()));
        }

        /// Someone with skmanage deletes the listener behind skupperd's back.
        async fn delete_behind_the_back(&self) {
            let mut other = skupperd::router::connect(
                self.double.port(),
                &client_credentials(&self.home, "west"),
            )
            .await
            .unwrap();
            other
                .delete("tcpListener", Key::Name("listener/backend"))
                .await
                .unwrap();
            assert!(self.double.entity("listener/backend").is_none());
        }

        fn operations_since(&self, n: usize) -> Vec<String> {
            self.double.operations()[n..]
                .iter()
                .map(|o| format!("{} {} {}", o.operation, o.entity_type, o.status_code))
                .collect()
        }
    }

    #[tokio::test]
    async fn a_change_costs_its_own_operations_and_an_unchanged_sync_observes_everything() {
        let mut l = live().await;
        let before = l.double.operations().len();
        l.observer("http1");
        let view = l.session.sync("t1").await.expect("reachable");
        let ops = l.operations_since(before);
        assert!(
            ops.contains(&"UPDATE tcpListener 200".to_string()),
            "{ops:?}"
        );
        assert!(
            !ops.iter().any(|o| o.starts_with("QUERY tcpConnector")),
            "a change is planned from what the session knows: {ops:?}"
        );
        assert_eq!(
            view.last_changes,
            ["update tcpListener listener/backend (observer http1)"]
        );

        let before = l.double.operations().len();
        l.session.sync("t2").await.expect("reachable");
        let ops = l.operations_since(before);
        for kind in [
            "sslProfile",
            "tcpListener",
            "tcpConnector",
            "connector",
            "listener",
        ] {
            assert!(
                ops.contains(&format!("QUERY {kind} 200")),
                "an unchanged sync is a drift check of every type: {ops:?}"
            );
        }
        assert!(!ops.iter().any(|o| !o.starts_with("QUERY")), "{ops:?}");
    }

    #[tokio::test]
    async fn an_entity_deleted_behind_skupperds_back_is_restored_by_the_drift_check() {
        let mut l = live().await;
        l.delete_behind_the_back().await;
        let view = l.session.sync("t1").await.expect("reachable");
        assert!(l.double.entity("listener/backend").is_some());
        assert_eq!(view.last_changes, ["create tcpListener listener/backend"]);
    }

    #[tokio::test]
    async fn a_change_meeting_a_stale_memory_is_planned_again_from_the_router() {
        let mut l = live().await;
        l.delete_behind_the_back().await;
        l.observer("http1");
        let view = l.session.sync("t1").await.expect("reachable");
        let backend = l.double.entity("listener/backend").expect("re-created");
        assert_eq!(backend.attrs["observer"], "http1");
        assert!(view.refused.is_empty(), "{view:?}");
        assert!(view.confirmed.contains("listener/backend"), "{view:?}");
    }

    #[tokio::test]
    async fn after_a_reconnect_the_router_is_observed_before_anything_is_planned() {
        let mut l = live().await;
        l.delete_behind_the_back().await;
        // A new target: the connection (and what it knew) is dropped.
        l.session
            .set_target(target(&l.home, "west", l.double.port(), "second"));
        l.observer("http1");
        let before = l.double.operations().len();
        let view = l.session.sync("t1").await.expect("reachable");
        let ops = l.operations_since(before);
        assert!(
            ops.contains(&"CREATE tcpListener 201".to_string()),
            "{ops:?}"
        );
        assert!(
            !ops.iter().any(|o| o.ends_with(" 404")),
            "nothing planned from what the old connection knew: {ops:?}"
        );
        assert_eq!(
            l.double.entity("listener/backend").unwrap().attrs["observer"],
            "http1"
        );
        assert!(view.refused.is_empty(), "{view:?}");
    }

    #[tokio::test]
    async fn a_logging_change_is_an_update_of_the_log_module_by_identity() {
        let mut l = live().await;
        let before = l.double.mutations().len();
        l.logging("debug+");
        let view = l.session.sync("t1").await.expect("reachable");
        let ops: Vec<(String, String, Option<String>, u16)> = l.double.mutations()[before..]
            .iter()
            .map(|o| {
                (
                    o.operation.clone(),
                    o.entity_type.clone(),
                    o.identity.clone(),
                    o.status_code,
                )
            })
            .collect();
        assert_eq!(
            ops,
            [(
                "UPDATE".to_string(),
                "log".to_string(),
                Some("log/DEFAULT".to_string()),
                200
            )]
        );
        assert_eq!(
            l.double.entity("log/DEFAULT").unwrap().attrs["enable"],
            "debug+"
        );
        assert_eq!(
            view.last_changes,
            ["update log log/DEFAULT (enable debug+)"]
        );
        // The drift check finds nothing more to do.
        let before = l.double.mutations().len();
        l.session.sync("t2").await.expect("reachable");
        assert_eq!(l.double.mutations().len(), before);
    }

    #[tokio::test]
    async fn a_tls_server_of_another_site_is_not_reachable() {
        let l = live().await;
        let other = DataHome::new();
        other.sample("east");
        render(&other, "east");
        let foreign = RouterDouble::start(double_config(&other, "east"))
            .await
            .unwrap();
        let mut session = Session::default();
        session.set_target(target(&l.home, "west", foreign.port(), "first"));
        session.set_config(&ns_file(&l.home, "west", "runtime/router/skrouterd.json"));
        assert!(session.sync("t0").await.is_none());
        assert!(!session.connected());
        let failure = session.failure().expect("a failure, not a router starting");
        assert!(failure.contains("TLS"), "{failure}");
        assert!(foreign.operations().is_empty());
    }

    /// The double's rules, except that the `router` entity type is unknown:
    /// every connection opens, then its first request (QUERY router) fails.
    struct NoRouterType(std::sync::Arc<dyn router_double::EntityRules>);

    impl router_double::EntityRules for NoRouterType {
        fn check_create(
            &self,
            t: &str,
            a: &router_double::Entity,
        ) -> Result<router_double::Entity, router_double::Refusal> {
            self.0.check_create(t, a)
        }
        fn check_config_entity(
            &self,
            t: &str,
            a: &router_double::Entity,
        ) -> Result<router_double::Entity, router_double::Refusal> {
            self.0.check_config_entity(t, a)
        }
        fn check_update(
            &self,
            t: &str,
            c: &router_double::Entity,
            a: &router_double::Entity,
        ) -> Result<router_double::Entity, router_double::Refusal> {
            self.0.check_update(t, c, a)
        }
        fn attribute_names(&self, t: &str) -> Option<Vec<String>> {
            let router = t == "router" || t == "io.skupper.router.router";
            (!router).then(|| self.0.attribute_names(t)).flatten()
        }
        fn check_config(&self, config: &serde_json::Value) -> Vec<String> {
            self.0.check_config(config)
        }
    }

    #[tokio::test]
    async fn a_connection_failing_at_its_first_request_backs_off() {
        let home = DataHome::new();
        home.sample("west");
        render(&home, "west");
        let mut cfg = double_config(&home, "west");
        cfg.rules = std::sync::Arc::new(NoRouterType(cfg.rules.clone()));
        let double = RouterDouble::start(cfg).await.unwrap();
        let mut session = Session::default();
        session.set_target(target(&home, "west", double.port(), "first"));
        session.set_config(&ns_file(&home, "west", "runtime/router/skrouterd.json"));
        // Callers ask far more often than the backoff allows.
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(1400) {
            assert!(session.sync("t").await.is_none());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let attempts = double
            .operations()
            .iter()
            .filter(|o| o.operation == "QUERY" && o.entity_type == "router")
            .count();
        // 100, 200, 400, 800 ms apart: at most five attempts in 1.4 s
        // (one more for a slow machine); without the backoff, one every
        // ~100 ms.
        assert!((2..=6).contains(&attempts), "{attempts} attempts");
        let failure = session.failure().unwrap_or_default();
        assert!(failure.contains("No such entity type"), "{failure}");
    }
}
