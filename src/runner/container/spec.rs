//! The router container, as plain data (platform.md 2.1 and 2.4): the
//! create request skupperd sends, its spec hash, the engine socket to use
//! (2.3), and what to do with whatever container already has the name.
//! Pure: no I/O, so every rule is unit-tested.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the router's config directory is mounted in the container.
pub const CONFIG_MOUNT: &str = "/etc/skupper-router/config";
/// Where the certificates directory is mounted in the container.
pub const CERTS_MOUNT: &str = "/etc/skupper-router/runtime/certs";
/// `SSL_PROFILE_BASE_PATH` inside the container.
pub const BASE_PATH: &str = "/etc/skupper-router";
/// Seconds the engine waits between SIGTERM and SIGKILL.
pub const STOP_TIMEOUT_S: u32 = 10;

pub const LABEL_APPLICATION: &str = "application";
pub const LABEL_COMPONENT: &str = "skupper.io/v2-component";
pub const LABEL_SITE_ID: &str = "skupper.io/site-id";
pub const LABEL_NAMESPACE: &str = "skupperd.io/namespace";
pub const LABEL_SPEC_HASH: &str = "skupperd.io/spec-hash";

/// Which engine serves the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    Podman,
    Docker,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Podman => "podman",
            EngineKind::Docker => "docker",
        }
    }
}

/// Who skupperd runs as, for the socket paths and the container user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// `XDG_RUNTIME_DIR`, for a user skupperd.
    pub runtime_dir: Option<PathBuf>,
}

impl Identity {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// The container's name: `<ns>-skupper-router`.
pub fn container_name(namespace: &str) -> String {
    format!("{namespace}-skupper-router")
}

/// What the create request is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecInput<'a> {
    pub namespace: &'a str,
    /// Absolute `<ns>/runtime/router/skrouterd.json`.
    pub config_path: &'a Path,
    pub site_id: &'a str,
    pub image: &'a str,
    pub engine: EngineKind,
    pub identity: &'a Identity,
}

/// The directories mounted into the container: `runtime/router` and
/// `runtime/certs` (whole directories, so atomic renames show inside).
pub fn mount_sources(config_path: &Path) -> (PathBuf, PathBuf) {
    let router_dir = config_path.parent().unwrap_or(Path::new("/"));
    let runtime = router_dir.parent().unwrap_or(Path::new("/"));
    (router_dir.to_path_buf(), runtime.join("certs"))
}

/// Rootless Podman runs the router as skupperd's user in a `keep-id` user
/// namespace; every other engine as `0:0` (platform.md 2.1).
pub fn user_and_userns(engine: EngineKind, identity: &Identity) -> (String, Option<&'static str>) {
    match (engine, identity.is_root()) {
        (EngineKind::Podman, false) => (
            format!("{}:{}", identity.uid, identity.gid),
            Some("keep-id"),
        ),
        _ => ("0:0".to_string(), None),
    }
}

