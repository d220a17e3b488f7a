//! The process environment as an injected source (linkerd's `Strings`):
//! the daemon reads [`ProcessEnv`], tests build a [`MapEnv`]. The process
//! environment is never mutated (STYLE.md 6.9).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What configuration needs from the process: variables, whether it runs
/// as root (which picks system or user defaults), and the working directory
/// (for relative paths given on the command line).
pub trait Env: Send + Sync {
    /// The variable's value, `None` when unset or not UTF-8.
    fn var(&self, name: &str) -> Option<String>;
    /// Whether the effective user id is 0.
    fn is_root(&self) -> bool;
    /// The working directory, if it can be read.
    fn current_dir(&self) -> Option<PathBuf>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn is_root(&self) -> bool {
        rustix::process::geteuid().is_root()
    }

    fn current_dir(&self) -> Option<PathBuf> {
        std::env::current_dir().ok()
    }
}

/// A fixed environment for tests and for callers that scrub it.
#[derive(Debug, Clone, Default)]
pub struct MapEnv {
    pub vars: BTreeMap<String, String>,
    pub root: bool,
    pub cwd: Option<PathBuf>,
}

impl MapEnv {
    /// An empty environment of a non-root user.
    pub fn new() -> MapEnv {
        MapEnv::default()
    }

    /// Adds one variable.
    pub fn with(mut self, name: &str, value: &str) -> MapEnv {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn is_root(&self) -> bool {
        self.root
    }

    fn current_dir(&self) -> Option<PathBuf> {
        self.cwd.clone()
    }
}

/// `$VAR` when it is an absolute path, else `$HOME/<fallback>`.
pub(crate) fn xdg_dir(env: &dyn Env, var: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(dir) = env.var(var).map(PathBuf::from) {
        if dir.is_absolute() {
            return Some(dir);
        }
    }
    let home = PathBuf::from(env.var("HOME")?);
    home.is_absolute().then(|| home.join(fallback))
}
