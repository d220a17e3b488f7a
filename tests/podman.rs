//! The podman and docker runners against a real Podman: its
//! Docker-compatible API served by `podman system service` on a socket of
//! the test's own, and a router image built here from a root filesystem the
//! test assembles (the router double as `/usr/sbin/skrouterd`, its shared
//! libraries, busybox, and a launch script that starts it the way the
//! skupper-router image does: the config named by `QDROUTERD_CONF`, with
//! `${SSL_PROFILE_BASE_PATH}` expanded, in a copy under /tmp).
//!
//! Without `podman` on PATH these tests say so and pass, unless
//! `SKUPPERD_TEST_REQUIRE_PODMAN=1` (set by `.ci/run`) makes that a
//! failure. Containers and images are named per test process, and removed
//! at the end.

#[path = "support/mod.rs"]
mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use support::daemon::{eventually, status_file, wait_record, Daemon, Start};
use support::*;

/// The launch script of the test image (the real image's does the same).
const LAUNCH: &str = r#"#!/bin/sh
set -e
# A test may make the router fail at start-up, as a broken router would.
if [ -e /etc/skupper-router/config/fail-on-purpose ]; then
    echo "2026-12-03 10:00:00.000000 +0000 ROUTER (critical) Router start-up failed: $(/bin/busybox cat /etc/skupper-router/config/fail-on-purpose)" >&2
    exit 1
fi
/bin/busybox sed "s#\${SSL_PROFILE_BASE_PATH}#${SSL_PROFILE_BASE_PATH}#g" "$QDROUTERD_CONF" > /tmp/skrouterd.json
exec /usr/sbin/skrouterd -c /tmp/skrouterd.json
"#;

/// Tests that start routers run one at a time: each data home picks its
/// management port from 5671 up, and with host networking two routers at
/// once would contend for it.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn podman_available() -> bool {
    let found = Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("SKUPPERD_TEST_REQUIRE_PODMAN").as_deref() != Ok("1"),
            "podman is required (SKUPPERD_TEST_REQUIRE_PODMAN=1) but not on PATH"
        );
        eprintln!("podman is not installed: the podman runner tests did not run");
    }
    found
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().expect("podman");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The router double's binary, built on demand beside skupperd.
fn double_binary() -> PathBuf {
    let skupperd = assert_cmd::cargo::cargo_bin("skupperd");
    let path = skupperd.with_file_name("skrouterd-double");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "router-double", "--bin", "skrouterd-double"])
            .status()
            .expect("cargo build");
        assert!(status.success());
    }
    path
}

