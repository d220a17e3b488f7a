//! The PEM checks table of resources.md 9, message by message.

use time::macros::datetime;
use time::Duration;

use super::*;

fn good() -> Made {
    p256_with_sans(&["web.example", "10.0.0.1"])
}

#[test]
fn a_good_bundle_has_no_findings() {
    let leaf = good();
    let ca = p256_with_sans(&[]);
    let b = bundle(file(leaf.cert), key_file(leaf.key), file(ca.cert));
    assert_eq!(check_bundle(&b, NOW, Some("web.example")), vec![]);
}

#[test]
fn absent_files_are_not_checked() {
    assert_eq!(
        check_bundle(&bundle(None, None, None), NOW, Some("x")),
        vec![]
    );
}

#[test]
fn tls_crt_without_certificate_is_an_error_with_detail() {
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "no CERTIFICATE block found"),
        (b"hello\n", "no CERTIFICATE block found"),
        (
            b"-----BEGIN CERTIFICATE-----\nMIIB\n",
            "the BEGIN CERTIFICATE line has no matching END line",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "a PEM block is not valid base64",
        ),
        (b"-----BEGIN CERTIFICATE--\n", "a BEGIN line is malformed"),
    ];
    for (bytes, detail) in cases {
        let b = bundle(file(bytes), None, None);
        let findings = check_bundle(&b, NOW, None);
        assert_eq!(
            messages(&findings),
            vec![format!(
                "input/certs/web/tls.crt is not a PEM certificate: {detail}"
            )],
            "input {:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(findings[0].severity, Severity::Error);
        assert_eq!(findings[0].file, "input/certs/web/tls.crt");
    }
}

#[test]
fn a_block_that_is_not_x509_is_reported_and_numbered_in_a_chain() {
    let junk = armor("CERTIFICATE", b"\x30\x03\x02\x01\x01");
    let b = bundle(file(junk.clone()), None, None);
    let m = messages(&check_bundle(&b, NOW, None));
    assert_eq!(m.len(), 1);
    assert!(
        m[0].starts_with(
            "input/certs/web/tls.crt is not a PEM certificate: \
             the CERTIFICATE block is not an X.509 certificate ("
        ),
        "{m:?}"
    );

    let chain = format!("{}{junk}", good().cert);
    let m = messages(&check_bundle(&bundle(file(chain), None, None), NOW, None));
    assert!(
        m[0].starts_with("input/certs/web/tls.crt is not a PEM certificate: certificate 2 of 2: "),
        "{m:?}"
    );

    let mut trailing = der_of(good().cert.as_bytes());
    trailing.push(0);
    let b = bundle(file(armor("CERTIFICATE", &trailing)), None, None);
    assert_eq!(
        messages(&check_bundle(&b, NOW, None)),
        vec![
            "input/certs/web/tls.crt is not a PEM certificate: \
              the CERTIFICATE block has data after the certificate"
        ]
    );
}

#[test]
fn ca_crt_is_parsed_too() {
    let b = bundle(None, None, file("not pem"));
    assert_eq!(
        messages(&check_bundle(&b, NOW, None)),
        vec!["input/certs/web/ca.crt is not a PEM certificate: no CERTIFICATE block found"]
    );
}

#[test]
fn other_blocks_in_tls_crt_are_ignored() {
    let leaf = good();
    let combined = format!("{}{}", leaf.key, leaf.cert);
    let b = bundle(file(combined), key_file(leaf.key), None);
    assert_eq!(check_bundle(&b, NOW, None), vec![]);
}

#[test]
fn key_that_is_not_one_unencrypted_key_is_an_error() {
    let leaf = good();
    let two_keys = format!("{}{}", leaf.key, good().key);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"secret".to_vec()),
        ("certificate only", leaf.cert.clone().into_bytes()),
        ("two keys", two_keys.into_bytes()),
        ("encrypted PKCS#8", fixture("encrypted-pkcs8.key")),
        ("encrypted PKCS#1", fixture("encrypted-pkcs1.key")),
        (
            "junk in a key block",
            armor("PRIVATE KEY", b"\x30\x00").into_bytes(),
        ),
        (
            "EC key labelled RSA",
            armor("RSA PRIVATE KEY", &der_of(&fixture("ec256-sec1.key"))).into_bytes(),
        ),
    ];
    for (what, bytes) in cases {
        let b = bundle(file(leaf.cert.clone()), key_file(bytes), None);
        assert_eq!(
            messages(&check_bundle(&b, NOW, None)),
            vec!["input/certs/web/tls.key is not an unencrypted PEM private key"],
            "{what}"
        );
    }
}

