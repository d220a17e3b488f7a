//! Router faults: the router (the double, started by skupperd's process
//! runner) SIGKILLed 50 times during a storm of listener and connector
//! changes, made before, while and after it is down. After each restart
//! the router's tcpListener and tcpConnector entities, as its management
//! answers them, converge to the rendered `skrouterd.json`'s (no missing
//! and no stale entity, every rendered attribute as rendered) and
//! skupperd reports the router reachable and the Site Ready again. While
//! it is down, skupperd says so before it is back, and from then on no
//! record says Ready or has a router-backed condition True (the Site's
//! `Running` included). Before skupperd has noticed, the files still say
//! what the router last showed: that is not checked (see `watch_down`).
//!
//! The process runner restarts an exited router after 1, 2, 4, 8 s
//! (doubling) and marks it Failed at its fifth exit within a minute (README
//! "The router"). So no router is killed more than three times (backoffs
//! of 1 + 2 + 4 s; one exit the test did not cause, such as another
//! process taking the management port, still stays below the limit), and
//! the 50 kills are spread over 17 namespaces of one daemon, each driven
//! by its own thread at the same time: the run lasts about one namespace's
//! three backoffs and convergences (some 15 s), not seventeen.

use crate::router_live::{free_port, serial, with_process_runner};
use crate::support::daemon::{eventually, write_by_rename, Daemon, PATIENCE};
use crate::support::rng::{self, Rng};
use crate::support::*;
use skupperd::router::{AmqpManagement, Management};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KILLS: usize = 50;
const KILLS_PER_ROUTER: usize = 3;
/// Listener ports: 100 per namespace from here.
const PORTS_FROM: u16 = 24000;

const CONNECTOR: &str = "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n";

/// Conditions the router decides (src/plan/conditions.rs): without a
/// router none of them may be True. A Site's `Configured` is not one: it
/// only says that its files are written.
fn router_backed(kind: &str, condition: &str) -> bool {
    match kind {
        "Site" => matches!(condition, "Running" | "Ready"),
        _ => matches!(condition, "Configured" | "Matched" | "Ready"),
    }
}

/// A resource of the storm.
#[derive(Clone)]
enum Res {
    Listener {
        name: String,
        port: u16,
        key: String,
    },
    Connector {
        name: String,
        host: String,
        port: u16,
        key: String,
    },
}

impl Res {
    fn text(&self) -> String {
        match self {
            Res::Listener { name, port, key } => format!(
                "{}  routingKey: {key}\n",
                listener(name, "127.0.0.1", &port.to_string())
            ),
            Res::Connector {
                name,
                host,
                port,
                key,
            } => format!(
                "{CONNECTOR}  name: {name}\nspec:\n  host: {host}\n  port: {port}\n  routingKey: {key}\n"
            ),
        }
    }

    /// The router entity's name (router.md 1.2).
    fn entity(&self) -> String {
        match self {
            Res::Listener { name, .. } => format!("listener/{name}"),
            Res::Connector { name, host, .. } => format!("connector/{name}@{host}"),
        }
    }
}

/// One namespace: its input as the test last wrote it.
struct Site {
    name: String,
    ns: PathBuf,
    rng: Rng,
    /// File name in `input/resources/` -> resource.
    files: BTreeMap<String, Res>,
    /// Listener ports in use, so no two listeners overlap (every resource
    /// stays valid, and so is rendered).
    ports: BTreeSet<u16>,
    /// This namespace's listener ports: its own range below the ephemeral
    /// ports (which any connection may hold for a while), so the routers
    /// of the namespaces never compete for one.
    port_range: std::ops::Range<u16>,
    echo: u16,
    changes: usize,
}

impl Site {
    /// A Site, and listener `backend` with a local connector to an echo
    /// server: the router opens the listener's socket, so the listener is
    /// Ready while the router runs.
    fn new(home: &DataHome, name: &str, index: u16, seed: u64) -> Site {
        home.write(name, "internal/platform.yaml", "platform: linux\n");
        home.write(name, "input/resources/site.yaml", SITE);
        let mut site = Site {
            name: name.to_string(),
            ns: home.ns(name),
            rng: Rng::new(seed),
            files: BTreeMap::new(),
            ports: BTreeSet::new(),
            port_range: (PORTS_FROM + index * 100)..(PORTS_FROM + index * 100 + 100),
            echo: echo_server(),
            changes: 0,
        };
        // One that is free now: `backend` must become Ready.
        let port = site
            .port_range
            .clone()
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .expect("a free port for listener backend");
        site.ports.insert(port);
        site.put(Res::Listener {
            name: "backend".into(),
            port,
            key: "backend".into(),
        });
        site.put(Res::Connector {
            name: "backend".into(),
            host: "127.0.0.1".into(),
            port: site.echo,
            key: "backend".into(),
        });
        site
    }

