//! Unit tests of `authority.rs`, kept beside it so the module itself stays short.

use super::*;

const SOCKET_PATH: &[u8] = b"/var/run/secrets-store-csi-providers/azure.sock";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameHead {
        len: payload.len(),
        kind,
        flags,
        stream,
    }
    .write(&mut out);
    out.extend_from_slice(payload);
    out.to_vec()
}

fn settings() -> Vec<u8> {
    frame(0x4, 0, 0, &[0x00, 0x03, 0, 0, 0, 100])
}

fn connection(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    frames.iter().for_each(|f| bytes.extend_from_slice(f));
    bytes
}

/// Feeds everything, consuming the output between feeds as `h2` would.
fn rewrite(bytes: &[u8]) -> Result<Vec<u8>, FramingError> {
    let mut rewriter = Rewriter::default();
    let mut input = BytesMut::from(bytes);
    let mut all = Vec::new();
    loop {
        let mut output = BytesMut::new();
        rewriter.feed(&mut input, &mut output)?;
        if output.is_empty() {
            break;
        }
        all.extend_from_slice(&output);
    }
    assert!(input.is_empty(), "{} bytes left unconsumed", input.len());
    Ok(all)
}

fn raw_string(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_string(s, &mut out);
    out
}

/// `:authority` as "literal with incremental indexing, indexed name" (static index 1), as
/// grpc-go sends it the first time.
fn indexed_authority_literal(value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x41];
    out.extend(raw_string(value));
    out
}

#[derive(Debug, PartialEq)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    assert!(bytes.starts_with(PREFACE));
    bytes = &bytes[PREFACE.len()..];
    let mut out = Vec::new();
    while let Some(h) = bytes.first_chunk::<FRAME_HEADER_LEN>() {
        let head = FrameHead::parse(h);
        assert!(head.len <= MAX_FRAME_SIZE);
        let payload = bytes[FRAME_HEADER_LEN..FRAME_HEADER_LEN + head.len].to_vec();
        bytes = &bytes[FRAME_HEADER_LEN + head.len..];
        out.push(Frame {
            kind: head.kind,
            flags: head.flags,
            stream: head.stream,
            payload,
        });
    }
    assert!(bytes.is_empty());
    out
}

/// The header blocks of rewritten output, each decoded by a FRESH decoder: proves the output
/// never depends on (or fills) the dynamic table.
fn header_lists(output: &[u8]) -> Vec<Vec<(String, String)>> {
    let mut lists = Vec::new();
    let mut block = Vec::new();
    for f in frames(output) {
        let fragment = match f.kind {
            FRAME_HEADERS => {
                assert!(block.is_empty());
                let skip = if f.flags & FLAG_PRIORITY != 0 {
                    PRIORITY_LEN
                } else {
                    0
                };
                assert_eq!(f.flags & FLAG_PADDED, 0);
                f.payload[skip..].to_vec()
            }
            FRAME_CONTINUATION => f.payload,
            _ => continue,
        };
        block.extend(fragment);
        if f.flags & FLAG_END_HEADERS != 0 {
            let mut fresh = loona_hpack::Decoder::new();
            let list = fresh
                .decode(&block)
                .expect("output block decodes on its own");
            lists.push(
                list.into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                    .collect(),
            );
            block.clear();
        }
    }
    lists
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn grpc_request(authority: &str) -> Vec<(String, String)> {
    pairs(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/v1alpha1.CSIDriverProvider/Mount"),
        (":authority", authority),
        ("content-type", "application/grpc"),
    ])
}

#[test]
fn non_header_frames_pass_through_unchanged() {
    let bytes = connection(&[
        settings(),
        frame(0x0, 0x1, 1, b"hello"),
        frame(0x8, 0, 0, &[0, 0, 1, 0]),
    ]);
    assert_eq!(rewrite(&bytes).unwrap(), bytes);
}

