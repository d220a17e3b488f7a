//! `skrouterd-double -c <config.json>`: a stand-in for `skrouterd` that the
//! process runner can start in tests. It loads the config the way the
//! router does (failing with exit status 1 and a `Router start-up failed:`
//! line), serves management on the `skupper-local-normal` listener, and
//! stops on SIGTERM or SIGINT. When that listener's port is taken it exits
//! with status 1 after the real router's two lines (`SERVER (error)
//! Listener error on ...`, `SERVER (critical) Shutting down, required
//! listener failed 127.0.0.1:<port>`). Its log lines carry the router's
//! timestamp prefix (`2026-12-03 10:00:00.123456 +0000 MODULE (level)
//! text`), so whatever reads them meets the real format.
//!
//! With `SKROUTERD_DOUBLE_ABORT_ON_STOP=1` it dies on SIGTERM the way the
//! observed router build often did (router.md 6.1 "Shutdown can abort"):
//! it prints the fatal error and aborts (SIGABRT).

use std::process::ExitCode;

use router_double::{
    config, default_rules, reference_dir, DoubleConfig, DoubleError, RouterDouble,
};

const VERSION: &str = "3.5.0-double";

/// One log line in the router's format, on stderr.
fn log(module: &str, level: &str, text: &str) {
    eprintln!("{} {module} ({level}) {text}", timestamp());
}

/// `2026-12-03 10:00:00.123456 +0000`, in UTC.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06} +0000",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn fail(message: &str) -> ExitCode {
    log(
        "ROUTER",
        "critical",
        &format!("Router start-up failed: {message}"),
    );
    ExitCode::from(1)
}

fn config_path() -> Result<Option<String>, String> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" | "--config" => path = Some(args.next().ok_or("-c needs a file")?),
            "-v" | "--version" => return Ok(None),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    path.map(Some)
        .ok_or_else(|| "usage: skrouterd-double -c <config.json>".to_string())
}

fn main() -> ExitCode {
    let path = match config_path() {
        Ok(Some(path)) => path,
        Ok(None) => {
            println!("{VERSION}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(run(&path))
}

async fn run(path: &str) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return fail(&format!("Cannot load configuration file {path}: {e}")),
    };
    let (doc, entities) = match config::parse(&text) {
        Ok(parsed) => parsed,
        Err(e) => return fail(&e),
    };
    let rules = match default_rules(&reference_dir()) {
        Ok(rules) => rules,
        Err(e) => return fail(&format!("cannot read the router schema: {e}")),
    };
    if let Some(problem) = rules.check_config(&doc).first() {
        return fail(problem);
    }
    let management = match config::management_listener(&entities) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let pems = read(&management.cert_file)
        .and_then(|c| Ok((c, read(&management.key_file)?, read(&management.ca_file)?)));
    let (cert, key, ca) = match pems {
        Ok(pems) => pems,
        Err(e) => return fail(&format!("Failed to read the management TLS files: {e}")),
    };
    let double = RouterDouble::start(DoubleConfig {
        port: management.port,
        server_cert_pem: cert,
        server_key_pem: key,
        client_ca_pem: ca,
        entities,
        rules,
        check_ssl_files: true,
        // The real router's 10 s, unless a test asks for faster beacons.
        beacon_interval: std::env::var("SKROUTERD_DOUBLE_BEACON_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(
                std::time::Duration::from_secs(10),
                std::time::Duration::from_millis,
            ),
        site_id: std::env::var("SKUPPER_SITE_ID").unwrap_or_else(|_| "site-router-double".into()),
    })
    .await;
    let double = match double {
        Ok(double) => double,
        Err(DoubleError::Bind(e)) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // What the real router does when a listener of its config
            // file cannot listen (router.md 6.2, qd_listener.c).
            let at = format!("127.0.0.1:{}", management.port);
            log(
                "SERVER",
                "error",
                &format!(
                    "Listener error on {at}: Address already in use - listen on {at} (proton:io)"
                ),
            );
            log(
                "SERVER",
                "critical",
                &format!("Shutting down, required listener failed {at}"),
            );
            return ExitCode::from(1);
        }
        Err(e) => return fail(&e.to_string()),
    };
    log("ROUTER", "info", "Router started in Interior mode");
    log(
        "SERVER",
        "notice",
        &format!("Management listening on 127.0.0.1:{}", double.port()),
    );
    wait_for_stop().await;
    if std::env::var_os("SKROUTERD_DOUBLE_ABORT_ON_STOP").is_some_and(|v| v == "1") {
        eprintln!("free(): double free detected in tcache 2");
        eprintln!("SKUPPER-ROUTER FATAL ERROR: shutdown aborted (double)");
        std::process::abort();
    }
    double.stop().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
