//! Limits a PKCS#12 (PFX) file must meet before any key is derived from its password.
//!
//! A PFX names its own password-based algorithms and their cost: a 185-byte file can ask for
//! scrypt with 128 MiB of memory, or PBKDF2 with 2^31 iterations, and a parser that simply obeys
//! spends seconds of CPU and hundreds of MiB on it. The same parser opens certificate-backed
//! secrets from a tenant's vault and the `clientcert` of a service principal, so every PFX is
//! checked here first ([`check`], called by the one PFX opening in `content`):
//!
//! 1. **Structure, before anything is derived** ([`prescan`]): the whole file at most
//!    [`PfxLimits::max_bytes`]; strict DER (definite lengths, nesting at most [`MAX_DER_DEPTH`]);
//!    PFX v3 → authSafe `data` → at most [`PfxLimits::max_safes`] safes (`data` or
//!    `encryptedData`), at most [`PfxLimits::max_bags`] bags in all; every password-based
//!    algorithm identified (the MAC, each encrypted safe, each shrouded key bag and encrypted
//!    secret bag): PKCS#12 PBE with SHA-1 and 3DES or RC2-40, or PBES2 with PBKDF2 (HMAC-SHA-1/2)
//!    or scrypt and an AES cipher; anything else is refused by name (OID). Each derivation's
//!    iteration count is at most [`PfxLimits::max_iterations`]; scrypt's memory (128·N·r bytes)
//!    is at most [`PfxLimits::max_scrypt_memory`] and its parallelism at most
//!    [`MAX_SCRYPT_PARALLELISM`].
//! 2. **Total work**: the cost of every derivation the openers may run (both empty-password forms
//!    where both are tried, and the inspection below) is summed in *work units* (one unit ≈ one
//!    SHA-1/SHA-256 compression; SHA-384/512 count [`SHA512_WEIGHT`]; PBKDF2 costs two per
//!    iteration and output block, the PKCS#12 KDF one; scrypt [`SCRYPT_UNITS_PER_NR`] per N·r·p)
//!    and must stay within [`PfxLimits::max_work`].
//! 3. **Encrypted safes, opened for inspection**: the bags inside an `encryptedData` safe can only
//!    be seen after decrypting it (its cost was counted in step 2); their count and algorithms go
//!    through the same rules, and the total is checked again before the real parse.
//!
//! Errors name the problem and the limit's flag, never bytes of the input (an algorithm OID is
//! echoed through [`crate::text::echo`]).
//!
//! Costs measured on the development machine (one core, per 100,000 iterations, release / debug
//! build): PBKDF2-HMAC-SHA-256 12 ms / 1.3 s, PBKDF2-HMAC-SHA-512 107 ms / 3.6 s, PKCS#12 KDF
//! SHA-1 13 ms / 0.3 s; scrypt N=2^14 r=1 p=1 (2 MiB) 9–15 ms / 0.23 s. With the defaults a
//! single derivation costs at most ~0.1 s and a whole PFX ~0.2–0.4 s in a release build.

use std::sync::OnceLock;

use der::Decode;
use der::asn1::ObjectIdentifier;
use pkcs5::pbes2;

use super::ContentError;
use super::nil_password;

/// Default of `--max-pfx-bytes`: Key Vault secret values are at most 25 KB, and its PFX exports
/// a few KiB; ten times the largest legitimate size.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024;
/// Default of `--max-pfx-safes`: Key Vault, Windows and OpenSSL write two.
pub const DEFAULT_MAX_SAFES: usize = 16;
/// Default of `--max-pfx-bags`: a key and its chain; long chains have under ten certificates.
pub const DEFAULT_MAX_BAGS: usize = 64;
/// Default of `--max-pfx-kdf-iterations`: OpenSSL 3 writes 2048, Windows and Key Vault 2000 or
/// 10000, Java 10000; ten times the largest.
pub const DEFAULT_MAX_ITERATIONS: u32 = 100_000;
/// Default of `--max-pfx-kdf-work`: every standard PFX layout (a MAC, an encrypted certificate
/// safe, a shrouded key) at the iteration cap fits, and the whole stays near 0.2 s (release).
pub const DEFAULT_MAX_WORK: u64 = 2_000_000;
/// Default of `--max-pfx-scrypt-memory`: scrypt is written by no common PKCS#12 tool; allow a
/// few MiB (N=2^15, r=1), so a mount's memory cannot jump by the 128 MiB a tiny file asks for.
pub const DEFAULT_MAX_SCRYPT_MEMORY: u64 = 4 * 1024 * 1024;

