//! Client certificates of service principals (`clientcert` in `nodePublishSecretRef`), in pure
//! Rust: the RSA key and its certificate are read from PEM or an empty-password base64 PFX, and
//! every token request gets a freshly signed RS256 client assertion (RFC 7523), so no OpenSSL is
//! needed (azure_identity's certificate credential requires it).
//!
//! The assertion is what Entra ID expects of a certificate credential: header `alg` RS256, `typ`
//! JWT and `x5t` (base64url SHA-1 thumbprint of the certificate whose public key matches the
//! key); claims `aud` (the token endpoint), `iss` = `sub` = the client id, a random `jti`,
//! `nbf` = `iat` = now and `exp` ten minutes later. Errors name `clientcert` and the problem,
//! never key bytes.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use der::Decode;
use der::asn1::ObjectIdentifier;
use pkcs8::PrivateKeyInfoRef;
use sha1::Digest as _;
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;

use crate::content;
use crate::sensitive::Sensitive;

/// Largest `clientcert` accepted (a PEM key and chain or a PFX is a few KiB); checked before
/// any decoding. The request parser applies the same bound to every nodePublishSecretRef value.
pub const MAX_CLIENTCERT_BYTES: usize = 64 * 1024;

/// Lifetime of one assertion; a new one is signed for every token request.
const ASSERTION_LIFETIME_SECS: i64 = 600;
const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// An RSA private key and the thumbprint of its certificate.
pub(crate) struct ClientCertificate {
    key: RsaKeyPair,
    /// base64url SHA-1 of the certificate DER (`x5t`).
    thumbprint: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// The parts of an assertion that are not the key.
pub(crate) struct AssertionClaims<'a> {
    /// The token endpoint the assertion is sent to.
    pub audience: &'a str,
    pub client_id: &'a str,
    /// Unix seconds.
    pub now: i64,
}

