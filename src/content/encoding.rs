//! `objectEncoding` and the base64 decoding of PFX secrets, with the Go provider's semantics:
//! base64 is the standard alphabet with padding required (`base64.StdEncoding`, which skips `\r`
//! and `\n` but no other whitespace and accepts non-zero trailing bits); hex accepts either case.
//! Errors name the encoding and the byte offset, never the offending input.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::ContentError;
use super::ObjectEncoding;

/// Go's `base64.StdEncoding` (not `.Strict()`): padding required, trailing bits ignored.
const GO_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Applies `objectEncoding` to a file's contents.
pub(crate) fn apply(encoding: ObjectEncoding, contents: Vec<u8>) -> Result<Vec<u8>, ContentError> {
    match encoding {
        ObjectEncoding::Utf8 => Ok(contents),
        ObjectEncoding::Base64 => decode_base64(&contents, "objectEncoding base64"),
        ObjectEncoding::Hex => decode_hex(&contents),
    }
}

/// Standard base64 as Go decodes it; `what` names the input in the error.
pub(crate) fn decode_base64(text: &[u8], what: &str) -> Result<Vec<u8>, ContentError> {
    let skipped = |b: &u8| *b == b'\r' || *b == b'\n';
    let kept: Vec<u8> = text.iter().copied().filter(|b| !skipped(b)).collect();
    GO_STD.decode(&kept).map_err(|err| {
        let at = match err {
            base64::DecodeError::InvalidByte(at, _)
            | base64::DecodeError::InvalidLastSymbol(at, _) => at,
            // Truncated or mis-padded: Go blames the start of the last, incomplete quantum.
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => {
                kept.len().saturating_sub(1) / 4 * 4
            }
        };
        ContentError(format!(
            "{what}: illegal base64 data at input byte {}",
            original_offset(text, at, skipped)
        ))
    })
}

/// Offset in `text` of the `filtered_at`-th byte that `skipped` keeps.
fn original_offset(text: &[u8], filtered_at: usize, skipped: impl Fn(&u8) -> bool) -> usize {
    text.iter()
        .enumerate()
        .filter(|(_, b)| !skipped(b))
        .nth(filtered_at)
        .map_or(text.len(), |(i, _)| i)
}

/// Go's `hex.DecodeString`: the first invalid character is reported before an odd length.
fn decode_hex(text: &[u8]) -> Result<Vec<u8>, ContentError> {
    let fail = |problem: String| ContentError(format!("objectEncoding hex: {problem}"));
    if let Some(at) = text.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(fail(format!("invalid hex character at input byte {at}")));
    }
    hex::decode(text)
        .map_err(|_| fail(format!("odd length hex string ({} characters)", text.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_raw() {
        assert_eq!(
            apply(ObjectEncoding::Utf8, b"abcdefg".to_vec()).unwrap(),
            b"abcdefg"
        );
    }

    #[test]
    fn base64_and_hex_decode() {
        let b64 = apply(
            ObjectEncoding::Base64,
            b"QmFzZTY0RW5jb2RlZFN0cmluZw==".to_vec(),
        )
        .unwrap();
        assert_eq!(b64, b"Base64EncodedString");
        let hex = apply(
            ObjectEncoding::Hex,
            b"486578456E636F646564537472696E67".to_vec(),
        )
        .unwrap();
        assert_eq!(hex, b"HexEncodedString");
        let lower = apply(
            ObjectEncoding::Hex,
            b"486578456e636f646564537472696e67".to_vec(),
        )
        .unwrap();
        assert_eq!(lower, b"HexEncodedString");
    }

    #[test]
    fn base64_is_go_std_encoding() {
        // Go's StdEncoding skips CR/LF, nothing else.
        assert_eq!(decode_base64(b"QmFz\r\nZTY0", "x").unwrap(), b"Base64");
        // Non-zero trailing bits are accepted (StdEncoding is not Strict).
        assert_eq!(decode_base64(b"QR==", "x").unwrap(), b"A");
        let err = |s: &[u8]| decode_base64(s, "objectEncoding base64").unwrap_err().0;
        assert_eq!(
            err(b"QmFz ZTY0"),
            "objectEncoding base64: illegal base64 data at input byte 4"
        );
        assert_eq!(
            err(b"Qm\nF*"),
            "objectEncoding base64: illegal base64 data at input byte 4"
        );
        assert_eq!(
            err(b"QmFzZTY0-_"),
            "objectEncoding base64: illegal base64 data at input byte 8"
        );
        assert_eq!(
            err(b"QmFzZTY"),
            "objectEncoding base64: illegal base64 data at input byte 4"
        );
        assert_eq!(
            err(b"QQ"),
            "objectEncoding base64: illegal base64 data at input byte 0",
            "padding is required"
        );
    }

    #[test]
    fn bad_hex_names_offset_not_value() {
        let err = apply(ObjectEncoding::Hex, b"48657Z".to_vec())
            .unwrap_err()
            .0;
        assert_eq!(
            err,
            "objectEncoding hex: invalid hex character at input byte 5"
        );
        let err = apply(ObjectEncoding::Hex, b"486".to_vec()).unwrap_err().0;
        assert_eq!(
            err,
            "objectEncoding hex: odd length hex string (3 characters)"
        );
    }
}
