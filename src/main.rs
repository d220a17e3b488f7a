//! The `skupperd` binary: parse the command line, hand over to `cli`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    skupperd::cli::run(skupperd::cli::Cli::parse())
}