    /// A port of the range no listener of this namespace uses.
    fn listener_port(&mut self) -> u16 {
        loop {
            let r = &self.port_range;
            let port = r.start + self.rng.below(u64::from(r.end - r.start)) as u16;
            if self.ports.insert(port) {
                return port;
            }
        }
    }

    fn file_of(res: &Res) -> String {
        match res {
            Res::Listener { name, .. } => format!("l-{name}.yaml"),
            Res::Connector { name, .. } => format!("c-{name}.yaml"),
        }
    }

    /// Written by rename or in place (the daemon may read it half written:
    /// the resource then keeps serving its last accepted version).
    fn put(&mut self, res: Res) {
        let file = Site::file_of(&res);
        let path = self.ns.join("input/resources").join(&file);
        if self.rng.chance(50) {
            write_by_rename(&path, &res.text());
        } else {
            std::fs::write(&path, res.text())
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        if let Some(Res::Listener { port, .. }) = self.files.insert(file, res) {
            self.ports.remove(&port);
        }
    }

    fn remove(&mut self, file: &str) {
        let path = self.ns.join("input/resources").join(file);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
        if let Some(Res::Listener { port, .. }) = self.files.remove(file) {
            self.ports.remove(&port);
        }
    }

    fn key(&mut self) -> String {
        self.rng.pick(&["k0", "k1", "k2", "backend"]).to_string()
    }

    /// One change: a listener or connector (`backend` aside) added,
    /// edited (port, routing key, a connector's host, which renames its
    /// entity) or removed.
    fn step(&mut self) {
        self.changes += 1;
        let n = self.rng.below(4);
        let listener = self.rng.chance(50);
        let file = if listener {
            format!("l-s{n}.yaml")
        } else {
            format!("c-s{n}.yaml")
        };
        if self.files.contains_key(&file) && self.rng.chance(30) {
            self.remove(&file);
            return;
        }
        let key = self.key();
        let res = if listener {
            // The old port is given back by `put`.
            let port = self.listener_port();
            Res::Listener {
                name: format!("s{n}"),
                port,
                key,
            }
        } else {
            let host = self.rng.pick(&["127.0.0.1", "localhost"]).to_string();
            let port = if self.rng.chance(50) {
                self.echo
            } else {
                free_port()
            };
            Res::Connector {
                name: format!("s{n}"),
                host,
                port,
                key,
            }
        };
        self.put(res);
    }

    /// The record files the input asks for, sorted.
    fn record_files(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .files
            .values()
            .map(|r| match r {
                Res::Listener { name, .. } => format!("Listener-{name}.yaml"),
                Res::Connector { name, .. } => format!("Connector-{name}.yaml"),
            })
            .chain(["Site-west.yaml".to_string()])
            .collect();
        out.sort();
        out
    }

    /// The record files in `runtime/resources/`, sorted.
    fn records_on_disk(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.ns.join("runtime/resources")) else {
            return Vec::new();
        };
        let mut out: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        out.sort();
        out
    }

    /// The entity names the input asks for.
    fn wanted(&self) -> BTreeSet<String> {
        self.files.values().map(Res::entity).collect()
    }

    fn read(&self, rel: &str) -> Option<yaml_serde::Value> {
        let text = std::fs::read_to_string(self.ns.join(rel)).ok()?;
        yaml_serde::from_str(&text).ok()
    }

    /// `router.reachable` of `runtime/status.yaml`.
    fn reachable(&self) -> Option<bool> {
        self.read("runtime/status.yaml")?
            .get("router")?
            .get("reachable")?
            .as_bool()
    }

    fn management_port(&self) -> Option<u16> {
        self.read("runtime/status.yaml")?
            .get("router")?
            .get("managementPort")?
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
    }

