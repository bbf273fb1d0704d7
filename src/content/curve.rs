//! The NIST curves Key Vault and Go's `crypto/x509` share (P-256, P-384, P-521): names, OIDs,
//! sizes, and the two point operations the rest of the module needs.

use der::asn1::ObjectIdentifier;
use p256::elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use p256::elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize, PublicKey, SecretKey};
use pkcs8::AssociatedOid;
use spki::EncodePublicKey;
use spki::der::pem::LineEnding;

use super::ContentError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    /// From a JWK `crv`.
    pub(crate) fn from_jwk(crv: &str) -> Result<Self, ContentError> {
        match crv {
            "P-256" => Ok(Self::P256),
            "P-384" => Ok(Self::P384),
            "P-521" => Ok(Self::P521),
            other => Err(ContentError(format!("curve {other} is not supported"))),
        }
    }

    /// From a namedCurve OID.
    pub(crate) fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        [Self::P256, Self::P384, Self::P521]
            .into_iter()
            .find(|c| c.oid() == oid)
    }

    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => p256::NistP256::OID,
            Self::P384 => p384::NistP384::OID,
            Self::P521 => p521::NistP521::OID,
        }
    }

    /// Bytes of a coordinate or a private scalar.
    pub(crate) fn field_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// `value` as an unsigned big-endian integer of exactly [`Self::field_len`] bytes; `None` if
    /// it does not fit.
    pub(crate) fn left_pad(self, value: &[u8]) -> Option<Vec<u8>> {
        let significant = &value[value.iter().take_while(|&&b| b == 0).count()..];
        let mut out = vec![0; self.field_len().checked_sub(significant.len())?];
        out.extend_from_slice(significant);
        Some(out)
    }

    /// `PUBLIC KEY` PEM of an uncompressed point `04 || x || y`; fails if it is not on the curve.
    pub(crate) fn public_key_pem(self, point: &[u8]) -> Result<String, ContentError> {
        match self {
            Self::P256 => spki_pem::<p256::NistP256>(point),
            Self::P384 => spki_pem::<p384::NistP384>(point),
            Self::P521 => spki_pem::<p521::NistP521>(point),
        }
    }

    /// Uncompressed public point of a private scalar of exactly [`Self::field_len`] bytes.
    pub(crate) fn public_point(self, scalar: &[u8]) -> Result<Vec<u8>, ContentError> {
        match self {
            Self::P256 => point_of::<p256::NistP256>(scalar),
            Self::P384 => point_of::<p384::NistP384>(scalar),
            Self::P521 => point_of::<p521::NistP521>(scalar),
        }
    }
}

fn spki_pem<C>(point: &[u8]) -> Result<String, ContentError>
where
    C: AssociatedOid + CurveArithmetic,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let key = PublicKey::<C>::from_sec1_bytes(point).map_err(|_| {
        ContentError("invalid elliptic curve public key: the point is not on the curve".into())
    })?;
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|err| ContentError(format!("cannot encode the public key: {err}")))
}

fn point_of<C>(scalar: &[u8]) -> Result<Vec<u8>, ContentError>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let secret = SecretKey::<C>::from_slice(scalar)
        .map_err(|_| ContentError("invalid elliptic curve private key value".into()))?;
    Ok(secret.public_key().to_sec1_point(false).as_bytes().to_vec())
}
