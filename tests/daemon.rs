//! `skupperd run`: the real binary, real inotify, real files. Every wait is
//! a poll with a patience bound; nothing sleeps and then asserts.

use crate::support::daemon::*;
use crate::support::*;
use rustix::process::Signal;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

fn resources(home: &DataHome, ns: &str) -> PathBuf {
    home.ns(ns).join("input/resources")
}

fn config_path(home: &DataHome, ns: &str) -> PathBuf {
    ns_path(home, ns).join("runtime/router/skrouterd.json")
}

/// Waits until the rendered tcpListeners are exactly `want` (name, port).
fn wait_listeners(home: &DataHome, d: &Daemon, ns: &str, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(n, p)| (format!("listener/{n}"), p.to_string()))
        .collect();
    eventually(
        &format!("tcpListeners {want:?}"),
        || (tcp_listeners(home, ns).as_ref() == Some(&want)).then_some(()),
        || format!("got {:?}\n{}", tcp_listeners(home, ns), d.log()),
    );
}

fn wait_resource_files(home: &DataHome, d: &Daemon, ns: &str, want: &[&str]) {
    eventually(
        &format!("runtime/resources {want:?}"),
        || (resource_files(home, ns) == want).then_some(()),
        || format!("got {:?}\n{}", resource_files(home, ns), d.log()),
    );
}

/// The sample site, built beside `namespaces/` and renamed into it.
fn add_sample_namespace(home: &DataHome, name: &str) {
    let staging = home.path().join(format!("staging-{name}"));
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/hello-world-west"),
        &staging,
    );
    fs::rename(&staging, ns_path(home, name)).unwrap();
}

fn set_old_mtime(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(old))
        .unwrap();
}

/// Every file below `dir`, relative.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir).into_keys().collect()
}

/// Seconds since the epoch of a log line's RFC 3339 timestamp.
fn log_time(line: &str) -> f64 {
    let stamp = line.split_whitespace().next().unwrap();
    let t = time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{stamp}: {e}"));
    t.unix_timestamp_nanos() as f64 / 1e9
}

fn line_with<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line {needle:?} in\n{log}"))
}

