//! Hostile PKCS#12 files built in test code: well-formed DER whose algorithms ask for expensive
//! key derivations, too many bags or deep nesting. Ciphertexts are junk: the limits must refuse
//! these before anything is decrypted. Shared by the unit tests of `content::pfx_limits` (via
//! `#[path]`) and `tests/isolation_pkcs12.rs`.
#![allow(dead_code)]
// `pub` for the test crates that include this module, not a library API.
#![allow(unreachable_pub)]

use der::Encode;
use der::asn1::ObjectIdentifier;

pub const DATA: &str = "1.2.840.113549.1.7.1";
pub const ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
pub const KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
pub const SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
pub const CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
pub const X509_CERT: &str = "1.2.840.113549.1.9.22.1";
pub const SHA1: &str = "1.3.14.3.2.26";
pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
pub const PBE_SHA1_3DES: &str = "1.2.840.113549.1.12.1.3";
pub const PBES2: &str = "1.2.840.113549.1.5.13";
pub const PBKDF2: &str = "1.2.840.113549.1.5.12";
pub const SCRYPT: &str = "1.3.6.1.4.1.11591.4.11";
pub const HMAC_SHA256: &str = "1.2.840.113549.2.9";
pub const HMAC_SHA512: &str = "1.2.840.113549.2.11";
pub const AES256_CBC: &str = "2.16.840.1.101.3.4.1.42";

/// One DER TLV.
pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

pub fn octets(body: &[u8]) -> Vec<u8> {
    tlv(0x04, body)
}

pub fn explicit0(inner: Vec<u8>) -> Vec<u8> {
    tlv(0xa0, &inner)
}

pub fn oid(dotted: &str) -> Vec<u8> {
    ObjectIdentifier::new_unwrap(dotted).to_der().unwrap()
}

pub fn int(value: u64) -> Vec<u8> {
    der::asn1::Uint::new(&value.to_be_bytes())
        .unwrap()
        .to_der()
        .unwrap()
}

pub fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

/// `PFX { version 3, authSafe data { AuthenticatedSafe(safes) }, macData? }`.
pub fn pfx(safes: &[Vec<u8>], mac: Option<Vec<u8>>) -> Vec<u8> {
    let auth_safe = seq(&[oid(DATA), explicit0(octets(&seq(safes)))]);
    let mut parts = vec![int(3), auth_safe];
    parts.extend(mac);
    seq(&parts)
}

/// `MacData` with `digest` and `iterations` (junk MAC value).
pub fn mac(digest: &str, iterations: u64) -> Vec<u8> {
    seq(&[
        seq(&[seq(&[oid(digest), null()]), octets(&[0; 32])]),
        octets(&[7; 8]),
        int(iterations),
    ])
}

/// A plaintext safe holding `bags`.
pub fn data_safe(bags: &[Vec<u8>]) -> Vec<u8> {
    seq(&[oid(DATA), explicit0(octets(&seq(bags)))])
}

/// An `encryptedData` safe under `algorithm` with a junk ciphertext.
pub fn encrypted_safe(algorithm: Vec<u8>) -> Vec<u8> {
    let info = seq(&[oid(DATA), algorithm, tlv(0x80, &[0x5a; 32])]);
    seq(&[oid(ENCRYPTED_DATA), explicit0(seq(&[int(0), info]))])
}

/// A shrouded key bag under `algorithm` with a junk ciphertext.
pub fn shrouded_bag(algorithm: Vec<u8>) -> Vec<u8> {
    seq(&[
        oid(SHROUDED_KEY_BAG),
        explicit0(seq(&[algorithm, octets(&[0x5a; 32])])),
    ])
}

/// A key bag with an empty value (19 bytes: many fit under the size cap).
pub fn empty_key_bag() -> Vec<u8> {
    seq(&[oid(KEY_BAG), explicit0(seq(&[]))])
}

