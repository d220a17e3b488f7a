//! `skupperd check` and `skupperd render`: one namespace, once.

use super::Output;
use crate::certs::RcgenMint;
use crate::plan::{self, read_prior, Inputs, Platform, RouterState};
use crate::problem::Problem;
use crate::store::lock::{ControllerLock, LockError};
use crate::store::{fsio, ports::DataHomePorts};
use anyhow::{bail, Context as _, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Everything read from one namespace directory.
pub struct Loaded {
    pub ns_dir: PathBuf,
    pub name: String,
    pub files: BTreeMap<String, crate::resources::DecodedFile>,
    pub certs: crate::validate::InputCerts,
    pub issuers: crate::validate::InputCerts,
    pub runtime: BTreeMap<String, Vec<u8>>,
    pub platform: Result<Platform, crate::problem::Problem>,
}

pub fn default_platform() -> Platform {
    std::env::var("SKUPPER_PLATFORM")
        .ok()
        .and_then(|p| Platform::parse(&p))
        .unwrap_or(Platform::Podman)
}

pub fn load(ns_dir: &Path) -> Result<Loaded> {
    if !ns_dir.is_dir() {
        bail!("{} is not a namespace directory", ns_dir.display());
    }
    let ns_dir = std::fs::canonicalize(ns_dir)
        .with_context(|| format!("cannot resolve {}", ns_dir.display()))?;
    let name = ns_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("the namespace directory has no name")?
        .to_string();
    if !crate::names::is_label(&name) {
        bail!(
            "namespace directory name \"{name}\" {}",
            crate::names::LABEL_RULE
        );
    }
    // An unreadable input/resources/ or runtime/ is not an empty one:
    // rendering as if it were would delete outputs, so it is an error of
    // the whole command. What cannot be read below them (one input file,
    // anything under input/certs/) is a problem of what needs it.
    const UNKNOWN: &str = "the namespace cannot be read; nothing was done";
    let files = fsio::list_input_files(&ns_dir)
        .context(UNKNOWN)?
        .into_iter()
        .map(|(rel, path)| {
            let decoded = crate::resources::decode_file(fsio::read_input_file(&rel, &path));
            (rel, decoded)
        })
        .collect();
    Ok(Loaded {
        files,
        certs: fsio::read_bundles(&ns_dir),
        issuers: fsio::read_issuers(&ns_dir),
        runtime: fsio::read_runtime(&ns_dir).context(UNKNOWN)?,
        platform: fsio::read_platform(&ns_dir, default_platform()),
        name,
        ns_dir,
    })
}

fn inputs<'a>(
    l: &'a Loaded,
    prior: &'a plan::Prior,
    ns_path: &'a str,
    host: &'a str,
    addresses: &'a [String],
) -> Inputs<'a> {
    Inputs {
        namespace: &l.name,
        namespace_path: ns_path,
        platform: l.platform.clone(),
        hostname: host,
        addresses,
        version: env!("CARGO_PKG_VERSION"),
        now: time::OffsetDateTime::now_utc(),
        files: &l.files,
        certs: &l.certs,
        issuers: &l.issuers,
        // One-off commands read no daemon configuration: the default window.
        renew_before: crate::certs::DEFAULT_RENEW_BEFORE,
        runtime: &l.runtime,
        prior,
        router: RouterState {
            runner: "none".to_string(),
            state: "NotCreated".to_string(),
            message: "runner is none: skupperd does not start routers".to_string(),
            ..RouterState::default()
        },
        trigger: "startup",
        notices: &[],
    }
}

pub fn print_problems(problems: &[Problem], output: Output) {
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let warnings = problems.len() - errors;
    match output {
        Output::Json => {
            let doc =
                serde_json::json!({"errors": errors, "warnings": warnings, "problems": problems});
            say!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Output::Text => {
            for p in problems {
                let severity = if p.is_error() { "error" } else { "warning" };
                match p.place() {
                    Some(place) => say!("{place}: {severity}: {}", p.message),
                    None => say!("{severity}: {}", p.message),
                }
            }
            say!("{errors} error(s), {warnings} warning(s)");
        }
    }
}

pub fn check(ns_dir: &Path, output: Output) -> Result<ExitCode> {
    let loaded = load(ns_dir)?;
    let prior = read_prior(&loaded.runtime);
    let ns_path = loaded.ns_dir.to_string_lossy().into_owned();
    let host = fsio::hostname();
    let addresses = fsio::host_addresses();
    let problems = plan::check(&inputs(&loaded, &prior, &ns_path, &host, &addresses));
    print_problems(&problems, output);
    Ok(exit_for(&problems))
}

fn exit_for(problems: &[Problem]) -> ExitCode {
    if problems.iter().any(Problem::is_error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The controller lock of the data home this namespace belongs to, held
/// for the duration of a render so that no daemon writes at the same time.
fn take_lock(ns_dir: &Path) -> Result<ControllerLock> {
    let data_home = ns_dir
        .parent()
        .and_then(Path::parent)
        .context("the namespace directory is not inside <data home>/namespaces/")?;
    ControllerLock::acquire(data_home).map_err(|e| match e {
        LockError::Held { .. } => anyhow::anyhow!(
            "{e}: it reconciles this namespace itself; stop it or let it do the work"
        ),
        other => other.into(),
    })
}

pub fn render(ns_dir: &Path, output: Output) -> Result<ExitCode> {
    let loaded = load(ns_dir)?;
    let _lock = take_lock(&loaded.ns_dir)?;
    // What a writer killed mid-apply left behind.
    fsio::remove_temporaries(&loaded.ns_dir)?;
    let prior = read_prior(&loaded.runtime);
    let ns_path = loaded.ns_dir.to_string_lossy().into_owned();
    let host = fsio::hostname();
    let addresses = fsio::host_addresses();
    let mut ports = DataHomePorts {
        namespaces_dir: loaded
            .ns_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        namespace: loaded.name.clone(),
    };
    let outcome = plan::reconcile(
        &inputs(&loaded, &prior, &ns_path, &host, &addresses),
        &mut RcgenMint,
        &mut ports,
    );
    fsio::apply(&loaded.ns_dir, &outcome)?;
    print_problems(&outcome.problems, output);
    if output == Output::Text {
        say!(
            "{}: {} file(s) written, {} removed",
            loaded.ns_dir.display(),
            outcome.writes.len(),
            outcome.deletes.len()
        );
    }
    Ok(exit_for(&outcome.problems))
}