/// Deepest DER nesting accepted anywhere in a PFX (certificates included; real ones nest ~10).
pub const MAX_DER_DEPTH: usize = 32;
/// Largest scrypt parallelism `p` accepted (the work budget usually binds first).
pub const MAX_SCRYPT_PARALLELISM: u64 = 16;
/// Work units of one SHA-384/SHA-512 compression relative to SHA-1/SHA-256 (measured 4–5×).
pub const SHA512_WEIGHT: u64 = 4;
/// Work units per N·r·p of scrypt (measured: N=2^14, r=1, p=1 ≈ 130,000 SHA-256 compressions).
pub const SCRYPT_UNITS_PER_NR: u64 = 8;

/// The PKCS#12 limits (flags `--max-pfx-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PfxLimits {
    /// Largest PFX (DER bytes).
    pub max_bytes: usize,
    /// Most safes (`ContentInfo`s of the authenticated safe).
    pub max_safes: usize,
    /// Most bags, over all safes (inside encrypted ones included).
    pub max_bags: usize,
    /// Most iterations of one key derivation (PBKDF2, PKCS#12 KDF of a PBE or of the MAC).
    pub max_iterations: u32,
    /// Most work units of all the key derivations opening one PFX may run.
    pub max_work: u64,
    /// Most memory (128·N·r bytes) of one scrypt derivation.
    pub max_scrypt_memory: u64,
}

impl Default for PfxLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_safes: DEFAULT_MAX_SAFES,
            max_bags: DEFAULT_MAX_BAGS,
            max_iterations: DEFAULT_MAX_ITERATIONS,
            max_work: DEFAULT_MAX_WORK,
            max_scrypt_memory: DEFAULT_MAX_SCRYPT_MEMORY,
        }
    }
}

static LIMITS: OnceLock<PfxLimits> = OnceLock::new();

/// Sets the process-wide limits. Only the first call (or the first PFX opened) counts; returns
/// false when the limits were already fixed.
pub fn configure(limits: PfxLimits) -> bool {
    LIMITS.set(limits).is_ok()
}

/// The limits in force.
pub fn limits() -> PfxLimits {
    *LIMITS.get_or_init(PfxLimits::default)
}

/// What the structural pre-scan found: the work it counted and the encrypted safes whose bags
/// are still unseen.
pub struct Prescan<'a> {
    /// Work units counted so far (the encrypted safes' inspection included).
    pub work: u64,
    /// Bags seen so far.
    pub bags: usize,
    encrypted: Vec<(Algorithm, &'a [u8])>,
}

/// Never shows the ciphertexts.
impl std::fmt::Debug for Prescan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prescan")
            .field("work", &self.work)
            .field("bags", &self.bags)
            .field("encrypted_safes", &self.encrypted.len())
            .finish()
    }
}

impl Prescan<'_> {
    /// Number of `encryptedData` safes (their bags are inspected by [`check`]).
    pub fn encrypted_safes(&self) -> usize {
        self.encrypted.len()
    }
}

/// Checks `pfx` against `limits`: the structural [`prescan`], then the bags inside encrypted
/// safes (decrypted with the empty password, within the work already admitted). `Ok` means the
/// real parse will run at most `limits.max_work` units of key derivation.
pub fn check(pfx: &[u8], limits: &PfxLimits) -> Result<(), ContentError> {
    let mut scan = prescan(pfx, limits)?;
    let encrypted = std::mem::take(&mut scan.encrypted);
    for (algorithm, ciphertext) in encrypted {
        // Every form of the empty password that decrypts is inspected (a ciphertext can be
        // made to decrypt under both). One that does not decrypt, or not to bags, fails the
        // real parse at the same place, before it reaches any bag.
        for plain in algorithm.decrypt_empty(ciphertext) {
            depth(&plain)?;
            let Ok(bags) = read(&plain).and_then(|(tag, body, _)| expect(tag, SEQUENCE, body))
            else {
                continue;
            };
            scan_bags(bags, limits, &mut scan)?;
        }
    }
    Ok(())
}

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_0_PRIMITIVE: u8 = 0x80;

const DATA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");

