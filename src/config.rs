//! The daemon's configuration: raw [`Settings`] (as typed in the TOML file or
//! on the command line, every key optional) resolved once into a [`Config`]
//! (plain data, every value chosen, paths absolute, durations typed).
//!
//! Precedence per key: command-line flag, then environment variable (only
//! for the keys that have one, see [`env_var_for`]), then the config file,
//! then the built-in default. `RUST_LOG` overrides `log_level` when logging
//! starts ([`Config::log_filter`]).
//!
//! Every problem is collected before anything is returned, so a user fixes
//! all of them in one pass; each names the key and where the value came from
//! (`file:line:col`, the flag, or the variable). The environment is read
//! through the [`Env`] trait and never mutated, so tests are hermetic.
//! Nothing here has side effects besides reading the config file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

mod env;
mod file;
mod resolve;
#[cfg(test)]
mod tests;

pub use env::{Env, MapEnv, ProcessEnv};
pub use file::{default_config_path, parse_settings};
pub use resolve::resolve;

/// The tag of the compiled-in router image; packaging pins it with
/// `SKUPPERD_ROUTER_IMAGE_TAG` at build time (platform.md 2.1).
pub const DEFAULT_ROUTER_IMAGE_TAG: &str = match option_env!("SKUPPERD_ROUTER_IMAGE_TAG") {
    Some(tag) => tag,
    None => "3.4.2",
};

/// The compiled-in router image, `quay.io/skupper/skupper-router:<tag>`.
pub fn default_router_image() -> String {
    format!("quay.io/skupper/skupper-router:{DEFAULT_ROUTER_IMAGE_TAG}")
}

/// Upper bound for every `_ms` key: one day. Keeps `Instant + Duration`
/// arithmetic far from overflow and catches unit mistakes (seconds typed
/// into a millisecond key are still accepted, minutes-as-ms are not).
pub const MAX_MS: u64 = 86_400_000;
/// Upper bound for `resync_interval_s`: one day.
pub const MAX_S: u64 = 86_400;
/// Bounds of `renew_before_days`. At least a day, so a renewal is never
/// left to the last moment; at most a year, well below the 5-year life of
/// a generated leaf: a window as long as a certificate's life would issue
/// it again on every pass.
pub const RENEW_BEFORE_DAYS: std::ops::RangeInclusive<u64> = 1..=365;
/// `renew_before_days` when unset (resources.md 9: 30 days).
pub const DEFAULT_RENEW_BEFORE_DAYS: u32 = 30;

/// Every key of the config file, in the order the packaged file lists them.
pub const KEYS: [&str; 16] = [
    "data_home",
    "log_level",
    "default_platform",
    "runner",
    "linux_runner",
    "router_binary",
    "router_image",
    "image_pull",
    "podman_endpoint",
    "docker_endpoint",
    "router_poll_interval_ms",
    "quiet_window_ms",
    "max_delay_ms",
    "resync_interval_s",
    "site_grace_period_ms",
    "renew_before_days",
];

/// The environment variable that may set a key, if any.
pub fn env_var_for(key: &str) -> &'static [&'static str] {
    match key {
        "data_home" => &["SKUPPERD_DATA_HOME"],
        "default_platform" => &["SKUPPER_PLATFORM"],
        "router_image" => &["SKUPPER_ROUTER_IMAGE"],
        "podman_endpoint" | "docker_endpoint" => &["CONTAINER_ENDPOINT"],
        _ => &[],
    }
}

/// The platform of a namespace without `internal/platform.yaml`.
pub use crate::model::Platform;

/// `auto` picks the runner from the namespace's platform; `none` starts no
/// router at all (files only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RunnerMode {
    Auto,
    None,
}

/// How the `linux` platform runs skrouterd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LinuxRunner {
    /// `systemd` when a systemd manager is reachable, else `process`.
    Auto,
    Systemd,
    Process,
}