#[test]
fn rfc7541_huffman_requests_keep_a_valid_authority() {
    // RFC 7541 Appendix C.4: three requests with Huffman coding sharing the dynamic table.
    let blocks: [&[u8]; 3] = [
        &[
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ],
        &[
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ],
        &[
            0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f,
            0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
        ],
    ];
    let mut fs = vec![settings()];
    for (i, b) in blocks.iter().enumerate() {
        fs.push(frame(
            FRAME_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            1 + 2 * i as u32,
            b,
        ));
    }
    let lists = header_lists(&rewrite(&connection(&fs)).unwrap());
    let base = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    assert_eq!(lists[0], pairs(&base));
    assert_eq!(
        lists[1],
        pairs(&[
            base[0],
            base[1],
            base[2],
            base[3],
            ("cache-control", "no-cache")
        ])
    );
    assert_eq!(
        lists[2],
        pairs(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ])
    );
}

/// Like grpc-go: the first request indexes `:path`, `:authority` and `content-type`; the second
/// refers to them in the dynamic table.
fn socket_path_requests() -> Vec<u8> {
    let mut first = vec![0x83, 0x86, 0x44];
    first.extend(raw_string(b"/v1alpha1.CSIDriverProvider/Mount"));
    first.extend(indexed_authority_literal(SOCKET_PATH));
    first.push(0x5f);
    first.extend(raw_string(b"application/grpc"));
    // Dynamic table now: 62 content-type, 63 :authority, 64 :path.
    let second = [0x83, 0x86, 0x80 | 64, 0x80 | 63, 0x80 | 62];
    connection(&[
        settings(),
        frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &first),
        frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"),
        frame(FRAME_HEADERS, FLAG_END_HEADERS, 3, &second),
        frame(0x0, FLAG_END_STREAM, 3, b"\0\0\0\0\0"),
    ])
}

#[test]
fn socket_path_authority_becomes_localhost_also_when_indexed() {
    let input = socket_path_requests();
    let mut rewriter = Rewriter::default();
    let mut output = BytesMut::new();
    rewriter
        .feed(&mut BytesMut::from(&input[..]), &mut output)
        .unwrap();
    assert_eq!(rewriter.replaced(), 2);
    let lists = header_lists(&output);
    assert_eq!(
        lists,
        vec![grpc_request("localhost"), grpc_request("localhost")]
    );
    let data: Vec<_> = frames(&output)
        .into_iter()
        .filter(|f| f.kind == 0)
        .map(|f| f.stream)
        .collect();
    assert_eq!(data, [1, 3]);
}

#[test]
fn byte_by_byte_feeding_gives_the_same_output() {
    let input = socket_path_requests();
    let whole = rewrite(&input).unwrap();
    let mut rewriter = Rewriter::default();
    let mut pending = BytesMut::new();
    let mut output = BytesMut::new();
    for b in input {
        pending.extend_from_slice(&[b]);
        rewriter.feed(&mut pending, &mut output).unwrap();
    }
    assert!(pending.is_empty());
    assert_eq!(output.to_vec(), whole);
}

#[test]
fn padding_is_dropped_priority_and_end_stream_kept() {
    let mut payload = vec![3]; // pad length
    payload.extend([0x80, 0, 0, 5, 200]); // exclusive dependency on stream 5, weight 200
    payload.extend([0x83, 0x86]);
    payload.extend(indexed_authority_literal(SOCKET_PATH));
    payload.extend([0, 0, 0]);
    let flags = FLAG_PADDED | FLAG_PRIORITY | FLAG_END_HEADERS | FLAG_END_STREAM;
    let output = rewrite(&connection(&[frame(FRAME_HEADERS, flags, 7, &payload)])).unwrap();
    let fs = frames(&output);
    assert_eq!(fs.len(), 1);
    assert_eq!(
        fs[0].flags,
        FLAG_PRIORITY | FLAG_END_HEADERS | FLAG_END_STREAM
    );
    assert_eq!(fs[0].payload[..PRIORITY_LEN], [0x80, 0, 0, 5, 200]);
    assert_eq!(
        header_lists(&output),
        vec![pairs(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "localhost")
        ])]
    );
}

