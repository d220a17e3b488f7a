//! Security properties of the real binary: no key or secret in any log
//! line or status file, private keys 0600 in 0700 directories whatever
//! the umask, nothing named in the input reaches outside the namespace,
//! and no listening socket of the daemon's own.

use crate::support::daemon::*;
use crate::support::*;
use skupperd::certs::{Credential, MemoMint, Mint};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A CA and a server certificate for `127.0.0.1` it signed, made now (no
/// key is committed).
fn bundle(seed: u64) -> (Credential, Credential) {
    let mut mint = MemoMint::new(seed);
    let now = time::OffsetDateTime::now_utc();
    let ca = mint.issue_ca("security-ca", now).unwrap();
    let leaf = mint
        .issue_leaf(&ca, "web", &["127.0.0.1".to_string()], now)
        .unwrap();
    (ca, leaf)
}

/// The lines of a PEM file between its armour: what would show up if
/// any part of the key were logged or copied.
fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

/// Every regular file below `dir`, with its path.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Every directory below `dir`, `dir` included.
fn dirs_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            for e in entries.flatten() {
                if e.file_type().unwrap().is_dir() {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out.sort();
    out
}

const SENTINEL: &str = "SENTINEL-NOT-A-KEY-4b1d7e";

/// A namespace with a Site, a TLS Listener on a real bundle, a Listener
/// naming a bundle whose key is only the sentinel text (refused: not a
/// key), and a Secret holding the sentinel as key and data.
fn secret_namespace(home: &DataHome) -> (PathBuf, Vec<String>) {
    let ns = home.ns("west");
    home.write("west", "input/resources/Site-west.yaml", SITE);
    home.write(
        "west",
        "input/resources/web.yaml",
        &format!(
            "{}  tlsCredentials: web\n",
            listener("web", "127.0.0.1", "8443")
        ),
    );
    home.write(
        "west",
        "input/resources/bad.yaml",
        &format!(
            "{}  tlsCredentials: bad\n",
            listener("bad", "127.0.0.1", "8444")
        ),
    );
    home.write(
        "west",
        "input/resources/secret.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web\ntype: kubernetes.io/tls\nstringData:\n  tls.key: {SENTINEL}-stringdata\ndata:\n  tls.key: {}\n",
            "U0VOVElORUwtTk9ULUEtS0VZLTRiMWQ3ZQ=="
        ),
    );
    let (ca, leaf) = bundle(17);
    home.write("west", "input/certs/web/tls.crt", &leaf.cert_pem);
    home.write("west", "input/certs/web/tls.key", &leaf.key_pem);
    home.write("west", "input/certs/web/ca.crt", &ca.cert_pem);
    home.write("west", "input/certs/bad/tls.crt", &leaf.cert_pem);
    home.write(
        "west",
        "input/certs/bad/tls.key",
        &format!(
            "-----BEGIN PRIVATE KEY-----\n{SENTINEL}-in-a-broken-key\n-----END PRIVATE KEY-----\n"
        ),
    );
    let mut secrets = pem_body_lines(&leaf.key_pem);
    secrets.push(SENTINEL.to_string());
    secrets.push("U0VOVElORUwtTk9ULUEtS0VZLTRiMWQ3ZQ".to_string());
    (ns, secrets)
}

/// The body lines of every private key skupperd holds in `runtime/`
/// (generated or copied).
fn runtime_keys(ns: &Path) -> Vec<String> {
    files_below(&ns.join("runtime"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "tls.key"))
        .flat_map(|p| pem_body_lines(&std::fs::read_to_string(p).unwrap()))
        .collect()
}

/// Where any of `secrets` occurs in `text`.
fn leaks<'a>(text: &str, secrets: &'a [String]) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .map(String::as_str)
        .collect()
}