/// When the container runners pull the router image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ImagePull {
    Missing,
    Always,
    Never,
}

macro_rules! names {
    ($($ty:ident { $($variant:ident => $name:literal),* })*) => {$(
        impl $ty {
            /// The name used in the config file, flags and logs.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
            /// Every accepted name, for messages.
            pub const NAMES: &'static [&'static str] = &[$($name),*];
            fn parse(s: &str) -> Option<$ty> {
                match s { $($name => Some($ty::$variant),)* _ => None }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

names! {
    RunnerMode { Auto => "auto", None => "none" }
    LinuxRunner { Auto => "auto", Systemd => "systemd", Process => "process" }
    ImagePull { Missing => "missing", Always => "always", Never => "never" }
}

/// Raw settings: one layer (the config file or the flags), every key
/// optional. Field names are the TOML keys; each is also a flag
/// (`--quiet-window-ms` for `quiet_window_ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Directory holding namespaces/ [default: /var/lib/skupper for root,
    /// else $XDG_DATA_HOME/skupper] [env: SKUPPERD_DATA_HOME]
    #[arg(long, value_name = "DIR")]
    pub data_home: Option<PathBuf>,
    /// Log filter (tracing syntax), overridden by RUST_LOG [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Platform of namespaces without internal/platform.yaml [default:
    /// podman] [env: SKUPPER_PLATFORM]
    #[arg(long, value_enum, value_name = "PLATFORM")]
    pub default_platform: Option<Platform>,
    /// auto: start routers per platform; none: write files only [default: auto]
    #[arg(long, value_enum, value_name = "MODE")]
    pub runner: Option<RunnerMode>,
    /// How the linux platform runs skrouterd [default: auto]
    #[arg(long, value_enum, value_name = "RUNNER")]
    pub linux_runner: Option<LinuxRunner>,
    /// skrouterd for the process runner [default: /usr/sbin/skrouterd]
    #[arg(long, value_name = "PATH")]
    pub router_binary: Option<PathBuf>,
    /// Router image for podman and docker [env: SKUPPER_ROUTER_IMAGE]
    #[arg(long, value_name = "IMAGE")]
    pub router_image: Option<String>,
    /// When to pull the router image [default: missing]
    #[arg(long, value_enum, value_name = "WHEN")]
    pub image_pull: Option<ImagePull>,
    /// Podman API socket, unix:///path or /path [env: CONTAINER_ENDPOINT]
    #[arg(long, value_name = "SOCKET")]
    pub podman_endpoint: Option<String>,
    /// Docker API socket, unix:///path or /path [env: CONTAINER_ENDPOINT]
    #[arg(long, value_name = "SOCKET")]
    pub docker_endpoint: Option<String>,
    /// How often router state is polled [default: 2000]
    #[arg(long, value_name = "MS")]
    pub router_poll_interval_ms: Option<u64>,
    /// Quiet time that ends a burst of file events [default: 20]
    #[arg(long, value_name = "MS")]
    pub quiet_window_ms: Option<u64>,
    /// Longest delay between a first event and its reconcile [default: 200]
    #[arg(long, value_name = "MS")]
    pub max_delay_ms: Option<u64>,
    /// Full resync period, a safety net for missed events [default: 60]
    #[arg(long, value_name = "S")]
    pub resync_interval_s: Option<u64>,
    /// How long a namespace may lack a Site before its router stops
    /// [default: 2000]
    #[arg(long, value_name = "MS")]
    pub site_grace_period_ms: Option<u64>,
    /// Days before expiry that generated certificates are renewed and user
    /// certificates warned about, 1-365 [default: 30]
    #[arg(long, value_name = "DAYS")]
    pub renew_before_days: Option<u64>,
}

/// The settings flags of `skupperd run` (and of any subcommand that needs
/// the data home): `--config` plus one flag per key.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct SettingsArgs {
    /// Config file [default: /etc/skupperd/config.toml for root, else
    /// $XDG_CONFIG_HOME/skupperd/config.toml]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
}

/// Where a value (or a problem) came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    /// The command-line flag, e.g. `--data-home`.
    Flag(String),
    /// The environment variable.
    Env(&'static str),
    /// The config file; line and column are 1-based, absent for problems
    /// about the whole file.
    File {
        path: PathBuf,
        place: Option<(u32, u32)>,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::File { path, place: None } => write!(f, "{}", path.display()),
            Origin::File {
                path,
                place: Some((line, col)),
            } => write!(f, "{}:{line}:{col}", path.display()),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub origin: Origin,
    /// The key concerned, when the problem is about one key.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    /// One line: keys, values and paths echoed from the configuration are
    /// shown with their control characters escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = match &self.key {
            Some(key) => format!("{}: {key}: {}", self.origin, self.message),
            None => format!("{}: {}", self.origin, self.message),
        };
        f.write_str(&crate::problem::escape_controls(&line))
    }
}

/// Every problem found while loading the configuration (never empty).
/// `skupperd run` exits 2 with it, before any side effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:{}", render_problems(.problems))]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

fn render_problems(problems: &[ConfigProblem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

/// The resolved configuration: plain data, every key decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The config file that was read; `None` when the default file is absent.
    pub config_file: Option<PathBuf>,
    /// Absolute directory holding `namespaces/`; one controller per data home.
    pub data_home: PathBuf,
    /// Tracing filter used when `RUST_LOG` is unset; changes live on SIGHUP.
    pub log_level: String,
    /// Platform for namespaces without `internal/platform.yaml`.
    pub default_platform: Platform,
    /// `None` makes skupperd write files only and start no router.
    pub runner: RunnerMode,
    /// How the linux platform runs routers.
    pub linux_runner: LinuxRunner,
    /// Absolute path of skrouterd for the process runner.
    pub router_binary: PathBuf,
    /// Router image for the container runners.
    pub router_image: String,
    /// When the container runners pull the image.
    pub image_pull: ImagePull,
    /// Podman API socket; `None` means the platform default (platform.md 2.3).
    pub podman_endpoint: Option<PathBuf>,
    /// Docker API socket; `None` means the platform default (platform.md 2.3).
    pub docker_endpoint: Option<PathBuf>,
    /// Period of router state polls (management queries); live on SIGHUP.
    pub router_poll_interval: Duration,
    /// A namespace is reconciled once its events pause this long; live.
    pub quiet_window: Duration,
    /// ... but never later than this after the first event of a burst; live.
    pub max_delay: Duration,
    /// Period of the safety-net full resync; live.
    pub resync_interval: Duration,
    /// How long a namespace may lack a Site before its router is stopped,
    /// so that an editor's save never restarts a site; live.
    pub site_grace_period: Duration,
    /// What skupperd issued is issued again this many days before it
    /// expires; user certificates expiring within as many days are warned
    /// about. Applies after a restart.
    pub renew_before_days: u32,
}

/// One key whose value differs between two configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: &'static str,
    pub old: String,
    pub new: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.key, self.old, self.new)
    }
}

