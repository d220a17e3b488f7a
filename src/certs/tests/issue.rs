//! Issuing credentials, the re-issue rule and the deterministic mint.

use std::net::IpAddr;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::*;
use crate::certs::{leaf_info, CertError, Credential, MemoMint, Mint, RcgenMint};

fn sans(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn verifies(cert_pem: &str, issuer_pem: &str) -> bool {
    let der = der_of(cert_pem.as_bytes());
    let issuer_der = der_of(issuer_pem.as_bytes());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let (_, issuer) = X509Certificate::from_der(&issuer_der).unwrap();
    cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// The credential as a bundle passes the PEM checks: parses, key matches.
fn assert_clean(cred: &Credential, now: OffsetDateTime) {
    let b = bundle(
        file(cred.cert_pem.clone()),
        key_file(cred.key_pem.clone()),
        None,
    );
    assert_eq!(check_bundle(&b, now, None), vec![]);
}

#[test]
fn issued_ca_is_a_p256_ca_valid_for_ten_years() {
    let ca = RcgenMint.issue_ca("skupper-site-ca", NOW).unwrap();
    assert!(ca.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_clean(&ca, NOW);
    let der = der_of(ca.cert_pem.as_bytes());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.value.ca);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    let params = cert.public_key().algorithm.parameters.as_ref().unwrap();
    assert_eq!(
        params.as_oid().unwrap(),
        x509_parser::oid_registry::OID_EC_P256
    );
    assert!(verifies(&ca.cert_pem, &ca.cert_pem), "self-signed");

    let info = leaf_info(ca.cert_pem.as_bytes()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("skupper-site-ca"));
    assert!(info.is_ca && info.key_cert_sign);
    assert_eq!(info.not_before, NOW - Duration::minutes(5));
    assert_eq!(info.not_after, datetime!(2036-11-26 00:00 UTC));
}

#[test]
fn issued_leaf_serves_and_authenticates_with_its_sans() {
    let ca = RcgenMint.issue_ca("skupper-service-ca", NOW).unwrap();
    let want = sans(&["backend.example", "10.0.0.1", "::1", "localhost"]);
    let leaf = RcgenMint.issue_leaf(&ca, "backend", &want, NOW).unwrap();
    assert_clean(&leaf, NOW);
    assert!(verifies(&leaf.cert_pem, &ca.cert_pem));
    let other_ca = RcgenMint.issue_ca("skupper-service-ca", NOW).unwrap();
    assert!(!verifies(&leaf.cert_pem, &other_ca.cert_pem));

    let der = der_of(leaf.cert_pem.as_bytes());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    assert_eq!(
        cert.issuer(),
        X509Certificate::from_der(&der_of(ca.cert_pem.as_bytes()))
            .unwrap()
            .1
            .subject()
    );

    let info = leaf_info(leaf.cert_pem.as_bytes()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("backend"));
    assert!(!info.is_ca);
    assert_eq!(info.dns_sans, vec!["backend.example", "localhost"]);
    let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    assert_eq!(info.ip_sans, ips);
    assert_eq!(info.not_before, NOW - Duration::minutes(5));
    assert_eq!(info.not_after, datetime!(2031-11-26 00:00 UTC));
}

#[test]
fn a_leaf_never_outlives_its_ca() {
    let old_ca = RcgenMint
        .issue_ca("ca", NOW - Duration::days(365 * 8))
        .unwrap();
    let ca_end = leaf_info(old_ca.cert_pem.as_bytes()).unwrap().not_after;
    let leaf = RcgenMint
        .issue_leaf(&old_ca, "x", &sans(&["x"]), NOW)
        .unwrap();
    assert_eq!(
        leaf_info(leaf.cert_pem.as_bytes()).unwrap().not_after,
        ca_end
    );
}

#[test]
fn user_issuers_with_pkcs1_and_sec1_keys_can_sign() {
    for (cert, key) in [
        ("rsa.crt", "rsa-pkcs1.key"),
        ("ec256.crt", "ec256-sec1.key"),
        ("ec384.crt", "ec384-sec1.key"),
        ("ed25519.crt", "ed25519-pkcs8.key"),
    ] {
        let issuer = Credential {
            cert_pem: String::from_utf8(fixture(cert)).unwrap(),
            key_pem: String::from_utf8(fixture(key)).unwrap(),
        };
        let leaf = RcgenMint
            .issue_leaf(&issuer, "l", &sans(&["l.example"]), FIXTURE_NOW)
            .unwrap();
        assert!(verifies(&leaf.cert_pem, &issuer.cert_pem), "{cert}");
        assert!(
            !needs_reissue(&leaf, Some(&issuer), None, FIXTURE_NOW),
            "{cert}"
        );
    }
}

#[test]
fn issuing_refuses_bad_issuers_and_names() {
    let ca = RcgenMint.issue_ca("ca", NOW).unwrap();
    let other = RcgenMint.issue_ca("ca", NOW).unwrap();
    let mixed = Credential {
        cert_pem: ca.cert_pem.clone(),
        key_pem: other.key_pem.clone(),
    };
    assert!(matches!(
        RcgenMint.issue_leaf(&mixed, "x", &[], NOW),
        Err(CertError::IssuerKeyMismatch)
    ));
    let no_key = Credential {
        cert_pem: ca.cert_pem.clone(),
        key_pem: String::new(),
    };
    assert!(matches!(
        RcgenMint.issue_leaf(&no_key, "x", &[], NOW),
        Err(CertError::NotPrivateKey)
    ));
    let no_cert = Credential {
        cert_pem: "junk".into(),
        key_pem: ca.key_pem.clone(),
    };
    let err = RcgenMint.issue_leaf(&no_cert, "x", &[], NOW).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a PEM certificate: no CERTIFICATE block found"
    );
    for bad in ["", "has space", "naïve.example"] {
        let err = RcgenMint
            .issue_leaf(&ca, "x", &sans(&[bad]), NOW)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("subject alternative name \"{bad}\" is not an IP address or a DNS name")
        );
    }
}

