//! Fuzzing without a nightly compiler: long proptest runs through the
//! functions `check` and `render` use (`resources::load_file`,
//! `plan::read_prior`, `plan::check`, `plan::reconcile`), over arbitrary
//! bytes and over YAML-ish documents built from the resource fields and
//! then mutated, with TLS bundles of real, broken and refused files and
//! corrupted runtime files.
//!
//! Every input must be handled without a panic, within [`TIME_BOUND`] and
//! with at most [`MEMORY_BOUND`] allocated at once by the thread that
//! handles it; every written `.yaml` must parse back cleanly and every
//! `.json` as JSON, and a second pass over the first one's output must
//! write nothing.
//!
//! `SKUPPERD_FUZZ_CASES` sets the cases per property (default 128, about
//! a second of CI time); the README has the command for a long run.
//! Failures are kept in `proptest-regressions/hostile_fuzz.txt` and
//! replayed first.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError};
use skupperd::certs::{FileBytes, MemoMint, Mint};
use skupperd::plan::{self, Inputs, Platform, RouterState};
use skupperd::store::ports::FixedPorts;
use skupperd::validate::{FileRefusal, InputBundle, InputCerts};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One input may take this long (a debug build on a shared, noisy
/// machine; inputs take milliseconds).
const TIME_BOUND: Duration = Duration::from_secs(5);
/// One input may have this much allocated at once (its inputs are at
/// most a few hundred KiB).
const MEMORY_BOUND: usize = 256 << 20;

// === the allocation meter ===

/// The system allocator, counting what each thread has allocated and not
/// freed, and the peak of that since the thread last reset it. Only the
/// fuzz threads read it; for everything else it is the system allocator
/// with two thread-local additions.
struct Meter;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: a thread being torn down frees without counting.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed to `System` unchanged; the counting only
// touches const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Runs `f`, returning its result, how long it took and the most it had
/// allocated at once (on this thread: the code under test runs on one
/// thread for inputs this small).
fn measured<T>(f: impl FnOnce() -> T) -> (T, Duration, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    let peak = PEAK.with(Cell::get) - base;
    (out, took, peak.max(0) as usize)
}

/// The largest time and memory any input took, for the summary line.
#[derive(Default)]
struct Worst {
    inputs: u64,
    time: Duration,
    memory: usize,
}

fn note(worst: &std::sync::Mutex<Worst>, took: Duration, peak: usize) -> Result<(), TestCaseError> {
    let mut w = worst.lock().unwrap();
    w.inputs += 1;
    w.time = w.time.max(took);
    w.memory = w.memory.max(peak);
    prop_assert!(took <= TIME_BOUND, "took {took:?}");
    prop_assert!(peak <= MEMORY_BOUND, "allocated {peak} bytes at once");
    Ok(())
}

fn report(what: &str, worst: &std::sync::Mutex<Worst>, started: Instant) {
    let w = worst.lock().unwrap();
    eprintln!(
        "fuzz {what}: {} inputs in {:.1?}; slowest {:?}, most allocated at once {} KiB",
        w.inputs,
        started.elapsed(),
        w.time,
        w.memory / 1024
    );
}

fn config() -> Config {
    let cases = std::env::var("SKUPPERD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/hostile_fuzz.txt",
        ))),
        ..Config::default()
    }
}

// === generators ===