/// A certificate bag holding `cert` (DER, not checked).
pub fn cert_bag(cert: &[u8]) -> Vec<u8> {
    seq(&[
        oid(CERT_BAG),
        explicit0(seq(&[oid(X509_CERT), explicit0(octets(cert))])),
    ])
}

/// `pbeWithSHAAnd3-KeyTripleDES-CBC` with `iterations`.
pub fn pbe_3des(iterations: u64) -> Vec<u8> {
    seq(&[oid(PBE_SHA1_3DES), seq(&[octets(&[1; 8]), int(iterations)])])
}

/// PBES2 with PBKDF2 (`prf`, `iterations`) and AES-256-CBC.
pub fn pbes2_pbkdf2(prf: &str, iterations: u64) -> Vec<u8> {
    let kdf = seq(&[
        oid(PBKDF2),
        seq(&[octets(&[2; 16]), int(iterations), seq(&[oid(prf), null()])]),
    ]);
    seq(&[oid(PBES2), seq(&[kdf, aes256()])])
}

/// PBES2 with scrypt (N = 2^`log_n`, `r`, `p`) and AES-256-CBC.
pub fn pbes2_scrypt(log_n: u32, r: u64, p: u64) -> Vec<u8> {
    let kdf = seq(&[
        oid(SCRYPT),
        seq(&[octets(&[3; 16]), int(1 << log_n), int(r), int(p)]),
    ]);
    seq(&[oid(PBES2), seq(&[kdf, aes256()])])
}

fn aes256() -> Vec<u8> {
    seq(&[oid(AES256_CBC), octets(&[4; 16])])
}

/// The bombs of issue #10 item 2, each with the words its refusal must contain.
pub fn bombs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let pbe = || pbe_3des(2048);
    vec![
        (
            "scrypt N=2^17 r=8 p=16",
            pfx(
                &[encrypted_safe(pbes2_scrypt(17, 8, 16))],
                Some(mac(SHA256, 2048)),
            ),
            "scrypt",
        ),
        (
            "PBKDF2 2^31 iterations",
            pfx(
                &[data_safe(&[shrouded_bag(pbes2_pbkdf2(
                    HMAC_SHA256,
                    1 << 31,
                ))])],
                Some(mac(SHA256, 2048)),
            ),
            "PBKDF2 key derivation asks for 2147483648 iterations",
        ),
        (
            "MAC 2^31-1 iterations",
            pfx(
                &[data_safe(&[shrouded_bag(pbe())])],
                Some(mac(SHA1, (1 << 31) - 1)),
            ),
            "MAC asks for 2147483647 iterations",
        ),
        (
            "10,000 bags",
            pfx(
                &[data_safe(&vec![empty_key_bag(); 10_000])],
                Some(mac(SHA1, 2048)),
            ),
            "more than 64 bags",
        ),
        (
            "1,000 safes",
            pfx(&vec![data_safe(&[]); 1_000], Some(mac(SHA1, 2048))),
            "more than 16 safes",
        ),
        (
            "64 bags at 100,000 iterations",
            pfx(
                &[data_safe(&vec![
                    shrouded_bag(pbes2_pbkdf2(
                        HMAC_SHA512,
                        100_000
                    ));
                    64
                ])],
                Some(mac(SHA1, 2048)),
            ),
            "work units",
        ),
        ("deep nesting", deep(2_000), "nests deeper than 32"),
        (
            "oversize",
            pfx(&[data_safe(&[cert_bag(&vec![0; 300_000])])], None),
            "more than the 262144 allowed",
        ),
    ]
}

/// A PFX whose certificate bag holds `levels` nested SEQUENCEs.
pub fn deep(levels: usize) -> Vec<u8> {
    let mut nested = Vec::new();
    for _ in 0..levels {
        nested = tlv(0x30, &nested);
    }
    pfx(&[data_safe(&[cert_bag(&nested)])], None)
}
