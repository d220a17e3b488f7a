//! Crash consistency: `skupperd run` (runner `none`, so no router is
//! needed) SIGKILLed at random moments of a storm of input changes, 300
//! times. After each kill every runtime file parses and `input/` holds
//! exactly what the test wrote; after the next start has converged, no
//! temporary file is left under `runtime/`, `input/` is untouched, and the
//! runtime outputs are what a clean `skupperd render` makes of the same
//! input and runtime identity.
//!
//! One round: start the daemon, wait for its first reconcile (READY) and
//! check the previous kill's aftermath, storm for a random 20-300 ms, then
//! SIGKILL. The schedule comes from a printed seed (`SKUPPERD_TEST_SEED`
//! replays it). Converged means READY and then the outputs equal to the
//! render's (polled): `status.yaml`'s `lastRun` is no signal, since a
//! restart whose first pass finds everything current writes nothing.
//! Whole runtime trees are compared (modes too), not only `skrouterd.json`
//! and the records; the fields left out are named at
//! [`comparable_runtime`].

use crate::support::daemon::{eventually, write_by_rename, Daemon, Start};
use crate::support::rng::{self, Rng};
use crate::support::*;
use rustix::process::Signal;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KILLS: usize = 300;

/// Listener names the storm draws from (`l00`..): enough that adds,
/// edits and removes all happen, few enough that ports collide now and
/// then (an Error that keeps serving the last accepted version).
const NAMES: u64 = 24;
const PORTS: u64 = 30;
const FIRST_PORT: u64 = 21000;

/// What a temporary file or staged tree of `store::fsio` is called: the
/// target's name, hidden, with this suffix.
const TEMP_SUFFIX: &str = ".skupperd-tmp";

/// The Site, as the storm edits it now and then (router mode and logging
/// both change `skrouterd.json`).
fn site(variant: u64) -> String {
    match variant {
        0 => SITE.to_string(),
        1 => format!("{SITE}spec:\n  edge: true\n"),
        _ => format!("{SITE}spec:\n  settings:\n    routerLogging: debug\n"),
    }
}

/// The input the test writes, and what it last wrote to each file.
struct Storm {
    ns: PathBuf,
    rng: Rng,
    /// Path relative to the namespace -> bytes.
    files: BTreeMap<String, String>,
    changes: usize,
}

impl Storm {
    fn new(ns: PathBuf, seed: u64) -> Storm {
        let mut storm = Storm {
            ns,
            rng: Rng::new(seed),
            files: BTreeMap::new(),
            changes: 0,
        };
        storm.write("input/resources/site.yaml", site(0));
        for i in 0..NAMES / 2 {
            let name = format!("l{i:02}");
            let text = listener(&name, "127.0.0.1", &(FIRST_PORT + i).to_string());
            storm.write(&format!("input/resources/{name}.yaml"), text);
        }
        storm
    }

    /// Writes by rename (a careful tool) or in place (truncate and write:
    /// the daemon may read it half written).
    fn write(&mut self, rel: &str, text: String) {
        let path = self.ns.join(rel);
        if self.rng.chance(50) {
            write_by_rename(&path, &text);
        } else {
            std::fs::write(&path, &text)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        self.files.insert(rel.to_string(), text);
    }

    fn listener_text(&mut self, name: &str) -> String {
        let host = *self.rng.pick(&["127.0.0.1", "0.0.0.0"]);
        let port = (FIRST_PORT + self.rng.below(PORTS)).to_string();
        let mut text = listener(name, host, &port);
        if self.rng.chance(30) {
            text.push_str(&format!("  routingKey: key{}\n", self.rng.below(4)));
        }
        text
    }

    /// One change: a Site edit now and then, else a listener added, edited
    /// or removed.
    fn step(&mut self) {
        self.changes += 1;
        if self.rng.chance(4) {
            let text = site(self.rng.below(3));
            self.write("input/resources/site.yaml", text);
            return;
        }
        let name = format!("l{:02}", self.rng.below(NAMES));
        let rel = format!("input/resources/{name}.yaml");
        if self.files.contains_key(&rel) && self.rng.chance(30) {
            let path = self.ns.join(&rel);
            std::fs::remove_file(&path)
                .unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
            self.files.remove(&rel);
        } else {
            let text = self.listener_text(&name);
            self.write(&rel, text);
        }
    }

    /// `input/` holds exactly what the test wrote.
    fn check_input(&self, when: &str) {
        let found: BTreeMap<String, String> = snapshot(&self.ns.join("input"))
            .into_iter()
            .map(|(rel, (bytes, ..))| {
                (
                    format!("input/{}", rel.display()),
                    String::from_utf8_lossy(&bytes).into_owned(),
                )
            })
            .collect();
        let wrote: BTreeMap<String, String> = self
            .files
            .iter()
            .filter(|(rel, _)| rel.starts_with("input/"))
            .map(|(rel, text)| (rel.clone(), text.clone()))
            .collect();
        assert!(
            found == wrote,
            "{when}: input/ is not what the test wrote\nfound: {found:#?}\nwrote: {wrote:#?}"
        );
    }
}

/// Whether a path (relative) is, or is inside, a temporary of skupperd.
fn is_temporary(rel: &Path) -> bool {
    rel.components()
        .any(|c| c.as_os_str().to_string_lossy().ends_with(TEMP_SUFFIX))
}

/// Every temporary of skupperd in the namespace directory (files, and
/// staged trees as a whole: a cold start stages all of `runtime/` beside
/// it as `.runtime.skupperd-tmp`).
fn temporaries(ns: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
                out.push(p);
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, out);
            }
        }
    }
    walk(ns, &mut out);
    out.sort();
    out
}

