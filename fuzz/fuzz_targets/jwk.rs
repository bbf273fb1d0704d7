//! Arbitrary JSON Web Key fields → `content::render_key` (JWK → PKIX `PUBLIC KEY` PEM).
//!
//! Input framing (so seeds can be written from real keys): `kty \0 crv \0` then `n`, `e`, `x`, `y`
//! each as a big-endian `u16` length and that many bytes. An empty `kty`/`crv` is absent; a length
//! of `0xFFFF` or a missing field is absent; a short field takes what is left.
#![no_main]

use akv_csi_provider::content::{JsonWebKey, render_key};
use libfuzzer_sys::fuzz_target;

/// Length prefix that stands for an absent byte field.
const ABSENT: usize = 0xFFFF;

fn text(data: &mut &[u8]) -> Option<String> {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let field = String::from_utf8_lossy(&data[..end]).into_owned();
    *data = data.get(end + 1..).unwrap_or_default();
    (!field.is_empty()).then_some(field)
}

fn bytes(data: &mut &[u8]) -> Option<Vec<u8>> {
    let [hi, lo, rest @ ..] = *data else {
        *data = &[];
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if len == ABSENT {
        *data = rest;
        return None;
    }
    let (field, rest) = rest.split_at(len.min(rest.len()));
    *data = rest;
    Some(field.to_vec())
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let jwk = JsonWebKey {
        kty: text(&mut data),
        crv: text(&mut data),
        n: bytes(&mut data),
        e: bytes(&mut data),
        x: bytes(&mut data),
        y: bytes(&mut data),
    };
    let _ = render_key(&jwk);
});
