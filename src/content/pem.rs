//! PEM exactly as Go's `encoding/pem` reads and writes it, because the Go provider's output
//! (`.crt`/`.key` split, chain rebuild) is defined by `pem.Decode` + `pem.EncodeToMemory`.
//!
//! Decoding: a block starts with `-----BEGIN ` at the start of the input or of a line; `Key: value`
//! header lines follow; the body is base64 with spaces, tabs and line breaks ignored; the END line
//! must name the same label and have nothing after it. A malformed block is skipped and the search
//! goes on after its BEGIN line. Encoding: headers (`Proc-Type` first, then sorted) and a blank line,
//! 64-character base64 lines, `\n` line endings.
//!
//! Decoding runs in time linear in the input (Go's algorithm rescans the rest of the input for
//! every BEGIN line of a hostile bundle; see [`decode`]).

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
    pub(crate) fn is_certificate(&self) -> bool {
        self.label == b"CERTIFICATE"
    }
}

/// Every block `pem.Decode` would find, in order, in time linear in `data` (see [`decode`]).
pub(crate) fn decode_all(data: &[u8]) -> Vec<Block> {
    let mut search = Search {
        data,
        begins: Finder::new(b"\n-----BEGIN "),
        ends: Finder::new(b"\n-----END "),
    };
    let mut blocks = Vec::new();
    let mut rest = data;
    while let Some((block, after)) = decode(rest, &mut search) {
        blocks.push(block);
        rest = after;
    }
    blocks
}

/// The input and cursors over its BEGIN and END markers; every `rest` is a suffix of `data`.
struct Search<'a> {
    data: &'a [u8],
    begins: Finder,
    ends: Finder,
}

impl Search<'_> {
    /// Offset in `data` of the suffix `rest`.
    fn offset(&self, rest: &[u8]) -> usize {
        self.data.len() - rest.len()
    }
}

/// First position at or after a given offset where `needle` starts, remembering the last answer:
/// `decode_all` asks with non-decreasing offsets, so each byte is searched about once.
struct Finder {
    needle: &'static [u8],
    /// `(from, found)`: the first match at or after `from` is `found` (`None`: no match).
    last: Option<(usize, Option<usize>)>,
}

impl Finder {
    fn new(needle: &'static [u8]) -> Self {
        Self { needle, last: None }
    }

    fn next(&mut self, data: &[u8], from: usize) -> Option<usize> {
        if let Some((last_from, found)) = self.last
            && last_from <= from
        {
            match found {
                None => return None,
                Some(at) if from <= at => return Some(at),
                Some(_) => {}
            }
        }
        let found = find(&data[from.min(data.len())..], self.needle).map(|at| from + at);
        self.last = Some((from, found));
        found
    }
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
///
/// Same result as Go's, without its quadratic cases: marker searches go through `search`'s
/// cursors, and a block whose body holds another BEGIN marker is skipped at once (its body
/// has `-`, which is not base64, so Go fails it too and resumes at the same place).
fn decode<'a>(data: &'a [u8], search: &mut Search<'a>) -> Option<(Block, &'a [u8])> {
    let mut rest = data;
    loop {
        rest = match rest.strip_prefix(BEGIN) {
            Some(after) => after,
            None => {
                let at = search.begins.next(search.data, search.offset(rest))?;
                &search.data[at + 1 + BEGIN.len()..]
            }
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
        let offset = search.offset(rest);
        let end_at = if headers.is_empty() && rest.starts_with(END) {
            Some((0, END.len()))
        } else {
            let at = search.ends.next(search.data, offset).map(|at| at - offset);
            at.map(|at| (at, at + 1 + END.len()))
        };
        let Some((end_at, trailer_at)) = end_at else {
            continue;
        };
        // A BEGIN marker whose dashes fall inside the body: not base64, the block fails.
        if search
            .begins
            .next(search.data, offset.saturating_sub(1))
            .is_some_and(|at| at < offset + end_at)
        {
            continue;
        }
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

    /// The straightforward port of Go's `pem.Decode` (quadratic on hostile input), kept as the
    /// reference the linear `decode_all` must agree with.
    fn reference_decode_all(mut data: &[u8]) -> Vec<Block> {
        let mut blocks = Vec::new();
        while let Some((block, rest)) = reference_decode(data) {
            blocks.push(block);
            data = rest;
        }
        blocks
    }

    fn reference_decode(data: &[u8]) -> Option<(Block, &[u8])> {
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

    #[test]
    fn agrees_with_the_reference_on_random_token_soup() {
        const TOKENS: &[&str] = &[
            "-----BEGIN A-----",
            "-----BEGIN B-----",
            "-----BEGIN A:B-----",
            "-----END A-----",
            "-----END B-----",
            "-----BEGIN ",
            "-----END ",
            "-----",
            "\n",
            "\n",
            "\n",
            "\r\n",
            "QQ==",
            "dGVzdA==",
            "QUJD",
            "Proc-Type: 4,ENCRYPTED",
            "k: v",
            " ",
            "\t",
            "!",
            "x",
            "A",
            "-",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let input: String = (0..len)
                .map(|_| TOKENS[(next() % TOKENS.len() as u64) as usize])
                .collect();
            assert_eq!(
                decode_all(input.as_bytes()),
                reference_decode_all(input.as_bytes()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn hostile_bundles_decode_in_linear_time() {
        // Each shape made Go's algorithm (and the reference) rescan the rest of the input for
        // every BEGIN line: no END at all, one mismatched END at the very end, a matching END
        // followed by a long trailer line, bodies that are not base64. Measured: the reference
        // took 201 s (debug build) on 20,000 BEGIN lines (360 KB); `decode_all` 47 ms.
        let many = "-----BEGIN A-----\n".repeat(100_000);
        let tail = format!("\n-----END A-----{}", "x".repeat(100_000));
        for input in [
            many.clone(),
            format!("{many}\n-----END B-----\n"),
            format!("{many}{tail}"),
            "-----BEGIN A-----\n!\n".repeat(100_000) + "-----END A-----\n",
        ] {
            let started = std::time::Instant::now();
            assert!(decode_all(input.as_bytes()).is_empty());
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{:?} for {} bytes",
                started.elapsed(),
                input.len()
            );
        }
    }

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
