//! The PEM checks of resources.md 9 over one bundle's files.
//!
//! Only files that are present are checked; which files a bundle needs
//! depends on who uses it and is the caller's rule. Findings come out in a
//! fixed order (tls.crt, tls.key, ca.crt; errors of a file before its
//! warnings) so status files and `skupperd check` output are stable.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use super::keys::{certificate_public_key, decode_private_key, key_matches};
use super::pem::{certificate_blocks, parse_der};
use super::{info_of, BundleFiles, Finding, LeafInfo, Severity, SKEW};

/// The renewal window when none is configured (resources.md 9): a user
/// certificate expiring sooner than this gets a warning, and a generated
/// one is re-issued.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::days(30);

/// Runs the PEM checks over the present files of `files`. `listener_host`
/// is the Listener's `spec.host` when the bundle serves a Listener.
/// `renew_before` is the renewal window (`renew_before_days`): a leaf that
/// expires within it gets the "expires on" warning, the same window in
/// which skupperd renews what it issued itself.
pub fn check_bundle(
    files: &BundleFiles,
    now: OffsetDateTime,
    listener_host: Option<&str>,
    renew_before: Duration,
) -> Vec<Finding> {
    let mut out = Findings::default();
    let crt_path = files.path("tls.crt");
    let key_path = files.path("tls.key");
    let ca_path = files.path("ca.crt");

    let mut leaf_key = None;
    if let Some(crt) = &files.tls_crt {
        match certificate_blocks(&crt.bytes) {
            Err(detail) => out.error(&crt_path, format!("is not a PEM certificate: {detail}")),
            Ok(ders) => {
                if let Some(cert) = ders.first().and_then(|der| parse_der(der).ok()) {
                    let info = info_of(&cert);
                    check_validity(&mut out, &crt_path, &info, now);
                    check_expiring(&mut out, &crt_path, &info, now, renew_before);
                    if let Some(host) = listener_host {
                        check_host(&mut out, &crt_path, &cert, &info, host);
                    }
                    leaf_key = certificate_public_key(&cert);
                }
            }
        }
    }

    if let Some(key) = &files.tls_key {
        match decode_private_key(&key.bytes) {
            None => out.error(
                &key_path,
                "is not an unencrypted PEM private key".to_string(),
            ),
            Some(private) => {
                if let Some(leaf) = &leaf_key {
                    if key_matches(&private.public, leaf) == Some(false) {
                        out.error(&key_path, ": tls.key does not match tls.crt".to_string());
                    }
                }
            }
        }
        let mode = key.mode & 0o777;
        if mode & 0o077 != 0 {
            out.warning(
                &key_path,
                format!("is readable by other users (mode {mode:04o}); run chmod 600"),
            );
        }
    }

    if let Some(ca) = &files.ca_crt {
        match certificate_blocks(&ca.bytes) {
            Err(detail) => out.error(&ca_path, format!("is not a PEM certificate: {detail}")),
            Ok(ders) => {
                for cert in ders.iter().filter_map(|der| parse_der(der).ok()) {
                    check_validity(&mut out, &ca_path, &info_of(&cert), now);
                }
            }
        }
    }
    out.0
}

/// Findings in order, without repeats (two CA certificates that expired on
/// the same day say so once).
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn error(&mut self, file: &str, rest: String) {
        self.push(Severity::Error, file, rest);
    }

    fn warning(&mut self, file: &str, rest: String) {
        self.push(Severity::Warning, file, rest);
    }

    /// `rest` follows the file path directly: it starts with a space or a colon.
    fn push(&mut self, severity: Severity, file: &str, rest: String) {
        self.push_finding(severity, file, rest, None);
    }

    fn push_finding(
        &mut self,
        severity: Severity,
        file: &str,
        rest: String,
        not_after: Option<OffsetDateTime>,
    ) {
        let separator = if rest.starts_with(':') { "" } else { " " };
        let finding = Finding {
            severity,
            file: file.to_string(),
            message: format!("{file}{separator}{rest}"),
            not_after,
        };
        if !self.0.contains(&finding) {
            self.0.push(finding);
        }
    }
}

fn check_validity(out: &mut Findings, file: &str, info: &LeafInfo, now: OffsetDateTime) {
    if info.not_after.saturating_add(SKEW) < now {
        out.error(file, format!("expired on {}", day(info.not_after)));
    }
    if info.not_before.saturating_sub(SKEW) > now {
        out.error(
            file,
            format!("is not valid before {}", day(info.not_before)),
        );
    }
}