fn copy_into(root: &Path, file: &Path, at: &str) {
    let to = root.join(at.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(file, &to)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", file.display(), to.display()));
}

/// The shared libraries `ldd` lists for `binary`, by absolute path.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

/// Builds `localhost/skupperd-test-router:<tag>` from a root filesystem
/// assembled in `dir`; returns the image reference.
fn build_image(dir: &Path, tag: &str) -> String {
    let root = dir.join("rootfs");
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "the test image needs a static /bin/busybox (apt-get install busybox-static)"
    );
    copy_into(&root, busybox, "/bin/busybox");
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let double = double_binary();
    copy_into(&root, &double, "/usr/sbin/skrouterd");
    for lib in shared_libraries(&double) {
        copy_into(&root, &lib, &lib.display().to_string());
    }
    let schema = Path::new(
        &std::env::var("SKUPPERD_REFERENCE_DIR").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference").to_string()
        }),
    )
    .join("skrouter-schema.json");
    copy_into(&root, &schema, "/reference/skrouter-schema.json");
    std::fs::create_dir_all(root.join("home/skrouterd/bin")).unwrap();
    std::fs::write(root.join("home/skrouterd/bin/launch.sh"), LAUNCH).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(
        root.join("home/skrouterd/bin/launch.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let tar = dir.join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success());
    let image = format!("localhost/skupperd-test-router:{tag}");
    podman(&[
        "import",
        "--change",
        r#"CMD ["/home/skrouterd/bin/launch.sh"]"#,
        "--change",
        "ENV SKUPPERD_REFERENCE_DIR=/reference",
        &tar.display().to_string(),
        &image,
    ]);
    image
}

/// `podman system service` on a socket of its own; stopped on drop with
/// the containers and images the test made.
struct Engine {
    dir: tempfile::TempDir,
    service: Child,
    images: Vec<String>,
    containers: Vec<String>,
}

impl Engine {
    fn start() -> Engine {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podman.sock");
        let service = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service");
        eventually(
            "the podman API socket",
            || socket.exists().then_some(()),
            String::new,
        );
        Engine {
            dir,
            service,
            images: Vec::new(),
            containers: Vec::new(),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    fn image(&mut self, tag: &str) -> String {
        let build = tempfile::tempdir().unwrap();
        let image = build_image(build.path(), tag);
        self.images.push(image.clone());
        image
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", c])
                .output();
        }
        for i in &self.images {
            let _ = Command::new("podman").args(["rmi", "-f", i]).output();
        }
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

fn inspect(name: &str) -> Option<Value> {
    let out = Command::new("podman")
        .args(["inspect", "--type", "container", name])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0).cloned()
}

fn daemon(home: &DataHome, config: &str) -> Daemon {
    let path = home.path().join("skupperd.toml");
    std::fs::write(&path, config).unwrap();
    Start::new(home)
        .arg("--config")
        .arg(path.display().to_string())
        .spawn()
}

fn config(socket: &Path, image: &str) -> String {
    format!(
        "podman_endpoint = \"{0}\"\ndocker_endpoint = \"unix://{0}\"\nrouter_image = \"{image}\"\nimage_pull = \"never\"\nrouter_poll_interval_ms = 200\nsite_grace_period_ms = 200\n",
        socket.display()
    )
}

fn echo_through(port: u16) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"hello through the router").unwrap();
    let mut buf = vec![0u8; 24];
    s.read_exact(&mut buf).unwrap();
    buf
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn site_id(home: &DataHome, ns: &str) -> String {
    let identity = std::fs::read_to_string(
        home.path()
            .join(format!("namespaces/{ns}/runtime/identity.yaml")),
    )
    .unwrap();
    identity
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("siteId:")
                .map(|v| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("no siteId in {identity}"))
}

#[test]
fn the_podman_runner_runs_the_site_in_a_container_and_the_docker_runner_takes_it_over() {
    if !podman_available() {
        return;
    }
    let _serial = serial();
    let tag = format!("t{}", std::process::id());
    let mut engine = Engine::start();
    let image = engine.image(&tag);
    let ns = format!("pm{}", std::process::id());
    let name = format!("{ns}-skupper-router");
    engine.containers.push(name.clone());

    let home = DataHome::new();
    home.write(&ns, "internal/platform.yaml", "platform: podman\n");
    home.write(&ns, "input/resources/site.yaml", SITE);
    let port = free_port();
    home.write(
        &ns,
        "input/resources/l.yaml",
        &listener("backend", "127.0.0.1", &port.to_string()),
    );
    home.write(
        &ns,
        "input/resources/c.yaml",
        &format!("apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n  name: backend\nspec:\n  host: 127.0.0.1\n  port: {}\n", echo_server()),
    );

    let mut d = daemon(&home, &config(&engine.socket(), &image));
    // The statuses come from the router inside the container.
    wait_record(&d, &home, &ns, "Listener", "backend", "status: Ready");
    wait_record(&d, &home, &ns, "Site", "west", "status: Ready");
    assert_eq!(echo_through(port), b"hello through the router");
    eventually(
        "status.yaml to name the podman runner",
        || {
            status_file(&home, &ns)
                .contains("runner: podman")
                .then_some(())
        },
        || format!("{}\n{}", status_file(&home, &ns), d.log()),
    );

    // The container as platform.md 2.1 describes it.
    let c = inspect(&name).expect("the router container");
    let id = site_id(&home, &ns);
    let ns_dir = home.path().join("namespaces").join(&ns);
    assert_eq!(c["HostConfig"]["NetworkMode"], "host", "{c:#}");
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "always", "{c:#}");
    let binds: Vec<String> = serde_json::from_value(c["HostConfig"]["Binds"].clone()).unwrap();
    for want in [
        format!(
            "{}/runtime/router:/etc/skupper-router/config:ro",
            ns_dir.display()
        ),
        format!(
            "{}/runtime/certs:/etc/skupper-router/runtime/certs:ro",
            ns_dir.display()
        ),
    ] {
        assert!(
            binds.iter().any(|b| b.starts_with(&want)),
            "{want} not in {binds:?}"
        );
    }
    let env: Vec<String> = serde_json::from_value(c["Config"]["Env"].clone()).unwrap();
    for want in [
        "APPLICATION_NAME=skupper-router".to_string(),
        "QDROUTERD_CONF=/etc/skupper-router/config/skrouterd.json".into(),
        "QDROUTERD_CONF_TYPE=json".into(),
        format!("SKUPPER_SITE_ID={id}"),
        "SSL_PROFILE_BASE_PATH=/etc/skupper-router".into(),
    ] {
        assert!(env.contains(&want), "{want} not in {env:?}");
    }
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["application"], "skupper-v2");
    assert_eq!(labels["skupper.io/v2-component"], "router");
    assert_eq!(labels["skupper.io/site-id"], id.as_str());
    assert_eq!(labels["skupperd.io/namespace"], ns.as_str());
    assert_eq!(
        labels["skupperd.io/spec-hash"].as_str().map(str::len),
        Some(64)
    );
    let first_id = c["Id"].as_str().unwrap().to_string();

    // A restart-required change restarts the container.
    let started = c["State"]["StartedAt"].as_str().unwrap().to_string();
    home.write(
        &ns,
        "input/resources/site.yaml",
        &format!("{SITE}spec:\n  edge: true\n"),
    );
    d.wait_log("the router's id or mode changed: restarting it");
    eventually(
        "the container to be restarted",
        || {
            let c = inspect(&name)?;
            (c["State"]["StartedAt"].as_str()? != started && c["State"]["Running"] == true)
                .then_some(())
        },
        || d.log(),
    );
    wait_record(&d, &home, &ns, "Site", "west", "status: Ready");
    assert_eq!(
        inspect(&name).unwrap()["Id"].as_str(),
        Some(first_id.as_str())
    );

    // skupperd stops; the router container keeps running, and the next
    // skupperd adopts it as it is.
    d.stop();
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);
    let mut d = daemon(&home, &config(&engine.socket(), &image));
    wait_record(&d, &home, &ns, "Site", "west", "status: Ready");
    assert_eq!(
        inspect(&name).unwrap()["Id"].as_str(),
        Some(first_id.as_str()),
        "adopted, not re-created"
    );
    d.stop();

    // Another image: the spec hash differs, the container is re-created.
    podman(&["tag", &image, &format!("{image}-b")]);
    engine.images.push(format!("{image}-b"));
    let mut d = daemon(&home, &config(&engine.socket(), &format!("{image}-b")));
    d.wait_log("the router container's spec changed");
    wait_record(&d, &home, &ns, "Site", "west", "status: Ready");
    let recreated = inspect(&name).unwrap();
    assert_ne!(recreated["Id"].as_str(), Some(first_id.as_str()));
    assert_eq!(echo_through(port), b"hello through the router");

    // The platform moves to docker: the docker runner (same engine,
    // Docker-compatible API) runs the router now.
    home.write(&ns, "internal/platform.yaml", "platform: docker\n");
    eventually(
        "status.yaml to name the docker runner",
        || {
            status_file(&home, &ns)
                .contains("runner: docker")
                .then_some(())
        },
        || format!("{}\n{}", status_file(&home, &ns), d.log()),
    );
    wait_record(&d, &home, &ns, "Site", "west", "status: Ready");
    assert_eq!(echo_through(port), b"hello through the router");

    // The Site is deleted: the container is removed.
    std::fs::remove_file(
        home.path()
            .join(format!("namespaces/{ns}/input/resources/site.yaml")),
    )
    .unwrap();
    eventually(
        "the container to be removed",
        || inspect(&name).is_none().then_some(()),
        || d.log(),
    );

    // The Site is back, then the whole namespace directory is deleted:
    // the container is removed too.
    home.write(&ns, "input/resources/site.yaml", SITE);
    wait_record(&d, &home, &ns, "Site", "west", "status: Ready");
    assert!(inspect(&name).is_some());
    std::fs::remove_dir_all(home.path().join("namespaces").join(&ns)).unwrap();
    eventually(
        "the container to be removed with its namespace",
        || inspect(&name).is_none().then_some(()),
        || d.log(),
    );
    d.stop();
}

