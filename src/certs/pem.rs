//! PEM decoding of bundle files, with the wording used in messages.
//!
//! Decoding uses rustls-pki-types' PEM reader. Blocks with other labels are
//! skipped (a `tls.crt` may carry a key, a `tls.key` a certificate), but any
//! syntax error stops decoding: a half-readable file is not accepted.

use rustls_pki_types::pem::{self, PemObject, SectionKind};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

pub(crate) const NO_CERTIFICATE: &str = "no CERTIFICATE block found";

/// The DER of every CERTIFICATE block, in file order, each checked to be one
/// complete X.509 certificate. The error is the `<detail>` of the message
/// `<f> is not a PEM certificate: <detail>`.
pub(crate) fn certificate_blocks(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut ders = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        match item {
            Ok((SectionKind::Certificate, der)) => ders.push(der),
            Ok(_) => {}
            Err(error) => return Err(pem_detail(&error)),
        }
    }
    if ders.is_empty() {
        return Err(NO_CERTIFICATE.to_string());
    }
    for (index, der) in ders.iter().enumerate() {
        if let Err(detail) = parse_der(der) {
            return Err(if ders.len() == 1 {
                detail
            } else {
                format!("certificate {} of {}: {detail}", index + 1, ders.len())
            });
        }
    }
    Ok(ders)
}

/// One DER certificate, whole (no trailing bytes).
pub(crate) fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("the CERTIFICATE block has data after the certificate".to_string()),
        Err(error) => Err(format!(
            "the CERTIFICATE block is not an X.509 certificate ({error})"
        )),
    }
}

/// The kinds of private key block the PEM checks accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFormat {
    /// `PRIVATE KEY`
    Pkcs8,
    /// `RSA PRIVATE KEY`
    Pkcs1,
    /// `EC PRIVATE KEY`
    Sec1,
}

/// The single unencrypted private key block of `bytes`, or `None` when the
/// file has a PEM syntax error, no key, or more than one key. Encrypted keys
/// come out as `None` too: `ENCRYPTED PRIVATE KEY` blocks are not key blocks,
/// and legacy `Proc-Type: 4,ENCRYPTED` headers break the base64 body.
pub(crate) fn private_key_block(bytes: &[u8]) -> Option<(KeyFormat, Vec<u8>)> {
    let mut found = None;
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        let (kind, der) = item.ok()?;
        let format = match kind {
            SectionKind::PrivateKey => KeyFormat::Pkcs8,
            SectionKind::RsaPrivateKey => KeyFormat::Pkcs1,
            SectionKind::EcPrivateKey => KeyFormat::Sec1,
            _ => continue,
        };
        if found.is_some() {
            return None;
        }
        found = Some((format, der));
    }
    found
}

/// Short wording for PEM syntax errors. The library's own Display prints
/// byte vectors, which says little to a user.
fn pem_detail(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "the BEGIN {} line has no matching END line",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_string(),
        pem::Error::Base64Decode(_) => "a PEM block is not valid base64".to_string(),
        pem::Error::SectionTooLarge => "a PEM block is too large".to_string(),
        other => format!("PEM decoding failed ({other})"),
    }
}
