//! Live-router benchmark: change-to-router-applied latency and the cost
//! of a drift check of unchanged listeners, at 1 and 1,000 listeners,
//! against the router double; with `SKUPPERD_TEST_SKROUTERD` naming a real
//! skrouterd, also end to end through `skupperd run` and that router
//! (file written -> the new port serves; connections through an unchanged
//! listener dropped during 100 unrelated changes).
//! Run: cargo bench --bench router

use router_double::{DoubleConfig, RouterDouble};
use skupperd::certs::{Mint, RcgenMint};
use skupperd::plan::Platform;
use skupperd::router::session::{Session, Target};
use skupperd::router::Credentials;
use std::time::{Duration, Instant};

fn config(n: usize, changed_port: u16) -> Vec<u8> {
    let mut entities =
        vec![r#"["router", {"id": "west-12345678", "mode": "interior"}]"#.to_string()];
    for i in 0..n {
        let port = if i == 0 {
            changed_port
        } else {
            20000 + i as u16
        };
        entities.push(format!(
            r#"["tcpListener", {{"name": "listener/l{i}", "address": "l{i}", "host": "127.0.0.1", "port": "{port}"}}]"#
        ));
    }
    format!("[{}]", entities.join(",")).into_bytes()
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let now = time::OffsetDateTime::now_utc();
        let mut mint = RcgenMint;
        let ca = mint.issue_ca("skupper-local-ca", now).expect("ca");
        let sans = ["127.0.0.1".to_string(), "localhost".to_string()];
        let server = mint.issue_leaf(&ca, "skupper-local-server", &sans, now).expect("server");
        let client = mint.issue_leaf(&ca, "skupper-local-client", &sans, now).expect("client");
        let sizes: Vec<usize> = std::env::var("SKUPPERD_BENCH_SIZES")
            .ok()
            .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 1_000]);
        for n in sizes {
            let double = RouterDouble::start(
                DoubleConfig::new(
                    server.cert_pem.clone().into_bytes(),
                    server.key_pem.clone().into_bytes(),
                    ca.cert_pem.clone().into_bytes(),
                )
                .expect("reference schema (set SKUPPERD_REFERENCE_DIR)"),
            )
            .await
            .expect("double");
            let mut session = Session::default();
            session.set_target(Some(Target {
                port: double.port(),
                site_id: "bench".into(),
                platform: Platform::Linux,
                credentials: Credentials {
                    client_cert_pem: client.cert_pem.clone().into_bytes(),
                    client_key_pem: client.key_pem.clone().into_bytes(),
                    ca_pem: ca.cert_pem.clone().into_bytes(),
                },
            }));
            session.set_config(&config(n, 10000));
            session.sync("t").await.expect("first sync");

            // Change-to-applied: one listener moves; the next sync makes the
            // router match.
            let mut applied = Vec::new();
            for round in 0..30u16 {
                session.set_config(&config(n, 10001 + round));
                let t = Instant::now();
                session.sync("t").await.expect("sync");
                applied.push(t.elapsed());
            }
            // Drift check: nothing changed; count what is sent.
            let before = session.counts.clone();
            let mut drift = Vec::new();
            for _ in 0..30 {
                let t = Instant::now();
                session.sync("t").await.expect("sync");
                drift.push(t.elapsed());
            }
            let sent: Vec<String> = session
                .counts
                .iter()
                .map(|(op, c)| format!("{op}={}", c - before.get(op).copied().unwrap_or(0)))
                .collect();
            println!(
                "listeners={n:>5} change_applied p50={:?} p99={:?} | drift_check p50={:?} p99={:?} ops_in_30_drift_checks: {}",
                pct(applied.clone(), 0.5),
                pct(applied, 0.99),
                pct(drift.clone(), 0.5),
                pct(drift, 0.99),
                sent.join(" ")
            );
            double.stop().await;
        }
        // SKUPPERD_BENCH_E2E_SIZES picks the end-to-end sizes (empty: none).
        let e2e: Vec<usize> = std::env::var("SKUPPERD_BENCH_E2E_SIZES")
            .ok()
            .map(|v| v.split(',').filter_map(|s| s.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 1_000]);
        for n in e2e.clone() {
            match end_to_end::run(n).await {
                Some((p50, p99, count)) => println!(
                    "listeners={n:>5} end_to_end file_written->router_applied p50={p50:?} p99={p99:?} ({count} samples)"
                ),
                None => println!("listeners={n:>5} end_to_end: gave up (see patience bounds)"),
            }
        }
        match std::env::var_os("SKUPPERD_TEST_SKROUTERD") {
            Some(router) => {
                for n in e2e {
                    match real::run(std::path::Path::new(&router), n).await {
                        Some(r) => println!(
                            "listeners={n:>5} real_router file_written->new_port_accepts p50={:?} p99={:?}, ->echoed_through_it p50={:?} p99={:?} ({} samples) | {} of {} connections through an unchanged listener dropped during {} unrelated changes",
                            r.accept_p50, r.accept_p99, r.p50, r.p99, r.samples, r.dropped, r.connections, r.changes
                        ),
                        None => println!("listeners={n:>5} real_router: gave up (see patience bounds)"),
                    }
                }
            }
            None => println!("real_router: not run (SKUPPERD_TEST_SKROUTERD is not set)"),
        }
    });
}

