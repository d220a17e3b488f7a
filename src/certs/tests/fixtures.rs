//! Bundles of every kind the PEM checks accept, made when the tests run
//! (no private key is committed): RSA and ECDSA leaves with PKCS#1, PKCS#8
//! and SEC1 keys, and a leaf issued through an intermediate CA. rcgen
//! makes every certificate; ring cannot generate RSA keys, so those come
//! from a small generator here (Miller-Rabin over num-bigint), checked by
//! ring when rcgen loads them.

use std::sync::OnceLock;

use num_bigint::BigUint;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber, SignatureAlgorithm,
};
use ring::rand::SecureRandom;
use rustls_pki_types::PrivatePkcs8KeyDer;
use time::{Duration, OffsetDateTime};

use super::armor;

/// How a fixture leaf's key is made and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// RSA 2048, `RSA PRIVATE KEY`.
    RsaPkcs1,
    /// RSA 2048, `PRIVATE KEY`.
    RsaPkcs8,
    /// ECDSA P-384, `PRIVATE KEY`.
    EcP384Pkcs8,
    /// ECDSA P-256, `EC PRIVATE KEY` with its curve.
    EcP256Sec1,
}

/// The PEM files of a bundle.
#[derive(Debug, Clone)]
pub(crate) struct Bundle {
    /// The leaf, then any intermediate.
    pub tls_crt: String,
    pub tls_key: String,
    /// The root that issued the chain.
    pub ca_crt: String,
}

/// A leaf with a key of `kind` for `sans`, valid from `not_before` to
/// `not_after`, issued by a fresh P-256 root.
pub(crate) fn leaf(
    kind: KeyKind,
    sans: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Bundle {
    let (root, root_pem) = ca("fixture-root", None, not_before, not_after);
    let (key_pem, key) = leaf_key(kind);
    let cert = leaf_params(sans, not_before, not_after)
        .signed_by(&key, &root)
        .expect("fixture leaf");
    Bundle {
        tls_crt: cert.pem(),
        tls_key: key_pem,
        ca_crt: root_pem,
    }
}

/// A P-256 leaf issued by an intermediate CA that a root issued:
/// `tls.crt` holds the leaf and the intermediate, `ca.crt` the root.
pub(crate) fn chained_leaf(
    sans: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Bundle {
    let (root, root_pem) = ca("fixture-root", None, not_before, not_after);
    let (intermediate, intermediate_pem) =
        ca("fixture-intermediate", Some(&root), not_before, not_after);
    let (key_pem, key) = leaf_key(KeyKind::EcP256Sec1);
    let cert = leaf_params(sans, not_before, not_after)
        .signed_by(&key, &intermediate)
        .expect("fixture leaf");
    Bundle {
        tls_crt: format!("{}{intermediate_pem}", cert.pem()),
        tls_key: key_pem,
        ca_crt: root_pem,
    }
}

/// A P-256 CA (self-signed, or issued by `parent`) as rcgen's signer and
/// PEM text, and its PKCS#8 key as PEM: what `input/issuers/<ca>/` holds.
pub(crate) fn ca_files(
    name: &str,
    parent: Option<&Issuer<'static, KeyPair>>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> (Issuer<'static, KeyPair>, String, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("fixture CA key");
    let key_pem = key.serialize_pem();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.serial_number = Some(serial());
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = match parent {
        Some(parent) => params.signed_by(&key, parent),
        None => params.self_signed(&key),
    }
    .expect("fixture CA");
    let pem = cert.pem();
    (Issuer::new(params, key), pem, key_pem)
}

fn ca(
    name: &str,
    parent: Option<&Issuer<'static, KeyPair>>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> (Issuer<'static, KeyPair>, String) {
    let (issuer, pem, _) = ca_files(name, parent, not_before, not_after);
    (issuer, pem)
}

fn leaf_params(
    sans: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("fixture SANs");
    params
        .distinguished_name
        .push(DnType::CommonName, "fixture-leaf");
    // rcgen derives the serial from the public key when none is given: a
    // random one, as real CAs do, so two certificates of one key differ.
    params.serial_number = Some(serial());
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

/// The key of a fixture leaf: its PEM text as a bundle holds it, and the
/// key pair rcgen puts into the certificate (loaded through ring, which
/// checks it).
fn leaf_key(kind: KeyKind) -> (String, KeyPair) {
    match kind {
        KeyKind::RsaPkcs1 | KeyKind::RsaPkcs8 => {
            let pkcs1 = rsa_pkcs1();
            let pkcs8 = wrap_pkcs8(&RSA_ALGORITHM, pkcs1);
            let pair = load(&pkcs8, &rcgen::PKCS_RSA_SHA256);
            let pem = if kind == KeyKind::RsaPkcs1 {
                armor("RSA PRIVATE KEY", pkcs1)
            } else {
                armor("PRIVATE KEY", &pkcs8)
            };
            (pem, pair)
        }
        KeyKind::EcP384Pkcs8 => {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key");
            (pair.serialize_pem(), pair)
        }
        KeyKind::EcP256Sec1 => {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
            let scalar = ec_scalar(&pair.serialize_der());
            // ECPrivateKey (RFC 5915) with both optional fields: the curve
            // (prime256v1), which skupperd needs, and the public point.
            let body = [
                tlv(0x02, &[1]),
                tlv(0x04, &scalar),
                tlv(0xa0, &tlv(0x06, P256_OID)),
                tlv(
                    0xa1,
                    &tlv(0x03, &[&[0u8][..], pair.public_key_raw()].concat()),
                ),
            ]
            .concat();
            (armor("EC PRIVATE KEY", &tlv(0x30, &body)), pair)
        }
    }
}

fn load(pkcs8: &[u8], alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), alg)
        .expect("ring accepts the fixture key")
}

/// A random positive serial of 16 bytes.
fn serial() -> SerialNumber {
    let mut bytes = random(16);
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x10;
    }
    SerialNumber::from_slice(&bytes)
}

