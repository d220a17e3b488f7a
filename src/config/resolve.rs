//! Resolution: picks each key through the layers (flag, environment, file,
//! default), checks every value, and builds the [`Config`]. All problems are
//! collected before returning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::env::{self, Env};
use super::{
    default_router_image, env_var_for, flag_name, Config, ConfigError, ConfigProblem, FileLayer,
    ImagePull, LinuxRunner, Origin, Platform, RunnerMode, Settings, DEFAULT_RENEW_BEFORE_DAYS,
    MAX_MS, MAX_S, RENEW_BEFORE_DAYS,
};

/// Resolves flags over environment over file over defaults.
///
/// # Errors
/// Every problem with a value or with a default that cannot be computed.
pub fn resolve(flags: &Settings, env: &dyn Env, file: &FileLayer) -> Result<Config, ConfigError> {
    let mut r = Resolver {
        flags,
        env,
        file,
        problems: Vec::new(),
    };
    let data_home = r.path("data_home", |s| &s.data_home);
    let data_home = data_home.or_else(|| r.default_data_home());
    let log_level = r.pick("log_level", |s| &s.log_level, |v| Some(v.to_string()));
    let log_level = r.check_log_level(log_level);
    let default_platform = r.pick("default_platform", |s| &s.default_platform, Platform::parse);
    let runner = r.pick("runner", |s| &s.runner, RunnerMode::parse);
    let linux_runner = r.pick("linux_runner", |s| &s.linux_runner, LinuxRunner::parse);
    let router_binary = r.path("router_binary", |s| &s.router_binary);
    let router_image = r.pick("router_image", |s| &s.router_image, |v| Some(v.to_string()));
    let router_image = r.check_image(router_image);
    let image_pull = r.pick("image_pull", |s| &s.image_pull, ImagePull::parse);
    let podman_endpoint = r.endpoint("podman_endpoint", |s| &s.podman_endpoint);
    let docker_endpoint = r.endpoint("docker_endpoint", |s| &s.docker_endpoint);
    let poll = r.interval(
        "router_poll_interval_ms",
        |s| &s.router_poll_interval_ms,
        MAX_MS,
        1,
    );
    let quiet = r.interval("quiet_window_ms", |s| &s.quiet_window_ms, MAX_MS, 1);
    let max_delay = r.interval("max_delay_ms", |s| &s.max_delay_ms, MAX_MS, 1);
    let resync = r.interval("resync_interval_s", |s| &s.resync_interval_s, MAX_S, 1);
    let grace = r.interval(
        "site_grace_period_ms",
        |s| &s.site_grace_period_ms,
        MAX_MS,
        0,
    );
    let renew_before_days = r.renew_before_days();
    // An unset quiet window compares as its default; an invalid one is
    // already reported and is not compared.
    let quiet_ok = !r
        .problems
        .iter()
        .any(|p| p.key.as_deref() == Some("quiet_window_ms"));
    let q = quiet.as_ref().map_or(20, |v| v.0);
    if let (true, Some((m, origin))) = (quiet_ok, &max_delay) {
        if *m < q {
            r.problem(
                origin.clone(),
                "max_delay_ms",
                format!("{m} must not be less than quiet_window_ms ({q})"),
            );
        }
    }
    let problems = std::mem::take(&mut r.problems);
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    let ms =
        |v: Option<(u64, Origin)>, default: u64| Duration::from_millis(v.map_or(default, |v| v.0));
    Ok(Config {
        config_file: file.path.clone(),
        data_home: data_home.unwrap_or_default(),
        log_level: log_level.unwrap_or_else(|| "info".to_string()),
        default_platform: default_platform.unwrap_or(Platform::Podman),
        runner: runner.unwrap_or(RunnerMode::Auto),
        linux_runner: linux_runner.unwrap_or(LinuxRunner::Auto),
        router_binary: router_binary.unwrap_or_else(|| PathBuf::from("/usr/sbin/skrouterd")),
        router_image: router_image.unwrap_or_else(default_router_image),
        image_pull: image_pull.unwrap_or(ImagePull::Missing),
        podman_endpoint,
        docker_endpoint,
        router_poll_interval: ms(poll, 2000),
        quiet_window: ms(quiet, 20),
        max_delay: ms(max_delay, 200),
        resync_interval: Duration::from_secs(resync.map_or(60, |v| v.0)),
        site_grace_period: ms(grace, 2000),
        renew_before_days: renew_before_days.unwrap_or(DEFAULT_RENEW_BEFORE_DAYS),
    })
}

/// Picks one key through the layers and collects problems.
struct Resolver<'a> {
    flags: &'a Settings,
    env: &'a dyn Env,
    file: &'a FileLayer,
    problems: Vec<ConfigProblem>,
}

// === impl Resolver ===

