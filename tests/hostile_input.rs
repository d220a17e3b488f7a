//! Input that cannot be read, is not a regular file, or holds control
//! characters: `check` and `render` finish promptly, report it where it
//! matters, and never print a raw control character.

use crate::support::*;
use std::path::Path;

/// `skupperd <command> <ns>`, failing the test when it does not finish
/// within [`COMMAND_TIMEOUT`].
fn run(command: &str, ns: &Path) -> assert_cmd::assert::Assert {
    skupperd()
        .arg(command)
        .arg(ns)
        .timeout(COMMAND_TIMEOUT)
        .assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.get_output().stdout.clone()).unwrap()
}

fn tls_listener(name: &str, port: &str, cred: &str) -> String {
    format!(
        "{}  tlsCredentials: {cred}\n",
        listener(name, "127.0.0.1", port)
    )
}

const LOOP: &str = "Too many levels of symbolic links (os error 40)";

#[test]
fn a_symlink_loop_in_input_certs_that_nothing_uses_is_a_warning() {
    let home = DataHome::new();
    let ns = home.sample("west");
    std::fs::create_dir_all(ns.join("input/certs")).unwrap();
    std::os::unix::fs::symlink("loop", ns.join("input/certs/loop")).unwrap();
    for command in ["check", "render"] {
        let out = run(command, &ns).code(0);
        let text = stdout(&out);
        assert!(
            text.contains(&format!(
                "input/certs/loop: warning: input/certs/loop cannot be read, ignored: {LOOP}"
            )),
            "{command}: {text}"
        );
        assert!(
            text.contains("0 error(s), 1 warning(s)"),
            "{command}: {text}"
        );
    }
    // The pass ran: the listener is configured, and the status says what
    // could not be read.
    assert!(home
        .read("west", "runtime/router/skrouterd.json")
        .contains("listener/backend"));
    let status = home.read("west", "runtime/status.yaml");
    assert!(status.contains("result: Degraded"), "{status}");
    assert!(
        status.contains("input/certs/loop cannot be read"),
        "{status}"
    );
}

#[test]
fn a_listener_naming_an_unreadable_bundle_is_the_only_error() {
    let home = DataHome::new();
    let ns = home.sample("west");
    std::fs::create_dir_all(ns.join("input/certs")).unwrap();
    std::os::unix::fs::symlink("loop", ns.join("input/certs/loop")).unwrap();
    home.write(
        "west",
        "input/resources/web.yaml",
        &tls_listener("web", "8443", "loop"),
    );
    let out = run("check", &ns).code(1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "input/resources/web.yaml:8:19: error: listener \"web\": input/certs/loop cannot be read: {LOOP}"
        )),
        "{text}"
    );
    assert!(text.contains("1 error(s), 0 warning(s)"), "{text}");

    run("render", &ns).code(1);
    let status = home.read("west", "runtime/status.yaml");
    let web = status
        .split("- kind: ")
        .find(|r| r.starts_with("Listener\n  name: web\n"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(web.contains("status: Error"), "{status}");
    assert!(web.contains("input/certs/loop cannot be read"), "{status}");
    assert!(
        status.contains("name: backend\n  status: Pending"),
        "{status}"
    );
    let config = home.read("west", "runtime/router/skrouterd.json");
    assert!(config.contains("listener/backend"), "{config}");
    assert!(!config.contains("listener/web"), "{config}");
    // No certificate was generated in place of the one it names.
    assert!(!ns.join("runtime/certs/loop").exists());
}

#[test]
fn check_and_render_refuse_fifos_without_blocking() {
    let home = DataHome::new();
    let ns = home.sample("west");
    mkfifo(&ns.join("input/certs/web/tls.crt"));
    home.write(
        "west",
        "input/certs/web/tls.key",
        "not read: the bundle fails",
    );
    home.write(
        "west",
        "input/resources/web.yaml",
        &tls_listener("web", "8443", "web"),
    );
    mkfifo(&ns.join("input/resources/pipe.yaml"));
    mkfifo(&ns.join("input/certs/spare/ca.crt"));
    for command in ["check", "render"] {
        let out = run(command, &ns).code(1);
        let text = stdout(&out);
        for line in [
            "input/resources/web.yaml:8:19: error: listener \"web\": input/certs/web/tls.crt is a FIFO: not a regular file, refused",
            "input/resources/pipe.yaml: warning: input/resources/pipe.yaml is a FIFO: not a regular file, ignored",
            "input/certs/spare/ca.crt: warning: input/certs/spare/ca.crt is a FIFO: not a regular file, ignored",
        ] {
            assert!(text.contains(line), "{command}: {line}\nin\n{text}");
        }
    }
    let status = home.read("west", "runtime/status.yaml");
    assert!(
        status.contains("input/resources/pipe.yaml is a FIFO: not a regular file, ignored"),
        "{status}"
    );
    assert!(home
        .read("west", "runtime/router/skrouterd.json")
        .contains("listener/backend"));
}

/// Every byte of `bytes` that is a control character other than a line
/// end, with its offset.
fn raw_controls(bytes: &[u8]) -> Vec<(usize, u8)> {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| b.is_ascii_control() && **b != b'\n')
        .map(|(i, b)| (i, *b))
        .collect()
}

#[test]
fn control_characters_of_a_host_are_shown_escaped_everywhere() {
    let home = DataHome::new();
    let ns = home.sample("west");
    // YAML's escapes put a NUL and an ESC (a terminal's clear-screen
    // sequence) into the host.
    home.write(
        "west",
        "input/resources/evil.yaml",
        &listener("evil", "\"a\\0b\\e[2Jc\"", "9090"),
    );
    let expected = "listener \"evil\": spec.host \"a\\0b\\u{1b}[2Jc\" is not an IP address";

    let out = run("check", &ns).code(1);
    let text = out.get_output().stdout.clone();
    assert_eq!(
        raw_controls(&text),
        vec![],
        "{}",
        String::from_utf8_lossy(&text)
    );
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains(&format!("input/resources/evil.yaml:6:9: error: {expected}")),
        "{text}"
    );

    let out = skupperd()
        .args(["check", "--output", "json"])
        .arg(&ns)
        .timeout(COMMAND_TIMEOUT)
        .assert()
        .code(1);
    let json = out.get_output().stdout.clone();
    assert_eq!(raw_controls(&json), vec![]);
    let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(doc["problems"][0]["field"], "spec.host");
    assert!(doc["problems"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with(expected));

    run("render", &ns).code(1);
    for rel in [
        "runtime/status.yaml",
        "runtime/resources/Listener-evil.yaml",
    ] {
        let bytes = std::fs::read(ns.join(rel)).unwrap();
        assert_eq!(raw_controls(&bytes), vec![], "{rel}");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("spec.host"), "{rel}: {text}");
    }
    let status = home.read("west", "runtime/status.yaml");
    assert!(status.contains("field: spec.host"), "{status}");

    // `status` shows the rejected host from the record, escaped.
    let out = skupperd()
        .args(["status", "--data-home"])
        .arg(home.path())
        .timeout(COMMAND_TIMEOUT)
        .assert()
        .code(0);
    let table = out.get_output().stdout.clone();
    assert_eq!(
        raw_controls(&table),
        vec![],
        "{}",
        String::from_utf8_lossy(&table)
    );
}
