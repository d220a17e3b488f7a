//! Live-router benchmark against the router double (no real skupper-router
//! can run here): change-to-router-applied latency and the cost of a drift
//! check of unchanged listeners, at 1 and 1,000 listeners.
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
    });
}