#[test]
fn key_of_another_certificate_is_an_error() {
    let b = bundle(file(good().cert), key_file(good().key), None);
    let findings = check_bundle(&b, NOW, None);
    assert_eq!(
        messages(&findings),
        vec!["input/certs/web/tls.key: tls.key does not match tls.crt"]
    );
    assert_eq!(findings[0].file, "input/certs/web/tls.key");
    assert_eq!(findings[0].severity, Severity::Error);
}

#[test]
fn expired_leaf_is_an_error_after_five_minutes_of_skew() {
    let expired = p256_until(datetime!(2026-11-01 00:00 UTC));
    let b = bundle(file(expired.cert), None, None);
    assert_eq!(
        errors(&check_bundle(&b, NOW, None)),
        vec!["input/certs/web/tls.crt expired on 2026-11-01"]
    );

    let just = p256_until(NOW - Duration::minutes(4));
    let b = bundle(file(just.cert), None, None);
    assert_eq!(
        messages(&check_bundle(&b, NOW, None)),
        vec![format!(
            "input/certs/web/tls.crt expires on 2026-11-25 (in 0 days)"
        )]
    );

    let past = p256_until(NOW - Duration::minutes(6));
    let b = bundle(file(past.cert), None, None);
    assert_eq!(
        messages(&check_bundle(&b, NOW, None)),
        vec!["input/certs/web/tls.crt expired on 2026-11-25"]
    );
}

#[test]
fn not_yet_valid_leaf_is_an_error_after_five_minutes_of_skew() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let later = datetime!(2030-01-01 00:00 UTC);
    let future = make(alg, &[], datetime!(2027-01-01 00:00 UTC), later);
    let b = bundle(file(future.cert), None, None);
    assert_eq!(
        messages(&check_bundle(&b, NOW, None)),
        vec!["input/certs/web/tls.crt is not valid before 2027-01-01"]
    );

    let soon = make(alg, &[], NOW + Duration::minutes(4), later);
    assert_eq!(
        check_bundle(&bundle(file(soon.cert), None, None), NOW, None),
        vec![]
    );
}

#[test]
fn leaf_expiring_within_30_days_is_a_warning() {
    let b = bundle(
        file(p256_until(datetime!(2026-12-20 00:00 UTC)).cert),
        None,
        None,
    );
    let findings = check_bundle(&b, NOW, None);
    assert_eq!(
        messages(&findings),
        vec!["input/certs/web/tls.crt expires on 2026-12-20 (in 24 days)"]
    );
    assert_eq!(findings[0].severity, Severity::Warning);

    let almost = p256_until(NOW + Duration::days(30) - Duration::hours(1));
    let b = bundle(file(almost.cert), None, None);
    assert_eq!(
        messages(&check_bundle(&b, NOW, None)),
        vec!["input/certs/web/tls.crt expires on 2026-12-25 (in 29 days)"]
    );

    let tomorrow = p256_until(NOW + Duration::days(1) + Duration::hours(1));
    let b = bundle(file(tomorrow.cert), None, None);
    assert_eq!(
        messages(&check_bundle(&b, NOW, None)),
        vec!["input/certs/web/tls.crt expires on 2026-11-27 (in 1 day)"]
    );

    let enough = p256_until(NOW + Duration::days(30));
    assert_eq!(
        check_bundle(&bundle(file(enough.cert), None, None), NOW, None),
        vec![]
    );
}

#[test]
fn every_ca_certificate_must_be_valid_now() {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let good_ca = p256_with_sans(&[]).cert;
    let expired = p256_until(datetime!(2026-11-01 00:00 UTC)).cert;
    let future = make(
        alg,
        &[],
        datetime!(2027-01-01 00:00 UTC),
        datetime!(2030-01-01 00:00 UTC),
    )
    .cert;
    let soon = p256_until(datetime!(2026-12-20 00:00 UTC)).cert;
    let ca = format!("{good_ca}{expired}{future}{soon}");
    let b = bundle(None, None, file(ca));
    // A CA certificate expiring soon is not warned about: only the leaf is.
    assert_eq!(
        messages(&check_bundle(&b, NOW, None)),
        vec![
            "input/certs/web/ca.crt expired on 2026-11-01",
            "input/certs/web/ca.crt is not valid before 2027-01-01",
        ]
    );
}