#[test]
fn no_key_or_secret_reaches_a_log_line_a_message_or_a_status_file() {
    for level in ["info", "debug", "trace"] {
        let home = DataHome::new();
        let (ns, mut secrets) = secret_namespace(&home);
        let mut d = Start::bare(&home)
            .arg("--runner")
            .arg("none")
            .arg("--log-level")
            .arg(level)
            .spawn();
        d.wait_ready();
        let record = ns.join("runtime/resources/Listener-bad.yaml");
        eventually(
            "the refused key in the status",
            || {
                std::fs::read_to_string(&record)
                    .ok()
                    .filter(|t| t.contains("tls.key is not an unencrypted PEM private key"))
            },
            || d.log(),
        );
        // A change and a rotation while it runs: more passes, more logging.
        let (ca2, leaf2) = bundle(18);
        write_by_rename(&ns.join("input/certs/web/tls.key"), &leaf2.key_pem);
        write_by_rename(&ns.join("input/certs/web/tls.crt"), &leaf2.cert_pem);
        write_by_rename(&ns.join("input/certs/web/ca.crt"), &ca2.cert_pem);
        secrets.extend(pem_body_lines(&leaf2.key_pem));
        eventually(
            "the rotated key in runtime/certs/web",
            || {
                std::fs::read_to_string(ns.join("runtime/certs/web/tls.key"))
                    .ok()
                    .filter(|t| *t == leaf2.key_pem)
            },
            || d.log(),
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(d.stop().success());
        secrets.extend(runtime_keys(&ns));
        let log = d.log();
        assert!(log.lines().count() > 3, "{level}: {log}");
        if level != "info" {
            assert!(log.contains("DEBUG"), "{level}: {log}");
        }
        assert_eq!(
            leaks(&log, &secrets),
            Vec::<&str>::new(),
            "{level} log:\n{log}"
        );

        // Every file under runtime/ but the keys themselves.
        for file in files_below(&ns.join("runtime")) {
            if file.file_name().is_some_and(|n| n == "tls.key") {
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
            assert_eq!(
                leaks(&text, &secrets),
                Vec::<&str>::new(),
                "{}:\n{text}",
                file.display()
            );
        }
        // The copied key is the bundle's, and the Secret went nowhere.
        assert_eq!(
            std::fs::read_to_string(ns.join("runtime/certs/web/tls.key")).unwrap(),
            leaf2.key_pem
        );
        assert!(!ns.join("runtime/resources/Secret-web.yaml").exists());

        // check, render and status, text and JSON, stdout and stderr.
        for args in [
            vec!["check"],
            vec!["check", "--output", "json"],
            vec!["render", "--output", "json"],
        ] {
            let out = skupperd()
                .args(&args)
                .arg(&ns)
                .timeout(COMMAND_TIMEOUT)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("tls.key is not an unencrypted PEM private key"),
                "{text}"
            );
            assert_eq!(
                leaks(&text, &secrets),
                Vec::<&str>::new(),
                "{args:?}: {text}"
            );
        }
        let out = skupperd()
            .args(["status", "--output", "json", "--data-home"])
            .arg(home.path())
            .timeout(COMMAND_TIMEOUT)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(leaks(&text, &secrets), Vec::<&str>::new(), "{text}");
    }
}

/// The mode of every file and directory under `runtime/`, checked
/// against resources.md 9: keys 0600 in 0700 directories, certificates
/// 0644, everything else 0644 in 0755 directories.
fn assert_runtime_modes(ns: &Path, what: &str) {
    let runtime = ns.join("runtime");
    let keys = files_below(&runtime)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "tls.key"))
        .count();
    assert!(keys >= 4, "{what}: {keys} keys");
    for file in files_below(&runtime) {
        let rel = file
            .strip_prefix(ns)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let want = if rel.ends_with("/tls.key") {
            0o600
        } else {
            0o644
        };
        assert_eq!(mode(&file), want, "{what}: {rel} is {:o}", mode(&file));
    }
    for dir in dirs_below(&runtime) {
        let rel = dir.strip_prefix(ns).unwrap().to_string_lossy().into_owned();
        let private = ["runtime/certs", "runtime/issuers", "runtime/links"]
            .iter()
            .any(|p| rel.starts_with(p));
        let want = if private { 0o700 } else { 0o755 };
        assert_eq!(mode(&dir), want, "{what}: {rel}/ is {:o}", mode(&dir));
    }
}