/// The structural pre-scan: runs no key derivation and no decryption. Refuses, with a
/// [`ContentError`] naming the problem, every PFX that breaks `limits`; returns the work counted
/// for the outer structure (the MAC, encrypted safes, plaintext bags) and the encrypted safes.
pub fn prescan<'a>(pfx: &'a [u8], limits: &PfxLimits) -> Result<Prescan<'a>, ContentError> {
    if pfx.len() > limits.max_bytes {
        return Err(refused(format!(
            "it is {} bytes, more than the {} allowed (--max-pfx-bytes)",
            pfx.len(),
            limits.max_bytes
        )));
    }
    depth(pfx)?;
    let (tag, body, rest) = read(pfx)?;
    if !rest.is_empty() {
        return Err(malformed("data after the PFX"));
    }
    let mut pfx_fields = Reader(expect(tag, SEQUENCE, body)?);
    let version = pfx_fields.next(INTEGER)?;
    if version != [3] {
        return Err(refused("only PFX version 3 is supported".into()));
    }
    let auth_safe = pfx_fields.next(SEQUENCE)?;
    let mac = pfx_fields.optional(SEQUENCE)?;
    pfx_fields.end()?;

    let mut scan = Prescan {
        work: 0,
        bags: 0,
        encrypted: Vec::new(),
    };
    if let Some(mac) = mac {
        scan_mac(mac, limits, &mut scan)?;
    }

    let (content_type, content) = content_info(auth_safe)?;
    if content_type != DATA_OID {
        return Err(refused(format!(
            "authenticated safe of type {} is not supported (only data)",
            oid_text(&content_type)
        )));
    }
    let content = content.ok_or_else(|| malformed("authenticated safe without content"))?;
    let safes = octets_of(content)?;
    depth(safes)?;
    let (tag, body, rest) = read(safes)?;
    if !rest.is_empty() {
        return Err(malformed("data after the authenticated safe"));
    }
    let mut safes = Reader(expect(tag, SEQUENCE, body)?);
    let mut count = 0;
    while !safes.0.is_empty() {
        count += 1;
        if count > limits.max_safes {
            return Err(refused(format!(
                "it has more than {} safes (--max-pfx-safes)",
                limits.max_safes
            )));
        }
        let safe = safes.next(SEQUENCE)?;
        let (content_type, content) = content_info(safe)?;
        let content = content.ok_or_else(|| malformed("safe without content"))?;
        match content_type {
            DATA_OID => {
                let bags = octets_of(content)?;
                depth(bags)?;
                let (tag, body, rest) = read(bags)?;
                if !rest.is_empty() {
                    return Err(malformed("data after a safe's bags"));
                }
                scan_bags(expect(tag, SEQUENCE, body)?, limits, &mut scan)?;
            }
            ENCRYPTED_DATA_OID => {
                let (algorithm, ciphertext) = encrypted_data(content)?;
                let algorithm = Algorithm::identify(algorithm, limits)?;
                // The inspection in `check` tries both empty passwords, and so does the real
                // parse (p12-keystore, then the zero-length fallback).
                let attempts = 2 * algorithm.attempts();
                add_work(&mut scan, algorithm.work().saturating_mul(attempts), limits)?;
                scan.encrypted.push((algorithm, ciphertext));
            }
            other => {
                return Err(refused(format!(
                    "safe of type {} is not supported (only data and encryptedData)",
                    oid_text(&other)
                )));
            }
        }
    }
    Ok(scan)
}

/// `MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }`
fn scan_mac(mac: &[u8], limits: &PfxLimits, scan: &mut Prescan<'_>) -> Result<(), ContentError> {
    let mut whole = Vec::with_capacity(mac.len() + 6);
    der_header(SEQUENCE, mac.len(), &mut whole);
    whole.extend_from_slice(mac);
    let mac = pkcs12::MacData::from_der(&whole).map_err(|_| malformed("MAC data"))?;
    let digest = Digest::identify(&mac.mac.algorithm.oid).ok_or_else(|| {
        refused(format!(
            "MAC digest {} is not supported",
            oid_text(&mac.mac.algorithm.oid)
        ))
    })?;
    let iterations = iterations("the MAC", i64::from(mac.iterations), limits)?;
    // Tried with both empty passwords (`00 00`, then zero-length); the key is one digest long.
    let work = pkcs12_kdf_work(digest, iterations, digest.output_len()).saturating_mul(2);
    add_work(scan, work, limits)
}

