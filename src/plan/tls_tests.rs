//! TLS in a pass, as a user sees it in the runtime files: the certificate
//! each resource and sslProfile serves, renewal of what skupperd issued,
//! user bundles close to their end, and user issuers. Certificates come
//! from `certs::tests::fixtures` (made by the test) or `MemoMint`, with a
//! fixed `now`.

use super::tests::{listener, Scenario, NOW};
use super::*;
use crate::certs::tests::fixtures::{self, ca_files, chained_leaf, leaf, KeyKind};
use crate::certs::{leaf_info, Credential, FileBytes, DEFAULT_RENEW_BEFORE};
use crate::validate::InputBundle;
use serde_json::Value;
use time::Duration;

/// A bundle directory (`input/certs/<x>/` or `input/issuers/<x>/`).
fn dir(files: &[(&str, &str)]) -> InputBundle {
    InputBundle {
        refused: None,
        files: files
            .iter()
            .map(|(name, text)| {
                let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
                let bytes = text.as_bytes().to_vec();
                (name.to_string(), Ok(FileBytes { bytes, mode }))
            })
            .collect(),
    }
}

fn served(b: &fixtures::Bundle) -> InputBundle {
    dir(&[("tls.crt", &b.tls_crt), ("tls.key", &b.tls_key)])
}

fn tls_listener(name: &str, host: &str, port: &str, cred: &str) -> String {
    listener(name, host, port) + &format!("  tlsCredentials: {cred}\n")
}

