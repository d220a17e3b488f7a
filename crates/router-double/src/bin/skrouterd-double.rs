//! `skrouterd-double -c <config.json>`: a stand-in for `skrouterd` that the
//! process runner can start in tests. It loads the config the way the
//! router does (failing with exit status 1 and a `Router start-up failed:`
//! line), serves management on the `skupper-local-normal` listener, and
//! stops on SIGTERM or SIGINT.
//!
//! With `SKROUTERD_DOUBLE_ABORT_ON_STOP=1` it dies on SIGTERM the way the
//! observed router build often did (router.md 6.1 "Shutdown can abort"):
//! it prints the fatal error and aborts (SIGABRT).

use std::process::ExitCode;

use router_double::{config, default_rules, reference_dir, DoubleConfig, RouterDouble};

const VERSION: &str = "3.5.0-double";

fn fail(message: &str) -> ExitCode {
    eprintln!("SERVER (critical) Router start-up failed: {message}");
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
        Err(e) => return fail(&e.to_string()),
    };
    eprintln!(
        "SERVER (notice) Management listening on 127.0.0.1:{}",
        double.port()
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
