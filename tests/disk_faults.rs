//! Disk faults under `skupperd run` (process runner, router double): the
//! namespace's `runtime/` is a small tmpfs of its own, which the test
//! fills up, runs out of inodes, or remounts read-only while an input
//! change waits to be written. Each must give an ERROR in the log, keep
//! every previous output byte for byte (no torn file, no temporary left,
//! `skrouterd.json` still the one the router serves), retry by itself, and
//! once the file system is usable again write the change without any new
//! input event, with `runtime/status.yaml` telling the failure.
//!
//! Mounting needs root (the tests and CI run as root); a mount that fails
//! fails the test, never skips it.

use crate::router_live::{free_port, serial, site, wait_status, with_process_runner};
use crate::support::daemon::{eventually, Daemon};
use crate::support::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        mount(&["-t", "tmpfs", "-o", options, "skupperd-test"], at);
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, options: &str) {
        mount(&["-o", &format!("remount,{options}")], &self.0);
    }
}

fn mount(args: &[&str], at: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .expect("running mount(8): the disk-fault tests need it (and root)");
    assert!(
        out.status.success(),
        "mount {args:?} {} failed (the disk-fault tests need root): {}",
        at.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The files skupperd owns under `runtime/` (the test's fillers aside).
fn owned(runtime: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    snapshot(runtime)
        .into_iter()
        .filter(|(rel, _)| !rel.to_string_lossy().starts_with("fill"))
        .map(|(rel, (bytes, ..))| (rel, bytes))
        .collect()
}

fn temporaries(runtime: &Path) -> Vec<PathBuf> {
    snapshot(runtime)
        .into_keys()
        .filter(|rel| rel.to_string_lossy().contains(".skupperd-tmp"))
        .collect()
}

fn config_json(runtime: &Path) -> serde_json::Value {
    let text = std::fs::read(runtime.join("router/skrouterd.json")).unwrap();
    serde_json::from_slice(&text).expect("skrouterd.json parses")
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Full,
    Inodes,
    ReadOnly,
}

/// Brings the fault about; returns what undoes it.
fn inflict(fault: Fault, fs: &Tmpfs) -> Box<dyn FnOnce()> {
    let dir = fs.0.clone();
    match fault {
        Fault::Full => {
            let path = dir.join("fill");
            let mut f = std::fs::File::create(&path).unwrap();
            let chunk = vec![0u8; 4096];
            loop {
                if let Err(e) = f.write_all(&chunk) {
                    assert_eq!(e.raw_os_error(), Some(28), "{e}");
                    break;
                }
            }
            drop(f);
            Box::new(move || std::fs::remove_file(path).unwrap())
        }
        Fault::Inodes => {
            let mut made = Vec::new();
            for i in 0.. {
                let p = dir.join(format!("fill-{i}"));
                match std::fs::File::create(&p) {
                    Ok(_) => made.push(p),
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(28), "{e}");
                        break;
                    }
                }
            }
            Box::new(move || {
                for p in made {
                    std::fs::remove_file(p).unwrap();
                }
            })
        }
        Fault::ReadOnly => {
            fs.remount("ro");
            let dir = fs.0.clone();
            Box::new(move || mount(&["-o", "remount,rw"], &dir))
        }
    }
}

fn survives(fault: Fault, options: &str, os_error: &str) {
    let _serial = serial();
    let home = DataHome::new();
    site(&home);
    let first = free_port();
    home.write(
        "west",
        "input/resources/a.yaml",
        &listener("a", "127.0.0.1", &first.to_string()),
    );
    let runtime = home.ns("west").join("runtime");
    // Declared before the daemon, so dropped after it.
    let fs = Tmpfs::mount(&runtime, options);
    let d: Daemon = with_process_runner(&home);
    wait_status(&d, &home, "Site", "west", "status: Ready");
    wait_status(
        &d,
        &home,
        "Listener",
        "a",
        "type: Configured\n    status: \"True\"",
    );
    let before = owned(&runtime);
    let config_before = config_json(&runtime);

    // (A router exit before the fault, such as a move off a management
    // port another test holds, is not this test's business.)
    let log_before = d.log().len();
    let undo = inflict(fault, &fs);
    let second = free_port();
    home.write(
        "west",
        "input/resources/b.yaml",
        &listener("b", "127.0.0.1", &second.to_string()),
    );
    d.wait_log("the outputs of the last successful pass are kept and still serve");
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("the outputs of the last successful pass are kept"))
        .unwrap_or_default()
        .to_string();
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(os_error), "{fault:?}: {line}");
    // Retried by the actor itself: no input event comes meanwhile.
    d.wait_log("runtime/ still cannot be written");
    assert_eq!(
        owned(&runtime),
        before,
        "{fault:?}: the previous outputs changed"
    );
    assert_eq!(config_json(&runtime), config_before);
    assert_eq!(temporaries(&runtime), Vec::<PathBuf>::new());
    // The router was left alone: still running what it had.
    let during = d.log().get(log_before..).unwrap_or_default().to_string();
    assert!(!during.contains("router exited"), "{during}");

    undo();
    let status = eventually(
        "the change to be written once the file system is usable again",
        || {
            let config = std::fs::read_to_string(runtime.join("router/skrouterd.json")).ok()?;
            let status = std::fs::read_to_string(runtime.join("status.yaml")).ok()?;
            (config.contains("listener/b") && status.contains("runtime/ could not be written from"))
                .then_some(status)
        },
        || d.log(),
    );
    assert!(status.contains(os_error), "{status}");
    assert!(status.contains("severity: warning"), "{status}");
    d.wait_log("runtime/ is written again after");
    wait_status(
        &d,
        &home,
        "Listener",
        "b",
        "type: Configured\n    status: \"True\"",
    );
    assert_eq!(temporaries(&runtime), Vec::<PathBuf>::new());
    let config = config_json(&runtime);
    assert!(config.to_string().contains("listener/a"), "{config}");
    // Nothing else was lost: every earlier output is still there.
    let now = owned(&runtime);
    for rel in before.keys() {
        assert!(
            now.contains_key(rel),
            "{fault:?}: {} is gone",
            rel.display()
        );
    }
    let told = status
        .lines()
        .find(|l| l.contains("could not be written from"))
        .unwrap_or_default();
    println!(
        "disk fault {fault:?}: log: {line}\n  status after recovery: {}",
        told.trim()
    );
}

#[test]
fn a_full_file_system_keeps_the_outputs_and_recovers_by_itself() {
    survives(Fault::Full, "size=1m,mode=755", "No space left on device");
}

#[test]
fn a_file_system_out_of_inodes_keeps_the_outputs_and_recovers_by_itself() {
    survives(
        Fault::Inodes,
        "size=8m,nr_inodes=200,mode=755",
        "No space left on device",
    );
}

#[test]
fn a_read_only_runtime_keeps_the_outputs_and_recovers_by_itself() {
    survives(Fault::ReadOnly, "size=8m,mode=755", "Read-only file system");
}