#[test]
fn listener_files_created_edited_renamed_and_deleted_converge() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Daemon::start(&home);
    d.wait_ready();
    wait_listeners(&home, &d, "west", &[("backend", "8080")]);
    let res = resources(&home, "west");

    fs::write(res.join("db.yaml"), listener("db", "127.0.0.1", "5432")).unwrap();
    wait_listeners(&home, &d, "west", &[("backend", "8080"), ("db", "5432")]);
    wait_resource_files(
        &home,
        &d,
        "west",
        &[
            "Listener-backend.yaml",
            "Listener-db.yaml",
            "Site-west.yaml",
        ],
    );

    // Edited in place (truncate and write).
    fs::write(res.join("db.yaml"), listener("db", "127.0.0.1", "6543")).unwrap();
    wait_listeners(&home, &d, "west", &[("backend", "8080"), ("db", "6543")]);

    // Moved into a new sub-folder: the same resource, now from another file.
    fs::create_dir(res.join("sub")).unwrap();
    fs::rename(res.join("db.yaml"), res.join("sub/db.yml")).unwrap();
    eventually(
        "the record names the new source file",
        || {
            fs::read_to_string(ns_path(&home, "west").join("runtime/resources/Listener-db.yaml"))
                .ok()
                .filter(|t| t.contains("skupperd.io/source: input/resources/sub/db.yml"))
        },
        || d.log(),
    );
    wait_listeners(&home, &d, "west", &[("backend", "8080"), ("db", "6543")]);

    // Renamed to a name that is not input: the listener goes.
    fs::rename(res.join("sub/db.yml"), res.join("sub/db.yml.bak")).unwrap();
    wait_listeners(&home, &d, "west", &[("backend", "8080")]);
    wait_resource_files(
        &home,
        &d,
        "west",
        &["Listener-backend.yaml", "Site-west.yaml"],
    );

    // Deleted.
    fs::remove_file(res.join("Listener-backend.yaml")).unwrap();
    wait_listeners(&home, &d, "west", &[]);
    wait_resource_files(&home, &d, "west", &["Site-west.yaml"]);
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn vim_and_rename_saves_are_applied() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Daemon::start(&home);
    d.wait_ready();
    let res = resources(&home, "west");
    let file = res.join("Listener-backend.yaml");

    // vim (backupcopy=no): probe file, swap file, original renamed to the
    // backup, new file written, backup removed.
    fs::write(res.join("4913"), "").unwrap();
    fs::remove_file(res.join("4913")).unwrap();
    fs::write(res.join(".Listener-backend.yaml.swp"), "swap").unwrap();
    fs::rename(&file, res.join("Listener-backend.yaml~")).unwrap();
    let mut f = File::create(&file).unwrap();
    f.write_all(listener("backend", "127.0.0.1", "8181").as_bytes())
        .unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::remove_file(res.join("Listener-backend.yaml~")).unwrap();
    fs::remove_file(res.join(".Listener-backend.yaml.swp")).unwrap();
    wait_listeners(&home, &d, "west", &[("backend", "8181")]);

    // A temporary file renamed over the original.
    write_by_rename(&file, &listener("backend", "127.0.0.1", "8282"));
    wait_listeners(&home, &d, "west", &[("backend", "8282")]);
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn certificate_bundles_added_and_changed_reach_runtime() {
    let home = DataHome::new();
    home.sample("west");
    home.write(
        "west",
        "input/resources/web.yaml",
        &format!(
            "{}  tlsCredentials: web\n",
            listener("web", "0.0.0.0", "8443")
        ),
    );
    let mut d = Daemon::start(&home);
    d.wait_ready();
    let runtime_cert = ns_path(&home, "west").join("runtime/certs/web/tls.crt");
    let generated = fs::read_to_string(&runtime_cert).unwrap();

    let certs = home.ns("west").join("input/certs/web");
    let install = |sans: &str| -> String {
        let ck = rcgen::generate_simple_self_signed(vec![sans.to_string()]).unwrap();
        fs::create_dir_all(&certs).unwrap();
        let key = certs.join(".tls.key.tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        f.write_all(ck.signing_key.serialize_pem().as_bytes())
            .unwrap();
        drop(f);
        fs::rename(&key, certs.join("tls.key")).unwrap();
        write_by_rename(&certs.join("tls.crt"), &ck.cert.pem());
        ck.cert.pem()
    };

    let first = install("web.example");
    assert_ne!(first, generated);
    eventually(
        "the added bundle is copied to runtime/certs/web",
        || (fs::read_to_string(&runtime_cert).ok()? == first).then_some(()),
        || d.log(),
    );
    let second = install("web2.example");
    eventually(
        "the changed bundle is copied to runtime/certs/web",
        || (fs::read_to_string(&runtime_cert).ok()? == second).then_some(()),
        || d.log(),
    );
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn input_resources_deleted_and_recreated_converges_both_ways() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Start::new(&home)
        .arg("--site-grace-period-ms")
        .arg("300")
        .spawn();
    d.wait_ready();
    let res = resources(&home, "west");
    let saved = tempfile::tempdir().unwrap();
    copy_tree(&res, saved.path());

    fs::remove_dir_all(&res).unwrap();
    eventually(
        "runtime cleared",
        || {
            (!config_path(&home, "west").exists() && resource_files(&home, "west").is_empty())
                .then_some(())
        },
        || d.log(),
    );
    assert!(ns_path(&home, "west")
        .join("runtime/identity.yaml")
        .is_file());

    copy_tree(saved.path(), &res);
    wait_listeners(&home, &d, "west", &[("backend", "8080")]);
    wait_resource_files(
        &home,
        &d,
        "west",
        &["Listener-backend.yaml", "Site-west.yaml"],
    );
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn a_burst_of_1000_listener_files_is_applied_in_a_handful_of_reconciles() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Daemon::start(&home);
    d.wait_ready();
    // Written beside the namespaces first, so that the burst itself is
    // 1,000 renames into input/resources, as fast as one process can.
    let staging = home.path().join("staging");
    fs::create_dir(&staging).unwrap();
    for i in 0..1000 {
        fs::write(
            staging.join(format!("l{i:04}.yaml")),
            listener(&format!("l{i:04}"), "127.0.0.1", &(20000 + i).to_string()),
        )
        .unwrap();
    }
    let before = d.count("reconcile pass");
    let res = resources(&home, "west");
    for i in 0..1000 {
        let name = format!("l{i:04}.yaml");
        fs::rename(staging.join(&name), res.join(&name)).unwrap();
    }
    eventually(
        "1001 tcpListeners and records",
        || {
            let n = tcp_listeners(&home, "west")?.len();
            (n == 1001 && resource_files(&home, "west").len() == 1002).then_some(())
        },
        || {
            format!(
                "{:?} listeners, {} records\n{}",
                tcp_listeners(&home, "west").map(|l| l.len()),
                resource_files(&home, "west").len(),
                d.log()
            )
        },
    );
    // The pass is logged just after its writes.
    d.wait_log("of 1002 input files parsed");
    let passes = d.count("reconcile pass") - before;
    let log = d.log();
    eprintln!("{passes} reconcile(s) for a burst of 1000 files");
    assert!(
        (1..=5).contains(&passes),
        "{passes} reconciles for one burst:\n{log}"
    );
    let status = home.read("west", "runtime/status.yaml");
    assert!(status.contains("Pending: 1002"), "{status}");
    assert!(d.stop().success(), "{log}");
}

#[test]
fn removing_the_site_clears_runtime_after_the_grace_period_and_keeps_input() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Start::new(&home)
        .arg("--site-grace-period-ms")
        .arg("1500")
        .spawn();
    d.wait_ready();
    let ns = ns_path(&home, "west");
    let identity = fs::read(ns.join("runtime/identity.yaml")).unwrap();
    let issuers = all_files(&ns.join("runtime/issuers"));
    assert!(!issuers.is_empty());

    fs::remove_file(resources(&home, "west").join("Site-west.yaml")).unwrap();
    let input_after_removal = snapshot(&ns.join("input"));
    eventually(
        "runtime cleared",
        || {
            (!config_path(&home, "west").exists() && resource_files(&home, "west").is_empty())
                .then_some(())
        },
        || d.log(),
    );
    let log = d.log();
    let held = log_time(line_with(
        &log,
        "no active Site: runtime/ is cleared in 1500 ms",
    ));
    let cleared = log_time(line_with(&log, "no active Site for 1500 ms: clearing"));
    assert!(
        cleared - held >= 1.5,
        "cleared {:.3} s after the Site went:\n{log}",
        cleared - held
    );
    // The site's identity stays; input is untouched.
    assert_eq!(
        fs::read(ns.join("runtime/identity.yaml")).unwrap(),
        identity
    );
    assert_eq!(all_files(&ns.join("runtime/issuers")), issuers);
    assert_eq!(snapshot(&ns.join("input")), input_after_removal);
    let status = fs::read_to_string(ns.join("runtime/status.yaml")).unwrap();
    assert!(status.contains("no Site in input/resources"), "{status}");
    assert!(d.stop().success(), "{log}");
}

