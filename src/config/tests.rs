use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::*;

fn user_env(home: &Path) -> MapEnv {
    MapEnv::new().with("HOME", home.to_str().unwrap())
}

fn load_text(text: &str, env: &MapEnv) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let args = SettingsArgs {
        config: Some(path),
        settings: Settings::default(),
    };
    Config::load(&args, env)
}

/// The `run` subcommand as the CLI will flatten it.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: SettingsArgs,
}

fn keys_of(err: &ConfigError) -> Vec<&str> {
    err.problems
        .iter()
        .filter_map(|p| p.key.as_deref())
        .collect()
}

#[test]
fn root_without_file_uses_system_defaults() {
    let env = MapEnv {
        root: true,
        ..MapEnv::new()
    };
    let config = resolve(&Settings::default(), &env, &FileLayer::default()).unwrap();
    assert_eq!(config.data_home, PathBuf::from("/var/lib/skupper"));
    assert_eq!(config.log_level, "info");
    assert_eq!(config.default_platform, Platform::Podman);
    assert_eq!(config.runner, RunnerMode::Auto);
    assert_eq!(config.linux_runner, LinuxRunner::Auto);
    assert_eq!(config.router_binary, PathBuf::from("/usr/sbin/skrouterd"));
    assert_eq!(config.router_image, default_router_image());
    assert_eq!(config.image_pull, ImagePull::Missing);
    assert_eq!(config.podman_endpoint, None);
    assert_eq!(config.router_poll_interval, Duration::from_millis(2000));
    assert_eq!(config.quiet_window, Duration::from_millis(20));
    assert_eq!(config.max_delay, Duration::from_millis(200));
    assert_eq!(config.resync_interval, Duration::from_secs(60));
    assert_eq!(config.site_grace_period, Duration::from_millis(2000));
    assert_eq!(config.renew_before_days, 30);
    assert_eq!(
        default_config_path(&env),
        Some(PathBuf::from("/etc/skupperd/config.toml"))
    );
}

#[test]
fn user_defaults_follow_xdg_and_ignore_relative_xdg_values() {
    let env = user_env(Path::new("/home/u")).with("XDG_DATA_HOME", "/data/u");
    let config = resolve(&Settings::default(), &env, &FileLayer::default()).unwrap();
    assert_eq!(config.data_home, PathBuf::from("/data/u/skupper"));

    let env = user_env(Path::new("/home/u"))
        .with("XDG_DATA_HOME", "relative/data")
        .with("XDG_CONFIG_HOME", "/cfg");
    let config = resolve(&Settings::default(), &env, &FileLayer::default()).unwrap();
    assert_eq!(
        config.data_home,
        PathBuf::from("/home/u/.local/share/skupper")
    );
    assert_eq!(
        default_config_path(&env),
        Some(PathBuf::from("/cfg/skupperd/config.toml"))
    );
    assert_eq!(
        default_config_path(&user_env(Path::new("/home/u"))),
        Some(PathBuf::from("/home/u/.config/skupperd/config.toml"))
    );
}

#[test]
fn user_without_home_must_name_the_data_home() {
    let err = resolve(&Settings::default(), &MapEnv::new(), &FileLayer::default()).unwrap_err();
    assert_eq!(keys_of(&err), ["data_home"]);
    assert!(err.to_string().contains("--data-home"), "{err}");
}

#[test]
fn missing_default_file_is_fine_but_missing_explicit_file_is_an_error() {
    let home = tempfile::tempdir().unwrap();
    let env = user_env(home.path());
    let config = Config::load(&SettingsArgs::default(), &env).unwrap();
    assert_eq!(config.config_file, None);

    let missing = home.path().join("nope.toml");
    let args = SettingsArgs {
        config: Some(missing.clone()),
        ..SettingsArgs::default()
    };
    let err = Config::load(&args, &env).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.to_string().contains(missing.to_str().unwrap()), "{err}");
}