/// End to end through `skupperd run` (release, process runner) and a real
/// skupper-router: a listener file is rewritten with a new port; measured
/// until a TCP connection to the new port is echoed (its connector serves a
/// local echo server). Meanwhile connections through another listener stay
/// open; any that stops echoing counts as dropped.
mod real {
    use super::end_to_end::write_atomic;
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::Path;

    pub struct Result {
        /// Until the new port accepts a connection.
        pub accept_p50: Duration,
        pub accept_p99: Duration,
        /// Until bytes sent to it come back from the backend.
        pub p50: Duration,
        pub p99: Duration,
        pub samples: usize,
        pub dropped: usize,
        pub connections: usize,
        pub changes: usize,
    }

    fn yaml(kind: &str, name: &str, key: &str, port: u16) -> String {
        format!("apiVersion: skupper.io/v2alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  routingKey: {key}\n  host: 127.0.0.1\n  port: {port}\n")
    }

    fn echo_server() -> Option<u16> {
        let listener = TcpListener::bind("127.0.0.1:0").ok()?;
        let port = listener.local_addr().ok()?.port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Some(port)
    }

    fn echoes(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 4];
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .is_ok()
            && stream.write_all(b"ping").is_ok()
            && stream.read_exact(&mut buf).is_ok()
            && &buf == b"ping"
    }

    fn serves(port: u16) -> bool {
        TcpStream::connect(("127.0.0.1", port))
            .map(|mut s| echoes(&mut s))
            .unwrap_or(false)
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0)
    }

    async fn until(patience: Duration, mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while !f() {
            if start.elapsed() > patience {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    pub async fn run(router: &Path, n: usize) -> Option<Result> {
        let echo = echo_server()?;
        let home = tempfile::tempdir().ok()?;
        let ns = home.path().join("namespaces/west");
        let res = ns.join("input/resources");
        std::fs::create_dir_all(&res).ok()?;
        std::fs::create_dir_all(ns.join("internal")).ok()?;
        std::fs::write(ns.join("internal/platform.yaml"), "platform: linux\n").ok()?;
        std::fs::write(
            res.join("site.yaml"),
            "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n",
        )
        .ok()?;
        let stable = free_port();
        std::fs::write(
            res.join("stable.yaml"),
            yaml("Listener", "stable", "stable", stable),
        )
        .ok()?;
        std::fs::write(
            res.join("stable-c.yaml"),
            yaml("Connector", "stable", "stable", echo),
        )
        .ok()?;
        std::fs::write(
            res.join("moving-c.yaml"),
            yaml("Connector", "moving", "moving", echo),
        )
        .ok()?;
        let port = free_port();
        std::fs::write(
            res.join("moving.yaml"),
            yaml("Listener", "moving", "moving", port),
        )
        .ok()?;
        for i in 0..n.saturating_sub(1) {
            let key = format!("idle{i}");
            std::fs::write(
                res.join(format!("{key}.yaml")),
                yaml("Listener", &key, &key, 0).replace("port: 0", &format!("port: {}", 30000 + i)),
            )
            .ok()?;
        }
        // SKUPPERD_BENCH_LOG=<level> shows the daemon's log on stderr.
        let log = std::env::var("SKUPPERD_BENCH_LOG").ok();
        let config = home.path().join("skupperd.toml");
        std::fs::write(
            &config,
            format!(
                "linux_runner = \"process\"\nrouter_binary = \"{}\"\nresync_interval_s = 3600\nlog_level = \"{}\"\n",
                router.display(),
                log.as_deref().unwrap_or("warn")
            ),
        )
        .ok()?;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skupperd"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--data-home")
            .arg(home.path())
            .stderr(if log.is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .spawn()
            .ok()?;
        let result = async {
            // The router serves its config's listeners before skupperd's
            // first sync has even connected: measuring starts once the
            // daemon has settled (the moving listener's record says
            // Ready, the last idle one's the router's word on it), or the
            // first samples time the start-up instead.
            let record = |name: &str| {
                std::fs::read_to_string(ns.join(format!("runtime/resources/Listener-{name}.yaml")))
                    .unwrap_or_default()
            };
            let settled = || {
                record("moving").contains("status: Ready")
                    && (n < 2
                        || record(&format!("idle{}", n - 2)).contains("No matching connectors"))
            };
            if !until(Duration::from_secs(120), || {
                settled() && serves(stable) && serves(port)
            })
            .await
            {
                return None;
            }
            let mut open: Vec<TcpStream> = (0..10)
                .filter_map(|_| TcpStream::connect(("127.0.0.1", stable)).ok())
                .collect();
            let connections = open.len();
            let mut samples = Vec::new();
            let mut accepts = Vec::new();
            let changes = 100;
            for _ in 0..changes {
                let next = free_port();
                let t = Instant::now();
                let written_at = time::OffsetDateTime::now_utc();
                write_atomic(
                    &res.join("moving.yaml"),
                    &yaml("Listener", "moving", "moving", next),
                );
                if until(Duration::from_secs(30), || {
                    TcpStream::connect(("127.0.0.1", next)).is_ok()
                })
                .await
                {
                    accepts.push(t.elapsed());
                }
                if until(Duration::from_secs(30), || serves(next)).await {
                    samples.push(t.elapsed());
                }
                if log.is_some() {
                    eprintln!(
                        "bench: written at {written_at} -> port {next} accepts after {:?}",
                        accepts.last()
                    );
                }
            }
            let dropped = open.iter_mut().map(echoes).filter(|ok| !ok).count();
            if samples.is_empty() || accepts.is_empty() {
                return None;
            }
            Some(Result {
                accept_p50: pct(accepts.clone(), 0.5),
                accept_p99: pct(accepts, 0.99),
                p50: pct(samples.clone(), 0.5),
                p99: pct(samples.clone(), 0.99),
                samples: samples.len(),
                dropped,
                connections,
                changes,
            })
        }
        .await;
        // SIGTERM, so skupperd stops its router child too.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        result
    }
}

/// End to end through the daemon: a listener file is written; measured
/// until the router double has the new port. `skupperd run` (release) with
/// runner none drives a double the benchmark starts on the namespace's
/// management port.
mod end_to_end {
    use super::*;
    use std::path::{Path, PathBuf};

    fn listener(i: usize, port: u16) -> String {
        format!("apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: l{i}\nspec:\n  host: 127.0.0.1\n  port: {port}\n")
    }

    /// Writes `path` by rename, as editors and `skupper system apply` do.
    pub fn write_atomic(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    fn binary() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_skupperd"))
    }

    pub async fn run(n: usize) -> Option<(Duration, Duration, usize)> {
        let home = tempfile::tempdir().ok()?;
        let ns = home.path().join("namespaces/west");
        std::fs::create_dir_all(ns.join("input/resources")).ok()?;
        std::fs::create_dir_all(ns.join("internal")).ok()?;
        std::fs::write(ns.join("internal/platform.yaml"), "platform: linux\n").ok()?;
        std::fs::write(
            ns.join("input/resources/site.yaml"),
            "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n",
        )
        .ok()?;
        for i in 0..n {
            std::fs::write(
                ns.join(format!("input/resources/l{i}.yaml")),
                listener(i, 20000 + i as u16),
            )
            .ok()?;
        }
        let config = home.path().join("skupperd.toml");
        std::fs::write(
            &config,
            "runner = \"none\"\nresync_interval_s = 3600\nrouter_poll_interval_ms = 2000\nlog_level = \"info\"\n",
        )
        .ok()?;
        let mut child = std::process::Command::new(binary())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--data-home")
            .arg(home.path())
            .stderr(if std::env::var_os("SKUPPERD_BENCH_LOG").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .spawn()
            .ok()?;
        // Wait for the first reconcile: identity and credentials exist.
        let identity = ns.join("runtime/identity.yaml");
        let start = Instant::now();
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&identity).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| {
                        l.strip_prefix("managementPort: ")
                            .map(|p| p.trim().parse::<u16>())
                    })
                    .and_then(Result::ok)
            }) {
                break p;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let certs = ns.join("runtime/certs/skupper-local-server");
        let read = |f: &str| std::fs::read(certs.join(f)).unwrap_or_default();
        let mut cfg = DoubleConfig::new(read("tls.crt"), read("tls.key"), read("ca.crt")).ok()?;
        cfg.port = port;
        let double = RouterDouble::start(cfg).await.ok()?;
        // The first sync happens on the next pass: poke it with a change.
        write_atomic(&ns.join("input/resources/l0.yaml"), &listener(0, 40000));
        let applied = |double: &RouterDouble, port: u16| {
            double
                .entity("listener/l0")
                .and_then(|e| {
                    e.attrs
                        .get("port")
                        .and_then(|p| p.as_str())
                        .map(|p| p == port.to_string())
                })
                .unwrap_or(false)
        };
        // Every listener, not only l0: the first sync creates all of them
        // (l0 among the first), and a sample taken before it ends would
        // time the rest of that sync.
        let all_there = |double: &RouterDouble| {
            (1..n).all(|i| double.entity(&format!("listener/l{i}")).is_some())
        };
        // And the daemon has settled: the start-up's status passes and
        // polls are done once l0's record tells the router's word on it.
        // The first and the last listener: the start-up's passes write a
        // thousand records in one go.
        let settled = || {
            [0, n.saturating_sub(1)].iter().all(|i| {
                std::fs::read_to_string(ns.join(format!("runtime/resources/Listener-l{i}.yaml")))
                    .is_ok_and(|r| r.contains("No matching connectors"))
            })
        };
        let start = Instant::now();
        while !(applied(&double, 40000) && all_there(&double) && settled()) {
            if start.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut samples = Vec::new();
        for round in 1..=30u16 {
            let port = 40000 + round;
            let t = Instant::now();
            let written_at = time::OffsetDateTime::now_utc();
            write_atomic(&ns.join("input/resources/l0.yaml"), &listener(0, port));
            while !applied(&double, port) {
                if t.elapsed() > Duration::from_secs(30) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples.push(t.elapsed());
            if std::env::var_os("SKUPPERD_BENCH_LOG").is_some() {
                eprintln!(
                    "bench: written at {written_at} -> port {port} applied after {:?}",
                    t.elapsed()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let count = samples.len();
        let _ = child.kill();
        let _ = child.wait();
        double.stop().await;
        Some((pct(samples.clone(), 0.5), pct(samples, 0.99), count))
    }
}