#[test]
fn a_site_rewritten_in_place_clears_nothing() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Daemon::start(&home);
    d.wait_ready();
    let site = resources(&home, "west").join("Site-west.yaml");
    let text = fs::read(&site).unwrap();
    let config = fs::read(config_path(&home, "west")).unwrap();

    // Truncate, and let the daemon see the empty file.
    drop(
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&site)
            .unwrap(),
    );
    d.wait_log("no active Site: runtime/ is cleared in 2000 ms");
    let passes = d.count("reconcile pass");
    // Then write the content back into the same file.
    let mut f = OpenOptions::new().write(true).open(&site).unwrap();
    f.write_all(&text).unwrap();
    drop(f);
    // The next applied pass sees the Site again, which ends the grace.
    d.wait_count("reconcile pass", passes + 1);
    let log = d.log();
    assert!(!log.contains("clearing what runtime/"), "{log}");
    assert_eq!(fs::read(config_path(&home, "west")).unwrap(), config);
    assert_eq!(
        resource_files(&home, "west"),
        ["Listener-backend.yaml", "Site-west.yaml"]
    );
    assert!(d.stop().success(), "{log}");
}

#[test]
fn a_second_daemon_on_the_same_data_home_exits_1() {
    let home = DataHome::new();
    home.sample("west");
    let mut a = Daemon::start(&home);
    let mut b = Daemon::start(&home);
    let (status, a_lost) = eventually(
        "one of the two daemons to exit",
        || match (a.child.try_wait().unwrap(), b.child.try_wait().unwrap()) {
            (Some(status), None) => Some((status, true)),
            (None, Some(status)) => Some((status, false)),
            (Some(_), Some(_)) => panic!("both exited:\n{}\n{}", a.log(), b.log()),
            (None, None) => None,
        },
        String::new,
    );
    let (loser, winner) = if a_lost { (&a, &mut b) } else { (&b, &mut a) };
    let loser_log = loser.log();
    assert_eq!(status.code(), Some(1), "{loser_log}");
    assert!(
        loser_log.contains("another skupperd or skupper controller holds")
            && loser_log.contains("controller.lock"),
        "{loser_log}"
    );
    winner.wait_ready();
    assert!(winner.stop().success(), "{}", winner.log());
}

