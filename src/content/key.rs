//! JWK (public part) → PKIX `PUBLIC KEY` PEM, as Go's `x509.MarshalPKIXPublicKey` writes it:
//! RSA as `rsaEncryption` + NULL over PKCS#1 `RSAPublicKey`, EC as `id-ecPublicKey` + namedCurve
//! over the uncompressed point. Big-endian fields are taken as unsigned integers (leading zeros
//! do not matter), EC coordinates are left-padded to the field size.

use der::asn1::{AnyRef, BitStringRef, UintRef};
use der::{Encode, EncodePem};
use spki::der::pem::LineEnding;

use super::curve::Curve;
use super::{ContentError, JsonWebKey};

pub(crate) fn public_key_pem(jwk: &JsonWebKey) -> Result<Vec<u8>, ContentError> {
    let kty = jwk.kty.as_deref().ok_or_else(|| missing("kty"))?;
    let pem = match kty {
        "RSA" | "RSA-HSM" => rsa_pem(field(&jwk.n, "n")?, field(&jwk.e, "e")?)?,
        "EC" | "EC-HSM" => {
            let curve = Curve::from_jwk(jwk.crv.as_deref().ok_or_else(|| missing("crv"))?)?;
            ec_pem(curve, field(&jwk.x, "x")?, field(&jwk.y, "y")?)?
        }
        other => {
            return Err(ContentError(format!(
                "failed to get key. key type '{other}' currently not supported"
            )));
        }
    };
    Ok(pem.into_bytes())
}

fn rsa_pem(n: &[u8], e: &[u8]) -> Result<String, ContentError> {
    let encode_err =
        |err: der::Error| ContentError(format!("cannot encode the RSA public key: {err}"));
    let pkcs1 = pkcs1::RsaPublicKey {
        modulus: UintRef::new(n).map_err(encode_err)?,
        public_exponent: UintRef::new(e).map_err(encode_err)?,
    }
    .to_der()
    .map_err(encode_err)?;
    spki::SubjectPublicKeyInfoRef {
        algorithm: spki::AlgorithmIdentifierRef {
            oid: pkcs1::ALGORITHM_OID,
            parameters: Some(AnyRef::NULL),
        },
        subject_public_key: BitStringRef::from_bytes(&pkcs1).map_err(encode_err)?,
    }
    .to_pem(LineEnding::LF)
    .map_err(encode_err)
}

fn ec_pem(curve: Curve, x: &[u8], y: &[u8]) -> Result<String, ContentError> {
    let mut point = vec![0x04];
    for (value, name) in [(x, "x"), (y, "y")] {
        let padded = curve.left_pad(value).ok_or_else(|| {
            ContentError(format!(
                "invalid elliptic curve public key: '{name}' is longer than {} bytes",
                curve.field_len()
            ))
        })?;
        point.extend(padded);
    }
    curve.public_key_pem(&point)
}

fn field<'a>(value: &'a Option<Vec<u8>>, name: &str) -> Result<&'a [u8], ContentError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing(name))
}

fn missing(name: &str) -> ContentError {
    ContentError(format!("key has no '{name}'"))
}