fn yaml(s: &Scenario, path: &str) -> Value {
    yaml_serde::from_str(&s.text(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `skupperd.io/certificate` annotation of a record, as JSON.
fn annotation(s: &Scenario, record: &str) -> Option<Value> {
    let doc = yaml(s, &format!("runtime/resources/{record}.yaml"));
    let text = doc["metadata"]["annotations"]["skupperd.io/certificate"].as_str()?;
    Some(serde_json::from_str(text).unwrap())
}

/// The `certificates` section of `runtime/status.yaml`, by profile.
fn status_certs(s: &Scenario) -> BTreeMap<String, Value> {
    let doc = yaml(s, "runtime/status.yaml");
    doc["certificates"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| (c["profile"].as_str().unwrap().to_string(), c.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn ordinal(s: &Scenario, profile: &str) -> u64 {
    s.entity("sslProfile", profile)
        .and_then(|p| p.get("ordinal").and_then(Value::as_u64))
        .unwrap_or(0)
}

fn serial_of(pem: &str) -> String {
    leaf_info(pem.as_bytes()).unwrap().serial
}

fn not_after_of(pem: &str) -> time::OffsetDateTime {
    leaf_info(pem.as_bytes()).unwrap().not_after
}

fn messages(out: &Outcome) -> Vec<String> {
    out.problems.iter().map(|p| p.message.clone()).collect()
}

fn status(out: &Outcome, name: &str) -> (crate::status::Phase, String) {
    let r = out.resources.iter().find(|r| r.name == name).unwrap();
    (r.status, r.message.clone())
}

mod certificate_in_use {
    use super::*;

    #[test]
    fn records_and_status_yaml_name_each_certificate_and_show_a_rotation() {
        let (from, to) = fixtures::around(NOW, 400);
        let first = leaf(KeyKind::RsaPkcs1, &["127.0.0.1"], from, to);
        let db = leaf(KeyKind::EcP384Pkcs8, &["db.example.com"], from, to);
        let mut s = Scenario::new();
        s.put("web.yaml", &tls_listener("web", "127.0.0.1", "8443", "web"));
        s.put(
            "gen.yaml",
            &tls_listener("gen", "0.0.0.0", "9443", "gen-tls"),
        );
        s.put("plain.yaml", &listener("plain", "127.0.0.1", "8080"));
        s.put(
            "db.yaml",
            "apiVersion: skupper.io/v2alpha1\nkind: Connector\nmetadata:\n  name: db\nspec:\n  host: db.example.com\n  port: 5432\n  tlsCredentials: db-ca\n",
        );
        s.certs.bundles.insert("web".into(), served(&first));
        s.certs
            .bundles
            .insert("db-ca".into(), dir(&[("ca.crt", &db.ca_crt)]));
        let out = s.pass();
        assert!(out.problems.is_empty(), "{:?}", out.problems);

        let web = annotation(&s, "Listener-web").expect("web uses TLS");
        assert_eq!(
            web,
            serde_json::json!({
                "profile": "web",
                "file": "runtime/certs/web/tls.crt",
                "subject": "CN=fixture-leaf",
                "serial": serial_of(&first.tls_crt),
                "notAfter": crate::render::timestamp(to),
            })
        );
        let gen = annotation(&s, "Listener-gen").expect("a generated certificate");
        assert_eq!(gen["subject"], "CN=gen-tls");
        assert_eq!(
            gen["serial"].as_str(),
            Some(serial_of(&s.text("runtime/certs/gen-tls/tls.crt")).as_str())
        );
        // A connector that only verifies its server names the CA it trusts.
        let db_cert = annotation(&s, "Connector-db").expect("db uses TLS");
        assert_eq!(db_cert["profile"], "db-ca-profile");
        assert_eq!(db_cert["file"], "runtime/certs/db-ca-profile/ca.crt");
        assert_eq!(db_cert["subject"], "CN=fixture-root");
        assert_eq!(
            annotation(&s, "Listener-plain"),
            None,
            "no TLS, no certificate"
        );

        let listed = status_certs(&s);
        assert_eq!(
            listed.keys().collect::<Vec<_>>(),
            ["db-ca-profile", "gen-tls", "skupper-local-server", "web"],
            "every sslProfile"
        );
        assert_eq!(listed["web"]["serial"], web["serial"]);
        assert_eq!(listed["web"]["notAfter"], web["notAfter"]);
        assert_eq!(listed["web"]["subject"], "CN=fixture-leaf");
        assert_eq!(listed["web"]["ordinal"], 0);
        assert_eq!(
            listed["skupper-local-server"]["subject"],
            "CN=skupper-local-server"
        );

        // The user rotates the bundle: the record and status.yaml show the
        // new certificate, status.yaml the raised ordinal.
        let second = leaf(KeyKind::EcP256Sec1, &["127.0.0.1"], from, to);
        s.certs.bundles.insert("web".into(), served(&second));
        let out = s.pass();
        assert!(out
            .writes
            .contains_key("runtime/resources/Listener-web.yaml"));
        assert!(!out
            .writes
            .contains_key("runtime/resources/Listener-gen.yaml"));
        assert_eq!(
            annotation(&s, "Listener-web").unwrap()["serial"].as_str(),
            Some(serial_of(&second.tls_crt).as_str())
        );
        let listed = status_certs(&s);
        assert_eq!(
            listed["web"]["serial"].as_str(),
            Some(serial_of(&second.tls_crt).as_str())
        );
        assert_eq!(listed["web"]["ordinal"], 1);
        assert_eq!(ordinal(&s, "web"), 1);
        assert!(
            s.pass().writes.is_empty(),
            "shown once, then nothing changes"
        );
        // Read back after a restart, the records hold the same annotation.
        let prior = read_prior(&s.runtime);
        assert_eq!(
            prior.records[&(crate::resources::Kind::Listener, "web".to_string())]
                .certificate
                .as_deref()
                .map(|c| serde_json::from_str::<Value>(c).unwrap()),
            annotation(&s, "Listener-web")
        );
    }

    #[test]
    fn a_user_annotation_of_that_name_is_not_taken_from_the_input() {
        let mut s = Scenario::new();
        s.put(
            "gen.yaml",
            &tls_listener("gen", "127.0.0.1", "9443", "gen-tls").replace(
                "  name: gen\n",
                "  name: gen\n  annotations:\n    skupperd.io/certificate: forged\n",
            ),
        );
        s.pass();
        assert_eq!(
            annotation(&s, "Listener-gen").unwrap()["subject"],
            "CN=gen-tls"
        );
        assert!(s.pass().writes.is_empty());
    }
}

mod rotation_between_kinds {
    use super::*;

    #[test]
    fn rotating_through_rsa_ecdsa_key_encodings_and_a_chain_raises_the_ordinal_once_each() {
        let (from, to) = fixtures::around(NOW, 400);
        let sans = ["127.0.0.1"];
        let bundles = [
            leaf(KeyKind::RsaPkcs1, &sans, from, to),
            leaf(KeyKind::RsaPkcs8, &sans, from, to),
            leaf(KeyKind::EcP384Pkcs8, &sans, from, to),
            leaf(KeyKind::EcP256Sec1, &sans, from, to),
            chained_leaf(&sans, from, to),
        ];
        let mut s = Scenario::new();
        s.put("web.yaml", &tls_listener("web", "127.0.0.1", "8443", "web"));
        for (i, b) in bundles.iter().enumerate() {
            s.certs.bundles.insert("web".into(), served(b));
            let out = s.pass();
            assert!(out.problems.is_empty(), "bundle {i}: {:?}", out.problems);
            assert_eq!(s.text("runtime/certs/web/tls.crt"), b.tls_crt, "bundle {i}");
            assert_eq!(ordinal(&s, "web"), i as u64, "bundle {i}");
            assert!(s.pass().writes.is_empty(), "bundle {i}: raised once");
        }
    }
}

mod renewal {
    use super::*;

    /// A site with one listener whose certificate skupperd generates.
    fn generated() -> Scenario {
        let mut s = Scenario::new();
        s.put(
            "gen.yaml",
            &tls_listener("gen", "127.0.0.1", "9443", "gen-tls"),
        );
        s
    }

    #[test]
    fn a_generated_leaf_entering_the_window_is_reissued_once() {
        let mut s = generated();
        s.pass();
        let leaf_before = s.text("runtime/certs/gen-tls/tls.crt");
        let ca_before = s.text("runtime/issuers/skupper-service-ca/tls.crt");
        let end = not_after_of(&leaf_before);

        s.now = end - Duration::days(31);
        assert!(
            s.pass().writes.is_empty(),
            "31 days left: nothing is issued"
        );
        s.now = end - Duration::days(29);
        let out = s.pass();
        assert!(out.writes.contains_key("runtime/certs/gen-tls/tls.crt"));
        assert!(out.writes.contains_key("runtime/certs/gen-tls/tls.key"));
        let renewed = s.text("runtime/certs/gen-tls/tls.crt");
        assert!(not_after_of(&renewed) > end + Duration::days(365));
        assert_eq!(ordinal(&s, "gen-tls"), 1, "pushed to the router live");
        assert_eq!(
            s.text("runtime/issuers/skupper-service-ca/tls.crt"),
            ca_before
        );
        assert_eq!(
            status_certs(&s)["gen-tls"]["serial"].as_str(),
            Some(serial_of(&renewed).as_str())
        );
        assert!(s.pass().writes.is_empty(), "re-issued once");
        s.now += Duration::days(20);
        assert!(s.pass().writes.is_empty(), "and not again");
        assert_eq!(ordinal(&s, "gen-tls"), 1);
    }

    #[test]
    fn the_window_is_the_configured_one() {
        let mut s = generated();
        s.renew_before = Duration::days(60);
        s.pass();
        let end = not_after_of(&s.text("runtime/certs/gen-tls/tls.crt"));
        s.now = end - Duration::days(61);
        assert!(s.pass().writes.is_empty());
        s.now = end - Duration::days(45);
        assert!(s
            .pass()
            .writes
            .contains_key("runtime/certs/gen-tls/tls.crt"));
        assert_eq!(ordinal(&s, "gen-tls"), 1);
        assert!(s.pass().writes.is_empty());
    }

    #[test]
    fn a_ca_entering_the_window_is_reissued_and_its_leaves_with_it() {
        let mut s = generated();
        // The service CA was made almost ten years ago: it ends in 40 days.
        s.now = NOW - Duration::days(3652) + Duration::days(40);
        s.pass();
        let ca_end = not_after_of(&s.text("runtime/issuers/skupper-service-ca/tls.crt"));
        // Long after, the leaf is issued again, cut to its CA's end.
        s.now = NOW - Duration::days(60);
        s.pass();
        assert_eq!(ordinal(&s, "gen-tls"), 1);
        assert_eq!(
            not_after_of(&s.text("runtime/certs/gen-tls/tls.crt")),
            ca_end
        );
        let leaf_before = s.text("runtime/certs/gen-tls/tls.crt");

        s.now = ca_end - Duration::days(31);
        assert!(
            s.pass().writes.is_empty(),
            "31 days left: nothing is issued"
        );
        s.now = ca_end - Duration::days(29);
        let out = s.pass();
        assert!(out
            .writes
            .contains_key("runtime/issuers/skupper-service-ca/tls.crt"));
        let ca = s.text("runtime/issuers/skupper-service-ca/tls.crt");
        assert!(not_after_of(&ca) > ca_end + Duration::days(9 * 365));
        let leaf_after = s.text("runtime/certs/gen-tls/tls.crt");
        assert_ne!(leaf_after, leaf_before, "the leaf follows its CA");
        assert_eq!(s.text("runtime/certs/gen-tls/ca.crt"), ca);
        let issuer = Credential {
            cert_pem: ca,
            key_pem: s.text("runtime/issuers/skupper-service-ca/tls.key"),
        };
        let found = Credential {
            cert_pem: leaf_after,
            key_pem: s.text("runtime/certs/gen-tls/tls.key"),
        };
        assert!(
            !crate::certs::needs_reissue(&found, Some(&issuer), None, s.now, DEFAULT_RENEW_BEFORE),
            "signed by the new CA"
        );
        assert_eq!(ordinal(&s, "gen-tls"), 2);
        assert!(s.pass().writes.is_empty(), "re-issued once");
    }
}

mod expiring_bundles {
    use super::*;

    #[test]
    fn a_bundle_close_to_its_end_is_warned_about_within_the_configured_window() {
        let end = NOW + Duration::days(45);
        let b = leaf(
            KeyKind::EcP256Sec1,
            &["127.0.0.1"],
            NOW - Duration::days(300),
            end,
        );
        let mut s = Scenario::new();
        s.put("web.yaml", &tls_listener("web", "127.0.0.1", "8443", "web"));
        s.put(
            "web2.yaml",
            &tls_listener("web2", "127.0.0.1", "8444", "web"),
        );
        s.certs.bundles.insert("web".into(), served(&b));
        let out = s.pass();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert!(out.expiring.is_empty());

        s.renew_before = Duration::days(60);
        let out = s.pass();
        let warning = format!(
            "input/certs/web/tls.crt expires on {} (in 45 days)",
            crate::render::timestamp(end).get(..10).unwrap()
        );
        assert_eq!(
            messages(&out),
            [
                format!("listener \"web\": {warning}"),
                format!("listener \"web2\": {warning}"),
            ]
        );
        assert!(out.problems.iter().all(|p| !p.is_error()));
        assert_eq!(
            status(&out, "web").0,
            crate::status::Phase::Pending,
            "still served"
        );
        assert_eq!(
            out.expiring,
            [Expiring {
                file: "input/certs/web/tls.crt".into(),
                not_after: end,
                message: warning.clone(),
            }],
            "one per certificate, however many resources use it"
        );
        assert!(s.text("runtime/status.yaml").contains(&warning));
    }
}

mod user_issuers {
    use super::*;

    const SERVICE_CA: &str = "runtime/issuers/skupper-service-ca/tls.crt";

    fn user_ca(name: &str) -> (String, String) {
        let (_, crt, key) = ca_files(
            name,
            None,
            NOW - Duration::days(30),
            NOW + Duration::days(3650),
        );
        (crt, key)
    }

    fn signed_by(s: &Scenario, leaf_dir: &str, ca_crt: &str, ca_key: &str) -> bool {
        let found = Credential {
            cert_pem: s.text(&format!("{leaf_dir}/tls.crt")),
            key_pem: s.text(&format!("{leaf_dir}/tls.key")),
        };
        let issuer = Credential {
            cert_pem: ca_crt.to_string(),
            key_pem: ca_key.to_string(),
        };
        !crate::certs::needs_reissue(&found, Some(&issuer), None, s.now, DEFAULT_RENEW_BEFORE)
    }

    fn scenario() -> Scenario {
        let mut s = Scenario::new();
        s.put(
            "gen.yaml",
            &tls_listener("gen", "127.0.0.1", "9443", "gen-tls"),
        );
        s
    }

    #[test]
    fn a_user_issuer_signs_generated_listener_certificates_in_place_of_the_service_ca() {
        let mut s = scenario();
        s.pass();
        let generated = s.text(SERVICE_CA);

        let (crt, key) = user_ca("Example Services CA");
        s.issuers.bundles.insert(
            "skupper-service-ca".into(),
            dir(&[("tls.crt", &crt), ("tls.key", &key)]),
        );
        let out = s.pass();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert!(signed_by(&s, "runtime/certs/gen-tls", &crt, &key));
        assert_eq!(
            s.text("runtime/certs/gen-tls/ca.crt"),
            crt,
            "clients trust the user's CA"
        );
        assert_eq!(
            s.text("runtime/certs/gen-tls/tls.crt")
                .matches("BEGIN CERTIFICATE")
                .count(),
            1,
            "a root needs no chain"
        );
        assert_eq!(ordinal(&s, "gen-tls"), 1, "pushed live");
        assert_eq!(
            s.text(SERVICE_CA),
            generated,
            "the generated CA is kept, not overwritten"
        );
        assert!(
            !s.runtime.keys().any(|p| p.contains(&key)),
            "the user's key is not copied"
        );
        assert!(s.pass().writes.is_empty());

        // Without it, the generated CA signs again.
        s.issuers.bundles.clear();
        s.pass();
        assert!(signed_by(
            &s,
            "runtime/certs/gen-tls",
            &generated,
            &s.text("runtime/issuers/skupper-service-ca/tls.key")
        ));
        assert_eq!(ordinal(&s, "gen-tls"), 2);
        assert!(s.pass().writes.is_empty());
    }

    #[test]
    fn an_intermediate_issuer_sends_its_certificate_with_each_leaf() {
        let (from, to) = (NOW - Duration::days(30), NOW + Duration::days(3650));
        let (root, root_crt, _) = ca_files("Example Root", None, from, to);
        let (_, mid_crt, mid_key) = ca_files("Example Issuing CA", Some(&root), from, to);
        let mut s = scenario();
        s.issuers.bundles.insert(
            "skupper-service-ca".into(),
            dir(&[
                ("tls.crt", &mid_crt),
                ("tls.key", &mid_key),
                ("ca.crt", &root_crt),
            ]),
        );
        let out = s.pass();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let served = s.text("runtime/certs/gen-tls/tls.crt");
        assert!(served.ends_with(&mid_crt), "leaf, then the intermediate");
        assert_eq!(served.matches("BEGIN CERTIFICATE").count(), 2);
        assert_eq!(s.text("runtime/certs/gen-tls/ca.crt"), root_crt);
        assert!(signed_by(&s, "runtime/certs/gen-tls", &mid_crt, &mid_key));
        assert!(
            s.pass().writes.is_empty(),
            "the chain does not make it look changed"
        );
    }

    #[test]
    fn a_broken_user_issuer_is_an_error_and_served_certificates_stay() {
        let mut s = scenario();
        let (crt, key) = user_ca("Example Services CA");
        s.issuers.bundles.insert(
            "skupper-service-ca".into(),
            dir(&[("tls.crt", &crt), ("tls.key", &key)]),
        );
        s.pass();
        let served = s.text("runtime/certs/gen-tls/tls.crt");

        // Half replaced: a new key next to the old certificate.
        let (_, other_key) = user_ca("Another CA");
        s.issuers.bundles.insert(
            "skupper-service-ca".into(),
            dir(&[("tls.crt", &crt), ("tls.key", &other_key)]),
        );
        s.put(
            "gen2.yaml",
            &tls_listener("gen2", "127.0.0.1", "9444", "gen2-tls"),
        );
        let out = s.pass();
        assert_eq!(
            messages(&out),
            [
                "issuer \"skupper-service-ca\": input/issuers/skupper-service-ca/tls.key: tls.key does not match tls.crt",
                "listener \"gen2\": input/issuers/skupper-service-ca/ is not usable and no earlier certificate exists",
            ]
        );
        assert_eq!(s.text("runtime/certs/gen-tls/tls.crt"), served, "kept");
        assert_eq!(ordinal(&s, "gen-tls"), 0);
        assert!(
            s.entity("tcpListener", "listener/gen").is_some(),
            "still served"
        );
        assert!(s.entity("tcpListener", "listener/gen2").is_none());
        assert_eq!(status(&out, "gen2").0, crate::status::Phase::Error);
        // `skupperd check` names it too.
        let parsed: BTreeMap<String, crate::resources::DecodedFile> = s
            .files
            .iter()
            .map(|(p, t)| (p.clone(), crate::resources::load_file(p, t.as_bytes())))
            .collect();
        let prior = read_prior(&s.runtime);
        let inputs = Inputs {
            namespace: "west",
            namespace_path: "/data/namespaces/west",
            platform: Ok(Platform::Linux),
            hostname: "host1",
            addresses: &[],
            version: "0.1.0",
            now: s.now,
            files: &parsed,
            certs: &s.certs,
            issuers: &s.issuers,
            renew_before: s.renew_before,
            runtime: &s.runtime,
            prior: &prior,
            router: RouterState::default(),
            trigger: "input",
            notices: &[],
        };
        assert!(check(&inputs)
            .iter()
            .any(|p| p.message.contains("tls.key does not match tls.crt")));

        // Fixed: both listeners get certificates from it.
        s.issuers.bundles.insert(
            "skupper-service-ca".into(),
            dir(&[("tls.crt", &crt), ("tls.key", &key)]),
        );
        let out = s.pass();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert!(signed_by(&s, "runtime/certs/gen2-tls", &crt, &key));
        assert_eq!(s.text("runtime/certs/gen-tls/tls.crt"), served);
    }

    #[test]
    fn an_issuer_name_is_no_bundle_name_and_the_management_ca_is_skupperds() {
        let mut s = scenario();
        let (crt, key) = user_ca("Example CA");
        let files = dir(&[("tls.crt", &crt), ("tls.key", &key)]);
        s.issuers.bundles.insert("my-ca".into(), files.clone());
        s.issuers.bundles.insert("skupper-local-ca".into(), files);
        s.put(
            "web.yaml",
            &tls_listener("web", "127.0.0.1", "8443", "my-ca"),
        );
        let out = s.pass();
        assert_eq!(
            messages(&out),
            [
                "issuer \"skupper-local-ca\": input/issuers/skupper-local-ca/ is ignored: skupperd always generates its management CA",
                "listener \"web\": spec.tlsCredentials \"my-ca\" names a CA; use a certificate bundle name",
            ]
        );
        let local = Credential {
            cert_pem: s.text("runtime/issuers/skupper-local-ca/tls.crt"),
            key_pem: s.text("runtime/issuers/skupper-local-ca/tls.key"),
        };
        assert_ne!(local.cert_pem, crt);
        assert!(signed_by(
            &s,
            "runtime/certs/skupper-local-server",
            &local.cert_pem,
            &local.key_pem
        ));
    }

    #[test]
    fn an_issuer_close_to_its_end_is_warned_about_and_its_leaves_not_churned() {
        let end = NOW + Duration::days(20);
        let (_, crt, key) = ca_files("Ending CA", None, NOW - Duration::days(300), end);
        let mut s = scenario();
        s.issuers.bundles.insert(
            "skupper-service-ca".into(),
            dir(&[("tls.crt", &crt), ("tls.key", &key)]),
        );
        let out = s.pass();
        let warning = "input/issuers/skupper-service-ca/tls.crt expires on 2026-12-16 (in 20 days)";
        assert_eq!(
            messages(&out),
            [format!("issuer \"skupper-service-ca\": {warning}")]
        );
        assert_eq!(out.expiring.len(), 1);
        assert_eq!(out.expiring[0].message, warning);
        assert_eq!(not_after_of(&s.text("runtime/certs/gen-tls/tls.crt")), end);
        // Inside the window, but a new leaf could not last longer.
        s.now += Duration::days(1);
        let out = s.pass();
        assert!(
            !out.writes.keys().any(|p| p.starts_with("runtime/certs/")),
            "{:?}",
            out.writes.keys()
        );
    }
}
