//! The TLS files a site's router reads (resources.md 9): the management
//! credentials, copies of user bundles, and generated listener
//! certificates. Generated material is read back from `runtime/` and only
//! issued again when missing, unusable, expiring or no longer matching
//! (SANs, issuer).

use super::entry::Config;
use super::resolve::Resolution;
use super::{Inputs, OutFile};
use crate::certs::{self, CertError, Credential, Mint};
use crate::problem::Severity;
use crate::resources::Kind;
use crate::validate::{InputBundle, SERVICE_CA};
use std::collections::{BTreeMap, BTreeSet};

pub const LOCAL_CA: &str = "skupper-local-ca";
pub const LOCAL_SERVER: &str = "skupper-local-server";
pub const LOCAL_CLIENT: &str = "skupper-local-client";
const BUNDLE_FILES: [&str; 3] = ["ca.crt", "tls.crt", "tls.key"];

/// Which files an sslProfile names (the key goes with the certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub ca: bool,
    pub cert: bool,
    /// Raised by one each time the profile's files change, so the router
    /// loads them for new connections while existing ones stay up
    /// (router.md 4); 0 is not written.
    pub ordinal: u64,
}

pub struct Creds {
    pub files: BTreeMap<String, OutFile>,
    pub profiles: BTreeMap<String, Profile>,
    /// Resources whose credentials cannot be provided, with why.
    pub unusable: Vec<((Kind, String), String)>,
}

fn mode_of(file: &str) -> u32 {
    if file.ends_with(".key") {
        0o600
    } else {
        0o644
    }
}

struct Builder<'a, 'i> {
    inputs: &'a Inputs<'i>,
    mint: &'a mut dyn Mint,
    files: BTreeMap<String, OutFile>,
}

impl Builder<'_, '_> {
    fn put(&mut self, dir: &str, file: &str, bytes: Vec<u8>) {
        self.files.insert(
            format!("{dir}/{file}"),
            OutFile::bytes(bytes, mode_of(file)),
        );
    }

    fn found(&self, dir: &str) -> Option<Credential> {
        let read = |f: &str| {
            self.inputs
                .runtime
                .get(&format!("{dir}/{f}"))
                .and_then(|b| String::from_utf8(b.clone()).ok())
        };
        Some(Credential {
            cert_pem: read("tls.crt")?,
            key_pem: read("tls.key")?,
        })
    }

    fn write(&mut self, dir: &str, cred: &Credential, ca: &Credential) {
        self.put(dir, "tls.crt", cred.cert_pem.clone().into_bytes());
        self.put(dir, "tls.key", cred.key_pem.clone().into_bytes());
        self.put(dir, "ca.crt", ca.cert_pem.clone().into_bytes());
    }

    fn ca(&mut self, name: &str) -> Result<Credential, CertError> {
        let dir = format!("runtime/issuers/{name}");
        let now = self.inputs.now;
        let cred = match self.found(&dir) {
            Some(c) if !certs::needs_reissue(&c, None, None, now) => c,
            _ => self.mint.issue_ca(name, now)?,
        };
        self.write(&dir, &cred.clone(), &cred);
        Ok(cred)
    }

    fn leaf(&mut self, name: &str, issuer: &Credential, sans: &[String]) -> Result<(), CertError> {
        let dir = format!("runtime/certs/{name}");
        let now = self.inputs.now;
        let cred = match self.found(&dir) {
            Some(c) if !certs::needs_reissue(&c, Some(issuer), Some(sans), now) => c,
            _ => self.mint.issue_leaf(issuer, name, sans, now)?,
        };
        self.write(&dir, &cred, issuer);
        Ok(())
    }

    /// Copies the wanted files of a user bundle to `runtime/certs/<dir>/`
    /// when the bundle is usable now, else keeps the copy made when it last
    /// was. Returns which files the profile can name, or `None`.
    fn bundle(
        &mut self,
        cred: &str,
        bundle: &InputBundle,
        dir: &str,
        want: &[&str],
    ) -> Option<Profile> {
        let present: Vec<&str> = want
            .iter()
            .copied()
            .filter(|f| matches!(bundle.files.get(*f), Some(Ok(_))))
            .collect();
        let refused = bundle.files.values().any(|r| r.is_err());
        let pem_ok = !certs::check_bundle(&bundle.bundle_files(cred), self.inputs.now, None)
            .iter()
            .any(|f| f.severity == Severity::Error);
        let target = format!("runtime/certs/{dir}");
        let source: Vec<(String, Vec<u8>)> = if !refused && pem_ok && !present.is_empty() {
            present
                .iter()
                .filter_map(|f| match bundle.files.get(*f) {
                    Some(Ok(fb)) => Some((f.to_string(), fb.bytes.clone())),
                    _ => None,
                })
                .collect()
        } else {
            want.iter()
                .filter_map(|f| {
                    self.inputs
                        .runtime
                        .get(&format!("{target}/{f}"))
                        .map(|b| (f.to_string(), b.clone()))
                })
                .collect()
        };
        let has = |f: &str| source.iter().any(|(n, _)| n == f);
        let profile = Profile {
            ca: has("ca.crt"),
            cert: has("tls.crt") && has("tls.key"),
            ordinal: 0,
        };
        let complete =
            want.iter().all(|f| *f == "ca.crt" || has(f)) && (profile.ca || profile.cert);
        if !complete {
            return None;
        }
        for (f, bytes) in source {
            self.put(&target, &f, bytes);
        }
        Some(profile)
    }
}