/// Every runtime file that is not a temporary parses as what its name
/// says: JSON, YAML, or PEM for certificates and keys.
fn check_runtime_parses(runtime: &Path, when: &str) {
    for (rel, (bytes, ..)) in snapshot(runtime) {
        if is_temporary(&rel) {
            continue;
        }
        let name = rel.to_string_lossy().into_owned();
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| panic!("{when}: runtime/{name} is not UTF-8: {e}"));
        match rel.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                    panic!("{when}: runtime/{name} does not parse: {e}\n{text}");
                }
            }
            Some("yaml") => {
                if let Err(e) = yaml_serde::from_str::<yaml_serde::Value>(&text) {
                    panic!("{when}: runtime/{name} does not parse: {e}\n{text}");
                }
            }
            Some("crt" | "key") => {
                let t = text.trim_end();
                assert!(
                    t.starts_with("-----BEGIN ")
                        && t.contains("\n-----END ")
                        && t.ends_with("-----"),
                    "{when}: runtime/{name} is not whole PEM:\n{text}"
                );
            }
            _ => panic!("{when}: unexpected runtime file runtime/{name}"),
        }
    }
}

/// Copies a namespace directory, skipping what vanishes meanwhile (the
/// daemon may be renaming).
fn copy_namespace(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap_or_else(|e| panic!("{}: {e}", dst.display()));
    let Ok(entries) = std::fs::read_dir(src) else {
        return;
    };
    for e in entries.flatten() {
        let to = dst.join(e.file_name());
        match e.file_type() {
            Ok(t) if t.is_dir() => copy_namespace(&e.path(), &to),
            Ok(_) => match std::fs::copy(e.path(), &to) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => panic!("copying {}: {err}", e.path().display()),
            },
            Err(_) => {}
        }
    }
}

/// The runtime files (temporaries aside) with their mode and contents,
/// as compared: paths into the namespace directory `ns` written as
/// `<ns>` (the sslProfiles of `skrouterd.json` name their files by
/// absolute path, and the copy lives elsewhere), and in `status.yaml` two
/// fields about the last pass that wrote something dropped:
/// `reconcile.lastRun` (when it ran) and `reconcile.trigger` (why: a pass
/// that changes nothing writes nothing, so after a restart the daemon's
/// file keeps the killed daemon's `input` where a render says `startup`).
fn comparable_runtime(ns: &Path) -> BTreeMap<String, (u32, String)> {
    let prefix = ns.to_string_lossy().into_owned();
    snapshot(&ns.join("runtime"))
        .into_iter()
        .filter(|(rel, _)| !is_temporary(rel))
        .map(|(rel, (bytes, mode, ..))| {
            let name = rel.to_string_lossy().into_owned();
            let mut text = String::from_utf8_lossy(&bytes).replace(&prefix, "<ns>");
            if name == "status.yaml" {
                if let Ok(mut doc) = yaml_serde::from_str::<yaml_serde::Value>(&text) {
                    if let Some(reconcile) =
                        doc.get_mut("reconcile").and_then(|r| r.as_mapping_mut())
                    {
                        reconcile.remove("lastRun");
                        reconcile.remove("trigger");
                    }
                    text = yaml_serde::to_string(&doc).unwrap_or(text);
                }
            }
            (name, (mode, text))
        })
        .collect()
}

