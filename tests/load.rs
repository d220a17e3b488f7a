//! Load: one `skupperd run` (runner none) with N namespaces of L listeners
//! each, edited continuously for a while: every edit must reach its
//! namespace's `skrouterd.json`, the outputs must end equal to a clean
//! `skupperd render` of each namespace (all but the Site's record and
//! `status.yaml`, which also say what the daemon saw of the router that
//! runner none looks for and a render never contacts), and the daemon's open file
//! descriptors and RSS must stay bounded. Prints the edit-to-file latency
//! (p50, p99, max), RSS and fds at start and end.
//!
//! `load_10_namespaces_of_10_listeners_for_10_s` runs with the other
//! tests; the full size is ignored by default:
//! `cargo test --release --test integration load_100 -- --ignored --nocapture`.
//! Latencies are printed, not asserted tightly: the bound only catches a
//! lost change.

use crate::crash::differs_from_render_except;
use crate::support::daemon::{eventually, write_by_rename, Daemon, Start};
use crate::support::rng::{self, Rng};
use crate::support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An edit not in `skrouterd.json` within this is lost.
const APPLIED_WITHIN: Duration = Duration::from_secs(20);

fn ns_name(i: usize) -> String {
    format!("ns{i:03}")
}

fn port(listener: usize, generation: u64) -> u64 {
    20_000 + (generation % 400) * 100 + listener as u64
}

fn listener_file(ns: &Path, l: usize) -> PathBuf {
    ns.join(format!("input/resources/l{l:03}.yaml"))
}

/// `(VmRSS in KiB, open fds)` of a process.
fn rss_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