/// `sh -c 'umask 000; exec skupperd ARGS'`.
fn with_umask_000(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin("skupperd"))
        .args(args);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn keys_are_0600_in_0700_directories_even_under_umask_000() {
    // render, first into nothing, then over an existing runtime/ after a
    // new bundle arrives.
    let home = DataHome::new();
    let (ns, _) = secret_namespace(&home);
    // The user's key is readable by anyone; its copy must not be.
    std::fs::set_permissions(
        ns.join("input/certs/web/tls.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let ns_arg = ns.to_str().unwrap();
    let out = with_umask_000(&["render", ns_arg]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", out);
    assert_runtime_modes(&ns, "render into nothing");
    let (_, leaf) = bundle(19);
    home.write("west", "input/certs/db/tls.crt", &leaf.cert_pem);
    home.write("west", "input/certs/db/tls.key", &leaf.key_pem);
    home.write(
        "west",
        "input/resources/db.yaml",
        &format!(
            "{}  tlsCredentials: db\n",
            listener("db", "127.0.0.1", "8445")
        ),
    );
    let out = with_umask_000(&["render", ns_arg]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", out);
    assert!(ns.join("runtime/certs/db/tls.key").exists());
    assert_runtime_modes(&ns, "render over runtime/");

    // run, with a new namespace and a new bundle while it runs.
    let home = DataHome::new();
    let (ns, _) = secret_namespace(&home);
    let log = tempfile::NamedTempFile::new().unwrap();
    let config = tempfile::NamedTempFile::new().unwrap();
    let mut child = with_umask_000(&["run", "--runner", "none", "--config"])
        .arg(config.path())
        .arg("--data-home")
        .arg(home.path())
        .env("XDG_CONFIG_HOME", home.path().join("no-config"))
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let show = || std::fs::read_to_string(log.path()).unwrap_or_default();
    eventually(
        "the daemon's first pass",
        || ns.join("runtime/certs/web/tls.key").exists().then_some(()),
        show,
    );
    home.write("west", "input/certs/db/tls.crt", &leaf.cert_pem);
    home.write("west", "input/certs/db/tls.key", &leaf.key_pem);
    home.write(
        "west",
        "input/resources/db.yaml",
        &format!(
            "{}  tlsCredentials: db\n",
            listener("db", "127.0.0.1", "8445")
        ),
    );
    eventually(
        "the db bundle copied",
        || ns.join("runtime/certs/db/tls.key").exists().then_some(()),
        show,
    );
    std::thread::sleep(Duration::from_millis(200));
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    );
    assert!(child.wait().unwrap().success(), "{}", show());
    assert_runtime_modes(&ns, "run");
}

#[test]
fn credentials_names_and_links_cannot_reach_outside_the_namespace() {
    let home = DataHome::new();
    let ns = home.ns("west");
    // What lies outside, for links to point at: it must stay untouched.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("tls.crt"), "OUTSIDE CERT").unwrap();
    std::fs::write(outside.path().join("tls.key"), "OUTSIDE KEY").unwrap();
    home.write("west", "input/resources/Site-west.yaml", SITE);
    let tls = |name: &str, port: &str, cred: &str| {
        format!(
            "{}  tlsCredentials: \"{cred}\"\n",
            listener(name, "127.0.0.1", port)
        )
    };
    let docs = [
        tls("up", "9001", "../../etc"),
        tls("abs", "9002", "/etc/ssl"),
        tls("out", "9003", "out"),
        tls("passwd", "9004", "passwd"),
        tls("home", "9005", "~root"),
        listener("../../escape", "127.0.0.1", "9006"),
    ];
    home.write("west", "input/resources/tls.yaml", &docs.join("---\n"));
    std::fs::create_dir_all(ns.join("input/certs/passwd")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ns.join("input/certs/passwd/tls.crt")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", ns.join("input/certs/passwd/tls.key")).unwrap();
    std::os::unix::fs::symlink(outside.path(), ns.join("input/certs/out")).unwrap();
    let before = snapshot(outside.path());

    let expected = [
        "input/resources/tls.yaml:49:9: error: listener \"../../escape\": metadata.name must be an RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit, at most 63 characters)",
        "input/resources/tls.yaml:17:19: error: listener \"abs\": spec.tlsCredentials \"/etc/ssl\" must be an RFC 1123 name (a-z, 0-9, '-' and '.', at most 253 characters, no '/')",
        "input/resources/tls.yaml:44:19: error: listener \"home\": spec.tlsCredentials \"~root\" must be an RFC 1123 name (a-z, 0-9, '-' and '.', at most 253 characters, no '/')",
        "input/resources/tls.yaml:26:19: error: listener \"out\": input/certs/out is a symbolic link that leaves the namespace; refused",
        "input/resources/tls.yaml:35:19: error: listener \"passwd\": input/certs/passwd/tls.crt is a symbolic link that leaves the namespace; refused",
        "input/resources/tls.yaml:35:19: error: listener \"passwd\": input/certs/passwd/tls.key is a symbolic link that leaves the namespace; refused",
        "input/resources/tls.yaml:8:19: error: listener \"up\": spec.tlsCredentials \"../../etc\" must be an RFC 1123 name (a-z, 0-9, '-' and '.', at most 253 characters, no '/')",
        "7 error(s), 0 warning(s)",
    ];
    for command in ["check", "render"] {
        let out = skupperd()
            .arg(command)
            .arg(&ns)
            .timeout(COMMAND_TIMEOUT)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{command}");
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().take(expected.len()).collect();
        assert_eq!(lines, expected, "{command}:\n{text}");
    }
    // Nothing was read into runtime/ or written outside: no profile for
    // any of them, the outside untouched, every runtime path inside.
    assert_eq!(before, snapshot(outside.path()));
    let profiles: BTreeSet<String> = std::fs::read_dir(ns.join("runtime/certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        profiles,
        ["skupper-local-client", "skupper-local-server"]
            .map(String::from)
            .into()
    );
    let runtime = std::fs::canonicalize(ns.join("runtime")).unwrap();
    for file in files_below(&ns.join("runtime")) {
        let real = std::fs::canonicalize(&file).unwrap();
        assert!(real.starts_with(&runtime), "{}", real.display());
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(
            !text.contains("OUTSIDE") && !text.contains("root:x:0:0"),
            "{}",
            file.display()
        );
    }
    let issuers: Vec<String> = std::fs::read_dir(ns.join("runtime/issuers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(issuers, ["skupper-local-ca"]);

    // A namespace directory whose name is a path trick is refused whole.
    for name in ["..", "West", "a b"] {
        let dir = home.path().join("namespaces").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let out = skupperd()
            .arg("check")
            .arg(&dir)
            .timeout(COMMAND_TIMEOUT)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
    }
}

/// The socket inodes among a process's open files.
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for e in entries.flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                out.insert(inode.parse().unwrap());
            }
        }
    }
    out
}

/// The sockets of `/proc/net/{tcp,tcp6,udp,udp6,unix}` whose inode is in
/// `inodes`, as `(table, state or flags, line)`, and which of them listen.
fn sockets_of(inodes: &BTreeSet<u64>) -> (Vec<String>, Vec<String>) {
    let mut all = Vec::new();
    let mut listening = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            let Some(inode) = cols.get(9).and_then(|i| i.parse::<u64>().ok()) else {
                continue;
            };
            if inodes.contains(&inode) {
                all.push(format!("{table}: {line}"));
                // 0A is TCP_LISTEN; a bound UDP socket (07) receives too.
                if (table.starts_with("tcp") && cols[3] == "0A")
                    || (table.starts_with("udp") && cols[3] == "07")
                {
                    listening.push(format!("{table}: {line}"));
                }
            }
        }
    }
    let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    for line in text.lines().skip(1) {
        // Num RefCount Protocol Flags Type St Inode [Path]
        let cols: Vec<&str> = line.split_whitespace().collect();
        let Some(inode) = cols.get(6).and_then(|i| i.parse::<u64>().ok()) else {
            continue;
        };
        if inodes.contains(&inode) {
            all.push(format!("unix: {line}"));
            // __SO_ACCEPTCON: the socket listens.
            let flags = u32::from_str_radix(cols[3], 16).unwrap_or(0);
            if flags & 0x0001_0000 != 0 {
                listening.push(format!("unix: {line}"));
            }
        }
    }
    (all, listening)
}

#[test]
fn the_daemon_opens_no_listening_socket_of_its_own() {
    let home = DataHome::new();
    home.sample("west");
    let notify = NotifySocket::bind(|_| {});
    let mut d = Start::new(&home)
        .arg("--runner")
        .arg("none")
        .env("NOTIFY_SOCKET", notify.path.to_string_lossy())
        .spawn();
    d.wait_ready();
    let pid = d.child.id();
    let mut seen = BTreeSet::new();
    let mut listening = Vec::new();
    // Looked at while it works: a new namespace (a port is probed for
    // it), edits, and idle time.
    let start = std::time::Instant::now();
    let mut step = 0;
    while start.elapsed() < Duration::from_secs(2) {
        match step {
            5 => {
                home.sample("east");
            }
            10 => {
                home.write(
                    "west",
                    "input/resources/db.yaml",
                    &listener("db", "127.0.0.1", "5432"),
                );
            }
            _ => {}
        }
        step += 1;
        let (all, listen) = sockets_of(&socket_inodes(pid));
        seen.extend(all);
        listening.extend(listen);
        std::thread::sleep(Duration::from_millis(20));
    }
    eventually(
        "east reconciled",
        || {
            home.path()
                .join("namespaces/east/runtime/router/skrouterd.json")
                .exists()
                .then_some(())
        },
        || d.log(),
    );
    assert!(d.stop().success());
    assert_eq!(
        listening,
        Vec::<String>::new(),
        "all sockets seen: {seen:#?}"
    );
    // The tables were read: the test's own notify socket is in them.
    let (ours, _) = sockets_of(&socket_inodes(std::process::id()));
    assert!(ours.iter().any(|l| l.starts_with("unix:")), "{ours:?}");
    eprintln!("daemon sockets seen: {seen:#?}");
}

/// What a foreign TLS server on the management port saw of one
/// connection: how the handshake ended and the bytes it received after.
#[derive(Debug, Clone)]
struct Seen {
    handshake: Result<(), String>,
    bytes_after: usize,
}

/// A TLS server with a certificate of another CA on `port`, recording
/// every connection.
fn foreign_server(port: u16) -> std::sync::Arc<std::sync::Mutex<Vec<Seen>>> {
    use crate::support::tls::{chain_and_key, pki};
    use std::io::Read;
    let other = pki();
    let (chain, key) = chain_and_key(&other.first).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("binding the management port {port}: {e}"));
    let seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>> = Default::default();
    let log = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
            let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut handshake = Ok(());
            while conn.is_handshaking() {
                if let Err(e) = conn.complete_io(&mut tcp) {
                    handshake = Err(e.to_string());
                    break;
                }
            }
            let mut bytes_after = 0;
            if handshake.is_ok() {
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    bytes_after += n;
                }
            }
            if let Ok(mut l) = log.lock() {
                l.push(Seen {
                    handshake,
                    bytes_after,
                });
            }
        }
    });
    seen
}