/// `SafeContents ::= SEQUENCE OF SafeBag`; `SafeBag ::= SEQUENCE { bagId OID, bagValue [0]
/// EXPLICIT ANY, bagAttributes SET OPTIONAL }`.
fn scan_bags(bags: &[u8], limits: &PfxLimits, scan: &mut Prescan<'_>) -> Result<(), ContentError> {
    let mut bags = Reader(bags);
    while !bags.0.is_empty() {
        scan.bags += 1;
        if scan.bags > limits.max_bags {
            return Err(refused(format!(
                "it has more than {} bags (--max-pfx-bags)",
                limits.max_bags
            )));
        }
        let mut bag = Reader(bags.next(SEQUENCE)?);
        let bag_id = oid(bag.next(OID)?)?;
        let value = bag.next(CONTEXT_0)?;
        match bag_id {
            pkcs12::PKCS_12_PKCS8_KEY_BAG_OID => {
                // EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }
                let (tag, body, _) = read(value)?;
                let mut info = Reader(expect(tag, SEQUENCE, body)?);
                let algorithm = Algorithm::identify(info.next(SEQUENCE)?, limits)?;
                let work = algorithm.work().saturating_mul(algorithm.attempts());
                add_work(scan, work, limits)?;
            }
            pkcs12::PKCS_12_CERT_BAG_OID => {
                // CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT OCTET STRING }
                let (tag, body, _) = read(value)?;
                let mut cert = Reader(expect(tag, SEQUENCE, body)?);
                cert.next(OID)?;
                let (tag, body, _) = read(cert.next(CONTEXT_0)?)?;
                depth(expect(tag, OCTET_STRING, body)?)?;
            }
            pkcs12::PKCS_12_SECRET_BAG_OID => {
                // p12-keystore decrypts a secret bag whose value is an EncryptedPrivateKeyInfo.
                if let Some(algorithm) = secret_bag_algorithm(value) {
                    let algorithm = Algorithm::identify(algorithm, limits)?;
                    add_work(scan, algorithm.work(), limits)?;
                }
            }
            // Key, certificate and CRL bags hold no password-based algorithm; nested safe
            // contents bags are read by neither parser.
            _ => {}
        }
    }
    Ok(())
}

/// The AlgorithmIdentifier body of a secret bag holding an EncryptedPrivateKeyInfo.
fn secret_bag_algorithm(value: &[u8]) -> Option<&[u8]> {
    let (tag, body, _) = read(value).ok()?;
    let mut secret = Reader(expect(tag, SEQUENCE, body).ok()?);
    secret.next(OID).ok()?;
    let inner = secret.next(CONTEXT_0).ok()?;
    let (tag, body, _) = read(inner).ok()?;
    let (tag, body, _) = read(expect(tag, OCTET_STRING, body).ok()?).ok()?;
    let mut info = Reader(expect(tag, SEQUENCE, body).ok()?);
    info.next(SEQUENCE).ok()
}

/// `ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY OPTIONAL }` → the type
/// and the inner TLV of `content`.
fn content_info(body: &[u8]) -> Result<(ObjectIdentifier, Option<&[u8]>), ContentError> {
    let mut info = Reader(body);
    let content_type = oid(info.next(OID)?)?;
    let content = info.optional(CONTEXT_0)?;
    info.end()?;
    Ok((content_type, content))
}

/// The body of the OCTET STRING TLV `tlv` (DER: primitive only).
fn octets_of(tlv: &[u8]) -> Result<&[u8], ContentError> {
    let (tag, body, rest) = read(tlv)?;
    if !rest.is_empty() {
        return Err(malformed("data after an octet string"));
    }
    expect(tag, OCTET_STRING, body)
}

/// `EncryptedData ::= SEQUENCE { version, EncryptedContentInfo SEQUENCE { contentType,
/// contentEncryptionAlgorithm, encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }, ... }`
fn encrypted_data(tlv: &[u8]) -> Result<(&[u8], &[u8]), ContentError> {
    let (tag, body, _) = read(tlv)?;
    let mut data = Reader(expect(tag, SEQUENCE, body)?);
    data.next(INTEGER)?;
    let mut info = Reader(data.next(SEQUENCE)?);
    info.next(OID)?;
    let algorithm = info.next(SEQUENCE)?;
    let ciphertext = info.optional(CONTEXT_0_PRIMITIVE)?.unwrap_or_default();
    Ok((algorithm, ciphertext))
}

/// A hash a derivation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Digest {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha512_224,
    Sha512_256,
}

impl Digest {
    fn identify(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match oid.to_string().as_str() {
            "1.3.14.3.2.26" => Self::Sha1,
            "2.16.840.1.101.3.4.2.4" => Self::Sha224,
            "2.16.840.1.101.3.4.2.1" => Self::Sha256,
            "2.16.840.1.101.3.4.2.2" => Self::Sha384,
            "2.16.840.1.101.3.4.2.3" => Self::Sha512,
            "2.16.840.1.101.3.4.2.5" => Self::Sha512_224,
            "2.16.840.1.101.3.4.2.6" => Self::Sha512_256,
            _ => return None,
        })
    }

    fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha224 | Self::Sha512_224 => 28,
            Self::Sha256 | Self::Sha512_256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    fn weight(self) -> u64 {
        match self {
            Self::Sha1 | Self::Sha224 | Self::Sha256 => 1,
            Self::Sha384 | Self::Sha512 | Self::Sha512_224 | Self::Sha512_256 => SHA512_WEIGHT,
        }
    }
}