/// The port of `listener/l<l>` in a `skrouterd.json` text, found as text
/// (cheaper than a parse per look).
fn port_in(config: &str, l: usize) -> Option<u64> {
    let at = config.find(&format!("\"name\": \"listener/l{l:03}\""))?;
    let rest = &config[at..];
    let p = rest.find("\"port\": \"")? + "\"port\": \"".len();
    rest[p..].split('"').next()?.parse().ok()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn load(namespaces: usize, listeners: usize, run_for: Duration) {
    let started = Instant::now();
    let home = DataHome::new();
    let mut gen: Vec<Vec<u64>> = vec![vec![0; listeners]; namespaces];
    for n in 0..namespaces {
        let name = ns_name(n);
        home.write(&name, "internal/platform.yaml", "platform: linux\n");
        home.write(
            &name,
            "input/resources/site.yaml",
            &SITE.replace("name: west", &format!("name: {name}")),
        );
        for l in 0..listeners {
            home.write(
                &name,
                &format!("input/resources/l{l:03}.yaml"),
                &listener(&format!("l{l:03}"), "127.0.0.1", &port(l, 0).to_string()),
            );
        }
    }
    let config = home.path().join("skupperd.toml");
    std::fs::write(&config, "runner = \"none\"\n").unwrap();
    let mut d: Daemon = Start::bare(&home)
        .arg("--log-level")
        .arg("info")
        .arg("--config")
        .arg(config.to_string_lossy())
        .spawn();
    d.wait_ready();
    let pid = d.child.id();
    let ns_dirs: Vec<PathBuf> = (0..namespaces).map(|n| home.ns(&ns_name(n))).collect();
    // Every namespace's first outputs, before the edits start.
    for dir in &ns_dirs {
        eventually(
            "the first skrouterd.json of every namespace",
            || {
                let c = std::fs::read_to_string(dir.join("runtime/router/skrouterd.json")).ok()?;
                (port_in(&c, listeners - 1) == Some(port(listeners - 1, 0))).then_some(())
            },
            || d.log(),
        );
    }
    let (rss_start, fds_start) = rss_and_fds(pid);

    let mut rng = Rng::new(rng::seed("load", 0x10ad_0001));
    // (namespace, listener) -> (port expected, when written).
    let mut pending: BTreeMap<(usize, usize), (u64, Instant)> = BTreeMap::new();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut edits = 0u64;
    let mut lost: Vec<String> = Vec::new();
    let edit_until = Instant::now() + run_for;
    let mut last_check = Instant::now();
    loop {
        let now = Instant::now();
        let editing = now < edit_until;
        if editing {
            // One edit of a listener with no edit in flight.
            let (n, l) = (
                rng.below(namespaces as u64) as usize,
                rng.below(listeners as u64) as usize,
            );
            if let std::collections::btree_map::Entry::Vacant(slot) = pending.entry((n, l)) {
                gen[n][l] += 1;
                let p = port(l, gen[n][l]);
                write_by_rename(
                    &listener_file(&ns_dirs[n], l),
                    &listener(&format!("l{l:03}"), "127.0.0.1", &p.to_string()),
                );
                slot.insert((p, Instant::now()));
                edits += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        } else if pending.is_empty() {
            break;
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Look for applied edits, namespace by namespace.
        if editing && last_check.elapsed() < Duration::from_millis(5) {
            continue;
        }
        last_check = Instant::now();
        let touched: Vec<usize> = {
            let mut v: Vec<usize> = pending.keys().map(|(n, _)| *n).collect();
            v.dedup();
            v
        };
        for n in touched {
            let Ok(config) =
                std::fs::read_to_string(ns_dirs[n].join("runtime/router/skrouterd.json"))
            else {
                continue;
            };
            let seen = Instant::now();
            let done: Vec<(usize, usize)> = pending
                .range((n, 0)..(n + 1, 0))
                .filter(|((_, l), (p, _))| port_in(&config, *l) == Some(*p))
                .map(|(k, _)| *k)
                .collect();
            for k in done {
                if let Some((_, at)) = pending.remove(&k) {
                    latencies.push(seen - at);
                }
            }
        }
        let stale: Vec<(usize, usize)> = pending
            .iter()
            .filter(|(_, (_, at))| at.elapsed() > APPLIED_WITHIN)
            .map(|(k, _)| *k)
            .collect();
        for (n, l) in stale {
            pending.remove(&(n, l));
            lost.push(format!("{}/l{l:03}", ns_name(n)));
        }
    }
    let (rss_end, fds_end) = rss_and_fds(pid);
    assert!(d.stop().success(), "{}", d.log());

    let mut wrong = Vec::new();
    for dir in &ns_dirs {
        // The Site's record and status.yaml also tell what the daemon saw
        // of the router (runner none still looks for one and says why it
        // does not answer); a render contacts no router. Every other file
        // must be the render's.
        let router_seen = |name: &str| name == "status.yaml" || name.starts_with("resources/Site-");
        if let Some(diff) = differs_from_render_except(dir, router_seen) {
            wrong.push(format!("{}:\n{diff}", dir.display()));
        }
    }
    latencies.sort();
    println!(
        "load {namespaces}x{listeners} for {run_for:?}: {edits} edits, {} applied; edit->skrouterd.json p50 {:?}, p99 {:?}, max {:?}; RSS {} -> {} KiB; open fds {fds_start} -> {fds_end}; whole run {:.1?}; load average {}",
        latencies.len(),
        pct(&latencies, 0.50),
        pct(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        rss_start,
        rss_end,
        started.elapsed(),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    );
    assert!(lost.is_empty(), "edits never applied: {lost:?}");
    assert!(
        wrong.is_empty(),
        "outputs differ from a render:\n{}",
        wrong.join("\n")
    );
    assert!(
        fds_end <= fds_start + 16,
        "open fds grew from {fds_start} to {fds_end}"
    );
    assert!(rss_end < 512 * 1024, "RSS at the end: {rss_end} KiB");
}

#[test]
fn load_10_namespaces_of_10_listeners_for_10_s() {
    load(10, 10, Duration::from_secs(10));
}

#[test]
#[ignore = "the full size: 100 namespaces of 100 listeners edited for 60 s (README)"]
fn load_100_namespaces_of_100_listeners_for_60_s() {
    load(100, 100, Duration::from_secs(60));
}