/// `None` when the daemon's runtime equals what `skupperd render` makes of
/// a copy of the namespace (input, runtime identity and all), else what
/// differs.
pub(crate) fn differs_from_render(ns: &Path) -> Option<String> {
    differs_from_render_except(ns, |_| false)
}

/// [`differs_from_render`] for the runtime files whose name (relative to
/// `runtime/`) `skip` does not accept.
pub(crate) fn differs_from_render_except(ns: &Path, skip: impl Fn(&str) -> bool) -> Option<String> {
    let copy_home = tempfile::tempdir().expect("tempdir");
    let name = ns.file_name().unwrap_or(std::ffi::OsStr::new("west"));
    let copy = copy_home.path().join("namespaces").join(name);
    copy_namespace(ns, &copy);
    let mut ours = comparable_runtime(ns);
    ours.retain(|name, _| !skip(name));
    let out = skupperd()
        .arg("render")
        .arg(&copy)
        .output()
        .expect("running skupperd render");
    // 1 is "rendered, with errors in the input" (colliding ports).
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Some(format!(
            "render of the copy failed: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut theirs = comparable_runtime(&copy);
    theirs.retain(|name, _| !skip(name));
    if ours == theirs {
        return None;
    }
    let mut diff = String::new();
    for name in ours
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (ours.get(name), theirs.get(name));
        match (a, b) {
            (Some(a), Some(b)) if a != b => diff.push_str(&format!(
                "--- runtime/{name} differs:\n{}",
                first_difference(a, b)
            )),
            (Some(_), None) => {
                diff.push_str(&format!("--- runtime/{name}: only the daemon has it\n"))
            }
            (None, Some(_)) => {
                diff.push_str(&format!("--- runtime/{name}: only the render has it\n"))
            }
            _ => {}
        }
    }
    Some(diff)
}

/// Where two versions of a file part: the mode, or the first differing
/// line with a little context.
fn first_difference(daemon: &(u32, String), render: &(u32, String)) -> String {
    if daemon.0 != render.0 {
        return format!("mode {:o} (daemon) vs {:o} (render)\n", daemon.0, render.0);
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (daemon.1.lines().collect(), render.1.lines().collect());
    let at = (0..a.len().max(b.len()))
        .find(|i| a.get(*i) != b.get(*i))
        .unwrap_or(0);
    let from = at.saturating_sub(3);
    let show = |lines: &[&str]| {
        lines
            .iter()
            .skip(from)
            .take(at - from + 4)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "daemon, from line {}:\n{}\nrender:\n{}\n",
        from + 1,
        show(&a),
        show(&b)
    )
}

/// After a restart: the first reconcile is done (READY), then the outputs
/// settle on a clean render's, with no temporary left and `input/` as it
/// was before the start.
fn check_converged(
    d: &Daemon,
    storm: &Storm,
    input_before: &BTreeMap<PathBuf, (Vec<u8>, u32, i64, i64)>,
    round: usize,
) {
    let ns = &storm.ns;
    d.wait_ready();
    let last = RefCell::new(String::new());
    eventually(
        &format!("round {round}: runtime to equal a clean render of the same input"),
        || match differs_from_render(ns) {
            None => Some(()),
            Some(diff) => {
                *last.borrow_mut() = diff;
                None
            }
        },
        || format!("{}\n--- log ---\n{}", last.borrow(), d.log()),
    );
    let left = temporaries(ns);
    assert!(
        left.is_empty(),
        "round {round}: temporaries left after the restart converged: {left:#?}\n--- log ---\n{}",
        d.log()
    );
    check_runtime_parses(&ns.join("runtime"), &format!("round {round}, converged"));
    let input_now = snapshot(&ns.join("input"));
    assert!(
        &input_now == input_before,
        "round {round}: the restarted daemon changed input/"
    );
}

/// The namespace's management port, held by the test while it runs:
/// bound without listening, so the daemon's connection attempts are
/// refused as if no router were there, and no other site's router (of
/// another test, or another process on the machine) can take the port and
/// answer instead (its TLS failure would be in the Site's status, which
/// no render can know). `None` when something holds it already.
fn hold_management_port(ns: &Path) -> Option<tokio::net::TcpSocket> {
    let identity = std::fs::read_to_string(ns.join("runtime/identity.yaml")).ok()?;
    let port: u16 = identity
        .lines()
        .find_map(|l| l.strip_prefix("managementPort: "))?
        .trim()
        .parse()
        .ok()?;
    plain_bind(port)
}

/// A socket bound to `port` without `SO_REUSEADDR` and not listening:
/// while it exists no other socket can bind the port.
fn plain_bind(port: u16) -> Option<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(([127, 0, 0, 1], port).into()).ok()?;
    Some(socket)
}

/// Makes the daemon's pick of a new site's management port (the first
/// port from 5671 a listener can bind, `SO_REUSEADDR` and all) land on one
/// the test can hold: a port where connections of an earlier router linger
/// in TIME_WAIT can be listened on but not plainly bound, so it gets a
/// listener of the test's for the daemon to skip. Returns those listeners,
/// to keep until the daemon has picked.
fn steer_port_pick() -> Vec<std::net::TcpListener> {
    let mut skip = Vec::new();
    for port in 5671..=u16::MAX {
        let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) else {
            // Taken: the daemon skips it too.
            continue;
        };
        drop(listener);
        if plain_bind(port).is_some() {
            break;
        }
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            skip.push(listener);
        }
    }
    skip
}

