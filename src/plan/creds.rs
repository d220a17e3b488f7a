//! The TLS files a site's router reads (resources.md 9): the management
//! credentials, copies of user bundles, and generated listener
//! certificates. Generated material is read back from `runtime/` and only
//! issued again when missing, unusable, within the renewal window or no
//! longer matching (SANs, issuer). A user issuer (`input/issuers/<ca>/`)
//! signs in place of the generated CA of that name.

use super::entry::Config;
use super::resolve::Resolution;
use super::{Expiring, Inputs, OutFile};
use crate::certs::{self, CertError, Credential, Mint};
use crate::problem::Severity;
use crate::resources::Kind;
use crate::validate::{self, InputBundle, SERVICE_CA};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::model::{CertInUse, LinkAccess, Profile, LOCAL_CA, LOCAL_CLIENT, LOCAL_SERVER};
const BUNDLE_FILES: [&str; 3] = ["ca.crt", "tls.crt", "tls.key"];

pub struct Creds {
    pub files: BTreeMap<String, OutFile>,
    pub profiles: BTreeMap<String, Profile>,
    /// The certificate each profile serves, by profile name.
    pub certificates: BTreeMap<String, CertInUse>,
    /// Resources whose credentials cannot be provided, with why.
    pub unusable: Vec<((Kind, String), String)>,
    /// Link accesses whose credentials cannot be issued (a user issuer
    /// that cannot sign), by name, with why.
    pub site_unusable: Vec<(String, String)>,
}

/// The sslProfile a resource's TLS goes through, if it uses TLS: a
/// Listener's credentials, a Connector's (`<cred>-profile` when it only
/// verifies the server, as `render::skrouterd` names it).
pub fn profile_of(config: &Config) -> Option<String> {
    match config {
        Config::Listener(l) => l.tls_credentials.clone(),
        Config::Connector(c) => c.tls.as_ref().map(|t| {
            if t.use_client_cert {
                t.credentials.clone()
            } else {
                format!("{}-profile", t.credentials)
            }
        }),
        Config::Link(l) => Some(format!("{}-profile", l.tls_credentials)),
        Config::RouterAccess(ra) => Some(ra.tls_credentials.clone()),
        Config::Site(_) => None,
    }
}

/// The client credential a link file carries for `access`, with the CA
/// that verifies the server: read from the files this pass produced.
pub fn link_client(
    files: &BTreeMap<String, OutFile>,
    cred: &str,
) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let get = |f: &str| match &files.get(&format!("runtime/certs/client-{cred}/{f}"))?.body {
        super::Body::Bytes(b) => Some(b.clone()),
        super::Body::Record(..) => None,
    };
    Some((get("ca.crt")?, get("tls.crt")?, get("tls.key")?))
}

/// A CA that generated leaves are issued from.
struct Issuer {
    /// Its certificate (the first block of `cert_pem`) and key.
    cred: Credential,
    /// What a leaf's `ca.crt` holds: the CA clients should trust.
    trust: String,
    /// What follows the leaf in its `tls.crt`, so clients that trust
    /// `trust` can build the path: empty, or the user issuer's own
    /// certificates when it is not itself the trust anchor (an
    /// intermediate with the root in `ca.crt`).
    chain: String,
    /// `input/issuers/<name>` for a user issuer, `None` for a generated one.
    user: Option<String>,
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

    /// The CA `name`: the user's from `input/issuers/<name>/` when there
    /// is one (`Ok(Err(why))` when it fails its checks), else the generated
    /// one in `runtime/issuers/<name>/`, issued when missing or within the
    /// renewal window. skupperd's management CA is always its own.
    fn ca(&mut self, name: &str) -> Result<Result<Issuer, String>, CertError> {
        if name != LOCAL_CA {
            match self.inputs.issuers.get(name) {
                Ok(Some(bundle)) => return Ok(user_issuer(self.inputs, name, bundle)),
                Ok(None) => {}
                Err(why) => return Ok(Err(why)),
            }
        }
        self.generated_ca(name).map(Ok)
    }

    /// The generated CA `name` of `runtime/issuers/<name>/`.
    fn generated_ca(&mut self, name: &str) -> Result<Issuer, CertError> {
        let dir = format!("runtime/issuers/{name}");
        let now = self.inputs.now;
        let window = self.inputs.renew_before;
        let cred = match self.found(&dir) {
            Some(c) if !certs::needs_reissue(&c, None, None, now, window) => c,
            _ => self.mint.issue_ca(name, now)?,
        };
        self.write(&dir, &cred.clone(), &cred);
        Ok(Issuer {
            trust: cred.cert_pem.clone(),
            cred,
            chain: String::new(),
            user: None,
        })
    }

