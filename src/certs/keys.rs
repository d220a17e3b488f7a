//! Private keys: decoding the three accepted PEM formats into PKCS#8, the
//! public key each holds, and whether that is a certificate's public key.
//!
//! PKCS#1 and SEC1 keys are wrapped into PKCS#8 (RFC 5208) so ring and rcgen,
//! which with the ring provider read PKCS#8 only, can load user issuers in
//! any format. The DER walked here is a few fixed structures, read with
//! asn1-rs' generic TLV parser; nothing is trusted beyond "these bytes are
//! the public key": EC keys on P-256/P-384 and Ed25519 keys are loaded into
//! ring, which checks that the public key belongs to the private key.

use ring::signature::{self, KeyPair as _};
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::public_key::PublicKey as X509PublicKey;

use super::pem::{private_key_block, KeyFormat};

/// A decoded private key.
pub(crate) struct PrivateKey {
    /// The key as a PKCS#8 document.
    pub(crate) pkcs8: Vec<u8>,
    pub(crate) public: PublicKey,
}

/// A public key in a form that compares equal exactly when two keys are the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Big-endian integers without leading zero bytes.
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    /// `curve` is the named curve's OID content bytes when stated.
    Ec {
        curve: Option<Vec<u8>>,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
    /// An algorithm these checks do not look into (Ed448, DSA, ...): its OID
    /// content bytes.
    Other(Vec<u8>),
}

/// The one unencrypted private key of a PEM file, or `None` when there is
/// not exactly one, or it does not decode.
pub(crate) fn decode_private_key(pem: &[u8]) -> Option<PrivateKey> {
    let (format, der) = private_key_block(pem)?;
    let pkcs8 = match format {
        KeyFormat::Pkcs8 => der,
        KeyFormat::Pkcs1 => {
            // Checked here because the PKCS#8 path only unwraps it.
            rsa_public(&der)?;
            wrap_pkcs8(OID_PKCS1_RSAENCRYPTION.as_bytes(), &[0x05, 0x00], &der)
        }
        KeyFormat::Sec1 => {
            // Without the curve in the key there is nothing to wrap it with.
            let curve = parse_sec1(&der)?.curve?;
            wrap_pkcs8(
                OID_KEY_TYPE_EC_PUBLIC_KEY.as_bytes(),
                &tlv(0x06, &curve),
                &der,
            )
        }
    };
    let public = pkcs8_public(&pkcs8)?;
    Some(PrivateKey { pkcs8, public })
}

/// The public key of a certificate, or `None` when its key info is malformed.
pub(crate) fn certificate_public_key(cert: &X509Certificate<'_>) -> Option<PublicKey> {
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.as_bytes();
    let data = spki.subject_public_key.data.as_ref();
    if algorithm == OID_PKCS1_RSAENCRYPTION.as_bytes() {
        match spki.parsed() {
            Ok(X509PublicKey::RSA(rsa)) => Some(PublicKey::Rsa {
                modulus: unsigned(rsa.modulus),
                exponent: unsigned(rsa.exponent),
            }),
            _ => None,
        }
    } else if algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY.as_bytes() {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| oid.as_bytes().to_vec());
        Some(PublicKey::Ec {
            curve,
            point: data.to_vec(),
        })
    } else if algorithm == OID_SIG_ED25519.as_bytes() {
        Some(PublicKey::Ed25519(data.to_vec()))
    } else {
        Some(PublicKey::Other(algorithm.to_vec()))
    }
}

/// Whether a private key's public half is the certificate's public key;
/// `None` when the algorithm is one these checks cannot compare.
pub(crate) fn key_matches(key: &PublicKey, cert: &PublicKey) -> Option<bool> {
    match (key, cert) {
        (PublicKey::Other(a), PublicKey::Other(b)) if a == b => None,
        (
            PublicKey::Ec {
                curve: c1,
                point: p1,
            },
            PublicKey::Ec {
                curve: c2,
                point: p2,
            },
        ) => Some(p1 == p2 && (c1.is_none() || c2.is_none() || c1 == c2)),
        (a, b) => Some(a == b),
    }
}

