//! `daemon::run` in-process, with a shutdown future the test controls.

use super::*;
use crate::config::{MapEnv, Settings};
use std::path::Path;

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

fn options(data_home: &Path, notifier: Notifier) -> (Config, Options, mpsc::UnboundedSender<()>) {
    let args = SettingsArgs {
        config: None,
        settings: Settings {
            data_home: Some(data_home.to_path_buf()),
            ..Settings::default()
        },
    };
    let env: Arc<dyn Env> = Arc::new(MapEnv::new().with("HOME", "/nonexistent"));
    let config = Config::load(&args, env.as_ref()).unwrap();
    let (hangup_tx, hangups) = mpsc::unbounded_channel();
    let opts = Options {
        args,
        env,
        notifier,
        log: None,
        hangups,
    };
    (config, opts, hangup_tx)
}

async fn next(socket: &tokio::net::UnixDatagram) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), socket.recv(&mut buf))
        .await
        .expect("a notification")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn wait_for(socket: &tokio::net::UnixDatagram, prefix: &str) {
    while !next(socket).await.starts_with(prefix) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_a_oneshot_writes_files_reloads_and_exits_cleanly_releasing_the_lock() {
    let home = tempfile::tempdir().unwrap();
    let ns = home.path().join("namespaces/west");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("sites/hello-world-west"),
        &ns,
    );
    let sock_dir = tempfile::tempdir().unwrap();
    let sock_path = sock_dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&sock_path).unwrap();
    let (config, opts, hangup) = options(home.path(), Notifier::to_socket(&sock_path, None));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(run(config, opts, async {
        let _ = stopped.await;
    }));

    wait_for(&socket, "READY=1").await;
    assert!(ns.join("runtime/router/skrouterd.json").is_file());
    assert!(ns.join("runtime/resources/Listener-backend.yaml").is_file());

    hangup.send(()).unwrap();
    wait_for(&socket, "RELOADING=1").await;
    wait_for(&socket, "READY=1").await;
    assert!(ns.join("runtime/router/skrouterd.json").is_file());

    stop.send(()).unwrap();
    wait_for(&socket, "STOPPING=1").await;
    daemon.await.unwrap().unwrap();
    // The lock went with `run`.
    drop(ControllerLock::acquire(home.path()).unwrap());
}

#[tokio::test]
async fn run_refuses_a_data_home_whose_lock_is_held() {
    let home = tempfile::tempdir().unwrap();
    let _held = ControllerLock::acquire(home.path()).unwrap();
    let (config, opts, _hangup) = options(home.path(), Notifier::disabled());
    let err = run(config, opts, std::future::pending()).await.unwrap_err();
    assert!(
        matches!(err, DaemonError::Lock(LockError::Held { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("controller.lock"), "{err}");
}