#[test]
fn the_management_client_refuses_a_server_not_signed_by_the_sites_local_ca() {
    let _serial = crate::router_live::serial();
    let home = DataHome::new();
    home.write("west", "internal/platform.yaml", "platform: linux\n");
    home.write("west", "input/resources/site.yaml", SITE);
    crate::support::live::render(&home, "west");
    let identity = home.read("west", "runtime/identity.yaml");
    let port: u16 = identity
        .lines()
        .find_map(|l| l.strip_prefix("managementPort: "))
        .and_then(|p| p.trim().parse().ok())
        .expect("a management port in identity.yaml");
    // Another process holds the management port with a certificate of
    // another CA (valid for 127.0.0.1).
    let seen = foreign_server(port);
    let config = home.path().join("skupperd.toml");
    std::fs::write(
        &config,
        "runner = \"none\"\nrouter_poll_interval_ms = 200\n",
    )
    .unwrap();
    let d = Start::new(&home)
        .arg("--config")
        .arg(config.to_string_lossy())
        .spawn();
    let status = eventually(
        "status.yaml to say why the router is not reachable",
        || {
            let s = std::fs::read_to_string(home.ns("west").join("runtime/status.yaml")).ok()?;
            (s.contains("reachable: false") && s.contains("UnknownIssuer")).then_some(s)
        },
        || d.log(),
    );
    // Every attempt refused at the handshake (runner none tries on each
    // pass and resync, not on a poll timer).
    let attempts = eventually(
        "a connection attempt",
        || {
            let s = seen.lock().ok()?.clone();
            (!s.is_empty()).then_some(s)
        },
        || d.log(),
    );
    for a in &attempts {
        assert!(
            a.handshake.is_err(),
            "skupperd completed a TLS handshake with a server of another CA: {attempts:?}"
        );
        assert_eq!(a.bytes_after, 0, "{attempts:?}");
    }
    let site = home.read("west", "runtime/resources/Site-west.yaml");
    assert!(!site.contains("status: Ready"), "{site}");
    assert!(
        site.contains("router not reachable: management connection lost: TLS"),
        "{site}"
    );
    let message = status
        .lines()
        .find(|l| l.contains("TLS"))
        .unwrap_or_default()
        .trim()
        .to_string();
    println!(
        "foreign management server: {} handshakes refused ({:?}); status: {message}",
        attempts.len(),
        attempts[0].handshake
    );
}
