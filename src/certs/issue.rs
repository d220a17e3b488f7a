//! Issuing generated credentials (CAs and the leaves they sign), and the
//! rule for when a generated credential on disk must be issued again.
//!
//! Randomness lives only in [`Mint`] implementations, so the reconcile core
//! stays a function of its inputs; tests use [`MemoMint`] to get the same
//! bytes on every run of a scenario.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SecureRandom;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use super::keys::{certificate_public_key, decode_private_key, key_matches};
use super::pem::{certificate_blocks, parse_der};
use super::{info_of, leaf_info, CertError, Credential, LeafInfo, SKEW};

/// Lifetime of a generated CA.
const CA_YEARS: i32 = 10;
/// Lifetime of a generated leaf (never beyond its CA's).
const LEAF_YEARS: i32 = 5;

/// Issues credentials; the one place where skupperd's core uses randomness.
pub trait Mint {
    /// A CA: ECDSA P-256, valid from `now` - 5 minutes for 10 years,
    /// basicConstraints CA, keyCertSign and cRLSign, subject CN = `common_name`.
    fn issue_ca(&mut self, common_name: &str, now: OffsetDateTime)
        -> Result<Credential, CertError>;

    /// A leaf signed by `issuer`: ECDSA P-256, valid from `now` - 5 minutes
    /// for 5 years (cut to the issuer's expiry), serverAuth and clientAuth,
    /// CN = `common_name`, one SAN per entry of `sans` (IP addresses become IP
    /// SANs, anything else a DNS SAN). `issuer`'s key may be in any format
    /// the PEM checks accept.
    fn issue_leaf(
        &mut self,
        issuer: &Credential,
        common_name: &str,
        sans: &[String],
        now: OffsetDateTime,
    ) -> Result<Credential, CertError>;

    /// A random version-4 UUID in canonical lower-case text (site ids).
    fn uuid(&mut self) -> Result<String, CertError>;
}

/// Whether a generated credential found on disk must be issued again: its
/// certificate or key is missing or unreadable, the key does not match, it
/// is not valid yet, it expires within `renew_before` of `now` (the
/// renewal window), it is not signed by `issuer` (so re-minting a CA
/// re-issues its leaves), or its SANs differ from `want_sans` (compared as
/// sets; IP addresses as addresses, names without regard to case).
///
/// A leaf inside the window that already lasts as long as its issuer is
/// kept: a new one would be cut to the same date (a leaf never outlives
/// its CA), so issuing it again would only churn keys on every pass. That
/// happens with a user issuer close to its end; a generated CA is renewed
/// itself, which re-issues its leaves.
pub fn needs_reissue(
    found: &Credential,
    issuer: Option<&Credential>,
    want_sans: Option<&[String]>,
    now: OffsetDateTime,
    renew_before: Duration,
) -> bool {
    !still_good(found, issuer, want_sans, now, renew_before)
}

fn still_good(
    found: &Credential,
    issuer: Option<&Credential>,
    want_sans: Option<&[String]>,
    now: OffsetDateTime,
    renew_before: Duration,
) -> bool {
    let Some(cert_der) = first_der(&found.cert_pem) else {
        return false;
    };
    let Ok(cert) = parse_der(&cert_der) else {
        return false;
    };
    let Some(key) = decode_private_key(found.key_pem.as_bytes()) else {
        return false;
    };
    let matches = certificate_public_key(&cert).and_then(|p| key_matches(&key.public, &p));
    if matches != Some(true) {
        return false;
    }
    let info = info_of(&cert);
    if info.not_before > now || info.not_after < now {
        return false;
    }
    let mut renewable = true;
    if let Some(issuer) = issuer {
        let Some(issuer_der) = first_der(&issuer.cert_pem) else {
            return false;
        };
        let Ok(issuer_cert) = parse_der(&issuer_der) else {
            return false;
        };
        if cert
            .verify_signature(Some(issuer_cert.public_key()))
            .is_err()
        {
            return false;
        }
        renewable = info.not_after < info_of(&issuer_cert).not_after;
    }
    if renewable && info.not_after - now < renew_before {
        return false;
    }
    match want_sans {
        Some(want) => san_set(&info) == want.iter().map(|s| San::parse(s)).collect(),
        None => true,
    }
}

