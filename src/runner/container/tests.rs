//! The container runner against an in-memory engine that records every
//! call.

use super::engine::{Engine, EngineError, EngineResult};
use super::spec::{ContainerState, EngineKind, Identity, Inspect, InspectConfig};
use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct World {
    containers: BTreeMap<String, (Inspect, Value)>,
    images: BTreeSet<String>,
    calls: Vec<String>,
    logs: Vec<String>,
    /// The next call fails with this.
    fail: Option<EngineError>,
    clock: u32,
}

#[derive(Clone, Default)]
struct FakeEngine(Arc<Mutex<World>>);

impl FakeEngine {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }
    fn op(&self, call: String) -> EngineResult<()> {
        let mut w = self.world();
        w.calls.push(call);
        match w.fail.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut self.world().calls)
    }
    /// The router in the container exits with `code`.
    fn exit(&self, name: &str, code: i64) {
        let mut w = self.world();
        w.clock += 1;
        let at = format!("2026-12-03T00:00:{:02}Z", w.clock);
        let c = w.containers.get_mut(name).unwrap();
        c.0.state = ContainerState {
            status: "exited".into(),
            exit_code: code,
            finished_at: at,
            ..Default::default()
        };
    }
    fn status(&self, name: &str) -> Option<String> {
        self.world()
            .containers
            .get(name)
            .map(|c| c.0.state.status.clone())
    }
}

fn not_found() -> EngineError {
    EngineError::Api {
        engine: "podman",
        what: "x".into(),
        status: 404,
        message: "no such container".into(),
    }
}

impl Engine for FakeEngine {
    async fn inspect(&self, name: &str) -> EngineResult<Option<Inspect>> {
        self.op(format!("inspect {name}"))?;
        Ok(self.world().containers.get(name).map(|c| c.0.clone()))
    }
    async fn image_present(&self, image: &str) -> EngineResult<bool> {
        self.op(format!("image {image}"))?;
        Ok(self.world().images.contains(image))
    }
    async fn pull(&self, image: &str) -> EngineResult<()> {
        self.op(format!("pull {image}"))?;
        self.world().images.insert(image.to_string());
        Ok(())
    }
    async fn create(&self, name: &str, request: &Value) -> EngineResult<()> {
        self.op(format!("create {name}"))?;
        let labels = request["Labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let inspect = Inspect {
            id: name.into(),
            state: ContainerState {
                status: "created".into(),
                ..Default::default()
            },
            config: InspectConfig { labels },
            restart_count: 0,
        };
        self.world()
            .containers
            .insert(name.to_string(), (inspect, request.clone()));
        Ok(())
    }
    async fn start(&self, name: &str) -> EngineResult<()> {
        self.op(format!("start {name}"))?;
        let mut w = self.world();
        let c = w.containers.get_mut(name).ok_or_else(not_found)?;
        c.0.state.status = "running".into();
        Ok(())
    }
    async fn restart(&self, name: &str, _t: u32) -> EngineResult<()> {
        self.op(format!("restart {name}"))?;
        let mut w = self.world();
        w.clock += 1;
        let at = format!("2026-12-03T00:00:{:02}Z", w.clock);
        let c = w.containers.get_mut(name).ok_or_else(not_found)?;
        c.0.state.status = "running".into();
        c.0.state.finished_at = at;
        Ok(())
    }
    async fn remove(&self, name: &str) -> EngineResult<()> {
        self.op(format!("remove {name}"))?;
        self.world().containers.remove(name);
        Ok(())
    }
    async fn logs(&self, name: &str, _tail: u32) -> EngineResult<Vec<String>> {
        self.op(format!("logs {name}"))?;
        Ok(self.world().logs.clone())
    }
}

const IMAGE: &str = "localhost/router:1";
const NAME: &str = "west-skupper-router";