    fn leaf(&mut self, name: &str, issuer: &Issuer, sans: &[String]) -> Result<(), CertError> {
        let dir = format!("runtime/certs/{name}");
        let now = self.inputs.now;
        let window = self.inputs.renew_before;
        let cred = match self.found(&dir) {
            Some(c) if !certs::needs_reissue(&c, Some(&issuer.cred), Some(sans), now, window) => c,
            _ => self.mint.issue_leaf(&issuer.cred, name, sans, now)?,
        };
        // Read back, tls.crt holds the chain too: the leaf is its first block.
        let mut crt = certs::first_certificate_pem(&cred.cert_pem).to_string();
        crt.push_str(&issuer.chain);
        self.put(&dir, "tls.crt", crt.into_bytes());
        self.put(&dir, "tls.key", cred.key_pem.into_bytes());
        self.put(&dir, "ca.crt", issuer.trust.clone().into_bytes());
        Ok(())
    }

    /// Keeps the leaf of `runtime/certs/<name>/` as it is while its issuer
    /// cannot sign, if it still serves: valid now, its key matching, for
    /// these SANs. Returns whether it does.
    fn keep_leaf(&mut self, name: &str, sans: &[String]) -> bool {
        let dir = format!("runtime/certs/{name}");
        let usable = self.found(&dir).is_some_and(|c| {
            !certs::needs_reissue(&c, None, Some(sans), self.inputs.now, time::Duration::ZERO)
        });
        if !usable {
            return false;
        }
        for file in BUNDLE_FILES {
            if let Some(bytes) = self.inputs.runtime.get(&format!("{dir}/{file}")) {
                self.put(&dir, file, bytes.clone());
            }
        }
        true
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
        let pem_ok = !certs::check_bundle(
            &bundle.bundle_files(cred),
            self.inputs.now,
            None,
            self.inputs.renew_before,
        )
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

/// The user issuer `input/issuers/<name>/`, when it passes the issuer
/// checks (their problems are reported by `resolve::issuer_problems`).
fn user_issuer(inputs: &Inputs, name: &str, bundle: &InputBundle) -> Result<Issuer, String> {
    let dir = format!("input/issuers/{name}");
    let unusable = || format!("{dir}/ is not usable");
    if !validate::refusals(&dir, bundle).is_empty() {
        return Err(unusable());
    }
    let files = bundle.files_at(dir.clone());
    let failed = certs::check_issuer(&files, inputs.now, inputs.renew_before)
        .iter()
        .any(|f| f.severity == Severity::Error);
    let text = |f: &Option<certs::FileBytes>| {
        f.as_ref()
            .and_then(|f| String::from_utf8(f.bytes.clone()).ok())
    };
    let (false, Some(cert_pem), Some(key_pem)) =
        (failed, text(&files.tls_crt), text(&files.tls_key))
    else {
        return Err(unusable());
    };
    // Without a ca.crt of its own the issuer is the trust anchor and
    // clients need nothing more; with one, it is an intermediate whose
    // certificates must come with every leaf.
    let (trust, chain) = match text(&files.ca_crt) {
        Some(ca) if ca != cert_pem => (ca, cert_pem.clone()),
        _ => (cert_pem.clone(), String::new()),
    };
    Ok(Issuer {
        cred: Credential { cert_pem, key_pem },
        trust,
        chain,
        user: Some(dir),
    })
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

pub fn ensure(
    inputs: &Inputs,
    res: &Resolution,
    accesses: &[LinkAccess],
    mint: &mut dyn Mint,
) -> Result<Creds, CertError> {
    let mut b = Builder {
        inputs,
        mint,
        files: BTreeMap::new(),
    };
    let mut profiles = BTreeMap::new();
    let mut unusable = Vec::new();

    let local_ca = b.generated_ca(LOCAL_CA)?;
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

    // Link access: the server certificate linking sites verify, and the
    // client certificate the link files hand them, from the site CA.
    let mut site_unusable = Vec::new();
    for a in accesses {
        match b.ca(&a.issuer)? {
            Ok(issuer) => {
                b.leaf(&a.cred, &issuer, &a.sans)?;
                b.leaf(
                    &format!("client-{}", a.cred),
                    &issuer,
                    std::slice::from_ref(&a.name),
                )?;
                profiles.insert(
                    a.cred.clone(),
                    Profile {
                        ca: true,
                        cert: true,
                        ordinal: 0,
                    },
                );
            }
            Err(why) => site_unusable.push((a.name.clone(), why)),
        }
    }
    let mut generated: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Who uses each generated certificate, to tell them when it cannot be made.
    let mut users: BTreeMap<String, Vec<(Kind, String)>> = BTreeMap::new();
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
                    None => {
                        generated
                            .entry(cred.clone())
                            .or_default()
                            .extend(sans_for(&l.host, inputs.hostname));
                        users.entry(cred.clone()).or_default().push(key());
                    }
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
            Some(Config::Link(l)) => {
                // A Secret first, then input/certs/ (resources.md 4); a
                // Secret or bundle that fails its checks leaves the copy
                // made when it last passed.
                let cred = &l.tls_credentials;
                let dir = format!("{cred}-profile");
                let unknown = InputBundle::default();
                let from_secret = res
                    .secrets
                    .get(cred)
                    .map(|d| validate::secret_bundle(d).unwrap_or_default());
                let profile = match (&from_secret, inputs.certs.get(cred)) {
                    (Some(bundle), _) => b.bundle(cred, bundle, &dir, &BUNDLE_FILES),
                    (None, Ok(Some(bundle))) => b.bundle(cred, bundle, &dir, &BUNDLE_FILES),
                    (None, _) => b.bundle(cred, &unknown, &dir, &BUNDLE_FILES),
                };
                match profile {
                    Some(p) if p.ca && p.cert => {
                        profiles.insert(dir, p);
                    }
                    _ => unusable.push((
                        key(),
                        format!("spec.tlsCredentials \"{cred}\" is not usable and no earlier copy exists"),
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
            // A user issuer that cannot sign is the user's to fix: the
            // listeners it serves keep their certificate meanwhile, and
            // only those without one fail. A generated CA that cannot sign
            // is skupperd's failure and fails the site.
            let made = match &service_ca {
                Ok(issuer) => match (b.leaf(&cred, issuer, &sans), &issuer.user) {
                    (Ok(()), _) => Ok(()),
                    (Err(e), Some(dir)) => Err(format!("{dir}/ cannot issue its certificate: {e}")),
                    (Err(e), None) => return Err(e),
                },
                Err(_) if b.keep_leaf(&cred, &sans) => Ok(()),
                Err(why) => Err(format!("{why} and no earlier certificate exists")),
            };
            match made {
                Ok(()) => {
                    profiles.insert(
                        cred,
                        Profile {
                            ca: false,
                            cert: true,
                            ordinal: 0,
                        },
                    );
                }
                Err(why) => {
                    for user in users.remove(&cred).unwrap_or_default() {
                        unusable.push((user, why.clone()));
                    }
                }
            }
        }
    }
    for (name, profile) in &mut profiles {
        profile.ordinal = ordinal(inputs, &b.files, name);
    }
    let certificates = profiles
        .iter()
        .filter_map(|(name, p)| {
            let file = format!(
                "runtime/certs/{name}/{}",
                if p.cert { "tls.crt" } else { "ca.crt" }
            );
            let info = match &b.files.get(&file)?.body {
                super::Body::Bytes(bytes) => certs::leaf_info(bytes).ok()?,
                super::Body::Record(..) => return None,
            };
            let cert = CertInUse {
                file,
                subject: info.subject,
                serial: info.serial,
                not_after: crate::render::timestamp(info.not_after),
            };
            Some((name.clone(), cert))
        })
        .collect();
    Ok(Creds {
        files: b.files,
        profiles,
        certificates,
        unusable,
        site_unusable,
    })
}

/// The user certificates this pass's resources and issuers rely on that
/// expire within the renewal window, one per file: the leaves of the
/// bundles that resources name, and the user issuers.
pub fn expiring(inputs: &Inputs, res: &Resolution) -> Vec<Expiring> {
    let mut found = BTreeSet::new();
    let mut add = |files: certs::BundleFiles| {
        for f in certs::check_bundle(&files, inputs.now, None, inputs.renew_before) {
            if let Some(not_after) = f.not_after {
                found.insert(Expiring {
                    file: f.file,
                    not_after,
                    message: f.message,
                });
            }
        }
    };
    let named: BTreeSet<&str> = res
        .entries
        .iter()
        .filter_map(|e| e.current.as_ref().or(e.serving.as_ref().map(|(c, _)| c)))
        .filter_map(|c| match c {
            Config::Listener(l) => l.tls_credentials.as_deref(),
            Config::Connector(c) => c.tls.as_ref().map(|t| t.credentials.as_str()),
            Config::Link(l) => Some(l.tls_credentials.as_str()),
            Config::RouterAccess(_) | Config::Site(_) => None,
        })
        .collect();
    for name in named {
        if let Some(bundle) = inputs.certs.bundles.get(name) {
            add(bundle.bundle_files(name));
        }
    }
    for (name, bundle) in &inputs.issuers.bundles {
        if name != LOCAL_CA {
            add(bundle.files_at(format!("input/issuers/{name}")));
        }
    }
    found.into_iter().collect()
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
