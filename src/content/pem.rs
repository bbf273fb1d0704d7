//! PEM exactly as Go's `encoding/pem` reads and writes it, because the Go provider's output
//! (`.crt`/`.key` split, chain rebuild) is defined by `pem.Decode` + `pem.EncodeToMemory`.
//!
//! Decoding: a block starts with `-----BEGIN ` at the start of the input or of a line; `Key: value`
//! header lines follow; the body is base64 with spaces, tabs and line breaks ignored; the END line
//! must name the same label and have nothing after it. A malformed block is skipped and the search
//! goes on after its BEGIN line. Encoding: headers (`Proc-Type` first, then sorted) and a blank line,
//! 64-character base64 lines, `\n` line endings.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::encoding;

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";
const LINE_LEN: usize = 64;

/// One decoded PEM block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub label: Vec<u8>,
    pub headers: BTreeMap<Vec<u8>, Vec<u8>>,
    pub der: Vec<u8>,
}

impl Block {
    pub fn is_certificate(&self) -> bool {
        self.label == b"CERTIFICATE"
    }
}

/// Every block `pem.Decode` would find, in order.
pub(crate) fn decode_all(mut data: &[u8]) -> Vec<Block> {
    let mut blocks = Vec::new();
    while let Some((block, rest)) = decode(data) {
        blocks.push(block);
        data = rest;
    }
    blocks
}

/// One `pem.EncodeToMemory` block without headers.
pub(crate) fn encode(label: &str, der: &[u8]) -> Vec<u8> {
    encode_block(label.as_bytes(), &BTreeMap::new(), der)
}

/// One `pem.EncodeToMemory` block.
pub(crate) fn encode_block(
    label: &[u8],
    headers: &BTreeMap<Vec<u8>, Vec<u8>>,
    der: &[u8],
) -> Vec<u8> {
    const PROC_TYPE: &[u8] = b"Proc-Type";
    let mut out = [BEGIN, label, DASHES, b"\n"].concat();
    let proc_type = headers.get_key_value(PROC_TYPE);
    let others = headers.iter().filter(|(k, _)| k.as_slice() != PROC_TYPE);
    for (key, value) in proc_type.into_iter().chain(others) {
        out.extend_from_slice(&[key.as_slice(), b": ", value, b"\n"].concat());
    }
    if !headers.is_empty() {
        out.push(b'\n');
    }
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    for line in body.as_bytes().chunks(LINE_LEN) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(&[END, label, DASHES, b"\n"].concat());
    out
}

/// `pem.Decode`: the first well-formed block and the input after it.
fn decode(data: &[u8]) -> Option<(Block, &[u8])> {
    let mut rest = data;
    loop {
        rest = match rest.strip_prefix(BEGIN) {
            Some(after) => after,
            None => &rest[find(rest, b"\n-----BEGIN ")? + 1 + BEGIN.len()..],
        };
        let (type_line, after) = line(rest);
        rest = after;
        let Some(label) = type_line.strip_suffix(DASHES) else {
            continue;
        };

        let mut headers = BTreeMap::new();
        loop {
            if rest.is_empty() {
                return None;
            }
            let (header, next) = line(rest);
            let Some(colon) = header.iter().position(|&b| b == b':') else {
                break;
            };
            headers.insert(
                header[..colon].trim_ascii().to_vec(),
                header[colon + 1..].trim_ascii().to_vec(),
            );
            rest = next;
        }

        // Without headers the END line may follow the BEGIN line directly.
        let end_at = if headers.is_empty() && rest.starts_with(END) {
            Some((0, END.len()))
        } else {
            find(rest, b"\n-----END ").map(|at| (at, at + 1 + END.len()))
        };
        let Some((end_at, trailer_at)) = end_at else {
            continue;
        };
        let Some(trailer) = rest[trailer_at..].get(..label.len() + DASHES.len()) else {
            continue;
        };
        let after_trailer = &rest[trailer_at + trailer.len()..];
        if !trailer.starts_with(label)
            || !trailer.ends_with(DASHES)
            || !line(after_trailer).0.is_empty()
        {
            continue;
        }
        let body: Vec<u8> = rest[..end_at]
            .iter()
            .copied()
            .filter(|b| !b" \t".contains(b))
            .collect();
        let Ok(der) = encoding::decode_base64(&body, "PEM") else {
            continue;
        };
        let (_, after_block) = line(&rest[trailer_at..]);
        return Some((
            Block {
                label: label.to_vec(),
                headers,
                der,
            },
            after_block,
        ));
    }
}

/// Go's `getLine`: the first line without its `\r\n`/`\n` and trailing blanks, and the rest.
fn line(data: &[u8]) -> (&[u8], &[u8]) {
    let (mut line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[data.len()..]),
    };
    line = line.strip_suffix(b"\r").unwrap_or(line);
    while let Some((last, init)) = line.split_last() {
        if *last != b' ' && *last != b'\t' {
            break;
        }
        line = init;
    }
    (line, rest)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_go() {
        assert_eq!(
            encode("CERTIFICATE", b"test"),
            b"-----BEGIN CERTIFICATE-----\ndGVzdA==\n-----END CERTIFICATE-----\n"
        );
        let long = encode("X", &[0u8; 60]);
        let text = String::from_utf8(long).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 16);
        assert_eq!(encode("X", b""), b"-----BEGIN X-----\n-----END X-----\n");
    }

    #[test]
    fn headers_are_kept_proc_type_first() {
        let input = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\ndGVzdA==\n-----END RSA PRIVATE KEY-----\n";
        let blocks = decode_all(input);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].headers.len(), 2);
        let b = &blocks[0];
        assert_eq!(encode_block(&b.label, &b.headers, &b.der), input);
    }

    #[test]
    fn decodes_leniently_like_go() {
        let input = b"junk\n-----BEGIN A-----\r\ndGVz\r\n dA==\t\r\n-----END A-----  \r\ntrailing\n\n-----BEGIN B-----\nQQ==\n-----END B-----";
        let blocks = decode_all(input);
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].label.as_slice(), blocks[0].der.as_slice()),
            (&b"A"[..], &b"test"[..])
        );
        assert_eq!(
            (blocks[1].label.as_slice(), blocks[1].der.as_slice()),
            (&b"B"[..], &b"A"[..])
        );
    }

    #[test]
    fn skips_malformed_blocks() {
        // BEGIN not at a line start, mismatched END, bad base64: all skipped.
        let input = b"x-----BEGIN A-----\nQQ==\n-----END A-----\n-----BEGIN B-----\nQQ==\n-----END C-----\n-----BEGIN D-----\n!!!!\n-----END D-----\n-----BEGIN E-----\nQQ==\n-----END E-----\n";
        let labels: Vec<Vec<u8>> = decode_all(input).into_iter().map(|b| b.label).collect();
        assert_eq!(labels, vec![b"E".to_vec()]);
    }
}
