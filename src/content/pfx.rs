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
use super::pfx_limits;

const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// The contents of a PFX: PKCS#8 DER keys and DER certificates, each list in bag order.
pub(crate) struct Contents {
    pub keys: Vec<Vec<u8>>,
    pub certs: Vec<Vec<u8>>,
}

/// Opens a PFX with the empty password Key Vault exports use: first as `00 00` (OpenSSL's empty
/// password), then as the zero-length one, as Go does.
/// Every PFX is first checked against the process-wide [`pfx_limits`] (before any key
/// derivation), so neither parser below runs unbounded work.
pub(crate) fn open(pfx: &[u8]) -> Result<Contents, ContentError> {
    pfx_limits::check(pfx, &pfx_limits::limits())?;
    let (keys, certs) = match Pkcs12Archive::from_pkcs12(pfx, "") {
        Ok(archive) => (
            archive
                .keys
                .iter()
                .map(|bag| bag.key.as_der().to_vec())
                .collect(),
            archive
                .certs
                .iter()
                .map(|bag| bag.cert.as_der().to_vec())
                .collect(),
        ),
        Err(P12Error::MacError(_)) => nil_password::open(pfx)?.ok_or_else(integrity_error)?,
        Err(err) => return Err(ContentError(format!("failed to decode PFX: {err}"))),
    };
    let keys = keys
        .iter()
        .map(|key| go_pkcs8(key))
        .collect::<Result<_, _>>()?;
    Ok(Contents { keys, certs })
}

fn integrity_error() -> ContentError {
    ContentError(
        "failed to decode PFX: integrity check failed (the PFX is corrupt or not protected by the empty \
         password Key Vault uses)"
            .into(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::pem;

    fn key_der(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/content/{name}.key",
            env!("CARGO_MANIFEST_DIR")
        );
        pem::decode_all(&std::fs::read(&path).unwrap())
            .remove(0)
            .der
    }

    #[test]
    fn rsa_pkcs8_is_unchanged_when_already_canonical() {
        let der = key_der("leaf");
        assert_eq!(go_pkcs8(&der).unwrap(), der);
    }

    #[test]
    fn ec_pkcs8_is_go_style_and_drops_sec1_parameters() {
        for (name, curve) in [
            ("inter", Curve::P384),
            ("root", Curve::P256),
            ("jwk-p521", Curve::P521),
        ] {
            // OpenSSL 3 already writes the Go layout: no [0] parameters, with [1] publicKey.
            let openssl = key_der(name);
            assert_eq!(go_pkcs8(&openssl).unwrap(), openssl, "{name}");

            // The same key with [0] parameters and without the public key comes out the same.
            let info = PrivateKeyInfoRef::from_der(&openssl).unwrap();
            let ec = sec1::EcPrivateKey::from_der(info.private_key.as_bytes()).unwrap();
            assert_eq!(ec.private_key.len(), curve.field_len(), "{name}");
            let with_params = sec1::EcPrivateKey {
                private_key: ec.private_key,
                parameters: Some(sec1::EcParameters::NamedCurve(curve.oid())),
                public_key: None,
            };
            let curve_oid = curve.oid();
            let algorithm = AlgorithmIdentifierRef {
                oid: EC_PUBLIC_KEY_OID,
                parameters: Some(AnyRef::from(&curve_oid)),
            };
            let input = wrap(algorithm, &with_params.to_der().unwrap()).unwrap();
            assert_ne!(input, openssl);
            assert_eq!(go_pkcs8(&input).unwrap(), openssl, "{name}");
        }
    }

    #[test]
    fn other_key_algorithms_are_refused_without_key_bytes() {
        let err = go_pkcs8(&key_der("ed25519")).unwrap_err().0;
        assert_eq!(
            err,
            "unsupported private key algorithm 1.3.101.112 in the PFX"
        );
        let err = go_pkcs8(b"\x30\x03\x02\x01\x00").unwrap_err().0;
        assert_eq!(err, "failed to parse the PKCS#8 private key in the PFX");
    }
}
