//! The `skupperd` binary: parse the command line, hand over to `cli`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    fix_mmap_threshold();
    skupperd::cli::run(skupperd::cli::Cli::parse())
}

/// glibc raises its mmap threshold to the size of the largest mapped block
/// freed so far (up to 32 MiB). After the first pass, the big blocks every
/// pass makes and frees (a 1.5 MB `skrouterd.json`, vectors of ten thousand
/// entries) come from the malloc arenas instead, and fragment them: a
/// restart at 10,000 listeners peaked at 70 MB of RSS for 44 MB of heap.
/// With the threshold fixed at glibc's initial value they stay mapped and
/// go back to the system whole (62.5 MB, and no slower).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter, and runs before any
    // other thread exists. Its result is ignored: failing leaves glibc's
    // default, which is correct, only bigger.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() {}
