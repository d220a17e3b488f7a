//! The systemd runner against a recording stand-in of the systemd manager:
//! a zbus object server on a peer-to-peer connection over a Unix socket,
//! as systemd's private socket is.

use super::*;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use zbus::zvariant::OwnedObjectPath;

const UNIT_PATH: &str = "/org/freedesktop/systemd1/unit/skupper_2drouter_40west_2eservice";

#[derive(Default)]
struct World {
    calls: Vec<String>,
    state: UnitState,
    n_restarts: u32,
    /// States the next StartUnit calls leave the unit in (default: active).
    next_start: VecDeque<UnitState>,
}

type Shared = Arc<Mutex<World>>;

fn lock(w: &Shared) -> std::sync::MutexGuard<'_, World> {
    w.lock().unwrap()
}

fn active() -> UnitState {
    UnitState {
        active: "active".into(),
        sub: "running".into(),
        result: "success".into(),
        exec_main_status: 0,
    }
}

struct Manager(Shared);

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    async fn start_unit(&self, name: String, mode: String) -> OwnedObjectPath {
        let mut w = lock(&self.0);
        w.calls.push(format!("StartUnit {name} {mode}"));
        w.state = w.next_start.pop_front().unwrap_or_else(active);
        OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/1").unwrap()
    }
    async fn restart_unit(&self, name: String, mode: String) -> OwnedObjectPath {
        let mut w = lock(&self.0);
        w.calls.push(format!("RestartUnit {name} {mode}"));
        w.state = active();
        OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/2").unwrap()
    }
    async fn stop_unit(&self, name: String, mode: String) -> OwnedObjectPath {
        let mut w = lock(&self.0);
        w.calls.push(format!("StopUnit {name} {mode}"));
        w.state = UnitState {
            active: "inactive".into(),
            sub: "dead".into(),
            result: "success".into(),
            exec_main_status: 0,
        };
        OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/3").unwrap()
    }
    async fn reset_failed_unit(&self, name: String) {
        lock(&self.0).calls.push(format!("ResetFailedUnit {name}"));
    }
    async fn load_unit(&self, name: String) -> zbus::fdo::Result<OwnedObjectPath> {
        if name != "skupper-router@west.service" {
            return Err(zbus::fdo::Error::Failed(format!("no unit {name}")));
        }
        Ok(OwnedObjectPath::try_from(UNIT_PATH).unwrap())
    }
}

struct Unit(Shared);

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl Unit {
    #[zbus(property)]
    async fn active_state(&self) -> String {
        lock(&self.0).state.active.clone()
    }
    #[zbus(property)]
    async fn sub_state(&self) -> String {
        lock(&self.0).state.sub.clone()
    }
}

struct Service(Shared);

#[zbus::interface(name = "org.freedesktop.systemd1.Service")]
impl Service {
    #[zbus(property)]
    async fn result(&self) -> String {
        lock(&self.0).state.result.clone()
    }
    #[zbus(property)]
    async fn exec_main_status(&self) -> i32 {
        lock(&self.0).state.exec_main_status
    }
    #[zbus(property, name = "NRestarts")]
    async fn n_restarts(&self) -> u32 {
        lock(&self.0).n_restarts
    }
}

/// The stand-in serving every connection made to `socket`.
fn stand_in(socket: &Path) -> Shared {
    let world: Shared = Arc::default();
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    let w = world.clone();
    tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            let conn = zbus::connection::Builder::unix_stream(stream)
                .server(zbus::Guid::generate())
                .unwrap()
                .p2p()
                .serve_at(MANAGER_PATH, Manager(w.clone()))
                .unwrap()
                .serve_at(UNIT_PATH, Unit(w.clone()))
                .unwrap()
                .serve_at(UNIT_PATH, Service(w.clone()))
                .unwrap()
                .build()
                .await;
            if let Ok(conn) = conn {
                conns.push(conn);
            }
        }
    });
    world
}

fn runner(dir: &Path) -> SystemdRunner {
    SystemdRunner::new(
        SystemdPaths {
            scope: Scope::System,
            socket: dir.join("private"),
            env_dir: dir.join("routers"),
        },
        "west",
    )
}

fn def(site_id: &str) -> RouterDefinition {
    RouterDefinition {
        namespace: "west".into(),
        config_path: PathBuf::from(
            "/var/lib/skupper/namespaces/west/runtime/router/skrouterd.json",
        ),
        site_id: site_id.into(),
        binary: PathBuf::from("/usr/sbin/skrouterd"),
    }
}

