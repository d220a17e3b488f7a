//! certs: pure checks of TLS bundles and issuing of generated credentials
//! (resources.md 9).
//!
//! Everything here works on bytes and plain values: the shell reads the
//! files (and their modes) and passes `now`, so every rule can be tested in
//! memory with a fixed clock. The one exception is randomness, which lives
//! only behind the [`Mint`] trait: [`RcgenMint`] draws keys from ring's
//! system randomness, [`MemoMint`] makes tests repeatable.
//!
//! - [`check_bundle`] runs the PEM checks table over a bundle's files.
//! - [`leaf_info`] gives the facts the reconciler needs about a certificate.
//! - [`needs_reissue`] decides whether a generated credential must be minted
//!   again; [`Mint`] mints it.
//!
//! Private keys are accepted as PKCS#8, PKCS#1 (RSA) and SEC1 (EC); they are
//! normalised to PKCS#8 internally so ring and rcgen can use them.

mod bundle;
mod issue;
mod keys;
mod pem;

#[cfg(test)]
pub(crate) mod tests;

use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

/// Clock skew tolerated between this host and whoever issued a certificate.
pub(crate) const SKEW: time::Duration = time::Duration::minutes(5);

pub use crate::problem::Severity;
pub use bundle::{check_bundle, check_issuer, DEFAULT_RENEW_BEFORE};
pub use issue::{needs_reissue, MemoMint, Mint, RcgenMint, DNS_PREFIX};

/// One file of a bundle as read by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBytes {
    pub bytes: Vec<u8>,
    /// `st_mode & 0o777`; only the `tls.key` mode is looked at.
    pub mode: u32,
}

/// A bundle directory's relevant files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFiles {
    /// Path used in messages, relative to the namespace directory, e.g.
    /// `input/certs/web-tls`; file paths read `<dir>/tls.crt` and so on.
    pub dir: String,
    pub tls_crt: Option<FileBytes>,
    pub tls_key: Option<FileBytes>,
    pub ca_crt: Option<FileBytes>,
}

impl BundleFiles {
    /// The message path of one file of the bundle.
    pub fn path(&self, file_name: &str) -> String {
        format!("{}/{}", self.dir, file_name)
    }
}

/// One result of [`check_bundle`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Finding {
    pub severity: Severity,
    /// The file the finding is about, e.g. `input/certs/web-tls/tls.crt`.
    pub file: String,
    /// The full message, already starting with the file path.
    pub message: String,
    /// On the "expires on" warning: the certificate's notAfter, so the
    /// shell can remember which certificate it already warned about.
    pub not_after: Option<OffsetDateTime>,
}

/// A generated credential: PEM text of the certificate and of its private
/// key (PKCS#8 for everything skupperd mints).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Credential {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Facts about a certificate (the first one of a PEM file), parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// DNS names of the subjectAlternativeName extension, in certificate order.
    pub dns_sans: Vec<String>,
    /// IP addresses of the subjectAlternativeName extension, in certificate order.
    pub ip_sans: Vec<IpAddr>,
    /// basicConstraints CA is set.
    pub is_ca: bool,
    /// keyUsage allows keyCertSign (an absent keyUsage extension allows it).
    pub key_cert_sign: bool,
    /// The subject's first commonName, when it is a string.
    pub common_name: Option<String>,
    /// The subject distinguished name as OpenSSL's one-line form prints
    /// it, e.g. `CN=web, O=Example`.
    pub subject: String,
    /// The serial number in upper-case hex without leading zero bytes, as
    /// `openssl x509 -noout -serial` prints it, so users can compare.
    pub serial: String,
}

/// Why a certificate or key could not be used or made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The PEM text holds no usable certificate.
    #[error("not a PEM certificate: {detail}")]
    NotCertificate { detail: String },
    /// The PEM text holds no single unencrypted private key in a known format.
    #[error("not an unencrypted PEM private key")]
    NotPrivateKey,
    /// The private key is valid but cannot sign certificates with ring
    /// (for example an RSA key shorter than 2048 bits, or a P-521 key).
    #[error("the private key cannot be used to sign certificates: {source}")]
    UnsupportedKey { source: rcgen::Error },
    /// A subject alternative name is neither an IP address nor an ASCII DNS name.
    #[error("subject alternative name \"{value}\" is not an IP address or a DNS name")]
    InvalidSan { value: String },
    /// The issuer's private key is not the key of its certificate.
    #[error("the issuer's tls.key does not match its tls.crt")]
    IssuerKeyMismatch,
    /// The system's random source failed.
    #[error("the system random number generator failed")]
    Random,
    /// A validity date falls outside what certificates can encode.
    #[error("validity date out of range")]
    DateOutOfRange,
    /// rcgen refused to build the certificate.
    #[error("cannot issue certificate \"{common_name}\": {source}")]
    Issue {
        common_name: String,
        source: rcgen::Error,
    },
}

/// The first CERTIFICATE block of PEM text, through its END line: the
/// leaf of a `tls.crt` that carries its chain. All of `pem` when it has no
/// complete block (the checks report that elsewhere).
pub fn first_certificate_pem(pem: &str) -> &str {
    const END: &str = "-----END CERTIFICATE-----";
    let Some(at) = pem.find(END) else {
        return pem;
    };
    let mut end = at + END.len();
    if pem[end..].starts_with("\r\n") {
        end += 2;
    } else if pem[end..].starts_with('\n') {
        end += 1;
    }
    &pem[..end]
}

/// Facts about the first certificate of `cert_pem`.
pub fn leaf_info(cert_pem: &[u8]) -> Result<LeafInfo, CertError> {
    let ders =
        pem::certificate_blocks(cert_pem).map_err(|detail| CertError::NotCertificate { detail })?;
    let first = ders.first().ok_or_else(|| CertError::NotCertificate {
        detail: pem::NO_CERTIFICATE.to_string(),
    })?;
    let cert = pem::parse_der(first).map_err(|detail| CertError::NotCertificate { detail })?;
    Ok(info_of(&cert))
}

/// Builds [`LeafInfo`] from a parsed certificate. Extensions that do not
/// parse count as absent: the certificate itself parsed, and the router's
/// OpenSSL is the judge of the rest.
pub(crate) fn info_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> LeafInfo {
    let validity = cert.validity();
    let mut dns_sans = Vec::new();
    let mut ip_sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_sans.push((*dns).to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ip_sans.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let key_cert_sign = match cert.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let raw = cert.raw_serial();
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let mut serial: String = raw
        .get(first..)
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    if serial.is_empty() {
        serial.push_str("00");
    }
    LeafInfo {
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
        dns_sans,
        ip_sans,
        is_ca,
        key_cert_sign,
        common_name,
        subject: cert.subject().to_string(),
        serial,
    }
}

/// An IP SAN is 4 or 16 bytes; anything else (a name-constraint style
/// address/mask) is not an address.
pub(crate) fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}