    /// The status and router-backed condition statuses of a record.
    fn statuses(record: &yaml_serde::Value) -> (String, String, Vec<(String, String)>) {
        let kind = record
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string();
        let status = record.get("status");
        let overall = status
            .and_then(|s| s.get("status"))
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_string();
        let conditions = status
            .and_then(|s| s.get("conditions"))
            .and_then(|c| c.as_sequence())
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| {
                        let t = c.get("type")?.as_str()?;
                        let s = c.get("status")?.as_str()?;
                        router_backed(&kind, t).then(|| (t.to_string(), s.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        (kind, overall, conditions)
    }

    /// Every record in `runtime/resources/`, parsed.
    fn records(&self) -> Vec<(String, yaml_serde::Value)> {
        let dir = self.ns.join("runtime/resources");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            // Records are replaced by rename: a read never sees half of one.
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let value = yaml_serde::from_str(&text).unwrap_or_else(|err| {
                panic!("{}: runtime/resources/{name}: {err}\n{text}", self.name)
            });
            out.push((name, value));
        }
        out
    }
}

/// Whether something accepts connections on the management port: a
/// router that serves management (the double listens only once it has
/// loaded its config). Refused means no router skupperd could talk to.
fn serving(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

/// The router double of namespace `ns`, found by its config path.
fn router_pid(home: &DataHome, ns: &str) -> Option<i32> {
    let needle = home
        .ns(ns)
        .join("runtime/router/skrouterd.json")
        .to_string_lossy()
        .into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        (text.contains("skrouterd-double") && text.contains(&needle)).then_some(pid)
    })
}

/// Whether `pid` is still running: not gone, not a zombie. (A process
/// being killed loses its cmdline before it closes its sockets; a zombie
/// has closed them.)
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

fn sigkill(pid: i32) {
    let p = rustix::process::Pid::from_raw(pid).expect("a positive pid");
    rustix::process::kill_process(p, rustix::process::Signal::KILL)
        .unwrap_or_else(|e| panic!("SIGKILL {pid}: {e}"));
}

/// The tcpListeners and tcpConnectors of the rendered `skrouterd.json`,
/// by name, with their attributes; `None` while it does not parse.
fn rendered(ns: &Path) -> Option<BTreeMap<String, serde_json::Map<String, serde_json::Value>>> {
    let text = std::fs::read_to_string(ns.join("runtime/router/skrouterd.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(
        doc.as_array()?
            .iter()
            .filter(|e| e[0] == "tcpListener" || e[0] == "tcpConnector")
            .filter_map(|e| {
                let attrs = e[1].as_object()?.clone();
                Some((attrs.get("name")?.as_str()?.to_string(), attrs))
            })
            .collect(),
    )
}

/// How the router's entities differ from the rendered ones; `None` when
/// they match: the same names, and every rendered attribute as rendered.
fn table_difference(
    rendered: &BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    router: &BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
) -> Option<String> {
    let missing: Vec<&String> = rendered
        .keys()
        .filter(|n| !router.contains_key(*n))
        .collect();
    let stale: Vec<&String> = router
        .keys()
        .filter(|n| !rendered.contains_key(*n))
        .collect();
    let mut out = String::new();
    if !missing.is_empty() {
        out.push_str(&format!("missing on the router: {missing:?}\n"));
    }
    if !stale.is_empty() {
        out.push_str(&format!("stale on the router: {stale:?}\n"));
    }
    for (name, attrs) in rendered {
        let Some(theirs) = router.get(name) else {
            continue;
        };
        for (k, v) in attrs {
            if theirs.get(k) != Some(v) {
                out.push_str(&format!(
                    "{name}: {k} is {:?} on the router, {v} rendered\n",
                    theirs.get(k)
                ));
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A namespace's management client, as skupperd connects.
struct Mgmt {
    rt: tokio::runtime::Runtime,
    client: Option<AmqpManagement>,
}

impl Mgmt {
    fn new() -> Mgmt {
        Mgmt {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime"),
            client: None,
        }
    }

    /// The router's tcpListeners and tcpConnectors by name, or why not.
    fn entities(
        &mut self,
        site: &Site,
    ) -> Result<BTreeMap<String, serde_json::Map<String, serde_json::Value>>, String> {
        if self.client.is_none() {
            let read = |f: &str| {
                let path = site.ns.join("runtime/certs/skupper-local-client").join(f);
                std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
            };
            let creds = skupperd::router::Credentials {
                client_cert_pem: read("tls.crt")?,
                client_key_pem: read("tls.key")?,
                ca_pem: read("ca.crt")?,
            };
            let port = site
                .management_port()
                .ok_or("no management port in runtime/status.yaml")?;
            let client = self
                .rt
                .block_on(skupperd::router::connect(port, &creds))
                .map_err(|e| format!("connecting to the router on {port}: {e}"))?;
            self.client = Some(client);
        }
        let client = self.client.as_mut().expect("connected above");
        let mut out = BTreeMap::new();
        for kind in ["tcpListener", "tcpConnector"] {
            let rows = match self.rt.block_on(client.query(kind, &[])) {
                Ok(rows) => rows,
                Err(e) => {
                    // A new router next time.
                    self.client = None;
                    return Err(format!("QUERY {kind}: {e}"));
                }
            };
            for row in rows {
                if let Some(name) = row.get("name").and_then(|n| n.as_str()) {
                    out.insert(name.to_string(), row.clone());
                }
            }
        }
        Ok(out)
    }
}

/// Waits until `skrouterd.json` holds what the input asks for, the
/// router's table matches it, and skupperd says so: `status.yaml` has the
/// router reachable, the Site and listener `backend` are Ready, and
/// `runtime/resources/` holds the records of the input's resources and no
/// other.
fn converge(d: &Daemon, site: &Site, mgmt: &mut Mgmt, what: &str) {
    converge_table(d, site, mgmt, what);
    let wanted: Vec<String> = site.record_files();
    eventually(
        &format!("{}: {what}: runtime/resources to be {wanted:?}", site.name),
        || (site.records_on_disk() == wanted).then_some(()),
        || format!("{:?}\n{}", site.records_on_disk(), d.log()),
    );
    eventually(
        &format!("{}: {what}: the router reachable in status.yaml", site.name),
        || (site.reachable() == Some(true)).then_some(()),
        || d.log(),
    );
    for (kind, name) in [("Site", "west"), ("Listener", "backend")] {
        eventually(
            &format!("{}: {what}: {kind} {name} Ready", site.name),
            || {
                let record = site.read(&format!("runtime/resources/{kind}-{name}.yaml"))?;
                (Site::statuses(&record).1 == "Ready").then_some(())
            },
            || d.log(),
        );
    }
}

/// Waits until `skrouterd.json` holds what the input asks for and the
/// router's table matches it.
fn converge_table(d: &Daemon, site: &Site, mgmt: &mut Mgmt, what: &str) {
    let last = std::cell::RefCell::new(String::new());
    let wanted = site.wanted();
    eventually(
        &format!(
            "{}: {what}: the router's entities to match skrouterd.json",
            site.name
        ),
        || {
            let Some(rendered) = rendered(&site.ns) else {
                *last.borrow_mut() = "skrouterd.json does not parse (yet)".into();
                return None;
            };
            let names: BTreeSet<String> = rendered.keys().cloned().collect();
            if names != wanted {
                *last.borrow_mut() =
                    format!("skrouterd.json has {names:?}, the input asks for {wanted:?}");
                return None;
            }
            match mgmt.entities(site) {
                Err(e) => {
                    *last.borrow_mut() = e;
                    None
                }
                Ok(router) => match table_difference(&rendered, &router) {
                    Some(diff) => {
                        *last.borrow_mut() = diff;
                        None
                    }
                    None => Some(()),
                },
            }
        },
        || format!("{}\n--- log ---\n{}", last.borrow(), d.log()),
    );
}

/// From the kill until a router serves management again: samples the
/// files while the router is down throughout (management refused before
/// and after the reads). Once `runtime/status.yaml` says the router is not
/// reachable, skupperd has seen it go (before the kill it said reachable,
/// see [`converge`]); that file is written last in a pass, so the records
/// read after it are of that pass or a later one, and none may say Ready
/// or have a router-backed condition True (the Site's `Running`
/// included). There is no such promise before: until skupperd notices,
/// the files still say what the router showed. Returns the samples taken;
/// fails if skupperd did not notice before the router came back.
fn watch_down(d: &Daemon, site: &Site, port: u16, pid: i32, kill: usize) -> usize {
    // SIGKILL is delivered at once, but the process takes a moment to go.
    eventually(
        &format!("{}: kill {kill}: router {pid} to be gone", site.name),
        || (!alive(pid)).then_some(()),
        || d.log(),
    );
    let start = Instant::now();
    let mut samples = 0;
    loop {
        assert!(
            start.elapsed() < PATIENCE,
            "{}: kill {kill}: the router did not come back within {PATIENCE:?}\n--- log ---\n{}",
            site.name,
            d.log()
        );
        if serving(port) {
            break;
        }
        let status_text =
            std::fs::read_to_string(site.ns.join("runtime/status.yaml")).unwrap_or_default();
        let status: Option<yaml_serde::Value> = yaml_serde::from_str(&status_text).ok();
        let noticed = status
            .as_ref()
            .and_then(|v| v.get("router")?.get("reachable")?.as_bool())
            == Some(false);
        // The resources of that pass: a record of one it removed is
        // deleted only after status.yaml is in place.
        let listed: BTreeSet<(String, String)> = status
            .as_ref()
            .and_then(|v| v.get("resources")?.as_sequence().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                Some((
                    r.get("kind")?.as_str()?.to_string(),
                    r.get("name")?.as_str()?.to_string(),
                ))
            })
            .collect();
        let records = site.records();
        if serving(port) {
            break;
        }
        if noticed {
            samples += 1;
            for (file, record) in &records {
                let name = record
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    .unwrap_or("");
                let (kind, overall, conditions) = Site::statuses(record);
                if !listed.contains(&(kind.clone(), name.to_string())) {
                    continue;
                }
                let wrong = if overall == "Ready" {
                    Some("says Ready".to_string())
                } else {
                    conditions
                        .iter()
                        .find(|(_, s)| s == "True")
                        .map(|(t, _)| format!("has its {kind} condition {t} True"))
                };
                if let Some(wrong) = wrong {
                    panic!(
                        "{}: kill {kill}: runtime/resources/{file} {wrong} while the router is down and status.yaml says so\n{}\n--- status.yaml ---\n{status_text}\n--- log of {} ---\n{}",
                        site.name,
                        yaml_serde::to_string(record).unwrap_or_default(),
                        site.name,
                        d.log()
                            .lines()
                            .filter(|l| l.contains(&format!("namespace={}", site.name)))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        samples > 0,
        "{}: kill {kill}: status.yaml never said the router was unreachable while it was down\n--- log ---\n{}",
        site.name,
        d.log()
    );
    samples
}

/// Kills the router of `site` `kills` times, each at a random moment of a
/// storm of 200-600 ms, and checks each restart (after up to 300 ms more of
/// changes once the new router serves). Returns the samples taken while
/// the router was down.
fn drive(home: &DataHome, d: &Daemon, site: &mut Site, kills: usize, seed: u64) -> usize {
    let mut schedule = Rng::new(seed);
    let mut mgmt = Mgmt::new();
    converge(d, site, &mut mgmt, "at the start");
    let port = site
        .management_port()
        .expect("the management port in runtime/status.yaml");
    let mut down_samples = 0;
    for kill in 1..=kills {
        let pid = eventually(
            &format!("{}: the router process", site.name),
            || router_pid(home, &site.name),
            || d.log(),
        );
        let storm_for = Duration::from_millis(schedule.between(200, 600));
        let kill_at = storm_for.mul_f64(schedule.below(1000) as f64 / 1000.0);
        let t0 = Instant::now();
        let mut killed = false;
        while t0.elapsed() < storm_for || !killed {
            if !killed && t0.elapsed() >= kill_at {
                sigkill(pid);
                killed = true;
            }
            site.step();
            // A paced storm (a schedule, not a wait).
            std::thread::sleep(Duration::from_millis(schedule.between(5, 20)));
        }
        down_samples += watch_down(d, site, port, pid, kill);
        // The new router read the config of the changes made while it was
        // down; what changes now reaches it over management only.
        let after = Duration::from_millis(schedule.below(300));
        let t1 = Instant::now();
        while t1.elapsed() < after {
            site.step();
            std::thread::sleep(Duration::from_millis(schedule.between(5, 20)));
        }
        converge(d, site, &mut mgmt, &format!("after kill {kill}"));
        let new = router_pid(home, &site.name);
        assert!(
            new.is_some_and(|p| p != pid),
            "{}: kill {kill}: a new router process (was {pid}, now {new:?})",
            site.name
        );
    }
    down_samples
}

#[test]
fn a_router_sigkilled_50_times_mid_storm_comes_back_with_exactly_the_rendered_entities() {
    let _serial = serial();
    let started = Instant::now();
    let seed = rng::seed("router_faults", 0x005e_ed0f_4a17);
    let home = DataHome::new();
    let namespaces = KILLS.div_ceil(KILLS_PER_ROUTER);
    let mut sites: Vec<(Site, usize)> = (0..namespaces)
        .map(|i| {
            let site = Site::new(
                &home,
                &format!("ns{i:02}"),
                i as u16,
                seed.wrapping_add(i as u64),
            );
            let kills = KILLS_PER_ROUTER.min(KILLS - i * KILLS_PER_ROUTER);
            (site, kills)
        })
        .collect();
    let mut d = with_process_runner(&home);
    d.wait_ready();

    let samples: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = sites
            .iter_mut()
            .enumerate()
            .map(|(i, (site, kills))| {
                let (home, d, kills) = (&home, &d, *kills);
                scope.spawn(move || drive(home, d, site, kills, seed ^ (0x100 + i as u64)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .sum()
    });

    let mut restarts = 0;
    for (site, kills) in &sites {
        let seen = site
            .read("runtime/status.yaml")
            .and_then(|s| s.get("router")?.get("restarts")?.as_u64())
            .unwrap_or(0);
        assert!(
            seen >= *kills as u64,
            "{}: {kills} kills but {seen} restarts in status.yaml",
            site.name
        );
        restarts += seen;
    }
    let changes: usize = sites.iter().map(|(s, _)| s.changes).sum();
    assert!(d.stop().success(), "{}", d.log());
    println!(
        "router_faults: {KILLS} router SIGKILLs, {restarts} restarts survived across {namespaces} namespaces in {:.1?} ({changes} input changes, {samples} status samples while down)",
        started.elapsed()
    );
}

/// The actor learns that its router died at its next poll or sync, but
/// the runner knows at once: a pass in between (here, for a change made
/// right after the exit) must not report what the dead router last
/// showed. Polling is put off for a minute so that nothing but that pass
/// talks to the router side.
#[test]
fn a_change_right_after_the_router_died_is_not_reported_against_the_dead_router() {
    let _serial = serial();
    let home = DataHome::new();
    let site = Site::new(&home, "west", 0, 1);
    let config = home.path().join("skupperd.toml");
    std::fs::write(
        &config,
        format!(
            "router_binary = \"{}\"\nrouter_poll_interval_ms = 60000\n",
            crate::router_live::double_binary().display()
        ),
    )
    .expect("writing the config");
    let d = crate::support::daemon::Start::new(&home)
        .arg("--config")
        .arg(config.to_string_lossy())
        .spawn();
    for (kind, name) in [("Site", "west"), ("Listener", "backend")] {
        eventually(
            &format!("{kind} {name} Ready"),
            || {
                let record = site.read(&format!("runtime/resources/{kind}-{name}.yaml"))?;
                (Site::statuses(&record).1 == "Ready").then_some(())
            },
            || d.log(),
        );
    }
    let pid = router_pid(&home, "west").expect("the router process");
    sigkill(pid);
    d.wait_log("router exited: killed by signal 9");
    write_by_rename(
        &site.ns.join("input/resources/late.yaml"),
        &listener("late", "127.0.0.1", "23999"),
    );
    d.wait_log("listener late: (new) -> ");
    let log = d.log();
    let late = log
        .lines()
        .find(|l| l.contains("listener late: (new) -> "))
        .unwrap_or_default();
    assert!(
        late.contains("router not reachable"),
        "{late}\n--- log ---\n{log}"
    );
    // The same pass wrote the others' records (its log lines come after
    // its files); the router is back only after its 1 s backoff.
    for (kind, name) in [("Site", "west"), ("Listener", "backend")] {
        let record = site
            .read(&format!("runtime/resources/{kind}-{name}.yaml"))
            .expect("the record");
        assert_ne!(Site::statuses(&record).1, "Ready", "{kind} {name}");
    }
}