fn random(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("system randomness");
    bytes
}

// --- DER by hand: a few fixed structures ---

const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// AlgorithmIdentifier { rsaEncryption, NULL }.
const RSA_ALGORITHM: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn integer(n: &BigUint) -> Vec<u8> {
    let mut bytes = n.to_bytes_be();
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    tlv(0x02, &bytes)
}

fn wrap_pkcs8(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    tlv(
        0x30,
        &[tlv(0x02, &[0]), algorithm.to_vec(), tlv(0x04, key)].concat(),
    )
}

/// The private scalar of ring's PKCS#8 EC key (PrivateKeyInfo whose
/// privateKey is an ECPrivateKey).
fn ec_scalar(pkcs8: &[u8]) -> Vec<u8> {
    use x509_parser::asn1_rs::{Any, FromDer};
    let items = |der: &[u8]| -> Vec<Vec<u8>> {
        let (_, seq) = Any::from_der(der).expect("a DER sequence");
        let mut data = seq.data;
        let mut out = Vec::new();
        while !data.is_empty() {
            let (rest, any) = Any::from_der(data).expect("a DER item");
            out.push(any.data.to_vec());
            data = rest;
        }
        out
    };
    let info = items(pkcs8);
    let ec = items(&info[2]);
    ec[1].clone()
}

/// One RSA 2048 key as PKCS#1 DER, made once per test process (a second
/// or so): certificates tell apart by their random serials.
fn rsa_pkcs1() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(make_rsa_pkcs1)
}

fn make_rsa_pkcs1() -> Vec<u8> {
    let one = BigUint::from(1u32);
    let e = BigUint::from(65_537u32);
    loop {
        let (a, b) = (prime(1024), prime(1024));
        // ring wants p > q (qInv is q^-1 mod p).
        let (p, q) = match a.cmp(&b) {
            std::cmp::Ordering::Greater => (a, b),
            std::cmp::Ordering::Less => (b, a),
            std::cmp::Ordering::Equal => continue,
        };
        let phi = (&p - &one) * (&q - &one);
        let Some(d) = e.modinv(&phi) else { continue };
        let Some(q_inv) = q.modinv(&p) else { continue };
        let n = &p * &q;
        let fields = [
            tlv(0x02, &[0]),
            integer(&n),
            integer(&e),
            integer(&d),
            integer(&p),
            integer(&q),
            integer(&(&d % (&p - &one))),
            integer(&(&d % (&q - &one))),
            integer(&q_inv),
        ];
        return tlv(0x30, &fields.concat());
    }
}