#[test]
fn continuation_frames_are_joined() {
    let mut block = vec![0x83, 0x86];
    block.extend(indexed_authority_literal(SOCKET_PATH));
    let (a, rest) = block.split_at(3);
    let (b, c) = rest.split_at(10);
    let input = connection(&[
        frame(FRAME_HEADERS, 0, 1, a),
        frame(FRAME_CONTINUATION, 0, 1, b),
        frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, c),
    ]);
    let output = rewrite(&input).unwrap();
    assert_eq!(
        header_lists(&output),
        vec![pairs(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "localhost")
        ])]
    );
}

#[test]
fn large_blocks_are_split_at_the_frame_size() {
    // Two 12 KB values spread over HEADERS + CONTINUATION; the re-encoded block needs 2 frames.
    let big = vec![b'x'; 12_000];
    let mut block = vec![0x83];
    for name in [&b"x-a"[..], b"x-b"] {
        block.push(0x00);
        block.extend(raw_string(name));
        block.extend(raw_string(&big));
    }
    let (a, b) = block.split_at(MAX_FRAME_SIZE);
    let input = connection(&[
        frame(FRAME_HEADERS, 0, 1, a),
        frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, b),
    ]);
    let output = rewrite(&input).unwrap();
    let fs = frames(&output);
    assert_eq!(
        fs.iter().map(|f| (f.kind, f.flags)).collect::<Vec<_>>(),
        [(FRAME_HEADERS, 0), (FRAME_CONTINUATION, FLAG_END_HEADERS)]
    );
    let lists = header_lists(&output);
    assert_eq!(lists[0][1].1.len(), 12_000);
    assert_eq!(lists[0][2].0, "x-b");
}

#[test]
fn malformed_streams_are_errors() {
    let hdr = |flags, stream, payload: &[u8]| frame(FRAME_HEADERS, flags, stream, payload);
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("preface", "preface", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        (
            "too large",
            "maximum frame size",
            connection(&[frame(0x0, 0, 1, &vec![0; MAX_FRAME_SIZE + 1])]),
        ),
        (
            "stream 0",
            "stream 0",
            connection(&[hdr(FLAG_END_HEADERS, 0, &[0x82])]),
        ),
        (
            "interrupted",
            "interrupted",
            connection(&[hdr(0, 1, &[0x82]), settings()]),
        ),
        (
            "headers in block",
            "interrupted",
            connection(&[hdr(0, 1, &[0x82]), hdr(FLAG_END_HEADERS, 3, &[0x82])]),
        ),
        (
            "orphan continuation",
            "without an open header block",
            connection(&[frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, &[0x82])]),
        ),
        (
            "continuation other stream",
            "without an open header block",
            connection(&[
                hdr(0, 1, &[0x82]),
                frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 3, &[0x82]),
            ]),
        ),
        (
            "padding",
            "padding",
            connection(&[hdr(FLAG_PADDED | FLAG_END_HEADERS, 1, &[9, 0x82])]),
        ),
        (
            "empty padded",
            "padding",
            connection(&[hdr(FLAG_PADDED | FLAG_END_HEADERS, 1, &[])]),
        ),
        (
            "short priority",
            "priority",
            connection(&[hdr(FLAG_PRIORITY | FLAG_END_HEADERS, 1, &[0, 0])]),
        ),
        (
            "index 0",
            "index out of bounds",
            connection(&[hdr(FLAG_END_HEADERS, 1, &[0x80])]),
        ),
        (
            "index out of table",
            "index out of bounds",
            connection(&[hdr(FLAG_END_HEADERS, 1, &[0xbe])]),
        ),
        (
            "truncated string",
            "Not enough octets",
            connection(&[hdr(FLAG_END_HEADERS, 1, &[0x41, 0x0a, b'a'])]),
        ),
        (
            "bad huffman",
            "Huffman",
            connection(&[hdr(FLAG_END_HEADERS, 1, &[0x41, 0x81, 0x00])]),
        ),
        (
            "huge integer",
            "Too many octets",
            connection(&[hdr(
                FLAG_END_HEADERS,
                1,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            )]),
        ),
        (
            "table size over settings",
            "table size exceeds",
            connection(&[hdr(FLAG_END_HEADERS, 1, &[0x3f, 0xe2, 0x1f, 0x82])]),
        ),
        (
            "size update at end",
            "size update at the end",
            connection(&[hdr(FLAG_END_HEADERS, 1, &[0x82, 0x20])]),
        ),
    ];
    for (name, expected, bytes) in cases {
        let err = rewrite(&bytes).expect_err(name).to_string();
        assert!(err.contains(expected), "{name}: {err}");
    }
}