#[test]
fn sighup_mid_burst_reloads_the_config_and_converges() {
    let home = DataHome::new();
    home.sample("west");
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("config.toml");
    let base = "log_level = \"info,skupperd::actor=debug\"\n";
    fs::write(&cfg, format!("{base}quiet_window_ms = 20\n")).unwrap();
    let notify = NotifySocket::bind(|_| {});
    let mut d = Start::bare(&home)
        .arg("--config")
        .arg(cfg.to_str().unwrap())
        .env("NOTIFY_SOCKET", notify.path.to_str().unwrap())
        .spawn();
    notify.wait_for("READY=1", 1);

    let res = resources(&home, "west");
    let writer = burst_under_way(res.clone(), "h", 300, 30000, 50);
    fs::write(
        &cfg,
        format!("{base}quiet_window_ms = 30\ndefault_platform = \"docker\"\n"),
    )
    .unwrap();
    d.signal(Signal::HUP);
    notify.wait_for("RELOADING=1", 1);
    notify.wait_for("READY=1", 2);
    writer.join().unwrap();
    eventually(
        "301 tcpListeners",
        || (tcp_listeners(&home, "west")?.len() == 301).then_some(()),
        || d.log(),
    );
    let reloading = notify.positions("RELOADING=1");
    let ready = notify.positions("READY=1");
    assert_eq!(reloading.len(), 1, "{:#?}", notify.messages());
    assert!(
        ready[0] < reloading[0] && reloading[0] < ready[1],
        "{:#?}",
        notify.messages()
    );
    let log = d.log();
    assert!(
        log.contains("configuration: quiet_window_ms: 20 -> 30"),
        "{log}"
    );
    assert!(
        log.contains("configuration: default_platform: podman -> docker needs a restart"),
        "{log}"
    );
    assert!(log.contains("trigger sighup"), "{log}");
    assert!(d.stop().success(), "{log}");
}

/// Starts writing `count` listener files `<prefix>NNN.yaml` by rename on
/// another thread and returns once `started` of them are in place.
fn burst_under_way(
    res: std::path::PathBuf,
    prefix: &'static str,
    count: usize,
    first_port: usize,
    started: usize,
) -> std::thread::JoinHandle<()> {
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = written.clone();
        std::thread::spawn(move || {
            for i in 0..count {
                write_by_rename(
                    &res.join(format!("{prefix}{i:03}.yaml")),
                    &listener(
                        &format!("{prefix}{i:03}"),
                        "127.0.0.1",
                        &(first_port + i).to_string(),
                    ),
                );
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    eventually(
        "the burst to be under way",
        || (written.load(Ordering::SeqCst) >= started).then_some(()),
        String::new,
    );
    writer
}

#[test]
fn sigterm_mid_burst_exits_0_and_leaves_no_torn_or_temporary_files() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Daemon::start(&home);
    d.wait_ready();
    let res = resources(&home, "west");
    let writer = burst_under_way(res.clone(), "t", 400, 40000, 100);
    d.signal(Signal::TERM);
    let status = d.wait_exit();
    writer.join().unwrap();
    let log = d.log();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("stopped"), "{log}");

    let runtime = ns_path(&home, "west").join("runtime");
    for (path, (bytes, _, _, _)) in snapshot(&runtime) {
        let name = path.to_string_lossy().into_owned();
        assert!(
            !name.contains("skupperd-tmp"),
            "temporary file left: {name}"
        );
        let text = String::from_utf8(bytes).unwrap();
        if name.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{name} is torn: {e}"));
        } else if name.ends_with(".yaml") {
            yaml_serde::from_str::<yaml_serde::Value>(&text)
                .unwrap_or_else(|e| panic!("{name} is torn: {e}"));
        }
    }
}