/// A random prime of exactly `bits` bits whose two top bits are set, so
/// the product of two has exactly twice as many.
fn prime(bits: usize) -> BigUint {
    let small = small_primes();
    loop {
        let mut bytes = random(bits / 8);
        if let Some(first) = bytes.first_mut() {
            *first |= 0xc0;
        }
        if let Some(last) = bytes.last_mut() {
            *last |= 1;
        }
        let candidate = BigUint::from_bytes_be(&bytes);
        if small.iter().any(|p| (&candidate % *p) == BigUint::ZERO) {
            continue;
        }
        if probably_prime(&candidate, 32) {
            return candidate;
        }
    }
}

fn small_primes() -> Vec<u32> {
    (3u32..2000)
        .filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .collect()
}

/// Miller-Rabin with random bases: a composite passes with probability at
/// most 4^-rounds.
fn probably_prime(n: &BigUint, rounds: usize) -> bool {
    let one = BigUint::from(1u32);
    let two = BigUint::from(2u32);
    let n_minus_one = n - &one;
    let s = n_minus_one.trailing_zeros().unwrap_or(0);
    let d = &n_minus_one >> s;
    let span = n - BigUint::from(3u32);
    'rounds: for _ in 0..rounds {
        let a = BigUint::from_bytes_be(&random(n.bits() as usize / 8)) % &span + &two;
        let mut x = a.modpow(&d, n);
        if x == one || x == n_minus_one {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n_minus_one {
                continue 'rounds;
            }
        }
        return false;
    }
    true
}

/// Fixture dates around the tests' "now".
pub(crate) fn around(now: OffsetDateTime, days_left: i64) -> (OffsetDateTime, OffsetDateTime) {
    (now - Duration::days(365), now + Duration::days(days_left))
}

#[cfg(test)]
mod tests {
    use super::super::{bundle, check_bundle, errors, file, key_file, NOW};
    use super::*;
    use crate::certs::leaf_info;

    fn all() -> Vec<(&'static str, Bundle)> {
        let (from, to) = around(NOW, 400);
        let sans = ["web.example", "127.0.0.1"];
        vec![
            ("RSA PKCS#1", leaf(KeyKind::RsaPkcs1, &sans, from, to)),
            ("RSA PKCS#8", leaf(KeyKind::RsaPkcs8, &sans, from, to)),
            ("P-384 PKCS#8", leaf(KeyKind::EcP384Pkcs8, &sans, from, to)),
            ("P-256 SEC1", leaf(KeyKind::EcP256Sec1, &sans, from, to)),
            ("chain", chained_leaf(&sans, from, to)),
        ]
    }

    #[test]
    fn every_fixture_passes_the_checks_with_its_own_key_and_fails_with_another() {
        let made = all();
        let labels = [
            "RSA PRIVATE KEY",
            "PRIVATE KEY",
            "PRIVATE KEY",
            "EC PRIVATE KEY",
            "EC PRIVATE KEY",
        ];
        for ((name, b), label) in made.iter().zip(labels) {
            assert!(
                b.tls_key.starts_with(&format!("-----BEGIN {label}-----\n")),
                "{name}: {}",
                b.tls_key
            );
            let files = bundle(
                file(b.tls_crt.clone()),
                key_file(b.tls_key.clone()),
                file(b.ca_crt.clone()),
            );
            assert_eq!(
                check_bundle(&files, NOW, Some("web.example")),
                vec![],
                "{name}"
            );
            assert_eq!(
                check_bundle(&files, NOW, Some("127.0.0.1")),
                vec![],
                "{name}"
            );
            let info = leaf_info(b.tls_crt.as_bytes()).unwrap();
            assert_eq!(info.subject, "CN=fixture-leaf", "{name}");
            assert_eq!(info.serial.len(), 32, "{name}: 16 bytes of hex");
        }
        assert_eq!(made[4].1.tls_crt.matches("BEGIN CERTIFICATE").count(), 2);
        for (i, (a, x)) in made.iter().enumerate() {
            for (j, (b, y)) in made.iter().enumerate() {
                // The two RSA fixtures share one key (made once per run).
                if i == j || (i < 2 && j < 2) {
                    continue;
                }
                let files = bundle(file(x.tls_crt.clone()), key_file(y.tls_key.clone()), None);
                assert_eq!(
                    errors(&check_bundle(&files, NOW, None)),
                    ["input/certs/web/tls.key: tls.key does not match tls.crt"],
                    "{a} certificate with the {b} key"
                );
            }
        }
    }
}