impl ClientCertificate {
    /// Reads `clientcert`: PEM (a private key and certificates, any order) or a base64 PFX with
    /// the empty password. The error is a problem description meant to follow `clientcert `.
    pub(crate) fn parse(clientcert: &Sensitive) -> Result<Self, String> {
        let text = clientcert.expose().trim();
        if text.len() > MAX_CLIENTCERT_BYTES {
            return Err(format!(
                "is {} bytes, more than the limit of {MAX_CLIENTCERT_BYTES}",
                text.len()
            ));
        }
        let (keys, certs) = if text.contains("-----BEGIN") {
            pem_material(text)?
        } else {
            let der = STANDARD
                .decode(text.split_ascii_whitespace().collect::<String>())
                .map_err(|_| "is neither PEM nor a base64 PFX")?;
            let pfx = content::open_pfx(&der)
                .map_err(|e| format!("holds a PFX that cannot be used: {e}"))?;
            (pfx.keys.into_iter().map(Key::Pkcs8).collect(), pfx.certs)
        };
        let key = match keys.as_slice() {
            [] => return Err("holds no private key".into()),
            [key] => key.rsa()?,
            more => return Err(format!("holds {} private keys; expected one", more.len())),
        };
        let public = key.public_key().as_ref();
        let leaf = certs
            .iter()
            .find(|der| rsa_public_key_of(der).is_some_and(|k| k == public))
            .ok_or("holds no certificate for its private key")?;
        Ok(Self {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(leaf)),
        })
    }

    /// A signed client assertion (a compact JWT).
    pub(crate) fn assertion(&self, claims: &AssertionClaims<'_>) -> Result<Sensitive, String> {
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5t": self.thumbprint });
        let body = serde_json::json!({
            "aud": claims.audience,
            "iss": claims.client_id,
            "sub": claims.client_id,
            "jti": random_jti(),
            "nbf": claims.now,
            "iat": claims.now,
            "exp": claims.now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(body.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the client assertion failed".to_string())?;
        Ok(Sensitive::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// A private key as found in `clientcert`.
enum Key {
    /// `PRIVATE KEY` (or a PFX key bag).
    Pkcs8(Vec<u8>),
    /// `RSA PRIVATE KEY`.
    Pkcs1(Vec<u8>),
}

impl Key {
    fn rsa(&self) -> Result<RsaKeyPair, String> {
        let parsed = match self {
            Key::Pkcs1(der) => RsaKeyPair::from_der(der),
            Key::Pkcs8(der) => {
                let info = PrivateKeyInfoRef::from_der(der)
                    .map_err(|_| "holds a PKCS#8 private key that cannot be parsed")?;
                match info.algorithm.oid {
                    pkcs1::ALGORITHM_OID => RsaKeyPair::from_pkcs8(der),
                    EC_PUBLIC_KEY_OID => return Err(ec_refused()),
                    other => {
                        return Err(format!(
                            "holds a private key of unsupported algorithm {other}; certificate \
                             credentials need an RSA key"
                        ));
                    }
                }
            }
        };
        // KeyRejected describes the problem in fixed words, never with key bytes.
        parsed.map_err(|e| format!("holds an RSA private key that was rejected: {e}"))
    }
}

fn ec_refused() -> String {
    "holds an EC private key; Entra ID certificate credentials here need an RSA key".into()
}

/// Private keys and certificate DERs of PEM text.
fn pem_material(text: &str) -> Result<(Vec<Key>, Vec<Vec<u8>>), String> {
    // The pem crate's errors quote no input; still, only a fixed description is kept.
    let blocks = pem::parse_many(text).map_err(|_| "holds malformed PEM".to_string())?;
    let (mut keys, mut certs) = (Vec::new(), Vec::new());
    for block in blocks {
        let encrypted = block
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"));
        match block.tag() {
            _ if encrypted => return Err(encrypted_refused()),
            "ENCRYPTED PRIVATE KEY" => return Err(encrypted_refused()),
            "EC PRIVATE KEY" => return Err(ec_refused()),
            "PRIVATE KEY" => keys.push(Key::Pkcs8(block.into_contents())),
            "RSA PRIVATE KEY" => keys.push(Key::Pkcs1(block.into_contents())),
            "CERTIFICATE" => certs.push(block.into_contents()),
            _ => {}
        }
    }
    Ok((keys, certs))
}

fn encrypted_refused() -> String {
    "holds an encrypted private key; provide it unencrypted (the Kubernetes secret protects it)"
        .into()
}

/// The PKCS#1 `RSAPublicKey` DER of a certificate with an RSA key.
fn rsa_public_key_of(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let spki = cert.public_key();
    (spki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION)
        .then(|| spki.subject_public_key.data.to_vec())
}

/// A random UUID (version 4) for `jti`.
fn random_jti() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    fn pem_block(label: &str, der: &[u8]) -> String {
        pem::encode(&pem::Pem::new(label, der.to_vec()))
    }

    /// `(PKCS#8 DER, certificate DER)` of a fresh RSA key.
    fn rsa() -> (Vec<u8>, Vec<u8>) {
        let key = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = key.as_der().unwrap().as_ref().to_vec();
        let signer = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["c".to_string()])
            .unwrap()
            .self_signed(&signer)
            .unwrap();
        (pkcs8, cert.der().to_vec())
    }

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn assertion_is_a_verifiable_rs256_jwt_with_the_expected_claims() {
        let (key, cert) = rsa();
        // An unrelated certificate first: the leaf is found by its public key.
        let (_, other) = rsa();
        let text = pem_block("CERTIFICATE", &other)
            + &pem_block("PRIVATE KEY", &key)
            + &pem_block("CERTIFICATE", &cert);
        let parsed = ClientCertificate::parse(&Sensitive::new(text)).unwrap();
        let claims = AssertionClaims {
            audience: "https://login.example/t/oauth2/v2.0/token",
            client_id: "cid",
            now: 1_700_000_000,
        };
        let jwt = parsed.assertion(&claims).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(
            header["x5t"],
            URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&cert))
        );
        let body = decode(parts[1]);
        assert_eq!(body["aud"], claims.audience);
        assert_eq!(
            (body["iss"].as_str(), body["sub"].as_str()),
            (Some("cid"), Some("cid"))
        );
        assert_eq!(body["nbf"], 1_700_000_000);
        assert_eq!(body["iat"], 1_700_000_000);
        assert_eq!(body["exp"], 1_700_000_600);
        assert_eq!(body["jti"].as_str().map(str::len), Some(36));
        let (_, x509) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let public = x509.public_key().subject_public_key.data.as_ref();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(signed.as_bytes(), &signature)
            .unwrap();
        // A fresh jti every time.
        assert_ne!(parsed.assertion(&claims).unwrap(), jwt);
        assert!(!format!("{parsed:?}").contains("PRIVATE"));
    }

    #[test]
    fn two_keys_or_none_are_refused() {
        let (key, cert) = rsa();
        let two = pem_block("PRIVATE KEY", &key) + &pem_block("PRIVATE KEY", &key);
        let err = ClientCertificate::parse(&Sensitive::new(two + &pem_block("CERTIFICATE", &cert)))
            .unwrap_err();
        assert_eq!(err, "holds 2 private keys; expected one");
        let err =
            ClientCertificate::parse(&Sensitive::new(pem_block("CERTIFICATE", &cert))).unwrap_err();
        assert_eq!(err, "holds no private key");
    }

    #[test]
    fn jti_is_a_version_4_uuid() {
        let jti = random_jti();
        let groups: Vec<usize> = jti.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&jti[14..15], "4");
        assert_ne!(jti, random_jti());
    }
}
