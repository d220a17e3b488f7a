//! The real-router suite: `skupperd run` end to end against a real
//! skupper-router, named by `SKUPPERD_TEST_SKROUTERD` (no registry has the
//! router, so CI cannot run this; it says so in one line and passes).
//!
//! Each scenario asserts what a user sees: the status files skupperd
//! writes and bytes through the router's sockets. Scenarios run one after
//! the other (they use real ports) and print one line each, so the output
//! is the per-scenario report.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::daemon::{Daemon, Start};
use support::tls::{
    der, pki, tls_client, tls_client_with, tls_connect, tls_echo, tls_echo_server, Pki,
};
use support::{echo_server, DataHome};

type Outcome = Result<(), String>;
/// A named scenario.
type Scenario = (&'static str, fn(&Path) -> Outcome);

fn main() {
    let image = std::env::var("SKUPPERD_TEST_ROUTER_IMAGE").ok();
    let Some(router) = std::env::var_os("SKUPPERD_TEST_SKROUTERD").map(PathBuf::from) else {
        println!(
            "real-router suite did not run: SKUPPERD_TEST_SKROUTERD is not set (point it at a real skrouterd to run it)"
        );
        if let Some(image) = image {
            if !podman::run_and_report(&image) {
                std::process::exit(1);
            }
        }
        return;
    };
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let scenarios: &[Scenario] = &[
        ("ready_with_bytes_flowing", ready_with_bytes_flowing),
        (
            "unmatched_listener_is_configured_not_matched",
            unmatched_listener,
        ),
        ("live_changes_keep_an_open_connection", live_changes),
        ("connector_removed_unmatches", connector_removed),
        ("port_in_use_is_an_error_and_recovers", port_in_use),
        ("router_sigkill_is_restarted_and_resynced", router_sigkill),
        (
            "router_sigkilled_10_times_in_a_storm_converges_each_time",
            router_sigkill_storm,
        ),
        ("router_logging_applied_live", logging_live),
        (
            "management_port_taken_moves_to_a_free_one",
            management_port_taken,
        ),
        ("two_sites_match_through_vanflow", two_sites),
        ("link_file_links_two_sites_live", linked_sites),
        (
            "sigkilled_routers_relink_by_themselves",
            relink_after_sigkill,
        ),
        (
            "west_switched_to_edge_relinks_over_the_edge_endpoint",
            edge_switch,
        ),
        (
            "east_certificate_rotation_keeps_the_link_up",
            link_access_rotation,
        ),
        (
            "figures_link_file_to_first_byte_and_listener_to_ready",
            link_figures,
        ),
        ("tls_rotation_live_keeps_an_open_connection", tls_rotation),
        ("mutual_tls_is_enforced", mutual_tls),
        ("connector_to_a_tls_backend", tls_backend),
        (
            "management_certificates_renewed_without_restart",
            management_renewal,
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, scenario) in scenarios {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let start = Instant::now();
        let result = std::panic::catch_unwind(|| scenario(&router))
            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(&p))));
        let secs = start.elapsed().as_secs_f32();
        match result {
            Ok(()) => {
                passed += 1;
                println!("PASS {name} ({secs:.1} s)");
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {name} ({secs:.1} s): {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    let podman_ok = match image {
        Some(image) if filter.as_deref().is_none_or(|f| "podman".contains(f)) => {
            podman::run_and_report(&image)
        }
        _ => true,
    };
    if failed > 0 || !podman_ok {
        std::process::exit(1);
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// How long a condition may take against the real router.
const PATIENCE: Duration = Duration::from_secs(30);

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    wait_for(what, PATIENCE, &mut f)
}

fn wait_for<T>(
    what: &str,
    patience: Duration,
    f: &mut impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > patience {
            return Err(format!("timed out after {patience:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Sends `payload` through `port` and reads it back.
fn echo_through(stream: &mut TcpStream, payload: &[u8]) -> Outcome {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(payload)
        .map_err(|e| format!("write: {e}"))?;
    let mut got = vec![0u8; payload.len()];
    stream
        .read_exact(&mut got)
        .map_err(|e| format!("read back: {e}"))?;
    if got == payload {
        Ok(())
    } else {
        Err(format!("echo mismatch: {got:?}"))
    }
}

fn round_trip(port: u16, payload: &[u8]) -> Outcome {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect {port}: {e}"))?;
    echo_through(&mut stream, payload)
}

/// Waits until a round trip through `port` works (the router opens the
/// socket asynchronously).
fn flows(port: u16) -> Outcome {
    wait(&format!("bytes echoed through 127.0.0.1:{port}"), || {
        round_trip(port, b"ping through skupper").ok()
    })
}

/// One data home with skupperd running on it against the real router.
struct Site {
    home: DataHome,
    daemon: Option<Daemon>,
    router: PathBuf,
}

const SITE: &str = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: NAME\nspec:\n  linkAccess: none\n";

fn listener_yaml(name: &str, key: &str, port: u16, extra: &str) -> String {
    format!(
        "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: {name}\nspec:\n  routingKey: {key}\n  host: 127.0.0.1\n  port: {port}\n{extra}"
    )
}

fn connector_yaml(name: &str, key: &str, port: u16) -> String {
    format!(
        "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n  name: {name}\nspec:\n  routingKey: {key}\n  host: 127.0.0.1\n  port: {port}\n"
    )
}

impl Site {
    /// A data home with linux namespaces (each with a Site named like it).
    fn new(router: &Path, namespaces: &[&str]) -> Site {
        let home = DataHome::new();
        for ns in namespaces {
            home.write(ns, "internal/platform.yaml", "platform: linux\n");
            home.write(ns, "input/resources/site.yaml", &SITE.replace("NAME", ns));
        }
        Site {
            home,
            daemon: None,
            router: router.to_path_buf(),
        }
    }

    fn start(&mut self) {
        self.start_with(3600);
    }

    /// Starts skupperd with a resync every `resync_s` seconds (a resync
    /// also re-reads `runtime/` from disk).
    fn start_with(&mut self, resync_s: u64) {
        let config = self.home.path().join("skupperd.toml");
        let _ = std::fs::write(
            &config,
            format!(
                "router_binary = \"{}\"\nrouter_poll_interval_ms = 200\nresync_interval_s = {resync_s}\nlinux_runner = \"process\"\n",
                self.router.display()
            ),
        );
        self.daemon = Some(
            Start::new(&self.home)
                .arg("--config")
                .arg(config.to_string_lossy())
                .spawn(),
        );
    }

    fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop();
        }
    }

    fn write(&self, ns: &str, file: &str, text: &str) {
        support::daemon::write_by_rename(
            &self.home.ns(ns).join("input/resources").join(file),
            text,
        );
    }

    fn remove(&self, ns: &str, file: &str) {
        let _ = std::fs::remove_file(self.home.ns(ns).join("input/resources").join(file));
    }

    fn read(&self, ns: &str, rel: &str) -> Option<yaml_serde::Value> {
        let text = std::fs::read_to_string(self.home.ns(ns).join(rel)).ok()?;
        yaml_serde::from_str(&text).ok()
    }

    fn record(&self, ns: &str, kind: &str, name: &str) -> Option<yaml_serde::Value> {
        self.read(ns, &format!("runtime/resources/{kind}-{name}.yaml"))
    }

    fn status_of(&self, ns: &str, kind: &str, name: &str) -> Option<(String, String)> {
        let r = self.record(ns, kind, name)?;
        let status = r.get("status")?;
        Some((
            status.get("status")?.as_str()?.to_string(),
            status.get("message")?.as_str().unwrap_or("").to_string(),
        ))
    }

    fn condition(&self, ns: &str, kind: &str, name: &str, cond: &str) -> Option<(String, String)> {
        let r = self.record(ns, kind, name)?;
        let conditions = r.get("status")?.get("conditions")?.as_sequence()?;
        let c = conditions
            .iter()
            .find(|c| c.get("type").and_then(|t| t.as_str()) == Some(cond))?;
        Some((
            c.get("status")?.as_str()?.to_string(),
            c.get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
        ))
    }

    fn router_field(&self, ns: &str, field: &str) -> Option<yaml_serde::Value> {
        self.read(ns, "runtime/status.yaml")?
            .get("router")?
            .get(field)
            .cloned()
    }

    fn wait_status(&self, ns: &str, kind: &str, name: &str, want: &str) -> Result<String, String> {
        let mut last = None;
        let got = wait_for(
            &format!("{kind} {name} in {ns} to be {want}"),
            PATIENCE,
            &mut || {
                let s = self.status_of(ns, kind, name);
                last = s.clone();
                s.filter(|(status, _)| status == want).map(|(_, m)| m)
            },
        );
        got.map_err(|e| format!("{e} (last: {last:?})\n{}", self.tail_log()))
    }

    fn listener_matched(&self, ns: &str, name: &str) -> Option<bool> {
        self.record(ns, "Listener", name)?
            .get("status")?
            .get("hasMatchingConnector")?
            .as_bool()
    }

    fn tail_log(&self) -> String {
        let log = self.daemon.as_ref().map(|d| d.log()).unwrap_or_default();
        if let Ok(path) = std::env::var("SKUPPERD_TEST_SAVE_LOG") {
            let _ = std::fs::write(path, &log);
        }
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// The pid of the namespace's router, from /proc.
    fn router_pid(&self, ns: &str) -> Option<i32> {
        let config = self.home.ns(ns).join("runtime/router/skrouterd.json");
        let needle = config.to_string_lossy().into_owned();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (text.contains(&needle) && !text.contains("/bin/sh")).then_some(pid)
        })
    }

    fn restarts(&self, ns: &str) -> u64 {
        self.router_field(ns, "restarts")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    }

    /// A management client to the namespace's router, as skupperd connects.
    fn management(
        &self,
        ns: &str,
        rt: &tokio::runtime::Runtime,
    ) -> Result<skupperd::router::AmqpManagement, String> {
        let read = |f: &str| {
            std::fs::read(
                self.home
                    .ns(ns)
                    .join("runtime/certs/skupper-local-client")
                    .join(f),
            )
            .map_err(|e| format!("{f}: {e}"))
        };
        let creds = skupperd::router::Credentials {
            client_cert_pem: read("tls.crt")?,
            client_key_pem: read("tls.key")?,
            ca_pem: read("ca.crt")?,
        };
        let port = self
            .router_field(ns, "managementPort")
            .and_then(|v| v.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("no management port in status.yaml")?;
        rt.block_on(skupperd::router::connect(port, &creds))
            .map_err(|e| e.to_string())
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    // A worker thread keeps the connections' heartbeats going between the
    // test's requests (the router drops a silent client after 8 s).
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn ensure(ok: bool, what: impl Into<String>) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// Site west with Listener `backend` on a free port and Connector
/// `backend` to a local echo server, running until the Listener is Ready;
/// answers the site and the listener's port.
fn served_site(router: &Path) -> Result<(Site, u16), String> {
    let echo = echo_server();
    let port = free_port();
    let mut site = Site::new(router, &["west"]);
    site.write(
        "west",
        "l.yaml",
        &listener_yaml("backend", "backend", port, ""),
    );
    site.write(
        "west",
        "c.yaml",
        &connector_yaml("backend", "backend", echo),
    );
    site.start();
    site.wait_status("west", "Listener", "backend", "Ready")?;
    Ok((site, port))
}

/// A linux site with a listener and a connector to a local echo server
/// goes Ready with a matching connector, and bytes flow.
fn ready_with_bytes_flowing(router: &Path) -> Outcome {
    let (site, port) = served_site(router)?;
    site.wait_status("west", "Site", "west", "Ready")?;
    site.wait_status("west", "Connector", "backend", "Ready")?;
    ensure(
        site.listener_matched("west", "backend") == Some(true),
        "hasMatchingConnector is not true",
    )?;
    flows(port)?;
    let reachable = site
        .router_field("west", "reachable")
        .and_then(|v| v.as_bool());
    ensure(
        reachable == Some(true),
        format!("status.yaml router.reachable = {reachable:?}"),
    )
}

/// A listener without any connector is Configured, not Matched.
fn unmatched_listener(router: &Path) -> Outcome {
    let mut site = Site::new(router, &["west"]);
    site.write(
        "west",
        "l.yaml",
        &listener_yaml("lonely", "nobody-serves-this", free_port(), ""),
    );
    site.start();
    wait("Configured True", || {
        site.condition("west", "Listener", "lonely", "Configured")
            .filter(|(s, _)| s == "True")
    })?;
    // Give the poll a few rounds to (wrongly) see a consumer.
    std::thread::sleep(Duration::from_secs(2));
    let matched = site.condition("west", "Listener", "lonely", "Matched");
    ensure(
        matched.as_ref().is_some_and(|(s, _)| s != "True"),
        format!("Matched = {matched:?}"),
    )?;
    let status = site.status_of("west", "Listener", "lonely");
    ensure(
        status.as_ref().is_some_and(|(s, _)| s != "Ready"),
        format!("status = {status:?}"),
    )
}

/// A listener added, its port changed, its observer changed and then
/// deleted, all live, while a TCP connection through an unchanged
/// listener stays open and the router is never restarted.
fn live_changes(router: &Path) -> Outcome {
    let (site, stable) = served_site(router)?;
    flows(stable)?;
    let pid = site.router_pid("west").ok_or("no router process found")?;
    let mut open = TcpStream::connect(("127.0.0.1", stable)).map_err(|e| e.to_string())?;
    echo_through(&mut open, b"before")?;

    let first = free_port();
    site.write(
        "west",
        "extra.yaml",
        &listener_yaml("extra", "backend", first, ""),
    );
    site.wait_status("west", "Listener", "extra", "Ready")?;
    flows(first)?;
    echo_through(&mut open, b"after add")?;

    let second = free_port();
    site.write(
        "west",
        "extra.yaml",
        &listener_yaml("extra", "backend", second, ""),
    );
    flows(second)?;
    wait("the old port to close", || {
        TcpStream::connect(("127.0.0.1", first))
            .is_err()
            .then_some(())
    })?;
    echo_through(&mut open, b"after port change")?;

    site.write(
        "west",
        "extra.yaml",
        &listener_yaml("extra", "backend", second, "  observer: none\n"),
    );
    let rt = runtime()?;
    let mut mgmt = site.management("west", &rt)?;
    use skupperd::router::Management;
    wait("observer none on the router", || {
        let rows = rt
            .block_on(mgmt.query("tcpListener", &["name", "observer"]))
            .ok()?;
        rows.iter()
            .any(|r| {
                r.get("name").and_then(|v| v.as_str()) == Some("listener/extra")
                    && r.get("observer").and_then(|v| v.as_str()) == Some("none")
            })
            .then_some(())
    })?;
    echo_through(&mut open, b"after observer change")?;

    site.remove("west", "extra.yaml");
    wait("the deleted listener's port to close", || {
        TcpStream::connect(("127.0.0.1", second))
            .is_err()
            .then_some(())
    })?;
    echo_through(&mut open, b"after delete")?;
    ensure(
        site.router_pid("west") == Some(pid),
        "the router process changed",
    )?;
    ensure(site.restarts("west") == 0, "the router was restarted")
}

/// Removing the connector makes the listener unmatched.
fn connector_removed(router: &Path) -> Outcome {
    let (site, port) = served_site(router)?;
    site.remove("west", "c.yaml");
    wait("hasMatchingConnector false", || {
        (site.listener_matched("west", "backend") == Some(false)).then_some(())
    })?;
    let matched = site.condition("west", "Listener", "backend", "Matched");
    ensure(
        matched.as_ref().is_some_and(|(s, _)| s != "True"),
        format!("Matched = {matched:?}"),
    )?;
    wait("the listener socket to close", || {
        TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    })
}

/// A listener port held by another process is the listener's Error in
/// the router's words, and it recovers once the port is free.
fn port_in_use(router: &Path) -> Outcome {
    let echo = echo_server();
    let blocker = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = blocker.local_addr().map_err(|e| e.to_string())?.port();
    let mut site = Site::new(router, &["west"]);
    site.write(
        "west",
        "l.yaml",
        &listener_yaml("busy", "backend", port, ""),
    );
    site.write(
        "west",
        "c.yaml",
        &connector_yaml("backend", "backend", echo),
    );
    site.start();
    let message = site.wait_status("west", "Listener", "busy", "Error")?;
    ensure(
        message.contains("Address already in use"),
        format!("message: {message}"),
    )?;
    drop(blocker);
    site.wait_status("west", "Listener", "busy", "Ready")?;
    flows(port)
}

/// The router killed with SIGKILL is restarted and re-synced: everything
/// Ready again and bytes flow.
fn router_sigkill(router: &Path) -> Outcome {
    let (site, port) = served_site(router)?;
    let pid = site.router_pid("west").ok_or("no router process found")?;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    ensure(status.success(), "kill failed")?;
    wait("a new router process", || {
        site.router_pid("west").filter(|p| *p != pid)
    })?;
    wait("the restart counted in status.yaml", || {
        (site.restarts("west") >= 1).then_some(())
    })?;
    site.wait_status("west", "Listener", "backend", "Ready")?;
    site.wait_status("west", "Site", "west", "Ready")?;
    flows(port)
}

/// The tcpListener entities of a `skrouterd.json`: name -> port.
fn config_listeners(site: &Site, ns: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(site.home.ns(ns).join("runtime/router/skrouterd.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(
        doc.as_array()?
            .iter()
            .filter(|e| e[0] == "tcpListener")
            .filter_map(|e| {
                Some((
                    e[1]["name"].as_str()?.to_string(),
                    e[1]["port"].as_str()?.to_string(),
                ))
            })
            .collect(),
    )
}

/// The real router SIGKILLed 10 times while listener files keep changing.
/// The kills are 16 s apart: the process runner marks a router that
/// exits five times within 60 s failed (platform.md 1.2), and its restart
/// delay doubles up to 60 s, so this scenario takes minutes (148 to 355 s
/// here). While the router is down (from the
/// moment skupperd has seen it go until the new process answers) no
/// status says Ready; once it answers, its tcpListeners (QUERY with a
/// management client of our own) equal those of `skrouterd.json` and the
/// input within 2 s: nothing stale, nothing missing.
fn router_sigkill_storm(router: &Path) -> Outcome {
    use skupperd::router::Management;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const KILLS: usize = 10;
    const SPACING: Duration = Duration::from_secs(16);
    let (site, port) = served_site(router)?;
    let site = Arc::new(site);
    // The storm: listeners s0..s7 written, moved and removed all along;
    // `want` is what the input says (name -> port).
    let want: Arc<Mutex<BTreeMap<String, u16>>> = Arc::default();
    let pause = Arc::new(AtomicBool::new(false));
    let end = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let storm = {
        let (site, want, pause, end, changes) = (
            Arc::clone(&site),
            Arc::clone(&want),
            Arc::clone(&pause),
            Arc::clone(&end),
            Arc::clone(&changes),
        );
        std::thread::spawn(move || {
            let mut i: u64 = 0;
            while !end.load(Ordering::SeqCst) {
                if pause.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let name = format!("s{}", (i >> 33) % 8);
                let file = format!("{name}.yaml");
                let Ok(mut w) = want.lock() else { return };
                if (i >> 40).is_multiple_of(4) {
                    site.remove("west", &file);
                    w.remove(&name);
                } else {
                    let p = free_port();
                    site.write(
                        "west",
                        &file,
                        &listener_yaml(&name, &format!("storm-{name}"), p, ""),
                    );
                    w.insert(name, p);
                }
                drop(w);
                changes.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20 + (i >> 50) % 100));
            }
        })
    };
    let stop_storm = |end: &AtomicBool| end.store(true, Ordering::SeqCst);
    let result = (|| -> Outcome {
        let rt = runtime()?;
        let mgmt_port = site
            .router_field("west", "managementPort")
            .and_then(|v| v.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("no management port in status.yaml")?;
        let mut converged = Vec::new();
        let mut last_kill = Instant::now() - SPACING;
        for round in 0..KILLS {
            let wait_more = SPACING.saturating_sub(last_kill.elapsed());
            std::thread::sleep(wait_more);
            // Killed only once skupperd has shown the router Ready: a kill
            // in the middle of the pass that brings Ready (its view taken
            // just before the exit) would have that pass write Ready a few
            // ms after the router died, and the next pass take it back.
            site.wait_status("west", "Site", "west", "Ready")?;
            let pid = site.router_pid("west").ok_or("no router process found")?;
            let status = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .map_err(|e| e.to_string())?;
            ensure(status.success(), "kill failed")?;
            last_kill = Instant::now();
            // skupperd sees it go: the Site is no longer Ready.
            wait(&format!("round {round}: the Site to leave Ready"), || {
                site.status_of("west", "Site", "west")
                    .filter(|(s, _)| s != "Ready")
            })?;
            // Down: nothing Ready until the new router answers.
            let back = wait_for(
                &format!("round {round}: a new router answering on {mgmt_port}"),
                Duration::from_secs(120),
                &mut || {
                    // Statuses first: a Ready read before the router was
                    // seen answering is one written while it was down
                    // (once it answers, Ready may come at any moment).
                    let ready: Vec<String> = [
                        ("Site", "west"),
                        ("Listener", "backend"),
                        ("Connector", "backend"),
                    ]
                    .iter()
                    .filter_map(|(kind, name)| {
                        let (s, m) = site.status_of("west", kind, name)?;
                        (s == "Ready").then(|| format!("{kind} {name} ({m})"))
                    })
                    .collect();
                    let new = site.router_pid("west").filter(|p| *p != pid);
                    // Read again: skupperd moves the management port when
                    // another process took it while the router was down.
                    let port_now = site
                        .router_field("west", "managementPort")
                        .and_then(|v| v.as_u64())
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or(mgmt_port);
                    let answering =
                        new.is_some() && TcpStream::connect(("127.0.0.1", port_now)).is_ok();
                    if answering {
                        return new.map(Ok);
                    }
                    if !ready.is_empty() {
                        return Some(Err(format!(
                            "round {round}: Ready while the router is down: {} (router pid {new:?}, management port {port_now})\n{}",
                            ready.join(", "),
                            site.tail_log()
                        )));
                    }
                    None
                },
            )??;
            let t_back = Instant::now();
            pause.store(true, Ordering::SeqCst);
            let mut mgmt = wait("a management connection to the new router", || {
                site.management("west", &rt).ok()
            })?;
            let mut last = String::new();
            let took = wait_for(
                &format!("round {round}: the router's tcpListeners to equal the input"),
                Duration::from_secs(30),
                &mut || {
                    let rows = rt
                        .block_on(mgmt.query("tcpListener", &["name", "port"]))
                        .ok()?;
                    let on_router: BTreeMap<String, String> = rows
                        .iter()
                        .filter_map(|r| {
                            Some((
                                r.get("name")?.as_str()?.to_string(),
                                r.get("port")?.as_str()?.to_string(),
                            ))
                        })
                        .collect();
                    let config = config_listeners(&site, "west")?;
                    let mut input: BTreeMap<String, String> = want
                        .lock()
                        .ok()?
                        .iter()
                        .map(|(n, p)| (format!("listener/{n}"), p.to_string()))
                        .collect();
                    input.insert("listener/backend".into(), port.to_string());
                    last =
                        format!("router {on_router:?}, skrouterd.json {config:?}, input {input:?}");
                    (on_router == config && config == input).then(|| t_back.elapsed())
                },
            )
            .map_err(|e| format!("{e}; last: {last}\n{}", site.tail_log()))?;
            ensure(
                took <= Duration::from_secs(2),
                format!("round {round}: converged {took:?} after the router was back (limit 2 s); {last}"),
            )?;
            converged.push(took);
            let _new_pid = back;
            rt.block_on(mgmt.close());
            pause.store(false, Ordering::SeqCst);
        }
        stop_storm(&end);
        site.wait_status("west", "Site", "west", "Ready")?;
        site.wait_status("west", "Listener", "backend", "Ready")?;
        flows(port)?;
        converged.sort();
        println!(
            "  {KILLS} kills, {} listener changes; converged after the router was back in {:?} (median) and {:?} at most; restarts in status.yaml: {}",
            changes.load(Ordering::SeqCst),
            converged[converged.len() / 2],
            converged.last().copied().unwrap_or_default(),
            site.restarts("west")
        );
        Ok(())
    })();
    stop_storm(&end);
    let _ = storm.join();
    result
}

/// A change of the Site's router logging reaches the router live.
fn logging_live(router: &Path) -> Outcome {
    let mut site = Site::new(router, &["west"]);
    site.start();
    site.wait_status("west", "Site", "west", "Ready")?;
    let pid = site.router_pid("west").ok_or("no router process found")?;
    site.write(
        "west",
        "site.yaml",
        &(SITE.replace("NAME", "west") + "  settings:\n    routerLogging: debug\n"),
    );
    let rt = runtime()?;
    let mut mgmt = site.management("west", &rt)?;
    use skupperd::router::Management;
    let seen = wait("log/DEFAULT enable debug+ on the router", || {
        let rows = rt
            .block_on(mgmt.query("log", &["identity", "enable"]))
            .ok()?;
        let default = rows
            .iter()
            .find(|r| r.get("identity").and_then(|v| v.as_str()) == Some("log/DEFAULT"))?;
        let enable = default.get("enable")?.as_str()?.to_string();
        enable.starts_with("debug").then_some(enable)
    })?;
    ensure(
        site.router_pid("west") == Some(pid),
        format!("router restarted to apply {seen}"),
    )
}

/// The management port held by another process: the router exits, and
/// skupperd moves the site to a free port and says so.
fn management_port_taken(router: &Path) -> Outcome {
    let mut site = Site::new(router, &["west"]);
    site.start();
    site.wait_status("west", "Site", "west", "Ready")?;
    let old = site
        .router_field("west", "managementPort")
        .and_then(|v| v.as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("no management port")?;
    site.stop();
    wait("the router to stop", || {
        site.router_pid("west").is_none().then_some(())
    })?;
    let _foreign =
        TcpListener::bind(("127.0.0.1", old)).map_err(|e| format!("binding {old}: {e}"))?;
    site.start();
    let new = wait("a new management port", || {
        site.router_field("west", "managementPort")
            .and_then(|v| v.as_u64())
            .filter(|p| *p != u64::from(old))
    })?;
    site.wait_status("west", "Site", "west", "Ready")?;
    ensure(new != u64::from(old), "port unchanged")
}

/// Two sites of one data home, joined by a hand-made inter-router
/// listener/connector pair: a Connector in east is matched by a Listener
/// in west through the vanflow view, and both count two sites.
fn two_sites(router: &Path) -> Outcome {
    let echo = echo_server();
    let west_port = free_port();
    let link_port = free_port();
    let mut site = Site::new(router, &["east", "west"]);
    site.write("east", "c.yaml", &connector_yaml("db", "db", echo));
    site.write("west", "l.yaml", &listener_yaml("db", "db", west_port, ""));
    site.start();
    site.wait_status("east", "Site", "east", "Ready")?;
    site.wait_status("west", "Site", "west", "Ready")?;
    let rt = runtime()?;
    use serde_json::json;
    use skupperd::router::Management;
    let attrs = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    let mut east = site.management("east", &rt)?;
    rt.block_on(east.create(
        "listener",
        "test-inter-router",
        &attrs(
            json!({"host": "127.0.0.1", "port": link_port.to_string(), "role": "inter-router",
                      "authenticatePeer": false, "saslMechanisms": "ANONYMOUS"}),
        ),
    ))
    .map_err(|e| format!("east inter-router listener: {e}"))?;
    let mut west = site.management("west", &rt)?;
    rt.block_on(west.create(
        "connector",
        "test-inter-router",
        &attrs(
            json!({"host": "127.0.0.1", "port": link_port.to_string(), "role": "inter-router",
                      "saslMechanisms": "ANONYMOUS"}),
        ),
    ))
    .map_err(|e| format!("west inter-router connector: {e}"))?;
    site.wait_status("west", "Listener", "db", "Ready")?;
    flows(west_port)?;
    site.wait_status("east", "Connector", "db", "Ready")?;
    sites_in_network(&site, 2)?;
    let matched = site.condition("east", "Connector", "db", "Matched");
    ensure(
        matched.as_ref().is_some_and(|(s, _)| s == "True"),
        format!("east Connector Matched = {matched:?}"),
    )
}

/// Site west with TLS Listener `web` (key `backend`, bundle `web` of
/// `files`) and Connector `backend` to a local echo server, running until
/// the Listener is Ready; answers the site, the listener's port and the
/// bundle's directory.
fn tls_served_site(router: &Path, files: &[(&str, &str)]) -> Result<(Site, u16, PathBuf), String> {
    let echo = echo_server();
    let port = free_port();
    let mut site = Site::new(router, &["west"]);
    let certs = site.home.ns("west").join("input/certs/web");
    std::fs::create_dir_all(&certs).map_err(|e| e.to_string())?;
    for (file, text) in files {
        support::daemon::write_by_rename(&certs.join(file), text);
    }
    site.write(
        "west",
        "l.yaml",
        &listener_yaml("web", "backend", port, "  tlsCredentials: web\n"),
    );
    site.write(
        "west",
        "c.yaml",
        &connector_yaml("backend", "backend", echo),
    );
    site.start();
    site.wait_status("west", "Listener", "web", "Ready")?;
    Ok((site, port, certs))
}

/// A TLS listener served with the user's bundle: the handshake verifies
/// against the user's CA; replacing the bundle (key first, then the
/// certificate) reaches new connections within a second through the
/// sslProfile ordinal, with no router restart and a TLS connection opened
/// before it still working.
fn tls_rotation(router: &Path) -> Outcome {
    let Pki {
        ca, first, second, ..
    } = pki();
    let (site, port, certs) = tls_served_site(
        router,
        &[("tls.crt", &first.cert_pem), ("tls.key", &first.key_pem)],
    )?;
    let put = |file: &str, text: &str| support::daemon::write_by_rename(&certs.join(file), text);
    let client = tls_client(&ca.cert_pem)?;
    let (mut open, leaf) = wait("a TLS handshake verified by the user's CA", || {
        tls_connect(port, &client).ok()
    })?;
    ensure(
        leaf == der(&first.cert_pem),
        "the server did not present the user's certificate",
    )?;
    tls_echo(&mut open, b"through TLS")?;
    let pid = site.router_pid("west").ok_or("no router process found")?;

    // Key first, then the certificate: the half-written pair is never
    // sent to the router.
    put("tls.key", &second.key_pem);
    put("tls.crt", &second.cert_pem);
    let written = Instant::now();
    wait("a new connection to get the new certificate", || {
        let (_, leaf) = tls_connect(port, &client).ok()?;
        (leaf == der(&second.cert_pem)).then_some(())
    })?;
    let seen = written.elapsed();
    tls_echo(&mut open, b"still open after the rotation")?;
    ensure(
        site.router_pid("west") == Some(pid),
        "the router process changed",
    )?;
    ensure(site.restarts("west") == 0, "the router was restarted")?;
    // Reported, not asserted: timings belong to benchmarks.
    println!(
        "  rotation seen by a new connection {:.0} ms after the files were written",
        seen.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// A bundle with `ca.crt` makes the listener require client certificates
/// signed by it: a client without one gets nothing through, a client with
/// one gets its bytes echoed.
fn mutual_tls(router: &Path) -> Outcome {
    let Pki {
        ca,
        first,
        client: client_cert,
        ..
    } = pki();
    let (_site, port, _) = tls_served_site(
        router,
        &[
            ("tls.crt", &first.cert_pem),
            ("tls.key", &first.key_pem),
            ("ca.crt", &ca.cert_pem),
        ],
    )?;
    let with_cert = tls_client_with(&ca.cert_pem, Some(&client_cert))?;
    let (mut stream, _) = wait("a handshake with a client certificate", || {
        tls_connect(port, &with_cert).ok()
    })?;
    tls_echo(&mut stream, b"mutual")?;
    let anonymous = tls_client(&ca.cert_pem)?;
    // TLS 1.3 finishes the client's side of the handshake before the
    // server checks the client: the refusal shows on the first read.
    let refused = match tls_connect(port, &anonymous) {
        Err(_) => true,
        Ok((mut s, _)) => tls_echo(&mut s, b"no certificate").is_err(),
    };
    ensure(refused, "a client without a certificate got through")
}

/// A Connector whose bundle holds the backend's CA reaches a TLS backend:
/// bytes sent to the (plain) listener come back through TLS to the
/// backend.
fn tls_backend(router: &Path) -> Outcome {
    use skupperd::certs::{Mint, RcgenMint};
    let now = time::OffsetDateTime::now_utc();
    let mut mint = RcgenMint;
    let sans = ["127.0.0.1".to_string()];
    let ca = mint
        .issue_ca("backend-ca", now)
        .map_err(|e| e.to_string())?;
    let backend_cert = mint
        .issue_leaf(&ca, "backend", &sans, now)
        .map_err(|e| e.to_string())?;
    let backend = tls_echo_server(&backend_cert)?;
    let port = free_port();
    let mut site = Site::new(router, &["west"]);
    let certs = site.home.ns("west").join("input/certs/backend-ca");
    std::fs::create_dir_all(&certs).map_err(|e| e.to_string())?;
    support::daemon::write_by_rename(&certs.join("ca.crt"), &ca.cert_pem);
    site.write(
        "west",
        "l.yaml",
        &listener_yaml("plain", "secure", port, ""),
    );
    site.write(
        "west",
        "c.yaml",
        &(connector_yaml("secure", "secure", backend) + "  tlsCredentials: backend-ca\n"),
    );
    site.start();
    site.wait_status("west", "Connector", "secure", "Ready")?;
    site.wait_status("west", "Listener", "plain", "Ready")?;
    flows(port)
}

/// Re-issued management certificates reach the running router through
/// the management profile's ordinal, sent over the connection made with
/// the old ones; the next connection uses the new ones. No restart.
/// (Renewal is years away in a live daemon, so this drives the session
/// directly on a namespace rendered twice, the second time after the
/// `skupper-local-*` leaves were removed, which re-issues them from the
/// same local CA.)
fn management_renewal(router: &Path) -> Outcome {
    use skupperd::plan::Platform;
    use skupperd::router::session::{Session, Target};
    let home = DataHome::new();
    home.write("west", "internal/platform.yaml", "platform: linux\n");
    home.write(
        "west",
        "input/resources/site.yaml",
        &SITE.replace("NAME", "west"),
    );
    let ns = home.ns("west");
    let render = || {
        support::skupperd()
            .arg("render")
            .arg(&ns)
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| {
                ensure(
                    o.status.success(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                )
            })
    };
    render()?;
    let identity: yaml_serde::Value = yaml_serde::from_str(
        &std::fs::read_to_string(ns.join("runtime/identity.yaml")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let site_id = identity
        .get("siteId")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let port = identity
        .get("managementPort")
        .and_then(|v| v.as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("no management port")?;
    let config = ns.join("runtime/router/skrouterd.json");
    let mut child = std::process::Command::new(router)
        .arg("-c")
        .arg(&config)
        .env("SKUPPER_SITE_ID", &site_id)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = (|| {
        let target = || Target {
            port,
            site_id: site_id.clone(),
            platform: Platform::Linux,
            credentials: support::live::client_credentials(&home, "west"),
        };
        let rt = runtime()?;
        let mut session = Session::default();
        session.set_target(Some(target()));
        session.set_config(&std::fs::read(&config).map_err(|e| e.to_string())?);
        wait("the router to answer management", || {
            rt.block_on(session.sync("t0"))
        })?;

        for dir in ["skupper-local-server", "skupper-local-client"] {
            std::fs::remove_dir_all(ns.join("runtime/certs").join(dir))
                .map_err(|e| e.to_string())?;
        }
        render()?;
        let rendered = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
        ensure(
            rendered.contains("\"ordinal\": 1"),
            "the management profile's ordinal did not rise",
        )?;
        session.set_target(Some(target()));
        session.set_config(rendered.as_bytes());
        let before = session.counts.get("update").copied().unwrap_or(0);
        rt.block_on(session.sync("t1"))
            .ok_or("the sync over the old connection failed")?;
        ensure(
            session.counts.get("update").copied().unwrap_or(0) == before + 1,
            format!("expected one UPDATE, counts: {:?}", session.counts),
        )?;
        // Reconnects with the new certificates: the router must trust the
        // new client certificate and serve its new server certificate.
        rt.block_on(session.sync("t2"))
            .ok_or("the router refused the new management certificates")?;
        ensure(
            session.connected(),
            "not connected with the new certificates",
        )?;
        rt.block_on(skupperd::router::connect(port, &target().credentials))
            .map_err(|e| format!("a fresh connection with the new certificates: {e}"))?;
        let alive = child.try_wait().map_err(|e| e.to_string())?.is_none();
        ensure(alive, "the router exited")
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Two sites of one `skupperd run`: east with link access and Connector
/// `backend` (to a local echo server), west with Listener `backend` on
/// the answered port; both Sites Ready, east's link file not yet copied.
fn link_pair(router: &Path, resync_s: u64) -> Result<(Site, u16, String), String> {
    let echo = echo_server();
    let west_port = free_port();
    let mut site = Site::new(router, &["east", "west"]);
    site.write(
        "east",
        "site.yaml",
        &SITE.replace("NAME", "east").replace("none", "default"),
    );
    site.write(
        "east",
        "c.yaml",
        &connector_yaml("backend", "backend", echo),
    );
    site.write(
        "west",
        "l.yaml",
        &listener_yaml("backend", "backend", west_port, ""),
    );
    site.start_with(resync_s);
    site.wait_status("east", "Site", "east", "Ready")?;
    site.wait_status("west", "Site", "west", "Ready")?;
    let link_file = site
        .home
        .ns("east")
        .join("runtime/links/link-east-127.0.0.1.yaml");
    let link = wait("east's link file", || {
        std::fs::read_to_string(&link_file).ok()
    })?;
    Ok((site, west_port, link))
}

/// Copies east's link file into west; answers when a request through
/// west's listener is answered by east's backend, with the time it took.
fn link(site: &Site, link: &str, west_port: u16) -> Result<Duration, String> {
    let copied = Instant::now();
    site.write("west", "link-east.yaml", link);
    wait("a request answered through the link", || {
        round_trip(west_port, b"ping through the link").ok()
    })
    .map_err(|e| {
        format!(
            "{e}\nwest Link: {:?}\n{}",
            site.status_of("west", "Link", "link-east"),
            site.tail_log()
        )
    })?;
    Ok(copied.elapsed())
}

fn sites_in_network(site: &Site, n: u64) -> Outcome {
    for ns in ["east", "west"] {
        wait(&format!("sitesInNetwork {n} in {ns}"), || {
            let got = site
                .record(ns, "Site", ns)?
                .get("status")?
                .get("sitesInNetwork")?
                .as_u64()?;
            (got == n).then_some(())
        })
        .map_err(|e| format!("{e}\n{}", site.tail_log()))?;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// East's link file copied into west links the two routers live (neither
/// restarts); west's request is answered by east's backend, west's
/// Listener is Ready and matched, both count two sites; deleting the Link
/// unmatches within 2 s.
fn linked_sites(router: &Path) -> Outcome {
    let (site, west_port, link_text) = link_pair(router, 3600)?;
    let pids = (site.router_pid("east"), site.router_pid("west"));
    let first_byte = link(&site, &link_text, west_port)?;
    site.wait_status("west", "Link", "link-east", "Ready")?;
    site.wait_status("west", "Listener", "backend", "Ready")?;
    ensure(
        site.listener_matched("west", "backend") == Some(true),
        "hasMatchingConnector is not true",
    )?;
    site.wait_status("east", "Connector", "backend", "Ready")?;
    sites_in_network(&site, 2)?;
    ensure(
        (site.router_pid("east"), site.router_pid("west")) == pids
            && site.restarts("west") == 0
            && site.restarts("east") == 0,
        "a router restarted while linking",
    )?;
    // What the real router says of a working link.
    let rt = runtime()?;
    let mut west = site.management("west", &rt)?;
    use skupperd::router::Management;
    let rows = rt
        .block_on(west.query("connector", &["name", "connectionStatus", "connectionMsg"]))
        .map_err(|e| e.to_string())?;
    println!("  west connector row: {:?}", rows);
    let removed = Instant::now();
    site.remove("west", "link-east.yaml");
    wait_for(
        "west's Listener to be unmatched",
        Duration::from_secs(2),
        &mut || (site.listener_matched("west", "backend") == Some(false)).then_some(()),
    )?;
    println!(
        "  link file -> first byte {:.0} ms; Link deleted -> unmatched {:.0} ms",
        ms(first_byte),
        ms(removed.elapsed())
    );
    Ok(())
}

fn sigkill(site: &Site, ns: &str) -> Outcome {
    let pid = site
        .router_pid(ns)
        .ok_or(format!("no router process for {ns}"))?;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    ensure(status.success(), "kill failed")?;
    wait(&format!("a new router process in {ns}"), || {
        site.router_pid(ns).filter(|p| *p != pid)
    })?;
    Ok(())
}

/// A linked pair whose routers are SIGKILLed one after the other: each is
/// restarted by skupperd and the link comes back by itself.
fn relink_after_sigkill(router: &Path) -> Outcome {
    let (site, west_port, link_text) = link_pair(router, 3600)?;
    link(&site, &link_text, west_port)?;
    for ns in ["east", "west"] {
        let killed = Instant::now();
        sigkill(&site, ns)?;
        wait("a request answered through the link again", || {
            round_trip(west_port, b"after the kill").ok()
        })
        .map_err(|e| format!("{e} (after killing {ns})\n{}", site.tail_log()))?;
        site.wait_status("west", "Link", "link-east", "Ready")?;
        site.wait_status("west", "Listener", "backend", "Ready")?;
        println!(
            "  {ns} SIGKILLed -> answered through the link again in {:.0} ms",
            ms(killed.elapsed())
        );
    }
    sites_in_network(&site, 2)
}

fn serial_of(path: &Path) -> Option<String> {
    let pem = std::fs::read_to_string(path).ok()?;
    let info = skupperd::certs::leaf_info(pem.as_bytes()).ok()?;
    Some(info.serial)
}

/// East's link-access certificate re-issued (its files removed; the
/// resync re-reads runtime/ and issues it again) reaches east's router
/// through the sslProfile ordinal: the open connection through the link
/// keeps working, no router restarts, and a new link made after west's
/// router is killed uses the new certificate.
fn link_access_rotation(router: &Path) -> Outcome {
    let (site, west_port, link_text) = link_pair(router, 1)?;
    link(&site, &link_text, west_port)?;
    let pids = (site.router_pid("east"), site.router_pid("west"));
    let mut open = TcpStream::connect(("127.0.0.1", west_port)).map_err(|e| e.to_string())?;
    echo_through(&mut open, b"before the rotation")?;
    let cert = site.home.ns("east").join("runtime/certs/east/tls.crt");
    let before = serial_of(&cert).ok_or("no east certificate")?;
    for f in ["tls.crt", "tls.key"] {
        std::fs::remove_file(site.home.ns("east").join("runtime/certs/east").join(f))
            .map_err(|e| e.to_string())?;
    }
    let after = wait("east's certificate issued again", || {
        serial_of(&cert).filter(|s| *s != before)
    })?;
    wait("east's sslProfile ordinal raised", || {
        let config =
            std::fs::read_to_string(site.home.ns("east").join("runtime/router/skrouterd.json"))
                .ok()?;
        let doc: serde_json::Value = serde_json::from_str(&config).ok()?;
        doc.as_array()?
            .iter()
            .find(|e| e[0] == "sslProfile" && e[1]["name"] == "east")
            .and_then(|e| e[1]["ordinal"].as_u64())
            .filter(|o| *o >= 1)
    })?;
    wait("the update applied to east's router", || {
        site.router_field("east", "lastChanges")?
            .as_sequence()?
            .iter()
            .any(|c| {
                c.as_str()
                    .is_some_and(|c| c.starts_with("update sslProfile east"))
            })
            .then_some(())
    })?;
    echo_through(&mut open, b"after the rotation")?;
    site.wait_status("west", "Link", "link-east", "Ready")?;
    ensure(
        (site.router_pid("east"), site.router_pid("west")) == pids,
        "a router restarted for the rotation",
    )?;
    // A new link is made with the new certificate.
    sigkill(&site, "west")?;
    flows(west_port)?;
    site.wait_status("west", "Link", "link-east", "Ready")?;
    println!("  east certificate {before} -> {after}; open connection kept, new link made");
    Ok(())
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The figures: from the Link file written in west to the first byte
/// answered through the link (20 runs: the Link removed and the Listener
/// unmatched between runs), and from a Listener added in west to it being
/// Ready when its Connector is in east (10 runs, the link up).
fn link_figures(router: &Path) -> Outcome {
    let (site, west_port, link_text) = link_pair(router, 3600)?;
    let mut to_byte = Vec::new();
    for _ in 0..20 {
        to_byte.push(link(&site, &link_text, west_port)?);
        site.remove("west", "link-east.yaml");
        wait("west's Listener unmatched", || {
            (site.listener_matched("west", "backend") == Some(false)).then_some(())
        })?;
        wait("the link gone", || {
            round_trip(west_port, b"x").is_err().then_some(())
        })?;
    }
    link(&site, &link_text, west_port)?;
    let mut to_ready = Vec::new();
    for i in 0..10 {
        let port = free_port();
        let name = format!("extra-{i}");
        let added = Instant::now();
        site.write(
            "west",
            &format!("{name}.yaml"),
            &listener_yaml(&name, "backend", port, ""),
        );
        site.wait_status("west", "Listener", &name, "Ready")?;
        to_ready.push(added.elapsed());
        round_trip(port, b"through the new listener")?;
    }
    let show = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "  link file -> first byte: p50 {:.0} ms over {} runs (ms: {})",
        ms(p50(to_byte.clone())),
        to_byte.len(),
        show(&to_byte)
    );
    println!(
        "  Listener added -> Ready (Connector in east): p50 {:.0} ms over {} runs (ms: {})",
        ms(p50(to_ready.clone())),
        to_ready.len(),
        show(&to_ready)
    );
    Ok(())
}

/// West linked to east, then switched to an edge site: skupperd restarts
/// west's router (the mode cannot change live, and status.yaml says so),
/// the Link's connector uses east's `edge` endpoint, and the request is
/// answered through the edge link.
fn edge_switch(router: &Path) -> Outcome {
    let (site, west_port, link_text) = link_pair(router, 3600)?;
    link(&site, &link_text, west_port)?;
    let pid = site.router_pid("west");
    site.write(
        "west",
        "site.yaml",
        &SITE
            .replace("NAME", "west")
            .replace("linkAccess: none", "edge: true"),
    );
    wait("west's router restarted", || {
        site.router_pid("west").filter(|p| Some(*p) != pid)
    })?;
    let message = wait("status.yaml to say why west's router restarted", || {
        let m = site.router_field("west", "message")?.as_str()?.to_string();
        m.contains("new router id or mode").then_some(m)
    })?;
    let edge_port = wait("the edge connector in skrouterd.json", || {
        let config =
            std::fs::read_to_string(site.home.ns("west").join("runtime/router/skrouterd.json"))
                .ok()?;
        let doc: serde_json::Value = serde_json::from_str(&config).ok()?;
        let c = doc
            .as_array()?
            .iter()
            .find(|e| e[0] == "connector" && e[1]["name"] == "link-east")?;
        (c[1]["role"] == "edge").then(|| c[1]["port"].as_str().map(str::to_string))?
    })?;
    flows(west_port)?;
    site.wait_status("west", "Link", "link-east", "Ready")?;
    site.wait_status("west", "Listener", "backend", "Ready")?;
    println!(
        "  west is an edge site, linked to east's edge port {edge_port}; status.yaml: {message}"
    );
    Ok(())
}

/// The podman scenario: the real router in a container made from the image
/// `SKUPPERD_TEST_ROUTER_IMAGE` names (built by hand from a real router:
/// no registry is reachable here), driven by skupperd's podman runner
/// through `podman system service` on a socket of its own.
mod podman {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// Runs the scenario and prints its line; returns whether it passed.
    pub fn run_and_report(image: &str) -> bool {
        let start = Instant::now();
        let name = "podman_container_ready_with_bytes_flowing_restart_and_removal";
        let result = std::panic::catch_unwind(|| scenario(image))
            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(&p))));
        let secs = start.elapsed().as_secs_f32();
        match &result {
            Ok(()) => println!("PASS {name} ({secs:.1} s, image {image})"),
            Err(why) => println!("FAIL {name} ({secs:.1} s, image {image}): {why}"),
        }
        result.is_ok()
    }

    /// The API service and its socket's directory; the container is
    /// removed on drop, whatever happened.
    struct Service {
        child: Child,
        _dir: tempfile::TempDir,
        container: String,
    }

    impl Drop for Service {
        fn drop(&mut self) {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", &self.container])
                .output();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn inspect(name: &str) -> Option<String> {
        let out = Command::new("podman")
            .args([
                "inspect",
                "--type",
                "container",
                "--format",
                "{{.Id}} {{.State.StartedAt}} {{.State.Running}}",
                name,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn scenario(image: &str) -> Outcome {
        let ns = format!("rr{}", std::process::id());
        let container = format!("{ns}-skupper-router");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let socket = dir.path().join("podman.sock");
        let child = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("podman system service: {e}"))?;
        let _service = Service {
            child,
            _dir: dir,
            container: container.clone(),
        };
        wait("the podman API socket", || socket.exists().then_some(()))?;

        let home = DataHome::new();
        home.write(&ns, "internal/platform.yaml", "platform: podman\n");
        home.write(
            &ns,
            "input/resources/site.yaml",
            &SITE.replace("NAME", "west"),
        );
        let port = free_port();
        home.write(
            &ns,
            "input/resources/l.yaml",
            &listener_yaml("backend", "backend", port, ""),
        );
        home.write(
            &ns,
            "input/resources/c.yaml",
            &connector_yaml("backend", "backend", echo_server()),
        );
        let config = home.path().join("skupperd.toml");
        std::fs::write(
            &config,
            format!(
                "podman_endpoint = \"{}\"\nrouter_image = \"{image}\"\nimage_pull = \"never\"\nrouter_poll_interval_ms = 200\nsite_grace_period_ms = 200\n",
                socket.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut site = Site {
            home,
            daemon: None,
            router: PathBuf::new(),
        };
        site.daemon = Some(
            Start::new(&site.home)
                .arg("--config")
                .arg(config.to_string_lossy())
                .spawn(),
        );

        site.wait_status(&ns, "Listener", "backend", "Ready")?;
        site.wait_status(&ns, "Site", "west", "Ready")?;
        flows(port)?;
        let runner = site
            .router_field(&ns, "runner")
            .and_then(|v| v.as_str().map(str::to_string));
        if runner.as_deref() != Some("podman") {
            return Err(format!("status.yaml runner is {runner:?}"));
        }
        let first = inspect(&container).ok_or("no router container")?;

        // A router mode change restarts the container; bytes flow again.
        site.write(
            &ns,
            "site.yaml",
            &format!("{}  edge: true\n", SITE.replace("NAME", "west")),
        );
        wait("the container to be restarted", || {
            let now = inspect(&container)?;
            (now != first && now.ends_with("true")).then_some(())
        })?;
        site.wait_status(&ns, "Site", "west", "Ready")?;
        site.wait_status(&ns, "Listener", "backend", "Ready")?;
        flows(port)?;

        // The Site is removed: so is the container.
        site.remove(&ns, "site.yaml");
        wait("the container to be removed", || {
            inspect(&container).is_none().then_some(())
        })?;
        site.stop();
        Ok(())
    }
}