/// What a SIGHUP re-read changed: `live` is applied at once, `restart`
/// keeps its old value until skupperd restarts (and is logged as such).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadDiff {
    pub live: Vec<Change>,
    pub restart: Vec<Change>,
}

/// Keys a running daemon applies without a restart.
pub const LIVE_KEYS: [&str; 6] = [
    "log_level",
    "router_poll_interval_ms",
    "quiet_window_ms",
    "max_delay_ms",
    "resync_interval_s",
    "site_grace_period_ms",
];

// === impl Config ===

impl Config {
    /// Loads the configuration: the config file (see [`SettingsArgs::config`]),
    /// the environment, then the flags on top.
    ///
    /// # Errors
    /// Every problem at once: an unreadable or missing `--config` file, TOML
    /// syntax, unknown keys, wrong types, bad enum values, zero or huge
    /// intervals, `max_delay_ms < quiet_window_ms`, relative paths in the
    /// file, bad environment values.
    pub fn load(args: &SettingsArgs, env: &dyn Env) -> Result<Config, ConfigError> {
        let (file, mut problems) = file::read_layer(args.config.as_deref(), env);
        match resolve(&args.settings, env, &file) {
            Ok(config) if problems.is_empty() => Ok(config),
            Ok(_) => Err(ConfigError { problems }),
            Err(more) => {
                problems.extend(more.problems);
                Err(ConfigError { problems })
            }
        }
    }