#[test]
fn a_missing_image_with_pull_never_is_the_sites_error() {
    if !podman_available() {
        return;
    }
    let engine = Engine::start();
    let ns = format!("pn{}", std::process::id());
    let home = DataHome::new();
    home.write(&ns, "internal/platform.yaml", "platform: podman\n");
    home.write(&ns, "input/resources/site.yaml", SITE);
    let image = "localhost/skupperd-test-absent:1";
    let d = daemon(&home, &config(&engine.socket(), image));
    let r = wait_record(&d, &home, &ns, "Site", "west", "status: Error");
    assert!(
        r.contains(&format!(
            "image {image} is not present and image_pull is \"never\"; run: podman pull {image}"
        )),
        "{r}"
    );
    assert!(inspect(&format!("{ns}-skupper-router")).is_none());
}

/// Needs no engine: the socket is missing.
#[test]
fn a_missing_engine_socket_is_the_sites_error_with_the_fix() {
    let home = DataHome::new();
    home.write("west", "internal/platform.yaml", "platform: podman\n");
    home.write("west", "input/resources/site.yaml", SITE);
    let d = daemon(&home, "podman_endpoint = \"/nonexistent/podman.sock\"\n");
    let r = wait_record(&d, &home, "west", "Site", "west", "status: Error");
    assert!(
        r.contains("podman API socket /nonexistent/podman.sock not found; run: systemctl enable --now podman.socket"),
        "{r}"
    );
}

