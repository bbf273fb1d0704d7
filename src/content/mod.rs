//! Key Vault objects to file bytes. Pure: no I/O, no clock, no logging; warnings are returned.
//!
//! Output matches the Go provider v1.8.2 byte for byte (the content handling of `Azure/secrets-store-csi-driver-provider-azure` at tag v1.8.2, `pkg/provider`):
//! secrets (with `objectEncoding`), certificate-backed secrets (PEM passthrough, PFX passthrough or
//! PFX → PKCS#8 key + chain ordered leaf → root), keys (JWK → PKIX `PUBLIC KEY`), certificates
//! (`cer` DER → one `CERTIFICATE` block). Errors never contain secret material, and the caller
//! prefixes them with the object's name.
//!
//! Submodules: `encoding` (base64/hex), `jmes` (fields of JSON secrets), `pem` (Go-compatible PEM), `pfx` + `nil_password` (PKCS#12 and key
//! re-marshalling), `pfx_limits` (PKCS#12 limits checked before any key derivation), `chain` (leaf → root ordering), `key` (JWK → PEM), `curve`.

mod chain;
mod curve;
mod encoding;
pub mod jmes;
mod key;
mod nil_password;
mod pem;
mod pfx;
pub mod pfx_limits;
/// Hostile PKCS#12 test files, shared with `tests/isolation_pkcs12.rs`.
#[cfg(test)]
#[path = "../../tests/pkcs12_der/mod.rs"]
mod pkcs12_der;

use crate::sensitive::Sensitive;

/// `objectFormat`: how a certificate's secret is written (the SPC parameter of that name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ObjectFormat {
    #[default]
    Pem,
    Pfx,
}

/// `objectEncoding`: how a secret's bytes are encoded in the file (the SPC parameter of that name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ObjectEncoding {
    #[default]
    Utf8,
    Base64,
    Hex,
}

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
    /// Earliest notAfter (Unix seconds) of the certificates the object holds, for the expiry
    /// metric; `None` when it holds none.
    pub not_after: Option<i64>,
    /// notAfter of the leaf: the first certificate served (Key Vault and our chain building put
    /// the leaf first).
    pub leaf_not_after: Option<i64>,
}

/// `(leaf, earliest)` notAfter of the certificates in `pem` (see [`certificate_expiries`]).
pub fn leaf_and_earliest_expiry(pem: &[u8]) -> (Option<i64>, Option<i64>) {
    let all = certificate_expiries(pem);
    (all.first().copied(), all.into_iter().min())
}

/// Why an object could not be converted. Never contains secret material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContentError(pub String);

/// Content type of a certificate-backed secret holding PEM.
pub const CONTENT_TYPE_PEM: &str = "application/x-pem-file";
/// Content type of a certificate-backed secret holding base64 PFX.
pub const CONTENT_TYPE_PFX: &str = "application/x-pkcs12";

/// Secret object → files. With `write_cert_and_key_in_separate_files` and a certificate-backed
/// secret: `.crt`, `.key`, then the main file (upstream order). `encoding` applies to each file.
pub fn render_secret(
    bundle: &SecretBundle,
    format: ObjectFormat,
    encoding: ObjectEncoding,
    options: &ContentOptions,
) -> Result<Rendered, ContentError> {
    let value = bundle
        .value
        .as_ref()
        .ok_or_else(|| ContentError("secret value is nil".into()))?;
    let mut rendered = Rendered::default();
    let cert_backed = bundle.kid.as_deref().is_some_and(|kid| !kid.is_empty());
    let main = if cert_backed {
        certificate_secret(
            value,
            bundle.content_type.as_deref(),
            format,
            options,
            &mut rendered.warnings,
        )?
    } else {
        value.expose().as_bytes().to_vec()
    };
    (rendered.leaf_not_after, rendered.not_after) = expiries(&main, bundle, format);
    if cert_backed && options.write_cert_and_key_in_separate_files {
        let (certs, keys) = split_cert_and_key(&main);
        rendered.files.push(RenderedFile {
            suffix: ".crt",
            contents: encoding::apply(encoding, certs)?,
        });
        rendered.files.push(RenderedFile {
            suffix: ".key",
            contents: encoding::apply(encoding, keys)?,
        });
    }
    rendered.files.push(RenderedFile {
        suffix: "",
        contents: encoding::apply(encoding, main)?,
    });
    Ok(rendered)
}