fn calls(w: &Shared) -> Vec<String> {
    std::mem::take(&mut lock(w).calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_writes_the_environment_file_and_starts_the_instance_over_dbus() {
    let dir = tempfile::tempdir().unwrap();
    let world = stand_in(&dir.path().join("private"));
    let mut r = runner(dir.path());
    r.ensure(&def("id-1")).await.unwrap();
    assert_eq!(r.state(), RouterProcessState::Running);
    assert_eq!(
        calls(&world),
        ["StartUnit skupper-router@west.service replace"]
    );
    let env = dir.path().join("routers/west.env");
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "SKUPPER_SITE_ID=id-1\nSKUPPER_ROUTER_CONFIG=/var/lib/skupper/namespaces/west/runtime/router/skrouterd.json\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(r.name(), "systemd");
    assert!(r.outlives_daemon());

    // Unchanged: nothing is started or restarted.
    r.ensure(&def("id-1")).await.unwrap();
    assert!(calls(&world).is_empty());
    // A new environment: the running unit is restarted.
    r.ensure(&def("id-2")).await.unwrap();
    assert_eq!(
        calls(&world),
        ["RestartUnit skupper-router@west.service replace"]
    );
    // skupperd's own restart (a router id change).
    r.restart().await.unwrap();
    assert_eq!(
        calls(&world),
        ["RestartUnit skupper-router@west.service replace"]
    );

    // Stop: the unit stops and its environment file goes.
    r.stop().await.unwrap();
    assert_eq!(
        calls(&world),
        ["StopUnit skupper-router@west.service replace"]
    );
    assert!(!env.exists());
    assert_eq!(r.state(), RouterProcessState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_unit_is_explained_and_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let world = stand_in(&dir.path().join("private"));
    let mut r = runner(dir.path());
    r.ensure(&def("id")).await.unwrap();
    calls(&world);
    // The router exits with status 1 twice; systemd gave up on it.
    {
        let mut w = lock(&world);
        w.n_restarts = 2;
        w.state = UnitState {
            active: "failed".into(),
            sub: "failed".into(),
            result: "exit-code".into(),
            exec_main_status: 1,
        };
    }
    r.refresh().await.unwrap();
    assert_eq!(
        calls(&world),
        ["StartUnit skupper-router@west.service replace"]
    );
    assert_eq!(r.restarts(), 2);
    assert_eq!(r.last_exit().unwrap().cause, "exited with status 1");
    assert_eq!(r.state(), RouterProcessState::Running);
    // It answers: the exit is forgotten.
    r.answered();
    assert_eq!(r.last_exit(), None);

    // A start that fails leaves the unit failed, which the state says.
    lock(&world).state = UnitState {
        active: "inactive".into(),
        sub: "dead".into(),
        ..Default::default()
    };
    lock(&world).next_start.push_back(UnitState {
        active: "failed".into(),
        sub: "failed".into(),
        result: "exit-code".into(),
        exec_main_status: 1,
    });
    r.refresh().await.unwrap();
    assert_eq!(
        r.state(),
        RouterProcessState::Failed(
            "router exited: exited with status 1 (unit result exit-code)".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_start_limit_the_unit_is_reset_only_after_a_pause() {
    let dir = tempfile::tempdir().unwrap();
    let world = stand_in(&dir.path().join("private"));
    let mut r = runner(dir.path());
    lock(&world).next_start.push_back(UnitState {
        active: "failed".into(),
        sub: "failed".into(),
        result: "start-limit-hit".into(),
        exec_main_status: 1,
    });
    r.ensure(&def("id")).await.unwrap();
    assert_eq!(
        calls(&world),
        ["StartUnit skupper-router@west.service replace"]
    );
    // Within the pause: neither reset nor started.
    r.refresh().await.unwrap();
    assert!(calls(&world).is_empty());
    assert!(matches!(r.state(), RouterProcessState::Failed(_)));
    // The pause is over.
    r.start_again_at = Some(Instant::now());
    r.refresh().await.unwrap();
    assert_eq!(
        calls(&world),
        [
            "ResetFailedUnit skupper-router@west.service",
            "StartUnit skupper-router@west.service replace"
        ]
    );
    assert_eq!(r.state(), RouterProcessState::Running);
}

#[tokio::test]
async fn an_unreachable_manager_is_the_runners_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = runner(dir.path());
    r.ensure(&def("id")).await.unwrap();
    let RouterProcessState::Failed(why) = r.state() else {
        panic!("{:?}", r.state())
    };
    assert!(
        why.starts_with(&format!(
            "systemd manager at {} is not reachable",
            dir.path().join("private").display()
        )),
        "{why}"
    );
}

#[test]
fn the_manager_and_environment_files_follow_the_scope() {
    let root = SystemdPaths::for_identity(true, None).unwrap();
    assert_eq!(root.socket, PathBuf::from("/run/systemd/private"));
    assert_eq!(root.env_dir, PathBuf::from("/run/skupperd/routers"));
    let user = SystemdPaths::for_identity(false, Some(Path::new("/run/user/1000"))).unwrap();
    assert_eq!(user.scope, Scope::User);
    assert_eq!(user.socket, PathBuf::from("/run/user/1000/systemd/private"));
    assert_eq!(
        user.env_dir,
        PathBuf::from("/run/user/1000/skupperd/routers")
    );
    assert!(SystemdPaths::for_identity(false, None).is_none());
    assert!(user.reachable(|p| p == Path::new("/run/user/1000/systemd/private")));
    assert!(!root.reachable(|_| false));
    assert!(root.reachable(|p| p == Path::new("/run/systemd/system")));
    assert_eq!(unit_name("west"), "skupper-router@west.service");
}