#[test]
fn a_router_that_keeps_exiting_is_the_sites_error_with_its_reason_until_it_recovers() {
    if !podman_available() {
        return;
    }
    let _serial = serial();
    let mut engine = Engine::start();
    let image = engine.image(&format!("f{}", std::process::id()));
    let ns = format!("pf{}", std::process::id());
    let name = format!("{ns}-skupper-router");
    engine.containers.push(name.clone());
    let home = DataHome::new();
    home.write(&ns, "internal/platform.yaml", "platform: podman\n");
    home.write(&ns, "input/resources/site.yaml", SITE);
    let d = daemon(&home, &config(&engine.socket(), &image));
    wait_record(&d, &home, &ns, "Site", "west", "status: Ready");

    // From now on the router fails at start-up; it is killed once, and the
    // engine's restart policy and skupperd keep starting it.
    let fail = home
        .path()
        .join(format!("namespaces/{ns}/runtime/router/fail-on-purpose"));
    std::fs::write(&fail, "the test image fails on purpose").unwrap();
    podman(&["kill", &name]);
    let r = wait_record(&d, &home, &ns, "Site", "west", "status: Error");
    assert!(
        r.contains("router exited: ")
            && r.contains("Router start-up failed: the test image fails on purpose"),
        "{r}"
    );
    // status.yaml is renamed into place after the records: wait for it.
    eventually(
        "status.yaml to say the router failed",
        || {
            status_file(&home, &ns)
                .contains("state: Failed")
                .then_some(())
        },
        || format!("{}\n{}", status_file(&home, &ns), d.log()),
    );

    // The cause is gone: the next start works, the router answers, and the
    // Site is Ready again.
    std::fs::remove_file(&fail).unwrap();
    // Podman's restart policy may have given up on it by now, and skupperd
    // retries a failed router only every minute: start it, as an operator
    // fixing the cause would (a running container ignores this).
    let _ = Command::new("podman").args(["start", &name]).output();
    wait_record(&d, &home, &ns, "Site", "west", "status: Ready");
}