#[test]
fn default_user_file_is_read_from_xdg_config_home() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("cfg/skupperd");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), "quiet_window_ms = 7\n").unwrap();
    let cfg_home = home.path().join("cfg");
    let env = user_env(home.path()).with("XDG_CONFIG_HOME", cfg_home.to_str().unwrap());
    let config = Config::load(&SettingsArgs::default(), &env).unwrap();
    assert_eq!(config.quiet_window, Duration::from_millis(7));
    assert_eq!(config.config_file, Some(dir.join("config.toml")));
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let text = "data_home = \"/from/file\"\ndefault_platform = \"docker\"\nrunner = \"none\"\n";
    let home = Path::new("/home/u");

    let config = load_text(text, &user_env(home)).unwrap();
    assert_eq!(config.data_home, PathBuf::from("/from/file"));
    assert_eq!(config.default_platform, Platform::Docker);
    assert_eq!(config.runner, RunnerMode::None);

    let env = user_env(home)
        .with("SKUPPERD_DATA_HOME", "/from/env")
        .with("SKUPPER_PLATFORM", "linux");
    let config = load_text(text, &env).unwrap();
    assert_eq!(config.data_home, PathBuf::from("/from/env"));
    assert_eq!(config.default_platform, Platform::Linux);

    let cli = Cli::try_parse_from([
        "run",
        "--data-home",
        "/from/flag",
        "--default-platform",
        "podman",
    ])
    .unwrap();
    let file = parse_settings(text, Path::new("/c.toml")).0;
    let config = resolve(&cli.args.settings, &env, &file).unwrap();
    assert_eq!(config.data_home, PathBuf::from("/from/flag"));
    assert_eq!(config.default_platform, Platform::Podman);
    assert_eq!(config.runner, RunnerMode::None);
}

#[test]
fn every_key_has_a_flag() {
    let cli = Cli::try_parse_from([
        "run",
        "--config=/c.toml",
        "--data-home=/d",
        "--log-level=debug",
        "--default-platform=linux",
        "--runner=none",
        "--linux-runner=process",
        "--router-binary=/opt/skrouterd",
        "--router-image=example/router:1",
        "--image-pull=never",
        "--podman-endpoint=unix:///p.sock",
        "--docker-endpoint=/d.sock",
        "--router-poll-interval-ms=5",
        "--quiet-window-ms=6",
        "--max-delay-ms=70",
        "--resync-interval-s=8",
        "--site-grace-period-ms=0",
        "--renew-before-days=45",
    ])
    .unwrap();
    assert_eq!(cli.args.config, Some(PathBuf::from("/c.toml")));
    let config = resolve(&cli.args.settings, &MapEnv::new(), &FileLayer::default()).unwrap();
    let entries = config.entries();
    assert_eq!(entries.iter().map(|e| e.0).collect::<Vec<_>>(), KEYS);
    let values: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        values,
        [
            "/d",
            "debug",
            "linux",
            "none",
            "process",
            "/opt/skrouterd",
            "example/router:1",
            "never",
            "/p.sock",
            "/d.sock",
            "5",
            "6",
            "70",
            "8",
            "0",
            "45"
        ]
    );
}

#[test]
fn renew_before_days_is_bounded_and_names_where_it_came_from() {
    let env = user_env(Path::new("/h"));
    let config = load_text("renew_before_days = 60\n", &env).unwrap();
    assert_eq!(config.renew_before_days, 60);
    for (days, ok) in [(1, true), (365, true), (0, false), (366, false)] {
        let result = load_text(&format!("renew_before_days = {days}\n"), &env);
        assert_eq!(result.is_ok(), ok, "{days}: {result:?}");
    }
    let err = load_text("renew_before_days = 400\n", &env).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(":1:21: renew_before_days: 400 is outside 1-365 days"),
        "{text}"
    );
    let cli =
        Cli::try_parse_from(["run", "--renew-before-days", "0", "--data-home", "/d"]).unwrap();
    let err = resolve(&cli.args.settings, &env, &FileLayer::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid configuration:\n  flag --renew-before-days: renew_before_days: 0 is outside 1-365 days"),
        "{err}"
    );
    assert!(Cli::try_parse_from(["run", "--renew-before-days", "-3"]).is_err());
}

#[test]
fn bad_flag_values_are_refused_by_the_parser_or_named_in_problems() {
    assert!(Cli::try_parse_from(["run", "--runner", "sometimes"]).is_err());
    assert!(Cli::try_parse_from(["run", "--quiet-window-ms", "-1"]).is_err());
    let cli = Cli::try_parse_from(["run", "--quiet-window-ms", "0", "--data-home", "/d"]).unwrap();
    let err = resolve(&cli.args.settings, &MapEnv::new(), &FileLayer::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration:\n  flag --quiet-window-ms: quiet_window_ms: must be greater than 0"
    );
}

