//! PFX files protected by the *zero-length* password. PKCS#12 tools disagree on what the empty
//! password is: OpenSSL and p12-keystore use the BMPString terminator `00 00`, Windows (and hence
//! many Key Vault imports) uses no bytes at all. Go's `x/crypto/pkcs12` retries the MAC with the
//! zero-length form and then decrypts with it, so we do the same here for the legacy algorithms
//! that package supports: SHA-1 MAC, `pbeWithSHAAnd3-KeyTripleDES-CBC`, `pbeWithSHAAnd40BitRC2-CBC`.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use der::asn1::{ContextSpecific, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use hmac::{Hmac, KeyInit, Mac};
use pkcs12::CertBag;
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs12::pfx::Pfx;
use pkcs12::safe_bag::{PrivateKeyInfo, SafeContents};
use sha1::Sha1;

use super::ContentError;

/// The zero-length password.
const NIL: &[u8] = &[];
/// Same bound as p12-keystore: a hostile PFX must not make us spin.
const MAX_ITERATIONS: i32 = 1_000_000;
const SHA1_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const DATA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");

/// PKCS#8 keys and DER certificates in bag order.
pub(crate) type Bags = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The bags of `pfx` if its SHA-1 MAC verifies with the zero-length password, else `None`.
pub(crate) fn open(pfx: &[u8]) -> Result<Option<Bags>, ContentError> {
    let pfx = Pfx::from_der(pfx).map_err(|_| corrupt())?;
    let Some(mac) = pfx.mac_data.as_ref() else {
        return Ok(None);
    };
    let signed = pfx.auth_safe.content.value();
    if mac.mac.algorithm.oid != SHA1_OID || !(1..=MAX_ITERATIONS).contains(&mac.iterations) {
        return Ok(None);
    }
    let key = derive_key::<Sha1>(
        NIL,
        mac.mac_salt.as_bytes(),
        Pkcs12KeyType::Mac,
        mac.iterations,
        20,
    );
    let mut hmac = <Hmac<Sha1> as KeyInit>::new_from_slice(&key).map_err(|_| corrupt())?;
    hmac.update(signed);
    if hmac.verify_slice(mac.mac.digest.as_bytes()).is_err() {
        return Ok(None);
    }
    let safes =
        Vec::<ContentInfo>::from_der(octets(&pfx.auth_safe)?.as_bytes()).map_err(|_| corrupt())?;
    let (mut keys, mut certs) = (Vec::new(), Vec::new());
    for safe in &safes {
        let contents = match safe.content_type {
            DATA_OID => octets(safe)?.into_bytes().into_vec(),
            ENCRYPTED_DATA_OID => {
                let data = EncryptedData::from_der(&safe.content.to_der().map_err(|_| corrupt())?)
                    .map_err(|_| corrupt())?;
                let info = data.enc_content_info;
                let encrypted = info
                    .encrypted_content
                    .as_ref()
                    .map_or(&[][..], |c| c.as_bytes());
                decrypt(&info.content_enc_alg, encrypted)?
            }
            _ => return Err(corrupt()),
        };
        read_bags(&contents, &mut keys, &mut certs)?;
    }
    Ok(Some((keys, certs)))
}

fn read_bags(
    contents: &[u8],
    keys: &mut Vec<Vec<u8>>,
    certs: &mut Vec<Vec<u8>>,
) -> Result<(), ContentError> {
    for bag in SafeContents::from_der(contents).map_err(|_| corrupt())? {
        match bag.bag_id {
            pkcs12::PKCS_12_CERT_BAG_OID => {
                let cert =
                    ContextSpecific::<CertBag>::from_der(&bag.bag_value).map_err(|_| corrupt())?;
                certs.push(cert.value.cert_value.into_bytes().into_vec());
            }
            pkcs12::PKCS_12_PKCS8_KEY_BAG_OID => {
                let shrouded = ContextSpecific::<EncryptedPrivateKeyInfo>::from_der(&bag.bag_value)
                    .map_err(|_| corrupt())?;
                keys.push(decrypt(
                    &shrouded.value.encryption_algorithm,
                    shrouded.value.encrypted_data.as_bytes(),
                )?);
            }
            pkcs12::PKCS_12_KEY_BAG_OID => {
                let plain = ContextSpecific::<PrivateKeyInfo>::from_der(&bag.bag_value)
                    .map_err(|_| corrupt())?;
                keys.push(plain.value.to_der().map_err(|_| corrupt())?);
            }
            _ => {}
        }
    }
    Ok(())
}

/// PKCS#12 PBE (SHA-1 KDF) decryption with the zero-length password.
fn decrypt(
    algorithm: &spki::AlgorithmIdentifierOwned,
    data: &[u8],
) -> Result<Vec<u8>, ContentError> {
    decrypt_with(NIL, algorithm, data)
}

/// PKCS#12 PBE (SHA-1 KDF) decryption with `password` as raw KDF bytes (`00 00` is the
/// BMPString empty password, `[]` the zero-length one). Callers bound the iterations first.
pub(crate) fn decrypt_with(
    password: &[u8],
    algorithm: &spki::AlgorithmIdentifierOwned,
    data: &[u8],
) -> Result<Vec<u8>, ContentError> {
    let params = algorithm.parameters.as_ref().ok_or_else(corrupt)?;
    let params = Pkcs12PbeParams::from_der(&params.to_der().map_err(|_| corrupt())?)
        .map_err(|_| corrupt())?;
    if !(1..=MAX_ITERATIONS).contains(&params.iterations) {
        return Err(corrupt());
    }
    let derive = |kind, len| {
        derive_key::<Sha1>(
            password,
            params.salt.as_bytes(),
            kind,
            params.iterations,
            len,
        )
    };
    let iv = derive(Pkcs12KeyType::Iv, 8);
    let plain = match algorithm.oid {
        pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC => {
            cbc::Decryptor::<des::TdesEde3>::new_from_slices(
                &derive(Pkcs12KeyType::EncryptionKey, 24),
                &iv,
            )
            .map_err(|_| corrupt())?
            .decrypt_padded_vec::<Pkcs7>(data)
        }
        pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC => {
            cbc::Decryptor::<rc2::Rc2>::new_from_slices(
                &derive(Pkcs12KeyType::EncryptionKey, 5),
                &iv,
            )
            .map_err(|_| corrupt())?
            .decrypt_padded_vec::<Pkcs7>(data)
        }
        other => {
            return Err(ContentError(format!(
                "failed to decode PFX: unsupported encryption {other}"
            )));
        }
    };
    plain.map_err(|_| corrupt())
}

fn octets(info: &ContentInfo) -> Result<OctetString, ContentError> {
    OctetString::from_der(&info.content.to_der().map_err(|_| corrupt())?).map_err(|_| corrupt())
}

fn corrupt() -> ContentError {
    ContentError("failed to decode PFX: malformed PKCS#12 structure".into())
}
