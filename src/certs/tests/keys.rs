//! Key formats and key/certificate matching, and robustness on bad input.

use proptest::prelude::*;

use super::*;
use crate::certs::keys::decode_private_key;

const MISMATCH: &str = "input/certs/web/tls.key: tls.key does not match tls.crt";

fn check_pair(cert: &[u8], key: &[u8]) -> Vec<String> {
    messages(&check_bundle(
        &bundle(file(cert), key_file(key), None),
        FIXTURE_NOW,
        None,
    ))
}

/// (certificate, key) fixture pairs, one per key format and algorithm.
const PAIRS: &[(&str, &str)] = &[
    ("rsa.crt", "rsa-pkcs1.key"),
    ("rsa.crt", "rsa-pkcs8.key"),
    ("ec256.crt", "ec256-sec1.key"),
    ("ec256.crt", "ec256-pkcs8.key"),
    ("ec384.crt", "ec384-sec1.key"),
    ("ec384.crt", "ec384-pkcs8.key"),
    ("ec521.crt", "ec521-sec1.key"),
    ("ed25519.crt", "ed25519-pkcs8.key"),
];

#[test]
fn every_key_format_matches_its_certificate() {
    for (cert, key) in PAIRS {
        assert_eq!(
            check_pair(&fixture(cert), &fixture(key)),
            Vec::<String>::new(),
            "{cert} with {key}"
        );
    }
}

#[test]
fn keys_made_by_rcgen_match_their_certificates() {
    let algs = [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ];
    for alg in algs {
        let made = make(
            alg,
            &["x.example"],
            NOW,
            FIXTURE_NOW + time::Duration::days(365),
        );
        assert_eq!(
            check_pair(made.cert.as_bytes(), made.key.as_bytes()),
            Vec::<String>::new()
        );
        let other = make(
            alg,
            &["x.example"],
            NOW,
            FIXTURE_NOW + time::Duration::days(365),
        );
        assert_eq!(
            check_pair(made.cert.as_bytes(), other.key.as_bytes()),
            vec![MISMATCH]
        );
    }
}

#[test]
fn every_key_format_is_refused_with_another_certificate() {
    for (cert, _) in PAIRS {
        for (other_cert, key) in PAIRS {
            if cert == other_cert {
                continue;
            }
            assert_eq!(
                check_pair(&fixture(cert), &fixture(key)),
                vec![MISMATCH],
                "{cert} with {key}"
            );
        }
    }
}

#[test]
fn pkcs1_and_sec1_keys_become_the_same_pkcs8_as_openssl_writes() {
    let from_pkcs1 = decode_private_key(&fixture("rsa-pkcs1.key")).unwrap();
    let from_pkcs8 = decode_private_key(&fixture("rsa-pkcs8.key")).unwrap();
    assert_eq!(from_pkcs1.public, from_pkcs8.public);
    assert_eq!(from_pkcs1.pkcs8, from_pkcs8.pkcs8);

    // OpenSSL drops the curve from the inner SEC1 structure when it writes
    // PKCS#8, so only the public keys are compared.
    for bits in ["256", "384"] {
        let sec1 = decode_private_key(&fixture(&format!("ec{bits}-sec1.key"))).unwrap();
        let pkcs8 = decode_private_key(&fixture(&format!("ec{bits}-pkcs8.key"))).unwrap();
        assert_eq!(sec1.public, pkcs8.public, "P-{bits}");
        // ring and rcgen accept the wrapped key.
        let pair = rcgen::KeyPair::try_from(sec1.pkcs8.as_slice()).unwrap();
        assert!(!pair.public_key_raw().is_empty());
    }
}

#[test]
fn a_sec1_key_with_a_foreign_public_point_is_refused() {
    // The point is the last field of the key; put another key's point
    // there. ring derives the point from the private scalar and refuses.
    let mut der = der_of(&fixture("ec256-sec1.key"));
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = other.public_key_raw();
    assert_eq!(point.len(), 65);
    let start = der.len() - point.len();
    assert_eq!(der[start], 0x04, "an uncompressed point ends the key");
    der[start..].copy_from_slice(point);
    assert!(decode_private_key(armor("EC PRIVATE KEY", &der).as_bytes()).is_none());
}

#[test]
fn a_key_alongside_a_certificate_in_tls_key_is_accepted() {
    let cert = fixture("ec256.crt");
    let mut key = fixture("ec256-sec1.key");
    key.extend_from_slice(&cert);
    assert_eq!(check_pair(&cert, &key), Vec::<String>::new());
}

fn fixture_names() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "rsa.crt",
        "rsa-pkcs1.key",
        "rsa-pkcs8.key",
        "ec256.crt",
        "ec256-sec1.key",
        "ec256-pkcs8.key",
        "ec521-sec1.key",
        "ed25519.crt",
        "ed25519-pkcs8.key",
    ])
}

/// Changes one base64 character of a PEM body, so the DER underneath is
/// damaged in a way the PEM layer cannot see.
fn damage(pem: &[u8], at: usize, to: u8) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = pem.to_vec();
    let body: Vec<usize> = (0..out.len())
        .filter(|i| {
            let line_start = out[..*i]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
            out[line_start] != b'-' && out[*i] != b'\n' && out[*i] != b'='
        })
        .collect();
    if let Some(i) = body.get(at % body.len().max(1)) {
        out[*i] = ALPHABET[usize::from(to) % ALPHABET.len()];
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        crt in prop::collection::vec(any::<u8>(), 0..400),
        key in prop::collection::vec(any::<u8>(), 0..400),
        ca in prop::collection::vec(any::<u8>(), 0..400),
        mode in 0u32..0o1000,
        host in "[a-z0-9.:*-]{0,20}",
    ) {
        let b = bundle(file(crt.clone()), Some(FileBytes { bytes: key.clone(), mode }), file(ca));
        let _ = check_bundle(&b, NOW, Some(&host));
        let _ = crate::certs::leaf_info(&crt);
        let cred = crate::certs::Credential {
            cert_pem: String::from_utf8_lossy(&crt).into_owned(),
            key_pem: String::from_utf8_lossy(&key).into_owned(),
        };
        prop_assert!(needs_reissue(&cred, None, None, NOW));
    }

    #[test]
    fn random_der_in_pem_armour_never_panics(
        der in prop::collection::vec(any::<u8>(), 0..300),
        label in prop::sample::select(vec!["CERTIFICATE", "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"]),
    ) {
        let pem = armor(label, &der);
        let b = bundle(file(pem.clone()), key_file(pem.clone()), file(pem));
        let _ = check_bundle(&b, NOW, Some("web.example"));
    }

    #[test]
    fn damaged_fixtures_never_panic(name in fixture_names(), at in any::<usize>(), to in any::<u8>()) {
        let bytes = damage(&fixture(name), at, to);
        let b = bundle(file(bytes.clone()), key_file(bytes.clone()), file(bytes.clone()));
        let _ = check_bundle(&b, FIXTURE_NOW, Some("10.0.0.1"));
        let cert = fixture(if name.starts_with("rsa") { "rsa.crt" } else { "ec256.crt" });
        let _ = check_bundle(&bundle(file(cert), key_file(bytes), None), FIXTURE_NOW, None);
    }
}