/// The public key held by a PKCS#8 document, checked for consistency by
/// ring where ring knows the algorithm.
fn pkcs8_public(pkcs8: &[u8]) -> Option<PublicKey> {
    let items = sequence(pkcs8)?;
    let [version, algorithm, key, ..] = items.as_slice() else {
        return None;
    };
    if version.tag() != Tag::Integer || key.tag() != Tag::OctetString {
        return None;
    }
    let alg_items = universal(algorithm, Tag::Sequence).and_then(children)?;
    let oid = universal(alg_items.first()?, Tag::Oid)?;
    let params = alg_items.get(1);
    if oid == OID_PKCS1_RSAENCRYPTION.as_bytes() {
        rsa_public(key.data)
    } else if oid == OID_KEY_TYPE_EC_PUBLIC_KEY.as_bytes() {
        let sec1 = parse_sec1(key.data)?;
        let curve = params
            .and_then(|p| universal(p, Tag::Oid))
            .map(<[u8]>::to_vec)
            .or(sec1.curve);
        let ring_alg = match curve.as_deref() {
            Some(c) if c == OID_EC_P256.as_bytes() => {
                Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
            }
            Some(c) if c == OID_NIST_EC_P384.as_bytes() => {
                Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING)
            }
            _ => None,
        };
        let point = match ring_alg {
            // ring needs a random source to set up the signer's nonces; the
            // key pair is only inspected here, so no randomness leaks out.
            Some(alg) => {
                let rng = ring::rand::SystemRandom::new();
                let pair = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).ok()?;
                pair.public_key().as_ref().to_vec()
            }
            None => sec1.point?,
        };
        Some(PublicKey::Ec { curve, point })
    } else if oid == OID_SIG_ED25519.as_bytes() {
        let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).ok()?;
        Some(PublicKey::Ed25519(pair.public_key().as_ref().to_vec()))
    } else {
        Some(PublicKey::Other(oid.to_vec()))
    }
}

/// Modulus and public exponent of a PKCS#1 RSAPrivateKey (RFC 8017 A.1.2).
fn rsa_public(pkcs1: &[u8]) -> Option<PublicKey> {
    let items = sequence(pkcs1)?;
    // version, n, e, d, p, q, dP, dQ, qInv: fewer is a public key or junk.
    if items.len() < 9 || items.iter().any(|item| item.tag() != Tag::Integer) {
        return None;
    }
    let modulus = unsigned(items.get(1)?.data);
    let exponent = unsigned(items.get(2)?.data);
    if modulus.is_empty() || exponent.is_empty() {
        return None;
    }
    Some(PublicKey::Rsa { modulus, exponent })
}

struct Sec1 {
    curve: Option<Vec<u8>>,
    point: Option<Vec<u8>>,
}

/// An ECPrivateKey (RFC 5915): version 1, the private scalar, then the
/// optional `[0]` curve and `[1]` public key.
fn parse_sec1(der: &[u8]) -> Option<Sec1> {
    let items = sequence(der)?;
    let [version, scalar, optional @ ..] = items.as_slice() else {
        return None;
    };
    if universal(version, Tag::Integer)? != [1] || universal(scalar, Tag::OctetString)?.is_empty() {
        return None;
    }
    let mut sec1 = Sec1 {
        curve: None,
        point: None,
    };
    for item in optional {
        if item.class() != Class::ContextSpecific {
            return None;
        }
        let inner = children(item.data)?;
        let [inner] = inner.as_slice() else {
            return None;
        };
        match item.tag().0 {
            0 => sec1.curve = Some(universal(inner, Tag::Oid)?.to_vec()),
            1 => {
                // A BIT STRING: one byte of unused bits (0 for a point), then the point.
                let bits = universal(inner, Tag::BitString)?;
                let (&0, point) = bits.split_first()? else {
                    return None;
                };
                sec1.point = Some(point.to_vec());
            }
            _ => return None,
        }
    }
    Some(sec1)
}

/// PKCS#8 PrivateKeyInfo, version 0, around a private key of another format.
fn wrap_pkcs8(algorithm_oid: &[u8], params_tlv: &[u8], key: &[u8]) -> Vec<u8> {
    let algorithm = tlv(
        0x30,
        &[tlv(0x06, algorithm_oid), params_tlv.to_vec()].concat(),
    );
    let body = [tlv(0x02, &[0]), algorithm, tlv(0x04, key)].concat();
    tlv(0x30, &body)
}

/// One DER tag-length-value with a one-byte tag.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(content.len()) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            let len = content.len().to_be_bytes();
            let first = len.iter().position(|b| *b != 0).unwrap_or(len.len());
            let significant = len.get(first..).unwrap_or_default();
            // At most size_of::<usize>() bytes, so the count fits in 7 bits.
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
    }
    out.extend_from_slice(content);
    out
}

/// The items of a DER SEQUENCE that fills `der` exactly.
fn sequence(der: &[u8]) -> Option<Vec<Any<'_>>> {
    let (rest, any) = Any::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    universal(&any, Tag::Sequence).and_then(children)
}

/// The TLVs that fill `data` exactly.
fn children(mut data: &[u8]) -> Option<Vec<Any<'_>>> {
    let mut items = Vec::new();
    while !data.is_empty() {
        let (rest, any) = Any::from_der(data).ok()?;
        items.push(any);
        data = rest;
    }
    Some(items)
}

/// The content of a universal-class TLV with the given tag.
fn universal<'a>(any: &Any<'a>, tag: Tag) -> Option<&'a [u8]> {
    (any.class() == Class::Universal && any.tag() == tag).then_some(any.data)
}

/// A DER INTEGER's content as an unsigned big-endian number without
/// leading zero bytes, so encodings with and without a sign byte compare equal.
fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default().to_vec()
}