fn check_expiring(
    out: &mut Findings,
    file: &str,
    info: &LeafInfo,
    now: OffsetDateTime,
    renew_before: Duration,
) {
    let left = info.not_after - now;
    // An expired certificate already has its error; within the skew it
    // still counts as expiring (in 0 days).
    if info.not_after.saturating_add(SKEW) >= now && left < renew_before {
        let days = match left.whole_days().max(0) {
            1 => "1 day".to_string(),
            n => format!("{n} days"),
        };
        out.push_finding(
            Severity::Warning,
            file,
            format!("expires on {} (in {days})", day(info.not_after)),
            Some(info.not_after),
        );
    }
}

/// The checks of a user issuer (`input/issuers/<name>/`, resources.md 9):
/// `tls.crt` and `tls.key` present, every bundle check, and a certificate
/// that may sign others (basicConstraints CA, keyUsage keyCertSign) with a
/// key skupperd can sign with. A CA that fails any of these would issue
/// certificates no client accepts, or none at all.
pub fn check_issuer(
    files: &BundleFiles,
    now: OffsetDateTime,
    renew_before: Duration,
) -> Vec<Finding> {
    let mut out = Findings::default();
    for (name, present) in [
        ("tls.crt", files.tls_crt.is_some()),
        ("tls.key", files.tls_key.is_some()),
    ] {
        if !present {
            out.error(
                &files.path(name),
                "is missing; an issuer needs tls.crt and tls.key".to_string(),
            );
        }
    }
    for finding in check_bundle(files, now, None, renew_before) {
        if !out.0.contains(&finding) {
            out.0.push(finding);
        }
    }
    let crt_path = files.path("tls.crt");
    let leaf = files
        .tls_crt
        .as_ref()
        .and_then(|crt| certificate_blocks(&crt.bytes).ok())
        .and_then(|ders| ders.into_iter().next());
    if let Some(cert) = leaf.as_deref().and_then(|der| parse_der(der).ok()) {
        let info = info_of(&cert);
        if !info.is_ca {
            out.error(
                &crt_path,
                "is not a CA certificate (basicConstraints CA is not set); an issuer must be a CA"
                    .to_string(),
            );
        } else if !info.key_cert_sign {
            out.error(
                &crt_path,
                "may not sign certificates (its keyUsage lacks keyCertSign)".to_string(),
            );
        }
    }
    // Whether the key can sign is only worth asking of an otherwise sound
    // issuer: a mismatch or a parse error already says what is wrong.
    let sound = !out.0.iter().any(|f| f.severity == Severity::Error);
    if let (true, Some(crt), Some(key)) = (sound, &files.tls_crt, &files.tls_key) {
        let cred = super::Credential {
            cert_pem: String::from_utf8_lossy(&crt.bytes).into_owned(),
            key_pem: String::from_utf8_lossy(&key.bytes).into_owned(),
        };
        if let Err(e) = super::issue::load_issuer(&cred) {
            out.error(&files.path("tls.key"), format!(": {e}"));
        }
    }
    out.0
}

/// Warns when a Listener's specific host is not among the leaf's SANs.
/// Wildcard hosts (`0.0.0.0`, `::`) accept any name, so there is nothing
/// to compare with.
fn check_host(
    out: &mut Findings,
    file: &str,
    cert: &x509_parser::certificate::X509Certificate<'_>,
    info: &LeafInfo,
    host: &str,
) {
    let host_ip = host.parse::<IpAddr>().ok();
    if host_ip.is_some_and(|ip| ip.is_unspecified()) {
        return;
    }
    let covered = match host_ip {
        Some(ip) => info
            .ip_sans
            .iter()
            .any(|san| san.to_canonical() == ip.to_canonical()),
        None => info.dns_sans.iter().any(|san| dns_covers(san, host)),
    };
    if !covered {
        let sans = san_list(cert);
        let sans = if sans.is_empty() {
            "none".to_string()
        } else {
            sans.join(", ")
        };
        out.warning(
            file,
            format!(
                "does not cover host \"{host}\" (SANs: {sans}); clients that check host names will fail"
            ),
        );
    }
}

/// DNS and IP SANs in certificate order, as the message lists them.
fn san_list(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_string()),
            GeneralName::IPAddress(bytes) => super::ip_from_bytes(bytes).map(|ip| ip.to_string()),
            _ => None,
        })
        .collect()
}

/// RFC 6125 matching as TLS clients do it: case-insensitive, and a `*` as
/// the whole left-most label stands for exactly one label.
pub(crate) fn dns_covers(san: &str, host: &str) -> bool {
    let san = san.strip_suffix('.').unwrap_or(san).to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    match san.strip_prefix("*.") {
        Some(parent) => match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && !parent.is_empty() && rest == parent,
            None => false,
        },
        None => san == host,
    }
}

/// `2026-11-01`: the UTC day of a certificate date, as messages print it.
pub(crate) fn day(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}