/// The create request, spec-hash label included.
pub fn create_request(input: &SpecInput<'_>) -> Value {
    let (router_dir, certs_dir) = mount_sources(input.config_path);
    let (user, userns) = user_and_userns(input.engine, input.identity);
    let mut labels = Map::new();
    for (k, v) in [
        (LABEL_APPLICATION, "skupper-v2"),
        (LABEL_COMPONENT, "router"),
        (LABEL_SITE_ID, input.site_id),
        (LABEL_NAMESPACE, input.namespace),
    ] {
        labels.insert(k.to_string(), Value::String(v.to_string()));
    }
    let mut host = Map::new();
    host.insert("NetworkMode".into(), json!("host"));
    host.insert(
        "Binds".into(),
        json!([
            format!("{}:{CONFIG_MOUNT}:ro,z", router_dir.display()),
            format!("{}:{CERTS_MOUNT}:ro,z", certs_dir.display()),
        ]),
    );
    host.insert("RestartPolicy".into(), json!({ "Name": "always" }));
    if let Some(mode) = userns {
        host.insert("UsernsMode".into(), json!(mode));
    }
    let mut body = Map::new();
    body.insert("Image".into(), json!(input.image));
    body.insert(
        "Env".into(),
        json!([
            "APPLICATION_NAME=skupper-router",
            format!("QDROUTERD_CONF={CONFIG_MOUNT}/skrouterd.json"),
            "QDROUTERD_CONF_TYPE=json",
            format!("SKUPPER_SITE_ID={}", input.site_id),
            format!("SSL_PROFILE_BASE_PATH={BASE_PATH}"),
        ]),
    );
    body.insert("Labels".into(), Value::Object(labels));
    body.insert("User".into(), json!(user));
    body.insert("StopTimeout".into(), json!(STOP_TIMEOUT_S));
    body.insert("HostConfig".into(), Value::Object(host));
    let hash = spec_hash(&Value::Object(body.clone()));
    if let Some(Value::Object(labels)) = body.get_mut("Labels") {
        labels.insert(LABEL_SPEC_HASH.into(), Value::String(hash));
    }
    Value::Object(body)
}

/// sha256 (hex) of the request without the spec-hash label.
pub fn spec_hash(request_without_hash: &Value) -> String {
    let bytes = request_without_hash.to_string();
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The spec hash a create request carries.
pub fn hash_of(request: &Value) -> Option<&str> {
    request.get("Labels")?.get(LABEL_SPEC_HASH)?.as_str()
}

/// The parts of `GET /containers/<name>/json` skupperd reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub state: ContainerState,
    #[serde(default)]
    pub config: InspectConfig,
    #[serde(default)]
    pub restart_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub exit_code: i64,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub finished_at: String,
}

impl ContainerState {
    pub fn running(&self) -> bool {
        matches!(self.status.as_str(), "running" | "restarting" | "paused")
    }

    /// When the last run ended, if it ever did (engines report the zero
    /// time for a container that never stopped).
    pub fn finished(&self) -> Option<&str> {
        let f = self.finished_at.as_str();
        (!f.is_empty() && !f.starts_with("0001-01-01")).then_some(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub labels: BTreeMap<String, String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// What to do about the container that has the router's name (2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// None exists: create it and start it.
    Create,
    /// skupperd's, with another spec; or the Go tooling's for this site
    /// (adopted): stop, remove, create, start.
    Recreate { adopted: bool },
    /// skupperd's, current spec, not running: start it.
    Start,
    /// skupperd's, current spec, running.
    Keep,
    /// Someone else's: never touched.
    Conflict(String),
}

/// Decides from the inspected container (`None`: absent).
pub fn decide(existing: Option<&Inspect>, namespace: &str, site_id: &str, hash: &str) -> Step {
    let Some(c) = existing else {
        return Step::Create;
    };
    let labels = &c.config.labels;
    let ours = labels.get(LABEL_NAMESPACE).map(String::as_str) == Some(namespace);
    if ours {
        return match (
            labels.get(LABEL_SPEC_HASH).map(String::as_str) == Some(hash),
            c.state.running(),
        ) {
            (false, _) => Step::Recreate { adopted: false },
            (true, true) => Step::Keep,
            (true, false) => Step::Start,
        };
    }
    let from_go = !labels.contains_key(LABEL_NAMESPACE)
        && labels.get(LABEL_APPLICATION).map(String::as_str) == Some("skupper-v2")
        && labels.get(LABEL_SITE_ID).map(String::as_str) == Some(site_id);
    if from_go {
        return Step::Recreate { adopted: true };
    }
    Step::Conflict(format!(
        "container \"{}\" exists and is not managed by skupperd; remove or rename it",
        container_name(namespace)
    ))
}

/// The engine socket (2.3): the configured endpoint (config key or
/// `CONTAINER_ENDPOINT`, already resolved into `configured`), else the
/// engine's default for root or for the user. `exists` is asked about
/// rootless Docker's socket only.
pub fn socket_path(
    engine: EngineKind,
    configured: Option<&Path>,
    identity: &Identity,
    exists: impl Fn(&Path) -> bool,
) -> PathBuf {
    if let Some(path) = configured {
        return path.to_path_buf();
    }
    let user_dir = identity
        .runtime_dir
        .as_ref()
        .filter(|_| !identity.is_root());
    match (engine, user_dir) {
        (EngineKind::Podman, None) => PathBuf::from("/run/podman/podman.sock"),
        (EngineKind::Podman, Some(dir)) => dir.join("podman/podman.sock"),
        (EngineKind::Docker, Some(dir)) if exists(&dir.join("docker.sock")) => {
            dir.join("docker.sock")
        }
        (EngineKind::Docker, _) => PathBuf::from("/run/docker.sock"),
    }
}

/// The fix a missing socket's message names.
pub fn socket_fix(engine: EngineKind, identity: &Identity) -> String {
    let user = if identity.is_root() { "" } else { "--user " };
    match engine {
        EngineKind::Podman => format!("systemctl {user}enable --now podman.socket"),
        EngineKind::Docker if identity.is_root() => {
            "systemctl enable --now docker.socket".to_string()
        }
        EngineKind::Docker => {
            "systemctl --user enable --now docker.socket (rootless Docker), or set docker_endpoint"
                .to_string()
        }
    }
}

/// `repo` and `tag` of an image reference, for the pull request.
pub fn split_image(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], &image[name_start + i + 1..]),
        None => (image, "latest"),
    }
}