fn is_v4_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    lens == [8, 4, 4, 4, 12]
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

#[test]
fn uuids_are_random_version_4() {
    let a = RcgenMint.uuid().unwrap();
    let b = RcgenMint.uuid().unwrap();
    assert!(is_v4_uuid(&a) && is_v4_uuid(&b), "{a} {b}");
    assert_ne!(a, b);
}

#[test]
fn memo_mint_repeats_a_scenario_byte_for_byte() {
    fn scenario(seed: u64) -> (Credential, Credential, Vec<String>) {
        let mut mint = MemoMint::new(seed);
        let ca = mint.issue_ca("skupper-site-ca", NOW).unwrap();
        let leaf = mint
            .issue_leaf(&ca, "west", &sans(&["west.example"]), NOW)
            .unwrap();
        let ids = (0..3).map(|_| mint.uuid().unwrap()).collect();
        (ca, leaf, ids)
    }
    let first = scenario(41);
    assert_eq!(first, scenario(41));
    assert!(first.2.iter().all(|id| is_v4_uuid(id)), "{:?}", first.2);
    assert_ne!(first.2[0], first.2[1]);

    let other = scenario(42);
    assert_ne!(first.0, other.0, "another seed is another site");
    assert_ne!(first.2, other.2);

    let mut mint = MemoMint::new(41);
    let later = mint
        .issue_ca("skupper-site-ca", NOW + Duration::seconds(1))
        .unwrap();
    assert_ne!(first.0, later, "another time is another credential");
    assert!(verifies(&first.1.cert_pem, &first.0.cert_pem));
}

#[test]
fn a_fresh_credential_is_kept() {
    let ca = RcgenMint.issue_ca("ca", NOW).unwrap();
    let want = sans(&["a.example", "10.0.0.1", "::1"]);
    let leaf = RcgenMint.issue_leaf(&ca, "a", &want, NOW).unwrap();
    assert!(!needs_reissue(&ca, None, None, NOW));
    assert!(!needs_reissue(&leaf, Some(&ca), Some(&want), NOW));
    assert!(!needs_reissue(&leaf, Some(&ca), None, NOW));
    let same_set = sans(&["0:0::1", "A.example", "10.0.0.1", "a.example"]);
    assert!(!needs_reissue(&leaf, Some(&ca), Some(&same_set), NOW));
    // Five minutes of backdating keep it valid at the moment of issue.
    assert!(!needs_reissue(
        &leaf,
        Some(&ca),
        None,
        NOW - Duration::minutes(4)
    ));
}