/// Scalars as YAML text: every type, the edges of every range, and the
/// strings that have broken parsers and terminals.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "1",
            "-1",
            "65535",
            "65536",
            "8080",
            "-0",
            "+80",
            "0x1F90",
            "0o17",
            "1e3",
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999",
            ".inf",
            "-.inf",
            ".nan",
            "1.5",
            "true",
            "false",
            "yes",
            "no",
            "on",
            "~",
            "null",
            "",
            "127.0.0.1",
            "0.0.0.0",
            "::",
            "::1",
            "'::'",
            "\"[::1]\"",
            "0127.0.0.1",
            "127.1",
            "backend",
            "web-tls",
            "skupper-local-ca",
            "../../etc",
            "/etc/passwd",
            "a/b",
            "..",
            "auto",
            "http1",
            "tcp",
            "udp",
            "default",
            "none",
            "info",
            "auto",
            "Backend",
            "\"\\0\\e[2J\\a\"",
            "\"\\u202ebackend\"",
            "\"a\\u2028b\"",
            "\"\\x85\"",
            "\"$(reboot)\"",
            "'`id`'",
            "!!str 8080",
            "!!int \"80\"",
            "!custom x",
            "!!binary aGk=",
            "&a x",
            "*a",
            "*nowhere",
            "|\n    block\n",
            ">-\n    folded\n",
            "'it''s'",
            "\"unterminated",
            "[",
            "{",
            "]",
            "}",
            "- x",
            "? x",
            ": x",
            "@x",
            "`x",
            "%x",
            "#comment",
            "\u{1f680}",
            "b\u{430}ckend",
            "\u{ff42}ackend",
            "a\u{200b}b",
        ])
        .prop_map(str::to_string),
        "[a-z0-9.-]{0,70}",
        "\\PC{0,40}".prop_map(|s| format!("{s:?}")),
        (0usize..300).prop_map(|n| "x".repeat(n)),
        any::<i64>().prop_map(|i| i.to_string()),
        (-1e6f64..1e6).prop_map(|f| f.to_string()),
    ]
}

/// Field names of every kind skupperd reads, and some it does not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "apiVersion", "kind", "metadata", "spec", "status", "name", "namespace", "labels",
            "annotations", "uid", "generation", "host", "port", "routingKey", "type",
            "observer", "tlsCredentials", "exposePodsByName", "settings", "selector",
            "useClientCert", "verifyHostname", "includeNotReadyPods", "linkAccess", "edge",
            "ha", "defaultIssuer", "serviceAccount", "routerLogging", "router-logging",
            "routerDataConnections", "endpoints", "cost", "roles", "<<", "Port", "",
        ])
        .prop_map(str::to_string),
        1 => "[a-zA-Z_.-]{1,12}",
        1 => scalar().prop_map(|s| s.replace('\n', " ")),
    ]
}

/// A YAML value: a scalar, or a flow or block collection of values.
#[derive(Debug, Clone)]
enum Yaml {
    Scalar(String),
    Flow(Vec<(Option<String>, Yaml)>, bool),
    Block(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
}

fn yaml() -> impl Strategy<Value = Yaml> {
    scalar()
        .prop_map(Yaml::Scalar)
        .prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                (
                    prop::collection::vec((prop::option::of(key()), inner.clone()), 0..5),
                    any::<bool>()
                )
                    .prop_map(|(items, map)| Yaml::Flow(items, map)),
                prop::collection::vec((key(), inner.clone()), 0..6).prop_map(Yaml::Block),
                prop::collection::vec(inner, 0..4).prop_map(Yaml::List),
            ]
        })
}

fn emit(value: &Yaml, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Yaml::Scalar(s) => {
            out.push(' ');
            out.push_str(&s.replace('\n', &format!("\n{pad}")));
            out.push('\n');
        }
        Yaml::Flow(items, map) => {
            out.push_str(if *map { " {" } else { " [" });
            for (i, (k, v)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if let (true, Some(k)) = (*map, k) {
                    out.push_str(k);
                    out.push(':');
                }
                let mut inner = String::new();
                emit(v, 0, &mut inner);
                out.push_str(inner.trim().replace('\n', " ").as_str());
            }
            out.push_str(if *map { "}\n" } else { "]\n" });
        }
        Yaml::Block(entries) => {
            out.push('\n');
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(k);
                out.push(':');
                emit(v, indent + 2, out);
            }
        }
        Yaml::List(items) => {
            out.push('\n');
            for v in items {
                out.push_str(&pad);
                out.push('-');
                emit(v, indent + 2, out);
            }
        }
    }
}

