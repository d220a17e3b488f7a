//! The bad-input corpus: every case of `tests/corpus/` (see its README)
//! runs beside a fixed valid Site and Listener. For each case `check`
//! prints exactly the expected lines and returns promptly, `check --output
//! json` and `render` report the same problems, and the baseline's outputs
//! (its router entities, records and certificates) stay byte for byte
//! what they are without the case.
//!
//! Cases whose input cannot live in git (binary bytes, FIFOs, sockets,
//! symbolic links, a 100 MiB file) are built here by the generator named
//! like their directory; their `expected` may use `{{name}}` for a long
//! text the generator makes.

use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `check` must return within a second (the figures are printed); only a
/// hang fails a case: a debug build on a shared 2-core machine took 8 s to
/// render the 1 MiB cases while other builds ran.
const HANG: Duration = Duration::from_secs(30);

const BASELINE_SITE: &str = "apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\nspec:\n  linkAccess: none\n";
const BASELINE_LISTENER: &str = "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: backend\nspec:\n  host: 127.0.0.1\n  port: 8080\n";
/// The baseline's input files, and the records they produce.
const BASELINE: [(&str, &str, &str); 2] = [
    (
        "input/resources/Site-west.yaml",
        BASELINE_SITE,
        "runtime/resources/Site-west.yaml",
    ),
    (
        "input/resources/Listener-backend.yaml",
        BASELINE_LISTENER,
        "runtime/resources/Listener-backend.yaml",
    ),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The baseline rendered once (platform podman, so no path of this
/// machine is in the config): every case starts from a copy of its
/// `runtime/`, so identity, keys and ports are the same in every case.
struct Baseline {
    _home: DataHome,
    ns: PathBuf,
    /// Every runtime file and its bytes.
    files: BTreeMap<String, Vec<u8>>,
    /// The entities of `skrouterd.json`.
    entities: Vec<serde_json::Value>,
}

fn baseline() -> &'static Baseline {
    static BASELINE_NS: OnceLock<Baseline> = OnceLock::new();
    BASELINE_NS.get_or_init(|| {
        let home = DataHome::new();
        for (rel, text, _) in BASELINE {
            home.write("west", rel, text);
        }
        let ns = home.ns("west");
        let out = run(&ns, &["render"]).0;
        assert_eq!(
            text(&out.stdout).lines().next(),
            Some("0 error(s), 0 warning(s)"),
            "the baseline renders clean"
        );
        let files = runtime_files(&ns);
        let entities = entities(&files["runtime/router/skrouterd.json"]);
        Baseline {
            _home: home,
            ns,
            files,
            entities,
        }
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("skupperd prints UTF-8")
}

/// Every regular file below `runtime/`, by path relative to the namespace.
fn runtime_files(ns: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![ns.join("runtime")];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(p);
            } else if t.is_file() {
                let rel = p.strip_prefix(ns).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn entities(config: &[u8]) -> Vec<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_slice(config).expect("skrouterd.json parses");
    doc.as_array().expect("skrouterd.json is a list").clone()
}

/// `<type> <name>` of an entity, as `router-adds` lists them.
fn entity_name(e: &serde_json::Value) -> String {
    format!(
        "{} {}",
        e[0].as_str().unwrap_or("?"),
        e[1]["name"].as_str().unwrap_or("")
    )
}

/// Runs `skupperd <args> ns` with a scrubbed environment and returns its
/// output and how long it took; a run over [`HANG`] is killed and fails.
fn run(ns: &Path, args: &[&str]) -> (Output, Duration) {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("skupperd"));
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.args(args)
        .arg(ns)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn skupperd");
    let pid = child.id();
    // A watchdog kills a run that hangs, so the case fails instead of the
    // suite hanging.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(HANG * 2).is_err() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid as i32).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
    });
    let out = child.wait_with_output().expect("wait for skupperd");
    let took = start.elapsed();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    (out, took)
}

/// One case: its directory, and what its generator made.
struct Case {
    name: String,
    dir: PathBuf,
    /// Values for `{{name}}` in `expected`.
    vars: BTreeMap<&'static str, String>,
    /// Kept alive while the case runs (targets outside the namespace).
    _outside: Option<tempfile::TempDir>,
}

type Generator = fn(&Path, &mut Case);

/// The problem lines of `check`'s text output, and the counts line.
fn split_counts(stdout: &str) -> (Vec<&str>, &str) {
    let mut lines: Vec<&str> = stdout.lines().collect();
    let counts = lines.pop().unwrap_or("");
    (lines, counts)
}

