//! The controller lock: `<data home>/namespaces/controller.lock`, held with
//! an exclusive `flock(2)` for as long as the [`ControllerLock`] lives, so
//! one controller (skupperd, `skupperd render`, or Skupper's Go system
//! controller, which takes the same file with `syscall.Flock(LOCK_EX)`)
//! writes a data home at a time.
//!
//! `std::fs::File::try_lock` is `flock(fd, LOCK_EX | LOCK_NB)` on Linux, so
//! the two implementations exclude each other. flock locks belong to the
//! open file description: a second open of the file conflicts even inside
//! the same process, and the lock goes away with the process, so a crash
//! never leaves a stale lock behind.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (or another open of the file) holds it. Expected
    /// when a daemon runs: `skupperd render` exits 2 with this message.
    #[error("another skupperd or skupper controller holds {}", path.display())]
    Held { path: PathBuf },
    /// The directories or the file could not be created or opened.
    #[error("cannot open the controller lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct ControllerLock {
    path: PathBuf,
    _file: File,
}

impl ControllerLock {
    /// The lock file of a data home.
    pub fn path_for(data_home: &Path) -> PathBuf {
        data_home.join("namespaces").join("controller.lock")
    }

    /// Takes the lock of `data_home` without waiting, creating
    /// `<data home>/namespaces/` (mode 0711, as platform.md 1.1 wants so a
    /// router user can traverse it) and the lock file as needed.
    ///
    /// # Errors
    /// [`LockError::Held`] when another controller has it, [`LockError::Io`]
    /// when the file cannot be created or opened.
    pub fn acquire(data_home: &Path) -> Result<ControllerLock, LockError> {
        let path = Self::path_for(data_home);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(dir)
                .map_err(io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(ControllerLock { path, _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held { path }),
            Err(TryLockError::Error(source)) => Err(io(source)),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn a_second_acquire_fails_until_the_first_guard_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data_home = dir.path().join("not/yet/there");
        let first = ControllerLock::acquire(&data_home).unwrap();
        assert_eq!(first.path(), data_home.join("namespaces/controller.lock"));
        assert!(first.path().is_file());

        let err = ControllerLock::acquire(&data_home).unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "another skupperd or skupper controller holds {}/namespaces/controller.lock",
                data_home.display()
            )
        );

        drop(first);
        let again = ControllerLock::acquire(&data_home).unwrap();
        drop(again);
    }

    /// util-linux `flock(1)` uses flock(2) with LOCK_EX, as the Go
    /// controller's `syscall.Flock` does: the two must exclude each other.
    #[test]
    fn the_lock_excludes_other_processes_using_flock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = ControllerLock::acquire(dir.path()).unwrap();
        let other = |path: &Path| {
            Command::new("flock")
                .args(["--nonblock", "--exclusive", "--conflict-exit-code", "42"])
                .arg(path)
                .arg("true")
                .status()
                .expect("flock(1) from util-linux must be installed")
                .code()
        };
        assert_eq!(
            other(lock.path()),
            Some(42),
            "held: the other process must be refused"
        );
        let path = lock.path().to_path_buf();
        drop(lock);
        assert_eq!(other(&path), Some(0), "released: the other process gets it");

        // And the other way round: a shell holds the lock on its own open
        // of the file and says so; we must be refused until it exits.
        let mut holder = Command::new("sh")
            .args([
                "-c",
                "exec 9>>\"$1\" && flock -x 9 && echo locked && { read _ || :; }",
                "sh",
            ])
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "locked\n");
        let err = ControllerLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err:?}");
        drop(holder.stdin.take());
        assert!(holder.wait().unwrap().success());
        ControllerLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn an_unusable_data_home_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = ControllerLock::acquire(&file).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err:?}");
    }
}