/// A plausible value for a field: mostly one that validates, so that
/// rendering, certificates and the cross-resource rules run, sometimes
/// any scalar.
fn field_value(field: &'static str) -> BoxedStrategy<String> {
    let pool: Vec<&'static str> = match field {
        "host" => vec![
            "127.0.0.1",
            "0.0.0.0",
            "'::'",
            "'::1'",
            "backend",
            "db.example.com",
            "10.1.2.3",
        ],
        "port" => vec!["8080", "8081", "9090", "443", "5671", "1", "65535"],
        "routingKey" => vec!["backend", "db", "web", "a.b/c", "\"\\u00e9t\\u00e9\""],
        "tlsCredentials" | "defaultIssuer" => {
            vec!["web", "db", "backend", "x.y", "missing", "skupper-site-ca"]
        }
        "observer" => vec!["auto", "none", "http1", "http2"],
        "type" => vec!["tcp", "''"],
        "settings" => vec![
            "{observer: http1}",
            "{observer: auto}",
            "{foo: bar}",
            "{routerLogging: debug}",
            "{routerDataConnections: '4'}",
            "{}",
        ],
        "linkAccess" => vec!["none", "default", "''", "route"],
        "selector" | "serviceAccount" => vec!["app=db", "default"],
        _ => vec!["true", "false"],
    };
    prop_oneof![
        5 => prop::sample::select(pool).prop_map(str::to_string),
        1 => scalar().prop_map(|s| s.replace('\n', " ")),
    ]
    .boxed()
}

/// A Site, Listener or Connector as a user would write one: its own
/// fields, mostly valid values, names from a small set so that
/// duplicates, overlaps and shared credentials happen.
fn resource_document() -> impl Strategy<Value = String> {
    const LISTENER: [&str; 8] = [
        "routingKey",
        "host",
        "port",
        "type",
        "observer",
        "tlsCredentials",
        "exposePodsByName",
        "settings",
    ];
    const CONNECTOR: [&str; 11] = [
        "routingKey",
        "host",
        "port",
        "selector",
        "type",
        "tlsCredentials",
        "useClientCert",
        "verifyHostname",
        "includeNotReadyPods",
        "exposePodsByName",
        "settings",
    ];
    const SITE: [&str; 6] = [
        "linkAccess",
        "edge",
        "ha",
        "defaultIssuer",
        "serviceAccount",
        "settings",
    ];
    let kind = prop_oneof![
        3 => Just(("Listener", &LISTENER[..])),
        2 => Just(("Connector", &CONNECTOR[..])),
        1 => Just(("Site", &SITE[..])),
    ];
    (
        kind,
        prop::sample::select(vec!["west", "backend", "db", "web", "a", "b", "c", "d"]),
        prop::option::weighted(0.1, prop::sample::select(vec!["west", "east"])),
    )
        .prop_flat_map(|((kind, fields), name, namespace)| {
            let picked: Vec<BoxedStrategy<Option<(&'static str, String)>>> = fields
                .iter()
                .map(|f| {
                    // Host and port are usually there: without them little else runs.
                    let p = if matches!(*f, "host" | "port") {
                        0.95
                    } else {
                        0.3
                    };
                    prop::option::weighted(p, field_value(f).prop_map(move |v| (*f, v))).boxed()
                })
                .collect();
            picked.prop_map(move |values| {
                let mut doc = format!(
                    "apiVersion: skupper.io/v2alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n"
                );
                if let Some(ns) = namespace {
                    doc.push_str(&format!("  namespace: {ns}\n"));
                }
                doc.push_str("spec:\n");
                for (f, v) in values.into_iter().flatten() {
                    doc.push_str(&format!("  {f}: {v}\n"));
                }
                doc
            })
        })
}

/// Any document: mostly resources as users write them, some made of
/// any fields of any kind with any values.
fn document() -> impl Strategy<Value = String> {
    prop_oneof![3 => resource_document(), 1 => chaos_document()]
}

/// A document of any kind (known or not) whose fields are drawn from
/// every kind's, with values of any type and shape.
fn chaos_document() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec![
        "Site",
        "Listener",
        "Connector",
        "Link",
        "RouterAccess",
        "MultiKeyListener",
        "Secret",
        "ConfigMap",
        "AccessGrant",
        "Gateway",
        "listener",
    ]);
    let api = prop::sample::select(vec!["skupper.io/v2alpha1", "v1", "apps/v1", ""]);
    let name = prop_oneof![
        4 => prop::sample::select(vec!["west", "backend", "db", "web", "a", "x-1"]).prop_map(str::to_string),
        1 => scalar(),
    ];
    let fields = prop::collection::vec((key(), yaml()), 0..7);
    let site_like = prop::collection::vec(
        (
            prop::sample::select(vec![
                "host",
                "port",
                "routingKey",
                "tlsCredentials",
                "observer",
                "linkAccess",
                "settings",
            ]),
            scalar(),
        ),
        0..4,
    );
    (
        api,
        kind,
        name,
        fields,
        site_like,
        any::<bool>(),
        prop::option::of(key()),
    )
        .prop_map(|(api, kind, name, fields, plain, with_status, extra)| {
            let mut doc =
                format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n");
            for (k, v) in plain {
                doc.push_str(&format!("  {k}: {}\n", v.replace('\n', " ")));
            }
            for (k, v) in fields {
                doc.push_str("  ");
                doc.push_str(&k);
                doc.push(':');
                emit(&v, 4, &mut doc);
            }
            if with_status {
                doc.push_str("status:\n  status: Ready\n");
            }
            if let Some(k) = extra {
                doc.push_str(&format!("{k}: x\n"));
            }
            doc
        })
}