#[test]
fn a_credential_is_reissued_when_broken_stale_or_foreign() {
    let ca = RcgenMint.issue_ca("ca", NOW).unwrap();
    let want = sans(&["a.example"]);
    let leaf = RcgenMint.issue_leaf(&ca, "a", &want, NOW).unwrap();
    let end = datetime!(2031-11-26 00:00 UTC);

    let with = |cert: &str, key: &str| Credential {
        cert_pem: cert.to_string(),
        key_pem: key.to_string(),
    };
    let cases: Vec<(&str, Credential, OffsetDateTime, Option<Vec<String>>)> = vec![
        ("cert missing", with("", &leaf.key_pem), NOW, None),
        ("key missing", with(&leaf.cert_pem, ""), NOW, None),
        (
            "key of another credential",
            with(&leaf.cert_pem, &ca.key_pem),
            NOW,
            None,
        ),
        (
            "cert garbage",
            with(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                &leaf.key_pem,
            ),
            NOW,
            None,
        ),
        (
            "not yet valid",
            leaf.clone(),
            NOW - Duration::minutes(6),
            None,
        ),
        (
            "expires within 30 days",
            leaf.clone(),
            end - Duration::days(29),
            None,
        ),
        ("expired", leaf.clone(), end + Duration::days(1), None),
        (
            "a SAN is missing",
            leaf.clone(),
            NOW,
            Some(sans(&["a.example", "b.example"])),
        ),
        ("a SAN is extra", leaf.clone(), NOW, Some(vec![])),
        (
            "a SAN changed",
            leaf.clone(),
            NOW,
            Some(sans(&["b.example"])),
        ),
    ];
    for (what, cred, now, want) in cases {
        assert!(
            needs_reissue(&cred, Some(&ca), want.as_deref(), now),
            "{what}"
        );
    }
    assert!(!needs_reissue(
        &leaf,
        Some(&ca),
        None,
        end - Duration::days(31)
    ));

    let reminted = RcgenMint.issue_ca("ca", NOW).unwrap();
    assert!(
        needs_reissue(&leaf, Some(&reminted), None, NOW),
        "the CA was re-minted"
    );
    let broken_issuer = with("junk", &ca.key_pem);
    assert!(needs_reissue(&leaf, Some(&broken_issuer), None, NOW));

    let ca_end = datetime!(2036-11-26 00:00 UTC);
    assert!(needs_reissue(&ca, None, None, ca_end - Duration::days(29)));
    assert!(!needs_reissue(&ca, None, None, ca_end - Duration::days(31)));
}

#[test]
fn the_renewal_window_decides_both_the_warning_and_the_reissue() {
    use crate::certs::check_bundle as check_within;
    let end = NOW + Duration::days(45);
    let soon = p256_until(end);
    let b = bundle(file(soon.cert.clone()), key_file(soon.key.clone()), None);
    assert_eq!(check_within(&b, NOW, None, Duration::days(30)), vec![]);
    let findings = check_within(&b, NOW, None, Duration::days(60));
    assert_eq!(
        messages(&findings),
        ["input/certs/web/tls.crt expires on 2027-01-10 (in 45 days)"]
    );
    assert_eq!(
        findings[0].not_after,
        Some(end),
        "the date the shell keys on"
    );

    let ca = MemoMint::new(7).issue_ca("ca", NOW).unwrap();
    let leaf = MemoMint::new(7)
        .issue_leaf(
            &ca,
            "web",
            &sans(&["a.example"]),
            NOW - Duration::days(5 * 365 - 45),
        )
        .unwrap();
    let reissue =
        |days| crate::certs::needs_reissue(&leaf, Some(&ca), None, NOW, Duration::days(days));
    assert!(!reissue(30), "45 days left, a 30-day window");
    assert!(reissue(60), "45 days left, a 60-day window");
}