/// A password-based encryption algorithm the openers support, with its parameters.
#[derive(Debug)]
enum Algorithm {
    /// PKCS#12 PBE (SHA-1 KDF): 3DES (24-byte key) or RC2-40 (5-byte key), 8-byte IV.
    Pkcs12Pbe {
        key_len: usize,
        iterations: u32,
        /// The whole AlgorithmIdentifier, for the inspection's decryption.
        der: Vec<u8>,
    },
    /// PBES2 (PBKDF2 or scrypt, AES), with the work units of its derivation.
    Pbes2 {
        params: Box<pbes2::Parameters>,
        work: u64,
    },
}

impl Algorithm {
    /// `body`: the content of an AlgorithmIdentifier SEQUENCE.
    fn identify(body: &[u8], limits: &PfxLimits) -> Result<Self, ContentError> {
        let mut fields = Reader(body);
        let algorithm = oid(fields.next(OID)?)?;
        let parameters = fields.rest();
        match algorithm {
            pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC
            | pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC => {
                let params = pkcs12::pbe_params::Pkcs12PbeParams::from_der(parameters)
                    .map_err(|_| malformed("PKCS#12 PBE parameters"))?;
                let iterations = iterations(
                    "a PKCS#12 PBE key derivation",
                    i64::from(params.iterations),
                    limits,
                )?;
                let key_len = if algorithm == pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC {
                    24
                } else {
                    5
                };
                let mut der = Vec::with_capacity(body.len() + 6);
                der_header(SEQUENCE, body.len(), &mut der);
                der.extend_from_slice(body);
                Ok(Self::Pkcs12Pbe {
                    key_len,
                    iterations,
                    der,
                })
            }
            pbes2::PBES2_OID => {
                let params = pbes2::Parameters::from_der(parameters).map_err(|_| {
                    refused(
                        "PBES2 parameters are malformed or name an unsupported key derivation \
                         or cipher (supported: PBKDF2 with HMAC-SHA-1/2, scrypt; AES)"
                            .into(),
                    )
                })?;
                let key_len = params.encryption.key_size();
                let work = match &params.kdf {
                    pbes2::Kdf::Pbkdf2(pbkdf2) => {
                        let count = iterations(
                            "a PBKDF2 key derivation",
                            i64::from(pbkdf2.iteration_count),
                            limits,
                        )?;
                        let digest = match pbkdf2.prf {
                            pbes2::Pbkdf2Prf::HmacWithSha1 => Digest::Sha1,
                            pbes2::Pbkdf2Prf::HmacWithSha224 => Digest::Sha224,
                            pbes2::Pbkdf2Prf::HmacWithSha256 => Digest::Sha256,
                            pbes2::Pbkdf2Prf::HmacWithSha384 => Digest::Sha384,
                            pbes2::Pbkdf2Prf::HmacWithSha512 => Digest::Sha512,
                            _ => return Err(refused("PBKDF2 PRF is not supported".into())),
                        };
                        // HMAC: two compressions per iteration and output block.
                        u64::from(count)
                            .saturating_mul(blocks(key_len, digest))
                            .saturating_mul(2 * digest.weight())
                    }
                    pbes2::Kdf::Scrypt(scrypt) => {
                        scrypt_within(scrypt, limits)?;
                        scrypt
                            .cost_parameter
                            .saturating_mul(u64::from(scrypt.block_size))
                            .saturating_mul(u64::from(scrypt.parallelization))
                            .saturating_mul(SCRYPT_UNITS_PER_NR)
                    }
                    _ => return Err(refused("PBES2 key derivation is not supported".into())),
                };
                Ok(Self::Pbes2 {
                    params: Box::new(params),
                    work,
                })
            }
            other => Err(refused(format!(
                "encryption algorithm {} is not supported",
                oid_text(&other)
            ))),
        }
    }

    /// How many times the real parse may run this derivation: twice for the PKCS#12 KDF (both
    /// empty-password forms), once for PBES2 (its password is bytes, not a BMPString).
    fn attempts(&self) -> u64 {
        match self {
            Self::Pkcs12Pbe { .. } => 2,
            Self::Pbes2 { .. } => 1,
        }
    }

    /// Work units of one decryption's key (and IV) derivation.
    fn work(&self) -> u64 {
        match self {
            Self::Pkcs12Pbe {
                key_len,
                iterations,
                ..
            } => pkcs12_kdf_work(Digest::Sha1, *iterations, *key_len)
                .saturating_add(pkcs12_kdf_work(Digest::Sha1, *iterations, 8)),
            Self::Pbes2 { work, .. } => *work,
        }
    }