#[test]
fn header_list_amplification_is_bounded() {
    // One 4000-byte entry in the dynamic table, then referenced 20 times: 80 KB decoded.
    let mut block = vec![0x40];
    block.extend(raw_string(b"x-big"));
    block.extend(raw_string(&[b'v'; 4000]));
    block.extend([0xbe; 20]);
    let err = rewrite(&connection(&[frame(
        FRAME_HEADERS,
        FLAG_END_HEADERS,
        1,
        &block,
    )]))
    .unwrap_err();
    assert!(matches!(err, FramingError::ListTooLarge), "{err}");
}

#[test]
fn expansion_across_many_blocks_is_fed_within_the_output_budget() {
    // A 4000-byte dynamic-table entry, then 2,000 tiny blocks referencing it 15 times each:
    // 50 KB of input decoding to 120 MB of headers.
    let mut first = vec![0x40];
    first.extend(raw_string(b"x-big"));
    first.extend(raw_string(&[b'v'; 4000]));
    let mut frames = vec![frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, &first)];
    frames.extend(
        (0..2000u32).map(|n| frame(FRAME_HEADERS, FLAG_END_HEADERS, 3 + 2 * n, &[0xbe; 15])),
    );
    let bytes = connection(&frames);
    let mut rewriter = Rewriter::default();
    let mut input = BytesMut::from(&bytes[..]);
    let mut feeds = 0;
    loop {
        let mut output = BytesMut::new();
        rewriter.feed(&mut input, &mut output).unwrap();
        assert!(
            output.len() <= OUTPUT_BUDGET + MAX_HEADER_LIST + 1024,
            "{}",
            output.len()
        );
        feeds += 1;
        if output.is_empty() {
            break;
        }
    }
    assert!(input.is_empty());
    assert!(feeds > 100, "{feeds}");
}

#[test]
fn block_size_is_bounded() {
    let mut fs = vec![frame(FRAME_HEADERS, 0, 1, &[0x82])];
    fs.extend((0..5).map(|_| frame(FRAME_CONTINUATION, 0, 1, &vec![0x82; MAX_FRAME_SIZE])));
    assert!(matches!(
        rewrite(&connection(&fs)),
        Err(FramingError::BlockTooLarge)
    ));
}

#[test]
fn integers_round_trip() {
    for (value, prefix) in [
        (10, 5),
        (1337, 5),
        (31, 5),
        (30, 5),
        (127, 7),
        (0, 7),
        (16_384, 7),
    ] {
        let mut out = Vec::new();
        encode_integer(value, prefix, 0, &mut out);
        // Decode as a string length: prefix 7 only.
        if prefix == 7 {
            out.extend(std::iter::repeat_n(b'a', value));
            let mut block = vec![0x00];
            block.extend(raw_string(b"n"));
            block.extend(out);
            let list = loona_hpack::Decoder::new().decode(&block).unwrap();
            assert_eq!(list[0].1.len(), value);
        }
    }
    let mut out = Vec::new();
    encode_integer(1337, 5, 0, &mut out);
    assert_eq!(out, [31, 154, 10]); // RFC 7541 C.1.2
}

#[tokio::test]
async fn adapter_rewrites_reads_and_fails_on_garbage() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let mut fixed = AuthorityFix::new(server);
    let input = socket_path_requests();
    client.write_all(&input).await.unwrap();
    client.write_all(b"garbage!!").await.unwrap();
    drop(client);
    let mut output = Vec::new();
    let err = loop {
        let mut chunk = [0u8; 100];
        match fixed.read(&mut chunk).await {
            Ok(0) => panic!("EOF instead of an error"),
            Ok(n) => output.extend_from_slice(&chunk[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(output, rewrite(&input).unwrap());
}