/// An edit of a file's bytes: what a careless editor, a bad copy or a
/// truncated write makes.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Replace(usize, u8),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = prop::sample::select(vec![
        b":".to_vec(),
        b"- ".to_vec(),
        b" ".to_vec(),
        b"\t".to_vec(),
        b"\n".to_vec(),
        b"\r\n".to_vec(),
        b"\"".to_vec(),
        b"'".to_vec(),
        b"[".to_vec(),
        b"{".to_vec(),
        b"&a ".to_vec(),
        b"*a".to_vec(),
        b"!!".to_vec(),
        b"#".to_vec(),
        b"|".to_vec(),
        b"---\n".to_vec(),
        b"...\n".to_vec(),
        b"%YAML 1.2\n".to_vec(),
        b"\0".to_vec(),
        b"\xff".to_vec(),
        b"\xef\xbb\xbf".to_vec(),
        b"\xe2\x80\xae".to_vec(),
        b"\\".to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), bytes).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 1usize..8).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Replace(at, b)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply_edits(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Insert(at, b) => {
                let at = at % (len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Delete(at, n) if len > 0 => {
                let at = at % len;
                bytes.drain(at..(at + n).min(len));
            }
            Edit::Replace(at, b) if len > 0 => bytes[at % len] = *b,
            Edit::Truncate(at) => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }
    bytes
}

/// A file's bytes: documents joined, sometimes edited, sometimes noise.
fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
    let edits = prop_oneof![
        2 => Just(Vec::new()),
        1 => prop::collection::vec(edit(), 1..4),
    ];
    prop_oneof![
        8 => (
            prop::collection::vec(document(), 1..4),
            edits,
            prop::bool::weighted(0.1),
        )
            .prop_map(|(docs, edits, crlf)| {
                let mut text = docs.join("---\n");
                if crlf {
                    text = text.replace('\n', "\r\n");
                }
                apply_edits(text.into_bytes(), &edits)
            }),
        1 => prop::collection::vec(any::<u8>(), 0..2048),
    ]
}

/// Certificates made once per run (a CA and a leaf it signed, and a
/// second CA), so bundles can hold real, mismatched and broken PEM. Made
/// at run time: no key is committed.
struct Pems {
    ca: skupperd::certs::Credential,
    leaf: skupperd::certs::Credential,
    other: skupperd::certs::Credential,
}

fn pems() -> &'static Pems {
    static PEMS: OnceLock<Pems> = OnceLock::new();
    PEMS.get_or_init(|| {
        let mut mint = MemoMint::new(4242);
        let now = now();
        let ca = mint.issue_ca("fuzz-ca", now).unwrap();
        let leaf = mint
            .issue_leaf(
                &ca,
                "web",
                &["127.0.0.1".to_string(), "backend".to_string()],
                now,
            )
            .unwrap();
        let other = mint.issue_ca("other-ca", now).unwrap();
        Pems { ca, leaf, other }
    })
}

fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-26 10:00:00 UTC)
}

