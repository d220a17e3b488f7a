//! Unit tests of the certificate core, with helpers shared by the files below.
//!
//! Keys and certificates in formats rcgen cannot produce with the ring
//! provider (RSA, SEC1, P-521, encrypted keys) are fixtures in `testdata/`,
//! made once with OpenSSL (see its README); everything else is minted here.

mod bundle;
pub(crate) mod fixtures;
mod issue;
mod keys;

use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};
use time::macros::datetime;
use time::OffsetDateTime;

use super::{BundleFiles, Credential, FileBytes, Finding, Severity, DEFAULT_RENEW_BEFORE};

/// [`super::check_bundle`] with the default renewal window (30 days).
pub(super) fn check_bundle(
    files: &BundleFiles,
    now: OffsetDateTime,
    listener_host: Option<&str>,
) -> Vec<Finding> {
    super::check_bundle(files, now, listener_host, DEFAULT_RENEW_BEFORE)
}

/// [`super::needs_reissue`] with the default renewal window (30 days).
pub(super) fn needs_reissue(
    found: &Credential,
    issuer: Option<&Credential>,
    want_sans: Option<&[String]>,
    now: OffsetDateTime,
) -> bool {
    super::needs_reissue(found, issuer, want_sans, now, DEFAULT_RENEW_BEFORE)
}

/// "Now" in tests: the day the spec's example messages are written from
/// (`expires on 2026-12-20 (in 24 days)`).
pub(super) const NOW: OffsetDateTime = datetime!(2026-11-26 00:00 UTC);

/// A time at which every fixture in `testdata/` is valid.
pub(super) const FIXTURE_NOW: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

pub(super) const DIR: &str = "input/certs/web";

pub(super) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/src/certs/tests/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub(super) fn file(bytes: impl Into<Vec<u8>>) -> Option<FileBytes> {
    Some(FileBytes {
        bytes: bytes.into(),
        mode: 0o644,
    })
}

pub(super) fn key_file(bytes: impl Into<Vec<u8>>) -> Option<FileBytes> {
    Some(FileBytes {
        bytes: bytes.into(),
        mode: 0o600,
    })
}

pub(super) fn bundle(
    crt: Option<FileBytes>,
    key: Option<FileBytes>,
    ca: Option<FileBytes>,
) -> BundleFiles {
    BundleFiles {
        dir: DIR.to_string(),
        tls_crt: crt,
        tls_key: key,
        ca_crt: ca,
    }
}

/// The messages of the findings, for exact comparisons.
pub(super) fn messages(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(|f| f.message.clone()).collect()
}

pub(super) fn errors(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message.clone())
        .collect()
}

/// A self-signed certificate and its PKCS#8 key, made by rcgen with the
/// given validity and SANs.
pub(super) struct Made {
    pub cert: String,
    pub key: String,
}

pub(super) fn make(
    alg: &'static SignatureAlgorithm,
    sans: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Made {
    let key = KeyPair::generate_for(alg).unwrap();
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key).unwrap();
    Made {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A P-256 certificate valid from a year before [`NOW`] until `not_after`.
pub(super) fn p256_until(not_after: OffsetDateTime) -> Made {
    make(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &["web.example"],
        datetime!(2025-11-26 00:00 UTC),
        not_after,
    )
}

/// A P-256 certificate valid for years around [`NOW`].
pub(super) fn p256_with_sans(sans: &[&str]) -> Made {
    make(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        sans,
        datetime!(2025-01-01 00:00 UTC),
        datetime!(2030-01-01 00:00 UTC),
    )
}

/// PEM armour around arbitrary bytes (RFC 7468 base64, 64 columns).
pub(super) fn armor(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER of the first PEM block of `pem`.
pub(super) fn der_of(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    let (_, der) = <(SectionKind, Vec<u8>)>::from_pem_slice(pem).unwrap();
    der
}

#[test]
fn armor_round_trips_through_the_pem_reader() {
    for len in 0..8 {
        let der: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
        assert_eq!(der_of(armor("CERTIFICATE", &der).as_bytes()), der);
    }
}