#[test]
fn sd_notify_reports_ready_after_the_files_status_watchdog_and_stopping() {
    let home = DataHome::new();
    home.sample("west");
    let config = config_path(&home, "west");
    let status_file = ns_path(&home, "west").join("runtime/status.yaml");
    let files_at_ready: Arc<Mutex<Option<bool>>> = Arc::default();
    let seen = files_at_ready.clone();
    let notify = NotifySocket::bind(move |m| {
        let mut seen = seen.lock().unwrap();
        if m.contains("READY=1") && seen.is_none() {
            *seen = Some(config.is_file() && status_file.is_file());
        }
    });
    let mut d = Start::new(&home)
        .env("NOTIFY_SOCKET", notify.path.to_str().unwrap())
        .env("WATCHDOG_USEC", "400000")
        .spawn();
    notify.wait_for("READY=1", 1);
    assert_eq!(*files_at_ready.lock().unwrap(), Some(true));
    notify.wait_for("WATCHDOG=1", 2);
    notify.wait_for("STATUS=", 1);
    let status = notify
        .messages()
        .into_iter()
        .rfind(|m| m.starts_with("STATUS="))
        .unwrap();
    assert_eq!(
        status,
        "STATUS=1 namespace, 2 resources (0 Ready, 2 Pending, 0 Error), 0 problems (0 errors, 0 warnings)\n"
    );

    assert!(d.stop().success(), "{}", d.log());
    notify.wait_for("STOPPING=1", 1);
    let messages = notify.messages();
    assert_eq!(
        messages.last().map(String::as_str),
        Some("STOPPING=1\n"),
        "{messages:#?}"
    );
    assert_eq!(notify.positions("STOPPING=1").len(), 1, "{messages:#?}");
    assert_eq!(notify.positions("READY=1").len(), 1, "{messages:#?}");
}

#[test]
fn a_bad_config_file_exits_2_naming_every_bad_key_before_any_side_effect() {
    let home = DataHome::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    fs::write(&cfg, "quiet_window_ms = \"fast\"\nbogus_key = 1\n").unwrap();
    let out = skupperd()
        .arg("run")
        .arg("--data-home")
        .arg(home.path())
        .arg("--config")
        .arg(&cfg)
        .assert()
        .code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("quiet_window_ms"), "{stderr}");
    assert!(stderr.contains("bogus_key"), "{stderr}");
    assert!(!home.path().join("namespaces/controller.lock").exists());
}

#[test]
fn unchanged_files_are_not_parsed_again() {
    let home = DataHome::new();
    home.sample("west");
    let res = resources(&home, "west");
    for i in 0..50 {
        fs::write(
            res.join(format!("p{i:02}.yaml")),
            listener(&format!("p{i:02}"), "127.0.0.1", &(50000 + i).to_string()),
        )
        .unwrap();
    }
    for entry in fs::read_dir(&res).unwrap() {
        set_old_mtime(&entry.unwrap().path());
    }
    let mut d = Daemon::start(&home);
    d.wait_ready();
    d.wait_log("reconcile pass 1: trigger startup, 52 of 52 input files parsed");
    fs::write(res.join("new.yaml"), listener("new", "127.0.0.1", "51000")).unwrap();
    // Passes the router caused (it cannot start here) may come between.
    d.wait_log("trigger input, ");
    let log = d.log();
    assert!(
        line_with(&log, "trigger input, ").contains("1 of 53 input files parsed"),
        "{log}"
    );
    assert!(d.stop().success(), "{log}");
}