/// What one file of a bundle may hold.
fn bundle_file() -> impl Strategy<Value = Result<FileBytes, FileRefusal>> {
    let content = prop_oneof![
        3 => prop::sample::select(vec![0usize, 1, 2, 3, 4, 5, 6]).prop_map(|which| {
            let p = pems();
            match which {
                0 => p.leaf.cert_pem.clone().into_bytes(),
                1 => p.leaf.key_pem.clone().into_bytes(),
                2 => p.ca.cert_pem.clone().into_bytes(),
                3 => p.other.key_pem.clone().into_bytes(),
                4 => format!("{}{}", p.leaf.cert_pem, p.ca.cert_pem).into_bytes(),
                5 => p.leaf.cert_pem.as_bytes()[..p.leaf.cert_pem.len() / 2].to_vec(),
                _ => b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            }
        }),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ];
    prop_oneof![
        8 => (content, prop::sample::select(vec![0o600u32, 0o644, 0o000, 0o777]))
            .prop_map(|(bytes, mode)| Ok(FileBytes { bytes, mode })),
        1 => prop::sample::select(vec![
            FileRefusal::SymlinkLeavesNamespace,
            FileRefusal::TooLarge,
            FileRefusal::Unreadable("Permission denied (os error 13)".to_string()),
            FileRefusal::NotRegular("a FIFO"),
        ])
        .prop_map(Err),
    ]
}

fn certs() -> impl Strategy<Value = InputCerts> {
    let bundle = prop_oneof![
        8 => prop::collection::btree_map(
            prop::sample::select(vec!["tls.crt", "tls.key", "ca.crt"]).prop_map(str::to_string),
            bundle_file(),
            0..4,
        )
        .prop_map(|files| InputBundle { refused: None, files }),
        1 => Just(InputBundle::refused(FileRefusal::Unreadable("Too many levels of symbolic links (os error 40)".to_string()))),
    ];
    (
        prop::collection::btree_map(
            prop::sample::select(vec![
                "web",
                "db",
                "backend",
                "x.y",
                "skupper-local-ca",
                "skupper-site-ca",
            ])
            .prop_map(str::to_string),
            bundle,
            0..3,
        ),
        prop::option::weighted(0.05, Just("Input/output error (os error 5)".to_string())),
    )
        .prop_map(|(bundles, unreadable)| InputCerts {
            bundles,
            unreadable,
        })
}

/// Runtime files as a previous pass, a crash or another tool left them:
/// mostly garbage where skupperd reads its own state back.
fn runtime() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    prop::collection::btree_map(
        prop::sample::select(vec![
            "runtime/identity.yaml",
            "runtime/status.yaml",
            "runtime/router/skrouterd.json",
            "runtime/resources/Listener-backend.yaml",
            "runtime/resources/Site-west.yaml",
            "runtime/resources/Connector-db.yaml",
            "runtime/certs/web/tls.crt",
            "runtime/issuers/skupper-local-ca/tls.key",
        ])
        .prop_map(str::to_string),
        prop_oneof![file_bytes(), document().prop_map(String::into_bytes)],
        0..3,
    )
}

#[derive(Debug, Clone)]
struct Namespace {
    files: BTreeMap<String, Vec<u8>>,
    certs: InputCerts,
    runtime: BTreeMap<String, Vec<u8>>,
    platform: Result<Platform, skupperd::problem::Problem>,
    seed: u64,
    router: RouterState,
}

/// Text a router (or whatever answers on its port) may send back, which
/// ends up in status files: its words, with whatever they hold.
fn router_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Address already in use - listen on 0.0.0.0:8080",
            "400 Bad Request: \"port\" is invalid",
            "",
            "\u{1b}[2J\0\r\nforged: line",
            "\u{202e}dnekcab",
            "a'b\"c: {d} [e] #f &g *h !i |j >k %l @m `n",
        ])
        .prop_map(str::to_string),
        "\\PC{0,60}",
        any::<String>(),
    ]
}