/// Splits the engine's multiplexed log stream (8-byte headers: stream id,
/// three zero bytes, big-endian length) into lines. Bytes that are not
/// framed (a TTY container) are taken as they are.
pub fn demux_logs(bytes: &[u8]) -> Vec<String> {
    let mut text = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    let framed =
        matches!(bytes.first(), Some(0..=2)) && bytes.len() >= 8 && bytes[1..4] == [0, 0, 0];
    if framed {
        while rest.len() >= 8 {
            let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let end = (8 + len).min(rest.len());
            text.extend_from_slice(&rest[8..end]);
            rest = &rest[end..];
        }
    } else {
        text.extend_from_slice(rest);
    }
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Identity {
        Identity {
            uid: 0,
            gid: 0,
            runtime_dir: None,
        }
    }

    fn user() -> Identity {
        Identity {
            uid: 1000,
            gid: 1000,
            runtime_dir: Some(PathBuf::from("/run/user/1000")),
        }
    }

    fn request(engine: EngineKind, identity: &Identity) -> Value {
        create_request(&SpecInput {
            namespace: "west",
            config_path: Path::new(
                "/var/lib/skupper/namespaces/west/runtime/router/skrouterd.json",
            ),
            site_id: "6f1c2d3e",
            image: "quay.io/skupper/skupper-router:3.4.2",
            engine,
            identity,
        })
    }

    #[test]
    fn the_create_request_is_platform_md_2_1() {
        let r = request(EngineKind::Podman, &root());
        let hash = hash_of(&r).unwrap().to_string();
        assert_eq!(hash.len(), 64);
        assert_eq!(
            r,
            json!({
                "Image": "quay.io/skupper/skupper-router:3.4.2",
                "Env": [
                    "APPLICATION_NAME=skupper-router",
                    "QDROUTERD_CONF=/etc/skupper-router/config/skrouterd.json",
                    "QDROUTERD_CONF_TYPE=json",
                    "SKUPPER_SITE_ID=6f1c2d3e",
                    "SSL_PROFILE_BASE_PATH=/etc/skupper-router"
                ],
                "Labels": {
                    "application": "skupper-v2",
                    "skupper.io/v2-component": "router",
                    "skupper.io/site-id": "6f1c2d3e",
                    "skupperd.io/namespace": "west",
                    "skupperd.io/spec-hash": hash,
                },
                "User": "0:0",
                "StopTimeout": 10,
                "HostConfig": {
                    "NetworkMode": "host",
                    "Binds": [
                        "/var/lib/skupper/namespaces/west/runtime/router:/etc/skupper-router/config:ro,z",
                        "/var/lib/skupper/namespaces/west/runtime/certs:/etc/skupper-router/runtime/certs:ro,z"
                    ],
                    "RestartPolicy": { "Name": "always" }
                }
            })
        );
        assert_eq!(container_name("west"), "west-skupper-router");
    }

    #[test]
    fn the_hash_covers_the_request_without_its_own_label() {
        let r = request(EngineKind::Podman, &root());
        let mut without = r.clone();
        without["Labels"]
            .as_object_mut()
            .unwrap()
            .remove(LABEL_SPEC_HASH);
        assert_eq!(hash_of(&r), Some(spec_hash(&without).as_str()));
        // Stable, and every input moves it.
        assert_eq!(r, request(EngineKind::Podman, &root()));
        assert_ne!(hash_of(&r), hash_of(&request(EngineKind::Podman, &user())));
        let other_image = create_request(&SpecInput {
            namespace: "west",
            config_path: Path::new(
                "/var/lib/skupper/namespaces/west/runtime/router/skrouterd.json",
            ),
            site_id: "6f1c2d3e",
            image: "localhost/other:1",
            engine: EngineKind::Podman,
            identity: &root(),
        });
        assert_ne!(hash_of(&r), hash_of(&other_image));
    }

    #[test]
    fn rootless_podman_keeps_the_users_id_and_everything_else_runs_as_root() {
        let r = request(EngineKind::Podman, &user());
        assert_eq!(r["User"], "1000:1000");
        assert_eq!(r["HostConfig"]["UsernsMode"], "keep-id");
        for (engine, id) in [
            (EngineKind::Docker, user()),
            (EngineKind::Docker, root()),
            (EngineKind::Podman, root()),
        ] {
            let r = request(engine, &id);
            assert_eq!(r["User"], "0:0");
            assert!(r["HostConfig"].get("UsernsMode").is_none());
        }
    }

    fn inspected(labels: &[(&str, &str)], status: &str) -> Inspect {
        Inspect {
            config: InspectConfig {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            state: ContainerState {
                status: status.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn existing_containers_are_kept_started_recreated_adopted_or_left_alone() {
        let ours = |hash, status| {
            inspected(
                &[
                    (LABEL_NAMESPACE, "west"),
                    (LABEL_SPEC_HASH, hash),
                    (LABEL_SITE_ID, "id"),
                ],
                status,
            )
        };
        assert_eq!(decide(None, "west", "id", "h"), Step::Create);
        assert_eq!(
            decide(Some(&ours("h", "running")), "west", "id", "h"),
            Step::Keep
        );
        assert_eq!(
            decide(Some(&ours("h", "exited")), "west", "id", "h"),
            Step::Start
        );
        assert_eq!(
            decide(Some(&ours("h", "created")), "west", "id", "h"),
            Step::Start
        );
        assert_eq!(
            decide(Some(&ours("old", "running")), "west", "id", "h"),
            Step::Recreate { adopted: false }
        );
        let go = inspected(
            &[(LABEL_APPLICATION, "skupper-v2"), (LABEL_SITE_ID, "id")],
            "running",
        );
        assert_eq!(
            decide(Some(&go), "west", "id", "h"),
            Step::Recreate { adopted: true }
        );
        // The Go tooling's container of another site, or anything else.
        let conflict = Step::Conflict(
            "container \"west-skupper-router\" exists and is not managed by skupperd; remove or rename it".into(),
        );
        assert_eq!(
            decide(
                Some(&inspected(
                    &[(LABEL_APPLICATION, "skupper-v2"), (LABEL_SITE_ID, "other")],
                    "running"
                )),
                "west",
                "id",
                "h"
            ),
            conflict
        );
        assert_eq!(
            decide(Some(&inspected(&[], "running")), "west", "id", "h"),
            conflict
        );
        // skupperd's container of another namespace with this name.
        assert_eq!(
            decide(
                Some(&inspected(&[(LABEL_NAMESPACE, "east")], "running")),
                "west",
                "id",
                "h"
            ),
            conflict
        );
    }

    #[test]
    fn inspect_reads_podman_and_docker_answers() {
        let podman: Inspect = serde_json::from_str(
            r#"{"Id":"abc","State":{"Status":"exited","ExitCode":1,"Error":"","FinishedAt":"2026-12-03T13:00:00Z"},
                "Config":{"Labels":null},"RestartCount":3,"Image":"x"}"#,
        )
        .unwrap();
        assert_eq!(podman.state.exit_code, 1);
        assert!(!podman.state.running());
        assert_eq!(podman.state.finished(), Some("2026-12-03T13:00:00Z"));
        assert!(podman.config.labels.is_empty());
        assert_eq!(podman.restart_count, 3);
        let fresh: Inspect = serde_json::from_str(
            r#"{"State":{"Status":"running","FinishedAt":"0001-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        assert_eq!(fresh.state.finished(), None);
        assert!(fresh.state.running());
    }

    #[test]
    fn sockets_follow_platform_md_2_3() {
        let none = |_: &Path| false;
        let all = |_: &Path| true;
        let p = |e, c: Option<&str>, id: &Identity, ex: &dyn Fn(&Path) -> bool| {
            socket_path(e, c.map(Path::new), id, ex)
                .display()
                .to_string()
        };
        assert_eq!(
            p(EngineKind::Podman, None, &root(), &none),
            "/run/podman/podman.sock"
        );
        assert_eq!(
            p(EngineKind::Podman, None, &user(), &none),
            "/run/user/1000/podman/podman.sock"
        );
        assert_eq!(
            p(EngineKind::Docker, None, &root(), &all),
            "/run/docker.sock"
        );
        assert_eq!(
            p(EngineKind::Docker, None, &user(), &all),
            "/run/user/1000/docker.sock"
        );
        assert_eq!(
            p(EngineKind::Docker, None, &user(), &none),
            "/run/docker.sock"
        );
        assert_eq!(
            p(EngineKind::Podman, Some("/tmp/p.sock"), &user(), &none),
            "/tmp/p.sock"
        );
        // A user without XDG_RUNTIME_DIR gets the system socket.
        let bare = Identity {
            uid: 1000,
            gid: 1000,
            runtime_dir: None,
        };
        assert_eq!(
            p(EngineKind::Podman, None, &bare, &none),
            "/run/podman/podman.sock"
        );
        assert_eq!(
            socket_fix(EngineKind::Podman, &user()),
            "systemctl --user enable --now podman.socket"
        );
        assert_eq!(
            socket_fix(EngineKind::Podman, &root()),
            "systemctl enable --now podman.socket"
        );
    }

    #[test]
    fn image_references_split_into_repo_and_tag() {
        assert_eq!(
            split_image("quay.io/skupper/skupper-router:3.4.2"),
            ("quay.io/skupper/skupper-router", "3.4.2")
        );
        assert_eq!(
            split_image("localhost:5000/router"),
            ("localhost:5000/router", "latest")
        );
        assert_eq!(split_image("router"), ("router", "latest"));
        assert_eq!(split_image("r@sha256:abc"), ("r@sha256:abc", ""));
    }

    #[test]
    fn multiplexed_logs_become_lines() {
        let frame = |stream: u8, text: &[u8]| {
            let mut f = vec![stream, 0, 0, 0];
            f.extend_from_slice(&(text.len() as u32).to_be_bytes());
            f.extend_from_slice(text);
            f
        };
        let mut bytes = frame(1, b"hello\n");
        bytes.extend(frame(2, b"Router start-up failed: bad conf\n"));
        bytes.extend_from_slice(b"x"); // a torn frame header is dropped
        assert_eq!(
            demux_logs(&bytes),
            vec!["hello", "Router start-up failed: bad conf"]
        );
        assert_eq!(demux_logs(b"plain\nlines\n"), vec!["plain", "lines"]);
    }
}