struct Prepared {
    home: DataHome,
    config: PathBuf,
    storm: Storm,
    _port: tokio::net::TcpSocket,
}

/// The namespace with its first input and runtime identity (one clean
/// start and stop of the daemon), its management port held.
fn prepare(seed: u64) -> Option<Prepared> {
    let home = DataHome::new();
    home.write("west", "internal/platform.yaml", "platform: linux\n");
    let config = home.path().join("skupperd.toml");
    std::fs::write(&config, "runner = \"none\"\n").expect("writing the config");
    let storm = Storm::new(home.ns("west"), seed);
    let skipped = steer_port_pick();
    let mut d = start(&home, &config);
    d.wait_ready();
    let port = hold_management_port(&storm.ns);
    drop(skipped);
    assert!(d.stop().success(), "{}", d.log());
    Some(Prepared {
        _port: port?,
        home,
        config,
        storm,
    })
}

fn start(home: &DataHome, config: &Path) -> Daemon {
    Start::new(home)
        .arg("--config")
        .arg(config.to_string_lossy())
        .spawn()
}

#[test]
fn sigkilled_mid_storm_300_times_the_runtime_stays_whole_and_converges_to_a_clean_render() {
    let started = Instant::now();
    let seed = rng::seed("crash", 0x5eed_c4a5_0001);
    // Another data home's port when the one picked is taken meanwhile.
    let Prepared {
        home,
        config,
        mut storm,
        _port,
    } = (0..5)
        .find_map(|_| prepare(seed ^ 0x1234_5678))
        .expect("a management port that no other process holds");
    let ns = storm.ns.clone();
    let mut schedule = Rng::new(seed);

    let mut left_temporaries = 0;
    let mut input_before = snapshot(&ns.join("input"));
    for round in 0..KILLS {
        let mut d = start(&home, &config);
        check_converged(&d, &storm, &input_before, round);

        let storm_for = Duration::from_millis(schedule.between(20, 300));
        let t0 = Instant::now();
        while t0.elapsed() < storm_for {
            storm.step();
            // A paced storm: a few hundred changes, not tens of thousands.
            std::thread::sleep(Duration::from_micros(schedule.below(2000)));
        }
        // Sometimes right after the last write, sometimes once the quiet
        // window has let a pass start (a schedule, not a wait).
        std::thread::sleep(Duration::from_millis(schedule.below(40)));
        d.signal(Signal::KILL);
        let status = d.wait_exit();
        assert!(
            status.code().is_none(),
            "round {round}: killed, not {status:?}"
        );

        let when = format!("round {round}, after the kill");
        check_runtime_parses(&ns.join("runtime"), &when);
        storm.check_input(&when);
        if !temporaries(&ns).is_empty() {
            left_temporaries += 1;
        }
        input_before = snapshot(&ns.join("input"));
    }
    let mut d = start(&home, &config);
    check_converged(&d, &storm, &input_before, KILLS);
    assert!(d.stop().success(), "{}", d.log());
    println!(
        "crash: {KILLS} SIGKILLs survived in {:.1?} ({} input changes; {left_temporaries} kills left temporaries for the next start)",
        started.elapsed(),
        storm.changes
    );
}
