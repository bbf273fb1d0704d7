//! Key Vault objects to file bytes. Pure: no I/O, no clock, no logging; warnings are returned.
//!
//! Output matches the Go provider v1.8.2 byte for byte (see `reference-provider.md` §2):
//! secrets (with `objectEncoding`), certificate-backed secrets (PEM passthrough, PFX passthrough or
//! PFX → PKCS#8 key + chain ordered leaf → root), keys (JWK → PKIX `PUBLIC KEY`), certificates
//! (`cer` DER → one `CERTIFICATE` block).
//!
//! TODO(content helper): implement.

use crate::request::{ObjectEncoding, ObjectFormat};
use crate::sensitive::Sensitive;

/// Process-wide output options (flags `--construct-pem-chain`, `--write-cert-and-key-in-separate-files`).
#[derive(Clone, Copy, Debug)]
pub struct ContentOptions {
    pub construct_pem_chain: bool,
    pub write_cert_and_key_in_separate_files: bool,
}

impl Default for ContentOptions {
    fn default() -> Self {
        Self {
            construct_pem_chain: true,
            write_cert_and_key_in_separate_files: false,
        }
    }
}

/// A secret as Key Vault returned it.
#[derive(Clone, Debug)]
pub struct SecretBundle {
    pub value: Option<Sensitive>,
    pub content_type: Option<String>,
    /// Set for certificate-backed secrets.
    pub kid: Option<String>,
}

/// A key's public part as Key Vault returned it (byte fields already base64url-decoded).
#[derive(Clone, Debug, Default)]
pub struct JsonWebKey {
    pub kty: Option<String>,
    pub crv: Option<String>,
    pub n: Option<Vec<u8>>,
    pub e: Option<Vec<u8>>,
    pub x: Option<Vec<u8>>,
    pub y: Option<Vec<u8>>,
}

/// One file produced from an object: `suffix` is appended to the object's file name
/// (`""`, `".crt"` or `".key"`).
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub suffix: &'static str,
    pub contents: Vec<u8>,
}

impl std::fmt::Debug for RenderedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RenderedFile({:?}, {} bytes)",
            self.suffix,
            self.contents.len()
        )
    }
}

/// Files for one object plus any warnings (e.g. an incomplete chain returned in original order).
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    pub files: Vec<RenderedFile>,
    pub warnings: Vec<String>,
}

/// Why an object could not be converted. Never contains secret material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContentError(pub String);

/// Secret object → files. With `write_cert_and_key_in_separate_files` and a certificate-backed
/// secret: `.crt`, `.key`, then the main file (upstream order). `encoding` applies to each file.
pub fn render_secret(
    _bundle: &SecretBundle,
    _format: ObjectFormat,
    _encoding: ObjectEncoding,
    _options: &ContentOptions,
) -> Result<Rendered, ContentError> {
    Err(ContentError("secret conversion is not built yet".into()))
}

/// Key object → PKIX `PUBLIC KEY` PEM (RSA/RSA-HSM, EC/EC-HSM P-256/P-384/P-521).
pub fn render_key(_jwk: &JsonWebKey) -> Result<Vec<u8>, ContentError> {
    Err(ContentError("key conversion is not built yet".into()))
}

/// Certificate object (`cer` DER) → one `CERTIFICATE` PEM block.
pub fn render_certificate(_der: &[u8]) -> Vec<u8> {
    Vec::new()
}

/// notAfter (Unix seconds) of every `CERTIFICATE` block in `pem`, in order; unparsable blocks are
/// skipped. Used for the certificate-expiry metric.
pub fn certificate_expiries(_pem: &[u8]) -> Vec<i64> {
    Vec::new()
}