/// `(errors, warnings)` from `N error(s), M warning(s)`.
fn counts(line: &str) -> Option<(u64, u64)> {
    let (e, rest) = line.split_once(" error(s), ")?;
    let w = rest.strip_suffix(" warning(s)")?;
    Some((e.parse().ok()?, w.parse().ok()?))
}

/// What one case took.
struct Timing {
    check: Duration,
}

/// Runs one case; every difference from what is expected is an entry of
/// the result.
fn run_case(case: &mut Case, generator: Option<Generator>) -> Result<Timing, Vec<String>> {
    let base = baseline();
    let home = DataHome::new();
    let ns = home.ns("west");
    for (rel, text, _) in BASELINE {
        home.write("west", rel, text);
    }
    copy_tree(&base.ns.join("runtime"), &ns.join("runtime"));
    let given = case.dir.join("ns");
    if given.is_dir() {
        copy_tree(&given, &ns);
    }
    if let Some(generate) = generator {
        generate(&ns, case);
    }
    let mut failures = Vec::new();
    let mut fail = |what: String| failures.push(what);

    let mut expected = std::fs::read_to_string(case.dir.join("expected"))
        .unwrap_or_else(|e| panic!("{}: expected: {e}", case.name));
    for (var, value) in &case.vars {
        expected = expected.replace(&format!("{{{{{var}}}}}"), value);
    }

    // check: the exact lines, promptly, exit 1 exactly when there is an error.
    let (out, took) = run(&ns, &["check"]);
    let stdout = text(&out.stdout);
    if took > HANG {
        fail(format!("check took {took:?}"));
    }
    if stdout != expected {
        if std::env::var_os("SKUPPERD_CORPUS_BLESS").is_some() {
            let mut blessed = stdout.clone();
            // Longest first: a short value may be part of a longer one.
            let mut vars: Vec<_> = case.vars.iter().collect();
            vars.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
            for (var, value) in vars {
                blessed = blessed.replace(value.as_str(), &format!("{{{{{var}}}}}"));
            }
            std::fs::write(case.dir.join("expected"), blessed).unwrap();
        }
        fail(format!(
            "check printed\n{}\ninstead of\n{}",
            shorten(&stdout),
            shorten(&expected)
        ));
    }
    if !out.stderr.is_empty() {
        fail(format!("check wrote to stderr: {}", text(&out.stderr)));
    }
    let (lines, count_line) = split_counts(&stdout);
    let Some((errors, warnings)) = counts(count_line) else {
        fail(format!("no counts line in {}", shorten(&stdout)));
        return Err(failures);
    };
    let code = i32::from(errors > 0);
    if out.status.code() != Some(code) {
        fail(format!("check exited {:?}, not {code}", out.status));
    }

    // check --output json: the same problems.
    let (out, _) = run(&ns, &["check", "--output", "json"]);
    match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
        Ok(doc) => {
            if (doc["errors"].as_u64(), doc["warnings"].as_u64()) != (Some(errors), Some(warnings))
            {
                fail(format!(
                    "json counts {} {}, text {errors} {warnings}",
                    doc["errors"], doc["warnings"]
                ));
            }
            let messages: Vec<&str> = doc["problems"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["message"].as_str()).collect())
                .unwrap_or_default();
            let text_messages: Vec<&str> = lines.iter().map(|l| message_of(l)).collect();
            if messages != text_messages {
                fail(format!(
                    "json messages differ from text:\n{messages:#?}\n{text_messages:#?}"
                ));
            }
        }
        Err(e) => fail(format!(
            "check --output json: {e}: {}",
            shorten(&text(&out.stdout))
        )),
    }
    if out.status.code() != Some(code) {
        fail(format!("check --output json exited {:?}", out.status));
    }

    // render: the same problems, and the baseline untouched.
    let (out, took_render) = run(&ns, &["render"]);
    if took_render > HANG {
        fail(format!("render took {took_render:?}"));
    }
    let rendered = text(&out.stdout);
    let mut rendered_lines: Vec<&str> = rendered.lines().collect();
    let summary = rendered_lines.pop().unwrap_or("");
    if !summary.contains(" file(s) written, ") {
        fail(format!("render's last line: {summary}"));
    }
    if rendered_lines.join("\n") + "\n" != stdout {
        fail(format!(
            "render printed\n{}\ninstead of check's\n{}",
            shorten(&rendered),
            shorten(&stdout)
        ));
    }
    if out.status.code() != Some(code) || !out.stderr.is_empty() {
        fail(format!(
            "render exited {:?}: {}",
            out.status,
            text(&out.stderr)
        ));
    }
    compare_with_baseline(&ns, case, &mut fail);
    if failures.is_empty() {
        Ok(Timing { check: took })
    } else {
        Err(failures)
    }
}

