//! PFX (PKCS#12, empty password) → private keys and certificates, in bag order, with each key
//! re-marshalled as Go's `x509.MarshalPKCS8PrivateKey` does: RSA as PKCS#8 (`rsaEncryption` +
//! NULL) over PKCS#1; EC as PKCS#8 (`id-ecPublicKey` + namedCurve) over a SEC1 `ECPrivateKey`
//! that carries the scalar padded to the curve size and the `[1] publicKey`, but no `[0]
//! parameters`. Legacy (SHA-1 MAC, 3DES, RC2-40) and modern (PBES2/AES, SHA-256 MAC) PFX open.

use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode};
use p12_keystore::Pkcs12Archive;
use p12_keystore::error::Error as P12Error;
use pkcs8::PrivateKeyInfoRef;
use spki::AlgorithmIdentifierRef;

use super::ContentError;
use super::curve::Curve;
use super::nil_password;

const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// The contents of a PFX: PKCS#8 DER keys and DER certificates, each list in bag order.
pub(crate) struct Contents {
    pub keys: Vec<Vec<u8>>,
    pub certs: Vec<Vec<u8>>,
}

/// Opens a PFX with the empty password Key Vault exports use.
/// Tries `00 00` (OpenSSL's empty password) first, then the zero-length one, as Go does.
pub(crate) fn open(pfx: &[u8]) -> Result<Contents, ContentError> {
    let (keys, certs) = match Pkcs12Archive::from_pkcs12(pfx, "") {
        Ok(archive) => {
            let keys = archive
                .keys
                .iter()
                .map(|bag| bag.key.as_der().to_vec())
                .collect();
            (
                keys,
                archive
                    .certs
                    .into_iter()
                    .map(|bag| bag.cert.as_der().to_vec())
                    .collect(),
            )
        }
        Err(P12Error::MacError(_)) => {
            nil_password::open(pfx)?.ok_or_else(|| open_error(P12Error::InvalidData))?
        }
        Err(err) => return Err(open_error(err)),
    };
    let keys = keys
        .iter()
        .map(|key| go_pkcs8(key))
        .collect::<Result<_, _>>()?;
    Ok(Contents { keys, certs })
}

fn open_error(err: P12Error) -> ContentError {
    ContentError(match err {
        P12Error::MacError(_) | P12Error::InvalidData => {
            "failed to decode PFX: integrity check failed (the PFX is corrupt or not protected \
                                  by the empty password Key Vault uses)"
                .into()
        }
        other => format!("failed to decode PFX: {other}"),
    })
}

/// A PKCS#8 key re-encoded exactly as Go marshals it.
fn go_pkcs8(der: &[u8]) -> Result<Vec<u8>, ContentError> {
    let info = PrivateKeyInfoRef::from_der(der).map_err(|_| bad_key("PKCS#8"))?;
    let key = info.private_key.as_bytes();
    match info.algorithm.oid {
        pkcs1::ALGORITHM_OID => rsa_pkcs8(key),
        EC_PUBLIC_KEY_OID => {
            let named = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            ec_pkcs8(named, key)
        }
        other => Err(ContentError(format!(
            "unsupported private key algorithm {other} in the PFX"
        ))),
    }
}

fn rsa_pkcs8(pkcs1_der: &[u8]) -> Result<Vec<u8>, ContentError> {
    let key = pkcs1::RsaPrivateKeyRef::from_der(pkcs1_der).map_err(|_| bad_key("RSA"))?;
    let canonical = key.to_der().map_err(|_| bad_key("RSA"))?;
    wrap(
        AlgorithmIdentifierRef {
            oid: pkcs1::ALGORITHM_OID,
            parameters: Some(AnyRef::NULL),
        },
        &canonical,
    )
}

/// `named`: the curve from the PKCS#8 algorithm parameters, which win over the SEC1 ones.
fn ec_pkcs8(named: Option<ObjectIdentifier>, sec1_der: &[u8]) -> Result<Vec<u8>, ContentError> {
    let key = sec1::EcPrivateKey::from_der(sec1_der).map_err(|_| bad_key("EC"))?;
    let oid = named
        .or_else(|| key.parameters.and_then(|p| p.named_curve()))
        .ok_or_else(|| ContentError("EC private key in the PFX names no curve".into()))?;
    let curve = Curve::from_oid(oid).ok_or_else(|| {
        ContentError(format!(
            "EC private key in the PFX uses unsupported curve {oid}"
        ))
    })?;
    let scalar = curve
        .left_pad(key.private_key)
        .ok_or_else(|| bad_key("EC"))?;
    let point = curve.public_point(&scalar)?;
    let go_sec1 = sec1::EcPrivateKey {
        private_key: &scalar,
        parameters: None,
        public_key: Some(&point),
    }
    .to_der()
    .map_err(|_| bad_key("EC"))?;
    let curve_oid = curve.oid();
    wrap(
        AlgorithmIdentifierRef {
            oid: EC_PUBLIC_KEY_OID,
            parameters: Some(AnyRef::from(&curve_oid)),
        },
        &go_sec1,
    )
}

/// PKCS#8 v1 (no attributes, no public key) around `private_key`.
fn wrap(
    algorithm: AlgorithmIdentifierRef<'_>,
    private_key: &[u8],
) -> Result<Vec<u8>, ContentError> {
    let private_key = OctetStringRef::new(private_key).map_err(|_| bad_key("PKCS#8"))?;
    PrivateKeyInfoRef {
        algorithm,
        private_key,
        public_key: None,
    }
    .to_der()
    .map_err(|_| bad_key("PKCS#8"))
}

/// Never carries parser details: they could quote key bytes.
fn bad_key(kind: &str) -> ContentError {
    ContentError(format!("failed to parse the {kind} private key in the PFX"))
}