#[test]
fn namespaces_come_and_go_while_running() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Daemon::start(&home);
    d.wait_ready();

    // A new namespace gets an actor.
    add_sample_namespace(&home, "east");
    wait_listeners(&home, &d, "east", &[("backend", "8080")]);

    // A directory whose name is not a namespace name is warned about once.
    let bad = home.path().join("namespaces/Not_A_Name");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/hello-world-west"),
        &bad,
    );
    d.wait_log("namespaces/Not_A_Name is ignored");
    fs::write(
        bad.join("input/resources/more.yaml"),
        listener("m", "127.0.0.1", "1"),
    )
    .unwrap();

    // Deleting a namespace stops its actor; nothing re-creates it. (rm -rf
    // can race with a pass writing into the directory and fail with "not
    // empty"; like a user, try again.)
    eventually(
        "east deleted",
        || fs::remove_dir_all(ns_path(&home, "east")).ok(),
        || d.log(),
    );
    d.wait_log("namespace directory deleted: stopping its actor");
    // West still works.
    fs::write(
        resources(&home, "west").join("x.yaml"),
        listener("x", "127.0.0.1", "9999"),
    )
    .unwrap();
    wait_listeners(&home, &d, "west", &[("backend", "8080"), ("x", "9999")]);
    assert!(!ns_path(&home, "east").exists());

    // Re-created: a fresh actor.
    add_sample_namespace(&home, "east");
    wait_listeners(&home, &d, "east", &[("backend", "8080")]);
    let log = d.log();
    assert_eq!(
        log.matches("namespaces/Not_A_Name is ignored").count(),
        1,
        "{log}"
    );
    assert!(
        !bad.join("runtime").exists(),
        "nothing is written in Not_A_Name"
    );
    assert!(d.stop().success(), "{log}");
}

#[test]
fn a_namespace_that_cannot_write_retries_by_itself_and_never_stops_the_others() {
    let home = DataHome::new();
    home.sample("good");
    home.sample("bad");
    // A file where runtime/router/ must be: every write there fails.
    home.write("bad", "runtime/router", "not a directory");
    let mut d = Daemon::start(&home);
    d.wait_ready();
    d.wait_log("cannot write the outputs");
    let log = d.log();
    let line = line_with(&log, "cannot write the outputs");
    assert!(line.contains("ERROR") && line.contains("bad"), "{log}");
    d.wait_log("runtime/ still cannot be written");

    fs::write(
        resources(&home, "good").join("y.yaml"),
        listener("y", "127.0.0.1", "7777"),
    )
    .unwrap();
    wait_listeners(&home, &d, "good", &[("backend", "8080"), ("y", "7777")]);

    // Fixed by hand: the next retry converges, without an input event.
    fs::remove_file(ns_path(&home, "bad").join("runtime/router")).unwrap();
    wait_listeners(&home, &d, "bad", &[("backend", "8080")]);
    d.wait_log("runtime/ is written again after");
    assert!(!d.log().contains("namespace actor failed"), "{}", d.log());
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn the_periodic_resync_restores_a_runtime_file_removed_behind_its_back() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Start::new(&home)
        .arg("--resync-interval-s")
        .arg("1")
        .spawn();
    d.wait_ready();
    let before = fs::read(config_path(&home, "west")).unwrap();
    fs::remove_file(config_path(&home, "west")).unwrap();
    eventually(
        "skrouterd.json restored by the resync",
        || (fs::read(config_path(&home, "west")).ok()? == before).then_some(()),
        || d.log(),
    );
    d.wait_log("trigger resync");
    assert!(d.stop().success(), "{}", d.log());
}

/// Swaps two paths atomically (renameat2 RENAME_EXCHANGE).
fn exchange(a: &Path, b: &Path) {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .unwrap();
}