/// The message of a text line (`place: severity: message`).
fn message_of(line: &str) -> &str {
    for severity in ["error", "warning"] {
        if let Some(m) = line.strip_prefix(&format!("{severity}: ")) {
            return m;
        }
        if let Some((_, m)) = line.split_once(&format!(": {severity}: ")) {
            return m;
        }
    }
    line
}

fn shorten(s: &str) -> String {
    let mut end = 4_000.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{}... ({} bytes)", &s[..end], s.len())
    } else {
        s.to_string()
    }
}

/// The baseline's outputs after the case's render: every runtime file of
/// the baseline except `status.yaml` unchanged (a baseline resource the
/// case replaces has its own record), and `skrouterd.json` holding the
/// baseline's entities unchanged and in order, plus exactly those the case
/// lists in `router-adds`.
fn compare_with_baseline(ns: &Path, case: &Case, fail: &mut impl FnMut(String)) {
    let base = baseline();
    let now = runtime_files(ns);
    if case.dir.join("outputs-removed").exists() {
        // A known behaviour, reported: what the namespace derived from
        // resources is gone; the site identity stays.
        let left: Vec<&String> = now
            .keys()
            .filter(|rel| !rel.starts_with("runtime/issuers/"))
            .filter(|rel| *rel != "runtime/identity.yaml" && *rel != "runtime/status.yaml")
            .collect();
        if !left.is_empty() || !now.contains_key("runtime/identity.yaml") {
            fail(format!(
                "outputs-removed, but runtime/ holds {:?}",
                now.keys()
            ));
        }
        return;
    }
    let replaced: BTreeSet<&str> = BASELINE
        .iter()
        .filter(|(input, _, _)| case.dir.join("ns").join(input).exists())
        .map(|(_, _, record)| *record)
        .collect();
    // Records whose status the case changes (`records-changed`: a path and
    // a text its new content holds, one a line).
    let changed: Vec<(String, String)> = std::fs::read_to_string(case.dir.join("records-changed"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    for (rel, holds) in &changed {
        match now.get(rel) {
            Some(b) if String::from_utf8_lossy(b).contains(holds.as_str()) => {}
            Some(b) => fail(format!(
                "{rel} does not hold {holds:?}:\n{}",
                shorten(&String::from_utf8_lossy(b))
            )),
            None => fail(format!("{rel} is gone")),
        }
    }
    for (rel, bytes) in &base.files {
        if rel == "runtime/status.yaml"
            || rel == "runtime/router/skrouterd.json"
            || replaced.contains(rel.as_str())
            || changed.iter().any(|(p, _)| p == rel)
        {
            continue;
        }
        match now.get(rel) {
            Some(b) if b == bytes => {}
            Some(b) => fail(format!(
                "{rel} changed:\n{}\nwas\n{}",
                shorten(&String::from_utf8_lossy(b)),
                shorten(&String::from_utf8_lossy(bytes))
            )),
            None => fail(format!("{rel} is gone")),
        }
    }
    let Some(config) = now.get("runtime/router/skrouterd.json") else {
        fail("runtime/router/skrouterd.json is gone".to_string());
        return;
    };
    let got = entities(config);
    let mut want = base.entities.iter().peekable();
    let mut added = Vec::new();
    for e in &got {
        if want.peek() == Some(&e) {
            want.next();
        } else {
            added.push(entity_name(e));
        }
    }
    if let Some(missing) = want.next() {
        fail(format!(
            "skrouterd.json lost or changed the baseline's {missing}\n{}",
            String::from_utf8_lossy(config)
        ));
    }
    let mut listed: Vec<String> = std::fs::read_to_string(case.dir.join("router-adds"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    added.sort();
    listed.sort();
    if added != listed {
        fail(format!(
            "skrouterd.json adds {added:?}, router-adds lists {listed:?}"
        ));
    }
}

#[test]
fn every_corpus_case_reports_exactly_and_leaves_the_baseline_alone() {
    let generators: BTreeMap<&str, Generator> = generated::ALL.iter().copied().collect();
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for g in generators.keys() {
        assert!(
            names.iter().any(|n| n == g),
            "generator {g} has no directory tests/corpus/{g}/ with its expected output"
        );
    }
    if let Ok(only) = std::env::var("SKUPPERD_CORPUS_CASE") {
        names.retain(|n| n.contains(&only));
    }
    assert!(names.len() >= 80 || std::env::var_os("SKUPPERD_CORPUS_CASE").is_some());

    // Two workers: the cases are independent processes.
    let next = std::sync::Mutex::new(names.iter());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(name) = next.lock().unwrap().next() else {
                    return;
                };
                let mut case = Case {
                    name: name.clone(),
                    dir: corpus_dir().join(name),
                    vars: BTreeMap::new(),
                    _outside: None,
                };
                let generator = generators.get(name.as_str()).copied();
                let given = case.dir.join("ns").is_dir();
                let result = if generator.is_none() && !given {
                    Err(vec!["neither ns/ nor a generator".to_string()])
                } else {
                    run_case(&mut case, generator)
                };
                results.lock().unwrap().push((name.clone(), result));
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut failed = Vec::new();
    let mut times: Vec<(Duration, &str)> = Vec::new();
    for (name, result) in &results {
        match result {
            Ok(t) => times.push((t.check, name)),
            Err(why) => failed.push(format!("--- case {name}:\n{}", why.join("\n"))),
        }
    }
    times.sort();
    if let Some((max, which)) = times.last() {
        eprintln!(
            "corpus: {} cases, check took {:?} at the median and {max:?} at most ({which}); slowest: {:?}",
            results.len(),
            times[times.len() / 2].0,
            times.iter().rev().take(6).collect::<Vec<_>>()
        );
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
}

/// Makes a FIFO or a socket node at `path` (its directories too). Nothing
/// ever writes to the FIFO or listens on the socket.
fn special(path: &Path, kind: rustix::fs::FileType) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    match kind {
        rustix::fs::FileType::Socket => {
            // Bound and dropped: the node stays, nothing listens.
            drop(std::os::unix::net::UnixListener::bind(path).unwrap());
        }
        _ => mkfifo(path),
    }
}

/// Bytes from a fixed-seed generator: the same "random" garbage every run.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        })
        .collect()
}

mod generated {
    //! The generators, by case name.

    use super::*;
    use rustix::fs::FileType;

    pub const ALL: &[(&str, Generator)] = &[
        ("binary-garbage", binary_garbage),
        ("binary-garbage-json", binary_garbage_json),
        ("control-characters-in-kind", control_characters_in_kind),
        ("crlf-line-endings", crlf_line_endings),
        ("cr-only-line-endings", cr_only_line_endings),
        ("bom-utf8", bom_utf8),
        ("bom-utf16", bom_utf16),
        ("invalid-utf8-in-name", invalid_utf8_in_name),
        ("invalid-utf8-file-name", invalid_utf8_file_name),
        ("nul-bytes", nul_bytes),
        ("nul-in-quoted-host", nul_in_quoted_host),
        ("file-100-mib", file_100_mib),
        ("file-just-over-1-mib", file_just_over_1_mib),
        ("file-of-1-mib-of-documents", file_of_1_mib_of_documents),
        ("deep-nesting-1-mib", deep_nesting_1_mib),
        ("wide-map-1-mib", wide_map_1_mib),
        ("wide-settings-1-mib", wide_settings_1_mib),
        ("nested-anchors", nested_anchors),
        ("huge-host", huge_host),
        ("huge-routing-key", huge_routing_key),
        ("huge-key", huge_key),
        ("fifo-in-every-input-folder", fifo_in_every_input_folder),
        ("socket-in-every-input-folder", socket_in_every_input_folder),
        ("fifo-named-by-a-listener", fifo_named_by_a_listener),
        ("fifo-as-platform-file", fifo_as_platform_file),
        ("symlink-loop-in-resources", symlink_loop_in_resources),
        ("symlink-loop-in-certs", symlink_loop_in_certs),
        ("symlink-loop-of-directories", symlink_loop_of_directories),
        ("symlink-dangling", symlink_dangling),
        (
            "symlink-resource-outside-namespace",
            symlink_resource_outside,
        ),
        (
            "symlink-bundle-file-to-etc-passwd",
            symlink_bundle_file_to_passwd,
        ),
        (
            "symlink-bundle-dir-outside-namespace",
            symlink_bundle_dir_outside,
        ),
        ("symlink-bundle-inside-namespace", symlink_bundle_inside),
        ("directory-named-like-yaml", directory_named_like_yaml),
        ("directory-as-bundle-file", directory_as_bundle_file),
        ("directory-as-platform-file", directory_as_platform_file),
        ("file-named-with-newline", file_named_with_newline),
    ];

    fn res(ns: &Path, name: &str) -> PathBuf {
        ns.join("input/resources").join(name)
    }

    fn put(ns: &Path, rel: &str, bytes: &[u8]) {
        let p = ns.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn listener_doc(name: &str, host: &str, port: &str) -> String {
        listener(name, host, port)
    }

    fn binary_garbage(ns: &Path, _: &mut Case) {
        // Not UTF-8 from its first byte (0x8f), whatever follows.
        let mut bytes = vec![0x8f];
        bytes.extend(garbage(64 * 1024, 1));
        std::fs::write(res(ns, "garbage.yaml"), bytes).unwrap();
    }

    fn binary_garbage_json(ns: &Path, _: &mut Case) {
        // Valid UTF-8 made of random ASCII, control characters included.
        let bytes: Vec<u8> = garbage(4096, 7).into_iter().map(|b| b & 0x7f).collect();
        std::fs::write(res(ns, "garbage.json"), bytes).unwrap();
    }

    fn control_characters_in_kind(ns: &Path, _: &mut Case) {
        put(
            ns,
            "input/resources/ctl.yaml",
            b"apiVersion: skupper.io/v2alpha1\nkind: \"Lis\\e[2Jtener\\a\"\nmetadata:\n  name: ctl\n",
        );
    }

    fn crlf_line_endings(ns: &Path, _: &mut Case) {
        let doc = listener_doc("crlf", "127.0.0.1", "9001").replace('\n', "\r\n");
        std::fs::write(res(ns, "crlf.yaml"), doc).unwrap();
    }

    fn cr_only_line_endings(ns: &Path, _: &mut Case) {
        let doc = listener_doc("cr", "127.0.0.1", "9002").replace('\n', "\r");
        std::fs::write(res(ns, "cr.yaml"), doc).unwrap();
    }

    fn bom_utf8(ns: &Path, _: &mut Case) {
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend(listener_doc("bom", "127.0.0.1", "9003").bytes());
        std::fs::write(res(ns, "bom.yaml"), bytes).unwrap();
    }

    fn bom_utf16(ns: &Path, _: &mut Case) {
        let doc = listener_doc("utf16", "127.0.0.1", "9004");
        let mut bytes = vec![0xff, 0xfe];
        for u in doc.encode_utf16() {
            bytes.extend(u.to_le_bytes());
        }
        std::fs::write(res(ns, "utf16.yaml"), bytes).unwrap();
    }

    fn invalid_utf8_in_name(ns: &Path, _: &mut Case) {
        // `name: bad\xff\xfename`: the bytes 0xff 0xfe are never UTF-8.
        let doc = listener_doc("badXname", "127.0.0.1", "9005");
        let (before, after) = doc.split_once('X').unwrap();
        let mut bytes = before.as_bytes().to_vec();
        bytes.extend([0xff, 0xfe]);
        bytes.extend(after.bytes());
        std::fs::write(res(ns, "badutf8.yaml"), bytes).unwrap();
    }

    fn invalid_utf8_file_name(ns: &Path, _: &mut Case) {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9.yaml");
        std::fs::write(
            ns.join("input/resources").join(name),
            listener_doc("cafe", "127.0.0.1", "99999"),
        )
        .unwrap();
    }

    fn nul_bytes(ns: &Path, _: &mut Case) {
        let doc = listener_doc("nul", "127.0.0.1", "9006").replace("name: nul", "name: n\0ul");
        std::fs::write(res(ns, "nul.yaml"), doc).unwrap();
    }

    fn nul_in_quoted_host(ns: &Path, _: &mut Case) {
        // A raw NUL inside a quoted scalar.
        let doc = listener_doc("nulhost", "\"127.0.0.1\0evil\"", "9007");
        std::fs::write(res(ns, "nulhost.yaml"), doc).unwrap();
    }

    fn file_100_mib(ns: &Path, _: &mut Case) {
        // Sparse: refused by its size before a byte is read.
        let f = std::fs::File::create(res(ns, "huge.yaml")).unwrap();
        f.set_len(100 * 1024 * 1024).unwrap();
    }

    fn file_just_over_1_mib(ns: &Path, _: &mut Case) {
        let mut doc = listener_doc("big", "127.0.0.1", "9008");
        while doc.len() <= 1024 * 1024 {
            doc.push_str("# padding padding padding padding padding padding padding\n");
        }
        doc.truncate(1024 * 1024 + 1);
        std::fs::write(res(ns, "big.yaml"), doc).unwrap();
    }

    fn file_of_1_mib_of_documents(ns: &Path, _: &mut Case) {
        // 262,000 empty documents, then one listener after them: just
        // under the size limit.
        let mut text = "---\n".repeat(262_000);
        text.push_str(&listener_doc("last", "127.0.0.1", "0"));
        std::fs::write(res(ns, "docs.yaml"), text).unwrap();
    }

    fn deep_nesting_1_mib(ns: &Path, _: &mut Case) {
        // Just under the size limit: a million brackets.
        let n = 500_000;
        let text = format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
        std::fs::write(res(ns, "deep.yaml"), text).unwrap();
    }

    fn wide_map_1_mib(ns: &Path, _: &mut Case) {
        let mut text = String::from(
            "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: wide\n  labels:\n",
        );
        let mut i = 0;
        while text.len() < 1_000_000 {
            text.push_str(&format!("    k{i}: v\n"));
            i += 1;
        }
        // The last key repeats the first: found at once.
        text.push_str("    k0: again\n");
        std::fs::write(res(ns, "wide.yaml"), text).unwrap();
    }

    fn wide_settings_1_mib(ns: &Path, case: &mut Case) {
        let mut text = listener_doc("wide", "127.0.0.1", "9009");
        text.push_str("  settings:\n");
        let mut warnings = String::new();
        let mut i = 0;
        let mut keys = Vec::new();
        while text.len() < 1_000_000 {
            text.push_str(&format!("    k{i}: v\n"));
            keys.push(i);
            i += 1;
        }
        // One warning per key, in file order, at the key's value.
        for i in &keys {
            let k = format!("k{i}");
            warnings.push_str(&format!(
                "input/resources/wide.yaml:{}:{}: warning: listener \"wide\": spec.settings.{k}: unknown setting, ignored\n",
                i + 9,
                k.len() + 7
            ));
        }
        std::fs::write(res(ns, "wide.yaml"), text).unwrap();
        case.vars.insert("warnings", warnings);
        case.vars.insert("count", keys.len().to_string());
    }

    fn nested_anchors(ns: &Path, _: &mut Case) {
        // Each level's anchor once kept its own copy of everything below.
        let mut text = String::from("a: ");
        for i in 0..60 {
            text.push_str(&format!("&a{i} ["));
        }
        text.push_str(&"1,".repeat(100_000));
        text.push('1');
        text.push_str(&"]".repeat(60));
        text.push('\n');
        std::fs::write(res(ns, "anchors.yaml"), text).unwrap();
    }

    fn huge_host(ns: &Path, case: &mut Case) {
        let host = "a".repeat(100_000);
        std::fs::write(
            res(ns, "host.yaml"),
            listener_doc("hugehost", &host, "9010"),
        )
        .unwrap();
        case.vars.insert("host", host);
    }

    fn huge_routing_key(ns: &Path, _: &mut Case) {
        let mut doc = listener_doc("hugekey", "127.0.0.1", "9011");
        doc.push_str(&format!("  routingKey: {}\n", "k".repeat(500_000)));
        std::fs::write(res(ns, "key.yaml"), doc).unwrap();
    }

    fn huge_key(ns: &Path, case: &mut Case) {
        let key = "z".repeat(200_000);
        let mut doc = listener_doc("hugefield", "127.0.0.1", "9012");
        doc.push_str(&format!("  {key}: 1\n"));
        std::fs::write(res(ns, "field.yaml"), doc).unwrap();
        case.vars.insert("key", key);
    }

    /// One special file in each folder skupperd reads (and in the ones it
    /// only watches).
    fn specials(ns: &Path, kind: FileType) {
        for rel in [
            "input/resources/special.yaml",
            "input/resources/special",
            "input/resources/sub/special.yml",
            "input/resources/.hidden.yaml",
            "input/certs/special",
            "input/certs/web/tls.crt",
            "input/certs/web/ca.crt",
            "input/certs/web/other",
            "input/issuers/special",
            "input/issuers/ca/tls.key",
            "input/special",
            "internal/special",
            "runtime/special",
            "runtime/resources/Listener-special.yaml",
        ] {
            special(&ns.join(rel), kind);
        }
    }

    fn fifo_in_every_input_folder(ns: &Path, _: &mut Case) {
        specials(ns, FileType::Fifo);
    }

    fn socket_in_every_input_folder(ns: &Path, _: &mut Case) {
        specials(ns, FileType::Socket);
    }

    fn fifo_named_by_a_listener(ns: &Path, _: &mut Case) {
        special(&ns.join("input/certs/web/tls.key"), FileType::Fifo);
        special(&ns.join("input/certs/web/tls.crt"), FileType::Socket);
        special(&ns.join("input/certs/pipe"), FileType::Fifo);
    }

    fn fifo_as_platform_file(ns: &Path, _: &mut Case) {
        special(&ns.join("internal/platform.yaml"), FileType::Fifo);
    }

    fn symlink_loop_in_resources(ns: &Path, _: &mut Case) {
        symlink("loop-b.yaml", res(ns, "loop-a.yaml")).unwrap();
        symlink("loop-a.yaml", res(ns, "loop-b.yaml")).unwrap();
        symlink("self.yaml", res(ns, "self.yaml")).unwrap();
    }

    fn symlink_loop_in_certs(ns: &Path, _: &mut Case) {
        std::fs::create_dir_all(ns.join("input/certs/web")).unwrap();
        symlink("tls.key", ns.join("input/certs/web/tls.crt")).unwrap();
        symlink("tls.crt", ns.join("input/certs/web/tls.key")).unwrap();
        symlink("spin", ns.join("input/certs/spin")).unwrap();
    }

    fn symlink_loop_of_directories(ns: &Path, _: &mut Case) {
        // Directory links are never walked into: no endless descent.
        std::fs::create_dir_all(res(ns, "sub")).unwrap();
        symlink("..", res(ns, "sub/up")).unwrap();
        symlink(".", res(ns, "sub/here.yaml")).unwrap();
        symlink("../..", ns.join("input/certs-link")).unwrap();
    }

    fn symlink_dangling(ns: &Path, _: &mut Case) {
        symlink("/nonexistent/skupperd-test", res(ns, "gone.yaml")).unwrap();
        std::fs::create_dir_all(ns.join("input/certs/web")).unwrap();
        symlink(
            "/nonexistent/skupperd-test",
            ns.join("input/certs/web/ca.crt"),
        )
        .unwrap();
    }

    /// A directory outside the namespace, kept for the case's run.
    fn outside(case: &mut Case) -> PathBuf {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_path_buf();
        case._outside = Some(dir);
        p
    }

    fn symlink_resource_outside(ns: &Path, case: &mut Case) {
        // Resource files are read through links wherever they point
        // (DESIGN.md 6 refuses only links under input/certs/).
        let out = outside(case);
        std::fs::write(
            out.join("l.yaml"),
            listener_doc("linked", "127.0.0.1", "9013"),
        )
        .unwrap();
        symlink(out.join("l.yaml"), res(ns, "linked.yaml")).unwrap();
    }

    fn symlink_bundle_file_to_passwd(ns: &Path, _: &mut Case) {
        std::fs::create_dir_all(ns.join("input/certs/web")).unwrap();
        symlink("/etc/passwd", ns.join("input/certs/web/tls.crt")).unwrap();
        symlink(
            "../../../../../../../../etc/shadow",
            ns.join("input/certs/web/tls.key"),
        )
        .unwrap();
        std::fs::create_dir_all(ns.join("input/certs/spare")).unwrap();
        symlink("/etc/passwd", ns.join("input/certs/spare/ca.crt")).unwrap();
    }

    fn symlink_bundle_dir_outside(ns: &Path, case: &mut Case) {
        let out = outside(case);
        std::fs::write(out.join("tls.crt"), "not read").unwrap();
        std::fs::write(out.join("tls.key"), "not read").unwrap();
        std::fs::create_dir_all(ns.join("input/certs")).unwrap();
        symlink(&out, ns.join("input/certs/web")).unwrap();
        symlink("/etc", ns.join("input/certs/etc")).unwrap();
    }

    fn symlink_bundle_inside(ns: &Path, _: &mut Case) {
        // Links that stay inside the namespace are followed: the bundle
        // is read (and found not to be PEM).
        put(ns, "keep/web.crt", b"not PEM\n");
        put(ns, "keep/web.key", b"not PEM either\n");
        std::fs::create_dir_all(ns.join("input/certs/web")).unwrap();
        symlink("../../../keep/web.crt", ns.join("input/certs/web/tls.crt")).unwrap();
        symlink(ns.join("keep/web.key"), ns.join("input/certs/web/tls.key")).unwrap();
    }

    fn directory_named_like_yaml(ns: &Path, _: &mut Case) {
        // A folder is a folder, whatever its name: its files are read.
        std::fs::create_dir_all(res(ns, "folder.yaml")).unwrap();
        std::fs::create_dir_all(res(ns, "empty.yml")).unwrap();
        std::fs::write(
            res(ns, "folder.yaml/inner.yaml"),
            listener_doc("inner", "127.0.0.1", "0"),
        )
        .unwrap();
    }

    fn directory_as_bundle_file(ns: &Path, _: &mut Case) {
        std::fs::create_dir_all(ns.join("input/certs/web/tls.crt")).unwrap();
        std::fs::create_dir_all(ns.join("input/certs/web/tls.key")).unwrap();
    }

    fn directory_as_platform_file(ns: &Path, _: &mut Case) {
        std::fs::create_dir_all(ns.join("internal/platform.yaml")).unwrap();
    }

    fn file_named_with_newline(ns: &Path, _: &mut Case) {
        std::fs::write(
            res(ns, "two\nlines\u{1b}[31m.yaml"),
            listener_doc("Named", "127.0.0.1", "9014"),
        )
        .unwrap();
    }
}

/// Files that vanish, appear and change while `check` reads the
/// namespace: it finishes promptly, never panics, keeps the baseline
/// clean, and says about the changing files only what a file can be.
#[test]
fn files_vanishing_while_check_reads_are_reported_or_unseen() {
    let home = DataHome::new();
    let ns = home.ns("west");
    for (rel, text, _) in BASELINE {
        home.write("west", rel, text);
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let churn = |dir: PathBuf, names: Vec<String>, content: String| {
        let mut i = 0usize;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let p = dir.join(&names[i % names.len()]);
            let _ = std::fs::write(&p, &content);
            let _ = std::fs::remove_file(&p);
            if i.is_multiple_of(3) {
                let _ = std::fs::create_dir(&p);
                let _ = std::fs::remove_dir(&p);
            }
            i += 1;
        }
    };
    let res = ns.join("input/resources");
    let certs = ns.join("input/certs");
    std::fs::create_dir_all(certs.join("web")).unwrap();
    let res_names: Vec<String> = (0..8).map(|i| format!("v{i}.yaml")).collect();
    let cert_names = vec![
        "tls.crt".to_string(),
        "tls.key".to_string(),
        "ca.crt".to_string(),
    ];
    let mut max = Duration::ZERO;
    let mut seen = 0usize;
    let mut wrong = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            churn(
                res.clone(),
                res_names.clone(),
                listener("vanish", "127.0.0.1", "0"),
            )
        });
        s.spawn(|| churn(certs.join("web"), cert_names.clone(), "x\n".to_string()));
        s.spawn(|| churn(certs.clone(), vec!["gone".to_string()], String::new()));
        // No assertion in here: a panic would leave the churning threads
        // running and the scope waiting for them.
        for _ in 0..30 {
            let (out, took) = run(&ns, &["check"]);
            max = max.max(took);
            let stdout = text(&out.stdout);
            if !matches!(out.status.code(), Some(0 | 1)) || !out.stderr.is_empty() {
                wrong.push(format!("{:?} {}", out.status, text(&out.stderr)));
            }
            let (lines, count_line) = split_counts(&stdout);
            if counts(count_line).is_none() {
                wrong.push(format!("no counts line: {stdout}"));
            }
            seen += lines.len();
            for line in lines {
                // What a file that changes under the scan can be: gone,
                // a directory, or in a directory that became a file.
                let known = (line.starts_with("input/resources/v")
                    || line.starts_with("input/certs/web/")
                    || line.starts_with("input/certs/gone"))
                    && [
                        "listener \"vanish\"",
                        "is defined twice",
                        "is a directory: not a regular file, ignored",
                        " cannot be read: No such file or directory (os error 2)",
                        " cannot be read, ignored: No such file or directory (os error 2)",
                        " cannot be read, ignored: Not a directory (os error 20)",
                    ]
                    .iter()
                    .any(|f| line.contains(f));
                if !known || line.contains("backend") || line.contains("west") {
                    wrong.push(format!("unexpected line: {line}"));
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    eprintln!(
        "vanishing files: 30 checks saw {seen} problem(s) about them; the slowest took {max:?}"
    );
    assert!(max < HANG, "check took {max:?}");
    assert_eq!(wrong, Vec::<String>::new());
}