#[test]
fn every_file_problem_is_reported_at_once_with_its_place() {
    let text = "\
log_level = \"info\"
colour = \"blue\"
quiet_window_ms = \"twenty\"
runner = \"sometimes\"
resync_interval_s = 0
max_delay_ms = 10
image_pull = \"never\"
";
    let err = load_text(text, &user_env(Path::new("/home/u"))).unwrap_err();
    let shown: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(err.problems.len(), 5, "{shown:#?}");
    let find = |key: &str| {
        err.problems
            .iter()
            .find(|p| p.key.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("no problem for {key}: {shown:#?}"))
    };
    let place = |key: &str| match &find(key).origin {
        Origin::File { place, .. } => *place,
        other => panic!("{key} from {other:?}"),
    };
    assert_eq!(place("colour"), Some((2, 1)));
    assert!(find("colour")
        .message
        .starts_with("unknown key `colour`, expected one of"));
    assert_eq!(place("quiet_window_ms"), Some((3, 19)));
    assert!(find("quiet_window_ms").message.contains("invalid type"));
    assert_eq!(place("runner"), Some((4, 10)));
    assert!(find("runner").message.contains("sometimes"));
    assert_eq!(place("resync_interval_s"), Some((5, 21)));
    assert!(find("resync_interval_s").message.contains("greater than 0"));
    // The bad quiet_window_ms falls back to its default in the comparison.
    assert_eq!(place("max_delay_ms"), Some((6, 16)));
    assert!(find("max_delay_ms")
        .message
        .contains("less than quiet_window_ms (20)"));
    assert!(
        shown[0].contains("config.toml:2:1: colour: unknown key"),
        "{shown:#?}"
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let err = load_text(
        "quiet_window_ms = 20\nrunner = \n",
        &user_env(Path::new("/h")),
    )
    .unwrap_err();
    assert_eq!(err.problems.len(), 1);
    let problem = &err.problems[0];
    assert!(problem.message.starts_with("TOML syntax"), "{problem}");
    assert!(
        matches!(
            problem.origin,
            Origin::File {
                place: Some((2, _)),
                ..
            }
        ),
        "{problem}"
    );
}

#[test]
fn duplicate_keys_and_tables_are_errors() {
    let err = load_text(
        "runner = \"auto\"\nrunner = \"none\"\n",
        &user_env(Path::new("/h")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("duplicate"), "{err}");
    let err = load_text("[router]\nimage = \"x\"\n", &user_env(Path::new("/h"))).unwrap_err();
    assert_eq!(keys_of(&err), ["router"]);
}

#[test]
fn semantic_limits_are_checked() {
    let text = "\
data_home = \"relative/dir\"
router_binary = \"skrouterd\"
podman_endpoint = \"tcp://127.0.0.1:8080\"
docker_endpoint = \"unix:///run/docker.sock\"
router_poll_interval_ms = 0
quiet_window_ms = 86400001
log_level = \"info,[\"
router_image = \"has space\"
site_grace_period_ms = 0
";
    let err = load_text(text, &user_env(Path::new("/home/u"))).unwrap_err();
    let mut keys = keys_of(&err);
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "data_home",
            "log_level",
            "podman_endpoint",
            "quiet_window_ms",
            "router_binary",
            "router_image",
            "router_poll_interval_ms"
        ],
        "{err}"
    );
}

#[test]
fn relative_paths_on_the_command_line_are_taken_from_the_working_directory() {
    let env = MapEnv {
        cwd: Some(PathBuf::from("/work")),
        ..MapEnv::new()
    };
    let cli = Cli::try_parse_from([
        "run",
        "--data-home",
        "dh",
        "--router-binary",
        "bin/skrouterd",
    ])
    .unwrap();
    let config = resolve(&cli.args.settings, &env, &FileLayer::default()).unwrap();
    assert_eq!(config.data_home, PathBuf::from("/work/dh"));
    assert_eq!(config.router_binary, PathBuf::from("/work/bin/skrouterd"));
}