/// What the router side reports: nothing (not reachable), or a view of
/// the entities skupperd rendered and some it did not.
fn router() -> impl Strategy<Value = RouterState> {
    let entity = prop::sample::select(vec![
        "listener/backend",
        "listener/web",
        "listener/a",
        "connector/db@127.0.0.1",
        "connector/db@db.example.com",
        "skupper-local-normal",
        "web",
        "nonsense",
    ])
    .prop_map(str::to_string);
    let key = prop::sample::select(vec!["backend", "db", "web", "a", "x"]).prop_map(str::to_string);
    let view = (
        prop::collection::btree_set(entity.clone(), 0..6),
        prop::collection::btree_map(entity.clone(), router_text(), 0..3),
        prop::collection::btree_map(
            entity,
            (any::<bool>(), prop::option::of(router_text())),
            0..4,
        ),
        prop::collection::btree_map(key.clone(), 0u64..3, 0..4),
        prop::option::of(prop::collection::btree_set(key, 0..3)),
        prop::option::of(0u64..5),
        prop::option::of(router_text()),
        prop::collection::vec(router_text(), 0..3),
    )
        .prop_map(
            |(
                confirmed,
                refused,
                listeners,
                consumers,
                network_listeners,
                sites,
                version,
                changes,
            )| {
                plan::RouterView {
                    confirmed,
                    refused,
                    listeners,
                    links: BTreeMap::new(),
                    consumers,
                    network_listeners,
                    sites_in_network: sites,
                    version,
                    capabilities: vec!["connectionMsg".to_string()],
                    last_sync: Some("2026-11-26T10:00:00Z".to_string()),
                    last_changes: changes,
                }
            },
        );
    prop_oneof![
        2 => Just(RouterState::default()),
        1 => (view, router_text(), prop::option::of(router_text()), 0u32..7).prop_map(
            |(view, message, failure, restarts)| RouterState {
                runner: "process".to_string(),
                state: "Running".to_string(),
                message,
                failure,
                restarts,
                view: Some(view),
                ..RouterState::default()
            }
        ),
    ]
}

fn namespace() -> impl Strategy<Value = Namespace> {
    let path = prop::sample::select(vec![
        "input/resources/a.yaml",
        "input/resources/b.yml",
        "input/resources/c.json",
        "input/resources/sub/d.yaml",
        "input/resources/Site-west.yaml",
    ])
    .prop_map(str::to_string);
    (
        prop::collection::btree_map(path, file_bytes(), 0..5),
        prop::bool::weighted(0.8),
        certs(),
        runtime(),
        prop_oneof![
            4 => Just(Ok(Platform::Podman)),
            2 => Just(Ok(Platform::Linux)),
            1 => Just(Ok(Platform::Docker)),
            1 => Just(Err({
                let mut p = skupperd::problem::Problem::error("internal/platform.yaml: platform \"x\" is not one of linux, podman, docker");
                p.file = Some("internal/platform.yaml".to_string());
                p.line = Some(1);
                p.column = Some(11);
                p
            })),
        ],
        0u64..4,
        router(),
    )
        .prop_map(|(mut files, with_site, certs, runtime, platform, seed, router)| {
            if with_site {
                files
                    .entry("input/resources/site.yaml".to_string())
                    .or_insert_with(|| {
                        b"apiVersion: skupper.io/v2alpha1\nkind: Site\nmetadata:\n  name: west\n".to_vec()
                    });
            }
            Namespace { files, certs, runtime, platform, seed, router }
        })
}

// === the properties ===

/// One pass over `runtime`: the outcome, and `runtime` as the shell
/// leaves it.
fn pass(
    ns: &Namespace,
    decoded: &BTreeMap<String, skupperd::resources::DecodedFile>,
    runtime: &BTreeMap<String, Vec<u8>>,
) -> (
    plan::Outcome,
    Vec<skupperd::problem::Problem>,
    BTreeMap<String, Vec<u8>>,
) {
    let prior = plan::read_prior(runtime);
    let inputs = Inputs {
        namespace: "west",
        namespace_path: "/var/lib/skupper/namespaces/west",
        platform: ns.platform.clone(),
        hostname: "host1",
        addresses: &[],
        version: "0.1.0",
        now: now(),
        files: decoded,
        certs: &ns.certs,
        issuers: &InputCerts::default(),
        renew_before: skupperd::certs::DEFAULT_RENEW_BEFORE,
        runtime,
        prior: &prior,
        router: ns.router.clone(),
        trigger: "input",
        notices: &[],
    };
    let checked = plan::check(&inputs);
    let outcome = plan::reconcile(
        &inputs,
        &mut MemoMint::new(ns.seed),
        &mut FixedPorts(BTreeSet::new()),
    );
    let mut after = runtime.clone();
    for path in &outcome.deletes {
        after.remove(path);
    }
    for (path, file) in &outcome.writes {
        after.insert(path.clone(), file.content().into_owned());
    }
    (outcome, checked, after)
}

