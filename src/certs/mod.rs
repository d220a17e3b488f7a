//! certs: pure checks of PEM bundles and issuing of generated credentials.
//!
//! TEMPORARY INTERFACE STUB: replaced by the certs branch at merge.

use crate::problem::Severity;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBytes {
    pub bytes: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BundleFiles {
    pub dir: String,
    pub tls_crt: Option<FileBytes>,
    pub tls_key: Option<FileBytes>,
    pub ca_crt: Option<FileBytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub file: String,
    pub message: String,
}

pub fn check_bundle(_files: &BundleFiles, _now: OffsetDateTime, _host: Option<&str>) -> Vec<Finding> {
    Vec::new()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub cert_pem: String,
    pub key_pem: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CertError(String);

pub fn needs_reissue(
    _found: &Credential,
    _issuer: Option<&Credential>,
    _want_sans: Option<&[String]>,
    _now: OffsetDateTime,
) -> bool {
    false
}

pub trait Mint {
    fn issue_ca(&mut self, common_name: &str, now: OffsetDateTime) -> Result<Credential, CertError>;
    fn issue_leaf(
        &mut self,
        issuer: &Credential,
        common_name: &str,
        sans: &[String],
        now: OffsetDateTime,
    ) -> Result<Credential, CertError>;
    fn uuid(&mut self) -> String;
}

pub struct MemoMint {
    n: u64,
}

impl MemoMint {
    pub fn new(_seed: u64) -> MemoMint {
        MemoMint { n: 0 }
    }
}

impl Mint for MemoMint {
    fn issue_ca(&mut self, cn: &str, _now: OffsetDateTime) -> Result<Credential, CertError> {
        Ok(Credential { cert_pem: format!("CA {cn}\n"), key_pem: format!("KEY {cn}\n") })
    }
    fn issue_leaf(&mut self, i: &Credential, cn: &str, sans: &[String], _now: OffsetDateTime) -> Result<Credential, CertError> {
        Ok(Credential { cert_pem: format!("LEAF {cn} {sans:?} by {}\n", i.cert_pem.trim()), key_pem: format!("KEY {cn}\n") })
    }
    fn uuid(&mut self) -> String {
        self.n += 1;
        format!("6f1c2d3e-8a4b-4c1d-9e2f-{:012x}", self.n)
    }
}