fn first_der(pem: &str) -> Option<Vec<u8>> {
    certificate_blocks(pem.as_bytes()).ok()?.into_iter().next()
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum San {
    Dns(String),
    Ip(IpAddr),
}

impl San {
    fn parse(s: &str) -> San {
        if let Some(name) = s.strip_prefix(DNS_PREFIX) {
            return San::Dns(name.to_ascii_lowercase());
        }
        match s.parse::<IpAddr>() {
            Ok(ip) => San::Ip(ip.to_canonical()),
            Err(_) => San::Dns(s.to_ascii_lowercase()),
        }
    }
}

fn san_set(info: &LeafInfo) -> BTreeSet<San> {
    let dns = info
        .dns_sans
        .iter()
        .map(|d| San::Dns(d.to_ascii_lowercase()));
    let ips = info.ip_sans.iter().map(|ip| San::Ip(ip.to_canonical()));
    dns.chain(ips).collect()
}

// === impl RcgenMint ===

/// The real mint: rcgen with keys from ring's system randomness.
#[derive(Debug, Default, Clone, Copy)]
pub struct RcgenMint;

impl Mint for RcgenMint {
    fn issue_ca(
        &mut self,
        common_name: &str,
        now: OffsetDateTime,
    ) -> Result<Credential, CertError> {
        let failed = |source| CertError::Issue {
            common_name: common_name.to_string(),
            source,
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
        let mut params = base_params(common_name, now, add_years(now, CA_YEARS)?);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(failed)?;
        Ok(Credential {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn issue_leaf(
        &mut self,
        issuer: &Credential,
        common_name: &str,
        sans: &[String],
        now: OffsetDateTime,
    ) -> Result<Credential, CertError> {
        let failed = |source| CertError::Issue {
            common_name: common_name.to_string(),
            source,
        };
        let (signer, issuer_info) = load_issuer(issuer)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
        let not_after = add_years(now, LEAF_YEARS)?.min(issuer_info.not_after);
        let mut params = base_params(common_name, now, not_after);
        params.subject_alt_names = sans.iter().map(|s| san_type(s)).collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &signer).map_err(failed)?;
        Ok(Credential {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn uuid(&mut self) -> Result<String, CertError> {
        let mut bytes = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| CertError::Random)?;
        Ok(format_uuid_v4(bytes))
    }
}

/// The issuer's certificate and key as rcgen's signer, plus its facts.
pub(super) fn load_issuer(
    issuer: &Credential,
) -> Result<(Issuer<'static, KeyPair>, LeafInfo), CertError> {
    let info = leaf_info(issuer.cert_pem.as_bytes())?;
    let der = first_der(&issuer.cert_pem).ok_or_else(|| CertError::NotCertificate {
        detail: super::pem::NO_CERTIFICATE.to_string(),
    })?;
    let key = decode_private_key(issuer.key_pem.as_bytes()).ok_or(CertError::NotPrivateKey)?;
    let cert = parse_der(&der).map_err(|detail| CertError::NotCertificate { detail })?;
    let matches = certificate_public_key(&cert).and_then(|p| key_matches(&key.public, &p));
    if matches == Some(false) {
        return Err(CertError::IssuerKeyMismatch);
    }
    let pair = KeyPair::try_from(&PrivatePkcs8KeyDer::from(key.pkcs8.as_slice()))
        .map_err(|source| CertError::UnsupportedKey { source })?;
    let signer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), pair).map_err(
        |source| CertError::NotCertificate {
            detail: source.to_string(),
        },
    )?;
    Ok((signer, info))
}

fn base_params(
    common_name: &str,
    now: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.not_before = now.saturating_sub(SKEW);
    params.not_after = not_after;
    params
}

/// A SAN written `dns:<text>` is a DNS name even when the text is an IP
/// address. skupper-router checks a connector's host only against DNS
/// names (observed: a link to 127.0.0.1 is refused with `certificate
/// verify failed` by a certificate with IP SAN 127.0.0.1, and accepted
/// once DNS SAN "127.0.0.1" is added), so link-access certificates carry
/// each address both ways.
pub const DNS_PREFIX: &str = "dns:";

fn san_type(value: &str) -> Result<SanType, CertError> {
    if let Some(name) = value.strip_prefix(DNS_PREFIX) {
        return Ia5String::try_from(name)
            .map(SanType::DnsName)
            .map_err(|_| CertError::InvalidSan {
                value: value.to_string(),
            });
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = || CertError::InvalidSan {
        value: value.to_string(),
    };
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(invalid());
    }
    Ia5String::try_from(value)
        .map(SanType::DnsName)
        .map_err(|_| invalid())
}

/// The same instant `years` calendar years later; 29 February becomes the 28th.
fn add_years(t: OffsetDateTime, years: i32) -> Result<OffsetDateTime, CertError> {
    let year = t.year() + years;
    t.replace_year(year)
        .or_else(|_| t.replace_day(28).and_then(|t| t.replace_year(year)))
        .map_err(|_| CertError::DateOutOfRange)
}

fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

// === impl MemoMint ===

/// A deterministic mint for tests: it delegates to [`RcgenMint`] but keeps
/// every credential in a process-wide cache keyed by the seed and all
/// arguments (issuer and `now` included), and draws UUIDs from the seed and
/// a counter. Two runs of one scenario in a process, each with a fresh
/// `MemoMint::new(seed)`, produce the same bytes. Give distinct sites
/// distinct seeds, or their CAs would be the same key.
#[derive(Debug, Clone)]
pub struct MemoMint {
    seed: u64,
    uuids: u64,
}

impl MemoMint {
    pub fn new(seed: u64) -> MemoMint {
        MemoMint { seed, uuids: 0 }
    }

    fn memo(
        &self,
        key: MemoKey,
        make: impl FnOnce() -> Result<Credential, CertError>,
    ) -> Result<Credential, CertError> {
        // The lock is held while minting so that two threads asking for the
        // same key get the same credential. Minting neither blocks on
        // anything else nor panics, and a poisoned cache is still a valid map.
        static CACHE: OnceLock<Mutex<HashMap<MemoKey, Credential>>> = OnceLock::new();
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = cache.get(&key) {
            return Ok(found.clone());
        }
        let made = make()?;
        cache.insert(key, made.clone());
        Ok(made)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum MemoKey {
    Ca {
        seed: u64,
        common_name: String,
        now: OffsetDateTime,
    },
    Leaf {
        seed: u64,
        issuer: Credential,
        common_name: String,
        sans: Vec<String>,
        now: OffsetDateTime,
    },
}

impl Mint for MemoMint {
    fn issue_ca(
        &mut self,
        common_name: &str,
        now: OffsetDateTime,
    ) -> Result<Credential, CertError> {
        let key = MemoKey::Ca {
            seed: self.seed,
            common_name: common_name.to_string(),
            now,
        };
        self.memo(key, || RcgenMint.issue_ca(common_name, now))
    }

    fn issue_leaf(
        &mut self,
        issuer: &Credential,
        common_name: &str,
        sans: &[String],
        now: OffsetDateTime,
    ) -> Result<Credential, CertError> {
        let key = MemoKey::Leaf {
            seed: self.seed,
            issuer: issuer.clone(),
            common_name: common_name.to_string(),
            sans: sans.to_vec(),
            now,
        };
        self.memo(key, || RcgenMint.issue_leaf(issuer, common_name, sans, now))
    }

    fn uuid(&mut self) -> Result<String, CertError> {
        self.uuids += 1;
        let high = splitmix64(self.seed ^ splitmix64(self.uuids));
        let low = splitmix64(high ^ self.uuids);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        Ok(format_uuid_v4(bytes))
    }
}

/// A well-mixed 64-bit hash (SplitMix64's finaliser), for test UUIDs only.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
