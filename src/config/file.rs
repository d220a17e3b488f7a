//! The config file layer: finding the file, reading it, and turning TOML
//! into [`Settings`] while keeping each key's line and column.
//!
//! Each top-level key is deserialized on its own (through the `Settings`
//! derive, so the field list stays the single source of truth), which lets
//! one bad key be reported without hiding the others.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::de::value::MapDeserializer;
use serde::Deserialize;
use toml::de::{DeTable, ValueDeserializer};

use super::env::{xdg_dir, Env};
use super::{ConfigProblem, FileLayer, Origin, Settings};

/// The default config file: `/etc/skupperd/config.toml` for root, else
/// `$XDG_CONFIG_HOME/skupperd/config.toml` (default `~/.config`).
pub fn default_config_path(env: &dyn Env) -> Option<PathBuf> {
    if env.is_root() {
        return Some(PathBuf::from("/etc/skupperd/config.toml"));
    }
    xdg_dir(env, "XDG_CONFIG_HOME", ".config").map(|dir| dir.join("skupperd/config.toml"))
}

/// Reads the config file: the explicit one must exist, the default one
/// may be absent.
pub(super) fn read_layer(
    explicit: Option<&Path>,
    env: &dyn Env,
) -> (FileLayer, Vec<ConfigProblem>) {
    let (path, required) = match explicit {
        Some(path) => match (path.is_absolute(), env.current_dir()) {
            (false, Some(cwd)) => (cwd.join(path), true),
            _ => (path.to_path_buf(), true),
        },
        None => match default_config_path(env) {
            Some(path) => (path, false),
            None => return (FileLayer::default(), Vec::new()),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_settings(&text, &path),
        Err(err) if err.kind() == ErrorKind::NotFound && !required => {
            (FileLayer::default(), Vec::new())
        }
        Err(err) => {
            let problem = ConfigProblem {
                origin: Origin::File { path, place: None },
                key: None,
                message: format!("cannot read the config file: {err}"),
            };
            (FileLayer::default(), vec![problem])
        }
    }
}

/// Parses config file text; `path` is only used to label problems.
/// Returns the keys that were good and every problem.
pub fn parse_settings(text: &str, path: &Path) -> (FileLayer, Vec<ConfigProblem>) {
    let mut layer = FileLayer {
        path: Some(path.to_path_buf()),
        ..FileLayer::default()
    };
    let at = |offset: usize| Origin::File {
        path: path.to_path_buf(),
        place: Some(line_col(text, offset)),
    };
    let (table, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let problems = syntax
            .iter()
            .map(|err| ConfigProblem {
                origin: match err.span() {
                    Some(span) => at(span.start),
                    None => Origin::File {
                        path: path.to_path_buf(),
                        place: None,
                    },
                },
                key: None,
                message: format!("TOML syntax: {}", err.message().trim_end()),
            })
            .collect();
        return (layer, problems);
    }
    let mut problems = Vec::new();
    for (key, value) in table.into_inner() {
        let key_span = key.span();
        let value_span = value.span();
        let name = key.into_inner().into_owned();
        let one = std::iter::once((name.as_str(), ValueDeserializer::from(value)));
        match Settings::deserialize(MapDeserializer::<_, toml::de::Error>::new(one)) {
            Ok(settings) => {
                layer
                    .places
                    .insert(name.clone(), line_col(text, value_span.start));
                layer.settings = merge(std::mem::take(&mut layer.settings), settings);
            }
            Err(err) => {
                let message = err.message().trim_end();
                let (message, offset) = match message.strip_prefix("unknown field") {
                    Some(rest) => (format!("unknown key{rest}"), key_span.start),
                    None => (message.to_string(), value_span.start),
                };
                problems.push(ConfigProblem {
                    origin: at(offset),
                    key: Some(name),
                    message,
                });
            }
        }
    }
    (layer, problems)
}

/// `a` with every key that `b` sets taken from `b`.
fn merge(a: Settings, b: Settings) -> Settings {
    Settings {
        data_home: b.data_home.or(a.data_home),
        log_level: b.log_level.or(a.log_level),
        default_platform: b.default_platform.or(a.default_platform),
        runner: b.runner.or(a.runner),
        linux_runner: b.linux_runner.or(a.linux_runner),
        router_binary: b.router_binary.or(a.router_binary),
        router_image: b.router_image.or(a.router_image),
        image_pull: b.image_pull.or(a.image_pull),
        podman_endpoint: b.podman_endpoint.or(a.podman_endpoint),
        docker_endpoint: b.docker_endpoint.or(a.docker_endpoint),
        router_poll_interval_ms: b.router_poll_interval_ms.or(a.router_poll_interval_ms),
        quiet_window_ms: b.quiet_window_ms.or(a.quiet_window_ms),
        max_delay_ms: b.max_delay_ms.or(a.max_delay_ms),
        resync_interval_s: b.resync_interval_s.or(a.resync_interval_s),
        site_grace_period_ms: b.site_grace_period_ms.or(a.site_grace_period_ms),
        renew_before_days: b.renew_before_days.or(a.renew_before_days),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = text.get(..end).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}
