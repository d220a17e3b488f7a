//! `skrouterd-double -c <config.json>` as the process runner sees it:
//! start-up failures exit 1 with the router's `Router start-up failed:`
//! line, a good config serves management on `skupper-local-normal`,
//! SIGTERM stops it cleanly, or aborts it like the observed router when
//! asked to.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::{eventually, free_port, Pki};
use serde_json::{json, Value};
use skupperd::router::{connect, Management};

const BIN: &str = env!("CARGO_BIN_EXE_skrouterd-double");

/// A config like skupperd renders for linux: router, the management
/// profile and listener, plus `extra` entities.
fn config(dir: &Path, port: u16, extra: Vec<Value>) -> std::path::PathBuf {
    let certs = dir.join("skupper-local-server");
    let path = |f: &str| certs.join(f).display().to_string();
    let mut entities = vec![
        json!(["router", {"id": "west-6f1c2d3e", "mode": "interior", "helloMaxAgeSeconds": 3,
                          "metadata": "{\"id\":\"6f1c2d3e\"}"}]),
        json!(["sslProfile", {"name": "skupper-local-server", "caCertFile": path("ca.crt"),
                              "certFile": path("tls.crt"), "privateKeyFile": path("tls.key")}]),
        json!(["listener", {"name": "skupper-local-normal", "role": "normal", "host": "127.0.0.1",
                            "port": port.to_string(), "sslProfile": "skupper-local-server",
                            "saslMechanisms": "EXTERNAL", "authenticatePeer": true}]),
        json!(["address", {"prefix": "mc", "distribution": "multicast"}]),
        json!(["log", {"module": "DEFAULT", "enable": "info+"}]),
    ];
    entities.extend(extra);
    let file = dir.join("skrouterd.json");
    std::fs::write(&file, serde_json::to_string_pretty(&entities).unwrap()).unwrap();
    file
}

fn run_to_end(file: &Path) -> Output {
    Command::new(BIN).arg("-c").arg(file).output().unwrap()
}

fn spawn(file: &Path, abort_on_stop: bool) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg("-c")
        .arg(file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if abort_on_stop {
        cmd.env("SKROUTERD_DOUBLE_ABORT_ON_STOP", "1");
    }
    cmd.spawn().unwrap()
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn assert_startup_failure(extra: Vec<Value>, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("skupper-local-ca");
    pki.write_server_files(&dir.path().join("skupper-local-server"));
    let out = run_to_end(&config(dir.path(), free_port(), extra));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.contains("Router start-up failed:"), "{stderr}");
    assert!(last.contains(expected), "expected {expected:?} in {stderr}");
}

#[test]
fn bad_configs_fail_start_up_like_the_router() {
    assert_startup_failure(
        vec![json!(["tcpListener", {"name": "l", "address": "a", "port": "1", "bogusAttr": 1}])],
        "Unknown attribute 'bogusAttr' for 'io.skupper.router.tcpListener'",
    );
    assert_startup_failure(
        vec![json!(["tcpListenerX", {"name": "l"}])],
        "No such entity type 'io.skupper.router.tcpListenerX'",
    );
    assert_startup_failure(
        vec![
            json!(["tcpListener", {"name": "l", "address": "a", "port": "1", "sslProfile": "nope"}]),
        ],
        "sslProfile 'nope' not found",
    );
    assert_startup_failure(
        vec![
            json!(["sslProfile", {"name": "p", "certFile": "/nonexistent/server.crt"}]),
            json!(["tcpListener", {"name": "l", "address": "a", "port": "1", "sslProfile": "p"}]),
        ],
        "Failed to set TLS certFile '/nonexistent/server.crt' for sslProfile 'p': (-3)",
    );
    assert_startup_failure(
        vec![
            json!(["sslProfile", {"name": "west"}]),
            json!(["connector", {"name": "west", "role": "inter-router", "port": "1"}]),
        ],
        "duplicates unique attribute 'name'",
    );
}

#[test]
fn a_taken_management_port_exits_1_like_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("skupper-local-ca");
    pki.write_server_files(&dir.path().join("skupper-local-server"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run_to_end(&config(dir.path(), port, vec![]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let last = lines.last().copied().unwrap_or("");
    // `2026-12-03 10:00:00.123456 +0000 SERVER (critical) ...`
    let (stamp, text) = last.split_at(last.find(" SERVER").unwrap_or(0));
    assert_eq!(
        stamp.len(),
        "2026-12-03 10:00:00.123456 +0000".len(),
        "{stderr}"
    );
    assert_eq!(
        text,
        format!(" SERVER (critical) Shutting down, required listener failed 127.0.0.1:{port}")
    );
    assert!(
        stderr.contains(&format!(
            "SERVER (error) Listener error on 127.0.0.1:{port}: Address already in use"
        )),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_a_config_fails_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("skrouterd.json");
    std::fs::write(&file, "{not json").unwrap();
    let out = run_to_end(&file);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Router start-up failed:"));
}

#[tokio::test]
async fn a_good_config_serves_management_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("skupper-local-ca");
    pki.write_server_files(&dir.path().join("skupper-local-server"));
    let port = free_port();
    // The file order puts the tcpListener first; the load order resolves it.
    let file = config(
        dir.path(),
        port,
        vec![
            json!(["tcpListener", {"name": "listener/backend", "address": "backend",
                                   "host": "127.0.0.1", "port": free_port()}]),
            json!(["tcpConnector", {"name": "connector/backend@127.0.0.1", "address": "backend",
                                    "host": "127.0.0.1", "port": "1"}]),
        ],
    );
    let mut child = spawn(&file, false);
    let creds = pki.credentials();
    eventually("the management port to answer", || {
        let creds = creds.clone();
        async move { connect(port, &creds).await.is_ok() }
    })
    .await;
    let mut client = connect(port, &creds).await.unwrap();
    let router = client
        .query("router", &["id", "mode", "metadata"])
        .await
        .unwrap();
    assert_eq!(router[0]["id"], "west-6f1c2d3e");
    let listeners = client
        .query("tcpListener", &["name", "port", "operStatus"])
        .await
        .unwrap();
    assert_eq!(
        listeners[0]["port"]
            .as_str()
            .map(|p| p.parse::<u16>().is_ok()),
        Some(true)
    );
    assert_eq!(
        listeners[0]["operStatus"], "up",
        "the local connector is a consumer"
    );

    terminate(&child);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn abort_on_stop_dies_like_the_observed_router() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("skupper-local-ca");
    pki.write_server_files(&dir.path().join("skupper-local-server"));
    let port = free_port();
    let mut child = spawn(&config(dir.path(), port, vec![]), true);
    let creds = pki.credentials();
    eventually("the management port to answer", || {
        let creds = creds.clone();
        async move { connect(port, &creds).await.is_ok() }
    })
    .await;
    terminate(&child);
    let output = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
        }
        (status, stderr)
    })
    .await
    .unwrap();
    assert_eq!(output.0.signal(), Some(6), "SIGABRT: {output:?}");
    assert!(
        output.1.contains("SKUPPER-ROUTER FATAL ERROR"),
        "{}",
        output.1
    );
}