/// Earliest notAfter of the certificates in a secret's main file; a PFX kept as PFX is opened
/// for this only.
fn expiries(
    main: &[u8],
    bundle: &SecretBundle,
    format: ObjectFormat,
) -> (Option<i64>, Option<i64>) {
    let pfx_kept = format == ObjectFormat::Pfx
        && bundle.content_type.as_deref() == Some(CONTENT_TYPE_PFX)
        && bundle.kid.as_deref().is_some_and(|kid| !kid.is_empty());
    let converted;
    let pem = match (&bundle.value, pfx_kept) {
        (Some(value), true) => {
            // Chain building puts the leaf first.
            let Ok(pem) = pfx_to_pem(value, true, &mut Vec::new()) else {
                return (None, None);
            };
            converted = pem;
            &converted[..]
        }
        _ => main,
    };
    leaf_and_earliest_expiry(pem)
}

/// The main file of a certificate-backed secret (before `objectEncoding`).
fn certificate_secret(
    value: &Sensitive,
    content_type: Option<&str>,
    format: ObjectFormat,
    options: &ContentOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<u8>, ContentError> {
    match content_type {
        None => Err(ContentError(
            "certificate-backed secret has no content type".into(),
        )),
        Some(CONTENT_TYPE_PEM) => Ok(value.expose().as_bytes().to_vec()),
        Some(CONTENT_TYPE_PFX) if format == ObjectFormat::Pfx => {
            Ok(value.expose().as_bytes().to_vec())
        }
        Some(CONTENT_TYPE_PFX) => pfx_to_pem(value, options.construct_pem_chain, warnings),
        Some(other) => Err(ContentError(format!(
            "failed to get certificate. unknown content type '{other}'"
        ))),
    }
}

/// Base64 PFX → all private keys (PKCS#8) then all certificates, leaf → root when asked and
/// possible, else in bag order.
fn pfx_to_pem(
    value: &Sensitive,
    construct_chain: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<u8>, ContentError> {
    let der = encoding::decode_base64(
        value.expose().as_bytes(),
        "PFX secret value is not valid base64",
    )?;
    let contents = pfx::open(&der)?;
    let mut cert_order: Vec<usize> = (0..contents.certs.len()).collect();
    if construct_chain {
        match chain::order(&contents.certs)? {
            Some(order) => cert_order = order,
            None => warnings.push(chain::INCOMPLETE_CHAIN_WARNING.to_string()),
        }
    }
    let keys = contents
        .keys
        .iter()
        .map(|key| pem::encode("PRIVATE KEY", key));
    let certs = cert_order
        .iter()
        .map(|&i| pem::encode("CERTIFICATE", &contents.certs[i]));
    Ok(keys.chain(certs).flatten().collect())
}

/// The private keys (PKCS#8 DER, re-marshalled as for `pfx_to_pem`) and certificates (DER) of a
/// PFX with the empty password, in bag order: the material of a certificate credential.
pub(crate) fn open_pfx(der: &[u8]) -> Result<PfxContents, ContentError> {
    pfx::open(der)
}

pub(crate) use pfx::Contents as PfxContents;

/// `(certificates, everything else)`: every PEM block of `contents` re-encoded, in input order.
fn split_cert_and_key(contents: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut certs, mut keys) = (Vec::new(), Vec::new());
    for block in pem::decode_all(contents) {
        let target = if block.is_certificate() {
            &mut certs
        } else {
            &mut keys
        };
        target.extend(pem::encode_block(&block.label, &block.headers, &block.der));
    }
    (certs, keys)
}

/// Key object → PKIX `PUBLIC KEY` PEM (RSA/RSA-HSM, EC/EC-HSM P-256/P-384/P-521).
pub fn render_key(jwk: &JsonWebKey) -> Result<Vec<u8>, ContentError> {
    key::public_key_pem(jwk)
}

/// Certificate object (`cer` DER) → one `CERTIFICATE` PEM block.
pub fn render_certificate(der: &[u8]) -> Vec<u8> {
    pem::encode("CERTIFICATE", der)
}

/// Most `CERTIFICATE` blocks of one object parsed for the expiry metric; the rest of a larger
/// bundle is not looked at (its files are still written whole). Chains have a handful.
pub const MAX_EXPIRY_CERTIFICATES: usize = 64;

/// notAfter (Unix seconds) of every `CERTIFICATE` block in `pem` (the first
/// [`MAX_EXPIRY_CERTIFICATES`]), in order; unparsable blocks are skipped. Used for the
/// certificate-expiry metric.
pub fn certificate_expiries(pem: &[u8]) -> Vec<i64> {
    pem::decode_all(pem)
        .iter()
        .filter(|block| block.is_certificate())
        .take(MAX_EXPIRY_CERTIFICATES)
        .filter_map(|block| x509_parser::parse_x509_certificate(&block.der).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .collect()
}