impl Resolver<'_> {
    fn problem(&mut self, origin: Origin, key: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            origin,
            key: Some(key.to_string()),
            message: message.into(),
        });
    }

    /// The winning value and its origin; environment values go through
    /// `from_env` (a bad one is a problem naming the variable).
    fn layered<T: Clone>(
        &mut self,
        key: &str,
        field: impl Fn(&Settings) -> &Option<T>,
        from_env: impl Fn(&str) -> Option<T>,
        env_expect: &str,
    ) -> Option<(T, Origin)> {
        if let Some(v) = field(self.flags) {
            return Some((v.clone(), Origin::Flag(flag_name(key))));
        }
        for var in env_var_for(key) {
            if let Some(raw) = self.env.var(var).filter(|v| !v.is_empty()) {
                match from_env(&raw) {
                    Some(v) => return Some((v, Origin::Env(var))),
                    None => {
                        self.problem(
                            Origin::Env(var),
                            key,
                            format!("{raw:?} is not {env_expect}"),
                        );
                        return None;
                    }
                }
            }
        }
        field(&self.file.settings)
            .clone()
            .map(|v| (v, self.file.origin(key)))
    }

    fn pick<T: Clone>(
        &mut self,
        key: &str,
        field: impl Fn(&Settings) -> &Option<T>,
        from_env: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let expect = match key {
            "default_platform" => format!("one of {}", Platform::NAMES.join(", ")),
            _ => "valid".to_string(),
        };
        self.layered(key, field, from_env, &expect).map(|v| v.0)
    }

    /// An absolute path: relative flag and environment values are taken
    /// from the working directory, relative file values are refused.
    fn path(
        &mut self,
        key: &str,
        field: impl Fn(&Settings) -> &Option<PathBuf>,
    ) -> Option<PathBuf> {
        let (path, origin) = self.layered(key, field, |v| Some(PathBuf::from(v)), "a path")?;
        if path.as_os_str().is_empty() {
            self.problem(origin, key, "must not be empty");
            return None;
        }
        if path.is_absolute() {
            return Some(path);
        }
        match (&origin, self.env.current_dir()) {
            (Origin::Flag(_) | Origin::Env(_), Some(cwd)) => Some(cwd.join(path)),
            _ => {
                let shown = path.display().to_string();
                self.problem(origin, key, format!("{shown:?} must be an absolute path"));
                None
            }
        }
    }

    fn endpoint(
        &mut self,
        key: &str,
        field: impl Fn(&Settings) -> &Option<String>,
    ) -> Option<PathBuf> {
        let (raw, origin) = self.layered(key, field, |v| Some(v.to_string()), "valid")?;
        let path = raw.strip_prefix("unix://").unwrap_or(&raw);
        if Path::new(path).is_absolute() {
            return Some(PathBuf::from(path));
        }
        self.problem(
            origin,
            key,
            format!("{raw:?} is not a Unix socket: use unix:///path/to.sock or an absolute path"),
        );
        None
    }

    fn interval(
        &mut self,
        key: &str,
        field: impl Fn(&Settings) -> &Option<u64>,
        max: u64,
        min: u64,
    ) -> Option<(u64, Origin)> {
        let (v, origin) = self.layered(key, field, |v| v.parse().ok(), "a number")?;
        if v < min {
            self.problem(origin, key, "must be greater than 0");
            None
        } else if v > max {
            self.problem(
                origin,
                key,
                format!("{v} is more than the maximum {max} (one day)"),
            );
            None
        } else {
            Some((v, origin))
        }
    }

    /// `renew_before_days`, within [`RENEW_BEFORE_DAYS`].
    fn renew_before_days(&mut self) -> Option<u32> {
        let key = "renew_before_days";
        let (days, origin) = self.layered(
            key,
            |s| &s.renew_before_days,
            |v| v.parse().ok(),
            "a number",
        )?;
        match u32::try_from(days) {
            Ok(d) if RENEW_BEFORE_DAYS.contains(&days) => Some(d),
            _ => {
                self.problem(
                    origin,
                    key,
                    format!(
                        "{days} is outside {}-{} days (a window as long as a certificate's life would renew it on every pass)",
                        RENEW_BEFORE_DAYS.start(),
                        RENEW_BEFORE_DAYS.end()
                    ),
                );
                None
            }
        }
    }

    fn check_log_level(&mut self, level: Option<String>) -> Option<String> {
        let level = level?;
        let origin = if self.flags.log_level.is_some() {
            Origin::Flag(flag_name("log_level"))
        } else {
            self.file.origin("log_level")
        };
        match tracing_subscriber::EnvFilter::builder().parse(&level) {
            Ok(_) => Some(level),
            Err(err) => {
                self.problem(
                    origin,
                    "log_level",
                    format!("{level:?} is not a valid filter: {err}"),
                );
                None
            }
        }
    }

    fn check_image(&mut self, image: Option<String>) -> Option<String> {
        let image = image?;
        if image.is_empty() || image.chars().any(char::is_whitespace) {
            let origin = match (
                &self.flags.router_image,
                self.env.var("SKUPPER_ROUTER_IMAGE"),
            ) {
                (Some(_), _) => Origin::Flag(flag_name("router_image")),
                (None, Some(v)) if !v.is_empty() => Origin::Env("SKUPPER_ROUTER_IMAGE"),
                _ => self.file.origin("router_image"),
            };
            self.problem(
                origin,
                "router_image",
                format!("{image:?} is not an image reference"),
            );
            return None;
        }
        Some(image)
    }

    /// `/var/lib/skupper` for root, else `$XDG_DATA_HOME/skupper` (an
    /// absolute XDG_DATA_HOME only, as the XDG spec says), else
    /// `~/.local/share/skupper`.
    fn default_data_home(&mut self) -> Option<PathBuf> {
        if self.env.is_root() {
            return Some(PathBuf::from("/var/lib/skupper"));
        }
        match env::xdg_dir(self.env, "XDG_DATA_HOME", ".local/share") {
            Some(dir) => Some(dir.join("skupper")),
            None => {
                self.problem(
                    Origin::Default,
                    "data_home",
                    "cannot compute the default: neither XDG_DATA_HOME nor HOME is set; pass --data-home",
                );
                None
            }
        }
    }
}