#[test]
fn an_unreadable_input_directory_keeps_every_output_until_it_can_be_read() {
    let home = DataHome::new();
    home.sample("west");
    let ns = ns_path(&home, "west");
    let mut d = Start::new(&home)
        .arg("--resync-interval-s")
        .arg("1")
        .spawn();
    d.wait_ready();
    wait_listeners(&home, &d, "west", &[("backend", "8080")]);
    let before = snapshot(&ns.join("runtime"));

    // A file where input/resources should be fails to list (ENOTDIR), as an
    // unreadable directory would for a non-root user. Swapped in atomically:
    // a directory that is briefly missing is no input, a different case.
    let file = ns.join("input/not-a-directory");
    fs::write(&file, "x").unwrap();
    exchange(&file, &ns.join("input/resources"));
    d.wait_log("input/resources: Not a directory");
    // Retried on every resync, logged at ERROR once.
    d.wait_count("still nothing changed", 2);
    let log = d.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot read"))
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains("namespace=west"), "{log}");
    assert!(!log.contains("no active Site"), "{log}");
    assert_eq!(before, snapshot(&ns.join("runtime")), "{log}");

    // Readable again: the next pass runs, and changes are applied.
    exchange(&file, &ns.join("input/resources"));
    d.wait_log("the namespace can be read again");
    write_by_rename(
        &resources(&home, "west").join("y.yaml"),
        &listener("y", "127.0.0.1", "7777"),
    );
    wait_listeners(&home, &d, "west", &[("backend", "8080"), ("y", "7777")]);
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn a_bad_config_on_sighup_keeps_the_running_one() {
    let home = DataHome::new();
    home.sample("west");
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("config.toml");
    fs::write(&cfg, "quiet_window_ms = 20\n").unwrap();
    let notify = NotifySocket::bind(|_| {});
    let mut d = Start::new(&home)
        .arg("--config")
        .arg(cfg.to_str().unwrap())
        .env("NOTIFY_SOCKET", notify.path.to_str().unwrap())
        .spawn();
    notify.wait_for("READY=1", 1);
    fs::write(&cfg, "quiet_window_ms = -5\nnot_a_key = true\n").unwrap();
    d.signal(Signal::HUP);
    notify.wait_for("READY=1", 2);
    let log = d.log();
    let error = &log[log.find("configuration not reloaded").unwrap()..];
    assert!(
        error.contains("quiet_window_ms: invalid value")
            && error.contains("not_a_key: unknown key"),
        "{log}"
    );
    // Still serving.
    fs::write(
        resources(&home, "west").join("z.yaml"),
        listener("z", "127.0.0.1", "7070"),
    )
    .unwrap();
    wait_listeners(&home, &d, "west", &[("backend", "8080"), ("z", "7070")]);
    assert!(d.stop().success(), "{}", d.log());
}

#[test]
fn status_changes_and_new_input_problems_are_logged_once() {
    let home = DataHome::new();
    home.sample("west");
    let mut d = Daemon::start(&home);
    d.wait_ready();
    let res = resources(&home, "west");
    fs::write(
        res.join("bad.yaml"),
        listener("bad", "127.0.0.1", "\"eighty\""),
    )
    .unwrap();
    d.wait_log("input/resources/bad.yaml:7:9: error: spec.port");
    d.wait_log("listener bad: (new) -> Error");
    // Another pass with the problem still there: not logged again.
    let passes = d.count("reconcile pass");
    fs::write(res.join("ok.yaml"), listener("ok", "127.0.0.1", "6060")).unwrap();
    wait_listeners(&home, &d, "west", &[("backend", "8080"), ("ok", "6060")]);
    d.wait_count("reconcile pass", passes + 1);
    d.wait_log("listener ok: (new) -> Pending");
    let log = d.log();
    assert_eq!(
        log.matches("bad.yaml:7:9: error: spec.port").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("listener bad: (new) -> Error").count(),
        1,
        "{log}"
    );
    let warning = line_with(&log, "bad.yaml:7:9: error: spec.port");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("file=input/resources/bad.yaml")
            || warning.contains("file=\"input/resources/bad.yaml\""),
        "{warning}"
    );
    assert!(d.stop().success(), "{log}");
}

/// `reconcile.lastRun` of a namespace's `runtime/status.yaml`.
fn last_run(home: &DataHome, ns: &str) -> Option<String> {
    let status = fs::read_to_string(ns_path(home, ns).join("runtime/status.yaml")).ok()?;
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix("lastRun: "))
        .map(|v| v.trim_matches('"').to_string())
}