#[test]
fn a_leaf_that_lasts_as_long_as_its_issuer_is_kept_inside_the_window() {
    // A CA with 10 days left (a user issuer nobody renewed): a new leaf
    // would end when it ends, so re-issuing gains nothing and would churn
    // a key on every pass.
    let ca_start = NOW - Duration::days(10 * 365 + 2) + Duration::days(10);
    let ca = MemoMint::new(8).issue_ca("user-ca", ca_start).unwrap();
    let ca_end = leaf_info(ca.cert_pem.as_bytes()).unwrap().not_after;
    assert!(
        ca_end > NOW && ca_end < NOW + Duration::days(11),
        "{ca_end}"
    );
    let last = MemoMint::new(8)
        .issue_leaf(&ca, "web", &sans(&["a.example"]), NOW)
        .unwrap();
    assert_eq!(
        leaf_info(last.cert_pem.as_bytes()).unwrap().not_after,
        ca_end
    );
    assert!(!needs_reissue(&last, Some(&ca), None, NOW));
    // A leaf ending before its CA still gains from renewal.
    let earlier = MemoMint::new(8)
        .issue_leaf(
            &ca,
            "web",
            &sans(&["a.example"]),
            NOW - Duration::days(5 * 365 - 2),
        )
        .unwrap();
    assert!(leaf_info(earlier.cert_pem.as_bytes()).unwrap().not_after < ca_end);
    assert!(needs_reissue(&earlier, Some(&ca), None, NOW));
    // Expired is expired, issuer or not.
    assert!(needs_reissue(
        &last,
        Some(&ca),
        None,
        ca_end + Duration::minutes(1)
    ));
}

/// `input/issuers/my-ca/` with these files.
fn issuer_files(crt: &str, key: Option<&str>) -> crate::certs::BundleFiles {
    crate::certs::BundleFiles {
        dir: "input/issuers/my-ca".to_string(),
        tls_crt: file(crt.to_string()),
        tls_key: key.and_then(|k| key_file(k.to_string())),
        ca_crt: None,
    }
}

#[test]
fn an_issuer_must_be_a_sound_ca_and_each_fault_is_named() {
    use super::fixtures::{ca_files, leaf, KeyKind};
    use crate::certs::{check_issuer, DEFAULT_RENEW_BEFORE as W};
    let (from, to) = (NOW - Duration::days(30), NOW + Duration::days(3650));
    let (_, ca, ca_key) = ca_files("my-ca", None, from, to);
    assert_eq!(
        check_issuer(&issuer_files(&ca, Some(&ca_key)), NOW, W),
        vec![]
    );

    assert_eq!(
        errors(&check_issuer(&issuer_files(&ca, None), NOW, W)),
        ["input/issuers/my-ca/tls.key is missing; an issuer needs tls.crt and tls.key"]
    );
    let (_, _, other_key) = ca_files("other", None, from, to);
    assert_eq!(
        errors(&check_issuer(&issuer_files(&ca, Some(&other_key)), NOW, W)),
        ["input/issuers/my-ca/tls.key: tls.key does not match tls.crt"]
    );
    let not_ca = leaf(KeyKind::EcP256Sec1, &["x.example"], from, to);
    assert_eq!(
        errors(&check_issuer(&issuer_files(&not_ca.tls_crt, Some(&not_ca.tls_key)), NOW, W)),
        ["input/issuers/my-ca/tls.crt is not a CA certificate (basicConstraints CA is not set); an issuer must be a CA"]
    );
    // A CA whose keyUsage leaves out keyCertSign.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let no_sign = params.self_signed(&key).unwrap().pem();
    assert_eq!(
        errors(&check_issuer(&issuer_files(&no_sign, Some(&key.serialize_pem())), NOW, W)),
        ["input/issuers/my-ca/tls.crt may not sign certificates (its keyUsage lacks keyCertSign)"]
    );
    // Expired, and close to the end: the bundle checks, with the window.
    let (_, old, old_key) = ca_files("my-ca", None, from - Duration::days(400), from);
    assert_eq!(
        errors(&check_issuer(&issuer_files(&old, Some(&old_key)), NOW, W)),
        ["input/issuers/my-ca/tls.crt expired on 2026-10-27"]
    );
    let (_, ending, ending_key) = ca_files("my-ca", None, from, NOW + Duration::days(20));
    assert_eq!(
        messages(&check_issuer(
            &issuer_files(&ending, Some(&ending_key)),
            NOW,
            W
        )),
        ["input/issuers/my-ca/tls.crt expires on 2026-12-16 (in 20 days)"]
    );
}