#[test]
fn listener_host_must_be_covered_by_a_san() {
    let leaf = p256_with_sans(&["a.example", "10.0.0.1", "*.wild.example", "fd00::1"]);
    let check = |host: &str| {
        messages(&check_bundle(
            &bundle(file(leaf.cert.clone()), None, None),
            NOW,
            Some(host),
        ))
    };
    for covered in [
        "a.example",
        "10.0.0.1",
        "x.wild.example",
        "fd00::1",
        "fd00:0::1",
        "0.0.0.0",
        "::",
    ] {
        assert_eq!(check(covered), Vec::<String>::new(), "{covered}");
    }
    for (host, quoted) in [
        ("backend", "backend"),
        ("wild.example", "wild.example"),
        ("a.b.wild.example", "a.b.wild.example"),
        ("10.0.0.2", "10.0.0.2"),
        ("::1", "::1"),
    ] {
        assert_eq!(
            check(host),
            vec![format!(
                "input/certs/web/tls.crt does not cover host \"{quoted}\" \
                 (SANs: a.example, 10.0.0.1, *.wild.example, fd00::1); \
                 clients that check host names will fail"
            )],
            "{host}"
        );
    }
}

#[test]
fn host_coverage_is_a_warning_and_ip_hosts_need_ip_sans() {
    let leaf = p256_with_sans(&["a.example", "10.0.0.1"]);
    let b = bundle(file(leaf.cert), None, None);
    let findings = check_bundle(&b, NOW, Some("backend"));
    assert_eq!(
        messages(&findings),
        vec![
            "input/certs/web/tls.crt does not cover host \"backend\" (SANs: a.example, 10.0.0.1); \
              clients that check host names will fail"
        ]
    );
    assert_eq!(findings[0].severity, Severity::Warning);

    // A DNS SAN spelled like an address does not cover that address.
    let dns_only = p256_with_sans(&["web.example"]);
    let b = bundle(file(dns_only.cert), None, None);
    assert_eq!(check_bundle(&b, NOW, Some("web.example")), vec![]);
    let no_sans = p256_with_sans(&[]);
    let b = bundle(file(no_sans.cert), None, None);
    assert_eq!(
        messages(&check_bundle(&b, NOW, Some("127.0.0.1"))),
        vec![
            "input/certs/web/tls.crt does not cover host \"127.0.0.1\" (SANs: none); \
              clients that check host names will fail"
        ]
    );
}

#[test]
fn wildcards_cover_exactly_one_label() {
    use crate::certs::bundle::dns_covers;
    assert!(dns_covers("*.example.com", "a.example.com"));
    assert!(dns_covers("*.Example.com", "a.example.com"));
    assert!(dns_covers("web.example.com.", "web.example.com"));
    assert!(!dns_covers("*.example.com", "example.com"));
    assert!(!dns_covers("*.example.com", "a.b.example.com"));
    assert!(!dns_covers("*.example.com", ".example.com"));
    assert!(!dns_covers("a*.example.com", "ab.example.com"));
    assert!(!dns_covers("*.", "a."));
}

#[test]
fn key_readable_by_others_is_a_warning() {
    let leaf = good();
    for (mode, shown) in [
        (0o644, "0644"),
        (0o640, "0640"),
        (0o604, "0604"),
        (0o100_660, "0660"),
    ] {
        let key = Some(FileBytes {
            bytes: leaf.key.clone().into_bytes(),
            mode,
        });
        let findings = check_bundle(&bundle(file(leaf.cert.clone()), key, None), NOW, None);
        assert_eq!(
            messages(&findings),
            vec![format!(
                "input/certs/web/tls.key is readable by other users (mode {shown}); run chmod 600"
            )]
        );
        assert_eq!(findings[0].severity, Severity::Warning);
    }
    for mode in [0o600, 0o400, 0o700] {
        let key = Some(FileBytes {
            bytes: leaf.key.clone().into_bytes(),
            mode,
        });
        assert_eq!(
            check_bundle(&bundle(file(leaf.cert.clone()), key, None), NOW, None),
            vec![]
        );
    }
}

#[test]
fn findings_come_in_file_order_errors_first() {
    let leaf = p256_until(datetime!(2026-11-01 00:00 UTC));
    let key = Some(FileBytes {
        bytes: good().key.into_bytes(),
        mode: 0o644,
    });
    let b = bundle(file(leaf.cert), key, file("x"));
    assert_eq!(
        messages(&check_bundle(&b, NOW, Some("other.example"))),
        vec![
            "input/certs/web/tls.crt expired on 2026-11-01",
            "input/certs/web/tls.crt does not cover host \"other.example\" (SANs: web.example); \
             clients that check host names will fail",
            "input/certs/web/tls.key: tls.key does not match tls.crt",
            "input/certs/web/tls.key is readable by other users (mode 0644); run chmod 600",
            "input/certs/web/ca.crt is not a PEM certificate: no CERTIFICATE block found",
        ]
    );
}