#[test]
fn unreadable_certs_and_fifos_fail_only_their_users_and_later_changes_apply() {
    let home = DataHome::new();
    home.sample("west");
    let ns = ns_path(&home, "west");
    let res = resources(&home, "west");
    let mut d = Daemon::start(&home);
    d.wait_ready();
    wait_listeners(&home, &d, "west", &[("backend", "8080")]);

    // A symbolic link loop where a bundle would be, a listener naming it,
    // and FIFOs among the resources and in another bundle.
    fs::create_dir_all(ns.join("input/certs")).unwrap();
    std::os::unix::fs::symlink("loop", ns.join("input/certs/loop")).unwrap();
    mkfifo(&ns.join("input/certs/spare/tls.crt"));
    mkfifo(&res.join("pipe.yaml"));
    write_by_rename(
        &res.join("web.yaml"),
        &format!(
            "{}  tlsCredentials: loop\n",
            listener("web", "127.0.0.1", "8443")
        ),
    );
    let status = || fs::read_to_string(ns.join("runtime/status.yaml")).unwrap_or_default();
    let wanted = [
        "listener \"web\": input/certs/loop cannot be read: Too many levels of symbolic links",
        "input/resources/pipe.yaml is a FIFO: not a regular file, ignored",
        "input/certs/spare/tls.crt is a FIFO: not a regular file, ignored",
    ];
    eventually(
        "the unreadable entries reported in runtime/status.yaml",
        || wanted.iter().all(|w| status().contains(w)).then_some(()),
        || format!("{}\n{}", status(), d.log()),
    );
    d.wait_log("listener web: (new) -> Error: listener \"web\": input/certs/loop cannot be read");
    let before = last_run(&home, "west");

    // The namespace keeps reconciling: a port change is applied, and the
    // status file is that pass's, still naming what cannot be read.
    write_by_rename(
        &res.join("Listener-backend.yaml"),
        &listener("backend", "127.0.0.1", "8181"),
    );
    wait_listeners(&home, &d, "west", &[("backend", "8181")]);
    eventually(
        "a new lastRun",
        || (last_run(&home, "west") != before).then_some(()),
        || format!("{}\n{}", status(), d.log()),
    );
    let now = status();
    assert!(now.contains("result: Degraded"), "{now}");
    assert!(wanted.iter().all(|w| now.contains(w)), "{now}");
    let log = d.log();
    assert!(
        !log.contains("nothing is changed until it can be read"),
        "{log}"
    );
    assert!(d.stop().success(), "{log}");
}

#[test]
fn an_expiring_bundle_is_logged_once_a_day_not_per_pass_or_per_resource() {
    use skupperd::certs::{MemoMint, Mint};
    let home = DataHome::new();
    home.sample("west");
    // A leaf with about 35 days left: inside a 40-day window, outside the
    // default 30 days.
    let now = time::OffsetDateTime::now_utc();
    let mut mint = MemoMint::new(77);
    let ca = mint
        .issue_ca("expiring-ca", now - time::Duration::days(1))
        .unwrap();
    let leaf = mint
        .issue_leaf(
            &ca,
            "web",
            &["127.0.0.1".to_string()],
            now - time::Duration::days(5 * 365 + 1) + time::Duration::days(35),
        )
        .unwrap();
    home.write("west", "input/certs/web/tls.crt", &leaf.cert_pem);
    let key = home.write("west", "input/certs/web/tls.key", &leaf.key_pem);
    fs::set_permissions(key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for (name, port) in [("web", "8443"), ("web2", "8444")] {
        home.write(
            "west",
            &format!("input/resources/{name}.yaml"),
            &format!(
                "{}  tlsCredentials: web\n",
                listener(name, "127.0.0.1", port)
            ),
        );
    }
    let mut d = Start::new(&home)
        .arg("--renew-before-days=40")
        .arg("--resync-interval-s=1")
        .spawn();
    // The startup pass and three resyncs.
    d.wait_count("reconcile pass", 4);
    let needle = "input/certs/web/tls.crt expires on";
    assert_eq!(d.count(needle), 1, "{}", d.log());
    assert!(d.log().contains("(repeated once a day)"), "{}", d.log());
    let status = fs::read_to_string(ns_path(&home, "west").join("runtime/status.yaml")).unwrap();
    assert_eq!(
        status.matches(needle).count(),
        2,
        "one per listener: {status}"
    );
    assert!(d.stop().success(), "{}", d.log());
}
