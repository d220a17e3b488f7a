//! `skupperd check`: every problem with file:line:column, exit 0/1/2.

use crate::support::*;

#[test]
fn check_of_a_valid_namespace_exits_0() {
    let home = DataHome::new();
    let ns = home.sample("west");
    skupperd().arg("check").arg(&ns).assert().code(0);
}

#[test]
fn check_reports_errors_with_place_and_exits_1() {
    let home = DataHome::new();
    home.write("west", "input/resources/Site.yaml", SITE);
    home.write(
        "west",
        "input/resources/l.yaml",
        &listener("backend", "0.0.0.0", "70000"),
    );
    home.write("west", "input/resources/bad.yaml", "apiVersion: skupper.io/v2alpha1\nkind: Listener\nmetadata:\n  name: web\nspec:\n  host: a\n  port: eighty\n");
    let out = skupperd()
        .arg("check")
        .arg(home.ns("west"))
        .assert()
        .code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("input/resources/l.yaml:7:9: error: listener \"backend\": spec.port 70000 is out of range 1-65535"), "{text}");
    assert!(text.contains("input/resources/bad.yaml:7:9: error: spec.port: invalid type: string \"eighty\", expected an integer at line 7 column 9"), "{text}");
    assert!(text.contains("2 error(s), 0 warning(s)"), "{text}");
}

#[test]
fn warnings_alone_exit_0() {
    let home = DataHome::new();
    home.write("west", "input/resources/Site.yaml", SITE);
    home.write(
        "west",
        "input/resources/d.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n",
    );
    let out = skupperd()
        .arg("check")
        .arg(home.ns("west"))
        .assert()
        .code(0);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains("warning: unknown kind \"Deployment\" (apps/v1), ignored"),
        "{text}"
    );
}

#[test]
fn check_speaks_json() {
    let home = DataHome::new();
    home.write("west", "input/resources/Site.yaml", SITE);
    home.write(
        "west",
        "input/resources/l.yaml",
        &listener("backend", "0.0.0.0", "0"),
    );
    let out = skupperd()
        .args(["check", "--output", "json"])
        .arg(home.ns("west"))
        .assert()
        .code(1);
    let doc: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(doc["errors"], 1);
    let p = &doc["problems"][0];
    assert_eq!(p["file"], "input/resources/l.yaml");
    assert_eq!(
        (p["line"].as_u64(), p["column"].as_u64()),
        (Some(7), Some(9))
    );
    assert_eq!(p["field"], "spec.port");
    assert_eq!(p["kind"], "Listener");
}

#[test]
fn usage_errors_exit_2() {
    skupperd().args(["check"]).assert().code(2);
    skupperd()
        .args(["check", "/nonexistent/ns"])
        .assert()
        .code(2);
    skupperd().args(["frobnicate"]).assert().code(2);
}

#[test]
fn check_writes_nothing() {
    let home = DataHome::new();
    let ns = home.sample("west");
    let before = snapshot(home.path());
    skupperd().arg("check").arg(&ns).assert().code(0);
    assert_eq!(before, snapshot(home.path()));
}

#[test]
fn check_with_its_output_closed_early_exits_with_its_code_and_no_panic() {
    let home = DataHome::new();
    home.write("west", "input/resources/Site.yaml", SITE);
    // Enough problems to fill any pipe buffer.
    let mut many = String::new();
    for i in 0..3_000 {
        many.push_str(&format!("---\nkind: [broken{i}\n"));
    }
    home.write("west", "input/resources/many.yaml", &many);
    for output in ["text", "json"] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("skupperd"))
            .args(["check", "--output", output])
            .arg(home.ns("west"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `skupperd check | head -0`: the reader is gone before a byte is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{output}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{output}");
    }
}