#[test]
fn bad_environment_values_name_the_variable() {
    let env = user_env(Path::new("/h"))
        .with("SKUPPER_PLATFORM", "kubernetes")
        .with("CONTAINER_ENDPOINT", "tcp://x");
    let err = resolve(&Settings::default(), &env, &FileLayer::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("environment variable SKUPPER_PLATFORM: default_platform: \"kubernetes\" is not one of linux, podman, docker"),
        "{text}"
    );
    assert!(
        text.contains("environment variable CONTAINER_ENDPOINT: podman_endpoint"),
        "{text}"
    );
    assert!(
        text.contains("environment variable CONTAINER_ENDPOINT: docker_endpoint"),
        "{text}"
    );
}

#[test]
fn container_endpoint_applies_to_both_engines_unless_configured() {
    let env = user_env(Path::new("/h")).with("CONTAINER_ENDPOINT", "unix:///run/engine.sock");
    let config = resolve(&Settings::default(), &env, &FileLayer::default()).unwrap();
    assert_eq!(
        config.podman_endpoint,
        Some(PathBuf::from("/run/engine.sock"))
    );
    assert_eq!(
        config.docker_endpoint,
        Some(PathBuf::from("/run/engine.sock"))
    );
}

#[test]
fn rust_log_overrides_log_level() {
    let config = load_text("log_level = \"debug\"\n", &user_env(Path::new("/h"))).unwrap();
    assert_eq!(config.log_filter(&MapEnv::new()), "debug");
    assert_eq!(
        config.log_filter(&MapEnv::new().with("RUST_LOG", "")),
        "debug"
    );
    assert_eq!(
        config.log_filter(&MapEnv::new().with("RUST_LOG", "trace")),
        "trace"
    );
}

#[test]
fn reload_diff_splits_live_and_restart_keys() {
    let env = user_env(Path::new("/h"));
    let old = load_text("log_level = \"info\"\n", &env).unwrap();
    let new = load_text(
        "log_level = \"debug\"\nquiet_window_ms = 50\ndata_home = \"/elsewhere\"\nrunner = \"none\"\n",
        &env,
    )
    .unwrap();
    let diff = old.reload_diff(&new);
    let live: Vec<String> = diff.live.iter().map(ToString::to_string).collect();
    assert_eq!(
        live,
        ["log_level: info -> debug", "quiet_window_ms: 20 -> 50"]
    );
    let restart: Vec<&str> = diff.restart.iter().map(|c| c.key).collect();
    assert_eq!(restart, ["data_home", "runner"]);
    assert_eq!(new.reload_diff(&new), ReloadDiff::default());
}

#[test]
fn summary_line_names_every_key() {
    let config = load_text("quiet_window_ms = 30\n", &user_env(Path::new("/h"))).unwrap();
    let line = config.summary_line();
    assert!(line.starts_with("config_file=/"), "{line}");
    for key in KEYS {
        assert!(
            line.contains(&format!(" {key}=")),
            "{key} missing from {line}"
        );
    }
    assert!(line.contains(" quiet_window_ms=30 "), "{line}");
    assert!(
        line.contains(" data_home=/h/.local/share/skupper "),
        "{line}"
    );
}

#[test]
fn packaged_config_lists_every_key_commented_out_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.toml");
    let packaged = std::fs::read_to_string(&path).unwrap();
    let root = MapEnv {
        root: true,
        ..MapEnv::new()
    };

    // As shipped: nothing set.
    let (layer, problems) = parse_settings(&packaged, &path);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(layer.settings, Settings::default());

    // Uncommented: every key, each equal to the default.
    let uncommented: String = packaged
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.contains(" = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let (layer, problems) = parse_settings(&uncommented, &path);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(layer.places.keys().count(), KEYS.len(), "{uncommented}");
    let from_file = resolve(&Settings::default(), &root, &layer).unwrap();
    let defaults = resolve(&Settings::default(), &root, &FileLayer::default()).unwrap();
    // Endpoints are listed with the root defaults of platform.md 2.3,
    // which the runners compute when the key is unset.
    assert_eq!(
        from_file.podman_endpoint,
        Some(PathBuf::from("/run/podman/podman.sock"))
    );
    assert_eq!(
        from_file.docker_endpoint,
        Some(PathBuf::from("/run/docker.sock"))
    );
    let without_endpoints = |c: Config| Config {
        podman_endpoint: None,
        docker_endpoint: None,
        ..c
    };
    assert_eq!(
        without_endpoints(from_file).entries(),
        without_endpoints(defaults).entries()
    );
}