fn runner(pull: ImagePull) -> (ContainerRunner<FakeEngine>, FakeEngine) {
    let engine = FakeEngine::default();
    let settings = ContainerSettings {
        engine: EngineKind::Podman,
        image: IMAGE.into(),
        pull,
        identity: Identity {
            uid: 0,
            gid: 0,
            runtime_dir: None,
        },
    };
    let restart = RestartConfig {
        initial_delay: std::time::Duration::ZERO,
        failed_retry: std::time::Duration::ZERO,
        ..RestartConfig::default()
    };
    (
        ContainerRunner::new(engine.clone(), settings, "west").with_restart(restart),
        engine,
    )
}

fn def(site_id: &str) -> RouterDefinition {
    RouterDefinition {
        namespace: "west".into(),
        config_path: PathBuf::from("/data/namespaces/west/runtime/router/skrouterd.json"),
        site_id: site_id.into(),
        binary: PathBuf::from("/usr/sbin/skrouterd"),
    }
}

#[tokio::test]
async fn an_absent_container_is_created_from_the_spec_and_started() {
    let (mut r, engine) = runner(ImagePull::Missing);
    engine.world().images.insert(IMAGE.into());
    r.ensure(&def("id")).await.unwrap();
    assert_eq!(
        engine.calls(),
        [
            format!("inspect {NAME}"),
            format!("image {IMAGE}"),
            format!("create {NAME}"),
            format!("start {NAME}"),
            format!("inspect {NAME}")
        ]
    );
    assert_eq!(r.state(), RouterProcessState::Running);
    assert_eq!(r.name(), "podman");
    assert!(r.outlives_daemon());
    let request = engine.world().containers[NAME].1.clone();
    assert_eq!(request["HostConfig"]["NetworkMode"], "host");
    assert_eq!(request["Labels"]["skupper.io/site-id"], "id");
    // Unchanged: only looked at.
    r.ensure(&def("id")).await.unwrap();
    assert_eq!(engine.calls(), [format!("inspect {NAME}")]);
}

#[tokio::test]
async fn image_pull_follows_the_setting() {
    let (mut r, engine) = runner(ImagePull::Missing);
    r.ensure(&def("id")).await.unwrap();
    assert!(engine.calls().contains(&format!("pull {IMAGE}")));
    assert_eq!(r.state(), RouterProcessState::Running);

    let (mut r, engine) = runner(ImagePull::Never);
    r.ensure(&def("id")).await.unwrap();
    assert_eq!(
        r.state(),
        RouterProcessState::Failed(format!(
            "image {IMAGE} is not present and image_pull is \"never\"; run: podman pull {IMAGE}"
        ))
    );
    assert!(engine.status(NAME).is_none());
    // Once the image is there, the next look creates the container.
    engine.world().images.insert(IMAGE.into());
    r.refresh().await.unwrap();
    assert_eq!(r.state(), RouterProcessState::Running);

    let (mut r, engine) = runner(ImagePull::Always);
    engine.world().images.insert(IMAGE.into());
    r.ensure(&def("id")).await.unwrap();
    assert!(engine.calls().contains(&format!("pull {IMAGE}")));
}

#[tokio::test]
async fn a_changed_spec_recreates_the_container() {
    let (mut r, engine) = runner(ImagePull::Missing);
    r.ensure(&def("id")).await.unwrap();
    engine.calls();
    r.ensure(&def("other-site")).await.unwrap();
    let calls = engine.calls();
    assert!(calls.contains(&format!("remove {NAME}")), "{calls:?}");
    assert!(calls.contains(&format!("create {NAME}")), "{calls:?}");
    assert_eq!(
        engine.world().containers[NAME].1["Labels"]["skupper.io/site-id"],
        "other-site"
    );
    assert_eq!(r.state(), RouterProcessState::Running);
}