    /// The effective configuration as one `key=value` line, logged once at
    /// start and after a reload.
    pub fn summary_line(&self) -> String {
        let file = match &self.config_file {
            Some(path) => path.display().to_string(),
            None => "none".to_string(),
        };
        let mut line = format!("config_file={file}");
        for (key, value) in self.entries() {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            line.push_str(&value);
        }
        line
    }

    /// The keys that differ from `new`, split into those applied live and
    /// those that need a restart.
    pub fn reload_diff(&self, new: &Config) -> ReloadDiff {
        let mut diff = ReloadDiff::default();
        for ((key, old), (_, new)) in self.entries().into_iter().zip(new.entries()) {
            if old == new {
                continue;
            }
            let change = Change { key, old, new };
            if LIVE_KEYS.contains(&key) {
                diff.live.push(change);
            } else {
                diff.restart.push(change);
            }
        }
        diff
    }

    /// The tracing filter to install: `RUST_LOG` when set and non-empty,
    /// else `log_level`.
    pub fn log_filter(&self, env: &dyn Env) -> String {
        match env.var("RUST_LOG") {
            Some(filter) if !filter.trim().is_empty() => filter,
            _ => self.log_level.clone(),
        }
    }

    /// Every key with its value as written in the config file, in [`KEYS`]
    /// order.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        fn path(p: &Option<PathBuf>) -> String {
            p.as_ref()
                .map_or_else(|| "default".to_string(), |p| p.display().to_string())
        }
        vec![
            ("data_home", self.data_home.display().to_string()),
            ("log_level", self.log_level.clone()),
            ("default_platform", self.default_platform.to_string()),
            ("runner", self.runner.to_string()),
            ("linux_runner", self.linux_runner.to_string()),
            ("router_binary", self.router_binary.display().to_string()),
            ("router_image", self.router_image.clone()),
            ("image_pull", self.image_pull.to_string()),
            ("podman_endpoint", path(&self.podman_endpoint)),
            ("docker_endpoint", path(&self.docker_endpoint)),
            (
                "router_poll_interval_ms",
                self.router_poll_interval.as_millis().to_string(),
            ),
            ("quiet_window_ms", self.quiet_window.as_millis().to_string()),
            ("max_delay_ms", self.max_delay.as_millis().to_string()),
            (
                "resync_interval_s",
                self.resync_interval.as_secs().to_string(),
            ),
            (
                "site_grace_period_ms",
                self.site_grace_period.as_millis().to_string(),
            ),
            ("renew_before_days", self.renew_before_days.to_string()),
        ]
    }
}

/// The config file's layer: its settings and where each key was written.
#[derive(Debug, Clone, Default)]
pub struct FileLayer {
    /// The file that was read, if any.
    pub path: Option<PathBuf>,
    pub settings: Settings,
    /// 1-based line and column of each key's value.
    pub places: BTreeMap<String, (u32, u32)>,
}

impl FileLayer {
    fn origin(&self, key: &str) -> Origin {
        Origin::File {
            path: self.path.clone().unwrap_or_default(),
            place: self.places.get(key).copied(),
        }
    }
}

/// `--quiet-window-ms` for `quiet_window_ms`.
pub fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}