    /// `ciphertext` decrypted with each form of the empty password the openers try, where it
    /// decrypts.
    fn decrypt_empty(&self, ciphertext: &[u8]) -> Vec<Vec<u8>> {
        match self {
            Self::Pkcs12Pbe { der, .. } => {
                let Ok(algorithm) = spki::AlgorithmIdentifierOwned::from_der(der) else {
                    return Vec::new();
                };
                // `00 00` (OpenSSL, p12-keystore), then zero-length (Windows, Go).
                [&[0u8, 0][..], &[][..]]
                    .into_iter()
                    .filter_map(|password| {
                        nil_password::decrypt_with(password, &algorithm, ciphertext).ok()
                    })
                    .collect()
            }
            Self::Pbes2 { params, .. } => params.decrypt(b"", ciphertext).into_iter().collect(),
        }
    }
}

/// Output blocks a derivation of `key_len` bytes with `digest` runs.
fn blocks(key_len: usize, digest: Digest) -> u64 {
    key_len.div_ceil(digest.output_len()).max(1) as u64
}

/// Work units of one PKCS#12 KDF derivation (one compression per iteration and output block).
fn pkcs12_kdf_work(digest: Digest, iterations: u32, key_len: usize) -> u64 {
    u64::from(iterations)
        .saturating_mul(blocks(key_len, digest))
        .saturating_mul(digest.weight())
}

fn iterations(what: &str, count: i64, limits: &PfxLimits) -> Result<u32, ContentError> {
    if count < 1 {
        return Err(refused(format!("{what} has an invalid iteration count")));
    }
    if count > i64::from(limits.max_iterations) {
        return Err(refused(format!(
            "{what} asks for {count} iterations, more than the {} allowed (--max-pfx-kdf-iterations)",
            limits.max_iterations
        )));
    }
    Ok(count as u32)
}

fn scrypt_within(params: &pbes2::ScryptParams, limits: &PfxLimits) -> Result<(), ContentError> {
    let n = params.cost_parameter;
    let r = u64::from(params.block_size);
    let p = u64::from(params.parallelization);
    if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
        return Err(refused("scrypt parameters are invalid".into()));
    }
    let memory = 128u64.saturating_mul(n).saturating_mul(r);
    if memory > limits.max_scrypt_memory {
        return Err(refused(format!(
            "scrypt (N={n}, r={r}) needs {} KiB of memory, more than the {} KiB allowed \
             (--max-pfx-scrypt-memory)",
            memory / 1024,
            limits.max_scrypt_memory / 1024
        )));
    }
    if p > MAX_SCRYPT_PARALLELISM {
        return Err(refused(format!(
            "scrypt parallelism {p} is more than the {MAX_SCRYPT_PARALLELISM} allowed"
        )));
    }
    Ok(())
}

fn add_work(scan: &mut Prescan<'_>, work: u64, limits: &PfxLimits) -> Result<(), ContentError> {
    scan.work = scan.work.saturating_add(work);
    if scan.work > limits.max_work {
        return Err(refused(format!(
            "its key derivations need more than the {} work units allowed (--max-pfx-kdf-work)",
            limits.max_work
        )));
    }
    Ok(())
}

/// Fails when DER in `input` nests deeper than [`MAX_DER_DEPTH`] (iteratively: no recursion).
/// Primitive values are not looked into; constructed ones must hold well-formed TLVs.
fn depth(input: &[u8]) -> Result<(), ContentError> {
    let mut stack: Vec<&[u8]> = vec![input];
    while let Some(top) = stack.last_mut() {
        if top.is_empty() {
            stack.pop();
            continue;
        }
        let (tag, body, rest) = read(top)?;
        *top = rest;
        if tag & 0x20 != 0 {
            if stack.len() >= MAX_DER_DEPTH {
                return Err(refused(format!(
                    "its DER nests deeper than {MAX_DER_DEPTH} levels"
                )));
            }
            stack.push(body);
        }
    }
    Ok(())
}