/// SANs of a generated listener certificate for `host`.
fn sans_for(host: &str, hostname: &str) -> Vec<String> {
    if host == "0.0.0.0" || host == "::" {
        let mut v: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
        if crate::names::is_dns_name(hostname) {
            v.push(hostname.to_string());
        }
        v
    } else {
        vec![host.to_string()]
    }
}

pub fn ensure(inputs: &Inputs, res: &Resolution, mint: &mut dyn Mint) -> Result<Creds, CertError> {
    let mut b = Builder {
        inputs,
        mint,
        files: BTreeMap::new(),
    };
    let mut profiles = BTreeMap::new();
    let mut unusable = Vec::new();

    let local_ca = b.ca(LOCAL_CA)?;
    let local_sans = ["127.0.0.1", "localhost"].map(String::from);
    b.leaf(LOCAL_SERVER, &local_ca, &local_sans)?;
    b.leaf(LOCAL_CLIENT, &local_ca, &local_sans)?;
    profiles.insert(
        LOCAL_SERVER.to_string(),
        Profile {
            ca: true,
            cert: true,
            ordinal: 0,
        },
    );

    let mut generated: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &res.entries {
        let key = || (e.kind, e.name.clone());
        match e.serving.as_ref().map(|(c, _)| c) {
            Some(Config::Listener(l)) => {
                let Some(cred) = &l.tls_credentials else {
                    continue;
                };
                // A bundle that cannot be read is one with no usable file:
                // the copy made when it last was serves, or nothing does.
                // Never a generated certificate in its place.
                let unknown = InputBundle::default();
                let bundle = match inputs.certs.get(cred) {
                    Ok(Some(bundle)) => Some(bundle),
                    Ok(None) => None,
                    Err(_) => Some(&unknown),
                };
                match bundle {
                    Some(bundle) => match b.bundle(cred, bundle, cred, &BUNDLE_FILES) {
                        Some(p) => {
                            profiles.insert(cred.clone(), p);
                        }
                        None => unusable.push((
                            key(),
                            format!("input/certs/{cred}/ is not usable and no earlier copy exists"),
                        )),
                    },
                    None => generated
                        .entry(cred.clone())
                        .or_default()
                        .extend(sans_for(&l.host, inputs.hostname)),
                }
            }
            Some(Config::Connector(c)) => {
                let Some(tls) = &c.tls else { continue };
                let cred = &tls.credentials;
                let (dir, want): (String, &[&str]) = if tls.use_client_cert {
                    (cred.clone(), &BUNDLE_FILES)
                } else {
                    (format!("{cred}-profile"), &["ca.crt"])
                };
                let unknown = InputBundle::default();
                let profile = match inputs.certs.get(cred) {
                    Ok(Some(bundle)) => b.bundle(cred, bundle, &dir, want),
                    Ok(None) => None,
                    Err(_) => b.bundle(cred, &unknown, &dir, want),
                };
                match profile {
                    Some(p) if p.ca => {
                        profiles.insert(dir, p);
                    }
                    _ => unusable.push((
                        key(),
                        format!("input/certs/{cred}/ is not usable and no earlier copy exists"),
                    )),
                }
            }
            _ => {}
        }
    }
    if !generated.is_empty() {
        let service_ca = b.ca(SERVICE_CA)?;
        for (cred, sans) in generated {
            let sans: Vec<String> = sans.into_iter().collect();
            b.leaf(&cred, &service_ca, &sans)?;
            profiles.insert(
                cred,
                Profile {
                    ca: false,
                    cert: true,
                    ordinal: 0,
                },
            );
        }
    }
    for (name, profile) in &mut profiles {
        profile.ordinal = ordinal(inputs, &b.files, name);
    }
    Ok(Creds {
        files: b.files,
        profiles,
        unusable,
    })
}

/// The ordinal profile `name` gets this pass: the last one written, plus
/// one when its files in `runtime/certs/<name>/` are about to change (a
/// rotated bundle, a re-issued certificate). A profile seen for the first
/// time keeps 0: the router loads its files when it is created. One the
/// last config had counts as existing even when its files went missing:
/// the router still serves what it loaded, and the files written now are
/// new to it.
fn ordinal(inputs: &Inputs, files: &BTreeMap<String, OutFile>, name: &str) -> u64 {
    let known = inputs.prior.ordinals.get(name).copied();
    let last = known.unwrap_or(0);
    let dir = format!("runtime/certs/{name}/");
    let mut existed = known.is_some();
    let mut changed = false;
    for (path, file) in files
        .range(dir.clone()..)
        .take_while(|(p, _)| p.starts_with(&dir))
    {
        let before = inputs.runtime.get(path);
        existed |= before.is_some();
        changed |= file.differs_from(before);
    }
    // A file that went away (a bundle that lost its ca.crt) is a change too.
    let gone = inputs
        .runtime
        .range(dir.clone()..)
        .take_while(|(p, _)| p.starts_with(&dir))
        .any(|(p, _)| !files.contains_key(p));
    if existed && (changed || gone) {
        last + 1
    } else {
        last
    }
}
