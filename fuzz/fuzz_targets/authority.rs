//! Arbitrary bytes as the client→server side of a driver connection, through the `:authority`
//! rewriter (`server::authority::Rewriter`): HTTP/2 frames and HPACK header blocks, fed in chunks
//! whose sizes the input picks. The first byte chooses whether the connection preface is
//! prepended (so most inputs reach the frame parser) and the chunk size.
//!
//! Checked: no panic; one `feed` never returns more than its output budget plus one unit's
//! output (however much the HPACK dynamic table expands the input); and feeding the same bytes
//! all at once or chunk by chunk, consuming the output between feeds as `h2` does, gives the same
//! verdict and, when the stream is valid, the same output: the rewriter must not depend on how
//! the socket splits reads.
#![no_main]

use akv_csi_provider::server::authority::{OUTPUT_BUDGET, Rewriter};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Most one `feed` may append: the budget, plus one re-encoded header block (the 64 KiB header
/// list bound, its frame headers and priority) or one passed-through frame.
const FEED_BOUND: usize = OUTPUT_BUDGET + 64 * 1024 + 1024;

/// Feeds `chunks` one by one, each until no more is consumed; returns the whole output, the bytes
/// left unconsumed, and whether the stream was refused.
fn run<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<u8>, usize, bool) {
    let mut rewriter = Rewriter::default();
    let mut input = BytesMut::new();
    let mut all = Vec::new();
    for chunk in chunks {
        input.extend_from_slice(chunk);
        loop {
            let held = input.len();
            let mut output = BytesMut::new();
            let result = rewriter.feed(&mut input, &mut output);
            assert!(output.len() <= FEED_BOUND, "one feed returned {} bytes", output.len());
            all.extend_from_slice(&output);
            if result.is_err() {
                return (all, input.len(), true);
            }
            if input.len() == held {
                break;
            }
        }
    }
    (all, input.len(), false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut stream = Vec::with_capacity(PREFACE.len() + rest.len());
    if control & 0x80 == 0 {
        stream.extend_from_slice(PREFACE);
    }
    stream.extend_from_slice(rest);
    let chunk = usize::from(control & 0x7f) + 1;

    let (whole, whole_left, whole_failed) = run(std::iter::once(stream.as_slice()));
    let (chunked, chunked_left, chunked_failed) = run(stream.chunks(chunk));

    assert_eq!(whole_failed, chunked_failed, "verdict depends on chunking");
    if !whole_failed {
        assert_eq!(whole, chunked, "output depends on chunking");
        assert_eq!(whole_left, chunked_left);
    }
});