/// One DER TLV: `(tag, body, rest)`. Single-byte tags, definite lengths of at most 4 bytes.
fn read(input: &[u8]) -> Result<(u8, &[u8], &[u8]), ContentError> {
    let [tag, first, rest @ ..] = input else {
        return Err(malformed("truncated DER"));
    };
    if tag & 0x1f == 0x1f {
        return Err(malformed("a multi-byte DER tag"));
    }
    let (len, rest) = match *first {
        short @ 0..=0x7f => (usize::from(short), rest),
        0x80 => return Err(malformed("an indefinite length (BER, not DER)")),
        long => {
            let count = usize::from(long & 0x7f);
            if count > 4 || rest.len() < count {
                return Err(malformed("a DER length"));
            }
            let (bytes, rest) = rest.split_at(count);
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, rest)
        }
    };
    if rest.len() < len {
        return Err(malformed("a DER length beyond the end of the data"));
    }
    let (body, rest) = rest.split_at(len);
    Ok((*tag, body, rest))
}

fn expect(tag: u8, want: u8, body: &[u8]) -> Result<&[u8], ContentError> {
    if tag == want {
        Ok(body)
    } else {
        Err(malformed("an unexpected DER element"))
    }
}

/// Sequential reader of the fields of a constructed value.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn next(&mut self, tag: u8) -> Result<&'a [u8], ContentError> {
        let (found, body, rest) = read(self.0)?;
        self.0 = rest;
        expect(found, tag, body)
    }

    fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, ContentError> {
        match self.0.first() {
            Some(&found) if found == tag => self.next(tag).map(Some),
            _ => Ok(None),
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.0
    }

    fn end(&self) -> Result<(), ContentError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(malformed("unexpected DER fields"))
        }
    }
}

fn oid(body: &[u8]) -> Result<ObjectIdentifier, ContentError> {
    ObjectIdentifier::from_bytes(body).map_err(|_| malformed("an object identifier"))
}

fn oid_text(oid: &ObjectIdentifier) -> String {
    crate::text::echo(&oid.to_string()).into_owned()
}

/// A DER header for `len` body bytes with `tag`.
fn der_header(tag: u8, len: usize, out: &mut Vec<u8>) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn refused(problem: String) -> ContentError {
    ContentError(format!("PFX refused: {problem}"))
}

