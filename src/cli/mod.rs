//! The command line: `run`, `check`, `render`, `status`, `version`. Thin: each
//! command gathers inputs through `store`, calls the pure core, and prints.
//! Exit codes follow `skupperd check`: 0 fine, 1 input errors, 2 usage or
//! environment errors.

/// `println!` that never panics: when stdout is closed early (`skupperd
/// check | head`), the rest of the output is dropped and the command
/// still ends with its own exit code.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod namespace;
mod status;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "skupperd",
    version,
    about = "Runs Skupper sites on local systems"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate one namespace's input and print every problem.
    Check {
        /// The namespace directory, e.g. ~/.local/share/skupper/namespaces/west
        ns_dir: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// One reconcile of one namespace to files; no router is contacted.
    Render {
        ns_dir: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Print the listener and connector tables from runtime/resources.
    Status {
        /// Data home (default: /var/lib/skupper as root, else $XDG_DATA_HOME/skupper).
        #[arg(long)]
        data_home: Option<PathBuf>,
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// The daemon: watch every namespace and keep its outputs reconciled.
    Run {
        #[command(flatten)]
        settings: Box<crate::config::SettingsArgs>,
    },
    /// Print the version.
    Version,
}

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Check { ns_dir, output } => namespace::check(&ns_dir, output),
        Command::Render { ns_dir, output } => namespace::render(&ns_dir, output),
        Command::Status {
            data_home,
            namespace,
            output,
        } => status::run(data_home, namespace.as_deref(), output),
        Command::Run { settings } => return crate::daemon::command(*settings),
        Command::Version => {
            say!("skupperd {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Errors name paths and directory names as given: shown escaped.
            let shown = format!("{e:#}");
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skupperd: {}",
                crate::problem::escape_controls(&shown)
            );
            ExitCode::from(2)
        }
    }
}

/// The data home when none is given: `SKUPPERD_DATA_HOME`, else
/// `/var/lib/skupper` for root, else `$XDG_DATA_HOME/skupper`.
pub fn default_data_home() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SKUPPERD_DATA_HOME") {
        return Ok(PathBuf::from(p));
    }
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/skupper"));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(x).join("skupper"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; pass --data-home")?;
    Ok(PathBuf::from(home).join(".local/share/skupper"))
}