/// Every file a pass wrote reads back: JSON as JSON, YAML with
/// skupperd's own parser, without a problem.
fn outputs_read_back(outcome: &plan::Outcome) -> Result<(), TestCaseError> {
    for (path, file) in &outcome.writes {
        let bytes = file.content();
        if path.ends_with(".json") {
            prop_assert!(
                serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
                "{path} is not JSON:\n{}",
                String::from_utf8_lossy(&bytes)
            );
        } else if path.ends_with(".yaml") {
            let parsed = skupperd::input::parse_file(path, &bytes);
            prop_assert!(
                parsed.problems.is_empty() && !parsed.documents.is_empty(),
                "{path} does not read back: {:?}\n{}",
                parsed.problems,
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    Ok(())
}

/// Runs `property` over `strategy` for the configured number of cases,
/// then prints how many inputs ran (shrinking included), for how long,
/// and the worst time and memory one took.
fn fuzz<S: Strategy>(
    what: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let worst = std::sync::Mutex::new(Worst::default());
    let started = Instant::now();
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let result = runner.run(&strategy, |input| {
        let (result, took, peak) = measured(|| property(input));
        note(&worst, took, peak)?;
        result
    });
    report(what, &worst, started);
    if let Err(e) = result {
        panic!("{what}: {e}");
    }
}

/// The loader over any bytes at all.
#[test]
fn fuzz_loader_over_arbitrary_bytes() {
    let yaml_alphabet = prop::sample::select(
        b" \t\n\r:-[]{},#&*!|>'\"%@`?~.0189aeklnprsty\\\x00\x1b\x7f\xc3\xa9\xe2\x80\xae".to_vec(),
    );
    fuzz(
        "loader, arbitrary bytes",
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..4096),
            prop::collection::vec(yaml_alphabet, 0..4096),
            any::<String>().prop_map(String::into_bytes),
        ],
        |bytes| {
            let decoded = skupperd::resources::load_file("input/resources/f.yaml", &bytes);
            prop_assert!(decoded.resources.is_empty() || std::str::from_utf8(&bytes).is_ok());
            Ok(())
        },
    );
}

/// The loader over documents made of the resources' own fields, edited.
#[test]
fn fuzz_loader_over_yaml_like_files() {
    fuzz("loader, YAML-like files", file_bytes(), |bytes| {
        let decoded = skupperd::resources::load_file("input/resources/f.yaml", &bytes);
        // Every problem names its file and holds no raw control character.
        for p in &decoded.problems {
            prop_assert_eq!(p.file.as_deref(), Some("input/resources/f.yaml"));
            prop_assert!(!p.message.chars().any(char::is_control), "{}", p.message);
        }
        Ok(())
    });
}

/// A whole namespace through check, validation and rendering, twice.
#[test]
fn fuzz_check_and_render_of_namespaces() {
    fuzz("check and render, namespaces", namespace(), |ns| {
        let decoded: BTreeMap<String, skupperd::resources::DecodedFile> = ns
            .files
            .iter()
            .map(|(p, b)| (p.clone(), skupperd::resources::load_file(p, b)))
            .collect();
        let (first, checked, runtime) = pass(&ns, &decoded, &ns.runtime);
        outputs_read_back(&first)?;
        // check reports no error that render does not (render may add
        // what only writing finds, such as unusable credentials).
        let errors = |ps: &[skupperd::problem::Problem]| {
            ps.iter()
                .filter(|p| p.is_error())
                .map(|p| p.message.clone())
                .collect::<BTreeSet<_>>()
        };
        let (c, r) = (errors(&checked), errors(&first.problems));
        prop_assert!(
            c.is_subset(&r),
            "check only: {:?}",
            c.difference(&r).collect::<Vec<_>>()
        );
        // A second pass over the first one's output writes nothing.
        let (second, _, _) = pass(&ns, &decoded, &runtime);
        prop_assert!(
            second.writes.is_empty() && second.deletes.is_empty(),
            "second pass writes {:?} deletes {:?}",
            second.writes.keys().collect::<Vec<_>>(),
            second.deletes
        );
        Ok(())
    });
}