fn malformed(what: &str) -> ContentError {
    ContentError(format!(
        "failed to decode PFX: malformed PKCS#12 structure ({what})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::pfx;

    use crate::content::pkcs12_der as bombs;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/content/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap()
    }

    const FIXTURES: &[&str] = &[
        "legacy.pfx.b64",
        "modern.pfx.b64",
        "ec.pfx.b64",
        "noski.pfx.b64",
        "incomplete.pfx.b64",
        "password.pfx.b64",
        "upstream/ec-chain.pfx.b64",
        "upstream/windows-rsa.pfx.b64",
    ];

    #[test]
    fn every_fixture_passes_and_costs_little() {
        for name in FIXTURES {
            let der = fixture(name);
            let scan =
                prescan(&der, &PfxLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(scan.work < 100_000, "{name}: {} units", scan.work);
            check(&der, &PfxLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // The legacy layout: 2048-iteration SHA-1 MAC (×2), RC2-40 certificate safe (key + IV,
        // ×4: inspection and parse, both password forms), 3DES key bag (key 2 blocks + IV, ×2).
        let legacy = fixture("legacy.pfx.b64");
        let legacy = prescan(&legacy, &PfxLimits::default()).unwrap();
        assert_eq!(legacy.encrypted_safes(), 1);
        assert_eq!(legacy.work, 2048 * (2 + 2 * 4 + 3 * 2));
    }

    #[test]
    fn every_bomb_is_refused_before_any_derivation() {
        for (name, der, expected) in bombs::bombs() {
            let started = std::time::Instant::now();
            let err = check(&der, &PfxLimits::default()).unwrap_err().0;
            assert!(err.contains(expected), "{name}: {err}");
            assert!(err.len() < 300, "{name}: {err}");
            // The pre-scan alone refuses them (nothing is decrypted or derived).
            assert_eq!(prescan(&der, &PfxLimits::default()).unwrap_err().0, err);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{name}"
            );
            // And so does the one PFX opening every path uses.
            let Err(opened) = pfx::open(&der) else {
                panic!("{name} opened")
            };
            assert_eq!(opened.0, err, "{name}");
        }
    }

    #[test]
    fn limits_are_the_ones_configured() {
        let der = fixture("modern.pfx.b64");
        let tight = |limits: PfxLimits| check(&der, &limits).unwrap_err().0;
        let defaults = PfxLimits::default();
        assert!(
            tight(PfxLimits {
                max_iterations: 2047,
                ..defaults
            })
            .contains("2048 iterations, more than the 2047 allowed (--max-pfx-kdf-iterations)")
        );
        assert!(
            tight(PfxLimits {
                max_bags: 1,
                ..defaults
            })
            .contains("more than 1 bags")
        );
        assert!(
            tight(PfxLimits {
                max_safes: 1,
                ..defaults
            })
            .contains("more than 1 safes")
        );
        assert!(
            tight(PfxLimits {
                max_work: 1000,
                ..defaults
            })
            .contains("--max-pfx-kdf-work")
        );
        assert!(
            tight(PfxLimits {
                max_bytes: 100,
                ..defaults
            })
            .contains("more than the 100 allowed (--max-pfx-bytes)")
        );
    }

    #[test]
    fn scrypt_within_the_memory_cap_is_admitted_and_counted() {
        let small = bombs::pfx(
            &[bombs::encrypted_safe(bombs::pbes2_scrypt(14, 1, 1))],
            None,
        );
        let scan = prescan(&small, &PfxLimits::default()).unwrap();
        assert_eq!(scan.work, (1 << 14) * SCRYPT_UNITS_PER_NR * 2);
        let err = prescan(
            &bombs::pfx(
                &[bombs::encrypted_safe(bombs::pbes2_scrypt(16, 1, 1))],
                None,
            ),
            &PfxLimits::default(),
        )
        .unwrap_err()
        .0;
        assert!(
            err.contains("8192 KiB of memory, more than the 4096 KiB"),
            "{err}"
        );
        let err = prescan(
            &bombs::pfx(
                &[bombs::encrypted_safe(bombs::pbes2_scrypt(10, 1, 17))],
                None,
            ),
            &PfxLimits::default(),
        )
        .unwrap_err()
        .0;
        assert!(err.contains("parallelism 17"), "{err}");
        // The junk ciphertext does not decrypt: the inspection finds nothing more.
        check(&small, &PfxLimits::default()).unwrap();
    }

    #[test]
    fn unknown_algorithms_are_refused_by_name() {
        let rc4 = bombs::seq(&[
            bombs::oid("1.2.840.113549.1.12.1.1"),
            bombs::seq(&[bombs::octets(&[1; 8]), bombs::int(2048)]),
        ]);
        let err = prescan(
            &bombs::pfx(&[bombs::encrypted_safe(rc4)], None),
            &PfxLimits::default(),
        )
        .unwrap_err()
        .0;
        assert_eq!(
            err,
            "PFX refused: encryption algorithm 1.2.840.113549.1.12.1.1 is not supported"
        );
        let md5_mac = bombs::pfx(&[], Some(bombs::mac("1.2.840.113549.2.5", 1)));
        let err = prescan(&md5_mac, &PfxLimits::default()).unwrap_err().0;
        assert_eq!(
            err,
            "PFX refused: MAC digest 1.2.840.113549.2.5 is not supported"
        );
        let other_kdf = bombs::seq(&[
            bombs::oid(bombs::PBES2),
            bombs::seq(&[
                bombs::seq(&[bombs::oid("1.2.3.4"), bombs::null()]),
                bombs::seq(&[bombs::oid(bombs::AES256_CBC), bombs::octets(&[4; 16])]),
            ]),
        ]);
        let err = prescan(
            &bombs::pfx(&[bombs::data_safe(&[bombs::shrouded_bag(other_kdf)])], None),
            &PfxLimits::default(),
        )
        .unwrap_err()
        .0;
        assert!(
            err.contains("unsupported key derivation or cipher"),
            "{err}"
        );
    }

    #[test]
    fn bags_inside_encrypted_safes_are_counted_after_inspection() {
        // A real encrypted safe (OpenSSL's RC2-40 certificate safe) whose plaintext holds
        // three certificate bags: with room for the outer bag only, the inspection refuses.
        let der = fixture("legacy.pfx.b64");
        let outer = prescan(&der, &PfxLimits::default()).unwrap();
        assert_eq!(outer.bags, 1);
        let limits = PfxLimits {
            max_bags: 3,
            ..PfxLimits::default()
        };
        prescan(&der, &limits).unwrap();
        assert!(
            check(&der, &limits)
                .unwrap_err()
                .0
                .contains("more than 3 bags")
        );
        check(
            &der,
            &PfxLimits {
                max_bags: 4,
                ..limits
            },
        )
        .unwrap();
    }

    #[test]
    fn truncated_and_garbage_inputs_fail_cleanly() {
        let der = fixture("modern.pfx.b64");
        for cut in 0..der.len() {
            assert!(check(&der[..cut], &PfxLimits::default()).is_err(), "{cut}");
        }
        for input in [
            &b""[..],
            b"\x30\x80\x00\x00",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x1f\x01\x00",
        ] {
            let err = check(input, &PfxLimits::default()).unwrap_err().0;
            assert!(err.starts_with("failed to decode PFX: malformed"), "{err}");
        }
    }
}