#[tokio::test]
async fn the_go_tooling_container_of_this_site_is_adopted_and_a_foreign_one_left_alone() {
    let (mut r, engine) = runner(ImagePull::Missing);
    let go = |site: &str| Inspect {
        state: ContainerState {
            status: "running".into(),
            ..Default::default()
        },
        config: InspectConfig {
            labels: [("application", "skupper-v2"), ("skupper.io/site-id", site)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        ..Default::default()
    };
    engine
        .world()
        .containers
        .insert(NAME.into(), (go("id"), Value::Null));
    r.ensure(&def("id")).await.unwrap();
    assert_eq!(r.state(), RouterProcessState::Running);
    assert_eq!(
        engine.world().containers[NAME].1["Labels"]["skupperd.io/namespace"],
        "west"
    );

    let (mut r, engine) = runner(ImagePull::Missing);
    engine
        .world()
        .containers
        .insert(NAME.into(), (go("someone-else"), Value::Null));
    r.ensure(&def("id")).await.unwrap();
    let RouterProcessState::Failed(why) = r.state() else {
        panic!("{:?}", r.state())
    };
    assert!(why.contains("container \"west-skupper-router\" exists and is not managed by skupperd; remove or rename it"), "{why}");
    // Stopping never removes it either.
    r.stop().await.unwrap();
    assert!(!engine.calls().contains(&format!("remove {NAME}")));
    assert!(engine.status(NAME).is_some());
}

#[tokio::test]
async fn exits_are_explained_started_again_and_fail_after_five() {
    let (mut r, engine) = runner(ImagePull::Missing);
    r.ensure(&def("id")).await.unwrap();
    engine.world().logs =
        vec!["2026-12-03 ROUTER (critical) Router start-up failed: bad config".into()];
    for n in 1..=4 {
        engine.exit(NAME, 1);
        r.refresh().await.unwrap();
        assert_eq!(r.restarts(), n);
        assert_eq!(
            r.state(),
            RouterProcessState::Running,
            "started again after exit {n}"
        );
        assert!(r
            .last_exit()
            .unwrap()
            .cause
            .contains("Router start-up failed: bad config"));
    }
    engine.exit(NAME, 1);
    r.refresh().await.unwrap();
    let RouterProcessState::Failed(why) = r.state() else {
        panic!("{:?}", r.state())
    };
    assert!(
        why.starts_with("router exited: ") && why.contains("bad config"),
        "{why}"
    );
    // Started again while failed; it stays failed until the router answers.
    assert_eq!(engine.status(NAME).as_deref(), Some("running"));
    r.refresh().await.unwrap();
    assert!(matches!(r.state(), RouterProcessState::Failed(_)));
    // The router answers: recovered.
    r.answered();
    assert_eq!(r.state(), RouterProcessState::Running);
    assert_eq!(r.last_exit(), None);
}

#[tokio::test]
async fn a_restart_is_not_an_exit_and_stop_removes_the_container() {
    let (mut r, engine) = runner(ImagePull::Missing);
    r.ensure(&def("id")).await.unwrap();
    r.restart().await.unwrap();
    r.refresh().await.unwrap();
    assert_eq!(r.restarts(), 0);
    assert_eq!(r.last_exit(), None);
    assert_eq!(r.state(), RouterProcessState::Running);
    r.stop().await.unwrap();
    assert!(engine.status(NAME).is_none());
    assert_eq!(r.state(), RouterProcessState::Stopped);
}

#[tokio::test]
async fn engine_errors_become_failed_and_clear_when_the_engine_answers() {
    let (mut r, engine) = runner(ImagePull::Missing);
    engine.world().fail = Some(EngineError::NoSocket {
        engine: "podman",
        path: PathBuf::from("/run/podman/podman.sock"),
        fix: "systemctl enable --now podman.socket".into(),
    });
    r.ensure(&def("id")).await.unwrap();
    assert_eq!(
        r.state(),
        RouterProcessState::Failed("podman API socket /run/podman/podman.sock not found; run: systemctl enable --now podman.socket".into())
    );
    r.refresh().await.unwrap();
    assert_eq!(r.state(), RouterProcessState::Running);
}
